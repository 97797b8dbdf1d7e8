//! Alertmanager's webhook (payload version 4) as signals: the payload's serde types, the mapping
//! of one alert to a `Signal`, and the book of alerts firing now, deduped on redelivery through
//! the store and kept in it (each alert with its `endsAt`), so a restarted daemon reloads the
//! alerts still firing instead of clearing them — Alertmanager may not resend one for hours
//! (`repeat_interval`). May import model, config and store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::HeadlessConfig;
use crate::model::signal::{Severity, Signal, Subject};
use crate::store::{Store, StoreError};

/// One webhook notification, as Alertmanager sends it. Unknown fields are ignored: a newer
/// Alertmanager may add some.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    /// How many alerts Alertmanager left out (`max_alerts` in the receiver).
    #[serde(default)]
    pub truncated_alerts: u64,
    #[serde(default)]
    pub status: Option<AlertStatus>,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// `0001-01-01T00:00:00Z` while the alert fires.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
    /// Who sent it: `alertmanager`, or the vendor whose payload `headless::intake` read it
    /// from (`grafana`, `datadog`, `azure-monitor`, `elastic`). Not part of the payload.
    #[serde(skip)]
    pub source: &'static str,
}

impl Alert {
    /// The sender's name (Alertmanager unless an intake says otherwise).
    pub fn source(&self) -> &'static str {
        if self.source.is_empty() {
            "alertmanager"
        } else {
            self.source
        }
    }

    /// Alertmanager's fingerprint, or (from a sender that leaves it out) a hash of the labels.
    pub fn identity(&self) -> String {
        if !self.fingerprint.trim().is_empty() {
            return self.fingerprint.trim().to_string();
        }
        let mut h = Sha256::new();
        for (k, v) in &self.labels {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The start of this firing episode; a zero time (year 1) counts as absent.
    pub fn started(&self) -> Option<DateTime<Utc>> {
        self.starts_at.filter(|t| t.year() > 1970)
    }

    /// When its sender says it ends; a zero time (year 1, Alertmanager's for an alert still
    /// firing) counts as absent: it fires until resolved.
    pub fn ends(&self) -> Option<DateTime<Utc>> {
        self.ends_at.filter(|t| t.year() > 1970)
    }

    /// The key a delivery of this alert is remembered under: one per fingerprint, status and
    /// episode, so a redelivery of the same notice is a duplicate and the next episode is not.
    fn delivery_key(&self) -> String {
        let started = self
            .started()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| "-".into());
        format!(
            "{}:{}:{}:{started}",
            self.source(),
            self.identity(),
            self.status.name()
        )
    }
}

/// The severity an alert's `severity` label names (PagerDuty-style page/ticket included);
/// warning when it names none.
pub fn alert_severity(labels: &BTreeMap<String, String>) -> Severity {
    match labels
        .get("severity")
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("critical" | "page" | "error" | "high") => Severity::Critical,
        Some("info" | "informational" | "none" | "low") => Severity::Info,
        _ => Severity::Warning,
    }
}

/// A rule's name as the tail of a signal kind: lowercased, and every run of characters other
/// than letters, digits, `_`, `-` and `.` one `_` ("GPU XID error!" → `gpu_xid_error_`), so a
/// Datadog monitor or Azure rule name with spaces is still one token in a runbook's trigger.
pub fn rule_kind(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.trim().chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
            out.extend(c.to_lowercase());
            gap = false;
        } else if !gap {
            out.push('_');
            gap = true;
        }
    }
    if out.is_empty() {
        out.push_str("unnamed");
    }
    out
}

/// `10.0.0.1:9100` → `10.0.0.1`, `node-1:9400` → `node-1`, `[fd00::1]:9100` → `fd00::1`; a bare
/// IPv6 address or a name without a port is kept.
pub fn strip_port(instance: &str) -> &str {
    let s = instance.trim();
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return host;
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => s,
    }
}

