use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;
use crate::model::incident::{Actor, ApiOutcome, EntryKind, FieldChange, NewEntry, Origin};
use crate::model::signal::Severity;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

fn xid(node: &str, gpu: u32, at: DateTime<Utc>) -> Signal {
    let subject = Subject {
        cluster: "prod".into(),
        node: Some(node.into()),
        gpu: Some(format!("gpu{gpu}")),
        ..Subject::default()
    };
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        dedup_key: format!("gpu.xid:prod/{node}/GPU-{gpu}"),
        subject,
        summary: format!("XID 79 on {node} gpu{gpu}: fell off the bus"),
        evidence: [("xid".to_string(), serde_json::json!(79))].into(),
        action: Some("drain and replace".into()),
        first_seen: at,
    }
}

const WINDOW: Duration = Duration::from_secs(3600);

/// A store with one incident: INC-1, opened by an XID on GPU 0 of `n1` at t(0) (returned).
fn open_with_one_xid() -> (tempfile::TempDir, Store, Signal) {
    let (d, store) = open();
    let s = xid("n1", 0, t(0));
    store
        .record_signals(std::slice::from_ref(&s), &[], Origin::Tui, WINDOW, t(0))
        .unwrap();
    (d, store, s)
}

/// A note by the system from the CLI: an entry that belongs to no incident.
fn system_note(text: impl Into<String>) -> NewEntry {
    NewEntry::new(EntryKind::Note, Actor::System, Origin::Cli, text)
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn an_xid_storm_on_one_node_is_one_incident() {
    let (_d, store) = open();
    let mut fired = Vec::new();
    for i in 0..300 {
        fired.push(xid("gpu-node-7", i % 8, t(i as i64 / 60)));
    }
    let recs = store
        .record_signals(&fired, &[], Origin::Tui, WINDOW, t(5))
        .unwrap();
    assert_eq!(recs.len(), 300);
    assert!(recs[0].opened);
    assert!(recs.iter().skip(1).all(|r| !r.opened && r.incident == 1));
    let all = store.incidents(&IncidentFilter::default()).unwrap();
    assert_eq!(all.len(), 1);
    let inc = &all[0];
    assert_eq!(inc.signals, 300);
    assert_eq!(inc.active.len(), 8);
    assert_eq!(inc.affected.len(), 8);
    assert_eq!(inc.milestones.started, Some(t(0)));
    assert_eq!(store.timeline(1).unwrap().len(), 300);
    // Another node is another incident.
    let other = store
        .record_signals(
            &[xid("gpu-node-8", 0, t(6))],
            &[],
            Origin::Tui,
            WINDOW,
            t(6),
        )
        .unwrap();
    assert_eq!(other[0].incident, 2);
}

#[test]
fn clearing_every_signal_mitigates_and_refiring_reopens() {
    let (_d, store) = open();
    let s = xid("n1", 0, t(0));
    store
        .record_signals(
            std::slice::from_ref(&s),
            &[],
            Origin::Headless,
            WINDOW,
            t(0),
        )
        .unwrap();
    let group = incident_group(&s);
    store
        .record_signals(
            &[],
            &[(s.dedup_key.clone(), group.clone())],
            Origin::Headless,
            WINDOW,
            t(3),
        )
        .unwrap();
    let inc = store.require_incident(1).unwrap();
    assert_eq!(inc.status, IncidentStatus::Mitigated);
    assert_eq!(inc.milestones.mitigated, Some(t(3)));
    // Fires again within the window: the same incident, no longer mitigated.
    store
        .record_signals(&[xid("n1", 0, t(10))], &[], Origin::Headless, WINDOW, t(10))
        .unwrap();
    let inc = store.require_incident(1).unwrap();
    assert_eq!(inc.status, IncidentStatus::Open);
    assert_eq!(inc.milestones.mitigated, None);
    let kinds: Vec<_> = store
        .timeline(1)
        .unwrap()
        .iter()
        .map(|e| e.entry.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Signal,
            EntryKind::Signal,
            EntryKind::Status,
            EntryKind::Signal,
            EntryKind::Status
        ]
    );
}

