//! Notifications out: the named sinks of `[notify.sinks.NAME]` (Slack, Microsoft Teams,
//! PagerDuty Events API v2, a generic webhook), the messages runbooks and policies send them,
//! and their delivery — a bounded queue drained by one thread of its own, each message retried
//! with backoff, each outcome on the incident's timeline — so that sending never blocks a run.
//! Secrets (webhook URLs, routing keys) are read from files or the environment at start and
//! never written anywhere: not to the store, the logs or an error. `notify::policy` pages on
//! incidents opening, being acknowledged and resolving. May import model, config and store.

pub mod policy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::{NotifyConfig, SinkConfig, SinkKind};
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin};
use crate::model::signal::Severity;
use crate::store::Store;

/// PagerDuty's Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("[notify.sinks.{sink}]: cannot read {what} from {from}: {reason}")]
    Secret {
        sink: String,
        what: &'static str,
        from: String,
        reason: String,
    },
    #[error("cannot start the notification thread: {0}")]
    Thread(String),
}

/// What a message asks of its sink; PagerDuty's `event_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
        }
    }
}

/// One message for one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub sink: String,
    pub action: Action,
    /// The incident it is about: PagerDuty's `dedup_key` is its label (`INC-42`), so its
    /// trigger, acknowledgement and resolution are one PagerDuty incident.
    pub incident: Option<u64>,
    pub severity: Severity,
    pub summary: String,
    /// Who sends it: `fleetdeck`, `runbook:NAME`.
    pub source: String,
    /// The subject (`cluster/node`, …), PagerDuty's `component`.
    pub component: Option<String>,
    pub details: Value,
    pub at: DateTime<Utc>,
    /// Who asked for it, for the timeline.
    pub actor: Actor,
}

/// A sink with its secret read.
struct Sink {
    kind: SinkKind,
    /// The webhook URL, or PagerDuty's events URL.
    url: String,
    /// PagerDuty's routing key.
    routing_key: Option<String>,
}

/// Reads `file` or `env` (one of them is set: the config's check).
fn secret(sink: &str, what: &'static str, file: &str, env: &str) -> Result<String, NotifyError> {
    let failed = |from: String, reason: String| NotifyError::Secret {
        sink: sink.to_string(),
        what,
        from,
        reason,
    };
    match crate::config::read_secret(file, env) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(failed(
            "the config".into(),
            "neither a file nor an environment variable is named".into(),
        )),
        Err(e) => Err(failed(e.from, e.reason)),
    }
}

impl Sink {
    fn from_config(name: &str, c: &SinkConfig) -> Result<Self, NotifyError> {
        Ok(match c.kind {
            SinkKind::Pagerduty => Sink {
                kind: c.kind,
                url: if c.events_url.is_empty() {
                    PAGERDUTY_EVENTS_URL.to_string()
                } else {
                    c.events_url.clone()
                },
                routing_key: Some(secret(
                    name,
                    "the routing key",
                    &c.routing_key_file,
                    &c.routing_key_env,
                )?),
            },
            kind => {
                let url = secret(name, "the webhook URL", &c.url_file, &c.url_env)?;
                if url::Url::parse(&url).is_err() {
                    return Err(NotifyError::Secret {
                        sink: name.to_string(),
                        what: "the webhook URL",
                        from: if c.url_file.is_empty() {
                            format!("${}", c.url_env)
                        } else {
                            c.url_file.clone()
                        },
                        reason: "it is not a URL".into(),
                    });
                }
                Sink {
                    kind,
                    url,
                    routing_key: None,
                }
            }
        })
    }
}

/// The page identity of an incident's group in one installation: what PagerDuty dedups on
/// (and a webhook's `key`). Derived from the group (and `[notify] installation_id`), never the
/// store's incident number: that number starts again at 1 in every store, so a new pod paged
/// `INC-1` again for a node that had paged, and merged or resolved unrelated pages. Hashed,
/// as a group is outside text of any length (PagerDuty keeps 255 characters).
pub fn page_key(installation: &str, group: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{installation}\n{group}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    if installation.is_empty() {
        format!("fleetdeck-{hex}")
    } else {
        format!("fleetdeck-{installation}-{hex}")
    }
}

/// The [`page_key`] of incident `id` of `store`: its group's; `None` when the store does not
/// know it.
pub fn incident_page_key(store: &Store, installation: &str, id: u64) -> Option<String> {
    let incident = store.incident(id).ok().flatten()?;
    Some(page_key(installation, &incident.group))
}

