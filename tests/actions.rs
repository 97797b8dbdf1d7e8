//! The remediation actions against `fleetdeck sim` over real HTTP, with real kubectl as the
//! referee of what each action did (and, where kubectl has the same command, of what it
//! should have done).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use common::{Kubectl, Sim};
use fleetdeck::actions::{
    ActionContext, ActionError, ActionOutcome, DrainOptions, GangPolicy, Mutation, ObjectKind,
    TaintEffect, annotate, cordon, drain, evict_pod, plan_drain, rollback_deployment,
    rollback_inference_service, scale, taint, uncordon, untaint,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

const KUBECTL: &str = "1.33";

fn start(extra: &[&str]) -> Sim {
    let mut args = vec!["--clusters", "1", "--nodes", "12", "--seed", "42"];
    args.extend_from_slice(extra);
    Sim::start(&args)
}

async fn context(sim: &Sim) -> ActionContext {
    let kc = Kubeconfig::read_from(&sim.kubeconfig).expect("the sim's kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a client config");
    ActionContext::from_config(cfg, "sim-a").expect("an action context")
}

/// Drain options for tests: kubectl's usual flags, and short waits.
fn quick() -> DrainOptions {
    DrainOptions {
        ignore_daemonsets: true,
        delete_emptydir_data: true,
        timeout: Duration::from_secs(30),
        eviction_retry_delay: Duration::from_millis(200),
        poll_interval: Duration::from_millis(100),
        ..DrainOptions::default()
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The node a pod runs on.
fn node_of(k: &Kubectl, ns: &str, pod_or_selector: &str) -> String {
    let v = if pod_or_selector.contains('=') {
        k.json(&["get", "pods", "-n", ns, "-l", pod_or_selector])["items"][0].clone()
    } else {
        k.json(&["get", "pod", "-n", ns, pod_or_selector])
    };
    str_at(&v, "/spec/nodeName").to_string()
}

/// A node without GPUs: only controller-managed CPU services and DaemonSets run there.
fn cpu_node(k: &Kubectl) -> String {
    let nodes = k.json(&["get", "nodes"]);
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n.pointer("/status/capacity/nvidia.com~1gpu").is_none())
        .map(|n| str_at(n, "/metadata/name").to_string())
        .expect("a CPU node")
}

/// `ns/name` → uid of the pods on a node.
fn pods_on(k: &Kubectl, node: &str) -> Vec<(String, String, Value)> {
    let sel = format!("spec.nodeName={node}");
    let v = k.json(&["get", "pods", "-A", "--field-selector", &sel]);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    str_at(p, "/metadata/namespace"),
                    str_at(p, "/metadata/name")
                ),
                str_at(p, "/metadata/uid").to_string(),
                p.clone(),
            )
        })
        .collect()
}

fn is_daemonset_pod(p: &Value) -> bool {
    p.pointer("/metadata/ownerReferences/0/kind") == Some(&Value::from("DaemonSet"))
}

/// The sim's request counters (read on a plain thread: the blocking HTTP client may not run
/// inside the test's runtime).
fn counters(sim: &Sim) -> Value {
    std::thread::scope(|s| s.spawn(|| sim.counters("sim-a")).join()).expect("counters")
}

fn counter(sim: &Sim, key: &str) -> u64 {
    counters(sim)[key].as_u64().unwrap_or(0)
}

fn verb_count(sim: &Sim, verb: &str) -> u64 {
    counters(sim)["by_verb"][verb].as_u64().unwrap_or(0)
}

fn image_of(k: &Kubectl, ns: &str, deployment: &str) -> String {
    let d = k.json(&["get", "deployment", "-n", ns, deployment]);
    str_at(&d, "/spec/template/spec/containers/0/image").to_string()
}

// ---- node actions ---------------------------------------------------------------------------

#[tokio::test]
async fn cordon_sets_unschedulable_and_records_before_after() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = cpu_node(&k);

    let r = cordon(&ctx, &node).await.expect("cordon");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(r.changes.len(), 1);
    assert_eq!(r.changes[0].field, "spec.unschedulable");
    assert_eq!(r.changes[0].before, None);
    assert_eq!(r.changes[0].after, Some(Value::Bool(true)));
    assert_eq!(r.outcomes.len(), 1);
    assert_eq!(r.outcomes[0].request, format!("PATCH /api/v1/nodes/{node}"));
    assert_eq!(r.outcomes[0].status, 200);
    let shown = k.ok(&["get", "node", &node]);
    assert!(shown.contains("SchedulingDisabled"), "{shown}");

    let again = cordon(&ctx, &node).await.expect("cordon again");
    assert!(
        matches!(again.outcome, ActionOutcome::NoOp(_)),
        "{:?}",
        again.outcome
    );
    assert!(again.outcomes.is_empty() && again.changes.is_empty());

    let r = uncordon(&ctx, &node).await.expect("uncordon");
    assert_eq!(r.outcome, ActionOutcome::Done);
    assert_eq!(r.changes[0].before, Some(Value::Bool(true)));
    assert_eq!(
        r.changes[0].after, None,
        "the API drops a false unschedulable"
    );
    assert!(!k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));
}

