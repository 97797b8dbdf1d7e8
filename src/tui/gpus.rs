//! The GPUs pane: every GPU the GPU sources report as a sortable, filterable table
//! (utilisation, memory, temperature, power, XID, ECC, the pod holding it; idle-but-allocated
//! GPUs marked), and the detail view of one GPU with its utilisation history (its own readings
//! as `state` keeps them, else its node's Prometheus series). It draws
//! the snapshot it is given and owns only its table state. Imports the model and the tui
//! groundwork.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::format::{human_duration, same_host, table_title, write_memory_gib};
use super::keymap::Action;
use super::pane::{TableView, ViewCtx};
use super::table_pane::{Answer, TablePane, TableSpec, empty_message};
use super::theme::{Role, Theme};
use super::widgets::{
    ClusterColumn, DataTable, Fit, TableColumn, TableRow, draw_scrolled, field, filter_and_sort,
    section,
};
use crate::model::gpu::{DEFAULT_IDLE_UTILISATION_PCT, GpuModel, GpuProcessKind, ThrottleReason};
use crate::model::{History, Sample};

/// The GPUs pane: the table of GPUs, and one GPU's detail view.
pub type GpusPane = TablePane<GpuTable>;

/// What the GPUs pane shows: every GPU the sources report in the clusters in view, with the
/// rows cached while they stay the same.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuTable {
    /// Under this utilisation (%) a GPU held by a pod is marked idle.
    pub idle_below_pct: f64,
    /// The table's rows and widths while the GPUs, scope, filter and sort stay the same.
    cache: Option<GpuCache>,
    /// An attached cockpit's: the open GPU's utilisation readings as its daemon keeps them
    /// (uuid, the daemon's window in seconds, the readings).
    remote_history: Option<(String, u64, Vec<Sample>)>,
}

/// What the cached rows were made from: the GPUs by identity (state replaces the `Arc` when a
/// source reports), the cluster in view, the filter, the sort and the idle threshold. The key
/// holds the `Arc` itself: a bare address could be handed to a new list once the reclaim
/// thread frees the old one, and the cache would then index a list it was not built from.
#[derive(Debug, Clone)]
struct GpuCacheKey {
    gpus: Arc<Vec<GpuModel>>,
    cluster: Option<String>,
    filter: String,
    sort: Option<(usize, bool)>,
    idle_below_bits: u64,
}

impl PartialEq for GpuCacheKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.gpus, &other.gpus)
            && self.cluster == other.cluster
            && self.filter == other.filter
            && self.sort == other.sort
            && self.idle_below_bits == other.idle_below_bits
    }
}

/// Indexes into `snapshot.gpus` in display order, the content widths, and the title's counts:
/// 40,000 GPUs are filtered, sorted and measured once per change, not once per frame.
#[derive(Debug, Clone, PartialEq)]
struct GpuCache {
    key: GpuCacheKey,
    order: Vec<usize>,
    widths: Vec<usize>,
    total: usize,
    idle: usize,
}

impl Default for GpuTable {
    fn default() -> Self {
        GpuTable {
            idle_below_pct: DEFAULT_IDLE_UTILISATION_PCT,
            cache: None,
            remote_history: None,
        }
    }
}

/// Which GPU the detail view shows; it survives the snapshot being replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuKey {
    cluster: String,
    node: String,
    index: u32,
    mig_instance: Option<u32>,
}

impl GpuKey {
    fn of(g: &GpuModel) -> Self {
        GpuKey {
            cluster: g.cluster.clone(),
            node: g.node.clone(),
            index: g.index,
            mig_instance: g.mig_instance.as_ref().map(|m| m.gpu_instance_id),
        }
    }

    fn matches(&self, g: &GpuModel) -> bool {
        g.index == self.index
            && g.cluster == self.cluster
            && g.node == self.node
            && g.mig_instance.as_ref().map(|m| m.gpu_instance_id) == self.mig_instance
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Cluster,
    Node,
    Gpu,
    Model,
    Util,
    Memory,
    Temperature,
    Power,
    Xid,
    Ecc,
    Holder,
}

impl TableColumn for Column {
    const ALL: &'static [Column] = &[
        Column::Cluster,
        Column::Node,
        Column::Gpu,
        Column::Model,
        Column::Util,
        Column::Memory,
        Column::Temperature,
        Column::Power,
        Column::Xid,
        Column::Ecc,
        Column::Holder,
    ];
    const CLUSTER_COLUMN: ClusterColumn = ClusterColumn::UnlessScoped;

