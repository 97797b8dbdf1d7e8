//! Reads on demand for the cockpit's views, outside the sources → state flow: a container's log
//! streamed from `pods/{name}/log` into a bounded buffer the view pulls from (its task stops
//! when the handle drops), and one object's current state for the YAML view. May import model,
//! config, telemetry.
//!
//! Like gitui's async jobs, the task never touches the view: it appends to the buffer and sends
//! a data-less wake-up; the view takes what is new when the loop tells it to.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::io::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, LogParams};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The newest lines a view keeps unless `[pod_logs] max_lines` says otherwise.
pub const DEFAULT_MAX_LINES: usize = 10_000;
/// A longer line is cut here: a minified JSON blob must not fill the screen or the memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// What ends a cut line, so a reader knows the rest is missing.
pub const CUT_MARKER: &str = " …[line cut at 16 KiB]";
/// A followed stream that sends no byte for this long is marked stalled, not shown as live: a
/// connection whose peer vanished (a reclaimed node, a dropped NAT entry) stays open and silent
/// for as long as TCP keepalive allows, which looks exactly like a quiet container.
pub const FOLLOW_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Whose log: a pod's container in one cluster (kubeconfig context). `container: None` asks
/// for the pod's only container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LogTarget {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
}

/// One read of a log: which run (`previous`), how much history, and whether to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub target: LogTarget,
    pub previous: bool,
    pub follow: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
}

impl LogRequest {
    fn params(&self) -> LogParams {
        LogParams {
            container: self.target.container.clone(),
            follow: self.follow,
            previous: self.previous,
            timestamps: self.timestamps,
            tail_lines: self.tail_lines,
            ..LogParams::default()
        }
    }
}

/// The newest `capacity` lines, oldest first; counts the ones it let go.
#[derive(Debug, Clone)]
pub struct LogRing {
    lines: VecDeque<String>,
    capacity: usize,
    evicted: u64,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            lines: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            evicted: 0,
        }
    }

    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.evicted += 1;
        }
        self.lines.push_back(line);
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lines pushed out to make room since the ring was made or cleared.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.lines.get(i).map(String::as_str)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.lines.iter().map(String::as_str)
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.evicted = 0;
    }

    fn drain(&mut self) -> (Vec<String>, u64) {
        let evicted = std::mem::take(&mut self.evicted);
        (self.lines.drain(..).collect(), evicted)
    }
}

/// Splits a byte stream into lines, cutting each at `MAX_LINE_BYTES` with `CUT_MARKER` without
/// ever holding more than that of one line.
#[derive(Debug, Default)]
pub struct LineCutter {
    current: Vec<u8>,
    cut: bool,
}

impl LineCutter {
    /// Feeds bytes; answers the lines they complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let chunk = &bytes[..newline.unwrap_or(bytes.len())];
            let room = MAX_LINE_BYTES.saturating_sub(self.current.len());
            if chunk.len() > room {
                self.current.extend_from_slice(&chunk[..room]);
                self.cut = true;
            } else {
                self.current.extend_from_slice(chunk);
            }
            match newline {
                Some(i) => {
                    out.push(self.take());
                    bytes = &bytes[i + 1..];
                }
                None => break,
            }
        }
        out
    }

    /// The last line when the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        (!self.current.is_empty() || self.cut).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.current);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let mut line = match String::from_utf8(bytes) {
            Ok(s) => s,
            // A cut can split a character: keep the valid prefix.
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let mut b = e.into_bytes();
                if self.cut {
                    b.truncate(valid);
                    String::from_utf8(b).unwrap_or_default()
                } else {
                    String::from_utf8_lossy(&b).into_owned()
                }
            }
        };
        if std::mem::take(&mut self.cut) {
            line.push_str(CUT_MARKER);
        }
        line
    }
}

/// Where a stream stands, for the view's title line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Connecting,
    Streaming,
    /// The server closed the stream: a finished container's log was read to its end.
    Ended,
    /// Following, but no byte came for this many seconds: the stream may be dead.
    Stalled {
        idle_secs: u64,
    },
    /// The pod no longer exists (deleted, or replaced by another of the same name): what the
    /// server said. A deleted pod has no previous run to read either.
    Gone(String),
    /// The server refused (400, 403) or the connection broke: what it said.
    Failed(String),
}

#[derive(Debug)]
struct Shared {
    fresh: LogRing,
    state: StreamState,
    /// The pod's containers, once read.
    containers: Vec<String>,
    /// The container being read (the request's, else the one kubectl would default to).
    container: Option<String>,
}

/// New lines and the state, as taken by the view.
#[derive(Debug, Clone, PartialEq)]
pub struct LogDelta {
    pub lines: Vec<String>,
    /// Lines that arrived and were let go before the view took them.
    pub missed: u64,
    pub state: StreamState,
    pub containers: Vec<String>,
    pub container: Option<String>,
}

