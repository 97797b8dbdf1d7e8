//! Rollbacks: a Deployment to an earlier revision as `kubectl rollout undo` does it
//! (kubectl/pkg/polymorphichelpers/rollback.go, DeploymentRollbacker), and a KServe
//! InferenceService to its previous rolled-out revision (canary traffic to 0).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value, json};

use super::api::{Call, FieldEdit, ObjectPath, PatchBody, collection_path};
use super::workload::ObjectKind;
use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::FieldChange;

const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the deployment controller adds to each ReplicaSet's template
/// (appsv1.DefaultDeploymentUniqueLabelKey).
const TEMPLATE_HASH: &str = "pod-template-hash";
/// rollback.go `annotationsToSkip`: kept from the Deployment, never copied from the
/// ReplicaSet.
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// Rolls a Deployment back to `to_revision`, or (None) to the previous revision: the
/// ReplicaSet with the second-highest `deployment.kubernetes.io/revision`, as rollback.go's
/// `deploymentRevision`. A paused Deployment is refused with kubectl's message; a template
/// that already matches is a no-op with kubectl's "skipped rollback" message.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn rollback_deployment(
    ctx: &ActionContext,
    namespace: &str,
    name: &str,
    to_revision: Option<u64>,
) -> Result<ActionReport, ActionError> {
    // Revisions start at 1; kubectl's `--to-revision=0` means "the previous one", which is
    // `None` here, so a 0 is a value gone wrong and is refused before the cluster is read.
    if to_revision == Some(0) {
        return Err(ActionError::InvalidInput {
            what: "rollback revision".into(),
            why: "0 is not a revision (they start at 1): give one from the deployment's history, or none for the previous one".into(),
        });
    }
    let path = ObjectKind::Deployment.path(Some(namespace), name)?;
    let object = ObjectKind::Deployment.object(Some(namespace), name);
    let mut report = ActionReport::new(ctx, "rollback", object.clone());
    let dep: Value = ctx.read_existing(&path, &object).await?;
    let history = revisions(ctx, namespace, &dep).await?;
    let (revision, rs) = match to_revision {
        Some(wanted) => history
            .iter()
            .find(|(r, _)| *r == wanted)
            .cloned()
            .ok_or_else(|| ActionError::RevisionNotFound {
                deployment: format!("{namespace}/{name}"),
                revision: wanted,
                available: available(&history),
            })?,
        // The newest is the current one; the previous is the one below it.
        None => match history.iter().rev().nth(1) {
            Some(found) => found.clone(),
            None => {
                return Ok(report.finish(
                    ActionOutcome::Refused(format!(
                        "no rollout history found for deployment \"{name}\" (revisions: {})",
                        available(&history)
                    )),
                    format!("nothing to roll {object} back to"),
                ));
            }
        },
    };
    if dep.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/{name}' and try again"
            )),
            format!("{object} is paused; not rolled back"),
        ));
    }
    let current = dep
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let mut wanted = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = wanted
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH);
    }
    if semantic(&sans_hash(&current)) == semantic(&wanted) {
        let why =
            format!("skipped rollback (current template already matches revision {revision})");
        return Ok(report.finish(ActionOutcome::NoOp(why.clone()), format!("{object}: {why}")));
    }

    let dep_annotations = string_map(dep.pointer("/metadata/annotations"));
    let rs_annotations = string_map(rs.pointer("/metadata/annotations"));
    let mut annotations: BTreeMap<String, String> = dep_annotations
        .iter()
        .filter(|(k, _)| ANNOTATIONS_TO_SKIP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.extend(
        rs_annotations
            .into_iter()
            .filter(|(k, _)| !ANNOTATIONS_TO_SKIP.contains(&k.as_str())),
    );
    // rollback.go getDeploymentPatch: a JSON patch replacing spec.template and
    // metadata.annotations. `replace` needs the member to exist; `add` sets it either way.
    let annotations_op = if dep.pointer("/metadata/annotations").is_some() {
        "replace"
    } else {
        "add"
    };
    let body = json!([
        {"op": "replace", "path": "/spec/template", "value": wanted},
        {"op": annotations_op, "path": "/metadata/annotations", "value": annotations},
    ]);
    let answer = ctx
        .mutate(
            &path,
            Call::Patch(PatchBody::Json(body)),
            &mut report.outcomes,
        )
        .await?;
    if !answer.is_success() {
        return Ok(report.finish(
            ActionOutcome::Failed(format!(
                "failed restoring revision {revision}: {}",
                answer.refusal()
            )),
            format!("could not roll {object} back to revision {revision}"),
        ));
    }
    let before_images = images(&current);
    let after_images = images(&wanted);
    let mut names: Vec<&String> = before_images.keys().chain(after_images.keys()).collect();
    names.sort();
    names.dedup();
    for c in names {
        let (b, a) = (before_images.get(c), after_images.get(c));
        if b != a {
            report.changes.push(FieldChange {
                object: object.clone(),
                field: format!("spec.template.spec.containers[{c}].image"),
                before: b.map(|v| json!(v)),
                after: a.map(|v| json!(v)),
            });
        }
    }
    let mut keys: Vec<&String> = dep_annotations.keys().chain(annotations.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            continue;
        }
        let (b, a) = (dep_annotations.get(k), annotations.get(k));
        if b != a {
            report.changes.push(FieldChange {
                object: object.clone(),
                field: format!("metadata.annotations.{k}"),
                before: b.map(|v| json!(v)),
                after: a.map(|v| json!(v)),
            });
        }
    }
    let shown: Vec<String> = after_images
        .iter()
        .map(|(c, i)| format!("{c}={i}"))
        .collect();
    Ok(report.finish(
        ActionOutcome::Done,
        format!(
            "{object} rolled back to revision {revision} ({})",
            shown.join(", ")
        ),
    ))
}

