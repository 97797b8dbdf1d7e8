//! `fleetdeck.toml`: the schema, its defaults, validation with errors that name the file,
//! line and key, and `init` which writes the commented default. Imports only model.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The commented default written by `fleetdeck init`. Every key here is one the loader knows.
pub const DEFAULT_CONFIG: &str = r#"# fleetdeck configuration.
# Every key is optional: a missing key takes the default shown here.
# `fleetdeck config` validates this file and prints the effective settings.

[log]
# Log level when RUST_LOG is unset: error, warn, info, debug or trace.
level = "info"

[kubernetes]
# Kubeconfig to read; empty: $KUBECONFIG, else ~/.kube/config (as kubectl does).
# The global flag --kubeconfig PATH overrides it.
kubeconfig = ""
# Contexts to watch; empty: every context of the kubeconfig.
# The global flag --context NAME (repeatable) overrides it.
# With no kubeconfig at all, in a pod, the pod's service account (in-cluster config).
contexts = []
# A watch that hears nothing (no event, no bookmark) for this long is taken for a dead
# connection: the resource shows reconnecting and the watch resumes. At least 15s; the
# default is a little above the 290 s the server keeps a watch open.
watch_idle_timeout = "5m"

[gpu]
# Read this host's GPUs through NVML (without a driver this is one status line, nothing else).
nvml = true
# How often DCGM exporters are scraped and NVML is read.
interval = "10s"
# DCGM exporters to scrape (or read fleet-wide numbers from Prometheus), e.g.:
# [[gpu.dcgm]]
# cluster = "prod-us-east"
# url = "http://dcgm-exporter.gpu-operator.svc:9400/metrics"
# ca_file = "/etc/fleetdeck/gpu-ca.pem"   # a private CA for an https:// exporter (PEM)

[prometheus]
# Prometheus (or Thanos/Mimir) for fleet-wide GPU history (DCGM metrics); empty: not used.
url = ""
# A file holding a bearer token for it; empty: none.
bearer_token_file = ""
# A PEM file of the private CA that signed its https:// certificate; empty: none.
ca_file = ""
# How often to read, and how much history.
interval = "30s"
window = "1h"

[cost]
# OpenCost API (the cockpit and headless read it every interval; `fleetdeck cost` when
# --opencost is not given); empty: none.
opencost_url = ""
# A PEM file of the private CA that signed OpenCost's https:// certificate; empty: none.
opencost_ca_file = ""
# FOCUS exports (CSV, or gzip'd .csv.gz) read beside OpenCost every interval, e.g.
# ["/data/focus-2026-11.csv.gz"].
focus = []
# How those exports write ChargePeriodStart/End when not in ISO 8601 (strftime), e.g.
# "%m/%d/%y" for 4/1/25; empty: ISO 8601.
focus_date_format = ""
# How often the cost source makes a report.
interval = "5m"
# Monthly budget (in the bill's currency) for burn and the month-end forecast.
# monthly_budget = 250000.0
# The pod label (OpenCost) and resource tag (FOCUS) that names a team.
team_label = "team"
# A GPU held by a pod but used under this share is counted as idle cost.
idle_gpu_threshold_pct = 10.0

[keys]
# Key bindings for the cockpit: an action's list replaces its default keys, e.g.
# quit = ["ctrl-q"]
# Actions: quit, help, palette, filter, back, open, up, down, page_up, page_down, top,
# bottom, next_pane, prev_pane, sort_next, sort_reverse, goto_overview, goto_nodes,
# goto_gpus, goto_endpoints, goto_cost, goto_signals.

# Model endpoints to probe, one [[endpoints]] table each, e.g.:
# [[endpoints]]
# name = "llama-chat"
# url = "http://llama-chat.serving.svc:8000"
# protocol = "vllm"                   # kserve-v2 | vllm | triton | http
# model = "meta-llama/Llama-3.1-8B-Instruct"
# serving = { cluster = "prod-us-east", namespace = "serving", kind = "Deployment", name = "llama-chat" }
# registry = { model = "llama-chat", alias = "champion" }   # MLflow registered model (or annotate
#                                     # the serving object fleetdeck.io/registered-model=NAME[@ALIAS])
# [endpoints.slo]
# availability = 0.999
# latency = { percentile = "p99", target_ms = 2000 }

# The MLflow model registry endpoints' registered models live in (rollback_model(endpoint)
# moves the serving alias back), e.g.:
# [mlflow]
# tracking_uri = "http://mlflow.ml.svc:5000"
# token_file = "/etc/fleetdeck/secrets/mlflow-token"   # or token_env; sent as a bearer token
# alias = "champion"
# ca_file = ""                        # private CAs for an https tracking_uri, beside [tls] ca_file

# Notification sinks for runbooks' notify("NAME", …) and [[notify.policy]], e.g.:
# [notify.sinks.oncall]
# kind = "pagerduty"                  # slack | teams | pagerduty | webhook
# routing_key_file = "/etc/fleetdeck/secrets/pagerduty-routing-key"   # or routing_key_env
# [notify.sinks.chat]
# kind = "slack"
# url_env = "SLACK_WEBHOOK_URL"       # or url_file; never the URL itself
# [[notify.policy]]
# sink = "oncall"
# on = ["open", "ack", "resolve"]
# min_severity = "critical"

[signals]
# Kinds that are findings: shown on their pane and in the Signals pane's findings (runbooks may
# still trigger on them) but they open no incident. Every other kind opens one.
findings = ["gpu.idle", "budget.overrun_forecast", "endpoint.drift"]
# Each detector kind waits out its `for` duration (below, in [signals.for]) before it fires, as
# a Prometheus alerting rule's `for` does: a condition that clears first never fires. A firing
# signal keeps firing until its clear condition has held for its `clear_after` duration
# ([signals.clear_after]), so a value flapping around a threshold does not open and close.
# A node NotReady or Unknown for longer than this is a signal (node.not_ready's `for`).
node_not_ready_after = "1m"
# A pod waiting for GPUs longer than this is a signal (pod.pending_gpu's `for`).
pending_gpu_after = "5m"
# Time from a spot interruption notice to the instance going (AWS gives two minutes).
spot_notice = "2m"
# A GPU held by a pod and used under this share (%) is idle.
idle_gpu_pct = 5.0
# An idle GPU stops being idle only above idle_gpu_pct plus this margin (percentage points).
idle_clear_margin_pct = 5.0
# A GPU at or above this temperature (°C) is running hot.
gpu_hot_c = 87.0
# A hot GPU cools down only below gpu_hot_c minus this margin (°C).
gpu_hot_clear_margin_c = 5.0
# GPU memory exhaustion forecast (node-exporter's NodeFilesystemSpaceFillingUp, for GPUs): it
# fires only when the memory is already at least gpu_memory_high_pct (%) full AND a
# least-squares line over the last gpu_memory_window of samples (at least
# gpu_memory_min_samples, spanning at least half the window, explaining the data with
# R² >= gpu_memory_min_r2) reaches the total within gpu_memory_full_within (warning) or
# gpu_memory_full_critical_within (critical). Flat caching allocators and training saw-tooths
# do not fit a rising line, so they do not fire.
gpu_memory_high_pct = 80.0
gpu_memory_window = "10m"
gpu_memory_min_samples = 10
gpu_memory_min_r2 = 0.8
gpu_memory_full_within = "30m"
gpu_memory_full_critical_within = "5m"
# A GPU source with no report for this long is down (source.down) even without an error.
source_silent_after = "2m"

[signals.for]
# How long each kind's condition must hold before it fires ("0s": at once).
# Hardware events are facts: they fire at once.
gpu_xid = "0s"
gpu_ecc = "0s"
gpu_throttling = "2m"
gpu_memory_exhaustion_forecast = "5m"
gpu_idle = "10m"
node_interruption_notice = "0s"
pod_crash_loop = "2m"
pod_crash_loop_after_rollout = "1m"
endpoint_down = "1m"
# The burn-rate windows already demand persistence.
slo_fast_burn = "0s"
slo_slow_burn = "0s"
endpoint_drift = "5m"
budget_overrun_forecast = "0s"
# An API server unreachable, a watch broken, a GPU or cost source failing: blind is not calm.
source_down = "1m"

[signals.clear_after]
# How long a firing signal's clear condition must hold before it stops firing ("0s": at once).
node_not_ready = "1m"
node_interruption_notice = "0s"
pod_pending_gpu = "0s"
pod_crash_loop = "5m"
pod_crash_loop_after_rollout = "5m"
gpu_xid = "0s"
gpu_ecc = "0s"
gpu_throttling = "2m"
gpu_memory_exhaustion_forecast = "5m"
gpu_idle = "1m"
endpoint_down = "1m"
slo_fast_burn = "0s"
slo_slow_burn = "0s"
endpoint_drift = "5m"
budget_overrun_forecast = "0s"
source_down = "0s"

[pod_logs]
# The cockpit's logs view (l on a pod) keeps this many of a container's newest lines
# (1000 to 1000000); older ones scroll away. Lines over 16 KiB are cut with a marker.
max_lines = 10000

[noc]
# `fleetdeck --noc`: the panes a wall screen rotates through (overview is the wall) and the
# seconds each stays up (2 to 3600).
rotation_secs = 10
panes = ["overview", "signals", "incidents", "runbooks", "endpoints", "gpus", "nodes"]

[tls]
# A PEM file of private CAs every HTTP source (Prometheus, DCGM, endpoints, OpenCost) trusts,
# beside the system's roots and the bundled ones; empty: none.
ca_file = ""
# A PEM file of private CAs only the model endpoints trust; empty: none.
endpoints_ca_file = ""

[store]
# The RCA store (incidents, timelines, audit chain). Empty: $XDG_DATA_HOME/fleetdeck/store.
# The global flag --store PATH overrides it.
path = ""
# A signal joins the open incident of its group when it fires within this long of the last one.
incident_window = "1h"
# Resolved incidents (with their timelines) and entries on no incident are pruned once nothing
# about them is newer than this, e.g. "30d"; the audit chain keeps a checkpoint of what went.
# Empty: keep everything. `fleetdeck store prune` prunes now.
retention = ""

