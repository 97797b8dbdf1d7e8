//! The Pods pane: every pod of the clusters in view (kubectl's columns, the status with its
//! reason), filtered by text, `-n`, `--context`, `--owner` and `-l` label selectors, sorted by
//! any column, and one pod's describe-like detail (containers, owner, labels, events, GPUs).
//! At 150,000 pods a frame must not walk the list: the filtered, sorted row indices and the
//! column widths are cached, keyed by the snapshot's pod rows (shared `Arc`s that `state`
//! replaces only when pods changed), the scope, the filter and the sort; a frame formats only
//! the visible rows. Imports the model and the tui groundwork.

use std::cmp::Ordering;
use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row, Table};

use super::format::{human_duration, same_host, sorted_header, table_title};
use super::intent::Intent;
use super::keymap::Action;
use super::pane::{TableView, ViewCtx};
use super::selector::LabelSelector;
use super::table_pane::{Answer, TablePane, TableSpec};
use super::theme::{Role, Theme};
use super::widgets::{
    CELL_SEPARATOR, RowFilter, distinct_ellipsis, draw_empty_message, draw_scrolled, field,
    fit_widths, length_constraints, neighbour_ends, section,
};
use crate::model::PodRows;
use crate::model::update::PodRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Context,
    Namespace,
    Name,
    Ready,
    Status,
    Restarts,
    Node,
    Gpus,
    Age,
}

impl Column {
    const ALL: [Column; 9] = [
        Column::Context,
        Column::Namespace,
        Column::Name,
        Column::Ready,
        Column::Status,
        Column::Restarts,
        Column::Node,
        Column::Gpus,
        Column::Age,
    ];

    /// CONTEXT only while more than one cluster is in view.
    fn shown(several: bool) -> &'static [Column] {
        if several {
            &Column::ALL
        } else {
            &Column::ALL[1..]
        }
    }

    fn header(self) -> &'static str {
        match self {
            Column::Context => "CONTEXT",
            Column::Namespace => "NAMESPACE",
            Column::Name => "NAME",
            Column::Ready => "READY",
            Column::Status => "STATUS",
            Column::Restarts => "RESTARTS",
            Column::Node => "NODE",
            Column::Gpus => "GPUS",
            Column::Age => "AGE",
        }
    }

    fn max_width(self) -> usize {
        match self {
            Column::Name => 60,
            Column::Status => 40,
            Column::Node => 36,
            _ => 28,
        }
    }

    /// Whether `/` text matches this column (AGE changes with the clock, so it is not matched).
    fn filtered(self) -> bool {
        self != Column::Age
    }
}

/// The `/` filter of the Pods pane: words are matched as text in any cell; `-n NS`,
/// `--context NAME` and `--owner Kind/name` must match exactly; `-l` takes the rest of the
/// line as a label selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodFilter {
    pub text: String,
    pub namespace: Option<String>,
    pub context: Option<String>,
    pub owner: Option<String>,
    pub selector: LabelSelector,
}

impl PodFilter {
    pub fn parse(filter: &str) -> Result<Self, String> {
        let mut out = PodFilter::default();
        let mut words = Vec::new();
        let mut rest = filter.trim_start();
        while !rest.is_empty() {
            let (word, after) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(w, a)| (w, a.trim_start()));
            let mut value = |flag: &str| -> Result<String, String> {
                let (v, after) = after
                    .split_once(char::is_whitespace)
                    .map_or((after, ""), |(v, a)| (v, a.trim_start()));
                if v.is_empty() {
                    return Err(format!("{flag} needs a value"));
                }
                rest = after;
                Ok(v.to_string())
            };
            match word {
                "-l" | "--selector" => {
                    out.selector = LabelSelector::parse(after).map_err(|e| e.0)?;
                    break;
                }
                "-n" | "--namespace" => out.namespace = Some(value(word)?),
                "--context" => out.context = Some(value(word)?),
                "--owner" => out.owner = Some(value(word)?),
                _ => {
                    words.push(word);
                    rest = after;
                }
            }
        }
        out.text = words.join(" ");
        Ok(out)
    }

    fn keeps(&self, cluster: &str, pod: &PodRecord) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|n| *pod.namespace == *n)
            && self.context.as_deref().is_none_or(|c| cluster == c)
            && self
                .owner
                .as_deref()
                .is_none_or(|o| pod.owner.as_deref() == Some(o))
            && self.selector.matches(|k| pod.label(k))
    }
}

