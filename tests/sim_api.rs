//! The simulated fleet's HTTP APIs, spoken to over real HTTP as a user's tools would: the
//! Kubernetes API semantics kubectl and client libraries rely on, the scenarios on the control
//! address, and the DCGM, OpenCost and model-endpoint servers beside it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::{Kubectl, Sim, fixture, http, wait_until};
use fleetdeck::sources::prom_text::{self, Record};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const DISCOVERY_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const DISCOVERY_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

fn small_sim() -> Sim {
    Sim::start(&["--nodes", "8", "--clusters", "2", "--seed", "7"])
}

/// One answer: status code, Content-Type and the body as JSON (a JSON string when it is not JSON).
struct Reply {
    code: u16,
    content_type: String,
    body: Value,
}

/// A client of one simulated cluster's API server.
struct Kube {
    base: String,
    client: Client,
}

impl Kube {
    fn of(sim: &Sim, cluster: usize) -> Kube {
        Kube {
            base: sim.kube_url(cluster),
            client: http(),
        }
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp
            .text()
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            code,
            content_type,
            body,
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None)
    }

    fn get_accepting(&self, path: &str, accept: &str) -> Reply {
        self.send(Method::GET, path, &[("Accept", accept)], None)
    }

    /// GETs `path` and insists on 200.
    fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.code, 200, "GET {path}: {}", r.body);
        r.body
    }

    /// The items of a list, insisting on 200.
    fn items(&self, path: &str) -> Vec<Value> {
        self.ok(path)["items"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("GET {path} has no items"))
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(
            Method::PUT,
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    fn patch(&self, path: &str, content_type: &str, body: &str) -> Reply {
        self.send(
            Method::PATCH,
            path,
            &[("Content-Type", content_type)],
            Some(body.as_bytes().to_vec()),
        )
    }

    /// Opens a watch and answers its events one by one as they arrive.
    fn watch(&self, path: &str) -> impl Iterator<Item = Value> + use<> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "watch {path}");
        BufReader::new(resp).lines().map(|l| {
            let l = l.expect("read a watch line");
            serde_json::from_str::<Value>(&l)
                .unwrap_or_else(|e| panic!("watch line {l:?} is not JSON: {e}"))
        })
    }
}

fn control(sim: &Sim, method: Method, path: &str) -> Reply {
    let resp = http()
        .request(method, format!("{}{path}", sim.control()))
        .send()
        .expect("control request");
    let code = resp.status().as_u16();
    let text = resp.text().expect("control body");
    Reply {
        code,
        content_type: String::new(),
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Injects a scenario on the control address and insists it was accepted.
fn inject(sim: &Sim, scenario_and_query: &str) -> Value {
    let r = control(
        sim,
        Method::POST,
        &format!("/scenarios/{scenario_and_query}"),
    );
    assert_eq!(
        r.code, 200,
        "POST /scenarios/{scenario_and_query}: {}",
        r.body
    );
    r.body
}

/// Insists `body` is a Kubernetes `Status` failure with this code and reason.
#[track_caller]
fn assert_status(reply: &Reply, code: u16, reason: &str) {
    let b = &reply.body;
    assert_eq!(reply.code, code, "HTTP status; body {b}");
    assert_eq!(b["kind"], "Status", "{b}");
    assert_eq!(b["apiVersion"], "v1", "{b}");
    assert_eq!(b["status"], "Failure", "{b}");
    assert_eq!(b["reason"], reason, "{b}");
    assert_eq!(b["code"], code, "{b}");
    assert!(
        b["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a Status says what went wrong: {b}"
    );
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .expect("metadata.name")
        .to_string()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {v}"))
}

fn names(items: &[Value]) -> BTreeSet<String> {
    items.iter().map(name).collect()
}

fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["metadata"]["labels"][key].as_str()
}

fn revision(v: &Value) -> u64 {
    v["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no revision annotation on {}", name(v)))
}

fn gpus_requested(pod: &Value) -> u64 {
    pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["resources"]["limits"]["nvidia.com/gpu"].as_str())
                .filter_map(|g| g.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

fn node_gpus(node: &Value) -> u64 {
    node["status"]["capacity"]["nvidia.com/gpu"]
        .as_str()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// The first node of the cluster that has GPUs.
fn gpu_node(kube: &Kube) -> String {
    kube.items("/api/v1/nodes")
        .iter()
        .find(|n| node_gpus(n) > 0)
        .map(name)
        .expect("a GPU node")
}

/// The value of parameter `key` in a media type such as `application/json;v=v2;as=X`.
fn media_param<'a>(content_type: &'a str, key: &str) -> Option<&'a str> {
    content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

// ---- Prometheus text --------------------------------------------------------------------

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a body, read with the cockpit's own strict parser: a line it cannot read
/// fails the test, so the sim is held to the format its clients expect.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for record in prom_text::Parser::new(text) {
        if let Record::Sample(s) = record.unwrap_or_else(|e| panic!("metrics {e}")) {
            out.push(Sample {
                name: s.name.to_string(),
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.into_owned()))
                    .collect(),
                value: s.value,
            });
        }
    }
    out
}

fn scrape(url: &str) -> Vec<Sample> {
    let resp = http()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    parse_exposition(&resp.text().expect("metrics text"))
}

fn sum_of(samples: &[Sample], name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .sum()
}

// ---- discovery --------------------------------------------------------------------------

#[test]
fn discovery_documents_describe_the_core_and_named_groups() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);

    let version = kube.ok("/version");
    assert_eq!(version["major"], "1");
    let minor = version["minor"].as_str().expect("minor");
    assert!(
        minor.parse::<u32>().is_ok(),
        "minor {minor:?} is a number, as kubectl's version skew check reads it"
    );
    assert!(
        version["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("v1.{minor}."))),
        "{version}"
    );

    let api = kube.ok("/api");
    assert_eq!(api["kind"], "APIVersions");
    assert!(
        api["versions"]
            .as_array()
            .is_some_and(|v| v.contains(&json!("v1"))),
        "{api}"
    );

    let apis = kube.ok("/apis");
    assert_eq!(apis["kind"], "APIGroupList");
    let groups: BTreeSet<&str> = apis["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for g in ["apps", "policy", "coordination.k8s.io", "batch"] {
        assert!(groups.contains(g), "/apis lists {g}: {groups:?}");
    }

    let core = kube.ok("/api/v1");
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let resources = core["resources"].as_array().expect("resources");
    for r in ["pods", "nodes", "namespaces", "events"] {
        assert!(
            resources.iter().any(|x| x["name"] == r),
            "/api/v1 lists {r}"
        );
    }
    let eviction = resources
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .expect("/api/v1 lists pods/eviction");
    assert_eq!(
        eviction["group"], "policy",
        "kubectl drain checks the eviction's group: {eviction}"
    );
    assert_eq!(eviction["version"], "v1", "{eviction}");
    assert_eq!(eviction["kind"], "Eviction", "{eviction}");
    assert_eq!(eviction["verbs"], json!(["create"]), "{eviction}");

    let apps = kube.ok("/apis/apps/v1");
    assert_eq!(apps["groupVersion"], "apps/v1");
    let apps_resources: BTreeSet<&str> = apps["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for r in ["deployments", "replicasets", "daemonsets"] {
        assert!(
            apps_resources.contains(r),
            "/apis/apps/v1 lists {r}: {apps_resources:?}"
        );
    }
}

