//! The detectors against `fleetdeck sim` over real HTTP: the Kubernetes, DCGM and endpoint
//! sources feed `state::spawn_fleet` as the cockpit wires them, each scenario is injected on
//! the sim's control address, and `Detectors` evaluated on the published snapshots must
//! produce the matching signals.
//!
//! Sources poll every 500 ms (endpoints every 250 ms) and the SRE workbook's burn windows are
//! scaled by 1/120 (1 h → 30 s, 5 m → 2.5 s; thresholds unchanged), as in
//! `tests/endpoint_sources.rs`. Tests about endpoints and node readiness take the detectors'
//! thresholds without their `for` and `clear_after` ([`immediate`]). Production uses the real
//! intervals, windows and patience.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::Sim;
use fleetdeck::cli::wiring::evaluate_endpoints;
use fleetdeck::model::Snapshot;
use fleetdeck::model::endpoint::{
    EndpointConfig, EndpointHealth, EndpointModel, EndpointProtocol, LatencyPercentile, LatencySlo,
    ServingObject, SloConfig,
};
use fleetdeck::model::signal::{Severity, Signal};
use fleetdeck::signals::slo::{BurnPolicy, EndpointWindows};
use fleetdeck::signals::{Detectors, Thresholds};
use fleetdeck::sources::Update;
use fleetdeck::sources::dcgm::spawn_dcgm;
use fleetdeck::sources::endpoints::{EndpointPollOptions, spawn_endpoints_with};
use fleetdeck::sources::kube::{spawn_cluster, targets};
use fleetdeck::state::{ClusterInfo, FleetState, spawn_fleet};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// Only a deadline: the signals themselves come within a few seconds.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

/// A sim with one cluster and the cockpit's sources wired to it.
struct Cockpit {
    sim: Sim,
    cluster: String,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    detectors: Detectors,
}

impl Cockpit {
    /// Starts a 12-node sim and wires kube + DCGM (+ `endpoints`) into `spawn_fleet`, the way
    /// `fleetdeck snapshot` does.
    fn start(thresholds: Thresholds, endpoints: impl FnOnce(&Sim) -> Vec<EndpointConfig>) -> Self {
        let sim = tokio::task::block_in_place(|| {
            Sim::start(&["--clusters", "1", "--nodes", "12", "--seed", "7"])
        });
        let endpoints = endpoints(&sim);
        let targets = targets(Some(&sim.kubeconfig), &[]).expect("the sim's kubeconfig");
        assert_eq!(targets.len(), 1, "one cluster, one context");
        let cluster = targets[0].context.clone();
        let infos = targets
            .iter()
            .map(|t| ClusterInfo {
                name: t.context.clone(),
                server: t.server.clone(),
            })
            .collect();

        let (tx, rx) = mpsc::channel(4096);
        let snapshots = spawn_fleet(FleetState::with_endpoints(infos, &endpoints), rx);
        for (i, t) in targets.into_iter().enumerate() {
            spawn_cluster(i, t, Default::default(), tx.clone());
        }

        let dcgm = sim.desc["dcgm"][0].as_str().expect("dcgm url").to_string();
        let (gtx, mut grx) = mpsc::channel(64);
        spawn_dcgm(vec![(cluster.clone(), dcgm)], POLL, gtx);
        let gpu_tx = tx.clone();
        tokio::spawn(async move {
            while let Some(u) = grx.recv().await {
                if gpu_tx.send(Update::Gpu(Box::new(u))).await.is_err() {
                    break;
                }
            }
        });

        if !endpoints.is_empty() {
            let (etx, erx) = mpsc::channel(64);
            let windows = EndpointWindows::new(&endpoints, fast_burn_policy());
            spawn_endpoints_with(endpoints, fast_endpoint_polls(), etx);
            let mut erx = evaluate_endpoints(erx, windows);
            tokio::spawn(async move {
                while let Some(u) = erx.recv().await {
                    if tx.send(Update::Endpoint(Box::new(u))).await.is_err() {
                        break;
                    }
                }
            });
        }

        Cockpit {
            sim,
            cluster,
            snapshots,
            detectors: Detectors::new(thresholds),
        }
    }

