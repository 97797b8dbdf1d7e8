//! A simulated Apache Airflow webserver: the stable REST API of Airflow 2 (`/api/v1`, basic
//! auth) and the same reads of Airflow 3 (`/api/v2`, bearer token) over a handful of DAGs whose
//! runs follow a compressed schedule from the sim's start, so a "nightly" DAG runs every minute
//! or two and a test sees several runs. Imports `sim::view` and `sim::fleet` only.
//!
//! Runs are a pure function of the clock, the DAG's schedule, the `airflow-failures` fault's
//! history (`FaultState::airflow_failures`: a run fails when its attempt started while the fault
//! held) and the clears a client asked for: a cleared run is attempted again from the clear's
//! time, and succeeds unless the fault still holds then. Answers follow the shapes of
//! `tests/fixtures/airflow/v1.yaml` (Airflow 2.10.5's published document), which
//! `tests/airflow_source.rs` validates them against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::fleet::SimFleet;
use super::view::AirflowFault;

/// The user the sim's Airflow accepts (basic auth, `/api/v1`).
pub const SIM_AIRFLOW_USER: &str = "fleetdeck";
/// Its password, written to a file beside the sim's kubeconfig.
pub const SIM_AIRFLOW_PASSWORD: &str = "sim-airflow-password";
/// The bearer token `/api/v2` accepts (Airflow 3's JWT, here opaque), written beside it too.
pub const SIM_AIRFLOW_TOKEN: &str = "sim-airflow-token";

/// The DAG `airflow-failures` breaks unless told another, and its task that fails.
pub const DEFAULT_FAILING_DAG: &str = "feature_build_nightly";
pub const DEFAULT_FAILING_TASK: &str = "build_features";

/// One simulated DAG: its schedule (compressed: `period_s` stands for its real interval) and
/// its tasks, run one after another, each taking `seconds`.
struct DagDef {
    dag_id: &'static str,
    description: &'static str,
    owner: &'static str,
    tags: &'static [&'static str],
    /// What the schedule stands for (Airflow's cron), shown as `timetable_description`.
    cron: &'static str,
    period_s: i64,
    tasks: &'static [(&'static str, &'static str, i64)],
    paused: bool,
}

static DAGS: &[DagDef] = &[
    DagDef {
        dag_id: "feature_build_nightly",
        description: "Nightly feature build: events to the feature store",
        owner: "data-eng",
        tags: &["features", "nightly"],
        cron: "0 2 * * *",
        period_s: 60,
        tasks: &[
            ("extract_events", "SparkSubmitOperator", 5),
            ("transform", "SparkSubmitOperator", 8),
            ("build_features", "KubernetesPodOperator", 10),
            ("publish_features", "PythonOperator", 4),
        ],
        paused: false,
    },
    DagDef {
        dag_id: "embedding_refresh",
        description: "Embeds new documents and upserts them into the vector index",
        owner: "ml-platform",
        tags: &["embeddings", "vector-index"],
        cron: "0 * * * *",
        period_s: 90,
        tasks: &[
            ("load_documents", "PythonOperator", 6),
            ("embed_chunks", "KubernetesPodOperator", 20),
            ("upsert_vectors", "PythonOperator", 8),
        ],
        paused: false,
    },
    DagDef {
        dag_id: "model_eval_nightly",
        description: "Evaluates the newest checkpoint against the held-out suites",
        owner: "ml-research",
        tags: &["eval", "nightly"],
        cron: "30 3 * * *",
        period_s: 120,
        tasks: &[
            ("pull_checkpoint", "PythonOperator", 5),
            ("run_evals", "KubernetesPodOperator", 30),
            ("publish_scores", "PythonOperator", 5),
        ],
        paused: false,
    },
    // Paused after its last runs failed: a failing paused DAG is nobody's page.
    DagDef {
        dag_id: "legacy_csv_export",
        description: "Exports features as CSV for the old reporting stack (paused)",
        owner: "data-eng",
        tags: &["legacy"],
        cron: "0 6 * * *",
        period_s: 300,
        tasks: &[("export_csv", "PythonOperator", 12)],
        paused: true,
    },
];

