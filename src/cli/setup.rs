//! What several command families build the same way from the global flags and the config:
//! cluster targets, the store, the global mode, the runbooks and the runbook executor. Flags
//! always win over the config file.

use std::path::PathBuf;

use super::Cli;
use crate::config::Config;

/// Which kubeconfig and contexts: flags win over the config file.
pub(super) fn kube_targets(
    cli: &Cli,
    cfg: &Config,
) -> anyhow::Result<Vec<crate::sources::kube::ClusterTarget>> {
    let path = cli.cluster.kubeconfig.clone().or_else(|| {
        let p = cfg.kubernetes.kubeconfig.trim();
        (!p.is_empty()).then(|| PathBuf::from(p))
    });
    let contexts = if cli.cluster.contexts.is_empty() {
        cfg.kubernetes.contexts.clone()
    } else {
        cli.cluster.contexts.clone()
    };
    Ok(crate::sources::kube::targets(path.as_deref(), &contexts)?)
}

/// Opens the RCA store named by `--store`, `[store] path` or the XDG default.
pub(super) fn open_store(cli: &Cli, cfg: &Config) -> anyhow::Result<crate::store::Store> {
    let path = cfg.store.resolve(cli.store.as_deref());
    Ok(crate::store::Store::open(&path)?)
}

/// How often a long-running face prunes by `[store] retention`.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes the store by `[store] retention` now and every hour while the returned task lives
/// (the cockpit and headless); nothing when no retention is set.
pub(super) fn keep_store_bounded(
    cfg: &Config,
    store: &crate::store::Store,
    origin: crate::model::incident::Origin,
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

/// The global mode: `--mode`, else `[runbooks] mode`.
pub(super) fn global_mode(cli: &Cli, cfg: &Config) -> crate::runbook::Mode {
    cli.runbook
        .mode
        .as_deref()
        .and_then(crate::runbook::Mode::parse)
        .unwrap_or(cfg.runbooks.mode)
}

/// `--runbooks`, else `[runbooks] dir` (which falls back to the built-in runbooks when it does
/// not exist).
/// The runbook directory `--runbooks` or `[runbooks] dir` names; `None`: the built-in ones.
pub(super) fn runbook_dir(cli: &Cli, cfg: &Config) -> Option<PathBuf> {
    cli.runbook.runbooks.clone().or_else(|| {
        let dir = cfg.runbooks.dir.trim();
        (!dir.is_empty()).then(|| PathBuf::from(dir))
    })
}

/// Loads the runbooks (`--runbooks`, `[runbooks] dir`, else the built-in ones); a broken file
/// is reported on stderr and the rest run.
pub(super) fn load_runbooks(cli: &Cli, cfg: &Config) -> Vec<crate::runbook::Runbook> {
    let dir = runbook_dir(cli, cfg);
    let (good, bad, from) = crate::runbook::shipped::load_dir_or_shipped(dir.as_deref());
    for e in &bad {
        eprintln!("fleetdeck: runbook not loaded: {e}");
    }
    tracing::info!(runbooks = good.len(), broken = bad.len(), %from, "runbooks loaded");
    good
}

/// The executor for the cockpit and `runbook run`: must run inside the runtime, because the
/// action clients are built there.
pub(super) async fn start_executor(
    cli: &Cli,
    cfg: &Config,
    targets: &[crate::sources::kube::ClusterTarget],
    store: &crate::store::Store,
    runbooks: Vec<crate::runbook::Runbook>,
    origin: crate::model::incident::Origin,
) -> crate::runbook::executor::Executor {
    let mode = global_mode(cli, cfg);
    let guard = crate::runbook::guard::Guard::new(&cfg.runbooks, mode, cli.read_only.on).shared();
    let clients = super::wiring::action_clients(targets).await;
    let mut ecfg =
        crate::runbook::executor::ExecutorConfig::from_config(&cfg.runbooks, mode, origin);
    ecfg.notifier = match crate::notify::Notifier::start(&cfg.notify, Some(store.clone()), origin) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("fleetdeck: notifications are off: {e}");
            None
        }
    };
    ecfg.registry = match crate::runbook::executor::model_registry(&cfg.mlflow, || {
        crate::sources::mlflow::registry_http(cfg)
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetdeck: model rollbacks are off: {e}");
            None
        }
    };
    crate::runbook::executor::Executor::new(runbooks, guard, store.clone(), clients, ecfg)
}

/// With `[notify] cockpit = true`, the cockpit pages by `[[notify.policy]]` too (headless's
/// leader always does; two faces paging for one fleet would page twice, hence off by default).
pub(super) fn cockpit_paging(
    cfg: &Config,
    executor: &crate::runbook::executor::Executor,
    store: &crate::store::Store,
) -> Option<crate::notify::policy::PolicyTask> {
    if !cfg.notify.cockpit || cfg.notify.policy.is_empty() {
        return None;
    }
    let notifier = executor.notifier()?;
    crate::notify::policy::spawn(
        notifier,
        cfg.notify.policy.clone(),
        store.clone(),
        std::sync::Arc::new(|| true),
        std::time::Duration::from_secs(2),
    )
    .map_err(|e| tracing::warn!(error = %e, "the notification policy could not start"))
    .ok()
}
