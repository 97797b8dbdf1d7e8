//! End to end with the monitoring stack people already run: the sim, `fleetdeck headless` in
//! auto mode, Debian's real Alertmanager routed to its webhook and Debian's real Prometheus
//! scraping its /metrics and firing a rule. The alert leads to a runbook run, the cordon is
//! visible with kubectl on the sim, and Prometheus shows the run in fleetdeck's metrics.
//!
//! Needs the packages `prometheus` and `prometheus-alertmanager` (`.ci/run` installs them):
//! `cargo test --test headless_alertmanager -- --include-ignored`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Kubectl, Sim, http, wait_until};

const TOKEN: &str = "alertmanager-test-token-42";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    name.to_string()
}

#[test]
#[ignore = "needs prometheus and alertmanager (Debian packages prometheus, prometheus-alertmanager)"]
fn an_alertmanager_alert_runs_a_runbook_that_cordons_and_prometheus_sees_the_run() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "8", "--pods-per-node", "6"]);
    let kubectl = Kubectl::new("1.33", &sim);
    let node = kubectl
        .ok(&["get", "nodes", "-o", "name"])
        .lines()
        .next()
        .expect("a node")
        .trim_start_matches("node/")
        .to_string();
    let dir = tempfile::tempdir().unwrap();

    // fleetdeck headless, auto mode.
    let port = free_port();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        "[gpu]\nnvml = false\n\n[runbooks]\nrevalidate_after = \"500ms\"\n\n[headless]\nlease_namespace = \"default\"\n",
    )
    .unwrap();
    let mut fd = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["--mode", "auto", "headless", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("FLEETDECK_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fleetdeck headless");
    let out = fd.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    let _fd = Killed(fd);
    let fleetdeck = format!("127.0.0.1:{port}");
    wait_until("fleetdeck is ready", Duration::from_secs(30), || {
        http()
            .get(format!("http://{fleetdeck}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });

    // Alertmanager, routed to the webhook with the bearer token.
    let am_port = free_port();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            r#"route:
  receiver: fleetdeck
  group_by: [alertname, node]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: fleetdeck
    webhook_configs:
      - url: http://{fleetdeck}/api/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"#
        ),
    )
    .unwrap();
    let am = Command::new(binary("prometheus-alertmanager"))
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("am").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager");
    let _am = Killed(am);

    // Prometheus: scrapes fleetdeck, evaluates a rule that fires, sends it to Alertmanager.
    let prom_port = free_port();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            r#"groups:
  - name: gpu
    interval: 1s
    rules:
      - alert: GpuFellOffTheBus
        expr: vector(1)
        labels:
          severity: critical
          fleetdeck_signal: gpu.xid
          cluster: sim-a
          node: {node}
        annotations:
          summary: "XID 79 on {node}: GPU has fallen off the bus"
"#
        ),
    )
    .unwrap();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{}"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: fleetdeck
    static_configs:
      - targets: ["{fleetdeck}"]
"#,
            rules.display()
        ),
    )
    .unwrap();
    let prom = Command::new(binary("prometheus"))
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prom = Killed(prom);

    // The alert → webhook → signal → gpu-xid-cordon → the node is cordoned.
    wait_until(
        "the alert's node is cordoned (kubectl)",
        Duration::from_secs(90),
        || {
            kubectl
                .ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"])
                .trim()
                == "true"
        },
    );
    // Prometheus sees the run in fleetdeck's metrics.
    let query = format!(
        "http://127.0.0.1:{prom_port}/api/v1/query?query=sum(fleetdeck_runbook_runs_total)"
    );
    wait_until(
        "Prometheus shows the runbook run",
        Duration::from_secs(60),
        || {
            http()
                .get(&query)
                .send()
                .ok()
                .and_then(|r| r.json::<serde_json::Value>().ok())
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .and_then(|s| s.parse::<f64>().ok())
                })
                .is_some_and(|n| n >= 1.0)
        },
    );
    // And the incident's timeline tells the story through the API.
    let incidents: serde_json::Value = http()
        .get(format!("http://{fleetdeck}/api/v1/incidents"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let text = incidents.to_string();
    assert!(
        text.contains("gpu.fault:sim-a/node/"),
        "an XID alert is a GPU fault of its node: {text}"
    );
}
