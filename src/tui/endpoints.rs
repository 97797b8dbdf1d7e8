//! The Endpoints pane: every model endpoint's health, latency, errors, throughput, queue, SLO
//! burn and drift, and which object serves it (a vector store: its count, growth, fullness and
//! collection status instead); Open shows one endpoint's burn windows and its
//! p99 latency charted against the SLO from the snapshot's history. Draws the snapshot it is
//! given; imports model, keymap, theme and pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table, Wrap};

use super::format::{compact_age, vector_summary};
use super::intent::Intent;
use super::keymap::Action;
use super::pane::{TableView, ViewCtx, sort_rows};
use super::table_pane::{Answer, TablePane, TableSpec};
use super::theme::{Role, Theme};
use super::widgets::{clamped_page, role_row, titled_block, visible_rows};
use crate::actions::Mutation;
use crate::model::endpoint::{
    BurnSeverity, DriftBand, EndpointHealth, EndpointModel, SloBurn, SloKind,
};
use crate::model::registry::{RegisteredModelView, RegistryRefOrigin};

const HEADERS: [&str; 13] = [
    "ENDPOINT",
    "PROTOCOL",
    "HEALTH",
    "P50",
    "P99",
    "TTFT P99",
    "ERR %",
    "REQ/S",
    "QUEUE",
    "AVAIL BURN",
    "LAT BURN",
    "DRIFT",
    "SERVING",
];

/// The history series an endpoint's p99 latency (ms) is charted from.
pub fn latency_p99_series(endpoint: &str) -> String {
    format!("endpoint/{endpoint}/latency_p99_ms")
}

/// The history series holding an endpoint's latency SLO target (ms), drawn as the SLO line.
pub fn latency_slo_series(endpoint: &str) -> String {
    format!("endpoint/{endpoint}/latency_slo_ms")
}

/// The Endpoints pane: the table of endpoints, and one endpoint's burn windows and latency.
pub type EndpointsPane = TablePane<EndpointTable>;

/// What the Endpoints pane shows: every model endpoint whose serving object is in the
/// cluster in view; a row is named by the endpoint's name, which survives new snapshots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointTable;

struct EndpointRow {
    cells: Vec<String>,
    roles: Vec<Role>,
}

fn health_text(h: EndpointHealth) -> (&'static str, Role) {
    match h {
        EndpointHealth::Unknown => ("unknown", Role::Muted),
        EndpointHealth::Healthy => ("healthy", Role::Ok),
        EndpointHealth::NotReady => ("not-ready", Role::Warning),
        EndpointHealth::Dead => ("dead", Role::Critical),
        EndpointHealth::Unreachable => ("unreachable", Role::Critical),
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}x"))
}

