//! The Overview pane: the fleet at a glance — endpoints within SLO or burning, spend today
//! against the budget, open signals and open incidents by severity, the noise (signals raised
//! and incidents opened over the last hour), GPU source status, the worst open incidents, and
//! one row per cluster (nodes, cordoned, spot share, GPUs, pods, signals, sync state). Draws
//! the snapshot it is given; imports model, keymap, theme, pane, noise and the sibling panes'
//! small helpers.

use std::sync::Arc;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};

use super::format::{
    compact_age, compact_age_secs, money, pending_text, severity_label, severity_text, whole,
};
use super::keymap::Action;
use super::noise::NoiseRate;
use super::pane::{AutomationView, Pane, TableView, ViewCtx, in_scope, sort_rows};
use super::signal_groups::incident_title_now;
use super::theme::{Role, Theme};
use super::widgets::{
    clamped_page, kill_style, middle_ellipsis, role_row, severity_role, status_role, titled_block,
    visible_rows,
};
use crate::model::endpoint::BurnSeverity;
use crate::model::incident::Incident;
use crate::model::signal::Severity;
use crate::model::{ClusterSnapshot, SyncState};

/// Open incidents listed under the summary, worst first.
const TOP_INCIDENTS: usize = 3;

const HEADERS: [&str; 10] = [
    "CLUSTER",
    "NODES",
    "CORDONED",
    "SPOT",
    "GPUS REQ",
    "GPU OK",
    "GPU UTIL",
    "PODS R/P/F",
    "SIGNALS",
    "SOURCES",
];

/// The Overview pane's state between frames: the cluster table's selection, and the
/// incidents the app last read from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverviewPane {
    pub view: TableView,
    page: usize,
    incidents: Arc<Vec<Incident>>,
    /// The executor's state, when the cockpit has one.
    automation: Option<Arc<AutomationView>>,
    /// Signals raised and incidents opened over the last hour; `None` before the first
    /// evaluation.
    noise: Option<NoiseRate>,
}

/// One cluster's row: its cells and the role each is drawn in.
struct ClusterRow {
    cells: Vec<String>,
    roles: Vec<Role>,
}

/// How bad a sync state is, for picking the one a summary shows.
fn sync_rank(s: &SyncState) -> u8 {
    match s {
        SyncState::Synced | SyncState::NotServed => 0,
        SyncState::Listing { .. } => 1,
        SyncState::Forbidden { .. } => 2,
        SyncState::Reconnecting { .. } => 3,
        SyncState::Unreachable { .. } => 4,
    }
}

/// `synced`, or the worst resource's state, and the role to draw it in.
fn sync_summary(c: &ClusterSnapshot) -> (String, Role) {
    let Some(worst) = c.sync.iter().max_by_key(|s| sync_rank(&s.state)) else {
        return ("not started".into(), Role::Muted);
    };
    match &worst.state {
        SyncState::Synced | SyncState::NotServed => ("synced".into(), Role::Ok),
        state => {
            let role = match state {
                SyncState::Listing { .. } => Role::Info,
                SyncState::Unreachable { .. } => Role::Critical,
                _ => Role::Warning,
            };
            (format!("{}: {}", worst.resource, state.describe()), role)
        }
    }
}

fn severity_counts<'a>(signals: impl Iterator<Item = &'a Severity>) -> [usize; 3] {
    let mut counts = [0; 3];
    for s in signals {
        match s {
            Severity::Critical => counts[0] += 1,
            Severity::Warning => counts[1] += 1,
            Severity::Info => counts[2] += 1,
        }
    }
    counts
}

