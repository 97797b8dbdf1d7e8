//! The runbook engine's targets, against `fleetdeck sim` started in this process and reached
//! over loopback HTTP:
//! - engine overhead of one evaluation of each shipped runbook (plan pass, no I/O);
//! - signal → first mutating API request, in auto mode with re-validation off (p50/p99 of 100);
//! - a burst of 1,000 signals (10 per node on 100 nodes) handled without a duplicate action and
//!   within the disruption budget.
//!
//! `cargo bench --bench runbooks`

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck::actions::Mutation;
use fleetdeck::config::{Config, RunbooksConfig};
use fleetdeck::model::Snapshot;
use fleetdeck::model::incident::{EntryKind, Origin};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::runbook::engine::{Host, Limits};
use fleetdeck::runbook::executor::{Executor, ExecutorConfig};
use fleetdeck::runbook::guard::Guard;
use fleetdeck::runbook::{Mode, shipped};
use fleetdeck::store::Store;

/// Answers every request as a plan: what the engine costs without any I/O.
struct PlanHost(Arc<Snapshot>);

impl Host for PlanHost {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.0.clone()
    }
    fn pods_on(&self, _: &str) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!([]))
    }
    fn request(&self, _: Mutation) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({"outcome": "planned", "reason": "", "summary": ""}))
    }
    fn note(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn notify(&self, _: &str, _: serde_json::Value) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({"outcome": "planned"}))
    }
    fn require_approval(&self, _: &str) -> Result<bool, String> {
        Ok(true)
    }
    fn wait_for(&self, _: &str, _: &str, _: Duration) -> Result<bool, String> {
        Ok(true)
    }
}

