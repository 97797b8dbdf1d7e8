//! The Pipelines pane (`:pipelines`): the data pipelines that feed the models, in sections —
//! Airflow DAGs (a run strip of the newest runs, the last success's age, the failing task,
//! paused) and the Spark operator's applications (state, attempts, executors, the driver pod;
//! failed runs first; `l`/`Y` the driver's logs or YAML); another source plugs in as one
//! [`PipelineSection`] in [`sections`]. Enter opens the selected row's detail (a DAG's
//! recent runs and the failed tasks of its newest failed run); `r` on a DAG whose newest
//! finished run failed plans `airflow_clear` for that run, shown first and confirmed like every
//! manual action. An empty section says why. Draws the snapshot it is given; imports model,
//! actions (the `Mutation` a key asks for), keymap, theme, widgets and pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::compact_age as age;
use super::intent::Intent;
use super::keymap::Action;
use super::pane::{Pane, ViewCtx};
use super::theme::{Role, Theme};
use super::widgets::titled_block;
use crate::actions::Mutation;
use crate::model::airflow::{AIRFLOW_SUBJECT, AirflowPicture, DagModel, RunState, judge};
use crate::model::signal::Subject;
use crate::model::spark::SparkApplicationModel;

/// How many runs a DAG's strip shows, newest on the right.
const STRIP_RUNS: usize = 10;

/// One section of the pane: its rows, drawn as lines, the detail of one, and what a key asks
/// of one.
pub trait PipelineSection {
    /// The section's heading (`Airflow DAGs`).
    fn title(&self, ctx: &ViewCtx) -> String;
    /// Its rows' lines (one a row), `selected` highlighted.
    fn rows(&self, ctx: &ViewCtx, selected: Option<usize>) -> Vec<Line<'static>>;
    /// Why it has no row (nothing configured, nothing read yet), when it has none.
    fn empty_reason(&self, ctx: &ViewCtx) -> Option<String>;
    /// The detail of row `index`, as lines.
    fn detail(&self, ctx: &ViewCtx, index: usize) -> Vec<Line<'static>>;
    /// What `action` on row `index` asks for; `None` when the section has no such action.
    fn intent(&self, action: Action, ctx: &ViewCtx, index: usize)
    -> Option<Result<Intent, String>>;
}

/// The sections, in the order they are shown. A new section is one entry here.
pub fn sections() -> Vec<Box<dyn PipelineSection>> {
    vec![Box::new(DagSection), Box::new(SparkSection)]
}

/// The pane's state between frames: the selected row (over every section's rows, in order)
/// and whether its detail is open.
pub struct PipelinesPane {
    sections: Vec<Box<dyn PipelineSection>>,
    selected: usize,
    detail: bool,
}

impl Default for PipelinesPane {
    fn default() -> Self {
        Self {
            sections: sections(),
            selected: 0,
            detail: false,
        }
    }
}

impl PipelinesPane {
    /// (section, row) of the selection, if any row exists.
    fn locate(&self, ctx: &ViewCtx) -> Option<(usize, usize)> {
        let mut left = self.selected;
        for (i, s) in self.sections.iter().enumerate() {
            let n = s.rows(ctx, None).len();
            if left < n {
                return Some((i, left));
            }
            left -= n;
        }
        None
    }

    fn total(&self, ctx: &ViewCtx) -> usize {
        self.sections.iter().map(|s| s.rows(ctx, None).len()).sum()
    }
}

impl Pane for PipelinesPane {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let total = self.total(ctx);
        self.selected = self.selected.min(total.saturating_sub(1));
        let located = self.locate(ctx);
        if self.detail
            && let Some((s, row)) = located
        {
            let section = &self.sections[s];
            let block = titled_block(format!(" {} · detail ", section.title(ctx)), theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(Paragraph::new(section.detail(ctx, row)), inner);
            return;
        }
        let heights: Vec<Constraint> = self
            .sections
            .iter()
            .map(|s| match s.rows(ctx, None).len() {
                // An empty section is its one line of why: the others get the room.
                0 => Constraint::Length(3),
                n => Constraint::Min(u16::try_from(n).unwrap_or(u16::MAX).saturating_add(3)),
            })
            .collect();
        let areas = Layout::vertical(heights).split(area);
        for (i, (s, a)) in self.sections.iter().zip(areas.iter()).enumerate() {
            let block = titled_block(format!(" {} ", s.title(ctx)), theme);
            let inner = block.inner(*a);
            frame.render_widget(block, *a);
            let lines = match s.empty_reason(ctx) {
                Some(why) => vec![Line::styled(why, theme.style(Role::Muted))],
                None => s.rows(ctx, located.filter(|(si, _)| *si == i).map(|(_, r)| r)),
            };
            frame.render_widget(Paragraph::new(lines), inner);
        }
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        let total = self.total(ctx);
        let before = (self.selected, self.detail);
        match action {
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(total.saturating_sub(1)),
            Action::Top => self.selected = 0,
            Action::Bottom => self.selected = total.saturating_sub(1),
            Action::Open if total > 0 => self.detail = true,
            Action::Back => self.detail = false,
            _ => return false,
        }
        (self.selected, self.detail) != before
    }

