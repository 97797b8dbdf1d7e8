//! The fleet model: plain serde data that sources produce, `state` assembles and every reader
//! (panes, detectors, runbooks, `fleetdeck snapshot`) consumes. Imports nothing of the crate.
//! The JSON form of [`Snapshot`] is a stable surface for scripts (see docs/snapshot.md).

pub mod airflow;
pub mod blind;
pub mod catalog;
pub mod cost;
pub mod endpoint;
pub mod gpu;
pub mod gpu_history;
pub mod incident;
pub mod registry;
pub mod signal;
pub mod spark;
pub mod update;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How much automation may do. Ordered from the most careful: a runbook may only be stricter
/// than the global mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Mutations become a plan; nothing changes.
    DryRun,
    /// Mutations wait for a human's approval.
    Approve,
    /// Mutations run (within the guard's budgets).
    Auto,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::DryRun => "dry-run",
            Self::Approve => "approve",
            Self::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dry-run" => Some(Self::DryRun),
            "approve" => Some(Self::Approve),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    /// The stricter of two modes.
    pub fn stricter(self, other: Self) -> Self {
        self.min(other)
    }
}

/// Durations in config as humantime strings (`90s`, `5m`).
pub mod duration_serde {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = text(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like 90s or 5m: {e}"))
        })
    }

    /// A duration's text, checked later (fields kept as written, e.g. `[gpu] interval`). A bare
    /// number (`interval = 10`) is refused with the quoted form to write instead: a unit is
    /// required, so `10` could mean seconds or minutes.
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration in quotes with its unit, like \"10s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
                Err(E::custom(format!(
                    "{v} is a number, not a duration: write it in quotes with its unit, like \"{v}s\" (or \"{v}m\")"
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
                Err(E::custom(format!(
                    "{v} is a number, not a duration: write it in quotes with its unit, like \"{}ms\"",
                    (v * 1000.0).round()
                )))
            }
        }
        d.deserialize_any(Text)
    }
}

/// How a node is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    Spot,
    Reserved,
}

/// The node labels that name a node's pool, most specific first. A source that keeps only
/// some labels must keep these, or every node reads as poolless.
pub const NODE_POOL_LABELS: [&str; 6] = [
    "karpenter.sh/nodepool",
    "karpenter.sh/provisioner-name",
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "agentpool",
];

/// The node pool a node's labels name, in any of the provisioners' conventions: Karpenter's
/// `karpenter.sh/nodepool` (and its older `karpenter.sh/provisioner-name`), EKS managed node
/// groups, GKE node pools and AKS agent pools. A pool-wide fault (a zone's spot capacity taken
/// back, a bad AMI) hits the nodes of one pool together.
pub fn node_pool<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for (k, v) in labels {
        let v = v.trim();
        if let Some(rank) = NODE_POOL_LABELS.iter().position(|key| *key == k)
            && !v.is_empty()
            && best.is_none_or(|(r, _)| rank < r)
        {
            best = Some((rank, v));
        }
    }
    best.map(|(_, v)| v.to_string())
}

