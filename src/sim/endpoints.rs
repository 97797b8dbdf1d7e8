//! Simulated model-serving endpoints: KServe V2 and vLLM (OpenAI) HTTP protocols with Prometheus
//! metrics, whose health, latency and errors follow the Deployment that serves them. Imports
//! `sim::view` only.
//!
//! Behaviour per endpoint, from its Deployment and the injected faults:
//! - healthy: ready replicas and no `template_fault`;
//! - degraded (a bad rollout, `template_fault` set): latency ×[`DEGRADED_LATENCY_FACTOR`] and
//!   [`DEGRADED_ERROR_RATE`] of requests answer 500;
//! - dead (no ready replica, the Deployment is missing, or the endpoint is in
//!   `FaultState::endpoint_outage`): readiness and `/health` answer 503, every request 503.
//!   The HTTP server and `/metrics` stay up, as vLLM's API server does when its engine dies, so
//!   the cockpit sees the 503s climb.
//!
//! Health is read from the [`FleetSource`] once per [`EndpointSim::tick`] (one `clusters()` call for
//! all endpoints, since a view of a big fleet is expensive), so HTTP answers lag the cluster by at
//! most one tick. Requests arriving over HTTP are answered at once — the sampled latency is recorded
//! in the histograms but not slept — so tests and probes stay fast.

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::view::{ClusterView, EndpointSpec, FaultState, FleetSource};

/// How much slower a bad rollout answers (median and tail alike).
pub const DEGRADED_LATENCY_FACTOR: f64 = 4.0;
/// Share of requests a bad rollout fails with 500.
pub const DEGRADED_ERROR_RATE: f64 = 0.25;
/// A healthy server fails rarely, well inside a 99.9 % SLO.
const HEALTHY_ERROR_RATE: f64 = 0.0005;
/// Spread of the log-normal latency: p99 ≈ 2.85 × median.
const LATENCY_SIGMA: f64 = 0.45;

const VLLM_E2E_MEDIAN_S: f64 = 0.55;
const VLLM_TTFT_MEDIAN_S: f64 = 0.06;
const KSERVE_PREDICT_MEDIAN_S: f64 = 0.035;

/// The buckets vLLM declares for `vllm:e2e_request_latency_seconds`.
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// The buckets vLLM declares for `vllm:time_to_first_token_seconds`.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// prometheus_client's default buckets, which KServe's `request_*_seconds` histograms use.
const PROM_DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("endpoint {endpoint:?}: unknown protocol {protocol:?}; use kserve-v2 or vllm")]
    UnknownProtocol { endpoint: String, protocol: String },
    #[error("endpoint name {0:?} is configured twice; each endpoint needs its own name")]
    DuplicateName(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    KServeV2,
    Vllm,
}

impl Protocol {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "kserve-v2" => Some(Protocol::KServeV2),
            "vllm" => Some(Protocol::Vllm),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointHealth {
    Healthy,
    /// Serving a faulty template: slow and erroring.
    Degraded,
    /// No engine to serve.
    Dead,
}

fn health_of(spec: &EndpointSpec, clusters: &[ClusterView], faults: &FaultState) -> EndpointHealth {
    if faults.endpoint_outage.contains(&spec.name) {
        return EndpointHealth::Dead;
    }
    let deployment = clusters
        .iter()
        .filter(|c| c.name == spec.cluster)
        .flat_map(|c| &c.deployments)
        .find(|d| d.namespace == spec.namespace && d.name == spec.deployment);
    match deployment {
        None => EndpointHealth::Dead,
        Some(d) if d.ready_replicas == 0 => EndpointHealth::Dead,
        Some(d) if d.template_fault.is_some() => EndpointHealth::Degraded,
        Some(_) => EndpointHealth::Healthy,
    }
}

/// A cumulative Prometheus histogram.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `{name}_bucket…`, `_count`, `_sum` lines; `labels_with_le` puts `le` among the other labels
    /// where the exporter being imitated puts it.
    fn render(
        &self,
        out: &mut String,
        name: &str,
        labels_with_le: impl Fn(&str) -> String,
        labels: &str,
    ) {
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| py_float(*b));
            let _ = writeln!(
                out,
                "{name}_bucket{{{}}} {}",
                labels_with_le(&le),
                py_float(cumulative as f64)
            );
        }
        let _ = writeln!(
            out,
            "{name}_count{{{labels}}} {}",
            py_float(self.count as f64)
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", py_float(self.sum));
    }
}

/// Numbers as Python's prometheus_client prints them (`3.0`, `0.25`, `1.5e+09`-style is not
/// needed at these magnitudes).
fn py_float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What one simulated request came to.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Served {
        prompt_tokens: u64,
        generation_tokens: u64,
        finished_by_length: bool,
    },
    Failed(StatusCode),
}

