//! The kubelet's pod lifecycle: starting a scheduled pod (conditions, container statuses, pod
//! IP), the crash loops of the `crashloop-rollout` scenario, and graceful deletion (terminating,
//! not Ready, gone after the grace period). Imports only the sim's own modules; nothing from
//! the client side.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::{ClusterState, MAX_GRACE, Timer, obj_str, set_condition};
use crate::sim::resources::Kind;
use crate::sim::store::{Key, timestamp};

impl ClusterState {
    pub(super) fn start_pod(&mut self, ns: &str, name: &str, uid: &str) {
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

    /// A pod created through the API already bound to a node starts like any other.
    pub fn start_pod_later(&mut self, ns: &str, name: &str) {
        if let Some(s) = self.store.get(Kind::Pod, ns, name) {
            let uid = s.uid.to_string();
            self.start_pod_after(ns, name, uid);
        }
    }

    pub(super) fn advance_crash_loops(&mut self) {
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
}
