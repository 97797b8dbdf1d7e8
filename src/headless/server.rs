//! The daemon's HTTP face: Alertmanager's webhook in; metrics, health and readiness out; the
//! incidents, runs and approvals API for people and their tools (the rest of the API in
//! `headless::api`). Every route but `/healthz`, `/readyz` (and `/metrics`, unless
//! `metrics_auth`) sits behind `require_identity`: the bearer token read into a person
//! (`headless::identity`), the request's verb authorised; each refusal is audited.
//! The transport is ours, not `axum::serve`'s: timeouts for slow and idle clients, a cap on
//! connections and TLS (`ServeOptions`). May import config, model, store, runbook and the
//! other headless modules.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::alerts::{AlertBook, WebhookPayload};
use super::identity::{Caller, GROUP, Identities, Refusal, Verb};
use super::intake::Vendor;
use super::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use super::tls::{self, TlsError, TlsFiles};
use crate::config::HeadlessConfig;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin, Verdict, parse_incident_id};
use crate::runbook::executor::Executor;
use crate::store::{IncidentFilter, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("[headless] token_file {path} cannot be read: {source}; fix its permissions or path")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("[headless] token_file {path} is empty; write the API token into it")]
    EmptyTokenFile { path: String },
}

/// The API token: the first line of `token_file` when it is set, else the environment
/// variable `token_env`; `None` when neither holds one (every authenticated route then
/// answers 401).
pub fn load_token(cfg: &HeadlessConfig) -> Result<Option<String>, ApiError> {
    let file = cfg.token_file.trim();
    if !file.is_empty() {
        let text = std::fs::read_to_string(file).map_err(|source| ApiError::TokenFile {
            path: file.to_string(),
            source,
        })?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(ApiError::EmptyTokenFile {
                path: file.to_string(),
            });
        }
        return Ok(Some(token));
    }
    if cfg.token_env.trim().is_empty() {
        return Ok(None);
    }
    Ok(std::env::var(cfg.token_env.trim())
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// `None` when this daemon runs no runbooks: runs are empty, approvals 404.
    pub executor: Option<Executor>,
    pub alerts: Arc<AlertBook>,
    pub metrics: Arc<Metrics>,
    /// The single shared bearer token; `None` when none is configured.
    pub token: Option<String>,
    /// Who a bearer token belongs to and what they may do (`[headless] auth`); by default the
    /// single token's holder may do everything.
    pub identities: Arc<Identities>,
    /// Whether `/metrics` wants the token too.
    pub metrics_auth: bool,
    /// True once the store is open and the sources have synced.
    pub ready: Arc<AtomicBool>,
    /// True while this replica holds the lease; a follower refuses approvals.
    pub leader: Arc<AtomicBool>,
    pub cfg: HeadlessConfig,
    /// Woken when a delivery fired or resolved an alert, so the evaluation runs now.
    pub on_alerts: Arc<Notify>,
    /// In an HA set: how a follower hands an alert delivery to the leader.
    pub forward: Option<Forwarder>,
    /// The live stream's hub (`GET /api/v1/stream`); `None` answers 404.
    pub stream: Option<Arc<super::stream::Hub>>,
    refusals: Arc<RefusalLog<IpAddr>>,
    /// Forbidden requests, by person and request.
    forbidden: Arc<RefusalLog<String>>,
}

/// The header a follower marks a forwarded delivery with (its identity), so that it is never
/// forwarded twice.
pub const FORWARDED_BY: &str = "x-fleetdeck-forwarded-by";

/// How a follower forwards Alertmanager's deliveries to the leader: each replica keeps its own
/// alert book, and only the leader acts, so an alert delivered to a follower would otherwise
/// wait for a failover to be acted on.
#[derive(Clone)]
pub struct Forwarder {
    /// This replica's identity, sent in [`FORWARDED_BY`].
    pub identity: String,
    /// The leader's (identity, API address), as the Lease names them; `None` when unknown.
    pub leader: Arc<dyn Fn() -> Option<(String, String)> + Send + Sync>,
    pub client: reqwest::Client,
}

