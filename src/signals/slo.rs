//! SLO burn-rate detection by the Google SRE workbook's multiwindow, multi-burn-rate rules:
//! bounded, age-pruned SLI series ([`SliHistory`]), the burn-rate math, and [`EndpointWindows`],
//! which folds each endpoint poll's raw measurements into those series (and the drift windows
//! of [`super::drift`]) and fills the endpoint's `availability_burn`, `latency_burn` and `drift`.
//! Imports model only.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::drift::DriftTracker;
use crate::model::endpoint::{
    BurnAlert, BurnSeverity, BurnWindow, DriftResult, EndpointConfig, EndpointModel,
    EndpointObservation, IntervalHistogram, SloBurn, SloConfig, SloKind,
};

/// Good and total events in the interval that ends at `at` (a scrape's request increase, or one
/// probe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliSample {
    pub at: DateTime<Utc>,
    pub good: f64,
    pub total: f64,
}

/// An SLI series pruned by age: samples older than `max_age` before the newest one go, and at
/// most [`SliHistory::MAX_SAMPLES`] are kept whatever the cadence.
#[derive(Debug, Clone)]
pub struct SliHistory {
    samples: VecDeque<SliSample>,
    max_age: Duration,
}

impl SliHistory {
    pub const MAX_SAMPLES: usize = 200_000;

    pub fn new(max_age: Duration) -> Self {
        SliHistory {
            samples: VecDeque::new(),
            max_age,
        }
    }

    pub fn push(&mut self, sample: SliSample) {
        self.samples.push_back(sample);
        if let Some(cutoff) = sample.at.checked_sub_signed(span(self.max_age)) {
            while self.samples.front().is_some_and(|s| s.at < cutoff) {
                self.samples.pop_front();
            }
        }
        while self.samples.len() > Self::MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// (good, total) of the samples in the window `(now - window, now]`.
    pub fn totals(&self, now: DateTime<Utc>, window: Duration) -> (f64, f64) {
        let from = now.checked_sub_signed(span(window));
        self.samples
            .iter()
            .filter(|s| s.at <= now && from.is_none_or(|f| s.at > f))
            .fold((0.0, 0.0), |(g, t), s| (g + s.good, t + s.total))
    }

    /// How much time the kept samples cover as of `now`: from the start of the oldest one's
    /// interval (it ends at its `at`; its length is taken to be the gap to the next sample)
    /// to `now`.
    pub fn covered(&self, now: DateTime<Utc>) -> Duration {
        let mut kept = self.samples.iter();
        let Some(first) = kept.next() else {
            return Duration::ZERO;
        };
        let interval = kept.next().map_or(TimeDelta::zero(), |s| s.at - first.at);
        (now - first.at + interval).to_std().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

pub(super) fn span(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// How many times faster than sustainable the error budget burns: the bad share divided by the
/// budget `1 - objective`. `None` without events or for an objective outside (0, 1).
pub fn burn_rate(good: f64, total: f64, objective: f64) -> Option<f64> {
    if total <= 0.0 || !(objective > 0.0 && objective < 1.0) {
        return None;
    }
    let bad = (total - good).max(0.0);
    Some(bad / total / (1.0 - objective))
}

/// Fires `severity` when the burn rate is at least `threshold` over both windows: the long one
/// shows the budget really went, the short one that it is still going.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    pub severity: BurnSeverity,
    pub threshold: f64,
    pub long: Duration,
    pub short: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BurnPolicy {
    pub rules: Vec<BurnRule>,
    /// The SLO period the rules are written for; the budget is spent over it.
    pub period: Duration,
}

impl Default for BurnPolicy {
    fn default() -> Self {
        Self::sre_workbook()
    }
}

impl BurnPolicy {
    /// The Google SRE workbook's rules for a 30-day SLO ("Alerting on SLOs", table 5-8): page at
    /// 14.4× over 1 h and 5 m or 6× over 6 h and 30 m; ticket at 3× over 1 d and 2 h or 1× over
    /// 3 d and 6 h.
    pub fn sre_workbook() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        let rule = |severity, threshold, long: u64, short: u64| BurnRule {
            severity,
            threshold,
            long: Duration::from_secs(long),
            short: Duration::from_secs(short),
        };
        BurnPolicy {
            rules: vec![
                rule(BurnSeverity::Page, 14.4, HOUR, 5 * MIN),
                rule(BurnSeverity::Page, 6.0, 6 * HOUR, 30 * MIN),
                rule(BurnSeverity::Ticket, 3.0, 24 * HOUR, 2 * HOUR),
                rule(BurnSeverity::Ticket, 1.0, 72 * HOUR, 6 * HOUR),
            ],
            period: Duration::from_secs(30 * 24 * HOUR),
        }
    }

    /// The same rules with every window multiplied by `factor` (e.g. 1/120 turns 1 h into 30 s),
    /// for rehearsals and tests at a fast cadence. A factor that is not a positive finite number
    /// leaves the windows as they are.
    pub fn scaled(&self, factor: f64) -> Self {
        let scale = |d: Duration| {
            if factor.is_finite() && factor > 0.0 {
                Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(d)
            } else {
                d
            }
        };
        BurnPolicy {
            rules: self
                .rules
                .iter()
                .map(|r| BurnRule {
                    long: scale(r.long),
                    short: scale(r.short),
                    ..*r
                })
                .collect(),
            period: scale(self.period),
        }
    }

    pub fn longest_window(&self) -> Duration {
        self.rules
            .iter()
            .flat_map(|r| [r.long, r.short])
            .max()
            .unwrap_or_default()
    }
}

/// Evaluates every rule of `policy` over `history` as of `now`. A rule whose short window the
/// history does not yet cover is not evaluated (insufficient data): in a fresh process every
/// window holds the same few minutes, and a 3-day, 1× ticket rule would fire on the first
/// unlucky error among a few hundred requests. The workbook's short windows are a twelfth of
/// their long ones, so a page can fire after 5 minutes of history and the slowest ticket after
/// 6 hours.
pub fn evaluate_burn(
    kind: SloKind,
    history: &SliHistory,
    objective: f64,
    policy: &BurnPolicy,
    now: DateTime<Utc>,
) -> SloBurn {
    let window = |d: Duration| {
        let (good, total) = history.totals(now, d);
        BurnWindow {
            window_secs: d.as_secs_f64(),
            good,
            total,
            burn_rate: burn_rate(good, total, objective),
        }
    };
    let mut spans: Vec<Duration> = policy
        .rules
        .iter()
        .flat_map(|r| [r.short, r.long])
        .collect();
    spans.sort();
    spans.dedup();
    let mut alerts: Vec<BurnAlert> = policy
        .rules
        .iter()
        .filter(|r| history.covered(now) >= r.short)
        .filter_map(|r| {
            let (long, short) = (window(r.long), window(r.short));
            let burning = |w: &BurnWindow| w.burn_rate.is_some_and(|b| b >= r.threshold);
            (burning(&long) && burning(&short)).then_some(BurnAlert {
                severity: r.severity,
                threshold: r.threshold,
                long,
                short,
            })
        })
        .collect();
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.threshold.total_cmp(&a.threshold))
    });
    SloBurn {
        kind,
        objective,
        evaluated_at: now,
        windows: spans.into_iter().map(window).collect(),
        covered_secs: history.covered(now).as_secs_f64(),
        period_secs: policy.period.as_secs_f64(),
        alerts,
    }
}

