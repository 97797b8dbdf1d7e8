//! The Kubernetes source, the fleet state and `fleetdeck snapshot` against `fleetdeck sim`
//! over real HTTP. Each in-process test watches the sim's clusters with
//! `sources::kube::spawn_cluster` feeding `state::spawn`, and checks the published snapshots
//! against what the same API servers list to a plain HTTP client; the binary tests run
//! `fleetdeck snapshot` as a script would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Kubectl, Sim};
use fleetdeck::model::{
    CapacityType, ClusterSnapshot, ClusterTotals, NodeReadiness, PhaseCounts, Snapshot, SyncState,
};
use fleetdeck::sources::Update;
use fleetdeck::sources::kube::{spawn_cluster, targets};
use fleetdeck::state::{ClusterInfo, spawn};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// How long any wait may take before the test fails: generous, for a loaded debug build.
const PATIENCE: Duration = Duration::from_secs(60);

/// The resources the source reports per cluster.
const RESOURCES: [&str; 10] = [
    "nodes",
    "pods",
    "deployments",
    "poddisruptionbudgets",
    "events",
    "inferenceservices",
    "statefulsets",
    "daemonsets",
    "jobs",
    "sparkapplications",
];

/// Blocking work (starting the sim, running kubectl) without stalling the runtime's workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn start_sim(args: &[&str]) -> Sim {
    blocking(|| Sim::start(args))
}

// ---- the cockpit's side, in this process ---------------------------------------------------

/// Every chosen context of a kubeconfig, watched by the Kubernetes source, its updates
/// applied by `state`.
struct Fleet {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Kept so `state` never sees its last sender go.
    _updates: mpsc::Sender<Update>,
}

impl Fleet {
    fn watch(kubeconfig: &Path, contexts: &[&str]) -> Fleet {
        let contexts: Vec<String> = contexts.iter().map(|c| c.to_string()).collect();
        let targets = targets(Some(kubeconfig), &contexts).expect("the kubeconfig's targets");
        let infos = targets
            .iter()
            .map(|t| ClusterInfo {
                name: t.context.clone(),
                server: t.server.clone(),
            })
            .collect();
        let (tx, rx) = mpsc::channel(4096);
        let snapshots = spawn(infos, rx);
        for (i, t) in targets.into_iter().enumerate() {
            spawn_cluster(i, t, Default::default(), tx.clone());
        }
        Fleet {
            snapshots,
            _updates: tx,
        }
    }