[runbooks]
# A directory of runbooks, one Rhai file each (see runbooks/README.md), relative to this file;
# it replaces the built-in runbooks. Empty: the runbooks built into fleetdeck.
dir = ""
# dry-run: plans only; approve: a human approves each run's plan; auto: act within the guard.
mode = "dry-run"
# Forbid every mutation (runbooks and the cockpit's manual actions); --read-only does too.
read_only = false
# The kill switch: true halts automation everywhere (so does K in the Runbooks pane).
kill_switch = false
# While this file exists, automation halts everywhere too (empty: no file switch).
kill_switch_file = ""
# Automation may have at most this share of a cluster's nodes cordoned or NotReady (Karpenter's
# disruption budget, rounded up).
max_disrupted_pct = 10.0
# Halt automation in a cluster with more unready nodes than both of these
# (cluster-autoscaler's max-total-unready-percentage and ok-total-unready-count).
halt_unready_pct = 45.0
halt_unready_count = 3
# Re-check that the triggering signal still fires this long before mutating.
revalidate_after = "2s"
# A run waiting for approval is denied after this long.
approval_timeout = "15m"
# One pass of a run may take this long, host calls (sleep, wait_for, drains, approvals asked
# for by the script) included; past it the run fails with "deadline exceeded" (1s to 24h).
run_timeout = "15m"
# Runs in progress at once (1 to 256), and runs waiting for one of them (0 to 10000); a run
# that finds the queue full is refused on its incident's timeline.
max_concurrent_runs = 8
max_queued_runs = 256
# Timeline entries and notifications one run may write (1 to 100000); at the cap one
# "truncated" entry is written and the rest are dropped (actions performed are always recorded).
max_entries_per_run = 200
# Replica budget of scale-downs by automation (scale to zero above all): replicas one run may
# remove, and replicas all runs together may remove in a cluster within scale_budget_window.
max_replicas_removed_per_run = 10
max_replicas_removed_per_window = 20
scale_budget_window = "1h"
# Whether automation may scale to zero a Deployment that serves a configured endpoint.
allow_scale_to_zero_serving = false

[headless]
# `fleetdeck headless`: the daemon that runs runbooks without a terminal.
# HTTP address for the Alertmanager webhook, /metrics, /healthz, /readyz and the API.
listen = "0.0.0.0:9180"
# The bearer token every API call but /healthz needs: read from this file, else from the
# environment variable named by token_env. Without one, the API refuses everything but /healthz.
token_file = ""
token_env = "FLEETDECK_TOKEN"
# Require the token for /metrics too.
metrics_auth = false
# The largest request body accepted, in bytes.
body_limit = 1048576
# Leader election: several replicas, one acts. The Lease lives in this namespace of the first
# cluster (or lease_context).
lease_namespace = "fleetdeck"
lease_name = "fleetdeck-headless"
lease_context = ""
# Where other replicas reach this one's API; the leader writes it on the Lease and followers
# forward Alertmanager's deliveries to it (each replica keeps its own alert book). Empty:
# $POD_IP with the listen port, else the listen address when it names one host.
advertise_url = ""
# Also write timeline entries as Kubernetes Events on their subject.
events = true
# Alert labels that name a subject, tried in order: Alertmanager's and Grafana's labels,
# Datadog's and Kibana's tags (key:value), Azure Monitor's custom properties and the names
# fleetdeck derives from the alert's target resource.
node_labels = ["node", "kubernetes_node", "instance", "kube_node", "host", "host.name", "kubernetes.node.name"]
namespace_labels = ["namespace", "exported_namespace", "kube_namespace", "kubernetes.namespace"]
deployment_labels = ["deployment", "kube_deployment", "kubernetes.deployment.name"]
endpoint_labels = ["endpoint", "service"]
cluster_labels = ["cluster", "kube_cluster_name", "orchestrator.cluster.name"]
# An alert seen once (its identity + status + start) is remembered this long.
alert_dedup_for = "24h"
# HTTPS: a PEM certificate chain and its private key (PKCS#8, PKCS#1 or SEC1), e.g. a
# cert-manager Secret's tls.crt and tls.key. With both set the port speaks only TLS, and the
# files are re-read within seconds of changing (a rotated certificate needs no restart).
tls_cert = ""
tls_key = ""
# A client must send a request's headers within this long of connecting, or of its previous
# response: slow and idle connections are closed.
header_read_timeout = "10s"
# A request's body and answer must be done within this long (else 503).
request_timeout = "30s"
# A connection on which no byte moves either way for this long, while no request of it is
# being handled, is closed (e.g. a client that does not read its response).
idle_timeout = "60s"
# Connections served at once; beyond it a new connection is closed at once (Prometheus,
# Alertmanager and the kubelet retry) until slow ones time out.
max_connections = 512

[sim]
# Defaults for `fleetdeck sim`; flags on the command line win.
# Simulated clusters (each with its own API server and kubeconfig context).
clusters = 2
# Nodes across all clusters (Kubernetes' limit: 5000 per cluster).
nodes = 40
# Pods on each node, daemon-set pods included (at most 110).
pods_per_node = 12
# GPUs on each GPU node (about four in five nodes carry GPUs; 0 for a CPU-only fleet).
gpus_per_node = 8
# Seed of the deterministic fleet: the same seed gives the same objects.
seed = 42
# Address of the control server; the other servers take the next ports (port 0: any free ports).
listen = "127.0.0.1:0"
# Scenarios injected at start (xid-storm, node-notready, spot-interruption, bad-rollout,
# crashloop-rollout, pdb-block, api-flaky, rbac-deny, endpoint-outage, gpu-memory-leak).
scenarios = []
"#;

/// `[notify]`: named sinks (`[notify.sinks.NAME]`) runbooks and policies send to, and the
/// policies that page on incidents (`[[notify.policy]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub sinks: std::collections::BTreeMap<String, SinkConfig>,
    pub policy: Vec<NotifyPolicy>,
    /// Whether the cockpit sends policy notifications too (headless's leader always does).
    pub cockpit: bool,
    /// How many times a message is tried before it is given up.
    pub attempts: u32,
    /// The first retry's wait; each next one doubles (a 429's Retry-After wins).
    #[serde(with = "crate::model::duration_serde")]
    pub retry_base: Duration,
    /// Messages waiting for delivery; one more is refused (and that is recorded).
    pub queue: u32,
    /// Each delivery's HTTP timeout.
    #[serde(with = "crate::model::duration_serde")]
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            sinks: std::collections::BTreeMap::new(),
            policy: Vec::new(),
            cockpit: false,
            attempts: 5,
            retry_base: Duration::from_secs(2),
            queue: 1000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[mlflow]`: the MLflow tracking server whose model registry names the endpoints' models.
/// Its token comes from a file or the environment, never from the config itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// e.g. `http://mlflow.ml.svc:5000`; empty: no registry.
    pub tracking_uri: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token_env: String,
    /// A PEM file of private CAs the registry's certificate is checked against, beside
    /// `[tls] ca_file` and the usual roots; empty: none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// The alias an endpoint serves when its `registry` names none.
    pub alias: String,
    /// How often each endpoint's model is read from the registry.
    #[serde(with = "crate::model::duration_serde")]
    pub interval: Duration,
    /// Each request's timeout.
    #[serde(with = "crate::model::duration_serde")]
    pub timeout: Duration,
    /// Refused: a secret written in the config.
    #[serde(default, skip_serializing)]
    pub token: Option<InlineSecret>,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        Self {
            tracking_uri: String::new(),
            token_file: String::new(),
            token_env: String::new(),
            ca_file: String::new(),
            alias: crate::model::registry::DEFAULT_ALIAS.to_string(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            token: None,
        }
    }
}

impl MlflowConfig {
    /// Whether a registry is configured.
    pub fn enabled(&self) -> bool {
        !self.tracking_uri.trim().is_empty()
    }

    /// The bearer token, read now from its file or variable; `None` without one.
    pub fn read_token(&self) -> Result<Option<String>, String> {
        read_secret(&self.token_file, &self.token_env)
            .map_err(|e| format!("[mlflow] token from {}: {}", e.from, e.reason))
    }
}

/// Why a secret named by a `*_file` or `*_env` key could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretError {
    /// The file, or `$VARIABLE`.
    pub from: String,
    pub reason: String,
}

/// Reads the secret a `*_file` key (first) or a `*_env` key names, trimmed; `None` when
/// neither is set. A file that cannot be read, a variable that is not set and an empty value
/// are errors naming where the secret was looked for.
pub fn read_secret(file: &str, env: &str) -> Result<Option<String>, SecretError> {
    let (from, read) = if !file.trim().is_empty() {
        (
            file.trim().to_string(),
            std::fs::read_to_string(file.trim()).map_err(|e| e.to_string()),
        )
    } else if !env.trim().is_empty() {
        (
            format!("${}", env.trim()),
            std::env::var(env.trim()).map_err(|e| e.to_string()),
        )
    } else {
        return Ok(None);
    };
    let value = read.map_err(|reason| SecretError {
        from: from.clone(),
        reason,
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(SecretError {
            from,
            reason: "it is empty".into(),
        });
    }
    Ok(Some(value.to_string()))
}

/// What a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams workflow ("When a Teams webhook request is received") webhook.
    Teams,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// fleetdeck's own JSON to any URL.
    Webhook,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Pagerduty => "pagerduty",
            Self::Webhook => "webhook",
        }
    }
}

/// One `[notify.sinks.NAME]`. Its secret (the webhook URL, PagerDuty's routing key) comes from a
/// file or the environment, never from the config itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url_env: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routing_key_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routing_key_env: String,
    /// PagerDuty's Events API (default https://events.pagerduty.com/v2/enqueue; the EU one is
    /// https://events.eu.pagerduty.com/v2/enqueue).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub events_url: String,
    /// Refused: a secret written in the config.
    #[serde(default, skip_serializing)]
    pub url: Option<InlineSecret>,
    /// Refused: a secret written in the config.
    #[serde(default, skip_serializing)]
    pub routing_key: Option<InlineSecret>,
}

/// A secret written inline in the config: never accepted (its file and line are named).
#[derive(Debug, Clone, PartialEq)]
pub struct InlineSecret;

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a secret is never written in the config (configs are shared, committed and \
             printed): put it in a file and name it with url_file / routing_key_file / \
             token_file, or in the environment with url_env / routing_key_env / token_env",
        ))
    }
}

