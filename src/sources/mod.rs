//! Collectors, one tokio task each, that send [`Update`]s to `state`. Sources never touch
//! the UI or the store. May import model, config, error, telemetry.

pub mod cost;
pub mod dcgm;
pub mod endpoints;
pub mod kube;
pub mod nvml;
pub mod prom_text;
pub mod prometheus;

/// What a source tells `state`.
#[derive(Debug)]
pub enum Update {
    /// An event from cluster number `cluster` (its index in the configured list).
    Kube {
        cluster: usize,
        event: kube::KubeEvent,
    },
    /// The latest picture of configured endpoint number `index`.
    Endpoint(Box<endpoints::EndpointUpdate>),
    /// One round of a GPU source (a DCGM exporter, or NVML on this host).
    Gpu(Box<crate::model::gpu::GpuUpdate>),
    /// One round of the Prometheus collector.
    Prometheus(Box<prometheus::PrometheusUpdate>),
}
