//! The Nodes pane: every node of the clusters in view as a sortable, filterable table, and the
//! detail view of one node (readiness, taints, GPUs, pods, events, signals). It draws the
//! snapshot it is given and owns only its table state. Imports the model and the tui groundwork.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;

use super::format::{
    format_holder, format_memory_gib, format_optional, human_duration, same_host, severity_text,
    short_name, table_title,
};
use super::keymap::Action;
use super::pane::{TableView, ViewCtx};
use super::table_pane::{Answer, TablePane, TableSpec, empty_message};
use super::theme::{Role, Theme};
use super::widgets::{
    ClusterColumn, DataTable, Fit, TableColumn, TableRow, draw_scrolled, field, filter_and_sort,
    section, severity_role,
};
use crate::model::signal::{Severity, Signal};
use crate::model::{CapacityType, ClusterSnapshot, NodeModel, NodeReadiness};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Cluster,
    Node,
    Status,
    Capacity,
    Instance,
    Zone,
    Gpus,
    Pods,
    Age,
    Signals,
}

impl TableColumn for Column {
    const ALL: &'static [Column] = &[
        Column::Cluster,
        Column::Node,
        Column::Status,
        Column::Capacity,
        Column::Instance,
        Column::Zone,
        Column::Gpus,
        Column::Pods,
        Column::Age,
        Column::Signals,
    ];
    const CLUSTER_COLUMN: ClusterColumn = ClusterColumn::UnlessScoped;

    fn header(self) -> &'static str {
        match self {
            Column::Cluster => "CLUSTER",
            Column::Node => "NODE",
            Column::Status => "STATUS",
            Column::Capacity => "CAPACITY",
            Column::Instance => "INSTANCE",
            Column::Zone => "ZONE",
            Column::Gpus => "GPUS",
            Column::Pods => "PODS",
            Column::Age => "AGE",
            Column::Signals => "SIGNALS",
        }
    }

    /// The widest a cell of this column is drawn; longer text is cut.
    fn max_width(self) -> usize {
        match self {
            Column::Node => 40,
            Column::Status => 27,
            _ => 20,
        }
    }

    fn fit(self) -> Fit {
        match self {
            Column::Node => Fit::KeepDistinct,
            Column::Gpus | Column::Pods | Column::Signals => Fit::Whole,
            _ => Fit::CutEnd,
        }
    }
}

/// How many signals are about a node, and the worst of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SignalTally {
    count: u32,
    worst: Severity,
}

/// One node as the table sees it; its text is written only when needed.
struct NodeRow<'a> {
    cluster: &'a str,
    node: &'a NodeModel,
    signals: Option<SignalTally>,
    /// The clock the AGE column is read against.
    now: DateTime<Utc>,
}

impl TableRow<Column> for NodeRow<'_> {
    fn write_cell(&self, column: Column, out: &mut String) {
        let (node, now) = (self.node, self.now);
        // Writing into a String cannot fail.
        let _ = match column {
            Column::Cluster => write!(out, "{}", self.cluster),
            Column::Node => write!(out, "{}", node.name),
            Column::Status => write!(out, "{}", status_text(node)),
            Column::Capacity => write!(out, "{}", capacity_text(node.capacity_type)),
            Column::Instance => write!(out, "{}", node.instance_type.as_deref().unwrap_or("-")),
            Column::Zone => write!(out, "{}", node.zone.as_deref().unwrap_or("-")),
            Column::Gpus if node.gpu_capacity == 0 && node.gpu_allocatable == 0 => {
                write!(out, "-")
            }
            Column::Gpus => write!(out, "{}/{}", node.gpu_requested, node.gpu_allocatable),
            Column::Pods => write!(out, "{}/{}", node.pods.running, node.pods.total()),
            Column::Age => match node.created {
                Some(at) => write!(out, "{}", human_duration((now - at).num_seconds())),
                None => write!(out, "-"),
            },
            Column::Signals => write!(out, "{}", self.signals.map_or(0, |t| t.count)),
        };
    }

    fn cell_style(&self, column: Column, theme: &Theme) -> Style {
        let node = self.node;
        match column {
            Column::Status => theme.style(status_role(node)),
            Column::Gpus if node.gpu_allocatable < node.gpu_capacity => theme.style(Role::Warning),
            Column::Gpus if node.gpu_capacity == 0 && node.gpu_allocatable == 0 => {
                theme.style(Role::Muted)
            }
            Column::Signals => match self.signals {
                Some(t) => theme.style(severity_role(t.worst)),
                None => theme.style(Role::Muted),
            },
            _ => Style::default(),
        }
    }

    fn content_width(&self, column: Column) -> usize {
        content_width(self, column)
    }

    /// Orders two rows by a column: numbers as numbers, the age by creation time.
    fn compare(&self, other: &Self, column: Column) -> Ordering {
        let (a, b) = (self.node, other.node);
        match column {
            Column::Cluster => self.cluster.cmp(other.cluster),
            Column::Node => a.name.cmp(&b.name),
            Column::Status => status_text(a).cmp(status_text(b)),
            Column::Capacity => capacity_text(a.capacity_type).cmp(capacity_text(b.capacity_type)),
            Column::Instance => a.instance_type.cmp(&b.instance_type),
            Column::Zone => a.zone.cmp(&b.zone),
            Column::Gpus => {
                (a.gpu_requested, a.gpu_allocatable).cmp(&(b.gpu_requested, b.gpu_allocatable))
            }
            Column::Pods => (a.pods.running, a.pods.total()).cmp(&(b.pods.running, b.pods.total())),
            // Older first when ascending, as the AGE text grows; unknown creation sorts first.
            Column::Age => match (a.created, b.created) {
                (Some(x), Some(y)) => y.cmp(&x),
                (x, y) => x.is_some().cmp(&y.is_some()),
            },
            Column::Signals => {
                let key = |t: Option<SignalTally>| t.map(|t| (t.count, t.worst));
                key(self.signals).cmp(&key(other.signals))
            }
        }
    }
}