    fn header(self) -> &'static str {
        match self {
            Column::Cluster => "CLUSTER",
            Column::Node => "NODE",
            Column::Gpu => "GPU",
            Column::Model => "MODEL",
            Column::Util => "UTIL %",
            Column::Memory => "MEM GiB",
            Column::Temperature => "TEMP °C",
            Column::Power => "POWER W",
            Column::Xid => "XID",
            Column::Ecc => "ECC",
            Column::Holder => "HOLDER",
        }
    }

    /// The widest a cell of this column is drawn; longer text is cut.
    fn max_width(self) -> usize {
        match self {
            Column::Node | Column::Holder => 40,
            Column::Model => 24,
            _ => 20,
        }
    }

    fn fit(self) -> Fit {
        match self {
            Column::Node | Column::Holder => Fit::KeepDistinct,
            _ => Fit::CutEnd,
        }
    }
}

/// Cells of the utilisation bar after the percentage.
const UTIL_BAR_CELLS: usize = 5;

/// One GPU as the table sees it; its text is written only when needed.
struct GpuRow<'a> {
    /// Where the GPU is in `snapshot.gpus`: what the cache keeps.
    index: usize,
    gpu: &'a GpuModel,
    idle: bool,
}

impl TableRow<Column> for GpuRow<'_> {
    fn write_cell(&self, column: Column, out: &mut String) {
        let g = self.gpu;
        // Writing into a String cannot fail.
        let _ = match column {
            Column::Cluster => write!(out, "{}", g.cluster),
            Column::Node if g.node.is_empty() => write!(out, "-"),
            Column::Node => write!(out, "{}", g.node),
            Column::Gpu => match &g.mig_instance {
                Some(m) => write!(out, "{}:{}", g.index, m.gpu_instance_id),
                None => write!(out, "{}", g.index),
            },
            Column::Model => write!(out, "{}", g.model_name.as_deref().unwrap_or("-")),
            Column::Util => match g.utilization_pct {
                None => write!(out, "-"),
                Some(u) if self.idle => write!(out, "{u:>3.0}% idle"),
                Some(u) => {
                    let _ = write!(out, "{u:>3.0}% ");
                    push_util_bar(out, u, UTIL_BAR_CELLS);
                    Ok(())
                }
            },
            Column::Memory => write_memory_gib(out, g),
            Column::Temperature => match g.temperature_c {
                Some(t) => write!(out, "{t:.0}"),
                None => write!(out, "-"),
            },
            Column::Power => match g.power_w {
                Some(p) => write!(out, "{p:.0}"),
                None => write!(out, "-"),
            },
            Column::Xid => match g.xid_last {
                Some(x) => write!(out, "{x}"),
                None => write!(out, "-"),
            },
            Column::Ecc => match g.ecc_dbe_volatile {
                Some(n) => write!(out, "{n}"),
                None => write!(out, "-"),
            },
            Column::Holder => match &g.holder {
                Some(h) => write!(out, "{}/{}", h.namespace, h.pod),
                None => write!(out, "-"),
            },
        };
    }

    fn cell_style(&self, column: Column, theme: &Theme) -> Style {
        let g = self.gpu;
        match column {
            Column::Xid if g.xid_last.is_some() => theme.style(Role::Critical),
            Column::Ecc if g.ecc_dbe_volatile.is_some_and(|n| n > 0) => theme.style(Role::Critical),
            Column::Util if g.utilization_pct.is_none() => theme.style(Role::Muted),
            Column::Util if !self.idle => theme.style(Role::ChartPrimary),
            Column::Holder if g.holder.is_none() => theme.style(Role::Muted),
            _ => Style::default(),
        }
    }

    /// Orders two rows by a column: readings as numbers; a missing reading sorts first.
    fn compare(&self, other: &Self, column: Column) -> Ordering {
        let (a, b) = (self.gpu, other.gpu);
        match column {
            Column::Cluster => a.cluster.cmp(&b.cluster),
            Column::Node => a.node.cmp(&b.node),
            Column::Gpu => {
                let key =
                    |g: &GpuModel| (g.index, g.mig_instance.as_ref().map(|m| m.gpu_instance_id));
                key(a).cmp(&key(b))
            }
            Column::Model => a.model_name.cmp(&b.model_name),
            Column::Util => compare_readings(a.utilization_pct, b.utilization_pct),
            Column::Memory => a.memory_used_mib.cmp(&b.memory_used_mib),
            Column::Temperature => compare_readings(a.temperature_c, b.temperature_c),
            Column::Power => compare_readings(a.power_w, b.power_w),
            Column::Xid => a.xid_last.cmp(&b.xid_last),
            Column::Ecc => a.ecc_dbe_volatile.cmp(&b.ecc_dbe_volatile),
            Column::Holder => a.holder.cmp(&b.holder),
        }
    }

    /// The width a cell needs, without formatting it where the length is known.
    fn row_style(&self, theme: &Theme) -> Style {
        if self.idle {
            theme.style(Role::Warning)
        } else {
            theme.style(Role::Base)
        }
    }

    fn content_width(&self, column: Column) -> usize {
        let g = self.gpu;
        match column {
            Column::Cluster => g.cluster.chars().count(),
            Column::Node => g.node.chars().count().max(1),
            Column::Model => g.model_name.as_deref().map_or(1, |m| m.chars().count()),
            Column::Holder => g.holder.as_ref().map_or(1, |h| {
                h.namespace.chars().count() + 1 + h.pod.chars().count()
            }),
            Column::Gpu => 5,
            Column::Util => 5 + UTIL_BAR_CELLS,
            Column::Memory => 11,
            Column::Temperature | Column::Power => 4,
            Column::Xid | Column::Ecc => 3,
        }
    }
}

