//! `[log]` and `[sim]`: the log level and the simulated fleet's size and scenarios, with the
//! sim's limits restated (the sim shares no code with the client side).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub clusters: u32,
    pub nodes: u32,
    pub pods_per_node: u32,
    pub gpus_per_node: u32,
    pub seed: u64,
    pub listen: SocketAddr,
    pub scenarios: Vec<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            clusters: 2,
            nodes: 40,
            pods_per_node: 12,
            gpus_per_node: 8,
            seed: 42,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenarios: Vec::new(),
        }
    }
}

/// The sim's size limits and scenario names as `[sim]` accepts them. The sim is an
/// independent peer that shares no code with the client side, so they are restated here; a
/// test in `cli` checks that the two agree.
pub const SIM_MAX_CLUSTERS: u32 = 26;
pub const SIM_MAX_NODES_PER_CLUSTER: u32 = 5000;
pub const SIM_MAX_PODS_PER_NODE: u32 = 110;
pub const SIM_MAX_GPUS_PER_NODE: u32 = 16;
pub const SIM_SCENARIOS: &[&str] = &[
    "xid-storm",
    "node-notready",
    "spot-interruption",
    "bad-rollout",
    "crashloop-rollout",
    "pdb-block",
    "api-flaky",
    "rbac-deny",
    "endpoint-outage",
    "gpu-memory-leak",
    "training-stall",
    "training-straggler",
    "vector-index-stale",
    "airflow-failures",
    "spark-failed",
];