/// `PAGE 14.4x` while a page rule fires, `ticket 6.2x` for a ticket, else `ok` and the longest
/// window's burn.
fn burn_text(burn: Option<&SloBurn>) -> (String, Role) {
    let Some(burn) = burn else {
        return ("-".into(), Role::Muted);
    };
    match burn.alerts.first() {
        Some(a) if a.severity == BurnSeverity::Page => {
            (format!("PAGE {}", rate(a.long.burn_rate)), Role::Critical)
        }
        Some(a) => (format!("ticket {}", rate(a.long.burn_rate)), Role::Warning),
        None => {
            let longest = burn.windows.iter().rev().find_map(|w| w.burn_rate);
            (format!("ok {}", rate(longest)), Role::Ok)
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

fn endpoint_row(e: &EndpointModel) -> EndpointRow {
    let (health, health_role) = health_text(e.health);
    let m = e.metrics.as_ref();
    let metric_role = if e.metrics_error.is_some() {
        Role::Stale
    } else {
        Role::Base
    };
    let (avail, avail_role) = burn_text(e.availability_burn.as_ref());
    let (lat, lat_role) = burn_text(e.latency_burn.as_ref());
    let (drift, drift_role) = match &e.drift {
        None => ("-".to_string(), Role::Muted),
        Some(d) => match d.band {
            DriftBand::None => (format!("{:.2}", d.psi), Role::Ok),
            DriftBand::Moderate => (format!("{:.2} mod", d.psi), Role::Warning),
            DriftBand::Significant => (format!("{:.2} sig", d.psi), Role::Critical),
        },
    };
    // A vector store has no serving object, batch or time to first token: its last column
    // carries its count, growth, fullness and collection status instead.
    let serving = match (&e.vector, &e.serving) {
        (Some(v), _) => vector_summary(v).unwrap_or_else(|| "vectors not read yet".into()),
        (None, Some(s)) => format!("{}/{}/{}", s.cluster, s.namespace, s.name),
        (None, None) => "-".to_string(),
    };
    EndpointRow {
        cells: vec![
            e.name.clone(),
            e.protocol.as_str().to_string(),
            health.to_string(),
            ms(m.and_then(|m| m.latency_p50_ms)),
            ms(m.and_then(|m| m.latency_p99_ms)),
            ms(m.and_then(|m| m.ttft_p99_ms)),
            m.and_then(|m| m.error_rate)
                .map_or_else(|| "-".to_string(), |r| format!("{:.2}", r * 100.0)),
            m.and_then(|m| m.throughput_rps)
                .map_or_else(|| "-".to_string(), |r| format!("{r:.1}")),
            m.and_then(|m| m.queue_waiting)
                .map_or_else(|| "-".to_string(), |q| format!("{q:.0}")),
            avail,
            lat,
            drift,
            serving,
        ],
        roles: vec![
            Role::Accent,
            Role::Base,
            health_role,
            metric_role,
            metric_role,
            metric_role,
            metric_role,
            metric_role,
            metric_role,
            avail_role,
            lat_role,
            drift_role,
            Role::Base,
        ],
    }
}

fn window_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl EndpointTable {
    /// Indexes into `snapshot.endpoints` in display order (filtered, then sorted), with rows.
    fn rows(&self, ctx: &ViewCtx, view: &TableView) -> Vec<(usize, EndpointRow)> {
        let all: Vec<(usize, EndpointRow)> = ctx
            .snapshot
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                ctx.cluster
                    .is_none_or(|c| e.serving.as_ref().is_none_or(|s| s.cluster == c))
            })
            .map(|(i, e)| (i, endpoint_row(e)))
            .filter(|(_, r)| view.keeps(&r.cells))
            .collect();
        let mut keyed: Vec<Vec<String>> = all
            .iter()
            .enumerate()
            .map(|(pos, (_, r))| {
                let mut cells = r.cells.clone();
                cells.push(pos.to_string());
                cells
            })
            .collect();
        sort_rows(&mut keyed, view.sort);
        let mut slots: Vec<Option<(usize, EndpointRow)>> = all.into_iter().map(Some).collect();
        keyed
            .iter()
            .filter_map(|cells| {
                let pos: usize = cells.last()?.parse().ok()?;
                slots.get_mut(pos)?.take()
            })
            .collect()
    }
}

impl TableSpec for EndpointTable {
    type Key = String;
    /// The detail is a chart and its windows, one screen: nothing to scroll.
    const DETAIL_SCROLLS: bool = false;
    const BACK_CLEARS_FILTER: bool = false;

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), HEADERS.len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<String> {
        let (index, _) = self.rows(ctx, view).into_iter().nth(index)?;
        ctx.snapshot.endpoints.get(index).map(|e| e.name.clone())
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let rows = self.rows(ctx, view);
        let mut title = format!(" Endpoints ({}) · latencies in ms ", rows.len());
        if !view.filter.is_empty() {
            title.push_str(&format!("/{} ", view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        f.render_widget(block, area);
        let empty = || {
            if ctx.snapshot.endpoints.is_empty() {
                "no endpoints: add [[endpoints]] to the config"
            } else {
                "no endpoint matches the filter"
            }
        };
        let Some(height) = clamped_page(f, inner, rows.len(), view, theme, empty) else {
            return usize::from(inner.height.saturating_sub(1));
        };
        let visible = visible_rows(&rows, view, height, theme, |(_, r)| {
            role_row(&r.cells, &r.roles, theme)
        });
        let table = Table::new(
            visible,
            [
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Length(11),
                Constraint::Length(5),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(5),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(HEADERS).style(theme.style(Role::Header)))
        .column_spacing(1);
        f.render_widget(table, inner);
        height
    }

    fn draw_detail(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        ctx: &ViewCtx,
        name: &String,
        _scroll: &mut u16,
    ) -> usize {
        draw_detail(frame, area, ctx, name);
        1
    }

    /// `r` rolls back the endpoint's serving object, `M` its registered model.
    fn intent(&self, action: Action, ctx: &ViewCtx, selected: Option<String>) -> Answer {
        let target = match action {
            Action::Rollback => selected
                .ok_or_else(|| "rollback: no endpoint selected".to_string())
                .and_then(|name| rollback_target(&name, ctx)),
            Action::RollbackModel => selected
                .ok_or_else(|| "rollback model: no endpoint selected".to_string())
                .and_then(|name| model_rollback_target(&name, ctx)),
            _ => return None,
        };
        Some(target.map(|(cluster, mutation)| Intent::Mutate { cluster, mutation }))
    }
}

fn draw_detail(frame: &mut Frame, area: Rect, ctx: &ViewCtx, name: &str) {
    let theme = ctx.theme;
    let block = titled_block(format!(" Endpoint {name} "), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(e) = ctx.snapshot.endpoints.iter().find(|e| e.name == name) else {
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(format!("{name} is no longer configured")),
                Line::styled("Esc goes back", theme.style(Role::Muted)),
            ]),
            inner,
        );
        return;
    };
    let burns: Vec<&SloBurn> = [&e.availability_burn, &e.latency_burn]
        .into_iter()
        .flatten()
        .collect();
    let window_rows: u16 = burns
        .iter()
        .map(|b| b.windows.len().max(1))
        .sum::<usize>()
        .try_into()
        .unwrap_or(u16::MAX);
    let registry = registry_lines(ctx.snapshot.model_of(name), e, ctx);
    let registry_rows = u16::try_from(registry.len()).unwrap_or(u16::MAX);
    let [info_area, registry_area, burn_area, chart_area] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(registry_rows),
        Constraint::Length(window_rows.saturating_add(1).max(1)),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(info_lines(e, ctx)).wrap(Wrap { trim: false }),
        info_area,
    );
    frame.render_widget(Paragraph::new(registry), registry_area);
    draw_burn_windows(frame, burn_area, theme, &burns);
    draw_latency_chart(frame, chart_area, ctx, e);
}

/// Versions and alias moves the detail lists at most.
const REGISTRY_VERSIONS_SHOWN: usize = 4;
const REGISTRY_MOVES_SHOWN: usize = 3;

/// The endpoint's registered model: the alias's version, where it was named, how fresh the
/// registry's answer is, the newest versions and fleetdeck's latest alias moves.
fn registry_lines(
    view: Option<&RegisteredModelView>,
    e: &EndpointModel,
    ctx: &ViewCtx,
) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let label = |s: &str| Span::styled(format!("{s:<9}"), theme.style(Role::Header));
    let Some(v) = view else {
        return match &e.registry {
            Some(r) => vec![Line::from(vec![
                label("registry"),
                Span::styled(
                    format!("{} not read from the registry yet", r.model),
                    theme.style(Role::Muted),
                ),
            ])],
            None => Vec::new(),
        };
    };
    let origin = match &v.origin {
        RegistryRefOrigin::Config => "fleetdeck.toml".to_string(),
        RegistryRefOrigin::Annotation(o) => format!("annotation on {o}"),
    };
    let serving = match v.version {
        Some(n) => Span::styled(format!("version {n}"), theme.style(Role::Ok)),
        None => Span::styled(
            format!("alias {} is not set", v.alias),
            theme.style(Role::Warning),
        ),
    };
    let freshness = match (&v.error, v.fetched_at) {
        (Some(err), Some(at)) => Span::styled(
            format!(
                " · stale: {err} (last read {} ago)",
                compact_age(ctx.now, at)
            ),
            theme.style(Role::Stale),
        ),
        (Some(err), None) => Span::styled(format!(" · {err}"), theme.style(Role::Critical)),
        (None, Some(at)) => Span::styled(
            format!(" · read {} ago", compact_age(ctx.now, at)),
            theme.style(Role::Muted),
        ),
        (None, None) => Span::raw(""),
    };
    let mut lines = vec![Line::from(vec![
        label("registry"),
        Span::raw(format!("{}@{} → ", v.model, v.alias)),
        serving,
        freshness,
        Span::styled(format!(" · named in {origin}"), theme.style(Role::Muted)),
    ])];
    for (i, mv) in v.versions.iter().take(REGISTRY_VERSIONS_SHOWN).enumerate() {
        let mut spans = vec![
            label(if i == 0 { "versions" } else { "" }),
            Span::styled(
                format!("v{:<4}", mv.version),
                if Some(mv.version) == v.version {
                    theme.style(Role::Ok)
                } else {
                    theme.style(Role::Header)
                },
            ),
            Span::raw(format!(
                " {:<9} {:>6} ago  {}",
                mv.status,
                mv.created
                    .map(|c| compact_age(ctx.now, c))
                    .unwrap_or_else(|| "?".into()),
                mv.source
            )),
        ];
        if !mv.aliases.is_empty() {
            spans.push(Span::styled(
                format!("  @{}", mv.aliases.join(" @")),
                theme.style(Role::Ok),
            ));
        }
        if let Some(why) = &mv.rolled_back {
            spans.push(Span::styled(
                format!("  rolled back: {why}"),
                theme.style(Role::Warning),
            ));
        }
        lines.push(Line::from(spans));
    }
    for (i, m) in v
        .history
        .iter()
        .rev()
        .take(REGISTRY_MOVES_SHOWN)
        .enumerate()
    {
        lines.push(Line::from(vec![
            label(if i == 0 { "moves" } else { "" }),
            Span::raw(format!(
                "{} ago  {} {} → v{}  by {}",
                compact_age(ctx.now, m.at),
                m.alias,
                m.from.map_or("(unset)".to_string(), |f| format!("v{f}")),
                m.to,
                m.by
            )),
            Span::styled(
                if m.why.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", m.why)
                },
                theme.style(Role::Muted),
            ),
        ]));
    }
    lines
}

