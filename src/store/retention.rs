//! Keeping the store bounded: `[store] retention` prunes resolved incidents (with their
//! timelines) and entries attached to no incident once nothing about them is newer than the
//! retention, leaving a checkpoint in the audit chain (`audit::Checkpoint`) so the chain still
//! verifies; and the store's figures for `store stats` and `/metrics`.
//!
//! The periodic prune is a plain thread holding only a weak handle: it never keeps a closed
//! store open, and it stops with the face that started it.

use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::writer::{Op, OpResult};
use super::{Inner, Result, Store, audit, keys, writer};
use crate::model::incident::{Incident, Origin};

/// What one prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Resolved incidents removed with their timelines.
    pub incidents: u64,
    /// Audit records removed (their timelines' and old entries attached to no incident).
    pub entries: u64,
    /// The record now holding the checkpoint; `None` when nothing was old enough.
    pub checkpoint: Option<u64>,
    /// Records pruned by every prune so far.
    pub pruned_in_all: u64,
}

/// The store's figures: records per kind of key, size on disk, incidents' span, checkpoint.
// Deserialize: `store stats --attach` reads the daemon's figures back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    pub path: String,
    pub size_on_disk: u64,
    /// Records per key family (`audit`, `incidents`, `timeline`, …), in a fixed order.
    pub trees: Vec<(String, u64)>,
    pub oldest_incident: Option<IncidentMark>,
    pub newest_incident: Option<IncidentMark>,
    pub checkpoint: Option<CheckpointMark>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentMark {
    pub id: u64,
    pub detected: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMark {
    /// The audit record that holds it.
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub pruned: u64,
    pub incidents: u64,
    pub ranges: usize,
    /// Hash of the last record pruned (the newest range's end).
    pub last_pruned_hash: Option<String>,
}

const FAMILIES: [(u8, &str); 12] = [
    (keys::AUDIT, "audit"),
    (keys::INCIDENT, "incidents"),
    (keys::TIMELINE, "timeline"),
    (keys::GROUP, "groups"),
    (keys::COOLDOWN, "cooldowns"),
    (keys::IDEMPOTENCY, "idempotency"),
    (keys::DEDUP, "dedup"),
    (keys::JOURNAL, "journal"),
    (keys::OUTBOX, "outbox"),
    (keys::ALERT_BOOK, "alert_book"),
    (keys::APPROVAL, "approvals"),
    (keys::META, "meta"),
];

impl Store {
    /// Prunes what is older than `retention` (see the module's head) as one commit; returns
    /// what went. `origin` is the face that asked, on the checkpoint's entry.
    pub fn prune_older_than(
        &self,
        retention: Duration,
        now: DateTime<Utc>,
        origin: Origin,
    ) -> Result<PruneReport> {
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        match self.submit_one(Op::Retain { cutoff, origin })? {
            OpResult::Retained(r) => Ok(*r),
            other => Err(writer::unexpected(other)),
        }
    }

    /// Bytes the store's files take on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.backend().size_on_disk()
    }

    /// The checkpoint retention left, and the record holding it.
    pub fn checkpoint(&self) -> Result<Option<(u64, audit::Checkpoint)>> {
        let Some(v) = self.backend().get(&keys::meta("checkpoint"))? else {
            return Ok(None);
        };
        let Ok(bytes) = <[u8; 8]>::try_from(v.as_ref()) else {
            return Ok(None);
        };
        let seq = u64::from_be_bytes(bytes);
        let Some(entry) = self.entry(seq)? else {
            return Ok(None);
        };
        let checkpoint = entry
            .entry
            .detail
            .get("checkpoint")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        Ok(checkpoint.map(|c| (seq, c)))
    }

    pub fn stats(&self) -> Result<StoreStats> {
        let mut counts = [0u64; FAMILIES.len()];
        for (i, (prefix, _)) in FAMILIES.iter().enumerate() {
            counts[i] = self.backend().count(&[*prefix])?;
        }
        let mut oldest: Option<IncidentMark> = None;
        let mut newest: Option<IncidentMark> = None;
        for kv in self.backend().scan(&[keys::INCIDENT], false) {
            let (k, v) = kv?;
            let inc: Incident = self.decode(&k, &v)?;
            let Some(detected) = inc.milestones.detected.or(inc.milestones.started) else {
                continue;
            };
            let mark = || IncidentMark {
                id: inc.id,
                detected,
            };
            if oldest.as_ref().is_none_or(|o| detected < o.detected) {
                oldest = Some(mark());
            }
            if newest.as_ref().is_none_or(|n| detected >= n.detected) {
                newest = Some(mark());
            }
        }
        let checkpoint = match self.checkpoint()? {
            Some((seq, c)) => Some(CheckpointMark {
                seq,
                recorded_at: self.entry(seq)?.map_or_else(Utc::now, |e| e.recorded_at),
                pruned: c.pruned,
                incidents: c.incidents,
                ranges: c.ranges.len(),
                last_pruned_hash: c.ranges.last().map(|r| r.last_hash.clone()),
            }),
            None => None,
        };
        Ok(StoreStats {
            path: self.path().display().to_string(),
            size_on_disk: self.size_on_disk()?,
            trees: FAMILIES
                .iter()
                .zip(counts)
                .map(|((_, name), n)| ((*name).to_owned(), n))
                .collect(),
            oldest_incident: oldest,
            newest_incident: newest,
            checkpoint,
        })
    }

    /// Prunes now and then every `every` while the returned task lives and the store is open
    /// (and drops expired operational memory on the same rounds).
    pub fn spawn_retention(
        &self,
        retention: Duration,
        every: Duration,
        origin: Origin,
    ) -> std::io::Result<RetentionTask> {
        let (stop, stopped) = mpsc::channel::<()>();
        let store: Weak<Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("store-retention".into())
            .spawn(move || {
                loop {
                    let Some(inner) = store.upgrade() else { return };
                    let store = Store { inner };
                    // Expired cooldowns, idempotency and dedup keys go on the same round.
                    if let Err(e) = store.prune(Utc::now()) {
                        tracing::warn!(error = %e, "store retention could not drop expired keys");
                    }
                    match store.prune_older_than(retention, Utc::now(), origin) {
                        Ok(r) if r.entries > 0 => tracing::info!(
                            incidents = r.incidents,
                            entries = r.entries,
                            "store retention pruned"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "store retention could not prune"),
                    }
                    drop(store);
                    match stopped.recv_timeout(every) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(RetentionTask { _stop: stop })
    }
}

/// The periodic prune; it stops when this is dropped.
pub struct RetentionTask {
    _stop: mpsc::Sender<()>,
}
