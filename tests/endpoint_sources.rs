//! The endpoint source against `fleetdeck sim`'s model endpoints over real HTTP: probes,
//! metrics from scrapes, SLO burn after `bad-rollout` and `endpoint-outage`.
//!
//! The sim's traffic is a few requests a second, so these tests poll every 250 ms and scale the
//! SRE workbook's burn windows by 1/120 (1 h → 30 s, 5 m → 2.5 s; the thresholds are unchanged),
//! and figure latency and errors over a 5 s metrics window. Production uses the real windows.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::Sim;
use fleetdeck::cli::wiring::evaluate_endpoints;
use fleetdeck::model::endpoint::{
    BurnSeverity, EndpointConfig, EndpointHealth, EndpointModel, EndpointProtocol,
    LatencyPercentile, LatencySlo, SloBurn, SloConfig,
};
use fleetdeck::model::endpoint::{DriftBand, DriftConfig, ProbeResult};
use fleetdeck::signals::slo::{BurnPolicy, EndpointWindows};
use fleetdeck::sources::endpoints::{
    EndpointPollOptions, EndpointSourceError, EndpointTracker, EndpointUpdate, probe_endpoint,
    spawn_endpoints_with,
};
use tokio::sync::mpsc;

/// Long enough for a rollout in the sim and a few windows of traffic; only a deadline.
const WAIT: Duration = Duration::from_secs(90);

fn start_sim() -> Sim {
    tokio::task::block_in_place(|| Sim::start(&["--nodes", "8", "--clusters", "1", "--seed", "7"]))
}

fn llama_chat(sim: &Sim) -> EndpointConfig {
    EndpointConfig {
        name: "llama-chat".into(),
        url: sim.endpoint("llama-chat"),
        protocol: EndpointProtocol::Vllm,
        model: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
        metrics_url: None,
        serving: None,
        slo: SloConfig {
            latency: Some(LatencySlo {
                percentile: LatencyPercentile::P99,
                target_ms: 2500.0,
            }),
            availability: Some(0.999),
        },
        drift: None,
        registry: None,
        vector: None,
        ingestion: None,
    }
}

fn ranker(sim: &Sim, model: &str) -> EndpointConfig {
    EndpointConfig {
        name: format!("ranker-{model}"),
        url: sim.endpoint("ranker"),
        protocol: EndpointProtocol::KServeV2,
        model: Some(model.into()),
        metrics_url: None,
        serving: None,
        slo: SloConfig::default(),
        drift: None,
        registry: None,
        vector: None,
        ingestion: None,
    }
}

fn fast_options() -> EndpointPollOptions {
    EndpointPollOptions {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(5),
        metrics_window: Duration::from_secs(5),
    }
}

fn fast_burn_policy() -> BurnPolicy {
    BurnPolicy::sre_workbook().scaled(1.0 / 120.0)
}

fn poll(
    configs: Vec<EndpointConfig>,
    options: EndpointPollOptions,
) -> mpsc::Receiver<EndpointUpdate> {
    let (tx, rx) = mpsc::channel(64);
    let windows = EndpointWindows::new(&configs, fast_burn_policy());
    spawn_endpoints_with(configs, options, tx);
    evaluate_endpoints(rx, windows)
}

