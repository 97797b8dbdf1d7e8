//! `[tls]`: private CAs for the HTTP sources, and the check that a CA file holds a certificate.

use serde::{Deserialize, Serialize};

/// `[tls]`: private CAs for the HTTP sources.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CAs every HTTP source trusts; empty: none.
    pub ca_file: String,
    /// PEM CAs only the model endpoints trust; empty: none.
    pub endpoints_ca_file: String,
}

/// Whether `path` holds at least one PEM certificate; the message says what is wrong with it.
pub(super) fn check_ca_file(path: &str) -> Result<(), String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("the CA file {path:?} cannot be read: {e}"))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "the CA file {path:?} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)"
        )),
        Err(e) => Err(format!("the CA file {path:?} is not PEM certificates: {e}")),
    }
}
