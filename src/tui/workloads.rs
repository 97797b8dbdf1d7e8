//! The Workloads pane: the Deployments, StatefulSets, DaemonSets, Jobs, training gangs
//! (Kubeflow jobs whose pods run as one gang) and KServe InferenceServices of the clusters in
//! view, one table; Enter drills into
//! the workload's pods (the Pods pane filtered to its owner or its label). It draws the
//! snapshot it is given and owns only its table state. Imports the model and the tui
//! groundwork.

use std::cmp::Ordering;
use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;

use super::format::table_title;
use super::intent::Intent;
use super::keymap::{Action, PaneId};
use super::pane::{TableView, ViewCtx};
use super::table_pane::{Answer, TablePane, TableSpec, empty_message};
use super::theme::{Role, Theme};
use super::widgets::{ClusterColumn, DataTable, Fit, TableColumn, TableRow, filter_and_sort};
use crate::actions::Mutation;
use crate::model::{
    DeploymentModel, GangJob, InferenceServiceModel, RolloutState, WorkloadCounts, WorkloadKind,
    WorkloadModel, WorkloadState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Context,
    Kind,
    Namespace,
    Name,
    Ready,
    UpToDate,
    Available,
    Revision,
    Status,
    Detail,
}

impl TableColumn for Column {
    const ALL: &'static [Column] = &[
        Column::Context,
        Column::Kind,
        Column::Namespace,
        Column::Name,
        Column::Ready,
        Column::UpToDate,
        Column::Available,
        Column::Revision,
        Column::Status,
        Column::Detail,
    ];
    const CLUSTER_COLUMN: ClusterColumn = ClusterColumn::WhileSeveral;

    fn header(self) -> &'static str {
        match self {
            Column::Context => "CONTEXT",
            Column::Kind => "KIND",
            Column::Namespace => "NAMESPACE",
            Column::Name => "NAME",
            Column::Ready => "READY",
            Column::UpToDate => "UP-TO-DATE",
            Column::Available => "AVAILABLE",
            Column::Revision => "REVISION",
            Column::Status => "STATUS",
            Column::Detail => "DETAIL",
        }
    }

    fn max_width(self) -> usize {
        match self {
            Column::Name => 48,
            Column::Detail => 100,
            _ => 24,
        }
    }

    fn fit(self) -> Fit {
        match self {
            Column::Name => Fit::KeepDistinct,
            Column::Status | Column::Kind | Column::Ready => Fit::Whole,
            _ => Fit::CutEnd,
        }
    }
}

