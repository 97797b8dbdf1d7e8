//! Operational memory that must survive restarts: per-target cooldowns, idempotency keys of
//! actions, alert dedup keys (with expiry), the journal of runbook runs in flight, the
//! approvals waiting for a person (with their verdicts), which a shared store shows to every
//! replica and hands to the next leader, the outbox (notifications and Kubernetes Events owed,
//! until delivered or given up) and the alert book (outside alerts firing, until their `endsAt`
//! or their resolution).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::writer::{Op, OpResult, unexpected};
use super::{Result, Store, keys};

/// A cooldown on a target (`cluster/node/gpu-7`, a runbook name…): no automation until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cooldown {
    pub until: DateTime<Utc>,
    /// Who set it (a runbook name).
    pub by: String,
}

/// An action's idempotency key: claimed before the action runs, finished after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    /// Who claimed it (a process identity: host/pid, or the Lease holder).
    pub holder: String,
    pub claimed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set when the action finished: its outcome in a word or a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Yours: go ahead.
    Claimed,
    /// Someone claimed it and has not finished (or it finished): do not repeat the action.
    Held(IdempotencyRecord),
}

/// A runbook run in flight: written when it starts and at each step, removed when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub run: String,
    pub runbook: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The step it was at (a human-readable phrase).
    pub step: String,
    /// Whatever the engine needs to resume or reconcile.
    #[serde(default)]
    pub state: serde_json::Value,
}

/// What an outbox record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    /// A message for a notification sink (`notify::Message`).
    Notify,
    /// A timeline entry owed as a Kubernetes Event on its object (`body.seq`).
    Event,
}

/// Something owed to the outside world, written before it is sent: a restart, or a new leader
/// on a shared store, finds what is still owed and sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// Sorts in the order records were queued (see [`OutboxRecord::new_id`]).
    pub id: String,
    pub kind: OutboxKind,
    /// Records of one chain are delivered in order: a later one waits while an earlier one is
    /// owed (a PagerDuty resolve never overtakes its trigger). `None`: waits for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    /// What to send, in its owner's shape.
    pub body: serde_json::Value,
    pub queued_at: DateTime<Utc>,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not tried again before this.
    pub next_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up_at: Option<DateTime<Utc>>,
}

impl OutboxRecord {
    /// A record owed from `now` on, not yet tried, with a fresh id.
    pub fn owed(
        kind: OutboxKind,
        chain: Option<String>,
        incident: Option<u64>,
        body: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Self::new_id(now),
            kind,
            chain,
            incident,
            body,
            queued_at: now,
            attempts: 0,
            next_at: now,
            last_error: None,
            delivered_at: None,
            gave_up_at: None,
        }
    }

    /// An id that sorts by `at` (then by a counter of this process, then the process), so a
    /// scan of the outbox reads records in the order they were queued, also across replicas.
    pub fn new_id(at: DateTime<Utc>) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "{:020}.{:08}.{}",
            at.timestamp_micros().max(0),
            NEXT.fetch_add(1, Ordering::Relaxed) % 100_000_000,
            std::process::id()
        )
    }

    /// Still owed: neither delivered nor given up.
    pub fn is_owed(&self) -> bool {
        self.delivered_at.is_none() && self.gave_up_at.is_none()
    }
}

/// Finished outbox records (delivered or given up) are kept this long, then pruned.
const OUTBOX_KEEP: chrono::Duration = chrono::Duration::days(7);

/// An outside alert firing, as the alert book keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookedAlert {
    /// The signal's dedup key (`alert:FINGERPRINT`).
    pub key: String,
    /// The start of its firing episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// When its sender said it ends (Alertmanager's `endsAt`); past it, the alert has ended
    /// even if no resolved notice came. `None`: until resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub signal: crate::model::signal::Signal,
}