#[tokio::test]
async fn taint_adds_overwrites_and_untaint_removes_only_that_key() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = cpu_node(&k);
    // No taints reads as an empty list, however the API spells it.
    let taints = |k: &Kubectl| match &k.json(&["get", "node", &node])["spec"]["taints"] {
        Value::Null => Value::Array(Vec::new()),
        t => t.clone(),
    };
    let before = taints(&k);

    let r = taint(
        &ctx,
        &node,
        "fleetdeck.dev/quarantine",
        Some("xid"),
        TaintEffect::NoSchedule,
    )
    .await
    .expect("taint");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let now = taints(&k);
    assert!(
        now.as_array().is_some_and(|ts| ts
            .iter()
            .any(|t| t["key"] == "fleetdeck.dev/quarantine" && t["value"] == "xid")),
        "{now}"
    );
    assert_eq!(r.changes[0].field, "spec.taints");
    assert_eq!(r.changes[0].after.as_ref(), Some(&now));
    assert_eq!(
        r.changes[0]
            .before
            .clone()
            .unwrap_or(Value::Array(Vec::new())),
        before
    );

    let same = taint(
        &ctx,
        &node,
        "fleetdeck.dev/quarantine",
        Some("xid"),
        TaintEffect::NoSchedule,
    )
    .await
    .expect("taint again");
    assert!(matches!(same.outcome, ActionOutcome::NoOp(_)));

    let changed = taint(
        &ctx,
        &node,
        "fleetdeck.dev/quarantine",
        Some("ecc"),
        TaintEffect::NoSchedule,
    )
    .await
    .expect("overwrite");
    assert_eq!(changed.outcome, ActionOutcome::Done);
    let values: Vec<Value> = taints(&k)
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["key"] == "fleetdeck.dev/quarantine")
        .map(|t| t["value"].clone())
        .collect();
    assert_eq!(values, vec![Value::from("ecc")], "overwritten, not added");

    let r = untaint(&ctx, &node, "fleetdeck.dev/quarantine", None)
        .await
        .expect("untaint");
    assert_eq!(r.outcome, ActionOutcome::Done);
    assert_eq!(taints(&k), before, "only that key went");
    let r = untaint(&ctx, &node, "fleetdeck.dev/quarantine", None)
        .await
        .expect("untaint again");
    assert!(matches!(r.outcome, ActionOutcome::NoOp(_)));
}

// ---- object actions -------------------------------------------------------------------------

#[tokio::test]
async fn scale_uses_the_scale_subresource_and_annotate_sets_and_removes() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;

    let r = scale(&ctx, ObjectKind::Deployment, "serving", "llama-chat", 3)
        .await
        .expect("scale");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(
        r.outcomes[0].request,
        "PATCH /apis/apps/v1/namespaces/serving/deployments/llama-chat/scale"
    );
    assert_eq!(r.changes[0].before, Some(Value::from(2)));
    assert_eq!(r.changes[0].after, Some(Value::from(3)));
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let again = scale(&ctx, ObjectKind::Deployment, "serving", "llama-chat", 3)
        .await
        .expect("scale again");
    assert!(matches!(again.outcome, ActionOutcome::NoOp(_)));
    assert!(matches!(
        scale(&ctx, ObjectKind::Node, "serving", "x", 1).await,
        Err(ActionError::InvalidInput { .. })
    ));

    let r = annotate(
        &ctx,
        ObjectKind::Deployment,
        Some("serving"),
        "llama-chat",
        "fleetdeck.dev/incident",
        Some("INC-7"),
    )
    .await
    .expect("annotate");
    assert_eq!(r.outcome, ActionOutcome::Done);
    assert_eq!(
        r.changes[0].field,
        "metadata.annotations.fleetdeck.dev/incident"
    );
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert_eq!(
        d["metadata"]["annotations"]["fleetdeck.dev/incident"],
        "INC-7"
    );
    let r = annotate(
        &ctx,
        ObjectKind::Deployment,
        Some("serving"),
        "llama-chat",
        "fleetdeck.dev/incident",
        None,
    )
    .await
    .expect("remove");
    assert_eq!(r.changes[0].before, Some(Value::from("INC-7")));
    assert_eq!(r.changes[0].after, None);
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert!(d["metadata"]["annotations"]["fleetdeck.dev/incident"].is_null());
    assert!(matches!(
        annotate(&ctx, ObjectKind::Node, None, "no-such-node", "a", Some("b")).await,
        Err(ActionError::NotFound { .. })
    ));
}

