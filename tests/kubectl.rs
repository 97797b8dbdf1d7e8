//! Real, unchanged kubectl (1.27 and 1.33 from the machine's kubectl package) against
//! `fleetdeck sim`: kubectl is the referee of the sim's fidelity.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{Kubectl, Sim, wait_until};
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

fn get_nodes_prints_the_server_side_table(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let out = k.ok(&["get", "nodes"]);
    let header = out.lines().next().unwrap_or("");
    for col in ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] {
        assert!(header.contains(col), "missing column {col}: {out}");
    }
    assert_eq!(out.lines().count(), 1 + 8, "{out}");
    assert!(out.contains(" Ready "), "{out}");
    let wide = k.ok(&["get", "nodes", "-o", "wide", "--context", "sim-b"]);
    assert!(
        wide.lines().next().unwrap_or("").contains("INTERNAL-IP"),
        "{wide}"
    );
}

fn get_pods_all_namespaces_shows_namespace_and_status(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let out = k.ok(&["get", "pods", "-A"]);
    let header = out.lines().next().unwrap_or("");
    for col in ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    for ns in ["kube-system", "gpu-operator", "serving"] {
        assert!(
            out.lines().any(|l| l.starts_with(ns)),
            "no pod in {ns}: {out}"
        );
    }
    assert!(
        out.contains("CrashLoopBackOff"),
        "the crash-looping worker is shown: {out}"
    );
    assert!(
        out.contains("Pending"),
        "the unschedulable job is shown: {out}"
    );
}

fn get_nodes_json_has_gpu_capacity_and_cloud_labels(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let list = k.json(&["get", "nodes", "--show-managed-fields"]);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 8);
    assert!(
        items
            .iter()
            .any(|n| n["status"]["capacity"]["nvidia.com/gpu"] == "8")
    );
    assert!(
        items
            .iter()
            .all(|n| n["metadata"]["managedFields"].is_array())
    );
    assert!(items.iter().any(
        |n| n["metadata"]["labels"]["karpenter.sh/capacity-type"].is_string()
            || n["metadata"]["labels"]["eks.amazonaws.com/capacityType"].is_string()
    ));
    let gke = k.json(&["get", "nodes", "--context", "sim-b"]);
    assert!(
        gke["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|n| n["metadata"]["labels"]["cloud.google.com/gke-nodepool"].is_string())
    );
}

fn get_raw_pages_with_the_continue_token(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let first: Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/api/v1/pods?limit=50"])).expect("json");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(50));
    let mut names: Vec<String> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    let mut token = first["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_string();
    loop {
        let page: Value = serde_json::from_str(&k.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/pods?limit=50&continue={token}"),
        ]))
        .expect("json");
        names.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    let all: Value = serde_json::from_str(&k.ok(&["get", "--raw", "/api/v1/pods"])).expect("json");
    assert_eq!(names.len(), all["items"].as_array().map_or(0, Vec::len));
    let mut dedup = names.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len(), "every pod exactly once");
}

fn cordon_and_uncordon_patch_the_node(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let node = k.json(&["get", "nodes"])["items"][3]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(k.ok(&["cordon", &node]).contains("cordoned"));
    assert_eq!(
        k.json(&["get", "node", &node])["spec"]["unschedulable"],
        true
    );
    assert!(k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));
    assert!(k.ok(&["cordon", &node]).contains("already cordoned"));
    assert!(k.ok(&["uncordon", &node]).contains("uncordoned"));
    assert!(k.json(&["get", "node", &node])["spec"]["unschedulable"].is_null());
}

fn drain_waits_for_the_budget_then_evicts(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let pods = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"]);
    let node = pods["items"][0]["spec"]["nodeName"]
        .as_str()
        .expect("node")
        .to_string();
    assert_eq!(
        pods["items"][1]["spec"]["nodeName"],
        node.as_str(),
        "both replicas share a node"
    );
    let out = k.run(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=60s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("drained"), "{stdout}");
    assert!(
        stderr.contains("disruption budget"),
        "the PDB made one eviction wait: {stderr}"
    );
    let counters = sim.counters("sim-a");
    assert!(
        counters["evictions_refused_pdb"].as_u64().unwrap_or(0) >= 1,
        "{counters}"
    );
    let left = k.json(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("spec.nodeName={node}"),
    ]);
    for p in left["items"].as_array().expect("items") {
        let owner = p["metadata"]["ownerReferences"][0]["kind"]
            .as_str()
            .unwrap_or("");
        assert_eq!(
            owner, "DaemonSet",
            "only daemon-set pods stay: {}",
            p["metadata"]["name"]
        );
    }
    let after = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"]);
    let items = after["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "the deployment replaced its pods");
    assert!(items.iter().all(|p| p["spec"]["nodeName"] != node.as_str()));
    assert!(k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));
}

