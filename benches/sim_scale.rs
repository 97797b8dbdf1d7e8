//! Scale benchmark of `fleetdeck sim`: time until every server listens, resident memory, and
//! real `kubectl get pods -A -o json` against the result, at Kubernetes' published limits and
//! at a tenth of them (for the ratio, which is what to compare on a noisy shared machine).
//!
//! `cargo bench --bench sim_scale` (env `SIM_BENCH_NODES`, `SIM_BENCH_PODS_PER_NODE` and
//! `SIM_BENCH_CLUSTERS` override the full-scale size).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) of a process in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Figures {
    nodes: u32,
    pods: u64,
    listen_s: f64,
    rss_mib: f64,
    kubectl_s: f64,
    kubectl_pods: usize,
    rss_after_mib: f64,
    peak_mib: f64,
}

fn run(clusters: u32, nodes: u32, pods_per_node: u32) -> Figures {
    let dir = std::env::temp_dir().join(format!("fleetdeck-bench-{}-{nodes}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kubeconfig = dir.join("kubeconfig");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args([
            "sim",
            "--clusters",
            &clusters.to_string(),
            "--nodes",
            &nodes.to_string(),
        ])
        .args(["--pods-per-node", &pods_per_node.to_string(), "--seed", "1"])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fleetdeck sim");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the sim's JSON line");
    let listen_s = started.elapsed().as_secs_f64();
    let (rss, _) = rss_mib(child.id());
    let desc: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    let control = desc["control"].as_str().unwrap_or("").to_string();
    let fleet: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &Command::new("curl")
            .args(["-s", &format!("{control}/fleet")])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    ))
    .unwrap_or_default();
    let pods: u64 = fleet["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["pods"].as_u64().unwrap_or(0))
        .sum();
    let cache = dir.join("kubectl-cache");
    let t = Instant::now();
    let out = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["get", "pods", "-A", "-o", "json"])
        .output()
        .expect("run kubectl");
    let kubectl_s = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kubectl_pods = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| v["items"].as_array().map_or(0, Vec::len))
        .unwrap_or(0);
    let (rss_after, peak) = rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Figures {
        nodes,
        pods,
        listen_s,
        rss_mib: rss,
        kubectl_s,
        kubectl_pods,
        rss_after_mib: rss_after,
        peak_mib: peak,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let clusters = env_u32("SIM_BENCH_CLUSTERS", 2);
    let nodes = env_u32("SIM_BENCH_NODES", 5000);
    let ppn = env_u32("SIM_BENCH_PODS_PER_NODE", 30);
    let small = run(clusters, (nodes / 10).max(clusters), ppn);
    let full = run(clusters, nodes, ppn);
    println!(
        "| fleet | pods | listening after | RSS listening | kubectl get pods -A -o json (first context) | RSS after | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in [&small, &full] {
        println!(
            "| {clusters} clusters, {} nodes × {ppn} pods | {} | {:.1} s | {:.0} MiB | {:.1} s ({} pods) | {:.0} MiB | {:.0} MiB |",
            f.nodes,
            f.pods,
            f.listen_s,
            f.rss_mib,
            f.kubectl_s,
            f.kubectl_pods,
            f.rss_after_mib,
            f.peak_mib
        );
    }
    println!();
    println!(
        "ratios full/tenth: pods {:.1}×, start-up {:.1}×, RSS {:.1}×, kubectl {:.1}×",
        full.pods as f64 / small.pods.max(1) as f64,
        full.listen_s / small.listen_s.max(1e-9),
        full.rss_mib / small.rss_mib.max(1e-9),
        full.kubectl_s / small.kubectl_s.max(1e-9)
    );
    println!(
        "targets: listening in under 30 s: {}; under 3 GiB RSS: {}",
        if full.listen_s < 30.0 {
            "met"
        } else {
            "MISSED"
        },
        if full.peak_mib < 3072.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
