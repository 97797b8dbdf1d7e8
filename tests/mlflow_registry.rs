//! The model registry against a real MLflow tracking server (PyPI `mlflow`, which `.ci/run`
//! installs into a virtualenv and names with FLEETDECK_MLFLOW): an endpoint whose serving
//! Deployment is annotated with its registered model shows the serving alias's version in
//! `snapshot`, and `rollback_model(endpoint)` in a runbook moves the alias back through
//! MLflow's REST API, tags the version it left, records the move, and repins the Deployment
//! that names the model's URI — checked with MLflow's own API and kubectl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Kubectl, Sim, http, wait_until};
use serde_json::{Value, json};

/// The `mlflow` executable: FLEETDECK_MLFLOW, the virtualenv `.ci/run` makes, or PATH.
fn mlflow_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLEETDECK_MLFLOW") {
        return PathBuf::from(p);
    }
    let venv = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/fleetdeck/mlflow-venv/bin/mlflow"))
        .unwrap_or_default();
    if venv.exists() {
        venv
    } else {
        PathBuf::from("mlflow")
    }
}

/// A real `mlflow server` on a free port with a SQLite store in a temp dir; its whole process
/// group is stopped on drop (it runs its workers as children).
struct Mlflow {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Mlflow {
    fn start() -> Mlflow {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let db = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(mlflow_bin())
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--backend-store-uri", &db, "--workers", "1"])
            .arg("--default-artifact-root")
            .arg(dir.path().join("artifacts"))
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (install MLflow: .ci/run does it, or set FLEETDECK_MLFLOW)",
                    mlflow_bin().display()
                )
            });
        let server = Mlflow {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let health = format!("{}/health", server.url);
        wait_until(
            "mlflow server answers /health",
            Duration::from_secs(120),
            || {
                http()
                    .get(&health)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        );
        server
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.url)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let r = http()
            .post(self.api(path))
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path} {body}: {status} {v}");
        v
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        http()
            .get(self.api(path))
            .query(query)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn alias(&self, model: &str, alias: &str) -> Value {
        self.get(
            "registered-models/alias",
            &[("name", model), ("alias", alias)],
        )["model_version"]
            .clone()
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.child.wait();
    }
}

fn fleetdeck(args: &[&str], home: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fleetdeck");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ROLLBACK: &str = r#"
const RUNBOOK = #{
    name: "model-rollback",
    description: "Roll the endpoint's registered model back to the previous version",
    trigger: #{ signal: "slo.fast_burn", min_severity: "critical" },
    cooldown: "1s",
};

fn run(signal) {
    let r = rollback_model(signal.subject.endpoint);
    note(`model rollback ${r.outcome}: ${r.summary}`);
}
"#;

