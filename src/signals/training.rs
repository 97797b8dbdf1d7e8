//! The training-gang detectors: `training.stalled` (every GPU of a running gang idle) and
//! `training.straggler` (one rank's GPUs far below the rest of its gang), over the gangs `state`
//! collects from the Kubeflow training operator's pods (`training.kubeflow.org/job-name`) joined
//! with the GPU sources' per-GPU utilisation (each GPU's holder pod, DCGM's pod-mapping labels),
//! smoothed over the last readings of `state`'s GPU history. One signal per job, so a fault is
//! one incident whichever rank shows it. Imports model and config.

use std::collections::BTreeMap;

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::gpu::xid_info;
use super::patience::Observation;
use crate::model::gpu::GpuModel;
use crate::model::signal::{Severity, Subject};
use crate::model::{ClusterSnapshot, GangJob, GangMember, Snapshot};

/// Under this utilisation (%) a gang's GPU does no work (the catalog's "under 5 %").
pub const STALLED_PCT: f64 = 5.0;
/// A rank whose GPUs average under this share of the gang's median rank is a straggler.
pub const STRAGGLER_SHARE: f64 = 0.5;
/// Below this median utilisation (%) a gang is too quiet for one rank to be measured against it
/// (a stalled or idling gang is `training.stalled`'s matter, not a straggler).
pub const STRAGGLER_MIN_MEDIAN_PCT: f64 = 20.0;
/// Each GPU's utilisation is the mean of its last [`SMOOTHING_READINGS`] readings no older than
/// this, so one low sample (a step's all-reduce, a data-loader pause) is not a straggler and one
/// high one does not hide a stall.
pub const SMOOTHING: std::time::Duration = std::time::Duration::from_secs(120);
/// How many readings the mean takes at most (four DCGM scrapes at its 30 s default: 2 minutes).
pub const SMOOTHING_READINGS: usize = 4;

/// Training gangs that stopped or are held back by one rank.
#[derive(Debug, Default)]
pub struct TrainingDetector {
    sightings: Sightings,
}

impl Detector for TrainingDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["training.stalled", "training.straggler"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        if snap.clusters.iter().all(|c| c.gang_jobs.is_empty()) {
            return;
        }
        let by_holder = gpus_by_holder(snap);
        for c in &snap.clusters {
            for job in &c.gang_jobs {
                if let Some(gang) = Gang::measure(c, job, &by_holder, cx) {
                    self.judge(c, job, &gang, snap, cx, out);
                }
            }
        }
        self.sightings.forget_unseen();
    }
}

/// The GPUs each gang rank holds, by (cluster, namespace, pod). Only ranks' GPUs are kept: a
/// fleet of 40,000 GPUs has a few gangs, and this runs on every evaluation.
fn gpus_by_holder(snap: &Snapshot) -> BTreeMap<(&str, &str, &str), Vec<&GpuModel>> {
    let mut map: BTreeMap<(&str, &str, &str), Vec<&GpuModel>> = BTreeMap::new();
    for c in &snap.clusters {
        for job in &c.gang_jobs {
            for m in &job.members {
                map.insert(
                    (c.name.as_str(), job.namespace.as_str(), m.pod.as_str()),
                    Vec::new(),
                );
            }
        }
    }
    for g in snap.gpus.iter() {
        if let Some(h) = &g.holder
            && let Some(gpus) =
                map.get_mut(&(g.cluster.as_str(), h.namespace.as_str(), h.pod.as_str()))
        {
            gpus.push(g);
        }
    }
    map
}

/// One rank of a running gang and its GPUs' smoothed utilisation.
struct Rank<'a> {
    member: &'a GangMember,
    gpus: Vec<&'a GpuModel>,
    /// Mean utilisation over its GPUs (%).
    mean_pct: f64,
    /// Its busiest GPU (%).
    max_pct: f64,
}

/// A running gang whose every rank's GPUs are reported.
struct Gang<'a> {
    ranks: Vec<Rank<'a>>,
    /// The median of the ranks' means (%).
    median_pct: f64,
}

