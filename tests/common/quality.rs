//! Signal quality against a real `fleetdeck sim`: each trial starts a sim, wires the cockpit's
//! sources to it (`cli::wiring::start`, as every face does), runs the one evaluation pipeline
//! with a store (as headless and the cockpit do, without runbooks, so nothing remediates) and
//! watches what it raises: on a healthy fleet for a while, or around a scenario injected on the
//! sim's control address and then cleared. Shared by `tests/signal_quality.rs` (short) and
//! `benches/signal_quality.rs` (the README's table).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck::config::{Config, Thresholds};
use fleetdeck::model::incident::{IncidentStatus, Origin};
use fleetdeck::model::signal::{Severity, Signal};
use fleetdeck::pipeline::{Evaluated, Pipeline};
use fleetdeck::store::{IncidentFilter, Store};
use serde_json::Value;

use super::Sim;

/// How a scenario's fault is taken away again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// `DELETE /scenarios/<name>` on the sim's control address.
    Control,
    /// `kubectl rollout undo` of the Deployment the injection names.
    Rollback,
    /// The fault ends by itself (a reclaimed spot node is gone at its deadline).
    Itself,
    /// Nothing undoes it within a trial (a dead kubelet; a PodDisruptionBudget only a drain
    /// meets): mitigation is not measured.
    Never,
}

/// A fault the sim can inject, what it must raise, and within how long with default patience.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub scenario: &'static str,
    /// Kinds that explain the fault: each must fire (recall); anything else raised after the
    /// injection lowers precision.
    pub expected: &'static [&'static str],
    /// Kinds the fault may also explain (a rollout's crash loop also burns its endpoint's
    /// SLO): neither required nor counted against precision.
    pub explained: &'static [&'static str],
    /// How long the expected kinds may take with the default `[signals]` (a node must be
    /// NotReady for a minute; a memory leak's trend must hold for five).
    pub within: Duration,
    pub undo: Undo,
}

/// Every scenario of `fleetdeck sim`, what it must raise, and how it is undone.
pub const FAULTS: &[Fault] = &[
    Fault {
        scenario: "xid-storm",
        expected: &["gpu.xid", "gpu.ecc"],
        explained: &[],
        within: Duration::from_secs(60),
        undo: Undo::Control,
    },
    Fault {
        scenario: "node-notready",
        expected: &["node.not_ready"],
        explained: &["pod.pending_gpu"],
        within: Duration::from_secs(180),
        undo: Undo::Never,
    },
    Fault {
        scenario: "spot-interruption",
        expected: &["node.interruption_notice"],
        explained: &["pod.pending_gpu"],
        within: Duration::from_secs(60),
        undo: Undo::Itself,
    },
    Fault {
        scenario: "bad-rollout",
        expected: &["slo.fast_burn"],
        explained: &["slo.slow_burn", "endpoint.down", "endpoint.drift"],
        // The page needs 5 minutes of the endpoint's history (its short window) first.
        within: Duration::from_secs(360),
        undo: Undo::Rollback,
    },
    Fault {
        scenario: "crashloop-rollout",
        expected: &["pod.crash_loop_after_rollout"],
        explained: &["slo.fast_burn", "slo.slow_burn", "endpoint.down"],
        within: Duration::from_secs(240),
        undo: Undo::Rollback,
    },
    Fault {
        scenario: "pdb-block",
        expected: &[],
        explained: &[],
        within: Duration::from_secs(60),
        undo: Undo::Never,
    },
    Fault {
        scenario: "api-flaky",
        expected: &[],
        explained: &[],
        within: Duration::from_secs(120),
        undo: Undo::Control,
    },
    Fault {
        scenario: "rbac-deny",
        expected: &[],
        explained: &[],
        within: Duration::from_secs(60),
        undo: Undo::Control,
    },
    Fault {
        scenario: "endpoint-outage",
        expected: &["endpoint.down"],
        explained: &["slo.fast_burn", "slo.slow_burn"],
        within: Duration::from_secs(180),
        undo: Undo::Control,
    },
    Fault {
        scenario: "gpu-memory-leak",
        expected: &["gpu.memory_exhaustion_forecast"],
        explained: &[],
        within: Duration::from_secs(720),
        undo: Undo::Control,
    },
    Fault {
        scenario: "training-stall",
        expected: &["training.stalled"],
        explained: &[],
        // Each GPU's last readings (up to 2 minutes of them) must fall under 5 %, then 10 minutes of `for`.
        within: Duration::from_secs(840),
        undo: Undo::Control,
    },
    Fault {
        scenario: "training-straggler",
        expected: &["training.straggler"],
        // The slow rank's GPUs run hot: that is its cause, on its node.
        explained: &["gpu.throttling"],
        within: Duration::from_secs(840),
        undo: Undo::Control,
    },
    Fault {
        scenario: "vector-index-stale",
        expected: &["vector.index_stale"],
        explained: &[],
        // The count must stay flat for the kind's 30 minutes of `for`, from its last growth.
        within: Duration::from_secs(1920),
        undo: Undo::Control,
    },
    Fault {
        scenario: "airflow-failures",
        expected: &["pipeline.dag_failing"],
        explained: &[],
        // Two runs fail: the next attempt within a period (60 s) fails 23 s in, the one after
        // a period later; then the sim's 5 s read and the `for`.
        within: Duration::from_secs(240),
        undo: Undo::Control,
    },
    Fault {
        scenario: "spark-failed",
        expected: &["pipeline.spark_failed"],
        explained: &[],
        // A watch event, then the kind's 1-minute `for`.
        within: Duration::from_secs(180),
        undo: Undo::Control,
    },
];

