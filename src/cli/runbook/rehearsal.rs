//! `fleetdeck runbook test NAME --scenario S`: a rehearsal. Starts a simulated fleet in this
//! process, reaches it over loopback HTTP as a real cluster, injects the scenario, evaluates it
//! with the pipeline every face uses (the executor holding that one runbook), and reports the signals, the plan, the actions performed
//! against the sim, the timeline and whether it remediated.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::model::incident::Entry;
use crate::runbook::executor::{RunRecord, RunState};
use crate::runbook::{Mode, Runbook};

/// Time runs faster in a rehearsal: detector thresholds and `held_for` shrink by this much.
const TIME_SCALE: f64 = 0.02;

#[derive(Debug, Serialize)]
pub struct RehearsalReport {
    pub runbook: String,
    pub scenario: String,
    pub mode: Mode,
    /// `kind subject` of every signal that fired.
    pub signals: Vec<String>,
    pub runs: Vec<RunRecord>,
    /// Mutating requests the sim's API servers answered, per cluster.
    pub mutating_requests: serde_json::Value,
    pub timeline: Vec<Entry>,
    /// The runs' outcomes (`remediated`, `partial`, `failed`, …), comma-separated.
    pub outcome: String,
    /// Whether every run did all it set out to do: only then does `runbook test` exit 0.
    pub remediated: bool,
    pub verdict: String,
}

