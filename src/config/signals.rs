//! `[signals]`: the detectors' thresholds, `[signals.for]` and `[signals.clear_after]`, the
//! kinds the detectors raise and which of them are findings. Imports only `model`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every kind the detectors raise (alerts from an intake are `alert.<name>`).
pub const SIGNAL_KINDS: &[&str] = &[
    "budget.overrun_forecast",
    "endpoint.down",
    "endpoint.drift",
    "gpu.ecc",
    "gpu.idle",
    "gpu.memory_exhaustion_forecast",
    "gpu.throttling",
    "gpu.xid",
    "node.interruption_notice",
    "node.not_ready",
    "pod.crash_loop",
    "pod.crash_loop_after_rollout",
    "pod.pending_gpu",
    "slo.fast_burn",
    "slo.slow_burn",
    "source.down",
];

/// Kinds that are findings unless `[signals] findings` says otherwise: an idle GPU, a budget
/// forecast and drift are things to know and act on today, not incidents to page about.
pub const DEFAULT_FINDINGS: &[&str] = &["gpu.idle", "budget.overrun_forecast", "endpoint.drift"];

/// Detector thresholds (`[signals]` in fleetdeck.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A node NotReady/Unknown for longer than this is a signal (node.not_ready's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub node_not_ready_after: Duration,
    /// A pod waiting for GPUs longer than this is a signal (pod.pending_gpu's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub pending_gpu_after: Duration,
    /// How long a spot interruption notice gives before the instance goes (AWS: 2 minutes).
    #[serde(with = "crate::model::duration_serde")]
    pub spot_notice: Duration,
    /// A GPU held by a pod and used under this share is idle.
    pub idle_gpu_pct: f64,
    /// An idle GPU clears only above `idle_gpu_pct` plus this many percentage points.
    pub idle_clear_margin_pct: f64,
    /// A GPU at or above this temperature is running hot.
    pub gpu_hot_c: f64,
    /// A hot GPU clears only below `gpu_hot_c` minus this many degrees.
    pub gpu_hot_clear_margin_c: f64,
    /// The memory forecast looks only at GPUs at least this full (%).
    pub gpu_memory_high_pct: f64,
    /// The memory forecast fits a line over this much history.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_window: Duration,
    /// The fewest samples (spanning at least half the window) the forecast trusts.
    pub gpu_memory_min_samples: u32,
    /// The least R² of the fit for it to count as a trend.
    pub gpu_memory_min_r2: f64,
    /// A GPU whose memory, on its fitted trend, fills within this long: a warning.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_within: Duration,
    /// … within this long: critical.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_critical_within: Duration,
    /// A GPU source with no report for this long is down (`source.down`) even without an error:
    /// its collector stopped.
    #[serde(with = "crate::model::duration_serde")]
    pub source_silent_after: Duration,
    /// How long each kind's condition must hold before it fires (`[signals.for]`).
    #[serde(rename = "for")]
    pub pending_for: PendingFor,
    /// How long a firing kind's clear condition must hold before it stops firing.
    pub clear_after: ClearAfter,
    /// Kinds that are findings: shown where they belong (and runbooks may trigger on them)
    /// but they open no incident. Every other kind opens one.
    pub findings: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            node_not_ready_after: Duration::from_secs(60),
            pending_gpu_after: Duration::from_secs(300),
            spot_notice: Duration::from_secs(120),
            idle_gpu_pct: 5.0,
            idle_clear_margin_pct: 5.0,
            gpu_hot_c: 87.0,
            gpu_hot_clear_margin_c: 5.0,
            gpu_memory_high_pct: 80.0,
            gpu_memory_window: Duration::from_secs(600),
            gpu_memory_min_samples: 10,
            gpu_memory_min_r2: 0.8,
            gpu_memory_full_within: Duration::from_secs(1800),
            gpu_memory_full_critical_within: Duration::from_secs(300),
            source_silent_after: Duration::from_secs(120),
            pending_for: PendingFor::default(),
            clear_after: ClearAfter::default(),
            findings: DEFAULT_FINDINGS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