/// One workload of one cluster.
#[derive(Debug, Clone, Copy)]
pub enum Workload<'a> {
    Deployment(&'a DeploymentModel),
    /// A StatefulSet, DaemonSet or Job.
    Controller(&'a WorkloadModel),
    Gang(&'a GangJob),
    InferenceService(&'a InferenceServiceModel),
}

impl Workload<'_> {
    /// kubectl's short name (`gang`: a Kubeflow training job's pods, scheduled as one).
    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "deploy",
            Workload::Controller(w) => w.kind.short(),
            Workload::Gang(_) => "gang",
            Workload::InferenceService(_) => "isvc",
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Workload::Deployment(d) => &d.namespace,
            Workload::Controller(w) => &w.namespace,
            Workload::Gang(g) => &g.namespace,
            Workload::InferenceService(i) => &i.namespace,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Workload::Deployment(d) => &d.name,
            Workload::Controller(w) => &w.name,
            Workload::Gang(g) => &g.name,
            Workload::InferenceService(i) => &i.name,
        }
    }

    fn status(&self) -> (&'static str, Role) {
        match self {
            Workload::Deployment(d) => match d.rollout {
                RolloutState::Complete => ("Complete", Role::Ok),
                RolloutState::Progressing => ("Progressing", Role::Warning),
                RolloutState::Stalled => ("Stalled", Role::Critical),
                RolloutState::Paused => ("Paused", Role::Muted),
            },
            Workload::Controller(w) => match (w.state, w.kind) {
                (WorkloadState::Complete, _) => ("Complete", Role::Ok),
                (WorkloadState::Progressing, WorkloadKind::Job) => ("Running", Role::Ok),
                (WorkloadState::Progressing, _) => ("Progressing", Role::Warning),
                (WorkloadState::Failed, _) => ("Failed", Role::Critical),
                (WorkloadState::Suspended, _) => ("Suspended", Role::Muted),
            },
            Workload::Gang(g) => {
                let running = g.members.iter().filter(|m| m.phase == "Running").count();
                if g.members.iter().any(|m| m.phase == "Failed") {
                    ("Failed", Role::Critical)
                } else if running == g.members.len() {
                    ("Running", Role::Ok)
                } else if g.members.iter().any(|m| m.phase == "Pending") {
                    ("Pending", Role::Warning)
                } else {
                    ("Partial", Role::Warning)
                }
            }
            Workload::InferenceService(i) if i.ready => ("Ready", Role::Ok),
            Workload::InferenceService(_) => ("NotReady", Role::Critical),
        }
    }

    /// The Pods pane's filter that shows this workload's pods.
    fn pods_filter(&self, cluster: &str) -> String {
        let scope = format!("--context {cluster} -n {}", self.namespace());
        match self {
            Workload::Deployment(d) => format!("{scope} --owner Deployment/{}", d.name),
            Workload::Controller(w) => format!("{scope} --owner {}/{}", w.kind.api_kind(), w.name),
            Workload::Gang(g) => format!("{scope} -l training.kubeflow.org/job-name={}", g.name),
            Workload::InferenceService(i) => {
                format!("{scope} -l serving.kserve.io/inferenceservice={}", i.name)
            }
        }
    }
}

/// A training gang's members per replica type, as the training operator counts them:
/// `master 1/1 · worker 3/4 running · `.
fn write_replica_types(g: &GangJob, out: &mut String) {
    let mut types: Vec<(&str, usize, usize)> = Vec::new();
    for m in &g.members {
        let t = m.replica_type.as_deref().unwrap_or("pod");
        let running = usize::from(m.phase == "Running");
        match types.iter_mut().find(|(name, ..)| *name == t) {
            Some(e) => {
                e.1 += running;
                e.2 += 1;
            }
            None => types.push((t, running, 1)),
        }
    }
    if types.is_empty() {
        return;
    }
    for (i, (t, running, total)) in types.iter().enumerate() {
        let sep = if i == 0 { "" } else { " · " };
        let _ = write!(out, "{sep}{t} {running}/{total}");
    }
    out.push_str(" running · ");
}

struct WorkloadRow<'a> {
    cluster: &'a str,
    workload: Workload<'a>,
    /// Its pods in CrashLoopBackOff (Deployments only).
    crash_looping: usize,
}

impl WorkloadRow<'_> {
    /// The workload's status, where a Deployment with crash-looping pods is failing, not
    /// "Progressing": its rollout counts still say it is moving towards ready, but the pods
    /// it waits for keep exiting, so it never will.
    fn status(&self) -> (&'static str, Role) {
        match self.workload {
            Workload::Deployment(_) if self.crash_looping > 0 => {
                ("CrashLoopBackOff", Role::Critical)
            }
            w => w.status(),
        }
    }
}

/// The Deployment a pod belongs to, from its name: a Deployment's pods are named
/// `{deployment}-{pod-template-hash}-{suffix}` (the ReplicaSet's name plus a random suffix).
fn deployment_of_pod(pod: &str) -> Option<&str> {
    let (rs, _suffix) = pod.rsplit_once('-')?;
    let (deployment, _hash) = rs.rsplit_once('-')?;
    (!deployment.is_empty()).then_some(deployment)
}

