//! Starts every configured source and the state task, and hands back the snapshot channel:
//! the one place that connects sources to state (used by every face that watches a fleet: the
//! cockpit, demo, headless, snapshot, cost and the rehearsal), with the engine's stages in
//! between (the endpoints' burn windows, [`super::stages`]). Also the clients actions use. May
//! import sources, state, signals, actions, model and config.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::model::Snapshot;
use crate::signals::slo::{BurnPolicy, EndpointWindows};
use crate::sources::Update;
use crate::sources::kube::ClusterTarget;
use crate::sources::prometheus::PrometheusClient;
use crate::state::{ClusterInfo, FleetState, spawn_fleet};

/// The running sources and state.
pub struct Running {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// How many GPU sources (DCGM exporters, NVML, Prometheus) will report.
    pub gpu_sources: usize,
    /// Whether a cost source will report.
    pub cost_source: bool,
}

impl Running {
    /// What the pipeline needs to know of the sources (when the picture is complete).
    pub fn pipeline_config(
        &self,
        cfg: &Config,
        origin: crate::model::incident::Origin,
    ) -> crate::pipeline::PipelineConfig {
        crate::pipeline::PipelineConfig {
            incident_window: cfg.store.incident_window,
            gpu_sources: self.gpu_sources,
            cost_source: self.cost_source,
            ..crate::pipeline::PipelineConfig::new(cfg.signals.clone(), origin)
        }
    }
}

/// The private CAs one source trusts: `[tls] ca_file`, then the source's own key.
pub fn tls_roots(
    cfg: &Config,
    own: Option<(&str, &str)>,
) -> Result<crate::sources::http::TlsRoots, crate::sources::http::TlsError> {
    let mut files = vec![("tls.ca_file", cfg.tls.ca_file.as_str())];
    files.extend(own);
    crate::sources::http::TlsRoots::load(&files)
}

/// The Prometheus client `[prometheus]` asks for, if any.
pub fn prometheus_client(cfg: &Config) -> anyhow::Result<Option<PrometheusClient>> {
    if cfg.prometheus.url.is_empty() {
        return Ok(None);
    }
    let token = match cfg.prometheus.bearer_token_file.trim() {
        "" => None,
        path => Some(
            std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| anyhow::anyhow!("[prometheus] bearer_token_file {path}: {e}"))?,
        ),
    };
    let roots = tls_roots(cfg, Some(("prometheus.ca_file", &cfg.prometheus.ca_file)))?;
    let client =
        PrometheusClient::with_roots(&cfg.prometheus.url, token, Duration::from_secs(30), &roots)
            .map_err(|e| anyhow::anyhow!("[prometheus] url: {e}"))?;
    Ok(Some(client))
}

/// Forwards one source's updates into the state's channel, wrapped as `Update`s.
fn forward<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
    tx: mpsc::Sender<Update>,
    wrap: fn(T) -> Update,
) {
    tokio::spawn(async move {
        while let Some(u) = rx.recv().await {
            if tx.send(wrap(u)).await.is_err() {
                break;
            }
        }
    });
}

/// Starts the state task and every source the config and `targets` name, with the SRE
/// workbook's burn windows. Must run inside a tokio runtime.
pub fn start(
    cfg: &Config,
    targets: Vec<ClusterTarget>,
    prometheus: Option<PrometheusClient>,
) -> Running {
    start_with(cfg, targets, prometheus, BurnPolicy::sre_workbook())
}