impl Thresholds {
    /// These thresholds with every `[signals.for]` and `[signals.clear_after]` at zero: a signal
    /// fires while its condition holds and not a moment longer. For one-shot evaluations, which
    /// have no history to hold a condition over, and for tests about a condition rather than its
    /// timing. `node_not_ready_after` and `pending_gpu_after` stay: their detectors measure them
    /// from the API's own timestamps, which a one-shot sees too.
    pub fn without_patience(&self) -> Self {
        Self {
            pending_for: PendingFor::zero(),
            clear_after: ClearAfter::zero(),
            ..self.clone()
        }
    }

    /// Every `for` and `clear_after` (the node and pending-pod thresholds included) times
    /// `factor`: rehearsals run time faster.
    pub fn scale_patience(&mut self, factor: f64) {
        self.node_not_ready_after = self.node_not_ready_after.mul_f64(factor);
        self.pending_gpu_after = self.pending_gpu_after.mul_f64(factor);
        for d in self
            .pending_for
            .durations_mut()
            .into_iter()
            .chain(self.clear_after.durations_mut())
        {
            *d = d.mul_f64(factor);
        }
    }

    /// How long a signal resumed from the store stays *unknown* when a process starts: its
    /// kind's `for`, plus the history its detector needs before it can see the condition at all
    /// (the memory forecast trusts no fit over less than half its window). Until then its
    /// absence says nothing, so it neither clears nor mitigates an incident.
    pub fn resume_hold(&self, kind: &str) -> Duration {
        let own = match kind {
            "gpu.memory_exhaustion_forecast" => self.gpu_memory_window / 2,
            _ => Duration::ZERO,
        };
        self.for_kind(kind) + own
    }

    /// The `for` of a detector kind (`gpu.idle`); zero for a kind without one.
    pub fn for_kind(&self, kind: &str) -> Duration {
        let f = &self.pending_for;
        match kind {
            // Their detectors measure from the API's own timestamps (readiness, creation).
            "node.not_ready" => self.node_not_ready_after,
            "pod.pending_gpu" => self.pending_gpu_after,
            "gpu.xid" => f.gpu_xid,
            "gpu.ecc" => f.gpu_ecc,
            "gpu.throttling" => f.gpu_throttling,
            "gpu.memory_exhaustion_forecast" => f.gpu_memory_exhaustion_forecast,
            "gpu.idle" => f.gpu_idle,
            "node.interruption_notice" => f.node_interruption_notice,
            "pod.crash_loop" => f.pod_crash_loop,
            "pod.crash_loop_after_rollout" => f.pod_crash_loop_after_rollout,
            "endpoint.down" => f.endpoint_down,
            "slo.fast_burn" => f.slo_fast_burn,
            "slo.slow_burn" => f.slo_slow_burn,
            "endpoint.drift" => f.endpoint_drift,
            "budget.overrun_forecast" => f.budget_overrun_forecast,
            "source.down" => f.source_down,
            _ => Duration::ZERO,
        }
    }

    /// The `clear_after` of a detector kind; zero for a kind without one.
    pub fn clear_after_kind(&self, kind: &str) -> Duration {
        let c = &self.clear_after;
        match kind {
            "node.not_ready" => c.node_not_ready,
            "node.interruption_notice" => c.node_interruption_notice,
            "pod.pending_gpu" => c.pod_pending_gpu,
            "pod.crash_loop" => c.pod_crash_loop,
            "pod.crash_loop_after_rollout" => c.pod_crash_loop_after_rollout,
            "gpu.xid" => c.gpu_xid,
            "gpu.ecc" => c.gpu_ecc,
            "gpu.throttling" => c.gpu_throttling,
            "gpu.memory_exhaustion_forecast" => c.gpu_memory_exhaustion_forecast,
            "gpu.idle" => c.gpu_idle,
            "endpoint.down" => c.endpoint_down,
            "slo.fast_burn" => c.slo_fast_burn,
            "slo.slow_burn" => c.slo_slow_burn,
            "endpoint.drift" => c.endpoint_drift,
            "budget.overrun_forecast" => c.budget_overrun_forecast,
            "source.down" => c.source_down,
            _ => Duration::ZERO,
        }
    }
}

