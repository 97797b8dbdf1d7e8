//! The scheduler (kube-scheduler's default profile, as far as the sim needs it): picks a node
//! for each pending pod from readiness, taints and tolerations, the node selector, free GPUs
//! and pod slots, or marks the pod unschedulable with the scheduler's own message. Imports
//! only the sim's own modules; nothing from the client side.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ClusterState, obj_str, set_condition};
use crate::sim::resources::Kind;

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

impl ClusterState {
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
    pub(super) fn schedule(&mut self, ns: &str, name: &str) {
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
                self.start_pod_after(ns, name, uid);
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

    /// A pod created through the API without a node goes to the scheduler.
    pub fn schedule_new_pod(&mut self, ns: &str, name: &str) {
        self.schedule(ns, name);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::test_support::cluster_with_deployment;
    use crate::sim::resources::Kind;

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
}
