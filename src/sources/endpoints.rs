//! Model endpoint source: probes (KServe V2, vLLM, Triton, plain HTTP; vector stores through
//! [`super::vector`]: Pinecone, Qdrant) and `/metrics` scrapes,
//! turned into latency quantiles, TTFT, error rate, throughput and queue depth, and the raw
//! measurements of each poll ([`EndpointObservation`]: request and failure increases, histogram
//! increases) from which `signals` figures SLO burn and drift. One tokio task per endpoint sends
//! [`EndpointUpdate`]s; it never touches the UI or the store. Imports model only.
//!
//! [`EndpointTracker`] folds probe and scrape results into an [`EndpointModel`] without I/O, so
//! it can be fed synthetic data.
//!
//! `/metrics` bodies are read with the sources' shared [`prom_text`] parser.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;

use super::prom_text::{self, Record};
use crate::model::endpoint::{
    EndpointConfig, EndpointHealth, EndpointMetrics, EndpointModel, EndpointObservation,
    EndpointProtocol, IntervalHistogram, ProbeResult, ScrapeInterval, VectorModel, VectorReading,
};

#[derive(Debug, thiserror::Error)]
pub enum EndpointSourceError {
    #[error("invalid URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("metrics {source}")]
    Exposition {
        line: usize,
        #[source]
        source: prom_text::ParseError,
    },
    #[error("cannot build the HTTP client for the endpoint probes: {0}")]
    Client(#[source] reqwest::Error),
}

// ---- Prometheus text exposition ----------------------------------------------------------

/// One sample line of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl MetricSample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a `/metrics` body, read with the shared [`prom_text`] parser and owned, as
/// a scrape's figures are looked up many times. A malformed line is an error naming its line.
pub fn parse_exposition(text: &str) -> Result<Vec<MetricSample>, EndpointSourceError> {
    let mut out = Vec::new();
    for record in prom_text::Parser::new(text) {
        let record = record.map_err(|source| EndpointSourceError::Exposition {
            line: source.line,
            source,
        })?;
        if let Record::Sample(s) = record {
            out.push(MetricSample {
                name: s.name.to_string(),
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.into_owned()))
                    .collect(),
                value: s.value,
            });
        }
    }
    Ok(out)
}

/// The samples named `name`; where `model` is given and some of them carry it in `label`, only
/// those (an exporter serving several models), else all of them.
fn select<'a>(
    samples: &'a [MetricSample],
    name: &str,
    label: &str,
    model: Option<&str>,
) -> Vec<&'a MetricSample> {
    let all: Vec<&MetricSample> = samples.iter().filter(|s| s.name == name).collect();
    match model {
        Some(m) if all.iter().any(|s| s.label(label) == Some(m)) => all
            .into_iter()
            .filter(|s| s.label(label) == Some(m))
            .collect(),
        _ => all,
    }
}

/// Sum over every selected series; `None` when the metric is absent.
fn sum_of(samples: &[MetricSample], name: &str, label: &str, model: Option<&str>) -> Option<f64> {
    let selected = select(samples, name, label, model);
    (!selected.is_empty()).then(|| selected.iter().map(|s| s.value).sum())
}

// ---- histograms --------------------------------------------------------------------------

/// A Prometheus histogram, summed over its series by `le` (`sum by (le)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending; the last is `+Inf`.
    pub bounds: Vec<f64>,
    /// Cumulative counts per bound.
    pub cumulative: Vec<f64>,
    pub sum: f64,
}

impl Histogram {
    /// Builds `family` from its `_bucket` and `_sum` samples. `None` when it is absent or has no
    /// `+Inf` bucket (which Prometheus also rejects).
    pub fn from_samples(
        samples: &[MetricSample],
        family: &str,
        model_label: &str,
        model: Option<&str>,
    ) -> Option<Histogram> {
        let mut buckets: Vec<(f64, f64)> =
            select(samples, &format!("{family}_bucket"), model_label, model)
                .into_iter()
                .filter_map(|s| Some((prom_text::parse_value(s.label("le")?)?, s.value)))
                .filter(|(le, _)| !le.is_nan())
                .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut bounds: Vec<f64> = Vec::with_capacity(buckets.len());
        let mut cumulative: Vec<f64> = Vec::with_capacity(buckets.len());
        for (le, count) in buckets {
            match (bounds.last(), cumulative.last_mut()) {
                (Some(last), Some(c)) if *last == le => *c += count,
                _ => {
                    bounds.push(le);
                    cumulative.push(count);
                }
            }
        }
        if bounds.last() != Some(&f64::INFINITY) {
            return None;
        }
        let sum = sum_of(samples, &format!("{family}_sum"), model_label, model).unwrap_or(0.0);
        Some(Histogram {
            bounds,
            cumulative,
            sum,
        })
    }

    /// Observations in total (the `+Inf` bucket).
    pub fn count(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// The `q` quantile as PromQL's `histogram_quantile` computes it: linear interpolation
    /// inside the bucket that holds the rank, the first bucket starting at 0, and the upper bound
    /// of the highest finite bucket when the rank falls in `+Inf`. `None` without observations or
    /// for `q` outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q)
            || self.bounds.len() < 2
            || self.bounds.len() != self.cumulative.len()
        {
            return None;
        }
        // Prometheus forces monotonic buckets (a scrape can race with an observation).
        let mut cumulative = self.cumulative.clone();
        for i in 1..cumulative.len() {
            cumulative[i] = cumulative[i].max(cumulative[i - 1]);
        }
        let total = *cumulative.last()?;
        if total <= 0.0 {
            return None;
        }
        let mut rank = q * total;
        let b = cumulative.iter().position(|c| *c >= rank)?;
        let n = self.bounds.len();
        if b == n - 1 {
            return Some(self.bounds[n - 2]);
        }
        if b == 0 && self.bounds[0] <= 0.0 {
            return Some(self.bounds[0]);
        }
        let (mut start, end, mut count) = (0.0, self.bounds[b], cumulative[b]);
        if b > 0 {
            start = self.bounds[b - 1];
            count -= cumulative[b - 1];
            rank -= cumulative[b - 1];
        }
        if count <= 0.0 {
            return Some(end);
        }
        Some(start + (end - start) * (rank / count))
    }

