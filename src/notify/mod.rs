//! Notifications out: the named sinks of `[notify.sinks.NAME]` (Slack, Microsoft Teams,
//! PagerDuty Events API v2, a generic webhook), the messages runbooks and policies send them,
//! and their delivery — each message written to the store's outbox before it is sent, drained
//! by one thread of its own, retried with backoff until `[notify] give_up_after`, marked when
//! delivered or given up, each outcome on the incident's timeline — so that sending never
//! blocks a run, and a restart or a new leader sends what was still owed.
//! Secrets (webhook URLs, routing keys) are read from files or the environment at start and
//! never written anywhere: not to the store, the logs or an error. `notify::policy` pages on
//! incidents opening, being acknowledged and resolving. May import model, config and store.

pub mod policy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::config::{NotifyConfig, SinkConfig, SinkKind};
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin};
use crate::model::signal::Severity;
use crate::store::{OutboxKind, OutboxRecord, Store, StoreError};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Trigger,
    Acknowledge,
    /// The impact stopped (every signal cleared); not resolved yet.
    Mitigate,
    Resolve,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Acknowledge => "acknowledge",
            Self::Mitigate => "mitigate",
            Self::Resolve => "resolve",
        }
    }

    /// PagerDuty's `event_action`: it knows no mitigated state, so a mitigation acknowledges
    /// the page (it stays open, quiet, until resolved).
    pub fn pagerduty(self) -> &'static str {
        match self {
            Self::Mitigate => Self::Acknowledge.name(),
            other => other.name(),
        }
    }
}

/// One message for one sink, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
        (Some(l), Action::Mitigate) => format!("[MITIGATED] {l}: {}", m.summary),
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
                "event_action": m.action.pagerduty(),
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
    fn write(&self, m: &Message, kind: SinkKind, summary: String, failed: bool) {
        self.write_with(m, kind, summary, failed, false);
    }

    /// `gave_up`: marks the entry as a notification given up (counted on `/metrics`).
    fn write_with(
        &self,
        m: &Message,
        kind: SinkKind,
        summary: String,
        failed: bool,
        gave_up: bool,
    ) {
        let Some(store) = &self.store else { return };
        let mut e = NewEntry::new(EntryKind::Action, m.actor.clone(), self.origin, summary);
        e.incident = m.incident;
        e.detail.insert("sink".into(), json!(m.sink));
        e.detail.insert("sink_kind".into(), json!(kind.name()));
        e.detail.insert("action".into(), json!(m.action.name()));
        if gave_up {
            e.detail.insert(GAVE_UP.into(), json!(true));
        }
        if failed {
            e.verdict = Some(crate::model::incident::Verdict::Refused);
        }
        if let Err(err) = store.append(e) {
            tracing::warn!(error = %err, sink = %m.sink, "a notification outcome could not be recorded");
        }
    }
}

/// The detail key of a timeline entry that records a notification given up.
pub const GAVE_UP: &str = "notify_gave_up";

/// Where messages wait until they are delivered: the store's outbox, so that a restart or a new
/// leader sends what this process could not; in memory only for a notifier without a store
/// (nothing to resume from).
enum Outbox {
    Store(Store),
    Memory(std::sync::Mutex<BTreeMap<String, OutboxRecord>>),
}

impl Outbox {
    fn enqueue(
        &self,
        r: &OutboxRecord,
        once: Option<(&str, DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Store(s) => s.outbox_enqueue(r, once),
            Self::Memory(m) => {
                lock(m).insert(r.id.clone(), r.clone());
                Ok(true)
            }
        }
    }

    fn update(&self, r: &OutboxRecord) -> Result<(), StoreError> {
        match self {
            Self::Store(s) => s.outbox_update(r),
            Self::Memory(m) => {
                let mut m = lock(m);
                if r.is_owed() {
                    m.insert(r.id.clone(), r.clone());
                } else {
                    m.remove(&r.id);
                }
                Ok(())
            }
        }
    }

    /// The notifications still owed, in the order queued.
    fn owed(&self) -> Result<Vec<OutboxRecord>, StoreError> {
        let all = match self {
            Self::Store(s) => s.outbox()?,
            Self::Memory(m) => lock(m).values().cloned().collect(),
        };
        Ok(all
            .into_iter()
            .filter(|r| r.kind == OutboxKind::Notify && r.is_owed())
            .collect())
    }

