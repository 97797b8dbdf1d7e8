//! The mutation vocabulary: every change fleetdeck can make to a cluster, as one typed
//! [`Mutation`]. A runbook's Rhai call or a person's key press becomes a `Mutation` through
//! the constructors here, which refuse a bad value once, naming it; performing one only
//! dispatches to the action with kubectl's semantics. Imports the rest of `actions` only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    ActionContext, ActionError, ActionReport, DrainOptions, GangPolicy, ObjectKind, TaintEffect,
};

/// Options of a drain as a runbook or a person gives them, as kubectl drain's flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRequest {
    pub timeout_s: u64,
    /// Negative: each pod's own grace period (kubectl's `--grace-period=-1`).
    pub grace_period_s: Option<i64>,
    pub ignore_daemonsets: bool,
    pub delete_emptydir_data: bool,
    /// Past the spot notice's deadline, delete pods even when a PDB refuses.
    pub force_past_deadline: bool,
    /// Evict every rank of a gang job rather than refusing.
    pub whole_gang: bool,
}

impl Default for DrainRequest {
    fn default() -> Self {
        Self {
            timeout_s: 600,
            grace_period_s: None,
            ignore_daemonsets: true,
            delete_emptydir_data: false,
            force_past_deadline: false,
            whole_gang: false,
        }
    }
}

impl DrainRequest {
    /// The drain's options; `force_past` is when it may delete pods past their PDBs.
    pub fn options(&self, force_past: Option<DateTime<Utc>>) -> DrainOptions {
        DrainOptions {
            ignore_daemonsets: self.ignore_daemonsets,
            delete_emptydir_data: self.delete_emptydir_data,
            force: false,
            grace_period_seconds: self.grace_period_s.and_then(|g| u32::try_from(g).ok()),
            timeout: Duration::from_secs(self.timeout_s.max(1)),
            force_past,
            gang: if self.whole_gang {
                GangPolicy::WholeGang
            } else {
                GangPolicy::Refuse
            },
            ..DrainOptions::default()
        }
    }
}

/// One mutation of a cluster. Serialized (plans, the timeline, the journal) with the action's
/// name as `action`; read back (an intent from another process) as it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Mutation {
    Cordon {
        node: String,
    },
    Uncordon {
        node: String,
    },
    Drain {
        node: String,
        options: DrainRequest,
    },
    /// `rollout undo`: to `revision`, or the previous one. Build it with
    /// [`Mutation::rollback`].
    Rollback {
        namespace: String,
        name: String,
        revision: Option<u64>,
    },
    /// `rollout restart` of a Deployment: new pods under its rollout strategy.
    RestartRollout {
        namespace: String,
        name: String,
    },
    /// KServe: canary traffic back to 0.
    RollbackInferenceService {
        namespace: String,
        name: String,
    },
    /// A Deployment's replicas. Build it with [`Mutation::scale`].
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    Taint {
        node: String,
        key: String,
        /// `None`: a taint without a value (`key:effect`); shown as `""`.
        #[serde(serialize_with = "empty_if_none", deserialize_with = "none_if_empty")]
        value: Option<String>,
        effect: TaintEffect,
    },
    Untaint {
        node: String,
        key: String,
    },
    /// Sets (`Some`) or removes (`None`) an annotation. Build it with [`Mutation::annotate`].
    Annotate {
        kind: ObjectKind,
        /// Empty for a cluster-scoped object (a node).
        namespace: String,
        name: String,
        key: String,
        value: Option<String>,
    },
    /// `kubectl delete pod`: the pod's own grace period; already gone is a no-op.
    DeletePod {
        namespace: String,
        name: String,
    },
    /// One pod through the Eviction API, as a drain evicts it: its PodDisruptionBudget is
    /// respected (a 429 is retried until `timeout_s`), then the pod is waited for.
    EvictPod {
        namespace: String,
        name: String,
        timeout_s: u64,
    },
    /// A training job's gang restarted as a whole: every rank's pod deleted for the training
    /// operator to recreate; refused while the job says it is checkpointing.
    RestartGang {
        namespace: String,
        job: String,
    },
    /// A failed Airflow DAG run's failed task instances cleared to run again
    /// (`clearTaskInstances`), outside any cluster.
    AirflowClear {
        dag_id: String,
        run_id: String,
    },
    /// A registered model's serving alias back to the previous version (MLflow), and the
    /// serving object where it pins the model's URI.
    RollbackModel(Box<super::ModelRollback>),
}

fn empty_if_none<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.as_deref().unwrap_or(""))
}

