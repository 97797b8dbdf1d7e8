//! Model endpoints and vector stores: how one is configured (protocol, serving object, SLO,
//! drift metric; a vector store's index, key file, probe vector and ingestion), the latest
//! picture of it (probes, metrics, SLO burn, drift; a vector store's count and its growth) and
//! the burn-rate and drift result types. Plain serde data; imports nothing of the crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the cockpit talks to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndpointProtocol {
    /// KServe's V2 / Open Inference Protocol (`/v2/health/*`, `/v2/models/{m}/ready`).
    #[serde(rename = "kserve-v2")]
    KServeV2,
    /// vLLM's OpenAI-compatible server (`/health`, `/v1/models`).
    #[serde(rename = "vllm")]
    Vllm,
    /// NVIDIA Triton: speaks KServe V2 for health; its own `nv_inference_*` metrics.
    #[serde(rename = "triton")]
    Triton,
    /// Anything else: a plain GET of the URL.
    #[serde(rename = "http")]
    Http,
    /// A Pinecone index's data plane (the index host): `describe_index_stats` and `query`.
    #[serde(rename = "pinecone")]
    Pinecone,
    /// A Qdrant node: a collection's status and a search, `/metrics`.
    #[serde(rename = "qdrant")]
    Qdrant,
}

impl EndpointProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointProtocol::KServeV2 => "kserve-v2",
            EndpointProtocol::Vllm => "vllm",
            EndpointProtocol::Triton => "triton",
            EndpointProtocol::Http => "http",
            EndpointProtocol::Pinecone => "pinecone",
            EndpointProtocol::Qdrant => "qdrant",
        }
    }

    /// A vector store rather than a model server: its probe is a query, its picture a vector
    /// count.
    pub fn is_vector_store(self) -> bool {
        matches!(self, EndpointProtocol::Pinecone | EndpointProtocol::Qdrant)
    }
}

/// How the cockpit reaches a vector store's data (`[endpoints.vector]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorStoreConfig {
    /// The Qdrant collection (required for `qdrant`); for `pinecone` the index's name, shown
    /// only: the URL is the index's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Pinecone: the namespace the probe queries (default the index's default namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A file holding the API key (Pinecone's `Api-Key`, Qdrant's `api-key`). Read at each
    /// poll, never printed; a key with read access is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<String>,
    /// The vector the probe queries with (top_k 1); default a zero vector of the index's
    /// dimension, as the index reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_vector: Option<Vec<f32>>,
}

/// What writes into a vector store, so a flat vector count can be told from an idle one.
/// `job` is judged today (the Kubernetes Job's state in the snapshot); `dag` names the
/// Airflow DAG that runs the ingestion, for the Airflow source to report on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestionRef {
    /// The kubeconfig context of `job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A Job's name, or a CronJob's (whose Jobs are named `<cronjob>-<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<String>,
}

/// Qdrant's collection status (`result.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionStatus {
    /// Every segment optimised.
    Green,
    /// Optimising: searches work, maybe slower.
    Yellow,
    /// Optimisations pending until the next update.
    Grey,
    /// An optimisation failed: the collection needs an operator.
    Red,
}

impl CollectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionStatus::Green => "green",
            CollectionStatus::Yellow => "yellow",
            CollectionStatus::Grey => "grey",
            CollectionStatus::Red => "red",
        }
    }
}

/// What one read of a vector store's statistics said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorReading {
    pub at: DateTime<Utc>,
    /// Pinecone's `totalVectorCount`, Qdrant's `points_count`.
    pub count: u64,
    pub dimension: Option<u32>,
    /// Pinecone's `indexFullness` (0–1; pod-based and dedicated indexes).
    pub fullness: Option<f64>,
    /// Qdrant's `indexed_vectors_count`.
    pub indexed: Option<u64>,
    pub status: Option<CollectionStatus>,
}

/// A vector store's count over time, as the endpoint source keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorModel {
    /// The latest good reading.
    pub latest: Option<VectorReading>,
    /// When the count last grew; the first reading's time until it does.
    pub grew_at: Option<DateTime<Utc>>,
    /// Vectors a minute over the metrics window (`None` until two readings).
    pub growth_per_min: Option<f64>,
    /// Why the latest read failed; `None` after a good one.
    pub error: Option<String>,
}

/// The Kubernetes object that serves an endpoint (a Deployment, an InferenceService…), so a
/// runbook knows what to roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingObject {
    /// The kubeconfig context.
    pub cluster: String,
    pub namespace: String,
    /// e.g. `Deployment`, `InferenceService`.
    pub kind: String,
    pub name: String,
}

/// Which latency percentile an SLO is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyPercentile {
    P50,
    P90,
    P95,
    P99,
    P999,
}

