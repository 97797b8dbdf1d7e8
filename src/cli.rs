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
    #[command(subcommand)]
    pub command: Command,
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
    /// Serve a simulated fleet on loopback: Kubernetes API, DCGM metrics, model endpoints, OpenCost.
    Sim(SimArgs),
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
    /// bad-rollout, pdb-block, api-flaky, endpoint-outage.
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

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
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
