//! Validation of a parsed config: every check names its table and key, and
//! `Config::error_at` locates it in the file.

use std::time::Duration;

use super::tls::check_ca_file;
use super::{
    Config, DEFAULT_WATCH_IDLE_TIMEOUT, MIN_WATCH_IDLE_TIMEOUT, NOC_ROTATION_SECS,
    POD_LOGS_MAX_LINES, SIM_MAX_CLUSTERS, SIM_MAX_GPUS_PER_NODE, SIM_MAX_NODES_PER_CLUSTER,
    SIM_MAX_PODS_PER_NODE, SIM_SCENARIOS, SinkKind,
};
use crate::model::catalog::{SIGNAL_CATALOG, signal_kind};

/// Every catalog kind, sorted, as an error lists them.
fn known_kinds() -> String {
    let mut kinds: Vec<&str> = SIGNAL_CATALOG.iter().map(|k| k.name).collect();
    kinds.sort_unstable();
    kinds.join(", ")
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
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
        let store_url = self.store.url.trim();
        if !store_url.is_empty() {
            if !super::store::is_postgres_url(store_url) {
                return Err((
                    "store",
                    "url",
                    format!(
                        "{store_url:?} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB); a directory goes in path"
                    ),
                ));
            }
            if let Some(problem) = super::store::url_problem(store_url) {
                return Err(("store", "url", problem));
            }
            if !self.store.path.trim().is_empty() {
                return Err((
                    "store",
                    "url",
                    "give path (a sled directory) or url (PostgreSQL), not both".into(),
                ));
            }
        }
        if !self.store.ca_file.trim().is_empty()
            && let Err(message) = check_ca_file(self.store.ca_file.trim())
        {
            return Err(("store", "ca_file", message));
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
        self.airflow
            .check()
            .map_err(|(key, why)| ("airflow", key, why))?;
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
        if n.attempts > 100 {
            return Err((
                "notify",
                "attempts",
                format!(
                    "{} is out of range; use 1 to 100, or 0 to try until give_up_after",
                    n.attempts
                ),
            ));
        }
        if n.give_up_after < Duration::from_secs(1)
            || n.give_up_after > Duration::from_secs(7 * 24 * 3600)
            || n.give_up_after < n.retry_base
        {
            return Err((
                "notify",
                "give_up_after",
                format!(
                    "{} is out of range; use 1s to 7d, and no less than retry_base ({}), e.g. \"6h\"",
                    humantime::format_duration(n.give_up_after),
                    humantime::format_duration(n.retry_base)
                ),
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
        let id = &n.installation_id;
        if id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err((
                "notify",
                "installation_id",
                format!(
                    "{id:?} is not an installation id; use up to 64 letters, digits, '.', '_' or '-' (e.g. prod-eu-1)"
                ),
            ));
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

/// `v` within `range`, else an error that writes the value and the range with `words`.
fn within<T: PartialOrd>(
    table: &'static str,
    key: &'static str,
    v: T,
    range: std::ops::RangeInclusive<T>,
    words: impl Fn(&T) -> String,
) -> Result<(), Invalid> {
    if range.contains(&v) {
        return Ok(());
    }
    let (low, high) = (words(range.start()), words(range.end()));
    Err((
        table,
        key,
        format!("{} is out of range; use {low} to {high}", words(&v)),
    ))
}

fn count_within(
    table: &'static str,
    key: &'static str,
    v: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), Invalid> {
    within(table, key, v, range, u64::to_string)
}

fn duration_within(
    table: &'static str,
    key: &'static str,
    d: Duration,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<(), Invalid> {
    within(table, key, d, range, |d| {
        humantime::format_duration(*d).to_string()
    })
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
        if !["token", "tokens", "kubernetes"].contains(&h.auth.trim()) {
            return Err((
                "headless",
                "auth",
                format!(
                    "{:?} is not a way to authenticate; use \"token\", \"tokens\" or \"kubernetes\"",
                    h.auth
                ),
            ));
        }
        let attach = self.attach.url.trim();
        if !attach.is_empty()
            && !url::Url::parse(attach).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err((
                "attach",
                "url",
                format!(
                    "{attach:?} is not an http(s) URL of a fleetdeck daemon (e.g. https://fleetdeck.example:9180)"
                ),
            ));
        }
        if h.auth.trim() == "tokens" && h.users_file.trim().is_empty() {
            return Err((
                "headless",
                "users_file",
                "auth = \"tokens\" needs users_file: a TOML file of [[user]] entries (name, token or token_file, role)".into(),
            ));
        }
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
        duration_within(
            "headless",
            "shutdown_grace",
            h.shutdown_grace,
            SECOND..=10 * 60 * SECOND,
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
            check_vector_store(e)?;
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
    pub(super) fn validate_signals(&self) -> Result<(), (&'static str, &'static str, String)> {
        let t = &self.signals;
        if let Some(bad) = t
            .findings
            .iter()
            .find(|k| signal_kind(k).is_none() && !k.starts_with("alert."))
        {
            return Err((
                "signals",
                "findings",
                format!(
                    "{bad:?} is not a signal kind; use alert.<name> or one of {}",
                    known_kinds()
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

/// A vector store's `[endpoints.vector]` and `ingestion`: only on `pinecone` and `qdrant`, a
/// Qdrant collection named, a key file that can be read (its content is never shown), a probe
/// vector that is not empty, and an ingestion that names something to judge.
fn check_vector_store(
    e: &crate::model::endpoint::EndpointConfig,
) -> Result<(), (&'static str, &'static str, String)> {
    use crate::model::endpoint::EndpointProtocol;
    let name = &e.name;
    if !e.protocol.is_vector_store() {
        for (key, set) in [
            ("vector", e.vector.is_some()),
            ("ingestion", e.ingestion.is_some()),
        ] {
            if set {
                return Err((
                    "endpoints",
                    key,
                    format!(
                        "endpoint {name}: {key} is for vector stores; use protocol \"pinecone\" or \"qdrant\", or remove it"
                    ),
                ));
            }
        }
        return Ok(());
    }
    let v = e.vector.clone().unwrap_or_default();
    if e.protocol == EndpointProtocol::Qdrant
        && v.index.as_deref().is_none_or(|i| i.trim().is_empty())
    {
        return Err((
            "endpoints.vector",
            "index",
            format!(
                "endpoint {name}: a qdrant endpoint needs the collection it watches: index = \"NAME\""
            ),
        ));
    }
    if let Some(path) = &v.api_key_file
        && let Err(err) = std::fs::metadata(path.trim())
    {
        return Err((
            "endpoints.vector",
            "api_key_file",
            format!(
                "endpoint {name}: cannot read {path:?}: {err}; give a file holding the API key"
            ),
        ));
    }
    if v.probe_vector
        .as_ref()
        .is_some_and(|p| p.is_empty() || p.iter().any(|x| !x.is_finite()))
    {
        return Err((
            "endpoints.vector",
            "probe_vector",
            format!(
                "endpoint {name}: the probe vector must be finite numbers of the index's dimension; remove it to query with zeros"
            ),
        ));
    }
    if let Some(i) = &e.ingestion {
        if i.job.is_none() && i.dag.is_none() {
            return Err((
                "endpoints.ingestion",
                "job",
                format!(
                    "endpoint {name}: ingestion names neither a Kubernetes job nor an Airflow dag"
                ),
            ));
        }
        if i.job.is_some() && (i.namespace.is_none() || i.cluster.is_none()) {
            return Err((
                "endpoints.ingestion",
                "namespace",
                format!(
                    "endpoint {name}: ingestion job needs its cluster (kubeconfig context) and namespace"
                ),
            ));
        }
    }
    Ok(())
}
