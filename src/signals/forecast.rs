//! GPU memory exhaustion forecast, written the way the Prometheus community writes disk-full
//! alerts. The node-exporter mixin's NodeFilesystemSpaceFillingUp fires only when free space is
//! already low (< 40 %) AND `predict_linear` over 6 h reaches zero within 24 h AND that has held
//! for an hour. Here: memory already high (`gpu_memory_high_pct`) AND a least-squares line over
//! `gpu_memory_window` reaches the total within `gpu_memory_full_within` (critical within
//! `gpu_memory_full_critical_within`); the `for` is the detectors' common patience.
//!
//! Two guards the mixin does not need, because GPU memory is not a filesystem: the fit needs
//! `gpu_memory_min_samples` spanning half the window (a young series forecasts nothing and says
//! "insufficient data"), and it must explain the data (R² ≥ `gpu_memory_min_r2`), so a training
//! job's saw-tooth, whose fit over a window longer than its period is a poor, flat line, does
//! not read as a leak. A caching allocator holding steady at 95 % has a zero slope.
//!
//! The least-squares fit is ten lines of sums; a statistics crate would bring more than it saves.
//! Imports model and config.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::Thresholds;
use crate::model::signal::Severity;

/// The forecast's settings, from `[signals]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRule {
    pub high_pct: f64,
    pub window: Duration,
    pub min_samples: usize,
    pub min_r2: f64,
    pub warning_within: Duration,
    pub critical_within: Duration,
}

impl MemoryRule {
    pub fn from_thresholds(t: &Thresholds) -> Self {
        Self {
            high_pct: t.gpu_memory_high_pct,
            window: t.gpu_memory_window,
            min_samples: t.gpu_memory_min_samples as usize,
            min_r2: t.gpu_memory_min_r2,
            warning_within: t.gpu_memory_full_within,
            critical_within: t.gpu_memory_full_critical_within,
        }
    }
}

/// A least-squares line through `(time, value)` samples, anchored at the latest sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    pub slope_per_second: f64,
    /// The line's value at the latest sample's time (Prometheus' `predict_linear` at 0 s).
    pub fitted_latest: f64,
    /// The share of the variance the line explains; `None` for a perfectly flat series.
    pub r2: Option<f64>,
}

/// The least-squares line through `samples`; `None` under two distinct times.
pub fn least_squares(samples: &[(DateTime<Utc>, f64)]) -> Option<LinearFit> {
    let latest = samples.iter().map(|(t, _)| *t).max()?;
    let xs: Vec<f64> = samples
        .iter()
        .map(|(t, _)| (*t - latest).num_milliseconds() as f64 / 1000.0)
        .collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = samples.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, (_, y)) in xs.iter().zip(samples) {
        sxx += (x - mx).powi(2);
        sxy += (x - mx) * (y - my);
        syy += (y - my).powi(2);
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some(LinearFit {
        slope_per_second: slope,
        fitted_latest: my - slope * mx,
        r2: (syy > 0.0).then(|| (sxy * sxy) / (sxx * syy)),
    })
}

/// What the forecast concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryOutlook {
    /// Too few samples, or too short a span, to fit a trend.
    InsufficientData,
    /// Memory is not yet high enough to worry about.
    BelowHigh,
    /// Flat or falling.
    NoTrend,
    /// Rising, but the line does not explain the data (a saw-tooth, noise).
    PoorFit,
    /// Rising, but full only after the warning horizon.
    BeyondHorizon,
    Warning,
    Critical,
}

/// One GPU's forecast with everything that went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryForecast {
    pub outlook: MemoryOutlook,
    pub used_mib: f64,
    pub total_mib: f64,
    pub samples: usize,
    pub span: Duration,
    pub fit: Option<LinearFit>,
    pub seconds_to_full: Option<f64>,
    rule: MemoryRule,
}

impl MemoryForecast {
    pub fn severity(&self) -> Option<Severity> {
        match self.outlook {
            MemoryOutlook::Warning => Some(Severity::Warning),
            MemoryOutlook::Critical => Some(Severity::Critical),
            _ => None,
        }
    }

    /// In words, as the evidence gives it.
    pub fn verdict(&self) -> String {
        let r = &self.rule;
        let fmt = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        match self.outlook {
            MemoryOutlook::InsufficientData => format!(
                "insufficient data: {} samples over {}; the fit needs {} over at least {}",
                self.samples,
                fmt(self.span),
                r.min_samples,
                fmt(r.window / 2)
            ),
            MemoryOutlook::BelowHigh => format!("under {:.0}% used", r.high_pct),
            MemoryOutlook::NoTrend => "not rising".into(),
            MemoryOutlook::PoorFit => format!(
                "rising, but a line explains too little of it (R² {:.2} < {:.2})",
                self.fit.and_then(|f| f.r2).unwrap_or(0.0),
                r.min_r2
            ),
            MemoryOutlook::BeyondHorizon => format!("full later than {}", fmt(r.warning_within)),
            MemoryOutlook::Warning => format!("full within {}", fmt(r.warning_within)),
            MemoryOutlook::Critical => format!("full within {}", fmt(r.critical_within)),
        }
    }

