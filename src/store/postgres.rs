//! The store on PostgreSQL: one memory for every replica of a team's daemon. Owns the
//! connection (tokio-postgres over rustls), the schema and its migrations, and the mapping of
//! the store's keys (`store::keys`) to tables. Imports only the store's own modules.
//!
//! `Store` is synchronous and is called from inside tokio runtimes (the cockpit, the daemon's
//! handlers), where a blocking client must not start a runtime of its own. So this module keeps
//! one thread with its own small runtime that owns the connections; a call spawns its query
//! there and waits on a channel, as a caller of the sled store waits on the writer thread.
//!
//! The schema is one table per kind of record, readable by a DBA (`psql \d`): `audit_chain`
//! (seq, prev_hash, hash, the entry's JSON exactly as hashed), `chain_head` (one row, locked
//! `FOR UPDATE` by every transaction that appends, so appends are serialised across replicas
//! and a second writer is noticed), `incidents`, `timeline` (incident, seq), `incident_groups`,
//! `cooldowns`, `idempotency`, `dedup`, `journal`, `approvals`, `outbox`, `alert_book` and
//! `meta`. `chain_head.leader_epoch` holds the newest Lease fencing token seen, checked in the
//! same locked row: an acting commit that carries an older one is refused whole
//! (`StoreError::Fenced`). A connection the server closed (a restart, a managed failover) is
//! opened again at its next use. Migrations are embedded and numbered (`schema_version`); a
//! database migrated by a newer fleetdeck is refused.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

use super::audit::{self, GENESIS, HASH_LEN};
use super::backend::{Pair, Scan};
use super::{FORMAT, Result, StoreError, keys};

/// The schema this fleetdeck writes and reads; each migration brings a database one step.
pub const SCHEMA_VERSION: i32 = 4;

/// Migration N (index N-1) takes a database from version N-1 to N.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE meta (
    name  text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