/// What the cached rows were computed from. The pod rows are compared by pointer: the cache
/// holds them, so an address cannot be reused while it is compared.
#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    pods: Vec<(String, usize)>,
    namespace: Option<String>,
    filter: String,
    sort: Option<(usize, bool)>,
}

impl CacheKey {
    fn of(ctx: &ViewCtx, view: &TableView) -> Self {
        CacheKey {
            pods: ctx
                .clusters()
                .map(|c| (c.name.clone(), std::sync::Arc::as_ptr(&c.pods) as usize))
                .collect(),
            namespace: ctx.namespace.map(str::to_string),
            filter: view.filter.clone(),
            sort: view.sort,
        }
    }
}

/// The filtered, sorted rows and the column widths, computed once per change.
#[derive(Debug, Clone)]
struct PodsCache {
    key: CacheKey,
    clusters: Vec<(String, PodRows)>,
    /// (cluster, pod) indices into `clusters`, in display order.
    rows: Vec<(u32, u32)>,
    columns: &'static [Column],
    widths: Vec<u16>,
    total: usize,
    /// Why the filter does not parse.
    error: Option<String>,
}

impl PodsCache {
    fn build(ctx: &ViewCtx, view: &TableView) -> Self {
        let key = CacheKey::of(ctx, view);
        let clusters: Vec<(String, PodRows)> = ctx
            .clusters()
            .map(|c| (c.name.clone(), c.pods.clone()))
            .collect();
        let columns = Column::shown(clusters.len() > 1);
        let total = clusters.iter().map(|(_, p)| p.len()).sum();
        let (filter, error) = match PodFilter::parse(&view.filter) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(e)),
        };
        let mut rows = Vec::new();
        if let Some(filter) = &filter {
            let mut text = RowFilter::new(&filter.text);
            for (ci, (cluster, pods)) in clusters.iter().enumerate() {
                for (pi, pod) in pods.iter().enumerate() {
                    if !ctx.in_namespace(&pod.namespace) || !filter.keeps(cluster, pod) {
                        continue;
                    }
                    let keep = text.keeps(|out| {
                        for (i, &c) in columns.iter().filter(|c| c.filtered()).enumerate() {
                            if i > 0 {
                                out.push(CELL_SEPARATOR);
                            }
                            write_cell(cluster, pod, c, None, out);
                        }
                    });
                    if keep {
                        rows.push((ci as u32, pi as u32));
                    }
                }
            }
        }
        let pod = |&(c, p): &(u32, u32)| {
            let (name, pods) = &clusters[c as usize];
            (name.as_str(), pods[p as usize].as_ref())
        };
        if let Some(column) = view.sort.and_then(|(i, _)| columns.get(i).copied()) {
            let descending = view.sort.is_some_and(|(_, d)| d);
            rows.sort_by(|a, b| {
                let order = compare(pod(a), pod(b), column);
                if descending { order.reverse() } else { order }
            });
        }
        let mut widths: Vec<usize> = columns.iter().map(|c| c.header().len() + 1).collect();
        let mut cell = String::new();
        for row in &rows {
            let (cluster, p) = pod(row);
            for (w, &c) in widths.iter_mut().zip(columns) {
                cell.clear();
                write_cell(cluster, p, c, None, &mut cell);
                *w = (*w).max(cell.chars().count().min(c.max_width()));
            }
        }
        PodsCache {
            key,
            clusters,
            rows,
            columns,
            widths: widths
                .into_iter()
                .map(|w| u16::try_from(w).unwrap_or(u16::MAX))
                .collect(),
            total,
            error,
        }
    }

    fn get(&self, index: usize) -> Option<(&str, &PodRecord)> {
        let &(c, p) = self.rows.get(index)?;
        let (name, pods) = self.clusters.get(c as usize)?;
        Some((name.as_str(), pods.get(p as usize)?.as_ref()))
    }
}