/// The value of the first label of `names` that the alert carries (and is not empty).
fn first_label<'a>(labels: &'a BTreeMap<String, String>, names: &[String]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|n| labels.get(n))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
}

/// One alert as the signal the runbook engine sees. `default_cluster` names the cluster when
/// the alert carries none of `cfg.cluster_labels`.
pub fn alert_signal(
    alert: &Alert,
    cfg: &HeadlessConfig,
    default_cluster: &str,
    now: DateTime<Utc>,
) -> Signal {
    let labels = &alert.labels;
    let alertname = labels
        .get("alertname")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let kind = match labels
        .get("fleetdeck_signal")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        Some(k) => k.to_string(),
        None => format!("alert.{}", rule_kind(alertname.unwrap_or("unnamed"))),
    };
    let deployment = first_label(labels, &cfg.deployment_labels).map(str::to_string);
    let subject = Subject {
        cluster: first_label(labels, &cfg.cluster_labels)
            .unwrap_or(default_cluster)
            .to_string(),
        node: first_label(labels, &cfg.node_labels).map(|n| strip_port(n).to_string()),
        // DCGM exporter's label for the GPU index.
        gpu: labels
            .get("gpu")
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
        endpoint: first_label(labels, &cfg.endpoint_labels).map(str::to_string),
        namespace: first_label(labels, &cfg.namespace_labels).map(str::to_string),
        object: deployment.as_ref().map(|d| format!("deployment/{d}")),
    };
    let annotation = |k: &str| {
        alert
            .annotations
            .get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    let summary = annotation("summary")
        .or_else(|| annotation("description"))
        .or(alertname)
        .unwrap_or(&kind)
        .to_string();
    let mut evidence = BTreeMap::new();
    evidence.insert("source".into(), serde_json::json!(alert.source()));
    evidence.insert("labels".into(), serde_json::json!(labels));
    evidence.insert("annotations".into(), serde_json::json!(alert.annotations));
    if let Some(t) = alert.started() {
        evidence.insert("starts_at".into(), serde_json::json!(t));
    }
    if !alert.generator_url.is_empty() {
        evidence.insert(
            "generator_url".into(),
            serde_json::json!(alert.generator_url),
        );
    }
    if !alert.fingerprint.is_empty() {
        evidence.insert("fingerprint".into(), serde_json::json!(alert.fingerprint));
    }
    // The incident grouping reads a deployment from the evidence, as the detectors put it there.
    if let Some(d) = &deployment {
        evidence.insert("deployment".into(), serde_json::json!(d));
    }
    Signal {
        kind,
        severity: alert_severity(labels),
        subject,
        summary,
        evidence,
        action: annotation("runbook_url")
            .or_else(|| annotation("runbook"))
            .map(str::to_string),
        first_seen: alert.started().unwrap_or(now),
        dedup_key: format!("alert:{}", alert.identity()),
    }
}

/// What became of one alert of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertHandling {
    /// Seen for the first time: the book changed.
    Accepted,
    /// A redelivery of a notice already handled.
    Duplicate,
    /// Older than what the book already knows (a firing notice that arrived after its
    /// resolution, or after a newer episode): ignored.
    Stale,
}

impl AlertHandling {
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

/// What one delivery changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOutcome {
    /// Alerts handled for the first time.
    pub accepted: usize,
    /// Redeliveries and stale notices: nothing changed for them.
    pub duplicates: usize,
    /// Signals that began firing.
    pub fired: Vec<Signal>,
    /// Dedup keys of the signals that stopped firing.
    pub resolved: Vec<String>,
    /// Each alert's status and handling, in the payload's order.
    pub tally: Vec<(AlertStatus, AlertHandling)>,
}

struct FiringAlert {
    started: Option<DateTime<Utc>>,
    /// Past this the alert has ended, resolved notice or not.
    ends_at: Option<DateTime<Utc>>,
    signal: Signal,
}

impl FiringAlert {
    fn fires_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at.is_none_or(|end| end > now)
    }
}

