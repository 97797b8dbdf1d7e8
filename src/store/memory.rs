//! Operational memory that must survive restarts: per-target cooldowns, idempotency keys of
//! actions, alert dedup keys (with expiry) and the journal of runbook runs in flight.

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

impl Store {
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
