//! What several command families read the same way from the global flags and the config:
//! cluster targets, the store, the global mode and the runbooks. Flags always win over the
//! config file. The executor, guard, notifier and retention are the engine's
//! ([`crate::engine::Engine::build`]).

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

/// Whether the kubeconfig the clusters are read from (`--kubeconfig`, `[kubernetes]
/// kubeconfig`, else `$KUBECONFIG`) is one `fleetdeck sim` wrote: the daemon then tells the
/// cockpits attached to it that its fleet is simulated.
pub(super) fn simulated_fleet(cli: &Cli, cfg: &Config) -> bool {
    let path = cli
        .cluster
        .kubeconfig
        .clone()
        .or_else(|| {
            let p = cfg.kubernetes.kubeconfig.trim();
            (!p.is_empty()).then(|| PathBuf::from(p))
        })
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
    path.and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|text| crate::sim::wrote_kubeconfig(&text))
}

/// Opens the RCA store named by `--store` (a directory or a `postgres://` URL), `[store] url`,
/// `[store] path` or the XDG default.
pub(super) fn open_store(cli: &Cli, cfg: &Config) -> anyhow::Result<crate::store::Store> {
    let location = match cfg
        .store
        .target(cli.store.as_deref())
        .map_err(anyhow::Error::msg)?
    {
        crate::config::StoreTarget::Dir(path) => crate::store::StoreLocation::Dir(path),
        crate::config::StoreTarget::Postgres {
            url,
            password,
            ca_file,
        } => crate::store::StoreLocation::Postgres(crate::store::PgOptions {
            url,
            password,
            ca_file,
        }),
    };
    Ok(crate::store::Store::open_location(&location)?)
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
