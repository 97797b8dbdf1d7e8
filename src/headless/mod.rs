//! `fleetdeck headless`: the same pipeline (sources, detectors, recording, runbooks) as the
//! cockpit, without a terminal, as an HA daemon fed by Alertmanager. May import sources, state,
//! pipeline, store, runbook, model, config and telemetry (docs/architecture.md).
pub mod alerts;
pub mod daemon;
pub mod events;
pub mod intake;
pub mod lease;
pub mod metrics;
pub mod server;
pub mod stream;
pub mod tls;