#[tokio::test]
async fn the_scale_mutation_sets_replicas_and_a_negative_count_never_becomes_one() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    assert!(matches!(
        Mutation::scale("serving", "llama-chat", -1),
        Err(ActionError::InvalidInput { .. })
    ));
    let down = Mutation::scale("serving", "llama-chat", 1).expect("1 replica");
    let r = down.perform(&ctx, None).await.expect("scale");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(r.changes[0].after, Some(Value::from(1)));
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert_eq!(d["spec"]["replicas"], 1);
}

#[tokio::test]
async fn delete_pod_deletes_with_its_grace_period_and_a_pod_already_gone_is_a_no_op() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let pods = k.json(&["get", "pods", "-n", "serving"]);
    let pod = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| str_at(p, "/metadata/ownerReferences/0/kind") == "ReplicaSet")
        .expect("a Deployment's pod in serving");
    let name = str_at(pod, "/metadata/name").to_string();
    let uid = str_at(pod, "/metadata/uid").to_string();
    let delete = Mutation::DeletePod {
        namespace: "serving".into(),
        name: name.clone(),
    };
    assert_eq!(delete.target(), format!("pod/serving/{name}"));

    let r = delete.perform(&ctx, None).await.expect("delete");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(r.action, "delete");
    assert_eq!(r.outcomes.len(), 1, "one request: {:?}", r.outcomes);
    assert_eq!(
        r.outcomes[0].request,
        format!("DELETE /api/v1/namespaces/serving/pods/{name}")
    );
    assert_eq!(r.evicted, vec![format!("serving/{name}")]);
    // Gracefully: the pod is terminating (or, its grace period over, gone), never replaced
    // under the same uid.
    let after = k.run(&["get", "pod", "-n", "serving", &name, "-o", "json"]);
    if after.status.success() {
        let v: Value = serde_json::from_slice(&after.stdout).expect("JSON");
        assert_eq!(str_at(&v, "/metadata/uid"), uid);
        assert!(
            v.pointer("/metadata/deletionTimestamp").is_some(),
            "terminating: {v}"
        );
        assert!(r.summary.contains("grace period"), "{}", r.summary);
    }

    let gone = Mutation::DeletePod {
        namespace: "serving".into(),
        name: "no-such-pod".into(),
    };
    let r = gone
        .perform(&ctx, None)
        .await
        .expect("a 404 is not an error");
    assert_eq!(
        r.outcome,
        ActionOutcome::NoOp("pod/serving/no-such-pod is already gone".into())
    );
    assert!(r.outcome.is_success());
    assert_eq!(r.outcomes[0].status, 404);
}

#[tokio::test]
async fn the_evict_pod_mutation_evicts_one_pod_through_the_eviction_api_under_its_pdb() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let pods = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"]);
    let name = pods["items"]
        .as_array()
        .and_then(|a| a.first())
        .map(|p| str_at(p, "/metadata/name").to_string())
        .expect("a llama-chat pod");
    let evict = Mutation::EvictPod {
        namespace: "serving".into(),
        name: name.clone(),
        timeout_s: 30,
    };
    assert_eq!(evict.target(), format!("pod/serving/{name}"));
    assert_eq!(evict.spec().host_fn, "evict_pod");

    let r = evict.perform(&ctx, None).await.expect("evict");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(r.action, "evict");
    assert!(
        r.outcomes.iter().any(|o| o.request
            == format!("POST /api/v1/namespaces/serving/pods/{name}/eviction")
            && o.status == 201),
        "{:?}",
        r.outcomes
    );
    assert_eq!(r.evicted, vec![format!("serving/{name}")]);
    assert!(r.bypassed.is_empty(), "the PDB is never bypassed");
    assert!(
        !k.run(&["get", "pod", "-n", "serving", &name])
            .status
            .success(),
        "the evicted pod is gone"
    );
}

// ---- drain ----------------------------------------------------------------------------------

/// `evicting pod NS/NAME` lines and `cannot delete …: NS/A, NS/B` lists of a kubectl drain.
fn kubectl_drain_dry_run(
    k: &Kubectl,
    node: &str,
    flags: &[&str],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut args = vec!["drain", node, "--dry-run=client"];
    args.extend_from_slice(flags);
    let out = k.run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let evicted = text
        .lines()
        .filter_map(|l| l.strip_prefix("evicting pod "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let refused = text
        .lines()
        .filter(|l| l.starts_with("cannot delete "))
        .filter_map(|l| l.rsplit_once("): "))
        .flat_map(|(_, pods)| pods.split(", ").map(str::to_string))
        .collect();
    (evicted, refused)
}

#[tokio::test]
async fn plan_drain_agrees_with_kubectl_drain_and_changes_nothing() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "serving", "app=llama-chat");
    let mutating = counter(&sim, "mutating");

    let plan = plan_drain(&ctx, &node, &quick()).await.expect("plan");
    let (evicted, refused) = kubectl_drain_dry_run(
        &k,
        &node,
        &["--ignore-daemonsets", "--delete-emptydir-data"],
    );
    assert!(refused.is_empty());
    let planned: BTreeSet<String> = plan.evict.iter().map(|p| p.key()).collect();
    assert_eq!(planned, evicted, "the same pods as kubectl drain");
    assert!(plan.evict.iter().any(|p| p.gpus > 0));
    assert_eq!(
        plan.gpus_freed,
        plan.evict.iter().map(|p| p.gpus).sum::<u32>()
    );
    assert!(plan.skipped.iter().all(|s| s.reason.contains("DaemonSet")));

    let strict = plan_drain(&ctx, &node, &DrainOptions::default())
        .await
        .expect("strict plan");
    let (_, refused) = kubectl_drain_dry_run(&k, &node, &[]);
    let errors: BTreeSet<String> = strict.errors.iter().map(|e| e.pod.clone()).collect();
    assert_eq!(errors, refused, "the same pods kubectl refuses");
    assert!(strict.is_refused());
    assert!(
        strict.refusal().contains("ignore_daemonsets"),
        "{}",
        strict.refusal()
    );

    assert_eq!(
        counter(&sim, "mutating"),
        mutating,
        "planning mutates nothing"
    );
    assert!(!k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));
}