    /// What was observed since `prev`. A counter reset (a bucket went down) or a changed bucket
    /// layout means the process restarted: everything it now holds is new, as PromQL's
    /// `increase` assumes.
    pub fn increase_since(&self, prev: &Histogram) -> Histogram {
        let reset = self.bounds != prev.bounds
            || self
                .cumulative
                .iter()
                .zip(&prev.cumulative)
                .any(|(c, p)| c < p);
        if reset {
            return self.clone();
        }
        Histogram {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&prev.cumulative)
                .map(|(c, p)| c - p)
                .collect(),
            sum: (self.sum - prev.sum).max(0.0),
        }
    }

    /// Adds `other` in; `false` (and no change) when the layouts differ.
    fn add(&mut self, other: &Histogram) -> bool {
        if self.bounds != other.bounds {
            return false;
        }
        for (a, b) in self.cumulative.iter_mut().zip(&other.cumulative) {
            *a += b;
        }
        self.sum += other.sum;
        true
    }
}

/// A counter's increase between two scrapes; a value lower than before is a reset, so all of
/// it is new. `None` unless both scrapes had it.
fn counter_increase(prev: Option<f64>, cur: Option<f64>) -> Option<f64> {
    let (p, c) = (prev?, cur?);
    Some(if c >= p { c - p } else { c })
}

// ---- what one scrape says, per protocol ----------------------------------------------------

/// The figures of one scrape, protocol differences resolved.
#[derive(Debug, Clone, Default, PartialEq)]
struct Reading {
    latency: Option<Histogram>,
    ttft: Option<Histogram>,
    drift: Option<Histogram>,
    /// Cumulative requests answered without a server error, and with one (5xx / failure).
    ok: Option<f64>,
    failed: Option<f64>,
    /// Triton: cumulative request time, seconds (it has counters, not a histogram).
    duration_s: Option<f64>,
    /// Triton's summary quantiles (p50, p95, p99), ms, over its own sliding window.
    summary_ms: [Option<f64>; 3],
    running: Option<f64>,
    waiting: Option<f64>,
}

/// Handlers of `http_requests_total` that are not inference (probes, scrapes, listings).
fn is_inference_handler(handler: &str) -> bool {
    const NOT_INFERENCE: &[&str] = &[
        "/health", "/live", "/ready", "/metrics", "/ping", "/version", "/models", "/load",
    ];
    !(handler.is_empty()
        || handler == "/"
        || handler == "/v2"
        || handler == "none"
        || NOT_INFERENCE.iter().any(|s| handler.ends_with(s)))
}

/// (ok, failed) from `http_requests_total{handler,status}`: `5xx` or `5NN` is a failure; client
/// errors are the client's. `None` when no inference handler was counted yet.
fn http_requests(samples: &[MetricSample]) -> Option<(f64, f64)> {
    let mut seen = false;
    let (mut ok, mut failed) = (0.0, 0.0);
    for s in samples.iter().filter(|s| s.name == "http_requests_total") {
        if !is_inference_handler(s.label("handler").unwrap_or("")) {
            continue;
        }
        seen = true;
        if s.label("status").is_some_and(|st| st.starts_with('5')) {
            failed += s.value;
        } else {
            ok += s.value;
        }
    }
    seen.then_some((ok, failed))
}

fn model_label(protocol: EndpointProtocol) -> &'static str {
    match protocol {
        EndpointProtocol::Triton => "model",
        _ => "model_name",
    }
}

fn read_metrics(cfg: &EndpointConfig, samples: &[MetricSample]) -> Reading {
    let label = model_label(cfg.protocol);
    let model = cfg.model.as_deref();
    let hist = |family: &str| Histogram::from_samples(samples, family, label, model);
    let gauge = |name: &str| sum_of(samples, name, label, model);
    let mut r = Reading {
        drift: cfg.drift.as_ref().and_then(|d| hist(&d.metric)),
        ..Reading::default()
    };
    match cfg.protocol {
        EndpointProtocol::Vllm => {
            r.latency = hist("vllm:e2e_request_latency_seconds");
            r.ttft = hist("vllm:time_to_first_token_seconds");
            r.running = gauge("vllm:num_requests_running");
            r.waiting = gauge("vllm:num_requests_waiting");
            match http_requests(samples) {
                Some((ok, failed)) => (r.ok, r.failed) = (Some(ok), Some(failed)),
                None => r.ok = gauge("vllm:request_success_total"),
            }
        }
        EndpointProtocol::KServeV2 => {
            r.latency = hist("request_predict_seconds");
            match http_requests(samples) {
                Some((ok, failed)) => (r.ok, r.failed) = (Some(ok), Some(failed)),
                None => r.ok = r.latency.as_ref().map(Histogram::count),
            }
        }
        EndpointProtocol::Triton => {
            r.ok = gauge("nv_inference_request_success");
            r.failed = gauge("nv_inference_request_failure");
            r.duration_s = gauge("nv_inference_request_duration_us").map(|us| us / 1e6);
            r.waiting = gauge("nv_inference_pending_request_count");
            let summary = select(samples, "nv_inference_request_summary_us", label, model);
            for (slot, q) in r.summary_ms.iter_mut().zip(["0.5", "0.95", "0.99"]) {
                let mut series = summary.iter().filter(|s| s.label("quantile") == Some(q));
                // Quantiles of several models cannot be added up: only a single series counts.
                if let (Some(one), None) = (series.next(), series.next()) {
                    *slot = one.value.is_finite().then(|| one.value / 1000.0);
                }
            }
        }
        EndpointProtocol::Http => {
            if let Some((ok, failed)) = http_requests(samples) {
                (r.ok, r.failed) = (Some(ok), Some(failed));
            }
        }
        EndpointProtocol::Qdrant => {
            // Only searches and queries are the store's SLI: collection reads, upserts and
            // the probes' own calls answer at other speeds.
            let searches: Vec<MetricSample> = samples
                .iter()
                .filter(|s| {
                    s.label("endpoint").is_some_and(|e| {
                        e.ends_with("/points/search") || e.ends_with("/points/query")
                    })
                })
                .cloned()
                .collect();
            r.latency = Histogram::from_samples(
                &searches,
                "rest_responses_duration_seconds",
                "endpoint",
                None,
            );
            let mut seen = false;
            let (mut ok, mut failed) = (0.0, 0.0);
            for s in searches.iter().filter(|s| s.name == "rest_responses_total") {
                seen = true;
                if s.label("status").is_some_and(|st| st.starts_with('5')) {
                    failed += s.value;
                } else {
                    ok += s.value;
                }
            }
            if seen {
                (r.ok, r.failed) = (Some(ok), Some(failed));
            }
        }
        // A Pinecone index has no `/metrics` of its own: its SLI is the probe's query.
        EndpointProtocol::Pinecone => {}
    }
    r
}

