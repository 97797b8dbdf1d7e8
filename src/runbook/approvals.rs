//! Approvals: the plans and requests that wait for a person, their verdicts (approve, deny,
//! by whom) and their timeouts. Each request and verdict is a record in the store (written
//! before the run waits, and before the verdict is acted on), so every replica of a shared
//! store lists the same pending approvals, a verdict given to any replica reaches the run that
//! waits, and a new leader's run takes over the approval its predecessor asked for (same id)
//! and acts on its grant once. The executor asks and waits here; the faces list and decide
//! through the executor. Imports the executor's `PlanStep` and the store.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::executor::PlanStep;
use crate::store::{ApprovalOutcome, ApprovalRecord, Store};

/// How often a waiting run reads its approval back from the store: a verdict given on another
/// replica arrives only there (one given here wakes the run at once).
const POLL: Duration = Duration::from_millis(500);
/// How long past its expiry a run keeps waiting for a store it cannot read or write before it
/// gives up without acting (the verdict could not be recorded as taken).
const STORE_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// A plan waiting for a person.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PendingApproval {
    pub id: u64,
    pub run: String,
    pub runbook: String,
    pub cluster: String,
    pub reason: String,
    pub plan: Vec<PlanStep>,
    pub requested_at: DateTime<Utc>,
}

impl PendingApproval {
    fn from_record(r: &ApprovalRecord) -> Self {
        Self {
            id: r.id,
            run: r.run.clone(),
            runbook: r.runbook.clone(),
            cluster: r.cluster.clone(),
            reason: r.reason.clone(),
            // A plan this build cannot read (written by another version) shows as no steps;
            // the reason still says what it asks.
            plan: serde_json::from_value(r.plan.clone()).unwrap_or_default(),
            requested_at: r.requested_at,
        }
    }
}

/// What a request is about, beside the plan the person sees.
pub(super) struct RequestScope<'a> {
    /// The signal's target group: a later run of the runbook on it takes the request over.
    pub group: &'a str,
    pub target: &'a str,
    pub incident: Option<u64>,
    pub timeout: Duration,
}

/// How a wait for a verdict ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Settled {
    /// This run took the verdict: `(approved, by)`, where a request nobody decided in time is
    /// denied `by` "timeout".
    Verdict(bool, String),
    /// This run does not act on it: another run took it, it is gone, or this process stopped
    /// waiting (stopping, or not leading any more); the reason.
    Left(String),
}

/// The store's approvals as one executor sees them; waiting runs are woken by a local verdict.
pub(super) struct Approvals {
    store: Store,
    wake: Mutex<u64>,
    decided: Condvar,
}

impl Approvals {
    pub(super) fn new(store: Store) -> Self {
        Self {
            store,
            wake: Mutex::new(0),
            decided: Condvar::new(),
        }
    }

    /// Records the request; its id, or why it could not be recorded (then nobody may act on
    /// it: a plan is never performed without its approval on record).
    pub(super) fn request(
        &self,
        p: PendingApproval,
        scope: RequestScope<'_>,
    ) -> Result<u64, String> {
        let now = Utc::now();
        let record = ApprovalRecord {
            id: 0,
            run: p.run,
            runbook: p.runbook,
            cluster: p.cluster,
            group: scope.group.to_string(),
            target: scope.target.to_string(),
            incident: scope.incident,
            reason: p.reason,
            plan: serde_json::to_value(&p.plan).unwrap_or_default(),
            requested_at: p.requested_at,
            expires_at: now
                + chrono::Duration::from_std(scope.timeout).unwrap_or(chrono::Duration::days(1)),
            verdict: None,
            settled_by: None,
        };
        self.store
            .approval_request(record)
            .map(|r| r.id)
            .map_err(|e| e.to_string())
    }

