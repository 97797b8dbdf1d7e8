//! Simulated vector stores: a Pinecone-compatible index (the data-plane API an index host
//! serves: `POST /describe_index_stats`, `POST /query`, the `Api-Key` header checked) and a
//! Qdrant node (`GET /collections/{name}`, `POST /collections/{name}/points/search` and
//! `/points/query`, `GET /metrics`, `/healthz`, `/readyz`). Imports `sim::view` only.
//!
//! Field names follow Pinecone's data-plane reference (`namespaces{…vectorCount}`,
//! `dimension`, `indexFullness`, `totalVectorCount`; query `matches[]` with `id`, `score`) and
//! Qdrant's OpenAPI document and node metrics (`result.status` green/yellow/red,
//! `points_count`, `indexed_vectors_count`; `collections_vector_total`, `collection_points`,
//! `rest_responses_total`, `rest_responses_fail_total`, `rest_responses_duration_seconds`).
//!
//! Each store's vector count grows as its ingestion writes, in sim time: every
//! [`VectorSim::tick`] adds `rate × dt` (a seeded jitter keeps it from looking machine-made)
//! unless the store is in `FaultState::index_stale`, when the count stays flat while the
//! ingestion Job keeps running. Query latency is sampled, recorded in the metrics and slept,
//! so a probe measures it as a client would.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::view::FleetSource;

/// Spread of the log-normal query latency: p99 ≈ 2.85 × median.
const LATENCY_SIGMA: f64 = 0.45;
/// Qdrant's REST duration histogram buckets (seconds), as its `/metrics` declares them.
const QDRANT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Which API a simulated store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorProtocol {
    Pinecone,
    Qdrant,
}

/// One simulated store: its name (the Pinecone index or the Qdrant collection), what writes
/// into it, and how it is reached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VectorStoreSpec {
    pub name: String,
    pub protocol: VectorProtocol,
    pub dimension: u32,
    /// Vectors at start.
    pub initial: u64,
    /// Vectors its ingestion writes a second.
    pub rate: f64,
    /// Pod-based capacity behind `indexFullness` (Pinecone).
    pub capacity: u64,
    pub median_latency_s: f64,
    /// The Kubernetes Job that writes into it: (cluster, namespace, job); `None` for a store
    /// nothing writes into.
    pub ingestion: Option<(String, String, String)>,
}

/// The stores every simulated fleet has: the `docs-rag` Pinecone index fed by
/// `batch/docs-embed-ingest` on the first cluster, and the `support-kb` Qdrant collection,
/// loaded once and read-only since.
pub fn vector_store_specs(first_cluster: &str) -> Vec<VectorStoreSpec> {
    vec![
        VectorStoreSpec {
            name: "docs-rag".into(),
            protocol: VectorProtocol::Pinecone,
            dimension: 1024,
            initial: 1_840_000,
            rate: 42.0,
            capacity: 5_000_000,
            median_latency_s: 0.018,
            ingestion: Some((
                first_cluster.to_string(),
                "batch".into(),
                "docs-embed-ingest".into(),
            )),
        },
        VectorStoreSpec {
            name: "support-kb".into(),
            protocol: VectorProtocol::Qdrant,
            dimension: 768,
            initial: 312_000,
            rate: 0.0,
            capacity: 0,
            median_latency_s: 0.006,
            ingestion: None,
        },
    ]
}

/// The API key the simulated Pinecone index accepts (written to a file beside the
/// kubeconfig, which `sim --config-out` names).
pub const SIM_PINECONE_API_KEY: &str = "pcsk_sim_fleetdeck_0000";

#[derive(Debug)]
struct StoreState {
    rng: ChaCha8Rng,
    vectors: f64,
    stale: bool,
    /// Qdrant: search requests (ok, failed) and their latency histogram (per bucket, the
    /// last `+Inf`), sum.
    searches: u64,
    failed: u64,
    buckets: Vec<u64>,
    latency_sum: f64,
}

impl StoreState {
    fn lognormal(&mut self, median: f64) -> f64 {
        let u1: f64 = self.rng.r#gen();
        let u2: f64 = self.rng.r#gen();
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (TAU * u2).cos();
        median * (LATENCY_SIGMA * z).exp()
    }

    fn observe(&mut self, secs: f64) {
        let i = QDRANT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(QDRANT_BUCKETS.len());
        if let Some(c) = self.buckets.get_mut(i) {
            *c += 1;
        }
        self.searches += 1;
        self.latency_sum += secs;
    }

