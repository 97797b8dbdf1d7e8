//! The store's single writer: applies operations in groups, one atomic batch and one flush per
//! group, then answers every waiting caller.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;

use chrono::{DateTime, Utc};

use super::audit::{self, GENESIS, HASH_LEN};
use super::backend::Backend;
use super::memory::{
    ApprovalOutcome, ApprovalRecord, ApprovalVerdict, Claim, Cooldown, IdempotencyRecord, Sighting,
    to_json,
};
use super::{
    Milestone, MilestoneOutcome, Result, SignalRecord, StoreError, incident_group,
    is_gpu_fault_kind, keys,
};
use crate::model::incident::{
    Actor, Entry, EntryKind, Incident, IncidentStatus, Milestones, NewEntry, Origin,
};
use crate::model::signal::{Signal, Subject};

/// The most operations one commit takes, so one huge burst cannot starve the callers queued
/// behind it of their answers.
const MAX_GROUP_OPS: usize = 8192;
/// Incidents kept decoded between commits.
const INCIDENT_CACHE: usize = 4096;

pub(super) struct Job {
    pub ops: Vec<Op>,
    pub reply: mpsc::SyncSender<Result<Vec<OpResult>>>,
}

pub(super) enum Op {
    Append(Box<NewEntry>),
    Signal {
        signal: Box<Signal>,
        origin: Origin,
        window: chrono::Duration,
        now: DateTime<Utc>,
    },
    Cleared {
        dedup_key: String,
        group: String,
        origin: Origin,
        now: DateTime<Utc>,
    },
    Milestone {
        id: u64,
        milestone: Milestone,
        actor: Actor,
        origin: Origin,
        now: DateTime<Utc>,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        key: Vec<u8>,
    },
    Claim {
        record: IdempotencyRecord,
    },
    Finish {
        key: String,
        outcome: String,
        now: DateTime<Utc>,
    },
    Sighting {
        key: String,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// An outbox record, put only if `once`'s dedup key (with now and expiry) is new.
    Enqueue {
        key: Vec<u8>,
        value: Vec<u8>,
        once: Option<(String, DateTime<Utc>, DateTime<Utc>)>,
    },
    Prune {
        now: DateTime<Utc>,
    },
    ApprovalRequest {
        record: Box<ApprovalRecord>,
    },
    ApprovalDecide {
        id: u64,
        verdict: ApprovalVerdict,
    },
    ApprovalSettle {
        id: u64,
        run: String,
        at: DateTime<Utc>,
    },
    /// Retention: resolved incidents with nothing recorded since `cutoff` leave with their
    /// timelines, and so do entries attached to no incident recorded before it.
    Retain {
        cutoff: DateTime<Utc>,
        origin: Origin,
    },
    /// Fills an empty store with an export's records (already checked), in one batch.
    Import {
        records: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

impl Op {
    /// Whether the write is the leader's acting (a shared store checks the Lease's fencing
    /// token on it): the timeline and chain, runs' memory, an approval asked for or taken, a
    /// milestone a run or the system reached, a page queued. A person's verdict or milestone
    /// given on any replica, alert dedup keys, the alert book (any replica's intake keeps it),
    /// a delivery's bookkeeping in the outbox (what was sent is marked sent, whoever sent it:
    /// refusing the mark would send it again) and the store's own upkeep are not.
    fn acts(&self) -> bool {
        match self {
            Op::Milestone { actor, .. } => !matches!(actor, Actor::User(_)),
            Op::Append(e) => !matches!(e.actor, Actor::User(_)),
            Op::Put { key, .. } | Op::Remove { key } => {
                !matches!(key.first(), Some(&keys::ALERT_BOOK | &keys::OUTBOX))
            }
            Op::ApprovalDecide { .. }
            | Op::Sighting { .. }
            | Op::Prune { .. }
            | Op::Retain { .. }
            | Op::Import { .. } => false,
            _ => true,
        }
    }
}

#[derive(Debug)]
pub(super) enum OpResult {
    Entry(Box<Entry>),
    Signal(Box<SignalRecord>),
    Cleared,
    Milestone(Box<MilestoneOutcome>),
    Done,
    Claim(Box<Claim>),
    Sighting(bool),
    Pruned(u64),
    Approval(Box<ApprovalOutcome>),
    Retained(Box<super::retention::PruneReport>),
}

pub(super) fn unexpected(r: OpResult) -> StoreError {
    StoreError::Decode {
        path: PathBuf::new(),
        key: "writer".into(),
        reason: format!("unexpected answer {r:?} (a bug in fleetdeck)"),
    }
}

pub(super) struct WriterState {
    path: PathBuf,
    db: std::sync::Arc<Backend>,
    next_seq: u64,
    head: [u8; HASH_LEN],
    next_incident: u64,
    /// Committed incidents, decoded, plus this group's changes.
    incidents: HashMap<u64, Incident>,
    dirty: Vec<u64>,
    /// This group's writes to keys other than incidents (None = removal).
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Whether this group holds an acting write (`Op::acts`): it carries the fencing token.
    acting: bool,
}

impl WriterState {
    pub fn load(path: PathBuf, db: std::sync::Arc<Backend>) -> Result<Self> {
        let mut s = Self {
            path,
            db,
            next_seq: 1,
            head: GENESIS,
            next_incident: 1,
            incidents: HashMap::new(),
            dirty: Vec::new(),
            pending: BTreeMap::new(),
            acting: false,
        };
        s.reload()?;
        Ok(s)
    }

    /// Reads the chain's head and the next incident id from what is committed.
    fn reload(&mut self) -> Result<()> {
        self.incidents.clear();
        self.dirty.clear();
        self.pending.clear();
        self.acting = false;
        // The last record is the authority for where the chain continues.
        match self.db.last(&[keys::AUDIT])? {
            Some((k, v)) => {
                let seq = keys::read_num(&k, 0).unwrap_or(0);
                let rec = audit::Record::parse(&v).map_err(|reason| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("audit record #{seq}: {reason}"),
                })?;
                self.next_seq = seq + 1;
                self.head = rec.hash;
            }
            None => {
                self.next_seq = 1;
                self.head = GENESIS;
            }
        }
        self.next_incident = match self.db.last(&[keys::INCIDENT])? {
            Some((k, _)) => keys::read_num(&k, 0).unwrap_or(0) + 1,
            None => 1,
        };
        // Retention may have removed the newest incidents: their ids are never given again.
        if let Some(v) = self.db.get(&keys::meta("next_incident"))?
            && let Ok(bytes) = <[u8; 8]>::try_from(v.as_slice())
        {
            self.next_incident = self.next_incident.max(u64::from_be_bytes(bytes));
        }
        Ok(())
    }

    /// On a shared store, starts from what another process committed since this one's last
    /// commit (its records, incidents and ids), so that this group follows them instead of
    /// being refused at the chain head.
    fn catch_up(&mut self) -> Result<()> {
        if !self.db.is_shared() {
            return Ok(());
        }
        let committed = self
            .db
            .get(&keys::meta("head"))?
            .and_then(|v| audit::parse_head(&v))
            .unwrap_or((0, GENESIS));
        if committed != (self.next_seq - 1, self.head) {
            self.reload()?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        self.db.get(key)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    fn incident(&mut self, id: u64) -> Result<&mut Incident> {
        if !self.incidents.contains_key(&id) {
            let key = keys::num(keys::INCIDENT, id);
            let v = self.db.get(&key)?.ok_or_else(|| StoreError::NoIncident {
                path: self.path.clone(),
                id,
            })?;
            let inc: Incident = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                path: self.path.clone(),
                key: format!("incident {id}"),
                reason: e.to_string(),
            })?;
            self.incidents.insert(id, inc);
        }
        if !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
        self.incidents.get_mut(&id).ok_or(StoreError::NoIncident {
            path: self.path.clone(),
            id,
        })
    }

    /// Appends one entry to the chain (and to its incident's timeline).
    fn write_entry(&mut self, mut e: NewEntry, now: DateTime<Utc>) -> Result<Entry> {
        super::redact::redact_entry(&mut e);
        if let Some(id) = e.incident {
            let inc = self.incident(id)?;
            inc.entries += 1;
            if let Some(s) = &e.subject {
                inc.affected.insert(s.describe());
            }
            for c in &e.changes {
                inc.affected.insert(c.object.clone());
            }
        }
        let seq = self.next_seq;
        let entry = Entry {
            seq,
            recorded_at: now,
            entry: e,
        };
        let body = serde_json::to_vec(&entry).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            key: format!("audit #{seq}"),
            reason: e.to_string(),
        })?;
        let (bytes, hash) = audit::encode(seq, &self.head, &body);
        self.put(keys::num(keys::AUDIT, seq), bytes);
        if let Some(id) = entry.entry.incident {
            self.put(keys::pair(keys::TIMELINE, id, seq), Vec::new());
        }
        self.head = hash;
        self.next_seq += 1;
        Ok(entry)
    }

