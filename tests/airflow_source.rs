//! The Airflow source against Airflow's published OpenAPI documents (Airflow 2.10.5's
//! `/api/v1`, Airflow 3.0.6's `/api/v2`: tests/fixtures/airflow, provenance in SOURCES.md) and
//! against `fleetdeck sim`'s Airflow over real HTTP: every path and field the client reads
//! exists in the document with the type it expects, the sim's answers validate against the
//! documents' schemas, and the client reads, sees a failing DAG and clears its failed run.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Sim, fixture, http};
use fleetdeck::config::{AirflowApiVersion, AirflowConfig};
use fleetdeck::model::airflow::RunState;
use fleetdeck::sources::airflow::AirflowClient;
use serde_json::Value;

fn document(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("airflow/{name}")))
        .unwrap_or_else(|e| panic!("read the {name} fixture: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

/// Follows `$ref`s (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s["$ref"].as_str() {
        let ptr = r.trim_start_matches('#');
        s = doc
            .pointer(ptr)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    s
}

/// An object schema's properties and required fields, `allOf` merged.
fn properties<'a>(doc: &'a Value, s: &'a Value) -> (BTreeMap<String, &'a Value>, Vec<String>) {
    let s = resolve(doc, s);
    let mut props = BTreeMap::new();
    let mut required: Vec<String> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    if let Some(p) = s["properties"].as_object() {
        for (k, v) in p {
            props.insert(k.clone(), v);
        }
    }
    for part in s["allOf"].as_array().into_iter().flatten() {
        let (p, r) = properties(doc, part);
        props.extend(p);
        required.extend(r);
    }
    (props, required)
}

/// The JSON types a schema admits (`null` when nullable).
fn types(doc: &Value, s: &Value) -> Vec<String> {
    let s = resolve(doc, s);
    let mut out = Vec::new();
    if let Some(t) = s["type"].as_str() {
        out.push(t.to_string());
    }
    if s["nullable"].as_bool() == Some(true) {
        out.push("null".into());
    }
    for alt in s["anyOf"].as_array().into_iter().flatten() {
        out.extend(types(doc, alt));
    }
    if s["enum"]
        .as_array()
        .is_some_and(|e| e.iter().any(Value::is_null))
    {
        out.push("null".into());
    }
    if s.get("properties").is_some() || s.get("allOf").is_some() {
        out.push("object".into());
    }
    out
}

/// The 200 answer's schema of `method path`.
fn answer_schema<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "the document has no {method} {path}");
    let ok = &op["responses"]["200"];
    let ok = resolve(doc, ok);
    &ok["content"]["application/json"]["schema"]
}

/// An API path, its collection's field, and the item fields with the JSON type read.
type ReadPath = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// Every field the client reads, by API path and version: (path, the collection's field, the
/// item fields with the JSON type the client reads them as).
fn read_fields(v2: bool) -> Vec<ReadPath> {
    let health = if v2 { "/monitor/health" } else { "/health" };
    vec![
        (
            "/dags",
            "dags",
            vec![
                ("dag_id", "string"),
                ("is_paused", "boolean"),
                ("description", "string"),
                ("owners", "array"),
            ],
        ),
        (
            "/dags/{dag_id}/dagRuns",
            "dag_runs",
            vec![
                ("dag_run_id", "string"),
                ("state", "string"),
                ("logical_date", "string"),
                ("start_date", "string"),
                ("end_date", "string"),
            ],
        ),
        (
            "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
            "task_instances",
            vec![
                ("task_id", "string"),
                ("state", "string"),
                ("try_number", "integer"),
                ("end_date", "string"),
            ],
        ),
        (
            "/importErrors",
            "import_errors",
            vec![
                ("filename", "string"),
                ("stack_trace", "string"),
                ("timestamp", "string"),
            ],
        ),
        (
            health,
            "",
            vec![("metadatabase", "object"), ("scheduler", "object")],
        ),
    ]
}

