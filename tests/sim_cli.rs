//! The `fleetdeck` command line as a user meets it: bad flags and configs fail with one clear
//! line, `init` guards an existing file, and the sim starts and stops cleanly.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sim;

/// What a finished run of the binary left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `fleetdeck args…` with an empty config home and no RUST_LOG, as on a fresh machine;
/// kills it if it is still running after 30 s (a refused start must not serve forever).
fn fleetdeck(args: &[&str], home: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fleetdeck");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for fleetdeck") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fleetdeck {args:?} was still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A `fleetdeck sim` that refused to start.
struct Refusal {
    /// Its one line on stderr.
    line: String,
    /// Whether a file appeared at its `--kubeconfig-out` path.
    kubeconfig_written: bool,
}

/// Runs `fleetdeck sim` with `flags` and insists it refuses to start: non-zero, nothing on
/// stdout, exactly one line on stderr.
#[track_caller]
fn sim_refuses(flags: &[&str]) -> Refusal {
    let home = tempfile::tempdir().expect("temp dir");
    let kubeconfig = home.path().join("kubeconfig");
    let mut args = vec![
        "sim",
        "--kubeconfig-out",
        kubeconfig.to_str().expect("utf-8 path"),
    ];
    args.extend(flags);
    let run = fleetdeck(&args, home.path());
    assert!(
        run.code.is_some_and(|c| c != 0),
        "sim {flags:?} exits non-zero, not {:?}",
        run.code
    );
    assert_eq!(run.stdout, "", "sim {flags:?} prints nothing on stdout");
    assert_eq!(
        run.stderr_lines().len(),
        1,
        "sim {flags:?} explains itself in one line: {:?}",
        run.stderr
    );
    Refusal {
        line: run.stderr.trim().to_string(),
        kubeconfig_written: kubeconfig.exists(),
    }
}

// ---- bad flags --------------------------------------------------------------------------

#[test]
fn sim_refuses_zero_nodes() {
    let r = sim_refuses(&["--nodes", "0"]);
    assert!(r.line.contains("--nodes 0"), "{}", r.line);
    assert!(!r.kubeconfig_written, "a refused sim writes no kubeconfig");
}

#[test]
fn sim_refuses_more_pods_per_node_than_a_kubelet_runs() {
    let r = sim_refuses(&["--pods-per-node", "100000"]);
    assert!(
        r.line.contains("--pods-per-node 100000") && r.line.contains("110"),
        "{}",
        r.line
    );
    assert!(!r.kubeconfig_written, "a refused sim writes no kubeconfig");
}

#[test]
fn sim_refuses_an_unknown_scenario_and_names_the_known_ones() {
    let r = sim_refuses(&["--scenario", "meteor"]);
    assert!(r.line.contains("meteor"), "{}", r.line);
    for known in [
        "xid-storm",
        "node-notready",
        "spot-interruption",
        "bad-rollout",
        "pdb-block",
        "api-flaky",
        "endpoint-outage",
    ] {
        assert!(r.line.contains(known), "names {known}: {}", r.line);
    }
    assert!(!r.kubeconfig_written, "a refused sim writes no kubeconfig");
}

#[test]
fn sim_refuses_to_listen_beyond_loopback() {
    let r = sim_refuses(&["--listen", "10.0.0.1:0"]);
    assert!(
        r.line.contains("10.0.0.1") && r.line.contains("loopback"),
        "{}",
        r.line
    );
    assert!(!r.kubeconfig_written, "a refused sim writes no kubeconfig");
}

#[test]
fn sim_refuses_a_port_in_use_and_names_the_address_and_the_cause_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("address").to_string();
    let r = sim_refuses(&["--nodes", "4", "--clusters", "1", "--listen", &addr]);
    assert!(r.line.contains(&addr), "names {addr}: {}", r.line);
    assert!(r.line.contains("in use"), "{}", r.line);
    assert_eq!(
        r.line.matches("os error").count(),
        1,
        "the cause once: {}",
        r.line
    );
}

