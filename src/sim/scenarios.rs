//! Faults the sim can inject, at start (`--scenario`) or at run time (`POST /scenarios/NAME`
//! on the control address), each logged with what it did and when.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::cluster::Timer;
use super::fleet::SimFleet;
use super::resources::Kind;
use super::store::timestamp;

pub struct ScenarioDef {
    pub name: &'static str,
    pub description: &'static str,
    /// Query parameters it takes on the control address.
    pub targets: &'static [&'static str],
}

pub static SCENARIOS: &[ScenarioDef] = &[
    ScenarioDef {
        name: "xid-storm",
        description: "XID 79/48/94 (fallen off the bus, double-bit ECC, contained ECC) on the GPUs of one node, with kubelet warning events",
        targets: &["cluster", "node"],
    },
    ScenarioDef {
        name: "node-notready",
        description: "a node's kubelet stops reporting: conditions Unknown, unreachable taints, its pods no longer Ready",
        targets: &["cluster", "node"],
    },
    ScenarioDef {
        name: "spot-interruption",
        description: "a spot node gets the aws-node-termination-handler/spot-itn taint and a 2-minute notice; at the deadline the instance is gone",
        targets: &["cluster", "node", "deadline_seconds"],
    },
    ScenarioDef {
        name: "bad-rollout",
        description: "a new revision of an endpoint's Deployment that is slow and erroring; rolling back heals it",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "crashloop-rollout",
        description: "a new revision of an endpoint's Deployment whose pods crash-loop (CrashLoopBackOff); rolling back heals it",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "pdb-block",
        description: "the endpoint's PodDisruptionBudget allows no disruption, so every eviction answers 429",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "api-flaky",
        description: "a cluster's API server fails 15% of requests with 500, slows 20% by 0.5-2.5 s, and ends watches with 410",
        targets: &["cluster"],
    },
    ScenarioDef {
        name: "rbac-deny",
        description: "a cluster's RBAC refuses one resource (default poddisruptionbudgets; pods/log refuses only logs): every request for it answers 403 Forbidden",
        targets: &["cluster", "resource"],
    },
    ScenarioDef {
        name: "endpoint-outage",
        description: "an endpoint's engine dies: health checks answer 503, requests fail",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "gpu-memory-leak",
        description: "the GPU of an endpoint's first serving pod (default llama-chat's, serving/llama-chat-…, gpu of the lowest index it holds) leaks: DCGM_FI_DEV_FB_USED grows steadily from its flat ~90% to the full framebuffer in 12 minutes and stays pinned there (the engine keeps what it holds and fails requests with CUDA OOM); clearing it, or deleting the pod, returns the GPU to its flat level",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "training-stall",
        description: "a training gang (default the first running one, training/llm-pretrain) hangs: every rank's GPUs drop to 0 % utilisation with their memory held while every pod stays Running and Ready (a hung collective); clearing it restores the pace",
        targets: &["cluster"],
    },
    ScenarioDef {
        name: "training-straggler",
        description: "the GPUs of one training rank's node (default training/llm-pretrain's highest-named rank; `node` picks the rank on that node) run hot (91-93 °C, past the 87 °C thermal line) and the rank there at a fifth of the others' pace, while every pod stays Running and Ready; a rank moved off the node (cordon, restart_gang) keeps pace again; clearing it cools the node",
        targets: &["cluster", "node"],
    },
    ScenarioDef {
        name: "vector-index-stale",
        description: "a vector index's ingestion stops landing (default the docs-rag Pinecone-compatible index; `endpoint` names another store): its vector count stays flat while the ingestion Job batch/docs-embed-ingest keeps Running; clearing it resumes the writes",
        targets: &["endpoint"],
    },
    ScenarioDef {
        name: "airflow-failures",
        description: "a DAG of the sim's Airflow (default feature_build_nightly, its task build_features) fails in every run attempted from now: the task fails, the ones after it are upstream_failed; a run cleared (clearTaskInstances) after the scenario is cleared succeeds",
        targets: &["dag", "task"],
    },
    ScenarioDef {
        name: "spark-failed",
        description: "a running Spark application (default batch/nightly-etl, the first cluster's) fails: its driver pod exits 1 with a java.lang.OutOfMemoryError in its log, its executors go, the SparkApplication is FAILED with the operator's errorMessage; clearing it is the operator's retry (a new attempt, RUNNING)",
        targets: &["cluster"],
    },
];

pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

