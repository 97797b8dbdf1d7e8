//! Detectors: types implementing [`Detector`] over the snapshot (or the cost report) and their
//! own memory, one file per detector or family (e.g. [`nodes`], [`gpu`], [`endpoints`]),
//! registered in [`registered`]; each raises the kinds the signal catalog
//! (`model::catalog`) declares, with a stable kind, severity, subject, evidence and dedup key.
//! [`Detectors`] runs them and applies every kind's `for` and `clear_after` ([`patience`]).
//! SLO burn windows live in [`slo`], histogram drift in [`drift`], the GPU memory forecast in
//! [`forecast`]. Thresholds come from config. Imports model and config, never the store.

pub mod airflow;
pub mod budget;
pub mod detector;
pub mod drift;
pub mod endpoints;
pub mod forecast;
pub mod gpu;
pub mod gpu_capacity;
pub mod nodes;
pub mod patience;
pub mod pods;
pub mod slo;
pub mod sources;
pub mod spark;
pub mod training;
pub mod vector;

use chrono::{DateTime, Utc};

pub use crate::config::Thresholds;
use crate::model::Snapshot;
use crate::model::cost::CostReport;
use crate::model::gpu_history::GpuHistory;
use crate::model::signal::Signal;
pub use detector::{Context, Detector, Input};
pub use gpu::{XID_TABLE, XidInfo, xid_info};
use patience::{Observation, Patience, Timing};

/// Every detector, in the order they look. Adding a detector is its file, its catalog entry
/// and one line here.
pub fn registered() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(nodes::NodeDetector::default()),
        Box::new(gpu_capacity::GpuCapacityDetector::default()),
        Box::new(pods::PodDetector::default()),
        Box::new(endpoints::EndpointDetector::default()),
        Box::new(sources::SourceDetector::default()),
        Box::new(gpu::GpuDetector::default()),
        Box::new(training::TrainingDetector::default()),
        Box::new(budget::BudgetDetector::default()),
        Box::new(vector::VectorDetector::default()),
        Box::new(airflow::AirflowDetector::default()),
        Box::new(spark::SparkDetector::default()),
    ]
}

/// The detectors and where each signal stands between pending, firing and clearing (the GPU
/// history they read is the snapshot's, kept by `state`).
#[derive(Debug)]
pub struct Detectors {
    /// Shared, so a detector pass holds it without copying it per node and GPU.
    pub thresholds: std::sync::Arc<Thresholds>,
    detectors: Vec<Box<dyn Detector>>,
    patience: Patience,
}

impl Default for Detectors {
    fn default() -> Self {
        Self::new(Thresholds::default())
    }
}

/// Budget signals come from `evaluate_cost`, on its own schedule.
fn is_budget_key(key: &str) -> bool {
    key.starts_with("budget.")
}

impl Detectors {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds: std::sync::Arc::new(thresholds),
            detectors: registered(),
            patience: Patience::default(),
        }
    }

    fn timing(&self, kind: &str) -> Timing {
        Timing {
            pending_for: self.thresholds.for_kind(kind),
            clear_after: self.thresholds.clear_after_kind(kind),
        }
    }

    /// Shows `input` to every detector; answers their observations.
    fn observe(
        &mut self,
        input: Input<'_>,
        gpu_history: &GpuHistory,
        now: DateTime<Utc>,
    ) -> Vec<Observation> {
        let cx = Context {
            now,
            thresholds: &self.thresholds,
            patience: &self.patience,
            gpu_history,
        };
        let mut out = Vec::new();
        for detector in &mut self.detectors {
            detector.observe(input, &cx, &mut out);
        }
        out
    }

    /// Evaluates every detector on `snap`; answers the signals that fire (their conditions held
    /// for their kind's `for`, or have not yet been clear for its `clear_after`), ordered by
    /// severity, then subject.
    pub fn evaluate(&mut self, snap: &Snapshot, now: DateTime<Utc>) -> Vec<Signal> {
        let observed = self.observe(Input::Fleet(snap), &snap.gpu_history.read(), now);
        let mut patience = std::mem::take(&mut self.patience);
        let mut out = patience.advance(
            observed,
            now,
            |k| !is_budget_key(k),
            |kind| self.timing(kind),
        );
        self.patience = patience;
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        out
    }

    /// Budget signals from a cost report: the month-end forecast over the budget.
    pub fn evaluate_cost(&mut self, report: &CostReport, now: DateTime<Utc>) -> Vec<Signal> {
        let observed = self.observe(Input::Cost(report), &GpuHistory::default(), now);
        let mut patience = std::mem::take(&mut self.patience);
        let out = patience.advance(observed, now, is_budget_key, |kind| self.timing(kind));
        self.patience = patience;
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::time::Duration;

    use super::forecast::{MemoryRule, forecast_memory};
    use super::*;
    use crate::model::gpu_history::SharedGpuHistory;
    use crate::model::signal::Severity;
    use crate::model::{
        ClusterSnapshot, CrashLoopingPod, DeploymentModel, NodeModel, NodeReadiness, PendingPod,
        RolloutState, Taint,
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
            taints,
            capacity_type: crate::model::CapacityType::Spot,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            gpu_requested: 4,
            ..NodeModel::default()
        }
    }

    fn cluster(nodes: Vec<NodeModel>) -> ClusterSnapshot {
        ClusterSnapshot {
            name: "a".into(),
            nodes,
            ..ClusterSnapshot::default()
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
        memory_series_in(&SharedGpuHistory::default(), d, t0, every, until, used)
    }

    /// As [`memory_series`], with each reading kept in `history` as `state` keeps it.
    fn memory_series_in(
        history: &SharedGpuHistory,
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
                let mut snap = gpu_snap(at, used(secs), 90.0, 60.0);
                history.write().record(&snap.gpus);
                snap.gpu_history = history.clone();
                let forecast = d
                    .evaluate(&snap, at)
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
        let history = SharedGpuHistory::default();
        let run = memory_series_in(&history, &mut d, t0, 30, 120, |s| {
            76_000.0 + 2_000.0 * s as f64 / 60.0
        });
        assert!(run.iter().all(|(_, f)| f.is_none()), "{run:#?}");
        let series = history.read().memory("GPU-1");
        let used = series.last().map_or(0.0, |(_, v)| *v);
        let f = forecast_memory(
            series.iter().copied(),
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
    fn every_catalog_kind_has_exactly_one_detector_and_every_detector_kind_is_in_the_catalog() {
        use crate::model::catalog::{SIGNAL_CATALOG, signal_kind};
        let detectors = registered();
        for spec in SIGNAL_CATALOG {
            let raising: Vec<_> = detectors
                .iter()
                .filter(|d| d.kinds().contains(&spec.name))
                .collect();
            assert_eq!(
                raising.len(),
                1,
                "{} is raised by {} registered detectors ({raising:?}); add its detector to \
                 signals::registered",
                spec.name,
                raising.len()
            );
        }
        for d in &detectors {
            for kind in d.kinds() {
                assert!(
                    signal_kind(kind).is_some(),
                    "{d:?} raises {kind}, which src/model/catalog.rs does not declare"
                );
            }
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
