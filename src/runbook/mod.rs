//! Runbooks: Rhai scripts in `runbooks/`, one a file, whose metadata (trigger, scope, cooldown,
//! mode) is read without running them, run in a sandbox whose every mutation is a request the
//! guard answers; a mutation reaches `actions` only with the guard's clearance. May import
//! model, store, signals, config and actions.

pub mod approvals;
pub mod check;
pub mod engine;
pub mod executor;
pub mod guard;
mod host;
pub mod meta;
pub mod pool;
pub mod shipped;

pub use engine::{Host, Limits, Runbook, load_dir};
pub use meta::{Mode, RunbookError, RunbookMeta};

#[cfg(test)]
mod tests;