#[derive(Debug)]
struct EndpointState {
    rng: ChaCha8Rng,
    health: EndpointHealth,
    /// Mean requests per second of background traffic.
    rate: f64,
    seq: u64,
    /// (handler, method, status) → requests.
    http: BTreeMap<(String, &'static str, u16), u64>,
    e2e: Histogram,
    ttft: Histogram,
    predict: Histogram,
    success_stop: u64,
    success_length: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
    running: f64,
    waiting: f64,
}

impl EndpointState {
    /// Standard log-normal draw scaled to `median` (Box–Muller; no rand_distr needed).
    fn lognormal(&mut self, median: f64) -> f64 {
        let u1: f64 = self.rng.r#gen();
        let u2: f64 = self.rng.r#gen();
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (TAU * u2).cos();
        median * (LATENCY_SIGMA * z).exp()
    }

    fn serve(&mut self, protocol: Protocol, handler: &str, method: &'static str) -> Outcome {
        self.seq += 1;
        let (slow, error_rate) = match self.health {
            EndpointHealth::Dead => {
                return self.count(
                    handler,
                    method,
                    Outcome::Failed(StatusCode::SERVICE_UNAVAILABLE),
                );
            }
            EndpointHealth::Degraded => (DEGRADED_LATENCY_FACTOR, DEGRADED_ERROR_RATE),
            EndpointHealth::Healthy => (1.0, HEALTHY_ERROR_RATE),
        };
        if self.rng.gen_bool(error_rate) {
            return self.count(
                handler,
                method,
                Outcome::Failed(StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        let outcome = match protocol {
            Protocol::Vllm => {
                let e2e = self.lognormal(VLLM_E2E_MEDIAN_S * slow);
                let ttft = self.lognormal(VLLM_TTFT_MEDIAN_S * slow).min(e2e);
                self.e2e.observe(e2e);
                self.ttft.observe(ttft);
                let prompt_tokens = self.rng.gen_range(40..=900);
                let generation_tokens = self.rng.gen_range(16..=256);
                let finished_by_length = generation_tokens == 256 || self.rng.gen_bool(0.15);
                self.prompt_tokens += prompt_tokens;
                self.generation_tokens += generation_tokens;
                if finished_by_length {
                    self.success_length += 1;
                } else {
                    self.success_stop += 1;
                }
                Outcome::Served {
                    prompt_tokens,
                    generation_tokens,
                    finished_by_length,
                }
            }
            Protocol::KServeV2 => {
                let latency = self.lognormal(KSERVE_PREDICT_MEDIAN_S * slow);
                self.predict.observe(latency);
                Outcome::Served {
                    prompt_tokens: 0,
                    generation_tokens: 0,
                    finished_by_length: false,
                }
            }
        };
        self.count(handler, method, outcome)
    }

    fn count(&mut self, handler: &str, method: &'static str, outcome: Outcome) -> Outcome {
        let status = match outcome {
            Outcome::Served { .. } => 200,
            Outcome::Failed(s) => s.as_u16(),
        };
        *self
            .http
            .entry((handler.to_string(), method, status))
            .or_insert(0) += 1;
        outcome
    }
}

struct Endpoint {
    spec: EndpointSpec,
    protocol: Protocol,
    state: Mutex<EndpointState>,
}

impl Endpoint {
    fn lock(&self) -> MutexGuard<'_, EndpointState> {
        // A panic in another request must not take the endpoint down with it; the counters
        // are still consistent because every update is a single step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// FNV-1a, for seeding per endpoint independently of std's hasher.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Every simulated endpoint, their counters, and where their behaviour comes from.
pub struct EndpointSim {
    endpoints: Vec<Endpoint>,
    by_name: HashMap<String, usize>,
    fleet: Arc<dyn FleetSource>,
}

impl EndpointSim {
    pub fn new(
        specs: Vec<EndpointSpec>,
        fleet: Arc<dyn FleetSource>,
        seed: u64,
    ) -> Result<Self, EndpointError> {
        let clusters = fleet.clusters();
        let faults = fleet.faults();
        let mut endpoints = Vec::with_capacity(specs.len());
        let mut by_name = HashMap::new();
        for spec in specs {
            let protocol =
                Protocol::parse(&spec.protocol).ok_or_else(|| EndpointError::UnknownProtocol {
                    endpoint: spec.name.clone(),
                    protocol: spec.protocol.clone(),
                })?;
            if by_name.insert(spec.name.clone(), endpoints.len()).is_some() {
                return Err(EndpointError::DuplicateName(spec.name));
            }
            let h = stable_hash(&spec.name);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ h);
            let rate = 2.0 + 3.0 * rng.r#gen::<f64>();
            let state = EndpointState {
                rng,
                health: health_of(&spec, &clusters, &faults),
                rate,
                seq: 0,
                http: BTreeMap::new(),
                e2e: Histogram::new(E2E_BUCKETS),
                ttft: Histogram::new(TTFT_BUCKETS),
                predict: Histogram::new(PROM_DEFAULT_BUCKETS),
                success_stop: 0,
                success_length: 0,
                prompt_tokens: 0,
                generation_tokens: 0,
                running: 0.0,
                waiting: 0.0,
            };
            endpoints.push(Endpoint {
                spec,
                protocol,
                state: Mutex::new(state),
            });
        }
        Ok(EndpointSim {
            endpoints,
            by_name,
            fleet,
        })
    }

    fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.by_name.get(name).and_then(|i| self.endpoints.get(*i))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|e| e.spec.name.as_str())
    }

    pub fn health(&self, endpoint: &str) -> Option<EndpointHealth> {
        self.endpoint(endpoint).map(|e| e.lock().health)
    }

    /// Re-reads every endpoint's health from the fleet (one `clusters()` call).
    pub fn refresh_health(&self) {
        let clusters = self.fleet.clusters();
        let faults = self.fleet.faults();
        for e in &self.endpoints {
            e.lock().health = health_of(&e.spec, &clusters, &faults);
        }
    }

    /// Advances background traffic by `dt`: refreshes health, then simulates the requests that
    /// arrived in that time and updates the in-flight gauges.
    pub fn tick(&self, dt: Duration) {
        self.refresh_health();
        // A stalled runtime (a suspended laptop) must not replay hours of traffic in one burst.
        let secs = dt.as_secs_f64().min(60.0);
        for e in &self.endpoints {
            let mut st = e.lock();
            let jitter: f64 = st.rng.r#gen();
            // floor(λ·dt + U) has mean λ·dt: no fractional carry to keep.
            let n = (st.rate * secs + jitter).floor() as u64;
            for _ in 0..n {
                match e.protocol {
                    Protocol::Vllm => {
                        let handler = if st.rng.gen_bool(0.7) {
                            "/v1/chat/completions"
                        } else {
                            "/v1/completions"
                        };
                        st.serve(e.protocol, handler, "POST");
                    }
                    Protocol::KServeV2 => {
                        st.serve(e.protocol, "/v2/models/{model_name}/infer", "POST");
                    }
                }
            }
            let median = match e.protocol {
                Protocol::Vllm => VLLM_E2E_MEDIAN_S,
                Protocol::KServeV2 => KSERVE_PREDICT_MEDIAN_S,
            };
            let noise = 0.7 + 0.6 * st.rng.r#gen::<f64>();
            // Little's law: in flight = arrival rate × time in system.
            let (running, waiting) = match st.health {
                EndpointHealth::Dead => (0.0, 0.0),
                EndpointHealth::Healthy => ((st.rate * median * noise).round(), 0.0),
                EndpointHealth::Degraded => {
                    let in_system = st.rate * median * DEGRADED_LATENCY_FACTOR * noise;
                    ((in_system * 0.6).round(), (in_system * 0.4).round())
                }
            };
            st.running = running;
            st.waiting = waiting;
        }
    }

    /// Drives [`tick`](Self::tick) every second until the task is dropped.
    pub async fn run_traffic(self: Arc<Self>) {
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

    /// The Prometheus text of one endpoint's `/metrics`.
    pub fn render_metrics(&self, endpoint: &str) -> Option<String> {
        let e = self.endpoint(endpoint)?;
        let st = e.lock();
        let model = escape_label(&e.spec.model);
        let mut out = String::with_capacity(8192);
        match e.protocol {
            Protocol::Vllm => render_vllm(&mut out, &st, &model),
            Protocol::KServeV2 => render_kserve(&mut out, &st, &model),
        }
        let _ = writeln!(
            out,
            "# HELP http_requests_total Total number of requests by method, status and handler."
        );
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for ((handler, method, status), n) in &st.http {
            let _ = writeln!(
                out,
                "http_requests_total{{handler=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape_label(handler),
                py_float(*n as f64)
            );
        }
        Some(out)
    }

    /// The HTTP server of one endpoint; `None` for a name that is not configured.
    pub fn router(self: &Arc<Self>, endpoint: &str) -> Option<Router> {
        let index = *self.by_name.get(endpoint)?;
        let protocol = self.endpoints.get(index)?.protocol;
        let ctx = Ctx {
            sim: Arc::clone(self),
            index,
        };
        let router = match protocol {
            Protocol::KServeV2 => Router::new()
                .route("/v2", get(kserve_server_metadata))
                .route("/v2/health/live", get(kserve_live))
                .route("/v2/health/ready", get(kserve_ready))
                .route("/v2/models/{model}", get(kserve_model_metadata))
                .route("/v2/models/{model}/ready", get(kserve_model_ready))
                .route("/v2/models/{model}/infer", post(kserve_infer)),
            Protocol::Vllm => Router::new()
                .route("/health", get(vllm_health))
                .route("/v1/models", get(vllm_models))
                .route("/v1/completions", post(vllm_completions))
                .route("/v1/chat/completions", post(vllm_chat_completions)),
        };
        Some(
            router
                .route("/metrics", get(metrics))
                .fallback(not_found)
                .with_state(ctx),
        )
    }
}

fn render_vllm(out: &mut String, st: &EndpointState, model: &str) {
    let labels = format!("engine=\"0\",model_name=\"{model}\"");
    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {}",
            py_float(v)
        );
    };
    gauge(
        out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        st.running,
    );
    gauge(
        out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        st.waiting,
    );
    for (name, help, v) in [
        (
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            st.prompt_tokens,
        ),
        (
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            st.generation_tokens,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {}",
            py_float(v as f64)
        );
    }
    let _ = writeln!(
        out,
        "# HELP vllm:request_success_total Count of successfully processed requests."
    );
    let _ = writeln!(out, "# TYPE vllm:request_success_total counter");
    for (reason, v) in [
        ("stop", st.success_stop),
        ("length", st.success_length),
        ("abort", 0),
        ("error", 0),
    ] {
        let _ = writeln!(
            out,
            "vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"{model}\"}} {}",
            py_float(v as f64)
        );
    }
    let with_le = |le: &str| format!("engine=\"0\",le=\"{le}\",model_name=\"{model}\"");
    let _ = writeln!(
        out,
        "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds."
    );
    let _ = writeln!(out, "# TYPE vllm:time_to_first_token_seconds histogram");
    st.ttft
        .render(out, "vllm:time_to_first_token_seconds", with_le, &labels);
    let _ = writeln!(
        out,
        "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds."
    );
    let _ = writeln!(out, "# TYPE vllm:e2e_request_latency_seconds histogram");
    st.e2e
        .render(out, "vllm:e2e_request_latency_seconds", with_le, &labels);
}

fn render_kserve(out: &mut String, st: &EndpointState, model: &str) {
    let labels = format!("model_name=\"{model}\"");
    let _ = writeln!(out, "# HELP request_predict_seconds predict latency");
    let _ = writeln!(out, "# TYPE request_predict_seconds histogram");
    st.predict.render(
        out,
        "request_predict_seconds",
        |le| format!("le=\"{le}\",model_name=\"{model}\""),
        &labels,
    );
}

#[derive(Clone)]
struct Ctx {
    sim: Arc<EndpointSim>,
    index: usize,
}

impl Ctx {
    fn endpoint(&self) -> Option<&Endpoint> {
        self.sim.endpoints.get(self.index)
    }