pub fn fault(scenario: &str) -> &'static Fault {
    FAULTS
        .iter()
        .find(|f| f.scenario == scenario)
        .unwrap_or_else(|| panic!("no fault {scenario}"))
}

/// The faults a healthy sim builds in on purpose, by name (the README lists them): the
/// crash-looping `batch/tokenizer-worker` of every cluster, and the `research/llm-finetune-xl`
/// Job that asks for a whole GPU node no node has free.
pub fn is_designed(s: &Signal) -> bool {
    let object = s.subject.object.as_deref().unwrap_or("");
    (s.kind == "pod.crash_loop" && object.starts_with("pod/tokenizer-worker-"))
        || (s.kind == "pod.pending_gpu" && object.starts_with("pod/llm-finetune-xl-"))
}

/// Whether an incident group is one the fault's expected kinds open (groups are named by the
/// kind's family: `gpu.fault:` for XID and ECC).
fn is_fault_group(fault: &Fault, group: &str) -> bool {
    fault
        .expected
        .iter()
        .any(|k| group.starts_with(&format!("{}:", fleetdeck::store::incident_family(k))))
}

/// The designed faults' incident groups.
fn is_designed_group(group: &str) -> bool {
    (group.starts_with("pod.crash_loop:")
        && (group.ends_with("/owner/batch/tokenizer-worker")
            || group.ends_with("/deployment/batch/tokenizer-worker")))
        || (group.starts_with("pod.pending_gpu:")
            && group.ends_with("/owner/research/llm-finetune-xl"))
}

/// One trial: a sim, a fault or none, and how long to watch.
#[derive(Debug, Clone)]
pub struct Trial {
    pub fault: Option<&'static Fault>,
    pub seed: u64,
    /// `fleetdeck sim` arguments besides the seed (`--nodes 40`).
    pub sim_args: Vec<String>,
    pub thresholds: Thresholds,
    /// Healthy: how long the fleet is watched from its first evaluation. With a fault: how long
    /// the fleet settles after the picture is complete before the injection.
    pub watch: Duration,
    /// With a fault: how long the fleet is watched after the expected kinds fired (what else
    /// the fault raises), and the most a clear may take to mitigate its incidents.
    pub linger: Duration,
    pub clear_within: Duration,
    /// Multiplies the fault's `within` (a test's patience is scaled down).
    pub within_scale: f64,
}