/// How many runs before the sim's start each DAG already has.
const HISTORY_RUNS: i64 = 12;

/// The simulated Airflow: the sim's start (the schedule's origin), the clears asked for and
/// where the fault is read.
pub struct AirflowSim {
    origin: DateTime<Utc>,
    fleet: Arc<SimFleet>,
    /// (dag, run id) → the times it was cleared, oldest first.
    clears: Mutex<Clears>,
}

/// (dag, run id) → the times it was cleared, oldest first.
type Clears = BTreeMap<(String, String), Vec<DateTime<Utc>>>;

/// One task's attempt in a run, as of a moment.
struct TaskAt {
    task_id: &'static str,
    operator: &'static str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    state: Option<&'static str>,
}

/// One run, as of a moment.
struct RunAt {
    dag_id: &'static str,
    run_id: String,
    logical: DateTime<Utc>,
    interval_end: DateTime<Utc>,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    state: &'static str,
    tries: usize,
    tasks: Vec<TaskAt>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(ts(t)))
}

impl AirflowSim {
    pub fn new(fleet: Arc<SimFleet>, origin: DateTime<Utc>) -> Self {
        Self {
            origin,
            fleet,
            clears: Mutex::new(BTreeMap::new()),
        }
    }

    fn clears(&self) -> MutexGuard<'_, Clears> {
        self.clears.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first run's data interval start: `HISTORY_RUNS` periods before the origin, on a
    /// whole period of the Unix epoch (as a cron schedule would be).
    fn first_logical(&self, d: &DagDef) -> DateTime<Utc> {
        let o = self.origin.timestamp();
        let aligned = o - o.rem_euclid(d.period_s);
        DateTime::<Utc>::from_timestamp(aligned - HISTORY_RUNS * d.period_s, 0)
            .unwrap_or(self.origin)
    }

    /// Every run of `d` that has started by `now`, oldest first.
    fn runs(&self, d: &'static DagDef, now: DateTime<Utc>) -> Vec<RunAt> {
        let faults = self.fleet.faults_mut().airflow_failures.clone();
        let clears = self.clears();
        let first = self.first_logical(d);
        let period = Duration::seconds(d.period_s);
        let mut out = Vec::new();
        for k in 0i32.. {
            let logical = first + period * k;
            let interval_end = logical + period;
            // A paused DAG stopped scheduling before the sim started.
            if interval_end > now || (d.paused && interval_end > self.origin) {
                break;
            }
            let run_id = format!("scheduled__{}", ts(logical).replace('Z', "+00:00"));
            let cleared = clears
                .get(&(d.dag_id.to_string(), run_id.clone()))
                .cloned()
                .unwrap_or_default();
            let attempt = cleared.last().copied().unwrap_or(interval_end);
            // The paused legacy DAG's last two runs failed (why it was paused).
            let failing = if d.paused {
                (i64::from(k) >= HISTORY_RUNS - 2).then_some("export_csv")
            } else {
                failing_task(&faults, d.dag_id, attempt)
            };
            out.push(run_at(
                d,
                run_id,
                logical,
                interval_end,
                attempt,
                failing,
                cleared.len() + 1,
                now,
            ));
        }
        out
    }