/// The Nodes pane: the table of nodes, and one node's detail view.
pub type NodesPane = TablePane<NodeTable>;

/// What the Nodes pane shows: every node of the clusters in view; a row is named by
/// (cluster, node), which is also what a cordon or drain applies to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeTable;

impl NodeTable {
    /// The rows the filter keeps, in sort order.
    fn rows<'c>(&self, ctx: &'c ViewCtx, view: &TableView) -> Vec<NodeRow<'c>> {
        let tallies = signal_tallies(&ctx.snapshot.signals);
        let rows = ctx
            .clusters()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.name.as_str(), n)))
            .map(|(cluster, node)| NodeRow {
                cluster,
                node,
                signals: tallies.get(&(cluster, short_name(&node.name))).copied(),
                now: ctx.now,
            });
        filter_and_sort(rows, Column::shown(ctx), view)
    }
}

impl TableSpec for NodeTable {
    type Key = (String, String);

    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize) {
        (self.rows(ctx, view).len(), Column::shown(ctx).len())
    }

    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<Self::Key> {
        let rows = self.rows(ctx, view);
        let row = rows.get(index)?;
        Some((row.cluster.to_string(), row.node.name.clone()))
    }

    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize {
        let theme = ctx.theme;
        let rows = self.rows(ctx, view);
        let total: usize = ctx.clusters().map(|c| c.nodes.len()).sum();
        let title = table_title("Nodes", ctx.cluster, rows.len(), total, &view.filter);
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
            empty_message(total, "no nodes in the snapshot yet", "node"),
        )
    }

    fn draw_detail(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        ctx: &ViewCtx,
        (cluster, name): &Self::Key,
        scroll: &mut u16,
    ) -> usize {
        let theme = ctx.theme;
        let block = Block::bordered()
            .title(Line::styled(
                format!(" Node {name} · {cluster} (Esc: back) "),
                theme.style(Role::Title),
            ))
            .border_style(theme.style(Role::BorderFocused));
        let found = ctx
            .snapshot
            .cluster(cluster)
            .and_then(|c| Some((c, c.nodes.iter().find(|n| n.name == *name)?)));
        let lines = match found {
            Some((c, node)) => node_detail_lines(ctx, c, node),
            None => vec![Line::styled(
                format!("{name} is no longer in the snapshot of {cluster}"),
                theme.style(Role::Stale),
            )],
        };
        draw_scrolled(frame, area, lines, Some(block), scroll, theme)
    }

    fn intent(&self, action: Action, _ctx: &ViewCtx, selected: Option<Self::Key>) -> Answer {
        super::intent::node_intent(selected, action)
    }
}

/// The width a row's cell needs, without formatting it where the length is known.
fn content_width(row: &NodeRow, column: Column) -> usize {
    let node = row.node;
    match column {
        Column::Cluster => row.cluster.chars().count(),
        Column::Node => node.name.chars().count(),
        Column::Status => status_text(node).len(),
        Column::Capacity => capacity_text(node.capacity_type).len(),
        Column::Instance => node
            .instance_type
            .as_deref()
            .map_or(1, |s| s.chars().count()),
        Column::Zone => node.zone.as_deref().map_or(1, |s| s.chars().count()),
        Column::Gpus => digits(node.gpu_requested) + 1 + digits(node.gpu_allocatable),
        Column::Pods => digits(node.pods.running) + 1 + digits(node.pods.total()),
        Column::Age => 6,
        Column::Signals => digits(row.signals.map_or(0, |t| t.count)),
    }
}

fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn node_detail_lines<'a>(
    ctx: &ViewCtx<'a>,
    cluster: &'a ClusterSnapshot,
    node: &'a NodeModel,
) -> Vec<Line<'a>> {
    let theme = ctx.theme;
    let muted = theme.style(Role::Muted);
    let mut lines = Vec::new();

    let since = match node.readiness_since {
        Some(at) => format!(
            " since {} ({} ago)",
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            human_duration((ctx.now - at).num_seconds())
        ),
        None => String::new(),
    };
    lines.push(field(
        theme,
        "Ready",
        vec![
            Span::styled(
                readiness_text(node.readiness),
                theme.style(status_role(node)),
            ),
            Span::raw(since),
        ],
    ));
    let schedulable = if node.cordoned {
        Span::styled("no (cordoned)", theme.style(Role::Warning))
    } else {
        Span::raw("yes")
    };
    lines.push(field(theme, "Schedulable", vec![schedulable]));
    lines.push(field(
        theme,
        "Capacity",
        vec![Span::raw(format!(
            "{} · {} · {}",
            capacity_text(node.capacity_type),
            node.instance_type
                .as_deref()
                .unwrap_or("unknown instance type"),
            node.zone.as_deref().unwrap_or("unknown zone"),
        ))],
    ));
    let age = node.created.map_or_else(
        || "unknown".to_string(),
        |at| human_duration((ctx.now - at).num_seconds()),
    );
    lines.push(field(theme, "Age", vec![Span::raw(age)]));
    lines.push(field(
        theme,
        "GPUs",
        vec![Span::raw(format!(
            "{}: {} capacity, {} allocatable, {} requested",
            node.gpu_product
                .as_deref()
                .unwrap_or("no GPU product label"),
            node.gpu_capacity,
            node.gpu_allocatable,
            node.gpu_requested,
        ))],
    ));
    let p = node.pods;
    lines.push(field(
        theme,
        "Pods",
        vec![Span::raw(format!(
            "{} running, {} pending, {} succeeded, {} failed, {} unknown",
            p.running, p.pending, p.succeeded, p.failed, p.unknown
        ))],
    ));
    if node.taints.is_empty() {
        lines.push(field(theme, "Taints", vec![Span::styled("none", muted)]));
    }
    for (i, t) in node.taints.iter().enumerate() {
        let text = if t.value.is_empty() {
            format!("{}:{}", t.key, t.effect)
        } else {
            format!("{}={}:{}", t.key, t.value, t.effect)
        };
        lines.push(field(
            theme,
            if i == 0 { "Taints" } else { "" },
            vec![Span::raw(text)],
        ));
    }

    lines.push(Line::raw(""));
    lines.push(section(theme, "GPU devices"));
    let gpus: Vec<_> = ctx
        .snapshot
        .gpus
        .iter()
        .filter(|g| g.cluster == cluster.name && same_host(&g.node, &node.name))
        .collect();
    if gpus.is_empty() {
        lines.push(Line::styled("  no GPU source reports this node", muted));
    } else {
        lines.push(Line::styled(
            format!(
                "  {:<5} {:>5} {:>11} {:>6}  {}",
                "GPU", "UTIL", "MEM GiB", "TEMP", "HOLDER"
            ),
            theme.style(Role::Header),
        ));
        for g in gpus {
            let util = g
                .utilization_pct
                .map_or_else(|| "-".to_string(), |u| format!("{u:.0}%"));
            let temp = format_optional(g.temperature_c.map(|t| format!("{t:.0}°C")));
            let text = format!(
                "  {:<5} {:>5} {:>11} {:>6}  {}",
                g.index,
                util,
                format_memory_gib(g),
                temp,
                format_holder(g)
            );
            let mut line = Line::raw(text);
            if let Some(xid) = g.xid_last {
                line.push_span(Span::styled(
                    format!("  XID {xid}"),
                    theme.style(Role::Critical),
                ));
            }
            lines.push(line);
        }
    }

    lines.push(Line::raw(""));
    lines.push(section(theme, "Signals"));
    let signals: Vec<&Signal> = ctx
        .snapshot
        .signals
        .iter()
        .filter(|s| {
            s.subject.cluster == cluster.name
                && s.subject
                    .node
                    .as_deref()
                    .is_some_and(|n| same_host(n, &node.name))
        })
        .collect();
    if signals.is_empty() {
        lines.push(Line::styled("  none", muted));
    }
    for s in signals {
        lines.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{:<8}", severity_text(s.severity)),
                theme.style(severity_role(s.severity)),
            ),
            Span::raw(format!(" {}  {}", s.kind, s.summary)),
        ]));
    }

    let object = format!("node/{}", node.name);
    let mut events: Vec<_> = cluster
        .warnings
        .iter()
        .chain(&cluster.normal_events)
        .filter(|w| w.object.eq_ignore_ascii_case(&object))
        .collect();
    events.sort_by_key(|e| e.last_seen);
    if !events.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section(theme, "Events"));
        for w in events {
            let seen = w.last_seen.map_or_else(String::new, |at| {
                format!(", {} ago", human_duration((ctx.now - at).num_seconds()))
            });
            let (kind, role) = if w.warning {
                ("Warning", Role::Warning)
            } else {
                ("Normal", Role::Muted)
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {kind:<7} {}: ", w.reason), theme.style(role)),
                Span::raw(format!("{} (×{}{seen})", w.message, w.count)),
            ]));
        }
    }

    let crashing: Vec<_> = cluster
        .crash_looping
        .iter()
        .filter(|p| p.node.as_deref() == Some(node.name.as_str()))
        .collect();
    if !crashing.is_empty() {
        lines.push(Line::raw(""));
        lines.push(section(theme, "Crash-looping pods"));
        for p in crashing {
            let last = p
                .last_termination
                .as_deref()
                .map_or_else(String::new, |t| format!(", last {t}"));
            lines.push(Line::styled(
                format!(
                    "  {}/{} {} ({} restarts{last})",
                    p.namespace, p.name, p.reason, p.restarts
                ),
                theme.style(Role::Warning),
            ));
        }
    }
    lines
}

