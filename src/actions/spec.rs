//! The one table of what each [`Mutation`] is to the rest of fleetdeck: the Rhai host function
//! a runbook asks for it with (and the constructor that turns that call's arguments into the
//! `Mutation`), the cockpit key a person asks for it with, and the guard budget it counts
//! against. [`Mutation::spec`] is an exhaustive `match`, so a new variant does not compile
//! until it has a row; the runbook engine registers, checks and documents its host functions
//! from these rows, so a new action is its variant, its row and its implementation. Imports
//! the rest of `actions` and `model` (the snapshot a model rollback reads).

use std::sync::Arc;

use serde_json::Value;

use super::{ActionError, DrainRequest, Mutation};
use crate::model::Snapshot;

/// Which of the guard's budgets a mutation counts against. Every mutation meets the kill
/// switch, read-only, the leader Lease, the cluster's unready halt, the runbook's cooldown and
/// the idempotency claim; these are the budgets on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardBudget {
    /// The cluster's disruption budget (`max_disrupted_pct`) when it takes a node out of
    /// service: a cordon, a drain, a `NoSchedule`/`NoExecute` taint.
    NodeDisruption,
    /// The replica budget of scale-downs (`max_replicas_removed_per_run`, `…_per_window`) and
    /// the refusal to scale a serving Deployment to zero.
    Replicas,
    /// No budget of its own: the object recovers by itself (a pod is recreated by its
    /// controller, a rollout keeps its strategy's availability) or is put back in service.
    None,
}

impl GuardBudget {
    /// What the budget is, for the docs and `runbook check`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NodeDisruption => "disruption budget",
            Self::Replicas => "replica budget",
            Self::None => "no budget",
        }
    }
}

/// One row of the table: a [`Mutation`] as a script, a person and the guard see it.
#[derive(Debug, Clone, Copy)]
pub struct MutationSpec {
    /// The action's name as plans and the journal serialize it (`action` field).
    pub action: &'static str,
    /// The Rhai host function a runbook calls.
    pub host_fn: &'static str,
    /// The argument counts the host function takes (each one is a registered overload).
    pub arities: &'static [usize],
    /// How a runbook calls it, for docs and `runbook check`'s hints.
    pub usage: &'static str,
    /// The cockpit's default key for it (`[keys]` may rebind it); `None`: runbooks only.
    pub cockpit_key: Option<&'static str>,
    pub budget: GuardBudget,
    /// Builds the mutation from a runbook's call; a bad argument is refused here, naming it,
    /// before anything is asked of the guard.
    pub build: fn(&HostCall<'_>) -> Result<Mutation, ActionError>,
}

/// Rows are one per action name (a test checks it), so the name is the row.
impl PartialEq for MutationSpec {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action
    }
}

impl Eq for MutationSpec {}

/// A runbook's argument as the engine hands it to a row's constructor, so no script engine's
/// types reach `actions`.
#[derive(Debug, Clone, PartialEq)]
pub enum HostArg {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// An object map (`#{ timeout: "5m" }`), as JSON.
    Map(Value),
    /// Anything else (an array, a function pointer), by its script form, for the message.
    Other(String),
}

impl HostArg {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Unit => "()",
            Self::Bool(_) => "a bool",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Text(_) => "a string",
            Self::Map(_) => "a map",
            Self::Other(_) => "another kind of value",
        }
    }

    /// The value as a script would print it.
    fn display(&self) -> String {
        match self {
            Self::Unit => "()".into(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Text(t) => t.clone(),
            Self::Map(m) => m.to_string(),
            Self::Other(o) => o.clone(),
        }
    }
}

/// One call of a mutation's host function: its row, its arguments and the fleet as the run
/// sees it (a model rollback reads the endpoint's registry from it).
pub struct HostCall<'a> {
    pub spec: &'static MutationSpec,
    pub args: &'a [HostArg],
    pub snapshot: Arc<Snapshot>,
}