#[test]
fn aggregated_discovery_answers_the_version_the_accept_header_lists_first() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    for path in ["/api", "/apis"] {
        for (accept, want) in [
            (
                format!("{DISCOVERY_V2},{DISCOVERY_V2BETA1},application/json"),
                "v2",
            ),
            (
                format!("{DISCOVERY_V2BETA1},{DISCOVERY_V2},application/json"),
                "v2beta1",
            ),
        ] {
            let r = kube.get_accepting(path, &accept);
            assert_eq!(r.code, 200, "{path}: {}", r.body);
            assert_eq!(
                media_param(&r.content_type, "as"),
                Some("APIGroupDiscoveryList"),
                "{path} Content-Type {}",
                r.content_type
            );
            assert_eq!(
                media_param(&r.content_type, "v"),
                Some(want),
                "{path} with Accept {accept}: Content-Type {}",
                r.content_type
            );
            assert_eq!(r.body["kind"], "APIGroupDiscoveryList");
            assert_eq!(r.body["apiVersion"], format!("apidiscovery.k8s.io/{want}"));
            let items = r.body["items"].as_array().expect("items");
            assert!(
                !items.is_empty(),
                "{path} aggregated discovery lists groups"
            );
            assert!(
                items.iter().all(|g| g["versions"][0]["resources"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())),
                "{path}: every group lists its resources"
            );
        }
        let plain = kube.get_accepting(path, "application/json");
        assert_eq!(plain.code, 200);
        assert_eq!(
            media_param(&plain.content_type, "as"),
            None,
            "{path} plain JSON: Content-Type {}",
            plain.content_type
        );
        assert_eq!(
            plain.body["kind"],
            if path == "/api" {
                "APIVersions"
            } else {
                "APIGroupList"
            }
        );
    }
}

// ---- list, selectors, tables ------------------------------------------------------------

#[test]
fn resource_versions_increase_across_kinds_after_mutations() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pods = kube.ok("/api/v1/pods");
    let listed = rv(&pods);
    let pod = &pods["items"][0];
    let pod_path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        pod["metadata"]["namespace"].as_str().unwrap(),
        name(pod)
    );
    let node = gpu_node(&kube);

    let r = kube.patch(
        &format!("/api/v1/nodes/{node}"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/test":"a"}}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let node_rv = rv(&r.body);
    assert!(node_rv > listed, "node {node_rv} after pod list {listed}");

    let r = kube.patch(
        &pod_path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/test":"b"}}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let pod_rv = rv(&r.body);
    assert!(pod_rv > node_rv, "pod {pod_rv} after node {node_rv}");

    let lease = kube.post(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        &json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "rv-probe"}, "spec": {"holderIdentity": "t"},
        }),
    );
    assert_eq!(lease.code, 201, "{}", lease.body);
    assert!(
        rv(&lease.body) > pod_rv,
        "lease {} after pod {pod_rv}",
        rv(&lease.body)
    );
    assert!(
        rv(&kube.ok("/api/v1/namespaces")) >= rv(&lease.body),
        "a later list reports at least the newest version"
    );
}

#[test]
fn paging_with_limit_and_continue_returns_every_pod_exactly_once() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let all = names(&kube.items("/api/v1/pods"));
    assert!(all.len() > 10, "the fleet has pods to page through");

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/pods?limit=7&continue={t}"),
            None => "/api/v1/pods?limit=7".to_string(),
        };
        let page = kube.ok(&path);
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 7, "a page holds at most `limit` items");
        seen.extend(items.iter().map(name));
        pages += 1;
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => {
                assert_eq!(items.len(), 7, "only the last page is short");
                token = Some(t.to_string());
            }
            _ => break,
        }
        assert!(pages < 100, "paging ends");
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no pod appears on two pages");
    assert_eq!(unique, all, "the pages together hold every pod");
    assert_eq!(pages, all.len().div_ceil(7));
}

#[test]
fn a_kube_rs_style_query_with_an_empty_pair_still_applies_its_limit() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let page = kube.ok("/api/v1/pods?&limit=2");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert!(
        page["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{}",
        page["metadata"]
    );
}

#[test]
fn label_selectors_select_exactly_the_matching_pods() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let all = kube.items("/api/v1/pods");
    type Pred = fn(&Value) -> bool;
    let cases: [(&str, Pred); 6] = [
        ("app%3Dllama-chat", |p| {
            label(p, "app") == Some("llama-chat")
        }),
        ("app%21%3Dllama-chat", |p| {
            label(p, "app") != Some("llama-chat")
        }),
        ("app%20in%20(llama-chat,ranker-predictor)", |p| {
            matches!(label(p, "app"), Some("llama-chat" | "ranker-predictor"))
        }),
        ("app%20notin%20(llama-chat,kube-proxy)", |p| {
            !matches!(label(p, "app"), Some("llama-chat" | "kube-proxy"))
        }),
        ("app.kubernetes.io/component", |p| {
            label(p, "app.kubernetes.io/component").is_some()
        }),
        ("team%3Dinference,app.kubernetes.io/component", |p| {
            label(p, "team") == Some("inference")
                && label(p, "app.kubernetes.io/component").is_some()
        }),
    ];
    for (selector, pred) in cases {
        let want: BTreeSet<String> = all.iter().filter(|p| pred(p)).map(name).collect();
        assert!(
            !want.is_empty() && want.len() < all.len(),
            "{selector}: the fleet has pods on both sides"
        );
        let got = names(&kube.items(&format!("/api/v1/pods?labelSelector={selector}")));
        assert_eq!(got, want, "labelSelector={selector}");
    }
}

#[test]
fn field_selectors_select_by_node_name_and_phase() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let all = kube.items("/api/v1/pods");
    let node = all[0]["spec"]["nodeName"]
        .as_str()
        .expect("a scheduled pod")
        .to_string();
    let on_node: BTreeSet<String> = all
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node.as_str())
        .map(name)
        .collect();
    assert_eq!(
        names(&kube.items(&format!(
            "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
        ))),
        on_node
    );

    let one = name(&all[3]);
    assert_eq!(
        names(&kube.items(&format!("/api/v1/pods?fieldSelector=metadata.name%3D{one}"))),
        BTreeSet::from([one.clone()])
    );

    let pending: BTreeSet<String> = all
        .iter()
        .filter(|p| p["status"]["phase"] == "Pending")
        .map(name)
        .collect();
    assert!(
        !pending.is_empty(),
        "the fleet has a pod that cannot be scheduled"
    );
    assert_eq!(
        names(&kube.items("/api/v1/pods?fieldSelector=status.phase%3DPending")),
        pending
    );
    let not_running: BTreeSet<String> = all
        .iter()
        .filter(|p| p["status"]["phase"] != "Running")
        .map(name)
        .collect();
    assert_eq!(
        names(&kube.items("/api/v1/pods?fieldSelector=status.phase%21%3DRunning")),
        not_running
    );

    let both = names(&kube.items(&format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{node},metadata.name%3D{one}"
    )));
    let want: BTreeSet<String> = on_node.iter().filter(|n| **n == one).cloned().collect();
    assert_eq!(both, want, "comma-separated requirements all apply");
}

#[test]
fn an_unsupported_field_selector_is_a_bad_request() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let r = kube.get("/api/v1/pods?fieldSelector=spec.hostname%3Dx");
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.hostname"),
        "names the field: {}",
        r.body
    );
}