/// `empty_if_none` read back: `""` is a taint without a value.
fn none_if_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = String::deserialize(d)?;
    Ok((!value.is_empty()).then_some(value))
}

fn invalid(what: &str, why: String) -> ActionError {
    ActionError::InvalidInput {
        what: what.to_string(),
        why,
    }
}

/// The kinds a runbook may annotate (by their kubectl names, in any case).
const ANNOTATABLE: [ObjectKind; 4] = [
    ObjectKind::Node,
    ObjectKind::Pod,
    ObjectKind::Deployment,
    ObjectKind::InferenceService,
];

impl Mutation {
    /// `rollout undo` of a Deployment: to `revision` (0 or more, as `--to-revision`), or the
    /// previous one. A negative revision is refused.
    pub fn rollback(
        namespace: &str,
        name: &str,
        revision: Option<i64>,
    ) -> Result<Self, ActionError> {
        let revision = match revision {
            None => None,
            Some(r) => Some(u64::try_from(r).map_err(|_| {
                invalid(
                    "rollback revision",
                    format!(
                        "{r} is negative: give a revision from the deployment's history, or none for the previous one"
                    ),
                )
            })?),
        };
        Ok(Self::Rollback {
            namespace: namespace.into(),
            name: name.into(),
            revision,
        })
    }

    /// A Deployment's replicas; a negative count (or one past `u32`) is refused.
    pub fn scale(namespace: &str, name: &str, replicas: i64) -> Result<Self, ActionError> {
        let replicas = u32::try_from(replicas).map_err(|_| {
            invalid(
                "scale replicas",
                format!("{replicas} is not a count of replicas (0 or more)"),
            )
        })?;
        Ok(Self::Scale {
            namespace: namespace.into(),
            name: name.into(),
            replicas,
        })
    }

    /// A taint `key[=value]:effect`; an empty value is a taint without one. The effect is
    /// kubectl's name of it: `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub fn taint(node: &str, key: &str, value: &str, effect: &str) -> Result<Self, ActionError> {
        let effect = TaintEffect::from_name(effect).ok_or_else(|| {
            invalid(
                "taint effect",
                format!("{effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
            )
        })?;
        Ok(Self::Taint {
            node: node.into(),
            key: key.into(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect,
        })
    }

    /// Sets (`Some`) or removes (`None`) an annotation on a node, pod, deployment or
    /// inferenceservice (`kind` in any case); `namespace` is empty for a node.
    pub fn annotate(
        kind: &str,
        namespace: &str,
        name: &str,
        key: &str,
        value: Option<String>,
    ) -> Result<Self, ActionError> {
        let kind = ANNOTATABLE
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(kind))
            .ok_or_else(|| {
                invalid(
                    "annotate kind",
                    format!(
                        "cannot annotate a {kind}; known: node, pod, deployment, inferenceservice"
                    ),
                )
            })?;
        Ok(Self::Annotate {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
            value,
        })
    }

