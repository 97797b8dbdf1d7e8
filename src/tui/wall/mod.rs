//! The NOC wall (`--noc`, and the Overview on a large terminal): big counters, the fleet map
//! (`fleet_map`), GPU heat per node pool, one tile per endpoint, spend against the budget and
//! the incidents ticker, each tile with the age of its data and greyed when its source is
//! stale. Per-snapshot aggregates are cached on the snapshot's `Arc`, so a redraw for the clock
//! recomputes nothing; the GPU heat per pool is `state`'s history (`model::gpu_history`), read
//! here. May import model, store (incident groups, through `signal_groups`) and the tui
//! groundwork.

pub mod fleet_map;
pub mod pipelines;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use chrono::{DateTime, Duration, Utc};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, LineGauge, Paragraph, Sparkline, Widget};

use self::fleet_map::{FleetCells, legend_spans};
use crate::model::endpoint::{EndpointHealth, EndpointModel, SloBurn};
use crate::model::gpu_history::heat_series;
use crate::model::incident::{Incident, IncidentStatus};
use crate::model::signal::Severity;
use crate::model::{Snapshot, SyncState};
use crate::tui::bigdigits::{DIGIT_HEIGHT, draw_number};
use crate::tui::format::{compact_age, compact_span, money, severity_label, whole};
use crate::tui::signal_groups::{group_signals, live_title, worst_first};
use crate::tui::theme::{Role, Theme};
use crate::tui::widgets::{middle_ellipsis, severity_role};

/// Data older than this is stale (sources poll every 10–30 s).
const STALE_SECS: i64 = 60;
/// How long the frame border shows a new critical: one redraw of the loop's 1 s tick.
const FLASH_MILLIS: i64 = 1000;

/// What the wall is given to draw: the same things a pane is, and the store's incidents.
pub struct WallCtx<'a> {
    pub snapshot: &'a Arc<Snapshot>,
    pub incidents: &'a [Incident],
    pub theme: &'a Theme,
    pub now: DateTime<Utc>,
    /// What must be seen from across the room besides the fleet: the kill switch, approvals.
    pub alerts: Vec<Span<'static>>,
    /// An attached wall whose daemon cannot be reached: `disconnected 12s`, on every tile.
    pub disconnected: Option<String>,
}

impl WallCtx<'_> {
    /// A tile's freshness, or, while the link to the daemon is lost, stale with the tile's
    /// age counting and the link's loss named: a frozen picture never looks live.
    fn link(&self, fresh: &Freshness) -> Freshness {
        let Some(why) = &self.disconnected else {
            return fresh.clone();
        };
        let age = match fresh {
            Freshness::Fresh(s) | Freshness::Stale(s, _) => *s,
            Freshness::NoData(_, a) => a.unwrap_or(0),
        };
        Freshness::Stale(age, Some(why.clone()))
    }
}

/// Everything the wall derives from one snapshot, computed once per snapshot.
#[derive(Debug, Clone, Default)]
struct Aggregates {
    cells: FleetCells,
    /// The newest GPU sample, for a GPU source that reports no round of its own.
    gpu_sampled_at: Option<DateTime<Utc>>,
    /// The GPU list `gpu_sampled_at` was read from: the GPU sources publish less often than
    /// the clusters change, so a snapshot with the same list reuses it instead of walking
    /// every GPU.
    gpus_from: Weak<Vec<crate::model::gpu::GpuModel>>,
    burning: usize,
    critical_keys: BTreeSet<String>,
}

/// Everything the wall draws from `snapshot`; the newest GPU sample is `prev`'s when it was
/// read from the same GPU list.
fn aggregate(snapshot: &Snapshot, prev: Option<&Aggregates>) -> Aggregates {
    let gpu_sampled_at =
        match prev.filter(|p| std::ptr::eq(p.gpus_from.as_ptr(), Arc::as_ptr(&snapshot.gpus))) {
            Some(p) => p.gpu_sampled_at,
            None => snapshot.gpus.iter().map(|g| g.sampled_at).max(),
        };
    let mut groups = group_signals(snapshot.incident_signals().enumerate());
    worst_first(&mut groups);
    let burning = snapshot
        .endpoints
        .iter()
        .filter(|e| {
            [&e.availability_burn, &e.latency_burn]
                .into_iter()
                .flatten()
                .any(|b| b.severity().is_some())
        })
        .count();
    Aggregates {
        cells: FleetCells::of(snapshot),
        gpu_sampled_at,
        gpus_from: Arc::downgrade(&snapshot.gpus),
        burning,
        critical_keys: groups
            .iter()
            .filter(|g| g.severity() == Some(Severity::Critical))
            .map(|g| g.key.clone())
            .collect(),
    }
}

