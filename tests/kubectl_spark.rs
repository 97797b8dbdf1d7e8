//! The sim's Spark operator (`sparkoperator.k8s.io/v1beta2` `SparkApplication`) refereed by real,
//! unchanged kubectl (1.27 and 1.33): discovery and the short name, the CRD's printer columns,
//! the status fields the operator writes, the driver's logs, a watch seeing the `spark-failed`
//! scenario, and its undo (the operator's retry).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{Kubectl, Sim, http, wait_until};
use serde_json::Value;

fn sim() -> Sim {
    Sim::start(&[
        "--clusters",
        "2",
        "--nodes",
        "16",
        "--pods-per-node",
        "10",
        "--seed",
        "11",
    ])
}

fn scenario(sim: &Sim, method: reqwest::Method, name: &str) -> Value {
    let r = http()
        .request(method, format!("{}/scenarios/{name}", sim.control()))
        .send()
        .expect("control address");
    assert!(r.status().is_success(), "{name}: {}", r.status());
    r.json().expect("JSON answer")
}

fn get_sparkapplications_prints_the_crd_columns(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let out = k.ok(&["get", "sparkapplications", "-A"]);
    let header = out.lines().next().unwrap_or("");
    for col in [
        "NAMESPACE",
        "NAME",
        "STATUS",
        "ATTEMPTS",
        "START",
        "FINISH",
        "AGE",
    ] {
        assert!(header.contains(col), "missing column {col}: {out}");
    }
    for (name, state) in [
        ("nightly-etl", "RUNNING"),
        ("feature-backfill", "RUNNING"),
        ("daily-aggregates-1765172800", "COMPLETED"),
        ("daily-aggregates-1765086400", "FAILED"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!(" {name} ")) && l.contains(state)),
            "{name} {state}: {out}"
        );
    }
    // The CRD's short name, through discovery.
    let short = k.ok(&["get", "sparkapp", "-n", "batch", "nightly-etl"]);
    assert!(
        short.contains("nightly-etl") && short.contains("RUNNING"),
        "{short}"
    );
    // Only the first cluster runs the data team's jobs.
    let other = k.run(&["get", "sparkapplications", "-A", "--context", "sim-b"]);
    assert!(other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("No resources found"),
        "{other:?}"
    );
}

fn sparkapplication_json_has_the_operators_status(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let app = k.json(&["get", "sparkapplication", "-n", "batch", "nightly-etl"]);
    assert_eq!(app["apiVersion"], "sparkoperator.k8s.io/v1beta2");
    assert_eq!(app["kind"], "SparkApplication");
    let st = &app["status"];
    assert_eq!(st["applicationState"]["state"], "RUNNING");
    assert_eq!(st["driverInfo"]["podName"], "nightly-etl-driver");
    assert_eq!(st["executionAttempts"], 1);
    assert_eq!(st["submissionAttempts"], 1);
    assert!(st["lastSubmissionAttemptTime"].is_string(), "{st}");
    let executors = st["executorState"].as_object().expect("executorState");
    assert_eq!(executors.len(), 3, "{st}");
    assert!(executors.values().all(|s| s == "RUNNING"), "{st}");
    // The pods are there, named and labelled as Spark names them.
    let pods = k.json(&[
        "get",
        "pods",
        "-n",
        "batch",
        "-l",
        "spark-app-name=nightly-etl",
    ]);
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = executors.keys().cloned().collect();
    want.push("nightly-etl-driver".into());
    want.sort();
    assert_eq!(names, want);
    let logs = k.ok(&["logs", "-n", "batch", "nightly-etl-driver", "--tail", "50"]);
    assert!(logs.contains("INFO"), "{logs}");
    let finished = k.json(&[
        "get",
        "sparkapp",
        "-n",
        "batch",
        "daily-aggregates-1765086400",
    ]);
    assert_eq!(finished["status"]["applicationState"]["state"], "FAILED");
    assert!(
        finished["status"]["applicationState"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Path does not exist")),
        "{finished}"
    );
    assert_eq!(
        finished["metadata"]["labels"]["sparkoperator.k8s.io/scheduled-app-name"],
        "daily-aggregates"
    );
}

fn a_watch_sees_the_application_fail_and_the_retry_run(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let mut child = k
        .command(&["get", "sparkapplications", "-n", "batch", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl --watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_until("the initial listing", Duration::from_secs(20), || {
        rx.try_recv().is_ok()
    });
    let injected = scenario(&sim, reqwest::Method::POST, "spark-failed");
    assert_eq!(injected["detail"]["name"], "nightly-etl", "{injected}");
    assert_eq!(injected["detail"]["driver"], "nightly-etl-driver");
    let mut failed = false;
    wait_until("the watch to show FAILED", Duration::from_secs(20), || {
        while let Ok(line) = rx.try_recv() {
            if line.starts_with("nightly-etl ") && line.contains("FAILED") {
                failed = true;
            }
        }
        failed
    });
    let app = k.json(&["get", "sparkapp", "-n", "batch", "nightly-etl"]);
    let message = app["status"]["applicationState"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(message.contains("OutOfMemoryError"), "{app}");
    assert!(app["status"]["terminationTime"].is_string(), "{app}");
    let driver = k.json(&["get", "pod", "-n", "batch", "nightly-etl-driver"]);
    assert_eq!(driver["status"]["phase"], "Failed");
    let logs = k.ok(&["logs", "-n", "batch", "nightly-etl-driver"]);
    assert!(
        logs.lines()
            .any(|l| l.starts_with("Exception in thread \"main\" org.apache.spark.SparkException")),
        "{logs}"
    );
    let executors = k.json(&[
        "get",
        "pods",
        "-n",
        "batch",
        "-l",
        "spark-app-name=nightly-etl,spark-role=executor",
    ]);
    assert_eq!(
        executors["items"].as_array().map(Vec::len),
        Some(0),
        "{executors}"
    );

    scenario(&sim, reqwest::Method::DELETE, "spark-failed");
    let mut running = false;
    wait_until(
        "the watch to show the retry",
        Duration::from_secs(20),
        || {
            while let Ok(line) = rx.try_recv() {
                if line.starts_with("nightly-etl ") && line.contains("RUNNING") {
                    running = true;
                }
            }
            running
        },
    );
    let app = k.json(&["get", "sparkapp", "-n", "batch", "nightly-etl"]);
    assert_eq!(app["status"]["executionAttempts"], 2, "{app}");
    assert!(
        app["status"]["applicationState"]
            .get("errorMessage")
            .is_none(),
        "{app}"
    );
    wait_until("the new driver to run", Duration::from_secs(20), || {
        k.json(&["get", "pod", "-n", "batch", "nightly-etl-driver"])["status"]["phase"] == "Running"
    });
    let logs = k.ok(&["logs", "-n", "batch", "nightly-etl-driver"]);
    assert!(!logs.contains("Exception"), "{logs}");
    let _ = child.kill();
    let _ = child.wait();
}

macro_rules! for_versions {
    ($($name:ident),* $(,)?) => {
        mod v1_27 {
            $( #[test] fn $name() { super::$name("1.27"); } )*
        }
        mod v1_33 {
            $( #[test] fn $name() { super::$name("1.33"); } )*
        }
    };
}

for_versions!(
    get_sparkapplications_prints_the_crd_columns,
    sparkapplication_json_has_the_operators_status,
    a_watch_sees_the_application_fail_and_the_retry_run,
);
