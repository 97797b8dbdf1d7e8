//! The Kubernetes source: per cluster and resource, a paged list then a watch (kube-rs's
//! client underneath, the list/watch loop on top), straight into compact projections that
//! keep only the fields the cockpit reads. A 410 re-lists (the old picture stays until the
//! new list is complete); broken watches resume from the last resourceVersion with jittered
//! backoff; RBAC refusals and missing CRDs are reported per resource. A watch that hears
//! nothing (no event, no bookmark) for the idle limit is taken for a dead connection, shown as
//! reconnecting and resumed; TCP keepalive is on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use kube::Client;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::model::SyncState;
use crate::model::update::Update;
pub use crate::model::update::{
    ContainerRecord, DeploymentRecord, EventRecord, KubeEvent, Labels, NodeRecord, Phase,
    PodRecord, Record, Resource,
};

mod projection;

pub use projection::{
    DaemonSetObject, DeploymentObject, EventObject, InferenceServiceObject, Interner, JobObject,
    Meta, NodeObject, PdbObject, PodObject, Projection, SparkApplicationObject, StatefulSetObject,
};

/// Where each watched resource is listed and watched.
fn resource_path(resource: Resource) -> &'static str {
    match resource {
        Resource::Nodes => "/api/v1/nodes",
        Resource::Pods => "/api/v1/pods",
        Resource::Deployments => "/apis/apps/v1/deployments",
        Resource::PodDisruptionBudgets => "/apis/policy/v1/poddisruptionbudgets",
        Resource::Events => "/api/v1/events",
        Resource::InferenceServices => "/apis/serving.kserve.io/v1beta1/inferenceservices",
        Resource::StatefulSets => "/apis/apps/v1/statefulsets",
        Resource::DaemonSets => "/apis/apps/v1/daemonsets",
        Resource::Jobs => "/apis/batch/v1/jobs",
        Resource::SparkApplications => "/apis/sparkoperator.k8s.io/v1beta2/sparkapplications",
    }
}

fn field_selector(_resource: Resource) -> Option<&'static str> {
    None
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ObjectList<T> {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<T>,
}

/// One cluster to watch: a kubeconfig context, or the cluster fleetdeck runs in.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    pub context: String,
    pub server: String,
    pub access: ClusterAccess,
}

/// How a cluster is reached.
#[derive(Debug, Clone)]
pub enum ClusterAccess {
    /// A context of this kubeconfig.
    Kubeconfig(Box<Kubeconfig>),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST` and the token mounted under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`), as kube's in-cluster config reads it.
    InCluster,
}

/// The context name of the cluster fleetdeck runs in, when it has no kubeconfig.
pub const IN_CLUSTER: &str = "in-cluster";
/// Where Kubernetes mounts a pod's service-account token.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

impl ClusterTarget {
    /// kube's client configuration for this cluster.
    pub async fn config(&self) -> Result<kube::Config, String> {
        let mut cfg = match &self.access {
            ClusterAccess::Kubeconfig(kc) => {
                let opts = KubeConfigOptions {
                    context: Some(self.context.clone()),
                    ..Default::default()
                };
                kube::Config::from_custom_kubeconfig((**kc).clone(), &opts)
                    .await
                    .map_err(|e| e.to_string())?
            }
            ClusterAccess::InCluster => kube::Config::incluster().map_err(|e| {
                format!("cannot use the pod's service account (in-cluster config): {e}")
            })?,
        };
        cfg.connect_timeout = Some(Duration::from_secs(5));
        Ok(cfg)
    }
}

/// Whether fleetdeck runs in a pod with a service account: the API server's address in the
/// environment and the token file present (`token` is its path).
fn in_cluster_available(service_host: Option<&str>, token: &Path) -> bool {
    service_host.is_some_and(|h| !h.is_empty()) && token.is_file()
}

