//! Spark on Kubernetes as the cockpit sees it: one Kubeflow Spark operator `SparkApplication`
//! (`sparkoperator.k8s.io/v1beta2`), its run's state, attempts, executors and driver pod.
//! Plain serde data; imports nothing of the crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The label the operator puts on the runs of a `ScheduledSparkApplication`: runs with the
/// same value are one application's runs over time.
pub const SCHEDULED_APP_LABEL: &str = "sparkoperator.k8s.io/scheduled-app-name";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparkApplicationModel {
    pub namespace: String,
    pub name: String,
    /// `status.applicationState.state` as the operator writes it (`SUBMITTED`, `RUNNING`,
    /// `COMPLETED`, `FAILED`, `SUBMISSION_FAILED`, …); empty before the operator saw it.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_pod: Option<String>,
    pub submission_attempts: u32,
    pub execution_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_submission: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Executors by the state the operator last recorded.
    pub executors_running: u32,
    pub executors_pending: u32,
    pub executors_total: u32,
    /// The `ScheduledSparkApplication` this run belongs to, if any (`SCHEDULED_APP_LABEL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_app: Option<String>,
}

impl SparkApplicationModel {
    /// The run ended in failure: the driver failed, or the operator could not submit it.
    pub fn failed(&self) -> bool {
        matches!(self.state.as_str(), "FAILED" | "SUBMISSION_FAILED")
    }

    /// The run finished well or is under way: a newer such run of the same application
    /// supersedes an older failure.
    pub fn healthy(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED" | "RUNNING" | "SUBMITTED" | "SUCCEEDING"
        )
    }

    /// Which application this run is one of: its scheduled application, else itself.
    pub fn app_key(&self) -> &str {
        self.scheduled_app.as_deref().unwrap_or(&self.name)
    }

    /// When this run began, for ordering runs of one application.
    pub fn started(&self) -> Option<DateTime<Utc>> {
        self.last_submission.or(self.created)
    }
}