/// A kind raised during a trial.
#[derive(Debug, Clone)]
pub struct Raised {
    pub worst: Severity,
    /// Distinct dedup keys (GPUs, pods, nodes).
    pub members: BTreeSet<String>,
    /// First firing, after the trial's start (healthy) or the injection.
    pub first: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    pub seed: u64,
    /// Kinds that opened incidents, raised after the start or injection, designed faults apart.
    pub raised: BTreeMap<String, Raised>,
    /// Designed faults' kinds seen.
    pub designed: BTreeSet<String>,
    /// Findings (no incident) by kind: distinct dedup keys.
    pub findings: BTreeMap<String, usize>,
    /// Incidents opened after the start or injection, by incident group, designed faults apart.
    pub incidents: BTreeMap<String, u64>,
    /// The first expected kind's first firing after the injection.
    pub first_expected: Option<Duration>,
    /// Whether undoing the fault mitigated every incident it opened (`None`: not undone).
    pub mitigated: Option<bool>,
    /// Most signals at once (incident signals, designed faults included).
    pub peak: usize,
    pub evaluations: u64,
    /// What went wrong running the trial itself (a sim that would not start, a rollback that
    /// failed): a trial with an error measured nothing.
    pub error: Option<String>,
}

impl Outcome {
    pub fn critical(&self) -> Vec<&str> {
        self.raised
            .iter()
            .filter(|(_, r)| r.worst == Severity::Critical)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Kinds raised that the fault does not explain.
    pub fn unexplained(&self, fault: Option<&Fault>) -> Vec<&str> {
        self.raised
            .keys()
            .map(String::as_str)
            .filter(|k| fault.is_none_or(|f| !f.expected.contains(k) && !f.explained.contains(k)))
            .collect()
    }

    /// Raised signals (dedup keys) of expected or explained kinds ÷ all raised; 1 when nothing
    /// was raised.
    pub fn precision(&self, fault: Option<&Fault>) -> f64 {
        let all: usize = self.raised.values().map(|r| r.members.len()).sum();
        if all == 0 {
            return 1.0;
        }
        let good: usize = self
            .raised
            .iter()
            .filter(|(k, _)| {
                fault.is_some_and(|f| {
                    f.expected.contains(&k.as_str()) || f.explained.contains(&k.as_str())
                })
            })
            .map(|(_, r)| r.members.len())
            .sum();
        good as f64 / all as f64
    }

    /// Expected kinds raised ÷ expected kinds; `None` for a fault that expects none.
    pub fn recall(&self, fault: &Fault) -> Option<f64> {
        if fault.expected.is_empty() {
            return None;
        }
        let hit = fault
            .expected
            .iter()
            .filter(|k| self.raised.contains_key(**k))
            .count();
        Some(hit as f64 / fault.expected.len() as f64)
    }

    /// Incidents opened by the fault's expected kinds.
    pub fn fault_incidents(&self, fault: &Fault) -> u64 {
        self.incidents
            .iter()
            .filter(|(g, _)| is_fault_group(fault, g))
            .count() as u64
    }
}

struct Watcher {
    sim: Sim,
    store: Store,
    rx: tokio::sync::watch::Receiver<Arc<Evaluated>>,
    _dir: tempfile::TempDir,
}

fn start(trial: &Trial) -> Result<Watcher, String> {
    let mut args: Vec<String> = trial.sim_args.clone();
    args.extend(["--seed".to_string(), trial.seed.to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&refs);
    let mut cfg = Config::default();
    fleetdeck::cli::wiring::point_at_sim(&mut cfg, &sim.desc);
    // As `fleetdeck demo` sets it: a healthy simulated fleet stays within its budget.
    let nodes: f64 = trial
        .sim_args
        .iter()
        .position(|a| a == "--nodes")
        .and_then(|i| trial.sim_args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(40.0);
    cfg.cost.monthly_budget = Some(nodes.max(1.0) * 75_000.0);
    cfg.signals = trial.thresholds.clone();
    let targets = fleetdeck::sources::kube::targets(Some(&sim.kubeconfig), &[])
        .map_err(|e| format!("kubeconfig: {e}"))?;
    let running = fleetdeck::cli::wiring::start(&cfg, targets, None);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Store::open(&dir.path().join("store")).map_err(|e| e.to_string())?;
    let rx = Pipeline::new(running.pipeline_config(&cfg, Origin::Headless))
        .with_store(store.clone())
        .spawn(running.snapshots, None);
    Ok(Watcher {
        sim,
        store,
        rx,
        _dir: dir,
    })
}

/// What one evaluation adds to an outcome: kinds first firing, findings, the peak.
fn observe(out: &mut Outcome, ev: &Evaluated, since: Instant, phase: bool) {
    out.evaluations += 1;
    let snap = &ev.snapshot;
    out.peak = out.peak.max(snap.incident_signals().count());
    for s in snap.signals.iter().filter(|s| !s.is_clearing()) {
        if snap.is_finding(s) {
            continue;
        }
        if is_designed(s) {
            out.designed.insert(s.kind.clone());
            continue;
        }
        if !phase {
            continue;
        }
        let r = out.raised.entry(s.kind.clone()).or_insert_with(|| Raised {
            worst: s.severity,
            members: BTreeSet::new(),
            first: since.elapsed(),
        });
        r.worst = r.worst.max(s.severity);
        r.members.insert(s.dedup_key.clone());
    }
}

fn count_findings(out: &mut Outcome, seen: &BTreeMap<String, BTreeSet<String>>) {
    for (k, keys) in seen {
        out.findings.insert(k.clone(), keys.len());
    }
}

/// Watches evaluations until `until` answers true or `max` passes.
async fn watch(
    w: &mut Watcher,
    out: &mut Outcome,
    findings: &mut BTreeMap<String, BTreeSet<String>>,
    since: Instant,
    phase: bool,
    max: Duration,
    mut until: impl FnMut(&Outcome, &Evaluated) -> bool,
) {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let ev = w.rx.borrow_and_update().clone();
        observe(out, &ev, since, phase);
        for s in ev.snapshot.findings() {
            findings
                .entry(s.kind.clone())
                .or_default()
                .insert(s.dedup_key.clone());
        }
        if until(out, &ev) {
            return;
        }
        match tokio::time::timeout_at(deadline, w.rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

fn incidents_after(store: &Store, after: u64) -> BTreeMap<String, u64> {
    store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.id > after && !is_designed_group(&i.group))
        .map(|i| (i.group.clone(), i.id))
        .collect()
}

fn last_incident(store: &Store) -> u64 {
    store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default()
        .iter()
        .map(|i| i.id)
        .max()
        .unwrap_or(0)
}

async fn control(sim: &Sim, method: reqwest::Method, path: &str) -> Result<Value, String> {
    let url = format!("{}/scenarios/{path}", sim.control());
    let r = reqwest::Client::new()
        .request(method.clone(), &url)
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| format!("{method} {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{method} {url}: {status} {body}"));
    }
    Ok(body)
}

fn rollback(sim: &Sim, detail: &Value) -> Result<(), String> {
    let cluster = detail["cluster"].as_str().unwrap_or_default();
    let (ns, dep) = detail["deployment"]
        .as_str()
        .and_then(|d| d.split_once('/'))
        .ok_or_else(|| format!("the injection names no deployment: {detail}"))?;
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args([
            "--context",
            cluster,
            "-n",
            ns,
            "rollout",
            "undo",
            &format!("deployment/{dep}"),
        ])
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "kubectl rollout undo: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Runs one trial to its end.
pub async fn run(trial: Trial) -> Outcome {
    let mut out = Outcome {
        name: trial.fault.map_or("healthy", |f| f.scenario).to_string(),
        seed: trial.seed,
        ..Outcome::default()
    };
    let mut w = match tokio::task::block_in_place(|| start(&trial)) {
        Ok(w) => w,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let mut findings = BTreeMap::new();
    let started = Instant::now();
    let Some(fault) = trial.fault else {
        // Healthy: everything from the first evaluation counts.
        watch(
            &mut w,
            &mut out,
            &mut findings,
            started,
            true,
            trial.watch,
            |_, _| false,
        )
        .await;
        out.incidents = incidents_after(&w.store, 0);
        count_findings(&mut out, &findings);
        return out;
    };
    // Settle: the picture completes, recording starts, the healthy fleet's own signals fire.
    let settle_until = Instant::now() + trial.watch;
    watch(
        &mut w,
        &mut out,
        &mut findings,
        started,
        false,
        trial.watch + Duration::from_secs(90),
        |_, ev| ev.recording && Instant::now() >= settle_until,
    )
    .await;
    let before = last_incident(&w.store);
    let injected_at = Instant::now();
    let detail = match control(&w.sim, reqwest::Method::POST, fault.scenario).await {
        Ok(reply) => reply["detail"].clone(),
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let within = fault.within.mul_f64(trial.within_scale);
    let wanted: BTreeSet<&str> = fault.expected.iter().copied().collect();
    let mut all_at: Option<Instant> = None;
    let linger = trial.linger;
    watch(
        &mut w,
        &mut out,
        &mut findings,
        injected_at,
        true,
        within,
        |o, _| {
            let all = wanted.iter().all(|k| o.raised.contains_key(*k));
            if all && all_at.is_none() {
                all_at = Some(Instant::now());
            }
            all_at.is_some_and(|t| t.elapsed() >= linger)
                || (wanted.is_empty() && injected_at.elapsed() >= within)
        },
    )
    .await;
    out.first_expected = out
        .raised
        .iter()
        .filter(|(k, _)| wanted.contains(k.as_str()))
        .map(|(_, r)| r.first)
        .min();
    let undone = match fault.undo {
        Undo::Control => control(&w.sim, reqwest::Method::DELETE, fault.scenario)
            .await
            .map(|_| true),
        Undo::Rollback => tokio::task::block_in_place(|| rollback(&w.sim, &detail)).map(|_| true),
        Undo::Itself => Ok(true),
        Undo::Never => Ok(false),
    };
    match undone {
        Err(e) => out.error = Some(e),
        Ok(false) => {}
        Ok(true) => {
            let store = w.store.clone();
            let faulty: BTreeSet<u64> = incidents_after(&store, before)
                .into_iter()
                .filter(|(g, _)| is_fault_group(fault, g))
                .map(|(_, id)| id)
                .collect();
            let mitigated = || {
                store
                    .incidents(&IncidentFilter::default())
                    .unwrap_or_default()
                    .iter()
                    .filter(|i| faulty.contains(&i.id))
                    .all(|i| {
                        matches!(
                            i.status,
                            IncidentStatus::Mitigated | IncidentStatus::Resolved
                        )
                    })
            };
            let mut done = false;
            watch(
                &mut w,
                &mut out,
                &mut findings,
                injected_at,
                true,
                trial.clear_within,
                |_, _| {
                    done = mitigated();
                    done
                },
            )
            .await;
            out.mitigated = Some(done && !faulty.is_empty() || fault.expected.is_empty());
        }
    }
    out.incidents = incidents_after(&w.store, before);
    count_findings(&mut out, &findings);
    out
}

/// Seconds, for tables.
pub fn secs(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}