#[test]
fn a_start_refused_for_a_busy_port_leaves_an_existing_kubeconfig_alone() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("address").to_string();
    let home = tempfile::tempdir().expect("temp dir");
    let kubeconfig = home.path().join("config");
    let mine = "apiVersion: v1\nkind: Config\n# the user's own clusters\n";
    std::fs::write(&kubeconfig, mine).expect("write a kubeconfig");
    let path = kubeconfig.to_str().expect("utf-8 path");
    let run = fleetdeck(
        &["sim", "--kubeconfig-out", path, "--listen", &addr],
        home.path(),
    );
    assert!(
        run.code.is_some_and(|c| c != 0),
        "the start is refused: {}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&kubeconfig).expect("read"), mine);
}

#[test]
fn sim_refuses_a_kubeconfig_path_it_cannot_write_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("utf-8 path");
    // A directory where the kubeconfig file should go.
    let run = fleetdeck(
        &[
            "sim",
            "--nodes",
            "4",
            "--clusters",
            "1",
            "--kubeconfig-out",
            path,
        ],
        dir.path(),
    );
    assert!(run.code.is_some_and(|c| c != 0), "exits non-zero");
    assert_eq!(run.stdout, "", "prints nothing on stdout");
    assert_eq!(
        run.stderr_lines().len(),
        1,
        "explains itself in one line: {:?}",
        run.stderr
    );
    assert!(run.stderr.contains(path), "names the path: {}", run.stderr);
}

// ---- lifecycle --------------------------------------------------------------------------

#[test]
fn sim_exits_0_on_sigterm_even_sent_as_soon_as_it_prints_its_line() {
    // Several times: a sim that installed its handlers only after printing would sometimes die
    // of the signal instead.
    for attempt in 0..5 {
        let sim = Sim::start(&["--nodes", "2", "--clusters", "1", "--seed", "7"]);
        assert!(sim.desc["control"].is_string(), "it started: {}", sim.desc);
        assert_eq!(sim.terminate(), Some(0), "attempt {attempt}");
    }
}

#[test]
fn sim_writes_a_kubeconfig_with_a_context_per_cluster() {
    let sim = Sim::start(&["--nodes", "6", "--clusters", "3", "--seed", "7"]);
    let kubeconfig = std::fs::read_to_string(&sim.kubeconfig).expect("the kubeconfig is written");
    assert_eq!(
        sim.desc["kubeconfig"].as_str().map(Path::new),
        Some(sim.kubeconfig.as_path())
    );
    for (i, cluster) in sim.desc["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .enumerate()
    {
        let name = cluster["name"].as_str().expect("name");
        assert!(
            kubeconfig.contains(&format!("- name: {name}\n  context:")),
            "a context for {name}:\n{kubeconfig}"
        );
        assert!(
            kubeconfig.contains(&format!("server: {}", sim.kube_url(i))),
            "the server of {name}:\n{kubeconfig}"
        );
    }
}

// ---- help, init, config -----------------------------------------------------------------

#[test]
fn help_lists_the_working_commands_and_nothing_else() {
    let home = tempfile::tempdir().expect("temp dir");
    let run = fleetdeck(&["--help"], home.path());
    assert_eq!(run.code, Some(0));
    let commands: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "init",
            "config",
            "snapshot",
            "cost",
            "demo",
            "sim",
            "incident",
            "audit",
            "store",
            "runbook",
            "attach",
            "headless",
            "completions",
            "man",
            "help"
        ],
        "{}",
        run.stdout
    );
}

#[test]
fn init_writes_a_default_config_that_loads() {
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("nested").join("fleetdeck.toml");
    let p = path.to_str().expect("utf-8 path");
    let run = fleetdeck(&["init", "--config", p], home.path());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let written = std::fs::read_to_string(&path).expect("init wrote the file");
    assert!(
        written.contains("[sim]") && written.lines().any(|l| l.starts_with('#')),
        "a commented config:\n{written}"
    );
    let check = fleetdeck(&["config", "--config", p], home.path());
    assert_eq!(
        check.code,
        Some(0),
        "the default config passes its own check: {}",
        check.stderr
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("fleetdeck.toml");
    let p = path.to_str().expect("utf-8 path");
    assert_eq!(
        fleetdeck(&["init", "--config", p], home.path()).code,
        Some(0)
    );
    let default = std::fs::read_to_string(&path).expect("written");
    std::fs::write(&path, "# my own settings\n").expect("edit the file");

    let again = fleetdeck(&["init", "--config", p], home.path());
    assert!(again.code.is_some_and(|c| c != 0), "a second init fails");
    assert!(
        again.stderr.contains("--force"),
        "and says how to overwrite: {}",
        again.stderr
    );
    assert!(
        again.stderr.contains(p),
        "naming the file: {}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "# my own settings\n",
        "the file is untouched"
    );

    let forced = fleetdeck(&["init", "--force", "--config", p], home.path());
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        default,
        "--force writes the default again"
    );
}