fn info_lines(e: &EndpointModel, ctx: &ViewCtx) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    let label = |s: &str| Span::styled(format!("{s:<9}"), theme.style(Role::Header));
    let (health, role) = health_text(e.health);
    let mut health_line = vec![label("health"), Span::styled(health, theme.style(role))];
    if let Some(p) = &e.probe {
        if let Some(l) = p.latency_ms {
            health_line.push(Span::raw(format!(" · probe {l:.0} ms")));
        }
        if let Some(err) = &p.error {
            health_line.push(Span::styled(
                format!(" · {err}"),
                theme.style(Role::Critical),
            ));
        }
    }
    if let Some(at) = e.last_healthy {
        health_line.push(Span::styled(
            format!(" · last healthy {} ago", compact_age(ctx.now, at)),
            theme.style(Role::Muted),
        ));
    }
    let metrics = match (&e.metrics_error, e.last_scraped) {
        (Some(err), Some(at)) => Span::styled(
            format!(
                "stale: {err} (last good scrape {} ago)",
                compact_age(ctx.now, at)
            ),
            theme.style(Role::Stale),
        ),
        (Some(err), None) => Span::styled(err.clone(), theme.style(Role::Critical)),
        (None, Some(at)) => Span::raw(format!("scraped {} ago", compact_age(ctx.now, at))),
        (None, None) => Span::styled("not scraped yet", theme.style(Role::Muted)),
    };
    let drift = match &e.drift {
        Some(d) => Span::raw(format!(
            "PSI {:.3} ({}) on {} · baseline {:.0}, current {:.0} observations",
            d.psi,
            match d.band {
                DriftBand::None => "none",
                DriftBand::Moderate => "moderate",
                DriftBand::Significant => "significant",
            },
            d.metric,
            d.baseline_count,
            d.current_count
        )),
        None => Span::styled("no drift metric configured", theme.style(Role::Muted)),
    };
    vec![
        Line::from(vec![
            label("url"),
            Span::raw(format!(
                "{} · {}{}",
                e.url,
                e.protocol.as_str(),
                e.model
                    .as_ref()
                    .map(|m| format!(" · model {m}"))
                    .unwrap_or_default()
            )),
        ]),
        Line::from(vec![
            label(if e.protocol.is_vector_store() {
                "vectors"
            } else {
                "serving"
            }),
            match &e.serving {
                _ if e.protocol.is_vector_store() => vector_span(e, ctx),
                Some(s) => Span::raw(format!(
                    "{} {}/{}/{}",
                    s.kind, s.cluster, s.namespace, s.name
                )),
                None => Span::styled("no serving object configured", theme.style(Role::Muted)),
            },
        ]),
        Line::from(health_line),
        Line::from(vec![label("metrics"), metrics]),
        Line::from(vec![label("drift"), drift]),
    ]
}

