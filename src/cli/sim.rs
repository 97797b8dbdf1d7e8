//! `fleetdeck sim`: serves a simulated fleet on loopback until SIGINT or SIGTERM, after
//! printing its description (addresses, kubeconfig) for the caller to read.

use std::io::Write;

use anyhow::Context;

use super::{Cli, SimArgs};
use crate::config::Config;
use crate::sim;

pub(super) fn serve(cli: &Cli, args: &SimArgs) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    crate::telemetry::init(&cfg.log.level);
    let opts = args.options(&cfg.sim);
    opts.validate()?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let running = sim::start(&opts).await?;
        let signals = sim::ShutdownSignals::install()
            .context("cannot install the SIGINT/SIGTERM handlers")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", running.description)?;
        out.flush()?;
        // Other threads may write to stdout while the sim serves: the lock is not held across
        // the wait.
        drop(out);
        signals.wait().await;
        tracing::info!("shutting down");
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}
