//! `node.gpu_unallocatable`: a Ready GPU node that offers fewer GPUs than it has. The NVIDIA
//! device plugin withdraws a GPU it finds unhealthy (after an XID 79, say) from the node's
//! allocatable, so the scheduler quietly stops placing work on it while the node stays Ready.
//! Imports model and config.

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::NodeReadiness;
use crate::model::signal::{Severity, Subject};

/// Ready nodes whose allocatable GPUs fell below their capacity.
#[derive(Debug, Default)]
pub struct GpuCapacityDetector {
    sightings: Sightings,
}

impl Detector for GpuCapacityDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["node.gpu_unallocatable"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for c in &snap.clusters {
            // A node that is not Ready is `node.not_ready`'s: all of its GPUs are lost then.
            let short = c.nodes.iter().filter(|n| {
                n.readiness == NodeReadiness::Ready && n.gpu_allocatable < n.gpu_capacity
            });
            for n in short {
                let subject = Subject {
                    cluster: c.name.clone(),
                    node: Some(n.name.clone()),
                    ..Subject::default()
                };
                let key = format!("node.gpu_unallocatable:{}", subject.describe());
                let first = self.sightings.seen(&key, cx.now);
                let withdrawn = n.gpu_capacity - n.gpu_allocatable;
                out.push(met(signal(
                    "node.gpu_unallocatable",
                    Severity::Warning,
                    subject,
                    format!(
                        "node {} offers {} of its {} GPUs: {withdrawn} withdrawn by the device plugin",
                        n.name, n.gpu_allocatable, n.gpu_capacity
                    ),
                    json!({"gpu_capacity": n.gpu_capacity, "gpu_allocatable": n.gpu_allocatable,
                        "gpus_withdrawn": withdrawn, "gpus_requested": n.gpu_requested, "node_pool": n.pool}),
                    first,
                    Some("find the GPU's XID or ECC errors (the GPUs view); drain the node and reset or replace the GPU"),
                )));
            }
        }
        self.sightings.forget_unseen();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, Utc};

    use crate::model::{ClusterSnapshot, NodeModel, NodeReadiness, Snapshot};
    use crate::signals::{Detectors, Thresholds};

    fn fleet(readiness: NodeReadiness, allocatable: u32) -> Snapshot {
        let node = NodeModel {
            name: "gpu-a-1".into(),
            readiness,
            pool: Some("h100".into()),
            gpu_capacity: 8,
            gpu_allocatable: allocatable,
            gpu_requested: 4,
            ..NodeModel::default()
        };
        Snapshot {
            clusters: vec![Arc::new(ClusterSnapshot {
                name: "a".into(),
                nodes: vec![node],
                ..ClusterSnapshot::default()
            })],
            ..Snapshot::default()
        }
    }

    fn kinds(d: &mut Detectors, snap: &Snapshot, at: chrono::DateTime<Utc>) -> Vec<String> {
        d.evaluate(snap, at).into_iter().map(|s| s.kind).collect()
    }

    #[test]
    fn a_withdrawn_gpu_fires_after_its_for_and_a_full_node_is_quiet() {
        let t0 = Utc::now();
        let mut d = Detectors::new(Thresholds::default());
        let short = fleet(NodeReadiness::Ready, 7);
        assert!(kinds(&mut d, &short, t0).is_empty(), "waits out its 5m");
        let fired = d.evaluate(&short, t0 + Duration::minutes(6));
        assert_eq!(fired.len(), 1, "{fired:#?}");
        assert_eq!(fired[0].kind, "node.gpu_unallocatable");
        assert_eq!(fired[0].evidence["gpus_withdrawn"], 1);
        // One GPU fault with the node's XID or ECC signals (`store::incident_family`).
        let spec = crate::model::catalog::signal_kind(&fired[0].kind);
        assert_eq!(spec.map(|k| k.family), Some("gpu.fault"));

        let mut d = Detectors::new(Thresholds::default());
        let full = fleet(NodeReadiness::Ready, 8);
        assert!(kinds(&mut d, &full, t0).is_empty());
        assert!(kinds(&mut d, &full, t0 + Duration::minutes(6)).is_empty());
    }

    #[test]
    fn a_node_that_is_not_ready_is_left_to_node_not_ready() {
        let t0 = Utc::now();
        let mut d = Detectors::new(Thresholds::default());
        let down = fleet(NodeReadiness::NotReady, 0);
        let later = kinds(&mut d, &down, t0)
            .into_iter()
            .chain(kinds(&mut d, &down, t0 + Duration::minutes(6)))
            .collect::<Vec<_>>();
        assert!(
            !later.iter().any(|k| k == "node.gpu_unallocatable"),
            "{later:?}"
        );
    }
}
