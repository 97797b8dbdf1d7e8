//! Applies updates from every source to the fleet model and publishes `Arc<Snapshot>` over a
//! watch channel (latest wins). Pod aggregates are kept incrementally, so a change costs
//! the same with 150 pods or 150,000; a cluster's snapshot is rebuilt only when it changed.
//! History for charts is bounded by age. Imports only model (its update vocabulary included).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::model::gpu::GpuModel;
use crate::model::gpu_history::{
    DEFAULT_WINDOW as DEFAULT_GPU_WINDOW, GpuHistory, PoolHeat, SharedGpuHistory, pool_heat,
    pool_name, sample_heat,
};
use crate::model::update::{
    DeploymentRecord, EventRecord, KubeEvent, NodeRecord, Phase, PodRecord, Record, Resource,
    Update,
};
use crate::model::{
    ClusterEvent, ClusterSnapshot, ClusterTotals, CrashLoopingPod, DeploymentModel, GangJob,
    GangMember, History, InferenceServiceModel, NamespaceSummary, NodeModel, NodeReadiness,
    PdbModel, PendingPod, PhaseCounts, ResourceSync, RolloutState, Sample, Snapshot, SyncState,
    WorkloadKind, WorkloadModel,
};

/// Snapshots are published at most this often while changes stream in.
pub const MIN_PUBLISH_INTERVAL: Duration = Duration::from_millis(20);
/// How far back chart history goes.
pub const HISTORY_AGE: Duration = Duration::from_secs(3600);
const HISTORY_STEP: Duration = Duration::from_secs(10);
/// Warning events kept per cluster (newest first).
pub const MAX_WARNINGS: usize = 500;
/// Normal events kept per cluster (newest first): a large cluster makes thousands an hour.
pub const MAX_NORMAL_EVENTS: usize = 1000;
/// A cluster's pod rows are rebuilt at most this often while pods change: sorting 150,000
/// pointers is cheap, doing it at every 20 ms publish is not.
pub const POD_ROWS_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub name: String,
    pub server: String,
}

type PodKey = (Arc<str>, Box<str>);

#[derive(Default, Clone, Copy)]
struct NodeAgg {
    phases: PhaseCounts,
    gpus: u32,
}

fn bump(c: &mut PhaseCounts, phase: Phase, delta: i64) {
    let slot = match phase {
        Phase::Pending => &mut c.pending,
        Phase::Running => &mut c.running,
        Phase::Succeeded => &mut c.succeeded,
        Phase::Failed => &mut c.failed,
        Phase::Unknown => &mut c.unknown,
    };
    *slot = (*slot as i64 + delta).max(0) as u32;
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
        Phase::Unknown => "Unknown",
    }
}

fn is_crash_looping(p: &PodRecord) -> bool {
    p.waiting.as_deref() == Some("CrashLoopBackOff")
        || (p.restarts >= 5 && !p.ready && p.phase == Phase::Running)
}

/// The pools' heat last computed, with the GPU list and the hash of every node's pool it was
/// computed from.
type HeatFrom = (
    std::sync::Weak<Vec<GpuModel>>,
    u64,
    BTreeMap<String, PoolHeat>,
);

/// The model of one cluster.
struct ClusterModel {
    info: ClusterInfo,
    nodes: BTreeMap<String, NodeRecord>,
    pods: HashMap<PodKey, Arc<PodRecord>>,
    /// The pods as last published: the records themselves are shared, not copied.
    pod_rows: crate::model::PodRows,
    pods_changed: bool,
    pod_rows_built: Option<std::time::Instant>,
    node_agg: HashMap<Arc<str>, NodeAgg>,
    ns_agg: BTreeMap<Arc<str>, PhaseCounts>,
    crash_looping: BTreeSet<PodKey>,
    pending: BTreeSet<PodKey>,
    gangs: BTreeMap<(Arc<str>, Arc<str>), BTreeSet<PodKey>>,
    deployments: BTreeMap<(String, String), DeploymentRecord>,
    pdbs: BTreeMap<(String, String), PdbModel>,
    warnings: BTreeMap<(String, String), EventRecord>,
    normal_events: BTreeMap<(String, String), EventRecord>,
    workloads: BTreeMap<(WorkloadKind, String, String), WorkloadModel>,
    isvcs: BTreeMap<(String, String), InferenceServiceModel>,
    spark_apps: BTreeMap<(String, String), crate::model::spark::SparkApplicationModel>,
    sync: BTreeMap<Resource, ResourceSync>,
    cached: Option<Arc<ClusterSnapshot>>,
}

impl ClusterModel {
    fn new(info: ClusterInfo) -> Self {
        Self {
            info,
            nodes: BTreeMap::new(),
            pods: HashMap::new(),
            pod_rows: Default::default(),
            pods_changed: false,
            pod_rows_built: None,
            node_agg: HashMap::new(),
            ns_agg: BTreeMap::new(),
            crash_looping: BTreeSet::new(),
            pending: BTreeSet::new(),
            gangs: BTreeMap::new(),
            deployments: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            warnings: BTreeMap::new(),
            normal_events: BTreeMap::new(),
            workloads: BTreeMap::new(),
            isvcs: BTreeMap::new(),
            spark_apps: BTreeMap::new(),
            sync: Resource::ALL
                .iter()
                .map(|r| {
                    let s = ResourceSync {
                        resource: r.name().into(),
                        state: SyncState::Listing { objects: 0 },
                        changed_at: Utc::now(),
                    };
                    (*r, s)
                })
                .collect(),
            cached: None,
        }
    }