/// Writes `toml` to a file, runs `fleetdeck config` on it, and insists it fails with one line
/// that names the file, the line and the key.
#[track_caller]
fn config_rejects(toml: &str, line: usize, key: &str) -> String {
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("fleetdeck.toml");
    std::fs::write(&path, toml).expect("write the config");
    let p = path.to_str().expect("utf-8 path");
    let run = fleetdeck(&["config", "--config", p], home.path());
    assert!(run.code.is_some_and(|c| c != 0), "config on {toml:?} fails");
    assert_eq!(run.stderr_lines().len(), 1, "{:?}", run.stderr);
    let err = run.stderr.trim().to_string();
    assert!(
        err.contains(&format!("{p}:{line}:")),
        "names the file and line {line}: {err}"
    );
    assert!(err.contains(key), "names the key {key}: {err}");
    err
}

#[test]
fn config_with_an_unknown_key_names_file_line_and_key() {
    config_rejects("[sim]\nclusters = 2\nnodez = 4\n", 3, "sim.nodez");
}

#[test]
fn config_with_a_wrong_type_names_file_line_and_key() {
    config_rejects(
        "[log]\nlevel = \"info\"\n\n[sim]\nnodes = \"many\"\n",
        5,
        "sim.nodes",
    );
}

#[test]
fn config_with_a_bad_value_names_file_line_key_and_value() {
    let err = config_rejects(
        "[sim]\nseed = 1\npods_per_node = 100000\n",
        3,
        "sim.pods_per_node",
    );
    assert!(err.contains("100000"), "quotes the value: {err}");
    let err = config_rejects("[log]\nlevel = \"loud\"\n", 2, "log.level");
    assert!(err.contains("loud"), "quotes the value: {err}");
    let err = config_rejects(
        "[cost]\nfocus_date_format = \"%H:%M\"\n",
        2,
        "cost.focus_date_format",
    );
    assert!(err.contains("day, a month and a year"), "says why: {err}");
}

#[test]
fn sim_refuses_a_bad_config_before_serving() {
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("fleetdeck.toml");
    std::fs::write(&path, "[sim]\nscenarios = [\"meteor\"]\n").expect("write the config");
    let p = path.to_str().expect("utf-8 path");
    let line = sim_refuses(&["--config", p]).line;
    assert!(
        line.contains(&format!("{p}:2:"))
            && line.contains("sim.scenarios")
            && line.contains("meteor"),
        "{line}"
    );
}

