//! `fleetdeck headless`: the daemon. Logs are JSON on stdout and a broken runbook is logged,
//! not printed, because no one watches a terminal.

use super::setup::{kube_targets, open_store, runbook_dir, simulated_fleet};
use super::{Cli, HeadlessArgs};
use crate::config::Config;

pub(super) fn headless(cli: &Cli, args: &HeadlessArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load_or_default(cli.config.as_deref())?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        cfg.headless.tls_cert = cert.display().to_string();
        cfg.headless.tls_key = key.display().to_string();
    }
    crate::telemetry::init_json(&cfg.log.level);
    let store = open_store(cli, &cfg)?;
    let targets = kube_targets(cli, &cfg)?;
    let dir = runbook_dir(cli, &cfg);
    let (runbooks, broken, from) = crate::runbook::shipped::load_dir_or_shipped(dir.as_deref());
    for e in &broken {
        tracing::error!(error = %e, "runbook not loaded; the others run");
    }
    tracing::info!(runbooks = runbooks.len(), %from, "runbooks loaded");
    let opts = crate::headless::daemon::HeadlessOptions {
        listen: args.listen,
        token_file: args.token_file.clone(),
        mode: cli
            .runbook
            .mode
            .as_deref()
            .and_then(crate::runbook::Mode::parse),
        read_only: cli.read_only.on,
        simulated: simulated_fleet(cli, &cfg),
    };
    let prometheus = super::wiring::prometheus_client(&cfg)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        // Headless fails fast: a sink or a registry token that cannot be read stops the start.
        let policy = crate::engine::FacePolicy::headless(
            opts.mode.unwrap_or(cfg.runbooks.mode),
            opts.read_only,
            crate::headless::daemon::identity(),
        );
        let engine = crate::engine::Engine::build(
            &cfg,
            policy,
            crate::engine::EngineParts {
                store,
                runbooks,
                targets: &targets,
            },
        )
        .await?;
        let first_context = targets.first().map(|t| t.context.clone());
        let running = engine.start_fleet(&cfg, targets, prometheus);
        let fleet = crate::headless::daemon::HeadlessFleet {
            first_context,
            running,
        };
        crate::headless::daemon::run(cfg, opts, fleet, engine).await
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