    fn account(&mut self, key: &PodKey, p: &PodRecord, delta: i64) {
        if let Some(node) = &p.node {
            let agg = self.node_agg.entry(node.clone()).or_default();
            bump(&mut agg.phases, p.phase, delta);
            if matches!(p.phase, Phase::Pending | Phase::Running | Phase::Unknown) {
                agg.gpus = (agg.gpus as i64 + delta * p.gpus as i64).max(0) as u32;
            }
        }
        bump(
            self.ns_agg.entry(p.namespace.clone()).or_default(),
            p.phase,
            delta,
        );
        let add = delta > 0;
        let set = |s: &mut BTreeSet<PodKey>, on: bool| {
            if on && add {
                s.insert(key.clone());
            } else if !add {
                s.remove(key);
            }
        };
        set(&mut self.crash_looping, is_crash_looping(p));
        set(&mut self.pending, p.phase == Phase::Pending);
        if let Some(job) = &p.gang {
            let g = self
                .gangs
                .entry((p.namespace.clone(), job.clone()))
                .or_default();
            if add {
                g.insert(key.clone());
            } else {
                g.remove(key);
                if g.is_empty() {
                    self.gangs.remove(&(p.namespace.clone(), job.clone()));
                }
            }
        }
    }

    fn put_pod(&mut self, p: PodRecord) {
        let key: PodKey = (p.namespace.clone(), p.name.clone());
        if let Some(old) = self.pods.remove(&key) {
            self.account(&key, &old, -1);
        }
        self.account(&key, &p, 1);
        self.pods.insert(key, Arc::new(p));
    }

    fn remove_pod(&mut self, ns: &str, name: &str) {
        let key: PodKey = (Arc::from(ns), Box::from(name));
        if let Some(old) = self.pods.remove(&key) {
            self.account(&key, &old, -1);
        }
    }