    fn dag_json(&self, d: &'static DagDef, now: DateTime<Utc>, v2: bool) -> Value {
        let next = self
            .runs(d, now)
            .last()
            .map_or(self.first_logical(d), |r| r.interval_end);
        let next_or_null = |t: DateTime<Utc>| if d.paused { Value::Null } else { json!(ts(t)) };
        let mut v = json!({
            "dag_id": d.dag_id, "dag_display_name": d.dag_id, "root_dag_id": null,
            "is_paused": d.paused, "is_active": true, "is_subdag": false,
            "last_parsed_time": ts(now - Duration::seconds(20)), "last_pickled": null,
            "last_expired": null, "scheduler_lock": null, "pickle_id": null,
            "default_view": "grid", "fileloc": format!("/opt/airflow/dags/{}.py", d.dag_id),
            "file_token": format!("sim-{}", d.dag_id), "owners": [d.owner],
            "description": d.description,
            "schedule_interval": {"__type": "CronExpression", "value": d.cron},
            "timetable_description": format!("{} (simulated: every {} s)", d.cron, d.period_s),
            "tags": d.tags.iter().map(|t| json!({"name": t, "dag_id": d.dag_id})).collect::<Vec<_>>(),
            "max_active_tasks": 16, "max_active_runs": 1,
            "has_task_concurrency_limits": false, "has_import_errors": false,
            "next_dagrun": if d.paused { Value::Null } else { json!(ts(next)) },
            "next_dagrun_data_interval_start": if d.paused { Value::Null } else { json!(ts(next)) },
            "next_dagrun_data_interval_end": if d.paused { Value::Null } else { json!(ts(next + Duration::seconds(d.period_s))) },
            "next_dagrun_create_after": if d.paused { Value::Null } else { json!(ts(next + Duration::seconds(d.period_s))) },
            "max_consecutive_failed_dag_runs": 0,
        });
        if v2 {
            // Airflow 3's DAG: bundles instead of pickles, "stale" instead of "active".
            for (k, x) in [
                ("is_stale", json!(false)),
                ("bundle_name", json!("dags-folder")),
                ("bundle_version", Value::Null),
                ("relative_fileloc", json!(format!("{}.py", d.dag_id))),
                ("timetable_summary", json!(d.cron)),
                ("next_dagrun_logical_date", next_or_null(next)),
                (
                    "next_dagrun_run_after",
                    next_or_null(next + Duration::seconds(d.period_s)),
                ),
            ] {
                v[k] = x;
            }
        }
        v
    }

    /// `POST clearTaskInstances`: the failed task instances of `dag_run_id` (or of every run
    /// with `only_failed` and no run named) start again now, unless `dry_run`.
    fn clear(&self, d: &'static DagDef, body: &Value, now: DateTime<Utc>) -> Result<Value, String> {
        let only_failed = body["only_failed"].as_bool().unwrap_or(true);
        let dry_run = body["dry_run"].as_bool().unwrap_or(true);
        let run_filter = body["dag_run_id"].as_str();
        let mut refs = Vec::new();
        let mut cleared = Vec::new();
        for r in self.runs(d, now) {
            if run_filter.is_some_and(|id| id != r.run_id) || r.end.is_none() {
                continue;
            }
            let tasks: Vec<&TaskAt> = r
                .tasks
                .iter()
                .filter(|t| !only_failed || matches!(t.state, Some("failed" | "upstream_failed")))
                .collect();
            if tasks.is_empty() {
                continue;
            }
            for t in tasks {
                refs.push(json!({"task_id": t.task_id, "dag_id": d.dag_id,
                    "execution_date": ts(r.logical), "dag_run_id": r.run_id}));
            }
            cleared.push(r.run_id.clone());
        }
        if let Some(id) = run_filter
            && cleared.is_empty()
            && !self.runs(d, now).iter().any(|r| r.run_id == id)
        {
            return Err(format!(
                "DAGRun with DAG ID: '{}' and DagRun ID: '{id}' not found",
                d.dag_id
            ));
        }
        if !dry_run {
            let mut clears = self.clears();
            for id in cleared {
                clears
                    .entry((d.dag_id.to_string(), id))
                    .or_default()
                    .push(now);
            }
        }
        Ok(json!({"task_instances": refs}))
    }
}

/// The task that fails in an attempt starting at `at`, if a fault on `dag` held then.
fn failing_task(faults: &[AirflowFault], dag: &str, at: DateTime<Utc>) -> Option<&'static str> {
    faults
        .iter()
        .filter(|f| f.dag == dag && f.from <= at && f.until.is_none_or(|u| at < u))
        .find_map(|f| {
            DAGS.iter()
                .find(|d| d.dag_id == dag)
                .and_then(|d| d.tasks.iter().find(|t| t.0 == f.task))
                .map(|t| t.0)
        })
}