    fn count(&self) -> u64 {
        self.vectors.floor() as u64
    }
}

struct Store {
    spec: VectorStoreSpec,
    state: Mutex<StoreState>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // Every update is one step, so a poisoned lock still holds consistent counters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every simulated vector store and where its faults come from.
pub struct VectorSim {
    stores: Vec<Store>,
    by_name: HashMap<String, usize>,
    fleet: Arc<dyn FleetSource>,
    api_key: String,
}

/// FNV-1a, for seeding per store independently of std's hasher.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl VectorSim {
    pub fn new(
        specs: Vec<VectorStoreSpec>,
        fleet: Arc<dyn FleetSource>,
        seed: u64,
        api_key: &str,
    ) -> Self {
        let mut stores = Vec::with_capacity(specs.len());
        let mut by_name = HashMap::new();
        for spec in specs {
            by_name.insert(spec.name.clone(), stores.len());
            let state = StoreState {
                rng: ChaCha8Rng::seed_from_u64(seed ^ stable_hash(&spec.name)),
                vectors: spec.initial as f64,
                stale: false,
                searches: 0,
                failed: 0,
                buckets: vec![0; QDRANT_BUCKETS.len() + 1],
                latency_sum: 0.0,
            };
            stores.push(Store {
                spec,
                state: Mutex::new(state),
            });
        }
        VectorSim {
            stores,
            by_name,
            fleet,
            api_key: api_key.to_string(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.iter().map(|s| s.spec.name.as_str())
    }

    /// The store's vector count now; `None` for a name the sim does not serve.
    pub fn vector_count(&self, name: &str) -> Option<u64> {
        let i = self.by_name.get(name)?;
        Some(self.stores.get(*i)?.lock().count())
    }

    /// Advances ingestion and background queries by `dt` of sim time.
    pub fn tick(&self, dt: Duration) {
        let stale = self.fleet.faults().index_stale;
        // A stalled runtime must not replay hours of ingestion in one burst.
        let secs = dt.as_secs_f64().min(60.0);
        for s in &self.stores {
            let mut st = s.lock();
            st.stale = stale.contains(&s.spec.name);
            if !st.stale && s.spec.rate > 0.0 {
                // Batches land unevenly: between half and one and a half times the mean rate.
                let jitter = 0.5 + st.rng.r#gen::<f64>();
                st.vectors += s.spec.rate * secs * jitter;
            }
            if s.spec.protocol == VectorProtocol::Qdrant {
                let n = (3.0 * secs + st.rng.r#gen::<f64>()).floor() as u64;
                for _ in 0..n {
                    let latency = st.lognormal(s.spec.median_latency_s);
                    st.observe(latency);
                }
            }
        }
    }

    /// Drives [`tick`](Self::tick) every second until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            interval.tick().await;
            let now = tokio::time::Instant::now();
            self.tick(now - last);
            last = now;
        }
    }

    /// The HTTP server of one store; `None` for a name that is not configured.
    pub fn router(self: &Arc<Self>, name: &str) -> Option<Router> {
        let index = *self.by_name.get(name)?;
        let protocol = self.stores.get(index)?.spec.protocol;
        let ctx = Ctx {
            sim: Arc::clone(self),
            index,
        };
        let router = match protocol {
            VectorProtocol::Pinecone => Router::new()
                .route(
                    "/describe_index_stats",
                    post(pinecone_stats).get(pinecone_stats),
                )
                .route("/query", post(pinecone_query)),
            VectorProtocol::Qdrant => Router::new()
                .route("/healthz", get(|| async { "healthz check passed" }))
                .route("/livez", get(|| async { "healthz check passed" }))
                .route("/readyz", get(|| async { "all shards are ready" }))
                .route("/metrics", get(qdrant_metrics))
                .route("/collections/{name}", get(qdrant_collection))
                .route("/collections/{name}/points/search", post(qdrant_search))
                .route("/collections/{name}/points/query", post(qdrant_query)),
        };
        Some(router.fallback(not_found).with_state(ctx))
    }
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<VectorSim>,
    index: usize,
}

impl Ctx {
    fn store(&self) -> Option<&Store> {
        self.sim.stores.get(self.index)
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"code": 5, "message": "Not Found", "details": []}),
    )
}

/// Pinecone answers a missing or wrong key with 401 and a plain message.
fn pinecone_unauthorized(headers: &HeaderMap, key: &str) -> Option<Response> {
    let given = headers.get("api-key").and_then(|v| v.to_str().ok());
    (given != Some(key)).then(|| {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"code": 16, "message": "Invalid API Key", "details": []}),
        )
    })
}