impl CapacityType {
    /// Reads the capacity type from any of the clouds' node label conventions:
    /// `karpenter.sh/capacity-type`, `eks.amazonaws.com/capacityType` (any case),
    /// `cloud.google.com/gke-spot`, `kubernetes.azure.com/scalesetpriority`.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = CapacityType::OnDemand;
        for (k, v) in labels {
            let v = v.trim();
            let found = match k {
                "karpenter.sh/capacity-type" => match v.to_ascii_lowercase().as_str() {
                    "spot" => Some(CapacityType::Spot),
                    "reserved" => Some(CapacityType::Reserved),
                    _ => None,
                },
                k if k.eq_ignore_ascii_case("eks.amazonaws.com/capacityType") => {
                    v.eq_ignore_ascii_case("spot").then_some(CapacityType::Spot)
                }
                "cloud.google.com/gke-spot" | "cloud.google.com/gke-preemptible" => {
                    v.eq_ignore_ascii_case("true").then_some(CapacityType::Spot)
                }
                "kubernetes.azure.com/scalesetpriority" => {
                    v.eq_ignore_ascii_case("spot").then_some(CapacityType::Spot)
                }
                "cloud.google.com/reservation-name" if !v.is_empty() => {
                    Some(CapacityType::Reserved)
                }
                _ => None,
            };
            match found {
                Some(CapacityType::Spot) => return CapacityType::Spot,
                Some(c) => out = c,
                None => {}
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NodeReadiness {
    Ready,
    NotReady,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
}

/// Pods by phase (terminating pods count under their phase too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseCounts {
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub unknown: u32,
}

impl PhaseCounts {
    pub fn total(&self) -> u32 {
        self.pending + self.running + self.succeeded + self.failed + self.unknown
    }
}

/// `Default` is a nameless node of unknown readiness with no GPUs: fixtures fill in the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeModel {
    pub name: String,
    pub readiness: NodeReadiness,
    /// When the Ready condition last changed.
    pub readiness_since: Option<DateTime<Utc>>,
    pub cordoned: bool,
    pub taints: Vec<Taint>,
    pub capacity_type: CapacityType,
    pub instance_type: Option<String>,
    /// The node pool (or node group, agent pool) the autoscaler or cloud says it belongs to.
    #[serde(default)]
    pub pool: Option<String>,
    pub zone: Option<String>,
    pub gpu_product: Option<String>,
    pub gpu_capacity: u32,
    pub gpu_allocatable: u32,
    /// GPUs requested by the node's pods that are neither finished nor failed.
    pub gpu_requested: u32,
    pub pods: PhaseCounts,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceSummary {
    pub name: String,
    pub pods: PhaseCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashLoopingPod {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub restarts: u32,
    /// e.g. `CrashLoopBackOff`.
    pub reason: String,
    /// Why the container last ended, e.g. `OOMKilled`, `Error`.
    pub last_termination: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPod {
    pub namespace: String,
    pub name: String,
    /// The scheduler's reason (`Unschedulable`) or a container's waiting reason.
    pub reason: String,
    /// e.g. `0/40 nodes are available: 16 Insufficient nvidia.com/gpu …`.
    pub message: String,
    pub gpus: u32,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    Complete,
    Progressing,
    Stalled,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentModel {
    pub namespace: String,
    pub name: String,
    pub revision: Option<u64>,
    pub replicas: u32,
    pub ready: u32,
    pub updated: u32,
    pub available: u32,
    pub rollout: RolloutState,
    pub images: Vec<String>,
    /// Its `fleetdeck.io/registered-model` annotation (`NAME` or `NAME@ALIAS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_model: Option<String>,
}

/// The controllers besides Deployments the Workloads pane lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    StatefulSet,
    DaemonSet,
    Job,
}

impl WorkloadKind {
    /// The API kind, as owner references and `kubectl get` name it.
    pub fn api_kind(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
        }
    }

    /// kubectl's short name.
    pub fn short(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "sts",
            WorkloadKind::DaemonSet => "ds",
            WorkloadKind::Job => "job",
        }
    }
}

/// How far a controller has got, as `kubectl get` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadCounts {
    /// A StatefulSet's replicas or a DaemonSet's scheduled pods.
    Replicas {
        desired: u32,
        ready: u32,
        updated: u32,
        available: u32,
    },
    /// A Job's completions.
    Job {
        /// `spec.completions`; `None` for a work queue (done when one pod succeeds).
        completions: Option<u32>,
        active: u32,
        succeeded: u32,
        failed: u32,
    },
}

/// Where a controller stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadState {
    /// Every replica ready and updated; a Job that completed.
    Complete,
    /// Replicas missing, unready or not yet updated; a Job still running.
    Progressing,
    /// A Job that failed (its `Failed` condition).
    Failed,
    /// A suspended Job.
    Suspended,
}

