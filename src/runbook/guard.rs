//! The guard: every mutation a runbook asks for is checked here first — kill switch,
//! read-only, the cluster-wide halt on unready nodes, the disruption budget, the replica
//! budget of scale-downs (per run and per window, scale to zero of a serving Deployment
//! refused unless allowed) — and the mode
//! decides what an allowed mutation becomes: a plan, a request for approval, or the action
//! itself. (A person's confirmed action from the cockpit only meets read-only.) An allowed
//! mutation comes with a [`Clearance`], which only the guard issues and without which the
//! executor performs nothing. Imports actions (the `Mutation`), model and config.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::meta::Mode;
use crate::actions::{GuardBudget, Mutation};
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
    replicas_per_run: u32,
    replicas_per_window: u32,
    scale_window: Duration,
    allow_scale_to_zero_serving: bool,
    /// Replicas automation was allowed to remove: (cluster, when, how many), pruned past the
    /// window.
    scaled_down: std::sync::Mutex<Vec<(String, Instant, u32)>>,
}

/// What one pass of one run has spent of the per-run budgets: each pass of a run gets its own
/// (a plan and the action after its approval count the same scale once each).
#[derive(Debug, Default)]
pub struct RunBudget {
    replicas_removed: AtomicU32,
}

/// How long a node allowed out of service counts against the budget before the snapshot must
/// show it.
const RESERVATION: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether the snapshot shows `node` of `cluster` cordoned or not Ready.
fn out_of_service(snap: &Snapshot, cluster: &str, node: &str) -> bool {
    snap.clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.nodes.iter().find(|n| n.name == node))
        .is_some_and(|n| n.cordoned || n.readiness != NodeReadiness::Ready)
}