fn cluster_row(c: &ClusterSnapshot, ctx: &ViewCtx) -> ClusterRow {
    let t = &c.totals;
    let gpus: Vec<_> = ctx
        .snapshot
        .gpus
        .iter()
        .filter(|g| g.cluster == c.name)
        .collect();
    let healthy = gpus
        .iter()
        .filter(|g| {
            g.xid_last.is_none()
                && g.ecc_dbe_volatile.unwrap_or(0) == 0
                && g.remapped_rows_uncorrectable.unwrap_or(0) == 0
                && g.remap_failure != Some(true)
        })
        .count();
    let utils: Vec<f64> = gpus.iter().filter_map(|g| g.utilization_pct).collect();
    let (gpu_ok, gpu_ok_role) = if gpus.is_empty() {
        ("-".to_string(), Role::Muted)
    } else {
        let role = if healthy == gpus.len() {
            Role::Ok
        } else {
            Role::Critical
        };
        (format!("{healthy}/{}", gpus.len()), role)
    };
    let util = if utils.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0}%", utils.iter().sum::<f64>() / utils.len() as f64)
    };
    let spot = if t.nodes == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.0}%",
            f64::from(t.nodes_spot) * 100.0 / f64::from(t.nodes)
        )
    };
    let [crit, warn, info] = severity_counts(
        ctx.snapshot
            .incident_signals()
            .filter(|s| s.subject.cluster == c.name)
            .map(|s| &s.severity),
    );
    let blind = ctx
        .snapshot
        .blind_spots(ctx.now, crate::model::blind::SILENT_AFTER)
        .into_iter()
        .find(|b| b.source == crate::model::blind::BlindSource::Cluster && b.cluster == c.name);
    let (signals, signals_role) = match (crit, warn, info) {
        // A cluster nobody can see has unknown signals, not none.
        (0, 0, 0) if blind.is_some() => ("unknown".to_string(), Role::Stale),
        (0, 0, 0) => ("none".to_string(), Role::Ok),
        (0, 0, i) => (format!("{i} info"), Role::Info),
        (0, w, _) => (format!("{w} warn"), Role::Warning),
        (c, 0, _) => (format!("{c} crit"), Role::Critical),
        (c, w, _) => (format!("{c} crit {w} warn"), Role::Critical),
    };
    let (sources, sources_role) = sync_summary(c);
    let nodes_role = if t.nodes_ready < t.nodes {
        Role::Warning
    } else {
        Role::Ok
    };
    let pods_role = if t.pods.failed > 0 || t.pods.pending > 0 {
        Role::Warning
    } else {
        Role::Base
    };
    ClusterRow {
        cells: vec![
            c.name.clone(),
            format!("{}/{}", t.nodes_ready, t.nodes),
            t.nodes_cordoned.to_string(),
            spot,
            format!("{}/{}", t.gpus_requested, t.gpus_allocatable),
            gpu_ok,
            util,
            format!("{}/{}/{}", t.pods.running, t.pods.pending, t.pods.failed),
            signals,
            sources,
        ],
        roles: vec![
            Role::Accent,
            nodes_role,
            if t.nodes_cordoned > 0 {
                Role::Warning
            } else {
                Role::Base
            },
            Role::Base,
            Role::Base,
            gpu_ok_role,
            Role::Base,
            pods_role,
            signals_role,
            sources_role,
        ],
    }
}

fn label(name: &str, theme: &Theme) -> Span<'static> {
    Span::styled(format!("{name:<12}"), theme.style(Role::Header))
}

fn endpoints_line(ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let mut within = 0;
    let mut pages = 0;
    let mut tickets = 0;
    let mut no_slo = 0;
    for e in ctx.snapshot.endpoints.iter().filter(|e| {
        ctx.cluster
            .is_none_or(|c| e.serving.as_ref().is_none_or(|s| s.cluster == c))
    }) {
        let burns = [&e.availability_burn, &e.latency_burn];
        let severity = burns.iter().filter_map(|b| b.as_ref()?.severity()).max();
        match severity {
            Some(BurnSeverity::Page) => pages += 1,
            Some(BurnSeverity::Ticket) => tickets += 1,
            None if burns.iter().any(|b| b.is_some()) => within += 1,
            None => no_slo += 1,
        }
    }
    let burning = pages + tickets;
    let mut spans = vec![
        label("endpoints", theme),
        Span::styled(format!("{within} within SLO"), theme.style(Role::Ok)),
        Span::raw(" · "),
        Span::styled(
            format!("{burning} burning"),
            theme.style(match (pages, tickets) {
                (0, 0) => Role::Muted,
                (0, _) => Role::Warning,
                _ => Role::Critical,
            }),
        ),
    ];
    if burning > 0 {
        spans.push(Span::raw(format!(" ({pages} page, {tickets} ticket)")));
    }
    if no_slo > 0 {
        spans.push(Span::styled(
            format!(" · {no_slo} without SLO data"),
            theme.style(Role::Muted),
        ));
    }
    Line::from(spans)
}