#[test]
fn table_listing_gives_rows_of_partial_object_metadata_or_full_objects() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pods = kube.items("/api/v1/namespaces/serving/pods");

    let r = kube.get_accepting("/api/v1/namespaces/serving/pods", TABLE);
    assert_eq!(r.code, 200, "{}", r.body);
    let t = &r.body;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let columns = t["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions");
    assert_eq!(columns[0]["name"], "Name");
    for c in ["Ready", "Status", "Restarts", "Age"] {
        assert!(
            columns.iter().any(|d| d["name"] == c),
            "pods table has column {c}"
        );
    }
    let rows = t["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), pods.len(), "one row per pod");
    for row in rows {
        assert_eq!(
            row["cells"].as_array().map(Vec::len),
            Some(columns.len()),
            "a cell per column: {row}"
        );
        let o = &row["object"];
        assert_eq!(o["kind"], "PartialObjectMetadata", "{o}");
        assert_eq!(o["apiVersion"], "meta.k8s.io/v1");
        assert!(o["metadata"]["name"].is_string());
        assert!(
            o["metadata"].get("managedFields").is_none(),
            "PartialObjectMetadata rows leave managedFields out"
        );
        assert!(o.get("spec").is_none());
    }
    let table_names: BTreeSet<String> = rows.iter().map(|r| name(&r["object"])).collect();
    assert_eq!(table_names, names(&pods));

    let full = kube.get_accepting(
        "/api/v1/namespaces/serving/pods?includeObject=Object",
        TABLE,
    );
    assert_eq!(full.code, 200);
    for row in full.body["rows"].as_array().expect("rows") {
        assert_eq!(row["object"]["kind"], "Pod");
        assert!(
            row["object"]["spec"]["containers"].is_array(),
            "includeObject=Object gives the whole pod"
        );
        assert!(
            row["object"]["metadata"]["managedFields"].is_array(),
            "whole objects keep managedFields"
        );
    }
}

// ---- watch ------------------------------------------------------------------------------

#[test]
fn a_watch_from_the_list_version_sees_a_later_label_change_as_modified() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let list = kube.ok("/api/v1/namespaces/platform/pods");
    let pod = name(&list["items"][0]);
    let events = kube.watch(&format!(
        "/api/v1/namespaces/platform/pods?watch=true&resourceVersion={}&timeoutSeconds=20",
        rv(&list)
    ));
    let r = kube.patch(
        &format!("/api/v1/namespaces/platform/pods/{pod}"),
        "application/strategic-merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/watched":"yes"}}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let seen = events
        .take(200)
        .find(|e| {
            e["object"]["metadata"]["name"] == pod.as_str()
                && label(&e["object"], "fleetdeck.dev/watched") == Some("yes")
        })
        .expect("the watch delivers the change");
    assert_eq!(seen["type"], "MODIFIED");
    assert_eq!(seen["object"]["kind"], "Pod");
    assert_eq!(rv(&seen["object"]), rv(&r.body));
}

/// Watches platform pods labelled `fleetdeck.dev/watched=yes` from the list's version while one
/// pod gets the label and loses it again; answers the watch's events about that pod and the
/// resourceVersions of the two patches.
fn selector_watch_of_a_pod_entering_and_leaving(kube: &Kube) -> (Vec<Value>, u64, u64) {
    let list = kube.ok("/api/v1/namespaces/platform/pods");
    let pod = name(&list["items"][0]);
    let path = format!("/api/v1/namespaces/platform/pods/{pod}");
    let enter = kube.patch(
        &path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/watched":"yes"}}}"#,
    );
    let leave = kube.patch(
        &path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/watched":null}}}"#,
    );
    assert_eq!((enter.code, leave.code), (200, 200));
    let events = kube
        .watch(&format!(
            "/api/v1/namespaces/platform/pods?watch=true&resourceVersion={}\
             &labelSelector=fleetdeck.dev/watched%3Dyes&timeoutSeconds=20",
            rv(&list)
        ))
        .filter(|e| e["object"]["metadata"]["name"] == pod.as_str())
        .take(2)
        .collect();
    (events, rv(&enter.body), rv(&leave.body))
}

#[test]
fn a_selector_watch_sees_a_pod_enter_as_added_and_leave_as_deleted() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let (events, entered, left) = selector_watch_of_a_pod_entering_and_leaving(&kube);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["ADDED", "DELETED"], "{events:?}");
    assert_eq!(rv(&events[0]["object"]), entered);
    assert_eq!(rv(&events[1]["object"]), left);
}

#[test]
fn a_pod_leaving_a_selector_watch_is_deleted_as_it_last_matched() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let (events, _, left) = selector_watch_of_a_pod_entering_and_leaving(&kube);
    let deleted = events
        .iter()
        .find(|e| e["type"] == "DELETED")
        .expect("a DELETED event");
    assert_eq!(
        label(&deleted["object"], "fleetdeck.dev/watched"),
        Some("yes"),
        "{deleted}"
    );
    assert_eq!(rv(&deleted["object"]), left);
}

#[test]
fn a_watch_with_a_timeout_and_bookmarks_ends_on_its_own() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let list = kube.ok("/api/v1/pods");
    let events: Vec<Value> = kube
        .watch(&format!(
            "/api/v1/pods?watch=true&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds=2",
            rv(&list)
        ))
        .collect();
    for e in &events {
        assert!(
            matches!(
                e["type"].as_str(),
                Some("ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK")
            ),
            "{e}"
        );
    }
}

#[test]
fn a_watch_from_a_version_older_than_the_window_gets_410_expired() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let events: Vec<Value> = kube
        .watch("/api/v1/pods?watch=true&resourceVersion=1&timeoutSeconds=20")
        .take(5)
        .collect();
    let first = events.first().expect("an event before the stream ends");
    assert_eq!(first["type"], "ERROR", "{first}");
    let status = Reply {
        code: 410,
        content_type: String::new(),
        body: first["object"].clone(),
    };
    assert_status(&status, 410, "Expired");
    assert_eq!(
        events.len(),
        1,
        "the stream ends after the error: {events:?}"
    );
}

// ---- patches and errors -----------------------------------------------------------------

#[test]
fn merge_strategic_and_json_patches_apply() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = name(&kube.items("/api/v1/namespaces/platform/pods")[0]);
    let path = format!("/api/v1/namespaces/platform/pods/{pod}");
    let before = kube.ok(&path);

    let r = kube.patch(
        &path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/merge":"1"}}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(label(&r.body, "fleetdeck.dev/merge"), Some("1"));
    assert_eq!(
        label(&r.body, "app"),
        label(&before, "app"),
        "a merge patch keeps the labels it does not name"
    );

    let ops = json!([
        {"op": "test", "path": "/metadata/labels/fleetdeck.dev~1merge", "value": "1"},
        {"op": "add", "path": "/metadata/labels/fleetdeck.dev~1json", "value": "2"},
    ]);
    let r = kube.patch(&path, "application/json-patch+json", &ops.to_string());
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(label(&r.body, "fleetdeck.dev/json"), Some("2"));
    assert_eq!(
        label(&kube.ok(&path), "fleetdeck.dev/json"),
        Some("2"),
        "the patch is stored"
    );

    let node = gpu_node(&kube);
    let node_path = format!("/api/v1/nodes/{node}");
    let r = kube.patch(
        &node_path,
        "application/strategic-merge-patch+json",
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        kube.ok(&node_path)["spec"]["unschedulable"],
        true,
        "cordoned"
    );
    let r = kube.patch(
        &node_path,
        "application/strategic-merge-patch+json",
        r#"{"spec":{"unschedulable":null}}"#,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(
        kube.ok(&node_path)["spec"].get("unschedulable").is_none(),
        "uncordoned"
    );
}

#[test]
fn bad_patches_answer_status_errors_with_the_right_code() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = name(&kube.items("/api/v1/namespaces/platform/pods")[0]);
    let path = format!("/api/v1/namespaces/platform/pods/{pod}");
    let before = kube.ok(&path);

    let r = kube.patch(
        &path,
        "application/json-patch+json",
        r#"[{"op":"replace","path":"/spec/nothing/here","value":1}]"#,
    );
    assert_status(&r, 422, "Invalid");
    let r = kube.patch(
        &path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":"#,
    );
    assert_status(&r, 400, "BadRequest");
    let r = kube.patch(&path, "application/strategic-merge-patch+json", "[1,2]");
    assert_status(&r, 400, "BadRequest");
    let r = kube.patch(&path, "text/plain", "metadata: {}");
    assert_status(&r, 415, "UnsupportedMediaType");
    let r = kube.patch(
        "/api/v1/namespaces/platform/pods/no-such-pod",
        "application/merge-patch+json",
        "{}",
    );
    assert_status(&r, 404, "NotFound");

    assert_eq!(
        rv(&kube.ok(&path)),
        rv(&before),
        "no bad patch changed the pod"
    );
}