impl Store {
    /// Writes `record` to the outbox; with `once` (a dedup key, now, until when it is
    /// remembered), only if that key was not seen before, in the same commit, so a message is
    /// queued once however often it is asked for, and never remembered without being queued.
    /// Answers whether it was queued.
    pub fn outbox_enqueue(
        &self,
        record: &OutboxRecord,
        once: Option<(&str, DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<bool> {
        match self.submit_one(Op::Enqueue {
            key: keys::text(keys::OUTBOX, &record.id),
            value: to_json(record),
            once: once.map(|(k, now, until)| (k.to_string(), now, until)),
        })? {
            OpResult::Sighting(queued) => Ok(queued),
            other => Err(unexpected(other)),
        }
    }

    /// Writes `record`'s new state (an attempt made, delivered, given up).
    pub fn outbox_update(&self, record: &OutboxRecord) -> Result<()> {
        self.done(Op::Put {
            key: keys::text(keys::OUTBOX, &record.id),
            value: to_json(record),
        })
    }

    /// Writes every record to the outbox in one commit (no dedup key).
    pub fn outbox_put_all(&self, records: &[OutboxRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let ops = records
            .iter()
            .map(|r| Op::Put {
                key: keys::text(keys::OUTBOX, &r.id),
                value: to_json(r),
            })
            .collect();
        self.submit(ops).map(|_| ())
    }

    /// Forgets an outbox record (one delivered that no one needs to read again).
    pub fn outbox_remove(&self, id: &str) -> Result<()> {
        self.done(Op::Remove {
            key: keys::text(keys::OUTBOX, id),
        })
    }

    /// Every outbox record, in the order queued (finished ones until they are pruned).
    pub fn outbox(&self) -> Result<Vec<OutboxRecord>> {
        self.scan_json(keys::OUTBOX)
    }

    /// Puts (or replaces) an alert in the alert book.
    pub fn book_put(&self, alert: &BookedAlert) -> Result<()> {
        self.done(Op::Put {
            key: keys::text(keys::ALERT_BOOK, &alert.key),
            value: to_json(alert),
        })
    }

    /// Takes the alert under `key` out of the alert book.
    pub fn book_remove(&self, key: &str) -> Result<()> {
        self.done(Op::Remove {
            key: keys::text(keys::ALERT_BOOK, key),
        })
    }

    /// The alert book: every alert firing when it was last written.
    pub fn alert_book(&self) -> Result<Vec<BookedAlert>> {
        self.scan_json(keys::ALERT_BOOK)
    }

    fn scan_json<T: serde::de::DeserializeOwned>(&self, prefix: u8) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for kv in self.backend().scan(&[prefix], false) {
            let (k, v) = kv?;
            out.push(self.decode(&k, &v)?);
        }
        Ok(out)
    }
}

/// A request for a person's approval, kept until a run takes its verdict: the same record on
/// every replica of a shared store, so a follower lists it and a new leader takes it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Given by the store when it is requested (0 before).
    pub id: u64,
    /// The run that asked.
    pub run: String,
    pub runbook: String,
    pub cluster: String,
    /// The signal's target group: a later run of the same runbook on the same group (a new
    /// leader's) waits for this approval instead of asking again.
    pub group: String,
    /// What the plan acts on, in words.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    pub reason: String,
    /// The plan's steps as the executor serialised them.
    #[serde(default)]
    pub plan: serde_json::Value,
    pub requested_at: DateTime<Utc>,
    /// Undecided by then, it is denied by "timeout".
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<ApprovalVerdict>,
    /// The run that took the verdict (and acted on a grant): at most one ever does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_by: Option<String>,
}

impl ApprovalRecord {
    /// Still waiting for a person.
    pub fn is_pending(&self) -> bool {
        self.verdict.is_none() && self.settled_by.is_none()
    }
}

/// A verdict on an approval: granted or not, by whom (a person, or "timeout"), when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalVerdict {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// What deciding or settling an approval found.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalOutcome {
    /// This call decided it (`approval_decide`) or took its verdict (`approval_settle`).
    Done(ApprovalRecord),
    /// Decided before (`approval_decide`), or its verdict taken by another run
    /// (`approval_settle`): nothing changed.
    Already(ApprovalRecord),
    /// No verdict yet and not expired (`approval_settle`).
    Waiting(ApprovalRecord),
    /// There is no approval with this id.
    Missing,
}

impl Store {
    /// Records a request for approval and gives it the next id (ids are never reused).
    pub fn approval_request(&self, record: ApprovalRecord) -> Result<ApprovalRecord> {
        self.approval_op(Op::ApprovalRequest {
            record: Box::new(record),
        })
        .and_then(|o| match o {
            ApprovalOutcome::Done(r) => Ok(r),
            other => Err(unexpected(OpResult::Approval(Box::new(other)))),
        })
    }

