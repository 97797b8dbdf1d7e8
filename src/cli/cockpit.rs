//! The cockpit: on the configured clusters (no command), and `fleetdeck demo` on a simulated
//! fleet started in this process and reached over loopback, as a real cluster would be.

use super::setup::{global_mode, kube_targets, load_runbooks, open_store};
use super::{Cli, DemoArgs};
use crate::config::Config;
use crate::sim;

/// The cockpit on the configured clusters.
pub(super) fn cockpit(cli: &Cli) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let targets = kube_targets(cli, &cfg)?;
    let prometheus = super::wiring::prometheus_client(&cfg)?;
    let store = open_store(cli, &cfg)?;
    let rt = super::runtime()?;
    rt.block_on(run_cockpit(cli, &cfg, targets, prometheus, store, None))?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

/// The cockpit on a simulated fleet started in this process, reached over loopback HTTP as a
/// real cluster would be.
pub(super) fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
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
        users: None,
    };
    opts.validate()?;
    // A simulated fleet's incidents never mix with the real ones: the demo has its own store
    // unless --store names one.
    let store_path = cli
        .store
        .clone()
        .unwrap_or_else(crate::config::default_demo_store_path);
    let store = crate::store::Store::open(&store_path)?;
    // The sim's servers log to a file: the terminal belongs to the cockpit.
    let rt = super::runtime()?;
    rt.block_on(async {
        let running_sim = sim::start(&opts).await?;
        let d = &running_sim.description;
        // A healthy simulated fleet stays within its budget, which scales with the fleet.
        super::wiring::SimSources::from_description(d)
            .apply(&mut cfg, super::wiring::sim_budget(args.nodes));
        let targets = crate::sources::kube::targets(Some(&running_sim.kubeconfig), &[])?;
        let control = d["control"].as_str().map(str::to_string);
        run_cockpit(cli, &cfg, targets, None, store, control).await
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The cockpit over the pipeline, on `targets`: the executor, the sources, the evaluation and
/// the TUI. `control` is the simulated fleet's control address (the demo's `:scenario`), which
/// also marks the fleet as simulated.
async fn run_cockpit(
    cli: &Cli,
    cfg: &Config,
    targets: Vec<crate::sources::kube::ClusterTarget>,
    prometheus: Option<crate::sources::prometheus::PrometheusClient>,
    store: crate::store::Store,
    control: Option<String>,
) -> anyhow::Result<()> {
    let (theme, keymap) = cockpit_parts(cli, cfg)?;
    let runbooks = load_runbooks(cli, cfg);
    // The cockpit shows what could not start (a sink, the model registry) and goes on.
    let policy = crate::engine::FacePolicy::cockpit(global_mode(cli, cfg), cli.read_only.on);
    let engine = crate::engine::Engine::build(
        cfg,
        policy,
        crate::engine::EngineParts {
            store,
            runbooks,
            targets: &targets,
        },
    )
    .await?;
    let _paging = engine.start_paging(cfg, None)?;
    let running = engine.start_fleet(cfg, targets, prometheus);
    let evaluations = engine
        .pipeline(cfg, &running, None)
        .spawn(running.snapshots, None);
    let app = crate::tui::app::App::new(theme, keymap, control.is_some(), cli.display.noc)
        .with_log_lines(cfg.pod_logs.max_lines)
        .with_noc_rotation(
            &cfg.noc.panes,
            std::time::Duration::from_secs(cfg.noc.rotation_secs),
        )
        .map_err(|e| anyhow::anyhow!("fleetdeck.toml: {e}"))?;
    let effects = crate::tui::app::Effects {
        control,
        store: Some(engine.store.clone()),
        executor: Some(engine.executor.clone()),
        kube: engine.clients.clone(),
        attached: None,
    };
    crate::tui::app::run(app, evaluations, effects).await
}

/// Theme and keymap for the cockpit; a bad theme file is reported and the default used.
pub(super) fn cockpit_parts(
    cli: &Cli,
    cfg: &Config,
) -> anyhow::Result<(crate::tui::theme::Theme, crate::tui::keymap::Keymap)> {
    let (theme, error) = crate::tui::theme::load(
        cli.display.theme.as_deref(),
        crate::tui::theme::no_color_from_env(),
    );
    if let Some(e) = error {
        eprintln!("fleetdeck: {e}");
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let keymap = crate::tui::keymap::from_config(cfg)?;
    Ok((theme, keymap))
}