#[test]
fn a_json_patch_that_is_not_json_is_a_bad_request() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = name(&kube.items("/api/v1/namespaces/platform/pods")[0]);
    let r = kube.patch(
        &format!("/api/v1/namespaces/platform/pods/{pod}"),
        "application/json-patch+json",
        r#"[{"op":"#,
    );
    assert_status(&r, 400, "BadRequest");
}

#[test]
fn unknown_objects_and_resources_are_not_found() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let r = kube.get("/api/v1/namespaces/default/pods/no-such-pod");
    assert_status(&r, 404, "NotFound");
    assert_eq!(r.body["details"]["name"], "no-such-pod");
    assert_eq!(r.body["details"]["kind"], "pods");
    for path in [
        "/api/v1/widgets",
        "/apis/example.com/v1/things",
        "/apis/apps/v1/namespaces/default/gizmos/x",
    ] {
        assert_status(&kube.get(path), 404, "NotFound");
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    let r = kube.post("/api/v1/namespaces/no-such-namespace/pods", &pod);
    assert_status(&r, 404, "NotFound");
    assert_eq!(r.body["details"]["kind"], "namespaces");
    assert_status(
        &kube.send(
            Method::PUT,
            "/api/v1/pods",
            &[("Content-Type", "application/json")],
            Some(b"{}".to_vec()),
        ),
        405,
        "MethodNotAllowed",
    );
}

#[test]
fn a_delete_with_a_stale_resource_version_precondition_conflicts() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = kube.items("/api/v1/namespaces/platform/pods")[0].clone();
    let path = format!("/api/v1/namespaces/platform/pods/{}", name(&pod));
    let r = kube.patch(
        &path,
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"fleetdeck.dev/touched":"yes"}}}"#,
    );
    assert_eq!(r.code, 200);
    let stale = json!({
        "apiVersion": "v1", "kind": "DeleteOptions",
        "preconditions": {"resourceVersion": rv(&pod).to_string()},
    });
    let r = kube.send(
        Method::DELETE,
        &path,
        &[("Content-Type", "application/json")],
        Some(stale.to_string().into_bytes()),
    );
    assert_status(&r, 409, "Conflict");
    assert!(
        kube.ok(&path)["metadata"]
            .get("deletionTimestamp")
            .is_none(),
        "the pod was not deleted"
    );
}

#[test]
fn creating_a_duplicate_is_already_exists() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleetdeck-test"}});
    assert_eq!(kube.post("/api/v1/namespaces", &ns).code, 201);
    let r = kube.post("/api/v1/namespaces", &ns);
    assert_status(&r, 409, "AlreadyExists");
    assert_eq!(r.body["details"]["name"], "fleetdeck-test");
}

#[test]
fn lease_updates_with_a_stale_resource_version_conflict() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    let created = kube.post(
        leases,
        &json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "fleetdeck-leader"},
            "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
        }),
    );
    assert_eq!(created.code, 201, "{}", created.body);
    let stale = created.body;

    let mut renewed = stale.clone();
    renewed["spec"]["holderIdentity"] = json!("replica-b");
    let r = kube.put(&format!("{leases}/fleetdeck-leader"), &renewed);
    assert_eq!(
        r.code, 200,
        "an update with the current resourceVersion succeeds: {}",
        r.body
    );
    assert!(rv(&r.body) > rv(&stale));
    assert_eq!(r.body["spec"]["holderIdentity"], "replica-b");

    let mut late = stale.clone();
    late["spec"]["holderIdentity"] = json!("replica-c");
    let r = kube.put(&format!("{leases}/fleetdeck-leader"), &late);
    assert_status(&r, 409, "Conflict");
    assert_eq!(
        kube.ok(&format!("{leases}/fleetdeck-leader"))["spec"]["holderIdentity"],
        "replica-b",
        "the stale write lost"
    );
}

#[test]
fn an_oversized_body_is_refused_and_the_server_keeps_answering() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let filler = "x".repeat(3 * 1024 * 1024 + 16);
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "big"}, "spec": {"holderIdentity": filler},
    });
    let r = kube.post(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        &body,
    );
    assert_status(&r, 413, "RequestEntityTooLarge");
    assert_eq!(kube.get("/version").code, 200, "the sim still answers");
    assert_status(
        &kube.get("/apis/coordination.k8s.io/v1/namespaces/default/leases/big"),
        404,
        "NotFound",
    );
}

#[test]
fn a_malformed_create_body_is_a_bad_request() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let r = kube.send(
        Method::POST,
        "/api/v1/namespaces",
        &[("Content-Type", "application/json")],
        Some(b"{\"metadata\":".to_vec()),
    );
    assert_status(&r, 400, "BadRequest");
}

// ---- deletion, eviction, deployments ----------------------------------------------------

fn live_pods_of(kube: &Kube, ns: &str, app: &str) -> Vec<Value> {
    kube.items(&format!(
        "/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}"
    ))
    .into_iter()
    .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
    .collect()
}

#[test]
fn a_deleted_pod_terminates_disappears_and_its_replica_set_replaces_it() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let replicas =
        kube.ok("/apis/apps/v1/namespaces/platform/deployments/feature-store")["spec"]["replicas"]
            .as_u64()
            .expect("replicas") as usize;
    let before = names(&live_pods_of(&kube, "platform", "feature-store"));
    assert_eq!(before.len(), replicas);
    let victim = before.iter().next().expect("a pod").clone();
    let path = format!("/api/v1/namespaces/platform/pods/{victim}");

    let r = kube.send(
        Method::DELETE,
        &format!("{path}?gracePeriodSeconds=1"),
        &[],
        None,
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(
        r.body["metadata"]["deletionTimestamp"].is_string(),
        "a graceful delete marks the pod terminating: {}",
        r.body["metadata"]
    );

    wait_until("the deleted pod to disappear", WAIT, || {
        kube.get(&path).code == 404
    });
    assert_status(&kube.get(&path), 404, "NotFound");
    wait_until("a running replacement", WAIT, || {
        let now = live_pods_of(&kube, "platform", "feature-store");
        now.len() == replicas
            && !names(&now).contains(&victim)
            && now.iter().all(|p| p["status"]["phase"] == "Running")
    });
}

fn eviction(pod: &str, ns: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}})
}

#[test]
fn eviction_is_refused_with_429_while_the_budget_allows_no_disruption() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pdb = kube.post(
        "/apis/policy/v1/namespaces/platform/poddisruptionbudgets",
        &json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "feature-store-budget"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "feature-store"}}},
        }),
    );
    assert_eq!(pdb.code, 201, "{}", pdb.body);
    let pod = name(&live_pods_of(&kube, "platform", "feature-store")[0]);

    let r = kube.post(
        &format!("/api/v1/namespaces/platform/pods/{pod}/eviction"),
        &eviction(&pod, "platform"),
    );
    assert_status(&r, 429, "TooManyRequests");
    let causes = r.body["details"]["causes"]
        .as_array()
        .expect("details.causes");
    assert_eq!(causes[0]["reason"], "DisruptionBudget");
    assert!(
        causes[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("feature-store-budget"),
        "the cause names the budget: {}",
        r.body
    );

    let real: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("k8s-eviction-429-status.json")).expect("fixture"),
    )
    .expect("fixture JSON");
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        keys(&r.body),
        keys(&real),
        "the same fields as the API server's 429"
    );
    assert_eq!(
        keys(&r.body["details"]["causes"][0]),
        keys(&real["details"]["causes"][0])
    );
    assert_eq!(r.body["message"], real["message"]);

    assert!(
        kube.ok(&format!("/api/v1/namespaces/platform/pods/{pod}"))["metadata"]
            .get("deletionTimestamp")
            .is_none(),
        "the pod stays"
    );
}

