//! The guard: every mutation a runbook asks for is checked here first — kill switch,
//! read-only, the cluster-wide halt on unready nodes, the disruption budget — and the mode
//! decides what an allowed mutation becomes: a plan, a request for approval, or the action
//! itself. (A person's confirmed action from the cockpit only meets read-only.)

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::engine::Intent;
use super::meta::Mode;
use crate::config::RunbooksConfig;
use crate::model::{NodeReadiness, Snapshot};

/// What the guard says about one mutation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Dry-run: record what would change.
    Plan,
    /// Ask a human first.
    Approve,
    /// No, and why.
    Refuse(String),
}

/// Guardrails shared by every run and the cockpit's manual actions.
#[derive(Debug)]
pub struct Guard {
    pub mode: Mode,
    pub read_only: bool,
    kill_file: Option<PathBuf>,
    kill: AtomicBool,
    max_disrupted_pct: f64,
    halt_unready_pct: f64,
    halt_unready_count: u32,
    /// Nodes automation was allowed to take out of service and the snapshot may not show yet
    /// (cluster, node) → when: runs in parallel must not all see the same free budget.
    reserved: std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
    /// In HA mode: whether this replica holds the Lease. A replica that does not (or can no
    /// longer renew it) acts on nothing.
    leader: std::sync::OnceLock<Arc<AtomicBool>>,
}

/// How long a node allowed out of service counts against the budget before the snapshot must
/// show it.
const RESERVATION: std::time::Duration = std::time::Duration::from_secs(600);

/// Disruption of one cluster as the guard counts it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusterDisruption {
    pub nodes: u32,
    pub unready: u32,
    /// Cordoned or NotReady: the nodes a budget counts as already disrupted.
    pub disrupted: u32,
    /// How many nodes automation may have disrupted at once.
    pub budget: u32,
}

impl Guard {
    pub fn new(cfg: &RunbooksConfig, mode: Mode, read_only: bool) -> Self {
        Self {
            mode,
            read_only: read_only || cfg.read_only,
            kill_file: (!cfg.kill_switch_file.trim().is_empty())
                .then(|| PathBuf::from(cfg.kill_switch_file.trim())),
            kill: AtomicBool::new(cfg.kill_switch),
            max_disrupted_pct: cfg.max_disrupted_pct,
            halt_unready_pct: cfg.halt_unready_pct,
            halt_unready_count: cfg.halt_unready_count,
            reserved: std::sync::Mutex::new(std::collections::HashMap::new()),
            leader: std::sync::OnceLock::new(),
        }
    }

    /// Fences this replica's mutations on leadership (headless HA).
    pub fn fence_on(&self, leader: Arc<AtomicBool>) {
        let _ = self.leader.set(leader);
    }

    /// Whether this replica may act (always, outside HA).
    pub fn leading(&self) -> bool {
        self.leader.get().is_none_or(|l| l.load(Ordering::SeqCst))
    }

    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// Flips the kill switch (the cockpit's key); returns the new state.
    pub fn toggle_kill(&self) -> bool {
        !self.kill.fetch_xor(true, Ordering::SeqCst)
    }

    pub fn set_kill(&self, on: bool) {
        self.kill.store(on, Ordering::SeqCst);
    }

    /// Why automation is halted everywhere, if it is.
    pub fn killed(&self) -> Option<String> {
        if self.kill.load(Ordering::SeqCst) {
            return Some(
                "the kill switch is on ([runbooks] kill_switch, or K in the cockpit)".into(),
            );
        }
        match &self.kill_file {
            Some(f) if f.exists() => Some(format!(
                "the kill switch is on: {} exists (remove it to resume)",
                f.display()
            )),
            _ => None,
        }
    }

    pub fn disruption(&self, snap: &Snapshot, cluster: &str) -> Option<ClusterDisruption> {
        let c = snap.clusters.iter().find(|c| c.name == cluster)?;
        let nodes = c.nodes.len() as u32;
        let unready = c
            .nodes
            .iter()
            .filter(|n| n.readiness != NodeReadiness::Ready)
            .count() as u32;
        let disrupted = c
            .nodes
            .iter()
            .filter(|n| n.cordoned || n.readiness != NodeReadiness::Ready)
            .count() as u32;
        // Karpenter rounds a percentage budget up.
        let budget = ((f64::from(nodes) * self.max_disrupted_pct) / 100.0).ceil() as u32;
        Some(ClusterDisruption {
            nodes,
            unready,
            disrupted,
            budget,
        })
    }