-- The audit chain: hash = SHA-256(prev_hash | seq as 8 bytes big-endian | entry), the entry's
-- JSON kept as the exact text that was hashed (json, not jsonb, keeps it byte for byte).
CREATE TABLE audit_chain (
    seq         bigint PRIMARY KEY,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    recorded_at timestamptz NOT NULL,
    incident_id bigint,
    entry       json NOT NULL
);
CREATE INDEX audit_chain_recorded_at ON audit_chain (recorded_at);
-- The chain's head, one row: every appending transaction locks it FOR UPDATE.
-- leader_epoch: the fencing token of the leader allowed to write (0: none checked yet).
CREATE TABLE chain_head (
    id           smallint PRIMARY KEY CHECK (id = 1),
    seq          bigint NOT NULL,
    hash         bytea NOT NULL,
    leader_epoch bigint NOT NULL DEFAULT 0
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE incidents (
    id       bigint PRIMARY KEY,
    status   text NOT NULL,
    severity text NOT NULL,
    title    text NOT NULL,
    body     jsonb NOT NULL
);
CREATE INDEX incidents_open ON incidents (id) WHERE status <> 'resolved';
CREATE TABLE timeline (
    incident_id bigint NOT NULL,
    seq         bigint NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE incident_groups (
    group_key   text COLLATE "C" PRIMARY KEY,
    incident_id bigint NOT NULL
);
CREATE TABLE cooldowns (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
CREATE TABLE idempotency (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
CREATE TABLE dedup (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
CREATE TABLE journal (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
"#,
    r#"
-- Approvals waiting for a person and their verdicts, so that every replica lists the same
-- ones and a new leader takes over the one its predecessor asked for (same id). key: the id
-- as 20 decimal digits; body: the request, its verdict and the run that settled it.
CREATE TABLE approvals (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
"#,
    r#"
-- The outbox: every notification and Kubernetes Event owed, written before it is sent and
-- marked when delivered or given up (body: its attempts, next try and outcome), so a restart
-- or a new leader resumes delivery. Keys sort in the order the records were queued.
CREATE TABLE outbox (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
-- The alert book: outside alerts (Alertmanager's) still firing, each with its endsAt, so a
-- restarted daemon reloads them instead of clearing them.
CREATE TABLE alert_book (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);
"#,
    r#"
-- An incident's timeline read in one ordered index scan of the chain: joining `timeline` to
-- `audit_chain` cost one primary-key probe per entry (58 ms for 10,000 entries in a store of
-- 1,000,000). `timeline` stays the list of an incident's records; both are written and pruned
-- together from the entry's `incident`.
CREATE INDEX audit_chain_incident ON audit_chain (incident_id, seq) WHERE incident_id IS NOT NULL;
"#,
];

/// Serialises migrations of one database between fleetdeck processes starting together.
const MIGRATION_LOCK: i64 = 0x6669_6465_636b_0001;
/// How long opening a connection may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens one connection to the store's database.
type Connect =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<Client>> + Send>> + Send + Sync>;

/// Connections for reads beside the one that writes.
const READERS: usize = 3;
/// Audit records read per round trip when walking the chain.
const AUDIT_PAGE: i64 = 4096;

/// How the connection is encrypted (libpq's `sslmode`, of which these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (the certificate checked as for `require`).
    Prefer,
    /// TLS always; the certificate must chain to `ca_file` (or the system's roots), whatever
    /// host name it carries (stricter than libpq, which checks nothing without a root).
    Require,
    /// TLS always; the certificate must chain to the roots and name the host.
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// Where a PostgreSQL store is and how to reach it. The password never travels in `url`.
#[derive(Clone, PartialEq)]
pub struct PgOptions {
    /// `postgres://user@host:port/db?sslmode=…` (`sslrootcert=` is read as `ca_file`).
    pub url: String,
    pub password: Option<String>,
    /// PEM roots the server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Whether `text` names a PostgreSQL store rather than a directory.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

struct Writer {
    client: Client,
    statements: std::collections::HashMap<String, Statement>,
}

/// An open PostgreSQL store: its runtime thread and connections.
pub(crate) struct PgStore {
    place: PathBuf,
    runtime: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Each reader's connection; one the server closed (a restart, a failover of managed
    /// PostgreSQL) is replaced at its next use.
    readers: Arc<Vec<std::sync::Mutex<Arc<Client>>>>,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// Opens a connection (on the store's runtime): at the start, and again for a connection
    /// the server closed, so that the store works again once the database is back.
    connect: Connect,
    next_reader: AtomicUsize,
    /// The Lease's fencing token that acting commits carry (`Store::fence_with`); unset: none
    /// is checked (a CLI, a cockpit, a single daemon without a Lease).
    fence: std::sync::OnceLock<super::Fence>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The runtime is dropped on its own thread, never inside the caller's runtime.
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn pg_error(place: &Path, e: tokio_postgres::Error) -> StoreError {
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    };
    StoreError::Postgres {
        place: place.to_path_buf(),
        detail,
    }
}

/// `url` without its password and the TLS keys this module reads itself, and those keys.
struct ParsedUrl {
    config: tokio_postgres::Config,
    place: String,
    sslmode: SslMode,
    root_cert: Option<PathBuf>,
}

fn parse_url(url: &str) -> std::result::Result<ParsedUrl, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("it is not a URL: {e}"))?;
    if parsed.password().is_some() {
        return Err(
            "the URL holds a password: name a file with [store] password_file or a variable with password_env instead (URLs are logged and shown)".into(),
        );
    }
    let mut sslmode = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                sslmode = SslMode::parse(&v).ok_or_else(|| {
                    format!("sslmode={v} is not one of disable, prefer, require, verify-full")
                })?;
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            "password" => {
                return Err("the URL holds a password: name a file with [store] password_file or a variable with password_env instead".into());
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let config = tokio_postgres::Config::from_str(parsed.as_str())
        .map_err(|e| format!("{}: {e}", parsed.as_str()))?;
    Ok(ParsedUrl {
        config,
        place: parsed.to_string(),
        sslmode,
        root_cert,
    })
}

/// Accepts a certificate that chains to the roots whatever host it names (`sslmode=require`).
#[derive(Debug)]
struct AnyNameVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn tls_config(
    sslmode: SslMode,
    ca_file: Option<&Path>,
) -> std::result::Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "ca_file {} holds no PEM certificate",
                    file.display()
                ));
            }
        }
        None => {
            // A system without roots still connects where TLS is not used.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let roots = Arc::new(roots);
    let config = if sslmode == SslMode::VerifyFull || roots.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(verifier)))
            .with_no_client_auth()
    };
    Ok(config)
}

impl PgStore {
    /// Connects, migrates the schema (refusing one newer than this binary) and checks that the
    /// database is a fleetdeck store.
    pub fn open(options: &PgOptions) -> Result<Self> {
        let config_err = |place: &str, detail: String| StoreError::PostgresConfig {
            place: place.to_string(),
            detail,
        };
        // The URL is not repeated in this error: it may hold the password being refused.
        let mut parsed = parse_url(&options.url).map_err(|d| config_err("URL", d))?;
        let place = PathBuf::from(&parsed.place);
        if let Some(password) = &options.password {
            parsed.config.password(password.as_bytes());
        }
        let ca_file = options.ca_file.clone().or(parsed.root_cert.clone());
        parsed.config.ssl_mode(match parsed.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls_config(parsed.sslmode, ca_file.as_deref())
            .map_err(|d| config_err(&parsed.place, d))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);

        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|source| StoreError::Open {
                path: place.clone(),
                source,
            })?;
        let runtime = handle_rx
            .recv()
            .map_err(|_| StoreError::Closed)?
            .map_err(|source| StoreError::Open {
                path: place.clone(),
                source,
            })?;
        // A server that does not answer must not hold a caller for the kernel's TCP timeout.
        if parsed.config.get_connect_timeout().is_none() {
            parsed.config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connect: Connect = {
            let config = parsed.config.clone();
            let place = place.clone();
            Arc::new(move || {
                let config = config.clone();
                let tls = tls.clone();
                let place = place.clone();
                Box::pin(async move {
                    let (client, connection) =
                        config.connect(tls).await.map_err(|e| pg_error(&place, e))?;
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::warn!(error = %e, "store: PostgreSQL connection closed");
                        }
                    });
                    Ok::<Client, StoreError>(client)
                })
            })
        };
        let mut store = Self {
            place: place.clone(),
            runtime: runtime.clone(),
            shutdown: Some(shutdown),
            thread: Some(thread),
            readers: Arc::new(Vec::new()),
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                client: block_on(&runtime, connect())?,
                statements: Default::default(),
            })),
            connect: connect.clone(),
            next_reader: AtomicUsize::new(0),
            fence: std::sync::OnceLock::new(),
        };
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(std::sync::Mutex::new(Arc::new(block_on(
                &runtime,
                connect(),
            )?)));
        }
        store.readers = Arc::new(readers);
        let writer = store.writer.clone();
        block_on(&runtime, async move {
            let mut w = writer.lock().await;
            migrate(&mut w.client, &place).await
        })?;
        Ok(store)
    }

    pub fn place(&self) -> &Path {
        &self.place
    }

    fn err(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + Send + Sync + 'static {
        let place = self.place.clone();
        move |e| pg_error(&place, e)
    }

    /// A reader connection, opened again when the server closed it (run on the runtime).
    fn reader(&self) -> impl Future<Output = Result<Arc<Client>>> + Send + 'static {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len().max(1);
        let (readers, connect) = (self.readers.clone(), self.connect.clone());
        async move {
            let slot = readers.get(i).ok_or(StoreError::Closed)?;
            let current = slot
                .lock()
                .map(|c| c.clone())
                .map_err(|_| StoreError::Closed)?;
            if !current.is_closed() {
                return Ok(current);
            }
            let fresh = Arc::new(connect().await?);
            if let Ok(mut c) = slot.lock() {
                *c = fresh.clone();
            }
            Ok(fresh)
        }
    }

    /// Runs `query` on the store's runtime and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        query: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        block_on(&self.runtime, query)
    }

    /// Rows of one read (`sql` with `params`), on a reader connection, in one round trip (the
    /// parameters' types are given, so nothing is prepared first).
    fn rows(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.reader();
        let err = self.err();
        self.call(async move {
            let client = client.await?;
            let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
                .iter()
                .map(|(p, t)| (p.as_ref() as &(dyn ToSql + Sync), t.clone()))
                .collect();
            client.query_typed(sql, &typed).await.map_err(err)
        })
    }

    fn decode_err(&self, key: &str, reason: impl ToString) -> StoreError {
        StoreError::Decode {
            path: self.place.clone(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    fn text_key(&self, key: &[u8]) -> Result<String> {
        String::from_utf8(key[1..].to_vec()).map_err(|e| self.decode_err("key", e))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(&prefix) = key.first() else {
            return Ok(None);
        };
        match prefix {
            keys::AUDIT => {
                let seq = keys::read_num(key, 0).unwrap_or(0) as i64;
                let rows = self.rows(
                    "SELECT seq, prev_hash, hash, entry::text FROM audit_chain WHERE seq = $1",
                    vec![int(seq)],
                )?;
                rows.first()
                    .map(|r| self.audit_pair(r).map(|(_, v)| v))
                    .transpose()
            }
            keys::INCIDENT => {
                let id = keys::read_num(key, 0).unwrap_or(0) as i64;
                let rows = self.rows(
                    "SELECT body::text FROM incidents WHERE id = $1",
                    vec![int(id)],
                )?;
                Ok(rows.first().map(|r| r.get::<_, String>(0).into_bytes()))
            }
            keys::TIMELINE => {
                let id = keys::read_num(key, 0).unwrap_or(0) as i64;
                let seq = keys::read_num(key, 8).unwrap_or(0) as i64;
                let rows = self.rows(
                    "SELECT 1 FROM timeline WHERE incident_id = $1 AND seq = $2",
                    vec![int(id), int(seq)],
                )?;
                Ok((!rows.is_empty()).then(Vec::new))
            }
            keys::GROUP => {
                let rows = self.rows(
                    "SELECT incident_id FROM incident_groups WHERE group_key = $1",
                    vec![text(self.text_key(key)?)],
                )?;
                Ok(rows
                    .first()
                    .map(|r| (r.get::<_, i64>(0) as u64).to_be_bytes().to_vec()))
            }
            keys::META => {
                let name = self.text_key(key)?;
                if name == "head" {
                    return self.head();
                }
                let rows = self.rows("SELECT value FROM meta WHERE name = $1", vec![text(name)])?;
                Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
            }
            other => {
                let table = memory_table(other).ok_or_else(|| self.unknown(key))?;
                let rows = self.rows(table.get, vec![text(self.text_key(key)?)])?;
                Ok(rows.first().map(|r| r.get::<_, String>(0).into_bytes()))
            }
        }
    }

    fn unknown(&self, key: &[u8]) -> StoreError {
        self.decode_err(
            &String::from_utf8_lossy(key),
            "no PostgreSQL table holds this key (a bug in fleetdeck)",
        )
    }

    fn head(&self) -> Result<Option<Vec<u8>>> {
        let rows = self.rows("SELECT seq, hash FROM chain_head WHERE id = 1", vec![])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let seq = row.get::<_, i64>(0) as u64;
        if seq == 0 {
            return Ok(None);
        }
        let hash = hash_of(&row.get::<_, Vec<u8>>(1))
            .ok_or_else(|| self.decode_err("chain_head", "its hash is not 32 bytes"))?;
        Ok(Some(audit::head_value(seq, &hash)))
    }

    fn audit_pair(&self, row: &tokio_postgres::Row) -> Result<Pair> {
        let seq = row.get::<_, i64>(0) as u64;
        let bad = |what: &str| self.decode_err(&format!("audit #{seq}"), what);
        let prev =
            hash_of(&row.get::<_, Vec<u8>>(1)).ok_or_else(|| bad("prev_hash is not 32 bytes"))?;
        let hash = hash_of(&row.get::<_, Vec<u8>>(2)).ok_or_else(|| bad("hash is not 32 bytes"))?;
        let body: String = row.get(3);
        let mut value = Vec::with_capacity(8 + 2 * HASH_LEN + body.len());
        value.extend_from_slice(&seq.to_be_bytes());
        value.extend_from_slice(&prev);
        value.extend_from_slice(&hash);
        value.extend_from_slice(body.as_bytes());
        Ok((keys::num(keys::AUDIT, seq), value))
    }

    pub fn scan(&self, prefix: &[u8], reverse: bool) -> Scan<'_> {
        match prefix.first() {
            Some(&keys::AUDIT) if prefix.len() == 1 => {
                return Scan::Paged(AuditPages {
                    store: self,
                    reverse,
                    bound: if reverse { i64::MAX } else { 0 },
                    buffer: VecDeque::new(),
                    done: false,
                });
            }
            _ => {}
        }
        let mut rows = match self.scan_all(prefix) {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        };
        if reverse {
            rows.reverse();
        }
        Scan::Rows(rows.into_iter())
    }

    /// Every record under `prefix`, in key order (the tables other than the chain are small).
    fn scan_all(&self, prefix: &[u8]) -> Result<Vec<Pair>> {
        let Some(&first) = prefix.first() else {
            return Err(self.unknown(prefix));
        };
        let bytes = |v: Vec<u8>| v;
        let out = match first {
            keys::INCIDENT => self
                .rows("SELECT id, body::text FROM incidents ORDER BY id", vec![])?
                .iter()
                .map(|r| {
                    (
                        keys::num(keys::INCIDENT, r.get::<_, i64>(0) as u64),
                        r.get::<_, String>(1).into_bytes(),
                    )
                })
                .collect(),
            keys::TIMELINE => {
                let rows = match keys::read_num(prefix, 0) {
                    Some(id) => self.rows(
                        "SELECT incident_id, seq FROM timeline WHERE incident_id = $1 ORDER BY seq",
                        vec![int(id as i64)],
                    )?,
                    None => self.rows(
                        "SELECT incident_id, seq FROM timeline ORDER BY incident_id, seq",
                        vec![],
                    )?,
                };
                rows.iter()
                    .map(|r| {
                        (
                            keys::pair(
                                keys::TIMELINE,
                                r.get::<_, i64>(0) as u64,
                                r.get::<_, i64>(1) as u64,
                            ),
                            Vec::new(),
                        )
                    })
                    .collect()
            }
            keys::GROUP => self
                .rows(
                    "SELECT group_key, incident_id FROM incident_groups ORDER BY group_key",
                    vec![],
                )?
                .iter()
                .map(|r| {
                    (
                        keys::text(keys::GROUP, r.get::<_, &str>(0)),
                        (r.get::<_, i64>(1) as u64).to_be_bytes().to_vec(),
                    )
                })
                .collect(),
            keys::META => {
                let mut out: Vec<Pair> = self
                    .rows("SELECT name, value FROM meta ORDER BY name", vec![])?
                    .iter()
                    .map(|r| (keys::meta(r.get::<_, &str>(0)), bytes(r.get(1))))
                    .collect();
                if let Some(head) = self.head()? {
                    out.push((keys::meta("head"), head));
                    out.sort();
                }
                out
            }
            keys::AUDIT => {
                let mut out = Vec::new();
                for kv in self.scan(&[keys::AUDIT], false) {
                    out.push(kv?);
                }
                out
            }
            other => {
                let table = memory_table(other).ok_or_else(|| self.unknown(prefix))?;
                self.rows(table.scan, vec![])?
                    .iter()
                    .map(|r| {
                        (
                            keys::text(other, r.get::<_, &str>(0)),
                            r.get::<_, String>(1).into_bytes(),
                        )
                    })
                    .collect()
            }
        };
        Ok(out)
    }

    pub fn last(&self, prefix: &[u8]) -> Result<Option<Pair>> {
        match prefix {
            [keys::AUDIT] => {
                let rows = self.rows(
                    "SELECT seq, prev_hash, hash, entry::text FROM audit_chain ORDER BY seq DESC LIMIT 1",
                    vec![],
                )?;
                rows.first().map(|r| self.audit_pair(r)).transpose()
            }
            [keys::INCIDENT] => {
                let rows = self.rows(
                    "SELECT id, body::text FROM incidents ORDER BY id DESC LIMIT 1",
                    vec![],
                )?;
                Ok(rows.first().map(|r| {
                    (
                        keys::num(keys::INCIDENT, r.get::<_, i64>(0) as u64),
                        r.get::<_, String>(1).into_bytes(),
                    )
                }))
            }
            _ => self.scan(prefix, true).next().transpose(),
        }
    }

    pub fn count(&self, prefix: &[u8]) -> Result<u64> {
        let sql = match prefix {
            [keys::AUDIT] => "SELECT count(*) FROM audit_chain",
            [keys::INCIDENT] => "SELECT count(*) FROM incidents",
            [keys::TIMELINE] => "SELECT count(*) FROM timeline",
            [keys::GROUP] => "SELECT count(*) FROM incident_groups",
            [keys::META] => {
                "SELECT (SELECT count(*) FROM meta) + (SELECT count(*) FROM chain_head WHERE seq > 0)"
            }
            [other] => {
                memory_table(*other)
                    .ok_or_else(|| self.unknown(prefix))?
                    .count
            }
            _ => return Ok(self.scan_all(prefix)?.len() as u64),
        };
        let rows = self.rows(sql, vec![])?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    /// An incident's records in chain order, read from the chain along `audit_chain_incident`
    /// (migration 4). One query, no LIMIT pages: with a LIMIT the planner may pick a bitmap
    /// scan and a top-N sort that reads the whole timeline once per page (measured: 5x slower).
    pub fn timeline_records(&self, incident: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        self.rows(
            "SELECT seq, prev_hash, hash, entry::text FROM audit_chain \
             WHERE incident_id = $1 ORDER BY seq",
            vec![int(incident as i64)],
        )?
        .iter()
        .map(|r| {
            let (k, v) = self.audit_pair(r)?;
            Ok((keys::read_num(&k, 0).unwrap_or(0), v))
        })
        .collect()
    }

    pub fn size_on_disk(&self) -> Result<u64> {
        let rows = self.rows(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname = current_schema() \
             AND c.relname IN ('meta', 'audit_chain', 'chain_head', 'incidents', 'timeline', \
             'incident_groups', 'cooldowns', 'idempotency', 'dedup', 'journal', 'approvals', 'outbox', \
             'alert_book', \
             'schema_version')",
            vec![],
        )?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    /// Acting commits carry `fence`'s token from now on (once; a second fence is ignored).
    pub fn fence_with(&self, fence: super::Fence) {
        let _ = self.fence.set(fence);
    }

    /// One transaction: the chain head locked, every change written, the head moved. An
    /// `acting` commit (a run, its steps, an approval taken, a milestone it reached) carries
    /// the fencing token, and is refused whole when a newer leader's token is stored.
    pub fn commit(&self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>, acting: bool) -> Result<()> {
        let batch = Batch::from_changes(&self.place, changes)?;
        let writer = self.writer.clone();
        let place = self.place.clone();
        let epoch = self
            .fence
            .get()
            .filter(|_| acting)
            .map(|f| f.token.load(Ordering::SeqCst) as i64);
        let connect = self.connect.clone();
        let written = self.call(async move {
            let mut w = writer.lock().await;
            if w.client.is_closed() {
                w.client = connect().await?;
                w.statements.clear();
            }
            batch.write(&mut w, &place, epoch).await
        });
        if let (Err(e @ StoreError::Fenced { .. }), Some(f)) = (&written, self.fence.get()) {
            (f.on_refused)(e);
        }
        written
    }
}

/// A query parameter with its type.
type Param = (Box<dyn ToSql + Send + Sync>, Type);

fn int(v: i64) -> Param {
    (Box::new(v), Type::INT8)
}

fn text(v: String) -> Param {
    (Box::new(v), Type::TEXT)
}

fn hash_of(bytes: &[u8]) -> Option<[u8; HASH_LEN]> {
    bytes.try_into().ok()
}

/// Spawns `fut` on the store's runtime and waits for it from this (any) thread.
fn block_on<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| StoreError::Closed)?
}

/// The SQL of one of the operational-memory tables (text key, JSON body).
struct MemoryTable {
    name: &'static str,
    get: &'static str,
    scan: &'static str,
    count: &'static str,
}

fn memory_table(prefix: u8) -> Option<&'static MemoryTable> {
    macro_rules! table {
        ($name:literal) => {
            &MemoryTable {
                name: $name,
                get: concat!("SELECT body::text FROM ", $name, " WHERE key = $1"),
                scan: concat!("SELECT key, body::text FROM ", $name, " ORDER BY key"),
                count: concat!("SELECT count(*) FROM ", $name),
            }
        };
    }
    Some(match prefix {
        keys::COOLDOWN => table!("cooldowns"),
        keys::IDEMPOTENCY => table!("idempotency"),
        keys::DEDUP => table!("dedup"),
        keys::JOURNAL => table!("journal"),
        keys::OUTBOX => table!("outbox"),
        keys::ALERT_BOOK => table!("alert_book"),
        keys::APPROVAL => table!("approvals"),
        _ => return None,
    })
}

