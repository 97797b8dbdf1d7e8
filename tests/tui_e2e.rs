//! The real binary's cockpit, driven in tmux as a person would: `fleetdeck demo`, keys sent
//! with send-keys, the screen read with capture-pane. Each test gets its own config, data
//! directory and store, so tests run side by side and never touch the user's own.

mod common;

use common::tmux::Tmux;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_demo_cockpit_navigates_filters_drills_down_switches_context_and_shows_an_injected_fault() {
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = tempfile::tempdir().expect("temp dir");
    let cmd = format!(
        "env XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} {bin} demo --nodes 12 --pods-per-node 8; echo FLEETDECK-EXITED $?; sleep 30",
        home = home.path().display()
    );
    let t = Tmux::start(&cmd);
    t.wait_for("SIMULATED FLEET");
    t.wait_for("sim-a");

    // Navigate to the Nodes pane and filter it.
    // The first list may still be arriving: wait for the AWS cluster's nodes.
    t.keys(&["2"]);
    t.wait_for("Nodes");
    t.wait_for("ip-10-20-0-");
    t.keys(&["/"]);
    t.text("ip-10-20-0-14");
    t.keys(&["Enter"]);
    let filtered = t.wait_for("ip-10-20-0-14");
    assert!(
        !filtered.contains("ip-10-20-0-15"),
        "the filter hides other nodes:\n{filtered}"
    );

    // Open the node, then come back.
    t.keys(&["Enter"]);
    t.wait_for("nvidia.com/gpu");
    t.keys(&["Escape"]);

    // Switch context to the GKE cluster.
    t.keys(&["Escape", ":"]);
    t.text("ctx sim-b");
    t.keys(&["Enter"]);
    t.wait_for("ctx sim-b");
    let gke = t.wait_for("gke-sim-b");
    assert!(!gke.contains("ip-10-20-0-"), "only sim-b is shown:\n{gke}");

    // Inject a fault in the simulated fleet and watch it become a signal.
    t.keys(&[":"]);
    t.text("ctx");
    t.keys(&["Enter", ":"]);
    t.text("scenario xid-storm");
    t.keys(&["Enter"]);
    t.keys(&["6"]);
    // The node's XID and ECC signals are one group: a GPU fault.
    t.wait_for("gpu.fault");

    // Quit: the process ends and the shell prints its exit status.
    t.keys(&["q"]);
    let done = t.wait_for("FLEETDECK-EXITED");
    assert!(done.contains("FLEETDECK-EXITED 0"), "{done}");
    assert!(t.alive());
}

/// The `INC-n` label on the first line of `screen` that mentions `what`.
fn incident_on_line_with(screen: &str, what: &str) -> Option<String> {
    let line = screen
        .lines()
        .find(|l| l.contains(what) && l.contains("INC-"))?;
    let at = line.find("INC-")?;
    let digits: String = line[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("INC-{digits}"))
}

