//! The body of `POST /api/v1/alerts` as headless reads it: the payload's serde types, each
//! alert as a signal, and a delivery applied to the alert book over a real (temporary) store.
#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use fleetdeck::config::HeadlessConfig;
use fleetdeck::headless::alerts::{AlertBook, WebhookPayload, alert_signal};
use fleetdeck::store::Store;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    book: AlertBook,
    cfg: HeadlessConfig,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory for the store");
        let store = Store::open(&dir.path().join("store")).expect("a store");
        Fixture {
            _dir: dir,
            store,
            book: AlertBook::new("fuzz"),
            cfg: HeadlessConfig::default(),
        }
    })
}

fuzz_target!(|body: &[u8]| {
    let payload: WebhookPayload = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let f = fixture();
    let now = Utc
        .timestamp_opt(1_733_000_000, 0)
        .single()
        .unwrap_or_default();
    for alert in &payload.alerts {
        let _ = alert.identity();
        let _ = alert.started();
        let _ = alert_signal(alert, &f.cfg, "fuzz", now);
    }
    let _ = f.book.apply(&payload, &f.store, &f.cfg, now);
    let _ = f.book.signals();
});
