//! Node actions: cordon, uncordon, taint, untaint, as `kubectl cordon/uncordon/taint` do them.

use serde_json::{Value, json};

use super::api::{Answer, Call, FieldEdit, ObjectPath, PatchBody};
use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::FieldChange;

/// Marks the node unschedulable. Already cordoned: a no-op, as kubectl's "already cordoned".
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn cordon(ctx: &ActionContext, node: &str) -> Result<ActionReport, ActionError> {
    set_unschedulable(ctx, node, true).await
}

/// Makes the node schedulable again.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn uncordon(ctx: &ActionContext, node: &str) -> Result<ActionReport, ActionError> {
    set_unschedulable(ctx, node, false).await
}

async fn set_unschedulable(
    ctx: &ActionContext,
    node: &str,
    desired: bool,
) -> Result<ActionReport, ActionError> {
    let (action, state) = if desired {
        ("cordon", "cordoned")
    } else {
        ("uncordon", "uncordoned")
    };
    let path = ObjectPath::node(node);
    let report = ActionReport::new(ctx, action, format!("node/{node}"));
    let current: Value = ctx.read_existing(&path, &format!("node {node}")).await?;
    let before = current.pointer("/spec/unschedulable").cloned();
    if before.as_ref().and_then(Value::as_bool).unwrap_or(false) == desired {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!("node {node} is already {state}")),
            format!("node {node} already {state}"),
        ));
    }
    // kubectl (pkg/drain/cordon.go, CordonHelper.PatchOrReplaceWithContext) sends the two-way
    // strategic merge patch of the node before and after: only spec.unschedulable, and null
    // (the field's removal) to uncordon, since the API drops a false boolean.
    let value = if desired { json!(true) } else { Value::Null };
    let body = json!({"spec": {"unschedulable": value}});
    ctx.edit_field(
        report,
        FieldEdit {
            path: &path,
            call: Call::Patch(PatchBody::Strategic(body)),
            field: "spec.unschedulable".into(),
            pointer: "/spec/unschedulable".into(),
            before,
            step: format!("{action} node {node}"),
            refused: format!("could not {action} node {node}"),
            done: format!("node {node} {state}"),
        },
    )
    .await
}

fn field_after(answer: &Answer, pointer: &str) -> Option<Value> {
    answer.json().and_then(|v| v.pointer(pointer).cloned())
}

/// The effect of a taint on pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn name(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }

    /// The effect kubectl names so (exactly), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::NoSchedule, Self::PreferNoSchedule, Self::NoExecute]
            .into_iter()
            .find(|e| e.name() == name)
    }
}

/// How often a taint change is retried when another writer (the node controller, a
/// termination handler) changed the node's taints between our read and our write.
const TAINT_ATTEMPTS: usize = 3;

/// Adds the taint `key[=value]:effect`, or sets its value when the node has a taint with that
/// key and effect (`kubectl taint --overwrite`). The same taint already there: a no-op.
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn taint(
    ctx: &ActionContext,
    node: &str,
    key: &str,
    value: Option<&str>,
    effect: TaintEffect,
) -> Result<ActionReport, ActionError> {
    check_taint_key(key)?;
    let spec = match value {
        Some(v) => format!("{key}={v}:{}", effect.name()),
        None => format!("{key}:{}", effect.name()),
    };
    let mut report = ActionReport::new(ctx, "taint", format!("node/{node}"));
    change_taints(ctx, node, &mut report, |taints| {
        let same_slot = |t: &Value| t["key"] == key && t["effect"] == effect.name();
        if taints
            .iter()
            .any(|t| same_slot(t) && t.get("value").and_then(Value::as_str) == value)
        {
            return None;
        }
        let mut next: Vec<Value> = taints.iter().filter(|t| !same_slot(t)).cloned().collect();
        let mut t = json!({"key": key, "effect": effect.name()});
        if let Some(v) = value {
            t["value"] = json!(v);
        }
        next.push(t);
        Some(next)
    })
    .await?;
    Ok(match report.outcome.clone() {
        ActionOutcome::Done => {
            report.finish(ActionOutcome::Done, format!("node {node} tainted {spec}"))
        }
        ActionOutcome::NoOp(_) => report.finish(
            ActionOutcome::NoOp(format!("node {node} already has taint {spec}")),
            format!("node {node} already tainted {spec}"),
        ),
        other => {
            let summary = format!("could not taint node {node} with {spec}");
            report.finish(other, summary)
        }
    })
}

