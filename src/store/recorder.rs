//! Turns the detectors' output, evaluated on every snapshot, into timeline events: a signal is
//! recorded when it starts firing (or gets more severe) and when it clears, not on every
//! snapshot while it persists.
//!
//! A process that resumes from the store has not yet seen the signals its open incidents had
//! firing: until its detectors have had a full `for` of fresh data, a resumed signal's absence
//! means *unknown*, not *cleared* (a crash loop needs two minutes of sightings before it fires
//! again). Such a key is held until its deadline, and clears only if it is still absent then.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::model::incident::Incident;
use crate::model::signal::{Severity, Signal};

use super::incident_group;

/// What changed since the last evaluation.
#[derive(Debug, Default, PartialEq)]
pub struct SignalChanges {
    /// Signals that started firing, or whose severity rose.
    pub fired: Vec<Signal>,
    /// `(dedup key, incident group)` of signals that stopped firing.
    pub cleared: Vec<(String, String)>,
}

impl SignalChanges {
    pub fn is_empty(&self) -> bool {
        self.fired.is_empty() && self.cleared.is_empty()
    }
}

/// Remembers which signals are firing (by dedup key). Cloned before each recording so that a
/// recording the store refused is derived again at the next evaluation, not lost.
#[derive(Debug, Default, Clone)]
pub struct SignalRecorder {
    active: HashMap<String, (String, Severity)>,
    /// Resumed keys not re-observed yet, with the time until which their absence says nothing.
    unconfirmed: HashMap<String, DateTime<Utc>>,
}

impl SignalRecorder {
    /// Picks up where a previous process left off: the signals its open incidents still had
    /// firing are not recorded again, only their clearing.
    pub fn resume(open: &[Incident]) -> Self {
        Self::resume_where(open, |_| true)
    }

    /// As [`resume`](Self::resume), for the signals `observes` says this process can raise:
    /// the others (another process's alerts) are neither recorded again nor cleared by it.
    /// A resumed signal may clear at the first evaluation that lacks it.
    pub fn resume_where(open: &[Incident], observes: impl Fn(&str) -> bool) -> Self {
        Self::resume_holding(open, |key| observes(key).then_some(None))
    }

    /// As [`resume_where`](Self::resume_where), where `hold` answers `None` for a signal this
    /// process cannot raise, and `Some(until)` for one it can: absent before `until`, the signal
    /// is unknown (kept firing, nothing recorded); absent at or after it, it clears.
    pub fn resume_holding(
        open: &[Incident],
        hold: impl Fn(&str) -> Option<Option<DateTime<Utc>>>,
    ) -> Self {
        let mut active = HashMap::new();
        let mut unconfirmed = HashMap::new();
        for inc in open.iter().filter(|i| i.status.is_open()) {
            for key in &inc.active {
                let Some(until) = hold(key) else { continue };
                active.insert(key.clone(), (inc.group.clone(), inc.severity));
                if let Some(until) = until {
                    unconfirmed.insert(key.clone(), until);
                }
            }
        }
        Self {
            active,
            unconfirmed,
        }
    }

    /// Compares the signals firing at `at` with those firing before.
    pub fn observe(&mut self, signals: &[Signal], at: DateTime<Utc>) -> SignalChanges {
        let mut changes = SignalChanges::default();
        let mut now: HashMap<&str, &Signal> = HashMap::with_capacity(signals.len());
        for s in signals {
            now.entry(s.dedup_key.as_str()).or_insert(s);
        }
        let unconfirmed = &mut self.unconfirmed;
        self.active.retain(|key, (group, _)| {
            if now.contains_key(key.as_str()) {
                unconfirmed.remove(key);
                return true;
            }
            match unconfirmed.get(key) {
                // Not seen since this process started, and its detector has not had the time
                // to see it: unknown, still firing as far as anyone knows.
                Some(until) if at < *until => true,
                _ => {
                    unconfirmed.remove(key);
                    changes.cleared.push((key.clone(), group.clone()));
                    false
                }
            }
        });
        for (key, s) in now {
            match self.active.get_mut(key) {
                Some((_, sev)) if s.severity <= *sev => {}
                Some((_, sev)) => {
                    *sev = s.severity;
                    changes.fired.push(s.clone());
                }
                None => {
                    self.active
                        .insert(key.to_string(), (incident_group(s), s.severity));
                    changes.fired.push(s.clone());
                }
            }
        }
        changes.fired.sort_by(|a, b| a.dedup_key.cmp(&b.dedup_key));
        changes.cleared.sort();
        changes
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Whether the signal with `key` is recorded as firing.
    pub fn is_active(&self, key: &str) -> bool {
        self.active.contains_key(key)
    }

    /// Resumed signals not re-observed yet (unknown: neither confirmed nor cleared), with the
    /// time each clears if it stays unseen.
    pub fn unconfirmed(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> {
        self.unconfirmed.iter().map(|(k, t)| (k.as_str(), *t))
    }
}