fn drain_times_out_while_a_budget_blocks(version: &str) {
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "8",
        "--pods-per-node",
        "8",
        "--seed",
        "5",
        "--scenario",
        "pdb-block",
    ]);
    let k = Kubectl::new(version, &sim);
    let pods = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"]);
    let node = pods["items"][0]["spec"]["nodeName"]
        .as_str()
        .expect("node")
        .to_string();
    let out = k.run(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=8s",
    ]);
    assert!(!out.status.success(), "a blocking PDB must stop the drain");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("global timeout reached"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rollout_history_and_undo_follow_revisions(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let history = k.ok(&[
        "rollout",
        "history",
        "deployment/llama-chat",
        "-n",
        "serving",
    ]);
    for rev in ["1 ", "2 ", "3 "] {
        assert!(
            history.lines().any(|l| l.starts_with(rev)),
            "revision {rev}in {history}"
        );
    }
    let image = |k: &Kubectl| {
        k.json(&["get", "deployment", "llama-chat", "-n", "serving"])["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(image(&k), "vllm/vllm-openai:v0.6.3");
    assert!(
        k.ok(&["rollout", "undo", "deployment/llama-chat", "-n", "serving"])
            .contains("rolled back")
    );
    assert_eq!(image(&k), "vllm/vllm-openai:v0.6.1");
    let history = k.ok(&[
        "rollout",
        "history",
        "deployment/llama-chat",
        "-n",
        "serving",
    ]);
    assert!(
        history.lines().any(|l| l.starts_with("4 ")),
        "the reused ReplicaSet got revision 4: {history}"
    );
    assert!(
        !history.lines().any(|l| l.starts_with("2 ")),
        "revision 2 moved to 4: {history}"
    );
    // A second undo goes back to what revision 3 ran, reusing that ReplicaSet.
    assert!(
        k.ok(&["rollout", "undo", "deployment/llama-chat", "-n", "serving"])
            .contains("rolled back")
    );
    assert_eq!(image(&k), "vllm/vllm-openai:v0.6.3");
    let rs = k.json(&["get", "rs", "-n", "serving", "-l", "app=llama-chat"]);
    assert_eq!(
        rs["items"].as_array().map(Vec::len),
        Some(3),
        "no new ReplicaSets for rollbacks"
    );
    let bad = k.run(&[
        "rollout",
        "undo",
        "deployment/llama-chat",
        "-n",
        "serving",
        "--to-revision=42",
    ]);
    assert!(!bad.status.success());
}

fn get_events_lists_warnings_across_namespaces(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let out = k.ok(&["get", "events", "-A"]);
    let header = out.lines().next().unwrap_or("");
    for col in [
        "NAMESPACE",
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
    ] {
        assert!(header.contains(col), "missing {col}: {header}");
    }
    assert!(out.contains("Warning"), "{out}");
    assert!(
        out.contains("FailedScheduling") && out.contains("Insufficient nvidia.com/gpu"),
        "{out}"
    );
}

fn watch_receives_a_change_made_while_watching(version: &str) {
    let sim = sim();
    let k = Kubectl::new(version, &sim);
    let mut child = k
        .command(&["get", "pods", "-A", "--watch"])
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
    // Wait for the initial listing to arrive, then change something.
    wait_until("the initial listing", Duration::from_secs(20), || {
        rx.try_recv().is_ok()
    });
    let victim = k.json(&["get", "pods", "-n", "batch", "-l", "app=etl-runner"])["items"][0]["metadata"]["name"].as_str().expect("pod").to_string();
    k.ok(&["delete", "pod", "-n", "batch", &victim, "--wait=false"]);
    let mut seen_terminating = false;
    wait_until(
        "the watch to show the deletion",
        Duration::from_secs(20),
        || {
            while let Ok(line) = rx.try_recv() {
                if line.contains(&victim) && line.contains("Terminating") {
                    seen_terminating = true;
                }
            }
            seen_terminating
        },
    );
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
    get_nodes_prints_the_server_side_table,
    get_pods_all_namespaces_shows_namespace_and_status,
    get_nodes_json_has_gpu_capacity_and_cloud_labels,
    get_raw_pages_with_the_continue_token,
    cordon_and_uncordon_patch_the_node,
    drain_waits_for_the_budget_then_evicts,
    drain_times_out_while_a_budget_blocks,
    rollout_history_and_undo_follow_revisions,
    get_events_lists_warnings_across_namespaces,
    watch_receives_a_change_made_while_watching,
);
