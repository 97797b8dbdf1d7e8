//! Timeline entries as Kubernetes Events on their subject, so that `kubectl describe node`
//! and `kubectl get events` show what fleetdeck saw, decided and did. Each Event the leader
//! owes is written to the store's outbox before it is sent and forgotten once the API server
//! has it, so a restart or a new leader sends what was still owed (an Event's name is fixed by
//! its entry, so sending one twice is answered 409 and counts as sent). Imports the model, the
//! store and the kube client.
//!
//! Events go through core/v1 (as `kubectl get events` reads them) with `eventTime` set, which
//! makes the API server check them as new-style events (`pkg/apis/core/validation/events.go`):
//! `reportingComponent`, `reportingInstance` and `action` are required, the message is at most
//! 1024 bytes, and an event about a cluster-scoped object lives in `default` (as kubelet's node
//! events do).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};

use chrono::{DateTime, Utc};

use crate::model::incident::{Entry, EntryKind, Verdict};
use crate::store::{OutboxKind, OutboxRecord, Store};

/// `source.component` of every event.
pub const COMPONENT: &str = "fleetdeck";
/// `reportingComponent` (events.k8s.io's `reportingController`) of every event.
pub const REPORTING_CONTROLLER: &str = "fleetdeck.dev/headless";
/// The API server refuses longer messages (`NoteLengthLimit`).
const MESSAGE_LIMIT: usize = 1024;
/// The API server refuses longer reporting instances and actions.
const FIELD_LIMIT: usize = 128;
/// The longest object name (a DNS subdomain).
const NAME_LIMIT: usize = 253;

/// How long an owed Event is tried (the API server or its RBAC down): past it, it is given up
/// and logged. The timeline keeps the record either way.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// The longest pause between two tries of one Event.
const MAX_PAUSE: chrono::Duration = chrono::Duration::minutes(10);

/// The outbox records for the Events `entries` call for: those whose subject is a Kubernetes
/// object in a cluster `has_client` knows.
pub fn owed(
    entries: &[Entry],
    identity: &str,
    has_client: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Vec<OutboxRecord> {
    entries
        .iter()
        .filter_map(|e| {
            let cluster = e.entry.subject.as_ref()?.cluster.clone();
            (has_client(&cluster) && event_for(e, identity).is_some()).then(|| {
                OutboxRecord::owed(
                    OutboxKind::Event,
                    None,
                    e.entry.incident,
                    serde_json::json!({ "seq": e.seq, "cluster": cluster }),
                    now,
                )
            })
        })
        .collect()
}

/// Sends up to `max` of the Events `store`'s outbox owes that are due: each one sent is
/// forgotten, each failure tried again with a doubling pause (at most [`MAX_PAUSE`]) until
/// [`GIVE_UP_AFTER`]. Blocks on the store between requests, as the daemon's loop does.
pub async fn deliver_owed(
    store: &Store,
    clients: &std::collections::HashMap<String, kube::Client>,
    identity: &str,
    max: usize,
) {
    let owed = match store.outbox() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "the outbox cannot be read: no Events sent this time");
            return;
        }
    };
    let now = Utc::now();
    let due = owed
        .into_iter()
        .filter(|r| r.kind == OutboxKind::Event && r.is_owed() && r.next_at <= now)
        .take(max);
    for mut r in due {
        let seq = r.body["seq"].as_u64().unwrap_or(0);
        let cluster = r.body["cluster"].as_str().unwrap_or("").to_string();
        let entry = store.entry(seq).ok().flatten();
        let outcome = match (entry, clients.get(&cluster)) {
            (Some(entry), Some(client)) => record(client, &entry, identity).await,
            (None, _) => Err(format!("timeline entry {seq} is no longer in the store")),
            (_, None) => Err(format!("no client for cluster {cluster:?}")),
        };
        let now = Utc::now();
        r.attempts += 1;
        let saved = match outcome {
            Ok(()) => store.outbox_remove(&r.id),
            Err(err) => {
                let pause = chrono::Duration::seconds(1i64 << r.attempts.min(20)).min(MAX_PAUSE);
                if now + pause > r.queued_at + GIVE_UP_AFTER {
                    tracing::warn!(error = %err, seq, attempts = r.attempts, "a Kubernetes Event was given up");
                    r.gave_up_at = Some(now);
                } else {
                    tracing::debug!(error = %err, seq, "event not written; retrying");
                    r.next_at = now + pause;
                }
                r.last_error = Some(err);
                store.outbox_update(&r)
            }
        };
        if let Err(e) = saved {
            tracing::warn!(error = %e, id = %r.id, "an outbox record could not be updated");
        }
    }
}