    fn clear(&mut self, resource: Resource) {
        match resource {
            Resource::Nodes => self.nodes.clear(),
            Resource::Pods => {
                self.pods.clear();
                self.node_agg.clear();
                self.ns_agg.clear();
                self.crash_looping.clear();
                self.pending.clear();
                self.gangs.clear();
            }
            Resource::Deployments => self.deployments.clear(),
            Resource::PodDisruptionBudgets => self.pdbs.clear(),
            Resource::Events => {
                self.warnings.clear();
                self.normal_events.clear();
            }
            Resource::InferenceServices => self.isvcs.clear(),
            Resource::SparkApplications => self.spark_apps.clear(),
            Resource::StatefulSets | Resource::DaemonSets | Resource::Jobs => self
                .workloads
                .retain(|(kind, _, _), _| Resource::of_workload(*kind) != resource),
        }
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Node(n) => {
                self.nodes.insert(n.name.clone(), n);
            }
            Record::Pod(p) => self.put_pod(p),
            Record::Deployment(d) => {
                self.deployments
                    .insert((d.namespace.clone(), d.name.clone()), d);
            }
            Record::Pdb(p) => {
                self.pdbs.insert((p.namespace.clone(), p.name.clone()), p);
            }
            Record::Event(e) => {
                let key = (e.namespace.clone(), e.name.clone());
                // An event's type does not change, but a replaced one must not stay twice.
                let (events, other, cap) = if e.warning {
                    (&mut self.warnings, &mut self.normal_events, MAX_WARNINGS)
                } else {
                    (
                        &mut self.normal_events,
                        &mut self.warnings,
                        MAX_NORMAL_EVENTS,
                    )
                };
                other.remove(&key);
                events.insert(key, e);
                prune_oldest(events, cap);
            }
            Record::Workload(w) => {
                self.workloads
                    .insert((w.kind, w.namespace.clone(), w.name.clone()), w);
            }
            Record::InferenceService(i) => {
                self.isvcs.insert((i.namespace.clone(), i.name.clone()), i);
            }
            Record::SparkApplication(a) => {
                self.spark_apps
                    .insert((a.namespace.clone(), a.name.clone()), *a);
            }
        }
    }

    fn delete(&mut self, resource: Resource, ns: String, name: String) {
        match resource {
            Resource::Nodes => {
                self.nodes.remove(&name);
            }
            Resource::Pods => self.remove_pod(&ns, &name),
            Resource::Deployments => {
                self.deployments.remove(&(ns, name));
            }
            Resource::PodDisruptionBudgets => {
                self.pdbs.remove(&(ns, name));
            }
            Resource::Events => {
                let key = (ns, name);
                self.warnings.remove(&key);
                self.normal_events.remove(&key);
            }
            Resource::InferenceServices => {
                self.isvcs.remove(&(ns, name));
            }
            Resource::StatefulSets => {
                self.workloads
                    .remove(&(WorkloadKind::StatefulSet, ns, name));
            }
            Resource::DaemonSets => {
                self.workloads.remove(&(WorkloadKind::DaemonSet, ns, name));
            }
            Resource::Jobs => {
                self.workloads.remove(&(WorkloadKind::Job, ns, name));
            }
            Resource::SparkApplications => {
                self.spark_apps.remove(&(ns, name));
            }
        }
    }

    fn handle(&mut self, event: KubeEvent) {
        self.pods_changed |= match &event {
            KubeEvent::Replace { resource, .. } | KubeEvent::Delete { resource, .. } => {
                *resource == Resource::Pods
            }
            KubeEvent::Apply(r) => matches!(r, Record::Pod(_)),
            KubeEvent::Sync { .. } => false,
        };
        match event {
            KubeEvent::Replace { resource, items } => {
                self.clear(resource);
                for r in items {
                    self.apply(r);
                }
            }
            KubeEvent::Apply(r) => self.apply(r),
            KubeEvent::Delete {
                resource,
                namespace,
                name,
            } => self.delete(resource, namespace, name),
            KubeEvent::Sync { resource, state } => {
                if self.sync.get(&resource).map(|s| &s.state) != Some(&state) {
                    self.sync.insert(
                        resource,
                        ResourceSync {
                            resource: resource.name().into(),
                            state,
                            changed_at: Utc::now(),
                        },
                    );
                }
            }
        }
        self.cached = None;
    }

    /// When the deferred pod rows are due, if pods changed since they were built.
    fn pod_rows_due(&self) -> Option<std::time::Instant> {
        self.pods_changed
            .then(|| self.pod_rows_built.map(|t| t + POD_ROWS_INTERVAL))
            .flatten()
    }

    fn snapshot(&mut self, now: std::time::Instant) -> Arc<ClusterSnapshot> {
        if let Some(c) = &self.cached {
            return c.clone();
        }
        if self.pods_changed && self.pod_rows_due().is_none_or(|due| now >= due) {
            let mut rows: Vec<Arc<PodRecord>> = self.pods.values().cloned().collect();
            rows.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            self.pod_rows = Arc::new(rows);
            self.pods_changed = false;
            self.pod_rows_built = Some(now);
        }
        let mut totals = ClusterTotals::default();
        let nodes: Vec<NodeModel> = self
            .nodes
            .values()
            .map(|n| {
                let agg = self
                    .node_agg
                    .get(n.name.as_str())
                    .copied()
                    .unwrap_or_default();
                totals.nodes += 1;
                totals.nodes_ready += u32::from(n.readiness == NodeReadiness::Ready);
                totals.nodes_cordoned += u32::from(n.cordoned);
                totals.nodes_spot += u32::from(n.capacity_type == crate::model::CapacityType::Spot);
                totals.gpus_allocatable += n.gpu_allocatable;
                totals.gpus_requested += agg.gpus;
                NodeModel {
                    name: n.name.clone(),
                    readiness: n.readiness,
                    readiness_since: n.readiness_since,
                    cordoned: n.cordoned,
                    taints: n.taints.clone(),
                    capacity_type: n.capacity_type,
                    instance_type: n.instance_type.clone(),
                    pool: n.pool.clone(),
                    zone: n.zone.clone(),
                    gpu_product: n.gpu_product.clone(),
                    gpu_capacity: n.gpu_capacity,
                    gpu_allocatable: n.gpu_allocatable,
                    gpu_requested: agg.gpus,
                    pods: agg.phases,
                    created: n.created,
                }
            })
            .collect();
        let namespaces: Vec<NamespaceSummary> = self
            .ns_agg
            .iter()
            .filter(|(_, c)| c.total() > 0)
            .map(|(ns, c)| {
                for (t, v) in [
                    (&mut totals.pods.pending, c.pending),
                    (&mut totals.pods.running, c.running),
                    (&mut totals.pods.succeeded, c.succeeded),
                    (&mut totals.pods.failed, c.failed),
                    (&mut totals.pods.unknown, c.unknown),
                ] {
                    *t += v;
                }
                NamespaceSummary {
                    name: ns.to_string(),
                    pods: *c,
                }
            })
            .collect();
        let crash_looping = self
            .crash_looping
            .iter()
            .filter_map(|k| self.pods.get(k))
            .map(|p| CrashLoopingPod {
                namespace: p.namespace.to_string(),
                name: p.name.to_string(),
                node: p.node.as_deref().map(str::to_string),
                restarts: p.restarts,
                reason: p.waiting.as_deref().unwrap_or("restarting").to_string(),
                last_termination: p.last_termination.as_deref().map(str::to_string),
            })
            .collect();
        let pending = self
            .pending
            .iter()
            .filter_map(|k| self.pods.get(k))
            .map(|p| {
                let (reason, message) = match (&p.unschedulable, &p.waiting) {
                    (Some(u), _) => (u.0.clone(), u.1.clone()),
                    (None, Some(w)) => (w.to_string(), String::new()),
                    (None, None) if p.node.is_none() => {
                        ("Pending".into(), "waiting for the scheduler".into())
                    }
                    (None, None) => ("ContainerCreating".into(), String::new()),
                };
                PendingPod {
                    namespace: p.namespace.to_string(),
                    name: p.name.to_string(),
                    reason,
                    message,
                    gpus: p.gpus,
                    since: p.created,
                }
            })
            .collect();
        let deployments = self
            .deployments
            .values()
            .map(|d| DeploymentModel {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                revision: d.revision,
                replicas: d.replicas,
                ready: d.ready,
                updated: d.updated,
                available: d.available,
                rollout: if d.paused {
                    RolloutState::Paused
                } else if d.stalled {
                    RolloutState::Stalled
                } else if d.updated < d.replicas || d.ready < d.replicas || d.available < d.replicas
                {
                    RolloutState::Progressing
                } else {
                    RolloutState::Complete
                },
                images: d.images.clone(),
                registered_model: d.registered_model.clone(),
            })
            .collect();
        let pdbs = self.pdbs.values().cloned().collect();
        let gang_jobs = self
            .gangs
            .iter()
            .map(|((ns, job), members)| GangJob {
                namespace: ns.to_string(),
                name: job.to_string(),
                members: members
                    .iter()
                    .filter_map(|k| self.pods.get(k))
                    .map(|p| GangMember {
                        pod: p.name.to_string(),
                        node: p.node.as_deref().map(str::to_string),
                        phase: phase_name(p.phase).into(),
                        ready: p.ready,
                        gpus: p.gpus,
                        replica_type: p
                            .label("training.kubeflow.org/replica-type")
                            .map(str::to_string),
                        replica_index: p
                            .label("training.kubeflow.org/replica-index")
                            .and_then(|i| i.parse().ok()),
                        checkpointing: p.checkpointing,
                    })
                    .collect(),
            })
            .collect();
        let warnings = newest_events(&self.warnings, MAX_WARNINGS);
        let normal_events = newest_events(&self.normal_events, MAX_NORMAL_EVENTS);
        let workloads = self.workloads.values().cloned().collect();
        let inference_services = self.isvcs.values().cloned().collect();
        let spark_applications = self.spark_apps.values().cloned().collect();
        let snap = Arc::new(ClusterSnapshot {
            name: self.info.name.clone(),
            server: self.info.server.clone(),
            sync: self.sync.values().cloned().collect(),
            totals,
            nodes,
            namespaces,
            crash_looping,
            pending,
            deployments,
            pdbs,
            gang_jobs,
            warnings,
            normal_events,
            workloads,
            inference_services,
            spark_applications,
            pods: self.pod_rows.clone(),
        });
        // With pod rows still deferred, the next publish builds this cluster again.
        self.cached = (!self.pods_changed).then(|| snap.clone());
        snap
    }
}

