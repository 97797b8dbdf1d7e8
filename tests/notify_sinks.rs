//! Notifications out, against local receivers that check each payload as Slack, Teams,
//! PagerDuty and a webhook would receive it: sinks whose secrets come from files or the
//! environment, retries with backoff on the timeline, a policy that pages on an incident's
//! trigger and resolution through a real `fleetdeck headless` on a real `fleetdeck sim`, and a
//! runbook whose sink hangs still finishing its run (`fleetdeck runbook test`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetdeck::config::{Config, NotifyConfig};
use fleetdeck::model::incident::{Actor, Origin};
use fleetdeck::model::signal::Severity;
use fleetdeck::notify::{Action, Message, Notifier};
use fleetdeck::store::Store;
use serde_json::{Value, json};

use common::wait_until;

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    /// 500 for the first N requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// A local HTTP receiver that keeps every JSON body it is sent.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
    /// While set, every request is answered 500 whatever `Answer` says (a sink that is down).
    down: Arc<std::sync::atomic::AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s, d) = (got.clone(), seen.clone(), down.clone());
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let (g, s, d) = (g.clone(), s.clone(), d.clone());
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().unwrap().push(v);
                if d.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let n = s.fetch_add(1, Ordering::SeqCst);
                match answer {
                    Answer::Ok => axum::http::StatusCode::ACCEPTED,
                    Answer::FailFirst(k) if n < k => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    Answer::FailFirst(_) => axum::http::StatusCode::OK,
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        axum::http::StatusCode::OK
                    }
                }
            }
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook/T0000/B0000/s3cr3t-path"),
            got,
            down,
            _rt: rt,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }

    fn wait_for(&self, n: usize) -> Vec<Value> {
        wait_until(&format!("{n} deliveries"), Duration::from_secs(30), || {
            self.bodies().len() >= n
        });
        self.bodies()
    }
}

fn config(dir: &Path, toml: &str) -> Config {
    let path = dir.join("fleetdeck.toml");
    std::fs::write(&path, toml).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn message(sink: &str, action: Action, incident: Option<u64>) -> Message {
    Message {
        sink: sink.into(),
        action,
        incident,
        severity: Severity::Critical,
        summary: "XID 79 on ip-10-20-0-11.ec2.internal".into(),
        source: "fleetdeck".into(),
        component: Some("sim-a/ip-10-20-0-11.ec2.internal".into()),
        details: json!({"xid": 79}),
        at: chrono::Utc::now(),
        actor: Actor::System,
    }
}

/// Opens an incident in `store` (as a detector's signal would) and answers its id.
fn open_incident(store: &Store) -> u64 {
    let signal: fleetdeck::model::signal::Signal = serde_json::from_value(json!({
        "kind": "gpu.xid", "severity": "critical",
        "subject": {"cluster": "sim-a", "node": "ip-10-20-0-11.ec2.internal", "gpu": "0"},
        "summary": "XID 79 on ip-10-20-0-11.ec2.internal", "evidence": {},
        "first_seen": chrono::Utc::now(), "dedup_key": "gpu.xid:sim-a/ip-10-20-0-11/0"
    }))
    .unwrap();
    let recorded = store
        .record_signals(
            &[signal],
            &[],
            Origin::Headless,
            Duration::from_secs(600),
            chrono::Utc::now(),
        )
        .unwrap();
    recorded[0].incident
}

/// Every timeline entry's summary, oldest first.
fn timeline(store: &Store) -> Vec<String> {
    (1..=store.len().unwrap())
        .filter_map(|s| store.entry(s).unwrap())
        .map(|e| e.entry.summary)
        .collect()
}

#[test]
fn a_secret_written_in_the_config_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &path,
        "[notify.sinks.chat]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/x\"\n",
    )
    .unwrap();
    let e = Config::load(&path).expect_err("an inline URL").to_string();
    assert!(e.contains("fleetdeck.toml:3"), "{e}");
    assert!(e.contains("url_file") && e.contains("url_env"), "{e}");
    assert!(
        !e.contains("hooks.slack.com"),
        "the secret is not repeated: {e}"
    );

    std::fs::write(
        &path,
        "[notify.sinks.chat]\nkind = \"opsgenie\"\nurl_env = \"X\"\n",
    )
    .unwrap();
    let e = Config::load(&path)
        .expect_err("an unknown kind")
        .to_string();
    assert!(e.contains("opsgenie") && e.contains("pagerduty"), "{e}");

    std::fs::write(&path, "[notify.sinks.pd]\nkind = \"pagerduty\"\n").unwrap();
    let e = Config::load(&path).expect_err("no secret").to_string();
    assert!(e.contains("routing_key_file or routing_key_env"), "{e}");

    std::fs::write(
        &path,
        "[notify.sinks.pd]\nkind = \"pagerduty\"\nrouting_key_env = \"K\"\n\n[[notify.policy]]\nsink = \"oncal\"\n",
    )
    .unwrap();
    let e = Config::load(&path)
        .expect_err("a policy's unknown sink")
        .to_string();
    assert!(e.contains("\"oncal\" is not configured (sinks: pd)"), "{e}");
}

