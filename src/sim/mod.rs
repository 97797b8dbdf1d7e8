//! The simulated fleet.
pub mod cluster;
pub mod resources;
pub mod selectors;
pub mod store;
pub mod view;
