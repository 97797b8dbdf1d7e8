//! Drain: cordon a node, then evict its pods, as kubectl/pkg/drain does it (drain.go,
//! filters.go), plus what a GPU fleet needs: the ranks of a gang training job leave together
//! or not at all, and a PodDisruptionBudget is bypassed only past a deadline the caller set.
//!
//! [`plan_drain`] reads and changes nothing; [`drain`] cordons, plans, and refuses before any
//! eviction when a filter fails (as `GetPodsForDeletion` returning errors does in kubectl).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::{Selector, SelectorExt};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::api::{ObjectPath, collection_path};
use super::evict::{conclude, deadline_after, evict_and_wait};
use super::node::cordon;
use super::{ActionContext, ActionError, ActionOutcome, ActionReport};

/// kubectl's filters.go messages, with this API's option names.
const DAEMONSET_FATAL: &str =
    "cannot delete DaemonSet-managed Pods (use ignore_daemonsets to ignore)";
const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
const LOCAL_STORAGE_FATAL: &str =
    "cannot delete Pods with local storage (use delete_emptydir_data to override)";
const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
const UNMANAGED_FATAL: &str =
    "cannot delete Pods that declare no controller (use force to override)";
const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";
/// corev1.MirrorPodAnnotationKey: a static pod's API mirror, which only the kubelet removes.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const GPU: &str = "nvidia.com/gpu";

/// Labels that tie the ranks of one distributed job together, and how to call the job when
/// its pods' controller does not say: the Kubeflow training operator (PyTorchJob, MPIJob,
/// TFJob, … all label `training.kubeflow.org/job-name`), JobSet, Volcano, LeaderWorkerSet.
const GANG_LABELS: [(&str, &str); 4] = [
    ("training.kubeflow.org/job-name", "training job"),
    ("jobset.sigs.k8s.io/jobset-name", "JobSet"),
    ("volcano.sh/job-name", "Volcano Job"),
    ("leaderworkerset.sigs.k8s.io/name", "LeaderWorkerSet"),
];
/// Controllers whose pods are ranks of one job even without those labels.
const GANG_CONTROLLERS: [&str; 7] = [
    "PyTorchJob",
    "MPIJob",
    "TFJob",
    "XGBoostJob",
    "PaddleJob",
    "JAXJob",
    "MXJob",
];

/// What to do with a pod that is one rank of a gang training job whose other ranks run on
/// other nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GangPolicy {
    /// Refuse the drain: evicting one rank stalls every other rank of the job.
    #[default]
    Refuse,
    /// Evict every rank of the job, on every node, so the job restarts whole elsewhere.
    WholeGang,
}

/// kubectl drain's flags, and fleetdeck's own.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainOptions {
    /// `--ignore-daemonsets`: skip DaemonSet-managed pods instead of refusing.
    pub ignore_daemonsets: bool,
    /// `--delete-emptydir-data`: evict pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// `--force`: evict pods that declare no controller (nothing recreates them).
    pub force: bool,
    /// `--grace-period`; `None` uses each pod's terminationGracePeriodSeconds.
    pub grace_period_seconds: Option<u32>,
    /// `--timeout`, for the whole drain (kubectl's 0 = forever has no equivalent here).
    pub timeout: Duration,
    /// How long to wait after a 429 before asking again (kubectl's EvictErrorRetryDelay, 5 s).
    pub eviction_retry_delay: Duration,
    /// How often to look whether an evicted pod is gone (kubectl's waitForDelete: 1 s).
    pub poll_interval: Duration,
    /// Past this time, a pod whose eviction a PodDisruptionBudget refuses is deleted
    /// directly (with its grace period), and the report says so. `None`: never.
    pub force_past: Option<DateTime<Utc>>,
    pub gang: GangPolicy,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            force: false,
            grace_period_seconds: None,
            timeout: Duration::from_secs(600),
            eviction_retry_delay: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            force_past: None,
            gang: GangPolicy::Refuse,
        }
    }
}

/// A pod the drain will evict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodToEvict {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    /// `ReplicaSet/web-7d9f`, or `None` for a pod no controller recreates.
    pub controller: Option<String>,
    /// `nvidia.com/gpu` the pod requests.
    pub gpus: u32,
    /// The gang job it is a rank of (`PyTorchJob training/llm-pretrain`).
    pub gang: Option<String>,
    /// kubectl's warning for it (local storage deleted, no controller).
    pub warning: Option<String>,
    /// For matching budgets; left out of a serialized plan.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