/// A StatefulSet, DaemonSet or Job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadModel {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub counts: WorkloadCounts,
    pub state: WorkloadState,
    /// A Job's reason for its Failed condition (`BackoffLimitExceeded`), or a controller's
    /// update revision.
    pub detail: Option<String>,
    pub images: Vec<String>,
    pub created: Option<DateTime<Utc>>,
    /// When a Job completed.
    pub finished: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdbModel {
    pub namespace: String,
    pub name: String,
    pub disruptions_allowed: u32,
    pub current_healthy: u32,
    pub desired_healthy: u32,
    pub expected_pods: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GangMember {
    pub pod: String,
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub gpus: u32,
    /// The training operator's replica type (`master`, `worker`), from the pod's
    /// `training.kubeflow.org/replica-type` label.
    #[serde(default)]
    pub replica_type: Option<String>,
    /// Its index among its replica type (`training.kubeflow.org/replica-index`).
    #[serde(default)]
    pub replica_index: Option<u32>,
    /// The pod says its job is writing a checkpoint ([`CHECKPOINTING_ANNOTATION`]).
    #[serde(default)]
    pub checkpointing: bool,
}

impl GangMember {
    /// The rank as the training operator names it: `master-0`, `worker-3` (the pod's name when
    /// the labels are missing).
    pub fn rank(&self) -> String {
        match (&self.replica_type, self.replica_index) {
            (Some(t), Some(i)) => format!("{}-{i}", t.to_lowercase()),
            (Some(t), None) => t.to_lowercase(),
            _ => self.pod.clone(),
        }
    }
}

/// The pod annotation a training job sets (to `"true"`) on its pods while it writes a
/// checkpoint: a gang checkpointing is not stalled, and `restart_gang` refuses to restart it.
/// Training code sets it with `kubectl annotate pod … fleetdeck.dev/checkpointing=true
/// --overwrite` (or the job's pod template, through the operator) and removes it when done.
pub const CHECKPOINTING_ANNOTATION: &str = "fleetdeck.dev/checkpointing";

/// A training job whose pods run as one gang (Kubeflow `training.kubeflow.org/job-name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GangJob {
    pub namespace: String,
    pub name: String,
    pub members: Vec<GangMember>,
}

/// A core/v1 Event, Warning or Normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// `type: Warning` (else Normal).
    #[serde(default)]
    pub warning: bool,
    pub namespace: String,
    /// `kind/name` of the object the event is about.
    pub object: String,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceServiceModel {
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    pub url: Option<String>,
    pub latest_ready_revision: Option<String>,
    pub previous_rolled_out_revision: Option<String>,
    pub canary_traffic_percent: Option<u32>,
    /// Its `fleetdeck.io/registered-model` annotation (`NAME` or `NAME@ALIAS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_model: Option<String>,
}

/// Where one resource of one cluster stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SyncState {
    /// The initial list is running.
    Listing {
        objects: u64,
    },
    Synced,
    /// It was synced; the watch broke and is being re-established (the picture is kept).
    Reconnecting {
        since: DateTime<Utc>,
        last_error: String,
    },
    /// RBAC refuses this resource; the others go on.
    Forbidden {
        message: String,
    },
    /// The API server could not be reached at all yet.
    Unreachable {
        since: DateTime<Utc>,
        last_error: String,
    },
    /// The resource is not served by this cluster (e.g. no KServe CRD).
    NotServed,
}

