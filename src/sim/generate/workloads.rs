//! The simulated fleet's workloads: pod templates, Pods, ReplicaSets, Deployments with rollout
//! history, DaemonSets, StatefulSets, budgets, and the special ones (inference services, the gang
//! job, the crash loop).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::sim::cluster::template_hash;
use crate::sim::resources::Kind;
use crate::sim::store::timestamp;

use super::{Gen, hex, pod_suffix};

/// A workload's pod template and how it is owned.
#[derive(Clone)]
pub(super) struct Workload {
    pub(super) ns: &'static str,
    pub(super) name: String,
    pub(super) team: &'static str,
    pub(super) image: String,
    pub(super) gpus: u32,
    pub(super) cpu_m: u32,
    pub(super) mem_mi: u32,
    pub(super) port: u32,
    pub(super) emptydir: bool,
    pub(super) extra_labels: Vec<(&'static str, String)>,
}

impl Workload {
    pub(super) fn new(
        ns: &'static str,
        name: impl Into<String>,
        team: &'static str,
        image: impl Into<String>,
        gpus: u32,
    ) -> Self {
        Self {
            ns,
            name: name.into(),
            team,
            image: image.into(),
            gpus,
            cpu_m: if gpus > 0 { 4000 * gpus.max(1) } else { 500 },
            mem_mi: if gpus > 0 { 32768 * gpus.max(1) } else { 1024 },
            port: 8080,
            emptydir: false,
            extra_labels: Vec::new(),
        }
    }

    pub(super) fn labels(&self) -> Value {
        let mut l =
            json!({"app": self.name, "app.kubernetes.io/name": self.name, "team": self.team});
        for (k, v) in &self.extra_labels {
            l[*k] = json!(v);
        }
        l
    }

