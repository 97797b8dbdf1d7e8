//! Evicting pods, for a drain or one at a time: drain.go `evictPods`' loop (POST the
//! Eviction, back off on 429, give up at the global timeout) and `waitForDelete`, plus
//! fleetdeck's PodDisruptionBudget bypass past a deadline, and the report they add up to.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::params::{DeleteParams, Preconditions};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::api::{Call, ObjectPath, collection_path, pdb_in_refusal};
use super::drain::{DrainOptions, DrainPlan, PodToEvict, budget, to_evict};
use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::ApiOutcome;

/// Evicts one pod as a drain would (same backoff, PDB handling and wait), outside a drain.
/// `uid` pins the pod the caller saw; `None` takes the current one.
#[tracing::instrument(skip(ctx, opts), fields(cluster = %ctx.cluster))]
pub async fn evict_pod(
    ctx: &ActionContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    opts: &DrainOptions,
) -> Result<ActionReport, ActionError> {
    let started = Instant::now();
    let object = format!("pod/{namespace}/{name}");
    let report = ActionReport::new(ctx, "evict", object.clone());
    let pod: Pod = ctx
        .read_existing(&ObjectPath::pod(namespace, name), &object)
        .await?;
    let mut target = to_evict(&pod, None);
    if let Some(u) = uid {
        target.uid = u.to_string();
    }
    let mut plan = DrainPlan::empty(&target.node);
    if let Ok(pdbs) = ctx
        .list::<PodDisruptionBudget>(
            &collection_path("/apis/policy/v1", Some(namespace), "poddisruptionbudgets"),
            None,
            None,
        )
        .await
    {
        plan.budgets = pdbs.iter().map(budget).collect();
    }
    let deadline = deadline_after(started, opts.timeout);
    let run = evict_and_wait(ctx, &plan, &target, opts, deadline).await;
    Ok(conclude(report, &plan, vec![run], opts, started))
}

/// `started + timeout`, or a year on for a timeout too large to add.
pub(super) fn deadline_after(started: Instant, timeout: std::time::Duration) -> Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| started + std::time::Duration::from_secs(365 * 24 * 3600))
}

