//! The daemon's live stream, `GET /api/v1/stream?since=SEQ[&instance=ID]`: NDJSON, one message
//! a line (`pipeline::wire::Message`): `hello` (this daemon run's instance id), then a
//! `picture` or the deltas a resuming client missed, then `delta`s as evaluations, the store's
//! incidents and the executor's runs change, coalesced to at most one every
//! [`COALESCE`], and a `heartbeat` every [`HEARTBEAT`]. One task splits each evaluation once
//! for every client ([`Hub`]); each client reads a broadcast of the lines, and one that falls
//! [`CLIENT_BACKLOG`] lines behind is dropped (it resumes with `since`): a slow client never
//! holds the pipeline back. A ring of the last deltas serves resumes. Sits behind the API's
//! token layer (registered in `server::router`). May import pipeline, store, runbook and model.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use super::server::ApiState;
use crate::model::gpu_history::SharedGpuHistory;
use crate::model::incident::Incident;
use crate::pipeline::Evaluated;
use crate::pipeline::wire::{self, AutomationData, AutomationShell, DaemonInfo, Frame, Splitter};
use crate::runbook::executor::Executor;
use crate::store::{IncidentFilter, Store};

/// The least time between two deltas: changes within it travel together.
pub const COALESCE: Duration = Duration::from_millis(300);
/// A quiet stream says it is alive this often (the contract's bound is 5 s).
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often the executor's runs and approvals are read when no evaluation came.
const AUTOMATION_EVERY: Duration = Duration::from_secs(1);
/// How often the store's incidents are read when the pipeline recorded nothing (an ack or a
/// note through the API changes them too).
const INCIDENTS_EVERY: Duration = Duration::from_secs(3);
/// The deltas kept for resumes: this many, and at most this many bytes.
const RING_LEN: usize = 512;
const RING_BYTES: usize = 64 << 20;
/// Lines a client may fall behind before it is dropped (and resumes).
pub const CLIENT_BACKLOG: usize = 64;
/// How long one line may wait for a client's socket before the client is dropped.
const SEND_GRACE: Duration = Duration::from_secs(15);

type Line = (u64, Arc<str>);

struct Inner {
    seq: u64,
    splitter: Splitter,
    ring: VecDeque<Line>,
    ring_bytes: usize,
    /// `None` once the daemon stops: every stream ends.
    tx: Option<broadcast::Sender<Line>>,
    /// The picture at `seq`, made once for every client that connects before the next delta.
    picture: Option<Line>,
    /// Each GPU's recent readings, as the pipeline keeps them (one handle, shared by every
    /// snapshot): served one GPU at a time, never streamed.
    gpu_history: Option<SharedGpuHistory>,
}

/// The stream's one producer and its clients' meeting point.
pub struct Hub {
    info: DaemonInfo,
    inner: Mutex<Inner>,
}

/// What a connecting client is sent before the broadcast: a picture or its missed deltas.
struct Subscription {
    first: Vec<Arc<str>>,
    seq: u64,
    rx: broadcast::Receiver<Line>,
}

/// A random id for this daemon run.
fn new_instance() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