    fn intent(&self, action: Action, ctx: &ViewCtx) -> Option<Result<Intent, String>> {
        let (s, row) = self.locate(ctx)?;
        self.sections[s].intent(action, ctx, row)
    }
}

/// The Spark operator's SparkApplications of the clusters and namespace in view (the `:spark`
/// table lists the same, filterable and sortable).
pub struct SparkSection;

impl SparkSection {
    /// (cluster, application), failed runs first, then the newest.
    fn apps<'a>(ctx: &'a ViewCtx) -> Vec<(&'a str, &'a SparkApplicationModel)> {
        let mut all: Vec<(&str, &SparkApplicationModel)> = ctx
            .clusters()
            .flat_map(|c| {
                c.spark_applications
                    .iter()
                    .filter(|a| ctx.in_namespace(&a.namespace))
                    .map(|a| (c.name.as_str(), a))
            })
            .collect();
        all.sort_by(|(_, a), (_, b)| {
            b.failed()
                .cmp(&a.failed())
                .then(b.started().cmp(&a.started()))
        });
        all
    }
}

impl PipelineSection for SparkSection {
    fn title(&self, ctx: &ViewCtx) -> String {
        let apps = Self::apps(ctx);
        let failed = apps.iter().filter(|(_, a)| a.failed()).count();
        format!("Spark applications ({}, {failed} failed)", apps.len())
    }

    fn rows(&self, ctx: &ViewCtx, selected: Option<usize>) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        Self::apps(ctx)
            .into_iter()
            .enumerate()
            .map(|(i, (cluster, a))| {
                let state = if a.state.is_empty() { "NEW" } else { &a.state };
                let role = if a.failed() {
                    Role::Critical
                } else if a.state == "COMPLETED" {
                    Role::Muted
                } else {
                    Role::Ok
                };
                let started = a
                    .started()
                    .map_or("-".to_string(), |t| format!("{} ago", age(ctx.now, t)));
                let line = Line::from(vec![
                    Span::raw(format!(
                        "{:<28.28} ",
                        format!("{cluster}/{}/{}", a.namespace, a.name)
                    )),
                    Span::styled(format!("{state:<17}"), theme.style(role)),
                    Span::raw(format!(
                        " attempt {:<2} executors {}/{} run/pend  driver {}  started {started}",
                        a.execution_attempts.max(a.submission_attempts),
                        a.executors_running,
                        a.executors_pending,
                        a.driver_pod.as_deref().unwrap_or("-"),
                    )),
                ]);
                if selected == Some(i) {
                    line.style(theme.style(Role::Selection))
                } else {
                    line
                }
            })
            .collect()
    }

    fn empty_reason(&self, ctx: &ViewCtx) -> Option<String> {
        Self::apps(ctx).is_empty().then(|| {
            "no SparkApplications in view: is the Spark operator's CRD installed, and may fleetdeck list it?".to_string()
        })
    }

    fn detail(&self, ctx: &ViewCtx, index: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some((cluster, a)) = Self::apps(ctx).into_iter().nth(index) else {
            return vec![Line::styled(
                "this application is no longer listed",
                theme.style(Role::Stale),
            )];
        };
        let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or("-".to_string(), |t| {
                format!(
                    "{} ({} ago)",
                    t.format("%Y-%m-%d %H:%M:%SZ"),
                    age(ctx.now, t)
                )
            })
        };
        let mut lines = vec![
            Line::raw(format!("application  {cluster}/{}/{}", a.namespace, a.name)),
            Line::styled(
                format!(
                    "state        {}",
                    if a.state.is_empty() { "NEW" } else { &a.state }
                ),
                theme.style(if a.failed() {
                    Role::Critical
                } else {
                    Role::Base
                }),
            ),
            Line::raw(format!(
                "attempts     {} submitted, {} executed",
                a.submission_attempts, a.execution_attempts
            )),
            Line::raw(format!(
                "executors    {} running, {} pending, {} in all",
                a.executors_running, a.executors_pending, a.executors_total
            )),
            Line::raw(format!(
                "driver       {}",
                a.driver_pod.as_deref().unwrap_or("- (not named yet)")
            )),
            Line::raw(format!("submitted    {}", when(a.last_submission))),
            Line::raw(format!("terminated   {}", when(a.terminated))),
        ];
        if let Some(app) = &a.scheduled_app {
            lines.push(Line::raw(format!("scheduled    a run of {app}")));
        }
        if let Some(e) = &a.error_message {
            lines.push(Line::styled(
                format!("error        {e}"),
                theme.style(Role::Critical),
            ));
        }
        lines.push(Line::styled(
            "l: the driver's logs · Y: its YAML",
            theme.style(Role::Muted),
        ));
        lines
    }

    fn intent(
        &self,
        action: Action,
        ctx: &ViewCtx,
        index: usize,
    ) -> Option<Result<Intent, String>> {
        let (cluster, a) = Self::apps(ctx).into_iter().nth(index)?;
        let Some(driver) = &a.driver_pod else {
            return matches!(action, Action::Logs | Action::Yaml)
                .then(|| Err(format!("{}: the operator names no driver pod yet", a.name)));
        };
        super::intent::inspect_intent(
            Some(Subject {
                cluster: cluster.to_string(),
                namespace: Some(a.namespace.clone()),
                object: Some(format!("pod/{driver}")),
                ..Subject::default()
            }),
            action,
        )
    }
}

