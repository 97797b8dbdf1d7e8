use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::model::incident::IncidentStatus;
use crate::model::signal::{Severity, Subject};

fn alert(name: &str) -> Signal {
    Signal {
        kind: format!("alert.{name}"),
        severity: Severity::Warning,
        subject: Subject {
            cluster: "prod-a".into(),
            node: Some("gpu-a-1".into()),
            ..Subject::default()
        },
        summary: format!("{name} fires"),
        evidence: BTreeMap::new(),
        action: None,
        first_seen: Utc::now(),
        dedup_key: format!("alert:{name}"),
    }
}

/// An intake whose firing alerts the test sets.
#[derive(Default)]
struct Alerts(Mutex<Vec<Signal>>);

impl Intake for Alerts {
    fn signals(&self) -> Vec<Signal> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn key_prefix(&self) -> &'static str {
        "alert:"
    }
}

fn config(origin: Origin) -> PipelineConfig {
    PipelineConfig {
        warm_up_patience: Duration::ZERO,
        ..PipelineConfig::new(Thresholds::default(), origin)
    }
}

fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"))
}

fn status_of(store: &Store, group_prefix: &str) -> IncidentStatus {
    store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default()
        .into_iter()
        .find(|i| i.group.starts_with(group_prefix))
        .map(|i| i.status)
        .unwrap_or_else(|| panic!("no incident of {group_prefix}"))
}

#[tokio::test]
async fn intake_signals_are_recorded_with_the_fleets_and_clear_when_they_resolve() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = store(&dir);
    let alerts = Arc::new(Alerts::default());
    if let Ok(mut a) = alerts.0.lock() {
        a.push(alert("GpuHot"));
    }
    let mut p = Pipeline::new(config(Origin::Headless))
        .with_store(store.clone())
        .with_intake(alerts.clone());
    let e = p.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert!(e.recording && e.recorded == 1, "{e:?}");
    assert_eq!(e.signals().len(), 1);
    assert_eq!(status_of(&store, "alert."), IncidentStatus::Open);

    if let Ok(mut a) = alerts.0.lock() {
        a.clear();
    }
    let e = p.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert!(e.signals().is_empty());
    assert_eq!(status_of(&store, "alert."), IncidentStatus::Mitigated);
}

#[tokio::test]
async fn a_face_without_the_intake_never_clears_the_alerts_another_process_recorded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = store(&dir);
    let alerts = Arc::new(Alerts::default());
    if let Ok(mut a) = alerts.0.lock() {
        a.push(alert("GpuHot"));
    }
    // headless records the alert and stops …
    Pipeline::new(config(Origin::Headless))
        .with_store(store.clone())
        .with_intake(alerts)
        .evaluate(Arc::new(Snapshot::default()), Utc::now())
        .await;
    let before = store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default();
    // … the cockpit opens the same store: it has no Alertmanager intake, so the alert's
    // absence from its picture says nothing.
    let mut cockpit = Pipeline::new(config(Origin::Tui)).with_store(store.clone());
    for _ in 0..3 {
        let e = cockpit
            .evaluate(Arc::new(Snapshot::default()), Utc::now())
            .await;
        assert_eq!(e.recorded, 0, "{e:?}");
    }
    let after = store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default();
    assert_eq!(before, after);
    assert_eq!(status_of(&store, "alert."), IncidentStatus::Open);
}

#[tokio::test]
async fn nothing_is_recorded_and_no_run_starts_until_the_picture_is_complete() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = store(&dir);
    let alerts = Arc::new(Alerts::default());
    if let Ok(mut a) = alerts.0.lock() {
        a.push(alert("GpuHot"));
    }
    // One GPU source is expected and has not reported: the picture is incomplete.
    let mut p = Pipeline::new(PipelineConfig {
        gpu_sources: 1,
        ..PipelineConfig::new(Thresholds::default(), Origin::Headless)
    })
    .with_store(store.clone())
    .with_intake(alerts);
    let e = p.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert_eq!(e.signals().len(), 1, "signals are shown at once");
    assert!(!e.recording);
    assert!(
        store
            .incidents(&IncidentFilter::default())
            .unwrap_or_default()
            .is_empty()
    );
}

/// A synced cluster with nothing wrong on it: every detector sees a healthy fleet.
fn quiet_fleet(now: DateTime<Utc>) -> Snapshot {
    use crate::model::{ClusterSnapshot, ResourceSync, SyncState};
    Snapshot {
        clusters: vec![Arc::new(ClusterSnapshot {
            name: "prod-a".into(),
            server: "https://prod-a.example:6443".into(),
            sync: vec![ResourceSync {
                resource: "pods".into(),
                state: SyncState::Synced,
                changed_at: now,
            }],
            ..Default::default()
        })],
        ..Snapshot::default()
    }
}

fn crash_loop(at: DateTime<Utc>) -> Signal {
    let subject = Subject {
        cluster: "prod-a".into(),
        namespace: Some("batch".into()),
        object: Some("pod/tokenizer-worker-7d9f8c6b5-x2x9q".into()),
        ..Subject::default()
    };
    Signal {
        kind: "pod.crash_loop".into(),
        severity: Severity::Warning,
        dedup_key: format!("pod.crash_loop:{}", subject.describe()),
        subject,
        summary: "tokenizer-worker crash-loops".into(),
        evidence: BTreeMap::new(),
        action: None,
        first_seen: at,
    }
}