/// One open log stream. Dropping it stops the task and closes the connection.
#[derive(Debug)]
pub struct LogStream {
    pub request: LogRequest,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Kubernetes `Status` as one line: `403 Forbidden: pods "x" is forbidden: …`.
pub fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                "Failure"
            } else {
                s.reason.as_str()
            };
            format!("{} {reason}: {}", s.code, s.message)
        }
        other => format!("cannot reach the API server: {other}"),
    }
}

impl LogStream {
    /// Starts reading `request` on `client` (must be called inside a tokio runtime); every
    /// batch of lines sends `wake` a `()` (dropped when one is already waiting).
    pub fn spawn(
        client: Client,
        request: LogRequest,
        capacity: usize,
        wake: mpsc::Sender<()>,
    ) -> LogStream {
        let shared = Arc::new(Mutex::new(Shared {
            fresh: LogRing::new(capacity),
            state: StreamState::Connecting,
            containers: Vec::new(),
            container: request.target.container.clone(),
        }));
        let task = tokio::spawn(read_log(client, request.clone(), shared.clone(), wake));
        LogStream {
            request,
            shared,
            task,
        }
    }

    /// What arrived since the last call.
    pub fn take(&self) -> LogDelta {
        let mut s = lock(&self.shared);
        let (lines, missed) = s.fresh.drain();
        LogDelta {
            lines,
            missed,
            state: s.state.clone(),
            containers: s.containers.clone(),
            container: s.container.clone(),
        }
    }
}

async fn read_log(
    client: Client,
    request: LogRequest,
    shared: Arc<Mutex<Shared>>,
    wake: mpsc::Sender<()>,
) {
    let t = &request.target;
    let pods: Api<Pod> = Api::namespaced(client, &t.namespace);
    let set_state = |state: StreamState| {
        lock(&shared).state = state;
        let _ = wake.try_send(());
    };
    // As kubectl does: read the pod first, to know its containers and, when none is named,
    // default to the annotated one or the first (the API server refuses to choose).
    let pod = match pods.get(&t.pod).await {
        Ok(p) => p,
        Err(e) => return set_state(refusal(&e)),
    };
    let uid = pod.metadata.uid.clone();
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let mut params = request.params();
    if params.container.is_none() {
        let annotated = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
            .filter(|c| containers.contains(c));
        params.container = annotated.or(containers.first()).cloned();
    }
    {
        let mut s = lock(&shared);
        s.containers = containers;
        s.container = params.container.clone();
    }
    let reader = match pods.log_stream(&t.pod, &params).await {
        Ok(r) => Box::pin(r),
        Err(e) => return set_state(refusal(&e)),
    };
    set_state(StreamState::Streaming);
    if let Err(why) = pump(reader, &shared, &wake, FOLLOW_IDLE_LIMIT).await {
        return set_state(StreamState::Failed(why));
    }
    // A followed stream also ends when its pod is deleted: say so, or the view would offer a
    // previous run that the API server can only answer with 404.
    let end = if request.follow {
        match pods.get(&t.pod).await {
            Ok(p) if p.metadata.uid == uid => StreamState::Ended,
            Ok(_) => StreamState::Gone(format!(
                "pod {} was deleted and replaced by another of the same name",
                t.pod
            )),
            Err(e) => match refusal(&e) {
                gone @ StreamState::Gone(_) => gone,
                _ => StreamState::Ended,
            },
        }
    } else {
        StreamState::Ended
    };
    set_state(end);
}

/// The state an API error leaves the stream in: a 404 means the pod is gone.
fn refusal(e: &kube::Error) -> StreamState {
    match e {
        kube::Error::Api(s) if s.code == 404 => StreamState::Gone(describe_error(e)),
        _ => StreamState::Failed(describe_error(e)),
    }
}

/// Moves lines from `reader` into the shared buffer until the server ends the stream (`Ok`)
/// or the connection breaks (`Err`, what broke). A silence of `idle` marks the stream
/// stalled; the next byte marks it streaming again.
async fn pump<R: futures_util::io::AsyncBufRead + Unpin>(
    mut reader: R,
    shared: &Mutex<Shared>,
    wake: &mpsc::Sender<()>,
    idle: Duration,
) -> Result<(), String> {
    let mut cutter = LineCutter::default();
    let mut silent_for = Duration::ZERO;
    loop {
        let read = match tokio::time::timeout(idle, reader.fill_buf()).await {
            Ok(read) => read,
            Err(_) => {
                silent_for += idle;
                lock(shared).state = StreamState::Stalled {
                    idle_secs: silent_for.as_secs(),
                };
                let _ = wake.try_send(());
                continue;
            }
        };
        let (lines, used) = match read {
            Ok([]) => break,
            Ok(buf) => (cutter.feed(buf), buf.len()),
            Err(e) => return Err(format!("connection lost: {e}")),
        };
        futures_util::io::AsyncBufRead::consume(Pin::new(&mut reader), used);
        let woke = !silent_for.is_zero();
        silent_for = Duration::ZERO;
        if !lines.is_empty() || woke {
            let mut s = lock(shared);
            s.state = StreamState::Streaming;
            for l in lines {
                s.fresh.push(l);
            }
            drop(s);
            let _ = wake.try_send(());
        }
    }
    if let Some(l) = cutter.finish() {
        lock(shared).fresh.push(l);
        let _ = wake.try_send(());
    }
    Ok(())
}