    fn latest(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Waits for a published snapshot that satisfies `ok`.
    async fn until(&mut self, what: &str, mut ok: impl FnMut(&Snapshot) -> bool) -> Arc<Snapshot> {
        let rx = &mut self.snapshots;
        let wait = async {
            loop {
                let snap = rx.borrow_and_update().clone();
                if ok(&snap) {
                    return snap;
                }
                rx.changed().await.expect("the state task is running");
            }
        };
        match tokio::time::timeout(PATIENCE, wait).await {
            Ok(snap) => snap,
            Err(_) => panic!(
                "timed out waiting for {what}; the latest snapshot's sync: {}",
                sync_summary(&self.latest())
            ),
        }
    }

    async fn until_synced(&mut self) -> Arc<Snapshot> {
        self.until("every cluster to sync", |s| {
            !s.clusters.is_empty() && s.clusters.iter().all(|c| fully_synced(c))
        })
        .await
    }

    /// Waits until the snapshot's picture of `cluster` is exactly what its API lists.
    async fn until_agrees_with(&self, cluster: &str, api: &KubeApi) -> Arc<Snapshot> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let want = api.picture().await;
            let snap = self.latest();
            let got = snap.cluster(cluster).map(Picture::of_snapshot);
            if got.as_ref() == Some(&want) {
                return snap;
            }
            if Instant::now() > deadline {
                let diff = match &got {
                    Some(got) => got.differences(&want).join("\n  "),
                    None => format!("no cluster {cluster} in the snapshot"),
                };
                panic!("the snapshot of {cluster} never agreed with its API:\n  {diff}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn cluster<'a>(snap: &'a Snapshot, name: &str) -> &'a ClusterSnapshot {
    snap.cluster(name)
        .unwrap_or_else(|| panic!("no cluster {name} in the snapshot"))
}

fn state_of<'a>(c: &'a ClusterSnapshot, resource: &str) -> Option<&'a SyncState> {
    c.sync
        .iter()
        .find(|s| s.resource == resource)
        .map(|s| &s.state)
}

/// Every resource reported, and every one `Synced`.
fn fully_synced(c: &ClusterSnapshot) -> bool {
    RESOURCES
        .iter()
        .all(|r| state_of(c, r) == Some(&SyncState::Synced))
}

fn sync_summary(snap: &Snapshot) -> String {
    snap.clusters
        .iter()
        .map(|c| {
            let states: Vec<String> = c
                .sync
                .iter()
                .map(|s| format!("{}: {}", s.resource, s.state.describe()))
                .collect();
            format!("{} [{}]", c.name, states.join("; "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- the API's side, read as a script would -----------------------------------------------

/// One cluster's API server over plain HTTP. Requests the sim fails on purpose (scenario
/// `api-flaky`: 500s) are retried, as any client would.
struct KubeApi {
    url: String,
    http: reqwest::Client,
    /// GET requests this client sent, retries included: the sim counts them too.
    gets: AtomicU64,
}

impl KubeApi {
    fn of(sim: &Sim, cluster: usize) -> KubeApi {
        KubeApi {
            url: sim.kube_url(cluster),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            gets: AtomicU64::new(0),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, patch: Option<&Value>) -> Value {
        for _ in 0..50 {
            if method == reqwest::Method::GET {
                self.gets.fetch_add(1, Ordering::Relaxed);
            }
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.url));
            match patch {
                Some(Value::Object(o)) if method == reqwest::Method::PATCH => {
                    req = req
                        .header("Content-Type", "application/merge-patch+json")
                        .body(Value::Object(o.clone()).to_string());
                }
                Some(body) => req = req.json(body),
                None => {}
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let code = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            match code {
                200..=299 => return body,
                500..=599 => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => panic!("{method} {path} answered {code}: {body}"),
            }
        }
        panic!("{method} {path} kept failing with 5xx");
    }

    async fn list(&self, path: &str) -> Vec<Value> {
        let v = self.send(reqwest::Method::GET, path, None).await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    async fn nodes(&self) -> Vec<Value> {
        self.list("/api/v1/nodes").await
    }

    async fn pods(&self) -> Vec<Value> {
        self.list("/api/v1/pods").await
    }

    async fn cordon(&self, node: &str) -> Value {
        self.send(
            reqwest::Method::PATCH,
            &format!("/api/v1/nodes/{node}"),
            Some(&json!({"spec": {"unschedulable": true}})),
        )
        .await
    }

    /// Deletes a pod at once (grace period 0); its owner replaces it.
    async fn delete_pod(&self, namespace: &str, name: &str) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0"),
            None,
        )
        .await;
    }

    async fn pod_named(&self, prefix: &str) -> (String, String) {
        self.pods()
            .await
            .iter()
            .find(|p| name_of(p).starts_with(prefix))
            .map(|p| (namespace_of(p).to_string(), name_of(p).to_string()))
            .unwrap_or_else(|| panic!("the API lists no pod named {prefix}…"))
    }

    /// What the API lists, reduced to what a snapshot shows of it.
    async fn picture(&self) -> Picture {
        Picture::of_api(&self.nodes().await, &self.pods().await)
    }
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn namespace_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

fn gpus(q: &Value) -> u32 {
    match q {
        Value::String(s) => s.trim().parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0) as u32,
        _ => 0,
    }
}

/// GPUs a pod asks for: per container the larger of its limit and its request.
fn pod_gpus(pod: &Value) -> u32 {
    pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let r = &c["resources"];
                    gpus(&r["limits"]["nvidia.com/gpu"]).max(gpus(&r["requests"]["nvidia.com/gpu"]))
                })
                .sum()
        })
        .unwrap_or(0)
}

fn count_phase(c: &mut PhaseCounts, phase: &str) {
    match phase {
        "Pending" => c.pending += 1,
        "Running" => c.running += 1,
        "Succeeded" => c.succeeded += 1,
        "Failed" => c.failed += 1,
        _ => c.unknown += 1,
    }
}

fn readiness_of(node: &Value) -> NodeReadiness {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match ready.and_then(|c| c["status"].as_str()) {
        Some("True") => NodeReadiness::Ready,
        Some("False") => NodeReadiness::NotReady,
        _ => NodeReadiness::Unknown,
    }
}

/// The capacity type the clouds' node labels say: karpenter.sh/capacity-type,
/// eks.amazonaws.com/capacityType (any case), cloud.google.com/gke-spot or
/// cloud.google.com/reservation-name, kubernetes.azure.com/scalesetpriority.
fn capacity_type_of(node: &Value) -> CapacityType {
    let labels = node["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let label = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_ascii_lowercase)
    };
    let is = |key: &str, value: &str| label(key).as_deref() == Some(value);
    if is("karpenter.sh/capacity-type", "spot")
        || is("eks.amazonaws.com/capacityType", "spot")
        || is("cloud.google.com/gke-spot", "true")
        || is("kubernetes.azure.com/scalesetpriority", "spot")
    {
        CapacityType::Spot
    } else if is("karpenter.sh/capacity-type", "reserved")
        || label("cloud.google.com/reservation-name").is_some_and(|v| !v.is_empty())
    {
        CapacityType::Reserved
    } else {
        CapacityType::OnDemand
    }
}

/// What a snapshot shows of one node.
#[derive(Debug, Clone, PartialEq)]
struct NodeView {
    readiness: NodeReadiness,
    cordoned: bool,
    capacity_type: CapacityType,
    gpu_capacity: u32,
    gpu_allocatable: u32,
    gpu_requested: u32,
    pods: PhaseCounts,
}

/// One cluster as the snapshot shows it, or as its API lists it, in the same terms.
#[derive(Debug, Clone, PartialEq)]
struct Picture {
    totals: ClusterTotals,
    nodes: BTreeMap<String, NodeView>,
    /// `namespace/name` of every Pending pod.
    pending: BTreeSet<String>,
    /// `namespace/job` → member pod names.
    gangs: BTreeMap<String, BTreeSet<String>>,
}

impl Picture {
    fn of_snapshot(c: &ClusterSnapshot) -> Picture {
        Picture {
            totals: c.totals.clone(),
            nodes: c
                .nodes
                .iter()
                .map(|n| {
                    let view = NodeView {
                        readiness: n.readiness,
                        cordoned: n.cordoned,
                        capacity_type: n.capacity_type,
                        gpu_capacity: n.gpu_capacity,
                        gpu_allocatable: n.gpu_allocatable,
                        gpu_requested: n.gpu_requested,
                        pods: n.pods,
                    };
                    (n.name.clone(), view)
                })
                .collect(),
            pending: c
                .pending
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
            gangs: c
                .gang_jobs
                .iter()
                .map(|g| {
                    let members = g.members.iter().map(|m| m.pod.clone()).collect();
                    (format!("{}/{}", g.namespace, g.name), members)
                })
                .collect(),
        }
    }

    fn of_api(nodes: &[Value], pods: &[Value]) -> Picture {
        let mut totals = ClusterTotals::default();
        let mut per_node: BTreeMap<String, NodeView> = BTreeMap::new();
        for n in nodes {
            let view = NodeView {
                readiness: readiness_of(n),
                cordoned: n["spec"]["unschedulable"] == true,
                capacity_type: capacity_type_of(n),
                gpu_capacity: gpus(&n["status"]["capacity"]["nvidia.com/gpu"]),
                gpu_allocatable: gpus(&n["status"]["allocatable"]["nvidia.com/gpu"]),
                gpu_requested: 0,
                pods: PhaseCounts::default(),
            };
            per_node.insert(name_of(n).to_string(), view);
        }
        let mut pending = BTreeSet::new();
        let mut gangs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in pods {
            let phase = p["status"]["phase"].as_str().unwrap_or("Unknown");
            count_phase(&mut totals.pods, phase);
            let key = format!("{}/{}", namespace_of(p), name_of(p));
            if phase == "Pending" {
                pending.insert(key);
            }
            if let Some(job) = p["metadata"]["labels"]["training.kubeflow.org/job-name"].as_str() {
                gangs
                    .entry(format!("{}/{job}", namespace_of(p)))
                    .or_default()
                    .insert(name_of(p).to_string());
            }
            let node = p["spec"]["nodeName"].as_str().unwrap_or("");
            if let Some(view) = per_node.get_mut(node) {
                count_phase(&mut view.pods, phase);
                if matches!(phase, "Pending" | "Running" | "Unknown") {
                    view.gpu_requested += pod_gpus(p);
                }
            }
        }
        for n in per_node.values() {
            totals.nodes += 1;
            totals.nodes_ready += u32::from(n.readiness == NodeReadiness::Ready);
            totals.nodes_cordoned += u32::from(n.cordoned);
            totals.nodes_spot += u32::from(n.capacity_type == CapacityType::Spot);
            totals.gpus_allocatable += n.gpu_allocatable;
            totals.gpus_requested += n.gpu_requested;
        }
        Picture {
            totals,
            nodes: per_node,
            pending,
            gangs,
        }
    }

