//! The Kubeflow Spark operator (`sparkoperator.k8s.io/v1beta2` `SparkApplication`), for what
//! the cockpit reads: a run's driver and executor pods, the application's state, attempts and
//! executor states, a failed run (its driver pod Failed, its executors gone) and a retry (a new
//! attempt: the old pods replaced). Pod names and labels are the operator's and Spark's own
//! (`<app>-driver`, `<app>-<id>-exec-<n>`, `spark-role`, `spark-app-selector`,
//! `sparkoperator.k8s.io/app-name`). Imports only the sim's own modules; nothing from the client
//! side.

use chrono::Utc;
use serde_json::{Value, json};

use super::{ClusterState, obj_str};
use crate::sim::resources::Kind;
use crate::sim::store::timestamp;

/// The annotation that marks a driver (and its application) failed by the `spark-failed`
/// scenario, so the logs and the undo find it.
pub const SPARK_FAULT: &str = "spark-failed";

/// The Spark application id a run gets (`spark-<32 hex>`), derived from the app's uid and
/// attempt so it is stable per seed.
pub fn spark_app_id(app: &Value, attempt: u64) -> String {
    let uid = obj_str(app, "/metadata/uid");
    let h = uid
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ attempt, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!(
        "spark-{h:016x}{:016x}",
        h.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
    )
}

/// The executor pods' name prefix of a run, as Spark generates it (`<app>-<16 hex>`).
fn executor_prefix(app: &Value, app_id: &str) -> String {
    let name = obj_str(app, "/metadata/name");
    format!("{name}-{}", &app_id[6..22])
}

