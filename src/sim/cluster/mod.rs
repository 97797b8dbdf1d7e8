//! One simulated cluster's control plane: the shared state (`ClusterState`, its timers and
//! faults), the helpers every controller uses (events, owner references, conditions, pods made
//! from a template) and `tick`, which drives the controllers in the sibling files: the
//! scheduler, the kubelet, the deployment and replica set controllers, the DaemonSet and Job
//! controllers, disruption budgets and eviction, the garbage collector, the node lifecycle
//! controller, KServe and the Spark operator. Everything runs under the cluster's one lock, driven by API calls
//! and by `tick`. Imports nothing outside the sim.

mod deployment;
mod disruption;
mod garbage_collector;
mod kserve;
mod kubelet;
mod node_lifecycle;
mod scheduler;
pub mod spark;
mod workloads;

pub use deployment::{template_hash, template_sans_hash};
pub use disruption::EvictionOutcome;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::resources::Kind;
use super::store::{ClusterStore, Key, Stored, timestamp};

/// How long a pod takes from scheduled to Ready in the sim.
pub const POD_START: Duration = Duration::from_millis(1500);
/// Grace periods are honoured up to this long, so drains finish in test time.
pub const MAX_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub enum Timer {
    PodStart {
        ns: String,
        name: String,
        uid: String,
    },
    PodFinalize {
        ns: String,
        name: String,
        uid: String,
    },
    NodeTerminate {
        node: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ClusterFaults {
    /// `api-flaky`: some requests fail with 500, some are slow, watches end in 410.
    pub flaky: bool,
    /// `rbac-deny`: resources (plural names) every request for answers 403 Forbidden.
    pub denied: std::collections::BTreeSet<String>,
}

pub struct ClusterState {
    pub store: ClusterStore,
    pub cloud: &'static str,
    pub timers: Vec<(Instant, Timer)>,
    pub faults: ClusterFaults,
    unscheduled: HashSet<Key>,
    last_status_rv: u64,
    last_retry: Option<Instant>,
    last_crash: Option<Instant>,
    /// Log of what scenarios injected, for the control address.
    pub injected: Vec<Value>,
    name_counter: u64,
}

fn obj_str<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn owner_ref(v: &Value) -> Value {
    json!({
        "apiVersion": v["apiVersion"], "kind": v["kind"],
        "name": v["metadata"]["name"], "uid": v["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn set_condition(conds: &mut Vec<Value>, typ: &str, status: &str, reason: &str, msg: &str) {
    let now = timestamp(Utc::now());
    if let Some(c) = conds.iter_mut().find(|c| c["type"] == typ) {
        if c["status"] != status {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(status);
        c["reason"] = json!(reason);
        c["message"] = json!(msg);
        if c.get("lastHeartbeatTime").is_some() {
            c["lastHeartbeatTime"] = json!(now);
        }
        if c.get("lastUpdateTime").is_some() {
            c["lastUpdateTime"] = json!(now);
        }
    } else {
        conds.push(
            json!({"type": typ, "status": status, "reason": reason, "message": msg,
            "lastTransitionTime": now}),
        );
    }
}

impl ClusterState {
    pub fn new(store: ClusterStore, cloud: &'static str) -> Self {
        Self {
            store,
            cloud,
            timers: Vec::new(),
            faults: ClusterFaults::default(),
            unscheduled: HashSet::new(),
            last_status_rv: 0,
            last_retry: None,
            last_crash: None,
            injected: Vec::new(),
            name_counter: 0,
        }
    }

    /// A bound pod starts (its containers run) `POD_START` from now, as a kubelet's would.
    pub(super) fn start_pod_after(&mut self, ns: &str, name: &str, uid: String) {
        self.timers.push((
            Instant::now() + POD_START,
            Timer::PodStart {
                ns: ns.to_string(),
                name: name.to_string(),
                uid,
            },
        ));
    }

    pub fn name(&self) -> &str {
        &self.store.name
    }

    fn suffix(&mut self) -> String {
        self.name_counter += 1;
        // The alphabet Kubernetes uses for generated names (no vowels, no look-alikes).
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let uid = self.store.next_uid();
        let mut x = uid.bytes().fold(0u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (0..5)
            .map(|_| {
                let c = ALPHA[(x % ALPHA.len() as u64) as usize] as char;
                x /= ALPHA.len() as u64;
                c
            })
            .collect()
    }

    /// Records a core/v1 Event about an object, as the component named would.
    pub fn record_event(
        &mut self,
        involved: &Value,
        typ: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = match obj_str(involved, "/metadata/namespace") {
            "" => "default".to_string(),
            n => n.to_string(),
        };
        let name = obj_str(involved, "/metadata/name").to_string();
        let now = timestamp(Utc::now());
        let suffix = format!("{:016x}", self.store.rv * 2_654_435_761 + self.name_counter);
        self.name_counter += 1;
        let ev = json!({
            "metadata": {"name": format!("{name}.{suffix}"), "namespace": ns},
            "involvedObject": {
                "kind": involved["kind"], "apiVersion": involved["apiVersion"],
                "name": name, "namespace": involved["metadata"]["namespace"],
                "uid": involved["metadata"]["uid"],
                "resourceVersion": involved["metadata"]["resourceVersion"],
            },
            "reason": reason, "message": message, "type": typ,
            "source": {"component": component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        });
        let _ = self.store.create(Kind::Event, ev, true);
        // Real clusters keep events for an hour; the sim keeps the newest few thousand.
        let cap = 2000 + self.store.count(Kind::Node) * 2;
        if self.store.count(Kind::Event) > cap
            && let Some(oldest) = self
                .store
                .iter_ns(Kind::Event, None)
                .min_by_key(|(_, s)| s.rv)
                .map(|(k, _)| k.clone())
        {
            self.store.remove(Kind::Event, &oldest.0, &oldest.1);
        }
    }

    /// Creates a pod from a controller's template and schedules it (`node` pins it, as the
    /// DaemonSet controller does).
    pub fn create_pod_from(&mut self, owner: &Value, template: &Value, node: Option<&str>) {
        self.create_pod_named(owner, template, node, None);
    }

    /// As `create_pod_from`, with the pod's name given (a StatefulSet's `name-0`) rather than
    /// generated.
    pub fn create_pod_named(
        &mut self,
        owner: &Value,
        template: &Value,
        node: Option<&str>,
        name: Option<String>,
    ) {
        let ns = obj_str(owner, "/metadata/namespace").to_string();
        let base = obj_str(owner, "/metadata/name").to_string();
        let name = match name {
            Some(n) => n,
            None => loop {
                let candidate = format!("{base}-{}", self.suffix());
                if self.store.get(Kind::Pod, &ns, &candidate).is_none() {
                    break candidate;
                }
            },
        };
        let mut pod = json!({
            "metadata": template.get("metadata").cloned().unwrap_or(json!({})),
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        });
        pod["metadata"]["name"] = json!(name);
        pod["metadata"]["namespace"] = json!(ns);
        pod["metadata"]["generateName"] = json!(format!("{base}-"));
        pod["metadata"]["ownerReferences"] = json!([owner_ref(owner)]);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("creationTimestamp");
        }
        if let Some(n) = node {
            pod["spec"]["nodeName"] = json!(n);
        }
        if pod["spec"].get("terminationGracePeriodSeconds").is_none() {
            pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
        }
        let Ok(pod) = self.store.create(Kind::Pod, pod, true) else {
            return;
        };
        if node.is_some() {
            let uid = obj_str(&pod, "/metadata/uid").to_string();
            self.start_pod_after(&ns, &name, uid);
        } else {
            self.schedule(&ns, &name);
        }
    }

    fn reconcile_owner_of(&mut self, pod: &Value) {
        let Some(owner_uid) = pod["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["controller"] == true))
            .and_then(|r| r["uid"].as_str())
        else {
            return;
        };
        let Some((kind, (ns, name))) = self.store.owners.get(owner_uid).cloned() else {
            return;
        };
        match kind {
            Kind::ReplicaSet => self.reconcile_replicaset(&ns, &name),
            Kind::DaemonSet => {
                self.reconcile_daemonset_pod(&ns, &name, obj_str(pod, "/spec/nodeName"))
            }
            Kind::Job | Kind::PyTorchJob => self.reconcile_job(kind, &ns, &name),
            Kind::StatefulSet => self.reconcile_statefulset(&ns, &name),
            _ => {}
        }
    }

    fn owned_pods(&self, ns: &str, owner_uid: &str) -> Vec<(Key, Stored)> {
        self.store
            .owned_by(Kind::Pod, owner_uid)
            .filter(|((n, _), s)| n == ns && s.active && !s.terminating)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// Runs due timers, retries unschedulable pods, advances crash loops, and brings the
    /// status of ReplicaSets, Deployments and PDBs in namespaces whose pods changed up to date.
    pub fn tick(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.timers = later;
        for (_, t) in due {
            match t {
                Timer::PodStart { ns, name, uid } => self.start_pod(&ns, &name, &uid),
                Timer::PodFinalize { ns, name, uid } => {
                    if self
                        .store
                        .get(Kind::Pod, &ns, &name)
                        .is_some_and(|s| *s.uid == *uid)
                    {
                        // A StatefulSet's pod comes back under its name only once it has gone.
                        if let Some(pod) = self.store.remove(Kind::Pod, &ns, &name) {
                            self.reconcile_owner_of(&pod);
                        }
                    }
                }
                Timer::NodeTerminate { node } => {
                    if let Some(n) = self.store.get_value(Kind::Node, "", &node) {
                        self.record_event(
                            &n,
                            "Normal",
                            "RemovingNode",
                            &format!("Node {node} event: Removing Node {node} from Controller"),
                            "node-controller",
                        );
                    }
                    self.delete_object(Kind::Node, "", &node, None);
                }
            }
        }
        if self
            .last_retry
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(2))
        {
            self.last_retry = Some(now);
            let pending: Vec<Key> = self.unscheduled.iter().cloned().collect();
            for (ns, name) in pending {
                self.schedule(&ns, &name);
            }
        }
        if self
            .last_crash
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(30))
        {
            self.last_crash = Some(now);
            self.advance_crash_loops();
        }
        self.refresh_statuses();
    }

    fn refresh_statuses(&mut self) {
        let since = self.last_status_rv;
        self.last_status_rv = self.store.rv;
        let namespaces: Option<HashSet<String>> = self.store.events_since(since).map(|evs| {
            evs.iter()
                .filter(|e| e.kind == Kind::Pod)
                .map(|e| e.namespace.clone())
                .collect()
        });
        let namespaces: Vec<String> = match namespaces {
            Some(n) => n.into_iter().collect(),
            None => self
                .store
                .iter_ns(Kind::Namespace, None)
                .map(|((_, n), _)| n.clone())
                .collect(),
        };
        for ns in namespaces {
            let rss: Vec<String> = self
                .store
                .iter_ns(Kind::ReplicaSet, Some(&ns))
                .map(|((_, n), _)| n.clone())
                .collect();
            for rs in rss {
                self.update_replicaset_status(&ns, &rs);
            }
            let deps: Vec<String> = self
                .store
                .iter_ns(Kind::Deployment, Some(&ns))
                .map(|((_, n), _)| n.clone())
                .collect();
            for d in deps {
                self.update_deployment_status(&ns, &d);
            }
            let pdbs: Vec<String> = self
                .store
                .iter_ns(Kind::PodDisruptionBudget, Some(&ns))
                .map(|((_, n), _)| n.clone())
                .collect();
            for p in pdbs {
                self.update_pdb_status(&ns, &p);
            }
            for kind in [Kind::StatefulSet, Kind::DaemonSet, Kind::Job] {
                let names: Vec<String> = self
                    .store
                    .iter_ns(kind, Some(&ns))
                    .map(|((_, n), _)| n.clone())
                    .collect();
                for n in names {
                    self.update_controller_status(kind, &ns, &n);
                }
            }
        }
        self.last_status_rv = self.store.rv;
    }
}

/// The cluster the unit tests of every controller start from: namespace `ml`, three nodes
/// with one GPU each, and a two-replica GPU Deployment `web` already reconciled.
#[cfg(test)]
mod test_support {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::ClusterState;
    use crate::sim::resources::Kind;
    use crate::sim::store::ClusterStore;

    pub(super) fn cluster_with_deployment() -> ClusterState {
        let mut st = ClusterState::new(ClusterStore::new("t", 1), "aws");
        let s = &mut st.store;
        s.create(Kind::Namespace, json!({"metadata": {"name": "ml"}}), false)
            .unwrap();
        for i in 0..3 {
            s.create(
                Kind::Node,
                json!({
                    "metadata": {"name": format!("n{i}")},
                    "spec": {},
                    "status": {"allocatable": {"pods": "110", "nvidia.com/gpu": "1"},
                        "conditions": [{"type": "Ready", "status": "True"}]},
                }),
                false,
            )
            .unwrap();
        }
        s.create(
            Kind::Deployment,
            json!({
                "metadata": {"name": "web", "namespace": "ml", "annotations": {}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "img:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
            }),
            false,
        )
        .unwrap();
        st.reconcile_deployment("ml", "web");
        st
    }

    pub(super) fn settle(st: &mut ClusterState) {
        st.tick(Instant::now() + Duration::from_secs(10));
        st.tick(Instant::now() + Duration::from_secs(20));
    }
}