/// Removes the node's taints with `key` (and `effect`, when given), as `kubectl taint KEY-` and
/// `KEY:EFFECT-`. No such taint: a no-op (kubectl errors; a runbook wants idempotence).
#[tracing::instrument(skip(ctx), fields(cluster = %ctx.cluster))]
pub async fn untaint(
    ctx: &ActionContext,
    node: &str,
    key: &str,
    effect: Option<TaintEffect>,
) -> Result<ActionReport, ActionError> {
    check_taint_key(key)?;
    let spec = match effect {
        Some(e) => format!("{key}:{}", e.name()),
        None => key.to_string(),
    };
    let mut report = ActionReport::new(ctx, "untaint", format!("node/{node}"));
    change_taints(ctx, node, &mut report, |taints| {
        let matches = |t: &Value| t["key"] == key && effect.is_none_or(|e| t["effect"] == e.name());
        if !taints.iter().any(matches) {
            return None;
        }
        Some(taints.iter().filter(|t| !matches(t)).cloned().collect())
    })
    .await?;
    Ok(match report.outcome.clone() {
        ActionOutcome::Done => {
            report.finish(ActionOutcome::Done, format!("node {node} untainted {spec}"))
        }
        ActionOutcome::NoOp(_) => report.finish(
            ActionOutcome::NoOp(format!("node {node} has no taint {spec}")),
            format!("node {node} has no taint {spec}"),
        ),
        other => {
            let summary = format!("could not remove taint {spec} from node {node}");
            report.finish(other, summary)
        }
    })
}

fn check_taint_key(key: &str) -> Result<(), ActionError> {
    let valid = !key.is_empty()
        && key.len() <= 316
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(())
    } else {
        Err(ActionError::InvalidInput {
            what: format!("taint key {key:?}"),
            why: "a taint key is a qualified name: letters, digits, '-', '_', '.', with an optional DNS prefix and '/'".into(),
        })
    }
}

/// Reads the node's taints, asks `edit` for the new list (`None`: nothing to change) and
/// writes it. kubectl (pkg/cmd/taint/taint.go) sends a strategic merge patch of the whole
/// list, which has no merge key and so replaces it; this one also carries the node's
/// resourceVersion, so that a list another writer changed meanwhile is re-read, not clobbered.
/// Leaves the outcome in `report`: Done, NoOp, or Failed.
async fn change_taints(
    ctx: &ActionContext,
    node: &str,
    report: &mut ActionReport,
    edit: impl Fn(&[Value]) -> Option<Vec<Value>>,
) -> Result<(), ActionError> {
    let path = ObjectPath::node(node);
    for attempt in 1..=TAINT_ATTEMPTS {
        let current: Value = ctx.read_existing(&path, &format!("node {node}")).await?;
        let taints: Vec<Value> = current
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(next) = edit(&taints) else {
            report.outcome = ActionOutcome::NoOp(String::new());
            return Ok(());
        };
        let rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let list = if next.is_empty() {
            Value::Null
        } else {
            Value::Array(next)
        };
        let body = json!({"metadata": {"resourceVersion": rv}, "spec": {"taints": list}});
        let answer = ctx
            .mutate(
                &path,
                Call::Patch(PatchBody::Strategic(body)),
                &mut report.outcomes,
            )
            .await?;
        if answer.status == 409 && attempt < TAINT_ATTEMPTS {
            continue;
        }
        if !answer.is_success() {
            report.outcome = ActionOutcome::Failed(format!(
                "changing the taints of node {node}: {}",
                answer.refusal()
            ));
            return Ok(());
        }
        let before = current.pointer("/spec/taints").cloned();
        report.changes.push(FieldChange {
            object: format!("node/{node}"),
            field: "spec.taints".into(),
            before,
            after: field_after(&answer, "/spec/taints"),
        });
        report.outcome = ActionOutcome::Done;
        return Ok(());
    }
    Ok(())
}
