//! Pending → firing → clearing: the patience every detector kind shares, after Prometheus'
//! alerting rules. A condition must hold for its kind's `for` before its signal fires (a
//! pending condition that lapses is forgotten, as Prometheus drops a pending alert); a firing
//! signal keeps firing until its clear condition has held for its kind's `clear_after`, so a
//! value flapping around a threshold does not open and close incidents. The one state per dedup
//! key; the detectors say, per evaluation, which conditions hold. Imports model only.
//!
//! Where Prometheus resolves a firing alert as soon as its expression is false (its
//! `keep_firing_for` is the opt-in), fleetdeck keeps firing by default for the kinds that
//! flap, and lets a detector report a value inside its clear margin (an idle GPU at 7 % when idle
//! is under 5 % and clearing needs 10 %) as [`Condition::WithinMargin`]: that keeps a firing
//! signal firing (its clear condition does not hold, so its `clear_after` starts over) and starts
//! nothing.

// Keys are the detectors' own dedup keys: a fast hash, no DoS to fear.
use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::signal::Signal;

/// What a detector found for one dedup key in this evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The firing condition holds.
    Met,
    /// The firing condition does not hold, but the clear condition does not either (the value
    /// sits inside the hysteresis margin).
    WithinMargin,
}

/// One detector finding: the signal it would raise, and how firmly.
#[derive(Debug, Clone)]
pub struct Observation {
    pub signal: Signal,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Pending,
    Firing,
    /// The clear condition has held since then.
    Clearing(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Tracked {
    phase: Phase,
    /// When the condition was first true; kept through clearing and firing again.
    first_seen: DateTime<Utc>,
    /// The latest signal, shown while the condition is gone but the signal still clears.
    last: Signal,
}

/// Per-key state of every signal the detectors have seen and not yet forgotten.
#[derive(Debug, Default)]
pub struct Patience {
    tracked: HashMap<String, Tracked>,
}

/// A kind's `for` and `clear_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    pub pending_for: Duration,
    pub clear_after: Duration,
}

impl Patience {
    /// Whether `key` is pending and will still be at `now`: its condition has not yet held for
    /// `pending_for`, so the signal it would raise is not shown (a detector may skip building
    /// it; the key alone keeps it pending).
    pub fn waits(&self, key: &str, now: DateTime<Utc>, pending_for: Duration) -> bool {
        self.tracked
            .get(key)
            .is_some_and(|t| t.phase == Phase::Pending && !held(t.first_seen, now, pending_for))
    }

