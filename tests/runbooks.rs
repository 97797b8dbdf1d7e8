//! Each shipped runbook rehearsed against its scenario with the real binary:
//! `fleetdeck runbook test NAME --scenario S` starts a simulated fleet in-process, injects the
//! fault, runs the engine and reports what it did to the sim.

mod common;

use std::process::Command;

use common::{Kubectl, Sim};
use serde_json::Value;

fn rehearse(name: &str, scenario: &str, extra: &[&str]) -> (i32, Value, String) {
    rehearse_for(name, scenario, extra, "90s")
}

fn rehearse_for(name: &str, scenario: &str, extra: &[&str], timeout: &str) -> (i32, Value, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(extra)
        .args([
            "runbook",
            "test",
            name,
            "--scenario",
            scenario,
            "-o",
            "json",
            "--timeout",
            timeout,
        ])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run fleetdeck");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn actions(report: &Value) -> Vec<String> {
    report["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["actions"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

fn timeline(report: &Value) -> String {
    report["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["summary"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each run's outcome (`remediated`, `partial`, …), as the run record names it.
fn outcomes(report: &Value) -> Vec<String> {
    report["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["state"]["state"].as_str().map(str::to_string))
        .collect()
}

/// Every run of the rehearsal ended with `outcome`.
fn assert_all(report: &Value, outcome: &str) {
    let o = outcomes(report);
    assert!(
        !o.is_empty() && o.iter().all(|o| o == outcome),
        "every run {outcome}: {o:?}\n{report:#}"
    );
}

#[test]
fn gpu_xid_cordon_cordons_and_drains_the_node_of_an_xid_storm() {
    let (code, r, err) = rehearse("gpu-xid-cordon", "xid-storm", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["remediated"], true);
    // Remediated means every step was done: the drain too, on the demo fleet's training node
    // (its pods carry emptyDir /dev/shm and are ranks of a gang job).
    assert_all(&r, "remediated");
    let a = actions(&r).join("\n");
    assert!(a.contains("cordon"), "{a}");
    assert!(a.contains("drained"), "{a}");
    let t = timeline(&r);
    assert!(t.contains("XID"), "{t}");
    assert!(!t.contains("refused"), "{t}");
    assert!(t.contains("runbook gpu-xid-cordon remediated"), "{t}");
}

#[test]
fn gpu_xid_cordon_in_dry_run_changes_nothing() {
    let (code, r, err) = rehearse("gpu-xid-cordon", "xid-storm", &["--mode", "dry-run"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert!(actions(&r).is_empty(), "{r:#}");
    assert_all(&r, "planned");
    assert!(timeline(&r).contains("dry run: would"), "{}", timeline(&r));
}

/// gpu-xid-cordon as it shipped before: a drain that does not allow emptyDir data, which the
/// demo fleet's training pods carry, so kubectl's filter refuses it.
fn runbook_whose_drain_is_refused(dir: &std::path::Path) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runbooks/gpu-xid-cordon.rhai"
    ))
    .unwrap();
    let gentle = shipped.replace(
        "delete_emptydir_data: true, whole_gang: true",
        "delete_emptydir_data: false, whole_gang: true",
    );
    assert_ne!(gentle, shipped, "the shipped drain's options changed");
    std::fs::write(dir.join("gpu-xid-cordon.rhai"), gentle).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn a_refused_drain_makes_the_run_partial_and_the_rehearsal_fail() {
    let dir = tempfile::tempdir().unwrap();
    let books = runbook_whose_drain_is_refused(dir.path());
    let (code, r, err) = rehearse("gpu-xid-cordon", "xid-storm", &["--runbooks", &books]);
    assert_eq!(code, 1, "{r:#}\n{err}");
    assert_eq!(r["remediated"], false);
    // The cordon was done, the drain refused: partial, with the drain named.
    assert_eq!(
        outcomes(&r).first().map(String::as_str),
        Some("partial"),
        "{r:#}"
    );
    let steps = r["runs"][0]["state"]["detail"].to_string();
    assert!(
        steps.contains("drain node/") && steps.contains("local storage"),
        "{steps}"
    );
    let verdict = r["verdict"].as_str().unwrap_or_default();
    assert!(verdict.starts_with("partial, not remediated"), "{verdict}");
    assert!(!verdict.starts_with("remediated"), "{verdict}");
    assert!(
        timeline(&r).contains("runbook gpu-xid-cordon partial: drain"),
        "{}",
        timeline(&r)
    );
}

#[test]
fn a_dry_run_never_plans_a_step_that_would_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let books = runbook_whose_drain_is_refused(dir.path());
    let (code, r, err) = rehearse(
        "gpu-xid-cordon",
        "xid-storm",
        &["--runbooks", &books, "--mode", "dry-run"],
    );
    assert_eq!(code, 1, "{r:#}\n{err}");
    assert_eq!(
        outcomes(&r).first().map(String::as_str),
        Some("partial"),
        "{r:#}"
    );
    let t = timeline(&r);
    assert!(t.contains("would be refused"), "{t}");
    assert!(!t.contains("drain planned"), "{t}");
    assert!(t.contains("drain refused"), "{t}");
}

#[test]
fn node_notready_cordons_and_drains_after_it_held() {
    let (code, r, err) = rehearse("node-notready", "node-notready", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    assert!(actions(&r).join("\n").contains("cordon"), "{r:#}");
}

#[test]
fn spot_interruption_rebalance_drains_before_the_deadline() {
    let (code, r, err) = rehearse("spot-interruption-rebalance", "spot-interruption", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    assert!(actions(&r).join("\n").contains("drained"), "{r:#}");
    let t = timeline(&r);
    assert!(t.contains("spot"), "{t}");
}

#[test]
fn endpoint_slo_rollback_rolls_the_bad_revision_back() {
    let (code, r, err) = rehearse("endpoint-slo-rollback", "bad-rollout", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    assert!(actions(&r).join("\n").contains("roll"), "{r:#}");
}

#[test]
fn crashloop_after_rollout_rolls_back_once_not_once_per_pod() {
    let (code, r, err) = rehearse("crashloop-after-rollout", "crashloop-rollout", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    let a = actions(&r);
    // Five crash-looping pods of one Deployment are one problem: one rollback.
    assert_eq!(
        a.iter().filter(|a| a.contains("rolled back")).count(),
        1,
        "{a:?}"
    );
}

#[test]
fn idle_gpu_report_reports_without_changing_anything() {
    let (code, r, err) = rehearse("idle-gpu-report", "none", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "reported");
    assert!(actions(&r).is_empty());
    assert!(timeline(&r).contains("GPU-hour"), "{}", timeline(&r));
}

#[test]
fn a_runbook_that_never_triggers_fails_the_rehearsal() {
    let (code, r, _) = rehearse_for("endpoint-slo-rollback", "none", &[], "15s");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["remediated"], false);
}

fn fleetdeck(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run fleetdeck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_shows_the_built_in_runbooks_when_there_is_no_directory() {
    let (code, out, err) = fleetdeck(&["runbook", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the runbooks built into fleetdeck"), "{out}");
    for name in [
        "gpu-xid-cordon",
        "node-notready",
        "spot-interruption-rebalance",
        "endpoint-slo-rollback",
        "crashloop-after-rollout",
        "idle-gpu-report",
    ] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    assert!(out.contains("node.not_ready for 5m"), "{out}");
}

#[test]
fn a_directory_with_a_broken_runbook_reports_it_and_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/gpu-xid-cordon.rhai");
    std::fs::copy(shipped, dir.path().join("gpu-xid-cordon.rhai")).unwrap();
    std::fs::write(
        dir.path().join("broken.rhai"),
        "const RUNBOOK = #{\n    name: \"broken\",\n    description: \"x\",\n    trigger: #{ signal: \"gpu.xid\" },\n    cooldown: \"10m\",\n};\nfn run(signal) {\n    let = 3;\n}\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, _) = fleetdeck(&["--runbooks", d, "runbook", "list"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("gpu-xid-cordon"), "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("broken.rhai:8:"),
        "{out}"
    );
}

#[test]
fn check_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rhai");
    std::fs::write(
        &bad,
        "const RUNBOOK = #{\n    name: \"bad\",\n    description: \"x\",\n    trigger: #{ signal: \"gpu.xid\" },\n    cooldown: \"ten minutes\",\n};\nfn run(signal) {}\n",
    )
    .unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/node-notready.rhai");
    let (code, out, err) = fleetdeck(&["runbook", "check", good, bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("node-notready.rhai: ok"), "{out}");
    assert!(
        err.contains("bad.rhai:1:17:") && err.contains("ten minutes"),
        "{err}"
    );
}

#[test]
fn a_runbooks_folder_in_the_working_directory_does_not_replace_the_built_in_ones() {
    // `fleetdeck` runs in a temp home; a stray, empty `runbooks/` sits in it.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("runbooks")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(["runbook", "list"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run fleetdeck");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("the runbooks built into fleetdeck"), "{text}");
    assert!(text.contains("gpu-xid-cordon"), "{text}");
}

#[test]
fn a_named_runbook_directory_without_runbooks_is_reported() {
    let empty = tempfile::tempdir().unwrap();
    let (code, out, _) = fleetdeck(&[
        "--runbooks",
        empty.path().to_str().unwrap(),
        "runbook",
        "list",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("holds no *.rhai runbook"), "{out}");
}

#[test]
fn a_runbook_that_finds_its_fault_still_there_ends_partial() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("check.rhai"),
        r#"const RUNBOOK = #{
    name: "cordon-and-check",
    description: "cordons, then finds the fault still there",
    trigger: #{ signal: "gpu.xid", min_severity: "critical" },
    cooldown: "30m",
};

fn run(signal) {
    cordon(signal.subject.node);
    unresolved("the GPU still reports XIDs");
}
"#,
    )
    .unwrap();
    let books = dir.path().to_str().unwrap();
    let (code, r, err) = rehearse("cordon-and-check", "xid-storm", &["--runbooks", books]);
    assert_eq!(code, 1, "{r:#}\n{err}");
    assert_eq!(
        outcomes(&r).first().map(String::as_str),
        Some("partial"),
        "{r:#}"
    );
    assert!(
        r["runs"][0]["state"]["detail"]
            .to_string()
            .contains("unresolved: the GPU still reports XIDs"),
        "{r:#}"
    );
    assert!(actions(&r).join("\n").contains("cordon"), "{r:#}");
}

/// A runbook that deletes one pod and restarts one Deployment's rollout, run with
/// `fleetdeck runbook run` against `fleetdeck sim` over HTTP in `mode`; answers the exit code
/// and the run record.
fn delete_and_restart(sim: &Sim, pod: &str, mode: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("kick.rhai"),
        format!(
            r#"const RUNBOOK = #{{
    name: "kick",
    description: "deletes a stuck pod and restarts its rollout",
    trigger: #{{ signal: "k8s.crashloop" }},
    cooldown: "1m",
}};

fn run(signal) {{
    let d = delete_pod("serving", "{pod}");
    let r = restart_rollout("serving", "llama-chat");
    note(`delete ${{d.outcome}}, restart ${{r.outcome}}`);
}}
"#
        ),
    )
    .unwrap();
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\n\n[runbooks]\ndir = \"{}\"\n",
            runbooks.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["--mode", mode, "runbook", "run", "kick"])
        .args(["--target", "deployment/serving/llama-chat", "-o", "json"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .output()
        .expect("run fleetdeck");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let record: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON record ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), record)
}

/// A pod of llama-chat (a Deployment's pod in serving), by name and uid.
fn a_llama_chat_pod(k: &Kubectl) -> (String, String) {
    let pods = k.json(&["get", "pods", "-n", "serving"]);
    let pod = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("llama-chat-"))
        })
        .unwrap_or_else(|| panic!("a pod of llama-chat in serving: {pods:#}"));
    let at = |path: &str| {
        pod.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    (
        at("/metadata/name").to_string(),
        at("/metadata/uid").to_string(),
    )
}

fn restarted_at(k: &Kubectl) -> Option<String> {
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    d.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The pod, unless it is gone or terminating.
fn live_pod(k: &Kubectl, name: &str) -> Option<Value> {
    let out = k.run(&["get", "pod", "-n", "serving", name, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v.pointer("/metadata/deletionTimestamp")
        .is_none()
        .then_some(v)
}

#[test]
fn a_runbook_deletes_a_pod_and_restarts_a_rollout_through_the_guard() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "12", "--seed", "42"]);
    let k = Kubectl::new("1.33", &sim);
    let (pod, uid) = a_llama_chat_pod(&k);
    assert_eq!(restarted_at(&k), None, "the sim starts unrestarted");

    let (code, record) = delete_and_restart(&sim, &pod, "auto");
    assert_eq!(code, 0, "{record:#}");
    assert_eq!(record["state"]["state"], "remediated", "{record:#}");
    let actions = record["actions"].to_string();
    assert!(
        actions.contains(&pod) && actions.contains("llama-chat"),
        "{actions}"
    );
    // kubectl is the referee: the pod is gone or terminating, the template stamped.
    if let Some(v) = live_pod(&k, &pod) {
        assert_ne!(v["metadata"]["uid"], uid, "the pod was not deleted: {v:#}");
    }
    let stamp = restarted_at(&k).expect("kubectl.kubernetes.io/restartedAt on the template");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&stamp).is_ok(),
        "RFC 3339: {stamp}"
    );
}

