//! Each headless replica keeps its own alert book and only the leader acts, so an alert that
//! Alertmanager delivers to a follower (the Service picks any replica) is forwarded to the
//! leader, found from the Lease's holder and the address it advertises there. When the leader
//! cannot be told the follower answers 503, and Alertmanager delivers again. Two real replicas
//! against one sim; the leader is killed with SIGKILL.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::headless::Replica;
use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-forwarding-0123456789";

/// Delivers `body` to `replica` as Alertmanager would: (status, answer).
fn deliver(replica: &Replica, body: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/api/v1/alerts", replica.url))
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
    let a = Replica::start(&sim, &config, "replica-a", TOKEN, &[]);
    let b = Replica::start(&sim, &config, "replica-b", TOKEN, &[]);
    wait_until("exactly one replica leads", Duration::from_secs(30), || {
        a.leads() != b.leads()
    });
    let (mut leader, follower) = if a.leads() { (a, b) } else { (b, a) };

    // Alertmanager's delivery lands on the follower: it keeps it and tells the leader.
    let body = firing();
    let (status, answer) = deliver(&follower, &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forwarded_to"], leader.name.as_str(), "{answer}");
    assert!(answer["accepted"].as_u64().unwrap_or(0) > 0, "{answer}");
    // The leader already has it: the same delivery is a duplicate there.
    let (status, answer) = deliver(&leader, &body);
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
    let (status, answer) = deliver(&follower, &body);
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
    let (status, answer) = deliver(&follower, &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"], 0,
        "the new leader lost the alert: {answer}"
    );
    assert!(answer["firing"].as_u64().unwrap_or(0) > 0, "{answer}");
}