impl<'a> Gang<'a> {
    /// `None` for a gang that is not running as a whole (starting: a rank not yet Running and
    /// Ready; finished: a rank Succeeded or Failed), that says it is checkpointing, or whose GPUs
    /// the GPU sources do not (yet) report: nothing can be said of it.
    fn measure(
        c: &ClusterSnapshot,
        job: &'a GangJob,
        by_holder: &BTreeMap<(&str, &str, &str), Vec<&'a GpuModel>>,
        cx: &Context<'_>,
    ) -> Option<Gang<'a>> {
        if job.members.is_empty()
            || job.members.iter().any(|m| m.checkpointing)
            || !job.members.iter().all(|m| m.phase == "Running" && m.ready)
        {
            return None;
        }
        let mut ranks = Vec::new();
        for m in job.members.iter().filter(|m| m.gpus > 0) {
            let gpus = by_holder
                .get(&(c.name.as_str(), job.namespace.as_str(), m.pod.as_str()))
                .cloned()
                .unwrap_or_default();
            let readings: Vec<f64> = gpus.iter().filter_map(|g| smoothed(g, cx)).collect();
            if readings.is_empty() {
                return None;
            }
            let mean_pct = readings.iter().sum::<f64>() / readings.len() as f64;
            let max_pct = readings.iter().copied().fold(0.0, f64::max);
            ranks.push(Rank {
                member: m,
                gpus,
                mean_pct,
                max_pct,
            });
        }
        if ranks.is_empty() {
            return None;
        }
        let mut means: Vec<f64> = ranks.iter().map(|r| r.mean_pct).collect();
        means.sort_by(f64::total_cmp);
        let median_pct = if means.len() % 2 == 1 {
            means[means.len() / 2]
        } else {
            (means[means.len() / 2 - 1] + means[means.len() / 2]) / 2.0
        };
        Some(Gang { ranks, median_pct })
    }
}

/// A GPU's utilisation averaged over its last readings (its current reading when the history
/// holds none).
fn smoothed(g: &GpuModel, cx: &Context<'_>) -> Option<f64> {
    let since = cx.now - chrono::Duration::from_std(SMOOTHING).unwrap_or_default();
    let (sum, n) = cx
        .gpu_history
        .series(&g.uuid)
        .into_iter()
        .flat_map(|series| series.iter().rev())
        .take_while(|s| s.at >= since)
        .take(SMOOTHING_READINGS)
        .filter_map(|s| s.utilization_pct())
        .fold((0.0, 0usize), |(sum, n), u| (sum + u, n + 1));
    if n > 0 {
        Some(sum / n as f64)
    } else {
        g.utilization_pct
    }
}

/// The subject every signal of one job shares (so its incident is the job's, whichever rank or
/// node shows it): the cluster, the namespace and `trainingjob/<name>`.
fn subject_of(c: &ClusterSnapshot, job: &GangJob) -> Subject {
    Subject {
        cluster: c.name.clone(),
        namespace: Some(job.namespace.clone()),
        object: Some(format!("trainingjob/{}", job.name)),
        ..Subject::default()
    }
}