#[allow(clippy::too_many_arguments)]
fn run_at(
    d: &'static DagDef,
    run_id: String,
    logical: DateTime<Utc>,
    interval_end: DateTime<Utc>,
    attempt: DateTime<Utc>,
    failing: Option<&str>,
    tries: usize,
    now: DateTime<Utc>,
) -> RunAt {
    let mut at = attempt;
    let mut tasks = Vec::new();
    let mut failed_at: Option<DateTime<Utc>> = None;
    let mut next_scheduled = true;
    for &(task_id, operator, secs) in d.tasks {
        if let Some(f) = failed_at {
            let state = (f <= now).then_some("upstream_failed");
            tasks.push(TaskAt {
                task_id,
                operator,
                start: None,
                end: state.map(|_| f),
                state,
            });
            continue;
        }
        let end = at + Duration::seconds(secs);
        let (start, end_shown, state) = if now < at {
            let s = next_scheduled.then_some("scheduled");
            next_scheduled = false;
            (None, None, s)
        } else if now < end {
            (Some(at), None, Some("running"))
        } else if failing == Some(task_id) {
            (Some(at), Some(end), Some("failed"))
        } else {
            (Some(at), Some(end), Some("success"))
        };
        if failing == Some(task_id) {
            failed_at = Some(end);
        }
        tasks.push(TaskAt {
            task_id,
            operator,
            start,
            end: end_shown,
            state,
        });
        at = end;
    }
    let finished = failed_at.unwrap_or(at);
    let (state, end) = if now < finished {
        ("running", None)
    } else if failed_at.is_some() {
        ("failed", Some(finished))
    } else {
        ("success", Some(finished))
    };
    RunAt {
        dag_id: d.dag_id,
        run_id,
        logical,
        interval_end,
        start: attempt,
        end,
        state,
        tries,
        tasks,
    }
}

fn run_json(r: &RunAt, v2: bool) -> Value {
    let mut v = json!({
        "dag_run_id": r.run_id, "dag_id": r.dag_id, "logical_date": ts(r.logical),
        "start_date": ts(r.start), "end_date": opt_ts(r.end),
        "data_interval_start": ts(r.logical), "data_interval_end": ts(r.interval_end),
        "last_scheduling_decision": ts(r.end.unwrap_or(r.start)),
        "run_type": "scheduled", "state": r.state, "external_trigger": false, "conf": {},
        "note": null,
    });
    if v2 {
        v["run_after"] = json!(ts(r.interval_end));
        v["queued_at"] = json!(ts(r.start));
        v["triggered_by"] = json!("timetable");
        v["dag_versions"] = json!([]);
        v["bundle_version"] = Value::Null;
    } else {
        v["execution_date"] = json!(ts(r.logical));
    }
    v
}

fn task_json(r: &RunAt, t: &TaskAt, v2: bool) -> Value {
    let mut v = json!({
        "task_id": t.task_id, "task_display_name": t.task_id, "dag_id": r.dag_id,
        "dag_run_id": r.run_id, "execution_date": ts(r.logical),
        "start_date": opt_ts(t.start), "end_date": opt_ts(t.end),
        "duration": match (t.start, t.end) { (Some(s), Some(e)) => json!((e - s).num_milliseconds() as f64 / 1000.0), _ => Value::Null },
        "state": t.state, "try_number": r.tries, "map_index": -1, "max_tries": r.tries - 1,
        "hostname": if t.start.is_some() { format!("airflow-worker-{}", r.tries % 3) } else { String::new() },
        "unixname": "airflow", "pool": "default_pool", "pool_slots": 1, "queue": "default",
        "priority_weight": 1, "operator": t.operator, "queued_when": opt_ts(t.start),
        "pid": null, "executor": null, "executor_config": "{}", "sla_miss": null,
        "rendered_map_index": null, "rendered_fields": {}, "trigger": null,
        "triggerer_job": null, "note": null,
    });
    if v2 {
        for (k, x) in [
            (
                "id",
                json!(format!("{}:{}:{}", r.dag_id, r.run_id, t.task_id)),
            ),
            ("logical_date", json!(ts(r.logical))),
            ("run_after", json!(ts(r.interval_end))),
            ("scheduled_when", opt_ts(t.start)),
            ("dag_version", Value::Null),
        ] {
            v[k] = x;
        }
    }
    v
}

