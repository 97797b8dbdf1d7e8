//! `[mlflow]`: the MLflow tracking server whose model registry names the endpoints' models.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{InlineSecret, read_secret};

/// `[mlflow]`: the MLflow tracking server whose model registry names the endpoints' models.
/// Its token comes from a file or the environment, never from the config itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// e.g. `http://mlflow.ml.svc:5000`; empty: no registry.
    pub tracking_uri: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_env: String,
    /// A PEM file of private CAs the registry's certificate is checked against, beside
    /// `[tls] ca_file` and the usual roots; empty: none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// The alias an endpoint serves when its `registry` names none.
    pub alias: String,
    /// How often each endpoint's model is read from the registry.
    #[serde(with = "crate::model::duration_serde")]
    pub interval: Duration,
    /// Each request's timeout.
    #[serde(with = "crate::model::duration_serde")]
    pub timeout: Duration,
    /// Refused: a secret written in the config.
    #[serde(default, skip_serializing)]
    pub token: Option<InlineSecret>,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        Self {
            tracking_uri: String::new(),
            token_file: String::new(),
            token_env: String::new(),
            ca_file: String::new(),
            alias: crate::model::registry::DEFAULT_ALIAS.to_string(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            token: None,
        }
    }
}

impl MlflowConfig {
    /// Whether a registry is configured.
    pub fn enabled(&self) -> bool {
        !self.tracking_uri.trim().is_empty()
    }

    /// The bearer token, read now from its file or variable; `None` without one.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        read_secret(&self.token_file, &self.token_env)
            .map_err(|e| format!("[mlflow] token from {}: {}", e.from, e.reason))
    }
}