    pub(super) fn template(&self) -> Value {
        let mut resources = json!({
            "requests": {"cpu": cpu_quantity(self.cpu_m), "memory": memory_quantity(self.mem_mi)},
            "limits": {"memory": memory_quantity(self.mem_mi)},
        });
        let mut tolerations = vec![
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}),
        ];
        let mut node_selector = json!({"kubernetes.io/os": "linux"});
        if self.gpus > 0 {
            resources["requests"]["nvidia.com/gpu"] = json!(self.gpus.to_string());
            resources["limits"]["nvidia.com/gpu"] = json!(self.gpus.to_string());
            tolerations.push(
                json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
            );
            node_selector["nvidia.com/gpu.present"] = json!("true");
        }
        let mut volumes = vec![
            json!({"name": "config", "configMap": {"name": format!("{}-config", self.name), "defaultMode": 420}}),
        ];
        let mut mounts = vec![json!({"name": "config", "mountPath": "/etc/app", "readOnly": true})];
        if self.emptydir {
            volumes.push(
                json!({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}),
            );
            mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
        }
        json!({
            "metadata": {"labels": self.labels(), "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": self.port.to_string(),
            }},
            "spec": {
                "containers": [{
                    "name": self.name.split('-').next().unwrap_or("main"),
                    "image": self.image,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": self.port, "protocol": "TCP"}],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "resources": resources,
                    "readinessProbe": {"httpGet": {"path": "/health", "port": self.port, "scheme": "HTTP"},
                        "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "volumeMounts": mounts,
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "volumes": volumes,
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "schedulerName": "default-scheduler",
                "securityContext": {},
            },
        })
    }
}

/// Quantities in the canonical form the API server writes back (`4`, not `4000m`), so
/// templates compare equal after a client's round trip.
fn cpu_quantity(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn memory_quantity(mib: u32) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// A managedFields entry for an `apps/v1` object.
fn apps_v1(mut entry: Value) -> Value {
    entry["apiVersion"] = json!("apps/v1");
    entry
}

pub(super) fn managed_fields(
    manager: &str,
    op: &str,
    time: &str,
    subresource: Option<&str>,
    fields: Value,
) -> Value {
    let mut m = json!({"manager": manager, "operation": op, "apiVersion": "v1", "time": time,
        "fieldsType": "FieldsV1", "fieldsV1": null});
    m["fieldsV1"] = fields;
    if let Some(s) = subresource {
        m["subresource"] = json!(s);
    }
    m
}

/// Rough mirror of what `managedFields` holds for a pod's spec: every key path of the template.
fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            out.insert(".".into(), json!({}));
            for (k, x) in m {
                out.insert(format!("f:{k}"), field_set(x));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = serde_json::Map::new();
            for (i, x) in items.iter().enumerate() {
                let key = match x.get("name").and_then(Value::as_str) {
                    Some(n) => format!("k:{{\"name\":\"{n}\"}}"),
                    None => format!("i:{i}"),
                };
                out.insert(key, field_set(x));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

impl Gen<'_> {
    /// Creates `v`; on a refusal (a generator bug) logs it and answers `Null`, which owners
    /// of later objects then lack. Not cloned first: at 150,000 pods the copy was seconds.
    pub(super) fn create(&mut self, kind: Kind, v: Value) -> Value {
        match self.st.store.create(kind, v, false) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(cluster = self.st.name(), error = %e.message, "generator could not create an object");
                Value::Null
            }
        }
    }

    /// A running (or `phase`) pod of `owner` from `template` on node `node`.
    pub(super) fn pod(
        &mut self,
        owner: &Value,
        template: &Value,
        node: &str,
        phase: &str,
        started: DateTime<Utc>,
    ) -> Value {
        let base = owner["metadata"]["name"]
            .as_str()
            .unwrap_or("pod")
            .to_string();
        let ns = owner["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = loop {
            let candidate = format!("{base}-{}", pod_suffix(&mut self.rng));
            if self.st.store.get(Kind::Pod, &ns, &candidate).is_none() {
                break candidate;
            }
        };
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(node);
        spec["enableServiceLinks"] = json!(true);
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
        spec["priority"] = json!(0);
        let started_s = timestamp(started);
        let ready_s = timestamp(started + ChronoDuration::seconds(self.rng.gen_range(5..90)));
        let running = phase == "Running";
        let cs: Vec<Value> = spec["containers"].as_array().cloned().unwrap_or_default().iter().map(|c| {
            json!({
                "name": c["name"], "image": c["image"],
                "imageID": format!("{}@sha256:{}", c["image"].as_str().unwrap_or("").split(':').next().unwrap_or(""), hex(&mut self.rng, 64)),
                "containerID": format!("containerd://{}", hex(&mut self.rng, 64)),
                "ready": running, "started": running, "restartCount": 0,
                "state": if running { json!({"running": {"startedAt": ready_s}}) } else if phase == "Succeeded" { json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_s, "finishedAt": ready_s}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) },
                "lastState": {},
            })
        }).collect();
        let ok = if running { "True" } else { "False" };
        let ip = format!(
            "10.{}.{}.{}",
            100 + self.rng.gen_range(0..100),
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        );
        let host_ip = format!(
            "10.{}.{}.{}",
            20 + self.rng.gen_range(0..200),
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        );
        let mut controller_fields = managed_fields(
            "kube-controller-manager",
            "Update",
            &started_s,
            None,
            json!({"f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}}, "f:spec": null}),
        );
        controller_fields["fieldsV1"]["f:spec"] = field_set(&template["spec"]);
        let kubelet_fields = managed_fields(
            "kubelet",
            "Update",
            &ready_s,
            Some("status"),
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"PodReadyToStartContainers\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}}, "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}),
        );
        // `json!` copies an interpolated Value through serde; the big parts are moved in after.
        let mut pod = json!({
            "metadata": {
                "name": name, "generateName": format!("{base}-"), "namespace": owner["metadata"]["namespace"],
                "labels": null, "annotations": null,
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": base,
                    "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
                "creationTimestamp": started_s,
                "managedFields": null,
            },
            "spec": null,
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_s},
                    {"type": "Ready", "status": ok, "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "ContainersReady", "status": ok, "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_s},
                ],
                "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": started_s, "containerStatuses": null,
                "qosClass": "Burstable",
            },
        });
        pod["metadata"]["labels"] = template["metadata"]["labels"].clone();
        pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
        pod["metadata"]["managedFields"] = Value::Array(vec![controller_fields, kubelet_fields]);
        pod["spec"] = spec;
        pod["status"]["containerStatuses"] = Value::Array(cs);
        pod
    }

    pub(super) fn replicaset_for(
        &mut self,
        dep: &Value,
        template: &Value,
        revision: u64,
        replicas: u32,
        created: DateTime<Utc>,
        cause: &str,
    ) -> Value {
        let hash = template_hash(template);
        let name = dep["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut t = template.clone();
        t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut sel = dep["spec"]["selector"].clone();
        sel["matchLabels"]["pod-template-hash"] = json!(hash);
        let created_s = timestamp(created);
        let rs = json!({
            "metadata": {
                "name": format!("{name}-{hash}"), "namespace": dep["metadata"]["namespace"],
                "labels": t["metadata"]["labels"], "creationTimestamp": created_s, "generation": 1 + revision,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": dep["spec"]["replicas"].as_u64().unwrap_or(1).to_string(),
                    "deployment.kubernetes.io/max-replicas": (dep["spec"]["replicas"].as_u64().unwrap_or(1) + 1).to_string(),
                    "deployment.kubernetes.io/revision": revision.to_string(),
                    "kubernetes.io/change-cause": cause,
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": dep["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [apps_v1(managed_fields("kube-controller-manager", "Update", &created_s, None, json!({"f:spec": field_set(&t)})))],
            },
            "spec": {"replicas": replicas, "selector": sel, "template": t},
            "status": if replicas > 0 {
                json!({"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1 + revision})
            } else {
                json!({"replicas": 0, "observedGeneration": 1 + revision})
            },
        });
        self.create(Kind::ReplicaSet, rs)
    }

    /// A Deployment with `history` older revisions (scaled to zero) and pods on `nodes`.
    pub(super) fn deployment(
        &mut self,
        w: &Workload,
        nodes: &[usize],
        history: &[(&str, &str)],
        cause: &str,
    ) -> Value {
        let replicas = nodes.len() as u32;
        let created = self.ago(24 * 10, 24 * 60);
        let template = w.template();
        let revision = history.len() as u64 + 1;
        let dep = json!({
            "metadata": {
                "name": w.name, "namespace": w.ns, "labels": w.labels(), "creationTimestamp": timestamp(created),
                "generation": revision,
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string(), "kubernetes.io/change-cause": cause},
                "managedFields": [apps_v1(managed_fields("kubectl-client-side-apply", "Update", &timestamp(created), None, json!({"f:spec": field_set(&template)})))],
            },
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": {"app": w.name}}, "template": template,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": revision, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": timestamp(created), "lastTransitionTime": timestamp(created)},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet has successfully progressed."), "lastUpdateTime": timestamp(created), "lastTransitionTime": timestamp(created)},
                ],
            },
        });
        let dep = self.create(Kind::Deployment, dep);
        for (i, (image, old_cause)) in history.iter().enumerate() {
            let mut t = template.clone();
            t["spec"]["containers"][0]["image"] = json!(image);
            let when = created + ChronoDuration::hours(i as i64 * 24);
            self.replicaset_for(&dep, &t, i as u64 + 1, 0, when, old_cause);
        }
        let rs_created = created + ChronoDuration::hours(history.len() as i64 * 24);
        let rs = self.replicaset_for(&dep, &template, revision, replicas, rs_created, cause);
        let pod_template = rs["spec"]["template"].clone();
        for &ni in nodes {
            let started = self.ago(1, 24 * 9).max(self.nodes[ni].created);
            let node = self.nodes[ni].name.clone();
            let pod = self.pod(&rs, &pod_template, &node, "Running", started);
            self.create(Kind::Pod, pod);
        }
        dep
    }

    pub(super) fn daemonset(
        &mut self,
        ns: &'static str,
        name: &str,
        image: &str,
        gpu_only: bool,
        slots: usize,
    ) {
        let nodes: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !gpu_only || self.nodes[i].gpu.is_some())
            .filter(|&i| self.nodes[i].free_slots as usize > 0 && slots > 0)
            .collect();
        let mut w = Workload::new(ns, name, "platform", image, 0);
        w.cpu_m = 100;
        w.mem_mi = 128;
        let mut template = w.template();
        template["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        if gpu_only {
            template["spec"]["nodeSelector"] = json!({"nvidia.com/gpu.present": "true"});
        } else if let Some(m) = template["spec"].as_object_mut() {
            m.remove("nodeSelector");
        }
        let n = nodes.len();
        let ds = json!({
            "metadata": {"name": name, "namespace": ns, "labels": w.labels(), "generation": 1,
                "creationTimestamp": timestamp(self.ago(24 * 90, 24 * 91)),
                "annotations": {"deprecated.daemonset.template.generation": "1"}},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": template,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "revisionHistoryLimit": 10},
            "status": {"currentNumberScheduled": n, "numberMisscheduled": 0, "desiredNumberScheduled": n,
                "numberReady": n, "observedGeneration": 1, "updatedNumberScheduled": n, "numberAvailable": n},
        });
        let ds = self.create(Kind::DaemonSet, ds);
        let template = ds["spec"]["template"].clone();
        for i in nodes {
            self.nodes[i].free_slots -= 1;
            let started = self.nodes[i].created + ChronoDuration::seconds(30);
            let node = self.nodes[i].name.clone();
            let pod = self.pod(&ds, &template, &node, "Running", started);
            self.create(Kind::Pod, pod);
        }
    }

    /// A StatefulSet with its pods `name-0` … spread over nodes with a free slot.
    pub(super) fn statefulset(&mut self, w: &Workload, replicas: usize) {
        let created = self.ago(24 * 30, 24 * 60);
        let sts = json!({
            "metadata": {"name": w.name, "namespace": w.ns, "labels": w.labels(), "generation": 1,
                "creationTimestamp": timestamp(created)},
            "spec": {"replicas": replicas, "serviceName": w.name, "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": {"app": w.name}}, "template": w.template(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10},
            "status": {},
        });
        let sts = self.create(Kind::StatefulSet, sts);
        let template = sts["spec"]["template"].clone();
        let revision = format!("{}-1", w.name);
        // One per node, on the last nodes (the first ones are where scenarios and tests look).
        let nodes = self.nodes.len();
        for ordinal in 0..replicas.min(nodes) {
            let i = nodes - 1 - ordinal;
            let node = self.nodes[i].name.clone();
            let started = created + ChronoDuration::seconds(60 * ordinal as i64 + 30);
            let mut pod = self.pod(&sts, &template, &node, "Running", started);
            let name = format!("{}-{ordinal}", w.name);
            pod["metadata"]["name"] = json!(name);
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("generateName");
            }
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(name);
            pod["metadata"]["labels"]["controller-revision-hash"] = json!(revision);
            pod["spec"]["hostname"] = json!(name);
            pod["spec"]["subdomain"] = json!(w.name);
            self.create(Kind::Pod, pod);
        }
    }

    /// A PodDisruptionBudget over the pods labelled `app=<app>`; `rule` is the spec's
    /// minAvailable or maxUnavailable.
    pub(super) fn budget(&mut self, ns: &str, app: &str, rule: (&str, Value)) {
        let created = self.ago(24 * 10, 24 * 40);
        let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
        spec[rule.0] = rule.1;
        self.create(Kind::PodDisruptionBudget, json!({
            "metadata": {"name": app, "namespace": ns, "generation": 1, "creationTimestamp": timestamp(created)},
            "spec": spec,
            "status": {},
        }));
    }
}