    /// Evaluates the detectors on each new snapshot (and at least every poll, so thresholds on
    /// time can pass) until `want` holds; answers that evaluation and its snapshot.
    async fn until(
        &mut self,
        what: &str,
        mut want: impl FnMut(&Snapshot, &[Signal]) -> bool,
    ) -> (Arc<Snapshot>, Vec<Signal>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let snap = self.snapshots.borrow_and_update().clone();
            let signals = self.detectors.evaluate(&snap, Utc::now());
            if want(&snap, &signals) {
                return (snap, signals);
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {what}; last signals: {signals:#?}");
            }
            let _ = tokio::time::timeout(POLL, self.snapshots.changed()).await;
        }
    }

    /// Injects scenario `name?query` and answers the sim's record of it.
    async fn inject(&self, name_and_query: &str) -> Value {
        control(&self.sim, reqwest::Method::POST, name_and_query).await
    }

    async fn clear(&self, name: &str) -> Value {
        control(&self.sim, reqwest::Method::DELETE, name).await
    }
}

async fn control(sim: &Sim, method: reqwest::Method, path: &str) -> Value {
    let url = format!("{}/scenarios/{path}", sim.control());
    let r = reqwest::Client::new()
        .request(method.clone(), &url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    assert!(status.is_success(), "{method} {url}: {status} {body}");
    body
}

async fn kube_get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    let url = format!("{base}{path}");
    let r = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The default thresholds without `[signals.for]` and `[signals.clear_after]`: these tests are
/// about which conditions the detectors see, over seconds; the patience has its own unit tests.
fn immediate() -> Thresholds {
    Thresholds::default().without_patience()
}

fn fast_endpoint_polls() -> EndpointPollOptions {
    EndpointPollOptions {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(5),
        metrics_window: Duration::from_secs(5),
    }
}

fn fast_burn_policy() -> BurnPolicy {
    BurnPolicy::sre_workbook().scaled(1.0 / 120.0)
}

fn llama_chat(sim: &Sim) -> Vec<EndpointConfig> {
    let cluster = sim.desc["clusters"][0]["context"]
        .as_str()
        .expect("context")
        .to_string();
    vec![EndpointConfig {
        name: "llama-chat".into(),
        url: sim.endpoint("llama-chat"),
        protocol: EndpointProtocol::Vllm,
        model: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
        metrics_url: None,
        serving: Some(ServingObject {
            cluster,
            namespace: "serving".into(),
            kind: "Deployment".into(),
            name: "llama-chat".into(),
        }),
        slo: SloConfig {
            latency: Some(LatencySlo {
                percentile: LatencyPercentile::P99,
                target_ms: 2500.0,
            }),
            availability: Some(0.999),
        },
        drift: None,
        registry: None,
        vector: None,
        ingestion: None,
    }]
}

fn no_endpoints(_: &Sim) -> Vec<EndpointConfig> {
    Vec::new()
}

fn of_kind<'a>(signals: &'a [Signal], kind: &'a str) -> impl Iterator<Item = &'a Signal> + 'a {
    signals.iter().filter(move |s| s.kind == kind)
}

fn on_node<'a>(signals: &'a [Signal], kind: &'a str, node: &'a str) -> Vec<&'a Signal> {
    of_kind(signals, kind)
        .filter(|s| s.subject.node.as_deref() == Some(node))
        .collect()
}

fn on_endpoint<'a>(signals: &'a [Signal], kind: &'a str) -> Vec<&'a Signal> {
    of_kind(signals, kind)
        .filter(|s| s.subject.endpoint.as_deref() == Some("llama-chat"))
        .collect()
}

fn llama(snap: &Snapshot) -> &EndpointModel {
    snap.endpoints
        .iter()
        .find(|e| e.name == "llama-chat")
        .expect("llama-chat is configured")
}

