//! Object actions: annotate any object, scale a workload through its scale subresource,
//! restart a Deployment's rollout, delete a pod, restart a training gang as a whole.

use chrono::{DateTime, SecondsFormat, Utc};
use kube::core::params::DeleteParams;
use serde_json::{Value, json};

use super::api::{Call, FieldEdit, ObjectPath, PatchBody, pointer_token};
use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::FieldChange;

/// The kinds actions address by name (serialized in lower case, as `node`, `deployment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Node,
    Namespace,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    PodDisruptionBudget,
    /// KServe `serving.kserve.io/v1beta1`.
    InferenceService,
    /// Kubeflow training operator `kubeflow.org/v1`.
    PyTorchJob,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Node => "Node",
            Self::Namespace => "Namespace",
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::Job => "Job",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::InferenceService => "InferenceService",
            Self::PyTorchJob => "PyTorchJob",
        }
    }

    /// (API prefix, plural, namespaced)
    fn api(self) -> (&'static str, &'static str, bool) {
        match self {
            Self::Node => ("/api/v1", "nodes", false),
            Self::Namespace => ("/api/v1", "namespaces", false),
            Self::Pod => ("/api/v1", "pods", true),
            Self::Deployment => ("/apis/apps/v1", "deployments", true),
            Self::StatefulSet => ("/apis/apps/v1", "statefulsets", true),
            Self::DaemonSet => ("/apis/apps/v1", "daemonsets", true),
            Self::ReplicaSet => ("/apis/apps/v1", "replicasets", true),
            Self::Job => ("/apis/batch/v1", "jobs", true),
            Self::PodDisruptionBudget => ("/apis/policy/v1", "poddisruptionbudgets", true),
            Self::InferenceService => {
                ("/apis/serving.kserve.io/v1beta1", "inferenceservices", true)
            }
            Self::PyTorchJob => ("/apis/kubeflow.org/v1", "pytorchjobs", true),
        }
    }

    /// `deployment/ns/name` or `node/name`, as reports name objects.
    pub fn object(self, namespace: Option<&str>, name: &str) -> String {
        let kind = self.name().to_ascii_lowercase();
        match namespace {
            Some(ns) if self.api().2 => format!("{kind}/{ns}/{name}"),
            _ => format!("{kind}/{name}"),
        }
    }

    pub(crate) fn path(
        self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<ObjectPath, ActionError> {
        let (prefix, plural, namespaced) = self.api();
        if name.is_empty() {
            return Err(ActionError::InvalidInput {
                what: format!("{} name", self.name()),
                why: "the name is empty".into(),
            });
        }
        match (namespaced, namespace) {
            (true, Some(ns)) if !ns.is_empty() => {
                Ok(ObjectPath::new(prefix, Some(ns), plural, name))
            }
            (true, _) => Err(ActionError::InvalidInput {
                what: format!("{} {name}", self.name()),
                why: format!("a {} lives in a namespace: give one", self.name()),
            }),
            (false, _) => Ok(ObjectPath::new(prefix, None, plural, name)),
        }
    }
}

/// Sets (`Some`) or removes (`None`) one annotation, as `kubectl annotate --overwrite KIND NAME
/// KEY=VALUE` / `KEY-`. Already so: a no-op.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn annotate(
    ctx: &ActionContext,
    kind: ObjectKind,
    namespace: Option<&str>,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<ActionReport, ActionError> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(ActionError::InvalidInput {
            what: format!("annotation key {key:?}"),
            why: "an annotation key is a non-empty qualified name without spaces".into(),
        });
    }
    let path = kind.path(namespace, name)?;
    let object = kind.object(namespace, name);
    let report = ActionReport::new(ctx, "annotate", object.clone());
    let current: Value = ctx.read_existing(&path, &object).await?;
    let before = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .cloned();
    let wanted = value.map(|v| json!(v));
    let shown = match value {
        Some(v) => format!("{key}={v}"),
        None => format!("{key}-"),
    };
    if before == wanted {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!("{object} already annotated {shown}")),
            format!("{object} already annotated {shown}"),
        ));
    }
    // kubectl annotate (pkg/cmd/annotate/annotate.go) sends the JSON merge patch of the
    // object's metadata before and after; null removes the key.
    let body = json!({"metadata": {"annotations": {key: wanted.clone().unwrap_or(Value::Null)}}});
    ctx.edit_field(
        report,
        FieldEdit {
            path: &path,
            call: Call::Patch(PatchBody::Merge(body)),
            field: format!("metadata.annotations.{key}"),
            pointer: format!("/metadata/annotations/{}", pointer_token(key)),
            before,
            step: format!("annotate {object}"),
            refused: format!("could not annotate {object} {shown}"),
            done: format!("{object} annotated {shown}"),
        },
    )
    .await
}

