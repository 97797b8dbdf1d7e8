//! Model endpoint source: probes (KServe V2, vLLM, Triton, plain HTTP) and `/metrics` scrapes,
//! turned into latency quantiles, TTFT, error rate, throughput and queue depth; SLO burn rates by
//! the SRE workbook's multiwindow, multi-burn-rate rules; PSI drift of a histogram metric. One
//! tokio task per endpoint sends [`EndpointUpdate`]s; it never touches the UI or the store.
//! Imports model only.
//!
//! The burn-rate and drift computations are pure functions over bounded, age-pruned series
//! ([`SliHistory`], [`psi`]), and [`EndpointTracker`] folds probe and scrape results into an
//! [`EndpointModel`] without I/O, so all of it can be fed synthetic data.
//!
//! `/metrics` bodies are read with the sources' shared [`prom_text`] parser.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;

use super::prom_text::{self, Record};
use crate::model::endpoint::{
    BurnAlert, BurnSeverity, BurnWindow, DriftBand, DriftConfig, DriftResult, EndpointConfig,
    EndpointHealth, EndpointMetrics, EndpointModel, EndpointProtocol, ProbeResult, SloBurn,
    SloKind,
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

    /// Observations at or below `x`, interpolated linearly inside the bucket holding `x` (as
    /// PromQL's `histogram_fraction`); above the highest finite bound only that bound's count is
    /// known, so the rest counts as above.
    pub fn count_at_or_below(&self, x: f64) -> f64 {
        let mut lower = 0.0;
        let mut below = 0.0;
        for (le, c) in self.bounds.iter().zip(&self.cumulative) {
            if le.is_infinite() {
                return below;
            }
            if x <= *le {
                if *le <= lower {
                    return *c;
                }
                let share = ((x - lower) / (le - lower)).clamp(0.0, 1.0);
                return below + (c - below) * share;
            }
            lower = *le;
            below = *c;
        }
        below
    }

    /// Per-bucket (not cumulative) counts.
    pub fn bucket_counts(&self) -> Vec<f64> {
        let mut prev = 0.0;
        self.cumulative
            .iter()
            .map(|c| {
                let d = (c - prev).max(0.0);
                prev = *c;
                d
            })
            .collect()
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
    }
    r
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

// ---- SLO burn rate -------------------------------------------------------------------------

/// Good and total events in the interval that ends at `at` (a scrape's request increase, or one
/// probe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliSample {
    pub at: DateTime<Utc>,
    pub good: f64,
    pub total: f64,
}

/// An SLI series pruned by age: samples older than `max_age` before the newest one go, and at
/// most [`SliHistory::MAX_SAMPLES`] are kept whatever the cadence.
#[derive(Debug, Clone)]
pub struct SliHistory {
    samples: VecDeque<SliSample>,
    max_age: Duration,
}

impl SliHistory {
    pub const MAX_SAMPLES: usize = 200_000;

    pub fn new(max_age: Duration) -> Self {
        SliHistory {
            samples: VecDeque::new(),
            max_age,
        }
    }