fn reply(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Airflow's problem+json error body.
fn problem(code: StatusCode, title: &str, detail: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"detail": detail, "status": code.as_u16(), "title": title, "type": "about:blank"})
            .to_string(),
    )
        .into_response()
}

/// Whether the request carries the credential its API version takes: basic auth on `/api/v1`
/// (Airflow 2's `basic_auth` backend), a bearer token on `/api/v2` (Airflow 3).
fn authorised(headers: &HeaderMap, v2: bool) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if v2 {
        return value.strip_prefix("Bearer ") == Some(SIM_AIRFLOW_TOKEN);
    }
    let Some(b64) = value.strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair == format!("{SIM_AIRFLOW_USER}:{SIM_AIRFLOW_PASSWORD}"))
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn find_dag(id: &str) -> Option<&'static DagDef> {
    DAGS.iter().find(|d| d.dag_id == id)
}

/// `offset` and `limit`, or the 400 a bad one answers.
fn paged(q: &BTreeMap<String, String>, len: usize) -> Result<(usize, usize), Box<Response>> {
    let parse = |key: &str, default: usize| -> Result<usize, Box<Response>> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Box::new(problem(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    &format!("{key}: {v:?} is not a whole number"),
                ))
            }),
        }
    };
    let limit = parse("limit", 100)?;
    let offset = parse("offset", 0)?.min(len);
    Ok((offset, limit))
}

type Shared = Arc<AirflowSim>;

async fn dags(
    State(sim): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    v2: bool,
) -> Response {
    if !authorised(&headers, v2) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not authenticated",
        );
    }
    let q = query_map(q.as_deref());
    let now = Utc::now();
    let (offset, limit) = match paged(&q, DAGS.len()) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let paused_filter = q.get("paused").map(|p| p == "true");
    let all: Vec<Value> = DAGS
        .iter()
        .filter(|d| paused_filter.is_none_or(|p| p == d.paused))
        .map(|d| sim.dag_json(d, now, v2))
        .collect();
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    reply(
        StatusCode::OK,
        &json!({"dags": page, "total_entries": total}),
    )
}

async fn dag_runs(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(dag_id): Path<String>,
    RawQuery(q): RawQuery,
    v2: bool,
) -> Response {
    if !authorised(&headers, v2) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not authenticated",
        );
    }
    let Some(d) = find_dag(&dag_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "DAG not found",
            &format!("DAG with dag_id: '{dag_id}' not found"),
        );
    };
    let q = query_map(q.as_deref());
    let mut runs = sim.runs(d, Utc::now());
    let order = q.get("order_by").map_or("execution_date", String::as_str);
    let (desc, field) = match order.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order),
    };
    match field {
        "execution_date" | "logical_date" | "run_after" | "id" => {}
        "start_date" => runs.sort_by_key(|r| r.start),
        "end_date" => runs.sort_by_key(|r| r.end),
        other => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Ordering with unknown field",
                &format!(
                    "Ordering with '{other}' is disallowed or the attribute does not exist on the model"
                ),
            );
        }
    }
    if desc {
        runs.reverse();
    }
    if let Some(states) = q.get("state") {
        runs.retain(|r| states.split(',').any(|s| s == r.state));
    }
    let total = runs.len();
    let (offset, limit) = match paged(&q, total) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let page: Vec<Value> = runs
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| run_json(r, v2))
        .collect();
    reply(
        StatusCode::OK,
        &json!({"dag_runs": page, "total_entries": total}),
    )
}

