//! The clap definitions of every command, flag and help text; no behaviour beyond turning the
//! flags into options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::sim;

/// `--store`'s help, shared by the cockpit's flag and the commands that take it.
const STORE_HELP: &str = "RCA store (incidents, timelines, audit chain): a directory, or a PostgreSQL URL postgres://USER@HOST/DB shared by replicas (password from [store] password_file / password_env, else $PGPASSWORD); default: [store] url or path, else $XDG_DATA_HOME/fleetdeck/store.";

#[derive(Debug, Parser)]
#[command(
    name = "fleetdeck",
    version,
    about = "A terminal cockpit for the people who keep AI infrastructure running",
    long_about = "A terminal cockpit for the people who keep AI infrastructure running.\n\n\
        Without a command, the cockpit on the configured clusters; the options below are the \
        cockpit's. Each command takes the options it uses: `fleetdeck help COMMAND`."
)]
pub struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/fleetdeck/fleetdeck.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[arg(long, value_name = "PATH", help = STORE_HELP)]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub runbook: RunbookFlags,
    #[command(flatten)]
    pub read_only: ReadOnlyFlag,
    #[command(flatten)]
    pub display: DisplayFlags,
    /// Without a command: the cockpit on the configured clusters.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which clusters: the commands that talk to Kubernetes.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterFlags {
    /// Kubeconfig to read, as kubectl's flag (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to watch (repeatable; default: every context).
    #[arg(
        long = "context",
        value_name = "NAME",
        add = clap_complete::engine::ArgValueCompleter::new(super::completions::contexts)
    )]
    pub contexts: Vec<String>,
}

/// The RCA store, for the commands that read or write it. Global within a command family
/// (`fleetdeck incident list --store X` and `fleetdeck incident --store X list` both work).
#[derive(Debug, Clone, Default, Args)]
pub struct StoreFlag {
    #[arg(long, global = true, value_name = "PATH", help = STORE_HELP)]
    pub store: Option<PathBuf>,
}

/// A running daemon to work on through its API instead of a local store. Global within a
/// command family, as `--store` is.
#[derive(Debug, Clone, Default, Args)]
pub struct AttachFlags {
    /// The daemon's base URL (e.g. https://fleetdeck.example:9180): the command works on its
    /// store through its API, with the same output (default: [attach] url; empty: local).
    #[arg(long, global = true, value_name = "URL")]
    pub attach: Option<String>,
    /// File holding the bearer token to send (as kubectl's --token). Default: [attach]
    /// token_file, else $FLEETDECK_TOKEN, else the token the kubeconfig's current context
    /// yields (exec plugins included).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Which runbooks and how much they may do.
#[derive(Debug, Clone, Default, Args)]
pub struct RunbookFlags {
    /// How much automation may do: dry-run (plans only), approve (a person approves each
    /// plan), auto (within the guard's budgets). Default: [runbooks] mode.
    #[arg(long, value_name = "MODE", value_parser = ["dry-run", "approve", "auto"])]
    pub mode: Option<String>,
    /// Runbook directory (default: [runbooks] dir; the built-in runbooks when it does not exist).
    #[arg(long, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
}

/// The kill switch's permanent form, for the commands that may mutate.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ReadOnlyFlag {
    /// Forbid every mutation: runbooks plan only and the cockpit's manual actions are off.
    #[arg(long = "read-only")]
    pub on: bool,
}