    pub fn push(&mut self, sample: SliSample) {
        self.samples.push_back(sample);
        if let Some(cutoff) = sample.at.checked_sub_signed(span(self.max_age)) {
            while self.samples.front().is_some_and(|s| s.at < cutoff) {
                self.samples.pop_front();
            }
        }
        while self.samples.len() > Self::MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// (good, total) of the samples in the window `(now - window, now]`.
    pub fn totals(&self, now: DateTime<Utc>, window: Duration) -> (f64, f64) {
        let from = now.checked_sub_signed(span(window));
        self.samples
            .iter()
            .filter(|s| s.at <= now && from.is_none_or(|f| s.at > f))
            .fold((0.0, 0.0), |(g, t), s| (g + s.good, t + s.total))
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

fn span(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// How many times faster than sustainable the error budget burns: the bad share divided by the
/// budget `1 - objective`. `None` without events or for an objective outside (0, 1).
pub fn burn_rate(good: f64, total: f64, objective: f64) -> Option<f64> {
    if total <= 0.0 || !(objective > 0.0 && objective < 1.0) {
        return None;
    }
    let bad = (total - good).max(0.0);
    Some(bad / total / (1.0 - objective))
}

/// Fires `severity` when the burn rate is at least `threshold` over both windows: the long one
/// shows the budget really went, the short one that it is still going.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    pub severity: BurnSeverity,
    pub threshold: f64,
    pub long: Duration,
    pub short: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BurnPolicy {
    pub rules: Vec<BurnRule>,
}

impl Default for BurnPolicy {
    fn default() -> Self {
        Self::sre_workbook()
    }
}

impl BurnPolicy {
    /// The Google SRE workbook's rules for a 30-day SLO ("Alerting on SLOs", table 5-8): page at
    /// 14.4× over 1 h and 5 m or 6× over 6 h and 30 m; ticket at 3× over 1 d and 2 h or 1× over
    /// 3 d and 6 h.
    pub fn sre_workbook() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        let rule = |severity, threshold, long: u64, short: u64| BurnRule {
            severity,
            threshold,
            long: Duration::from_secs(long),
            short: Duration::from_secs(short),
        };
        BurnPolicy {
            rules: vec![
                rule(BurnSeverity::Page, 14.4, HOUR, 5 * MIN),
                rule(BurnSeverity::Page, 6.0, 6 * HOUR, 30 * MIN),
                rule(BurnSeverity::Ticket, 3.0, 24 * HOUR, 2 * HOUR),
                rule(BurnSeverity::Ticket, 1.0, 72 * HOUR, 6 * HOUR),
            ],
        }
    }

    /// The same rules with every window multiplied by `factor` (e.g. 1/120 turns 1 h into 30 s),
    /// for rehearsals and tests at a fast cadence. A factor that is not a positive finite number
    /// leaves the windows as they are.
    pub fn scaled(&self, factor: f64) -> Self {
        let scale = |d: Duration| {
            if factor.is_finite() && factor > 0.0 {
                Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(d)
            } else {
                d
            }
        };
        BurnPolicy {
            rules: self
                .rules
                .iter()
                .map(|r| BurnRule {
                    long: scale(r.long),
                    short: scale(r.short),
                    ..*r
                })
                .collect(),
        }
    }

    pub fn longest_window(&self) -> Duration {
        self.rules
            .iter()
            .flat_map(|r| [r.long, r.short])
            .max()
            .unwrap_or_default()
    }
}

/// Evaluates every rule of `policy` over `history` as of `now`.
pub fn evaluate_burn(
    kind: SloKind,
    history: &SliHistory,
    objective: f64,
    policy: &BurnPolicy,
    now: DateTime<Utc>,
) -> SloBurn {
    let window = |d: Duration| {
        let (good, total) = history.totals(now, d);
        BurnWindow {
            window_secs: d.as_secs_f64(),
            good,
            total,
            burn_rate: burn_rate(good, total, objective),
        }
    };
    let mut spans: Vec<Duration> = policy
        .rules
        .iter()
        .flat_map(|r| [r.short, r.long])
        .collect();
    spans.sort();
    spans.dedup();
    let mut alerts: Vec<BurnAlert> = policy
        .rules
        .iter()
        .filter_map(|r| {
            let (long, short) = (window(r.long), window(r.short));
            let burning = |w: &BurnWindow| w.burn_rate.is_some_and(|b| b >= r.threshold);
            (burning(&long) && burning(&short)).then_some(BurnAlert {
                severity: r.severity,
                threshold: r.threshold,
                long,
                short,
            })
        })
        .collect();
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.threshold.total_cmp(&a.threshold))
    });
    SloBurn {
        kind,
        objective,
        evaluated_at: now,
        windows: spans.into_iter().map(window).collect(),
        alerts,
    }
}

// ---- drift ---------------------------------------------------------------------------------

