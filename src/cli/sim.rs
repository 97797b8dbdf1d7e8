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
    let mut opts = args.options(&cfg.sim);
    opts.validate()?;
    // --config-out without --users: a team of three (viewer, responder, approver) beside it,
    // and the daemon's config identifies callers through the sim's TokenReviews.
    let team = match (&args.config_out, &opts.users) {
        (Some(config), None) => {
            let dir = match config.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let users = std::path::absolute(dir.join("fleetdeck-users.toml"))
                .context("cannot make the users file's path absolute")?;
            sim::auth::SimUsers::write_team(&users)?;
            opts.users = Some(users.clone());
            Some(users)
        }
        _ => None,
    };
    let rt = super::runtime()?;
    rt.block_on(async {
        let mut running = sim::start(&opts).await?;
        if let Some(path) = &args.config_out {
            let mut sources = super::wiring::SimSources::from_description(&running.description);
            // The config's paths resolve against the config's own directory; the kubeconfig
            // was named relative to this one, so it is written absolute and works from anywhere.
            if !sources.kubeconfig.is_empty() {
                sources.kubeconfig = std::path::absolute(&sources.kubeconfig)
                    .with_context(|| {
                        format!(
                            "cannot make the kubeconfig path {} absolute",
                            sources.kubeconfig
                        )
                    })?
                    .to_string_lossy()
                    .into_owned();
            }
            let mut text = sources.config_toml(super::wiring::sim_budget(opts.nodes));
            if let Some(users) = &team {
                text.push_str(&format!(
                    "\n[headless]\n# Callers are the sim's users ({}): TokenReview and SubjectAccessReview\n# on the sim's cluster; auth = \"tokens\" reads the same file instead.\nauth = \"kubernetes\"\nusers_file = {:?}\n",
                    users.display(),
                    users.display().to_string()
                ));
                running.description["users"] = serde_json::json!(users);
            }
            write_config(path, &text)?;
            running.description["config"] = serde_json::json!(path);
        }
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

/// Writes the sim's fleetdeck.toml whole (a temp file renamed into place), so a reader never
/// sees half of it.
fn write_config(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| {
        format!(
            "cannot write the sim's config to {} (--config-out): give a path in a writable directory",
            path.display()
        )
    })
}
