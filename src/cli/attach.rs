//! `fleetdeck attach URL`: the cockpit on a running daemon, fed by its live stream
//! (`tui::attach`), and `fleetdeck demo --team`: a simulated fleet, `fleetdeck headless` on it
//! in approve mode (both child processes of this one) and this cockpit attached to the daemon.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::setup::kube_targets;
use super::{AttachArgs, Cli, DemoArgs};
use crate::config::Config;

pub(super) fn attach(cli: &Cli, args: &AttachArgs) -> anyhow::Result<()> {
    let cfg = Config::load_or_default(cli.config.as_deref())?;
    let token = match &args.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    // Without a kubeconfig (a wall screen) the cockpit still attaches: the logs and YAML
    // views then say why they are absent.
    let targets = kube_targets(cli, &cfg).unwrap_or_default();
    let rt = super::runtime()?;
    rt.block_on(run_attached(cli, &cfg, &args.url, token, targets))?;
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// The first line of `path`: the bearer token, as `kubectl --token` takes it.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--token-file {} cannot be read: fix its path or permissions",
            path.display()
        )
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        anyhow::bail!(
            "--token-file {} is empty: write the daemon's API token into it",
            path.display()
        );
    }
    Ok(token)
}

async fn run_attached(
    cli: &Cli,
    cfg: &Config,
    url: &str,
    token: Option<String>,
    targets: Vec<crate::sources::kube::ClusterTarget>,
) -> anyhow::Result<()> {
    let (theme, keymap) = super::cockpit::cockpit_parts(cli, cfg)?;
    // Without a token file, the kubeconfig context's credential (a token, an exec plugin, an
    // auth provider) as the one-shot commands send it; without either (a wall screen with no
    // kubeconfig) nothing, and the daemon's 401 says what to give.
    let (kube_client, no_credential) = match token {
        Some(_) => (None, None),
        None => match super::remote::kube_client(cli, cfg, url).await {
            Ok(client) => (Some(client), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        },
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let options = crate::tui::attach::AttachOptions {
        url: url.trim_end_matches('/').to_string(),
        token,
        http,
        kube: kube_client,
        no_credential,
    };
    let (mut evaluations, attached) = crate::tui::attach::start(options);
    let kube = crate::engine::fleet::action_clients(&targets).await;
    // With a kubeconfig the pods are listed from the clusters, as a local cockpit lists them
    // (the daemon does not stream 150,000 rows); a wall screen shows no Pods pane.
    let lists_pods = !targets.is_empty() && !cli.display.noc;
    if lists_pods {
        let pods = crate::engine::fleet::start_cluster_pods(cfg, targets);
        evaluations = crate::tui::attach::with_cluster_pods(evaluations, pods);
    }
    let app = crate::tui::app::App::new(theme, keymap, false, cli.display.noc)
        .listing_cluster_pods(lists_pods)
        .with_log_lines(cfg.pod_logs.max_lines)
        .with_noc_rotation(&cfg.noc.panes, Duration::from_secs(cfg.noc.rotation_secs))
        .map_err(|e| anyhow::anyhow!("fleetdeck.toml: {e}"))?;
    let effects = crate::tui::app::Effects {
        control: None,
        store: None,
        executor: None,
        kube,
        attached: Some(attached),
    };
    crate::tui::app::run(app, evaluations, effects).await
}

/// A child process killed (and reaped) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fleetdeck demo --team`: the three commands of the README's recipe in one.
pub(super) fn demo_team(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this fleetdeck binary")?;
    let dir = std::env::temp_dir().join(format!("fleetdeck-team-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo's directory {}", dir.display()))?;
    let config = dir.join("fleetdeck.toml");
    let log = |name: &str| -> anyhow::Result<std::fs::File> {
        let path = dir.join(name);
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut sim = Command::new(&exe);
    sim.args(["sim", "--config-out"])
        .arg(&config)
        .args(["--nodes", &args.nodes.to_string()])
        .args(["--clusters", &args.clusters.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(log("sim.log")?);
    for s in &args.scenarios {
        sim.args(["--scenario", s]);
    }
    let mut sim = ChildGuard(sim.spawn().context("cannot start `fleetdeck sim`")?);
    let stdout = sim.0.stdout.take().context("the sim's stdout")?;
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .context("the sim printed no description")?;
    let description: serde_json::Value = serde_json::from_str(&first)
        .with_context(|| format!("the sim's description is not JSON: {first}"))?;
    let kubeconfig = description["kubeconfig"]
        .as_str()
        .map(PathBuf::from)
        .context("the sim's description names no kubeconfig")?;
    let token = format!("team-demo-{:016x}", rand::random::<u64>());
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token)
        .with_context(|| format!("cannot write {}", token_file.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free loopback port for the daemon")?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let store = cli.store.clone().unwrap_or_else(|| dir.join("store"));
    let daemon = Command::new(&exe)
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--store")
        .arg(&store)
        .args(["--mode", "approve", "headless", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--token-file")
        .arg(&token_file)
        .stdout(log("headless.log")?)
        .stderr(log("headless.err")?)
        .spawn()
        .context("cannot start `fleetdeck headless`")?;
    let _daemon = ChildGuard(daemon);
    wait_healthy(&url, &dir)?;
    let cfg = Config::load_or_default(Some(&config))?;
    let targets = crate::sources::kube::targets(Some(&kubeconfig), &[])?;
    let rt = super::runtime()?;
    rt.block_on(run_attached(cli, &cfg, &url, Some(token), targets))?;
    rt.shutdown_timeout(Duration::from_millis(200));
    drop(_daemon);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits for the daemon's `/healthz`.
fn wait_healthy(url: &str, dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = url.trim_start_matches("http://");
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_ok() {
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!(
        "the demo's daemon did not answer {url}/healthz within 30 s; its log is {}",
        dir.join("headless.err").display()
    )
}
