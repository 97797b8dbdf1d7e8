//! One engine for every face: [`Engine::build`] makes the guard, the executor (with its run
//! pool), the notifier, the model registry and the action clients over the face's store, starts
//! the store's retention, and hands out the pipeline and the paging task, all with one error
//! policy. The cockpit, `runbook run`, headless and the rehearsal are adapters that say what
//! differs in a [`FacePolicy`] (origin, identity, whether an optional part that cannot start
//! stops the face or is shown, acting via the Lease, paging, the rehearsal's time scale); the
//! code path is the same. The sources' start (`engine::fleet`) and the stages between a source
//! and `state` (`engine::stages`) live here too. May import sources, state, pipeline, signals,
//! store, runbook, notify, actions, model and config.

pub mod fleet;
pub mod stages;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::model::incident::Origin;
use crate::runbook::executor::{Executor, ExecutorConfig};
use crate::runbook::guard::Guard;
use crate::runbook::{Mode, Runbook};
use crate::store::Store;

/// How often a long-running face prunes by `[store] retention`.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often the notification policy looks at the store for incidents to page on.
const POLICY_EVERY: Duration = Duration::from_secs(2);

/// A part of the engine that could not start, named with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A sink whose secret cannot be read (the error names the file or variable).
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// `[mlflow]`: a registry token that cannot be read, or a client that cannot be built.
    #[error("{0}")]
    ModelRegistry(String),
    /// `[airflow]`: a credential file that cannot be read, or a client that cannot be built.
    #[error("{0}")]
    Airflow(String),
    /// `[[notify.policy]]`: the paging thread could not start.
    #[error("the notification policy could not start: {0}")]
    Paging(#[source] std::io::Error),
}

/// The writer `airflow_clear` clears runs with (`[airflow]`), its credential read now; `None`
/// without an Airflow.
fn airflow_writer(
    cfg: &crate::config::Config,
) -> Result<Option<std::sync::Arc<crate::actions::AirflowWriter>>, String> {
    use crate::actions::AirflowCredential;
    use crate::config::{AirflowApiVersion, AirflowAuth};
    if !cfg.airflow.enabled() {
        return Ok(None);
    }
    let credential = match cfg.airflow.read_auth()? {
        AirflowAuth::None => AirflowCredential::None,
        AirflowAuth::Basic { username, password } => {
            AirflowCredential::Basic { username, password }
        }
        AirflowAuth::Bearer(t) => AirflowCredential::Bearer(t),
    };
    let v2 = match cfg.airflow.api_version {
        AirflowApiVersion::Auto => None,
        AirflowApiVersion::V1 => Some(false),
        AirflowApiVersion::V2 => Some(true),
    };
    Ok(Some(std::sync::Arc::new(
        crate::actions::AirflowWriter::new(
            &cfg.airflow.url,
            v2,
            credential,
            crate::sources::airflow::airflow_http(cfg)?,
        ),
    )))
}

/// What an optional part (notifications, the model registry, paging) that cannot start does to
/// the face: the one error policy, chosen per face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartFailure {
    /// The face does not start: no one watches a daemon's terminal, and a rehearsal checks
    /// exactly these parts.
    Fatal,
    /// The face starts without the part and says so on stderr: a person at the cockpit would
    /// rather see the fleet than nothing.
    Shown,
}

/// When the face pages by `[[notify.policy]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Never (one-shot runs and rehearsals).
    Never,
    /// Only with `[notify] cockpit = true`: two faces paging for one fleet would page twice.
    WhenCockpitAsks,
    /// Always while acting (headless: only the Lease's leader pages).
    WhileActing,
}

/// What differs between faces; everything else the engine does the same way.
#[derive(Debug, Clone)]
pub struct FacePolicy {
    pub origin: Origin,
    pub mode: Mode,
    pub read_only: bool,
    /// Who the actions and the Lease name; `None`: host/pid.
    pub identity: Option<String>,
    pub on_part_failure: PartFailure,
    pub paging: Paging,
    /// Whether the store is pruned by `[store] retention` while the face runs.
    pub keep_store_bounded: bool,
    /// Time runs this much faster (a rehearsal: 0.02): runbooks' `held_for` and the endpoints'
    /// burn windows shrink by it. 1.0 everywhere else.
    pub time_scale: f64,
    /// How long after a plan its target is validated again; `None`: `[runbooks]`'s.
    pub revalidate_after: Option<Duration>,
}

