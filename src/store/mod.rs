//! The RCA store (sled): incidents, timelines, the audit hash chain and operational memory
//! (cooldowns, idempotency keys, alert dedup keys, the runbook execution journal).
//! Only this module opens the database; it imports `model` only.
//!
//! One writer thread owns every mutation and commits in groups: the entries that arrive while
//! a commit is being flushed form the next group, applied as one atomic sled batch and made
//! durable with one flush. A write returns only after its group is durable, so an entry whose
//! id was handed out survives a kill -9 of the process.

pub mod audit;
mod backend;
pub mod export;
pub mod memory;
pub mod postgres;
pub mod recorder;
pub mod redact;
pub mod retention;
pub mod transfer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::model::catalog::{Grouping, signal_kind};
use crate::model::incident::{Entry, Incident, IncidentStatus, NewEntry, incident_label};
use crate::model::signal::{Signal, Subject};

pub use audit::{AuditProblem, AuditReport, Checkpoint};
use backend::Backend;
pub use memory::{
    ApprovalOutcome, ApprovalRecord, ApprovalVerdict, BookedAlert, Claim, IdempotencyRecord,
    JournalRecord, OutboxKind, OutboxRecord,
};
pub use postgres::{PgOptions, SslMode, is_postgres_url};
pub use recorder::SignalRecorder;
pub use retention::{PruneReport, RetentionTask, StoreStats};
use writer::{Job, Op, OpResult};

/// Written at creation; a database without it is not a fleetdeck store.
const FORMAT: &[u8] = b"fleetdeck-store/1";

/// Key prefixes of the one sled tree (one tree so that a group commits as one atomic batch).
pub(crate) mod keys {
    pub const AUDIT: u8 = b'a';
    pub const INCIDENT: u8 = b'i';
    pub const TIMELINE: u8 = b't';
    pub const GROUP: u8 = b'g';
    pub const COOLDOWN: u8 = b'c';
    pub const IDEMPOTENCY: u8 = b'k';
    pub const DEDUP: u8 = b'd';
    pub const JOURNAL: u8 = b'j';
    /// Notifications and Kubernetes Events owed, written before they are sent.
    pub const OUTBOX: u8 = b'o';
    /// Outside alerts firing (the alert book), with their `endsAt`.
    pub const ALERT_BOOK: u8 = b'b';
    /// Approvals waiting for a person, and their verdicts: `p` + the id as 20 decimal digits
    /// (a text key, so that PostgreSQL keeps them in a table like the other memory).
    pub const APPROVAL: u8 = b'p';
    pub const META: u8 = b'm';

    pub fn num(prefix: u8, n: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(9);
        k.push(prefix);
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    pub fn pair(prefix: u8, a: u64, b: u64) -> Vec<u8> {
        let mut k = num(prefix, a);
        k.extend_from_slice(&b.to_be_bytes());
        k
    }

    pub fn text(prefix: u8, s: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + s.len());
        k.push(prefix);
        k.extend_from_slice(s.as_bytes());
        k
    }

    pub fn approval(id: u64) -> Vec<u8> {
        text(APPROVAL, &format!("{id:020}"))
    }

    pub fn meta(name: &str) -> Vec<u8> {
        text(META, name)
    }

