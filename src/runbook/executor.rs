//! The executor: matches firing signals to runbooks, runs each in the sandbox on a worker of
//! its bounded run pool (`pool`; a run that finds the queue full is refused on the incident's
//! timeline; its host API is `host`), and performs mutations — only with the guard's
//! `Clearance`, for a run or for a person's confirmed action — recording every decision,
//! approval and action on the incident's timeline. In approve mode a run first goes through
//! as a plan; the plan is what a person approves (`approvals`). Imports the rest of runbook,
//! actions, store, model and config.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::approvals::{Approvals, PendingApproval, RequestScope, Settled};
use super::engine::{Limits, Runbook};
use super::guard::{Clearance, Guard};
use super::host::{Pass, RunHost};
use super::meta::Mode;
use super::pool::RunPool;
use crate::actions::{self, ActionContext, ActionReport, Mutation};
use crate::model::Snapshot;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin, Verdict};
use crate::model::signal::Signal;
use crate::store::{JournalRecord, Store, memory::Cooldown};

/// Settings of the executor (from `[runbooks]` and the command line).
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub mode: Mode,
    pub revalidate_after: Duration,
    pub approval_timeout: Duration,
    pub limits: Limits,
    pub origin: Origin,
    /// Who acts: `host/pid`, or the Lease holder in headless mode.
    pub identity: String,
    /// Scales triggers' `held_for` (1.0; a rehearsal compresses time).
    pub held_for_scale: f64,
    /// Runs in progress at once (the pool's workers).
    pub max_concurrent_runs: usize,
    /// Runs waiting for a worker; one more is refused.
    pub max_queued_runs: usize,
    /// Where `notify(sink, …)` sends (`[notify.sinks]`); `None`: no sink is configured.
    pub notifier: Option<crate::notify::Notifier>,
    /// The model registry `rollback_model` moves aliases in (`[mlflow]`); `None`: none set.
    pub registry: Option<Arc<actions::ModelRegistry>>,
    /// The Airflow `airflow_clear` clears runs in (`[airflow]`); `None`: none set.
    pub airflow: Option<Arc<actions::AirflowWriter>>,
}

impl ExecutorConfig {
    pub fn from_config(cfg: &crate::config::RunbooksConfig, mode: Mode, origin: Origin) -> Self {
        Self {
            mode,
            revalidate_after: cfg.revalidate_after,
            approval_timeout: cfg.approval_timeout,
            limits: Limits {
                run_timeout: cfg.run_timeout,
                max_entries_per_run: cfg.max_entries_per_run as usize,
                ..Limits::default()
            },
            origin,
            identity: format!(
                "{}/{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "fleetdeck".into()),
                std::process::id()
            ),
            held_for_scale: 1.0,
            max_concurrent_runs: cfg.max_concurrent_runs as usize,
            max_queued_runs: cfg.max_queued_runs as usize,
            notifier: None,
            registry: None,
            airflow: None,
        }
    }
}

/// The model registry client of `[mlflow]` over `http` (the sources' client with the
/// configured CA roots, `sources::mlflow::registry_http`), its token read now; `None` when no
/// registry is set.
pub fn model_registry(
    cfg: &crate::config::MlflowConfig,
    http: impl FnOnce() -> Result<reqwest::Client, String>,
) -> Result<Option<Arc<actions::ModelRegistry>>, String> {
    if !cfg.enabled() {
        return Ok(None);
    }
    let token = cfg.read_token()?;
    Ok(Some(Arc::new(actions::ModelRegistry::with_client(
        &cfg.tracking_uri,
        token,
        http()?,
    ))))
}

/// One step of a plan: what would change, and the blast radius. Read back from the store's
/// approvals (a plan another replica asked to approve).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PlanStep {
    pub intent: Mutation,
    pub summary: String,
    /// Pods evicted, PDBs that would block, GPUs and gang jobs hit (drains).
    pub blast: serde_json::Value,
}

/// Where a run stands. A finished run is `remediated` only when every change it asked for was
/// made (or already held); a refused or failed step makes it `partial` (something was done) or
/// `failed` (nothing was), with each such step named, so no face reports success for a fault
/// that is still there.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum RunState {
    Running,
    AwaitingApproval(u64),
    /// Every change the run asked for was made or already held.
    Remediated,
    /// Some steps were done, the ones named were refused or failed.
    Partial(Vec<String>),
    /// It asked for no change: its notes and notifications are its work (a report).
    Reported,
    /// Dry run: every step it asked for was planned; nothing changed.
    Planned,
    /// Stopped before acting by the guard, a denial, a cooldown, a signal that stopped firing,
    /// or nothing to do: the reason.
    Stopped(String),
    /// The script erred, or no step it asked for could be done: why (each step named).
    Failed(String),
}