#[tokio::test]
async fn drain_refuses_before_any_eviction_when_a_filter_fails() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = cpu_node(&k);
    let overrides = format!(r#"{{"apiVersion":"v1","spec":{{"nodeName":"{node}"}}}}"#);
    k.ok(&[
        "run",
        "debug-shell",
        "-n",
        "default",
        "--image=busybox:1.36",
        "--restart=Never",
        &format!("--overrides={overrides}"),
    ]);
    let posts = verb_count(&sim, "POST");

    let r = drain(&ctx, &node, &quick()).await.expect("drain");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal, got {:?}: {}", r.outcome, r.summary);
    };
    assert!(
        why.contains("no controller") && why.contains("default/debug-shell"),
        "{why}"
    );
    assert!(why.contains("stays cordoned"), "{why}");
    assert_eq!(verb_count(&sim, "POST"), posts, "no eviction was sent");
    assert_eq!(counter(&sim, "evictions_allowed"), 0);
    assert!(r.evicted.is_empty());
    assert!(
        k.ok(&["get", "node", &node]).contains("SchedulingDisabled"),
        "kubectl drain leaves the node cordoned too"
    );
    assert_eq!(
        r.outcomes
            .iter()
            .map(|o| o.request.as_str())
            .collect::<Vec<_>>(),
        vec![format!("PATCH /api/v1/nodes/{node}").as_str()],
        "only the cordon"
    );

    let strict = DrainOptions {
        ignore_daemonsets: false,
        ..quick()
    };
    let r = drain(&ctx, &node, &strict).await.expect("drain");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal: {}", r.summary);
    };
    assert!(why.contains("DaemonSet-managed"), "{why}");
    assert_eq!(counter(&sim, "evictions_allowed"), 0);
}

#[tokio::test]
async fn drain_evicts_with_uid_precondition_and_waits_for_deletion() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = cpu_node(&k);
    let before = pods_on(&k, &node);
    let movable: BTreeSet<String> = before
        .iter()
        .filter(|(_, _, p)| !is_daemonset_pod(p))
        .map(|(n, _, _)| n.clone())
        .collect();
    assert!(movable.len() >= 3, "{movable:?}");

    // A stale UID: the eviction's precondition makes the API refuse, and nothing is evicted.
    let (victim, uid, _) = before
        .iter()
        .find(|(n, _, _)| movable.contains(n))
        .cloned()
        .expect("a pod");
    let (ns, name) = victim.split_once('/').expect("ns/name");
    let stale = evict_pod(&ctx, ns, name, Some("00000000-stale"), &quick())
        .await
        .expect("evict with a stale uid");
    assert_eq!(stale.outcomes.len(), 1);
    assert_eq!(stale.outcomes[0].status, 409, "{:?}", stale.outcomes);
    assert!(stale.outcomes[0].message.contains("Precondition failed"));
    assert!(stale.evicted.is_empty());
    assert!(
        matches!(stale.outcome, ActionOutcome::NoOp(_)),
        "{:?}",
        stale.outcome
    );
    let still = k.json(&["get", "pod", "-n", ns, name]);
    assert_eq!(str_at(&still, "/metadata/uid"), uid);

    let r = drain(&ctx, &node, &quick()).await.expect("drain");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let evicted: BTreeSet<String> = r.evicted.iter().cloned().collect();
    assert_eq!(evicted, movable);
    let evictions: Vec<_> = r
        .outcomes
        .iter()
        .filter(|o| o.request.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), movable.len());
    assert!(evictions.iter().all(|o| o.status == 201), "{evictions:?}");
    // drain returned only once every evicted pod was gone: only DaemonSet pods remain.
    let after = pods_on(&k, &node);
    assert!(
        after.iter().all(|(_, _, p)| is_daemonset_pod(p)),
        "{:?}",
        after.iter().map(|(n, _, _)| n).collect::<Vec<_>>()
    );
    assert!(r.summary.contains("drained"), "{}", r.summary);
}

