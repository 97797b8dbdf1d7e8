//! A restart says nothing false: a daemon stopped in the middle of an incident and started again
//! on the same store has not seen the fault yet, so the fault is unknown, not cleared; it is
//! confirmed when the detector sees it again, and nothing on the timeline says "mitigated".

mod common;

use std::time::Duration;

use common::headless::Replica;
use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789abcdef";

fn get(replica: &Replica, path: &str) -> Value {
    http()
        .get(format!("{}{path}", replica.url))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// The designed crash loop's incident (batch/tokenizer-worker), if it is on the store.
fn crash_loop_incident(replica: &Replica) -> Option<Value> {
    get(replica, "/api/v1/incidents")["incidents"]
        .as_array()?
        .iter()
        .find(|i| {
            i["group"].as_str().is_some_and(|g| {
                g.starts_with("pod.crash_loop:") && g.ends_with("tokenizer-worker")
            })
        })
        .cloned()
}

fn timeline(replica: &Replica, id: u64) -> Vec<String> {
    get(replica, &format!("/api/v1/incidents/{id}"))["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_restarted_daemon_does_not_mitigate_an_incident_whose_fault_still_fires() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    // A short `for`, so the crash loop fires within seconds; the resume hold is that `for`
    // plus its margin (30 s), longer than this test waits after the restart.
    std::fs::write(
        &config,
        "[gpu]\nnvml = false\n\n[signals.for]\npod_crash_loop = \"3s\"\n\n[headless]\nlease_namespace = \"default\"\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let mut first = Replica::start_on(&sim, &config, "replica-a", TOKEN, &[], &store);
    wait_until(
        "the crash loop opens an incident",
        Duration::from_secs(60),
        || crash_loop_incident(&first).is_some_and(|i| i["status"] == "open"),
    );
    let id = crash_loop_incident(&first)
        .and_then(|i| i["id"].as_u64())
        .unwrap_or_else(|| panic!("no incident id"));
    // SIGTERM: a clean stop, the store closed.
    let pid = first.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let _ = first.child.wait();

    let mut second = Replica::start_on(&sim, &config, "replica-a", TOKEN, &[], &store);
    // Long enough for the restarted daemon to have evaluated many times and for its detector to
    // have seen the crash loop for its `for` again.
    std::thread::sleep(Duration::from_secs(12));
    let inc = crash_loop_incident(&second).unwrap_or_else(|| panic!("the incident is gone"));
    assert_eq!(inc["id"].as_u64(), Some(id));
    assert_eq!(inc["status"], "open", "{inc}");
    let lines = timeline(&second, id);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("cleared") || l.starts_with("mitigated")),
        "a restart cleared a fault that still fires: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("fired again")),
        "the fault was confirmed, not re-opened: {lines:#?}"
    );
    let _ = second.child.kill();
    let _ = second.child.wait();
}