#[test]
fn a_dry_run_of_delete_pod_and_restart_rollout_plans_both_and_changes_nothing() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "12", "--seed", "42"]);
    let k = Kubectl::new("1.33", &sim);
    let (pod, uid) = a_llama_chat_pod(&k);

    let (code, record) = delete_and_restart(&sim, &pod, "dry-run");
    assert_eq!(code, 0, "{record:#}");
    assert_eq!(record["state"]["state"], "planned", "{record:#}");
    let plan = record["plan"].to_string();
    assert!(
        plan.contains(&format!("pod/serving/{pod}"))
            && plan.contains("deployment/serving/llama-chat"),
        "{plan}"
    );
    assert_eq!(record["actions"], serde_json::json!([]), "{record:#}");
    let v = live_pod(&k, &pod).expect("the pod is still there");
    assert_eq!(v["metadata"]["uid"], uid);
    assert_eq!(restarted_at(&k), None, "nothing restarted");
}

#[test]
fn check_names_the_file_and_line_of_an_unknown_function() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("typo.rhai");
    std::fs::write(
        &bad,
        "const RUNBOOK = #{\n    name: \"typo\",\n    description: \"x\",\n    trigger: #{ signal: \"gpu.xid\" },\n    cooldown: \"10m\",\n};\nfn run(signal) {\n    let ns = \"serving\";\n    no_such_fn(ns);\n    delete_pods(ns, \"llama-0\");\n    restart_rollout(ns);\n}\n",
    )
    .unwrap();
    let (code, out, err) = fleetdeck(&["runbook", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("ok"), "{out}");
    let file = bad.display().to_string();
    assert!(
        err.contains(&format!("{file}:9:")) && err.contains("unknown function no_such_fn(_)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:10:")) && err.contains("did you mean delete_pod(ns, name)?"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:11:"))
            && err.contains("restart_rollout takes 2 arguments, not 1"),
        "{err}"
    );
}