impl HostCall<'_> {
    fn bad(&self, i: usize, what: &str, want: &str) -> ActionError {
        let got = self.args.get(i).unwrap_or(&HostArg::Unit);
        ActionError::InvalidInput {
            what: format!("{} argument {} ({what})", self.spec.host_fn, i + 1),
            why: format!(
                "{} is {}, not {want}: call it as {}",
                got.display(),
                got.type_name(),
                self.spec.usage
            ),
        }
    }

    /// Argument `i` as text (a node, a namespace, a name).
    pub fn text(&self, i: usize, what: &str) -> Result<String, ActionError> {
        match self.args.get(i) {
            Some(HostArg::Text(t)) => Ok(t.clone()),
            _ => Err(self.bad(i, what, "a string")),
        }
    }

    /// Argument `i` as an integer, `None` when the call did not give it.
    pub fn int(&self, i: usize, what: &str) -> Result<Option<i64>, ActionError> {
        match self.args.get(i) {
            None => Ok(None),
            Some(HostArg::Int(n)) => Ok(Some(*n)),
            Some(_) => Err(self.bad(i, what, "an integer")),
        }
    }

    /// Argument `i` as an options map, `None` when the call did not give it.
    pub fn map(&self, i: usize, what: &str) -> Result<Option<&Value>, ActionError> {
        match self.args.get(i) {
            None => Ok(None),
            Some(HostArg::Map(m)) => Ok(Some(m)),
            Some(_) => Err(self.bad(i, what, "a map such as #{ timeout: \"5m\" }")),
        }
    }

    /// Argument `i` as an optional value: `()` is none, anything else its text.
    pub fn optional(&self, i: usize) -> Option<String> {
        match self.args.get(i) {
            None | Some(HostArg::Unit) => None,
            Some(a) => Some(a.display()),
        }
    }
}

/// Every row, one per `Mutation` variant, in the order the docs list them.
pub const MUTATION_SPECS: &[MutationSpec] = &[
    CORDON,
    UNCORDON,
    DRAIN,
    ROLLBACK,
    RESTART_ROLLOUT,
    ROLLBACK_INFERENCE_SERVICE,
    ROLLBACK_MODEL,
    SCALE,
    DELETE_POD,
    EVICT_POD,
    RESTART_GANG,
    AIRFLOW_CLEAR,
    TAINT,
    UNTAINT,
    ANNOTATE,
];