fn prefixed(v2: bool, path: &str) -> String {
    if v2 {
        format!("/api/v2{path}")
    } else {
        path.to_string()
    }
}

#[test]
fn every_path_and_field_the_client_reads_is_in_airflows_published_documents() {
    for (name, v2) in [("v1.yaml", false), ("v2.yaml", true)] {
        let doc = document(name);
        for (path, collection, fields) in read_fields(v2) {
            let path = prefixed(v2, path);
            let schema = answer_schema(&doc, &path, "get");
            let item = if collection.is_empty() {
                schema
            } else {
                let (props, _) = properties(&doc, schema);
                let list = props
                    .get(collection)
                    .unwrap_or_else(|| panic!("{name} {path}: no {collection}"));
                assert!(
                    types(&doc, list).contains(&"array".to_string()),
                    "{name} {path}: {collection}"
                );
                &resolve(&doc, list)["items"]
            };
            let (props, _) = properties(&doc, item);
            for (field, want) in fields {
                let s = props
                    .get(field)
                    .unwrap_or_else(|| panic!("{name} {path}: the item has no {field}"));
                let t = types(&doc, s);
                assert!(
                    t.contains(&want.to_string()),
                    "{name} {path}: {field} is {t:?}, the client reads {want}"
                );
            }
        }
        // The one write: clearTaskInstances with the body fields the client sends.
        let path = prefixed(v2, "/dags/{dag_id}/clearTaskInstances");
        let body = &doc["paths"][path.as_str()]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        let (props, _) = properties(&doc, body);
        for (field, want) in [
            ("dry_run", "boolean"),
            ("only_failed", "boolean"),
            ("dag_run_id", "string"),
            ("reset_dag_runs", "boolean"),
        ] {
            let s = props
                .get(field)
                .unwrap_or_else(|| panic!("{name} {path}: the body has no {field}"));
            assert!(
                types(&doc, s).contains(&want.to_string()),
                "{name} {path}: {field}"
            );
        }
        // Airflow's default is a dry run: the client must say dry_run false.
        assert_eq!(
            resolve(&doc, props["dry_run"])["default"],
            Value::Bool(true),
            "{name}"
        );
        // The ordering the client asks for exists.
        let runs = prefixed(v2, "/dags/{dag_id}/dagRuns");
        let params = doc["paths"][runs.as_str()]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<String> = params
            .iter()
            .map(|p| resolve(&doc, p)["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(
            names.iter().any(|n| n == "order_by") && names.iter().any(|n| n == "limit"),
            "{name}: {names:?}"
        );
    }
}

/// Validates `v` against schema `s`: types, enums, required fields, recursively.
fn validate(doc: &Value, s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, s);
    if let Some(alts) = s["anyOf"].as_array() {
        let ok = alts.iter().any(|a| {
            let mut e = Vec::new();
            validate(doc, a, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: {v} matches none of anyOf"));
        }
        return;
    }
    if v.is_null() {
        let t = types(doc, s);
        if !t.contains(&"null".to_string()) && !t.is_empty() && s["type"] != "null" {
            errors.push(format!("{at}: null where {t:?}"));
        }
        return;
    }
    if let Some(e) = s["enum"].as_array()
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} not in {e:?}"));
    }
    let ty = s["type"].as_str().unwrap_or("");
    let ok = match ty {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    };
    if !ok {
        errors.push(format!("{at}: {v} is not {ty}"));
        return;
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(doc, &s["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    if v.is_object() && (s.get("properties").is_some() || s.get("allOf").is_some()) {
        let (props, required) = properties(doc, s);
        for r in required {
            if v.get(&r).is_none() {
                errors.push(format!("{at}: required {r} missing"));
            }
        }
        for (k, sub) in props {
            if let Some(x) = v.get(&k) {
                validate(doc, sub, x, &format!("{at}.{k}"), errors);
            }
        }
    }
}

fn small_sim() -> Sim {
    Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "4",
        "--pods-per-node",
        "5",
        "--listen",
        "127.0.0.1:0",
    ])
}

