//! The headless daemon's HTTP API, spoken to over real HTTP on 127.0.0.1 as Alertmanager, a
//! Prometheus scraper, a kubelet probe and an operator's tools would: the router is built in
//! process on a fresh store, with no sources behind it.
//!
//! tests/fixtures/alertmanager-webhook.json and -resolved.json are a real firing/resolved pair
//! (payload version 4) that a Spring web hook received from Alertmanager and logged:
//! PhotonAlpha/spring-creed, spring-creed-mvc/spring-creed-micrometer/README.md (lines 195 and
//! 197) at f6a255126dc9c0b32913936603d06a489206c868, Apache-2.0; the logger's `alertReceive:`
//! prefix removed, otherwise verbatim (its `serverity` label is misspelled in the source).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleetdeck::config::{HeadlessConfig, RunbooksConfig};
use fleetdeck::headless::server::{ApiState, router, serve};
use fleetdeck::model::incident::{Origin, Verdict};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::runbook::Mode;
use fleetdeck::runbook::executor::{Executor, ExecutorConfig};
use fleetdeck::runbook::guard::Guard;
use fleetdeck::store::Store;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-token-for-tests";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn firing() -> String {
    fixture("alertmanager-webhook.json")
}

fn resolved() -> String {
    fixture("alertmanager-webhook-resolved.json")
}

/// One daemon's HTTP side on an ephemeral port, with its state at hand for the checks.
struct Daemon {
    base: String,
    state: ApiState,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(token: Option<&str>) -> Daemon {
        Daemon::start_with(token, |_| {})
    }

    fn start_with(token: Option<&str>, tweak: impl FnOnce(&mut ApiState)) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("store")).expect("store opens");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut state = ApiState::new(
            store,
            HeadlessConfig::default(),
            token.map(str::to_string),
            "prod",
        );
        {
            let _inside = rt.enter();
            tweak(&mut state);
        }
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(serve(listener, router(state.clone()), async move {
            let _ = stopped.await;
        }));
        Daemon {
            base: format!("http://{addr}"),
            state,
            client: Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            stop: Some(stop),
            server: Some(server),
            rt: Some(rt),
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    fn post(&self, path: &str, body: impl Into<String>) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.into())
    }

    fn post_alerts(&self, body: impl Into<String>) -> (u16, Value) {
        answer(
            self.post("/api/v1/alerts", body)
                .bearer_auth(TOKEN)
                .send()
                .expect("request"),
        )
    }

    fn store(&self) -> &Store {
        &self.state.store
    }

    fn metrics_text(&self) -> String {
        self.get("/metrics")
            .bearer_auth(TOKEN)
            .send()
            .expect("request")
            .text()
            .expect("text")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn answer(r: Response) -> (u16, Value) {
    let code = r.status().as_u16();
    let text = r.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, body)
}

fn error_of(body: &Value) -> String {
    body["error"].as_str().unwrap_or_default().to_string()
}

fn audit(store: &Store) -> Vec<fleetdeck::model::incident::Entry> {
    let n = store.len().expect("len");
    (1..=n)
        .filter_map(|seq| store.entry(seq).expect("entry"))
        .collect()
}

#[test]
fn alerts_without_a_token_are_refused_audited_and_change_nothing() {
    let d = Daemon::start(Some(TOKEN));
    let r = d.post("/api/v1/alerts", firing()).send().expect("request");
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(d.state.alerts.is_empty());

    let entries = audit(d.store());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0].entry;
    assert!(
        e.summary
            .starts_with("refused unauthenticated POST /api/v1/alerts from 127.0.0.1:"),
        "{}",
        e.summary
    );
    assert_eq!(e.verdict, Some(Verdict::Refused));
    assert_eq!(e.origin, Origin::Webhook);

    // The refused delivery left no trace in the dedup memory: the real one is new.
    let (code, body) = d.post_alerts(firing());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 1);
}

#[test]
fn a_wrong_token_is_refused_and_never_recorded() {
    let d = Daemon::start(Some(TOKEN));
    let presented = "guess-0123456789";
    let (code, body) = answer(
        d.post("/api/v1/alerts", firing())
            .bearer_auth(presented)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 401);
    assert!(error_of(&body).contains("not this daemon's"), "{body}");
    assert!(d.state.alerts.is_empty());
    let entries = audit(d.store());
    assert_eq!(entries.len(), 1);
    let recorded = serde_json::to_string(&entries[0]).expect("json");
    assert!(!recorded.contains(presented), "{recorded}");
    assert!(!recorded.contains(TOKEN), "{recorded}");
}