/// The model of the whole fleet, and what was last published.
/// (source kind, cluster, target) of a GPU source.
type GpuSourceKey = (String, String, String);

pub struct FleetState {
    clusters: Vec<ClusterModel>,
    /// Each configured endpoint's latency SLO target (ms), charted beside its p99.
    endpoint_slo_ms: Vec<Option<f64>>,
    gpu_sources: BTreeMap<
        GpuSourceKey,
        (
            crate::model::gpu::GpuSourceStatus,
            Vec<crate::model::gpu::GpuModel>,
        ),
    >,
    /// All GPUs, flattened once per GPU update rather than per snapshot.
    gpus: Arc<Vec<crate::model::gpu::GpuModel>>,
    endpoints: Vec<Arc<crate::model::endpoint::EndpointModel>>,
    version: u64,
    history: Arc<History>,
    last_sample: Option<DateTime<Utc>>,
    /// The last good cost report and where the cost source stands.
    cost: Option<Arc<crate::model::cost::CostReport>>,
    cost_source: Option<crate::model::cost::CostSourceStatus>,
    /// What the model registry said about each endpoint's model, by endpoint.
    models: BTreeMap<String, Arc<crate::model::registry::RegisteredModelView>>,
    airflow: Option<Arc<crate::model::airflow::AirflowPicture>>,
    /// Each GPU's recent readings: kept here once, read by the detectors and the panes.
    gpu_history: SharedGpuHistory,
    /// The pools' heat of the last sample and what it was computed from (the GPU list and a
    /// hash of every node's pool): the GPU sources report less often than the clusters change,
    /// so a sample whose inputs did not change reuses it instead of walking every GPU.
    heat: Option<HeatFrom>,
}

impl FleetState {
    pub fn new(clusters: Vec<ClusterInfo>) -> Self {
        Self::with_endpoints(clusters, &[])
    }

    /// A fleet with configured endpoints, each known as "not probed yet" until its source
    /// reports.
    pub fn with_endpoints(
        clusters: Vec<ClusterInfo>,
        endpoints: &[crate::model::endpoint::EndpointConfig],
    ) -> Self {
        let now = Utc::now();
        Self {
            clusters: clusters.into_iter().map(ClusterModel::new).collect(),
            endpoint_slo_ms: endpoints
                .iter()
                .map(|c| c.slo.latency.map(|l| l.target_ms))
                .collect(),
            endpoints: endpoints
                .iter()
                .map(|c| Arc::new(crate::model::endpoint::EndpointModel::new(c, now)))
                .collect(),
            gpu_sources: BTreeMap::new(),
            gpus: Arc::new(Vec::new()),
            version: 0,
            history: Arc::new(History::new()),
            last_sample: None,
            cost: None,
            cost_source: None,
            models: BTreeMap::new(),
            airflow: None,
            gpu_history: SharedGpuHistory::default(),
            heat: None,
        }
    }

