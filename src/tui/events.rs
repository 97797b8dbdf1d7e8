//! The Events pane: the events the kube source watches (per cluster the newest `MAX_WARNINGS`
//! Warning and `MAX_NORMAL_EVENTS` Normal ones), warnings first and newest first within each
//! type, filterable and sortable; Enter jumps to the object (a pod to the
//! Pods pane, a node to the Nodes pane). It draws the snapshot it is given and owns only its
//! table state. Imports the model and the tui groundwork.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;

use super::format::{human_duration, table_title};
use super::keymap::PaneId;
use super::pane::{TableView, ViewCtx};
use super::table_pane::{TablePane, TableSpec, empty_message};
use super::theme::{Role, Theme};
use super::widgets::{ClusterColumn, DataTable, Fit, TableColumn, TableRow, filter_and_sort};
use crate::model::ClusterEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Context,
    LastSeen,
    Type,
    Namespace,
    Reason,
    Object,
    Count,
    Message,
}

impl TableColumn for Column {
    const ALL: &'static [Column] = &[
        Column::Context,
        Column::LastSeen,
        Column::Type,
        Column::Namespace,
        Column::Reason,
        Column::Object,
        Column::Count,
        Column::Message,
    ];
    const CLUSTER_COLUMN: ClusterColumn = ClusterColumn::WhileSeveral;

    fn header(self) -> &'static str {
        match self {
            Column::Context => "CONTEXT",
            Column::LastSeen => "LAST SEEN",
            Column::Type => "TYPE",
            Column::Namespace => "NAMESPACE",
            Column::Reason => "REASON",
            Column::Object => "OBJECT",
            Column::Count => "COUNT",
            Column::Message => "MESSAGE",
        }
    }

    fn max_width(self) -> usize {
        match self {
            Column::Object => 48,
            Column::Message => 200,
            _ => 24,
        }
    }

    fn fit(self) -> Fit {
        match self {
            Column::Object => Fit::KeepDistinct,
            Column::Reason | Column::Count | Column::Type => Fit::Whole,
            _ => Fit::CutEnd,
        }
    }
}

/// One row: every event of a cluster about one object with one reason and message, counted
/// together. A kubelet that repeats a Warning writes a new Event when the old one was
/// compacted or the recorder's cache lost it; those are one problem, not a column of ×1 rows.
struct EventRow<'a> {
    cluster: &'a str,
    event: ClusterEvent,
    now: DateTime<Utc>,
}

impl TableRow<Column> for EventRow<'_> {
    fn write_cell(&self, column: Column, out: &mut String) {
        let e = &self.event;
        // Writing into a String cannot fail.
        let _ = match column {
            Column::Context => write!(out, "{}", self.cluster),
            Column::LastSeen => match e.last_seen {
                Some(t) => write!(out, "{}", human_duration((self.now - t).num_seconds())),
                None => write!(out, "-"),
            },
            Column::Type => write!(out, "{}", if e.warning { "Warning" } else { "Normal" }),
            Column::Namespace => write!(out, "{}", e.namespace),
            Column::Reason => write!(out, "{}", e.reason),
            Column::Object => write!(out, "{}", e.object),
            Column::Count => write!(out, "{}", e.count),
            Column::Message => write!(out, "{}", e.message.replace('\n', " ")),
        };
    }

    fn content_width(&self, column: Column) -> usize {
        let mut s = String::new();
        self.write_cell(column, &mut s);
        s.chars().count()
    }

    fn cell_style(&self, column: Column, theme: &Theme) -> Style {
        match column {
            Column::Reason | Column::Type if self.event.warning => theme.style(Role::Warning),
            Column::Type => theme.style(Role::Muted),
            Column::LastSeen => theme.style(Role::Muted),
            _ => Style::default(),
        }
    }

    fn compare(&self, other: &Self, column: Column) -> Ordering {
        let (a, b) = (&self.event, &other.event);
        match column {
            Column::Context => self.cluster.cmp(other.cluster),
            // Newest first when ascending, as the LAST SEEN text grows.
            Column::LastSeen => b.last_seen.cmp(&a.last_seen),
            // Warnings first when ascending.
            Column::Type => b.warning.cmp(&a.warning),
            Column::Namespace => a.namespace.cmp(&b.namespace),
            Column::Reason => a.reason.cmp(&b.reason),
            Column::Object => a.object.cmp(&b.object),
            Column::Count => a.count.cmp(&b.count),
            Column::Message => a.message.cmp(&b.message),
        }
    }
}

/// The Events pane: the table of events; Enter follows the selected one to its object.
pub type EventsPane = TablePane<EventTable>;

/// What the Events pane shows: the events of the clusters and namespace in view, repeats of
/// one counted together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTable;

/// The object an event is about, as (cluster, namespace, `kind/name`): where Enter leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventObject {
    cluster: String,
    namespace: String,
    object: String,
}

