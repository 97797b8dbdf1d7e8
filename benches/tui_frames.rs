//! Frame times of the Nodes and GPUs panes at 5,000 nodes / 40,000 GPUs (rendered into a
//! 200×50 TestBackend), and, with the real binary in tmux, time from `fleetdeck demo` to the
//! first full frame and idle CPU with an unchanging fleet.
//!
//! `cargo bench --bench tui_frames`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fleetdeck::model::gpu::{GpuModel, PodRef};
use fleetdeck::model::{
    CapacityType, ClusterSnapshot, ClusterTotals, NodeModel, NodeReadiness, PhaseCounts, Snapshot,
};
use fleetdeck::tui::gpus::GpusPane;
use fleetdeck::tui::keymap::Action;
use fleetdeck::tui::nodes::NodesPane;
use fleetdeck::tui::pane::ViewCtx;
use fleetdeck::tui::pods::PodsPane;
use fleetdeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn fleet(nodes: usize, gpus_per_node: usize) -> Snapshot {
    let now = Utc::now();
    let mut node_models = Vec::new();
    let mut gpus = Vec::new();
    for i in 0..nodes {
        let name = format!(
            "ip-10-{}-{}-{}.ec2.internal",
            i / 60000,
            (i / 240) % 250,
            10 + i % 240
        );
        node_models.push(NodeModel {
            name: name.clone(),
            readiness: if i % 97 == 0 {
                NodeReadiness::NotReady
            } else {
                NodeReadiness::Ready
            },
            readiness_since: Some(now),
            cordoned: i % 50 == 0,
            taints: vec![],
            capacity_type: if i % 3 == 0 {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
            instance_type: Some("p5.48xlarge".into()),
            pool: Some("gpu-h100".into()),
            zone: Some("us-east-1a".into()),
            gpu_product: Some("NVIDIA-H100-80GB-HBM3".into()),
            gpu_capacity: gpus_per_node as u32,
            gpu_allocatable: gpus_per_node as u32,
            gpu_requested: (i % 9) as u32,
            pods: PhaseCounts {
                running: 28,
                pending: 1,
                ..PhaseCounts::default()
            },
            created: Some(now - chrono::Duration::days(20)),
        });
        for g in 0..gpus_per_node {
            let mut m = GpuModel::new("sim-a", &name, g as u32, &format!("GPU-{i:08}-{g}"), now);
            m.utilization_pct = Some(((i * 7 + g * 13) % 100) as f64);
            m.memory_used_mib = Some(40_000);
            m.memory_total_mib = Some(81_559);
            m.temperature_c = Some(61.0);
            m.power_w = Some(420.0);
            m.holder = (g % 2 == 0).then(|| PodRef {
                namespace: "serving".into(),
                pod: format!("llm-{i}-{g}"),
                container: None,
            });
            gpus.push(m);
        }
    }
    let cluster = ClusterSnapshot {
        name: "sim-a".into(),
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
    };
    Snapshot {
        clusters: vec![Arc::new(cluster)],
        gpus: Arc::new(gpus),
        ..Snapshot::default()
    }
}

/// `per_cluster` pods in each of two clusters, as the kube source keeps them: interned
/// namespaces, nodes, owners and label sets; one container each.
fn with_pods(mut snap: Snapshot, per_cluster: usize) -> Snapshot {
    use fleetdeck::model::update::{ContainerRecord, Phase, PodRecord};
    let now = Utc::now();
    let namespaces: Vec<Arc<str>> = ["serving", "training", "batch", "platform", "research"]
        .into_iter()
        .map(Arc::from)
        .collect();
    let container: Arc<str> = Arc::from("main");
    let mut clusters = Vec::new();
    for c in 0..2 {
        let mut cluster = snap.clusters[0].as_ref().clone();
        cluster.name = format!("sim-{}", (b'a' + c as u8) as char);
        let nodes: Vec<Arc<str>> = cluster
            .nodes
            .iter()
            .map(|n| Arc::from(n.name.as_str()))
            .collect();
        let labels: Vec<fleetdeck::model::update::Labels> = (0..50)
            .map(|i| {
                Arc::from(vec![(
                    Arc::from("app"),
                    Arc::from(format!("app-{i}").as_str()),
                )])
            })
            .collect();
        let pods: Vec<Arc<PodRecord>> = (0..per_cluster)
            .map(|i| {
                let crash = i % 997 == 0;
                Arc::new(PodRecord {
                    namespace: namespaces[i % namespaces.len()].clone(),
                    name: format!("app-{}-7d9f8c6b5-{i:05}", i % 50).into(),
                    node: Some(nodes[i % nodes.len()].clone()),
                    phase: Phase::Running,
                    ready: !crash,
                    restarts: if crash { 12 } else { 0 },
                    waiting: crash.then(|| "CrashLoopBackOff".into()),
                    gpus: (i % 4 == 0) as u32,
                    created: Some(now - chrono::Duration::minutes((i % 5000) as i64)),
                    containers: vec![ContainerRecord {
                        name: container.clone(),
                        ready: !crash,
                        restarts: if crash { 12 } else { 0 },
                        state: None,
                        last_termination: None,
                    }]
                    .into(),
                    labels: labels[i % labels.len()].clone(),
                    ..PodRecord::default()
                })
            })
            .collect();
        cluster.pods = Arc::new(pods);
        clusters.push(Arc::new(cluster));
    }
    snap.clusters = clusters;
    snap
}

fn p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let snap = fleet(5000, 8);
    let theme = Theme::default_theme();
    let ctx = ViewCtx {
        snapshot: &snap,
        theme: &theme,
        now: Utc::now(),
        cluster: None,
        namespace: None,
        cost: None,
    };
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
    let mut nodes = NodesPane::default();
    let mut gpus = GpusPane::default();
    let mut node_times = Vec::new();
    let mut gpu_times = Vec::new();
    for i in 0..200 {
        // Scroll as a user would, so frames differ.
        nodes.handle(
            if i % 2 == 0 {
                Action::Down
            } else {
                Action::PageDown
            },
            &ctx,
        );
        gpus.handle(
            if i % 2 == 0 {
                Action::Down
            } else {
                Action::PageDown
            },
            &ctx,
        );
        let t = Instant::now();
        terminal
            .draw(|f| nodes.draw(f, f.area(), &ctx))
            .expect("draw");
        node_times.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        terminal
            .draw(|f| gpus.draw(f, f.area(), &ctx))
            .expect("draw");
        gpu_times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The Pods pane over 150,000 pods (2 clusters × 75,000), scrolling.
    let pod_snap = with_pods(fleet(2500, 8), 75_000);
    let pod_ctx = ViewCtx {
        snapshot: &pod_snap,
        ..ctx
    };
    let mut pods = PodsPane::default();
    let mut pod_times = Vec::new();
    for i in 0..200 {
        pods.handle(
            if i % 2 == 0 {
                Action::Down
            } else {
                Action::PageDown
            },
            &pod_ctx,
        );
        let t = Instant::now();
        terminal
            .draw(|f| pods.draw(f, f.area(), &pod_ctx))
            .expect("draw");
        pod_times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99_pods) = p99(pod_times);
    let (n50, n99) = p99(node_times);
    let (g50, g99) = p99(gpu_times);

    // The real binary: `fleetdeck demo` to its first full frame.
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = std::env::temp_dir().join(format!("fleetdeck-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let first_frame = time_to_text(
        &format!(
            "env XDG_CONFIG_HOME={} {bin} demo --nodes 40",
            home.display()
        ),
        "sim-b",
    );
    // The cockpit alone on a steady fleet served by a separate sim process: its idle CPU.
    let kubeconfig = home.join("kubeconfig");
    let mut sim = Command::new(bin)
        .args(["sim", "--nodes", "40", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sim");
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sim.stdout.take().expect("stdout")),
        &mut line,
    );
    let session = format!("fleetdeck-bench-idle-{}", std::process::id());
    let cmd = format!(
        "env XDG_CONFIG_HOME={} {bin} --kubeconfig {}",
        home.display(),
        kubeconfig.display()
    );
    let _ = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "200",
            "-y",
            "50",
            &cmd,
        ])
        .status();
    std::thread::sleep(Duration::from_secs(8));
    let pid = Command::new("pgrep")
        .args(["-n", "-f", &format!("{bin} --kubeconfig")])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        });
    let idle = pid.as_deref().map(|p| {
        let c0 = cpu_seconds(p);
        std::thread::sleep(Duration::from_secs(20));
        (cpu_seconds(p) - c0) / 20.0 * 100.0
    });
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&home);

    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| Nodes pane frame, 5,000 nodes (200×50) | p50 {n50:.2} ms, p99 {n99:.2} ms | p99 ≤ 8 ms |"
    );
    println!(
        "| GPUs pane frame, 40,000 GPUs (200×50) | p50 {g50:.2} ms, p99 {g99:.2} ms | p99 ≤ 8 ms |"
    );
    println!(
        "| Pods pane frame, 150,000 pods (200×50) | p50 {p50:.2} ms, p99 {p99_pods:.2} ms | p99 ≤ 8 ms |"
    );
    println!(
        "| `fleetdeck demo` to first full frame | {} | — |",
        first_frame.map_or("not seen".into(), |s| format!("{s:.1} s"))
    );
    println!(
        "| cockpit CPU on an unchanging fleet (sim in its own process), 20 s | {} | ≤ 1 % |",
        idle.map_or("not measured".into(), |c| format!("{c:.1} % of one core"))
    );
}

/// Seconds from starting `cmd` in a tmux pane to `text` on its screen.
fn time_to_text(cmd: &str, text: &str) -> Option<f64> {
    let session = format!("fleetdeck-bench-first-{}", std::process::id());
    let start = Instant::now();
    let _ = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "200",
            "-y",
            "50",
            cmd,
        ])
        .status();
    let mut seen = None;
    while start.elapsed() < Duration::from_secs(60) {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(text)) {
            seen = Some(start.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    seen
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