/// The in-cluster target, when `contexts` allows it; named by `FLEETDECK_CLUSTER_NAME` (what
/// alerts call this cluster), else `in-cluster`.
fn in_cluster_target(contexts: &[String]) -> Result<Vec<ClusterTarget>, KubeSourceError> {
    let name = std::env::var("FLEETDECK_CLUSTER_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| IN_CLUSTER.to_string());
    if let Some(c) = contexts.iter().find(|c| **c != name) {
        return Err(KubeSourceError::UnknownContext {
            context: c.clone(),
            known: name,
        });
    }
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(vec![ClusterTarget {
        context: name,
        server: format!("https://{host}:{port}"),
        access: ClusterAccess::InCluster,
    }])
}

/// How the watch loop tells a dead connection from a quiet one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// A watch that receives nothing — no event, no bookmark — for this long is dropped and
    /// resumed; also the limit on one list page and on opening a watch.
    pub idle_timeout: Duration,
    /// How long a watch must stay healthy before a failure starts the backoff afresh (as
    /// kube-runtime does), so a watch that opens and fails at once backs off.
    pub healthy_after: Duration,
}

/// The server ends each watch after this many seconds; bookmarks come at least once a minute.
const WATCH_TIMEOUT_S: u32 = 290;

impl Default for Liveness {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(WATCH_TIMEOUT_S as u64 + 10),
            healthy_after: Duration::from_secs(120),
        }
    }
}

/// kube's client over a connector with TCP keepalive (the default stack has none); behind a
/// proxy from the kubeconfig, kube's own stack.
fn build_client(cfg: kube::Config) -> Result<Client, String> {
    use kube::client::ConfigExt;
    if cfg.proxy_url.is_some() {
        return Client::try_from(cfg).map_err(|e| e.to_string());
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_nodelay(true);
    http.set_connect_timeout(cfg.connect_timeout);
    let https = cfg
        .rustls_https_connector_with_connector(http)
        .map_err(|e| e.to_string())?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let auth = cfg.auth_layer().map_err(|e| e.to_string())?;
    let headers = cfg.extra_headers_layer().map_err(|e| e.to_string())?;
    let service = tower::ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(auth)
        .layer(headers)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, cfg.default_namespace))
}

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error(
        "no kubeconfig found: set KUBECONFIG, pass --kubeconfig PATH, or create ~/.kube/config"
    )]
    NoKubeconfig,
    #[error("context {context:?} is not in the kubeconfig (it has: {known})")]
    UnknownContext { context: String, known: String },
    #[error("the kubeconfig has no contexts")]
    NoContexts,
}

/// Reads the kubeconfig (`path`, else `$KUBECONFIG`, else `~/.kube/config`) and picks the
/// named contexts, or all of them when none are named.
/// Reads a kubeconfig file. One that cannot be opened is said in our words: kube's own
/// message quotes the path a second time, Debug-formatted (`'"missing.kc"'`).
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, KubeSourceError> {
    let failed = |message: String| KubeSourceError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))
}

pub fn targets(
    path: Option<&Path>,
    contexts: &[String],
) -> Result<Vec<ClusterTarget>, KubeSourceError> {
    let kc = match path {
        Some(p) => read_kubeconfig(p)?,
        None => match Kubeconfig::from_env() {
            Ok(Some(kc)) => kc,
            Ok(None) => {
                let p = dirs::home_dir().map(|h| h.join(".kube").join("config"));
                let Some(p) = p.filter(|p| p.exists()) else {
                    // No kubeconfig: in a pod, its service account (as kubectl does).
                    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
                    if in_cluster_available(host.as_deref(), Path::new(SERVICE_ACCOUNT_TOKEN)) {
                        return in_cluster_target(contexts);
                    }
                    return Err(KubeSourceError::NoKubeconfig);
                };
                read_kubeconfig(&p)?
            }
            Err(e) => {
                return Err(KubeSourceError::Kubeconfig {
                    path: PathBuf::from(std::env::var("KUBECONFIG").unwrap_or_default()),
                    message: e.to_string(),
                });
            }
        },
    };
    let known: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
    if known.is_empty() {
        return Err(KubeSourceError::NoContexts);
    }
    let chosen: Vec<String> = if contexts.is_empty() {
        known.clone()
    } else {
        for c in contexts {
            if !known.contains(c) {
                return Err(KubeSourceError::UnknownContext {
                    context: c.clone(),
                    known: known.join(", "),
                });
            }
        }
        contexts.to_vec()
    };
    Ok(chosen
        .into_iter()
        .map(|context| {
            let server = kc
                .contexts
                .iter()
                .find(|c| c.name == context)
                .and_then(|c| c.context.as_ref())
                .and_then(|c| kc.clusters.iter().find(|k| k.name == c.cluster))
                .and_then(|k| k.cluster.as_ref())
                .and_then(|k| k.server.clone())
                .unwrap_or_default();
            ClusterTarget {
                context,
                server,
                access: ClusterAccess::Kubeconfig(Box::new(kc.clone())),
            }
        })
        .collect())
}