fn compare_readings(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

impl GpuTable {
    /// The GPUs of the clusters in view that the filter keeps, in sort order.
    fn rows<'c>(&self, ctx: &'c ViewCtx, view: &TableView) -> Vec<GpuRow<'c>> {
        let rows = ctx
            .snapshot
            .gpus
            .iter()
            .enumerate()
            .filter(|(_, g)| ctx.cluster.is_none_or(|c| g.cluster == c))
            .map(|(index, gpu)| GpuRow {
                index,
                gpu,
                idle: gpu.is_idle_allocated(self.idle_below_pct),
            });
        filter_and_sort(rows, Column::shown(ctx), view)
    }

    fn cache_key(&self, ctx: &ViewCtx, view: &TableView) -> GpuCacheKey {
        GpuCacheKey {
            gpus: Arc::clone(&ctx.snapshot.gpus),
            cluster: ctx.cluster.map(str::to_string),
            filter: view.filter.clone(),
            sort: view.sort,
            idle_below_bits: self.idle_below_pct.to_bits(),
        }
    }

    /// The cached rows, rebuilt when what they were made from changed.
    fn cached(&mut self, ctx: &ViewCtx, view: &TableView) -> &GpuCache {
        let key = self.cache_key(ctx, view);
        let cache = match self.cache.take() {
            Some(c) if c.key == key => c,
            _ => self.build_cache(ctx, view, key),
        };
        self.cache.insert(cache)
    }

    fn build_cache(&self, ctx: &ViewCtx, view: &TableView, key: GpuCacheKey) -> GpuCache {
        let rows = self.rows(ctx, view);
        let in_view = || {
            ctx.snapshot
                .gpus
                .iter()
                .filter(|g| ctx.cluster.is_none_or(|c| g.cluster == c))
        };
        GpuCache {
            key,
            order: rows.iter().map(|r| r.index).collect(),
            widths: super::widgets::content_widths(Column::shown(ctx), &rows),
            total: in_view().count(),
            idle: in_view()
                .filter(|g| g.is_idle_allocated(self.idle_below_pct))
                .count(),
        }
    }
}

impl TableSpec for GpuTable {
    type Key = GpuKey;

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), Column::shown(ctx).len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<GpuKey> {
        self.rows(ctx, view)
            .get(index)
            .map(|row| GpuKey::of(row.gpu))
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let (order, widths, total, idle) = {
            let c = self.cached(ctx, view);
            (c.order.clone(), c.widths.clone(), c.total, c.idle)
        };
        let rows: Vec<GpuRow> = order
            .iter()
            .filter_map(|&index| Some((index, ctx.snapshot.gpus.get(index)?)))
            .map(|(index, gpu)| GpuRow {
                index,
                gpu,
                idle: gpu.is_idle_allocated(self.idle_below_pct),
            })
            .collect();
        let mut title = vec![Span::styled(
            table_title("GPUs", ctx.cluster, rows.len(), total, &view.filter),
            theme.style(Role::Title),
        )];
        if idle > 0 {
            title.push(Span::styled(
                format!("{idle} idle but allocated "),
                theme.style(Role::Warning),
            ));
        }
        let table = DataTable {
            title: Line::from(title),
            columns: Column::shown(ctx),
            rows: &rows,
        };
        table.draw_with_widths(
            f,
            area,
            theme,
            view,
            Some(&widths),
            empty_message(total, "no GPU source reports any GPU yet", "GPU"),
        )
    }

    fn draw_detail(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        ctx: &ViewCtx,
        key: &GpuKey,
        scroll: &mut u16,
    ) -> usize {
        let theme = ctx.theme;
        let block = Block::bordered()
            .title(Line::styled(
                format!(
                    " GPU {} of {} · {} (Esc: back) ",
                    key.index, key.node, key.cluster
                ),
                theme.style(Role::Title),
            ))
            .border_style(theme.style(Role::BorderFocused));
        let inner = block.inner(area);
        frame.render_widget(block, area);

        let Some(gpu) = ctx.snapshot.gpus.iter().find(|g| key.matches(g)) else {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    "this GPU is no longer reported by any GPU source",
                    theme.style(Role::Stale),
                )),
                inner,
            );
            return usize::from(inner.height).max(1);
        };

        let history = gpu_utilisation(ctx.snapshot, gpu)
            .or_else(|| self.remote_utilisation(gpu))
            .or_else(|| node_utilisation(&ctx.snapshot.history, &gpu.node));
        let history_height = if history.is_some() { 6 } else { 2 };
        let [readings_area, history_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(history_height)]).areas(inner);

        let lines = gpu_detail_lines(ctx, gpu, self.idle_below_pct);
        let page = draw_scrolled(frame, readings_area, lines, None, scroll, theme);
        draw_history(frame, history_area, theme, gpu, history);
        page
    }

    fn open_gpu_uuid(
        &self,
        snapshot: &crate::model::Snapshot,
        detail: Option<&GpuKey>,
    ) -> Option<String> {
        let key = detail?;
        snapshot
            .gpus
            .iter()
            .find(|g| key.matches(g))
            .map(|g| g.uuid.clone())
    }

    fn set_gpu_history(&mut self, uuid: &str, window_s: u64, samples: Vec<Sample>) {
        self.remote_history = Some((uuid.to_string(), window_s, samples));
    }

    /// A cordon or drain from this pane applies to the GPU's node.
    fn intent(&self, action: Action, _ctx: &ViewCtx, selected: Option<GpuKey>) -> Answer {
        super::intent::node_intent(selected.map(|k| (k.cluster, k.node)), action)
    }
}