/// A vector store's count, growth and status, when it last grew and what writes into it.
fn vector_span(e: &EndpointModel, ctx: &ViewCtx) -> Span<'static> {
    let theme = ctx.theme;
    let Some(v) = &e.vector else {
        return Span::styled("not read yet", theme.style(Role::Muted));
    };
    let mut text = vector_summary(v).unwrap_or_else(|| "not read yet".into());
    if let Some(at) = v.grew_at {
        text.push_str(&format!(" · grew {} ago", compact_age(ctx.now, at)));
    }
    if let Some(i) = &e.ingestion {
        let job = match (&i.namespace, &i.job) {
            (Some(ns), Some(j)) => format!(" · ingestion job {ns}/{j}"),
            _ => String::new(),
        };
        let dag = i
            .dag
            .as_ref()
            .map(|d| format!(" · dag {d}"))
            .unwrap_or_default();
        text.push_str(&job);
        text.push_str(&dag);
    }
    match &v.error {
        Some(err) => Span::styled(format!("{text} · {err}"), theme.style(Role::Stale)),
        None => Span::raw(text),
    }
}

fn draw_burn_windows(frame: &mut Frame, area: Rect, theme: &Theme, burns: &[&SloBurn]) {
    if burns.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no SLO burn evaluated: configure [endpoints.slo] for this endpoint",
                theme.style(Role::Muted),
            )),
            area,
        );
        return;
    }
    let mut rows = Vec::new();
    for b in burns {
        let kind = match b.kind {
            SloKind::Availability => "availability",
            SloKind::Latency => "latency",
        };
        for w in &b.windows {
            let fired = b
                .alerts
                .iter()
                .filter(|a| {
                    a.long.window_secs == w.window_secs || a.short.window_secs == w.window_secs
                })
                .max_by_key(|a| a.severity);
            let (alert, role) = match fired {
                Some(a) if a.severity == BurnSeverity::Page => {
                    (format!("page (≥{:.1}x)", a.threshold), Role::Critical)
                }
                Some(a) => (format!("ticket (≥{:.1}x)", a.threshold), Role::Warning),
                None => ("-".to_string(), Role::Muted),
            };
            rows.push(Row::new([
                Cell::from(kind),
                Cell::from(format!("{:.3}%", b.objective * 100.0)),
                Cell::from(window_text(w.window_secs)),
                Cell::from(format!("{:.0}", w.good)),
                Cell::from(format!("{:.0}", w.total)),
                Cell::from(rate(w.burn_rate)).style(theme.style(role)),
                Cell::from(alert).style(theme.style(role)),
            ]));
        }
    }
    let height = usize::from(area.height.saturating_sub(1));
    let table = Table::new(
        rows.into_iter().take(height),
        [
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Min(8),
        ],
    )
    .header(
        Row::new([
            "SLO",
            "OBJECTIVE",
            "WINDOW",
            "GOOD",
            "TOTAL",
            "BURN",
            "ALERT",
        ])
        .style(theme.style(Role::Header)),
    )
    .column_spacing(1);
    frame.render_widget(table, area);
}