/// Writes a cell; AGE needs the clock (`None` writes it as its widest, for measuring).
fn write_cell(
    cluster: &str,
    pod: &PodRecord,
    column: Column,
    now: Option<chrono::DateTime<chrono::Utc>>,
    out: &mut String,
) {
    // Writing into a String cannot fail.
    let _ = match column {
        Column::Context => write!(out, "{cluster}"),
        Column::Namespace => write!(out, "{}", pod.namespace),
        Column::Name => write!(out, "{}", pod.name),
        Column::Ready => match pod.ready_containers() {
            (_, 0) => write!(out, "{}", if pod.ready { "yes" } else { "no" }),
            (r, t) => write!(out, "{r}/{t}"),
        },
        Column::Status => match pod.status() {
            (s, Some(r)) => write!(out, "{s} ({r})"),
            (s, None) => write!(out, "{s}"),
        },
        Column::Restarts => write!(out, "{}", pod.restarts),
        Column::Node => write!(out, "{}", pod.node.as_deref().unwrap_or("-")),
        Column::Gpus if pod.gpus == 0 => write!(out, "-"),
        Column::Gpus => write!(out, "{}", pod.gpus),
        Column::Age => match (pod.created, now) {
            (Some(at), Some(now)) => write!(out, "{}", human_duration((now - at).num_seconds())),
            (None, Some(_)) => write!(out, "-"),
            (_, None) => write!(out, "99d99h"),
        },
    };
}

fn compare(a: (&str, &PodRecord), b: (&str, &PodRecord), column: Column) -> Ordering {
    let ((ca, x), (cb, y)) = (a, b);
    match column {
        Column::Context => ca.cmp(cb),
        Column::Namespace => (&x.namespace, &x.name).cmp(&(&y.namespace, &y.name)),
        Column::Name => x.name.cmp(&y.name),
        Column::Ready => x.ready_containers().cmp(&y.ready_containers()),
        Column::Status => x.status().cmp(&y.status()),
        Column::Restarts => x.restarts.cmp(&y.restarts),
        Column::Node => x.node.cmp(&y.node),
        Column::Gpus => x.gpus.cmp(&y.gpus),
        // Older first when ascending, as the AGE text grows; unknown creation sorts first.
        Column::Age => match (x.created, y.created) {
            (Some(p), Some(q)) => q.cmp(&p),
            (p, q) => p.is_some().cmp(&q.is_some()),
        },
    }
}

/// The style of a pod's status: failing red, waiting yellow, done muted.
fn status_role(pod: &PodRecord) -> Role {
    let (ready, total) = pod.ready_containers();
    match pod.status().0 {
        _ if pod.terminating => Role::Warning,
        "Running" if ready == total && (total > 0 || pod.ready) => Role::Ok,
        "Running" | "Pending" | "ContainerCreating" | "PodInitializing" => Role::Warning,
        "Completed" => Role::Muted,
        _ => Role::Critical,
    }
}

/// The Pods pane: the table of pods, and one pod's describe-like detail.
pub type PodsPane = TablePane<PodTable>;

/// What the Pods pane shows: every pod of the clusters and namespace in view that the filter
/// keeps, its rows cached while they stay the same; a row is named by (context, namespace,
/// name), what the Logs view and the actions apply to.
#[derive(Debug, Clone, Default)]
pub struct PodTable {
    cache: Option<PodsCache>,
    /// The daemon an attached cockpit shows: its pods are not streamed.
    attached: Option<String>,
}

impl PodTable {
    fn rows(&mut self, ctx: &ViewCtx, view: &TableView) -> &PodsCache {
        let key = CacheKey::of(ctx, view);
        let fresh = self.cache.as_ref().is_some_and(|c| c.key == key);
        if !fresh {
            self.cache = Some(PodsCache::build(ctx, view));
        }
        // Just built when it was missing.
        self.cache
            .get_or_insert_with(|| PodsCache::build(ctx, view))
    }
}

impl TableSpec for PodTable {
    type Key = (String, String, String);
    const FILTER_CLOSES_DETAIL: bool = true;