/// Brings the schema to [`SCHEMA_VERSION`], or refuses a database that is ahead of it.
async fn migrate(client: &mut Client, place: &Path) -> Result<()> {
    let err = |e| pg_error(place, e);
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now(),
            applied_by text NOT NULL
        )",
    )
    .await
    .map_err(err)?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(err)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            place: place.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == 0 {
        // A database holding tables of its own is not ours to fill.
        let foreign: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename IN ('meta', 'audit_chain', 'incidents', 'timeline')",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        if foreign > 0 {
            return Err(StoreError::Foreign {
                path: place.to_path_buf(),
            });
        }
    }
    let by = format!("fleetdeck {}", env!("CARGO_PKG_VERSION"));
    for version in found + 1..=SCHEMA_VERSION {
        tx.batch_execute(MIGRATIONS[(version - 1) as usize])
            .await
            .map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_by) VALUES ($1, $2)",
            &[&version, &by],
        )
        .await
        .map_err(err)?;
    }
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('format', $1) ON CONFLICT (name) DO NOTHING",
        &[&FORMAT],
    )
    .await
    .map_err(err)?;
    let format: Vec<u8> = tx
        .query_one("SELECT value FROM meta WHERE name = 'format'", &[])
        .await
        .map_err(err)?
        .get(0);
    if format != FORMAT {
        return Err(StoreError::Foreign {
            path: place.to_path_buf(),
        });
    }
    tx.commit().await.map_err(err)
}

