//! Detectors: pure functions of snapshots (plus a little memory of when things were first
//! seen) that turn the fleet model into signals with a stable kind, severity, subject,
//! evidence and dedup key. Thresholds come from config. Imports model and config.
//! Every kind waits out its `for` and clears after its `clear_after` in [`patience`]; SLO burn
//! rates live in [`slo`], histogram drift in [`drift`], the GPU memory forecast in
//! [`forecast`].

pub mod drift;
pub mod forecast;
pub mod patience;
pub mod slo;

use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

pub use crate::config::Thresholds;
use crate::model::cost::CostReport;
use crate::model::endpoint::{BurnSeverity, DriftBand, EndpointHealth, EndpointModel, SloKind};
use crate::model::gpu::GpuModel;
use crate::model::signal::{Severity, Signal, Subject};
use crate::model::{ClusterSnapshot, NodeReadiness, RolloutState, Snapshot};
use forecast::{MemoryRule, forecast_memory};
use patience::{Condition, Observation, Patience, Timing};

/// What an XID code means and what to do about it (NVIDIA's XID catalogue, abridged).
pub struct XidInfo {
    pub code: u32,
    pub meaning: &'static str,
    pub action: &'static str,
    pub severity: Severity,
}

pub static XID_TABLE: &[XidInfo] = &[
    XidInfo {
        code: 13,
        meaning: "graphics engine exception",
        action: "usually the application: check its logs; reset the GPU if it repeats across jobs",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 31,
        meaning: "GPU memory page fault",
        action: "usually the application (illegal address): check its logs",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 43,
        meaning: "GPU stopped processing",
        action: "restart the application; reset the GPU if it repeats",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 45,
        meaning: "preemptive cleanup after a prior error",
        action: "follow the error that preceded it",
        severity: Severity::Info,
    },
    XidInfo {
        code: 48,
        meaning: "double-bit ECC error",
        action: "drain the node and reset the GPU; replace it if it repeats",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 61,
        meaning: "internal micro-controller breakpoint/warning",
        action: "reset the GPU",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 62,
        meaning: "internal micro-controller halt",
        action: "drain the node and reset the GPU",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 63,
        meaning: "ECC page retirement or row remapping recorded",
        action: "reset the GPU at the next drain to apply the remap",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 64,
        meaning: "ECC page retirement or row remapping failed",
        action: "drain the node; the GPU needs replacement (RMA)",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 74,
        meaning: "NVLink error",
        action: "drain the node, check NVLink and reset the GPUs",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 79,
        meaning: "GPU has fallen off the bus",
        action: "drain the node and reboot it; replace the GPU if it repeats",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 92,
        meaning: "high single-bit ECC error rate",
        action: "watch the GPU; plan a reset",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 94,
        meaning: "contained ECC error",
        action: "restart the affected application; the GPU stays usable",
        severity: Severity::Warning,
    },
    XidInfo {
        code: 95,
        meaning: "uncontained ECC error",
        action: "drain the node and reset the GPU",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 119,
        meaning: "GSP RPC timeout",
        action: "drain the node and reset the GPU",
        severity: Severity::Critical,
    },
    XidInfo {
        code: 120,
        meaning: "GSP error",
        action: "drain the node and reset the GPU",
        severity: Severity::Critical,
    },
];

pub fn xid_info(code: u32) -> Option<&'static XidInfo> {
    XID_TABLE.iter().find(|x| x.code == code)
}

/// Taints that announce a node's imminent interruption, by the tool that sets them.
const INTERRUPTION_TAINTS: &[(&str, &str)] = &[
    (
        "aws-node-termination-handler/spot-itn",
        "spot interruption notice (aws-node-termination-handler)",
    ),
    (
        "aws-node-termination-handler/rebalance-recommendation",
        "rebalance recommendation (aws-node-termination-handler)",
    ),
    ("karpenter.sh/disrupted", "Karpenter is disrupting the node"),
    (
        "karpenter.sh/disruption",
        "Karpenter is disrupting the node",
    ),
    (
        "cloud.google.com/impending-node-termination",
        "GCE preemption notice",
    ),
];