#[test]
fn a_resolved_incident_that_recurs_opens_a_new_one_that_says_so() {
    let (_d, store, _) = open_with_one_xid();
    let resolve = || {
        store
            .milestone(
                1,
                Milestone::Resolved,
                Actor::User("ana".into()),
                Origin::Cli,
            )
            .unwrap()
    };
    assert!(matches!(resolve(), MilestoneOutcome::Reached(_)));
    assert_eq!(
        resolve(),
        MilestoneOutcome::Already(IncidentStatus::Resolved)
    );
    let recs = store
        .record_signals(&[xid("n1", 0, t(1))], &[], Origin::Tui, WINDOW, t(1))
        .unwrap();
    assert_eq!(recs[0].incident, 2);
    assert_eq!(store.require_incident(2).unwrap().recurs, Some(1));
}

#[test]
fn a_signal_after_the_window_on_a_quiet_incident_opens_a_new_one() {
    let (_d, store, s) = open_with_one_xid();
    store
        .record_signals(
            &[],
            &[(s.dedup_key.clone(), incident_group(&s))],
            Origin::Tui,
            WINDOW,
            t(1),
        )
        .unwrap();
    let recs = store
        .record_signals(&[xid("n1", 0, t(120))], &[], Origin::Tui, WINDOW, t(120))
        .unwrap();
    assert_eq!(recs[0].incident, 2);
}

#[test]
fn acknowledge_then_resolve_sets_milestones_in_order() {
    let (_d, store, _) = open_with_one_xid();
    let user = Actor::User("sre".into());
    store
        .milestone(1, Milestone::Acknowledged, user.clone(), Origin::Tui)
        .unwrap();
    store
        .milestone(1, Milestone::Resolved, user, Origin::Tui)
        .unwrap();
    let inc = store.require_incident(1).unwrap();
    let m = &inc.milestones;
    assert!(m.acknowledged.is_some() && m.mitigated.is_some() && m.resolved.is_some());
    assert!(m.acknowledged <= m.resolved);
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert!(
        store
            .incidents(&IncidentFilter {
                open_only: true,
                since: None
            })
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_unknown_incident_is_an_error_that_names_it() {
    let (_d, store) = open();
    let err = store.append(system_note("x").on_incident(9)).unwrap_err();
    assert!(err.to_string().contains("INC-9"), "{err}");
    // Nothing was half-written: the chain is still empty and verifies.
    assert_eq!(store.len().unwrap(), 0);
    assert!(store.verify().unwrap().passed());
}

#[test]
fn entries_survive_reopening_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let store = Store::open(&path).unwrap();
        for i in 0..10 {
            store.append(system_note(format!("n{i}"))).unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let e = store.append(system_note("after")).unwrap();
    assert_eq!(e.seq, 11);
    let report = store.verify().unwrap();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.records, 11);
    assert_eq!(store.entry(3).unwrap().unwrap().entry.summary, "n2");
}

#[test]
fn a_second_open_of_the_same_store_says_it_is_locked() {
    let (dir, _store) = open();
    let err = Store::open(&dir.path().join("store")).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("another fleetdeck") && msg.contains("store"),
        "{msg}"
    );
}

fn filled(n: usize) -> (tempfile::TempDir, Store) {
    let (d, store) = open();
    let entries = (0..n).map(|i| system_note(format!("note {i}"))).collect();
    store.append_many(entries).unwrap();
    (d, store)
}

#[test]
fn verify_names_an_altered_record() {
    let (_d, store) = filled(20);
    let key = keys::num(keys::AUDIT, 7);
    let mut v = store.db().get(&key).unwrap().unwrap().to_vec();
    let at = v.len() - 3;
    v[at] ^= 1;
    store.db().insert(&key, v).unwrap();
    let r = store.verify().unwrap();
    assert_eq!(r.problem, Some(AuditProblem::Altered { seq: 7 }));
    assert_eq!(r.records, 6);
    assert!(r.problem.unwrap().to_string().contains("#7 was altered"));
}

#[test]
fn verify_names_a_removed_record() {
    let (_d, store) = filled(20);
    store.db().remove(keys::num(keys::AUDIT, 12)).unwrap();
    let r = store.verify().unwrap();
    assert_eq!(
        r.problem,
        Some(AuditProblem::Removed {
            after: 11,
            next: 13
        })
    );
    assert!(r.problem.unwrap().to_string().contains("#12 was removed"));
}

#[test]
fn verify_names_reordered_records() {
    let (_d, store) = filled(20);
    let a = store.db().get(keys::num(keys::AUDIT, 4)).unwrap().unwrap();
    let b = store.db().get(keys::num(keys::AUDIT, 5)).unwrap().unwrap();
    store.db().insert(keys::num(keys::AUDIT, 4), b).unwrap();
    store.db().insert(keys::num(keys::AUDIT, 5), a).unwrap();
    let r = store.verify().unwrap();
    assert_eq!(
        r.problem,
        Some(AuditProblem::Reordered {
            position: 4,
            claims: 5
        })
    );
}

