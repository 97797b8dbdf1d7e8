//! `[notify]`: the named sinks, their secrets (read from files or the environment, never
//! inline) and the paging policies. Imports nothing beyond `config`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[notify]`: named sinks (`[notify.sinks.NAME]`) runbooks and policies send to, and the
/// policies that page on incidents (`[[notify.policy]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub sinks: std::collections::BTreeMap<String, SinkConfig>,
    pub policy: Vec<NotifyPolicy>,
    /// Whether the cockpit sends policy notifications too (headless's leader always does).
    pub cockpit: bool,
    /// At most this many attempts before a message is given up; 0 (the default): as many as
    /// `give_up_after` allows.
    pub attempts: u32,
    /// The first retry's wait; each next one doubles (a 429's Retry-After wins).
    #[serde(with = "crate::model::duration_serde")]
    pub retry_base: Duration,
    /// A message not delivered this long after it was queued is given up (on its incident's
    /// timeline and `/metrics`). Messages wait in the store's outbox meanwhile, so a restart
    /// or a new leader goes on trying.
    #[serde(with = "crate::model::duration_serde")]
    pub give_up_after: Duration,
    /// Messages waiting for delivery; one more is refused (and that is recorded).
    pub queue: u32,
    /// Each delivery's HTTP timeout.
    #[serde(with = "crate::model::duration_serde")]
    pub timeout: Duration,
    /// Names this installation in page identities (PagerDuty's `dedup_key`, a webhook's
    /// `key`), which are derived from the incident's group and this, never from the store's
    /// incident number: the same for every replica and pod of one installation (a new pod on
    /// a fresh store pages the same group under the same key), different between installations
    /// that page one service. Empty: the group alone. Letters, digits, `.`, `_`, `-`.
    pub installation_id: String,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            sinks: std::collections::BTreeMap::new(),
            policy: Vec::new(),
            cockpit: false,
            attempts: 0,
            retry_base: Duration::from_secs(2),
            give_up_after: Duration::from_secs(6 * 3600),
            queue: 1000,
            timeout: Duration::from_secs(10),
            installation_id: String::new(),
        }
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
    /// Every signal cleared (or a person said the impact stopped); not yet resolved.
    Mitigate,
    Resolve,
}

impl IncidentEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ack => "ack",
            Self::Mitigate => "mitigate",
            Self::Resolve => "resolve",
        }
    }
}
