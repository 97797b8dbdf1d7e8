//! A flood of slow runs against the real daemon: the sim, `fleetdeck headless` with a runbook
//! that sleeps, and one Alertmanager delivery of 600 `gpu.xid` alerts (600 nodes, so 600 runs).
//! Runs execute on the bounded pool (`[runbooks] max_concurrent_runs`, `max_queued_runs`): the
//! rest are refused on their incidents' timelines, the API keeps answering while the workers
//! sleep, the daemon's thread count stays bounded, and a run that sleeps past its
//! `run_timeout` fails with "deadline exceeded" instead of holding its worker.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, wait_until};
use serde_json::{Value, json};

const TOKEN: &str = "flood-test-token-7";
const ALERTS: usize = 600;
const WORKERS: usize = 4;
const QUEUED: usize = 8;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client that gives up where a wedged daemon used to keep callers waiting.
fn impatient() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn xid_alerts(from: usize, count: usize) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    let alerts: Vec<Value> = (from..from + count)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {
                    "alertname": "GpuXid",
                    "fleetdeck_signal": "gpu.xid",
                    "severity": "critical",
                    "cluster": "sim-a",
                    "node": format!("flood-node-{i}"),
                },
                "annotations": { "summary": format!("XID 79 on flood-node-{i}") },
                "startsAt": now,
                "fingerprint": format!("flood{i:08x}"),
            })
        })
        .collect();
    json!({
        "version": "4",
        "status": "firing",
        "receiver": "fleetdeck",
        "groupKey": "{}:{alertname=\"GpuXid\"}",
        "alerts": alerts,
    })
}

#[test]
fn a_flood_of_sleeping_runs_is_bounded_and_the_api_keeps_answering() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "4", "--pods-per-node", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    // Each run sleeps for real (holding its worker), then asks for more than its deadline.
    std::fs::write(
        runbooks.join("sleeper.rhai"),
        r#"const RUNBOOK = #{
    name: "sleeper",
    description: "sleeps, then asks to sleep past its deadline",
    trigger: #{ signal: "gpu.xid" },
    cooldown: "1m",
};

