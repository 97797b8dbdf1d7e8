//! Prometheus HTTP API client: instant and range queries.
//!
//! Works against Prometheus and against Thanos Query or Mimir, which serve the same
//! `/api/v1/query` and `/api/v1/query_range` (give Mimir's base URL with its `/prometheus`
//! prefix and its tenant with [`PrometheusClient::with_tenant`]). Also the DCGM convenience
//! queries the GPU panes need. May import model, config, telemetry.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

/// Above this many bytes of PromQL the query goes in a POST form body instead of the URL,
/// so long generated queries do not hit proxies' URL length limits.
const POST_ABOVE_BYTES: usize = 1024;

/// How much of a non-API error body a [`PromError::Http`] quotes.
const QUOTED_BODY_CHARS: usize = 300;

/// The label [`dcgm_by_node_promql`] gathers `Hostname`/`hostname` into.
pub const NODE_LABEL: &str = "fleetdeck_node";

/// A series' labels, `__name__` included when Prometheus keeps it.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus URL {url:?} is not a valid URL: {source}")]
    BadBaseUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("Prometheus URL {url:?} must start with http:// or https://")]
    UnsupportedScheme { url: String },
    #[error("cannot build the HTTP client for Prometheus: {source}")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Prometheus at {url} did not answer query {query:?} within {timeout:?}; raise the timeout or narrow the query"
    )]
    Timeout {
        url: String,
        query: String,
        timeout: Duration,
    },
    #[error(
        "cannot reach Prometheus at {url} for query {query:?}: {source}; check that it runs and the URL is right"
    )]
    Transport {
        url: String,
        query: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Prometheus at {url} answered HTTP {status} to query {query:?}{hint}: {body}")]
    Http {
        url: String,
        query: String,
        status: u16,
        /// " (check the bearer token)" for 401/403, else empty.
        hint: &'static str,
        /// The start of the body (at most 300 characters).
        body: String,
    },
    /// The API's own error envelope: `{"status":"error","errorType":…,"error":…}`.
    #[error("Prometheus refused query {query:?} (HTTP {status}): {error_type}: {error}")]
    Api {
        query: String,
        /// `bad_data`, `execution`, `timeout`, `canceled`, `internal`, `unavailable`, …
        error_type: String,
        error: String,
        status: u16,
        warnings: Vec<String>,
    },
    #[error("Prometheus' answer to query {query:?} is not valid API JSON: {source}")]
    Decode {
        query: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Prometheus' answer to query {query:?} cannot be used: {message}")]
    Malformed { query: String, message: String },
}

impl PromError {
    /// A short, stable name for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PromError::BadBaseUrl { .. } | PromError::UnsupportedScheme { .. } => "config",
            PromError::Client { .. } => "client",
            PromError::Timeout { .. } => "timeout",
            PromError::Transport { .. } => "transport",
            PromError::Http { .. } => "http",
            PromError::Api { .. } => "api",
            PromError::Decode { .. } | PromError::Malformed { .. } => "decode",
        }
    }
}

/// One value at one time. Values are sent as strings by the API; `NaN`, `+Inf` and `-Inf`
/// become the matching `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSeries {
    pub metric: Labels,
    pub sample: Sample,
}

/// One series of a range matrix, samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub metric: Labels,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Vector(Vec<InstantSeries>),
    Matrix(Vec<RangeSeries>),
    Scalar(Sample),
    String { time: DateTime<Utc>, value: String },
}

/// A successful answer: the result and whatever warnings and infos came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    pub result: QueryResult,
    /// The API's `warnings`, plus one of ours when native-histogram samples were skipped.
    pub warnings: Vec<String>,
    /// The API's `infos` (Prometheus 2.45+); empty otherwise.
    pub infos: Vec<String>,
}

/// How [`PrometheusClient::dcgm_by_node`] folds the GPUs of a node into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Avg,
    Sum,
    Min,
    Max,
    Count,
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aggregation::Avg => "avg",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Count => "count",
        })
    }
}