fn airflow_url(sim: &Sim) -> String {
    sim.desc["airflow"]["url"]
        .as_str()
        .expect("airflow url")
        .to_string()
}

fn secret(sim: &Sim, key: &str) -> String {
    let path = sim.desc["airflow"][key].as_str().expect("secret file");
    std::fs::read_to_string(path).expect("read the secret file")
}

#[test]
fn the_sims_airflow_answers_validate_against_the_published_documents() {
    let sim = small_sim();
    let base = airflow_url(&sim);
    let client = http();
    let password = secret(&sim, "password_file");
    let token = secret(&sim, "token_file");
    for (name, v2) in [("v1.yaml", false), ("v2.yaml", true)] {
        let doc = document(name);
        let api = if v2 { "/api/v2" } else { "/api/v1" };
        let health = if v2 { "/monitor/health" } else { "/health" };
        let run_id = {
            let req = client.get(format!(
                "{base}{api}/dags/feature_build_nightly/dagRuns?limit=1&order_by=-{}",
                if v2 { "logical_date" } else { "execution_date" }
            ));
            let req = if v2 {
                req.bearer_auth(&token)
            } else {
                req.basic_auth("fleetdeck", Some(&password))
            };
            let v: Value = req.send().expect("dagRuns").json().expect("JSON");
            v["dag_runs"][0]["dag_run_id"]
                .as_str()
                .expect("a run")
                .to_string()
        };
        for (spec_path, real) in [
            ("/dags".to_string(), "/dags".to_string()),
            (
                "/dags/{dag_id}/dagRuns".into(),
                "/dags/embedding_refresh/dagRuns?limit=5".into(),
            ),
            (
                "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances".into(),
                format!(
                    "/dags/feature_build_nightly/dagRuns/{}/taskInstances",
                    run_id.replace(':', "%3A").replace('+', "%2B")
                ),
            ),
            ("/importErrors".into(), "/importErrors".into()),
            (health.to_string(), health.to_string()),
        ] {
            let req = client.get(format!("{base}{api}{real}"));
            let req = if v2 {
                req.bearer_auth(&token)
            } else {
                req.basic_auth("fleetdeck", Some(&password))
            };
            let resp = req.send().expect("GET");
            assert_eq!(resp.status().as_u16(), 200, "{name} {real}");
            let v: Value = resp.json().expect("JSON");
            let schema = answer_schema(&doc, &prefixed(v2, &spec_path), "get");
            let mut errors = Vec::new();
            validate(&doc, schema, &v, &format!("{name} {real}"), &mut errors);
            assert!(errors.is_empty(), "{}", errors.join("\n"));
        }
    }
    // Without credentials: 401, as Airflow's basic_auth backend answers.
    let r = client
        .get(format!("{base}/api/v1/dags"))
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
}