/// How one pod's eviction ended.
#[derive(Debug)]
enum PodEnd {
    Evicted,
    /// Deleted past its budget: (budget, the deadline that had passed).
    Deleted(String, DateTime<Utc>),
    /// It was gone (404) or replaced (a new UID) before we evicted it.
    AlreadyGone,
    /// The API accepted the dry-run eviction.
    WouldEvict,
    /// In a dry run, a budget refused it.
    WouldWait(String),
    TimedOut(&'static str),
    /// The process began stopping (SIGTERM) while it waited for this stage: left as it was.
    Left(&'static str),
    Failed(String),
}

pub(super) struct PodRun {
    pod: String,
    outcomes: Vec<ApiOutcome>,
    refused_by: BTreeSet<String>,
    end: PodEnd,
}

/// drain.go `evictPods`' loop for one pod, then `waitForDelete`.
pub(super) async fn evict_and_wait(
    ctx: &ActionContext,
    plan: &DrainPlan,
    pod: &PodToEvict,
    opts: &DrainOptions,
    deadline: Instant,
) -> PodRun {
    let mut run = PodRun {
        pod: pod.key(),
        outcomes: Vec::new(),
        refused_by: BTreeSet::new(),
        end: PodEnd::Failed(String::new()),
    };
    let path = ObjectPath::pod(&pod.namespace, &pod.name);
    let mut delete_options = json!({"preconditions": {"uid": pod.uid}});
    if let Some(g) = opts.grace_period_seconds {
        delete_options["gracePeriodSeconds"] = json!(g);
    }
    if ctx.dry_run {
        delete_options["dryRun"] = json!(["All"]);
    }
    // drain.go EvictPod (policy/v1). The UID precondition is fleetdeck's: the plan may be
    // older than the pod, and a StatefulSet's replacement has the same name.
    let eviction = json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
        "deleteOptions": delete_options,
    });
    let mut bypassed: Option<(String, DateTime<Utc>)> = None;
    loop {
        // A stopping process evicts nothing more: between two attempts is a safe point.
        if ctx.stopping() {
            run.end = PodEnd::Left("eviction");
            return run;
        }
        // kubectl checks its global timeout before each attempt.
        if Instant::now() >= deadline {
            run.end = PodEnd::TimedOut("eviction");
            return run;
        }
        let answer = match ctx
            .mutate(
                &path,
                Call::PostSub("eviction", eviction.clone()),
                &mut run.outcomes,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                run.end = PodEnd::Failed(e.to_string());
                return run;
            }
        };
        match answer.status {
            s if (200..300).contains(&s) => break,
            404 => {
                run.end = PodEnd::AlreadyGone;
                return run;
            }
            409 if answer.explain().1.contains("Precondition failed") => {
                run.end = PodEnd::AlreadyGone;
                return run;
            }
            429 => {
                let pdb = pdb_in_refusal(&answer)
                    .map(|n| format!("{}/{n}", pod.namespace))
                    .or_else(|| plan.budget_of(pod))
                    .unwrap_or_else(|| "an unnamed PodDisruptionBudget".into());
                if let Some(last) = run.outcomes.last_mut() {
                    last.pdb = Some(pdb.clone());
                }
                run.refused_by.insert(pdb.clone());
                if let Some(force_past) = opts.force_past.filter(|d| Utc::now() >= *d) {
                    match delete_past_budget(ctx, &path, pod, opts, &mut run.outcomes, &pdb).await {
                        Ok(true) => {
                            bypassed = Some((pdb, force_past));
                            break;
                        }
                        Ok(false) => {
                            run.end = PodEnd::AlreadyGone;
                            return run;
                        }
                        Err(why) => {
                            run.end = PodEnd::Failed(why);
                            return run;
                        }
                    }
                }
                if ctx.dry_run {
                    run.end = PodEnd::WouldWait(pdb);
                    return run;
                }
                tracing::info!(
                    pod = %run.pod,
                    pdb = %pdb,
                    delay = ?opts.eviction_retry_delay,
                    "eviction refused by a disruption budget; will retry"
                );
                if ctx
                    .sleep_unless_stopping(deadline.min(Instant::now() + opts.eviction_retry_delay))
                    .await
                {
                    run.end = PodEnd::Left("eviction");
                    return run;
                }
            }
            _ => {
                run.end = PodEnd::Failed(format!("evicting pod {}: {}", run.pod, answer.refusal()));
                return run;
            }
        }
    }
    if ctx.dry_run {
        run.end = match bypassed {
            Some((pdb, at)) => PodEnd::Deleted(pdb, at),
            None => PodEnd::WouldEvict,
        };
        return run;
    }
    run.end = match wait_for_delete(ctx, &path, &pod.uid, opts, deadline).await {
        Ok(true) => match bypassed {
            Some((pdb, at)) => PodEnd::Deleted(pdb, at),
            None => PodEnd::Evicted,
        },
        Ok(false) if ctx.stopping() => PodEnd::Left("deletion"),
        Ok(false) => PodEnd::TimedOut("deletion"),
        Err(why) => PodEnd::Failed(why),
    };
    run
}