async fn pinecone_stats(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Some(r) = pinecone_unauthorized(&headers, &ctx.sim.api_key) {
        return r;
    }
    let Some(store) = ctx.store() else {
        return not_found().await;
    };
    let total = store.lock().count();
    // Two namespaces, split the way the ingestion writes them (product docs and their FAQs).
    let faq = total / 5;
    let fullness = if store.spec.capacity > 0 {
        // Pinecone reports fullness at a granularity of about 10 %.
        ((total as f64 / store.spec.capacity as f64) * 10.0).floor() / 10.0
    } else {
        0.0
    };
    json_response(
        StatusCode::OK,
        json!({
            "namespaces": {"docs": {"vectorCount": total - faq}, "faq": {"vectorCount": faq}},
            "dimension": store.spec.dimension,
            "indexFullness": fullness,
            "totalVectorCount": total,
            "metric": "cosine",
            "vectorType": "dense",
        }),
    )
}

/// The query's vector (or its length), checked against the index's dimension as the real
/// index does: a wrong length is a 400.
fn vector_len(body: &Value, field: &str) -> Option<usize> {
    body[field].as_array().map(Vec::len)
}

async fn pinecone_query(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = pinecone_unauthorized(&headers, &ctx.sim.api_key) {
        return r;
    }
    let Some(store) = ctx.store() else {
        return not_found().await;
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 3, "message": "The request body is not valid JSON", "details": []}),
        );
    };
    let Some(top_k) = request["topK"]
        .as_u64()
        .filter(|k| (1..=10_000).contains(k))
    else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": 3, "message": "topK is required and must be between 1 and 10000", "details": []}),
        );
    };
    match vector_len(&request, "vector") {
        Some(n) if n == store.spec.dimension as usize => {}
        Some(n) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"code": 3, "message": format!("Vector dimension {n} does not match the dimension of the index {}", store.spec.dimension), "details": []}),
            );
        }
        None if request["id"].is_string() => {}
        None => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"code": 3, "message": "No query provided: give vector or id", "details": []}),
            );
        }
    }
    let (latency, matches) = {
        let mut st = store.lock();
        let latency = st.lognormal(store.spec.median_latency_s);
        let total = st.count().max(1);
        let matches: Vec<Value> = (0..top_k.min(total))
            .map(|i| {
                let id = st.rng.gen_range(0..total);
                json!({"id": format!("doc-{id}"), "score": 0.92 - 0.01 * i as f64, "values": []})
            })
            .collect();
        (latency, matches)
    };
    tokio::time::sleep(Duration::from_secs_f64(latency)).await;
    let namespace = request["namespace"].as_str().unwrap_or("").to_string();
    json_response(
        StatusCode::OK,
        json!({"results": [], "matches": matches, "namespace": namespace, "usage": {"readUnits": 5}}),
    )
}

/// Qdrant's envelope: `result`, `status`, and the server's own time in seconds.
fn qdrant_ok(result: Value, time: f64) -> Response {
    json_response(
        StatusCode::OK,
        json!({"result": result, "status": "ok", "time": time}),
    )
}

fn qdrant_missing(name: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"status": {"error": format!("Not found: Collection `{name}` doesn't exist!")}, "time": 0.0}),
    )
}

async fn qdrant_collection(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    let Some(store) = ctx.store().filter(|s| s.spec.name == name) else {
        return qdrant_missing(&name);
    };
    let (points, stale) = {
        let st = store.lock();
        (st.count(), st.stale)
    };
    // The optimizer indexes new points in batches; a collection that takes no writes is fully
    // indexed.
    let unindexed = if stale || store.spec.rate == 0.0 {
        0
    } else {
        (store.spec.rate * 20.0) as u64
    };
    qdrant_ok(
        json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": points.saturating_sub(unindexed),
            "points_count": points,
            "segments_count": 8,
            "config": {
                "params": {"vectors": {"size": store.spec.dimension, "distance": "Cosine"},
                    "shard_number": 1, "replication_factor": 1, "on_disk_payload": true},
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
            },
            "payload_schema": {},
        }),
        0.000_05,
    )
}

