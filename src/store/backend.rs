//! The seam between the store's logic and the engine that keeps its records: sled (embedded,
//! the default) or PostgreSQL (`store::postgres`, shared by a team's replicas). Imports only
//! the store's own modules.
//!
//! The store's logic speaks in the key layout of `store::keys` (a prefix byte, then numbers
//! big-endian or text); sled keeps those keys as they are, PostgreSQL maps each prefix to a
//! table of its own (`store::postgres` says which). Both give the same answers to the same
//! calls, which is what `store::conformance` checks, so the writer, retention, export and the
//! audit walk are written once.

use std::path::{Path, PathBuf};

use super::postgres::PgStore;
use super::{Result, StoreError, classify, keys};

/// One key and its value, owned.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The engine under a store.
pub(crate) enum Backend {
    Sled { path: PathBuf, db: sled::Db },
    Postgres(PgStore),
}

impl Backend {
    fn sled_err(path: &Path, e: sled::Error) -> StoreError {
        classify(path, e)
    }

    /// Whether other processes may write to the same store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Sled { path, db } => Ok(db
                .get(key)
                .map_err(|e| Self::sled_err(path, e))?
                .map(|v| v.to_vec())),
            Self::Postgres(pg) => pg.get(key),
        }
    }

    /// The records under `prefix` in key order (`reverse`: the last first).
    pub fn scan(&self, prefix: &[u8], reverse: bool) -> Scan<'_> {
        match self {
            Self::Sled { path, db } => Scan::Sled {
                path,
                iter: Box::new(db.scan_prefix(prefix)),
                reverse,
            },
            Self::Postgres(pg) => pg.scan(prefix, reverse),
        }
    }

    /// The last record under `prefix`.
    pub fn last(&self, prefix: &[u8]) -> Result<Option<Pair>> {
        match self {
            Self::Sled { .. } => self.scan(prefix, true).next().transpose(),
            Self::Postgres(pg) => pg.last(prefix),
        }
    }

    /// How many records lie under `prefix`.
    pub fn count(&self, prefix: &[u8]) -> Result<u64> {
        match self {
            Self::Sled { .. } => {
                let mut n = 0;
                for kv in self.scan(prefix, false) {
                    kv?;
                    n += 1;
                }
                Ok(n)
            }
            Self::Postgres(pg) => pg.count(prefix),
        }
    }

    /// Records other than the store's own bookkeeping (`meta`): what makes a store not new.
    pub fn records(&self) -> Result<u64> {
        let mut n = 0;
        for prefix in [
            keys::AUDIT,
            keys::INCIDENT,
            keys::TIMELINE,
            keys::GROUP,
            keys::COOLDOWN,
            keys::IDEMPOTENCY,
            keys::DEDUP,
            keys::JOURNAL,
            keys::OUTBOX,
            keys::ALERT_BOOK,
            keys::APPROVAL,
        ] {
            n += self.count(&[prefix])?;
        }
        Ok(n)
    }

    /// Writes every change as one atomic, durable commit (`None` removes the key).
    pub fn commit(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        self.commit_acting(changes, false)
    }

    /// As [`Self::commit`]; an `acting` commit carries the fencing token on a shared store.
    pub fn commit_acting(
        &self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        acting: bool,
    ) -> Result<()> {
        match self {
            Self::Sled { path, db } => {
                let mut batch = sled::Batch::default();
                for (k, v) in changes {
                    match v {
                        Some(v) => batch.insert(k, v),
                        None => batch.remove(k),
                    }
                }
                let err = |e| Self::sled_err(path, e);
                db.apply_batch(batch).map_err(err)?;
                db.flush().map_err(err)?;
                Ok(())
            }
            Self::Postgres(pg) => pg.commit(changes, acting),
        }
    }

    /// The audit records (seq and stored value) on one incident's timeline, in order: one
    /// query on PostgreSQL rather than one per entry.
    pub fn timeline_records(&self, incident: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        match self {
            Self::Sled { .. } => {
                let mut out = Vec::new();
                for kv in self.scan(&keys::num(keys::TIMELINE, incident), false) {
                    let (k, _) = kv?;
                    let Some(seq) = keys::read_num(&k, 8) else {
                        continue;
                    };
                    if let Some(v) = self.get(&keys::num(keys::AUDIT, seq))? {
                        out.push((seq, v));
                    }
                }
                Ok(out)
            }
            Self::Postgres(pg) => pg.timeline_records(incident),
        }
    }

    /// Bytes the store takes on disk (PostgreSQL: its tables and their indexes).
    pub fn size_on_disk(&self) -> Result<u64> {
        match self {
            Self::Sled { path, db } => db.size_on_disk().map_err(|e| Self::sled_err(path, e)),
            Self::Postgres(pg) => pg.size_on_disk(),
        }
    }
}

/// Records in key order, read lazily (sled's iterator; PostgreSQL reads the audit chain a page at
/// a time, the smaller tables whole).
pub(crate) enum Scan<'a> {
    Sled {
        path: &'a Path,
        iter: Box<sled::Iter>,
        reverse: bool,
    },
    Rows(std::vec::IntoIter<Result<Pair>>),
    Paged(super::postgres::AuditPages<'a>),
}

impl Iterator for Scan<'_> {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Sled {
                path,
                iter,
                reverse,
            } => {
                let kv = if *reverse {
                    iter.next_back()
                } else {
                    iter.next()
                }?;
                Some(
                    kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                        .map_err(|e| Backend::sled_err(path, e)),
                )
            }
            Self::Rows(rows) => rows.next(),
            Self::Paged(pages) => pages.next(),
        }
    }
}