/// The JSON body `kind` gets for `m`; `key` is its incident's [`page_key`].
pub fn payload(kind: SinkKind, routing_key: Option<&str>, m: &Message, key: Option<&str>) -> Value {
    let label = m.incident.map(crate::model::incident::incident_label);
    let severity = match m.severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let headline = match (&label, m.action) {
        (Some(l), Action::Trigger) => format!("[{}] {l}: {}", severity.to_uppercase(), m.summary),
        (Some(l), Action::Acknowledge) => format!("[ACKNOWLEDGED] {l}: {}", m.summary),
        (Some(l), Action::Resolve) => format!("[RESOLVED] {l}: {}", m.summary),
        (None, _) => format!("[{}] {}", severity.to_uppercase(), m.summary),
    };
    let facts: Vec<(String, String)> = [
        ("source", Some(m.source.clone())),
        ("subject", m.component.clone()),
        ("incident", label.clone()),
        (
            "at",
            Some(m.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    match kind {
        SinkKind::Slack => json!({
            "text": headline,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}},
                {"type": "context", "elements": facts.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("{k}: {v}")})).collect::<Vec<_>>()},
            ],
        }),
        SinkKind::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": headline, "weight": "Bolder", "size": "Medium", "wrap": true,
                         "color": if m.severity == Severity::Critical && m.action == Action::Trigger { "Attention" } else { "Default" }},
                        {"type": "FactSet", "facts": facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()},
                    ],
                },
            }],
        }),
        SinkKind::Pagerduty => {
            let dedup = key
                .map(str::to_string)
                .unwrap_or_else(|| format!("fleetdeck-{}-{}", m.source, m.summary.len()));
            let mut body = json!({
                "routing_key": routing_key.unwrap_or_default(),
                "event_action": m.action.name(),
                "dedup_key": dedup,
            });
            if m.action == Action::Trigger {
                body["payload"] = json!({
                    "summary": headline.chars().take(1024).collect::<String>(),
                    "source": m.component.clone().unwrap_or_else(|| "fleetdeck".into()),
                    "severity": severity,
                    "timestamp": m.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "component": m.component,
                    "group": m.component.as_deref().and_then(|c| c.split('/').next()),
                    "class": m.source,
                    "custom_details": m.details,
                });
            }
            body
        }
        SinkKind::Webhook => json!({
            "event": m.action.name(),
            "incident": label,
            "key": key,
            "severity": severity,
            "summary": m.summary,
            "source": m.source,
            "subject": m.component,
            "at": m.at,
            "details": m.details,
        }),
    }
}

/// Where delivery outcomes are written, with the origin of the process.
#[derive(Clone)]
struct Record {
    store: Option<Store>,
    origin: Origin,
}

impl Record {
    fn write(&self, m: &Message, sink: &Sink, summary: String, failed: bool) {
        let Some(store) = &self.store else { return };
        let mut e = NewEntry::new(EntryKind::Action, m.actor.clone(), self.origin, summary);
        e.incident = m.incident;
        e.detail.insert("sink".into(), json!(m.sink));
        e.detail.insert("sink_kind".into(), json!(sink.kind.name()));
        e.detail.insert("action".into(), json!(m.action.name()));
        if failed {
            e.verdict = Some(crate::model::incident::Verdict::Refused);
        }
        if let Err(err) = store.append(e) {
            tracing::warn!(error = %err, sink = %m.sink, "a notification outcome could not be recorded");
        }
    }
}

struct Inner {
    sinks: BTreeMap<String, Sink>,
    tx: mpsc::Sender<Message>,
    record: Record,
    /// `[notify] installation_id`, for [`page_key`].
    installation: String,
}

/// The process's notifier: cheap to clone, sends never block.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret.
        f.debug_struct("Notifier")
            .field("sinks", &self.sink_names())
            .finish()
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no sink {name:?}; configured: {known} (add [notify.sinks.{name}] to fleetdeck.toml)")]
    UnknownSink { name: String, known: String },
    #[error("the notification queue is full ({0} waiting): the message to {1:?} was dropped")]
    QueueFull(usize, String),
}

impl Notifier {
    /// Reads every sink's secret and starts the delivery thread; `None` when no sink is
    /// configured. `store` receives each outcome (on the message's incident).
    pub fn start(
        cfg: &NotifyConfig,
        store: Option<Store>,
        origin: Origin,
    ) -> Result<Option<Self>, NotifyError> {
        if cfg.sinks.is_empty() {
            return Ok(None);
        }
        let sinks = cfg
            .sinks
            .iter()
            .map(|(name, c)| Ok((name.clone(), Sink::from_config(name, c)?)))
            .collect::<Result<BTreeMap<_, _>, NotifyError>>()?;
        let (tx, rx) = mpsc::channel(cfg.queue.max(1) as usize);
        let inner = Arc::new(Inner {
            sinks,
            tx,
            record: Record { store, origin },
            installation: cfg.installation_id.clone(),
        });
        let delivery = Delivery {
            attempts: cfg.attempts.max(1),
            retry_base: cfg.retry_base,
            timeout: cfg.timeout,
        };
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("fleetdeck-notify".into())
            .spawn(move || delivery.run(rx, weak))
            .map_err(|e| NotifyError::Thread(e.to_string()))?;
        Ok(Some(Self { inner }))
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.inner.sinks.keys().cloned().collect()
    }