#[test]
fn the_config_command_the_default_file_advertises_works() {
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("fleetdeck.toml");
    let p = path.to_str().expect("utf-8 path");
    assert_eq!(
        fleetdeck(&["init", "--config", p], home.path()).code,
        Some(0)
    );
    let written = std::fs::read_to_string(&path).expect("written");
    assert!(
        written.contains("`fleetdeck config`"),
        "the file names the command"
    );
    let run = fleetdeck(&["config", "--config", p], home.path());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn sim_config_out_lets_snapshot_and_cost_see_what_the_demo_sees() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("fleetdeck.toml");
    let c = config.to_str().expect("utf-8 path");
    let sim = Sim::start(&["--config-out", c, "--nodes", "8"]);
    assert_eq!(sim.desc["config"], c, "the JSON line names the config");
    let text = std::fs::read_to_string(&config).expect("the sim wrote its config");
    assert!(
        text.starts_with("# fleetdeck.toml for a simulated fleet"),
        "{text}"
    );

    let check = fleetdeck(&["config", "--config", c], home.path());
    assert_eq!(
        check.code,
        Some(0),
        "the written config loads: {}",
        check.stderr
    );

    let run = fleetdeck(
        &[
            "snapshot",
            "--config",
            c,
            "-o",
            "json",
            "--wait-synced",
            "25s",
        ],
        home.path(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap: serde_json::Value = serde_json::from_str(&run.stdout).expect("snapshot JSON");
    let clusters = snap["clusters"].as_array().expect("clusters");
    assert_eq!(
        clusters.len(),
        2,
        "both simulated clusters, from the config's kubeconfig"
    );
    let endpoints: Vec<&str> = snap["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    // The vector stores are endpoints too (`pinecone`, `qdrant`).
    assert_eq!(
        endpoints.len(),
        sim.desc["endpoints"].as_array().expect("eps").len()
            + sim.desc["vector_stores"]
                .as_array()
                .expect("vector stores")
                .len()
    );
    assert!(endpoints.contains(&"docs-rag") && endpoints.contains(&"support-kb"));
    assert_eq!(
        text.matches("[endpoints.slo]").count(),
        endpoints.len(),
        "every endpoint has its SLO: {text}"
    );
    let dcgm = snap["gpu_sources"]
        .as_array()
        .expect("gpu sources")
        .iter()
        .filter(|s| s["kind"] == "dcgm" && s["error"].is_null())
        .count();
    assert_eq!(
        dcgm, 2,
        "one DCGM exporter per cluster: {}",
        snap["gpu_sources"]
    );
    assert!(
        snap["gpus"].as_array().is_some_and(|g| !g.is_empty()),
        "GPUs from the sim's exporters"
    );

    let cost = fleetdeck(&["cost", "--config", c, "-o", "json"], home.path());
    assert_eq!(cost.code, Some(0), "{}", cost.stderr);
    let report: serde_json::Value = serde_json::from_str(&cost.stdout).expect("cost JSON");
    assert_eq!(
        report["budget"]["monthly_budget"],
        8.0 * 75_000.0,
        "{}",
        cost.stdout
    );
}

/// `sim --config-out sub/fd.toml --kubeconfig-out kc`, both relative to the directory the sim
/// runs in, makes a config that works from any other directory; `cost` with it joins the fleet
/// (GPU types, spot savings) as the cockpit does.
#[test]
fn a_sim_config_with_relative_paths_works_from_another_directory_and_cost_joins_the_fleet() {
    use std::io::BufRead;
    let home = tempfile::tempdir().expect("temp dir");
    let run_dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(run_dir.path().join("sub")).expect("sub dir");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args([
            "sim",
            "--config-out",
            "sub/fd.toml",
            "--kubeconfig-out",
            "kc",
            "--nodes",
            "8",
        ])
        .current_dir(run_dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fleetdeck sim");
    let mut line = String::new();
    std::io::BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the sim's JSON line");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sim = Stop(sim);
    let config = run_dir.path().join("sub").join("fd.toml");
    let c = config.to_str().expect("utf-8 path");
    // This test's working directory is not the sim's: the config's paths must not depend on it.
    let run = fleetdeck(
        &[
            "snapshot",
            "--config",
            c,
            "-o",
            "json",
            "--wait-synced",
            "25s",
        ],
        home.path(),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let snap: serde_json::Value = serde_json::from_str(&run.stdout).expect("snapshot JSON");
    assert_eq!(snap["clusters"].as_array().map(Vec::len), Some(2), "{line}");

    let cost = fleetdeck(&["cost", "--config", c, "-o", "json"], home.path());
    assert_eq!(cost.code, Some(0), "{}", cost.stderr);
    let report: serde_json::Value = serde_json::from_str(&cost.stdout).expect("cost JSON");
    let types: Vec<&str> = report["gpu_by_type"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["gpu_type"].as_str())
        .collect();
    assert!(!types.is_empty(), "{}", cost.stdout);
    assert!(
        !types.contains(&"unknown"),
        "GPU types come from the fleet: {types:?}"
    );
    // Which nodes are spot is read from the fleet's node labels: without the join none is.
    assert!(
        report["spot"]["opencost_spot_nodes"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "spot nodes from the fleet: {}",
        report["spot"]
    );
}

#[test]
fn a_number_where_a_duration_goes_suggests_the_quoted_form() {
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("fleetdeck.toml");
    std::fs::write(&config, "[gpu]\ninterval = 10\n").expect("write config");
    let run = fleetdeck(
        &["config", "--config", config.to_str().expect("utf-8")],
        home.path(),
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("\"10s\""), "{}", run.stderr);
    assert!(run.stderr.contains(":2:"), "names the line: {}", run.stderr);
}
