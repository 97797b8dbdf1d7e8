//! `[[notify.policy]]`: page a sink when an incident opens (or a signal fires again after it was
//! mitigated), is acknowledged, is mitigated (every signal cleared) or resolves (its signals
//! cleared, or a person resolved it). The policy watches the store, where every face
//! records those milestones, so an acknowledgement made in the cockpit, the API or the CLI
//! pages like one made anywhere else. Each milestone is sent once per sink — remembered in the
//! store, so a restart or a failover does not page again — and only while `acting` holds (the
//! Lease's leader in headless), so replicas never page twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Action, Message, Notifier};
use crate::config::{IncidentEvent, NotifyPolicy};
use crate::model::incident::{Actor, Incident, IncidentStatus};
use crate::store::{IncidentFilter, Store};

/// Milestones older than this when the watcher first sees them are history, not news: a
/// policy added to a store full of incidents does not page for each of them.
const BACKFILL: chrono::Duration = chrono::Duration::minutes(15);

/// How long a sent milestone is remembered.
const REMEMBER: chrono::Duration = chrono::Duration::days(90);

/// The milestone `event` names for `inc`, with its time, if it has happened (and still holds:
/// an incident whose signal fired again is no longer resolved).
pub fn milestone(inc: &Incident, event: IncidentEvent) -> Option<DateTime<Utc>> {
    let m = &inc.milestones;
    match event {
        // A signal firing again after mitigation pages anew: its trigger has its own time.
        IncidentEvent::Open => m.refired.or(m.detected).or(m.started),
        IncidentEvent::Ack => m.acknowledged,
        IncidentEvent::Mitigate => match inc.status {
            IncidentStatus::Mitigated | IncidentStatus::Resolved => m.mitigated,
            _ => None,
        },
        IncidentEvent::Resolve => match inc.status {
            IncidentStatus::Resolved => m.resolved.or(m.mitigated),
            IncidentStatus::Mitigated => m.mitigated,
            _ => None,
        },
    }
}

/// The messages `policies` call for on `incidents` (not yet filtered by what was sent).
pub fn due(
    policies: &[NotifyPolicy],
    incidents: &[Incident],
) -> Vec<(String, Message, DateTime<Utc>)> {
    let mut out = Vec::new();
    for inc in incidents {
        for p in policies {
            if inc.severity < p.min_severity {
                continue;
            }
            // In the incident's own order, however the policy lists them.
            let mut on = p.on.clone();
            on.sort();
            on.dedup();
            for event in on {
                let Some(at) = milestone(inc, event) else {
                    continue;
                };
                // Once per page identity (the group's, as `notify::page_key`) and milestone.
                let key = format!(
                    "notify:{}:{}:{}:{}",
                    p.sink,
                    inc.group,
                    event.name(),
                    at.timestamp_millis()
                );
                let action = match event {
                    IncidentEvent::Open => Action::Trigger,
                    IncidentEvent::Ack => Action::Acknowledge,
                    IncidentEvent::Mitigate => Action::Mitigate,
                    IncidentEvent::Resolve => Action::Resolve,
                };
                out.push((
                    key,
                    Message {
                        sink: p.sink.clone(),
                        action,
                        incident: Some(inc.id),
                        severity: inc.severity,
                        summary: inc.title.clone(),
                        source: "fleetdeck".into(),
                        component: Some(inc.subject.describe()),
                        details: json!({
                            "group": inc.group,
                            "status": inc.status.name(),
                            "affected": inc.affected,
                            "signals": inc.signals,
                        }),
                        at,
                        actor: Actor::System,
                    },
                    at,
                ));
            }
        }
    }
    out
}

/// The watcher's thread; dropping this stops it.
pub struct PolicyTask {
    stop: Arc<AtomicBool>,
}

