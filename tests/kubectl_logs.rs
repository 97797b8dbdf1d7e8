//! Real, unchanged kubectl (1.27 and 1.33) reading container logs from `fleetdeck sim`:
//! `kubectl logs` with `--tail`, `-c`, `--since`, `--previous`, `--timestamps` and `-f`, and
//! kubectl's own errors for an unknown pod, an unknown container and a missing container name.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Kubectl, Sim, wait_until};

fn sim() -> Sim {
    Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "16",
        "--pods-per-node",
        "10",
        "--seed",
        "11",
    ])
}

fn pod_named(k: &Kubectl, ns: &str, prefix: &str) -> String {
    let list = k.json(&["get", "pods", "-n", ns]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no pod {prefix}* in {ns}"))
        .to_string()
}

fn stderr_of(k: &Kubectl, args: &[&str]) -> String {
    let out = k.run(args);
    assert!(!out.status.success(), "kubectl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads `kubectl logs -f` lines on a thread until `n` arrived or `timeout` passed.
fn follow(k: &Kubectl, args: &[&str], n: usize, timeout: Duration) -> Vec<String> {
    let mut child = k
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    while lines.len() < n && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn logs_read_tail_since_timestamps_previous_and_follow(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);

    let trainer = pod_named(&k, "training", "llm-pretrain-worker-");
    let tail = k.ok(&["logs", "-n", "training", &trainer, "--tail=5"]);
    assert_eq!(tail.lines().count(), 5, "{tail}");
    assert!(
        tail.lines()
            .all(|l| l.contains("trainer: step ") || l.contains("checkpoint")),
        "PyTorch step lines: {tail}"
    );
    assert!(tail.contains("| loss ") && tail.contains("| lr "), "{tail}");
    // Deterministic per pod: a second read is the same log, moved on by at most the lines
    // the trainer wrote in between (one every ~1.4 s), so the reads overlap line for line.
    let again = k.ok(&["logs", "-n", "training", &trainer, "--tail=5"]);
    let first: Vec<&str> = tail.lines().collect();
    let second: Vec<&str> = again.lines().collect();
    let shift = first
        .iter()
        .position(|l| Some(l) == second.first())
        .unwrap_or_else(|| panic!("the reads do not overlap:\n{tail}\n---\n{again}"));
    assert_eq!(
        first[shift..],
        second[..first.len() - shift],
        "deterministic per pod:\n{tail}\n---\n{again}"
    );

    let chat = pod_named(&k, "serving", "llama-chat-");
    let with_c = k.ok(&[
        "logs",
        "-n",
        "serving",
        &chat,
        "-c",
        "llama",
        "--tail=50",
        "--timestamps",
    ]);
    assert_eq!(with_c.lines().count(), 50, "{with_c}");
    for l in with_c.lines() {
        let (ts, rest) = l.split_once(' ').expect("a timestamp prefix");
        assert!(
            ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "RFC3339Nano prefix: {l}"
        );
        assert!(rest.starts_with("INFO"), "vLLM line: {l}");
    }
    assert!(with_c.contains("/v1/chat/completions"), "{with_c}");

    let since = k.ok(&["logs", "-n", "serving", &chat, "--since=10s"]);
    let all = k.ok(&["logs", "-n", "serving", &chat]);
    assert!(
        !since.is_empty() && since.lines().count() < 40,
        "about 14 lines in 10 s: {since}"
    );
    assert!(all.lines().count() > since.lines().count());
    let since_time = (chrono::Utc::now() - chrono::Duration::seconds(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let after = k.ok(&[
        "logs",
        "-n",
        "serving",
        &chat,
        &format!("--since-time={since_time}"),
        "--timestamps",
    ]);
    assert!(!after.is_empty(), "lines in the last 10 s");
    for l in after.lines() {
        let ts = l.split(' ').next().unwrap_or("");
        assert!(
            ts >= since_time.trim_end_matches('Z'),
            "{l} is before {since_time}"
        );
    }
    let limited = k.ok(&["logs", "-n", "serving", &chat, "--limit-bytes=100"]);
    assert_eq!(limited.len(), 100, "{limited:?}");

    let worker = pod_named(&k, "batch", "tokenizer-worker-");
    let previous = k.ok(&["logs", "-n", "batch", &worker, "--previous"]);
    assert!(
        previous.contains("Traceback (most recent call last):"),
        "{previous}"
    );
    assert!(
        previous
            .trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("MemoryError:"),
        "the trace ends in its error: {previous}"
    );
    let previous_of_running = stderr_of(&k, &["logs", "-n", "training", &trainer, "-p"]);
    assert!(
        previous_of_running.contains("previous terminated container")
            && previous_of_running.contains("not found"),
        "{previous_of_running}"
    );

    let followed = follow(
        &k,
        &["logs", "-n", "serving", &chat, "-f", "--tail=1"],
        4,
        Duration::from_secs(20),
    );
    assert!(
        followed.len() >= 4,
        "new lines arrive while following: {followed:?}"
    );
}

fn logs_errors_are_kubectls_usual(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let unknown = stderr_of(&k, &["logs", "-n", "serving", "no-such-pod"]);
    // kubectl looks the pod up before asking for its log.
    assert!(
        unknown.contains("rror from server (NotFound): pods \"no-such-pod\" not found"),
        "{unknown}"
    );
    let chat = pod_named(&k, "serving", "llama-chat-");
    let bad_container = stderr_of(&k, &["logs", "-n", "serving", &chat, "-c", "nope"]);
    assert!(
        // kubectl checks the name itself; the API server (asked directly) says the same.
        bad_container.contains(&format!("container nope is not valid for pod {chat}")),
        "{bad_container}"
    );

    // A pod with two containers: kubectl itself picks the first unless told; the API server
    // insists on a name.
    let raw_bad = stderr_of(
        &k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/serving/pods/{chat}/log?container=nope"),
        ],
    );
    assert!(
        raw_bad.contains(&format!(
            "(BadRequest): container nope is not valid for pod {chat}"
        )),
        "{raw_bad}"
    );
    let manifest = sim.dir.path().join("two.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "two-containers", "namespace": "batch"},
            "spec": {"containers": [
                {"name": "app", "image": "ghcr.io/fleet/app:1.0"},
                {"name": "sidecar", "image": "envoyproxy/envoy:v1.31.2"},
            ]},
        })
        .to_string(),
    )
    .expect("write manifest");
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().expect("utf-8 path"),
    ]);
    wait_until("the pod to run", Duration::from_secs(20), || {
        k.json(&["get", "pod", "-n", "batch", "two-containers"])["status"]["phase"] == "Running"
    });
    let raw = stderr_of(
        &k,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/batch/pods/two-containers/log",
        ],
    );
    assert!(
        raw.contains("a container name must be specified for pod two-containers, choose one of: [app sidecar]"),
        "{raw}"
    );
    // A container that just started may not have written its first line yet (the sim's
    // envoy writes one within 0.6 s, as a real one writes when its first request comes).
    let mut sidecar = String::new();
    wait_until(
        "the sidecar's first access-log line",
        Duration::from_secs(10),
        || {
            sidecar = k.ok(&["logs", "-n", "batch", "two-containers", "-c", "sidecar"]);
            sidecar.contains("HTTP/1.1")
        },
    );

    // A follow ends when its pod is deleted.
    let mut child = k
        .command(&["logs", "-n", "batch", "two-containers", "-c", "app", "-f"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl logs -f");
    std::thread::sleep(Duration::from_secs(1));
    k.ok(&[
        "delete",
        "pod",
        "-n",
        "batch",
        "two-containers",
        "--grace-period=0",
        "--force",
    ]);
    wait_until("the follow to end", Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
}

fn rbac_deny_of_pods_log_is_forbidden(version: &str) {
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "4",
        "--pods-per-node",
        "10",
        "--seed",
        "3",
    ]);
    let k = Kubectl::new(version, &sim);
    let chat = pod_named(&k, "serving", "llama-chat-");
    let r = common::http()
        .post(format!(
            "{}/scenarios/rbac-deny?resource=pods/log",
            sim.control()
        ))
        .send()
        .expect("inject rbac-deny");
    assert!(r.status().is_success(), "{:?}", r.text());
    let denied = stderr_of(&k, &["logs", "-n", "serving", &chat]);
    assert!(
        denied.contains("Error from server (Forbidden)")
            && denied.contains("cannot get resource \"pods/log\""),
        "{denied}"
    );
    k.ok(&["get", "pod", "-n", "serving", &chat]);
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
    logs_read_tail_since_timestamps_previous_and_follow,
    logs_errors_are_kubectls_usual,
    rbac_deny_of_pods_log_is_forbidden,
);