impl Forwarder {
    /// Sends a delivery on to the leader with the caller's credentials; answers the leader's
    /// identity (`None` when no replica holds the Lease: there is nobody to tell, and this
    /// replica, which keeps the alert, is the one likely to lead next), or why the leader
    /// could not be told.
    async fn forward(
        &self,
        path: &str,
        body: &Bytes,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<String>, String> {
        let Some((leader, url)) = (self.leader)() else {
            return Ok(None);
        };
        let mut req = self
            .client
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .header(header::CONTENT_TYPE, "application/json")
            .header(FORWARDED_BY, self.identity.as_str())
            .body(body.clone());
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a.as_bytes());
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(Some(leader)),
            Ok(r) => Err(format!(
                "the leader {leader} at {url} answered {}",
                r.status()
            )),
            Err(e) => Err(format!("the leader {leader} at {url} is unreachable: {e}")),
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .field("executor", &self.executor.is_some())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("identities", &self.identities)
            .field("metrics_auth", &self.metrics_auth)
            .field("ready", &self.ready.load(Ordering::SeqCst))
            .field("leader", &self.leader.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// A state with no executor, a fresh alert book and metrics, not ready and not the leader
    /// (until the daemon says otherwise); `metrics_auth` from `cfg`.
    pub fn new(
        store: Store,
        cfg: HeadlessConfig,
        token: Option<String>,
        default_cluster: &str,
    ) -> Self {
        // The alerts still firing when the last process stopped: their signals go on firing.
        let alerts = AlertBook::load(default_cluster, &store, chrono::Utc::now()).unwrap_or_else(
            |e| {
                tracing::warn!(error = %e, "the alert book cannot be read from the store: outside alerts start empty");
                AlertBook::new(default_cluster)
            },
        );
        Self {
            store,
            executor: None,
            alerts: Arc::new(alerts),
            metrics: Arc::new(Metrics::new()),
            identities: Arc::new(Identities::single(token.clone(), &cfg)),
            token,
            metrics_auth: cfg.metrics_auth,
            ready: Arc::new(AtomicBool::new(false)),
            leader: Arc::new(AtomicBool::new(false)),
            cfg,
            on_alerts: Arc::new(Notify::new()),
            forward: None,
            stream: None,
            refusals: Arc::new(RefusalLog::default()),
            forbidden: Arc::new(RefusalLog::default()),
        }
    }
}

/// A flood of refused requests must not fill the audit chain: at most one entry per peer
/// address (unauthenticated) or per person and request (forbidden) every
/// `REFUSAL_AUDIT_EVERY`, the next one saying how many were left out.
struct RefusalLog<K> {
    by_peer: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K> Default for RefusalLog<K> {
    fn default() -> Self {
        Self {
            by_peer: Mutex::new(HashMap::new()),
        }
    }
}

const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(10);
const REFUSAL_PEERS_KEPT: usize = 4096;

impl<K: Eq + std::hash::Hash> RefusalLog<K> {
    /// `Some(left out since the last entry)` when this refusal is to be recorded.
    fn admit(&self, peer: K) -> Option<u64> {
        let mut m = self.by_peer.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if m.len() >= REFUSAL_PEERS_KEPT {
            m.retain(|_, (at, _)| now.duration_since(*at) < REFUSAL_AUDIT_EVERY);
        }
        match m.get_mut(&peer) {
            Some((at, skipped)) if now.duration_since(*at) < REFUSAL_AUDIT_EVERY => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                let left_out = *skipped;
                *at = now;
                *skipped = 0;
                Some(left_out)
            }
            None => {
                m.insert(peer, (now, 0));
                Some(0)
            }
        }
    }
}

/// The route a path belongs to, as the `path` label of the request counter: a bounded set.
pub fn route_label(path: &str) -> &'static str {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "healthz"] => "/healthz",
        ["", "readyz"] => "/readyz",
        ["", "metrics"] => "/metrics",
        ["", "api", "v1", "alerts"] => "/api/v1/alerts",
        ["", "api", "v1", "alerts", vendor] => Vendor::ALL
            .iter()
            .find(|v| v.path().rsplit('/').next() == Some(vendor))
            .map_or("other", |v| v.path()),
        ["", "api", "v1", "incidents"] => "/api/v1/incidents",
        ["", "api", "v1", "incidents", _] => "/api/v1/incidents/{id}",
        ["", "api", "v1", "incidents", _, "ack"] => "/api/v1/incidents/{id}/ack",
        ["", "api", "v1", "incidents", _, "resolve"] => "/api/v1/incidents/{id}/resolve",
        ["", "api", "v1", "runs"] => "/api/v1/runs",
        ["", "api", "v1", "runs", _, "approve"] => "/api/v1/runs/{approval_id}/approve",
        ["", "api", "v1", "runs", _, "deny"] => "/api/v1/runs/{approval_id}/deny",
        ["", "api", "v1", "incidents", _, "notes"] => "/api/v1/incidents/{id}/notes",
        ["", "api", "v1", "audit"] => "/api/v1/audit",
        ["", "api", "v1", "audit", "verify"] => "/api/v1/audit/verify",
        ["", "api", "v1", "store", "stats"] => "/api/v1/store/stats",
        ["", "api", "v1", "actions", "plan"] => "/api/v1/actions/plan",
        ["", "api", "v1", "actions", _, "confirm"] => "/api/v1/actions/{plan_id}/confirm",
        ["", "api", "v1", "kill-switch"] => "/api/v1/kill-switch",
        ["", "api", "v1", "stream"] => "/api/v1/stream",
        ["", "api", "v1", "gpus", _, "history"] => "/api/v1/gpus/{uuid}/history",
        _ => "other",
    }
}

