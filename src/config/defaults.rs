//! The commented default `fleetdeck.toml` that `fleetdeck init` writes; `Config::default()`
//! must equal it parsed (a test in `config` checks). The signal kinds' lines (the findings,
//! `[signals.for]`, `[signals.clear_after]`) are rendered from `model::catalog`, so a new kind
//! is written by its catalog entry alone. Imports only `model`.

use std::fmt::Write as _;

use crate::model::catalog::{ForKey, SIGNAL_CATALOG};

/// The commented default written by `fleetdeck init`. Every key here is one the loader knows.
pub fn default_config() -> String {
    let mut out = String::with_capacity(CONFIG_HEAD.len() + CONFIG_TAIL.len() + 4096);
    out.push_str(CONFIG_HEAD);
    let findings: Vec<String> = SIGNAL_CATALOG
        .iter()
        .filter(|k| k.finding_by_default)
        .map(|k| format!("{:?}", k.name))
        .collect();
    let _ = writeln!(out, "findings = [{}]", findings.join(", "));
    out.push_str(CONFIG_SIGNALS);
    out.push_str(
        "[signals.for]\n\
         # How long each kind's condition must hold before it fires (\"0s\": at once).\n\
         # node.not_ready and pod.pending_gpu have theirs above (node_not_ready_after,\n\
         # pending_gpu_after): their detectors measure from the API's own timestamps.\n",
    );
    for kind in SIGNAL_CATALOG.iter().filter(|k| k.for_key == ForKey::Table) {
        let _ = writeln!(out, "# {}: {}", kind.name, kind.description);
        let _ = writeln!(
            out,
            "{} = \"{}\"",
            kind.config_key(),
            humantime::format_duration(kind.default_for)
        );
    }
    out.push_str(
        "\n[signals.clear_after]\n\
         # How long a firing signal's clear condition must hold before it stops firing\n\
         # (\"0s\": at once).\n",
    );
    for kind in SIGNAL_CATALOG {
        let _ = writeln!(
            out,
            "{} = \"{}\"",
            kind.config_key(),
            humantime::format_duration(kind.default_clear_after)
        );
    }
    out.push('\n');
    out.push_str(CONFIG_TAIL);
    out
}

/// The file up to `[signals] findings`.
const CONFIG_HEAD: &str = r#"# fleetdeck configuration.
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
# protocol = "vllm"                   # kserve-v2 | vllm | triton | http | pinecone | qdrant
# model = "meta-llama/Llama-3.1-8B-Instruct"
# serving = { cluster = "prod-us-east", namespace = "serving", kind = "Deployment", name = "llama-chat" }
# registry = { model = "llama-chat", alias = "champion" }   # MLflow registered model (or annotate
#                                     # the serving object fleetdeck.io/registered-model=NAME[@ALIAS])
# [endpoints.slo]
# availability = 0.999
# latency = { percentile = "p99", target_ms = 2000 }
#
# Vector stores are endpoints too (protocol pinecone | qdrant): the probe reads the index's
# statistics and runs a top-k 1 query, whose latency is the SLO's; e.g.:
# [[endpoints]]
# name = "docs-rag"
# url = "https://docs-rag-abc123.svc.aped-4627-b74a.pinecone.io"   # the index host
# protocol = "pinecone"
# ingestion = { cluster = "prod-us-east", namespace = "batch", job = "docs-embed-ingest", dag = "docs_embed" }
# [endpoints.vector]
# index = "docs-rag"                  # Qdrant: the collection (required); Pinecone: shown only
# namespace = "docs"                  # Pinecone: the namespace the probe queries
# api_key_file = "/etc/fleetdeck/pinecone-api-key"   # read access is enough; never printed
# probe_vector = [0.0, 0.1]           # default: zeros of the index's dimension

# The MLflow model registry endpoints' registered models live in (rollback_model(endpoint)
# moves the serving alias back), e.g.:
# [mlflow]
# tracking_uri = "http://mlflow.ml.svc:5000"
# token_file = "/etc/fleetdeck/secrets/mlflow-token"   # or token_env; sent as a bearer token
# alias = "champion"
# ca_file = ""                        # private CAs for an https tracking_uri, beside [tls] ca_file

# The Airflow webserver whose DAGs the :pipelines pane shows and pipeline.dag_failing watches
# (the stable REST API: Airflow 2's /api/v1, Airflow 3's /api/v2; reading needs a Viewer,
# airflow_clear needs a User or Op role), e.g.:
# [airflow]
# url = "http://airflow-webserver.airflow.svc:8080"
# api_version = "auto"                # auto | v1 | v2 (auto asks /api/v2/monitor/health first)
# username = "fleetdeck"              # basic auth, with password_file; or token_file (bearer)
# password_file = "/etc/fleetdeck/secrets/airflow-password"
# token_file = ""
# ca_file = ""                        # private CAs for an https url, beside [tls] ca_file
# interval = "30s"
# timeout = "10s"
# failed_runs = 2                     # a DAG's newest N finished runs all failed: dag_failing
# runs_kept = 10                      # runs read per DAG (the pane's run strip)
# sla = { feature_build_nightly = "2h" }   # a run running longer is past its SLA

