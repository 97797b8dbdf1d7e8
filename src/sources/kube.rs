//! The Kubernetes source: per cluster and resource, a paged list then a watch (kube-rs's
//! client underneath, the list/watch loop on top), straight into compact projections that
//! keep only the fields the cockpit reads. A 410 re-lists (the old picture stays until the
//! new list is complete); broken watches resume from the last resourceVersion with jittered
//! backoff; RBAC refusals and missing CRDs are reported per resource. A watch that hears
//! nothing (no event, no bookmark) for the idle limit is taken for a dead connection, shown as
//! reconnecting and resumed; TCP keepalive is on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use kube::Client;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::model::update::Update;
pub use crate::model::update::{
    ContainerRecord, DeploymentRecord, EventRecord, KubeEvent, Labels, NodeRecord, Phase,
    PodRecord, Record, Resource,
};
use crate::model::{
    CapacityType, InferenceServiceModel, NodeReadiness, PdbModel, SyncState, Taint, WorkloadCounts,
    WorkloadKind, WorkloadModel, WorkloadState,
};

/// Where each watched resource is listed and watched.
fn resource_path(resource: Resource) -> &'static str {
    match resource {
        Resource::Nodes => "/api/v1/nodes",
        Resource::Pods => "/api/v1/pods",
        Resource::Deployments => "/apis/apps/v1/deployments",
        Resource::PodDisruptionBudgets => "/apis/policy/v1/poddisruptionbudgets",
        Resource::Events => "/api/v1/events",
        Resource::InferenceServices => "/apis/serving.kserve.io/v1beta1/inferenceservices",
        Resource::StatefulSets => "/apis/apps/v1/statefulsets",
        Resource::DaemonSets => "/apis/apps/v1/daemonsets",
        Resource::Jobs => "/apis/batch/v1/jobs",
    }
}

fn field_selector(_resource: Resource) -> Option<&'static str> {
    None
}

// ---- compact projections: only what the cockpit reads -------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    deletion_timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "kept_labels")]
    labels: LabelPairs,
    #[serde(default, deserialize_with = "kept_annotations")]
    annotations: KeptAnnotations,
}

/// The annotations the cockpit reads; the rest are dropped while parsing.
#[derive(Debug, Clone, Default)]
struct KeptAnnotations {
    /// `deployment.kubernetes.io/revision`.
    revision: Option<u64>,
    /// `fleetdeck.io/registered-model`.
    registered_model: Option<String>,
}

/// Labels the cockpit reads; the rest are dropped while parsing.
const KEPT_LABELS: &[&str] = &[
    "karpenter.sh/capacity-type",
    "eks.amazonaws.com/capacityType",
    "eks.amazonaws.com/capacitytype",
    "cloud.google.com/gke-spot",
    "cloud.google.com/gke-preemptible",
    "cloud.google.com/reservation-name",
    "kubernetes.azure.com/scalesetpriority",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "nvidia.com/gpu.product",
    "training.kubeflow.org/job-name",
];

/// (key, value) pairs, boxed: labels are few and never change in place.
type LabelPairs = Vec<(Box<str>, Box<str>)>;

fn kept_labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LabelPairs, D::Error> {
    let all: Option<BTreeMap<String, String>> = Option::deserialize(d)?;
    Ok(all
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            KEPT_LABELS
                .iter()
                .chain(crate::model::NODE_POOL_LABELS.iter())
                .any(|kept| kept.eq_ignore_ascii_case(k))
        })
        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
        .collect())
}

fn kept_annotations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KeptAnnotations, D::Error> {
    let Some(mut all): Option<BTreeMap<String, String>> = Option::deserialize(d)? else {
        return Ok(KeptAnnotations::default());
    };
    Ok(KeptAnnotations {
        revision: all
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok()),
        registered_model: all
            .remove(crate::model::registry::REGISTERED_MODEL_ANNOTATION)
            .filter(|v| !v.trim().is_empty()),
    })
}

impl Meta {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }
}

