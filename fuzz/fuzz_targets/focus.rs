//! A FOCUS CSV export, streamed by the FOCUS reader and folded into a cost report, with a
//! window and a budget so that proration and forecasts run too.
#![no_main]

use chrono::{TimeZone, Utc};
use fleetdeck::model::cost::{CostReportBuilder, ReportSettings};
use fleetdeck::sources::cost::{FocusReader, read_focus, resolve_window};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, csv)) = data.split_first() else {
        return;
    };
    let at = Utc
        .timestamp_opt(1_733_000_000, 0)
        .single()
        .unwrap_or_default();
    let mut settings = ReportSettings {
        as_of: Some(at),
        ..ReportSettings::default()
    };
    if mode & 1 == 1 {
        settings.window = resolve_window("30d", at).ok();
    }
    if mode & 2 == 2 {
        settings.monthly_budget = Some(f64::from(mode) * 1000.0);
    }
    let reader = match FocusReader::new("fuzz.csv", csv, "team") {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut builder = CostReportBuilder::new(settings);
    if let Err(e) = read_focus(reader, &mut builder) {
        let _ = e.to_string();
        return;
    }
    let _ = builder.finish(at);
});