async fn task_instances(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path((dag_id, run_id)): Path<(String, String)>,
    v2: bool,
) -> Response {
    if !authorised(&headers, v2) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not authenticated",
        );
    }
    let Some(d) = find_dag(&dag_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "DAG not found",
            &format!("DAG with dag_id: '{dag_id}' not found"),
        );
    };
    let runs = sim.runs(d, Utc::now());
    let Some(r) = runs.iter().find(|r| r.run_id == run_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "DAGRun not found",
            &format!("DAGRun with DAG ID: '{dag_id}' and DagRun ID: '{run_id}' not found"),
        );
    };
    let tis: Vec<Value> = r.tasks.iter().map(|t| task_json(r, t, v2)).collect();
    reply(
        StatusCode::OK,
        &json!({"total_entries": tis.len(), "task_instances": tis}),
    )
}

async fn clear_task_instances(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(dag_id): Path<String>,
    body: Bytes,
    v2: bool,
) -> Response {
    if !authorised(&headers, v2) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not authenticated",
        );
    }
    let Some(d) = find_dag(&dag_id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "DAG not found",
            &format!("DAG with dag_id: '{dag_id}' not found"),
        );
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "the body is not a JSON object",
            );
        }
    };
    match sim.clear(d, &body, Utc::now()) {
        Ok(v) => {
            tracing::info!(dag = dag_id, run = ?body["dag_run_id"], "airflow task instances cleared");
            reply(StatusCode::OK, &v)
        }
        Err(e) => problem(StatusCode::NOT_FOUND, "DAGRun not found", &e),
    }
}

async fn import_errors(headers: HeaderMap, v2: bool) -> Response {
    // None: the sim's DAG files all import (bundle_name is Airflow 3's, on each error).
    if !authorised(&headers, v2) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not authenticated",
        );
    }
    reply(
        StatusCode::OK,
        &json!({"import_errors": [], "total_entries": 0}),
    )
}

/// `/health` answers without credentials, as Airflow's does.
async fn health() -> Response {
    let beat = ts(Utc::now() - Duration::seconds(2));
    reply(
        StatusCode::OK,
        &json!({
            "metadatabase": {"status": "healthy"},
            "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": beat},
            "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": beat},
            "dag_processor": {"status": null, "latest_dag_processor_heartbeat": null},
        }),
    )
}

/// The webserver's routes: `/api/v1` (basic auth) and `/api/v2` (bearer token).
pub fn router(sim: Shared) -> Router {
    let mut r = Router::new();
    for (prefix, v2) in [("/api/v1", false), ("/api/v2", true)] {
        r = r
            .route(
                &format!("{prefix}/dags"),
                get(move |s, h, q| dags(s, h, q, v2)),
            )
            .route(
                &format!("{prefix}/dags/{{dag_id}}/dagRuns"),
                get(move |s, h, p, q| dag_runs(s, h, p, q, v2)),
            )
            .route(
                &format!("{prefix}/dags/{{dag_id}}/dagRuns/{{run_id}}/taskInstances"),
                get(move |s, h, p| task_instances(s, h, p, v2)),
            )
            .route(
                &format!("{prefix}/dags/{{dag_id}}/clearTaskInstances"),
                post(move |s, h, p, b| clear_task_instances(s, h, p, b, v2)),
            )
            .route(
                &format!("{prefix}/importErrors"),
                get(move |h| import_errors(h, v2)),
            );
    }
    r.route("/api/v1/health", get(health))
        .route("/api/v2/monitor/health", get(health))
        .route("/health", get(health))
        .with_state(sim)
}