    pub fn evidence(&self) -> serde_json::Value {
        let r = &self.rule;
        json!({
            "verdict": self.verdict(),
            "memory_used_mib": self.used_mib,
            "memory_total_mib": self.total_mib,
            "used_pct": 100.0 * self.used_mib / self.total_mib.max(1.0),
            "high_pct": r.high_pct,
            "window_secs": r.window.as_secs(),
            "samples": self.samples,
            "span_secs": self.span.as_secs(),
            "mib_per_minute": self.fit.map(|f| f.slope_per_second * 60.0),
            "fitted_used_mib": self.fit.map(|f| f.fitted_latest),
            "r2": self.fit.and_then(|f| f.r2),
            "seconds_to_full": self.seconds_to_full,
            "warning_within_secs": r.warning_within.as_secs(),
            "critical_within_secs": r.critical_within.as_secs(),
        })
    }
}

/// The forecast for a GPU using `used_mib` of `total_mib` now, from its recent `series`
/// (oldest first; only the samples within the rule's window of the latest count). Taken as an
/// iterator so the kept history is read in place: thousands of GPUs sit above the high-water
/// mark on an inference fleet, and each evaluation fits every one.
pub fn forecast_memory<I>(
    series: I,
    used_mib: f64,
    total_mib: f64,
    rule: &MemoryRule,
) -> MemoryForecast
where
    I: DoubleEndedIterator<Item = (DateTime<Utc>, f64)> + Clone,
{
    let latest = series.clone().next_back().map(|(t, _)| t);
    let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
    let recent: Vec<(DateTime<Utc>, f64)> = series
        .filter(|(t, _)| latest.is_some_and(|l| *t >= l - window))
        .collect();
    let span = match (recent.first(), recent.last()) {
        (Some(a), Some(b)) => (b.0 - a.0).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let mut f = MemoryForecast {
        outlook: MemoryOutlook::InsufficientData,
        used_mib,
        total_mib,
        samples: recent.len(),
        span,
        fit: None,
        seconds_to_full: None,
        rule: rule.clone(),
    };
    if recent.len() < rule.min_samples.max(2) || span < rule.window / 2 {
        return f;
    }
    f.fit = least_squares(&recent);
    if used_mib < total_mib * rule.high_pct / 100.0 {
        f.outlook = MemoryOutlook::BelowHigh;
        return f;
    }
    let Some(fit) = f.fit.filter(|fit| fit.slope_per_second > 0.0) else {
        f.outlook = MemoryOutlook::NoTrend;
        return f;
    };
    if fit.r2.unwrap_or(0.0) < rule.min_r2 {
        f.outlook = MemoryOutlook::PoorFit;
        return f;
    }
    let secs = (total_mib - fit.fitted_latest).max(0.0) / fit.slope_per_second;
    f.seconds_to_full = Some(secs);
    f.outlook = if secs <= rule.critical_within.as_secs_f64() {
        MemoryOutlook::Critical
    } else if secs <= rule.warning_within.as_secs_f64() {
        MemoryOutlook::Warning
    } else {
        MemoryOutlook::BeyondHorizon
    };
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: impl IntoIterator<Item = (i64, f64)>) -> Vec<(DateTime<Utc>, f64)> {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        points
            .into_iter()
            .map(|(s, v)| (t0 + chrono::Duration::seconds(s), v))
            .collect()
    }

    fn rule() -> MemoryRule {
        MemoryRule::from_thresholds(&Thresholds::default())
    }

    #[test]
    fn a_straight_line_fits_exactly() {
        let s: Vec<_> = series((0..10).map(|i| (60 * i, 100.0 + 30.0 * i as f64)))
            .into_iter()
            .collect();
        let fit = least_squares(&s).expect("a fit");
        assert!((fit.slope_per_second - 0.5).abs() < 1e-9);
        assert!((fit.fitted_latest - 370.0).abs() < 1e-9);
        assert!((fit.r2.unwrap_or(0.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_saw_tooth_over_a_window_longer_than_its_period_is_a_poor_flat_fit() {
        // 90 %→98 % over two minutes, then back: five teeth in ten minutes.
        let s = series((0..=40).map(|i| {
            let phase = (i % 8) as f64 / 8.0;
            (15 * i, 72_000.0 + 7_000.0 * phase)
        }));
        let used = s.last().map_or(0.0, |(_, v)| *v);
        let f = forecast_memory(s.iter().copied(), used, 80_000.0, &rule());
        assert!(f.severity().is_none(), "{f:?}");
        assert!(
            matches!(f.outlook, MemoryOutlook::PoorFit | MemoryOutlook::NoTrend),
            "{f:?}"
        );
        assert!(f.fit.and_then(|fit| fit.r2).unwrap_or(0.0) < 0.8, "{f:?}");
    }
}