    /// Where this picture (the snapshot's) differs from `want` (the API's), one line each.
    fn differences(&self, want: &Picture) -> Vec<String> {
        let mut out = Vec::new();
        if self.totals != want.totals {
            out.push(format!(
                "totals: snapshot {:?}, API {:?}",
                self.totals, want.totals
            ));
        }
        let names: BTreeSet<&String> = self.nodes.keys().chain(want.nodes.keys()).collect();
        for name in names {
            let (got, exp) = (self.nodes.get(name), want.nodes.get(name));
            if got != exp {
                out.push(format!("node {name}: snapshot {got:?}, API {exp:?}"));
            }
        }
        if self.pending != want.pending {
            out.push(format!(
                "pending: snapshot {:?}, API {:?}",
                self.pending, want.pending
            ));
        }
        if self.gangs != want.gangs {
            out.push(format!(
                "gangs: snapshot {:?}, API {:?}",
                self.gangs, want.gangs
            ));
        }
        out
    }
}

/// The sim's request counters for one cluster.
async fn counters(sim: &Sim, cluster: &str) -> Value {
    let v: Value = reqwest::get(format!("{}/counters", sim.control()))
        .await
        .expect("GET /counters")
        .json()
        .await
        .expect("counters are JSON");
    v["clusters"][cluster].clone()
}

async fn watches_started(sim: &Sim, cluster: &str) -> u64 {
    counters(sim, cluster).await["watches_started"]
        .as_u64()
        .expect("watches_started")
}

/// `POST` (inject) or `DELETE` (clear) a scenario on the sim's control address.
async fn scenario(sim: &Sim, method: reqwest::Method, name_and_query: &str) {
    let resp = reqwest::Client::new()
        .request(
            method.clone(),
            format!("{}/scenarios/{name_and_query}", sim.control()),
        )
        .send()
        .await
        .expect("the control address answers");
    let code = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        code.is_success(),
        "{method} /scenarios/{name_and_query}: {code} {body}"
    );
}

