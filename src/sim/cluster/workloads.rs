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

impl ClusterState {
    /// The StatefulSet controller: pods `name-0` … `name-(replicas-1)`, each recreated under
    /// its own name when it goes, the highest ordinals removed first on scale-down.
    pub fn reconcile_statefulset(&mut self, ns: &str, name: &str) {
        let Some(sts) = self.store.get_value(Kind::StatefulSet, ns, name) else {
            return;
        };
        let want = sts["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        let uid = obj_str(&sts, "/metadata/uid").to_string();
        let template = sts["spec"]["template"].clone();
        for ordinal in 0..want {
            let pod = format!("{name}-{ordinal}");
            // A pod still terminating under the name is replaced once it has gone.
            if self.store.get(Kind::Pod, ns, &pod).is_none() {
                self.create_pod_named(&sts, &template, None, Some(pod));
            }
        }
        let surplus: Vec<String> = self
            .owned_pods(ns, &uid)
            .into_iter()
            .map(|((_, pod), _)| pod)
            .filter(|pod| {
                pod.rsplit_once('-')
                    .and_then(|(_, o)| o.parse::<usize>().ok())
                    .is_none_or(|o| o >= want)
            })
            .collect();
        for pod in surplus {
            self.delete_pod(ns, &pod, None);
        }
        self.update_controller_status(Kind::StatefulSet, ns, name);
    }

    /// A StatefulSet's, DaemonSet's or Job's status from its pods, as their controllers
    /// report it; written only when it changed.
    pub(super) fn update_controller_status(&mut self, kind: Kind, ns: &str, name: &str) {
        let Some(mut obj) = self.store.get_value(kind, ns, name) else {
            return;
        };
        let uid = obj_str(&obj, "/metadata/uid").to_string();
        let pods = self.owned_pods(ns, &uid);
        let count = |phase: &str| {
            self.store
                .owned_by(Kind::Pod, &uid)
                .filter(|((n, _), s)| n == ns && s.field("status.phase") == Some(phase))
                .count()
        };
        let ready = pods.iter().filter(|(_, s)| s.ready).count();
        let mut status = obj["status"].clone();
        if !status.is_object() {
            status = serde_json::json!({});
        }
        let generation = obj["metadata"]["generation"].clone();
        match kind {
            Kind::StatefulSet => {
                let revision = format!("{name}-{}", generation.as_u64().unwrap_or(1));
                for (k, v) in [
                    ("replicas", serde_json::json!(pods.len())),
                    ("readyReplicas", serde_json::json!(ready)),
                    ("currentReplicas", serde_json::json!(pods.len())),
                    ("updatedReplicas", serde_json::json!(pods.len())),
                    ("availableReplicas", serde_json::json!(ready)),
                    ("currentRevision", serde_json::json!(revision)),
                    ("updateRevision", serde_json::json!(revision)),
                    ("observedGeneration", generation),
                ] {
                    status[k] = v;
                }
            }
            Kind::DaemonSet => {
                let selector = obj["spec"]["template"]["spec"]["nodeSelector"].clone();
                let desired = self
                    .store
                    .iter_ns(Kind::Node, None)
                    .filter(|(_, node)| {
                        selector.as_object().is_none_or(|m| {
                            m.iter()
                                .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str())
                        })
                    })
                    .count();
                for (k, v) in [
                    ("desiredNumberScheduled", serde_json::json!(desired)),
                    ("currentNumberScheduled", serde_json::json!(pods.len())),
                    ("updatedNumberScheduled", serde_json::json!(pods.len())),
                    ("numberReady", serde_json::json!(ready)),
                    ("numberAvailable", serde_json::json!(ready)),
                    ("observedGeneration", generation),
                ] {
                    status[k] = v;
                }
            }
            Kind::Job => {
                status["active"] = serde_json::json!(pods.len());
                status["ready"] = serde_json::json!(ready);
                for (k, phase) in [("succeeded", "Succeeded"), ("failed", "Failed")] {
                    match count(phase) {
                        0 => {
                            if let Some(m) = status.as_object_mut() {
                                m.remove(k);
                            }
                        }
                        n => status[k] = serde_json::json!(n),
                    }
                }
            }
            _ => return,
        }
        if obj["status"] != status {
            obj["status"] = status;
            self.store.replace(kind, obj);
        }
    }
}