    fn set_attached(&mut self, daemon: Option<&str>) {
        self.attached = daemon.map(str::to_string);
    }

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (
            self.rows(ctx, view).rows.len(),
            Column::shown(ctx.clusters().count() > 1).len(),
        )
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<Self::Key> {
        let key = CacheKey::of(ctx, view);
        let built;
        let cache = match self.cache.as_ref().filter(|c| c.key == key) {
            Some(c) => c,
            None => {
                built = PodsCache::build(ctx, view);
                &built
            }
        };
        let (cluster, pod) = cache.get(index)?;
        Some((
            cluster.to_string(),
            pod.namespace.to_string(),
            pod.name.to_string(),
        ))
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let cache = self.rows(ctx, view);
        let what = match ctx.namespace {
            Some(ns) => format!("Pods · ns {ns}"),
            None => "Pods".to_string(),
        };
        let title = table_title(
            &what,
            ctx.cluster,
            cache.rows.len(),
            cache.total,
            &view.filter,
        );
        let block = Block::bordered()
            .title(Line::styled(title, theme.style(Role::Title)))
            .border_style(theme.style(Role::BorderFocused));
        let inner = block.inner(area);
        let page = usize::from(inner.height.saturating_sub(1)).max(1);
        view.clamp(cache.rows.len(), page);
        let headers: Vec<String> = cache
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| sorted_header(c.header(), i, view.sort))
            .collect();
        // The cached content widths, fitted to the pane: the widest columns give way first,
        // and a pod or node name is cut in the middle so its distinguishing end stays.
        let wanted: Vec<usize> = cache.widths.iter().map(|&w| usize::from(w)).collect();
        // The short, telling columns are never cut; the names give way (in the middle).
        let floors: Vec<usize> = headers
            .iter()
            .zip(cache.columns.iter())
            .zip(&wanted)
            .map(|((h, c), &w)| match c {
                Column::Ready | Column::Status | Column::Restarts | Column::Gpus | Column::Age => w,
                _ => h.chars().count(),
            })
            .collect();
        let fitted = fit_widths(
            &wanted,
            &floors,
            usize::from(inner.width).saturating_sub(wanted.len().saturating_sub(1)),
        );
        let widths = length_constraints(&fitted);
        let end = (view.offset + page).min(cache.rows.len());
        let visible: Vec<_> = (view.offset..end)
            .filter_map(|i| Some((i, cache.get(i)?)))
            .collect();
        // What each visible name and node shares with its neighbours, so a cut keeps what tells
        // them apart.
        let shared: Vec<Vec<(usize, usize)>> = cache
            .columns
            .iter()
            .map(|&c| {
                if !matches!(c, Column::Name | Column::Node) {
                    return Vec::new();
                }
                let texts: Vec<String> = visible
                    .iter()
                    .map(|(_, (cluster, pod))| {
                        let mut text = String::new();
                        write_cell(cluster, pod, c, Some(ctx.now), &mut text);
                        text
                    })
                    .collect();
                neighbour_ends(&texts)
            })
            .collect();
        let rows: Vec<Row> =
            visible
                .into_iter()
                .enumerate()
                .map(|(shown, (i, (cluster, pod)))| {
                    let selected = i == view.selected;
                    let cells = cache.columns.iter().zip(&fitted).zip(&shared).map(
                        |((&c, &width), ends)| {
                            let mut text = String::new();
                            write_cell(cluster, pod, c, Some(ctx.now), &mut text);
                            if let Some(&(prefix, suffix)) = ends.get(shown) {
                                text = distinct_ellipsis(&text, width, prefix, suffix);
                            }
                            let style = match c {
                                _ if selected => Style::default(),
                                Column::Status => theme.style(status_role(pod)),
                                Column::Restarts if pod.restarts > 0 => theme.style(Role::Warning),
                                Column::Gpus if pod.gpus == 0 => theme.style(Role::Muted),
                                _ => Style::default(),
                            };
                            Cell::from(text).style(style)
                        },
                    );
                    let style = if selected {
                        theme.style(Role::Selection)
                    } else {
                        theme.style(Role::Base)
                    };
                    Row::new(cells).style(style)
                })
                .collect();
        let empty = match (&cache.error, cache.total) {
            (Some(e), _) => Some(format!("bad filter: {e}")),
            (None, 0) => Some(match &self.attached {
                Some(daemon) => format!(
                    "attached to {daemon}: the daemon does not stream its pods (at fleet scale \
                     150,000 rows); attach with a kubeconfig (--kubeconfig or $KUBECONFIG) and \
                     they are listed from the clusters, as are the logs and YAML views"
                ),
                None => "no pods in the snapshot yet".to_string(),
            }),
            (None, _) if cache.rows.is_empty() => Some(format!("no pod matches /{}", view.filter)),
            _ => None,
        };
        let table = Table::new(rows, widths)
            .header(Row::new(headers).style(theme.style(Role::Header)))
            .column_spacing(1)
            .block(block);
        f.render_widget(table, area);
        if let Some(message) = empty {
            draw_empty_message(f, inner, &message, theme);
        }
        page
    }

    fn draw_detail(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        ctx: &ViewCtx,
        (cluster, namespace, name): &Self::Key,
        scroll: &mut u16,
    ) -> usize {
        let theme = ctx.theme;
        let block = Block::bordered()
            .title(Line::styled(
                format!(" Pod {namespace}/{name} · {cluster} (Esc: back) "),
                theme.style(Role::Title),
            ))
            .border_style(theme.style(Role::BorderFocused));
        let pod = ctx.snapshot.cluster(cluster).and_then(|c| {
            c.pods
                .iter()
                .find(|p| *p.namespace == **namespace && *p.name == **name)
                .cloned()
        });
        let lines = match pod {
            Some(pod) => pod_detail_lines(ctx, cluster, &pod),
            None => vec![Line::styled(
                format!("{namespace}/{name} is no longer in the snapshot of {cluster}"),
                theme.style(Role::Stale),
            )],
        };
        draw_scrolled(frame, area, lines, Some(block), scroll, theme)
    }

    /// Ctrl-k deletes the selected pod; `l` and `Y` open its logs and YAML.
    fn intent(&self, action: Action, _ctx: &ViewCtx, selected: Option<Self::Key>) -> Answer {
        if action == Action::DeletePod {
            return Some(
                selected
                    .map(|(cluster, namespace, name)| Intent::Mutate {
                        cluster,
                        mutation: crate::actions::Mutation::DeletePod { namespace, name },
                    })
                    .ok_or_else(|| "delete: no pod selected".to_string()),
            );
        }
        let subject = selected.map(|(cluster, namespace, pod)| crate::model::signal::Subject {
            cluster,
            namespace: Some(namespace),
            object: Some(format!("pod/{pod}")),
            ..Default::default()
        });
        super::intent::inspect_intent(subject, action)
    }
}

