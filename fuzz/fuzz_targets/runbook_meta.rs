//! A runbook's `const RUNBOOK = #{ … }` metadata, read by the Rhai-literal reader with its caps.
#![no_main]

use std::path::Path;

use fleetdeck::runbook::meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|src: &str| {
    match meta::parse(Path::new("fuzz.rhai"), src) {
        Ok(m) => {
            let _ = m.effective_mode(fleetdeck::model::Mode::Auto);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