/// Flashes the frame border once when a critical appears that was not there before; the
/// criticals present when the wall first looks are not new.
#[derive(Debug, Clone, Default)]
pub struct FlashOnce {
    seen: Option<BTreeSet<String>>,
    since: Option<DateTime<Utc>>,
}

impl FlashOnce {
    /// The criticals now; returns whether one is new.
    pub fn observe(&mut self, critical: &BTreeSet<String>, now: DateTime<Utc>) -> bool {
        let new = self
            .seen
            .as_ref()
            .is_some_and(|seen| critical.iter().any(|k| !seen.contains(k)));
        if new {
            self.since = Some(now);
        }
        self.seen = Some(critical.clone());
        new
    }

    pub fn flashing(&self, now: DateTime<Utc>) -> bool {
        self.since
            .is_some_and(|at| now - at < Duration::milliseconds(FLASH_MILLIS))
    }
}

/// The wall's own state: the cache of the latest snapshot's aggregates and the flash.
#[derive(Debug, Default)]
pub struct WallView {
    cached: Option<(Weak<Snapshot>, Aggregates)>,
    flash: FlashOnce,
    /// How many times the aggregates were computed (for tests and the bench).
    pub aggregations: u64,
}

/// The age of a tile's data and whether it is too old to be believed.
#[derive(Debug, Clone, PartialEq)]
pub enum Freshness {
    Fresh(i64),
    Stale(i64, Option<String>),
    NoData(String, Option<i64>),
}

impl Freshness {
    fn of(now: DateTime<Utc>, at: Option<DateTime<Utc>>, error: Option<String>) -> Self {
        match (at, error) {
            (None, Some(e)) => Freshness::NoData(e, None),
            (None, None) => Freshness::NoData("nothing read yet".into(), None),
            (Some(at), error) => {
                let age = (now - at).num_seconds().max(0);
                if error.is_some() || age > STALE_SECS {
                    Freshness::Stale(age, error)
                } else {
                    Freshness::Fresh(age)
                }
            }
        }
    }

    fn title(&self) -> String {
        let age = |s: i64| crate::tui::format::compact_age_secs(s);
        match self {
            Freshness::Fresh(s) => format!(" {} ", age(*s)),
            Freshness::Stale(s, None) => format!(" STALE {} ", age(*s)),
            Freshness::Stale(s, Some(e)) => format!(" STALE {}: {e} ", age(*s)),
            Freshness::NoData(_, _) => " NO DATA ".to_string(),
        }
    }
}

