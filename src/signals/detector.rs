//! The detector abstraction: a [`Detector`] looks at what it is given (the fleet's snapshot, or
//! a cost report) with its own memory and reports the conditions it finds as [`Observation`]s;
//! [`super::Detectors`] runs every registered one and applies their kinds' patience. Also the
//! helpers every detector shares (first sightings, building a [`Signal`]). Imports model and
//! config; never the store (tests/architecture.rs).

use rustc_hash::{FxHashMap as HashMap, FxHashSet};

use chrono::{DateTime, Utc};

use super::patience::{Condition, Observation, Patience};
use crate::config::Thresholds;
use crate::model::Snapshot;
use crate::model::cost::CostReport;
use crate::model::gpu_history::GpuHistory;
use crate::model::signal::{Severity, Signal, Subject};

/// What a detector is shown. Most look at the fleet's picture; the budget forecast looks at the
/// cost report, which comes on its own schedule.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Fleet(&'a Snapshot),
    Cost(&'a CostReport),
}

/// What every detector may read during one evaluation besides its input.
#[derive(Debug)]
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub thresholds: &'a Thresholds,
    /// Which keys still wait out their `for`, so a detector may skip building a signal that
    /// would not be shown (thousands of idle GPUs wait ten minutes).
    pub patience: &'a Patience,
    /// Each GPU's recent readings, kept by `state` (the memory forecast fits them).
    pub gpu_history: &'a GpuHistory,
}

/// One detector: a type that turns what it is shown, and its own memory, into observations of
/// the catalog kinds it raises (`model::catalog`). Register it in [`super::registered`].
pub trait Detector: std::fmt::Debug + Send {
    /// The catalog kinds it raises (a test checks every catalog kind has a detector).
    fn kinds(&self) -> &'static [&'static str];

    /// Pushes one observation per condition found in `input` (and nothing for an input it does
    /// not read). Observations, not signals: the kind's `for` and `clear_after` are applied by
    /// [`super::Detectors`], to every detector alike.
    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>);
}

/// When each condition a detector sees was first seen. A condition not seen in an evaluation is
/// forgotten after it ([`Sightings::forget_unseen`]), so a recurrence is a new first sighting.
#[derive(Debug, Default)]
pub struct Sightings {
    first_seen: HashMap<String, DateTime<Utc>>,
    /// Keys seen since the last [`Sightings::forget_unseen`].
    touched: FxHashSet<String>,
}

impl Sightings {
    /// Marks `key` seen at `now`; answers when it was first seen.
    pub fn seen(&mut self, key: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        self.touched.insert(key.to_string());
        if let Some(first) = self.first_seen.get(key) {
            return *first;
        }
        self.first_seen.insert(key.to_string(), now);
        now
    }

    /// Forgets the conditions not seen since the last call.
    pub fn forget_unseen(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        self.first_seen.retain(|k, _| touched.contains(k));
    }
}

/// A condition that holds.
pub fn met(signal: Signal) -> Observation {
    Observation {
        signal,
        condition: Condition::Met,
    }
}

/// A signal of `kind` on `subject`, deduplicated by both.
pub fn signal(
    kind: &str,
    severity: Severity,
    subject: Subject,
    summary: String,
    evidence: serde_json::Value,
    first_seen: DateTime<Utc>,
    action: Option<&str>,
) -> Signal {
    let dedup_key = format!("{kind}:{}", subject.describe());
    Signal {
        kind: kind.into(),
        severity,
        subject,
        summary,
        evidence: evidence
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
        action: action.map(str::to_string),
        first_seen,
        dedup_key,
    }
}
