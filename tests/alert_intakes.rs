//! Alerts from Grafana, Datadog, Azure Monitor and Kibana delivered to a real `fleetdeck
//! headless` watching a real `fleetdeck sim`, as those systems' webhooks would deliver them:
//! each becomes an incident on the daemon's timeline, named after its sender, and its
//! resolution resolves it. The payloads are tests/fixtures/alerts (see SOURCES.md there).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::headless::Replica;
use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-intakes-0123456789abcdef";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alerts")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn deliver(replica: &Replica, path: &str, body: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", replica.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("the daemon answers");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn incidents(replica: &Replica) -> Vec<Value> {
    http()
        .get(format!("{}/api/v1/incidents", replica.url))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json::<Value>())
        .ok()
        .and_then(|v| {
            v.as_array()
                .cloned()
                .or_else(|| v["incidents"].as_array().cloned())
        })
        .unwrap_or_default()
}

/// The incident whose text names `kind` (its group and signals do), as the API lists it.
fn incident_of(replica: &Replica, kind: &str) -> Option<Value> {
    incidents(replica)
        .into_iter()
        .find(|i| i.to_string().contains(kind))
}

#[test]
fn each_vendors_alert_opens_an_incident_and_its_resolution_resolves_it() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        "[gpu]\nnvml = false\n\n[headless]\nlease_namespace = \"default\"\n",
    )
    .unwrap();
    let daemon = Replica::start(&sim, &config, "intakes", TOKEN, &["--mode", "dry-run"]);
    wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });

    let vendors = [
        (
            "grafana",
            "grafana-firing.json",
            "grafana-resolved.json",
            "alert.gpu_memory_high",
        ),
        (
            "datadog",
            "datadog-triggered.json",
            "datadog-recovered.json",
            "alert.dcgm_xid_errors_on_a_gpu_node",
        ),
        (
            "azure-monitor",
            "azure-monitor-fired.json",
            "azure-monitor-resolved.json",
            "alert.gpu_vm_heartbeat_lost",
        ),
        (
            "elastic",
            "elastic-active.json",
            "elastic-recovered.json",
            "alert.gpu_pods_crash_looping",
        ),
    ];
    for (vendor, firing, _, kind) in vendors {
        let (status, answer) = deliver(
            &daemon,
            &format!("/api/v1/alerts/{vendor}"),
            &fixture(firing),
        );
        assert_eq!(status, 200, "{vendor}: {answer}");
        wait_until(
            &format!("an incident for {kind}"),
            Duration::from_secs(30),
            || incident_of(&daemon, kind).is_some(),
        );
        let id = incident_of(&daemon, kind).expect("listed")["id"].clone();
        let shown = http()
            .get(format!("{}/api/v1/incidents/{id}", daemon.url))
            .bearer_auth(TOKEN)
            .send()
            .and_then(|r| r.text())
            .expect("the incident");
        assert!(
            shown.contains(&format!("\"source\":\"{vendor}\"")),
            "the timeline names the sender: {shown}"
        );
    }
    for (vendor, _, resolved, kind) in vendors {
        let (status, answer) = deliver(
            &daemon,
            &format!("/api/v1/alerts/{vendor}"),
            &fixture(resolved),
        );
        assert_eq!(status, 200, "{vendor}: {answer}");
        assert_eq!(
            answer["resolved"].as_u64().map(|n| n >= 1),
            Some(true),
            "{vendor}: {answer}"
        );
        wait_until(
            &format!("the {kind} incident resolved"),
            Duration::from_secs(60),
            || {
                incident_of(&daemon, kind).is_some_and(|i| {
                    i["active"].as_array().is_some_and(Vec::is_empty)
                        && (i["status"] == "mitigated" || i["status"] == "resolved")
                })
            },
        );
    }

    let metrics = http()
        .get(format!("{}/metrics", daemon.url))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains(r#"fleetdeck_alerts_total{status="firing",outcome="accepted"}"#),
        "{metrics}"
    );
}
