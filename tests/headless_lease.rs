//! Leader election and timeline Events of `fleetdeck headless` against `fleetdeck sim` over
//! real HTTP, with real kubectl as the referee of what landed in the cluster. Durations are
//! short (lease 3 s, renew deadline 2 s, retry 0.5 s) so that takeovers happen within seconds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Kubectl, Sim};
use fleetdeck::headless::events;
use fleetdeck::headless::lease::{self, LeaderHandle, LeaseConfig};
use fleetdeck::model::incident::{Actor, Entry, EntryKind, NewEntry, Origin, Verdict};
use fleetdeck::model::signal::Subject;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

const KUBECTL: &str = "1.33";
const LEASE: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(500);

fn start_sim() -> (Sim, Kubectl) {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "4"]);
    let k = Kubectl::new(KUBECTL, &sim);
    // The Lease's namespace must exist, as on a real cluster: the one deploy/ creates.
    let ns = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/00-namespace.yaml");
    // The sim serves no OpenAPI document, so kubectl cannot validate against it.
    k.ok(&[
        "create",
        "--validate=false",
        "-f",
        ns.to_str().expect("a UTF-8 path"),
    ]);
    (sim, k)
}

/// A client for the sim's first cluster, built as `cli::wiring::action_clients` builds them; with
/// `server`, pointed at another address (a proxy in front of the sim).
async fn client(sim: &Sim, server: Option<String>) -> kube::Client {
    let mut kc = Kubeconfig::read_from(&sim.kubeconfig).expect("the sim's kubeconfig");
    if let Some(server) = server {
        for c in &mut kc.clusters {
            if let Some(cluster) = c.cluster.as_mut() {
                cluster.server = Some(server.clone());
            }
        }
    }
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a client config");
    cfg.connect_timeout = Some(Duration::from_secs(5));
    fleetdeck::actions::action_client(cfg).expect("a client")
}

fn config(identity: &str, name: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "fleetdeck".into(),
        name: name.into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY,
        advertise_url: None,
    }
}

/// A candidate that runs until its handle is dropped or released.
struct Candidate {
    handle: Option<LeaderHandle>,
    flag: Arc<AtomicBool>,
    /// Kept so the elector's shutdown channel stays open.
    _shutdown: watch::Sender<bool>,
}

fn candidate(client: kube::Client, identity: &str, lease_name: &str) -> Candidate {
    let (tx, rx) = watch::channel(false);
    let handle = lease::spawn(client, config(identity, lease_name), rx);
    Candidate {
        flag: handle.leading_flag(),
        handle: Some(handle),
        _shutdown: tx,
    }
}

impl Candidate {
    fn handle(&self) -> &LeaderHandle {
        self.handle.as_ref().expect("still running")
    }

    fn leads(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Stops it as a crash would: no release.
    fn crash(&mut self) {
        self.handle = None;
    }
}

/// Samples the candidates' flags every few milliseconds and keeps the most that ever led at
/// once.
struct Monitor {
    most: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn monitor(flags: Vec<Arc<AtomicBool>>) -> Monitor {
    let most = Arc::new(AtomicUsize::new(0));
    let m = most.clone();
    let task = tokio::spawn(async move {
        loop {
            let now = flags.iter().filter(|f| f.load(Ordering::SeqCst)).count();
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    Monitor { most, task }
}

impl Monitor {
    fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within {within:?}");
}

async fn kubectl_json(k: &Kubectl, args: &[&str]) -> Value {
    let (bin, kubeconfig, cache) = (
        k.bin.clone(),
        k.kubeconfig.clone(),
        k.cache.path().to_path_buf(),
    );
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(&args)
            .args(["-o", "json"])
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("kubectl printed JSON")
    })
    .await
    .expect("kubectl ran")
}

async fn lease_spec(k: &Kubectl, name: &str) -> Value {
    kubectl_json(k, &["get", "lease", "-n", "fleetdeck", name]).await["spec"].clone()
}

fn is_micro_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    let b = s.as_bytes();
    s.len() == 27
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s.ends_with('Z')
        && s[20..26].bytes().all(|c| c.is_ascii_digit())
}

// ---- election ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_two_candidates_leads_and_a_crashed_leader_is_replaced_once_its_lease_runs_out() {
    let (sim, k) = start_sim();
    let mut a = candidate(client(&sim, None).await, "replica-a", "crash");
    let mut b = candidate(client(&sim, None).await, "replica-b", "crash");
    let watch = monitor(vec![a.flag.clone(), b.flag.clone()]);