fn signal_for(kind: &str, cluster: &str, node: &str, gpu: u32) -> Signal {
    let mut evidence: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    evidence.insert("xid".into(), 79.into());
    evidence.insert("seconds".into(), 600.into());
    evidence.insert(
        "taint".into(),
        "aws-node-termination-handler/spot-itn".into(),
    );
    evidence.insert(
        "deadline".into(),
        (chrono::Utc::now() + chrono::Duration::minutes(2))
            .to_rfc3339()
            .into(),
    );
    evidence.insert("seconds_left".into(), 110.into());
    if kind.starts_with("pod.") {
        evidence.insert("deployment".into(), "llama-chat".into());
    }
    evidence.insert("revision".into(), 4.into());
    evidence.insert("reason".into(), "CrashLoopBackOff".into());
    evidence.insert("utilization_pct".into(), 0.into());
    Signal {
        kind: kind.into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: cluster.into(),
            node: Some(node.into()),
            gpu: Some(format!("gpu{gpu}")),
            endpoint: Some("llama-chat".into()),
            namespace: Some("serving".into()),
            object: None,
        },
        summary: format!("{kind} on {node} gpu{gpu}"),
        evidence,
        action: None,
        first_seen: chrono::Utc::now() - chrono::Duration::minutes(10),
        dedup_key: format!("{kind}:{cluster}/{node}/GPU-{gpu}"),
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn synced(
    cfg: &Config,
    kubeconfig: &std::path::Path,
) -> (Arc<Snapshot>, Vec<fleetdeck::sources::kube::ClusterTarget>) {
    let targets = fleetdeck::sources::kube::targets(Some(kubeconfig), &[]).expect("targets");
    let running = fleetdeck::cli::wiring::start(cfg, targets.clone(), None);
    let mut rx = running.snapshots;
    loop {
        {
            let s = rx.borrow_and_update().clone();
            if !s.clusters.is_empty() && s.clusters.iter().all(|c| c.synced()) {
                return (s, targets);
            }
        }
        if rx.changed().await.is_err() {
            panic!("state stopped");
        }
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        let opts = fleetdeck::sim::SimOptions {
            clusters: 1,
            nodes: 120,
            pods_per_node: 10,
            gpus_per_node: 8,
            seed: 7,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig_out: Some(dir.path().join("kubeconfig")),
            scenarios: vec![],
            users: None,
        };
        let sim = fleetdeck::sim::start(&opts).await.expect("sim");
        let mut cfg = Config::default();
        cfg.gpu.nvml = false;
        let (snap, targets) = synced(&cfg, &sim.kubeconfig).await;
        let cluster = snap.clusters[0].name.clone();
        let nodes: Vec<String> = snap.clusters[0].nodes.iter().map(|n| n.name.clone()).collect();

        // 1. Engine overhead: each shipped runbook, plan pass, 200 evaluations.
        let (books, _) = shipped::load();
        let host = Arc::new(PlanHost(snap.clone()));
        println!("engine overhead per evaluation (plan pass, {} nodes in view):", nodes.len());
        for rb in &books {
            let kind = rb.meta.trigger.signal.trim_end_matches('*').to_string();
            let s = signal_for(&kind, &cluster, &nodes[0], 0);
            let mut times = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let _ = rb.run(host.clone(), &s, &Limits::default());
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            println!(
                "  {:<30} p50 {:.3} ms  p99 {:.3} ms",
                rb.meta.name,
                pct(&mut times.clone(), 0.5),
                pct(&mut times, 0.99)
            );
        }

        // 2. Signal → first mutating request, 100 signals on 100 distinct nodes.
        let store = Store::open(&dir.path().join("store")).expect("store");
        let clients = fleetdeck::cli::wiring::action_clients(&targets).await;
        let rcfg = RunbooksConfig {
            max_disrupted_pct: 100.0,
            halt_unready_pct: 100.0,
            ..RunbooksConfig::default()
        };
        let xid = books
            .iter()
            .find(|b| b.meta.name == "gpu-xid-cordon")
            .cloned()
            .expect("gpu-xid-cordon");
        // Cordon only: the latency to the first mutation is what is measured.
        let cordon_only = fleetdeck::runbook::Runbook::from_source(
            std::path::Path::new("bench:cordon.rhai"),
            "const RUNBOOK = #{ name: \"cordon\", description: \"bench\", trigger: #{ signal: \"gpu.xid\", min_severity: \"critical\" }, cooldown: \"1h\" };\nfn run(signal) { cordon(signal.subject.node); }",
        )
        .expect("bench runbook");
        let mut ecfg = ExecutorConfig::from_config(&rcfg, Mode::Auto, Origin::Headless);
        ecfg.revalidate_after = Duration::ZERO;
        let guard = Guard::new(&rcfg, Mode::Auto, false).shared();
        let ex = Executor::new(vec![cordon_only], guard, store.clone(), clients.clone(), ecfg);
        let mut lat = Vec::new();
        for node in nodes.iter().take(100) {
            let mut s = (*snap).clone();
            let sig = signal_for("gpu.xid", &cluster, node, 0);
            s.signals = vec![sig];
            let ids = ex.observe(Arc::new(s));
            assert_eq!(ids.len(), 1);
            loop {
                if ex.runs().iter().any(|r| ids.contains(&r.id) && r.finished_at.is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let run = ex.runs().into_iter().find(|r| ids.contains(&r.id)).expect("run");
            assert!(!run.actions.is_empty(), "{run:?}");
        }
        // The first API answer of each cordon, from the timeline (its outcome's time).
        let mut firsts: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
        let mut starts: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
        for i in 1..=store.len().expect("len") {
            let Some(e) = store.entry(i).expect("entry") else { continue };
            let run = e.entry.detail.get("run").and_then(|v| v.as_str()).unwrap_or("").to_string();
            if e.entry.kind == EntryKind::Decision && e.entry.summary.contains("started for") {
                starts.entry(run).or_insert(e.entry.occurred_at);
            } else if e.entry.kind == EntryKind::Action
                && let Some(o) = e.entry.outcomes.first()
            {
                firsts.entry(run).or_insert(o.at);
            }
        }
        for r in ex.runs() {
            if let (Some(a), Some(b)) = (starts.get(&r.id), firsts.get(&r.id)) {
                lat.push((*b - *a).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
        println!(
            "signal → first mutating request answered ({} runs): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            pct(&mut lat.clone(), 0.5),
            pct(&mut lat.clone(), 0.99),
            pct(&mut lat, 1.0)
        );

        // 3. A burst of 1,000 signals (10 GPUs × 100 nodes) with the real gpu-xid-cordon under
        // the default budget (10% of the cluster): no duplicate, within budget.
        let store2 = Store::open(&dir.path().join("store2")).expect("store");
        let guard = Guard::new(&RunbooksConfig::default(), Mode::Auto, false).shared();
        let mut ecfg = ExecutorConfig::from_config(&RunbooksConfig::default(), Mode::Auto, Origin::Headless);
        ecfg.revalidate_after = Duration::ZERO;
        let ex2 = Executor::new(vec![xid], guard, store2.clone(), clients, ecfg);
        // Uncordon what part 2 cordoned, so the budget starts clean.
        let (snap2, _) = synced(&cfg, &sim.kubeconfig).await;
        for n in snap2.clusters[0].nodes.iter().filter(|n| n.cordoned) {
            let (ex, c, node) = (ex2.clone(), cluster.clone(), n.name.clone());
            let _ = tokio::task::spawn_blocking(move || {
                ex.manual(&c, &Mutation::Uncordon { node }, "bench", None)
            })
                .await;
        }
        let (snap3, _) = synced(&cfg, &sim.kubeconfig).await;
        let mut s = (*snap3).clone();
        s.signals = nodes
            .iter()
            .skip(10)
            .take(100)
            .flat_map(|n| (0..10).map(move |g| (n.clone(), g)))
            .map(|(n, g)| signal_for("gpu.xid", &cluster, &n, g))
            .collect();
        let before: serde_json::Value = reqwest::get(format!("{}/counters", sim.description["control"].as_str().unwrap_or_default()))
            .await.expect("counters").json().await.expect("json");
        let t = Instant::now();
        let started = ex2.observe(Arc::new(s.clone()));
        // Keep feeding the same snapshot, as the cockpit would, while the runs go.
        loop {
            let _ = ex2.observe(Arc::new(s.clone()));
            if ex2.runs().iter().all(|r| r.finished_at.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = t.elapsed();
        let after: serde_json::Value = reqwest::get(format!("{}/counters", sim.description["control"].as_str().unwrap_or_default()))
            .await.expect("counters").json().await.expect("json");
        let patches = |v: &serde_json::Value| v["clusters"][&cluster]["by_verb"]["PATCH"].as_u64().unwrap_or(0);
        let cordons: Vec<String> = ex2.runs().iter().flat_map(|r| r.actions.clone()).filter(|a| a.ends_with(" cordoned")).collect();
        let mut uniq = cordons.clone();
        uniq.sort();
        uniq.dedup();
        let budget = (nodes.len() as f64 * 0.10).ceil() as usize;
        println!(
            "burst of {} signals on 100 nodes: {} runs started, {} nodes cordoned ({} distinct, budget {}), {} PATCH requests at the sim, all runs done in {:.2} s",
            s.signals.len(),
            started.len(),
            cordons.len(),
            uniq.len(),
            budget,
            patches(&after) - patches(&before),
            took.as_secs_f64()
        );
        assert_eq!(cordons.len(), uniq.len(), "a node was cordoned twice");
        assert!(uniq.len() <= budget, "the budget was exceeded");
    });
}
