//! `pipeline.spark_failed`: a Spark operator `SparkApplication` whose latest failed run (FAILED or
//! SUBMISSION_FAILED) no newer run of the same application has superseded, from `state`'s
//! SparkApplications. The runs of one `ScheduledSparkApplication` (its
//! `sparkoperator.k8s.io/scheduled-app-name` label) are one application, so yesterday's failure
//! healed by today's run raises nothing and two failing nights are one incident. Imports model.

use std::collections::BTreeMap;

use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::ClusterSnapshot;
use crate::model::signal::{Severity, Subject};
use crate::model::spark::SparkApplicationModel;

/// Failed Spark applications not superseded by a newer healthy run.
#[derive(Debug, Default)]
pub struct SparkDetector {
    sightings: Sightings,
}

impl Detector for SparkDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["pipeline.spark_failed"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for c in &snap.clusters {
            for (key, run) in unsuperseded_failures(&c.spark_applications) {
                self.raise(c, key, run, cx, out);
            }
        }
        self.sightings.forget_unseen();
    }
}

/// Per application (namespace, app key), its newest failed run when no run started after it is
/// healthy. Runs are ordered by their last submission (their creation before one).
pub fn unsuperseded_failures(
    apps: &[SparkApplicationModel],
) -> Vec<((&str, &str), &SparkApplicationModel)> {
    let mut by_app: BTreeMap<(&str, &str), Vec<&SparkApplicationModel>> = BTreeMap::new();
    for a in apps {
        by_app
            .entry((a.namespace.as_str(), a.app_key()))
            .or_default()
            .push(a);
    }
    let mut out = Vec::new();
    for (key, mut runs) in by_app {
        runs.sort_by(|a, b| a.started().cmp(&b.started()).then(a.name.cmp(&b.name)));
        let Some(last_failed) = runs.iter().rposition(|r| r.failed()) else {
            continue;
        };
        if runs[last_failed + 1..].iter().any(|r| r.healthy()) {
            continue;
        }
        out.push((key, runs[last_failed]));
    }
    out
}

impl SparkDetector {
    fn raise(
        &mut self,
        c: &ClusterSnapshot,
        (ns, app): (&str, &str),
        run: &SparkApplicationModel,
        cx: &Context<'_>,
        out: &mut Vec<Observation>,
    ) {
        let key = format!("pipeline.spark_failed:{}/{ns}/{app}", c.name);
        let first = self.sightings.seen(&key, cx.now);
        let subject = Subject {
            cluster: c.name.clone(),
            namespace: Some(ns.to_string()),
            object: Some(format!("sparkapplication/{app}")),
            ..Subject::default()
        };
        let error = run
            .error_message
            .as_deref()
            .unwrap_or("the operator recorded no errorMessage");
        let driver = run.driver_pod.as_deref().map_or_else(
            || String::from("no driver pod"),
            |p| format!("driver pod {ns}/{p}"),
        );
        let run_words = if run.name == app {
            String::new()
        } else {
            format!(" (run {})", run.name)
        };
        out.push(met(signal(
            "pipeline.spark_failed",
            Severity::Warning,
            subject,
            format!(
                "Spark application {ns}/{app}{run_words} {} after {} attempt(s): {error}; {driver}",
                run.state,
                run.execution_attempts.max(run.submission_attempts)
            ),
            json!({
                "application": app,
                "run": run.name,
                "state": run.state,
                "error_message": run.error_message,
                "driver_pod": run.driver_pod,
                "submission_attempts": run.submission_attempts,
                "execution_attempts": run.execution_attempts,
                "terminated": run.terminated,
            }),
            first,
            Some("read the driver pod's log (:spark, l) for the exception, fix its cause, then resubmit the application (or let its schedule run it again)"),
        )));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    fn run(
        name: &str,
        state: &str,
        hours_ago: i64,
        scheduled: Option<&str>,
    ) -> SparkApplicationModel {
        let base = Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
            .single()
            .unwrap_or_default();
        SparkApplicationModel {
            namespace: "batch".into(),
            name: name.into(),
            state: state.into(),
            error_message: (state == "FAILED").then(|| "boom".to_string()),
            driver_pod: Some(format!("{name}-driver")),
            last_submission: Some(base - Duration::hours(hours_ago)),
            scheduled_app: scheduled.map(str::to_string),
            execution_attempts: 1,
            submission_attempts: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_application_is_raised_once_by_its_name() {
        let apps = vec![
            run("nightly-etl", "FAILED", 1, None),
            run("backfill", "RUNNING", 1, None),
        ];
        let got = unsuperseded_failures(&apps);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, ("batch", "nightly-etl"));
    }

    #[test]
    fn a_scheduled_failure_healed_by_a_newer_run_raises_nothing() {
        let apps = vec![
            run("agg-1", "FAILED", 48, Some("agg")),
            run("agg-2", "COMPLETED", 24, Some("agg")),
        ];
        assert!(unsuperseded_failures(&apps).is_empty());
    }

    #[test]
    fn two_failing_runs_of_a_schedule_are_one_failure_naming_the_newest() {
        let apps = vec![
            run("agg-1", "FAILED", 48, Some("agg")),
            run("agg-2", "COMPLETED", 36, Some("agg")),
            run("agg-3", "SUBMISSION_FAILED", 24, Some("agg")),
            run("agg-4", "FAILED", 1, Some("agg")),
        ];
        let got = unsuperseded_failures(&apps);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, ("batch", "agg"));
        assert_eq!(got[0].1.name, "agg-4");
    }

    #[test]
    fn an_older_success_does_not_hide_a_newer_failure() {
        let apps = vec![
            run("agg-1", "COMPLETED", 48, Some("agg")),
            run("agg-2", "FAILED", 24, Some("agg")),
        ];
        assert_eq!(unsuperseded_failures(&apps).len(), 1);
    }
}