/// Runs the rehearsal; `Err` only when the rehearsal itself could not run.
pub async fn rehearse(
    mut cfg: Config,
    runbook: Runbook,
    scenario: &str,
    mode: Mode,
    timeout: Duration,
    progress: &(dyn Fn(String) + Sync),
) -> anyhow::Result<RehearsalReport> {
    progress("starting a simulated fleet".into());
    let dir = tempfile::tempdir().context("cannot make a temp dir for the rehearsal")?;
    let opts = crate::sim::SimOptions {
        clusters: 1,
        nodes: 16,
        pods_per_node: 10,
        gpus_per_node: 8,
        seed: 42,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        kubeconfig_out: Some(dir.path().join("kubeconfig")),
        scenarios: Vec::new(),
        users: None,
    };
    let sim = crate::sim::start(&opts).await?;
    crate::cli::wiring::point_at_sim(&mut cfg, &sim.description);
    cfg.gpu.interval = "1s".into();
    // Compress the detectors' patience as the runbooks' `held_for` is compressed.
    cfg.signals.scale_patience(TIME_SCALE);
    let store = crate::store::Store::open(&dir.path().join("store"))?;
    let targets = crate::sources::kube::targets(Some(&sim.kubeconfig), &[])?;
    let name = runbook.meta.name.clone();
    // A runbook's notify reaches the configured sinks in a rehearsal too: trying one is how a
    // sink is checked before it matters, so one that cannot start fails the rehearsal. The
    // burn windows are compressed too: a page needs its 5-minute window covered, 6 s here.
    let engine = crate::engine::Engine::build(
        &cfg,
        crate::engine::FacePolicy::rehearsal(mode, TIME_SCALE),
        crate::engine::EngineParts {
            store: store.clone(),
            runbooks: vec![runbook],
            targets: &targets,
        },
    )
    .await?;
    let executor = engine.executor.clone();
    let running = engine.start_fleet(&cfg, targets, None);
    let mut pipeline = engine.pipeline(&cfg, &running, None);
    let mut snapshots = running.snapshots;
    let control = sim.description["control"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut injected = scenario == "none";
    let mut seen = std::collections::BTreeSet::new();
    let mut finished_at: Option<Instant> = None;
    loop {
        if started.elapsed() > timeout {
            break;
        }
        let changed = tokio::time::timeout(Duration::from_millis(500), snapshots.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            break;
        }
        let snap = snapshots.borrow_and_update().clone();
        let synced = !snap.clusters.is_empty() && snap.clusters.iter().all(|c| c.synced());
        if !synced {
            progress("syncing the simulated fleet".into());
            continue;
        }
        if !injected {
            let r = http
                .post(format!("{control}/scenarios/{scenario}"))
                .send()
                .await
                .with_context(|| format!("cannot reach the sim to inject {scenario}"))?;
            if !r.status().is_success() {
                let body = r.text().await.unwrap_or_default();
                anyhow::bail!("the sim refused scenario {scenario}: {body}");
            }
            injected = true;
        }
        let evaluated = pipeline.evaluate(snap, chrono::Utc::now()).await;
        for s in evaluated.signals() {
            seen.insert(format!("{} {}", s.kind, s.subject.describe()));
        }
        if mode == Mode::Approve {
            for p in executor.awaiting_here() {
                let _ = executor.decide(p.id, true, "rehearsal");
            }
        }
        let runs = executor.runs();
        progress(match runs.last() {
            None => format!(
                "{scenario} injected; signals seen: {}; waiting for {name} to trigger",
                seen.len()
            ),
            Some(r) if r.finished_at.is_some() => {
                format!(
                    "{name} finished ({}); watching its effect",
                    r.state.outcome()
                )
            }
            Some(r) => format!(
                "{name} running: {} planned, {} performed",
                r.plan.len(),
                r.actions.len()
            ),
        });
        let done = !runs.is_empty()
            && runs
                .iter()
                .all(|r| r.finished_at.is_some() && r.runbook == name);
        match (done, finished_at) {
            (true, None) => finished_at = Some(Instant::now()),
            // A few seconds more to see the effect (a cordon reaching the snapshot).
            (true, Some(at)) if at.elapsed() > Duration::from_secs(3) => break,
            _ => {}
        }
    }
    let runs = executor.runs();
    let counters: serde_json::Value = match http.get(format!("{control}/counters")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    // Every entry, not only incidents' timelines: a run on a finding (an idle GPU) belongs to
    // no incident, and what it did is still the rehearsal's story.
    let mut timeline = Vec::new();
    for seq in 1..=store.len()? {
        if let Some(e) = store.entry(seq)? {
            timeline.push(e);
        }
    }
    let noted = timeline.iter().any(|e| {
        e.entry.kind == crate::model::incident::EntryKind::Note
            && matches!(&e.entry.actor, crate::model::incident::Actor::Runbook(r) if *r == name)
    });
    // The worst run decides: one partial run means the fault was not remediated.
    let worst = runs
        .iter()
        .max_by_key(|r| match r.state {
            RunState::Remediated | RunState::Planned | RunState::Reported => 0,
            RunState::Stopped(_) => 1,
            RunState::Partial(_) => 2,
            RunState::Failed(_) => 3,
            RunState::Running | RunState::AwaitingApproval(_) => 4,
        })
        .map(|r| r.state.clone());
    let (remediated, verdict) = match worst {
        None => (
            false,
            format!(
                "the runbook never ran: no signal matched its trigger within {}",
                humantime::format_duration(timeout)
            ),
        ),
        Some(RunState::Running | RunState::AwaitingApproval(_)) => {
            (false, "the run did not finish in time".into())
        }
        Some(RunState::Failed(why)) => (false, format!("failed: {why}")),
        Some(RunState::Partial(steps)) => (
            false,
            format!("partial, not remediated: {}", steps.join("; ")),
        ),
        Some(RunState::Stopped(why)) => (false, format!("did not remediate: {why}")),
        Some(RunState::Planned) => (true, "dry run: the plan is above; nothing changed".into()),
        Some(RunState::Reported) if noted || mode == Mode::DryRun => (
            true,
            "reported: the runbook wrote its report without changing the cluster".into(),
        ),
        Some(RunState::Reported) => (
            false,
            "did not remediate: the runbook asked for no change and wrote nothing".into(),
        ),
        Some(RunState::Remediated) => (
            true,
            "remediated: every step the runbook asked for was performed against the sim".into(),
        ),
    };
    let outcome = runs
        .iter()
        .map(|r| r.state.outcome())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ");
    Ok(RehearsalReport {
        runbook: name,
        scenario: scenario.to_string(),
        mode,
        signals: seen.into_iter().collect(),
        runs,
        mutating_requests: counters,
        timeline,
        outcome,
        remediated,
        verdict,
    })
}

/// The report as a person reads it.
pub fn render(r: &RehearsalReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rehearsal of {} against scenario {} ({} mode, simulated fleet)",
        r.runbook,
        r.scenario,
        r.mode.name()
    );
    let _ = writeln!(o, "\nSIGNALS ({})", r.signals.len());
    for s in r.signals.iter().take(20) {
        let _ = writeln!(o, "  {s}");
    }
    if r.signals.len() > 20 {
        let _ = writeln!(o, "  … {} more", r.signals.len() - 20);
    }
    for run in &r.runs {
        let _ = writeln!(o, "\nRUN {} on {} — {}", run.id, run.target, run.state);
        if !run.plan.is_empty() {
            let _ = writeln!(o, "  plan:");
            for p in &run.plan {
                let _ = writeln!(o, "    - {}", p.summary);
            }
        }
        for a in &run.actions {
            let _ = writeln!(o, "  action: {a}");
        }
    }
    let _ = writeln!(o, "\nTIMELINE");
    for e in &r.timeline {
        let _ = writeln!(
            o,
            "  #{:<4} {:<8} {:<30} {}",
            e.seq,
            e.entry.kind.name(),
            e.entry.actor.to_string(),
            e.entry.summary
        );
    }
    let _ = writeln!(o, "\nMUTATING REQUESTS SEEN BY THE SIM");
    let _ = writeln!(o, "  {}", r.mutating_requests);
    let _ = writeln!(o, "\n{}", r.verdict);
    o
}
