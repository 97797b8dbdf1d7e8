//! The audit hash chain: every timeline entry is a record that carries the SHA-256 of the one
//! before it, so altering, removing or reordering a record breaks the chain where it happened.
//!
//! A record is stored under `a` + its sequence number (big-endian) as
//! `seq (8) | prev hash (32) | hash (32) | entry JSON`, where
//! `hash = SHA-256(prev hash | seq | entry JSON)`. The head (last seq and hash) is kept beside
//! the chain, written in the same atomic batch, so a removed tail is noticed too.
//!
//! Retention removes records (`store::retention`). What it removed is kept in a checkpoint: a
//! record of the chain itself (so it cannot be altered unnoticed) whose entry holds every pruned
//! range with the hash before it and the hash of its last record. The chain may skip a range
//! only where the latest checkpoint (`m` + `checkpoint`) names it and both ends link.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys;

pub const HASH_LEN: usize = 32;
const HEADER: usize = 8 + HASH_LEN + HASH_LEN;
/// The hash before the first record.
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

pub struct Record<'a> {
    pub seq: u64,
    pub prev: [u8; HASH_LEN],
    pub hash: [u8; HASH_LEN],
    pub body: &'a [u8],
}

impl<'a> Record<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < HEADER {
            return Err(format!(
                "{} bytes, shorter than a record header ({HEADER})",
                bytes.len()
            ));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        let mut prev = [0u8; HASH_LEN];
        prev.copy_from_slice(&bytes[8..8 + HASH_LEN]);
        let mut hash = [0u8; HASH_LEN];
        hash.copy_from_slice(&bytes[8 + HASH_LEN..HEADER]);
        Ok(Self {
            seq: u64::from_be_bytes(seq),
            prev,
            hash,
            body: &bytes[HEADER..],
        })
    }
}

pub fn chain_hash(prev: &[u8; HASH_LEN], seq: u64, body: &[u8]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(body);
    h.finalize().into()
}

/// Builds the stored bytes of record `seq` after `prev`; returns them and the new hash.
pub fn encode(seq: u64, prev: &[u8; HASH_LEN], body: &[u8]) -> (Vec<u8>, [u8; HASH_LEN]) {
    let hash = chain_hash(prev, seq, body);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(&hash);
    out.extend_from_slice(body);
    (out, hash)
}

pub fn head_value(seq: u64, hash: &[u8; HASH_LEN]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + HASH_LEN);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(hash);
    v
}

pub fn parse_head(v: &[u8]) -> Option<(u64, [u8; HASH_LEN])> {
    if v.len() != 8 + HASH_LEN {
        return None;
    }
    let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
    let hash: [u8; HASH_LEN] = v[8..].try_into().ok()?;
    Some((seq, hash))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AuditProblem {
    /// The record's content no longer matches its hash.
    Altered { seq: u64 },
    /// A record is missing: the chain jumps from `after` to `next`.
    Removed { after: u64, next: u64 },
    /// The record stored at position `position` says it is record `claims`.
    Reordered { position: u64, claims: u64 },
    /// The record's link to its predecessor does not match the predecessor's hash.
    BrokenLink { seq: u64 },
    /// The record cannot even be parsed.
    Unreadable { seq: u64, reason: String },
    /// The chain ends before the recorded head: the last records were removed.
    Truncated { last: u64, head: u64 },
    /// The chain goes past the recorded head, or the head's hash differs from the last record.
    HeadMismatch { last: u64, head: u64 },
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Altered { seq } => write!(
                f,
                "record #{seq} was altered: its content does not match its hash"
            ),
            Self::Removed { after, next } => write!(
                f,
                "record #{} was removed: the chain jumps from #{after} to #{next}",
                after + 1
            ),
            Self::Reordered { position, claims } => write!(
                f,
                "records were reordered: position #{position} holds record #{claims}"
            ),
            Self::BrokenLink { seq } => write!(
                f,
                "record #{seq} does not link to record #{}: one of them was replaced",
                seq.saturating_sub(1)
            ),
            Self::Unreadable { seq, reason } => write!(f, "record #{seq} is unreadable: {reason}"),
            Self::Truncated { last, head } => write!(
                f,
                "records #{}–#{head} were removed: the chain ends at #{last}",
                last + 1
            ),
            Self::HeadMismatch { last, head } => write!(
                f,
                "the chain's last record #{last} does not match its recorded head #{head}"
            ),
        }
    }
}

// Deserialize: `audit verify --attach` reads the daemon's report back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Records checked before the first problem (all of them when it passes).
    pub records: u64,
    /// Hex SHA-256 of the last good record: anchor it elsewhere to detect a rewritten history.
    pub head: Option<String>,
    pub problem: Option<AuditProblem>,
    /// The record holding the latest retention checkpoint, when records were pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
    /// Records retention removed (the checkpoint's count); they are not in `records`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pruned: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Records that retention removed, `first..=last`, with the hash the first one linked to and the
/// hash of the last one (the record after the range links to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedRange {
    pub first: u64,
    pub last: u64,
    pub prev: String,
    pub last_hash: String,
}

/// What the chain is allowed to miss: every range pruned so far (cumulative, merged), kept in
/// the `detail.checkpoint` of a status entry written by the prune.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Records pruned, over all prunes.
    pub pruned: u64,
    /// Incidents pruned, over all prunes.
    pub incidents: u64,
    pub ranges: Vec<PrunedRange>,
}

