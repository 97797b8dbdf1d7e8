//! One suite of store behaviours, written once and run against every backend: sled in plain
//! `cargo test`, PostgreSQL with `--include-ignored` (a throwaway server from
//! `tests/common/postgres.rs`). A behaviour that holds on one engine and not the other is a bug
//! in the seam (`store::backend`), whichever engine it shows on.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin};
use crate::model::signal::Severity;

/// The throwaway PostgreSQL server the tests share (also the pipeline's shared-store tests).
#[path = "../../tests/common/postgres.rs"]
pub(crate) mod pg_server;

/// A place a store lives, reopened as often as a behaviour needs.
pub(super) trait Backing {
    fn open(&self) -> Store;
    /// Changes record `seq`'s entry behind the store's back, as someone with the database's
    /// credentials would.
    fn tamper(&self, store: &Store, seq: u64);
}

pub(super) struct SledBacking {
    dir: tempfile::TempDir,
}

impl SledBacking {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Backing for SledBacking {
    fn open(&self) -> Store {
        Store::open(&self.dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tamper(&self, store: &Store, seq: u64) {
        let key = keys::num(keys::AUDIT, seq);
        let v = store.db().get(&key).expect("get").expect("record");
        let text = String::from_utf8_lossy(&v).replace("note", "edit");
        store.db().insert(&key, text.into_bytes()).expect("insert");
    }
}

pub(super) struct PgBacking {
    url: String,
}

impl PgBacking {
    pub fn new() -> Self {
        Self {
            url: pg_server::fresh_database(),
        }
    }
}

impl Backing for PgBacking {
    fn open(&self) -> Store {
        Store::open_postgres(&PgOptions {
            url: self.url.clone(),
            password: None,
            ca_file: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tamper(&self, _store: &Store, seq: u64) {
        pg_server::psql(
            &self.url,
            &format!(
                "UPDATE audit_chain SET entry = replace(entry::text, 'note', 'edit')::json WHERE seq = {seq}"
            ),
        );
    }
}

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn xid(node: &str, gpu: u32, at: DateTime<Utc>) -> Signal {
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        dedup_key: format!("gpu.xid:prod/{node}/GPU-{gpu}"),
        subject: Subject {
            cluster: "prod".into(),
            node: Some(node.into()),
            gpu: Some(format!("gpu{gpu}")),
            ..Subject::default()
        },
        summary: format!("XID 79 on {node} gpu{gpu}: fell off the bus"),
        evidence: [("xid".to_string(), serde_json::json!(79))].into(),
        action: Some("drain and replace".into()),
        first_seen: at,
    }
}

const WINDOW: Duration = Duration::from_secs(3600);

fn note(text: impl Into<String>) -> NewEntry {
    NewEntry::new(EntryKind::Note, Actor::System, Origin::Cli, text)
}

pub(super) fn signals_of_one_node_group_into_one_incident(b: &dyn Backing) {
    let store = b.open();
    let fired: Vec<_> = (0..40).map(|i| xid("gpu-node-7", i % 8, t(0))).collect();
    let recs = store
        .record_signals(&fired, &[], Origin::Tui, WINDOW, t(1))
        .expect("record");
    assert!(recs[0].opened);
    assert!(recs.iter().skip(1).all(|r| !r.opened && r.incident == 1));
    let other = store
        .record_signals(
            &[xid("gpu-node-8", 0, t(2))],
            &[],
            Origin::Tui,
            WINDOW,
            t(2),
        )
        .expect("record");
    assert_eq!(other[0].incident, 2);
    let all = store.incidents(&IncidentFilter::default()).expect("list");
    assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(all[1].signals, 40);
    assert_eq!(all[1].active.len(), 8);
    assert_eq!(
        store
            .open_incident_for(&incident_group(&fired[0]))
            .expect("group"),
        Some(1)
    );
    // Cleared: mitigated, and the grouping survives a reopen.
    store
        .record_signals(
            &[],
            &fired
                .iter()
                .map(|s| (s.dedup_key.clone(), incident_group(s)))
                .collect::<Vec<_>>(),
            Origin::Tui,
            WINDOW,
            t(3),
        )
        .expect("clear");
    drop(store);
    let store = b.open();
    let inc = store.require_incident(1).expect("incident 1");
    assert_eq!(inc.status, IncidentStatus::Mitigated);
    let again = store
        .record_signals(
            &[xid("gpu-node-7", 0, t(4))],
            &[],
            Origin::Tui,
            WINDOW,
            t(4),
        )
        .expect("refire");
    assert_eq!(again[0].incident, 1);
    assert!(matches!(
        store.require_incident(99),
        Err(StoreError::NoIncident { id: 99, .. })
    ));
}

pub(super) fn timelines_and_entries_keep_their_order(b: &dyn Backing) {
    let store = b.open();
    store
        .record_signals(&[xid("n1", 0, t(0))], &[], Origin::Tui, WINDOW, t(0))
        .expect("record");
    store.append(note("no incident")).expect("append");
    let on = store
        .append_many(
            (0..5)
                .map(|i| note(format!("step {i}")).on_incident(1))
                .collect(),
        )
        .expect("append");
    let timeline = store.timeline(1).expect("timeline");
    assert_eq!(timeline.len(), 6);
    assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(timeline.last().map(|e| e.seq), on.last().map(|e| e.seq));
    assert_eq!(store.require_incident(1).expect("inc").entries, 6);
    let last_two = store
        .entries(&EntryFilter {
            limit: Some(2),
            ..EntryFilter::default()
        })
        .expect("entries");
    assert_eq!(
        last_two
            .iter()
            .map(|e| e.entry.summary.as_str())
            .collect::<Vec<_>>(),
        vec!["step 3", "step 4"]
    );
    assert_eq!(store.len().expect("len"), 7);
    assert_eq!(
        store.entry(2).expect("entry").map(|e| e.entry.summary),
        Some("no incident".to_string())
    );
}

/// A long timeline (longer than a page of the PostgreSQL chain walk, 4,096), its entries between
/// other incidents' and none, comes back whole and in chain order.
pub(super) fn a_long_timeline_comes_back_whole_and_in_order(b: &dyn Backing) {
    let store = b.open();
    store
        .record_signals(
            &[xid("n1", 0, t(0)), xid("n2", 0, t(0))],
            &[],
            Origin::Tui,
            WINDOW,
            t(0),
        )
        .expect("record");
    let batch: Vec<NewEntry> = (0..5_000)
        .map(|i| match i % 3 {
            0 => note(format!("one {i}")).on_incident(1),
            1 => note(format!("two {i}")).on_incident(2),
            _ => note(format!("none {i}")),
        })
        .collect();
    store.append_many(batch).expect("append");
    let timeline = store.timeline(1).expect("timeline");
    assert_eq!(timeline.len(), 1 + 1_667);
    assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(timeline.iter().all(|e| e.entry.incident == Some(1)));
    assert_eq!(store.timeline(2).expect("timeline").len(), 1 + 1_667);
    let longer: Vec<NewEntry> = (0..1_000)
        .map(|i| note(format!("more {i}")).on_incident(1))
        .collect();
    store.append_many(longer).expect("append");
    let timeline = store.timeline(1).expect("timeline");
    assert_eq!(timeline.len(), 2_668);
    assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        timeline.last().map(|e| e.entry.summary.as_str()),
        Some("more 999")
    );
}

pub(super) fn milestones_move_forward_once(b: &dyn Backing) {
    let store = b.open();
    store
        .record_signals(&[xid("n1", 0, t(0))], &[], Origin::Tui, WINDOW, t(0))
        .expect("record");
    let ack = store
        .milestone(1, Milestone::Acknowledged, Actor::System, Origin::Cli)
        .expect("ack");
    assert!(matches!(ack, MilestoneOutcome::Reached(_)));
    let again = store
        .milestone(1, Milestone::Acknowledged, Actor::System, Origin::Cli)
        .expect("ack again");
    assert!(matches!(again, MilestoneOutcome::Already(_)));
    store
        .milestone(1, Milestone::Resolved, Actor::System, Origin::Cli)
        .expect("resolve");
    drop(store);
    let store = b.open();
    let inc = store.require_incident(1).expect("inc");
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert!(inc.milestones.acknowledged.is_some() && inc.milestones.resolved.is_some());
    let open = store
        .incidents(&IncidentFilter {
            open_only: true,
            ..IncidentFilter::default()
        })
        .expect("list");
    assert!(open.is_empty());
}

pub(super) fn the_chain_continues_across_reopening_and_names_a_changed_record(b: &dyn Backing) {
    let store = b.open();
    store
        .append_many((0..10).map(|i| note(format!("note {i}"))).collect())
        .expect("append");
    drop(store);
    let store = b.open();
    let e = store.append(note("note after reopening")).expect("append");
    assert_eq!(e.seq, 11);
    let report = store.verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.records, 11);
    b.tamper(&store, 4);
    let report = store.verify().expect("verify");
    assert_eq!(report.problem, Some(AuditProblem::Altered { seq: 4 }));
    assert_eq!(report.records, 3);
}

pub(super) fn operational_memory_is_kept(b: &dyn Backing) {
    let store = b.open();
    let now = t(0);
    store
        .set_cooldown(
            "drain:prod/node/n1",
            memory::Cooldown {
                until: t(10),
                by: "run-1".into(),
            },
        )
        .expect("cooldown");
    assert!(
        store
            .first_sighting("alert-a", now, t(5))
            .expect("sighting")
    );
    assert!(
        !store
            .first_sighting("alert-a", now, t(5))
            .expect("sighting")
    );
    assert_eq!(
        store.claim("k1", "run-1", now, t(30)).expect("claim"),
        Claim::Claimed
    );
    assert!(matches!(
        store.claim("k1", "run-2", now, t(30)).expect("claim"),
        Claim::Held(r) if r.holder == "run-1"
    ));
    store.finish("k1", "done", t(1)).expect("finish");
    for run in ["run-1", "run-2"] {
        store
            .journal_put(&JournalRecord {
                run: run.into(),
                runbook: "drain".into(),
                target: "node/n1".into(),
                incident: Some(1),
                started_at: now,
                updated_at: now,
                step: "cordon".into(),
                state: serde_json::json!({"evicted": ["a", "b"]}),
            })
            .expect("journal");
    }
    store.journal_remove("run-2").expect("remove");
    drop(store);
    let store = b.open();
    assert_eq!(
        store
            .cooldown("drain:prod/node/n1", t(5))
            .expect("cooldown")
            .map(|c| c.by),
        Some("run-1".to_string())
    );
    assert!(
        store
            .cooldown("drain:prod/node/n1", t(11))
            .expect("cooldown")
            .is_none()
    );
    assert_eq!(
        store
            .idempotency("k1")
            .expect("key")
            .and_then(|r| r.outcome),
        Some("done".to_string())
    );
    let journal = store.journal().expect("journal");
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, serde_json::json!({"evicted": ["a", "b"]}));
    // Expired memory goes on a prune.
    assert_eq!(store.prune(t(60)).expect("prune"), 3);
    assert!(
        store
            .first_sighting("alert-a", t(61), t(70))
            .expect("sighting")
    );
}

pub(super) fn the_outbox_and_the_alert_book_outlive_the_process(b: &dyn Backing) {
    let store = b.open();
    let now = t(0);
    let record = |n: i64, chain: &str| OutboxRecord {
        id: OutboxRecord::new_id(t(n)),
        kind: OutboxKind::Notify,
        chain: Some(chain.into()),
        incident: Some(1),
        body: serde_json::json!({"action": "resolve", "n": n}),
        queued_at: t(n),
        attempts: 0,
        next_at: t(n),
        last_error: None,
        delivered_at: None,
        gave_up_at: None,
    };
    let (first, second) = (record(2, "oncall/1"), record(3, "oncall/1"));
    // Queued once per dedup key, and the key is remembered only with its record.
    assert!(
        store
            .outbox_enqueue(&second, Some(("page-a:resolve", now, t(60))))
            .expect("enqueue")
    );
    assert!(
        !store
            .outbox_enqueue(&record(4, "oncall/1"), Some(("page-a:resolve", now, t(60))))
            .expect("enqueue")
    );
    assert!(store.outbox_enqueue(&first, None).expect("enqueue"));
    let booked = BookedAlert {
        key: "alert:abc".into(),
        started: Some(t(0)),
        ends_at: Some(t(30)),
        signal: xid("n1", 0, t(0)),
    };
    store.book_put(&booked).expect("book");
    store
        .book_put(&BookedAlert {
            key: "alert:gone".into(),
            ..booked.clone()
        })
        .expect("book");
    store.book_remove("alert:gone").expect("unbook");
    drop(store);

    let store = b.open();
    let owed = store.outbox().expect("outbox");
    assert_eq!(
        owed.iter()
            .map(|r| r.body["n"].as_i64())
            .collect::<Vec<_>>(),
        [Some(2), Some(3)],
        "in the order queued, whatever the order written"
    );
    assert!(owed.iter().all(OutboxRecord::is_owed));
    let mut done = owed[0].clone();
    done.attempts = 3;
    done.delivered_at = Some(t(5));
    store.outbox_update(&done).expect("update");
    let mut failed = owed[1].clone();
    failed.attempts = 1;
    failed.last_error = Some("HTTP 500".into());
    failed.next_at = t(6);
    store.outbox_update(&failed).expect("update");
    let book = store.alert_book().expect("book");
    assert_eq!(book, [booked]);
    drop(store);

    let store = b.open();
    let owed = store.outbox().expect("outbox");
    assert_eq!(owed[0].delivered_at, Some(t(5)));
    assert_eq!(
        (owed[1].attempts, owed[1].next_at, owed[1].is_owed()),
        (1, t(6), true)
    );
    // A delivered record goes with a prune a week on; one still owed stays.
    store
        .prune(t(5) + chrono::Duration::days(8))
        .expect("prune");
    let left = store.outbox().expect("outbox");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, failed.id);
    let stats = store.stats().expect("stats");
    let count = |name: &str| stats.trees.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    assert_eq!((count("outbox"), count("alert_book")), (Some(1), Some(1)));
}

fn approval_request(run: &str, group: &str) -> ApprovalRecord {
    ApprovalRecord {
        id: 0,
        run: run.into(),
        runbook: "gpu-xid-cordon".into(),
        cluster: "prod".into(),
        group: group.into(),
        target: format!("prod/node/{group}"),
        incident: Some(1),
        reason: "cordon".into(),
        plan: serde_json::json!([{"intent": {"action": "cordon", "node": group}}]),
        requested_at: t(0),
        expires_at: t(10),
        verdict: None,
        settled_by: None,
    }
}

/// Approvals get ids in order that survive reopening, are decided once, and their verdict is
/// taken by one run only; one nobody decided is denied by timeout when taken after expiry.
pub(super) fn approvals_are_decided_once_and_taken_by_one_run(b: &dyn Backing) {
    let store = b.open();
    let a = store
        .approval_request(approval_request("run-1", "n1"))
        .expect("request");
    let c = store
        .approval_request(approval_request("run-2", "n2"))
        .expect("request");
    assert_eq!((a.id, c.id), (1, 2));
    assert!(matches!(
        store.approval_settle(1, "run-1", t(1)).expect("settle"),
        ApprovalOutcome::Waiting(_)
    ));
    drop(store);
    let store = b.open();
    let listed = store.approvals().expect("list");
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
    assert!(listed.iter().all(ApprovalRecord::is_pending));
    assert_eq!(listed[0].plan, a.plan);
    assert!(matches!(
        store.approval_decide(1, true, "alice", t(2)).expect("decide"),
        ApprovalOutcome::Done(r) if r.verdict.as_ref().is_some_and(|v| v.approved && v.by == "alice")
    ));
    assert!(matches!(
        store.approval_decide(1, false, "bob", t(3)).expect("decide"),
        ApprovalOutcome::Already(r) if r.verdict.as_ref().is_some_and(|v| v.by == "alice")
    ));
    assert_eq!(
        store
            .approval_decide(9, true, "alice", t(2))
            .expect("decide"),
        ApprovalOutcome::Missing
    );
    // A new leader's run takes the grant; the old run, come back, finds it taken.
    assert!(matches!(
        store.approval_settle(1, "run-3", t(4)).expect("settle"),
        ApprovalOutcome::Done(r) if r.settled_by.as_deref() == Some("run-3")
    ));
    assert!(matches!(
        store.approval_settle(1, "run-1", t(4)).expect("settle"),
        ApprovalOutcome::Already(_)
    ));
    // Undecided past its expiry: denied by timeout when taken.
    assert!(matches!(
        store.approval_settle(2, "run-2", t(11)).expect("settle"),
        ApprovalOutcome::Done(r) if r.verdict.as_ref().is_some_and(|v| !v.approved && v.by == "timeout")
    ));
    assert_eq!(
        store
            .approval_request(approval_request("run-4", "n1"))
            .expect("request")
            .id,
        3
    );
    assert_eq!(
        store
            .stats()
            .expect("stats")
            .trees
            .iter()
            .find(|(n, _)| n == "approvals")
            .map(|(_, c)| *c),
        Some(3)
    );
}

pub(super) fn retention_prunes_through_a_checkpoint_that_verifies(b: &dyn Backing) {
    let store = b.open();
    let now = Utc::now();
    let fire = |node: &str| {
        store
            .record_signals(&[xid(node, 0, now)], &[], Origin::Headless, WINDOW, now)
            .expect("record")[0]
            .incident
    };
    let gone = fire("n1");
    let kept = fire("n2");
    store
        .milestone(gone, Milestone::Resolved, Actor::System, Origin::Cli)
        .expect("resolve");
    let r = store
        .prune_older_than(
            Duration::ZERO,
            Utc::now() + chrono::Duration::seconds(5),
            Origin::Cli,
        )
        .expect("prune");
    assert_eq!((r.incidents, r.entries), (1, 2), "{r:?}");
    assert!(store.incident(gone).expect("read").is_none());
    assert!(store.timeline(gone).expect("timeline").is_empty());
    assert_eq!(store.timeline(kept).expect("timeline").len(), 1);
    let (seq, checkpoint) = store.checkpoint().expect("checkpoint").expect("one");
    assert_eq!(Some(seq), r.checkpoint);
    assert_eq!(checkpoint.pruned, 2);
    drop(store);
    let store = b.open();
    let report = store.verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.pruned, 2);
    let id = store
        .record_signals(&[xid("n3", 0, now)], &[], Origin::Headless, WINDOW, now)
        .expect("record")[0]
        .incident;
    assert_eq!(id, 3, "ids are never given twice");
}