    /// The approval a run of `runbook` on `group` asked for that no run has taken yet (pending,
    /// or decided while no run waited for it), if any: a new leader's run waits for that one.
    pub(super) fn open_for(&self, runbook: &str, group: &str) -> Option<ApprovalRecord> {
        self.store.approvals().ok()?.into_iter().rev().find(|r| {
            r.runbook == runbook
                    && r.group == group
                    && r.settled_by.is_none()
                    // Undecided past its expiry: denied; the run asks afresh.
                    && (r.verdict.is_some() || Utc::now() < r.expires_at)
        })
    }

    /// Waits until `run` takes the verdict on `id`, or until `leave()` says to stop waiting
    /// (then the approval stays in the store for the run that comes next).
    pub(super) fn settle(&self, id: u64, run: &str, leave: &dyn Fn() -> Option<String>) -> Settled {
        loop {
            if let Some(why) = leave() {
                return Settled::Left(why);
            }
            let now = Utc::now();
            match self.store.approval(id) {
                Ok(None) => {
                    return Settled::Left(format!("approval {id} is no longer in the store"));
                }
                Ok(Some(r)) if r.settled_by.is_some() => {
                    return Settled::Left(format!(
                        "approval {id} was taken by run {}",
                        r.settled_by.unwrap_or_default()
                    ));
                }
                Ok(Some(r)) if r.verdict.is_some() || now >= r.expires_at => {
                    match self.store.approval_settle(id, run, now) {
                        Ok(ApprovalOutcome::Done(r)) => {
                            let v = r.verdict.unwrap_or_else(|| crate::store::ApprovalVerdict {
                                approved: false,
                                by: "timeout".into(),
                                at: now,
                            });
                            return Settled::Verdict(v.approved, v.by);
                        }
                        Ok(ApprovalOutcome::Already(r)) => {
                            return Settled::Left(format!(
                                "approval {id} was taken by run {}",
                                r.settled_by.unwrap_or_default()
                            ));
                        }
                        Ok(ApprovalOutcome::Missing) => {
                            return Settled::Left(format!(
                                "approval {id} is no longer in the store"
                            ));
                        }
                        Ok(ApprovalOutcome::Waiting(_)) => {}
                        Err(e) => {
                            if let Some(gone) = self.store_gone(id, &r, now, &e) {
                                return gone;
                            }
                        }
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, approval = id, "cannot read an approval back from the store");
                }
            }
            self.nap();
        }
    }

    /// A verdict that cannot be recorded as taken is not acted on; past its expiry and a
    /// grace, the run stops waiting.
    fn store_gone(
        &self,
        id: u64,
        r: &ApprovalRecord,
        now: DateTime<Utc>,
        e: &crate::store::StoreError,
    ) -> Option<Settled> {
        tracing::warn!(error = %e, approval = id, "cannot record that this run takes the verdict");
        (now >= r.expires_at + STORE_GRACE).then(|| {
            Settled::Left(format!(
                "the store could not record that this run takes approval {id} ({e}): nothing is done without that record"
            ))
        })
    }

    fn nap(&self) {
        if let Ok(g) = self.wake.lock() {
            let _ = self.decided.wait_timeout(g, POLL);
        }
    }

    pub(super) fn decide(
        &self,
        id: u64,
        approve: bool,
        by: &str,
    ) -> Result<PendingApproval, String> {
        // Past its expiry a request is denied by "timeout" (whether or not a run is there to
        // take that verdict): a late grant must not reach a run that asks later.
        if let Ok(Some(r)) = self.store.approval(id)
            && r.is_pending()
            && Utc::now() >= r.expires_at
        {
            return Err(format!(
                "approval {id} expired at {}; it is no longer pending",
                r.expires_at.format("%H:%M:%SZ")
            ));
        }
        let outcome = self
            .store
            .approval_decide(id, approve, by, Utc::now())
            .map_err(|e| format!("the verdict on approval {id} could not be recorded: {e}"))?;
        match outcome {
            ApprovalOutcome::Done(r) => {
                if let Ok(mut n) = self.wake.lock() {
                    *n += 1;
                }
                self.decided.notify_all();
                Ok(PendingApproval::from_record(&r))
            }
            ApprovalOutcome::Already(_) => Err(format!("approval {id} was already decided")),
            ApprovalOutcome::Missing | ApprovalOutcome::Waiting(_) => {
                Err(format!("there is no pending approval {id}"))
            }
        }
    }