    /// Keeps `window` of each GPU's readings (the memory forecast's window; the GPUs detail
    /// charts what is kept).
    pub fn with_gpu_window(self, window: Duration) -> Self {
        Self {
            gpu_history: SharedGpuHistory::new(GpuHistory::new(window.max(DEFAULT_GPU_WINDOW))),
            ..self
        }
    }

    pub fn apply(&mut self, u: Update) {
        match u {
            Update::Kube { cluster, event } => {
                if let Some(c) = self.clusters.get_mut(cluster) {
                    c.handle(event);
                }
            }
            Update::Gpu(u) => {
                let u = *u;
                let key = (
                    format!("{:?}", u.status.kind),
                    u.status.cluster.clone(),
                    u.status.target.clone(),
                );
                let entry = self
                    .gpu_sources
                    .entry(key)
                    .or_insert_with(|| (u.status.clone(), Vec::new()));
                entry.0 = u.status;
                // A failed round keeps the last picture; the status says it is stale.
                if let Some(gpus) = u.gpus {
                    entry.1 = gpus;
                    let gpus: Arc<Vec<GpuModel>> = Arc::new(
                        self.gpu_sources
                            .values()
                            .flat_map(|(_, g)| g.iter().cloned())
                            .collect(),
                    );
                    let mut history = self.gpu_history.write();
                    history.record(&gpus);
                    history.retain_live(&gpus);
                    drop(history);
                    self.gpus = gpus;
                }
            }
            Update::Prometheus(u) => {
                let u = *u;
                let key = (
                    "Prometheus".to_string(),
                    u.status.cluster.clone(),
                    u.status.target.clone(),
                );
                let status = u.status;
                let entry = self
                    .gpu_sources
                    .entry(key)
                    .or_insert_with(|| (status.clone(), Vec::new()));
                entry.0 = status;
                if let Some(h) = u.history {
                    let history = Arc::make_mut(&mut self.history);
                    history.retain(|k, _| !k.starts_with("prometheus/"));
                    history.extend(h);
                }
            }
            Update::Registry(u) => match u.view {
                Some(view) => {
                    self.models.insert(u.endpoint, Arc::new(view));
                }
                None => {
                    self.models.remove(&u.endpoint);
                }
            },
            Update::Airflow(p) => self.airflow = Some(Arc::from(p)),
            Update::Cost(u) => {
                let u = *u;
                // A failed round keeps the last report; the status says how old it is.
                if let Some(report) = u.report {
                    self.cost = Some(Arc::new(report));
                }
                self.cost_source = Some(u.status);
            }
            Update::Endpoint(u) => {
                let u = *u;
                // The p99 and the SLO target as history, for the Endpoints pane's chart.
                if let Some(p99) = u.endpoint.metrics.as_ref().and_then(|m| m.latency_p99_ms) {
                    let at = u.endpoint.updated_at;
                    let horizon = at - chrono::Duration::from_std(HISTORY_AGE).unwrap_or_default();
                    let history = Arc::make_mut(&mut self.history);
                    let slo = self.endpoint_slo_ms.get(u.index).copied().flatten();
                    let name = &u.endpoint.name;
                    for (key, value) in [
                        (format!("endpoint/{name}/latency_p99_ms"), Some(p99)),
                        (format!("endpoint/{name}/latency_slo_ms"), slo),
                    ] {
                        let Some(value) = value else { continue };
                        let series = history.entry(key).or_default();
                        if series.last().is_none_or(|s| s.at < at) {
                            series.push(Sample { at, value });
                        }
                        series.retain(|s| s.at >= horizon);
                    }
                }
                if let Some(slot) = self.endpoints.get_mut(u.index) {
                    *slot = Arc::new(u.endpoint);
                }
            }
        }
    }

    pub fn snapshot(&mut self) -> Snapshot {
        self.snapshot_at(std::time::Instant::now())
    }

    /// When a cluster's deferred pod rows are due: publish again then, even with no update.
    pub fn pod_rows_due(&self) -> Option<std::time::Instant> {
        self.clusters
            .iter()
            .filter_map(ClusterModel::pod_rows_due)
            .min()
    }

    /// As [`FleetState::snapshot`], with `now` deciding whether deferred pod rows are due.
    pub fn snapshot_at(&mut self, instant: std::time::Instant) -> Snapshot {
        self.version += 1;
        let now = Utc::now();
        let clusters: Vec<Arc<ClusterSnapshot>> = self
            .clusters
            .iter_mut()
            .map(|c| c.snapshot(instant))
            .collect();
        if self
            .last_sample
            .is_none_or(|t| (now - t).to_std().unwrap_or_default() >= HISTORY_STEP)
        {
            self.last_sample = Some(now);
            let history = Arc::make_mut(&mut self.history);
            let horizon = now - chrono::Duration::from_std(HISTORY_AGE).unwrap_or_default();
            for c in &clusters {
                for (metric, value) in [
                    ("nodes_ready", c.totals.nodes_ready as f64),
                    ("pods_running", c.totals.pods.running as f64),
                    ("pods_pending", c.totals.pods.pending as f64),
                    ("gpus_requested", c.totals.gpus_requested as f64),
                ] {
                    let series = history.entry(format!("{}/{metric}", c.name)).or_default();
                    series.push(Sample { at: now, value });
                    series.retain(|s| s.at >= horizon);
                }
            }
            let heat = self.pool_heat(&clusters);
            sample_heat(Arc::make_mut(&mut self.history), now, &heat, horizon);
        }
        Snapshot {
            version: self.version,
            taken_at: Some(now),
            clusters,
            history: self.history.clone(),
            signals: Vec::new(),
            endpoints: self.endpoints.clone(),
            gpus: self.gpus.clone(),
            gpu_sources: self.gpu_sources.values().map(|(s, _)| s.clone()).collect(),
            cost: self.cost.clone(),
            cost_source: self.cost_source.clone(),
            models: self.models.values().cloned().collect(),
            airflow: self.airflow.clone(),
            finding_kinds: Vec::new(),
            unknown_since_start: Vec::new(),
            store_down: None,
            gpu_history: self.gpu_history.clone(),
        }
    }

