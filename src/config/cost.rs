//! `[cost]`: OpenCost / FOCUS sources, prices and the budget.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    pub opencost_url: String,
    /// A PEM file of the private CA behind OpenCost's https:// URL; empty: none.
    pub opencost_ca_file: String,
    /// FOCUS exports the cockpit and headless read every round, beside OpenCost.
    pub focus: Vec<String>,
    /// How often the cost source makes a report.
    #[serde(with = "crate::model::duration_serde")]
    pub interval: Duration,
    pub monthly_budget: Option<f64>,
    pub team_label: String,
    pub idle_gpu_threshold_pct: f64,
    /// How the FOCUS exports write their dates when not in ISO 8601 (strftime); empty: ISO.
    pub focus_date_format: String,
}

impl CostConfig {
    /// `focus_date_format`, checked by `validate`.
    pub fn focus_date_format(&self) -> Option<crate::model::cost::DateFormat> {
        let f = self.focus_date_format.trim();
        (!f.is_empty())
            .then(|| crate::model::cost::DateFormat::parse(f).ok())
            .flatten()
    }
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            opencost_url: String::new(),
            opencost_ca_file: String::new(),
            focus: Vec::new(),
            interval: Duration::from_secs(300),
            monthly_budget: None,
            team_label: "team".into(),
            idle_gpu_threshold_pct: 10.0,
            focus_date_format: String::new(),
        }
    }
}