#[tokio::test]
async fn drain_backs_off_on_429_and_names_the_pdb() {
    // Both llama-chat replicas share a node and their budget needs one healthy: the first
    // eviction passes, the second is refused until the replacement is Ready.
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "serving", "app=llama-chat");
    let plan = plan_drain(&ctx, &node, &quick()).await.expect("plan");
    assert!(
        plan.pdbs
            .iter()
            .any(|p| p.pdb == "serving/llama-chat" && !p.blocks_now && p.pods.len() == 2),
        "{:?}",
        plan.pdbs
    );

    let r = drain(&ctx, &node, &quick()).await.expect("drain");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let refusals: Vec<_> = r.outcomes.iter().filter(|o| o.status == 429).collect();
    assert!(!refusals.is_empty(), "{:?}", r.outcomes);
    assert!(
        refusals
            .iter()
            .all(|o| o.pdb.as_deref() == Some("serving/llama-chat")),
        "{refusals:?}"
    );
    assert_eq!(r.blocked_by, vec!["serving/llama-chat".to_string()]);
    assert_eq!(
        r.evicted
            .iter()
            .filter(|p| p.starts_with("serving/llama-chat-"))
            .count(),
        2
    );
    assert!(r.bypassed.is_empty());
    assert!(counter(&sim, "evictions_refused_pdb") >= 1);
}

#[tokio::test]
async fn drain_times_out_on_a_blocking_pdb_never_bypasses_early_and_finishes_once_it_allows() {
    let sim = start(&["--scenario", "pdb-block"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "serving", "app=llama-chat");
    let plan = plan_drain(&ctx, &node, &quick()).await.expect("plan");
    assert!(
        plan.pdbs
            .iter()
            .any(|p| p.pdb == "serving/llama-chat" && p.blocks_now),
        "{:?}",
        plan.pdbs
    );

    let opts = DrainOptions {
        timeout: Duration::from_secs(3),
        // A deadline in the future: the budget must hold.
        force_past: Some(Utc::now() + chrono::Duration::hours(1)),
        ..quick()
    };
    let r = drain(&ctx, &node, &opts).await.expect("drain");
    assert_eq!(r.outcome, ActionOutcome::TimedOut, "{}", r.summary);
    assert_eq!(r.blocked_by, vec!["serving/llama-chat".to_string()]);
    assert!(r.summary.contains("serving/llama-chat"), "{}", r.summary);
    assert_eq!(
        verb_count(&sim, "DELETE"),
        0,
        "never deleted past the budget"
    );
    assert!(r.bypassed.is_empty());
    let llama = k.json(&["get", "pods", "-n", "serving", "-l", "app=llama-chat"]);
    assert_eq!(llama["items"].as_array().map(Vec::len), Some(2));
    assert!(k.ok(&["get", "node", &node]).contains("SchedulingDisabled"));

    // Once the budget allows one disruption, the same drain finishes.
    k.ok(&[
        "patch",
        "pdb",
        "llama-chat",
        "-n",
        "serving",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    let r = drain(&ctx, &node, &quick()).await.expect("drain again");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert!(
        r.evicted
            .iter()
            .filter(|p| p.starts_with("serving/llama-chat-"))
            .count()
            == 2,
        "{:?}",
        r.evicted
    );
}

#[tokio::test]
async fn drain_force_past_deadline_bypasses_the_pdb_and_says_so() {
    let sim = start(&["--scenario", "pdb-block"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "serving", "app=llama-chat");
    let opts = DrainOptions {
        force_past: Some(Utc::now() - chrono::Duration::seconds(1)),
        ..quick()
    };
    let r = drain(&ctx, &node, &opts).await.expect("drain");
    assert_eq!(
        r.outcome,
        ActionOutcome::Done,
        "{}: {:#?}",
        r.summary,
        r.outcomes
    );
    assert_eq!(r.bypassed.len(), 2, "{:?}", r.bypassed);
    assert!(
        r.bypassed
            .iter()
            .all(|b| b.contains("serving/llama-chat") && b.contains("force-past deadline")),
        "{:?}",
        r.bypassed
    );
    assert!(r.summary.contains("PAST THEIR PDB"), "{}", r.summary);
    let deletes: Vec<_> = r
        .outcomes
        .iter()
        .filter(|o| o.request.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 2);
    assert!(
        deletes
            .iter()
            .all(|o| o.status == 200 && o.pdb.as_deref() == Some("serving/llama-chat"))
    );
    // Each delete came after the budget refused that pod's eviction.
    for d in &deletes {
        let pod = d.request.rsplit('/').next().unwrap_or("");
        assert!(
            r.outcomes
                .iter()
                .any(|o| o.status == 429 && o.request.contains(pod) && o.at <= d.at)
        );
    }
    let original: Vec<String> = pods_on(&k, &node)
        .into_iter()
        .map(|(n, _, _)| n)
        .filter(|n| n.starts_with("serving/llama-chat-"))
        .collect();
    assert!(original.is_empty(), "{original:?}");
}

#[tokio::test]
async fn drain_refuses_one_rank_of_a_gang_job() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "training", "llm-pretrain-master-0");
    let ranks = k.json(&[
        "get",
        "pods",
        "-n",
        "training",
        "-l",
        "training.kubeflow.org/job-name=llm-pretrain",
    ]);
    let rank_count = ranks["items"].as_array().map_or(0, Vec::len);
    assert!(rank_count >= 2);

    let r = drain(&ctx, &node, &quick()).await.expect("drain");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal: {}", r.summary);
    };
    assert!(why.contains("PyTorchJob training/llm-pretrain"), "{why}");
    assert!(why.contains(&format!("{rank_count} ranks")), "{why}");
    assert!(why.contains(&node), "{why}");
    assert_eq!(counter(&sim, "evictions_allowed"), 0);
    let plan = plan_drain(&ctx, &node, &quick()).await.expect("plan");
    assert_eq!(plan.gangs.len(), 1);
    assert_eq!(plan.gangs[0].decision, "refused");
    assert_eq!(plan.gangs[0].nodes.len(), rank_count);
}

#[tokio::test]
async fn drain_whole_gang_evicts_every_rank_on_every_node() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let node = node_of(&k, "training", "llm-pretrain-master-0");
    let selector = "training.kubeflow.org/job-name=llm-pretrain";
    let ranks: BTreeSet<String> =
        k.json(&["get", "pods", "-n", "training", "-l", selector])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("training/{}", str_at(p, "/metadata/name")))
            .collect();

    let opts = DrainOptions {
        gang: GangPolicy::WholeGang,
        ..quick()
    };
    let r = drain(&ctx, &node, &opts).await.expect("drain");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let evicted: BTreeSet<String> = r.evicted.iter().cloned().collect();
    assert!(
        ranks.is_subset(&evicted),
        "{ranks:?} not all in {evicted:?}"
    );
    let left: BTreeSet<String> =
        k.json(&["get", "pods", "-n", "training", "-l", selector])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("training/{}", str_at(p, "/metadata/name")))
            .collect();
    assert!(left.is_disjoint(&ranks), "old ranks remain: {left:?}");
}