/// The `airflow-failures` fault: `dag`'s `task` fails in every attempt from now until cleared.
pub fn inject_failures(
    fleet: &SimFleet,
    dag: Option<&str>,
    task: Option<&str>,
) -> Result<Value, String> {
    let dag = dag.unwrap_or(DEFAULT_FAILING_DAG);
    let d = find_dag(dag).ok_or_else(|| {
        let names: Vec<&str> = DAGS.iter().map(|d| d.dag_id).collect();
        format!("no DAG {dag:?}; the sim's Airflow has {}", names.join(", "))
    })?;
    let task = match task {
        Some(t) => d
            .tasks
            .iter()
            .find(|x| x.0 == t)
            .map(|x| x.0)
            .ok_or_else(|| {
                let names: Vec<&str> = d.tasks.iter().map(|x| x.0).collect();
                format!(
                    "DAG {dag} has no task {t:?}; its tasks: {}",
                    names.join(", ")
                )
            })?,
        None if dag == DEFAULT_FAILING_DAG => DEFAULT_FAILING_TASK,
        None => d.tasks.last().map_or("", |x| x.0),
    };
    let mut f = fleet.faults_mut();
    if f.airflow_failures
        .iter()
        .any(|x| x.dag == dag && x.until.is_none())
    {
        return Err(format!(
            "DAG {dag} is already failing; clear airflow-failures first"
        ));
    }
    f.airflow_failures.push(AirflowFault {
        dag: dag.to_string(),
        task: task.to_string(),
        from: Utc::now(),
        until: None,
    });
    Ok(json!({"dag": dag, "task": task}))
}

/// Ends every open `airflow-failures` fault now (runs that already failed stay failed).
pub fn clear_failures(fleet: &SimFleet) {
    let now = Utc::now();
    for f in fleet.faults_mut().airflow_failures.iter_mut() {
        if f.until.is_none() {
            f.until = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(id: &str) -> &'static DagDef {
        find_dag(id).unwrap_or_else(|| panic!("no {id}"))
    }

    #[test]
    fn a_run_attempted_while_the_fault_holds_fails_at_its_task_and_skips_the_rest() {
        let d = dag("feature_build_nightly");
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let r = run_at(
            d,
            "r".into(),
            t0,
            t0,
            t0,
            Some("build_features"),
            1,
            t0 + Duration::seconds(60),
        );
        assert_eq!(r.state, "failed");
        let states: Vec<_> = r.tasks.iter().map(|t| t.state).collect();
        assert_eq!(
            states,
            [
                Some("success"),
                Some("success"),
                Some("failed"),
                Some("upstream_failed")
            ]
        );
        assert_eq!(r.end, Some(t0 + Duration::seconds(23)));
        let ok = run_at(
            d,
            "r".into(),
            t0,
            t0,
            t0,
            None,
            1,
            t0 + Duration::seconds(10),
        );
        assert_eq!(ok.state, "running");
        assert_eq!(ok.tasks[1].state, Some("running"));
        assert_eq!(ok.tasks[2].state, Some("scheduled"));
        assert_eq!(ok.tasks[3].state, None);
    }

    #[test]
    fn a_fault_holds_from_its_start_until_it_is_cleared() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let f = [AirflowFault {
            dag: "feature_build_nightly".into(),
            task: "build_features".into(),
            from: t0,
            until: Some(t0 + Duration::seconds(100)),
        }];
        assert_eq!(
            failing_task(&f, "feature_build_nightly", t0 - Duration::seconds(1)),
            None
        );
        assert_eq!(
            failing_task(&f, "feature_build_nightly", t0),
            Some("build_features")
        );
        assert_eq!(failing_task(&f, "embedding_refresh", t0), None);
        assert_eq!(
            failing_task(&f, "feature_build_nightly", t0 + Duration::seconds(100)),
            None
        );
    }

    #[test]
    fn basic_auth_on_v1_and_a_bearer_token_on_v2() {
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{SIM_AIRFLOW_USER}:{SIM_AIRFLOW_PASSWORD}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(authorised(&h, false) && !authorised(&h, true));
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {SIM_AIRFLOW_TOKEN}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(authorised(&h, true) && !authorised(&h, false));
        assert!(!authorised(&HeaderMap::new(), false));
    }
}