/// `[[notify.policy]]`: page a sink when incidents open, are acknowledged or resolve.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyPolicy {
    pub sink: String,
    /// Of `open`, `ack`, `resolve`.
    #[serde(default = "NotifyPolicy::default_on")]
    pub on: Vec<IncidentEvent>,
    /// The least severe incident it pages for.
    #[serde(default = "NotifyPolicy::default_severity")]
    pub min_severity: crate::model::signal::Severity,
}

impl NotifyPolicy {
    fn default_on() -> Vec<IncidentEvent> {
        vec![
            IncidentEvent::Open,
            IncidentEvent::Ack,
            IncidentEvent::Resolve,
        ]
    }

    fn default_severity() -> crate::model::signal::Severity {
        crate::model::signal::Severity::Critical
    }
}

/// What happened to an incident, as a policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentEvent {
    Open,
    Ack,
    Resolve,
}

impl IncidentEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ack => "ack",
            Self::Resolve => "resolve",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub log: LogConfig,
    pub kubernetes: KubernetesConfig,
    pub signals: Thresholds,
    pub cost: CostConfig,
    pub gpu: GpuConfig,
    pub prometheus: PrometheusConfig,
    /// Key bindings: action → keys, replacing that action's defaults (`[keys]`).
    pub keys: std::collections::BTreeMap<String, Vec<String>>,
    /// Model endpoints to probe (`[[endpoints]]`).
    pub endpoints: Vec<crate::model::endpoint::EndpointConfig>,
    pub pod_logs: PodLogsConfig,
    pub noc: NocConfig,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub runbooks: RunbooksConfig,
    pub headless: HeadlessConfig,
    pub sim: SimConfig,
    pub notify: NotifyConfig,
    pub mlflow: MlflowConfig,
    /// The file this config was read from, so that checks made elsewhere (the cockpit's key
    /// bindings) can name the line of a bad key. Not part of the schema.
    #[serde(skip)]
    pub origin: ConfigOrigin,
}

/// The file a config was read from and its text (empty for the built-in defaults).
#[derive(Debug, Clone, Default)]
pub struct ConfigOrigin {
    pub path: PathBuf,
    pub text: String,
}

/// Where a config came from does not make two configs different.
impl PartialEq for ConfigOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Config {
    /// An error about `table.key`, located at its line when the config came from a file.
    pub fn error_at(&self, table: &str, key: &str, message: impl Into<String>) -> ConfigError {
        let o = &self.origin;
        let (path, line, column) = if o.path.as_os_str().is_empty() {
            (PathBuf::from("(built-in defaults)"), 0, 0)
        } else {
            let (line, column) = line_col(&o.text, offset_of(&o.text, table, key).unwrap_or(0));
            (o.path.clone(), line, column)
        };
        ConfigError::Invalid {
            path,
            line,
            column,
            key: format!("{table}.{key}"),
            message: message.into(),
        }
    }
}

/// Every kind the detectors raise (alerts from an intake are `alert.<name>`).
pub const SIGNAL_KINDS: &[&str] = &[
    "budget.overrun_forecast",
    "endpoint.down",
    "endpoint.drift",
    "gpu.ecc",
    "gpu.idle",
    "gpu.memory_exhaustion_forecast",
    "gpu.throttling",
    "gpu.xid",
    "node.interruption_notice",
    "node.not_ready",
    "pod.crash_loop",
    "pod.crash_loop_after_rollout",
    "pod.pending_gpu",
    "slo.fast_burn",
    "slo.slow_burn",
    "source.down",
];

/// Kinds that are findings unless `[signals] findings` says otherwise: an idle GPU, a budget
/// forecast and drift are things to know and act on today, not incidents to page about.
pub const DEFAULT_FINDINGS: &[&str] = &["gpu.idle", "budget.overrun_forecast", "endpoint.drift"];

/// Detector thresholds (`[signals]` in fleetdeck.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A node NotReady/Unknown for longer than this is a signal (node.not_ready's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub node_not_ready_after: Duration,
    /// A pod waiting for GPUs longer than this is a signal (pod.pending_gpu's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub pending_gpu_after: Duration,
    /// How long a spot interruption notice gives before the instance goes (AWS: 2 minutes).
    #[serde(with = "crate::model::duration_serde")]
    pub spot_notice: Duration,
    /// A GPU held by a pod and used under this share is idle.
    pub idle_gpu_pct: f64,
    /// An idle GPU clears only above `idle_gpu_pct` plus this many percentage points.
    pub idle_clear_margin_pct: f64,
    /// A GPU at or above this temperature is running hot.
    pub gpu_hot_c: f64,
    /// A hot GPU clears only below `gpu_hot_c` minus this many degrees.
    pub gpu_hot_clear_margin_c: f64,
    /// The memory forecast looks only at GPUs at least this full (%).
    pub gpu_memory_high_pct: f64,
    /// The memory forecast fits a line over this much history.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_window: Duration,
    /// The fewest samples (spanning at least half the window) the forecast trusts.
    pub gpu_memory_min_samples: u32,
    /// The least R² of the fit for it to count as a trend.
    pub gpu_memory_min_r2: f64,
    /// A GPU whose memory, on its fitted trend, fills within this long: a warning.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_within: Duration,
    /// … within this long: critical.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_critical_within: Duration,
    /// A GPU source with no report for this long is down (`source.down`) even without an error:
    /// its collector stopped.
    #[serde(with = "crate::model::duration_serde")]
    pub source_silent_after: Duration,
    /// How long each kind's condition must hold before it fires (`[signals.for]`).
    #[serde(rename = "for")]
    pub pending_for: PendingFor,
    /// How long a firing kind's clear condition must hold before it stops firing.
    pub clear_after: ClearAfter,
    /// Kinds that are findings: shown where they belong (and runbooks may trigger on them)
    /// but they open no incident. Every other kind opens one.
    pub findings: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            node_not_ready_after: Duration::from_secs(60),
            pending_gpu_after: Duration::from_secs(300),
            spot_notice: Duration::from_secs(120),
            idle_gpu_pct: 5.0,
            idle_clear_margin_pct: 5.0,
            gpu_hot_c: 87.0,
            gpu_hot_clear_margin_c: 5.0,
            gpu_memory_high_pct: 80.0,
            gpu_memory_window: Duration::from_secs(600),
            gpu_memory_min_samples: 10,
            gpu_memory_min_r2: 0.8,
            gpu_memory_full_within: Duration::from_secs(1800),
            gpu_memory_full_critical_within: Duration::from_secs(300),
            source_silent_after: Duration::from_secs(120),
            pending_for: PendingFor::default(),
            clear_after: ClearAfter::default(),
            findings: DEFAULT_FINDINGS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

impl Thresholds {
    /// These thresholds with every `[signals.for]` and `[signals.clear_after]` at zero: a signal
    /// fires while its condition holds and not a moment longer. For one-shot evaluations, which
    /// have no history to hold a condition over, and for tests about a condition rather than its
    /// timing. `node_not_ready_after` and `pending_gpu_after` stay: their detectors measure them
    /// from the API's own timestamps, which a one-shot sees too.
    pub fn without_patience(&self) -> Self {
        Self {
            pending_for: PendingFor::zero(),
            clear_after: ClearAfter::zero(),
            ..self.clone()
        }
    }

    /// Every `for` and `clear_after` (the node and pending-pod thresholds included) times
    /// `factor`: rehearsals run time faster.
    pub fn scale_patience(&mut self, factor: f64) {
        self.node_not_ready_after = self.node_not_ready_after.mul_f64(factor);
        self.pending_gpu_after = self.pending_gpu_after.mul_f64(factor);
        for d in self
            .pending_for
            .durations_mut()
            .into_iter()
            .chain(self.clear_after.durations_mut())
        {
            *d = d.mul_f64(factor);
        }
    }

    /// How long a signal resumed from the store stays *unknown* when a process starts: its
    /// kind's `for`, plus the history its detector needs before it can see the condition at all
    /// (the memory forecast trusts no fit over less than half its window). Until then its
    /// absence says nothing, so it neither clears nor mitigates an incident.
    pub fn resume_hold(&self, kind: &str) -> Duration {
        let own = match kind {
            "gpu.memory_exhaustion_forecast" => self.gpu_memory_window / 2,
            _ => Duration::ZERO,
        };
        self.for_kind(kind) + own
    }

    /// The `for` of a detector kind (`gpu.idle`); zero for a kind without one.
    pub fn for_kind(&self, kind: &str) -> Duration {
        let f = &self.pending_for;
        match kind {
            // Their detectors measure from the API's own timestamps (readiness, creation).
            "node.not_ready" => self.node_not_ready_after,
            "pod.pending_gpu" => self.pending_gpu_after,
            "gpu.xid" => f.gpu_xid,
            "gpu.ecc" => f.gpu_ecc,
            "gpu.throttling" => f.gpu_throttling,
            "gpu.memory_exhaustion_forecast" => f.gpu_memory_exhaustion_forecast,
            "gpu.idle" => f.gpu_idle,
            "node.interruption_notice" => f.node_interruption_notice,
            "pod.crash_loop" => f.pod_crash_loop,
            "pod.crash_loop_after_rollout" => f.pod_crash_loop_after_rollout,
            "endpoint.down" => f.endpoint_down,
            "slo.fast_burn" => f.slo_fast_burn,
            "slo.slow_burn" => f.slo_slow_burn,
            "endpoint.drift" => f.endpoint_drift,
            "budget.overrun_forecast" => f.budget_overrun_forecast,
            "source.down" => f.source_down,
            _ => Duration::ZERO,
        }
    }

    /// The `clear_after` of a detector kind; zero for a kind without one.
    pub fn clear_after_kind(&self, kind: &str) -> Duration {
        let c = &self.clear_after;
        match kind {
            "node.not_ready" => c.node_not_ready,
            "node.interruption_notice" => c.node_interruption_notice,
            "pod.pending_gpu" => c.pod_pending_gpu,
            "pod.crash_loop" => c.pod_crash_loop,
            "pod.crash_loop_after_rollout" => c.pod_crash_loop_after_rollout,
            "gpu.xid" => c.gpu_xid,
            "gpu.ecc" => c.gpu_ecc,
            "gpu.throttling" => c.gpu_throttling,
            "gpu.memory_exhaustion_forecast" => c.gpu_memory_exhaustion_forecast,
            "gpu.idle" => c.gpu_idle,
            "endpoint.down" => c.endpoint_down,
            "slo.fast_burn" => c.slo_fast_burn,
            "slo.slow_burn" => c.slo_slow_burn,
            "endpoint.drift" => c.endpoint_drift,
            "budget.overrun_forecast" => c.budget_overrun_forecast,
            "source.down" => c.source_down,
            _ => Duration::ZERO,
        }
    }
}