#[test]
fn an_injected_fault_opens_an_incident_that_is_noted_acknowledged_resolved_and_exported() {
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = tempfile::tempdir().expect("temp dir");
    let store = home.path().join("store");
    // Started in the temp dir, so `e` writes its postmortem draft there.
    let cmd = format!(
        "cd {home} && env XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} USER=e2e-oncall {bin} --store {store} demo --nodes 12 --pods-per-node 8; echo FLEETDECK-EXITED $?; sleep 30",
        home = home.path().display(),
        store = store.display(),
    );
    let t = Tmux::start(&cmd);
    t.wait_for("SIMULATED FLEET");
    t.wait_for("sim-a");

    // The fault's signals open an incident, listed in the Incidents pane.
    t.keys(&[":"]);
    t.text("scenario xid-storm");
    t.keys(&["Enter", "7"]);
    // XID and ECC signals of one node are one GPU fault.
    let list = t.wait_for("gpu.fault");
    let label = incident_on_line_with(&list, "gpu.fault")
        .unwrap_or_else(|| panic!("no incident row for gpu.fault:\n{list}"));

    // Filter to it and open it: milestones and the timeline with its signals.
    t.keys(&["/"]);
    t.text("gpu.fault");
    t.keys(&["Enter", "Enter"]);
    t.wait_for(&format!("┌ {label} CRITICAL open"));
    let detail = t.wait_for("gpu.xid: XID");
    assert!(detail.contains("milestones"), "{detail}");

    // A note, an acknowledgement and a confirmed resolve, each said on the status line.
    t.keys(&["n"]);
    t.text("replacing the GPU");
    t.keys(&["Enter"]);
    t.wait_for(&format!("note added to {label}"));
    let timeline = t.wait_for("user:e2e-oncall");
    assert!(timeline.contains("replacing the GPU"), "{timeline}");
    t.keys(&["a"]);
    t.wait_for(&format!("{label} acknowledged"));
    t.keys(&["R"]);
    t.wait_for("it closes the incident");
    t.keys(&["y"]);
    t.wait_for(&format!("{label} resolved"));
    t.wait_for(&format!("┌ {label} CRITICAL resolved"));

    // The postmortem draft lands in the directory the cockpit runs in.
    t.keys(&["e"]);
    t.wait_for(&format!("written to ./{label}-postmortem.md"));
    let draft = std::fs::read_to_string(home.path().join(format!("{label}-postmortem.md")))
        .expect("the postmortem draft");
    assert!(draft.contains("replacing the GPU"), "{draft}");

    t.keys(&["q"]);
    let done = t.wait_for("FLEETDECK-EXITED");
    assert!(done.contains("FLEETDECK-EXITED 0"), "{done}");

    // The store outlives the cockpit: the CLI exports the same incident, by label or number.
    let number = label.trim_start_matches("INC-").to_string();
    for id in [label.as_str(), number.as_str()] {
        let out = Command::new(bin)
            .args(["--store"])
            .arg(&store)
            .args(["incident", "export", id, "--format", "md"])
            .env("XDG_CONFIG_HOME", home.path())
            .env("XDG_DATA_HOME", home.path())
            .output()
            .expect("fleetdeck incident export");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "incident export {id} failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        for want in ["replacing the GPU", "resolved", "gpu.xid", &label] {
            assert!(
                text.contains(want),
                "{want} missing from the export:\n{text}"
            );
        }
    }
}

