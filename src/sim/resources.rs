//! The resource kinds the simulated API server serves, and how discovery describes them.
//! Imports nothing outside the sim.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Event,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    PodDisruptionBudget,
    Lease,
    InferenceService,
    PyTorchJob,
    SparkApplication,
}

pub struct Subresource {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

pub struct ResourceDef {
    pub kind: Kind,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind_name: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind_name)
    }

    /// `pods` or `deployments.apps`, as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS: Subresource = Subresource {
    name: "status",
    group: "",
    version: "",
    kind: "",
    verbs: &["get", "patch", "update"],
};

/// The `autoscaling/v1` Scale of a Deployment or StatefulSet.
const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: &["get", "patch", "update"],
};

pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        kind: Kind::Namespace,
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind_name: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::Node,
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind_name: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::Pod,
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind_name: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: RW,
        subresources: &[
            Subresource {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
            STATUS,
        ],
    },
    ResourceDef {
        kind: Kind::Event,
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind_name: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: RW,
        subresources: &[],
    },
    ResourceDef {
        kind: Kind::Deployment,
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind_name: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: RW,
        subresources: &[SCALE, STATUS],
    },
    ResourceDef {
        kind: Kind::ReplicaSet,
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind_name: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::StatefulSet,
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind_name: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        verbs: RW,
        subresources: &[SCALE, STATUS],
    },
    ResourceDef {
        kind: Kind::DaemonSet,
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind_name: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::Job,
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind_name: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::PodDisruptionBudget,
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind_name: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::Lease,
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind_name: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[],
    },
    ResourceDef {
        kind: Kind::InferenceService,
        group: "serving.kserve.io",
        version: "v1beta1",
        plural: "inferenceservices",
        singular: "inferenceservice",
        kind_name: "InferenceService",
        namespaced: true,
        short_names: &["isvc"],
        categories: &[],
        verbs: RW,
        subresources: &[STATUS],
    },
    ResourceDef {
        kind: Kind::PyTorchJob,
        group: "kubeflow.org",
        version: "v1",
        plural: "pytorchjobs",
        singular: "pytorchjob",
        kind_name: "PyTorchJob",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW,
        subresources: &[STATUS],
    },
    // The Kubeflow Spark operator's CRD (`sparkoperator.k8s.io_sparkapplications.yaml`), with
    // its short name.
    ResourceDef {
        kind: Kind::SparkApplication,
        group: "sparkoperator.k8s.io",
        version: "v1beta2",
        plural: "sparkapplications",
        singular: "sparkapplication",
        kind_name: "SparkApplication",
        namespaced: true,
        short_names: &["sparkapp"],
        categories: &[],
        verbs: RW,
        subresources: &[STATUS],
    },
];

pub fn def(kind: Kind) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|d| d.kind == kind)
        .unwrap_or(&RESOURCES[0])
}

/// The resource at `group/version/plural`, if served.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|d| d.group == group && d.version == version && d.plural == plural)
}

/// Groups other than core, in the order discovery lists them.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for d in RESOURCES {
        if !d.group.is_empty() && !out.contains(&(d.group, d.version)) {
            out.push((d.group, d.version));
        }
    }
    out
}

fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    RESOURCES
        .iter()
        .filter(move |d| d.group == group && d.version == version)
}

/// `APIResourceList` for `/api/v1` or `/apis/G/V` (the non-aggregated discovery document).
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<_> = resources_in(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind_name,
            "verbs": d.verbs,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        for s in d.subresources {
            let mut sr = json!({
                "name": format!("{}/{}", d.plural, s.name),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": if s.kind.is_empty() { d.kind_name } else { s.kind },
                "verbs": s.verbs,
            });
            if !s.group.is_empty() {
                sr["group"] = json!(s.group);
                sr["version"] = json!(s.version);
            }
            resources.push(sr);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    })
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_json(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut out = group_json(g, v);
    out["kind"] = json!("APIGroup");
    out["apiVersion"] = json!("v1");
    Some(out)
}

/// Aggregated discovery (`apidiscovery.k8s.io` `v2` or `v2beta1`): the whole of `/api` (core) or
/// `/apis` (every group) in one document.
pub fn aggregated_discovery(core: bool, api_version: &str) -> Value {
    let gvs: Vec<(&str, &str)> = if core { vec![("", "v1")] } else { groups() };
    let mut items = Vec::new();
    for (group, version) in gvs {
        let mut resources = Vec::new();
        for d in resources_in(group, version) {
            let subresources: Vec<Value> = d
                .subresources
                .iter()
                .map(|s| {
                    let (g, v, k) = if s.kind.is_empty() {
                        (d.group, d.version, d.kind_name)
                    } else {
                        (s.group, s.version, s.kind)
                    };
                    json!({
                        "subresource": s.name,
                        "responseKind": {"group": g, "version": v, "kind": k},
                        "verbs": s.verbs,
                    })
                })
                .collect();
            let mut r = json!({
                "resource": d.plural,
                "responseKind": {"group": d.group, "version": d.version, "kind": d.kind_name},
                "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": d.singular,
                "verbs": d.verbs,
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                r["categories"] = json!(d.categories);
            }
            if !subresources.is_empty() {
                r["subresources"] = json!(subresources);
            }
            resources.push(r);
        }
        items.push(json!({
            "metadata": {"name": group, "creationTimestamp": null},
            "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
        }));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}