fn text<'a>(s: impl Into<String>) -> Vec<Span<'a>> {
    vec![Span::raw(s.into())]
}

/// `kubectl describe pod`, shortened to what on-call reads first.
fn pod_detail_lines<'a>(ctx: &ViewCtx, cluster: &str, pod: &PodRecord) -> Vec<Line<'a>> {
    let theme: &Theme = ctx.theme;
    let mut lines = Vec::new();
    let (status, reason) = pod.status();
    lines.push(field(
        theme,
        "Status",
        vec![Span::styled(
            pod.status_text(),
            theme.style(status_role(pod)),
        )],
    ));
    if let Some(u) = &pod.unschedulable {
        lines.push(field(theme, "Scheduler", text(format!("{}: {}", u.0, u.1))));
    } else if let Some(r) = reason.filter(|_| status != "Pending") {
        lines.push(field(theme, "Last ended", text(r)));
    }
    lines.push(field(
        theme,
        "Node",
        text(pod.node.as_deref().unwrap_or("-")),
    ));
    if let Some(ip) = &pod.ip {
        lines.push(field(theme, "IP", text(ip.to_string())));
    }
    let (ready, total) = pod.ready_containers();
    let ready_text = if total == 0 {
        (if pod.ready { "yes" } else { "no" }).to_string()
    } else {
        format!("{ready}/{total} containers")
    };
    lines.push(field(theme, "Ready", text(ready_text)));
    let conditions: Vec<String> = crate::model::update::POD_CONDITIONS
        .iter()
        .zip(pod.conditions)
        .filter_map(|(kind, state)| {
            state.map(|ok| format!("{kind} {}", if ok { "True" } else { "False" }))
        })
        .collect();
    if !conditions.is_empty() {
        lines.push(field(theme, "Conditions", text(conditions.join(" · "))));
    }
    lines.push(field(theme, "Restarts", text(pod.restarts.to_string())));
    if pod.gpus > 0 {
        lines.push(field(theme, "GPUs", text(pod.gpus.to_string())));
    }
    lines.push(field(
        theme,
        "Owner",
        text(pod.owner.as_deref().unwrap_or("-")),
    ));
    if let Some(at) = pod.created {
        lines.push(field(
            theme,
            "Created",
            text(format!(
                "{} ({} ago)",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                human_duration((ctx.now - at).num_seconds())
            )),
        ));
    }
    lines.push(field(theme, "Context", text(cluster)));
    if !pod.containers.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section(theme, "Containers"));
        for c in pod.containers.iter() {
            let mut s = format!(
                "  {}  {}  restarts {}",
                c.name,
                if c.ready { "ready" } else { "not ready" },
                c.restarts
            );
            if let Some(state) = &c.state {
                let _ = write!(s, "  {state}");
            }
            if let Some(last) = &c.last_termination {
                let _ = write!(s, "  last ended: {last}");
            }
            let role = if c.ready { Role::Base } else { Role::Warning };
            lines.push(Line::styled(s, theme.style(role)));
        }
    }
    if !pod.labels.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section(theme, "Labels"));
        for (k, v) in pod.labels.iter() {
            lines.push(Line::raw(format!("  {k}={v}")));
        }
    }
    let gpus: Vec<_> = ctx
        .snapshot
        .gpus
        .iter()
        .filter(|g| {
            g.cluster == cluster
                && g.holder
                    .as_ref()
                    .is_some_and(|h| h.namespace == *pod.namespace && h.pod == *pod.name)
        })
        .collect();
    if !gpus.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section(theme, "GPUs held"));
        for g in gpus {
            let mut s = format!("  {} GPU {}", g.node, g.index);
            if let Some(model) = &g.model_name {
                let _ = write!(s, " {model}");
            }
            if let Some(u) = g.utilization_pct {
                let _ = write!(s, "  util {u:.0}%");
            }
            if let Some(x) = g.xid_last {
                let _ = write!(s, "  XID {x}");
            }
            if pod.node.as_deref().is_some_and(|n| !same_host(n, &g.node)) {
                s.push_str("  (on another node than the pod's)");
            }
            lines.push(Line::raw(s));
        }
    }
    let object = format!("pod/{}", pod.name);
    // As `kubectl describe`: the object's events, oldest first, of both types.
    let mut events: Vec<_> = ctx
        .snapshot
        .cluster(cluster)
        .map(|c| {
            c.warnings
                .iter()
                .chain(&c.normal_events)
                .filter(|w| w.namespace == *pod.namespace && w.object == object)
                .collect()
        })
        .unwrap_or_default();
    events.sort_by_key(|e| e.last_seen);
    lines.push(Line::raw(""));
    lines.push(section(theme, "Events"));
    if events.is_empty() {
        lines.push(Line::styled("  none", theme.style(Role::Muted)));
    }
    for e in events {
        let age = e.last_seen.map_or("-".to_string(), |t| {
            human_duration((ctx.now - t).num_seconds())
        });
        let (kind, role) = if e.warning {
            ("Warning", Role::Warning)
        } else {
            ("Normal", Role::Muted)
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {age:>6} {kind:<7} {} ×{} ", e.reason, e.count),
                theme.style(role),
            ),
            Span::raw(e.message.clone()),
        ]));
    }
    lines
}

