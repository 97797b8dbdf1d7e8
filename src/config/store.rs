//! `[store]`: where the RCA store lives (a directory for sled, or a PostgreSQL URL with its
//! password from a file or the environment, never inline) and how long it keeps what.
//! Imports nothing beyond `config`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::default_store_path;
use super::notify::read_secret;

/// A password written inline in `[store]`: never accepted (its file and line are named).
#[derive(Debug, Clone, PartialEq)]
pub struct InlinePassword;

impl<'de> Deserialize<'de> for InlinePassword {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a password is never written in the config (configs are shared, committed and \
             printed): put it in a file and name it with password_file, or in the environment \
             with password_env",
        ))
    }
}

/// Where the store is, as the flag and the config say.
#[derive(Clone, PartialEq)]
pub enum StoreTarget {
    /// sled, in this directory.
    Dir(PathBuf),
    /// PostgreSQL.
    Postgres {
        url: String,
        password: Option<String>,
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for StoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => f.debug_tuple("Dir").field(p).finish(),
            Self::Postgres { url, ca_file, .. } => f
                .debug_struct("Postgres")
                .field("url", url)
                .field("ca_file", ca_file)
                .finish_non_exhaustive(),
        }
    }
}

/// Whether `text` names a PostgreSQL store rather than a directory.
pub fn is_postgres_url(text: &str) -> bool {
    let text = text.trim();
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Why a PostgreSQL URL cannot be used as written; `None` when it can.
pub fn url_problem(text: &str) -> Option<String> {
    let parsed = match url::Url::parse(text.trim()) {
        Ok(u) => u,
        Err(e) => return Some(format!("it is not a URL: {e}")),
    };
    let inline = parsed.password().is_some() || parsed.query_pairs().any(|(k, _)| k == "password");
    if inline {
        return Some(
            "the URL holds a password (URLs are logged, shown and committed): put the password in a file named by password_file, or in a variable named by password_env".into(),
        );
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Some(format!("{:?} names no host", parsed.as_str()));
    }
    None
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store directory; empty: the XDG data dir.
    pub path: String,
    /// A PostgreSQL store instead of a directory: `postgres://USER@HOST:PORT/DB?sslmode=…`,
    /// without a password.
    pub url: String,
    /// A file holding the PostgreSQL password (a mounted Secret).
    pub password_file: String,
    /// An environment variable holding the PostgreSQL password.
    pub password_env: String,
    /// PEM roots the PostgreSQL server's certificate must chain to (managed PostgreSQL's CA).
    pub ca_file: String,
    /// Refused: a password written in the config.
    #[serde(skip_serializing)]
    pub password: Option<InlinePassword>,
    /// Signals of one group within this long of each other join one incident.
    #[serde(with = "crate::model::duration_serde")]
    pub incident_window: std::time::Duration,
    /// How long resolved incidents and entries on no incident are kept, e.g. "30d"; empty:
    /// forever.
    pub retention: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            url: String::new(),
            password_file: String::new(),
            password_env: String::new(),
            ca_file: String::new(),
            password: None,
            incident_window: std::time::Duration::from_secs(3600),
            retention: String::new(),
        }
    }
}

impl StoreConfig {
    /// `retention` as a duration; `None` keeps everything (validation rejects a bad one).
    pub fn retention(&self) -> Option<std::time::Duration> {
        let text = self.retention.trim();
        (!text.is_empty())
            .then(|| humantime::parse_duration(text).ok())
            .flatten()
    }

    /// The store `--store` names (a directory, or a `postgres://` URL), else `[store] url`, else
    /// `[store] path`, else the XDG data dir. A PostgreSQL store's password is read here from
    /// `password_file`, else `password_env`, else `$PGPASSWORD` (libpq's variable).
    pub fn target(&self, flag: Option<&Path>) -> Result<StoreTarget, String> {
        let url = match flag {
            Some(p) => match p.to_str() {
                Some(text) if is_postgres_url(text) => text.trim().to_string(),
                _ => return Ok(StoreTarget::Dir(p.to_path_buf())),
            },
            None if !self.url.trim().is_empty() => self.url.trim().to_string(),
            None => return Ok(StoreTarget::Dir(self.resolve(None))),
        };
        if let Some(problem) = url_problem(&url) {
            // The URL may hold the very password being refused: it is not repeated.
            return Err(format!("the store URL: {problem}"));
        }
        let password = match read_secret(&self.password_file, &self.password_env) {
            Ok(Some(p)) => Some(p),
            Ok(None) => std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
            Err(e) => {
                return Err(format!(
                    "the PostgreSQL store's password cannot be read from {}: {}",
                    e.from, e.reason
                ));
            }
        };
        let ca_file = self.ca_file.trim();
        Ok(StoreTarget::Postgres {
            url,
            password,
            ca_file: (!ca_file.is_empty()).then(|| PathBuf::from(ca_file)),
        })
    }

    /// `--store` wins, then `[store] path`, then the XDG data dir.
    pub fn resolve(&self, flag: Option<&Path>) -> PathBuf {
        match flag {
            Some(p) => p.to_path_buf(),
            None if !self.path.trim().is_empty() => PathBuf::from(self.path.trim()),
            None => default_store_path(),
        }
    }
}
