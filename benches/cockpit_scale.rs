//! The cockpit at fleet scale while nothing changes: `fleetdeck sim` in its own process with
//! 2 clusters × 2,500 nodes × 30 pods (150,000 pods; four in five nodes hold 8 GPUs: 32,000),
//! and the real cockpit binary in a tmux pane watching it (Kubernetes, DCGM every 10 s,
//! OpenCost). After the fleet has synced and settled, its resident memory (now and peak) and
//! CPU over a minute.
//!
//! `cargo bench --bench cockpit_scale` (env `SCALE_NODES` for the fleet's node count,
//! `SCALE_SETTLE_S` for the wait before measuring).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

/// A `/proc/<pid>/status` field in MiB (`VmRSS`, `VmHWM`).
fn mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn capture(session: &str) -> String {
    Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn main() {
    let nodes = env_u64("SCALE_NODES", 5000);
    let settle = Duration::from_secs(env_u64("SCALE_SETTLE_S", 90));
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = std::env::temp_dir().join(format!("fleetdeck-scale-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let kubeconfig = home.join("kubeconfig");
    let started = Instant::now();
    let mut sim = Command::new(bin)
        .args([
            "sim",
            "--clusters",
            "2",
            "--nodes",
            &nodes.to_string(),
            "--pods-per-node",
            "30",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fleetdeck sim");
    let mut line = String::new();
    let _ = BufReader::new(sim.stdout.take().expect("stdout")).read_line(&mut line);
    let sim_ready = started.elapsed();
    let desc: serde_json::Value = serde_json::from_str(&line).expect("the sim's JSON line");
    let mut config = String::from("[gpu]\nnvml = false\ninterval = \"10s\"\n");
    let clusters = desc["clusters"].as_array().cloned().unwrap_or_default();
    for (c, url) in clusters
        .iter()
        .zip(desc["dcgm"].as_array().cloned().unwrap_or_default())
    {
        config.push_str(&format!(
            "\n[[gpu.dcgm]]\ncluster = {}\nurl = {}\n",
            c["name"], url
        ));
    }
    config.push_str(&format!(
        "\n[cost]\nopencost_url = {}\nmonthly_budget = {}\n",
        desc["opencost"],
        nodes * 75_000
    ));
    let config_path = home.join("fleetdeck.toml");
    std::fs::write(&config_path, config).expect("write the config");
    let store = home.join("store");
    let session = format!("fleetdeck-scale-{}", std::process::id());
    let cmd = format!(
        "env RUST_LOG=error {bin} --config {} --store {} --kubeconfig {}",
        config_path.display(),
        store.display(),
        kubeconfig.display()
    );
    let _ = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &cmd])
        .status();
    std::thread::sleep(Duration::from_secs(3));
    let pid = Command::new("pgrep")
        .args(["-n", "-f", &format!("{bin} --config {}", config_path.display())])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        });
    let Some(pid) = pid else {
        println!("the cockpit did not start:\n{}", capture(&session));
        let _ = sim.kill();
        let _ = sim.wait();
        return;
    };
    std::thread::sleep(settle);
    let screen_before = capture(&session);
    let rss_settled = mib(&pid, "VmRSS");
    let c0 = cpu_seconds(&pid);
    let window = Duration::from_secs(60);
    let mut rss_max: f64 = 0.0;
    let t0 = Instant::now();
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(5));
        rss_max = rss_max.max(mib(&pid, "VmRSS").unwrap_or(0.0));
    }
    let cpu = (cpu_seconds(&pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    let hwm = mib(&pid, "VmHWM");
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&home);
    let fmt = |v: Option<f64>| v.map_or("not measured".into(), |v| format!("{v:.0} MiB"));
    println!(
        "cockpit at scale: sim ready in {:.1} s; measured after {} s of watching\n",
        sim_ready.as_secs_f64(),
        settle.as_secs()
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| fleet | 2 clusters × {} nodes × 30 pods, DCGM every 10 s | 150,000 pods / 32,000 GPUs |",
        nodes / 2
    );
    println!(
        "| cockpit RSS while nothing changes (settled / most over 60 s) | {} / {:.0} MiB | ≤ 512 MiB |",
        fmt(rss_settled),
        rss_max
    );
    println!("| cockpit peak RSS (VmHWM, sync included) | {} | — |", fmt(hwm));
    println!("| cockpit CPU over 60 s while nothing changes | {cpu:.1} % of one core | ≤ 5 % |");
    let status = screen_before
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    println!("\nstatus line when measured: {status}");
}
