//! `fleetdeck runbook run NAME --target KIND/NAME`: one runbook now, on the fleet as it is,
//! through the guard; in approve mode the plan is asked for on the terminal.

use crate::cli::render::safe::visible;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::setup::{global_mode, kube_targets, open_store};
use crate::cli::snapshot::gather_snapshot;
use crate::cli::{Cli, OutputFormat};
use crate::config::Config;

pub(super) fn run(
    cli: &Cli,
    cfg: &Config,
    name: &str,
    target: &str,
    cluster: Option<&str>,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let rb = super::find(cli, cfg, name)?;
    let targets = kube_targets(cli, cfg)?;
    let cluster = match cluster {
        Some(c) => c.to_string(),
        None => targets
            .first()
            .map(|t| t.context.clone())
            .context("no cluster to run against")?,
    };
    let signal = manual_signal(&cluster, target)?;
    let store = open_store(cli, cfg)?;
    let snap = gather_snapshot(cli, cfg, std::time::Duration::from_secs(30))?;
    let rt = crate::cli::runtime()?;
    let record = rt.block_on(async {
        let policy = crate::engine::FacePolicy::one_run(global_mode(cli, cfg), cli.read_only.on);
        let engine = crate::engine::Engine::build(
            cfg,
            policy,
            crate::engine::EngineParts {
                store,
                runbooks: vec![rb.clone()],
                targets: &targets,
            },
        )
        .await?;
        let executor = engine.executor.clone();
        executor.observe_snapshot_only(snap);
        let ex = executor.clone();
        let id = format!("run-cli-{}", std::process::id());
        let run = tokio::task::spawn_blocking(move || ex.execute(&id, &rb, &signal, None));
        // The run blocks on approvals in approve mode; they are asked for here, as they appear.
        loop {
            if run.is_finished() {
                break;
            }
            for p in executor.awaiting_here() {
                let yes = crate::cli::prompt::approve_on_terminal(&p);
                // It fails only when the plan is no longer pending (decided or withdrawn
                // meanwhile); the run's record says what became of it.
                let _ = executor.decide(p.id, yes, &super::local_user_name());
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
                "run {} of {} on {}: {}",
                visible(&record.id),
                visible(&record.runbook),
                visible(&record.target),
                visible(&record.state.to_string())
            );
            for p in &record.plan {
                println!("  plan: {}", visible(&p.summary));
            }
            for a in &record.actions {
                println!("  action: {}", visible(&a.to_string()));
            }
        }
    }
    Ok(if record.state.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

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