/// The most replicas a scale may ask for: Kubernetes' published limit of pods in one cluster
/// (150,000). More can never run, so such a count is a value gone wrong, not a wish.
pub const MAX_REPLICAS: u32 = 150_000;

/// Sets a Deployment's, StatefulSet's or ReplicaSet's replicas through its scale
/// subresource, as `kubectl scale` (pkg/scale/scale.go, ScaleSimple without preconditions:
/// a merge patch of spec.replicas on `/scale`). Already at that count: a no-op.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn scale(
    ctx: &ActionContext,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> Result<ActionReport, ActionError> {
    if !matches!(
        kind,
        ObjectKind::Deployment | ObjectKind::StatefulSet | ObjectKind::ReplicaSet
    ) {
        return Err(ActionError::InvalidInput {
            what: format!("scale target {}", kind.name()),
            why: "only a Deployment, StatefulSet or ReplicaSet has a scale subresource".into(),
        });
    }
    if replicas > MAX_REPLICAS {
        return Err(ActionError::InvalidInput {
            what: "scale replicas".into(),
            why: format!(
                "{replicas} is more than a cluster can run (Kubernetes supports at most {MAX_REPLICAS} pods in one cluster)"
            ),
        });
    }
    let path = kind.path(Some(namespace), name)?;
    let object = kind.object(Some(namespace), name);
    let report = ActionReport::new(ctx, "scale", object.clone());
    let current: Value = ctx
        .read_as(&path, Call::GetSub("scale"))
        .await?
        .ok_or_else(|| ActionError::NotFound {
            cluster: ctx.cluster.clone(),
            object: object.clone(),
        })?;
    let before = current.pointer("/spec/replicas").cloned();
    if before.as_ref().and_then(Value::as_u64) == Some(u64::from(replicas)) {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!("{object} already has {replicas} replicas")),
            format!("{object} already at {replicas} replicas"),
        ));
    }
    let body = json!({"spec": {"replicas": replicas}});
    let from = before
        .as_ref()
        .map_or_else(|| "?".to_string(), |b| b.to_string());
    ctx.edit_field(
        report,
        FieldEdit {
            path: &path,
            call: Call::PatchSub("scale", PatchBody::Merge(body)),
            field: "spec.replicas".into(),
            pointer: "/spec/replicas".into(),
            before,
            step: format!("scale {object}"),
            refused: format!("could not scale {object} to {replicas}"),
            done: format!("{object} scaled from {from} to {replicas} replicas"),
        },
    )
    .await
}

/// Deletes a pod as `kubectl delete pod NAME -n NS`: one DELETE with the pod's own grace
/// period and kubectl's default cascade (background). A pod that is already gone (404) is a
/// no-op, not a failure: whoever asked wanted it gone. Its controller, if any, replaces it.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn delete_pod(
    ctx: &ActionContext,
    namespace: &str,
    name: &str,
) -> Result<ActionReport, ActionError> {
    let path = ObjectKind::Pod.path(Some(namespace), name)?;
    let object = ObjectKind::Pod.object(Some(namespace), name);
    let mut report = ActionReport::new(ctx, "delete", object.clone());
    let answer = ctx
        .mutate(
            &path,
            Call::Delete(DeleteParams::background()),
            &mut report.outcomes,
        )
        .await?;
    if answer.status == 404 {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!("{object} is already gone")),
            format!("{object} was already gone"),
        ));
    }
    if !answer.is_success() {
        return Ok(report.finish(
            ActionOutcome::Failed(format!("delete {object}: {}", answer.refusal())),
            format!("could not delete {object}"),
        ));
    }
    let deleted = answer.json();
    let grace = deleted
        .as_ref()
        .and_then(|v| v.pointer("/metadata/deletionGracePeriodSeconds"))
        .and_then(Value::as_u64);
    report.changes.push(FieldChange {
        object: object.clone(),
        field: "metadata.deletionTimestamp".into(),
        before: None,
        after: deleted.and_then(|v| v.pointer("/metadata/deletionTimestamp").cloned()),
    });
    report.evicted.push(format!("{namespace}/{name}"));
    let summary = match grace {
        Some(g) => format!("{object} deleted (terminating, grace period {g}s)"),
        None => format!("{object} deleted"),
    };
    Ok(report.finish(ActionOutcome::Done, summary))
}

/// The label the Kubeflow training operator puts on every pod of a job: the gang.
pub const GANG_LABEL: &str = "training.kubeflow.org/job-name";