const CORDON: MutationSpec = MutationSpec {
    action: "cordon",
    host_fn: "cordon",
    arities: &[1],
    usage: "cordon(node)",
    cockpit_key: Some("c"),
    budget: GuardBudget::NodeDisruption,
    build: build_cordon,
};
const UNCORDON: MutationSpec = MutationSpec {
    action: "uncordon",
    host_fn: "uncordon",
    arities: &[1],
    usage: "uncordon(node)",
    cockpit_key: Some("u"),
    budget: GuardBudget::None,
    build: build_uncordon,
};
const DRAIN: MutationSpec = MutationSpec {
    action: "drain",
    host_fn: "drain",
    arities: &[1, 2],
    usage: "drain(node) or drain(node, #{ timeout, … })",
    cockpit_key: Some("D"),
    budget: GuardBudget::NodeDisruption,
    build: build_drain,
};
const ROLLBACK: MutationSpec = MutationSpec {
    action: "rollback",
    host_fn: "rollback",
    arities: &[2, 3],
    usage: "rollback(ns, name) or rollback(ns, name, revision)",
    cockpit_key: Some("B"),
    budget: GuardBudget::None,
    build: build_rollback,
};
const RESTART_ROLLOUT: MutationSpec = MutationSpec {
    action: "restart_rollout",
    host_fn: "restart_rollout",
    arities: &[2],
    usage: "restart_rollout(ns, name)",
    cockpit_key: Some("r"),
    budget: GuardBudget::None,
    build: build_restart_rollout,
};
const ROLLBACK_INFERENCE_SERVICE: MutationSpec = MutationSpec {
    action: "rollback_inference_service",
    host_fn: "rollback_inference_service",
    arities: &[2],
    usage: "rollback_inference_service(ns, name)",
    // The cockpit's rollback key rolls back whichever the selected workload is.
    cockpit_key: Some("B"),
    budget: GuardBudget::None,
    build: build_rollback_inference_service,
};
const ROLLBACK_MODEL: MutationSpec = MutationSpec {
    action: "rollback_model",
    host_fn: "rollback_model",
    arities: &[1, 2],
    usage: "rollback_model(endpoint) or rollback_model(endpoint, version)",
    cockpit_key: Some("M"),
    budget: GuardBudget::None,
    build: build_rollback_model,
};
const SCALE: MutationSpec = MutationSpec {
    action: "scale",
    host_fn: "scale",
    arities: &[3],
    usage: "scale(ns, name, replicas)",
    cockpit_key: Some("#"),
    budget: GuardBudget::Replicas,
    build: build_scale,
};
const DELETE_POD: MutationSpec = MutationSpec {
    action: "delete_pod",
    host_fn: "delete_pod",
    arities: &[2],
    usage: "delete_pod(ns, name)",
    cockpit_key: Some("ctrl-k"),
    budget: GuardBudget::None,
    build: build_delete_pod,
};
const EVICT_POD: MutationSpec = MutationSpec {
    action: "evict_pod",
    host_fn: "evict_pod",
    arities: &[2],
    usage: "evict_pod(ns, name)",
    cockpit_key: None,
    // The pod's PodDisruptionBudget is the budget: the API refuses an eviction it forbids.
    budget: GuardBudget::None,
    build: build_evict_pod,
};
const RESTART_GANG: MutationSpec = MutationSpec {
    action: "restart_gang",
    host_fn: "restart_gang",
    arities: &[2],
    usage: "restart_gang(ns, job)",
    cockpit_key: None,
    // The operator recreates the gang at once, as a rollout restart's controller does; a
    // checkpointing job is refused by the action itself.
    budget: GuardBudget::None,
    build: build_restart_gang,
};
const AIRFLOW_CLEAR: MutationSpec = MutationSpec {
    action: "airflow_clear",
    host_fn: "airflow_clear",
    arities: &[2],
    usage: "airflow_clear(dag_id, run_id)",
    cockpit_key: None,
    // Re-running a DAG's failed tasks touches no node and no replica; a runbook's cooldown
    // keeps it from retrying a run forever.
    budget: GuardBudget::None,
    build: build_airflow_clear,
};
const TAINT: MutationSpec = MutationSpec {
    action: "taint",
    host_fn: "taint",
    arities: &[4],
    usage: "taint(node, key, value, effect)",
    cockpit_key: None,
    budget: GuardBudget::NodeDisruption,
    build: build_taint,
};
const UNTAINT: MutationSpec = MutationSpec {
    action: "untaint",
    host_fn: "untaint",
    arities: &[2],
    usage: "untaint(node, key)",
    cockpit_key: None,
    budget: GuardBudget::None,
    build: build_untaint,
};
const ANNOTATE: MutationSpec = MutationSpec {
    action: "annotate",
    host_fn: "annotate",
    arities: &[5],
    usage: "annotate(kind, ns, name, key, value)",
    cockpit_key: None,
    budget: GuardBudget::None,
    build: build_annotate,
};

// The rows' constructors: a runbook's arguments to a `Mutation`, each bad one named.

fn build_cordon(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::Cordon {
        node: c.text(0, "node")?,
    })
}

fn build_uncordon(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::Uncordon {
        node: c.text(0, "node")?,
    })
}

fn build_drain(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let options = match c.map(1, "options")? {
        Some(m) => drain_request(m)?,
        None => DrainRequest::default(),
    };
    Ok(Mutation::Drain {
        node: c.text(0, "node")?,
        options,
    })
}

