//! fleetdeck: a terminal cockpit for AI infrastructure. The modules, the flow between them and
//! what each may import are in docs/architecture.md (tests/architecture.rs holds them to it);
//! `sim` is an independent peer reached only over the network.
pub mod actions;
pub mod cli;
pub mod config;
pub mod engine;
pub mod headless;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod runbook;
pub mod signals;
pub mod sim;
pub mod sources;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tui;