fn cleared_entries(store: &Store) -> Vec<String> {
    store
        .incidents(&IncidentFilter::default())
        .unwrap_or_default()
        .iter()
        .flat_map(|i| store.timeline(i.id).unwrap_or_default())
        .map(|e| e.entry.summary)
        .filter(|s| s.starts_with("cleared") || s.starts_with("mitigated"))
        .collect()
}

#[tokio::test]
async fn a_restart_leaves_a_resumed_signal_unknown_until_its_detector_had_its_for() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = store(&dir);
    let start = Utc::now();
    // The process before the restart recorded a crash loop …
    store
        .record_signals(
            &[crash_loop(start - chrono::Duration::minutes(10))],
            &[],
            Origin::Tui,
            Duration::from_secs(3600),
            start - chrono::Duration::minutes(5),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // … and the new one has not seen it yet: its detector needs the kind's `for` (2 minutes)
    // of sightings before the crash loop fires again.
    let mut p = Pipeline::new(config(Origin::Tui)).with_store(store.clone());
    let hold = Thresholds::default().resume_hold("pod.crash_loop") + RESUME_MARGIN;
    let hold = chrono::Duration::from_std(hold).unwrap_or_default();
    for at in [
        start,
        start + chrono::Duration::seconds(1),
        start + hold - chrono::Duration::seconds(1),
    ] {
        let e = p.evaluate(Arc::new(quiet_fleet(at)), at).await;
        assert!(e.recording, "{e:?}");
        assert_eq!(status_of(&store, "pod.crash_loop:"), IncidentStatus::Open);
        assert_eq!(cleared_entries(&store), Vec::<String>::new(), "at {at}");
        // Every face is told it is unknown, not calm.
        let held = &e.snapshot.unknown_since_start;
        assert_eq!(held.len(), 1, "at {at}: {held:?}");
        assert_eq!(held[0].kind(), "pod.crash_loop");
    }
    // A full `for` (and a margin) of fresh data without it: now its absence means it cleared.
    let at = start + hold;
    let e = p.evaluate(Arc::new(quiet_fleet(at)), at).await;
    assert_eq!(e.snapshot.unknown_since_start, Vec::new());
    assert_eq!(
        status_of(&store, "pod.crash_loop:"),
        IncidentStatus::Mitigated
    );
    assert_eq!(cleared_entries(&store).len(), 2, "cleared, then mitigated");
}

/// Two replicas on one PostgreSQL store: only the leader writes what both see; the one that
/// takes over resumes from the store and writes the rest, once.
#[tokio::test]
#[ignore = "needs postgresql"]
async fn on_a_shared_store_only_the_leader_records_and_a_new_leader_resumes_from_it() {
    use crate::store::conformance::pg_server;
    use std::sync::atomic::AtomicBool;
    let url = pg_server::fresh_database();
    let open = || {
        Store::open_postgres(&crate::store::PgOptions {
            url: url.clone(),
            password: None,
            ca_file: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (store_a, store_b) = (open(), open());
    let alerts = Arc::new(Alerts::default());
    if let Ok(mut a) = alerts.0.lock() {
        a.push(alert("GpuHot"));
    }
    let (a_leads, b_leads) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    );
    let replica = |store: &Store, leads: &Arc<AtomicBool>| {
        Pipeline::new(config(Origin::Headless))
            .with_store(store.clone())
            .with_intake(alerts.clone())
            .with_acting(Some(leads.clone()))
    };
    let (mut a, mut b) = (replica(&store_a, &a_leads), replica(&store_b, &b_leads));
    for _ in 0..3 {
        let (ea, eb) = (
            a.evaluate(Arc::new(Snapshot::default()), Utc::now()).await,
            b.evaluate(Arc::new(Snapshot::default()), Utc::now()).await,
        );
        assert!(ea.recording && !eb.recording, "{ea:?} {eb:?}");
        assert_eq!(
            eb.signals().len(),
            1,
            "the follower still detects and shows"
        );
    }
    let fired = |store: &Store| {
        store
            .entries(&Default::default())
            .unwrap_or_default()
            .iter()
            .filter(|e| e.entry.kind == crate::model::incident::EntryKind::Signal)
            .count()
    };
    assert_eq!(fired(&store_b), 1, "one fired entry, the leader's");
    assert_eq!(
        store_b
            .incidents(&IncidentFilter::default())
            .unwrap_or_default()
            .len(),
        1
    );

    // The Lease moves to b; the alert resolves: b writes the clear, a writes nothing more.
    a_leads.store(false, Ordering::SeqCst);
    b_leads.store(true, Ordering::SeqCst);
    let eb = b.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert!(eb.recording, "{eb:?}");
    assert_eq!(fired(&store_a), 1, "a resumed alert is not fired again");
    if let Ok(mut al) = alerts.0.lock() {
        al.clear();
    }
    let ea = a.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert!(!ea.recording);
    b.evaluate(Arc::new(Snapshot::default()), Utc::now()).await;
    assert_eq!(status_of(&store_a, "alert."), IncidentStatus::Mitigated);
}