#[derive(Default)]
struct BookState {
    /// Dedup key → the alert firing under it.
    firing: BTreeMap<String, FiringAlert>,
    /// Dedup key → (start of the episode that resolved, when the resolution arrived).
    resolved: HashMap<String, (Option<DateTime<Utc>>, DateTime<Utc>)>,
}

/// The alerts firing now, as signals. Thread-safe; share it behind an `Arc`.
pub struct AlertBook {
    default_cluster: String,
    state: Mutex<BookState>,
}

impl std::fmt::Debug for AlertBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertBook")
            .field("default_cluster", &self.default_cluster)
            .field("firing", &self.len())
            .finish()
    }
}

impl AlertBook {
    /// `default_cluster` is the cluster of alerts that carry no cluster label.
    pub fn new(default_cluster: impl Into<String>) -> Self {
        Self {
            default_cluster: default_cluster.into(),
            state: Mutex::new(BookState::default()),
        }
    }

    /// The book as the store keeps it: the alerts that were firing when the last process
    /// stopped (or that another replica booked) and have not ended by `now`. A restart then
    /// neither clears their signals nor resolves their pages.
    pub fn load(
        default_cluster: impl Into<String>,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let book = Self::new(default_cluster);
        {
            let mut state = book
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for booked in store.alert_book()? {
                let alert = FiringAlert {
                    started: booked.started,
                    ends_at: booked.ends_at,
                    signal: booked.signal,
                };
                if alert.fires_at(now) {
                    state.firing.insert(booked.key, alert);
                } else {
                    // Ended while no one was watching: its signal simply does not come back.
                    store.book_remove(&booked.key)?;
                }
            }
        }
        Ok(book)
    }

    /// Applies one delivery. Each alert is remembered in the store (for `alert_dedup_for`) by
    /// fingerprint, status and start, so a redelivery — also after a restart — is a duplicate.
    /// A firing alert puts its signal in the book; a resolved one takes it out, before any
    /// evaluation can see it again. Blocks on the store: call it off the async threads.
    pub fn apply(
        &self,
        payload: &WebhookPayload,
        store: &Store,
        cfg: &HeadlessConfig,
        now: DateTime<Utc>,
    ) -> Result<AlertOutcome, StoreError> {
        let remember_for =
            chrono::Duration::from_std(cfg.alert_dedup_for).unwrap_or(chrono::Duration::days(1));
        let expires_at = now + remember_for;
        // One delivery at a time: the sighting and the book's change are one step.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .resolved
            .retain(|_, (_, seen)| *seen + remember_for > now);
        let mut out = AlertOutcome::default();
        for alert in &payload.alerts {
            let first = store.first_sighting(&alert.delivery_key(), now, expires_at)?;
            let signal = alert_signal(alert, cfg, &self.default_cluster, now);
            let key = signal.dedup_key.clone();
            let started = alert.started();
            let handling = match alert.status {
                AlertStatus::Firing => {
                    let resolved_since = state
                        .resolved
                        .get(&key)
                        .is_some_and(|(episode, _)| *episode >= started);
                    let newer_firing = state.firing.get(&key).is_some_and(|f| f.started > started);
                    if resolved_since || newer_firing {
                        AlertHandling::Stale
                    } else {
                        // Also for a duplicate: a book from before the store kept it is empty
                        // while the store still remembers the sighting.
                        let booked = crate::store::BookedAlert {
                            key: key.clone(),
                            started,
                            ends_at: alert.ends(),
                            signal: signal.clone(),
                        };
                        if state
                            .firing
                            .get(&key)
                            .is_none_or(|f| f.started != started || f.ends_at != booked.ends_at)
                        {
                            store.book_put(&booked)?;
                        }
                        state.firing.insert(
                            key.clone(),
                            FiringAlert {
                                started,
                                ends_at: booked.ends_at,
                                signal: signal.clone(),
                            },
                        );
                        state.resolved.remove(&key);
                        if first {
                            out.fired.push(signal);
                            AlertHandling::Accepted
                        } else {
                            AlertHandling::Duplicate
                        }
                    }
                }
                AlertStatus::Resolved => {
                    let newer_firing = state.firing.get(&key).is_some_and(|f| f.started > started);
                    if newer_firing {
                        AlertHandling::Stale
                    } else {
                        if state.firing.remove(&key).is_some() {
                            store.book_remove(&key)?;
                        }
                        let episode = state
                            .resolved
                            .get(&key)
                            .map_or(started, |(e, _)| (*e).max(started));
                        state.resolved.insert(key.clone(), (episode, now));
                        if first {
                            out.resolved.push(key);
                            AlertHandling::Accepted
                        } else {
                            AlertHandling::Duplicate
                        }
                    }
                }
            };
            match handling {
                AlertHandling::Accepted => out.accepted += 1,
                AlertHandling::Duplicate | AlertHandling::Stale => out.duplicates += 1,
            }
            out.tally.push((alert.status, handling));
        }
        Ok(out)
    }

