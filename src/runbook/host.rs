//! The Rhai host for one pass of one run: the `Host` the engine calls. It shows the run the
//! latest snapshot, answers each mutation the runbook asks for through the guard (plan,
//! approval or, with the guard's clearance, the action), and records what it decided on the
//! incident's timeline. Imports the executor, the guard, approvals, the engine's `Host`,
//! actions, store and model.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::approvals::{PendingApproval, RequestScope, Settled};
use super::engine::{Host, Runbook};
use super::executor::{Executor, PlanStep, RunState};
use super::guard::{Decision, RunBudget};
use super::meta::Mode;
use crate::actions::{self, Mutation};
use crate::model::Snapshot;
use crate::model::incident::{Actor, EntryKind, NewEntry, Verdict};
use crate::model::signal::Signal;
use crate::store::{Claim, JournalRecord};

/// Which pass of a run a host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Dry-run mode: decisions recorded as plans, nothing changes.
    DryRun,
    /// Approve mode's first pass: the plan is collected for approval, nothing recorded yet.
    Plan,
    /// Mutations go through the guard to the cluster.
    Act,
}

/// The host API for one pass of one run.
pub(super) struct RunHost {
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
    /// What this pass has spent of the guard's per-run budgets.
    budget: RunBudget,
    /// How the steps it asked for went: the run's outcome is made of this.
    steps_done: Mutex<StepTally>,
    /// Timeline entries and notifications this pass has written (`[runbooks]
    /// max_entries_per_run`); past the cap one "truncated" entry is written and the rest dropped.
    written: std::sync::atomic::AtomicUsize,
}

/// The steps of one pass: how many were done (or planned, or already held), which were refused
/// or failed, and why a pass stopped without acting.
#[derive(Debug, Default)]
struct StepTally {
    ok: usize,
    /// The first `MAX_NAMED_PROBLEMS` refused or failed steps, by name.
    problems: Vec<String>,
    /// Refused or failed steps past those (a loop of refused requests stays a short record).
    more_problems: usize,
    /// The signal stopped firing before the first change: nothing is left to remediate.
    stopped: Option<String>,
}

const MAX_NAMED_PROBLEMS: usize = 20;

impl StepTally {
    fn problem(&mut self, step: String) {
        if self.problems.len() < MAX_NAMED_PROBLEMS {
            self.problems.push(step);
        } else {
            self.more_problems += 1;
        }
    }

    /// Every problem's name, and how many more there were.
    fn named_problems(&self) -> Vec<String> {
        let mut named = self.problems.clone();
        if self.more_problems > 0 {
            named.push(format!(
                "and {} more refused or failed steps",
                self.more_problems
            ));
        }
        named
    }
}