/// `[signals.for]`: how long each kind's condition must hold before it fires. node.not_ready
/// and pod.pending_gpu have theirs in `[signals]` (`node_not_ready_after`, `pending_gpu_after`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PendingFor {
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_xid: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_ecc: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_throttling: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_exhaustion_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_idle: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub node_interruption_notice: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop_after_rollout: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_down: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_fast_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_slow_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_drift: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub budget_overrun_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub source_down: Duration,
}

impl Default for PendingFor {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            gpu_xid: Duration::ZERO,
            gpu_ecc: Duration::ZERO,
            gpu_throttling: m(2),
            gpu_memory_exhaustion_forecast: m(5),
            gpu_idle: m(10),
            node_interruption_notice: Duration::ZERO,
            pod_crash_loop: m(2),
            pod_crash_loop_after_rollout: m(1),
            endpoint_down: m(1),
            slo_fast_burn: Duration::ZERO,
            slo_slow_burn: Duration::ZERO,
            endpoint_drift: m(5),
            budget_overrun_forecast: Duration::ZERO,
            source_down: m(1),
        }
    }
}

impl PendingFor {
    fn zero() -> Self {
        let mut z = Self::default();
        for d in z.durations_mut() {
            *d = Duration::ZERO;
        }
        z
    }

    fn durations_mut(&mut self) -> Vec<&mut Duration> {
        vec![
            &mut self.gpu_xid,
            &mut self.gpu_ecc,
            &mut self.gpu_throttling,
            &mut self.gpu_memory_exhaustion_forecast,
            &mut self.gpu_idle,
            &mut self.node_interruption_notice,
            &mut self.pod_crash_loop,
            &mut self.pod_crash_loop_after_rollout,
            &mut self.endpoint_down,
            &mut self.slo_fast_burn,
            &mut self.slo_slow_burn,
            &mut self.endpoint_drift,
            &mut self.budget_overrun_forecast,
            &mut self.source_down,
        ]
    }
}

/// `[signals.clear_after]`: how long a firing kind's clear condition must hold before it stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClearAfter {
    #[serde(with = "crate::model::duration_serde")]
    pub node_not_ready: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub node_interruption_notice: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_pending_gpu: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop_after_rollout: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_xid: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_ecc: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_throttling: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_exhaustion_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_idle: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_down: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_fast_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_slow_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_drift: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub budget_overrun_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub source_down: Duration,
}

impl Default for ClearAfter {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            node_not_ready: m(1),
            node_interruption_notice: Duration::ZERO,
            pod_pending_gpu: Duration::ZERO,
            pod_crash_loop: m(5),
            pod_crash_loop_after_rollout: m(5),
            gpu_xid: Duration::ZERO,
            gpu_ecc: Duration::ZERO,
            gpu_throttling: m(2),
            gpu_memory_exhaustion_forecast: m(5),
            gpu_idle: m(1),
            endpoint_down: m(1),
            slo_fast_burn: Duration::ZERO,
            slo_slow_burn: Duration::ZERO,
            endpoint_drift: m(5),
            budget_overrun_forecast: Duration::ZERO,
            source_down: Duration::ZERO,
        }
    }
}

impl ClearAfter {
    fn zero() -> Self {
        let mut z = Self::default();
        for d in z.durations_mut() {
            *d = Duration::ZERO;
        }
        z
    }

    fn durations_mut(&mut self) -> Vec<&mut Duration> {
        vec![
            &mut self.node_not_ready,
            &mut self.node_interruption_notice,
            &mut self.pod_pending_gpu,
            &mut self.pod_crash_loop,
            &mut self.pod_crash_loop_after_rollout,
            &mut self.gpu_xid,
            &mut self.gpu_ecc,
            &mut self.gpu_throttling,
            &mut self.gpu_memory_exhaustion_forecast,
            &mut self.gpu_idle,
            &mut self.endpoint_down,
            &mut self.slo_fast_burn,
            &mut self.slo_slow_burn,
            &mut self.endpoint_drift,
            &mut self.budget_overrun_forecast,
            &mut self.source_down,
        ]
    }
}
