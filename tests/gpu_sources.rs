//! The GPU sources against real captures and against `fleetdeck sim`'s DCGM exporters over
//! real HTTP, as a user's cluster would be scraped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Sim, fixture, http};
use fleetdeck::model::gpu::{GpuModel, GpuSourceKind, GpuUpdate};
use fleetdeck::sources::dcgm::{DcgmError, parse_dcgm, scrape, spawn_dcgm};
use serde_json::Value;
use tokio::sync::mpsc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn small_sim() -> Sim {
    Sim::start(&["--nodes", "8", "--clusters", "2", "--seed", "7"])
}

fn dcgm_url(sim: &Sim, cluster: usize) -> String {
    sim.desc["dcgm"][cluster]
        .as_str()
        .expect("dcgm url")
        .to_string()
}

fn cluster_name(sim: &Sim, cluster: usize) -> String {
    sim.desc["clusters"][cluster]["name"]
        .as_str()
        .expect("cluster name")
        .to_string()
}

fn kube_items(sim: &Sim, cluster: usize, path: &str) -> Vec<Value> {
    let url = format!("{}{path}", sim.kube_url(cluster));
    let v: Value = http()
        .get(&url)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Waits for the next update that satisfies `want`, failing after `timeout`.
fn next_update(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<GpuUpdate>,
    timeout: Duration,
    what: &str,
    mut want: impl FnMut(&GpuUpdate) -> bool,
) -> GpuUpdate {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
            Ok(Some(u)) if want(&u) => return u,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the poller stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[test]
fn the_real_dcgm_capture_parses_into_one_l4_with_its_labels_and_readings() {
    let text = std::fs::read_to_string(fixture("dcgm-exporter-metrics.txt")).expect("fixture");
    let gpus = parse_dcgm(&text, "kops", Utc::now()).expect("the capture parses");
    assert_eq!(gpus.len(), 1, "{gpus:#?}");
    let g = &gpus[0];
    assert_eq!(g.cluster, "kops");
    assert_eq!(g.node, "i-030791dc5a37cd257");
    assert_eq!(g.index, 0);
    assert_eq!(g.uuid, "GPU-c2f76b33-7953-256e-8f33-1343419b1a1c");
    assert_eq!(g.pci_bus_id.as_deref(), Some("00000000:31:00.0"));
    assert_eq!(g.model_name.as_deref(), Some("NVIDIA L4"));
    assert_eq!(g.driver_version.as_deref(), Some("580.105.08"));
    assert_eq!(g.utilization_pct, Some(0.0));
    assert_eq!(g.sm_clock_mhz, Some(210));
    assert_eq!(g.temperature_c, Some(31.0));
    assert_eq!(g.power_w, Some(16.365));
    assert_eq!(
        g.power_limit_w, None,
        "the capture has no power limit family"
    );
    assert_eq!(g.memory_used_mib, Some(0));
    assert_eq!(g.memory_free_mib, Some(22563));
    assert_eq!(
        g.memory_total_mib,
        Some(22563 + 470),
        "used + free + reserved"
    );
    assert_eq!(g.remapped_rows_correctable, Some(0));
    assert_eq!(g.remapped_rows_uncorrectable, Some(0));
    assert_eq!(g.remap_failure, Some(false));
    assert_eq!(g.xid_last, None, "the capture has no XID family");
    assert_eq!(g.ecc_dbe_volatile, None);
    assert_eq!(g.holder, None, "no workload ran when it was captured");
    assert_eq!(g.mig_instance, None);
}

#[test]
fn the_sims_exporters_list_every_gpu_the_kubernetes_api_has_and_the_pods_holding_them() {
    let sim = small_sim();
    let rt = runtime();
    let client = reqwest::Client::new();
    let mut held = 0;
    for cluster in 0..2 {
        let gpus = rt
            .block_on(scrape(&client, &dcgm_url(&sim, cluster)))
            .expect("the sim's exporter parses");

        let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
        for g in &gpus {
            assert!(g.uuid.starts_with("GPU-"), "{g:?}");
            assert!(
                g.model_name.is_some() && g.utilization_pct.is_some(),
                "{g:?}"
            );
            assert!(g.memory_total_mib.is_some_and(|t| t > 0), "{g:?}");
            *per_node.entry(g.node.clone()).or_default() += 1;
        }
        let uuids: BTreeSet<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
        assert_eq!(uuids.len(), gpus.len(), "each GPU once");

        let capacity: BTreeMap<String, u32> = kube_items(&sim, cluster, "/api/v1/nodes")
            .iter()
            .filter_map(|n| {
                let gpus: u32 = n["status"]["capacity"]["nvidia.com/gpu"]
                    .as_str()?
                    .parse()
                    .ok()?;
                let name = n["metadata"]["name"].as_str()?.to_string();
                (gpus > 0).then_some((name, gpus))
            })
            .collect();
        assert_eq!(per_node, capacity, "GPUs per node, DCGM against Kubernetes");

        let pods = kube_items(&sim, cluster, "/api/v1/pods");
        for g in gpus.iter().filter(|g| g.holder.is_some()) {
            held += 1;
            let Some(holder) = &g.holder else { continue };
            let pod = pods
                .iter()
                .find(|p| {
                    p["metadata"]["namespace"] == holder.namespace.as_str()
                        && p["metadata"]["name"] == holder.pod.as_str()
                })
                .unwrap_or_else(|| panic!("{holder:?} holds {} but is not listed", g.uuid));
            assert_eq!(pod["spec"]["nodeName"], g.node.as_str(), "{holder:?}");
            assert_eq!(pod["status"]["phase"], "Running", "{holder:?}");
        }
    }
    assert!(held > 0, "the sim runs GPU pods");

    let wrong = dcgm_url(&sim, 0).replace("/metrics", "/no-such-path");
    match rt.block_on(scrape(&client, &wrong)) {
        Err(e @ DcgmError::Status { status: 404, .. }) => {
            assert!(e.to_string().contains(&wrong), "{e}");
        }
        other => panic!("a 404 is an HTTP status error: {other:?}"),
    }
}

fn xids_by_node(gpus: &[GpuModel]) -> BTreeMap<&str, BTreeSet<u32>> {
    let mut out: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for g in gpus {
        let set = out.entry(g.node.as_str()).or_default();
        set.extend(g.xid_last);
    }
    out
}

#[test]
fn xid_storm_puts_xid_codes_on_that_nodes_gpus_and_no_others() {
    let sim = small_sim();
    let rt = runtime();
    let (a, b) = (cluster_name(&sim, 0), cluster_name(&sim, 1));
    let (tx, mut rx) = mpsc::channel(16);
    rt.block_on(async {
        spawn_dcgm(
            vec![
                (a.clone(), dcgm_url(&sim, 0)),
                (b.clone(), dcgm_url(&sim, 1)),
            ],
            Duration::from_millis(200),
            tx,
        )
    });

    let before = next_update(
        &rt,
        &mut rx,
        Duration::from_secs(30),
        "a first round",
        |u| u.status.cluster == a,
    );
    assert!(before.status.is_ok(), "{:?}", before.status);
    assert_eq!(before.status.kind, GpuSourceKind::Dcgm);
    let gpus = before.gpus.expect("GPUs");
    assert!(gpus.iter().all(|g| g.cluster == a && g.xid_last.is_none()));
    let node = gpus.first().expect("a GPU").node.clone();

    let control = sim.control();
    let resp = http()
        .post(format!(
            "{control}/scenarios/xid-storm?cluster={a}&node={node}"
        ))
        .send()
        .expect("inject xid-storm");
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text());

    let after = next_update(&rt, &mut rx, Duration::from_secs(30), "XIDs", |u| {
        u.status.cluster == a
            && u.gpus
                .as_ref()
                .is_some_and(|g| g.iter().any(|g| g.xid_last.is_some()))
    });
    let gpus = after.gpus.expect("GPUs");
    let xids = xids_by_node(&gpus);
    let on_node = &xids[node.as_str()];
    assert!(
        !on_node.is_empty() && on_node.is_subset(&BTreeSet::from([79, 48, 94])),
        "the storm's XIDs are 79, 48 and 94 on {node}: {xids:?}"
    );
    assert!(
        xids.iter()
            .filter(|(n, _)| **n != node)
            .all(|(_, codes)| codes.is_empty()),
        "only {node} has XIDs: {xids:?}"
    );

    let other = next_update(&rt, &mut rx, Duration::from_secs(30), "cluster b", |u| {
        u.status.cluster == b && u.gpus.is_some()
    });
    let other_gpus = other.gpus.expect("GPUs");
    assert!(
        other_gpus.iter().all(|g| g.xid_last.is_none()),
        "the other cluster is untouched"
    );
}

#[test]
fn an_unreachable_exporter_is_reported_with_its_address_and_polled_again() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let rt = runtime();
    let (tx, mut rx) = mpsc::channel(4);
    rt.block_on(async {
        spawn_dcgm(
            vec![("gone".into(), url.clone())],
            Duration::from_millis(20),
            tx,
        )
    });

    for round in ["first", "second"] {
        let u = next_update(&rt, &mut rx, Duration::from_secs(10), round, |_| true);
        assert_eq!(u.status.cluster, "gone");
        assert_eq!(u.status.target, url);
        assert!(u.gpus.is_none(), "a failed round keeps the last picture");
        assert_eq!(u.status.last_success, None);
        let error = u.status.error.clone().expect("an error");
        assert!(error.starts_with(&format!("GET {url}: ")), "{error}");
        assert_eq!(error.matches(&url).count(), 1, "the address once: {error}");
        assert!(error.contains("refused"), "the cause: {error}");
        assert!(
            u.status.describe().contains("dcgm gone"),
            "{}",
            u.status.describe()
        );
    }
}
