//! `[store]`: where the RCA store lives and how long it keeps what.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::default_store_path;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store directory; empty: the XDG data dir.
    pub path: String,
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

    /// `--store` wins, then `[store] path`, then the XDG data dir.
    pub fn resolve(&self, flag: Option<&Path>) -> PathBuf {
        match flag {
            Some(p) => p.to_path_buf(),
            None if !self.path.trim().is_empty() => PathBuf::from(self.path.trim()),
            None => default_store_path(),
        }
    }
}
