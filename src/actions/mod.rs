//! Mutations of a cluster with kubectl's own semantics (cordon, drain, rollback, scale, taint,
//! annotate, restart a rollout, delete a pod), and their typed vocabulary, [`Mutation`]. Only this module mutates a cluster;
//! callers reach it through the guard.
//! Imports `model` (the timeline types its reports fill) and the kube client; nothing else.
//!
//! Every action answers an [`ActionReport`]: the fields it changed, each API answer to a
//! mutating request it sent, and an [`ActionOutcome`]. An [`ActionError`] means the action
//! could not find out or could not ask (transport, unknown object, wrong input); an answer
//! the API gave to a mutation is never an error, it is in the report.

pub mod airflow;
mod api;
pub mod drain;
mod evict;
pub mod mlflow;
mod mutation;
pub mod node;
pub mod rollback;
mod spec;
pub mod workload;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::incident::{
    Actor, ApiOutcome, EntryKind, FieldChange, NewEntry, Origin, Verdict,
};

pub use airflow::{AirflowCredential, AirflowWriter, airflow_clear};
pub use drain::{
    DrainOptions, DrainPlan, GangImpact, GangPolicy, PdbPressure, PodProblem, PodToEvict,
    SkippedPod, drain, plan_drain,
};
pub use evict::evict_pod;
pub use mlflow::{ModelRegistry, ModelRollback, rollback_model};
pub use mutation::{DrainRequest, Mutation};
pub use node::{TaintEffect, cordon, taint, uncordon, untaint};
pub use rollback::{rollback_deployment, rollback_inference_service};
pub use spec::{GuardBudget, HostArg, HostCall, MUTATION_SPECS, MutationSpec, spec_of_host_fn};
pub use workload::{
    GANG_LABEL, ObjectKind, RESTARTED_AT, annotate, delete_pod, restart_gang, restart_rollout,
    scale,
};

/// The field manager fleetdeck's writes are recorded under (`metadata.managedFields`).
pub const FIELD_MANAGER: &str = "fleetdeck";

/// Where and how an action talks to a cluster.
#[derive(Clone)]
pub struct ActionContext {
    /// Must send each request once: build it with [`action_client`].
    pub client: kube::Client,
    /// The cluster's name as fleetdeck shows it (the kubeconfig context), for messages.
    pub cluster: String,
    pub field_manager: String,
    /// Server-side dry run (`dryRun=All`): the API validates every request and changes
    /// nothing; actions do not wait for effects that will not happen.
    pub dry_run: bool,
    /// The model registry a model rollback moves an alias in; `None` without `[mlflow]`.
    pub registry: Option<std::sync::Arc<ModelRegistry>>,
    /// The Airflow webserver `airflow_clear` clears runs in (`[airflow]`); `None`: none set.
    pub airflow: Option<std::sync::Arc<AirflowWriter>>,
    /// Turns true when the process is stopping (SIGTERM): a drain stops at its next safe point
    /// (between evictions, or while it waits) and reports what it left. `None`: never.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The subject of an action's target as reports name it: `node/NAME`, or
/// `kind/NAMESPACE/NAME` (a namespaced object), or `kind/NAME`.
pub fn subject_of_target(cluster: &str, target: &str) -> Option<crate::model::signal::Subject> {
    let mut parts = target.splitn(3, '/');
    let (kind, first) = (parts.next()?, parts.next()?);
    let mut subject = crate::model::signal::Subject {
        cluster: cluster.to_string(),
        ..Default::default()
    };
    match parts.next() {
        None if kind == "node" => subject.node = Some(first.to_string()),
        None => subject.object = Some(format!("{kind}/{first}")),
        Some(name) => {
            subject.namespace = Some(first.to_string());
            subject.object = Some(format!("{kind}/{name}"));
        }
    }
    Some(subject)
}

/// A client for actions: one that sends each request once. kube's default client retries
/// 429, 503 and 504 itself (up to 15 times, backing off up to 1000 s), which would hide every
/// PodDisruptionBudget refusal from the report and stall a drain for minutes; this one has
/// that retry layer off, so each answer reaches the action and its report.
pub fn action_client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    kube::Client::try_from(config)
}