pub(super) fn secrets_are_redacted_before_they_are_stored(b: &dyn Backing) {
    let store = b.open();
    let mut e = note("POST https://hooks.example.com/x?token=abc123secret");
    e.detail
        .insert("password".into(), serde_json::json!("hunter2"));
    let stored = store.append(e).expect("append");
    let raw = store
        .backend()
        .get(&keys::num(keys::AUDIT, stored.seq))
        .expect("get")
        .expect("record");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains("abc123secret") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("[REDACTED]"));
}

pub(super) fn stats_count_every_family(b: &dyn Backing) {
    let store = b.open();
    store
        .record_signals(&[xid("n1", 0, t(0))], &[], Origin::Tui, WINDOW, t(0))
        .expect("record");
    store.append(note("loose")).expect("append");
    assert!(store.first_sighting("d1", t(0), t(9)).expect("dedup"));
    let stats = store.stats().expect("stats");
    let count = |name: &str| stats.trees.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    assert_eq!(count("audit"), Some(2));
    assert_eq!(count("incidents"), Some(1));
    assert_eq!(count("timeline"), Some(1));
    assert_eq!(count("groups"), Some(1));
    assert_eq!(count("dedup"), Some(1));
    assert_eq!(stats.newest_incident.map(|m| m.id), Some(1));
    assert!(stats.size_on_disk > 0);
}