#[derive(Debug, Default, Clone)]
pub struct Target {
    pub cluster: Option<String>,
    pub node: Option<String>,
    pub endpoint: Option<String>,
    pub deadline_seconds: Option<u64>,
    pub resource: Option<String>,
    /// `airflow-failures`: the DAG and its task.
    pub dag: Option<String>,
    pub task: Option<String>,
}

impl Target {
    pub fn from_query(q: &str) -> Result<Self, String> {
        let mut t = Target::default();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            match k.as_ref() {
                "cluster" => t.cluster = Some(v.into_owned()),
                "node" => t.node = Some(v.into_owned()),
                "endpoint" => t.endpoint = Some(v.into_owned()),
                "resource" => t.resource = Some(v.into_owned()),
                "dag" => t.dag = Some(v.into_owned()),
                "task" => t.task = Some(v.into_owned()),
                "deadline_seconds" => {
                    t.deadline_seconds = Some(v.parse().map_err(|_| {
                        format!("deadline_seconds must be a whole number of seconds, not {v:?}")
                    })?)
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: scenarios take cluster, node, endpoint, deadline_seconds, resource, dag, task"
                    ));
                }
            }
        }
        Ok(t)
    }
}

fn cluster_index(fleet: &SimFleet, t: &Target, default: usize) -> Result<usize, String> {
    match &t.cluster {
        Some(name) => fleet
            .clusters
            .iter()
            .position(|c| &c.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = fleet.clusters.iter().map(|c| c.name.as_str()).collect();
                format!("no cluster {name:?}; the sim has {}", names.join(", "))
            }),
        None => Ok(default.min(fleet.clusters.len().saturating_sub(1))),
    }
}

fn endpoint_target(t: &Target) -> (String, String, String) {
    let name = t.endpoint.clone().unwrap_or_else(|| "llama-chat".into());
    let deployment = match name.as_str() {
        "ranker" => "ranker-predictor".to_string(),
        "embedder" => "embedder-predictor".to_string(),
        other => other.to_string(),
    };
    (name, "serving".into(), deployment)
}

/// Injects scenario `name`; answers the record that was logged.
pub fn inject(fleet: &SimFleet, name: &str, t: &Target) -> Result<Value, String> {
    let detail = match name {
        "xid-storm" => xid_storm(fleet, t)?,
        "node-notready" => {
            let ci = cluster_index(fleet, t, 0)?;
            let c = &fleet.clusters[ci];
            let mut st = c.lock();
            let node = match &t.node {
                Some(n) => n.clone(),
                None => st
                    .store
                    .iter_ns(Kind::Node, None)
                    .filter(|(_, s)| s.node.as_ref().is_some_and(|n| n.ready))
                    .map(|((_, n), _)| n.clone())
                    .last()
                    .ok_or("no Ready node left to fail")?,
            };
            st.mark_node_unreachable(&node)?;
            json!({"cluster": c.name, "node": node})
        }
        "spot-interruption" => spot_interruption(fleet, t)?,
        "bad-rollout" => bad_rollout(fleet, t, "bad-rollout")?,
        "crashloop-rollout" => bad_rollout(fleet, t, "crashloop")?,
        "pdb-block" => pdb_block(fleet, t)?,
        "rbac-deny" => {
            let ci = cluster_index(fleet, t, 0)?;
            let c = &fleet.clusters[ci];
            let resource = t
                .resource
                .clone()
                .unwrap_or_else(|| "poddisruptionbudgets".into());
            if resource != "pods/log"
                && !super::resources::RESOURCES
                    .iter()
                    .any(|d| d.plural == resource)
            {
                let known: Vec<&str> = super::resources::RESOURCES
                    .iter()
                    .map(|d| d.plural)
                    .collect();
                return Err(format!(
                    "no resource {resource:?}; the sim serves {} and pods/log",
                    known.join(", ")
                ));
            }
            c.lock().faults.denied.insert(resource.clone());
            json!({"cluster": c.name, "resource": resource})
        }
        "api-flaky" => {
            let ci = cluster_index(fleet, t, 0)?;
            let c = &fleet.clusters[ci];
            c.lock().faults.flaky = true;
            json!({"cluster": c.name})
        }
        "endpoint-outage" => {
            let (ep, _, _) = endpoint_target(t);
            fleet.faults_mut().endpoint_outage.insert(ep.clone());
            json!({"endpoint": ep})
        }
        "gpu-memory-leak" => gpu_memory_leak(fleet, t)?,
        "training-stall" => training_fault(fleet, t, false)?,
        "training-straggler" => training_fault(fleet, t, true)?,
        "vector-index-stale" => {
            let index = t.endpoint.clone().unwrap_or_else(|| "docs-rag".into());
            fleet.faults_mut().index_stale.insert(index.clone());
            json!({"index": index})
        }
        "airflow-failures" => {
            super::airflow::inject_failures(fleet, t.dag.as_deref(), t.task.as_deref())?
        }
        "spark-failed" => spark_failed(fleet, t)?,
        other => {
            return Err(format!(
                "unknown scenario {other:?}; known: {}",
                names().join(", ")
            ));
        }
    };
    let record = json!({"scenario": name, "at": timestamp(Utc::now()), "detail": detail});
    tracing::info!(scenario = name, detail = %record["detail"], "scenario injected");
    fleet
        .injected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record.clone());
    Ok(record)
}

