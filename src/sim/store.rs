//! One simulated cluster's object store: compact JSON bytes per object with the few indexed
//! fields selectors and controllers need, a cluster-wide resourceVersion, and a bounded
//! history of watch events. Imports nothing outside the sim.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::{Kind, ResourceDef, def};

/// A Kubernetes `Status` failure, as the API server answers it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn not_found(d: &ResourceDef, name: &str) -> Self {
        Self::about_object(404, "NotFound", d, name, "not found")
    }
    pub fn already_exists(d: &ResourceDef, name: &str) -> Self {
        Self::about_object(409, "AlreadyExists", d, name, "already exists")
    }
    /// An error about one named object, with the details kubectl reads (`name`, `group`,
    /// `kind`): `deployments.apps "web" not found`.
    fn about_object(
        code: u16,
        reason: &'static str,
        d: &ResourceDef,
        name: &str,
        what: &str,
    ) -> Self {
        let mut e = Self::new(code, reason, format!("{} \"{name}\" {what}", d.qualified()));
        e.details = Some(json!({"name": name, "group": d.group, "kind": d.plural}));
        e
    }
    pub fn conflict(d: &ResourceDef, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                d.qualified()
            ),
        );
        e.details = Some(json!({"name": name, "group": d.group, "kind": d.plural}));
        e
    }
    pub fn invalid(d: &ResourceDef, name: &str, field: &str, why: &str) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {field}: {why}", d.kind_name),
        );
        e.details = Some(json!({
            "name": name, "group": d.group, "kind": d.kind_name,
            "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
        }));
        e
    }
    /// A path that names no served resource (an unknown group, version or plural).
    pub fn no_such_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// One stored object: its JSON, and what selectors and controllers look up without parsing it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub raw: Bytes,
    pub rv: u64,
    pub labels: Arc<BTreeMap<String, String>>,
    pub fields: Arc<Vec<(&'static str, String)>>,
    /// uid of the controller ownerReference.
    pub owner: Option<Arc<str>>,
    pub uid: Arc<str>,
    pub ready: bool,
    pub terminating: bool,
    /// A pod that is neither Succeeded nor Failed.
    pub active: bool,
    pub gpus: u32,
    /// Nodes only: what the scheduler needs without parsing the node.
    pub node: Option<Arc<NodeSched>>,
}

/// What the scheduler reads of a node.
#[derive(Debug, Clone, Default)]
pub struct NodeSched {
    pub unschedulable: bool,
    pub ready: bool,
    /// (key, value, effect)
    pub taints: Vec<(String, String, String)>,
    pub gpu_allocatable: u32,
    pub pods_allocatable: u32,
}

fn quantity_u32(v: Option<&Value>) -> u32 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as u32,
        _ => 0,
    }
}

fn node_sched(v: &Value) -> NodeSched {
    let taints = v
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (s("key"), s("value"), s("effect"))
                })
                .collect()
        })
        .unwrap_or_default();
    let ready = condition_ready(v);
    NodeSched {
        unschedulable: v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true),
        ready,
        taints,
        gpu_allocatable: quantity_u32(v.pointer("/status/allocatable/nvidia.com~1gpu")),
        pods_allocatable: quantity_u32(v.pointer("/status/allocatable/pods")),
    }
}

impl Stored {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.raw).unwrap_or(Value::Null)
    }

    /// This state of the object relabelled with another resourceVersion.
    pub fn at_rv(&self, rv: u64) -> Stored {
        let mut v = self.value();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        Stored {
            raw: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            rv,
            ..self.clone()
        }
    }
}

/// The fields each kind can be selected by, besides `metadata.name` / `metadata.namespace`.
pub fn selectable_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "spec.nodeName",
            "status.phase",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Node => &["spec.unschedulable"],
        Kind::Namespace => &["status.phase"],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        Kind::Job => &["status.successful"],
        _ => &[],
    }
}