impl LatencyPercentile {
    /// The quantile, e.g. 0.99 for p99; also the share of requests that must be fast enough.
    pub fn quantile(self) -> f64 {
        match self {
            LatencyPercentile::P50 => 0.5,
            LatencyPercentile::P90 => 0.9,
            LatencyPercentile::P95 => 0.95,
            LatencyPercentile::P99 => 0.99,
            LatencyPercentile::P999 => 0.999,
        }
    }
}

/// "p99 of requests answer within `target_ms`".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySlo {
    pub percentile: LatencyPercentile,
    pub target_ms: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySlo>,
    /// Share of requests (or probes) that must succeed, e.g. 0.999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
}

/// Population stability of one histogram metric: a baseline window against the latest one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// A histogram family of the endpoint's `/metrics`, e.g. `vllm:e2e_request_latency_seconds`.
    pub metric: String,
    /// Length of both windows: the baseline is the first `window_secs` observed, the current
    /// window the latest `window_secs`.
    #[serde(default = "DriftConfig::default_window_secs")]
    pub window_secs: u64,
}

impl DriftConfig {
    fn default_window_secs() -> u64 {
        3600
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    /// Base URL, e.g. `http://llama-chat.serving:8000`.
    pub url: String,
    pub protocol: EndpointProtocol,
    /// The model the endpoint serves, as its protocol names it (`/v2/models/{model}/ready`,
    /// vLLM's `/v1/models` ids, the `model_name`/`model` metric label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where Prometheus metrics are; default `{url}/metrics` (not for `http`). Triton serves
    /// them on another port (8002).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingObject>,
    #[serde(default)]
    pub slo: SloConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftConfig>,
    /// The registered model (MLflow) the endpoint serves; else the serving object's
    /// `fleetdeck.io/registered-model` annotation names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<super::registry::RegistryRef>,
    /// A vector store's index, key and probe vector (`pinecone`, `qdrant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorStoreConfig>,
    /// What writes into a vector store (`vector.index_stale` needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingestion: Option<IngestionRef>,
}

/// What the probes concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointHealth {
    /// Not probed yet.
    #[default]
    Unknown,
    Healthy,
    /// The server is up but not ready, or the model is not loaded.
    NotReady,
    /// The server answers but says its engine is dead (vLLM `/health` 503, KServe not live).
    Dead,
    /// No answer at all: refused, timed out, DNS.
    Unreachable,
}

/// The latest probe of an endpoint. Fields a protocol has no probe for are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub at: DateTime<Utc>,
    pub health: EndpointHealth,
    pub live: Option<bool>,
    pub ready: Option<bool>,
    pub model_ready: Option<bool>,
    /// vLLM's `/health`: 200 alive, 503 engine dead.
    pub engine_alive: Option<bool>,
    /// How long the main probe (readiness, `/health`, the plain GET) took.
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

/// Figures from the endpoint's `/metrics` over the latest window (counter differences between
/// scrapes, like PromQL's `increase` over `window_secs`); gauges as last scraped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointMetrics {
    pub window_secs: f64,
    pub requests: f64,
    pub errors: f64,
    pub error_rate: Option<f64>,
    pub throughput_rps: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// Requests in the running batch (vLLM `num_requests_running`).
    pub queue_running: Option<f64>,
    /// Requests queued (vLLM `num_requests_waiting`, Triton pending requests).
    pub queue_waiting: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SloKind {
    Availability,
    Latency,
}

/// Google SRE workbook alert classes: a page wakes someone, a ticket waits for working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BurnSeverity {
    Ticket,
    Page,
}

/// How fast the error budget burned over one window: 1.0 spends exactly the budget over the SLO
/// period; `None` when the window saw no events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurnWindow {
    pub window_secs: f64,
    pub good: f64,
    pub total: f64,
    pub burn_rate: Option<f64>,
}

/// A multiwindow rule that fired: both windows burned at least `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BurnAlert {
    pub severity: BurnSeverity,
    pub threshold: f64,
    pub long: BurnWindow,
    pub short: BurnWindow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloBurn {
    pub kind: SloKind,
    /// e.g. 0.999.
    pub objective: f64,
    pub evaluated_at: DateTime<Utc>,
    /// Every window any rule uses, shortest first.
    pub windows: Vec<BurnWindow>,
    /// How much time the SLI history behind the windows covers: a fresh process has minutes
    /// of data in every window, however long the window is.
    #[serde(default)]
    pub covered_secs: f64,
    /// The SLO period the rules' windows are cut from (30 days for the SRE workbook's): the
    /// error budget is the bad share `1 - objective` of this period's events.
    #[serde(default)]
    pub period_secs: f64,
    /// Rules that fired, pages first.
    pub alerts: Vec<BurnAlert>,
}

impl SloBurn {
    /// The most severe rule that fired.
    pub fn severity(&self) -> Option<BurnSeverity> {
        self.alerts.iter().map(|a| a.severity).max()
    }
}

/// The usual PSI bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftBand {
    /// PSI < 0.1.
    None,
    /// 0.1 ≤ PSI ≤ 0.25.
    Moderate,
    /// PSI > 0.25.
    Significant,
}