fn quantity_u32(q: &Option<serde_json::Value>) -> u32 {
    match q {
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        _ => 0,
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct GpuQuantity {
    #[serde(default, rename = "nvidia.com/gpu")]
    gpu: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    last_transition_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeSpec {
    #[serde(default)]
    unschedulable: bool,
    #[serde(default)]
    taints: Vec<Taint>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus {
    #[serde(default)]
    capacity: GpuQuantity,
    #[serde(default)]
    allocatable: GpuQuantity,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeObject {
    metadata: Meta,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Resources {
    #[serde(default)]
    limits: GpuQuantity,
    #[serde(default)]
    requests: GpuQuantity,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resources: Resources,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct StateDetail {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ContainerState {
    #[serde(default)]
    waiting: Option<StateDetail>,
    #[serde(default)]
    terminated: Option<StateDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: u32,
    #[serde(default)]
    state: ContainerState,
    #[serde(default)]
    last_state: ContainerState,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodMeta {
    #[serde(flatten)]
    meta: Meta,
    #[serde(default)]
    owner_references: Vec<OwnerReference>,
    /// Every label (a pod's are read by `-l` selectors), taken here before `Meta` keeps only
    /// the few it knows.
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PodObject {
    metadata: PodMeta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentSpec {
    #[serde(default)]
    replicas: Option<u32>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    template: TemplateImages,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct TemplateImages {
    #[serde(default)]
    spec: ImagesSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ImagesSpec {
    #[serde(default)]
    containers: Vec<Image>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Image {
    #[serde(default)]
    image: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentStatus {
    #[serde(default)]
    ready_replicas: u32,
    #[serde(default)]
    updated_replicas: u32,
    #[serde(default)]
    available_replicas: u32,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentObject {
    metadata: Meta,
    #[serde(default)]
    spec: DeploymentSpec,
    #[serde(default)]
    status: DeploymentStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PdbStatus {
    #[serde(default)]
    disruptions_allowed: u32,
    #[serde(default)]
    current_healthy: u32,
    #[serde(default)]
    desired_healthy: u32,
    #[serde(default)]
    expected_pods: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PdbObject {
    metadata: Meta,
    #[serde(default)]
    status: PdbStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvolvedObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventObject {
    metadata: Meta,
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default)]
    involved_object: InvolvedObject,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    last_timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    event_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PredictorSpec {
    #[serde(default)]
    canary_traffic_percent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct IsvcSpec {
    #[serde(default)]
    predictor: PredictorSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PredictorStatus {
    #[serde(default)]
    latest_ready_revision: Option<String>,
    #[serde(default)]
    previous_rolledout_revision: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct IsvcComponents {
    #[serde(default)]
    predictor: PredictorStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct IsvcStatus {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    components: IsvcComponents,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InferenceServiceObject {
    metadata: Meta,
    #[serde(default)]
    spec: IsvcSpec,
    #[serde(default)]
    status: IsvcStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatefulSetSpec {
    #[serde(default)]
    replicas: Option<u32>,
    #[serde(default)]
    template: TemplateImages,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatefulSetStatus {
    #[serde(default)]
    ready_replicas: u32,
    #[serde(default)]
    updated_replicas: u32,
    #[serde(default)]
    available_replicas: u32,
    #[serde(default)]
    current_revision: Option<String>,
    #[serde(default)]
    update_revision: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatefulSetObject {
    metadata: Meta,
    #[serde(default)]
    spec: StatefulSetSpec,
    #[serde(default)]
    status: StatefulSetStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct TemplateOnly {
    #[serde(default)]
    template: TemplateImages,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DaemonSetStatus {
    #[serde(default)]
    desired_number_scheduled: u32,
    #[serde(default)]
    number_ready: u32,
    #[serde(default)]
    updated_number_scheduled: u32,
    #[serde(default)]
    number_available: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DaemonSetObject {
    metadata: Meta,
    #[serde(default)]
    spec: TemplateOnly,
    #[serde(default)]
    status: DaemonSetStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobSpec {
    #[serde(default)]
    completions: Option<u32>,
    #[serde(default)]
    suspend: Option<bool>,
    #[serde(default)]
    template: TemplateImages,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobStatus {
    #[serde(default)]
    active: u32,
    #[serde(default)]
    succeeded: u32,
    #[serde(default)]
    failed: u32,
    #[serde(default)]
    completion_time: Option<DateTime<Utc>>,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobObject {
    metadata: Meta,
    #[serde(default)]
    spec: JobSpec,
    #[serde(default)]
    status: JobStatus,
}

fn images(t: TemplateImages) -> Vec<String> {
    t.spec.containers.into_iter().map(|c| c.image).collect()
}

/// Interns namespace, node, owner and container names, label keys and values, and whole
/// label sets, so 150,000 pods share a few thousand strings. Strings no record holds any more
/// (a finished Job's uid) are dropped whenever the table has doubled since the last sweep, so
/// churn does not grow it for ever.
#[derive(Default)]
pub struct Interner {
    strings: std::collections::HashSet<Arc<str>>,
    label_sets: std::collections::HashSet<Labels>,
    swept_at: usize,
}

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        self.sweep();
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    /// The shared label set with these pairs, sorted by key.
    pub fn labels(&mut self, pairs: &BTreeMap<String, String>) -> Labels {
        let set: Vec<(Arc<str>, Arc<str>)> = pairs
            .iter()
            .map(|(k, v)| (self.get(k), self.get(v)))
            .collect();
        if let Some(a) = self.label_sets.get(set.as_slice()) {
            return a.clone();
        }
        let a: Labels = Arc::from(set);
        self.label_sets.insert(a.clone());
        a
    }

    fn sweep(&mut self) {
        let size = self.strings.len() + self.label_sets.len();
        if size < 4096 || size < self.swept_at * 2 {
            return;
        }
        self.label_sets.retain(|a| Arc::strong_count(a) > 1);
        self.strings.retain(|a| Arc::strong_count(a) > 1);
        self.swept_at = self.strings.len() + self.label_sets.len();
    }
}

/// The pod's controlling workload as `Kind/name`; a ReplicaSet named `<deployment>-<hash>`
/// whose hash is the pod's `pod-template-hash` leads to its Deployment.
fn controlling_owner(
    owners: &[OwnerReference],
    labels: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let o = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(owners.first())?;
    let hash = labels.and_then(|l| l.get("pod-template-hash"));
    if o.kind == "ReplicaSet"
        && let Some(deployment) = hash
            .and_then(|h| o.name.strip_suffix(h.as_str()))
            .and_then(|d| d.strip_suffix('-'))
            .filter(|d| !d.is_empty())
    {
        return Some(format!("Deployment/{deployment}"));
    }
    Some(format!("{}/{}", o.kind, o.name))
}

/// A projection that can become a record.
pub trait Projection: DeserializeOwned + Clone + Send + 'static {
    const RESOURCE: Resource;
    fn meta(&self) -> &Meta;
    fn into_record(self, interner: &mut Interner) -> Record;

    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }

    /// (namespace, name); namespace is empty for cluster-scoped objects.
    fn ns_name(&self) -> (String, String) {
        let m = self.meta();
        (m.namespace.clone().unwrap_or_default(), m.name.clone())
    }
}

fn ready_of(conds: &[Condition]) -> Option<&Condition> {
    conds.iter().find(|c| c.type_ == "Ready")
}

impl Projection for NodeObject {
    const RESOURCE: Resource = Resource::Nodes;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let m = &self.metadata;
        let ready = ready_of(&self.status.conditions);
        let readiness = match ready.map(|c| c.status.as_str()) {
            Some("True") => NodeReadiness::Ready,
            Some("False") => NodeReadiness::NotReady,
            _ => NodeReadiness::Unknown,
        };
        Record::Node(NodeRecord {
            name: m.name.clone(),
            readiness,
            readiness_since: ready.and_then(|c| c.last_transition_time),
            cordoned: self.spec.unschedulable,
            taints: self.spec.taints,
            capacity_type: CapacityType::from_labels(m.labels.iter().map(|(k, v)| (&**k, &**v))),
            instance_type: m
                .label("node.kubernetes.io/instance-type")
                .or_else(|| m.label("beta.kubernetes.io/instance-type"))
                .map(str::to_string),
            pool: crate::model::node_pool(m.labels.iter().map(|(k, v)| (&**k, &**v))),
            zone: m
                .label("topology.kubernetes.io/zone")
                .or_else(|| m.label("failure-domain.beta.kubernetes.io/zone"))
                .map(str::to_string),
            gpu_product: m.label("nvidia.com/gpu.product").map(str::to_string),
            gpu_capacity: quantity_u32(&self.status.capacity.gpu),
            gpu_allocatable: quantity_u32(&self.status.allocatable.gpu),
            created: m.creation_timestamp,
        })
    }
}

/// A pod's conditions as `model::update::POD_CONDITIONS` orders them.
fn pod_conditions(conditions: &[Condition]) -> [Option<bool>; 5] {
    let mut out = [None; 5];
    for c in conditions {
        if let Some(i) = crate::model::update::POD_CONDITIONS
            .iter()
            .position(|t| *t == c.type_)
        {
            out[i] = Some(c.status == "True");
        }
    }
    out
}

impl Projection for PodObject {
    const RESOURCE: Resource = Resource::Pods;
    fn meta(&self) -> &Meta {
        &self.metadata.meta
    }
    fn into_record(self, interner: &mut Interner) -> Record {
        let m = &self.metadata.meta;
        let phase = match self.status.phase.as_deref() {
            Some("Pending") => Phase::Pending,
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            _ => Phase::Unknown,
        };
        let gpus = self
            .spec
            .containers
            .iter()
            .map(|c| {
                quantity_u32(&c.resources.limits.gpu).max(quantity_u32(&c.resources.requests.gpu))
            })
            // The API server bounds neither count: a sum must not overflow.
            .fold(0u32, u32::saturating_add);
        let cs = &self.status.container_statuses;
        let waiting = cs
            .iter()
            .find_map(|c| c.state.waiting.as_ref().and_then(|w| w.reason.clone()))
            .map(String::into_boxed_str);
        let last_termination = cs
            .iter()
            .find_map(|c| {
                c.last_state
                    .terminated
                    .as_ref()
                    .and_then(|t| t.reason.clone())
            })
            .map(String::into_boxed_str);
        let unschedulable = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| {
                Box::new((
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ))
            });
        let ready = ready_of(&self.status.conditions).is_some_and(|c| c.status == "True");
        let labels = self.metadata.labels.as_ref();
        let containers = self
            .spec
            .containers
            .iter()
            .map(|c| {
                let status = cs.iter().find(|s| s.name == c.name);
                let reason = |st: &ContainerState| {
                    st.waiting
                        .as_ref()
                        .or(st.terminated.as_ref())
                        .and_then(|d| d.reason.as_deref())
                        .map(Box::from)
                };
                ContainerRecord {
                    name: interner.get(&c.name),
                    ready: status.is_some_and(|s| s.ready),
                    restarts: status.map_or(0, |s| s.restart_count),
                    state: status.and_then(|s| reason(&s.state)),
                    last_termination: status.and_then(|s| {
                        s.last_state
                            .terminated
                            .as_ref()
                            .and_then(|t| t.reason.as_deref())
                            .map(Box::from)
                    }),
                }
            })
            .collect();
        Record::Pod(PodRecord {
            namespace: interner.get(m.namespace.as_deref().unwrap_or("")),
            name: m.name.clone().into_boxed_str(),
            node: self
                .spec
                .node_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| interner.get(n)),
            phase,
            ready,
            terminating: m.deletion_timestamp.is_some(),
            gpus,
            restarts: cs
                .iter()
                .map(|c| c.restart_count)
                .fold(0, u32::saturating_add),
            waiting,
            last_termination,
            unschedulable,
            gang: labels
                .and_then(|l| l.get("training.kubeflow.org/job-name"))
                .map(|j| interner.get(j)),
            daemon: self
                .metadata
                .owner_references
                .iter()
                .any(|o| o.controller == Some(true) && o.kind == "DaemonSet"),
            created: m.creation_timestamp,
            ip: self
                .status
                .pod_ip
                .filter(|ip| !ip.is_empty())
                .map(String::into_boxed_str),
            containers,
            owner: controlling_owner(&self.metadata.owner_references, labels)
                .map(|o| interner.get(&o)),
            labels: labels.map_or_else(|| Arc::from(Vec::new()), |l| interner.labels(l)),
            conditions: pod_conditions(&self.status.conditions),
        })
    }
}

impl Projection for DeploymentObject {
    const RESOURCE: Resource = Resource::Deployments;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let stalled = self.status.conditions.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        Record::Deployment(DeploymentRecord {
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            revision: self.metadata.annotations.revision,
            registered_model: self.metadata.annotations.registered_model,
            replicas: self.spec.replicas.unwrap_or(1),
            ready: self.status.ready_replicas,
            updated: self.status.updated_replicas,
            available: self.status.available_replicas,
            paused: self.spec.paused,
            stalled,
            images: self
                .spec
                .template
                .spec
                .containers
                .into_iter()
                .map(|c| c.image)
                .collect(),
        })
    }
}

impl Projection for PdbObject {
    const RESOURCE: Resource = Resource::PodDisruptionBudgets;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        Record::Pdb(PdbModel {
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            disruptions_allowed: self.status.disruptions_allowed,
            current_healthy: self.status.current_healthy,
            desired_healthy: self.status.desired_healthy,
            expected_pods: self.status.expected_pods,
        })
    }
}

impl Projection for EventObject {
    const RESOURCE: Resource = Resource::Events;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        Record::Event(EventRecord {
            warning: self.type_ == "Warning",
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            object: format!(
                "{}/{}",
                self.involved_object.kind.to_lowercase(),
                self.involved_object.name
            ),
            reason: self.reason,
            message: self.message,
            count: self.count.unwrap_or(1),
            last_seen: self
                .last_timestamp
                .or(self.event_time)
                .or(self.metadata.creation_timestamp),
        })
    }
}

impl Projection for InferenceServiceObject {
    const RESOURCE: Resource = Resource::InferenceServices;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        Record::InferenceService(InferenceServiceModel {
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            ready: ready_of(&self.status.conditions).is_some_and(|c| c.status == "True"),
            url: self.status.url,
            latest_ready_revision: self.status.components.predictor.latest_ready_revision,
            previous_rolled_out_revision: self
                .status
                .components
                .predictor
                .previous_rolledout_revision,
            canary_traffic_percent: self.spec.predictor.canary_traffic_percent,
            registered_model: self.metadata.annotations.registered_model,
        })
    }
}

impl Projection for StatefulSetObject {
    const RESOURCE: Resource = Resource::StatefulSets;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let desired = self.spec.replicas.unwrap_or(1);
        let st = self.status;
        let rolling = st.update_revision.is_some() && st.current_revision != st.update_revision;
        let complete = !rolling && st.ready_replicas >= desired && st.updated_replicas >= desired;
        Record::Workload(WorkloadModel {
            kind: WorkloadKind::StatefulSet,
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            counts: WorkloadCounts::Replicas {
                desired,
                ready: st.ready_replicas,
                updated: st.updated_replicas,
                available: st.available_replicas,
            },
            state: if complete {
                WorkloadState::Complete
            } else {
                WorkloadState::Progressing
            },
            detail: if rolling {
                st.update_revision.map(|r| format!("rolling to {r}"))
            } else {
                st.current_revision
            },
            images: images(self.spec.template),
            created: self.metadata.creation_timestamp,
            finished: None,
        })
    }
}

impl Projection for DaemonSetObject {
    const RESOURCE: Resource = Resource::DaemonSets;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let st = self.status;
        let desired = st.desired_number_scheduled;
        let complete = st.number_ready >= desired && st.updated_number_scheduled >= desired;
        Record::Workload(WorkloadModel {
            kind: WorkloadKind::DaemonSet,
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            counts: WorkloadCounts::Replicas {
                desired,
                ready: st.number_ready,
                updated: st.updated_number_scheduled,
                available: st.number_available,
            },
            state: if complete {
                WorkloadState::Complete
            } else {
                WorkloadState::Progressing
            },
            detail: None,
            images: images(self.spec.template),
            created: self.metadata.creation_timestamp,
            finished: None,
        })
    }
}

impl Projection for JobObject {
    const RESOURCE: Resource = Resource::Jobs;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let st = self.status;
        let holds = |t: &str| {
            st.conditions
                .iter()
                .find(|c| c.type_ == t && c.status == "True")
        };
        let (state, detail) = if let Some(c) = holds("Failed") {
            (WorkloadState::Failed, c.reason.clone())
        } else if holds("Complete").is_some() {
            (WorkloadState::Complete, None)
        } else if self.spec.suspend == Some(true) || holds("Suspended").is_some() {
            (WorkloadState::Suspended, None)
        } else {
            (WorkloadState::Progressing, None)
        };
        Record::Workload(WorkloadModel {
            kind: WorkloadKind::Job,
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            counts: WorkloadCounts::Job {
                completions: self.spec.completions,
                active: st.active,
                succeeded: st.succeeded,
                failed: st.failed,
            },
            state,
            detail,
            images: images(self.spec.template),
            created: self.metadata.creation_timestamp,
            finished: st.completion_time,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ObjectList<T> {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<T>,
}

// ---- clusters ------------------------------------------------------------------------------

/// One cluster to watch: a kubeconfig context, or the cluster fleetdeck runs in.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub context: String,
    pub server: String,
    pub access: ClusterAccess,
}

/// How a cluster is reached.
#[derive(Debug, Clone)]
pub enum ClusterAccess {
    /// A context of this kubeconfig.
    Kubeconfig(Box<Kubeconfig>),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` and the token mounted under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`), as kube's in-cluster config reads it.
    InCluster,
}

/// The context name of the cluster fleetdeck runs in, when it has no kubeconfig.
pub const IN_CLUSTER: &str = "in-cluster";
/// Where Kubernetes mounts a pod's service-account token.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

impl ClusterTarget {
    /// kube's client configuration for this cluster.
    pub async fn config(&self) -> Result<kube::Config, String> {
        let mut cfg = match &self.access {
            ClusterAccess::Kubeconfig(kc) => {
                let opts = KubeConfigOptions {
                    context: Some(self.context.clone()),
                    ..Default::default()
                };
                kube::Config::from_custom_kubeconfig((**kc).clone(), &opts)
                    .await
                    .map_err(|e| e.to_string())?
            }
            ClusterAccess::InCluster => kube::Config::incluster().map_err(|e| {
                format!("cannot use the pod's service account (in-cluster config): {e}")
            })?,
        };
        cfg.connect_timeout = Some(Duration::from_secs(5));
        Ok(cfg)
    }
}

/// Whether fleetdeck runs in a pod with a service account: the API server's address in the
/// environment and the token file present (`token` is its path).
fn in_cluster_available(service_host: Option<&str>, token: &Path) -> bool {
    service_host.is_some_and(|h| !h.is_empty()) && token.is_file()
}

/// The in-cluster target, when `contexts` allows it; named by `FLEETDECK_CLUSTER_NAME` (what
/// alerts call this cluster), else `in-cluster`.
fn in_cluster_target(contexts: &[String]) -> Result<Vec<ClusterTarget>, KubeSourceError> {
    let name = std::env::var("FLEETDECK_CLUSTER_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| IN_CLUSTER.to_string());
    if let Some(c) = contexts.iter().find(|c| **c != name) {
        return Err(KubeSourceError::UnknownContext {
            context: c.clone(),
            known: name,
        });
    }
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(vec![ClusterTarget {
        context: name,
        server: format!("https://{host}:{port}"),
        access: ClusterAccess::InCluster,
    }])
}

/// How the watch loop tells a dead connection from a quiet one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// A watch that receives nothing — no event, no bookmark — for this long is dropped and
    /// resumed; also the limit on one list page and on opening a watch.
    pub idle_timeout: Duration,
    /// How long a watch must stay healthy before a failure starts the backoff afresh (as
    /// kube-runtime does), so a watch that opens and fails at once backs off.
    pub healthy_after: Duration,
}

/// The server ends each watch after this many seconds; bookmarks come at least once a minute.
const WATCH_TIMEOUT_S: u32 = 290;

impl Default for Liveness {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(WATCH_TIMEOUT_S as u64 + 10),
            healthy_after: Duration::from_secs(120),
        }
    }
}

/// kube's client over a connector with TCP keepalive (the default stack has none); behind a
/// proxy from the kubeconfig, kube's own stack.
fn build_client(cfg: kube::Config) -> Result<Client, String> {
    use kube::client::ConfigExt;
    if cfg.proxy_url.is_some() {
        return Client::try_from(cfg).map_err(|e| e.to_string());
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_nodelay(true);
    http.set_connect_timeout(cfg.connect_timeout);
    let https = cfg
        .rustls_https_connector_with_connector(http)
        .map_err(|e| e.to_string())?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let auth = cfg.auth_layer().map_err(|e| e.to_string())?;
    let headers = cfg.extra_headers_layer().map_err(|e| e.to_string())?;
    let service = tower::ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(auth)
        .layer(headers)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, cfg.default_namespace))
}

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error(
        "no kubeconfig found: set KUBECONFIG, pass --kubeconfig PATH, or create ~/.kube/config"
    )]
    NoKubeconfig,
    #[error("context {context:?} is not in the kubeconfig (it has: {known})")]
    UnknownContext { context: String, known: String },
    #[error("the kubeconfig has no contexts")]
    NoContexts,
}

/// Reads the kubeconfig (`path`, else `$KUBECONFIG`, else `~/.kube/config`) and picks the
/// named contexts, or all of them when none are named.
/// Reads a kubeconfig file. One that cannot be opened is said in our words: kube's own
/// message quotes the path a second time, Debug-formatted (`'"missing.kc"'`).
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, KubeSourceError> {
    let failed = |message: String| KubeSourceError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))
}

pub fn targets(
    path: Option<&Path>,
    contexts: &[String],
) -> Result<Vec<ClusterTarget>, KubeSourceError> {
    let kc = match path {
        Some(p) => read_kubeconfig(p)?,
        None => match Kubeconfig::from_env() {
            Ok(Some(kc)) => kc,
            Ok(None) => {
                let p = dirs::home_dir().map(|h| h.join(".kube").join("config"));
                let Some(p) = p.filter(|p| p.exists()) else {
                    // No kubeconfig: in a pod, its service account (as kubectl does).
                    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
                    if in_cluster_available(host.as_deref(), Path::new(SERVICE_ACCOUNT_TOKEN)) {
                        return in_cluster_target(contexts);
                    }
                    return Err(KubeSourceError::NoKubeconfig);
                };
                read_kubeconfig(&p)?
            }
            Err(e) => {
                return Err(KubeSourceError::Kubeconfig {
                    path: PathBuf::from(std::env::var("KUBECONFIG").unwrap_or_default()),
                    message: e.to_string(),
                });
            }
        },
    };
    let known: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
    if known.is_empty() {
        return Err(KubeSourceError::NoContexts);
    }
    let chosen: Vec<String> = if contexts.is_empty() {
        known.clone()
    } else {
        for c in contexts {
            if !known.contains(c) {
                return Err(KubeSourceError::UnknownContext {
                    context: c.clone(),
                    known: known.join(", "),
                });
            }
        }
        contexts.to_vec()
    };
    Ok(chosen
        .into_iter()
        .map(|context| {
            let server = kc
                .contexts
                .iter()
                .find(|c| c.name == context)
                .and_then(|c| c.context.as_ref())
                .and_then(|c| kc.clusters.iter().find(|k| k.name == c.cluster))
                .and_then(|k| k.cluster.as_ref())
                .and_then(|k| k.server.clone())
                .unwrap_or_default();
            ClusterTarget {
                context,
                server,
                access: ClusterAccess::Kubeconfig(Box::new(kc.clone())),
            }
        })
        .collect())
}

/// Starts the watchers of one cluster: one task per resource. Errors building the client
/// are reported as every resource being unreachable (the other clusters are unaffected).
pub fn spawn_cluster(
    index: usize,
    target: ClusterTarget,
    liveness: Liveness,
    tx: mpsc::Sender<Update>,
) {
    tokio::spawn(async move {
        let client = match target.config().await {
            Ok(cfg) => build_client(cfg),
            Err(e) => Err(e),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                for r in Resource::ALL {
                    let state = SyncState::Unreachable {
                        since: Utc::now(),
                        last_error: e.clone(),
                    };
                    let _ = tx
                        .send(Update::Kube {
                            cluster: index,
                            event: KubeEvent::Sync { resource: r, state },
                        })
                        .await;
                }
                return;
            }
        };
        for r in Resource::ALL {
            let (client, tx) = (client.clone(), tx.clone());
            match r {
                Resource::Nodes => {
                    tokio::spawn(watch_resource::<NodeObject>(client, index, liveness, tx))
                }
                Resource::Pods => {
                    tokio::spawn(watch_resource::<PodObject>(client, index, liveness, tx))
                }
                Resource::Deployments => tokio::spawn(watch_resource::<DeploymentObject>(
                    client, index, liveness, tx,
                )),
                Resource::PodDisruptionBudgets => {
                    tokio::spawn(watch_resource::<PdbObject>(client, index, liveness, tx))
                }
                Resource::Events => {
                    tokio::spawn(watch_resource::<EventObject>(client, index, liveness, tx))
                }
                Resource::InferenceServices => tokio::spawn(
                    watch_resource::<InferenceServiceObject>(client, index, liveness, tx),
                ),
                Resource::StatefulSets => tokio::spawn(watch_resource::<StatefulSetObject>(
                    client, index, liveness, tx,
                )),
                Resource::DaemonSets => tokio::spawn(watch_resource::<DaemonSetObject>(
                    client, index, liveness, tx,
                )),
                Resource::Jobs => {
                    tokio::spawn(watch_resource::<JobObject>(client, index, liveness, tx))
                }
            };
        }
    });
}

/// Exponential backoff with full jitter, 250 ms doubling to 30 s.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            seed: seed | 1,
        }
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
    fn next(&mut self) -> Duration {
        self.attempt = (self.attempt + 1).min(8);
        let cap_ms = (250u64 << self.attempt).min(30_000);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_millis(cap_ms / 2 + self.seed % (cap_ms / 2 + 1))
    }
}

enum Failure {
    /// 410: the resourceVersion is too old; list again.
    Gone,
    Forbidden(String),
    NotServed,
    /// Anything else: connection refused, 5xx, a broken stream.
    Other(String),
}

impl Failure {
    /// A connection that went quiet: nothing arrived within the idle limit.
    fn silent(what: &str, limit: Duration) -> Failure {
        Failure::Other(format!(
            "{what} received nothing for {}s (no event, no bookmark): the connection looks \
             dead; reconnecting",
            limit.as_secs()
        ))
    }
}

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        classify(e)
    }
}

fn classify(e: kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) if s.code == 410 => Failure::Gone,
        kube::Error::Api(s) if s.code == 403 => Failure::Forbidden(s.message.clone()),
        kube::Error::Api(s) if s.code == 404 => Failure::NotServed,
        kube::Error::Api(s) => Failure::Other(format!("{} {}: {}", s.code, s.reason, s.message)),
        other => Failure::Other(error_chain(&other)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

/// List + watch of one resource of one cluster, forever.
async fn watch_resource<P: Projection>(
    client: Client,
    cluster: usize,
    liveness: Liveness,
    tx: mpsc::Sender<Update>,
) {
    let resource = P::RESOURCE;
    let send = |event: KubeEvent| {
        let tx = tx.clone();
        async move { tx.send(Update::Kube { cluster, event }).await.is_ok() }
    };
    let sync = |state: SyncState| send(KubeEvent::Sync { resource, state });
    let mut backoff = Backoff::new((cluster as u64 + 1) * 7919 + resource as u64);
    let mut interner = Interner::default();
    let mut ever_synced = false;
    let mut down_since: Option<DateTime<Utc>> = None;
    'relist: loop {
        // LIST, in pages; the previous picture stays until the new one is complete. (The
        // state starts every resource as listing; progress is reported page by page.)
        let mut items: Vec<Record> = Vec::new();
        let mut cont: Option<String> = None;
        let list_rv = loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(f) = field_selector(resource) {
                lp = lp.fields(f);
            }
            if let Some(c) = &cont {
                lp = lp.continue_token(c);
            }
            let page = match Request::new(resource_path(resource)).list(&lp) {
                Ok(req) => {
                    let page = client.request::<ObjectList<P>>(req);
                    match tokio::time::timeout(liveness.idle_timeout, page).await {
                        Ok(page) => page.map_err(Failure::from),
                        Err(_) => Err(Failure::silent("a list page", liveness.idle_timeout)),
                    }
                }
                Err(e) => Err(Failure::from(kube::Error::BuildRequest(e))),
            };
            match page {
                Ok(page) => {
                    items.extend(page.items.into_iter().map(|o| o.into_record(&mut interner)));
                    if !sync(SyncState::Listing {
                        objects: items.len() as u64,
                    })
                    .await
                    {
                        return;
                    }
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(c) => cont = Some(c),
                        None => break page.metadata.resource_version.unwrap_or_default(),
                    }
                }
                Err(e) => {
                    let wait = match e {
                        // The continue token expired: start the list over.
                        Failure::Gone => backoff.next(),
                        Failure::Forbidden(m) => {
                            sync(SyncState::Forbidden { message: m }).await;
                            Duration::from_secs(30)
                        }
                        Failure::NotServed => {
                            sync(SyncState::NotServed).await;
                            Duration::from_secs(60)
                        }
                        Failure::Other(m) => {
                            let since = *down_since.get_or_insert_with(Utc::now);
                            let state = if ever_synced {
                                SyncState::Reconnecting {
                                    since,
                                    last_error: m,
                                }
                            } else {
                                SyncState::Unreachable {
                                    since,
                                    last_error: m,
                                }
                            };
                            sync(state).await;
                            backoff.next()
                        }
                    };
                    tokio::time::sleep(wait).await;
                    continue 'relist;
                }
            }
        };
        if !send(KubeEvent::Replace { resource, items }).await || !sync(SyncState::Synced).await {
            return;
        }
        ever_synced = true;
        down_since = None;
        // WATCH from the list's resourceVersion, resuming from the last one seen.
        let mut rv = list_rv;
        loop {
            let mut wp = WatchParams::default().timeout(WATCH_TIMEOUT_S);
            if let Some(f) = field_selector(resource) {
                wp = wp.fields(f);
            }
            let stream = match Request::new(resource_path(resource)).watch(&wp, &rv) {
                Ok(req) => {
                    let open = client.request_events::<P>(req);
                    match tokio::time::timeout(liveness.idle_timeout, open).await {
                        Ok(stream) => stream.map_err(Failure::from),
                        Err(_) => Err(Failure::silent("opening a watch", liveness.idle_timeout)),
                    }
                }
                Err(e) => Err(Failure::from(kube::Error::BuildRequest(e))),
            };
            let mut failure: Option<Failure> = None;
            let opened = tokio::time::Instant::now();
            match stream {
                Err(e) => failure = Some(e),
                Ok(stream) => {
                    if down_since.take().is_some() && !sync(SyncState::Synced).await {
                        return;
                    }
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let ev = match tokio::time::timeout(liveness.idle_timeout, stream.next())
                            .await
                        {
                            Ok(Some(ev)) => ev,
                            Ok(None) => break,
                            Err(_) => {
                                failure = Some(Failure::silent("the watch", liveness.idle_timeout));
                                break;
                            }
                        };
                        let event = match ev {
                            Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                                if let Some(v) = o.resource_version() {
                                    rv = v.to_string();
                                }
                                KubeEvent::Apply(o.into_record(&mut interner))
                            }
                            Ok(WatchEvent::Deleted(o)) => {
                                if let Some(v) = o.resource_version() {
                                    rv = v.to_string();
                                }
                                let (namespace, name) = o.ns_name();
                                KubeEvent::Delete {
                                    resource,
                                    namespace,
                                    name,
                                }
                            }
                            Ok(WatchEvent::Bookmark(b)) => {
                                rv = b.metadata.resource_version;
                                continue;
                            }
                            Ok(WatchEvent::Error(e)) if e.code == 410 => {
                                failure = Some(Failure::Gone);
                                break;
                            }
                            Ok(WatchEvent::Error(e)) => {
                                failure = Some(Failure::Other(format!(
                                    "{} {}: {}",
                                    e.code, e.reason, e.message
                                )));
                                break;
                            }
                            Err(e) => {
                                failure = Some(Failure::from(e));
                                break;
                            }
                        };
                        if !send(event).await {
                            return;
                        }
                    }
                }
            }
            // Only a watch that stayed up a while starts the backoff afresh.
            if opened.elapsed() >= liveness.healthy_after {
                backoff.reset();
            }
            match failure {
                // The stream ended normally (timeout): watch again from where it was.
                None => continue,
                Some(Failure::Gone) => continue 'relist,
                Some(Failure::Forbidden(m)) => {
                    sync(SyncState::Forbidden { message: m }).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue 'relist;
                }
                Some(Failure::NotServed) => continue 'relist,
                Some(Failure::Other(m)) => {
                    let since = *down_since.get_or_insert_with(Utc::now);
                    if !sync(SyncState::Reconnecting {
                        since,
                        last_error: m,
                    })
                    .await
                    {
                        return;
                    }
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubeconfig_is_named_once_without_debug_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.kc");
        let e = targets(Some(&missing), &[]).expect_err("no such file");
        let text = e.to_string();
        assert!(text.contains("missing.kc"), "{text}");
        assert_eq!(text.matches("missing.kc").count(), 1, "{text}");
        assert!(!text.contains("\"missing.kc\""), "{text}");
    }

    #[test]
    fn in_cluster_config_is_used_only_with_the_service_host_and_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        assert!(!in_cluster_available(Some("10.96.0.1"), &token));
        std::fs::write(&token, "eyJ…").unwrap();
        assert!(in_cluster_available(Some("10.96.0.1"), &token));
        assert!(!in_cluster_available(None, &token));
        assert!(!in_cluster_available(Some(""), &token));
        let t = in_cluster_target(&[]).unwrap();
        assert_eq!(t[0].context, IN_CLUSTER);
        assert!(matches!(t[0].access, ClusterAccess::InCluster));
        assert!(in_cluster_target(&[IN_CLUSTER.to_string()]).is_ok());
        let err = in_cluster_target(&["prod".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("prod") && err.contains(IN_CLUSTER), "{err}");
    }

    #[test]
    fn statefulsets_daemonsets_and_jobs_project_as_kubectl_counts_them() {
        let mut interner = Interner::default();
        let sts: StatefulSetObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "pg:16"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2,
                "currentRevision": "db-1", "updateRevision": "db-2"},
        }))
        .unwrap();
        let Record::Workload(w) = sts.into_record(&mut interner) else {
            panic!("not a workload")
        };
        assert_eq!(w.state, WorkloadState::Progressing);
        assert_eq!(w.detail.as_deref(), Some("rolling to db-2"));
        assert_eq!(w.images, ["pg:16"]);
        let job: JobObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "eval", "namespace": "batch"},
            "spec": {"completions": 4},
            "status": {"failed": 7, "succeeded": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
        }))
        .unwrap();
        let Record::Workload(w) = job.into_record(&mut interner) else {
            panic!("not a workload")
        };
        assert_eq!(w.state, WorkloadState::Failed);
        assert_eq!(w.detail.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(
            w.counts,
            WorkloadCounts::Job {
                completions: Some(4),
                active: 0,
                succeeded: 1,
                failed: 7
            }
        );
        let ds: DaemonSetObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "dcgm", "namespace": "gpu-operator"},
            "status": {"desiredNumberScheduled": 16, "numberReady": 16,
                "updatedNumberScheduled": 16, "numberAvailable": 16},
        }))
        .unwrap();
        let Record::Workload(w) = ds.into_record(&mut interner) else {
            panic!("not a workload")
        };
        assert_eq!(w.state, WorkloadState::Complete);
    }

    #[test]
    fn a_pods_conditions_are_kept_in_describes_order_as_five_flags() {
        let conditions: Vec<Condition> = serde_json::from_value(serde_json::json!([
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "SomethingNew", "status": "True"},
        ]))
        .unwrap_or_default();
        assert_eq!(
            pod_conditions(&conditions),
            [None, None, Some(false), None, Some(true)]
        );
    }

    #[test]
    fn a_real_pod_parses_into_a_compact_record() {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/k8s-pod.json"
        ))
        .unwrap();
        let pod: PodObject = serde_json::from_str(&raw).unwrap();
        let Record::Pod(p) = pod.into_record(&mut Interner::default()) else {
            panic!("not a pod")
        };
        assert_eq!(&*p.namespace, "knative-serving");
        assert!(p.name.starts_with("activator-"));
        assert_eq!(p.phase, Phase::Running);
        assert!(p.node.is_some());
        assert_eq!(p.ip.as_deref(), Some("10.129.2.17"));
        assert_eq!(p.ready_containers(), (2, 2));
        assert_eq!(&*p.containers[1].name, "istio-proxy");
        assert_eq!(p.label("role"), Some("activator"));
        assert_eq!(p.labels.len(), 15, "every label is kept for selectors");
        assert_eq!(p.owner.as_deref(), Some("Deployment/activator"));
        assert_eq!(p.status_text(), "Running");
    }

    #[test]
    fn pods_of_one_replicaset_share_one_label_set() {
        let raw = fixture("k8s-pod.json");
        let mut interner = Interner::default();
        let records: Vec<PodRecord> = (0..2)
            .map(|_| {
                let pod: PodObject = serde_json::from_str(&raw).unwrap();
                match pod.into_record(&mut interner) {
                    Record::Pod(p) => p,
                    _ => panic!("not a pod"),
                }
            })
            .collect();
        assert!(Arc::ptr_eq(&records[0].labels, &records[1].labels));
        assert!(Arc::ptr_eq(
            records[0].owner.as_ref().unwrap(),
            records[1].owner.as_ref().unwrap()
        ));
    }

    #[test]
    fn an_owner_without_a_template_hash_is_named_as_it_is() {
        let owner = |kind: &str, name: &str, hash: Option<&str>| {
            let labels: BTreeMap<String, String> = hash
                .map(|h| ("pod-template-hash".to_string(), h.to_string()))
                .into_iter()
                .collect();
            controlling_owner(
                &[OwnerReference {
                    kind: kind.into(),
                    name: name.into(),
                    controller: Some(true),
                }],
                Some(&labels),
            )
        };
        assert_eq!(
            owner("ReplicaSet", "web-5d8f", Some("5d8f")).as_deref(),
            Some("Deployment/web")
        );
        assert_eq!(
            owner("ReplicaSet", "web-5d8f", None).as_deref(),
            Some("ReplicaSet/web-5d8f")
        );
        assert_eq!(
            owner("StatefulSet", "db", None).as_deref(),
            Some("StatefulSet/db")
        );
        assert_eq!(controlling_owner(&[], None), None);
    }

    #[test]
    fn a_real_gpu_node_parses_with_capacity_and_readiness() {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/k8s-node-gpu.json"
        ))
        .unwrap();
        let node: NodeObject = serde_json::from_str(&raw).unwrap();
        let Record::Node(n) = node.into_record(&mut Interner::default()) else {
            panic!("not a node")
        };
        assert_eq!(n.name, "node1");
        assert!(n.gpu_capacity > 0);
        assert_eq!(n.readiness, NodeReadiness::Ready);
    }

    #[test]
    fn every_clouds_node_pool_label_survives_the_projection() {
        for (key, pool) in [
            ("karpenter.sh/nodepool", "gpu-spot"),
            ("eks.amazonaws.com/nodegroup", "ng-h100"),
            ("cloud.google.com/gke-nodepool", "h100-pool-0"),
            ("kubernetes.azure.com/agentpool", "gpunp"),
        ] {
            let raw = serde_json::json!({
                "metadata": {"name": "n1", "labels": {key: pool, "kubernetes.io/hostname": "n1"}},
                "spec": {},
                "status": {},
            });
            let node: NodeObject = serde_json::from_value(raw).expect("a node");
            let Record::Node(n) = node.into_record(&mut Interner::default()) else {
                panic!("not a node")
            };
            assert_eq!(n.pool.as_deref(), Some(pool), "{key}");
        }
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_real_deployment_parses_with_revision_and_rollout_counts() {
        let d: DeploymentObject = serde_json::from_str(&fixture("k8s-deployment.json")).unwrap();
        let Record::Deployment(d) = d.into_record(&mut Interner::default()) else {
            panic!("not a deployment")
        };
        assert_eq!(
            (d.namespace.as_str(), d.name.as_str()),
            ("knative-serving", "activator")
        );
        assert!(d.revision.is_some());
        assert_eq!((d.replicas, d.ready, d.available), (2, 2, 2));
        assert!(!d.stalled && !d.paused);
        assert!(!d.images.is_empty());
    }

    #[test]
    fn a_real_pdb_parses_with_its_budget() {
        let p: PdbObject = serde_json::from_str(&fixture("k8s-pdb.json")).unwrap();
        let Record::Pdb(p) = p.into_record(&mut Interner::default()) else {
            panic!("not a PDB")
        };
        assert_eq!(p.name, "activator-pdb");
        assert_eq!(
            (
                p.disruptions_allowed,
                p.current_healthy,
                p.desired_healthy,
                p.expected_pods
            ),
            (1, 2, 1, 2)
        );
    }

    #[test]
    fn a_real_inference_service_parses_with_its_revisions() {
        let i: InferenceServiceObject =
            serde_json::from_str(&fixture("kserve-inferenceservice.json")).unwrap();
        let Record::InferenceService(i) = i.into_record(&mut Interner::default()) else {
            panic!("not an InferenceService")
        };
        assert_eq!(
            (i.namespace.as_str(), i.name.as_str()),
            ("test", "pmml-demo")
        );
        assert!(i.ready);
        assert_eq!(i.url.as_deref(), Some("http://pmml-demo.test.example.com"));
        assert_eq!(
            i.latest_ready_revision.as_deref(),
            Some("pmml-demo-predictor-default-00001")
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let mut b = Backoff::new(3);
        let waits: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert!(waits[0] <= Duration::from_millis(500));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(30)));
        assert!(waits[11] >= Duration::from_secs(15));
        b.reset();
        assert!(b.next() <= Duration::from_millis(500));
    }

    /// Found by `fuzz/fuzz_targets/kube_projections.rs`: per-container counts near `u32::MAX`
    /// overflowed the pod's sums (a panic in debug builds, a wrapped count in release).
    #[test]
    fn huge_restart_and_gpu_counts_saturate_instead_of_overflowing() {
        let pod: PodObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "4294967295"}}},
                {"name": "b", "resources": {"limits": {"nvidia.com/gpu": 4294967295u64}}},
            ]},
            "status": {"containerStatuses": [
                {"name": "a", "restartCount": 4294967295u64},
                {"name": "b", "restartCount": 4294967295u64},
            ]},
        }))
        .unwrap();
        let Record::Pod(p) = pod.into_record(&mut Interner::default()) else {
            panic!("not a pod")
        };
        assert_eq!(p.restarts, u32::MAX);
        assert_eq!(p.gpus, u32::MAX);
    }
}
