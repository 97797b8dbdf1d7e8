//! The update vocabulary: what sources tell `state`. Plain data, so that `state` needs only
//! the model: the Kubernetes records (compact projections of watched objects), one round of a
//! GPU, Prometheus, endpoint or cost source. Imports only the model.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::endpoint::EndpointModel;
use super::{
    CapacityType, InferenceServiceModel, NodeReadiness, PdbModel, SyncState, Taint, WorkloadKind,
    WorkloadModel,
};

/// What a source tells `state`.
#[derive(Debug)]
pub enum Update {
    /// An event from cluster number `cluster` (its index in the configured list).
    Kube { cluster: usize, event: KubeEvent },
    /// The latest picture of configured endpoint number `index`.
    Endpoint(Box<EndpointUpdate>),
    /// One round of a GPU source (a DCGM exporter, or NVML on this host).
    Gpu(Box<super::gpu::GpuUpdate>),
    /// One round of the Prometheus collector.
    Prometheus(Box<PrometheusUpdate>),
    /// One round of the cost source (OpenCost and/or FOCUS exports).
    Cost(Box<super::cost::CostUpdate>),
    /// What the model registry said about one endpoint's registered model.
    Registry(Box<RegistryUpdate>),
    /// One round of the Airflow source.
    Airflow(Box<super::airflow::AirflowPicture>),
}

/// One endpoint's registered model, as the registry source last read it; `view` is `None`
/// when the endpoint no longer names a model (its serving object lost the annotation).
#[derive(Debug, Clone)]
pub struct RegistryUpdate {
    pub endpoint: String,
    pub view: Option<super::registry::RegisteredModelView>,
}

/// The latest picture of endpoint number `index` (its place in the configured list).
#[derive(Debug, Clone)]
pub struct EndpointUpdate {
    pub index: usize,
    pub endpoint: EndpointModel,
    /// What this poll measured; `None` when the endpoint could not be polled at all.
    pub observation: Option<super::endpoint::EndpointObservation>,
}

/// One round of the Prometheus collector: per-node GPU history for the charts, keyed
/// `prometheus/<node>/<metric>`, and where the source stands.
#[derive(Debug)]
pub struct PrometheusUpdate {
    pub status: super::gpu::GpuSourceStatus,
    /// `None` when the round failed: the last history stays, the status says why.
    pub history: Option<super::History>,
}

/// The resources watched per cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Nodes,
    Pods,
    Deployments,
    PodDisruptionBudgets,
    Events,
    InferenceServices,
    StatefulSets,
    DaemonSets,
    Jobs,
    SparkApplications,
}

impl Resource {
    /// The resource a controller kind is watched as.
    pub fn of_workload(kind: WorkloadKind) -> Resource {
        match kind {
            WorkloadKind::StatefulSet => Resource::StatefulSets,
            WorkloadKind::DaemonSet => Resource::DaemonSets,
            WorkloadKind::Job => Resource::Jobs,
        }
    }

    pub const ALL: [Resource; 10] = [
        Resource::Nodes,
        Resource::Pods,
        Resource::Deployments,
        Resource::PodDisruptionBudgets,
        Resource::Events,
        Resource::InferenceServices,
        Resource::StatefulSets,
        Resource::DaemonSets,
        Resource::Jobs,
        Resource::SparkApplications,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Nodes => "nodes",
            Resource::Pods => "pods",
            Resource::Deployments => "deployments",
            Resource::PodDisruptionBudgets => "poddisruptionbudgets",
            Resource::Events => "events",
            Resource::InferenceServices => "inferenceservices",
            Resource::StatefulSets => "statefulsets",
            Resource::DaemonSets => "daemonsets",
            Resource::Jobs => "jobs",
            Resource::SparkApplications => "sparkapplications",
        }
    }
}

// ---- records: what `state` keeps ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub name: String,
    pub readiness: NodeReadiness,
    pub readiness_since: Option<DateTime<Utc>>,
    pub cordoned: bool,
    pub taints: Vec<Taint>,
    pub capacity_type: CapacityType,
    pub instance_type: Option<String>,
    pub pool: Option<String>,
    pub zone: Option<String>,
    pub gpu_product: Option<String>,
    pub gpu_capacity: u32,
    pub gpu_allocatable: u32,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    #[default]
    Unknown,
}

/// A pod's labels: interned pairs, shared by every pod with the same set (the pods of one
/// ReplicaSet carry the same labels), sorted by key.
pub type Labels = Arc<[(Arc<str>, Arc<str>)]>;

