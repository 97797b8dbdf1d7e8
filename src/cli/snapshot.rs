//! `fleetdeck snapshot`, and the one-shot gathering of the fleet model that `cost` and
//! `runbook run` share with it: connect, wait until synced or out of time, stop the sources.

use std::io::Write;

use anyhow::Context;

use super::setup::kube_targets;
use super::{Cli, EXIT_NOT_SYNCED, OutputFormat, SnapshotArgs};
use crate::config::Config;

pub(super) fn snapshot(cli: &Cli, args: &SnapshotArgs) -> anyhow::Result<std::process::ExitCode> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    crate::telemetry::init("warn");
    let wait: std::time::Duration = args.wait_synced.into();
    let mut snap = gather_snapshot(cli, &cfg, wait)?;
    let signals = crate::pipeline::Pipeline::detect_once(&cfg.signals, &snap, chrono::Utc::now());
    std::sync::Arc::make_mut(&mut snap).signals = signals;
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, snap.as_ref())
                .context("cannot write the snapshot")?;
            writeln!(out)?;
        }
        OutputFormat::Table => write!(out, "{}", super::render::snapshot::render(&snap))?,
    }
    out.flush()?;
    let unsynced: Vec<String> = snap
        .clusters
        .iter()
        .filter(|c| !c.synced())
        .map(|c| {
            let why: Vec<String> = c
                .sync
                .iter()
                .filter(|s| !s.state.is_settled())
                .map(|s| format!("{}: {}", s.resource, s.state.describe()))
                .collect();
            let why = if why.is_empty() {
                "no response yet".to_string()
            } else {
                why.join("; ")
            };
            format!("{} ({why})", c.name)
        })
        .collect();
    if unsynced.is_empty() {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        eprintln!(
            "fleetdeck: not synced within {}: {}",
            args.wait_synced,
            unsynced.join(", ")
        );
        Ok(std::process::ExitCode::from(EXIT_NOT_SYNCED))
    }
}

/// Whether every endpoint that names a registered model has the registry's answer (or error).
fn registry_read(cfg: &Config, s: &crate::model::Snapshot) -> bool {
    !cfg.mlflow.enabled()
        || cfg.endpoints.iter().all(|e| {
            match crate::sources::mlflow::registry_ref(e, s, &cfg.mlflow.alias) {
                None => true,
                Some((model, alias, _)) => s
                    .model_of(&e.name)
                    .is_some_and(|v| v.model == model && v.alias == alias),
            }
        })
}

/// Connects to the configured clusters and waits until they sync (or `wait` runs out).
pub(super) fn gather_snapshot(
    cli: &Cli,
    cfg: &Config,
    wait: std::time::Duration,
) -> anyhow::Result<std::sync::Arc<crate::model::Snapshot>> {
    let targets = kube_targets(cli, cfg)?;
    let prometheus = super::wiring::prometheus_client(cfg)?;
    let rt = super::runtime()?;
    let snap = rt.block_on(async {
        let running = super::wiring::start(cfg, targets, prometheus);
        let (gpu_sources, cost_source) = (running.gpu_sources, running.cost_source);
        let mut snaps = running.snapshots;
        let deadline = tokio::time::Instant::now() + wait;
        let bar = super::progress::spinner("connecting");
        loop {
            let ready = {
                let s = snaps.borrow();
                bar.set_message(super::progress::sync_line(&s, gpu_sources, cost_source));
                s.clusters.iter().all(|c| c.synced())
                    && s.endpoints.iter().all(|e| e.probe.is_some())
                    && s.gpu_sources.len() >= gpu_sources
                    && (!cost_source || s.cost_source.is_some())
                    && registry_read(cfg, &s)
            };
            if ready {
                break;
            }
            tokio::select! {
                changed = snaps.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        bar.finish_and_clear();
        snaps.borrow().clone()
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(snap)
}
