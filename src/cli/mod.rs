//! The command line: parses the flags and sends each command to the file of its family. Like
//! `main`, it may use every module; the families share only `setup` and `runtime()`.

mod args;
mod attach;
mod cockpit;
mod completions;
mod config;
mod cost;
mod headless;
mod incident;
mod progress;
mod prompt;
mod remote;
pub mod render;
mod runbook;
mod setup;
mod sim;
mod snapshot;
mod store;
pub mod wiring;

use std::process::ExitCode;

use anyhow::Context;
pub use args::*;

pub fn run() -> anyhow::Result<ExitCode> {
    completions::complete_if_asked();
    let cli = Cli::parse_settled();
    let success = |()| ExitCode::SUCCESS;
    match &cli.command {
        None => cockpit::cockpit(&cli).map(success),
        Some(Command::Init { force }) => config::init(&cli, *force).map(success),
        Some(Command::ConfigCheck) => config::check(&cli).map(success),
        Some(Command::Snapshot(args)) => snapshot::snapshot(&cli, args),
        Some(Command::Cost(args)) => cost::cost(&cli, args).map(success),
        Some(Command::Demo(args)) if args.team => attach::demo_team(&cli, args).map(success),
        Some(Command::Demo(args)) => cockpit::demo(&cli, args).map(success),
        Some(Command::Attach(args)) => attach::attach(&cli, args).map(success),
        Some(Command::Sim(args)) => sim::serve(&cli, args).map(success),
        Some(Command::Incident { command, .. }) => incident::incident(&cli, command).map(success),
        Some(Command::Audit {
            command: AuditCommand::Verify { output },
            ..
        }) => incident::audit_verify(&cli, *output),
        Some(Command::Audit {
            command: cmd @ AuditCommand::List { .. },
            ..
        }) => store::audit_list(&cli, cmd).map(success),
        Some(Command::Store { command, .. }) => store::store(&cli, command).map(success),
        Some(Command::Runbook(cmd)) => runbook::runbook(&cli, cmd),
        Some(Command::Headless(args)) => headless::headless(&cli, args).map(success),
        Some(Command::Completions { shell }) => completions::script(*shell).map(success),
        Some(Command::Man { dir }) => completions::man(dir.as_deref()).map(success),
    }
}

/// Only the commands that do async work start a runtime, so `init`, `config` and the store
/// commands spawn no threads; each caller keeps the runtime to itself and chooses how long
/// shutdown may wait for the tasks it spawned.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
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