impl ActionContext {
    /// `client` must come from [`action_client`] (see there why); [`Self::from_config`]
    /// builds one.
    pub fn new(client: kube::Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
            field_manager: FIELD_MANAGER.to_string(),
            dry_run: false,
            registry: None,
            airflow: None,
            stop: None,
        }
    }

    /// A context with a client built by [`action_client`] from the cluster's config.
    pub fn from_config(
        config: kube::Config,
        cluster: impl Into<String>,
    ) -> Result<Self, ActionError> {
        let cluster = cluster.into();
        let client = action_client(config).map_err(|source| ActionError::Transport {
            cluster: cluster.clone(),
            request: "building the API client".into(),
            source,
        })?;
        Ok(Self::new(client, cluster))
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Stop long waits at a safe point once `stop` turns true (see [`Self::stop`]).
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Whether the process is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Sleeps until `until`, or less when the process starts stopping; `true` when it is.
    pub(crate) async fn sleep_unless_stopping(&self, until: tokio::time::Instant) -> bool {
        let Some(mut stop) = self.stop.clone() else {
            tokio::time::sleep_until(until).await;
            return false;
        };
        let slept = tokio::select! {
            _ = tokio::time::sleep_until(until) => None,
            r = stop.wait_for(|s| *s) => {
                let stopping = r.is_ok();
                drop(r);
                // The sender is gone (no one will ever stop us): sleep the whole while.
                if !stopping {
                    tokio::time::sleep_until(until).await;
                }
                Some(stopping)
            }
        };
        slept.unwrap_or_else(|| *stop.borrow())
    }

    pub fn with_airflow(mut self, airflow: Option<std::sync::Arc<AirflowWriter>>) -> Self {
        self.airflow = airflow;
        self
    }

    pub fn with_registry(mut self, registry: Option<std::sync::Arc<ModelRegistry>>) -> Self {
        self.registry = registry;
        self
    }
}

impl std::fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionContext")
            .field("cluster", &self.cluster)
            .field("field_manager", &self.field_manager)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// It did what it was asked (in a dry run: the API accepted every request).
    Done,
    /// Nothing to do: the cluster is already as asked.
    NoOp(String),
    /// It declined before changing what it was asked to change (a drain's filters, a gang
    /// job, a paused deployment, no revision to roll back to).
    Refused(String),
    /// The API refused a mutation, or the action could not finish it.
    Failed(String),
    /// The action's deadline passed before it finished.
    TimedOut,
}

impl ActionOutcome {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::NoOp(_) => "no-op",
            Self::Refused(_) => "refused",
            Self::Failed(_) => "failed",
            Self::TimedOut => "timed out",
        }
    }

    /// Done or nothing to do: the cluster is as asked.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Done | Self::NoOp(_))
    }
}

/// What an action did, for the incident timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReport {
    /// `cordon`, `drain`, `rollback`, …
    pub action: String,
    /// `node/NAME`, `deployment/NS/NAME`, …
    pub target: String,
    pub cluster: String,
    pub dry_run: bool,
    pub summary: String,
    pub changes: Vec<FieldChange>,
    /// Every answer to a mutating request, in the order they came.
    pub outcomes: Vec<ApiOutcome>,
    pub outcome: ActionOutcome,
    /// Pods evicted or deleted (`ns/name`); in a dry run, those the API accepted to evict.
    pub evicted: Vec<String>,
    /// PodDisruptionBudgets (`ns/name`) that refused an eviction at least once.
    pub blocked_by: Vec<String>,
    /// Pods deleted past their PodDisruptionBudget, each with the budget and why.
    pub bypassed: Vec<String>,
}

impl ActionReport {
    pub(crate) fn new(ctx: &ActionContext, action: &str, target: String) -> Self {
        Self {
            action: action.to_string(),
            target,
            cluster: ctx.cluster.clone(),
            dry_run: ctx.dry_run,
            summary: String::new(),
            changes: Vec::new(),
            outcomes: Vec::new(),
            outcome: ActionOutcome::Done,
            evicted: Vec::new(),
            blocked_by: Vec::new(),
            bypassed: Vec::new(),
        }
    }