impl SyncState {
    /// Settled: synced, or known not to be available (forbidden, not served).
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            SyncState::Synced | SyncState::Forbidden { .. } | SyncState::NotServed
        )
    }

    pub fn describe(&self) -> String {
        match self {
            SyncState::Listing { objects } => format!("listing ({objects} objects so far)"),
            SyncState::Synced => "synced".into(),
            SyncState::Reconnecting { since, last_error } => {
                format!(
                    "reconnecting (since {}, last error: {last_error})",
                    since.format("%H:%M:%S")
                )
            }
            SyncState::Forbidden { message } => format!("forbidden ({message})"),
            SyncState::Unreachable { since, last_error } => {
                format!(
                    "unreachable (since {}, last error: {last_error})",
                    since.format("%H:%M:%S")
                )
            }
            SyncState::NotServed => "not served".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSync {
    pub resource: String,
    #[serde(flatten)]
    pub state: SyncState,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterTotals {
    pub nodes: u32,
    pub nodes_ready: u32,
    pub nodes_cordoned: u32,
    pub nodes_spot: u32,
    pub gpus_allocatable: u32,
    pub gpus_requested: u32,
    pub pods: PhaseCounts,
}

/// `Default` is an empty cluster with no name: fixtures fill in what they need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// The kubeconfig context.
    pub name: String,
    pub server: String,
    pub sync: Vec<ResourceSync>,
    pub totals: ClusterTotals,
    pub nodes: Vec<NodeModel>,
    pub namespaces: Vec<NamespaceSummary>,
    pub crash_looping: Vec<CrashLoopingPod>,
    pub pending: Vec<PendingPod>,
    pub deployments: Vec<DeploymentModel>,
    pub pdbs: Vec<PdbModel>,
    pub gang_jobs: Vec<GangJob>,
    /// Warning events, newest first (at most `state::MAX_WARNINGS`).
    pub warnings: Vec<ClusterEvent>,
    /// Normal events, newest first (at most `state::MAX_NORMAL_EVENTS`).
    #[serde(default)]
    pub normal_events: Vec<ClusterEvent>,
    /// StatefulSets, DaemonSets and Jobs.
    #[serde(default)]
    pub workloads: Vec<WorkloadModel>,
    pub inference_services: Vec<InferenceServiceModel>,
    /// The Spark operator's applications (none where its CRD is not installed).
    #[serde(default)]
    pub spark_applications: Vec<spark::SparkApplicationModel>,
    /// Every pod, by namespace and name, shared with `state`: rebuilt only when pods changed
    /// and at most every `state::POD_ROWS_INTERVAL` (so it may trail the aggregates above by
    /// that much). Not in the JSON form: 150,000 pods are for the panes, not for scripts.
    #[serde(skip)]
    pub pods: PodRows,
}

/// The pods of a cluster as the panes read them; cloning it copies a pointer.
pub type PodRows = Arc<Vec<Arc<update::PodRecord>>>;

impl ClusterSnapshot {
    pub fn synced(&self) -> bool {
        !self.sync.is_empty() && self.sync.iter().all(|s| s.state.is_settled())
    }
}

/// One point of a numeric series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// Series the panes chart, keyed `cluster/metric`, pruned by age.
pub type History = BTreeMap<String, Vec<Sample>>;

/// What every reader sees: the latest picture of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Bumped on every publish.
    pub version: u64,
    pub taken_at: Option<DateTime<Utc>>,
    pub clusters: Vec<Arc<ClusterSnapshot>>,
    pub history: Arc<History>,
    /// What the detectors see in this snapshot (filled by whoever runs them, e.g. the
    /// `snapshot` command; `state` publishes it empty).
    #[serde(default)]
    pub signals: Vec<signal::Signal>,
    /// Configured model endpoints, in config order.
    #[serde(default)]
    pub endpoints: Vec<Arc<endpoint::EndpointModel>>,
    /// Every GPU the GPU sources report, by source then device.
    #[serde(default)]
    pub gpus: Arc<Vec<gpu::GpuModel>>,
    /// Where each GPU source stands (one DCGM endpoint, or NVML).
    #[serde(default)]
    pub gpu_sources: Vec<gpu::GpuSourceStatus>,
    /// The latest cost report, joined with the clusters (GPU types, spot share), and where its
    /// source stands; `None` without a cost source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Arc<cost::CostReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<cost::CostSourceStatus>,
    /// The endpoints' registered models (MLflow), by endpoint name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Arc<registry::RegisteredModelView>>,
    /// What the Airflow source last read; `None` without `[airflow]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub airflow: Option<Arc<airflow::AirflowPicture>>,
    /// The kinds among `signals` that are findings (no incident); set by the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finding_kinds: Vec<String>,
    /// Signals of open incidents, resumed from the store, that no detector of this face has
    /// seen since it started: unknown (never cleared, never calm) until their deadline, when a
    /// detector has had its kind's `for` of fresh data. Set by the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_since_start: Vec<HeldSignal>,
    /// The store cannot be read or written (since when, why), or it came back and its outage
    /// is not recorded yet: `store.down` fires from it. Set by the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_down: Option<StoreDown>,
    /// Each GPU's recent readings and each pool's heat, kept once by `state` and shared by
    /// every snapshot of the fleet (not part of what a snapshot says on the wire).
    #[serde(skip)]
    pub gpu_history: gpu_history::SharedGpuHistory,
}

/// An outage of the store, as the pipeline saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDown {
    pub since: DateTime<Utc>,
    /// Where the store is (its directory, or PostgreSQL's host and database).
    pub place: String,
    pub error: String,
}

/// A signal held from before this face started: its dedup key (`kind:subject`) and the time
/// it clears unless a detector sees it first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSignal {
    pub key: String,
    pub until: DateTime<Utc>,
}