// ---- 1. several clusters sync ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_of_a_three_cluster_fleet_syncs_to_exactly_what_its_api_lists() {
    let sim = start_sim(&["--clusters", "3", "--nodes", "36", "--seed", "42"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet.until_synced().await;
    let names: Vec<&str> = snap.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["sim-a", "sim-b", "sim-c"]);
    for (i, name) in names.iter().enumerate() {
        let api = KubeApi::of(&sim, i);
        let snap = fleet.until_agrees_with(name, &api).await;
        let c = cluster(&snap, name);
        assert_eq!(c.server, sim.kube_url(i), "{name} names its server");
        assert_eq!(c.totals.nodes as usize, api.nodes().await.len(), "{name}");
        assert!(c.totals.gpus_allocatable > 0, "{name} has GPU nodes");
        assert!(c.totals.pods.running > 0, "{name} runs pods");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gang_job_the_crash_loop_and_the_unschedulable_gpu_pod_are_reported() {
    let sim = start_sim(&["--clusters", "3", "--nodes", "12", "--seed", "42"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;
    let mut gangs_seen = 0;
    for (i, name) in ["sim-a", "sim-b", "sim-c"].iter().enumerate() {
        let api = KubeApi::of(&sim, i);
        let snap = fleet.until_agrees_with(name, &api).await;
        let c = cluster(&snap, name);
        let pods = api.pods().await;

        let gang: BTreeSet<&str> = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["training.kubeflow.org/job-name"] == "llm-pretrain")
            .map(name_of)
            .collect();
        if !gang.is_empty() {
            gangs_seen += 1;
            let job = c
                .gang_jobs
                .iter()
                .find(|g| g.namespace == "training" && g.name == "llm-pretrain")
                .unwrap_or_else(|| panic!("{name}: no gang job training/llm-pretrain"));
            let members: BTreeSet<&str> = job.members.iter().map(|m| m.pod.as_str()).collect();
            assert_eq!(members, gang, "{name}: the gang's members");
            for m in &job.members {
                assert!(m.node.is_some(), "{name}: {} is placed", m.pod);
                assert!(m.gpus > 0, "{name}: {} asks for GPUs", m.pod);
            }
        }

        let crashing = pods
            .iter()
            .find(|p| name_of(p).starts_with("tokenizer-worker-"))
            .unwrap_or_else(|| panic!("{name}: the API lists no tokenizer-worker pod"));
        let restarts: u64 = crashing["status"]["containerStatuses"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_u64()).sum())
            .unwrap_or(0);
        let reported = c
            .crash_looping
            .iter()
            .find(|p| p.name == name_of(crashing))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: {} is not reported crash-looping: {:?}",
                    name_of(crashing),
                    c.crash_looping
                )
            });
        assert_eq!(reported.namespace, "batch");
        assert_eq!(reported.reason, "CrashLoopBackOff");
        assert!(reported.restarts > 0, "{name}: restarts are counted");
        assert!(
            u64::from(reported.restarts) <= restarts,
            "{name}: the snapshot's restarts ({}) are at most the API's latest ({restarts})",
            reported.restarts
        );

        let stuck = c
            .pending
            .iter()
            .find(|p| p.namespace == "research" && p.name.starts_with("llm-finetune-xl-"))
            .unwrap_or_else(|| panic!("{name}: llm-finetune-xl is not pending: {:?}", c.pending));
        assert_eq!(stuck.reason, "Unschedulable", "{name}");
        assert!(
            stuck.message.contains("Insufficient nvidia.com/gpu"),
            "{name}: {}",
            stuck.message
        );
        assert!(stuck.gpus > 0, "{name}: the pending pod asks for GPUs");
    }
    assert!(gangs_seen > 0, "some cluster runs the gang job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_types_follow_the_aws_gke_and_aks_node_label_conventions() {
    // 20 nodes a cluster: every convention's spot, reserved and on-demand nodes appear.
    let sim = start_sim(&["--clusters", "3", "--nodes", "60", "--seed", "42"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet.until_synced().await;
    let conventions = [
        (
            "sim-a",
            &[
                ("karpenter.sh/capacity-type", "spot", CapacityType::Spot),
                (
                    "karpenter.sh/capacity-type",
                    "reserved",
                    CapacityType::Reserved,
                ),
                (
                    "karpenter.sh/capacity-type",
                    "on-demand",
                    CapacityType::OnDemand,
                ),
                ("eks.amazonaws.com/capacityType", "SPOT", CapacityType::Spot),
                (
                    "eks.amazonaws.com/capacityType",
                    "ON_DEMAND",
                    CapacityType::OnDemand,
                ),
            ][..],
        ),
        (
            "sim-b",
            &[
                ("cloud.google.com/gke-spot", "true", CapacityType::Spot),
                (
                    "cloud.google.com/reservation-name",
                    "gpu-reservation-1",
                    CapacityType::Reserved,
                ),
            ][..],
        ),
        (
            "sim-c",
            &[(
                "kubernetes.azure.com/scalesetpriority",
                "spot",
                CapacityType::Spot,
            )][..],
        ),
    ];
    for (i, (name, labelled)) in conventions.iter().enumerate() {
        let c = cluster(&snap, name);
        let api_nodes = KubeApi::of(&sim, i).nodes().await;
        assert_eq!(c.nodes.len(), api_nodes.len(), "{name}");
        for (key, value, want) in labelled.iter() {
            let carrying: Vec<&str> = api_nodes
                .iter()
                .filter(|n| n["metadata"]["labels"][key] == *value)
                .map(name_of)
                .collect();
            assert!(
                !carrying.is_empty(),
                "{name}: the sim labels some node {key}={value}"
            );
            for node in carrying {
                let model = c
                    .nodes
                    .iter()
                    .find(|n| n.name == node)
                    .unwrap_or_else(|| panic!("{name}: node {node} missing"));
                assert_eq!(
                    model.capacity_type, *want,
                    "{name}: {node} labelled {key}={value}"
                );
            }
        }
        for n in &api_nodes {
            let model = c.nodes.iter().find(|m| m.name == name_of(n));
            assert_eq!(
                model.map(|m| m.capacity_type),
                Some(capacity_type_of(n)),
                "{name}: {} with labels {}",
                name_of(n),
                n["metadata"]["labels"]
            );
        }
    }
}

// ---- 2. changes made with kubectl --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordon_and_an_uncordon_made_with_kubectl_show_up_in_later_snapshots() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8"]);
    let kubectl = Kubectl::new("1.33", &sim);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let before = fleet.until_synced().await;
    let c = cluster(&before, "sim-a");
    let node = c
        .nodes
        .iter()
        .find(|n| !n.cordoned)
        .map(|n| n.name.clone())
        .expect("a schedulable node");
    let cordoned_before = c.totals.nodes_cordoned;

    blocking(|| kubectl.ok(&["cordon", &node]));
    let snap = fleet
        .until("the cordon to show up", |s| {
            s.cluster("sim-a")
                .is_some_and(|c| c.nodes.iter().any(|n| n.name == node && n.cordoned))
        })
        .await;
    assert_eq!(
        cluster(&snap, "sim-a").totals.nodes_cordoned,
        cordoned_before + 1
    );

    blocking(|| kubectl.ok(&["uncordon", &node]));
    let snap = fleet
        .until("the uncordon to show up", |s| {
            s.cluster("sim-a")
                .is_some_and(|c| c.nodes.iter().any(|n| n.name == node && !n.cordoned))
        })
        .await;
    assert_eq!(
        cluster(&snap, "sim-a").totals.nodes_cordoned,
        cordoned_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_with_kubectl_leaves_the_snapshot_and_its_replacement_restores_the_totals() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8"]);
    let kubectl = Kubectl::new("1.33", &sim);
    let api = KubeApi::of(&sim, 0);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;
    let snap = fleet.until_agrees_with("sim-a", &api).await;
    let pods_before = cluster(&snap, "sim-a").totals.pods.total();
    let (ns, victim) = api.pod_named("tokenizer-worker-").await;
    assert!(
        cluster(&snap, "sim-a")
            .crash_looping
            .iter()
            .any(|p| p.name == victim),
        "{victim} is reported before its deletion"
    );

    blocking(|| kubectl.ok(&["delete", "pod", "-n", &ns, &victim]));
    fleet
        .until("the deleted pod to leave the crash-looping list", |s| {
            s.cluster("sim-a")
                .is_some_and(|c| !c.crash_looping.iter().any(|p| p.name == victim))
        })
        .await;
    let pods = api.pods().await;
    assert!(
        pods.iter()
            .any(|p| name_of(p).starts_with("tokenizer-worker-") && name_of(p) != victim),
        "the ReplicaSet made a replacement"
    );
    let snap = fleet.until_agrees_with("sim-a", &api).await;
    assert_eq!(
        cluster(&snap, "sim-a").totals.pods.total(),
        pods_before,
        "the replacement brings the pod count back"
    );
}

// ---- 3. a node that stops reporting -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_kubelet_stops_reporting_becomes_unknown() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8"]);
    let api = KubeApi::of(&sim, 0);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let before = fleet.until_synced().await;
    let c = cluster(&before, "sim-a");
    let node = c.nodes[0].name.clone();
    assert_eq!(c.nodes[0].readiness, NodeReadiness::Ready);
    let ready_before = c.totals.nodes_ready;

    scenario(
        &sim,
        reqwest::Method::POST,
        &format!("node-notready?cluster=sim-a&node={node}"),
    )
    .await;
    let snap = fleet
        .until("the node to become Unknown", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                c.nodes
                    .iter()
                    .any(|n| n.name == node && n.readiness == NodeReadiness::Unknown)
            })
        })
        .await;
    let c = cluster(&snap, "sim-a");
    assert_eq!(c.totals.nodes_ready, ready_before - 1);
    let model = c.nodes.iter().find(|n| n.name == node).expect("the node");
    let api_node = api
        .nodes()
        .await
        .into_iter()
        .find(|n| name_of(n) == node)
        .expect("the node in the API");
    let since = api_node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    assert_eq!(
        model.readiness_since, since,
        "Unknown since the Ready condition's last transition"
    );
    assert!(
        model
            .taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable"),
        "the unreachable taints are shown: {:?}",
        model.taints
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warning_events_of_an_xid_storm_appear_against_their_node() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;
    let injected: Value = reqwest::Client::new()
        .post(format!(
            "{}/scenarios/xid-storm?cluster=sim-a",
            sim.control()
        ))
        .send()
        .await
        .expect("inject xid-storm")
        .json()
        .await
        .expect("the scenario's record");
    let node = injected["detail"]["node"]
        .as_str()
        .expect("the stormed node")
        .to_string();
    let object = format!("node/{node}");
    let snap = fleet
        .until("the XID warnings", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                c.warnings
                    .iter()
                    .any(|w| w.reason == "GPUXidError" && w.object == object)
            })
        })
        .await;
    let xid = cluster(&snap, "sim-a")
        .warnings
        .iter()
        .find(|w| w.reason == "GPUXidError")
        .expect("an XID warning");
    assert!(xid.message.contains("Xid"), "{}", xid.message);
    assert!(xid.last_seen.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_node_reclaimed_at_its_deadline_leaves_the_snapshot() {
    let sim = start_sim(&["--clusters", "3", "--nodes", "60", "--seed", "42"]);
    let api = KubeApi::of(&sim, 0);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &["sim-a"]);
    fleet.until_synced().await;
    let injected: Value = reqwest::Client::new()
        .post(format!(
            "{}/scenarios/spot-interruption?cluster=sim-a&deadline_seconds=2",
            sim.control()
        ))
        .send()
        .await
        .expect("inject spot-interruption")
        .json()
        .await
        .expect("the scenario's record");
    let node = injected["detail"]["node"]
        .as_str()
        .unwrap_or_else(|| panic!("a spot node was interrupted: {injected}"))
        .to_string();
    fleet
        .until("the node to leave the snapshot", |s| {
            s.cluster("sim-a")
                .is_some_and(|c| c.totals.nodes > 0 && !c.nodes.iter().any(|n| n.name == node))
        })
        .await;
    fleet.until_agrees_with("sim-a", &api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_goes_down_after_syncing_is_reconnecting_and_keeps_its_picture() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8"]);
    let api = KubeApi::of(&sim, 0);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;
    let before = fleet.until_agrees_with("sim-a", &api).await;
    let picture = Picture::of_snapshot(cluster(&before, "sim-a"));

    blocking(|| sim.terminate());
    let snap = fleet
        .until("every resource of sim-a to be reconnecting", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                RESOURCES
                    .iter()
                    .all(|r| matches!(state_of(c, r), Some(SyncState::Reconnecting { .. })))
            })
        })
        .await;
    let c = cluster(&snap, "sim-a");
    assert!(!c.synced());
    for s in &c.sync {
        // The first failure may be the old connection reset, later ones a refused connect.
        let SyncState::Reconnecting { last_error, .. } = &s.state else {
            unreachable!("waited for it")
        };
        assert!(
            last_error.to_lowercase().contains("connection"),
            "{}: says why: {last_error}",
            s.resource
        );
    }
    assert_eq!(
        Picture::of_snapshot(c),
        picture,
        "the last picture is kept while reconnecting"
    );
}