fn pointer_str(v: &Value, dotted: &str) -> String {
    let path = if dotted == "source" {
        "/source/component".to_string()
    } else {
        format!("/{}", dotted.replace('.', "/"))
    };
    match v.pointer(&path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn pod_gpus(v: &Value) -> u32 {
    v.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.pointer("/resources/limits/nvidia.com~1gpu"))
                .filter_map(|q| match q {
                    Value::String(s) => s.parse::<u32>().ok(),
                    Value::Number(n) => n.as_u64().map(|n| n as u32),
                    _ => None,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn index(kind: Kind, v: &Value, raw: Bytes, rv: u64) -> Stored {
    let labels: BTreeMap<String, String> = v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let fields: Vec<(&'static str, String)> = selectable_fields(kind)
        .iter()
        .map(|f| (*f, pointer_str(v, f)))
        .collect();
    let owner = v
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|r| r.get("uid").and_then(Value::as_str))
        .map(Arc::from);
    let uid: Arc<str> = Arc::from(
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    let terminating = v
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let (ready, active, gpus) = if kind == Kind::Pod {
        let phase = v
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ready = condition_ready(v);
        (
            ready && !terminating,
            phase != "Succeeded" && phase != "Failed",
            pod_gpus(v),
        )
    } else {
        (false, true, 0)
    };
    Stored {
        raw,
        rv,
        labels: Arc::new(labels),
        fields: Arc::new(fields),
        owner,
        uid,
        ready,
        terminating,
        active,
        gpus,
        node: (kind == Kind::Node).then(|| Arc::new(node_sched(v))),
    }
}

pub type Key = (String, String);

#[derive(Debug)]
pub struct WatchEvent {
    pub kind: Kind,
    pub typ: &'static str,
    /// The object's previous state (MODIFIED only), so filtered watches can tell an object
    /// that stopped matching (DELETED to them) from one that started (ADDED).
    pub prev: Option<Stored>,
    pub namespace: String,
    pub name: String,
    pub obj: Stored,
}

/// Requests seen by one cluster's API server, reported on the control address.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub requests: u64,
    pub mutating: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// Requests by the RBAC permission they need: `verb group/resource` (`list apps/statefulsets`,
    /// `create /pods/eviction` for the core group), so a test can hold a Role against what a
    /// client really asked for.
    pub by_permission: BTreeMap<String, u64>,
    pub evictions_allowed: u64,
    pub evictions_refused_pdb: u64,
    pub watches_started: u64,
    pub watches_open: u64,
    pub injected_failures: u64,
}

/// Per-node usage, kept up to date as pods come and go, for the scheduler.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeUsage {
    pub gpus: u32,
    pub pods: u32,
}

pub const HISTORY_CAP: usize = 20_000;

pub struct ClusterStore {
    pub name: String,
    pub rv: u64,
    objects: HashMap<Kind, BTreeMap<Key, Stored>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// The oldest resourceVersion a watch may start from; older ones get 410 Gone.
    pub window_start: u64,
    pub tx: broadcast::Sender<Arc<WatchEvent>>,
    pub counters: Counters,
    pub usage: HashMap<String, NodeUsage>,
    /// uid → (kind, key) for objects that own others.
    pub owners: HashMap<Arc<str>, (Kind, Key)>,
    /// (kind, controller uid) → keys of the objects of that kind it controls, so controllers
    /// find a ReplicaSet's pods without scanning a namespace of tens of thousands.
    children: HashMap<(Kind, Arc<str>), BTreeSet<Key>>,
    uid_seed: u64,
    uid_counter: u64,
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl ClusterStore {
    pub fn new(name: &str, uid_seed: u64) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        Self {
            name: name.to_string(),
            rv: 1000,
            objects: HashMap::new(),
            history: VecDeque::new(),
            window_start: 1000,
            tx,
            counters: Counters::default(),
            usage: HashMap::new(),
            owners: HashMap::new(),
            children: HashMap::new(),
            uid_seed,
            uid_counter: 0,
        }
    }

    /// A deterministic (per seed and creation order) RFC 4122-shaped uid.
    pub fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let mut x = self.uid_seed ^ self.uid_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let a = next();
        let b = next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    pub fn map(&self, kind: Kind) -> Option<&BTreeMap<Key, Stored>> {
        self.objects.get(&kind)
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Stored> {
        self.objects
            .get(&kind)?
            .get(&(ns.to_string(), name.to_string()))
    }

    pub fn get_value(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.get(kind, ns, name).map(Stored::value)
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.objects.get(&kind).map_or(0, BTreeMap::len)
    }

    /// Objects of `kind` whose controller ownerReference has `owner_uid`, in key order.
    pub fn owned_by<'a>(
        &'a self,
        kind: Kind,
        owner_uid: &str,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        let map = self.objects.get(&kind);
        self.children
            .get(&(kind, Arc::from(owner_uid)))
            .into_iter()
            .flatten()
            .filter_map(move |k| map?.get_key_value(k))
    }

    fn unlink_child(&mut self, kind: Kind, key: &Key, old: &Stored) {
        if let Some(owner) = &old.owner
            && let Some(set) = self.children.get_mut(&(kind, owner.clone()))
        {
            set.remove(key);
            if set.is_empty() {
                self.children.remove(&(kind, owner.clone()));
            }
        }
    }

    /// Objects of `kind` in namespace `ns` (all namespaces when `None`), in key order.
    pub fn iter_ns<'a>(
        &'a self,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Stored)> + 'a> {
        let Some(map) = self.objects.get(&kind) else {
            return Box::new(std::iter::empty());
        };
        match ns {
            None => Box::new(map.iter()),
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
        }
    }

    fn account(&mut self, kind: Kind, old: Option<&Stored>, new: Option<&Stored>) {
        if kind != Kind::Pod {
            return;
        }
        for (s, sign) in [(old, -1i64), (new, 1i64)] {
            let Some(s) = s else { continue };
            let node = s.field("spec.nodeName").unwrap_or("");
            if node.is_empty() || !s.active {
                continue;
            }
            let u = self.usage.entry(node.to_string()).or_default();
            u.gpus = (u.gpus as i64 + sign * s.gpus as i64).max(0) as u32;
            u.pods = (u.pods as i64 + sign).max(0) as u32;
        }
    }

    fn emit(
        &mut self,
        kind: Kind,
        typ: &'static str,
        key: &Key,
        obj: Stored,
        prev: Option<Stored>,
    ) {
        let ev = Arc::new(WatchEvent {
            kind,
            typ,
            prev,
            namespace: key.0.clone(),
            name: key.1.clone(),
            obj,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY_CAP {
            if let Some(old) = self.history.pop_front() {
                self.window_start = old.obj.rv;
            }
        }
        let _ = self.tx.send(ev);
    }

    fn key_of(kind: Kind, v: &Value) -> Key {
        let ns = if def(kind).namespaced {
            v.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (ns, name)
    }

    /// Saves `v` under a new resourceVersion and tells watchers. `typ` is ADDED or MODIFIED.
    fn save(&mut self, kind: Kind, mut v: Value, typ: &'static str, emit: bool) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let key = Self::key_of(kind, &v);
        let raw = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        let stored = index(kind, &v, raw, rv);
        let old = self
            .objects
            .entry(kind)
            .or_default()
            .insert(key.clone(), stored.clone());
        if let Some(old) = &old {
            self.unlink_child(kind, &key, old);
        }
        if let Some(owner) = &stored.owner {
            self.children
                .entry((kind, owner.clone()))
                .or_default()
                .insert(key.clone());
        }
        self.account(kind, old.as_ref(), Some(&stored));
        if !matches!(kind, Kind::Pod | Kind::Event) {
            self.owners.insert(stored.uid.clone(), (kind, key.clone()));
        }
        if emit {
            self.emit(kind, typ, &key, stored, old);
        } else {
            self.window_start = self.rv;
        }
        v
    }

    /// Creates an object, filling uid, creationTimestamp, namespace and generation.
    pub fn create(&mut self, kind: Kind, mut v: Value, emit: bool) -> Result<Value, ApiError> {
        let d = def(kind);
        v["kind"] = json!(d.kind_name);
        v["apiVersion"] = json!(d.api_version());
        if !v.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::invalid(d, "", "metadata", "Required value"));
        }
        let has_name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            let Some(prefix) = v
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return Err(ApiError::invalid(
                    d,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            };
            let suffix = &self.next_uid()[..5];
            v["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let key = Self::key_of(kind, &v);
        if !valid_name(&key.1) {
            return Err(ApiError::invalid(
                d,
                &key.1,
                "metadata.name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ));
        }
        if d.namespaced {
            if kind != Kind::Namespace
                && !key.0.is_empty()
                && self.get(Kind::Namespace, "", &key.0).is_none()
            {
                return Err(ApiError::not_found(def(Kind::Namespace), &key.0));
            }
            v["metadata"]["namespace"] = json!(key.0);
        } else if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if self.get(kind, &key.0, &key.1).is_some() {
            return Err(ApiError::already_exists(d, &key.1));
        }
        let uid = self.next_uid();
        let meta = &mut v["metadata"];
        meta["uid"] = json!(uid);
        if meta.get("creationTimestamp").is_none_or(Value::is_null) {
            meta["creationTimestamp"] = json!(timestamp(Utc::now()));
        }
        if matches!(
            kind,
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet | Kind::Job
        ) && meta.get("generation").is_none()
        {
            meta["generation"] = json!(1);
        }
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        Ok(self.save(kind, v, "ADDED", emit))
    }

    /// Replaces an existing object as it is (the caller has applied its change).
    pub fn replace(&mut self, kind: Kind, v: Value) -> Value {
        self.save(kind, v, "MODIFIED", true)
    }

    /// Removes an object now; watchers see DELETED with a fresh resourceVersion.
    pub fn remove(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let key = (ns.to_string(), name.to_string());
        let old = self.objects.get_mut(&kind)?.remove(&key)?;
        self.unlink_child(kind, &key, &old);
        self.account(kind, Some(&old), None);
        self.owners.remove(&old.uid);
        self.rv += 1;
        let mut v = old.value();
        v["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let raw = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        let stored = index(kind, &v, raw, self.rv);
        self.emit(kind, "DELETED", &key, stored, None);
        Some(v)
    }

    /// Events after `rv` still in the window, or `None` when `rv` is older than the window.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<WatchEvent>>> {
        if rv < self.window_start {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|e| e.obj.rv > rv)
                .cloned()
                .collect(),
        )
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether an object's (a node's, a pod's) `Ready` condition is `True`.
fn condition_ready(v: &Value) -> bool {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_increase_across_kinds() {
        let mut s = ClusterStore::new("t", 7);
        let ns = s
            .create(Kind::Namespace, json!({"metadata": {"name": "a"}}), true)
            .unwrap();
        let pod = s
            .create(
                Kind::Pod,
                json!({"metadata": {"name": "p", "namespace": "a"}}),
                true,
            )
            .unwrap();
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&pod) > rv(&ns));
        assert_eq!(s.events_since(rv(&ns)).unwrap().len(), 1);
    }

    #[test]
    fn create_refuses_duplicates_and_missing_namespaces() {
        let mut s = ClusterStore::new("t", 7);
        let pod = json!({"metadata": {"name": "p", "namespace": "nope"}});
        assert_eq!(s.create(Kind::Pod, pod, true).unwrap_err().code, 404);
        s.create(Kind::Namespace, json!({"metadata": {"name": "a"}}), true)
            .unwrap();
        let err = s
            .create(Kind::Namespace, json!({"metadata": {"name": "a"}}), true)
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
    }

    #[test]
    fn uids_are_deterministic_per_seed() {
        let mut a = ClusterStore::new("t", 1);
        let mut b = ClusterStore::new("t", 1);
        assert_eq!(a.next_uid(), b.next_uid());
        assert_ne!(a.next_uid(), ClusterStore::new("t", 2).next_uid());
    }
}