/// Airflow's DAGs (`[airflow]`).
pub struct DagSection;

fn strip(dag: &DagModel, theme: &Theme) -> Vec<Span<'static>> {
    let mut runs: Vec<_> = dag.runs.iter().take(STRIP_RUNS).collect();
    runs.reverse();
    let mut spans: Vec<Span<'static>> = runs
        .into_iter()
        .map(|r| {
            let (mark, role) = match r.state {
                RunState::Success => ("■", Role::Ok),
                RunState::Failed => ("✗", Role::Critical),
                RunState::Running => ("▶", Role::Info),
                RunState::Queued => ("·", Role::Muted),
                RunState::Other => ("?", Role::Muted),
            };
            Span::styled(mark, theme.style(role))
        })
        .collect();
    let pad = STRIP_RUNS.saturating_sub(spans.len());
    spans.insert(0, Span::raw(" ".repeat(pad)));
    spans
}

/// Whether `pipeline.dag_failing`'s rule holds for the DAG now (the same verdict).
fn failing(picture: &AirflowPicture, dag: &DagModel, now: chrono::DateTime<chrono::Utc>) -> bool {
    judge(picture, dag, now).is_some()
}

impl DagSection {
    fn picture<'a>(ctx: &'a ViewCtx) -> Option<&'a AirflowPicture> {
        ctx.snapshot.airflow.as_deref()
    }
}

