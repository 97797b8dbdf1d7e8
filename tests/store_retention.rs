//! A store that stays bounded: `fleetdeck store prune|stats|export|import` and `audit verify`
//! over what retention left, run as the real binary against stores on disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin, Verdict};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::{Milestone, Store};

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn fleetdeck(store: &Path, args: &[&str]) -> Run {
    let home = store.parent().expect("parent");
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

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
}

fn xid(node: &str) -> Signal {
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod".into(),
            node: Some(node.into()),
            gpu: Some("gpu0".into()),
            ..Subject::default()
        },
        summary: format!("XID 79 on {node} gpu0: GPU has fallen off the bus"),
        evidence: Default::default(),
        action: Some("drain the node".into()),
        first_seen: Utc::now(),
        dedup_key: format!("gpu.xid:prod/{node}/GPU-0"),
    }
}

fn fire(store: &Store, node: &str) -> u64 {
    store
        .record_signals(
            &[xid(node)],
            &[],
            Origin::Headless,
            Duration::from_secs(3600),
            Utc::now(),
        )
        .expect("record")[0]
        .incident
}

fn refusal(store: &Store, path: &str) {
    let mut e = NewEntry::new(
        EntryKind::Decision,
        Actor::System,
        Origin::Webhook,
        format!("refused unauthenticated GET {path} from 10.0.0.9:4242"),
    );
    e.verdict = Some(Verdict::Refused);
    e.detail.insert(
        "reason".into(),
        "the bearer token is not this daemon's".into(),
    );
    store.append(e).expect("append");
}

/// Old: a resolved incident, an open one, a refusal; then, a little later, a resolved incident
/// and a note on the open one. Returns (store path, old resolved, open, recent resolved).
fn aged_store(dir: &Path) -> (PathBuf, u64, u64, u64) {
    let path = dir.join("store");
    let store = Store::open(&path).expect("open");
    let old = fire(&store, "gpu-node-1");
    let open = fire(&store, "gpu-node-2");
    refusal(&store, "/api/v1/incidents");
    store
        .milestone(old, Milestone::Resolved, Actor::local_user(), Origin::Cli)
        .expect("resolve");
    std::thread::sleep(Duration::from_millis(2100));
    let recent = fire(&store, "gpu-node-3");
    store
        .milestone(
            recent,
            Milestone::Resolved,
            Actor::local_user(),
            Origin::Cli,
        )
        .expect("resolve");
    store
        .append(
            NewEntry::new(
                EntryKind::Note,
                Actor::local_user(),
                Origin::Cli,
                "still flapping",
            )
            .on_incident(open),
        )
        .expect("note");
    (path, old, open, recent)
}

fn json(r: &Run) -> serde_json::Value {
    ok(r);
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{e}: {}", r.out))
}

#[test]
fn a_pruned_store_exported_and_imported_elsewhere_verifies_with_the_same_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, old, open, recent) = aged_store(dir.path());

    let pruned = fleetdeck(&store, &["store", "prune", "--retention", "1s"]);
    ok(&pruned);
    assert!(
        pruned.out.contains("pruned 1 resolved incidents"),
        "{}",
        pruned.out
    );
    let verify = fleetdeck(&store, &["audit", "verify"]);
    ok(&verify);
    assert!(verify.out.contains("pruned by retention"), "{}", verify.out);

    let list = json(&fleetdeck(&store, &["incident", "list", "-o", "json"]));
    let ids: Vec<u64> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect();
    assert!(!ids.contains(&old), "{ids:?}");
    assert!(ids.contains(&open) && ids.contains(&recent), "{ids:?}");
    // The old refusal went with the old incident; the checkpoint says what went.
    let refusals = fleetdeck(&store, &["audit", "list", "--kind", "refusal"]);
    ok(&refusals);
    assert!(
        refusals.out.contains("no audit entries"),
        "{}",
        refusals.out
    );

    let stats = json(&fleetdeck(&store, &["store", "stats", "-o", "json"]));
    assert!(stats["size_on_disk"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert_eq!(stats["checkpoint"]["incidents"], 1, "{stats}");
    assert_eq!(stats["oldest_incident"]["id"], open, "{stats}");
    assert_eq!(stats["newest_incident"]["id"], recent, "{stats}");
    let table = fleetdeck(&store, &["store", "stats"]);
    ok(&table);
    assert!(table.out.contains("CHECKPOINT"), "{}", table.out);

    let export = dir.path().join("store.jsonl");
    ok(&fleetdeck(
        &store,
        &["store", "export", "--out", export.to_str().expect("utf-8")],
    ));
    let text = std::fs::read_to_string(&export).expect("export");
    let header: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("header")).expect("header json");
    assert_eq!(header["format"], "fleetdeck-store-export");
    assert_eq!(header["version"], 1);

    let moved = dir.path().join("moved");
    let imported = fleetdeck(
        &moved,
        &["store", "import", export.to_str().expect("utf-8")],
    );
    ok(&imported);
    ok(&fleetdeck(&moved, &["audit", "verify"]));
    let before = json(&fleetdeck(&store, &["audit", "verify", "-o", "json"]));
    let after = json(&fleetdeck(&moved, &["audit", "verify", "-o", "json"]));
    assert_eq!(before, after, "the same chain, head and checkpoint");

    assert_eq!(
        json(&fleetdeck(&store, &["incident", "list", "-o", "json"])),
        json(&fleetdeck(&moved, &["incident", "list", "-o", "json"]))
    );
    for id in [open, recent] {
        let id = id.to_string();
        assert_eq!(
            json(&fleetdeck(&store, &["incident", "show", &id, "-o", "json"])),
            json(&fleetdeck(&moved, &["incident", "show", &id, "-o", "json"])),
            "incident {id}"
        );
    }

    // A new incident in the imported store takes a fresh id and the chain goes on from the head.
    {
        let s = Store::open(&moved).expect("open moved");
        let next = fire(&s, "gpu-node-9");
        assert!(next > recent, "{next} after {recent}");
    }
    ok(&fleetdeck(&moved, &["audit", "verify"]));
}

