//! What the demo, `sim --config-out`, the rehearsal and the quality harness point a config at:
//! the sources a running sim serves ([`SimSources`]). Starting the sources is the engine's
//! ([`crate::engine::fleet`]); its names are re-exported here for the callers that knew them
//! here.

pub use crate::engine::fleet::{
    Running, action_clients, cost_options, prometheus_client, registry_reader, start, start_with,
    tls_roots,
};
pub use crate::engine::stages::evaluate_endpoints;

use crate::config::Config;

/// The sources a running sim serves, read from its description line: what the demo points
/// the cockpit at and what `sim --config-out` writes down.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSources {
    pub kubeconfig: String,
    pub dcgm: Vec<crate::config::DcgmTarget>,
    pub endpoints: Vec<crate::model::endpoint::EndpointConfig>,
    pub opencost_url: String,
    /// The sim's Airflow webserver (`[airflow]`): URL, user and password file.
    pub airflow: Option<crate::config::AirflowConfig>,
}

/// The demo's monthly budget per simulated node: the sim's run-rate forecast comes to about
/// $42,000 a node a month (measured at the default size), so a budget that scales with the
/// fleet leaves room to spare and a healthy simulated fleet stays within it.
pub const SIM_BUDGET_PER_NODE: f64 = 75_000.0;

impl SimSources {
    pub fn from_description(d: &serde_json::Value) -> Self {
        let clusters: Vec<String> = d["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let dcgm = clusters
            .iter()
            .zip(d["dcgm"].as_array().into_iter().flatten())
            .filter_map(|(c, u)| {
                Some(crate::config::DcgmTarget {
                    cluster: c.clone(),
                    url: u.as_str()?.to_string(),
                    ca_file: String::new(),
                })
            })
            .collect();
        let endpoints = d["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let spec = serde_json::json!({
                    "name": e["name"], "url": e["url"], "protocol": e["protocol"], "model": e["model"],
                    "serving": {"cluster": e["cluster"], "namespace": e["namespace"], "kind": "Deployment", "name": e["deployment"]},
                    "slo": {"availability": 0.999, "latency": {"percentile": "p99", "target_ms": 2500.0}},
                });
                serde_json::from_value(spec).ok()
            })
            .chain(sim_vector_stores(d))
            .collect();
        Self {
            kubeconfig: d["kubeconfig"].as_str().unwrap_or("").to_string(),
            dcgm,
            endpoints,
            opencost_url: d["opencost"].as_str().unwrap_or("").to_string(),
            airflow: d["airflow"]["url"]
                .as_str()
                .map(|url| crate::config::AirflowConfig {
                    url: url.to_string(),
                    api_version: crate::config::AirflowApiVersion::V1,
                    username: d["airflow"]["username"].as_str().unwrap_or("").to_string(),
                    password_file: d["airflow"]["password_file"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    interval: std::time::Duration::from_secs(SIM_AIRFLOW_INTERVAL_SECS),
                    ..crate::config::AirflowConfig::default()
                }),
        }
    }

    /// Points `cfg` at these sources: DCGM instead of NVML (the sim's GPUs are not this
    /// host's), scraped every 2 s, the endpoints with their SLOs, OpenCost, and `budget`
    /// unless the config names one.
    pub fn apply(&self, cfg: &mut Config, budget: f64) {
        cfg.gpu.nvml = false;
        cfg.gpu.interval = SIM_GPU_INTERVAL.into();
        cfg.gpu.dcgm = self.dcgm.clone();
        cfg.endpoints = self.endpoints.clone();
        cfg.cost.opencost_url = self.opencost_url.clone();
        if let Some(a) = &self.airflow {
            cfg.airflow = a.clone();
        }
        if cfg.cost.monthly_budget.is_none() {
            cfg.cost.monthly_budget = Some(budget);
        }
    }

    /// A fleetdeck.toml naming every source, so `fleetdeck --config PATH snapshot|headless|cost`
    /// sees what `demo` sees.
    pub fn config_toml(&self, budget: f64) -> String {
        #[derive(serde::Serialize)]
        struct File<'a> {
            kubernetes: Kubernetes<'a>,
            gpu: Gpu<'a>,
            cost: Cost<'a>,
            endpoints: &'a [crate::model::endpoint::EndpointConfig],
            #[serde(skip_serializing_if = "Option::is_none")]
            airflow: Option<&'a crate::config::AirflowConfig>,
        }
        #[derive(serde::Serialize)]
        struct Kubernetes<'a> {
            kubeconfig: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Gpu<'a> {
            nvml: bool,
            interval: &'a str,
            dcgm: &'a [crate::config::DcgmTarget],
        }
        #[derive(serde::Serialize)]
        struct Cost<'a> {
            opencost_url: &'a str,
            monthly_budget: f64,
        }
        let file = File {
            kubernetes: Kubernetes {
                kubeconfig: &self.kubeconfig,
            },
            gpu: Gpu {
                nvml: false,
                interval: SIM_GPU_INTERVAL,
                dcgm: &self.dcgm,
            },
            cost: Cost {
                opencost_url: &self.opencost_url,
                monthly_budget: budget,
            },
            endpoints: &self.endpoints,
            airflow: self.airflow.as_ref(),
        };
        let body = toml::to_string(&file).unwrap_or_else(|e| {
            // Every value above is a string, number, bool or table of them.
            unreachable!("the sim's config does not serialise: {e}")
        });
        format!(
            "# fleetdeck.toml for a simulated fleet (`fleetdeck sim --config-out`): its clusters,\n\
             # DCGM exporters, model endpoints with SLOs, OpenCost, Airflow and a budget. Valid while that\n\
             # sim runs; `fleetdeck config --config THIS` prints the effective settings.\n\n{body}"
        )
    }
}

/// The sim's vector stores (`vector_stores` in its description line) as endpoints: the
/// Pinecone-compatible index with its key file and ingestion Job, the Qdrant collection, each
/// with a query-latency SLO (p99 within 250 ms) and 99.9 % of probes answered.
fn sim_vector_stores(
    d: &serde_json::Value,
) -> impl Iterator<Item = crate::model::endpoint::EndpointConfig> + '_ {
    d["vector_stores"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let mut vector = serde_json::json!({"index": v["name"]});
            if let Some(key) = v["api_key_file"].as_str() {
                vector["api_key_file"] = serde_json::json!(key);
            }
            let mut spec = serde_json::json!({
                "name": v["name"], "url": v["url"], "protocol": v["protocol"],
                "vector": vector,
                "slo": {"availability": 0.999, "latency": {"percentile": "p99", "target_ms": 250.0}},
            });
            if v["ingestion"].is_object() {
                spec["ingestion"] = v["ingestion"].clone();
            }
            serde_json::from_value(spec).ok()
        })
}
/// How often the sim's Airflow is read: its DAGs run every minute or two.
const SIM_AIRFLOW_INTERVAL_SECS: u64 = 5;

/// How often the sim's DCGM exporters are scraped: their numbers move every second.
const SIM_GPU_INTERVAL: &str = "2s";

/// The monthly budget the demo and `sim --config-out` give a simulated fleet of `nodes`.
pub fn sim_budget(nodes: u32) -> f64 {
    f64::from(nodes) * SIM_BUDGET_PER_NODE
}

/// Points `cfg` at a running sim (see [`SimSources::apply`]), with a $500,000 budget unless
/// the config names one (the rehearsal's and the quality harness's fleets).
pub fn point_at_sim(cfg: &mut Config, d: &serde_json::Value) {
    SimSources::from_description(d).apply(cfg, 500_000.0);
}