fn spend_line(ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let head = label("spend", theme);
    let Some(report) = ctx.cost else {
        return Line::from(vec![
            head,
            Span::styled(
                "no cost source ([cost] opencost_url, or fleetdeck cost --focus FILE)",
                theme.style(Role::Muted),
            ),
        ]);
    };
    let cur = report.currency.as_str();
    let Some(budget) = &report.budget else {
        return Line::from(vec![
            head,
            Span::raw(format!(
                "{} over {} ",
                money(report.totals.effective_cost, cur),
                report
                    .window
                    .as_ref()
                    .map_or("all rows", |w| w.spec.as_str())
            )),
            Span::styled(
                "(no budget: set [cost] monthly_budget)",
                theme.style(Role::Muted),
            ),
        ]);
    };
    let today = ctx.now.date_naive();
    let spent_today = budget
        .daily
        .iter()
        .find(|d| d.date == today)
        .map_or(0.0, |d| d.cost);
    let forecast = match &budget.forecast {
        Some(f) => Span::styled(
            format!("forecast {} ({}%)", money(f.month_end, cur), whole(f.pct)),
            theme.style(if f.over_budget {
                Role::Critical
            } else {
                Role::Ok
            }),
        ),
        None => Span::styled("no forecast made", theme.style(Role::Muted)),
    };
    Line::from(vec![
        head,
        Span::raw(format!(
            "today {} · month to date {} of {} ({}%) · ",
            money(spent_today, cur),
            money(budget.month_to_date, cur),
            money(budget.monthly_budget, cur),
            whole(budget.burn_pct)
        )),
        forecast,
    ])
}

fn signals_line(ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let counts = severity_counts(
        ctx.snapshot
            .incident_signals()
            .filter(|s| {
                s.subject.cluster.is_empty() || ctx.cluster.is_none_or(|c| s.subject.cluster == c)
            })
            .map(|s| &s.severity),
    );
    let mut spans = vec![label("signals", theme)];
    for (i, (n, sev)) in counts
        .into_iter()
        .zip([Severity::Critical, Severity::Warning, Severity::Info])
        .enumerate()
    {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        let role = if n == 0 {
            Role::Muted
        } else {
            severity_role(sev)
        };
        spans.push(Span::styled(
            format!("{n} {}", format!("{sev:?}").to_lowercase()),
            theme.style(role),
        ));
    }
    let blind = blind_spots_in_view(ctx);
    if !blind.is_empty() {
        let names: Vec<String> = blind.iter().map(|b| b.name()).collect();
        spans.push(Span::styled(
            format!(" · unknown where blind: {}", names.join(", ")),
            theme.style(Role::Stale),
        ));
    }
    if let Some(unknown) = super::format::unknown_since_start(ctx.snapshot) {
        spans.push(Span::styled(
            format!(" · {unknown}"),
            theme.style(Role::Stale),
        ));
    }
    let findings = ctx
        .snapshot
        .findings()
        .filter(|s| {
            s.subject.cluster.is_empty() || ctx.cluster.is_none_or(|c| s.subject.cluster == c)
        })
        .count();
    if findings > 0 {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("{findings} findings (no incident)"),
            theme.style(Role::Info),
        ));
    }
    Line::from(spans)
}

/// `n thing` or `n things`.
fn plural(n: u64, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// `noise  14 signals raised/h (3 critical · 9 warning · 2 info) · 2 incidents opened/h`, or
/// before an hour has passed, what the shorter window saw, named (`in the last 12m: …`):
/// a rate extrapolated from minutes would cry wolf. Fleet-wide: the pipeline counts by kind
/// and severity, not by cluster.
fn noise_line(noise: Option<&NoiseRate>, ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let mut spans = vec![label("noise", theme)];
    let Some(rate) = noise else {
        spans.push(Span::styled("no evaluation yet", theme.style(Role::Muted)));
        return Line::from(spans);
    };
    let (raised, opened, head, tail) = if rate.is_hourly() {
        let (raised, opened) = rate.per_hour();
        let total = raised.iter().sum();
        (
            raised,
            opened,
            format!("{} raised/h", plural(total, "signal")),
            "/h",
        )
    } else {
        let window = compact_age_secs(rate.window.num_seconds());
        let head = format!("in the last {window}: {} raised", rate.raised_total());
        (rate.raised, rate.incidents_opened, head, "")
    };
    let busy = |n: u64, role: Role| theme.style(if n == 0 { Role::Muted } else { role });
    spans.push(Span::styled(head, busy(raised.iter().sum(), Role::Base)));
    spans.push(Span::raw(" ("));
    for (i, (n, sev)) in raised
        .into_iter()
        .zip([Severity::Critical, Severity::Warning, Severity::Info])
        .enumerate()
    {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        spans.push(Span::styled(
            format!("{n} {}", severity_text(sev)),
            busy(n, severity_role(sev)),
        ));
    }
    spans.push(Span::raw(") · "));
    spans.push(Span::styled(
        format!("{} opened{tail}", plural(opened, "incident")),
        busy(opened, Role::Warning),
    ));
    if ctx.cluster.is_some() {
        spans.push(Span::styled(" · fleet-wide", theme.style(Role::Muted)));
    }
    Line::from(spans)
}

/// The open incidents of the `:ctx` scope, worst first (the store's order).
fn open_incidents<'a>(
    incidents: &'a [Incident],
    ctx: &'a ViewCtx,
) -> impl Iterator<Item = &'a Incident> {
    incidents
        .iter()
        .filter(|i| i.status.is_open() && in_scope(i, ctx.cluster))
}