    fn health(&self) -> EndpointHealth {
        self.endpoint()
            .map_or(EndpointHealth::Dead, |e| e.lock().health)
    }

    fn model(&self) -> &str {
        self.endpoint().map_or("", |e| e.spec.model.as_str())
    }

    /// Serves one request; also returns its sequence number, taken under the same lock so
    /// concurrent requests get distinct ids.
    fn serve(&self, handler: &str) -> (Outcome, u64) {
        match self.endpoint() {
            Some(e) => {
                let mut st = e.lock();
                (st.serve(e.protocol, handler, "POST"), st.seq)
            }
            None => (Outcome::Failed(StatusCode::SERVICE_UNAVAILABLE), 0),
        }
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, json!({"error": "Not Found"}))
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let name = ctx
        .endpoint()
        .map(|e| e.spec.name.clone())
        .unwrap_or_default();
    match ctx.sim.render_metrics(&name) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => json_response(StatusCode::NOT_FOUND, json!({"error": "Not Found"})),
    }
}

// ---- KServe V2 (Open Inference Protocol) ----

fn kserve_unknown_model(model: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": format!("Model with name {model} does not exist.")}),
    )
}

async fn kserve_server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        json!({"name": "fleetdeck-sim", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
    )
}

async fn kserve_live() -> Response {
    json_response(StatusCode::OK, json!({"live": true}))
}