#[test]
fn verify_notices_a_rewritten_record_with_a_fresh_hash() {
    // Someone rewrites #9 and recomputes its own hash: #10 no longer links to it.
    let (_d, store) = filled(20);
    let old = store.db().get(keys::num(keys::AUDIT, 9)).unwrap().unwrap();
    let rec = audit::Record::parse(&old).unwrap();
    let (forged, _) = audit::encode(9, &rec.prev, br#"{"forged":true}"#);
    store
        .db()
        .insert(keys::num(keys::AUDIT, 9), forged)
        .unwrap();
    let r = store.verify().unwrap();
    assert_eq!(r.problem, Some(AuditProblem::BrokenLink { seq: 10 }));
}

#[test]
fn verify_notices_a_removed_tail() {
    let (_d, store) = filled(20);
    store.db().remove(keys::num(keys::AUDIT, 20)).unwrap();
    store.db().remove(keys::num(keys::AUDIT, 19)).unwrap();
    let r = store.verify().unwrap();
    assert_eq!(
        r.problem,
        Some(AuditProblem::Truncated { last: 18, head: 20 })
    );
}

#[test]
fn secrets_are_never_stored() {
    let (_d, store) = open();
    let mut e = NewEntry::new(
        EntryKind::Action,
        Actor::Runbook("notify".into()),
        Origin::Headless,
        "POST https://hooks.example.com/x?token=abc123secret with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    );
    e.detail
        .insert("password".into(), serde_json::json!("hunter2"));
    e.changes.push(FieldChange {
        object: "secret/x".into(),
        field: "data.token".into(),
        before: Some(serde_json::json!("old-token-value")),
        after: Some(serde_json::json!("new-token-value")),
    });
    e.outcomes.push(ApiOutcome {
        at: t(0),
        request: "GET https://admin:s3cr3t@api.example.com/".into(),
        status: 200,
        reason: String::new(),
        message: String::new(),
        pdb: None,
    });
    let stored = store.append(e).unwrap();
    let raw = store
        .db()
        .get(keys::num(keys::AUDIT, stored.seq))
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    for secret in [
        "abc123secret",
        "hunter2",
        "old-token-value",
        "new-token-value",
        "s3cr3t",
        "eyJhbGci",
    ] {
        assert!(!text.contains(secret), "{secret} was stored: {text}");
    }
    assert!(text.contains("[REDACTED]"));
}

#[test]
fn operational_memory_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let store = Store::open(&path).unwrap();
        store
            .set_cooldown(
                "prod/node/n1",
                memory::Cooldown {
                    until: t(30),
                    by: "gpu-xid-cordon".into(),
                },
            )
            .unwrap();
        assert_eq!(
            store
                .claim("cordon:prod/n1", "replica-a", t(0), t(60))
                .unwrap(),
            Claim::Claimed
        );
        assert!(store.first_sighting("alert:abc", t(0), t(10)).unwrap());
        store
            .journal_put(&JournalRecord {
                run: "run-1".into(),
                runbook: "gpu-xid-cordon".into(),
                target: "node/n1".into(),
                incident: Some(1),
                started_at: t(0),
                updated_at: t(1),
                step: "draining".into(),
                state: serde_json::json!({"evicted": 3}),
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.cooldown("prod/node/n1", t(10)).unwrap().unwrap().by,
        "gpu-xid-cordon"
    );
    assert!(store.cooldown("prod/node/n1", t(31)).unwrap().is_none());
    match store
        .claim("cordon:prod/n1", "replica-b", t(1), t(61))
        .unwrap()
    {
        Claim::Held(r) => assert_eq!(r.holder, "replica-a"),
        other => panic!("{other:?}"),
    }
    store.finish("cordon:prod/n1", "cordoned", t(2)).unwrap();
    assert_eq!(
        store
            .idempotency("cordon:prod/n1")
            .unwrap()
            .unwrap()
            .outcome
            .as_deref(),
        Some("cordoned")
    );
    assert!(!store.first_sighting("alert:abc", t(5), t(15)).unwrap());
    assert!(store.first_sighting("alert:abc", t(11), t(21)).unwrap());
    assert_eq!(store.journal().unwrap()[0].step, "draining");
    store.journal_remove("run-1").unwrap();
    assert!(store.journal().unwrap().is_empty());
    // Past every expiry: cooldown, claim and sighting are forgotten.
    assert_eq!(store.prune(t(1000)).unwrap(), 3);
    assert!(store.idempotency("cordon:prod/n1").unwrap().is_none());
}

#[test]
fn a_damaged_store_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let store = Store::open(&path).unwrap();
        store.append(system_note("x")).unwrap();
    }
    // Overwrite every file of the database with garbage.
    for f in std::fs::read_dir(&path).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::write(&f, vec![0xA5u8; 4096]).unwrap();
        }
    }
    let err = Store::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn the_recorder_records_changes_not_every_snapshot() {
    let mut rec = SignalRecorder::default();
    let a = xid("n1", 0, t(0));
    let b = xid("n1", 1, t(0));
    let c1 = rec.observe(&[a.clone(), b.clone()], t(0));
    assert_eq!(c1.fired.len(), 2);
    assert!(rec.observe(&[a.clone(), b.clone()], t(0)).is_empty());
    let c3 = rec.observe(std::slice::from_ref(&a), t(0));
    assert_eq!(c3.cleared, vec![(b.dedup_key.clone(), incident_group(&b))]);
    let mut worse = a.clone();
    worse.severity = Severity::Critical;
    let mut milder = a.clone();
    milder.severity = Severity::Info;
    assert!(rec.observe(std::slice::from_ref(&milder), t(0)).is_empty());
}