#[test]
fn each_kind_gets_its_payload_and_the_outcome_is_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (slack, teams, pd, hook) = (
        Receiver::start(Answer::Ok),
        Receiver::start(Answer::Ok),
        Receiver::start(Answer::Ok),
        Receiver::start(Answer::Ok),
    );
    std::fs::write(dir.path().join("slack-url"), format!("{}\n", slack.url)).unwrap();
    std::fs::write(dir.path().join("pd-key"), "R0UTING-KEY-0123456789\n").unwrap();
    // SAFETY: this test's own variables, set before any thread of the notifier reads them.
    unsafe {
        std::env::set_var("FLEETDECK_TEST_TEAMS_URL", &teams.url);
        std::env::set_var("FLEETDECK_TEST_HOOK_URL", &hook.url);
    }
    let cfg = config(
        dir.path(),
        &format!(
            "[notify.sinks.chat]\nkind = \"slack\"\nurl_file = \"{d}/slack-url\"\n\n\
             [notify.sinks.room]\nkind = \"teams\"\nurl_env = \"FLEETDECK_TEST_TEAMS_URL\"\n\n\
             [notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"{d}/pd-key\"\nevents_url = \"{pd}\"\n\n\
             [notify.sinks.hook]\nkind = \"webhook\"\nurl_env = \"FLEETDECK_TEST_HOOK_URL\"\n",
            d = dir.path().display(),
            pd = pd.url,
        ),
    );
    let store = Store::open(&dir.path().join("store")).unwrap();
    let n = Notifier::start(&cfg.notify, Some(store.clone()), Origin::Headless)
        .expect("the secrets read")
        .expect("sinks are configured");
    assert_eq!(n.sink_names(), ["chat", "hook", "oncall", "room"]);
    let id = open_incident(&store);
    let label = format!("INC-{id}");
    let key = fleetdeck::notify::incident_page_key(&store, "", id).expect("a page key");

    n.send(message("chat", Action::Trigger, Some(id))).unwrap();
    n.send(message("room", Action::Trigger, Some(id))).unwrap();
    n.send(message("hook", Action::Trigger, Some(id))).unwrap();
    for action in [Action::Trigger, Action::Acknowledge, Action::Resolve] {
        n.send(message("oncall", action, Some(id))).unwrap();
    }

    let s = &slack.wait_for(1)[0];
    assert_eq!(
        s["text"],
        format!("[CRITICAL] {label}: XID 79 on ip-10-20-0-11.ec2.internal")
    );
    assert_eq!(s["blocks"][0]["type"], "section");
    let t = &teams.wait_for(1)[0];
    assert_eq!(t["type"], "message");
    assert_eq!(
        t["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
    let h = &hook.wait_for(1)[0];
    assert_eq!(
        (h["event"].as_str(), h["incident"].as_str()),
        (Some("trigger"), Some(label.as_str()))
    );
    assert_eq!(h["key"], key.as_str());
    let pages = pd.wait_for(3);
    let actions: Vec<&str> = pages
        .iter()
        .filter_map(|p| p["event_action"].as_str())
        .collect();
    assert_eq!(actions.len(), 3);
    for a in ["trigger", "acknowledge", "resolve"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    for p in &pages {
        assert_eq!(p["routing_key"], "R0UTING-KEY-0123456789");
        // One PagerDuty incident, keyed on the group, not the store's number.
        assert_eq!(p["dedup_key"], key.as_str(), "one PagerDuty incident: {p}");
    }
    let trigger = pages
        .iter()
        .find(|p| p["event_action"] == "trigger")
        .unwrap();
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["custom_details"]["xid"], 79);

    wait_until(
        "six outcomes on the timeline",
        Duration::from_secs(20),
        || {
            timeline(&store)
                .iter()
                .filter(|s| s.contains(": delivered"))
                .count()
                == 6
        },
    );
    let entries: Vec<_> = (1..=store.len().unwrap())
        .filter_map(|s| store.entry(s).unwrap())
        .collect();
    assert!(entries.iter().all(|e| e.entry.incident == Some(id)));
    let all = serde_json::to_string(&entries).unwrap();
    for secret in [
        &slack.url,
        &teams.url,
        &hook.url,
        &"R0UTING-KEY".to_string(),
    ] {
        assert!(
            !all.contains(secret.as_str()),
            "no secret in the store: {secret}"
        );
    }
    assert!(format!("{n:?}").contains("chat") && !format!("{n:?}").contains("s3cr3t"));
}

#[test]
fn one_incidents_messages_to_a_sink_keep_their_order_while_one_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    // The trigger's first two tries fail: its acknowledge and resolve wait for it.
    let pagerduty = Receiver::start(Answer::FailFirst(2));
    std::fs::write(dir.path().join("key"), "R0UTING").unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[notify]\nretry_base = \"200ms\"\nattempts = 5\n\n\
             [notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"{d}/key\"\nevents_url = \"{u}\"\n",
            d = dir.path().display(),
            u = pagerduty.url
        ),
    );
    let store = Store::open(&dir.path().join("store")).unwrap();
    let n = Notifier::start(&cfg.notify, Some(store.clone()), Origin::Headless)
        .unwrap()
        .unwrap();
    let id = open_incident(&store);
    for action in [Action::Trigger, Action::Acknowledge, Action::Resolve] {
        n.send(message("oncall", action, Some(id))).unwrap();
    }
    let bodies = pagerduty.wait_for(5);
    let actions: Vec<&str> = bodies
        .iter()
        .filter_map(|b| b["event_action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["trigger", "trigger", "trigger", "acknowledge", "resolve"],
        "{bodies:#?}"
    );
}

