//! `[airflow]`: the Apache Airflow webserver whose DAGs the pipelines source reads (Airflow 2's
//! stable REST API `/api/v1` or Airflow 3's `/api/v2`). Imports model.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{InlineSecret, read_secret};

/// Which of Airflow's REST APIs to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AirflowApiVersion {
    /// Ask `/api/v2/monitor/health` first; a 404 means Airflow 2 (`/api/v1`).
    #[default]
    Auto,
    /// Airflow 2.x: `/api/v1`.
    V1,
    /// Airflow 3.x: `/api/v2`.
    V2,
}

/// `[airflow]`: where the webserver is, how to authenticate (basic auth with a user and a
/// password from a file, or a bearer token from a file; never a secret in the config), how
/// often to read it, and what makes a DAG failing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AirflowConfig {
    /// e.g. `http://airflow-webserver.airflow.svc:8080`; empty: no Airflow.
    pub url: String,
    pub api_version: AirflowApiVersion,
    /// Basic auth's user (Airflow 2's `basic_auth` backend); its password from `password_file`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password_file: String,
    /// A bearer token (Airflow 3's JWT, or a proxy's) read from this file instead.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_file: String,
    /// A PEM file of private CAs the webserver's certificate is checked against, beside
    /// `[tls] ca_file`; empty: none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(with = "crate::model::duration_serde")]
    pub interval: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub timeout: Duration,
    /// How many of a DAG's newest finished runs must all have failed for `pipeline.dag_failing`.
    pub failed_runs: u32,
    /// How many runs of each DAG are read (newest first), for the pane's run strip.
    pub runs_kept: u32,
    /// Per DAG id: how long a run may run before it is past its SLA (`pipeline.dag_failing`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sla: BTreeMap<String, String>,
    /// Refused: a secret written in the config.
    #[serde(default, skip_serializing)]
    pub password: Option<InlineSecret>,
    #[serde(default, skip_serializing)]
    pub token: Option<InlineSecret>,
}

impl Default for AirflowConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_version: AirflowApiVersion::Auto,
            username: String::new(),
            password_file: String::new(),
            token_file: String::new(),
            ca_file: String::new(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            failed_runs: 2,
            runs_kept: 10,
            sla: BTreeMap::new(),
            password: None,
            token: None,
        }
    }
}

/// How the client authenticates, with the secret read from its file.
#[derive(Clone, PartialEq, Eq)]
pub enum AirflowAuth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for AirflowAuth {
    // Never print a secret, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AirflowAuth::None => f.write_str("None"),
            AirflowAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            AirflowAuth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl AirflowConfig {
    /// Whether an Airflow is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// The credential, read now from its file.
    pub fn read_auth(&self) -> Result<AirflowAuth, String> {
        if let Some(token) = read_secret(&self.token_file, "")
            .map_err(|e| format!("[airflow] token_file {}: {}", e.from, e.reason))?
        {
            return Ok(AirflowAuth::Bearer(token));
        }
        match read_secret(&self.password_file, "")
            .map_err(|e| format!("[airflow] password_file {}: {}", e.from, e.reason))?
        {
            Some(password) => Ok(AirflowAuth::Basic {
                username: self.username.trim().to_string(),
                password,
            }),
            None => Ok(AirflowAuth::None),
        }
    }

    /// Each DAG's SLA, parsed (validation has checked them).
    pub fn slas(&self) -> BTreeMap<String, Duration> {
        self.sla
            .iter()
            .filter_map(|(dag, d)| Some((dag.clone(), humantime::parse_duration(d.trim()).ok()?)))
            .collect()
    }

    /// Checks the section: (key, what is wrong and what to do).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.enabled() {
            match url::Url::parse(self.url.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err((
                        "url",
                        format!(
                            "{:?} is not an http(s) URL of an Airflow webserver (e.g. http://airflow-webserver.airflow.svc:8080)",
                            self.url
                        ),
                    ));
                }
            }
        }
        let has_password = !self.password_file.trim().is_empty();
        if has_password && !self.token_file.trim().is_empty() {
            return Err((
                "token_file",
                "names a token and a password_file: keep one (a bearer token, or basic auth)"
                    .into(),
            ));
        }
        if has_password && self.username.trim().is_empty() {
            return Err((
                "username",
                "is empty while password_file is set: give the Airflow user basic auth logs in as"
                    .into(),
            ));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(("interval", "must be 1s or more".into()));
        }
        if self.timeout < Duration::from_millis(100) {
            return Err(("timeout", "must be 100ms or more".into()));
        }
        if self.failed_runs == 0 || self.failed_runs > 50 {
            return Err((
                "failed_runs",
                format!("{} is out of range: use 1 to 50", self.failed_runs),
            ));
        }
        if self.runs_kept < self.failed_runs || self.runs_kept > 100 {
            return Err((
                "runs_kept",
                format!(
                    "{} is out of range: use failed_runs ({}) to 100",
                    self.runs_kept, self.failed_runs
                ),
            ));
        }
        for (dag, d) in &self.sla {
            match humantime::parse_duration(d.trim()) {
                Ok(d) if d >= Duration::from_secs(1) => {}
                _ => {
                    return Err((
                        "sla",
                        format!("DAG {dag:?}: {d:?} is not a duration of 1s or more (e.g. \"2h\")"),
                    ));
                }
            }
        }
        Ok(())
    }
}