/// How the cockpit looks: the faces with a terminal UI.
#[derive(Debug, Clone, Default, Args)]
pub struct DisplayFlags {
    /// Colour theme: dark, light, high-contrast, colorblind, or a theme file (PATH).
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// NOC mode for wall screens: panes rotate, no input needed (q quits).
    #[arg(long)]
    pub noc: bool,
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
    Incident {
        #[command(flatten)]
        store: StoreFlag,
        #[command(flatten)]
        attach: AttachFlags,
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// The store's tamper-evident audit chain.
    Audit {
        #[command(flatten)]
        store: StoreFlag,
        #[command(flatten)]
        attach: AttachFlags,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The RCA store itself: stats, prune by retention, export and import (JSON lines).
    Store {
        #[command(flatten)]
        store: StoreFlag,
        #[command(flatten)]
        attach: AttachFlags,
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Runbooks: list, check, run one against a target, or rehearse one against a simulated
    /// scenario.
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// The cockpit on a running daemon (`fleetdeck headless`): its signals, incidents, runs,
    /// approvals and fleet, streamed; actions are sent to the daemon. No detector or runbook
    /// runs here. With a kubeconfig the logs and YAML views read the clusters directly.
    Attach(AttachArgs),
    /// The daemon: sources, detectors and runbooks without a terminal, fed by Alertmanager,
    /// with /metrics, /healthz, /readyz, an incidents/runs/approvals API, JSON logs on stdout
    /// and leader election (a coordination.k8s.io Lease) so that only one replica acts.
    Headless(HeadlessArgs),
    /// Shell completion for bash, zsh or fish (kubeconfig contexts included):
    /// `source <(fleetdeck completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// The manual page (roff) on stdout, or one page per command into --dir.
    Man {
        /// Write fleetdeck.1 and fleetdeck-COMMAND.1 … into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The flag groups one command takes (`None`: it does not take that group).
#[derive(Default)]
struct Takes<'a> {
    cluster: Option<&'a ClusterFlags>,
    store: Option<&'a StoreFlag>,
    runbook: Option<&'a RunbookFlags>,
    read_only: Option<ReadOnlyFlag>,
    display: Option<&'a DisplayFlags>,
}

impl Command {
    /// The command's name as typed, and the flag groups it takes.
    fn takes(&self) -> (&'static str, Takes<'_>) {
        let none = Takes::default();
        match self {
            Self::Init { .. } => ("init", none),
            Self::ConfigCheck => ("config", none),
            Self::Sim(_) => ("sim", none),
            Self::Attach(a) => (
                "attach",
                Takes {
                    cluster: Some(&a.cluster),
                    display: Some(&a.display),
                    ..none
                },
            ),
            Self::Completions { .. } => ("completions", none),
            Self::Man { .. } => ("man", none),
            Self::Snapshot(a) => (
                "snapshot",
                Takes {
                    cluster: Some(&a.cluster),
                    ..none
                },
            ),
            Self::Cost(a) => (
                "cost",
                Takes {
                    cluster: Some(&a.cluster),
                    ..none
                },
            ),
            Self::Incident { store, .. } => (
                "incident",
                Takes {
                    store: Some(store),
                    ..none
                },
            ),
            Self::Audit { store, .. } => (
                "audit",
                Takes {
                    store: Some(store),
                    ..none
                },
            ),
            Self::Store { store, .. } => (
                "store",
                Takes {
                    store: Some(store),
                    ..none
                },
            ),
            Self::Demo(a) => (
                "demo",
                Takes {
                    store: Some(&a.store),
                    runbook: Some(&a.runbook),
                    read_only: Some(a.read_only),
                    display: Some(&a.display),
                    ..none
                },
            ),
            Self::Headless(a) => (
                "headless",
                Takes {
                    cluster: Some(&a.cluster),
                    store: Some(&a.store),
                    runbook: Some(&a.runbook),
                    read_only: Some(a.read_only),
                    ..none
                },
            ),
            Self::Runbook(r) => match r {
                RunbookCommand::List { runbook, read_only } => (
                    "runbook list",
                    Takes {
                        runbook: Some(runbook),
                        read_only: Some(*read_only),
                        ..none
                    },
                ),
                RunbookCommand::Run {
                    clusters,
                    store,
                    runbook,
                    read_only,
                    ..
                } => (
                    "runbook run",
                    Takes {
                        cluster: Some(clusters),
                        store: Some(store),
                        runbook: Some(runbook),
                        read_only: Some(*read_only),
                        display: None,
                    },
                ),
                RunbookCommand::Test { runbook, .. } => (
                    "runbook test",
                    Takes {
                        runbook: Some(runbook),
                        ..none
                    },
                ),
                RunbookCommand::Check { .. } => ("runbook check", none),
                RunbookCommand::Approve(_) => ("runbook approve", none),
                RunbookCommand::Deny(_) => ("runbook deny", none),
            },
        }
    }
}

impl Cli {
    /// Parses the command line, then settles the flags: a command's own flags win, and the
    /// cockpit's flags given before a command (`fleetdeck --store X incident list`) count for
    /// it when it takes them and are refused when it does not.
    pub fn parse_settled() -> Self {
        let cli = Self::parse();
        cli.settle().unwrap_or_else(|e| e.exit())
    }

    /// See [`Cli::parse_settled`]; public for the tests.
    pub fn settle(mut self) -> Result<Self, clap::Error> {
        let Some(command) = &self.command else {
            return Ok(self);
        };
        let (name, takes) = command.takes();
        let refuse = |flag: &str| {
            use clap::CommandFactory;
            Self::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "{flag} is not an option of `fleetdeck {name}`; `fleetdeck {name} --help` lists the ones it takes"
                ),
            )
        };
        match takes.cluster {
            Some(c) => {
                self.cluster.kubeconfig = c.kubeconfig.clone().or(self.cluster.kubeconfig);
                if !c.contexts.is_empty() {
                    self.cluster.contexts = c.contexts.clone();
                }
            }
            None if self.cluster.kubeconfig.is_some() => return Err(refuse("--kubeconfig")),
            None if !self.cluster.contexts.is_empty() => return Err(refuse("--context")),
            None => {}
        }
        match takes.store {
            Some(s) => self.store = s.store.clone().or(self.store),
            None if self.store.is_some() => return Err(refuse("--store")),
            None => {}
        }
        match takes.runbook {
            Some(r) => {
                self.runbook.mode = r.mode.clone().or(self.runbook.mode);
                self.runbook.runbooks = r.runbooks.clone().or(self.runbook.runbooks);
            }
            None if self.runbook.mode.is_some() => return Err(refuse("--mode")),
            None if self.runbook.runbooks.is_some() => return Err(refuse("--runbooks")),
            None => {}
        }
        match takes.read_only {
            Some(r) => self.read_only.on |= r.on,
            None if self.read_only.on => return Err(refuse("--read-only")),
            None => {}
        }
        match takes.display {
            Some(d) => {
                self.display.theme = d.theme.clone().or(self.display.theme);
                self.display.noc |= d.noc;
            }
            None if self.display.theme.is_some() => return Err(refuse("--theme")),
            None if self.display.noc => return Err(refuse("--noc")),
            None => {}
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The daemon's address, e.g. http://127.0.0.1:9180 (its `--listen`).
    #[arg(value_name = "URL")]
    pub url: String,
    /// File holding the bearer token to send (default: the kubeconfig context's token).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    pub display: DisplayFlags,
}

#[derive(Debug, Args)]
pub struct HeadlessArgs {
    /// HTTP address [default: 0.0.0.0:9180, or [headless] listen where the config sets it].
    // Not clap's `default_value`: that would override the config's `listen` on every run.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// File holding the API bearer token (default: [headless] token_file, else $FLEETDECK_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (default: [headless] tls_cert); the port then
    /// speaks only TLS, and a rotated file is picked up within seconds.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key (default: [headless] tls_key).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    pub store: StoreFlag,
    #[command(flatten)]
    pub runbook: RunbookFlags,
    #[command(flatten)]
    pub read_only: ReadOnlyFlag,
}

#[derive(Debug, Args)]
pub struct RemoteDecision {
    /// The approval id (the Runbooks pane, `GET /api/v1/runs`, or the timeline shows it).
    pub id: u64,
    #[command(flatten)]
    pub attach: DecisionAttach,
}

/// Where a verdict goes: `--attach` (alias `--server`, its older name) and the token.
#[derive(Debug, Clone, Default, Args)]
pub struct DecisionAttach {
    /// The headless daemon's base URL, e.g. http://fleetdeck.fleetdeck.svc:9180 (default:
    /// [attach] url).
    #[arg(long = "attach", visible_alias = "server", value_name = "URL")]
    pub attach: Option<String>,
    /// File holding the bearer token. Default: [attach] token_file, else $FLEETDECK_TOKEN,
    /// else the token the kubeconfig's current context yields.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

impl From<&DecisionAttach> for AttachFlags {
    fn from(d: &DecisionAttach) -> Self {
        Self {
            attach: d.attach.clone(),
            token_file: d.token_file.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// The runbooks loaded (from --runbooks, [runbooks] dir, or the built-in ones), with their
    /// trigger, cooldown and effective mode; broken files are listed with their error.
    List {
        #[command(flatten)]
        runbook: RunbookFlags,
        #[command(flatten)]
        read_only: ReadOnlyFlag,
    },
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
        #[command(flatten)]
        clusters: ClusterFlags,
        #[command(flatten)]
        store: StoreFlag,
        #[command(flatten)]
        runbook: RunbookFlags,
        #[command(flatten)]
        read_only: ReadOnlyFlag,
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
        #[command(flatten)]
        runbook: RunbookFlags,
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
    /// Audit entries, attached to an incident or not, oldest first: what the headless API and
    /// the runbook guard refused (`--kind refusal`), or any kind.
    List {
        /// refusal: what the headless API and the runbook guard refused; checkpoint: what
        /// retention pruned; or an entry kind.
        #[arg(long, value_enum)]
        kind: Option<AuditKind>,
        /// Only entries recorded since then: a duration ago (2h, 7d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many, the most recent.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

/// The kinds `audit list --kind` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditKind {
    Refusal,
    Checkpoint,
    Signal,
    Decision,
    Action,
    Approval,
    Note,
    Status,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Records per kind, size on disk, oldest and newest incident, retention's checkpoint.
    Stats {
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Prune now: resolved incidents (with their timelines) and entries on no incident with
    /// nothing newer than the retention; the audit chain keeps a checkpoint of what went.
    Prune {
        /// How long to keep (e.g. 30d); default: [store] retention.
        #[arg(long, value_name = "DURATION")]
        retention: Option<humantime::Duration>,
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Write the whole store as JSON lines (a versioned header, then one record a line).
    Export {
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Read an export into the store named by --store, which must be new (or empty); the
    /// export is checked whole (every line, the audit chain) before anything is written.
    Import {
        /// The export file; - reads stdin.
        file: PathBuf,
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
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// FOCUS 1.0–1.2 CSV export to read (repeatable; .csv.gz too); read as a stream, row by row.
    #[arg(long = "focus", value_name = "FILE")]
    pub focus: Vec<PathBuf>,
    /// How the exports write dates when not in ISO 8601, as strftime: '%m/%d/%y' reads 4/1/25
    /// (default: [cost] focus_date_format).
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
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
    // With --kubeconfig or --context, GPU types, spot share and utilisation come from the
    // clusters.
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// Exit code of `snapshot` when a cluster could not be synced in time.
pub const EXIT_NOT_SYNCED: u8 = 3;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A team's set-up: the simulated fleet, `fleetdeck headless` on it in approve mode, and
    /// this cockpit attached to the daemon (`fleetdeck attach`) rather than running its own
    /// pipeline.
    #[arg(long)]
    pub team: bool,
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
    #[command(flatten)]
    pub display: DisplayFlags,
    // The demo's own store unless given: a simulated fleet's incidents never mix with real ones.
    #[command(flatten)]
    pub store: StoreFlag,
    #[command(flatten)]
    pub runbook: RunbookFlags,
    #[command(flatten)]
    pub read_only: ReadOnlyFlag,
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
    /// Also write a fleetdeck.toml naming every simulated source (DCGM exporters, endpoints with
    /// SLOs, OpenCost, a budget), for `fleetdeck --config PATH snapshot|headless|cost`.
    #[arg(long, value_name = "PATH")]
    pub config_out: Option<PathBuf>,
    /// Inject a scenario at start (repeatable): xid-storm, node-notready, spot-interruption,
    /// bad-rollout, crashloop-rollout, pdb-block, api-flaky, endpoint-outage.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Answer TokenReviews and SubjectAccessReviews from this users file ([[user]] entries:
    /// name, token or token_file, role viewer|responder|approver|actor|alert-sender, groups).
    /// With --config-out and no --users, a viewer, a responder and an approver are written
    /// beside the config (fleetdeck-users.toml, tokens/<name>).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
}

impl SimArgs {
    /// Flags win over `[sim]`; scenarios from both are kept, the config's first.
    pub(super) fn options(&self, cfg: &config::SimConfig) -> sim::SimOptions {
        let mut scenarios = cfg.scenarios.clone();
        scenarios.extend(self.scenarios.iter().cloned());
        scenarios.dedup();
        sim::SimOptions {
            clusters: self.clusters.unwrap_or(cfg.clusters),
            nodes: self.nodes.unwrap_or(cfg.nodes),
            pods_per_node: self.pods_per_node.unwrap_or(cfg.pods_per_node),
            gpus_per_node: self.gpus_per_node.unwrap_or(cfg.gpus_per_node),
            seed: self.seed.unwrap_or(cfg.seed),
            listen: self.listen.unwrap_or(cfg.listen),
            kubeconfig_out: self.kubeconfig_out.clone(),
            scenarios,
            users: self.users.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// `headless --help` states the default `listen`; it must be the config's.
    #[test]
    fn headless_help_states_the_configs_default_listen_address() {
        use clap::CommandFactory;
        let cmd = super::Cli::command();
        let headless = cmd.find_subcommand("headless").expect("a headless command");
        let listen = headless
            .get_arguments()
            .find(|a| a.get_id() == "listen")
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let default = crate::config::HeadlessConfig::default().listen;
        assert!(listen.contains(&format!("[default: {default}")), "{listen}");
    }
}