/// The audit chain read a page at a time, in either direction.
pub(crate) struct AuditPages<'a> {
    store: &'a PgStore,
    reverse: bool,
    /// The last seq handed out (exclusive bound of the next page).
    bound: i64,
    buffer: VecDeque<Result<Pair>>,
    done: bool,
}

impl Iterator for AuditPages<'_> {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let sql = if self.reverse {
                "SELECT seq, prev_hash, hash, entry::text FROM audit_chain WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
            } else {
                "SELECT seq, prev_hash, hash, entry::text FROM audit_chain WHERE seq > $1 ORDER BY seq LIMIT $2"
            };
            match self.store.rows(sql, vec![int(self.bound), int(AUDIT_PAGE)]) {
                Ok(rows) => {
                    self.done = (rows.len() as i64) < AUDIT_PAGE;
                    if let Some(last) = rows.last() {
                        self.bound = last.get::<_, i64>(0);
                    }
                    self.buffer
                        .extend(rows.iter().map(|r| self.store.audit_pair(r)));
                }
                Err(e) => {
                    self.done = true;
                    self.buffer.push_back(Err(e));
                }
            }
        }
        self.buffer.pop_front()
    }
}

/// The parts of an entry's JSON that get columns of their own.
#[derive(serde::Deserialize)]
struct EntryColumns {
    recorded_at: DateTime<Utc>,
    #[serde(default)]
    incident: Option<u64>,
}