impl WallView {
    fn refresh(&mut self, snapshot: &Arc<Snapshot>, now: DateTime<Utc>) {
        let same = self
            .cached
            .as_ref()
            .is_some_and(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(snapshot)));
        if same {
            return;
        }
        let agg = aggregate(snapshot, self.cached.as_ref().map(|(_, a)| a));
        self.aggregations += 1;
        self.flash.observe(&agg.critical_keys, now);
        self.cached = Some((Arc::downgrade(snapshot), agg));
    }

    /// Whether the frame border flashes now.
    pub fn flashing(&self, now: DateTime<Utc>) -> bool {
        self.flash.flashing(now)
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &WallCtx) {
        self.draw_buffer(frame.buffer_mut(), area, ctx);
    }

    /// Draws the wall into a buffer (what the bench times).
    pub fn draw_buffer(&mut self, buf: &mut Buffer, area: Rect, ctx: &WallCtx) {
        self.refresh(ctx.snapshot, ctx.now);
        let t = ctx.theme;
        let flash = self.flashing(ctx.now);
        let frame_block = Block::default()
            .borders(Borders::ALL)
            .border_style(if flash {
                t.style(Role::Critical).add_modifier(Modifier::REVERSED)
            } else {
                t.style(Role::BorderFocused)
            })
            .title(Span::styled(
                format!(" NOC wall · {} ", ctx.now.format("%H:%M:%S UTC")),
                t.style(Role::Title),
            ))
            .title(Line::from(ctx.alerts.clone()).right_aligned());
        let inner = frame_block.inner(area);
        frame_block.render(area, buf);
        let Some((_, agg)) = &self.cached else {
            return;
        };
        let large = inner.width >= 160 && inner.height >= 40;
        let counters_height = if inner.height >= 30 {
            DIGIT_HEIGHT + 2
        } else {
            3
        };
        let bottom_height = if large { 12 } else { 8 };
        let [counters, body, bottom] = Layout::vertical([
            Constraint::Length(counters_height),
            Constraint::Min(6),
            Constraint::Length(bottom_height),
        ])
        .areas(inner);
        // The counters count the ticker's rows, so the two can never disagree.
        let rows = ticker_rows(ctx);
        draw_counters(buf, counters, agg, &rows, ctx);
        let [map, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(body);
        let pools = heat_series(&ctx.snapshot.history).count();
        let heat_rows = u16::try_from(pools.clamp(1, 8)).unwrap_or(8) * 2 + 2;
        let [heat, endpoints] =
            Layout::vertical([Constraint::Length(heat_rows), Constraint::Min(3)]).areas(right);
        draw_fleet_map(buf, map, agg, ctx);
        self.draw_heat(buf, heat, ctx);
        draw_endpoints(buf, endpoints, ctx);
        if pipelines::shown(ctx) {
            let [ticker, pipes, spend] = Layout::horizontal([
                Constraint::Percentage(45),
                Constraint::Percentage(25),
                Constraint::Percentage(30),
            ])
            .areas(bottom);
            draw_ticker(buf, ticker, &rows, ctx);
            pipelines::draw_pipelines(buf, pipes, ctx);
            draw_spend(buf, spend, ctx);
        } else {
            let [ticker, spend] =
                Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                    .areas(bottom);
            draw_ticker(buf, ticker, &rows, ctx);
            draw_spend(buf, spend, ctx);
        }
    }

    fn draw_heat(&self, buf: &mut Buffer, area: Rect, ctx: &WallCtx) {
        let t = ctx.theme;
        let s = ctx.snapshot;
        let at = s
            .gpu_sources
            .iter()
            .filter_map(|g| g.last_success)
            .max()
            .or_else(|| self.cached.as_ref().and_then(|(_, a)| a.gpu_sampled_at));
        let error = s.gpu_sources.iter().find_map(|g| g.error.clone());
        let fresh = if s.gpu_sources.is_empty() && s.gpus.is_empty() {
            Freshness::NoData("no GPU source".into(), None)
        } else {
            Freshness::of(ctx.now, at, error)
        };
        let Some(inner) = tile(buf, area, " GPU heat · last hour ", &ctx.link(&fresh), t) else {
            return;
        };
        // The pool's name takes what the figures (14 columns) leave of the label.
        let label_w = 44u16.min(inner.width / 2);
        let name_w = usize::from(label_w.saturating_sub(15)).max(6);
        for (i, (pool, util, idle)) in heat_series(&s.history).enumerate() {
            let y = inner.y + (i as u16) * 2;
            if y >= inner.y + inner.height {
                break;
            }
            let (Some(last_util), last_idle) = (util.last(), idle.last().map_or(0.0, |s| s.value))
            else {
                continue;
            };
            let idle_role = if last_idle >= 0.1 {
                Role::Warning
            } else {
                Role::Muted
            };
            let line = Line::from(vec![
                Span::styled(format!("{pool:<name_w$.name_w$} "), t.style(Role::Header)),
                Span::styled(
                    format!("{:>3}% ", whole(last_util.value)),
                    t.style(Role::ChartPrimary),
                ),
                Span::styled(
                    format!("idle {:>3}% ", whole(last_idle * 100.0)),
                    t.style(idle_role),
                ),
            ]);
            buf.set_line(inner.x, y, &line, label_w);
            let spark_area = Rect::new(
                inner.x + label_w,
                y,
                inner.width.saturating_sub(label_w),
                2.min(inner.y + inner.height - y),
            );
            let width = usize::from(spark_area.width);
            let skip = util.len().saturating_sub(width);
            let util_bars: Vec<u64> = util
                .iter()
                .skip(skip)
                .map(|h| h.value.round().clamp(0.0, 100.0) as u64)
                .collect();
            Sparkline::default()
                .data(&util_bars)
                .max(100)
                .style(t.style(Role::ChartPrimary))
                .render(spark_area, buf);
            // Idle-but-allocated share under the heat, where the GPUs are held and idle.
            if spark_area.height > 1 {
                // Sampled with the utilisation, one idle share per utilisation sample.
                let idle_skip = idle.len().saturating_sub(width);
                for (x, h) in idle.iter().skip(idle_skip).enumerate() {
                    if h.value >= 0.1 {
                        buf.set_string(
                            spark_area.x + x as u16,
                            spark_area.y + 1,
                            "▔",
                            t.style(Role::Warning),
                        );
                    }
                }
            }
        }
        grey_if_stale(buf, inner, &ctx.link(&fresh), t);
    }
}