/// The Deployment's ReplicaSets by revision, oldest first: those its selector matches and
/// whose controller is this Deployment (deploymentutil.GetAllReplicaSets), with a revision.
async fn revisions(
    ctx: &ActionContext,
    namespace: &str,
    dep: &Value,
) -> Result<Vec<(u64, Value)>, ActionError> {
    let uid = dep
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let selector = dep
        .pointer("/spec/selector")
        .cloned()
        .and_then(|s| serde_json::from_value::<LabelSelector>(s).ok())
        .and_then(|s| kube::core::Selector::try_from(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let collection = collection_path("/apis/apps/v1", Some(namespace), "replicasets");
    let sets: Vec<Value> = ctx
        .list(
            &collection,
            Some(selector.as_str()).filter(|s| !s.is_empty()),
            None,
        )
        .await?;
    let mut out: Vec<(u64, Value)> = sets
        .into_iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["controller"] == true && r["uid"] == uid)
                })
        })
        .filter_map(|rs| {
            let rev = rs
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(REVISION))
                .and_then(Value::as_str)
                .and_then(|r| r.parse::<u64>().ok())?;
            Some((rev, rs))
        })
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

fn available(history: &[(u64, Value)]) -> String {
    if history.is_empty() {
        return "none".into();
    }
    history
        .iter()
        .map(|(r, _)| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn sans_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH);
    }
    t
}

/// A template as apimachinery's Semantic.DeepEqual sees it: nulls, empty maps and empty
/// lists are the same as absent.
fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), semantic(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect();
            Value::Object(kept)
        }
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Container name → image of a pod template.
fn images(template: &Value) -> BTreeMap<String, String> {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["image"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sends all of a KServe InferenceService's predictor traffic back to its previous
/// rolled-out revision by setting `spec.predictor.canaryTrafficPercent` to 0 (KServe's
/// documented rollback). KServe records a revision as `previousRolledoutRevision` only after
/// it rolled out (became Ready and took all traffic); without one, there is no ready revision
/// to go back to and the rollback is refused.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn rollback_inference_service(
    ctx: &ActionContext,
    namespace: &str,
    name: &str,
) -> Result<ActionReport, ActionError> {
    let path: ObjectPath = ObjectKind::InferenceService.path(Some(namespace), name)?;
    let object = ObjectKind::InferenceService.object(Some(namespace), name);
    let report = ActionReport::new(ctx, "rollback", object.clone());
    let isvc: Value = ctx.read_existing(&path, &object).await?;
    let predictor = isvc
        .pointer("/status/components/predictor")
        .cloned()
        .unwrap_or(Value::Null);
    let field = |k: &str| {
        predictor
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let previous = field("previousRolledoutRevision");
    let latest = [
        "latestReadyRevision",
        "latestRolledoutRevision",
        "latestCreatedRevision",
    ]
    .iter()
    .map(|k| field(k))
    .find(|r| !r.is_empty())
    .unwrap_or_default();
    if previous.is_empty() {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "{object} has no previous rolled-out revision (status.components.predictor.previousRolledoutRevision is empty), so no ready revision to send traffic back to"
            )),
            format!("{object} has no previous revision to roll back to"),
        ));
    }
    if previous == latest {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "{object}'s previous rolled-out revision {previous} is also its latest: nothing older to roll back to"
            )),
            format!("{object} has no older revision to roll back to"),
        ));
    }
    let before = isvc
        .pointer("/spec/predictor/canaryTrafficPercent")
        .cloned();
    if before.as_ref().and_then(Value::as_u64) == Some(0) {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!(
                "{object} already sends no traffic to {latest} (canaryTrafficPercent is 0)"
            )),
            format!("{object} already rolled back to {previous}"),
        ));
    }
    let body = json!({"spec": {"predictor": {"canaryTrafficPercent": 0}}});
    ctx.edit_field(
        report,
        FieldEdit {
            path: &path,
            call: Call::Patch(PatchBody::Merge(body)),
            field: "spec.predictor.canaryTrafficPercent".into(),
            pointer: "/spec/predictor/canaryTrafficPercent".into(),
            before,
            step: format!("roll back {object}"),
            refused: format!("could not roll {object} back to {previous}"),
            done: format!("{object}: canaryTrafficPercent 0, traffic back to previous revision {previous} (from {latest})"),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_as_semantic_deep_equal_ignoring_the_hash_label() {
        let rs = json!({"metadata": {"labels": {"app": "web", TEMPLATE_HASH: "abc"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "image": "i:1", "env": []}]}});
        let dep = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        assert_eq!(semantic(&sans_hash(&rs)), semantic(&dep));
        let newer = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_ne!(semantic(&sans_hash(&rs)), semantic(&newer));
    }
}