/// Writes `entry` as an Event on its subject; `identity` is this replica (the pod's name).
/// Entries without a Kubernetes object for a subject (a whole cluster, an endpoint, a budget)
/// are skipped. Recording the same entry twice is not an error: its Event already exists.
pub async fn record(client: &kube::Client, entry: &Entry, identity: &str) -> Result<(), String> {
    let Some(mut event) = event_for(entry, identity) else {
        return Ok(());
    };
    if event.involved_object.uid.is_none() {
        event.involved_object.uid = lookup_uid(client, &event.involved_object).await;
    }
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let name = event.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(format!(
            "recording timeline entry {} as event {namespace}/{name} on {} {}: {e} (may the service account create events in {namespace}? see deploy/10-rbac.yaml)",
            entry.seq,
            event.involved_object.kind.as_deref().unwrap_or(""),
            event.involved_object.name.as_deref().unwrap_or(""),
        )),
    }
}

/// The Event for `entry`, or `None` when its subject is no Kubernetes object. The involved
/// object has no uid yet, except a Node's, which is its name (kubelet's convention, which
/// `kubectl describe node` searches for).
pub fn event_for(entry: &Entry, identity: &str) -> Option<Event> {
    let e = &entry.entry;
    let subject = e.subject.as_ref()?;
    let involved = match (&subject.node, &subject.object) {
        (Some(node), _) if !node.is_empty() => ObjectReference {
            kind: Some("Node".into()),
            api_version: Some("v1".into()),
            name: Some(node.clone()),
            uid: Some(node.clone()),
            ..ObjectReference::default()
        },
        (_, Some(object)) => namespaced_ref(object, subject.namespace.as_deref())?,
        _ => return None,
    };
    let object_name = involved.name.clone().unwrap_or_default();
    let namespace = involved
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let micros = e.occurred_at.timestamp_micros();
    let at = Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
    // Seconds-precision for the legacy fields (metav1.Time), micro for eventTime.
    let at_seconds = Timestamp::from_second(at.as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let action = e
        .detail
        .get("action")
        .and_then(|v| v.as_str())
        .filter(|a| !a.is_empty())
        .unwrap_or(e.kind.name());
    Some(Event {
        metadata: ObjectMeta {
            name: Some(event_name(&object_name, entry)),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(reason(e.kind).into()),
        message: Some(truncate(&e.summary, MESSAGE_LIMIT)),
        type_: Some(
            if is_warning(entry) {
                "Warning"
            } else {
                "Normal"
            }
            .into(),
        ),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(truncate(identity, FIELD_LIMIT)),
        action: Some(truncate(action, FIELD_LIMIT)),
        first_timestamp: Some(Time(at_seconds)),
        last_timestamp: Some(Time(at_seconds)),
        event_time: Some(MicroTime(at)),
        count: Some(1),
        ..Event::default()
    })
}

/// The Event's `reason`, one per entry kind.
pub fn reason(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Signal => "FleetdeckSignal",
        EntryKind::Decision => "FleetdeckDecision",
        EntryKind::Action => "FleetdeckAction",
        EntryKind::Approval => "FleetdeckApproval",
        EntryKind::Note => "FleetdeckNote",
        EntryKind::Status => "FleetdeckStatus",
    }
}

/// Refusals, denials and actions that failed or timed out are warnings; the rest is normal.
fn is_warning(entry: &Entry) -> bool {
    let e = &entry.entry;
    if matches!(e.verdict, Some(Verdict::Refused | Verdict::Denied)) {
        return true;
    }
    let outcome = e.detail.get("outcome").and_then(|v| v.as_str());
    matches!(outcome, Some("failed" | "refused" | "timed out"))
}

/// `<object>.<seq hex>.<recorded-at µs hex>`: the same entry always gets the same name (a
/// retry is answered 409 and counts as recorded), and a store started afresh, whose sequence
/// numbers begin again at 1, does not collide with events it wrote before.
fn event_name(object: &str, entry: &Entry) -> String {
    let suffix = format!(
        ".{:x}.{:x}",
        entry.seq,
        entry.recorded_at.timestamp_micros().max(0)
    );
    let keep = NAME_LIMIT.saturating_sub(suffix.len());
    let mut base = truncate(object, keep);
    while base.ends_with(['.', '-']) {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// The involved object for `kind/name` (or `kind/namespace/name`) in `namespace`; `None` for
/// kinds that are no Kubernetes object fleetdeck knows (`slo/…`, `budget/…`, `metric/…`).
fn namespaced_ref(object: &str, namespace: Option<&str>) -> Option<ObjectReference> {
    let parts: Vec<&str> = object.split('/').collect();
    let (kind, ns, name) = match parts.as_slice() {
        [kind, name] => (*kind, namespace?, *name),
        [kind, ns, name] => (*kind, *ns, *name),
        _ => return None,
    };
    let (kind, api_version) = known_kind(kind)?;
    if ns.is_empty() || name.is_empty() {
        return None;
    }
    Some(ObjectReference {
        kind: Some(kind.into()),
        api_version: Some(api_version.into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    })
}

/// Kind and apiVersion of the namespaced objects fleetdeck watches or acts on, by the names
/// kubectl accepts for them.
fn known_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "pod" | "pods" | "po" => ("Pod", "v1"),
        "service" | "services" | "svc" => ("Service", "v1"),
        "deployment" | "deployments" | "deploy" => ("Deployment", "apps/v1"),
        "replicaset" | "replicasets" | "rs" => ("ReplicaSet", "apps/v1"),
        "statefulset" | "statefulsets" | "sts" => ("StatefulSet", "apps/v1"),
        "daemonset" | "daemonsets" | "ds" => ("DaemonSet", "apps/v1"),
        "job" | "jobs" => ("Job", "batch/v1"),
        "poddisruptionbudget" | "poddisruptionbudgets" | "pdb" => {
            ("PodDisruptionBudget", "policy/v1")
        }
        "inferenceservice" | "inferenceservices" | "isvc" => {
            ("InferenceService", "serving.kserve.io/v1beta1")
        }
        "pytorchjob" | "pytorchjobs" => ("PyTorchJob", "kubeflow.org/v1"),
        _ => return None,
    })
}

/// The object's uid, so `kubectl describe` (which searches by uid) lists the event; `None`
/// when it cannot be read (gone, or not allowed): the event is still written.
async fn lookup_uid(client: &kube::Client, r: &ObjectReference) -> Option<String> {
    let (kind, api_version) = (r.kind.as_deref()?, r.api_version.as_deref()?);
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), r.namespace.as_deref()?, &resource);
    match api.get_opt(r.name.as_deref()?).await {
        Ok(found) => found.and_then(|o| o.metadata.uid),
        Err(e) => {
            tracing::debug!(kind, name = r.name.as_deref(), error = %e, "no uid for the event's object");
            None
        }
    }
}

