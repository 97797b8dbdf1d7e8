//! GPU scraping and detectors at fleet scale against `fleetdeck sim` in its own process:
//! one DCGM scrape round of 40,000 GPUs (5,000 GPU nodes × 8), and one evaluation of every
//! detector over the snapshot holding them (plus 6,250 nodes and their pods).
//!
//! `cargo bench --bench gpu_signals` (env `GPU_BENCH_NODES` shrinks it).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetdeck::model::Snapshot;
use fleetdeck::signals::Detectors;
use fleetdeck::sources::Update;
use fleetdeck::sources::dcgm::scrape;
use fleetdeck::sources::kube::{spawn_cluster, targets};
use fleetdeck::state::{ClusterInfo, spawn};
use tokio::sync::watch;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn wait_for(rx: &mut watch::Receiver<Arc<Snapshot>>, f: impl Fn(&Snapshot) -> bool) {
    while !f(&rx.borrow()) {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn main() {
    // 6,250 nodes: four in five are GPU nodes, so 5,000 × 8 = 40,000 GPUs.
    let nodes: u32 = std::env::var("GPU_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6250);
    let dir = std::env::temp_dir().join(format!("fleetdeck-gpu-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kubeconfig = dir.join("kubeconfig");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args([
            "sim",
            "--clusters",
            "2",
            "--nodes",
            &nodes.to_string(),
            "--pods-per-node",
            "8",
            "--scenario",
            "xid-storm",
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
    let dcgm: Vec<(String, String)> = desc["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(desc["dcgm"].as_array().into_iter().flatten())
        .map(|(c, u)| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                u.as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::new();
        // Scrape rounds: every exporter at once, as the source does.
        let mut rounds = Vec::new();
        let mut gpus = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let results = futures_util::future::join_all(dcgm.iter().map(|(cluster, url)| {
                let client = client.clone();
                async move {
                    let mut g = scrape(&client, url).await.expect("scrape");
                    for x in &mut g {
                        x.cluster = cluster.clone();
                    }
                    g
                }
            }))
            .await;
            rounds.push(t.elapsed().as_secs_f64());
            gpus = results.into_iter().flatten().collect::<Vec<_>>();
        }
        let targets = targets(Some(&kubeconfig), &[]).expect("kubeconfig");
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let infos = targets.iter().map(|t| ClusterInfo { name: t.context.clone(), server: t.server.clone() }).collect();
        let mut snaps = spawn(infos, rx);
        for (i, target) in targets.into_iter().enumerate() {
            spawn_cluster(i, target, Default::default(), tx.clone());
        }
        wait_for(&mut snaps, |s| s.clusters.iter().all(|c| c.synced())).await;
        let gpu_count = gpus.len();
        let status = fleetdeck::model::gpu::GpuSourceStatus {
            kind: fleetdeck::model::gpu::GpuSourceKind::Dcgm,
            cluster: "all".into(),
            target: "bench".into(),
            error: None,
            last_success: Some(chrono::Utc::now()),
            checked_at: chrono::Utc::now(),
        };
        let update = fleetdeck::model::gpu::GpuUpdate { status, gpus: Some(gpus) };
        tx.send(Update::Gpu(Box::new(update))).await.expect("send");
        wait_for(&mut snaps, |s| s.gpus.len() == gpu_count).await;
        let snap = snaps.borrow().clone();
        let mut detectors = Detectors::default();
        let mut evals = Vec::new();
        let mut signals = 0;
        for _ in 0..20 {
            let t = Instant::now();
            signals = detectors.evaluate(&snap, chrono::Utc::now()).len();
            evals.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let nodes_in_model: usize = snap.clusters.iter().map(|c| c.nodes.len()).sum();
        println!("| measure | result | target |");
        println!("|---|---|---|");
        println!("| fleet | {nodes_in_model} nodes, {gpu_count} GPUs over {} DCGM exporters | 5,000 nodes / 40,000 GPUs |", dcgm.len());
        println!(
            "| DCGM scrape round (all exporters at once, parse included) | median {:.2} s, worst {:.2} s of 3 | ≤ 1 s |",
            median(rounds.clone()),
            rounds.iter().cloned().fold(0.0, f64::max)
        );
        println!(
            "| one evaluation of every detector | median {:.1} ms, worst {:.1} ms of 20 ({signals} signals) | ≤ 20 ms |",
            median(evals.clone()),
            evals.iter().cloned().fold(0.0, f64::max)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