    /// Checks one mutation in `cluster` under `mode` (already the stricter of the global mode
    /// and the runbook's).
    pub fn check(&self, snap: &Snapshot, cluster: &str, intent: &Intent, mode: Mode) -> Decision {
        if let Some(why) = self.killed() {
            return Decision::Refuse(why);
        }
        if self.read_only {
            return Decision::Refuse(
                "fleetdeck runs read-only: every mutation is forbidden".into(),
            );
        }
        if mode == Mode::Auto && !self.leading() {
            return Decision::Refuse(
                "this replica does not hold the leader Lease (or could not renew it in time): only the leader acts".into(),
            );
        }
        if let Some(d) = self.disruption(snap, cluster) {
            // cluster-autoscaler stops acting when more than max(ok-total-unready-count,
            // max-total-unready-percentage × nodes) nodes are unready: the problem is bigger
            // than one node, and moving pods around makes it worse.
            let limit = (f64::from(d.nodes) * self.halt_unready_pct / 100.0)
                .max(f64::from(self.halt_unready_count));
            if f64::from(d.unready) > limit {
                return Decision::Refuse(format!(
                    "automation is halted in cluster {cluster}: {} of {} nodes are unready (limit {limit:.0})",
                    d.unready, d.nodes
                ));
            }
            if let Some(node) = disrupting(intent) {
                let out_of_service = |name: &str| {
                    snap.clusters
                        .iter()
                        .find(|c| c.name == cluster)
                        .and_then(|c| c.nodes.iter().find(|n| n.name == name))
                        .is_some_and(|n| n.cordoned || n.readiness != NodeReadiness::Ready)
                };
                // Check and reserve under one lock: parallel runs see each other's nodes.
                let Ok(mut reserved) = self.reserved.lock() else {
                    return Decision::Refuse("the guard's budget ledger is unusable".into());
                };
                reserved.retain(|(c, n), at| {
                    at.elapsed() < RESERVATION && !(c == cluster && out_of_service(n))
                });
                let key = (cluster.to_string(), node.to_string());
                let pending = reserved.keys().filter(|(c, _)| c == cluster).count() as u32;
                let already = out_of_service(node) || reserved.contains_key(&key);
                if !already && d.disrupted + pending + 1 > d.budget {
                    return Decision::Refuse(format!(
                        "disruption budget of cluster {cluster} reached: {} of {} nodes are cordoned or NotReady ({} more being taken out by automation), the budget ({}%) allows {}",
                        d.disrupted, d.nodes, pending, self.max_disrupted_pct, d.budget
                    ));
                }
                if mode == Mode::Auto && !already && self.killed().is_none() {
                    reserved.insert(key, std::time::Instant::now());
                }
            }
        }
        match mode {
            Mode::DryRun => Decision::Plan,
            Mode::Approve => Decision::Approve,
            Mode::Auto => Decision::Allow,
        }
    }
}

/// The node a mutation takes out of service, if it does.
fn disrupting(intent: &Intent) -> Option<&str> {
    match intent {
        Intent::Cordon { node } | Intent::Drain { node, .. } => Some(node),
        Intent::Taint { node, effect, .. } if effect == "NoExecute" || effect == "NoSchedule" => {
            Some(node)
        }
        _ => None,
    }
}

/// `node/gpu-node-7`, `deployment/serving/llama` — what a cooldown and an idempotency key name.
pub fn target_of(intent: &Intent) -> String {
    match intent {
        Intent::Cordon { node }
        | Intent::Uncordon { node }
        | Intent::Drain { node, .. }
        | Intent::Taint { node, .. }
        | Intent::Untaint { node, .. } => format!("node/{node}"),
        Intent::Rollback {
            namespace, name, ..
        }
        | Intent::Scale {
            namespace, name, ..
        } => format!("deployment/{namespace}/{name}"),
        Intent::RollbackInferenceService { namespace, name } => {
            format!("inferenceservice/{namespace}/{name}")
        }
        Intent::Annotate {
            kind,
            namespace,
            name,
            ..
        } => format!("{}/{namespace}/{name}", kind.to_lowercase()),
    }
}

