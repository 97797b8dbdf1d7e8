//! `fleetdeck attach`: the cockpit on a running daemon. [`start`] reads the daemon's live
//! stream (`GET /api/v1/stream`, `pipeline::wire`), rebuilds the daemon's `Evaluated`, incident
//! list and runs/approvals from its picture and deltas, and publishes them as the local
//! pipeline would; it runs no detector and no runbook. A lost stream is reconnected with a
//! capped, jittered backoff and resumed with `since` (the daemon's instance id tells a
//! restarted daemon, whose picture is reloaded, not merged); meanwhile [`LinkState::Lost`]
//! makes every tile and the status line say "disconnected 12s". [`RemoteLink`] performs the
//! panes' commands as the daemon's API calls, showing the daemon's own error text when it
//! refuses. May import pipeline, runbook, store, model and the app's `Command`/`Reply`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::app::{Command, Reply};
use super::pane::AutomationView;
use crate::model::incident::{Entry, Incident, incident_label};
use crate::model::{ClusterSnapshot, PodRows, Snapshot};
use crate::pipeline::Evaluated;
use crate::pipeline::wire::{Message, Rebuilder};
use crate::runbook::executor::PlanStep;

/// A stream that says nothing (not even a heartbeat, sent every 2 s) for this long is dead.
const SILENCE: Duration = Duration::from_secs(10);
/// Reconnection backoff: from the first to the cap, doubling, each wait jittered to 50–100 %.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// Where the link to the daemon stands.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    Connecting {
        url: String,
    },
    Live {
        url: String,
        /// The daemon's name (its Lease identity).
        daemon: String,
        instance: String,
        simulated: bool,
    },
    /// No stream since `since`, for `why`; reconnecting.
    Lost {
        url: String,
        since: DateTime<Utc>,
        why: String,
    },
}

/// What the stream gives the loop besides the evaluation.
#[derive(Debug, Clone)]
pub struct AttachView {
    pub link: LinkState,
    pub incidents: Arc<Vec<Incident>>,
    /// `None` until a picture arrived, or when the daemon runs no executor.
    pub automation: Option<AutomationView>,
}

/// How to reach the daemon.
#[derive(Clone)]
pub struct AttachOptions {
    /// The daemon's base URL (`http://host:8080`).
    pub url: String,
    /// The bearer token; `None` sends none (or the kubeconfig's credential, with `kube`).
    pub token: Option<String>,
    pub http: reqwest::Client,
    /// Without a token: a kube client whose cluster URL is the daemon's, carrying the
    /// kubeconfig context's credential (a token, an exec plugin, an auth provider), which
    /// kube-rs adds and refreshes as kubectl would.
    pub kube: Option<kube::Client>,
    /// Why no credential is sent (neither a token nor a kubeconfig credential), for the 401.
    pub no_credential: Option<String>,
}

impl std::fmt::Debug for AttachOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("AttachOptions")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field(
                "kube",
                &self.kube.as_ref().map(|_| "<kubeconfig credential>"),
            )
            .finish_non_exhaustive()
    }
}

/// A daemon's answer, its body read as it arrives (the stream's lines come as chunks).
enum Answer {
    Reqwest(reqwest::Response),
    Kube(kube::client::Body),
}