/// The daemon's routes, with the identity check, the body limit and the request counter.
/// A route added to `guarded` (before its `route_layer`) sits behind `require_identity`: a
/// GET needs `view`, and its handler may take `Extension<Caller>`.
/// `/readyz` is open like `/healthz`: the kubelet's probes carry no token, and putting it in a
/// Pod spec would hand it to everyone who can read pods.
pub fn router(state: ApiState) -> Router {
    let mut open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let mut guarded = Router::new();
    for vendor in Vendor::ALL {
        guarded = guarded.route(
            vendor.path(),
            post(
                move |state: State<ApiState>,
                      headers: HeaderMap,
                      body: Result<Bytes, BytesRejection>| {
                    receive_alerts(vendor, state, headers, body)
                },
            ),
        );
    }
    let mut guarded = guarded
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(show_incident))
        .route(
            "/api/v1/incidents/{id}/ack",
            post(
                |state: State<ApiState>,
                 caller: Extension<Caller>,
                 id: Path<String>,
                 body: Result<Bytes, BytesRejection>| {
                    reach_milestone(
                        state,
                        caller,
                        id,
                        body,
                        crate::store::Milestone::Acknowledged,
                    )
                },
            ),
        )
        .route(
            "/api/v1/incidents/{id}/resolve",
            post(
                |state: State<ApiState>,
                 caller: Extension<Caller>,
                 id: Path<String>,
                 body: Result<Bytes, BytesRejection>| {
                    reach_milestone(state, caller, id, body, crate::store::Milestone::Resolved)
                },
            ),
        )
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{approval_id}/approve", post(approve))
        .route("/api/v1/runs/{approval_id}/deny", post(deny))
        .route("/api/v1/stream", get(super::stream::serve))
        .route(
            "/api/v1/gpus/{uuid}/history",
            get(super::stream::gpu_history),
        )
        .merge(super::api::routes());
    if state.metrics_auth {
        guarded = guarded.route("/metrics", get(metrics));
    } else {
        open = open.route("/metrics", get(metrics));
    }
    let guarded = guarded.route_layer(from_fn_with_state(state.clone(), require_identity));
    Router::new()
        .merge(open)
        .merge(guarded)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.cfg.body_limit))
        .layer(from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

/// How the listener treats connections: how long a client may take, how many are served at
/// once, and whether they speak TLS.
///
/// A client that connects and then sends nothing (or one byte a minute) must not hold a file
/// descriptor for ever: twenty thousand of them used to leave no descriptor for the kubelet's
/// `/healthz`. hyper's `header_read_timeout` runs from the connection's start and again from
/// each response, so it bounds both a slow request head and an idle keep-alive connection; the
/// request timeout bounds a trickled body and a slow handler; the idle timeout closes a
/// connection whose response nobody reads; the cap bounds what is held at once, and a
/// connection beyond it is closed at once rather than queued behind the slow ones.
#[derive(Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// `Some`: the port speaks only TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where open and refused connections are counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServeOptions {
    /// `[headless]`'s default timeouts and cap, plain HTTP.
    fn default() -> Self {
        let cfg = HeadlessConfig::default();
        Self {
            header_read_timeout: cfg.header_read_timeout,
            request_timeout: cfg.request_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
            tls: None,
            metrics: None,
        }
    }
}

impl ServeOptions {
    /// The `[headless]` settings; loads the TLS certificate when `tls_cert` and `tls_key` are set.
    pub fn from_config(cfg: &HeadlessConfig) -> Result<Self, TlsError> {
        let tls = TlsFiles::from_config(cfg)?.map(tls::acceptor).transpose()?;
        Ok(Self {
            header_read_timeout: cfg.header_read_timeout,
            request_timeout: cfg.request_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
            tls,
            metrics: None,
        })
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn nonzero(d: Duration) -> Duration {
        d.max(Duration::from_millis(1))
    }
}

/// Serves `router` on `listener` with the default `ServeOptions` (plain HTTP) until `shutdown`
/// completes; then stops accepting and lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default(), shutdown).await
}

