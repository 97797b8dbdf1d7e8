//! `fleetdeck headless` stopped with SIGTERM in the middle of a drain that a
//! PodDisruptionBudget keeps refusing (429): the daemon stops taking runs, lets the run reach
//! a safe point within `[headless] shutdown_grace`, writes on the incident's timeline what it
//! finished and what it left (the node cordoned, the pods still on it), hands the Lease back
//! and exits 0 without a panic.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kubectl, Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789abcdef";

/// The daemon, killed and waited for if the test ends before it exits.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn counter(sim: &Sim, name: &str) -> u64 {
    sim.counters("sim-a")[name].as_u64().unwrap_or(0)
}

#[test]
fn sigterm_during_a_pdb_blocked_drain_records_what_was_left_releases_the_lease_and_does_not_panic()
{
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "12",
        "--seed",
        "42",
        "--scenario",
        "pdb-block",
    ]);
    let k = Kubectl::new("1.33", &sim);
    let node = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"])["items"][0]
        ["spec"]["nodeName"]
        .as_str()
        .expect("a llama-chat pod with a node")
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\nshutdown_grace = \"8s\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let stderr_path = dir.path().join("stderr.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .arg("--store")
            .arg(&store)
            .args(["--mode", "auto", "headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("FLEETDECK_TOKEN", TOKEN)
            .env("POD_NAME", "replica-a")
            .env_remove("POD_IP")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start fleetdeck headless"),
    );
    let child = &mut daemon.0;
    let out = child.stdout.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    let url = format!("http://127.0.0.1:{port}");
    wait_until("the daemon leads", Duration::from_secs(30), || {
        http()
            .get(format!("{url}/metrics"))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|m| {
                m.lines()
                    .any(|l| l.starts_with("fleetdeck_leader") && l.trim_end().ends_with(" 1"))
            })
    });

    // A broken GPU on the node that serves llama-chat, whose budget allows no eviction.
    let r = http()
        .post(format!(
            "{}/scenarios/xid-storm?cluster=sim-a&node={node}",
            sim.control()
        ))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    wait_until(
        "the drain is refused by the budget (429)",
        Duration::from_secs(60),
        || counter(&sim, "evictions_refused_pdb") >= 2,
    );
    assert!(k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));

    let pid = child.id().to_string();
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    while killed.elapsed() < Duration::from_secs(30) {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        panic!("the daemon did not exit within 30 s of SIGTERM");
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let logged = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(!logged.contains("panicked"), "log: {logged}");
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");

    // The Lease is handed back: a follower may act at once.
    let lease = k.json(&["get", "lease", "fleetdeck-headless", "-n", "default"]);
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or("");
    assert!(holder.is_empty(), "the lease is still held by {holder:?}");

    // The timeline says what the run finished and what it left.
    let shown = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(&store)
        .args(["incident", "show", "1", "-o", "json"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let incident: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    let timeline: Vec<String> = incident["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect();
    let text = timeline.join("\n");
    // The drain stopped at a safe point and names the pods left on the cordoned node.
    assert!(
        timeline.iter().any(|s| s.contains("drain of node")
            && s.contains("stopped")
            && s.contains("llama-chat")
            && s.contains("stays cordoned")),
        "no drain entry naming what it left:\n{text}"
    );
    // The daemon's own entry: what it stopped, and that the Lease goes back.
    assert!(
        timeline
            .iter()
            .any(|s| s.contains("SIGTERM") && s.contains("gpu-xid-cordon")),
        "no shutdown entry:\n{text}"
    );
    // The node is still cordoned: half-drained, as the timeline says.
    assert!(k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));
}

#[test]
fn sigterm_while_a_run_waits_for_approval_records_it_left_waiting_and_does_not_wait_out_the_grace()
{
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6", "--seed", "7"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\nshutdown_grace = \"10m\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let mut daemon = common::headless::Replica::start_on(
        &sim,
        &config,
        "replica-a",
        TOKEN,
        &["--mode", "approve"],
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
    let mut approval = 0;
    wait_until("a plan waits for approval", Duration::from_secs(60), || {
        let runs: Value = http()
            .get(format!("{}/api/v1/runs", daemon.url))
            .bearer_auth(TOKEN)
            .send()
            .ok()
            .and_then(|r| r.json().ok())
            .unwrap_or(Value::Null);
        approval = runs["pending_approvals"][0]["id"].as_u64().unwrap_or(0);
        approval > 0
    });

    let pid = daemon.child.id().to_string();
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Nothing to bring to a safe point: the daemon exits without waiting out its grace (ten
    // minutes, so a daemon that waited it out would not have exited by the end of this wait).
    let mut status = None;
    while killed.elapsed() < Duration::from_secs(40) {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("the daemon exits after SIGTERM, not after its 10 m grace");
    assert!(status.success(), "exit {status:?}");

    let shown = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(&store)
        .args(["incident", "show", "1", "-o", "json"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let incident: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    let text: Vec<String> = incident["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect();
    assert!(
        text.iter().any(|s| s.contains("SIGTERM")
            && s.contains(&format!("left waiting for approval {approval} at shutdown"))),
        "no entry saying the run was left waiting:\n{}",
        text.join("\n")
    );
}