#[tokio::test]
async fn restart_gang_deletes_every_rank_together_and_refuses_while_the_job_checkpoints() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let selector = "training.kubeflow.org/job-name=llm-pretrain";
    let ranks: BTreeSet<String> =
        k.json(&["get", "pods", "-n", "training", "-l", selector])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("training/{}", str_at(p, "/metadata/name")))
            .collect();
    assert!(ranks.len() >= 2, "{ranks:?}");
    let restart = Mutation::RestartGang {
        namespace: "training".into(),
        job: "llm-pretrain".into(),
    };
    assert_eq!(restart.target(), "trainingjob/training/llm-pretrain");
    assert_eq!(restart.spec().host_fn, "restart_gang");

    let mark = "fleetdeck.dev/checkpointing";
    let annotate = |value: &str| {
        let out = k.run(&[
            "annotate",
            "pod",
            "-n",
            "training",
            "llm-pretrain-master-0",
            "--overwrite",
            value,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    annotate(&format!("{mark}=true"));
    let r = restart.perform(&ctx, None).await.expect("restart_gang");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("a checkpointing job is refused: {}", r.summary);
    };
    assert!(why.contains("checkpoint") && why.contains(mark), "{why}");
    assert!(r.outcomes.is_empty(), "nothing deleted: {:?}", r.outcomes);

    annotate(&format!("{mark}-"));
    let r = restart.perform(&ctx, None).await.expect("restart_gang");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let deleted: BTreeSet<String> = r.evicted.iter().cloned().collect();
    assert_eq!(deleted, ranks, "the whole gang, never one rank");
    assert_eq!(
        r.outcomes
            .iter()
            .filter(|o| o
                .request
                .starts_with("DELETE /api/v1/namespaces/training/pods/"))
            .count(),
        ranks.len(),
        "{:?}",
        r.outcomes
    );

    let none = Mutation::RestartGang {
        namespace: "training".into(),
        job: "no-such-job".into(),
    };
    let e = none.perform(&ctx, None).await.expect_err("no rank");
    assert!(e.to_string().contains("no-such-job"), "{e}");
}

// ---- rollback -------------------------------------------------------------------------------

#[tokio::test]
async fn rollback_restores_the_previous_revision_and_interleaves_with_kubectl_rollout_undo() {
    let sim = start(&["--scenario", "bad-rollout"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let bad = image_of(&k, "serving", "llama-chat");
    assert!(bad.contains("-rc"), "{bad}");

    let r = rollback_deployment(&ctx, "serving", "llama-chat", None)
        .await
        .expect("rollback");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(
        image_of(&k, "serving", "llama-chat"),
        "vllm/vllm-openai:v0.6.3"
    );
    let image_change = r
        .changes
        .iter()
        .find(|c| c.field.ends_with(".image"))
        .expect("an image change");
    assert_eq!(image_change.before, Some(Value::from(bad.clone())));
    assert_eq!(
        image_change.after,
        Some(Value::from("vllm/vllm-openai:v0.6.3"))
    );
    assert_eq!(r.outcomes.len(), 1);
    assert_eq!(
        r.outcomes[0].request,
        "PATCH /apis/apps/v1/namespaces/serving/deployments/llama-chat"
    );
    let history = k.ok(&[
        "rollout",
        "history",
        "deployment/llama-chat",
        "-n",
        "serving",
    ]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions, vec!["1", "2", "4", "5"], "{history}");

    // kubectl's undo after ours goes back to the bad revision, as a second undo does.
    k.ok(&["rollout", "undo", "deployment/llama-chat", "-n", "serving"]);
    assert_eq!(image_of(&k, "serving", "llama-chat"), bad);
    // And ours after kubectl's returns to the good one.
    let r = rollback_deployment(&ctx, "serving", "llama-chat", None)
        .await
        .expect("rollback again");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(
        image_of(&k, "serving", "llama-chat"),
        "vllm/vllm-openai:v0.6.3"
    );

    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    let current: u64 = str_at(
        &d,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .parse()
    .expect("a revision");
    let same = rollback_deployment(&ctx, "serving", "llama-chat", Some(current))
        .await
        .expect("to the current revision");
    assert_eq!(
        same.outcome,
        ActionOutcome::NoOp(format!(
            "skipped rollback (current template already matches revision {current})"
        ))
    );
    assert!(same.outcomes.is_empty());

    let err = rollback_deployment(&ctx, "serving", "llama-chat", Some(99))
        .await
        .expect_err("no revision 99");
    let msg = err.to_string();
    assert!(matches!(err, ActionError::RevisionNotFound { .. }));
    assert!(
        msg.contains("revision 99") && msg.contains("revisions available: 1, 2"),
        "{msg}"
    );
}

/// The revisions of a Deployment's ReplicaSets, oldest first.
fn rs_revisions(k: &Kubectl, ns: &str, deployment: &str) -> Vec<u64> {
    let v = k.json(&["get", "rs", "-n", ns]);
    let mut revs: Vec<u64> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| str_at(rs, "/metadata/ownerReferences/0/name") == deployment)
        .filter_map(|rs| {
            str_at(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .parse()
            .ok()
        })
        .collect();
    revs.sort_unstable();
    revs
}

#[tokio::test]
async fn restart_rollout_stamps_the_template_and_the_controller_rolls_a_new_revision() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    let before = rs_revisions(&k, "serving", "llama-chat");
    let newest = *before.last().expect("a ReplicaSet of llama-chat");
    let restart = Mutation::RestartRollout {
        namespace: "serving".into(),
        name: "llama-chat".into(),
    };
    assert_eq!(restart.target(), "deployment/serving/llama-chat");
    let r = restart.perform(&ctx, None).await.expect("restart");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(
        r.outcomes[0].request,
        "PATCH /apis/apps/v1/namespaces/serving/deployments/llama-chat"
    );
    let change = &r.changes[0];
    assert_eq!(
        change.field,
        "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt"
    );
    let stamp = change
        .after
        .as_ref()
        .and_then(Value::as_str)
        .expect("a stamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "RFC 3339: {stamp}"
    );
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert_eq!(
        str_at(
            &d,
            "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt"
        ),
        stamp
    );
    // The deployment controller sees a new template: a new ReplicaSet, the next revision.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let revs = rs_revisions(&k, "serving", "llama-chat");
        if revs.last().is_some_and(|r| *r > newest) || std::time::Instant::now() > deadline {
            break revs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        after.last(),
        Some(&(newest + 1)),
        "before {before:?}, after {after:?}"
    );
    assert_eq!(after.len(), before.len() + 1, "a new ReplicaSet: {after:?}");

    k.ok(&["rollout", "pause", "deployment/llama-chat", "-n", "serving"]);
    let r = restart.perform(&ctx, None).await.expect("paused");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal: {}", r.summary);
    };
    assert!(why.contains("can't restart paused deployment"), "{why}");
    assert!(r.outcomes.is_empty(), "nothing sent");
}

#[tokio::test]
async fn rollback_refuses_a_paused_deployment() {
    let sim = start(&["--scenario", "bad-rollout"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;
    k.ok(&["rollout", "pause", "deployment/llama-chat", "-n", "serving"]);
    let bad = image_of(&k, "serving", "llama-chat");

    let r = rollback_deployment(&ctx, "serving", "llama-chat", None)
        .await
        .expect("rollback");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal: {}", r.summary);
    };
    assert!(r.outcomes.is_empty(), "nothing sent");
    assert_eq!(image_of(&k, "serving", "llama-chat"), bad);
    let kubectl = k.run(&["rollout", "undo", "deployment/llama-chat", "-n", "serving"]);
    assert!(!kubectl.status.success());
    let theirs = String::from_utf8_lossy(&kubectl.stderr);
    let common =
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume";
    assert!(why.starts_with(common), "{why}");
    assert!(theirs.contains(common), "{theirs}");
}

#[tokio::test]
async fn kserve_rollback_sets_canary_to_zero_or_refuses_without_a_previous_revision() {
    let sim = start(&[]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await;

    let r = rollback_inference_service(&ctx, "serving", "ranker")
        .await
        .expect("rollback");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert_eq!(r.changes[0].field, "spec.predictor.canaryTrafficPercent");
    assert_eq!(r.changes[0].before, None);
    assert_eq!(r.changes[0].after, Some(Value::from(0)));
    let isvc = k.json(&["get", "inferenceservice", "-n", "serving", "ranker"]);
    assert_eq!(isvc["spec"]["predictor"]["canaryTrafficPercent"], 0);
    let previous = str_at(
        &isvc,
        "/status/components/predictor/previousRolledoutRevision",
    );
    let traffic = isvc["status"]["components"]["predictor"]["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        traffic
            .iter()
            .any(|t| t["revisionName"] == previous && t["percent"] == 100),
        "{traffic:?}"
    );
    let again = rollback_inference_service(&ctx, "serving", "ranker")
        .await
        .expect("again");
    assert!(matches!(again.outcome, ActionOutcome::NoOp(_)));

    let mut create = k.command(&["create", "--validate=false", "-f", "-"]);
    create.stdin(std::process::Stdio::piped());
    let mut child = create.spawn().expect("kubectl create");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(
                br#"{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
  "metadata": {"name": "fresh", "namespace": "serving"},
  "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://m/fresh"}}}}"#,
            )
            .expect("write the manifest");
    }
    assert!(child.wait().expect("kubectl create").success());
    let r = rollback_inference_service(&ctx, "serving", "fresh")
        .await
        .expect("rollback fresh");
    let ActionOutcome::Refused(why) = &r.outcome else {
        panic!("expected a refusal: {}", r.summary);
    };
    assert!(why.contains("previousRolledoutRevision"), "{why}");
    assert!(r.outcomes.is_empty());
}