fn readiness_text(r: NodeReadiness) -> &'static str {
    match r {
        NodeReadiness::Ready => "Ready",
        NodeReadiness::NotReady => "NotReady",
        NodeReadiness::Unknown => "Unknown",
    }
}

/// kubectl's STATUS: the readiness, then `,SchedulingDisabled` when cordoned.
fn status_text(node: &NodeModel) -> &'static str {
    match (node.readiness, node.cordoned) {
        (NodeReadiness::Ready, false) => "Ready",
        (NodeReadiness::Ready, true) => "Ready,SchedulingDisabled",
        (NodeReadiness::NotReady, false) => "NotReady",
        (NodeReadiness::NotReady, true) => "NotReady,SchedulingDisabled",
        (NodeReadiness::Unknown, false) => "Unknown",
        (NodeReadiness::Unknown, true) => "Unknown,SchedulingDisabled",
    }
}

fn status_role(node: &NodeModel) -> Role {
    match node.readiness {
        NodeReadiness::NotReady => Role::Critical,
        NodeReadiness::Unknown => Role::Warning,
        NodeReadiness::Ready if node.cordoned => Role::Warning,
        NodeReadiness::Ready => Role::Ok,
    }
}

fn capacity_text(c: CapacityType) -> &'static str {
    match c {
        CapacityType::OnDemand => "on-demand",
        CapacityType::Spot => "spot",
        CapacityType::Reserved => "reserved",
    }
}

/// Signals about each node, keyed by (cluster, short host name).
fn signal_tallies(signals: &[Signal]) -> HashMap<(&str, &str), SignalTally> {
    let mut tallies: HashMap<(&str, &str), SignalTally> = HashMap::new();
    for s in signals {
        let Some(node) = s.subject.node.as_deref() else {
            continue;
        };
        tallies
            .entry((s.subject.cluster.as_str(), short_name(node)))
            .and_modify(|t| {
                t.count += 1;
                t.worst = t.worst.max(s.severity);
            })
            .or_insert(SignalTally {
                count: 1,
                worst: s.severity,
            });
    }
    tallies
}