/// Pods for tests of this pane and others.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use crate::model::update::{ContainerRecord, Phase, PodRecord};

    pub fn pod(ns: &str, name: &str, node: &str) -> PodRecord {
        PodRecord {
            namespace: Arc::from(ns),
            name: Box::from(name),
            node: Some(Arc::from(node)),
            phase: Phase::Running,
            ready: true,
            created: Some(super::super::nodes::fixtures::now() - chrono::Duration::hours(3)),
            containers: vec![ContainerRecord {
                name: Arc::from("main"),
                ready: true,
                restarts: 0,
                state: None,
                last_termination: None,
            }]
            .into(),
            labels: Arc::from(vec![(
                Arc::from("app"),
                Arc::from(name.split('-').next().unwrap_or(name)),
            )]),
            ..PodRecord::default()
        }
    }

    /// A running pod, one crash-looping after OOM kills, one unschedulable, one terminating.
    pub fn pods() -> Vec<PodRecord> {
        let mut crash = pod("batch", "etl-7f9c", "gpu-node-2");
        crash.waiting = Some("CrashLoopBackOff".into());
        crash.last_termination = Some("OOMKilled".into());
        crash.restarts = 12;
        crash.ready = false;
        crash.containers = vec![ContainerRecord {
            name: Arc::from("etl"),
            ready: false,
            restarts: 12,
            state: Some("CrashLoopBackOff".into()),
            last_termination: Some("OOMKilled".into()),
        }]
        .into();
        crash.owner = Some(Arc::from("Deployment/etl"));
        let mut pending = pod("training", "llama-worker-3", "");
        pending.node = None;
        pending.phase = Phase::Pending;
        pending.ready = false;
        pending.gpus = 8;
        // PodScheduled False, as the scheduler reports an unschedulable pod.
        pending.conditions = [None, None, None, None, Some(false)];
        pending.containers[0].ready = false;
        pending.unschedulable = Some(Box::new((
            "Unschedulable".into(),
            "0/40 nodes are available: 40 Insufficient nvidia.com/gpu.".into(),
        )));
        pending.labels = Arc::from(vec![(
            Arc::from("training.kubeflow.org/job-name"),
            Arc::from("llama"),
        )]);
        let mut gone = pod("serving", "web-5d8f-abcde", "gpu-node-1");
        gone.terminating = true;
        gone.owner = Some(Arc::from("Deployment/web"));
        let mut serving = pod("serving", "web-5d8f-xyz12", "gpu-node-1");
        serving.gpus = 1;
        serving.owner = Some(Arc::from("Deployment/web"));
        vec![crash, pending, gone, serving]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::nodes::fixtures::{self as nodes, now};
    use super::super::pane::testing::lines;
    use super::fixtures::pods;
    use super::*;
    use crate::model::Snapshot;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn snapshot() -> Snapshot {
        let mut a = nodes::cluster("prod", vec![]);
        a.pods = Arc::new(pods().into_iter().map(Arc::new).collect());
        let mut b = nodes::cluster("dev", vec![]);
        b.pods = Arc::new(vec![Arc::new(fixtures::pod("default", "api-1", "cpu-1"))]);
        Snapshot {
            clusters: vec![Arc::new(a), Arc::new(b)],
            ..Snapshot::default()
        }
    }

    fn ctx<'a>(snapshot: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snapshot, theme, now())
    }

    fn render(pane: &mut PodsPane, ctx: &ViewCtx, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| pane.draw(f, f.area(), ctx)).unwrap();
        lines(term.backend().buffer()).join("\n")
    }

    fn names(pane: &mut PodsPane, ctx: &ViewCtx) -> Vec<String> {
        let c = pane.spec.rows(ctx, &pane.view);
        (0..c.rows.len())
            .filter_map(|i| c.get(i))
            .map(|(_, p)| p.name.to_string())
            .collect()
    }

    #[test]
    fn statuses_carry_their_reason_as_kubectl_shows_them() {
        let p = pods();
        assert_eq!(p[0].status_text(), "CrashLoopBackOff (OOMKilled)");
        assert_eq!(p[1].status_text(), "Pending (Unschedulable)");
        assert_eq!(p[2].status_text(), "Terminating");
        assert_eq!(p[3].status_text(), "Running");
        let mut done = fixtures::pod("a", "b", "n");
        done.phase = crate::model::update::Phase::Succeeded;
        done.containers = vec![].into();
        assert_eq!(done.status_text(), "Completed");
        let mut pull = fixtures::pod("a", "b", "n");
        pull.waiting = Some("ImagePullBackOff".into());
        assert_eq!(pull.status_text(), "ImagePullBackOff");
        let mut oom = fixtures::pod("a", "b", "n");
        oom.containers = vec![crate::model::update::ContainerRecord {
            name: Arc::from("c"),
            ready: false,
            restarts: 1,
            state: Some("OOMKilled".into()),
            last_termination: None,
        }]
        .into();
        assert_eq!(oom.status_text(), "OOMKilled");
    }

    #[test]
    fn the_filter_reads_text_namespaces_owners_contexts_and_label_selectors() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = PodsPane::default();
        pane.set_filter("crashloop");
        assert_eq!(names(&mut pane, &ctx), ["etl-7f9c"]);
        pane.set_filter("-n serving --owner Deployment/web");
        assert_eq!(names(&mut pane, &ctx), ["web-5d8f-abcde", "web-5d8f-xyz12"]);
        pane.set_filter("xyz -n serving");
        assert_eq!(names(&mut pane, &ctx), ["web-5d8f-xyz12"]);
        pane.set_filter("-l training.kubeflow.org/job-name=llama");
        assert_eq!(names(&mut pane, &ctx), ["llama-worker-3"]);
        pane.set_filter("--context dev");
        assert_eq!(names(&mut pane, &ctx), ["api-1"]);
        pane.set_filter("-l app!=web,app notin (etl,llama-worker)");
        assert_eq!(names(&mut pane, &ctx), ["llama-worker-3", "api-1"]);
        pane.set_filter("-l app in (");
        assert!(pane.spec.rows(&ctx, &pane.view).error.is_some());
        assert!(render(&mut pane, &ctx, 120, 12).contains("bad filter"));
    }

    #[test]
    fn the_ns_scope_narrows_the_table() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ViewCtx {
            namespace: Some("serving"),
            ..ctx(&snap, &theme)
        };
        let mut pane = PodsPane::default();
        assert_eq!(names(&mut pane, &ctx).len(), 2);
        assert!(render(&mut pane, &ctx, 120, 12).contains("Pods · ns serving (2/5)"));
    }

    #[test]
    fn rows_are_cached_until_the_pods_the_filter_or_the_sort_change() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = PodsPane::default();
        let first = pane.spec.rows(&ctx, &pane.view).rows.as_ptr();
        // A later snapshot with the same pod rows (e.g. a node changed) reuses the cache.
        let later = Snapshot {
            version: 9,
            ..snap.clone()
        };
        let later_ctx = super::ViewCtx {
            snapshot: &later,
            ..ctx
        };
        assert_eq!(pane.spec.rows(&later_ctx, &pane.view).rows.as_ptr(), first);
        pane.handle(Action::SortNext, &later_ctx);
        pane.handle(Action::SortNext, &later_ctx);
        pane.handle(Action::SortReverse, &later_ctx);
        // Sorted by namespace, descending.
        assert_eq!(
            pane.spec.rows(&later_ctx, &pane.view).key.sort,
            Some((1, true))
        );
        assert_eq!(names(&mut pane, &later_ctx)[0], "llama-worker-3");
        let mut changed = snap.clone();
        let mut c = (*changed.clusters[1]).clone();
        c.pods = Arc::new(vec![]);
        changed.clusters[1] = Arc::new(c);
        let changed_ctx = super::ViewCtx {
            snapshot: &changed,
            ..ctx
        };
        assert_eq!(names(&mut pane, &changed_ctx).len(), 4);
    }

    #[test]
    fn sorting_by_restarts_puts_the_crash_loop_last_then_first_reversed() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = PodsPane::default();
        for _ in 0..6 {
            pane.handle(Action::SortNext, &ctx);
        }
        assert_eq!(pane.view.sort, Some((5, false)));
        assert_eq!(names(&mut pane, &ctx).last().unwrap(), "etl-7f9c");
        pane.handle(Action::SortReverse, &ctx);
        assert_eq!(names(&mut pane, &ctx)[0], "etl-7f9c");
    }

    #[test]
    fn enter_opens_the_pods_detail_and_selected_pod_names_it() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = PodsPane::default();
        render(&mut pane, &ctx, 120, 20);
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.selected(&ctx),
            Some(("prod".into(), "training".into(), "llama-worker-3".into()))
        );
        assert!(pane.handle(Action::Open, &ctx));
        let text = render(&mut pane, &ctx, 120, 30);
        assert!(
            text.contains("Pod training/llama-worker-3 · prod"),
            "{text}"
        );
        assert!(text.contains("Insufficient nvidia.com/gpu"), "{text}");
        assert!(text.contains("PodScheduled False"), "{text}");
        assert!(
            text.contains("training.kubeflow.org/job-name=llama"),
            "{text}"
        );
        assert!(pane.handle(Action::Back, &ctx));
        assert_eq!(pane.detail(), None);
    }

    #[test]
    fn the_pods_pane_renders_at_120_by_16() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = PodsPane::default();
        insta::assert_snapshot!("pods_table", render(&mut pane, &ctx, 120, 16));
        pane.handle(Action::Open, &ctx);
        insta::assert_snapshot!("pod_detail", render(&mut pane, &ctx, 120, 24));
    }
}
