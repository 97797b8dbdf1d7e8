//! Each headless replica keeps its own alert book and only the leader acts, so an alert that
//! Alertmanager delivers to a follower (the Service picks any replica) is forwarded to the
//! leader, found from the Lease's holder and the address it advertises there. When the leader
//! cannot be told the follower answers 503, and Alertmanager delivers again. Two real replicas
//! against one sim; the leader is killed with SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-forwarding-0123456789";

struct Replica {
    child: Child,
    url: String,
    name: String,
    _store: tempfile::TempDir,
}

impl Replica {
    fn start(sim: &Sim, config: &std::path::Path, name: &str) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("--config")
            .arg(config)
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .arg("--store")
            .arg(store.path().join("store"))
            .args(["headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("FLEETDECK_TOKEN", TOKEN)
            .env("POD_NAME", name)
            .env_remove("POD_IP")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fleetdeck headless");
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        let url = format!("http://127.0.0.1:{port}");
        wait_until(
            "the replica answers /healthz",
            Duration::from_secs(20),
            || {
                http()
                    .get(format!("{url}/healthz"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        );
        Replica {
            child,
            url,
            name: name.to_string(),
            _store: store,
        }
    }

    fn leads(&self) -> bool {
        http()
            .get(format!("{}/metrics", self.url))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|m| {
                m.lines()
                    .any(|l| l.starts_with("fleetdeck_leader") && l.trim_end().ends_with(" 1"))
            })
    }

    /// Delivers `body` as Alertmanager would: (status, answer).
    fn deliver(&self, body: &str) -> (u16, Value) {
        let r = http()
            .post(format!("{}/api/v1/alerts", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("the replica answers");
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn firing() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager-webhook.json");
    std::fs::read_to_string(path).expect("the fixture")
}

#[test]
fn an_alert_delivered_to_a_follower_reaches_the_leader_and_survives_its_death() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        "[gpu]\nnvml = false\n\n[headless]\nlease_namespace = \"default\"\n",
    )
    .unwrap();
    let a = Replica::start(&sim, &config, "replica-a");
    let b = Replica::start(&sim, &config, "replica-b");
    wait_until("exactly one replica leads", Duration::from_secs(30), || {
        a.leads() != b.leads()
    });
    let (mut leader, follower) = if a.leads() { (a, b) } else { (b, a) };

    // Alertmanager's delivery lands on the follower: it keeps it and tells the leader.
    let body = firing();
    let (status, answer) = follower.deliver(&body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forwarded_to"], leader.name.as_str(), "{answer}");
    assert!(answer["accepted"].as_u64().unwrap_or(0) > 0, "{answer}");
    // The leader already has it: the same delivery is a duplicate there.
    let (status, answer) = leader.deliver(&body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"], 0,
        "the leader did not know the alert: {answer}"
    );
    assert!(answer["duplicates"].as_u64().unwrap_or(0) > 0, "{answer}");
    assert!(
        answer["forwarded_to"].is_null(),
        "the leader forwards nothing: {answer}"
    );

    // The leader dies. Until its term runs out the follower cannot tell anyone: 503, so
    // Alertmanager delivers again.
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    let (status, answer) = follower.deliver(&body);
    assert!(
        status == 503 || (status == 200 && answer["forwarded_to"].is_null()),
        "a delivery the leader could not be told of must be retried: {status} {answer}"
    );
    if status == 503 {
        let why = answer.to_string();
        assert!(why.contains("leader"), "{why}");
    }
    wait_until(
        "the follower takes over within the lease duration",
        Duration::from_secs(30),
        || follower.leads(),
    );
    // The new leader knows the alert it was delivered.
    let (status, answer) = follower.deliver(&body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"], 0,
        "the new leader lost the alert: {answer}"
    );
    assert!(answer["firing"].as_u64().unwrap_or(0) > 0, "{answer}");
}