impl Checkpoint {
    /// The checkpoint held by an entry's JSON body, if it holds one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            detail: Detail,
        }
        #[derive(Deserialize, Default)]
        struct Detail {
            checkpoint: Option<Checkpoint>,
        }
        serde_json::from_slice::<Body>(body).ok()?.detail.checkpoint
    }

    /// Adds single records (seq, prev hash, own hash) to the ranges, merging neighbours.
    pub fn add(&mut self, records: &[(u64, [u8; HASH_LEN], [u8; HASH_LEN])]) {
        let mut all: Vec<PrunedRange> = std::mem::take(&mut self.ranges);
        all.extend(records.iter().map(|(seq, prev, hash)| PrunedRange {
            first: *seq,
            last: *seq,
            prev: hex(prev),
            last_hash: hex(hash),
        }));
        all.sort_by_key(|r| r.first);
        let mut merged: Vec<PrunedRange> = Vec::with_capacity(all.len());
        for r in all {
            match merged.last_mut() {
                Some(m) if m.last + 1 == r.first => {
                    m.last = r.last;
                    m.last_hash = r.last_hash;
                }
                _ => merged.push(r),
            }
        }
        self.pruned = merged.iter().map(|r| r.last - r.first + 1).sum();
        self.ranges = merged;
    }
}

/// Where the chain skips records: after `after` (whose hash is `after_hash`) comes `next`,
/// which links to `next_prev`.
struct Gap {
    after: u64,
    after_hash: [u8; HASH_LEN],
    next: u64,
    next_prev: [u8; HASH_LEN],
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.problem.is_none()
    }
}

/// Walks every record from the first.
pub(crate) fn verify(db: &super::backend::Backend) -> super::Result<AuditReport> {
    let head = db.get(&keys::meta("head"))?.and_then(|v| parse_head(&v));
    let checkpoint = db.get(&keys::meta("checkpoint"))?.and_then(|v| {
        <[u8; 8]>::try_from(v.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    });
    verify_records(db.scan(&[keys::AUDIT], false), head, checkpoint, |seq| {
        db.get(&keys::num(keys::AUDIT, seq))
    })
}

/// Walks `records` (audit keys and values, in key order) against the recorded head and the
/// latest checkpoint; `lookup` reads one record (the checkpoint's) by its sequence number.
pub fn verify_records<K, V, E>(
    records: impl Iterator<Item = Result<(K, V), E>>,
    head: Option<(u64, [u8; HASH_LEN])>,
    checkpoint: Option<u64>,
    lookup: impl Fn(u64) -> Result<Option<Vec<u8>>, E>,
) -> Result<AuditReport, E>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut expected = 1u64;
    let mut prev = GENESIS;
    let mut checked = 0u64;
    let mut gaps: Vec<Gap> = Vec::new();
    let report = |checked, prev: &[u8; HASH_LEN], problem| AuditReport {
        records: checked,
        head: (checked > 0).then(|| hex(prev)),
        problem,
        checkpoint: None,
        pruned: 0,
    };
    for kv in records {
        let (k, v) = kv?;
        let (k, v) = (k.as_ref(), v.as_ref());
        let Some(position) = keys::read_num(k, 0) else {
            return Ok(report(
                checked,
                &prev,
                Some(AuditProblem::Unreadable {
                    seq: expected,
                    reason: format!("malformed key {:?}", String::from_utf8_lossy(k)),
                }),
            ));
        };
        let record = match Record::parse(v) {
            Ok(r) => r,
            Err(reason) => {
                return Ok(report(
                    checked,
                    &prev,
                    Some(AuditProblem::Unreadable {
                        seq: position,
                        reason,
                    }),
                ));
            }
        };
        let skipped = position > expected;
        let problem = if position != record.seq {
            Some(AuditProblem::Reordered {
                position,
                claims: record.seq,
            })
        } else if position < expected {
            Some(AuditProblem::Reordered {
                position: expected,
                claims: position,
            })
        } else if chain_hash(&record.prev, record.seq, record.body) != record.hash {
            Some(AuditProblem::Altered { seq: position })
        } else if !skipped && record.prev != prev {
            Some(AuditProblem::BrokenLink { seq: position })
        } else {
            None
        };
        if problem.is_some() {
            return Ok(report(checked, &prev, problem));
        }
        if skipped {
            // Allowed only where a checkpoint names the range; checked once the walk is done.
            gaps.push(Gap {
                after: expected - 1,
                after_hash: prev,
                next: position,
                next_prev: record.prev,
            });
        }
        prev = record.hash;
        checked += 1;
        expected = position + 1;
    }
    let last = expected - 1;
    let saved = match checkpoint {
        Some(seq) if seq <= last => lookup(seq)?.and_then(|bytes| {
            let record = Record::parse(&bytes).ok()?;
            Checkpoint::from_body(record.body)
        }),
        _ => None,
    };
    let covered = |g: &Gap| {
        saved.as_ref().is_some_and(|c| {
            c.ranges.iter().any(|r| {
                r.first == g.after + 1
                    && r.last + 1 == g.next
                    && r.prev == hex(&g.after_hash)
                    && r.last_hash == hex(&g.next_prev)
            })
        })
    };
    let mut problem = gaps
        .iter()
        .find(|g| !covered(g))
        .map(|g| AuditProblem::Removed {
            after: g.after,
            next: g.next,
        });
    if problem.is_none() {
        problem = match head {
            Some((h, _)) if h > last => Some(AuditProblem::Truncated { last, head: h }),
            Some((h, hash)) if h < last || hash != prev => {
                Some(AuditProblem::HeadMismatch { last, head: h })
            }
            None if last > 0 => Some(AuditProblem::HeadMismatch { last, head: 0 }),
            _ => None,
        };
    }
    let mut out = report(checked, &prev, problem);
    if let Some(c) = &saved {
        out.checkpoint = checkpoint;
        out.pruned = c.pruned;
    }
    Ok(out)
}