#[test]
fn eviction_with_a_wrong_uid_precondition_conflicts_and_of_an_unknown_pod_is_not_found() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = name(&live_pods_of(&kube, "platform", "model-gateway")[0]);
    let mut body = eviction(&pod, "platform");
    body["deleteOptions"] =
        json!({"preconditions": {"uid": "00000000-0000-4000-8000-000000000000"}});
    let r = kube.post(
        &format!("/api/v1/namespaces/platform/pods/{pod}/eviction"),
        &body,
    );
    assert_status(&r, 409, "Conflict");

    let r = kube.post(
        "/api/v1/namespaces/platform/pods/no-such-pod/eviction",
        &eviction("no-such-pod", "platform"),
    );
    assert_status(&r, 404, "NotFound");
}

#[test]
fn eviction_allowed_by_the_budget_deletes_the_pod() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let pod = name(&live_pods_of(&kube, "platform", "model-gateway")[0]);
    let r = kube.post(
        &format!("/api/v1/namespaces/platform/pods/{pod}/eviction"),
        &eviction(&pod, "platform"),
    );
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["status"], "Success");
    let path = format!("/api/v1/namespaces/platform/pods/{pod}");
    wait_until("the evicted pod to terminate", WAIT, || {
        let r = kube.get(&path);
        r.code == 404 || r.body["metadata"]["deletionTimestamp"].is_string()
    });
}

#[test]
fn changing_a_deployments_template_creates_a_replica_set_with_the_next_revision() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let dep_path = "/apis/apps/v1/namespaces/platform/deployments/feature-store";
    let rs_list = "/apis/apps/v1/namespaces/platform/replicasets?labelSelector=app%3Dfeature-store";
    let before = kube.ok(dep_path);
    let old_rev = revision(&before);
    let old_sets = names(&kube.items(rs_list));

    let r = kube.patch(
        dep_path,
        "application/strategic-merge-patch+json",
        &json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
        }}}}})
        .to_string(),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    wait_until("the deployment's revision to move on", WAIT, || {
        revision(&kube.ok(dep_path)) == old_rev + 1
    });

    let sets = kube.items(rs_list);
    let new: Vec<&Value> = sets
        .iter()
        .filter(|s| !old_sets.contains(&name(s)))
        .collect();
    assert_eq!(new.len(), 1, "one new ReplicaSet: {:?}", names(&sets));
    let new = new[0];
    assert_eq!(revision(new), old_rev + 1);
    assert_eq!(
        new["metadata"]["ownerReferences"][0]["name"],
        "feature-store"
    );
    assert_eq!(
        new["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-01-01T00:00:00Z"
    );
    let hash = label(new, "pod-template-hash").expect("pod-template-hash");
    assert!(name(new).ends_with(hash));
    for old in sets.iter().filter(|s| old_sets.contains(&name(s))) {
        assert_eq!(
            old["spec"]["replicas"],
            0,
            "the old ReplicaSet {} is scaled down",
            name(old)
        );
    }
}

// ---- scenarios --------------------------------------------------------------------------

#[test]
fn the_control_address_lists_every_scenario() {
    let sim = small_sim();
    let r = control(&sim, Method::GET, "/scenarios");
    assert_eq!(r.code, 200);
    let listed: BTreeSet<&str> = r.body["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    let want = BTreeSet::from([
        "xid-storm",
        "node-notready",
        "spot-interruption",
        "bad-rollout",
        "crashloop-rollout",
        "pdb-block",
        "api-flaky",
        "rbac-deny",
        "endpoint-outage",
        "gpu-memory-leak",
        "training-stall",
        "training-straggler",
        "vector-index-stale",
        "airflow-failures",
        "spark-failed",
    ]);
    assert_eq!(listed, want);
}

#[test]
fn an_unknown_scenario_is_not_found_and_the_error_names_the_known_ones() {
    let sim = small_sim();
    let r = control(&sim, Method::POST, "/scenarios/meteor");
    assert_eq!(r.code, 404);
    let msg = r.body["error"].as_str().expect("error message");
    assert!(msg.contains("meteor"), "{msg}");
    for known in [
        "xid-storm",
        "node-notready",
        "spot-interruption",
        "bad-rollout",
        "pdb-block",
        "api-flaky",
        "endpoint-outage",
    ] {
        assert!(msg.contains(known), "names {known}: {msg}");
    }
}

fn xid_by_host(sim: &Sim, cluster: usize) -> BTreeMap<String, f64> {
    let url = sim.desc["dcgm"][cluster]
        .as_str()
        .expect("dcgm url")
        .to_string();
    let mut out = BTreeMap::new();
    for s in scrape(&url)
        .into_iter()
        .filter(|s| s.name == "DCGM_FI_DEV_XID_ERRORS")
    {
        let host = s.labels.get("Hostname").cloned().expect("Hostname");
        let v = out.entry(host).or_insert(0.0);
        *v = f64::max(*v, s.value);
    }
    out
}

#[test]
fn xid_storm_shows_xid_errors_on_that_nodes_gpus_and_a_warning_event() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let node = gpu_node(&kube);
    assert!(
        xid_by_host(&sim, 0).values().all(|v| *v == 0.0),
        "no XID before the storm"
    );

    let r = inject(&sim, &format!("xid-storm?cluster=sim-a&node={node}"));
    assert_eq!(r["detail"]["node"], node.as_str());

    let xids = xid_by_host(&sim, 0);
    assert!(
        xids[&node] > 0.0,
        "DCGM_FI_DEV_XID_ERRORS on {node}: {xids:?}"
    );
    let url = sim.desc["dcgm"][0].as_str().expect("dcgm url");
    let codes: BTreeSet<u64> = scrape(url)
        .iter()
        .filter(|s| s.name == "DCGM_FI_DEV_XID_ERRORS" && s.value > 0.0)
        .map(|s| s.value as u64)
        .collect();
    assert!(
        !codes.is_empty() && codes.is_subset(&BTreeSet::from([79, 48, 94])),
        "the storm's XIDs are 79, 48 and 94: {codes:?}"
    );
    assert!(
        xids.iter()
            .filter(|(h, _)| **h != node)
            .all(|(_, v)| *v == 0.0),
        "only {node} has XIDs: {xids:?}"
    );
    assert!(
        xid_by_host(&sim, 1).values().all(|v| *v == 0.0),
        "the other cluster is untouched"
    );

    let events = kube.items(&format!(
        "/api/v1/events?fieldSelector=involvedObject.name%3D{node},type%3DWarning"
    ));
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("Xid"))),
        "a Warning event about the XIDs: {events:?}"
    );
}

#[test]
fn node_notready_makes_the_node_unknown_and_unreachable() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let node = gpu_node(&kube);
    inject(&sim, &format!("node-notready?cluster=sim-a&node={node}"));
    let n = kube.ok(&format!("/api/v1/nodes/{node}"));
    let ready = n["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .expect("Ready condition");
    assert_eq!(ready["status"], "Unknown", "{ready}");
    let taints = n["spec"]["taints"].as_array().expect("taints");
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(
            taints
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == effect),
            "unreachable:{effect} in {taints:?}"
        );
    }
    let pods = kube.items(&format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    ));
    assert!(!pods.is_empty());
    for p in &pods {
        let ready = p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        assert_ne!(
            ready,
            Some(json!("True")),
            "{} on the lost node is no longer Ready",
            name(p)
        );
    }
}