impl Answer {
    /// The next piece of the body; `None` at its end.
    async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
        match self {
            Self::Reqwest(r) => r.chunk().await.map_err(|e| e.to_string()),
            Self::Kube(body) => loop {
                use http_body_util::BodyExt as _;
                match body.frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(e.to_string()),
                    // Trailers carry nothing the stream reads.
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }

    async fn text(mut self) -> String {
        let mut all = Vec::new();
        while let Ok(Some(c)) = self.chunk().await {
            all.extend_from_slice(&c);
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

impl AttachOptions {
    /// Sends one request with the credential; answers its status and its body to read.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Answer), String> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let unreachable = |e: &dyn std::fmt::Display| format!("cannot reach {}: {e}", self.url);
        match (&self.token, &self.kube) {
            (None, Some(client)) => {
                let bytes = match body {
                    Some(b) => serde_json::to_vec(b).map_err(|e| e.to_string())?,
                    None => Vec::new(),
                };
                let req = axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(axum::http::header::CONTENT_TYPE, "application/json")
                    .body(kube::client::Body::from(bytes))
                    .map_err(|e| unreachable(&e))?;
                let resp = client.send(req).await.map_err(|e| unreachable(&e))?;
                let status = resp.status();
                Ok((status, Answer::Kube(resp.into_body())))
            }
            (token, _) => {
                let mut req = self.http.request(method, url);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = req.send().await.map_err(|e| unreachable(&e))?;
                Ok((resp.status(), Answer::Reqwest(resp)))
            }
        }
    }
}

/// What an attached cockpit's loop reads besides the evaluations: the link with the
/// incidents and runs, and how to reach the daemon for the panes' commands.
pub struct Attached {
    pub view: watch::Receiver<Arc<AttachView>>,
    pub options: AttachOptions,
}

/// Starts reading the daemon's stream on the current runtime: the evaluations the cockpit
/// draws, and the rest of what it shows.
pub fn start(options: AttachOptions) -> (watch::Receiver<Arc<Evaluated>>, Attached) {
    let (etx, evaluations) = watch::channel(Arc::new(Evaluated::default()));
    let (vtx, view) = watch::channel(Arc::new(AttachView {
        link: LinkState::Connecting {
            url: options.url.clone(),
        },
        incidents: Arc::new(Vec::new()),
        automation: None,
    }));
    tokio::spawn(follow(options.clone(), etx, vtx));
    (evaluations, Attached { view, options })
}

/// The daemon's evaluations with each cluster's pods taken from `local` (the pods this
/// process lists from the clusters with the person's kubeconfig), matched by cluster name. A
/// cluster is copied only when its daemon part or its pods changed.
pub fn with_cluster_pods(
    mut daemon: watch::Receiver<Arc<Evaluated>>,
    mut local: watch::Receiver<Arc<Snapshot>>,
) -> watch::Receiver<Arc<Evaluated>> {
    let (tx, out) = watch::channel(daemon.borrow().clone());
    tokio::spawn(async move {
        let mut merged = HashMap::new();
        loop {
            tokio::select! {
                r = daemon.changed() => if r.is_err() { return },
                r = local.changed() => if r.is_err() { return },
            }
            let d = daemon.borrow_and_update().clone();
            let l = local.borrow_and_update().clone();
            let next = merge_pods(&d, &l, &mut merged);
            if tx.send(Arc::new(next)).is_err() {
                return;
            }
        }
    });
    out
}

/// A cluster as the daemon sent it, the pods listed here, and the two together.
struct MergedCluster {
    daemon: Arc<ClusterSnapshot>,
    pods: PodRows,
    merged: Arc<ClusterSnapshot>,
}

fn merge_pods(
    daemon: &Evaluated,
    local: &Snapshot,
    merged: &mut HashMap<String, MergedCluster>,
) -> Evaluated {
    let mut snapshot = (*daemon.snapshot).clone();
    for c in &mut snapshot.clusters {
        let Some(pods) = local
            .clusters
            .iter()
            .find(|l| l.name == c.name)
            .map(|l| l.pods.clone())
        else {
            continue;
        };
        // The parts are held (not their addresses), so an address is never reused under us.
        match merged.get(&c.name) {
            Some(m) if Arc::ptr_eq(&m.daemon, c) && Arc::ptr_eq(&m.pods, &pods) => {
                *c = m.merged.clone();
            }
            _ => {
                let mut with = (**c).clone();
                with.pods = pods.clone();
                let with = Arc::new(with);
                merged.insert(
                    c.name.clone(),
                    MergedCluster {
                        daemon: c.clone(),
                        pods,
                        merged: with.clone(),
                    },
                );
                *c = with;
            }
        }
    }
    let mut out = daemon.clone();
    out.snapshot = Arc::new(snapshot);
    out
}

/// The client's memory across connections: the rebuilt picture, the last sequence and the
/// daemon run it belongs to.
struct Follower {
    rebuilder: Rebuilder,
    seq: Option<u64>,
    instance: Option<String>,
    etx: watch::Sender<Arc<Evaluated>>,
    vtx: watch::Sender<Arc<AttachView>>,
}

impl Follower {
    fn link(&self, link: LinkState) {
        self.vtx.send_modify(|v| {
            let mut next = (**v).clone();
            next.link = link;
            *v = Arc::new(next);
        });
    }

    fn publish(&mut self) {
        self.etx.send_replace(Arc::new(self.rebuilder.evaluated()));
        let incidents = self.rebuilder.incidents();
        let automation = self.rebuilder.automation().map(|a| AutomationView {
            mode: a.shell.mode,
            read_only: a.shell.read_only,
            kill: a.shell.kill,
            runbooks: a.runbooks,
            runs: a.runs,
            pending: a.pending,
        });
        self.vtx.send_if_modified(|v| {
            if *v.incidents == incidents && v.automation == automation {
                return false;
            }
            let mut next = (**v).clone();
            next.incidents = Arc::new(incidents);
            next.automation = automation;
            *v = Arc::new(next);
            true
        });
    }

    /// Takes one line; says why the stream must be dropped, if it must.
    fn take(&mut self, line: &str, url: &str) -> Result<(), String> {
        let msg: Message = serde_json::from_str(line)
            .map_err(|e| format!("the daemon sent a line this build cannot read: {e}"))?;
        match msg {
            Message::Hello { daemon, .. } => {
                if self.instance.as_deref() != Some(daemon.instance.as_str()) {
                    // Another daemon run: its picture replaces ours, nothing is merged.
                    self.rebuilder.clear();
                    self.seq = None;
                    self.instance = Some(daemon.instance.clone());
                }
                self.link(LinkState::Live {
                    url: url.to_string(),
                    daemon: daemon.name,
                    instance: daemon.instance,
                    simulated: daemon.simulated,
                });
            }
            Message::Picture { seq, parts } => {
                self.rebuilder.picture(parts).map_err(|e| e.to_string())?;
                self.seq = Some(seq);
                self.publish();
                release_freed_memory();
            }
            Message::Delta { seq, set, del } => {
                if !self.rebuilder.pictured() || self.seq.is_some_and(|s| seq != s + 1) {
                    // A gap: only a new picture can mend it.
                    self.seq = None;
                    return Err(format!(
                        "the stream skipped to {seq}; reloading the picture"
                    ));
                }
                self.rebuilder.delta(set, del).map_err(|e| e.to_string())?;
                self.seq = Some(seq);
                self.publish();
            }
            Message::Heartbeat { .. } => {}
        }
        Ok(())
    }
}

/// Hands the heap's free pages back to the system after a picture. Reading one (31 MiB at
/// 5,000 nodes and 32,000 GPUs) builds a JSON tree several times its size out of small
/// allocations, which glibc keeps in its arenas once freed: without this an attached wall
/// holds that peak for as long as it runs.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns the allocator's own free pages; it touches no live
    // allocation and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads the stream for ever: connect, read, and after a loss wait and resume.
async fn follow(
    options: AttachOptions,
    etx: watch::Sender<Arc<Evaluated>>,
    vtx: watch::Sender<Arc<AttachView>>,
) {
    let mut f = Follower {
        rebuilder: Rebuilder::new(),
        seq: None,
        instance: None,
        etx,
        vtx,
    };
    let mut backoff = BACKOFF_FIRST;
    let mut lost_since: Option<DateTime<Utc>> = None;
    loop {
        let (why, heard) = read_once(&options, &mut f).await;
        if f.vtx.is_closed() {
            return;
        }
        if heard {
            backoff = BACKOFF_FIRST;
            lost_since = None;
        }
        let since = *lost_since.get_or_insert_with(Utc::now);
        f.link(LinkState::Lost {
            url: options.url.clone(),
            since,
            why,
        });
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
}

/// One connection: answers why it ended and whether the daemon was heard on it.
async fn read_once(options: &AttachOptions, f: &mut Follower) -> (String, bool) {
    let mut path = "/api/v1/stream".to_string();
    if let (Some(seq), Some(instance)) = (f.seq, &f.instance) {
        path.push_str(&format!("?since={seq}&instance={instance}"));
    }
    let (status, mut resp) = match options.send(reqwest::Method::GET, &path, None).await {
        Ok(r) => r,
        Err(e) => return (e, false),
    };
    if !status.is_success() {
        let body = resp.text().await;
        let mut why = refusal(status, &body);
        if let (401, Some(none)) = (status.as_u16(), &options.no_credential) {
            why.push_str(&format!(" [no credential was sent: {none}]"));
        }
        return (why, false);
    }
    let mut buf: Vec<u8> = Vec::new();
    // How far `buf` is known to hold no newline: a picture line (31 MiB at 5,000 nodes) comes
    // in thousands of chunks, and scanning it from its start at each would be quadratic.
    let mut scanned = 0;
    let mut heard = false;
    loop {
        let chunk = match tokio::time::timeout(SILENCE, resp.chunk()).await {
            Err(_) => {
                return (
                    format!("the daemon said nothing for {}s", SILENCE.as_secs()),
                    heard,
                );
            }
            Ok(Err(e)) => return (format!("the stream broke: {e}"), heard),
            Ok(Ok(None)) => return ("the daemon closed the stream".into(), heard),
            Ok(Ok(Some(c))) => c,
        };
        buf.extend_from_slice(&chunk);
        while let Some(at) = buf[scanned..].iter().position(|b| *b == b'\n') {
            let end = scanned + at;
            scanned = 0;
            let line: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            if let Err(why) = f.take(text, &options.url) {
                return (why, heard);
            }
            heard = true;
        }
        scanned = buf.len();
        // A picture's line left its capacity behind; deltas need a small part of it.
        if buf.capacity() > BUF_KEPT && buf.len() < BUF_KEPT {
            buf.shrink_to(BUF_KEPT);
        }
    }
}

/// What the stream's read buffer keeps between pictures.
const BUF_KEPT: usize = 1 << 20;

/// The daemon's refusal in words: its own error text, and what to do about a 401.
fn refusal(status: reqwest::StatusCode, body: &str) -> String {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    match status.as_u16() {
        401 => format!(
            "the daemon refused the token (401: {said}); give one with --token-file, or a kubeconfig context whose credential it accepts"
        ),
        403 => format!("refused (403): {said}"),
        404 => format!("the daemon does not serve this (404): {said}"),
        _ => format!("the daemon answered {status}: {said}"),
    }
}

/// Sends one API call; answers the JSON body or the daemon's refusal in words.
async fn call(
    options: &AttachOptions,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let (status, resp) = options.send(method, path, body.as_ref()).await?;
    let text = resp.text().await;
    if !status.is_success() {
        return Err(refusal(status, &text));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("the daemon's answer is not JSON: {e}"))
}

/// The panes' commands as the daemon's API calls: what a local store and executor do for a
/// local cockpit, done by the daemon's (and recorded under the caller's identity there).
pub struct RemoteLink {
    options: AttachOptions,
    replies: mpsc::UnboundedSender<Reply>,
    /// The daemon's plan ids of the actions shown for confirmation, by (cluster, action).
    plans: Arc<Mutex<HashMap<(String, String), String>>>,
    /// Whether the daemon's kill switch is on (the `K` key turns it the other way).
    kill: bool,
}

impl RemoteLink {
    pub fn new(options: AttachOptions) -> (Self, mpsc::UnboundedReceiver<Reply>) {
        let (replies, rx) = mpsc::unbounded_channel();
        (
            Self {
                options,
                replies,
                plans: Arc::new(Mutex::new(HashMap::new())),
                kill: false,
            },
            rx,
        )
    }

    /// The daemon's kill switch as last streamed.
    pub fn set_kill(&mut self, on: bool) {
        self.kill = on;
    }

    fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = Vec<Reply>> + Send + 'static,
    {
        let replies = self.replies.clone();
        tokio::spawn(async move {
            for r in work.await {
                if replies.send(r).is_err() {
                    break;
                }
            }
        });
    }

    /// Performs a pane's command on the daemon; answers what to show at once (the daemon's
    /// answer comes later on the link's channel).
    pub fn perform(&mut self, command: Command) -> Vec<Reply> {
        let o = self.options.clone();
        use reqwest::Method;
        match command {
            Command::LoadTimeline(id) => self.spawn(async move {
                vec![match timeline(&o, id).await {
                    Ok((_, entries)) => Reply::Timeline(id, entries),
                    Err(e) => Reply::Say(e),
                }]
            }),
            Command::LoadGpuHistory(uuid) => self.spawn(async move {
                let path = format!("/api/v1/gpus/{uuid}/history");
                // Quiet when the daemon has none yet: the chart says there is no history.
                match call(&o, Method::GET, &path, None).await {
                    Ok(v) => vec![Reply::GpuHistory {
                        uuid,
                        window_s: v["window_s"].as_u64().unwrap_or(0),
                        samples: utilisation_samples(&v["samples"]),
                    }],
                    Err(_) => Vec::new(),
                }
            }),
            Command::Note { incident, text } => self.spawn(async move {
                let path = format!("/api/v1/incidents/{}/notes", incident_label(incident));
                match call(&o, Method::POST, &path, Some(json!({ "text": text }))).await {
                    Ok(_) => {
                        let mut out = vec![Reply::Say(format!(
                            "note added to {}",
                            incident_label(incident)
                        ))];
                        if let Ok((_, entries)) = timeline(&o, incident).await {
                            out.push(Reply::Timeline(incident, entries));
                        }
                        out
                    }
                    Err(e) => vec![Reply::Say(e)],
                }
            }),
            Command::Acknowledge(id) | Command::Resolve(id) => {
                let verb = if matches!(command, Command::Acknowledge(_)) {
                    "ack"
                } else {
                    "resolve"
                };
                self.spawn(async move {
                    let path = format!("/api/v1/incidents/{}/{verb}", incident_label(id));
                    let said = match call(&o, Method::POST, &path, Some(json!({}))).await {
                        Ok(v) => match (v["reached"].as_str(), v["already"].as_str()) {
                            (Some(r), _) => r.to_string(),
                            (None, Some(a)) => format!("{} is already {a}", incident_label(id)),
                            _ => format!("{} {verb}: done", incident_label(id)),
                        },
                        Err(e) => e,
                    };
                    let mut out = vec![Reply::Say(said)];
                    if let Ok((_, entries)) = timeline(&o, id).await {
                        out.push(Reply::Timeline(id, entries));
                    }
                    out
                });
            }
            Command::Export(id) => self.spawn(async move {
                vec![Reply::Say(match timeline(&o, id).await {
                    Ok((Some(incident), entries)) => {
                        let text = crate::store::export::markdown(&incident, &entries, Utc::now());
                        let path = format!("{}-postmortem.md", incident.label());
                        match std::fs::write(&path, text) {
                            Ok(()) => format!("postmortem draft written to ./{path}"),
                            Err(e) => format!("cannot write ./{path}: {e}"),
                        }
                    }
                    Ok((None, _)) => format!("the daemon sent no incident {}", incident_label(id)),
                    Err(e) => e,
                })]
            }),
            Command::Preview { cluster, intent } => {
                let plans = self.plans.clone();
                self.spawn(async move {
                    let body = json!({ "cluster": cluster, "mutation": intent });
                    match call(&o, Method::POST, "/api/v1/actions/plan", Some(body)).await {
                        Ok(v) => {
                            let step: Result<PlanStep, _> =
                                serde_json::from_value(v["step"].clone());
                            match (v["plan_id"].as_str(), step) {
                                (Some(id), Ok(step)) => {
                                    if let Ok(mut p) = plans.lock() {
                                        p.insert(action_key(&cluster, &intent), id.to_string());
                                    }
                                    vec![Reply::Preview {
                                        cluster,
                                        step,
                                        disruption: None,
                                    }]
                                }
                                _ => vec![Reply::Say(
                                    "the daemon's plan has no plan_id or step this build reads"
                                        .into(),
                                )],
                            }
                        }
                        Err(e) => vec![Reply::Say(e)],
                    }
                });
            }
            Command::Perform { cluster, intent } => {
                let id = self
                    .plans
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&action_key(&cluster, &intent)));
                let Some(id) = id else {
                    return vec![Reply::Say(format!(
                        "no plan of the daemon's for {} {} in {cluster}: press the key again",
                        intent.verb(),
                        intent.target()
                    ))];
                };
                let plans = self.plans.clone();
                self.spawn(async move { confirm_plan(&o, &plans, &id, cluster, intent).await });
            }
            Command::Decide { id, approve } => self.spawn(async move {
                let verb = if approve { "approve" } else { "deny" };
                let path = format!("/api/v1/runs/{id}/{verb}");
                vec![Reply::Say(
                    match call(&o, Method::POST, &path, Some(json!({}))).await {
                        Ok(v) => format!(
                            "approval {id} {}{}",
                            if approve { "granted" } else { "denied" },
                            v["by"]
                                .as_str()
                                .map(|b| format!(" by {b}"))
                                .unwrap_or_default()
                        ),
                        Err(e) => e,
                    },
                )]
            }),
            Command::ToggleKill => {
                let on = !self.kill;
                self.spawn(async move {
                    vec![Reply::Say(
                        match call(&o, Method::POST, "/api/v1/kill-switch", Some(json!({ "on": on }))).await {
                            Ok(_) if on => "the daemon's kill switch is on: its runbooks are refused every mutation".to_string(),
                            Ok(_) => "the daemon's kill switch is off".to_string(),
                            Err(e) => e,
                        },
                    )]
                });
            }
            Command::Scenario(_)
            | Command::OpenLogs(_)
            | Command::FetchObject(_)
            | Command::SaveLogs { .. } => {}
        }
        Vec::new()
    }
}

/// The key a plan is kept under until its confirmation.
/// Confirms the daemon's plan `id` of `intent`. Whichever replica answers plans it again: when
/// the plan changed since it was shown (pods moved, a PDB appeared), its answer carries the new
/// plan, which is shown for confirmation instead of being performed.
async fn confirm_plan(
    o: &AttachOptions,
    plans: &Mutex<HashMap<(String, String), String>>,
    id: &str,
    cluster: String,
    intent: crate::actions::Mutation,
) -> Vec<Reply> {
    let path = format!("/api/v1/actions/{id}/confirm");
    let body = json!({ "cluster": cluster, "mutation": intent });
    let (status, answer) = match o.send(reqwest::Method::POST, &path, Some(&body)).await {
        Ok(a) => a,
        Err(e) => return vec![Reply::Say(e)],
    };
    let text = answer.text().await;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return vec![Reply::Say(
            v["outcome"]
                .as_str()
                .unwrap_or("performed by the daemon")
                .to_string(),
        )];
    }
    let replanned = (status == reqwest::StatusCode::CONFLICT)
        .then(|| {
            let plan = &v["plan"];
            let step: PlanStep = serde_json::from_value(plan["step"].clone()).ok()?;
            Some((plan["plan_id"].as_str()?.to_string(), step))
        })
        .flatten();
    match replanned {
        Some((new_id, step)) => {
            if let Ok(mut p) = plans.lock() {
                p.insert(action_key(&cluster, &intent), new_id);
            }
            vec![
                Reply::Say(refusal(status, &text)),
                Reply::Preview {
                    cluster,
                    step,
                    disruption: None,
                },
            ]
        }
        None => vec![Reply::Say(refusal(status, &text))],
    }
}

/// The utilisation readings of `GET /api/v1/gpus/UUID/history`'s `[[unix_ms, util, mem], …]`.
fn utilisation_samples(rows: &Value) -> Vec<crate::model::Sample> {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(crate::model::Sample {
                at: DateTime::from_timestamp_millis(r[0].as_i64()?)?,
                value: r[1].as_f64()?,
            })
        })
        .collect()
}

