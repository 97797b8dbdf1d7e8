//! The DaemonSet controller (a pod per node, recreated on the node it left) and the Job
//! controller with the training operator's PyTorchJob (lost pods replaced so the gang keeps its
//! size). Imports only the sim's own modules; nothing from the client side.

use super::{ClusterState, obj_str};
use crate::sim::resources::Kind;

impl ClusterState {
    /// A DaemonSet pod that went away is recreated on the same node while the node exists.
    pub(super) fn reconcile_daemonset_pod(&mut self, ns: &str, name: &str, node: &str) {
        if node.is_empty() || self.store.get(Kind::Node, "", node).is_none() {
            return;
        }
        let Some(ds) = self.store.get_value(Kind::DaemonSet, ns, name) else {
            return;
        };
        let uid = obj_str(&ds, "/metadata/uid").to_string();
        let present = self
            .owned_pods(ns, &uid)
            .iter()
            .any(|(_, s)| s.field("spec.nodeName") == Some(node));
        if !present {
            let template = ds["spec"]["template"].clone();
            self.create_pod_from(&ds, &template, Some(node));
        }
    }

    /// Jobs and training jobs replace pods that were deleted before finishing, so the gang
    /// keeps its size (as the Job controller and the training operator do).
    pub(super) fn reconcile_job(&mut self, kind: Kind, ns: &str, name: &str) {
        let Some(job) = self.store.get_value(kind, ns, name) else {
            return;
        };
        let uid = obj_str(&job, "/metadata/uid").to_string();
        let want = match kind {
            Kind::Job => job["spec"]["parallelism"].as_u64().unwrap_or(1),
            _ => {
                job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"]
                    .as_u64()
                    .unwrap_or(0)
                    + job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
                        .as_u64()
                        .unwrap_or(0)
            }
        } as usize;
        let succeeded = self
            .store
            .owned_by(Kind::Pod, &uid)
            .filter(|((n, _), s)| n == ns && s.field("status.phase") == Some("Succeeded"))
            .count();
        let live = self.owned_pods(ns, &uid);
        if live.len() + succeeded >= want {
            return;
        }
        let template = match kind {
            Kind::Job => job["spec"]["template"].clone(),
            _ => job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"].clone(),
        };
        for _ in live.len() + succeeded..want {
            self.create_pod_from(&job, &template, None);
        }
    }
}