fn detail_str(reply: &Value, key: &str) -> String {
    reply["detail"][key]
        .as_str()
        .unwrap_or_else(|| panic!("the scenario's reply names its {key}: {reply}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xid_storm_raises_xid_signals_on_exactly_that_nodes_gpus_with_the_tables_severities() {
    let mut cockpit = Cockpit::start(Thresholds::default(), no_endpoints);
    cockpit
        .until("the first GPU picture", |snap, _| !snap.gpus.is_empty())
        .await;

    let reply = cockpit.inject("xid-storm").await;
    let node = detail_str(&reply, "node");
    let injected: BTreeSet<(u32, u64)> = reply["detail"]["xids"]
        .as_array()
        .expect("the storm lists its XIDs")
        .iter()
        .map(|x| {
            (
                x["gpu"].as_u64().expect("gpu") as u32,
                x["xid"].as_u64().expect("xid"),
            )
        })
        .collect();
    assert!(!injected.is_empty(), "{reply}");

    let (snap, signals) = cockpit
        .until("XID signals on the stormed node", |_, s| {
            !on_node(s, "gpu.xid", &node).is_empty()
        })
        .await;
    let index_of: BTreeMap<&str, u32> = snap
        .gpus
        .iter()
        .filter(|g| g.node == node)
        .map(|g| (g.uuid.as_str(), g.index))
        .collect();
    let gpu_index = |s: &Signal| -> u32 {
        let uuid = s.evidence["uuid"]
            .as_str()
            .expect("evidence names the uuid");
        *index_of
            .get(uuid)
            .unwrap_or_else(|| panic!("{uuid} is not a GPU of {node}"))
    };

    let xids = on_node(&signals, "gpu.xid", &node);
    let seen: BTreeSet<(u32, u64)> = xids
        .iter()
        .map(|s| (gpu_index(s), s.evidence["xid"].as_u64().expect("xid")))
        .collect();
    assert_eq!(seen, injected, "one XID signal per stormed GPU");
    for s in &xids {
        assert_eq!(s.subject.cluster, cockpit.cluster);
        let expected = match s.evidence["xid"].as_u64() {
            Some(79) | Some(48) => Severity::Critical,
            Some(94) => Severity::Warning,
            other => panic!("the storm injects 79, 48 and 94, not {other:?}: {s:#?}"),
        };
        assert_eq!(s.severity, expected, "{}", s.summary);
        assert!(s.action.is_some(), "the table's action: {s:#?}");
    }

    let dbe: BTreeSet<u32> = injected
        .iter()
        .filter(|(_, x)| *x == 48)
        .map(|(g, _)| *g)
        .collect();
    let ecc = on_node(&signals, "gpu.ecc", &node);
    assert!(
        ecc.iter().all(|s| s.severity == Severity::Critical),
        "{ecc:#?}"
    );
    let ecc_gpus: BTreeSet<u32> = ecc.iter().map(|s| gpu_index(s)).collect();
    assert_eq!(ecc_gpus, dbe, "a double-bit ECC signal on each XID 48 GPU");

    let elsewhere: Vec<&Signal> = signals
        .iter()
        .filter(|s| s.kind == "gpu.xid" || s.kind == "gpu.ecc")
        .filter(|s| s.subject.node.as_deref() != Some(node.as_str()))
        .collect();
    assert!(elsewhere.is_empty(), "only {node} is hit: {elsewhere:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_interruption_raises_a_notice_with_its_deadline_until_the_node_is_gone() {
    let mut cockpit = Cockpit::start(Thresholds::default(), no_endpoints);
    cockpit
        .until("the cluster to sync", |snap, _| {
            snap.clusters.iter().all(|c| c.synced())
        })
        .await;

    let reply = cockpit.inject("spot-interruption?deadline_seconds=3").await;
    let node = detail_str(&reply, "node");

    let (_, signals) = cockpit
        .until("an interruption notice dated by its event", |_, s| {
            // The taint and the notice event arrive on separate watches, in either order.
            on_node(s, "node.interruption_notice", &node)
                .iter()
                .any(|n| n.evidence["deadline_source"] == json!("notice event"))
        })
        .await;
    let notices = on_node(&signals, "node.interruption_notice", &node);
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let notice = notices[0];
    assert_eq!(notice.severity, Severity::Critical);
    assert_eq!(notice.subject.cluster, cockpit.cluster);
    assert_eq!(
        notice.evidence["taint"],
        json!("aws-node-termination-handler/spot-itn")
    );
    let at = |key: &str| -> chrono::DateTime<Utc> {
        serde_json::from_value(notice.evidence[key].clone())
            .unwrap_or_else(|e| panic!("evidence {key} is a time: {e}: {notice:#?}"))
    };
    // The sim's notice event states the deadline (3 s here, not AWS's usual two minutes).
    assert_eq!(notice.evidence["deadline_source"], json!("notice event"));
    let window = (at("deadline") - at("noticed")).num_seconds();
    assert!(
        (2..=3).contains(&window),
        "{window}s from notice to deadline"
    );
    let left = notice.evidence["seconds_left"]
        .as_i64()
        .expect("seconds_left");
    assert!(left <= 3, "{left}s left");
    assert_eq!(notice.first_seen, at("noticed"));

    cockpit
        .until("the notice to go with the node", |snap, s| {
            let gone = snap
                .clusters
                .iter()
                .all(|c| c.nodes.iter().all(|n| n.name != node));
            gone && on_node(s, "node.interruption_notice", &node).is_empty()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_notready_past_the_threshold_raises_node_not_ready_on_that_node() {
    let thresholds = Thresholds {
        node_not_ready_after: Duration::from_secs(1),
        ..immediate()
    };
    let mut cockpit = Cockpit::start(thresholds, no_endpoints);
    let (_, before) = cockpit
        .until("the cluster to sync", |snap, _| {
            snap.clusters.iter().all(|c| c.synced())
        })
        .await;
    assert_eq!(of_kind(&before, "node.not_ready").count(), 0, "{before:#?}");

    let reply = cockpit.inject("node-notready").await;
    let node = detail_str(&reply, "node");

    let (_, signals) = cockpit
        .until("node.not_ready on the failed node", |_, s| {
            !on_node(s, "node.not_ready", &node).is_empty()
        })
        .await;
    let not_ready = on_node(&signals, "node.not_ready", &node);
    assert_eq!(not_ready.len(), 1, "{not_ready:#?}");
    let s = not_ready[0];
    assert_eq!(s.severity, Severity::Critical);
    assert_eq!(s.subject.cluster, cockpit.cluster);
    assert_eq!(s.evidence["readiness"], json!("Unknown"));
    assert!(
        s.evidence["seconds"].as_i64().is_some_and(|x| x >= 1),
        "{s:#?}"
    );
    assert_eq!(
        s.dedup_key,
        format!("node.not_ready:{}/{node}", cockpit.cluster)
    );
    assert_eq!(
        of_kind(&signals, "node.not_ready").count(),
        1,
        "only {node}: {signals:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rollout_pages_on_fast_burn_for_that_endpoint_and_a_rollback_heals_it() {
    let mut cockpit = Cockpit::start(immediate(), llama_chat);
    // No "no burn before" check: with windows scaled down to seconds, one of the healthy
    // sim's rare (0.05 %) errors among the first requests can already page.
    cockpit
        .until("a healthy llama-chat with traffic", |snap, _| {
            let e = llama(snap);
            e.health == EndpointHealth::Healthy
                && e.metrics.as_ref().is_some_and(|m| m.requests >= 5.0)
        })
        .await;

    let kube = cockpit.sim.kube_url(0);
    let http = reqwest::Client::new();
    let dep_path = "/apis/apps/v1/namespaces/serving/deployments/llama-chat";
    let revision = |v: &Value| -> String {
        v["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let good_rev = revision(&kube_get(&http, &kube, dep_path).await);

    let reply = cockpit.inject("bad-rollout?endpoint=llama-chat").await;
    assert_eq!(reply["detail"]["endpoint"], "llama-chat");

    let (_, signals) = cockpit
        .until("a fast burn page on llama-chat", |_, s| {
            !on_endpoint(s, "slo.fast_burn").is_empty()
        })
        .await;
    for s in on_endpoint(&signals, "slo.fast_burn") {
        assert_eq!(s.severity, Severity::Critical);
        assert_eq!(s.subject.cluster, cockpit.cluster, "the serving cluster");
        let slo = s.evidence["slo"].as_str().expect("evidence names the SLO");
        assert!(["availability", "latency"].contains(&slo), "{s:#?}");
        assert_eq!(s.subject.object, Some(format!("slo/{slo}")));
        assert!(
            s.evidence["long_burn"].as_f64().is_some_and(|b| b >= 14.4)
                && s.evidence["short_burn"].as_f64().is_some_and(|b| b >= 14.4),
            "both windows past 14.4×: {s:#?}"
        );
    }

    // `kubectl rollout undo`: the good ReplicaSet's template, without the controller's hash.
    let sets_path = "/apis/apps/v1/namespaces/serving/replicasets?labelSelector=app%3Dllama-chat";
    let sets = kube_get(&http, &kube, sets_path).await;
    let good_rs = sets["items"]
        .as_array()
        .and_then(|items| items.iter().find(|rs| revision(rs) == good_rev))
        .unwrap_or_else(|| panic!("no ReplicaSet of revision {good_rev}: {sets}"));
    let mut template = good_rs["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let patch = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    let url = format!("{kube}{dep_path}");
    let r = http
        .patch(&url)
        .header("content-type", "application/json-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PATCH {url}: {e}"));
    assert!(r.status().is_success(), "PATCH {url}: {}", r.status());

    // The burn windows still remember the bad minutes; only the endpoint itself must heal.
    let (snap, signals) = cockpit
        .until("llama-chat healthy and hardly failing", |snap, _| {
            let e = llama(snap);
            e.health == EndpointHealth::Healthy
                && e.probe.as_ref().is_some_and(|p| p.error.is_none())
                && e.metrics
                    .as_ref()
                    .and_then(|m| m.error_rate)
                    .is_some_and(|r| r < 0.05)
        })
        .await;
    assert!(
        on_endpoint(&signals, "endpoint.down").is_empty(),
        "{signals:#?}"
    );
    assert_eq!(
        llama(&snap).probe.as_ref().and_then(|p| p.engine_alive),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_outage_is_a_critical_down_endpoint_burning_availability_until_cleared() {
    let mut cockpit = Cockpit::start(immediate(), llama_chat);
    let (_, before) = cockpit
        .until("a healthy llama-chat", |snap, _| {
            llama(snap).health == EndpointHealth::Healthy
        })
        .await;
    assert!(
        on_endpoint(&before, "endpoint.down").is_empty(),
        "{before:#?}"
    );

    cockpit.inject("endpoint-outage?endpoint=llama-chat").await;
    let (_, signals) = cockpit
        .until("llama-chat down and burning availability", |_, s| {
            !on_endpoint(s, "endpoint.down").is_empty()
                && on_endpoint(s, "slo.fast_burn")
                    .iter()
                    .any(|b| b.evidence["slo"] == "availability")
        })
        .await;
    let down = on_endpoint(&signals, "endpoint.down");
    assert_eq!(down.len(), 1, "{down:#?}");
    assert_eq!(down[0].severity, Severity::Critical);
    assert_eq!(
        down[0].subject.cluster, cockpit.cluster,
        "the serving cluster"
    );
    assert_eq!(down[0].evidence["health"], json!("dead"), "{:#?}", down[0]);
    assert!(
        down[0].evidence["error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{:#?}",
        down[0]
    );
    let burn = on_endpoint(&signals, "slo.fast_burn")
        .into_iter()
        .find(|b| b.evidence["slo"] == "availability")
        .expect("an availability burn");
    assert_eq!(burn.severity, Severity::Critical);
    assert_eq!(burn.subject.object.as_deref(), Some("slo/availability"));
    assert_eq!(burn.evidence["objective"], json!(0.999));

    cockpit.clear("endpoint-outage").await;
    cockpit
        .until("llama-chat healthy and no longer down", |snap, s| {
            llama(snap).health == EndpointHealth::Healthy
                && on_endpoint(s, "endpoint.down").is_empty()
        })
        .await;
}

/// The gang's pods as kubectl lists them: (name, phase, ready) of each pod labelled with the job.
async fn gang_pods(sim: &Sim, ns: &str, job: &str) -> Vec<(String, String, bool)> {
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .args([
                "-n",
                ns,
                "get",
                "pods",
                "-l",
                &format!("training.kubeflow.org/job-name={job}"),
                "-o",
                "json",
            ])
            .output()
            .expect("kubectl runs")
    });
    assert!(
        out.status.success(),
        "kubectl get pods: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl's JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ready,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_gang_and_a_straggling_rank_are_one_training_signal_each_until_cleared() {
    let mut cockpit = Cockpit::start(immediate(), no_endpoints);
    let (_, signals) = cockpit
        .until("the gang's GPUs in the picture", |snap, _| {
            snap.clusters.iter().any(|c| !c.gang_jobs.is_empty())
                && snap.gpus.iter().any(|g| {
                    g.holder
                        .as_ref()
                        .is_some_and(|h| h.pod.starts_with("llm-pretrain-"))
                })
        })
        .await;
    assert_eq!(
        of_kind(&signals, "training.stalled")
            .chain(of_kind(&signals, "training.straggler"))
            .count(),
        0,
        "a healthy gang raises nothing: {signals:#?}"
    );

    let reply = cockpit.inject("training-stall").await;
    let (ns, job) = (detail_str(&reply, "namespace"), detail_str(&reply, "job"));
    let (_, signals) = cockpit
        .until("training.stalled", |_, s| {
            of_kind(s, "training.stalled").count() > 0
        })
        .await;
    let stalled: Vec<&Signal> = of_kind(&signals, "training.stalled").collect();
    assert_eq!(stalled.len(), 1, "one signal for the job: {stalled:#?}");
    assert_eq!(stalled[0].severity, Severity::Critical);
    assert_eq!(
        stalled[0].subject.object.as_deref(),
        Some(format!("trainingjob/{job}").as_str())
    );
    assert_eq!(stalled[0].evidence["namespace"], json!(ns));
    let pods = gang_pods(&cockpit.sim, &ns, &job).await;
    assert!(pods.len() >= 2, "{pods:?}");
    assert!(
        pods.iter()
            .all(|(_, phase, ready)| phase == "Running" && *ready),
        "kubectl still lists every rank Running and Ready: {pods:?}"
    );
    cockpit.clear("training-stall").await;
    cockpit
        .until("the stall gone once the gang works again", |_, s| {
            of_kind(s, "training.stalled").count() == 0
        })
        .await;

    let reply = cockpit.inject("training-straggler").await;
    let (pod, node) = (detail_str(&reply, "pod"), detail_str(&reply, "node"));
    let (_, signals) = cockpit
        .until("training.straggler", |_, s| {
            of_kind(s, "training.straggler").count() > 0
        })
        .await;
    let slow: Vec<&Signal> = of_kind(&signals, "training.straggler").collect();
    assert_eq!(slow.len(), 1, "one signal for the job: {slow:#?}");
    assert_eq!(slow[0].evidence["pod"], json!(pod));
    assert_eq!(slow[0].evidence["node"], json!(node));
    // The sim's straggler runs hot: its node's thermal state is named as the cause.
    assert_eq!(
        slow[0].evidence["node_has_gpu_fault"],
        json!(true),
        "{slow:#?}"
    );
    assert!(slow[0].summary.contains("°C"), "{}", slow[0].summary);
    let rank = slow[0].evidence["rank"].as_str().unwrap_or_default();
    assert!(
        pod.ends_with(rank) && slow[0].summary.contains(rank),
        "the rank is named: {}",
        slow[0].summary
    );
    assert_eq!(of_kind(&signals, "training.stalled").count(), 0);
    assert_eq!(gang_pods(&cockpit.sim, &ns, &job).await.len(), pods.len());
    cockpit.clear("training-straggler").await;
    cockpit
        .until("the straggler gone once its rank keeps pace", |_, s| {
            of_kind(s, "training.straggler").count() == 0
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spark_application_is_one_signal_naming_its_error_and_driver_until_it_runs_again()
{
    let mut cockpit = Cockpit::start(immediate(), no_endpoints);
    let (_, signals) = cockpit
        .until("the Spark applications in the picture", |snap, _| {
            snap.clusters
                .iter()
                .any(|c| c.spark_applications.len() >= 4)
        })
        .await;
    assert_eq!(
        of_kind(&signals, "pipeline.spark_failed").count(),
        0,
        "a failed scheduled run superseded by a newer COMPLETED one raises nothing: {signals:#?}"
    );

    let reply = cockpit.inject("spark-failed").await;
    let (ns, name) = (detail_str(&reply, "namespace"), detail_str(&reply, "name"));
    let (_, signals) = cockpit
        .until("pipeline.spark_failed", |_, s| {
            of_kind(s, "pipeline.spark_failed").count() > 0
        })
        .await;
    let failed: Vec<&Signal> = of_kind(&signals, "pipeline.spark_failed").collect();
    assert_eq!(
        failed.len(),
        1,
        "one signal for the application: {failed:#?}"
    );
    assert_eq!(failed[0].severity, Severity::Warning);
    assert_eq!(failed[0].subject.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(
        failed[0].subject.object.as_deref(),
        Some(format!("sparkapplication/{name}").as_str())
    );
    assert_eq!(failed[0].evidence["state"], json!("FAILED"));
    assert_eq!(
        failed[0].evidence["driver_pod"],
        json!(detail_str(&reply, "driver"))
    );
    assert!(
        failed[0].summary.contains("OutOfMemoryError")
            && failed[0].summary.contains(&detail_str(&reply, "driver")),
        "{}",
        failed[0].summary
    );
    cockpit.clear("spark-failed").await;
    cockpit
        .until("the failure gone once the retry runs", |_, s| {
            of_kind(s, "pipeline.spark_failed").count() == 0
        })
        .await;
}