fn action_key(cluster: &str, intent: &crate::actions::Mutation) -> (String, String) {
    (
        cluster.to_string(),
        serde_json::to_string(intent).unwrap_or_default(),
    )
}

/// An incident and its timeline, as the daemon reads them.
async fn timeline(o: &AttachOptions, id: u64) -> Result<(Option<Incident>, Vec<Entry>), String> {
    let path = format!("/api/v1/incidents/{}", incident_label(id));
    let v = call(o, reqwest::Method::GET, &path, None).await?;
    let incident = serde_json::from_value(v["incident"].clone()).ok();
    let entries = serde_json::from_value(v["timeline"].clone()).map_err(|e| {
        format!(
            "the daemon's timeline of {} is unreadable: {e}",
            incident_label(id)
        )
    })?;
    Ok((incident, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::testing::app;
    use crate::tui::nodes::fixtures;

    #[test]
    fn a_lost_link_is_said_on_the_status_line_and_every_wall_tile_with_its_age() {
        let mut app = app();
        app.set_link(LinkState::Live {
            url: "http://d".into(),
            daemon: "fleetdeck-0".into(),
            instance: "1".into(),
            simulated: true,
        });
        let live = fixtures::render(200, 50, |f| app.draw(f)).join("\n");
        assert!(live.contains("attached fleetdeck-0"), "{live}");
        assert!(!live.contains("disconnected"), "{live}");
        app.set_link(LinkState::Lost {
            url: "http://d".into(),
            since: fixtures::now() - chrono::Duration::seconds(12),
            why: "the daemon closed the stream".into(),
        });
        let lost = fixtures::render(200, 50, |f| app.draw(f)).join("\n");
        let last = lost.lines().last().unwrap_or_default();
        assert!(last.contains("disconnected 12s"), "{last}");
        // Every tile with a title on the wall says it too (the heat, the fleet map, the
        // endpoints, the spend and the incidents).
        assert!(lost.matches("disconnected 12s").count() >= 5, "{lost}");
    }

    #[test]
    fn an_attached_pods_pane_says_why_it_is_empty() {
        let mut app = crate::tui::app::App::new(
            crate::tui::theme::Theme::default_theme(),
            crate::tui::keymap::Keymap::default(),
            false,
            false,
        )
        .with_clock(fixtures::now());
        app.pane = crate::tui::keymap::PaneId::Pods;
        app.set_link(LinkState::Live {
            url: "http://d".into(),
            daemon: "fleetdeck-0".into(),
            instance: "1".into(),
            simulated: false,
        });
        let screen = fixtures::render(200, 30, |f| app.draw(f)).join("\n");
        assert!(screen.contains("does not stream its pods"), "{screen}");
    }

    #[test]
    fn the_daemons_refusals_are_said_in_its_own_words() {
        let said = refusal(
            reqwest::StatusCode::FORBIDDEN,
            r#"{"error": "alice may not approve", "missing": {"verb": "approve"}}"#,
        );
        assert_eq!(said, "refused (403): alice may not approve");
        assert!(refusal(reqwest::StatusCode::UNAUTHORIZED, "{}").contains("--token-file"));
        assert!(refusal(reqwest::StatusCode::NOT_FOUND, "no route").contains("no route"));
    }
}
