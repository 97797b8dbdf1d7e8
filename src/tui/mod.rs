//! The cockpit's terminal UI. Today: themes (`theme`); the panes, keymap and app loop arrive
//! with the TUI. May import state, store, runbook, model, config.

pub mod app;
pub mod cost;
pub mod endpoints;
pub mod gpus;
pub mod keymap;
pub mod nodes;
pub mod overview;
pub mod pane;
pub mod signals;
pub mod theme;