/// The blind spots of what the view shows: narrowed to one cluster, that cluster's (and every
/// source not bound to a cluster), so another cluster's forbidden resource is not said here.
fn blind_spots_in_view(ctx: &ViewCtx) -> Vec<crate::model::blind::BlindSpot> {
    use crate::model::blind::BlindSource;
    let mut spots = ctx
        .snapshot
        .blind_spots(ctx.now, crate::model::blind::SILENT_AFTER);
    if let Some(cluster) = ctx.cluster {
        spots.retain(|b| {
            !matches!(b.source, BlindSource::Cluster | BlindSource::Resource(_))
                || b.cluster == cluster
        });
    }
    spots
}

fn incidents_line(incidents: &[Incident], ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let mut spans = vec![label("incidents", theme)];
    let counts = severity_counts(open_incidents(incidents, ctx).map(|i| &i.severity));
    if counts.iter().sum::<usize>() == 0 {
        let blind: Vec<String> = blind_spots_in_view(ctx)
            .iter()
            .map(|b| b.describe(ctx.now))
            .collect();
        if blind.is_empty() {
            spans.push(Span::styled("none open", theme.style(Role::Ok)));
        } else {
            spans.push(Span::styled(
                format!(
                    "none open where fleetdeck can see; blind: {}",
                    blind.join("; ")
                ),
                theme.style(Role::Stale),
            ));
        }
        return Line::from(spans);
    }
    for (i, (n, sev)) in counts
        .into_iter()
        .zip([Severity::Critical, Severity::Warning, Severity::Info])
        .enumerate()
    {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        let role = if n == 0 {
            Role::Muted
        } else {
            severity_role(sev)
        };
        spans.push(Span::styled(
            format!("{n} {}", format!("{sev:?}").to_lowercase()),
            theme.style(role),
        ));
    }
    spans.push(Span::raw(" open"));
    Line::from(spans)
}

/// `automation  approve mode · 1 approval pending · KILL SWITCH ON`.
fn automation_line(a: &AutomationView, theme: &Theme) -> Line<'static> {
    let mut spans = vec![
        label("automation", theme),
        Span::styled(format!("{} mode", a.mode.name()), theme.style(Role::Accent)),
        Span::raw(" · "),
    ];
    let n = a.pending.len();
    spans.push(Span::styled(
        pending_text(n),
        theme.style(if n > 0 { Role::Warning } else { Role::Ok }),
    ));
    let running = a.runs.iter().filter(|r| r.finished_at.is_none()).count();
    spans.push(Span::raw(format!(" · {running} running")));
    if a.read_only {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled("read-only", theme.style(Role::Accent)));
    }
    if a.kill.is_some() {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(" KILL SWITCH ON ", kill_style(theme)));
    }
    Line::from(spans)
}

/// One line per open incident: id, severity, status, age, title and subject.
/// One line per open incident in `width` columns; its title and subject are cut in the middle
/// (the subject, at the end, tells two incidents apart).
fn incident_lines(incidents: &[Incident], ctx: &ViewCtx, width: usize) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    // Label, severity, status and age take 39 columns.
    let text_width = width.saturating_sub(39);
    open_incidents(incidents, ctx)
        .take(TOP_INCIDENTS)
        .map(|inc| {
            let opened = inc.milestones.detected.unwrap_or(inc.last_signal_at);
            Line::from(vec![
                Span::styled(format!("{:<8}", inc.label()), theme.style(Role::Accent)),
                Span::styled(
                    format!("{:<9}", severity_label(inc.severity)),
                    theme.style(severity_role(inc.severity)),
                ),
                Span::styled(
                    format!("{:<13}", inc.status.name()),
                    theme.style(status_role(inc.status)),
                ),
                Span::raw(format!(
                    "{:<8} ",
                    format!("{} ago", compact_age(ctx.now, opened))
                )),
                Span::raw(middle_ellipsis(
                    &format!(
                        "{} ({})",
                        incident_title_now(inc, ctx.snapshot),
                        inc.subject.describe()
                    ),
                    text_width,
                )),
            ])
        })
        .collect()
}

