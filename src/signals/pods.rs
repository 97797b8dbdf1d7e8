//! `pod.pending_gpu`, `pod.crash_loop` and `pod.crash_loop_after_rollout`: GPU work waiting to
//! be scheduled, and crash-looping pods, told apart by whether their Deployment rolled out
//! lately. Imports model and config.

use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::signal::{Severity, Subject};
use crate::model::{ClusterSnapshot, RolloutState};

/// Pending GPU pods and crash loops, with the memory of when each Deployment's revision changed.
#[derive(Debug, Default)]
pub struct PodDetector {
    sightings: Sightings,
    /// Deployment → (revision, when it last changed while watched).
    revisions: HashMap<String, (Option<u64>, Option<DateTime<Utc>>)>,
}

impl Detector for PodDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &[
            "pod.pending_gpu",
            "pod.crash_loop",
            "pod.crash_loop_after_rollout",
        ]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for c in &snap.clusters {
            self.cluster(c, cx.now, out);
        }
        self.sightings.forget_unseen();
    }
}

impl PodDetector {
    fn cluster(&mut self, c: &ClusterSnapshot, now: DateTime<Utc>, out: &mut Vec<Observation>) {
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
            let first = self.sightings.seen(&key, now);
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