/// The pod template of a run's driver (`exec` None) or executor `n`.
pub fn spark_pod_template(app: &Value, app_id: &str, exec: Option<u64>) -> Value {
    let name = obj_str(app, "/metadata/name");
    let image = app["spec"]["image"]
        .as_str()
        .unwrap_or("apache/spark:3.5.3");
    let (role, container, cores, memory) = match exec {
        None => (
            "driver",
            "spark-kubernetes-driver",
            app["spec"]["driver"]["cores"].as_u64().unwrap_or(1),
            app["spec"]["driver"]["memory"].as_str().unwrap_or("2g"),
        ),
        Some(_) => (
            "executor",
            "spark-kubernetes-executor",
            app["spec"]["executor"]["cores"].as_u64().unwrap_or(2),
            app["spec"]["executor"]["memory"].as_str().unwrap_or("4g"),
        ),
    };
    let mem_mi = memory
        .trim_end_matches(['g', 'G'])
        .parse::<u64>()
        .unwrap_or(2)
        * 1024
        * 14
        / 10;
    let mut labels = json!({
        "spark-role": role,
        "spark-app-selector": app_id,
        "spark-app-name": name,
        "spark-version": app["spec"]["sparkVersion"].as_str().unwrap_or("3.5.3"),
        "sparkoperator.k8s.io/app-name": name,
        "sparkoperator.k8s.io/launched-by-spark-operator": "true",
        "sparkoperator.k8s.io/submission-id": &app_id[6..],
        "team": app["metadata"]["labels"]["team"].as_str().unwrap_or("data"),
    });
    if let Some(n) = exec {
        labels["spark-exec-id"] = json!(n.to_string());
        labels["spark-exec-resourceprofile-id"] = json!("0");
    }
    let args = match exec {
        None => json!([
            "driver",
            "--properties-file",
            "/opt/spark/conf/spark.properties",
            "--class",
            app["spec"]["mainClass"].as_str().unwrap_or(""),
            app["spec"]["mainApplicationFile"].as_str().unwrap_or("")
        ]),
        Some(_) => json!(["executor"]),
    };
    json!({
        "metadata": {"labels": labels, "annotations": {}},
        "spec": {
            "containers": [{
                "name": container,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "ports": if exec.is_none() {
                    json!([{"name": "driver-rpc-port", "containerPort": 7078, "protocol": "TCP"},
                        {"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"},
                        {"name": "spark-ui", "containerPort": 4040, "protocol": "TCP"}])
                } else {
                    json!([{"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"}])
                },
                "resources": {
                    "requests": {"cpu": cores.to_string(), "memory": format!("{mem_mi}Mi")},
                    "limits": {"memory": format!("{mem_mi}Mi")},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "restartPolicy": "Never",
            "serviceAccountName": app["spec"]["driver"]["serviceAccount"].as_str().unwrap_or("spark-operator-spark"),
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    })
}

/// The driver pod's name, as the operator sets `spark.kubernetes.driver.pod.name`.
pub fn driver_pod_name(app: &str) -> String {
    format!("{app}-driver")
}

/// The executor pod names of a run.
pub fn executor_pod_names(app: &Value, app_id: &str) -> Vec<String> {
    let instances = app["spec"]["executor"]["instances"].as_u64().unwrap_or(2);
    let prefix = executor_prefix(app, app_id);
    (1..=instances)
        .map(|n| format!("{prefix}-exec-{n}"))
        .collect()
}

/// The status of a run the operator has submitted and whose driver runs.
pub fn running_status(app: &Value, app_id: &str, attempt: u64, submitted: &str) -> Value {
    let name = obj_str(app, "/metadata/name");
    let executors: serde_json::Map<String, Value> = executor_pod_names(app, app_id)
        .into_iter()
        .map(|n| (n, json!("RUNNING")))
        .collect();
    json!({
        "sparkApplicationId": app_id,
        "submissionID": &app_id[6..],
        "lastSubmissionAttemptTime": submitted,
        "driverInfo": {
            "podName": driver_pod_name(name),
            "webUIAddress": format!("10.96.{}.{}:4040", attempt % 250, 10 + name.len()),
            "webUIPort": 4040,
            "webUIServiceName": format!("{name}-ui-svc"),
        },
        "applicationState": {"state": "RUNNING"},
        "executorState": executors,
        "submissionAttempts": attempt,
        "executionAttempts": attempt,
    })
}

impl ClusterState {
    /// The operator's view of an application's driver ending in an error: the driver pod
    /// Failed (exit code 1), its executors deleted with it, the application FAILED with the
    /// error it read from the driver's termination.
    pub fn fail_spark_application(&mut self, ns: &str, name: &str, error: &str) -> Option<Value> {
        let mut app = self.store.get_value(Kind::SparkApplication, ns, name)?;
        let now = timestamp(Utc::now());
        let driver = driver_pod_name(name);
        if let Some(mut pod) = self.store.get_value(Kind::Pod, ns, &driver) {
            pod["metadata"]["annotations"]["sim.fleetdeck.dev/fault"] = json!(SPARK_FAULT);
            let started = pod
                .pointer("/status/startTime")
                .cloned()
                .unwrap_or(json!(now));
            pod["status"]["phase"] = json!("Failed");
            if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
                for c in conds.iter_mut() {
                    if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                        c["status"] = json!("False");
                        c["reason"] = json!("PodFailed");
                        c["lastTransitionTime"] = json!(now);
                    }
                }
            }
            if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
                for c in cs.iter_mut() {
                    c["ready"] = json!(false);
                    c["started"] = json!(false);
                    c["state"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": started, "finishedAt": now}});
                }
            }
            self.store.replace(Kind::Pod, pod);
        }
        let executors: Vec<String> = app["status"]["executorState"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for e in &executors {
            self.delete_pod(ns, e, Some(0));
            app["status"]["executorState"][e] = json!("FAILED");
        }
        app["metadata"]["annotations"]["sim.fleetdeck.dev/fault"] = json!(SPARK_FAULT);
        app["status"]["applicationState"] = json!({"state": "FAILED", "errorMessage": error});
        app["status"]["terminationTime"] = json!(now);
        let app = self.store.replace(Kind::SparkApplication, app);
        self.record_event(
            &app,
            "Warning",
            "SparkApplicationFailed",
            &format!("SparkApplication {name} failed: {error}"),
            "spark-operator",
        );
        Some(app)
    }

    /// The operator's retry (`restartPolicy: OnFailure`): the old driver and executors go, a
    /// new attempt submits a new driver (the same name) and executors on `node`, and the
    /// application is RUNNING again with its attempts counted.
    pub fn resubmit_spark_application(
        &mut self,
        ns: &str,
        name: &str,
        node: &str,
    ) -> Option<Value> {
        let mut app = self.store.get_value(Kind::SparkApplication, ns, name)?;
        let attempt = app["status"]["executionAttempts"].as_u64().unwrap_or(0) + 1;
        let old: Vec<String> = app["status"]["executorState"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for e in &old {
            self.delete_pod(ns, e, Some(0));
        }
        self.delete_pod(ns, &driver_pod_name(name), Some(0));
        let app_id = spark_app_id(&app, attempt);
        if let Some(a) = app["metadata"]["annotations"].as_object_mut() {
            a.remove("sim.fleetdeck.dev/fault");
        }
        app["status"] = running_status(&app, &app_id, attempt, &timestamp(Utc::now()));
        let app = self.store.replace(Kind::SparkApplication, app);
        let driver = spark_pod_template(&app, &app_id, None);
        self.create_pod_named(&app, &driver, Some(node), Some(driver_pod_name(name)));
        for (n, exec_name) in executor_pod_names(&app, &app_id).into_iter().enumerate() {
            let t = spark_pod_template(&app, &app_id, Some(n as u64 + 1));
            self.create_pod_named(&app, &t, Some(node), Some(exec_name));
        }
        self.record_event(
            &app,
            "Normal",
            "SparkApplicationSubmitted",
            &format!("SparkApplication {name} was submitted successfully (attempt {attempt})"),
            "spark-operator",
        );
        Some(app)
    }
}