fn gpu_sources_line(ctx: &ViewCtx) -> Line<'static> {
    let theme = ctx.theme;
    let mut spans = vec![label("gpu sources", theme)];
    let sources: Vec<_> = ctx
        .snapshot
        .gpu_sources
        .iter()
        .filter(|s| ctx.cluster.is_none_or(|c| s.cluster == c))
        .collect();
    if sources.is_empty() {
        spans.push(Span::styled("none configured", theme.style(Role::Muted)));
    }
    for (i, s) in sources.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        let role = if s.is_ok() { Role::Ok } else { Role::Critical };
        spans.push(Span::styled(s.describe(), theme.style(role)));
    }
    Line::from(spans)
}

impl OverviewPane {
    /// The cluster rows in display order (filtered, then sorted).
    fn rows(&self, ctx: &ViewCtx) -> Vec<ClusterRow> {
        let all: Vec<ClusterRow> = ctx
            .clusters()
            .map(|c| cluster_row(c, ctx))
            .filter(|r| self.view.keeps(&r.cells))
            .collect();
        let mut keyed: Vec<Vec<String>> = all
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut cells = r.cells.clone();
                cells.push(i.to_string());
                cells
            })
            .collect();
        sort_rows(&mut keyed, self.view.sort);
        let mut slots: Vec<Option<ClusterRow>> = all.into_iter().map(Some).collect();
        keyed
            .iter()
            .filter_map(|cells| {
                let i: usize = cells.last()?.parse().ok()?;
                slots.get_mut(i)?.take()
            })
            .collect()
    }

    /// The selected cluster's name, for `:ctx` or a jump to its nodes.
    pub fn selected_cluster(&self, ctx: &ViewCtx) -> Option<String> {
        self.rows(ctx)
            .into_iter()
            .nth(self.view.selected)
            .and_then(|r| r.cells.into_iter().next())
    }

    /// Applies an action; returns whether anything changed.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        let before = self.view.clone();
        let rows = ctx.clusters().count();
        let page = self.page.max(1) as isize;
        match action {
            a if self.view.navigate(a, rows, page, HEADERS.len()) => {}
            _ => {}
        }
        self.view != before
    }

    /// The incidents the store holds now, open first, then by severity and recency.
    pub fn set_incidents(&mut self, incidents: Arc<Vec<Incident>>) {
        self.incidents = incidents;
    }

    /// The executor's runbooks, runs and approvals, as the loop last read them.
    pub fn set_automation(&mut self, automation: Option<Arc<AutomationView>>) {
        self.automation = automation;
    }

    /// The noise over the last hour, as the app last sampled it.
    pub fn set_noise(&mut self, noise: Option<NoiseRate>) {
        self.noise = noise;
    }

    /// Shows only clusters with `f` in some cell (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.view.filter = f.to_string();
        self.view.selected = 0;
        self.view.offset = 0;
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let incidents = incident_lines(
            &self.incidents,
            ctx,
            usize::from(area.width.saturating_sub(2)),
        );
        let incidents_height = if incidents.is_empty() {
            0
        } else {
            incidents.len() as u16 + 2
        };
        let mut summary = vec![
            endpoints_line(ctx),
            spend_line(ctx),
            signals_line(ctx),
            incidents_line(&self.incidents, ctx),
            noise_line(self.noise.as_ref(), ctx),
            gpu_sources_line(ctx),
        ];
        if let Some(a) = &self.automation {
            summary.push(automation_line(a, theme));
        }
        let [summary_area, incidents_area, table_area] = Layout::vertical([
            Constraint::Length(summary.len() as u16 + 2),
            Constraint::Length(incidents_height),
            Constraint::Min(0),
        ])
        .areas(area);
        let title = match ctx.cluster {
            Some(c) => format!(" Overview: {c} "),
            None => " Overview: fleet ".to_string(),
        };
        let block = titled_block(title, theme);
        let inner = block.inner(summary_area);
        frame.render_widget(block, summary_area);
        frame.render_widget(Paragraph::new(summary), inner);
        if !incidents.is_empty() {
            let open = open_incidents(&self.incidents, ctx).count();
            let block = titled_block(format!(" Open incidents ({open}) "), theme);
            let inner = block.inner(incidents_area);
            frame.render_widget(block, incidents_area);
            frame.render_widget(Paragraph::new(incidents), inner);
        }
        self.draw_clusters(frame, table_area, ctx);
    }

    fn draw_clusters(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let mut title = format!(" Clusters ({}) ", rows.len());
        if !self.view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let empty = || {
            if ctx.clusters().next().is_none() {
                "no clusters: add a kubeconfig context or run `fleetdeck demo`"
            } else {
                "no cluster matches the filter"
            }
        };
        let Some(height) = clamped_page(frame, inner, rows.len(), &mut self.view, theme, empty)
        else {
            return;
        };
        self.page = height;
        let visible = visible_rows(&rows, &self.view, height, theme, |r| {
            role_row(&r.cells, &r.roles, theme)
        });
        // Each column as wide as its widest cell: a fleet of 5,000-node clusters prints
        // `4998/5000` nodes and `39990/40000` GPUs, which fixed widths cut.
        let mut widths: Vec<Constraint> = HEADERS
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let content = rows
                    .iter()
                    .filter_map(|r| r.cells.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0);
                let cap = if i == 0 { 32 } else { 24 };
                Constraint::Length(content.min(cap).max(h.chars().count()) as u16)
            })
            .collect();
        if let Some(last) = widths.last_mut() {
            *last = Constraint::Min(10);
        }
        let table = Table::new(visible, widths)
            .header(Row::new(HEADERS).style(theme.style(Role::Header)))
            .column_spacing(1);
        frame.render_widget(table, inner);
    }
}

