//! `fleetdeck headless`'s live stream and `fleetdeck attach`, over real HTTP against a
//! simulated fleet: the first picture holds the daemon's incidents, a scenario arrives as a
//! delta, a resume gets only the deltas it missed, a restarted daemon is a new instance with a
//! new picture; and the attached cockpit in tmux shows the daemon's incident, says
//! "disconnected" when the daemon dies and resumes when it is back.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::headless::Replica;
use common::tmux::Tmux;
use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "attach-stream-token";

fn config(sim: &Sim, dir: &Path) -> std::path::PathBuf {
    let dcgm = sim.desc["dcgm"][0].as_str().expect("a DCGM exporter");
    let path = dir.join("fleetdeck.toml");
    std::fs::write(
        &path,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\n"
        ),
    )
    .expect("write the config");
    path
}

/// One stream connection: its lines, read on a thread.
struct Stream {
    lines: mpsc::Receiver<Value>,
}

impl Stream {
    fn open(base: &str, query: &str) -> Stream {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let resp = client
            .get(format!("{base}/api/v1/stream{query}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("GET /api/v1/stream");
        assert!(resp.status().is_success(), "{}", resp.status());
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(resp).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Stream { lines }
    }

    fn next(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a stream line within 30 s")
    }

    /// The next line that is not a heartbeat.
    fn next_change(&self) -> Value {
        loop {
            let v = self.next();
            if v["type"] != "heartbeat" {
                return v;
            }
        }
    }
}

fn incident_ids_of_api(base: &str) -> Vec<u64> {
    let v: Value = http()
        .get(format!("{base}/api/v1/incidents"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .expect("GET /api/v1/incidents");
    let mut ids: Vec<u64> = v["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect();
    ids.sort();
    ids
}

fn incident_ids_of_parts(parts: &serde_json::Map<String, Value>) -> Vec<u64> {
    let mut ids: Vec<u64> = parts
        .iter()
        .filter(|(k, _)| k.starts_with("incident/"))
        .filter_map(|(_, v)| v["id"].as_u64())
        .collect();
    ids.sort();
    ids
}

fn xid_storm(sim: &Sim) {
    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .expect("inject xid-storm");
    assert!(r.status().is_success(), "{}", r.status());
}

#[test]
fn the_stream_pictures_the_daemon_then_deltas_resumes_and_notices_a_restart() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "10", "--pods-per-node", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let store = dir.path().join("store");
    let daemon = Replica::start_on(
        &sim,
        &config,
        "attach-a",
        TOKEN,
        &["--mode", "approve"],
        &store,
    );

    let stream = Stream::open(&daemon.url, "");
    let hello = stream.next();
    assert_eq!(hello["type"], "hello", "{hello}");
    let instance = hello["daemon"]["instance"].as_str().unwrap().to_string();
    assert_eq!(hello["daemon"]["simulated"], true, "{hello}");
    let picture = stream.next();
    assert_eq!(picture["type"], "picture");
    let pictured_at = picture["seq"].as_u64().unwrap();

    // The scenario's signal and its incident arrive as deltas.
    xid_storm(&sim);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut saw_signal, mut saw_incident) = (false, false);
    let mut last_seq = pictured_at;
    while !(saw_signal && saw_incident) {
        assert!(
            Instant::now() < deadline,
            "no gpu.xid signal and incident in the deltas"
        );
        let d = stream.next_change();
        assert_eq!(d["type"], "delta", "{d}");
        let seq = d["seq"].as_u64().unwrap();
        assert_eq!(seq, last_seq + 1, "deltas come in sequence");
        last_seq = seq;
        let set = d["set"].as_object().unwrap();
        saw_signal |= set.keys().any(|k| k.starts_with("signal/gpu.xid"));
        saw_incident |= set.keys().any(|k| k.starts_with("incident/"));
    }

    // A fresh client's picture holds the daemon's incidents, as its API lists them.
    wait_until(
        "a new picture's incidents equal /api/v1/incidents",
        Duration::from_secs(20),
        || {
            let s = Stream::open(&daemon.url, "");
            let _hello = s.next();
            let p = s.next();
            let ids = incident_ids_of_parts(p["parts"].as_object().unwrap());
            !ids.is_empty() && ids == incident_ids_of_api(&daemon.url)
        },
    );

    // A resume within the ring gets the deltas after `since`, in order, and no picture.
    let resumed = Stream::open(
        &daemon.url,
        &format!("?since={pictured_at}&instance={instance}"),
    );
    assert_eq!(resumed.next()["type"], "hello");
    for expected in pictured_at + 1..=last_seq {
        let d = resumed.next_change();
        assert_eq!(d["type"], "delta", "{d}");
        assert_eq!(d["seq"].as_u64().unwrap(), expected);
    }

    // The daemon restarts on the same store: a new instance, and a picture, not deltas.
    drop(stream);
    drop(resumed);
    drop(daemon);
    let again = Replica::start_on(
        &sim,
        &config,
        "attach-b",
        TOKEN,
        &["--mode", "approve"],
        &store,
    );
    let s = Stream::open(
        &again.url,
        &format!("?since={last_seq}&instance={instance}"),
    );
    let hello = s.next();
    assert_ne!(hello["daemon"]["instance"].as_str().unwrap(), instance);
    assert_eq!(s.next()["type"], "picture");
}

#[test]
fn attach_in_tmux_shows_the_daemons_incident_says_disconnected_and_resumes() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "10", "--pods-per-node", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, dir.path());
    let store = dir.path().join("store");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut daemon = Replica::start_on(
        &sim,
        &config,
        "attach-a",
        TOKEN,
        &["--mode", "approve"],
        &store,
    );
    xid_storm(&sim);
    let mut ids = Vec::new();
    wait_until(
        "the daemon opens an incident",
        Duration::from_secs(60),
        || {
            ids = incident_ids_of_api(&daemon.url);
            !ids.is_empty()
        },
    );
    let label = format!("INC-{}", ids[ids.len() - 1]);

    let tmux = Tmux::sized(
        &format!(
            "{} attach {} --token-file {}",
            env!("CARGO_BIN_EXE_fleetdeck"),
            daemon.url,
            token_file.display()
        ),
        160,
        45,
    );
    tmux.wait_for("attached attach-a");
    tmux.keys(&["7"]);
    tmux.wait_for(&label);

    // The daemon's runbook waits for an approval (approve mode): `y` on the Runbooks pane
    // grants it through the daemon's API, and the daemon no longer lists it as pending.
    let pending = || -> Vec<Value> {
        http()
            .get(format!("{}/api/v1/runs", daemon.url))
            .bearer_auth(TOKEN)
            .send()
            .and_then(|r| r.json::<Value>())
            .map(|v| {
                v["pending_approvals"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    wait_until(
        "the daemon asks for an approval",
        Duration::from_secs(60),
        || !pending().is_empty(),
    );
    let approval = pending()[0]["id"].as_u64().unwrap();
    tmux.keys(&["8"]);
    tmux.wait_for("awaiting approval");
    tmux.keys(&["y"]);
    tmux.wait_for(&format!("approval {approval} granted"));
    wait_until(
        "the approval is no longer pending",
        Duration::from_secs(20),
        || pending().iter().all(|p| p["id"].as_u64() != Some(approval)),
    );

    // Killed: the screen says so within 5 s.
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5);
    loop {
        if tmux.screen().contains("disconnected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no \"disconnected\" within 5 s of the daemon's death:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Restarted on the same store and address: the cockpit reattaches to the new daemon run.
    let port = daemon.url.rsplit(':').next().unwrap().parse().unwrap();
    let _restarted = Replica::start_at(
        &sim,
        &config,
        "attach-c",
        TOKEN,
        &["--mode", "approve"],
        &store,
        port,
    );
    tmux.wait_for("attached attach-c");
    tmux.wait_for(&label);
}

/// A sim, a dry-run daemon named `name` on it (with `extra(sim)` appended to its config) and the
/// token in a file: what the attached-cockpit tests below start from.
struct DryRun {
    sim: Sim,
    dir: tempfile::TempDir,
    daemon: Replica,
    token_file: std::path::PathBuf,
}

impl DryRun {
    fn start(
        nodes: &str,
        pods_per_node: &str,
        name: &str,
        extra: impl Fn(&Sim) -> String,
    ) -> DryRun {
        let sim = Sim::start(&[
            "--clusters",
            "1",
            "--nodes",
            nodes,
            "--pods-per-node",
            pods_per_node,
        ]);
        let dir = tempfile::tempdir().unwrap();
        let config = config(&sim, dir.path());
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&extra(&sim));
        std::fs::write(&config, text).unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let daemon = Replica::start_on(
            &sim,
            &config,
            name,
            TOKEN,
            &["--mode", "dry-run"],
            &dir.path().join("store"),
        );
        DryRun {
            sim,
            dir,
            daemon,
            token_file,
        }
    }

    /// `fleetdeck attach` on the daemon in tmux, with `kubeconfig` or none (the environment's
    /// `KUBECONFIG` and `~/.kube/config` kept out), `args` after the URL.
    fn attach(&self, kubeconfig: Option<&Path>, args: &str, height: u16) -> Tmux {
        let home = self.dir.path().display();
        let kube = match kubeconfig {
            Some(k) => format!("--kubeconfig {}", k.display()),
            None => String::new(),
        };
        Tmux::sized(
            &format!(
                "env -u KUBECONFIG HOME={home} XDG_CONFIG_HOME={home} {} {kube} attach {} {args} --token-file {}",
                env!("CARGO_BIN_EXE_fleetdeck"),
                self.daemon.url,
                self.token_file.display()
            ),
            200,
            height,
        )
    }
}

/// The daemon streams no pods (150,000 rows at fleet scale): an attached cockpit with a
/// kubeconfig lists them from the clusters itself, as a local cockpit does; one without (a
/// wall screen) says why its Pods pane is empty.
#[test]
fn an_attached_cockpit_with_a_kubeconfig_lists_the_clusters_pods() {
    let run = DryRun::start("4", "5", "attach-pods", |_| String::new());
    let pod = http()
        .get(format!("{}/api/v1/pods", run.sim.kube_url(0)))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let with = run.attach(Some(&run.sim.kubeconfig), "", 50);
    let without = run.attach(None, "", 50);
    with.wait_for("attached attach-pods");
    without.wait_for("attached attach-pods");
    with.keys(&["9"]);
    without.keys(&["9"]);
    with.wait_for(&pod);
    without.wait_for("the daemon does not stream its pods");
}

/// The number a wall counter tile titled `label` shows in block digits, if it shows one.
fn wall_counter(screen: &str, label: &str) -> Option<u64> {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let title: Vec<char> = format!("┌ {label} ").chars().collect();
    let (row, col) = lines.iter().enumerate().find_map(|(r, l)| {
        l.windows(title.len())
            .position(|w| w == title.as_slice())
            .map(|c| (r, c))
    })?;
    let end = lines[row][col + 1..].iter().position(|&c| c == '┐')? + col + 1;
    let rows: Vec<String> = (row + 1..=row + 5)
        .map(|r| {
            lines
                .get(r)
                .map(|l| l[(col + 1).min(l.len())..end.min(l.len())].iter().collect())
                .unwrap_or_default()
        })
        .collect();
    let normal = |rows: &[String]| -> Vec<String> {
        let indent = rows
            .iter()
            .filter(|r| !r.trim().is_empty())
            .map(|r| r.chars().take_while(|c| *c == ' ').count())
            .min()
            .unwrap_or(0);
        rows.iter()
            .map(|r| {
                r.chars()
                    .skip(indent)
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    };
    let shown = normal(&rows);
    (0..1000).find(|&n| normal(&fleetdeck::tui::bigdigits::big_lines(n)) == shown)
}

/// The daemon's /metrics samples, by name with labels.
fn metrics(base: &str) -> Vec<(String, f64)> {
    http()
        .get(format!("{base}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric_sum(samples: &[(String, f64)], keep: impl Fn(&str) -> bool) -> f64 {
    samples
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(_, v)| v)
        .sum()
}

/// A wall screen attached with no kubeconfig counts what the daemon's /metrics counts: the
/// critical and warning problems still live (incidents not mitigated), the open incidents,
/// and the month's spend, budget and forecast.
#[test]
fn an_attached_wall_without_a_kubeconfig_counts_what_the_daemons_metrics_count() {
    let run = DryRun::start("8", "6", "attach-wall", |sim| {
        format!(
            "\n[cost]\nopencost_url = \"{}\"\nmonthly_budget = 450000.0\n",
            sim.desc["opencost"].as_str().unwrap()
        )
    });
    let (sim, daemon) = (&run.sim, &run.daemon);
    xid_storm(sim);
    wait_until(
        "the daemon counts an open incident",
        Duration::from_secs(60),
        || metric_sum(&metrics(&daemon.url), |n| n == "fleetdeck_open_incidents") >= 1.0,
    );
    let wall = run.attach(None, "--noc", 55);
    wall.wait_for("attached attach-wall");
    // Read both until they agree (the daemon moves on between two reads).
    let mut last = String::new();
    wait_until(
        "the wall's counters equal the daemon's /metrics",
        Duration::from_secs(45),
        || {
            let m = metrics(&daemon.url);
            let screen = wall.screen();
            let live = |severity: &str| {
                metric_sum(&m, |n| {
                    n.starts_with("fleetdeck_incidents{")
                        && n.contains(&format!("severity=\"{severity}\""))
                        && !n.contains("status=\"mitigated\"")
                }) as u64
            };
            let want = [
                ("CRITICAL", live("critical")),
                ("WARNING", live("warning")),
                (
                    "OPEN INCIDENTS",
                    metric_sum(&m, |n| n == "fleetdeck_open_incidents") as u64,
                ),
            ];
            let money = |name: &str| {
                m.iter()
                    .find(|(n, _)| n.starts_with(name))
                    .map(|(_, v)| fleetdeck::tui::format::money(*v, "USD"))
            };
            let spend = match (
                money("fleetdeck_cost_month_to_date{"),
                money("fleetdeck_cost_monthly_budget{"),
                money("fleetdeck_cost_month_end_forecast{"),
            ) {
                (Some(to_date), Some(budget), Some(forecast)) => vec![
                    format!("to date {to_date} of {budget}"),
                    format!("forecast {forecast}"),
                ],
                _ => vec!["(the daemon has no cost figures yet)".to_string()],
            };
            last = format!(
                "want {want:?} and {spend:?}; the wall shows {:?}\n{screen}",
                want.map(|(l, _)| wall_counter(&screen, l))
            );
            want.iter()
                .all(|(label, n)| wall_counter(&screen, label) == Some(*n))
                && spend.iter().all(|s| screen.contains(s.as_str()))
                && want[0].1 + want[1].1 >= 1
        },
    );
    eprintln!("{last}");
}

/// The daemon streams no GPU history (40,000 GPUs' readings): an attached cockpit reads the
/// open GPU's readings from `GET /api/v1/gpus/UUID/history`, and its detail chart draws them.
#[test]
fn an_attached_gpu_detail_charts_the_daemons_readings_of_that_gpu() {
    let run = DryRun::start("4", "5", "attach-gpu", |_| String::new());
    let (sim, daemon) = (&run.sim, &run.daemon);
    let get = |path: &str| {
        let r = http()
            .get(format!("{}{path}", daemon.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (code, body) = get("/api/v1/gpus/GPU-not-a-gpu/history");
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("GPU-not-a-gpu")),
        "{body}"
    );
    let uuid = {
        let text = http()
            .get(sim.desc["dcgm"][0].as_str().unwrap())
            .send()
            .unwrap()
            .text()
            .unwrap();
        let at = text.find("UUID=\"").expect("a GPU uuid in the DCGM body") + 6;
        text[at..at + text[at..].find('"').unwrap()].to_string()
    };
    wait_until(
        "the daemon keeps two readings of the GPU",
        Duration::from_secs(30),
        || {
            get(&format!("/api/v1/gpus/{uuid}/history")).1["samples"]
                .as_array()
                .is_some_and(|s| s.len() >= 2)
        },
    );
    let cockpit = run.attach(None, "", 50);
    cockpit.wait_for("attached attach-gpu");
    cockpit.keys(&["3"]);
    cockpit.wait_for(sim.desc["clusters"][0]["name"].as_str().unwrap());
    // Every GPU the daemon sees has readings: the first row's detail charts them.
    cockpit.keys(&["Enter"]);
    cockpit.wait_for("from the daemon");
}