#[test]
#[ignore = "needs mlflow (PyPI; .ci/run installs it into a virtualenv)"]
fn rollback_model_moves_the_alias_back_and_repins_the_serving_deployment() {
    let mlflow = Mlflow::start();
    mlflow.post("registered-models/create", json!({"name": "llama-chat"}));
    for v in 1..=3 {
        mlflow.post(
            "model-versions/create",
            json!({"name": "llama-chat", "source": format!("s3://models/llama-chat/{v}")}),
        );
    }
    mlflow.post(
        "registered-models/alias",
        json!({"name": "llama-chat", "alias": "champion", "version": "3"}),
    );

    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("fleetdeck.toml");
    let c = config.to_str().expect("utf-8 path");
    let sim = Sim::start(&["--config-out", c, "--nodes", "6"]);
    let endpoint = &sim.desc["endpoints"][0];
    let (name, cluster, ns, deployment) = (
        endpoint["name"].as_str().expect("endpoint name"),
        endpoint["cluster"].as_str().expect("cluster"),
        endpoint["namespace"].as_str().expect("namespace"),
        endpoint["deployment"].as_str().expect("deployment"),
    );
    // The serving Deployment names its model two ways, as a team would: the annotation
    // fleetdeck reads, and the pinned URI its server loads.
    let kubectl = Kubectl::new("1.33", &sim);
    let target = format!("deployment/{deployment}");
    kubectl.ok(&[
        "--context",
        cluster,
        "-n",
        ns,
        "annotate",
        &target,
        "fleetdeck.io/registered-model=llama-chat@champion",
    ]);
    let add_env = json!([{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
        "value": {"name": "MODEL_URI", "value": "models:/llama-chat/3"}}]);
    kubectl.ok(&[
        "--context",
        cluster,
        "-n",
        ns,
        "patch",
        &target,
        "--type=json",
        "-p",
        &add_env.to_string(),
    ]);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[mlflow]\ntracking_uri = \"{}\"\ninterval = \"2s\"\n",
        mlflow.url
    ));
    std::fs::write(&config, text).expect("write config");

    let model_of = |snap: &Value| -> Value {
        snap["models"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["endpoint"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let snapshot = || -> Value {
        let (code, out, err) = fleetdeck(
            &[
                "snapshot",
                "--config",
                c,
                "-o",
                "json",
                "--wait-synced",
                "40s",
            ],
            home.path(),
        );
        assert_eq!(code, Some(0), "{err}");
        serde_json::from_str(&out).expect("snapshot JSON")
    };
    let before = model_of(&snapshot());
    assert_eq!(before["model"], "llama-chat", "{before}");
    assert_eq!(before["alias"], "champion");
    assert_eq!(before["version"], 3, "{before}");
    assert_eq!(
        before["origin"],
        json!({"from": "annotation", "object": format!("deployment/{ns}/{deployment}")})
    );
    assert_eq!(before["versions"].as_array().map(Vec::len), Some(3));

    let runbooks = home.path().join("runbooks");
    std::fs::create_dir_all(&runbooks).expect("runbooks dir");
    std::fs::write(runbooks.join("model-rollback.rhai"), ROLLBACK).expect("runbook");
    let store = home.path().join("store");
    let endpoint_target = format!("endpoint/{name}");
    let run_in = |mode: &str| {
        let (code, out, err) = fleetdeck(
            &[
                "runbook",
                "run",
                "model-rollback",
                "--target",
                &endpoint_target,
                "--cluster",
                cluster,
                "--config",
                c,
                "--runbooks",
                runbooks.to_str().expect("utf-8"),
                "--store",
                store.to_str().expect("utf-8"),
                "--mode",
                mode,
                "-o",
                "json",
            ],
            home.path(),
        );
        let record: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("run record: {e}\nstdout {out}\nstderr {err}"));
        (code, record, err)
    };
    let run = || run_in("auto");

    // A dry run plans the move from what the registry said, and writes nothing to it.
    let (code, record, err) = run_in("dry-run");
    assert_eq!(code, Some(0), "{record}\n{err}");
    assert!(
        record["plan"]
            .to_string()
            .contains("move alias champion of registered model llama-chat from version 3 to 2"),
        "{record}"
    );
    assert_eq!(mlflow.alias("llama-chat", "champion")["version"], "3");

    let (code, record, err) = run();
    assert_eq!(code, Some(0), "{record}\n{err}");
    let actions = record["actions"].to_string();
    assert!(
        actions.contains("champion of llama-chat moved from version 3 to 2")
            && actions.contains("repinned to models:/llama-chat/2"),
        "{record}"
    );

    // MLflow's own answer: the alias moved, the version it left is tagged, the move recorded.
    assert_eq!(mlflow.alias("llama-chat", "champion")["version"], "2");
    let v3 = mlflow.get(
        "model-versions/get",
        &[("name", "llama-chat"), ("version", "3")],
    );
    let tags = v3["model_version"]["tags"].to_string();
    assert!(
        tags.contains("fleetdeck.rolled_back") && tags.contains("champion moved to version 2"),
        "{v3}"
    );
    let model = mlflow.get("registered-models/get", &[("name", "llama-chat")]);
    let history = model["registered_model"]["tags"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|t| t["key"] == "fleetdeck.alias_history.champion")
        })
        .and_then(|t| t["value"].as_str())
        .map(|v| serde_json::from_str::<Value>(v).expect("history JSON"))
        .unwrap_or_else(|| panic!("no alias history tag: {model}"));
    assert_eq!(history[0]["from"], 3, "{history}");
    assert_eq!(history[0]["to"], 2, "{history}");
    assert!(
        history[0]["by"]
            .as_str()
            .is_some_and(|b| b.contains("runbook model-rollback")),
        "{history}"
    );

    // kubectl's answer: the Deployment now loads version 2.
    let dep = kubectl.json(&["--context", cluster, "-n", ns, "get", &target, "-o", "json"]);
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("models:/llama-chat/2"), "{env}");
    assert!(!env.contains("models:/llama-chat/3"), "{env}");

    // Every face reads the same picture: the snapshot shows version 2, v3 rolled back from,
    // and the move.
    let after = model_of(&snapshot());
    assert_eq!(after["version"], 2, "{after}");
    let v3 = after["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["version"] == 3))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(v3["rolled_back"].is_string(), "{after}");
    assert_eq!(
        after["history"].as_array().map(Vec::len),
        Some(1),
        "{after}"
    );

    // Once more: version 1; then nothing is left to go back to, which is refused and said.
    let (code, record, err) = run();
    assert_eq!(code, Some(0), "{record}\n{err}");
    assert_eq!(mlflow.alias("llama-chat", "champion")["version"], "1");
    let dep = kubectl.json(&["--context", cluster, "-n", ns, "get", &target, "-o", "json"]);
    assert!(
        dep["spec"]["template"]["spec"]["containers"][0]["env"]
            .to_string()
            .contains("models:/llama-chat/1"),
        "{dep}"
    );
    let (_, record, _) = run();
    assert!(
        record["actions"]
            .to_string()
            .contains("no earlier version than 1"),
        "{record}"
    );
    assert_eq!(mlflow.alias("llama-chat", "champion")["version"], "1");
}
