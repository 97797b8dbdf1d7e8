//! `pipeline.dag_failing`: an Airflow DAG that is not paused whose newest `[airflow]
//! failed_runs` finished runs all failed, or whose running run is past its `[airflow] sla`. One
//! signal per DAG, naming the failed run and its failed tasks. Reads the snapshot's
//! [`AirflowPicture`] only. Imports model and config.

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::airflow::{AIRFLOW_SUBJECT, DagVerdict, judge};
use crate::model::signal::{Severity, Subject};

#[derive(Debug, Default)]
pub struct AirflowDetector {
    sightings: Sightings,
}

/// The subject of a DAG's signals (`airflow/dag/<id>`), which an incident groups by.
pub fn dag_subject(dag_id: &str) -> Subject {
    Subject {
        cluster: AIRFLOW_SUBJECT.to_string(),
        object: Some(format!("dag/{dag_id}")),
        ..Subject::default()
    }
}

impl Detector for AirflowDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["pipeline.dag_failing"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        let Some(picture) = &snap.airflow else { return };
        for dag in &picture.dags {
            let Some(verdict) = judge(picture, dag, cx.now) else {
                continue;
            };
            let key = format!("pipeline.dag_failing:{}", dag.dag_id);
            let first = self.sightings.seen(&key, cx.now);
            let tasks: Vec<&str> = dag
                .failed_tasks
                .iter()
                .filter(|t| t.state == "failed")
                .map(|t| t.task_id.as_str())
                .collect();
            let (summary, severity) = match &verdict {
                DagVerdict::RunsFailed { runs } => (
                    format!(
                        "Airflow DAG {} failing: its last {runs} runs failed{}",
                        dag.dag_id,
                        if tasks.is_empty() {
                            String::new()
                        } else {
                            format!(" (task {})", tasks.join(", "))
                        }
                    ),
                    Severity::Warning,
                ),
                DagVerdict::PastSla {
                    run_id,
                    started,
                    sla_seconds,
                } => (
                    format!(
                        "Airflow DAG {} run {run_id} past its SLA: running {} min, SLA {} min",
                        dag.dag_id,
                        (cx.now - *started).num_minutes(),
                        sla_seconds / 60
                    ),
                    Severity::Warning,
                ),
            };
            out.push(met(signal(
                "pipeline.dag_failing",
                severity,
                dag_subject(&dag.dag_id),
                summary,
                json!({
                    "dag_id": dag.dag_id,
                    "failed_run": dag.failed_run,
                    "failed_tasks": tasks,
                    "last_success": dag.last_success(),
                    "runs": dag.runs.iter().take(picture.failed_runs.max(1) as usize).map(|r| json!({"run_id": r.run_id, "state": r.state.word()})).collect::<Vec<_>>(),
                    "past_sla": matches!(verdict, DagVerdict::PastSla { .. }),
                    "airflow": picture.url,
                }),
                first,
                Some("read the failed task's log in Airflow; once its cause is fixed, clear the failed run (airflow_clear)"),
            )));
        }
        self.sightings.forget_unseen();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::airflow::{AirflowPicture, DagModel, DagRunModel, FailedTask, RunState};

    fn run(id: &str, state: RunState, start: Option<DateTime<Utc>>) -> DagRunModel {
        DagRunModel {
            run_id: id.into(),
            state,
            logical_date: None,
            start,
            end: None,
        }
    }

    fn picture(dag: DagModel) -> AirflowPicture {
        AirflowPicture {
            url: "http://airflow:8080".into(),
            api_version: "v1".into(),
            dags: vec![dag],
            import_errors: Vec::new(),
            health: None,
            failed_runs: 2,
            fetched_at: None,
            error: None,
        }
    }

    fn dag(runs: Vec<DagRunModel>) -> DagModel {
        DagModel {
            dag_id: "feature_build_nightly".into(),
            paused: false,
            description: None,
            owners: Vec::new(),
            runs,
            failed_run: Some("r3".into()),
            failed_tasks: vec![FailedTask {
                task_id: "build_features".into(),
                state: "failed".into(),
                try_number: Some(1),
                end: None,
            }],
            sla_seconds: None,
        }
    }

    #[test]
    fn the_last_two_finished_runs_failing_is_failing_and_a_running_one_does_not_hide_it() {
        let now = Utc::now();
        let d = dag(vec![
            run("r4", RunState::Running, Some(now)),
            run("r3", RunState::Failed, None),
            run("r2", RunState::Failed, None),
            run("r1", RunState::Success, None),
        ]);
        let p = picture(d.clone());
        assert_eq!(judge(&p, &d, now), Some(DagVerdict::RunsFailed { runs: 2 }));
        let one = dag(vec![
            run("r3", RunState::Failed, None),
            run("r2", RunState::Success, None),
        ]);
        assert_eq!(judge(&p, &one, now), None);
    }

    #[test]
    fn a_paused_dag_is_nobodys_page() {
        let now = Utc::now();
        let mut d = dag(vec![
            run("r3", RunState::Failed, None),
            run("r2", RunState::Failed, None),
        ]);
        d.paused = true;
        assert_eq!(judge(&picture(d.clone()), &d, now), None);
    }

    #[test]
    fn a_run_running_past_its_sla_is_failing() {
        let now = Utc::now();
        let mut d = dag(vec![
            run(
                "r2",
                RunState::Running,
                Some(now - chrono::Duration::minutes(90)),
            ),
            run("r1", RunState::Success, None),
        ]);
        d.sla_seconds = Some(3600);
        assert!(matches!(
            judge(&picture(d.clone()), &d, now),
            Some(DagVerdict::PastSla { .. })
        ));
        d.sla_seconds = Some(7200);
        assert_eq!(judge(&picture(d.clone()), &d, now), None);
    }

    #[test]
    fn the_signal_names_the_dag_and_its_failed_task() {
        let now = Utc::now();
        let d = dag(vec![
            run("r3", RunState::Failed, None),
            run("r2", RunState::Failed, None),
        ]);
        let snap = crate::model::Snapshot {
            airflow: Some(std::sync::Arc::new(picture(d))),
            ..Default::default()
        };
        let thresholds = crate::config::Thresholds::default();
        let patience = super::super::patience::Patience::default();
        let history = crate::model::gpu_history::GpuHistory::default();
        let cx = Context {
            now,
            thresholds: &thresholds,
            patience: &patience,
            gpu_history: &history,
        };
        let mut out = Vec::new();
        AirflowDetector::default().observe(Input::Fleet(&snap), &cx, &mut out);
        assert_eq!(out.len(), 1);
        let s = &out[0].signal;
        assert_eq!(
            s.dedup_key,
            "pipeline.dag_failing:airflow/dag/feature_build_nightly"
        );
        assert!(s.summary.contains("build_features"), "{}", s.summary);
    }
}
