//! The human-readable (`--output table`) forms of the one-shot commands' results: pure
//! functions from model and store types to text, no I/O.

pub mod cost;
pub mod incident;
pub mod safe;
pub mod snapshot;
pub mod store;