/// Stands in for an empty bucket's share, so PSI stays finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population stability index between two sets of bucket counts (not cumulative) of the same
/// layout: Σ (c − b) · ln(c / b) over the buckets' shares. `None` when the layouts differ or a
/// side has no observations.
pub fn psi(baseline: &[f64], current: &[f64]) -> Option<f64> {
    if baseline.len() != current.len() || baseline.is_empty() {
        return None;
    }
    let (bt, ct): (f64, f64) = (baseline.iter().sum(), current.iter().sum());
    if bt <= 0.0 || ct <= 0.0 {
        return None;
    }
    Some(
        baseline
            .iter()
            .zip(current)
            .map(|(b, c)| {
                let b = (b / bt).max(PSI_EPSILON);
                let c = (c / ct).max(PSI_EPSILON);
                (c - b) * (c / b).ln()
            })
            .sum(),
    )
}

/// The baseline is the first `window_secs` observed after start (or after the histogram's
/// layout changed); the current window slides.
#[derive(Debug, Clone)]
struct DriftTracker {
    config: DriftConfig,
    started: Option<DateTime<Utc>>,
    baseline: Option<Histogram>,
    baseline_complete: bool,
    recent: VecDeque<(DateTime<Utc>, Histogram)>,
}

impl DriftTracker {
    fn new(config: DriftConfig) -> Self {
        DriftTracker {
            config,
            started: None,
            baseline: None,
            baseline_complete: false,
            recent: VecDeque::new(),
        }
    }

    fn observe(&mut self, delta: &IntervalDelta) -> Option<DriftResult> {
        let h = delta.drift.as_ref()?;
        let window = span(Duration::from_secs(self.config.window_secs));
        let relayout = self.baseline.as_ref().is_some_and(|b| b.bounds != h.bounds);
        if relayout || self.started.is_none() {
            let interval = TimeDelta::milliseconds((delta.secs * 1000.0) as i64);
            self.started = Some(delta.at.checked_sub_signed(interval).unwrap_or(delta.at));
            self.baseline = None;
            self.baseline_complete = false;
            self.recent.clear();
        }
        if !self.baseline_complete {
            match &mut self.baseline {
                Some(b) => {
                    b.add(h);
                }
                None => self.baseline = Some(h.clone()),
            }
            self.baseline_complete = self.started.is_some_and(|s| delta.at - s >= window);
        }
        self.recent.push_back((delta.at, h.clone()));
        if let Some(cutoff) = delta.at.checked_sub_signed(window) {
            while self.recent.front().is_some_and(|(at, _)| *at <= cutoff) {
                self.recent.pop_front();
            }
        }
        if !self.baseline_complete {
            return None;
        }
        let baseline = self.baseline.as_ref()?;
        let current = sum_histograms(self.recent.iter().map(|(_, h)| h))?;
        let value = psi(&baseline.bucket_counts(), &current.bucket_counts())?;
        Some(DriftResult {
            metric: self.config.metric.clone(),
            psi: value,
            band: DriftBand::of(value),
            baseline_count: baseline.count(),
            current_count: current.count(),
            computed_at: delta.at,
        })
    }
}

// ---- folding probes and scrapes into the model ---------------------------------------------

/// The state of one endpoint between polls: the last scrape, the metrics window, the SLI
/// histories and the drift windows. No I/O: [`observe`](Self::observe) takes the results.
#[derive(Debug, Clone)]
pub struct EndpointTracker {
    config: EndpointConfig,
    policy: BurnPolicy,
    metrics_window: Duration,
    prev: Option<(DateTime<Utc>, Reading)>,
    deltas: VecDeque<IntervalDelta>,
    availability: SliHistory,
    latency: SliHistory,
    drift: Option<DriftTracker>,
    model: EndpointModel,
}

