//! `[kubernetes]`: kubeconfig, contexts and the watch's idle timeout.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub kubeconfig: String,
    pub contexts: Vec<String>,
    /// A watch that receives nothing (no event, no bookmark) for this long is taken for a dead
    /// connection, shown as reconnecting and resumed.
    #[serde(with = "crate::model::duration_serde")]
    pub watch_idle_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            contexts: Vec::new(),
            watch_idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
        }
    }
}

/// The shortest `[kubernetes] watch_idle_timeout`: servers send bookmarks about once a minute
/// (the sim every 10 s), so less would drop healthy watches.
pub const MIN_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A little above the 290 s the Kubernetes source asks the server to keep a watch open.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