#[test]
fn a_failing_sink_is_retried_with_backoff_and_each_failure_is_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Receiver::start(Answer::FailFirst(2));
    let dead = Receiver::start(Answer::FailFirst(usize::MAX));
    std::fs::write(dir.path().join("flaky"), &flaky.url).unwrap();
    std::fs::write(dir.path().join("dead"), &dead.url).unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[notify]\nretry_base = \"20ms\"\nattempts = 3\n\n\
             [notify.sinks.flaky]\nkind = \"webhook\"\nurl_file = \"{d}/flaky\"\n\n\
             [notify.sinks.dead]\nkind = \"slack\"\nurl_file = \"{d}/dead\"\n",
            d = dir.path().display()
        ),
    );
    let store = Store::open(&dir.path().join("store")).unwrap();
    let n = Notifier::start(&cfg.notify, Some(store.clone()), Origin::Headless)
        .unwrap()
        .unwrap();
    let id = open_incident(&store);
    n.send(message("flaky", Action::Trigger, Some(id))).unwrap();
    n.send(message("dead", Action::Trigger, Some(id))).unwrap();
    wait_until("both settled", Duration::from_secs(30), || {
        let t = timeline(&store);
        t.iter().any(|s| s.contains("flaky: delivered"))
            && t.iter().any(|s| s.contains("dead: gave up"))
    });
    let t = timeline(&store);
    let flaky_lines: Vec<&String> = t.iter().filter(|s| s.contains("notify flaky")).collect();
    assert_eq!(flaky_lines.len(), 3, "{t:#?}");
    assert!(
        flaky_lines[0].contains("attempt 1 failed") && flaky_lines[0].contains("HTTP 500"),
        "{t:#?}"
    );
    assert!(
        flaky_lines[2].contains("delivered (webhook trigger, attempt 3)"),
        "{t:#?}"
    );
    assert_eq!(flaky.bodies().len(), 3);
    assert!(
        t.iter()
            .any(|s| s.contains("dead: gave up after 3 attempts")),
        "{t:#?}"
    );
    assert_eq!(dead.bodies().len(), 3, "no more than `attempts`");

    let unknown = n
        .send(message("pager", Action::Trigger, None))
        .expect_err("no such sink");
    assert!(
        unknown.to_string().contains("configured: dead, flaky"),
        "{unknown}"
    );
}