/// What a plain-HTTP client is told when every connection slot is taken.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\nfleetdeck: too many connections ([headless] max_connections)";

/// What a plain-HTTP client is told on a port that speaks TLS.
const TLS_ONLY_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 52\r\n\r\nfleetdeck: this port speaks HTTPS only; use https://";

/// How often at most a refused connection is logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` as `opts` say until `shutdown` completes; then stops
/// accepting, closes idle connections and gives the requests in flight up to the request
/// timeout to finish.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Bounded so that `acquire_many` below can ask for them all back.
    let cap = opts.max_connections.clamp(1, 1 << 20);
    let slots = Arc::new(Semaphore::new(cap));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let opts = Arc::new(opts);
    let mut refused_since_log: u64 = 0;
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (or a connection reset before it was accepted):
                    // back off instead of spinning, as axum::serve does.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if opts.tls.is_none() {
                // Best effort: a full socket buffer just means the client sees the close.
                let _ = stream.try_write(BUSY_RESPONSE);
            }
            drop(stream);
            if let Some(m) = &opts.metrics {
                m.connection_refused();
            }
            refused_since_log += 1;
            if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                tracing::warn!(
                    max_connections = cap,
                    refused = refused_since_log,
                    "connections refused: every slot is taken ([headless] max_connections)"
                );
                last_refusal_log = Some(Instant::now());
                refused_since_log = 0;
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            opts.clone(),
            closing_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let grace = opts.request_timeout.max(opts.header_read_timeout) + Duration::from_secs(1);
    let everyone_left = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
    if tokio::time::timeout(grace, everyone_left).await.is_err() {
        tracing::warn!("connections still open after the grace period are dropped");
    }
    Ok(())
}

/// One accepted connection: TLS first when configured, then HTTP/1.1 until it closes, times
/// out or the server stops. Holds its slot until it returns.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    opts: Arc<ServeOptions>,
    closing: tokio::sync::watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _open = opts
        .metrics
        .as_ref()
        .map(|m| OpenConnection::new(m.clone()));
    let activity = Arc::new(Activity::new());
    let Some(acceptor) = &opts.tls else {
        let io = Watched::new(stream, activity.clone());
        serve_http(io, peer, router, &opts, closing, activity).await;
        return;
    };
    let limit = ServeOptions::nonzero(opts.header_read_timeout);
    // A TLS client's first byte is a handshake record (22). Anything else is most likely plain
    // HTTP: say so in words instead of a handshake failure the client cannot read.
    let mut first = [0u8; 1];
    match tokio::time::timeout(limit, stream.peek(&mut first)).await {
        Ok(Ok(1..)) if first[0] == 22 => {}
        Ok(Ok(1..)) => {
            refuse_plain_http(stream, limit).await;
            return;
        }
        _ => return,
    }
    let io = Watched::new(stream, activity.clone());
    match tokio::time::timeout(limit, acceptor.accept(io)).await {
        Ok(Ok(tls)) => serve_http(tls, peer, router, &opts, closing, activity).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Answers a plain-HTTP request on the TLS port with a 400 that says why, then reads what the
/// client sent before closing: closing with its request unread would reset the connection and
/// lose the answer.
async fn refuse_plain_http(mut stream: TcpStream, limit: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answered = tokio::time::timeout(limit, async {
        stream.write_all(TLS_ONLY_RESPONSE).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut read = 0usize;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    opts: &ServeOptions,
    mut closing: tokio::sync::watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let request_timeout = ServeOptions::nonzero(opts.request_timeout);
    let idle_timeout = ServeOptions::nonzero(opts.idle_timeout);
    let in_handler = activity.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let busy = BusyGuard::new(in_handler.clone());
            async move {
                let _busy = busy;
                // A Router is always ready: `poll_ready` answers Ready at once.
                let call =
                    tower_service::Service::call(&mut router, req.map(axum::body::Body::new));
                Ok::<_, std::convert::Infallible>(
                    match tokio::time::timeout(request_timeout, call).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!(
                                "the request took longer than [headless] request_timeout ({})",
                                humantime::format_duration(request_timeout)
                            ),
                        ),
                    },
                )
            }
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(ServeOptions::nonzero(opts.header_read_timeout));
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_deadline = activity.last() + idle_timeout;
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            _ = closing.wait_for(|c| *c), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                if activity.idle_for() >= idle_timeout {
                    tracing::debug!(%peer, "closing a connection idle for [headless] idle_timeout");
                    return;
                }
            }
        }
    }
}

