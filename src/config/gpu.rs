//! `[gpu]` and `[prometheus]`: NVML, the DCGM exporters and the Prometheus server the GPU
//! readings come from.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Read this host's GPUs through NVML (degrades to a status line without a driver).
    pub nvml: bool,
    /// How often DCGM exporters are scraped and NVML is read, e.g. "10s".
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub interval: String,
    /// DCGM exporters to scrape, each with the cluster (kubeconfig context) it belongs to.
    pub dcgm: Vec<DcgmTarget>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Prometheus (or Thanos/Mimir) HTTP API base URL; empty: not used.
    pub url: String,
    /// A file holding a bearer token for it; empty: none.
    pub bearer_token_file: String,
    /// A PEM file of the private CA behind its https:// URL; empty: none.
    pub ca_file: String,
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub interval: String,
    /// How much history to read for the charts.
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub window: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            bearer_token_file: String::new(),
            ca_file: String::new(),
            interval: "30s".into(),
            window: "1h".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DcgmTarget {
    pub cluster: String,
    pub url: String,
    /// A PEM file of the private CA behind its https:// URL; empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            nvml: true,
            interval: "10s".into(),
            dcgm: Vec::new(),
        }
    }
}

impl GpuConfig {
    pub fn interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.interval).unwrap_or(std::time::Duration::from_secs(10))
    }
}