// ---- dry run --------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_changes_nothing() {
    let sim = start(&["--scenario", "bad-rollout"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let ctx = context(&sim).await.with_dry_run(true);
    let node = node_of(&k, "serving", "app=llama-chat");
    let pods_before: BTreeSet<String> = pods_on(&k, &node).into_iter().map(|(_, u, _)| u).collect();
    let bad = image_of(&k, "serving", "llama-chat");
    let mutating = counter(&sim, "mutating");

    let r = drain(&ctx, &node, &quick()).await.expect("dry-run drain");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    assert!(
        r.dry_run && r.summary.starts_with("dry run:"),
        "{}",
        r.summary
    );
    assert!(!r.evicted.is_empty());
    assert!(
        r.outcomes.iter().all(|o| o.status < 300),
        "{:?}",
        r.outcomes
    );
    let r = rollback_deployment(&ctx, "serving", "llama-chat", None)
        .await
        .expect("dry-run rollback");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let r = scale(&ctx, ObjectKind::Deployment, "serving", "llama-chat", 5)
        .await
        .expect("dry-run scale");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let r = rollback_inference_service(&ctx, "serving", "ranker")
        .await
        .expect("dry-run kserve rollback");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);
    let r = taint(&ctx, &node, "fleetdeck.dev/x", None, TaintEffect::NoExecute)
        .await
        .expect("dry-run taint");
    assert_eq!(r.outcome, ActionOutcome::Done, "{}", r.summary);

    assert!(
        counter(&sim, "mutating") > mutating,
        "the API was asked (dryRun=All)"
    );
    assert_eq!(counter(&sim, "evictions_allowed"), 0);
    let n = k.json(&["get", "node", &node]);
    assert!(n["spec"]["unschedulable"].is_null());
    assert!(
        !n["spec"]["taints"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["key"] == "fleetdeck.dev/x"))
    );
    let pods_after: BTreeSet<String> = pods_on(&k, &node).into_iter().map(|(_, u, _)| u).collect();
    assert_eq!(pods_after, pods_before);
    assert_eq!(image_of(&k, "serving", "llama-chat"), bad);
    let d = k.json(&["get", "deployment", "-n", "serving", "llama-chat"]);
    assert_eq!(d["spec"]["replicas"], 2);
    let isvc = k.json(&["get", "inferenceservice", "-n", "serving", "ranker"]);
    assert!(isvc["spec"]["predictor"]["canaryTrafficPercent"].is_null());
}