#[test]
fn every_shipped_runbook_checks_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    let args: Vec<&str> = ["runbook", "check"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let (code, out, err) = fleetdeck(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(": ok (").count(), 8, "{out}");
}

#[test]
fn training_straggler_restart_cordons_the_hot_node_then_restarts_the_whole_gang() {
    let (code, r, err) = rehearse("training-straggler-restart", "training-straggler", &[]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    let a = actions(&r).join("\n");
    assert!(a.contains("cordon"), "{a}");
    assert!(a.contains("restarted"), "{a}");
    let cordon_at = a.find("cordon").unwrap_or(usize::MAX);
    let restart_at = a.find("restarted").unwrap_or(0);
    assert!(
        cordon_at < restart_at,
        "the node is cordoned before the gang restarts: {a}"
    );
    let t = timeline(&r);
    assert!(t.contains("straggle") || t.contains("rank"), "{t}");
}

#[test]
fn airflow_retry_clears_the_failing_dags_newest_failed_run() {
    // Two runs must fail first: the next attempt within 60 s, the one after a period later.
    let (code, r, err) = rehearse_for("airflow-retry", "airflow-failures", &[], "240s");
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_all(&r, "remediated");
    let a = actions(&r).join("\n");
    assert!(
        a.contains("dag/feature_build_nightly") && a.contains("build_features"),
        "{a}"
    );
    let t = timeline(&r);
    assert!(t.contains("cleared"), "{t}");
}
