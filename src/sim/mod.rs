//! The simulated fleet (`fleetdeck sim`): Kubernetes API servers that real kubectl accepts,
//! DCGM exporters, model endpoints, vector stores (a Pinecone-compatible index, a Qdrant node)
//! and an OpenCost API, all on loopback, deterministic per seed. An independent peer of the cockpit: it shares no code with the client side.

pub mod airflow;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod dcgm;
pub mod endpoints;
pub mod fleet;
pub mod generate;
pub mod logs;
pub mod opencost;
pub mod patch;
pub mod pricing;
pub mod resources;
pub mod scenarios;
pub mod selectors;
pub mod store;
pub mod table;
pub mod vector;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use api::SimCluster;
use fleet::{DeploymentsOnly, SimFleet, ViewScope};
use generate::{FleetSpec, cluster_name, endpoint_specs, new_cluster, split_nodes};

/// Kubernetes' published scale limits, which the sim enforces on its flags.
pub const MAX_NODES_PER_CLUSTER: u32 = 5000;
pub const MAX_PODS_PER_NODE: u32 = 110;
pub const MAX_CLUSTERS: u32 = 26;
pub const MAX_GPUS_PER_NODE: u32 = 16;
/// The Kubernetes minor version the sim reports; `kubectl` (the dispatcher) picks its binary by it.
pub const KUBE_MINOR: u32 = 31;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub clusters: u32,
    pub nodes: u32,
    pub pods_per_node: u32,
    pub gpus_per_node: u32,
    pub seed: u64,
    pub listen: SocketAddr,
    pub kubeconfig_out: Option<PathBuf>,
    pub scenarios: Vec<String>,
    /// The users file TokenReviews and SubjectAccessReviews answer from (`--users`).
    pub users: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    InvalidOption(String),
    #[error("cannot listen on {addr} (is another process using the port? pick another --listen)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig to {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write the sim's Airflow credential to {path} (beside the kubeconfig; pick another --kubeconfig-out)"
    )]
    AirflowSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {name}: {message}")]
    Scenario { name: String, message: String },
    #[error("cannot start the endpoints: {0}")]
    Endpoints(String),
    #[error(transparent)]
    Users(#[from] auth::UsersError),
}

impl SimOptions {
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::InvalidOption(m));
        if self.clusters == 0 || self.clusters > MAX_CLUSTERS {
            return bad(format!(
                "--clusters {} is out of range: use 1 to {MAX_CLUSTERS}",
                self.clusters
            ));
        }
        if self.nodes < self.clusters {
            return bad(format!(
                "--nodes {} is too few: each of the {} clusters needs at least one node",
                self.nodes, self.clusters
            ));
        }
        if self.nodes > MAX_NODES_PER_CLUSTER * self.clusters {
            return bad(format!(
                "--nodes {} is above Kubernetes' limit of {MAX_NODES_PER_CLUSTER} nodes per cluster for {} cluster(s); raise --clusters or lower --nodes",
                self.nodes, self.clusters
            ));
        }
        if self.pods_per_node == 0 || self.pods_per_node > MAX_PODS_PER_NODE {
            return bad(format!(
                "--pods-per-node {} is out of range: use 1 to {MAX_PODS_PER_NODE} (the kubelet's default maximum pods per node)",
                self.pods_per_node
            ));
        }
        if self.gpus_per_node > MAX_GPUS_PER_NODE {
            return bad(format!(
                "--gpus-per-node {} is out of range: use 0 to {MAX_GPUS_PER_NODE}",
                self.gpus_per_node
            ));
        }
        if !self.listen.ip().is_loopback() {
            return bad(format!(
                "--listen {} is not a loopback address: the sim has no authentication, so it only listens on 127.0.0.1 or ::1",
                self.listen
            ));
        }
        for s in &self.scenarios {
            if !scenarios::names().contains(&s.as_str()) {
                return bad(format!(
                    "unknown scenario {s:?}; known: {}",
                    scenarios::names().join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Binds `count` listeners on consecutive ports from `base` (or ephemeral ports for port 0).
async fn bind(ip: IpAddr, base: u16, offset: u16) -> Result<TcpListener, SimError> {
    let port = if base == 0 {
        0
    } else {
        base.saturating_add(offset)
    };
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Listen { addr, source })
}

fn url_of(l: &TcpListener) -> String {
    match l.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(_) => String::new(),
    }
}

/// The user every kubeconfig the sim writes names, with its token.
const SIM_USER: &str = "- name: sim-admin\n  user:\n    token: fleetdeck-sim\n";

/// Whether `text` is a kubeconfig the sim wrote (its user and token).
pub fn wrote_kubeconfig(text: &str) -> bool {
    text.contains(SIM_USER)
}

fn kubeconfig(clusters: &[(String, String)]) -> String {
    let mut out = String::from("apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n");
    for (name, url) in clusters {
        out.push_str(&format!("- name: {name}\n  cluster:\n    server: {url}\n"));
    }
    out.push_str("users:\n");
    out.push_str(SIM_USER);
    out.push_str("contexts:\n");
    for (name, _) in clusters {
        out.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: sim-admin\n"
        ));
    }
    if let Some((first, _)) = clusters.first() {
        out.push_str(&format!("current-context: {first}\n"));
    }
    out
}