    /// Each pool's GPU heat now: the last one when neither the GPU list nor any node's pool
    /// changed since.
    fn pool_heat(&mut self, clusters: &[Arc<ClusterSnapshot>]) -> BTreeMap<String, PoolHeat> {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        for c in clusters {
            for n in &c.nodes {
                (&c.name, &n.name, pool_name(n)).hash(&mut h);
            }
        }
        let pools = h.finish();
        if let Some((gpus, p, heat)) = &self.heat
            && *p == pools
            && std::ptr::eq(gpus.as_ptr(), Arc::as_ptr(&self.gpus))
        {
            return heat.clone();
        }
        let heat = pool_heat(clusters, &self.gpus);
        self.heat = Some((Arc::downgrade(&self.gpus), pools, heat.clone()));
        heat
    }
}

/// Runs the state task: applies updates, publishes snapshots (at most every
/// `MIN_PUBLISH_INTERVAL` while changes stream in). Ends when every sender is gone.
pub fn spawn(
    clusters: Vec<ClusterInfo>,
    rx: mpsc::Receiver<Update>,
) -> watch::Receiver<Arc<Snapshot>> {
    spawn_fleet(FleetState::new(clusters), rx)
}

/// As [`spawn`], for a fleet built by the caller (e.g. with endpoints).
pub fn spawn_fleet(
    mut state: FleetState,
    mut rx: mpsc::Receiver<Update>,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, out) = watch::channel(Arc::new(state.snapshot()));
    tokio::spawn(async move {
        let mut dirty = false;
        let mut last_publish = Instant::now();
        // Pod rows deferred by the last publish: publish again when they are due.
        let mut deferred: Option<Instant> = None;
        loop {
            let due = match deferred {
                Some(at) if !dirty => at.max(last_publish + MIN_PUBLISH_INTERVAL),
                _ => last_publish + MIN_PUBLISH_INTERVAL,
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(u) => {
                        state.apply(u);
                        while let Ok(u) = rx.try_recv() {
                            state.apply(u);
                        }
                        dirty = true;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(due), if dirty || deferred.is_some() => {}
            }
            if (dirty || deferred.is_some()) && Instant::now() >= due {
                if tx.send(Arc::new(state.snapshot())).is_err() {
                    break;
                }
                dirty = false;
                last_publish = Instant::now();
                deferred = state.pod_rows_due().map(Instant::from_std);
            }
        }
    });
    out
}

/// Drops the oldest events once `events` holds twice `cap` (amortised: one sort per `cap`).
fn prune_oldest(events: &mut BTreeMap<(String, String), EventRecord>, cap: usize) {
    if events.len() <= cap * 2 {
        return;
    }
    let mut by_age: Vec<_> = events
        .iter()
        .map(|(k, e)| (e.last_seen, k.clone()))
        .collect();
    by_age.sort();
    let surplus = events.len() - cap;
    for (_, k) in by_age.into_iter().take(surplus) {
        events.remove(&k);
    }
}