/// Buckets (seconds) the probe's query latencies are kept in for the window's quantiles.
const PROBE_LATENCY_BUCKETS: &[f64] = &[
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// One probe query of `secs` as a histogram of one observation in [`PROBE_LATENCY_BUCKETS`].
fn probe_histogram(secs: f64) -> Histogram {
    Histogram {
        bounds: PROBE_LATENCY_BUCKETS.to_vec(),
        cumulative: PROBE_LATENCY_BUCKETS
            .iter()
            .map(|b| if secs <= *b { 1.0 } else { 0.0 })
            .collect(),
        sum: secs,
    }
}

/// The same query exactly, for the latency SLI: a bucket ending just below `secs` holds none
/// and one ending at it holds it, so "within the target" is exact, not interpolated.
fn exact_histogram(secs: f64) -> IntervalHistogram {
    IntervalHistogram {
        bounds: vec![secs * (1.0 - 1e-9), secs, f64::INFINITY],
        cumulative: vec![0.0, 1.0, 1.0],
    }
}

/// What happened between two scrapes.
#[derive(Debug, Clone)]
struct IntervalDelta {
    at: DateTime<Utc>,
    secs: f64,
    ok: Option<f64>,
    failed: Option<f64>,
    latency: Option<Histogram>,
    ttft: Option<Histogram>,
    drift: Option<Histogram>,
    duration_s: Option<f64>,
}

impl IntervalDelta {
    fn between(prev: &Reading, cur: &Reading, secs: f64, at: DateTime<Utc>) -> Self {
        let hist = |p: &Option<Histogram>, c: &Option<Histogram>| match (p, c) {
            (Some(p), Some(c)) => Some(c.increase_since(p)),
            _ => None,
        };
        IntervalDelta {
            at,
            secs,
            ok: counter_increase(prev.ok, cur.ok),
            failed: counter_increase(prev.failed, cur.failed),
            latency: hist(&prev.latency, &cur.latency),
            ttft: hist(&prev.ttft, &cur.ttft),
            drift: hist(&prev.drift, &cur.drift),
            duration_s: counter_increase(prev.duration_s, cur.duration_s),
        }
    }

    /// Requests in the interval, when the endpoint counts them.
    fn requests(&self) -> Option<f64> {
        self.ok.map(|ok| ok + self.failed.unwrap_or(0.0))
    }
}

/// Sums histograms that share the newest one's layout (older layouts predate a restart).
fn sum_histograms<'a>(mut hs: impl DoubleEndedIterator<Item = &'a Histogram>) -> Option<Histogram> {
    let mut total = hs.next_back()?.clone();
    for h in hs {
        total.add(h);
    }
    Some(total)
}