/// The first update of endpoint `index` that satisfies `want`.
async fn until(
    rx: &mut mpsc::Receiver<EndpointUpdate>,
    index: usize,
    what: &str,
    want: impl Fn(&EndpointModel) -> bool,
) -> EndpointModel {
    let mut last = None;
    let found = tokio::time::timeout(WAIT, async {
        while let Some(u) = rx.recv().await {
            if u.index == index {
                if want(&u.endpoint) {
                    return Some(u.endpoint);
                }
                last = Some(u.endpoint);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(m)) => m,
        _ => panic!("timed out waiting for {what}; last update: {last:#?}"),
    }
}

async fn scenario(sim: &Sim, method: reqwest::Method, path: &str) {
    let r = reqwest::Client::new()
        .request(method, format!("{}/scenarios/{path}", sim.control()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("scenario {path}: {e}"));
    assert!(r.status().is_success(), "scenario {path}: {}", r.status());
}

fn severity(burn: &Option<SloBurn>) -> Option<BurnSeverity> {
    burn.as_ref().and_then(SloBurn::severity)
}

fn requests(m: &EndpointModel) -> f64 {
    m.metrics.as_ref().map_or(0.0, |x| x.requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_vllm_endpoint_is_alive_fast_and_hardly_fails() {
    let sim = start_sim();
    let mut rx = poll(vec![llama_chat(&sim)], fast_options());
    let m = until(&mut rx, 0, "a window with traffic", |m| requests(m) >= 10.0).await;
    assert_eq!(m.health, EndpointHealth::Healthy);
    let probe = m.probe.clone().unwrap_or_else(|| panic!("no probe"));
    assert_eq!(probe.engine_alive, Some(true));
    assert_eq!(probe.model_ready, Some(true), "/v1/models lists the model");
    assert!(probe.latency_ms.is_some());
    assert_eq!(m.metrics_error, None);
    let metrics = m.metrics.clone().unwrap_or_default();
    assert!(metrics.error_rate.is_some_and(|e| e < 0.05), "{metrics:?}");
    assert!(
        metrics.latency_p99_ms.is_some_and(|p| p < 5000.0),
        "{metrics:?}"
    );
    assert!(metrics.latency_p50_ms <= metrics.latency_p99_ms);
    assert!(
        metrics.ttft_p50_ms.is_some_and(|t| t < 1000.0),
        "{metrics:?}"
    );
    assert!(metrics.throughput_rps.is_some_and(|r| r > 0.0));
    assert_eq!(
        metrics.queue_waiting,
        Some(0.0),
        "a healthy server keeps up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rollout_raises_errors_and_latency_and_pages_on_fast_burn() {
    let sim = start_sim();
    let mut rx = poll(vec![llama_chat(&sim)], fast_options());
    let healthy = until(&mut rx, 0, "healthy traffic", |m| requests(m) >= 10.0).await;
    let healthy_p99 = healthy
        .metrics
        .as_ref()
        .and_then(|m| m.latency_p99_ms)
        .unwrap_or_else(|| panic!("no healthy p99"));

    scenario(
        &sim,
        reqwest::Method::POST,
        "bad-rollout?endpoint=llama-chat",
    )
    .await;

    let bad = until(&mut rx, 0, "errors, slow answers and a page", |m| {
        let Some(x) = &m.metrics else { return false };
        x.requests >= 8.0
            && x.error_rate.is_some_and(|e| e > 0.1)
            && x.latency_p99_ms
                .is_some_and(|p| p > 2500.0 && p > healthy_p99)
            && severity(&m.availability_burn) == Some(BurnSeverity::Page)
            && severity(&m.latency_burn) == Some(BurnSeverity::Page)
    })
    .await;
    let fast = bad
        .availability_burn
        .as_ref()
        .and_then(|b| b.alerts.first())
        .unwrap_or_else(|| panic!("no alert"));
    assert!(fast.long.burn_rate.is_some_and(|b| b >= 14.4));
    assert!(fast.short.burn_rate.is_some_and(|b| b >= 14.4));
    assert_ne!(bad.health, EndpointHealth::Unreachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_outage_is_a_dead_engine_that_burns_availability_until_cleared() {
    let sim = start_sim();
    let mut rx = poll(vec![llama_chat(&sim)], fast_options());
    until(&mut rx, 0, "a healthy probe", |m| {
        m.health == EndpointHealth::Healthy
    })
    .await;

    scenario(
        &sim,
        reqwest::Method::POST,
        "endpoint-outage?endpoint=llama-chat",
    )
    .await;
    let dead = until(&mut rx, 0, "a dead engine and a page", |m| {
        m.health == EndpointHealth::Dead
            && severity(&m.availability_burn) == Some(BurnSeverity::Page)
    })
    .await;
    let probe = dead.probe.clone().unwrap_or_else(|| panic!("no probe"));
    assert_eq!(probe.engine_alive, Some(false));
    assert!(
        probe.error.as_deref().is_some_and(|e| e.contains("503")),
        "{probe:?}"
    );
    assert!(
        dead.last_healthy.is_some_and(|t| t < probe.at),
        "it was healthy before"
    );
    assert_eq!(
        dead.metrics_error, None,
        "/metrics stays up when the engine dies"
    );

    scenario(&sim, reqwest::Method::DELETE, "endpoint-outage").await;
    until(&mut rx, 0, "the engine to come back", |m| {
        m.health == EndpointHealth::Healthy
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kserve_v2_endpoint_probes_live_ready_and_model_ready() {
    let sim = start_sim();
    let mut rx = poll(
        vec![ranker(&sim, "ranker"), ranker(&sim, "no-such-model")],
        fast_options(),
    );
    let m = until(&mut rx, 0, "ranker traffic", |m| requests(m) >= 5.0).await;
    assert_eq!(m.health, EndpointHealth::Healthy);
    let probe = m.probe.clone().unwrap_or_else(|| panic!("no probe"));
    assert_eq!(
        (probe.live, probe.ready, probe.model_ready),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(probe.engine_alive, None, "not a vLLM notion");
    let metrics = m.metrics.clone().unwrap_or_default();
    assert!(
        metrics.latency_p99_ms.is_some_and(|p| p < 1000.0),
        "{metrics:?}"
    );
    assert!(metrics.error_rate.is_some());

    let wrong = until(&mut rx, 1, "a probe of the wrong model", |m| {
        m.probe.is_some()
    })
    .await;
    assert_eq!(wrong.health, EndpointHealth::NotReady);
    let probe = wrong.probe.unwrap_or_else(|| panic!("no probe"));
    assert_eq!(
        (probe.live, probe.ready, probe.model_ready),
        (Some(true), Some(true), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_hold_up_the_others() {
    let sim = start_sim();
    // Accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = hanging.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = hanging.accept().await {
            open.push(s);
        }
    });
    let stuck = EndpointConfig {
        name: "stuck".into(),
        url: format!("http://{addr}"),
        protocol: EndpointProtocol::Vllm,
        ..llama_chat(&sim)
    };
    let options = EndpointPollOptions {
        timeout: Duration::from_secs(3),
        ..fast_options()
    };
    let mut rx = poll(vec![llama_chat(&sim), stuck], options);
    let mut healthy_updates = 0;
    let stuck_model = tokio::time::timeout(WAIT, async {
        while let Some(u) = rx.recv().await {
            match u.index {
                0 => healthy_updates += 1,
                _ => return Some(u.endpoint),
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("the hanging endpoint never reported"));
    assert_eq!(stuck_model.health, EndpointHealth::Unreachable);
    assert!(stuck_model.metrics_error.is_some());
    assert!(
        healthy_updates >= 3,
        "llama-chat kept its own schedule while the other timed out: {healthy_updates} updates"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_endpoint_is_healthy_on_2xx_and_not_ready_on_404() {
    let sim = start_sim();
    let client = reqwest::Client::new();
    let plain = |path: &str| EndpointConfig {
        protocol: EndpointProtocol::Http,
        url: format!("{}{path}", sim.endpoint("llama-chat")),
        ..llama_chat(&sim)
    };
    let ok = probe_endpoint(&client, &plain("/health")).await;
    assert_eq!(ok.health, EndpointHealth::Healthy, "{ok:?}");
    assert!(ok.latency_ms.is_some());
    let missing = probe_endpoint(&client, &plain("/nowhere")).await;
    assert_eq!(missing.health, EndpointHealth::NotReady);
    assert!(
        missing.error.as_deref().is_some_and(|e| e.contains("404")),
        "{missing:?}"
    );
}

// ---- the tracker and the detectors, on synthetic scrapes ----------------------------------

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap_or_default()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

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

/// The endpoint source's tracker followed by the SLO and drift detectors, as `wiring` joins
/// them, with the SRE workbook's real windows.
struct Polled {
    tracker: EndpointTracker,
    windows: EndpointWindows,
    model: EndpointModel,
}

impl Polled {
    fn new(config: EndpointConfig) -> Self {
        let windows =
            EndpointWindows::new(std::slice::from_ref(&config), BurnPolicy::sre_workbook());
        Polled {
            model: EndpointModel::new(&config, t(0)),
            tracker: EndpointTracker::new(config, Duration::from_secs(300), t(0)),
            windows,
        }
    }

    fn observe(
        &mut self,
        probe: ProbeResult,
        scrape: Option<Result<String, EndpointSourceError>>,
        now: DateTime<Utc>,
    ) -> &EndpointModel {
        self.model = self.tracker.observe(probe, scrape, now).clone();
        self.windows
            .apply(0, self.tracker.observation(), &mut self.model);
        &self.model
    }
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
    let mut tracker = Polled::new(vllm_config(slo));
    tracker.observe(
        probe(t(0), EndpointHealth::Healthy),
        Some(Ok(vllm_scrape(&[], 0, 0, 0))),
        t(0),
    );
    // 100 requests a minute, 20 of them slower than 2.5 s: 20 % bad against a 1 % budget. A
    // page waits until the history covers its 5-minute short window.
    for m in 1..=5u64 {
        let model = tracker.observe(
            probe(t(60 * m as i64), EndpointHealth::Healthy),
            Some(Ok(vllm_scrape(&[(1, 80 * m), (7, 20 * m)], 100 * m, 0, 0))),
            t(60 * m as i64),
        );
        if m < 5 {
            assert_eq!(
                model.latency_burn.as_ref().and_then(SloBurn::severity),
                None,
                "insufficient data after {m} min"
            );
        }
    }
    let model = &tracker.model;
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
fn an_idle_endpoint_whose_probe_fails_burns_availability() {
    let slo = SloConfig {
        latency: None,
        availability: Some(0.999),
    };
    let mut tracker = Polled::new(vllm_config(slo));
    let idle = vllm_scrape(&[], 0, 0, 0);
    // Five minutes of failed probes: the page's short window is covered.
    for s in 0..=30 {
        tracker.observe(
            probe(t(s * 10), EndpointHealth::Dead),
            Some(Ok(idle.clone())),
            t(s * 10),
        );
    }
    let model = &tracker.model;
    assert_eq!(model.health, EndpointHealth::Dead);
    assert_eq!(
        model.availability_burn.as_ref().and_then(SloBurn::severity),
        Some(BurnSeverity::Page)
    );
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
    let mut tracker = Polled::new(cfg);
    let (mut fast, mut slow) = (0u64, 0u64);
    let drift_at = |tracker: &mut Polled, s: i64, fast: u64, slow: u64| {
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

/// The sim's vector stores as `sim --config-out` names them (Pinecone-compatible `docs-rag`
/// with its key file and ingestion Job, Qdrant `support-kb`).
fn vector_stores(sim: &Sim) -> Vec<EndpointConfig> {
    fleetdeck::cli::wiring::SimSources::from_description(&sim.desc)
        .endpoints
        .into_iter()
        .filter(|e| e.protocol.is_vector_store())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_stores_are_probed_with_a_query_and_their_counts_grow_over_time() {
    let sim = start_sim();
    let configs = vector_stores(&sim);
    let protocols: Vec<EndpointProtocol> = configs.iter().map(|c| c.protocol).collect();
    assert_eq!(
        protocols,
        [EndpointProtocol::Pinecone, EndpointProtocol::Qdrant]
    );
    assert!(
        configs[0].ingestion.as_ref().and_then(|i| i.job.as_deref()) == Some("docs-embed-ingest")
    );
    let mut rx = poll(configs, fast_options());
    let pinecone = until(&mut rx, 0, "the index's count growing", |m| {
        m.health == EndpointHealth::Healthy
            && m.vector
                .as_ref()
                .and_then(|v| v.growth_per_min)
                .is_some_and(|g| g > 0.0)
    })
    .await;
    let v = pinecone
        .vector
        .clone()
        .unwrap_or_else(|| panic!("no vector picture"));
    let latest = v.latest.unwrap_or_else(|| panic!("no reading"));
    assert_eq!(latest.dimension, Some(1024));
    assert!(latest.count > 1_800_000, "{}", latest.count);
    assert!(latest.fullness.is_some());
    assert!(pinecone.probe.as_ref().and_then(|p| p.latency_ms).is_some());
    let qdrant = until(&mut rx, 1, "the collection's status", |m| {
        m.health == EndpointHealth::Healthy
            && m.vector.as_ref().and_then(|v| v.latest.as_ref()).is_some()
            && m.metrics.as_ref().and_then(|x| x.latency_p99_ms).is_some()
    })
    .await;
    let latest = qdrant
        .vector
        .and_then(|v| v.latest)
        .unwrap_or_else(|| panic!("no reading"));
    assert_eq!(
        latest.status,
        Some(fleetdeck::model::endpoint::CollectionStatus::Green)
    );
    assert_eq!((latest.count, latest.indexed), (312_000, Some(312_000)));
    assert_eq!(latest.dimension, Some(768));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vector_query_slower_than_its_slo_burns_the_latency_budget() {
    let sim = start_sim();
    let mut pinecone = vector_stores(&sim).remove(0);
    // The sim's index answers in about 18 ms: a 2 ms p99 target is missed by nearly every
    // probe, which the existing burn rules page on like any endpoint's.
    pinecone.slo.latency = Some(LatencySlo {
        percentile: LatencyPercentile::P99,
        target_ms: 2.0,
    });
    let mut rx = poll(vec![pinecone], fast_options());
    let m = until(&mut rx, 0, "a latency page", |m| {
        severity(&m.latency_burn) == Some(BurnSeverity::Page)
    })
    .await;
    assert_eq!(severity(&m.availability_burn), None, "{m:#?}");
    assert!(
        m.metrics
            .as_ref()
            .and_then(|x| x.latency_p99_ms)
            .is_some_and(|p99| p99 > 2.0),
        "{:?}",
        m.metrics
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_api_key_is_reported_without_showing_the_key() {
    let sim = start_sim();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "pcsk_not-the-right-one-4711").unwrap_or_else(|e| panic!("{e}"));
    let mut pinecone = vector_stores(&sim).remove(0);
    if let Some(v) = pinecone.vector.as_mut() {
        v.api_key_file = Some(key_file.display().to_string());
    }
    let client = reqwest::Client::new();
    let p = probe_endpoint(&client, &pinecone).await;
    assert_eq!(p.health, EndpointHealth::NotReady);
    let error = p.error.unwrap_or_default();
    assert!(
        error.contains("api_key_file") && error.contains("401"),
        "{error}"
    );
    assert!(!error.contains("4711"), "the key leaked: {error}");
}