/// When bytes last moved on a connection, and whether a request is in a handler (a slow
/// handler is the request timeout's business, not the idle timeout's).
struct Activity {
    last: std::sync::Mutex<tokio::time::Instant>,
    handlers: std::sync::atomic::AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
            handlers: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
    }

    /// The moment bytes last moved (now, while a handler runs).
    fn last(&self) -> tokio::time::Instant {
        if self.handlers.load(Ordering::SeqCst) > 0 {
            return tokio::time::Instant::now();
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn idle_for(&self) -> Duration {
        self.last().elapsed()
    }
}

/// Marks a request as in its handler for as long as it lives.
struct BusyGuard(Arc<Activity>);

impl BusyGuard {
    fn new(activity: Arc<Activity>) -> Self {
        activity.handlers.fetch_add(1, Ordering::SeqCst);
        Self(activity)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// Counts a connection in `fleetdeck_http_connections` while it is open.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.connection_opened();
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// A stream that notes in `Activity` every time bytes move.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(super) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// The 404 for a path whose id is not an incident's: what an id looks like, and where the
/// ids are.
pub(super) fn not_an_incident(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("{id:?} is not an incident id (42 or INC-42); GET /api/v1/incidents lists them"),
    )
}

fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a)
}

async fn count_request(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let response = next.run(req).await;
    state
        .metrics
        .http_request(route, response.status().as_u16());
    response
}

/// The bearer token of an `Authorization: Bearer …` header, `None` when there is none.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
}

/// The auth layer every guarded route sits behind (`route_layer(from_fn_with_state(state,
/// require_identity))`): the bearer token read into a [`Caller`] (401 when nobody vouches for
/// it), the request's [`Verb`] authorised (403 naming the missing permission, recorded on the
/// incident or approval it concerns, else in the audit chain), and the caller handed to the
/// handler as a request extension (`Extension<Caller>`), so what it records names the person.
pub async fn require_identity(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let asked = Asked {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        peer: peer_of(&req),
    };
    let verb = Verb::of_request(&asked.method, &asked.path);
    let token = bearer(req.headers()).map(str::to_string);
    let caller = match state.identities.authenticate(token.as_deref()).await {
        Ok(c) => c,
        Err(Refusal::Unauthenticated(problem)) => {
            return unauthenticated(&state, asked, problem).await;
        }
        Err(Refusal::Unavailable(why)) => return error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(Refusal::Forbidden { why, .. }) => return error(StatusCode::FORBIDDEN, why),
    };
    match state.identities.authorize(&caller, verb).await {
        Ok(()) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(Refusal::Forbidden { why, .. }) => forbidden(&state, asked, &caller, verb, why).await,
        Err(Refusal::Unavailable(why)) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(Refusal::Unauthenticated(problem)) => unauthenticated(&state, asked, problem).await,
    }
}

/// What a refused request asked for, kept apart from the request (whose body is not `Sync`).
struct Asked {
    method: axum::http::Method,
    path: String,
    peer: Option<SocketAddr>,
}

/// The incident a request concerns: the id in `/api/v1/incidents/ID/…`, or the incident of
/// the approval in `/api/v1/runs/ID/…`.
fn incident_of_request(store: &Store, path: &str) -> Option<u64> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["api", "v1", "incidents", id, ..] => {
            parse_incident_id(id).filter(|n| matches!(store.incident(*n), Ok(Some(_))))
        }
        ["api", "v1", "runs", id, ..] => store
            .approval(id.trim().parse().ok()?)
            .ok()
            .flatten()
            .and_then(|a| a.incident),
        _ => None,
    }
}