/// Draws a tile's block with its freshness in the title; returns its inner area, or `None`
/// when the tile has no data (then it says why, with the age).
fn tile(buf: &mut Buffer, area: Rect, title: &str, fresh: &Freshness, t: &Theme) -> Option<Rect> {
    let role = match fresh {
        Freshness::Fresh(_) => Role::Muted,
        _ => Role::Stale,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(Role::Border))
        .title(Span::styled(title.to_string(), t.style(Role::Title)))
        .title(Line::from(Span::styled(fresh.title(), t.style(role))).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    if let Freshness::NoData(reason, age) = fresh {
        let text = match age {
            Some(a) => format!(
                "no data: {reason} ({} old)",
                crate::tui::format::compact_age_secs(*a)
            ),
            None => format!("no data: {reason}"),
        };
        Paragraph::new(text)
            .style(t.style(Role::Stale))
            .render(inner, buf);
        return None;
    }
    Some(inner)
}

/// A stale tile keeps its shapes but loses its colours: a frozen source never looks calm.
fn grey_if_stale(buf: &mut Buffer, inner: Rect, fresh: &Freshness, t: &Theme) {
    if matches!(fresh, Freshness::Stale(..)) {
        buf.set_style(inner, t.style(Role::Stale));
    }
}

fn draw_counters(
    buf: &mut Buffer,
    area: Rect,
    agg: &Aggregates,
    rows: &[TickerRow],
    ctx: &WallCtx,
) {
    let t = ctx.theme;
    let open: Vec<&Incident> = ctx
        .incidents
        .iter()
        .filter(|i| i.status.is_open())
        .collect();
    let open_role = open
        .iter()
        .map(|i| i.severity)
        .max()
        .map_or(Role::Ok, severity_role);
    let live = |s: Severity| rows.iter().filter(|r| r.live && r.severity == s).count();
    let counters = [
        ("CRITICAL", live(Severity::Critical), Role::Critical),
        ("WARNING", live(Severity::Warning), Role::Warning),
        ("OPEN INCIDENTS", open.len(), open_role),
        ("SLO BURNING", agg.burning, Role::Critical),
    ];
    let areas = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(area);
    // A count from a blind fleet is a lower bound: never green, and it says why.
    let blind = ctx
        .snapshot
        .blind_spots(ctx.now, crate::model::blind::SILENT_AFTER);
    let blind_note = match blind.as_slice() {
        [] => String::new(),
        [one] => format!("· {} {} ", one.name(), one.state),
        more => format!("· {} sources blind ", more.len()),
    };
    for ((label, n, role), a) in counters.into_iter().zip(areas.iter()) {
        let role = match (n, blind.is_empty()) {
            (0, true) => Role::Ok,
            (0, false) => Role::Stale,
            _ => role,
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.style(role))
            .title(Span::styled(
                format!(" {label} {blind_note}"),
                t.style(role),
            ));
        let inner = block.inner(*a);
        block.render(*a, buf);
        draw_number(buf, inner, n as u64, t.style(role));
    }
}

fn draw_fleet_map(buf: &mut Buffer, area: Rect, agg: &Aggregates, ctx: &WallCtx) {
    let t = ctx.theme;
    let s = ctx.snapshot;
    let unsynced: Vec<String> = s
        .clusters
        .iter()
        .filter(|c| {
            c.sync.iter().any(|r| {
                matches!(
                    r.state,
                    SyncState::Unreachable { .. }
                        | SyncState::Reconnecting { .. }
                        | SyncState::Forbidden { .. }
                )
            })
        })
        .map(|c| c.name.clone())
        .collect();
    // A blind cluster's picture is as old as its break, not as the last snapshot (which other
    // sources, and the break's own retries, keep republishing).
    let blind_since = s
        .blind_spots(ctx.now, crate::model::blind::SILENT_AFTER)
        .into_iter()
        .filter(|b| b.source == crate::model::blind::BlindSource::Cluster)
        .map(|b| b.since)
        .min();
    let fresh = if s.clusters.is_empty() {
        Freshness::NoData("no cluster synced yet".into(), None)
    } else {
        Freshness::of(
            ctx.now,
            blind_since.or(s.taken_at),
            (!unsynced.is_empty()).then(|| format!("{} not synced", unsynced.join(", "))),
        )
    };
    let nodes = agg.cells.nodes();
    let Some(inner) = tile(
        buf,
        area,
        &format!(" Fleet map · {nodes} nodes "),
        &ctx.link(&fresh),
        t,
    ) else {
        return;
    };
    if inner.height < 3 {
        return;
    }
    // The legend's items, never split: as many a row as fit.
    let mut legend_lines: Vec<Line> = vec![Line::default()];
    for span in legend_spans(&agg.cells, t) {
        let fits = legend_lines
            .last()
            .is_some_and(|l| l.width() + span.width() <= usize::from(inner.width));
        if !fits && legend_lines.last().is_some_and(|l| l.width() > 0) {
            legend_lines.push(Line::default());
        }
        if let Some(l) = legend_lines.last_mut() {
            l.spans.push(span);
        }
    }
    let legend_rows = u16::try_from(legend_lines.len()).unwrap_or(1);
    let [map, scale, legend] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(legend_rows),
    ])
    .areas(inner);
    let per = agg.cells.draw(buf, map, t);
    let scale_text = match per {
        Some(1) => "1 cell = 1 node".to_string(),
        Some(n) => format!("1 cell = {n} nodes (worst state shown)"),
        None => format!(
            "{} node pools: too many to map here",
            agg.cells.groups.len()
        ),
    };
    buf.set_stringn(
        scale.x,
        scale.y,
        &scale_text,
        usize::from(scale.width),
        t.style(Role::Muted),
    );
    Paragraph::new(legend_lines).render(legend, buf);
    grey_if_stale(buf, inner, &ctx.link(&fresh), t);
}