#[test]
fn without_a_configured_token_every_authenticated_route_answers_401() {
    let d = Daemon::start(None);
    for (method, path) in [
        ("POST", "/api/v1/alerts"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/incidents/1"),
        ("GET", "/api/v1/runs"),
        ("POST", "/api/v1/runs/1/approve"),
        ("POST", "/api/v1/runs/1/deny"),
    ] {
        let req = if method == "POST" {
            d.post(path, firing())
        } else {
            d.get(path)
        };
        let (code, body) = answer(req.bearer_auth(TOKEN).send().expect("request"));
        assert_eq!(code, 401, "{method} {path}");
        assert!(
            error_of(&body).contains("no API token configured"),
            "{method} {path}: {body}"
        );
    }
    assert!(d.state.alerts.is_empty());
    let r = d.get("/healthz").send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let d = Daemon::start_with(Some(TOKEN), |s| s.cfg.body_limit = 256);
    assert!(firing().len() > 256);
    let (code, body) = d.post_alerts(firing());
    assert_eq!(code, 413, "{body}");
    assert!(error_of(&body).contains("body_limit"), "{body}");
    assert!(d.state.alerts.is_empty());
}

#[test]
fn malformed_json_is_a_400_that_names_the_problem() {
    let d = Daemon::start(Some(TOKEN));
    let cut = &firing()[..100];
    let (code, body) = d.post_alerts(cut);
    assert_eq!(code, 400);
    assert!(error_of(&body).contains("EOF"), "{body}");

    let (code, body) = d.post_alerts(r#"{"version":"4","status":"firing"}"#);
    assert_eq!(code, 400);
    assert!(error_of(&body).contains("missing field `alerts`"), "{body}");

    let pending = firing().replacen(
        r#""status":"firing","labels""#,
        r#""status":"pending","labels""#,
        1,
    );
    let (code, body) = d.post_alerts(pending);
    assert_eq!(code, 400);
    assert!(
        error_of(&body).contains("unknown variant `pending`"),
        "{body}"
    );
    assert!(d.state.alerts.is_empty());
}

#[test]
fn unknown_fields_of_a_newer_alertmanager_are_tolerated() {
    let d = Daemon::start(Some(TOKEN));
    let mut payload: Value = serde_json::from_str(&firing()).expect("fixture");
    payload["futureField"] = json!({"nested": [1, 2]});
    payload["alerts"][0]["silencedBy"] = json!(["abc"]);
    let (code, body) = d.post_alerts(payload.to_string());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 1);
}

#[test]
fn a_firing_alert_and_its_redelivery_are_handled_once() {
    let d = Daemon::start(Some(TOKEN));
    let (code, body) = d.post_alerts(firing());
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            body["accepted"].clone(),
            body["duplicates"].clone(),
            body["fired"].clone()
        ),
        (json!(1), json!(0), json!(1))
    );
    let (code, body) = d.post_alerts(firing());
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            body["accepted"].clone(),
            body["duplicates"].clone(),
            body["fired"].clone()
        ),
        (json!(0), json!(1), json!(0))
    );

    let signals = d.state.alerts.signals();
    assert_eq!(signals.len(), 1);
    let s = &signals[0];
    assert_eq!(s.kind, "alert.high-memory-usage");
    assert_eq!(s.dedup_key, "alert:fa65a21db3335b7d");
    assert_eq!(s.subject.cluster, "prod");
    assert_eq!(s.subject.node.as_deref(), Some("127.0.0.1"));
    assert_eq!(s.severity, Severity::Warning);
    assert_eq!(
        s.summary,
        "127.0.0.1:8080 of job spring-creed-prometheus High Memory usage detected"
    );
    assert_eq!(s.first_seen.to_rfc3339(), "2022-11-02T08:12:16.003+00:00");

    // The evaluation loop was woken for the first delivery.
    let rt = d.rt.as_ref().expect("runtime");
    let woken = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), d.state.on_alerts.notified()).await
    });
    assert!(woken.is_ok());

    let text = d.metrics_text();
    assert!(
        text.contains(r#"fleetdeck_alerts_total{status="firing",outcome="accepted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fleetdeck_alerts_total{status="firing",outcome="duplicate"} 1"#),
        "{text}"
    );
}

