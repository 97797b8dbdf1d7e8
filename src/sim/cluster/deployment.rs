//! The deployment and replica set controllers: a ReplicaSet per pod template (named by the
//! pod-template-hash, reused with the next revision on rollback), scaling to `spec.replicas`,
//! and the status and conditions of both. Imports only the sim's own modules; nothing from the
//! client side.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ClusterState, obj_str, owner_ref, set_condition};
use crate::sim::resources::Kind;

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

impl ClusterState {
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

    pub(super) fn update_replicaset_status(&mut self, ns: &str, name: &str) {
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
            .owned_by(Kind::ReplicaSet, &uid)
            .filter(|((n, _), _)| n == ns)
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

    pub(super) fn update_deployment_status(&mut self, ns: &str, name: &str) {
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
            .owned_by(Kind::ReplicaSet, &uid)
            .filter(|((n, _), _)| n == ns)
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
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::test_support::{cluster_with_deployment, settle};
    use crate::sim::resources::Kind;

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
}