async fn kserve_ready(State(ctx): State<Ctx>) -> Response {
    let ready = ctx.health() != EndpointHealth::Dead;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, json!({"ready": ready}))
}

async fn kserve_model_ready(State(ctx): State<Ctx>, Path(model): Path<String>) -> Response {
    if model != ctx.model() {
        return kserve_unknown_model(&model);
    }
    let ready = ctx.health() != EndpointHealth::Dead;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, json!({"name": model, "ready": ready}))
}

async fn kserve_model_metadata(State(ctx): State<Ctx>, Path(model): Path<String>) -> Response {
    if model != ctx.model() {
        return kserve_unknown_model(&model);
    }
    json_response(
        StatusCode::OK,
        json!({
            "name": model,
            "versions": ["1"],
            "platform": "fleetdeck-sim",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 1]}],
        }),
    )
}

async fn kserve_infer(State(ctx): State<Ctx>, Path(model): Path<String>, body: Bytes) -> Response {
    if model != ctx.model() {
        return kserve_unknown_model(&model);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("invalid JSON body: {e}")}),
            );
        }
    };
    let batch = request["inputs"][0]["shape"][0]
        .as_u64()
        .unwrap_or(1)
        .clamp(1, 1024);
    let (outcome, seq) = ctx.serve("/v2/models/{model_name}/infer");
    match outcome {
        Outcome::Failed(status) => json_response(status, json!({"error": failure_message(status)})),
        Outcome::Served { .. } => {
            let id = request["id"]
                .as_str()
                .map_or_else(|| format!("sim-{seq}"), str::to_string);
            let data: Vec<f64> = (0..batch).map(|i| 0.5 + 0.01 * i as f64).collect();
            json_response(
                StatusCode::OK,
                json!({
                    "model_name": model,
                    "model_version": "1",
                    "id": id,
                    "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [batch, 1], "data": data}],
                }),
            )
        }
    }
}