/// Starts the watchers of one cluster: one task per resource. Errors building the client
/// are reported as every resource being unreachable (the other clusters are unaffected).
pub fn spawn_cluster(
    index: usize,
    target: ClusterTarget,
    liveness: Liveness,
    tx: mpsc::Sender<Update>,
) {
    spawn_cluster_resources(index, target, liveness, tx, &Resource::ALL);
}

/// As [`spawn_cluster`], watching only `resources` (an attached cockpit lists the pods itself
/// and takes everything else from its daemon).
pub fn spawn_cluster_resources(
    index: usize,
    target: ClusterTarget,
    liveness: Liveness,
    tx: mpsc::Sender<Update>,
    resources: &'static [Resource],
) {
    tokio::spawn(async move {
        let client = match target.config().await {
            Ok(cfg) => build_client(cfg),
            Err(e) => Err(e),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                for &r in resources {
                    let state = SyncState::Unreachable {
                        since: Utc::now(),
                        last_error: e.clone(),
                    };
                    let _ = tx
                        .send(Update::Kube {
                            cluster: index,
                            event: KubeEvent::Sync { resource: r, state },
                        })
                        .await;
                }
                return;
            }
        };
        for &r in resources {
            let (client, tx) = (client.clone(), tx.clone());
            match r {
                Resource::Nodes => {
                    tokio::spawn(watch_resource::<NodeObject>(client, index, liveness, tx))
                }
                Resource::Pods => {
                    tokio::spawn(watch_resource::<PodObject>(client, index, liveness, tx))
                }
                Resource::Deployments => tokio::spawn(watch_resource::<DeploymentObject>(
                    client, index, liveness, tx,
                )),
                Resource::PodDisruptionBudgets => {
                    tokio::spawn(watch_resource::<PdbObject>(client, index, liveness, tx))
                }
                Resource::Events => {
                    tokio::spawn(watch_resource::<EventObject>(client, index, liveness, tx))
                }
                Resource::InferenceServices => tokio::spawn(
                    watch_resource::<InferenceServiceObject>(client, index, liveness, tx),
                ),
                Resource::StatefulSets => tokio::spawn(watch_resource::<StatefulSetObject>(
                    client, index, liveness, tx,
                )),
                Resource::DaemonSets => tokio::spawn(watch_resource::<DaemonSetObject>(
                    client, index, liveness, tx,
                )),
                Resource::Jobs => {
                    tokio::spawn(watch_resource::<JobObject>(client, index, liveness, tx))
                }
                Resource::SparkApplications => tokio::spawn(
                    watch_resource::<SparkApplicationObject>(client, index, liveness, tx),
                ),
            };
        }
    });
}

/// Exponential backoff with full jitter, 250 ms doubling to 30 s.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            seed: seed | 1,
        }
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
    fn next(&mut self) -> Duration {
        self.attempt = (self.attempt + 1).min(8);
        let cap_ms = (250u64 << self.attempt).min(30_000);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_millis(cap_ms / 2 + self.seed % (cap_ms / 2 + 1))
    }
}

enum Failure {
    /// 410: the resourceVersion is too old; list again.
    Gone,
    Forbidden(String),
    NotServed,
    /// Anything else: connection refused, 5xx, a broken stream.
    Other(String),
}

impl Failure {
    /// A connection that went quiet: nothing arrived within the idle limit.
    fn silent(what: &str, limit: Duration) -> Failure {
        Failure::Other(format!(
            "{what} received nothing for {}s (no event, no bookmark): the connection looks \
             dead; reconnecting",
            limit.as_secs()
        ))
    }
}

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        classify(e)
    }
}

