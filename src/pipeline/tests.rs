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