/// Which object the YAML view shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ObjectRef {
    pub cluster: String,
    /// `v1`, `apps/v1`, …
    pub api_version: String,
    pub kind: String,
    /// Empty for a cluster-scoped object.
    pub namespace: String,
    pub name: String,
}

/// Reads the object's current state from the API server, with its `apiVersion` and `kind`.
pub async fn fetch_object(client: Client, obj: &ObjectRef) -> Result<serde_json::Value, String> {
    let (group, version) = match obj.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", obj.api_version.as_str()),
    };
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &obj.kind));
    let api: Api<DynamicObject> = if obj.namespace.is_empty() {
        Api::all_with(client, &ar)
    } else {
        Api::namespaced_with(client, &obj.namespace, &ar)
    };
    let found = api.get(&obj.name).await.map_err(|e| describe_error(&e))?;
    let mut v = serde_json::to_value(found).map_err(|e| e.to_string())?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), obj.api_version.clone().into());
        m.insert("kind".into(), obj.kind.clone().into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_and_counts_the_rest() {
        let mut r = LogRing::new(3);
        for i in 0..5 {
            r.push(format!("line {i}"));
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), ["line 2", "line 3", "line 4"]);
        assert_eq!((r.len(), r.evicted(), r.capacity()), (3, 2, 3));
        assert_eq!(r.get(0), Some("line 2"));
        let (lines, evicted) = r.drain();
        assert_eq!((lines.len(), evicted, r.len()), (3, 2, 0));
        assert_eq!(LogRing::new(0).capacity(), 1, "never zero");
    }

    #[test]
    fn lines_split_across_chunks_are_joined_and_crlf_trimmed() {
        let mut c = LineCutter::default();
        assert!(c.feed(b"hel").is_empty());
        assert_eq!(c.feed(b"lo\r\nwor"), ["hello"]);
        assert_eq!(c.feed(b"ld\n\n"), ["world", ""]);
        assert_eq!(c.feed(b"tail"), Vec::<String>::new());
        assert_eq!(c.finish().as_deref(), Some("tail"));
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn a_line_over_16_kib_is_cut_with_a_visible_marker() {
        let mut c = LineCutter::default();
        let long = vec![b'x'; MAX_LINE_BYTES + 5000];
        assert!(c.feed(&long).is_empty());
        assert!(
            c.feed(&long).is_empty(),
            "the excess is dropped as it comes"
        );
        assert_eq!(c.current.len(), MAX_LINE_BYTES);
        let lines = c.feed(b"yyy\nnext\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES + CUT_MARKER.len());
        assert!(lines[0].ends_with(CUT_MARKER));
        assert_eq!(lines[1], "next");
    }

    #[tokio::test]
    async fn a_silent_follow_is_marked_stalled_never_live_until_bytes_come_again() {
        use futures_util::TryStreamExt;
        let shared = Arc::new(Mutex::new(Shared {
            fresh: LogRing::new(10),
            state: StreamState::Streaming,
            containers: Vec::new(),
            container: None,
        }));
        let (wake, _woken) = mpsc::channel(1);
        let (bytes, chunks) = mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        let reader = tokio_stream::wrappers::ReceiverStream::new(chunks).into_async_read();
        let task = {
            let shared = shared.clone();
            tokio::spawn(
                async move { pump(reader, &shared, &wake, Duration::from_millis(100)).await },
            )
        };
        let state = || lock(&shared).state.clone();
        bytes.send(Ok(b"first\n".to_vec())).await.expect("send");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(
            matches!(state(), StreamState::Stalled { .. }),
            "{:?}",
            state()
        );
        bytes.send(Ok(b"second\n".to_vec())).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(state(), StreamState::Streaming);
        drop(bytes);
        assert_eq!(
            task.await.ok(),
            Some(Ok(())),
            "the end of the body ends the pump"
        );
        assert_eq!(lock(&shared).fresh.drain().0, ["first", "second"]);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut c = LineCutter::default();
        let mut bytes = vec![b'a'; MAX_LINE_BYTES - 1];
        bytes.extend("é and more\n".as_bytes());
        let lines = c.feed(&bytes);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES - 1 + CUT_MARKER.len());
        assert!(lines[0].ends_with(&format!("a{CUT_MARKER}")));
    }
}
