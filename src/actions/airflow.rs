//! Retrying a failed Airflow DAG run: `POST /dags/{id}/clearTaskInstances` with the run's id and
//! `only_failed` (Airflow re-runs the failed and upstream-failed task instances; the run goes
//! back to running). A dry run asks Airflow the same question with `dry_run: true`, which
//! answers the task instances it would clear and changes nothing. The one Airflow write; the
//! reads are `sources::airflow`'s. Imports model.

use chrono::Utc;
use serde_json::json;

use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::ApiOutcome;

/// How the writer authenticates (the secret already read from its file by the engine).
#[derive(Clone)]
pub enum AirflowCredential {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// A client of one Airflow webserver, for the change fleetdeck makes there.
#[derive(Clone)]
pub struct AirflowWriter {
    http: reqwest::Client,
    base: String,
    /// `/api/v1` (Airflow 2) or `/api/v2` (Airflow 3); `None`: asked of the webserver at the
    /// first clear (`/api/v2/monitor/health` answering means Airflow 3).
    prefix: Option<&'static str>,
    credential: AirflowCredential,
}

impl std::fmt::Debug for AirflowWriter {
    // Never print the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirflowWriter")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl AirflowWriter {
    /// `base` is the webserver's URL; `v2` picks Airflow 3's `/api/v2`, Airflow 2's `/api/v1`,
    /// or `None` to ask; `http` is the caller's client (its CA roots and timeout).
    pub fn new(
        base: &str,
        v2: Option<bool>,
        credential: AirflowCredential,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            base: base.trim().trim_end_matches('/').to_string(),
            prefix: v2.map(|v2| if v2 { "/api/v2" } else { "/api/v1" }),
            credential,
        }
    }

    async fn prefix(&self) -> &'static str {
        if let Some(p) = self.prefix {
            return p;
        }
        let url = format!("{}/api/v2/monitor/health", self.base);
        match self.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => "/api/v2",
            _ => "/api/v1",
        }
    }
}

fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Clears the failed task instances of run `run` of DAG `dag` (in a dry run: asks which).
pub async fn airflow_clear(
    ctx: &ActionContext,
    dag: &str,
    run: &str,
) -> Result<ActionReport, ActionError> {
    let target = format!("dag/{dag}");
    let mut report = ActionReport::new(ctx, "clear", target.clone());
    let Some(writer) = ctx.airflow.as_ref() else {
        return Err(ActionError::InvalidInput {
            what: "airflow_clear".into(),
            why: format!(
                "DAG {dag}: no Airflow is configured to clear its run in: set [airflow] url and its credential"
            ),
        });
    };
    let url = format!(
        "{}{}/dags/{}/clearTaskInstances",
        writer.base,
        writer.prefix().await,
        path_segment(dag)
    );
    let request = format!("POST {url}");
    let body = json!({
        "dry_run": ctx.dry_run, "only_failed": true, "dag_run_id": run, "reset_dag_runs": true,
    });
    let mut req = writer.http.post(&url).json(&body);
    req = match &writer.credential {
        AirflowCredential::None => req,
        AirflowCredential::Basic { username, password } => req.basic_auth(username, Some(password)),
        AirflowCredential::Bearer(t) => req.bearer_auth(t),
    };
    let resp = req.send().await.map_err(|e| ActionError::Airflow {
        request: request.clone(),
        message: format!("{e} (is [airflow] url right, and the webserver up?)"),
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let detail = value["detail"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    report.outcomes.push(ApiOutcome {
        at: Utc::now(),
        request: request.clone(),
        status,
        reason: String::new(),
        message: if status >= 300 {
            detail.clone()
        } else {
            String::new()
        },
        pdb: None,
    });
    if !(200..300).contains(&status) {
        let why = match status {
            401 => format!("{detail} (check [airflow] username/password_file or token_file)"),
            403 => format!(
                "{detail} (the Airflow user needs the User or Op role to clear task instances)"
            ),
            _ => detail,
        };
        let outcome = if status == 404 {
            ActionOutcome::Refused(format!("DAG {dag} has no run {run}: {why}"))
        } else {
            ActionOutcome::Failed(format!("Airflow answered HTTP {status}: {why}"))
        };
        return Ok(report.finish(
            outcome,
            format!("{target} run {run}: not cleared (HTTP {status})"),
        ));
    }
    let tasks: Vec<String> = value["task_instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["task_id"].as_str().map(str::to_string))
        .collect();
    if tasks.is_empty() {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!(
                "run {run} of DAG {dag} has no failed task instance"
            )),
            format!("{target} run {run}: nothing failed, nothing cleared"),
        ));
    }
    Ok(report.finish(
        ActionOutcome::Done,
        format!(
            "{target} run {run}: cleared {} failed task instance(s) ({}) to run again",
            tasks.len(),
            tasks.join(", ")
        ),
    ))
}