impl PipelineSection for DagSection {
    fn title(&self, ctx: &ViewCtx) -> String {
        match Self::picture(ctx) {
            None => "Airflow DAGs".into(),
            Some(p) => {
                let failing = p.dags.iter().filter(|d| failing(p, d, ctx.now)).count();
                let read = p.fetched_at.map_or("never read".to_string(), |t| {
                    format!("read {} ago", age(ctx.now, t))
                });
                let error = p
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" · last read failed: {e}"));
                format!(
                    "Airflow DAGs ({} {}, {failing} failing) · {read}{error}",
                    p.url, p.api_version
                )
            }
        }
    }

    fn rows(&self, ctx: &ViewCtx, selected: Option<usize>) -> Vec<Line<'static>> {
        let Some(p) = Self::picture(ctx) else {
            return Vec::new();
        };
        let theme = ctx.theme;
        p.dags
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let last_ok = d
                    .last_success()
                    .map_or("never".to_string(), |t| format!("{} ago", age(ctx.now, t)));
                let task = d
                    .failed_tasks
                    .iter()
                    .filter(|t| t.state == "failed")
                    .map(|t| t.task_id.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                let state = if d.paused {
                    Span::styled("paused ", theme.style(Role::Muted))
                } else if failing(p, d, ctx.now) {
                    Span::styled("FAILING", theme.style(Role::Critical))
                } else {
                    Span::styled("ok     ", theme.style(Role::Ok))
                };
                let mut spans = vec![
                    Span::raw(format!("{:<28.28} ", d.dag_id)),
                    state,
                    Span::raw(" "),
                ];
                spans.extend(strip(d, theme));
                spans.push(Span::raw(format!("  last ok {last_ok:<10}")));
                if !task.is_empty() {
                    spans.push(Span::styled(
                        format!("  failed: {task}"),
                        theme.style(Role::Warning),
                    ));
                }
                let line = Line::from(spans);
                if selected == Some(i) {
                    line.style(theme.style(Role::Selection))
                } else {
                    line
                }
            })
            .collect()
    }

    fn empty_reason(&self, ctx: &ViewCtx) -> Option<String> {
        match Self::picture(ctx) {
            None => Some(
                "no Airflow configured: set [airflow] url and its credential (username + password_file, or token_file) in the config".into(),
            ),
            Some(p) if p.dags.is_empty() => Some(match &p.error {
                Some(e) => format!("Airflow at {} not read: {e}", p.url),
                None => format!("Airflow at {} has no DAGs", p.url),
            }),
            Some(_) => None,
        }
    }

    fn detail(&self, ctx: &ViewCtx, index: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(d) = Self::picture(ctx).and_then(|p| p.dags.get(index)) else {
            return vec![Line::from("the DAG is gone from Airflow's answer")];
        };
        let mut lines = vec![
            Line::styled(format!("DAG {}", d.dag_id), theme.style(Role::Title)),
            Line::from(d.description.clone().unwrap_or_default()),
            Line::from(format!(
                "owners {} · {}",
                d.owners.join(", "),
                if d.paused { "paused" } else { "active" }
            )),
            Line::default(),
            Line::styled("recent runs (newest first)", theme.style(Role::Header)),
        ];
        for r in &d.runs {
            let role = match r.state {
                RunState::Failed => Role::Critical,
                RunState::Success => Role::Ok,
                _ => Role::Info,
            };
            let took = match (r.start, r.end) {
                (Some(s), Some(e)) => format!("{}s", (e - s).num_seconds()),
                (Some(s), None) => format!("running {}", age(ctx.now, s)),
                _ => String::new(),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<8}", r.state.word()), theme.style(role)),
                Span::raw(format!(" {}  {took}", r.run_id)),
            ]));
        }
        if let Some(run) = &d.failed_run {
            lines.push(Line::default());
            lines.push(Line::styled(
                format!("failed tasks of {run}"),
                theme.style(Role::Header),
            ));
            for t in &d.failed_tasks {
                lines.push(Line::from(format!(
                    "  {:<24} {:<16} try {}",
                    t.task_id,
                    t.state,
                    t.try_number.map_or("?".into(), |n| n.to_string())
                )));
            }
            lines.push(Line::styled(
                "r: clear this run's failed tasks (airflow_clear; plan first, asks y/n)",
                theme.style(Role::Muted),
            ));
        }
        lines
    }

    fn intent(
        &self,
        action: Action,
        ctx: &ViewCtx,
        index: usize,
    ) -> Option<Result<Intent, String>> {
        if action != Action::RestartRollout {
            return None;
        }
        let d = Self::picture(ctx).and_then(|p| p.dags.get(index))?;
        Some(match &d.failed_run {
            Some(run) => Ok(Intent::Mutate {
                cluster: AIRFLOW_SUBJECT.to_string(),
                mutation: Mutation::AirflowClear {
                    dag_id: d.dag_id.clone(),
                    run_id: run.clone(),
                },
            }),
            None => Err(format!(
                "clear: DAG {}'s newest finished run did not fail; nothing to clear",
                d.dag_id
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::Snapshot;
    use crate::model::airflow::{DagRunModel, FailedTask};
    use crate::tui::pane::testing::{lines, render, view_ctx};

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_300, 0).unwrap_or_default()
    }

    fn picture() -> AirflowPicture {
        let t = |m: i64| chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000 + m * 60, 0);
        let run = |id: &str, state, m| DagRunModel {
            run_id: id.into(),
            state,
            logical_date: None,
            start: t(m),
            end: t(m).map(|x| x + chrono::Duration::seconds(23)),
        };
        AirflowPicture {
            url: "http://airflow:8080".into(),
            api_version: "v1".into(),
            dags: vec![
                DagModel {
                    dag_id: "feature_build_nightly".into(),
                    paused: false,
                    description: Some("Nightly feature build".into()),
                    owners: vec!["data-eng".into()],
                    runs: vec![
                        run("r3", RunState::Failed, 3),
                        run("r2", RunState::Failed, 2),
                        run("r1", RunState::Success, 1),
                    ],
                    failed_run: Some("r3".into()),
                    failed_tasks: vec![FailedTask {
                        task_id: "build_features".into(),
                        state: "failed".into(),
                        try_number: Some(1),
                        end: None,
                    }],
                    sla_seconds: None,
                },
                DagModel {
                    dag_id: "embedding_refresh".into(),
                    paused: false,
                    description: None,
                    owners: Vec::new(),
                    runs: vec![run("e1", RunState::Success, 3)],
                    failed_run: None,
                    failed_tasks: Vec::new(),
                    sla_seconds: None,
                },
            ],
            import_errors: Vec::new(),
            health: None,
            failed_runs: 2,
            fetched_at: t(4),
            error: None,
        }
    }

    #[test]
    fn a_failing_dag_shows_its_strip_and_task_and_r_plans_clearing_its_failed_run() {
        let snap = Snapshot {
            airflow: Some(Arc::new(picture())),
            ..Default::default()
        };
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        let mut pane = PipelinesPane::default();
        let text = lines(&render(&mut pane, &ctx, 120, 12)).join("\n");
        assert!(
            text.contains("feature_build_nightly") && text.contains("FAILING"),
            "{text}"
        );
        assert!(
            text.contains("■✗✗") && text.contains("failed: build_features"),
            "{text}"
        );
        match pane.intent(Action::RestartRollout, &ctx) {
            Some(Ok(Intent::Mutate { mutation, .. })) => assert_eq!(
                mutation,
                Mutation::AirflowClear {
                    dag_id: "feature_build_nightly".into(),
                    run_id: "r3".into()
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(pane.handle(Action::Down, &ctx));
        assert!(matches!(
            pane.intent(Action::RestartRollout, &ctx),
            Some(Err(_))
        ));
        assert!(pane.handle(Action::Up, &ctx) && pane.handle(Action::Open, &ctx));
        let detail = lines(&render(&mut pane, &ctx, 120, 16)).join("\n");
        assert!(
            detail.contains("failed tasks of r3") && detail.contains("build_features"),
            "{detail}"
        );
    }

    #[test]
    fn the_pane_and_a_dags_detail_render_at_120_by_16() {
        let snap = Snapshot {
            airflow: Some(Arc::new(picture())),
            ..Default::default()
        };
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        let mut pane = PipelinesPane::default();
        insta::assert_snapshot!(
            "pipelines_dags",
            lines(&render(&mut pane, &ctx, 120, 16)).join("\n")
        );
        pane.handle(Action::Open, &ctx);
        insta::assert_snapshot!(
            "pipelines_dag_detail",
            lines(&render(&mut pane, &ctx, 120, 16)).join("\n")
        );
    }

    #[test]
    fn without_airflow_the_section_says_how_to_configure_one() {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        let text = lines(&render(&mut PipelinesPane::default(), &ctx, 140, 6)).join("\n");
        assert!(text.contains("no Airflow configured"), "{text}");
    }

    #[test]
    fn the_spark_section_lists_failed_runs_first_opens_one_and_l_reads_its_driver() {
        use crate::model::spark::SparkApplicationModel;
        let app = |name: &str, state: &str, mins_ago: i64| SparkApplicationModel {
            namespace: "batch".into(),
            name: name.into(),
            state: state.into(),
            driver_pod: Some(format!("{name}-driver")),
            execution_attempts: 1,
            submission_attempts: 1,
            executors_running: if state == "RUNNING" { 3 } else { 0 },
            executors_total: 3,
            last_submission: Some(now() - chrono::Duration::minutes(mins_ago)),
            error_message: (state == "FAILED")
                .then(|| "driver container failed with ExitCode: 1".to_string()),
            ..Default::default()
        };
        let mut c = crate::tui::nodes::fixtures::cluster("prod", vec![]);
        c.spark_applications = vec![
            app("nightly-etl", "RUNNING", 30),
            app("feature-backfill", "FAILED", 90),
        ];
        let snap = Snapshot {
            clusters: vec![Arc::new(c)],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        let mut pane = PipelinesPane::default();
        let text = lines(&render(&mut pane, &ctx, 160, 16)).join("\n");
        assert!(text.contains("Spark applications (2, 1 failed)"), "{text}");
        let (failed, running) = (
            text.find("prod/batch/feature-backfill"),
            text.find("prod/batch/nightly-etl"),
        );
        assert!(failed.is_some() && failed < running, "{text}");
        // No Airflow configured: the selection starts on the Spark section's first row.
        let Some(Ok(Intent::Inspect { subject, .. })) = pane.intent(Action::Logs, &ctx) else {
            panic!("l reads the failed run's driver logs")
        };
        assert_eq!(
            subject.object.as_deref(),
            Some("pod/feature-backfill-driver")
        );
        assert!(pane.handle(Action::Open, &ctx));
        let detail = lines(&render(&mut pane, &ctx, 160, 16)).join("\n");
        assert!(detail.contains("ExitCode: 1"), "{detail}");
    }
}
