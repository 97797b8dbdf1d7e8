//! The headless daemon's targets:
//! 1. the Alertmanager webhook under 1,000 alerts a second for 10 s (in-process server on
//!    loopback, a real store): p50/p99 response time, every distinct alert handled once, memory;
//! 2. alert → first mutating request: the real `fleetdeck headless` (auto mode, re-validation
//!    off) against the real `fleetdeck sim`, an alert per node, until kubectl-visible cordon
//!    (polled every 5 ms on the sim's API).
//!
//! `cargo bench --bench headless` (the release binary must be built: the bench builds it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck::config::HeadlessConfig;
use fleetdeck::headless::server::{ApiState, router, serve};
use fleetdeck::store::Store;

const TOKEN: &str = "bench-token";

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn payload(i: u64, status: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"GpuXid\", node=\"n{i}\"}}"),
        "status": status, "receiver": "fleetdeck", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
        "alerts": [{
            "status": status,
            "labels": {"alertname": "GpuXid", "severity": "warning", "node": format!("node-{}", i % 500), "gpu": format!("{}", i % 8), "cluster": "bench"},
            "annotations": {"summary": format!("alert {i}")},
            "startsAt": "2026-11-28T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": format!("{i:016x}")
        }]
    })
}

async fn webhook_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let state = ApiState::new(
        store,
        HeadlessConfig::default(),
        Some(TOKEN.into()),
        "bench",
    );
    let book = state.alerts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, router(state), std::future::pending()));
    let url = format!("http://{addr}/api/v1/alerts");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let rss0 = rss_mib();
    // 1,000 a second for 10 s: one request every millisecond, each a distinct alert, and every
    // tenth one a redelivery of an earlier alert (Alertmanager repeats itself).
    let total = 10_000u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + Duration::from_micros(i * 1000);
        tokio::time::sleep_until(due.into()).await;
        let (c, u) = (client.clone(), url.clone());
        let id = if i % 10 == 9 { i - 5 } else { i };
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .post(&u)
                .bearer_auth(TOKEN)
                .json(&payload(id, "firing"))
                .send()
                .await;
            let ok = r.is_ok_and(|r| r.status().is_success());
            (t.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (ms, ok) = t.await.expect("task");
        lat.push(ms);
        if !ok {
            failed += 1;
        }
    }
    let took = started.elapsed();
    let distinct = (0..total).filter(|i| i % 10 != 9).count();
    println!(
        "webhook: {total} deliveries in {:.1} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {failed} failed",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat.clone(), 0.99),
        pct(&mut lat, 1.0)
    );
    println!(
        "webhook: {} distinct alerts firing in the book (expected {distinct}); RSS {:.0} → {:.0} MiB",
        book.len(),
        rss0,
        rss_mib()
    );
    assert_eq!(book.len(), distinct, "an alert was lost or counted twice");
}

fn alert_to_action() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/fleetdeck");
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut sim = Command::new(&bin)
        .args([
            "sim",
            "--clusters",
            "1",
            "--nodes",
            "60",
            "--pods-per-node",
            "4",
        ])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sim");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sim.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("sim line");
    let desc: serde_json::Value = serde_json::from_str(&line).expect("json");
    let kube = desc["clusters"][0]["kube"]
        .as_str()
        .expect("kube")
        .to_string();
    let config = dir.path().join("f.toml");
    std::fs::write(
        &config,
        "[gpu]\nnvml = false\n[runbooks]\nrevalidate_after = \"0s\"\nmax_disrupted_pct = 100.0\nhalt_unready_pct = 100.0\n[headless]\nlease_namespace = \"default\"\nevents = false\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut daemon = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["--mode", "auto", "headless", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("FLEETDECK_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("headless");
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "headless never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Leadership: wait for the Lease.
    std::thread::sleep(Duration::from_secs(3));
    let nodes: Vec<String> = http
        .get(format!("{kube}/api/v1/nodes"))
        .send()
        .and_then(|r| r.json::<serde_json::Value>())
        .expect("nodes")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let mut lat = Vec::new();
    for (i, node) in nodes.iter().take(40).enumerate() {
        let body = serde_json::json!({
            "version": "4", "status": "firing", "receiver": "fleetdeck", "groupKey": format!("k{i}"),
            "alerts": [{"status": "firing", "fingerprint": format!("b{i:015x}"),
                "labels": {"alertname": "GpuXid", "severity": "critical", "fleetdeck_signal": "gpu.xid", "node": node, "cluster": "sim-a"},
                "annotations": {"summary": format!("XID 79 on {node}")},
                "startsAt": chrono::Utc::now().to_rfc3339()}]
        });
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/alerts"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .expect("post");
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
        loop {
            let n: serde_json::Value = http
                .get(format!("{kube}/api/v1/nodes/{node}"))
                .send()
                .and_then(|r| r.json())
                .expect("node");
            if n["spec"]["unschedulable"] == true {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{node} never cordoned"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "alert → cordon visible on the API ({} alerts, polled every 5 ms): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat.clone(), 0.99),
        pct(&mut lat, 1.0)
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = sim.kill();
    let _ = sim.wait();
}

fn main() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(webhook_load());
    alert_to_action();
}