    /// Whether dedup key `key` is new at `at` (never seen, or its sighting expired); a new one
    /// is remembered until `expires_at`.
    fn sight(&mut self, key: &str, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Result<bool> {
        let k = keys::text(keys::DEDUP, key);
        if let Some(v) = self.get(&k)?
            && let Ok(seen) = serde_json::from_slice::<Sighting>(&v)
            && seen.expires_at > at
        {
            return Ok(false);
        }
        self.put(
            k,
            to_json(&Sighting {
                first_seen: at,
                expires_at,
            }),
        );
        Ok(true)
    }

    fn apply(&mut self, op: Op) -> Result<OpResult> {
        let now = Utc::now();
        self.acting |= op.acts();
        match op {
            Op::Append(e) => Ok(OpResult::Entry(Box::new(self.write_entry(*e, now)?))),
            Op::Signal {
                signal,
                origin,
                window,
                now: seen,
            } => self.signal(*signal, origin, window, seen, now),
            Op::Cleared {
                dedup_key,
                group,
                origin,
                now: seen,
            } => self.cleared(&dedup_key, &group, origin, seen, now),
            Op::Milestone {
                id,
                milestone,
                actor,
                origin,
                now: at,
            } => self.milestone(id, milestone, actor, origin, at, now),
            Op::Put { key, value } => {
                self.put(key, value);
                Ok(OpResult::Done)
            }
            Op::Remove { key } => {
                self.pending.insert(key, None);
                Ok(OpResult::Done)
            }
            Op::Claim { record } => {
                let key = keys::text(keys::IDEMPOTENCY, &record.key);
                if let Some(v) = self.get(&key)?
                    && let Ok(held) = serde_json::from_slice::<IdempotencyRecord>(&v)
                    && held.expires_at > record.claimed_at
                {
                    return Ok(OpResult::Claim(Box::new(Claim::Held(held))));
                }
                self.put(key, to_json(&record));
                Ok(OpResult::Claim(Box::new(Claim::Claimed)))
            }
            Op::Finish {
                key,
                outcome,
                now: at,
            } => {
                let k = keys::text(keys::IDEMPOTENCY, &key);
                let mut rec = match self.get(&k)? {
                    Some(v) => serde_json::from_slice::<IdempotencyRecord>(&v).ok(),
                    None => None,
                }
                .unwrap_or(IdempotencyRecord {
                    key,
                    holder: String::new(),
                    claimed_at: at,
                    expires_at: at + chrono::Duration::hours(24),
                    outcome: None,
                    finished_at: None,
                });
                rec.outcome = Some(outcome);
                rec.finished_at = Some(at);
                self.put(k, to_json(&rec));
                Ok(OpResult::Done)
            }
            Op::Sighting {
                key,
                now: at,
                expires_at,
            } => Ok(OpResult::Sighting(self.sight(&key, at, expires_at)?)),
            Op::Enqueue { key, value, once } => {
                if let Some((dedup, at, expires_at)) = once
                    && !self.sight(&dedup, at, expires_at)?
                {
                    return Ok(OpResult::Sighting(false));
                }
                self.put(key, value);
                Ok(OpResult::Sighting(true))
            }
            Op::Prune { now: at } => self.prune(at),
            Op::ApprovalRequest { record } => self.approval_request(*record),
            Op::ApprovalDecide { id, verdict } => self.approval_decide(id, verdict),
            Op::ApprovalSettle { id, run, at } => self.approval_settle(id, run, at),
            Op::Retain { cutoff, origin } => self.retain(cutoff, origin, now),
            Op::Import { records } => self.import(records),
        }
    }

    fn signal(
        &mut self,
        signal: Signal,
        origin: Origin,
        window: chrono::Duration,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OpResult> {
        let group = incident_group(&signal);
        let gkey = keys::text(keys::GROUP, &group);
        let existing = self
            .get(&gkey)?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes));
        let mut recurs = None;
        let mut target = None;
        if let Some(id) = existing {
            let inc = self.incident(id)?;
            let joins = inc.status.is_open()
                && (!inc.active.is_empty() || seen - inc.last_signal_at <= window);
            if joins {
                target = Some(id);
            } else if !inc.status.is_open() {
                recurs = Some(id);
            }
        }
        let (id, opened) = match target {
            Some(id) => (id, false),
            None => {
                let id = self.next_incident;
                self.next_incident += 1;
                let inc = Incident {
                    id,
                    title: signal.summary.clone(),
                    severity: signal.severity,
                    status: IncidentStatus::Open,
                    group: group.clone(),
                    subject: incident_subject(&signal),
                    milestones: Milestones {
                        started: Some(signal.first_seen.min(seen)),
                        detected: Some(now),
                        ..Milestones::default()
                    },
                    affected: Default::default(),
                    active: Default::default(),
                    signals: 0,
                    entries: 0,
                    last_signal_at: seen,
                    recurs,
                };
                self.incidents.insert(id, inc);
                self.dirty.push(id);
                self.put(gkey, id.to_be_bytes().to_vec());
                (id, true)
            }
        };
        let mut detail: BTreeMap<String, serde_json::Value> = signal.evidence.clone();
        detail.insert("signal".into(), signal.kind.clone().into());
        detail.insert(
            "severity".into(),
            serde_json::to_value(signal.severity).unwrap_or_default(),
        );
        detail.insert("dedup_key".into(), signal.dedup_key.clone().into());
        if let Some(a) = &signal.action {
            detail.insert("recommended_action".into(), a.clone().into());
        }
        let mut refired = false;
        {
            let inc = self.incident(id)?;
            if signal.severity > inc.severity {
                inc.severity = signal.severity;
                inc.title = signal.summary.clone();
            }
            inc.active.insert(signal.dedup_key.clone());
            inc.signals += 1;
            inc.last_signal_at = inc.last_signal_at.max(seen);
            let first = signal.first_seen.min(seen);
            inc.milestones.started = Some(inc.milestones.started.map_or(first, |s| s.min(first)));
            if inc.status == IncidentStatus::Mitigated {
                inc.milestones.mitigated = None;
                inc.milestones.refired = Some(seen);
                inc.status = if inc.milestones.acknowledged.is_some() {
                    IncidentStatus::Acknowledged
                } else {
                    IncidentStatus::Open
                };
                refired = true;
            }
        }
        let entry = NewEntry {
            incident: Some(id),
            kind: EntryKind::Signal,
            actor: Actor::System,
            origin,
            occurred_at: signal.first_seen.min(seen),
            subject: Some(signal.subject.clone()),
            summary: format!("{}: {}", signal.kind, signal.summary),
            verdict: None,
            detail,
            changes: Vec::new(),
            outcomes: Vec::new(),
        };
        let entry = self.write_entry(entry, now)?;
        if is_gpu_fault_kind(&signal.kind) {
            let inc = self.incident(id)?;
            inc.title = gpu_fault_title(inc);
        }
        if refired {
            let status = NewEntry::new(
                EntryKind::Status,
                Actor::System,
                origin,
                format!("{} fired again: no longer mitigated", signal.kind),
            )
            .on_incident(id)
            .at(seen);
            self.write_entry(status, now)?;
        }
        Ok(OpResult::Signal(Box::new(SignalRecord {
            incident: id,
            opened,
            entry,
        })))
    }