    /// The rollback of endpoint `endpoint`'s registered model: its serving alias back to
    /// `version` (1 or more), or to the previous good version. The model and alias are what
    /// the registry source read for it (its `[[endpoints]] registry`, or its serving object's
    /// annotation); an endpoint that names none is refused, saying how to name one.
    pub fn rollback_model(
        snap: &crate::model::Snapshot,
        endpoint: &str,
        version: Option<i64>,
        by: &str,
    ) -> Result<Self, ActionError> {
        let e = snap
            .endpoints
            .iter()
            .find(|e| e.name == endpoint)
            .ok_or_else(|| {
                let known: Vec<&str> = snap.endpoints.iter().map(|e| e.name.as_str()).collect();
                invalid(
                    "rollback_model endpoint",
                    format!(
                        "no endpoint {endpoint:?} is configured (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
        let (model, alias) = match (snap.model_of(endpoint), &e.registry) {
            (Some(v), _) => (v.model.clone(), v.alias.clone()),
            (None, Some(r)) => (
                r.model.clone(),
                r.alias
                    .clone()
                    .unwrap_or_else(|| crate::model::registry::DEFAULT_ALIAS.to_string()),
            ),
            (None, None) => {
                return Err(invalid(
                    "rollback_model endpoint",
                    format!(
                        "endpoint {endpoint} names no registered model: give it [[endpoints]] registry = {{ model = \"NAME\" }} in fleetdeck.toml, or annotate its serving object {}=NAME[@ALIAS] (and set [mlflow] tracking_uri)",
                        crate::model::registry::REGISTERED_MODEL_ANNOTATION
                    ),
                ));
            }
        };
        let to_version = match version {
            None => None,
            Some(v) => Some(u64::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| {
                invalid(
                    "rollback_model version",
                    format!("{v} is not a model version (they start at 1)"),
                )
            })?),
        };
        Ok(Self::RollbackModel(Box::new(super::ModelRollback {
            endpoint: endpoint.to_string(),
            model,
            alias,
            to_version,
            serving: e.serving.clone(),
            by: by.to_string(),
        })))
    }

    /// The verb, for keys and summaries.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Cordon { .. } => "cordon",
            Self::Uncordon { .. } => "uncordon",
            Self::Drain { .. } => "drain",
            Self::Rollback { .. }
            | Self::RollbackInferenceService { .. }
            | Self::RollbackModel(_) => "rollback",
            Self::RestartRollout { .. } => "restart",
            Self::RestartGang { .. } => "restart gang",
            Self::AirflowClear { .. } => "clear",
            Self::Scale { .. } => "scale",
            Self::Taint { .. } => "taint",
            Self::Untaint { .. } => "untaint",
            Self::Annotate { .. } => "annotate",
            Self::DeletePod { .. } => "delete",
            Self::EvictPod { .. } => "evict",
        }
    }

    /// `node/gpu-node-7`, `deployment/serving/llama` — what a cooldown and an idempotency key
    /// name.
    pub fn target(&self) -> String {
        match self {
            Self::Cordon { node }
            | Self::Uncordon { node }
            | Self::Drain { node, .. }
            | Self::Taint { node, .. }
            | Self::Untaint { node, .. } => format!("node/{node}"),
            Self::Rollback {
                namespace, name, ..
            }
            | Self::RestartRollout { namespace, name }
            | Self::Scale {
                namespace, name, ..
            } => format!("deployment/{namespace}/{name}"),
            Self::RollbackInferenceService { namespace, name } => {
                format!("inferenceservice/{namespace}/{name}")
            }
            Self::DeletePod { namespace, name }
            | Self::EvictPod {
                namespace, name, ..
            } => {
                format!("pod/{namespace}/{name}")
            }
            Self::RollbackModel(r) => format!("registeredmodel/{}@{}", r.model, r.alias),
            Self::RestartGang { namespace, job } => format!("trainingjob/{namespace}/{job}"),
            Self::AirflowClear { dag_id, .. } => format!("dag/{dag_id}"),
            Self::Annotate {
                kind,
                namespace,
                name,
                ..
            } => format!("{}/{namespace}/{name}", kind.name().to_ascii_lowercase()),
        }
    }

    /// The cluster whose client performs it, when it is not the run's: a model rollback's
    /// serving object's.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Self::RollbackModel(r) => r.serving.as_ref().map(|s| s.cluster.as_str()),
            _ => None,
        }
    }

    /// Whether it changes nothing in a cluster unless its own cluster is reachable: a model
    /// rollback without a serving object only talks to the registry.
    pub fn registry_only(&self) -> bool {
        matches!(self, Self::RollbackModel(r) if r.serving.is_none())
            || matches!(self, Self::AirflowClear { .. })
    }

    /// How long it may wait for its effect, in seconds, where it waits (a drain for its
    /// pods): a runbook cuts it at the run's deadline.
    pub fn wait_limit_mut(&mut self) -> Option<&mut u64> {
        match self {
            Self::Drain { options, .. } => Some(&mut options.timeout_s),
            Self::EvictPod { timeout_s, .. } => Some(timeout_s),
            _ => None,
        }
    }

    /// The node this mutation takes out of service, if it does (a cordon, a drain, a taint
    /// that keeps or sends pods away).
    pub fn disrupted_node(&self) -> Option<&str> {
        match self {
            Self::Cordon { node } | Self::Drain { node, .. } => Some(node),
            Self::Taint {
                node,
                effect: TaintEffect::NoExecute | TaintEffect::NoSchedule,
                ..
            } => Some(node),
            _ => None,
        }
    }

    /// Performs it with kubectl's semantics. A drain forces past PDBs from `force_past` on,
    /// when given. The guard has been passed before this is called: only the runbook
    /// executor calls it, with the guard's clearance.
    pub async fn perform(
        &self,
        ctx: &ActionContext,
        force_past: Option<DateTime<Utc>>,
    ) -> Result<ActionReport, ActionError> {
        match self {
            Self::Cordon { node } => super::cordon(ctx, node).await,
            Self::Uncordon { node } => super::uncordon(ctx, node).await,
            Self::Drain { node, options } => {
                super::drain(ctx, node, &options.options(force_past)).await
            }
            Self::Rollback {
                namespace,
                name,
                revision,
            } => super::rollback_deployment(ctx, namespace, name, *revision).await,
            Self::RollbackInferenceService { namespace, name } => {
                super::rollback_inference_service(ctx, namespace, name).await
            }
            Self::RestartRollout { namespace, name } => {
                super::restart_rollout(ctx, namespace, name, Utc::now()).await
            }
            Self::Scale {
                namespace,
                name,
                replicas,
            } => super::scale(ctx, ObjectKind::Deployment, namespace, name, *replicas).await,
            Self::Taint {
                node,
                key,
                value,
                effect,
            } => super::taint(ctx, node, key, value.as_deref(), *effect).await,
            Self::Untaint { node, key } => super::untaint(ctx, node, key, None).await,
            Self::Annotate {
                kind,
                namespace,
                name,
                key,
                value,
            } => {
                let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                super::annotate(ctx, *kind, ns, name, key, value.as_deref()).await
            }
            Self::DeletePod { namespace, name } => super::delete_pod(ctx, namespace, name).await,
            Self::EvictPod {
                namespace,
                name,
                timeout_s,
            } => {
                let opts = DrainOptions {
                    timeout: Duration::from_secs((*timeout_s).max(1)),
                    ..DrainOptions::default()
                };
                super::evict_pod(ctx, namespace, name, None, &opts).await
            }
            Self::RollbackModel(r) => super::rollback_model(ctx, r).await,
            Self::RestartGang { namespace, job } => super::restart_gang(ctx, namespace, job).await,
            Self::AirflowClear { dag_id, run_id } => {
                super::airflow_clear(ctx, dag_id, run_id).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_refuses_a_negative_revision_naming_it() {
        let e = Mutation::rollback("serving", "llama", Some(-1)).expect_err("negative revision");
        assert!(e.to_string().contains("-1"), "{e}");
        assert_eq!(
            Mutation::rollback("serving", "llama", Some(3)).ok(),
            Some(Mutation::Rollback {
                namespace: "serving".into(),
                name: "llama".into(),
                revision: Some(3),
            })
        );
        assert!(matches!(
            Mutation::rollback("serving", "llama", None),
            Ok(Mutation::Rollback { revision: None, .. })
        ));
    }

    #[test]
    fn scale_refuses_negative_replicas_naming_them() {
        let e = Mutation::scale("serving", "llama", -2).expect_err("negative replicas");
        assert!(e.to_string().contains("-2"), "{e}");
        assert!(matches!(
            Mutation::scale("serving", "llama", 0),
            Ok(Mutation::Scale { replicas: 0, .. })
        ));
    }

    #[test]
    fn taint_effect_is_parsed_once_and_a_bad_one_is_named() {
        let e = Mutation::taint("n1", "spot", "", "NoSchedul").expect_err("bad effect");
        assert!(e.to_string().contains("\"NoSchedul\""), "{e}");
        assert_eq!(
            Mutation::taint("n1", "spot", "", "NoExecute").ok(),
            Some(Mutation::Taint {
                node: "n1".into(),
                key: "spot".into(),
                value: None,
                effect: TaintEffect::NoExecute,
            })
        );
    }

    #[test]
    fn annotate_kind_is_matched_in_any_case_and_others_are_refused() {
        let m = Mutation::annotate("InferenceService", "serving", "llama", "k", None)
            .expect("inferenceservice");
        assert_eq!(m.target(), "inferenceservice/serving/llama");
        let e = Mutation::annotate("job", "ml", "train", "k", None).expect_err("job");
        assert!(e.to_string().contains("cannot annotate a job"), "{e}");
    }

    #[test]
    fn serialized_mutations_keep_their_action_names_and_fields() {
        let taint = Mutation::taint("n1", "spot", "", "NoSchedule").expect("taint");
        assert_eq!(
            serde_json::to_value(&taint).expect("json"),
            serde_json::json!({
                "action": "taint", "node": "n1", "key": "spot", "value": "", "effect": "NoSchedule"
            })
        );
        let annotate =
            Mutation::annotate("Node", "", "n1", "k", Some("v".into())).expect("annotate");
        assert_eq!(
            serde_json::to_value(&annotate).expect("json"),
            serde_json::json!({
                "action": "annotate", "kind": "node", "namespace": "", "name": "n1", "key": "k", "value": "v"
            })
        );
        let isvc = Mutation::RollbackInferenceService {
            namespace: "s".into(),
            name: "m".into(),
        };
        assert_eq!(
            serde_json::to_value(&isvc).expect("json")["action"],
            "rollback_inference_service"
        );
    }
}
