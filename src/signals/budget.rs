//! `budget.overrun_forecast`: the month's spend forecast past `[cost] monthly_budget`, from the
//! cost report (its own schedule, not the fleet's), and the forecast itself
//! ([`forecast_budget`]: the stage every cost report passes through before a face sees it).
//! Imports model and config.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::cost::{
    BudgetBurn, BudgetForecast, CostReport, DailySpend, budget_pct, first_of_month,
    first_of_next_month, midnight,
};
use crate::model::signal::{Severity, Signal, Subject};

/// The month-end forecast over the budget.
#[derive(Debug, Default)]
pub struct BudgetDetector {
    /// Never swept: a month's forecast keeps its first sighting while the report comes and goes
    /// (one key a month).
    sightings: Sightings,
}

impl Detector for BudgetDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &["budget.overrun_forecast"]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Cost(report) = input else { return };
        out.extend(self.budget(report, cx.now).map(met));
    }
}

impl BudgetDetector {
    fn budget(&mut self, report: &CostReport, now: DateTime<Utc>) -> Option<Signal> {
        let b = report.budget.as_ref()?;
        let f = b.forecast.as_ref().filter(|f| f.over_budget)?;
        let subject = Subject {
            cluster: "fleet".into(),
            object: Some(format!("budget/{}", b.month)),
            ..Subject::default()
        };
        let key = format!("budget.overrun_forecast:{}", subject.describe());
        let first = self.sightings.seen(&key, now);
        let severity = if b.month_to_date > b.monthly_budget {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Some(signal(
            "budget.overrun_forecast",
            severity,
            subject,
            format!(
                "{} spend is forecast at {:.0} {} by month end, {:.0}% of the {:.0} budget ({:.0}% spent with {:.0}% of the month gone)",
                b.month,
                f.month_end,
                report.currency,
                f.pct,
                b.monthly_budget,
                b.burn_pct,
                b.month_elapsed_pct
            ),
            json!({"month": b.month, "budget": b.monthly_budget, "month_to_date": b.month_to_date, "forecast": f.month_end,
                "forecast_pct": f.pct, "method": f.method}),
            first,
            Some(
                "find the groups growing fastest (fleetdeck cost --by team) and idle GPUs to reclaim",
            ),
        ))
    }
}

/// Makes the month-end forecast of `report`'s budget (if it has one) from its daily spend.
pub fn forecast_budget(report: &mut CostReport) {
    if let Some(b) = report.budget.as_mut() {
        b.forecast = Some(forecast_of(b));
    }
}

/// The forecast of one budget month.
fn forecast_of(b: &BudgetBurn) -> BudgetForecast {
    let month_start = first_of_month(b.as_of.date_naive());
    let next_month = first_of_next_month(month_start);
    let (month_end, method) =
        forecast_month_end(&b.daily, b.as_of, month_start, next_month, b.month_to_date);
    BudgetForecast {
        month_end,
        pct: budget_pct(month_end, b.monthly_budget),
        over_budget: month_end > b.monthly_budget,
        method,
    }
}

/// The least of the month that must have passed before its run rate is extrapolated.
pub const MIN_RUN_RATE_DAYS: f64 = 0.5;

/// The month-end forecast and the words that say how it was made.
///
/// Linear on daily spend: a least-squares line through the complete days so far, extended over
/// the rest of the month (the rest of today included) and added to the month-to-date. With fewer
/// than two complete days it is the run rate: month-to-date over the days elapsed; before
/// [`MIN_RUN_RATE_DAYS`] of the month it is the month-to-date alone ("insufficient data").
pub fn forecast_month_end(
    daily: &[DailySpend],
    as_of: DateTime<Utc>,
    month_start: NaiveDate,
    next_month: NaiveDate,
    month_to_date: f64,
) -> (f64, String) {
    let today = as_of.date_naive();
    let points: Vec<(f64, f64)> = daily
        .iter()
        .filter(|d| d.date < today)
        .map(|d| ((d.date - month_start).num_days() as f64, d.cost))
        .collect();
    let rest_of_today =
        (midnight(today + Duration::days(1)) - as_of).num_seconds() as f64 / 86_400.0;
    let remaining_full_days: Vec<f64> = (1..(next_month - today).num_days())
        .map(|i| (today - month_start).num_days() as f64 + i as f64)
        .collect();
    let today_x = (today - month_start).num_days() as f64;
    if points.len() >= 2 {
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let at = |x: f64| (mean_y + slope * (x - mean_x)).max(0.0);
        let rest: f64 =
            at(today_x) * rest_of_today + remaining_full_days.iter().map(|x| at(*x)).sum::<f64>();
        (
            month_to_date + rest,
            format!(
                "linear: least-squares line through {} complete days of spend (daily spend \
                 changing by {:+.2} a day), extended to the end of the month and added to the \
                 month-to-date",
                points.len(),
                slope
            ),
        )
    } else {
        let elapsed = (as_of - midnight(month_start)).num_seconds() as f64 / 86_400.0;
        if elapsed < MIN_RUN_RATE_DAYS {
            // A few hours' spend times sixty is noise (a batch at 01:00 would "overrun" the
            // month): the forecast is what is known, so only real spend can pass the budget.
            return (
                month_to_date,
                format!(
                    "insufficient data: {:.1} hours of the month elapsed, a run rate needs {:.0}; \
                     the forecast is the month-to-date until then",
                    elapsed * 24.0,
                    MIN_RUN_RATE_DAYS * 24.0
                ),
            );
        }
        let rate = if elapsed > 0.0 {
            month_to_date / elapsed
        } else {
            0.0
        };
        let remaining = rest_of_today + remaining_full_days.len() as f64;
        (
            month_to_date + rate * remaining,
            format!(
                "run rate: month-to-date over {elapsed:.2} elapsed days, times the days left \
                 (fewer than two complete days to fit a line)"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::{
        CostReportBuilder, ReportSettings, focus_line as focus, ten_days_at_100,
    };
    // Named `t` where a test reads as a timeline of instants.
    use crate::model::utc as t;

    #[test]
    fn forecast_extends_a_steady_daily_spend_to_the_month_end() {
        let mut report = ten_days_at_100().finish(t("2025-04-11T00:00:00Z"));
        forecast_budget(&mut report);
        let Some(budget) = report.budget else {
            panic!("no budget section")
        };
        let Some(forecast) = budget.forecast.clone() else {
            panic!("no forecast: {budget:?}")
        };
        assert_eq!(budget.month, "2025-04");
        assert!((budget.month_to_date - 1000.0).abs() < 1e-6);
        assert!((budget.burn_pct - 50.0).abs() < 1e-6);
        assert!((budget.month_elapsed_pct - 100.0 / 3.0).abs() < 1e-6);
        // 30 days at 100 a day.
        assert!((forecast.month_end - 3000.0).abs() < 1e-6, "{budget:?}");
        assert!((forecast.pct - 150.0).abs() < 1e-6, "{budget:?}");
        assert!(forecast.over_budget);
        assert!(forecast.method.starts_with("linear"), "{}", forecast.method);
    }

    fn april(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 4, day).unwrap_or_default()
    }

    /// April 2025's forecast at `as_of` from `daily` (the month-to-date is their sum).
    fn april_forecast(daily: &[DailySpend], as_of: &str) -> (f64, String) {
        let mtd: f64 = daily.iter().map(|d| d.cost).sum();
        forecast_month_end(
            daily,
            t(as_of),
            april(1),
            april(1) + Duration::days(30),
            mtd,
        )
    }

    #[test]
    fn forecast_follows_a_rising_trend() {
        let daily: Vec<DailySpend> = (0..10)
            .map(|i| DailySpend {
                date: april(1 + i),
                cost: 10.0 * f64::from(i + 1),
            })
            .collect();
        let (f, _) = april_forecast(&daily, "2025-04-11T00:00:00Z");
        // Days 11..=30 cost 110..=300: 20 days averaging 205.
        assert!((f - (550.0 + 4100.0)).abs() < 1e-6, "{f}");
    }

    /// 50 spent on the 1st of April.
    const FIRST_DAY: [DailySpend; 1] = [DailySpend {
        date: NaiveDate::from_ymd_opt(2025, 4, 1).expect("a date"),
        cost: 50.0,
    }];

    #[test]
    fn run_rate_is_used_before_two_complete_days() {
        let (f, method) = april_forecast(&FIRST_DAY, "2025-04-01T12:00:00Z");
        assert!((f - 3000.0).abs() < 1e-6, "{f}");
        assert!(method.starts_with("run rate"));
    }

    #[test]
    fn the_first_hours_of_a_month_forecast_only_what_was_spent() {
        // 50 spent in the first hour would be a run rate of 36,000 for the month.
        let (f, method) = april_forecast(&FIRST_DAY, "2025-04-01T01:00:00Z");
        assert!((f - 50.0).abs() < 1e-6, "{f}");
        assert!(method.starts_with("insufficient data"), "{method}");
    }

    #[test]
    fn the_forecast_keeps_the_reports_json_field_names_and_reads_back() {
        let mut b = CostReportBuilder::new(ReportSettings {
            monthly_budget: Some(100.0),
            as_of: Some(t("2025-04-11T00:00:00Z")),
            ..ReportSettings::default()
        });
        b.add_line(&focus("2025-04-01T00:00:00Z", "2025-04-02T00:00:00Z", 10.0))
            .ok();
        let mut report = b.finish(t("2025-04-11T00:00:00Z"));
        let unmade = serde_json::to_value(&report).unwrap_or_default();
        assert!(
            unmade["budget"].get("forecast_month_end").is_none(),
            "{unmade}"
        );
        forecast_budget(&mut report);
        let made = serde_json::to_value(&report).unwrap_or_default();
        for key in [
            "forecast_month_end",
            "forecast_pct",
            "forecast_over_budget",
            "method",
        ] {
            assert!(made["budget"].get(key).is_some(), "{key}: {made}");
        }
        let back: CostReport = serde_json::from_value(made).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.budget, report.budget);
    }
}
