//! The command line: clap definitions, wiring and dispatch only.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config};
use crate::sim;

#[derive(Debug, Parser)]
#[command(
    name = "fleetdeck",
    version,
    about = "A terminal cockpit for the people who keep AI infrastructure running"
)]
pub struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/fleetdeck/fleetdeck.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to read, as kubectl's flag (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to watch (repeatable; default: every context).
    #[arg(long = "context", global = true, value_name = "NAME")]
    pub contexts: Vec<String>,
    /// Colour theme: dark, light, high-contrast, colorblind, or a theme file (PATH).
    #[arg(long, global = true, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// RCA store directory (incidents, timelines, audit chain); default: [store] path, else
    /// $XDG_DATA_HOME/fleetdeck/store.
    #[arg(long, global = true, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Forbid every mutation: runbooks plan only and the cockpit's manual actions are off.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// How much automation may do: dry-run (plans only), approve (a person approves each
    /// plan), auto (within the guard's budgets). Default: [runbooks] mode.
    #[arg(long, global = true, value_name = "MODE", value_parser = ["dry-run", "approve", "auto"])]
    pub mode: Option<String>,
    /// Runbook directory (default: [runbooks] dir; the built-in runbooks when it does not exist).
    #[arg(long, global = true, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
    /// NOC mode for wall screens: panes rotate, no input needed (q quits).
    #[arg(long, global = true)]
    pub noc: bool,
    /// Without a command: the cockpit on the configured clusters.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented default fleetdeck.toml.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check the config file and print the effective settings.
    #[command(name = "config")]
    ConfigCheck,
    /// Connect to every cluster, wait until synced, print the fleet model and exit
    /// (exit 0 when every cluster synced, 3 when one could not be).
    Snapshot(SnapshotArgs),
    /// One-shot cost report from OpenCost and/or FOCUS exports: spend by group, GPU-hours by
    /// GPU type, idle-GPU cost, spot savings, budget burn and month-end forecast.
    Cost(CostArgs),
    /// The cockpit on a simulated fleet, started in this process (marked SIMULATED FLEET);
    /// `:scenario NAME` injects a fault while it runs.
    Demo(DemoArgs),
    /// Serve a simulated fleet on loopback: Kubernetes API, DCGM metrics, model endpoints, OpenCost.
    Sim(SimArgs),
    /// Incidents in the RCA store: list, show, note, acknowledge, resolve, export a postmortem.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// The store's tamper-evident audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Runbooks: list, check, run one against a target, or rehearse one against a simulated
    /// scenario.
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// The daemon: sources, detectors and runbooks without a terminal, fed by Alertmanager,
    /// with /metrics, /healthz, /readyz, an incidents/runs/approvals API, JSON logs on stdout
    /// and leader election (a coordination.k8s.io Lease) so that only one replica acts.
    Headless(HeadlessArgs),
}