/// `audit_chain` rows, column by column.
#[derive(Default)]
struct AuditRows {
    seq: Vec<i64>,
    prev: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    recorded_at: Vec<DateTime<Utc>>,
    incident: Vec<Option<i64>>,
    entry: Vec<String>,
}

/// `incidents` rows, column by column.
#[derive(Default)]
struct IncidentRows {
    id: Vec<i64>,
    status: Vec<String>,
    severity: Vec<String>,
    title: Vec<String>,
    body: Vec<String>,
}

/// One commit's changes, sorted by table, as arrays for `unnest` (one statement per table).
#[derive(Default)]
struct Batch {
    audit: AuditRows,
    audit_gone: Vec<i64>,
    incidents: IncidentRows,
    incidents_gone: Vec<i64>,
    timeline: (Vec<i64>, Vec<i64>),
    timeline_gone: (Vec<i64>, Vec<i64>),
    groups: (Vec<String>, Vec<i64>),
    groups_gone: Vec<String>,
    memory: Vec<(&'static str, Vec<String>, Vec<String>)>,
    memory_gone: Vec<(&'static str, Vec<String>)>,
    meta: (Vec<String>, Vec<Vec<u8>>),
    meta_gone: Vec<String>,
    head: Option<(i64, Vec<u8>)>,
}

impl Batch {
    fn from_changes(place: &Path, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Self> {
        let bad = |key: &[u8], reason: String| StoreError::Decode {
            path: place.to_path_buf(),
            key: String::from_utf8_lossy(key).into_owned(),
            reason,
        };
        let text =
            |key: &[u8]| String::from_utf8(key[1..].to_vec()).map_err(|e| bad(key, e.to_string()));
        let json_text = |key: &[u8], v: &[u8]| {
            String::from_utf8(v.to_vec()).map_err(|e| bad(key, e.to_string()))
        };
        let mut b = Batch::default();
        for (key, value) in changes {
            let Some(&prefix) = key.first() else { continue };
            let n = |skip| keys::read_num(&key, skip).unwrap_or(0) as i64;
            match (prefix, value) {
                (keys::AUDIT, Some(v)) => {
                    let rec = audit::Record::parse(&v).map_err(|r| bad(&key, r))?;
                    let body = json_text(&key, rec.body)?;
                    let cols: EntryColumns =
                        serde_json::from_str(&body).map_err(|e| bad(&key, e.to_string()))?;
                    b.audit.seq.push(rec.seq as i64);
                    b.audit.prev.push(rec.prev.to_vec());
                    b.audit.hash.push(rec.hash.to_vec());
                    b.audit.recorded_at.push(cols.recorded_at);
                    b.audit.incident.push(cols.incident.map(|i| i as i64));
                    b.audit.entry.push(body);
                }
                (keys::AUDIT, None) => b.audit_gone.push(n(0)),
                (keys::INCIDENT, Some(v)) => {
                    let body = json_text(&key, &v)?;
                    let parsed: serde_json::Value =
                        serde_json::from_str(&body).map_err(|e| bad(&key, e.to_string()))?;
                    let field = |name: &str| {
                        parsed
                            .get(name)
                            .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_owned))
                            .unwrap_or_default()
                    };
                    b.incidents.id.push(n(0));
                    b.incidents.status.push(field("status"));
                    b.incidents.severity.push(field("severity"));
                    b.incidents.title.push(field("title"));
                    b.incidents.body.push(body);
                }
                (keys::INCIDENT, None) => b.incidents_gone.push(n(0)),
                (keys::TIMELINE, Some(_)) => {
                    b.timeline.0.push(n(0));
                    b.timeline.1.push(n(8));
                }
                (keys::TIMELINE, None) => {
                    b.timeline_gone.0.push(n(0));
                    b.timeline_gone.1.push(n(8));
                }
                (keys::GROUP, Some(v)) => {
                    let id = <[u8; 8]>::try_from(v.as_slice())
                        .map_err(|_| bad(&key, "an incident id is 8 bytes".into()))?;
                    b.groups.0.push(text(&key)?);
                    b.groups.1.push(u64::from_be_bytes(id) as i64);
                }
                (keys::GROUP, None) => b.groups_gone.push(text(&key)?),
                (keys::META, v) => {
                    let name = text(&key)?;
                    match (name.as_str(), v) {
                        ("head", Some(v)) => {
                            let (seq, hash) = audit::parse_head(&v)
                                .ok_or_else(|| bad(&key, "not a chain head".into()))?;
                            b.head = Some((seq as i64, hash.to_vec()));
                        }
                        ("head", None) => {
                            b.head = Some((0, GENESIS.to_vec()));
                        }
                        (_, Some(v)) => {
                            b.meta.0.push(name);
                            b.meta.1.push(v);
                        }
                        (_, None) => b.meta_gone.push(name),
                    }
                }
                (other, v) => {
                    let table = memory_table(other).ok_or_else(|| {
                        bad(
                            &key,
                            "no PostgreSQL table holds this key (a bug in fleetdeck)".into(),
                        )
                    })?;
                    let k = text(&key)?;
                    match v {
                        Some(v) => {
                            let body = json_text(&key, &v)?;
                            match b.memory.iter_mut().find(|(t, _, _)| *t == table.name) {
                                Some((_, ks, vs)) => {
                                    ks.push(k);
                                    vs.push(body);
                                }
                                None => b.memory.push((table.name, vec![k], vec![body])),
                            }
                        }
                        None => match b.memory_gone.iter_mut().find(|(t, _)| *t == table.name) {
                            Some((_, ks)) => ks.push(k),
                            None => b.memory_gone.push((table.name, vec![k])),
                        },
                    }
                }
            }
        }
        Ok(b)
    }

    async fn write(self, w: &mut Writer, place: &Path, epoch: Option<i64>) -> Result<()> {
        let err = |e| pg_error(place, e);
        let Writer { client, statements } = w;
        let tx = client.transaction().await.map_err(err)?;
        // The lock that serialises appends: whoever holds this row writes the next records.
        const LOCK: &str = "SELECT seq, hash, leader_epoch FROM chain_head WHERE id = 1 FOR UPDATE";
        let lock = match statements.get(LOCK) {
            Some(s) => s.clone(),
            None => {
                let s = tx.prepare(LOCK).await.map_err(err)?;
                statements.insert(LOCK.to_string(), s.clone());
                s
            }
        };
        let row = tx.query_one(&lock, &[]).await.map_err(err)?;
        let head_seq: i64 = row.get(0);
        let head_hash: Vec<u8> = row.get(1);
        let stored_epoch: i64 = row.get(2);
        // The fence, in the same locked row as the chain: a leader whose Lease a newer leader
        // took over writes nothing that acts, whatever it still believes.
        if let Some(mine) = epoch {
            if stored_epoch > mine {
                return Err(StoreError::Fenced {
                    place: place.to_path_buf(),
                    mine: mine as u64,
                    current: stored_epoch as u64,
                });
            }
            if stored_epoch < mine {
                tx.execute(
                    "UPDATE chain_head SET leader_epoch = $1 WHERE id = 1",
                    &[&mine],
                )
                .await
                .map_err(err)?;
            }
        }
        if let Some(first) = self.audit.seq.iter().min().copied() {
            let links = first != head_seq + 1
                || self
                    .audit
                    .seq
                    .iter()
                    .position(|s| *s == first)
                    .is_some_and(|i| self.audit.prev[i] == head_hash);
            if first <= head_seq || !links {
                return Err(StoreError::ChainMoved {
                    place: place.to_path_buf(),
                    head: head_seq as u64,
                    next: first as u64,
                });
            }
        }
        macro_rules! run {
            ($sql:expr, $($p:expr),+) => {{
                let sql: String = $sql.into();
                let stmt = match statements.get(&sql) {
                    Some(s) => s.clone(),
                    None => {
                        let s = tx.prepare(&sql).await.map_err(err)?;
                        statements.insert(sql, s.clone());
                        s
                    }
                };
                tx.execute(&stmt, &[$(&$p as &(dyn ToSql + Sync)),+]).await.map_err(err)?;
            }};
        }
        if !self.audit_gone.is_empty() {
            run!(
                "DELETE FROM audit_chain WHERE seq = ANY($1)",
                self.audit_gone
            );
        }
        if !self.audit.seq.is_empty() {
            let AuditRows {
                seq,
                prev,
                hash,
                recorded_at: at,
                incident: inc,
                entry,
            } = &self.audit;
            run!(
                "INSERT INTO audit_chain (seq, prev_hash, hash, recorded_at, incident_id, entry) \
                 SELECT s, p, h, r, i, e::json FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], \
                 $4::timestamptz[], $5::bigint[], $6::text[]) AS u(s, p, h, r, i, e)",
                seq,
                prev,
                hash,
                at,
                inc,
                entry
            );
        }
        if !self.incidents_gone.is_empty() {
            run!(
                "DELETE FROM incidents WHERE id = ANY($1)",
                self.incidents_gone
            );
        }
        if !self.incidents.id.is_empty() {
            let IncidentRows {
                id,
                status,
                severity,
                title,
                body,
            } = &self.incidents;
            run!(
                "INSERT INTO incidents (id, status, severity, title, body) \
                 SELECT i, s, v, t, b::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[], \
                 $4::text[], $5::text[]) AS u(i, s, v, t, b) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 severity = excluded.severity, title = excluded.title, body = excluded.body",
                id,
                status,
                severity,
                title,
                body
            );
        }
        if !self.timeline_gone.0.is_empty() {
            run!(
                "DELETE FROM timeline t USING unnest($1::bigint[], $2::bigint[]) AS u(i, s) \
                 WHERE t.incident_id = u.i AND t.seq = u.s",
                self.timeline_gone.0,
                self.timeline_gone.1
            );
        }
        if !self.timeline.0.is_empty() {
            run!(
                "INSERT INTO timeline (incident_id, seq) SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
                 ON CONFLICT DO NOTHING",
                self.timeline.0,
                self.timeline.1
            );
        }
        if !self.groups_gone.is_empty() {
            run!(
                "DELETE FROM incident_groups WHERE group_key = ANY($1)",
                self.groups_gone
            );
        }
        if !self.groups.0.is_empty() {
            run!(
                "INSERT INTO incident_groups (group_key, incident_id) \
                 SELECT * FROM unnest($1::text[], $2::bigint[]) \
                 ON CONFLICT (group_key) DO UPDATE SET incident_id = excluded.incident_id",
                self.groups.0,
                self.groups.1
            );
        }
        for (table, ks) in &self.memory_gone {
            run!(format!("DELETE FROM {table} WHERE key = ANY($1)"), ks);
        }
        for (table, ks, vs) in &self.memory {
            run!(
                format!(
                    "INSERT INTO {table} (key, body) SELECT k, b::jsonb FROM unnest($1::text[], $2::text[]) AS u(k, b) \
                     ON CONFLICT (key) DO UPDATE SET body = excluded.body"
                ),
                ks,
                vs
            );
        }
        if !self.meta_gone.is_empty() {
            run!("DELETE FROM meta WHERE name = ANY($1)", self.meta_gone);
        }
        if !self.meta.0.is_empty() {
            run!(
                "INSERT INTO meta (name, value) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                self.meta.0,
                self.meta.1
            );
        }
        if let Some((seq, hash)) = &self.head {
            run!(
                "UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1",
                seq,
                hash
            );
        }
        tx.commit().await.map_err(err)
    }
}