/// Everything the sim serves, started and listening.
pub struct RunningSim {
    pub fleet: Arc<SimFleet>,
    /// The one-line JSON description printed on stdout.
    pub description: Value,
    pub kubeconfig: PathBuf,
}

/// Generates the fleet, binds every server, applies start-up scenarios and starts serving.
/// Returns once everything listens.
pub async fn start(opts: &SimOptions) -> Result<RunningSim, SimError> {
    opts.validate()?;
    let ip = opts.listen.ip();
    let base = opts.listen.port();
    let n = opts.clusters as u16;
    // Bind before generating, so a busy port fails at once.
    let control_l = bind(ip, base, 0).await?;
    let mut kube_l = Vec::new();
    let mut dcgm_l = Vec::new();
    for i in 0..n {
        kube_l.push(bind(ip, base, 1 + i).await?);
    }
    for i in 0..n {
        dcgm_l.push(bind(ip, base, 1 + n + i).await?);
    }
    let opencost_l = bind(ip, base, 1 + 2 * n).await?;
    let specs = endpoint_specs(opts.clusters);
    let mut ep_l = Vec::new();
    for i in 0..specs.len() as u16 {
        ep_l.push(bind(ip, base, 2 + 2 * n + i).await?);
    }
    let vector_specs = vector::vector_store_specs(&cluster_name(0));
    let mut vector_l = Vec::new();
    for i in 0..vector_specs.len() as u16 {
        vector_l.push(bind(ip, base, 2 + 2 * n + specs.len() as u16 + i).await?);
    }
    // After the vector stores' ports.
    let airflow_l = bind(
        ip,
        base,
        2 + 2 * n + specs.len() as u16 + vector_specs.len() as u16,
    )
    .await?;

    // Settle where the kubeconfig goes before the (long) generation, so a bad path fails fast.
    let kubeconfig_path = match &opts.kubeconfig_out {
        Some(p) => p.clone(),
        None => std::env::temp_dir()
            .join(format!("fleetdeck-sim-{}", std::process::id()))
            .join("kubeconfig"),
    };
    let kubeconfig_error = |source| SimError::Kubeconfig {
        path: kubeconfig_path.clone(),
        source,
    };
    if let Some(dir) = kubeconfig_path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(kubeconfig_error)?;
    }
    // Opened without truncating: a start that fails later must not empty a user's file.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&kubeconfig_path)
        .map_err(kubeconfig_error)?;
    let spec = FleetSpec {
        clusters: opts.clusters,
        nodes: opts.nodes,
        pods_per_node: opts.pods_per_node,
        gpus_per_node: opts.gpus_per_node,
        seed: opts.seed,
    };
    let started = Instant::now();
    let counts = split_nodes(opts.nodes, opts.clusters);
    let states = std::thread::scope(|s| {
        let handles: Vec<_> = counts
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                let spec = &spec;
                s.spawn(move || new_cluster(spec, i as u32, count))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<Vec<_>>()
    });
    if states.len() != counts.len() {
        return Err(SimError::InvalidOption(
            "generating a cluster failed; see the log above".into(),
        ));
    }
    let users = Arc::new(match &opts.users {
        Some(p) => auth::SimUsers::load(p)?,
        None => auth::SimUsers::default(),
    });
    let clusters: Vec<Arc<SimCluster>> = states
        .into_iter()
        .enumerate()
        .map(|(i, st)| {
            Arc::new(SimCluster {
                name: cluster_name(i as u32),
                state: Mutex::new(st),
                rng: Mutex::new(ChaCha8Rng::seed_from_u64(
                    opts.seed ^ ((i as u64 + 1) * 0x5851_F42D),
                )),
                minor: KUBE_MINOR,
                users: users.clone(),
            })
        })
        .collect();
    let pods: usize = clusters
        .iter()
        .map(|c| c.lock().store.count(resources::Kind::Pod))
        .sum();
    tracing::info!(
        clusters = clusters.len(),
        nodes = opts.nodes,
        pods,
        seconds = started.elapsed().as_secs_f64(),
        "fleet generated"
    );
    let fleet = Arc::new(SimFleet::new(clusters.clone()));
    for name in &opts.scenarios {
        scenarios::inject(&fleet, name, &scenarios::Target::default()).map_err(|message| {
            SimError::Scenario {
                name: name.clone(),
                message,
            }
        })?;
    }

    for c in &clusters {
        let c = c.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                c.lock().tick(Instant::now());
            }
        });
    }
    let mut cluster_urls = Vec::new();
    for (c, l) in clusters.iter().zip(kube_l) {
        cluster_urls.push((c.name.clone(), url_of(&l)));
        serve(l, api::router(c.clone()));
    }
    let mut dcgm_urls = Vec::new();
    for (i, l) in dcgm_l.into_iter().enumerate() {
        dcgm_urls.push(format!("{}/metrics", url_of(&l)));
        serve(l, dcgm_router(fleet.clone(), i));
    }
    let opencost_url = url_of(&opencost_l);
    serve(opencost_l, opencost_router(fleet.clone()));
    let source: Arc<dyn view::FleetSource> = Arc::new(DeploymentsOnly(fleet.clone()));
    let eps = Arc::new(
        endpoints::EndpointSim::new(specs.clone(), source, opts.seed)
            .map_err(|e| SimError::Endpoints(e.to_string()))?,
    );
    let mut endpoint_desc = Vec::new();
    for (s, l) in specs.iter().zip(ep_l) {
        let url = url_of(&l);
        endpoint_desc.push(
            json!({"name": s.name, "url": url, "protocol": s.protocol, "model": s.model,
            "cluster": s.cluster, "namespace": s.namespace, "deployment": s.deployment}),
        );
        if let Some(r) = eps.router(&s.name) {
            serve(l, r);
        }
    }
    tokio::spawn(eps.clone().run_traffic());
    // The Pinecone-compatible index takes a key, as the real one does; it lives in a file
    // beside the kubeconfig so `sim --config-out` can name it without printing it.
    // Absolute: a config that names these files (`sim --config-out`) may live elsewhere, and a
    // config's relative paths resolve against its own directory.
    let beside_kubeconfig =
        std::path::absolute(&kubeconfig_path).unwrap_or_else(|_| kubeconfig_path.clone());
    let api_key_file = beside_kubeconfig.with_file_name("pinecone-api-key");
    std::fs::write(&api_key_file, vector::SIM_PINECONE_API_KEY).map_err(|source| {
        SimError::Kubeconfig {
            path: api_key_file.clone(),
            source,
        }
    })?;
    let vectors = Arc::new(vector::VectorSim::new(
        vector_specs.clone(),
        Arc::new(DeploymentsOnly(fleet.clone())),
        opts.seed,
        vector::SIM_PINECONE_API_KEY,
    ));
    let mut vector_desc = Vec::new();
    for (s, l) in vector_specs.iter().zip(vector_l) {
        let mut d = json!({"name": s.name, "url": url_of(&l), "protocol": s.protocol,
            "dimension": s.dimension});
        if s.protocol == vector::VectorProtocol::Pinecone {
            d["api_key_file"] = json!(api_key_file);
        }
        if let Some((cluster, namespace, job)) = &s.ingestion {
            d["ingestion"] = json!({"cluster": cluster, "namespace": namespace, "job": job});
        }
        vector_desc.push(d);
        if let Some(r) = vectors.router(&s.name) {
            serve(l, r);
        }
    }
    tokio::spawn(vectors.run());
    let control_url = url_of(&control_l);
    serve(control_l, control_router(fleet.clone()));
    let airflow_url = url_of(&airflow_l);
    serve(
        airflow_l,
        airflow::router(Arc::new(airflow::AirflowSim::new(
            fleet.clone(),
            chrono::Utc::now(),
        ))),
    );
    // The Airflow credentials a client reads from files, beside the kubeconfig.
    let secrets_dir = beside_kubeconfig
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let airflow_password = secrets_dir.join("airflow-password");
    let airflow_token = secrets_dir.join("airflow-token");
    for (path, secret) in [
        (&airflow_password, airflow::SIM_AIRFLOW_PASSWORD),
        (&airflow_token, airflow::SIM_AIRFLOW_TOKEN),
    ] {
        std::fs::write(path, secret).map_err(|source| SimError::AirflowSecret {
            path: path.clone(),
            source,
        })?;
    }

    std::fs::write(&kubeconfig_path, kubeconfig(&cluster_urls)).map_err(|source| {
        SimError::Kubeconfig {
            path: kubeconfig_path.clone(),
            source,
        }
    })?;

    let description = json!({
        "clusters": cluster_urls.iter().map(|(n, u)| json!({"name": n, "kube": u, "context": n})).collect::<Vec<_>>(),
        "kubeconfig": kubeconfig_path,
        "dcgm": dcgm_urls,
        "endpoints": endpoint_desc,
        "vector_stores": vector_desc,
        "opencost": opencost_url,
        "control": control_url,
        "airflow": {"url": airflow_url, "username": airflow::SIM_AIRFLOW_USER,
            "password_file": airflow_password, "token_file": airflow_token},
        "simulated": true,
        "seed": opts.seed,
    });
    Ok(RunningSim {
        fleet,
        description,
        kubeconfig: kubeconfig_path,
    })
}

