//! Refusals are visible: what the headless API refused (a request with a bad token) is attached
//! to no incident, and `fleetdeck audit list --kind refusal` shows it with its reason, request
//! and peer, the token itself never.

use std::process::Command;
use std::time::Duration;

use fleetdeck::config::HeadlessConfig;
use fleetdeck::headless::server::{ApiState, router, serve};
use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin, Verdict};
use fleetdeck::store::Store;

const TOKEN: &str = "s3cret-token-for-tests";

/// Runs the daemon's HTTP side on `store` just long enough for `requests` to be answered.
fn serve_and_ask(store: Store, requests: impl FnOnce(&str)) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let state = ApiState::new(
        store,
        HeadlessConfig::default(),
        Some(TOKEN.to_string()),
        "prod",
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve(listener, router(state), async move {
        let _ = stopped.await;
    }));
    requests(&base);
    let _ = stop.send(());
    let _ = rt.block_on(server);
    rt.shutdown_timeout(Duration::from_secs(2));
}

fn fleetdeck(store: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let home = store.parent().expect("parent");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .output()
        .expect("run fleetdeck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_token_refused_by_headless_is_listed_by_audit_list_kind_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let store = Store::open(&path).expect("store");
    // A refusal of the runbook guard, on no incident either.
    let mut guard = NewEntry::new(
        EntryKind::Decision,
        Actor::Runbook("gpu-xid-cordon".into()),
        Origin::Headless,
        "refused cordon of gpu-node-7: budget of 10% cordoned nodes reached",
    );
    guard.verdict = Some(Verdict::Refused);
    guard.detail.insert(
        "reason".into(),
        "budget of 10% cordoned nodes reached".into(),
    );
    store.append(guard).expect("append");
    let presented = "guess-0123456789abcdef";
    serve_and_ask(store, |base| {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let r = client
            .get(format!("{base}/api/v1/incidents"))
            .bearer_auth(presented)
            .send()
            .expect("request");
        assert_eq!(r.status().as_u16(), 401);
        // From another address: the daemon audits one refusal per address every 10 s.
        let other = reqwest::blocking::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let r = other
            .get(format!("{base}/api/v1/runs"))
            .send()
            .expect("request");
        assert_eq!(r.status().as_u16(), 401);
    });

    let (code, out, err) = fleetdeck(&path, &["audit", "list", "--kind", "refusal"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("refused unauthenticated GET /api/v1/incidents from 127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("the bearer token is not this daemon's"),
        "{out}"
    );
    assert!(out.contains("request: GET /api/v1/incidents"), "{out}");
    assert!(out.contains("peer: 127.0.0.1:"), "{out}");
    // The reason for a missing header stays readable: it names a placeholder, not a secret.
    assert!(
        out.contains("an Authorization: Bearer <token> header is required"),
        "{out}"
    );
    assert!(out.contains("refused cordon of gpu-node-7"), "{out}");
    assert!(out.contains("runbook:gpu-xid-cordon"), "{out}");
    assert!(!out.contains(presented) && !out.contains(TOKEN), "{out}");

    // JSON, the most recent only.
    let (code, out, err) = fleetdeck(
        &path,
        &[
            "audit", "list", "--kind", "refusal", "--limit", "1", "-o", "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let entries: serde_json::Value = serde_json::from_str(&out).expect("json");
    let entries = entries.as_array().expect("array");
    assert_eq!(entries.len(), 1, "{out}");
    assert_eq!(entries[0]["verdict"], "refused");
    assert_eq!(entries[0]["detail"]["request"], "GET /api/v1/runs");

    // Other kinds, and --since.
    let (code, out, _) = fleetdeck(&path, &["audit", "list", "--kind", "signal"]);
    assert_eq!(code, 0);
    assert!(out.contains("no audit entries match"), "{out}");
    let (code, out, _) = fleetdeck(&path, &["audit", "list", "--since", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 0);
    assert!(out.contains("no audit entries match"), "{out}");
    let (code, out, _) = fleetdeck(&path, &["audit", "list", "--since", "1h"]);
    assert_eq!(code, 0);
    assert!(out.matches("refused").count() >= 3, "{out}");
}
