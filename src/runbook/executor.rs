//! The executor: matches firing signals to runbooks, runs each in the sandbox on a blocking
//! thread, and answers the runbook's requests — every mutation through the guard, then
//! `actions` — recording every decision, approval and action on the incident's timeline.
//! In approve mode a run first goes through as a plan; the plan is what a person approves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::engine::{DrainRequest, Host, Intent, Limits, Runbook};
use super::guard::{Decision, Guard, target_of, verb_of};
use super::meta::Mode;
use crate::actions::{self, ActionContext, ActionReport};
use crate::model::Snapshot;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin, Verdict};
use crate::model::signal::Signal;
use crate::store::{Claim, JournalRecord, Store, memory::Cooldown};

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
}

impl ExecutorConfig {
    pub fn from_config(cfg: &crate::config::RunbooksConfig, mode: Mode, origin: Origin) -> Self {
        Self {
            mode,
            revalidate_after: cfg.revalidate_after,
            approval_timeout: cfg.approval_timeout,
            limits: Limits::default(),
            origin,
            identity: format!(
                "{}/{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "fleetdeck".into()),
                std::process::id()
            ),
            held_for_scale: 1.0,
        }
    }
}

/// One step of a plan: what would change, and the blast radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    pub intent: Intent,
    pub summary: String,
    /// Pods evicted, PDBs that would block, GPUs and gang jobs hit (drains).
    pub blast: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum RunState {
    Running,
    AwaitingApproval(u64),
    Done,
    /// Stopped by the guard, a denial, or nothing to do: the reason.
    Stopped(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// A plan waiting for a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingApproval {
    pub id: u64,
    pub run: String,
    pub runbook: String,
    pub cluster: String,
    pub reason: String,
    pub plan: Vec<PlanStep>,
    pub requested_at: DateTime<Utc>,
}

/// A person's verdict: approved or not, and who.
type PersonVerdict = Option<(bool, String)>;

#[derive(Default)]
struct Approvals {
    pending: Mutex<BTreeMap<u64, (PendingApproval, PersonVerdict)>>,
    decided: Condvar,
    next: AtomicU64,
}

impl Approvals {
    fn request(&self, mut p: PendingApproval) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        p.id = id;
        if let Ok(mut m) = self.pending.lock() {
            m.insert(id, (p, None));
        }
        id
    }

    /// Waits for a verdict: `Some((approved, by))`, or `None` after `timeout`.
    fn wait(&self, id: u64, timeout: Duration) -> Option<(bool, String)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut m = self.pending.lock().ok()?;
        loop {
            if let Some((_, Some(v))) = m.get(&id) {
                let v = v.clone();
                m.remove(&id);
                return Some(v);
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            m = self.decided.wait_timeout(m, left).ok()?.0;
        }
    }

    fn decide(&self, id: u64, approve: bool, by: &str) -> Result<PendingApproval, String> {
        let mut m = self
            .pending
            .lock()
            .map_err(|_| "approvals poisoned".to_string())?;
        match m.get_mut(&id) {
            Some((p, v @ None)) => {
                *v = Some((approve, by.to_string()));
                let p = p.clone();
                drop(m);
                self.decided.notify_all();
                Ok(p)
            }
            Some((_, Some(_))) => Err(format!("approval {id} was already decided")),
            None => Err(format!("there is no pending approval {id}")),
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut m) = self.pending.lock() {
            m.remove(&id);
        }
    }

    fn list(&self) -> Vec<PendingApproval> {
        self.pending
            .lock()
            .map(|m| {
                m.values()
                    .filter(|(_, v)| v.is_none())
                    .map(|(p, _)| p.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

const MAX_RUNS_KEPT: usize = 200;

struct Inner {
    runbooks: Vec<Runbook>,
    guard: Arc<Guard>,
    store: Store,
    clients: HashMap<String, kube::Client>,
    snapshot: Mutex<Arc<Snapshot>>,
    /// Dedup keys of the signals that already started runs while they keep firing, per runbook.
    fired: Mutex<HashSet<(String, String)>>,
    runs: Mutex<Vec<RunRecord>>,
    approvals: Approvals,
    cfg: ExecutorConfig,
    rt: tokio::runtime::Handle,
    next_run: AtomicU64,
}

/// Cheap to clone; runs work on blocking threads of the runtime it was built in.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl Executor {
    /// Must be called inside a tokio runtime.
    pub fn new(
        runbooks: Vec<Runbook>,
        guard: Arc<Guard>,
        store: Store,
        clients: HashMap<String, kube::Client>,
        cfg: ExecutorConfig,
    ) -> Self {
        let ex = Self {
            inner: Arc::new(Inner {
                runbooks,
                guard,
                store,
                clients,
                snapshot: Mutex::new(Arc::new(Snapshot::default())),
                fired: Mutex::new(HashSet::new()),
                runs: Mutex::new(Vec::new()),
                approvals: Approvals::default(),
                cfg,
                rt: tokio::runtime::Handle::current(),
                next_run: AtomicU64::new(0),
            }),
        };
        ex.reconcile_journal();
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

    /// A person's verdict on a pending plan.
    pub fn decide(&self, id: u64, approve: bool, by: &str) -> Result<PendingApproval, String> {
        self.inner.approvals.decide(id, approve, by)
    }

    /// Runs that a previous process left in flight are not resumed (the world has moved on);
    /// each is closed on its incident's timeline so the story has an end.
    fn reconcile_journal(&self) {
        let Ok(left) = self.inner.store.journal() else {
            return;
        };
        for j in left {
            let mut e = NewEntry::new(
                EntryKind::Decision,
                Actor::System,
                self.inner.cfg.origin,
                format!(
                    "run {} of runbook {} on {} was in flight at step \"{}\" when fleetdeck stopped; it is not resumed: check {} before acting again",
                    j.run, j.runbook, j.target, j.step, j.target
                ),
            );
            e.incident = j.incident;
            e.verdict = Some(Verdict::Refused);
            self.record(e);
            let _ = self.inner.store.journal_remove(&j.run);
        }
    }

    /// Gives the runs a fleet to look at without starting any (a manual run).
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
        let mut started = Vec::new();
        let mut now_firing = HashSet::new();
        let now = Utc::now();
        for signal in &snap.signals {
            // One run per runbook and incident group at a time: an XID storm over eight GPUs
            // of one node is one node to cordon, not eight runs.
            let group = crate::store::incident_group(signal);
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
                    started.push(self.start(rb.clone(), signal.clone(), None));
                }
            }
        }
        if let Ok(mut f) = self.inner.fired.lock() {
            f.retain(|k| now_firing.contains(k));
        }
        started
    }

    /// Starts one run on a blocking thread; returns its id.
    pub fn start(&self, rb: Runbook, signal: Signal, mode: Option<Mode>) -> String {
        let id = format!(
            "run-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S"),
            self.inner.next_run.fetch_add(1, Ordering::SeqCst) + 1
        );
        let ex = self.clone();
        let run_id = id.clone();
        self.inner
            .rt
            .spawn_blocking(move || ex.execute(&run_id, &rb, &signal, mode));
        id
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
        let cooldown_key = format!("{}:{}", rb.meta.name, crate::store::incident_group(signal));
        if let Ok(Some(c)) = inner.store.cooldown(&cooldown_key, Utc::now()) {
            let why = format!(
                "runbook {} is cooling down on {} until {} (set by {})",
                rb.meta.name,
                signal.subject.describe(),
                c.until.format("%H:%M:%SZ"),
                c.by
            );
            self.decision(incident, rb, Verdict::Refused, why.clone(), None);
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
        if matches!(state, RunState::Done) {
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
            RunState::Done => format!("runbook {} finished", rb.meta.name),
            RunState::Stopped(why) => format!("runbook {} stopped: {why}", rb.meta.name),
            RunState::Failed(why) => format!("runbook {} failed: {why}", rb.meta.name),
            RunState::Running | RunState::AwaitingApproval(_) => {
                format!("runbook {} ended", rb.meta.name)
            }
        };
        let verdict = match state {
            RunState::Failed(_) | RunState::Stopped(_) => Verdict::Refused,
            _ => Verdict::Allowed,
        };
        self.decision(
            incident,
            rb,
            verdict,
            summary,
            Some(serde_json::json!({ "run": id })),
        );
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
                return RunState::Stopped("the plan changes nothing".into());
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
            let approval = inner.approvals.request(PendingApproval {
                id: 0,
                run: id.to_string(),
                runbook: rb.meta.name.clone(),
                cluster: signal.subject.cluster.clone(),
                reason: reason.clone(),
                plan: plan.clone(),
                requested_at: Utc::now(),
            });
            self.update_run(id, |r| r.state = RunState::AwaitingApproval(approval));
            let mut e = NewEntry::new(
                EntryKind::Decision,
                Actor::Runbook(rb.meta.name.clone()),
                inner.cfg.origin,
                format!("approval {approval} requested: {reason}"),
            );
            e.incident = incident;
            e.verdict = Some(Verdict::Pending);
            e.detail.insert(
                "plan".into(),
                serde_json::to_value(&plan).unwrap_or_default(),
            );
            self.record(e);
            let _ = inner.store.journal_put(&JournalRecord {
                run: id.to_string(),
                runbook: rb.meta.name.clone(),
                target: signal.subject.describe(),
                incident,
                started_at: Utc::now(),
                updated_at: Utc::now(),
                step: format!("awaiting approval {approval}"),
                state: serde_json::json!({ "plan": plan }),
            });
            let verdict = inner.approvals.wait(approval, inner.cfg.approval_timeout);
            inner.approvals.forget(approval);
            let (approved, by) = match verdict {
                Some(v) => v,
                None => (false, "timeout".into()),
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
        match rb.run(host.clone(), signal, &self.inner.cfg.limits) {
            Ok(_) => {
                if pass == Pass::DryRun {
                    let plan = host.plan();
                    self.update_run(id, |r| r.plan = plan);
                }
                RunState::Done
            }
            Err(e) => RunState::Failed(e.to_string()),
        }
    }

    fn decision(
        &self,
        incident: Option<u64>,
        rb: &Runbook,
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
        e.verdict = Some(verdict);
        if let Some(serde_json::Value::Object(m)) = detail {
            e.detail.extend(m);
        }
        self.record(e);
    }

    /// Appends to the timeline; a store that fails is logged, the run goes on (its actions
    /// still happened and the cluster is the record of them).
    fn record(&self, e: NewEntry) {
        if let Err(err) = self.inner.store.append(e) {
            tracing::error!(error = %err, "cannot write to the incident timeline");
        }
    }

    fn put_run(&self, r: RunRecord) {
        if let Ok(mut runs) = self.inner.runs.lock() {
            runs.push(r);
            let excess = runs.len().saturating_sub(MAX_RUNS_KEPT);
            runs.drain(..excess);
        }
    }

    fn update_run(&self, id: &str, f: impl FnOnce(&mut RunRecord)) {
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

    fn latest(&self) -> Arc<Snapshot> {
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
        Ok(ActionContext::new(client, cluster).with_dry_run(dry_run))
    }

    /// What a mutation would do, for a plan or a confirmation: its summary and blast radius.
    pub fn preview(&self, cluster: &str, intent: &Intent) -> PlanStep {
        let (summary, blast) = match intent {
            Intent::Drain { node, options } => match self.context(cluster, true) {
                Ok(ctx) => {
                    let opts = drain_options(options);
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
            other => (
                format!("{} {}", verb_of(other), target_of(other)),
                serde_json::Value::Null,
            ),
        };
        PlanStep {
            intent: intent.clone(),
            summary,
            blast,
        }
    }

    /// Performs one mutation (after the guard allowed it).
    pub fn perform(&self, cluster: &str, intent: &Intent) -> Result<ActionReport, String> {
        self.perform_with(cluster, intent, None)
    }

    /// As `perform`; a drain asked to force past a deadline gets `force_past`.
    fn perform_with(
        &self,
        cluster: &str,
        intent: &Intent,
        force_past: Option<DateTime<Utc>>,
    ) -> Result<ActionReport, String> {
        let ctx = self.context(cluster, false)?;
        let rt = &self.inner.rt;
        let r = match intent {
            Intent::Cordon { node } => rt.block_on(actions::cordon(&ctx, node)),
            Intent::Uncordon { node } => rt.block_on(actions::uncordon(&ctx, node)),
            Intent::Drain { node, options } => {
                let mut opts = drain_options(options);
                opts.force_past = force_past;
                rt.block_on(actions::drain(&ctx, node, &opts))
            }
            Intent::Rollback {
                namespace,
                name,
                revision,
            } => rt.block_on(actions::rollback_deployment(
                &ctx,
                namespace,
                name,
                revision.and_then(|r| u64::try_from(r).ok()),
            )),
            Intent::RollbackInferenceService { namespace, name } => {
                rt.block_on(actions::rollback_inference_service(&ctx, namespace, name))
            }
            Intent::Scale {
                namespace,
                name,
                replicas,
            } => rt.block_on(actions::scale(
                &ctx,
                actions::ObjectKind::Deployment,
                namespace,
                name,
                u32::try_from(*replicas)
                    .map_err(|_| format!("replicas {replicas} is not a count"))?,
            )),
            Intent::Taint {
                node,
                key,
                value,
                effect,
            } => {
                let effect = match effect.as_str() {
                    "NoSchedule" => actions::TaintEffect::NoSchedule,
                    "PreferNoSchedule" => actions::TaintEffect::PreferNoSchedule,
                    "NoExecute" => actions::TaintEffect::NoExecute,
                    other => {
                        return Err(format!(
                            "taint effect {other:?} is not NoSchedule, PreferNoSchedule or NoExecute"
                        ));
                    }
                };
                let value = (!value.is_empty()).then_some(value.as_str());
                rt.block_on(actions::taint(&ctx, node, key, value, effect))
            }
            Intent::Untaint { node, key } => rt.block_on(actions::untaint(&ctx, node, key, None)),
            Intent::Annotate {
                kind,
                namespace,
                name,
                key,
                value,
            } => {
                let kind = match kind.to_ascii_lowercase().as_str() {
                    "node" => actions::ObjectKind::Node,
                    "pod" => actions::ObjectKind::Pod,
                    "deployment" => actions::ObjectKind::Deployment,
                    "inferenceservice" => actions::ObjectKind::InferenceService,
                    other => return Err(format!("cannot annotate a {other}")),
                };
                let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                rt.block_on(actions::annotate(
                    &ctx,
                    kind,
                    ns,
                    name,
                    key,
                    value.as_deref(),
                ))
            }
        };
        r.map_err(|e| e.to_string())
    }

    /// A person's action from the cockpit (already confirmed): read-only still applies; the
    /// kill switch, budgets and modes govern automation, not people. Recorded as theirs,
    /// failures included.
    pub fn manual(
        &self,
        cluster: &str,
        intent: &Intent,
        user: &str,
        incident: Option<u64>,
    ) -> Result<ActionReport, String> {
        let inner = &self.inner;
        let refusal = if inner.guard.read_only {
            Some("fleetdeck runs read-only (--read-only): every mutation is forbidden".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            let mut e = NewEntry::new(
                EntryKind::Decision,
                Actor::User(user.into()),
                inner.cfg.origin,
                format!("{} {} refused: {why}", verb_of(intent), target_of(intent)),
            );
            e.incident = incident;
            e.verdict = Some(Verdict::Refused);
            self.record(e);
            return Err(why);
        }
        let report = match self.perform(cluster, intent) {
            Ok(r) => r,
            Err(why) => {
                let mut e = NewEntry::new(
                    EntryKind::Action,
                    Actor::User(user.into()),
                    inner.cfg.origin,
                    format!("{} {} failed: {why}", verb_of(intent), target_of(intent)),
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

fn drain_options(r: &DrainRequest) -> actions::DrainOptions {
    actions::DrainOptions {
        ignore_daemonsets: r.ignore_daemonsets,
        delete_emptydir_data: r.delete_emptydir_data,
        force: false,
        grace_period_seconds: r.grace_period_s.and_then(|g| u32::try_from(g).ok()),
        timeout: Duration::from_secs(r.timeout_s.max(1)),
        force_past: None,
        gang: if r.whole_gang {
            actions::GangPolicy::WholeGang
        } else {
            actions::GangPolicy::Refuse
        },
        ..actions::DrainOptions::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Dry-run mode: decisions recorded as plans, nothing changes.
    DryRun,
    /// Approve mode's first pass: the plan is collected for approval, nothing recorded yet.
    Plan,
    /// Mutations go through the guard to the cluster.
    Act,
}

/// The host API for one pass of one run.
struct RunHost {
    ex: Executor,
    run: String,
    runbook: String,
    signal: Signal,
    cluster: String,
    pass: Pass,
    incident: Option<u64>,
    steps: Mutex<Vec<PlanStep>>,
    /// Whether the trigger was re-validated in this pass (once, before the first mutation).
    revalidated: Mutex<bool>,
}

impl RunHost {
    fn new(
        ex: &Executor,
        run: &str,
        rb: &Runbook,
        signal: &Signal,
        pass: Pass,
        incident: Option<u64>,
    ) -> Self {
        Self {
            ex: ex.clone(),
            run: run.to_string(),
            runbook: rb.meta.name.clone(),
            signal: signal.clone(),
            cluster: signal.subject.cluster.clone(),
            pass,
            incident,
            steps: Mutex::new(Vec::new()),
            revalidated: Mutex::new(false),
        }
    }

    fn plan(&self) -> Vec<PlanStep> {
        self.steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn entry(&self, kind: EntryKind, verdict: Option<Verdict>, summary: String) -> NewEntry {
        let mut e = NewEntry::new(
            kind,
            Actor::Runbook(self.runbook.clone()),
            self.ex.inner.cfg.origin,
            summary,
        );
        e.incident = self.incident;
        e.verdict = verdict;
        e.subject = Some(self.signal.subject.clone());
        e.detail.insert("run".into(), self.run.clone().into());
        e
    }

    fn refuse(&self, intent: &Intent, why: String) -> serde_json::Value {
        if self.pass != Pass::Plan {
            let mut e = self.entry(
                EntryKind::Decision,
                Some(Verdict::Refused),
                format!("{} {} refused: {why}", verb_of(intent), target_of(intent)),
            );
            e.detail.insert(
                "intent".into(),
                serde_json::to_value(intent).unwrap_or_default(),
            );
            self.ex.record(e);
        }
        serde_json::json!({ "outcome": "refused", "reason": why })
    }

    /// A drain that may force past a spot notice's deadline: the notice's deadline (notice time
    /// + 2 minutes on AWS) less the pods' grace period, so they stop before the instance goes.
    fn force_past(&self, intent: &Intent) -> Option<DateTime<Utc>> {
        let Intent::Drain { options, .. } = intent else {
            return None;
        };
        if !options.force_past_deadline {
            return None;
        }
        let deadline = self.signal.evidence.get("deadline")?.as_str()?;
        let deadline = DateTime::parse_from_rfc3339(deadline)
            .ok()?
            .with_timezone(&Utc);
        Some(deadline - chrono::Duration::seconds(options.grace_period_s.unwrap_or(30)))
    }

    /// Does the triggering signal still fire? Waits the re-validation delay first.
    fn still_firing(&self) -> bool {
        let mut done = match self.revalidated.lock() {
            Ok(d) => d,
            Err(_) => return false,
        };
        if *done {
            return true;
        }
        std::thread::sleep(self.ex.inner.cfg.revalidate_after);
        *done = true;
        let snap = self.ex.latest();
        // A manual trigger (no detector behind it) has nothing to re-check.
        self.signal.kind == "manual"
            || snap
                .signals
                .iter()
                .any(|s| s.dedup_key == self.signal.dedup_key)
    }
}

impl Host for RunHost {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.ex.latest()
    }

    fn pods_on(&self, node: &str) -> Result<serde_json::Value, String> {
        use k8s_openapi::api::core::v1::Pod;
        let client = self
            .ex
            .inner
            .clients
            .get(&self.cluster)
            .cloned()
            .ok_or_else(|| format!("no client for cluster {}", self.cluster))?;
        let api: kube::Api<Pod> = kube::Api::all(client);
        let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
        let pods = self
            .ex
            .inner
            .rt
            .block_on(api.list(&lp))
            .map_err(|e| format!("listing pods on {node}: {e}"))?;
        Ok(serde_json::Value::Array(
            pods.items
                .iter()
                .map(|p| {
                    let owner = p
                        .metadata
                        .owner_references
                        .as_ref()
                        .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
                        .map(|o| format!("{}/{}", o.kind, o.name));
                    let annotations = p.metadata.annotations.clone().unwrap_or_default();
                    serde_json::json!({
                        "do_not_disrupt": annotations.get("karpenter.sh/do-not-disrupt").is_some_and(|v| v == "true"),
                        "namespace": p.metadata.namespace,
                        "name": p.metadata.name,
                        "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                        "controller": owner,
                        "terminating": p.metadata.deletion_timestamp.is_some(),
                    })
                })
                .collect(),
        ))
    }

    fn request(&self, intent: Intent) -> Result<serde_json::Value, String> {
        let inner = &self.ex.inner;
        let snap = self.ex.latest();
        let mode = match self.pass {
            Pass::DryRun | Pass::Plan => Mode::DryRun,
            Pass::Act => Mode::Auto,
        };
        match inner.guard.check(&snap, &self.cluster, &intent, mode) {
            Decision::Refuse(why) => Ok(self.refuse(&intent, why)),
            Decision::Plan | Decision::Approve => {
                let step = self.ex.preview(&self.cluster, &intent);
                if self.pass == Pass::DryRun {
                    let mut e = self.entry(
                        EntryKind::Decision,
                        Some(Verdict::Planned),
                        format!("dry run: would {}", step.summary),
                    );
                    e.detail.insert("blast_radius".into(), step.blast.clone());
                    self.ex.record(e);
                }
                let answer = serde_json::json!({ "outcome": "planned", "summary": step.summary, "blast_radius": step.blast });
                if let Ok(mut s) = self.steps.lock() {
                    s.push(step);
                }
                Ok(answer)
            }
            Decision::Allow => {
                if !self.still_firing() {
                    return Ok(self.refuse(
                        &intent,
                        format!(
                            "{} stopped firing before fleetdeck acted (re-checked after {})",
                            self.signal.dedup_key,
                            humantime::format_duration(inner.cfg.revalidate_after)
                        ),
                    ));
                }
                // Once per target and problem: the incident when there is one, else this
                // firing of the signal.
                let occurrence = match self.incident {
                    Some(id) => format!("INC-{id}"),
                    None => format!(
                        "{}@{}",
                        self.signal.dedup_key,
                        self.signal.first_seen.timestamp()
                    ),
                };
                let key = format!(
                    "{}:{}:{}:{occurrence}",
                    self.cluster,
                    verb_of(&intent),
                    target_of(&intent),
                );
                let now = Utc::now();
                match inner.store.claim(
                    &key,
                    &inner.cfg.identity,
                    now,
                    now + chrono::Duration::hours(24),
                ) {
                    Ok(Claim::Claimed) => {}
                    Ok(Claim::Held(held)) => {
                        let why = format!(
                            "already {} by {} at {} (idempotency key {key})",
                            held.outcome.as_deref().unwrap_or("claimed"),
                            held.holder,
                            held.claimed_at.format("%H:%M:%SZ")
                        );
                        return Ok(serde_json::json!({ "outcome": "skipped", "reason": why }));
                    }
                    Err(e) => return Err(format!("the store cannot record the action: {e}")),
                }
                let _ = inner.store.journal_put(&JournalRecord {
                    run: self.run.clone(),
                    runbook: self.runbook.clone(),
                    target: target_of(&intent),
                    incident: self.incident,
                    started_at: now,
                    updated_at: now,
                    step: format!("{} {}", verb_of(&intent), target_of(&intent)),
                    state: serde_json::json!({ "idempotency_key": key }),
                });
                let report =
                    match self
                        .ex
                        .perform_with(&self.cluster, &intent, self.force_past(&intent))
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = inner
                                .store
                                .finish(&key, &format!("failed: {e}"), Utc::now());
                            let mut entry = self.entry(
                                EntryKind::Action,
                                None,
                                format!("{} {} failed: {e}", verb_of(&intent), target_of(&intent)),
                            );
                            entry.detail.insert("outcome".into(), "failed".into());
                            self.ex.record(entry);
                            return Ok(serde_json::json!({ "outcome": "failed", "reason": e }));
                        }
                    };
                let _ = inner.store.finish(&key, report.outcome.name(), Utc::now());
                let mut e = report.to_entry(Actor::Runbook(self.runbook.clone()), inner.cfg.origin);
                e.incident = self.incident;
                e.detail.insert("run".into(), self.run.clone().into());
                e.detail
                    .insert("holder".into(), inner.cfg.identity.clone().into());
                self.ex.record(e);
                let line = report.summary.clone();
                self.ex.update_run(&self.run, |r| r.actions.push(line));
                let reason = match &report.outcome {
                    actions::ActionOutcome::NoOp(r)
                    | actions::ActionOutcome::Refused(r)
                    | actions::ActionOutcome::Failed(r) => r.clone(),
                    _ => String::new(),
                };
                Ok(serde_json::json!({
                    "outcome": report.outcome.name(),
                    "reason": reason,
                    "summary": report.summary,
                    "evicted": report.evicted,
                    "blocked_by": report.blocked_by,
                    "bypassed": report.bypassed,
                }))
            }
        }
    }

    fn note(&self, text: &str) -> Result<(), String> {
        if self.pass == Pass::Plan {
            return Ok(());
        }
        let e = self.entry(EntryKind::Note, None, text.to_string());
        self.ex
            .inner
            .store
            .append(e)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn notify(&self, url: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        if self.pass != Pass::Act {
            return Ok(serde_json::json!({ "outcome": "planned", "url": url }));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let sent = self
            .ex
            .inner
            .rt
            .block_on(async { client.post(url).json(&body).send().await });
        let (status, outcome) = match &sent {
            Ok(r) => (r.status().as_u16(), r.status().to_string()),
            Err(e) => (0, e.to_string()),
        };
        let mut e = self.entry(
            EntryKind::Action,
            None,
            format!("notified {url}: {outcome}"),
        );
        e.detail.insert("body".into(), body);
        self.ex.record(e);
        match sent {
            Ok(r) if r.status().is_success() => {
                Ok(serde_json::json!({ "outcome": "done", "status": status }))
            }
            Ok(_) => Ok(serde_json::json!({ "outcome": "failed", "status": status })),
            Err(e) => Err(format!("notify {url}: {e}")),
        }
    }

    fn require_approval(&self, reason: &str) -> Result<bool, String> {
        // In approve mode the plan pass collects every step and a person approves the whole
        // plan; in auto mode a runbook's own call asks for a person as well.
        match self.pass {
            Pass::DryRun | Pass::Plan => Ok(true),
            Pass::Act if self.ex.inner.cfg.mode == Mode::Approve => Ok(true),
            Pass::Act => {
                let inner = &self.ex.inner;
                let id = inner.approvals.request(PendingApproval {
                    id: 0,
                    run: self.run.clone(),
                    runbook: self.runbook.clone(),
                    cluster: self.cluster.clone(),
                    reason: reason.to_string(),
                    plan: Vec::new(),
                    requested_at: Utc::now(),
                });
                self.ex.record(self.entry(
                    EntryKind::Decision,
                    Some(Verdict::Pending),
                    format!("approval {id} requested: {reason}"),
                ));
                let verdict = inner.approvals.wait(id, inner.cfg.approval_timeout);
                inner.approvals.forget(id);
                let (ok, by) = verdict.unwrap_or((false, "timeout".into()));
                self.ex.record(self.entry(
                    EntryKind::Approval,
                    Some(if ok {
                        Verdict::Approved
                    } else {
                        Verdict::Denied
                    }),
                    format!(
                        "approval {id} {} by {by}",
                        if ok { "granted" } else { "denied" }
                    ),
                ));
                Ok(ok)
            }
        }
    }

    fn wait_for(&self, condition: &str, target: &str, timeout: Duration) -> Result<bool, String> {
        if self.pass != Pass::Act {
            return Ok(true);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let snap = self.ex.latest();
            let holds = match condition {
                "node_cordoned" => snap
                    .clusters
                    .iter()
                    .filter(|c| c.name == self.cluster)
                    .flat_map(|c| c.nodes.iter())
                    .any(|n| n.name == target && n.cordoned),
                "rollout_complete" => {
                    let (ns, name) = target.split_once('/').unwrap_or(("", target));
                    snap.clusters
                        .iter()
                        .filter(|c| c.name == self.cluster)
                        .flat_map(|c| c.deployments.iter())
                        .any(|d| {
                            d.namespace == ns
                                && d.name == name
                                && d.updated == d.replicas
                                && d.available == d.replicas
                        })
                }
                "signal_cleared" => !snap.signals.iter().any(|s| {
                    s.dedup_key == target || (s.kind == target && s.subject == self.signal.subject)
                }),
                "node_drained" => {
                    let pods = self.pods_on(target)?;
                    pods.as_array().is_some_and(|a| {
                        a.iter().all(|p| {
                            p["controller"]
                                .as_str()
                                .is_some_and(|c| c.starts_with("DaemonSet/"))
                                || matches!(p["phase"].as_str(), Some("Succeeded" | "Failed"))
                        })
                    })
                }
                other => {
                    return Err(format!(
                        "wait_for: unknown condition {other:?}; known: node_cordoned, node_drained, rollout_complete, signal_cleared"
                    ));
                }
            };
            if holds {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
