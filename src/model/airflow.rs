//! What the Airflow source last read: the DAGs with their newest runs, the failed tasks of the
//! latest failed run, import errors and the scheduler's health, and where the source stands.
//! Plain serde data; imports nothing of the crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A DAG run's state (Airflow's `DagState`; anything newer than this list is `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
    Other,
}

impl RunState {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("queued") => RunState::Queued,
            Some("running") => RunState::Running,
            Some("success") => RunState::Success,
            Some("failed") => RunState::Failed,
            _ => RunState::Other,
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }

    pub fn word(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Other => "other",
        }
    }
}

/// One DAG run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagRunModel {
    pub run_id: String,
    pub state: RunState,
    pub logical_date: Option<DateTime<Utc>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A task instance that failed in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTask {
    pub task_id: String,
    /// `failed`, or `upstream_failed` for one that never ran because an upstream task failed.
    pub state: String,
    pub try_number: Option<u32>,
    pub end: Option<DateTime<Utc>>,
}

/// One DAG and its newest runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagModel {
    pub dag_id: String,
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Newest first.
    pub runs: Vec<DagRunModel>,
    /// The newest failed run's id and its failed tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_run: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tasks: Vec<FailedTask>,
    /// How long a run may take (`[airflow] sla`), if set for this DAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_seconds: Option<u64>,
}

impl DagModel {
    /// The newest finished runs, newest first.
    pub fn finished_runs(&self) -> impl Iterator<Item = &DagRunModel> {
        self.runs.iter().filter(|r| r.state.finished())
    }

    /// When its newest successful run ended.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.runs
            .iter()
            .filter(|r| r.state == RunState::Success)
            .find_map(|r| r.end.or(r.start))
    }
}

/// A DAG file the scheduler could not import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportErrorModel {
    pub filename: String,
    /// The stack trace's last line (the exception).
    pub error: String,
    pub at: Option<DateTime<Utc>>,
}

/// The webserver's `/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirflowHealth {
    pub metadatabase_healthy: bool,
    pub scheduler_healthy: bool,
    pub latest_scheduler_heartbeat: Option<DateTime<Utc>>,
}

/// The Airflow source's picture: what it read last, and how that went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AirflowPicture {
    /// The webserver's URL, as configured.
    pub url: String,
    /// `v1` or `v2`, as spoken (detected or configured).
    pub api_version: String,
    pub dags: Vec<DagModel>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_errors: Vec<ImportErrorModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AirflowHealth>,
    /// How many newest finished runs must all fail for `pipeline.dag_failing`.
    pub failed_runs: u32,
    /// When the last successful read ended.
    pub fetched_at: Option<DateTime<Utc>>,
    /// Why the last read failed (the DAGs are the last good read's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AirflowPicture {
    pub fn dag(&self, id: &str) -> Option<&DagModel> {
        self.dags.iter().find(|d| d.dag_id == id)
    }
}

/// The cluster of a DAG's signal subject: an Airflow is beside the clusters, not in one.
pub const AIRFLOW_SUBJECT: &str = "airflow";

/// Why a DAG is failing (`pipeline.dag_failing`), if it is.
#[derive(Debug, Clone, PartialEq)]
pub enum DagVerdict {
    /// Its newest `runs` finished runs failed.
    RunsFailed { runs: u32 },
    /// Its running run started at `started` and has run longer than `sla_seconds`.
    PastSla {
        run_id: String,
        started: DateTime<Utc>,
        sla_seconds: u64,
    },
}

/// Judges one DAG of `picture` at `now`.
pub fn judge(picture: &AirflowPicture, dag: &DagModel, now: DateTime<Utc>) -> Option<DagVerdict> {
    if dag.paused {
        return None;
    }
    let n = picture.failed_runs.max(1);
    let finished: Vec<_> = dag.finished_runs().take(n as usize).collect();
    if finished.len() == n as usize && finished.iter().all(|r| r.state == RunState::Failed) {
        return Some(DagVerdict::RunsFailed { runs: n });
    }
    let sla = dag.sla_seconds?;
    let running = dag.runs.iter().find(|r| r.state == RunState::Running)?;
    let started = running.start?;
    ((now - started).num_seconds() > sla as i64).then(|| DagVerdict::PastSla {
        run_id: running.run_id.clone(),
        started,
        sla_seconds: sla,
    })
}
