//! Incidents and timeline entries: what the RCA store keeps. Plain serde data; the store
//! assigns sequence numbers, ids and recorded-at times.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::signal::{Severity, Subject};

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A detector (or an alert) saw something, or stopped seeing it.
    Signal,
    /// The runbook engine or the guard decided: allowed, refused, planned.
    Decision,
    /// A mutation of a cluster, with what it changed and the API's answers.
    Action,
    /// A human approved or denied a pending action.
    Approval,
    /// A human (or a runbook's `note`) wrote something down.
    Note,
    /// The incident moved to another milestone.
    Status,
}

impl EntryKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Signal => "signal",
            Self::Decision => "decision",
            Self::Action => "action",
            Self::Approval => "approval",
            Self::Note => "note",
            Self::Status => "status",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "lowercase")]
pub enum Actor {
    /// fleetdeck itself: detectors, automatic milestones.
    System,
    User(String),
    Runbook(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::User(u) => write!(f, "user:{u}"),
            Self::Runbook(r) => write!(f, "runbook:{r}"),
        }
    }
}

impl Actor {
    /// The local user, as the OS names them (USER, then LOGNAME), for entries made at a terminal.
    pub fn local_user() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self::User(name)
    }
}

/// Which face of fleetdeck wrote the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Tui,
    Headless,
    Cli,
    Webhook,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tui => "tui",
            Self::Headless => "headless",
            Self::Cli => "cli",
            Self::Webhook => "webhook",
        }
    }
}

/// The guard's or an approver's verdict, on decision and approval entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Dry-run: what would change, nothing changed.
    Planned,
    Allowed,
    Refused,
    /// Waiting for a human.
    Pending,
    Approved,
    Denied,
}

/// One field an action changed, as JSON values (absent = the field did not exist).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The object, `kind/namespace/name` or `kind/name`.
    pub object: String,
    /// JSON-pointer-like path of the field, e.g. `spec.unschedulable`.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// One answer of the Kubernetes API (or a webhook) to a request an action made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiOutcome {
    pub at: DateTime<Utc>,
    /// `POST /api/v1/namespaces/ml/pods/trainer-0/eviction`
    pub request: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The PodDisruptionBudget that refused an eviction (429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
}

/// An entry as a writer hands it to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    pub kind: EntryKind,
    pub actor: Actor,
    pub origin: Origin,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Evidence, plans, options: anything that explains the entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<ApiOutcome>,
}