/// `[signals.for]`: how long each kind's condition must hold before it fires. node.not_ready
/// and pod.pending_gpu have theirs in `[signals]` (`node_not_ready_after`, `pending_gpu_after`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PendingFor {
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_xid: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_ecc: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_throttling: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_exhaustion_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_idle: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub node_interruption_notice: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop_after_rollout: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_down: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_fast_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_slow_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_drift: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub budget_overrun_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub source_down: Duration,
}

impl Default for PendingFor {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            gpu_xid: Duration::ZERO,
            gpu_ecc: Duration::ZERO,
            gpu_throttling: m(2),
            gpu_memory_exhaustion_forecast: m(5),
            gpu_idle: m(10),
            node_interruption_notice: Duration::ZERO,
            pod_crash_loop: m(2),
            pod_crash_loop_after_rollout: m(1),
            endpoint_down: m(1),
            slo_fast_burn: Duration::ZERO,
            slo_slow_burn: Duration::ZERO,
            endpoint_drift: m(5),
            budget_overrun_forecast: Duration::ZERO,
            source_down: m(1),
        }
    }
}

impl PendingFor {
    fn zero() -> Self {
        let mut z = Self::default();
        for d in z.durations_mut() {
            *d = Duration::ZERO;
        }
        z
    }

    fn durations_mut(&mut self) -> Vec<&mut Duration> {
        vec![
            &mut self.gpu_xid,
            &mut self.gpu_ecc,
            &mut self.gpu_throttling,
            &mut self.gpu_memory_exhaustion_forecast,
            &mut self.gpu_idle,
            &mut self.node_interruption_notice,
            &mut self.pod_crash_loop,
            &mut self.pod_crash_loop_after_rollout,
            &mut self.endpoint_down,
            &mut self.slo_fast_burn,
            &mut self.slo_slow_burn,
            &mut self.endpoint_drift,
            &mut self.budget_overrun_forecast,
            &mut self.source_down,
        ]
    }
}

/// `[signals.clear_after]`: how long a firing kind's clear condition must hold before it stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClearAfter {
    #[serde(with = "crate::model::duration_serde")]
    pub node_not_ready: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub node_interruption_notice: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_pending_gpu: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub pod_crash_loop_after_rollout: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_xid: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_ecc: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_throttling: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_exhaustion_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_idle: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_down: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_fast_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub slo_slow_burn: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub endpoint_drift: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub budget_overrun_forecast: Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub source_down: Duration,
}

impl Default for ClearAfter {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            node_not_ready: m(1),
            node_interruption_notice: Duration::ZERO,
            pod_pending_gpu: Duration::ZERO,
            pod_crash_loop: m(5),
            pod_crash_loop_after_rollout: m(5),
            gpu_xid: Duration::ZERO,
            gpu_ecc: Duration::ZERO,
            gpu_throttling: m(2),
            gpu_memory_exhaustion_forecast: m(5),
            gpu_idle: m(1),
            endpoint_down: m(1),
            slo_fast_burn: Duration::ZERO,
            slo_slow_burn: Duration::ZERO,
            endpoint_drift: m(5),
            budget_overrun_forecast: Duration::ZERO,
            source_down: Duration::ZERO,
        }
    }
}

impl ClearAfter {
    fn zero() -> Self {
        let mut z = Self::default();
        for d in z.durations_mut() {
            *d = Duration::ZERO;
        }
        z
    }

    fn durations_mut(&mut self) -> Vec<&mut Duration> {
        vec![
            &mut self.node_not_ready,
            &mut self.node_interruption_notice,
            &mut self.pod_pending_gpu,
            &mut self.pod_crash_loop,
            &mut self.pod_crash_loop_after_rollout,
            &mut self.gpu_xid,
            &mut self.gpu_ecc,
            &mut self.gpu_throttling,
            &mut self.gpu_memory_exhaustion_forecast,
            &mut self.gpu_idle,
            &mut self.endpoint_down,
            &mut self.slo_fast_burn,
            &mut self.slo_slow_burn,
            &mut self.endpoint_drift,
            &mut self.budget_overrun_forecast,
            &mut self.source_down,
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadlessConfig {
    pub listen: SocketAddr,
    pub token_file: String,
    pub token_env: String,
    pub metrics_auth: bool,
    pub body_limit: usize,
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_context: String,
    /// Where other replicas reach this one's API (written on the Lease while it leads, so
    /// followers forward alert deliveries to it); empty: `$POD_IP` with the listen port.
    pub advertise_url: String,
    pub events: bool,
    pub node_labels: Vec<String>,
    pub namespace_labels: Vec<String>,
    pub deployment_labels: Vec<String>,
    pub endpoint_labels: Vec<String>,
    pub cluster_labels: Vec<String>,
    #[serde(with = "crate::model::duration_serde")]
    pub alert_dedup_for: std::time::Duration,
    /// PEM certificate chain; with `tls_key` the listener speaks only TLS. Empty: plain HTTP.
    pub tls_cert: String,
    pub tls_key: String,
    #[serde(with = "crate::model::duration_serde")]
    pub header_read_timeout: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub request_timeout: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
}

impl Default for HeadlessConfig {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            token_file: String::new(),
            token_env: "FLEETDECK_TOKEN".into(),
            metrics_auth: false,
            body_limit: 1024 * 1024,
            lease_namespace: "fleetdeck".into(),
            lease_name: "fleetdeck-headless".into(),
            lease_context: String::new(),
            advertise_url: String::new(),
            events: true,
            node_labels: v(&[
                "node",
                "kubernetes_node",
                "instance",
                "kube_node",
                "host",
                "host.name",
                "kubernetes.node.name",
            ]),
            namespace_labels: v(&[
                "namespace",
                "exported_namespace",
                "kube_namespace",
                "kubernetes.namespace",
            ]),
            deployment_labels: v(&[
                "deployment",
                "kube_deployment",
                "kubernetes.deployment.name",
            ]),
            endpoint_labels: v(&["endpoint", "service"]),
            cluster_labels: v(&["cluster", "kube_cluster_name", "orchestrator.cluster.name"]),
            alert_dedup_for: std::time::Duration::from_secs(24 * 3600),
            tls_cert: String::new(),
            tls_key: String::new(),
            header_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunbooksConfig {
    pub dir: String,
    pub mode: crate::model::Mode,
    pub read_only: bool,
    pub kill_switch: bool,
    pub kill_switch_file: String,
    pub max_disrupted_pct: f64,
    pub halt_unready_pct: f64,
    pub halt_unready_count: u32,
    #[serde(with = "crate::model::duration_serde")]
    pub revalidate_after: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub approval_timeout: std::time::Duration,
    /// Wall-clock limit of one pass of a run, host calls included.
    #[serde(with = "crate::model::duration_serde")]
    pub run_timeout: std::time::Duration,
    /// Runs in progress at once.
    pub max_concurrent_runs: u32,
    /// Runs waiting for a worker; one more is refused.
    pub max_queued_runs: u32,
    /// Timeline entries and notifications one run may write; one "truncated" entry marks the
    /// cap and the rest are dropped (the actions it performs are always recorded).
    pub max_entries_per_run: u32,
    /// Replicas one run may remove by scaling down.
    pub max_replicas_removed_per_run: u32,
    /// Replicas automation may remove in one cluster within `scale_budget_window`.
    pub max_replicas_removed_per_window: u32,
    #[serde(with = "crate::model::duration_serde")]
    pub scale_budget_window: std::time::Duration,
    /// Whether automation may scale to zero a Deployment that serves a configured endpoint.
    pub allow_scale_to_zero_serving: bool,
}

/// A shipped runbook writes a handful of entries; 200 leaves room for a chatty one and keeps a
/// runaway loop of notes to a few hundred KiB of the store.
pub const DEFAULT_MAX_ENTRIES_PER_RUN: usize = 200;

impl Default for RunbooksConfig {
    fn default() -> Self {
        Self {
            // The built-in runbooks unless a directory is named: a `runbooks/` folder that
            // happens to be in the working directory must not silently replace them.
            dir: String::new(),
            mode: crate::model::Mode::DryRun,
            read_only: false,
            kill_switch: false,
            kill_switch_file: String::new(),
            max_disrupted_pct: 10.0,
            halt_unready_pct: 45.0,
            halt_unready_count: 3,
            revalidate_after: std::time::Duration::from_secs(2),
            approval_timeout: std::time::Duration::from_secs(900),
            run_timeout: std::time::Duration::from_secs(900),
            max_concurrent_runs: 8,
            max_queued_runs: 256,
            max_entries_per_run: DEFAULT_MAX_ENTRIES_PER_RUN as u32,
            max_replicas_removed_per_run: 10,
            max_replicas_removed_per_window: 20,
            scale_budget_window: std::time::Duration::from_secs(3600),
            allow_scale_to_zero_serving: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodLogsConfig {
    /// The newest lines the logs view keeps of one container.
    pub max_lines: usize,
}

/// The bounds of `[pod_logs] max_lines`: enough to scroll back through, few enough to keep in memory.
pub const POD_LOGS_MAX_LINES: std::ops::RangeInclusive<usize> = 1000..=1_000_000;

impl Default for PodLogsConfig {
    fn default() -> Self {
        Self { max_lines: 10_000 }
    }
}

/// `[noc]`: what `--noc` rotates through, and how long each pane stays up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NocConfig {
    /// Seconds each pane stays up.
    pub rotation_secs: u64,
    /// Pane names in rotation order (`overview` is the wall); the cockpit checks the names.
    pub panes: Vec<String>,
}

/// The bounds of `[noc] rotation_secs`: long enough to read a pane, short enough to rotate.
pub const NOC_ROTATION_SECS: std::ops::RangeInclusive<u64> = 2..=3600;

impl Default for NocConfig {
    fn default() -> Self {
        Self {
            rotation_secs: 10,
            panes: [
                "overview",
                "signals",
                "incidents",
                "runbooks",
                "endpoints",
                "gpus",
                "nodes",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// `[tls]`: private CAs for the HTTP sources.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM CAs every HTTP source trusts; empty: none.
    pub ca_file: String,
    /// PEM CAs only the model endpoints trust; empty: none.
    pub endpoints_ca_file: String,
}

/// Whether `path` holds at least one PEM certificate; the message says what is wrong with it.
fn check_ca_file(path: &str) -> Result<(), String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("the CA file {path:?} cannot be read: {e}"))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(format!(
            "the CA file {path:?} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)"
        )),
        Err(e) => Err(format!("the CA file {path:?} is not PEM certificates: {e}")),
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store directory; empty: the XDG data dir.
    pub path: String,
    /// Signals of one group within this long of each other join one incident.
    #[serde(with = "crate::model::duration_serde")]
    pub incident_window: std::time::Duration,
    /// How long resolved incidents and entries on no incident are kept, e.g. "30d"; empty:
    /// forever.
    pub retention: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            incident_window: std::time::Duration::from_secs(3600),
            retention: String::new(),
        }
    }
}

impl StoreConfig {
    /// `retention` as a duration; `None` keeps everything (validation rejects a bad one).
    pub fn retention(&self) -> Option<std::time::Duration> {
        let text = self.retention.trim();
        (!text.is_empty())
            .then(|| humantime::parse_duration(text).ok())
            .flatten()
    }

    /// `--store` wins, then `[store] path`, then the XDG data dir.
    pub fn resolve(&self, flag: Option<&Path>) -> PathBuf {
        match flag {
            Some(p) => p.to_path_buf(),
            None if !self.path.trim().is_empty() => PathBuf::from(self.path.trim()),
            None => default_store_path(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Read this host's GPUs through NVML (degrades to a status line without a driver).
    pub nvml: bool,
    /// How often DCGM exporters are scraped and NVML is read, e.g. "10s".
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub interval: String,
    /// DCGM exporters to scrape, each with the cluster (kubeconfig context) it belongs to.
    pub dcgm: Vec<DcgmTarget>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Prometheus (or Thanos/Mimir) HTTP API base URL; empty: not used.
    pub url: String,
    /// A file holding a bearer token for it; empty: none.
    pub bearer_token_file: String,
    /// A PEM file of the private CA behind its https:// URL; empty: none.
    pub ca_file: String,
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub interval: String,
    /// How much history to read for the charts.
    #[serde(deserialize_with = "crate::model::duration_serde::text")]
    pub window: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            bearer_token_file: String::new(),
            ca_file: String::new(),
            interval: "30s".into(),
            window: "1h".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DcgmTarget {
    pub cluster: String,
    pub url: String,
    /// A PEM file of the private CA behind its https:// URL; empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            nvml: true,
            interval: "10s".into(),
            dcgm: Vec::new(),
        }
    }
}

impl GpuConfig {
    pub fn interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.interval).unwrap_or(std::time::Duration::from_secs(10))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    pub opencost_url: String,
    /// A PEM file of the private CA behind OpenCost's https:// URL; empty: none.
    pub opencost_ca_file: String,
    /// FOCUS exports the cockpit and headless read every round, beside OpenCost.
    pub focus: Vec<String>,
    /// How often the cost source makes a report.
    #[serde(with = "crate::model::duration_serde")]
    pub interval: Duration,
    pub monthly_budget: Option<f64>,
    pub team_label: String,
    pub idle_gpu_threshold_pct: f64,
    /// How the FOCUS exports write their dates when not in ISO 8601 (strftime); empty: ISO.
    pub focus_date_format: String,
}

impl CostConfig {
    /// `focus_date_format`, checked by `validate`.
    pub fn focus_date_format(&self) -> Option<crate::model::cost::DateFormat> {
        let f = self.focus_date_format.trim();
        (!f.is_empty())
            .then(|| crate::model::cost::DateFormat::parse(f).ok())
            .flatten()
    }
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            opencost_url: String::new(),
            opencost_ca_file: String::new(),
            focus: Vec::new(),
            interval: Duration::from_secs(300),
            monthly_budget: None,
            team_label: "team".into(),
            idle_gpu_threshold_pct: 10.0,
            focus_date_format: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub kubeconfig: String,
    pub contexts: Vec<String>,
    /// A watch that receives nothing (no event, no bookmark) for this long is taken for a dead
    /// connection, shown as reconnecting and resumed.
    #[serde(with = "crate::model::duration_serde")]
    pub watch_idle_timeout: Duration,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            contexts: Vec::new(),
            watch_idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
        }
    }
}

/// The shortest `[kubernetes] watch_idle_timeout`: servers send bookmarks about once a minute
/// (the sim every 10 s), so less would drop healthy watches.
pub const MIN_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A little above the 290 s the Kubernetes source asks the server to keep a watch open.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub clusters: u32,
    pub nodes: u32,
    pub pods_per_node: u32,
    pub gpus_per_node: u32,
    pub seed: u64,
    pub listen: SocketAddr,
    pub scenarios: Vec<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            clusters: 2,
            nodes: 40,
            pods_per_node: 12,
            gpus_per_node: 8,
            seed: 42,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenarios: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: cannot write the config")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no config directory: set XDG_CONFIG_HOME or HOME, or pass --config PATH")]
    NoConfigDir,
}

/// The sim's size limits and scenario names as `[sim]` accepts them. The sim is an
/// independent peer that shares no code with the client side, so they are restated here; a
/// test in `cli` checks that the two agree.
pub const SIM_MAX_CLUSTERS: u32 = 26;
pub const SIM_MAX_NODES_PER_CLUSTER: u32 = 5000;
pub const SIM_MAX_PODS_PER_NODE: u32 = 110;
pub const SIM_MAX_GPUS_PER_NODE: u32 = 16;
pub const SIM_SCENARIOS: &[&str] = &[
    "xid-storm",
    "node-notready",
    "spot-interruption",
    "bad-rollout",
    "crashloop-rollout",
    "pdb-block",
    "api-flaky",
    "rbac-deny",
    "endpoint-outage",
    "gpu-memory-leak",
];

/// Where the RCA store lives when neither `--store` nor `[store] path` says.
pub fn default_store_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("fleetdeck")
        .join("store")
}

