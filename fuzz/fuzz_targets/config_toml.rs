//! `fleetdeck.toml`: parsing, validation with its file:line:key errors, and what the faces
//! derive from a config (the key bindings, durations read later).
#![no_main]

use std::path::Path;

use fleetdeck::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|src: &str| {
    match Config::parse(src, Path::new("fleetdeck.toml")) {
        Ok(cfg) => {
            let _ = cfg.store.retention();
            let _ = cfg.gpu.interval();
            let _ = cfg.signals.without_patience();
            let _ = cfg.error_at("store", "retention", "fuzz");
            if let Err(e) = fleetdeck::tui::keymap::from_config(&cfg) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