// ---- 4. and 5. a flaky API server, 410 Gone -----------------------------------------------------

/// Waits until the sim has started at least `n` watches for `cluster`.
async fn until_watches_started(sim: &Sim, cluster: &str, n: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let started = watches_started(sim, cluster).await;
        if started >= n {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "{cluster}: only {started} watches started, waiting for {n}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_broken_by_a_flaky_api_server_recover_to_exactly_the_apis_picture() {
    // api-flaky from the start on sim-a: every watch it serves ends with a 410 after 5–15 s,
    // 15% of other requests fail with 500.
    let sim = start_sim(&[
        "--clusters",
        "2",
        "--nodes",
        "16",
        "--scenario",
        "api-flaky",
    ]);
    let flaky = KubeApi::of(&sim, 0);
    let steady = KubeApi::of(&sim, 1);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;

    let node = name_of(&flaky.nodes().await[0]).to_string();
    flaky.cordon(&node).await;
    // One watch per resource for the first sync; more means broken ones were re-established.
    until_watches_started(&sim, "sim-a", RESOURCES.len() as u64 + 2).await;
    scenario(&sim, reqwest::Method::DELETE, "api-flaky").await;

    let snap = fleet.until_agrees_with("sim-a", &flaky).await;
    let c = cluster(&snap, "sim-a");
    assert!(
        c.nodes.iter().any(|n| n.name == node && n.cordoned),
        "the cordon made during the fault is in the final snapshot"
    );
    fleet
        .until("sim-a to be synced again", |s| {
            s.cluster("sim-a").is_some_and(fully_synced)
        })
        .await;
    fleet.until_agrees_with("sim-b", &steady).await;
}

/// What a watcher of every published snapshot saw of one cluster after its first sync.
#[derive(Debug, Default)]
struct Seen {
    snapshots: u64,
    node_counts: BTreeSet<usize>,
    fewest_pods: Option<u32>,
    states: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ended_by_410_relists_without_losing_or_doubling_objects() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "8", "--scenario", "api-flaky"]);
    let api = KubeApi::of(&sim, 0);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    fleet.until_synced().await;
    let snap = fleet.until_agrees_with("sim-a", &api).await;
    let nodes = cluster(&snap, "sim-a").nodes.len();
    let pods = cluster(&snap, "sim-a").totals.pods.total();

    // Watch every snapshot published while the sim ends watches with 410.
    let (stop, stopped) = oneshot::channel::<()>();
    let mut rx = fleet.snapshots.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut stopped = stopped;
        loop {
            {
                let snap = rx.borrow_and_update().clone();
                let c = cluster(&snap, "sim-a");
                seen.snapshots += 1;
                seen.node_counts.insert(c.nodes.len());
                let total = c.totals.pods.total();
                seen.fewest_pods = Some(seen.fewest_pods.map_or(total, |f| f.min(total)));
                for s in &c.sync {
                    seen.states
                        .insert(s.state.describe().split(' ').next().unwrap_or("").into());
                }
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                _ = &mut stopped => break,
            }
        }
        seen
    });

    // Changes while watches break: two pods go, their owners replace them.
    let started = watches_started(&sim, "sim-a").await;
    let (ns, crashing) = api.pod_named("tokenizer-worker-").await;
    api.delete_pod(&ns, &crashing).await;
    let (ns, stuck) = api.pod_named("llm-finetune-xl-").await;
    api.delete_pod(&ns, &stuck).await;
    until_watches_started(&sim, "sim-a", started + 2).await;
    scenario(&sim, reqwest::Method::DELETE, "api-flaky").await;
    let snap = fleet.until_agrees_with("sim-a", &api).await;
    let _ = stop.send(());
    let seen = watcher.await.expect("the snapshot watcher");

    let c = cluster(&snap, "sim-a");
    assert!(
        !c.pending.iter().any(|p| p.name == stuck),
        "the deleted pending pod is gone"
    );
    assert!(
        !c.crash_looping.iter().any(|p| p.name == crashing),
        "the deleted crash-looping pod is gone"
    );
    assert_eq!(
        c.totals.pods.total(),
        pods,
        "no pod lost, none counted twice"
    );
    // Every watch the sim served ended with its 410 (none ran into its timeout here), so a
    // source that re-lists after a 410 sent at least one list before each watch.
    let counted = counters(&sim, "sim-a").await;
    let watches = counted["watches_started"]
        .as_u64()
        .expect("watches_started");
    let gets = counted["by_verb"]["GET"].as_u64().expect("GETs");
    let lists = gets - watches - api.gets.load(Ordering::Relaxed);
    assert!(
        lists >= watches,
        "{lists} lists for {watches} watches: a watch resumed after a 410 without a re-list"
    );
    assert_eq!(
        seen.node_counts,
        BTreeSet::from([nodes]),
        "every snapshot during the re-lists kept every node ({seen:?})"
    );
    assert!(
        seen.fewest_pods.is_some_and(|f| f + 2 >= pods),
        "no snapshot during the re-lists lost more than the two deleted pods ({seen:?})"
    );
}

