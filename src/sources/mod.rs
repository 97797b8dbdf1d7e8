//! Collectors, one tokio task each, that send [`Update`]s to `state`. Sources never touch
//! the UI or the store. May import model, config, telemetry.

pub mod airflow;
pub mod cost;
pub mod dcgm;
pub mod endpoints;
pub mod http;
pub mod kube;
pub mod logs;
pub mod mlflow;
pub mod nvml;
pub mod prom_text;
pub mod prometheus;
pub mod vector;

pub use crate::model::update::Update;
