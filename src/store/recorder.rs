//! Turns the detectors' output, evaluated on every snapshot, into timeline events: a signal is
//! recorded when it starts firing (or gets more severe) and when it clears, not on every
//! snapshot while it persists.

use std::collections::HashMap;

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

/// Remembers which signals are firing (by dedup key).
#[derive(Debug, Default)]
pub struct SignalRecorder {
    active: HashMap<String, (String, Severity)>,
}

impl SignalRecorder {
    /// Picks up where a previous process left off: the signals its open incidents still had
    /// firing are not recorded again, only their clearing.
    pub fn resume(open: &[Incident]) -> Self {
        Self::resume_where(open, |_| true)
    }

    /// As [`resume`](Self::resume), for the signals `observes` says this process can raise:
    /// the others (another process's alerts) are neither recorded again nor cleared by it.
    pub fn resume_where(open: &[Incident], observes: impl Fn(&str) -> bool) -> Self {
        let mut active = HashMap::new();
        for inc in open.iter().filter(|i| i.status.is_open()) {
            for key in inc.active.iter().filter(|k| observes(k)) {
                active.insert(key.clone(), (inc.group.clone(), inc.severity));
            }
        }
        Self { active }
    }

    /// Compares the signals firing now with those firing before.
    pub fn observe(&mut self, signals: &[Signal]) -> SignalChanges {
        let mut changes = SignalChanges::default();
        let mut now: HashMap<&str, &Signal> = HashMap::with_capacity(signals.len());
        for s in signals {
            now.entry(s.dedup_key.as_str()).or_insert(s);
        }
        self.active.retain(|key, (group, _)| {
            if now.contains_key(key.as_str()) {
                true
            } else {
                changes.cleared.push((key.clone(), group.clone()));
                false
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
}