impl EventTable {
    fn rows<'c>(&self, ctx: &'c ViewCtx, view: &TableView) -> Vec<EventRow<'c>> {
        let mut all: Vec<EventRow> = Vec::new();
        let mut seen: HashMap<(&str, bool, &str, &str, &str, &str), usize> = HashMap::new();
        for c in ctx.clusters() {
            for event in c.warnings.iter().chain(&c.normal_events) {
                if !ctx.in_namespace(&event.namespace) {
                    continue;
                }
                let key = (
                    c.name.as_str(),
                    event.warning,
                    event.namespace.as_str(),
                    event.object.as_str(),
                    event.reason.as_str(),
                    event.message.as_str(),
                );
                // An event with no count (the events.k8s.io form of a single one) is one.
                let count = event.count.max(1);
                match seen.get(&key).and_then(|&i| all.get_mut(i)) {
                    Some(row) => {
                        row.event.count = row.event.count.saturating_add(count);
                        row.event.last_seen = row.event.last_seen.max(event.last_seen);
                    }
                    None => {
                        seen.insert(key, all.len());
                        all.push(EventRow {
                            cluster: c.name.as_str(),
                            event: ClusterEvent {
                                count,
                                ..event.clone()
                            },
                            now: ctx.now,
                        });
                    }
                }
            }
        }
        // Warnings first, newest first across clusters; the sort keys below reorder from there.
        all.sort_by_key(|r| (!r.event.warning, std::cmp::Reverse(r.event.last_seen)));
        filter_and_sort(all.into_iter(), Column::shown(ctx), view)
    }
}

impl TableSpec for EventTable {
    type Key = EventObject;
    const OPENS_DETAIL: bool = false;

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), Column::shown(ctx).len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<EventObject> {
        let rows = self.rows(ctx, view);
        let row = rows.get(index)?;
        Some(EventObject {
            cluster: row.cluster.to_string(),
            namespace: row.event.namespace.clone(),
            object: row.event.object.clone(),
        })
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let rows = self.rows(ctx, view);
        let total: usize = ctx
            .clusters()
            .map(|c| c.warnings.len() + c.normal_events.len())
            .sum();
        let warnings = rows.iter().filter(|r| r.event.warning).count();
        let what = match ctx.namespace {
            Some(ns) => format!("Events · {warnings} warnings · ns {ns}"),
            None => format!("Events · {warnings} warnings"),
        };
        let title = table_title(&what, ctx.cluster, rows.len(), total, &view.filter);
        let table = DataTable {
            title: Line::styled(title, theme.style(Role::Title)),
            columns: Column::shown(ctx),
            rows: &rows,
        };
        table.draw(
            f,
            area,
            theme,
            view,
            empty_message(total, "no events in the snapshot", "event"),
        )
    }

    /// Enter: the event's object, a pod in the Pods pane or a node in the Nodes pane.
    fn follow(&self, _ctx: &ViewCtx, selected: Option<EventObject>) -> Option<(PaneId, String)> {
        let EventObject {
            cluster,
            namespace,
            object,
        } = selected?;
        let (kind, name) = object.split_once('/')?;
        match kind {
            "pod" => Some((
                PaneId::Pods,
                format!("--context {cluster} -n {namespace} {name}"),
            )),
            "node" => Some((PaneId::Nodes, name.to_string())),
            "deployment" | "statefulset" | "daemonset" | "job" | "pytorchjob"
            | "inferenceservice" => Some((PaneId::Workloads, name.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::keymap::Action;
    use super::super::nodes::fixtures::{self as nodes, now};
    use super::super::pane::Pane;
    use super::super::pane::testing::lines;
    use super::*;
    use crate::model::Snapshot;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn event(object: &str, reason: &str, mins_ago: i64) -> ClusterEvent {
        ClusterEvent {
            warning: true,
            namespace: if object.starts_with("node/") {
                "default".into()
            } else {
                "batch".into()
            },
            object: object.into(),
            reason: reason.into(),
            message: format!("{reason} on {object}"),
            count: 3,
            last_seen: Some(now() - chrono::Duration::minutes(mins_ago)),
        }
    }

    fn snapshot() -> Snapshot {
        let mut c = nodes::cluster("prod", vec![]);
        c.warnings = vec![
            event("node/gpu-node-2", "NodeNotReady", 30),
            event("pod/etl-7f9c", "BackOff", 2),
        ];
        c.normal_events = vec![ClusterEvent {
            warning: false,
            ..event("deployment/web", "ScalingReplicaSet", 1)
        }];
        Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        }
    }

    fn ctx<'a>(snapshot: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snapshot, theme, now())
    }

    #[test]
    fn repeated_warnings_are_one_row_with_their_count_and_latest_time() {
        let mut c = nodes::cluster("prod", vec![]);
        let once = |mins_ago| ClusterEvent {
            count: 1,
            ..event("pod/etl-7f9c", "BackOff", mins_ago)
        };
        c.warnings = vec![
            once(1),
            once(5),
            once(3),
            event("node/gpu-node-2", "NodeNotReady", 30),
        ];
        let snap = Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let rows = EventTable.rows(&ctx, &TableView::default());
        assert_eq!(rows.len(), 2, "three BackOffs of one pod are one row");
        let backoff = &rows[0].event;
        assert_eq!((backoff.reason.as_str(), backoff.count), ("BackOff", 3));
        assert_eq!(
            backoff.last_seen,
            Some(now() - chrono::Duration::minutes(1))
        );
    }

    #[test]
    fn events_show_warnings_then_newest_first_and_enter_jumps_to_their_object() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = EventsPane::default();
        let mut term = Terminal::new(TestBackend::new(120, 8)).unwrap();
        term.draw(|f| pane.draw(f, f.area(), &ctx)).unwrap();
        insta::assert_snapshot!("events_table", lines(term.backend().buffer()).join("\n"));
        assert_eq!(
            pane.follow(&ctx),
            Some((PaneId::Pods, "--context prod -n batch etl-7f9c".into()))
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.follow(&ctx),
            Some((PaneId::Nodes, "gpu-node-2".into()))
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(pane.follow(&ctx), Some((PaneId::Workloads, "web".into())));
        pane.set_filter("backoff");
        assert_eq!(pane.spec.rows(&ctx, &pane.view).len(), 1);
    }
}