fn classify(e: kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) if s.code == 410 => Failure::Gone,
        kube::Error::Api(s) if s.code == 403 => Failure::Forbidden(s.message.clone()),
        kube::Error::Api(s) if s.code == 404 => Failure::NotServed,
        kube::Error::Api(s) => Failure::Other(format!("{} {}: {}", s.code, s.reason, s.message)),
        other => Failure::Other(error_chain(&other)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

/// List + watch of one resource of one cluster, forever.
async fn watch_resource<P: Projection>(
    client: Client,
    cluster: usize,
    liveness: Liveness,
    tx: mpsc::Sender<Update>,
) {
    let resource = P::RESOURCE;
    let send = |event: KubeEvent| {
        let tx = tx.clone();
        async move { tx.send(Update::Kube { cluster, event }).await.is_ok() }
    };
    let sync = |state: SyncState| send(KubeEvent::Sync { resource, state });
    let mut backoff = Backoff::new((cluster as u64 + 1) * 7919 + resource as u64);
    let mut interner = Interner::default();
    let mut ever_synced = false;
    let mut down_since: Option<DateTime<Utc>> = None;
    'relist: loop {
        // LIST, in pages; the previous picture stays until the new one is complete. (The
        // state starts every resource as listing; progress is reported page by page.)
        let mut items: Vec<Record> = Vec::new();
        let mut cont: Option<String> = None;
        let list_rv = loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(f) = field_selector(resource) {
                lp = lp.fields(f);
            }
            if let Some(c) = &cont {
                lp = lp.continue_token(c);
            }
            let page = match Request::new(resource_path(resource)).list(&lp) {
                Ok(req) => {
                    let page = client.request::<ObjectList<P>>(req);
                    match tokio::time::timeout(liveness.idle_timeout, page).await {
                        Ok(page) => page.map_err(Failure::from),
                        Err(_) => Err(Failure::silent("a list page", liveness.idle_timeout)),
                    }
                }
                Err(e) => Err(Failure::from(kube::Error::BuildRequest(e))),
            };
            match page {
                Ok(page) => {
                    items.extend(page.items.into_iter().map(|o| o.into_record(&mut interner)));
                    if !sync(SyncState::Listing {
                        objects: items.len() as u64,
                    })
                    .await
                    {
                        return;
                    }
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(c) => cont = Some(c),
                        None => break page.metadata.resource_version.unwrap_or_default(),
                    }
                }
                Err(e) => {
                    let wait = match e {
                        // The continue token expired: start the list over.
                        Failure::Gone => backoff.next(),
                        Failure::Forbidden(m) => {
                            sync(SyncState::Forbidden { message: m }).await;
                            Duration::from_secs(30)
                        }
                        Failure::NotServed => {
                            sync(SyncState::NotServed).await;
                            Duration::from_secs(60)
                        }
                        Failure::Other(m) => {
                            let since = *down_since.get_or_insert_with(Utc::now);
                            let state = if ever_synced {
                                SyncState::Reconnecting {
                                    since,
                                    last_error: m,
                                }
                            } else {
                                SyncState::Unreachable {
                                    since,
                                    last_error: m,
                                }
                            };
                            sync(state).await;
                            backoff.next()
                        }
                    };
                    tokio::time::sleep(wait).await;
                    continue 'relist;
                }
            }
        };
        if !send(KubeEvent::Replace { resource, items }).await || !sync(SyncState::Synced).await {
            return;
        }
        ever_synced = true;
        down_since = None;
        // WATCH from the list's resourceVersion, resuming from the last one seen.
        let mut rv = list_rv;
        loop {
            let mut wp = WatchParams::default().timeout(WATCH_TIMEOUT_S);
            if let Some(f) = field_selector(resource) {
                wp = wp.fields(f);
            }
            let stream = match Request::new(resource_path(resource)).watch(&wp, &rv) {
                Ok(req) => {
                    let open = client.request_events::<P>(req);
                    match tokio::time::timeout(liveness.idle_timeout, open).await {
                        Ok(stream) => stream.map_err(Failure::from),
                        Err(_) => Err(Failure::silent("opening a watch", liveness.idle_timeout)),
                    }
                }
                Err(e) => Err(Failure::from(kube::Error::BuildRequest(e))),
            };
            let mut failure: Option<Failure> = None;
            let opened = tokio::time::Instant::now();
            match stream {
                Err(e) => failure = Some(e),
                Ok(stream) => {
                    if down_since.take().is_some() && !sync(SyncState::Synced).await {
                        return;
                    }
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let ev = match tokio::time::timeout(liveness.idle_timeout, stream.next())
                            .await
                        {
                            Ok(Some(ev)) => ev,
                            Ok(None) => break,
                            Err(_) => {
                                failure = Some(Failure::silent("the watch", liveness.idle_timeout));
                                break;
                            }
                        };
                        let event = match ev {
                            Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                                if let Some(v) = o.resource_version() {
                                    rv = v.to_string();
                                }
                                KubeEvent::Apply(o.into_record(&mut interner))
                            }
                            Ok(WatchEvent::Deleted(o)) => {
                                if let Some(v) = o.resource_version() {
                                    rv = v.to_string();
                                }
                                let (namespace, name) = o.ns_name();
                                KubeEvent::Delete {
                                    resource,
                                    namespace,
                                    name,
                                }
                            }
                            Ok(WatchEvent::Bookmark(b)) => {
                                rv = b.metadata.resource_version;
                                continue;
                            }
                            Ok(WatchEvent::Error(e)) if e.code == 410 => {
                                failure = Some(Failure::Gone);
                                break;
                            }
                            Ok(WatchEvent::Error(e)) => {
                                failure = Some(Failure::Other(format!(
                                    "{} {}: {}",
                                    e.code, e.reason, e.message
                                )));
                                break;
                            }
                            Err(e) => {
                                failure = Some(Failure::from(e));
                                break;
                            }
                        };
                        if !send(event).await {
                            return;
                        }
                    }
                }
            }
            // Only a watch that stayed up a while starts the backoff afresh.
            if opened.elapsed() >= liveness.healthy_after {
                backoff.reset();
            }
            match failure {
                // The stream ended normally (timeout): watch again from where it was.
                None => continue,
                Some(Failure::Gone) => continue 'relist,
                Some(Failure::Forbidden(m)) => {
                    sync(SyncState::Forbidden { message: m }).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue 'relist;
                }
                Some(Failure::NotServed) => continue 'relist,
                Some(Failure::Other(m)) => {
                    let since = *down_since.get_or_insert_with(Utc::now);
                    if !sync(SyncState::Reconnecting {
                        since,
                        last_error: m,
                    })
                    .await
                    {
                        return;
                    }
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubeconfig_is_named_once_without_debug_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.kc");
        let e = targets(Some(&missing), &[]).expect_err("no such file");
        let text = e.to_string();
        assert!(text.contains("missing.kc"), "{text}");
        assert_eq!(text.matches("missing.kc").count(), 1, "{text}");
        assert!(!text.contains("\"missing.kc\""), "{text}");
    }

    #[test]
    fn in_cluster_config_is_used_only_with_the_service_host_and_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        assert!(!in_cluster_available(Some("10.96.0.1"), &token));
        std::fs::write(&token, "eyJ…").unwrap();
        assert!(in_cluster_available(Some("10.96.0.1"), &token));
        assert!(!in_cluster_available(None, &token));
        assert!(!in_cluster_available(Some(""), &token));
        let t = in_cluster_target(&[]).unwrap();
        assert_eq!(t[0].context, IN_CLUSTER);
        assert!(matches!(t[0].access, ClusterAccess::InCluster));
        assert!(in_cluster_target(&[IN_CLUSTER.to_string()]).is_ok());
        let err = in_cluster_target(&["prod".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("prod") && err.contains(IN_CLUSTER), "{err}");
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let mut b = Backoff::new(3);
        let waits: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert!(waits[0] <= Duration::from_millis(500));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(30)));
        assert!(waits[11] >= Duration::from_secs(15));
        b.reset();
        assert!(b.next() <= Duration::from_millis(500));
    }
}
