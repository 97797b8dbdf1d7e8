//! The cockpit's log stream (`sources::logs`) against `fleetdeck sim` over real HTTP through a
//! kube `Client`, as the logs view uses it: the crash-looping worker's previous run, a followed
//! serving pod, and the API server's refusals as one clear state.

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use fleetdeck::sources::logs::{
    LogDelta, LogRequest, LogStream, LogTarget, ObjectRef, StreamState, fetch_object,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::mpsc;

fn sim() -> Sim {
    Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "8",
        "--pods-per-node",
        "10",
        "--seed",
        "5",
    ])
}

async fn client(sim: &Sim) -> kube::Client {
    let kc = Kubeconfig::read_from(&sim.kubeconfig).expect("the sim's kubeconfig");
    let opts = KubeConfigOptions {
        context: Some("sim-a".into()),
        ..Default::default()
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("a kube config");
    kube::Client::try_from(cfg).expect("a kube client")
}

async fn pod_named(client: &kube::Client, ns: &str, prefix: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no pod {prefix}* in {ns}"))
}

fn request(ns: &str, pod: &str, container: Option<&str>, previous: bool) -> LogRequest {
    LogRequest {
        target: LogTarget {
            cluster: "sim-a".into(),
            namespace: ns.into(),
            pod: pod.into(),
            container: container.map(str::to_string),
        },
        previous,
        follow: !previous,
        timestamps: false,
        tail_lines: Some(5),
    }
}

/// Collects what the stream delivers until `done` says so or 20 s pass.
async fn collect(
    stream: &LogStream,
    wake: &mut mpsc::Receiver<()>,
    done: impl Fn(&[String], &StreamState) -> bool,
) -> (Vec<String>, LogDelta) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(500), wake.recv()).await;
        let delta = stream.take();
        lines.extend(delta.lines.iter().cloned());
        if done(&lines, &delta.state) || Instant::now() > deadline {
            return (lines, delta);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_run_of_the_crash_looping_worker_ends_in_its_stack_trace() {
    let sim = sim();
    let client = client(&sim).await;
    let worker = pod_named(&client, "batch", "tokenizer-worker-").await;
    let (tx, mut wake) = mpsc::channel(1);
    let mut req = request("batch", &worker, None, true);
    req.tail_lines = None;
    let stream = LogStream::spawn(client, req, 1000, tx);
    let (lines, last) = collect(&stream, &mut wake, |_, s| *s == StreamState::Ended).await;
    assert_eq!(last.state, StreamState::Ended);
    assert_eq!(
        last.container.as_deref(),
        Some("tokenizer"),
        "the only container, as kubectl defaults"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "Traceback (most recent call last):"),
        "{lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.starts_with("MemoryError:")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_serving_pod_keeps_sending_lines_until_the_handle_drops() {
    let sim = sim();
    let client = client(&sim).await;
    let chat = pod_named(&client, "serving", "llama-chat-").await;
    let (tx, mut wake) = mpsc::channel(1);
    let stream = LogStream::spawn(client, request("serving", &chat, None, false), 1000, tx);
    let (lines, last) = collect(&stream, &mut wake, |l, _| l.len() >= 8).await;
    assert!(lines.len() >= 8, "5 of history, then new lines: {lines:?}");
    assert_eq!(last.state, StreamState::Streaming);
    assert!(
        lines.iter().any(|l| l.starts_with("INFO")),
        "vLLM lines: {lines:?}"
    );
    drop(stream);
    // The task is gone: no wake-up comes after the channel drained.
    while wake.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(wake.try_recv().is_err(), "no line after the handle dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_pod_that_is_deleted_ends_as_gone_with_its_last_lines() {
    let sim = sim();
    let client = client(&sim).await;
    let chat = pod_named(&client, "serving", "llama-chat-").await;
    let (tx, mut wake) = mpsc::channel(1);
    let stream = LogStream::spawn(
        client.clone(),
        request("serving", &chat, None, false),
        1000,
        tx,
    );
    let (before, _) = collect(&stream, &mut wake, |l, _| l.len() >= 5).await;
    assert!(before.len() >= 5, "{before:?}");
    let pods: Api<Pod> = Api::namespaced(client, "serving");
    pods.delete(&chat, &kube::api::DeleteParams::default().grace_period(0))
        .await
        .expect("delete the followed pod");
    let (_, last) = collect(&stream, &mut wake, |_, s| {
        matches!(s, StreamState::Gone(_) | StreamState::Ended)
    })
    .await;
    assert!(
        matches!(&last.state, StreamState::Gone(m) if m.contains("404") && m.contains(&chat)),
        "a deleted pod is gone, not a container that stopped: {:?}",
        last.state
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_clear_state() {
    let sim = sim();
    let client = client(&sim).await;
    let (tx, mut wake) = mpsc::channel(1);
    let failed =
        |_: &[String], s: &StreamState| matches!(s, StreamState::Failed(_) | StreamState::Gone(_));

    let gone = LogStream::spawn(
        client.clone(),
        request("serving", "no-such-pod", None, false),
        100,
        tx.clone(),
    );
    let (_, d) = collect(&gone, &mut wake, failed).await;
    assert_eq!(
        d.state,
        StreamState::Gone("404 NotFound: pods \"no-such-pod\" not found".into())
    );

    let chat = pod_named(&client, "serving", "llama-chat-").await;
    let wrong = LogStream::spawn(
        client.clone(),
        request("serving", &chat, Some("nope"), false),
        100,
        tx.clone(),
    );
    let (_, d) = collect(&wrong, &mut wake, failed).await;
    assert_eq!(
        d.state,
        StreamState::Failed(format!(
            "400 BadRequest: container nope is not valid for pod {chat}"
        ))
    );

    let running = LogStream::spawn(
        client.clone(),
        request("serving", &chat, None, true),
        100,
        tx.clone(),
    );
    let (_, d) = collect(&running, &mut wake, failed).await;
    assert!(
        matches!(&d.state, StreamState::Failed(m) if m.contains("previous terminated container")),
        "{:?}",
        d.state
    );

    let url = format!("{}/scenarios/rbac-deny?resource=pods/log", sim.control());
    let r = tokio::task::spawn_blocking(move || common::http().post(url).send())
        .await
        .expect("the blocking call")
        .expect("inject rbac-deny");
    assert!(r.status().is_success());
    let denied = LogStream::spawn(
        client.clone(),
        request("serving", &chat, None, false),
        100,
        tx,
    );
    let (_, d) = collect(&denied, &mut wake, failed).await;
    assert!(
        matches!(&d.state, StreamState::Failed(m) if m.starts_with("403 Forbidden: pods") && m.contains("pods/log")),
        "{:?}",
        d.state
    );

    // The YAML view's read of the same pod still works: only logs are refused.
    let pod = fetch_object(
        client,
        &ObjectRef {
            cluster: "sim-a".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "serving".into(),
            name: chat.clone(),
        },
    )
    .await
    .expect("the pod");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], chat.as_str());
}