/// A utilisation chart: its title and its samples, oldest first.
type Chart = (String, Vec<Sample>);

impl GpuTable {
    /// The open GPU's readings as an attached cockpit's daemon sent them.
    fn remote_utilisation(&self, gpu: &GpuModel) -> Option<Chart> {
        let (uuid, window_s, samples) = self.remote_history.as_ref()?;
        if *uuid != gpu.uuid || samples.is_empty() {
            return None;
        }
        let span = match (samples.first(), samples.last()) {
            (Some(first), Some(last)) => (last.at - first.at).num_seconds(),
            _ => return None,
        };
        Some((
            format!(
                "gpu{} utilisation, {} readings over {} (up to {} kept, from the daemon)",
                gpu.index,
                samples.len(),
                human_duration(span),
                human_duration(i64::try_from(*window_s).unwrap_or(i64::MAX))
            ),
            samples.clone(),
        ))
    }
}

/// The utilisation chart under a GPU's readings, or why there is none.
fn draw_history(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    gpu: &GpuModel,
    history: Option<Chart>,
) {
    match history {
        Some((title, samples)) => {
            let chart = Block::bordered()
                .title(Line::styled(format!(" {title} "), theme.style(Role::Muted)))
                .border_style(theme.style(Role::Border));
            let width = usize::from(chart.inner(area).width);
            // The newest samples that fit, oldest on the left.
            let data: Vec<u64> = samples[samples.len().saturating_sub(width)..]
                .iter()
                .map(|s| s.value.clamp(0.0, 100.0).round() as u64)
                .collect();
            frame.render_widget(
                Sparkline::default()
                    .data(&data)
                    .max(100)
                    .style(theme.style(Role::ChartPrimary))
                    .block(chart),
                area,
            );
        }
        None => frame.render_widget(
            Paragraph::new(vec![
                Line::raw(""),
                Line::styled(
                    format!(
                        "no utilisation history (no prometheus/{}/gpu_util_pct series)",
                        gpu.node
                    ),
                    theme.style(Role::Muted),
                ),
            ]),
            area,
        ),
    }
}

/// The GPU's own utilisation readings as its source reported them (DCGM, NVML), kept by
/// `state` over the GPU history's window.
fn gpu_utilisation(snapshot: &crate::model::Snapshot, gpu: &GpuModel) -> Option<Chart> {
    let history = snapshot.gpu_history.read();
    let samples: Vec<Sample> = history
        .series(&gpu.uuid)?
        .iter()
        .filter_map(|s| {
            Some(Sample {
                at: s.at,
                value: s.utilization_pct()?,
            })
        })
        .collect();
    let span = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => (last.at - first.at).num_seconds(),
        _ => return None,
    };
    // The span the readings cover, not the window they may fill: a young series says so.
    Some((
        format!(
            "gpu{} utilisation, {} readings over {} (up to {} kept)",
            gpu.index,
            samples.len(),
            human_duration(span),
            human_duration(history.window().as_secs() as i64)
        ),
        samples,
    ))
}