/// The newest `cap` events, newest first.
fn newest_events(
    events: &BTreeMap<(String, String), EventRecord>,
    cap: usize,
) -> Vec<ClusterEvent> {
    let mut out: Vec<ClusterEvent> = events
        .values()
        .map(|e| ClusterEvent {
            warning: e.warning,
            namespace: e.namespace.clone(),
            object: e.object.clone(),
            reason: e.reason.clone(),
            message: e.message.clone(),
            count: e.count,
            last_seen: e.last_seen,
        })
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.last_seen));
    out.truncate(cap);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, node: &str, phase: Phase, gpus: u32) -> PodRecord {
        PodRecord {
            namespace: Arc::from(ns),
            name: Box::from(name),
            node: Some(Arc::from(node)),
            phase,
            ready: phase == Phase::Running,
            terminating: false,
            gpus,
            restarts: 0,
            waiting: None,
            last_termination: None,
            unschedulable: None,
            gang: None,
            daemon: false,
            created: None,
            ..PodRecord::default()
        }
    }

    fn node(name: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            readiness: NodeReadiness::Ready,
            readiness_since: None,
            cordoned: false,
            taints: vec![],
            capacity_type: crate::model::CapacityType::Spot,
            instance_type: None,
            pool: None,
            zone: None,
            gpu_product: None,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            created: None,
        }
    }

    fn state() -> FleetState {
        FleetState::new(vec![ClusterInfo {
            name: "a".into(),
            server: "http://x".into(),
        }])
    }

    /// The one cluster a published fleet is made of.
    fn one_cluster() -> Vec<ClusterInfo> {
        vec![ClusterInfo {
            name: "a".into(),
            server: String::new(),
        }]
    }

    fn kube(event: KubeEvent) -> Update {
        Update::Kube { cluster: 0, event }
    }

    #[test]
    fn aggregates_follow_pod_changes_incrementally() {
        let mut s = state();
        s.apply(kube(KubeEvent::Replace {
            resource: Resource::Nodes,
            items: vec![Record::Node(node("n1"))],
        }));
        s.apply(kube(KubeEvent::Replace {
            resource: Resource::Pods,
            items: vec![
                Record::Pod(pod("ml", "a", "n1", Phase::Running, 2)),
                Record::Pod(pod("ml", "b", "n1", Phase::Pending, 1)),
            ],
        }));
        let snap = s.snapshot();
        let c = &snap.clusters[0];
        assert_eq!(c.nodes[0].gpu_requested, 3);
        assert_eq!(c.nodes[0].pods.running, 1);
        assert_eq!(c.pending.len(), 1);
        assert_eq!(c.totals.nodes_spot, 1);
        s.apply(kube(KubeEvent::Apply(Record::Pod(pod(
            "ml",
            "b",
            "n1",
            Phase::Succeeded,
            1,
        )))));
        s.apply(kube(KubeEvent::Delete {
            resource: Resource::Pods,
            namespace: "ml".into(),
            name: "a".into(),
        }));
        let snap = s.snapshot();
        let c = &snap.clusters[0];
        assert_eq!(c.nodes[0].gpu_requested, 0);
        assert_eq!(c.nodes[0].pods.succeeded, 1);
        assert_eq!(c.nodes[0].pods.running, 0);
        assert!(c.pending.is_empty());
        assert_eq!(c.totals.pods.total(), 1);
    }

    #[test]
    fn crash_loops_and_gangs_are_collected() {
        let mut s = state();
        let mut crash = pod("batch", "w", "n1", Phase::Running, 0);
        crash.waiting = Some("CrashLoopBackOff".into());
        crash.restarts = 7;
        crash.last_termination = Some("OOMKilled".into());
        let mut rank = pod("training", "job-worker-0", "n1", Phase::Running, 8);
        rank.gang = Some(Arc::from("job"));
        s.apply(kube(KubeEvent::Replace {
            resource: Resource::Pods,
            items: vec![Record::Pod(crash), Record::Pod(rank)],
        }));
        let snap = s.snapshot();
        let c = &snap.clusters[0];
        assert_eq!(
            c.crash_looping[0].last_termination.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(c.gang_jobs[0].name, "job");
        assert_eq!(c.gang_jobs[0].members[0].gpus, 8);
    }

    #[test]
    fn pod_rows_are_shared_until_pods_change_and_rebuilt_at_most_every_interval() {
        let mut s = state();
        let t0 = std::time::Instant::now();
        s.apply(kube(KubeEvent::Replace {
            resource: Resource::Pods,
            items: vec![
                Record::Pod(pod("ml", "b", "n1", Phase::Running, 0)),
                Record::Pod(pod("batch", "z", "n1", Phase::Running, 0)),
                Record::Pod(pod("ml", "a", "n1", Phase::Running, 0)),
            ],
        }));
        let first = s.snapshot_at(t0);
        let names: Vec<_> = first.clusters[0]
            .pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        assert_eq!(names, ["batch/z", "ml/a", "ml/b"]);
        // A node change rebuilds the cluster, not its pod rows.
        s.apply(kube(KubeEvent::Apply(Record::Node(node("n1")))));
        let second = s.snapshot_at(t0);
        assert!(Arc::ptr_eq(
            &first.clusters[0].pods,
            &second.clusters[0].pods
        ));
        assert_eq!(s.pod_rows_due(), None);
        // A pod change inside the interval waits for it; the aggregates do not.
        s.apply(kube(KubeEvent::Delete {
            resource: Resource::Pods,
            namespace: "ml".into(),
            name: "a".into(),
        }));
        let third = s.snapshot_at(t0 + Duration::from_millis(10));
        assert_eq!(third.clusters[0].pods.len(), 3);
        assert_eq!(third.clusters[0].totals.pods.total(), 2);
        assert_eq!(s.pod_rows_due(), Some(t0 + POD_ROWS_INTERVAL));
        let fourth = s.snapshot_at(t0 + POD_ROWS_INTERVAL);
        assert_eq!(fourth.clusters[0].pods.len(), 2);
        assert_eq!(s.pod_rows_due(), None);
        // The published pods are the records state keeps, not copies.
        assert!(Arc::ptr_eq(
            &fourth.clusters[0].pods[0],
            &s.snapshot_at(t0 + POD_ROWS_INTERVAL).clusters[0].pods[0]
        ));
    }

    #[tokio::test]
    async fn deferred_pod_rows_are_published_without_another_update() {
        let (tx, rx) = mpsc::channel(16);
        let mut out = spawn(one_cluster(), rx);
        for name in ["p1", "p2"] {
            tx.send(kube(KubeEvent::Apply(Record::Pod(pod(
                "ml",
                name,
                "n1",
                Phase::Running,
                0,
            )))))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if out.borrow().clusters[0].pods.len() == 2 {
                    break;
                }
                out.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
    }

    fn gpu_update(gpus: Vec<GpuModel>) -> Update {
        let at = Utc::now();
        Update::Gpu(Box::new(crate::model::gpu::GpuUpdate {
            status: crate::model::gpu::GpuSourceStatus {
                kind: crate::model::gpu::GpuSourceKind::Dcgm,
                cluster: "a".into(),
                target: "http://dcgm".into(),
                error: None,
                last_success: Some(at),
                checked_at: at,
            },
            gpus: Some(gpus),
        }))
    }

    fn gpu(node: &str, index: u32, util: f64, at: DateTime<Utc>) -> GpuModel {
        let mut g = GpuModel::new("a", node, index, &format!("GPU-{node}-{index}"), at);
        g.utilization_pct = Some(util);
        g.memory_used_mib = Some(1000);
        g
    }

    #[test]
    fn gpu_readings_are_kept_once_and_read_through_every_snapshot() {
        let mut s = state().with_gpu_window(Duration::from_secs(600));
        let t0 = Utc::now();
        s.apply(gpu_update(vec![gpu("n1", 0, 40.0, t0)]));
        let first = s.snapshot();
        s.apply(gpu_update(vec![gpu(
            "n1",
            0,
            60.0,
            t0 + chrono::Duration::seconds(10),
        )]));
        let second = s.snapshot();
        // One history: the older snapshot's readers see what state keeps, not a copy.
        for snap in [&first, &second] {
            let h = snap.gpu_history.read();
            let util: Vec<f64> = h
                .series("GPU-n1-0")
                .into_iter()
                .flatten()
                .filter_map(|s| s.utilization_pct())
                .collect();
            assert_eq!(util, [40.0, 60.0]);
        }
        // A GPU that left is forgotten.
        s.apply(gpu_update(vec![gpu("n2", 0, 1.0, t0)]));
        assert!(s.snapshot().gpu_history.read().series("GPU-n1-0").is_none());
    }

    #[test]
    fn pool_heat_is_sampled_into_history_reused_while_its_inputs_stand_and_recomputed_after() {
        let mut s = state();
        let mut n1 = node("n1");
        n1.pool = Some("pool-0".into());
        let mut n2 = node("n2");
        n2.pool = Some("pool-0".into());
        s.apply(kube(KubeEvent::Replace {
            resource: Resource::Nodes,
            items: vec![Record::Node(n1), Record::Node(n2.clone())],
        }));
        let t0 = Utc::now();
        s.apply(gpu_update(vec![
            gpu("n1", 0, 40.0, t0),
            gpu("n2", 0, 2.0, t0),
        ]));
        let snap = s.snapshot();
        let heat: Vec<_> = crate::model::gpu_history::heat_series(&snap.history)
            .map(|(pool, util, idle)| (pool.to_string(), util.len(), util[0].value, idle[0].value))
            .collect();
        assert_eq!(heat, [("pool-0".to_string(), 1, 21.0, 0.0)]);
        // Marked, so that a reuse shows; the clusters rebuilt by a pod change keep the pools.
        if let Some((_, _, h)) = s.heat.as_mut() {
            h.insert("marked".into(), h["pool-0"]);
        }
        s.apply(kube(KubeEvent::Apply(Record::Pod(pod(
            "ml",
            "p",
            "n1",
            Phase::Running,
            1,
        )))));
        s.last_sample = None;
        let snap = s.snapshot();
        assert!(
            snap.history.contains_key("gpu_heat/marked/util_pct"),
            "reused"
        );
        // A node moved to another pool: computed again.
        n2.pool = Some("pool-9".into());
        s.apply(kube(KubeEvent::Apply(Record::Node(n2))));
        s.last_sample = None;
        let snap = s.snapshot();
        let pools: Vec<&str> = crate::model::gpu_history::heat_series(&snap.history)
            .map(|(pool, _, _)| pool)
            .collect();
        assert_eq!(
            pools,
            ["marked", "pool-0", "pool-9"],
            "marked ages out within the hour"
        );
        assert!(
            s.heat
                .as_ref()
                .is_some_and(|(_, _, h)| !h.contains_key("marked"))
        );
    }

    #[test]
    fn unchanged_clusters_share_their_previous_snapshot() {
        let mut s = state();
        let a = s.snapshot();
        let b = s.snapshot();
        assert!(Arc::ptr_eq(&a.clusters[0], &b.clusters[0]));
        assert!(b.version > a.version);
    }

    #[tokio::test]
    async fn published_snapshots_carry_the_latest_change() {
        let (tx, rx) = mpsc::channel(16);
        let mut out = spawn(one_cluster(), rx);
        tx.send(kube(KubeEvent::Apply(Record::Node(node("n9")))))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                out.changed().await.unwrap();
                if out.borrow().clusters[0]
                    .nodes
                    .iter()
                    .any(|n| n.name == "n9")
                {
                    break;
                }
            }
        })
        .await
        .unwrap();
    }
}