#[test]
fn the_recorder_resumes_from_open_incidents() {
    let (_d, store, s) = open_with_one_xid();
    let open = store
        .incidents(&IncidentFilter {
            open_only: true,
            since: None,
        })
        .unwrap();
    let mut rec = SignalRecorder::resume(&open);
    assert!(rec.observe(std::slice::from_ref(&s), t(0)).is_empty());
    assert_eq!(rec.observe(&[], t(0)).cleared.len(), 1);
}

#[test]
fn a_store_closed_a_moment_ago_reopens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    for i in 0..40 {
        let store = Store::open(&path).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        store.append(system_note("x")).unwrap();
    }
    assert_eq!(Store::open(&path).unwrap().len().unwrap(), 40);
}

#[test]
fn the_pods_of_one_owner_are_one_incident_group_wherever_they_run() {
    assert_eq!(
        pod_owner("tokenizer-worker-zd8gxsd-79xr9"),
        "tokenizer-worker"
    );
    assert_eq!(pod_owner("llama-chat-7d9f8c6b5-x2x9q"), "llama-chat");
    assert_eq!(pod_owner("backfill-28h4k"), "backfill");
    assert_eq!(pod_owner("llm-pretrain-worker-3"), "llm-pretrain");
    assert_eq!(pod_owner("db-0"), "db");
    assert_eq!(pod_owner("standalone"), "standalone");
    assert_eq!(pod_owner("my-notebook"), "my-notebook");
    let crash = |pod: &str, node: &str| {
        let mut s = xid(node, 0, Utc::now());
        s.kind = "pod.crash_loop".into();
        s.evidence.clear();
        s.subject = Subject {
            cluster: "a".into(),
            namespace: Some("batch".into()),
            object: Some(format!("pod/{pod}")),
            node: Some(node.into()),
            ..Subject::default()
        };
        s
    };
    assert_eq!(
        incident_group(&crash("worker-5d4f8b7c9-abcde", "n1")),
        incident_group(&crash("worker-5d4f8b7c9-fghij", "n2"))
    );
    assert_ne!(
        incident_group(&crash("worker-5d4f8b7c9-abcde", "n1")),
        incident_group(&crash("other-5d4f8b7c9-abcde", "n1"))
    );
}