    /// Advances every key in scope by one evaluation at `now` and answers the signals that fire.
    /// `observed` holds this evaluation's findings; a tracked key in `in_scope` that was not
    /// observed has its clear condition holding. Keys out of scope (another evaluation's, like
    /// the budget's) are left as they are.
    pub fn advance(
        &mut self,
        observed: Vec<Observation>,
        now: DateTime<Utc>,
        in_scope: impl Fn(&str) -> bool,
        timing: impl Fn(&str) -> Timing,
    ) -> Vec<Signal> {
        let mut by_key: HashMap<String, Observation> = HashMap::default();
        for o in observed {
            match by_key.get(&o.signal.dedup_key) {
                Some(seen) if seen.signal.severity >= o.signal.severity => {}
                _ => {
                    by_key.insert(o.signal.dedup_key.clone(), o);
                }
            }
        }
        let mut out = Vec::new();
        let absent: Vec<String> = self
            .tracked
            .keys()
            .filter(|k| in_scope(k) && !by_key.contains_key(*k))
            .cloned()
            .collect();
        for key in absent {
            let Some(t) = self.tracked.get_mut(&key) else {
                continue;
            };
            let clear_after = timing(&t.last.kind).clear_after;
            if let Some(s) = clearing(t, now, clear_after) {
                out.push(s);
            } else {
                self.tracked.remove(&key);
            }
        }
        for (key, o) in by_key {
            let pending_for = timing(&o.signal.kind).pending_for;
            match (self.tracked.get_mut(&key), o.condition) {
                (None, Condition::WithinMargin) => {}
                (None, Condition::Met) => {
                    let first_seen = o.signal.first_seen.min(now);
                    let t = Tracked {
                        phase: Phase::Pending,
                        first_seen,
                        last: o.signal,
                    };
                    let t = self.tracked.entry(key).or_insert(t);
                    if held(t.first_seen, now, pending_for) {
                        t.phase = Phase::Firing;
                        out.push(shown(t, None));
                    }
                }
                (Some(t), Condition::Met) => {
                    // A detector dating the condition from the API (a node's readiness
                    // transition) may know it began before we first saw it.
                    t.first_seen = t.first_seen.min(o.signal.first_seen);
                    t.last = o.signal;
                    if t.phase == Phase::Pending && !held(t.first_seen, now, pending_for) {
                        continue;
                    }
                    t.phase = Phase::Firing;
                    out.push(shown(t, None));
                }
                (Some(t), Condition::WithinMargin) => {
                    if t.phase == Phase::Pending {
                        self.tracked.remove(&key);
                    } else {
                        // The clear condition does not hold: the clock for clearing restarts.
                        t.phase = Phase::Firing;
                        t.last = o.signal;
                        out.push(shown(t, None));
                    }
                }
            }
        }
        out
    }
}

fn held(since: DateTime<Utc>, now: DateTime<Utc>, needed: Duration) -> bool {
    (now - since).to_std().unwrap_or_default() >= needed
}

/// A tracked key whose clear condition holds at `now`: the signal it still shows, or `None` when
/// it is done (never fired, or cleared for long enough).
fn clearing(t: &mut Tracked, now: DateTime<Utc>, clear_after: Duration) -> Option<Signal> {
    let since = match t.phase {
        Phase::Pending => return None,
        Phase::Firing => now,
        Phase::Clearing(since) => since,
    };
    if held(since, now, clear_after) {
        return None;
    }
    t.phase = Phase::Clearing(since);
    Some(shown(t, Some(since)))
}

/// The signal as it fires: dated by when its condition was first true, and, while it clears,
/// saying since when.
fn shown(t: &Tracked, clearing_since: Option<DateTime<Utc>>) -> Signal {
    let mut s = t.last.clone();
    s.first_seen = t.first_seen;
    if let Some(since) = clearing_since {
        s.evidence.insert(
            crate::model::signal::CLEARING_SINCE.into(),
            serde_json::to_value(since).unwrap_or_default(),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::{Severity, Subject};

    fn sig(at: DateTime<Utc>) -> Signal {
        Signal {
            kind: "gpu.idle".into(),
            severity: Severity::Info,
            subject: Subject::default(),
            summary: String::new(),
            evidence: Default::default(),
            action: None,
            first_seen: at,
            dedup_key: "gpu.idle:x".into(),
        }
    }

    fn timing(_: &str) -> Timing {
        Timing {
            pending_for: Duration::from_secs(60),
            clear_after: Duration::from_secs(30),
        }
    }

    fn step(p: &mut Patience, at: DateTime<Utc>, c: Option<Condition>) -> Vec<Signal> {
        let observed = c
            .map(|condition| Observation {
                signal: sig(at),
                condition,
            })
            .into_iter()
            .collect();
        p.advance(observed, at, |_| true, timing)
    }

    #[test]
    fn a_condition_fires_only_after_it_held_for_its_for_and_keeps_its_first_sighting() {
        let t0 = Utc::now();
        let s = |secs| t0 + chrono::Duration::seconds(secs);
        let mut p = Patience::default();
        assert!(step(&mut p, s(0), Some(Condition::Met)).is_empty());
        assert!(step(&mut p, s(59), Some(Condition::Met)).is_empty());
        let fired = step(&mut p, s(60), Some(Condition::Met));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].first_seen, t0);
    }

    #[test]
    fn a_pending_condition_that_lapses_starts_over() {
        let t0 = Utc::now();
        let s = |secs| t0 + chrono::Duration::seconds(secs);
        let mut p = Patience::default();
        step(&mut p, s(0), Some(Condition::Met));
        assert!(step(&mut p, s(30), Some(Condition::WithinMargin)).is_empty());
        assert!(step(&mut p, s(40), Some(Condition::Met)).is_empty());
        assert!(step(&mut p, s(90), Some(Condition::Met)).is_empty(), "50 s");
        assert_eq!(step(&mut p, s(100), Some(Condition::Met)).len(), 1);
    }

    #[test]
    fn a_firing_signal_flapping_around_its_threshold_keeps_firing_until_clear_for_long_enough() {
        let t0 = Utc::now();
        let s = |secs| t0 + chrono::Duration::seconds(secs);
        let mut p = Patience::default();
        step(&mut p, s(0), Some(Condition::Met));
        assert_eq!(step(&mut p, s(60), Some(Condition::Met)).len(), 1);
        // Gone, back, in the margin, gone: never for 30 s in a row.
        let gone = step(&mut p, s(70), None);
        assert_eq!(gone.len(), 1, "still firing while it clears");
        assert!(gone[0].evidence.contains_key("clearing_since"));
        let back = step(&mut p, s(90), Some(Condition::Met));
        assert_eq!(back[0].first_seen, t0, "the same signal");
        assert!(!back[0].evidence.contains_key("clearing_since"));
        assert_eq!(step(&mut p, s(100), None).len(), 1, "clearing since 100 s");
        let margin = step(&mut p, s(120), Some(Condition::WithinMargin));
        assert!(
            !margin[0].evidence.contains_key("clearing_since"),
            "inside the margin the clear condition does not hold"
        );
        assert_eq!(step(&mut p, s(125), None).len(), 1, "clearing since 125 s");
        assert_eq!(step(&mut p, s(154), None).len(), 1, "29 s clear");
        assert!(step(&mut p, s(155), None).is_empty(), "30 s clear");
        assert!(
            step(&mut p, s(156), Some(Condition::Met)).is_empty(),
            "a recurrence is new and pending again"
        );
    }

    #[test]
    fn zero_durations_fire_and_clear_at_once() {
        let t0 = Utc::now();
        let mut p = Patience::default();
        let zero = |_: &str| Timing::default();
        let met = vec![Observation {
            signal: sig(t0),
            condition: Condition::Met,
        }];
        assert_eq!(p.advance(met, t0, |_| true, zero).len(), 1);
        assert!(p.advance(vec![], t0, |_| true, zero).is_empty());
        assert!(p.tracked.is_empty());
    }

    #[test]
    fn keys_out_of_scope_are_left_alone() {
        let t0 = Utc::now();
        let mut p = Patience::default();
        step(&mut p, t0, Some(Condition::Met));
        assert!(
            p.advance(vec![], t0, |k| k.starts_with("budget."), timing)
                .is_empty()
        );
        assert_eq!(p.tracked.len(), 1);
    }
}