fn failure_message(status: StatusCode) -> &'static str {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        "engine is not running"
    } else {
        "internal server error in the model"
    }
}

// ---- vLLM (OpenAI-compatible) ----

fn openai_error(status: StatusCode, kind: &str, message: String) -> Response {
    json_response(
        status,
        json!({"object": "error", "message": message, "type": kind, "param": null, "code": status.as_u16()}),
    )
}

async fn vllm_health(State(ctx): State<Ctx>) -> Response {
    if ctx.health() == EndpointHealth::Dead {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

async fn vllm_models(State(ctx): State<Ctx>) -> Response {
    let model = ctx.model();
    json_response(
        StatusCode::OK,
        json!({
            "object": "list",
            "data": [{
                "id": model,
                "object": "model",
                "created": chrono::Utc::now().timestamp(),
                "owned_by": "vllm",
                "root": model,
                "parent": null,
                "max_model_len": 8192,
                "permission": [],
            }],
        }),
    )
}

/// Checks the body and model, serves the request, and hands the outcome to `answer`.
fn openai_request(
    ctx: &Ctx,
    handler: &str,
    body: &Bytes,
    answer: impl FnOnce(&str, u64, u64, u64, bool) -> Value,
) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "BadRequestError",
                format!("invalid JSON body: {e}"),
            );
        }
    };
    let model = ctx.model().to_string();
    if let Some(asked) = request["model"].as_str()
        && asked != model
    {
        return openai_error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            format!("The model `{asked}` does not exist."),
        );
    }
    let (outcome, seq) = ctx.serve(handler);
    match outcome {
        Outcome::Failed(status) => {
            let kind = if status == StatusCode::SERVICE_UNAVAILABLE {
                "ServiceUnavailableError"
            } else {
                "InternalServerError"
            };
            openai_error(status, kind, failure_message(status).to_string())
        }
        Outcome::Served {
            prompt_tokens,
            generation_tokens,
            finished_by_length,
        } => {
            let cap = request["max_tokens"].as_u64().unwrap_or(u64::MAX).max(1);
            let generated = generation_tokens.min(cap);
            json_response(
                StatusCode::OK,
                answer(
                    &model,
                    seq,
                    prompt_tokens,
                    generated,
                    finished_by_length || generated == cap,
                ),
            )
        }
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion})
}

async fn vllm_completions(State(ctx): State<Ctx>, body: Bytes) -> Response {
    openai_request(
        &ctx,
        "/v1/completions",
        &body,
        |model, seq, prompt, generated, by_length| {
            json!({
                "id": format!("cmpl-sim-{seq}"),
                "object": "text_completion",
                "created": chrono::Utc::now().timestamp(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "text": " simulated completion.",
                    "logprobs": null,
                    "finish_reason": if by_length { "length" } else { "stop" },
                    "stop_reason": null,
                }],
                "usage": usage(prompt, generated),
            })
        },
    )
}