/// At most `limit` bytes, cut at a character boundary.
fn truncate(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{Actor, NewEntry, Origin};
    use crate::model::signal::Subject;

    fn entry(kind: EntryKind, subject: Option<Subject>, summary: &str) -> Entry {
        let mut e = NewEntry::new(kind, Actor::System, Origin::Headless, summary);
        e.subject = subject;
        Entry {
            seq: 42,
            recorded_at: e.occurred_at,
            entry: e,
        }
    }

    fn subject(node: Option<&str>, namespace: Option<&str>, object: Option<&str>) -> Subject {
        Subject {
            cluster: "prod".into(),
            node: node.map(Into::into),
            gpu: None,
            endpoint: None,
            namespace: namespace.map(Into::into),
            object: object.map(Into::into),
        }
    }

    #[test]
    fn a_node_entry_becomes_an_event_in_default_on_the_node() {
        let e = entry(
            EntryKind::Signal,
            Some(subject(Some("gpu-a-1"), None, None)),
            "XID 79",
        );
        let ev = event_for(&e, "fleetdeck-7d9-abc").expect("an event");
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert!(
            ev.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("gpu-a-1.2a.")
        );
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Node"));
        assert_eq!(ev.involved_object.uid.as_deref(), Some("gpu-a-1"));
        assert_eq!(ev.involved_object.namespace, None);
        assert_eq!(ev.reason.as_deref(), Some("FleetdeckSignal"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.action.as_deref(), Some("signal"));
        assert_eq!(
            ev.reporting_component.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
        assert_eq!(ev.reporting_instance.as_deref(), Some("fleetdeck-7d9-abc"));
        assert_eq!(ev.count, Some(1));
        let v = serde_json::to_value(&ev).expect("serialises");
        assert_eq!(v["source"]["component"], "fleetdeck");
        assert_eq!(v["eventTime"].as_str().map(str::len), Some(27));
        assert_eq!(v["firstTimestamp"].as_str().map(str::len), Some(20));
    }

    #[test]
    fn a_deployment_entry_lands_in_its_namespace() {
        let e = entry(
            EntryKind::Action,
            Some(subject(None, Some("serving"), Some("deployment/llama"))),
            "rolled back",
        );
        let ev = event_for(&e, "a").expect("an event");
        assert_eq!(ev.metadata.namespace.as_deref(), Some("serving"));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Deployment"));
        assert_eq!(ev.involved_object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(ev.involved_object.namespace.as_deref(), Some("serving"));
        assert_eq!(ev.reason.as_deref(), Some("FleetdeckAction"));
    }

    #[test]
    fn refusals_and_failed_actions_are_warnings() {
        let mut refused = entry(
            EntryKind::Decision,
            Some(subject(Some("n"), None, None)),
            "refused: drain budget",
        );
        refused.entry.verdict = Some(Verdict::Refused);
        assert_eq!(
            event_for(&refused, "a").unwrap().type_.as_deref(),
            Some("Warning")
        );
        let mut failed = entry(
            EntryKind::Action,
            Some(subject(Some("n"), None, None)),
            "drain failed",
        );
        failed
            .entry
            .detail
            .insert("outcome".into(), "failed".into());
        failed.entry.detail.insert("action".into(), "drain".into());
        let ev = event_for(&failed, "a").unwrap();
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.action.as_deref(), Some("drain"));
    }

    #[test]
    fn entries_without_a_kubernetes_object_are_skipped() {
        assert!(event_for(&entry(EntryKind::Note, None, "x"), "a").is_none());
        let cluster_only = subject(None, None, None);
        assert!(event_for(&entry(EntryKind::Note, Some(cluster_only), "x"), "a").is_none());
        let slo = subject(None, Some("serving"), Some("slo/availability"));
        assert!(event_for(&entry(EntryKind::Signal, Some(slo), "x"), "a").is_none());
        let no_ns = subject(None, None, Some("pod/x"));
        assert!(event_for(&entry(EntryKind::Signal, Some(no_ns), "x"), "a").is_none());
    }

    #[test]
    fn long_messages_are_cut_at_1024_bytes_on_a_character_boundary() {
        let summary = "é".repeat(600);
        let e = entry(
            EntryKind::Note,
            Some(subject(Some("n"), None, None)),
            &summary,
        );
        let msg = event_for(&e, "a").unwrap().message.unwrap();
        assert_eq!(msg.len(), 1024);
        assert!(msg.chars().all(|c| c == 'é'));
    }

    #[test]
    fn event_names_stay_valid_for_the_longest_object_names() {
        let long = "n".repeat(253);
        let e = entry(EntryKind::Note, Some(subject(Some(&long), None, None)), "x");
        let name = event_for(&e, "a").unwrap().metadata.name.unwrap();
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.contains(".2a."));
    }
}
