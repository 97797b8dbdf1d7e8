//! The simulated fleet's Spark applications (the Kubeflow Spark operator's `SparkApplication`):
//! two running (a nightly ETL, a feature backfill) with their driver and executor pods, and a
//! scheduled application's two runs, the older FAILED and superseded by a newer COMPLETED one
//! (a healthy fleet keeps such history, and nothing about it is a fault).

use chrono::Duration as ChronoDuration;
use serde_json::{Value, json};

use crate::sim::cluster::spark::{
    driver_pod_name, executor_pod_names, running_status, spark_app_id, spark_pod_template,
};
use crate::sim::resources::Kind;
use crate::sim::store::timestamp;

use super::Gen;

/// Where the Spark applications run.
pub(super) const SPARK_NAMESPACE: &str = "batch";

fn application(
    name: &str,
    main_class: &str,
    file: &str,
    executors: u64,
    created: &str,
    labels: Value,
) -> Value {
    json!({
        "metadata": {"name": name, "namespace": SPARK_NAMESPACE, "labels": labels,
            "annotations": {}, "generation": 1, "creationTimestamp": created},
        "spec": {
            "type": "Scala", "mode": "cluster", "image": "apache/spark:3.5.3",
            "imagePullPolicy": "IfNotPresent", "mainClass": main_class,
            "mainApplicationFile": file, "sparkVersion": "3.5.3",
            "restartPolicy": {"type": "OnFailure", "onFailureRetries": 3,
                "onFailureRetryInterval": 10, "onSubmissionFailureRetries": 5,
                "onSubmissionFailureRetryInterval": 20},
            "driver": {"cores": 1, "memory": "2g", "serviceAccount": "spark-operator-spark",
                "labels": {"version": "3.5.3"}},
            "executor": {"cores": 2, "instances": executors, "memory": "4g",
                "labels": {"version": "3.5.3"}},
        },
        "status": {},
    })
}

impl Gen<'_> {
    /// A running application with its driver and executors on the nodes from `node` down,
    /// beside the per-node pod budget (like the feature cache) so the fleet's layout stays.
    fn running_spark_app(&mut self, app: Value, node: usize) {
        let app = self.create(Kind::SparkApplication, app);
        if app.is_null() {
            return;
        }
        let name = app["metadata"]["name"].as_str().unwrap_or("").to_string();
        let submitted = self.ago(1, 3);
        let app_id = spark_app_id(&app, 1);
        let mut app = app;
        app["status"] = running_status(&app, &app_id, 1, &timestamp(submitted));
        let app = self.st.store.replace(Kind::SparkApplication, app);
        let mut pods = vec![(driver_pod_name(&name), None)];
        pods.extend(
            executor_pod_names(&app, &app_id)
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, Some(i as u64 + 1))),
        );
        let count = self.nodes.len();
        for (i, (pod_name, exec)) in pods.into_iter().enumerate() {
            let Some(plan) = self.nodes.get((node + count - i % count) % count) else {
                return;
            };
            let node_name = plan.name.clone();
            let template = spark_pod_template(&app, &app_id, exec);
            let started = submitted + ChronoDuration::seconds(20 + 15 * i as i64);
            let mut pod = self.pod(&app, &template, &node_name, "Running", started);
            pod["metadata"]["name"] = json!(pod_name);
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("generateName");
            }
            self.create(Kind::Pod, pod);
        }
    }

    /// A finished run of a scheduled application, its pods long cleaned up.
    fn finished_spark_app(&mut self, app: Value, state: &str, error: Option<&str>, days: i64) {
        let app = self.create(Kind::SparkApplication, app);
        if app.is_null() {
            return;
        }
        let submitted = self.now - ChronoDuration::days(days) - ChronoDuration::hours(2);
        let app_id = spark_app_id(&app, 1);
        let mut app = app;
        let mut status = running_status(&app, &app_id, 1, &timestamp(submitted));
        let ended = if state == "FAILED" {
            "FAILED"
        } else {
            "COMPLETED"
        };
        if let Some(m) = status["executorState"].as_object_mut() {
            for v in m.values_mut() {
                *v = json!(ended);
            }
        }
        status["applicationState"] = json!({"state": state});
        if let Some(e) = error {
            status["applicationState"]["errorMessage"] = json!(e);
        }
        status["terminationTime"] = json!(timestamp(submitted + ChronoDuration::minutes(47)));
        app["status"] = status;
        self.st.store.replace(Kind::SparkApplication, app);
    }

    /// The fleet's Spark applications (the first cluster only, where the data team runs).
    pub(super) fn spark_applications(&mut self) {
        let count = self.nodes.len();
        if count == 0 {
            return;
        }
        let created = timestamp(self.now - ChronoDuration::days(30));
        let team = json!({"team": "data"});
        let etl = application(
            "nightly-etl",
            "com.fleet.etl.NightlyEtl",
            "s3a://fleet-jobs/etl/nightly-etl-4.2.0.jar",
            3,
            &created,
            team.clone(),
        );
        // Away from the last nodes (the feature cache's) and the first (where scenarios look).
        self.running_spark_app(etl, count.saturating_sub(4));
        let backfill = application(
            "feature-backfill",
            "com.fleet.features.Backfill",
            "s3a://fleet-jobs/features/backfill-1.9.1.jar",
            2,
            &created,
            team,
        );
        self.running_spark_app(backfill, count.saturating_sub(8));
        for (day, state, error) in [
            (
                2,
                "FAILED",
                Some(
                    "driver container failed with ExitCode: 1, Reason: Error: Path does not exist: s3a://fleet-data/events/dt=2026-12-05",
                ),
            ),
            (1, "COMPLETED", None),
        ] {
            let run_created =
                timestamp(self.now - ChronoDuration::days(day) - ChronoDuration::hours(2));
            let name = format!("daily-aggregates-{}", 1_765_000_000 + 86_400 * (3 - day));
            let app = application(
                &name,
                "com.fleet.metrics.DailyAggregates",
                "s3a://fleet-jobs/metrics/daily-aggregates-2.0.3.jar",
                2,
                &run_created,
                json!({"team": "data", "sparkoperator.k8s.io/scheduled-app-name": "daily-aggregates"}),
            );
            self.finished_spark_app(app, state, error, day);
        }
    }
}