/// 403: a known caller without the permission. The refusal is recorded with the person's
/// name, on the incident it concerns when there is one (so the timeline shows who tried).
async fn forbidden(
    state: &ApiState,
    asked: Asked,
    caller: &Caller,
    verb: Verb,
    why: String,
) -> Response {
    let Asked { method, path, .. } = asked;
    tracing::warn!(%method, %path, caller = %caller.name, permission = verb.name(), "refused: {why}");
    let admitted = state
        .forbidden
        .admit(format!("{} {method} {path}", caller.name));
    let store = state.store.clone();
    let (name, why_text) = (caller.name.clone(), why.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        let Some(left_out) = admitted else {
            return Ok(None);
        };
        let mut entry = NewEntry::new(
            EntryKind::Decision,
            Actor::User(name.clone()),
            Origin::Headless,
            format!("refused {} to {name}: {method} {path}", verb.name()),
        );
        entry.verdict = Some(Verdict::Refused);
        entry.incident = incident_of_request(&store, &path);
        entry
            .detail
            .insert("request".into(), json!(format!("{method} {path}")));
        entry.detail.insert("reason".into(), json!(why_text));
        entry.detail.insert(
            "missing".into(),
            json!({"verb": verb.k8s_verb(), "group": GROUP, "resource": verb.resource()}),
        );
        if left_out > 0 {
            entry.detail.insert(
                "refusals_not_recorded".into(),
                json!(format!(
                    "{left_out} more of this request by {name} since its previous entry"
                )),
            );
        }
        store.append(entry).map(Some)
    })
    .await;
    match recorded {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("the refusal cannot be recorded: {e}"),
        Err(e) => tracing::error!("the refusal cannot be recorded: {e}"),
    }
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": format!("{} may not {}: {why}", caller.name, verb.name()),
            "permission": verb.name(),
            "missing": {"verb": verb.k8s_verb(), "group": GROUP, "resource": verb.resource()},
        })),
    )
        .into_response()
}

/// 401, audited (at most once per peer per window); what was presented is never recorded.
async fn unauthenticated(state: &ApiState, asked: Asked, problem: String) -> Response {
    let Asked { method, path, peer } = asked;
    let peer_text = peer.map_or_else(|| "an unknown peer".to_string(), |p| p.to_string());
    tracing::warn!(%method, %path, peer = %peer_text, "refused an unauthenticated request: {problem}");
    if let Some(left_out) = state
        .refusals
        .admit(peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip()))
    {
        let mut entry = NewEntry::new(
            EntryKind::Decision,
            Actor::System,
            Origin::Webhook,
            format!("refused unauthenticated {method} {path} from {peer_text}"),
        );
        entry.verdict = Some(Verdict::Refused);
        entry.detail.insert("peer".into(), json!(peer_text));
        entry
            .detail
            .insert("request".into(), json!(format!("{method} {path}")));
        entry.detail.insert("reason".into(), json!(problem));
        if left_out > 0 {
            entry.detail.insert(
                "refusals_not_recorded".into(),
                json!(format!(
                    "{left_out} more from this address since its previous entry"
                )),
            );
        }
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.append(entry)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("the refusal cannot be audited: {e}"),
            Err(e) => tracing::error!("the refusal cannot be audited: {e}"),
        }
    }
    let mut response = error(StatusCode::UNAUTHORIZED, problem);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"fleetdeck\""),
    );
    response
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}: the API is /api/v1/alerts[/grafana|datadog|azure-monitor|elastic], /api/v1/incidents[/ID[/ack|resolve|notes]], /api/v1/runs[/ID/approve|deny], /api/v1/audit[/verify], /api/v1/store/stats, /api/v1/actions/plan, /api/v1/actions/ID/confirm, /api/v1/kill-switch, /api/v1/stream, /api/v1/gpus/UUID/history, /metrics, /healthz, /readyz",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        return (StatusCode::OK, "ready").into_response();
    }
    let unsynced = state.metrics.unsynced_sources();
    let forbidden = state.metrics.forbidden_sources();
    let why = if let Some(down) = state.metrics.store_down() {
        format!("not ready: {down}; nothing is acted on until it is back")
    } else if !forbidden.is_empty() {
        format!(
            "not ready: RBAC forbids watching {}: grant list and watch on it to fleetdeck's ServiceAccount (deploy/10-rbac.yaml)",
            forbidden.join(", ")
        )
    } else if unsynced.is_empty() {
        "not ready: the store is not open or the sources have not synced yet".to_string()
    } else {
        format!(
            "not ready: waiting for the sources to sync: {}",
            unsynced.join(", ")
        )
    };
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    state
        .metrics
        .set_leader(state.leader.load(Ordering::SeqCst));
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

pub(super) fn body_problem(state: &ApiState, rejection: &BytesRejection) -> Response {
    let code = rejection.status();
    if code == StatusCode::PAYLOAD_TOO_LARGE {
        return error(
            code,
            format!(
                "the request body is larger than [headless] body_limit ({} bytes)",
                state.cfg.body_limit
            ),
        );
    }
    error(
        code,
        format!("the request body cannot be read: {}", rejection.body_text()),
    )
}

