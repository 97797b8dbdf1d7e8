//! One simulated cluster's behaviour: the controllers a real control plane runs (deployment,
//! replica set, scheduler, kubelet pod lifecycle, disruption budgets, pod garbage collection),
//! graceful deletion and eviction. Everything runs under the cluster's one lock, driven by API
//! calls and by `tick`. Imports nothing outside the sim.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::resources::{Kind, def};
use super::store::{ApiError, ClusterStore, Key, Stored, timestamp};

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

/// The pod template minus the label the controller adds, for "same template" comparisons.
pub fn template_sans_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("creationTimestamp");
        if m.get("labels")
            .is_some_and(|l| l.as_object().is_some_and(|o| o.is_empty()))
        {
            m.remove("labels");
        }
    }
    t
}

/// A stable hash of a template, encoded the way Kubernetes spells pod-template-hash.
pub fn template_hash(t: &Value) -> String {
    let bytes = serde_json::to_vec(&template_sans_hash(t)).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut x = h as u64;
    for _ in 0..10 {
        out.push(ALPHA[(x % ALPHA.len() as u64) as usize] as char);
        x /= ALPHA.len() as u64;
        if x == 0 {
            break;
        }
    }
    out
}

fn revision_of(v: &Value) -> u64 {
    obj_str(
        v,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .parse()
    .unwrap_or(0)
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

fn tolerates(pod: &Value, key: &str, value: &str, effect: &str) -> bool {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                let tk = obj_str(t, "/key");
                let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
                let te = obj_str(t, "/effect");
                let key_ok = if tk.is_empty() {
                    op == "Exists"
                } else {
                    tk == key
                };
                let val_ok = op == "Exists" || obj_str(t, "/value") == value;
                let eff_ok = te.is_empty() || te == effect;
                key_ok && val_ok && eff_ok
            })
        })
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

    // ---- scheduling -------------------------------------------------------------------

    /// Picks a node for `pod`: schedulable, Ready, taints tolerated, node selector matched,
    /// enough free GPUs and pod slots; the least loaded wins (by name on ties), deterministic.
    fn pick_node(&self, pod: &Value) -> Result<String, String> {
        let gpus: u32 = pod_gpus(pod);
        let selector: BTreeMap<String, String> = pod
            .pointer("/spec/nodeSelector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut reasons: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut best: Option<(u32, &str)> = None;
        let mut total = 0;
        for ((_, name), s) in self.store.iter_ns(Kind::Node, None) {
            total += 1;
            let Some(n) = &s.node else { continue };
            let usage = self.store.usage.get(name).copied().unwrap_or_default();
            let why = if n.unschedulable {
                Some("node(s) were unschedulable")
            } else if !n.ready {
                Some("node(s) were not ready")
            } else if let Some(_t) = n.taints.iter().find(|(k, v, e)| {
                (e == "NoSchedule" || e == "NoExecute") && !tolerates(pod, k, v, e)
            }) {
                Some("node(s) had untolerated taint(s)")
            } else if !selector.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
                Some("node(s) didn't match Pod's node affinity/selector")
            } else if gpus > 0 && n.gpu_allocatable.saturating_sub(usage.gpus) < gpus {
                Some("Insufficient nvidia.com/gpu")
            } else if usage.pods >= n.pods_allocatable.max(1) {
                Some("Too many pods")
            } else {
                None
            };
            match why {
                Some(w) => *reasons.entry(w).or_default() += 1,
                None => {
                    let load = usage.pods;
                    if best.is_none_or(|(l, _)| load < l) {
                        best = Some((load, name.as_str()));
                    }
                }
            }
        }
        if let Some((_, n)) = best {
            return Ok(n.to_string());
        }
        let detail: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
        Err(format!(
            "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
            detail.join(", ")
        ))
    }

    /// Schedules a pending pod, or marks it unschedulable with the scheduler's message.
    fn schedule(&mut self, ns: &str, name: &str) {
        let Some(mut pod) = self.store.get_value(Kind::Pod, ns, name) else {
            self.unscheduled.remove(&(ns.to_string(), name.to_string()));
            return;
        };
        if !obj_str(&pod, "/spec/nodeName").is_empty() {
            self.unscheduled.remove(&(ns.to_string(), name.to_string()));
            return;
        }
        let mut conds: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match self.pick_node(&pod) {
            Ok(node) => {
                self.unscheduled.remove(&(ns.to_string(), name.to_string()));
                pod["spec"]["nodeName"] = json!(node);
                conds.retain(|c| c["type"] != "PodScheduled");
                set_condition(&mut conds, "PodScheduled", "True", "", "");
                pod["status"]["conditions"] = json!(conds);
                let uid = obj_str(&pod, "/metadata/uid").to_string();
                let pod = self.store.replace(Kind::Pod, pod);
                self.record_event(
                    &pod,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{name} to {node}"),
                    "default-scheduler",
                );
                self.timers.push((
                    Instant::now() + POD_START,
                    Timer::PodStart {
                        ns: ns.to_string(),
                        name: name.to_string(),
                        uid,
                    },
                ));
            }
            Err(msg) => {
                let first = self.unscheduled.insert((ns.to_string(), name.to_string()));
                let already = conds
                    .iter()
                    .any(|c| c["type"] == "PodScheduled" && c["message"] == msg.as_str());
                if !already {
                    set_condition(&mut conds, "PodScheduled", "False", "Unschedulable", &msg);
                    pod["status"]["conditions"] = json!(conds);
                    pod["status"]["phase"] = json!("Pending");
                    let pod = self.store.replace(Kind::Pod, pod);
                    if first {
                        self.record_event(
                            &pod,
                            "Warning",
                            "FailedScheduling",
                            &msg,
                            "default-scheduler",
                        );
                    }
                }
            }
        }
    }

    /// Creates a pod from a controller's template and schedules it (`node` pins it, as the
    /// DaemonSet controller does).
    pub fn create_pod_from(&mut self, owner: &Value, template: &Value, node: Option<&str>) {
        let ns = obj_str(owner, "/metadata/namespace").to_string();
        let base = obj_str(owner, "/metadata/name").to_string();
        let name = loop {
            let candidate = format!("{base}-{}", self.suffix());
            if self.store.get(Kind::Pod, &ns, &candidate).is_none() {
                break candidate;
            }
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
            self.timers.push((
                Instant::now() + POD_START,
                Timer::PodStart {
                    ns: ns.clone(),
                    name: name.clone(),
                    uid: obj_str(&pod, "/metadata/uid").to_string(),
                },
            ));
        } else {
            self.schedule(&ns, &name);
        }
    }

    fn start_pod(&mut self, ns: &str, name: &str, uid: &str) {
        let Some(mut pod) = self.store.get_value(Kind::Pod, ns, name) else {
            return;
        };
        if obj_str(&pod, "/metadata/uid") != uid
            || pod["metadata"].get("deletionTimestamp").is_some()
        {
            return;
        }
        let now = timestamp(Utc::now());
        let mut conds: Vec<Value> = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ] {
            set_condition(&mut conds, t, "True", "", "");
        }
        for c in conds.iter_mut() {
            if let Some(m) = c.as_object_mut() {
                m.retain(|k, v| !((k == "reason" || k == "message") && v.as_str() == Some("")));
            }
        }
        // The `crashloop-rollout` scenario's revision: its containers exit at once, over and over.
        let crashing = pod["metadata"]["annotations"]["sim.fleetdeck.dev/fault"] == "crashloop";
        if crashing {
            for c in conds.iter_mut() {
                if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                    c["status"] = json!("False");
                    c["reason"] = json!("ContainersNotReady");
                }
            }
        }
        let statuses: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let mut s = json!({
                            "name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:{:064x}", obj_str(c, "/image"), 0),
                            "containerID": format!("containerd://{:064x}", self.store.rv),
                            "ready": true, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": now}}, "lastState": {},
                        });
                        if crashing {
                            s["ready"] = json!(false);
                            s["started"] = json!(false);
                            s["restartCount"] = json!(5);
                            s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 2m40s restarting failed container={}", obj_str(c, "/name"))}});
                            s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}});
                        }
                        s
                    })
                    .collect()
            })
            .unwrap_or_default();
        let octet = (self.store.rv % 250) + 2;
        pod["status"] = json!({
            "phase": "Running", "conditions": conds, "containerStatuses": statuses,
            "hostIP": "10.0.0.1", "podIP": format!("10.{}.{}.{}", 100 + (self.store.rv / 62500) % 100, (self.store.rv / 250) % 250, octet),
            "startTime": now, "qosClass": pod["status"]["qosClass"].clone(),
        });
        let node = obj_str(&pod, "/spec/nodeName").to_string();
        let pod = self.store.replace(Kind::Pod, pod);
        let image = obj_str(&pod, "/spec/containers/0/image").to_string();
        self.record_event(
            &pod,
            "Normal",
            "Pulled",
            &format!("Container image \"{image}\" already present on machine"),
            "kubelet",
        );
        self.record_event(
            &pod,
            "Normal",
            "Started",
            &format!("Started container on {node}"),
            "kubelet",
        );
    }

    // ---- deletion ---------------------------------------------------------------------

    /// Deletes a pod gracefully: it is marked terminating, stops being Ready, and disappears
    /// after its grace period (capped at `MAX_GRACE`). Owners create replacements at once.
    pub fn delete_pod(&mut self, ns: &str, name: &str, grace: Option<u64>) -> Option<Value> {
        let mut pod = self.store.get_value(Kind::Pod, ns, name)?;
        let grace = grace
            .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_u64())
            .unwrap_or(30);
        let unscheduled = obj_str(&pod, "/spec/nodeName").is_empty();
        if grace == 0 || unscheduled {
            self.unscheduled.remove(&(ns.to_string(), name.to_string()));
            let gone = self.store.remove(Kind::Pod, ns, name);
            self.reconcile_owner_of(&pod);
            return gone;
        }
        if pod["metadata"].get("deletionTimestamp").is_some() {
            return Some(pod);
        }
        let now = Utc::now();
        pod["metadata"]["deletionTimestamp"] =
            json!(timestamp(now + chrono::Duration::seconds(grace as i64)));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
            set_condition(conds, "Ready", "False", "", "");
            set_condition(conds, "ContainersReady", "False", "", "");
        }
        let uid = obj_str(&pod, "/metadata/uid").to_string();
        let pod = self.store.replace(Kind::Pod, pod);
        let wait = Duration::from_secs(grace).min(MAX_GRACE);
        self.timers.push((
            Instant::now() + wait,
            Timer::PodFinalize {
                ns: ns.to_string(),
                name: name.to_string(),
                uid,
            },
        ));
        self.record_event(&pod, "Normal", "Killing", "Stopping container", "kubelet");
        self.reconcile_owner_of(&pod);
        Some(pod)
    }

    /// Deletes any object; dependents go too (background cascading deletion).
    pub fn delete_object(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        grace: Option<u64>,
    ) -> Option<Value> {
        if kind == Kind::Pod {
            return self.delete_pod(ns, name, grace);
        }
        if kind == Kind::Namespace {
            for k in [
                Kind::Deployment,
                Kind::ReplicaSet,
                Kind::DaemonSet,
                Kind::Job,
                Kind::PyTorchJob,
                Kind::PodDisruptionBudget,
                Kind::Lease,
                Kind::InferenceService,
                Kind::Event,
                Kind::Pod,
            ] {
                let keys: Vec<Key> = self
                    .store
                    .iter_ns(k, Some(name))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    self.store.remove(k, &key.0, &key.1);
                }
            }
            return self.store.remove(Kind::Namespace, "", name);
        }
        let gone = self.store.remove(kind, ns, name)?;
        let uid = obj_str(&gone, "/metadata/uid").to_string();
        self.delete_dependents(ns, &uid);
        if kind == Kind::Node {
            let pods: Vec<Key> = self
                .store
                .iter_ns(Kind::Pod, None)
                .filter(|(_, s)| s.field("spec.nodeName") == Some(name))
                .map(|(k, _)| k.clone())
                .collect();
            for (pns, pname) in pods {
                if let Some(p) = self.store.remove(Kind::Pod, &pns, &pname) {
                    self.reconcile_owner_of(&p);
                }
            }
        }
        Some(gone)
    }

    fn delete_dependents(&mut self, ns: &str, owner_uid: &str) {
        for k in [Kind::ReplicaSet, Kind::Pod] {
            let deps: Vec<Key> = self
                .store
                .iter_ns(k, Some(ns))
                .filter(|(_, s)| s.owner.as_deref() == Some(owner_uid))
                .map(|(k, _)| k.clone())
                .collect();
            for (dns, dname) in deps {
                if k == Kind::Pod {
                    self.delete_pod(&dns, &dname, None);
                } else if let Some(rs) = self.store.remove(k, &dns, &dname) {
                    let uid = obj_str(&rs, "/metadata/uid").to_string();
                    self.delete_dependents(&dns, &uid);
                }
            }
        }
    }

    // ---- controllers ------------------------------------------------------------------

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
            _ => {}
        }
    }

    fn owned_pods(&self, ns: &str, owner_uid: &str) -> Vec<(Key, Stored)> {
        self.store
            .iter_ns(Kind::Pod, Some(ns))
            .filter(|(_, s)| s.owner.as_deref() == Some(owner_uid) && s.active && !s.terminating)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// Makes the number of live pods match `spec.replicas`.
    pub fn reconcile_replicaset(&mut self, ns: &str, name: &str) {
        let Some(rs) = self.store.get_value(Kind::ReplicaSet, ns, name) else {
            return;
        };
        let want = rs["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        let uid = obj_str(&rs, "/metadata/uid").to_string();
        let mut pods = self.owned_pods(ns, &uid);
        if pods.len() < want {
            let template = rs["spec"]["template"].clone();
            for _ in pods.len()..want {
                self.create_pod_from(&rs, &template, None);
            }
        } else if pods.len() > want {
            // Scale down unready and newest pods first, as the controller ranks them.
            let surplus = pods.len() - want;
            pods.sort_by_key(|(_, s)| (s.ready, std::cmp::Reverse(s.rv)));
            for ((pns, pname), _) in pods.into_iter().take(surplus) {
                self.delete_pod(&pns, &pname, None);
            }
        }
        self.update_replicaset_status(ns, name);
    }

    fn update_replicaset_status(&mut self, ns: &str, name: &str) {
        let Some(mut rs) = self.store.get_value(Kind::ReplicaSet, ns, name) else {
            return;
        };
        let uid = obj_str(&rs, "/metadata/uid").to_string();
        let pods = self.owned_pods(ns, &uid);
        let ready = pods.iter().filter(|(_, s)| s.ready).count();
        let status = json!({
            "replicas": pods.len(), "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        });
        let mut status = status;
        if let Some(m) = status.as_object_mut() {
            m.retain(|_, v| v.as_u64() != Some(0));
        }
        if rs["status"] != status {
            rs["status"] = status;
            self.store.replace(Kind::ReplicaSet, rs);
        }
    }
}

fn pod_gpus(pod: &Value) -> u32 {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.pointer("/resources/limits/nvidia.com~1gpu"))
                .filter_map(|q| {
                    q.as_str()
                        .and_then(|s| s.parse::<u32>().ok())
                        .or(q.as_u64().map(|n| n as u32))
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Outcome of an eviction request, as the eviction subresource answers it.
pub enum EvictionOutcome {
    Evicted,
    Refused(ApiError),
}

impl ClusterState {
    /// The deployment controller: find or create the ReplicaSet for the current template
    /// (reusing an old one whose template matches and giving it the next revision, as
    /// `rollout undo` relies on), scale it to `spec.replicas` and the others to zero.
    pub fn reconcile_deployment(&mut self, ns: &str, name: &str) {
        let Some(mut dep) = self.store.get_value(Kind::Deployment, ns, name) else {
            return;
        };
        if dep["spec"]["paused"] == true {
            return;
        }
        let uid = obj_str(&dep, "/metadata/uid").to_string();
        let template = dep["spec"]["template"].clone();
        let want = dep["spec"]["replicas"].as_u64().unwrap_or(1);
        let bare = template_sans_hash(&template);
        let owned: Vec<Value> = self
            .store
            .iter_ns(Kind::ReplicaSet, Some(ns))
            .filter(|(_, s)| s.owner.as_deref() == Some(uid.as_str()))
            .map(|(_, s)| s.value())
            .collect();
        let max_rev = owned.iter().map(revision_of).max().unwrap_or(0);
        let matching = owned
            .iter()
            .find(|rs| template_sans_hash(&rs["spec"]["template"]) == bare)
            .cloned();
        let change_cause = dep["metadata"]["annotations"]["kubernetes.io/change-cause"].clone();
        let new_rs = match matching {
            Some(mut rs) => {
                let rev = revision_of(&rs);
                let mut changed = false;
                if rev < max_rev {
                    let ann = &mut rs["metadata"]["annotations"];
                    let history = obj_str(ann, "/deployment.kubernetes.io~1revision-history");
                    let history = if history.is_empty() {
                        rev.to_string()
                    } else {
                        format!("{history},{rev}")
                    };
                    ann["deployment.kubernetes.io/revision-history"] = json!(history);
                    ann["deployment.kubernetes.io/revision"] = json!((max_rev + 1).to_string());
                    changed = true;
                }
                if !change_cause.is_null()
                    && rs["metadata"]["annotations"]["kubernetes.io/change-cause"] != change_cause
                {
                    rs["metadata"]["annotations"]["kubernetes.io/change-cause"] =
                        change_cause.clone();
                    changed = true;
                }
                if rs["spec"]["replicas"] != want {
                    rs["spec"]["replicas"] = json!(want);
                    changed = true;
                }
                if changed {
                    self.store.replace(Kind::ReplicaSet, rs)
                } else {
                    rs
                }
            }
            None => {
                let hash = template_hash(&template);
                let mut t = template.clone();
                t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = dep["spec"]["selector"].clone();
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                let mut labels = template["metadata"]["labels"].clone();
                labels["pod-template-hash"] = json!(hash);
                let mut ann = json!({
                    "deployment.kubernetes.io/desired-replicas": want.to_string(),
                    "deployment.kubernetes.io/max-replicas": (want + want.div_ceil(4)).to_string(),
                    "deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                });
                if !change_cause.is_null() {
                    ann["kubernetes.io/change-cause"] = change_cause.clone();
                }
                let rs = json!({
                    "metadata": {
                        "name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
                        "annotations": ann, "ownerReferences": [owner_ref(&dep)],
                    },
                    "spec": {"replicas": want, "selector": selector, "template": t},
                    "status": {"replicas": 0},
                });
                match self.store.create(Kind::ReplicaSet, rs, true) {
                    Ok(rs) => rs,
                    Err(_) => return,
                }
            }
        };
        let new_name = obj_str(&new_rs, "/metadata/name").to_string();
        for rs in &owned {
            let n = obj_str(rs, "/metadata/name");
            if n != new_name && rs["spec"]["replicas"].as_u64().unwrap_or(0) != 0 {
                let mut old = rs.clone();
                old["spec"]["replicas"] = json!(0);
                self.store.replace(Kind::ReplicaSet, old);
                self.reconcile_replicaset(ns, n);
            }
        }
        self.reconcile_replicaset(ns, &new_name);
        let rev = revision_of(&new_rs).to_string();
        if dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != rev.as_str() {
            if !dep["metadata"]["annotations"].is_object() {
                dep["metadata"]["annotations"] = json!({});
            }
            dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(rev);
            self.store.replace(Kind::Deployment, dep);
            self.record_event(
                &self
                    .store
                    .get_value(Kind::Deployment, ns, name)
                    .unwrap_or_default(),
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {new_name} to {want}"),
                "deployment-controller",
            );
        }
        self.update_deployment_status(ns, name);
    }

    fn update_deployment_status(&mut self, ns: &str, name: &str) {
        let Some(mut dep) = self.store.get_value(Kind::Deployment, ns, name) else {
            return;
        };
        let uid = obj_str(&dep, "/metadata/uid").to_string();
        let rev = obj_str(
            &dep,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .to_string();
        let mut total = 0u64;
        let mut ready = 0u64;
        let mut updated = 0u64;
        let mut new_rs_name = String::new();
        let rss: Vec<(String, Arc<str>, String)> = self
            .store
            .iter_ns(Kind::ReplicaSet, Some(ns))
            .filter(|(_, s)| s.owner.as_deref() == Some(uid.as_str()))
            .map(|((_, n), s)| {
                let v = s.value();
                (
                    n.clone(),
                    s.uid.clone(),
                    obj_str(
                        &v,
                        "/metadata/annotations/deployment.kubernetes.io~1revision",
                    )
                    .to_string(),
                )
            })
            .collect();
        for (rs_name, rs_uid, rs_rev) in rss {
            let pods = self.owned_pods(ns, &rs_uid);
            total += pods.len() as u64;
            let r = pods.iter().filter(|(_, s)| s.ready).count() as u64;
            ready += r;
            if rs_rev == rev {
                updated += pods.len() as u64;
                new_rs_name = rs_name;
            }
        }
        let want = dep["spec"]["replicas"].as_u64().unwrap_or(1);
        let old_conds: Vec<Value> = dep["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conds = old_conds.clone();
        if ready
            >= want
                .saturating_sub(want / 4)
                .max(if want > 0 { 1 } else { 0 })
        {
            set_condition(
                &mut conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            );
        } else {
            set_condition(
                &mut conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            );
        }
        if updated == want && ready >= want {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{new_rs_name}\" has successfully progressed."),
            );
        } else {
            set_condition(
                &mut conds,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{new_rs_name}\" is progressing."),
            );
        }
        // Only transitions change the stored conditions; otherwise keep the old times.
        let same_states = conds.len() == old_conds.len()
            && conds
                .iter()
                .zip(&old_conds)
                .all(|(a, b)| a["status"] == b["status"] && a["reason"] == b["reason"]);
        let conds = if same_states { old_conds } else { conds };
        let mut status = json!({
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready,
            "availableReplicas": ready, "conditions": conds,
        });
        if total > ready {
            status["unavailableReplicas"] = json!(total - ready);
        }
        if let Some(m) = status.as_object_mut() {
            m.retain(|_, v| v.as_u64() != Some(0));
        }
        if dep["status"] != status {
            dep["status"] = status;
            self.store.replace(Kind::Deployment, dep);
        }
    }

    /// A DaemonSet pod that went away is recreated on the same node while the node exists.
    fn reconcile_daemonset_pod(&mut self, ns: &str, name: &str, node: &str) {
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
    fn reconcile_job(&mut self, kind: Kind, ns: &str, name: &str) {
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
            .iter_ns(Kind::Pod, Some(ns))
            .filter(|(_, s)| {
                s.owner.as_deref() == Some(uid.as_str())
                    && s.field("status.phase") == Some("Succeeded")
            })
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

    // ---- disruption budgets and eviction -----------------------------------------------

    /// (current healthy, desired healthy, expected pods) for a PDB.
    fn pdb_counts(&self, pdb: &Value) -> (u64, u64, u64) {
        let ns = obj_str(pdb, "/metadata/namespace");
        let sel: BTreeMap<String, String> = pdb["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let matching: Vec<&Stored> = self
            .store
            .iter_ns(Kind::Pod, Some(ns))
            .map(|(_, s)| s)
            .filter(|s| s.active && sel.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .collect();
        let healthy = matching.iter().filter(|s| s.ready).count() as u64;
        let expected = matching.iter().filter(|s| !s.terminating).count() as u64;
        let resolve = |v: &Value| -> Option<u64> {
            match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<u64>().ok())
                    .map(|p| (p * expected).div_ceil(100)),
                _ => None,
            }
        };
        let desired = if let Some(min) = resolve(&pdb["spec"]["minAvailable"]) {
            min
        } else if let Some(max) = resolve(&pdb["spec"]["maxUnavailable"]) {
            expected.saturating_sub(max)
        } else {
            expected
        };
        (healthy, desired, expected)
    }

    fn update_pdb_status(&mut self, ns: &str, name: &str) {
        let Some(mut pdb) = self.store.get_value(Kind::PodDisruptionBudget, ns, name) else {
            return;
        };
        let (healthy, desired, expected) = self.pdb_counts(&pdb);
        let allowed = healthy.saturating_sub(desired);
        let old = &pdb["status"];
        if old["currentHealthy"] == healthy
            && old["desiredHealthy"] == desired
            && old["expectedPods"] == expected
            && old["disruptionsAllowed"] == allowed
        {
            return;
        }
        let now = timestamp(Utc::now());
        let (st, reason) = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        pdb["status"] = json!({
            "observedGeneration": pdb["metadata"]["generation"].as_u64().unwrap_or(1),
            "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
            "disruptionsAllowed": allowed,
            "conditions": [{"type": "DisruptionAllowed", "status": st, "reason": reason, "message": "",
                "lastTransitionTime": now, "observedGeneration": 1}],
        });
        self.store.replace(Kind::PodDisruptionBudget, pdb);
    }

    /// The eviction subresource: honours the one PodDisruptionBudget covering the pod (429
    /// while it allows no disruption), a uid precondition (409), and deletes gracefully.
    pub fn evict(
        &mut self,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<EvictionOutcome, ApiError> {
        let Some(pod) = self.store.get(Kind::Pod, ns, name).cloned() else {
            return Err(ApiError::not_found(def(Kind::Pod), name));
        };
        let pre_uid = body
            .pointer("/deleteOptions/preconditions/uid")
            .and_then(Value::as_str);
        if let Some(u) = pre_uid
            && u != &*pod.uid
        {
            return Err(ApiError::conflict(
                def(Kind::Pod),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                    pod.uid
                ),
            ));
        }
        let grace = body
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Value::as_u64);
        if pod.terminating || !pod.active {
            self.delete_pod(ns, name, grace);
            return Ok(EvictionOutcome::Evicted);
        }
        let pdbs: Vec<Value> = self
            .store
            .iter_ns(Kind::PodDisruptionBudget, Some(ns))
            .map(|(_, s)| s.value())
            .filter(|p| {
                p["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| {
                        !m.is_empty()
                            && m.iter()
                                .all(|(k, v)| pod.labels.get(k).map(String::as_str) == v.as_str())
                    })
            })
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(pdb) = pdbs.first() {
            let (healthy, desired, _) = self.pdb_counts(pdb);
            let pdb_name = obj_str(pdb, "/metadata/name").to_string();
            // Pods that are not Ready do not count against the budget (AlwaysAllow policy).
            if pod.ready && healthy <= desired {
                self.store.counters.evictions_refused_pdb += 1;
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                );
                e.details = Some(json!({"causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"),
                }]}));
                return Ok(EvictionOutcome::Refused(e));
            }
        }
        self.store.counters.evictions_allowed += 1;
        self.delete_pod(ns, name, grace);
        if let Some(pdb) = pdbs.first() {
            let pdb_name = obj_str(pdb, "/metadata/name").to_string();
            self.update_pdb_status(ns, &pdb_name);
        }
        Ok(EvictionOutcome::Evicted)
    }

    // ---- time -------------------------------------------------------------------------

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
                        self.store.remove(Kind::Pod, &ns, &name);
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

    fn advance_crash_loops(&mut self) {
        let looping: Vec<Key> = self
            .store
            .iter_ns(Kind::Pod, None)
            .filter(|(_, s)| s.labels.get("sim.fleetdeck.dev/crashloop").is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in looping {
            let Some(mut pod) = self.store.get_value(Kind::Pod, &ns, &name) else {
                continue;
            };
            if pod["metadata"].get("deletionTimestamp").is_some() {
                continue;
            }
            let Some(cs) = pod["status"]["containerStatuses"].get_mut(0) else {
                continue;
            };
            let restarts = cs["restartCount"].as_u64().unwrap_or(0) + 1;
            cs["restartCount"] = json!(restarts);
            cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": timestamp(Utc::now() - chrono::Duration::seconds(20)),
                "finishedAt": timestamp(Utc::now())}});
            let pod = self.store.replace(Kind::Pod, pod);
            self.record_event(
                &pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container",
                "kubelet",
            );
        }
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
        }
        self.last_status_rv = self.store.rv;
    }

    /// Marks a node NotReady as the node lifecycle controller does when the kubelet stops
    /// reporting: Unknown conditions, unreachable taints, its pods no longer Ready.
    pub fn mark_node_unreachable(&mut self, node: &str) -> Result<(), String> {
        let mut n = self
            .store
            .get_value(Kind::Node, "", node)
            .ok_or_else(|| format!("node {node} not found in cluster {}", self.name()))?;
        if let Some(conds) = n["status"]["conditions"].as_array_mut() {
            for c in conds.iter_mut() {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(timestamp(Utc::now()));
            }
        }
        let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let now = timestamp(Utc::now());
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == effect)
            {
                let mut t = json!({"key": "node.kubernetes.io/unreachable", "effect": effect});
                if effect == "NoExecute" {
                    t["timeAdded"] = json!(now);
                }
                taints.push(t);
            }
        }
        n["spec"]["taints"] = json!(taints);
        let n = self.store.replace(Kind::Node, n);
        self.record_event(
            &n,
            "Normal",
            "NodeNotReady",
            &format!("Node {node} status is now: NodeNotReady"),
            "node-controller",
        );
        let pods: Vec<Key> = self
            .store
            .iter_ns(Kind::Pod, None)
            .filter(|(_, s)| s.field("spec.nodeName") == Some(node) && s.ready)
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in pods {
            if let Some(mut p) = self.store.get_value(Kind::Pod, &ns, &name) {
                if let Some(conds) = p["status"]["conditions"].as_array_mut() {
                    set_condition(conds, "Ready", "False", "", "");
                }
                self.store.replace(Kind::Pod, p);
            }
        }
        Ok(())
    }
}