#[derive(Debug, Args)]
pub struct HeadlessArgs {
    /// HTTP address (default: [headless] listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// File holding the API bearer token (default: [headless] token_file, else $FLEETDECK_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RemoteDecision {
    /// The approval id (the Runbooks pane, `GET /api/v1/runs`, or the timeline shows it).
    pub id: u64,
    /// The headless daemon's base URL, e.g. http://fleetdeck.fleetdeck.svc:9180.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// File holding the bearer token (default: $FLEETDECK_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// The runbooks loaded (from --runbooks, [runbooks] dir, or the built-in ones), with their
    /// trigger, cooldown and effective mode; broken files are listed with their error.
    List,
    /// Check runbook files: syntax and metadata (exit 1 with file:line:col on the first bad one).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one runbook now against a target on the configured clusters, through the guard
    /// (in approve mode the plan is shown and asked for on the terminal).
    Run {
        name: String,
        /// node/NAME, deployment/NAMESPACE/NAME or endpoint/NAME.
        #[arg(long, value_name = "KIND/NAME")]
        target: String,
        /// The cluster (kubeconfig context); default: the first one watched.
        #[arg(long, value_name = "CONTEXT")]
        cluster: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Approve a pending plan on a headless fleetdeck (POST /api/v1/runs/ID/approve).
    Approve(RemoteDecision),
    /// Deny a pending plan on a headless fleetdeck (POST /api/v1/runs/ID/deny).
    Deny(RemoteDecision),
    /// Rehearse a runbook: a simulated fleet in this process, the scenario injected, the
    /// engine with this runbook; reports signals, plan, actions against the sim and the
    /// outcome (exit 1 if it erred or did not remediate). Default mode: auto.
    Test {
        name: String,
        /// xid-storm, node-notready, spot-interruption, bad-rollout, crashloop-rollout, pdb-block,
        /// endpoint-outage,
        /// or none.
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value = "120s")]
        timeout: humantime::Duration,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Incidents, open first, by severity.
    List {
        /// Only incidents not yet resolved.
        #[arg(long)]
        open: bool,
        /// Only incidents active since then: a duration ago (2h, 7d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// One incident: milestones, affected objects and its timeline.
    Show {
        /// INC-42 or 42.
        id: String,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Add a note to an incident's timeline (as $USER).
    Note {
        id: String,
        /// The note; start it with "follow-up:" to list it under the postmortem's follow-ups.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Acknowledge an incident.
    Ack { id: String },
    /// Resolve an incident.
    Resolve { id: String },
    /// Export an incident: a Markdown postmortem draft, or JSON.
    Export {
        id: String,
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Md,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit chain; name the first record that was altered, removed or reordered
    /// (exit 0 when it verifies, 4 when it does not).
    Verify {
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

/// Exit code of `audit verify` when the chain is broken.
pub const EXIT_AUDIT_FAILED: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Output format; the JSON is documented in docs/snapshot.md.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// How long to wait for every cluster to sync (e.g. 30s, 2m).
    #[arg(long, value_name = "TIMEOUT", default_value = "30s")]
    pub wait_synced: humantime::Duration,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// FOCUS 1.0–1.2 CSV export to read (repeatable); read as a stream, row by row.
    #[arg(long = "focus", value_name = "FILE")]
    pub focus: Vec<PathBuf>,
    /// OpenCost API base URL, e.g. http://localhost:9003 (default: [cost] opencost_url).
    #[arg(long, value_name = "URL")]
    pub opencost: Option<String>,
    /// Window in OpenCost's syntax: 7d, 24h, today, month, lastmonth, or START,END.
    #[arg(long)]
    pub window: Option<String>,
    /// Group spend by namespace, team or service.
    #[arg(long, default_value = "namespace")]
    pub by: String,
    /// Monthly budget for burn and forecast (default: [cost] monthly_budget).
    #[arg(long, value_name = "AMOUNT")]
    pub budget: Option<f64>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: OutputFormat,
}

/// Exit code of `snapshot` when a cluster could not be synced in time.
pub const EXIT_NOT_SYNCED: u8 = 3;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Inject a scenario at start (repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Simulated clusters.
    #[arg(long, default_value_t = 2)]
    pub clusters: u32,
    /// Nodes across all clusters.
    #[arg(long, default_value_t = 40)]
    pub nodes: u32,
    /// Pods on each node.
    #[arg(long, default_value_t = 12)]
    pub pods_per_node: u32,
    /// GPUs on each GPU node.
    #[arg(long, default_value_t = 8)]
    pub gpus_per_node: u32,
    /// Seed of the deterministic fleet.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Simulated clusters, each with its own API server and kubeconfig context.
    #[arg(long)]
    pub clusters: Option<u32>,
    /// Nodes across all clusters (at most 5000 per cluster).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Pods on each node, daemon-set pods included (at most 110).
    #[arg(long)]
    pub pods_per_node: Option<u32>,
    /// GPUs on each GPU node (instance types match when the cloud has one with that count).
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// Seed of the deterministic fleet.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Control address; the other servers take the following ports (port 0: any free ports).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where to write the kubeconfig with one context per cluster (default: a temp dir).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Inject a scenario at start (repeatable): xid-storm, node-notready, spot-interruption,
    /// bad-rollout, crashloop-rollout, pdb-block, api-flaky, endpoint-outage.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
}

impl SimArgs {
    fn options(self, cfg: &config::SimConfig) -> sim::SimOptions {
        let mut scenarios = cfg.scenarios.clone();
        scenarios.extend(self.scenarios);
        scenarios.dedup();
        sim::SimOptions {
            clusters: self.clusters.unwrap_or(cfg.clusters),
            nodes: self.nodes.unwrap_or(cfg.nodes),
            pods_per_node: self.pods_per_node.unwrap_or(cfg.pods_per_node),
            gpus_per_node: self.gpus_per_node.unwrap_or(cfg.gpus_per_node),
            seed: self.seed.unwrap_or(cfg.seed),
            listen: self.listen.unwrap_or(cfg.listen),
            kubeconfig_out: self.kubeconfig_out,
            scenarios,
        }
    }
}

pub fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Snapshot(args)) => return snapshot(&cli, args),
        Some(Command::Cost(args)) => {
            return cost(&cli, args).map(|()| std::process::ExitCode::SUCCESS);
        }
        Some(Command::Demo(args)) => {
            return demo(&cli, args).map(|()| std::process::ExitCode::SUCCESS);
        }
        None => return cockpit(&cli).map(|()| std::process::ExitCode::SUCCESS),
        Some(Command::Incident(cmd)) => {
            return incident(&cli, cmd).map(|()| std::process::ExitCode::SUCCESS);
        }
        Some(Command::Audit(AuditCommand::Verify { output })) => {
            return audit_verify(&cli, *output);
        }
        Some(Command::Runbook(cmd)) => return runbook(&cli, cmd),
        Some(Command::Headless(args)) => {
            return headless(&cli, args).map(|()| std::process::ExitCode::SUCCESS);
        }
        _ => {}
    }
    run_other(cli).map(|()| std::process::ExitCode::SUCCESS)
}

fn run_other(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        return Ok(());
    };
    match command {
        Command::Snapshot(_)
        | Command::Cost(_)
        | Command::Demo(_)
        | Command::Incident(_)
        | Command::Audit(_)
        | Command::Runbook(_)
        | Command::Headless(_) => Ok(()),
        Command::Init { force } => {
            let path = match &cli.config {
                Some(p) => p.clone(),
                None => config::default_path()?,
            };
            config::init(&path, force)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::ConfigCheck => {
            let cfg = Config::load_or_default(cli.config.as_deref())?;
            crate::tui::keymap::from_config(&cfg)?;
            print!(
                "{}",
                toml::to_string(&cfg).context("cannot print the settings")?
            );
            Ok(())
        }
        Command::Sim(args) => {
            let cfg = Config::load_or_default(cli.config.as_deref())?;
            crate::telemetry::init(&cfg.log.level);
            let opts = args.options(&cfg.sim);
            opts.validate()?;
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(async {
                let running = sim::start(&opts).await?;
                let signals = sim::ShutdownSignals::install()
                    .context("cannot install the SIGINT/SIGTERM handlers")?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", running.description)?;
                out.flush()?;
                drop(out);
                signals.wait().await;
                tracing::info!("shutting down");
                anyhow::Ok(())
            })?;
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            Ok(())
        }
    }
}

/// Which kubeconfig and contexts: flags win over the config file.
fn kube_targets(
    cli: &Cli,
    cfg: &Config,
) -> anyhow::Result<Vec<crate::sources::kube::ClusterTarget>> {
    let path = cli.kubeconfig.clone().or_else(|| {
        let p = cfg.kubernetes.kubeconfig.trim();
        (!p.is_empty()).then(|| PathBuf::from(p))
    });
    let contexts = if cli.contexts.is_empty() {
        cfg.kubernetes.contexts.clone()
    } else {
        cli.contexts.clone()
    };
    Ok(crate::sources::kube::targets(path.as_deref(), &contexts)?)
}

fn snapshot(cli: &Cli, args: &SnapshotArgs) -> anyhow::Result<std::process::ExitCode> {
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
        OutputFormat::Table => write!(out, "{}", crate::snapshot_table::render(&snap))?,
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

fn cost(cli: &Cli, args: &CostArgs) -> anyhow::Result<()> {
    use crate::sources::cost::{CostOptions, build_report};
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    crate::telemetry::init("warn");
    let opencost_url = args.opencost.clone().or_else(|| {
        let u = cfg.cost.opencost_url.trim();
        (!u.is_empty()).then(|| u.to_string())
    });
    if args.focus.is_empty() && opencost_url.is_none() {
        anyhow::bail!(
            "nothing to report on: pass --focus FILE and/or --opencost URL (or set [cost] opencost_url)"
        );
    }
    let group_by = args
        .by
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--by: {e}"))?;
    // With clusters named, node capacity and GPU types come from them (spot savings, GPU
    // types), and GPU utilisation from the GPU sources (idle cost of allocated GPUs): the
    // same join the cost source makes for the cockpit and headless.
    let (nodes, gpu_utilisation) = if cli.kubeconfig.is_some() || !cli.contexts.is_empty() {
        let mut cfg = cfg.clone();
        // The report is made here; the snapshot is only for the join.
        cfg.cost.opencost_url.clear();
        cfg.cost.focus.clear();
        let snap = gather_snapshot(cli, &cfg, std::time::Duration::from_secs(30))?;
        crate::sources::cost::fleet_join(&snap)
    } else {
        (Vec::new(), None)
    };
    let opts = CostOptions {
        nodes,
        gpu_utilisation,
        focus_files: args.focus.clone(),
        opencost_url,
        window: args.window.clone(),
        group_by,
        monthly_budget: args.budget.or(cfg.cost.monthly_budget),
        idle_gpu_threshold_pct: cfg.cost.idle_gpu_threshold_pct,
        team_label: cfg.cost.team_label.clone(),
        ..CostOptions::default()
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = rt.block_on(build_report(&opts))?;
    let fleet = crate::model::Snapshot {
        cost: Some(std::sync::Arc::new(report.clone())),
        ..Default::default()
    };
    let signals = crate::pipeline::Pipeline::detect_once(&cfg.signals, &fleet, chrono::Utc::now());
    /// The report with what the detectors see in it.
    #[derive(serde::Serialize)]
    struct CostOutput<'a> {
        #[serde(flatten)]
        report: &'a crate::model::cost::CostReport,
        signals: &'a [crate::model::signal::Signal],
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &CostOutput {
                    report: &report,
                    signals: &signals,
                },
            )
            .context("cannot write the report")?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            write!(out, "{}", crate::cost_report::render_table(&report))?;
            for s in &signals {
                writeln!(out, "SIGNAL {:?} {}: {}", s.severity, s.kind, s.summary)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Connects to the configured clusters and waits until they sync (or `wait` runs out).
fn gather_snapshot(
    cli: &Cli,
    cfg: &Config,
    wait: std::time::Duration,
) -> anyhow::Result<std::sync::Arc<crate::model::Snapshot>> {
    let targets = kube_targets(cli, cfg)?;
    let prometheus = crate::wiring::prometheus_client(cfg)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let snap = rt.block_on(async {
        let running = crate::wiring::start(cfg, targets, prometheus);
        let (gpu_sources, cost_source) = (running.gpu_sources, running.cost_source);
        let mut snaps = running.snapshots;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ready = {
                let s = snaps.borrow();
                s.clusters.iter().all(|c| c.synced())
                    && s.endpoints.iter().all(|e| e.probe.is_some())
                    && s.gpu_sources.len() >= gpu_sources
                    && (!cost_source || s.cost_source.is_some())
            };
            if ready {
                break;
            }
            tokio::select! {
                changed = snaps.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        snaps.borrow().clone()
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(snap)
}

/// Theme and keymap for the cockpit; a bad theme file is reported and the default used.
fn cockpit_parts(
    cli: &Cli,
    cfg: &Config,
) -> anyhow::Result<(crate::tui::theme::Theme, crate::tui::keymap::Keymap)> {
    let (theme, error) =
        crate::tui::theme::load(cli.theme.as_deref(), crate::tui::theme::no_color_from_env());
    if let Some(e) = error {
        eprintln!("fleetdeck: {e}");
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let keymap = crate::tui::keymap::from_config(cfg)?;
    Ok((theme, keymap))
}

fn incident_id(s: &str) -> anyhow::Result<u64> {
    crate::model::incident::parse_incident_id(s).with_context(|| {
        format!(
            "{s:?} is not an incident id; use INC-42 or 42 (`fleetdeck incident list` shows them)"
        )
    })
}

/// `--since 2h` (ago) or `--since 2026-11-28T09:00:00Z`.
fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = humantime::parse_duration(s).with_context(|| {
        format!("--since {s:?} is neither a duration (2h, 7d) nor an RFC 3339 time (2026-11-28T09:00:00Z)")
    })?;
    Ok(chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()))
}

fn incident(cli: &Cli, cmd: &IncidentCommand) -> anyhow::Result<()> {
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
            match output {
                OutputFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&incidents)?)?
                }
                OutputFormat::Table => {
                    write!(out, "{}", crate::incident_report::list(&incidents, now))?
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
                    crate::incident_report::show(&inc, &timeline, now)
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
                ExportFormat::Md => crate::store::export::markdown(&inc, &timeline, now),
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

fn audit_verify(cli: &Cli, output: OutputFormat) -> anyhow::Result<std::process::ExitCode> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let store = open_store(cli, &cfg)?;
    let report = store.verify()?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print!("{}", crate::incident_report::audit(&report, store.path())),
    }
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(EXIT_AUDIT_FAILED)
    })
}

fn runbook(cli: &Cli, cmd: &RunbookCommand) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let find = |name: &str| -> anyhow::Result<crate::runbook::Runbook> {
        let dir = cli
            .runbooks
            .clone()
            .unwrap_or_else(|| PathBuf::from(&cfg.runbooks.dir));
        let (good, _, from) = crate::runbook::shipped::load_dir_or_shipped(&dir);
        let known: Vec<String> = good.iter().map(|r| r.meta.name.clone()).collect();
        good.into_iter()
            .find(|r| r.meta.name == name)
            .with_context(|| format!("no runbook {name:?} in {from}; known: {}", known.join(", ")))
    };
    match cmd {
        RunbookCommand::List => {
            let dir = cli
                .runbooks
                .clone()
                .unwrap_or_else(|| PathBuf::from(&cfg.runbooks.dir));
            let (good, bad, from) = crate::runbook::shipped::load_dir_or_shipped(&dir);
            let mode = global_mode(cli, &cfg);
            println!(
                "runbooks from {from} (global mode {}{})",
                mode.name(),
                if cli.read_only || cfg.runbooks.read_only {
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
                    m.name,
                    trigger,
                    humantime::format_duration(m.cooldown).to_string(),
                    m.effective_mode(mode).name(),
                    m.description
                );
            }
            for e in &bad {
                println!("BROKEN {e}");
            }
            Ok(if bad.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RunbookCommand::Approve(d) | RunbookCommand::Deny(d) => {
            let verb = if matches!(cmd, RunbookCommand::Approve(_)) {
                "approve"
            } else {
                "deny"
            };
            let token = match &d.token_file {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the token file {}", p.display()))?
                    .trim()
                    .to_string(),
                None => std::env::var("FLEETDECK_TOKEN")
                    .context("no token: pass --token-file PATH or set FLEETDECK_TOKEN")?,
            };
            let by = match crate::model::incident::Actor::local_user() {
                crate::model::incident::Actor::User(u) => u,
                _ => "unknown".into(),
            };
            let url = format!(
                "{}/api/v1/runs/{}/{verb}",
                d.server.trim_end_matches('/'),
                d.id
            );
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let (status, body) = rt.block_on(async {
                let r = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(token.trim())
                    .json(&serde_json::json!({ "by": by }))
                    .timeout(std::time::Duration::from_secs(15))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                let status = r.status();
                anyhow::Ok((status, r.text().await.unwrap_or_default()))
            })?;
            if status.is_success() {
                let done = if verb == "approve" {
                    "approved"
                } else {
                    "denied"
                };
                println!("approval {} {done}: {}", d.id, body.trim());
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("fleetdeck: {url} answered {status}: {}", body.trim());
                Ok(ExitCode::FAILURE)
            }
        }
        RunbookCommand::Check { files } => {
            let mut ok = true;
            for f in files {
                match crate::runbook::Runbook::load(f) {
                    Ok(r) => println!(
                        "{}: ok ({}, trigger {})",
                        f.display(),
                        r.meta.name,
                        r.meta.trigger.signal
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        ok = false;
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RunbookCommand::Test {
            name,
            scenario,
            timeout,
            output,
        } => {
            let rb = find(name)?;
            let mode = cli
                .mode
                .as_deref()
                .and_then(crate::runbook::Mode::parse)
                .unwrap_or(crate::runbook::Mode::Auto);
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let report = rt.block_on(crate::rehearsal::rehearse(
                cfg.clone(),
                rb,
                scenario,
                mode,
                (*timeout).into(),
            ))?;
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Table => print!("{}", crate::rehearsal::render(&report)),
            }
            Ok(if report.remediated {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RunbookCommand::Run {
            name,
            target,
            cluster,
            output,
        } => {
            let rb = find(name)?;
            let targets = kube_targets(cli, &cfg)?;
            let cluster = match cluster {
                Some(c) => c.clone(),
                None => targets
                    .first()
                    .map(|t| t.context.clone())
                    .context("no cluster to run against")?,
            };
            let signal = manual_signal(&cluster, target)?;
            let store = open_store(cli, &cfg)?;
            let snap = gather_snapshot(cli, &cfg, std::time::Duration::from_secs(30))?;
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let record = rt.block_on(async {
                let executor = start_executor(
                    cli,
                    &cfg,
                    &targets,
                    &store,
                    vec![rb.clone()],
                    crate::model::incident::Origin::Cli,
                )
                .await;
                executor.observe_snapshot_only(snap);
                let ex = executor.clone();
                let id = format!("run-cli-{}", std::process::id());
                let run = tokio::task::spawn_blocking(move || ex.execute(&id, &rb, &signal, None));
                // In approve mode, ask on the terminal.
                loop {
                    if run.is_finished() {
                        break;
                    }
                    for p in executor.pending_approvals() {
                        eprintln!("approval {} requested: {}", p.id, p.reason);
                        for step in &p.plan {
                            eprintln!("  - {} {}", step.summary, step.blast);
                        }
                        eprint!("approve? [y/N] ");
                        let mut line = String::new();
                        let _ = std::io::stdin().read_line(&mut line);
                        let yes = line.trim().eq_ignore_ascii_case("y");
                        let user = match crate::model::incident::Actor::local_user() {
                            crate::model::incident::Actor::User(u) => u,
                            _ => "unknown".into(),
                        };
                        let _ = executor.decide(p.id, yes, &user);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                run.await.context("the run panicked")
            })?;
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&record)?),
                OutputFormat::Table => {
                    println!(
                        "run {} of {} on {}: {:?}",
                        record.id, record.runbook, record.target, record.state
                    );
                    for p in &record.plan {
                        println!("  plan: {}", p.summary);
                    }
                    for a in &record.actions {
                        println!("  action: {a}");
                    }
                }
            }
            Ok(
                if matches!(record.state, crate::runbook::executor::RunState::Done) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
    }
}

/// The signal a manual `runbook run --target` starts from.
fn manual_signal(cluster: &str, target: &str) -> anyhow::Result<crate::model::signal::Signal> {
    use crate::model::signal::{Severity, Signal, Subject};
    let mut subject = Subject {
        cluster: cluster.to_string(),
        ..Subject::default()
    };
    let parts: Vec<&str> = target.split('/').collect();
    match parts.as_slice() {
        ["node", n] => subject.node = Some(n.to_string()),
        ["endpoint", e] => subject.endpoint = Some(e.to_string()),
        ["deployment", ns, n] => {
            subject.namespace = Some(ns.to_string());
            subject.object = Some(format!("deployment/{n}"));
        }
        _ => anyhow::bail!(
            "--target {target:?}: use node/NAME, deployment/NAMESPACE/NAME or endpoint/NAME"
        ),
    }
    Ok(Signal {
        kind: "manual".into(),
        severity: Severity::Warning,
        summary: format!("manual run on {target}"),
        dedup_key: format!("manual:{cluster}/{target}"),
        subject,
        evidence: Default::default(),
        action: None,
        first_seen: chrono::Utc::now(),
    })
}

fn headless(cli: &Cli, args: &HeadlessArgs) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    crate::telemetry::init_json(&cfg.log.level);
    let store = open_store(cli, &cfg)?;
    let targets = kube_targets(cli, &cfg)?;
    let dir = cli
        .runbooks
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.runbooks.dir));
    let (runbooks, broken, from) = crate::runbook::shipped::load_dir_or_shipped(&dir);
    for e in &broken {
        tracing::error!(error = %e, "runbook not loaded; the others run");
    }
    tracing::info!(runbooks = runbooks.len(), %from, "runbooks loaded");
    let opts = crate::headless::daemon::HeadlessOptions {
        listen: args.listen,
        token_file: args.token_file.clone(),
        mode: cli.mode.as_deref().and_then(crate::runbook::Mode::parse),
        read_only: cli.read_only,
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(crate::headless::daemon::run(
        cfg, opts, targets, store, runbooks,
    ))?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// The global mode: `--mode`, else `[runbooks] mode`.
fn global_mode(cli: &Cli, cfg: &Config) -> crate::runbook::Mode {
    cli.mode
        .as_deref()
        .and_then(crate::runbook::Mode::parse)
        .unwrap_or(cfg.runbooks.mode)
}

/// Loads the runbooks (`--runbooks`, `[runbooks] dir`, else the built-in ones); a broken file
/// is reported on stderr and the rest run.
fn load_runbooks(cli: &Cli, cfg: &Config) -> Vec<crate::runbook::Runbook> {
    let dir = cli
        .runbooks
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.runbooks.dir));
    let (good, bad, from) = crate::runbook::shipped::load_dir_or_shipped(&dir);
    for e in &bad {
        eprintln!("fleetdeck: runbook not loaded: {e}");
    }
    tracing::info!(runbooks = good.len(), broken = bad.len(), %from, "runbooks loaded");
    good
}

/// The executor for the cockpit: must run inside the runtime.
async fn start_executor(
    cli: &Cli,
    cfg: &Config,
    targets: &[crate::sources::kube::ClusterTarget],
    store: &crate::store::Store,
    runbooks: Vec<crate::runbook::Runbook>,
    origin: crate::model::incident::Origin,
) -> crate::runbook::executor::Executor {
    let mode = global_mode(cli, cfg);
    let guard = crate::runbook::guard::Guard::new(&cfg.runbooks, mode, cli.read_only).shared();
    let clients = crate::wiring::action_clients(targets).await;
    crate::runbook::executor::Executor::new(
        runbooks,
        guard,
        store.clone(),
        clients,
        crate::runbook::executor::ExecutorConfig::from_config(&cfg.runbooks, mode, origin),
    )
}

/// Opens the RCA store named by `--store`, `[store] path` or the XDG default.
fn open_store(cli: &Cli, cfg: &Config) -> anyhow::Result<crate::store::Store> {
    let path = cfg.store.resolve(cli.store.as_deref());
    Ok(crate::store::Store::open(&path)?)
}

/// The cockpit on the configured clusters.
fn cockpit(cli: &Cli) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let targets = kube_targets(cli, &cfg)?;
    let prometheus = crate::wiring::prometheus_client(&cfg)?;
    let (theme, keymap) = cockpit_parts(cli, &cfg)?;
    let store = open_store(cli, &cfg)?;
    let runbooks = load_runbooks(cli, &cfg);
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let executor = start_executor(
            cli,
            &cfg,
            &targets,
            &store,
            runbooks,
            crate::model::incident::Origin::Tui,
        )
        .await;
        let running = crate::wiring::start(&cfg, targets, prometheus);
        let evaluations = crate::pipeline::Pipeline::new(
            running.pipeline_config(&cfg, crate::model::incident::Origin::Tui),
        )
        .with_store(store.clone())
        .with_executor(executor.clone(), None)
        .spawn(running.snapshots, None);
        let app = crate::tui::app::App::new(theme, keymap, false, cli.noc);
        crate::tui::app::run(
            app,
            evaluations,
            crate::tui::app::Effects {
                control: None,
                store: Some(store),
                executor: Some(executor),
            },
        )
        .await
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

/// The cockpit on a simulated fleet started in this process, reached over loopback HTTP as a
/// real cluster would be.
fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load_or_default(cli.config.as_deref())?;
    let dir = std::env::temp_dir().join(format!("fleetdeck-demo-{}", std::process::id()));
    let opts = sim::SimOptions {
        clusters: args.clusters,
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        gpus_per_node: args.gpus_per_node,
        seed: args.seed,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        kubeconfig_out: Some(dir.join("kubeconfig")),
        scenarios: args.scenarios.clone(),
    };
    opts.validate()?;
    // A simulated fleet's incidents never mix with the real ones: the demo has its own store
    // unless --store names one.
    let store_path = cli
        .store
        .clone()
        .unwrap_or_else(|| crate::config::default_store_path().with_file_name("demo-store"));
    let store = crate::store::Store::open(&store_path)?;
    // The sim's servers log to a file: the terminal belongs to the cockpit.
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let running_sim = sim::start(&opts).await?;
        let d = &running_sim.description;
        crate::wiring::point_at_sim(&mut cfg, d);
        let targets = crate::sources::kube::targets(Some(&running_sim.kubeconfig), &[])?;
        let (theme, keymap) = cockpit_parts(cli, &cfg)?;
        let runbooks = load_runbooks(cli, &cfg);
        let executor = start_executor(
            cli,
            &cfg,
            &targets,
            &store,
            runbooks,
            crate::model::incident::Origin::Tui,
        )
        .await;
        let running = crate::wiring::start(&cfg, targets, None);
        let evaluations = crate::pipeline::Pipeline::new(
            running.pipeline_config(&cfg, crate::model::incident::Origin::Tui),
        )
        .with_store(store.clone())
        .with_executor(executor.clone(), None)
        .spawn(running.snapshots, None);
        let app = crate::tui::app::App::new(theme, keymap, true, cli.noc);
        let control = d["control"].as_str().map(str::to_string);
        let effects = crate::tui::app::Effects {
            control,
            store: Some(store),
            executor: Some(executor),
        };
        crate::tui::app::run(app, evaluations, effects).await
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod boundary_tests {
    /// `config` restates the sim's limits and scenario names (it may not import the sim).
    #[test]
    fn the_configs_copy_of_the_sims_limits_and_scenarios_agrees_with_the_sim() {
        use crate::config as c;
        assert_eq!(c::SIM_MAX_CLUSTERS, crate::sim::MAX_CLUSTERS);
        assert_eq!(
            c::SIM_MAX_NODES_PER_CLUSTER,
            crate::sim::MAX_NODES_PER_CLUSTER
        );
        assert_eq!(c::SIM_MAX_PODS_PER_NODE, crate::sim::MAX_PODS_PER_NODE);
        assert_eq!(c::SIM_MAX_GPUS_PER_NODE, crate::sim::MAX_GPUS_PER_NODE);
        assert_eq!(c::SIM_SCENARIOS, crate::sim::scenarios::names().as_slice());
    }
}
