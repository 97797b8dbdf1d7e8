//! The kube source's compact projections: each watched object read straight into only the
//! fields the cockpit reads (labels and owners interned), then into a `model::update::Record`.
//! Imports model.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::model::spark::SparkApplicationModel;
use crate::model::update::{
    ContainerRecord, DeploymentRecord, EventRecord, Labels, NodeRecord, Phase, PodRecord, Record,
    Resource,
};
use crate::model::{
    CapacityType, InferenceServiceModel, NodeReadiness, PdbModel, Taint, WorkloadCounts,
    WorkloadKind, WorkloadModel, WorkloadState,
};

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
    /// `fleetdeck.dev/checkpointing` is `"true"`.
    checkpointing: bool,
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
    crate::model::spark::SCHEDULED_APP_LABEL,
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
        checkpointing: all
            .get(crate::model::CHECKPOINTING_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
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
            checkpointing: m.annotations.checkpointing,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SparkAppState {
    #[serde(default)]
    state: String,
    #[serde(default)]
    error_message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SparkDriverInfo {
    #[serde(default)]
    pod_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SparkAppStatus {
    #[serde(default)]
    application_state: SparkAppState,
    #[serde(default)]
    driver_info: SparkDriverInfo,
    /// Executor pod name → its state; only the counts are kept.
    #[serde(default)]
    executor_state: BTreeMap<String, String>,
    #[serde(default)]
    submission_attempts: u32,
    #[serde(default)]
    execution_attempts: u32,
    #[serde(default)]
    last_submission_attempt_time: Option<DateTime<Utc>>,
    #[serde(default)]
    termination_time: Option<DateTime<Utc>>,
}

/// The Kubeflow Spark operator's `SparkApplication` (`sparkoperator.k8s.io/v1beta2`).
#[derive(Debug, Clone, Deserialize)]
pub struct SparkApplicationObject {
    metadata: Meta,
    #[serde(default)]
    status: SparkAppStatus,
}

impl Projection for SparkApplicationObject {
    const RESOURCE: Resource = Resource::SparkApplications;
    fn meta(&self) -> &Meta {
        &self.metadata
    }
    fn into_record(self, _: &mut Interner) -> Record {
        let st = self.status;
        let count = |s: &str| {
            st.executor_state
                .values()
                .filter(|v| v.as_str() == s)
                .count() as u32
        };
        Record::SparkApplication(Box::new(SparkApplicationModel {
            scheduled_app: self
                .metadata
                .label(crate::model::spark::SCHEDULED_APP_LABEL)
                .map(str::to_string),
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name,
            state: st.application_state.state.clone(),
            error_message: st
                .application_state
                .error_message
                .clone()
                .filter(|m| !m.is_empty()),
            driver_pod: st.driver_info.pod_name.clone().filter(|p| !p.is_empty()),
            submission_attempts: st.submission_attempts,
            execution_attempts: st.execution_attempts,
            last_submission: st.last_submission_attempt_time,
            terminated: st.termination_time,
            created: self.metadata.creation_timestamp,
            executors_running: count("RUNNING"),
            executors_pending: count("PENDING"),
            executors_total: st.executor_state.len() as u32,
        }))
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
        let counts = WorkloadCounts::Replicas {
            desired,
            ready: st.ready_replicas,
            updated: st.updated_replicas,
            available: st.available_replicas,
        };
        let detail = if rolling {
            st.update_revision.map(|r| format!("rolling to {r}"))
        } else {
            st.current_revision
        };
        replicated_workload(
            WorkloadKind::StatefulSet,
            self.metadata,
            counts,
            complete,
            detail,
            self.spec.template,
        )
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
        let counts = WorkloadCounts::Replicas {
            desired,
            ready: st.number_ready,
            updated: st.updated_number_scheduled,
            available: st.number_available,
        };
        replicated_workload(
            WorkloadKind::DaemonSet,
            self.metadata,
            counts,
            complete,
            None,
            self.spec.template,
        )
    }
}

/// A StatefulSet's or DaemonSet's record: replica counts, complete or progressing, never
/// finished.
fn replicated_workload(
    kind: WorkloadKind,
    metadata: Meta,
    counts: WorkloadCounts,
    complete: bool,
    detail: Option<String>,
    template: TemplateImages,
) -> Record {
    Record::Workload(WorkloadModel {
        kind,
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name,
        counts,
        state: if complete {
            WorkloadState::Complete
        } else {
            WorkloadState::Progressing
        },
        detail,
        images: images(template),
        created: metadata.creation_timestamp,
        finished: None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A SparkApplication as the operator's v1beta2 API documents it (kubeflow/spark-operator
    /// docs/api-docs.md: `SparkApplicationStatus`), written by hand from those field names, of a
    /// run whose retry failed: SUBMISSION_FAILED states and the scheduled app's label included.
    #[test]
    fn a_spark_application_keeps_state_attempts_executors_and_driver() {
        let o: SparkApplicationObject = serde_json::from_str(
            r#"{"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
            "metadata": {"name": "spark-pi-1733500000", "namespace": "spark",
                "creationTimestamp": "2026-12-07T10:00:00Z",
                "labels": {"sparkoperator.k8s.io/scheduled-app-name": "spark-pi", "team": "x"}},
            "spec": {"type": "Scala", "mode": "cluster", "image": "spark:3.5.3"},
            "status": {"sparkApplicationId": "spark-5f4a", "submissionID": "5f4a",
                "lastSubmissionAttemptTime": "2026-12-07T10:00:05Z",
                "terminationTime": "2026-12-07T10:07:00Z",
                "driverInfo": {"podName": "spark-pi-1733500000-driver", "webUIPort": 4040},
                "applicationState": {"state": "FAILED", "errorMessage": "driver container failed with ExitCode: 1, Reason: Error"},
                "executorState": {"spark-pi-1-exec-1": "FAILED", "spark-pi-1-exec-2": "RUNNING", "spark-pi-1-exec-3": "PENDING"},
                "submissionAttempts": 2, "executionAttempts": 3}}"#,
        )
        .unwrap();
        let Record::SparkApplication(a) = o.into_record(&mut Interner::default()) else {
            panic!("not a SparkApplication")
        };
        assert_eq!(
            (a.namespace.as_str(), a.name.as_str()),
            ("spark", "spark-pi-1733500000")
        );
        assert!(a.failed());
        assert_eq!(a.app_key(), "spark-pi");
        assert_eq!(a.driver_pod.as_deref(), Some("spark-pi-1733500000-driver"));
        assert_eq!((a.submission_attempts, a.execution_attempts), (2, 3));
        assert_eq!(
            (a.executors_running, a.executors_pending, a.executors_total),
            (1, 1, 3)
        );
        assert!(
            a.error_message
                .as_deref()
                .is_some_and(|m| m.contains("ExitCode: 1"))
        );
        assert!(a.terminated.is_some() && a.last_submission.is_some());
        // Before the operator has seen it, an application has no status at all.
        let fresh: SparkApplicationObject = serde_json::from_str(
            r#"{"metadata": {"name": "new", "namespace": "spark"}, "spec": {}}"#,
        )
        .unwrap();
        let Record::SparkApplication(fresh) = fresh.into_record(&mut Interner::default()) else {
            panic!("not a SparkApplication")
        };
        assert_eq!(fresh.state, "");
        assert!(!fresh.failed() && !fresh.healthy());
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
    fn a_training_ranks_labels_and_checkpointing_annotation_are_kept() {
        let rank = |checkpointing: &str| {
            let pod: PodObject = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "llm-worker-3", "namespace": "training",
                    "labels": {"training.kubeflow.org/job-name": "llm",
                        "training.kubeflow.org/replica-type": "worker",
                        "training.kubeflow.org/replica-index": "3"},
                    "annotations": {crate::model::CHECKPOINTING_ANNOTATION: checkpointing}},
                "spec": {"containers": [{"name": "trainer"}]},
            }))
            .unwrap();
            let Record::Pod(p) = pod.into_record(&mut Interner::default()) else {
                panic!("not a pod")
            };
            p
        };
        let p = rank("true");
        assert_eq!(p.gang.as_deref(), Some("llm"));
        assert_eq!(
            p.label("training.kubeflow.org/replica-type"),
            Some("worker")
        );
        assert_eq!(p.label("training.kubeflow.org/replica-index"), Some("3"));
        assert!(p.checkpointing);
        assert!(!rank("false").checkpointing);
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