#[test]
fn spot_interruption_taints_the_node_then_it_is_gone_after_the_deadline() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let nodes = kube.ok("/api/v1/nodes");
    let node = name(&nodes["items"][0]);
    let detail = inject(
        &sim,
        &format!("spot-interruption?cluster=sim-a&node={node}&deadline_seconds=2"),
    );
    assert_eq!(detail["detail"]["node"], node.as_str());

    // Replayed from the list's version, so the order is what the API server recorded.
    let mut tainted = false;
    let mut deleted = false;
    let watch = format!(
        "/api/v1/nodes?watch=true&resourceVersion={}&fieldSelector=metadata.name%3D{node}\
         &timeoutSeconds=25",
        rv(&nodes)
    );
    for e in kube.watch(&watch) {
        let has_taint = e["object"]["spec"]["taints"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["key"] == "aws-node-termination-handler/spot-itn" && t["effect"] == "NoSchedule"
            })
        });
        match e["type"].as_str() {
            Some("MODIFIED") if has_taint => tainted = true,
            Some("DELETED") => {
                deleted = true;
                break;
            }
            _ => {}
        }
    }
    assert!(tainted, "the node got the spot-itn taint before it went");
    assert!(deleted, "the node is deleted at the deadline");
    assert_status(&kube.get(&format!("/api/v1/nodes/{node}")), 404, "NotFound");
}

/// What a vLLM endpoint's `/metrics` says about the traffic it has answered so far.
#[derive(Debug, Clone, Copy)]
struct VllmFigures {
    /// `http_requests_total` with a 5xx status.
    errors: f64,
    /// `http_requests_total`, every status.
    answers: f64,
    /// `vllm:e2e_request_latency_seconds` sum and count: the requests it served.
    latency_sum: f64,
    served: f64,
    /// `vllm:num_requests_waiting`: a queue builds when the server is slow.
    waiting: f64,
}

impl VllmFigures {
    fn of(url: &str) -> VllmFigures {
        let m = scrape(&format!("{url}/metrics"));
        let is_5xx = |s: &Sample| s.labels.get("status").is_some_and(|c| c.starts_with('5'));
        VllmFigures {
            errors: sum_of(&m, "http_requests_total", is_5xx),
            answers: sum_of(&m, "http_requests_total", |_| true),
            latency_sum: sum_of(&m, "vllm:e2e_request_latency_seconds_sum", |_| true),
            served: sum_of(&m, "vllm:e2e_request_latency_seconds_count", |_| true),
            waiting: sum_of(&m, "vllm:num_requests_waiting", |_| true),
        }
    }

    /// Mean latency of the requests served between `earlier` and `self`.
    fn mean_latency_since(&self, earlier: &VllmFigures) -> f64 {
        (self.latency_sum - earlier.latency_sum) / (self.served - earlier.served)
    }
}