async fn qdrant_search_common(
    ctx: &Ctx,
    name: &str,
    body: &Bytes,
    field: &str,
) -> Result<(f64, Vec<Value>), Response> {
    let Some(store) = ctx.store().filter(|s| s.spec.name == name) else {
        return Err(qdrant_missing(name));
    };
    let bad = |message: String| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"status": {"error": format!("Wrong input: {message}")}, "time": 0.0}),
        )
    };
    let request: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let limit = request["limit"].as_u64().unwrap_or(10).max(1);
    match vector_len(&request, field) {
        Some(n) if n == store.spec.dimension as usize => {}
        Some(n) => {
            return Err(bad(format!(
                "Vector dimension error: expected dim: {}, got {n}",
                store.spec.dimension
            )));
        }
        None => return Err(bad(format!("missing field `{field}`"))),
    }
    let (latency, points) = {
        let mut st = store.lock();
        let latency = st.lognormal(store.spec.median_latency_s);
        st.observe(latency);
        let total = st.count().max(1);
        let points: Vec<Value> = (0..limit.min(total))
            .map(|i| json!({"id": st.rng.gen_range(0..total), "version": 3, "score": 0.88 - 0.01 * i as f64}))
            .collect();
        (latency, points)
    };
    tokio::time::sleep(Duration::from_secs_f64(latency)).await;
    Ok((latency, points))
}

async fn qdrant_search(State(ctx): State<Ctx>, Path(name): Path<String>, body: Bytes) -> Response {
    match qdrant_search_common(&ctx, &name, &body, "vector").await {
        Ok((time, points)) => qdrant_ok(json!(points), time),
        Err(r) => r,
    }
}

async fn qdrant_query(State(ctx): State<Ctx>, Path(name): Path<String>, body: Bytes) -> Response {
    match qdrant_search_common(&ctx, &name, &body, "query").await {
        Ok((time, points)) => qdrant_ok(json!({"points": points}), time),
        Err(r) => r,
    }
}

