//! The node lifecycle controller: a node whose kubelet stops reporting goes NotReady, with
//! Unknown conditions, the unreachable taints, and its pods no longer Ready. Imports only the
//! sim's own modules; nothing from the client side.

use chrono::Utc;
use serde_json::json;

use super::{ClusterState, set_condition};
use crate::sim::resources::Kind;
use crate::sim::store::{Key, timestamp};

impl ClusterState {
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
