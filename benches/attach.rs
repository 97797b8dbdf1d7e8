//! `fleetdeck attach`'s targets, against the real `fleetdeck headless` on the real `fleetdeck
//! sim` (default 5,000 nodes × 30 pods × 8 GPUs: 150,000 pods, 40,000 GPUs):
//! 1. the first full picture after connect (received and rebuilt into an `Evaluated`);
//! 2. change on the daemon → on the client: each delta's evaluation time (`meta.at`) to its
//!    arrival, p50/p99;
//! 3. the steady stream's bytes per second over 30 s;
//! 4. the RSS of a real `fleetdeck attach` in tmux after 20 s;
//! 5. the daemon's CPU over 30 s with no client, then with 20 attached clients.
//!
//! `cargo bench --bench attach` builds the release binary and runs at the scale;
//! `FLEETDECK_BIN=PATH FLEETDECK_BENCH_NODES=N` runs another binary at another scale (e.g.
//! `cargo test --bench attach` with the debug binary and N = 50 to see that it works).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fleetdeck::pipeline::wire::{Message, Rebuilder};

const TOKEN: &str = "bench-token";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FLEETDECK_BIN") {
        return PathBuf::from(p);
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success());
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/fleetdeck")
}

fn stream(base: &str) -> BufReader<reqwest::blocking::Response> {
    let resp = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client")
        .get(format!("{base}/api/v1/stream"))
        .bearer_auth(TOKEN)
        .send()
        .expect("GET /api/v1/stream");
    assert!(resp.status().is_success(), "{}", resp.status());
    BufReader::with_capacity(1 << 20, resp)
}

fn main() {
    let nodes: u32 = std::env::var("FLEETDECK_BENCH_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let bin = binary();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("fleetdeck.toml");
    let mut sim = Kill(
        Command::new(&bin)
            .args(["sim", "--nodes", &nodes.to_string(), "--clusters", "1"])
            .args([
                "--pods-per-node",
                "30",
                "--gpus-per-node",
                "8",
                "--config-out",
            ])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the sim"),
    );
    let mut line = String::new();
    BufReader::new(sim.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the sim's description");
    let desc: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let kubeconfig = desc["kubeconfig"].as_str().expect("kubeconfig").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let daemon = Kill(
        Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .args(["--kubeconfig", &kubeconfig, "--store"])
            .arg(dir.path().join("store"))
            .args(["--mode", "approve", "headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("FLEETDECK_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start headless"),
    );
    let pid = daemon.0.id();
    // Ready: the fleet synced (the picture is whole from here on).
    let started = Instant::now();
    loop {
        let ok =
            reqwest::blocking::get(format!("{base}/readyz")).is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "never ready");
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "daemon ready after {:.1} s ({nodes} nodes)",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));

    // 1 + 2 + 3: one client.
    let connect = Instant::now();
    let mut s = stream(&base);
    let mut rebuilder = Rebuilder::new();
    let mut text = String::new();
    let picture_bytes = loop {
        text.clear();
        s.read_line(&mut text).expect("a line");
        if let Ok(Message::Picture { parts, .. }) = serde_json::from_str(&text) {
            rebuilder.picture(parts).expect("the picture reads");
            break text.len();
        }
    };
    let snapshot = rebuilder.evaluated().snapshot;
    let first = connect.elapsed();
    println!(
        "first full picture: {:.2} s after connect ({:.1} MiB, {} nodes, {} GPUs)",
        first.as_secs_f64(),
        picture_bytes as f64 / (1 << 20) as f64,
        snapshot
            .clusters
            .iter()
            .map(|c| c.nodes.len())
            .sum::<usize>(),
        snapshot.gpus.len()
    );
    let window = Instant::now();
    let (mut bytes, mut lags) = (0usize, Vec::new());
    while window.elapsed() < Duration::from_secs(30) {
        text.clear();
        if s.read_line(&mut text).unwrap_or(0) == 0 {
            break;
        }
        bytes += text.len();
        if let Ok(Message::Delta { set, del, .. }) = serde_json::from_str(&text) {
            let at = set
                .get("meta")
                .and_then(|m| m["at"].as_str())
                .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok());
            rebuilder.delta(set, del).expect("the delta reads");
            let _ = rebuilder.evaluated();
            if let Some(at) = at {
                let lag = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
                lags.push(lag.num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    let secs = window.elapsed().as_secs_f64();
    println!(
        "evaluation → rebuilt on the client: p50 {:.0} ms, p99 {:.0} ms ({} deltas)",
        pct(&mut lags.clone(), 0.5),
        pct(&mut lags, 0.99),
        lags.len()
    );
    println!(
        "steady stream: {:.1} KB/s over {secs:.0} s",
        bytes as f64 / 1000.0 / secs
    );
    drop(s);

    // 4: a real attached cockpit.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let session = format!("fleetdeck-bench-attach-{}", std::process::id());
    let ok = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50"])
        .arg(format!(
            "{} attach {base} --token-file {}",
            bin.display(),
            token_file.display()
        ))
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        std::thread::sleep(Duration::from_secs(20));
        let out = Command::new("tmux")
            .args(["display", "-p", "-t", &session, "#{pane_pid}"])
            .output()
            .expect("tmux display");
        let pane: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        println!("attached RSS after 20 s: {:.0} MiB", rss_mib(pane));
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &session])
            .status();
    } else {
        println!("attached RSS: not measured (tmux did not start)");
    }

    // 5: the daemon's CPU, alone and with 20 clients.
    let tick = 100.0; // USER_HZ on Linux
    let measure = || {
        let t0 = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(30));
        (cpu_ticks(pid) - t0) as f64 / tick / 30.0 * 100.0
    };
    let alone = measure();
    let received = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (base, received) = (base.clone(), received.clone());
            std::thread::spawn(move || {
                let mut s = stream(&base);
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = s.get_mut().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    let with = measure();
    println!(
        "daemon CPU: {alone:.1} % of a core alone, {with:.1} % with 20 attached clients (+{:.1} %); {:.1} MB sent to them",
        with - alone,
        received.load(Ordering::Relaxed) as f64 / 1e6
    );
    drop(daemon);
    drop(sim);
    for c in clients {
        let _ = c.join();
    }
}
