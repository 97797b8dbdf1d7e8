//! One fleet, one picture: `fleetdeck headless` and the cockpit (the real binary in tmux),
//! pointed at the same simulated fleet with OpenCost and a monthly budget it overruns, show the
//! same signal kinds and counts, the budget forecast included; and a cockpit opened on the
//! store headless wrote changes none of headless's incidents.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{Sim, fixture, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "one-picture-token";

/// The fleet as every face is configured to see it: the clusters (from the kubeconfig),
/// OpenCost with a budget far below the simulated spend, no GPU or endpoint sources (their
/// readings move from one second to the next, the rest of the fleet does not). The crash loop
/// fires at once: the test compares the faces, not the detectors' patience.
fn config(sim: &Sim, dir: &Path) -> std::path::PathBuf {
    let opencost = sim.desc["opencost"].as_str().expect("opencost url");
    let path = dir.join("fleetdeck.toml");
    std::fs::write(
        &path,
        format!(
            "[gpu]\nnvml = false\n\n[cost]\nopencost_url = \"{opencost}\"\nmonthly_budget = 1000.0\n\
             interval = \"1m\"\n\n[runbooks]\nmode = \"dry-run\"\n\n\
             [signals.for]\npod_crash_loop = \"0s\"\n"
        ),
    )
    .expect("write the config");
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Headless {
    child: Child,
    base: String,
}

impl Headless {
    fn start(sim: &Sim, config: &Path, store: &Path) -> Headless {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("--config")
            .arg(config)
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .arg("--store")
            .arg(store)
            .args(["headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("FLEETDECK_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fleetdeck headless");
        Headless {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.base))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// `fleetdeck_signals{kind=…,severity=…,class=…}` as kind → count.
    fn signal_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for line in self.metrics().lines() {
            let Some(rest) = line.strip_prefix("fleetdeck_signals{kind=\"") else {
                continue;
            };
            let (Some((kind, _)), Some((_, n))) = (rest.split_once('"'), rest.rsplit_once("} "))
            else {
                continue;
            };
            *counts.entry(kind.to_string()).or_default() += n.trim().parse::<u64>().unwrap_or(0);
        }
        counts
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kind → count from the Signals pane's rows (severity, kind, subject, …).
fn screen_counts(screen: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in screen.lines() {
        let row = line.trim_start_matches(['│', ' ']);
        let mut words = row.split_whitespace();
        let (Some(severity), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        if matches!(severity, "CRITICAL" | "WARNING" | "INFO" | "FINDING") && kind.contains('.') {
            *counts.entry(kind.to_string()).or_default() += 1;
        }
    }
    counts
}

/// The screen's kinds, each cut one taken back to the full kind it starts.
fn widen(counts: BTreeMap<String, u64>, full: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (kind, n) in counts {
        let kind = full
            .keys()
            .find(|k| k.starts_with(&kind))
            .cloned()
            .unwrap_or(kind);
        *out.entry(kind).or_default() += n;
    }
    out
}

/// The store's incidents as `fleetdeck incident list -o json` prints them.
fn incidents(config: &Path, store: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(config)
        .arg("--store")
        .arg(store)
        .args(["incident", "list", "-o", "json"])
        .output()
        .expect("incident list");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("incident list prints JSON")
}

/// What a face could change of an incident: its status, what still fires, its size.
fn summary(list: &[Value]) -> Vec<(Value, Value, Value, Value)> {
    list.iter()
        .map(|i| {
            (
                i["id"].clone(),
                i["status"].clone(),
                i["active"].clone(),
                i["signals"].clone(),
            )
        })
        .collect()
}

#[test]
fn headless_and_the_cockpit_see_the_same_signals_and_the_cockpit_leaves_headless_incidents_alone() {
    let sim = Sim::start(&["--nodes", "12", "--pods-per-node", "8"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(&sim, dir.path());
    let store = dir.path().join("store");

    // Headless: the budget forecast and the sim's crash-looping worker fire; an alert from
    // Alertmanager joins them.
    let headless = Headless::start(&sim, &config, &store);
    let mut from_headless = BTreeMap::new();
    wait_until(
        "headless reports the budget forecast on /metrics",
        Duration::from_secs(120),
        || {
            from_headless = headless.signal_counts();
            from_headless.contains_key("budget.overrun_forecast")
                && from_headless.contains_key("pod.crash_loop")
        },
    );
    let metrics = headless.metrics();
    for family in [
        "fleetdeck_cost_month_to_date",
        "fleetdeck_cost_month_end_forecast",
        "fleetdeck_cost_idle_gpu",
        "fleetdeck_cost_source_ok 1",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    let body = std::fs::read_to_string(fixture("alertmanager-webhook.json")).expect("fixture");
    let r = http()
        .post(format!("{}/api/v1/alerts", headless.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("post the alert");
    assert!(r.status().is_success(), "{r:?}");
    wait_until("the alert is an incident", Duration::from_secs(30), || {
        incidents_while_running(&headless)
            .iter()
            .any(|i| i["group"].as_str().is_some_and(|g| g.starts_with("alert.")))
    });
    // The alert is not part of the fleet's own picture: compare without it.
    let fleet_kinds: BTreeMap<String, u64> = headless
        .signal_counts()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("alert."))
        .collect();
    headless.stop();
    let before = incidents(&config, &store);
    assert!(
        before
            .iter()
            .any(|i| i["group"].as_str().is_some_and(|g| g.starts_with("alert."))),
        "{before:#?}"
    );

    // The cockpit on the same fleet and the same store.
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let cmd = format!(
        "env XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} {bin} --config {config} --kubeconfig {kube} --store {store}; sleep 30",
        home = dir.path().display(),
        config = config.display(),
        kube = sim.kubeconfig.display(),
        store = store.display(),
    );
    let t = Tmux::sized(&cmd, 200, 50);
    t.wait_for("sim-a");
    t.keys(&["6"]);
    // The Signals pane's KIND column cuts long kinds (`budget.overrun_forec`).
    t.wait_for("budget.overrun_fore");
    let deadline = Instant::now() + Duration::from_secs(60);
    let from_cockpit = loop {
        let counts = widen(screen_counts(&t.screen()), &fleet_kinds);
        if counts == fleet_kinds || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        from_cockpit,
        fleet_kinds,
        "the cockpit's signals differ from headless's:\n{}",
        t.screen()
    );
    // Let the cockpit evaluate (and record, if it were to) for a while, then quit.
    std::thread::sleep(Duration::from_secs(5));
    t.keys(&["q"]);
    wait_until("the cockpit quits", Duration::from_secs(20), || {
        !std::process::Command::new("pgrep")
            .args(["-f", &format!("--store {}", store.display())])
            .status()
            .is_ok_and(|s| s.success())
    });
    let after = incidents(&config, &store);
    assert_eq!(
        summary(&before),
        summary(&after),
        "the cockpit changed headless's incidents"
    );
}

/// The incident list read through the daemon's API (the store is held by the daemon).
fn incidents_while_running(h: &Headless) -> Vec<Value> {
    http()
        .get(format!("{}/api/v1/incidents", h.base))
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