/// The error budget left of the SLO period, and the span of data it is judged from. The bad
/// share of the longest window spends the budget only for the time the data covers: twelve
/// minutes with one failed request out of 900 are not a month at that rate.
fn budget_left(burn: &SloBurn) -> Option<(f64, f64)> {
    let long = burn
        .windows
        .iter()
        .max_by(|a, b| a.window_secs.total_cmp(&b.window_secs))?;
    if long.total <= 0.0 || burn.objective >= 1.0 {
        return None;
    }
    let bad = 1.0 - long.good / long.total;
    let span = if burn.covered_secs > 0.0 {
        burn.covered_secs.min(long.window_secs)
    } else {
        long.window_secs
    };
    let share = if burn.period_secs > 0.0 {
        (span / burn.period_secs).min(1.0)
    } else {
        1.0
    };
    let spent = bad / (1.0 - burn.objective) * share;
    Some(((1.0 - spent).clamp(0.0, 1.0), span))
}

/// `budget 98% (12m of 30d)`: the budget left and how much of the period the data covers.
fn budget_label(left: f64, span_secs: f64, period_secs: f64) -> String {
    let span = compact_span(span_secs as i64);
    if period_secs > 0.0 {
        format!(
            "budget {}% ({span} of {})",
            whole(left * 100.0),
            compact_span(period_secs as i64)
        )
    } else {
        format!("budget {}% ({span} of data)", whole(left * 100.0))
    }
}

/// The burn rate of the shortest window and whether it is rising against the longest.
fn burn_trend(burn: &SloBurn) -> Option<(f64, char)> {
    let mut windows: Vec<_> = burn.windows.iter().collect();
    windows.sort_by(|a, b| a.window_secs.total_cmp(&b.window_secs));
    let short = windows.first()?.burn_rate?;
    let long = windows.last()?.burn_rate.unwrap_or(short);
    let arrow = if short > long * 1.2 + 0.05 {
        '↑'
    } else if short < long * 0.8 - 0.05 {
        '↓'
    } else {
        '→'
    };
    Some((short, arrow))
}

fn health_glyph(h: EndpointHealth) -> (char, Role) {
    match h {
        EndpointHealth::Healthy => ('●', Role::Ok),
        EndpointHealth::NotReady => ('◐', Role::Warning),
        EndpointHealth::Dead | EndpointHealth::Unreachable => ('✖', Role::Critical),
        EndpointHealth::Unknown => ('?', Role::Muted),
    }
}

fn draw_endpoints(buf: &mut Buffer, area: Rect, ctx: &WallCtx) {
    let t = ctx.theme;
    let eps = &ctx.snapshot.endpoints;
    let fresh = if eps.is_empty() {
        Freshness::NoData("no endpoints configured".into(), None)
    } else {
        let oldest = eps
            .iter()
            .filter_map(|e| e.last_scraped.or(e.probe.as_ref().map(|p| p.at)))
            .min();
        Freshness::of(ctx.now, oldest, None)
    };
    let Some(inner) = tile(buf, area, " Endpoints ", &ctx.link(&fresh), t) else {
        return;
    };
    const TILE_W: u16 = 36;
    const TILE_H: u16 = 5;
    let cols = (inner.width / TILE_W).max(1);
    let tile_w = inner.width / cols;
    for (i, e) in eps.iter().enumerate() {
        let (col, row) = (i as u16 % cols, i as u16 / cols);
        let y = inner.y + row * TILE_H;
        if y + TILE_H > inner.y + inner.height {
            let more = eps.len() - i;
            buf.set_stringn(
                inner.x,
                inner.y + inner.height - 1,
                format!("+{more} more endpoints"),
                usize::from(inner.width),
                t.style(Role::Muted),
            );
            break;
        }
        let a = Rect::new(inner.x + col * tile_w, y, tile_w, TILE_H);
        draw_endpoint_tile(buf, a, e, ctx);
    }
}

