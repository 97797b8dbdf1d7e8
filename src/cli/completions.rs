//! `fleetdeck completions` and `fleetdeck man`: shell completion through clap's dynamic
//! engine (the shell asks the binary, so kubeconfig contexts complete from the kubeconfig of
//! the moment) and the manual pages from the same clap definitions.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

use super::{Cli, CompletionShell};

/// The environment variable the registration scripts set when they ask for completions.
const COMPLETE_VAR: &str = "FLEETDECK_COMPLETE";

/// Answers a completion request from the shell and exits, when this run is one (the
/// registration script sets `FLEETDECK_COMPLETE`); otherwise returns at once.
pub(super) fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// Writes the registration script for `shell` on stdout: it calls this binary (by its path)
/// for every completion.
pub(super) fn script(shell: CompletionShell) -> anyhow::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        CompletionShell::Bash => &Bash,
        CompletionShell::Zsh => &Zsh,
        CompletionShell::Fish => &Fish,
    };
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "fleetdeck".to_string());
    let mut out = std::io::stdout().lock();
    completer
        .write_registration(COMPLETE_VAR, "fleetdeck", "fleetdeck", &exe, &mut out)
        .context("cannot write the completion script")?;
    out.flush()?;
    Ok(())
}

/// `fleetdeck man`: the top page on stdout, or every page into `dir`.
pub(super) fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot write the manual page")?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Candidates for `--context`: the contexts of `$KUBECONFIG` (every file it lists), else of
/// `~/.kube/config`. A kubeconfig that cannot be read offers nothing: completion must never
/// print an error into the shell's line.
pub(super) fn contexts(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    kubeconfig_contexts()
        .into_iter()
        .filter(|(name, _)| name.starts_with(current))
        .map(|(name, cluster)| CompletionCandidate::new(name).help(Some(cluster.into())))
        .collect()
}

/// (context, cluster) pairs, in file order, each context once.
fn kubeconfig_contexts() -> Vec<(String, String)> {
    let files: Vec<std::path::PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(v) if !v.is_empty() => std::env::split_paths(&v).collect(),
        _ => dirs::home_dir()
            .map(|h| h.join(".kube").join("config"))
            .into_iter()
            .collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for file in files {
        let Ok(config) = kube::config::Kubeconfig::read_from(&file) else {
            continue;
        };
        for c in config.contexts {
            if seen.insert(c.name.clone()) {
                let cluster = c.context.map(|x| x.cluster).unwrap_or_default();
                out.push((c.name, cluster));
            }
        }
    }
    out
}
