//! `fleetdeck cost`: a one-shot cost report from OpenCost and/or FOCUS files, with node and GPU
//! facts from the clusters when they are named, and the cost detectors' signals.

use std::io::Write;

use anyhow::Context;

use super::snapshot::gather_snapshot;
use super::{Cli, CostArgs, OutputFormat};
use crate::config::Config;

pub(super) fn cost(cli: &Cli, args: &CostArgs) -> anyhow::Result<()> {
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
    // The clusters are found as the cockpit finds them: the flags, then `[kubernetes]`, then
    // $KUBECONFIG or ~/.kube/config. Named ones must be reachable; an implicit kubeconfig that
    // is not there only means the report goes without the join.
    let named = cli.cluster.kubeconfig.is_some()
        || !cli.cluster.contexts.is_empty()
        || !cfg.kubernetes.kubeconfig.trim().is_empty()
        || !cfg.kubernetes.contexts.is_empty();
    let clusters = match super::setup::kube_targets(cli, &cfg) {
        Ok(_) => true,
        Err(e) if named => return Err(e),
        Err(_) => false,
    };
    let (nodes, gpu_utilisation) = if clusters {
        // The report is made here; the snapshot is only for the join.
        let mut fleet_cfg = cfg.clone();
        fleet_cfg.cost.opencost_url.clear();
        fleet_cfg.cost.focus.clear();
        let snap = gather_snapshot(cli, &fleet_cfg, std::time::Duration::from_secs(30))?;
        crate::sources::cost::fleet_join(&snap)
    } else {
        (Vec::new(), None)
    };
    let focus_date_format = match &args.date_format {
        Some(f) => Some(
            crate::model::cost::DateFormat::parse(f)
                .map_err(|e| anyhow::anyhow!("--date-format: {e}"))?,
        ),
        None => cfg.cost.focus_date_format(),
    };
    let bar = super::progress::bytes();
    let shown = bar.clone();
    let focus_progress = crate::sources::cost::FocusProgress(std::sync::Arc::new(
        move |at: &crate::sources::cost::FocusPosition| {
            shown.set_length(at.size);
            shown.set_position(at.read);
            shown.set_message(format!(
                "{} · {} rows",
                at.file,
                super::progress::count(at.rows)
            ));
        },
    ));
    let opts = CostOptions {
        nodes,
        focus_date_format,
        focus_progress: (!args.focus.is_empty()).then_some(focus_progress),
        gpu_utilisation,
        focus_files: args.focus.clone(),
        opencost_url,
        window: args.window.clone(),
        group_by,
        monthly_budget: args.budget.or(cfg.cost.monthly_budget),
        idle_gpu_threshold_pct: cfg.cost.idle_gpu_threshold_pct,
        team_label: cfg.cost.team_label.clone(),
        tls: super::wiring::tls_roots(
            &cfg,
            Some(("cost.opencost_ca_file", &cfg.cost.opencost_ca_file)),
        )?,
        ..CostOptions::default()
    };
    let rt = super::runtime()?;
    let report = rt.block_on(build_report(&opts));
    bar.finish_and_clear();
    let mut report = report?;
    crate::engine::stages::forecast_budget_of(&mut report);
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
            write!(out, "{}", super::render::cost::render_table(&report))?;
            for s in &signals {
                writeln!(
                    out,
                    "SIGNAL {:?} {}: {}",
                    s.severity,
                    super::render::safe::visible(&s.kind),
                    super::render::safe::visible(&s.summary)
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