impl DriftBand {
    pub fn of(psi: f64) -> DriftBand {
        if psi > 0.25 {
            DriftBand::Significant
        } else if psi >= 0.1 {
            DriftBand::Moderate
        } else {
            DriftBand::None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftResult {
    pub metric: String,
    pub psi: f64,
    pub band: DriftBand,
    /// Observations in each window, so a reader can discount a thin sample.
    pub baseline_count: f64,
    pub current_count: f64,
    pub computed_at: DateTime<Utc>,
}

/// A histogram's cumulative bucket counts over one interval (what a counter increase is to a
/// counter): upper bounds ascending, the last `+Inf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalHistogram {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<f64>,
}

/// What happened between two successful scrapes of an endpoint's `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeInterval {
    pub secs: f64,
    /// Requests answered in the interval, when the endpoint counts them.
    pub requests: Option<f64>,
    /// Of those, failed ones (5xx / failure), when the endpoint counts them.
    pub failed: Option<f64>,
    /// The request latency histogram's increase, seconds.
    pub latency: Option<IntervalHistogram>,
    /// The increase of the configured drift metric.
    pub drift: Option<IntervalHistogram>,
}

/// The raw measurements of one poll, from which the detectors keep SLO and drift windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointObservation {
    pub at: DateTime<Utc>,
    /// Whether the probe found the endpoint healthy.
    pub probe_healthy: bool,
    /// `None` unless this poll and the one before both scraped.
    pub interval: Option<ScrapeInterval>,
}

/// The latest picture of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointModel {
    pub name: String,
    pub protocol: EndpointProtocol,
    pub url: String,
    pub model: Option<String>,
    pub serving: Option<ServingObject>,
    pub health: EndpointHealth,
    pub probe: Option<ProbeResult>,
    /// When a probe last found it healthy.
    pub last_healthy: Option<DateTime<Utc>>,
    pub metrics: Option<EndpointMetrics>,
    pub last_scraped: Option<DateTime<Utc>>,
    /// Why the latest scrape failed; `None` after a good one.
    pub metrics_error: Option<String>,
    pub availability_burn: Option<SloBurn>,
    pub latency_burn: Option<SloBurn>,
    pub drift: Option<DriftResult>,
    pub updated_at: DateTime<Utc>,
    /// The registered model its config names (`[[endpoints]] registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<super::registry::RegistryRef>,
    /// A vector store's count and its growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorModel>,
    /// What writes into it (`[[endpoints]] ingestion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingestion: Option<IngestionRef>,
}

impl EndpointModel {
    /// An endpoint nothing is known about yet.
    pub fn new(config: &EndpointConfig, at: DateTime<Utc>) -> Self {
        EndpointModel {
            name: config.name.clone(),
            protocol: config.protocol,
            url: config.url.clone(),
            model: config.model.clone(),
            serving: config.serving.clone(),
            health: EndpointHealth::Unknown,
            probe: None,
            last_healthy: None,
            metrics: None,
            last_scraped: None,
            metrics_error: None,
            availability_burn: None,
            latency_burn: None,
            drift: None,
            updated_at: at,
            registry: config.registry.clone(),
            vector: None,
            ingestion: config.ingestion.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_bands_follow_the_usual_cut_offs() {
        assert_eq!(DriftBand::of(0.0), DriftBand::None);
        assert_eq!(DriftBand::of(0.099), DriftBand::None);
        assert_eq!(DriftBand::of(0.1), DriftBand::Moderate);
        assert_eq!(DriftBand::of(0.25), DriftBand::Moderate);
        assert_eq!(DriftBand::of(0.251), DriftBand::Significant);
    }

    #[test]
    fn endpoint_config_reads_from_toml_shaped_json_and_rejects_unknown_keys() {
        let cfg: EndpointConfig = serde_json::from_value(serde_json::json!({
            "name": "llama-chat",
            "url": "http://127.0.0.1:8000",
            "protocol": "vllm",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "serving": {"cluster": "prod", "namespace": "serving", "kind": "Deployment", "name": "llama-chat"},
            "slo": {"latency": {"percentile": "p99", "target_ms": 2500.0}, "availability": 0.999},
            "drift": {"metric": "vllm:e2e_request_latency_seconds"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.protocol, EndpointProtocol::Vllm);
        assert_eq!(cfg.slo.latency.map(|l| l.percentile.quantile()), Some(0.99));
        assert_eq!(cfg.drift.map(|d| d.window_secs), Some(3600));
        let bad = serde_json::from_value::<EndpointConfig>(serde_json::json!({
            "name": "x", "url": "http://x", "protocol": "grpc"
        }));
        assert!(bad.is_err());
        let typo = serde_json::from_value::<SloConfig>(serde_json::json!({"availabilty": 0.99}));
        assert!(typo.is_err());
    }
}