    /// The approvals still waiting for a person, as the store has them (every replica's).
    pub(super) fn list(&self) -> Vec<PendingApproval> {
        let now = Utc::now();
        match self.store.approvals() {
            Ok(all) => all
                .iter()
                .filter(|r| r.is_pending() && now < r.expires_at)
                .map(PendingApproval::from_record)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the pending approvals from the store");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(reason: &str) -> PendingApproval {
        PendingApproval {
            id: 0,
            run: "run-1".into(),
            runbook: "gpu-xid-cordon".into(),
            cluster: "prod".into(),
            reason: reason.into(),
            plan: Vec::new(),
            requested_at: Utc::now(),
        }
    }

    fn scope(timeout: Duration) -> RequestScope<'static> {
        RequestScope {
            group: "prod/node/n1",
            target: "prod/node/n1",
            incident: None,
            timeout,
        }
    }

    fn approvals() -> (tempfile::TempDir, Approvals) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, Approvals::new(store))
    }

    fn stay() -> Option<String> {
        None
    }

    #[test]
    fn a_request_nobody_decides_is_denied_by_timeout_and_forgotten() {
        let (_dir, a) = approvals();
        let id = a
            .request(pending("cordon n1"), scope(Duration::from_millis(10)))
            .expect("request");
        assert_eq!(a.list().len(), 1);
        assert_eq!(
            a.settle(id, "run-1", &stay),
            Settled::Verdict(false, "timeout".to_string())
        );
        assert!(a.list().is_empty());
        assert!(a.decide(id, true, "alice").is_err());
    }

    #[test]
    fn a_verdict_is_given_once_and_reaches_the_waiting_run() {
        let (_dir, a) = approvals();
        let a = std::sync::Arc::new(a);
        let id = a
            .request(pending("drain n1"), scope(Duration::from_secs(10)))
            .expect("request");
        let waiter = {
            let a = a.clone();
            std::thread::spawn(move || a.settle(id, "run-1", &stay))
        };
        assert_eq!(a.decide(id, true, "alice").map(|p| p.id), Ok(id));
        assert!(
            a.decide(id, false, "bob").is_err(),
            "a second verdict is refused"
        );
        assert_eq!(
            waiter.join().ok(),
            Some(Settled::Verdict(true, "alice".to_string()))
        );
        assert!(a.list().is_empty());
    }

    #[test]
    fn a_later_run_takes_over_an_open_approval_and_only_one_run_acts_on_its_grant() {
        let (_dir, a) = approvals();
        let id = a
            .request(pending("cordon n1"), scope(Duration::from_secs(60)))
            .expect("request");
        // The run that asked is gone (its leader died); the next run finds the same approval.
        let open = a.open_for("gpu-xid-cordon", "prod/node/n1").expect("open");
        assert_eq!(open.id, id);
        assert!(a.open_for("gpu-xid-cordon", "prod/node/n2").is_none());
        assert_eq!(a.list().iter().map(|p| p.id).collect::<Vec<_>>(), vec![id]);
        a.decide(id, true, "alice").expect("decide");
        assert_eq!(
            a.settle(id, "run-2", &stay),
            Settled::Verdict(true, "alice".to_string())
        );
        assert!(matches!(a.settle(id, "run-1", &stay), Settled::Left(_)));
        assert!(a.open_for("gpu-xid-cordon", "prod/node/n1").is_none());
    }

    #[test]
    fn an_expired_request_is_neither_listed_nor_taken_over_nor_granted() {
        let (_dir, a) = approvals();
        let id = a
            .request(pending("cordon n1"), scope(Duration::from_millis(1)))
            .expect("request");
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.list().is_empty());
        assert!(a.open_for("gpu-xid-cordon", "prod/node/n1").is_none());
        let refused = a.decide(id, true, "alice").expect_err("expired");
        assert!(refused.contains("expired"), "{refused}");
    }
}