// ---- 6. a forbidden resource ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_resource_is_reported_while_the_rest_of_the_fleet_syncs() {
    // rbac-deny from the start: sim-a answers 403 for poddisruptionbudgets.
    let sim = start_sim(&[
        "--clusters",
        "2",
        "--nodes",
        "16",
        "--scenario",
        "rbac-deny",
    ]);
    let denied = KubeApi::of(&sim, 0);
    let other = KubeApi::of(&sim, 1);
    other
        .send(
            reqwest::Method::POST,
            "/apis/policy/v1/namespaces/serving/poddisruptionbudgets",
            Some(&json!({
                "metadata": {"name": "embedder-predictor"},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "embedder-predictor"}}},
            })),
        )
        .await;
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet
        .until("sim-a's PDBs forbidden, the rest synced", |s| {
            let (Some(a), Some(b)) = (s.cluster("sim-a"), s.cluster("sim-b")) else {
                return false;
            };
            matches!(
                state_of(a, "poddisruptionbudgets"),
                Some(SyncState::Forbidden { .. })
            ) && RESOURCES
                .iter()
                .filter(|r| **r != "poddisruptionbudgets")
                .all(|r| state_of(a, r) == Some(&SyncState::Synced))
                && fully_synced(b)
        })
        .await;
    let a = cluster(&snap, "sim-a");
    let Some(SyncState::Forbidden { message }) = state_of(a, "poddisruptionbudgets") else {
        unreachable!("waited for it")
    };
    assert!(
        message.contains("forbidden") && message.contains("poddisruptionbudgets"),
        "the API's reason is kept: {message}"
    );
    assert!(a.synced(), "a forbidden resource counts as settled");
    assert!(a.pdbs.is_empty());
    fleet.until_agrees_with("sim-a", &denied).await;

    let snap = fleet.until_agrees_with("sim-b", &other).await;
    let b = cluster(&snap, "sim-b");
    let want: BTreeSet<String> = other
        .list("/apis/policy/v1/poddisruptionbudgets")
        .await
        .iter()
        .map(|p| format!("{}/{}", namespace_of(p), name_of(p)))
        .collect();
    let got: BTreeSet<String> = b
        .pdbs
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert!(want.contains("serving/embedder-predictor"));
    assert_eq!(got, want, "sim-b's PDBs");
}

// ---- 7. an unreachable context ------------------------------------------------------------------

/// A kubeconfig with the sim's contexts and one more, `dead`, whose server refuses every
/// connection.
fn kubeconfig_with_a_dead_context(sim: &Sim) -> PathBuf {
    let clusters = sim.desc["clusters"].as_array().expect("the sim's clusters");
    let mut named: Vec<(String, String)> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c["context"].as_str().expect("context").to_string();
            (name, sim.kube_url(i))
        })
        .collect();
    named.push(("dead".into(), "http://127.0.0.1:1".into()));
    let mut yaml = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (name, url) in &named {
        yaml.push_str(&format!("- name: {name}\n  cluster:\n    server: {url}\n"));
    }
    yaml.push_str("users:\n- name: sim-admin\n  user:\n    token: fleetdeck-sim\ncontexts:\n");
    for (name, _) in &named {
        yaml.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: sim-admin\n"
        ));
    }
    yaml.push_str("current-context: sim-a\n");
    let path = sim.dir.path().join("kubeconfig-with-dead");
    std::fs::write(&path, yaml).expect("write the kubeconfig");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_context_is_reported_while_the_others_sync() {
    let sim = start_sim(&["--clusters", "2", "--nodes", "8"]);
    let kubeconfig = kubeconfig_with_a_dead_context(&sim);
    let mut fleet = Fleet::watch(&kubeconfig, &[]);
    let snap = fleet
        .until("the sim synced and dead unreachable", |s| {
            let dead_unreachable = s.cluster("dead").is_some_and(|d| {
                RESOURCES
                    .iter()
                    .all(|r| matches!(state_of(d, r), Some(SyncState::Unreachable { .. })))
            });
            dead_unreachable
                && ["sim-a", "sim-b"]
                    .iter()
                    .all(|n| s.cluster(n).is_some_and(fully_synced))
        })
        .await;
    let dead = cluster(&snap, "dead");
    assert!(!dead.synced());
    assert_eq!(dead.server, "http://127.0.0.1:1");
    assert!(dead.nodes.is_empty());
    for s in &dead.sync {
        let SyncState::Unreachable { last_error, .. } = &s.state else {
            unreachable!("waited for it")
        };
        assert!(
            last_error.to_lowercase().contains("refused"),
            "{}: says why: {last_error}",
            s.resource
        );
    }
    fleet
        .until_agrees_with("sim-a", &KubeApi::of(&sim, 0))
        .await;
    fleet
        .until_agrees_with("sim-b", &KubeApi::of(&sim, 1))
        .await;
}

// ---- the `snapshot` binary ----------------------------------------------------------------------

/// What a finished `fleetdeck snapshot` left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `fleetdeck args…` with an empty config home and no KUBECONFIG, as on a fresh machine;
/// kills it if it still runs after a minute.
fn fleetdeck(args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fleetdeck");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for fleetdeck") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fleetdeck {args:?} was still running after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn json_cluster<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no cluster {name} in {snap}"))
}

fn json_state<'a>(cluster: &'a Value, resource: &str) -> &'a Value {
    cluster["sync"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["resource"] == resource))
        .map(|s| &s["state"])
        .unwrap_or_else(|| panic!("no sync entry for {resource} in {}", cluster["name"]))
}

fn json_fully_synced(cluster: &Value) -> bool {
    RESOURCES.iter().all(|r| json_state(cluster, r) == "synced")
}