/// What the GPUs of `node` report that explains a slow rank: XIDs and uncorrectable ECC errors
/// one GPU at a time, slowdowns and heat each as one line for the GPUs that share them (a hot
/// node's eight GPUs are one cause).
fn node_faults(snap: &Snapshot, cluster: &str, node: &str, cx: &Context<'_>) -> Vec<String> {
    let mut faults = Vec::new();
    let mut slowed: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut hot: Vec<(u32, f64)> = Vec::new();
    for g in snap
        .gpus
        .iter()
        .filter(|g| g.cluster == cluster && g.node == node)
    {
        if let Some(code) = g.xid_last {
            let meaning = xid_info(code).map_or("see NVIDIA's XID catalogue", |i| i.meaning);
            faults.push(format!("gpu{}: XID {code} ({meaning})", g.index));
        }
        if g.ecc_dbe_volatile.unwrap_or(0) > 0
            || g.remap_failure == Some(true)
            || g.remapped_rows_uncorrectable.unwrap_or(0) > 0
        {
            faults.push(format!(
                "gpu{}: uncorrectable ECC errors ({} double-bit)",
                g.index,
                g.ecc_dbe_volatile.unwrap_or(0)
            ));
        }
        let slowdown: Vec<String> = g
            .throttle_reasons
            .iter()
            .flatten()
            .filter(|r| r.is_slowdown())
            .map(|r| format!("{r:?}"))
            .collect();
        if !slowdown.is_empty() {
            slowed.entry(slowdown.join(", ")).or_default().push(g.index);
        } else if let Some(t) = g.temperature_c.filter(|t| *t >= cx.thresholds.gpu_hot_c) {
            hot.push((g.index, t));
        }
    }
    let names = |indices: &[u32]| {
        indices
            .iter()
            .map(|i| format!("gpu{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (reasons, indices) in &slowed {
        faults.push(format!("{} slowed by {reasons}", names(indices)));
    }
    if !hot.is_empty() {
        let low = hot.iter().map(|(_, t)| *t).fold(f64::INFINITY, f64::min);
        let high = hot
            .iter()
            .map(|(_, t)| *t)
            .fold(f64::NEG_INFINITY, f64::max);
        let indices: Vec<u32> = hot.iter().map(|(i, _)| *i).collect();
        let range = if high - low < 0.5 {
            format!("{high:.0} °C")
        } else {
            format!("{low:.0}-{high:.0} °C")
        };
        faults.push(format!(
            "{} at {range}, past {:.0} °C",
            names(&indices),
            cx.thresholds.gpu_hot_c
        ));
    }
    faults
}

impl TrainingDetector {
    fn judge(
        &mut self,
        c: &ClusterSnapshot,
        job: &GangJob,
        gang: &Gang<'_>,
        snap: &Snapshot,
        cx: &Context<'_>,
        out: &mut Vec<Observation>,
    ) {
        let gpus: usize = gang.ranks.iter().map(|r| r.gpus.len()).sum();
        if gang.ranks.iter().all(|r| r.max_pct < STALLED_PCT) {
            let key = format!("training.stalled:{}/{}/{}", c.name, job.namespace, job.name);
            let first = self.sightings.seen(&key, cx.now);
            out.push(met(signal(
                "training.stalled",
                Severity::Critical,
                subject_of(c, job),
                format!(
                    "training job {}/{} stalled: all {gpus} GPUs of its {} ranks under {STALLED_PCT:.0} % utilisation while every rank runs",
                    job.namespace,
                    job.name,
                    gang.ranks.len()
                ),
                json!({
                    "job": job.name,
                    "namespace": job.namespace,
                    "ranks": gang.ranks.len(),
                    "gpus": gpus,
                    "max_utilization_pct": gang.ranks.iter().map(|r| r.max_pct).fold(0.0, f64::max),
                }),
                first,
                Some("look at rank 0's logs (a hung collective, a dead data loader, a full disk); restart the gang (restart_gang) once the cause is known"),
            )));
            return;
        }
        if gang.ranks.len() < 2 || gang.median_pct < STRAGGLER_MIN_MEDIAN_PCT {
            return;
        }
        let Some(slow) = gang
            .ranks
            .iter()
            .filter(|r| r.mean_pct < gang.median_pct * STRAGGLER_SHARE)
            .min_by(|a, b| a.mean_pct.total_cmp(&b.mean_pct))
        else {
            return;
        };
        let key = format!(
            "training.straggler:{}/{}/{}",
            c.name, job.namespace, job.name
        );
        let first = self.sightings.seen(&key, cx.now);
        let rank = slow.member.rank();
        let node = slow.member.node.clone().unwrap_or_default();
        let faults = if node.is_empty() {
            Vec::new()
        } else {
            node_faults(snap, &c.name, &node, cx)
        };
        let cause = if faults.is_empty() {
            String::from("no GPU fault reported there")
        } else {
            faults.join("; ")
        };
        let action = if faults.is_empty() {
            "look at the rank's logs and node (data loading, network, a noisy neighbour); restart the gang (restart_gang) if it persists"
        } else {
            "cordon the rank's node (its GPUs report a fault), then restart the gang (restart_gang) so it is rescheduled elsewhere"
        };
        out.push(met(signal(
            "training.straggler",
            Severity::Warning,
            subject_of(c, job),
            format!(
                "training job {}/{}: rank {rank} ({}) on {node} at {:.0} % GPU utilisation against the gang's median {:.0} %: {cause}",
                job.namespace,
                job.name,
                slow.member.pod,
                slow.mean_pct,
                gang.median_pct
            ),
            json!({
                "job": job.name,
                "namespace": job.namespace,
                "rank": rank,
                "pod": slow.member.pod,
                "node": node,
                "rank_utilization_pct": (slow.mean_pct * 10.0).round() / 10.0,
                "median_utilization_pct": (gang.median_pct * 10.0).round() / 10.0,
                "node_gpu_faults": faults,
                "node_has_gpu_fault": !faults.is_empty(),
            }),
            first,
            Some(action),
        )));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::config::Thresholds;
    use crate::model::gpu::PodRef;
    use crate::model::gpu_history::GpuHistory;
    use crate::signals::patience::Patience;

    fn member(i: u32, node: &str) -> GangMember {
        GangMember {
            pod: format!("llm-worker-{i}"),
            node: Some(node.into()),
            phase: "Running".into(),
            ready: true,
            gpus: 2,
            replica_type: Some("Worker".into()),
            replica_index: Some(i),
            checkpointing: false,
        }
    }

    /// Four ranks on four nodes, two GPUs each, at `util[rank]` %.
    fn fleet(util: [f64; 4]) -> Snapshot {
        let now = Utc
            .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let job = GangJob {
            namespace: "training".into(),
            name: "llm".into(),
            members: (0..4).map(|i| member(i, &format!("node-{i}"))).collect(),
        };
        let mut gpus = Vec::new();
        for (i, u) in util.iter().enumerate() {
            for idx in 0..2 {
                let mut g = GpuModel::new(
                    "prod",
                    &format!("node-{i}"),
                    idx,
                    &format!("GPU-{i}-{idx}"),
                    now,
                );
                g.utilization_pct = Some(*u);
                g.holder = Some(PodRef {
                    namespace: "training".into(),
                    pod: format!("llm-worker-{i}"),
                    container: None,
                });
                gpus.push(g);
            }
        }
        Snapshot {
            taken_at: Some(now),
            clusters: vec![Arc::new(ClusterSnapshot {
                name: "prod".into(),
                gang_jobs: vec![job],
                ..ClusterSnapshot::default()
            })],
            gpus: Arc::new(gpus),
            ..Snapshot::default()
        }
    }

    fn run(snap: &Snapshot) -> Vec<crate::model::signal::Signal> {
        let thresholds = Thresholds::default();
        let patience = Patience::default();
        let history = GpuHistory::new(SMOOTHING);
        let cx = Context {
            now: snap.taken_at.unwrap_or_default(),
            thresholds: &thresholds,
            patience: &patience,
            gpu_history: &history,
        };
        let mut out = Vec::new();
        TrainingDetector::default().observe(Input::Fleet(snap), &cx, &mut out);
        out.into_iter().map(|o| o.signal).collect()
    }

    #[test]
    fn a_healthy_gang_raises_nothing() {
        assert!(run(&fleet([71.0, 80.0, 64.0, 77.0])).is_empty());
    }

    #[test]
    fn a_gang_whose_every_gpu_is_idle_is_stalled_once() {
        let s = run(&fleet([0.0, 1.0, 0.0, 2.0]));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].kind, "training.stalled");
        assert_eq!(s[0].subject.object.as_deref(), Some("trainingjob/llm"));
        assert_eq!(s[0].evidence["gpus"], 8);
    }

    #[test]
    fn a_starting_checkpointing_or_finished_gang_is_not_stalled() {
        let mut starting = fleet([0.0; 4]);
        Arc::make_mut(&mut starting.clusters[0]).gang_jobs[0].members[2].ready = false;
        assert!(run(&starting).is_empty());
        let mut checkpointing = fleet([0.0; 4]);
        Arc::make_mut(&mut checkpointing.clusters[0]).gang_jobs[0].members[0].checkpointing = true;
        assert!(run(&checkpointing).is_empty());
        let mut finished = fleet([0.0; 4]);
        for m in &mut Arc::make_mut(&mut finished.clusters[0]).gang_jobs[0].members {
            m.phase = "Succeeded".into();
            m.ready = false;
        }
        assert!(run(&finished).is_empty());
    }

    #[test]
    fn a_straggler_names_its_rank_node_and_the_gpu_fault_there() {
        let s = run(&fleet([75.0, 78.0, 14.0, 80.0]));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].kind, "training.straggler");
        assert_eq!(s[0].evidence["rank"], "worker-2");
        assert_eq!(s[0].evidence["node"], "node-2");
        assert_eq!(s[0].evidence["node_has_gpu_fault"], false);
        assert!(s[0].summary.contains("worker-2"), "{}", s[0].summary);

        let mut faulty = fleet([75.0, 78.0, 14.0, 80.0]);
        let gpus = Arc::make_mut(&mut faulty.gpus);
        if let Some(g) = gpus.iter_mut().find(|g| g.node == "node-2" && g.index == 1) {
            g.xid_last = Some(79);
        }
        let s = run(&faulty);
        assert_eq!(s[0].evidence["node_has_gpu_fault"], true);
        assert!(s[0].summary.contains("XID 79"), "{}", s[0].summary);
        assert!(s[0].action.as_deref().unwrap_or("").contains("cordon"));

        let mut hot = fleet([75.0, 78.0, 14.0, 80.0]);
        for g in Arc::make_mut(&mut hot.gpus)
            .iter_mut()
            .filter(|g| g.node == "node-2")
        {
            g.temperature_c = Some(92.0);
        }
        let s = run(&hot);
        assert_eq!(
            s[0].evidence["node_gpu_faults"],
            serde_json::json!(["gpu0, gpu1 at 92 °C, past 87 °C"])
        );
    }

    #[test]
    fn one_signal_per_job_whichever_rank_is_slow() {
        let a = run(&fleet([75.0, 10.0, 70.0, 80.0]));
        let b = run(&fleet([75.0, 70.0, 10.0, 80.0]));
        assert_eq!(a[0].dedup_key, b[0].dedup_key);
        assert_eq!(a[0].subject, b[0].subject);
        assert_eq!(
            a[0].subject.node, None,
            "a node would group the incident by it"
        );
    }
}