fn client_for(sim: &Sim, version: AirflowApiVersion) -> AirflowClient {
    let dir = sim.desc["airflow"].clone();
    let mut cfg = AirflowConfig {
        url: airflow_url(sim),
        api_version: version,
        ..AirflowConfig::default()
    };
    match version {
        AirflowApiVersion::V2 => cfg.token_file = dir["token_file"].as_str().unwrap_or("").into(),
        _ => {
            cfg.username = dir["username"].as_str().unwrap_or("").into();
            cfg.password_file = dir["password_file"].as_str().unwrap_or("").into();
        }
    }
    AirflowClient::new(&cfg, reqwest::Client::new()).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_both_apis_detects_the_version_and_skips_nothing() {
    let sim = tokio::task::block_in_place(small_sim);
    for version in [AirflowApiVersion::V1, AirflowApiVersion::V2] {
        let mut c = client_for(&sim, version);
        let (dags, import_errors, health) = c.read(10, &BTreeMap::new()).await.expect("read");
        let ids: Vec<&str> = dags.iter().map(|d| d.dag_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "feature_build_nightly",
                "embedding_refresh",
                "model_eval_nightly",
                "legacy_csv_export"
            ],
            "{version:?}"
        );
        let legacy = &dags[3];
        assert!(legacy.paused);
        assert_eq!(
            legacy.failed_run.as_deref(),
            legacy.runs.first().map(|r| r.run_id.as_str())
        );
        assert_eq!(legacy.failed_tasks[0].task_id, "export_csv");
        assert!(dags[0].runs.len() >= 10 && dags[0].failed_tasks.is_empty());
        assert!(import_errors.is_empty());
        assert!(health.is_some_and(|h| h.scheduler_healthy && h.metadatabase_healthy));
    }
    // `auto` asks /api/v2/monitor/health first: the sim answers, so it speaks v2.
    let mut auto = client_for(&sim, AirflowApiVersion::V2);
    assert_eq!(auto.detect().await.ok(), Some(AirflowApiVersion::V2));
    // A wrong password is refused, and the error says what to check.
    let mut cfg = AirflowConfig {
        url: airflow_url(&sim),
        api_version: AirflowApiVersion::V1,
        username: "fleetdeck".into(),
        ..AirflowConfig::default()
    };
    let wrong = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(wrong.path(), "not-the-password").expect("write");
    cfg.password_file = wrong.path().to_string_lossy().into_owned();
    let mut bad = AirflowClient::new(&cfg, reqwest::Client::new()).expect("client");
    let err = bad.read(2, &BTreeMap::new()).await.expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("password_file"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-password"),
        "the secret is never printed: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dag_is_read_with_its_failed_task_and_clearing_its_run_reruns_it() {
    let sim = tokio::task::block_in_place(small_sim);
    let control = sim.desc["control"].as_str().expect("control").to_string();
    let mut c = client_for(&sim, AirflowApiVersion::V1);
    let post = |path: String| async move {
        reqwest::Client::new()
            .post(path)
            .send()
            .await
            .expect("control")
            .status()
            .as_u16()
    };
    assert_eq!(
        post(format!("{control}/scenarios/airflow-failures")).await,
        200
    );
    // The next run's attempt starts within a period (60 s) and fails 23 s in.
    let deadline = Instant::now() + Duration::from_secs(120);
    let failed = loop {
        let (dags, _, _) = c.read(5, &BTreeMap::new()).await.expect("read");
        let d = dags
            .into_iter()
            .find(|d| d.dag_id == "feature_build_nightly")
            .expect("the DAG");
        if let Some(run) = d.failed_run.clone() {
            let tasks: Vec<(&str, &str)> = d
                .failed_tasks
                .iter()
                .map(|t| (t.task_id.as_str(), t.state.as_str()))
                .collect();
            assert_eq!(
                tasks,
                [
                    ("build_features", "failed"),
                    ("publish_features", "upstream_failed")
                ]
            );
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "no run of feature_build_nightly failed"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // Cleared while the fault holds: it fails again. After the fault is cleared: it succeeds.
    reqwest::Client::new()
        .delete(format!("{control}/scenarios/airflow-failures"))
        .send()
        .await
        .expect("clear the scenario");
    let cleared = c
        .clear_failed("feature_build_nightly", &failed)
        .await
        .expect("clear");
    assert_eq!(cleared, ["build_features", "publish_features"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = c.runs("feature_build_nightly", 10).await.expect("runs");
        let run = runs
            .iter()
            .find(|r| r.dag_run_id.as_deref() == Some(failed.as_str()))
            .expect("the cleared run");
        if RunState::parse(run.state.as_deref()) == RunState::Success {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleared run did not succeed: {:?}",
            run.state
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // A run that does not exist is Airflow's 404, named.
    let err = c
        .clear_failed("feature_build_nightly", "manual__nope")
        .await
        .expect_err("404");
    assert!(err.to_string().contains("404"), "{err}");
}