impl EndpointTracker {
    pub fn new(
        config: EndpointConfig,
        policy: BurnPolicy,
        metrics_window: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let longest = policy.longest_window();
        EndpointTracker {
            model: EndpointModel::new(&config, now),
            drift: config.drift.clone().map(DriftTracker::new),
            config,
            policy,
            metrics_window,
            prev: None,
            deltas: VecDeque::new(),
            availability: SliHistory::new(longest),
            latency: SliHistory::new(longest),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn model(&self) -> &EndpointModel {
        &self.model
    }

    /// Folds in one poll: the probe, and the scrape's body (`None` where the endpoint has no
    /// metrics). The availability SLI takes the requests counted since the previous scrape when
    /// there were any, else the probe (one event, good when healthy), so an idle endpoint
    /// whose engine died still burns its budget.
    pub fn observe(
        &mut self,
        probe: ProbeResult,
        scrape: Option<Result<String, EndpointSourceError>>,
        now: DateTime<Utc>,
    ) -> &EndpointModel {
        let probe_good = probe.health == EndpointHealth::Healthy;
        self.model.health = probe.health;
        if probe_good {
            self.model.last_healthy = Some(probe.at);
        }
        self.model.probe = Some(probe);
        self.model.updated_at = now;

        let mut availability_sample = None;
        match scrape.map(|r| r.and_then(|body| parse_exposition(&body))) {
            None => {}
            Some(Err(e)) => self.model.metrics_error = Some(e.to_string()),
            Some(Ok(samples)) => {
                availability_sample = self.fold_scrape(&samples, now);
                self.model.metrics_error = None;
                self.model.last_scraped = Some(now);
            }
        }
        self.availability
            .push(availability_sample.unwrap_or(SliSample {
                at: now,
                good: if probe_good { 1.0 } else { 0.0 },
                total: 1.0,
            }));

        let slo = self.config.slo;
        self.model.availability_burn = slo.availability.map(|objective| {
            evaluate_burn(
                SloKind::Availability,
                &self.availability,
                objective,
                &self.policy,
                now,
            )
        });
        self.model.latency_burn = slo.latency.map(|l| {
            evaluate_burn(
                SloKind::Latency,
                &self.latency,
                l.percentile.quantile(),
                &self.policy,
                now,
            )
        });
        &self.model
    }

    /// Takes one parsed scrape; answers the availability sample its requests make, if any.
    fn fold_scrape(&mut self, samples: &[MetricSample], now: DateTime<Utc>) -> Option<SliSample> {
        let reading = read_metrics(&self.config, samples);
        let mut availability = None;
        let secs = self
            .prev
            .as_ref()
            .map(|(at, _)| (now - *at).num_milliseconds() as f64 / 1000.0);
        if let (Some((_, prev)), Some(secs)) = (&self.prev, secs.filter(|s| *s > 0.0)) {
            let delta = IntervalDelta::between(prev, &reading, secs, now);
            if let (Some(total), Some(failed)) = (delta.requests(), delta.failed)
                && total > 0.0
            {
                availability = Some(SliSample {
                    at: now,
                    good: total - failed,
                    total,
                });
            }
            if let (Some(slo), Some(h)) = (self.config.slo.latency, &delta.latency)
                && h.count() > 0.0
            {
                self.latency.push(SliSample {
                    at: now,
                    good: h.count_at_or_below(slo.target_ms / 1000.0),
                    total: h.count(),
                });
            }
            if let Some(drift) = &mut self.drift
                && let Some(result) = drift.observe(&delta)
            {
                self.model.drift = Some(result);
            }
            self.deltas.push_back(delta);
            if let Some(cutoff) = now.checked_sub_signed(span(self.metrics_window)) {
                while self.deltas.len() > 1 && self.deltas.front().is_some_and(|d| d.at <= cutoff) {
                    self.deltas.pop_front();
                }
            }
        }
        self.model.metrics = Some(window_metrics(&self.deltas, &reading));
        self.prev = Some((now, reading));
        availability
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
        (None, EndpointProtocol::Http) => None,
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

/// The latest picture of endpoint number `index` (its place in the configured list).
#[derive(Debug, Clone)]
pub struct EndpointUpdate {
    pub index: usize,
    pub endpoint: EndpointModel,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointPollOptions {
    /// Between the starts of two polls of one endpoint.
    pub interval: Duration,
    /// For each probe and scrape request.
    pub timeout: Duration,
    /// What the latency, error-rate and throughput figures cover (PromQL's `[5m]`).
    pub metrics_window: Duration,
    pub burn_policy: BurnPolicy,
}

impl EndpointPollOptions {
    /// The defaults: a 5 s request timeout, 5-minute metrics, the SRE workbook's windows.
    pub fn new(interval: Duration) -> Self {
        EndpointPollOptions {
            interval,
            timeout: Duration::from_secs(5),
            metrics_window: Duration::from_secs(300),
            burn_policy: BurnPolicy::sre_workbook(),
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
    let client = reqwest::Client::builder()
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
    let mut tracker = EndpointTracker::new(
        config,
        options.burn_policy,
        options.metrics_window,
        Utc::now(),
    );
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
        let (probe, scrape) = tokio::join!(probe_endpoint(&client, tracker.config()), scrape);
        if let Some(Err(e)) = &scrape {
            tracing::debug!(error = %e, "scrape failed");
        }
        let endpoint = tracker.observe(probe, scrape, Utc::now()).clone();
        if tx.send(EndpointUpdate { index, endpoint }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoint::{LatencyPercentile, LatencySlo, SloConfig};

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
            BurnPolicy::sre_workbook(),
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
            BurnPolicy::sre_workbook(),
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
            BurnPolicy::sre_workbook(),
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
        let mut tracker = EndpointTracker::new(
            cfg,
            BurnPolicy::sre_workbook(),
            Duration::from_secs(300),
            t(0),
        );
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
    fn minutes(h: &mut SliHistory, from: i64, to: i64, bad: f64) {
        for m in from..to {
            h.push(SliSample {
                at: t(m * 60),
                good: 1000.0 - bad,
                total: 1000.0,
            });
        }
    }

    const THREE_DAYS_MIN: i64 = 3 * 24 * 60;

    #[test]
    fn a_fast_burn_pages() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN - 10, 0.1);
        // Ten minutes at 30 % errors: 300× the budget of a 99.9 % SLO.
        minutes(&mut h, THREE_DAYS_MIN - 10, THREE_DAYS_MIN, 300.0);
        let burn = evaluate_burn(
            SloKind::Availability,
            &h,
            0.999,
            &policy,
            t((THREE_DAYS_MIN - 1) * 60),
        );
        assert_eq!(burn.severity(), Some(BurnSeverity::Page));
        let first = burn.alerts.first().copied();
        assert_eq!(first.map(|a| a.threshold), Some(14.4));
        // 1 h: 10 minutes of 30 % in 60 → 5 % bad → 50×.
        assert!(first.is_some_and(|a| close(a.long.burn_rate, 50.0 + 0.1 * 50.0 / 60.0)));
        assert_eq!(burn.windows.len(), 7, "5m 30m 1h 2h 6h 1d 3d");
    }

    #[test]
    fn a_slow_burn_opens_a_ticket_but_does_not_page() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN - 30 * 60, 0.1);
        // 30 hours at 4× the budget.
        minutes(&mut h, THREE_DAYS_MIN - 30 * 60, THREE_DAYS_MIN, 4.0);
        let burn = evaluate_burn(
            SloKind::Availability,
            &h,
            0.999,
            &policy,
            t((THREE_DAYS_MIN - 1) * 60),
        );
        assert_eq!(burn.severity(), Some(BurnSeverity::Ticket));
        let thresholds: Vec<f64> = burn.alerts.iter().map(|a| a.threshold).collect();
        assert_eq!(thresholds, vec![3.0, 1.0]);
    }

    #[test]
    fn a_healthy_series_fires_nothing() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN, 0.5);
        let burn = evaluate_burn(
            SloKind::Availability,
            &h,
            0.999,
            &policy,
            t((THREE_DAYS_MIN - 1) * 60),
        );
        assert!(burn.alerts.is_empty(), "{:?}", burn.alerts);
        assert!(burn.windows.iter().all(|w| close(w.burn_rate, 0.5)));
    }

    #[test]
    fn a_burst_that_has_ended_no_longer_pages_on_the_fast_rule() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, 100, 0.0);
        minutes(&mut h, 100, 105, 1000.0);
        minutes(&mut h, 105, 120, 0.0);
        let burn = evaluate_burn(SloKind::Availability, &h, 0.999, &policy, t(119 * 60));
        assert!(
            burn.windows
                .iter()
                .any(|w| w.window_secs == 3600.0 && w.burn_rate.is_some_and(|b| b > 14.4)),
            "the last hour burned fast"
        );
        assert!(
            !burn.alerts.iter().any(|a| a.threshold == 14.4),
            "but the last 5 minutes did not: {:?}",
            burn.alerts
        );
    }