fn window_metrics(deltas: &VecDeque<IntervalDelta>, latest: &Reading) -> EndpointMetrics {
    let secs: f64 = deltas.iter().map(|d| d.secs).sum();
    let known = |f: fn(&IntervalDelta) -> Option<f64>| -> Option<f64> {
        let values: Vec<f64> = deltas.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    let ok = known(|d| d.ok);
    let failed = known(|d| d.failed);
    let requests = ok.map(|ok| ok + failed.unwrap_or(0.0));
    let latency = sum_histograms(deltas.iter().filter_map(|d| d.latency.as_ref()));
    let ttft = sum_histograms(deltas.iter().filter_map(|d| d.ttft.as_ref()));
    let duration_s = known(|d| d.duration_s);
    let ms =
        |h: &Option<Histogram>, q: f64| h.as_ref().and_then(|h| h.quantile(q)).map(|s| s * 1000.0);
    let mean_ms = match &latency {
        Some(h) if h.count() > 0.0 => Some(h.sum / h.count() * 1000.0),
        _ => match (duration_s, requests) {
            (Some(d), Some(n)) if n > 0.0 => Some(d / n * 1000.0),
            _ => None,
        },
    };
    let [s50, s95, s99] = latest.summary_ms;
    EndpointMetrics {
        window_secs: secs,
        requests: requests.unwrap_or(0.0),
        errors: failed.unwrap_or(0.0),
        error_rate: match (failed, requests) {
            (Some(f), Some(n)) if n > 0.0 => Some(f / n),
            _ => None,
        },
        throughput_rps: requests.filter(|_| secs > 0.0).map(|n| n / secs),
        latency_p50_ms: ms(&latency, 0.5).or(s50),
        latency_p95_ms: ms(&latency, 0.95).or(s95),
        latency_p99_ms: ms(&latency, 0.99).or(s99),
        latency_mean_ms: mean_ms,
        ttft_p50_ms: ms(&ttft, 0.5),
        ttft_p99_ms: ms(&ttft, 0.99),
        queue_running: latest.running,
        queue_waiting: latest.waiting,
    }
}

// ---- folding probes and scrapes into the model ---------------------------------------------

/// The state of one endpoint between polls: the last scrape and the metrics window. No I/O:
/// [`observe`](Self::observe) takes the results. SLO burn and drift are not figured here: each
/// poll's raw measurements ([`observation`](Self::observation)) go to the detectors
/// (`signals::slo::EndpointWindows`), which keep those windows.
#[derive(Debug, Clone)]
pub struct EndpointTracker {
    config: EndpointConfig,
    metrics_window: Duration,
    prev: Option<(DateTime<Utc>, Reading)>,
    deltas: VecDeque<IntervalDelta>,
    model: EndpointModel,
    observation: Option<EndpointObservation>,
    /// A vector store's counts over the metrics window, oldest first.
    counts: VecDeque<(DateTime<Utc>, u64)>,
    /// A Pinecone index's previous probe, which its query-latency SLI interval starts at.
    last_probe: Option<DateTime<Utc>>,
}

impl EndpointTracker {
    pub fn new(config: EndpointConfig, metrics_window: Duration, now: DateTime<Utc>) -> Self {
        EndpointTracker {
            model: EndpointModel::new(&config, now),
            config,
            metrics_window,
            prev: None,
            deltas: VecDeque::new(),
            observation: None,
            counts: VecDeque::new(),
            last_probe: None,
        }
    }

    /// Folds in a vector store's statistics read at this poll (`None`: not read). The count's
    /// growth is measured over the metrics window; `grew_at` moves only when the count rises,
    /// so a flat index keeps the time it last grew.
    pub fn observe_vector(&mut self, reading: Option<Result<VectorReading, String>>) {
        let Some(reading) = reading else { return };
        let vector = self.model.vector.get_or_insert(VectorModel {
            latest: None,
            grew_at: None,
            growth_per_min: None,
            error: None,
        });
        let r = match reading {
            Err(e) => {
                vector.error = Some(e);
                return;
            }
            Ok(r) => r,
        };
        let grew = vector.latest.as_ref().is_none_or(|l| r.count > l.count);
        if grew {
            vector.grew_at = Some(r.at);
        }
        self.counts.push_back((r.at, r.count));
        let window = TimeDelta::from_std(self.metrics_window).unwrap_or(TimeDelta::MAX);
        if let Some(cutoff) = r.at.checked_sub_signed(window) {
            while self.counts.len() > 2 && self.counts.front().is_some_and(|(at, _)| *at < cutoff) {
                self.counts.pop_front();
            }
        }
        vector.growth_per_min = match (self.counts.front(), self.counts.back()) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                let minutes = (*t1 - *t0).num_milliseconds() as f64 / 60_000.0;
                Some((*c1 as f64 - *c0 as f64) / minutes)
            }
            _ => None,
        };
        vector.error = None;
        vector.latest = Some(r);
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn model(&self) -> &EndpointModel {
        &self.model
    }

    /// What the latest poll measured, for the SLO and drift detectors.
    pub fn observation(&self) -> Option<&EndpointObservation> {
        self.observation.as_ref()
    }

    /// Folds in one poll: the probe, and the scrape's body (`None` where the endpoint has no
    /// metrics).
    pub fn observe(
        &mut self,
        probe: ProbeResult,
        scrape: Option<Result<String, EndpointSourceError>>,
        now: DateTime<Utc>,
    ) -> &EndpointModel {
        let probe_healthy = probe.health == EndpointHealth::Healthy;
        self.model.health = probe.health;
        if probe_healthy {
            self.model.last_healthy = Some(probe.at);
        }
        self.model.probe = Some(probe);
        self.model.updated_at = now;

        let mut interval = None;
        if self.config.protocol == EndpointProtocol::Pinecone && scrape.is_none() {
            interval = self.probe_interval(probe_healthy, now);
        }
        match scrape.map(|r| r.and_then(|body| parse_exposition(&body))) {
            None => {}
            Some(Err(e)) => self.model.metrics_error = Some(e.to_string()),
            Some(Ok(samples)) => {
                interval = self.fold_scrape(&samples, now);
                self.model.metrics_error = None;
                self.model.last_scraped = Some(now);
            }
        }
        self.observation = Some(EndpointObservation {
            at: now,
            probe_healthy,
            interval,
        });
        &self.model
    }

    /// A store without `/metrics` (Pinecone): each probe's query is one request of the SLIs,
    /// failed unless the store answered healthy, and its latency one observation. The window's
    /// figures (p99, error rate) are the probes'.
    fn probe_interval(&mut self, healthy: bool, now: DateTime<Utc>) -> Option<ScrapeInterval> {
        let latency_s = self
            .model
            .probe
            .as_ref()
            .and_then(|p| p.latency_ms)
            .filter(|_| healthy)
            .map(|ms| ms / 1000.0);
        let since = self.last_probe.replace(now)?;
        let secs = (now - since).num_milliseconds() as f64 / 1000.0;
        if secs <= 0.0 {
            return None;
        }
        self.deltas.push_back(IntervalDelta {
            at: now,
            secs,
            ok: Some(if healthy { 1.0 } else { 0.0 }),
            failed: Some(if healthy { 0.0 } else { 1.0 }),
            latency: latency_s.map(probe_histogram),
            ttft: None,
            drift: None,
            duration_s: None,
        });
        let window = TimeDelta::from_std(self.metrics_window).unwrap_or(TimeDelta::MAX);
        if let Some(cutoff) = now.checked_sub_signed(window) {
            while self.deltas.len() > 1 && self.deltas.front().is_some_and(|d| d.at <= cutoff) {
                self.deltas.pop_front();
            }
        }
        self.model.metrics = Some(window_metrics(&self.deltas, &Reading::default()));
        self.model.last_scraped = Some(now);
        Some(ScrapeInterval {
            secs,
            requests: Some(1.0),
            failed: Some(if healthy { 0.0 } else { 1.0 }),
            latency: latency_s.map(exact_histogram),
            drift: None,
        })
    }

    /// Takes one parsed scrape; answers what happened since the previous one, if there was one.
    fn fold_scrape(
        &mut self,
        samples: &[MetricSample],
        now: DateTime<Utc>,
    ) -> Option<ScrapeInterval> {
        let reading = read_metrics(&self.config, samples);
        let mut interval = None;
        let secs = self
            .prev
            .as_ref()
            .map(|(at, _)| (now - *at).num_milliseconds() as f64 / 1000.0);
        if let (Some((_, prev)), Some(secs)) = (&self.prev, secs.filter(|s| *s > 0.0)) {
            let delta = IntervalDelta::between(prev, &reading, secs, now);
            let raw = |h: &Option<Histogram>| {
                h.as_ref().map(|h| IntervalHistogram {
                    bounds: h.bounds.clone(),
                    cumulative: h.cumulative.clone(),
                })
            };
            interval = Some(ScrapeInterval {
                secs,
                requests: delta.requests(),
                failed: delta.failed,
                latency: raw(&delta.latency),
                drift: raw(&delta.drift),
            });
            self.deltas.push_back(delta);
            let window = TimeDelta::from_std(self.metrics_window).unwrap_or(TimeDelta::MAX);
            if let Some(cutoff) = now.checked_sub_signed(window) {
                while self.deltas.len() > 1 && self.deltas.front().is_some_and(|d| d.at <= cutoff) {
                    self.deltas.pop_front();
                }
            }
        }
        self.model.metrics = Some(window_metrics(&self.deltas, &reading));
        self.prev = Some((now, reading));
        interval
    }
}

// ---- probes and scrapes over HTTP ----------------------------------------------------------