impl TableRow<Column> for WorkloadRow<'_> {
    fn write_cell(&self, column: Column, out: &mut String) {
        let w = &self.workload;
        // Writing into a String cannot fail.
        let _ = match (column, w) {
            (Column::Context, _) => write!(out, "{}", self.cluster),
            (Column::Kind, _) => write!(out, "{}", w.kind()),
            (Column::Namespace, _) => write!(out, "{}", w.namespace()),
            (Column::Name, _) => write!(out, "{}", w.name()),
            (Column::Ready, Workload::Deployment(d)) => write!(out, "{}/{}", d.ready, d.replicas),
            (Column::Ready, Workload::Controller(w)) => match w.counts {
                WorkloadCounts::Replicas { desired, ready, .. } => {
                    write!(out, "{ready}/{desired}")
                }
                // kubectl's COMPLETIONS.
                WorkloadCounts::Job {
                    completions,
                    succeeded,
                    ..
                } => write!(out, "{succeeded}/{}", completions.unwrap_or(1)),
            },
            (Column::Ready, Workload::Gang(g)) => write!(
                out,
                "{}/{}",
                g.members.iter().filter(|m| m.ready).count(),
                g.members.len()
            ),
            (Column::Ready, Workload::InferenceService(i)) => {
                write!(out, "{}", if i.ready { "True" } else { "False" })
            }
            (Column::UpToDate, Workload::Deployment(d)) => write!(out, "{}", d.updated),
            (Column::Available, Workload::Deployment(d)) => write!(out, "{}", d.available),
            (
                Column::UpToDate,
                Workload::Controller(WorkloadModel {
                    counts: WorkloadCounts::Replicas { updated, .. },
                    ..
                }),
            ) => write!(out, "{updated}"),
            (
                Column::Available,
                Workload::Controller(WorkloadModel {
                    counts: WorkloadCounts::Replicas { available, .. },
                    ..
                }),
            ) => write!(out, "{available}"),
            (Column::Revision, Workload::Deployment(d)) => match d.revision {
                Some(r) => write!(out, "{r}"),
                None => write!(out, "-"),
            },
            (Column::Status, _) => write!(out, "{}", self.status().0),
            (Column::Detail, Workload::Deployment(d)) => write!(out, "{}", d.images.join(",")),
            (Column::Detail, Workload::Controller(w)) => {
                if let WorkloadCounts::Job { active, failed, .. } = w.counts {
                    let _ = write!(out, "active {active} · failed {failed} · ");
                }
                if let Some(d) = &w.detail {
                    let _ = write!(out, "{d} · ");
                }
                write!(out, "{}", w.images.join(","))
            }
            (Column::Detail, Workload::Gang(g)) => {
                write_replica_types(g, out);
                write!(
                    out,
                    "{} GPUs on {} nodes",
                    g.members
                        .iter()
                        .map(|m| m.gpus)
                        .fold(0u32, u32::saturating_add),
                    {
                        let mut nodes: Vec<_> =
                            g.members.iter().filter_map(|m| m.node.as_deref()).collect();
                        nodes.sort_unstable();
                        nodes.dedup();
                        nodes.len()
                    }
                )
            }
            (Column::Detail, Workload::InferenceService(i)) => {
                let _ = write!(out, "{}", i.url.as_deref().unwrap_or("no URL"));
                if let Some(p) = i.canary_traffic_percent {
                    let _ = write!(out, " · canary {p}%");
                }
                match &i.latest_ready_revision {
                    Some(r) => write!(out, " · {r}"),
                    None => Ok(()),
                }
            }
            _ => write!(out, "-"),
        };
    }

    fn content_width(&self, column: Column) -> usize {
        let mut s = String::new();
        self.write_cell(column, &mut s);
        s.chars().count()
    }

    fn cell_style(&self, column: Column, theme: &Theme) -> Style {
        match column {
            Column::Status => theme.style(self.status().1),
            Column::Kind => theme.style(Role::Muted),
            _ => Style::default(),
        }
    }

    fn compare(&self, other: &Self, column: Column) -> Ordering {
        let (mut a, mut b) = (String::new(), String::new());
        self.write_cell(column, &mut a);
        other.write_cell(column, &mut b);
        let num = |s: &str| s.split('/').next().and_then(|n| n.parse::<u64>().ok());
        match (num(&a), num(&b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.cmp(&b),
        }
    }
}

