//! `fleetdeck headless`: the same pipeline (sources, detectors, recording, runbooks) as the
//! cockpit, without a terminal, as an HA daemon fed by Alertmanager. May import sources, state,
//! pipeline, engine, store, runbook, actions, model, config and telemetry
//! (docs/architecture.md).
pub mod alerts;
pub mod api;
pub mod daemon;
pub mod events;
pub mod identity;
pub mod intake;
pub mod lease;
pub mod metrics;
pub mod server;
pub mod stream;
pub mod tls;