/// `base` with `segments` appended as path segments (each percent-encoded).
fn join_url(base: &str, segments: &[&str]) -> Result<String, EndpointSourceError> {
    let invalid = |message: String| EndpointSourceError::Url {
        url: base.to_string(),
        message,
    };
    let mut url = url::Url::parse(base).map_err(|e| invalid(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| invalid("it cannot be a base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url.into())
}

/// Where the endpoint's metrics are, if it has any.
pub fn metrics_url(cfg: &EndpointConfig) -> Option<Result<String, EndpointSourceError>> {
    match (&cfg.metrics_url, cfg.protocol) {
        (Some(u), _) => Some(Ok(u.clone())),
        (None, EndpointProtocol::Http | EndpointProtocol::Pinecone) => None,
        (None, _) => Some(join_url(&cfg.url, &["metrics"])),
    }
}

/// A GET's status and how long it took; `Err` when no answer came.
async fn get_status(
    client: &reqwest::Client,
    url: &str,
) -> Result<(u16, f64, reqwest::Response), EndpointSourceError> {
    let started = Instant::now();
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|source| EndpointSourceError::Request {
            url: url.to_string(),
            source,
        })?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((response.status().as_u16(), ms, response))
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Probes `cfg` as its protocol prescribes.
pub async fn probe_endpoint(client: &reqwest::Client, cfg: &EndpointConfig) -> ProbeResult {
    let at = Utc::now();
    let mut p = ProbeResult {
        at,
        health: EndpointHealth::Unknown,
        live: None,
        ready: None,
        model_ready: None,
        engine_alive: None,
        latency_ms: None,
        error: None,
    };
    let result = match cfg.protocol {
        EndpointProtocol::KServeV2 | EndpointProtocol::Triton => {
            probe_v2(client, cfg, &mut p).await
        }
        EndpointProtocol::Vllm => probe_vllm(client, cfg, &mut p).await,
        EndpointProtocol::Http => probe_http(client, cfg, &mut p).await,
        EndpointProtocol::Pinecone | EndpointProtocol::Qdrant => {
            return super::vector::probe_vector_store(client, cfg).await.0;
        }
    };
    if let Err(e) = result {
        p.health = EndpointHealth::Unreachable;
        p.error = Some(e.to_string());
    }
    p
}

/// KServe V2 / Open Inference Protocol (Triton too): live, ready, and the model's readiness.
async fn probe_v2(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
    p: &mut ProbeResult,
) -> Result<(), EndpointSourceError> {
    let live_url = join_url(&cfg.url, &["v2", "health", "live"])?;
    let ready_url = join_url(&cfg.url, &["v2", "health", "ready"])?;
    let model_url = match &cfg.model {
        Some(m) => Some(join_url(&cfg.url, &["v2", "models", m, "ready"])?),
        None => None,
    };
    let model_probe = async {
        match &model_url {
            Some(u) => Some(get_status(client, u).await),
            None => None,
        }
    };
    let (live, ready, model) = tokio::join!(
        get_status(client, &live_url),
        get_status(client, &ready_url),
        model_probe
    );
    let (ready_status, ms, _) = ready?;
    p.latency_ms = Some(ms);
    p.ready = Some(is_success(ready_status));
    p.live = live.as_ref().ok().map(|(s, _, _)| is_success(*s));
    p.model_ready = match model {
        Some(Ok((s, _, _))) => Some(is_success(s)),
        Some(Err(e)) => {
            p.error = Some(e.to_string());
            Some(false)
        }
        None => None,
    };
    p.health = if p.live == Some(false) {
        p.error
            .get_or_insert_with(|| format!("{live_url} is not live"));
        EndpointHealth::Dead
    } else if p.ready == Some(false) || p.model_ready == Some(false) {
        p.error
            .get_or_insert_with(|| format!("not ready: {ready_url} answered {ready_status}"));
        EndpointHealth::NotReady
    } else {
        EndpointHealth::Healthy
    };
    Ok(())
}

/// vLLM: `/health` (200, or 503 once the engine died) and the served models.
async fn probe_vllm(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
    p: &mut ProbeResult,
) -> Result<(), EndpointSourceError> {
    let health_url = join_url(&cfg.url, &["health"])?;
    let models_url = join_url(&cfg.url, &["v1", "models"])?;
    let (health, models) = tokio::join!(
        get_status(client, &health_url),
        get_status(client, &models_url)
    );
    let (status, ms, _) = health?;
    p.latency_ms = Some(ms);
    p.engine_alive = Some(is_success(status));
    p.live = Some(true);
    if !is_success(status) {
        p.error = Some(format!("{health_url} answered {status}"));
        p.health = if status >= 500 {
            EndpointHealth::Dead
        } else {
            EndpointHealth::NotReady
        };
        return Ok(());
    }
    p.model_ready = match models {
        Ok((s, _, response)) if is_success(s) => {
            let ids: Vec<String> = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| {
                    v["data"].as_array().map(|a| {
                        a.iter()
                            .filter_map(|m| m["id"].as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            Some(match &cfg.model {
                Some(m) => ids.iter().any(|id| id == m),
                None => !ids.is_empty(),
            })
        }
        // An API key guards the listing: it says nothing about the model.
        Ok((401 | 403, _, _)) => None,
        Ok(_) | Err(_) => Some(false),
    };
    p.ready = p.model_ready.or(Some(true));
    p.health = if p.model_ready == Some(false) {
        p.error = Some(format!(
            "{models_url} does not list {}",
            cfg.model.as_deref().unwrap_or("any model")
        ));
        EndpointHealth::NotReady
    } else {
        EndpointHealth::Healthy
    };
    Ok(())
}

/// A plain GET of the URL: 2xx/3xx healthy, 5xx dead, anything else not ready.
async fn probe_http(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
    p: &mut ProbeResult,
) -> Result<(), EndpointSourceError> {
    let (status, ms, _) = get_status(client, &cfg.url).await?;
    p.latency_ms = Some(ms);
    let ok = (200..400).contains(&status);
    p.ready = Some(ok);
    p.health = match status {
        _ if ok => EndpointHealth::Healthy,
        500.. => EndpointHealth::Dead,
        _ => EndpointHealth::NotReady,
    };
    if !ok {
        p.error = Some(format!("{} answered {status}", cfg.url));
    }
    Ok(())
}

/// The text of a `/metrics` page.
pub async fn scrape_metrics(
    client: &reqwest::Client,
    url: &str,
) -> Result<String, EndpointSourceError> {
    let (status, _, response) = get_status(client, url).await?;
    if !is_success(status) {
        return Err(EndpointSourceError::Status {
            url: url.to_string(),
            status,
        });
    }
    response
        .text()
        .await
        .map_err(|source| EndpointSourceError::Request {
            url: url.to_string(),
            source,
        })
}

// ---- the polling tasks ---------------------------------------------------------------------

pub use crate::model::update::EndpointUpdate;

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointPollOptions {
    /// Between the starts of two polls of one endpoint.
    pub interval: Duration,
    /// For each probe and scrape request.
    pub timeout: Duration,
    /// What the latency, error-rate and throughput figures cover (PromQL's `[5m]`).
    pub metrics_window: Duration,
}

impl EndpointPollOptions {
    /// The defaults: a 5 s request timeout, 5-minute metrics.
    pub fn new(interval: Duration) -> Self {
        EndpointPollOptions {
            interval,
            timeout: Duration::from_secs(5),
            metrics_window: Duration::from_secs(300),
        }
    }
}

/// Polls every endpoint every `interval` with the default options; see [`spawn_endpoints_with`].
pub fn spawn_endpoints(
    configs: Vec<EndpointConfig>,
    interval: Duration,
    tx: mpsc::Sender<EndpointUpdate>,
) {
    spawn_endpoints_with(configs, EndpointPollOptions::new(interval), tx);
}

/// One task per endpoint, each on its own schedule, so a slow or dead endpoint never delays
/// another. Each poll probes and scrapes at once and sends the endpoint's whole picture. A task
/// ends when the receiver is dropped. Call it inside a tokio runtime.
pub fn spawn_endpoints_with(
    configs: Vec<EndpointConfig>,
    options: EndpointPollOptions,
    tx: mpsc::Sender<EndpointUpdate>,
) {
    spawn_endpoints_with_roots(configs, options, &super::http::TlsRoots::default(), tx);
}

/// As [`spawn_endpoints_with`], trusting the private CAs in `roots` too.
pub fn spawn_endpoints_with_roots(
    configs: Vec<EndpointConfig>,
    options: EndpointPollOptions,
    roots: &super::http::TlsRoots,
    tx: mpsc::Sender<EndpointUpdate>,
) {
    let client = roots
        .client_builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .build()
        .map_err(EndpointSourceError::Client);
    for (index, config) in configs.into_iter().enumerate() {
        let tx = tx.clone();
        let options = options.clone();
        match &client {
            Ok(client) => {
                tokio::spawn(poll_endpoint(index, config, client.clone(), options, tx));
            }
            Err(e) => {
                let message = e.to_string();
                tokio::spawn(async move {
                    let mut model = EndpointModel::new(&config, Utc::now());
                    model.health = EndpointHealth::Unreachable;
                    model.metrics_error = Some(message);
                    let _ = tx
                        .send(EndpointUpdate {
                            index,
                            endpoint: model,
                            observation: None,
                        })
                        .await;
                });
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(endpoint = %config.name))]
async fn poll_endpoint(
    index: usize,
    config: EndpointConfig,
    client: reqwest::Client,
    options: EndpointPollOptions,
    tx: mpsc::Sender<EndpointUpdate>,
) {
    let metrics_url = metrics_url(&config);
    let mut tracker = EndpointTracker::new(config, options.metrics_window, Utc::now());
    let mut ticker = tokio::time::interval(options.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let scrape = async {
            match &metrics_url {
                None => None,
                Some(Err(e)) => Some(Err(EndpointSourceError::Url {
                    url: tracker.config().url.clone(),
                    message: e.to_string(),
                })),
                Some(Ok(url)) => Some(scrape_metrics(&client, url).await),
            }
        };
        let probe = async {
            if tracker.config().protocol.is_vector_store() {
                super::vector::probe_vector_store(&client, tracker.config()).await
            } else {
                (probe_endpoint(&client, tracker.config()).await, None)
            }
        };
        let ((probe, reading), scrape) = tokio::join!(probe, scrape);
        if let Some(Err(e)) = &scrape {
            tracing::debug!(error = %e, "scrape failed");
        }
        tracker.observe_vector(reading);
        let endpoint = tracker.observe(probe, scrape, Utc::now()).clone();
        let observation = tracker.observation().cloned();
        let update = EndpointUpdate {
            index,
            endpoint,
            observation,
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoint::SloConfig;

    const VLLM_FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vllm-metrics.txt"
    ));
    const TRITON_FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/triton-metrics.txt"
    ));

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap_or_default()
    }

    fn hist(bounds: &[f64], cumulative: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            cumulative: cumulative.to_vec(),
            sum: 0.0,
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn the_exposition_parser_reads_labels_escapes_special_values_and_timestamps() {
        let text = "# HELP x help\n# TYPE x counter\n\
            x_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\",} 3.5e+02 1700000000000\n\
            up 1\n\
            nan_metric NaN\n\
            inf_bucket{le=\"+Inf\"} +Inf\n";
        let samples = parse_exposition(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "x_total");
        assert_eq!(samples[0].label("b"), Some("q\"uo\\te\n"));
        assert_eq!(samples[0].value, 350.0);
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].value, f64::INFINITY);
    }

    #[test]
    fn a_malformed_metrics_line_is_an_error_that_names_its_line() {
        for (text, line) in [
            ("ok 1\nbad{a=\"1\" 2\n", 2),
            ("ok 1\n\nnovalue\n", 3),
            ("x{a=1} 2", 1),
            ("x 1 2 3", 1),
            ("x twelve", 1),
            ("x{a=\"unterminated} 1", 1),
        ] {
            match parse_exposition(text) {
                Err(EndpointSourceError::Exposition { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}")
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn real_vllm_and_triton_scrapes_parse_whole() {
        let vllm = parse_exposition(VLLM_FIXTURE).unwrap_or_else(|e| panic!("{e}"));
        assert!(vllm.len() > 300, "{}", vllm.len());
        let triton = parse_exposition(TRITON_FIXTURE).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            triton
                .iter()
                .any(|s| s.name == "nv_inference_request_success")
        );
    }

    #[test]
    fn quantiles_interpolate_within_buckets_like_histogram_quantile() {
        let inf = f64::INFINITY;
        let h = hist(&[0.1, 0.5, 1.0, inf], &[10.0, 60.0, 90.0, 100.0]);
        // rank 50 lies in (0.1, 0.5]: 40 of its 50 observations → 0.1 + 0.4 × 0.8.
        assert!(close(h.quantile(0.5), 0.42));
        assert!(close(h.quantile(0.05), 0.05), "first bucket starts at 0");
        assert!(close(h.quantile(0.9), 1.0));
        assert!(
            close(h.quantile(0.99), 1.0),
            "+Inf answers the highest finite bound"
        );
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(hist(&[0.1, inf], &[0.0, 0.0]).quantile(0.5), None);
        // Non-monotonic buckets (a scrape racing an observation) are forced monotonic.
        let racy = hist(&[1.0, 2.0, inf], &[10.0, 9.0, 10.0]);
        assert!(close(racy.quantile(0.5), 0.5));
    }

    #[test]
    fn the_vllm_fixture_histograms_have_their_buckets_and_no_quantile_without_requests() {
        let samples = parse_exposition(VLLM_FIXTURE).unwrap_or_else(|e| panic!("{e}"));
        let model = Some("Qwen/Qwen2.5-0.5B-Instruct");
        let e2e = Histogram::from_samples(
            &samples,
            "vllm:e2e_request_latency_seconds",
            "model_name",
            model,
        )
        .unwrap_or_else(|| panic!("no e2e histogram"));
        assert_eq!(e2e.bounds.len(), 22);
        assert_eq!(e2e.bounds.first(), Some(&0.3));
        assert_eq!(e2e.count(), 0.0);
        assert_eq!(e2e.quantile(0.99), None);
        let ttft = Histogram::from_samples(
            &samples,
            "vllm:time_to_first_token_seconds",
            "model_name",
            model,
        )
        .unwrap_or_else(|| panic!("no ttft histogram"));
        assert_eq!(ttft.bounds.len(), 23);
        // The fixture's trailing family declares itself but has no samples.
        assert_eq!(
            Histogram::from_samples(
                &samples,
                "http_request_duration_seconds",
                "model_name",
                None
            ),
            None
        );
    }

    /// The fixture's e2e histogram with `counts` observations per bucket (not cumulative).
    fn vllm_scrape(counts: &[(usize, u64)], ok: u64, failed: u64, waiting: u64) -> String {
        let bounds = [
            "0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0", "30.0",
            "40.0", "50.0", "60.0", "120.0", "240.0", "480.0", "960.0", "1920.0", "7680.0", "+Inf",
        ];
        let mut out = String::new();
        let mut cum = 0;
        for (i, le) in bounds.iter().enumerate() {
            cum += counts
                .iter()
                .filter(|(b, _)| *b == i)
                .map(|(_, c)| c)
                .sum::<u64>();
            out.push_str(&format!(
                "vllm:e2e_request_latency_seconds_bucket{{engine=\"0\",le=\"{le}\",model_name=\"m\"}} {cum}.0\n"
            ));
        }
        out.push_str(&format!(
            "vllm:e2e_request_latency_seconds_count{{engine=\"0\",model_name=\"m\"}} {cum}.0\n\
             vllm:e2e_request_latency_seconds_sum{{engine=\"0\",model_name=\"m\"}} {}\n\
             vllm:num_requests_running{{engine=\"0\",model_name=\"m\"}} 3.0\n\
             vllm:num_requests_waiting{{engine=\"0\",model_name=\"m\"}} {waiting}.0\n\
             http_requests_total{{handler=\"/v1/chat/completions\",method=\"POST\",status=\"2xx\"}} {ok}.0\n\
             http_requests_total{{handler=\"/v1/chat/completions\",method=\"POST\",status=\"5xx\"}} {failed}.0\n\
             http_requests_total{{handler=\"/metrics\",method=\"GET\",status=\"2xx\"}} 999.0\n\
             http_requests_total{{handler=\"/health\",method=\"GET\",status=\"5xx\"}} 999.0\n",
            cum as f64 * 0.4
        ));
        out
    }

    fn vllm_config(slo: SloConfig) -> EndpointConfig {
        EndpointConfig {
            name: "chat".into(),
            url: "http://127.0.0.1:1".into(),
            protocol: EndpointProtocol::Vllm,
            model: Some("m".into()),
            metrics_url: None,
            serving: None,
            slo,
            drift: None,
            registry: None,
            vector: None,
            ingestion: None,
        }
    }

    fn probe(at: DateTime<Utc>, health: EndpointHealth) -> ProbeResult {
        ProbeResult {
            at,
            health,
            live: Some(true),
            ready: Some(health == EndpointHealth::Healthy),
            model_ready: None,
            engine_alive: Some(health != EndpointHealth::Dead),
            latency_ms: Some(1.0),
            error: None,
        }
    }

    #[test]
    fn metrics_come_from_the_difference_between_two_scrapes() {
        let mut tracker = EndpointTracker::new(
            vllm_config(SloConfig::default()),
            Duration::from_secs(300),
            t(0),
        );
        let first = vllm_scrape(&[(1, 1000)], 1000, 0, 0);
        let model = tracker.observe(probe(t(0), EndpointHealth::Healthy), Some(Ok(first)), t(0));
        let m = model.metrics.clone().unwrap_or_default();
        assert_eq!(m.requests, 0.0, "one scrape has no rate yet");
        assert_eq!(m.latency_p99_ms, None);
        // 10 s later: 80 more fast (0.3–0.5 s) and 20 slow (2.5–5 s); 90 ok, 10 failed.
        let second = vllm_scrape(&[(1, 1080), (7, 20)], 1090, 10, 4);
        let model = tracker.observe(
            probe(t(10), EndpointHealth::Healthy),
            Some(Ok(second)),
            t(10),
        );
        let m = model.metrics.clone().unwrap_or_default();
        assert_eq!(m.requests, 100.0, "probe and scrape handlers do not count");
        assert!(close(m.error_rate, 0.1));
        assert!(close(m.throughput_rps, 10.0));
        // rank 50 of 100: 50 of the 80 in (0.3, 0.5] → 300 + 200 × 50/80 ms.
        assert!(close(m.latency_p50_ms, 425.0), "{:?}", m.latency_p50_ms);
        // rank 99: 19 of the 20 in (2.5, 5] → 2500 + 2500 × 19/20 ms.
        assert!(close(m.latency_p99_ms, 4875.0), "{:?}", m.latency_p99_ms);
        assert_eq!(m.queue_running, Some(3.0));
        assert_eq!(m.queue_waiting, Some(4.0));
    }

    #[test]
    fn a_counter_reset_counts_what_the_restarted_process_reports() {
        let mut tracker = EndpointTracker::new(
            vllm_config(SloConfig::default()),
            Duration::from_secs(300),
            t(0),
        );
        let before = vllm_scrape(&[(0, 500)], 500, 0, 0);
        tracker.observe(probe(t(0), EndpointHealth::Healthy), Some(Ok(before)), t(0));
        let restarted = vllm_scrape(&[(0, 30)], 27, 3, 0);
        let model = tracker.observe(
            probe(t(10), EndpointHealth::Healthy),
            Some(Ok(restarted)),
            t(10),
        );
        let m = model.metrics.clone().unwrap_or_default();
        assert_eq!(m.requests, 30.0);
        assert!(close(m.error_rate, 0.1));
        assert!(m.latency_p99_ms.is_some_and(|p| p <= 300.0));
    }

    #[test]
    fn a_failed_scrape_keeps_the_error_and_the_next_one_spans_the_gap() {
        let mut tracker = EndpointTracker::new(
            vllm_config(SloConfig::default()),
            Duration::from_secs(300),
            t(0),
        );
        tracker.observe(
            probe(t(0), EndpointHealth::Healthy),
            Some(Ok(vllm_scrape(&[(0, 10)], 10, 0, 0))),
            t(0),
        );
        let model = tracker.observe(
            probe(t(10), EndpointHealth::Healthy),
            Some(Ok("garbage here".into())),
            t(10),
        );
        assert!(
            model
                .metrics_error
                .as_deref()
                .is_some_and(|e| e.contains("line 1")),
            "{:?}",
            model.metrics_error
        );
        let model = tracker.observe(
            probe(t(20), EndpointHealth::Healthy),
            Some(Ok(vllm_scrape(&[(0, 30)], 30, 0, 0))),
            t(20),
        );
        assert_eq!(model.metrics_error, None);
        let m = model.metrics.clone().unwrap_or_default();
        assert_eq!(m.requests, 20.0);
        assert!(close(m.throughput_rps, 1.0));
    }

    #[test]
    fn triton_counters_give_error_rate_mean_latency_and_queue() {
        let cfg = EndpointConfig {
            protocol: EndpointProtocol::Triton,
            model: Some("densenet_onnx".into()),
            ..vllm_config(SloConfig::default())
        };
        let zero: String = TRITON_FIXTURE
            .lines()
            .filter(|l| l.starts_with("nv_inference_request_"))
            .map(|l| {
                let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
                format!("{series} 0\n")
            })
            .collect();
        let mut tracker = EndpointTracker::new(cfg, Duration::from_secs(300), t(0));
        tracker.observe(probe(t(0), EndpointHealth::Healthy), Some(Ok(zero)), t(0));
        let model = tracker.observe(
            probe(t(3), EndpointHealth::Healthy),
            Some(Ok(TRITON_FIXTURE.to_string())),
            t(3),
        );
        let m = model.metrics.clone().unwrap_or_default();
        assert_eq!(m.requests, 3.0);
        assert_eq!(m.error_rate, Some(0.0));
        assert!(close(m.throughput_rps, 1.0));
        // 1 327 965 µs over 3 requests.
        assert!(
            close(m.latency_mean_ms, 1327.965 / 3.0),
            "{:?}",
            m.latency_mean_ms
        );
        // The summary's quantile values (all "3" µs in this capture) are read as they are.
        assert!(close(m.latency_p99_ms, 0.003));
        assert_eq!(m.queue_waiting, Some(0.0));
    }

    /// One sample a minute from `from` to `to` minutes, with `bad` of 1000 events failing.
    #[test]
    fn urls_are_joined_segment_by_segment() {
        assert_eq!(
            join_url("http://h:8000/", &["v2", "models", "a/b", "ready"]).ok(),
            Some("http://h:8000/v2/models/a%2Fb/ready".to_string())
        );
        assert_eq!(
            join_url("http://h:8000/prefix", &["health"]).ok(),
            Some("http://h:8000/prefix/health".to_string())
        );
        assert!(join_url("not a url", &["x"]).is_err());
        let http = EndpointConfig {
            protocol: EndpointProtocol::Http,
            ..vllm_config(SloConfig::default())
        };
        assert!(metrics_url(&http).is_none());
    }

    fn reading(at: DateTime<Utc>, count: u64) -> Option<Result<VectorReading, String>> {
        Some(Ok(VectorReading {
            at,
            count,
            dimension: Some(8),
            fullness: None,
            indexed: None,
            status: None,
        }))
    }

    #[test]
    fn a_vector_store_keeps_when_its_count_last_grew_and_its_growth_over_the_window() {
        let cfg = EndpointConfig {
            protocol: EndpointProtocol::Pinecone,
            ..vllm_config(SloConfig::default())
        };
        let mut tracker = EndpointTracker::new(cfg, Duration::from_secs(300), t(0));
        tracker.observe_vector(reading(t(0), 1000));
        tracker.observe_vector(reading(t(60), 1600));
        let v = tracker
            .model()
            .vector
            .clone()
            .unwrap_or_else(|| panic!("no vector"));
        assert_eq!(v.grew_at, Some(t(60)));
        assert!(close(v.growth_per_min, 600.0), "{:?}", v.growth_per_min);
        tracker.observe_vector(reading(t(120), 1600));
        tracker.observe_vector(Some(Err("boom".into())));
        let v = tracker
            .model()
            .vector
            .clone()
            .unwrap_or_else(|| panic!("no vector"));
        assert_eq!(
            v.grew_at,
            Some(t(60)),
            "a flat count keeps when it last grew"
        );
        assert_eq!(
            v.latest.map(|l| l.count),
            Some(1600),
            "a failed read keeps the last"
        );
        assert_eq!(v.error.as_deref(), Some("boom"));
    }

    #[test]
    fn a_pinecone_probe_is_one_request_of_its_slis_with_its_query_latency() {
        let cfg = EndpointConfig {
            protocol: EndpointProtocol::Pinecone,
            ..vllm_config(SloConfig::default())
        };
        let mut tracker = EndpointTracker::new(cfg, Duration::from_secs(300), t(0));
        let slow = |at| ProbeResult {
            latency_ms: Some(400.0),
            ..probe(at, EndpointHealth::Healthy)
        };
        tracker.observe(slow(t(0)), None, t(0));
        assert_eq!(tracker.observation().and_then(|o| o.interval.clone()), None);
        tracker.observe(slow(t(10)), None, t(10));
        let interval = tracker
            .observation()
            .and_then(|o| o.interval.clone())
            .unwrap_or_else(|| panic!("no interval"));
        assert_eq!((interval.requests, interval.failed), (Some(1.0), Some(0.0)));
        let h = interval.latency.unwrap_or_else(|| panic!("no latency"));
        // Exactly one query, above a 300 ms target and within a 400 ms one.
        assert_eq!(h.cumulative, vec![0.0, 1.0, 1.0]);
        assert!(h.bounds[0] < 0.4 && h.bounds[1] == 0.4);
        tracker.observe(probe(t(20), EndpointHealth::Dead), None, t(20));
        let m = tracker.model().metrics.clone().unwrap_or_default();
        assert_eq!((m.requests, m.errors), (2.0, 1.0));
        assert!(
            m.latency_p99_ms.is_some_and(|p| p > 250.0 && p <= 500.0),
            "{m:?}"
        );
    }
}