impl ClusterState {
    /// A pod created through the API without a node goes to the scheduler.
    pub fn schedule_new_pod(&mut self, ns: &str, name: &str) {
        self.schedule(ns, name);
    }

    /// A pod created through the API already bound to a node starts like any other.
    pub fn start_pod_later(&mut self, ns: &str, name: &str) {
        if let Some(s) = self.store.get(Kind::Pod, ns, name) {
            let uid = s.uid.to_string();
            self.timers.push((
                Instant::now() + POD_START,
                Timer::PodStart {
                    ns: ns.to_string(),
                    name: name.to_string(),
                    uid,
                },
            ));
        }
    }

    pub fn refresh_pdb(&mut self, ns: &str, name: &str) {
        self.update_pdb_status(ns, name);
    }

    /// KServe's controller, for what the cockpit reads: a spec change other than the canary
    /// percentage rolls out a new predictor revision; `canaryTrafficPercent` splits traffic
    /// between the latest ready and the previously rolled-out revision.
    pub fn reconcile_inference_service(&mut self, ns: &str, name: &str) {
        let Some(mut isvc) = self.store.get_value(Kind::InferenceService, ns, name) else {
            return;
        };
        let pred = isvc["status"]["components"]["predictor"].clone();
        let latest = obj_str(&pred, "/latestReadyRevision").to_string();
        let mut spec_sans_canary = isvc["spec"]["predictor"].clone();
        if let Some(m) = spec_sans_canary.as_object_mut() {
            m.remove("canaryTrafficPercent");
        }
        let rolled_spec = isvc["metadata"]["annotations"]["sim.fleetdeck.dev/rolled-spec"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let spec_text = spec_sans_canary.to_string();
        let mut previous = obj_str(&pred, "/previousRolledoutRevision").to_string();
        let mut latest_rev = latest.clone();
        if !rolled_spec.is_empty() && rolled_spec != spec_text {
            let n = latest
                .rsplit('-')
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(1)
                + 1;
            previous = latest.clone();
            latest_rev = format!("{name}-predictor-{n:05}");
        }
        isvc["metadata"]["annotations"]["sim.fleetdeck.dev/rolled-spec"] = json!(spec_text);
        let canary = isvc["spec"]["predictor"]["canaryTrafficPercent"].as_u64();
        let traffic = match canary {
            Some(p) if p < 100 && !previous.is_empty() => json!([
                {"revisionName": latest_rev, "percent": p, "latestRevision": true, "tag": "latest"},
                {"revisionName": previous, "percent": 100 - p, "latestRevision": false, "tag": "prev"},
            ]),
            _ => json!([{"revisionName": latest_rev, "percent": 100, "latestRevision": true}]),
        };
        let p = &mut isvc["status"]["components"]["predictor"];
        p["latestReadyRevision"] = json!(latest_rev);
        p["latestCreatedRevision"] = json!(latest_rev);
        if !previous.is_empty() {
            p["previousRolledoutRevision"] = json!(previous);
        }
        if canary.is_none_or(|c| c >= 100) {
            p["latestRolledoutRevision"] = json!(latest_rev);
        }
        p["traffic"] = traffic;
        isvc["status"]["observedGeneration"] = isvc["metadata"]["generation"].clone();
        self.store.replace(Kind::InferenceService, isvc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_with_deployment() -> ClusterState {
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

    fn settle(st: &mut ClusterState) {
        st.tick(Instant::now() + Duration::from_secs(10));
        st.tick(Instant::now() + Duration::from_secs(20));
    }

    #[test]
    fn deployment_creates_replicaset_and_scheduled_pods() {
        let mut st = cluster_with_deployment();
        settle(&mut st);
        assert_eq!(st.store.count(Kind::ReplicaSet), 1);
        let pods: Vec<Value> = st
            .store
            .iter_ns(Kind::Pod, Some("ml"))
            .map(|(_, s)| s.value())
            .collect();
        assert_eq!(pods.len(), 2);
        assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
        let dep = st.store.get_value(Kind::Deployment, "ml", "web").unwrap();
        assert_eq!(dep["status"]["readyReplicas"], 2);
        assert_eq!(
            dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
    }

    #[test]
    fn rollback_reuses_the_old_replicaset_with_the_next_revision() {
        let mut st = cluster_with_deployment();
        let mut dep = st.store.get_value(Kind::Deployment, "ml", "web").unwrap();
        let old_template = dep["spec"]["template"].clone();
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
        st.store.replace(Kind::Deployment, dep);
        st.reconcile_deployment("ml", "web");
        let mut dep = st.store.get_value(Kind::Deployment, "ml", "web").unwrap();
        assert_eq!(
            dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "2"
        );
        dep["spec"]["template"] = old_template;
        st.store.replace(Kind::Deployment, dep);
        st.reconcile_deployment("ml", "web");
        assert_eq!(st.store.count(Kind::ReplicaSet), 2);
        let dep = st.store.get_value(Kind::Deployment, "ml", "web").unwrap();
        assert_eq!(
            dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "3"
        );
    }

    #[test]
    fn scheduler_explains_insufficient_gpus() {
        let mut st = cluster_with_deployment();
        let mut dep = st.store.get_value(Kind::Deployment, "ml", "web").unwrap();
        dep["spec"]["replicas"] = json!(5);
        st.store.replace(Kind::Deployment, dep);
        st.reconcile_deployment("ml", "web");
        let pending: Vec<Value> = st
            .store
            .iter_ns(Kind::Pod, Some("ml"))
            .map(|(_, s)| s.value())
            .filter(|p| p["spec"]["nodeName"].is_null())
            .collect();
        assert_eq!(pending.len(), 2);
        let msg = pending[0]["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert!(msg.contains("3 Insufficient nvidia.com/gpu"), "{msg}");
    }

    #[test]
    fn eviction_is_refused_while_the_budget_allows_no_disruption() {
        let mut st = cluster_with_deployment();
        settle(&mut st);
        st.store
            .create(
                Kind::PodDisruptionBudget,
                json!({"metadata": {"name": "web", "namespace": "ml"},
                    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}),
                true,
            )
            .unwrap();
        let name = st
            .store
            .iter_ns(Kind::Pod, Some("ml"))
            .next()
            .unwrap()
            .0
            .1
            .clone();
        match st.evict("ml", &name, &json!({})).unwrap() {
            EvictionOutcome::Refused(e) => {
                assert_eq!(e.code, 429);
                assert!(
                    e.status()
                        .to_string()
                        .contains("The disruption budget web needs 2")
                );
            }
            EvictionOutcome::Evicted => panic!("eviction should be refused"),
        }
    }
}
