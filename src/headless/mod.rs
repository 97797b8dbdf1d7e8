//! `fleetdeck headless`: the same sources, detectors and runbook engine without a terminal, as
//! an HA daemon fed by Alertmanager. May import sources, state, signals, runbook, store,
//! actions and telemetry.
pub mod alerts;
pub mod daemon;
pub mod events;
pub mod lease;
pub mod metrics;
pub mod server;
