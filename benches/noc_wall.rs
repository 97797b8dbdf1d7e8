//! The NOC wall at fleet scale: a 5,000-node / 40,000-GPU snapshot (2 clusters, 5 node pools
//! each, a few hundred nodes cordoned, NotReady, faulted or noticed, 8 endpoints, a cost
//! report) drawn by the real cockpit (`App` in NOC mode) into a 200×50 `TestBackend`:
//! frame times for a new snapshot that brings new GPU readings, for a new snapshot that shares
//! the last GPU list (a cluster's change), and for a redraw of the same snapshot (the clock's
//! once-a-second frame, served from the cache); the pools' heat is `state`'s history (an hour
//! of it in the snapshot), and what `state` pays to sample it once per 10 s is timed on its
//! own; what freeing a replaced GPU list costs (the cockpit hands it to a background thread,
//! `tui::reclaim`); then the CPU the wall uses over `NOC_IDLE_S` seconds
//! on an unchanging fleet, redrawn once a second as the event loop's tick does (getrusage of
//! this process).
//!
//! `cargo bench --bench noc_wall` (env `NOC_FRAMES` for the frames timed, `NOC_IDLE_S` for the
//! idle measurement).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fleetdeck::model::endpoint::{EndpointConfig, EndpointHealth, EndpointMetrics, EndpointModel};
use fleetdeck::model::gpu::{GpuModel, PodRef};
use fleetdeck::model::gpu_history::{pool_heat, sample_heat};
use fleetdeck::model::{
    CapacityType, ClusterSnapshot, ClusterTotals, History, NodeModel, NodeReadiness, PhaseCounts,
    Snapshot, Taint,
};
use fleetdeck::tui::app::App;
use fleetdeck::tui::keymap::Keymap;
use fleetdeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster(name: &str, nodes: usize, gpus: &mut Vec<GpuModel>) -> ClusterSnapshot {
    let now = Utc::now();
    let pools = ["h100-od", "h100-spot", "a100", "l40s-infer", "cpu-system"];
    let node_models = (0..nodes)
        .map(|i| {
            let node = format!("{name}-node-{i:05}");
            let pool = pools[i * pools.len() / nodes];
            for g in 0..8 {
                let mut m = GpuModel::new(name, &node, g, &format!("GPU-{name}-{i}-{g}"), now);
                m.utilization_pct = Some(((i * 7 + g as usize * 13) % 100) as f64);
                m.xid_last = (i % 997 == 3 && g == 0).then_some(79);
                m.holder = (g % 2 == 0).then(|| PodRef {
                    namespace: "serving".into(),
                    pod: format!("llm-{i}-{g}"),
                    container: None,
                });
                gpus.push(m);
            }
            NodeModel {
                name: node,
                readiness: if i % 331 == 0 {
                    NodeReadiness::NotReady
                } else {
                    NodeReadiness::Ready
                },
                readiness_since: Some(now),
                cordoned: i % 53 == 0,
                taints: if i % 211 == 0 {
                    vec![Taint {
                        key: "aws-node-termination-handler/spot-itn".into(),
                        value: String::new(),
                        effect: "NoSchedule".into(),
                    }]
                } else {
                    vec![]
                },
                capacity_type: CapacityType::OnDemand,
                instance_type: Some("p5.48xlarge".into()),
                pool: Some(pool.into()),
                zone: Some("us-east-1a".into()),
                gpu_product: Some("NVIDIA-H100-80GB-HBM3".into()),
                gpu_capacity: 8,
                gpu_allocatable: 8,
                gpu_requested: 4,
                pods: PhaseCounts {
                    running: 28,
                    ..PhaseCounts::default()
                },
                created: Some(now),
            }
        })
        .collect();
    ClusterSnapshot {
        name: name.into(),
        server: String::new(),
        sync: vec![],
        totals: ClusterTotals::default(),
        nodes: node_models,
        namespaces: vec![],
        crash_looping: vec![],
        pending: vec![],
        deployments: vec![],
        pdbs: vec![],
        gang_jobs: vec![],
        warnings: vec![],
        normal_events: vec![],
        workloads: vec![],
        inference_services: vec![],
        spark_applications: vec![],
        pods: Default::default(),
    }
}

fn endpoint(i: usize) -> Arc<EndpointModel> {
    let config: EndpointConfig = serde_json::from_value(serde_json::json!({
        "name": format!("llm-{i}"), "url": "http://127.0.0.1:1", "protocol": "vllm",
        "slo": {"latency": {"percentile": "p99", "target_ms": 2500.0}, "availability": 0.999}
    }))
    .unwrap_or_else(|e| panic!("endpoint config: {e}"));
    let now = Utc::now();
    let mut e = EndpointModel::new(&config, now);
    e.health = EndpointHealth::Healthy;
    e.last_scraped = Some(now);
    e.metrics = Some(EndpointMetrics {
        latency_p99_ms: Some(800.0 + 300.0 * i as f64),
        ..EndpointMetrics::default()
    });
    Arc::new(e)
}