/// A deadline a notice states in its text: the RFC 3339 time after "terminated at",
/// "interrupted at" or "terminating at".
fn deadline_in(message: &str) -> Option<DateTime<Utc>> {
    let lower = message.to_ascii_lowercase();
    ["terminated at ", "interrupted at ", "terminating at "]
        .iter()
        .find_map(|marker| {
            let start = lower.find(marker)? + marker.len();
            let token = message[start..]
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .next()?;
            DateTime::parse_from_rfc3339(token.trim_end_matches('.'))
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

/// The detectors and their memory (when each condition was first seen, and where each signal
/// stands between pending, firing and clearing).
#[derive(Debug, Default)]
pub struct Detectors {
    /// Shared, so a detector pass holds it without copying it per node and GPU.
    pub thresholds: std::sync::Arc<Thresholds>,
    first_seen: HashMap<String, DateTime<Utc>>,
    /// Keys looked at in the current evaluation; the rest are forgotten after it.
    touched: FxHashSet<String>,
    /// Deployment → (revision, when it last changed while watched).
    revisions: HashMap<String, (Option<u64>, Option<DateTime<Utc>>)>,
    /// GPU uuid → recent (time, memory used MiB) samples, for the exhaustion forecast.
    gpu_memory: HashMap<String, std::collections::VecDeque<(DateTime<Utc>, f64)>>,
    patience: Patience,
}

/// At most this many memory samples are kept per GPU, whatever the window: a bound on memory
/// for a source that samples far more often than the forecast needs.
const MEMORY_SAMPLES_CAP: usize = 2048;

/// Budget signals come from `evaluate_cost`, on its own schedule.
fn is_budget_key(key: &str) -> bool {
    key.starts_with("budget.")
}

fn met(signal: Signal) -> Observation {
    Observation {
        signal,
        condition: Condition::Met,
    }
}

fn signal(
    kind: &str,
    severity: Severity,
    subject: Subject,
    summary: String,
    evidence: serde_json::Value,
    first_seen: DateTime<Utc>,
    action: Option<&str>,
) -> Signal {
    let dedup_key = format!("{kind}:{}", subject.describe());
    Signal {
        kind: kind.into(),
        severity,
        subject,
        summary,
        evidence: evidence
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
        action: action.map(str::to_string),
        first_seen,
        dedup_key,
    }
}

impl Detectors {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds: std::sync::Arc::new(thresholds),
            ..Self::default()
        }
    }

    fn timing(&self, kind: &str) -> Timing {
        Timing {
            pending_for: self.thresholds.for_kind(kind),
            clear_after: self.thresholds.clear_after_kind(kind),
        }
    }

    fn seen(&mut self, key: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        self.touched.insert(key.to_string());
        if let Some(first) = self.first_seen.get(key) {
            return *first;
        }
        self.first_seen.insert(key.to_string(), now);
        now
    }

    /// Evaluates every detector on `snap`; answers the signals that fire (their conditions held
    /// for their kind's `for`, or have not yet been clear for its `clear_after`), ordered by
    /// severity, then subject.
    pub fn evaluate(&mut self, snap: &Snapshot, now: DateTime<Utc>) -> Vec<Signal> {
        let mut out = Vec::new();
        self.touched.clear();
        for c in &snap.clusters {
            self.nodes(c, now, &mut out);
            self.pods(c, now, &mut out);
        }
        for e in &snap.endpoints {
            self.endpoint(e, now, &mut out);
        }
        self.sources(snap, now, &mut out);
        for g in snap.gpus.iter() {
            self.gpu(g, now, &mut out);
        }
        // Every GPU with memory readings has a series, so more series than GPUs means some
        // GPU left (or was replaced): only then is it worth hashing 40,000 uuids.
        if self.gpu_memory.len() > snap.gpus.len() {
            let live: FxHashSet<&str> = snap.gpus.iter().map(|g| g.uuid.as_str()).collect();
            self.gpu_memory
                .retain(|uuid, _| live.contains(uuid.as_str()));
        }
        // Forget conditions that cleared, so a recurrence is a new first sighting.
        let touched = std::mem::take(&mut self.touched);
        self.first_seen
            .retain(|k, _| touched.contains(k) || is_budget_key(k));
        let mut patience = std::mem::take(&mut self.patience);
        let mut out = patience.advance(out, now, |k| !is_budget_key(k), |kind| self.timing(kind));
        self.patience = patience;
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        out
    }

    fn nodes(&mut self, c: &ClusterSnapshot, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        let t = std::sync::Arc::clone(&self.thresholds);
        for n in &c.nodes {
            if n.readiness == NodeReadiness::Ready && n.taints.is_empty() {
                continue;
            }
            let subject = Subject {
                cluster: c.name.clone(),
                node: Some(n.name.clone()),
                ..Subject::default()
            };
            if n.readiness != NodeReadiness::Ready {
                let key = format!("node.not_ready:{}", subject.describe());
                let since = n.readiness_since.unwrap_or_else(|| self.seen(&key, now));
                let for_secs = (now - since).num_seconds().max(0);
                self.seen(&key, now);
                // `node_not_ready_after` is this kind's `for`, measured from `since`.
                out.push(met(signal(
                        "node.not_ready",
                        Severity::Critical,
                        subject.clone(),
                        format!("node {} is {:?} for {}", n.name, n.readiness, humantime::format_duration(Duration::from_secs(for_secs as u64))),
                        json!({"readiness": format!("{:?}", n.readiness), "since": since, "seconds": for_secs, "pods_running": n.pods.running, "gpus_requested": n.gpu_requested, "node_pool": n.pool}),
                        since,
                        Some("check the kubelet and the instance; cordon and drain if it does not recover"),
                    )));
            }
            for taint in &n.taints {
                let Some((_, what)) = INTERRUPTION_TAINTS.iter().find(|(k, _)| *k == taint.key)
                else {
                    continue;
                };
                let key = format!("taint:{}:{}", subject.describe(), taint.key);
                let first_sight = self.seen(&key, now);
                // The notice event, when the handler posted one, dates the notice (and may state
                // the deadline), so the deadline survives a restart of the cockpit.
                let event = c.warnings.iter().find(|w| {
                    w.object == format!("node/{}", n.name) && {
                        let r = w.reason.to_ascii_lowercase();
                        r.contains("interruption")
                            || r.contains("rebalance")
                            || r.contains("termination")
                    }
                });
                let noticed = event
                    .and_then(|e| e.last_seen)
                    .map_or(first_sight, |t| t.min(first_sight));
                let stated = event.and_then(|e| deadline_in(&e.message));
                let (deadline, deadline_source) = match stated {
                    Some(d) => (d, "notice event"),
                    None => (
                        noticed + chrono::Duration::from_std(t.spot_notice).unwrap_or_default(),
                        "notice window",
                    ),
                };
                let left = (deadline - now).num_seconds();
                out.push(met(signal(
                    "node.interruption_notice",
                    Severity::Critical,
                    subject.clone(),
                    format!("{what} on {}: instance goes at {} ({}s left)", n.name, deadline.format("%H:%M:%S"), left.max(0)),
                    json!({"taint": taint.key, "noticed": noticed, "deadline": deadline, "deadline_source": deadline_source, "seconds_left": left, "capacity_type": n.capacity_type, "pods_running": n.pods.running, "gpus_requested": n.gpu_requested, "node_pool": n.pool}),
                    noticed,
                    Some("cordon and drain the node now, forcing past the deadline if a budget blocks"),
                )));
            }
        }
    }

    fn gpu(&mut self, g: &GpuModel, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        let t = std::sync::Arc::clone(&self.thresholds);
        // Built only for a GPU that emits: most of 40,000 GPUs emit nothing.
        let subject = || Subject {
            cluster: g.cluster.clone(),
            node: Some(g.node.clone()).filter(|n| !n.is_empty()),
            gpu: Some(format!("gpu{} ({})", g.index, g.uuid)),
            namespace: g.holder.as_ref().map(|h| h.namespace.clone()),
            object: g.holder.as_ref().map(|h| format!("pod/{}", h.pod)),
            ..Subject::default()
        };
        let holder = || {
            g.holder
                .as_ref()
                .map(|h| format!("{}/{}", h.namespace, h.pod))
        };
        let mut emit = |this: &mut Self,
                        condition: Condition,
                        kind: &str,
                        severity: Severity,
                        describe: &dyn Fn() -> (String, serde_json::Value),
                        action: Option<&str>| {
            // Dedup per GPU, not per holder: the pod may change while the fault stays.
            let key = format!("{kind}:{}/{}/{}", g.cluster, g.node, g.uuid);
            let first = match condition {
                Condition::Met => this.seen(&key, now),
                Condition::WithinMargin => now,
            };
            // A condition still waiting out its `for` is never shown: its key is all patience
            // needs (thousands of idle GPUs wait ten minutes; their summaries are not built).
            let waiting = condition == Condition::Met
                && this
                    .patience
                    .waits(&key, now, this.thresholds.for_kind(kind));
            let mut s = if waiting {
                Signal {
                    kind: kind.into(),
                    severity,
                    subject: Subject::default(),
                    summary: String::new(),
                    evidence: Default::default(),
                    action: None,
                    first_seen: first,
                    dedup_key: String::new(),
                }
            } else {
                let (summary, evidence) = describe();
                signal(kind, severity, subject(), summary, evidence, first, action)
            };
            s.dedup_key = key;
            out.push(Observation {
                signal: s,
                condition,
            });
        };
        if let Some(code) = g.xid_last {
            let info = xid_info(code);
            emit(
                self,
                Condition::Met,
                "gpu.xid",
                info.map_or(Severity::Warning, |i| i.severity),
                &|| {
                    (
                        format!(
                            "XID {code} on {} gpu{}: {}",
                            g.node,
                            g.index,
                            info.map_or(
                                "an XID error NVIDIA's catalogue lists; see its XID table",
                                |i| i.meaning
                            )
                        ),
                        json!({"xid": code, "uuid": g.uuid, "holder": holder(), "model": g.model_name}),
                    )
                },
                Some(info.map_or("look the code up in NVIDIA's XID catalogue", |i| i.action)),
            );
        }
        let dbe = g.ecc_dbe_volatile.unwrap_or(0);
        if dbe > 0
            || g.remap_failure == Some(true)
            || g.remapped_rows_uncorrectable.unwrap_or(0) > 0
        {
            emit(
                self,
                Condition::Met,
                "gpu.ecc",
                Severity::Critical,
                &|| {
                    (
                        format!(
                            "{} gpu{}: {dbe} double-bit ECC errors, {} uncorrectable remapped rows{}",
                            g.node,
                            g.index,
                            g.remapped_rows_uncorrectable.unwrap_or(0),
                            if g.remap_failure == Some(true) {
                                ", row remapping FAILED"
                            } else {
                                ""
                            }
                        ),
                        json!({"ecc_dbe_volatile": dbe, "remapped_rows_uncorrectable": g.remapped_rows_uncorrectable, "remap_failure": g.remap_failure, "uuid": g.uuid}),
                    )
                },
                Some("drain the node and reset the GPU; a remap failure means replacement (RMA)"),
            );
        }
        let throttled: Vec<String> = g
            .throttle_reasons
            .iter()
            .flatten()
            .filter(|r| r.is_slowdown())
            .map(|r| format!("{r:?}"))
            .collect();
        let hot = g.temperature_c.is_some_and(|c| c >= t.gpu_hot_c);
        let cooling = g
            .temperature_c
            .is_some_and(|c| c >= t.gpu_hot_c - t.gpu_hot_clear_margin_c);
        let throttling = if hot || !throttled.is_empty() {
            Some(Condition::Met)
        } else {
            cooling.then_some(Condition::WithinMargin)
        };
        if let Some(condition) = throttling {
            emit(
                self,
                condition,
                "gpu.throttling",
                Severity::Warning,
                &|| {
                    (
                        format!(
                            "{} gpu{} throttles: {}{}",
                            g.node,
                            g.index,
                            g.temperature_c
                                .map(|c| format!("{c:.0} °C"))
                                .unwrap_or_default(),
                            if throttled.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", throttled.join(", "))
                            }
                        ),
                        json!({"temperature_c": g.temperature_c, "power_w": g.power_w, "power_limit_w": g.power_limit_w, "reasons": throttled}),
                    )
                },
                Some("check cooling and power capping on the node"),
            );
        }
        if let (Some(used), Some(total)) = (
            g.memory_used_mib,
            g.memory_total_mib
                .or_else(|| Some(g.memory_used_mib? + g.memory_free_mib?)),
        ) {
            // Looked up before inserting: an entry per GPU per pass would copy every uuid.
            if !self.gpu_memory.contains_key(&g.uuid) {
                self.gpu_memory.insert(g.uuid.clone(), Default::default());
            }
            let Some(series) = self.gpu_memory.get_mut(&g.uuid) else {
                return;
            };
            if series.back().is_none_or(|(t, _)| *t < g.sampled_at) {
                series.push_back((g.sampled_at, used as f64));
                let window = chrono::Duration::from_std(t.gpu_memory_window)
                    .unwrap_or(chrono::Duration::MAX);
                while series.len() > MEMORY_SAMPLES_CAP
                    || series
                        .front()
                        .is_some_and(|(at, _)| *at < g.sampled_at - window)
                {
                    series.pop_front();
                }
            }
            // Most GPUs are under the high-water mark, where the rule cannot fire: skip the fit
            // (the forecast would answer "below high" after fitting 40,000 windows).
            let high = total as f64 * t.gpu_memory_high_pct / 100.0;
            let f = (used as f64 >= high).then(|| {
                forecast_memory(
                    series,
                    used as f64,
                    total as f64,
                    &MemoryRule::from_thresholds(&t),
                )
            });
            if let Some((Some(severity), Some(secs), Some(fit), f)) =
                f.map(|f| (f.severity(), f.seconds_to_full, f.fit, f))
            {
                let evidence = || {
                    let mut e = f.evidence();
                    e["holder"] = json!(holder());
                    e
                };
                emit(
                    self,
                    Condition::Met,
                    "gpu.memory_exhaustion_forecast",
                    severity,
                    &|| {
                        (
                            format!(
                                "{} gpu{} memory fills in about {} on its {} trend ({used} of {total} MiB, +{:.0} MiB/min, R² {:.2})",
                                g.node,
                                g.index,
                                humantime::format_duration(Duration::from_secs(secs as u64)),
                                humantime::format_duration(t.gpu_memory_window),
                                fit.slope_per_second * 60.0,
                                fit.r2.unwrap_or(0.0),
                            ),
                            evidence(),
                        )
                    },
                    Some("find the leak or the growing cache in the holding pod before it OOMs"),
                );
            }
        }
        let idle = if g.is_idle_allocated(t.idle_gpu_pct) {
            Some(Condition::Met)
        } else {
            g.is_idle_allocated(t.idle_gpu_pct + t.idle_clear_margin_pct)
                .then_some(Condition::WithinMargin)
        };
        if let Some(condition) = idle {
            emit(
                self,
                condition,
                "gpu.idle",
                Severity::Info,
                &|| {
                    (
                        format!(
                            "{} gpu{} is held by {} but {:.0}% busy",
                            g.node,
                            g.index,
                            holder().unwrap_or_default(),
                            g.utilization_pct.unwrap_or(0.0)
                        ),
                        json!({"utilization_pct": g.utilization_pct, "memory_used_mib": g.memory_used_mib, "holder": holder()}),
                    )
                },
                Some("ask the owner to release it, or reclaim it for pending GPU work"),
            );
        }
    }

    /// Budget signals from a cost report: the month-end forecast over the budget.
    pub fn evaluate_cost(&mut self, report: &CostReport, now: DateTime<Utc>) -> Vec<Signal> {
        let observed: Vec<Observation> = self.budget(report, now).into_iter().map(met).collect();
        let mut patience = std::mem::take(&mut self.patience);
        let out = patience.advance(observed, now, is_budget_key, |kind| self.timing(kind));
        self.patience = patience;
        out
    }

    fn budget(&mut self, report: &CostReport, now: DateTime<Utc>) -> Option<Signal> {
        let b = report.budget.as_ref().filter(|b| b.forecast_over_budget)?;
        let subject = Subject {
            cluster: "fleet".into(),
            object: Some(format!("budget/{}", b.month)),
            ..Subject::default()
        };
        let key = format!("budget.overrun_forecast:{}", subject.describe());
        let first = self.seen(&key, now);
        let severity = if b.month_to_date > b.monthly_budget {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Some(signal(
            "budget.overrun_forecast",
            severity,
            subject,
            format!(
                "{} spend is forecast at {:.0} {} by month end, {:.0}% of the {:.0} budget ({:.0}% spent with {:.0}% of the month gone)",
                b.month,
                b.forecast_month_end,
                report.currency,
                b.forecast_pct,
                b.monthly_budget,
                b.burn_pct,
                b.month_elapsed_pct
            ),
            json!({"month": b.month, "budget": b.monthly_budget, "month_to_date": b.month_to_date, "forecast": b.forecast_month_end,
                "forecast_pct": b.forecast_pct, "method": b.method}),
            first,
            Some(
                "find the groups growing fastest (fleetdeck cost --by team) and idle GPUs to reclaim",
            ),
        ))
    }

    /// `source.down`: a source the picture cannot see (an API server unreachable, a watch
    /// broken, a GPU or cost source failing or silent), dated from when it was last seen, so
    /// its `for` counts from the break. Blind is not calm: the signals it would raise are
    /// unknown while it lasts.
    fn sources(&mut self, snap: &Snapshot, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        use crate::model::blind::BlindSource;
        for spot in snap.blind_spots(now, self.thresholds.source_silent_after) {
            let (severity, object) = match &spot.source {
                // Every signal of the cluster is unknown.
                BlindSource::Cluster => (Severity::Critical, "apiserver".to_string()),
                BlindSource::Gpu(_) => (Severity::Warning, format!("source/{}", spot.name())),
                BlindSource::Cost => (Severity::Warning, "source/cost".to_string()),
            };
            let subject = Subject {
                cluster: spot.cluster.clone(),
                object: Some(object),
                ..Subject::default()
            };
            let key = format!("source.down:{}", subject.describe());
            self.seen(&key, now);
            out.push(met(signal(
                "source.down",
                severity,
                subject,
                format!("{}: {}", spot.describe(now), spot.error),
                json!({"source": spot.name(), "target": spot.target, "state": spot.state, "since": spot.since, "seconds": spot.age(now).as_secs(), "error": spot.error}),
                spot.since,
                Some(match spot.source {
                    BlindSource::Cluster => "check the API server and the network path to it; fleetdeck keeps the last picture, but nothing new is seen",
                    BlindSource::Gpu(_) => "check the exporter (or NVML) and its scrape target; GPU faults on this cluster go unseen meanwhile",
                    BlindSource::Cost => "check the cost source; budgets and forecasts are not updated meanwhile",
                }),
            )));
        }
    }

    fn endpoint(&mut self, e: &EndpointModel, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        let from = out.len();
        self.endpoint_signals(e, now, out);
        // The Deployment serving it: an endpoint's outage and its pods' crash loop after a
        // rollout are one incident (`store::incident_group`).
        if let Some(s) = e
            .serving
            .as_ref()
            .filter(|s| s.kind.eq_ignore_ascii_case("Deployment"))
        {
            let serving = json!(format!("{}/{}", s.namespace, s.name));
            for o in &mut out[from..] {
                o.signal
                    .evidence
                    .insert("serving_deployment".into(), serving.clone());
            }
        }
    }

    fn endpoint_signals(
        &mut self,
        e: &EndpointModel,
        now: DateTime<Utc>,
        out: &mut Vec<Observation>,
    ) {
        let cluster = e
            .serving
            .as_ref()
            .map(|s| s.cluster.clone())
            .unwrap_or_default();
        let base = Subject {
            cluster,
            endpoint: Some(e.name.clone()),
            ..Subject::default()
        };
        if matches!(
            e.health,
            EndpointHealth::Dead | EndpointHealth::Unreachable | EndpointHealth::NotReady
        ) {
            let key = format!("endpoint.down:{}", base.describe());
            let first = self.seen(&key, now);
            let error = e.probe.as_ref().and_then(|p| p.error.clone());
            out.push(met(signal(
                "endpoint.down",
                Severity::Critical,
                base.clone(),
                format!(
                    "endpoint {} is {:?}{}",
                    e.name,
                    e.health,
                    error
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                json!({"health": e.health, "last_healthy": e.last_healthy, "error": error}),
                first,
                Some("check the serving pods and roll back the last change if it caused this"),
            )));
        }
        for burn in [&e.availability_burn, &e.latency_burn]
            .into_iter()
            .flatten()
        {
            let Some(sev) = burn.severity() else { continue };
            let (kind, severity) = match sev {
                BurnSeverity::Page => ("slo.fast_burn", Severity::Critical),
                BurnSeverity::Ticket => ("slo.slow_burn", Severity::Warning),
            };
            let slo = match burn.kind {
                SloKind::Availability => "availability",
                SloKind::Latency => "latency",
            };
            let subject = Subject {
                object: Some(format!("slo/{slo}")),
                ..base.clone()
            };
            let key = format!("{kind}:{}", subject.describe());
            let first = self.seen(&key, now);
            let fired = &burn.alerts[0];
            out.push(met(signal(
                kind,
                severity,
                subject,
                format!(
                    "{} {slo} SLO ({}) burns at {:.1}× over {} and {:.1}× over {}",
                    e.name,
                    burn.objective,
                    fired.long.burn_rate.unwrap_or(0.0),
                    humantime::format_duration(Duration::from_secs(fired.long.window_secs as u64)),
                    fired.short.burn_rate.unwrap_or(0.0),
                    humantime::format_duration(Duration::from_secs(fired.short.window_secs as u64)),
                ),
                json!({"slo": slo, "objective": burn.objective, "threshold": fired.threshold,
                    "long_window_secs": fired.long.window_secs, "long_burn": fired.long.burn_rate,
                    "short_window_secs": fired.short.window_secs, "short_burn": fired.short.burn_rate,
                    "error_rate": e.metrics.as_ref().map(|m| m.error_rate), "p99_ms": e.metrics.as_ref().map(|m| m.latency_p99_ms)}),
                first,
                Some("roll the serving deployment back if a rollout started this; otherwise scale out"),
            )));
        }
        if let Some(d) = &e.drift
            && d.band != DriftBand::None
        {
            let severity = if d.band == DriftBand::Significant {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let subject = Subject {
                object: Some(format!("metric/{}", d.metric)),
                ..base.clone()
            };
            let key = format!("endpoint.drift:{}", subject.describe());
            let first = self.seen(&key, now);
            out.push(met(signal(
                "endpoint.drift",
                severity,
                subject,
                format!("{} drift on {}: PSI {:.3} ({:?})", e.name, d.metric, d.psi, d.band),
                json!({"metric": d.metric, "psi": d.psi, "band": d.band, "baseline_count": d.baseline_count, "current_count": d.current_count}),
                first,
                Some("compare the current inputs with the baseline; retrain or roll back the model"),
            )));
        }
    }

    fn pods(&mut self, c: &ClusterSnapshot, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        for p in c.pending.iter().filter(|p| p.gpus > 0) {
            let since = p.since.unwrap_or(now);
            // `pending_gpu_after` is this kind's `for`, measured from `since`.
            let waited = (now - since).num_seconds().max(0) as u64;
            let subject = Subject {
                cluster: c.name.clone(),
                namespace: Some(p.namespace.clone()),
                object: Some(format!("pod/{}", p.name)),
                ..Subject::default()
            };
            out.push(met(signal(
                "pod.pending_gpu",
                Severity::Warning,
                subject,
                format!("{}/{} waits {} for {} GPU(s): {}", p.namespace, p.name, humantime::format_duration(Duration::from_secs(waited)), p.gpus, p.message),
                json!({"gpus": p.gpus, "reason": p.reason, "message": p.message, "seconds": waited}),
                since,
                Some("free GPUs (idle allocations, spot capacity) or scale the GPU node pool"),
            )));
        }
        for d in &c.deployments {
            let key = format!("{}/{}/{}", c.name, d.namespace, d.name);
            let entry = self.revisions.entry(key).or_insert((d.revision, None));
            if entry.0 != d.revision {
                *entry = (d.revision, Some(now));
            }
        }
        for p in &c.crash_looping {
            // The pod's Deployment: the longest deployment name that prefixes `name-<hash>-<id>`.
            let dep = c
                .deployments
                .iter()
                .filter(|d| {
                    d.namespace == p.namespace && p.name.starts_with(&format!("{}-", d.name))
                })
                .max_by_key(|d| d.name.len());
            // After a rollout: the deployment is mid-rollout to a revision past the first, or
            // its revision changed within the last hour while we watched.
            let after_rollout = dep.is_some_and(|d| {
                let key = format!("{}/{}/{}", c.name, d.namespace, d.name);
                let recent = self
                    .revisions
                    .get(&key)
                    .and_then(|(_, at)| *at)
                    .is_some_and(|at| (now - at).num_seconds() < 3600);
                d.revision.unwrap_or(0) > 1 && (d.rollout != RolloutState::Complete || recent)
            });
            let subject = Subject {
                cluster: c.name.clone(),
                namespace: Some(p.namespace.clone()),
                object: Some(format!("pod/{}", p.name)),
                node: p.node.clone(),
                ..Subject::default()
            };
            let key = format!("pod.crash_loop:{}", subject.describe());
            let first = self.seen(&key, now);
            let (kind, severity, action) = if after_rollout {
                (
                    "pod.crash_loop_after_rollout",
                    Severity::Critical,
                    "roll the deployment back to the previous revision",
                )
            } else {
                (
                    "pod.crash_loop",
                    Severity::Warning,
                    "read the container's last logs and exit reason",
                )
            };
            out.push(met(signal(
                kind,
                severity,
                subject,
                format!(
                    "{}/{} is in {} ({} restarts{})",
                    p.namespace,
                    p.name,
                    p.reason,
                    p.restarts,
                    p.last_termination.as_deref().map(|l| format!(", last {l}")).unwrap_or_default()
                ),
                json!({"restarts": p.restarts, "reason": p.reason, "last_termination": p.last_termination,
                    "deployment": dep.map(|d| d.name.clone()), "revision": dep.and_then(|d| d.revision)}),
                first,
                Some(action),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{
        ClusterTotals, CrashLoopingPod, DeploymentModel, NodeModel, PendingPod, PhaseCounts, Taint,
    };

    fn node(
        name: &str,
        readiness: NodeReadiness,
        since: Option<DateTime<Utc>>,
        taints: Vec<Taint>,
    ) -> NodeModel {
        NodeModel {
            name: name.into(),
            readiness,
            readiness_since: since,
            cordoned: false,
            taints,
            capacity_type: crate::model::CapacityType::Spot,
            instance_type: None,
            pool: None,
            zone: None,
            gpu_product: None,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            gpu_requested: 4,
            pods: PhaseCounts::default(),
            created: None,
        }
    }

    fn cluster(nodes: Vec<NodeModel>) -> ClusterSnapshot {
        ClusterSnapshot {
            name: "a".into(),
            server: String::new(),
            sync: vec![],
            totals: ClusterTotals::default(),
            nodes,
            namespaces: vec![],
            crash_looping: vec![],
            pending: vec![],
            deployments: vec![],
            pdbs: vec![],
            gang_jobs: vec![],
            warnings: vec![],
            normal_events: vec![],
            workloads: vec![],
            inference_services: vec![],
            pods: Default::default(),
        }
    }

    fn snap(c: ClusterSnapshot) -> Snapshot {
        Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_node_not_ready_past_the_threshold_is_critical() {
        let now = Utc::now();
        let mut d = Detectors::default();
        let fresh = snap(cluster(vec![node(
            "n1",
            NodeReadiness::NotReady,
            Some(now - chrono::Duration::seconds(10)),
            vec![],
        )]));
        assert!(d.evaluate(&fresh, now).is_empty(), "not yet past 60s");
        let old = snap(cluster(vec![node(
            "n1",
            NodeReadiness::Unknown,
            Some(now - chrono::Duration::seconds(600)),
            vec![],
        )]));
        let s = d.evaluate(&old, now);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].kind.as_str(), s[0].severity),
            ("node.not_ready", Severity::Critical)
        );
        assert_eq!(s[0].evidence["seconds"], 600);
        assert_eq!(s[0].dedup_key, "node.not_ready:a/n1");
    }

    #[test]
    fn a_spot_notice_carries_its_deadline_from_first_sighting() {
        let now = Utc::now();
        let mut d = Detectors::default();
        let taint = Taint {
            key: "aws-node-termination-handler/spot-itn".into(),
            value: "x".into(),
            effect: "NoSchedule".into(),
        };
        let s1 = snap(cluster(vec![node(
            "n1",
            NodeReadiness::Ready,
            None,
            vec![taint],
        )]));
        let first = d.evaluate(&s1, now);
        let later = d.evaluate(&s1, now + chrono::Duration::seconds(30));
        assert_eq!(first[0].kind, "node.interruption_notice");
        assert_eq!(first[0].evidence["seconds_left"], 120);
        assert_eq!(
            later[0].evidence["seconds_left"], 90,
            "the deadline does not move"
        );
        assert_eq!(first[0].first_seen, later[0].first_seen);
    }

    #[test]
    fn a_notice_event_dates_the_notice_and_states_the_deadline() {
        let now = Utc::now();
        let sent = now - chrono::Duration::seconds(20);
        let goes = sent + chrono::Duration::seconds(90);
        let taint = Taint {
            key: "aws-node-termination-handler/spot-itn".into(),
            value: "x".into(),
            effect: "NoSchedule".into(),
        };
        let mut c = cluster(vec![node("n1", NodeReadiness::Ready, None, vec![taint])]);
        c.warnings.push(crate::model::ClusterEvent {
            warning: true,
            namespace: "default".into(),
            object: "node/n1".into(),
            reason: "SpotInterruption".into(),
            message: format!("Spot Interruption notice for instance i-1 was sent at {}: instance will be terminated at {}", sent.to_rfc3339(), goes.to_rfc3339()),
            count: 1,
            last_seen: Some(sent),
        });
        let s = Detectors::default().evaluate(&snap(c), now);
        assert_eq!(s[0].kind, "node.interruption_notice");
        assert_eq!(s[0].evidence["deadline_source"], "notice event");
        assert_eq!(s[0].evidence["seconds_left"], 70);
        assert_eq!(s[0].first_seen, sent);
    }

    #[test]
    fn gpu_pods_pending_too_long_are_flagged_with_the_schedulers_reason() {
        let now = Utc::now();
        let mut c = cluster(vec![]);
        c.pending.push(PendingPod {
            namespace: "ml".into(),
            name: "train".into(),
            reason: "Unschedulable".into(),
            message: "0/4 nodes are available: 4 Insufficient nvidia.com/gpu".into(),
            gpus: 8,
            since: Some(now - chrono::Duration::seconds(900)),
        });
        c.pending.push(PendingPod {
            namespace: "ml".into(),
            name: "cpu".into(),
            reason: "Unschedulable".into(),
            message: String::new(),
            gpus: 0,
            since: Some(now - chrono::Duration::seconds(900)),
        });
        let s = Detectors::default().evaluate(&snap(c), now);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, "pod.pending_gpu");
        assert!(s[0].summary.contains("Insufficient nvidia.com/gpu"));
    }

    #[test]
    fn a_crash_loop_during_a_rollout_asks_for_a_rollback() {
        let now = Utc::now();
        let mut c = cluster(vec![]);
        c.deployments.push(DeploymentModel {
            namespace: "serving".into(),
            name: "llama-chat".into(),
            revision: Some(4),
            replicas: 2,
            ready: 1,
            updated: 1,
            available: 1,
            rollout: RolloutState::Progressing,
            images: vec![],
            registered_model: None,
        });
        c.crash_looping.push(CrashLoopingPod {
            namespace: "serving".into(),
            name: "llama-chat-7d9f-abcde".into(),
            node: None,
            restarts: 6,
            reason: "CrashLoopBackOff".into(),
            last_termination: Some("Error".into()),
        });
        c.crash_looping.push(CrashLoopingPod {
            namespace: "batch".into(),
            name: "tokenizer-x-y".into(),
            node: None,
            restarts: 9,
            reason: "CrashLoopBackOff".into(),
            last_termination: None,
        });
        let s = Detectors::new(Thresholds::default().without_patience()).evaluate(&snap(c), now);
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["pod.crash_loop_after_rollout", "pod.crash_loop"]);
        assert_eq!(s[0].evidence["deployment"], "llama-chat");
    }

    const TOTAL_MIB: u64 = 80_000;

    /// One GPU held by ml/train-0 using `used` MiB of 80,000, sampled at `at`.
    fn gpu_snap(at: DateTime<Utc>, used: f64, util: f64, temp: f64) -> Snapshot {
        let mut g = crate::model::gpu::GpuModel::new("a", "n1", 0, "GPU-1", at);
        g.memory_used_mib = Some(used.round() as u64);
        g.memory_total_mib = Some(TOTAL_MIB);
        g.utilization_pct = Some(util);
        g.temperature_c = Some(temp);
        g.holder = Some(crate::model::gpu::PodRef {
            namespace: "ml".into(),
            pod: "train-0".into(),
            container: None,
        });
        Snapshot {
            gpus: Arc::new(vec![g]),
            ..Snapshot::default()
        }
    }

    /// Evaluates a busy GPU whose memory follows `used(seconds)`, sampled every `every` seconds
    /// from 0 to `until`; answers each evaluation's memory forecast signal.
    fn memory_series(
        d: &mut Detectors,
        t0: DateTime<Utc>,
        every: i64,
        until: i64,
        used: impl Fn(i64) -> f64,
    ) -> Vec<(i64, Option<Signal>)> {
        (0..=until / every)
            .map(|i| {
                let secs = i * every;
                let at = t0 + chrono::Duration::seconds(secs);
                let forecast = d
                    .evaluate(&gpu_snap(at, used(secs), 90.0, 60.0), at)
                    .into_iter()
                    .find(|s| s.kind == "gpu.memory_exhaustion_forecast");
                (secs, forecast)
            })
            .collect()
    }

    /// 400 MiB a minute from 80 % of 80,000 MiB: full at 40 min, within 30 min from 10 min on,
    /// within 5 min from 35 min on.
    fn leak_from_80_pct(secs: i64) -> f64 {
        64_000.0 + 400.0 * secs as f64 / 60.0
    }

    #[test]
    fn a_steady_leak_from_80_pct_warns_after_its_for_then_turns_critical_near_full() {
        let t0 = Utc::now();
        let mut d = Detectors::default();
        let run = memory_series(&mut d, t0, 30, 36 * 60, leak_from_80_pct);
        let at = |min: i64| {
            run.iter()
                .find(|(s, _)| *s == min * 60)
                .and_then(|(_, f)| f.clone())
        };
        assert!(at(9).is_none() && at(14).is_none(), "pending until 15 min");
        let warning = at(16).unwrap_or_else(|| panic!("a warning at 16 min: {run:#?}"));
        assert_eq!(warning.severity, Severity::Warning);
        let since_condition = (warning.first_seen - (t0 + chrono::Duration::minutes(10)))
            .num_seconds()
            .abs();
        assert!(
            since_condition <= 30,
            "first seen when first true: {warning:#?}"
        );
        let e = &warning.evidence;
        assert_eq!(e["window_secs"], 600);
        assert_eq!(e["samples"], 21);
        assert!(
            (e["mib_per_minute"].as_f64().unwrap_or(0.0) - 400.0).abs() < 1.0,
            "{e:?}"
        );
        assert!(e["r2"].as_f64().is_some_and(|r| r > 0.99), "{e:?}");
        let secs = e["seconds_to_full"].as_f64().unwrap_or(0.0);
        assert!((secs - 24.0 * 60.0).abs() < 30.0, "{secs}");
        assert!(e.contains_key("fitted_used_mib"), "{e:?}");
        let critical = at(36).unwrap_or_else(|| panic!("critical at 36 min: {run:#?}"));
        assert_eq!(critical.severity, Severity::Critical);
        assert_eq!(
            critical.first_seen, warning.first_seen,
            "one signal, escalated"
        );
    }

    #[test]
    fn a_leak_that_has_not_held_for_its_for_does_not_fire_yet() {
        let t0 = Utc::now();
        let mut d = Detectors::default();
        // Within 30 min of full from 10 min on; the `for` (5 min) has not passed at 14.5 min.
        let run = memory_series(&mut d, t0, 30, 14 * 60 + 30, leak_from_80_pct);
        assert!(run.iter().all(|(_, f)| f.is_none()), "{run:#?}");
        let mut zero = Thresholds::default();
        assert!(
            zero.pending_for
                .set("gpu.memory_exhaustion_forecast", Duration::ZERO)
        );
        let mut d = Detectors::new(zero);
        let run = memory_series(&mut d, t0, 30, 14 * 60 + 30, leak_from_80_pct);
        assert!(
            run.last().is_some_and(|(_, f)| f.is_some()),
            "the same leak with a zero `for` fires"
        );
    }

    #[test]
    fn a_flat_high_caching_allocator_is_not_forecast() {
        let mut d = Detectors::default();
        // vLLM and friends reserve ~95 % at start and hold it; a little noise on top.
        let run = memory_series(&mut d, Utc::now(), 15, 60 * 60, |s| {
            76_000.0 + if (s / 15) % 2 == 0 { 40.0 } else { -40.0 }
        });
        assert!(run.iter().all(|(_, f)| f.is_none()), "{run:#?}");
    }

    #[test]
    fn a_training_saw_tooth_is_not_forecast() {
        let mut d = Detectors::default();
        // Each step climbs from 80 % to 98 % over 3 minutes, then frees: steep, high, periodic.
        let run = memory_series(&mut d, Utc::now(), 15, 60 * 60, |s| {
            64_000.0 + 14_400.0 * (s % 180) as f64 / 180.0
        });
        assert!(run.iter().all(|(_, f)| f.is_none()), "{run:#?}");
    }

    #[test]
    fn too_few_samples_say_insufficient_data_and_fire_nothing() {
        let t0 = Utc::now();
        let mut zero = Thresholds::default();
        assert!(
            zero.pending_for
                .set("gpu.memory_exhaustion_forecast", Duration::ZERO)
        );
        let mut d = Detectors::new(zero);
        // 95 % and climbing 2,000 MiB a minute, but only 5 samples over 2 minutes.
        let run = memory_series(&mut d, t0, 30, 120, |s| {
            76_000.0 + 2_000.0 * s as f64 / 60.0
        });
        assert!(run.iter().all(|(_, f)| f.is_none()), "{run:#?}");
        let series = &d.gpu_memory["GPU-1"];
        let used = series.back().map_or(0.0, |(_, v)| *v);
        let f = forecast_memory(
            series,
            used,
            TOTAL_MIB as f64,
            &MemoryRule::from_thresholds(&d.thresholds),
        );
        assert_eq!(f.outlook, forecast::MemoryOutlook::InsufficientData);
        let e = f.evidence();
        let verdict = e["verdict"].as_str().unwrap_or_default();
        assert!(
            verdict.starts_with("insufficient data: 5 samples"),
            "{verdict}"
        );
        assert_eq!(e["samples"], 5);
    }

    #[test]
    fn an_idle_gpu_fires_after_its_for_and_clears_only_above_the_margin() {
        let t0 = Utc::now();
        let mut d = Detectors::default();
        let idle_at = |d: &mut Detectors, min: i64, util: f64| {
            let at = t0 + chrono::Duration::minutes(min);
            d.evaluate(&gpu_snap(at, 40_000.0, util, 60.0), at)
                .into_iter()
                .find(|s| s.kind == "gpu.idle")
        };
        assert!(idle_at(&mut d, 0, 2.0).is_none(), "pending");
        assert!(idle_at(&mut d, 9, 1.0).is_none(), "pending");
        let fired = idle_at(&mut d, 10, 3.0).unwrap_or_else(|| panic!("idle after 10 min"));
        assert_eq!(fired.first_seen, t0);
        // Flapping around 5 %: inside the 5-point margin, or back under, it keeps firing.
        for (min, util) in [(11, 6.0), (12, 4.0), (13, 9.5), (14, 7.0)] {
            let s = idle_at(&mut d, min, util);
            assert_eq!(s.map(|s| s.first_seen), Some(t0), "{util}% at {min} min");
        }
        // Busy again (above 10 %): clears after a minute of it.
        assert!(idle_at(&mut d, 15, 40.0).is_some(), "clearing");
        assert!(idle_at(&mut d, 16, 40.0).is_none(), "cleared");
    }

    #[test]
    fn throttling_waits_out_its_for_and_a_cooling_gpu_keeps_it_until_below_the_margin() {
        let t0 = Utc::now();
        let mut d = Detectors::default();
        let throttling_at = |d: &mut Detectors, secs: i64, temp: f64| {
            let at = t0 + chrono::Duration::seconds(secs);
            d.evaluate(&gpu_snap(at, 40_000.0, 90.0, temp), at)
                .into_iter()
                .any(|s| s.kind == "gpu.throttling")
        };
        assert!(!throttling_at(&mut d, 0, 90.0));
        assert!(!throttling_at(&mut d, 60, 88.0));
        assert!(throttling_at(&mut d, 120, 89.0), "hot for 2 min");
        assert!(throttling_at(&mut d, 180, 84.0), "inside the 5 °C margin");
        assert!(
            throttling_at(&mut d, 400, 83.0),
            "the margin does not clear it"
        );
        assert!(throttling_at(&mut d, 420, 70.0), "cool, clearing for 2 min");
        assert!(!throttling_at(&mut d, 540, 70.0), "cleared");
    }

    #[test]
    fn steady_gpu_memory_is_not_forecast() {
        let t0 = Utc::now();
        let mut d = Detectors::default();
        for i in 0..6 {
            let mut g = crate::model::gpu::GpuModel::new(
                "a",
                "n1",
                0,
                "GPU-1",
                t0 + chrono::Duration::seconds(60 * i),
            );
            g.memory_used_mib = Some(70_000);
            g.memory_total_mib = Some(81_559);
            let s = Snapshot {
                gpus: Arc::new(vec![g]),
                ..Snapshot::default()
            };
            assert!(
                d.evaluate(&s, t0 + chrono::Duration::seconds(60 * i))
                    .is_empty()
            );
        }
    }

    #[test]
    fn the_xid_table_knows_the_codes_that_need_a_drain() {
        for code in [48, 64, 74, 79, 95] {
            let x = xid_info(code).unwrap();
            assert_eq!(x.severity, Severity::Critical, "{code}");
            assert!(x.action.contains("drain"), "{code}");
        }
        assert_eq!(xid_info(94).map(|x| x.severity), Some(Severity::Warning));
        assert!(xid_info(1).is_none());
    }
}
