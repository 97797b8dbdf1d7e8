//! `fleetdeck store …` (stats, prune, export, import) and `fleetdeck audit list`: the store as
//! a whole, and the audit entries no incident shows (what the API and the guard refused).
//! `store stats` and `audit list` take `--attach URL` (the daemon's store, through its API).

use std::io::Write;

use anyhow::Context;

use super::incident::attach_flags;
use super::remote::Remote;
use super::setup::open_store;
use super::{AuditCommand, AuditKind, Cli, OutputFormat, StoreCommand};
use crate::config::Config;
use crate::model::incident::{EntryKind, Origin};
use crate::store::{EntryFilter, EntryKindFilter};

impl AuditKind {
    /// As `--kind` spells it (and the API's `kind=`).
    fn name(self) -> &'static str {
        match self {
            Self::Refusal => "refusal",
            Self::Checkpoint => "checkpoint",
            Self::Signal => "signal",
            Self::Decision => "decision",
            Self::Action => "action",
            Self::Approval => "approval",
            Self::Note => "note",
            Self::Status => "status",
        }
    }

    fn filter(self) -> EntryKindFilter {
        match self {
            Self::Refusal => EntryKindFilter::Refusal,
            Self::Checkpoint => EntryKindFilter::Checkpoint,
            Self::Signal => EntryKindFilter::Kind(EntryKind::Signal),
            Self::Decision => EntryKindFilter::Kind(EntryKind::Decision),
            Self::Action => EntryKindFilter::Kind(EntryKind::Action),
            Self::Approval => EntryKindFilter::Kind(EntryKind::Approval),
            Self::Note => EntryKindFilter::Kind(EntryKind::Note),
            Self::Status => EntryKindFilter::Kind(EntryKind::Status),
        }
    }
}

pub(super) fn audit_list(cli: &Cli, cmd: &AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        kind,
        since,
        limit,
        output,
    } = cmd
    else {
        return Ok(());
    };
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let since = since
        .as_deref()
        .map(super::incident::parse_since)
        .transpose()?;
    let entries = if let Some(remote) = Remote::from_flags(cli, &cfg, &attach_flags(cli))? {
        let mut path = format!("/api/v1/audit?limit={limit}");
        if let Some(k) = kind {
            path.push_str(&format!("&kind={}", k.name()));
        }
        if let Some(t) = since {
            path.push_str(&format!(
                "&since={}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        let v = remote.get(&path)?;
        remote.field(&v, "entries")?
    } else {
        let store = open_store(cli, &cfg)?;
        store.entries(&EntryFilter {
            kind: kind.map(AuditKind::filter),
            since,
            limit: Some(*limit),
        })?
    };
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?,
        OutputFormat::Table => write!(out, "{}", super::render::store::entries(&entries))?,
    }
    Ok(())
}

pub(super) fn store(cli: &Cli, cmd: &StoreCommand) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    if let Some(remote) = Remote::from_flags(cli, &cfg, &attach_flags(cli))? {
        let StoreCommand::Stats { output } = cmd else {
            anyhow::bail!(
                "store prune, export and import work on a local store only; `store stats --attach` is the daemon's (run the others where the daemon's store is)"
            );
        };
        let stats: crate::store::StoreStats =
            serde_json::from_value(remote.get("/api/v1/store/stats")?).with_context(|| {
                format!("the daemon at {} answered no store figures", remote.base())
            })?;
        let mut out = std::io::stdout().lock();
        match output {
            OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?,
            OutputFormat::Table => write!(out, "{}", super::render::store::stats(&stats))?,
        }
        return Ok(());
    }
    let store = open_store(cli, &cfg)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        StoreCommand::Stats { output } => {
            let stats = store.stats()?;
            match output {
                OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?,
                OutputFormat::Table => write!(out, "{}", super::render::store::stats(&stats))?,
            }
        }
        StoreCommand::Prune { retention, output } => {
            let retention = match retention {
                Some(d) => (*d).into(),
                None => cfg.store.retention().context(
                    "no retention to prune by: give --retention 30d, or set [store] retention in fleetdeck.toml",
                )?,
            };
            let report = store.prune_older_than(retention, chrono::Utc::now(), Origin::Cli)?;
            match output {
                OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
                OutputFormat::Table => write!(
                    out,
                    "{}",
                    super::render::store::pruned(&report, retention, store.path())
                )?,
            }
        }
        StoreCommand::Export { out: file } => {
            let name = file
                .as_ref()
                .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
            let report = match file {
                Some(path) => {
                    let f = std::fs::File::create(path).with_context(|| {
                        format!("cannot create the export file {}", path.display())
                    })?;
                    let mut w = std::io::BufWriter::new(f);
                    let report = store.export(&mut w, &name)?;
                    writeln!(
                        out,
                        "exported {} audit records and {} incidents ({} lines) from {} to {}",
                        report.audit_records,
                        report.incidents,
                        report.lines,
                        store.path().display(),
                        path.display()
                    )?;
                    report
                }
                None => store.export(&mut out, &name)?,
            };
            tracing::debug!(lines = report.lines, "store exported");
        }
        StoreCommand::Import { file } => {
            let report = if file.as_os_str() == "-" {
                store.import(std::io::stdin().lock(), "stdin")?
            } else {
                let f = std::fs::File::open(file)
                    .with_context(|| format!("cannot open the export {}", file.display()))?;
                store.import(std::io::BufReader::new(f), &file.display().to_string())?
            };
            writeln!(
                out,
                "imported {} audit records and {} incidents into {}; `fleetdeck audit verify` checks the chain",
                report.audit_records,
                report.incidents,
                store.path().display()
            )?;
        }
    }
    Ok(())
}