#[test]
fn a_missing_secret_file_stops_the_start_naming_the_sink_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"/nonexistent/pd-key\"\n",
    );
    let e = Notifier::start(&cfg.notify, None, Origin::Headless)
        .expect_err("no key")
        .to_string();
    assert!(
        e.contains("[notify.sinks.oncall]") && e.contains("/nonexistent/pd-key"),
        "{e}"
    );
    assert!(NotifyConfig::default().sinks.is_empty());
}

/// A runbook that notifies `SINK` on every idle GPU, in a runbook directory of its own.
fn notifying_runbook(dir: &Path, sink: &str) -> std::path::PathBuf {
    let runbooks = dir.join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("tell-owners.rhai"),
        format!(
            "const RUNBOOK = #{{ name: \"tell-owners\", description: \"tell the owners of idle GPUs\",\n\
             trigger: #{{ signal: \"gpu.idle\", min_severity: \"info\" }}, cooldown: \"1h\" }};\n\
             fn run(signal) {{\n\
                 let r = notify(\"{sink}\", #{{ summary: signal.summary, severity: \"info\", details: #{{ node: signal.subject.node }} }});\n\
                 note(`notify answered ${{r.outcome}}`);\n\
             }}\n"
        ),
    )
    .unwrap();
    runbooks
}