/// The Prometheus utilisation series of a GPU's node, by its name or its first DNS label.
fn node_utilisation(history: &History, node: &str) -> Option<Chart> {
    let exact = format!("prometheus/{node}/gpu_util_pct");
    let (key, samples) = history.get_key_value(&exact).or_else(|| {
        history.iter().find(|(k, _)| {
            k.strip_prefix("prometheus/")
                .and_then(|k| k.strip_suffix("/gpu_util_pct"))
                .is_some_and(|name| same_host(name, node))
        })
    })?;
    Some((
        format!("{key}: node utilisation, {} samples", samples.len()),
        samples.clone(),
    ))
}

fn gpu_detail_lines<'a>(ctx: &ViewCtx, g: &'a GpuModel, idle_below_pct: f64) -> Vec<Line<'a>> {
    let theme = ctx.theme;
    let muted = theme.style(Role::Muted);
    let critical = theme.style(Role::Critical);
    let unknown = || Span::styled("not reported", muted);
    let text = |s: String| Span::raw(s);
    let mut lines = Vec::new();

    lines.push(field(theme, "UUID", vec![text(g.uuid.clone())]));
    lines.push(field(
        theme,
        "Model",
        vec![text(format!(
            "{} · driver {} · PCI {}",
            g.model_name.as_deref().unwrap_or("unknown model"),
            g.driver_version.as_deref().unwrap_or("unknown"),
            g.pci_bus_id.as_deref().unwrap_or("unknown"),
        ))],
    ));
    let mig = match (&g.mig_instance, g.mig_enabled) {
        (Some(m), _) => format!(
            "instance {}{}",
            m.gpu_instance_id,
            m.profile
                .as_deref()
                .map_or_else(String::new, |p| format!(" ({p})"))
        ),
        (None, Some(true)) => "enabled".into(),
        (None, Some(false)) => "disabled".into(),
        (None, None) => "not reported".into(),
    };
    lines.push(field(theme, "MIG", vec![text(mig)]));

    let util = match g.utilization_pct {
        Some(u) if g.is_idle_allocated(idle_below_pct) => vec![Span::styled(
            format!("{u:.0}% · idle but allocated (under {idle_below_pct:.0}%)"),
            theme.style(Role::Warning),
        )],
        Some(u) => vec![
            text(format!("{u:.0}% ")),
            Span::styled(util_bar(u, 20), theme.style(Role::ChartPrimary)),
        ],
        None => vec![unknown()],
    };
    lines.push(field(theme, "Utilisation", util));
    let gib = |mib: u64| mib as f64 / 1024.0;
    let memory = match (g.memory_used_mib, g.memory_total_mib, g.memory_free_mib) {
        (None, None, None) => unknown(),
        (used, total, free) => text(format!(
            "{} of {} GiB used, {} GiB free",
            used.map_or_else(|| "?".into(), |m| format!("{:.1}", gib(m))),
            total.map_or_else(|| "?".into(), |m| format!("{:.1}", gib(m))),
            free.map_or_else(|| "?".into(), |m| format!("{:.1}", gib(m))),
        )),
    };
    lines.push(field(theme, "Memory", vec![memory]));
    lines.push(field(
        theme,
        "Temperature",
        vec![
            g.temperature_c
                .map_or_else(unknown, |t| text(format!("{t:.0} °C"))),
        ],
    ));
    let power = match (g.power_w, g.power_limit_w) {
        (Some(p), Some(l)) => text(format!("{p:.0} W of {l:.0} W limit")),
        (Some(p), None) => text(format!("{p:.0} W")),
        (None, _) => unknown(),
    };
    lines.push(field(theme, "Power", vec![power]));
    lines.push(field(
        theme,
        "SM clock",
        vec![
            g.sm_clock_mhz
                .map_or_else(unknown, |c| text(format!("{c} MHz"))),
        ],
    ));
    lines.push(field(
        theme,
        "Last XID",
        vec![match g.xid_last {
            Some(x) => Span::styled(x.to_string(), critical),
            None => Span::styled("none", muted),
        }],
    ));
    let count = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
    let ecc_style = if g.ecc_dbe_volatile.is_some_and(|n| n > 0) {
        critical
    } else {
        Style::default()
    };
    lines.push(field(
        theme,
        "ECC volatile",
        vec![Span::styled(
            format!(
                "{} single-bit, {} double-bit",
                count(g.ecc_sbe_volatile),
                count(g.ecc_dbe_volatile)
            ),
            ecc_style,
        )],
    ));
    lines.push(field(
        theme,
        "Retired pages",
        vec![text(format!(
            "{} single-bit, {} double-bit",
            count(g.retired_pages_sbe),
            count(g.retired_pages_dbe)
        ))],
    ));
    let flag = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    };
    let remap_style = if g.remap_failure == Some(true) || g.remap_pending == Some(true) {
        theme.style(Role::Warning)
    } else {
        Style::default()
    };
    lines.push(field(
        theme,
        "Remapped rows",
        vec![Span::styled(
            format!(
                "{} correctable, {} uncorrectable, pending {}, failure {}",
                count(g.remapped_rows_correctable),
                count(g.remapped_rows_uncorrectable),
                flag(g.remap_pending),
                flag(g.remap_failure)
            ),
            remap_style,
        )],
    ));
    let throttle = match &g.throttle_reasons {
        None => unknown(),
        Some(r) if r.is_empty() => Span::styled("none", muted),
        Some(r) => {
            let style = if r.iter().any(|r| r.is_slowdown()) {
                theme.style(Role::Warning)
            } else {
                Style::default()
            };
            let names: Vec<&str> = r.iter().map(|r| throttle_text(*r)).collect();
            Span::styled(names.join(", "), style)
        }
    };
    lines.push(field(theme, "Throttling", vec![throttle]));
    let holder = match &g.holder {
        Some(h) => text(format!(
            "{}/{}{}",
            h.namespace,
            h.pod,
            h.container
                .as_deref()
                .map_or_else(String::new, |c| format!(" (container {c})"))
        )),
        None => Span::styled("none", muted),
    };
    lines.push(field(theme, "Held by", vec![holder]));
    lines.push(field(
        theme,
        "Sampled",
        vec![text(format!(
            "{} ago ({})",
            human_duration((ctx.now - g.sampled_at).num_seconds()),
            g.sampled_at.format("%Y-%m-%d %H:%M:%S UTC")
        ))],
    ));

    if let Some(processes) = &g.processes {
        lines.push(Line::raw(""));
        lines.push(section(theme, "Processes"));
        if processes.is_empty() {
            lines.push(Line::styled("  none", muted));
        }
        for p in processes {
            let kind = match p.kind {
                GpuProcessKind::Compute => "compute",
                GpuProcessKind::Graphics => "graphics",
            };
            let memory = p
                .used_memory_mib
                .map_or_else(|| "memory not reported".into(), |m| format!("{m} MiB"));
            lines.push(Line::raw(format!("  pid {:<8} {kind:<8} {memory}", p.pid)));
        }
    }
    lines
}

