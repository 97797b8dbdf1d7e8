//! fleetdeck: a terminal cockpit for AI infrastructure.
pub mod sim;
