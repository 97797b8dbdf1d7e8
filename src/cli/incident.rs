//! `fleetdeck incident …` and `fleetdeck audit verify`: read and annotate the RCA store from
//! the terminal, and check its audit chain; with `--attach URL`, the daemon's store through
//! its API (`remote`), printed the same way.

use std::io::Write;

use anyhow::Context;

use super::remote::Remote;
use super::setup::open_store;
use super::{
    AttachFlags, Cli, Command, EXIT_AUDIT_FAILED, ExportFormat, IncidentCommand, OutputFormat,
};
use crate::config::Config;
use crate::model::incident::{Entry, Incident};

/// The `--attach`/`--token-file` flags of the command family being run.
pub(super) fn attach_flags(cli: &Cli) -> AttachFlags {
    match &cli.command {
        Some(
            Command::Incident { attach, .. }
            | Command::Audit { attach, .. }
            | Command::Store { attach, .. },
        ) => attach.clone(),
        _ => AttachFlags::default(),
    }
}

/// An incident and its timeline, from the store or the daemon.
fn incident_with_timeline(remote: &Remote, id: u64) -> anyhow::Result<(Incident, Vec<Entry>)> {
    let v = remote.get(&format!("/api/v1/incidents/{id}"))?;
    Ok((remote.field(&v, "incident")?, remote.field(&v, "timeline")?))
}

/// `incident …` on the daemon `remote`: the same output as on a local store.
fn remote_incident(remote: &Remote, cmd: &IncidentCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let mut out = std::io::stdout().lock();
    match cmd {
        IncidentCommand::List {
            open,
            since,
            output,
        } => {
            let mut path = format!("/api/v1/incidents?open={open}");
            if let Some(t) = since.as_deref().map(parse_since).transpose()? {
                path.push_str(&format!(
                    "&since={}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            let v = remote.get(&path)?;
            let incidents: Vec<Incident> = remote.field(&v, "incidents")?;
            write_list(&mut out, *output, &incidents, now)?;
        }
        IncidentCommand::Show { id, output } => {
            let (inc, timeline) = incident_with_timeline(remote, incident_id(id)?)?;
            write_show(&mut out, *output, &inc, &timeline, now)?;
        }
        IncidentCommand::Note { id, text } => {
            let id = incident_id(id)?;
            let v = remote.post(
                &format!("/api/v1/incidents/{id}/notes"),
                &serde_json::json!({ "text": text.join(" ") }),
            )?;
            let entry: Entry = remote.field(&v, "entry")?;
            writeln!(
                out,
                "note #{} added to {}",
                entry.seq,
                crate::model::incident::incident_label(id)
            )?;
        }
        IncidentCommand::Ack { id } | IncidentCommand::Resolve { id } => {
            let id = incident_id(id)?;
            let (verb, word) = match cmd {
                IncidentCommand::Ack { .. } => ("ack", "acknowledged"),
                _ => ("resolve", "resolved"),
            };
            let label = crate::model::incident::incident_label(id);
            let v = remote.post(
                &format!("/api/v1/incidents/{id}/{verb}"),
                &serde_json::json!({}),
            )?;
            match v["already"].as_str() {
                Some(status) => writeln!(out, "{label} is already {status}: nothing recorded")?,
                None => writeln!(out, "{label} {word} (#{})", v["seq"].as_u64().unwrap_or(0))?,
            }
        }
        IncidentCommand::Export {
            id,
            format,
            out: file,
        } => {
            let (inc, timeline) = incident_with_timeline(remote, incident_id(id)?)?;
            write_export(&mut out, &inc, &timeline, *format, file.as_deref(), now)?;
        }
    }
    Ok(())
}

/// A postmortem of `inc` as `format`, to `file` or `out`.
fn write_export(
    out: &mut impl Write,
    inc: &Incident,
    timeline: &[Entry],
    format: ExportFormat,
    file: Option<&std::path::Path>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let text = match format {
        // The export folds line breaks inside fields; the rest is made visible here.
        ExportFormat::Md => {
            super::render::safe::visible_lines(&crate::store::export::markdown(inc, timeline, now))
                .into_owned()
        }
        ExportFormat::Json => {
            let mut s = serde_json::to_string_pretty(&crate::store::export::json(inc, timeline))?;
            s.push('\n');
            s
        }
    };
    match file {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the export to {}", path.display()))?;
            writeln!(out, "{} exported to {}", inc.label(), path.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

/// `incident list`'s output, the same for a local store and a daemon's.
fn write_list(
    out: &mut impl std::io::Write,
    output: OutputFormat,
    incidents: &[Incident],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(incidents)?)?,
        OutputFormat::Table => write!(out, "{}", super::render::incident::list(incidents, now))?,
    }
    Ok(())
}

/// `incident show`'s output, the same for a local store and a daemon's.
fn write_show(
    out: &mut impl std::io::Write,
    output: OutputFormat,
    inc: &Incident,
    timeline: &[Entry],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"incident": inc, "timeline": timeline})
            )?
        )?,
        OutputFormat::Table => {
            write!(out, "{}", super::render::incident::show(inc, timeline, now))?
        }
    }
    Ok(())
}

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
    if let Some(remote) = Remote::from_flags(cli, &cfg, &attach_flags(cli))? {
        return remote_incident(&remote, cmd);
    }
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
            write_list(&mut out, *output, &incidents, now)?;
        }
        IncidentCommand::Show { id, output } => {
            let id = incident_id(id)?;
            let inc = store.require_incident(id)?;
            let timeline = store.timeline(id)?;
            write_show(&mut out, *output, &inc, &timeline, now)?;
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
            write_export(&mut out, &inc, &timeline, *format, file.as_deref(), now)?;
        }
    }
    Ok(())
}

pub(super) fn audit_verify(
    cli: &Cli,
    output: OutputFormat,
) -> anyhow::Result<std::process::ExitCode> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let report = if let Some(remote) = Remote::from_flags(cli, &cfg, &attach_flags(cli))? {
        let v = remote.get("/api/v1/audit/verify")?;
        let report: crate::store::AuditReport = serde_json::from_value(v)
            .with_context(|| format!("the daemon at {} answered no audit report", remote.base()))?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Table => print!(
                "{}",
                super::render::incident::audit(&report, std::path::Path::new(remote.base()))
            ),
        }
        report
    } else {
        let store = open_store(cli, &cfg)?;
        let report = store.verify()?;
        match output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Table => {
                print!("{}", super::render::incident::audit(&report, store.path()))
            }
        }
        report
    };
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(EXIT_AUDIT_FAILED)
    })
}
