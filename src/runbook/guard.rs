//! The guard: every mutation a runbook asks for is checked here first — kill switch,
//! read-only, the cluster-wide halt on unready nodes, the disruption budget — and the mode
//! decides what an allowed mutation becomes: a plan, a request for approval, or the action
//! itself. (A person's confirmed action from the cockpit only meets read-only.) An allowed
//! mutation comes with a [`Clearance`], which only the guard issues and without which the
//! executor performs nothing. Imports actions (the `Mutation`), model and config.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::meta::Mode;
use crate::actions::Mutation;
use crate::config::RunbooksConfig;
use crate::model::{NodeReadiness, Snapshot};

/// What the guard says about one mutation.
#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead, with this leave.
    Allow(Clearance),
    /// Dry-run: record what would change.
    Plan,
    /// Ask a human first.
    Approve,
    /// No, and why.
    Refuse(String),
}

/// The guard's leave to perform one mutation in one cluster. Only the guard issues one (the
/// fields are private, there is no constructor outside this file and it is not `Clone`), and
/// the executor's only way to perform a mutation takes one: no code path mutates a cluster
/// without the guard's say.
#[derive(Debug, PartialEq, Serialize)]
pub struct Clearance {
    cluster: String,
    mutation: Mutation,
}

impl Clearance {
    fn new(cluster: &str, mutation: &Mutation) -> Self {
        Self {
            cluster: cluster.to_string(),
            mutation: mutation.clone(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn mutation(&self) -> &Mutation {
        &self.mutation
    }
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
    pub fn check(
        &self,
        snap: &Snapshot,
        cluster: &str,
        mutation: &Mutation,
        mode: Mode,
    ) -> Decision {
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
            if let Some(node) = mutation.disrupted_node() {
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
            Mode::Auto => Decision::Allow(Clearance::new(cluster, mutation)),
        }
    }

    /// A person's confirmed action from the cockpit: it only meets read-only (the kill
    /// switch, budgets and modes govern automation, not people). The refusal says why.
    pub fn clear_person(&self, cluster: &str, mutation: &Mutation) -> Result<Clearance, String> {
        if self.read_only {
            return Err(
                "fleetdeck runs read-only (--read-only): every mutation is forbidden".to_string(),
            );
        }
        Ok(Clearance::new(cluster, mutation))
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
            pool: None,
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
            normal_events: vec![],
            workloads: vec![],
            inference_services: vec![],
            pods: Default::default(),
        };
        Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        }
    }

    fn guard() -> Guard {
        Guard::new(&RunbooksConfig::default(), Mode::Auto, false)
    }

    fn cordon(n: &str) -> Mutation {
        Mutation::Cordon { node: n.into() }
    }

    fn allows(d: Decision) -> bool {
        matches!(d, Decision::Allow(_))
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
        assert!(allows(g.check(&s, "prod", &cordon("n1"), Mode::Auto)));
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
        assert!(allows(guard().check(&s, "prod", &cordon("x"), Mode::Auto)));
        // Parallel runs: the first one reserves the last free slot.
        let mut nodes: Vec<_> = (0..19)
            .map(|i| node(&format!("n{i}"), true, false))
            .collect();
        nodes.push(node("c", true, true));
        let s2 = snap(nodes);
        let g = guard();
        assert!(allows(g.check(&s2, "prod", &cordon("n1"), Mode::Auto)));
        assert!(matches!(
            g.check(&s2, "prod", &cordon("n2"), Mode::Auto),
            Decision::Refuse(_)
        ));
        // The same node again is not a second disruption.
        assert!(allows(g.check(&s2, "prod", &cordon("n1"), Mode::Auto)));
        // Rollbacks are not node disruptions.
        let rb = Mutation::Rollback {
            namespace: "s".into(),
            name: "d".into(),
            revision: None,
        };
        assert!(allows(guard().check(&s, "prod", &rb, Mode::Auto)));
    }

    #[test]
    fn too_many_unready_nodes_halt_the_cluster() {
        // 5 of 10 unready: more than max(3, 45% of 10).
        let mut nodes: Vec<_> = (0..5)
            .map(|i| node(&format!("n{i}"), true, false))
            .collect();
        nodes.extend((0..5).map(|i| node(&format!("u{i}"), false, false)));
        let s = snap(nodes);
        let rb = Mutation::Rollback {
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
    fn a_person_is_cleared_unless_read_only_and_only_for_what_was_asked() {
        let g = guard();
        assert!(
            g.toggle_kill(),
            "the kill switch governs automation, not people"
        );
        let c = g.clear_person("prod", &cordon("n1")).expect("cleared");
        assert_eq!((c.cluster(), c.mutation()), ("prod", &cordon("n1")));
        let ro = Guard::new(&RunbooksConfig::default(), Mode::Auto, true);
        let why = ro
            .clear_person("prod", &cordon("n1"))
            .expect_err("read-only");
        assert!(why.contains("read-only"), "{why}");
    }

    #[test]
    fn an_allowed_mutation_carries_its_clearance() {
        let s = snap(
            (0..20)
                .map(|i| node(&format!("n{i}"), true, false))
                .collect(),
        );
        match guard().check(&s, "prod", &cordon("n3"), Mode::Auto) {
            Decision::Allow(c) => assert_eq!((c.cluster(), c.mutation()), ("prod", &cordon("n3"))),
            other => panic!("{other:?}"),
        }
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
        assert!(allows(g.check(&s, "prod", &cordon("n1"), Mode::Auto)));
        std::fs::write(&file, "").unwrap();
        assert!(
            matches!(g.check(&s, "prod", &cordon("n1"), Mode::Auto), Decision::Refuse(r) if r.contains("STOP"))
        );
    }
}
