//! The shared Prometheus text parser and the two readers built on it (dcgm-exporter and the
//! model endpoints' `/metrics`): any body must end in records or an error, never a panic.
#![no_main]

use chrono::{TimeZone, Utc};
use fleetdeck::sources::{dcgm, endpoints, prom_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(text) = prom_text::parse_utf8(body).map_err(|e| e.to_string()) else {
        return;
    };
    for record in prom_text::Parser::new(text) {
        match record {
            Ok(prom_text::Record::Sample(s)) => {
                for (name, value) in s.labels.iter() {
                    let _ = s.labels.get(name);
                    let _ = value.len();
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let at = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let _ = dcgm::parse_dcgm(text, "fuzz", at);
    let _ = endpoints::parse_exposition(text);
    let _ = prom_text::parse_value(text.lines().next().unwrap_or(""));
});