async fn qdrant_metrics(State(ctx): State<Ctx>) -> Response {
    let Some(store) = ctx.store() else {
        return not_found().await;
    };
    let st = store.lock();
    let name = &store.spec.name;
    let mut out = String::with_capacity(2048);
    let _ = writeln!(out, "# HELP app_info information about qdrant server");
    let _ = writeln!(out, "# TYPE app_info gauge");
    let _ = writeln!(out, "app_info{{name=\"qdrant\",version=\"1.16.2\"}} 1");
    let _ = writeln!(out, "# HELP collections_total number of collections");
    let _ = writeln!(out, "# TYPE collections_total gauge");
    let _ = writeln!(out, "collections_total 1");
    let _ = writeln!(
        out,
        "# HELP collections_vector_total total number of vectors in all collections"
    );
    let _ = writeln!(out, "# TYPE collections_vector_total gauge");
    let _ = writeln!(out, "collections_vector_total {}", st.count());
    let _ = writeln!(
        out,
        "# HELP collection_points approximate amount of points per collection"
    );
    let _ = writeln!(out, "# TYPE collection_points gauge");
    let _ = writeln!(out, "collection_points{{id=\"{name}\"}} {}", st.count());
    let endpoint = "/collections/{name}/points/search";
    let labels = format!("endpoint=\"{endpoint}\",method=\"POST\"");
    let _ = writeln!(
        out,
        "# HELP rest_responses_total total number of responses\n# TYPE rest_responses_total counter"
    );
    let _ = writeln!(
        out,
        "rest_responses_total{{{labels},status=\"200\"}} {}",
        st.searches - st.failed
    );
    let _ = writeln!(
        out,
        "# HELP rest_responses_fail_total total number of failed responses\n# TYPE rest_responses_fail_total counter"
    );
    let _ = writeln!(
        out,
        "rest_responses_fail_total{{{labels},status=\"500\"}} {}",
        st.failed
    );
    let _ = writeln!(
        out,
        "# HELP rest_responses_duration_seconds response duration histogram\n# TYPE rest_responses_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, c) in st.buckets.iter().enumerate() {
        cumulative += c;
        let le = QDRANT_BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "rest_responses_duration_seconds_bucket{{{labels},status=\"200\",le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "rest_responses_duration_seconds_sum{{{labels},status=\"200\"}} {}",
        st.latency_sum
    );
    let _ = writeln!(
        out,
        "rest_responses_duration_seconds_count{{{labels},status=\"200\"}} {}",
        st.searches
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::view::{ClusterView, FaultState};

    #[derive(Default)]
    struct Faults(Mutex<FaultState>);

    impl FleetSource for Faults {
        fn clusters(&self) -> Vec<ClusterView> {
            Vec::new()
        }
        fn faults(&self) -> FaultState {
            self.0.lock().map(|f| f.clone()).unwrap_or_default()
        }
    }

    fn setup() -> (Arc<Faults>, VectorSim) {
        let faults = Arc::new(Faults::default());
        let sim = VectorSim::new(
            vector_store_specs("prod-a"),
            faults.clone(),
            7,
            SIM_PINECONE_API_KEY,
        );
        (faults, sim)
    }

    #[test]
    fn the_index_grows_while_ingestion_writes_and_stays_flat_while_stale() {
        let (faults, sim) = setup();
        let start = sim.vector_count("docs-rag").unwrap_or(0);
        for _ in 0..10 {
            sim.tick(Duration::from_secs(1));
        }
        let grown = sim.vector_count("docs-rag").unwrap_or(0);
        assert!(grown > start + 200, "{start} → {grown}");
        assert_eq!(sim.vector_count("support-kb"), Some(312_000));
        if let Ok(mut f) = faults.0.lock() {
            f.index_stale.insert("docs-rag".into());
        }
        for _ in 0..10 {
            sim.tick(Duration::from_secs(1));
        }
        assert_eq!(sim.vector_count("docs-rag"), Some(grown));
        if let Ok(mut f) = faults.0.lock() {
            f.index_stale.clear();
        }
        sim.tick(Duration::from_secs(1));
        assert!(sim.vector_count("docs-rag").unwrap_or(0) > grown);
    }

    #[test]
    fn the_same_seed_ingests_the_same_vectors() {
        let (_, a) = setup();
        let (_, b) = setup();
        for _ in 0..30 {
            a.tick(Duration::from_millis(1000));
            b.tick(Duration::from_millis(1000));
        }
        assert_eq!(a.vector_count("docs-rag"), b.vector_count("docs-rag"));
    }

    async fn serve(sim: &Arc<VectorSim>, name: &str) -> std::net::SocketAddr {
        let router = sim
            .router(name)
            .unwrap_or_else(|| panic!("no router {name}"));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(l, router).await });
        addr
    }

    #[tokio::test]
    async fn pinecone_checks_its_key_and_answers_stats_and_queries_in_its_shapes() {
        let (_, sim) = setup();
        let sim = Arc::new(sim);
        let addr = serve(&sim, "docs-rag").await;
        let client = reqwest::Client::new();
        let url = |p: &str| format!("http://{addr}{p}");
        let r = client
            .post(url("/describe_index_stats"))
            .json(&json!({}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 401);
        let stats: Value = client
            .post(url("/describe_index_stats"))
            .header("Api-Key", SIM_PINECONE_API_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats["dimension"], 1024);
        let total = stats["totalVectorCount"].as_u64().unwrap_or(0);
        let by_ns: u64 = stats["namespaces"]
            .as_object()
            .map(|m| m.values().filter_map(|n| n["vectorCount"].as_u64()).sum())
            .unwrap_or(0);
        assert_eq!(total, by_ns);
        assert!(stats["indexFullness"].as_f64().is_some());
        let query = |v: Vec<f32>| {
            client
                .post(url("/query"))
                .header("Api-Key", SIM_PINECONE_API_KEY)
                .json(&json!({"vector": v, "topK": 1, "namespace": "docs"}))
                .send()
        };
        let r = query(vec![0.0; 1024])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["matches"].as_array().map(Vec::len), Some(1));
        let r = query(vec![0.0; 3]).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn qdrant_reports_collection_status_metrics_and_searches() {
        let (_, sim) = setup();
        let sim = Arc::new(sim);
        sim.tick(Duration::from_secs(5));
        let addr = serve(&sim, "support-kb").await;
        let client = reqwest::Client::new();
        let url = |p: &str| format!("http://{addr}{p}");
        let c: Value = client
            .get(url("/collections/support-kb"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c["result"]["status"], "green");
        assert_eq!(c["result"]["points_count"], 312_000);
        assert_eq!(c["result"]["indexed_vectors_count"], 312_000);
        let r = client
            .get(url("/collections/nope"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 404);
        let s: Value = client
            .post(url("/collections/support-kb/points/search"))
            .json(&json!({"vector": vec![0.0; 768], "limit": 1}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s["result"].as_array().map(Vec::len), Some(1));
        assert!(s["time"].as_f64().is_some_and(|t| t > 0.0));
        let metrics = client
            .get(url("/metrics"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(metrics.contains("collection_points{id=\"support-kb\"} 312000"));
        assert!(metrics.contains("rest_responses_duration_seconds_bucket{"));
    }
}