/// A drain's options map, as kubectl drain's flags.
fn drain_request(m: &Value) -> Result<DrainRequest, ActionError> {
    let mut d = DrainRequest::default();
    let Some(m) = m.as_object() else {
        return Ok(d);
    };
    for (k, v) in m {
        let bad = || ActionError::InvalidInput {
            what: format!("drain option {k}"),
            why: format!("{v} is not the right type"),
        };
        match k.as_str() {
            "timeout" => {
                let s = v.as_str().ok_or_else(bad)?;
                d.timeout_s = humantime::parse_duration(s)
                    .map_err(|e| ActionError::InvalidInput {
                        what: "drain timeout".into(),
                        why: format!("{s:?}: {e}"),
                    })?
                    .as_secs();
            }
            "grace_period" => d.grace_period_s = Some(v.as_i64().ok_or_else(bad)?),
            "ignore_daemonsets" => d.ignore_daemonsets = v.as_bool().ok_or_else(bad)?,
            "delete_emptydir_data" => d.delete_emptydir_data = v.as_bool().ok_or_else(bad)?,
            "force_past_deadline" => d.force_past_deadline = v.as_bool().ok_or_else(bad)?,
            "whole_gang" => d.whole_gang = v.as_bool().ok_or_else(bad)?,
            other => {
                return Err(ActionError::InvalidInput {
                    what: format!("drain option {other}"),
                    why: format!(
                        "unknown drain option {other}; known: timeout, grace_period, ignore_daemonsets, delete_emptydir_data, force_past_deadline, whole_gang"
                    ),
                });
            }
        }
    }
    Ok(d)
}

fn build_rollback(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let revision = c.int(2, "revision")?;
    // kubectl reads `--to-revision=0` as "the previous one"; a script that means that calls
    // rollback(ns, name), so a 0 here is a computed value gone wrong.
    if revision == Some(0) {
        return Err(ActionError::InvalidInput {
            what: "rollback revision".into(),
            why: "0 is not a revision (they start at 1): give one from the deployment's history, or call rollback(ns, name) for the previous one".into(),
        });
    }
    Mutation::rollback(&c.text(0, "namespace")?, &c.text(1, "name")?, revision)
}

fn build_restart_rollout(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::RestartRollout {
        namespace: c.text(0, "namespace")?,
        name: c.text(1, "name")?,
    })
}

fn build_rollback_inference_service(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::RollbackInferenceService {
        namespace: c.text(0, "namespace")?,
        name: c.text(1, "name")?,
    })
}

fn build_rollback_model(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let endpoint = c.text(0, "endpoint")?;
    let version = c.int(1, "version")?;
    Mutation::rollback_model(&c.snapshot, &endpoint, version, "runbook")
}

fn build_scale(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let replicas = c.int(2, "replicas")?.unwrap_or_default();
    let max = super::workload::MAX_REPLICAS;
    if replicas > i64::from(max) {
        return Err(ActionError::InvalidInput {
            what: "scale replicas".into(),
            why: format!(
                "{replicas} is more than a cluster can run (Kubernetes supports at most {max} pods in one cluster)"
            ),
        });
    }
    Mutation::scale(&c.text(0, "namespace")?, &c.text(1, "name")?, replicas)
}

fn build_delete_pod(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::DeletePod {
        namespace: c.text(0, "namespace")?,
        name: c.text(1, "name")?,
    })
}

fn build_evict_pod(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::EvictPod {
        namespace: c.text(0, "namespace")?,
        name: c.text(1, "name")?,
        // As long as a PDB may reasonably hold one pod; a run's deadline cuts it shorter.
        timeout_s: 120,
    })
}