/// The demo's own store, beside the default one: a simulated fleet's incidents never mix with
/// real ones.
pub fn default_demo_store_path() -> PathBuf {
    default_store_path().with_file_name("demo-store")
}

/// Where the config lives when `--config` is not given: `$XDG_CONFIG_HOME/fleetdeck/fleetdeck.toml`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    dirs::config_dir()
        .map(|d| d.join("fleetdeck").join("fleetdeck.toml"))
        .ok_or(ConfigError::NoConfigDir)
}

pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key at `offset`: the `[table]` above it plus the key on its line.
pub(crate) fn key_at(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line = src[line_start..line_end].trim();
    let mut table = String::new();
    for l in src[..line_start].lines().rev() {
        let l = l.trim();
        if l.starts_with('[') {
            table = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            break;
        }
    }
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_string();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// serde names an unsigned key's type ("expected u32"); a person needs its range.
fn counts_in_words(message: &str) -> String {
    let ranges = [
        ("expected u32", u64::from(u32::MAX)),
        ("expected u64", u64::MAX),
        ("expected usize", usize::MAX as u64),
    ];
    for (serde_says, max) in ranges {
        if message.contains(serde_says) {
            return message.replace(
                serde_says,
                &format!("expected a whole number from 0 to {max}"),
            );
        }
    }
    message.to_string()
}

/// Byte offset of `table.key = …` in `src`, for errors found after parsing.
fn offset_of(src: &str, table: &str, key: &str) -> Option<usize> {
    let mut in_table = table.is_empty();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_matches(|c| c == '[' || c == ']').trim() == table;
        } else if in_table && t.split('=').next().is_some_and(|k| k.trim() == key) {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

impl Config {
    /// Parses and validates `src`, read from `path` (named in errors).
    pub fn parse(src: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(src).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(src, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key: key_at(src, offset),
                message: counts_in_words(e.message().trim()),
            }
        })?;
        let mut cfg = cfg;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new("")));
        cfg.validate().map_err(|(table, key, message)| {
            let offset = offset_of(src, table, key).unwrap_or(0);
            let (line, column) = line_col(src, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key: format!("{table}.{key}"),
                message,
            }
        })?;
        cfg.origin = ConfigOrigin {
            path: path.to_path_buf(),
            text: src.to_string(),
        };
        Ok(cfg)
    }

    /// Makes every relative path in the config relative to `base`, the directory of the config
    /// file, as kubectl does for the paths in a kubeconfig: a config then means the same files
    /// whichever directory fleetdeck is started from. Empty values (unset) stay empty.
    fn resolve_paths(&mut self, base: &Path) {
        if base.as_os_str().is_empty() {
            return;
        }
        let resolve = |p: &mut String| {
            if !p.trim().is_empty() && Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).to_string_lossy().into_owned();
            }
        };
        resolve(&mut self.kubernetes.kubeconfig);
        resolve(&mut self.store.path);
        resolve(&mut self.runbooks.dir);
        resolve(&mut self.runbooks.kill_switch_file);
        resolve(&mut self.tls.ca_file);
        resolve(&mut self.tls.endpoints_ca_file);
        resolve(&mut self.prometheus.bearer_token_file);
        resolve(&mut self.prometheus.ca_file);
        for d in &mut self.gpu.dcgm {
            resolve(&mut d.ca_file);
        }
        resolve(&mut self.cost.opencost_ca_file);
        for f in &mut self.cost.focus {
            resolve(f);
        }
        resolve(&mut self.headless.token_file);
        resolve(&mut self.headless.tls_cert);
        resolve(&mut self.headless.tls_key);
        resolve(&mut self.mlflow.token_file);
        resolve(&mut self.mlflow.ca_file);
        for sink in self.notify.sinks.values_mut() {
            resolve(&mut sink.url_file);
            resolve(&mut sink.routing_key_file);
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&src, path)
    }

    /// The config at `path` if given (it must exist), else the default location if a file is
    /// there, else the built-in defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => match default_path() {
                Ok(p) if p.exists() => Self::load(&p),
                _ => Ok(Self::default()),
            },
        }
    }

    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&self.log.level.as_str()) {
            return Err((
                "log",
                "level",
                format!(
                    "{:?} is not a log level; use one of {}",
                    self.log.level,
                    LEVELS.join(", ")
                ),
            ));
        }
        if self.kubernetes.watch_idle_timeout < MIN_WATCH_IDLE_TIMEOUT {
            return Err((
                "kubernetes",
                "watch_idle_timeout",
                format!(
                    "{:?} is too short: API servers send a bookmark about once a minute, so a \
                     healthy watch may be quiet that long; use at least {}s (the default is {}s)",
                    self.kubernetes.watch_idle_timeout,
                    MIN_WATCH_IDLE_TIMEOUT.as_secs(),
                    DEFAULT_WATCH_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }
        if !NOC_ROTATION_SECS.contains(&self.noc.rotation_secs) {
            return Err((
                "noc",
                "rotation_secs",
                format!(
                    "{} seconds is out of range; keep {} to {} seconds",
                    self.noc.rotation_secs,
                    NOC_ROTATION_SECS.start(),
                    NOC_ROTATION_SECS.end()
                ),
            ));
        }
        if self.noc.panes.is_empty() {
            return Err((
                "noc",
                "panes",
                "no panes to rotate through; name at least one, e.g. [\"overview\"]".into(),
            ));
        }
        if !POD_LOGS_MAX_LINES.contains(&self.pod_logs.max_lines) {
            return Err((
                "pod_logs",
                "max_lines",
                format!(
                    "{} lines is out of range; keep {} to {} lines",
                    self.pod_logs.max_lines,
                    POD_LOGS_MAX_LINES.start(),
                    POD_LOGS_MAX_LINES.end()
                ),
            ));
        }
        if self.kubernetes.contexts.iter().any(|c| c.trim().is_empty()) {
            return Err((
                "kubernetes",
                "contexts",
                "an empty context name; list kubeconfig context names".into(),
            ));
        }
        for (key, value) in [
            ("interval", &self.prometheus.interval),
            ("window", &self.prometheus.window),
        ] {
            if let Err(e) = humantime::parse_duration(value) {
                return Err((
                    "prometheus",
                    key,
                    format!("{value:?} is not a duration like 30s: {e}"),
                ));
            }
        }
        if !self.prometheus.url.is_empty() && url::Url::parse(&self.prometheus.url).is_err() {
            return Err((
                "prometheus",
                "url",
                format!("{:?} is not a URL", self.prometheus.url),
            ));
        }
        let dcgm_ca = self
            .gpu
            .dcgm
            .iter()
            .map(|t| ("gpu.dcgm", "ca_file", &t.ca_file));
        for (table, key, path) in [
            ("tls", "ca_file", &self.tls.ca_file),
            ("tls", "endpoints_ca_file", &self.tls.endpoints_ca_file),
            ("prometheus", "ca_file", &self.prometheus.ca_file),
            ("cost", "opencost_ca_file", &self.cost.opencost_ca_file),
        ]
        .into_iter()
        .chain(dcgm_ca)
        {
            if !path.trim().is_empty()
                && let Err(message) = check_ca_file(path.trim())
            {
                return Err((table, key, message));
            }
        }
        let retention = self.store.retention.trim();
        if !retention.is_empty() {
            match humantime::parse_duration(retention) {
                Ok(d) if d < std::time::Duration::from_secs(3600) => {
                    return Err((
                        "store",
                        "retention",
                        format!(
                            "{retention:?} is shorter than an hour; keep incidents at least 1h (\"30d\" is usual), or leave it empty to keep everything"
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return Err((
                        "store",
                        "retention",
                        format!("{retention:?} is not a duration like 30d: {e}"),
                    ));
                }
            }
        }
        if let Err(e) = humantime::parse_duration(&self.gpu.interval) {
            return Err((
                "gpu",
                "interval",
                format!("{:?} is not a duration like 10s: {e}", self.gpu.interval),
            ));
        }
        if let Some(bad) = self
            .gpu
            .dcgm
            .iter()
            .find(|t| url::Url::parse(&t.url).is_err())
        {
            return Err(("gpu", "dcgm", format!("{:?} is not a URL", bad.url)));
        }
        if let Some(b) = self.cost.monthly_budget
            && !(b.is_finite() && b > 0.0)
        {
            return Err((
                "cost",
                "monthly_budget",
                format!("{b} is not a budget; use a positive amount"),
            ));
        }
        let date_format = self.cost.focus_date_format.trim();
        if !date_format.is_empty()
            && let Err(e) = crate::model::cost::DateFormat::parse(date_format)
        {
            return Err(("cost", "focus_date_format", e));
        }
        if self.cost.interval < Duration::from_secs(10) {
            return Err((
                "cost",
                "interval",
                format!(
                    "{} is too often for a cost source; use 10s or more",
                    humantime::format_duration(self.cost.interval)
                ),
            ));
        }
        if !(0.0..=100.0).contains(&self.cost.idle_gpu_threshold_pct) {
            return Err((
                "cost",
                "idle_gpu_threshold_pct",
                format!(
                    "{} is not a percentage; use 0 to 100",
                    self.cost.idle_gpu_threshold_pct
                ),
            ));
        }
        self.validate_signals()?;
        self.validate_ranges()?;
        self.validate_notify()?;
        self.validate_mlflow()?;
        let s = &self.sim;
        if s.clusters == 0 || s.clusters > SIM_MAX_CLUSTERS {
            return Err((
                "sim",
                "clusters",
                format!(
                    "{} is out of range; use 1 to {}",
                    s.clusters, SIM_MAX_CLUSTERS
                ),
            ));
        }
        if s.nodes < s.clusters || s.nodes > SIM_MAX_NODES_PER_CLUSTER * s.clusters {
            return Err((
                "sim",
                "nodes",
                format!(
                    "{} is out of range for {} cluster(s); use {} to {}",
                    s.nodes,
                    s.clusters,
                    s.clusters,
                    SIM_MAX_NODES_PER_CLUSTER * s.clusters
                ),
            ));
        }
        if s.pods_per_node == 0 || s.pods_per_node > SIM_MAX_PODS_PER_NODE {
            return Err((
                "sim",
                "pods_per_node",
                format!(
                    "{} is out of range; use 1 to {}",
                    s.pods_per_node, SIM_MAX_PODS_PER_NODE
                ),
            ));
        }
        if s.gpus_per_node > SIM_MAX_GPUS_PER_NODE {
            return Err((
                "sim",
                "gpus_per_node",
                format!(
                    "{} is out of range; use 0 to {}",
                    s.gpus_per_node, SIM_MAX_GPUS_PER_NODE
                ),
            ));
        }
        if !s.listen.ip().is_loopback() {
            return Err((
                "sim",
                "listen",
                format!(
                    "{} is not a loopback address; the sim only listens on 127.0.0.1 or ::1",
                    s.listen
                ),
            ));
        }
        let known = SIM_SCENARIOS;
        if let Some(bad) = s.scenarios.iter().find(|n| !known.contains(&n.as_str())) {
            return Err((
                "sim",
                "scenarios",
                format!("unknown scenario {bad:?}; known: {}", known.join(", ")),
            ));
        }
        Ok(())
    }
}

/// A validation failure: the table, the key, and what is wrong with its value.
type Invalid = (&'static str, &'static str, String);

impl Config {
    /// Each sink names where its secret is; each policy names a sink; the delivery settings
    /// are within their ranges.
    fn validate_mlflow(&self) -> Result<(), Invalid> {
        let m = &self.mlflow;
        if m.enabled() {
            match url::Url::parse(m.tracking_uri.trim()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err((
                        "mlflow",
                        "tracking_uri",
                        format!(
                            "{:?} is not an http(s) URL of an MLflow tracking server (e.g. http://mlflow.ml.svc:5000)",
                            m.tracking_uri
                        ),
                    ));
                }
            }
        }
        if !m.token_file.trim().is_empty() && !m.token_env.trim().is_empty() {
            return Err((
                "mlflow",
                "token_file",
                "names both a file and an environment variable (token_env): keep one".into(),
            ));
        }
        if m.alias.trim().is_empty() || m.alias.contains(['/', '@', ' ']) {
            return Err((
                "mlflow",
                "alias",
                format!("{:?} is not an MLflow alias (e.g. champion)", m.alias),
            ));
        }
        if m.interval < Duration::from_secs(1) {
            return Err(("mlflow", "interval", "must be 1s or more".into()));
        }
        for e in &self.endpoints {
            let Some(r) = &e.registry else { continue };
            if r.model.trim().is_empty() {
                return Err((
                    "endpoints",
                    "registry",
                    format!("endpoint {:?}: registry.model is empty", e.name),
                ));
            }
            if !m.enabled() {
                return Err((
                    "endpoints",
                    "registry",
                    format!(
                        "endpoint {:?} names registered model {:?} but [mlflow] tracking_uri is not set: give the MLflow server's URL",
                        e.name, r.model
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_notify(&self) -> Result<(), Invalid> {
        let n = &self.notify;
        for (name, sink) in &n.sinks {
            let (file, env, what) = match sink.kind {
                SinkKind::Pagerduty => (
                    &sink.routing_key_file,
                    &sink.routing_key_env,
                    "routing_key_file or routing_key_env (the integration's routing key)",
                ),
                _ => (
                    &sink.url_file,
                    &sink.url_env,
                    "url_file or url_env (the webhook URL)",
                ),
            };
            if file.trim().is_empty() && env.trim().is_empty() {
                return Err((
                    "notify",
                    "sinks",
                    format!(
                        "sink {name:?} ({}) has no secret: give {what}",
                        sink.kind.name()
                    ),
                ));
            }
            if !file.trim().is_empty() && !env.trim().is_empty() {
                return Err((
                    "notify",
                    "sinks",
                    format!(
                        "sink {name:?} names both a file and an environment variable: keep one"
                    ),
                ));
            }
            if !sink.events_url.is_empty() && url::Url::parse(&sink.events_url).is_err() {
                return Err((
                    "notify",
                    "sinks",
                    format!(
                        "sink {name:?}: events_url {:?} is not a URL",
                        sink.events_url
                    ),
                ));
            }
        }
        for p in &n.policy {
            if !n.sinks.contains_key(&p.sink) {
                let known: Vec<&str> = n.sinks.keys().map(String::as_str).collect();
                return Err((
                    "notify",
                    "policy",
                    format!(
                        "the policy's sink {:?} is not configured (sinks: {}); add [notify.sinks.{}]",
                        p.sink,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        },
                        p.sink
                    ),
                ));
            }
        }
        if !(1..=20).contains(&n.attempts) {
            return Err((
                "notify",
                "attempts",
                format!("{} is out of range; use 1 to 20", n.attempts),
            ));
        }
        if n.retry_base < Duration::from_millis(10) || n.retry_base > Duration::from_secs(300) {
            return Err(("notify", "retry_base", "use 10ms to 5m".to_string()));
        }
        if !(1..=100_000).contains(&n.queue) {
            return Err((
                "notify",
                "queue",
                format!("{} is out of range; use 1 to 100000", n.queue),
            ));
        }
        if n.timeout < Duration::from_secs(1) || n.timeout > Duration::from_secs(120) {
            return Err(("notify", "timeout", "use 1s to 2m".to_string()));
        }
        Ok(())
    }
}

fn percentage(table: &'static str, key: &'static str, v: f64) -> Result<(), Invalid> {
    if (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err((table, key, format!("{v} is not a percentage; use 0 to 100")))
    }
}

fn count_within(
    table: &'static str,
    key: &'static str,
    v: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), Invalid> {
    if range.contains(&v) {
        Ok(())
    } else {
        Err((
            table,
            key,
            format!(
                "{v} is out of range; use {} to {}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn duration_within(
    table: &'static str,
    key: &'static str,
    d: Duration,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<(), Invalid> {
    if range.contains(&d) {
        Ok(())
    } else {
        Err((
            table,
            key,
            format!(
                "{} is out of range; use {} to {}",
                humantime::format_duration(d),
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ),
        ))
    }
}

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Config {
    /// The ranges of the numeric and duration keys that `validate` and `validate_signals` do
    /// not already bound: a value outside them would disarm a guard (a disruption budget over
    /// 100%), burn a core (a polling interval of 0s) or make no sense (no run worker).
    fn validate_ranges(&self) -> Result<(), Invalid> {
        // Polling intervals: at least a second, so a typo cannot spin a source.
        let gpu = humantime::parse_duration(&self.gpu.interval).unwrap_or_default();
        duration_within("gpu", "interval", gpu, SECOND..=HOUR)?;
        let interval = humantime::parse_duration(&self.prometheus.interval).unwrap_or_default();
        duration_within("prometheus", "interval", interval, SECOND..=HOUR)?;
        let window = humantime::parse_duration(&self.prometheus.window).unwrap_or_default();
        duration_within(
            "prometheus",
            "window",
            window,
            interval.max(SECOND)..=30 * DAY,
        )?;
        duration_within("cost", "interval", self.cost.interval, 10 * SECOND..=DAY)?;
        duration_within(
            "store",
            "incident_window",
            self.store.incident_window,
            SECOND..=30 * DAY,
        )?;

        let r = &self.runbooks;
        percentage("runbooks", "max_disrupted_pct", r.max_disrupted_pct)?;
        percentage("runbooks", "halt_unready_pct", r.halt_unready_pct)?;
        duration_within(
            "runbooks",
            "revalidate_after",
            r.revalidate_after,
            Duration::ZERO..=10 * 60 * SECOND,
        )?;
        duration_within(
            "runbooks",
            "approval_timeout",
            r.approval_timeout,
            SECOND..=7 * DAY,
        )?;
        duration_within("runbooks", "run_timeout", r.run_timeout, SECOND..=DAY)?;
        count_within(
            "runbooks",
            "max_concurrent_runs",
            r.max_concurrent_runs.into(),
            1..=256,
        )?;
        count_within(
            "runbooks",
            "max_queued_runs",
            r.max_queued_runs.into(),
            0..=10_000,
        )?;
        count_within(
            "runbooks",
            "max_entries_per_run",
            r.max_entries_per_run.into(),
            1..=100_000,
        )?;
        duration_within(
            "runbooks",
            "scale_budget_window",
            r.scale_budget_window,
            SECOND..=30 * DAY,
        )?;
        if r.max_replicas_removed_per_run > r.max_replicas_removed_per_window {
            return Err((
                "runbooks",
                "max_replicas_removed_per_run",
                format!(
                    "{} is more than max_replicas_removed_per_window ({}); one run cannot remove more than all runs together",
                    r.max_replicas_removed_per_run, r.max_replicas_removed_per_window
                ),
            ));
        }

        let h = &self.headless;
        count_within(
            "headless",
            "body_limit",
            h.body_limit as u64,
            1024..=64 * 1024 * 1024,
        )?;
        duration_within(
            "headless",
            "alert_dedup_for",
            h.alert_dedup_for,
            SECOND..=30 * DAY,
        )?;
        duration_within(
            "headless",
            "header_read_timeout",
            h.header_read_timeout,
            SECOND..=10 * 60 * SECOND,
        )?;
        duration_within(
            "headless",
            "request_timeout",
            h.request_timeout,
            SECOND..=3600 * SECOND,
        )?;
        duration_within(
            "headless",
            "idle_timeout",
            h.idle_timeout,
            SECOND..=3600 * SECOND,
        )?;
        count_within(
            "headless",
            "max_connections",
            h.max_connections as u64,
            1..=1_000_000,
        )?;

        for e in &self.endpoints {
            if let Some(a) = e.slo.availability
                && !(a > 0.0 && a < 1.0)
            {
                return Err((
                    "endpoints.slo",
                    "availability",
                    format!(
                        "endpoint {}: {a} is not an availability objective; use a share above 0 and below 1, e.g. 0.999",
                        e.name
                    ),
                ));
            }
            if let Some(l) = e.slo.latency
                && !(l.target_ms.is_finite() && l.target_ms > 0.0)
            {
                return Err((
                    "endpoints.slo",
                    "latency",
                    format!(
                        "endpoint {}: target_ms {} is not a latency; use milliseconds above 0",
                        e.name, l.target_ms
                    ),
                ));
            }
            if let Some(d) = &e.drift {
                count_within(
                    "endpoints.drift",
                    "window_secs",
                    d.window_secs,
                    60..=30 * 86_400,
                )
                .map_err(|(t, k, m)| (t, k, format!("endpoint {}: {m}", e.name)))?;
            }
        }
        Ok(())
    }

    /// `[signals]`: percentages within 0–100, temperatures above 0, windows and horizons above
    /// zero. `for` and `clear_after` may be zero (fire or clear at once).
    fn validate_signals(&self) -> Result<(), (&'static str, &'static str, String)> {
        let t = &self.signals;
        if let Some(bad) = t
            .findings
            .iter()
            .find(|k| !SIGNAL_KINDS.contains(&k.as_str()) && !k.starts_with("alert."))
        {
            return Err((
                "signals",
                "findings",
                format!(
                    "{bad:?} is not a signal kind; use alert.<name> or one of {}",
                    SIGNAL_KINDS.join(", ")
                ),
            ));
        }
        for (key, pct) in [
            ("idle_gpu_pct", t.idle_gpu_pct),
            ("idle_clear_margin_pct", t.idle_clear_margin_pct),
            ("gpu_memory_high_pct", t.gpu_memory_high_pct),
        ] {
            if !(0.0..=100.0).contains(&pct) {
                return Err((
                    "signals",
                    key,
                    format!("{pct} is not a percentage; use 0 to 100"),
                ));
            }
        }
        if !(t.gpu_hot_c.is_finite() && t.gpu_hot_c > 0.0) {
            return Err((
                "signals",
                "gpu_hot_c",
                format!(
                    "{} °C is not a temperature a GPU runs hot at; use a value above 0, e.g. 87",
                    t.gpu_hot_c
                ),
            ));
        }
        if !(t.gpu_hot_clear_margin_c >= 0.0 && t.gpu_hot_clear_margin_c < t.gpu_hot_c) {
            return Err((
                "signals",
                "gpu_hot_clear_margin_c",
                format!(
                    "{} °C is not a margin below gpu_hot_c ({} °C); use 0 or more and less than it",
                    t.gpu_hot_clear_margin_c, t.gpu_hot_c
                ),
            ));
        }
        if !(0.0..=1.0).contains(&t.gpu_memory_min_r2) {
            return Err((
                "signals",
                "gpu_memory_min_r2",
                format!("{} is not an R²; use 0 to 1", t.gpu_memory_min_r2),
            ));
        }
        if t.gpu_memory_min_samples < 3 {
            return Err((
                "signals",
                "gpu_memory_min_samples",
                format!(
                    "{} samples cannot show a trend; use 3 or more",
                    t.gpu_memory_min_samples
                ),
            ));
        }
        for (key, d) in [
            ("spot_notice", t.spot_notice),
            ("gpu_memory_window", t.gpu_memory_window),
            ("gpu_memory_full_within", t.gpu_memory_full_within),
            (
                "gpu_memory_full_critical_within",
                t.gpu_memory_full_critical_within,
            ),
        ] {
            if d.is_zero() {
                return Err((
                    "signals",
                    key,
                    "0s makes no sense here; use a duration above zero, e.g. 5m".into(),
                ));
            }
        }
        if t.gpu_memory_full_critical_within > t.gpu_memory_full_within {
            return Err((
                "signals",
                "gpu_memory_full_critical_within",
                format!(
                    "{} is longer than gpu_memory_full_within ({}); the critical horizon is the shorter one",
                    humantime::format_duration(t.gpu_memory_full_critical_within),
                    humantime::format_duration(t.gpu_memory_full_within)
                ),
            ));
        }
        Ok(())
    }
}

/// Writes the commented default config to `path`; refuses to overwrite unless `force`.
pub fn init(path: &Path, force: bool) -> Result<(), ConfigError> {
    if path.exists() && !force {
        return Err(ConfigError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, DEFAULT_CONFIG).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("fleetdeck.toml"))
    }

    #[test]
    fn the_default_file_parses_to_the_defaults() {
        assert_eq!(parse(DEFAULT_CONFIG).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[sim]\nclusters = 2\nnodez = 4\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(err.contains("sim.nodez"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse("[log]\nlevel = \"info\"\n[sim]\nnodes = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(err.contains("sim.nodes"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let src = "[kubernetes]\nkubeconfig = \"kc\"\n\n[store]\npath = \"state/store\"\n\n\
                   [runbooks]\ndir = \"books\"\n\n[cost]\nfocus = [\"/abs/focus.csv\", \"focus/b.csv\"]\n\n\
                   [notify.sinks.team]\nkind = \"slack\"\nurl_file = \"secrets/slack\"\n";
        let cfg = Config::parse(src, Path::new("/etc/fleetdeck/fd.toml")).expect("parses");
        assert_eq!(cfg.kubernetes.kubeconfig, "/etc/fleetdeck/kc");
        assert_eq!(cfg.store.path, "/etc/fleetdeck/state/store");
        assert_eq!(cfg.runbooks.dir, "/etc/fleetdeck/books");
        assert_eq!(
            cfg.cost.focus,
            ["/abs/focus.csv", "/etc/fleetdeck/focus/b.csv"]
        );
        assert_eq!(
            cfg.notify.sinks["team"].url_file,
            "/etc/fleetdeck/secrets/slack"
        );
        // Unset paths stay unset; the runbook directory's default is the built-in runbooks.
        let bare = Config::parse("", Path::new("/etc/fleetdeck/fd.toml")).expect("parses");
        assert_eq!(bare.prometheus.ca_file, "");
        assert_eq!(bare.runbooks.dir, "");
    }

    #[test]
    fn a_number_for_a_duration_suggests_the_quoted_form_with_a_unit() {
        for (src, want) in [
            ("[gpu]\ninterval = 10\n", "\"10s\""),
            ("[runbooks]\nrun_timeout = 60\n", "\"60s\""),
        ] {
            let err = parse(src).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(":2:"), "{src}: {err}");
        }
    }

    #[test]
    fn bad_value_is_located_after_parsing() {
        let err = parse("[sim]\n\npods_per_node = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `sim.pods_per_node`"),
            "{err}"
        );
        let err = parse("[sim]\nscenarios = [\"meteor\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("meteor") && err.contains("xid-storm"), "{err}");
        let err = parse("[pod_logs]\nmax_lines = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:2:1: key `pod_logs.max_lines`")
                && err.contains("5 lines"),
            "{err}"
        );
        let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
        assert!(
            err.contains("log.level") && err.contains("\"loud\""),
            "{err}"
        );
    }

    #[test]
    fn signal_thresholds_out_of_range_name_file_line_and_key() {
        let err = parse("[signals]\nidle_gpu_pct = 5.0\ngpu_hot_c = -3.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `signals.gpu_hot_c`"),
            "{err}"
        );
        assert!(err.contains("-3"), "quotes the value: {err}");
        let err = parse("[signals]\n\ngpu_memory_high_pct = 120.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `signals.gpu_memory_high_pct`")
                && err.contains("0 to 100"),
            "{err}"
        );
        let err = parse("[signals]\ngpu_memory_window = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:2:1: key `signals.gpu_memory_window`"),
            "{err}"
        );
    }

    /// `parse(src)`'s error, checked to name `fleetdeck.toml:LINE:` and `KEY`.
    fn refused_at(src: &str, line: usize, key: &str) -> String {
        let err = parse(src).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("fleetdeck.toml:{line}:"))
                && err.contains(&format!(": key `{key}`: ")),
            "{src:?}: {err}"
        );
        err
    }

    #[test]
    fn a_percentage_over_100_is_refused_naming_file_line_key_and_range() {
        let err = refused_at(
            "[runbooks]
mode = \"auto\"
max_disrupted_pct = 500.0
",
            3,
            "runbooks.max_disrupted_pct",
        );
        assert!(err.contains("500") && err.contains("0 to 100"), "{err}");
        refused_at(
            "[runbooks]
halt_unready_pct = -1.0
",
            2,
            "runbooks.halt_unready_pct",
        );
        refused_at(
            "[runbooks]
halt_unready_pct = nan
",
            2,
            "runbooks.halt_unready_pct",
        );
        assert!(
            parse(
                "[runbooks]
max_disrupted_pct = 100.0
halt_unready_pct = 0.0
"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_zero_polling_interval_is_refused_naming_file_line_key_and_range() {
        let err = refused_at(
            "[gpu]
nvml = false
interval = \"0s\"
",
            3,
            "gpu.interval",
        );
        assert!(
            err.contains("0s is out of range") && err.contains("use 1s to 1h"),
            "{err}"
        );
        refused_at(
            "[prometheus]
interval = \"0s\"
",
            2,
            "prometheus.interval",
        );
        refused_at(
            "[prometheus]
interval = \"1m\"
window = \"30s\"
",
            3,
            "prometheus.window",
        );
        refused_at(
            "[cost]
interval = \"1s\"
",
            2,
            "cost.interval",
        );
        refused_at(
            "[store]
incident_window = \"0s\"
",
            2,
            "store.incident_window",
        );
        refused_at(
            "[runbooks]
run_timeout = \"0s\"
",
            2,
            "runbooks.run_timeout",
        );
        refused_at(
            "[runbooks]
approval_timeout = \"0s\"
",
            2,
            "runbooks.approval_timeout",
        );
        refused_at(
            "[runbooks]
scale_budget_window = \"0s\"
",
            2,
            "runbooks.scale_budget_window",
        );
        refused_at(
            "[headless]
alert_dedup_for = \"0s\"
",
            2,
            "headless.alert_dedup_for",
        );
        assert!(
            parse(
                "[gpu]
interval = \"1s\"
"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_negative_or_out_of_range_count_is_refused_naming_file_line_and_key() {
        let err = refused_at(
            "[runbooks]
halt_unready_count = -1
",
            2,
            "runbooks.halt_unready_count",
        );
        assert!(err.contains("-1"), "{err}");
        refused_at(
            "[runbooks]
max_replicas_removed_per_run = -5
",
            2,
            "runbooks.max_replicas_removed_per_run",
        );
        let err = refused_at(
            "[runbooks]
max_concurrent_runs = 0
",
            2,
            "runbooks.max_concurrent_runs",
        );
        assert!(err.contains("use 1 to 256"), "{err}");
        refused_at(
            "[runbooks]
max_queued_runs = 1000000
",
            2,
            "runbooks.max_queued_runs",
        );
        refused_at(
            "[runbooks]
max_replicas_removed_per_run = 50
max_replicas_removed_per_window = 20
",
            2,
            "runbooks.max_replicas_removed_per_run",
        );
        refused_at(
            "[headless]
body_limit = 0
",
            2,
            "headless.body_limit",
        );
        let err = refused_at(
            "[[endpoints]]
name = \"llama\"
url = \"http://a\"
protocol = \"vllm\"
[endpoints.slo]
availability = 1.5
",
            6,
            "endpoints.slo.availability",
        );
        assert!(
            err.contains("endpoint llama") && err.contains("1.5"),
            "{err}"
        );
    }

    #[test]
    fn a_negative_for_duration_names_its_sub_table_key() {
        let err = parse("[signals]\ngpu_hot_c = 90.0\n[signals.for]\ngpu_idle = \"-5m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(err.contains("signals.for.gpu_idle"), "{err}");
        assert!(err.contains("-5m"), "{err}");
    }

    #[test]
    fn for_and_clear_after_take_per_kind_overrides_over_the_defaults() {
        let cfg = parse(
            "[signals.for]\ngpu_idle = \"30m\"\n[signals.clear_after]\ngpu_throttling = \"0s\"\n",
        )
        .unwrap();
        let t = &cfg.signals;
        assert_eq!(t.for_kind("gpu.idle"), Duration::from_secs(1800));
        assert_eq!(t.for_kind("gpu.throttling"), Duration::from_secs(120));
        assert_eq!(t.for_kind("node.not_ready"), t.node_not_ready_after);
        assert_eq!(t.clear_after_kind("gpu.throttling"), Duration::ZERO);
        assert_eq!(t.clear_after_kind("gpu.idle"), Duration::from_secs(60));
        let none = t.without_patience();
        assert_eq!(none.for_kind("gpu.idle"), Duration::ZERO);
        assert_eq!(none.clear_after_kind("pod.crash_loop"), Duration::ZERO);
    }

    #[test]
    fn errors_inside_array_tables_name_the_array() {
        let err = parse("[[endpoints]]\nname = \"x\"\nurl = \"http://a\"\nprotocol = \"grpc\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(
            err.contains("endpoints.protocol") && err.contains("grpc"),
            "{err}"
        );
    }

    #[test]
    fn mlflow_refuses_an_inline_token_a_bad_url_and_a_registry_without_a_server() {
        let err =
            parse("[mlflow]\ntracking_uri = \"http://mlflow:5000\"\ntoken = \"dapi-s3cr3t\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(
            err.contains("token_file") && err.contains("token_env"),
            "{err}"
        );
        assert!(
            !err.contains("dapi-s3cr3t"),
            "the secret is not repeated: {err}"
        );

        let err = parse("[mlflow]\ntracking_uri = \"mlflow:5000\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mlflow.tracking_uri") && err.contains("http(s) URL"),
            "{err}"
        );

        let endpoint = "[[endpoints]]\nname = \"llama\"\nurl = \"http://a\"\nprotocol = \"vllm\"\nregistry = { model = \"llama-chat\" }\n";
        let err = parse(endpoint).unwrap_err().to_string();
        assert!(
            err.contains("endpoints.registry") && err.contains("[mlflow] tracking_uri"),
            "{err}"
        );
        let ok = parse(&format!(
            "[mlflow]\ntracking_uri = \"http://mlflow:5000\"\n{endpoint}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.mlflow.alias, "champion");
        let mut with_token = ok.mlflow.clone();
        with_token.token_file = "/nonexistent/mlflow-token".into();
        let err = with_token
            .read_token()
            .expect_err("a token file that is not there");
        assert!(
            err.contains("[mlflow] token") && err.contains("/nonexistent/mlflow-token"),
            "{err}"
        );
        assert_eq!(ok.mlflow.read_token(), Ok(None));
        assert_eq!(
            ok.endpoints[0].registry.as_ref().map(|r| r.model.as_str()),
            Some("llama-chat")
        );
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("fleetdeck.toml");
        init(&path, false).unwrap();
        std::fs::write(&path, "# mine\n").unwrap();
        assert!(matches!(
            init(&path, false),
            Err(ConfigError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
        init(&path, true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_CONFIG);
    }
}
