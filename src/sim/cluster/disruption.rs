//! The disruption controller and the eviction subresource: PodDisruptionBudget counts and
//! status, and evictions that a budget allowing no disruption refuses with 429. Imports only
//! the sim's own modules; nothing from the client side.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Value, json};

use super::{ClusterState, obj_str};
use crate::sim::resources::{Kind, def};
use crate::sim::store::{ApiError, Stored, timestamp};

/// Outcome of an eviction request, as the eviction subresource answers it.
pub enum EvictionOutcome {
    Evicted,
    Refused(ApiError),
}

impl ClusterState {
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

    pub(super) fn update_pdb_status(&mut self, ns: &str, name: &str) {
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

    pub fn refresh_pdb(&mut self, ns: &str, name: &str) {
        self.update_pdb_status(ns, name);
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{cluster_with_deployment, settle};
    use super::EvictionOutcome;
    use crate::sim::resources::Kind;

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