fn draw_latency_chart(frame: &mut Frame, area: Rect, ctx: &ViewCtx, e: &EndpointModel) {
    let theme = ctx.theme;
    if area.height == 0 {
        return;
    }
    let key = latency_p99_series(&e.name);
    let to_points = |series: &[crate::model::Sample]| -> Vec<(f64, f64)> {
        series
            .iter()
            .map(|s| ((s.at - ctx.now).num_milliseconds() as f64 / 1000.0, s.value))
            .collect()
    };
    let p99: Vec<(f64, f64)> = ctx
        .snapshot
        .history
        .get(&key)
        .map(|s| to_points(s))
        .unwrap_or_default();
    if p99.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "no p99 latency history for {} in this snapshot (series {key}); nothing is charted",
                    e.name
                ),
                theme.style(Role::Muted),
            ))
            .wrap(Wrap { trim: false }),
            area,
        );
        return;
    }
    let slo: Vec<(f64, f64)> = ctx
        .snapshot
        .history
        .get(&latency_slo_series(&e.name))
        .map(|s| to_points(s))
        .unwrap_or_default();
    let x_min = p99.iter().chain(&slo).map(|p| p.0).fold(-1.0_f64, f64::min);
    let y_max = p99
        .iter()
        .chain(&slo)
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let mut datasets = vec![
        Dataset::default()
            .name("p99 ms")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.style(Role::ChartPrimary))
            .data(&p99),
    ];
    let title = if slo.is_empty() {
        " p99 latency (no SLO target in history) "
    } else {
        datasets.push(
            Dataset::default()
                .name("SLO")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.style(Role::SloLine))
                .data(&slo),
        );
        " p99 latency vs SLO "
    };
    let chart = Chart::new(datasets)
        .block(titled_block(title, theme))
        .x_axis(
            Axis::default()
                .bounds([x_min, 0.0])
                .labels([format!("-{}", window_text(-x_min)), "now".to_string()])
                .style(theme.style(Role::Muted)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(["0".to_string(), format!("{y_max:.0}")])
                .style(theme.style(Role::Muted)),
        );
    frame.render_widget(chart, area);
}