    #[test]
    fn history_is_pruned_by_age_and_windows_without_events_have_no_rate() {
        let mut h = SliHistory::new(Duration::from_secs(600));
        minutes(&mut h, 0, 60, 0.0);
        assert_eq!(h.len(), 11, "ten minutes back from the newest, inclusive");
        let burn = evaluate_burn(
            SloKind::Availability,
            &SliHistory::new(Duration::from_secs(60)),
            0.999,
            &BurnPolicy::sre_workbook(),
            t(0),
        );
        assert!(burn.windows.iter().all(|w| w.burn_rate.is_none()));
        assert!(burn.alerts.is_empty());
        assert_eq!(
            burn_rate(0.0, 10.0, 1.0),
            None,
            "a 100 % SLO has no budget to burn"
        );
    }

    #[test]
    fn scaled_policies_keep_thresholds_and_shrink_windows() {
        let fast = BurnPolicy::sre_workbook().scaled(1.0 / 120.0);
        assert_eq!(fast.rules[0].long, Duration::from_secs(30));
        assert_eq!(fast.rules[0].short, Duration::from_millis(2500));
        assert_eq!(fast.rules[0].threshold, 14.4);
        assert_eq!(fast.longest_window(), Duration::from_secs(36 * 60));
        assert_eq!(
            BurnPolicy::sre_workbook().scaled(-1.0),
            BurnPolicy::sre_workbook()
        );
    }