fn fleet() -> Snapshot {
    let mut gpus = Vec::new();
    let clusters = vec![
        Arc::new(cluster("prod-a", 2500, &mut gpus)),
        Arc::new(cluster("prod-b", 2500, &mut gpus)),
    ];
    // An hour of the pools' heat, sampled every 10 s as `state` keeps it in the history.
    let now = Utc::now();
    let heat = pool_heat(&clusters, &gpus);
    let mut history = History::new();
    for i in (0..360).rev() {
        let at = now - chrono::Duration::seconds(i * 10);
        sample_heat(&mut history, at, &heat, now - chrono::Duration::hours(1));
    }
    Snapshot {
        version: 1,
        taken_at: Some(now),
        clusters,
        history: Arc::new(history),
        gpus: Arc::new(gpus),
        endpoints: (0..8).map(endpoint).collect(),
        ..Snapshot::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let frames = env_u64("NOC_FRAMES", 200) as usize;
    let idle = Duration::from_secs(env_u64("NOC_IDLE_S", 20));
    let built = Instant::now();
    let base = fleet();
    println!(
        "fleet: {} nodes, {} GPUs, {} endpoints (built in {:.0} ms)",
        base.clusters.iter().map(|c| c.nodes.len()).sum::<usize>(),
        base.gpus.len(),
        base.endpoints.len(),
        ms(built.elapsed())
    );
    let mut app = App::new(Theme::default_theme(), Keymap::default(), true, true);
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap_or_else(|e| panic!("{e}"));

    // A new snapshot every frame, with its clusters rebuilt: what a fleet that changes costs.
    // Half the frames bring a new GPU list too (a GPU source's round), half share the last one
    // (a cluster's change).
    let mut new_gpus = Vec::with_capacity(frames);
    let mut new_snapshot = Vec::with_capacity(frames);
    // The last snapshot is kept here a frame longer, so that freeing the GPU list a round
    // replaced is timed on its own below, not inside the next frame.
    let mut kept: Option<Arc<Snapshot>> = None;
    let mut gpus = base.gpus.clone();
    for i in 0..frames * 2 {
        let mut s = base.clone();
        s.version = i as u64 + 2;
        s.taken_at = Some(Utc::now());
        let gpu_round = i % 2 == 0;
        if gpu_round {
            gpus = Arc::new((*base.gpus).clone());
        }
        s.gpus = gpus.clone();
        // Every frame's clusters are rebuilt, as a pod change rebuilds them.
        s.clusters = base
            .clusters
            .iter()
            .map(|c| Arc::new((**c).clone()))
            .collect();
        let s = Arc::new(s);
        let t = Instant::now();
        app.set_snapshot(s.clone());
        terminal
            .draw(|f| app.draw(f))
            .unwrap_or_else(|e| panic!("{e}"));
        let elapsed = t.elapsed();
        drop(kept.replace(s));
        if gpu_round {
            new_gpus.push(elapsed);
        } else {
            new_snapshot.push(elapsed);
        }
    }
    drop(kept);
    // What freeing a replaced GPU list costs (once per GPU round, wherever the last snapshot
    // that holds it is dropped).
    let mut frees = Vec::with_capacity(20);
    for _ in 0..20 {
        let list = Arc::new((*base.gpus).clone());
        let t = Instant::now();
        drop(list);
        frees.push(t.elapsed());
    }
    frees.sort();
    // What `state` pays for the heat once per history step (10 s) after a GPU round: every
    // GPU walked into its pool.
    let mut heat = Vec::with_capacity(20);
    for _ in 0..20 {
        let t = Instant::now();
        let h = pool_heat(&base.clusters, &base.gpus);
        heat.push(t.elapsed());
        drop(h);
    }
    heat.sort();
    // The same snapshot again: the clock's redraw, served from the aggregates' cache.
    let mut same = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        terminal
            .draw(|f| app.draw(f))
            .unwrap_or_else(|e| panic!("{e}"));
        same.push(t.elapsed());
    }
    new_gpus.sort();
    new_snapshot.sort();
    same.sort();
    println!(
        "wall frame 200x50, new snapshot with new GPU readings: p50 {:.2} ms  p99 {:.2} ms  ({frames} frames)",
        ms(percentile(&new_gpus, 0.5)),
        ms(percentile(&new_gpus, 0.99))
    );
    println!(
        "wall frame 200x50, new snapshot, same GPU readings: p50 {:.2} ms  p99 {:.2} ms  ({frames} frames)",
        ms(percentile(&new_snapshot, 0.5)),
        ms(percentile(&new_snapshot, 0.99))
    );
    println!(
        "freeing a replaced list of {} GPUs: p50 {:.2} ms  max {:.2} ms",
        base.gpus.len(),
        ms(percentile(&frees, 0.5)),
        ms(percentile(&frees, 1.0))
    );
    println!(
        "state's pool heat sample of {} GPUs (once per 10 s after a GPU round): p50 {:.2} ms  max {:.2} ms",
        base.gpus.len(),
        ms(percentile(&heat, 0.5)),
        ms(percentile(&heat, 1.0))
    );
    println!(
        "wall frame 200x50, same snapshot (clock redraw): p50 {:.2} ms  p99 {:.2} ms  ({frames} frames)",
        ms(percentile(&same, 0.5)),
        ms(percentile(&same, 0.99))
    );

    // Idle: the loop redraws once a second for the clock and ages, nothing else.
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    while wall0.elapsed() < idle {
        terminal
            .draw(|f| app.draw(f))
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(1));
    }
    let cpu = cpu_seconds() - cpu0;
    let secs = wall0.elapsed().as_secs_f64();
    println!(
        "idle wall on an unchanging fleet: {:.3} CPU s over {:.0} s = {:.2}% of a core",
        cpu,
        secs,
        100.0 * cpu / secs
    );
}