#[test]
fn a_resolved_alert_removes_its_signal() {
    let d = Daemon::start(Some(TOKEN));
    let (code, _) = d.post_alerts(firing());
    assert_eq!(code, 200);
    assert_eq!(d.state.alerts.len(), 1);
    let (code, body) = d.post_alerts(resolved());
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["resolved"], 1);
    assert_eq!(body["firing"], 0);
    assert!(d.state.alerts.signals().is_empty());

    // A late redelivery of the firing notice does not bring it back.
    let (code, body) = d.post_alerts(firing());
    assert_eq!(code, 200);
    assert_eq!(body["duplicates"], 1);
    assert!(d.state.alerts.is_empty());
}

#[test]
fn healthz_answers_without_auth_and_readyz_is_503_until_ready() {
    let d = Daemon::start(Some(TOKEN));
    let r = d.get("/healthz").send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().expect("text"), "ok");

    let r = d.get("/readyz").send().expect("request");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().expect("text").starts_with("not ready"));

    d.state.metrics.set_source_synced("prod", "nodes", false);
    d.state.metrics.set_source_synced("prod", "pods", true);
    let r = d.get("/readyz").send().expect("request");
    assert_eq!(r.status().as_u16(), 503);
    let why = r.text().expect("text");
    assert!(
        why.contains("prod/nodes") && !why.contains("prod/pods"),
        "{why}"
    );

    d.state.ready.store(true, Ordering::SeqCst);
    let r = d.get("/readyz").send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn metrics_expose_every_family_in_openmetrics_without_a_token_by_default() {
    let d = Daemon::start(Some(TOKEN));
    d.state.leader.store(true, Ordering::SeqCst);
    d.get("/healthz").send().expect("request");
    let r = d.get("/metrics").send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = r.text().expect("text");
    for family in [
        "# TYPE fleetdeck_signals gauge",
        "# TYPE fleetdeck_open_incidents gauge",
        "# TYPE fleetdeck_runbook_runs counter",
        "# TYPE fleetdeck_guard_refusals counter",
        "# TYPE fleetdeck_action_duration_seconds histogram",
        "# TYPE fleetdeck_source_synced gauge",
        "# TYPE fleetdeck_alerts counter",
        "# TYPE fleetdeck_http_requests counter",
        "fleetdeck_leader 1",
        r#"fleetdeck_http_requests_total{path="/healthz",code="200"} 1"#,
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn metrics_want_the_token_when_metrics_auth_is_on() {
    let d = Daemon::start_with(Some(TOKEN), |s| s.metrics_auth = true);
    let r = d.get("/metrics").send().expect("request");
    assert_eq!(r.status().as_u16(), 401);
    let r = d
        .get("/metrics")
        .bearer_auth(TOKEN)
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    // The refused scrape was counted too.
    assert!(
        r.text()
            .expect("text")
            .contains(r#"fleetdeck_http_requests_total{path="/metrics",code="401"} 1"#)
    );
}

fn signal(node: &str) -> Signal {
    Signal {
        kind: "node.not_ready".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod".into(),
            node: Some(node.into()),
            ..Subject::default()
        },
        summary: format!("{node} is NotReady"),
        evidence: Default::default(),
        action: None,
        first_seen: chrono::Utc::now(),
        dedup_key: format!("node.not_ready:prod/{node}"),
    }
}

#[test]
fn incidents_are_listed_and_shown_with_their_timeline_and_an_unknown_one_is_404() {
    let d = Daemon::start(Some(TOKEN));
    let recorded = d
        .store()
        .record_signals(
            &[signal("gpu-node-7")],
            &[],
            Origin::Headless,
            Duration::from_secs(3600),
            chrono::Utc::now(),
        )
        .expect("recorded");
    let id = recorded[0].incident;

    let (code, body) = answer(
        d.get("/api/v1/incidents?open=true")
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["incidents"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["incidents"][0]["id"], id);

    let (code, body) = answer(
        d.get(&format!("/api/v1/incidents/INC-{id}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["incident"]["id"], id);
    assert!(
        body["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["summary"]
                .as_str()
                .is_some_and(|s| s.contains("gpu-node-7")))),
        "{body}"
    );

    let (code, body) = answer(
        d.get("/api/v1/incidents/4242")
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 404);
    assert!(error_of(&body).contains("INC-4242"), "{body}");

    let (code, body) = answer(
        d.get("/api/v1/incidents?open=maybe")
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 400, "{body}");
}

#[test]
fn a_follower_refuses_approvals_with_409() {
    let d = Daemon::start(Some(TOKEN));
    let (code, body) = answer(
        d.post("/api/v1/runs/1/approve", r#"{"by":"ana"}"#)
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(error_of(&body).contains("not the leader"), "{body}");
}

#[test]
fn deciding_an_approval_that_is_not_pending_is_404_with_the_executors_message() {
    let d = Daemon::start_with(Some(TOKEN), |s| {
        let cfg = RunbooksConfig::default();
        let guard = Guard::new(&cfg, Mode::Approve, false).shared();
        s.executor = Some(Executor::new(
            Vec::new(),
            guard,
            s.store.clone(),
            HashMap::new(),
            ExecutorConfig::from_config(&cfg, Mode::Approve, Origin::Headless),
        ));
        s.leader.store(true, Ordering::SeqCst);
    });
    let (code, body) = answer(
        d.get("/api/v1/runs")
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 200);
    assert_eq!(body, json!({"runs": [], "pending_approvals": []}));
    for verb in ["approve", "deny"] {
        let (code, body) = answer(
            d.post(&format!("/api/v1/runs/7/{verb}"), "")
                .bearer_auth(TOKEN)
                .send()
                .expect("request"),
        );
        assert_eq!(code, 404, "{verb}: {body}");
        assert_eq!(error_of(&body), "there is no pending approval 7");
    }
    let (code, body) = answer(
        d.post("/api/v1/runs/7/approve", "{not json")
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    );
    assert_eq!(code, 400, "{body}");
}

#[test]
fn after_shutdown_the_server_stops_accepting() {
    let mut d = Daemon::start(Some(TOKEN));
    assert_eq!(
        d.get("/healthz").send().expect("request").status().as_u16(),
        200
    );
    if let Some(stop) = d.stop.take() {
        let _ = stop.send(());
    }
    let server = d.server.take().expect("server");
    let rt = d.rt.as_ref().expect("runtime");
    let finished =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await });
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "serve did not return: {finished:?}"
    );
    let fresh = Client::builder().no_proxy().build().expect("client");
    assert!(fresh.get(format!("{}/healthz", d.base)).send().is_err());
}

/// A firing/resolved pair of each vendor's payload (tests/fixtures/alerts/SOURCES.md), the
/// path it is delivered to, and what its first alert becomes.
const VENDORS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "/api/v1/alerts/grafana",
        "alerts/grafana-firing.json",
        "alerts/grafana-resolved.json",
        "alert.gpu_memory_high",
        "grafana",
    ),
    (
        "/api/v1/alerts/datadog",
        "alerts/datadog-triggered.json",
        "alerts/datadog-recovered.json",
        "alert.dcgm_xid_errors_on_a_gpu_node",
        "datadog",
    ),
    (
        "/api/v1/alerts/azure-monitor",
        "alerts/azure-monitor-fired.json",
        "alerts/azure-monitor-resolved.json",
        "alert.gpu_vm_heartbeat_lost",
        "azure-monitor",
    ),
    (
        "/api/v1/alerts/elastic",
        "alerts/elastic-active.json",
        "alerts/elastic-recovered.json",
        "alert.gpu_pods_crash_looping",
        "elastic",
    ),
];

fn post_to(d: &Daemon, path: &str, body: String) -> (u16, Value) {
    answer(
        d.post(path, body)
            .bearer_auth(TOKEN)
            .send()
            .expect("request"),
    )
}

#[test]
fn every_vendors_alert_fires_once_and_resolves_as_alertmanagers_do() {
    for (path, firing, resolved, kind, source) in VENDORS {
        let d = Daemon::start(Some(TOKEN));
        let (code, body) = post_to(&d, path, fixture(firing));
        assert_eq!(code, 200, "{path}: {body}");
        assert!(body["fired"].as_u64() >= Some(1), "{path}: {body}");
        let (code, again) = post_to(&d, path, fixture(firing));
        assert_eq!(code, 200, "{path}: {again}");
        assert_eq!(
            again["fired"], 0,
            "a redelivery fires nothing: {path}: {again}"
        );
        assert_eq!(again["duplicates"], body["accepted"], "{path}: {again}");

        let signals = d.state.alerts.signals();
        let s = signals
            .iter()
            .find(|s| s.kind == kind)
            .unwrap_or_else(|| panic!("{path}: no {kind} in {signals:#?}"));
        assert_eq!(s.evidence["source"], source, "{path}");
        assert!(s.dedup_key.starts_with("alert:"), "{path}: {}", s.dedup_key);

        let (code, body) = post_to(&d, path, fixture(resolved));
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(body["firing"], 0, "{path}: {body}");
        assert!(d.state.alerts.is_empty(), "{path}");
        // The firing notice delivered late does not bring it back.
        let (_, late) = post_to(&d, path, fixture(firing));
        assert_eq!(late["fired"], 0, "{path}: {late}");
        assert!(d.state.alerts.is_empty(), "{path}");
    }
}

#[test]
fn vendor_alerts_name_their_subjects_from_the_label_mappings() {
    let d = Daemon::start(Some(TOKEN));
    for (path, firing, _, _, _) in VENDORS {
        let (code, body) = post_to(&d, path, fixture(firing));
        assert_eq!(code, 200, "{path}: {body}");
    }
    let by_kind: HashMap<String, Signal> = d
        .state
        .alerts
        .signals()
        .into_iter()
        .map(|s| (s.kind.clone(), s))
        .collect();
    let grafana = &by_kind["alert.gpu_memory_high"];
    assert_eq!(grafana.subject.cluster, "sim-a");
    assert_eq!(grafana.subject.namespace.as_deref(), Some("serving"));
    assert_eq!(grafana.severity, Severity::Critical);
    assert_eq!(
        grafana.evidence["annotations"]["dashboard_url"],
        "https://grafana.example.com/d/gpu"
    );
    assert_eq!(
        by_kind["alert.endpoint_p99_high"]
            .subject
            .endpoint
            .as_deref(),
        Some("llama-chat")
    );

    let datadog = &by_kind["alert.dcgm_xid_errors_on_a_gpu_node"];
    assert_eq!(datadog.subject.cluster, "sim-a");
    assert_eq!(
        datadog.subject.node.as_deref(),
        Some("ip-10-20-0-11.ec2.internal")
    );
    assert_eq!(datadog.severity, Severity::Critical);

    let azure = &by_kind["alert.gpu_vm_heartbeat_lost"];
    assert_eq!(azure.subject.cluster, "sim-a", "from the custom properties");
    assert_eq!(
        azure.subject.node.as_deref(),
        Some("ip-10-20-0-12.ec2.internal")
    );
    assert_eq!(azure.severity, Severity::Critical, "Sev1");
    assert_eq!(
        azure.first_seen.to_rfc3339(),
        "2026-12-01T13:58:24.371321300+00:00"
    );

    let elastic = &by_kind["alert.gpu_pods_crash_looping"];
    assert_eq!(elastic.subject.cluster, "sim-b");
    assert_eq!(elastic.subject.namespace.as_deref(), Some("batch"));
    assert_eq!(
        elastic.severity,
        Severity::Warning,
        "the rule's severity tag"
    );
    assert_eq!(
        elastic.summary,
        "restart count is 8 in the last 15 minutes for batch/tokenizer-worker. Alert when > 3."
    );
}

#[test]
fn a_vendor_payload_that_cannot_be_read_is_a_400_naming_the_field() {
    let d = Daemon::start(Some(TOKEN));
    let mut azure: Value =
        serde_json::from_str(&fixture("alerts/azure-monitor-fired.json")).expect("fixture");
    azure["data"]["essentials"]["monitorCondition"] = json!("Active");
    let (code, body) = post_to(&d, "/api/v1/alerts/azure-monitor", azure.to_string());
    assert_eq!(code, 400, "{body}");
    let e = error_of(&body);
    assert!(
        e.contains("common alert schema")
            && e.contains("data.essentials.monitorCondition is \"Active\""),
        "{e}"
    );

    // Datadog's payload left as the template (the variables were never filled in).
    let template = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/integrations/datadog-webhook-payload.json"),
    )
    .expect("the shipped template");
    let (code, body) = post_to(&d, "/api/v1/alerts/datadog", template);
    assert_eq!(code, 400, "{body}");
    assert!(
        error_of(&body).contains("alert_id is \"$ALERT_ID\""),
        "{body}"
    );

    let (code, body) = post_to(
        &d,
        "/api/v1/alerts/grafana",
        fixture("alerts/grafana-firing.json")[..200].to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(error_of(&body).contains("Grafana"), "{body}");
    assert!(d.state.alerts.is_empty());

    let (code, body) = post_to(&d, "/api/v1/alerts/nagios", "{}".into());
    assert_eq!(code, 404, "an unknown sender: {body}");
}

#[test]
fn vendor_intakes_share_the_token_and_the_body_limit() {
    let d = Daemon::start_with(Some(TOKEN), |s| s.cfg.body_limit = 256);
    for (path, firing, _, _, _) in VENDORS {
        let r = d.post(path, fixture(firing)).send().expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path} without a token");
        let r = d
            .post(path, fixture(firing))
            .bearer_auth("wrong")
            .send()
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
        let (code, body) = post_to(&d, path, fixture(firing));
        assert!(fixture(firing).len() > 256);
        assert_eq!(code, 413, "{path}: {body}");
    }
    assert!(d.state.alerts.is_empty());
}