fn run(signal) {
    sleep(8);
    sleep(100000);
}
"#,
    )
    .unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\n\n[runbooks]\ndir = \"{}\"\nrun_timeout = \"60s\"\nmax_concurrent_runs = {WORKERS}\nmax_queued_runs = {QUEUED}\n\n[headless]\nlease_namespace = \"default\"\nevents = false\n",
            runbooks.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut fd = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["headless", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("FLEETDECK_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fleetdeck headless");
    let pid = fd.id();
    let out = fd.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    let _fd = Killed(fd);
    let base = format!("http://127.0.0.1:{port}");
    let http = impatient();
    wait_until("fleetdeck is ready", Duration::from_secs(60), || {
        http.get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    let threads_before = threads_of(pid);

    let post = |body: &Value| {
        http.post(format!("{base}/api/v1/alerts"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("POST /api/v1/alerts did not answer in 5 s: {e}"))
    };
    let r = post(&xid_alerts(0, ALERTS));
    assert!(r.status().is_success(), "{}", r.status());

    // The workers sleep for 8 s at least; meanwhile every call answers, and the thread count
    // stays bounded.
    let runs = |http: &reqwest::blocking::Client| -> Vec<Value> {
        let v: Value = http
            .get(format!("{base}/api/v1/runs"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap_or_else(|e| panic!("GET /api/v1/runs did not answer in 5 s: {e}"))
            .json()
            .unwrap();
        v["runs"].as_array().cloned().unwrap_or_default()
    };
    wait_until("the runs start", Duration::from_secs(30), || {
        !runs(&http).is_empty()
    });
    let mut most_threads = 0;
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(6) {
        round += 1;
        let r = http
            .get(format!("{base}/api/v1/incidents"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap_or_else(|e| panic!("GET /api/v1/incidents did not answer in 5 s: {e}"));
        assert!(r.status().is_success(), "{}", r.status());
        let r = post(&xid_alerts(ALERTS + round, 1));
        assert!(r.status().is_success(), "{}", r.status());
        // A refusal (wrong token) answers too.
        let r = http
            .get(format!("{base}/api/v1/incidents"))
            .bearer_auth("not-the-token")
            .send()
            .unwrap_or_else(|e| panic!("a refused call did not answer in 5 s: {e}"));
        assert!(r.status().is_client_error(), "{}", r.status());
        most_threads = most_threads.max(threads_of(pid));
        std::thread::sleep(Duration::from_millis(300));
    }
    let running = runs(&http)
        .iter()
        .filter(|r| r["finished_at"].is_null())
        .count();
    assert!(
        running <= WORKERS,
        "{running} runs in progress with {WORKERS} workers"
    );
    // The tokio workers, the blocking threads the API and the store use, the sources and the
    // run workers: nowhere near one thread per run.
    assert!(
        most_threads < threads_before + 100 && most_threads < 200,
        "{most_threads} threads (before the flood: {threads_before})"
    );

    // Runs the queue could not hold were refused, on their incidents' timelines.
    let refused = runs(&http)
        .into_iter()
        .filter(|r| {
            r["state"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("the run queue is full"))
        })
        .collect::<Vec<_>>();
    assert!(!refused.is_empty(), "no run was refused");
    eprintln!(
        "threads: {threads_before} before the flood, at most {most_threads} during it; {} refused runs kept, {round} rounds of calls answered",
        refused.len()
    );
    let mut timeline = Value::Null;
    wait_until(
        "a refusal on an incident's timeline",
        Duration::from_secs(30),
        || {
            let Some(incident) = runs(&http).into_iter().find_map(|r| {
                r["state"]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("the run queue is full"))
                    .then(|| r["incident"].as_u64())
                    .flatten()
            }) else {
                return false;
            };
            timeline = http
                .get(format!("{base}/api/v1/incidents/{incident}"))
                .bearer_auth(TOKEN)
                .send()
                .ok()
                .and_then(|r| r.json().ok())
                .unwrap_or(Value::Null);
            timeline["timeline"].to_string().contains("not started")
        },
    );
    assert!(
        timeline["timeline"]
            .to_string()
            .contains("max_concurrent_runs"),
        "{timeline}"
    );

    // A run that slept its 8 s then asked for 100000 s more failed at once: deadline exceeded.
    wait_until(
        "a run fails with deadline exceeded",
        Duration::from_secs(60),
        || {
            runs(&http).iter().any(|r| {
                r["state"]["state"] == "failed"
                    && r["state"]["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("deadline exceeded"))
            })
        },
    );
}

/// A runbook stuck in `loop { note("x"); }` writes at most `[runbooks] max_entries_per_run`
/// entries and one "truncated" entry before its deadline stops it, and the failure is printed
/// as a message, not as Rust's debug form (`Failed("…")`).
#[test]
fn a_runaway_loop_of_notes_writes_its_cap_and_one_truncated_entry() {
    const CAP: usize = 50;
    let sim = Sim::start(&["--clusters", "1", "--nodes", "2", "--pods-per-node", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("chatty.rhai"),
        r#"const RUNBOOK = #{
    name: "chatty",
    description: "notes forever",
    trigger: #{ signal: "gpu.xid" },
    cooldown: "1m",
};

fn run(signal) {
    loop { note("x"); }
}
"#,
    )
    .unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\n\n[runbooks]\ndir = \"{}\"\nmax_entries_per_run = {CAP}\n",
            runbooks.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .arg("--store")
        .arg(&store)
        .args(["runbook", "run", "chatty", "--target", "node/flood-node-0"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .expect("run fleetdeck");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // Stopped by its operation cap or its deadline, whichever comes first, said as a message.
    assert!(
        stdout.contains("failed: ") && stdout.contains("runbook chatty: in fn run: stopped:"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("Failed(") && !stdout.contains("\\\""),
        "a message, not Debug: {stdout}"
    );

    let store = fleetdeck::store::Store::open(&store).unwrap();
    let mut notes = 0;
    let mut truncated = Vec::new();
    for seq in 1..=store.len().unwrap() {
        let Some(e) = store.entry(seq).unwrap() else {
            continue;
        };
        if e.entry.kind == fleetdeck::model::incident::EntryKind::Note {
            notes += 1;
        }
        if e.entry.summary.starts_with("truncated:") {
            truncated.push(e.entry.summary.clone());
        }
    }
    assert_eq!(notes, CAP, "notes written");
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert!(
        truncated[0].contains("max_entries_per_run"),
        "{truncated:?}"
    );
}