/// A pod, compactly: about 200 bytes plus its name and containers; namespaces, nodes, owners,
/// container names and label sets are interned by the source and shared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRecord {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    pub node: Option<Arc<str>>,
    pub phase: Phase,
    pub ready: bool,
    pub terminating: bool,
    pub gpus: u32,
    pub restarts: u32,
    /// A waiting reason such as CrashLoopBackOff or ImagePullBackOff.
    pub waiting: Option<Box<str>>,
    pub last_termination: Option<Box<str>>,
    /// The scheduler's (reason, message) while unschedulable.
    pub unschedulable: Option<Box<(String, String)>>,
    pub gang: Option<Arc<str>>,
    /// The pod carries [`crate::model::CHECKPOINTING_ANNOTATION`] `"true"`: its training job
    /// says it is writing a checkpoint (slow ranks and idle GPUs are expected, a restart loses it).
    pub checkpointing: bool,
    pub daemon: bool,
    pub created: Option<DateTime<Utc>>,
    pub ip: Option<Box<str>>,
    /// The spec's containers, with their statuses where the kubelet reported them.
    pub containers: Box<[ContainerRecord]>,
    pub labels: Labels,
    /// The controlling workload as `Kind/name`; a ReplicaSet's pods name its Deployment (the
    /// ReplicaSet's name less its `pod-template-hash`), as `kubectl describe` leads to it.
    pub owner: Option<Arc<str>>,
    /// The pod's conditions of [`POD_CONDITIONS`]' types, in that order: `Some(true)` when the
    /// API says `True`, absent ones `None` (five bytes, not five objects).
    pub conditions: [Option<bool>; 5],
}

/// The pod condition types `kubectl describe pod` lists, in its order.
pub const POD_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// One container of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub name: Arc<str>,
    pub ready: bool,
    pub restarts: u32,
    /// Why it is not running: a waiting reason (`CrashLoopBackOff`) or a terminated one
    /// (`OOMKilled`, `Completed`).
    pub state: Option<Box<str>>,
    pub last_termination: Option<Box<str>>,
}

impl PodRecord {
    /// (ready, total) containers, as kubectl's READY column.
    pub fn ready_containers(&self) -> (usize, usize) {
        let ready = self.containers.iter().filter(|c| c.ready).count();
        (ready, self.containers.len())
    }

    /// kubectl's STATUS column and the reason behind it: `Terminating`, a container's waiting
    /// or terminated reason (`CrashLoopBackOff` with `OOMKilled`), `Pending` with the
    /// scheduler's reason, else the phase (`Completed` for a pod that succeeded).
    pub fn status(&self) -> (&str, Option<&str>) {
        if self.terminating {
            return ("Terminating", None);
        }
        fn shown(t: &Option<Box<str>>) -> Option<&str> {
            t.as_deref().filter(|r| *r != "Completed")
        }
        if let Some(w) = self.waiting.as_deref() {
            return (w, shown(&self.last_termination));
        }
        if let Some(t) = self
            .containers
            .iter()
            .find_map(|c| c.state.as_deref().filter(|s| *s != "Completed"))
            && self.phase != Phase::Succeeded
        {
            return (t, None);
        }
        match self.phase {
            Phase::Pending => ("Pending", self.unschedulable.as_ref().map(|u| u.0.as_str())),
            Phase::Running => ("Running", shown(&self.last_termination)),
            Phase::Succeeded => ("Completed", None),
            Phase::Failed => ("Failed", None),
            Phase::Unknown => ("Unknown", None),
        }
    }

    /// The status with its reason in one cell: `CrashLoopBackOff (OOMKilled)`.
    pub fn status_text(&self) -> String {
        match self.status() {
            (s, Some(r)) => format!("{s} ({r})"),
            (s, None) => s.to_string(),
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub namespace: String,
    pub name: String,
    pub revision: Option<u64>,
    pub replicas: u32,
    pub ready: u32,
    pub updated: u32,
    pub available: u32,
    pub paused: bool,
    pub stalled: bool,
    pub images: Vec<String>,
    pub registered_model: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub warning: bool,
    pub namespace: String,
    pub name: String,
    pub object: String,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Node(NodeRecord),
    Pod(PodRecord),
    Deployment(DeploymentRecord),
    Pdb(PdbModel),
    Event(EventRecord),
    InferenceService(InferenceServiceModel),
    /// A StatefulSet, DaemonSet or Job.
    Workload(WorkloadModel),
    /// Boxed: it is the largest record, and rare.
    SparkApplication(Box<super::spark::SparkApplicationModel>),
}

impl Record {
    /// (namespace, name); namespace is empty for cluster-scoped objects.
    pub fn key(&self) -> (String, String) {
        match self {
            Record::Node(n) => (String::new(), n.name.clone()),
            Record::Pod(p) => (p.namespace.to_string(), p.name.to_string()),
            Record::Deployment(d) => (d.namespace.clone(), d.name.clone()),
            Record::Pdb(p) => (p.namespace.clone(), p.name.clone()),
            Record::Event(e) => (e.namespace.clone(), e.name.clone()),
            Record::InferenceService(i) => (i.namespace.clone(), i.name.clone()),
            Record::Workload(w) => (w.namespace.clone(), w.name.clone()),
            Record::SparkApplication(a) => (a.namespace.clone(), a.name.clone()),
        }
    }
}

#[derive(Debug)]
pub enum KubeEvent {
    /// A complete (re)list: replaces everything known of `resource`.
    Replace {
        resource: Resource,
        items: Vec<Record>,
    },
    Apply(Record),
    Delete {
        resource: Resource,
        namespace: String,
        name: String,
    },
    Sync {
        resource: Resource,
        state: SyncState,
    },
}
