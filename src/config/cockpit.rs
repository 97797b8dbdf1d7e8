//! The cockpit's own tables: `[pod_logs]` (the logs view) and `[noc]` (the wall's rotation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodLogsConfig {
    /// The newest lines the logs view keeps of one container.
    pub max_lines: usize,
}

/// The bounds of `[pod_logs] max_lines`: enough to scroll back through, few enough to keep in memory.
pub const POD_LOGS_MAX_LINES: std::ops::RangeInclusive<usize> = 1000..=1_000_000;

impl Default for PodLogsConfig {
    fn default() -> Self {
        Self { max_lines: 10_000 }
    }
}

/// `[noc]`: what `--noc` rotates through, and how long each pane stays up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NocConfig {
    /// Seconds each pane stays up.
    pub rotation_secs: u64,
    /// Pane names in rotation order (`overview` is the wall); the cockpit checks the names.
    pub panes: Vec<String>,
}

/// The bounds of `[noc] rotation_secs`: long enough to read a pane, short enough to rotate.
pub const NOC_ROTATION_SECS: std::ops::RangeInclusive<u64> = 2..=3600;

impl Default for NocConfig {
    fn default() -> Self {
        Self {
            rotation_secs: 10,
            panes: [
                "overview",
                "signals",
                "incidents",
                "runbooks",
                "endpoints",
                "gpus",
                "nodes",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}