/// One delivery from `vendor`: read into Alertmanager's form, then the same book, dedup,
/// metrics and forwarding for every sender.
async fn receive_alerts(
    vendor: Vendor,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(&state, &r),
    };
    let payload: WebhookPayload = match vendor.read(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not {}: {e}", vendor.expects()),
            );
        }
    };
    if vendor == Vendor::Alertmanager && payload.version != "4" {
        tracing::warn!(
            version = %payload.version,
            "an Alertmanager payload of version {:?}; fleetdeck reads version 4",
            payload.version
        );
    }
    if payload.truncated_alerts > 0 {
        tracing::warn!(
            group = %payload.group_key,
            "Alertmanager left out {} alerts of this group (the receiver's max_alerts)",
            payload.truncated_alerts
        );
    }
    let task_state = state.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let s = task_state;
        s.alerts.apply(&payload, &s.store, &s.cfg, Utc::now())
    })
    .await;
    let outcome = match applied {
        Ok(Ok(o)) => o,
        // 503: Alertmanager retries the delivery.
        Ok(Err(e)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the alerts cannot be recorded: {e}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the alerts cannot be handled: {e}"),
            );
        }
    };
    for (status, handling) in &outcome.tally {
        state.metrics.alert(status.name(), handling.name());
    }
    if !outcome.fired.is_empty() || !outcome.resolved.is_empty() {
        tracing::info!(
            source = vendor.name(),
            fired = outcome.fired.len(),
            resolved = outcome.resolved.len(),
            "alerts changed"
        );
        state.on_alerts.notify_one();
    }
    // A follower keeps the delivery (it may lead next) and hands it to the leader, which acts;
    // when the leader cannot be told, a 503 makes Alertmanager deliver it again.
    let mut forwarded_to = None;
    if let Some(f) = &state.forward
        && !state.leader.load(Ordering::SeqCst)
        && !headers.contains_key(FORWARDED_BY)
    {
        match f
            .forward(vendor.path(), &body, headers.get(header::AUTHORIZATION))
            .await
        {
            Ok(leader) => forwarded_to = leader,
            Err(why) => {
                tracing::warn!(reason = %why, "an alert delivery could not be forwarded to the leader");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "recorded on follower {}, but the leader could not be told: {why}; deliver it again",
                        f.identity
                    ),
                );
            }
        }
    }
    Json(json!({
        "forwarded_to": forwarded_to,
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "fired": outcome.fired.len(),
        "resolved": outcome.resolved.len(),
        "firing": state.alerts.len(),
    }))
    .into_response()
}

