//! The one way the HTTP sources (Prometheus, DCGM exporters, model endpoints, OpenCost) build
//! their reqwest client: the bundled webpki roots, the system's native roots, and the private
//! CAs the config names (`[tls] ca_file` for every source, and a source's own `ca_file`).
//!
//! A CA file is read once, where the source is wired, into [`TlsRoots`]; a file that is missing
//! or holds no PEM certificate is an error naming the key and the file.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} = {path:?}: the CA file cannot be read: {source}")]
    Read {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{key} = {path:?}: the CA file holds no PEM certificate (a -----BEGIN CERTIFICATE----- block){detail}"
    )]
    NotPem {
        key: String,
        path: PathBuf,
        detail: String,
    },
}

/// The private CAs one source trusts, besides the built-in roots.
#[derive(Clone, Default)]
pub struct TlsRoots {
    certs: Vec<reqwest::Certificate>,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRoots")
            .field("files", &self.files)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

/// Two sets of roots are the same when they come from the same files.
impl PartialEq for TlsRoots {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl TlsRoots {
    /// Reads each `(config key, path)` whose path is not empty; the global one first.
    pub fn load(files: &[(&str, &str)]) -> Result<Self, TlsError> {
        let mut roots = Self::default();
        for (key, path) in files {
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let path = Path::new(path);
            roots.certs.extend(read_ca_file(key, path)?);
            roots.files.push(path.to_path_buf());
        }
        Ok(roots)
    }

    /// The CA files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// A client builder trusting the built-in roots and these CAs; the caller adds its
    /// timeouts and builds it.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        self.certs.iter().cloned().fold(
            reqwest::Client::builder()
                .tls_built_in_webpki_certs(true)
                .tls_built_in_native_certs(true),
            reqwest::ClientBuilder::add_root_certificate,
        )
    }
}

/// The certificates of one PEM file (a bundle may hold several).
pub fn read_ca_file(key: &str, path: &Path) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        key: key.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    let not_pem = |detail: String| TlsError::NotPem {
        key: key.to_owned(),
        path: path.to_path_buf(),
        detail,
    };
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| not_pem(format!(": {e}")))?;
    if certs.is_empty() {
        return Err(not_pem(String::new()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_key_and_the_file() {
        let err = TlsRoots::load(&[("prometheus.ca_file", "/nonexistent/ca.pem")])
            .expect_err("missing file");
        let text = err.to_string();
        assert!(text.contains("prometheus.ca_file"), "{text}");
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    }

    #[test]
    fn a_file_without_a_certificate_is_not_a_ca_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "this is not a certificate\n").expect("write");
        let err =
            TlsRoots::load(&[("tls.ca_file", path.to_str().expect("utf-8"))]).expect_err("not PEM");
        assert!(matches!(err, TlsError::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("tls.ca_file"), "{err}");
    }

    #[test]
    fn empty_paths_add_no_roots() {
        let roots = TlsRoots::load(&[("tls.ca_file", ""), ("prometheus.ca_file", "  ")])
            .expect("nothing to read");
        assert!(roots.files().is_empty());
    }
}