    pub fn has_sink(&self, name: &str) -> bool {
        self.inner.sinks.contains_key(name)
    }

    /// Queues `m`; returns at once. A full queue refuses it, and the refusal is recorded.
    pub fn send(&self, m: Message) -> Result<(), SendError> {
        let Some(sink) = self.inner.sinks.get(&m.sink) else {
            return Err(SendError::UnknownSink {
                name: m.sink.clone(),
                known: if self.inner.sinks.is_empty() {
                    "none".into()
                } else {
                    self.sink_names().join(", ")
                },
            });
        };
        match self.inner.tx.try_send(m) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => {
                let waiting = self.inner.tx.max_capacity();
                self.inner.record.write(
                    &m,
                    sink,
                    format!(
                        "notify {}: not sent, the notification queue is full ({waiting} waiting)",
                        m.sink
                    ),
                    true,
                );
                Err(SendError::QueueFull(waiting, m.sink))
            }
        }
    }
}

/// The delivery thread's settings.
struct Delivery {
    attempts: u32,
    retry_base: Duration,
    timeout: Duration,
}

/// A 429's `Retry-After` (seconds) beyond which a message is retried on its own schedule.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Delivery {
    /// Drains the queue until every `Notifier` is gone. Messages are delivered concurrently
    /// (a slow sink does not hold the others up), each with its own retries.
    fn run(self, mut rx: mpsc::Receiver<Message>, inner: std::sync::Weak<Inner>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "the notification thread cannot start its runtime: nothing is sent");
                return;
            }
        };
        let client = match crate_client(self.timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for notifications: nothing is sent");
                return;
            }
        };
        let this = Arc::new(self);
        rt.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            // Messages about one incident to one sink go in the order they were asked for (a
            // PagerDuty acknowledge must not overtake its trigger, nor a resolve its
            // acknowledge, even while one is being retried); the others do not wait for them.
            let mut last_of: std::collections::HashMap<
                (String, u64),
                tokio::sync::oneshot::Receiver<()>,
            > = std::collections::HashMap::new();
            while let Some(m) = rx.recv().await {
                let Some(inner) = inner.upgrade() else { break };
                let (client, this) = (client.clone(), this.clone());
                let (done, after) = match m.incident {
                    Some(id) => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        (Some(tx), last_of.insert((m.sink.clone(), id), rx))
                    }
                    None => (None, None),
                };
                tasks.spawn(async move {
                    if let Some(before) = after {
                        // Sent or dropped: either way the earlier message is finished.
                        let _ = before.await;
                    }
                    this.deliver(&client, &inner, m).await;
                    drop(done);
                });
                while tasks.try_join_next().is_some() {}
                if last_of.len() > 256 {
                    // Forget chains whose last message is finished.
                    last_of.retain(|_, rx| {
                        matches!(
                            rx.try_recv(),
                            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
                        )
                    });
                }
            }
            while tasks.join_next().await.is_some() {}
        });
    }

    async fn deliver(&self, client: &reqwest::Client, inner: &Inner, m: Message) {
        let Some(sink) = inner.sinks.get(&m.sink) else {
            return;
        };
        let key = m.incident.and_then(|id| {
            incident_page_key(inner.record.store.as_ref()?, &inner.installation, id)
        });
        let body = payload(sink.kind, sink.routing_key.as_deref(), &m, key.as_deref());
        let what = format!("{} {}", sink.kind.name(), m.action.name());
        let mut wait = self.retry_base;
        for attempt in 1..=self.attempts {
            let answer = client.post(&sink.url).json(&body).send().await;
            let (failure, retry_after) = match answer {
                Ok(r) if r.status().is_success() => {
                    inner.record.write(
                        &m,
                        sink,
                        format!("notify {}: delivered ({what}, attempt {attempt})", m.sink),
                        false,
                    );
                    return;
                }
                Ok(r) => {
                    let retry_after = (r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS)
                        .then(|| {
                            r.headers()
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok())
                                .map(Duration::from_secs)
                        })
                        .flatten();
                    (format!("HTTP {}", r.status()), retry_after)
                }
                // Never the URL: a webhook's URL is its secret.
                Err(e) => (e.without_url().to_string(), None),
            };
            if attempt == self.attempts {
                inner.record.write(
                    &m,
                    sink,
                    format!(
                        "notify {}: gave up after {attempt} attempts ({what}): {failure}",
                        m.sink
                    ),
                    true,
                );
                tracing::warn!(sink = %m.sink, %failure, "a notification was given up");
                return;
            }
            let pause = retry_after.map_or(wait, |r| r.min(MAX_RETRY_AFTER));
            inner.record.write(
                &m,
                sink,
                format!(
                    "notify {}: attempt {attempt} failed ({what}): {failure}; retrying in {}",
                    m.sink,
                    humantime::format_duration(pause)
                ),
                true,
            );
            tokio::time::sleep(pause).await;
            wait = wait.saturating_mul(2);
        }
    }
}