fn build_restart_gang(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let (namespace, job) = (c.text(0, "namespace")?, c.text(1, "job")?);
    if job.trim().is_empty() {
        return Err(ActionError::InvalidInput {
            what: "restart_gang job".into(),
            why: "the job's name is empty: give the training job (its pods' training.kubeflow.org/job-name)".into(),
        });
    }
    Ok(Mutation::RestartGang { namespace, job })
}

fn build_airflow_clear(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    let (dag_id, run_id) = (c.text(0, "dag_id")?, c.text(1, "run_id")?);
    for (what, v) in [("dag_id", &dag_id), ("run_id", &run_id)] {
        if v.trim().is_empty() {
            return Err(ActionError::InvalidInput {
                what: format!("airflow_clear {what}"),
                why: format!(
                    "the {what} is empty: give the DAG and the failed run (the signal's evidence names both)"
                ),
            });
        }
    }
    Ok(Mutation::AirflowClear { dag_id, run_id })
}

fn build_taint(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Mutation::taint(
        &c.text(0, "node")?,
        &c.text(1, "key")?,
        &c.text(2, "value")?,
        &c.text(3, "effect")?,
    )
}

fn build_untaint(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Ok(Mutation::Untaint {
        node: c.text(0, "node")?,
        key: c.text(1, "key")?,
    })
}

fn build_annotate(c: &HostCall<'_>) -> Result<Mutation, ActionError> {
    Mutation::annotate(
        &c.text(0, "kind")?,
        &c.text(1, "namespace")?,
        &c.text(2, "name")?,
        &c.text(3, "key")?,
        c.optional(4),
    )
}

impl Mutation {
    /// This mutation's row of the table. Exhaustive on purpose: a new variant needs a row.
    pub fn spec(&self) -> &'static MutationSpec {
        match self {
            Self::Cordon { .. } => &CORDON,
            Self::Uncordon { .. } => &UNCORDON,
            Self::Drain { .. } => &DRAIN,
            Self::Rollback { .. } => &ROLLBACK,
            Self::RestartRollout { .. } => &RESTART_ROLLOUT,
            Self::RollbackInferenceService { .. } => &ROLLBACK_INFERENCE_SERVICE,
            Self::RollbackModel(_) => &ROLLBACK_MODEL,
            Self::Scale { .. } => &SCALE,
            Self::DeletePod { .. } => &DELETE_POD,
            Self::EvictPod { .. } => &EVICT_POD,
            Self::RestartGang { .. } => &RESTART_GANG,
            Self::AirflowClear { .. } => &AIRFLOW_CLEAR,
            Self::Taint { .. } => &TAINT,
            Self::Untaint { .. } => &UNTAINT,
            Self::Annotate { .. } => &ANNOTATE,
        }
    }

    /// Whether this mutation counts against the cluster's disruption budget: its row's budget
    /// is the disruption budget and it takes a node out of service (a `PreferNoSchedule` taint
    /// does not).
    pub fn spends_disruption_budget(&self) -> Option<&str> {
        if self.spec().budget != GuardBudget::NodeDisruption {
            return None;
        }
        self.disrupted_node()
    }
}