/// Restarts training job `job` in `namespace` as a whole: every rank's pod
/// (`training.kubeflow.org/job-name=JOB`) is deleted, and the training operator recreates the
/// gang, which resumes from its last checkpoint. Never one rank alone: a lone new rank cannot
/// join the others' collective, so the whole gang would hang. Refused, before anything is
/// deleted, while a rank carries [`crate::model::CHECKPOINTING_ANNOTATION`] `"true"` (the job
/// says it is writing a checkpoint: a restart now loses it), and when no rank is found.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn restart_gang(
    ctx: &ActionContext,
    namespace: &str,
    job: &str,
) -> Result<ActionReport, ActionError> {
    let object = format!("trainingjob/{namespace}/{job}");
    let mut report = ActionReport::new(ctx, "restart_gang", object.clone());
    let collection = super::api::collection_path("/api/v1", Some(namespace), "pods");
    let pods: Vec<Value> = ctx
        .list(&collection, Some(&format!("{GANG_LABEL}={job}")), None)
        .await?;
    let ranks: Vec<&Value> = pods
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    if ranks.is_empty() {
        return Err(ActionError::NotFound {
            cluster: ctx.cluster.clone(),
            object: format!("pod labelled {GANG_LABEL}={job} in namespace {namespace}"),
        });
    }
    let name_of = |p: &Value| {
        p.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(p) = ranks.iter().find(|p| {
        p.pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::model::CHECKPOINTING_ANNOTATION))
            .and_then(Value::as_str)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }) {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "training job {namespace}/{job} is writing a checkpoint (pod {} carries {}=true); restart it once the annotation is gone",
                name_of(p),
                crate::model::CHECKPOINTING_ANNOTATION
            )),
            format!("{object} is checkpointing; not restarted"),
        ));
    }
    let mut failed = Vec::new();
    for p in &ranks {
        let name = name_of(p);
        let path = ObjectKind::Pod.path(Some(namespace), &name)?;
        let answer = ctx
            .mutate(
                &path,
                Call::Delete(DeleteParams::background()),
                &mut report.outcomes,
            )
            .await?;
        if answer.is_success() || answer.status == 404 {
            report.evicted.push(format!("{namespace}/{name}"));
        } else {
            failed.push(format!("{name}: {}", answer.refusal()));
        }
    }
    report.changes.push(FieldChange {
        object: object.clone(),
        field: "ranks deleted".into(),
        before: Some(json!(ranks.len())),
        after: Some(json!(report.evicted.clone())),
    });
    if !failed.is_empty() {
        return Ok(report.finish(
            ActionOutcome::Failed(format!(
                "could not delete every rank of {namespace}/{job}: {}",
                failed.join("; ")
            )),
            format!(
                "{object} partly restarted: {} of {} ranks deleted",
                ranks.len() - failed.len(),
                ranks.len()
            ),
        ));
    }
    let summary = format!(
        "{object} restarted: its {} ranks deleted together; the training operator recreates the gang",
        ranks.len()
    );
    Ok(report.finish(ActionOutcome::Done, summary))
}

/// The pod template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Restarts a Deployment's pods as `kubectl rollout restart deployment/NAME`
/// (pkg/polymorphichelpers/objectrestarter.go): a strategic merge patch setting the pod
/// template's `kubectl.kubernetes.io/restartedAt` annotation to `at` (RFC 3339), so the
/// controller rolls out a new ReplicaSet under the Deployment's strategy. A paused Deployment
/// is refused before anything is sent, with kubectl's message.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn restart_rollout(
    ctx: &ActionContext,
    namespace: &str,
    name: &str,
    at: DateTime<Utc>,
) -> Result<ActionReport, ActionError> {
    let path = ObjectKind::Deployment.path(Some(namespace), name)?;
    let object = ObjectKind::Deployment.object(Some(namespace), name);
    let report = ActionReport::new(ctx, "restart", object.clone());
    let dep: Value = ctx.read_existing(&path, &object).await?;
    if dep.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "can't restart paused deployment (run 'kubectl rollout resume deployment/{name}' first)"
            )),
            format!("{object} is paused; not restarted"),
        ));
    }
    let pointer = format!(
        "/spec/template/metadata/annotations/{}",
        pointer_token(RESTARTED_AT)
    );
    let before = dep.pointer(&pointer).cloned();
    let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
    ctx.edit_field(
        report,
        FieldEdit {
            path: &path,
            call: Call::Patch(PatchBody::Strategic(body)),
            field: format!("spec.template.metadata.annotations.{RESTARTED_AT}"),
            pointer,
            before,
            step: format!("restart {object}"),
            refused: format!("could not restart {object}"),
            done: format!("{object} restarted: new pods roll out (restartedAt {stamp})"),
        },
    )
    .await
}