/// Observations at or below `x`, interpolated linearly inside the bucket holding `x` (as
/// PromQL's `histogram_fraction`); above the highest finite bound only that bound's count is
/// known, so the rest counts as above.
pub fn count_at_or_below(h: &IntervalHistogram, x: f64) -> f64 {
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, c) in h.bounds.iter().zip(&h.cumulative) {
        if le.is_infinite() {
            return below;
        }
        if x <= *le {
            if *le <= lower {
                return *c;
            }
            let share = ((x - lower) / (le - lower)).clamp(0.0, 1.0);
            return below + (c - below) * share;
        }
        lower = *le;
        below = *c;
    }
    below
}

/// Observations in total (the `+Inf` bucket).
pub fn observations(h: &IntervalHistogram) -> f64 {
    h.cumulative.last().copied().unwrap_or(0.0)
}

// ---- per endpoint ------------------------------------------------------------------------

/// The SLI series and drift windows of one endpoint.
#[derive(Debug, Clone)]
struct EndpointWindow {
    slo: SloConfig,
    availability: SliHistory,
    latency: SliHistory,
    drift: Option<DriftTracker>,
    last_drift: Option<DriftResult>,
}

/// SLO burn and drift of every configured endpoint, by its place in the configured list. The
/// endpoint source publishes what each poll measured ([`EndpointObservation`]); this keeps the
/// windows and writes the results into the endpoint's model before `state` publishes it, so
/// every face reads the same figures from the snapshot.
#[derive(Debug, Clone)]
pub struct EndpointWindows {
    policy: BurnPolicy,
    endpoints: Vec<EndpointWindow>,
}