    fn is_shared(&self) -> bool {
        matches!(self, Self::Store(s) if s.is_shared())
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Who may deliver the outbox's messages now.
type Acting = Arc<dyn Fn() -> bool + Send + Sync>;

struct Inner {
    sinks: BTreeMap<String, Sink>,
    outbox: Outbox,
    /// Wakes the delivery thread when a message is queued.
    wake: Arc<tokio::sync::Notify>,
    record: Record,
    /// `[notify] installation_id`, for [`page_key`].
    installation: String,
    /// `[notify] queue`: messages owed at most.
    queue: usize,
    /// Messages owed now (approximately, on a shared store: other replicas queue too).
    owed: std::sync::atomic::AtomicUsize,
    /// Set by [`Notifier::deliver_while`]: the messages of every process are delivered only
    /// while it holds (the Lease's leader); unset, a notifier on a shared store delivers only
    /// what it queued itself and one on its own store delivers everything owed.
    acting: std::sync::OnceLock<Acting>,
    /// The ids this process queued.
    mine: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The process's notifier: cheap to clone, sends never block on a sink.
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
    #[error(
        "the message to {sink:?} could not be written to the store's outbox, so it was not sent: {reason}"
    )]
    Outbox { sink: String, reason: String },
}

impl Notifier {
    /// Reads every sink's secret and starts the delivery thread; `None` when no sink is
    /// configured. With a `store`, each message goes to its outbox before it is sent and each
    /// outcome on the message's incident; the thread first delivers what a previous process
    /// left owed.
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
        let outbox = match &store {
            Some(s) => Outbox::Store(s.clone()),
            None => Outbox::Memory(Default::default()),
        };
        let owed = outbox.owed().map(|o| o.len()).unwrap_or(0);
        let wake = Arc::new(tokio::sync::Notify::new());
        let inner = Arc::new(Inner {
            sinks,
            outbox,
            wake: wake.clone(),
            record: Record { store, origin },
            installation: cfg.installation_id.clone(),
            queue: cfg.queue.max(1) as usize,
            owed: owed.into(),
            acting: std::sync::OnceLock::new(),
            mine: Default::default(),
        });
        let delivery = Delivery {
            attempts: cfg.attempts,
            retry_base: cfg.retry_base,
            timeout: cfg.timeout,
            give_up_after: cfg.give_up_after,
        };
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("fleetdeck-notify".into())
            .spawn(move || delivery.run(wake, weak))
            .map_err(|e| NotifyError::Thread(e.to_string()))?;
        Ok(Some(Self { inner }))
    }

    /// Delivers the outbox's messages — every process's, as a restart or failover leaves
    /// them — only while `acting` holds (the Lease's leader): replicas never send one twice.
    /// Set once; later calls change nothing.
    pub fn deliver_while(&self, acting: Acting) {
        let _ = self.inner.acting.set(acting);
        self.inner.wake.notify_one();
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.inner.sinks.keys().cloned().collect()
    }

    pub fn has_sink(&self, name: &str) -> bool {
        self.inner.sinks.contains_key(name)
    }

    /// The [`page_key`] of an incident's `group` in this installation.
    pub fn page_key_of(&self, group: &str) -> String {
        page_key(&self.inner.installation, group)
    }

    /// Queues `m` in the outbox; returns once it is written, never waiting for the sink. A
    /// full queue refuses it, and the refusal is recorded.
    pub fn send(&self, m: Message) -> Result<(), SendError> {
        self.queue(m, None).map(|_| ())
    }

    /// Queues `m` unless `key` was queued before (until `until`): the check and the queueing
    /// are one commit, so a milestone is paged once however many passes or replicas ask.
    /// Answers whether it was queued.
    pub fn send_once(
        &self,
        m: Message,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, SendError> {
        self.queue(m, Some((key, now, until)))
    }

    fn queue(
        &self,
        m: Message,
        once: Option<(&str, DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<bool, SendError> {
        use std::sync::atomic::Ordering;
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
        let waiting = self.inner.queue;
        if self.inner.owed.load(Ordering::SeqCst) >= waiting {
            if once.is_some() {
                // Not remembered either: the policy asks again on its next pass, when the
                // queue may have room, rather than losing the page or writing the refusal on
                // every pass.
                return Err(SendError::QueueFull(waiting, m.sink));
            }
            self.inner.record.write(
                &m,
                sink.kind,
                format!(
                    "notify {}: not sent, the notification queue is full ({waiting} waiting)",
                    m.sink
                ),
                true,
            );
            return Err(SendError::QueueFull(waiting, m.sink));
        }
        let now = Utc::now();
        let record = OutboxRecord::owed(
            OutboxKind::Notify,
            // One incident's messages to one sink keep their order (a PagerDuty acknowledge
            // must not overtake its trigger, nor a resolve its acknowledge, even while one is
            // being retried); the others do not wait for them.
            m.incident.map(|id| format!("{}/{id}", m.sink)),
            m.incident,
            serde_json::to_value(&m).unwrap_or_default(),
            now,
        );
        // Remembered as ours before it is visible to the delivery thread.
        lock(&self.inner.mine).insert(record.id.clone());
        match self.inner.outbox.enqueue(&record, once) {
            Ok(true) => {
                self.inner.owed.fetch_add(1, Ordering::SeqCst);
                self.inner.wake.notify_one();
                Ok(true)
            }
            Ok(false) => {
                lock(&self.inner.mine).remove(&record.id);
                Ok(false)
            }
            Err(e) => {
                lock(&self.inner.mine).remove(&record.id);
                Err(SendError::Outbox {
                    sink: m.sink,
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// The delivery thread's settings.
struct Delivery {
    /// At most this many attempts; 0: as many as `give_up_after` allows.
    attempts: u32,
    retry_base: Duration,
    timeout: Duration,
    /// A message not delivered this long after it was queued is given up.
    give_up_after: Duration,
}

/// A 429's `Retry-After` (seconds) beyond which a message is retried on its own schedule.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest pause between two attempts: the doubling stops here, so a sink that comes back
/// after an hour's outage is tried again within minutes, not after hours.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What one attempt came to.
enum Attempt {
    Delivered,
    Failed {
        failure: String,
        retry_after: Option<Duration>,
    },
}

impl Delivery {
    /// Looks at the outbox whenever a message is queued or an attempt ends (and at least every
    /// `tick`), and starts an attempt for each message that is due and first in its chain.
    /// Messages are delivered concurrently (a slow sink does not hold the others up). Stops
    /// when every `Notifier` is gone; what is still owed stays in the outbox for the next
    /// process.
    fn run(self, wake: Arc<tokio::sync::Notify>, inner: std::sync::Weak<Inner>) {
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
        let tick = (self.retry_base / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let this = Arc::new(self);
        rt.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            let in_flight: Arc<std::sync::Mutex<std::collections::HashSet<String>>> =
                Default::default();
            loop {
                {
                    let Some(inner) = inner.upgrade() else { break };
                    let all = match inner.acting.get() {
                        Some(acting) => acting(),
                        None => !inner.outbox.is_shared(),
                    };
                    let leading = inner.acting.get().is_none_or(|acting| acting());
                    let owed = match inner.outbox.owed() {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::warn!(error = %e, "the notification outbox cannot be read");
                            Vec::new()
                        }
                    };
                    let now = Utc::now();
                    let mut heads = std::collections::HashSet::new();
                    let mine = lock(&inner.mine).clone();
                    for r in owed {
                        if !(all || (leading && mine.contains(&r.id))) {
                            continue;
                        }
                        // Only the first owed message of a chain may go.
                        if let Some(chain) = &r.chain
                            && !heads.insert(chain.clone())
                        {
                            continue;
                        }
                        if r.next_at > now || !lock(&in_flight).insert(r.id.clone()) {
                            continue;
                        }
                        let (client, this, inner, in_flight, wake) = (
                            client.clone(),
                            this.clone(),
                            inner.clone(),
                            in_flight.clone(),
                            wake.clone(),
                        );
                        tasks.spawn(async move {
                            let id = r.id.clone();
                            this.attempt(&client, &inner, r).await;
                            lock(&in_flight).remove(&id);
                            wake.notify_one();
                        });
                    }
                }
                while tasks.try_join_next().is_some() {}
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(tick) => {}
                }
            }
            while tasks.join_next().await.is_some() {}
        });
    }

    /// One attempt at `r`; its new state goes to the outbox and its outcome on the timeline.
    async fn attempt(&self, client: &reqwest::Client, inner: &Inner, mut r: OutboxRecord) {
        let now = Utc::now();
        let m: Message = match serde_json::from_value(r.body.clone()) {
            Ok(m) => m,
            Err(e) => {
                // Written by another fleetdeck version: nothing here can send it.
                tracing::warn!(error = %e, id = %r.id, "an outbox message cannot be read: given up");
                r.gave_up_at = Some(now);
                r.last_error = Some(format!("unreadable: {e}"));
                self.save(inner, &r);
                settled(inner, &r.id);
                return;
            }
        };
        let Some(sink) = inner.sinks.get(&m.sink) else {
            r.gave_up_at = Some(now);
            r.last_error = Some(format!("no sink {:?} is configured", m.sink));
            self.save(inner, &r);
            inner.record.write_with(
                &m,
                SinkKind::Webhook,
                format!(
                    "notify {}: gave up, no sink of that name is configured any more (add [notify.sinks.{}] back to send what is owed)",
                    m.sink, m.sink
                ),
                true,
                true,
            );
            settled(inner, &r.id);
            return;
        };
        let key = m.incident.and_then(|id| {
            incident_page_key(inner.record.store.as_ref()?, &inner.installation, id)
        });
        let body = payload(sink.kind, sink.routing_key.as_deref(), &m, key.as_deref());
        let what = format!("{} {}", sink.kind.name(), m.action.name());
        r.attempts += 1;
        let attempt = r.attempts;
        let outcome = match client.post(&sink.url).json(&body).send().await {
            Ok(answer) if answer.status().is_success() => Attempt::Delivered,
            Ok(answer) => {
                let retry_after = (answer.status() == reqwest::StatusCode::TOO_MANY_REQUESTS)
                    .then(|| {
                        answer
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs)
                    })
                    .flatten();
                Attempt::Failed {
                    failure: format!("HTTP {}", answer.status()),
                    retry_after,
                }
            }
            // Never the URL: a webhook's URL is its secret.
            Err(e) => Attempt::Failed {
                failure: e.without_url().to_string(),
                retry_after: None,
            },
        };
        let now = Utc::now();
        match outcome {
            Attempt::Delivered => {
                r.delivered_at = Some(now);
                r.last_error = None;
                self.save(inner, &r);
                settled(inner, &r.id);
                inner.record.write(
                    &m,
                    sink.kind,
                    format!("notify {}: delivered ({what}, attempt {attempt})", m.sink),
                    false,
                );
            }
            Attempt::Failed {
                failure,
                retry_after,
            } => {
                let backoff = self
                    .retry_base
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
                    .min(MAX_BACKOFF);
                let pause = retry_after.map_or(backoff, |r| r.min(MAX_RETRY_AFTER));
                let horizon = r.queued_at
                    + chrono::Duration::from_std(self.give_up_after)
                        .unwrap_or(chrono::Duration::hours(6));
                let next = now + chrono::Duration::from_std(pause).unwrap_or_default();
                r.last_error = Some(failure.clone());
                if (self.attempts > 0 && attempt >= self.attempts) || next > horizon {
                    r.gave_up_at = Some(now);
                    self.save(inner, &r);
                    settled(inner, &r.id);
                    let over = (now - r.queued_at).to_std().unwrap_or_default();
                    inner.record.write_with(
                        &m,
                        sink.kind,
                        format!(
                            "notify {}: gave up after {attempt} attempts over {} ({what}): {failure}",
                            m.sink,
                            humantime::format_duration(Duration::from_secs(over.as_secs()))
                        ),
                        true,
                        true,
                    );
                    tracing::warn!(sink = %m.sink, %failure, "a notification was given up");
                } else {
                    r.next_at = next;
                    self.save(inner, &r);
                    inner.record.write(
                        &m,
                        sink.kind,
                        format!(
                            "notify {}: attempt {attempt} failed ({what}): {failure}; retrying in {}",
                            m.sink,
                            humantime::format_duration(pause)
                        ),
                        true,
                    );
                }
            }
        }
    }

    fn save(&self, inner: &Inner, r: &OutboxRecord) {
        if let Err(e) = inner.outbox.update(r) {
            // The attempt's outcome is lost: the message stays owed as last written and is
            // tried again, which a sink that dedups (PagerDuty) absorbs.
            tracing::warn!(error = %e, id = %r.id, "an outbox record could not be updated");
        }
    }
}

/// Message `id` is no longer owed (the count never goes below none: a failover's records were
/// counted by no one).
fn settled(inner: &Inner, id: &str) {
    lock(&inner.mine).remove(id);
    let _ = inner.owed.fetch_update(
        std::sync::atomic::Ordering::SeqCst,
        std::sync::atomic::Ordering::SeqCst,
        |n| Some(n.saturating_sub(1)),
    );
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