fn serve(l: TcpListener, router: Router) {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, router).await {
            tracing::error!(error = %e, "a sim server stopped");
        }
    });
}

fn json_reply(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn dcgm_router(fleet: Arc<SimFleet>, index: usize) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State((fleet, index)): State<(Arc<SimFleet>, usize)>| async move {
                    let faults = fleet.faults_mut().clone();
                    match fleet.view(index, ViewScope::GpuPods) {
                        Some(view) => (
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            dcgm::render_metrics(&view, &faults, chrono::Utc::now()),
                        )
                            .into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .with_state((fleet, index))
}

fn opencost_router(fleet: Arc<SimFleet>) -> Router {
    async fn allocation(State(fleet): State<Arc<SimFleet>>, RawQuery(q): RawQuery) -> Response {
        let query = match opencost::AllocationQuery::parse(q.as_deref().unwrap_or("")) {
            Ok(q) => q,
            Err(e) => return json_reply(StatusCode::BAD_REQUEST, &e.response_body()),
        };
        let views = fleet.views(ViewScope::Everything);
        match opencost::allocation(&views, &query, chrono::Utc::now()) {
            Ok(v) => json_reply(StatusCode::OK, &v),
            Err(e) => json_reply(StatusCode::BAD_REQUEST, &e.response_body()),
        }
    }
    Router::new()
        .route("/allocation", get(allocation))
        .route("/allocation/compute", get(allocation))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(fleet)
}

fn control_router(fleet: Arc<SimFleet>) -> Router {
    async fn list(State(fleet): State<Arc<SimFleet>>) -> Response {
        let defs: Vec<Value> = scenarios::SCENARIOS
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description, "parameters": s.targets}))
            .collect();
        let injected = fleet
            .injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json_reply(
            StatusCode::OK,
            &json!({"scenarios": defs, "injected": injected}),
        )
    }
    async fn inject(
        State(fleet): State<Arc<SimFleet>>,
        Path(name): Path<String>,
        RawQuery(q): RawQuery,
    ) -> Response {
        let target = match scenarios::Target::from_query(q.as_deref().unwrap_or("")) {
            Ok(t) => t,
            Err(e) => return json_reply(StatusCode::BAD_REQUEST, &json!({"error": e})),
        };
        if !scenarios::names().contains(&name.as_str()) {
            return json_reply(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("unknown scenario {name:?}; known: {}", scenarios::names().join(", "))}),
            );
        }
        match scenarios::inject(&fleet, &name, &target) {
            Ok(r) => json_reply(StatusCode::OK, &r),
            Err(e) => json_reply(StatusCode::CONFLICT, &json!({"error": e})),
        }
    }
    async fn clear(State(fleet): State<Arc<SimFleet>>, Path(name): Path<String>) -> Response {
        match scenarios::clear(&fleet, &name) {
            Ok(r) => json_reply(StatusCode::OK, &r),
            Err(e) => json_reply(StatusCode::BAD_REQUEST, &json!({"error": e})),
        }
    }
    async fn counters(State(fleet): State<Arc<SimFleet>>) -> Response {
        let mut out = serde_json::Map::new();
        for c in &fleet.clusters {
            let st = c.lock();
            out.insert(
                c.name.clone(),
                serde_json::to_value(&st.store.counters).unwrap_or(Value::Null),
            );
        }
        json_reply(StatusCode::OK, &json!({"clusters": out}))
    }
    async fn summary(State(fleet): State<Arc<SimFleet>>) -> Response {
        let mut out = Vec::new();
        for c in &fleet.clusters {
            let st = c.lock();
            let count = |k| st.store.count(k);
            out.push(json!({
                "name": c.name, "cloud": st.cloud, "resourceVersion": st.store.rv.to_string(),
                "nodes": count(resources::Kind::Node), "pods": count(resources::Kind::Pod),
                "deployments": count(resources::Kind::Deployment), "events": count(resources::Kind::Event),
            }));
        }
        json_reply(StatusCode::OK, &json!({"clusters": out}))
    }
    Router::new()
        .route("/scenarios", get(list))
        .route(
            "/scenarios/{name}",
            axum::routing::post(inject).delete(clear),
        )
        .route("/counters", get(counters))
        .route("/fleet", get(summary))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(fleet)
}

/// SIGINT and SIGTERM handlers, installed before the sim announces itself so that a signal
/// sent on seeing the JSON line is always a clean shutdown.
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
