//! Read-only views of the simulated fleet, for the servers beside the Kubernetes API
//! (DCGM metrics, model endpoints, OpenCost). Built from the cluster stores on demand; imports nothing
//! from the client side of fleetdeck.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

/// How a node is bought, as the cloud's own node labels say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    OnDemand,
    Spot,
    Reserved,
}

#[derive(Debug, Clone)]
pub struct NodeView {
    pub cluster: String,
    pub name: String,
    /// `aws`, `gcp` or `azure`: which cloud's label conventions and prices apply.
    pub cloud: String,
    pub instance_type: String,
    pub capacity_type: CapacityType,
    pub zone: String,
    pub region: String,
    pub ready: bool,
    pub unschedulable: bool,
    /// e.g. `NVIDIA-H100-80GB-HBM3`, as `nvidia.com/gpu.product` has it; `None` on CPU nodes.
    pub gpu_product: Option<String>,
    pub gpu_count: u32,
    pub gpu_memory_mib: u64,
    pub cpu_cores: u32,
    pub memory_gib: u32,
    pub created: DateTime<Utc>,
    /// Stable per-GPU identity: `GPU-xxxxxxxx-…` UUIDs and PCI bus ids, index = device number.
    pub gpu_uuids: Vec<String>,
    pub gpu_pci_bus_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PodView {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    pub ready: bool,
    pub terminating: bool,
    /// The controller owner as OpenCost names it: kind lower-case (`deployment`, `daemonset`,
    /// `job`, `pytorchjob`, `replicaset`) and name (a Deployment's name, not its ReplicaSet's).
    pub controller_kind: Option<String>,
    pub controller_name: Option<String>,
    pub container: String,
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    /// Device indices on the node this pod holds (len == gpus while running).
    pub gpu_indices: Vec<u32>,
    pub started: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct DeploymentView {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// `deployment.kubernetes.io/revision` of the Deployment.
    pub revision: u64,
    pub replicas: u32,
    pub ready_replicas: u32,
    pub image: String,
    /// Set while the serving template is a faulty one (the `bad-rollout` scenario marks the
    /// template with the `sim.fleetdeck.dev/fault` annotation); a rollback clears it.
    pub template_fault: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub name: String,
    pub nodes: Vec<NodeView>,
    pub pods: Vec<PodView>,
    pub deployments: Vec<DeploymentView>,
}

/// A model endpoint the sim serves, and the Deployment whose revision decides its behaviour.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointSpec {
    pub name: String,
    /// `kserve-v2` or `vllm`.
    pub protocol: String,
    pub model: String,
    pub cluster: String,
    pub namespace: String,
    pub deployment: String,
}

/// Faults injected by scenarios that the Kubernetes API alone does not show.
#[derive(Debug, Clone, Default)]
pub struct FaultState {
    /// (cluster, node) → list of (gpu index, XID code) most recently reported.
    pub xid: HashMap<(String, String), Vec<(u32, u32)>>,
    /// (cluster, node) → GPU indices with a double-bit ECC error count and remapping failure.
    pub ecc: HashMap<(String, String), Vec<u32>>,
    /// Endpoint names whose engine is dead (`endpoint-outage`).
    pub endpoint_outage: HashSet<String>,
    /// The pod whose first GPU leaks framebuffer memory (`gpu-memory-leak`).
    pub memory_leak: Option<MemoryLeak>,
    /// A training gang whose work stopped or one of whose ranks crawls (`training-stall`,
    /// `training-straggler`).
    pub training: Option<TrainingFault>,
    /// Vector indexes whose ingestion writes no longer land (`vector-index-stale`): the vector
    /// count stays flat while the ingestion Job keeps running.
    pub index_stale: HashSet<String>,
    /// `airflow-failures`: each time a DAG's task was made to fail, and until when (`None`:
    /// still failing), so runs that failed stay failed after the fault is cleared.
    pub airflow_failures: Vec<AirflowFault>,
}

/// A serving pod leaking GPU memory since `since`: the first GPU it holds grows from its
/// normal level until the framebuffer is full. Tied to the pod, so a replacement pod (a new
/// name) starts clean, as a restarted engine does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLeak {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub since: DateTime<Utc>,
}

/// A training gang (`training.kubeflow.org/job-name` = `job` in `namespace`) gone wrong. With
/// no `straggler_node` every rank's GPUs stop working (a hung collective: memory held, 0 %),
/// whichever pods the gang has, until the scenario is cleared (a restart does not cure a bug).
/// With one, that node's GPUs run hot and slow: the gang's rank there straggles, and a rank
/// rescheduled elsewhere (the node cordoned, the gang restarted) keeps pace again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingFault {
    pub cluster: String,
    pub namespace: String,
    pub job: String,
    pub straggler_node: Option<String>,
}

/// A DAG of the simulated Airflow whose `task` fails in every attempt that starts between
/// `from` and `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirflowFault {
    pub dag: String,
    pub task: String,
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// Where the servers beside the Kubernetes API read the fleet from. The sim's cluster stores
/// implement it; tests can implement it with fixed views.
pub trait FleetSource: Send + Sync + 'static {
    fn clusters(&self) -> Vec<ClusterView>;
    fn faults(&self) -> FaultState;
}
