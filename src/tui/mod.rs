//! The cockpit's terminal UI. Today: themes (`theme`); the panes, keymap and app loop arrive
//! with the TUI. May import state, store, runbook, model, config.

pub mod keymap;
pub mod pane;
pub mod theme;