fn rehearse(dir: &Path, config: &Path, runbooks: &Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args([
            "runbook",
            "test",
            "tell-owners",
            "--scenario",
            "none",
            "-o",
            "json",
            "--timeout",
            "60s",
        ])
        .arg("--config")
        .arg(config)
        .arg("--runbooks")
        .arg(runbooks)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .output()
        .expect("run fleetdeck");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_runbook_notifies_through_a_sink_and_a_hanging_sink_does_not_hold_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = Receiver::start(Answer::Ok);
    let stuck = Receiver::start(Answer::Hang);
    std::fs::write(dir.path().join("good"), &good.url).unwrap();
    std::fs::write(dir.path().join("stuck"), &stuck.url).unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        format!(
            "[notify.sinks.owners]\nkind = \"slack\"\nurl_file = \"{d}/good\"\n\n\
             [notify.sinks.stuck]\nkind = \"slack\"\nurl_file = \"{d}/stuck\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();

    let report = rehearse(
        dir.path(),
        &config,
        &notifying_runbook(dir.path(), "owners"),
    );
    assert_eq!(report["remediated"], true, "{report:#}");
    let body = &good.wait_for(1)[0];
    assert!(
        body["text"].as_str().is_some_and(|t| t.contains("[INFO]")),
        "{body}"
    );
    let notes = report["timeline"].to_string();
    assert!(notes.contains("notify answered queued"), "{notes}");

    let stuck_dir = dir.path().join("stuck-run");
    std::fs::create_dir_all(&stuck_dir).unwrap();
    let report = rehearse(&stuck_dir, &config, &notifying_runbook(&stuck_dir, "stuck"));
    assert_eq!(report["remediated"], true, "the run finished: {report:#}");
    assert!(
        report["timeline"]
            .to_string()
            .contains("notify answered queued")
    );
    assert!(
        !stuck.bodies().is_empty(),
        "the sink was asked, and never answered"
    );

    let url_dir = dir.path().join("url-run");
    std::fs::create_dir_all(&url_dir).unwrap();
    let report = rehearse(
        &url_dir,
        &config,
        &notifying_runbook(&url_dir, "https://hooks.slack.com/x"),
    );
    assert_eq!(report["remediated"], false, "{report:#}");
    assert!(
        report["verdict"].to_string().contains("not a URL"),
        "{report:#}"
    );
}

#[test]
fn headless_pages_an_incidents_trigger_ack_and_resolve_with_one_dedup_key() {
    use common::headless::Replica;
    use common::{Sim, http};
    const TOKEN: &str = "test-token-paging-0123456789abcdef";
    let pagerduty = Receiver::start(Answer::Ok);
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pd-key"), "R0UTING-KEY-E2E").unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n\
             [headless]\nlease_namespace = \"default\"\n\n\
             [notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"{d}/pd-key\"\nevents_url = \"{pd}\"\n\n\
             [[notify.policy]]\nsink = \"oncall\"\non = [\"open\", \"ack\", \"resolve\"]\nmin_severity = \"critical\"\n",
            d = dir.path().display(),
            pd = pagerduty.url,
        ),
    )
    .unwrap();
    let daemon = Replica::start(&sim, &config, "pager", TOKEN, &["--mode", "dry-run"]);
    wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });

    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let trigger = pagerduty.wait_for(1)[0].clone();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(trigger["routing_key"], "R0UTING-KEY-E2E");
    assert_eq!(trigger["payload"]["severity"], "critical");
    let dedup = trigger["dedup_key"].as_str().unwrap().to_string();
    // The page identity is the group's, never the store's incident number.
    assert!(dedup.starts_with("fleetdeck-"), "{dedup}");
    let label = trigger["payload"]["summary"]
        .as_str()
        .and_then(|s| s.split(": ").next())
        .and_then(|s| s.split("] ").nth(1))
        .unwrap()
        .to_string();
    assert!(label.starts_with("INC-"), "{trigger}");

    for step in ["ack", "resolve"] {
        let r = http()
            .post(format!("{}/api/v1/incidents/{label}/{step}", daemon.url))
            .bearer_auth(TOKEN)
            .body(r#"{"by": "ana"}"#)
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "{step}: {}",
            r.text().unwrap_or_default()
        );
    }
    let pages = pagerduty.wait_for(3);
    let of_this: Vec<&str> = pages
        .iter()
        .filter(|p| p["dedup_key"] == dedup.as_str())
        .filter_map(|p| p["event_action"].as_str())
        .collect();
    assert_eq!(of_this, ["trigger", "acknowledge", "resolve"], "{pages:#?}");
    // Once each: a later look at the store sends nothing again.
    std::thread::sleep(Duration::from_secs(5));
    let again = pagerduty
        .bodies()
        .iter()
        .filter(|p| p["dedup_key"] == dedup.as_str())
        .count();
    assert_eq!(again, 3, "each milestone paged once");
}

