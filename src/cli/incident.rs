//! `fleetdeck incident …` and `fleetdeck audit verify`: read and annotate the RCA store from
//! the terminal, and check its audit chain.

use std::io::Write;

use anyhow::Context;

use super::setup::open_store;
use super::{Cli, EXIT_AUDIT_FAILED, ExportFormat, IncidentCommand, OutputFormat};
use crate::config::Config;

fn incident_id(s: &str) -> anyhow::Result<u64> {
    crate::model::incident::parse_incident_id(s).with_context(|| {
        format!(
            "{s:?} is not an incident id; use INC-42 or 42 (`fleetdeck incident list` shows them)"
        )
    })
}

/// `--since 2h` (ago) or `--since 2026-11-28T09:00:00Z`.
pub(super) fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = humantime::parse_duration(s).with_context(|| {
        format!("--since {s:?} is neither a duration (2h, 7d) nor an RFC 3339 time (2026-11-28T09:00:00Z)")
    })?;
    Ok(chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()))
}

pub(super) fn incident(cli: &Cli, cmd: &IncidentCommand) -> anyhow::Result<()> {
    use crate::model::incident::{Actor, EntryKind, NewEntry, Origin};
    use crate::store::{IncidentFilter, Milestone, MilestoneOutcome};
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let store = open_store(cli, &cfg)?;
    let now = chrono::Utc::now();
    let mut out = std::io::stdout().lock();
    match cmd {
        IncidentCommand::List {
            open,
            since,
            output,
        } => {
            let filter = IncidentFilter {
                open_only: *open,
                since: since.as_deref().map(parse_since).transpose()?,
            };
            let incidents = store.incidents(&filter)?;
            // An empty default store after `fleetdeck demo` is not "nothing happened": the
            // demo wrote to its own store, so say where it is.
            let demo = crate::config::default_demo_store_path();
            if incidents.is_empty()
                && cli.store.is_none()
                && !store.is_shared()
                && cfg.store.resolve(None) == crate::config::default_store_path()
                && demo.is_dir()
            {
                eprintln!(
                    "fleetdeck: the default store at {} has no incidents; `fleetdeck demo` keeps its own store at {}: `fleetdeck incident list --store {}` shows the demo's",
                    store.path().display(),
                    demo.display(),
                    demo.display()
                );
            }
            match output {
                OutputFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&incidents)?)?
                }
                OutputFormat::Table => {
                    write!(out, "{}", super::render::incident::list(&incidents, now))?
                }
            }
        }
        IncidentCommand::Show { id, output } => {
            let id = incident_id(id)?;
            let inc = store.require_incident(id)?;
            let timeline = store.timeline(id)?;
            match output {
                OutputFormat::Json => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"incident": inc, "timeline": timeline})
                    )?
                )?,
                OutputFormat::Table => write!(
                    out,
                    "{}",
                    super::render::incident::show(&inc, &timeline, now)
                )?,
            }
        }
        IncidentCommand::Note { id, text } => {
            let id = incident_id(id)?;
            let inc = store.require_incident(id)?;
            let entry = store.append(
                NewEntry::new(
                    EntryKind::Note,
                    Actor::local_user(),
                    Origin::Cli,
                    text.join(" "),
                )
                .on_incident(id),
            )?;
            writeln!(out, "note #{} added to {}", entry.seq, inc.label())?;
        }
        IncidentCommand::Ack { id } | IncidentCommand::Resolve { id } => {
            let id = incident_id(id)?;
            store.require_incident(id)?;
            let (milestone, word) = match cmd {
                IncidentCommand::Ack { .. } => (Milestone::Acknowledged, "acknowledged"),
                _ => (Milestone::Resolved, "resolved"),
            };
            let label = crate::model::incident::incident_label(id);
            match store.milestone(id, milestone, Actor::local_user(), Origin::Cli)? {
                MilestoneOutcome::Reached(e) => writeln!(out, "{label} {word} (#{})", e.seq)?,
                MilestoneOutcome::Already(status) => writeln!(
                    out,
                    "{label} is already {}: nothing recorded",
                    status.name()
                )?,
            }
        }
        IncidentCommand::Export {
            id,
            format,
            out: file,
        } => {
            let id = incident_id(id)?;
            let inc = store.require_incident(id)?;
            let timeline = store.timeline(id)?;
            let text = match format {
                // The export folds line breaks inside fields; the rest is made visible here.
                ExportFormat::Md => super::render::safe::visible_lines(
                    &crate::store::export::markdown(&inc, &timeline, now),
                )
                .into_owned(),
                ExportFormat::Json => {
                    let mut s =
                        serde_json::to_string_pretty(&crate::store::export::json(&inc, &timeline))?;
                    s.push('\n');
                    s
                }
            };
            match file {
                Some(path) => {
                    std::fs::write(path, text).with_context(|| {
                        format!("cannot write the export to {}", path.display())
                    })?;
                    writeln!(out, "{} exported to {}", inc.label(), path.display())?;
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
    }
    Ok(())
}

pub(super) fn audit_verify(
    cli: &Cli,
    output: OutputFormat,
) -> anyhow::Result<std::process::ExitCode> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let store = open_store(cli, &cfg)?;
    let report = store.verify()?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!("{}", super::render::incident::audit(&report, store.path())),
    }
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(EXIT_AUDIT_FAILED)
    })
}