/// DELETE with the pod's grace period and UID precondition, recorded against the budget it
/// bypasses. `Ok(false)`: the pod was already gone.
async fn delete_past_budget(
    ctx: &ActionContext,
    path: &ObjectPath,
    pod: &PodToEvict,
    opts: &DrainOptions,
    outcomes: &mut Vec<ApiOutcome>,
    pdb: &str,
) -> Result<bool, String> {
    let dp = DeleteParams {
        grace_period_seconds: opts.grace_period_seconds,
        preconditions: Some(Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let answer = ctx
        .mutate(path, Call::Delete(dp), outcomes)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(last) = outcomes.last_mut() {
        last.pdb = Some(pdb.to_string());
    }
    match answer.status {
        s if (200..300).contains(&s) => Ok(true),
        404 => Ok(false),
        409 if answer.explain().1.contains("Precondition failed") => Ok(false),
        _ => Err(format!(
            "deleting pod {} past PodDisruptionBudget {pdb}: {}",
            pod.key(),
            answer.refusal()
        )),
    }
}

/// drain.go `waitForDelete`: the pod is gone when the API answers 404 or a pod of that name
/// with another UID. `Ok(false)` when the deadline passed first, or the process began stopping.
async fn wait_for_delete(
    ctx: &ActionContext,
    path: &ObjectPath,
    uid: &str,
    opts: &DrainOptions,
    deadline: Instant,
) -> Result<bool, String> {
    loop {
        match ctx.read(path).await {
            Ok(None) => return Ok(true),
            Ok(Some(p)) if p.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) => {
                return Ok(true);
            }
            Ok(Some(_)) => {}
            Err(e) => return Err(format!("waiting for pod {} to terminate: {e}", path.name)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        if ctx
            .sleep_unless_stopping(deadline.min(now + opts.poll_interval))
            .await
        {
            return Ok(false);
        }
    }
}

pub(super) fn conclude(
    mut report: ActionReport,
    plan: &DrainPlan,
    runs: Vec<PodRun>,
    opts: &DrainOptions,
    started: Instant,
) -> ActionReport {
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    let mut gone = Vec::new();
    let mut timed_out = Vec::new();
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    let mut left = Vec::new();
    let mut refusals = 0usize;
    for run in runs {
        refusals += run.outcomes.iter().filter(|o| o.status == 429).count();
        report.outcomes.extend(run.outcomes);
        blocked.extend(run.refused_by);
        match run.end {
            PodEnd::Evicted | PodEnd::WouldEvict => report.evicted.push(run.pod),
            PodEnd::Deleted(pdb, at) => {
                report.bypassed.push(format!(
                    "{}: deleted past PodDisruptionBudget {pdb}, which refused its eviction, because the force-past deadline {} had passed",
                    run.pod,
                    at.to_rfc3339_opts(SecondsFormat::Secs, true)
                ));
                report.evicted.push(run.pod);
            }
            PodEnd::AlreadyGone => gone.push(run.pod),
            PodEnd::WouldWait(pdb) => waiting.push(format!("{} (PDB {pdb})", run.pod)),
            PodEnd::TimedOut(stage) => timed_out.push(format!("{} (waiting for {stage})", run.pod)),
            PodEnd::Left(stage) => left.push(format!("{} (waiting for {stage})", run.pod)),
            PodEnd::Failed(why) => failed.push(why),
        }
    }
    report.outcomes.sort_by_key(|o| o.at);
    report.blocked_by = blocked.into_iter().collect();
    let node = &plan.node;
    let mut tail = String::new();
    if !gone.is_empty() {
        tail.push_str(&format!("; {} already gone", gone.len()));
    }
    if !report.blocked_by.is_empty() {
        tail.push_str(&format!(
            "; {refusals} eviction(s) refused by PDB {}",
            report.blocked_by.join(", ")
        ));
    }
    if !report.bypassed.is_empty() {
        tail.push_str(&format!(
            "; {} pod(s) DELETED PAST THEIR PDB (force-past deadline passed)",
            report.bypassed.len()
        ));
    }
    let verb = if report.dry_run {
        "would evict"
    } else {
        "evicted"
    };
    let subject = if report.action == "drain" {
        format!("node {node}")
    } else {
        report.target.clone()
    };
    if !failed.is_empty() {
        let summary = format!(
            "drain of {subject} failed: {verb} {} pod(s), {} failed{tail}",
            report.evicted.len(),
            failed.len()
        );
        return report.finish(ActionOutcome::Failed(failed.join("; ")), summary);
    }
    // Stopped at a safe point: what was done and what is left, so a person (or the next
    // leader) knows the state the node is in.
    if !left.is_empty() {
        let cordoned = if report.action == "drain" && !report.dry_run {
            format!("; node {node} stays cordoned (drain it again, or uncordon to undo)")
        } else {
            String::new()
        };
        left.extend(timed_out.iter().cloned());
        let why = format!(
            "fleetdeck stopped before the {} finished: {verb} {} pod(s), left on it: {}{cordoned}",
            report.action,
            report.evicted.len(),
            left.join(", ")
        );
        let summary = format!(
            "{} of {subject} stopped when fleetdeck shut down: {verb} {} pod(s), left: {}{tail}{cordoned}",
            report.action,
            report.evicted.len(),
            left.join(", ")
        );
        return report.finish(ActionOutcome::Failed(why), summary);
    }
    if !timed_out.is_empty() {
        let summary = format!(
            "drain of {subject} timed out after {}s: {verb} {} pod(s), not done: {}{tail}",
            opts.timeout.as_secs(),
            report.evicted.len(),
            timed_out.join(", ")
        );
        return report.finish(ActionOutcome::TimedOut, summary);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if report.action != "drain" && report.evicted.is_empty() && waiting.is_empty() {
        let why = format!("{subject} was already gone or replaced (another UID); nothing evicted");
        return report.finish(ActionOutcome::NoOp(why.clone()), format!("{why}{tail}"));
    }
    let mut summary = if report.action == "drain" {
        format!(
            "{subject} drained in {elapsed:.1}s: {verb} {} pod(s) freeing {} GPU(s), skipped {}{tail}",
            report.evicted.len(),
            plan.gpus_freed,
            plan.skipped.len()
        )
    } else {
        format!("{subject}: {verb} in {elapsed:.1}s{tail}")
    };
    if !waiting.is_empty() {
        summary.push_str(&format!("; would wait on: {}", waiting.join(", ")));
    }
    report.finish(ActionOutcome::Done, summary)
}