/// A daemon paging through PagerDuty on `store`, its receiver at `pd`.
fn paging_config(dir: &Path, sim: &common::Sim, pd: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("pd-key"), "R0UTING-KEY-E2E").unwrap();
    let config = dir.join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n\
             [headless]\nlease_namespace = \"default\"\n\n\
             [notify]\nretry_base = \"300ms\"\ngive_up_after = \"10m\"\n\n\
             [notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"{d}/pd-key\"\nevents_url = \"{pd}\"\n\n\
             [[notify.policy]]\nsink = \"oncall\"\non = [\"open\", \"resolve\"]\nmin_severity = \"critical\"\n{extra}",
            d = dir.display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_resolve_owed_when_the_daemon_is_killed_is_delivered_once_after_a_restart() {
    use common::headless::Replica;
    use common::{Sim, http};
    const TOKEN: &str = "test-token-outbox-0123456789abcdef";
    let pagerduty = Receiver::start(Answer::Ok);
    pagerduty.down.store(true, Ordering::SeqCst);
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = paging_config(dir.path(), &sim, &pagerduty.url, "");
    let store = dir.path().join("store");
    let mut daemon = Replica::start_on(
        &sim,
        &config,
        "pager",
        TOKEN,
        &["--mode", "dry-run"],
        &store,
    );
    wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });
    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    // The sink answers 500: the trigger is tried and tried again.
    let trigger = pagerduty.wait_for(2)[0].clone();
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    let dedup = trigger["dedup_key"].as_str().unwrap().to_string();
    let label = trigger["payload"]["summary"]
        .as_str()
        .and_then(|s| s.split(": ").next())
        .and_then(|s| s.split("] ").nth(1))
        .unwrap()
        .to_string();
    let r = http()
        .post(format!("{}/api/v1/incidents/{label}/resolve", daemon.url))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    // The policy looks every 2 s; then more attempts fail (the resolve waits behind its
    // trigger), and the process dies without a word.
    let seen = pagerduty.bodies().len();
    std::thread::sleep(Duration::from_secs(5));
    pagerduty.wait_for(seen + 2);
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    // The sink is back; a new process on the same store owes what the dead one owed.
    pagerduty.got.lock().unwrap().clear();
    pagerduty.down.store(false, Ordering::SeqCst);
    let daemon = Replica::start_on(
        &sim,
        &config,
        "pager",
        TOKEN,
        &["--mode", "dry-run"],
        &store,
    );
    wait_until("the resolve is delivered", Duration::from_secs(60), || {
        pagerduty
            .bodies()
            .iter()
            .any(|b| b["event_action"] == "resolve")
    });
    // Once: later passes send nothing again.
    std::thread::sleep(Duration::from_secs(6));
    // The signal still fires after the person's resolve, so the new process opens a new
    // incident for it and pages it under the same key (a trigger labelled with its own
    // number); the owed messages are the first incident's.
    let bodies = pagerduty.bodies();
    assert!(
        bodies.iter().all(|p| p["dedup_key"] == dedup.as_str()),
        "{bodies:#?}"
    );
    let owed: Vec<&str> = bodies
        .iter()
        .filter(|p| {
            p["event_action"] == "resolve"
                || p["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains(&format!("{label}:")))
        })
        .filter_map(|p| p["event_action"].as_str())
        .collect();
    assert_eq!(
        owed,
        ["trigger", "resolve"],
        "the owed trigger, then the resolve, each once: {bodies:#?}"
    );
    drop(daemon);
    let store = Store::open(&store).unwrap();
    let id: u64 = label.trim_start_matches("INC-").parse().unwrap();
    let t: Vec<String> = store
        .timeline(id)
        .unwrap()
        .into_iter()
        .map(|e| e.entry.summary)
        .collect();
    assert!(
        t.iter()
            .any(|s| s.contains("notify oncall: attempt") && s.contains("HTTP 500")),
        "{t:#?}"
    );
    assert!(
        t.iter()
            .any(|s| s.contains("notify oncall: delivered (pagerduty resolve")),
        "{t:#?}"
    );
}

