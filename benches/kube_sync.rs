//! The Kubernetes source against `fleetdeck sim` in a separate process, at Kubernetes'
//! published limits: first full sync against real `kubectl get pods -A -o json` (same sim,
//! same run), RSS holding the synced model, change-to-snapshot latency of node condition
//! changes, and CPU in steady state with one change a second.
//!
//! `cargo bench --bench kube_sync` (env `SYNC_BENCH_NODES`, `SYNC_BENCH_PODS_PER_NODE`,
//! `SYNC_BENCH_CHANGES`, `SYNC_BENCH_STEADY_SECS` shrink it).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck::model::{NodeReadiness, Snapshot};
use fleetdeck::sources::kube::{spawn_cluster, targets};
use fleetdeck::state::{ClusterInfo, spawn};
use tokio::sync::watch;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn wait_for(rx: &mut watch::Receiver<Arc<Snapshot>>, mut f: impl FnMut(&Snapshot) -> bool) {
    loop {
        if f(&rx.borrow()) {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn main() {
    let nodes = env_u32("SYNC_BENCH_NODES", 5000);
    let ppn = env_u32("SYNC_BENCH_PODS_PER_NODE", 30);
    let changes = env_u32("SYNC_BENCH_CHANGES", 100);
    let steady_secs = env_u32("SYNC_BENCH_STEADY_SECS", 30);
    let dir = std::env::temp_dir().join(format!("fleetdeck-sync-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kubeconfig = dir.join("kubeconfig");
    // One cluster at the per-cluster limit: 5,000 nodes, 150,000 pods.
    let mut sim = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args([
            "sim",
            "--clusters",
            "1",
            "--nodes",
            &nodes.to_string(),
            "--pods-per-node",
            &ppn.to_string(),
        ])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fleetdeck sim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("sim JSON line");
    let desc: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    let kube_url = desc["clusters"][0]["kube"]
        .as_str()
        .unwrap_or("")
        .to_string();

    let t = Instant::now();
    let out = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["get", "pods", "-A", "-o", "json"])
        .stdout(Stdio::null())
        .status()
        .expect("kubectl");
    let kubectl_s = t.elapsed().as_secs_f64();
    assert!(out.success(), "kubectl failed");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let rss_before = status_kib("VmRSS:");
        let t = Instant::now();
        let targets = targets(Some(&kubeconfig), &[]).expect("kubeconfig");
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let infos = targets.iter().map(|t| ClusterInfo { name: t.context.clone(), server: t.server.clone() }).collect();
        let mut snaps = spawn(infos, rx);
        for (i, target) in targets.into_iter().enumerate() {
            spawn_cluster(i, target, Default::default(), tx.clone());
        }
        wait_for(&mut snaps, |s| s.clusters.iter().all(|c| c.synced())).await;
        let sync_s = t.elapsed().as_secs_f64();
        let snap = snaps.borrow().clone();
        let pods = snap.clusters[0].totals.pods.total();
        let node_names: Vec<String> = snap.clusters[0].nodes.iter().map(|n| n.name.clone()).collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = status_kib("VmRSS:") / 1024.0;
        let hwm = status_kib("VmHWM:") / 1024.0;

        // Node condition changes, one at a time: PATCH the status, wait for the snapshot.
        let client = reqwest::Client::new();
        let patch = |node: &str, ready: bool| {
            let body = serde_json::json!({"status": {"conditions": [{
                "type": "Ready", "status": if ready { "True" } else { "False" },
                "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
                "message": "fleetdeck benchmark", "lastHeartbeatTime": chrono::Utc::now().to_rfc3339(),
                "lastTransitionTime": chrono::Utc::now().to_rfc3339(),
            }]}});
            client
                .patch(format!("{kube_url}/api/v1/nodes/{node}/status"))
                .header("Content-Type", "application/strategic-merge-patch+json")
                .body(body.to_string())
                .send()
        };
        let mut latencies = Vec::new();
        for i in 0..changes as usize {
            let node = node_names[i % node_names.len()].clone();
            let ready = i % 2 == 1;
            let t = Instant::now();
            let resp = patch(&node, ready).await.expect("patch");
            assert!(resp.status().is_success(), "patch failed: {}", resp.status());
            let want = if ready { NodeReadiness::Ready } else { NodeReadiness::NotReady };
            wait_for(&mut snaps, |s| s.clusters[0].nodes.iter().any(|n| n.name == node && n.readiness == want)).await;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(|a, b| a.total_cmp(b));

        // Steady state: one change a second.
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        for i in 0..steady_secs as usize {
            let node = node_names[(i * 7) % node_names.len()].clone();
            let _ = patch(&node, i % 2 == 0).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let cpu_pct = (cpu_seconds() - cpu0) / t.elapsed().as_secs_f64() * 100.0;

        println!("| measure | result | target |");
        println!("|---|---|---|");
        println!("| pods in the model | {pods} on {} nodes | 150,000 / 5,000 |", node_names.len());
        println!("| kubectl get pods -A -o json | {kubectl_s:.1} s | — |");
        println!(
            "| first full sync (nodes, pods, deployments, PDBs, events, InferenceServices) | {sync_s:.1} s = {:.2}× kubectl | ≤ 1.5× |",
            sync_s / kubectl_s
        );
        println!("| RSS holding the synced model | {rss:.0} MiB (peak {hwm:.0} MiB, {:.0} MiB before starting) | ≤ 256 MiB |", rss_before / 1024.0);
        println!(
            "| node condition change → published snapshot ({} changes) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | p99 ≤ 200 ms |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0)
        );
        println!("| CPU in steady state, one change a second ({steady_secs} s) | {cpu_pct:.2} % of one core | ≤ 3 % |");
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
