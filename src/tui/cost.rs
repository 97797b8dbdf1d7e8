//! The Cost pane: the latest cost report — spend by its primary group, GPU-hours and cost per
//! GPU-hour by GPU type, idle-GPU cost, spot savings, and month-to-date and month-end forecast
//! against the budget with the daily spend as bars; without a cost source, how to configure
//! one. Draws the report it is given; imports model, keymap, theme and pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell, Gauge, Paragraph, Row, Table, Wrap};

use super::format::{money, whole};
use super::keymap::Action;
use super::pane::{Pane, TableView, ViewCtx, sort_rows};
use super::theme::Role;
use super::widgets::{clamped_page, titled_block, visible_rows, wrapped_rows};
use crate::model::cost::{BudgetBurn, CostGroupBy, CostReport, SpendGroup};

/// The Cost pane's state between frames: the spend table's selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostPane {
    pub view: TableView,
    page: usize,
}

fn group_name(g: CostGroupBy) -> &'static str {
    match g {
        CostGroupBy::Namespace => "NAMESPACE",
        CostGroupBy::Team => "TEAM",
        CostGroupBy::Service => "SERVICE",
    }
}

/// A gauge's ratio from a percentage; out-of-range or undefined values are pinned.
fn ratio(pct: f64) -> f64 {
    if pct.is_finite() {
        (pct / 100.0).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn spend_cells(g: &SpendGroup) -> Vec<String> {
    vec![
        g.key.clone(),
        format!("{:.2}", g.effective_cost),
        format!("{:.1}%", g.share_pct),
        format!("{:.1}", g.gpu_hours),
    ]
}

impl CostPane {
    /// The primary groups' cells in display order (filtered, then sorted).
    fn rows(&self, report: &CostReport) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = report
            .primary_groups()
            .iter()
            .map(spend_cells)
            .filter(|cells| self.view.keeps(cells))
            .collect();
        sort_rows(&mut rows, self.view.sort);
        rows
    }

    /// The selected group's key (a namespace, team or service).
    pub fn selected_group(&self, ctx: &ViewCtx) -> Option<String> {
        let report = ctx.cost?;
        self.rows(report)
            .into_iter()
            .nth(self.view.selected)
            .and_then(|cells| cells.into_iter().next())
    }

    /// Applies an action; returns whether anything changed.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        let Some(report) = ctx.cost else {
            return false;
        };
        let before = self.view.clone();
        let rows = self.rows(report).len();
        let page = self.page.max(1) as isize;
        match action {
            a if self.view.navigate(a, rows, page, 4) => {}
            _ => {}
        }
        self.view != before
    }

    /// Shows only spend groups with `f` in some cell (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.view.filter = f.to_string();
        self.view.selected = 0;
        self.view.offset = 0;
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let Some(report) = ctx.cost else {
            draw_no_source(frame, area, ctx);
            return;
        };
        // The notes on how idle cost, spot savings and the forecast were worked out are long
        // prose: they get the full width and the rows they need, never a cut.
        let width = usize::from(area.width);
        let notes = idle_notes(report);
        let note_rows = wrapped_rows(&notes, width);
        let method_rows = report.budget.as_ref().map_or(1, |b| {
            wrapped_rows(forecast_method(b), width.saturating_sub(2))
        });
        let rows = |n: usize| Constraint::Length(u16::try_from(n).unwrap_or(u16::MAX));
        let [head, middle, notes_area, bottom] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(4),
            rows(note_rows),
            rows(method_rows + 6),
        ])
        .areas(area);
        draw_head(frame, head, ctx, report);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(middle);
        self.draw_spend(frame, left, ctx, report);
        let inner_width = usize::from(right.width.saturating_sub(2));
        let idle_rows: usize = idle_lines(report, ctx)
            .iter()
            .map(|l| wrapped_rows(&line_text(l), inner_width))
            .sum();
        let [gpu_area, idle_area] =
            Layout::vertical([Constraint::Fill(1), rows(idle_rows + 2)]).areas(right);
        draw_gpu_types(frame, gpu_area, ctx, report);
        draw_idle_and_spot(frame, idle_area, ctx, report);
        frame.render_widget(
            Paragraph::new(Span::styled(notes, ctx.theme.style(Role::Muted)))
                .wrap(Wrap { trim: false }),
            notes_area,
        );
        draw_budget(frame, bottom, ctx, report);
    }

    fn draw_spend(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx, report: &CostReport) {
        let theme = ctx.theme;
        let rows = self.rows(report);
        let mut title = format!(
            " Spend by {} ({}) ",
            group_name(report.group_by).to_lowercase(),
            rows.len()
        );
        if !self.view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let empty = || {
            if report.primary_groups().is_empty() {
                "no spend in this report"
            } else {
                "no group matches the filter"
            }
        };
        let Some(height) = clamped_page(frame, inner, rows.len(), &mut self.view, theme, empty)
        else {
            return;
        };
        self.page = height;
        let visible = visible_rows(&rows, &self.view, height, theme, |cells| {
            Row::new(cells.iter().map(|c| Cell::from(c.clone())))
        });
        let cost_header = format!("COST {}", report.currency);
        let table = Table::new(
            visible,
            [
                Constraint::Min(10),
                Constraint::Length(12),
                Constraint::Length(6),
                Constraint::Length(8),
            ],
        )
        .header(
            Row::new([
                group_name(report.group_by),
                cost_header.as_str(),
                "SHARE",
                "GPU-H",
            ])
            .style(theme.style(Role::Header)),
        )
        .column_spacing(1);
        frame.render_widget(table, inner);
    }
}