fn health_code(url: &str) -> u16 {
    http()
        .get(format!("{url}/health"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The JSON patch `kubectl rollout undo` sends: the old ReplicaSet's template without the
/// controller's hash label, and the deployment's annotations with the old set's own.
fn rollout_undo_patch(dep: &Value, old_rs: &Value) -> String {
    let mut template = old_rs["spec"]["template"].clone();
    if let Some(l) = template["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    let mut annotations = dep["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    const SKIP: [&str; 5] = [
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
    ];
    if let Some(rs_ann) = old_rs["metadata"]["annotations"].as_object() {
        for (k, v) in rs_ann.iter().filter(|(k, _)| !SKIP.contains(&k.as_str())) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
    .to_string()
}

#[test]
fn a_bad_rollout_is_slow_and_failing_and_a_rollback_heals_it() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    let url = sim.endpoint("llama-chat");
    let dep_path = "/apis/apps/v1/namespaces/serving/deployments/llama-chat";
    let rs_path = "/apis/apps/v1/namespaces/serving/replicasets";
    let good_rev = revision(&kube.ok(dep_path));
    assert_eq!(health_code(&url), 200);
    assert_eq!(
        VllmFigures::of(&url).waiting,
        0.0,
        "a healthy server keeps up"
    );

    let injected = inject(&sim, "bad-rollout?endpoint=llama-chat");
    let dep = kube.ok(dep_path);
    let bad_rev = revision(&dep);
    assert!(
        bad_rev > good_rev,
        "the bad rollout is a new revision ({good_rev} → {bad_rev})"
    );
    assert_eq!(injected["detail"]["revision"], bad_rev.to_string());

    wait_until("the bad revision to serve and queue", WAIT, || {
        VllmFigures::of(&url).waiting > 0.0
    });
    let bad_start = VllmFigures::of(&url);
    wait_until(
        "errors and slow answers from the bad revision",
        WAIT,
        || {
            let now = VllmFigures::of(&url);
            now.errors >= bad_start.errors + 3.0 && now.served >= bad_start.served + 8.0
        },
    );
    let bad_mean = VllmFigures::of(&url).mean_latency_since(&bad_start);

    let sets = kube.items(&format!("{rs_path}?labelSelector=app%3Dllama-chat"));
    let good_rs = sets
        .iter()
        .find(|s| revision(s) == good_rev)
        .expect("the ReplicaSet of the good revision");
    let undo = rollout_undo_patch(&dep, good_rs);
    let r = kube.patch(dep_path, "application/json-patch+json", &undo);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(
        revision(&kube.ok(dep_path)),
        bad_rev + 1,
        "a rollback is the next revision"
    );
    let sets_after = kube.items(&format!("{rs_path}?labelSelector=app%3Dllama-chat"));
    assert_eq!(sets_after.len(), sets.len(), "the old ReplicaSet is reused");
    let reused = kube.ok(&format!("{rs_path}/{}", name(good_rs)));
    assert_eq!(revision(&reused), bad_rev + 1);

    wait_until("the endpoint to heal", WAIT, || {
        let ready = kube.ok(dep_path)["status"]["readyReplicas"]
            .as_u64()
            .unwrap_or(0);
        ready > 0 && health_code(&url) == 200 && VllmFigures::of(&url).waiting == 0.0
    });
    let healed_start = VllmFigures::of(&url);
    wait_until("traffic after the rollback", WAIT, || {
        VllmFigures::of(&url).served >= healed_start.served + 8.0
    });
    let healed = VllmFigures::of(&url);
    let errors = healed.errors - healed_start.errors;
    assert!(
        errors <= 1.0,
        "the healed revision hardly fails: {errors} errors"
    );
    let healed_mean = healed.mean_latency_since(&healed_start);
    assert!(
        bad_mean > 1.5 * healed_mean,
        "the bad revision was slower than the healed one: {bad_mean:.3}s against {healed_mean:.3}s"
    );
}

#[test]
fn endpoint_outage_makes_vllm_health_answer_503_until_cleared() {
    let sim = small_sim();
    let url = sim.endpoint("llama-chat");
    assert_eq!(health_code(&url), 200);
    inject(&sim, "endpoint-outage?endpoint=llama-chat");
    wait_until("/health to answer 503", WAIT, || health_code(&url) == 503);
    let r = control(&sim, Method::DELETE, "/scenarios/endpoint-outage");
    assert_eq!(r.code, 200, "{}", r.body);
    wait_until("/health to answer 200 again", WAIT, || {
        health_code(&url) == 200
    });
}

#[test]
fn pdb_block_makes_every_eviction_of_the_endpoints_pods_answer_429() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    inject(&sim, "pdb-block?endpoint=llama-chat");
    let pods = live_pods_of(&kube, "serving", "llama-chat");
    assert!(!pods.is_empty());
    for p in &pods {
        let pod = name(p);
        let r = kube.post(
            &format!("/api/v1/namespaces/serving/pods/{pod}/eviction"),
            &eviction(&pod, "serving"),
        );
        assert_status(&r, 429, "TooManyRequests");
        assert!(
            r.body["details"]["causes"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("llama-chat"),
            "{}",
            r.body
        );
    }
    assert!(
        sim.counters("sim-a")["evictions_refused_pdb"]
            .as_u64()
            .unwrap_or(0)
            >= pods.len() as u64
    );
}

#[test]
fn api_flaky_fails_some_requests_with_500_and_counts_them() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 0);
    inject(&sim, "api-flaky?cluster=sim-a");
    let mut failure = None;
    for _ in 0..300 {
        let r = kube.get("/api/v1/namespaces");
        if r.code == 500 {
            failure = Some(r);
            break;
        }
        assert_eq!(r.code, 200, "{}", r.body);
    }
    let failure = failure.expect("some request fails while the API is flaky");
    assert_status(&failure, 500, "InternalError");
    assert!(
        sim.counters("sim-a")["injected_failures"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        sim.counters("sim-a")
    );
    assert_eq!(
        sim.counters("sim-b")["injected_failures"].as_u64(),
        Some(0),
        "the other cluster is not flaky"
    );

    let r = control(&sim, Method::DELETE, "/scenarios/api-flaky");
    assert_eq!(r.code, 200, "{}", r.body);
    for _ in 0..30 {
        assert_eq!(
            kube.get("/api/v1/namespaces").code,
            200,
            "cleared: every request answers"
        );
    }
}

#[test]
fn counters_report_the_mutating_requests_of_each_cluster() {
    let sim = small_sim();
    let kube = Kube::of(&sim, 1);
    let before = sim.counters("sim-b")["mutating"]
        .as_u64()
        .expect("mutating");
    let node = name(&kube.items("/api/v1/nodes")[0]);
    for i in 0..3 {
        let r = kube.patch(
            &format!("/api/v1/nodes/{node}"),
            "application/merge-patch+json",
            &format!(r#"{{"metadata":{{"labels":{{"n":"{i}"}}}}}}"#),
        );
        assert_eq!(r.code, 200);
    }
    assert_eq!(sim.counters("sim-b")["mutating"].as_u64(), Some(before + 3));
}

// ---- DCGM, OpenCost, endpoints -----------------------------------------------------------

/// FB_USED per (Hostname, gpu) of the GPUs not held by the training gang (whose memory
/// saw-tooths), with the pod holding each.
fn flat_fb_used(url: &str) -> BTreeMap<(String, String), (f64, String)> {
    scrape(url)
        .into_iter()
        .filter(|s| s.name == "DCGM_FI_DEV_FB_USED")
        .filter(|s| s.labels.get("namespace").map(String::as_str) != Some("training"))
        .map(|s| {
            let key = (s.labels["Hostname"].clone(), s.labels["gpu"].clone());
            let pod = s.labels.get("pod").cloned().unwrap_or_default();
            (key, (s.value, pod))
        })
        .collect()
}

#[test]
fn a_gpu_memory_leak_grows_exactly_one_serving_gpu_until_cleared() {
    let sim = small_sim();
    let url = sim.desc["dcgm"][0].as_str().expect("dcgm url");
    let healthy = flat_fb_used(url);
    assert!(
        healthy.values().any(|(v, _)| *v > 0.0),
        "GPUs held: {healthy:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(flat_fb_used(url), healthy, "healthy memory stays flat");

    let r = inject(&sim, "gpu-memory-leak");
    let pod = r["detail"]["pod"].as_str().expect("detail.pod").to_string();
    assert!(pod.starts_with("serving/llama-chat-"), "{r}");
    let mut readings = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        readings.push(flat_fb_used(url));
    }
    let grown: Vec<&(String, String)> = healthy
        .keys()
        .filter(|k| readings.iter().any(|r| r[*k].0 != healthy[*k].0))
        .collect();
    assert_eq!(grown.len(), 1, "exactly one GPU leaks: {grown:?}");
    let leaking = grown[0];
    assert_eq!(
        format!("serving/{}", readings[0][leaking].1),
        pod,
        "the leaking GPU is the pod's"
    );
    let series: Vec<f64> = readings.iter().map(|r| r[leaking].0).collect();
    assert!(
        healthy[leaking].0 < series[0] && series.windows(2).all(|w| w[0] < w[1]),
        "grows steadily from {}: {series:?}",
        healthy[leaking].0
    );

    let cleared = control(&sim, Method::DELETE, "/scenarios/gpu-memory-leak");
    assert_eq!(cleared.code, 200, "{}", cleared.body);
    let after = flat_fb_used(url);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(flat_fb_used(url), after, "no growth once cleared");
    assert_eq!(after, healthy, "back to the flat level");
}

#[test]
fn dcgm_metrics_name_each_gpu_and_the_pod_the_kubernetes_api_places_on_it() {
    let sim = small_sim();
    for cluster in 0..2 {
        let kube = Kube::of(&sim, cluster);
        let nodes = kube.items("/api/v1/nodes");
        let pods = kube.items("/api/v1/pods?fieldSelector=status.phase%3DRunning");
        let samples = scrape(sim.desc["dcgm"][cluster].as_str().expect("dcgm url"));
        for family in [
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_XID_ERRORS",
        ] {
            assert!(
                samples.iter().any(|s| s.name == family),
                "cluster {cluster} exports {family}"
            );
        }
        let util: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "DCGM_FI_DEV_GPU_UTIL")
            .collect();
        for s in &util {
            for l in [
                "gpu",
                "UUID",
                "pci_bus_id",
                "device",
                "modelName",
                "Hostname",
            ] {
                assert!(
                    s.labels.get(l).is_some_and(|v| !v.is_empty()),
                    "label {l} on {s:?}"
                );
            }
            assert_eq!(s.labels["device"], format!("nvidia{}", s.labels["gpu"]));
        }
        for n in &nodes {
            let host = name(n);
            let series = util.iter().filter(|s| s.labels["Hostname"] == host).count() as u64;
            assert_eq!(series, node_gpus(n), "one series per GPU of {host}");
        }
        for p in pods.iter().filter(|p| gpus_requested(p) > 0) {
            let (pod, node) = (name(p), p["spec"]["nodeName"].as_str().expect("nodeName"));
            let held: Vec<&&Sample> = util
                .iter()
                .filter(|s| s.labels.get("pod") == Some(&pod))
                .collect();
            assert_eq!(
                held.len() as u64,
                gpus_requested(p),
                "{pod} appears on as many GPUs as it requests"
            );
            for s in held {
                assert_eq!(s.labels["Hostname"], node, "{pod} is on {node}");
                assert_eq!(
                    s.labels.get("namespace").map(String::as_str),
                    p["metadata"]["namespace"].as_str()
                );
            }
        }
        let gpu_pods: BTreeSet<String> = pods
            .iter()
            .filter(|p| gpus_requested(p) > 0)
            .map(name)
            .collect();
        for s in util.iter().filter(|s| s.labels.contains_key("pod")) {
            assert!(
                gpu_pods.contains(&s.labels["pod"]),
                "DCGM names only running GPU pods: {s:?}"
            );
        }
    }
}

#[test]
fn opencost_allocation_prices_each_namespace_and_team() {
    let sim = small_sim();
    let opencost = sim.desc["opencost"]
        .as_str()
        .expect("opencost url")
        .to_string();
    let get = |q: &str| {
        let resp = http()
            .get(format!("{opencost}/allocation?{q}"))
            .send()
            .expect("opencost");
        let code = resp.status().as_u16();
        (code, resp.json::<Value>().expect("JSON"))
    };

    let (code, body) = get("window=1d&aggregate=namespace");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["code"], 200);
    let sets = body["data"].as_array().expect("data");
    assert_eq!(sets.len(), 1, "a one-day window is one set");
    let set = sets[0].as_object().expect("a set is an object");
    for ns in ["serving", "platform", "kube-system"] {
        assert!(set.contains_key(ns), "{ns} in {:?}", set.keys());
    }
    for (ns, a) in set.iter().filter(|(k, _)| !k.starts_with("__")) {
        assert_eq!(a["name"], ns.as_str());
        assert!(
            a["totalCost"].as_f64().is_some_and(|c| c > 0.0),
            "{ns} costs something: {a}"
        );
        for f in ["cpuCost", "gpuCost", "ramCost", "gpuHours"] {
            assert!(a[f].is_number(), "{ns} has {f}");
        }
    }
    assert!(
        set["serving"]["gpuCost"].as_f64().unwrap_or(0.0) > 0.0,
        "serving runs on GPUs"
    );

    let (code, body) = get("window=1d&aggregate=label:team");
    assert_eq!(code, 200, "{body}");
    let teams: BTreeSet<&str> = body["data"][0]
        .as_object()
        .expect("set")
        .keys()
        .map(String::as_str)
        .collect();
    for t in ["inference", "platform", "data"] {
        assert!(teams.contains(t), "team {t} in {teams:?}");
    }

    let (code, body) = get("window=fortnight&aggregate=namespace");
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("window") && m.contains("fortnight")),
        "{body}"
    );
}

