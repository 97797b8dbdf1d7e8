//! `budget.overrun_forecast`: the month's spend forecast past `[cost] monthly_budget`, from the
//! cost report (its own schedule, not the fleet's). Imports model and config.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::cost::CostReport;
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
        let b = report.budget.as_ref().filter(|b| b.forecast_over_budget)?;
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
                b.forecast_month_end,
                report.currency,
                b.forecast_pct,
                b.monthly_budget,
                b.burn_pct,
                b.month_elapsed_pct
            ),
            json!({"month": b.month, "budget": b.monthly_budget, "month_to_date": b.month_to_date, "forecast": b.forecast_month_end,
                "forecast_pct": b.forecast_pct, "method": b.method}),
            first,
            Some(
                "find the groups growing fastest (fleetdeck cost --by team) and idle GPUs to reclaim",
            ),
        ))
    }
}