    #[test]
    fn a_slow_latency_histogram_burns_the_latency_slo() {
        let slo = SloConfig {
            latency: Some(LatencySlo {
                percentile: LatencyPercentile::P99,
                target_ms: 2500.0,
            }),
            availability: Some(0.999),
        };
        let mut tracker = EndpointTracker::new(
            vllm_config(slo),
            BurnPolicy::sre_workbook(),
            Duration::from_secs(300),
            t(0),
        );
        tracker.observe(
            probe(t(0), EndpointHealth::Healthy),
            Some(Ok(vllm_scrape(&[], 0, 0, 0))),
            t(0),
        );
        // 100 requests, 20 of them slower than 2.5 s: 20 % bad against a 1 % budget.
        let model = tracker.observe(
            probe(t(60), EndpointHealth::Healthy),
            Some(Ok(vllm_scrape(&[(1, 80), (7, 20)], 100, 0, 0))),
            t(60),
        );
        let latency = model.latency_burn.clone();
        assert_eq!(
            latency.as_ref().and_then(SloBurn::severity),
            Some(BurnSeverity::Page)
        );
        assert!(latency.is_some_and(|b| close(b.windows[0].burn_rate, 20.0)));
        assert_eq!(
            model.availability_burn.as_ref().and_then(SloBurn::severity),
            None,
            "nothing failed"
        );
    }

    #[test]
    fn the_fraction_below_a_target_interpolates_inside_its_bucket() {
        let inf = f64::INFINITY;
        let h = hist(&[1.0, 2.0, 4.0, inf], &[10.0, 30.0, 40.0, 50.0]);
        assert_eq!(h.count_at_or_below(1.0), 10.0);
        assert_eq!(h.count_at_or_below(1.5), 20.0);
        assert_eq!(h.count_at_or_below(0.5), 5.0);
        assert_eq!(
            h.count_at_or_below(100.0),
            40.0,
            "beyond the last bound is slow"
        );
    }