#[test]
fn kserve_v2_endpoints_answer_health_and_model_readiness() {
    let sim = small_sim();
    for e in sim.desc["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter(|e| e["protocol"] == "kserve-v2")
    {
        let url = e["url"].as_str().expect("url");
        let model = e["model"].as_str().expect("model");
        let get = |path: &str| {
            let r = http().get(format!("{url}{path}")).send().expect("kserve");
            (
                r.status().as_u16(),
                r.json::<Value>().unwrap_or(Value::Null),
            )
        };
        assert_eq!(get("/v2/health/live"), (200, json!({"live": true})));
        assert_eq!(get("/v2/health/ready"), (200, json!({"ready": true})));
        let (code, body) = get(&format!("/v2/models/{model}/ready"));
        assert_eq!(code, 200);
        assert_eq!(body["ready"], true);
        assert_eq!(get("/v2/models/no-such-model/ready").0, 404);
    }
}

#[test]
fn vllm_endpoint_answers_health_models_and_metrics() {
    let sim = small_sim();
    let url = sim.endpoint("llama-chat");
    assert_eq!(health_code(&url), 200);
    let models: Value = http()
        .get(format!("{url}/v1/models"))
        .send()
        .and_then(|r| r.json())
        .expect("models");
    let model = sim.desc["endpoints"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == "llama-chat"))
        .map(|e| e["model"].clone())
        .expect("model");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], model);

    wait_until("some traffic", WAIT, || VllmFigures::of(&url).answers > 0.0);
    let m = scrape(&format!("{url}/metrics"));
    for family in [
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:e2e_request_latency_seconds_sum",
        "vllm:e2e_request_latency_seconds_count",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "http_requests_total",
    ] {
        assert!(m.iter().any(|s| s.name == family), "/metrics has {family}");
    }
    let inf = m
        .iter()
        .find(|s| {
            s.name == "vllm:e2e_request_latency_seconds_bucket"
                && s.labels.get("le").map(String::as_str) == Some("+Inf")
        })
        .expect("+Inf bucket");
    assert_eq!(
        inf.value,
        sum_of(&m, "vllm:e2e_request_latency_seconds_count", |_| true),
        "the +Inf bucket counts every request"
    );
    assert!(
        m.iter()
            .filter(|s| s.name == "http_requests_total")
            .all(|s| s.labels.contains_key("status"))
    );
}

// ---- determinism ------------------------------------------------------------------------

/// (node names, pods as "namespace/name uid node", GPU series labels) of both clusters.
fn fleet_identity(sim: &Sim) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    let mut gpus = Vec::new();
    for c in 0..2 {
        let kube = Kube::of(sim, c);
        nodes.extend(kube.items("/api/v1/nodes").iter().map(name));
        pods.extend(kube.items("/api/v1/pods").iter().map(|p| {
            let s = |ptr: &str| {
                p.pointer(ptr)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            format!(
                "{}/{} {} {}",
                s("/metadata/namespace"),
                name(p),
                s("/metadata/uid"),
                s("/spec/nodeName")
            )
        }));
        let samples = scrape(sim.desc["dcgm"][c].as_str().expect("dcgm url"));
        gpus.extend(
            samples
                .iter()
                .filter(|s| s.name == "DCGM_FI_DEV_GPU_UTIL")
                .map(|s| format!("{:?}", s.labels)),
        );
    }
    (nodes, pods, gpus)
}

#[test]
fn the_same_seed_gives_the_same_fleet_and_another_seed_a_different_one() {
    let a = fleet_identity(&Sim::start(&[
        "--nodes",
        "8",
        "--clusters",
        "2",
        "--seed",
        "7",
    ]));
    let b = fleet_identity(&Sim::start(&[
        "--nodes",
        "8",
        "--clusters",
        "2",
        "--seed",
        "7",
    ]));
    let c = fleet_identity(&Sim::start(&[
        "--nodes",
        "8",
        "--clusters",
        "2",
        "--seed",
        "8",
    ]));
    assert_eq!(a.0, b.0, "seed 7 twice: the same nodes");
    assert_eq!(a.1, b.1, "seed 7 twice: the same pods, uids and placements");
    assert_eq!(a.2, b.2, "seed 7 twice: the same GPUs and holders");
    assert_ne!(a.1, c.1, "seeds 7 and 8 give different pods");
}

#[test]
fn rbac_deny_answers_403_for_that_resource_only_until_cleared() {
    let sim = small_sim();
    let r = control(
        &sim,
        Method::POST,
        "/scenarios/rbac-deny?cluster=sim-a&resource=poddisruptionbudgets",
    );
    assert_eq!(r.code, 200, "{}", r.body);
    let kube = sim.kube_url(0);
    let denied = http()
        .get(format!("{kube}/apis/policy/v1/poddisruptionbudgets"))
        .send()
        .expect("request");
    assert_eq!(denied.status().as_u16(), 403);
    let status: serde_json::Value = denied.json().expect("Status");
    assert_eq!(status["reason"], "Forbidden");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot list resource \"poddisruptionbudgets\""),
        "{status}"
    );
    let pods = http()
        .get(format!("{kube}/api/v1/pods?limit=1"))
        .send()
        .expect("request");
    assert_eq!(pods.status().as_u16(), 200, "other resources still answer");
    let other = http()
        .get(format!(
            "{}/apis/policy/v1/poddisruptionbudgets",
            sim.kube_url(1)
        ))
        .send()
        .expect("request");
    assert_eq!(other.status().as_u16(), 200, "other clusters still answer");
    let r = control(&sim, Method::DELETE, "/scenarios/rbac-deny");
    assert_eq!(r.code, 200);
    let again = http()
        .get(format!("{kube}/apis/policy/v1/poddisruptionbudgets"))
        .send()
        .expect("request");
    assert_eq!(again.status().as_u16(), 200);
}

#[test]
fn crashloop_rollout_makes_the_new_revision_crash_and_kubectl_undo_heals_it() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "8", "--pods-per-node", "6"]);
    let kubectl = Kubectl::new("1.33", &sim);
    let r = http()
        .post(format!("{}/scenarios/crashloop-rollout", sim.control()))
        .send()
        .expect("inject");
    assert!(r.status().is_success());
    wait_until(
        "a pod of the new revision in CrashLoopBackOff",
        Duration::from_secs(20),
        || {
            kubectl
                .ok(&["get", "pods", "-n", "serving", "--no-headers"])
                .contains("CrashLoopBackOff")
        },
    );
    kubectl.ok(&["rollout", "undo", "deployment/llama-chat", "-n", "serving"]);
    wait_until(
        "no pod crash-looping after the undo",
        Duration::from_secs(30),
        || {
            !kubectl
                .ok(&["get", "pods", "-n", "serving", "--no-headers"])
                .contains("CrashLoopBackOff")
        },
    );
}
