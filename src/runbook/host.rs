//! The Rhai host for one pass of one run: the `Host` the engine calls. It shows the run the
//! latest snapshot, answers each mutation the runbook asks for through the guard (plan,
//! approval or, with the guard's clearance, the action), and records what it decided on the
//! incident's timeline. Imports the executor, the guard, approvals, the engine's `Host`,
//! actions, store and model.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::approvals::PendingApproval;
use super::engine::{Host, Runbook};
use super::executor::{Executor, PlanStep};
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
        }
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
        if self.pass != Pass::Plan {
            let mut e = self.entry(
                EntryKind::Decision,
                Some(Verdict::Refused),
                format!("{} {} refused: {why}", mutation.verb(), mutation.target()),
            );
            e.detail.insert(
                "intent".into(),
                serde_json::to_value(mutation).unwrap_or_default(),
            );
            self.ex.record(e);
        }
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
            Decision::Allow(clearance) => {
                if !self.still_firing() {
                    return Ok(self.refuse(
                        &mutation,
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
                self.ex.record(e);
                return Ok(serde_json::json!({ "outcome": "planned", "sink": sink }));
            }
            Pass::Plan => return Ok(serde_json::json!({ "outcome": "planned", "sink": sink })),
            Pass::Act => {}
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
                let (ok, by) = inner
                    .approvals
                    .settle(id, inner.cfg.approval_timeout.min(timeout));
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
