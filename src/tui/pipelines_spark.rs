//! The Spark table (`:spark`, `J`; the `:pipelines` pane shows the same applications as a section): the Spark
//! operator's SparkApplications of the clusters and namespace in view — state, attempts,
//! executors running/pending, the driver pod, age — failed runs first. Enter follows the driver
//! pod to the Pods pane; `l` opens the driver pod's logs in the logs view (where a failed run's
//! exception is). It draws the snapshot it is given and owns only its table state. Imports the
//! model and the tui groundwork.

use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;

use super::format::{human_duration, table_title};
use super::keymap::{Action, PaneId};
use super::pane::{TableView, ViewCtx};
use super::table_pane::{Answer, TablePane, TableSpec, empty_message};
use super::theme::{Role, Theme};
use super::widgets::{ClusterColumn, DataTable, Fit, TableColumn, TableRow, filter_and_sort};
use crate::model::signal::Subject;
use crate::model::spark::SparkApplicationModel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Context,
    Namespace,
    Name,
    State,
    Attempts,
    ExecPods,
    Driver,
    Age,
}

impl TableColumn for Column {
    const ALL: &'static [Column] = &[
        Column::Context,
        Column::Namespace,
        Column::Name,
        Column::State,
        Column::Attempts,
        Column::ExecPods,
        Column::Driver,
        Column::Age,
    ];
    const CLUSTER_COLUMN: ClusterColumn = ClusterColumn::WhileSeveral;

    fn header(self) -> &'static str {
        match self {
            Column::Context => "CONTEXT",
            Column::Namespace => "NAMESPACE",
            Column::Name => "NAME",
            Column::State => "STATE",
            Column::Attempts => "ATTEMPTS",
            Column::ExecPods => "EXECUTORS RUN/PEND",
            Column::Driver => "DRIVER",
            Column::Age => "AGE",
        }
    }

    fn max_width(self) -> usize {
        match self {
            Column::Name | Column::Driver => 48,
            _ => 24,
        }
    }

    fn fit(self) -> Fit {
        match self {
            Column::Name | Column::Driver => Fit::KeepDistinct,
            Column::State | Column::Attempts | Column::ExecPods => Fit::Whole,
            _ => Fit::CutEnd,
        }
    }
}

struct SparkRow<'a> {
    cluster: &'a str,
    app: &'a SparkApplicationModel,
    now: DateTime<Utc>,
}

impl TableRow<Column> for SparkRow<'_> {
    fn write_cell(&self, column: Column, out: &mut String) {
        let a = self.app;
        // Writing into a String cannot fail.
        let _ = match column {
            Column::Context => write!(out, "{}", self.cluster),
            Column::Namespace => write!(out, "{}", a.namespace),
            Column::Name => write!(out, "{}", a.name),
            Column::State => write!(out, "{}", if a.state.is_empty() { "NEW" } else { &a.state }),
            Column::Attempts => write!(out, "{}", a.execution_attempts.max(a.submission_attempts)),
            Column::ExecPods => write!(out, "{}/{}", a.executors_running, a.executors_pending),
            Column::Driver => write!(out, "{}", a.driver_pod.as_deref().unwrap_or("-")),
            Column::Age => match a.started() {
                Some(t) => write!(out, "{}", human_duration((self.now - t).num_seconds())),
                None => write!(out, "-"),
            },
        };
    }

    fn content_width(&self, column: Column) -> usize {
        let mut s = String::new();
        self.write_cell(column, &mut s);
        s.chars().count()
    }

    fn cell_style(&self, column: Column, theme: &Theme) -> Style {
        match column {
            Column::State if self.app.failed() => theme.style(Role::Critical),
            Column::State if self.app.state == "COMPLETED" => theme.style(Role::Muted),
            Column::Age | Column::Context => theme.style(Role::Muted),
            _ => Style::default(),
        }
    }

    fn compare(&self, other: &Self, column: Column) -> Ordering {
        let (a, b) = (self.app, other.app);
        match column {
            Column::Context => self.cluster.cmp(other.cluster),
            Column::Namespace => a.namespace.cmp(&b.namespace),
            Column::Name => a.name.cmp(&b.name),
            // Failed first when ascending.
            Column::State => b.failed().cmp(&a.failed()).then(a.state.cmp(&b.state)),
            Column::Attempts => a.execution_attempts.cmp(&b.execution_attempts),
            Column::ExecPods => a.executors_running.cmp(&b.executors_running),
            Column::Driver => a.driver_pod.cmp(&b.driver_pod),
            // Newest first when ascending, as the AGE text grows.
            Column::Age => b.started().cmp(&a.started()),
        }
    }
}

/// The Spark section: the table of SparkApplications; Enter follows the driver pod.
pub type SparkPane = TablePane<SparkTable>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparkTable;

/// A Spark application row as (cluster, namespace, application, driver pod).
pub type SparkKey = (String, String, String, Option<String>);

