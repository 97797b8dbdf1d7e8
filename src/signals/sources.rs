//! `source.down`: a source the picture cannot see; `store.down`: the store the face records
//! in cannot be reached. Imports model and config.

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::Snapshot;
use crate::model::signal::{Severity, Subject};

/// Blind spots of the picture: a cluster's API, a GPU source or the cost source.
#[derive(Debug, Default)]
pub struct SourceDetector {
    sightings: Sightings,
}

impl Detector for SourceDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["source.down", "store.down"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        self.sources(snap, cx, out);
        Self::store(snap, out);
        self.sightings.forget_unseen();
    }
}

impl SourceDetector {
    /// `store.down`: the pipeline could not read the store (or its outage is not recorded
    /// yet). Nothing acts meanwhile: a mutation is never made without its record.
    fn store(snap: &Snapshot, out: &mut Vec<Observation>) {
        let Some(down) = &snap.store_down else { return };
        let subject = Subject {
            cluster: "fleetdeck".into(),
            object: Some("store".into()),
            ..Subject::default()
        };
        out.push(met(signal(
            "store.down",
            Severity::Critical,
            subject,
            format!("the store at {} cannot be reached: {}", down.place, down.error),
            json!({"place": down.place, "since": down.since, "error": down.error}),
            down.since,
            Some("check the database (is it up, reachable, are its credentials valid?); fleetdeck keeps watching and serving what it has, acts on nothing until the store is back, then records the outage"),
        )));
    }

    /// `source.down`: a source the picture cannot see (an API server unreachable, a watch
    /// broken, a GPU or cost source failing or silent), dated from when it was last seen, so
    /// its `for` counts from the break. Blind is not calm: the signals it would raise are
    /// unknown while it lasts.
    fn sources(&mut self, snap: &Snapshot, cx: &Context<'_>, out: &mut Vec<Observation>) {
        use crate::model::blind::BlindSource;
        let now = cx.now;
        for spot in snap.blind_spots(now, cx.thresholds.source_silent_after) {
            let (severity, object) = match &spot.source {
                // Every signal of the cluster is unknown.
                BlindSource::Cluster => (Severity::Critical, "apiserver".to_string()),
                BlindSource::Gpu(_) => (Severity::Warning, format!("source/{}", spot.name())),
                BlindSource::Cost => (Severity::Warning, "source/cost".to_string()),
                BlindSource::Resource(r) => (Severity::Warning, format!("resource/{r}")),
            };
            let subject = Subject {
                cluster: spot.cluster.clone(),
                object: Some(object),
                ..Subject::default()
            };
            let key = format!("source.down:{}", subject.describe());
            self.sightings.seen(&key, now);
            out.push(met(signal(
                "source.down",
                severity,
                subject,
                format!("{}: {}", spot.describe(now), spot.error),
                json!({"source": spot.name(), "target": spot.target, "state": spot.state, "since": spot.since, "seconds": spot.age(now).as_secs(), "error": spot.error}),
                spot.since,
                Some(match spot.source {
                    BlindSource::Cluster => "check the API server and the network path to it; fleetdeck keeps the last picture, but nothing new is seen",
                    BlindSource::Gpu(_) => "check the exporter (or NVML) and its scrape target; GPU faults on this cluster go unseen meanwhile",
                    BlindSource::Cost => "check the cost source; budgets and forecasts are not updated meanwhile",
                    BlindSource::Resource(_) => "RBAC forbids watching this resource: grant list and watch on it to fleetdeck's ServiceAccount (deploy/10-rbac.yaml)",
                }),
            )));
        }
    }
}