impl EndpointWindows {
    pub fn new(configs: &[EndpointConfig], policy: BurnPolicy) -> Self {
        let longest = policy.longest_window();
        EndpointWindows {
            endpoints: configs
                .iter()
                .map(|c| EndpointWindow {
                    slo: c.slo,
                    availability: SliHistory::new(longest),
                    latency: SliHistory::new(longest),
                    drift: c.drift.clone().map(DriftTracker::new),
                    last_drift: None,
                })
                .collect(),
            policy,
        }
    }

    /// Folds in endpoint `index`'s latest poll and fills `model`'s burn and drift. The
    /// availability SLI takes the requests counted since the previous scrape when there were
    /// any, else the probe (one event, good when healthy), so an idle endpoint whose engine
    /// died still burns its budget. Without an observation (the source could not poll) the
    /// windows are left as they are and `model` is not touched.
    pub fn apply(
        &mut self,
        index: usize,
        observation: Option<&EndpointObservation>,
        model: &mut EndpointModel,
    ) {
        let (Some(w), Some(obs)) = (self.endpoints.get_mut(index), observation) else {
            return;
        };
        let now = obs.at;
        let mut availability_sample = None;
        if let Some(interval) = &obs.interval {
            if let (Some(total), Some(failed)) = (interval.requests, interval.failed)
                && total > 0.0
            {
                availability_sample = Some(SliSample {
                    at: now,
                    good: total - failed,
                    total,
                });
            }
            if let (Some(slo), Some(h)) = (w.slo.latency, &interval.latency)
                && observations(h) > 0.0
            {
                w.latency.push(SliSample {
                    at: now,
                    good: count_at_or_below(h, slo.target_ms / 1000.0),
                    total: observations(h),
                });
            }
            if let (Some(drift), Some(h)) = (&mut w.drift, &interval.drift)
                && let Some(result) = drift.observe(now, interval.secs, h)
            {
                w.last_drift = Some(result);
            }
        }
        w.availability
            .push(availability_sample.unwrap_or(SliSample {
                at: now,
                good: if obs.probe_healthy { 1.0 } else { 0.0 },
                total: 1.0,
            }));
        model.availability_burn = w.slo.availability.map(|objective| {
            evaluate_burn(
                SloKind::Availability,
                &w.availability,
                objective,
                &self.policy,
                now,
            )
        });
        model.latency_burn = w.slo.latency.map(|l| {
            evaluate_burn(
                SloKind::Latency,
                &w.latency,
                l.percentile.quantile(),
                &self.policy,
                now,
            )
        });
        model.drift = w.last_drift.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap_or_default()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    fn minutes(h: &mut SliHistory, from: i64, to: i64, bad: f64) {
        for m in from..to {
            h.push(SliSample {
                at: t(m * 60),
                good: 1000.0 - bad,
                total: 1000.0,
            });
        }
    }

    const THREE_DAYS_MIN: i64 = 3 * 24 * 60;

    /// A 99.9 % availability SLO's burn over `h` at minute `minute`.
    fn availability_at(h: &SliHistory, policy: &BurnPolicy, minute: i64) -> SloBurn {
        evaluate_burn(SloKind::Availability, h, 0.999, policy, t(minute * 60))
    }

    #[test]
    fn a_fast_burn_pages() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN - 10, 0.1);
        // Ten minutes at 30 % errors: 300× the budget of a 99.9 % SLO.
        minutes(&mut h, THREE_DAYS_MIN - 10, THREE_DAYS_MIN, 300.0);
        let burn = availability_at(&h, &policy, THREE_DAYS_MIN - 1);
        assert_eq!(burn.severity(), Some(BurnSeverity::Page));
        let first = burn.alerts.first().copied();
        assert_eq!(first.map(|a| a.threshold), Some(14.4));
        // 1 h: 10 minutes of 30 % in 60 → 5 % bad → 50×.
        assert!(first.is_some_and(|a| close(a.long.burn_rate, 50.0 + 0.1 * 50.0 / 60.0)));
        assert_eq!(burn.windows.len(), 7, "5m 30m 1h 2h 6h 1d 3d");
    }

    #[test]
    fn a_slow_burn_opens_a_ticket_but_does_not_page() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN - 30 * 60, 0.1);
        // 30 hours at 4× the budget.
        minutes(&mut h, THREE_DAYS_MIN - 30 * 60, THREE_DAYS_MIN, 4.0);
        let burn = availability_at(&h, &policy, THREE_DAYS_MIN - 1);
        assert_eq!(burn.severity(), Some(BurnSeverity::Ticket));
        let thresholds: Vec<f64> = burn.alerts.iter().map(|a| a.threshold).collect();
        assert_eq!(thresholds, vec![3.0, 1.0]);
    }

    #[test]
    fn a_fresh_history_pages_only_once_it_covers_the_short_window_and_tickets_wait_longer() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        // Three minutes of history, 2 errors in 1,000 a minute: 2× the budget everywhere.
        minutes(&mut h, 0, 3, 2.0);
        let burn = availability_at(&h, &policy, 3);
        assert_eq!(
            burn.severity(),
            None,
            "insufficient data: {:?}",
            burn.alerts
        );
        // Forty minutes at 30 %: the 5-minute and 30-minute pages have their data.
        minutes(&mut h, 3, 43, 300.0);
        let burn = availability_at(&h, &policy, 43);
        assert_eq!(burn.severity(), Some(BurnSeverity::Page));
        assert!(burn.alerts.iter().all(|a| a.severity == BurnSeverity::Page));
    }

    #[test]
    fn a_healthy_series_fires_nothing() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, THREE_DAYS_MIN, 0.5);
        let burn = availability_at(&h, &policy, THREE_DAYS_MIN - 1);
        assert!(burn.alerts.is_empty(), "{:?}", burn.alerts);
        assert!(burn.windows.iter().all(|w| close(w.burn_rate, 0.5)));
    }

    #[test]
    fn a_burst_that_has_ended_no_longer_pages_on_the_fast_rule() {
        let policy = BurnPolicy::sre_workbook();
        let mut h = SliHistory::new(policy.longest_window());
        minutes(&mut h, 0, 100, 0.0);
        minutes(&mut h, 100, 105, 1000.0);
        minutes(&mut h, 105, 120, 0.0);
        let burn = availability_at(&h, &policy, 119);
        assert!(
            burn.windows
                .iter()
                .any(|w| w.window_secs == 3600.0 && w.burn_rate.is_some_and(|b| b > 14.4)),
            "the last hour burned fast"
        );
        assert!(
            !burn.alerts.iter().any(|a| a.threshold == 14.4),
            "but the last 5 minutes did not: {:?}",
            burn.alerts
        );
    }

    #[test]
    fn history_is_pruned_by_age_and_windows_without_events_have_no_rate() {
        let mut h = SliHistory::new(Duration::from_secs(600));
        minutes(&mut h, 0, 60, 0.0);
        assert_eq!(h.len(), 11, "ten minutes back from the newest, inclusive");
        let burn = evaluate_burn(
            SloKind::Availability,
            &SliHistory::new(Duration::from_secs(60)),
            0.999,
            &BurnPolicy::sre_workbook(),
            t(0),
        );
        assert!(burn.windows.iter().all(|w| w.burn_rate.is_none()));
        assert!(burn.alerts.is_empty());
        assert_eq!(
            burn_rate(0.0, 10.0, 1.0),
            None,
            "a 100 % SLO has no budget to burn"
        );
    }

    #[test]
    fn scaled_policies_keep_thresholds_and_shrink_windows() {
        let fast = BurnPolicy::sre_workbook().scaled(1.0 / 120.0);
        assert_eq!(fast.rules[0].long, Duration::from_secs(30));
        assert_eq!(fast.rules[0].short, Duration::from_millis(2500));
        assert_eq!(fast.rules[0].threshold, 14.4);
        assert_eq!(fast.longest_window(), Duration::from_secs(36 * 60));
        assert_eq!(
            BurnPolicy::sre_workbook().scaled(-1.0),
            BurnPolicy::sre_workbook()
        );
    }

    #[test]
    fn the_fraction_below_a_target_interpolates_inside_its_bucket() {
        let inf = f64::INFINITY;
        let h = IntervalHistogram {
            bounds: vec![1.0, 2.0, 4.0, inf],
            cumulative: vec![10.0, 30.0, 40.0, 50.0],
        };
        let _ = (&[1.0, 2.0, 4.0, inf], &[10.0, 30.0, 40.0, 50.0]);
        assert_eq!(count_at_or_below(&h, 1.0), 10.0);
        assert_eq!(count_at_or_below(&h, 1.5), 20.0);
        assert_eq!(count_at_or_below(&h, 0.5), 5.0);
        assert_eq!(
            count_at_or_below(&h, 100.0),
            40.0,
            "beyond the last bound is slow"
        );
    }
}
