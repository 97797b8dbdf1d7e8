//! `vector.index_stale`: a vector store (a `pinecone` or `qdrant` endpoint) whose vector count
//! has stopped growing while what writes into it says it is fine, so retrieval answers from
//! documents that no longer arrive. One signal per index. Imports model and config.
//!
//! The window is the kind's `for` (`[signals.for] vector_index_stale`, 30 minutes): the
//! condition holds from the later of the count's last growth and the ingestion's last start,
//! and the signal fires once it has held that long. A store nothing is configured to write into
//! (no `ingestion`) is never stale: a read-only index is meant to be flat.
//!
//! "The ingestion is fine" has one seam, [`stale_since`], which takes when the ingestion was
//! last seen to start reporting success. Today it is fed from Kubernetes
//! ([`job_ingestion_ok_since`]: the configured Job, or the newest Job of a CronJob of that
//! name, Running or Complete); an Airflow DAG's successful runs (`ingestion.dag`) feed the
//! same seam once an Airflow source reports them.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::endpoint::{EndpointModel, IngestionRef, VectorModel};
use crate::model::signal::{Severity, Subject};
use crate::model::{Snapshot, WorkloadCounts, WorkloadKind, WorkloadModel, WorkloadState};

/// Vector indexes whose count went flat under a working ingestion.
#[derive(Debug, Default)]
pub struct VectorDetector {
    sightings: Sightings,
}

impl Detector for VectorDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["vector.index_stale"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for e in snap
            .endpoints
            .iter()
            .filter(|e| e.protocol.is_vector_store())
        {
            let (Some(vector), Some(ingestion)) = (&e.vector, &e.ingestion) else {
                continue;
            };
            let job = job_ingestion(snap, ingestion);
            let ok_since = job.and_then(ingestion_ok_since);
            let Some(since) = stale_since(vector, ok_since) else {
                continue;
            };
            out.push(met(self.stale(e, vector, ingestion, job, since, cx.now)));
        }
        self.sightings.forget_unseen();
    }
}

/// When an index's staleness began: the later of its count's last growth and `ingestion_ok_since`
/// (when its ingestion was last seen to start reporting success); `None` while the latest
/// reading grew, before any reading, or while the ingestion is not reported fine (a failing
/// ingestion explains a flat index: that is the ingestion's alert, not the index's).
pub fn stale_since(
    vector: &VectorModel,
    ingestion_ok_since: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let latest = vector.latest.as_ref()?;
    let grew_at = vector.grew_at?;
    let ok_since = ingestion_ok_since?;
    // The latest reading is the one that grew: not flat, however briefly.
    if latest.at <= grew_at {
        return None;
    }
    Some(grew_at.max(ok_since))
}