/// The endpoint's registered model, as a rollback of its serving alias; in the serving
/// object's cluster (else the one in scope, else the first).
fn model_rollback_target(name: &str, ctx: &ViewCtx) -> Result<(String, Mutation), String> {
    let intent =
        Mutation::rollback_model(ctx.snapshot, name, None, "cockpit").map_err(|e| match e {
            crate::actions::ActionError::InvalidInput { why, .. } => {
                format!("rollback model: {why}")
            }
            other => format!("rollback model: {other}"),
        })?;
    let cluster = intent
        .cluster()
        .map(str::to_string)
        .or_else(|| ctx.cluster.map(str::to_string))
        .or_else(|| ctx.snapshot.clusters.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    Ok((cluster, intent))
}

/// The endpoint's serving object, as a rollback: a Deployment to its previous revision, an
/// InferenceService's canary traffic back to 0.
fn rollback_target(name: &str, ctx: &ViewCtx) -> Result<(String, Mutation), String> {
    let serving = ctx
        .snapshot
        .endpoints
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.serving.clone())
        .ok_or_else(|| {
            format!("rollback: endpoint {name} names no serving object ([[endpoints]] serving in fleetdeck.toml)")
        })?;
    let intent = match serving.kind.as_str() {
        "Deployment" => Mutation::Rollback {
            namespace: serving.namespace,
            name: serving.name,
            revision: None,
        },
        "InferenceService" => Mutation::RollbackInferenceService {
            namespace: serving.namespace,
            name: serving.name,
        },
        other => {
            return Err(format!(
                "rollback: endpoint {name} is served by a {other}; fleetdeck rolls back a Deployment or an InferenceService"
            ));
        }
    };
    Ok((serving.cluster, intent))
}

#[cfg(test)]
mod tests {
    use crate::tui::pane::testing::{find, lines, render};
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::model::endpoint::{
        BurnAlert, BurnWindow, EndpointMetrics, EndpointProtocol, ServingObject,
    };
    use crate::model::{History, Sample, Snapshot};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn now() -> DateTime<Utc> {
        at("2025-04-01T12:00:00Z")
    }

    fn window(secs: f64, burn: f64) -> BurnWindow {
        BurnWindow {
            window_secs: secs,
            good: 9_000.0,
            total: 10_000.0,
            burn_rate: Some(burn),
        }
    }

    fn endpoint(name: &str, health: EndpointHealth, paging: bool) -> EndpointModel {
        let (short, long) = (window(300.0, 20.0), window(3600.0, 15.0));
        EndpointModel {
            name: name.into(),
            protocol: EndpointProtocol::Vllm,
            url: format!("http://{name}:8000"),
            model: Some("llama".into()),
            serving: Some(ServingObject {
                cluster: "prod".into(),
                namespace: "serving".into(),
                kind: "Deployment".into(),
                name: name.into(),
            }),
            health,
            probe: None,
            last_healthy: None,
            metrics: Some(EndpointMetrics {
                window_secs: 60.0,
                requests: 600.0,
                errors: 6.0,
                error_rate: Some(0.01),
                throughput_rps: Some(10.0),
                latency_p50_ms: Some(420.0),
                latency_p99_ms: Some(2900.0),
                ttft_p99_ms: Some(310.0),
                queue_waiting: Some(4.0),
                ..EndpointMetrics::default()
            }),
            last_scraped: Some(now()),
            metrics_error: None,
            availability_burn: Some(SloBurn {
                kind: SloKind::Availability,
                objective: 0.999,
                evaluated_at: now(),
                windows: vec![short, long],
                covered_secs: 3600.0,
                period_secs: 30.0 * 86_400.0,
                alerts: if paging {
                    vec![BurnAlert {
                        severity: BurnSeverity::Page,
                        threshold: 14.4,
                        long,
                        short,
                    }]
                } else {
                    vec![]
                },
            }),
            latency_burn: None,
            drift: None,
            updated_at: now(),
            registry: None,
            vector: None,
            ingestion: None,
        }
    }