/// An Alertmanager webhook delivery of one `node.not_ready` alert on `node`.
fn not_ready_alert(status: &str, node: &str, starts_at: &str) -> Value {
    json!({
        "version": "4",
        "status": status,
        "receiver": "fleetdeck",
        "alerts": [{
            "status": status,
            "labels": {
                "alertname": "KubeNodeNotReady",
                "fleetdeck_signal": "node.not_ready",
                "node": node,
                "severity": "critical"
            },
            "annotations": {"summary": format!("{node} is NotReady")},
            "startsAt": starts_at,
            "endsAt": if status == "firing" { "0001-01-01T00:00:00Z".to_string() } else { chrono::Utc::now().to_rfc3339() },
            "fingerprint": "a1b2c3d4e5f60718"
        }]
    })
}

/// Stops a replica with SIGTERM and waits for it to exit.
fn terminate(replica: &mut common::headless::Replica) {
    let pid = replica.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if replica.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon did not exit within 30 s of SIGTERM");
}

#[test]
fn a_restart_keeps_an_outside_alert_firing_and_a_refire_after_mitigation_pages_again() {
    use common::headless::Replica;
    use common::{Sim, http};
    const TOKEN: &str = "test-token-alert-book-0123456789abcdef";
    let pagerduty = Receiver::start(Answer::Ok);
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = paging_config(dir.path(), &sim, &pagerduty.url, "");
    let store = dir.path().join("store");
    let node = "ip-10-20-9-99.ec2.internal";
    let post = |url: &str, body: &Value| {
        let r = http()
            .post(format!("{url}/api/v1/alerts"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    };
    let actions = |r: &Receiver| -> Vec<String> {
        r.bodies()
            .iter()
            .filter_map(|b| b["event_action"].as_str().map(str::to_string))
            .collect()
    };
    let mut daemon = Replica::start_on(
        &sim,
        &config,
        "pager",
        TOKEN,
        &["--mode", "dry-run"],
        &store,
    );
    wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });
    post(
        &daemon.url,
        &not_ready_alert("firing", node, "2026-12-07T10:00:00Z"),
    );
    pagerduty.wait_for(1);
    assert_eq!(actions(&pagerduty), ["trigger"]);

    terminate(&mut daemon);
    let daemon = Replica::start_on(
        &sim,
        &config,
        "pager",
        TOKEN,
        &["--mode", "dry-run"],
        &store,
    );
    wait_until("the daemon leads again", Duration::from_secs(30), || {
        daemon.leads()
    });
    // Several evaluations and policy passes: nothing is cleared, nothing resolved.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        actions(&pagerduty),
        ["trigger"],
        "no resolve after a restart"
    );
    let shown: Value = http()
        .get(format!("{}/api/v1/incidents/INC-1", daemon.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let incident = &shown["incident"];
    assert_eq!(incident["status"], "open", "{shown:#}");
    assert_eq!(
        incident["active"],
        json!(["alert:a1b2c3d4e5f60718"]),
        "the alert's signal still fires: {shown:#}"
    );

    // Its resolution clears it and resolves the page.
    post(
        &daemon.url,
        &not_ready_alert("resolved", node, "2026-12-07T10:00:00Z"),
    );
    pagerduty.wait_for(2);
    assert_eq!(actions(&pagerduty), ["trigger", "resolve"]);
    // The next episode fires again on the mitigated incident: a new trigger.
    post(
        &daemon.url,
        &not_ready_alert("firing", node, "2026-12-07T11:00:00Z"),
    );
    pagerduty.wait_for(3);
    let bodies = pagerduty.bodies();
    assert_eq!(actions(&pagerduty), ["trigger", "resolve", "trigger"]);
    assert_eq!(bodies[2]["dedup_key"], bodies[0]["dedup_key"]);
}

#[test]
fn a_message_still_failing_at_give_up_after_is_given_up_on_the_timeline_and_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let dead = Receiver::start(Answer::FailFirst(usize::MAX));
    std::fs::write(dir.path().join("dead"), &dead.url).unwrap();
    // No count of attempts: only the horizon ends the retries.
    let cfg = config(
        dir.path(),
        &format!(
            "[notify]\nretry_base = \"100ms\"\ngive_up_after = \"1s\"\n\n\
             [notify.sinks.dead]\nkind = \"webhook\"\nurl_file = \"{d}/dead\"\n",
            d = dir.path().display()
        ),
    );
    assert_eq!(cfg.notify.attempts, 0);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let n = Notifier::start(&cfg.notify, Some(store.clone()), Origin::Headless)
        .unwrap()
        .unwrap();
    let id = open_incident(&store);
    n.send(message("dead", Action::Resolve, Some(id))).unwrap();
    wait_until("given up", Duration::from_secs(30), || {
        timeline(&store).iter().any(|s| s.contains("dead: gave up"))
    });
    let t = timeline(&store);
    let gave_up = t.iter().find(|s| s.contains("dead: gave up")).unwrap();
    assert!(
        gave_up.contains("attempts over") && gave_up.contains("HTTP 500"),
        "{t:#?}"
    );
    // 100 ms, 200, 400: the next pause would pass the horizon.
    let tries = dead.bodies().len();
    assert!((3..=5).contains(&tries), "{tries} attempts: {t:#?}");
    let entry = store
        .timeline(id)
        .unwrap()
        .into_iter()
        .find(|e| e.entry.summary.contains("gave up"))
        .unwrap();
    assert_eq!(
        entry.entry.detail.get(fleetdeck::notify::GAVE_UP),
        Some(&json!(true)),
        "counted on /metrics from this mark"
    );
    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].gave_up_at.is_some() && outbox[0].delivered_at.is_none());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dead.bodies().len(), tries, "nothing more after the give-up");
}