#[test]
fn a_pool_wide_fault_on_the_nodes_of_one_pool_is_one_incident_and_one_drain_each() {
    let reclaimed = |node: &str, pool: Option<&str>| {
        let mut s = xid(node, 0, Utc::now());
        s.kind = "node.interruption_notice".into();
        s.evidence.clear();
        if let Some(pool) = pool {
            s.evidence.insert("node_pool".into(), pool.into());
        }
        s.subject = Subject {
            cluster: "a".into(),
            node: Some(node.into()),
            ..Subject::default()
        };
        s
    };
    let (n1, n2) = (
        reclaimed("n1", Some("gpu-spot")),
        reclaimed("n2", Some("gpu-spot")),
    );
    assert_eq!(
        incident_group(&n1),
        "node.interruption_notice:a/nodepool/gpu-spot"
    );
    assert_eq!(incident_group(&n1), incident_group(&n2));
    // Each node is still its own thing to drain.
    assert_ne!(target_group(&n1), target_group(&n2));
    assert_ne!(
        incident_group(&n1),
        incident_group(&reclaimed("n3", Some("gpu-on-demand")))
    );
    // No pool label: the node is its own group.
    assert_eq!(
        incident_group(&reclaimed("n4", None)),
        "node.interruption_notice:a/node/n4"
    );
    // GPU faults stay per node even when the evidence names a pool.
    let mut x = xid("n1", 0, Utc::now());
    x.evidence.insert("node_pool".into(), "gpu-spot".into());
    assert_eq!(incident_group(&x), "gpu.fault:prod/node/n1");

    let (_dir, store) = open();
    store
        .record_signals(&[n1, n2], &[], Origin::Tui, WINDOW, t(0))
        .unwrap();
    let all = store.incidents(&IncidentFilter::default()).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].affected.len(), 2, "both nodes are listed as members");
}

#[test]
fn one_fault_seen_by_several_detectors_is_one_incident() {
    // XID 48 and the ECC counters on one node: one GPU fault.
    let mut ecc = xid("gpu-node-7", 1, t(0));
    ecc.kind = "gpu.ecc".into();
    assert_eq!(
        incident_group(&ecc),
        incident_group(&xid("gpu-node-7", 0, t(0)))
    );
    assert!(incident_group(&ecc).starts_with("gpu.fault:"));
    // An endpoint down and its Deployment's pods crash-looping after a rollout: one serving
    // fault.
    let serving = |kind: &str, subject: Subject, evidence: (&str, &str)| {
        let mut s = xid("n", 0, t(0));
        s.kind = kind.into();
        s.subject = subject;
        s.evidence.clear();
        s.evidence.insert(evidence.0.into(), evidence.1.into());
        s
    };
    let down = serving(
        "endpoint.down",
        Subject {
            cluster: "a".into(),
            endpoint: Some("llama-chat".into()),
            ..Subject::default()
        },
        ("serving_deployment", "serving/llama-chat"),
    );
    let crash = serving(
        "pod.crash_loop_after_rollout",
        Subject {
            cluster: "a".into(),
            namespace: Some("serving".into()),
            object: Some("pod/llama-chat-7d9f8c6b5-x2x9q".into()),
            ..Subject::default()
        },
        ("deployment", "llama-chat"),
    );
    assert_eq!(
        incident_group(&down),
        "serving:a/deployment/serving/llama-chat"
    );
    assert_eq!(incident_group(&down), incident_group(&crash));
    // Runs still act per target: the endpoint and the Deployment.
    assert_ne!(target_group(&down), target_group(&crash));
}

#[test]
fn a_checkpoint_merges_pruned_neighbours_into_one_range_that_keeps_both_ends_hashes() {
    let h = |b: u8| [b; audit::HASH_LEN];
    let mut c = audit::Checkpoint::default();
    c.add(&[(2, h(1), h(2)), (3, h(2), h(3)), (6, h(5), h(6))]);
    assert_eq!(c.pruned, 3);
    assert_eq!(c.ranges.len(), 2);
    // Record 4 and 5 go later: the three runs become one, from 2's link to 6's hash.
    c.add(&[(4, h(3), h(4)), (5, h(4), h(5))]);
    assert_eq!(c.pruned, 5);
    assert_eq!(c.ranges.len(), 1);
    let r = &c.ranges[0];
    assert_eq!((r.first, r.last), (2, 6));
    assert_eq!(r.prev, audit::hex(&h(1)));
    assert_eq!(r.last_hash, audit::hex(&h(6)));
}

#[test]
fn retention_keeps_open_incidents_and_the_chain_verifies_through_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s")).expect("open");
    let now = Utc::now();
    let fire = |node: &str| {
        store
            .record_signals(
                &[xid(node, 0, now)],
                &[],
                Origin::Headless,
                Duration::from_secs(3600),
                now,
            )
            .expect("record")[0]
            .incident
    };
    let gone = fire("n1");
    let kept = fire("n2");
    store
        .milestone(gone, Milestone::Resolved, Actor::System, Origin::Cli)
        .expect("resolve");
    let later = Utc::now() + chrono::Duration::seconds(5);
    let r = store
        .prune_older_than(Duration::ZERO, later, Origin::Cli)
        .expect("prune");
    assert_eq!((r.incidents, r.entries), (1, 2), "{r:?}");
    assert!(store.incident(gone).expect("read").is_none());
    assert!(store.timeline(gone).expect("timeline").is_empty());
    assert_eq!(store.timeline(kept).expect("timeline").len(), 1);
    let report = store.verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.pruned, 2);
    // Ids are never given twice, even when the newest incident was pruned.
    assert_eq!(fire("n3"), 3);
}