    /// The signals of the alerts firing now (not past their `endsAt`), to merge into each
    /// evaluation.
    pub fn signals(&self) -> Vec<Signal> {
        let now = Utc::now();
        self.state
            .lock()
            .map(|s| {
                s.firing
                    .values()
                    .filter(|f| f.fires_at(now))
                    .map(|f| f.signal.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many alerts fire now.
    pub fn len(&self) -> usize {
        let now = Utc::now();
        self.state
            .lock()
            .map(|s| s.firing.values().filter(|f| f.fires_at(now)).count())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Alertmanager's firing alerts are an intake of the pipeline: signals until they resolve.
impl crate::pipeline::Intake for AlertBook {
    fn signals(&self) -> Vec<Signal> {
        AlertBook::signals(self)
    }

    fn key_prefix(&self) -> &'static str {
        "alert:"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(status: AlertStatus, pairs: &[(&str, &str)]) -> Alert {
        Alert {
            status,
            labels: labels(pairs),
            annotations: BTreeMap::new(),
            starts_at: "2025-03-01T10:00:00Z".parse().ok(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "f00d".into(),
            source: "",
        }
    }

    fn now() -> DateTime<Utc> {
        "2025-03-01T10:05:00Z".parse().unwrap_or_default()
    }

    fn signal_of(a: &Alert) -> Signal {
        alert_signal(a, &HeadlessConfig::default(), "prod", now())
    }

    #[test]
    fn kind_is_the_lowercased_alertname_unless_the_alert_names_a_signal() {
        let a = alert(AlertStatus::Firing, &[("alertname", "GPUXidError")]);
        assert_eq!(signal_of(&a).kind, "alert.gpuxiderror");
        let b = alert(
            AlertStatus::Firing,
            &[
                ("alertname", "GPUXidError"),
                ("fleetdeck_signal", "gpu.xid"),
            ],
        );
        assert_eq!(signal_of(&b).kind, "gpu.xid");
        assert_eq!(
            signal_of(&alert(AlertStatus::Firing, &[])).kind,
            "alert.unnamed"
        );
    }

    #[test]
    fn severity_reads_critical_warning_info_and_page_ticket() {
        for (label, want) in [
            ("critical", Severity::Critical),
            ("page", Severity::Critical),
            ("warning", Severity::Warning),
            ("ticket", Severity::Warning),
            ("info", Severity::Info),
            ("Critical", Severity::Critical),
        ] {
            let a = alert(AlertStatus::Firing, &[("severity", label)]);
            assert_eq!(signal_of(&a).severity, want, "severity={label}");
        }
        // The capture in tests/fixtures misspells the label: no severity means warning.
        let a = alert(AlertStatus::Firing, &[("serverity", "critical")]);
        assert_eq!(signal_of(&a).severity, Severity::Warning);
    }

    #[test]
    fn instance_labels_lose_their_port_to_name_the_node() {
        assert_eq!(strip_port("10.0.0.1:9100"), "10.0.0.1");
        assert_eq!(strip_port("node-1:9400"), "node-1");
        assert_eq!(strip_port("[fd00::1]:9100"), "fd00::1");
        assert_eq!(strip_port("fd00::1"), "fd00::1");
        assert_eq!(strip_port("node-1"), "node-1");
        let a = alert(
            AlertStatus::Firing,
            &[("alertname", "NodeDown"), ("instance", "gpu-node-7:9400")],
        );
        assert_eq!(signal_of(&a).subject.node.as_deref(), Some("gpu-node-7"));
    }

    #[test]
    fn the_first_configured_label_present_wins() {
        let a = alert(
            AlertStatus::Firing,
            &[
                ("kubernetes_node", "n-k8s"),
                ("instance", "10.0.0.1:9100"),
                ("exported_namespace", "ml"),
                ("cluster", "eu-1"),
                ("deployment", "llama"),
                ("service", "llama-svc"),
                ("gpu", "3"),
            ],
        );
        let s = signal_of(&a);
        assert_eq!(s.subject.node.as_deref(), Some("n-k8s"));
        assert_eq!(s.subject.namespace.as_deref(), Some("ml"));
        assert_eq!(s.subject.cluster, "eu-1");
        assert_eq!(s.subject.object.as_deref(), Some("deployment/llama"));
        assert_eq!(s.subject.endpoint.as_deref(), Some("llama-svc"));
        assert_eq!(s.subject.gpu.as_deref(), Some("3"));
        assert_eq!(s.evidence["deployment"], "llama");
        let bare = signal_of(&alert(AlertStatus::Firing, &[("alertname", "X")]));
        assert_eq!(bare.subject.cluster, "prod");
        assert_eq!(bare.subject.node, None);
    }

    #[test]
    fn summary_prefers_the_summary_then_the_description_then_the_name() {
        let mut a = alert(AlertStatus::Firing, &[("alertname", "HighLatency")]);
        assert_eq!(signal_of(&a).summary, "HighLatency");
        a.annotations
            .insert("description".into(), "p99 above 2s".into());
        assert_eq!(signal_of(&a).summary, "p99 above 2s");
        a.annotations
            .insert("summary".into(), "llama is slow".into());
        a.annotations
            .insert("runbook_url".into(), "https://wiki/llama".into());
        let s = signal_of(&a);
        assert_eq!(s.summary, "llama is slow");
        assert_eq!(s.action.as_deref(), Some("https://wiki/llama"));
    }

    #[test]
    fn evidence_keeps_labels_annotations_start_source_and_fingerprint() {
        let mut a = alert(AlertStatus::Firing, &[("alertname", "X"), ("job", "dcgm")]);
        a.annotations.insert("summary".into(), "s".into());
        a.generator_url = "http://prom/graph".into();
        let s = signal_of(&a);
        assert_eq!(s.evidence["labels"]["job"], "dcgm");
        assert_eq!(s.evidence["annotations"]["summary"], "s");
        assert_eq!(s.evidence["generator_url"], "http://prom/graph");
        assert_eq!(s.evidence["fingerprint"], "f00d");
        assert_eq!(s.evidence["starts_at"], "2025-03-01T10:00:00Z");
        assert_eq!(s.first_seen, a.starts_at.unwrap_or_default());
        assert_eq!(s.dedup_key, "alert:f00d");
    }

    #[test]
    fn an_alert_without_fingerprint_is_keyed_by_its_sorted_labels() {
        let mut a = alert(AlertStatus::Firing, &[("alertname", "X"), ("node", "n1")]);
        a.fingerprint.clear();
        let mut b = alert(AlertStatus::Firing, &[("node", "n1"), ("alertname", "X")]);
        b.fingerprint.clear();
        let mut c = alert(AlertStatus::Firing, &[("alertname", "X"), ("node", "n2")]);
        c.fingerprint.clear();
        assert_eq!(signal_of(&a).dedup_key, signal_of(&b).dedup_key);
        assert_ne!(signal_of(&a).dedup_key, signal_of(&c).dedup_key);
        assert!(signal_of(&a).dedup_key.starts_with("alert:"));
    }

    #[test]
    fn a_zero_start_time_counts_as_absent() {
        let mut a = alert(AlertStatus::Firing, &[("alertname", "X")]);
        a.starts_at = "0001-01-01T00:00:00Z".parse().ok();
        assert_eq!(signal_of(&a).first_seen, now());
    }

    fn payload(alerts: Vec<Alert>) -> WebhookPayload {
        WebhookPayload {
            version: "4".into(),
            group_key: String::new(),
            truncated_alerts: 0,
            status: None,
            receiver: String::new(),
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: String::new(),
            alerts,
        }
    }

    #[test]
    fn a_firing_notice_after_its_resolution_is_stale_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let cfg = HeadlessConfig::default();
        let book = AlertBook::new("prod");
        let resolved = alert(AlertStatus::Resolved, &[("alertname", "X")]);
        let firing = alert(AlertStatus::Firing, &[("alertname", "X")]);
        let out = book
            .apply(&payload(vec![resolved]), &store, &cfg, now())
            .unwrap();
        assert_eq!(out.resolved, vec!["alert:f00d".to_string()]);
        let out = book
            .apply(&payload(vec![firing.clone()]), &store, &cfg, now())
            .unwrap();
        assert_eq!(out.tally, vec![(AlertStatus::Firing, AlertHandling::Stale)]);
        assert!(book.is_empty());
        // The next episode (a later start) fires again.
        let mut next = firing;
        next.starts_at = "2025-03-01T11:00:00Z".parse().ok();
        let out = book
            .apply(&payload(vec![next]), &store, &cfg, now())
            .unwrap();
        assert_eq!(out.fired.len(), 1);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn a_redelivery_after_a_restart_refills_the_book_without_firing_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let cfg = HeadlessConfig::default();
        let firing = payload(vec![alert(AlertStatus::Firing, &[("alertname", "X")])]);
        let out = AlertBook::new("prod")
            .apply(&firing, &store, &cfg, now())
            .unwrap();
        assert_eq!(out.fired.len(), 1);
        let restarted = AlertBook::new("prod");
        let out = restarted.apply(&firing, &store, &cfg, now()).unwrap();
        assert_eq!((out.accepted, out.duplicates), (0, 1));
        assert!(out.fired.is_empty());
        assert_eq!(restarted.signals().len(), 1);
    }

    #[test]
    fn a_restart_reloads_the_alerts_still_firing_until_their_end_or_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let cfg = HeadlessConfig::default();
        let open_ended = alert(AlertStatus::Firing, &[("alertname", "X")]);
        let mut ending = alert(AlertStatus::Firing, &[("alertname", "Y")]);
        ending.fingerprint = "beef".into();
        ending.ends_at = "2025-03-01T10:30:00Z".parse().ok();
        AlertBook::new("prod")
            .apply(
                &payload(vec![open_ended.clone(), ending]),
                &store,
                &cfg,
                now(),
            )
            .unwrap();
        // Before Y's endsAt both fire again in the new process; after it only X does.
        let early = AlertBook::load("prod", &store, now()).unwrap();
        assert_eq!(early.state.lock().unwrap().firing.len(), 2);
        let late_at: DateTime<Utc> = "2025-03-01T11:00:00Z".parse().unwrap();
        let late = AlertBook::load("prod", &store, late_at).unwrap();
        let firing: Vec<String> = late.state.lock().unwrap().firing.keys().cloned().collect();
        assert_eq!(firing, ["alert:f00d"]);
        assert_eq!(
            store.alert_book().unwrap().len(),
            1,
            "the ended one is dropped"
        );
        // Its resolution takes it out of the store too.
        let mut resolved = open_ended;
        resolved.status = AlertStatus::Resolved;
        late.apply(&payload(vec![resolved]), &store, &cfg, late_at)
            .unwrap();
        assert!(store.alert_book().unwrap().is_empty());
        assert!(AlertBook::load("prod", &store, late_at).unwrap().is_empty());
    }
}