    /// The big-endian number after the prefix (and after `skip` more bytes).
    pub fn read_num(key: &[u8], skip: usize) -> Option<u64> {
        let b = key.get(1 + skip..1 + skip + 8)?;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is locked: another fleetdeck process holds it (the cockpit, a demo or headless). Stop it, or point this one elsewhere with --store PATH"
    )]
    Locked { path: PathBuf },
    #[error(
        "the store at {path} is damaged ({detail}). Move it aside (mv {path} {path}.damaged) and fleetdeck starts a new one there; keep the damaged copy for the record"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("the store at {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a fleetdeck store (it holds another sled database); use another --store PATH"
    )]
    Foreign { path: PathBuf },
    #[error("store at {path}: {source}")]
    Sled {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store at {path}: record {key} cannot be read: {reason}")]
    Decode {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("there is no incident {} in the store at {path}; `fleetdeck incident list` shows them", incident_label(*id))]
    NoIncident { path: PathBuf, id: u64 },
    #[error("the store's writer has stopped (an earlier error closed it); restart fleetdeck")]
    Closed,
    #[error(
        "the store at {path} already holds {records} records: import only into a new store (--store NEW_DIR); nothing was changed"
    )]
    NotEmpty { path: PathBuf, records: u64 },
    #[error("the PostgreSQL store at {}: {detail}", place.display())]
    Postgres { place: PathBuf, detail: String },
    #[error("the PostgreSQL store {place} is misconfigured: {detail}")]
    PostgresConfig { place: String, detail: String },
    #[error(
        "the PostgreSQL store at {} has schema version {found}, newer than the {supported} this fleetdeck knows: a newer fleetdeck migrated it; run that version (or newer) here, nothing was changed", place.display()
    )]
    SchemaTooNew {
        place: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error(
        "the PostgreSQL store at {} refused this write: it carries the fencing token of Lease term {mine}, and a newer leader (term {current}) has written since; this replica no longer leads and steps down, nothing of this commit was written", place.display()
    )]
    Fenced {
        place: PathBuf,
        mine: u64,
        current: u64,
    },
    #[error(
        "another process appended to the audit chain of the store at {} (its head is #{head}, this one was about to write #{next}): only one fleetdeck writes to a store (headless replicas elect one by their Lease); nothing of this commit was written and this process reloads the head", place.display()
    )]
    ChainMoved {
        place: PathBuf,
        head: u64,
        next: u64,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What happened to an incident when a milestone was asked for.
// Returned once per human action, never stored in bulk: boxing the entry buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum MilestoneOutcome {
    Reached(Entry),
    /// Already there (or past it): nothing recorded.
    Already(IncidentStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    Acknowledged,
    Mitigated,
    Resolved,
}

/// A signal as recorded: which incident it joined, whether it opened it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRecord {
    pub incident: u64,
    pub opened: bool,
    pub entry: Entry,
}

/// Which audit entries `Store::entries` lists.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub kind: Option<EntryKindFilter>,
    /// Entries recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, the most recent.
    pub limit: Option<usize>,
}

/// An entry kind, or one of the views over kinds that `audit list --kind` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKindFilter {
    Kind(crate::model::incident::EntryKind),
    /// What the headless API and the runbook guard refused (a `refused` verdict).
    Refusal,
    /// Retention's checkpoints.
    Checkpoint,
}

impl EntryKindFilter {
    pub fn matches(&self, e: &Entry) -> bool {
        match self {
            Self::Kind(k) => e.entry.kind == *k,
            Self::Refusal => e.entry.verdict == Some(crate::model::incident::Verdict::Refused),
            Self::Checkpoint => e.entry.detail.contains_key("checkpoint"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub open_only: bool,
    /// Incidents with activity (a signal, or a milestone) at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// Where a store lives: a directory (sled) or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Dir(PathBuf),
    Postgres(PgOptions),
}

impl StoreLocation {
    /// What errors and `store stats` call it (a URL carries no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(p) => p.display().to_string(),
            Self::Postgres(o) => o.url.clone(),
        }
    }
}

struct Inner {
    path: PathBuf,
    backend: Arc<Backend>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(handle) = writer.take()
        {
            let _ = handle.join();
        }
    }
}

/// A handle on the open store; clones share it. The database closes (and its lock is released)
/// when the last handle drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// How long `open` waits for a lock to be released before saying who holds it.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

fn classify(path: &Path, e: sled::Error) -> StoreError {
    let path = path.to_path_buf();
    match e {
        e if is_lock_error(&e) => StoreError::Locked { path },
        sled::Error::Io(source) => StoreError::Open { path, source },
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            path,
            detail: match at {
                Some(at) => format!("corruption at {at}"),
                None => "corruption detected".into(),
            },
        },
        sled::Error::Unsupported(what) | sled::Error::ReportableBug(what) => {
            StoreError::Corrupt { path, detail: what }
        }
        other => StoreError::Sled {
            path,
            source: other,
        },
    }
}

impl Store {
    /// Opens (or creates) the store a location names.
    pub fn open_location(location: &StoreLocation) -> Result<Self> {
        match location {
            StoreLocation::Dir(path) => Self::open(path),
            StoreLocation::Postgres(options) => Self::open_postgres(options),
        }
    }