fn draw_endpoint_tile(buf: &mut Buffer, area: Rect, e: &EndpointModel, ctx: &WallCtx) {
    let t = ctx.theme;
    let at = e.last_scraped.or(e.probe.as_ref().map(|p| p.at));
    let fresh = Freshness::of(ctx.now, at, e.metrics_error.clone());
    let (glyph, role) = health_glyph(e.health);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(role))
        .title(Span::styled(
            format!(" {glyph} {} ", e.name),
            t.style(role).add_modifier(Modifier::BOLD),
        ))
        .title(Line::from(Span::styled(fresh.title(), t.style(Role::Muted))).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let p99 = e.metrics.as_ref().and_then(|m| m.latency_p99_ms);
    let target = ctx
        .snapshot
        .history
        .get(&format!("endpoint/{}/latency_slo_ms", e.name))
        .and_then(|s| s.last())
        .map(|s| s.value);
    let over = matches!((p99, target), (Some(p), Some(tg)) if p > tg);
    let burn = e.availability_burn.as_ref().or(e.latency_burn.as_ref());
    let trend = burn.and_then(burn_trend);
    let mut spans = vec![Span::styled(
        match (p99, target) {
            (Some(p), Some(tg)) => format!("p99 {p:.0}/{tg:.0}ms "),
            (Some(p), None) => format!("p99 {p:.0}ms "),
            (None, _) => "p99 — ".to_string(),
        },
        t.style(if over { Role::Critical } else { Role::Ok }),
    )];
    if let Some((rate, arrow)) = trend {
        let role = if rate >= 1.0 {
            Role::Warning
        } else {
            Role::Muted
        };
        spans.push(Span::styled(
            format!("burn {rate:.1}× {arrow}"),
            t.style(role),
        ));
    }
    buf.set_line(inner.x, inner.y, &Line::from(spans), inner.width);
    if inner.height > 1 {
        let row = Rect::new(inner.x, inner.y + 1, inner.width, 1);
        match burn.and_then(|b| Some((budget_left(b)?, b.period_secs))) {
            Some(((left, span), period)) => LineGauge::default()
                .ratio(left)
                .label(budget_label(left, span, period))
                .filled_style(t.style(if left < 0.25 {
                    Role::Critical
                } else if left < 0.5 {
                    Role::Warning
                } else {
                    Role::Ok
                }))
                .unfilled_style(t.style(Role::Muted))
                .render(row, buf),
            None => {
                buf.set_stringn(
                    row.x,
                    row.y,
                    "budget: no SLO window yet",
                    usize::from(row.width),
                    t.style(Role::Muted),
                );
            }
        }
    }
    if inner.height > 2
        && e.metrics_error.is_none()
        && let Some(text) = e
            .vector
            .as_ref()
            .and_then(crate::tui::format::vector_summary)
    {
        let flat = e.ingestion.is_some()
            && e.vector
                .as_ref()
                .and_then(|v| v.growth_per_min)
                .is_some_and(|g| g <= 0.0);
        buf.set_stringn(
            inner.x,
            inner.y + 2,
            text,
            usize::from(inner.width),
            t.style(if flat { Role::Warning } else { Role::Muted }),
        );
    }
    if inner.height > 2 && e.metrics_error.is_some() {
        buf.set_stringn(
            inner.x,
            inner.y + 2,
            format!("no data: {}", e.metrics_error.as_deref().unwrap_or("")),
            usize::from(inner.width),
            t.style(Role::Stale),
        );
    }
    grey_if_stale(buf, inner, &ctx.link(&fresh), t);
}