    fn snapshot(history: History) -> Snapshot {
        Snapshot {
            endpoints: vec![
                Arc::new(endpoint("llama-chat", EndpointHealth::Healthy, true)),
                Arc::new(endpoint("embedder", EndpointHealth::Dead, false)),
            ],
            history: Arc::new(history),
            ..Snapshot::default()
        }
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snap, theme, now())
    }

    #[test]
    fn the_table_shows_metrics_and_a_burning_endpoint_as_paging() {
        let snap = snapshot(History::new());
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        let buf = render(&mut pane, &ctx, 120, 30);
        let all = lines(&buf);
        let text = all.join("\n");
        for h in HEADERS {
            assert!(text.contains(h), "header {h} missing:\n{text}");
        }
        let llama = all
            .iter()
            .find(|l| l.contains("llama-chat"))
            .unwrap_or_else(|| panic!("{text}"));
        for want in ["vllm", "healthy", "420", "2900", "310", "1.00", "10.0", "4"] {
            assert!(
                llama.split_whitespace().any(|c| c == want),
                "{want} missing in {llama}"
            );
        }
        assert!(llama.contains("PAGE 15.0x"), "{llama}");
        let page = find(&buf, "PAGE 15.0x").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[page].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
        let embedder = all
            .iter()
            .find(|l| l.contains("embedder"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(embedder.contains("ok 15.0x"), "{embedder}");
        let dead = find(&buf, "dead").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[dead].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
        let healthy = find(&buf, "healthy").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[healthy].fg,
            theme.style(Role::Ok).fg.unwrap_or_default()
        );
    }

    #[test]
    fn open_shows_burn_windows_and_says_when_there_is_no_latency_history() {
        let snap = snapshot(History::new());
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        assert!(pane.handle(Action::Open, &ctx));
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        for want in [
            "Endpoint llama-chat",
            "OBJECTIVE",
            "WINDOW",
            "99.900%",
            "5m",
            "1h",
            "page (≥14.4x)",
            "Deployment prod/serving/llama-chat",
            "no p99 latency history for llama-chat",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(pane.handle(Action::Back, &ctx));
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(text.contains("AVAIL BURN"), "{text}");
    }

    #[test]
    fn open_shows_the_registered_model_its_versions_and_alias_moves_and_greys_a_stale_read() {
        use crate::model::registry::{AliasMove, ModelVersionView, RegisteredModelView};
        let version = |n: u64, aliases: &[&str], rolled_back: Option<&str>| ModelVersionView {
            version: n,
            status: "READY".into(),
            created: Some(now() - chrono::Duration::hours(i64::try_from(n).unwrap_or(0))),
            source: format!("s3://models/llama-chat/{n}"),
            run_id: String::new(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            rolled_back: rolled_back.map(str::to_string),
        };
        let mut snap = snapshot(History::new());
        let view = RegisteredModelView {
            endpoint: "llama-chat".into(),
            model: "llama-chat".into(),
            alias: "champion".into(),
            origin: RegistryRefOrigin::Annotation("deployment/serving/llama-chat".into()),
            version: Some(2),
            versions: vec![
                version(3, &[], Some("champion moved to version 2")),
                version(2, &["champion"], None),
                version(1, &[], None),
            ],
            history: vec![AliasMove {
                at: now() - chrono::Duration::minutes(5),
                alias: "champion".into(),
                from: Some(3),
                to: 2,
                by: "runbook endpoint-slo-rollback".into(),
                why: "rollback of endpoint llama-chat".into(),
            }],
            fetched_at: Some(now() - chrono::Duration::seconds(10)),
            error: None,
        };
        snap.models = vec![Arc::new(view.clone())];
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        assert!(pane.handle(Action::Open, &ctx));
        let text = lines(&render(&mut pane, &ctx, 160, 40)).join("\n");
        for want in [
            "llama-chat@champion → version 2",
            "annotation on deployment/serving/llama-chat",
            "read 10s ago",
            "v3",
            "rolled back: champion moved to version 2",
            "@champion",
            "champion v3 → v2  by runbook endpoint-slo-rollback",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        // A registry that stopped answering is shown stale, with the age of what is shown.
        let stale = RegisteredModelView {
            error: Some("GET http://mlflow:5000/...: connection refused".into()),
            ..view
        };
        snap.models = vec![Arc::new(stale)];
        let ctx = super::tests::ctx(&snap, &theme);
        let text = lines(&render(&mut pane, &ctx, 160, 40)).join("\n");
        assert!(
            text.contains(
                "stale: GET http://mlflow:5000/...: connection refused (last read 10s ago)"
            ),
            "{text}"
        );
    }

    #[test]
    fn open_charts_p99_latency_against_the_slo_line_from_history() {
        let mut history = History::new();
        let series = |v: f64| -> Vec<Sample> {
            (0..30)
                .map(|i| Sample {
                    at: now() - Duration::seconds(600 - i * 20),
                    value: v + f64::from(i as i32) * 10.0,
                })
                .collect()
        };
        history.insert(latency_p99_series("llama-chat"), series(2000.0));
        history.insert(
            latency_slo_series("llama-chat"),
            series(2500.0)
                .into_iter()
                .map(|s| Sample { value: 2500.0, ..s })
                .collect(),
        );
        let snap = snapshot(history);
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        pane.open("llama-chat".into());
        let buf = render(&mut pane, &ctx, 120, 30);
        let text = lines(&buf).join("\n");
        assert!(text.contains("p99 latency vs SLO"), "{text}");
        assert!(text.contains("now"), "{text}");
        assert!(!text.contains("no p99 latency history"), "{text}");
        let slo_fg = theme.style(Role::SloLine).fg;
        assert!(
            buf.content()
                .iter()
                .any(|c| Some(c.fg) == slo_fg && c.symbol() != " "),
            "the SLO line is drawn"
        );
    }

    #[test]
    fn a_vector_store_shows_its_count_growth_fullness_and_ingestion_instead_of_a_serving_object() {
        use crate::model::endpoint::{IngestionRef, VectorModel, VectorReading};
        let mut e = endpoint("docs-rag", EndpointHealth::Healthy, false);
        e.protocol = EndpointProtocol::Pinecone;
        e.serving = None;
        e.vector = Some(VectorModel {
            latest: Some(VectorReading {
                at: now(),
                count: 1_840_000,
                dimension: Some(1024),
                fullness: Some(0.3),
                indexed: None,
                status: None,
            }),
            grew_at: Some(now() - chrono::TimeDelta::minutes(12)),
            growth_per_min: Some(0.0),
            error: None,
        });
        e.ingestion = Some(IngestionRef {
            cluster: Some("prod".into()),
            namespace: Some("batch".into()),
            job: Some("docs-embed-ingest".into()),
            dag: Some("docs_embed".into()),
        });
        let snap = Snapshot {
            endpoints: vec![Arc::new(e)],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        let text = lines(&render(&mut pane, &ctx, 140, 20)).join("\n");
        assert!(text.contains("pinecone"), "{text}");
        assert!(text.contains("1.84M vec +0/min · 30% full"), "{text}");
        assert!(pane.handle(Action::Open, &ctx));
        let text = lines(&render(&mut pane, &ctx, 160, 30)).join("\n");
        for want in [
            "vectors",
            "grew 12m ago",
            "ingestion job batch/docs-embed-ingest",
            "dag docs_embed",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn ctx_and_the_filter_narrow_the_rows() {
        let snap = snapshot(History::new());
        let theme = Theme::default_theme();
        let mut ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        pane.set_filter("dead");
        assert_eq!(pane.selected(&ctx).as_deref(), Some("embedder"));
        pane.set_filter("");
        ctx.cluster = Some("staging");
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(text.contains("Endpoints (0)"), "{text}");
        assert!(!pane.handle(Action::Open, &ctx));
    }

    #[test]
    fn a_tiny_terminal_renders_without_panicking() {
        let snap = snapshot(History::new());
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = EndpointsPane::default();
        render(&mut pane, &ctx, 20, 5);
        pane.handle(Action::Open, &ctx);
        render(&mut pane, &ctx, 20, 5);
    }
}