pub(super) fn inference_service(g: &mut Gen, name: &str, format: &str, storage: &str) {
    let created = g.ago(24 * 5, 24 * 30);
    let predictor = json!({"model": {"modelFormat": {"name": format}, "storageUri": storage,
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4", "memory": "32Gi"}}},
        "minReplicas": 2});
    let mut spec_sans_canary = predictor.clone();
    if let Some(m) = spec_sans_canary.as_object_mut() {
        m.remove("canaryTrafficPercent");
    }
    let url = format!("http://{name}.serving.example.com");
    let t = timestamp(created);
    g.create(Kind::InferenceService, json!({
        "metadata": {"name": name, "namespace": "serving", "generation": 2, "creationTimestamp": t,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment", "sim.fleetdeck.dev/rolled-spec": spec_sans_canary.to_string()},
            "finalizers": ["inferenceservice.finalizers"]},
        "spec": {"predictor": predictor},
        "status": {
            "address": {"url": format!("http://{name}.serving.svc.cluster.local")},
            "url": url,
            "components": {"predictor": {
                "latestCreatedRevision": format!("{name}-predictor-00002"),
                "latestReadyRevision": format!("{name}-predictor-00002"),
                "latestRolledoutRevision": format!("{name}-predictor-00002"),
                "previousRolledoutRevision": format!("{name}-predictor-00001"),
                "traffic": [{"revisionName": format!("{name}-predictor-00002"), "percent": 100, "latestRevision": true}],
                "url": format!("http://{name}-predictor.serving.example.com"),
            }},
            "conditions": [
                {"type": "IngressReady", "status": "True", "lastTransitionTime": t},
                {"type": "PredictorReady", "status": "True", "lastTransitionTime": t},
                {"type": "Ready", "status": "True", "lastTransitionTime": t},
            ],
            "modelStatus": {"states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}, "transitionStatus": "UpToDate"},
            "observedGeneration": 2,
        },
    }));
}

pub(super) fn gang_job(g: &mut Gen, nodes: &[usize], gpus: u32) {
    let mut w = Workload::new(
        "training",
        "llm-pretrain",
        "research",
        "nvcr.io/nvidia/pytorch:24.08-py3",
        gpus,
    );
    w.emptydir = true;
    w.port = 23456;
    w.extra_labels
        .push(("training.kubeflow.org/job-name", "llm-pretrain".into()));
    w.extra_labels.push((
        "training.kubeflow.org/operator-name",
        "pytorchjob-controller".into(),
    ));
    let created = g.ago(30, 60);
    let mut template = w.template();
    template["spec"]["restartPolicy"] = json!("OnFailure");
    let workers = nodes.len() as u32 - 1;
    let job = g.create(Kind::PyTorchJob, json!({
        "metadata": {"name": "llm-pretrain", "namespace": "training", "labels": {"team": "research"}, "generation": 1, "creationTimestamp": timestamp(created)},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None", "schedulingPolicy": {"minAvailable": nodes.len()}},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template},
                "Worker": {"replicas": workers, "restartPolicy": "OnFailure", "template": template},
            },
        },
        "status": {"conditions": [
            {"type": "Created", "status": "True", "reason": "PyTorchJobCreated", "lastTransitionTime": timestamp(created)},
            {"type": "Running", "status": "True", "reason": "PyTorchJobRunning", "lastTransitionTime": timestamp(created + ChronoDuration::minutes(4))},
        ], "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": workers}}, "startTime": timestamp(created)},
    }));
    for (rank, &ni) in nodes.iter().enumerate() {
        let (rtype, idx) = if rank == 0 {
            ("master", 0)
        } else {
            ("worker", rank - 1)
        };
        let mut t = template.clone();
        t["metadata"]["labels"]["training.kubeflow.org/replica-type"] = json!(rtype);
        t["metadata"]["labels"]["training.kubeflow.org/replica-index"] = json!(idx.to_string());
        t["metadata"]["labels"]["training.kubeflow.org/job-role"] =
            json!(if rank == 0 { "master" } else { "" });
        g.take(ni, gpus);
        let node = g.nodes[ni].name.clone();
        let mut pod = g.pod(
            &job,
            &t,
            &node,
            "Running",
            created + ChronoDuration::minutes(3),
        );
        pod["metadata"]["name"] = json!(format!("llm-pretrain-{rtype}-{idx}"));
        pod["metadata"]["labels"]["training.kubeflow.org/replica-index"] = json!(idx.to_string());
        g.create(Kind::Pod, pod);
    }
}