impl Hub {
    /// A hub for the daemon named `name`; `simulated` marks a fleet `fleetdeck sim` serves.
    pub fn new(name: &str, simulated: bool) -> Arc<Self> {
        let (tx, _) = broadcast::channel(CLIENT_BACKLOG);
        Arc::new(Self {
            info: DaemonInfo {
                instance: new_instance(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                name: name.to_string(),
                simulated,
            },
            inner: Mutex::new(Inner {
                seq: 0,
                splitter: Splitter::new(),
                ring: VecDeque::new(),
                ring_bytes: 0,
                tx: Some(tx),
                picture: None,
                gpu_history: None,
            }),
        })
    }

    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it left whole values (each step replaces, never half-writes).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one frame: the delta it makes goes to every client and into the ring.
    pub fn publish(&self, frame: &Frame) -> Result<(), wire::WireError> {
        let mut inner = self.lock();
        inner.gpu_history = Some(frame.evaluated.snapshot.gpu_history.clone());
        let change = inner.splitter.update(frame)?;
        if change.is_empty() {
            return Ok(());
        }
        inner.seq += 1;
        let seq = inner.seq;
        let line: Arc<str> = wire::delta_line(&change, seq).into();
        inner.ring_bytes += line.len();
        inner.ring.push_back((seq, line.clone()));
        while inner.ring.len() > RING_LEN || inner.ring_bytes > RING_BYTES {
            match inner.ring.pop_front() {
                Some((_, old)) => inner.ring_bytes -= old.len(),
                None => break,
            }
        }
        inner.picture = None;
        if let Some(tx) = &inner.tx {
            // No receiver is not an error: nobody is attached.
            let _ = tx.send((seq, line));
        }
        Ok(())
    }

    /// Ends every stream (the daemon stops).
    pub fn close(&self) {
        self.lock().tx = None;
    }

    fn subscribe(&self, since: Option<u64>, instance: Option<&str>) -> Option<Subscription> {
        let mut inner = self.lock();
        let rx = inner.tx.as_ref()?.subscribe();
        let seq = inner.seq;
        let same_run = instance.is_none_or(|i| i == self.info.instance);
        let resumable = since.filter(|&s| {
            same_run
                && s <= seq
                && (s == seq || inner.ring.front().is_some_and(|(first, _)| *first <= s + 1))
        });
        let first = match resumable {
            Some(s) => inner
                .ring
                .iter()
                .filter(|(n, _)| *n > s)
                .map(|(_, l)| l.clone())
                .collect(),
            None => {
                let picture = match &inner.picture {
                    Some((n, p)) if *n == seq => p.clone(),
                    _ => {
                        let p: Arc<str> = wire::picture_line(&inner.splitter, seq).into();
                        inner.picture = Some((seq, p.clone()));
                        p
                    }
                };
                vec![picture]
            }
        };
        Some(Subscription { first, seq, rx })
    }

    /// Feeds the hub from the pipeline's evaluations, the store's incidents and the
    /// executor until `stop` or the pipeline ends; then closes every stream.
    pub fn spawn(
        self: Arc<Self>,
        mut evaluations: watch::Receiver<Arc<Evaluated>>,
        store: Store,
        executor: Option<Executor>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut feed = Feed {
                store,
                executor,
                incidents: Arc::new(Vec::new()),
                recorded: None,
                read_at: None,
            };
            let mut last = Instant::now() - COALESCE;
            loop {
                tokio::select! {
                    changed = evaluations.changed() => {
                        if changed.is_err() { break; }
                    }
                    _ = tokio::time::sleep(AUTOMATION_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let wait = COALESCE.saturating_sub(last.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let evaluated = evaluations.borrow_and_update().clone();
                let hub = self.clone();
                // Splitting 40,000 GPUs and reading the store are blocking work.
                let done = tokio::task::spawn_blocking(move || {
                    feed.publish(&hub, &evaluated);
                    feed
                })
                .await;
                match done {
                    Ok(f) => feed = f,
                    Err(e) => {
                        tracing::error!(error = %e, "the stream's feed failed: attached cockpits stop getting changes");
                        break;
                    }
                }
                last = Instant::now();
            }
            self.close();
        })
    }
}

/// The feed's memory between frames.
struct Feed {
    store: Store,
    executor: Option<Executor>,
    incidents: Arc<Vec<Incident>>,
    recorded: Option<u64>,
    read_at: Option<Instant>,
}

impl Feed {
    fn publish(&mut self, hub: &Hub, evaluated: &Evaluated) {
        let stale = self.read_at.is_none_or(|t| t.elapsed() >= INCIDENTS_EVERY);
        if self.recorded != Some(evaluated.recorded) || stale {
            match self.store.incidents(&IncidentFilter::default()) {
                Ok(list) => {
                    if list != *self.incidents {
                        self.incidents = Arc::new(list);
                    }
                    self.recorded = Some(evaluated.recorded);
                }
                // The list streamed stays as it was; the next round reads again.
                Err(e) => tracing::warn!(error = %e, "the stream cannot read the incidents"),
            }
            self.read_at = Some(Instant::now());
        }
        let automation = self.executor.as_ref().map(automation_of);
        let frame = Frame {
            evaluated,
            incidents: &self.incidents,
            automation: automation.as_ref(),
        };
        if let Err(e) = hub.publish(&frame) {
            tracing::error!(error = %e, "the stream cannot send this evaluation");
        }
    }
}

/// The executor's runbooks, runs and approvals, as the cockpit's Runbooks pane reads them.
fn automation_of(executor: &Executor) -> AutomationData {
    let guard = executor.guard();
    let mut runs = executor.runs();
    runs.reverse();
    AutomationData {
        shell: AutomationShell {
            mode: executor.mode(),
            read_only: guard.read_only,
            kill: guard.killed(),
        },
        runbooks: executor.runbooks().iter().map(|r| r.meta.clone()).collect(),
        runs,
        pending: executor.pending_approvals(),
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    instance: Option<String>,
}

fn line_of<T: serde::Serialize>(value: &T) -> Bytes {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    text.push('\n');
    Bytes::from(text)
}

/// `GET /api/v1/stream`: see the module's header.
pub async fn serve(
    State(state): State<ApiState>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(r) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": r.body_text() })),
            )
                .into_response();
        }
    };
    let Some(hub) = state.stream.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "this daemon serves no stream (it is not evaluating a fleet)" })),
        )
            .into_response();
    };
    let Some(sub) = hub.subscribe(q.since, q.instance.as_deref()) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the daemon is stopping; attach again to its successor" })),
        )
            .into_response();
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_BACKLOG);
    let hello = wire::Message::Hello {
        seq: sub.seq,
        daemon: hub.info().clone(),
    };
    tokio::spawn(pump(line_of(&hello), sub, tx));
    let body = Body::from_stream(tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<_, std::convert::Infallible>,
    ));
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// One client's lines: hello, what it missed, then the broadcast and heartbeats, until the
/// client goes, falls behind or the daemon stops.
async fn pump(hello: Bytes, mut sub: Subscription, tx: mpsc::Sender<Bytes>) {
    let send = |line: Bytes| {
        let tx = tx.clone();
        async move {
            matches!(
                tokio::time::timeout(SEND_GRACE, tx.send(line)).await,
                Ok(Ok(()))
            )
        }
    };
    if !send(hello).await {
        return;
    }
    for line in std::mem::take(&mut sub.first) {
        if !send(Bytes::from(line.as_bytes().to_vec())).await {
            return;
        }
    }
    let mut last = sub.seq;
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        tokio::select! {
            got = sub.rx.recv() => match got {
                Ok((seq, line)) => {
                    if seq > last {
                        last = seq;
                        if !send(Bytes::from(line.as_bytes().to_vec())).await {
                            return;
                        }
                        beat.reset();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "an attached client fell behind: dropped; it resumes from its last sequence");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = beat.tick() => {
                let hb = wire::Message::Heartbeat { seq: last, at: chrono::Utc::now() };
                if !send(line_of(&hb)).await {
                    return;
                }
            }
        }
    }
}

/// `GET /api/v1/gpus/UUID/history` → `{"uuid", "window_s", "samples": [[unix_ms, util_pct,
/// memory_used_mib], …]}` (a missing reading is `null`): one GPU's readings over the daemon's
/// GPU history window, oldest first, for an attached cockpit's GPU detail chart (40,000 GPUs'
/// histories are not streamed).
pub async fn gpu_history(State(state): State<ApiState>, Path(uuid): Path<String>) -> Response {
    let history = state
        .stream
        .as_ref()
        .and_then(|hub| hub.lock().gpu_history.clone());
    let Some(history) = history else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "this daemon keeps no GPU history (it is not evaluating a fleet yet)" })),
        )
            .into_response();
    };
    let h = history.read();
    let Some(series) = h.series(&uuid) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("the daemon has no readings of GPU {uuid:?}: no GPU source reports it, or it reported nothing yet") })),
        )
            .into_response();
    };
    let samples: Vec<serde_json::Value> = series
        .iter()
        .map(|s| {
            json!([
                s.at.timestamp_millis(),
                s.utilization_pct(),
                s.memory_used_mib()
            ])
        })
        .collect();
    Json(json!({
        "uuid": uuid,
        "window_s": h.window().as_secs(),
        "samples": samples,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluated(seq: u64) -> Evaluated {
        Evaluated {
            seq,
            ..Evaluated::default()
        }
    }

    fn publish(hub: &Hub, seq: u64) {
        let incidents = Arc::new(Vec::new());
        hub.publish(&Frame {
            evaluated: &evaluated(seq),
            incidents: &incidents,
            automation: None,
        })
        .unwrap();
    }

    fn kinds(lines: &[Arc<str>]) -> Vec<(String, u64)> {
        lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["type"].as_str().unwrap().to_string(),
                    v["seq"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_resume_within_the_ring_gets_the_missed_deltas_else_a_picture() {
        let hub = Hub::new("d", false);
        for seq in 1..=5 {
            publish(&hub, seq);
        }
        let instance = hub.info().instance.clone();
        let sub = hub.subscribe(Some(3), Some(&instance)).unwrap();
        assert_eq!(
            kinds(&sub.first),
            [("delta".into(), 4), ("delta".into(), 5)]
        );
        let sub = hub.subscribe(Some(5), None).unwrap();
        assert!(sub.first.is_empty());
        // Another daemon run's sequence, one from the future, or none: a picture.
        for (since, inst) in [(Some(3), Some("other")), (Some(9), None), (None, None)] {
            let sub = hub.subscribe(since, inst).unwrap();
            assert_eq!(
                kinds(&sub.first),
                [("picture".into(), 5)],
                "{since:?} {inst:?}"
            );
        }
        // Fell out of the ring: a picture.
        for seq in 6..=(RING_LEN as u64 + 10) {
            publish(&hub, seq);
        }
        let sub = hub.subscribe(Some(3), Some(&instance)).unwrap();
        assert_eq!(kinds(&sub.first)[0].0, "picture");
        hub.close();
        assert!(hub.subscribe(None, None).is_none());
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_dropped_not_waited_for() {
        let hub = Hub::new("d", false);
        let sub = hub.subscribe(None, None).unwrap();
        // Nobody reads the client's channel: the hub goes on publishing regardless.
        let (tx, rx) = mpsc::channel::<Bytes>(1);
        let client = tokio::spawn(pump(Bytes::from_static(b"{}\n"), sub, tx));
        for seq in 1..=(CLIENT_BACKLOG as u64 * 3) {
            publish(&hub, seq);
        }
        drop(rx);
        tokio::time::timeout(Duration::from_secs(20), client)
            .await
            .expect("the lagging client's pump ends")
            .unwrap();
    }
}