    /// A person's verdict on `id`, kept unless it was decided before.
    pub fn approval_decide(
        &self,
        id: u64,
        approved: bool,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<ApprovalOutcome> {
        self.approval_op(Op::ApprovalDecide {
            id,
            verdict: ApprovalVerdict {
                approved,
                by: by.to_string(),
                at,
            },
        })
    }

    /// `run` takes the verdict on `id` (an undecided request past its expiry is denied by
    /// "timeout" first): `Done` once, to one run; `Already` to any other; `Waiting` while no
    /// verdict is in.
    pub fn approval_settle(
        &self,
        id: u64,
        run: &str,
        at: DateTime<Utc>,
    ) -> Result<ApprovalOutcome> {
        self.approval_op(Op::ApprovalSettle {
            id,
            run: run.to_string(),
            at,
        })
    }

    pub fn approval(&self, id: u64) -> Result<Option<ApprovalRecord>> {
        self.read(&keys::approval(id))
    }

    /// Every approval kept, oldest first.
    pub fn approvals(&self) -> Result<Vec<ApprovalRecord>> {
        let mut out = Vec::new();
        for kv in self.backend().scan(&[keys::APPROVAL], false) {
            let (k, v) = kv?;
            out.push(self.decode(&k, &v)?);
        }
        Ok(out)
    }

    fn approval_op(&self, op: Op) -> Result<ApprovalOutcome> {
        match self.submit_one(op)? {
            OpResult::Approval(o) => Ok(*o),
            other => Err(unexpected(other)),
        }
    }

    pub fn set_cooldown(&self, target: &str, cooldown: Cooldown) -> Result<()> {
        self.done(Op::Put {
            key: keys::text(keys::COOLDOWN, target),
            value: to_json(&cooldown),
        })
    }

    /// The cooldown on `target` if it still runs at `now`.
    pub fn cooldown(&self, target: &str, now: DateTime<Utc>) -> Result<Option<Cooldown>> {
        let c: Option<Cooldown> = self.read(&keys::text(keys::COOLDOWN, target))?;
        Ok(c.filter(|c| c.until > now))
    }

    /// Claims `key` for `holder` until `expires_at`, unless someone holds it (an unexpired
    /// claim, or a finished action).
    pub fn claim(
        &self,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim> {
        match self.submit_one(Op::Claim {
            record: IdempotencyRecord {
                key: key.to_string(),
                holder: holder.to_string(),
                claimed_at: now,
                expires_at,
                outcome: None,
                finished_at: None,
            },
        })? {
            OpResult::Claim(c) => Ok(*c),
            other => Err(unexpected(other)),
        }
    }

    /// Marks `key`'s action finished; a finished key is held until its expiry.
    pub fn finish(&self, key: &str, outcome: &str, now: DateTime<Utc>) -> Result<()> {
        self.done(Op::Finish {
            key: key.to_string(),
            outcome: outcome.to_string(),
            now,
        })
    }

    pub fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>> {
        self.read(&keys::text(keys::IDEMPOTENCY, key))
    }

    /// True the first time `key` is seen (or after its previous sighting expired); the key is
    /// then remembered until `expires_at`.
    pub fn first_sighting(
        &self,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        match self.submit_one(Op::Sighting {
            key: key.to_string(),
            now,
            expires_at,
        })? {
            OpResult::Sighting(first) => Ok(first),
            other => Err(unexpected(other)),
        }
    }

    pub fn journal_put(&self, record: &JournalRecord) -> Result<()> {
        self.done(Op::Put {
            key: keys::text(keys::JOURNAL, &record.run),
            value: to_json(record),
        })
    }

    pub fn journal_remove(&self, run: &str) -> Result<()> {
        self.done(Op::Remove {
            key: keys::text(keys::JOURNAL, run),
        })
    }

    /// Runs that were in flight when the last process stopped (or still are).
    pub fn journal(&self) -> Result<Vec<JournalRecord>> {
        let mut out = Vec::new();
        for kv in self.backend().scan(&[keys::JOURNAL], false) {
            let (k, v) = kv?;
            out.push(self.decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Forgets expired dedup keys, idempotency keys and cooldowns; returns how many.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<u64> {
        match self.submit_one(Op::Prune { now })? {
            OpResult::Pruned(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    fn done(&self, op: Op) -> Result<()> {
        match self.submit_one(op)? {
            OpResult::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.backend().get(key)? {
            Some(v) => Ok(Some(self.decode(key, &v)?)),
            None => Ok(None),
        }
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

/// Alert dedup keys are stored with their expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Sighting {
    pub first_seen: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Whether a finished outbox record (its stored value) is old enough at `at` to be pruned.
pub(super) fn outbox_prunable(value: &[u8], at: DateTime<Utc>) -> bool {
    serde_json::from_slice::<OutboxRecord>(value).is_ok_and(|r| {
        r.delivered_at
            .or(r.gave_up_at)
            .is_some_and(|done| done + OUTBOX_KEEP <= at)
    })
}
