//! `fleetdeck runbook …`: list and check runbook files, rehearse one against the simulated
//! fleet (`test`), run one now (`run`), and approve or deny a plan on a headless daemon
//! (`remote`).

mod rehearsal;
mod remote;
mod run;

use crate::cli::render::safe::visible;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::setup::{global_mode, runbook_dir};
use super::{Cli, OutputFormat, RunbookCommand};
use crate::config::Config;

pub(super) fn runbook(cli: &Cli, cmd: &RunbookCommand) -> anyhow::Result<ExitCode> {
    // Every subcommand loads the config first, so a broken config file fails even those that
    // do not read it.
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    match cmd {
        RunbookCommand::List { .. } => Ok(list(cli, &cfg)),
        RunbookCommand::Approve(d) => remote::decide(cli, &cfg, d, remote::Verdict::Approve),
        RunbookCommand::Deny(d) => remote::decide(cli, &cfg, d, remote::Verdict::Deny),
        RunbookCommand::Check { files } => Ok(check(files)),
        RunbookCommand::Test {
            name,
            scenario,
            timeout,
            output,
            ..
        } => test(cli, &cfg, name, scenario, (*timeout).into(), *output),
        RunbookCommand::Run {
            name,
            target,
            cluster,
            output,
            ..
        } => run::run(cli, &cfg, name, target, cluster.as_deref(), *output),
    }
}

/// The runbook called `name` among those loaded; broken files are skipped here (`list` shows
/// them).
fn find(cli: &Cli, cfg: &Config, name: &str) -> anyhow::Result<crate::runbook::Runbook> {
    let dir = runbook_dir(cli, cfg);
    let (good, _, from) = crate::runbook::shipped::load_dir_or_shipped(dir.as_deref());
    let known: Vec<String> = good.iter().map(|r| r.meta.name.clone()).collect();
    good.into_iter()
        .find(|r| r.meta.name == name)
        .with_context(|| format!("no runbook {name:?} in {from}; known: {}", known.join(", ")))
}

fn list(cli: &Cli, cfg: &Config) -> ExitCode {
    let dir = runbook_dir(cli, cfg);
    let (good, bad, from) = crate::runbook::shipped::load_dir_or_shipped(dir.as_deref());
    let mode = global_mode(cli, cfg);
    println!(
        "runbooks from {from} (global mode {}{})",
        mode.name(),
        if cli.read_only.on || cfg.runbooks.read_only {
            ", read-only"
        } else {
            ""
        }
    );
    println!(
        "{:<30} {:<28} {:<9} {:<9} DESCRIPTION",
        "NAME", "TRIGGER", "COOLDOWN", "MODE"
    );
    for r in &good {
        let m = &r.meta;
        let trigger = match &m.trigger.held_for {
            Some(h) => format!("{} for {h}", m.trigger.signal),
            None => m.trigger.signal.clone(),
        };
        println!(
            "{:<30} {:<28} {:<9} {:<9} {}",
            visible(&m.name),
            visible(&trigger),
            humantime::format_duration(m.cooldown).to_string(),
            m.effective_mode(mode).name(),
            visible(&m.description)
        );
    }
    for e in &bad {
        println!("BROKEN {}", visible(&e.to_string()));
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every file is checked, not just up to the first bad one, so one run reports them all. A file
/// compiles and every call in it resolves to a host function, one of its own or a Rhai
/// built-in with that many arguments, or each call that does not is named at its file:line.
fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        let problems = match crate::runbook::Runbook::load(f) {
            Ok(r) => {
                let unresolved = r.unresolved_calls();
                if unresolved.is_empty() {
                    println!(
                        "{}: ok ({}, trigger {})",
                        f.display(),
                        r.meta.name,
                        r.meta.trigger.signal
                    );
                }
                unresolved
            }
            Err(e) => vec![e],
        };
        for e in &problems {
            eprintln!("{e}");
        }
        ok &= problems.is_empty();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A rehearsal defaults to auto mode rather than `[runbooks] mode`: it acts only on the sim,
/// and what it is for is seeing the runbook act.
fn test(
    cli: &Cli,
    cfg: &Config,
    name: &str,
    scenario: &str,
    timeout: std::time::Duration,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let rb = find(cli, cfg, name)?;
    let mode = cli
        .runbook
        .mode
        .as_deref()
        .and_then(crate::runbook::Mode::parse)
        .unwrap_or(crate::runbook::Mode::Auto);
    let rt = super::runtime()?;
    let bar = super::progress::spinner(format!("rehearsing {name} on {scenario}"));
    let report = rt.block_on(rehearsal::rehearse(
        cfg.clone(),
        rb,
        scenario,
        mode,
        timeout,
        &|message| bar.set_message(message),
    ));
    bar.finish_and_clear();
    let report = report?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!(
            "{}",
            crate::cli::render::safe::visible_lines(&rehearsal::render(&report))
        ),
    }
    Ok(if report.remediated {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The name a person's decision is recorded under.
fn local_user_name() -> String {
    match crate::model::incident::Actor::local_user() {
        crate::model::incident::Actor::User(u) => u,
        _ => "unknown".into(),
    }
}
