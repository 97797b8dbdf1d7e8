//! The GPU detectors: `gpu.xid`, `gpu.ecc`, `gpu.throttling`, `gpu.memory_exhaustion_forecast`
//! and `gpu.idle`, in one pass over the fleet's GPUs (40,000 of them: one pass, and a signal's
//! words built only for a GPU that shows one), plus NVIDIA's XID table. The memory history the
//! forecast fits is `state`'s, on the snapshot. Imports model and config.

use std::time::Duration;

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, signal};
use super::forecast::{MemoryRule, forecast_memory};
use super::patience::{Condition, Observation};
use crate::model::gpu::GpuModel;
use crate::model::signal::{Severity, Signal, Subject};

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

/// A GPU's hardware faults, heat, memory trend and idleness.
#[derive(Debug, Default)]
pub struct GpuDetector {
    sightings: Sightings,
}

impl Detector for GpuDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &[
            "gpu.xid",
            "gpu.ecc",
            "gpu.throttling",
            "gpu.memory_exhaustion_forecast",
            "gpu.idle",
        ]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for g in snap.gpus.iter() {
            let mut one = OneGpu {
                g,
                cx,
                sightings: &mut self.sightings,
                out: &mut *out,
            };
            one.xid();
            one.ecc();
            one.throttling();
            one.memory_forecast();
            one.idle();
        }
        self.sightings.forget_unseen();
    }
}

/// The subject of a GPU's signal. Built only for a GPU that shows one: most of 40,000 GPUs
/// show nothing.
fn subject_of(g: &GpuModel) -> Subject {
    Subject {
        cluster: g.cluster.clone(),
        node: Some(g.node.clone()).filter(|n| !n.is_empty()),
        gpu: Some(format!("gpu{} ({})", g.index, g.uuid)),
        namespace: g.holder.as_ref().map(|h| h.namespace.clone()),
        object: g.holder.as_ref().map(|h| format!("pod/{}", h.pod)),
        ..Subject::default()
    }
}

/// The pod holding a GPU, as `namespace/pod`.
fn holder_of(g: &GpuModel) -> Option<String> {
    g.holder
        .as_ref()
        .map(|h| format!("{}/{}", h.namespace, h.pod))
}

/// One GPU looked at by each of the GPU kinds in turn.
struct OneGpu<'a, 'c> {
    g: &'a GpuModel,
    cx: &'a Context<'c>,
    sightings: &'a mut Sightings,
    out: &'a mut Vec<Observation>,
}

impl OneGpu<'_, '_> {
    /// Reports `kind` on this GPU; `describe` builds its words only if the signal may show.
    fn emit(
        &mut self,
        condition: Condition,
        kind: &str,
        severity: Severity,
        describe: &dyn Fn() -> (String, serde_json::Value),
        action: Option<&str>,
    ) {
        let (g, now) = (self.g, self.cx.now);
        // Dedup per GPU, not per holder: the pod may change while the fault stays.
        let key = format!("{kind}:{}/{}/{}", g.cluster, g.node, g.uuid);
        let first = match condition {
            Condition::Met => self.sightings.seen(&key, now),
            Condition::WithinMargin => now,
        };
        // A condition still waiting out its `for` is never shown: its key is all patience
        // needs (thousands of idle GPUs wait ten minutes; their summaries are not built).
        let waiting = condition == Condition::Met
            && self
                .cx
                .patience
                .waits(&key, now, self.cx.thresholds.for_kind(kind));
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
            signal(
                kind,
                severity,
                subject_of(g),
                summary,
                evidence,
                first,
                action,
            )
        };
        s.dedup_key = key;
        self.out.push(Observation {
            signal: s,
            condition,
        });
    }

    fn xid(&mut self) {
        let g = self.g;
        let holder = || holder_of(g);
        if let Some(code) = g.xid_last {
            let info = xid_info(code);
            self.emit(
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
    }

    fn ecc(&mut self) {
        let g = self.g;
        let dbe = g.ecc_dbe_volatile.unwrap_or(0);
        if dbe > 0
            || g.remap_failure == Some(true)
            || g.remapped_rows_uncorrectable.unwrap_or(0) > 0
        {
            self.emit(
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
    }

    fn throttling(&mut self) {
        let (g, t) = (self.g, self.cx.thresholds);
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
            self.emit(
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
    }

    fn memory_forecast(&mut self) {
        let (g, t) = (self.g, self.cx.thresholds);
        let holder = || holder_of(g);
        if let (Some(used), Some(total)) = (
            g.memory_used_mib,
            g.memory_total_mib
                .or_else(|| Some(g.memory_used_mib? + g.memory_free_mib?)),
        ) {
            // Most GPUs are under the high-water mark, where the rule cannot fire: skip the fit
            // (the forecast would answer "below high" after fitting 40,000 windows).
            let high = total as f64 * t.gpu_memory_high_pct / 100.0;
            // A reading newer than this snapshot's may already be kept: fit up to this one.
            let series = (used as f64 >= high)
                .then(|| self.cx.gpu_history.series(&g.uuid))
                .flatten()
                .filter(|s| !s.is_empty());
            let f = series.map(|series| {
                let readings = series
                    .iter()
                    .filter(|s| s.at <= g.sampled_at)
                    .filter_map(|s| Some((s.at, s.memory_used_mib()?)));
                forecast_memory(
                    readings,
                    used as f64,
                    total as f64,
                    &MemoryRule::from_thresholds(t),
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
                self.emit(
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
    }

    fn idle(&mut self) {
        let (g, t) = (self.g, self.cx.thresholds);
        let holder = || holder_of(g);
        let idle = if g.is_idle_allocated(t.idle_gpu_pct) {
            Some(Condition::Met)
        } else {
            g.is_idle_allocated(t.idle_gpu_pct + t.idle_clear_margin_pct)
                .then_some(Condition::WithinMargin)
        };
        if let Some(condition) = idle {
            self.emit(
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
}