impl RunState {
    /// The one-word outcome every face shows and `/metrics` labels runs with.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AwaitingApproval(_) => "awaiting_approval",
            Self::Remediated => "remediated",
            Self::Partial(_) => "partial",
            Self::Reported => "reported",
            Self::Planned => "planned",
            Self::Stopped(_) => "stopped",
            Self::Failed(_) => "failed",
        }
    }

    /// Whether the run did all it set out to do (a rehearsal and `runbook run` exit 0).
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Remediated | Self::Reported | Self::Planned)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AwaitingApproval(id) => write!(f, "awaiting approval {id}"),
            Self::Partial(steps) => write!(f, "partial: {}", steps.join("; ")),
            Self::Stopped(why) => write!(f, "stopped: {why}"),
            Self::Failed(why) => write!(f, "failed: {why}"),
            other => f.write_str(other.outcome()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub runbook: String,
    pub cluster: String,
    pub target: String,
    pub signal: String,
    pub mode: Mode,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub state: RunState,
    pub plan: Vec<PlanStep>,
    /// One line per action performed.
    pub actions: Vec<String>,
    pub incident: Option<u64>,
}

const MAX_RUNS_KEPT: usize = 200;

pub(super) struct Inner {
    runbooks: Vec<Runbook>,
    pub(super) guard: Arc<Guard>,
    pub(super) store: Store,
    pub(super) clients: HashMap<String, kube::Client>,
    snapshot: Mutex<Arc<Snapshot>>,
    /// Dedup keys of the signals that already started runs while they keep firing, per runbook.
    fired: Mutex<HashSet<(String, String)>>,
    runs: Mutex<Vec<RunRecord>>,
    pub(super) approvals: Approvals,
    pub(super) cfg: ExecutorConfig,
    pub(super) rt: tokio::runtime::Handle,
    next_run: AtomicU64,
    /// Where runs execute; `None` when its threads could not be started (runs are refused).
    pool: Option<RunPool>,
    /// True once the process is stopping (SIGTERM): no run starts, and the actions of the runs
    /// in flight stop at their next safe point (see `ActionContext::stop`).
    stopping: tokio::sync::watch::Sender<bool>,
    /// (runbook, target group) → cluster of the runs the disruption budget refused: each is
    /// started again once its cluster's budget has room, while its signal still fires.
    waiting_budget: Mutex<HashMap<(String, String), String>>,
    /// Whether the last evaluation was this executor's to act on (it led): on a shared store
    /// the runs a previous leader left in flight are closed when leadership is gained, not at
    /// start (a follower's start must not close the live leader's runs).
    led: std::sync::atomic::AtomicBool,
}

/// A run the pool did not take: what its refusal on the timeline needs.
struct RefusedRun {
    id: String,
    runbook: String,
    signal: Signal,
    why: String,
}

/// Cheap to clone; runs work on the executor's own worker threads (see `pool`).
#[derive(Clone)]
pub struct Executor {
    pub(super) inner: Arc<Inner>,
}

impl Executor {
    /// Must be called inside a tokio runtime.
    /// The notifier runbooks' `notify` sends through, when sinks are configured.
    pub fn notifier(&self) -> Option<crate::notify::Notifier> {
        self.inner.cfg.notifier.clone()
    }