#[test]
fn tampering_after_an_import_is_still_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, open, _) = aged_store(dir.path());
    ok(&fleetdeck(&store, &["store", "prune", "--retention", "1s"]));
    let export = dir.path().join("store.jsonl");
    ok(&fleetdeck(
        &store,
        &["store", "export", "--out", export.to_str().expect("utf-8")],
    ));
    let moved = dir.path().join("moved");
    ok(&fleetdeck(
        &moved,
        &["store", "import", export.to_str().expect("utf-8")],
    ));
    let first_left = {
        let s = Store::open(&moved).expect("open");
        s.timeline(open).expect("timeline")[0].seq
    };
    {
        // Someone rewrites the open incident's first entry with the database's own tools.
        let db = sled::open(&moved).expect("sled");
        let mut key = vec![b'a'];
        key.extend_from_slice(&first_left.to_be_bytes());
        let v = db.get(&key).expect("get").expect("record");
        let text = String::from_utf8_lossy(&v).replace("gpu-node-2", "gpu-node-6");
        db.insert(&key, text.as_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let r = fleetdeck(&moved, &["audit", "verify"]);
    assert_eq!(r.code, 4, "{}{}", r.out, r.err);
    assert!(
        r.out.contains(&format!("record #{first_left} was altered")),
        "{}",
        r.out
    );

    // Removing a record that no checkpoint names is a removal, pruned neighbours or not.
    {
        let db = sled::open(&moved).expect("sled");
        let mut key = vec![b'a'];
        key.extend_from_slice(&first_left.to_be_bytes());
        db.remove(&key).expect("remove");
        db.flush().expect("flush");
    }
    let r = fleetdeck(&moved, &["audit", "verify"]);
    assert_eq!(r.code, 4, "{}{}", r.out, r.err);
    assert!(r.out.contains("was removed"), "{}", r.out);
}

#[test]
fn a_bad_line_in_an_import_is_named_and_nothing_is_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, ..) = aged_store(dir.path());
    let export = dir.path().join("store.jsonl");
    ok(&fleetdeck(
        &store,
        &["store", "export", "--out", export.to_str().expect("utf-8")],
    ));
    let text = std::fs::read_to_string(&export).expect("export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();

    // Line 4 is not JSON.
    let mut broken = lines.clone();
    broken[3] = "{\"type\": \"audit\", \"seq\": ".into();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, broken.join("\n")).expect("write");
    let target = dir.path().join("target");
    let r = fleetdeck(&target, &["store", "import", bad.to_str().expect("utf-8")]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.err.contains("line 4"), "{}", r.err);
    assert!(r.err.contains("nothing was imported"), "{}", r.err);
    let stats = json(&fleetdeck(&target, &["store", "stats", "-o", "json"]));
    assert_eq!(
        stats["trees"][0],
        serde_json::json!(["audit", 0]),
        "{stats}"
    );

    // Line 2's entry (audit record #1, on gpu-node-1) was edited: its hash no longer matches.
    assert!(lines[1].contains("gpu-node-1"), "{}", lines[1]);
    lines[1] = lines[1].replace("gpu-node-1", "gpu-node-5");
    std::fs::write(&bad, lines.join("\n")).expect("write");
    let r = fleetdeck(&target, &["store", "import", bad.to_str().expect("utf-8")]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.err.contains("line 2"), "{}", r.err);
    assert!(r.err.contains("altered"), "{}", r.err);

    // A store that holds something is never imported into: what it holds stays.
    let before = json(&fleetdeck(&store, &["incident", "list", "-o", "json"]));
    let r = fleetdeck(
        &store,
        &["store", "import", export.to_str().expect("utf-8")],
    );
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.err.contains("already holds"), "{}", r.err);
    assert_eq!(
        before,
        json(&fleetdeck(&store, &["incident", "list", "-o", "json"]))
    );
    ok(&fleetdeck(&store, &["audit", "verify"]));
}

#[test]
fn pruning_twice_keeps_one_cumulative_checkpoint_and_nothing_to_prune_writes_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, open, recent) = aged_store(dir.path());
    ok(&fleetdeck(&store, &["store", "prune", "--retention", "1s"]));
    std::thread::sleep(Duration::from_millis(1100));
    // The recent incident is old enough now; the open one never goes.
    let r = fleetdeck(&store, &["store", "prune", "--retention", "1s"]);
    ok(&r);
    assert!(r.out.contains("pruned 1 resolved incidents"), "{}", r.out);
    let v = json(&fleetdeck(&store, &["audit", "verify", "-o", "json"]));
    assert!(v["problem"].is_null(), "{v}");
    let stats = json(&fleetdeck(&store, &["store", "stats", "-o", "json"]));
    assert_eq!(stats["checkpoint"]["incidents"], 2, "{stats}");
    let list = json(&fleetdeck(&store, &["incident", "list", "-o", "json"]));
    let ids: Vec<u64> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![open], "{recent} pruned");

    // Only a checkpoint is old: nothing is pruned and no new checkpoint is written.
    std::thread::sleep(Duration::from_millis(1100));
    let r = fleetdeck(&store, &["store", "prune", "--retention", "1s"]);
    ok(&r);
    assert!(r.out.contains("nothing pruned"), "{}", r.out);
    ok(&fleetdeck(&store, &["audit", "verify"]));
}