pub(super) fn crash_loop(g: &mut Gen, dep: &Value) {
    let ns = dep["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let uid = dep["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let rs_uid =
        g.st.store
            .iter_ns(Kind::ReplicaSet, Some(&ns))
            .find(|(_, s)| s.owner.as_deref() == Some(uid.as_str()))
            .map(|(_, s)| s.uid.clone());
    let Some(rs_uid) = rs_uid else { return };
    let pods: Vec<(String, String)> =
        g.st.store
            .iter_ns(Kind::Pod, Some(&ns))
            .filter(|(_, s)| s.owner.as_deref() == Some(&*rs_uid))
            .map(|(k, _)| k.clone())
            .collect();
    let now = g.now;
    for (pns, pname) in pods {
        let Some(mut pod) = g.st.store.get_value(Kind::Pod, &pns, &pname) else {
            continue;
        };
        let cs = &mut pod["status"]["containerStatuses"][0];
        cs["ready"] = json!(false);
        cs["started"] = json!(false);
        cs["restartCount"] = json!(7);
        cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=tokenizer pod=tokenizer-worker"}});
        cs["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": timestamp(now - ChronoDuration::minutes(6)), "finishedAt": timestamp(now - ChronoDuration::minutes(5))}});
        if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
            for c in conds
                .iter_mut()
                .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
            {
                c["status"] = json!("False");
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!("containers with unready status: [tokenizer]");
            }
        }
        let pod = g.st.store.replace(Kind::Pod, pod);
        g.st.record_event(
            &pod,
            "Warning",
            "BackOff",
            "Back-off restarting failed container tokenizer in pod tokenizer-worker",
            "kubelet",
        );
    }
}