    pub fn new(
        runbooks: Vec<Runbook>,
        guard: Arc<Guard>,
        store: Store,
        clients: HashMap<String, kube::Client>,
        cfg: ExecutorConfig,
    ) -> Self {
        let pool = RunPool::new(
            "fleetdeck-run",
            cfg.max_concurrent_runs,
            cfg.max_queued_runs,
        )
        .map_err(|e| tracing::error!(error = %e, "cannot start the runbook workers: every run is refused"))
        .ok();
        let ex = Self {
            inner: Arc::new(Inner {
                approvals: Approvals::new(store.clone()),
                runbooks,
                guard,
                store,
                clients,
                snapshot: Mutex::new(Arc::new(Snapshot::default())),
                fired: Mutex::new(HashSet::new()),
                runs: Mutex::new(Vec::new()),
                cfg,
                rt: tokio::runtime::Handle::current(),
                next_run: AtomicU64::new(0),
                pool,
                stopping: tokio::sync::watch::Sender::new(false),
                waiting_budget: Mutex::new(HashMap::new()),
                led: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        if !ex.inner.store.is_shared() {
            ex.reconcile_journal();
        }
        ex
    }

    pub fn guard(&self) -> &Arc<Guard> {
        &self.inner.guard
    }

    pub fn runbooks(&self) -> &[Runbook] {
        &self.inner.runbooks
    }

    pub fn mode(&self) -> Mode {
        self.inner.cfg.mode
    }

    /// The process is stopping: no run starts from now on (the next leader starts them), and
    /// the runs in flight stop their actions at the next safe point, each reporting what it
    /// did and what it left. The caller waits for them (`runs()`) as long as it can.
    pub fn stop_runs(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Whether [`Self::stop_runs`] was called.
    pub fn stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// Runs of this process, newest last.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.inner
            .runs
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.inner.approvals.list()
    }

    /// The pending approvals this process's runs wait for (asked, or taken over): what a
    /// one-off run prompts for, never another process's request in the same store.
    pub fn awaiting_here(&self) -> Vec<PendingApproval> {
        let runs = self.runs();
        self.pending_approvals()
            .into_iter()
            .filter(|p| {
                runs.iter().any(|r| {
                    r.finished_at.is_none()
                        && (r.id == p.run || r.state == RunState::AwaitingApproval(p.id))
                })
            })
            .collect()
    }

    /// A person's verdict on a pending plan.
    pub fn decide(&self, id: u64, approve: bool, by: &str) -> Result<PendingApproval, String> {
        self.inner.approvals.decide(id, approve, by)
    }

    /// Why a run waiting for `approval` stops waiting and leaves it to the run after it: this
    /// process is stopping, or no longer leads; `None` while it may go on waiting.
    pub(super) fn leaves_approval(&self, approval: u64) -> Option<String> {
        if self.stopping() {
            return Some(format!(
                "fleetdeck is stopping (SIGTERM): approval {approval} stays pending for the next leader"
            ));
        }
        (!self.inner.guard.leading()).then(|| {
            format!(
                "this replica no longer leads: approval {approval} stays pending for the new leader"
            )
        })
    }

    /// Runs that a previous process left in flight are not resumed (the world has moved on);
    /// each is closed on its incident's timeline so the story has an end.
    fn reconcile_journal(&self) {
        let Ok(left) = self.inner.store.journal() else {
            return;
        };
        for j in left {
            // Its approval is in the store: the next run on the target takes it over.
            let after = if j.step.starts_with("awaiting approval") {
                format!(
                    "its approval stays pending, and the next run of {} on {} takes it over",
                    j.runbook, j.target
                )
            } else {
                format!("check {} before acting again", j.target)
            };
            let mut e = NewEntry::new(
                EntryKind::Decision,
                Actor::System,
                self.inner.cfg.origin,
                format!(
                    "run {} of runbook {} on {} was in flight at step \"{}\" when fleetdeck stopped; it is not resumed: {after}",
                    j.run, j.runbook, j.target, j.step
                ),
            );
            e.incident = j.incident;
            e.verdict = Some(Verdict::Refused);
            self.record(e);
            let _ = self.inner.store.journal_remove(&j.run);
        }
    }

    /// A follower's evaluation: the runs' picture kept fresh, nothing started, and leadership
    /// noted as lost (gaining it again closes what the leader between left in flight).
    pub fn follow(&self, snap: Arc<Snapshot>) {
        self.inner.led.store(false, Ordering::SeqCst);
        self.observe_snapshot_only(snap);
    }

    /// Gives the runs a fleet to look at without starting any (a manual run, a face warming
    /// up, a leader whose store is down).
    pub fn observe_snapshot_only(&self, snap: Arc<Snapshot>) {
        if let Ok(mut s) = self.inner.snapshot.lock() {
            *s = snap;
        }
    }

    /// A new snapshot with its signals evaluated: starts a run for each (runbook, signal) that
    /// began firing. Returns the ids of the runs started.
    pub fn observe(&self, snap: Arc<Snapshot>) -> Vec<String> {
        if let Ok(mut s) = self.inner.snapshot.lock() {
            *s = snap.clone();
        }
        // A stopping process starts nothing: what still fires is the next leader's to start.
        if self.stopping() {
            return Vec::new();
        }
        // Leadership of a shared store gained: what the previous leader left in flight is
        // closed before this one starts anything (a rare event; a few reads and writes).
        if self.inner.store.is_shared() && !self.inner.led.swap(true, Ordering::SeqCst) {
            self.reconcile_journal();
        }
        let mut started = Vec::new();
        let mut refused = Vec::new();
        let mut now_firing = HashSet::new();
        let now = Utc::now();
        // A run the disruption budget refused starts again once its cluster has room: the
        // key leaves `fired`, so the loop below sees its signal as fresh.
        if let Ok(mut waiting) = self.inner.waiting_budget.lock() {
            waiting.retain(|key, cluster| {
                let room = self.inner.guard.budget_has_room(&snap, cluster);
                if room && let Ok(mut f) = self.inner.fired.lock() {
                    f.remove(key);
                }
                !room
            });
        }
        // A clearing signal's condition has already stopped (it only waits out its
        // `clear_after` before it is gone): no run starts on it.
        for signal in snap.signals.iter().filter(|s| !s.is_clearing()) {
            // One run per runbook and incident group at a time: an XID storm over eight GPUs
            // of one node is one node to cordon, not eight runs.
            let group = crate::store::target_group(signal);
            for rb in self
                .inner
                .runbooks
                .iter()
                .filter(|r| r.meta.matches(signal))
            {
                let key = (rb.meta.name.clone(), group.clone());
                // A trigger that must hold for a while waits (not yet "fired").
                if let Some(held) = rb.meta.trigger_held_for
                    && (now - signal.first_seen).to_std().unwrap_or_default()
                        < held.mul_f64(self.inner.cfg.held_for_scale)
                {
                    continue;
                }
                now_firing.insert(key.clone());
                let fresh = self
                    .inner
                    .fired
                    .lock()
                    .map(|mut f| f.insert(key))
                    .unwrap_or(false);
                if fresh {
                    match self.submit(rb.clone(), signal.clone(), None) {
                        Ok(id) => started.push(id),
                        Err(r) => refused.push(*r),
                    }
                }
            }
        }
        if let Ok(mut f) = self.inner.fired.lock() {
            f.retain(|k| now_firing.contains(k));
        }
        if let Ok(mut w) = self.inner.waiting_budget.lock() {
            w.retain(|k, _| now_firing.contains(k));
        }
        self.refuse(refused);
        started
    }

    /// Queues one run for a worker; returns its id (a run refused because the queue is full
    /// ends at once, stopped, with the refusal on its incident's timeline).
    pub fn start(&self, rb: Runbook, signal: Signal, mode: Option<Mode>) -> String {
        match self.submit(rb, signal, mode) {
            Ok(id) => id,
            Err(r) => {
                let id = r.id.clone();
                self.refuse(vec![*r]);
                id
            }
        }
    }

    fn submit(
        &self,
        rb: Runbook,
        signal: Signal,
        mode: Option<Mode>,
    ) -> Result<String, Box<RefusedRun>> {
        let id = format!(
            "run-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S"),
            self.inner.next_run.fetch_add(1, Ordering::SeqCst) + 1
        );
        let refusal = RefusedRun {
            id: id.clone(),
            runbook: rb.meta.name.clone(),
            signal: signal.clone(),
            why: String::new(),
        };
        if self.stopping() {
            return Err(Box::new(RefusedRun {
                why: "fleetdeck is stopping (SIGTERM): no new runs; the next leader starts it"
                    .into(),
                ..refusal
            }));
        }
        let Some(pool) = &self.inner.pool else {
            return Err(Box::new(RefusedRun {
                why: "the runbook workers could not be started".into(),
                ..refusal
            }));
        };
        let (ex, run_id) = (self.clone(), id.clone());
        pool.submit(move || {
            ex.execute(&run_id, &rb, &signal, mode);
        })
        .map(|()| id)
        .map_err(|why| {
            Box::new(RefusedRun {
                why: why.to_string(),
                ..refusal
            })
        })
    }

    /// Closes runs the pool did not take: each is a stopped run and a refusal on its
    /// incident's timeline, written off the caller's thread (the evaluation loop's) in one go.
    fn refuse(&self, refused: Vec<RefusedRun>) {
        if refused.is_empty() {
            return;
        }
        let now = Utc::now();
        for r in &refused {
            self.put_run(RunRecord {
                id: r.id.clone(),
                runbook: r.runbook.clone(),
                cluster: r.signal.subject.cluster.clone(),
                target: r.signal.subject.describe(),
                signal: r.signal.dedup_key.clone(),
                mode: self.inner.cfg.mode,
                started_at: now,
                finished_at: Some(now),
                state: RunState::Stopped(format!("not started: {}", r.why)),
                plan: Vec::new(),
                actions: Vec::new(),
                incident: None,
            });
        }
        tracing::warn!(
            runs = refused.len(),
            why = %refused[0].why,
            "runbook runs refused"
        );
        let ex = self.clone();
        self.inner.rt.spawn_blocking(move || {
            for r in refused {
                let incident = ex
                    .inner
                    .store
                    .open_incident_for(&crate::store::incident_group(&r.signal))
                    .ok()
                    .flatten();
                let mut e = NewEntry::new(
                    EntryKind::Decision,
                    Actor::Runbook(r.runbook.clone()),
                    ex.inner.cfg.origin,
                    format!(
                        "runbook {} not started for {}: {}",
                        r.runbook, r.signal.summary, r.why
                    ),
                );
                e.incident = incident;
                e.verdict = Some(Verdict::Refused);
                e.subject = Some(r.signal.subject.clone());
                e.detail.insert("run".into(), r.id.clone().into());
                ex.record(e);
                ex.update_run(&r.id, |run| run.incident = incident);
            }
        });
    }

    /// Runs one runbook to its end on the calling (blocking) thread.
    pub fn execute(
        &self,
        id: &str,
        rb: &Runbook,
        signal: &Signal,
        mode: Option<Mode>,
    ) -> RunRecord {
        let inner = &self.inner;
        let global = mode.unwrap_or(inner.cfg.mode);
        let mode = rb.meta.effective_mode(global);
        let cluster = signal.subject.cluster.clone();
        let incident = inner
            .store
            .open_incident_for(&crate::store::incident_group(signal))
            .ok()
            .flatten();
        let record = RunRecord {
            id: id.to_string(),
            runbook: rb.meta.name.clone(),
            cluster: cluster.clone(),
            target: signal.subject.describe(),
            signal: signal.dedup_key.clone(),
            mode,
            started_at: Utc::now(),
            finished_at: None,
            state: RunState::Running,
            plan: Vec::new(),
            actions: Vec::new(),
            incident,
        };
        self.put_run(record.clone());
        let cooldown_key = format!("{}:{}", rb.meta.name, crate::store::target_group(signal));
        if let Ok(Some(c)) = inner.store.cooldown(&cooldown_key, Utc::now()) {
            let why = format!(
                "runbook {} is cooling down on {} until {} (set by {})",
                rb.meta.name,
                signal.subject.describe(),
                c.until.format("%H:%M:%SZ"),
                c.by
            );
            self.decision(
                incident,
                rb,
                &signal.subject,
                Verdict::Refused,
                why.clone(),
                None,
            );
            return self.finish(id, RunState::Stopped(why));
        }
        let _ = inner.store.journal_put(&JournalRecord {
            run: id.to_string(),
            runbook: rb.meta.name.clone(),
            target: signal.subject.describe(),
            incident,
            started_at: record.started_at,
            updated_at: Utc::now(),
            step: "started".into(),
            state: serde_json::json!({ "signal": signal.dedup_key, "mode": mode.name() }),
        });
        self.decision(
            incident,
            rb,
            &signal.subject,
            Verdict::Allowed,
            format!(
                "runbook {} started for {} ({} mode)",
                rb.meta.name,
                signal.summary,
                mode.name()
            ),
            Some(serde_json::json!({ "run": id, "signal": signal.dedup_key })),
        );
        let state = self.run_passes(id, rb, signal, mode, incident);
        let _ = inner.store.journal_remove(id);
        // A partial run changed the cluster too: running it again at once would repeat what
        // was done and be refused again for the same reason.
        if matches!(
            state,
            RunState::Remediated | RunState::Reported | RunState::Planned | RunState::Partial(_)
        ) {
            let _ = inner.store.set_cooldown(
                &cooldown_key,
                Cooldown {
                    until: Utc::now()
                        + chrono::Duration::from_std(rb.meta.cooldown)
                            .unwrap_or(chrono::Duration::minutes(30)),
                    by: rb.meta.name.clone(),
                },
            );
        }
        let summary = match &state {
            RunState::Running | RunState::AwaitingApproval(_) => {
                format!("runbook {} ended", rb.meta.name)
            }
            other => format!("runbook {} {other}", rb.meta.name),
        };
        let verdict = match state {
            RunState::Failed(_) | RunState::Stopped(_) | RunState::Partial(_) => Verdict::Refused,
            _ => Verdict::Allowed,
        };
        self.decision(
            incident,
            rb,
            &signal.subject,
            verdict,
            summary,
            Some(serde_json::json!({ "run": id, "outcome": state.outcome() })),
        );
        // Refused for the disruption budget: not a fault of the node, only a matter of
        // waiting; the incident says so, and the run starts again once the budget has room.
        if matches!(
            &state,
            RunState::Failed(_) | RunState::Partial(_) | RunState::Stopped(_)
        ) && state.to_string().contains("disruption budget")
        {
            if let Ok(mut w) = inner.waiting_budget.lock() {
                w.insert(
                    (rb.meta.name.clone(), crate::store::target_group(signal)),
                    cluster.clone(),
                );
            }
            self.decision(
                incident,
                rb,
                &signal.subject,
                Verdict::Pending,
                format!(
                    "runbook {} waits for the disruption budget of cluster {cluster}: it runs again on {} once a node is back in service, while {} still fires",
                    rb.meta.name,
                    signal.subject.describe(),
                    signal.kind
                ),
                Some(serde_json::json!({ "run": id, "waiting_for": "disruption_budget" })),
            );
        }
        self.finish(id, state)
    }

    fn run_passes(
        &self,
        id: &str,
        rb: &Runbook,
        signal: &Signal,
        mode: Mode,
        incident: Option<u64>,
    ) -> RunState {
        let inner = &self.inner;
        if mode == Mode::Approve {
            // The plan pass: what the run would do, for a person to approve.
            let planner = Arc::new(RunHost::new(self, id, rb, signal, Pass::Plan, incident));
            if let Err(e) = rb.run(planner.clone(), signal, &inner.cfg.limits) {
                return RunState::Failed(e.to_string());
            }
            let plan = planner.plan();
            if plan.is_empty() {
                // A plan the guard refused is a refusal, as it is in auto mode (the budget,
                // the kill switch): only a plan with nothing refused changes nothing.
                return match planner.outcome() {
                    s @ (RunState::Failed(_) | RunState::Partial(_) | RunState::Stopped(_)) => s,
                    _ => RunState::Stopped("the plan changes nothing".into()),
                };
            }
            self.update_run(id, |r| r.plan = plan.clone());
            let reason = format!(
                "{} asks to {}",
                rb.meta.name,
                plan.iter()
                    .map(|s| s.summary.clone())
                    .collect::<Vec<_>>()
                    .join("; then ")
            );
            // A run before this one (a leader that died, a process that restarted) may have
            // asked already: this run waits for that approval rather than asking again, so
            // the person sees one request and its grant is acted on once.
            let group = crate::store::target_group(signal);
            let approval = match inner.approvals.open_for(&rb.meta.name, &group) {
                Some(open) => {
                    let mut e = NewEntry::new(
                        EntryKind::Decision,
                        Actor::Runbook(rb.meta.name.clone()),
                        inner.cfg.origin,
                        format!(
                            "approval {} (asked by run {}) is taken over by run {id}: {}",
                            open.id, open.run, open.reason
                        ),
                    );
                    e.incident = incident;
                    e.subject = Some(signal.subject.clone());
                    e.verdict = Some(Verdict::Pending);
                    e.detail.insert("approval".into(), open.id.into());
                    self.record(e);
                    open.id
                }
                None => {
                    let asked = inner.approvals.request(
                        PendingApproval {
                            id: 0,
                            run: id.to_string(),
                            runbook: rb.meta.name.clone(),
                            cluster: signal.subject.cluster.clone(),
                            reason: reason.clone(),
                            plan: plan.clone(),
                            requested_at: Utc::now(),
                        },
                        RequestScope {
                            group: &group,
                            target: &signal.subject.describe(),
                            incident,
                            timeout: inner.cfg.approval_timeout,
                        },
                    );
                    let approval = match asked {
                        Ok(approval) => approval,
                        Err(why) => {
                            return RunState::Failed(format!(
                                "the approval request could not be recorded ({why}): the plan is not performed without it"
                            ));
                        }
                    };
                    let mut e = NewEntry::new(
                        EntryKind::Decision,
                        Actor::Runbook(rb.meta.name.clone()),
                        inner.cfg.origin,
                        format!("approval {approval} requested: {reason}"),
                    );
                    e.incident = incident;
                    e.subject = Some(signal.subject.clone());
                    e.verdict = Some(Verdict::Pending);
                    e.detail.insert(
                        "plan".into(),
                        serde_json::to_value(&plan).unwrap_or_default(),
                    );
                    self.record(e);
                    approval
                }
            };
            self.update_run(id, |r| r.state = RunState::AwaitingApproval(approval));
            let _ = inner.store.journal_put(&JournalRecord {
                run: id.to_string(),
                runbook: rb.meta.name.clone(),
                target: signal.subject.describe(),
                incident,
                started_at: Utc::now(),
                updated_at: Utc::now(),
                step: format!("awaiting approval {approval}"),
                state: serde_json::json!({ "plan": plan, "approval": approval }),
            });
            let leave = || self.leaves_approval(approval);
            let (approved, by) = match inner.approvals.settle(approval, id, &leave) {
                Settled::Verdict(approved, by) => (approved, by),
                Settled::Left(why) => return RunState::Stopped(why),
            };
            let actor = if by == "timeout" {
                Actor::System
            } else {
                Actor::User(by.clone())
            };
            let mut e = NewEntry::new(
                EntryKind::Approval,
                actor,
                inner.cfg.origin,
                if approved {
                    format!("approval {approval} granted by {by}")
                } else if by == "timeout" {
                    format!(
                        "approval {approval} expired after {}",
                        humantime::format_duration(inner.cfg.approval_timeout)
                    )
                } else {
                    format!("approval {approval} denied by {by}")
                },
            );
            e.incident = incident;
            e.subject = Some(signal.subject.clone());
            e.verdict = Some(if approved {
                Verdict::Approved
            } else {
                Verdict::Denied
            });
            self.record(e);
            self.update_run(id, |r| r.state = RunState::Running);
            if !approved {
                return RunState::Stopped(format!("the plan was not approved ({by})"));
            }
            return self.one_pass(id, rb, signal, Pass::Act, incident);
        }
        let pass = if mode == Mode::DryRun {
            Pass::DryRun
        } else {
            Pass::Act
        };
        self.one_pass(id, rb, signal, pass, incident)
    }

    fn one_pass(
        &self,
        id: &str,
        rb: &Runbook,
        signal: &Signal,
        pass: Pass,
        incident: Option<u64>,
    ) -> RunState {
        let host = Arc::new(RunHost::new(self, id, rb, signal, pass, incident));
        let ran = rb.run(host.clone(), signal, &self.inner.cfg.limits);
        if pass == Pass::DryRun {
            let plan = host.plan();
            self.update_run(id, |r| r.plan = plan);
        }
        match ran {
            Ok(_) => host.outcome(),
            Err(e) => host.failed(e.to_string()),
        }
    }

    /// A decision of this executor's about a run on `subject` (the run's signal's): started,
    /// refused, failed, waiting. It carries the subject, so the leader's Kubernetes Event for
    /// it lands on the node or object the run is about.
    fn decision(
        &self,
        incident: Option<u64>,
        rb: &Runbook,
        subject: &crate::model::signal::Subject,
        verdict: Verdict,
        summary: String,
        detail: Option<serde_json::Value>,
    ) {
        let mut e = NewEntry::new(
            EntryKind::Decision,
            Actor::Runbook(rb.meta.name.clone()),
            self.inner.cfg.origin,
            summary,
        );
        e.incident = incident;
        e.subject = Some(subject.clone());
        e.verdict = Some(verdict);
        if let Some(serde_json::Value::Object(m)) = detail {
            e.detail.extend(m);
        }
        self.record(e);
    }

    /// Appends to the timeline; a store that fails is logged, the run goes on (its actions
    /// still happened and the cluster is the record of them).
    pub(super) fn record(&self, e: NewEntry) {
        if let Err(err) = self.inner.store.append(e) {
            tracing::error!(error = %err, "cannot write to the incident timeline");
        }
    }

    fn put_run(&self, r: RunRecord) {
        if let Ok(mut runs) = self.inner.runs.lock() {
            runs.push(r);
            // The oldest finished runs go first: a flood of refusals must not hide the runs
            // still in progress.
            while runs.len() > MAX_RUNS_KEPT {
                let oldest = runs.iter().position(|r| r.finished_at.is_some());
                runs.remove(oldest.unwrap_or(0));
            }
        }
    }

    pub(super) fn update_run(&self, id: &str, f: impl FnOnce(&mut RunRecord)) {
        if let Ok(mut runs) = self.inner.runs.lock()
            && let Some(r) = runs.iter_mut().rev().find(|r| r.id == id)
        {
            f(r);
        }
    }

    fn finish(&self, id: &str, state: RunState) -> RunRecord {
        let mut out = None;
        self.update_run(id, |r| {
            r.state = state.clone();
            r.finished_at = Some(Utc::now());
            out = Some(r.clone());
        });
        out.unwrap_or_else(|| RunRecord {
            id: id.into(),
            runbook: String::new(),
            cluster: String::new(),
            target: String::new(),
            signal: String::new(),
            mode: Mode::DryRun,
            started_at: Utc::now(),
            finished_at: Some(Utc::now()),
            state,
            plan: Vec::new(),
            actions: Vec::new(),
            incident: None,
        })
    }

    /// The latest evaluated snapshot the pipeline handed it (the daemon's plan of a person's
    /// action reads its cluster's disruption from it, as the cockpit's does from its own).
    pub fn latest(&self) -> Arc<Snapshot> {
        self.inner
            .snapshot
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn context(&self, cluster: &str, dry_run: bool) -> Result<ActionContext, String> {
        let client = self.inner.clients.get(cluster).cloned().ok_or_else(|| {
            format!("no client for cluster {cluster}: it is not among the watched contexts")
        })?;
        Ok(ActionContext::new(client, cluster)
            .with_dry_run(dry_run)
            .with_registry(self.inner.cfg.registry.clone())
            .with_airflow(self.inner.cfg.airflow.clone())
            .with_stop(self.inner.stopping.subscribe()))
    }

    /// The context `mutation` is performed in: its own cluster's (a model rollback's serving
    /// object), else `cluster`'s; a change only the registry sees, when `cluster` has no
    /// client, takes the first watched cluster's (by name), which it does not use.
    fn context_for(
        &self,
        cluster: &str,
        mutation: &Mutation,
        dry_run: bool,
    ) -> Result<ActionContext, String> {
        let cluster = mutation.cluster().unwrap_or(cluster);
        match self.context(cluster, dry_run) {
            Err(_) if mutation.registry_only() => {
                let (name, client) = self.inner.clients.iter().min_by_key(|(n, _)| *n).ok_or_else(|| {
                    "no cluster client at all to perform with: is any kubeconfig context watched?"
                        .to_string()
                })?;
                Ok(ActionContext::new(client.clone(), name.clone())
                    .with_dry_run(dry_run)
                    .with_registry(self.inner.cfg.registry.clone())
                    .with_airflow(self.inner.cfg.airflow.clone())
                    .with_stop(self.inner.stopping.subscribe()))
            }
            other => other,
        }
    }

    /// What a mutation would do, for a plan or a confirmation: its summary and blast radius.
    pub fn preview(&self, cluster: &str, mutation: &Mutation) -> PlanStep {
        let (summary, blast) = match mutation {
            Mutation::Drain { node, options } => match self.context(cluster, true) {
                Ok(ctx) => {
                    let opts = options.options(None);
                    match self
                        .inner
                        .rt
                        .block_on(actions::plan_drain(&ctx, node, &opts))
                    {
                        Ok(plan) => (
                            plan.summary(),
                            serde_json::json!({
                                "pods_evicted": plan.evict.iter().map(|p| p.key()).collect::<Vec<_>>(),
                                "pdbs_blocking": plan.pdbs.iter().filter(|p| p.blocks_now).map(|p| p.pdb.clone()).collect::<Vec<_>>(),
                                "gpus": plan.gpus_freed,
                                "gang_jobs": plan.gangs.iter().map(|g| g.job.clone()).collect::<Vec<_>>(),
                                "refused": plan.is_refused().then(|| plan.refusal()),
                            }),
                        ),
                        Err(e) => (
                            format!("drain node {node} (plan unavailable: {e})"),
                            serde_json::Value::Null,
                        ),
                    }
                }
                Err(e) => (format!("drain node {node} ({e})"), serde_json::Value::Null),
            },
            Mutation::Scale {
                namespace,
                name,
                replicas,
            } => {
                let snap = self.latest();
                let current = snap
                    .deployment(cluster, namespace, name)
                    .map(|d| d.replicas);
                let summary = match current {
                    Some(now) if now > *replicas => format!(
                        "scale deployment/{namespace}/{name} down from {now} to {replicas} replicas: {} pod(s) will be removed",
                        now - replicas
                    ),
                    Some(now) => format!(
                        "scale deployment/{namespace}/{name} from {now} to {replicas} replicas"
                    ),
                    None => format!("scale deployment/{namespace}/{name} to {replicas} replicas"),
                };
                (summary, serde_json::Value::Null)
            }
            Mutation::RollbackModel(r) => {
                let snap = self.latest();
                let view = snap
                    .model_of(&r.endpoint)
                    .filter(|v| v.model == r.model && v.alias == r.alias);
                let from = view.and_then(|v| v.version);
                let to = r
                    .to_version
                    .or_else(|| view.and_then(|v| v.previous_version()));
                let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
                let serving = r.serving.as_ref().map_or(String::new(), |s| {
                    format!(
                        ", and {}/{}/{} where it pins the model's URI",
                        s.kind.to_ascii_lowercase(),
                        s.namespace,
                        s.name
                    )
                });
                (
                    format!(
                        "move alias {} of registered model {} from version {} to {} (endpoint {}){serving}",
                        r.alias,
                        r.model,
                        show(from),
                        show(to),
                        r.endpoint
                    ),
                    serde_json::json!({"model": r.model, "alias": r.alias, "from": from, "to": to}),
                )
            }
            other => (
                format!("{} {}", other.verb(), other.target()),
                serde_json::Value::Null,
            ),
        };
        PlanStep {
            intent: mutation.clone(),
            summary,
            blast,
        }
    }

    /// Performs the one mutation the guard cleared, in the cluster it cleared it for; a drain
    /// asked to force past a deadline gets `force_past`. Nothing reaches `actions` any other
    /// way: a `Clearance` comes only from the guard (`Guard::check` for a run,
    /// `Guard::clear_person` in [`Self::manual`]).
    pub(super) fn perform(
        &self,
        clearance: &Clearance,
        force_past: Option<DateTime<Utc>>,
    ) -> Result<ActionReport, String> {
        // A stopping process starts no change: between two actions is a safe point, and the
        // runtime the action would run on is about to go.
        if self.stopping() {
            return Err(format!(
                "{} {} not started: fleetdeck is stopping (SIGTERM)",
                clearance.mutation().verb(),
                clearance.mutation().target()
            ));
        }
        let ctx = self.context_for(clearance.cluster(), clearance.mutation(), false)?;
        self.inner
            .rt
            .block_on(clearance.mutation().perform(&ctx, force_past))
            .map_err(|e| e.to_string())
    }

    /// A person's action from the cockpit (already confirmed): read-only still applies; the
    /// kill switch, budgets and modes govern automation, not people. Recorded as theirs,
    /// failures included.
    pub fn manual(
        &self,
        cluster: &str,
        mutation: &Mutation,
        user: &str,
        incident: Option<u64>,
    ) -> Result<ActionReport, String> {
        let inner = &self.inner;
        // A model's alias history names the person who moved it.
        let mut mutation = mutation.clone();
        if let Mutation::RollbackModel(r) = &mut mutation {
            r.by = format!("user {user} (fleetdeck {})", inner.cfg.identity);
        }
        let mutation = &mutation;
        let clearance = match inner.guard.clear_person(cluster, mutation) {
            Ok(c) => c,
            Err(why) => {
                let mut e = NewEntry::new(
                    EntryKind::Decision,
                    Actor::User(user.into()),
                    inner.cfg.origin,
                    format!("{} {} refused: {why}", mutation.verb(), mutation.target()),
                );
                e.incident = incident;
                e.verdict = Some(Verdict::Refused);
                self.record(e);
                return Err(why);
            }
        };
        let report = match self.perform(&clearance, None) {
            Ok(r) => r,
            Err(why) => {
                let mut e = NewEntry::new(
                    EntryKind::Action,
                    Actor::User(user.into()),
                    inner.cfg.origin,
                    format!("{} {} failed: {why}", mutation.verb(), mutation.target()),
                );
                e.incident = incident;
                e.detail.insert("outcome".into(), "failed".into());
                self.record(e);
                return Err(why);
            }
        };
        let mut e = report.to_entry(Actor::User(user.into()), inner.cfg.origin);
        e.incident = incident;
        self.record(e);
        Ok(report)
    }
}
