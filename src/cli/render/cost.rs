//! The human-readable form of a cost report, for `fleetdeck cost --output table`: totals, the
//! chosen breakdown, GPUs, idle and spot, budget, and every row that was skipped and why.
//! Imports model.

use std::fmt::Write;

use crate::model::cost::{CostGroupBy, CostReport, SpendGroup};

/// Skipped rows printed one by one; the JSON output lists more.
const SKIPPED_SHOWN: usize = 20;
/// Groups printed per breakdown; the rest are summed on one line.
const GROUPS_SHOWN: usize = 25;

/// Names and messages come from the clusters and sources: shown through
/// `safe::visible_lines`, so that none can drive the terminal.
pub fn render_table(r: &CostReport) -> String {
    super::safe::visible_lines(&render_table_unescaped(r)).into_owned()
}

fn render_table_unescaped(r: &CostReport) -> String {
    let mut o = String::new();
    let cur = &r.currency;
    let money = |v: f64| format!("{v:.2}");
    match &r.window {
        Some(w) => {
            let _ = writeln!(
                o,
                "COST {}  window {} ({} – {} UTC)",
                cur,
                w.spec,
                w.start.format("%Y-%m-%d %H:%M"),
                w.end.format("%Y-%m-%d %H:%M")
            );
        }
        None => {
            let _ = writeln!(o, "COST {cur}");
        }
    }
    let _ = writeln!(
        o,
        "total effective {}  billed {}  list {}  ({} lines)",
        money(r.totals.effective_cost),
        money(r.totals.billed_cost),
        money(r.totals.list_cost),
        r.totals.lines
    );
    for s in &r.sources {
        let _ = writeln!(
            o,
            "  {:<8} {}  effective {}  rows read {} used {} outside window {} skipped {}",
            s.kind.name(),
            s.location,
            money(s.effective_cost),
            s.rows.read,
            s.rows.used,
            s.rows.outside_window,
            s.rows.skipped
        );
    }

    let title = match r.group_by {
        CostGroupBy::Namespace => "NAMESPACE",
        CostGroupBy::Team => "TEAM",
        CostGroupBy::Service => "SERVICE",
    };
    groups(&mut o, title, r.primary_groups());
    if r.by_cluster.len() > 1
        || r.by_cluster
            .first()
            .is_some_and(|g| g.key != "(unattributed)")
    {
        groups(&mut o, "CLUSTER", &r.by_cluster);
    }

    if !r.gpu_by_type.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<24} {:>12} {:>14} {:>12}",
            "GPU TYPE", "GPU-HOURS", "GPU COST", "PER GPU-H"
        );
        for g in &r.gpu_by_type {
            let _ = writeln!(
                o,
                "{:<24} {:>12.1} {:>14} {:>12}",
                g.gpu_type,
                g.gpu_hours,
                money(g.gpu_cost),
                g.cost_per_gpu_hour.map_or("-".to_string(), money)
            );
        }
    }

    let i = &r.idle_gpu;
    let _ = writeln!(
        o,
        "\nIDLE GPU  unallocated {} ({:.1} GPU-hours)  allocated under {}% utilisation {}",
        money(i.unallocated_cost),
        i.unallocated_gpu_hours,
        i.utilisation_threshold_pct,
        i.underutilised_cost
            .map_or("unknown (no utilisation given)".to_string(), money)
    );
    let s = &r.spot;
    let _ = writeln!(
        o,
        "SPOT SAVINGS  {}  (FOCUS {} over {} dynamic rows; OpenCost {} over {} spot nodes)",
        money(s.total),
        money(s.focus_savings),
        s.focus_rows,
        money(s.opencost_savings),
        s.opencost_spot_nodes
    );
    if s.focus_rows_without_list_cost > 0 {
        let _ = writeln!(
            o,
            "  {} dynamic rows have no ListCost: their savings are unknown",
            s.focus_rows_without_list_cost
        );
    }
    if !s.opencost_unpriced_nodes.is_empty() {
        let _ = writeln!(
            o,
            "  no on-demand peer to price against: {}",
            s.opencost_unpriced_nodes.join(", ")
        );
    }

    if let Some(b) = &r.budget {
        let forecast = match &b.forecast {
            Some(f) => format!(
                "forecast {} ({:.1}%){}",
                money(f.month_end),
                f.pct,
                if f.over_budget { "  OVER BUDGET" } else { "" }
            ),
            None => "no forecast made".to_string(),
        };
        let _ = writeln!(
            o,
            "\nBUDGET {}  {} of {} spent ({:.1}%, {:.1}% of the month gone)  {forecast}",
            b.month,
            money(b.month_to_date),
            money(b.monthly_budget),
            b.burn_pct,
            b.month_elapsed_pct,
        );
        if let Some(f) = &b.forecast {
            let _ = writeln!(o, "  from {} spend; {}", b.basis.name(), f.method);
        }
    }

    let rows = &r.rows;
    let _ = writeln!(
        o,
        "\nROWS  read {}  used {}  outside window {}  skipped {}",
        rows.read, rows.used, rows.outside_window, rows.skipped
    );
    for row in rows.skipped_rows.iter().take(SKIPPED_SHOWN) {
        let _ = writeln!(o, "  skipped {row}");
    }
    let more = rows.skipped - rows.skipped_rows.len().min(SKIPPED_SHOWN) as u64;
    if more > 0 {
        let _ = writeln!(o, "  … and {more} more skipped (see --output json)");
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

fn groups(o: &mut String, title: &str, groups: &[SpendGroup]) {
    let _ = writeln!(
        o,
        "\n{:<32} {:>14} {:>14} {:>7} {:>11}",
        title, "EFFECTIVE", "BILLED", "SHARE", "GPU-HOURS"
    );
    for g in groups.iter().take(GROUPS_SHOWN) {
        let _ = writeln!(
            o,
            "{:<32} {:>14.2} {:>14.2} {:>6.1}% {:>11.1}",
            g.key, g.effective_cost, g.billed_cost, g.share_pct, g.gpu_hours
        );
    }
    if groups.len() > GROUPS_SHOWN {
        let rest = &groups[GROUPS_SHOWN..];
        let _ = writeln!(
            o,
            "{:<32} {:>14.2} {:>14.2} {:>6.1}% {:>11.1}",
            format!("({} more)", rest.len()),
            rest.iter().map(|g| g.effective_cost).sum::<f64>(),
            rest.iter().map(|g| g.billed_cost).sum::<f64>(),
            rest.iter().map(|g| g.share_pct).sum::<f64>(),
            rest.iter().map(|g| g.gpu_hours).sum::<f64>()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::{
        CostLine, CostReportBuilder, CostSourceKind, ReportSettings, SkippedRow,
    };
    // Named `t` where a test reads as a timeline of instants.
    use crate::model::utc as t;

    #[test]
    fn table_leads_with_the_chosen_grouping_and_lists_skipped_rows() {
        let mut b = CostReportBuilder::new(ReportSettings {
            group_by: CostGroupBy::Team,
            monthly_budget: Some(100.0),
            ..ReportSettings::default()
        });
        b.begin_source(CostSourceKind::Focus, "bill.csv");
        let mut l = CostLine::new(
            CostSourceKind::Focus,
            t("2025-04-01T00:00:00Z"),
            t("2025-04-02T00:00:00Z"),
            42.0,
            "USD",
        );
        l.team = Some("research".into());
        b.add_line(&l).ok();
        b.skip(SkippedRow {
            location: "bill.csv:7".into(),
            reason: "BilledCost \"x\" is not a number".into(),
        });
        let table = render_table(&b.finish(t("2025-04-02T00:00:00Z")));
        assert!(table.contains("\nTEAM "), "{table}");
        assert!(table.contains("research"), "{table}");
        assert!(table.contains("skipped bill.csv:7: BilledCost"), "{table}");
        assert!(
            table.contains("ROWS  read 2  used 1  outside window 0  skipped 1"),
            "{table}"
        );
        assert!(table.contains("BUDGET 2025-04"), "{table}");
    }
}