/// The ingestion's Job in the snapshot: the one named `ingestion.job`, or, for a CronJob of
/// that name, its newest Job (`<cronjob>-<n>`).
pub fn job_ingestion<'a>(
    snap: &'a Snapshot,
    ingestion: &IngestionRef,
) -> Option<&'a WorkloadModel> {
    let (cluster, namespace, job) = (
        ingestion.cluster.as_deref()?,
        ingestion.namespace.as_deref()?,
        ingestion.job.as_deref()?,
    );
    let prefix = format!("{job}-");
    snap.clusters
        .iter()
        .filter(|c| c.name == cluster)
        .flat_map(|c| &c.workloads)
        .filter(|w| w.kind == WorkloadKind::Job && w.namespace == namespace)
        .filter(|w| {
            w.name == job
                || w.name
                    .strip_prefix(&prefix)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .max_by_key(|w| (w.name == job, w.created))
}

/// Since when a Job says its ingestion is fine: a running Job (an active pod, no failure) since
/// it was created, a completed one since it finished; `None` for a failed or suspended Job.
pub fn ingestion_ok_since(job: &WorkloadModel) -> Option<DateTime<Utc>> {
    match (job.state, job.counts) {
        (WorkloadState::Progressing, WorkloadCounts::Job { active, .. }) if active > 0 => {
            job.created
        }
        (WorkloadState::Complete, _) => job.finished.or(job.created),
        _ => None,
    }
}

impl VectorDetector {
    fn stale(
        &mut self,
        e: &EndpointModel,
        vector: &VectorModel,
        ingestion: &IngestionRef,
        job: Option<&WorkloadModel>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> crate::model::signal::Signal {
        let subject = Subject {
            cluster: ingestion.cluster.clone().unwrap_or_default(),
            endpoint: Some(e.name.clone()),
            object: Some(format!("index/{}", e.name)),
            ..Subject::default()
        };
        let key = format!("vector.index_stale:{}", subject.describe());
        // The condition dates from the data, not from when this process first looked.
        let first = self.sightings.seen(&key, now).min(since);
        let count = vector.latest.as_ref().map(|l| l.count);
        let flat_min = (now - since).num_minutes().max(0);
        let job_name = job.map(|j| format!("{}/{}", j.namespace, j.name));
        signal(
            "vector.index_stale",
            Severity::Warning,
            subject,
            format!(
                "{} has held {} vectors for {flat_min} min while its ingestion {} reports fine",
                e.name,
                count.map_or_else(|| "?".to_string(), |c| c.to_string()),
                job_name.as_deref().unwrap_or("job")
            ),
            json!({
                "vector_count": count,
                "grew_at": vector.grew_at,
                "stale_since": since,
                "ingestion_job": job_name,
                "ingestion_state": job.map(|j| j.state),
                "ingestion_dag": ingestion.dag,
            }),
            first,
            Some(
                "check the ingestion's writes (its logs, the store's write errors and quota) rather than its exit status",
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoint::VectorReading;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap_or_default()
    }

    fn vector(grew_at: i64, latest_at: i64) -> VectorModel {
        VectorModel {
            latest: Some(VectorReading {
                at: t(latest_at),
                count: 1000,
                dimension: Some(8),
                fullness: None,
                indexed: None,
                status: None,
            }),
            grew_at: Some(t(grew_at)),
            growth_per_min: Some(0.0),
            error: None,
        }
    }

    fn job(state: WorkloadState, active: u32, created: i64) -> WorkloadModel {
        WorkloadModel {
            kind: WorkloadKind::Job,
            namespace: "batch".into(),
            name: "docs-ingest".into(),
            counts: WorkloadCounts::Job {
                completions: Some(1),
                active,
                succeeded: 0,
                failed: 0,
            },
            state,
            detail: None,
            images: Vec::new(),
            created: Some(t(created)),
            finished: None,
        }
    }

    #[test]
    fn a_flat_index_is_stale_from_its_last_growth_while_its_ingestion_is_fine() {
        assert_eq!(stale_since(&vector(100, 400), Some(t(0))), Some(t(100)));
        // The ingestion restarted after the count went flat: its own time counts.
        assert_eq!(stale_since(&vector(100, 400), Some(t(300))), Some(t(300)));
    }

    #[test]
    fn a_growing_index_or_a_failing_ingestion_is_not_stale() {
        assert_eq!(stale_since(&vector(400, 400), Some(t(0))), None);
        assert_eq!(stale_since(&vector(100, 400), None), None);
    }

    #[test]
    fn a_running_or_completed_job_reports_fine_and_a_failed_one_does_not() {
        assert_eq!(
            ingestion_ok_since(&job(WorkloadState::Progressing, 1, 50)),
            Some(t(50))
        );
        assert_eq!(
            ingestion_ok_since(&job(WorkloadState::Progressing, 0, 50)),
            None
        );
        assert_eq!(ingestion_ok_since(&job(WorkloadState::Failed, 0, 50)), None);
        let mut done = job(WorkloadState::Complete, 0, 50);
        done.finished = Some(t(90));
        assert_eq!(ingestion_ok_since(&done), Some(t(90)));
    }

    #[test]
    fn a_cronjobs_newest_job_is_its_ingestion() {
        let mut snap = Snapshot::default();
        let mut older = job(WorkloadState::Complete, 0, 10);
        older.name = "docs-ingest-28100".into();
        let mut newer = job(WorkloadState::Failed, 0, 20);
        newer.name = "docs-ingest-28160".into();
        let mut other = job(WorkloadState::Progressing, 1, 30);
        other.name = "docs-ingest-extra".into();
        snap.clusters
            .push(std::sync::Arc::new(crate::model::ClusterSnapshot {
                name: "prod".into(),
                workloads: vec![older, newer, other],
                ..Default::default()
            }));
        let ingestion = IngestionRef {
            cluster: Some("prod".into()),
            namespace: Some("batch".into()),
            job: Some("docs-ingest".into()),
            dag: None,
        };
        let found = job_ingestion(&snap, &ingestion).map(|j| j.name.as_str());
        assert_eq!(found, Some("docs-ingest-28160"));
    }
}