/// A store exported from sled and imported here keeps ids, timelines and a verifying chain.
pub(super) fn an_export_from_sled_imports_whole(b: &dyn Backing) {
    let source = SledBacking::new();
    let from = source.open();
    for node in ["n1", "n2"] {
        from.record_signals(&[xid(node, 0, t(0))], &[], Origin::Tui, WINDOW, t(0))
            .expect("record");
    }
    from.append_many(
        (0..5)
            .map(|i| note(format!("note {i}")).on_incident(2))
            .collect(),
    )
    .expect("append");
    from.set_cooldown(
        "drain:prod/node/n1",
        memory::Cooldown {
            until: t(10),
            by: "run-1".into(),
        },
    )
    .expect("cooldown");
    from.approval_request(approval_request("run-1", "n1"))
        .expect("approval");
    let mut export = Vec::new();
    from.export(&mut export, "export").expect("export");

    let store = b.open();
    let report = store
        .import(std::io::Cursor::new(&export), "export")
        .expect("import");
    assert_eq!(report.incidents, 2);
    assert_eq!(
        store.timeline(2).expect("timeline"),
        from.timeline(2).expect("timeline")
    );
    assert_eq!(
        store.incidents(&IncidentFilter::default()).expect("list"),
        from.incidents(&IncidentFilter::default()).expect("list")
    );
    let report = store.verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.records, 7);
    assert!(
        store
            .cooldown("drain:prod/node/n1", t(1))
            .expect("cd")
            .is_some()
    );
    assert_eq!(
        store.approvals().expect("approvals"),
        from.approvals().expect("approvals")
    );
    // The chain goes on from the imported head.
    assert_eq!(store.append(note("after")).expect("append").seq, 8);
    assert_eq!(
        store
            .record_signals(&[xid("n9", 0, t(1))], &[], Origin::Tui, WINDOW, t(1))
            .expect("record")[0]
            .incident,
        3
    );
    // Only into an empty store.
    assert!(matches!(
        store.import(std::io::Cursor::new(&export), "export"),
        Err(transfer::TransferError::Store(StoreError::NotEmpty { .. }))
    ));
}

