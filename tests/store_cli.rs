//! `fleetdeck incident …` and `fleetdeck audit verify` against a store on disk, run as the real
//! binary the way an on-call engineer would.

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use fleetdeck::model::incident::{Actor, ApiOutcome, EntryKind, NewEntry, Origin, Verdict};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::Store;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn fleetdeck(store: &Path, args: &[&str]) -> Run {
    let home = store.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("USER", "oncall-ana")
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

/// A store with one XID incident on gpu-node-7 that a runbook acted on, and a quieter one.
fn seeded(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store");
    let store = Store::open(&path).unwrap();
    let window = std::time::Duration::from_secs(3600);
    let fired: Vec<Signal> = (0..8).map(|g| xid_signal("gpu-node-7", g)).collect();
    store
        .record_signals(&fired, &[], Origin::Headless, window, Utc::now())
        .unwrap();
    let mut refused = NewEntry::new(
        EntryKind::Decision,
        Actor::Runbook("gpu-xid-cordon".into()),
        Origin::Headless,
        "refused drain of gpu-node-7: budget of 10% cordoned nodes reached",
    )
    .on_incident(1);
    refused.verdict = Some(Verdict::Refused);
    let mut action = NewEntry::new(
        EntryKind::Action,
        Actor::Runbook("gpu-xid-cordon".into()),
        Origin::Headless,
        "evict ml/trainer-0",
    )
    .on_incident(1);
    action.outcomes.push(ApiOutcome {
        at: Utc::now(),
        request: "POST /api/v1/namespaces/ml/pods/trainer-0/eviction".into(),
        status: 429,
        reason: "TooManyRequests".into(),
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        pdb: Some("trainer-pdb".into()),
    });
    store.append_many(vec![refused, action]).unwrap();
    let mut quiet = xid_signal("gpu-node-9", 0);
    quiet.severity = Severity::Warning;
    quiet.kind = "gpu.throttle".into();
    quiet.dedup_key = "gpu.throttle:prod/gpu-node-9/GPU-0".into();
    store
        .record_signals(&[quiet], &[], Origin::Headless, window, Utc::now())
        .unwrap();
    path
}

#[test]
fn list_show_note_ack_resolve_and_export_an_incident() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());

    let list = fleetdeck(&store, &["incident", "list"]);
    assert_eq!(list.code, 0, "{}", list.err);
    let lines: Vec<&str> = list.out.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", list.out);
    assert!(
        lines[1].starts_with("INC-1") && lines[1].contains("critical"),
        "{}",
        list.out
    );
    assert!(
        lines[2].starts_with("INC-2") && lines[2].contains("warning"),
        "{}",
        list.out
    );

    let show = fleetdeck(&store, &["incident", "show", "INC-1"]);
    assert_eq!(show.code, 0, "{}", show.err);
    assert!(show.out.contains("prod/gpu-node-7/gpu3"), "{}", show.out);
    assert!(show.out.contains("evict ml/trainer-0"), "{}", show.out);

    let note = fleetdeck(
        &store,
        &["incident", "note", "1", "follow-up:", "replace", "GPU", "3"],
    );
    assert_eq!(note.code, 0, "{}", note.err);
    assert!(note.out.contains("added to INC-1"), "{}", note.out);
    assert_eq!(fleetdeck(&store, &["incident", "ack", "1"]).code, 0);
    let again = fleetdeck(&store, &["incident", "ack", "1"]);
    assert!(again.out.contains("already acknowledged"), "{}", again.out);
    let resolve = fleetdeck(&store, &["incident", "resolve", "inc-1"]);
    assert!(resolve.out.contains("INC-1 resolved"), "{}", resolve.out);

    let open = fleetdeck(&store, &["incident", "list", "--open", "-o", "json"]);
    let open: serde_json::Value = serde_json::from_str(&open.out).unwrap();
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["id"], 2);

    let md = fleetdeck(&store, &["incident", "export", "1", "--format", "md"]);
    assert_eq!(md.code, 0, "{}", md.err);
    for want in [
        "# INC-1",
        "gpu.xid",
        "user:oncall-ana",
        "replace GPU 3",
        "resolved by user:oncall-ana",
        "trainer-pdb",
        "budget of 10% cordoned nodes reached",
    ] {
        assert!(md.out.contains(want), "export lacks {want:?}:\n{}", md.out);
    }
    let json = fleetdeck(&store, &["incident", "export", "1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.out).unwrap();
    assert_eq!(v["incident"]["status"], "resolved");
    assert!(v["timeline"].as_array().unwrap().len() >= 13);

    let verify = fleetdeck(&store, &["audit", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.out, verify.err);
    assert!(verify.out.contains("audit chain OK"), "{}", verify.out);
}

#[test]
fn unknown_ids_and_bad_since_values_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    let r = fleetdeck(&store, &["incident", "show", "INC-99"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("no incident INC-99") && r.err.contains("incident list"),
        "{}",
        r.err
    );
    let r = fleetdeck(&store, &["incident", "ack", "banana"]);
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("\"banana\" is not an incident id"),
        "{}",
        r.err
    );
    let r = fleetdeck(&store, &["incident", "list", "--since", "last tuesday"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--since"), "{}", r.err);
    let r = fleetdeck(&store, &["incident", "list", "--since", "1h"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("INC-1"));
}

#[test]
fn audit_verify_fails_and_names_the_record_that_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path());
    {
        // Someone edits record #3 with the database's own tools.
        let db = sled::open(&store).unwrap();
        let mut key = vec![b'a'];
        key.extend_from_slice(&3u64.to_be_bytes());
        let v = db.get(&key).unwrap().unwrap();
        let text = String::from_utf8_lossy(&v).replace("gpu-node-7", "gpu-node-8");
        db.insert(&key, text.as_bytes()).unwrap();
        db.flush().unwrap();
    }
    let r = fleetdeck(&store, &["audit", "verify"]);
    assert_eq!(r.code, 4, "{}{}", r.out, r.err);
    assert!(r.out.contains("record #3 was altered"), "{}", r.out);
    let j = fleetdeck(&store, &["audit", "verify", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j.out).unwrap();
    assert_eq!(v["problem"]["problem"], "altered");
    assert_eq!(v["records"], 2);
}

#[test]
fn a_store_held_by_another_fleetdeck_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = seeded(dir.path());
    let _held = Store::open(&path).unwrap();
    let r = fleetdeck(&path, &["incident", "list"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains(&path.display().to_string()), "{}", r.err);
    assert!(
        r.err.contains("another fleetdeck process holds it"),
        "{}",
        r.err
    );
    assert!(!r.err.contains("panicked"), "{}", r.err);
}

#[test]
fn a_damaged_store_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = seeded(dir.path());
    for f in std::fs::read_dir(&path).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::write(&f, vec![0x5Au8; 8192]).unwrap();
        }
    }
    let r = fleetdeck(&path, &["incident", "list"]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.err.contains(&path.display().to_string()), "{}", r.err);
    assert!(!r.err.contains("panicked"), "{}", r.err);
}

#[test]
fn a_path_that_is_a_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notadir");
    std::fs::write(&file, "x").unwrap();
    let r = fleetdeck(&file, &["incident", "list"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("it is a file"), "{}", r.err);
}

#[test]
fn an_empty_default_store_points_at_the_demos_own_store() {
    let home = tempfile::tempdir().unwrap();
    // What `fleetdeck demo` leaves behind: its own store beside the default one.
    let demo_store = home.path().join("fleetdeck").join("demo-store");
    let demo = Store::open(&demo_store).unwrap();
    demo.record_signals(
        &[xid_signal("gpu-node-3", 0)],
        &[],
        Origin::Cli,
        std::time::Duration::from_secs(3600),
        Utc::now(),
    )
    .unwrap();
    drop(demo);
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(["incident", "list"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .output()
        .expect("run fleetdeck");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("no incidents"), "{stdout}");
    assert!(
        stderr.contains(&format!("--store {}", demo_store.display())),
        "{stderr}"
    );
}
