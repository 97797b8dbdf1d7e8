//! HTTPS for the daemon: a rustls acceptor (ring, as reqwest and kube use) whose certificate is
//! re-read when its files change, because cert-manager rotates the Secret under a running pod
//! (the kubelet swaps the mounted files atomically, through a symlink). May import config.
//!
//! The check is made on a handshake, at most every `RELOAD_CHECK_EVERY`: a `stat` of the two
//! files, and a read only when one changed, so no task has to be kept alive beside the server.
//! A pair that does not load (a half-written rotation, a key that is not the certificate's)
//! leaves the previous certificate in service and is tried again when a file changes again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::HeadlessConfig;

/// How often, at most, a handshake looks at the files for a rotated certificate.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "[headless] tls_cert and tls_key go together: {missing} is not set (or drop both for plain HTTP)"
    )]
    Half { missing: &'static str },
    #[error("[headless] {key} {path} cannot be read: {source}; fix its path or permissions")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[headless] {key} {path} holds no PEM {what}: {detail}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error(
        "[headless] tls_key {key} cannot sign for tls_cert {cert}: {source}; give the key the certificate was issued for"
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS cannot be set up with ring's defaults: {0}")]
    Setup(#[source] rustls::Error),
}

/// The certificate chain and key files of `[headless] tls_cert` / `tls_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `None` when neither is set (plain HTTP); an error when only one is.
    pub fn from_config(cfg: &HeadlessConfig) -> Result<Option<Self>, TlsError> {
        match (cfg.tls_cert.trim(), cfg.tls_key.trim()) {
            ("", "") => Ok(None),
            ("", _) => Err(TlsError::Half {
                missing: "tls_cert",
            }),
            (_, "") => Err(TlsError::Half { missing: "tls_key" }),
            (cert, key) => Ok(Some(Self {
                cert: cert.into(),
                key: key.into(),
            })),
        }
    }
}

/// A server config for HTTP/1.1 over TLS 1.2 or 1.3 that serves the files' certificate, reloaded
/// when they change. Fails when the files do not load now.
pub fn acceptor(files: TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = Arc::new(ReloadingCert::new(files, provider.clone())?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What identifies a file's content without reading it: modification time, size, inode.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a Secret volume's files are links into `..data`.
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: [FileStamp; 2],
}

/// Serves the latest certificate that loaded from `files`.
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
    checked: Mutex<Instant>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    pub fn new(files: TlsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = [stamp(&files.cert), stamp(&files.key)];
        let key = load(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Loaded { key, stamps }),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// Re-reads the files when they changed since the last look (at most every
    /// `RELOAD_CHECK_EVERY`).
    fn refresh_if_due(&self) {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.elapsed() < RELOAD_CHECK_EVERY {
                return;
            }
            *checked = Instant::now();
        }
        let stamps = [stamp(&self.files.cert), stamp(&self.files.key)];
        let unchanged = self
            .current
            .read()
            .map(|c| c.stamps == stamps)
            .unwrap_or(false);
        if unchanged {
            return;
        }
        let loaded = load(&self.files, &self.provider);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        // Remembered even on failure: the same broken files are not re-read every check.
        current.stamps = stamps;
        match loaded {
            Ok(key) => {
                current.key = key;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "the changed TLS files do not load; the previous certificate stays in service");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh_if_due();
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        Some(current.key.clone())
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem = read("tls_cert", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            key: "tls_cert",
            path: files.cert.clone(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            key: "tls_cert",
            path: files.cert.clone(),
            what: "certificate",
            detail: "no CERTIFICATE block".into(),
        });
    }
    let key_pem = read("tls_key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        key: "tls_key",
        path: files.key.clone(),
        what: "private key",
        detail: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|source| TlsError::Pair {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_needs_both_files_or_neither() {
        let mut cfg = HeadlessConfig::default();
        assert_eq!(TlsFiles::from_config(&cfg).ok(), Some(None));
        cfg.tls_cert = "/etc/tls/tls.crt".into();
        let e = TlsFiles::from_config(&cfg).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("tls_key is not set")));
        cfg.tls_key = "/etc/tls/tls.key".into();
        assert!(matches!(TlsFiles::from_config(&cfg), Ok(Some(_))));
    }

    #[test]
    fn a_missing_certificate_is_named_in_the_error() {
        let files = TlsFiles {
            cert: "/nonexistent/tls.crt".into(),
            key: "/nonexistent/tls.key".into(),
        };
        let e = acceptor(files).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("tls_cert /nonexistent/tls.crt cannot be read")),
            "{e:?}"
        );
    }
}