/// Runs every behaviour above as a test of its own against one backing.
macro_rules! conformance {
    ($backing:expr $(, #[$attr:meta])*) => {
        conformance!(@each $backing, [$(#[$attr])*],
            signals_of_one_node_group_into_one_incident,
            timelines_and_entries_keep_their_order,
            a_long_timeline_comes_back_whole_and_in_order,
            milestones_move_forward_once,
            the_chain_continues_across_reopening_and_names_a_changed_record,
            operational_memory_is_kept,
            the_outbox_and_the_alert_book_outlive_the_process,
            approvals_are_decided_once_and_taken_by_one_run,
            retention_prunes_through_a_checkpoint_that_verifies,
            secrets_are_redacted_before_they_are_stored,
            stats_count_every_family,
            an_export_from_sled_imports_whole
        );
    };
    (@each $backing:expr, $attrs:tt, $($name:ident),+) => {
        $( conformance!(@one $backing, $attrs, $name); )+
    };
    (@one $backing:expr, [$(#[$attr:meta])*], $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            super::$name(&$backing);
        }
    };
}

mod sled_backend {
    use super::SledBacking;
    conformance!(SledBacking::new());
}

mod postgres_backend {
    use super::PgBacking;
    conformance!(PgBacking::new(), #[ignore = "needs postgresql"]);

    /// Two replicas' handles on one database, each with its Lease term: once the newer term
    /// wrote, an acting write of the older is refused whole and its replica is told (it steps
    /// down); a person's verdict given on it is not an acting write and still lands.
    #[test]
    #[ignore = "needs postgresql"]
    fn an_acting_write_with_an_older_lease_term_is_refused_and_its_replica_told() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        let b = PgBacking::new();
        let fenced = |term: u64, refusals: &Arc<AtomicUsize>| {
            let store = crate::store::conformance::Backing::open(&b);
            let refusals = refusals.clone();
            store.fence_with(crate::store::Fence {
                token: Arc::new(AtomicU64::new(term)),
                on_refused: Arc::new(move |e| {
                    assert!(
                        matches!(
                            e,
                            crate::store::StoreError::Fenced {
                                mine: 1,
                                current: 2,
                                ..
                            }
                        ),
                        "{e}"
                    );
                    refusals.fetch_add(1, Ordering::SeqCst);
                }),
            });
            store
        };
        let refusals = Arc::new(AtomicUsize::new(0));
        let (old, new) = (fenced(1, &refusals), fenced(2, &refusals));
        old.append(super::note("old leader"))
            .expect("term 1 writes while it is the newest");
        new.append(super::note("new leader"))
            .expect("term 2 takes over");
        let approval = new
            .approval_request(super::approval_request("run-2", "n1"))
            .expect("request");
        let err = old
            .append(super::note("paused leader resumes"))
            .expect_err("an older term is refused");
        assert!(err.to_string().contains("newer leader"), "{err}");
        let cooldown = crate::store::memory::Cooldown {
            until: super::t(10),
            by: "run-1".into(),
        };
        assert!(old.set_cooldown("gpu-xid-cordon:n1", cooldown).is_err());
        assert_eq!(refusals.load(Ordering::SeqCst), 2);
        // A person's verdict on the old leader's API is recorded for the new leader to act on.
        assert!(matches!(
            old.approval_decide(approval.id, true, "alice", super::t(1)),
            Ok(crate::store::ApprovalOutcome::Done(_))
        ));
        let summaries: Vec<String> = new
            .entries(&crate::store::EntryFilter::default())
            .expect("entries")
            .into_iter()
            .map(|e| e.entry.summary)
            .collect();
        assert_eq!(summaries, vec!["old leader", "new leader"]);
        assert!(new.verify().expect("verify").passed());
        assert_eq!(
            super::pg_server::psql(&b.url, "SELECT leader_epoch FROM chain_head"),
            "2"
        );
    }

    #[test]
    #[ignore = "needs postgresql"]
    fn a_schema_newer_than_this_binary_is_refused_naming_both_versions() {
        let b = PgBacking::new();
        drop(crate::store::conformance::Backing::open(&b));
        super::pg_server::psql(
            &b.url,
            "INSERT INTO schema_version (version, applied_by) VALUES (99, 'fleetdeck 9.9')",
        );
        let err = crate::store::Store::open_postgres(&crate::store::PgOptions {
            url: b.url.clone(),
            password: None,
            ca_file: None,
        })
        .expect_err("a newer schema is refused");
        let text = err.to_string();
        assert!(
            text.contains("schema version 99")
                && text.contains(&format!(
                    "the {} this fleetdeck knows",
                    crate::store::postgres::SCHEMA_VERSION
                )),
            "{text}"
        );
    }

    #[test]
    #[ignore = "needs postgresql"]
    fn two_processes_on_one_database_append_in_turn_and_a_stale_commit_is_refused_whole() {
        use crate::store::{StoreError, audit, keys};
        let b = PgBacking::new();
        let one = crate::store::conformance::Backing::open(&b);
        let two = crate::store::conformance::Backing::open(&b);
        assert_eq!(one.append(super::note("from one")).expect("append").seq, 1);
        // Two starts its commit from what one committed.
        assert_eq!(two.append(super::note("from two")).expect("append").seq, 2);
        assert_eq!(one.append(super::note("one again")).expect("append").seq, 3);
        assert!(two.verify().expect("verify").passed());
        // A commit that still believes the chain ends at #1 is refused at the locked head,
        // and nothing of it is written.
        let (stale, hash) = audit::encode(
            2,
            &[0; audit::HASH_LEN],
            br#"{"recorded_at":"2026-11-28T09:00:00Z"}"#,
        );
        let err = two
            .backend()
            .commit(vec![
                (keys::num(keys::AUDIT, 2), Some(stale)),
                (keys::meta("head"), Some(audit::head_value(2, &hash))),
            ])
            .expect_err("refused");
        assert!(
            matches!(
                err,
                StoreError::ChainMoved {
                    head: 3,
                    next: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(one.len().expect("len"), 3);
        assert!(one.verify().expect("verify").passed());
    }

    fn open_with(
        url: String,
        ca_file: Option<std::path::PathBuf>,
    ) -> crate::store::Result<crate::store::Store> {
        crate::store::Store::open_postgres(&crate::store::PgOptions {
            url,
            password: None,
            ca_file,
        })
    }

    #[test]
    #[ignore = "needs postgresql"]
    fn tls_verify_full_trusts_the_ca_file_and_refuses_a_server_it_cannot_verify() {
        let Some(ca) = super::pg_server::ca_file() else {
            return; // A server of your own: its TLS is its own.
        };
        let plain = PgBacking::new().url;
        let full = plain.replace("sslmode=disable", "sslmode=verify-full");
        let store = open_with(full.clone(), Some(ca.clone())).expect("verify-full with the CA");
        assert_eq!(
            store.append(super::note("over TLS")).expect("append").seq,
            1
        );
        drop(store);
        // sslrootcert= in the URL is the same as ca_file.
        let in_url = format!("{full}&sslrootcert={}", ca.display());
        assert!(open_with(in_url, None).is_ok());
        // Without the CA the certificate chains to nothing this machine trusts.
        let err = open_with(full, None).expect_err("unverifiable");
        assert!(err.to_string().contains("certificate"), "{err}");
        // The default (prefer) speaks TLS when offered, checked the same way.
        let prefer = plain.replace("?sslmode=disable", "");
        assert!(open_with(prefer, Some(ca)).is_ok());
    }
}
