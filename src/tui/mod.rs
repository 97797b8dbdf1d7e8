//! The cockpit's terminal UI: the app loop and status line (`app`), one module per pane,
//! what panes are given (`pane`), the loop's links to the RCA store (`rca`) and the runbook
//! executor (`automation`), the keymap and the themes. May import state, store, runbook,
//! model, config.

pub mod app;
pub mod automation;
pub mod cost;
pub mod endpoints;
pub mod format;
pub mod gpus;
pub mod incidents;
pub mod keymap;
pub mod nodes;
pub mod overview;
pub mod pane;
pub mod rca;
pub mod runbooks;
pub mod signals;
pub mod theme;
pub mod widgets;