/// The Workloads pane: the table of workloads; Enter drills into the selected one's pods.
pub type WorkloadsPane = TablePane<WorkloadTable>;

/// What the Workloads pane shows: every workload of the clusters and namespace in view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadTable;

/// A workload as its actions and Enter see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedWorkload {
    cluster: String,
    /// kubectl's short name (`deploy`, `isvc`, `gang`…).
    kind: String,
    namespace: String,
    name: String,
    /// The Pods pane's filter that shows its pods.
    pods_filter: String,
}

impl WorkloadTable {
    fn rows<'c>(&self, ctx: &'c ViewCtx, view: &TableView) -> Vec<WorkloadRow<'c>> {
        let rows = ctx.clusters().flat_map(|c| {
            let cluster = c.name.as_str();
            c.deployments
                .iter()
                .map(Workload::Deployment)
                .chain(c.workloads.iter().map(Workload::Controller))
                .chain(c.gang_jobs.iter().map(Workload::Gang))
                .chain(c.inference_services.iter().map(Workload::InferenceService))
                .filter(|w| ctx.in_namespace(w.namespace()))
                .map(move |workload| WorkloadRow {
                    cluster,
                    workload,
                    crash_looping: match workload {
                        Workload::Deployment(d) => c
                            .crash_looping
                            .iter()
                            .filter(|p| {
                                p.namespace == d.namespace
                                    && deployment_of_pod(&p.name) == Some(d.name.as_str())
                            })
                            .count(),
                        _ => 0,
                    },
                })
        });
        filter_and_sort(rows, Column::shown(ctx), view)
    }
}

impl TableSpec for WorkloadTable {
    type Key = SelectedWorkload;
    const OPENS_DETAIL: bool = false;

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), Column::shown(ctx).len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<SelectedWorkload> {
        let rows = self.rows(ctx, view);
        let row = rows.get(index)?;
        Some(SelectedWorkload {
            cluster: row.cluster.to_string(),
            kind: row.workload.kind().to_string(),
            namespace: row.workload.namespace().to_string(),
            name: row.workload.name().to_string(),
            pods_filter: row.workload.pods_filter(row.cluster),
        })
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let rows = self.rows(ctx, view);
        let total: usize = ctx
            .clusters()
            .map(|c| {
                c.deployments.len()
                    + c.workloads.len()
                    + c.gang_jobs.len()
                    + c.inference_services.len()
            })
            .sum();
        let what = match ctx.namespace {
            Some(ns) => format!("Workloads · ns {ns}"),
            None => "Workloads".to_string(),
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
                "no Deployments, StatefulSets, DaemonSets, Jobs, training jobs or \
                 InferenceServices in the snapshot yet",
                "workload",
            ),
        )
    }

    /// Enter: the workload's pods.
    fn follow(
        &self,
        _ctx: &ViewCtx,
        selected: Option<SelectedWorkload>,
    ) -> Option<(PaneId, String)> {
        Some((PaneId::Pods, selected?.pods_filter))
    }

    /// Rollback, restart and scale of the selected workload.
    fn intent(&self, action: Action, _ctx: &ViewCtx, selected: Option<SelectedWorkload>) -> Answer {
        Some(match action {
            Action::Rollback => workload_rollback(selected),
            Action::RestartRollout => workload_restart(selected),
            Action::Scale => workload_scale(selected),
            _ => return None,
        })
    }
}