#[test]
#[ignore = "needs postgresql"]
fn on_a_shared_store_only_the_leader_delivers_what_a_dead_replica_left_owed() {
    let url = common::postgres::fresh_database();
    let open = || {
        Store::open_postgres(&fleetdeck::store::PgOptions {
            url: url.clone(),
            password: None,
            ca_file: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(Answer::Ok);
    hook.down.store(true, Ordering::SeqCst);
    std::fs::write(dir.path().join("hook"), &hook.url).unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[notify]\nretry_base = \"200ms\"\ngive_up_after = \"1m\"\n\n\
             [notify.sinks.oncall]\nkind = \"webhook\"\nurl_file = \"{d}/hook\"\n",
            d = dir.path().display()
        ),
    );
    // Replica A queues a trigger, fails to send it, and dies.
    let a_store = open();
    let a = Notifier::start(&cfg.notify, Some(a_store.clone()), Origin::Headless)
        .unwrap()
        .unwrap();
    let id = open_incident(&a_store);
    a.send(message("oncall", Action::Trigger, Some(id)))
        .unwrap();
    hook.wait_for(1);
    drop(a);
    drop(a_store);
    std::thread::sleep(Duration::from_millis(500));
    hook.got.lock().unwrap().clear();
    hook.down.store(false, Ordering::SeqCst);

    // A follower, and a cockpit on the same database (no leadership: only its own messages),
    // leave it alone.
    let follower = Notifier::start(&cfg.notify, Some(open()), Origin::Headless)
        .unwrap()
        .unwrap();
    follower.deliver_while(Arc::new(|| false));
    let cockpit = Notifier::start(&cfg.notify, Some(open()), Origin::Tui)
        .unwrap()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(hook.bodies().is_empty(), "{:#?}", hook.bodies());

    // The leader sends it, once, going on from A's attempts.
    let leader_store = open();
    let leader = Notifier::start(&cfg.notify, Some(leader_store.clone()), Origin::Headless)
        .unwrap()
        .unwrap();
    leader.deliver_while(Arc::new(|| true));
    hook.wait_for(1);
    std::thread::sleep(Duration::from_secs(1));
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["event"], "trigger");
    let t = timeline(&leader_store);
    let delivered: Vec<&String> = t
        .iter()
        .filter(|s| s.contains("notify oncall: delivered (webhook trigger, attempt "))
        .collect();
    assert_eq!(delivered.len(), 1, "{t:#?}");
    assert!(!delivered[0].contains("attempt 1)"), "{t:#?}");
    drop((follower, cockpit));
}