#[test]
fn a_resumed_signal_is_unknown_until_its_hold_then_absence_clears_it() {
    let (_d, store) = open();
    let a = xid("n1", 0, t(0));
    let b = xid("n1", 1, t(0));
    store
        .record_signals(&[a.clone(), b.clone()], &[], Origin::Tui, WINDOW, t(0))
        .unwrap();
    let open = store
        .incidents(&IncidentFilter {
            open_only: true,
            since: None,
        })
        .unwrap();
    let mut rec = SignalRecorder::resume_holding(&open, |_| Some(Some(t(10))));
    assert_eq!(rec.unconfirmed().count(), 2);
    // Neither seen at first: both unknown, nothing recorded.
    assert!(rec.observe(&[], t(1)).is_empty());
    // `a` is seen again: confirmed without a new record; `b` is still unknown.
    assert!(rec.observe(std::slice::from_ref(&a), t(2)).is_empty());
    assert_eq!(
        rec.unconfirmed().map(|(k, _)| k).collect::<Vec<_>>(),
        [b.dedup_key.as_str()]
    );
    // `a`, confirmed, clears as soon as it is gone; `b` only once its hold has passed.
    assert_eq!(
        rec.observe(&[], t(3)).cleared,
        vec![(a.dedup_key.clone(), incident_group(&a))]
    );
    assert!(rec.observe(&[], t(9)).is_empty());
    assert_eq!(
        rec.observe(&[], t(10)).cleared,
        vec![(b.dedup_key.clone(), incident_group(&b))]
    );
    assert_eq!(rec.active(), 0);
}

#[test]
fn gpu_faults_group_by_their_node_whichever_pods_hold_the_gpus() {
    let (_d, store) = open();
    // A training gang's workers hold the GPUs of two nodes; an XID storm hits both nodes.
    let held = |node: &str, gpu: u32, worker: u32| {
        let mut s = xid(node, gpu, t(0));
        s.subject.gpu = Some(format!("gpu{gpu} (GPU-{node}-{gpu})"));
        s.subject.namespace = Some("training".into());
        s.subject.object = Some(format!("pod/llm-pretrain-worker-{worker}"));
        s.dedup_key = format!("gpu.xid:{}", s.subject.describe());
        s
    };
    let mut fired: Vec<Signal> = (0..3).map(|g| held("gpu-node-7", g, 0)).collect();
    fired.push(held("gpu-node-8", 10, 1));
    let mut ecc = held("gpu-node-7", 1, 0);
    ecc.kind = "gpu.ecc".into();
    ecc.dedup_key = format!("gpu.ecc:{}", ecc.subject.describe());
    fired.push(ecc);
    store
        .record_signals(&fired, &[], Origin::Tui, WINDOW, t(1))
        .unwrap();
    let mut all = store.incidents(&IncidentFilter::default()).unwrap();
    all.sort_by_key(|i| i.id);
    let groups: Vec<&str> = all.iter().map(|i| i.group.as_str()).collect();
    assert_eq!(
        groups,
        [
            "gpu.fault:prod/node/gpu-node-7",
            "gpu.fault:prod/node/gpu-node-8"
        ]
    );
    // The node is the incident's subject; the title says how many of its GPUs and which.
    assert_eq!(
        all[0].subject,
        Subject {
            cluster: "prod".into(),
            node: Some("gpu-node-7".into()),
            ..Subject::default()
        }
    );
    assert_eq!(
        all[0].title,
        "gpu-node-7: 3 GPUs faulty (gpu0, gpu1, gpu2); worst: XID 79 on gpu-node-7 gpu0: fell off the bus"
    );
    assert_eq!(all[1].title, "XID 79 on gpu-node-8 gpu10: fell off the bus");
    // Each node is its own remediation target too.
    assert_eq!(target_group(&fired[0]), "gpu.xid:prod/node/gpu-node-7");
}