    #[test]
    fn an_idle_endpoint_whose_probe_fails_burns_availability() {
        let slo = SloConfig {
            latency: None,
            availability: Some(0.999),
        };
        let mut tracker = EndpointTracker::new(
            vllm_config(slo),
            BurnPolicy::sre_workbook(),
            Duration::from_secs(300),
            t(0),
        );
        let idle = vllm_scrape(&[], 0, 0, 0);
        for s in 0..3 {
            tracker.observe(
                probe(t(s * 10), EndpointHealth::Dead),
                Some(Ok(idle.clone())),
                t(s * 10),
            );
        }
        let model = tracker.model();
        assert_eq!(model.health, EndpointHealth::Dead);
        assert_eq!(
            model.availability_burn.as_ref().and_then(SloBurn::severity),
            Some(BurnSeverity::Page)
        );
    }

    #[test]
    fn psi_matches_hand_computed_values_and_bands() {
        let p = |b: &[f64], c: &[f64]| psi(b, c).unwrap_or(f64::NAN);
        assert_eq!(
            p(&[5.0, 5.0], &[50.0, 50.0]),
            0.0,
            "proportions, not counts"
        );
        // 0.1·ln 1.2 + 0.1·ln 1.25
        let small = p(&[50.0, 50.0], &[60.0, 40.0]);
        assert!((small - 0.040_54).abs() < 1e-4, "{small}");
        assert_eq!(DriftBand::of(small), DriftBand::None);
        let moderate = p(&[50.0, 50.0], &[70.0, 30.0]);
        assert!((moderate - 0.169_46).abs() < 1e-4, "{moderate}");
        assert_eq!(DriftBand::of(moderate), DriftBand::Moderate);
        let big = p(&[50.0, 50.0], &[90.0, 10.0]);
        assert!((big - 0.878_89).abs() < 1e-4, "{big}");
        assert_eq!(DriftBand::of(big), DriftBand::Significant);
        // An empty bucket uses ε instead of 0, so the index stays finite.
        assert!(p(&[100.0, 0.0], &[50.0, 50.0]).is_finite());
        assert_eq!(psi(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(psi(&[0.0, 0.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn drift_compares_the_first_window_with_the_latest() {
        let cfg = EndpointConfig {
            drift: Some(DriftConfig {
                metric: "vllm:e2e_request_latency_seconds".into(),
                window_secs: 60,
            }),
            ..vllm_config(SloConfig::default())
        };
        let mut tracker = EndpointTracker::new(
            cfg,
            BurnPolicy::sre_workbook(),
            Duration::from_secs(300),
            t(0),
        );
        let (mut fast, mut slow) = (0u64, 0u64);
        let drift_at = |tracker: &mut EndpointTracker, s: i64, fast: u64, slow: u64| {
            tracker
                .observe(
                    probe(t(s), EndpointHealth::Healthy),
                    Some(Ok(vllm_scrape(&[(1, fast), (7, slow)], fast + slow, 0, 0))),
                    t(s),
                )
                .drift
                .clone()
        };
        for s in (0..=60).step_by(10) {
            fast += 90;
            slow += 10;
            drift_at(&mut tracker, s, fast, slow);
        }
        let same = drift_at(&mut tracker, 70, fast + 90, slow + 10);
        fast += 90;
        slow += 10;
        assert_eq!(
            same.as_ref().map(|d| d.band),
            Some(DriftBand::None),
            "{same:?}"
        );
        // Then a minute where half the requests are slow.
        let mut last = None;
        for s in (80..=140).step_by(10) {
            fast += 50;
            slow += 50;
            last = drift_at(&mut tracker, s, fast, slow);
        }
        assert_eq!(
            last.as_ref().map(|d| d.band),
            Some(DriftBand::Significant),
            "{last:?}"
        );
        assert_eq!(last.map(|d| d.baseline_count), Some(600.0));
    }

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
}
