//! `node.not_ready` and `node.interruption_notice`: a node that stopped being Ready, and a spot
//! or disrupted node whose instance is about to go. Imports model and config.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::signal::{Severity, Subject};
use crate::model::{ClusterSnapshot, NodeReadiness};

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

/// Nodes NotReady past `node_not_ready_after`, and nodes tainted with an interruption notice.
#[derive(Debug, Default)]
pub struct NodeDetector {
    sightings: Sightings,
}

impl Detector for NodeDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["node.not_ready", "node.interruption_notice"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for c in &snap.clusters {
            self.cluster(c, cx, out);
        }
        self.sightings.forget_unseen();
    }
}

impl NodeDetector {
    fn cluster(&mut self, c: &ClusterSnapshot, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let (t, now) = (cx.thresholds, cx.now);
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
                let since = n
                    .readiness_since
                    .unwrap_or_else(|| self.sightings.seen(&key, now));
                let for_secs = (now - since).num_seconds().max(0);
                self.sightings.seen(&key, now);
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
                let first_sight = self.sightings.seen(&key, now);
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
}