impl PodToEvict {
    /// `ns/name`
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A pod the drain leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPod {
    pub pod: String,
    pub reason: String,
}

/// A pod that stops the drain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodProblem {
    pub pod: String,
    pub reason: String,
}

/// A PodDisruptionBudget that allows fewer disruptions than the drain needs from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PdbPressure {
    /// `ns/name`
    pub pdb: String,
    pub disruptions_allowed: i32,
    /// The pods to evict it covers (`ns/name`).
    pub pods: Vec<String>,
    /// It allows no disruption at all now: the first eviction it covers will get a 429.
    pub blocks_now: bool,
}

/// A gang job the drain touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GangImpact {
    /// `PyTorchJob training/llm-pretrain`
    pub job: String,
    /// Its running ranks, on every node.
    pub ranks: usize,
    pub ranks_on_node: usize,
    /// The nodes its ranks run on.
    pub nodes: Vec<String>,
    /// GPUs its running ranks hold, on every node.
    pub gpus: u32,
    /// `refused`, `whole gang evicted` or `all ranks on this node`.
    pub decision: String,
}

/// What a drain would do now; computed without changing anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainPlan {
    pub node: String,
    pub already_cordoned: bool,
    pub evict: Vec<PodToEvict>,
    pub skipped: Vec<SkippedPod>,
    /// Any entry here refuses the drain before its first eviction.
    pub errors: Vec<PodProblem>,
    pub pdbs: Vec<PdbPressure>,
    /// Why the budgets are unknown, when they could not be read.
    pub pdbs_unknown: Option<String>,
    pub gangs: Vec<GangImpact>,
    /// GPUs the evicted pods hold (a whole gang's, on every node, included).
    pub gpus_freed: u32,
    #[serde(skip)]
    pub(super) budgets: Vec<Budget>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Budget {
    namespace: String,
    name: String,
    /// `None`: a null selector, which selects nothing.
    selector: Option<Selector>,
    allowed: i32,
}