fn crate_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(action: Action) -> Message {
        Message {
            sink: "oncall".into(),
            action,
            incident: Some(42),
            severity: Severity::Critical,
            summary: "XID 79 on ip-10-20-0-11".into(),
            source: "fleetdeck".into(),
            component: Some("sim-a/ip-10-20-0-11".into()),
            details: json!({"xid": 79}),
            at: "2026-12-01T10:00:00Z".parse().unwrap_or_default(),
            actor: Actor::System,
        }
    }

    #[test]
    fn pagerduty_keys_every_action_of_an_incident_on_its_page_key() {
        let key = page_key("prod", "sim-a/ip-10-20-0-11");
        let t = payload(
            SinkKind::Pagerduty,
            Some("R0UT1NG"),
            &message(Action::Trigger),
            Some(&key),
        );
        assert_eq!(t["routing_key"], "R0UT1NG");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["dedup_key"], key.as_str());
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "sim-a/ip-10-20-0-11");
        assert_eq!(t["payload"]["custom_details"]["xid"], 79);
        let r = payload(
            SinkKind::Pagerduty,
            Some("R0UT1NG"),
            &message(Action::Resolve),
            Some(&key),
        );
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], key.as_str());
        assert!(
            r.get("payload").is_none(),
            "only a trigger carries a payload"
        );
    }

    #[test]
    fn slack_teams_and_webhook_bodies_carry_the_headline() {
        let m = message(Action::Trigger);
        let slack = payload(SinkKind::Slack, None, &m, Some("k"));
        assert_eq!(slack["text"], "[CRITICAL] INC-42: XID 79 on ip-10-20-0-11");
        let teams = payload(SinkKind::Teams, None, &m, Some("k"));
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], slack["text"]);
        let hook = payload(SinkKind::Webhook, None, &m, Some("k"));
        assert_eq!(hook["event"], "trigger");
        assert_eq!(hook["incident"], "INC-42");
        assert_eq!(hook["key"], "k");
    }

    /// Opens the incident of an XID on `node` in `store`; answers its number.
    fn open_incident(store: &Store, node: &str) -> u64 {
        let signal: crate::model::signal::Signal = serde_json::from_value(json!({
            "kind": "gpu.xid", "severity": "critical",
            "subject": {"cluster": "sim-a", "node": node, "gpu": "0"},
            "summary": format!("XID 79 on {node}"), "evidence": {},
            "first_seen": Utc::now(), "dedup_key": format!("gpu.xid:sim-a/{node}/0")
        }))
        .expect("a signal");
        store
            .record_signals(
                &[signal],
                &[],
                Origin::Headless,
                Duration::from_secs(600),
                Utc::now(),
            )
            .expect("recorded")[0]
            .incident
    }

    #[test]
    fn page_keys_come_from_the_group_never_the_stores_incident_number() {
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("temp dir"))
            .collect();
        let stores: Vec<Store> = dirs
            .iter()
            .map(|d| Store::open(&d.path().join("store")).expect("store"))
            .collect();
        // Two fresh stores (two pods): each numbers its first incident 1, for different nodes.
        let a = open_incident(&stores[0], "node-a");
        let b = open_incident(&stores[1], "node-b");
        assert_eq!((a, b), (1, 1));
        let key_a = incident_page_key(&stores[0], "prod", a).expect("a key");
        let key_b = incident_page_key(&stores[1], "prod", b).expect("a key");
        assert_ne!(key_a, key_b, "two groups, one page identity");
        // A third fresh store, after another incident: node-a again, as number 2; same page.
        open_incident(&stores[2], "node-c");
        let again = open_incident(&stores[2], "node-a");
        assert_eq!(again, 2);
        assert_eq!(
            incident_page_key(&stores[2], "prod", again).as_deref(),
            Some(key_a.as_str()),
            "the same group on a new store pages under the same key"
        );
        // Another installation pages the same group under its own key.
        assert_ne!(
            incident_page_key(&stores[0], "staging", a),
            Some(key_a.clone())
        );
        assert!(!key_a.contains("INC-") && key_a.len() <= 255, "{key_a}");
    }
}