# Notification sinks for runbooks' notify("NAME", …) and [[notify.policy]], e.g.:
# [notify.sinks.oncall]
# kind = "pagerduty"                  # slack | teams | pagerduty | webhook
# routing_key_file = "/etc/fleetdeck/secrets/pagerduty-routing-key"   # or routing_key_env
# [notify.sinks.chat]
# kind = "slack"
# url_env = "SLACK_WEBHOOK_URL"       # or url_file; never the URL itself
# [[notify.policy]]
# sink = "oncall"
# on = ["open", "ack", "resolve"]        # the default when omitted; also "mitigate" (every
#                                     # signal cleared; PagerDuty gets an acknowledge). "open"
#                                     # pages again when a signal fires after mitigation.
# min_severity = "critical"           # the default when omitted: only critical incidents page
# Pages are keyed on the incident's group (PagerDuty's dedup_key, a webhook's "key"), never on
# the store's incident number, so a new pod on a fresh store pages a group under the same key.
# Installations that page one PagerDuty service set their own id here (the same in every
# replica's config), e.g.:
# [notify]
# installation_id = "prod-eu-1"       # letters, digits, . _ -; empty: the group alone
# Every message is written to the store's outbox before it is sent, so a restart or a new
# leader goes on delivering it; a failing sink is retried with backoff (retry_base doubling,
# at most 10m apart, a 429's Retry-After first) until give_up_after, then the message is given
# up on its incident's timeline and counted on /metrics
# (fleetdeck_notifications_given_up_total):
# give_up_after = "6h"                # 1s to 7d
# attempts = 0                        # at most this many attempts; 0: until give_up_after
# retry_base = "2s"

[signals]
# Kinds that are findings: shown on their pane and in the Signals pane's findings (runbooks may
# still trigger on them) but they open no incident. Every other kind opens one.
"#;

/// The rest of `[signals]`, after `findings`.
const CONFIG_SIGNALS: &str = r#"# Each detector kind waits out its `for` duration (below, in [signals.for]) before it fires, as
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

"#;

/// The file after the signal tables.
const CONFIG_TAIL: &str = r#"[pod_logs]
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
# A PostgreSQL store instead, shared by a team's replicas: postgres://USER@HOST:5432/DB
# (add ?sslmode=verify-full for managed PostgreSQL; --store postgres://… overrides it). The
# password is never written here: password_file (a mounted Secret) or password_env names it,
# else $PGPASSWORD is read.
url = ""
password_file = ""
password_env = ""
# PEM roots the server's certificate must chain to (e.g. the RDS or Azure CA bundle); empty:
# the system's roots.
ca_file = ""
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
# Who is calling: "token" (the single token above; its holder may do everything, recorded as
# token:NAME), "tokens" (users_file: [[user]] entries with name, token or token_file, and role
# viewer|responder|approver|actor|alert-sender) or "kubernetes" (the caller's own Kubernetes
# token, checked with a TokenReview and each verb with a SubjectAccessReview on group
# fleetdeck.io in the Lease's cluster; deploy/10-rbac.yaml ships the ClusterRoles). Records name
# the person. The single token, when set, keeps working in every mode.
auth = "token"
users_file = ""
# auth = "kubernetes": the audiences a caller's token must be issued for (a projected
# ServiceAccount token's audience, e.g. ["fleetdeck"]); empty accepts the API server's own.
token_audiences = []
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
# On SIGTERM the leader starts no run, lets the runs in flight reach a safe point (a drain stops
# between evictions) for up to this long, writes on the timeline what each finished and left,
# releases the Lease and exits. Keep it below the pod's terminationGracePeriodSeconds (30 s in
# deploy/30-deployment.yaml), or the kubelet's SIGKILL comes first.
shutdown_grace = "20s"

[attach]
# `fleetdeck incident|audit|runbook approve|deny|store stats` on a running daemon through its
# API instead of a local store (as --attach URL does). Empty: the local store.
url = ""
# The bearer token to send; empty: --token-file, else the kubeconfig context's token (exec
# plugins included), else $FLEETDECK_TOKEN.
token_file = ""

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
# crashloop-rollout, pdb-block, api-flaky, rbac-deny, endpoint-outage, gpu-memory-leak,
# training-stall, training-straggler, vector-index-stale).
scenarios = []
"#;
