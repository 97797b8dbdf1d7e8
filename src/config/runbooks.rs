//! `[runbooks]`: where runbooks live and the executor's pool, queue, time and write caps.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunbooksConfig {
    pub dir: String,
    pub mode: crate::model::Mode,
    pub read_only: bool,
    pub kill_switch: bool,
    pub kill_switch_file: String,
    pub max_disrupted_pct: f64,
    pub halt_unready_pct: f64,
    pub halt_unready_count: u32,
    #[serde(with = "crate::model::duration_serde")]
    pub revalidate_after: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub approval_timeout: std::time::Duration,
    /// Wall-clock limit of one pass of a run, host calls included.
    #[serde(with = "crate::model::duration_serde")]
    pub run_timeout: std::time::Duration,
    /// Runs in progress at once.
    pub max_concurrent_runs: u32,
    /// Runs waiting for a worker; one more is refused.
    pub max_queued_runs: u32,
    /// Timeline entries and notifications one run may write; one "truncated" entry marks the
    /// cap and the rest are dropped (the actions it performs are always recorded).
    pub max_entries_per_run: u32,
    /// Replicas one run may remove by scaling down.
    pub max_replicas_removed_per_run: u32,
    /// Replicas automation may remove in one cluster within `scale_budget_window`.
    pub max_replicas_removed_per_window: u32,
    #[serde(with = "crate::model::duration_serde")]
    pub scale_budget_window: std::time::Duration,
    /// Whether automation may scale to zero a Deployment that serves a configured endpoint.
    pub allow_scale_to_zero_serving: bool,
}

/// A shipped runbook writes a handful of entries; 200 leaves room for a chatty one and keeps a
/// runaway loop of notes to a few hundred KiB of the store.
pub const DEFAULT_MAX_ENTRIES_PER_RUN: usize = 200;

impl Default for RunbooksConfig {
    fn default() -> Self {
        Self {
            // The built-in runbooks unless a directory is named: a `runbooks/` folder that
            // happens to be in the working directory must not silently replace them.
            dir: String::new(),
            mode: crate::model::Mode::DryRun,
            read_only: false,
            kill_switch: false,
            kill_switch_file: String::new(),
            max_disrupted_pct: 10.0,
            halt_unready_pct: 45.0,
            halt_unready_count: 3,
            revalidate_after: std::time::Duration::from_secs(2),
            approval_timeout: std::time::Duration::from_secs(900),
            run_timeout: std::time::Duration::from_secs(900),
            max_concurrent_runs: 8,
            max_queued_runs: 256,
            max_entries_per_run: DEFAULT_MAX_ENTRIES_PER_RUN as u32,
            max_replicas_removed_per_run: 10,
            max_replicas_removed_per_window: 20,
            scale_budget_window: std::time::Duration::from_secs(3600),
            allow_scale_to_zero_serving: false,
        }
    }
}