/// Undoes the faults that live beside the API (a rollback or uncordon undoes the others).
pub fn clear(fleet: &SimFleet, name: &str) -> Result<Value, String> {
    match name {
        "xid-storm" => {
            let mut f = fleet.faults_mut();
            f.xid.clear();
            f.ecc.clear();
        }
        "rbac-deny" => {
            for c in &fleet.clusters {
                c.lock().faults.denied.clear();
            }
        }
        "api-flaky" => {
            for c in &fleet.clusters {
                c.lock().faults.flaky = false;
            }
        }
        "endpoint-outage" => fleet.faults_mut().endpoint_outage.clear(),
        "gpu-memory-leak" => fleet.faults_mut().memory_leak = None,
        "training-stall" | "training-straggler" => fleet.faults_mut().training = None,
        "vector-index-stale" => fleet.faults_mut().index_stale.clear(),
        "airflow-failures" => super::airflow::clear_failures(fleet),
        "spark-failed" => spark_retry(fleet)?,
        n if names().contains(&n) => {
            return Err(format!(
                "{n} changed Kubernetes objects; undo it through the API (uncordon, rollback, edit the PDB)"
            ));
        }
        other => {
            return Err(format!(
                "unknown scenario {other:?}; known: {}",
                names().join(", ")
            ));
        }
    }
    let record = json!({"scenario": name, "cleared": timestamp(Utc::now())});
    tracing::info!(scenario = name, "scenario cleared");
    fleet
        .injected
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record.clone());
    Ok(record)
}

const XID_TEXT: [(u32, &str); 3] = [
    (79, "GPU has fallen off the bus"),
    (48, "Double Bit ECC Error"),
    (94, "Contained ECC error"),
];

fn xid_storm(fleet: &SimFleet, t: &Target) -> Result<Value, String> {
    let ci = cluster_index(fleet, t, 0)?;
    let c = &fleet.clusters[ci];
    let mut st = c.lock();
    let node = match &t.node {
        Some(n) => n.clone(),
        None => {
            // The busiest GPU node: where an XID storm hurts.
            let mut best: Option<(u32, String)> = None;
            for ((_, n), s) in st.store.iter_ns(Kind::Node, None) {
                let Some(info) = &s.node else { continue };
                let used = st.store.usage.get(n).map_or(0, |u| u.gpus);
                if info.gpu_allocatable > 0
                    && info.ready
                    && best.as_ref().is_none_or(|(b, _)| used > *b)
                {
                    best = Some((used, n.clone()));
                }
            }
            best.map(|(_, n)| n)
                .ok_or("the cluster has no Ready GPU node")?
        }
    };
    let nv = st
        .store
        .get_value(Kind::Node, "", &node)
        .ok_or_else(|| format!("node {node} not found in cluster {}", c.name))?;
    let gpus = nv["status"]["capacity"]["nvidia.com/gpu"]
        .as_str()
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or(0);
    if gpus == 0 {
        return Err(format!("node {node} has no GPUs"));
    }
    let hit: Vec<(u32, u32)> = (0..gpus.div_ceil(2))
        .map(|i| (i, XID_TEXT[(i as usize) % 3].0))
        .collect();
    for (gpu, code) in &hit {
        let text = XID_TEXT
            .iter()
            .find(|(c, _)| c == code)
            .map_or("", |(_, t)| *t);
        st.record_event(
            &nv,
            "Warning",
            "GPUXidError",
            &format!(
                "NVRM: Xid (PCI:0000:{:02x}:00): {code}, GPU {gpu}: {text}",
                0x18 + gpu * 0x10
            ),
            "nvidia-device-plugin",
        );
    }
    drop(st);
    let mut f = fleet.faults_mut();
    f.xid.insert((c.name.clone(), node.clone()), hit.clone());
    f.ecc.insert(
        (c.name.clone(), node.clone()),
        hit.iter()
            .filter(|(_, x)| *x == 48)
            .map(|(g, _)| *g)
            .collect(),
    );
    Ok(
        json!({"cluster": c.name, "node": node, "xids": hit.iter().map(|(g, x)| json!({"gpu": g, "xid": x})).collect::<Vec<_>>()}),
    )
}