impl RunHost {
    pub(super) fn new(
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
            budget: RunBudget::default(),
            steps_done: Mutex::new(StepTally::default()),
            written: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn tally(&self, f: impl FnOnce(&mut StepTally)) {
        if let Ok(mut t) = self.steps_done.lock() {
            f(&mut t);
        }
    }

    /// The outcome of a pass whose script ran to its end.
    pub(super) fn outcome(&self) -> RunState {
        let Ok(t) = self.steps_done.lock() else {
            return RunState::Failed("the run's step record was poisoned".into());
        };
        match (t.ok, t.problems.is_empty(), &t.stopped) {
            (0, false, _) => RunState::Failed(t.named_problems().join("; ")),
            (_, false, _) => RunState::Partial(t.named_problems()),
            (0, true, Some(why)) => RunState::Stopped(why.clone()),
            (0, true, None) => RunState::Reported,
            _ if self.pass == Pass::Act => RunState::Remediated,
            _ => RunState::Planned,
        }
    }

    /// The outcome of a pass whose script erred: the error, and the steps that had gone wrong
    /// before it.
    pub(super) fn failed(&self, error: String) -> RunState {
        let problems = self
            .steps_done
            .lock()
            .map(|t| t.named_problems())
            .unwrap_or_default();
        if problems.is_empty() {
            RunState::Failed(error)
        } else {
            RunState::Failed(format!("{error} (after: {})", problems.join("; ")))
        }
    }

    /// Writes one of this run's entries unless the run has used up its share of the store:
    /// a runaway loop of notes must not fill the disk before its deadline stops it. Returns
    /// whether it was written. The actions a run performs are recorded uncapped: the
    /// idempotency claim allows one per target and incident, and they are the cluster's record.
    fn write(&self, e: NewEntry) -> bool {
        if !self.take_write() {
            return false;
        }
        self.ex.record(e);
        true
    }

    /// Counts one write against the cap; at the cap, writes the one "truncated" entry.
    fn take_write(&self) -> bool {
        let cap = self.ex.inner.cfg.limits.max_entries_per_run;
        let n = self
            .written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n < cap {
            return true;
        }
        if n == cap {
            let mut e = self.entry(
                EntryKind::Decision,
                Some(Verdict::Refused),
                format!(
                    "truncated: run {} of runbook {} wrote {cap} entries and notifications ([runbooks] max_entries_per_run); what it writes after this is dropped",
                    self.run, self.runbook
                ),
            );
            e.detail.insert("truncated".into(), true.into());
            self.ex.record(e);
        }
        false
    }

    pub(super) fn plan(&self) -> Vec<PlanStep> {
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

    /// "; configured sinks: a, b" (or how to add one).
    fn sinks_hint(&self) -> String {
        match &self.ex.inner.cfg.notifier {
            Some(n) => format!("; configured sinks: {}", n.sink_names().join(", ")),
            None => "; no sink is configured: add [notify.sinks.NAME] to fleetdeck.toml".into(),
        }
    }

    fn refuse(&self, mutation: &Mutation, why: String) -> serde_json::Value {
        let step = format!("{} {} refused: {why}", mutation.verb(), mutation.target());
        // In every pass, the plan's included: approve mode must not hide what the guard
        // refused behind a plan that "changes nothing".
        let mut e = self.entry(EntryKind::Decision, Some(Verdict::Refused), step.clone());
        e.detail.insert(
            "intent".into(),
            serde_json::to_value(mutation).unwrap_or_default(),
        );
        self.write(e);
        self.tally(|t| t.problem(step));
        serde_json::json!({ "outcome": "refused", "reason": why })
    }

    /// A drain that may force past a spot notice's deadline: the notice's deadline (notice time
    /// + 2 minutes on AWS) less the pods' grace period, so they stop before the instance goes.
    fn force_past(&self, mutation: &Mutation) -> Option<DateTime<Utc>> {
        let Mutation::Drain { options, .. } = mutation else {
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
                .any(|s| s.dedup_key == self.signal.dedup_key && !s.is_clearing())
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

    fn request(&self, mut mutation: Mutation) -> Result<serde_json::Value, String> {
        if let Mutation::RollbackModel(r) = &mut mutation {
            r.by = format!(
                "runbook {} (fleetdeck {})",
                self.runbook, self.ex.inner.cfg.identity
            );
        }
        let inner = &self.ex.inner;
        let snap = self.ex.latest();
        let mode = match self.pass {
            Pass::DryRun | Pass::Plan => Mode::DryRun,
            Pass::Act => Mode::Auto,
        };
        match inner
            .guard
            .check_in_run(&snap, &self.cluster, &mutation, mode, &self.budget)
        {
            Decision::Refuse(why) => Ok(self.refuse(&mutation, why)),
            Decision::Plan | Decision::Approve => {
                let step = self.ex.preview(&self.cluster, &mutation);
                // A step the cluster would refuse (a drain's filters) is not planned: the
                // script sees the refusal it would meet when acting, and the run's outcome
                // names it.
                let refused = step.blast.get("refused").and_then(|r| r.as_str());
                if self.pass == Pass::DryRun {
                    let mut e = self.entry(
                        EntryKind::Decision,
                        Some(if refused.is_some() {
                            Verdict::Refused
                        } else {
                            Verdict::Planned
                        }),
                        if refused.is_some() {
                            format!("dry run: {}", step.summary)
                        } else {
                            format!("dry run: would {}", step.summary)
                        },
                    );
                    e.detail.insert("blast_radius".into(), step.blast.clone());
                    self.write(e);
                }
                let answer = match refused {
                    Some(why) => {
                        self.tally(|t| t.problem(step.summary.clone()));
                        serde_json::json!({ "outcome": "refused", "reason": why, "summary": step.summary, "blast_radius": step.blast })
                    }
                    None => {
                        self.tally(|t| t.ok += 1);
                        serde_json::json!({ "outcome": "planned", "summary": step.summary, "blast_radius": step.blast })
                    }
                };
                if let Ok(mut s) = self.steps.lock() {
                    s.push(step);
                }
                Ok(answer)
            }
            Decision::Allow(clearance) => {
                if !self.still_firing() {
                    let why = format!(
                        "{} stopped firing before fleetdeck acted (re-checked after {})",
                        self.signal.dedup_key,
                        humantime::format_duration(inner.cfg.revalidate_after)
                    );
                    // Not a failed step: the fault went away by itself, so the run stops.
                    let answer = self.refuse(&mutation, why.clone());
                    self.tally(|t| {
                        if t.more_problems > 0 {
                            t.more_problems -= 1;
                        } else {
                            t.problems.pop();
                        }
                        t.stopped.get_or_insert(why);
                    });
                    return Ok(answer);
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
                    mutation.verb(),
                    mutation.target(),
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
                        let outcome = held.outcome.as_deref().unwrap_or("claimed");
                        let why = format!(
                            "already {outcome} by {} at {} (idempotency key {key})",
                            held.holder,
                            held.claimed_at.format("%H:%M:%SZ")
                        );
                        // Done once is done: only a claim that ended well counts as done now.
                        if matches!(outcome, "done" | "no-op") {
                            self.tally(|t| t.ok += 1);
                        } else {
                            let step =
                                format!("{} {} skipped: {why}", mutation.verb(), mutation.target());
                            self.tally(|t| t.problem(step));
                        }
                        return Ok(serde_json::json!({ "outcome": "skipped", "reason": why }));
                    }
                    Err(e) => return Err(format!("the store cannot record the action: {e}")),
                }
                let _ = inner.store.journal_put(&JournalRecord {
                    run: self.run.clone(),
                    runbook: self.runbook.clone(),
                    target: mutation.target(),
                    incident: self.incident,
                    started_at: now,
                    updated_at: now,
                    step: format!("{} {}", mutation.verb(), mutation.target()),
                    state: serde_json::json!({ "idempotency_key": key }),
                });
                let report = match self.ex.perform(&clearance, self.force_past(&mutation)) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = inner
                            .store
                            .finish(&key, &format!("failed: {e}"), Utc::now());
                        let mut entry = self.entry(
                            EntryKind::Action,
                            None,
                            format!("{} {} failed: {e}", mutation.verb(), mutation.target()),
                        );
                        entry.detail.insert("outcome".into(), "failed".into());
                        self.ex.record(entry);
                        let step = format!("{} {} failed: {e}", mutation.verb(), mutation.target());
                        self.tally(|t| t.problem(step));
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
                match &report.outcome {
                    actions::ActionOutcome::Done | actions::ActionOutcome::NoOp(_) => {
                        self.tally(|t| t.ok += 1)
                    }
                    other => {
                        let step = format!(
                            "{} {} {}{}",
                            mutation.verb(),
                            mutation.target(),
                            other.name(),
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {reason}")
                            }
                        );
                        self.tally(|t| t.problem(step));
                    }
                }
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
        if !self.take_write() {
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

    fn unresolved(&self, reason: &str) -> Result<(), String> {
        // In a plan or a dry run nothing was done, so nothing was checked.
        if self.pass != Pass::Act {
            return Ok(());
        }
        let step = format!("unresolved: {reason}");
        self.write(self.entry(EntryKind::Note, Some(Verdict::Refused), step.clone()));
        self.tally(|t| t.problem(step));
        Ok(())
    }

    fn notify(&self, sink: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        if sink.contains("://") {
            return Err(format!(
                "notify takes a sink's name, not a URL: a webhook's URL is its secret and never \
                 comes from a runbook; configure [notify.sinks.NAME] (kind, url_file or url_env) \
                 and call notify(\"NAME\", …){}",
                self.sinks_hint()
            ));
        }
        let notifier = self
            .ex
            .inner
            .cfg
            .notifier
            .as_ref()
            .filter(|n| n.has_sink(sink));
        let Some(notifier) = notifier else {
            return Err(format!("notify: no sink {sink:?}{}", self.sinks_hint()));
        };
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let summary = text("summary")
            .or_else(|| text("text"))
            .or_else(|| body.as_str().map(str::to_string))
            .unwrap_or_else(|| self.signal.summary.clone());
        let severity = match text("severity").as_deref() {
            Some("critical") => crate::model::signal::Severity::Critical,
            Some("warning") => crate::model::signal::Severity::Warning,
            Some("info") => crate::model::signal::Severity::Info,
            Some(other) => {
                return Err(format!(
                    "notify: severity {other:?} is not one of critical, warning, info"
                ));
            }
            None => self.signal.severity,
        };
        match self.pass {
            // Dry-run: on the timeline as what would have been sent; approve mode's first
            // pass records nothing (the acting pass sends it).
            Pass::DryRun => {
                let mut e = self.entry(
                    EntryKind::Decision,
                    Some(Verdict::Planned),
                    format!("would notify {sink}: {summary}"),
                );
                e.detail.insert("body".into(), body);
                self.write(e);
                return Ok(serde_json::json!({ "outcome": "planned", "sink": sink }));
            }
            Pass::Plan => return Ok(serde_json::json!({ "outcome": "planned", "sink": sink })),
            Pass::Act => {}
        }
        // A notification writes its delivery to the timeline and reaches people: it counts
        // against the run's cap like a note.
        if !self.take_write() {
            return Ok(serde_json::json!({
                "outcome": "refused",
                "sink": sink,
                "reason": "truncated: the run reached [runbooks] max_entries_per_run",
            }));
        }
        let details = match &body {
            serde_json::Value::Object(m) => m
                .get("details")
                .cloned()
                .unwrap_or_else(|| serde_json::Value::Object(m.clone())),
            _ => serde_json::Value::Null,
        };
        let message = crate::notify::Message {
            sink: sink.to_string(),
            action: crate::notify::Action::Trigger,
            incident: self.incident,
            severity,
            summary: summary.clone(),
            source: format!("runbook:{}", self.runbook),
            component: Some(self.signal.subject.describe()),
            details,
            at: chrono::Utc::now(),
            actor: Actor::Runbook(self.runbook.clone()),
        };
        match notifier.send(message) {
            // Delivery goes on in the background; its outcome lands on the timeline.
            Ok(()) => Ok(serde_json::json!({ "outcome": "queued", "sink": sink })),
            Err(e) => Ok(
                serde_json::json!({ "outcome": "refused", "sink": sink, "reason": e.to_string() }),
            ),
        }
    }

    fn require_approval(&self, reason: &str) -> Result<bool, String> {
        self.require_approval_within(reason, self.ex.inner.cfg.approval_timeout)
    }

    fn require_approval_within(&self, reason: &str, timeout: Duration) -> Result<bool, String> {
        // In approve mode the plan pass collects every step and a person approves the whole
        // plan; in auto mode a runbook's own call asks for a person as well.
        match self.pass {
            Pass::DryRun | Pass::Plan => Ok(true),
            Pass::Act if self.ex.inner.cfg.mode == Mode::Approve => Ok(true),
            Pass::Act => {
                let inner = &self.ex.inner;
                let target = self.signal.subject.describe();
                let group = crate::store::target_group(&self.signal);
                let id = inner.approvals.request(
                    PendingApproval {
                        id: 0,
                        run: self.run.clone(),
                        runbook: self.runbook.clone(),
                        cluster: self.cluster.clone(),
                        reason: reason.to_string(),
                        plan: Vec::new(),
                        requested_at: Utc::now(),
                    },
                    RequestScope {
                        group: &group,
                        target: &target,
                        incident: self.incident,
                        timeout: inner.cfg.approval_timeout.min(timeout),
                    },
                )?;
                self.ex.record(self.entry(
                    EntryKind::Decision,
                    Some(Verdict::Pending),
                    format!("approval {id} requested: {reason}"),
                ));
                self.ex
                    .update_run(&self.run, |r| r.state = RunState::AwaitingApproval(id));
                let leave = || self.ex.leaves_approval(id);
                let (ok, by) = match inner.approvals.settle(id, &self.run, &leave) {
                    Settled::Verdict(ok, by) => (ok, by),
                    Settled::Left(why) => return Err(why),
                };
                self.ex
                    .update_run(&self.run, |r| r.state = RunState::Running);
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
            // A stopping process waits for nothing more: the run ends and says what it left.
            if self.ex.stopping() {
                return Err(format!(
                    "wait_for({condition:?}, {target:?}) stopped: fleetdeck is stopping (SIGTERM)"
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
