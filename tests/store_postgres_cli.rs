//! `fleetdeck --store postgres://…`: `store import` of a sled export, `incident list`/`show`,
//! `audit verify` (and a record changed by hand with `UPDATE`), run as the real binary against
//! a throwaway PostgreSQL (`tests/common/postgres.rs`).

mod common;

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use common::postgres::{fresh_database, psql};
use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::Store;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn fleetdeck(home: &Path, store: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("USER", "oncall-ana")
        .env_remove("PGPASSWORD")
        .output()
        .expect("run fleetdeck");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn xid_signal(node: &str, gpu: u32) -> Signal {
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod".into(),
            node: Some(node.into()),
            gpu: Some(format!("gpu{gpu}")),
            ..Subject::default()
        },
        summary: format!("XID 79 on {node} gpu{gpu}: GPU has fallen off the bus"),
        evidence: Default::default(),
        action: Some("drain the node and replace the GPU".into()),
        first_seen: Utc::now() - chrono::Duration::minutes(3),
        dedup_key: format!("gpu.xid:prod/{node}/GPU-{gpu}"),
    }
}

/// A sled store with two incidents and notes on the first.
fn seeded_sled(dir: &Path) -> String {
    let path = dir.join("sled");
    let store = Store::open(&path).expect("open sled");
    let window = std::time::Duration::from_secs(3600);
    let fired: Vec<Signal> = (0..8).map(|g| xid_signal("gpu-node-7", g)).collect();
    store
        .record_signals(&fired, &[], Origin::Headless, window, Utc::now())
        .expect("record");
    store
        .record_signals(
            &[xid_signal("gpu-node-9", 0)],
            &[],
            Origin::Headless,
            window,
            Utc::now(),
        )
        .expect("record");
    store
        .append(
            NewEntry::new(
                EntryKind::Note,
                Actor::System,
                Origin::Cli,
                "cordoned by hand",
            )
            .on_incident(1),
        )
        .expect("note");
    path.display().to_string()
}

#[test]
#[ignore = "needs postgresql"]
fn a_sled_export_imported_into_postgresql_lists_shows_and_verifies_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let sled = seeded_sled(home);
    let pg = fresh_database();

    let export = home.join("export.jsonl");
    let r = fleetdeck(
        home,
        &sled,
        &["store", "export", "--out", &export.display().to_string()],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let r = fleetdeck(
        home,
        &pg,
        &["store", "import", &export.display().to_string()],
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);

    for args in [
        &["incident", "list"][..],
        &["incident", "show", "INC-1"][..],
        &["audit", "list"][..],
    ] {
        let from = fleetdeck(home, &sled, args);
        let to = fleetdeck(home, &pg, args);
        assert_eq!(to.code, 0, "{args:?}: {}", to.err);
        assert_eq!(
            from.out, to.out,
            "{args:?} differs between sled and PostgreSQL"
        );
    }
    assert!(
        fleetdeck(home, &pg, &["incident", "list"])
            .out
            .contains("INC-2")
    );

    let verify = fleetdeck(home, &pg, &["audit", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.out, verify.err);

    // A note through the CLI goes on the chain where the import left it.
    let note = fleetdeck(
        home,
        &pg,
        &["incident", "note", "1", "replaced", "GPU", "3"],
    );
    assert_eq!(note.code, 0, "{}", note.err);
    assert_eq!(fleetdeck(home, &pg, &["audit", "verify"]).code, 0);

    // Someone edits record #3 with the database's own tools.
    psql(
        &pg,
        "UPDATE audit_chain SET entry = replace(entry::text, 'gpu-node-7', 'gpu-node-8')::json WHERE seq = 3",
    );
    let r = fleetdeck(home, &pg, &["audit", "verify"]);
    assert_eq!(r.code, 4, "{}{}", r.out, r.err);
    assert!(r.out.contains("record #3 was altered"), "{}", r.out);
    let j = fleetdeck(home, &pg, &["audit", "verify", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j.out).expect("json");
    assert_eq!(v["problem"]["problem"], "altered");
    assert_eq!(v["records"], 2);

    // The same export does not go into a store that holds it already.
    let again = fleetdeck(
        home,
        &pg,
        &["store", "import", &export.display().to_string()],
    );
    assert_ne!(again.code, 0);
    assert!(again.err.contains("already holds"), "{}", again.err);
}

#[test]
#[ignore = "needs postgresql"]
fn a_password_in_the_store_url_is_refused_and_not_repeated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = fresh_database().replace("fleetdeck@", "fleetdeck:hunter2@");
    let r = fleetdeck(dir.path(), &pg, &["incident", "list"]);
    assert_ne!(r.code, 0);
    assert!(r.err.contains("password_file"), "{}", r.err);
    assert!(!r.err.contains("hunter2"), "{}", r.err);
}

#[test]
#[ignore = "needs postgresql"]
fn a_database_migrated_by_a_newer_fleetdeck_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = fresh_database();
    assert_eq!(fleetdeck(dir.path(), &pg, &["incident", "list"]).code, 0);
    psql(
        &pg,
        "INSERT INTO schema_version (version, applied_by) VALUES (7, 'fleetdeck 2.0.0')",
    );
    let r = fleetdeck(dir.path(), &pg, &["incident", "list"]);
    assert_ne!(r.code, 0);
    assert!(
        r.err.contains("schema version 7")
            && r.err.contains(&format!(
                "the {} this fleetdeck knows",
                fleetdeck::store::postgres::SCHEMA_VERSION
            )),
        "{}",
        r.err
    );
}
