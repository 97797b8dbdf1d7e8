//! `fleetdeck init` and `fleetdeck config`: write the commented default config, and check the
//! config file by printing the settings in force.

use anyhow::Context;

use super::Cli;
use crate::config::{self, Config};

/// Writes the default config to `--config`, else the XDG path.
pub(super) fn init(cli: &Cli, force: bool) -> anyhow::Result<()> {
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => config::default_path()?,
    };
    config::init(&path, force)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The keymap is checked too: its errors are only found when it is built from the config.
pub(super) fn check(cli: &Cli) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    crate::tui::keymap::from_config(&cfg)?;
    print!(
        "{}",
        toml::to_string(&cfg).context("cannot print the settings")?
    );
    Ok(())
}