impl Budget {
    fn covers(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace && self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

impl DrainPlan {
    pub(super) fn empty(node: &str) -> Self {
        Self {
            node: node.to_string(),
            already_cordoned: false,
            evict: Vec::new(),
            skipped: Vec::new(),
            errors: Vec::new(),
            pdbs: Vec::new(),
            pdbs_unknown: None,
            gangs: Vec::new(),
            gpus_freed: 0,
            budgets: Vec::new(),
        }
    }

    pub fn is_refused(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors grouped by reason, as kubectl's `PodDeleteList.errors` prints them.
    pub fn refusal(&self) -> String {
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in &self.errors {
            by_reason.entry(&e.reason).or_default().push(&e.pod);
        }
        by_reason
            .iter()
            .map(|(reason, pods)| format!("{reason}: {}", pods.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One line for a confirmation prompt or a dry-run timeline entry.
    pub fn summary(&self) -> String {
        if self.is_refused() {
            return format!(
                "drain of node {} would be refused: {}",
                self.node,
                self.refusal()
            );
        }
        let mut s = format!(
            "drain of node {} would evict {} pod(s) freeing {} GPU(s), skip {}",
            self.node,
            self.evict.len(),
            self.gpus_freed,
            self.skipped.len()
        );
        for g in &self.gangs {
            s.push_str(&format!(
                "; {} ({} ranks on {}): {}",
                g.job,
                g.ranks,
                g.nodes.join(", "),
                g.decision
            ));
        }
        let blocking: Vec<&str> = self
            .pdbs
            .iter()
            .filter(|p| p.blocks_now)
            .map(|p| p.pdb.as_str())
            .collect();
        if !blocking.is_empty() {
            s.push_str(&format!("; blocked now by PDB {}", blocking.join(", ")));
        }
        s
    }

    /// The budget a pod's eviction answers to, when the 429 did not name it.
    pub(super) fn budget_of(&self, pod: &PodToEvict) -> Option<String> {
        self.budgets
            .iter()
            .find(|b| b.covers(&pod.namespace, &pod.labels))
            .map(|b| format!("{}/{}", b.namespace, b.name))
    }
}

/// What the drain would do to `node` now. Reads pods, DaemonSets, gang ranks and budgets;
/// changes nothing (a dry-run guard and a confirmation prompt both show it).
#[tracing::instrument(skip(ctx, opts), fields(cluster = %ctx.cluster))]
pub async fn plan_drain(
    ctx: &ActionContext,
    node: &str,
    opts: &DrainOptions,
) -> Result<DrainPlan, ActionError> {
    let node_obj: Value = ctx
        .read_existing(&ObjectPath::node(node), &format!("node {node}"))
        .await?;
    let cordoned = node_obj
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    plan(ctx, node, opts, cordoned).await
}

async fn plan(
    ctx: &ActionContext,
    node: &str,
    opts: &DrainOptions,
    already_cordoned: bool,
) -> Result<DrainPlan, ActionError> {
    // drain.go GetPodsForDeletion: every pod whose spec.nodeName is the node.
    let pods: Vec<Pod> = ctx
        .list("/api/v1/pods", None, Some(&format!("spec.nodeName={node}")))
        .await?;
    let mut daemonsets: BTreeMap<(String, String), DaemonSetState> = BTreeMap::new();
    for pod in &pods {
        if let Some(c) = controller(pod).filter(|c| c.kind == "DaemonSet")
            && !finished(pod)
        {
            let ns = namespace(pod).to_string();
            let key = (ns.clone(), c.name.clone());
            if daemonsets.contains_key(&key) {
                continue;
            }
            // filters.go daemonSetFilter GETs the DaemonSet: an orphaned pod is not skipped.
            let path = ObjectPath::new("/apis/apps/v1", Some(&ns), "daemonsets", &c.name);
            let state = match ctx.read(&path).await {
                Ok(Some(_)) => DaemonSetState::Exists,
                Ok(None) => {
                    DaemonSetState::Missing(format!("daemonsets.apps \"{}\" not found", c.name))
                }
                Err(e) => DaemonSetState::Unreadable(e.to_string()),
            };
            daemonsets.insert(key, state);
        }
    }

    let mut plan = DrainPlan::empty(node);
    plan.already_cordoned = already_cordoned;
    let mut gang_pods: BTreeMap<GangId, Vec<PodToEvict>> = BTreeMap::new();
    for pod in &pods {
        let ds = controller(pod)
            .filter(|c| c.kind == "DaemonSet")
            .and_then(|c| daemonsets.get(&(namespace(pod).to_string(), c.name.clone())));
        match filter_pod(pod, opts, ds) {
            Filtered::Evict(warning) => {
                let p = to_evict(pod, warning);
                match gang_of(pod) {
                    Some(g) if !finished(pod) => gang_pods.entry(g).or_default().push(p),
                    _ => plan.evict.push(p),
                }
            }
            Filtered::Skip(reason) => plan.skipped.push(SkippedPod {
                pod: pod_key(pod),
                reason,
            }),
            Filtered::Error(reason) => plan.errors.push(PodProblem {
                pod: pod_key(pod),
                reason,
            }),
        }
    }

    for (gang, on_node) in gang_pods {
        let ranks = gang_ranks(ctx, &gang).await?;
        let others: Vec<&Pod> = ranks
            .iter()
            .filter(|r| r.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node))
            .collect();
        let mut nodes: Vec<String> = ranks
            .iter()
            .filter_map(|r| r.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        nodes.sort();
        nodes.dedup();
        let gpus = ranks.iter().map(pod_gpus).fold(0u32, u32::saturating_add);
        let mut impact = GangImpact {
            job: gang.display.clone(),
            ranks: ranks.len().max(on_node.len()),
            ranks_on_node: on_node.len(),
            nodes,
            gpus,
            decision: String::new(),
        };
        if others.is_empty() {
            impact.decision = "all ranks on this node".into();
            plan.evict.extend(on_node);
        } else if opts.gang == GangPolicy::Refuse {
            impact.decision = "refused".into();
            let reason = format!(
                "cannot evict one rank of {} alone: it has {} ranks on nodes {}, and the others would stall; use gang = WholeGang to evict every rank",
                impact.job,
                impact.ranks,
                impact.nodes.join(", ")
            );
            plan.errors.extend(on_node.iter().map(|p| PodProblem {
                pod: p.key(),
                reason: reason.clone(),
            }));
        } else {
            impact.decision = "whole gang evicted".into();
            plan.evict.extend(on_node);
            for rank in others {
                match filter_pod(rank, opts, None) {
                    Filtered::Evict(warning) => plan.evict.push(to_evict(rank, warning)),
                    Filtered::Skip(reason) => plan.skipped.push(SkippedPod {
                        pod: pod_key(rank),
                        reason,
                    }),
                    Filtered::Error(reason) => plan.errors.push(PodProblem {
                        pod: pod_key(rank),
                        reason,
                    }),
                }
            }
        }
        plan.gangs.push(impact);
    }

    plan.evict.sort_by_key(PodToEvict::key);
    plan.gpus_freed = plan
        .evict
        .iter()
        .map(|p| p.gpus)
        .fold(0, u32::saturating_add);
    match ctx
        .list::<PodDisruptionBudget>("/apis/policy/v1/poddisruptionbudgets", None, None)
        .await
    {
        Ok(pdbs) => {
            plan.budgets = pdbs.iter().map(budget).collect();
            for b in &plan.budgets {
                let pods: Vec<String> = plan
                    .evict
                    .iter()
                    .filter(|p| b.covers(&p.namespace, &p.labels))
                    .map(PodToEvict::key)
                    .collect();
                let needed = i32::try_from(pods.len()).unwrap_or(i32::MAX);
                if !pods.is_empty() && (b.allowed <= 0 || needed > b.allowed) {
                    plan.pdbs.push(PdbPressure {
                        pdb: format!("{}/{}", b.namespace, b.name),
                        disruptions_allowed: b.allowed,
                        pods,
                        blocks_now: b.allowed <= 0,
                    });
                }
            }
        }
        // The budgets only inform the plan; the eviction API enforces them either way.
        Err(e) => plan.pdbs_unknown = Some(e.to_string()),
    }
    Ok(plan)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DaemonSetState {
    Exists,
    Missing(String),
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Filtered {
    Evict(Option<&'static str>),
    Skip(String),
    Error(String),
}

/// filters.go `makeFilters`, in its order: skip deleted, DaemonSet, mirror, local storage,
/// unreplicated; the first filter that does not allow deletion decides. Pods already
/// terminating are skipped (kubectl skips them only past --skip-wait-for-delete-timeout;
/// their deletion is under way and evicting them again changes nothing).
fn filter_pod(pod: &Pod, opts: &DrainOptions, daemonset: Option<&DaemonSetState>) -> Filtered {
    if let Some(t) = &pod.metadata.deletion_timestamp {
        return Filtered::Skip(format!("already terminating (deletionTimestamp {})", t.0));
    }
    let mut warning = None;
    // daemonSetFilter
    if controller(pod).is_some_and(|c| c.kind == "DaemonSet") && !finished(pod) {
        match daemonset {
            Some(DaemonSetState::Missing(_)) if opts.force => warning = Some(UNMANAGED_WARNING),
            Some(DaemonSetState::Missing(e)) | Some(DaemonSetState::Unreadable(e)) => {
                return Filtered::Error(e.clone());
            }
            _ if !opts.ignore_daemonsets => return Filtered::Error(DAEMONSET_FATAL.into()),
            _ => return Filtered::Skip(DAEMONSET_WARNING.into()),
        }
    }
    // mirrorPodFilter
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
    {
        return Filtered::Skip("mirror pod (a static pod only its kubelet removes)".into());
    }
    // localStorageFilter
    let empty_dir = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| vs.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir && !finished(pod) {
        if !opts.delete_emptydir_data {
            return Filtered::Error(LOCAL_STORAGE_FATAL.into());
        }
        warning = Some(LOCAL_STORAGE_WARNING);
    }
    // unreplicatedFilter
    if !finished(pod) && controller(pod).is_none() {
        if !opts.force {
            return Filtered::Error(UNMANAGED_FATAL.into());
        }
        warning = Some(UNMANAGED_WARNING);
    }
    Filtered::Evict(warning)
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn controller(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        namespace(pod),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn pod_gpus(pod: &Pod) -> u32 {
    if finished(pod) {
        return 0;
    }
    let Some(spec) = &pod.spec else { return 0 };
    spec.containers
        .iter()
        .filter_map(|c| {
            let r = c.resources.as_ref()?;
            r.requests
                .as_ref()
                .and_then(|m| m.get(GPU))
                .or_else(|| r.limits.as_ref().and_then(|m| m.get(GPU)))
                .and_then(|q| q.0.parse::<u32>().ok())
        })
        .sum()
}

pub(super) fn to_evict(pod: &Pod, warning: Option<&'static str>) -> PodToEvict {
    PodToEvict {
        namespace: namespace(pod).to_string(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        controller: controller(pod).map(|c| format!("{}/{}", c.kind, c.name)),
        gpus: pod_gpus(pod),
        gang: gang_of(pod).map(|g| g.display),
        warning: warning.map(str::to_string),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    }
}

pub(super) fn budget(pdb: &PodDisruptionBudget) -> Budget {
    Budget {
        namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
        name: pdb.metadata.name.clone().unwrap_or_default(),
        // A selector the client cannot read selects nothing here; the API still enforces it.
        selector: pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .and_then(|s| Selector::try_from(s).ok()),
        allowed: pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed),
    }
}

/// One gang job, by how its ranks are found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GangId {
    namespace: String,
    /// `label=value`, or the controller's uid when no gang label is set.
    selector: GangSelector,
    display: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GangSelector {
    Label(String, String),
    Controller(String),
}

fn gang_of(pod: &Pod) -> Option<GangId> {
    let ns = namespace(pod).to_string();
    let owner = controller(pod);
    let labels = pod.metadata.labels.as_ref();
    for (key, what) in GANG_LABELS {
        if let Some(v) = labels.and_then(|l| l.get(key)).filter(|v| !v.is_empty()) {
            let display = match owner.filter(|o| GANG_CONTROLLERS.contains(&o.kind.as_str())) {
                Some(o) => format!("{} {ns}/{}", o.kind, o.name),
                None => format!("{what} {ns}/{v}"),
            };
            return Some(GangId {
                namespace: ns,
                selector: GangSelector::Label(key.to_string(), v.clone()),
                display,
            });
        }
    }
    let o = owner.filter(|o| GANG_CONTROLLERS.contains(&o.kind.as_str()))?;
    Some(GangId {
        display: format!("{} {ns}/{}", o.kind, o.name),
        namespace: ns,
        selector: GangSelector::Controller(o.uid.clone()),
    })
}

/// The gang's running ranks, on every node.
async fn gang_ranks(ctx: &ActionContext, gang: &GangId) -> Result<Vec<Pod>, ActionError> {
    let collection = collection_path("/api/v1", Some(&gang.namespace), "pods");
    let pods: Vec<Pod> = match &gang.selector {
        GangSelector::Label(k, v) => {
            ctx.list(&collection, Some(&format!("{k}={v}")), None)
                .await?
        }
        GangSelector::Controller(uid) => ctx
            .list::<Pod>(&collection, None, None)
            .await?
            .into_iter()
            .filter(|p| controller(p).is_some_and(|c| &c.uid == uid))
            .collect(),
    };
    Ok(pods
        .into_iter()
        .filter(|p| !finished(p) && p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Cordons `node`, then evicts its pods as kubectl drain does: any filter error refuses the
/// drain before the first eviction (the node stays cordoned, as kubectl leaves it); evictions
/// run in parallel, each POSTing policy/v1 Evictions with the pod's UID as a precondition
/// until accepted, backing off `eviction_retry_delay` after each 429, then waiting until the
/// pod is gone or replaced. A 429 is never bypassed unless `force_past` has passed.
#[tracing::instrument(skip(ctx, opts), fields(cluster = %ctx.cluster))]
pub async fn drain(
    ctx: &ActionContext,
    node: &str,
    opts: &DrainOptions,
) -> Result<ActionReport, ActionError> {
    let started = Instant::now();
    let deadline = deadline_after(started, opts.timeout);
    let mut report = ActionReport::new(ctx, "drain", format!("node/{node}"));
    let cordoned = cordon(ctx, node).await?;
    report.changes.extend(cordoned.changes);
    report.outcomes.extend(cordoned.outcomes);
    if let ActionOutcome::Failed(why) = cordoned.outcome {
        return Ok(report.finish(
            ActionOutcome::Failed(why),
            format!("could not cordon node {node}; nothing evicted"),
        ));
    }
    let already = matches!(cordoned.outcome, ActionOutcome::NoOp(_));
    let plan = plan(ctx, node, opts, already).await?;
    if plan.is_refused() {
        let mut why = plan.refusal();
        if !ctx.dry_run {
            why.push_str(&format!(
                "; node {node} stays cordoned, as kubectl drain leaves it (uncordon to undo)"
            ));
        }
        return Ok(report.finish(
            ActionOutcome::Refused(why),
            format!(
                "drain of node {node} refused before any eviction: {} pod(s) cannot be evicted",
                plan.errors.len()
            ),
        ));
    }
    let runs = join_all(
        plan.evict
            .iter()
            .map(|pod| evict_and_wait(ctx, &plan, pod, opts, deadline)),
    )
    .await;
    Ok(conclude(report, &plan, runs, opts, started))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    fn owned(kind: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": "u1", "controller": true}])
    }

    #[test]
    fn filters_follow_kubectls_order_and_finished_pods_pass() {
        let opts = DrainOptions::default();
        let ds = pod(
            json!({"metadata": {"name": "d", "namespace": "n", "ownerReferences": owned("DaemonSet")}}),
        );
        assert_eq!(
            filter_pod(&ds, &opts, Some(&DaemonSetState::Exists)),
            Filtered::Error(DAEMONSET_FATAL.into())
        );
        let skip = DrainOptions {
            ignore_daemonsets: true,
            ..DrainOptions::default()
        };
        assert!(matches!(
            filter_pod(&ds, &skip, Some(&DaemonSetState::Exists)),
            Filtered::Skip(_)
        ));
        let bare = pod(json!({"metadata": {"name": "b", "namespace": "n"}}));
        assert_eq!(
            filter_pod(&bare, &opts, None),
            Filtered::Error(UNMANAGED_FATAL.into())
        );
        let done = pod(json!({"metadata": {"name": "b", "namespace": "n"},
            "spec": {"containers": [], "volumes": [{"name": "s", "emptyDir": {}}]},
            "status": {"phase": "Succeeded"}}));
        assert_eq!(filter_pod(&done, &opts, None), Filtered::Evict(None));
        let scratch = pod(
            json!({"metadata": {"name": "s", "namespace": "n", "ownerReferences": owned("ReplicaSet")},
            "spec": {"containers": [], "volumes": [{"name": "s", "emptyDir": {}}]}}),
        );
        assert_eq!(
            filter_pod(&scratch, &opts, None),
            Filtered::Error(LOCAL_STORAGE_FATAL.into())
        );
        let mirror = pod(json!({"metadata": {"name": "m", "namespace": "n",
            "annotations": {MIRROR_ANNOTATION: "abc"}}}));
        assert!(matches!(
            filter_pod(&mirror, &opts, None),
            Filtered::Skip(_)
        ));
        let leaving = pod(json!({"metadata": {"name": "l", "namespace": "n",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert!(matches!(
            filter_pod(&leaving, &opts, None),
            Filtered::Skip(_)
        ));
    }

    #[test]
    fn gangs_are_found_by_label_or_by_training_controller() {
        let rank = pod(json!({"metadata": {"name": "r", "namespace": "t",
            "labels": {"training.kubeflow.org/job-name": "llm"},
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "llm", "uid": "j", "controller": true}]}}));
        let g = gang_of(&rank).expect("a gang");
        assert_eq!(g.display, "PyTorchJob t/llm");
        let mpi = pod(json!({"metadata": {"name": "r", "namespace": "t",
            "ownerReferences": [{"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "name": "m", "uid": "k", "controller": true}]}}));
        assert_eq!(
            gang_of(&mpi).map(|g| g.selector),
            Some(GangSelector::Controller("k".into()))
        );
        let web = pod(
            json!({"metadata": {"name": "w", "namespace": "t", "ownerReferences": owned("ReplicaSet")}}),
        );
        assert!(gang_of(&web).is_none());
    }
}
