//! Guardrails on what a runbook asks for, rehearsed with the real binary
//! (`fleetdeck runbook test NAME --scenario xid-storm`): a run that scales every Deployment to
//! zero is stopped by the replica budget and leaves the Deployments that serve endpoints alone,
//! and a rollback to revision -1 stops the script before anything is asked of the cluster.

use std::process::Command;

use serde_json::Value;

const HEADER: &str = r#"const RUNBOOK = #{
    name: "NAME",
    description: "guardrail rehearsal",
    trigger: #{ signal: "gpu.xid" },
    cooldown: "1m",
};
"#;

/// Rehearses the runbook `body` (named `name`) in auto mode on the xid-storm scenario.
fn rehearse(name: &str, body: &str) -> (i32, Value, String) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("runbooks");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.rhai")),
        format!("{}{body}", HEADER.replace("NAME", name)),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--runbooks")
        .arg(&dir)
        .args(["--mode", "auto", "runbook", "test", name])
        .args(["--scenario", "xid-storm", "-o", "json", "--timeout", "60s"])
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

#[test]
fn one_run_scaling_every_deployment_to_zero_is_stopped_by_the_replica_budget() {
    let (_, r, err) = rehearse(
        "scale-all-to-zero",
        r#"
fn run(signal) {
    let answers = [];
    for d in deployments() {
        let a = scale(d.namespace, d.name, 0);
        answers.push(d.name + ": " + a.outcome);
    }
    note("scaled: " + answers);
}
"#,
    );
    let t = timeline(&r);
    let scaled: Vec<String> = actions(&r)
        .into_iter()
        .filter(|a| a.contains("scaled from"))
        .collect();
    assert!(!scaled.is_empty(), "nothing was scaled:\n{t}\n{err}");
    // The default budget is 10 replicas a run: far from every Deployment of the fleet.
    let removed: u64 = scaled
        .iter()
        .filter_map(|a| {
            let from = a.split("scaled from ").nth(1)?.split(' ').next()?;
            from.parse::<u64>().ok()
        })
        .sum();
    assert!(removed <= 10, "{removed} replicas removed: {scaled:?}");
    assert!(
        t.contains("replica budget of this run reached"),
        "no budget refusal:\n{t}"
    );
    assert!(
        t.contains("automation does not scale it to zero"),
        "a serving Deployment was not protected:\n{t}"
    );
    assert!(
        !scaled.iter().any(|a| a.contains("llama-chat")),
        "{scaled:?}"
    );
}

#[test]
fn a_rollback_to_revision_minus_one_is_refused_before_any_request() {
    let (_, r, err) = rehearse(
        "rollback-minus-one",
        r#"
fn run(signal) {
    rollback("serving", "llama-chat", -1);
}
"#,
    );
    assert!(actions(&r).is_empty(), "{r:#}");
    let runs = r["runs"].to_string();
    assert!(
        runs.contains("-1 is negative") && runs.contains("failed"),
        "{runs}\n{err}"
    );
    assert!(!timeline(&r).contains("rolled back"), "{}", timeline(&r));
}