impl FacePolicy {
    fn base(origin: Origin, mode: Mode, read_only: bool, on_part_failure: PartFailure) -> Self {
        Self {
            origin,
            mode,
            read_only,
            identity: None,
            on_part_failure,
            paging: Paging::Never,
            keep_store_bounded: false,
            time_scale: 1.0,
            revalidate_after: None,
        }
    }

    /// The cockpit: shows what could not start and goes on; pages only when asked.
    pub fn cockpit(mode: Mode, read_only: bool) -> Self {
        Self {
            paging: Paging::WhenCockpitAsks,
            keep_store_bounded: true,
            ..Self::base(Origin::Tui, mode, read_only, PartFailure::Shown)
        }
    }

    /// `runbook run`: one run now, as the cockpit would start it.
    pub fn one_run(mode: Mode, read_only: bool) -> Self {
        Self::base(Origin::Cli, mode, read_only, PartFailure::Shown)
    }

    /// Headless: fails fast; acts and pages only while it holds the Lease.
    pub fn headless(mode: Mode, read_only: bool, identity: String) -> Self {
        Self {
            identity: Some(identity),
            paging: Paging::WhileActing,
            keep_store_bounded: true,
            ..Self::base(Origin::Headless, mode, read_only, PartFailure::Fatal)
        }
    }

    /// A rehearsal: fails when a sink or the registry cannot start (trying them is part of
    /// the rehearsal), with time compressed by `time_scale`.
    pub fn rehearsal(mode: Mode, time_scale: f64) -> Self {
        Self {
            identity: Some("rehearsal".into()),
            time_scale,
            revalidate_after: Some(Duration::from_millis(500)),
            ..Self::base(Origin::Cli, mode, false, PartFailure::Fatal)
        }
    }

    /// The endpoints' SLO burn rules at this face's time scale.
    pub fn burn_policy(&self) -> crate::signals::slo::BurnPolicy {
        let workbook = crate::signals::slo::BurnPolicy::sre_workbook();
        if self.time_scale == 1.0 {
            workbook
        } else {
            workbook.scaled(self.time_scale)
        }
    }

    /// An optional part's result under this policy: its value, or `None` shown on stderr as
    /// `fleetdeck: {what} are off: …`, or the error.
    fn optional<T>(
        &self,
        what: &str,
        part: Result<Option<T>, EngineError>,
    ) -> Result<Option<T>, EngineError> {
        match (part, self.on_part_failure) {
            (Ok(v), _) => Ok(v),
            (Err(e), PartFailure::Fatal) => Err(e),
            (Err(e), PartFailure::Shown) => {
                eprintln!("fleetdeck: {what} are off: {e}");
                Ok(None)
            }
        }
    }
}

/// What a face hands the engine: its store, its runbooks and the clusters it acts on.
pub struct EngineParts<'a> {
    pub store: Store,
    pub runbooks: Vec<Runbook>,
    pub targets: &'a [crate::sources::kube::ClusterTarget],
}

/// The parts every face acts and records with, made once by [`Engine::build`].
pub struct Engine {
    policy: FacePolicy,
    pub store: Store,
    pub guard: Arc<Guard>,
    pub executor: Executor,
    /// The clients that mutate, one per watched context (the executor holds the same).
    pub clients: HashMap<String, kube::Client>,
    _retention: Option<crate::store::RetentionTask>,
}

