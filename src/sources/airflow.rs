//! Airflow source: reads an Airflow webserver's stable REST API every `[airflow] interval` —
//! the DAGs, each DAG's newest runs, the failed task instances of its newest failed run, import
//! errors and `/health` — and sends one [`AirflowPicture`] a round. Airflow 2's `/api/v1` and
//! Airflow 3's `/api/v2` differ little in what is read here (v2's health moved to
//! `/api/v2/monitor/health`, its runs are ordered by `logical_date`), so one reader speaks both;
//! the fields it reads are checked against Airflow's published OpenAPI document by
//! `tests/airflow_source.rs`. A failed round keeps the last good DAGs and says why. Also the
//! one write, [`AirflowClient::clear_failed`], which `actions` performs through the guard.
//! Imports model and config.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::config::{AirflowApiVersion, AirflowAuth, AirflowConfig};
use crate::model::airflow::{
    AirflowHealth, AirflowPicture, DagModel, DagRunModel, FailedTask, ImportErrorModel, RunState,
};
use crate::model::update::Update;

/// The most DAGs read (one page of Airflow's maximum page size).
const DAGS_PAGE: usize = 100;

/// The webserver's answers, only the fields read (both API versions).
pub mod wire {
    use super::*;

    #[derive(Debug, Deserialize)]
    pub struct DagCollection {
        #[serde(default)]
        pub dags: Vec<Dag>,
        #[serde(default)]
        pub total_entries: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Dag {
        pub dag_id: String,
        #[serde(default)]
        pub is_paused: Option<bool>,
        #[serde(default)]
        pub description: Option<String>,
        #[serde(default)]
        pub owners: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct DagRunCollection {
        #[serde(default)]
        pub dag_runs: Vec<DagRun>,
    }

    #[derive(Debug, Deserialize)]
    pub struct DagRun {
        pub dag_run_id: Option<String>,
        #[serde(default)]
        pub state: Option<String>,
        #[serde(default)]
        pub logical_date: Option<DateTime<Utc>>,
        #[serde(default)]
        pub start_date: Option<DateTime<Utc>>,
        #[serde(default)]
        pub end_date: Option<DateTime<Utc>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct TaskInstanceCollection {
        #[serde(default)]
        pub task_instances: Vec<TaskInstance>,
    }

    #[derive(Debug, Deserialize)]
    pub struct TaskInstance {
        pub task_id: String,
        #[serde(default)]
        pub state: Option<String>,
        #[serde(default)]
        pub try_number: Option<u32>,
        #[serde(default)]
        pub end_date: Option<DateTime<Utc>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct ImportErrorCollection {
        #[serde(default)]
        pub import_errors: Vec<ImportError>,
    }

    #[derive(Debug, Deserialize)]
    pub struct ImportError {
        #[serde(default)]
        pub filename: Option<String>,
        #[serde(default)]
        pub stack_trace: Option<String>,
        #[serde(default)]
        pub timestamp: Option<DateTime<Utc>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct HealthInfo {
        #[serde(default)]
        pub metadatabase: Option<Status>,
        #[serde(default)]
        pub scheduler: Option<SchedulerStatus>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Status {
        #[serde(default)]
        pub status: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct SchedulerStatus {
        #[serde(default)]
        pub status: Option<String>,
        #[serde(default)]
        pub latest_scheduler_heartbeat: Option<DateTime<Utc>>,
    }
}

/// What went wrong talking to Airflow, naming the request and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AirflowError {
    #[error("{method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{method} {url} answered HTTP {status}: {why}{}",
        hint(*status)
    )]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        why: String,
    },
    #[error("{method} {url}: not Airflow's answer ({source})")]
    Body {
        method: &'static str,
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (check [airflow] username/password_file or token_file)",
        403 => {
            " (the Airflow user lacks a permission: reading needs the Viewer role, airflow_clear the User or Op role)"
        }
        _ => "",
    }
}

/// A client of one Airflow webserver's REST API.
#[derive(Clone)]
pub struct AirflowClient {
    http: reqwest::Client,
    base: String,
    auth: AirflowAuth,
    version: AirflowApiVersion,
}

/// The HTTP client for Airflow: the bundled and native roots, `[tls] ca_file` and
/// `[airflow] ca_file`, the `[airflow] timeout`.
pub fn airflow_http(cfg: &crate::config::Config) -> Result<reqwest::Client, String> {
    let roots = super::http::TlsRoots::load(&[
        ("tls.ca_file", &cfg.tls.ca_file),
        ("airflow.ca_file", &cfg.airflow.ca_file),
    ])
    .map_err(|e| e.to_string())?;
    roots
        .client_builder()
        .timeout(cfg.airflow.timeout)
        .build()
        .map_err(|e| format!("cannot build Airflow's HTTP client: {e}"))
}

impl AirflowClient {
    /// The credential is read now, from its file.
    pub fn new(cfg: &AirflowConfig, http: reqwest::Client) -> Result<Self, String> {
        Ok(Self {
            http,
            base: cfg.url.trim().trim_end_matches('/').to_string(),
            auth: cfg.read_auth()?,
            version: cfg.api_version,
        })
    }

    /// The API version spoken: the configured one, else `/api/v2/monitor/health` answering
    /// means Airflow 3.
    pub async fn detect(&mut self) -> Result<AirflowApiVersion, AirflowError> {
        if self.version != AirflowApiVersion::Auto {
            return Ok(self.version);
        }
        let url = format!("{}/api/v2/monitor/health", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| AirflowError::Transport {
                method: "GET",
                url: url.clone(),
                source,
            })?;
        self.version = if resp.status().is_success() {
            AirflowApiVersion::V2
        } else {
            AirflowApiVersion::V1
        };
        Ok(self.version)
    }

    fn prefix(&self) -> &'static str {
        match self.version {
            AirflowApiVersion::V2 => "/api/v2",
            _ => "/api/v1",
        }
    }

    pub fn version_word(&self) -> &'static str {
        match self.version {
            AirflowApiVersion::V2 => "v2",
            AirflowApiVersion::V1 => "v1",
            AirflowApiVersion::Auto => "auto",
        }
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            AirflowAuth::None => req,
            AirflowAuth::Basic { username, password } => req.basic_auth(username, Some(password)),
            AirflowAuth::Bearer(t) => req.bearer_auth(t),
        }
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        method: &'static str,
        url: String,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, AirflowError> {
        let resp = resp.map_err(|source| AirflowError::Transport {
            method,
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| AirflowError::Transport {
                method,
                url: url.clone(),
                source,
            })?;
        if !status.is_success() {
            // Airflow answers problem+json: its `detail` says why.
            let why = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(AirflowError::Status {
                method,
                url,
                status: status.as_u16(),
                why,
            });
        }
        serde_json::from_slice(&body).map_err(|source| AirflowError::Body {
            method,
            url,
            source,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, AirflowError> {
        let url = format!("{}{}{path}", self.base, self.prefix());
        let resp = self.authed(self.http.get(&url).query(query)).send().await;
        Self::answer("GET", url, resp).await
    }

    pub async fn dags(&self) -> Result<Vec<wire::Dag>, AirflowError> {
        let c: wire::DagCollection = self
            .get("/dags", &[("limit", DAGS_PAGE.to_string())])
            .await?;
        Ok(c.dags)
    }

    /// A DAG's newest `limit` runs, newest first.
    pub async fn runs(&self, dag: &str, limit: u32) -> Result<Vec<wire::DagRun>, AirflowError> {
        // v1 orders by the (deprecated) execution_date; v2 has only logical_date.
        let order = match self.version {
            AirflowApiVersion::V2 => "-logical_date",
            _ => "-execution_date",
        };
        let c: wire::DagRunCollection = self
            .get(
                &format!("/dags/{}/dagRuns", path_segment(dag)),
                &[
                    ("order_by", order.to_string()),
                    ("limit", limit.to_string()),
                ],
            )
            .await?;
        Ok(c.dag_runs)
    }

    pub async fn task_instances(
        &self,
        dag: &str,
        run: &str,
    ) -> Result<Vec<wire::TaskInstance>, AirflowError> {
        let c: wire::TaskInstanceCollection = self
            .get(
                &format!(
                    "/dags/{}/dagRuns/{}/taskInstances",
                    path_segment(dag),
                    path_segment(run)
                ),
                &[],
            )
            .await?;
        Ok(c.task_instances)
    }

    pub async fn import_errors(&self) -> Result<Vec<wire::ImportError>, AirflowError> {
        let c: wire::ImportErrorCollection = self.get("/importErrors", &[]).await?;
        Ok(c.import_errors)
    }

    pub async fn health(&self) -> Result<wire::HealthInfo, AirflowError> {
        let path = match self.version {
            AirflowApiVersion::V2 => "/monitor/health",
            _ => "/health",
        };
        self.get(path, &[]).await
    }

    /// Clears (re-runs) the failed task instances of `run`: `clearTaskInstances` with
    /// `only_failed` and `dry_run: false` (Airflow's default is a dry run). Answers the task
    /// ids cleared.
    pub async fn clear_failed(&self, dag: &str, run: &str) -> Result<Vec<String>, AirflowError> {
        let url = format!(
            "{}{}/dags/{}/clearTaskInstances",
            self.base,
            self.prefix(),
            path_segment(dag)
        );
        let body = serde_json::json!({
            "dry_run": false, "only_failed": true, "dag_run_id": run,
            "reset_dag_runs": true,
        });
        let resp = self.authed(self.http.post(&url).json(&body)).send().await;
        #[derive(Deserialize)]
        struct Cleared {
            #[serde(default)]
            task_instances: Vec<Ref>,
        }
        #[derive(Deserialize)]
        struct Ref {
            task_id: String,
        }
        let c: Cleared = Self::answer("POST", url, resp).await?;
        Ok(c.task_instances.into_iter().map(|r| r.task_id).collect())
    }

    /// One whole read: every DAG with its newest runs and, for a DAG whose newest finished run
    /// failed, that run's failed tasks.
    pub async fn read(
        &mut self,
        runs_kept: u32,
        slas: &BTreeMap<String, Duration>,
    ) -> Result<(Vec<DagModel>, Vec<ImportErrorModel>, Option<AirflowHealth>), AirflowError> {
        self.detect().await?;
        let mut dags = Vec::new();
        for d in self.dags().await? {
            let runs: Vec<DagRunModel> = self
                .runs(&d.dag_id, runs_kept)
                .await?
                .into_iter()
                .filter_map(|r| {
                    Some(DagRunModel {
                        run_id: r.dag_run_id?,
                        state: RunState::parse(r.state.as_deref()),
                        logical_date: r.logical_date,
                        start: r.start_date,
                        end: r.end_date,
                    })
                })
                .collect();
            let failed_run = runs
                .iter()
                .find(|r| r.state.finished())
                .filter(|r| r.state == RunState::Failed)
                .map(|r| r.run_id.clone());
            let failed_tasks = match &failed_run {
                Some(run) => self
                    .task_instances(&d.dag_id, run)
                    .await?
                    .into_iter()
                    .filter(|t| matches!(t.state.as_deref(), Some("failed" | "upstream_failed")))
                    .map(|t| FailedTask {
                        task_id: t.task_id,
                        state: t.state.unwrap_or_default(),
                        try_number: t.try_number,
                        end: t.end_date,
                    })
                    .collect(),
                None => Vec::new(),
            };
            dags.push(DagModel {
                sla_seconds: slas.get(&d.dag_id).map(Duration::as_secs),
                dag_id: d.dag_id,
                paused: d.is_paused.unwrap_or(false),
                description: d.description,
                owners: d.owners,
                runs,
                failed_run,
                failed_tasks,
            });
        }
        let import_errors = self
            .import_errors()
            .await?
            .into_iter()
            .map(|e| ImportErrorModel {
                filename: e.filename.unwrap_or_default(),
                error: e
                    .stack_trace
                    .as_deref()
                    .and_then(|s| s.lines().rev().find(|l| !l.trim().is_empty()))
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                at: e.timestamp,
            })
            .collect();
        // Health is a nicety: a proxy that hides it does not fail the round.
        let health = self.health().await.ok().map(|h| AirflowHealth {
            metadatabase_healthy: h
                .metadatabase
                .and_then(|m| m.status)
                .is_some_and(|s| s == "healthy"),
            scheduler_healthy: h
                .scheduler
                .as_ref()
                .and_then(|s| s.status.as_deref())
                .is_some_and(|s| s == "healthy"),
            latest_scheduler_heartbeat: h.scheduler.and_then(|s| s.latest_scheduler_heartbeat),
        });
        Ok((dags, import_errors, health))
    }
}

/// A DAG or run id as one URL path segment (run ids hold `:` and `+`).
fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Reads Airflow every `cfg.interval` and sends each round's picture.
pub fn spawn_airflow(
    mut client: AirflowClient,
    cfg: &AirflowConfig,
    tx: mpsc::Sender<Update>,
) -> tokio::task::JoinHandle<()> {
    let interval = cfg.interval;
    let runs_kept = cfg.runs_kept;
    let failed_runs = cfg.failed_runs;
    let slas = cfg.slas();
    let url = cfg.url.trim().to_string();
    tokio::spawn(async move {
        let mut last: Option<AirflowPicture> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let picture = match client.read(runs_kept, &slas).await {
                Ok((dags, import_errors, health)) => AirflowPicture {
                    url: url.clone(),
                    api_version: client.version_word().to_string(),
                    dags,
                    import_errors,
                    health,
                    failed_runs,
                    fetched_at: Some(Utc::now()),
                    error: None,
                },
                Err(e) => {
                    let error = e.to_string();
                    tracing::warn!(%error, "Airflow read failed");
                    match last.clone() {
                        Some(mut p) => {
                            p.error = Some(error);
                            p
                        }
                        None => AirflowPicture {
                            url: url.clone(),
                            api_version: client.version_word().to_string(),
                            dags: Vec::new(),
                            import_errors: Vec::new(),
                            health: None,
                            failed_runs,
                            fetched_at: None,
                            error: Some(error),
                        },
                    }
                }
            };
            last = Some(picture.clone());
            if tx.send(Update::Airflow(Box::new(picture))).await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_is_one_path_segment() {
        assert_eq!(
            path_segment("scheduled__2026-12-07T23:53:00+00:00"),
            "scheduled__2026-12-07T23%3A53%3A00%2B00%3A00"
        );
        assert_eq!(path_segment("manual run"), "manual%20run");
    }

    #[test]
    fn a_refusal_says_which_role_is_missing() {
        let e = AirflowError::Status {
            method: "POST",
            url: "http://a/api/v1/dags/d/clearTaskInstances".into(),
            status: 403,
            why: "Forbidden".into(),
        };
        assert!(e.to_string().contains("User or Op role"), "{e}");
    }
}
