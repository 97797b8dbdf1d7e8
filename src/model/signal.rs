//! Signals: what the detectors see, with a stable kind, severity, subject and evidence.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Signal {
    /// Whether the condition has stopped and the signal only waits out its `clear_after`.
    pub fn is_clearing(&self) -> bool {
        self.evidence.contains_key(CLEARING_SINCE)
    }
}

impl Severity {
    /// `info`, `warning`, `critical`: as serialised, for labels.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The evidence key a signal carries while its clear condition holds but has not held for
/// its `clear_after` yet: shown as firing, but nothing should act on it.
pub const CLEARING_SINCE: &str = "clearing_since";

/// What a signal is about. Empty fields do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subject {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A pod, deployment or other object, as `kind/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

impl Subject {
    pub fn describe(&self) -> String {
        let mut parts = vec![self.cluster.clone()];
        for p in [
            &self.node,
            &self.gpu,
            &self.endpoint,
            &self.namespace,
            &self.object,
        ]
        .into_iter()
        .flatten()
        {
            parts.push(p.clone());
        }
        parts.join("/")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Stable identifier of the detector's finding, e.g. `node.not_ready`, `gpu.xid`.
    pub kind: String,
    pub severity: Severity,
    pub subject: Subject,
    pub summary: String,
    /// The numbers behind it.
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// What an operator should do, when there is a standard answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub first_seen: DateTime<Utc>,
    /// Same key = same problem: runbooks and incidents dedup on it.
    pub dedup_key: String,
}