pub(super) fn api_gateway_budget(g: &mut Gen) {
    if g.st
        .store
        .get(Kind::Deployment, "platform", "api-gateway")
        .is_some()
    {
        g.budget("platform", "api-gateway", ("minAvailable", json!("50%")));
    }
}

/// The vector store's ingestion: a long-running Job (`batch/docs-embed-ingest`) that embeds
/// documents and upserts them into the simulated Pinecone-compatible index. Its pod stays
/// Running (the Job keeps reporting progress) whether or not its writes land, which is what
/// `vector-index-stale` needs: an index going flat while its ingestion looks fine.
pub(super) fn ingestion_job(g: &mut Gen) {
    let Some(node) = g.nodes.iter().rev().nth(1).map(|n| n.name.clone()) else {
        return;
    };
    let mut w = Workload::new(
        "batch",
        "docs-embed-ingest",
        "search",
        "ghcr.io/fleet/docs-ingest:1.4.2",
        0,
    );
    w.extra_labels
        .push(("job-name", "docs-embed-ingest".into()));
    let mut template = w.template();
    template["spec"]["restartPolicy"] = json!("OnFailure");
    let created = g.ago(2, 6);
    let job = g.create(
        Kind::Job,
        json!({
            "metadata": {"name": "docs-embed-ingest", "namespace": "batch", "labels": w.labels(),
                "creationTimestamp": timestamp(created), "generation": 1},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "template": template},
            "status": {"active": 1, "ready": 1, "startTime": timestamp(created)},
        }),
    );
    let template = job["spec"]["template"].clone();
    let pod = g.pod(
        &job,
        &template,
        &node,
        "Running",
        created + ChronoDuration::seconds(20),
    );
    g.create(Kind::Pod, pod);
}
