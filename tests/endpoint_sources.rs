//! The endpoint source against `fleetdeck sim`'s model endpoints over real HTTP: probes,
//! metrics from scrapes, SLO burn after `bad-rollout` and `endpoint-outage`.
//!
//! The sim's traffic is a few requests a second, so these tests poll every 250 ms and scale the
//! SRE workbook's burn windows by 1/120 (1 h → 30 s, 5 m → 2.5 s; the thresholds are unchanged),
//! and figure latency and errors over a 5 s metrics window. Production uses the real windows.

mod common;

use std::time::Duration;

use common::Sim;
use fleetdeck::model::endpoint::{
    BurnSeverity, EndpointConfig, EndpointHealth, EndpointModel, EndpointProtocol,
    LatencyPercentile, LatencySlo, SloBurn, SloConfig,
};
use fleetdeck::sources::endpoints::{
    BurnPolicy, EndpointPollOptions, EndpointUpdate, probe_endpoint, spawn_endpoints_with,
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
    }
}

fn fast_options() -> EndpointPollOptions {
    EndpointPollOptions {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(5),
        metrics_window: Duration::from_secs(5),
        burn_policy: BurnPolicy::sre_workbook().scaled(1.0 / 120.0),
    }
}

fn poll(
    configs: Vec<EndpointConfig>,
    options: EndpointPollOptions,
) -> mpsc::Receiver<EndpointUpdate> {
    let (tx, rx) = mpsc::channel(64);
    spawn_endpoints_with(configs, options, tx);
    rx
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
