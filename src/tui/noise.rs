//! How noisy the fleet is: signals raised and incidents opened over the last hour, from the
//! pipeline's cumulative counters (`Evaluated::raised_total`, `incidents_opened_total`). The
//! app keeps a bounded history of samples; the Overview draws the rate. Pure arithmetic over
//! the samples it is given; may import model.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::model::signal::Severity;

/// The window the rate is measured over.
pub const NOISE_WINDOW: Duration = Duration::hours(1);
/// Samples closer than this to the one before are merged into it: the pipeline evaluates
/// every two seconds or faster, and an hour needs no finer steps than this to be honest
/// (at most 360 samples are kept).
const SAMPLE_SPACING: Duration = Duration::seconds(10);

/// The pipeline's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NoiseSample {
    at: DateTime<Utc>,
    /// Signals raised since the pipeline started: critical, warning, info.
    raised: [u64; 3],
    incidents_opened: u64,
}

/// What changed over a window: the signals raised by severity and the incidents opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseRate {
    /// How long the counts were gathered over: an hour once the history is that long, less
    /// before (the counts are then what was seen, not extrapolated).
    pub window: Duration,
    /// Signals raised in the window: critical, warning, info.
    pub raised: [u64; 3],
    pub incidents_opened: u64,
}

impl NoiseRate {
    pub fn raised_total(&self) -> u64 {
        self.raised.iter().sum()
    }

    /// Whether the window is a full hour, so the counts are per hour.
    pub fn is_hourly(&self) -> bool {
        self.window >= NOISE_WINDOW
    }

    /// The counts per hour: scaled from a window a little over an hour (its first sample
    /// lies at or before the hour's start) down to one hour, to the nearest whole.
    pub fn per_hour(&self) -> ([u64; 3], u64) {
        let secs = self.window.num_seconds().max(1) as f64;
        let scale = |n: u64| (n as f64 * 3600.0 / secs).round() as u64;
        (self.raised.map(scale), scale(self.incidents_opened))
    }
}

/// The samples of the last hour (and the one just before it, as the window's start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseHistory {
    samples: VecDeque<NoiseSample>,
}

/// Sums the pipeline's per-(kind, severity) counts by severity: critical, warning, info.
fn by_severity(raised_total: &BTreeMap<(String, Severity), u64>) -> [u64; 3] {
    let mut raised = [0; 3];
    for ((_, severity), n) in raised_total {
        let slot = match severity {
            Severity::Critical => 0,
            Severity::Warning => 1,
            Severity::Info => 2,
        };
        raised[slot] += n;
    }
    raised
}

impl NoiseHistory {
    /// A history whose counters were zero at `at`: the pipeline starts with the cockpit, so
    /// what it raised before the first evaluation arrived is counted too.
    pub fn starting(at: DateTime<Utc>) -> Self {
        Self {
            samples: VecDeque::from([NoiseSample {
                at,
                raised: [0; 3],
                incidents_opened: 0,
            }]),
        }
    }

    /// Records the pipeline's counters at `at`, and drops what the window no longer needs.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        raised_total: &BTreeMap<(String, Severity), u64>,
        incidents_opened_total: u64,
    ) {
        let sample = NoiseSample {
            at,
            raised: by_severity(raised_total),
            incidents_opened: incidents_opened_total,
        };
        let len = self.samples.len();
        let merge = len >= 2
            && self.samples[len - 1].at - self.samples[len - 2].at < SAMPLE_SPACING
            && at >= self.samples[len - 1].at;
        if merge {
            self.samples[len - 1] = sample;
        } else {
            self.samples.push_back(sample);
        }
        // The window's start is the newest sample at or before an hour ago.
        while self
            .samples
            .get(1)
            .is_some_and(|next| next.at <= at - NOISE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// What was raised and opened between the oldest kept sample and the newest; `None`
    /// before any evaluation was recorded.
    pub fn rate(&self) -> Option<NoiseRate> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if self.samples.len() < 2 {
            return None;
        }
        let mut raised = [0; 3];
        for (slot, (now, then)) in raised.iter_mut().zip(last.raised.iter().zip(first.raised)) {
            // A counter that went down means a new pipeline: count from zero again.
            *slot = now.checked_sub(then).unwrap_or(*now);
        }
        Some(NoiseRate {
            window: last.at - first.at,
            raised,
            incidents_opened: last
                .incidents_opened
                .checked_sub(first.incidents_opened)
                .unwrap_or(last.incidents_opened),
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn totals(critical: u64, warning: u64, info: u64) -> BTreeMap<(String, Severity), u64> {
        BTreeMap::from([
            (("gpu.xid".to_string(), Severity::Critical), critical),
            (("node.not_ready".to_string(), Severity::Warning), warning),
            (("gpu.idle".to_string(), Severity::Info), info),
        ])
    }

    #[test]
    fn under_an_hour_the_counts_are_what_was_seen_over_the_window_so_far() {
        let mut h = NoiseHistory::starting(start());
        assert_eq!(h.rate(), None, "nothing evaluated yet");
        h.record(start() + Duration::minutes(12), &totals(1, 2, 0), 1);
        let rate = h.rate().unwrap_or_else(|| panic!("a rate"));
        assert_eq!(rate.window, Duration::minutes(12));
        assert_eq!((rate.raised, rate.incidents_opened), ([1, 2, 0], 1));
        assert!(!rate.is_hourly());
    }

    #[test]
    fn after_an_hour_only_the_last_hour_counts_and_is_scaled_to_one_hour() {
        let mut h = NoiseHistory::starting(start());
        // One critical and one incident every 20 minutes, one warning every minute.
        for minute in 1..=120 {
            let at = start() + Duration::minutes(minute);
            h.record(
                at,
                &totals(minute as u64 / 20, minute as u64, 0),
                minute as u64 / 20,
            );
        }
        let rate = h.rate().unwrap_or_else(|| panic!("a rate"));
        assert!(rate.is_hourly());
        assert_eq!(rate.window, Duration::hours(1));
        assert_eq!(rate.raised, [3, 60, 0]);
        assert_eq!(rate.per_hour(), ([3, 60, 0], 3));
        assert!(h.len() <= 62, "bounded: {} samples", h.len());

        // A window a little over an hour scales down to one hour.
        let over = NoiseRate {
            window: Duration::minutes(75),
            raised: [5, 10, 0],
            incidents_opened: 5,
        };
        assert_eq!(over.per_hour(), ([4, 8, 0], 4));
    }

    #[test]
    fn evaluations_seconds_apart_are_merged_so_an_hour_keeps_few_samples() {
        let mut h = NoiseHistory::starting(start());
        for second in (2..=7200).step_by(2) {
            h.record(start() + Duration::seconds(second), &totals(0, 0, 1), 0);
        }
        assert!(h.len() <= 400, "{} samples", h.len());
        let rate = h.rate().unwrap_or_else(|| panic!("a rate"));
        assert!(rate.is_hourly() && rate.window < Duration::minutes(61));
    }

    #[test]
    fn a_counter_that_restarts_counts_from_zero() {
        let mut h = NoiseHistory::starting(start());
        h.record(start() + Duration::minutes(1), &totals(5, 0, 0), 2);
        h.record(start() + Duration::minutes(62), &totals(6, 0, 0), 2);
        h.record(start() + Duration::minutes(63), &totals(1, 0, 0), 0);
        let rate = h.rate().unwrap_or_else(|| panic!("a rate"));
        assert_eq!((rate.raised, rate.incidents_opened), ([1, 0, 0], 0));
    }
}