pub(super) fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NoIncident { .. } => error(StatusCode::NOT_FOUND, e.to_string()),
        other => error(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct IncidentsQuery {
    #[serde(default)]
    open: bool,
    /// RFC 3339: only incidents active since then (`incident list --since`).
    #[serde(default)]
    since: Option<chrono::DateTime<Utc>>,
}

async fn list_incidents(
    State(state): State<ApiState>,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(r) => return error(StatusCode::BAD_REQUEST, r.body_text()),
    };
    let store = state.store.clone();
    let filter = IncidentFilter {
        open_only: q.open,
        since: q.since,
    };
    match tokio::task::spawn_blocking(move || store.incidents(&filter)).await {
        Ok(Ok(incidents)) => Json(json!({ "incidents": incidents })).into_response(),
        Ok(Err(e)) => store_problem(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn show_incident(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(number) = parse_incident_id(&id) else {
        return not_an_incident(&id);
    };
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let incident = store.require_incident(number)?;
        let timeline = store.timeline(number)?;
        Ok::<_, StoreError>((incident, timeline))
    })
    .await;
    match read {
        Ok(Ok((incident, timeline))) => {
            Json(json!({ "incident": incident, "timeline": timeline })).into_response()
        }
        Ok(Err(e)) => store_problem(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_runs(State(state): State<ApiState>) -> Response {
    let Some(ex) = state.executor.clone() else {
        return Json(json!({ "runs": [], "pending_approvals": [] })).into_response();
    };
    // The pending approvals are the store's (every replica's), read off the async threads.
    let runs = ex.runs();
    match tokio::task::spawn_blocking(move || ex.pending_approvals()).await {
        Ok(pending) => Json(json!({ "runs": runs, "pending_approvals": pending })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DecisionBody {
    #[serde(default)]
    by: Option<String>,
}

/// Who the token's holder says they are; `api` when they do not say.
fn approver(body: &[u8]) -> Result<String, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok("api".into());
    }
    let parsed: DecisionBody = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not {{\"by\": \"name\"}}: {e}"))?;
    let by: String = parsed
        .by
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let by = by.trim();
    Ok(if by.is_empty() { "api" } else { by }.to_string())
}

/// `POST /api/v1/incidents/ID/ack|resolve`: the milestone, as `fleetdeck incident
/// ack|resolve` records it, by the authenticated caller (a `{"by": "name"}` body is checked
/// for shape and otherwise ignored: nothing vouches for it). A policy pages it.
async fn reach_milestone(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
    milestone: crate::store::Milestone,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(&state, &r),
    };
    if let Err(why) = approver(&body) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let by = caller.name;
    let Some(number) = parse_incident_id(&id) else {
        return not_an_incident(&id);
    };
    let store = state.store.clone();
    let done = tokio::task::spawn_blocking(move || {
        store.require_incident(number)?;
        store.milestone(number, milestone, Actor::User(by), Origin::Headless)
    })
    .await;
    match done {
        Ok(Ok(crate::store::MilestoneOutcome::Reached(entry))) => Json(json!({
            "incident": number,
            "reached": entry.entry.summary,
            "seq": entry.seq,
        }))
        .into_response(),
        Ok(Ok(crate::store::MilestoneOutcome::Already(status))) => Json(json!({
            "incident": number,
            "already": status.name(),
        }))
        .into_response(),
        Ok(Err(e)) => store_problem(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn approve(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(state, caller, id, body, true).await
}

async fn deny(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    decide(state, caller, id, body, false).await
}

/// A verdict on a pending approval, recorded under the authenticated caller's name alone: a
/// `by` in the body is checked for shape (a bad body is a 400) and otherwise ignored.
async fn decide(
    state: ApiState,
    caller: Caller,
    id: String,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(&state, &r),
    };
    if let Err(why) = approver(&body) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let by = caller.name;
    let Ok(number) = id.trim().parse::<u64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{id:?} is not an approval id; GET /api/v1/runs lists the pending ones"),
        );
    };
    // On a shared store a follower records the verdict there and the leader's waiting run
    // takes it; a follower with a store of its own (sled) would keep it where no run waits.
    if !state.leader.load(Ordering::SeqCst) && !state.store.is_shared() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "this replica is not the leader; approve on the leader (the holder of Lease {}/{})",
                state.cfg.lease_namespace, state.cfg.lease_name
            ),
        );
    }
    let Some(executor) = state.executor.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no pending approval {number}: this daemon runs no runbooks"),
        );
    };
    let verdict = {
        let by = by.clone();
        tokio::task::spawn_blocking(move || executor.decide(number, approve, &by)).await
    };
    match verdict {
        Ok(Ok(pending)) => Json(json!({
            "approval": pending,
            "decision": if approve { "approved" } else { "denied" },
            "by": by,
        }))
        .into_response(),
        Ok(Err(why)) if why.contains("no pending approval") => error(StatusCode::NOT_FOUND, why),
        Ok(Err(why)) if why.contains("could not be recorded") => {
            error(StatusCode::SERVICE_UNAVAILABLE, why)
        }
        Ok(Err(why)) => error(StatusCode::CONFLICT, why),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_token_is_named_by_where_it_is_configured() {
        let mut cfg = HeadlessConfig::default();
        assert_eq!(
            super::super::identity::shared_token_name(&cfg),
            "token:$FLEETDECK_TOKEN"
        );
        cfg.token_file = "/etc/fleetdeck/token/token".into();
        assert_eq!(
            super::super::identity::shared_token_name(&cfg),
            "token:token"
        );
    }

    #[test]
    fn request_paths_map_to_a_bounded_set_of_routes() {
        assert_eq!(
            route_label("/api/v1/incidents/42"),
            "/api/v1/incidents/{id}"
        );
        assert_eq!(
            route_label("/api/v1/runs/7/approve"),
            "/api/v1/runs/{approval_id}/approve"
        );
        assert_eq!(route_label("/wp-admin/login.php"), "other");
        assert_eq!(route_label("/metrics"), "/metrics");
    }

    #[test]
    fn an_approver_defaults_to_api_and_loses_control_characters() {
        assert_eq!(approver(b"").as_deref(), Ok("api"));
        assert_eq!(approver(b"{}").as_deref(), Ok("api"));
        assert_eq!(approver(br#"{"by":"ana\n"}"#).as_deref(), Ok("ana"));
        assert!(approver(b"{").is_err());
    }

    #[test]
    fn refusals_from_one_address_are_audited_once_per_window() {
        let log = RefusalLog::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(log.admit(ip), Some(0));
        assert_eq!(log.admit(ip), None);
        assert_eq!(log.admit(ip), None);
        assert_eq!(log.admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), Some(0));
    }
}