/// A small fleet for the pane tests: two clusters, a NotReady node, a cordoned spot node, an
/// idle GPU held by a pod and a GPU with XID 79.
#[cfg(test)]
pub(super) mod fixtures {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, TimeZone, Utc};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::layout::Position;
    use ratatui::style::Style;

    use crate::model::gpu::{GpuModel, PodRef};
    use crate::model::signal::{Severity, Signal, Subject};
    use crate::model::{
        CapacityType, ClusterSnapshot, DeploymentModel, History, NodeModel, NodeReadiness,
        PhaseCounts, RolloutState, Sample, Snapshot, Taint,
    };
    use crate::tui::pane::{Pane, ViewCtx};
    use crate::tui::theme::Theme;

    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    /// The Deployment `serving/web` at revision 4, rolled out with all `replicas` ready.
    pub fn web_deployment(replicas: u32) -> DeploymentModel {
        DeploymentModel {
            namespace: "serving".into(),
            name: "web".into(),
            revision: Some(4),
            replicas,
            ready: replicas,
            updated: replicas,
            available: replicas,
            rollout: RolloutState::Complete,
            images: vec![],
            registered_model: None,
        }
    }

    /// [`fleet`] with [`web_deployment`] as the only Deployment of its first cluster.
    pub fn fleet_with_web(replicas: u32) -> Snapshot {
        let mut snap = fleet();
        Arc::make_mut(&mut snap.clusters[0]).deployments = vec![web_deployment(replicas)];
        snap
    }

    pub fn node(name: &str, requested: u32) -> NodeModel {
        NodeModel {
            name: name.into(),
            readiness: NodeReadiness::Ready,
            readiness_since: Some(now() - Duration::days(5)),
            cordoned: false,
            taints: vec![],
            capacity_type: CapacityType::OnDemand,
            instance_type: Some("p5.48xlarge".into()),
            pool: Some("gpu-h100".into()),
            zone: Some("us-east-1a".into()),
            gpu_product: Some("NVIDIA-H100-80GB-HBM3".into()),
            gpu_capacity: 8,
            gpu_allocatable: 8,
            gpu_requested: requested,
            pods: PhaseCounts {
                running: 4,
                pending: 1,
                ..PhaseCounts::default()
            },
            created: Some(now() - Duration::days(5) - Duration::hours(3)),
        }
    }

    pub fn cluster(name: &str, nodes: Vec<NodeModel>) -> ClusterSnapshot {
        ClusterSnapshot {
            name: name.into(),
            nodes,
            ..ClusterSnapshot::default()
        }
    }

    pub fn gpu(cluster: &str, node: &str, index: u32, util: Option<f64>) -> GpuModel {
        let mut g = GpuModel::new(cluster, node, index, &format!("GPU-{node}-{index}"), now());
        g.model_name = Some("NVIDIA H100 80GB HBM3".into());
        g.utilization_pct = util;
        g.memory_used_mib = Some(40 * 1024);
        g.memory_total_mib = Some(80 * 1024);
        g.temperature_c = Some(61.0);
        g.power_w = Some(420.0);
        g.ecc_dbe_volatile = Some(0);
        g
    }

    pub fn holder(namespace: &str, pod: &str) -> Option<PodRef> {
        Some(PodRef {
            namespace: namespace.into(),
            pod: pod.into(),
            container: None,
        })
    }

    fn signal(kind: &str, severity: Severity, cluster: &str, node: &str) -> Signal {
        Signal {
            kind: kind.into(),
            severity,
            subject: Subject {
                cluster: cluster.into(),
                node: Some(node.into()),
                ..Subject::default()
            },
            summary: format!("{kind} on {node}"),
            evidence: BTreeMap::new(),
            action: None,
            first_seen: now(),
            dedup_key: format!("{kind}/{cluster}/{node}"),
        }
    }

    /// prod-a: gpu-a-1 (6/8 GPUs, tainted), gpu-a-2 (NotReady, XID 79), spot-a-3 (cordoned
    /// spot); prod-b: gpu-b-1 (8/8). gpu-a-1's GPU 1 is held by ml/serve-0 and idle.
    pub fn fleet() -> Snapshot {
        let mut a1 = node("gpu-a-1", 6);
        a1.taints = vec![Taint {
            key: "nvidia.com/gpu".into(),
            value: "present".into(),
            effect: "NoSchedule".into(),
        }];
        let mut a2 = node("gpu-a-2", 0);
        a2.readiness = NodeReadiness::NotReady;
        a2.readiness_since = Some(now() - Duration::minutes(12));
        let mut a3 = node("spot-a-3", 2);
        a3.cordoned = true;
        a3.capacity_type = CapacityType::Spot;
        a3.instance_type = Some("g5.12xlarge".into());
        a3.zone = Some("us-east-1b".into());
        a3.gpu_product = Some("NVIDIA-A10G".into());
        (a3.gpu_capacity, a3.gpu_allocatable) = (4, 4);
        a3.taints = vec![Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        }];
        let mut b1 = node("gpu-b-1", 8);
        b1.capacity_type = CapacityType::Reserved;
        b1.instance_type = Some("p4d.24xlarge".into());
        b1.zone = Some("us-west-2a".into());

        let mut busy = gpu("prod-a", "gpu-a-1", 0, Some(91.0));
        busy.holder = holder("ml", "train-0");
        let mut idle = gpu("prod-a", "gpu-a-1", 1, Some(2.0));
        idle.holder = holder("ml", "serve-0");
        let mut broken = gpu("prod-a", "gpu-a-2", 0, Some(0.0));
        broken.xid_last = Some(79);
        broken.ecc_dbe_volatile = Some(2);
        let mut other = gpu("prod-b", "gpu-b-1", 0, Some(55.0));
        other.model_name = Some("NVIDIA A100-SXM4-80GB".into());
        other.holder = holder("research", "eval-0");

        let history: History = [(
            "prometheus/gpu-a-1/gpu_util_pct".to_string(),
            (0..30)
                .map(|i| Sample {
                    at: now() - Duration::minutes(30 - i),
                    value: f64::from(i as u32 * 3),
                })
                .collect(),
        )]
        .into_iter()
        .collect();

        Snapshot {
            version: 1,
            taken_at: Some(now()),
            clusters: vec![
                Arc::new(cluster("prod-a", vec![a1, a2, a3])),
                Arc::new(cluster("prod-b", vec![b1])),
            ],
            history: Arc::new(history),
            signals: vec![
                signal("node.not_ready", Severity::Critical, "prod-a", "gpu-a-2"),
                signal("gpu.xid", Severity::Critical, "prod-a", "gpu-a-2"),
                signal("gpu.idle_allocated", Severity::Warning, "prod-a", "gpu-a-1"),
            ],
            endpoints: vec![],
            gpus: Arc::new(vec![busy, idle, broken, other]),
            gpu_sources: vec![],
            cost: None,
            models: vec![],
            airflow: None,
            cost_source: None,
            finding_kinds: vec![],
            unknown_since_start: vec![],
            store_down: None,
            gpu_history: Default::default(),
        }
    }

    /// The forecast the budget stage (`signals::budget`, which the cockpit never runs) makes of
    /// `model::cost::ten_days_at_100()`, as of the 11th: 3,000.
    pub fn ten_days_at_100_forecast() -> crate::model::cost::BudgetForecast {
        crate::model::cost::BudgetForecast {
            month_end: 3000.0,
            pct: 150.0,
            over_budget: true,
            method: "linear: least-squares line through 10 complete days of spend (daily spend \
                     changing by +0.00 a day), extended to the end of the month and added to \
                     the month-to-date"
                .into(),
        }
    }

    /// `snap` as the pipeline hands it to the cockpit: its signals are the detectors', its
    /// history holds the pools' GPU heat as `state` samples it.
    pub fn evaluated(mut snap: Snapshot) -> Arc<Snapshot> {
        let heat = crate::model::gpu_history::pool_heat(&snap.clusters, &snap.gpus);
        let at = snap.taken_at.unwrap_or_else(now);
        crate::model::gpu_history::sample_heat(
            Arc::make_mut(&mut snap.history),
            at,
            &heat,
            at - Duration::hours(1),
        );
        snap.signals = crate::pipeline::Pipeline::detect_once(
            &crate::config::Thresholds::default(),
            &snap,
            now(),
        );
        Arc::new(snap)
    }

    /// Draws with `draw` into a `width`×`height` test terminal and returns its buffer.
    pub fn render_buffer(
        width: u16,
        height: u16,
        draw: impl FnOnce(&mut ratatui::Frame),
    ) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        terminal
            .draw(|frame| draw(frame))
            .expect("drawing into a test backend");
        terminal.backend().buffer().clone()
    }

    /// The buffer's text, one string per line.
    pub fn text_lines(buffer: &Buffer) -> Vec<String> {
        crate::tui::pane::testing::lines(buffer)
    }

    /// Draws and returns the screen's lines.
    pub fn render(width: u16, height: u16, draw: impl FnOnce(&mut ratatui::Frame)) -> Vec<String> {
        text_lines(&render_buffer(width, height, draw))
    }

    /// What a table test draws with at [`now`]: `cluster` in view, or every cluster.
    pub fn ctx<'a>(
        snapshot: &'a Snapshot,
        theme: &'a Theme,
        cluster: Option<&'a str>,
    ) -> ViewCtx<'a> {
        ViewCtx {
            cluster,
            ..crate::tui::pane::testing::view_ctx(snapshot, theme, now())
        }
    }

    /// Draws `pane` and returns the screen's lines.
    pub fn draw(pane: &mut dyn Pane, ctx: &ViewCtx, width: u16, height: u16) -> Vec<String> {
        text_lines(&crate::tui::pane::testing::render(pane, ctx, width, height))
    }

    /// The style of the first cell of the first place `text` appears.
    pub fn style_of(buffer: &Buffer, text: &str) -> Option<Style> {
        text_lines(buffer).iter().enumerate().find_map(|(y, line)| {
            let x = line[..line.find(text)?].chars().count();
            let pos = Position::new(u16::try_from(x).ok()?, u16::try_from(y).ok()?);
            buffer.cell(pos).map(|c| c.style())
        })
    }

    pub fn screen_has(lines: &[String], text: &str) -> bool {
        lines.iter().any(|l| l.contains(text))
    }

    pub fn line_with<'a>(lines: &'a [String], text: &str) -> &'a str {
        lines
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line contains {text:?}:\n{}", lines.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixtures::*;
    use super::*;
    use crate::model::Snapshot;

    /// Node names in the order the table shows them.
    fn node_order(lines: &[String], names: &[&str]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| names.iter().find(|n| l.contains(*n)).map(|n| n.to_string()))
            .collect()
    }

    const NAMES: [&str; 4] = ["gpu-a-1", "gpu-a-2", "spot-a-3", "gpu-b-1"];

    #[test]
    fn the_table_shows_every_node_with_kubectl_status_and_headers() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let lines = draw(&mut NodesPane::new(), &ctx, 120, 30);

        let header = line_with(&lines, "NODE");
        for h in [
            "CLUSTER", "STATUS", "CAPACITY", "INSTANCE", "ZONE", "GPUS", "PODS", "AGE", "SIGNALS",
        ] {
            assert!(header.contains(h), "{h} missing from {header:?}");
        }
        assert!(screen_has(&lines, "Nodes (4/4)"));
        assert!(line_with(&lines, "gpu-a-2").contains("NotReady"));
        let spot = line_with(&lines, "spot-a-3");
        assert!(spot.contains("Ready,SchedulingDisabled"), "{spot}");
        assert!(spot.contains("spot"));
        let a1 = line_with(&lines, "gpu-a-1");
        assert!(a1.contains("6/8"), "GPUs used/allocatable: {a1}");
        assert!(a1.contains("4/5"), "pods running/total: {a1}");
        assert!(a1.contains("5d3h"), "kubectl age: {a1}");
        assert!(line_with(&lines, "gpu-b-1").contains("reserved"));
    }

    #[test]
    fn status_and_signal_cells_are_coloured_by_severity() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        pane.set_filter("gpu-a-2");
        let buffer = render_buffer(120, 30, |f| pane.draw(f, f.area(), &ctx));
        // The only row is selected, so it is drawn in one style; show it unselected too.
        pane.set_filter("prod-a");
        assert_eq!(pane.view.selected, 0, "gpu-a-1 is selected");
        let buffer_unselected = render_buffer(120, 30, |f| pane.draw(f, f.area(), &ctx));
        let critical = theme.style(Role::Critical).fg;
        assert_eq!(
            style_of(&buffer, "NotReady").and_then(|s| s.bg),
            theme.style(Role::Selection).bg
        );
        assert_eq!(
            style_of(&buffer_unselected, "NotReady").and_then(|s| s.fg),
            critical
        );
        let warning = theme.style(Role::Warning).fg;
        assert_eq!(
            style_of(&buffer_unselected, "Ready,SchedulingDisabled").and_then(|s| s.fg),
            warning,
            "a cordoned node is a warning"
        );
    }

    #[test]
    fn narrowing_to_one_cluster_drops_the_cluster_column() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, Some("prod-b"));
        let lines = draw(&mut NodesPane::new(), &ctx, 120, 30);
        assert!(!line_with(&lines, "NODE").contains("CLUSTER"));
        assert!(screen_has(&lines, "Nodes in prod-b (1/1)"));
        assert!(screen_has(&lines, "gpu-b-1"));
        assert!(!screen_has(&lines, "gpu-a-1"));
    }

    #[test]
    fn the_filter_narrows_rows_and_the_title_counts_them() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        pane.set_filter("US-EAST-1B");
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "Nodes (1/4) /US-EAST-1B"));
        assert_eq!(node_order(&lines, &NAMES), ["spot-a-3"]);

        pane.set_filter("nothing-like-this");
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "Nodes (0/4)"));
        assert!(screen_has(&lines, "no node matches /nothing-like-this"));

        assert!(pane.handle(Action::Back, &ctx), "Esc clears the filter");
        assert!(screen_has(&draw(&mut pane, &ctx, 120, 30), "Nodes (4/4)"));
    }

    #[test]
    fn sorting_by_gpus_orders_rows_by_gpus_in_use() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        let gpus_column = Column::ALL
            .iter()
            .position(|c| *c == Column::Gpus)
            .expect("GPUS column");
        for _ in 0..=gpus_column {
            assert!(pane.handle(Action::SortNext, &ctx));
        }
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(line_with(&lines, "NODE").contains("GPUS▲"));
        assert_eq!(
            node_order(&lines, &NAMES),
            ["gpu-a-2", "spot-a-3", "gpu-a-1", "gpu-b-1"]
        );
        assert!(pane.handle(Action::SortReverse, &ctx));
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert_eq!(
            node_order(&lines, &NAMES),
            ["gpu-b-1", "gpu-a-1", "spot-a-3", "gpu-a-2"]
        );
    }

    #[test]
    fn open_shows_the_selected_nodes_detail_and_back_closes_it() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        draw(&mut pane, &ctx, 120, 30);
        assert!(!pane.handle(Action::Up, &ctx), "already on the first row");
        assert!(pane.handle(Action::Down, &ctx));
        assert_eq!(pane.view.selected, 1);
        assert!(pane.handle(Action::Up, &ctx));
        assert!(pane.handle(Action::Open, &ctx));
        assert_eq!(
            pane.detail(),
            Some(&("prod-a".to_string(), "gpu-a-1".to_string()))
        );

        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "Node gpu-a-1 · prod-a"));
        assert!(screen_has(&lines, "nvidia.com/gpu=present:NoSchedule"));
        assert!(screen_has(
            &lines,
            "NVIDIA-H100-80GB-HBM3: 8 capacity, 8 allocatable, 6 requested"
        ));
        assert!(screen_has(&lines, "4 running, 1 pending"));
        assert!(line_with(&lines, "train-0").contains("91%"));
        assert!(line_with(&lines, "ml/serve-0").contains("2%"));
        assert!(screen_has(&lines, "gpu.idle_allocated"));
        assert!(!screen_has(&lines, "gpu-b-1"), "only this node's GPUs");

        assert!(pane.handle(Action::Back, &ctx));
        assert_eq!(pane.detail(), None);
        assert!(screen_has(&draw(&mut pane, &ctx, 120, 30), "Nodes (4/4)"));
    }

    #[test]
    fn the_detail_of_a_not_ready_node_shows_since_when_and_its_xid() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        pane.set_filter("gpu-a-2");
        assert!(pane.handle(Action::Open, &ctx));
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(line_with(&lines, "NotReady").contains("(12m ago)"));
        assert!(screen_has(&lines, "XID 79"));
        assert!(screen_has(&lines, "node.not_ready"));
        assert!(line_with(&lines, "Taints").contains("none"));
    }

    #[test]
    fn selection_moves_and_the_selected_row_uses_the_selection_style() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        pane.handle(Action::Bottom, &ctx);
        assert_eq!(pane.view.selected, 3);
        assert!(!pane.handle(Action::Down, &ctx), "already on the last row");
        let buffer = render_buffer(120, 30, |f| pane.draw(f, f.area(), &ctx));
        let selection = theme.style(Role::Selection);
        let width = usize::from(buffer.area.width);
        let rows_in_selection: Vec<String> = buffer
            .content
            .chunks(width)
            .filter(|l| l[1].bg == selection.bg.unwrap_or_default())
            .map(|l| l.iter().map(|c| c.symbol()).collect())
            .collect();
        assert_eq!(rows_in_selection.len(), 1);
        assert!(rows_in_selection[0].contains("gpu-b-1"));
    }

    fn big_fleet(nodes: usize) -> Snapshot {
        let nodes = (0..nodes)
            .map(|i| node(&format!("node-{i:05}"), (i % 9) as u32))
            .collect();
        Snapshot {
            clusters: vec![Arc::new(cluster("big", nodes))],
            ..Snapshot::default()
        }
    }

    #[test]
    fn five_thousand_nodes_draw_only_the_visible_rows() {
        let (snapshot, theme) = (big_fleet(5000), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "Nodes (5000/5000)"));
        // 30 lines less two borders and the header leave 27 rows.
        assert!(screen_has(&lines, "node-00000"));
        assert!(screen_has(&lines, "node-00026"));
        assert!(!screen_has(&lines, "node-00027"));

        assert!(pane.handle(Action::PageDown, &ctx));
        assert_eq!(pane.view.selected, 27);
        assert!(pane.handle(Action::Bottom, &ctx));
        let lines = draw(&mut pane, &ctx, 120, 30);
        assert!(screen_has(&lines, "node-04999"));
        assert!(screen_has(&lines, "node-04973"));
        assert!(!screen_has(&lines, "node-04972"));
    }

    #[test]
    fn a_tiny_terminal_draws_without_panicking() {
        let (snapshot, theme) = (fleet(), Theme::default_theme());
        let ctx = ctx(&snapshot, &theme, None);
        let mut pane = NodesPane::new();
        for (w, h) in [(20, 5), (1, 1), (0, 0), (20, 2)] {
            draw(&mut pane, &ctx, w, h);
        }
        pane.handle(Action::PageDown, &ctx);
        pane.handle(Action::Open, &ctx);
        draw(&mut pane, &ctx, 20, 5);
        pane.handle(Action::PageDown, &ctx);
        draw(&mut pane, &ctx, 20, 5);
        let empty = Snapshot::default();
        let ctx = super::fixtures::ctx(&empty, &theme, None);
        let lines = draw(&mut NodesPane::new(), &ctx, 120, 5);
        assert!(screen_has(&lines, "no nodes in the snapshot yet"));
    }

    #[test]
    fn human_duration_matches_kubectl() {
        for (secs, text) in [
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (3600 * 5, "5h"),
            (3600 * 5 + 60 * 7, "5h7m"),
            (86400 * 3 + 3600 * 4, "3d4h"),
            (86400 * 20, "20d"),
            (86400 * (365 * 2 + 30), "2y30d"),
        ] {
            assert_eq!(human_duration(secs), text);
        }
    }
}