impl Engine {
    /// Makes the guard, the notifier, the model registry, the action clients and the executor
    /// (and its run pool) for `policy`'s face, and starts the store's retention. Must run
    /// inside the runtime: the action clients are built there.
    pub async fn build(
        cfg: &Config,
        policy: FacePolicy,
        parts: EngineParts<'_>,
    ) -> Result<Self, EngineError> {
        let EngineParts {
            store,
            runbooks,
            targets,
        } = parts;
        let retention = policy
            .keep_store_bounded
            .then(|| keep_store_bounded(cfg, &store, policy.origin))
            .flatten();
        let guard = Guard::new(&cfg.runbooks, policy.mode, policy.read_only).shared();
        let clients = fleet::action_clients(targets).await;
        let mut ecfg = ExecutorConfig::from_config(&cfg.runbooks, policy.mode, policy.origin);
        if let Some(identity) = &policy.identity {
            ecfg.identity = identity.clone();
        }
        ecfg.held_for_scale = policy.time_scale;
        if let Some(after) = policy.revalidate_after {
            ecfg.revalidate_after = after;
        }
        ecfg.notifier = policy.optional(
            "notifications",
            crate::notify::Notifier::start(&cfg.notify, Some(store.clone()), policy.origin)
                .map_err(EngineError::from),
        )?;
        ecfg.registry = policy.optional(
            "model rollbacks",
            crate::runbook::executor::model_registry(&cfg.mlflow, || {
                crate::sources::mlflow::registry_http(cfg)
            })
            .map_err(EngineError::ModelRegistry),
        )?;
        ecfg.airflow = policy.optional(
            "Airflow clears",
            airflow_writer(cfg).map_err(EngineError::Airflow),
        )?;
        let executor = Executor::new(
            runbooks,
            guard.clone(),
            store.clone(),
            clients.clone(),
            ecfg,
        );
        Ok(Self {
            policy,
            store,
            guard,
            executor,
            clients,
            _retention: retention,
        })
    }

    pub fn policy(&self) -> &FacePolicy {
        &self.policy
    }

    /// Starts the sources and `state` on `targets`, with this face's burn windows.
    pub fn start_fleet(
        &self,
        cfg: &Config,
        targets: Vec<crate::sources::kube::ClusterTarget>,
        prometheus: Option<crate::sources::prometheus::PrometheusClient>,
    ) -> fleet::Running {
        fleet::start_with(cfg, targets, prometheus, self.policy.burn_policy())
    }

    /// The pipeline over `running`'s snapshots, recording in the store and handing every
    /// evaluation to the executor; runs start only while `acting` is set (`None`: always).
    pub fn pipeline(
        &self,
        cfg: &Config,
        running: &fleet::Running,
        acting: Option<Arc<AtomicBool>>,
    ) -> crate::pipeline::Pipeline {
        crate::pipeline::Pipeline::new(running.pipeline_config(cfg, self.policy.origin))
            .with_store(self.store.clone())
            .with_executor(self.executor.clone(), acting)
    }

    /// Pages by `[[notify.policy]]` as the face's [`Paging`] says, while `acting` holds
    /// (`None`: always); `None` when this face does not page or nothing is configured.
    pub fn start_paging(
        &self,
        cfg: &Config,
        acting: Option<Arc<AtomicBool>>,
    ) -> Result<Option<crate::notify::policy::PolicyTask>, EngineError> {
        let pages = match self.policy.paging {
            Paging::Never => false,
            Paging::WhenCockpitAsks => cfg.notify.cockpit,
            Paging::WhileActing => true,
        };
        let Some(notifier) = self.executor.notifier() else {
            return Ok(None);
        };
        let acting: Arc<dyn Fn() -> bool + Send + Sync> = match acting {
            Some(flag) => Arc::new(move || flag.load(Ordering::SeqCst)),
            None => Arc::new(|| true),
        };
        if matches!(self.policy.paging, Paging::WhileActing) {
            // The leader delivers what the outbox owes, also what an earlier process (or
            // leader) queued and could not send.
            notifier.deliver_while(acting.clone());
        }
        if !pages || cfg.notify.policy.is_empty() {
            return Ok(None);
        }
        let task = crate::notify::policy::spawn(
            notifier,
            cfg.notify.policy.clone(),
            self.store.clone(),
            acting,
            POLICY_EVERY,
        )
        .map_err(EngineError::Paging);
        match (task, self.policy.on_part_failure) {
            (Ok(t), _) => Ok(Some(t)),
            (Err(e), PartFailure::Fatal) => Err(e),
            // The cockpit logs it (stderr belongs to the terminal by now).
            (Err(e), PartFailure::Shown) => {
                tracing::warn!(error = %e, "the notification policy could not start");
                Ok(None)
            }
        }
    }
}

/// Prunes the store by `[store] retention` now and every hour while the returned task lives;
/// nothing when no retention is set. In every face a retention that cannot start is logged and
/// the store kept unpruned: the store itself still works.
fn keep_store_bounded(
    cfg: &Config,
    store: &Store,
    origin: Origin,
) -> Option<crate::store::RetentionTask> {
    let retention = cfg.store.retention()?;
    match store.spawn_retention(retention, RETENTION_EVERY, origin) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the store's retention; the store is not pruned");
            None
        }
    }
}

#[cfg(test)]
mod tests;