/// As [`start`], with the endpoints' SLO burn rules given (a rehearsal compresses their windows
/// as it compresses every other patience).
pub fn start_with(
    cfg: &Config,
    targets: Vec<ClusterTarget>,
    prometheus: Option<PrometheusClient>,
    burn: BurnPolicy,
) -> Running {
    let (tx, rx) = mpsc::channel(4096);
    let infos = targets
        .iter()
        .map(|t| ClusterInfo {
            name: t.context.clone(),
            server: t.server.clone(),
        })
        .collect();
    let state = FleetState::with_endpoints(infos, &cfg.endpoints)
        .with_gpu_window(cfg.signals.gpu_memory_window);
    let snapshots = spawn_fleet(state, rx);
    let liveness = crate::sources::kube::Liveness {
        idle_timeout: cfg.kubernetes.watch_idle_timeout,
        ..Default::default()
    };
    for (i, t) in targets.into_iter().enumerate() {
        crate::sources::kube::spawn_cluster(i, t, liveness, tx.clone());
    }
    let mut gpu_sources = cfg.gpu.dcgm.len() + usize::from(cfg.gpu.nvml);
    if !cfg.gpu.dcgm.is_empty() || cfg.gpu.nvml {
        let (gtx, grx) = mpsc::channel(64);
        if !cfg.gpu.dcgm.is_empty() {
            // A CA file that went bad since the config was checked turns its exporter off.
            let targets = cfg
                .gpu
                .dcgm
                .iter()
                .filter_map(
                    |t| match tls_roots(cfg, Some(("gpu.dcgm.ca_file", &t.ca_file))) {
                        Ok(roots) => Some((t.cluster.clone(), t.url.clone(), roots)),
                        Err(e) => {
                            tracing::error!(error = %e, url = %t.url, "this DCGM exporter is off");
                            None
                        }
                    },
                )
                .collect();
            crate::sources::dcgm::spawn_dcgm_with_roots(targets, cfg.gpu.interval(), gtx.clone());
        }
        if cfg.gpu.nvml {
            crate::sources::nvml::spawn_nvml(cfg.gpu.interval(), gtx);
        }
        forward(grx, tx.clone(), |u| Update::Gpu(Box::new(u)));
    }
    if let Some(client) = prometheus {
        let parse = |d: &str| humantime::parse_duration(d).unwrap_or(Duration::from_secs(30));
        let (ptx, prx) = mpsc::channel(4);
        crate::sources::prometheus::spawn_prometheus(
            client,
            parse(&cfg.prometheus.interval),
            parse(&cfg.prometheus.window),
            ptx,
        );
        forward(prx, tx.clone(), |u| Update::Prometheus(Box::new(u)));
        gpu_sources += 1;
    }
    if !cfg.endpoints.is_empty() {
        let (etx, erx) = mpsc::channel(64);
        let roots = tls_roots(
            cfg,
            Some(("tls.endpoints_ca_file", &cfg.tls.endpoints_ca_file)),
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the endpoints trust only the built-in roots");
            crate::sources::http::TlsRoots::default()
        });
        crate::sources::endpoints::spawn_endpoints_with_roots(
            cfg.endpoints.clone(),
            crate::sources::endpoints::EndpointPollOptions::new(Duration::from_secs(5)),
            &roots,
            etx,
        );
        let windows = EndpointWindows::new(&cfg.endpoints, burn);
        forward(
            super::stages::evaluate_endpoints(erx, windows),
            tx.clone(),
            |u| Update::Endpoint(Box::new(u)),
        );
    }
    if cfg.mlflow.enabled() {
        match registry_reader(cfg) {
            Ok(reader) => {
                crate::sources::mlflow::spawn_registry(
                    reader,
                    &cfg.mlflow,
                    cfg.endpoints.clone(),
                    snapshots.clone(),
                    tx.clone(),
                );
            }
            Err(e) => tracing::error!(error = %e, "the model registry is not read"),
        }
    }
    if cfg.airflow.enabled() {
        match airflow_client(cfg) {
            Ok(client) => {
                crate::sources::airflow::spawn_airflow(client, &cfg.airflow, tx.clone());
            }
            Err(e) => tracing::error!(error = %e, "Airflow is not read"),
        }
    }
    let cost_source = cost_options(cfg).is_some();
    if let Some(opts) = cost_options(cfg) {
        let (ctx, crx) = mpsc::channel(2);
        crate::sources::cost::spawn_cost(opts, cfg.cost.interval, snapshots.clone(), ctx);
        forward(crx, tx, |u| {
            Update::Cost(Box::new(super::stages::forecast_budget(u)))
        });
    }
    Running {
        snapshots,
        gpu_sources,
        cost_source,
    }
}