/// The nodes of `cluster` allowed out of service that the snapshot does not show yet; drops the
/// reservations the snapshot now shows or that are too old to count.
fn pending_reservations(
    reserved: &mut std::collections::HashMap<(String, String), Instant>,
    snap: &Snapshot,
    cluster: &str,
) -> u32 {
    reserved.retain(|(c, n), at| {
        at.elapsed() < RESERVATION && !(c == cluster && out_of_service(snap, cluster, n))
    });
    reserved.keys().filter(|(c, _)| c == cluster).count() as u32
}

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
            // The config refuses values outside 0–100; a config built in code cannot widen the
            // budget past the whole cluster either (NaN counts as 0: nothing may be disrupted).
            max_disrupted_pct: cfg.max_disrupted_pct.clamp(0.0, 100.0),
            halt_unready_pct: cfg.halt_unready_pct.clamp(0.0, 100.0),
            halt_unready_count: cfg.halt_unready_count,
            reserved: std::sync::Mutex::new(std::collections::HashMap::new()),
            leader: std::sync::OnceLock::new(),
            replicas_per_run: cfg.max_replicas_removed_per_run,
            replicas_per_window: cfg.max_replicas_removed_per_window,
            scale_window: cfg.scale_budget_window,
            allow_scale_to_zero_serving: cfg.allow_scale_to_zero_serving,
            scaled_down: std::sync::Mutex::new(Vec::new()),
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

    /// Whether `cluster`'s disruption budget has room for one more node: the nodes the snapshot
    /// shows out of service and those the guard allowed out that it does not show yet. A run the
    /// budget refused waits for this, not for the snapshot alone: between a cordon's PATCH and
    /// the watch that shows it, the snapshot has room the guard will refuse.
    pub fn budget_has_room(&self, snap: &Snapshot, cluster: &str) -> bool {
        let Some(d) = self.disruption(snap, cluster) else {
            return false;
        };
        let Ok(mut reserved) = self.reserved.lock() else {
            return false;
        };
        d.disrupted + pending_reservations(&mut reserved, snap, cluster) < d.budget
    }

    /// Checks one mutation in `cluster` under `mode` (already the stricter of the global mode
    /// and the runbook's), as the only mutation of its run.
    pub fn check(
        &self,
        snap: &Snapshot,
        cluster: &str,
        mutation: &Mutation,
        mode: Mode,
    ) -> Decision {
        self.check_in_run(snap, cluster, mutation, mode, &RunBudget::default())
    }

    /// Checks one mutation of a run whose pass has spent `budget` so far (and spends it).
    pub fn check_in_run(
        &self,
        snap: &Snapshot,
        cluster: &str,
        mutation: &Mutation,
        mode: Mode,
        budget: &RunBudget,
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
            if let Some(node) = mutation.spends_disruption_budget() {
                // Check and reserve under one lock: parallel runs see each other's nodes.
                let Ok(mut reserved) = self.reserved.lock() else {
                    return Decision::Refuse("the guard's budget ledger is unusable".into());
                };
                let pending = pending_reservations(&mut reserved, snap, cluster);
                let key = (cluster.to_string(), node.to_string());
                let already = out_of_service(snap, cluster, node) || reserved.contains_key(&key);
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
        if mutation.spec().budget == GuardBudget::Replicas
            && let Mutation::Scale {
                namespace,
                name,
                replicas,
            } = mutation
            && let Err(why) =
                self.spend_replicas(snap, cluster, namespace, name, *replicas, mode, budget)
        {
            return Decision::Refuse(why);
        }
        match mode {
            Mode::DryRun => Decision::Plan,
            Mode::Approve => Decision::Approve,
            Mode::Auto => Decision::Allow(Clearance::new(cluster, mutation)),
        }
    }

    /// The replica budget of a scale: what it removes (the Deployment's replicas in the
    /// snapshot less the new count) must fit what this run and all runs in the window may still
    /// remove, and a Deployment that serves an endpoint is not scaled to zero unless allowed.
    /// Spends the budget when it fits (the window's only for a mutation that will be performed).
    #[allow(clippy::too_many_arguments)]
    fn spend_replicas(
        &self,
        snap: &Snapshot,
        cluster: &str,
        namespace: &str,
        name: &str,
        replicas: u32,
        mode: Mode,
        budget: &RunBudget,
    ) -> Result<(), String> {
        let object = format!("deployment/{namespace}/{name}");
        let current = snap
            .deployment(cluster, namespace, name)
            .map(|d| d.replicas)
            .ok_or_else(|| {
                format!(
                    "{object} is not in the fleet picture of cluster {cluster}: the guard cannot count the replicas scaling it would remove"
                )
            })?;
        let removed = current.saturating_sub(replicas);
        if removed == 0 {
            return Ok(());
        }
        if replicas == 0 && !self.allow_scale_to_zero_serving {
            let serves = snap.endpoints.iter().find(|e| {
                e.serving.as_ref().is_some_and(|s| {
                    s.cluster == cluster
                        && s.kind.eq_ignore_ascii_case("Deployment")
                        && s.namespace == namespace
                        && s.name == name
                })
            });
            if let Some(e) = serves {
                return Err(format!(
                    "{object} serves endpoint {}: automation does not scale it to zero ([runbooks] allow_scale_to_zero_serving = false)",
                    e.name
                ));
            }
        }
        let spent = budget.replicas_removed.load(Ordering::SeqCst);
        if spent + removed > self.replicas_per_run {
            return Err(format!(
                "replica budget of this run reached: scaling {object} from {current} to {replicas} removes {removed} replica(s), the run has removed {spent} already and may remove {} ([runbooks] max_replicas_removed_per_run)",
                self.replicas_per_run
            ));
        }
        let Ok(mut ledger) = self.scaled_down.lock() else {
            return Err("the guard's replica ledger is unusable".into());
        };
        ledger.retain(|(_, at, _)| at.elapsed() < self.scale_window);
        let in_window: u32 = ledger
            .iter()
            .filter(|(c, _, _)| c == cluster)
            .map(|(_, _, n)| n)
            .sum();
        if in_window + removed > self.replicas_per_window {
            return Err(format!(
                "replica budget of cluster {cluster} reached: scaling {object} from {current} to {replicas} removes {removed} replica(s), automation removed {in_window} in the last {} and may remove {} ([runbooks] max_replicas_removed_per_window)",
                humantime::format_duration(self.scale_window),
                self.replicas_per_window
            ));
        }
        budget.replicas_removed.fetch_add(removed, Ordering::SeqCst);
        if mode == Mode::Auto {
            ledger.push((cluster.to_string(), Instant::now(), removed));
        }
        Ok(())
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
    use crate::model::{ClusterSnapshot, NodeModel};

    fn node(name: &str, ready: bool, cordoned: bool) -> NodeModel {
        NodeModel {
            name: name.into(),
            readiness: if ready {
                NodeReadiness::Ready
            } else {
                NodeReadiness::NotReady
            },
            cordoned,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            ..Default::default()
        }
    }

    fn snap(nodes: Vec<NodeModel>) -> Snapshot {
        let c = ClusterSnapshot {
            name: "prod".into(),
            nodes,
            ..Default::default()
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

    fn deployment(name: &str, replicas: u32) -> crate::model::DeploymentModel {
        crate::model::DeploymentModel {
            namespace: "serving".into(),
            name: name.into(),
            revision: Some(3),
            replicas,
            ready: replicas,
            updated: replicas,
            available: replicas,
            rollout: crate::model::RolloutState::Complete,
            images: vec![],
            registered_model: None,
        }
    }

    /// 20 nodes, 14 Deployments of 3 replicas in `serving`; llama-chat serves an endpoint.
    fn serving_fleet() -> Snapshot {
        let mut s = snap(
            (0..20)
                .map(|i| node(&format!("n{i}"), true, false))
                .collect(),
        );
        let mut deployments = vec![deployment("llama-chat", 3)];
        deployments.extend((1..14).map(|i| deployment(&format!("worker-{i}"), 3)));
        Arc::make_mut(&mut s.clusters[0]).deployments = deployments;
        let endpoint: crate::model::endpoint::EndpointConfig = serde_json::from_value(
            serde_json::json!({
                "name": "llama-chat",
                "url": "http://llama-chat.serving:8000",
                "protocol": "vllm",
                "serving": {"cluster": "prod", "namespace": "serving", "kind": "Deployment", "name": "llama-chat"},
            }),
        )
        .unwrap();
        s.endpoints = vec![Arc::new(crate::model::endpoint::EndpointModel::new(
            &endpoint,
            chrono::Utc::now(),
        ))];
        s
    }

    fn scale(name: &str, replicas: u32) -> Mutation {
        Mutation::Scale {
            namespace: "serving".into(),
            name: name.into(),
            replicas,
        }
    }

    #[test]
    fn one_run_scaling_every_deployment_to_zero_is_stopped_by_the_replica_budget() {
        let s = serving_fleet();
        let g = guard();
        let run = RunBudget::default();
        let names: Vec<String> = s.clusters[0]
            .deployments
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let decisions: Vec<(String, Decision)> = names
            .iter()
            .map(|n| {
                let d = g.check_in_run(&s, "prod", &scale(n, 0), Mode::Auto, &run);
                (n.clone(), d)
            })
            .collect();
        match &decisions[0] {
            (n, Decision::Refuse(why)) if n == "llama-chat" => {
                assert!(
                    why.contains("serves endpoint llama-chat")
                        && why.contains("allow_scale_to_zero_serving"),
                    "{why}"
                );
            }
            other => panic!("llama-chat scaled to zero: {other:?}"),
        }
        let allowed = decisions.iter().filter(|(_, d)| allows_ref(d)).count();
        // 10 replicas per run by default: three Deployments of 3, then the budget is spent.
        assert_eq!(allowed, 3, "{decisions:?}");
        let (_, last) = decisions.last().unwrap();
        assert!(
            matches!(last, Decision::Refuse(r) if r.contains("replica budget of this run") && r.contains("max_replicas_removed_per_run")),
            "{last:?}"
        );
        // Scaling up removes nothing and costs nothing.
        assert!(allows(g.check_in_run(
            &s,
            "prod",
            &scale("worker-9", 5),
            Mode::Auto,
            &run
        )));
    }

    #[test]
    fn the_replica_budget_of_a_window_spans_runs_and_only_actions_spend_it() {
        let s = serving_fleet();
        let g = guard();
        // Plans spend nothing of the window.
        for i in 1..=8 {
            let plan = RunBudget::default();
            assert_eq!(
                g.check_in_run(
                    &s,
                    "prod",
                    &scale(&format!("worker-{i}"), 0),
                    Mode::DryRun,
                    &plan
                ),
                Decision::Plan
            );
        }
        // 20 per window: six runs of one Deployment of 3 each fit, the seventh does not.
        for i in 1..=6 {
            let run = RunBudget::default();
            let d = g.check_in_run(
                &s,
                "prod",
                &scale(&format!("worker-{i}"), 0),
                Mode::Auto,
                &run,
            );
            assert!(allows_ref(&d), "run {i}: {d:?}");
        }
        let d = g.check_in_run(
            &s,
            "prod",
            &scale("worker-7", 0),
            Mode::Auto,
            &RunBudget::default(),
        );
        assert!(
            matches!(&d, Decision::Refuse(r) if r.contains("replica budget of cluster prod") && r.contains("removed 18")),
            "{d:?}"
        );
        // A Deployment the snapshot does not show cannot be counted: refused.
        let d = guard().check(&s, "prod", &scale("ghost", 0), Mode::Auto);
        assert!(
            matches!(&d, Decision::Refuse(r) if r.contains("not in the fleet picture")),
            "{d:?}"
        );
    }

    #[test]
    fn a_serving_deployment_scales_to_zero_only_when_the_config_allows_it() {
        let s = serving_fleet();
        let cfg = RunbooksConfig {
            allow_scale_to_zero_serving: true,
            ..RunbooksConfig::default()
        };
        let g = Guard::new(&cfg, Mode::Auto, false);
        assert!(allows(g.check(
            &s,
            "prod",
            &scale("llama-chat", 0),
            Mode::Auto
        )));
        // Down to one replica is not scale-to-zero: only the budget applies.
        assert!(allows(guard().check(
            &s,
            "prod",
            &scale("llama-chat", 1),
            Mode::Auto
        )));
    }

    fn allows_ref(d: &Decision) -> bool {
        matches!(d, Decision::Allow(_))
    }
}