impl HeldSignal {
    /// The signal's kind, the key's first part.
    pub fn kind(&self) -> &str {
        self.key.split(':').next().unwrap_or_default()
    }
}

impl Snapshot {
    /// Whether `signal` is a finding (shown where it belongs, no incident).
    pub fn is_finding(&self, signal: &signal::Signal) -> bool {
        self.finding_kinds.contains(&signal.kind)
    }

    /// The signals that open incidents: what pages and banners count.
    pub fn incident_signals(&self) -> impl Iterator<Item = &signal::Signal> {
        self.signals.iter().filter(|s| !self.is_finding(s))
    }

    /// The findings among the signals.
    pub fn findings(&self) -> impl Iterator<Item = &signal::Signal> {
        self.signals.iter().filter(|s| self.is_finding(s))
    }

    /// The registered model of endpoint `name`, as the registry last answered.
    pub fn model_of(&self, endpoint: &str) -> Option<&registry::RegisteredModelView> {
        self.models
            .iter()
            .find(|m| m.endpoint == endpoint)
            .map(|m| m.as_ref())
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterSnapshot> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.as_ref())
    }

    /// Deployment `namespace/name` of `cluster`, as last seen.
    pub fn deployment(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&DeploymentModel> {
        self.cluster(cluster)?
            .deployments
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
    }
}

/// An RFC 3339 instant in UTC (`"2025-04-01T00:00:00Z"`): the fixed clocks of tests.
#[cfg(test)]
pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_pool_comes_from_any_provisioners_label() {
        let pool = |labels: &[(&str, &str)]| node_pool(labels.iter().copied());
        assert_eq!(
            pool(&[("karpenter.sh/nodepool", "gpu-spot")]).as_deref(),
            Some("gpu-spot")
        );
        assert_eq!(
            pool(&[("eks.amazonaws.com/nodegroup", "ng-1")]).as_deref(),
            Some("ng-1")
        );
        assert_eq!(
            pool(&[("cloud.google.com/gke-nodepool", "a100")]).as_deref(),
            Some("a100")
        );
        assert_eq!(
            pool(&[("kubernetes.azure.com/agentpool", "gpu")]).as_deref(),
            Some("gpu")
        );
        // Karpenter's label wins over the node group a Karpenter node may also carry.
        assert_eq!(
            pool(&[
                ("eks.amazonaws.com/nodegroup", "ng"),
                ("karpenter.sh/nodepool", "kp")
            ])
            .as_deref(),
            Some("kp")
        );
        assert_eq!(pool(&[("kubernetes.io/hostname", "n1")]), None);
        assert_eq!(pool(&[("karpenter.sh/nodepool", " ")]), None);
    }

    #[test]
    fn capacity_type_reads_all_four_conventions() {
        let spot = [
            ("karpenter.sh/capacity-type", "spot"),
            ("eks.amazonaws.com/capacityType", "SPOT"),
            ("eks.amazonaws.com/capacitytype", "Spot"),
            ("cloud.google.com/gke-spot", "true"),
            ("kubernetes.azure.com/scalesetpriority", "spot"),
        ];
        for (k, v) in spot {
            assert_eq!(
                CapacityType::from_labels([(k, v)]),
                CapacityType::Spot,
                "{k}={v}"
            );
        }
        assert_eq!(
            CapacityType::from_labels([("karpenter.sh/capacity-type", "reserved")]),
            CapacityType::Reserved
        );
        assert_eq!(
            CapacityType::from_labels([("karpenter.sh/capacity-type", "on-demand")]),
            CapacityType::OnDemand
        );
        assert_eq!(
            CapacityType::from_labels([("eks.amazonaws.com/capacityType", "ON_DEMAND")]),
            CapacityType::OnDemand
        );
        assert_eq!(
            CapacityType::from_labels([("kubernetes.azure.com/scalesetpriority", "regular")]),
            CapacityType::OnDemand
        );
        assert_eq!(CapacityType::from_labels([]), CapacityType::OnDemand);
    }

    #[test]
    fn sync_states_describe_themselves_for_status_lines() {
        assert_eq!(
            SyncState::Listing { objects: 1204 }.describe(),
            "listing (1204 objects so far)"
        );
        assert!(
            SyncState::Forbidden {
                message: "no".into()
            }
            .is_settled()
        );
        assert!(!SyncState::Listing { objects: 0 }.is_settled());
    }
}
