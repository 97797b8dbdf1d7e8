//! The garbage collector and the namespace controller: deleting an object takes its dependents
//! with it (background cascading deletion), a namespace takes everything in it, and a node
//! takes the pods bound to it (pod garbage collection). Imports only the sim's own modules;
//! nothing from the client side.

use serde_json::Value;

use super::{ClusterState, obj_str};
use crate::sim::resources::Kind;
use crate::sim::store::Key;

impl ClusterState {
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
                Kind::StatefulSet,
                Kind::DaemonSet,
                Kind::Job,
                Kind::PyTorchJob,
                Kind::SparkApplication,
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
}