impl SparkTable {
    fn rows<'c>(&self, ctx: &'c ViewCtx, view: &TableView) -> Vec<SparkRow<'c>> {
        let mut all: Vec<SparkRow> = ctx
            .clusters()
            .flat_map(|c| {
                c.spark_applications
                    .iter()
                    .filter(|a| ctx.in_namespace(&a.namespace))
                    .map(|app| SparkRow {
                        cluster: c.name.as_str(),
                        app,
                        now: ctx.now,
                    })
            })
            .collect();
        // Failed runs first, then the newest.
        all.sort_by(|a, b| {
            b.app
                .failed()
                .cmp(&a.app.failed())
                .then(b.app.started().cmp(&a.app.started()))
        });
        filter_and_sort(all.into_iter(), Column::shown(ctx), view)
    }
}

impl TableSpec for SparkTable {
    type Key = SparkKey;
    const OPENS_DETAIL: bool = false;

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), Column::shown(ctx).len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<SparkKey> {
        let rows = self.rows(ctx, view);
        let row = rows.get(index)?;
        Some((
            row.cluster.to_string(),
            row.app.namespace.clone(),
            row.app.name.clone(),
            row.app.driver_pod.clone(),
        ))
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let rows = self.rows(ctx, view);
        let total: usize = ctx.clusters().map(|c| c.spark_applications.len()).sum();
        let failed = rows.iter().filter(|r| r.app.failed()).count();
        let what = match ctx.namespace {
            Some(ns) => format!("Spark applications · {failed} failed · ns {ns}"),
            None => format!("Spark applications · {failed} failed"),
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
            empty_message(
                total,
                "no SparkApplications (is the Spark operator's CRD installed?)",
                "application",
            ),
        )
    }

    /// `l` and `Y`: the driver pod's logs or YAML.
    fn intent(&self, action: Action, _ctx: &ViewCtx, selected: Option<SparkKey>) -> Answer {
        let (cluster, namespace, name, driver) = selected?;
        let Some(driver) = driver else {
            return matches!(action, Action::Logs | Action::Yaml)
                .then(|| Err(format!("{name}: the operator names no driver pod yet")));
        };
        super::intent::inspect_intent(
            Some(Subject {
                cluster,
                namespace: Some(namespace),
                object: Some(format!("pod/{driver}")),
                ..Subject::default()
            }),
            action,
        )
    }

    /// Enter: the driver pod in the Pods pane.
    fn follow(&self, _ctx: &ViewCtx, selected: Option<SparkKey>) -> Option<(PaneId, String)> {
        let (cluster, namespace, _, driver) = selected?;
        Some((
            PaneId::Pods,
            format!("--context {cluster} -n {namespace} {}", driver?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::intent::{InspectView, Intent};
    use super::super::nodes::fixtures::{self as nodes, now};
    use super::super::pane::Pane;
    use super::super::pane::testing::lines;
    use super::*;
    use crate::model::Snapshot;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn app(name: &str, state: &str, mins_ago: i64) -> SparkApplicationModel {
        SparkApplicationModel {
            namespace: "batch".into(),
            name: name.into(),
            state: state.into(),
            driver_pod: Some(format!("{name}-driver")),
            execution_attempts: 1,
            submission_attempts: 1,
            executors_running: if state == "RUNNING" { 3 } else { 0 },
            executors_total: 3,
            last_submission: Some(now() - chrono::Duration::minutes(mins_ago)),
            ..Default::default()
        }
    }

    #[test]
    fn failed_runs_come_first_and_l_opens_the_driver_logs() {
        let mut c = nodes::cluster("prod", vec![]);
        c.spark_applications = vec![
            app("nightly-etl", "RUNNING", 30),
            app("feature-backfill", "FAILED", 90),
            app("daily-aggregates-2", "COMPLETED", 600),
        ];
        let snap = Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = crate::tui::pane::testing::view_ctx(&snap, &theme, now());
        let mut pane = SparkPane::default();
        let mut term = Terminal::new(TestBackend::new(110, 7)).unwrap();
        term.draw(|f| pane.draw(f, f.area(), &ctx)).unwrap();
        let shown = lines(term.backend().buffer()).join("\n");
        let order: Vec<usize> = ["feature-backfill", "nightly-etl", "daily-aggregates-2"]
            .iter()
            .map(|n| shown.find(n).unwrap_or(usize::MAX))
            .collect();
        assert!(order[0] < order[1] && order[1] < order[2], "{shown}");
        assert!(shown.contains("FAILED") && shown.contains("3/0"), "{shown}");
        assert_eq!(
            pane.follow(&ctx),
            Some((
                PaneId::Pods,
                "--context prod -n batch feature-backfill-driver".into()
            ))
        );
        let Some(Ok(Intent::Inspect { view, subject })) = pane.intent(Action::Logs, &ctx) else {
            panic!("l opens the logs")
        };
        assert_eq!(view, InspectView::Logs);
        assert_eq!(
            subject.object.as_deref(),
            Some("pod/feature-backfill-driver")
        );
        assert_eq!(subject.namespace.as_deref(), Some("batch"));
        pane.set_filter("nightly");
        assert_eq!(pane.spec.rows(&ctx, &pane.view).len(), 1);
    }
}
