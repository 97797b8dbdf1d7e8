//! Approvals: the plans and requests that wait for a person, their verdicts (approve, deny,
//! by whom) and their timeouts. The executor asks and waits here; the faces list and decide
//! through the executor. Imports only the executor's `PlanStep`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::executor::PlanStep;

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

/// The approvals waiting for a person, shared by every run of one executor.
#[derive(Default)]
pub(super) struct Approvals {
    pending: Mutex<BTreeMap<u64, (PendingApproval, PersonVerdict)>>,
    decided: Condvar,
    next: AtomicU64,
}

impl Approvals {
    pub(super) fn request(&self, mut p: PendingApproval) -> u64 {
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

    pub(super) fn decide(
        &self,
        id: u64,
        approve: bool,
        by: &str,
    ) -> Result<PendingApproval, String> {
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

    /// Waits for the verdict on `id` and forgets it: `(approved, by)`, where a request nobody
    /// decided within `timeout` is denied `by` "timeout".
    pub(super) fn settle(&self, id: u64, timeout: Duration) -> (bool, String) {
        let verdict = self.wait(id, timeout);
        self.forget(id);
        verdict.unwrap_or_else(|| (false, "timeout".into()))
    }

    pub(super) fn list(&self) -> Vec<PendingApproval> {
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

    #[test]
    fn a_request_nobody_decides_is_denied_by_timeout_and_forgotten() {
        let a = Approvals::default();
        let id = a.request(pending("cordon n1"));
        assert_eq!(a.list().len(), 1);
        assert_eq!(
            a.settle(id, Duration::from_millis(10)),
            (false, "timeout".to_string())
        );
        assert!(a.list().is_empty());
        assert!(a.decide(id, true, "alice").is_err());
    }

    #[test]
    fn a_verdict_is_given_once_and_reaches_the_waiting_run() {
        let a = std::sync::Arc::new(Approvals::default());
        let id = a.request(pending("drain n1"));
        let waiter = {
            let a = a.clone();
            std::thread::spawn(move || a.settle(id, Duration::from_secs(10)))
        };
        assert_eq!(a.decide(id, true, "alice").map(|p| p.id), Ok(id));
        assert!(
            a.decide(id, false, "bob").is_err(),
            "a second verdict is refused"
        );
        assert_eq!(waiter.join().ok(), Some((true, "alice".to_string())));
        assert!(a.list().is_empty());
    }
}
