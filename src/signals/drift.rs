//! Drift of an endpoint's histogram metric: the population stability index (PSI) between a
//! baseline window and the latest one, and the windows themselves ([`DriftTracker`]). Imports
//! model only.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::slo::{observations, span};
use crate::model::endpoint::{DriftBand, DriftConfig, DriftResult, IntervalHistogram};

/// Stands in for an empty bucket's share, so PSI stays finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population stability index between two sets of bucket counts (not cumulative) of the same
/// layout: Σ (c − b) · ln(c / b) over the buckets' shares. `None` when the layouts differ or a
/// side has no observations.
pub fn psi(baseline: &[f64], current: &[f64]) -> Option<f64> {
    if baseline.len() != current.len() || baseline.is_empty() {
        return None;
    }
    let (bt, ct): (f64, f64) = (baseline.iter().sum(), current.iter().sum());
    if bt <= 0.0 || ct <= 0.0 {
        return None;
    }
    Some(
        baseline
            .iter()
            .zip(current)
            .map(|(b, c)| {
                let b = (b / bt).max(PSI_EPSILON);
                let c = (c / ct).max(PSI_EPSILON);
                (c - b) * (c / b).ln()
            })
            .sum(),
    )
}

/// Per-bucket (not cumulative) counts.
fn bucket_counts(h: &IntervalHistogram) -> Vec<f64> {
    let mut prev = 0.0;
    h.cumulative
        .iter()
        .map(|c| {
            let d = (c - prev).max(0.0);
            prev = *c;
            d
        })
        .collect()
}

/// Adds `other` into `total`; `false` (and no change) when the layouts differ.
fn add(total: &mut IntervalHistogram, other: &IntervalHistogram) -> bool {
    if total.bounds != other.bounds {
        return false;
    }
    for (a, b) in total.cumulative.iter_mut().zip(&other.cumulative) {
        *a += b;
    }
    true
}

/// Sums histograms that share the newest one's layout (older layouts predate a restart).
fn sum_histograms<'a>(
    mut hs: impl DoubleEndedIterator<Item = &'a IntervalHistogram>,
) -> Option<IntervalHistogram> {
    let mut total = hs.next_back()?.clone();
    for h in hs {
        add(&mut total, h);
    }
    Some(total)
}

/// The baseline is the first `window_secs` observed after start (or after the histogram's
/// layout changed); the current window slides.
#[derive(Debug, Clone)]
pub struct DriftTracker {
    config: DriftConfig,
    started: Option<DateTime<Utc>>,
    baseline: Option<IntervalHistogram>,
    baseline_complete: bool,
    recent: VecDeque<(DateTime<Utc>, IntervalHistogram)>,
}

impl DriftTracker {
    pub fn new(config: DriftConfig) -> Self {
        DriftTracker {
            config,
            started: None,
            baseline: None,
            baseline_complete: false,
            recent: VecDeque::new(),
        }
    }

    /// Folds in the metric's increase over the `secs` that end at `at`; answers the PSI once
    /// the baseline window is complete.
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        secs: f64,
        h: &IntervalHistogram,
    ) -> Option<DriftResult> {
        let window = span(Duration::from_secs(self.config.window_secs));
        let relayout = self.baseline.as_ref().is_some_and(|b| b.bounds != h.bounds);
        if relayout || self.started.is_none() {
            let interval = TimeDelta::milliseconds((secs * 1000.0) as i64);
            self.started = Some(at.checked_sub_signed(interval).unwrap_or(at));
            self.baseline = None;
            self.baseline_complete = false;
            self.recent.clear();
        }
        if !self.baseline_complete {
            match &mut self.baseline {
                Some(b) => {
                    add(b, h);
                }
                None => self.baseline = Some(h.clone()),
            }
            self.baseline_complete = self.started.is_some_and(|s| at - s >= window);
        }
        self.recent.push_back((at, h.clone()));
        if let Some(cutoff) = at.checked_sub_signed(window) {
            while self.recent.front().is_some_and(|(at, _)| *at <= cutoff) {
                self.recent.pop_front();
            }
        }
        if !self.baseline_complete {
            return None;
        }
        let baseline = self.baseline.as_ref()?;
        let current = sum_histograms(self.recent.iter().map(|(_, h)| h))?;
        let value = psi(&bucket_counts(baseline), &bucket_counts(&current))?;
        Some(DriftResult {
            metric: self.config.metric.clone(),
            psi: value,
            band: DriftBand::of(value),
            baseline_count: observations(baseline),
            current_count: observations(&current),
            computed_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_hand_computed_values_and_bands() {
        let p = |b: &[f64], c: &[f64]| psi(b, c).unwrap_or(f64::NAN);
        assert_eq!(
            p(&[5.0, 5.0], &[50.0, 50.0]),
            0.0,
            "proportions, not counts"
        );
        // 0.1·ln 1.2 + 0.1·ln 1.25
        let small = p(&[50.0, 50.0], &[60.0, 40.0]);
        assert!((small - 0.040_54).abs() < 1e-4, "{small}");
        assert_eq!(DriftBand::of(small), DriftBand::None);
        let moderate = p(&[50.0, 50.0], &[70.0, 30.0]);
        assert!((moderate - 0.169_46).abs() < 1e-4, "{moderate}");
        assert_eq!(DriftBand::of(moderate), DriftBand::Moderate);
        let big = p(&[50.0, 50.0], &[90.0, 10.0]);
        assert!((big - 0.878_89).abs() < 1e-4, "{big}");
        assert_eq!(DriftBand::of(big), DriftBand::Significant);
        // An empty bucket uses ε instead of 0, so the index stays finite.
        assert!(p(&[100.0, 0.0], &[50.0, 50.0]).is_finite());
        assert_eq!(psi(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(psi(&[0.0, 0.0], &[1.0, 2.0]), None);
    }
}