fn draw_no_source(frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
    let theme = ctx.theme;
    let block = titled_block(" Cost ", theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = vec![
        Line::styled("no cost source", theme.style(Role::Warning)),
        Line::default(),
        Line::from("Configure one to see spend, GPU-hours, idle cost and the budget forecast:"),
        Line::from(vec![
            Span::raw("  • OpenCost: set "),
            Span::styled(
                "[cost] opencost_url = \"http://opencost.opencost:9003\"",
                theme.style(Role::Accent),
            ),
            Span::raw(" in the config file"),
        ]),
        Line::from(vec![
            Span::raw("  • a FOCUS billing export: "),
            Span::styled("fleetdeck cost --focus FILE", theme.style(Role::Accent)),
        ]),
        Line::from(vec![
            Span::raw("  • a budget for burn and forecast: "),
            Span::styled("[cost] monthly_budget", theme.style(Role::Accent)),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn draw_head(frame: &mut Frame, area: Rect, ctx: &ViewCtx, report: &CostReport) {
    let theme = ctx.theme;
    let cur = report.currency.as_str();
    let window = report
        .window
        .as_ref()
        .map_or("all rows", |w| w.spec.as_str());
    let mut first = vec![
        Span::styled("Cost ", theme.style(Role::Title)),
        Span::raw(format!(
            "over {window} · {} effective ({} billed)",
            money(report.totals.effective_cost, cur),
            money(report.totals.billed_cost, cur)
        )),
    ];
    if report.rows.skipped > 0 {
        first.push(Span::styled(
            format!(" · {} rows skipped", report.rows.skipped),
            theme.style(Role::Warning),
        ));
    }
    let sources: Vec<String> = report
        .sources
        .iter()
        .map(|s| format!("{} {}", s.kind.name(), s.location))
        .collect();
    let second = Line::styled(
        if sources.is_empty() {
            "sources: none".to_string()
        } else {
            format!("sources: {}", sources.join(" · "))
        },
        theme.style(Role::Muted),
    );
    frame.render_widget(Paragraph::new(vec![Line::from(first), second]), area);
}

fn draw_gpu_types(frame: &mut Frame, area: Rect, ctx: &ViewCtx, report: &CostReport) {
    let theme = ctx.theme;
    let block = titled_block(
        format!(" GPU-hours by type ({}) ", report.gpu_by_type.len()),
        theme,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if report.gpu_by_type.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no GPU lines in this report",
                theme.style(Role::Muted),
            )),
            inner,
        );
        return;
    }
    let cur = report.currency.as_str();
    let height = usize::from(inner.height.saturating_sub(1));
    let rows = report.gpu_by_type.iter().take(height).map(|g| {
        Row::new([
            g.gpu_type.clone(),
            format!("{:.1}", g.gpu_hours),
            money(g.gpu_cost, cur),
            g.cost_per_gpu_hour
                .map_or_else(|| "-".to_string(), |r| money(r, cur)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(["GPU TYPE", "GPU-H", "COST", "PER GPU-H"]).style(theme.style(Role::Header)))
    .column_spacing(1);
    frame.render_widget(table, inner);
}

fn draw_idle_and_spot(frame: &mut Frame, area: Rect, ctx: &ViewCtx, report: &CostReport) {
    let block = titled_block(" Idle GPUs and spot ", ctx.theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(idle_lines(report, ctx)).wrap(Wrap { trim: false }),
        inner,
    );
}

/// The idle-GPU and spot figures, and how they were worked out.
fn idle_lines(report: &CostReport, ctx: &ViewCtx) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let cur = report.currency.as_str();
    let idle = &report.idle_gpu;
    let label = |s: &str| Span::styled(format!("{s:<11}"), theme.style(Role::Header));
    let under = match idle.underutilised_cost {
        Some(c) => Span::styled(
            format!(
                "{} on allocated GPUs under {:.0}% busy",
                money(c, cur),
                idle.utilisation_threshold_pct
            ),
            theme.style(if c > 0.0 { Role::Warning } else { Role::Ok }),
        ),
        None => Span::styled(
            "allocated-but-idle cost unknown (no GPU utilisation)",
            theme.style(Role::Muted),
        ),
    };
    let spot = &report.spot;
    let mut spot_line = vec![
        label("spot saved"),
        Span::styled(money(spot.total, cur), theme.style(Role::Ok)),
        Span::raw(format!(
            " ({} spot nodes, {} FOCUS spot rows)",
            spot.opencost_spot_nodes, spot.focus_rows
        )),
    ];
    if !spot.opencost_unpriced_nodes.is_empty() {
        spot_line.push(Span::styled(
            format!(
                " · {} nodes with no on-demand peer",
                spot.opencost_unpriced_nodes.len()
            ),
            theme.style(Role::Muted),
        ));
    }
    vec![
        Line::from(vec![label("idle GPUs"), under]),
        Line::from(vec![
            label(""),
            Span::raw(format!(
                "{} on unallocated capacity ({:.1} GPU-h)",
                money(idle.unallocated_cost, cur),
                idle.unallocated_gpu_hours
            )),
        ]),
        Line::from(spot_line),
    ]
}

/// A line's text, spans joined.
fn line_text(line: &Line) -> String {
    line.spans.iter().map(|s| s.content.as_ref()).collect()
}

/// How the idle cost and the spot savings were worked out.
fn idle_notes(report: &CostReport) -> String {
    format!("{} · {}", report.idle_gpu.method, report.spot.method)
}

fn draw_budget(frame: &mut Frame, area: Rect, ctx: &ViewCtx, report: &CostReport) {
    let theme = ctx.theme;
    let Some(budget) = &report.budget else {
        let block = titled_block(" Budget ", theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no monthly budget: set [cost] monthly_budget to see burn and the month-end forecast",
                theme.style(Role::Muted),
            ))
            .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    };
    let block = titled_block(format!(" Budget {} ", budget.month), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let method_rows = wrapped_rows(forecast_method(budget), usize::from(inner.width));
    let [mtd_area, forecast_area, method_area, bars_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(u16::try_from(method_rows).unwrap_or(u16::MAX)),
        Constraint::Min(0),
    ])
    .areas(inner);
    let cur = report.currency.as_str();
    let ahead = budget.burn_pct > budget.month_elapsed_pct;
    budget_row(
        frame,
        mtd_area,
        budget.burn_pct,
        format!(
            "month to date {} of {} ({}%) · {}% of the month gone",
            money(budget.month_to_date, cur),
            money(budget.monthly_budget, cur),
            whole(budget.burn_pct),
            whole(budget.month_elapsed_pct)
        ),
        theme.style(if ahead {
            Role::Warning
        } else {
            Role::ChartPrimary
        }),
    );
    match &budget.forecast {
        Some(f) => budget_row(
            frame,
            forecast_area,
            f.pct,
            format!(
                "forecast month end {} ({}% of budget{})",
                money(f.month_end, cur),
                whole(f.pct),
                if f.over_budget { ", OVER" } else { "" },
            ),
            theme.style(if f.over_budget {
                Role::Critical
            } else {
                Role::Ok
            }),
        ),
        None => frame.render_widget(
            Paragraph::new(Span::styled(NO_FORECAST, theme.style(Role::Muted))),
            forecast_area,
        ),
    }
    frame.render_widget(
        Paragraph::new(Span::styled(
            forecast_method(budget).to_string(),
            theme.style(Role::Muted),
        ))
        .wrap(Wrap { trim: false }),
        method_area,
    );
    draw_daily(frame, bars_area, ctx, budget);
}

/// What a budget without its forecast says instead (a report that did not pass the budget
/// stage; every face's cost rounds do).
const NO_FORECAST: &str = "forecast month end: not made for this report";

/// How the forecast was made, or that it was not.
fn forecast_method(budget: &crate::model::cost::BudgetBurn) -> &str {
    budget.forecast.as_ref().map_or("", |f| f.method.as_str())
}

/// A short gauge with its percentage, then what it measures beside it: a label drawn over a
/// gauge is cut where the gauge is narrower than the label (`█████forecast`).
fn budget_row(
    frame: &mut Frame,
    area: Rect,
    pct: f64,
    label: String,
    style: ratatui::style::Style,
) {
    let bar = area.width.min(BUDGET_BAR_WIDTH);
    let [gauge_area, _, label_area] = Layout::horizontal([
        Constraint::Length(bar),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(
        Gauge::default()
            .ratio(ratio(pct))
            .label(format!("{}%", whole(pct)))
            .gauge_style(style),
        gauge_area,
    );
    frame.render_widget(Paragraph::new(Span::styled(label, style)), label_area);
}

/// The budget gauges' width: enough to read a share at a glance, leaving the row to the words.
const BUDGET_BAR_WIDTH: u16 = 20;

/// The latest days that fit, one bar each.
fn draw_daily(frame: &mut Frame, area: Rect, ctx: &ViewCtx, budget: &BudgetBurn) {
    if area.height == 0 || budget.daily.is_empty() {
        return;
    }
    let fits = usize::from(area.width / 3).max(1);
    let skip = budget.daily.len().saturating_sub(fits);
    let bars: Vec<Bar> = budget.daily[skip..]
        .iter()
        .map(|d| {
            Bar::default()
                .value(d.cost.max(0.0).round() as u64)
                .text_value(String::new())
                .label(Line::from(d.date.format("%d").to_string()))
        })
        .collect();
    let chart = BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(2)
        .bar_gap(1)
        .bar_style(ctx.theme.style(Role::ChartSecondary))
        .label_style(ctx.theme.style(Role::Muted));
    frame.render_widget(chart, area);
}

impl Pane for CostPane {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        CostPane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        CostPane::handle(self, action, ctx)
    }
}

#[cfg(test)]
mod tests {
    use crate::tui::pane::testing::lines;
    use chrono::{DateTime, Utc};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    use super::*;
    use crate::model::Snapshot;
    use crate::model::cost::{
        CostLine, CostReportBuilder, CostSourceKind, ReportSettings, ResourceUsage,
    };
    use crate::tui::theme::Theme;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn report() -> CostReport {
        let mut b = CostReportBuilder::new(ReportSettings {
            monthly_budget: Some(2000.0),
            as_of: Some(at("2025-04-11T00:00:00Z")),
            ..ReportSettings::default()
        });
        b.begin_source(CostSourceKind::OpenCost, "http://opencost:9003");
        for day in 1..=10 {
            for (ns, cost) in [("serving", 70.0), ("training", 30.0)] {
                let mut l = CostLine::new(
                    CostSourceKind::OpenCost,
                    at(&format!("2025-04-{day:02}T00:00:00Z")),
                    at(&format!("2025-04-{:02}T00:00:00Z", day + 1)),
                    cost,
                    "USD",
                );
                l.namespace = Some(ns.into());
                l.gpu_type = Some("NVIDIA-H100-80GB-HBM3".into());
                l.gpu_hours = 10.0;
                l.gpu_cost = cost;
                l.usage = Some(ResourceUsage {
                    gpu_hours: 10.0,
                    gpu_cost: cost,
                    ..ResourceUsage::default()
                });
                b.add_line(&l).unwrap_or_else(|e| panic!("{e}"));
                // OpenCost's month-to-date series feeds the budget separately.
                b.add_daily(&l);
            }
        }
        let mut report = b.finish(at("2025-04-11T00:00:00Z"));
        if let Some(budget) = report.budget.as_mut() {
            budget.forecast = Some(crate::tui::nodes::fixtures::ten_days_at_100_forecast());
        }
        report
    }

    fn render(pane: &mut CostPane, ctx: &ViewCtx, w: u16, h: u16) -> Buffer {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
        term.draw(|f| pane.draw(f, f.area(), ctx))
            .unwrap_or_else(|e| panic!("{e}"));
        term.backend().buffer().clone()
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme, cost: Option<&'a CostReport>) -> ViewCtx<'a> {
        ViewCtx {
            cost,
            ..crate::tui::pane::testing::view_ctx(snap, theme, at("2025-04-10T12:00:00Z"))
        }
    }

    #[test]
    fn without_a_cost_source_the_pane_says_how_to_configure_one() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme, None);
        let mut pane = CostPane::default();
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(text.contains("no cost source"), "{text}");
        assert!(text.contains("[cost] opencost_url"), "{text}");
        assert!(text.contains("fleetdeck cost --focus FILE"), "{text}");
        assert!(!pane.handle(Action::Down, &ctx));
    }

    #[test]
    fn the_report_shows_spend_by_group_gpu_types_and_the_forecast_over_budget() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let report = report();
        let ctx = ctx(&snap, &theme, Some(&report));
        let mut pane = CostPane::default();
        let buf = render(&mut pane, &ctx, 120, 30);
        let all = lines(&buf);
        let text = all.join("\n");
        for h in [
            "NAMESPACE",
            "COST USD",
            "SHARE",
            "GPU-H",
            "GPU TYPE",
            "PER GPU-H",
        ] {
            assert!(text.contains(h), "header {h} missing:\n{text}");
        }
        assert!(
            all.iter()
                .any(|l| l.contains("serving") && l.contains("700.00") && l.contains("70.0%")),
            "{text}"
        );
        assert!(text.contains("NVIDIA H100"), "{text}");
        assert!(text.contains("$1,000 of $2,000 (50%)"), "{text}");
        assert!(
            text.contains("forecast month end $3,000 (150% of budget, OVER)"),
            "{text}"
        );
        assert!(text.contains("spot saved"), "{text}");
        assert!(text.contains("opencost http://opencost:9003"), "{text}");
        let y = all
            .iter()
            .position(|l| l.contains("forecast month end"))
            .unwrap_or_else(|| panic!("{text}"));
        let over = (0..buf.area.width)
            .map(|x| buf[(x, y as u16)].fg)
            .chain((0..buf.area.width).map(|x| buf[(x, y as u16)].bg))
            .any(|c| Some(c) == theme.style(Role::Critical).fg);
        assert!(over, "an over-budget forecast is drawn critical");
    }

    #[test]
    fn the_budget_labels_and_the_notes_are_whole_at_100_by_30_and_200_by_50() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let report = report();
        let ctx = ctx(&snap, &theme, Some(&report));
        let budget = report.budget.clone().unwrap_or_else(|| panic!("a budget"));
        for (w, h) in [(100, 30), (200, 50)] {
            let text = lines(&render(&mut CostPane::default(), &ctx, w, h)).join("\n");
            let flat = text
                .lines()
                .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                text.contains("forecast month end $3,000 (150% of budget, OVER)"),
                "{w}×{h}: {text}"
            );
            assert!(
                !text.contains("█forecast"),
                "the label is not under the bar: {text}"
            );
            for note in [
                forecast_method(&budget),
                report.idle_gpu.method.as_str(),
                report.spot.method.as_str(),
            ] {
                let words = note.split_whitespace().collect::<Vec<_>>().join(" ");
                let flat_words = flat.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat_words.contains(&words),
                    "{w}×{h}: {note:?} cut:\n{text}"
                );
            }
        }
    }

    #[test]
    fn the_spend_table_sorts_by_cost_and_filters() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let report = report();
        let ctx = ctx(&snap, &theme, Some(&report));
        let mut pane = CostPane::default();
        assert!(pane.handle(Action::SortNext, &ctx));
        assert!(pane.handle(Action::SortNext, &ctx));
        assert_eq!(pane.selected_group(&ctx).as_deref(), Some("training"));
        assert!(pane.handle(Action::SortReverse, &ctx));
        assert_eq!(pane.selected_group(&ctx).as_deref(), Some("serving"));
        pane.set_filter("train");
        assert_eq!(pane.selected_group(&ctx).as_deref(), Some("training"));
        assert!(!pane.handle(Action::Down, &ctx));
    }

    #[test]
    fn money_groups_thousands_and_keeps_cents_for_small_amounts() {
        assert_eq!(money(1234567.4, "USD"), "$1,234,567");
        assert_eq!(money(3.251, "USD"), "$3.25");
        assert_eq!(money(-250.0, "EUR"), "-250 EUR");
    }

    #[test]
    fn a_tiny_terminal_renders_without_panicking() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let report = report();
        render(&mut CostPane::default(), &ctx(&snap, &theme, None), 20, 5);
        render(
            &mut CostPane::default(),
            &ctx(&snap, &theme, Some(&report)),
            20,
            5,
        );
    }
}