impl Pane for OverviewPane {
    fn set_noise(&mut self, noise: Option<NoiseRate>) {
        OverviewPane::set_noise(self, noise);
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        OverviewPane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        OverviewPane::handle(self, action, ctx)
    }

    fn set_incidents(&mut self, incidents: Arc<Vec<Incident>>, _ctx: &ViewCtx) {
        OverviewPane::set_incidents(self, incidents);
    }

    fn set_automation(&mut self, automation: Option<Arc<AutomationView>>) {
        OverviewPane::set_automation(self, automation);
    }
}

#[cfg(test)]
mod tests {
    use crate::tui::pane::testing::{find, lines, render};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::endpoint::{
        BurnAlert, BurnWindow, EndpointHealth, EndpointModel, EndpointProtocol, SloBurn, SloKind,
    };
    use crate::model::gpu::{GpuModel, GpuSourceKind, GpuSourceStatus};
    use crate::model::signal::{Signal, Subject};
    use crate::model::{ClusterTotals, PhaseCounts, ResourceSync, Snapshot};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cluster(name: &str, sync: Vec<ResourceSync>) -> ClusterSnapshot {
        ClusterSnapshot {
            name: name.into(),
            server: format!("https://{name}.example:6443"),
            sync,
            totals: ClusterTotals {
                nodes: 40,
                nodes_ready: 38,
                nodes_cordoned: 2,
                nodes_spot: 10,
                gpus_allocatable: 64,
                gpus_requested: 48,
                pods: PhaseCounts {
                    pending: 3,
                    running: 412,
                    succeeded: 0,
                    failed: 1,
                    unknown: 0,
                },
            },
            ..ClusterSnapshot::default()
        }
    }

    fn burn(severity: Option<BurnSeverity>) -> SloBurn {
        let w = BurnWindow {
            window_secs: 3600.0,
            good: 90.0,
            total: 100.0,
            burn_rate: Some(100.0),
        };
        SloBurn {
            kind: SloKind::Availability,
            objective: 0.999,
            evaluated_at: at("2025-04-01T12:00:00Z"),
            windows: vec![w],
            covered_secs: 3600.0,
            period_secs: 30.0 * 86_400.0,
            alerts: severity
                .map(|severity| BurnAlert {
                    severity,
                    threshold: 14.4,
                    long: w,
                    short: w,
                })
                .into_iter()
                .collect(),
        }
    }

    fn endpoint(name: &str, severity: Option<BurnSeverity>) -> Arc<EndpointModel> {
        Arc::new(EndpointModel {
            name: name.into(),
            protocol: EndpointProtocol::Vllm,
            url: format!("http://{name}:8000"),
            model: None,
            serving: None,
            health: EndpointHealth::Healthy,
            probe: None,
            last_healthy: None,
            metrics: None,
            last_scraped: None,
            metrics_error: None,
            availability_burn: Some(burn(severity)),
            latency_burn: None,
            drift: None,
            updated_at: at("2025-04-01T12:00:00Z"),
            registry: None,
            vector: None,
            ingestion: None,
        })
    }