    until("a leader", Duration::from_secs(5), || {
        a.leads() || b.leads()
    })
    .await;
    // Several renew periods later there is still exactly one, and both know who.
    tokio::time::sleep(4 * RETRY).await;
    let (leader, follower) = if a.leads() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(leader.leads() && !follower.leads());
    let leader_id = leader.handle().identity().to_string();
    assert_eq!(
        leader.handle().holder().as_deref(),
        Some(leader_id.as_str())
    );
    assert_eq!(
        follower.handle().holder().as_deref(),
        Some(leader_id.as_str())
    );

    let spec = lease_spec(&k, "crash").await;
    assert_eq!(spec["holderIdentity"], leader_id.as_str(), "{spec}");
    assert_eq!(spec["leaseDurationSeconds"], 3, "{spec}");
    assert_eq!(spec["leaseTransitions"], 0, "{spec}");
    assert!(is_micro_time(&spec["renewTime"]), "{spec}");
    assert!(is_micro_time(&spec["acquireTime"]), "{spec}");

    leader.crash();
    let took = until("the follower to take over", Duration::from_secs(8), || {
        follower.leads()
    })
    .await;
    // It waited for the lease to run out (from the last renew it saw, which was at most a
    // retry before the crash), and took it at its next retry after that.
    assert!(
        took >= LEASE - 2 * RETRY && took <= LEASE + 3 * RETRY,
        "took over after {took:?}"
    );
    let spec = lease_spec(&k, "crash").await;
    let follower_id = follower.handle().identity().to_string();
    assert_eq!(spec["holderIdentity"], follower_id.as_str(), "{spec}");
    assert_eq!(spec["leaseTransitions"], 1, "{spec}");
    assert_eq!(watch.most_at_once(), 1, "two candidates led at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_lease_is_taken_over_at_the_followers_next_retry() {
    let (sim, k) = start_sim();
    let a = candidate(client(&sim, None).await, "replica-a", "release");
    until("a to lead", Duration::from_secs(5), || a.leads()).await;
    let b = candidate(client(&sim, None).await, "replica-b", "release");
    let watch = monitor(vec![a.flag.clone(), b.flag.clone()]);
    let mut b_watch = b.handle().watch();
    until("b to see a", Duration::from_secs(3), || {
        b.handle().holder().as_deref() == Some("replica-a")
    })
    .await;
    assert!(!b.leads());

    let start = Instant::now();
    assert!(a.handle().release().await, "a held the lease");
    assert!(!a.leads());
    tokio::time::timeout(Duration::from_secs(3), b_watch.wait_for(|l| *l))
        .await
        .expect("b leads")
        .expect("b's elector runs");
    let took = start.elapsed();
    // A retry (plus its jitter), not the 3 s lease.
    assert!(
        took < Duration::from_millis(1500),
        "took over after {took:?}"
    );

    let spec = lease_spec(&k, "release").await;
    assert_eq!(spec["holderIdentity"], "replica-b", "{spec}");
    assert_eq!(spec["leaseTransitions"], 1, "{spec}");
    assert_eq!(watch.most_at_once(), 1, "two candidates led at once");
    // Releasing again, or releasing what another holds, writes nothing.
    assert!(!a.handle().release().await);
}

// ---- fencing -------------------------------------------------------------------------------

/// A TCP proxy in front of the sim that can be cut: open connections are dropped and new ones
/// are accepted but never answered, as when a network partition swallows packets.
struct Proxy {
    url: String,
    cut: watch::Sender<bool>,
}

async fn proxy(upstream: &str) -> Proxy {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut swallowed = Vec::new();
        loop {
            let Ok((mut down, _)) = listener.accept().await else {
                return;
            };
            if *cut_rx.borrow() {
                swallowed.push(down);
                continue;
            }
            let upstream = upstream.clone();
            let mut cut_rx = cut_rx.clone();
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(&upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                    _ = cut_rx.wait_for(|c| *c) => {}
                }
            });
        }
    });
    Proxy { url, cut }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_the_api_stops_leading_before_its_lease_can_run_out() {
    let (sim, k) = start_sim();
    let p = proxy(&sim.kube_url(0)).await;
    let a = candidate(
        client(&sim, Some(p.url.clone())).await,
        "replica-a",
        "fence",
    );
    until("a to lead", Duration::from_secs(5), || a.leads()).await;
    let b = candidate(client(&sim, None).await, "replica-b", "fence");
    let watch = monitor(vec![a.flag.clone(), b.flag.clone()]);
    until("b to see a", Duration::from_secs(3), || {
        b.handle().holder().as_deref() == Some("replica-a")
    })
    .await;

    p.cut.send_replace(true);
    let fenced = until("a to stop leading", Duration::from_secs(5), || !a.leads()).await;
    // Its last successful renew was sent at most a retry before the cut.
    assert!(
        fenced <= RENEW_DEADLINE + RETRY / 2,
        "fenced after {fenced:?}"
    );
    assert!(
        !b.leads(),
        "b took over before a's lease could have run out"
    );

    let took = until("b to take over", Duration::from_secs(6), || b.leads()).await;
    assert!(
        fenced + took >= LEASE - 2 * RETRY,
        "b took over {:?} after the cut",
        fenced + took
    );
    assert_eq!(watch.most_at_once(), 1, "two candidates led at once");
    let spec = lease_spec(&k, "fence").await;
    assert_eq!(spec["holderIdentity"], "replica-b", "{spec}");

    // Back on the network, a sees b holding the lease and stays a follower.
    p.cut.send_replace(false);
    until("a to see b", Duration::from_secs(5), || {
        a.handle().holder().as_deref() == Some("replica-b")
    })
    .await;
    tokio::time::sleep(2 * RETRY).await;
    assert!(!a.leads() && b.leads());
    assert_eq!(watch.most_at_once(), 1, "two candidates led at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_flaky_api_server_there_is_never_more_than_one_leader() {
    let (sim, _k) = start_sim();
    let a = candidate(client(&sim, None).await, "replica-a", "flaky");
    let b = candidate(client(&sim, None).await, "replica-b", "flaky");
    let c = candidate(client(&sim, None).await, "replica-c", "flaky");
    let watch = monitor(vec![a.flag.clone(), b.flag.clone(), c.flag.clone()]);
    until("a leader", Duration::from_secs(5), || {
        a.leads() || b.leads() || c.leads()
    })
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/scenarios/api-flaky", sim.control()))
        .send()
        .await
        .expect("the control address answers");
    assert!(resp.status().is_success(), "inject api-flaky: {resp:?}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(watch.most_at_once(), 1, "two candidates led at once");
    let counters: Value = reqwest::Client::new()
        .get(format!("{}/counters", sim.control()))
        .send()
        .await
        .expect("the control address answers")
        .json()
        .await
        .expect("counters are JSON");
    let cluster = sim.desc["clusters"][0]["name"].as_str().expect("a cluster");
    let failed = counters["clusters"][cluster]["injected_failures"].as_u64();
    assert!(failed > Some(0), "the sim failed no request: {counters}");
}

// ---- events --------------------------------------------------------------------------------

fn entry(seq: u64, kind: EntryKind, subject: Subject, summary: &str) -> Entry {
    let mut e = NewEntry::new(
        kind,
        Actor::Runbook("gpu-xid".into()),
        Origin::Headless,
        summary,
    );
    e.subject = Some(subject);
    Entry {
        seq,
        recorded_at: e.occurred_at,
        entry: e,
    }
}

fn subject(node: Option<&str>, namespace: Option<&str>, object: Option<&str>) -> Subject {
    Subject {
        cluster: "sim-a".into(),
        node: node.map(Into::into),
        gpu: None,
        endpoint: None,
        namespace: namespace.map(Into::into),
        object: object.map(Into::into),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeline_entries_become_events_that_kubectl_lists_on_their_object() {
    let (sim, k) = start_sim();
    let client = client(&sim, None).await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("nodes");
    let node = nodes.items[0].metadata.name.clone().expect("a node name");

    let mut drain = entry(
        7,
        EntryKind::Action,
        subject(Some(&node), None, None),
        &format!("drain {node}: refused by PodDisruptionBudget serving/llama"),
    );
    drain.entry.verdict = Some(Verdict::Refused);
    drain.entry.detail.insert("action".into(), "drain".into());
    drain
        .entry
        .detail
        .insert("outcome".into(), "refused".into());
    events::record(&client, &drain, "replica-a")
        .await
        .expect("recorded");
    // The same entry again (a retry) is already there.
    events::record(&client, &drain, "replica-a")
        .await
        .expect("recorded again");

    let listed = kubectl_json(
        &k,
        &[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            &format!("involvedObject.name={node}"),
        ],
    )
    .await;
    let ours: Vec<&Value> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["reason"] == "FleetdeckAction")
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    let ev = ours[0];
    assert_eq!(ev["type"], "Warning", "{ev}");
    assert_eq!(ev["involvedObject"]["kind"], "Node", "{ev}");
    assert_eq!(ev["involvedObject"]["name"], node.as_str(), "{ev}");
    assert_eq!(ev["source"]["component"], "fleetdeck", "{ev}");
    assert_eq!(ev["reportingComponent"], "fleetdeck.dev/headless", "{ev}");
    assert_eq!(ev["reportingInstance"], "replica-a", "{ev}");
    assert_eq!(ev["action"], "drain", "{ev}");
    assert_eq!(ev["count"], 1, "{ev}");
    assert!(
        ev["message"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("drain {node}: refused")),
        "{ev}"
    );
    assert!(is_micro_time(&ev["eventTime"]), "{ev}");

    // A pod's entry lands in the pod's namespace, with the pod's uid (kubectl describe
    // searches by it).
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("pods");
    let pod = &pods.items[0];
    let (ns, name) = (
        pod.metadata.namespace.clone().expect("namespace"),
        pod.metadata.name.clone().expect("name"),
    );
    let signal = entry(
        8,
        EntryKind::Signal,
        subject(None, Some(&ns), Some(&format!("pod/{name}"))),
        "pod waits for GPUs",
    );
    events::record(&client, &signal, "replica-a")
        .await
        .expect("recorded");
    let listed = kubectl_json(
        &k,
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            &format!("involvedObject.name={name},reason=FleetdeckSignal"),
        ],
    )
    .await;
    let ev = &listed["items"][0];
    assert_eq!(ev["type"], "Normal", "{listed}");
    assert_eq!(ev["involvedObject"]["kind"], "Pod", "{ev}");
    assert_eq!(ev["involvedObject"]["namespace"], ns.as_str(), "{ev}");
    assert_eq!(
        ev["involvedObject"]["uid"].as_str(),
        pod.metadata.uid.as_deref(),
        "{ev}"
    );

    // No Kubernetes object, no event.
    let slo = entry(
        9,
        EntryKind::Signal,
        subject(None, Some("serving"), Some("slo/availability")),
        "burn",
    );
    events::record(&client, &slo, "replica-a")
        .await
        .expect("skipped");
}

#[test]
fn the_executors_own_decisions_become_events_on_the_runs_node_through_the_outbox() {
    const TOKEN: &str = "test-token-decision-events-0123456789";
    let sim = Sim::start(&["--clusters", "1", "--nodes", "4"]);
    let k = Kubectl::new(KUBECTL, &sim);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let daemon = common::headless::Replica::start_on(
        &sim,
        &config,
        "replica-a",
        TOKEN,
        &["--mode", "approve"],
        &store,
    );
    common::wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });
    let r = common::http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    // "runbook … started" and "approval N requested": each an Event on the run's node.
    let decisions = || -> Vec<Value> {
        let listed = k.json(&["get", "events", "-n", "default"]);
        listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "FleetdeckDecision")
            .cloned()
            .collect()
    };
    let has = |events: &[Value], needle: &str| {
        events.iter().any(|e| {
            e["involvedObject"]["kind"] == "Node"
                && e["message"].as_str().unwrap_or("").contains(needle)
        })
    };
    common::wait_until(
        "the run's start and its approval request are Events on its node",
        Duration::from_secs(60),
        || {
            let d = decisions();
            has(&d, "runbook gpu-xid-cordon started") && has(&d, "requested")
        },
    );
    let d = decisions();
    let waiting = d
        .iter()
        .find(|e| e["message"].as_str().unwrap_or("").contains("requested"))
        .unwrap();
    assert!(
        waiting["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("approval "),
        "{waiting}"
    );
    assert_eq!(waiting["reportingInstance"], "replica-a", "{waiting}");
    // The daemon sends Events only from its outbox: what was sent is no longer owed.
    drop(daemon);
    let store = fleetdeck::store::Store::open(&store).unwrap();
    let sent_starts = store
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == fleetdeck::store::OutboxKind::Event && r.is_owed())
        .filter_map(|r| store.entry(r.body["seq"].as_u64()?).ok().flatten())
        .filter(|e| e.entry.summary.contains("runbook gpu-xid-cordon started"))
        .count();
    assert_eq!(
        sent_starts, 0,
        "a start's Event still owed after it was listed"
    );
}