    /// Opens the store in a PostgreSQL database, creating or migrating its tables.
    pub fn open_postgres(options: &PgOptions) -> Result<Self> {
        let pg = postgres::PgStore::open(options)?;
        let path = pg.place().to_path_buf();
        Self::start(path, Backend::Postgres(pg))
    }

    /// Starts the writer over an opened backend.
    fn start(path: PathBuf, backend: Backend) -> Result<Self> {
        let backend = Arc::new(backend);
        let (tx, rx) = mpsc::channel();
        let state = writer::WriterState::load(path.clone(), backend.clone())?;
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(state, rx))
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                backend,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Opens (or creates) the store at `path`, a directory.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                source: std::io::Error::other("it is a file; the store is a directory"),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        // sled panics on some damaged files instead of returning an error; a panic here must
        // become the same clear message, never a crash.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .flush_every_ms(Some(500));
        // sled frees a closed database's file (and its lock) lazily, on another thread: a
        // store closed a moment ago, in this process or one that is exiting, can still look
        // held. Only a lock that stays held is another fleetdeck's.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        let opened = loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
            match attempt {
                Ok(Err(e)) if std::time::Instant::now() < deadline && is_lock_error(&e) => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other,
            }
        };
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(classify(path, e)),
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled could not recover it".into());
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        };
        let sled_err = |e| classify(path, e);
        match db.get(keys::meta("format")).map_err(sled_err)? {
            Some(v) if v.as_ref() == FORMAT => {}
            Some(_) => {
                return Err(StoreError::Foreign {
                    path: path.to_path_buf(),
                });
            }
            None if db.is_empty() => {
                db.insert(keys::meta("format"), FORMAT).map_err(sled_err)?;
                db.flush().map_err(sled_err)?;
            }
            None => {
                return Err(StoreError::Foreign {
                    path: path.to_path_buf(),
                });
            }
        }
        Self::start(
            path.to_path_buf(),
            Backend::Sled {
                path: path.to_path_buf(),
                db,
            },
        )
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
            path: self.inner.path.clone(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }

    /// Sends one group of operations to the writer and waits until they are durable.
    fn submit(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let jobs = self.inner.jobs.lock().map_err(|_| StoreError::Closed)?;
            let tx = jobs.as_ref().ok_or(StoreError::Closed)?;
            tx.send(Job { ops, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn submit_one(&self, op: Op) -> Result<OpResult> {
        self.submit(vec![op])?.pop().ok_or(StoreError::Closed)
    }

    // ---- timeline writes ----

    /// Appends one entry (to its incident's timeline when it names one); returns it with its
    /// sequence number once it is durable.
    pub fn append(&self, entry: NewEntry) -> Result<Entry> {
        match self.submit_one(Op::Append(Box::new(entry)))? {
            OpResult::Entry(e) => Ok(*e),
            other => Err(writer::unexpected(other)),
        }
    }

    /// Appends entries in one commit (each still gets its own chain record).
    pub fn append_many(&self, entries: Vec<NewEntry>) -> Result<Vec<Entry>> {
        let ops = entries
            .into_iter()
            .map(|e| Op::Append(Box::new(e)))
            .collect();
        self.submit(ops)?
            .into_iter()
            .map(|r| match r {
                OpResult::Entry(e) => Ok(*e),
                other => Err(writer::unexpected(other)),
            })
            .collect()
    }

    /// Records fired and cleared signals in one commit: each fired signal joins the open
    /// incident of its group (within `window` of its last signal) or opens one.
    pub fn record_signals(
        &self,
        fired: &[Signal],
        cleared: &[(String, String)],
        origin: crate::model::incident::Origin,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<SignalRecord>> {
        let mut ops: Vec<Op> = fired
            .iter()
            .map(|s| Op::Signal {
                signal: Box::new(s.clone()),
                origin,
                window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1)),
                now,
            })
            .collect();
        ops.extend(cleared.iter().map(|(key, group)| Op::Cleared {
            dedup_key: key.clone(),
            group: group.clone(),
            origin,
            now,
        }));
        let mut out = Vec::new();
        for r in self.submit(ops)? {
            match r {
                OpResult::Signal(s) => out.push(*s),
                OpResult::Cleared | OpResult::Done => {}
                other => return Err(writer::unexpected(other)),
            }
        }
        Ok(out)
    }

    /// Acknowledge, mitigate or resolve an incident, as `actor` from `origin`.
    pub fn milestone(
        &self,
        id: u64,
        milestone: Milestone,
        actor: crate::model::incident::Actor,
        origin: crate::model::incident::Origin,
    ) -> Result<MilestoneOutcome> {
        match self.submit_one(Op::Milestone {
            id,
            milestone,
            actor,
            origin,
            now: Utc::now(),
        })? {
            OpResult::Milestone(m) => Ok(*m),
            other => Err(writer::unexpected(other)),
        }
    }

    // ---- reads ----

    pub fn incident(&self, id: u64) -> Result<Option<Incident>> {
        let key = keys::num(keys::INCIDENT, id);
        match self.backend().get(&key)? {
            Some(v) => Ok(Some(self.decode(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// The incident, or an error naming the id and how to list them.
    pub fn require_incident(&self, id: u64) -> Result<Incident> {
        self.incident(id)?.ok_or_else(|| StoreError::NoIncident {
            path: self.inner.path.clone(),
            id,
        })
    }

    /// Incidents, open ones first, then by severity and most recent activity.
    pub fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut out = Vec::new();
        for kv in self.backend().scan(&[keys::INCIDENT], false) {
            let (k, v) = kv?;
            let inc: Incident = self.decode(&k, &v)?;
            if filter.open_only && !inc.status.is_open() {
                continue;
            }
            if let Some(since) = filter.since
                && last_activity(&inc) < since
            {
                continue;
            }
            out.push(inc);
        }
        sort_for_display(&mut out);
        Ok(out)
    }

    /// The incident a group's signals go to, while it is open.
    pub fn open_incident_for(&self, group: &str) -> Result<Option<u64>> {
        let Some(v) = self.backend().get(&keys::text(keys::GROUP, group))? else {
            return Ok(None);
        };
        let Ok(bytes) = <[u8; 8]>::try_from(v.as_ref()) else {
            return Ok(None);
        };
        let id = u64::from_be_bytes(bytes);
        Ok(self
            .incident(id)?
            .filter(|i| i.status.is_open())
            .map(|i| i.id))
    }

    /// One incident's timeline, in order.
    pub fn timeline(&self, id: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (seq, v) in self.backend().timeline_records(id)? {
            let record = audit::Record::parse(&v).map_err(|reason| StoreError::Decode {
                path: self.inner.path.clone(),
                key: format!("audit #{seq}"),
                reason,
            })?;
            out.push(self.decode(&keys::num(keys::AUDIT, seq), record.body)?);
        }
        Ok(out)
    }

    /// The entry at `seq` in the audit chain.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>> {
        let key = keys::num(keys::AUDIT, seq);
        let Some(v) = self.backend().get(&key)? else {
            return Ok(None);
        };
        let record = audit::Record::parse(&v).map_err(|reason| StoreError::Decode {
            path: self.inner.path.clone(),
            key: format!("audit #{seq}"),
            reason,
        })?;
        Ok(Some(self.decode(&key, record.body)?))
    }

    /// Audit entries, attached to an incident or not, oldest first: the most recent `limit`
    /// of those that match.
    pub fn entries(&self, filter: &EntryFilter) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for kv in self.backend().scan(&[keys::AUDIT], true) {
            let (k, v) = kv?;
            let seq = keys::read_num(&k, 0).unwrap_or(0);
            let record = audit::Record::parse(&v).map_err(|reason| StoreError::Decode {
                path: self.inner.path.clone(),
                key: format!("audit #{seq}"),
                reason,
            })?;
            let entry: Entry = self.decode(&k, record.body)?;
            if filter.since.is_some_and(|since| entry.recorded_at < since) {
                // The chain is in the order entries were recorded.
                break;
            }
            if filter.kind.is_some_and(|kind| !kind.matches(&entry)) {
                continue;
            }
            out.push(entry);
            if filter.limit.is_some_and(|limit| out.len() >= limit) {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The audit chain's last sequence number: how many entries it ever held (retention may
    /// have pruned some; `entry` answers `None` for those).
    pub fn len(&self) -> Result<u64> {
        Ok(self
            .backend()
            .last(&[keys::AUDIT])?
            .and_then(|(k, _)| keys::read_num(&k, 0))
            .unwrap_or(0))
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Walks the audit chain from the first record and reports the first one that was
    /// altered, removed or reordered.
    pub fn verify(&self) -> Result<AuditReport> {
        audit::verify(self.backend())
    }

    /// The engine under the store.
    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The sled database under a directory store, for tests that damage it on purpose.
    #[cfg(test)]
    pub(crate) fn db(&self) -> &sled::Db {
        match &*self.inner.backend {
            Backend::Sled { db, .. } => db,
            Backend::Postgres(_) => panic!("db() is sled's; this store is on PostgreSQL"),
        }
    }

    /// Whether the store is a PostgreSQL database (shared by replicas) rather than a directory.
    pub fn is_shared(&self) -> bool {
        matches!(*self.inner.backend, Backend::Postgres(_))
    }

    /// On a shared store, makes every acting write (runs, their steps, approvals taken,
    /// milestones a run reaches, recorded signals) carry `fence`'s token; the database refuses
    /// one whose token is older than the newest it has seen. A directory store has one writer
    /// and ignores it.
    pub fn fence_with(&self, fence: Fence) {
        if let Backend::Postgres(pg) = &*self.inner.backend {
            pg.fence_with(fence);
        }
    }
}

/// The Lease's fencing token, as a shared store checks it (see [`Store::fence_with`]).
#[derive(Clone)]
pub struct Fence {
    /// The epoch of the Lease term this process holds or last held (0: it never led).
    pub token: Arc<std::sync::atomic::AtomicU64>,
    /// Called with the refusal when a newer leader's token is stored: the process steps down.
    pub on_refused: Arc<dyn Fn(&StoreError) + Send + Sync>,
}

/// The latest thing that happened to an incident.
pub fn last_activity(inc: &Incident) -> DateTime<Utc> {
    let m = &inc.milestones;
    [
        m.acknowledged,
        m.mitigated,
        m.resolved,
        Some(inc.last_signal_at),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(inc.last_signal_at)
}

/// Open first, then by severity, then the most recent activity.
pub fn sort_for_display(incidents: &mut [Incident]) {
    incidents.sort_by(|a, b| {
        b.status
            .is_open()
            .cmp(&a.status.is_open())
            .then(b.severity.cmp(&a.severity))
            .then(last_activity(b).cmp(&last_activity(a)))
            .then(b.id.cmp(&a.id))
    });
}

/// Kinds whose cause is usually the pool rather than the node (the catalog's
/// `Grouping::NodePool`): a spot capacity pool taken back, a bad image or kubelet config rolled
/// to a pool. Their nodes join one incident per pool.
fn is_pool_wide_kind(kind: &str) -> bool {
    signal_kind(kind).is_some_and(|k| k.grouping == Grouping::NodePool)
}

/// Kinds that are one fault seen through several detectors, by the family they group under:
/// an XID 48 is a double-bit ECC error, so its XID and ECC signals on one node are one GPU
/// fault; an endpoint down, its SLO burning and its pods crash-looping after a rollout are one
/// serving fault of its Deployment.
/// The catalog declares each kind's family; a kind outside it (an intake's `alert.*`) is its own.
pub fn incident_family(kind: &str) -> &str {
    signal_kind(kind).map_or(kind, |k| k.family)
}

/// Signals with the same group join one incident (Alertmanager's `group_by`): a pool-wide kind
/// on the nodes of one node pool is one incident; the kinds of one [`incident_family`] on one target
/// are one incident (an endpoint's signals join its serving Deployment's); otherwise the
/// signal's [`target_group`].
pub fn incident_group(signal: &Signal) -> String {
    let text = |key: &str| {
        signal
            .evidence
            .get(key)
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
    };
    let kind = signal.kind.as_str();
    let cluster = &signal.subject.cluster;
    if let Some(pool) = text("node_pool").filter(|_| is_pool_wide_kind(kind)) {
        return format!("{kind}:{cluster}/nodepool/{pool}");
    }
    if let Some(serving) = text("serving_deployment") {
        return format!("{}:{cluster}/deployment/{serving}", incident_family(kind));
    }
    let target = target_group(signal);
    match target.split_once(':') {
        Some((_, place)) => format!("{}:{place}", incident_family(kind)),
        None => target,
    }
}

/// What one remediation acts on: pods of one Deployment group by it (a bad rollout
/// crash-looping on five nodes is one rollback), pods of one owner by it, GPUs by their node (an
/// XID storm over eight GPUs of one node is one node to drain), other subjects by their most
/// specific object. Runs and cooldowns are per runbook and target group; incidents may be wider
/// ([`incident_group`]: a pool's three reclaimed nodes are one incident and three drains).
pub fn target_group(signal: &Signal) -> String {
    let s: &Subject = &signal.subject;
    let deployment = signal
        .evidence
        .get("deployment")
        .and_then(|d| d.as_str())
        .filter(|d| !d.is_empty());
    let pod = s.object.as_deref().and_then(|o| o.strip_prefix("pod/"));
    let place = if let (true, Some(node)) = (is_gpu_fault_kind(&signal.kind), &s.node) {
        // A GPU's fault is its node's: the node is what gets cordoned and drained, whichever
        // pod held the GPU.
        format!("node/{node}")
    } else if let Some(dep) = deployment {
        format!("deployment/{}/{dep}", s.namespace.as_deref().unwrap_or("-"))
    } else if let Some(pod) = pod {
        // The pods of one owner are one problem (Alertmanager's group_by), wherever they run.
        format!(
            "owner/{}/{}",
            s.namespace.as_deref().unwrap_or("-"),
            pod_owner(pod)
        )
    } else if let Some(node) = &s.node {
        format!("node/{node}")
    } else if let Some(ep) = &s.endpoint {
        format!("endpoint/{ep}")
    } else if let Some(obj) = &s.object {
        format!("{}/{obj}", s.namespace.as_deref().unwrap_or("-"))
    } else if let Some(ns) = &s.namespace {
        format!("namespace/{ns}")
    } else {
        "cluster".into()
    };
    format!("{}:{}/{place}", signal.kind, s.cluster)
}

/// Kinds that are a GPU's hardware fault (XID, ECC, thermal throttling), which group by the GPU's
/// node: the node is cordoned and drained. A GPU's idleness or memory trend is its workload's
/// matter and groups by the pod holding it.
/// The catalog marks them `Grouping::Node`.
pub fn is_gpu_fault_kind(kind: &str) -> bool {
    signal_kind(kind).is_some_and(|k| k.grouping == Grouping::Node)
}

/// The controller a pod's generated name points to: `web-7d9f8c6b5-x2x9q` (a Deployment's
/// ReplicaSet) → `web`, `backfill-28h4k` (a Job) → `backfill`, `llm-pretrain-worker-3` (a
/// training gang) → `llm-pretrain`, `db-0` (a StatefulSet) → `db`. A name that follows none of
/// the generators' patterns is its own owner.
pub fn pod_owner(pod: &str) -> &str {
    fn strip(name: &str, suffix_ok: impl Fn(&str) -> bool) -> &str {
        match name.rsplit_once('-') {
            Some((head, tail)) if !head.is_empty() && suffix_ok(tail) => head,
            _ => name,
        }
    }
    let generated = |t: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let numbered = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    // Gang members: `<job>-<role>-<index>`.
    if let Some(head) = ["-master-", "-worker-", "-launcher-", "-ps-", "-chief-"]
        .iter()
        .find_map(|role| {
            let (head, index) = pod.rsplit_once(role)?;
            numbered(index).then_some(head)
        })
    {
        return head;
    }
    if numbered(pod.rsplit_once('-').map_or("", |(_, t)| t)) {
        return strip(pod, numbered);
    }
    let without_random = strip(pod, |t| generated(t, 5..=5));
    if without_random.len() == pod.len() {
        return pod;
    }
    // A ReplicaSet's pod-template-hash (it always holds a digit in practice; a word does not).
    strip(without_random, |t| {
        generated(t, 6..=10) && t.bytes().any(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod conformance;