    fn cleared(
        &mut self,
        dedup_key: &str,
        group: &str,
        origin: Origin,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OpResult> {
        let gkey = keys::text(keys::GROUP, group);
        let Some(id) = self
            .get(&gkey)?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
        else {
            return Ok(OpResult::Cleared);
        };
        let (was_active, now_quiet, subject) = {
            let inc = self.incident(id)?;
            let was = inc.active.remove(dedup_key);
            let quiet = inc.active.is_empty()
                && matches!(
                    inc.status,
                    IncidentStatus::Open | IncidentStatus::Acknowledged
                );
            if was && quiet {
                inc.milestones.mitigated = Some(seen);
                inc.status = IncidentStatus::Mitigated;
            }
            (was, quiet, inc.subject.clone())
        };
        if !was_active {
            return Ok(OpResult::Cleared);
        }
        let e = NewEntry::new(
            EntryKind::Signal,
            Actor::System,
            origin,
            format!("cleared: {dedup_key}"),
        )
        .on_incident(id)
        .about(subject)
        .at(seen);
        self.write_entry(e, now)?;
        if now_quiet {
            let e = NewEntry::new(
                EntryKind::Status,
                Actor::System,
                origin,
                "mitigated: every signal has cleared",
            )
            .on_incident(id)
            .at(seen);
            self.write_entry(e, now)?;
        }
        Ok(OpResult::Cleared)
    }

    fn milestone(
        &mut self,
        id: u64,
        milestone: Milestone,
        actor: Actor,
        origin: Origin,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<OpResult> {
        let summary: String = {
            let inc = self.incident(id)?;
            let status = inc.status;
            let m = &mut inc.milestones;
            match milestone {
                Milestone::Acknowledged if m.acknowledged.is_none() && status.is_open() => {
                    m.acknowledged = Some(at);
                    if status == IncidentStatus::Open {
                        inc.status = IncidentStatus::Acknowledged;
                    }
                    format!("acknowledged by {actor}")
                }
                Milestone::Mitigated if m.mitigated.is_none() && status.is_open() => {
                    m.mitigated = Some(at);
                    inc.status = IncidentStatus::Mitigated;
                    format!("mitigated, said {actor}")
                }
                Milestone::Resolved if status.is_open() => {
                    m.mitigated.get_or_insert(at);
                    m.resolved = Some(at);
                    inc.status = IncidentStatus::Resolved;
                    format!("resolved by {actor}")
                }
                _ => {
                    return Ok(OpResult::Milestone(Box::new(MilestoneOutcome::Already(
                        status,
                    ))));
                }
            }
        };
        let e = NewEntry::new(EntryKind::Status, actor, origin, summary)
            .on_incident(id)
            .at(at);
        let entry = self.write_entry(e, now)?;
        Ok(OpResult::Milestone(Box::new(MilestoneOutcome::Reached(
            entry,
        ))))
    }

    fn approval_get(&self, id: u64) -> Result<Option<ApprovalRecord>> {
        let key = keys::approval(id);
        match self.get(&key)? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Decode {
                    path: self.path.clone(),
                    key: format!("approval {id}"),
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    fn approval_put(&mut self, record: &ApprovalRecord) {
        self.put(keys::approval(record.id), to_json(record));
    }

    fn approval_request(&mut self, mut record: ApprovalRecord) -> Result<OpResult> {
        // The newest id, committed or in this group: ids are never given twice (records are
        // kept once settled, so the last key is the highest id ever given).
        let committed = match self.db.last(&[keys::APPROVAL])? {
            Some((k, _)) => approval_id(&k),
            None => 0,
        };
        let grouped = self
            .pending
            .range(vec![keys::APPROVAL]..vec![keys::APPROVAL + 1])
            .next_back()
            .map_or(0, |(k, _)| approval_id(k));
        record.id = committed.max(grouped) + 1;
        record.verdict = None;
        record.settled_by = None;
        self.approval_put(&record);
        Ok(OpResult::Approval(Box::new(ApprovalOutcome::Done(record))))
    }

    fn approval_decide(&mut self, id: u64, verdict: ApprovalVerdict) -> Result<OpResult> {
        let outcome = match self.approval_get(id)? {
            None => ApprovalOutcome::Missing,
            Some(r) if r.verdict.is_some() || r.settled_by.is_some() => ApprovalOutcome::Already(r),
            Some(mut r) => {
                r.verdict = Some(verdict);
                self.approval_put(&r);
                ApprovalOutcome::Done(r)
            }
        };
        Ok(OpResult::Approval(Box::new(outcome)))
    }

    fn approval_settle(&mut self, id: u64, run: String, at: DateTime<Utc>) -> Result<OpResult> {
        let outcome = match self.approval_get(id)? {
            None => ApprovalOutcome::Missing,
            Some(r) if r.settled_by.is_some() => ApprovalOutcome::Already(r),
            Some(r) if r.verdict.is_none() && at < r.expires_at => ApprovalOutcome::Waiting(r),
            Some(mut r) => {
                if r.verdict.is_none() {
                    r.verdict = Some(ApprovalVerdict {
                        approved: false,
                        by: "timeout".into(),
                        at,
                    });
                }
                r.settled_by = Some(run);
                self.approval_put(&r);
                ApprovalOutcome::Done(r)
            }
        };
        Ok(OpResult::Approval(Box::new(outcome)))
    }

    fn prune(&mut self, at: DateTime<Utc>) -> Result<OpResult> {
        let mut gone = Vec::new();
        for kv in self.db.scan(&[keys::DEDUP], false) {
            let (k, v) = kv?;
            if serde_json::from_slice::<Sighting>(&v).is_ok_and(|s| s.expires_at <= at) {
                gone.push(k.to_vec());
            }
        }
        for kv in self.db.scan(&[keys::IDEMPOTENCY], false) {
            let (k, v) = kv?;
            if serde_json::from_slice::<IdempotencyRecord>(&v).is_ok_and(|r| r.expires_at <= at) {
                gone.push(k.to_vec());
            }
        }
        for kv in self.db.scan(&[keys::COOLDOWN], false) {
            let (k, v) = kv?;
            if serde_json::from_slice::<Cooldown>(&v).is_ok_and(|c| c.until <= at) {
                gone.push(k.to_vec());
            }
        }
        for kv in self.db.scan(&[keys::OUTBOX], false) {
            let (k, v) = kv?;
            if super::memory::outbox_prunable(&v, at) {
                gone.push(k.to_vec());
            }
        }
        let n = gone.len() as u64;
        for k in gone {
            self.pending.entry(k).or_insert(None);
        }
        Ok(OpResult::Pruned(n))
    }

    /// The record at `seq`: its prev hash, its hash and the times and incident of its entry.
    fn record_at(&self, seq: u64) -> Result<Option<(RecordProbe, Links)>> {
        let Some(v) = self.db.get(&keys::num(keys::AUDIT, seq))? else {
            return Ok(None);
        };
        let bad = |reason: String| StoreError::Decode {
            path: self.path.clone(),
            key: format!("audit #{seq}"),
            reason,
        };
        let rec = audit::Record::parse(&v).map_err(bad)?;
        let probe: RecordProbe =
            serde_json::from_slice(rec.body).map_err(|e| bad(e.to_string()))?;
        Ok(Some((probe, (rec.prev, rec.hash))))
    }

    fn retain(
        &mut self,
        cutoff: DateTime<Utc>,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Result<OpResult> {
        // What this group wrote so far is committed first: the scans below read the disk.
        self.commit()?;
        let mut gone_incidents: Vec<u64> = Vec::new();
        let mut gone_keys: Vec<Vec<u8>> = Vec::new();
        let mut seqs: BTreeMap<u64, ([u8; HASH_LEN], [u8; HASH_LEN])> = BTreeMap::new();
        'incidents: for kv in self.db.scan(&[keys::INCIDENT], false) {
            let (k, v) = kv?;
            let Ok(inc) = serde_json::from_slice::<Incident>(&v) else {
                continue;
            };
            if inc.status != IncidentStatus::Resolved || super::last_activity(&inc) >= cutoff {
                continue;
            }
            let mut own = Vec::new();
            let mut own_keys = vec![k.to_vec()];
            for kv in self.db.scan(&keys::num(keys::TIMELINE, inc.id), false) {
                let (tk, _) = kv?;
                let Some(seq) = keys::read_num(&tk, 8) else {
                    continue;
                };
                match self.record_at(seq)? {
                    // A note written after the incident was resolved keeps it.
                    Some((probe, _)) if probe.recorded_at >= cutoff => continue 'incidents,
                    Some((_, (prev, hash))) => own.push((seq, prev, hash)),
                    None => {}
                }
                own_keys.push(tk.to_vec());
            }
            gone_keys.extend(own_keys);
            gone_incidents.push(inc.id);
            seqs.extend(own.into_iter().map(|(seq, prev, hash)| (seq, (prev, hash))));
        }
        // Entries on no incident (refusals, checkpoints) leave by age; the chain is in time order.
        let mut old_checkpoints = Vec::new();
        for kv in self.db.scan(&[keys::AUDIT], false) {
            let (k, v) = kv?;
            let Some(seq) = keys::read_num(&k, 0) else {
                continue;
            };
            let Ok(rec) = audit::Record::parse(&v) else {
                continue;
            };
            let Ok(probe) = serde_json::from_slice::<RecordProbe>(rec.body) else {
                continue;
            };
            if probe.recorded_at >= cutoff {
                break;
            }
            if probe.incident.is_some() {
                continue;
            }
            // A checkpoint alone is no reason to prune (each prune would replace the last).
            if probe.detail.checkpoint.is_some() {
                old_checkpoints.push((seq, (rec.prev, rec.hash)));
            } else {
                seqs.insert(seq, (rec.prev, rec.hash));
            }
        }
        if seqs.is_empty() {
            return Ok(OpResult::Retained(Box::default()));
        }
        seqs.extend(old_checkpoints);
        let mut checkpoint = match self.get(&keys::meta("checkpoint"))? {
            Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
                Ok(b) => self
                    .db
                    .get(&keys::num(keys::AUDIT, u64::from_be_bytes(b)))?
                    .and_then(|v| {
                        let rec = audit::Record::parse(&v).ok()?;
                        audit::Checkpoint::from_body(rec.body)
                    })
                    .unwrap_or_default(),
                Err(_) => audit::Checkpoint::default(),
            },
            None => audit::Checkpoint::default(),
        };
        let records: Vec<_> = seqs
            .iter()
            .map(|(seq, (prev, hash))| (*seq, *prev, *hash))
            .collect();
        let entries = records.len() as u64;
        checkpoint.add(&records);
        checkpoint.incidents += gone_incidents.len() as u64;
        for seq in seqs.keys() {
            gone_keys.push(keys::num(keys::AUDIT, *seq));
        }
        for kv in self.db.scan(&[keys::GROUP], false) {
            let (k, v) = kv?;
            let id = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes);
            if id.is_ok_and(|id| gone_incidents.contains(&id)) {
                gone_keys.push(k.to_vec());
            }
        }
        for id in &gone_incidents {
            self.incidents.remove(id);
            self.dirty.retain(|d| d != id);
        }
        for k in gone_keys {
            self.pending.insert(k, None);
        }
        let mut entry = NewEntry::new(
            EntryKind::Status,
            Actor::System,
            origin,
            format!(
                "retention pruned {entries} audit records ({} resolved incidents) recorded before {}; {} records pruned in all",
                gone_incidents.len(),
                cutoff.format("%Y-%m-%dT%H:%M:%SZ"),
                checkpoint.pruned
            ),
        );
        entry.detail.insert(
            "checkpoint".into(),
            serde_json::to_value(&checkpoint).unwrap_or_default(),
        );
        let written = self.write_entry(entry, now)?;
        self.put(keys::meta("checkpoint"), written.seq.to_be_bytes().to_vec());
        self.put(
            keys::meta("next_incident"),
            self.next_incident.to_be_bytes().to_vec(),
        );
        Ok(OpResult::Retained(Box::new(
            super::retention::PruneReport {
                incidents: gone_incidents.len() as u64,
                entries,
                checkpoint: Some(written.seq),
                pruned_in_all: checkpoint.pruned,
            },
        )))
    }

    fn import(&mut self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<OpResult> {
        self.commit()?;
        let held = self.db.records()?;
        if held > 0 {
            return Err(StoreError::NotEmpty {
                path: self.path.clone(),
                records: held,
            });
        }
        self.db
            .commit(records.into_iter().map(|(k, v)| (k, Some(v))).collect())?;
        self.reload()?;
        Ok(OpResult::Done)
    }

    /// Writes the group as one atomic batch and makes it durable.
    fn commit(&mut self) -> Result<()> {
        let acting = std::mem::take(&mut self.acting);
        let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        for id in std::mem::take(&mut self.dirty) {
            if let Some(inc) = self.incidents.get(&id) {
                batch.push((keys::num(keys::INCIDENT, id), Some(to_json(inc))));
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        batch.push((
            keys::meta("head"),
            Some(audit::head_value(self.next_seq - 1, &self.head)),
        ));
        self.db.commit_acting(batch, acting)?;
        if self.incidents.len() > INCIDENT_CACHE {
            self.incidents.clear();
        }
        Ok(())
    }
}

/// A record's link to the one before it and its own hash.
type Links = ([u8; HASH_LEN], [u8; HASH_LEN]);

/// The parts of an entry's JSON that retention reads.
#[derive(serde::Deserialize)]
struct RecordProbe {
    recorded_at: DateTime<Utc>,
    #[serde(default)]
    incident: Option<u64>,
    #[serde(default)]
    detail: ProbeDetail,
}

#[derive(serde::Deserialize, Default)]
struct ProbeDetail {
    #[serde(default)]
    checkpoint: Option<serde::de::IgnoredAny>,
}

/// The writer thread: runs until every `Store` handle is gone.
pub(super) fn run(mut state: WriterState, jobs: mpsc::Receiver<Job>) {
    let mut stale = false;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let mut ops = group[0].ops.len();
        while ops < MAX_GROUP_OPS {
            match jobs.try_recv() {
                Ok(job) => {
                    ops += job.ops.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        // A reload that failed (the database unreachable) is tried again before each group:
        // the writer lives on, and writes work again once the database is back.
        if stale {
            match state.reload() {
                Ok(()) => stale = false,
                Err(e) => {
                    let message = e.to_string();
                    for job in group {
                        let _ = job.reply.send(Err(StoreError::Decode {
                            path: state.path.clone(),
                            key: "commit".into(),
                            reason: message.clone(),
                        }));
                    }
                    continue;
                }
            }
        }
        if let Err(e) = state.catch_up() {
            tracing::warn!(error = %e, "store: could not read the chain head before a commit");
        }
        let mut answers: Vec<Result<Vec<OpResult>>> = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for job in group {
            let mut results = Vec::with_capacity(job.ops.len());
            let mut failed = None;
            for op in job.ops {
                match state.apply(op) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            answers.push(match failed {
                Some(e) => Err(e),
                None => Ok(results),
            });
            replies.push(job.reply);
        }
        if let Err(e) = state.commit() {
            // Nothing of this group is known to be durable: every caller hears the error, and
            // the next group starts again from what the disk holds.
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Decode {
                    path: state.path.clone(),
                    key: "commit".into(),
                    reason: message.clone(),
                }));
            }
            stale = state.reload().is_err();
            continue;
        }
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}

/// The id in an approval's key (its 20 decimal digits).
fn approval_id(key: &[u8]) -> u64 {
    std::str::from_utf8(key.get(1..).unwrap_or_default())
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// An incident's subject: the signal's, except that a GPU's hardware fault is its node's (the
/// pod that held the GPU is in the signal's own subject, on the timeline).
fn incident_subject(signal: &Signal) -> Subject {
    match &signal.subject.node {
        Some(node) if is_gpu_fault_kind(&signal.kind) => Subject {
            cluster: signal.subject.cluster.clone(),
            node: Some(node.clone()),
            ..Subject::default()
        },
        _ => signal.subject.clone(),
    }
}

/// Separates the GPUs of a node's GPU-fault title from its worst signal's summary.
const WORST: &str = "; worst: ";

/// The title of a node's GPU-fault incident: the worst signal's summary while one GPU is
/// affected; with more, the node, how many GPUs and which, then the worst summary (the title
/// the incident had: [`Incident::title`] follows the most severe signal).
fn gpu_fault_title(inc: &Incident) -> String {
    let worst = inc
        .title
        .split_once(WORST)
        .map_or(inc.title.as_str(), |(_, w)| w);
    let Some(node) = &inc.subject.node else {
        return worst.to_string();
    };
    // Every signal's subject is in `affected` as `cluster/node/gpuN (UUID)/…`.
    let prefix = format!("{}/{node}/", inc.subject.cluster);
    let gpus: std::collections::BTreeSet<&str> = inc
        .affected
        .iter()
        .filter_map(|a| a.strip_prefix(prefix.as_str()))
        .filter(|rest| rest.starts_with("gpu"))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    if gpus.len() < 2 {
        return worst.to_string();
    }
    let mut names: Vec<&str> = gpus.into_iter().collect();
    // gpu2 before gpu10.
    names.sort_by_key(|g| (g.len(), *g));
    format!(
        "{node}: {} GPUs faulty ({}){WORST}{worst}",
        names.len(),
        names.join(", ")
    )
}