fn draw_spend(buf: &mut Buffer, area: Rect, ctx: &WallCtx) {
    let t = ctx.theme;
    let s = ctx.snapshot;
    let fresh = match (&s.cost, &s.cost_source) {
        (None, None) => Freshness::NoData("no cost source".into(), None),
        (None, Some(src)) => Freshness::NoData(
            src.error.clone().unwrap_or_else(|| "no report yet".into()),
            src.last_success
                .map(|at| (ctx.now - at).num_seconds().max(0)),
        ),
        (Some(_), Some(src)) => {
            let age = src
                .last_success
                .map_or(0, |at| (ctx.now - at).num_seconds().max(0));
            if src.error.is_some() || src.is_stale(ctx.now) {
                Freshness::Stale(age, src.error.clone())
            } else {
                Freshness::Fresh(age)
            }
        }
        (Some(r), None) => Freshness::of(ctx.now, Some(r.generated_at), None),
    };
    let Some(inner) = tile(buf, area, " Spend ", &ctx.link(&fresh), t) else {
        return;
    };
    let Some(report) = &s.cost else { return };
    let cur = &report.currency;
    let Some(b) = &report.budget else {
        Paragraph::new("no monthly budget: set [cost] monthly_budget")
            .style(t.style(Role::Muted))
            .render(inner, buf);
        return;
    };
    let (today, past) = match b.daily.split_last() {
        Some((today, past)) => (Some(today.cost), past),
        None => (None, &b.daily[..]),
    };
    let avg =
        (!past.is_empty()).then(|| past.iter().map(|d| d.cost).sum::<f64>() / past.len() as f64);
    let mut rows = Vec::new();
    rows.push(Line::from(vec![
        Span::styled("today so far ", t.style(Role::Muted)),
        Span::styled(
            today.map_or("—".into(), |v| money(v, cur)),
            t.style(match (today, avg) {
                (Some(d), Some(a)) if d > a * 1.2 => Role::Warning,
                _ => Role::Ok,
            }),
        ),
        Span::styled(
            avg.map_or(String::new(), |a| {
                format!("  vs daily avg {}", money(a, cur))
            }),
            t.style(Role::Muted),
        ),
    ]));
    let mut y = inner.y;
    for line in &rows {
        buf.set_line(inner.x, y, line, inner.width);
        y += 1;
    }
    // Each figure is a line of text above its bar: a label drawn over a bar is cut where the
    // bar is narrower than the label, and overwritten by the fill (`█████forecast`).
    let figures = [
        (
            b.burn_pct,
            format!(
                "to date {} of {} ({}%) · {}% of month",
                money(b.month_to_date, cur),
                money(b.monthly_budget, cur),
                whole(b.burn_pct),
                whole(b.month_elapsed_pct)
            ),
            b.burn_pct > b.month_elapsed_pct,
        ),
        match &b.forecast {
            Some(f) => (
                f.pct,
                format!(
                    "forecast {} ({}% of budget){}",
                    money(f.month_end, cur),
                    whole(f.pct),
                    if f.over_budget { " OVER" } else { "" }
                ),
                f.over_budget,
            ),
            None => (0.0, "no forecast made".to_string(), false),
        },
    ];
    let remaining = inner.y + inner.height - y;
    let with_bars = remaining >= 4;
    if remaining >= 2 {
        for (pct, label, over) in figures {
            let role = if over {
                Role::Critical
            } else {
                Role::ChartPrimary
            };
            buf.set_stringn(inner.x, y, &label, usize::from(inner.width), t.style(role));
            y += 1;
            if with_bars {
                let width = usize::from(inner.width);
                let ratio = if pct.is_finite() {
                    (pct / 100.0).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let filled = ((ratio * width as f64).round() as usize).min(width);
                buf.set_stringn(inner.x, y, "█".repeat(filled), width, t.style(role));
                let rest = u16::try_from(filled).unwrap_or(inner.width);
                buf.set_stringn(
                    inner.x + rest,
                    y,
                    "░".repeat(width - filled),
                    width - filled,
                    t.style(Role::Muted),
                );
                y += 1;
            }
        }
    }
    let rest = inner.y + inner.height - y;
    if rest >= 1 {
        let skip = b.daily.len().saturating_sub(usize::from(inner.width));
        let daily: Vec<u64> = b.daily[skip..]
            .iter()
            .map(|d| d.cost.max(0.0).round() as u64)
            .collect();
        Sparkline::default()
            .data(&daily)
            .style(t.style(Role::ChartSecondary))
            .render(Rect::new(inner.x, y, inner.width, rest), buf);
    }
    grey_if_stale(buf, inner, &ctx.link(&fresh), t);
}

/// One row of the incidents ticker: an unresolved incident, or a signal group no incident
/// holds yet.
#[derive(Debug, Clone, PartialEq)]
struct TickerRow {
    severity: Severity,
    /// Not mitigated: what the counters count. A mitigated incident waits for its resolve
    /// window with every signal cleared; it is shown as such, below every live row.
    live: bool,
    /// `INC-12`, or `signal` for a group with no incident.
    label: String,
    since: Option<DateTime<Utc>>,
    text: String,
}

/// The ticker's rows, live ones first, then worst first, the newest of a severity on top (a
/// new critical stays on top).
fn ticker_rows(ctx: &WallCtx) -> Vec<TickerRow> {
    let s = ctx.snapshot;
    let mut groups = group_signals(s.incident_signals().enumerate());
    worst_first(&mut groups);
    let live_summaries: BTreeMap<&str, Vec<&str>> = groups
        .iter()
        .map(|g| {
            (
                g.key.as_str(),
                g.members.iter().map(|(_, m)| m.summary.as_str()).collect(),
            )
        })
        .collect();
    let open = ctx.incidents.iter().filter(|i| i.status.is_open());
    let recorded: BTreeSet<&str> = open.clone().map(|i| i.group.as_str()).collect();
    let mut rows: Vec<TickerRow> = open
        .map(|i| {
            let live = i.status != IncidentStatus::Mitigated;
            let live_now = live_summaries.get(i.group.as_str()).map_or(&[][..], |v| v);
            TickerRow {
                severity: i.severity,
                live,
                label: i.label(),
                since: Some(i.milestones.detected.unwrap_or(i.last_signal_at)),
                text: format!(
                    "{} ({})",
                    live_title(&i.title, live_now),
                    i.subject.describe()
                ),
            }
        })
        .collect();
    // Signals not yet on an incident, grouped as the Signals pane and the banner group them.
    for g in groups.iter().filter(|g| !recorded.contains(g.key.as_str())) {
        let (Some(severity), Some((_, worst))) = (g.severity(), g.worst()) else {
            continue;
        };
        rows.push(TickerRow {
            severity,
            live: true,
            label: "signal".into(),
            since: g.oldest(),
            text: match g.members.len() {
                1 => worst.summary.clone(),
                n => format!("{} {} ×{n} · {}", g.kind(), g.name(), worst.summary),
            },
        });
    }
    rows.sort_by_key(|r| {
        (
            !r.live,
            std::cmp::Reverse(r.severity),
            std::cmp::Reverse(r.since),
        )
    });
    rows
}

fn draw_ticker(buf: &mut Buffer, area: Rect, rows: &[TickerRow], ctx: &WallCtx) {
    let t = ctx.theme;
    let s = ctx.snapshot;
    let fresh = match s.taken_at {
        Some(at) => Freshness::of(ctx.now, Some(at), None),
        None => Freshness::NoData("no snapshot yet".into(), None),
    };
    let Some(inner) = tile(buf, area, " Incidents ", &ctx.link(&fresh), t) else {
        return;
    };
    // Glyph, status word, label and age take 25 columns.
    let text_width = usize::from(inner.width).saturating_sub(25);
    let mut lines: Vec<Line> = rows
        .iter()
        .map(|r| {
            let (glyph, word, role) = if r.live {
                (
                    severity_glyph(r.severity),
                    severity_label(r.severity),
                    severity_role(r.severity),
                )
            } else {
                ('✓', "MITIGATED", Role::Muted)
            };
            let label_role = if r.label == "signal" {
                Role::Muted
            } else {
                role
            };
            Line::from(vec![
                Span::styled(format!("{glyph} {word:<10}"), t.style(role)),
                Span::styled(format!("{:<8}", r.label), t.style(label_role)),
                Span::styled(
                    format!(
                        "{:>4} ",
                        r.since.map_or(String::new(), |at| compact_age(ctx.now, at))
                    ),
                    t.style(Role::Muted),
                ),
                // The subject is at the end: cut in the middle, not there.
                if r.live {
                    Span::raw(middle_ellipsis(&r.text, text_width))
                } else {
                    Span::styled(middle_ellipsis(&r.text, text_width), t.style(Role::Muted))
                },
            ])
        })
        .collect();
    // Blind is not calm: what cannot be seen heads the list, and an empty list says so.
    let blind = crate::tui::format::blind_lines(s, ctx.now);
    if lines.is_empty() {
        lines.push(if blind.is_empty() {
            Line::from(Span::styled(
                "● no open incidents, no signals",
                t.style(Role::Ok),
            ))
        } else {
            Line::from(Span::styled(
                "? no open incidents, no signals where fleetdeck can see",
                t.style(Role::Stale),
            ))
        });
    }
    for (i, b) in blind.into_iter().enumerate() {
        lines.insert(
            i,
            Line::from(vec![
                Span::styled(format!("{:<11}", "? BLIND"), t.style(Role::Warning)),
                Span::raw(b),
            ]),
        );
    }
    Paragraph::new(lines).render(inner, buf);
    grey_if_stale(buf, inner, &ctx.link(&fresh), t);
}

/// Severity by shape as well as colour.
fn severity_glyph(s: Severity) -> char {
    match s {
        Severity::Critical => '▲',
        Severity::Warning => '◆',
        Severity::Info => '●',
    }
}

#[cfg(test)]
pub(crate) mod tests;