async fn vllm_chat_completions(State(ctx): State<Ctx>, body: Bytes) -> Response {
    openai_request(
        &ctx,
        "/v1/chat/completions",
        &body,
        |model, seq, prompt, generated, by_length| {
            json!({
                "id": format!("chatcmpl-sim-{seq}"),
                "object": "chat.completion",
                "created": chrono::Utc::now().timestamp(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "A simulated answer."},
                    "logprobs": null,
                    "finish_reason": if by_length { "length" } else { "stop" },
                    "stop_reason": null,
                }],
                "usage": usage(prompt, generated),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::sim::dcgm::tests::{Exposition, parse_exposition};
    use crate::sim::view::DeploymentView;

    /// A fleet whose deployments the test can change.
    struct FakeFleet {
        clusters: Mutex<Vec<ClusterView>>,
        faults: Mutex<FaultState>,
    }

    impl FleetSource for FakeFleet {
        fn clusters(&self) -> Vec<ClusterView> {
            self.clusters.lock().map(|c| c.clone()).unwrap_or_default()
        }
        fn faults(&self) -> FaultState {
            self.faults.lock().map(|f| f.clone()).unwrap_or_default()
        }
    }

    impl FakeFleet {
        fn set_ready(&self, deployment: &str, ready: u32) {
            if let Ok(mut cs) = self.clusters.lock() {
                for d in cs.iter_mut().flat_map(|c| c.deployments.iter_mut()) {
                    if d.name == deployment {
                        d.ready_replicas = ready;
                    }
                }
            }
        }
    }

    fn deployment(name: &str, fault: Option<&str>) -> DeploymentView {
        DeploymentView {
            cluster: "c1".into(),
            namespace: "serving".into(),
            name: name.into(),
            revision: 3,
            replicas: 2,
            ready_replicas: 2,
            image: "vllm/vllm-openai:v0.6.3".into(),
            template_fault: fault.map(str::to_string),
        }
    }

    fn spec(name: &str, protocol: &str, deployment: &str) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            protocol: protocol.into(),
            model: format!("{name}-model"),
            cluster: "c1".into(),
            namespace: "serving".into(),
            deployment: deployment.into(),
        }
    }

    fn setup(seed: u64) -> (Arc<FakeFleet>, Arc<EndpointSim>) {
        let fleet = Arc::new(FakeFleet {
            clusters: Mutex::new(vec![ClusterView {
                name: "c1".into(),
                nodes: vec![],
                pods: vec![],
                deployments: vec![
                    deployment("good", None),
                    deployment("bad", Some("bad-rollout")),
                    deployment("iris", None),
                ],
            }]),
            faults: Mutex::new(FaultState::default()),
        });
        let specs = vec![
            spec("chat", "vllm", "good"),
            spec("chat-canary", "vllm", "bad"),
            spec("iris", "kserve-v2", "iris"),
        ];
        let sim = EndpointSim::new(specs, fleet.clone(), seed).unwrap_or_else(|e| panic!("{e}"));
        (fleet, Arc::new(sim))
    }

    fn exposition(sim: &EndpointSim, name: &str) -> Exposition {
        let text = sim
            .render_metrics(name)
            .unwrap_or_else(|| panic!("no endpoint {name}"));
        parse_exposition(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// histogram_quantile as Prometheus computes it: linear inside the bucket.
    fn quantile(e: &Exposition, family: &str, q: f64) -> f64 {
        let mut buckets: Vec<(f64, f64)> = e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
            .map(|s| {
                let le = Exposition::label(s, "le").unwrap_or("+Inf");
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::NAN)
                    },
                    s.value,
                )
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().map_or(0.0, |b| b.1);
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (le, count) in buckets {
            if count >= rank {
                return if le.is_infinite() {
                    lower
                } else {
                    lower + (le - lower) * (rank - below) / (count - below)
                };
            }
            (lower, below) = (le, count);
        }
        f64::NAN
    }

    fn http_count(e: &Exposition, status: &str) -> f64 {
        e.samples
            .iter()
            .filter(|s| {
                s.name == "http_requests_total" && Exposition::label(s, "status") == Some(status)
            })
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn a_bad_rollout_is_several_times_slower_and_fails_a_quarter_of_requests() {
        let (_, sim) = setup(7);
        for _ in 0..900 {
            sim.tick(Duration::from_secs(1));
        }
        let good = exposition(&sim, "chat");
        let bad = exposition(&sim, "chat-canary");
        let (p99_good, p99_bad) = (
            quantile(&good, "vllm:e2e_request_latency_seconds", 0.99),
            quantile(&bad, "vllm:e2e_request_latency_seconds", 0.99),
        );
        assert!(p99_good < 2.0, "healthy p99 {p99_good}");
        assert!(p99_bad > 2.0 * 2.0, "bad p99 {p99_bad}");
        let factor = p99_bad / p99_good;
        assert!(
            (DEGRADED_LATENCY_FACTOR * 0.6..=DEGRADED_LATENCY_FACTOR * 1.6).contains(&factor),
            "p99 factor {factor}"
        );
        let ttft_factor = quantile(&bad, "vllm:time_to_first_token_seconds", 0.5)
            / quantile(&good, "vllm:time_to_first_token_seconds", 0.5);
        assert!(ttft_factor > 2.0, "ttft factor {ttft_factor}");
        let bad_error_share =
            http_count(&bad, "500") / (http_count(&bad, "500") + http_count(&bad, "200"));
        assert!(
            (0.18..=0.32).contains(&bad_error_share),
            "{bad_error_share}"
        );
        assert!(http_count(&good, "500") <= 0.01 * http_count(&good, "200"));
    }

    #[test]
    fn a_healthy_endpoint_stays_inside_the_slos_the_demo_gives_it() {
        // The demo's SLOs (cli::wiring::SimSources): 99.9 % available, p99 under 2.5 s. Six
        // hours of traffic must spend less than the budget, or a healthy fleet would burn.
        let (_, sim) = setup(3);
        for _ in 0..360 {
            sim.tick(Duration::from_secs(60));
        }
        let healthy = exposition(&sim, "chat");
        let (ok, failed) = (http_count(&healthy, "200"), http_count(&healthy, "500"));
        assert!(ok > 10_000.0, "{ok} requests");
        let error_share = failed / (ok + failed);
        assert!(
            error_share < 0.001,
            "error share {error_share} against a 0.1 % budget"
        );
        let slow_share = 1.0
            - healthy
                .samples
                .iter()
                .find(|s| {
                    s.name == "vllm:e2e_request_latency_seconds_bucket"
                        && Exposition::label(s, "le") == Some("2.5")
                })
                .map_or(0.0, |s| s.value)
                / healthy
                    .samples
                    .iter()
                    .find(|s| s.name == "vllm:e2e_request_latency_seconds_count")
                    .map_or(f64::NAN, |s| s.value);
        assert!(
            slow_share < 0.01,
            "{slow_share} slower than 2.5 s against a 1 % budget"
        );
    }

    #[test]
    fn metrics_parse_with_one_help_and_type_per_family_and_counters_only_grow() {
        let (_, sim) = setup(1);
        sim.tick(Duration::from_secs(30));
        let before = exposition(&sim, "chat");
        for _ in 0..30 {
            sim.tick(Duration::from_secs(1));
        }
        let after = exposition(&sim, "chat");
        let names: Vec<&str> = after.types.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), names.iter().collect::<HashSet<_>>().len());
        assert_eq!(after.help.len(), after.types.len());
        for required in [
            "vllm:e2e_request_latency_seconds",
            "vllm:time_to_first_token_seconds",
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:request_success_total",
            "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total",
            "http_requests_total",
        ] {
            assert!(names.contains(&required), "{required}");
        }
        let is_counter = |n: &str| {
            n.ends_with("_total")
                || n.ends_with("_bucket")
                || n.ends_with("_count")
                || n.ends_with("_sum")
        };
        for b in before.samples.iter().filter(|s| is_counter(&s.name)) {
            let a = after
                .samples
                .iter()
                .find(|s| s.name == b.name && s.labels == b.labels)
                .unwrap_or_else(|| panic!("{b:?} vanished"));
            assert!(a.value >= b.value, "{} went down", b.name);
        }
        // Cumulative buckets, +Inf equal to _count.
        let buckets: Vec<f64> = after
            .samples
            .iter()
            .filter(|s| s.name == "vllm:e2e_request_latency_seconds_bucket")
            .map(|s| s.value)
            .collect();
        assert_eq!(buckets.len(), E2E_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        let count = after
            .samples
            .iter()
            .find(|s| s.name == "vllm:e2e_request_latency_seconds_count")
            .map_or(0.0, |s| s.value);
        assert_eq!(buckets.last().copied(), Some(count));
        assert!(count > 50.0);
    }

    #[test]
    fn vllm_metrics_have_the_shape_of_a_real_vllm() {
        let fixture = parse_exposition(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vllm-metrics.txt"
        )))
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, sim) = setup(2);
        sim.tick(Duration::from_secs(10));
        let ours = exposition(&sim, "chat");
        for (name, kind) in &ours.types {
            let real = fixture
                .types
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| k);
            assert_eq!(real, Some(kind), "{name}");
            let help = |e: &Exposition| {
                e.help
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, h)| h.trim().to_string())
            };
            assert_eq!(help(&ours), help(&fixture), "{name}");
        }
        let le_of = |e: &Exposition, family: &str| -> Vec<String> {
            e.samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
                .filter_map(|s| Exposition::label(s, "le").map(str::to_string))
                .collect()
        };
        for family in [
            "vllm:e2e_request_latency_seconds",
            "vllm:time_to_first_token_seconds",
        ] {
            assert_eq!(le_of(&ours, family), le_of(&fixture, family), "{family}");
        }
        let keys = |s: &crate::sim::dcgm::tests::Sample| {
            s.labels.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
        };
        let real_bucket = fixture
            .samples
            .iter()
            .find(|s| s.name == "vllm:e2e_request_latency_seconds_bucket");
        let our_bucket = ours
            .samples
            .iter()
            .find(|s| s.name == "vllm:e2e_request_latency_seconds_bucket");
        assert_eq!(our_bucket.map(keys), real_bucket.map(keys));
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let run = |seed| {
            let (_, sim) = setup(seed);
            for _ in 0..60 {
                sim.tick(Duration::from_secs(1));
            }
            sim.render_metrics("chat").unwrap_or_default()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn configuration_mistakes_are_errors() {
        let fleet: Arc<dyn FleetSource> = setup(0).0;
        let err = EndpointSim::new(vec![spec("x", "grpc", "good")], fleet.clone(), 0).err();
        assert_eq!(
            err,
            Some(EndpointError::UnknownProtocol {
                endpoint: "x".into(),
                protocol: "grpc".into()
            })
        );
        let err = EndpointSim::new(
            vec![spec("x", "vllm", "good"), spec("x", "vllm", "good")],
            fleet,
            0,
        )
        .err();
        assert_eq!(err, Some(EndpointError::DuplicateName("x".into())));
        assert!(setup(0).1.router("nope").is_none());
    }

    async fn serve(sim: &Arc<EndpointSim>, name: &str) -> SocketAddr {
        let router = sim
            .router(name)
            .unwrap_or_else(|| panic!("no router {name}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    /// A one-shot HTTP/1.1 exchange; enough for status and a small JSON body.
    async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut raw = String::new();
        s.read_to_string(&mut raw)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn parse_json(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[tokio::test]
    async fn vllm_health_is_503_when_no_replica_is_ready_and_heals_after() {
        let (fleet, sim) = setup(3);
        let addr = serve(&sim, "chat").await;
        assert_eq!(call(addr, "GET", "/health", "").await.0, 200);
        fleet.set_ready("good", 0);
        sim.refresh_health();
        assert_eq!(call(addr, "GET", "/health", "").await.0, 503);
        let (status, body) = call(
            addr,
            "POST",
            "/v1/completions",
            r#"{"model":"chat-model","prompt":"hi"}"#,
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(parse_json(&body)["code"], 503);
        fleet.set_ready("good", 1);
        sim.tick(Duration::from_secs(1));
        assert_eq!(call(addr, "GET", "/health", "").await.0, 200);
        let (_, metrics) = call(addr, "GET", "/metrics", "").await;
        let e = parse_exposition(&metrics).unwrap_or_else(|e| panic!("{e}"));
        assert!(http_count(&e, "503") >= 1.0);
    }

    #[tokio::test]
    async fn vllm_answers_openai_shapes_and_404_for_an_unknown_model() {
        let (_, sim) = setup(4);
        let addr = serve(&sim, "chat").await;
        let models = parse_json(&call(addr, "GET", "/v1/models", "").await.1);
        assert_eq!(models["object"], "list");
        assert_eq!(models["data"][0]["id"], "chat-model");
        let (status, body) = call(
            addr,
            "POST",
            "/v1/completions",
            r#"{"model":"gpt-9","prompt":"hi"}"#,
        )
        .await;
        assert_eq!(status, 404);
        let err = parse_json(&body);
        assert_eq!(err["type"], "NotFoundError");
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .contains("gpt-9")
        );
        let (status, body) = call(
            addr,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"chat-model","messages":[{"role":"user","content":"hi"}],"max_tokens":8}"#,
        )
        .await;
        assert!(status == 200 || status == 500, "{status}");
        if status == 200 {
            let v = parse_json(&body);
            assert_eq!(v["object"], "chat.completion");
            assert!(v["usage"]["completion_tokens"].as_u64().unwrap_or(99) <= 8);
        }
        assert_eq!(
            call(addr, "POST", "/v1/completions", "not json").await.0,
            400
        );
        let (status, body) = call(addr, "GET", "/nowhere", "").await;
        assert_eq!(status, 404);
        assert!(parse_json(&body).is_object());
    }

    #[tokio::test]
    async fn kserve_v2_reports_readiness_metadata_and_infers() {
        let (fleet, sim) = setup(5);
        let addr = serve(&sim, "iris").await;
        assert_eq!(call(addr, "GET", "/v2/health/live", "").await.0, 200);
        assert_eq!(call(addr, "GET", "/v2/health/ready", "").await.0, 200);
        assert_eq!(
            call(addr, "GET", "/v2/models/iris-model/ready", "").await.0,
            200
        );
        let (status, body) = call(addr, "GET", "/v2/models/resnet/ready", "").await;
        assert_eq!(status, 404);
        assert!(
            parse_json(&body)["error"]
                .as_str()
                .unwrap_or_default()
                .contains("resnet")
        );
        assert_eq!(
            parse_json(&call(addr, "GET", "/v2/models/iris-model", "").await.1)["name"],
            "iris-model"
        );
        assert!(parse_json(&call(addr, "GET", "/v2", "").await.1)["version"].is_string());
        let infer = r#"{"id":"req-1","inputs":[{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}"#;
        let (status, body) = call(addr, "POST", "/v2/models/iris-model/infer", infer).await;
        assert!(status == 200 || status == 500, "{status}");
        if status == 200 {
            let v = parse_json(&body);
            assert_eq!(v["id"], "req-1");
            assert_eq!(v["outputs"][0]["shape"], json!([2, 1]));
        }
        if let Ok(mut f) = fleet.faults.lock() {
            f.endpoint_outage.insert("iris".into());
        }
        sim.tick(Duration::from_secs(5));
        assert_eq!(
            call(addr, "GET", "/v2/health/live", "").await.0,
            200,
            "the process still runs"
        );
        assert_eq!(call(addr, "GET", "/v2/health/ready", "").await.0, 503);
        assert_eq!(
            call(addr, "GET", "/v2/models/iris-model/ready", "").await.0,
            503
        );
        let (_, metrics) = call(addr, "GET", "/metrics", "").await;
        let e = parse_exposition(&metrics).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            e.types
                .iter()
                .any(|(n, k)| n == "request_predict_seconds" && k == "histogram")
        );
        assert!(http_count(&e, "200") + http_count(&e, "500") >= 1.0);
        assert_eq!(sim.health("iris"), Some(EndpointHealth::Dead));
    }
}
