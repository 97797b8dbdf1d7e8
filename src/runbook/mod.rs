//! Runbooks: Rhai scripts in `runbooks/`, one a file, whose metadata (trigger, scope, cooldown,
//! mode) is read without running them, run in a sandbox whose every mutation is a request the
//! guard answers. May import model, store, signals and actions.

pub mod engine;
pub mod executor;
pub mod guard;
pub mod meta;
pub mod shipped;

pub use engine::{DrainRequest, Host, Intent, Limits, Runbook, load_dir};
pub use meta::{Mode, RunbookError, RunbookMeta};

#[cfg(test)]
mod tests;