fn spot_interruption(fleet: &SimFleet, t: &Target) -> Result<Value, String> {
    let ci = cluster_index(fleet, t, 0)?;
    let c = &fleet.clusters[ci];
    let mut st = c.lock();
    let node = match &t.node {
        Some(n) => n.clone(),
        None => st
            .store
            .iter_ns(Kind::Node, None)
            .find(|(_, s)| {
                super::fleet::capacity_type(&s.labels) == super::view::CapacityType::Spot
                    && s.node.as_ref().is_some_and(|n| n.ready && !n.unschedulable)
                    && !s.node.as_ref().is_some_and(|n| {
                        n.taints
                            .iter()
                            .any(|(k, _, _)| k == "aws-node-termination-handler/spot-itn")
                    })
            })
            .map(|((_, n), _)| n.clone())
            .ok_or_else(|| format!("cluster {} has no schedulable spot node left", c.name))?,
    };
    let mut nv = st
        .store
        .get_value(Kind::Node, "", &node)
        .ok_or_else(|| format!("node {node} not found in cluster {}", c.name))?;
    let secs = t.deadline_seconds.unwrap_or(120);
    let deadline = Utc::now() + chrono::Duration::seconds(secs as i64);
    let mut taints = nv["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let event_id = format!("spot-itn-{:x}", st.store.rv);
    taints.push(json!({"key": "aws-node-termination-handler/spot-itn", "value": event_id, "effect": "NoSchedule"}));
    nv["spec"]["taints"] = json!(taints);
    nv["metadata"]["annotations"]["sim.fleetdeck.dev/termination-deadline"] =
        json!(timestamp(deadline));
    let nv = st.store.replace(Kind::Node, nv);
    let instance = nv["spec"]["providerID"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("")
        .to_string();
    st.record_event(&nv, "Warning", "SpotInterruption", &format!("Spot Interruption notice for instance {instance} was sent at {}: instance will be terminated at {}", timestamp(Utc::now()), timestamp(deadline)), "aws-node-termination-handler");
    st.timers.push((
        Instant::now() + Duration::from_secs(secs),
        Timer::NodeTerminate { node: node.clone() },
    ));
    Ok(
        json!({"cluster": c.name, "node": node, "deadline": timestamp(deadline), "taint": "aws-node-termination-handler/spot-itn"}),
    )
}

fn find_deployment(fleet: &SimFleet, ns: &str, name: &str) -> Result<usize, String> {
    fleet
        .clusters
        .iter()
        .position(|c| c.lock().store.get(Kind::Deployment, ns, name).is_some())
        .ok_or_else(|| format!("no cluster serves deployment {ns}/{name}"))
}

/// A new revision of the endpoint's Deployment carrying `fault` (`bad-rollout`: slow and
/// erroring; `crashloop`: its containers crash on start).
fn bad_rollout(fleet: &SimFleet, t: &Target, fault: &str) -> Result<Value, String> {
    let (ep, ns, dep_name) = endpoint_target(t);
    let ci = find_deployment(fleet, &ns, &dep_name)?;
    let c = &fleet.clusters[ci];
    let mut st = c.lock();
    let mut dep = st
        .store
        .get_value(Kind::Deployment, &ns, &dep_name)
        .ok_or("deployment vanished")?;
    let image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let base = image.split(':').next().unwrap_or(&image).to_string();
    let tag = if fault == "crashloop" {
        format!("v0.7.1-nightly{}", st.store.rv % 9 + 1)
    } else {
        format!("v0.7.0-rc{}", st.store.rv % 9 + 1)
    };
    let new_image = format!("{base}:{tag}");
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!(new_image);
    dep["spec"]["template"]["metadata"]["annotations"]["sim.fleetdeck.dev/fault"] = json!(fault);
    dep["metadata"]["annotations"]["kubernetes.io/change-cause"] =
        json!(format!("helm upgrade {dep_name} --set image.tag={tag}"));
    let g = dep["metadata"]["generation"].as_u64().unwrap_or(1);
    dep["metadata"]["generation"] = json!(g + 1);
    st.store.replace(Kind::Deployment, dep);
    st.reconcile_deployment(&ns, &dep_name);
    let rev = st
        .store
        .get_value(Kind::Deployment, &ns, &dep_name)
        .map(|d| d["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone())
        .unwrap_or(Value::Null);
    Ok(
        json!({"cluster": c.name, "endpoint": ep, "deployment": format!("{ns}/{dep_name}"), "image": new_image, "revision": rev}),
    )
}

/// The endpoint's first running GPU pod (by name) starts leaking GPU memory now.
fn gpu_memory_leak(fleet: &SimFleet, t: &Target) -> Result<Value, String> {
    let (ep, ns, dep_name) = endpoint_target(t);
    let ci = find_deployment(fleet, &ns, &dep_name)?;
    let c = &fleet.clusters[ci];
    let st = c.lock();
    let pod = st
        .store
        .iter_ns(Kind::Pod, Some(&ns))
        .filter(|(_, s)| {
            s.gpus > 0
                && s.active
                && !s.terminating
                && s.labels.get("app").map(String::as_str) == Some(dep_name.as_str())
        })
        .map(|((_, name), s)| (name.clone(), s.value()))
        .filter(|(_, v)| v["status"]["phase"] == "Running" && v["spec"]["nodeName"].is_string())
        .min_by(|a, b| a.0.cmp(&b.0));
    let Some((pod, v)) = pod else {
        return Err(format!(
            "deployment {ns}/{dep_name} has no running GPU pod to leak"
        ));
    };
    let node = v["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    drop(st);
    let since = Utc::now();
    fleet.faults_mut().memory_leak = Some(super::view::MemoryLeak {
        cluster: c.name.clone(),
        namespace: ns.clone(),
        pod: pod.clone(),
        since,
    });
    Ok(
        json!({"cluster": c.name, "endpoint": ep, "pod": format!("{ns}/{pod}"), "node": node,
        "since": timestamp(since), "fills_in_seconds": super::dcgm::LEAK_FILL_SECONDS}),
    )
}

/// A running training gang's pods: (pod name, node), by name.
type Ranks = Vec<(String, String)>;

/// The first running gang of a cluster (by namespace and job name) and its ranks.
fn running_gang(st: &super::cluster::ClusterState) -> Option<(String, String, Ranks)> {
    let mut gangs: std::collections::BTreeMap<(String, String), Ranks> = Default::default();
    for ((ns, name), s) in st.store.iter_ns(Kind::Pod, None) {
        let Some(job) = s.labels.get("training.kubeflow.org/job-name") else {
            continue;
        };
        if !s.active || s.terminating {
            continue;
        }
        let v = s.value();
        let Some(node) = v["spec"]["nodeName"].as_str() else {
            continue;
        };
        if v["status"]["phase"] != "Running" {
            continue;
        }
        gangs
            .entry((ns.clone(), job.clone()))
            .or_default()
            .push((name.clone(), node.to_string()));
    }
    gangs.into_iter().next().map(|((ns, job), mut ranks)| {
        ranks.sort();
        (ns, job, ranks)
    })
}

/// `training-stall` (every rank) or `training-straggler` (one rank) on a cluster's first
/// running gang.
fn training_fault(fleet: &SimFleet, t: &Target, straggle: bool) -> Result<Value, String> {
    let found = match &t.cluster {
        Some(_) => {
            let c = &fleet.clusters[cluster_index(fleet, t, 0)?];
            running_gang(&c.lock()).map(|g| (c, g))
        }
        None => fleet
            .clusters
            .iter()
            .find_map(|c| running_gang(&c.lock()).map(|g| (c, g))),
    };
    let Some((c, (namespace, job, ranks))) = found else {
        return Err(
            "no running training gang (pods labelled training.kubeflow.org/job-name) to fault"
                .into(),
        );
    };
    let straggler = if straggle {
        let rank = match &t.node {
            Some(node) => ranks.iter().find(|(_, n)| n == node).ok_or_else(|| {
                format!(
                    "no rank of {namespace}/{job} runs on node {node} in {}",
                    c.name
                )
            })?,
            None => ranks.last().ok_or("the gang has no rank")?,
        };
        Some(rank.clone())
    } else {
        None
    };
    fleet.faults_mut().training = Some(super::view::TrainingFault {
        cluster: c.name.clone(),
        namespace: namespace.clone(),
        job: job.clone(),
        straggler_node: straggler.as_ref().map(|(_, node)| node.clone()),
    });
    let mut detail = json!({"cluster": c.name, "namespace": namespace, "job": job,
        "ranks": ranks.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>()});
    if let Some((pod, node)) = straggler {
        detail["pod"] = json!(pod);
        detail["node"] = json!(node);
        detail["pace"] = json!(super::dcgm::STRAGGLER_PACE);
    }
    Ok(detail)
}

/// `spark-failed`: the first running SparkApplication of a cluster (by namespace and name).
fn spark_failed(fleet: &SimFleet, t: &Target) -> Result<Value, String> {
    let ci = cluster_index(fleet, t, 0)?;
    let c = &fleet.clusters[ci];
    let mut st = c.lock();
    let mut running: Vec<_> = st
        .store
        .iter_ns(Kind::SparkApplication, None)
        .map(|(k, s)| (k.clone(), s.value()))
        .filter(|(_, v)| v.pointer("/status/applicationState/state") == Some(&json!("RUNNING")))
        .collect();
    // The nightly ETL first: the job an on-call hears about in the morning.
    running.sort_by_key(|((_, name), _)| name != "nightly-etl");
    let running = running.into_iter().next();
    let Some(((ns, name), _)) = running else {
        return Err(format!("no running SparkApplication in {} to fail", c.name));
    };
    let app = st
        .fail_spark_application(&ns, &name, super::logs::SPARK_FAILURE)
        .ok_or_else(|| format!("SparkApplication {ns}/{name} vanished"))?;
    Ok(json!({"cluster": c.name, "namespace": ns, "name": name,
        "driver": app["status"]["driverInfo"]["podName"],
        "errorMessage": super::logs::SPARK_FAILURE}))
}

/// Undoes `spark-failed` as the operator's retry would: every application it failed runs again.
fn spark_retry(fleet: &SimFleet) -> Result<(), String> {
    for c in &fleet.clusters {
        let mut st = c.lock();
        let failed: Vec<(String, String)> = st
            .store
            .iter_ns(Kind::SparkApplication, None)
            .filter(|(_, s)| {
                s.value()
                    .pointer("/metadata/annotations/sim.fleetdeck.dev~1fault")
                    == Some(&json!(super::cluster::spark::SPARK_FAULT))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in failed {
            let driver = super::cluster::spark::driver_pod_name(&name);
            let node = st
                .store
                .get_value(Kind::Pod, &ns, &driver)
                .and_then(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
                .or_else(|| {
                    st.store
                        .iter_ns(Kind::Node, None)
                        .find(|(_, s)| s.node.as_ref().is_some_and(|n| n.ready))
                        .map(|((_, n), _)| n.clone())
                })
                .ok_or_else(|| format!("no Ready node in {} to run {ns}/{name} on", c.name))?;
            st.resubmit_spark_application(&ns, &name, &node);
        }
    }
    Ok(())
}

fn pdb_block(fleet: &SimFleet, t: &Target) -> Result<Value, String> {
    let (ep, ns, dep_name) = endpoint_target(t);
    let ci = find_deployment(fleet, &ns, &dep_name)?;
    let c = &fleet.clusters[ci];
    let mut st = c.lock();
    let existing = st
        .store
        .iter_ns(Kind::PodDisruptionBudget, Some(&ns))
        .map(|(_, s)| s.value())
        .find(|p| p["spec"]["selector"]["matchLabels"]["app"] == dep_name.as_str());
    let name = match existing {
        Some(mut pdb) => {
            let name = pdb["metadata"]["name"].as_str().unwrap_or("").to_string();
            if let Some(spec) = pdb["spec"].as_object_mut() {
                spec.remove("maxUnavailable");
                spec.insert("minAvailable".into(), json!("100%"));
            }
            let g = pdb["metadata"]["generation"].as_u64().unwrap_or(1);
            pdb["metadata"]["generation"] = json!(g + 1);
            st.store.replace(Kind::PodDisruptionBudget, pdb);
            name
        }
        None => {
            let pdb = json!({"metadata": {"name": dep_name, "namespace": ns},
                "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": dep_name}}}});
            st.store
                .create(Kind::PodDisruptionBudget, pdb, true)
                .map_err(|e| e.message)?;
            dep_name.clone()
        }
    };
    st.refresh_pdb(&ns, &name);
    Ok(json!({"cluster": c.name, "endpoint": ep, "pdb": format!("{ns}/{name}"), "allows": 0}))
}