/// The verb, for keys and summaries.
pub fn verb_of(intent: &Intent) -> &'static str {
    match intent {
        Intent::Cordon { .. } => "cordon",
        Intent::Uncordon { .. } => "uncordon",
        Intent::Drain { .. } => "drain",
        Intent::Rollback { .. } | Intent::RollbackInferenceService { .. } => "rollback",
        Intent::Scale { .. } => "scale",
        Intent::Taint { .. } => "taint",
        Intent::Untaint { .. } => "untaint",
        Intent::Annotate { .. } => "annotate",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{ClusterSnapshot, ClusterTotals, NodeModel, PhaseCounts};

    fn node(name: &str, ready: bool, cordoned: bool) -> NodeModel {
        NodeModel {
            name: name.into(),
            readiness: if ready {
                NodeReadiness::Ready
            } else {
                NodeReadiness::NotReady
            },
            readiness_since: None,
            cordoned,
            taints: vec![],
            capacity_type: crate::model::CapacityType::OnDemand,
            instance_type: None,
            zone: None,
            gpu_product: None,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            gpu_requested: 0,
            pods: PhaseCounts::default(),
            created: None,
        }
    }

    fn snap(nodes: Vec<NodeModel>) -> Snapshot {
        let c = ClusterSnapshot {
            name: "prod".into(),
            server: String::new(),
            sync: vec![],
            totals: ClusterTotals::default(),
            nodes,
            namespaces: vec![],
            crash_looping: vec![],
            pending: vec![],
            deployments: vec![],
            pdbs: vec![],
            gang_jobs: vec![],
            warnings: vec![],
            inference_services: vec![],
        };
        Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        }
    }

    fn guard() -> Guard {
        Guard::new(&RunbooksConfig::default(), Mode::Auto, false)
    }

    fn cordon(n: &str) -> Intent {
        Intent::Cordon { node: n.into() }
    }

    #[test]
    fn the_mode_decides_what_an_allowed_mutation_becomes() {
        let s = snap(
            (0..20)
                .map(|i| node(&format!("n{i}"), true, false))
                .collect(),
        );
        let g = guard();
        assert_eq!(
            g.check(&s, "prod", &cordon("n1"), Mode::DryRun),
            Decision::Plan
        );
        assert_eq!(
            g.check(&s, "prod", &cordon("n1"), Mode::Approve),
            Decision::Approve
        );
        assert_eq!(
            g.check(&s, "prod", &cordon("n1"), Mode::Auto),
            Decision::Allow
        );
    }

    #[test]
    fn the_disruption_budget_counts_cordoned_and_not_ready_nodes() {
        // 20 nodes × 10% = 2; one is cordoned and one NotReady already.
        let mut nodes: Vec<_> = (0..18)
            .map(|i| node(&format!("n{i}"), true, false))
            .collect();
        nodes.push(node("c", true, true));
        nodes.push(node("x", false, false));
        let s = snap(nodes);
        let d = guard().check(&s, "prod", &cordon("n1"), Mode::Auto);
        assert!(
            matches!(&d, Decision::Refuse(r) if r.contains("disruption budget")),
            "{d:?}"
        );
        // Cordoning a node that is already out of service costs nothing.
        assert_eq!(
            guard().check(&s, "prod", &cordon("x"), Mode::Auto),
            Decision::Allow
        );
        // Parallel runs: the first one reserves the last free slot.
        let mut nodes: Vec<_> = (0..19)
            .map(|i| node(&format!("n{i}"), true, false))
            .collect();
        nodes.push(node("c", true, true));
        let s2 = snap(nodes);
        let g = guard();
        assert_eq!(
            g.check(&s2, "prod", &cordon("n1"), Mode::Auto),
            Decision::Allow
        );
        assert!(matches!(
            g.check(&s2, "prod", &cordon("n2"), Mode::Auto),
            Decision::Refuse(_)
        ));
        // The same node again is not a second disruption.
        assert_eq!(
            g.check(&s2, "prod", &cordon("n1"), Mode::Auto),
            Decision::Allow
        );
        // Rollbacks are not node disruptions.
        let rb = Intent::Rollback {
            namespace: "s".into(),
            name: "d".into(),
            revision: None,
        };
        assert_eq!(guard().check(&s, "prod", &rb, Mode::Auto), Decision::Allow);
    }

    #[test]
    fn too_many_unready_nodes_halt_the_cluster() {
        // 5 of 10 unready: more than max(3, 45% of 10).
        let mut nodes: Vec<_> = (0..5)
            .map(|i| node(&format!("n{i}"), true, false))
            .collect();
        nodes.extend((0..5).map(|i| node(&format!("u{i}"), false, false)));
        let s = snap(nodes);
        let rb = Intent::Rollback {
            namespace: "s".into(),
            name: "d".into(),
            revision: None,
        };
        let d = guard().check(&s, "prod", &rb, Mode::Auto);
        assert!(
            matches!(&d, Decision::Refuse(r) if r.contains("halted")),
            "{d:?}"
        );
    }

    #[test]
    fn read_only_and_the_kill_switch_refuse_everything() {
        let s = snap(
            (0..20)
                .map(|i| node(&format!("n{i}"), true, false))
                .collect(),
        );
        let ro = Guard::new(&RunbooksConfig::default(), Mode::Auto, true);
        assert!(
            matches!(ro.check(&s, "prod", &cordon("n1"), Mode::DryRun), Decision::Refuse(r) if r.contains("read-only"))
        );
        let g = guard();
        assert!(g.toggle_kill());
        assert!(
            matches!(g.check(&s, "prod", &cordon("n1"), Mode::Auto), Decision::Refuse(r) if r.contains("kill switch"))
        );
        assert!(!g.toggle_kill());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("STOP");
        let cfg = RunbooksConfig {
            kill_switch_file: file.display().to_string(),
            ..RunbooksConfig::default()
        };
        let g = Guard::new(&cfg, Mode::Auto, false);
        assert_eq!(
            g.check(&s, "prod", &cordon("n1"), Mode::Auto),
            Decision::Allow
        );
        std::fs::write(&file, "").unwrap();
        assert!(
            matches!(g.check(&s, "prod", &cordon("n1"), Mode::Auto), Decision::Refuse(r) if r.contains("STOP"))
        );
    }
}