/// A client of one Prometheus-compatible HTTP API.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base: Url,
    bearer_token: Option<String>,
    tenant: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl PrometheusClient {
    /// `base_url` is where `/api/v1/…` hangs off (`http://prometheus:9090`,
    /// `http://mimir/prometheus`); `timeout` bounds each request, and is also passed to
    /// Prometheus so it stops evaluating when we stop waiting.
    pub fn new(
        base_url: &str,
        bearer_token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, PromError> {
        Self::with_roots(
            base_url,
            bearer_token,
            timeout,
            &super::http::TlsRoots::default(),
        )
    }

    /// As [`PrometheusClient::new`], trusting the private CAs in `roots` too.
    pub fn with_roots(
        base_url: &str,
        bearer_token: Option<String>,
        timeout: Duration,
        roots: &super::http::TlsRoots,
    ) -> Result<Self, PromError> {
        let mut base = Url::parse(base_url).map_err(|source| PromError::BadBaseUrl {
            url: base_url.to_string(),
            source,
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(PromError::UnsupportedScheme {
                url: base_url.to_string(),
            });
        }
        // Without the trailing slash, joining `api/v1/query` would drop a path prefix.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = roots
            .client_builder()
            .timeout(timeout)
            .build()
            .map_err(|source| PromError::Client { source })?;
        Ok(PrometheusClient {
            base,
            bearer_token,
            tenant: None,
            timeout,
            http,
        })
    }

    /// Sends `X-Scope-OrgID: tenant` with every request (Mimir, Cortex, Thanos receive).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// An instant query (`/api/v1/query`) at `at`, or at the server's now.
    #[tracing::instrument(level = "debug", skip(self), fields(base = %self.base))]
    pub async fn query(
        &self,
        promql: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<QueryResponse, PromError> {
        let mut params = Vec::new();
        if let Some(at) = at {
            params.push(("time", unix_seconds(at)));
        }
        self.call("api/v1/query", promql, params).await
    }

    /// A range query (`/api/v1/query_range`) from `start` to `end`, one point every `step`.
    #[tracing::instrument(level = "debug", skip(self), fields(base = %self.base))]
    pub async fn query_range(
        &self,
        promql: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryResponse, PromError> {
        let params = vec![
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        self.call("api/v1/query_range", promql, params).await
    }

    /// Per-node `aggregation` of a DCGM metric (see [`dcgm_by_node_promql`]), keyed by node.
    /// `selector` is a metric name, optionally with matchers: `DCGM_FI_DEV_GPU_UTIL{job="dcgm"}`.
    pub async fn dcgm_by_node(
        &self,
        selector: &str,
        aggregation: Aggregation,
        at: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, f64>, PromError> {
        let promql = dcgm_by_node_promql(selector, aggregation);
        let response = self.query(&promql, at).await?;
        match response.result {
            QueryResult::Vector(series) => Ok(series
                .into_iter()
                .filter_map(|s| {
                    let node = s.metric.get(NODE_LABEL)?.clone();
                    Some((node, s.sample.value))
                })
                .collect()),
            other => Err(unexpected_shape(&promql, "vector", &other)),
        }
    }

    /// History of a per-node DCGM aggregate, keyed by node.
    pub async fn dcgm_by_node_range(
        &self,
        selector: &str,
        aggregation: Aggregation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<BTreeMap<String, Vec<Sample>>, PromError> {
        let promql = dcgm_by_node_promql(selector, aggregation);
        let response = self.query_range(&promql, start, end, step).await?;
        match response.result {
            QueryResult::Matrix(series) => Ok(series
                .into_iter()
                .filter_map(|s| {
                    let node = s.metric.get(NODE_LABEL)?.clone();
                    Some((node, s.samples))
                })
                .collect()),
            other => Err(unexpected_shape(&promql, "matrix", &other)),
        }
    }

    /// Mean GPU utilisation (percent) of each node's GPUs.
    pub async fn gpu_utilisation_by_node(
        &self,
        at: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, f64>, PromError> {
        self.dcgm_by_node("DCGM_FI_DEV_GPU_UTIL", Aggregation::Avg, at)
            .await
    }

    /// Framebuffer memory in use (MiB), summed over each node's GPUs.
    pub async fn gpu_memory_used_by_node(
        &self,
        at: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, f64>, PromError> {
        self.dcgm_by_node("DCGM_FI_DEV_FB_USED", Aggregation::Sum, at)
            .await
    }

    /// Power draw (W), summed over each node's GPUs.
    pub async fn gpu_power_by_node(
        &self,
        at: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, f64>, PromError> {
        self.dcgm_by_node("DCGM_FI_DEV_POWER_USAGE", Aggregation::Sum, at)
            .await
    }

    /// How many GPUs each node exports metrics for.
    pub async fn gpu_count_by_node(
        &self,
        at: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<String, f64>, PromError> {
        self.dcgm_by_node("DCGM_FI_DEV_GPU_UTIL", Aggregation::Count, at)
            .await
    }

    /// Mean GPU utilisation of each node over time.
    pub async fn gpu_utilisation_history_by_node(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<BTreeMap<String, Vec<Sample>>, PromError> {
        self.dcgm_by_node_range("DCGM_FI_DEV_GPU_UTIL", Aggregation::Avg, start, end, step)
            .await
    }

    async fn call(
        &self,
        endpoint: &str,
        promql: &str,
        extra: Vec<(&'static str, String)>,
    ) -> Result<QueryResponse, PromError> {
        let url = self
            .base
            .join(endpoint)
            .map_err(|source| PromError::BadBaseUrl {
                url: self.base.to_string(),
                source,
            })?;
        let mut params: Vec<(&str, String)> = vec![("query", promql.to_string())];
        params.extend(extra);
        params.push(("timeout", format!("{}ms", self.timeout.as_millis())));
        let request = if promql.len() > POST_ABOVE_BYTES {
            self.http.post(url.clone()).form(&params)
        } else {
            self.http.get(url.clone()).query(&params)
        };
        let request = match &self.bearer_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let request = match &self.tenant {
            Some(tenant) => request.header("X-Scope-OrgID", tenant),
            None => request,
        };
        let failed = |source: reqwest::Error| {
            if source.is_timeout() {
                PromError::Timeout {
                    url: url.to_string(),
                    query: promql.to_string(),
                    timeout: self.timeout,
                }
            } else {
                PromError::Transport {
                    url: url.to_string(),
                    query: promql.to_string(),
                    source,
                }
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;
        if status.is_success() {
            return parse_response(&body, promql);
        }
        // Prometheus answers 400/422/503 with its JSON envelope; proxies in front of it
        // answer with whatever they like.
        match parse_response(&body, promql) {
            Err(api @ PromError::Api { .. }) => Err(with_status(api, status.as_u16())),
            _ => Err(PromError::Http {
                url: url.to_string(),
                query: promql.to_string(),
                status: status.as_u16(),
                hint: if matches!(status.as_u16(), 401 | 403) {
                    " (check the bearer token)"
                } else {
                    ""
                },
                body: quote_body(&body),
            }),
        }
    }
}

/// PromQL for a per-node aggregate of a DCGM metric. dcgm-exporter names the node in
/// `Hostname` and older releases in `hostname`; both are copied into [`NODE_LABEL`]
/// (`Hostname` wins where a series has both), so one query covers a fleet that runs both
/// releases. Series with neither label fall into an empty node and are left out by the
/// helpers.
pub fn dcgm_by_node_promql(selector: &str, aggregation: Aggregation) -> String {
    format!(
        "{aggregation} by ({NODE_LABEL}) (label_replace(label_replace({selector}, \
         \"{NODE_LABEL}\", \"$1\", \"hostname\", \"(.+)\"), \
         \"{NODE_LABEL}\", \"$1\", \"Hostname\", \"(.+)\"))"
    )
}

/// Decodes an API answer. A `"status":"error"` envelope becomes [`PromError::Api`] (with
/// status 200; the caller knows the real one).
pub fn parse_response(body: &[u8], query: &str) -> Result<QueryResponse, PromError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|source| PromError::Decode {
        query: query.to_string(),
        source,
    })?;
    let malformed = |message: String| PromError::Malformed {
        query: query.to_string(),
        message,
    };
    match envelope.status.as_str() {
        "success" => {}
        "error" => {
            return Err(PromError::Api {
                query: query.to_string(),
                error_type: envelope.error_type.unwrap_or_else(|| "unknown".to_string()),
                error: envelope
                    .error
                    .unwrap_or_else(|| "(no error message)".to_string()),
                status: 200,
                warnings: envelope.warnings,
            });
        }
        other => return Err(malformed(format!("unknown status {other:?}"))),
    }
    let data = envelope
        .data
        .ok_or_else(|| malformed("\"status\" is \"success\" but there is no \"data\"".into()))?;
    let mut warnings = envelope.warnings;
    let mut histograms_skipped = 0usize;
    let result = match data {
        RawData::Vector(series) => {
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                match s.value {
                    Some(point) => out.push(InstantSeries {
                        sample: point.sample().map_err(&malformed)?,
                        metric: s.metric,
                    }),
                    None if s.histogram.is_some() => histograms_skipped += 1,
                    None => {
                        return Err(malformed(format!(
                            "a vector series without a value: {:?}",
                            s.metric
                        )));
                    }
                }
            }
            QueryResult::Vector(out)
        }
        RawData::Matrix(series) => {
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                if s.histograms.is_some() {
                    histograms_skipped += 1;
                }
                let samples = s
                    .values
                    .iter()
                    .map(RawPoint::sample)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(&malformed)?;
                if samples.is_empty() && s.histograms.is_some() {
                    continue;
                }
                out.push(RangeSeries {
                    metric: s.metric,
                    samples,
                });
            }
            QueryResult::Matrix(out)
        }
        RawData::Scalar(point) => QueryResult::Scalar(point.sample().map_err(&malformed)?),
        RawData::String(RawPoint(t, value)) => QueryResult::String {
            time: time_of(t).map_err(&malformed)?,
            value,
        },
    };
    if histograms_skipped > 0 {
        warnings.push(format!(
            "{histograms_skipped} series carried native-histogram samples, which fleetdeck does not read; they were left out"
        ));
    }
    Ok(QueryResponse {
        result,
        warnings,
        infos: envelope.infos,
    })
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum RawData {
    Vector(Vec<RawInstant>),
    Matrix(Vec<RawRange>),
    Scalar(RawPoint),
    String(RawPoint),
}

#[derive(Deserialize)]
struct RawInstant {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<RawPoint>,
    #[serde(default)]
    histogram: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    values: Vec<RawPoint>,
    #[serde(default)]
    histograms: Option<serde::de::IgnoredAny>,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Deserialize)]
struct RawPoint(f64, String);

impl RawPoint {
    fn sample(&self) -> Result<Sample, String> {
        Ok(Sample {
            time: time_of(self.0)?,
            value: parse_value(&self.1)?,
        })
    }
}

/// Parses a sample value as the API writes it: a Go float (`"1"`, `"0.5"`, `"1e+06"`,
/// `"NaN"`, `"+Inf"`, `"-Inf"`).
pub fn parse_value(text: &str) -> Result<f64, String> {
    // Rust's parser reads inf/nan case-insensitively, with or without a sign.
    text.parse::<f64>()
        .map_err(|_| format!("sample value {text:?} is not a number"))
}

fn time_of(seconds: f64) -> Result<DateTime<Utc>, String> {
    let millis = (seconds * 1000.0).round();
    // Prometheus timestamps are milliseconds; anything outside i64 millis is not one.
    if !millis.is_finite() || millis.abs() > 9.0e15 {
        return Err(format!("timestamp {seconds} is out of range"));
    }
    DateTime::from_timestamp_millis(millis as i64)
        .ok_or_else(|| format!("timestamp {seconds} is out of range"))
}

fn unix_seconds(t: DateTime<Utc>) -> String {
    let millis = t.timestamp_millis();
    format!(
        "{}{}.{:03}",
        if millis < 0 { "-" } else { "" },
        (millis / 1000).abs(),
        (millis % 1000).abs()
    )
}

fn with_status(error: PromError, http_status: u16) -> PromError {
    match error {
        PromError::Api {
            query,
            error_type,
            error,
            warnings,
            ..
        } => PromError::Api {
            query,
            error_type,
            error,
            status: http_status,
            warnings,
        },
        other => other,
    }
}

fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    quoted
}

fn unexpected_shape(query: &str, wanted: &str, got: &QueryResult) -> PromError {
    let got = match got {
        QueryResult::Vector(_) => "vector",
        QueryResult::Matrix(_) => "matrix",
        QueryResult::Scalar(_) => "scalar",
        QueryResult::String { .. } => "string",
    };
    PromError::Malformed {
        query: query.to_string(),
        message: format!("expected a {wanted}, got a {got}"),
    }
}

pub use crate::model::update::PrometheusUpdate;

/// Polls Prometheus every `interval` for the last `window` of per-node GPU utilisation and
/// memory used (DCGM metrics, `Hostname` or `hostname`), at most 240 points a series.
pub fn spawn_prometheus(
    client: PrometheusClient,
    interval: Duration,
    window: Duration,
    tx: tokio::sync::mpsc::Sender<PrometheusUpdate>,
) {
    tokio::spawn(async move {
        let mut last_success = None;
        loop {
            let end = Utc::now();
            let start = end
                - chrono::Duration::from_std(window).unwrap_or_else(|_| chrono::Duration::hours(1));
            let step = (window / 240).max(Duration::from_secs(15));
            let util = client
                .gpu_utilisation_history_by_node(start, end, step)
                .await;
            let mem = client
                .dcgm_by_node_range("DCGM_FI_DEV_FB_USED", Aggregation::Sum, start, end, step)
                .await;
            let (history, error) = match (util, mem) {
                (Ok(util), Ok(mem)) => {
                    let mut h = crate::model::History::new();
                    for (metric, series) in [("gpu_util_pct", util), ("gpu_memory_used_mib", mem)] {
                        for (node, samples) in series {
                            h.insert(
                                format!("prometheus/{node}/{metric}"),
                                samples
                                    .into_iter()
                                    .map(|s| crate::model::Sample {
                                        at: s.time,
                                        value: s.value,
                                    })
                                    .collect(),
                            );
                        }
                    }
                    last_success = Some(Utc::now());
                    (Some(h), None)
                }
                (Err(e), _) | (_, Err(e)) => (None, Some(e.to_string())),
            };
            let status = crate::model::gpu::GpuSourceStatus {
                kind: crate::model::gpu::GpuSourceKind::Prometheus,
                cluster: "fleet".into(),
                target: client.base_url().to_string(),
                error,
                last_success,
                checked_at: Utc::now(),
            };
            if tx.send(PrometheusUpdate { status, history }).await.is_err() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn at(seconds: f64) -> DateTime<Utc> {
        time_of(seconds).expect("time")
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_vector_example_decodes_into_two_series_with_labels_and_values() {
        let r = parse_response(&fixture("prometheus-query-vector.json"), "up").expect("parse");
        assert!(r.warnings.is_empty());
        let QueryResult::Vector(series) = r.result else {
            panic!("expected a vector, got {:?}", r.result)
        };
        assert_eq!(
            series,
            vec![
                InstantSeries {
                    metric: labels(&[
                        ("__name__", "up"),
                        ("job", "prometheus"),
                        ("instance", "localhost:9090")
                    ]),
                    sample: Sample {
                        time: at(1435781451.781),
                        value: 1.0
                    },
                },
                InstantSeries {
                    metric: labels(&[
                        ("__name__", "up"),
                        ("job", "node"),
                        ("instance", "localhost:9100")
                    ]),
                    sample: Sample {
                        time: at(1435781451.781),
                        value: 0.0
                    },
                },
            ]
        );
        assert_eq!(series[0].sample.time.timestamp_millis(), 1_435_781_451_781);
    }

    #[test]
    fn the_documented_matrix_example_decodes_into_series_of_samples_in_time_order() {
        let r = parse_response(&fixture("prometheus-query-matrix.json"), "up[30s]").expect("parse");
        let QueryResult::Matrix(series) = r.result else {
            panic!("expected a matrix, got {:?}", r.result)
        };
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].metric["instance"], "localhost:9091");
        let values: Vec<f64> = series[1].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![0.0, 0.0, 1.0]);
        let times: Vec<i64> = series[0]
            .samples
            .iter()
            .map(|s| s.time.timestamp_millis())
            .collect();
        assert_eq!(
            times,
            vec![1_435_781_430_781, 1_435_781_445_781, 1_435_781_460_781]
        );
    }

    #[test]
    fn a_live_kube_prometheus_stack_answer_keeps_every_label_of_the_vllm_series() {
        let r = parse_response(
            &fixture("prometheus-query-vector-live.json"),
            "vllm:num_requests_waiting",
        )
        .expect("parse");
        let QueryResult::Vector(series) = r.result else {
            panic!("expected a vector, got {:?}", r.result)
        };
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!(s.metric["__name__"], "vllm:num_requests_waiting");
        assert_eq!(s.metric["model_name"], "Qwen/Qwen2.5-0.5B-Instruct");
        assert_eq!(s.metric["pod"], "vllm-qwen25-500m-75f997f84c-bbxwq");
        assert_eq!(s.metric.len(), 9);
        assert_eq!(s.sample.value, 0.0);
        assert_eq!(s.sample.time.timestamp_millis(), 1_774_011_473_784);
    }

    #[test]
    fn nan_and_infinities_written_as_strings_become_floats() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"nan"},"value":[1,"NaN"]},
            {"metric":{"a":"pos"},"value":[1,"+Inf"]},
            {"metric":{"a":"neg"},"value":[1,"-Inf"]},
            {"metric":{"a":"exp"},"value":[1,"1e+06"]}]}}"#;
        let QueryResult::Vector(s) = parse_response(body, "q").expect("parse").result else {
            panic!("expected a vector")
        };
        assert!(s[0].sample.value.is_nan());
        assert_eq!(s[1].sample.value, f64::INFINITY);
        assert_eq!(s[2].sample.value, f64::NEG_INFINITY);
        assert_eq!(s[3].sample.value, 1e6);
    }

    #[test]
    fn scalar_and_string_results_decode() {
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42"]}}"#;
        assert_eq!(
            parse_response(scalar, "42").expect("scalar").result,
            QueryResult::Scalar(Sample {
                time: at(1700000000.5),
                value: 42.0
            })
        );
        let string =
            br#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}"#;
        assert_eq!(
            parse_response(string, "\"hello\"").expect("string").result,
            QueryResult::String {
                time: at(1700000000.0),
                value: "hello".into()
            }
        );
    }

    #[test]
    fn warnings_and_infos_are_carried_and_unknown_fields_ignored() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[],"stats":{"timings":{}}},
            "warnings":["partial response: store A unavailable"],"infos":["PromQL info: metric might not be a counter"]}"#;
        let r = parse_response(body, "q").expect("parse");
        assert_eq!(r.result, QueryResult::Vector(vec![]));
        assert_eq!(r.warnings, vec!["partial response: store A unavailable"]);
        assert_eq!(r.infos, vec!["PromQL info: metric might not be a counter"]);
    }

    #[test]
    fn native_histogram_series_are_left_out_with_a_warning_not_an_error() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"h"},"histogram":[1,{"count":"2","sum":"3","buckets":[]}]},
            {"metric":{"a":"f"},"value":[1,"5"]}]}}"#;
        let r = parse_response(body, "q").expect("parse");
        let QueryResult::Vector(s) = r.result else {
            panic!("expected a vector")
        };
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metric["a"], "f");
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("native-histogram"));
    }

    #[test]
    fn an_error_envelope_names_the_error_type_the_message_and_the_query() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#;
        let err = parse_response(body, "sum(").expect_err("an error envelope");
        match &err {
            PromError::Api {
                error_type, error, ..
            } => {
                assert_eq!(error_type, "bad_data");
                assert!(error.contains("unclosed left parenthesis"));
            }
            other => panic!("expected Api, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("bad_data"), "{text}");
        assert!(text.contains("unclosed left parenthesis"), "{text}");
        assert!(text.contains("\"sum(\""), "{text}");
        assert_eq!(err.metric_label(), "api");
    }

    #[test]
    fn an_error_envelope_without_details_still_reads_clearly() {
        let err = parse_response(br#"{"status":"error"}"#, "up").expect_err("error");
        let text = err.to_string();
        assert!(
            text.contains("unknown") && text.contains("no error message"),
            "{text}"
        );
    }

    #[test]
    fn malformed_answers_are_errors_that_name_the_query_never_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"<html>502 Bad Gateway</html>",
            b"{\"status\":\"success\"",
            br#"{"status":"success"}"#,
            br#"{"status":"maybe","data":{"resultType":"vector","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"histogramish","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"one"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1e300,"1"]]}]}}"#,
            br#"{"status":"success","data":{"resultType":"scalar","result":["x","1"]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}}"#,
        ];
        for body in cases {
            let err = parse_response(body, "the_query").expect_err("malformed");
            assert!(
                matches!(err, PromError::Decode { .. } | PromError::Malformed { .. }),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(body)
            );
            assert!(err.to_string().contains("the_query"), "{err}");
        }
    }

    #[test]
    fn the_dcgm_query_gathers_both_hostname_spellings_with_hostname_winning() {
        let q = dcgm_by_node_promql("DCGM_FI_DEV_GPU_UTIL", Aggregation::Avg);
        assert_eq!(
            q,
            "avg by (fleetdeck_node) (label_replace(label_replace(DCGM_FI_DEV_GPU_UTIL, \
             \"fleetdeck_node\", \"$1\", \"hostname\", \"(.+)\"), \
             \"fleetdeck_node\", \"$1\", \"Hostname\", \"(.+)\"))"
        );
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused_with_the_url_quoted() {
        let err = PrometheusClient::new("ftp://prom", None, Duration::from_secs(1))
            .expect_err("ftp refused");
        assert!(err.to_string().contains("ftp://prom"), "{err}");
        let err = PrometheusClient::new("not a url", None, Duration::from_secs(1))
            .expect_err("garbage refused");
        assert!(err.to_string().contains("not a url"), "{err}");
    }

    #[test]
    fn times_go_to_the_api_as_unix_seconds_with_milliseconds() {
        assert_eq!(unix_seconds(at(1435781451.781)), "1435781451.781");
        assert_eq!(unix_seconds(at(-1.5)), "-1.500");
    }

    /// Serves one canned HTTP answer and hands back the request it read.
    async fn one_answer(
        status_line: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.expect("read");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        (base, handle)
    }

    #[tokio::test]
    async fn an_instant_query_is_a_get_under_the_base_path_with_the_token_and_tenant() {
        let (base, served) = one_answer(
            "HTTP/1.1 200 OK",
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#,
        )
        .await;
        let client = PrometheusClient::new(
            &format!("{base}/prometheus"),
            Some("s3cret".into()),
            Duration::from_secs(5),
        )
        .expect("client")
        .with_tenant("team-a");
        client
            .query("up == 1", Some(at(1700000000.25)))
            .await
            .expect("query");
        let request = served.await.expect("served");
        let first = request.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(
                "GET /prometheus/api/v1/query?query=up+%3D%3D+1&time=1700000000.250&timeout=5000ms "
            ),
            "{first}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("authorization: bearer s3cret"), "{request}");
        assert!(lower.contains("x-scope-orgid: team-a"), "{request}");
    }

    #[tokio::test]
    async fn a_long_range_query_goes_in_a_post_form() {
        let (base, served) = one_answer(
            "HTTP/1.1 200 OK",
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        )
        .await;
        let client = PrometheusClient::new(&base, None, Duration::from_secs(5)).expect("client");
        let promql = format!("up{{job=~\"{}\"}}", "a|".repeat(600));
        let r = client
            .query_range(
                &promql,
                at(1700000000.0),
                at(1700000060.0),
                Duration::from_millis(15_500),
            )
            .await
            .expect("range query");
        assert_eq!(r.result, QueryResult::Matrix(vec![]));
        let request = served.await.expect("served");
        assert!(
            request.starts_with("POST /api/v1/query_range "),
            "{request}"
        );
        assert!(
            request.contains("&start=1700000000.000&end=1700000060.000&step=15.5&timeout=5000ms"),
            "{request}"
        );
        assert!(!request.to_ascii_lowercase().contains("authorization"));
    }

    #[tokio::test]
    async fn an_api_error_keeps_its_http_status() {
        let (base, _served) = one_answer(
            "HTTP/1.1 422 Unprocessable Entity",
            r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory"}"#,
        )
        .await;
        let client = PrometheusClient::new(&base, None, Duration::from_secs(5)).expect("client");
        let err = client.query("big", None).await.expect_err("refused");
        assert!(
            matches!(&err, PromError::Api { status: 422, error_type, .. } if error_type == "execution"),
            "{err:?}"
        );
        assert!(err.to_string().contains("HTTP 422"), "{err}");
    }

    #[tokio::test]
    async fn a_proxy_error_page_is_an_http_error_that_quotes_the_body() {
        let (base, _served) = one_answer("HTTP/1.1 401 Unauthorized", "no token, no metrics").await;
        let client = PrometheusClient::new(&base, None, Duration::from_secs(5)).expect("client");
        let err = client.query("up", None).await.expect_err("refused");
        let text = err.to_string();
        assert!(
            matches!(err, PromError::Http { status: 401, .. }),
            "{err:?}"
        );
        assert!(text.contains("no token, no metrics"), "{text}");
        assert!(text.contains("check the bearer token"), "{text}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout_naming_the_query() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let _hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            std::future::pending::<()>().await;
            drop(socket);
        });
        let client =
            PrometheusClient::new(&base, None, Duration::from_millis(200)).expect("client");
        let err = client.query("slow_query", None).await.expect_err("timeout");
        assert!(matches!(err, PromError::Timeout { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("slow_query") && text.contains("200ms"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_transport_error_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = PrometheusClient::new(&format!("http://{addr}"), None, Duration::from_secs(5))
            .expect("client");
        let err = client.query("up", None).await.expect_err("refused");
        assert!(matches!(err, PromError::Transport { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