impl NewEntry {
    pub fn new(kind: EntryKind, actor: Actor, origin: Origin, summary: impl Into<String>) -> Self {
        Self {
            incident: None,
            kind,
            actor,
            origin,
            occurred_at: Utc::now(),
            subject: None,
            summary: summary.into(),
            verdict: None,
            detail: BTreeMap::new(),
            changes: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    pub fn on_incident(mut self, id: u64) -> Self {
        self.incident = Some(id);
        self
    }

    pub fn about(mut self, subject: Subject) -> Self {
        self.subject = Some(subject);
        self
    }

    pub fn at(mut self, occurred_at: DateTime<Utc>) -> Self {
        self.occurred_at = occurred_at;
        self
    }
}

/// A recorded timeline entry: the new entry plus what the store assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "EntryFields")]
pub struct Entry {
    /// Position in the audit chain (1-based, gapless).
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: NewEntry,
}

/// An [`Entry`]'s JSON read field by field. Deserializing through `flatten` first buffers every
/// field of every entry into a map: reading a 10,000-entry timeline spent most of its decoding
/// there. The fields and their defaults are [`NewEntry`]'s (`entry_fields_read_what_flatten_read`
/// holds the two equal).
#[derive(Deserialize)]
struct EntryFields {
    seq: u64,
    recorded_at: DateTime<Utc>,
    #[serde(default)]
    incident: Option<u64>,
    kind: EntryKind,
    actor: Actor,
    origin: Origin,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    subject: Option<Subject>,
    summary: String,
    #[serde(default)]
    verdict: Option<Verdict>,
    #[serde(default)]
    detail: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    changes: Vec<FieldChange>,
    #[serde(default)]
    outcomes: Vec<ApiOutcome>,
}

impl From<EntryFields> for Entry {
    fn from(f: EntryFields) -> Self {
        Self {
            seq: f.seq,
            recorded_at: f.recorded_at,
            entry: NewEntry {
                incident: f.incident,
                kind: f.kind,
                actor: f.actor,
                origin: f.origin,
                occurred_at: f.occurred_at,
                subject: f.subject,
                summary: f.summary,
                verdict: f.verdict,
                detail: f.detail,
                changes: f.changes,
                outcomes: f.outcomes,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl IncidentStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Mitigated => "mitigated",
            Self::Resolved => "resolved",
        }
    }

    pub fn is_open(self) -> bool {
        self != Self::Resolved
    }
}

/// FireHydrant's milestones, each set once when first reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Milestones {
    /// When the problem began (the earliest signal's first sighting).
    pub started: Option<DateTime<Utc>>,
    /// When fleetdeck recorded it.
    pub detected: Option<DateTime<Utc>>,
    pub acknowledged: Option<DateTime<Utc>>,
    /// When the impact stopped (every signal cleared, or a human said so).
    pub mitigated: Option<DateTime<Utc>>,
    pub resolved: Option<DateTime<Utc>>,
    /// When a signal last fired again after the incident was mitigated: the impact is back, so
    /// it pages again (a new trigger) as if it had just opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refired: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: u64,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    /// The grouping key: signals with this key within the window join this incident.
    pub group: String,
    pub subject: Subject,
    pub milestones: Milestones,
    /// Every object a signal or an action of this incident touched (`cluster/node/gpu…`).
    pub affected: BTreeSet<String>,
    /// Dedup keys of the signals still firing.
    pub active: BTreeSet<String>,
    pub signals: u64,
    pub entries: u64,
    pub last_signal_at: DateTime<Utc>,
    /// Another incident of the same group this one recurs (resolved before this opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurs: Option<u64>,
}

impl Incident {
    /// `INC-42`
    pub fn label(&self) -> String {
        incident_label(self.id)
    }

    /// How long it lasted (or has lasted until `now`): started → resolved.
    pub fn duration(&self, now: DateTime<Utc>) -> chrono::Duration {
        let start = self
            .milestones
            .started
            .or(self.milestones.detected)
            .unwrap_or(now);
        let end = self.milestones.resolved.unwrap_or(now);
        (end - start).max(chrono::Duration::zero())
    }
}

pub fn incident_label(id: u64) -> String {
    format!("INC-{id}")
}

/// Reads `42`, `INC-42` or `inc-42`.
pub fn parse_incident_id(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits = t
        .strip_prefix("INC-")
        .or_else(|| t.strip_prefix("inc-"))
        .unwrap_or(t);
    digits.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_read_with_or_without_prefix() {
        assert_eq!(parse_incident_id("42"), Some(42));
        assert_eq!(parse_incident_id("INC-7"), Some(7));
        assert_eq!(parse_incident_id("inc-7"), Some(7));
        assert_eq!(parse_incident_id("0"), None);
        assert_eq!(parse_incident_id("x"), None);
    }

    #[test]
    fn actors_serialise_tagged() {
        let j = serde_json::to_string(&Actor::Runbook("gpu-xid-cordon".into())).unwrap();
        assert_eq!(j, r#"{"type":"runbook","name":"gpu-xid-cordon"}"#);
        let back: Actor = serde_json::from_str(r#"{"type":"system"}"#).unwrap();
        assert_eq!(back, Actor::System);
    }

    /// What `Entry` was read as before it read its fields itself.
    #[derive(Deserialize)]
    struct Flattened {
        seq: u64,
        recorded_at: DateTime<Utc>,
        #[serde(flatten)]
        entry: NewEntry,
    }

    #[test]
    fn entry_fields_read_what_flatten_read() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut full = NewEntry::new(
            EntryKind::Action,
            Actor::User("alice".into()),
            Origin::Headless,
            "cordoned gpu-node-7",
        )
        .on_incident(4);
        full.occurred_at = at;
        full.subject = Some(Subject {
            cluster: "prod".into(),
            node: Some("gpu-node-7".into()),
            ..Subject::default()
        });
        full.verdict = Some(Verdict::Allowed);
        full.detail.insert("attempt".into(), serde_json::json!(2));
        full.changes.push(FieldChange {
            object: "node/gpu-node-7".into(),
            field: "spec.unschedulable".into(),
            before: Some(serde_json::json!(false)),
            after: Some(serde_json::json!(true)),
        });
        let mut bare = NewEntry::new(EntryKind::Note, Actor::System, Origin::Cli, "x");
        bare.occurred_at = at;
        for entry in [full, bare] {
            let written = Entry {
                seq: 9,
                recorded_at: at,
                entry,
            };
            let mut json = serde_json::to_value(&written).unwrap();
            // A field a newer fleetdeck might write is ignored by both, as before.
            json["written_by_a_newer_version"] = serde_json::json!(1);
            let text = json.to_string();
            let read: Entry = serde_json::from_str(&text).unwrap();
            let before: Flattened = serde_json::from_str(&text).unwrap();
            assert_eq!(read, written);
            assert_eq!(
                (read.seq, read.recorded_at, read.entry),
                (before.seq, before.recorded_at, before.entry)
            );
        }
    }
}