/// The pods of `targets`, watched by this process and nothing else: an attached cockpit with
/// a kubeconfig lists pods (150,000 rows at fleet scale, which its daemon does not stream) from
/// the clusters as a local cockpit does, and takes the rest of its picture from the daemon.
pub fn start_cluster_pods(
    cfg: &Config,
    targets: Vec<ClusterTarget>,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = mpsc::channel(4096);
    let infos = targets
        .iter()
        .map(|t| ClusterInfo {
            name: t.context.clone(),
            server: t.server.clone(),
        })
        .collect();
    let snapshots = spawn_fleet(FleetState::new(infos), rx);
    let liveness = crate::sources::kube::Liveness {
        idle_timeout: cfg.kubernetes.watch_idle_timeout,
        ..Default::default()
    };
    for (i, t) in targets.into_iter().enumerate() {
        crate::sources::kube::spawn_cluster_resources(
            i,
            t,
            liveness,
            tx.clone(),
            &[crate::model::update::Resource::Pods],
        );
    }
    snapshots
}

/// Airflow's client (`[airflow]`): its HTTP client and the credential from its file.
pub fn airflow_client(cfg: &Config) -> Result<crate::sources::airflow::AirflowClient, String> {
    let http = crate::sources::airflow::airflow_http(cfg)?;
    crate::sources::airflow::AirflowClient::new(&cfg.airflow, http)
}

/// The model registry's reader (`[mlflow]`): its HTTP client, the token from its file or
/// variable.
pub fn registry_reader(cfg: &Config) -> Result<crate::sources::mlflow::RegistryReader, String> {
    let http = crate::sources::mlflow::registry_http(cfg)?;
    crate::sources::mlflow::RegistryReader::new(&cfg.mlflow, http)
}

/// What the cost source reads every round (`[cost]`); `None` when no cost source is set.
pub fn cost_options(cfg: &Config) -> Option<crate::sources::cost::CostOptions> {
    let url = cfg.cost.opencost_url.trim();
    if url.is_empty() && cfg.cost.focus.is_empty() {
        return None;
    }
    Some(crate::sources::cost::CostOptions {
        opencost_url: (!url.is_empty()).then(|| url.to_string()),
        focus_files: cfg
            .cost
            .focus
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        monthly_budget: cfg.cost.monthly_budget,
        team_label: cfg.cost.team_label.clone(),
        idle_gpu_threshold_pct: cfg.cost.idle_gpu_threshold_pct,
        focus_date_format: cfg.cost.focus_date_format(),
        tls: tls_roots(
            cfg,
            Some(("cost.opencost_ca_file", &cfg.cost.opencost_ca_file)),
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "OpenCost is trusted with the built-in roots only");
            crate::sources::http::TlsRoots::default()
        }),
        ..crate::sources::cost::CostOptions::default()
    })
}

/// Clients that mutate, one per watched context: kube's own retries of 429/503 are off, so a
/// PodDisruptionBudget's refusal reaches the drain (see `actions::action_client`). A context
/// whose client cannot be built is left out (its watchers report it unreachable).
pub async fn action_clients(
    targets: &[crate::sources::kube::ClusterTarget],
) -> std::collections::HashMap<String, kube::Client> {
    let mut out = std::collections::HashMap::new();
    for t in targets {
        match t.config().await {
            Ok(cfg) => match crate::actions::action_client(cfg) {
                Ok(c) => {
                    out.insert(t.context.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(context = %t.context, error = %e, "no client for actions")
                }
            },
            Err(e) => tracing::warn!(context = %t.context, error = %e, "no client for actions"),
        }
    }
    out
}