#[test]
fn snapshot_json_carries_the_documented_fields() {
    let sim = Sim::start(&["--clusters", "2", "--nodes", "8"]);
    let kc = sim.kubeconfig.to_str().expect("utf-8 path");
    let run = fleetdeck(&["snapshot", "--kubeconfig", kc, "--output", "json"]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let snap = run.json();
    assert!(snap["version"].is_u64(), "version: {}", snap["version"]);
    let clusters = snap["clusters"].as_array().expect("clusters[]");
    let names: Vec<&str> = clusters.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["sim-a", "sim-b"]);
    let http = common::http();
    for (i, c) in clusters.iter().enumerate() {
        let sync = c["sync"].as_array().expect("sync[]");
        let resources: BTreeSet<&str> =
            sync.iter().filter_map(|s| s["resource"].as_str()).collect();
        assert_eq!(resources, BTreeSet::from(RESOURCES));
        for s in sync {
            assert_eq!(s["state"], "synced", "{s}");
        }
        let totals = &c["totals"];
        for key in [
            "nodes",
            "nodes_ready",
            "nodes_cordoned",
            "gpus_allocatable",
            "gpus_requested",
        ] {
            assert!(totals[key].is_u64(), "totals.{key}: {totals}");
        }
        for key in ["pending", "running", "succeeded", "failed", "unknown"] {
            assert!(totals["pods"][key].is_u64(), "totals.pods.{key}: {totals}");
        }
        let api: Value = http
            .get(format!("{}/api/v1/nodes", sim.kube_url(i)))
            .send()
            .and_then(|r| r.json())
            .expect("list nodes");
        let want: BTreeSet<&str> = api["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(name_of)
            .collect();
        let nodes = c["nodes"].as_array().expect("nodes[]");
        let got: BTreeSet<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
        assert_eq!(got, want, "{}: the nodes", c["name"]);
        for n in nodes {
            assert!(
                ["Ready", "NotReady", "Unknown"].contains(&n["readiness"].as_str().unwrap_or("")),
                "readiness: {n}"
            );
            assert!(n["cordoned"].is_boolean(), "cordoned: {n}");
            assert!(
                ["on-demand", "spot", "reserved"]
                    .contains(&n["capacity_type"].as_str().unwrap_or("")),
                "capacity_type: {n}"
            );
            assert!(n["gpu_capacity"].is_u64(), "gpu_capacity: {n}");
            assert!(n["gpu_requested"].is_u64(), "gpu_requested: {n}");
            assert!(n["pods"]["running"].is_u64(), "pods: {n}");
        }
        assert_eq!(
            totals["nodes"].as_u64(),
            Some(nodes.len() as u64),
            "totals.nodes counts nodes[]"
        );
    }
}

#[test]
fn snapshot_exits_0_when_a_resource_is_forbidden_and_shows_it_forbidden() {
    let sim = Sim::start(&["--clusters", "2", "--nodes", "8", "--scenario", "rbac-deny"]);
    let kc = sim.kubeconfig.to_str().expect("utf-8 path");
    let run = fleetdeck(&["snapshot", "--kubeconfig", kc, "--output", "json"]);
    assert_eq!(
        run.code,
        Some(0),
        "forbidden counts as settled; stderr: {}",
        run.stderr
    );
    let snap = run.json();
    let a = json_cluster(&snap, "sim-a");
    assert_eq!(json_state(a, "poddisruptionbudgets"), "forbidden");
    let entry = a["sync"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["resource"] == "poddisruptionbudgets"))
        .expect("the PDB entry");
    assert!(
        entry["message"]
            .as_str()
            .is_some_and(|m| m.contains("forbidden")),
        "the reason is in the JSON: {entry}"
    );
    for r in RESOURCES.iter().filter(|r| **r != "poddisruptionbudgets") {
        assert_eq!(json_state(a, r), "synced", "sim-a {r}");
    }
    assert!(json_fully_synced(json_cluster(&snap, "sim-b")));
}