    pub(crate) fn finish(mut self, outcome: ActionOutcome, summary: impl Into<String>) -> Self {
        let summary = summary.into();
        self.summary = if self.dry_run {
            format!("dry run: {summary}")
        } else {
            summary
        };
        self.outcome = outcome;
        self
    }

    /// The timeline entry that records this action.
    pub fn to_entry(&self, actor: Actor, origin: Origin) -> NewEntry {
        let mut entry = NewEntry::new(EntryKind::Action, actor, origin, self.summary.clone());
        entry.verdict = if self.dry_run {
            Some(Verdict::Planned)
        } else if matches!(self.outcome, ActionOutcome::Refused(_)) {
            Some(Verdict::Refused)
        } else {
            None
        };
        let mut detail = BTreeMap::new();
        detail.insert("action".into(), self.action.clone().into());
        detail.insert("target".into(), self.target.clone().into());
        detail.insert("cluster".into(), self.cluster.clone().into());
        detail.insert("outcome".into(), self.outcome.name().into());
        if let ActionOutcome::NoOp(r) | ActionOutcome::Refused(r) | ActionOutcome::Failed(r) =
            &self.outcome
        {
            detail.insert("reason".into(), r.clone().into());
        }
        for (key, list) in [
            ("evicted", &self.evicted),
            ("blocked_by", &self.blocked_by),
            ("bypassed", &self.bypassed),
        ] {
            if !list.is_empty() {
                detail.insert(key.into(), list.clone().into());
            }
        }
        entry.detail = detail;
        // On its object, so the leader's Kubernetes Event lands where `kubectl describe` shows
        // it (the cordoned node, the rolled-back Deployment).
        entry.subject = subject_of_target(&self.cluster, &self.target);
        entry.changes = self.changes.clone();
        entry.outcomes = self.outcomes.clone();
        entry
    }
}

/// Why an action could not run: it could not reach the API, the object is not there, or the
/// input is wrong. Refusals and failed mutations are [`ActionOutcome`]s, not errors.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(
        "cannot reach the API server of cluster {cluster} for {request}: {source} (is the cluster up, and is its kubeconfig context right?)"
    )]
    Transport {
        cluster: String,
        request: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster {cluster} has no {object}: check the name and namespace")]
    NotFound { cluster: String, object: String },
    #[error(
        "cluster {cluster} answered {status} {reason} to {request}: {message} (check fleetdeck's RBAC and the API server's health)"
    )]
    Api {
        cluster: String,
        request: String,
        status: u16,
        reason: String,
        message: String,
    },
    #[error("the answer of cluster {cluster} to {request} is not the JSON expected: {source}")]
    Decode {
        cluster: String,
        request: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "unable to find specified revision {revision} in history of deployment {deployment}; revisions available: {available}"
    )]
    RevisionNotFound {
        deployment: String,
        revision: u64,
        available: String,
    },
    #[error("invalid {what}: {why}")]
    InvalidInput { what: String, why: String },
    #[error("the model registry (MLflow) failed {request}: {message}")]
    Registry { request: String, message: String },
    #[error("Airflow failed {request}: {message}")]
    Airflow { request: String, message: String },
}

impl ActionError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Transport { .. } => "transport",
            Self::NotFound { .. } => "not_found",
            Self::Api { .. } => "api",
            Self::Decode { .. } => "decode",
            Self::RevisionNotFound { .. } => "revision_not_found",
            Self::InvalidInput { .. } => "invalid_input",
            Self::Registry { .. } => "registry",
            Self::Airflow { .. } => "airflow",
        }
    }
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn an_action_entry_names_its_object_so_its_event_lands_there() {
        let node = subject_of_target("prod", "node/gpu-a-1").expect("a subject");
        assert_eq!(
            (node.node.as_deref(), node.object.as_deref()),
            (Some("gpu-a-1"), None)
        );
        let dep = subject_of_target("prod", "deployment/serving/llama").expect("a subject");
        assert_eq!(
            (dep.namespace.as_deref(), dep.object.as_deref()),
            (Some("serving"), Some("deployment/llama"))
        );
        assert_eq!(dep.cluster, "prod");
    }
}