    fn snapshot() -> Snapshot {
        let now = at("2025-04-01T12:00:00Z");
        let mut gpus = Vec::new();
        for i in 0..4 {
            let mut g = GpuModel::new("prod", "gpu-node-1", i, &format!("GPU-{i}"), now);
            g.utilization_pct = Some(f64::from(i) * 20.0); // 0, 20, 40, 60: mean 30
            gpus.push(g);
        }
        gpus[3].xid_last = Some(79);
        let signal = |severity, cluster: &str| Signal {
            kind: "test".into(),
            severity,
            subject: Subject {
                cluster: cluster.into(),
                ..Subject::default()
            },
            summary: "s".into(),
            evidence: BTreeMap::new(),
            action: None,
            first_seen: now,
            dedup_key: "k".into(),
        };
        Snapshot {
            clusters: vec![
                Arc::new(cluster(
                    "prod",
                    vec![ResourceSync {
                        resource: "pods".into(),
                        state: SyncState::Synced,
                        changed_at: now,
                    }],
                )),
                Arc::new(cluster(
                    "staging",
                    vec![
                        ResourceSync {
                            resource: "pods".into(),
                            state: SyncState::Synced,
                            changed_at: now,
                        },
                        ResourceSync {
                            resource: "nodes".into(),
                            state: SyncState::Forbidden {
                                message: "denied".into(),
                            },
                            changed_at: now,
                        },
                    ],
                )),
            ],
            signals: vec![
                signal(Severity::Critical, "prod"),
                signal(Severity::Critical, "prod"),
                signal(Severity::Warning, "staging"),
            ],
            endpoints: vec![
                endpoint("llama-chat", Some(BurnSeverity::Page)),
                endpoint("embedder", None),
                endpoint("reranker", None),
            ],
            gpus: Arc::new(gpus),
            gpu_sources: vec![GpuSourceStatus {
                kind: GpuSourceKind::Dcgm,
                cluster: "prod".into(),
                target: "http://dcgm:9400/metrics".into(),
                error: None,
                last_success: Some(now),
                checked_at: now,
            }],
            ..Snapshot::default()
        }
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snap, theme, at("2025-04-01T12:00:00Z"))
    }

    #[test]
    fn each_cluster_row_counts_nodes_spot_gpus_pods_and_signals() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = OverviewPane::default();
        let buf = render(&mut pane, &ctx, 120, 30);
        let all = lines(&buf);
        let text = all.join("\n");
        for h in HEADERS {
            assert!(text.contains(h), "header {h} missing:\n{text}");
        }
        let prod = all
            .iter()
            .find(|l| l.contains("prod ") && l.contains("38/40"))
            .unwrap_or_else(|| panic!("no prod row:\n{text}"));
        let cells: Vec<&str> = prod.split_whitespace().collect();
        for want in [
            "38/40", "2", "25%", "48/64", "3/4", "30%", "412/3/1", "crit", "synced",
        ] {
            assert!(cells.contains(&want), "{want} missing in {prod}");
        }
        assert!(text.contains("nodes: forbidden (denied)"), "{text}");
        let (x, y) = find(&buf, "3/4").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[(x, y)].fg,
            theme.style(Role::Critical).fg.unwrap_or_default(),
            "an unhealthy GPU colours the GPU column"
        );
    }

    #[test]
    fn a_blind_cluster_has_unknown_signals_and_no_calm_incident_line() {
        let now = at("2025-04-01T12:00:00Z");
        let mut snap = snapshot();
        snap.signals.clear();
        let mut blind = cluster(
            "sim-a",
            vec![ResourceSync {
                resource: "nodes".into(),
                state: SyncState::Unreachable {
                    since: now - chrono::Duration::seconds(150),
                    last_error: "connection refused".into(),
                },
                changed_at: now,
            }],
        );
        blind.totals = Default::default();
        snap.clusters = vec![Arc::new(blind)];
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let text = lines(&render(&mut OverviewPane::default(), &ctx, 160, 30)).join("\n");
        let row = text
            .lines()
            .find(|l| l.contains("sim-a "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("unknown"), "{row}");
        assert!(
            text.contains("0 info · unknown where blind: sim-a"),
            "{text}"
        );
        assert!(
            text.contains("none open where fleetdeck can see; blind: sim-a unreachable 2m"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_shows_burning_endpoints_signals_by_severity_and_sources() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = OverviewPane::default();
        let buf = render(&mut pane, &ctx, 120, 30);
        let text = lines(&buf).join("\n");
        assert!(text.contains("2 within SLO"), "{text}");
        assert!(text.contains("1 burning (1 page, 0 ticket)"), "{text}");
        assert!(text.contains("2 critical · 1 warning · 0 info"), "{text}");
        assert!(text.contains("dcgm prod: ok"), "{text}");
        assert!(text.contains("no cost source"), "{text}");
        let burning = find(&buf, "1 burning").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[burning].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
        let crit = find(&buf, "2 critical").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[crit].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
        let warn = find(&buf, "1 warning").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[warn].fg,
            theme.style(Role::Warning).fg.unwrap_or_default()
        );
    }

    #[test]
    fn fleet_scale_numbers_are_printed_whole_in_the_clusters_table() {
        let big = |name: &str| {
            let mut c = cluster(name, vec![]);
            c.totals.nodes = 2500;
            c.totals.nodes_ready = 2500;
            c.totals.nodes_spot = 625;
            c.totals.gpus_allocatable = 20000;
            c.totals.gpus_requested = 12998;
            c.totals.pods.running = 74_990;
            Arc::new(c)
        };
        let snap = Snapshot {
            clusters: vec![big("prod-a"), big("prod-b")],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let buf = render(&mut OverviewPane::default(), &ctx(&snap, &theme), 200, 40);
        let text = lines(&buf).join("\n");
        for whole in ["2500/2500", "12998/20000", "74990/3/1"] {
            assert!(text.contains(whole), "{whole} cut in {text}");
        }
    }

    #[test]
    fn ctx_narrows_to_one_cluster_and_the_selection_names_it() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let mut ctx = ctx(&snap, &theme);
        let mut pane = OverviewPane::default();
        assert!(pane.handle(Action::Down, &ctx));
        assert_eq!(pane.selected_cluster(&ctx).as_deref(), Some("staging"));
        ctx.cluster = Some("prod");
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(
            text.contains("Clusters (1)") && !text.contains("staging"),
            "{text}"
        );
        assert_eq!(pane.selected_cluster(&ctx).as_deref(), Some("prod"));
    }

    #[test]
    fn spend_today_is_shown_against_the_monthly_budget() {
        let mut report = crate::model::cost::ten_days_at_100().finish(at("2025-04-11T00:00:00Z"));
        if let Some(budget) = report.budget.as_mut() {
            budget.forecast = Some(crate::tui::nodes::fixtures::ten_days_at_100_forecast());
        }
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ViewCtx {
            now: at("2025-04-10T12:00:00Z"),
            cost: Some(&report),
            ..ctx(&snap, &theme)
        };
        let buf = render(&mut OverviewPane::default(), &ctx, 120, 30);
        let text = lines(&buf).join("\n");
        assert!(
            text.contains("today $100 · month to date $1,000 of $2,000 (50%)"),
            "{text}"
        );
        let forecast = find(&buf, "forecast $3,000 (150%)").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[forecast].fg,
            theme.style(Role::Critical).fg.unwrap_or_default(),
            "a forecast over budget is drawn critical"
        );
    }

    #[test]
    fn the_noise_line_says_the_hourly_rate_or_the_shorter_window_it_saw() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = OverviewPane::default();
        let text = lines(&render(&mut pane, &ctx, 140, 40)).join("\n");
        assert!(text.contains("noise       no evaluation yet"), "{text}");

        pane.set_noise(Some(NoiseRate {
            window: chrono::Duration::minutes(12),
            raised: [1, 2, 0],
            incidents_opened: 1,
        }));
        let text = lines(&render(&mut pane, &ctx, 140, 40)).join("\n");
        assert!(
            text.contains(
                "noise       in the last 12m: 3 raised (1 critical · 2 warning · 0 info) · 1 incident opened"
            ),
            "{text}"
        );

        pane.set_noise(Some(NoiseRate {
            window: chrono::Duration::hours(1),
            raised: [3, 9, 2],
            incidents_opened: 2,
        }));
        let buf = render(&mut pane, &ctx, 140, 40);
        let text = lines(&buf).join("\n");
        assert!(
            text.contains(
                "noise       14 signals raised/h (3 critical · 9 warning · 2 info) · 2 incidents opened/h"
            ),
            "{text}"
        );
        let crit = find(&buf, "3 critical").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[crit].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
    }

    #[test]
    fn a_tiny_terminal_renders_without_panicking() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        render(&mut OverviewPane::default(), &ctx, 20, 5);
        let empty = Snapshot::default();
        let ctx = super::tests::ctx(&empty, &theme);
        let text = lines(&render(&mut OverviewPane::default(), &ctx, 120, 30)).join("\n");
        assert!(text.contains("no clusters"), "{text}");
    }
}