fn throttle_text(r: ThrottleReason) -> &'static str {
    match r {
        ThrottleReason::GpuIdle => "idle",
        ThrottleReason::ApplicationsClocksSetting => "application clocks",
        ThrottleReason::SwPowerCap => "power cap",
        ThrottleReason::HwSlowdown => "hardware slowdown",
        ThrottleReason::SyncBoost => "sync boost",
        ThrottleReason::SwThermalSlowdown => "thermal slowdown (software)",
        ThrottleReason::HwThermalSlowdown => "thermal slowdown (hardware)",
        ThrottleReason::HwPowerBrakeSlowdown => "power brake",
        ThrottleReason::DisplayClockSetting => "display clock",
    }
}

/// A bar of `cells` cells filled to `pct` in eighths of a cell.
fn util_bar(pct: f64, cells: usize) -> String {
    let mut bar = String::new();
    push_util_bar(&mut bar, pct, cells);
    bar
}

fn push_util_bar(out: &mut String, pct: f64, cells: usize) {
    const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = ((pct.clamp(0.0, 100.0) / 100.0) * (cells * 8) as f64).round() as usize;
    let full = eighths / 8;
    for _ in 0..full {
        out.push('█');
    }
    if full < cells {
        out.push(PARTIAL[eighths % 8]);
    }
    for _ in (full + 1)..cells {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::nodes::fixtures::*;
    use super::*;
    use crate::model::Snapshot;

    #[test]
    fn the_table_shows_each_gpu_with_readings_and_holder() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let lines = draw(&mut GpusPane::new(), &ctx, 120, 30);

        let header = line_with(&lines, "HOLDER");
        for h in [
            "CLUSTER", "NODE", "GPU", "MODEL", "UTIL %", "MEM GiB", "TEMP °C", "POWER W", "XID",
            "ECC",
        ] {
            assert!(header.contains(h), "{h} missing from {header:?}");
        }
        assert!(screen_has(&lines, "GPUs (4/4)"));
        assert!(screen_has(&lines, "1 idle but allocated"));
        let busy = line_with(&lines, "ml/train-0");
        assert!(busy.contains(" 91% ████▌"), "{busy}");
        assert!(busy.contains("40.0/80.0"), "{busy}");
        assert!(busy.contains("61") && busy.contains("420"), "{busy}");
        let broken = line_with(&lines, "gpu-a-2");
        assert!(broken.contains(" 79 "), "XID 79: {broken}");
        assert!(
            broken.contains(" 2 "),
            "two double-bit ECC errors: {broken}"
        );
        assert!(line_with(&lines, "research/eval-0").contains("A100"));
    }

    #[test]
    fn an_idle_gpu_held_by_a_pod_is_marked_and_highlighted() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let buffer = render_buffer(120, 30, |f| GpusPane::new().draw(f, f.area(), &ctx));
        let lines = text_lines(&buffer);
        assert!(line_with(&lines, "ml/serve-0").contains("  2% idle"));
        let warning = theme.style(Role::Warning).fg;
        assert_eq!(style_of(&buffer, "ml/serve-0").and_then(|s| s.fg), warning);
        assert_ne!(
            style_of(&buffer, "research/eval-0").and_then(|s| s.fg),
            warning
        );
        let critical = theme.style(Role::Critical).fg;
        assert_eq!(
            style_of(&buffer, "79").and_then(|s| s.fg),
            critical,
            "XID 79"
        );
    }

    #[test]
    fn the_filter_narrows_gpus_and_the_title_counts_them() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        pane.set_filter("a100");
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "GPUs (1/4) /a100"));
        assert!(screen_has(&lines, "research/eval-0"));
        assert!(!screen_has(&lines, "ml/train-0"));

        let ctx = super::super::nodes::fixtures::ctx(&snapshot, &theme, Some("prod-a"));
        pane.set_filter("");
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "GPUs in prod-a (3/3)"));
        assert!(!line_with(&lines, "HOLDER").contains("CLUSTER"));
    }

    #[test]
    fn sorting_by_utilisation_orders_rows_by_it() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        let util = Column::ALL
            .iter()
            .position(|c| *c == Column::Util)
            .expect("UTIL column");
        for _ in 0..=util {
            pane.handle(Action::SortNext, &ctx);
        }
        pane.handle(Action::SortReverse, &ctx);
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(line_with(&lines, "HOLDER").contains("UTIL %▼"));
        let order: Vec<usize> = ["ml/train-0", "research/eval-0", "ml/serve-0", "gpu-a-2"]
            .iter()
            .map(|t| lines.iter().position(|l| l.contains(t)).expect(t))
            .collect();
        assert!(
            order.is_sorted(),
            "91%, 55%, 2%, 0% from the top: {order:?}"
        );
    }

    #[test]
    fn open_shows_the_gpus_readings_and_history_and_back_closes_it() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        assert!(pane.handle(Action::Down, &ctx));
        assert!(pane.handle(Action::Open, &ctx));
        assert_eq!(
            pane.detail()
                .map(|k| (k.cluster.as_str(), k.node.as_str(), k.index)),
            Some(("prod-a", "gpu-a-1", 1))
        );
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "GPU 1 of gpu-a-1 · prod-a"));
        assert!(screen_has(&lines, "GPU-gpu-a-1-1"));
        assert!(screen_has(&lines, "2% · idle but allocated"));
        assert!(screen_has(&lines, "ml/serve-0"));
        assert!(screen_has(&lines, "prometheus/gpu-a-1/gpu_util_pct"));
        assert!(
            lines.iter().any(|l| l.contains('█')),
            "the sparkline draws the history"
        );
        assert!(pane.handle(Action::Back, &ctx));
        assert_eq!(pane.detail(), None);
        assert!(screen_has(&draw(&mut pane, &ctx, 120, 30), "GPUs (4/4)"));
    }

    #[test]
    fn a_gpu_without_history_says_so_and_shows_its_xid() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        pane.set_filter("gpu-a-2");
        assert!(pane.handle(Action::Open, &ctx));
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(line_with(&lines, "Last XID").contains("79"));
        assert!(line_with(&lines, "ECC volatile").contains("2 double-bit"));
        assert!(screen_has(
            &lines,
            "no utilisation history (no prometheus/gpu-a-2/gpu_util_pct series)"
        ));
    }

    #[test]
    fn a_dcgm_only_gpu_charts_its_own_readings_kept_by_state() {
        let (mut snapshot, theme) = (fleet(), Theme::default_theme());
        // No Prometheus: the GPU's readings are what state kept of its DCGM rounds.
        Arc::make_mut(&mut snapshot.history).clear();
        let history = crate::model::gpu_history::SharedGpuHistory::default();
        for i in 0..30 {
            let mut round = (*snapshot.gpus).clone();
            for g in &mut round {
                g.sampled_at =
                    crate::tui::nodes::fixtures::now() - chrono::Duration::seconds(300 - i * 10);
                g.utilization_pct = Some(if i % 2 == 0 { 90.0 } else { 10.0 });
            }
            history.write().record(&round);
        }
        snapshot.gpu_history = history;
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        pane.set_filter("gpu-a-2");
        assert!(pane.handle(Action::Open, &ctx));
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(
            screen_has(
                &lines,
                "gpu0 utilisation, 30 readings over 4m50s (up to 10m kept)"
            ),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains('█')),
            "the sparkline draws them"
        );
        assert!(!screen_has(&lines, "no utilisation history"));
    }

    #[test]
    fn many_gpus_draw_only_the_visible_rows() {
        let gpus: Vec<GpuModel> = (0..5000)
            .map(|i| gpu("big", &format!("node-{:05}", i / 8), i % 8, Some(50.0)))
            .collect();
        let snapshot = Snapshot {
            gpus: Arc::new(gpus),
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "GPUs (5000/5000)"));
        let rows = lines.iter().filter(|l| l.contains("node-")).count();
        assert_eq!(rows, 27, "30 lines less two borders and the header");
        assert!(screen_has(&lines, "node-00003"));
        assert!(!screen_has(&lines, "node-00004"));
        pane.handle(Action::Bottom, &ctx);
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "node-00624"));
        assert!(!screen_has(&lines, "node-00000"));
    }

    #[test]
    fn rows_are_filtered_sorted_and_measured_once_per_change_not_per_frame() {
        let gpus: Vec<GpuModel> = (0..64)
            .map(|i| {
                gpu(
                    "big",
                    &format!("node-{:03}", i / 8),
                    i % 8,
                    Some(f64::from(i)),
                )
            })
            .collect();
        let snapshot = Snapshot {
            gpus: Arc::new(gpus),
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        draw(&mut pane, &ctx, 120, 30);
        let first = pane.spec.cache.clone();
        draw(&mut pane, &ctx, 120, 30);
        assert_eq!(pane.spec.cache, first, "an unchanged frame reuses the rows");
        pane.view.filter = "node-007".into();
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert_eq!(pane.spec.cache.as_ref().map(|c| c.order.len()), Some(8));
        assert!(screen_has(&lines, "node-007") && !screen_has(&lines, "node-006"));
        // A new report (a new Arc) is new rows, even with the same GPUs.
        let newer = Snapshot {
            gpus: Arc::new(snapshot.gpus.as_ref().clone()),
            ..Snapshot::default()
        };
        let ctx = super::super::nodes::fixtures::ctx(&newer, &theme, None);
        draw(&mut pane, &ctx, 120, 30);
        assert_ne!(pane.spec.cache, first);
    }

    #[test]
    fn the_row_cache_keeps_the_gpu_list_it_was_built_from_alive() {
        // The reclaim thread frees a replaced snapshot; a cache that kept only its address
        // could then match a new list allocated at the same place and index past its end.
        let theme = Theme::default_theme();
        let mut pane = GpusPane::new();
        let big: Vec<GpuModel> = (0..64)
            .map(|i| gpu("big", &format!("node-{:03}", i / 8), i % 8, Some(50.0)))
            .collect();
        let old = Snapshot {
            gpus: Arc::new(big),
            ..Snapshot::default()
        };
        let weak = Arc::downgrade(&old.gpus);
        draw(&mut pane, &ctx(&old, &theme, None), 120, 30);
        drop(old);
        assert!(
            weak.upgrade().is_some(),
            "the cache holds the list, so its address cannot be reused while compared"
        );
        for _ in 0..32 {
            let small = Snapshot {
                gpus: Arc::new(vec![gpu("small", "node-000", 0, Some(1.0))]),
                ..Snapshot::default()
            };
            let lines = draw(&mut pane, &ctx(&small, &theme, None), 120, 30);
            assert_eq!(pane.spec.cache.as_ref().map(|c| c.order.len()), Some(1));
            assert!(screen_has(&lines, "node-000") && !screen_has(&lines, "node-001"));
        }
    }

    #[test]
    fn a_tiny_terminal_draws_without_panicking() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = GpusPane::new();
        for (w, h) in [(20, 5), (1, 1), (0, 0)] {
            draw(&mut pane, &ctx, w, h);
        }
        pane.handle(Action::Open, &ctx);
        draw(&mut pane, &ctx, 20, 5);
        pane.handle(Action::PageDown, &ctx);
        draw(&mut pane, &ctx, 20, 5);
        let empty = Snapshot::default();
        let ctx = super::super::nodes::fixtures::ctx(&empty, &theme, None);
        let lines = draw(&mut GpusPane::new(), &ctx, 120, 5);
        assert!(screen_has(&lines, "no GPU source reports any GPU yet"));
    }

    #[test]
    fn the_utilisation_bar_fills_in_eighths() {
        assert_eq!(util_bar(0.0, 5), "     ");
        assert_eq!(util_bar(100.0, 5), "█████");
        assert_eq!(util_bar(50.0, 5), "██▌  ");
        assert_eq!(util_bar(250.0, 2), "██");
    }
}