/// The node of the first `cordon node/NAME` on `screen`.
fn cordoned_node_on(screen: &str) -> Option<String> {
    let at = screen.find("cordon node/")? + "cordon node/".len();
    let name: String = screen[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The kubeconfig `fleetdeck demo` wrote under `tmp` (`$TMPDIR/fleetdeck-demo-<pid>/`).
fn demo_kubeconfig(tmp: &std::path::Path) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(tmp)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("kubeconfig"))
            .find(|p| {
                p.exists()
                    && p.parent()
                        .and_then(|d| d.file_name())
                        .is_some_and(|n| n.to_string_lossy().starts_with("fleetdeck-demo-"))
            });
        if let Some(p) = found {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no fleetdeck-demo-*/kubeconfig under {}",
            tmp.display()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_xid_storm_runbook_plan_is_approved_in_the_cockpit_and_cordons_the_node() {
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = tempfile::tempdir().expect("temp dir");
    let store = home.path().join("store");
    // The demo writes its kubeconfig under $TMPDIR: a directory of this test's own.
    let tmp = home.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let cmd = format!(
        "cd {home} && env XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} TMPDIR={tmp} USER=e2e-oncall {bin} --store {store} --mode approve demo --nodes 12 --pods-per-node 8; echo FLEETDECK-EXITED $?; sleep 30",
        home = home.path().display(),
        tmp = tmp.display(),
        store = store.display(),
    );
    let t = Tmux::start(&cmd);
    t.wait_for("SIMULATED FLEET");
    t.wait_for("sim-a");

    // The storm's critical XIDs start gpu-xid-cordon, whose plan waits for a person.
    t.keys(&[":"]);
    t.text("scenario xid-storm");
    t.keys(&["Enter", "8"]);
    t.wait_for("mode approve");
    let pending = t.wait_for("▶ approval 1 · gpu-xid-cordon on sim-a");
    let node = cordoned_node_on(&pending)
        .unwrap_or_else(|| panic!("the plan names no cordon:\n{pending}"));
    let pending = t.wait_for(&format!("drain of node {node}"));
    assert!(pending.contains("blast radius:"), "{pending}");
    assert!(
        pending.contains("approvals pending") || pending.contains("approval pending"),
        "{pending}"
    );

    // Approve: the run re-checks its signal, cordons and drains the node, and ends.
    t.keys(&["y"]);
    t.wait_for("approval 1 granted: gpu-xid-cordon goes ahead on sim-a");
    let done = t.wait_for(&format!("remediated · node {node} cordoned"));
    assert!(done.contains("gpu-xid-cordon"), "{done}");

    // The simulated API server says so too, to kubectl.
    let kubeconfig = demo_kubeconfig(&tmp);
    let cache = tempfile::tempdir().expect("kubectl cache");
    let out = Command::new(common::kubectl_path("1.33"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["--context", "sim-a", "get", "node", &node])
        .args(["-o", "jsonpath={.spec.unschedulable}"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl get node {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "true",
        "node {node} is cordoned"
    );

    t.keys(&["q"]);
    let exited = t.wait_for("FLEETDECK-EXITED");
    assert!(exited.contains("FLEETDECK-EXITED 0"), "{exited}");

    // The incident the signals opened tells the whole story, the person's verdict included.
    let list = Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["incident", "list", "-o", "json"])
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .output()
        .expect("fleetdeck incident list");
    let incidents: serde_json::Value =
        serde_json::from_slice(&list.stdout).expect("incident list as JSON");
    let id = incidents
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| {
            i["group"]
                .as_str()
                .is_some_and(|g| g.starts_with("gpu.fault:"))
        })
        .and_then(|i| i["id"].as_u64())
        .unwrap_or_else(|| panic!("no gpu.xid incident: {incidents}"));
    let out = Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["incident", "export", &format!("INC-{id}"), "--format", "md"])
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .output()
        .expect("fleetdeck incident export");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "gpu.xid".to_string(),
        "approval 1 requested".to_string(),
        "approval 1 granted by e2e-oncall".to_string(),
        format!("node {node} cordoned"),
        format!("on {node}"),
        "Reset or replace the GPU before uncordoning".to_string(),
    ] {
        assert!(
            text.contains(&want),
            "{want:?} missing from the export:\n{text}"
        );
    }
}

#[test]
fn l_on_the_crash_looping_workers_signal_streams_its_logs_and_p_shows_the_stack_trace() {
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = tempfile::tempdir().expect("temp dir");
    // The crash loop fires at once rather than after its usual 2 minutes.
    let config = home.path().join("fleetdeck.toml");
    std::fs::write(&config, "[signals.for]\npod_crash_loop = \"0s\"\n").expect("config");
    let cmd = format!(
        "cd {home} && env XDG_CONFIG_HOME={home} XDG_DATA_HOME={home} {bin} --config {config} demo --clusters 1 --nodes 8 --pods-per-node 8; echo FLEETDECK-EXITED $?; sleep 30",
        home = home.path().display(),
        config = config.display()
    );
    let t = Tmux::start(&cmd);
    t.wait_for("SIMULATED FLEET");
    t.keys(&["6"]);
    t.wait_for("tokenizer-worker");
    t.keys(&["/"]);
    t.text("tokenizer-worker");
    t.keys(&["Enter"]);
    t.keys(&["l"]);
    t.wait_for("logs batch/tokenizer-worker-");
    t.wait_for("tokenizer: starting worker version 2.4.0");
    t.keys(&["p"]);
    t.wait_for("previous run");
    let trace = t.wait_for("MemoryError: Unable to allocate");
    assert!(
        trace.contains("Traceback (most recent call last):"),
        "{trace}"
    );

    // s saves what is shown into the current directory and says where.
    t.keys(&["s"]);
    let saved = t.wait_for("saved ");
    let file = std::fs::read_dir(home.path())
        .expect("the home dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("batch_tokenizer-worker-") && n.ends_with(".log"))
        .unwrap_or_else(|| panic!("no saved log file:\n{saved}"));
    assert!(file.contains("_tokenizer_previous_"), "{file}");

    // Esc closes the view and the Signals pane is back.
    t.keys(&["Escape"]);
    let back = t.wait_for("Signals (");
    assert!(!back.contains("logs batch/"), "{back}");
    t.keys(&["q"]);
    let done = t.wait_for("FLEETDECK-EXITED");
    assert!(done.contains("FLEETDECK-EXITED 0"), "{done}");
}