/// The row whose host function is `name`.
pub fn spec_of_host_fn(name: &str) -> Option<&'static MutationSpec> {
    MUTATION_SPECS.iter().find(|s| s.host_fn == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{DrainRequest, ModelRollback, ObjectKind, TaintEffect};

    /// One of every variant. The `match` in `variant_covered` fails to compile when a variant
    /// is added without an example here.
    fn one_of_each() -> Vec<Mutation> {
        let (namespace, name, node) =
            ("serving".to_string(), "llama".to_string(), "n1".to_string());
        vec![
            Mutation::Cordon { node: node.clone() },
            Mutation::Uncordon { node: node.clone() },
            Mutation::Drain {
                node: node.clone(),
                options: DrainRequest::default(),
            },
            Mutation::Rollback {
                namespace: namespace.clone(),
                name: name.clone(),
                revision: None,
            },
            Mutation::RestartRollout {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Mutation::RollbackInferenceService {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Mutation::RollbackModel(Box::new(ModelRollback {
                endpoint: "llama".into(),
                model: "llama".into(),
                alias: "champion".into(),
                to_version: None,
                serving: None,
                by: "test".into(),
            })),
            Mutation::Scale {
                namespace: namespace.clone(),
                name: name.clone(),
                replicas: 1,
            },
            Mutation::DeletePod {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            Mutation::EvictPod {
                namespace: namespace.clone(),
                name: name.clone(),
                timeout_s: 120,
            },
            Mutation::RestartGang {
                namespace: namespace.clone(),
                job: "llm".into(),
            },
            Mutation::AirflowClear {
                dag_id: "feature_build_nightly".into(),
                run_id: "scheduled__2026-12-07T02:00:00+00:00".into(),
            },
            Mutation::Taint {
                node: node.clone(),
                key: "k".into(),
                value: None,
                effect: TaintEffect::NoSchedule,
            },
            Mutation::Untaint {
                node: node.clone(),
                key: "k".into(),
            },
            Mutation::Annotate {
                kind: ObjectKind::Pod,
                namespace,
                name,
                key: "k".into(),
                value: None,
            },
        ]
    }

    /// Every variant, so adding one without an example above breaks this build.
    fn variant_covered(m: &Mutation) -> &'static str {
        match m {
            Mutation::Cordon { .. }
            | Mutation::Uncordon { .. }
            | Mutation::Drain { .. }
            | Mutation::Rollback { .. }
            | Mutation::RestartRollout { .. }
            | Mutation::RollbackInferenceService { .. }
            | Mutation::RollbackModel(_)
            | Mutation::Scale { .. }
            | Mutation::DeletePod { .. }
            | Mutation::EvictPod { .. }
            | Mutation::RestartGang { .. }
            | Mutation::AirflowClear { .. }
            | Mutation::Taint { .. }
            | Mutation::Untaint { .. }
            | Mutation::Annotate { .. } => m.spec().action,
        }
    }

    #[test]
    fn every_mutation_variant_has_exactly_one_row_and_every_row_a_variant() {
        let examples = one_of_each();
        let mut seen: Vec<&str> = examples.iter().map(variant_covered).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            examples.len(),
            "two variants share a row: {seen:?}"
        );
        let mut rows: Vec<&str> = MUTATION_SPECS.iter().map(|s| s.action).collect();
        rows.sort_unstable();
        assert_eq!(seen, rows, "the table and the variants differ");
    }

    #[test]
    fn a_rows_action_is_the_name_the_mutation_serializes_under() {
        for m in one_of_each() {
            let json = serde_json::to_value(&m).expect("serializes");
            assert_eq!(json["action"], m.spec().action, "{m:?}");
        }
    }

    #[test]
    fn host_functions_are_unique_and_have_an_arity() {
        for s in MUTATION_SPECS {
            assert!(!s.arities.is_empty(), "{}", s.host_fn);
            assert_eq!(spec_of_host_fn(s.host_fn), Some(s), "{} twice", s.host_fn);
            assert!(
                s.usage.starts_with(&format!("{}(", s.host_fn)),
                "{}",
                s.usage
            );
        }
    }

    #[test]
    fn only_a_taint_that_keeps_pods_off_spends_the_disruption_budget() {
        let taint = |effect| Mutation::Taint {
            node: "n1".into(),
            key: "k".into(),
            value: None,
            effect,
        };
        assert_eq!(
            taint(TaintEffect::NoExecute).spends_disruption_budget(),
            Some("n1")
        );
        assert_eq!(
            taint(TaintEffect::PreferNoSchedule).spends_disruption_budget(),
            None
        );
        assert_eq!(
            Mutation::Uncordon { node: "n1".into() }.spends_disruption_budget(),
            None
        );
        assert_eq!(
            Mutation::Cordon { node: "n1".into() }.spends_disruption_budget(),
            Some("n1")
        );
    }
}