/// The selected workload as the target of a rollback: a Deployment to its previous revision
/// (`kubectl rollout undo`), an InferenceService's canary traffic back to 0.
fn workload_rollback(selected: Option<SelectedWorkload>) -> Result<Intent, String> {
    let SelectedWorkload {
        cluster,
        kind,
        namespace,
        name,
        ..
    } = selected.ok_or("rollback: no workload selected")?;
    let mutation = match kind.as_str() {
        "deploy" => Mutation::Rollback {
            namespace,
            name,
            revision: None,
        },
        "isvc" => Mutation::RollbackInferenceService { namespace, name },
        _ => {
            return Err(format!(
                "rollback: {namespace}/{name} is a training gang; fleetdeck rolls back a Deployment or an InferenceService"
            ));
        }
    };
    Ok(Intent::Mutate { cluster, mutation })
}

/// The selected workload as the target of a `rollout restart`: only a Deployment.
fn workload_restart(selected: Option<SelectedWorkload>) -> Result<Intent, String> {
    let SelectedWorkload {
        cluster,
        kind,
        namespace,
        name,
        ..
    } = selected.ok_or("restart: no workload selected")?;
    if kind != "deploy" {
        return Err(format!(
            "restart: {namespace}/{name} is not a Deployment; fleetdeck restarts a Deployment's rollout"
        ));
    }
    Ok(Intent::Mutate {
        cluster,
        mutation: Mutation::RestartRollout { namespace, name },
    })
}