#[test]
fn snapshot_exits_3_naming_an_unreachable_context_while_printing_the_others_synced() {
    let sim = Sim::start(&["--clusters", "2", "--nodes", "8"]);
    let kc = kubeconfig_with_a_dead_context(&sim);
    let kc = kc.to_str().expect("utf-8 path");
    let run = fleetdeck(&[
        "snapshot",
        "--kubeconfig",
        kc,
        "--wait-synced",
        "5s",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, Some(3), "stderr: {}", run.stderr);
    let snap = run.json();
    for name in ["sim-a", "sim-b"] {
        assert!(
            json_fully_synced(json_cluster(&snap, name)),
            "{name}: {}",
            json_cluster(&snap, name)["sync"]
        );
    }
    let dead = json_cluster(&snap, "dead");
    assert!(dead["nodes"].as_array().is_some_and(|n| n.is_empty()));
    // Blind is not calm: the unreachable context is itself a critical signal, the others none.
    let down: Vec<&serde_json::Value> = snap["signals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == "source.down")
        .collect();
    assert_eq!(down.len(), 1, "{}", snap["signals"]);
    assert_eq!(down[0]["subject"]["cluster"], "dead");
    assert_eq!(down[0]["severity"], "critical");
    assert_eq!(down[0]["evidence"]["state"], "unreachable");
    assert!(run.stderr.contains("dead"), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("unreachable") && run.stderr.to_lowercase().contains("refused"),
        "stderr says why: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("sim-a") && !run.stderr.contains("sim-b"),
        "stderr names only the cluster that failed: {}",
        run.stderr
    );
}

#[test]
fn snapshot_of_one_named_context_leaves_an_unreachable_one_out() {
    let sim = Sim::start(&["--clusters", "2", "--nodes", "8"]);
    let kc = kubeconfig_with_a_dead_context(&sim);
    let kc = kc.to_str().expect("utf-8 path");
    let run = fleetdeck(&[
        "snapshot",
        "--kubeconfig",
        kc,
        "--context",
        "sim-a",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let snap = run.json();
    let names: Vec<&str> = snap["clusters"]
        .as_array()
        .expect("clusters[]")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["sim-a"]);
    assert!(json_fully_synced(json_cluster(&snap, "sim-a")));
}

#[test]
fn snapshot_refuses_an_unknown_context_and_names_the_known_ones() {
    let sim = Sim::start(&["--clusters", "2", "--nodes", "8"]);
    let kc = kubeconfig_with_a_dead_context(&sim);
    let kc = kc.to_str().expect("utf-8 path");
    let run = fleetdeck(&["snapshot", "--kubeconfig", kc, "--context", "nope"]);
    assert_ne!(run.code, Some(0));
    assert_ne!(run.code, Some(3), "not a sync failure: nothing was tried");
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    for name in ["nope", "sim-a", "sim-b", "dead"] {
        assert!(run.stderr.contains(name), "names {name}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_context_stays_reported_unreachable_between_retries() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "4"]);
    let kubeconfig = kubeconfig_with_a_dead_context(&sim);
    let mut fleet = Fleet::watch(&kubeconfig, &["dead"]);
    let all_unreachable = |s: &Snapshot| {
        s.cluster("dead").is_some_and(|d| {
            RESOURCES
                .iter()
                .all(|r| matches!(state_of(d, r), Some(SyncState::Unreachable { .. })))
        })
    };
    fleet.until("dead to be unreachable", all_unreachable).await;
    // Every snapshot published over the next few retries (backoff starts at 125–250 ms).
    let mut rx = fleet.snapshots.clone();
    let window = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(window);
    let mut flickers = Vec::new();
    loop {
        tokio::select! {
            changed = rx.changed() => changed.expect("the state task is running"),
            _ = &mut window => break,
        }
        let snap = rx.borrow_and_update().clone();
        if !all_unreachable(&snap) {
            flickers.push(sync_summary(&snap));
        }
    }
    assert!(
        flickers.is_empty(),
        "{} snapshots showed the dead cluster as something else than unreachable, e.g. {}",
        flickers.len(),
        flickers.first().map_or("", String::as_str)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_ends_every_watch_with_a_410_while_api_flaky_is_on() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "4", "--scenario", "api-flaky"]);
    let api = KubeApi::of(&sim, 0);
    let list = api.send(reqwest::Method::GET, "/api/v1/nodes", None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("the list's resourceVersion")
        .to_string();
    // No client timeout: a watch is a long response.
    let http = reqwest::Client::new();
    let mut watches = Vec::new();
    for _ in 0..8 {
        let url = format!(
            "{}/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion={rv}",
            api.url
        );
        let mut resp = http.get(url).send().await.expect("a watch");
        assert_eq!(resp.status(), 200);
        watches.push(tokio::spawn(async move {
            let mut body = Vec::new();
            let read = async {
                while let Ok(Some(chunk)) = resp.chunk().await {
                    body.extend_from_slice(&chunk);
                }
            };
            let ended = tokio::time::timeout(PATIENCE, read).await.is_ok();
            let last: Value = String::from_utf8_lossy(&body)
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or(Value::Null);
            (ended, last)
        }));
    }
    for (i, w) in watches.into_iter().enumerate() {
        let (ended, last) = w.await.expect("the watch reader");
        assert!(ended, "watch {i} was still open after {PATIENCE:?}");
        assert_eq!(last["type"], "ERROR", "watch {i} ended with {last}");
        assert_eq!(last["object"]["code"], 410, "watch {i} ended with {last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_carries_the_pool_its_clouds_label_names() {
    // The wall groups nodes by pool: a projection that dropped the pool labels grouped every
    // node by GPU model instead.
    let sim = start_sim(&["--clusters", "3", "--nodes", "30", "--seed", "42"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet.until_synced().await;
    let keys = [
        "karpenter.sh/nodepool",
        "eks.amazonaws.com/nodegroup",
        "cloud.google.com/gke-nodepool",
        "kubernetes.azure.com/agentpool",
    ];
    let mut labelled = 0;
    for (i, name) in ["sim-a", "sim-b", "sim-c"].iter().enumerate() {
        let c = cluster(&snap, name);
        for node in KubeApi::of(&sim, i).nodes().await {
            let Some(pool) = keys
                .iter()
                .find_map(|k| node["metadata"]["labels"][*k].as_str())
            else {
                continue;
            };
            labelled += 1;
            let model = c
                .nodes
                .iter()
                .find(|n| n.name == name_of(&node))
                .unwrap_or_else(|| panic!("{name}: node {} not in the snapshot", name_of(&node)));
            assert_eq!(model.pool.as_deref(), Some(pool), "{name}/{}", model.name);
        }
    }
    assert!(labelled > 0, "the sim labels its nodes with their pools");
}

// ---- Spark on Kubernetes ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_applications_are_watched_and_a_failed_run_shows_its_error_and_driver() {
    let sim = start_sim(&["--clusters", "2", "--nodes", "16", "--seed", "42"]);
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet.until_synced().await;
    let a = cluster(&snap, "sim-a");
    let apps: BTreeMap<&str, &str> = a
        .spark_applications
        .iter()
        .map(|s| (s.name.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(apps.get("nightly-etl"), Some(&"RUNNING"), "{apps:?}");
    assert_eq!(apps.get("feature-backfill"), Some(&"RUNNING"), "{apps:?}");
    let etl = a
        .spark_applications
        .iter()
        .find(|s| s.name == "nightly-etl")
        .expect("nightly-etl");
    assert_eq!(etl.namespace, "batch");
    assert_eq!(etl.driver_pod.as_deref(), Some("nightly-etl-driver"));
    assert_eq!((etl.executors_running, etl.executors_total), (3, 3));
    assert_eq!(etl.execution_attempts, 1);
    let scheduled: Vec<&str> = a
        .spark_applications
        .iter()
        .filter(|s| s.scheduled_app.as_deref() == Some("daily-aggregates"))
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(scheduled.len(), 2, "both runs of the scheduled app");
    assert!(
        cluster(&snap, "sim-b").spark_applications.is_empty(),
        "sim-b runs no Spark"
    );

    scenario(&sim, reqwest::Method::POST, "spark-failed").await;
    let snap = fleet
        .until("nightly-etl to be FAILED", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                c.spark_applications
                    .iter()
                    .any(|a| a.name == "nightly-etl" && a.failed())
            })
        })
        .await;
    let etl = cluster(&snap, "sim-a")
        .spark_applications
        .iter()
        .find(|s| s.name == "nightly-etl")
        .expect("nightly-etl");
    assert_eq!(etl.state, "FAILED");
    assert!(
        etl.error_message
            .as_deref()
            .is_some_and(|m| m.contains("OutOfMemoryError")),
        "{etl:?}"
    );
    assert_eq!(etl.executors_running, 0);
    assert!(etl.terminated.is_some());

    scenario(&sim, reqwest::Method::DELETE, "spark-failed").await;
    fleet
        .until("the retry to run", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                c.spark_applications.iter().any(|a| {
                    a.name == "nightly-etl" && a.state == "RUNNING" && a.execution_attempts == 2
                })
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_applications_refused_by_rbac_are_forbidden_and_the_rest_stays_synced() {
    let sim = start_sim(&["--clusters", "1", "--nodes", "6", "--seed", "42"]);
    scenario(
        &sim,
        reqwest::Method::POST,
        "rbac-deny?resource=sparkapplications",
    )
    .await;
    let mut fleet = Fleet::watch(&sim.kubeconfig, &[]);
    let snap = fleet
        .until("sparkapplications forbidden, the rest synced", |s| {
            s.cluster("sim-a").is_some_and(|c| {
                matches!(
                    state_of(c, "sparkapplications"),
                    Some(SyncState::Forbidden { .. })
                ) && RESOURCES
                    .iter()
                    .filter(|r| **r != "sparkapplications")
                    .all(|r| state_of(c, r) == Some(&SyncState::Synced))
            })
        })
        .await;
    let c = cluster(&snap, "sim-a");
    assert!(c.spark_applications.is_empty());
    assert!(
        c.synced(),
        "a forbidden resource is settled, not a cluster down"
    );
}