impl Drop for PolicyTask {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts watching `store` every `every` for the milestones `policies` page on.
pub fn spawn(
    notifier: Notifier,
    policies: Vec<NotifyPolicy>,
    store: Store,
    acting: Arc<dyn Fn() -> bool + Send + Sync>,
    every: Duration,
) -> std::io::Result<PolicyTask> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let started = Utc::now();
    std::thread::Builder::new()
        .name("fleetdeck-notify-policy".into())
        .spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                if acting() {
                    let now = Utc::now();
                    if let Err(e) = pass(&notifier, &policies, &store, started, now) {
                        tracing::warn!(error = %e, "the notification policy could not read the store");
                    }
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(PolicyTask { stop })
}

/// One look at the store: sends each milestone not sent before.
fn pass(
    notifier: &Notifier,
    policies: &[NotifyPolicy],
    store: &Store,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), crate::store::StoreError> {
    let incidents = store.incidents(&IncidentFilter {
        open_only: false,
        since: Some(started - BACKFILL),
    })?;
    for (key, message, at) in due(policies, &incidents) {
        if at < started - BACKFILL {
            continue;
        }
        // The milestone and its queueing in the outbox are one commit: a crash between them
        // neither loses the page nor sends it twice.
        if let Err(e) = notifier.send_once(message, &key, now, now + REMEMBER) {
            tracing::warn!(error = %e, "a policy notification was not queued");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::Severity;

    fn incident(status: IncidentStatus, severity: Severity) -> Incident {
        let t: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap_or_default();
        let mut inc: Incident = serde_json::from_value(json!({
            "id": 7, "title": "XID 79", "severity": "critical", "status": "open",
            "group": "g", "subject": {"cluster": "sim-a"}, "milestones": {},
            "affected": [], "active": [], "signals": 1, "entries": 1,
            "last_signal_at": "2026-12-01T10:00:00Z"
        }))
        .expect("an incident");
        inc.status = status;
        inc.severity = severity;
        inc.milestones.detected = Some(t);
        if status == IncidentStatus::Mitigated {
            inc.milestones.mitigated = Some(t + chrono::Duration::minutes(5));
        }
        inc
    }

    fn policy(min: Severity) -> NotifyPolicy {
        NotifyPolicy {
            sink: "oncall".into(),
            on: vec![
                IncidentEvent::Open,
                IncidentEvent::Ack,
                IncidentEvent::Resolve,
            ],
            min_severity: min,
        }
    }

    #[test]
    fn an_open_incident_triggers_and_a_mitigated_one_also_resolves() {
        let open = due(
            &[policy(Severity::Critical)],
            &[incident(IncidentStatus::Open, Severity::Critical)],
        );
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].1.action, Action::Trigger);
        let done = due(
            &[policy(Severity::Critical)],
            &[incident(IncidentStatus::Mitigated, Severity::Critical)],
        );
        let actions: Vec<Action> = done.iter().map(|d| d.1.action).collect();
        assert_eq!(actions, [Action::Trigger, Action::Resolve]);
        assert_ne!(done[0].0, done[1].0, "each milestone its own key");
    }

    #[test]
    fn incidents_below_the_policys_severity_page_nobody() {
        assert!(
            due(
                &[policy(Severity::Critical)],
                &[incident(IncidentStatus::Open, Severity::Warning)]
            )
            .is_empty()
        );
        assert_eq!(
            due(
                &[policy(Severity::Warning)],
                &[incident(IncidentStatus::Open, Severity::Warning)]
            )
            .len(),
            1
        );
    }

    #[test]
    fn a_policy_with_mitigate_pages_when_every_signal_cleared() {
        let mut p = policy(Severity::Critical);
        p.on = vec![IncidentEvent::Mitigate, IncidentEvent::Open];
        let open = due(
            std::slice::from_ref(&p),
            &[incident(IncidentStatus::Open, Severity::Critical)],
        );
        assert_eq!(
            open.iter().map(|d| d.1.action).collect::<Vec<_>>(),
            [Action::Trigger],
            "not mitigated yet"
        );
        let mitigated = due(
            std::slice::from_ref(&p),
            &[incident(IncidentStatus::Mitigated, Severity::Critical)],
        );
        assert_eq!(
            mitigated.iter().map(|d| d.1.action).collect::<Vec<_>>(),
            [Action::Trigger, Action::Mitigate]
        );
        assert!(mitigated[1].0.contains(":mitigate:"), "{}", mitigated[1].0);
        // PagerDuty has no mitigated state: the page is acknowledged, and says so elsewhere.
        let body = crate::notify::payload(
            crate::config::SinkKind::Pagerduty,
            Some("R"),
            &mitigated[1].1,
            Some("k"),
        );
        assert_eq!(body["event_action"], "acknowledge");
        let hook = crate::notify::payload(
            crate::config::SinkKind::Webhook,
            None,
            &mitigated[1].1,
            Some("k"),
        );
        assert_eq!(hook["event"], "mitigate");
    }

    #[test]
    fn a_signal_firing_again_after_mitigation_is_a_new_trigger() {
        let first = due(
            &[policy(Severity::Critical)],
            &[incident(IncidentStatus::Open, Severity::Critical)],
        );
        let mut again = incident(IncidentStatus::Open, Severity::Critical);
        again.milestones.refired = again
            .milestones
            .detected
            .map(|d| d + chrono::Duration::minutes(30));
        let second = due(&[policy(Severity::Critical)], &[again]);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].1.action, Action::Trigger);
        assert_ne!(
            first[0].0, second[0].0,
            "a new trigger, not the old one again"
        );
    }
}