/// Scale, first step: the selected Deployment, whose count the person types next.
fn workload_scale(selected: Option<SelectedWorkload>) -> Result<Intent, String> {
    let SelectedWorkload {
        cluster,
        kind,
        namespace,
        name,
        ..
    } = selected.ok_or("scale: select a Deployment in the Workloads pane (:workloads)")?;
    if kind != "deploy" {
        return Err(format!(
            "scale: {namespace}/{name} is not a Deployment; fleetdeck scales a Deployment"
        ));
    }
    Ok(Intent::AskReplicas {
        cluster,
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::nodes::fixtures::{self as nodes, now};
    use super::super::pane::Pane;
    use super::super::pane::testing::lines;
    use super::*;
    use crate::model::{GangMember, Snapshot};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    pub fn snapshot() -> Snapshot {
        let mut c = nodes::cluster("prod", vec![]);
        c.deployments = vec![DeploymentModel {
            namespace: "serving".into(),
            name: "web".into(),
            revision: Some(4),
            replicas: 3,
            ready: 2,
            updated: 3,
            available: 2,
            rollout: RolloutState::Progressing,
            images: vec!["web:1.4".into()],
            registered_model: None,
        }];
        c.workloads = vec![
            WorkloadModel {
                kind: WorkloadKind::StatefulSet,
                namespace: "platform".into(),
                name: "feature-store".into(),
                counts: WorkloadCounts::Replicas {
                    desired: 3,
                    ready: 2,
                    updated: 3,
                    available: 2,
                },
                state: WorkloadState::Progressing,
                detail: Some("feature-store-7d9c".into()),
                images: vec!["redis:7.4".into()],
                created: None,
                finished: None,
            },
            WorkloadModel {
                kind: WorkloadKind::Job,
                namespace: "batch".into(),
                name: "eval-nightly".into(),
                counts: WorkloadCounts::Job {
                    completions: Some(4),
                    active: 0,
                    succeeded: 1,
                    failed: 6,
                },
                state: WorkloadState::Failed,
                detail: Some("BackoffLimitExceeded".into()),
                images: vec!["eval:2".into()],
                created: None,
                finished: None,
            },
        ];
        c.gang_jobs = vec![GangJob {
            namespace: "training".into(),
            name: "llama".into(),
            members: (0..2)
                .map(|i| GangMember {
                    pod: format!("llama-worker-{i}"),
                    node: Some(format!("gpu-node-{i}")),
                    phase: "Running".into(),
                    ready: true,
                    gpus: 8,
                    replica_type: Some("worker".into()),
                    replica_index: Some(i),
                    checkpointing: false,
                })
                .collect(),
        }];
        c.inference_services = vec![InferenceServiceModel {
            namespace: "serving".into(),
            name: "ranker".into(),
            ready: true,
            url: Some("http://ranker.serving.example.com".into()),
            latest_ready_revision: Some("ranker-predictor-00002".into()),
            previous_rolled_out_revision: Some("ranker-predictor-00001".into()),
            canary_traffic_percent: Some(10),
            registered_model: None,
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
    fn a_deployment_whose_pod_crash_loops_is_failing_not_progressing() {
        let mut snap = snapshot();
        let c = Arc::make_mut(&mut snap.clusters[0]);
        let tokenizer = |name: &str| DeploymentModel {
            namespace: "batch".into(),
            name: name.into(),
            revision: Some(1),
            replicas: 1,
            ready: 0,
            updated: 1,
            available: 0,
            rollout: RolloutState::Progressing,
            images: vec!["tokenizer:2.4.0".into()],
            registered_model: None,
        };
        c.deployments = vec![tokenizer("tokenizer-worker"), tokenizer("tokenizer")];
        c.crash_looping = vec![crate::model::CrashLoopingPod {
            namespace: "batch".into(),
            name: "tokenizer-worker-7f9c5d8b4-x2kqp".into(),
            node: Some("gke-sim-a-h100-pool-0041".into()),
            restarts: 5,
            reason: "CrashLoopBackOff".into(),
            last_termination: Some("Error".into()),
        }];
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let status = |name: &str| {
            let rows = WorkloadTable.rows(&ctx, &TableView::default());
            let row = rows
                .iter()
                .find(|r| r.workload.name() == name)
                .unwrap_or_else(|| panic!("no {name}"));
            let mut out = String::new();
            row.write_cell(Column::Status, &mut out);
            out
        };
        assert_eq!(status("tokenizer-worker"), "CrashLoopBackOff");
        assert_eq!(
            status("tokenizer"),
            "Progressing",
            "another Deployment's pods"
        );
        assert_eq!(deployment_of_pod("web-api-5d8f9-abcde"), Some("web-api"));
        assert_eq!(deployment_of_pod("standalone"), None);
    }

    #[test]
    fn every_kind_of_workload_shares_one_table() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = WorkloadsPane::default();
        let mut term = Terminal::new(TestBackend::new(120, 10)).unwrap();
        term.draw(|f| pane.draw(f, f.area(), &ctx)).unwrap();
        insta::assert_snapshot!("workloads_table", lines(term.backend().buffer()).join("\n"));
    }

    #[test]
    fn enter_drills_into_the_workloads_pods() {
        let (snap, theme) = (snapshot(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = WorkloadsPane::default();
        assert!(!pane.handle(Action::Open, &ctx));
        assert_eq!(
            pane.follow(&ctx),
            Some((
                PaneId::Pods,
                "--context prod -n serving --owner Deployment/web".into()
            ))
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.follow(&ctx).map(|f| f.1),
            Some("--context prod -n platform --owner StatefulSet/feature-store".into())
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.follow(&ctx).map(|f| f.1),
            Some("--context prod -n batch --owner Job/eval-nightly".into())
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.follow(&ctx).map(|f| f.1),
            Some("--context prod -n training -l training.kubeflow.org/job-name=llama".into())
        );
        pane.handle(Action::Down, &ctx);
        assert_eq!(
            pane.follow(&ctx).map(|f| f.1),
            Some("--context prod -n serving -l serving.kserve.io/inferenceservice=ranker".into())
        );
        let scoped = ViewCtx {
            namespace: Some("training"),
            ..ctx
        };
        assert_eq!(pane.spec.rows(&scoped, &pane.view).len(), 1);
    }
}
