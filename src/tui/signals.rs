//! The Signals pane: what the detectors see now, one row per incident group (the GPUs of one
//! node, the pods of one owner) with its worst severity, member count and oldest age, most
//! severe first. Enter expands a group into its members; a member (or a group of one) opens
//! onto its evidence, action and dedup key, and names its subject so the app can jump to it.
//! Draws the snapshot it is given; imports model, keymap, theme, pane and signal_groups.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::format::{compact_age, severity_label};
use super::intent::Intent;
use super::keymap::{Action, PaneId};
use super::pane::{Pane, TableView, ViewCtx, sort_rows};
use super::signal_groups::{SignalGroup, group_key, group_keys, group_signals};
use super::theme::Role;
use super::widgets::{
    length_constraints, measured_widths_keeping, middle_ellipsis, severity_role, titled_block,
};
use crate::model::signal::{Severity, Signal, Subject};

const HEADERS: [&str; 6] = ["SEVERITY", "KIND", "SUBJECT", "COUNT", "SUMMARY", "AGE"];
/// The COUNT column: where a group's count and its expand mark are drawn.
const COUNT_COLUMN: usize = 3;
/// SUBJECT: cut in the middle, its end (node, GPU, pod) tells the rows apart.
const SUBJECT_COLUMN: usize = 2;

/// The Signals pane's state between frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalsPane {
    pub view: TableView,
    /// Dedup key of the signal whose detail is shown; it survives new snapshots.
    pub open: Option<String>,
    /// Incident groups shown with their members beneath, by group key: a new snapshot
    /// reorders rows, so the key, not the row, is what stays expanded.
    expanded: BTreeSet<String>,
    /// Rows the table showed last frame, for page moves.
    page: usize,
}

/// What a row of the table stands for.
#[derive(Debug, Clone, PartialEq)]
enum RowTarget {
    /// An incident group: its key, how many members it has, and the index (into
    /// `snapshot.signals`) of the member that speaks for it.
    Group {
        key: String,
        members: usize,
        worst: usize,
    },
    /// One member of an expanded group, by its index into `snapshot.signals`.
    Member(usize),
}

/// One row of the table: what it stands for, the severity its first cell is drawn in, and
/// its cells.
#[derive(Debug, Clone, PartialEq)]
struct SignalRow {
    target: RowTarget,
    severity: Severity,
    cells: Vec<String>,
}

/// The signals the pane shows, with their indexes into `snapshot.signals`: those of the
/// `:ctx` cluster, plus fleet-wide ones.
fn shown<'a>(ctx: &'a ViewCtx<'a>) -> impl Iterator<Item = (usize, &'a Signal)> {
    ctx.snapshot
        .signals
        .iter()
        .enumerate()
        .filter(move |(_, s)| {
            s.subject.cluster.is_empty() || ctx.cluster.is_none_or(|c| s.subject.cluster == c)
        })
}

fn evidence_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `FINDING` for a finding (it opens no incident: say so where its severity would be), else
/// the severity.
fn severity_cell(signal: &Signal, ctx: &ViewCtx) -> String {
    if ctx.snapshot.is_finding(signal) {
        "FINDING".into()
    } else {
        severity_label(signal.severity).into()
    }
}

/// A group's cells: worst severity, kind, subject, member count, summary, oldest age.
fn group_cells(group: &SignalGroup, ctx: &ViewCtx) -> Option<Vec<String>> {
    let (_, worst) = group.worst()?;
    Some(vec![
        severity_cell(worst, ctx),
        group.kind().to_string(),
        group.subject(),
        group.members.len().to_string(),
        group.summary(),
        group
            .oldest()
            .map_or_else(String::new, |at| compact_age(ctx.now, at)),
    ])
}

/// A member's cells, as the filter reads them (the kind included, though the row shows it
/// only on its group).
fn member_cells(signal: &Signal, ctx: &ViewCtx) -> Vec<String> {
    vec![
        severity_cell(signal, ctx),
        signal.kind.clone(),
        signal.subject.describe(),
        String::new(),
        signal.summary.clone(),
        compact_age(ctx.now, signal.first_seen),
    ]
}

impl SignalsPane {
    /// The table's rows in display order: groups filtered and sorted by their own cells, each
    /// expanded one followed by its members (all of them when the group matches the filter,
    /// else those that do). A group is kept when it or any member matches the filter.
    fn rows(&self, ctx: &ViewCtx) -> Vec<SignalRow> {
        let groups = group_signals(shown(ctx));
        let mut kept: Vec<(Vec<String>, Vec<SignalRow>)> = Vec::new();
        for group in &groups {
            let (Some(cells), Some((worst, worst_signal))) =
                (group_cells(group, ctx), group.worst())
            else {
                continue;
            };
            let group_matches = self.view.keeps(&cells);
            let members: Vec<SignalRow> = group
                .members
                .iter()
                .filter_map(|&(index, signal)| {
                    let cells = member_cells(signal, ctx);
                    if !group_matches && !self.view.keeps(&cells) {
                        return None;
                    }
                    Some(SignalRow {
                        target: RowTarget::Member(index),
                        severity: signal.severity,
                        cells,
                    })
                })
                .collect();
            if !group_matches && members.is_empty() {
                continue;
            }
            let mut rows = vec![SignalRow {
                target: RowTarget::Group {
                    key: group.key.clone(),
                    members: group.members.len(),
                    worst,
                },
                severity: worst_signal.severity,
                cells: cells.clone(),
            }];
            if group.members.len() > 1 && self.expanded.contains(&group.key) {
                rows.extend(members);
            }
            kept.push((cells, rows));
        }
        // The position rides along past the visible columns so sorting keeps it.
        let mut keys: Vec<Vec<String>> = kept
            .iter()
            .enumerate()
            .map(|(i, (cells, _))| {
                let mut cells = cells.clone();
                cells.push(i.to_string());
                cells
            })
            .collect();
        sort_rows(&mut keys, self.view.sort);
        let mut slots: Vec<Option<Vec<SignalRow>>> =
            kept.into_iter().map(|(_, rows)| Some(rows)).collect();
        keys.iter()
            .filter_map(|cells| {
                let i: usize = cells.last()?.parse().ok()?;
                slots.get_mut(i)?.take()
            })
            .flatten()
            .collect()
    }

    /// The open signal, else the selected row's: a member's own, a group's worst.
    fn selected_signal<'a>(&self, ctx: &'a ViewCtx) -> Option<&'a Signal> {
        if let Some(key) = &self.open {
            return ctx.snapshot.signals.iter().find(|s| &s.dedup_key == key);
        }
        let rows = self.rows(ctx);
        let index = match &rows.get(self.view.selected)?.target {
            RowTarget::Group { worst, .. } => *worst,
            RowTarget::Member(index) => *index,
        };
        ctx.snapshot.signals.get(index)
    }

    /// The subject of the open or selected signal, so the app can jump to its pane.
    pub fn selected_subject(&self, ctx: &ViewCtx) -> Option<Subject> {
        self.selected_signal(ctx).map(|s| s.subject.clone())
    }

    /// Enter on a row: a group of many expands or collapses; a group of one or a member opens
    /// its detail. Returns whether anything changed.
    fn enter(&mut self, row: &SignalRow, ctx: &ViewCtx) -> bool {
        let index = match &row.target {
            RowTarget::Group { key, members, .. } if *members > 1 => {
                if !self.expanded.remove(key) {
                    self.expanded.insert(key.clone());
                }
                return true;
            }
            RowTarget::Group { worst, .. } => *worst,
            RowTarget::Member(index) => *index,
        };
        self.open = ctx.snapshot.signals.get(index).map(|s| s.dedup_key.clone());
        self.open.is_some()
    }

    /// Applies an action; returns whether anything changed.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        if self.open.is_some() {
            if action == Action::Back {
                self.open = None;
                return true;
            }
            return false;
        }
        let before = self.view.clone();
        let rows = self.rows(ctx);
        let page = self.page.max(1) as isize;
        match action {
            a if self.view.navigate(a, rows.len(), page, HEADERS.len()) => {}
            Action::Open => {
                return match rows.get(self.view.selected) {
                    Some(row) => self.enter(row, ctx),
                    None => false,
                };
            }
            _ => {}
        }
        self.view != before
    }

    /// Shows only groups with `f` in some cell of theirs or of a member (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.view.filter = f.to_string();
        self.view.selected = 0;
        self.view.offset = 0;
    }

    /// Forgets the expansion of groups no longer in the snapshot, so the set stays as small
    /// as what is firing (a group that comes back later starts collapsed).
    fn forget_gone_groups(&mut self, ctx: &ViewCtx) {
        if self.expanded.is_empty() {
            return;
        }
        let firing = group_keys(&ctx.snapshot.signals);
        self.expanded.retain(|key| firing.contains(key));
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        if self.open.is_some() {
            self.draw_detail(frame, area, ctx);
        } else {
            self.draw_table(frame, area, ctx);
        }
    }

    fn draw_table(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        self.forget_gone_groups(ctx);
        let rows = self.rows(ctx);
        let shown_groups = rows
            .iter()
            .filter(|r| matches!(r.target, RowTarget::Group { .. }))
            .count();
        let total = shown(ctx).count();
        let groups = group_signals(shown(ctx)).len();
        let mut title = format!(" Signals ({shown_groups}/{groups} groups, {total} signals) ");
        if !self.view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.view.filter));
        }
        let blind = super::format::blind_lines(ctx.snapshot, ctx.now);
        if !blind.is_empty() {
            title.push_str(&format!("· BLIND: {} ", blind.join("; ")));
        }
        let unknown = super::format::unknown_since_start(ctx.snapshot);
        if let Some(unknown) = &unknown {
            title.push_str(&format!("· {unknown} "));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if rows.is_empty() {
            let text = if total > 0 {
                "no signal matches the filter".to_string()
            } else if let Some(unknown) = unknown.filter(|_| blind.is_empty()) {
                // Held from before a restart is not calm: the open incidents still stand.
                format!("no signal seen yet; {unknown}")
            } else if blind.is_empty() {
                "no signals: the detectors see nothing wrong".to_string()
            } else {
                // Blind is not calm: say what the detectors cannot see.
                format!(
                    "no signals where the detectors can see; blind: {}",
                    blind.join("; ")
                )
            };
            frame.render_widget(
                Paragraph::new(Span::styled(text, theme.style(Role::Muted)))
                    .wrap(Wrap { trim: true }),
                inner,
            );
            return;
        }
        let height = usize::from(inner.height.saturating_sub(1));
        self.page = height;
        self.view.clamp(rows.len(), height);
        let cells: Vec<Vec<String>> = rows
            .iter()
            .enumerate()
            .map(|(pos, row)| {
                let last_member = !matches!(
                    rows.get(pos + 1).map(|r| &r.target),
                    Some(RowTarget::Member(_))
                );
                self.shown_cells(row, last_member)
            })
            .collect();
        // Every column as wide as its content; SUMMARY, the longest, gives way first.
        // KIND, COUNT and AGE are never cut; SUBJECT and SUMMARY share what is left.
        let widths = measured_widths_keeping(
            &HEADERS,
            cells.iter().map(Vec::as_slice),
            usize::from(inner.width),
            &[0, 1, COUNT_COLUMN, 5],
        );
        let visible = rows
            .iter()
            .zip(cells)
            .enumerate()
            .skip(self.view.offset)
            .take(height)
            .map(|(pos, (row, cells))| {
                let row_widget = Row::new(cells.into_iter().enumerate().map(|(col, text)| {
                    let text = if col == SUBJECT_COLUMN {
                        middle_ellipsis(&text, widths[col])
                    } else {
                        text
                    };
                    let cell = Cell::from(text);
                    if col == 0 {
                        cell.style(theme.style(severity_role(row.severity)))
                    } else {
                        cell
                    }
                }));
                if pos == self.view.selected {
                    row_widget.style(theme.style(Role::Selection))
                } else {
                    row_widget
                }
            });
        let header = Row::new(HEADERS).style(theme.style(Role::Header));
        let table = Table::new(visible, length_constraints(&widths))
            .header(header)
            .column_spacing(1);
        frame.render_widget(table, inner);
    }

    /// A row's cells as drawn: a group of many marks its count `▸` (collapsed) or `▾`
    /// (expanded); a member hangs off its group with a tree branch where the kind would repeat.
    fn shown_cells(&self, row: &SignalRow, last_member: bool) -> Vec<String> {
        let mut cells = row.cells.clone();
        match &row.target {
            RowTarget::Group { key, members, .. } if *members > 1 => {
                let mark = if self.expanded.contains(key) {
                    '▾'
                } else {
                    '▸'
                };
                if let Some(count) = cells.get_mut(COUNT_COLUMN) {
                    *count = format!("{count} {mark}");
                }
            }
            RowTarget::Group { .. } => {}
            RowTarget::Member(_) => {
                if let Some(kind) = cells.get_mut(1) {
                    *kind = if last_member { " └─" } else { " ├─" }.to_string();
                }
            }
        }
        cells
    }

    fn draw_detail(&self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let key = self.open.as_deref().unwrap_or_default();
        let Some(signal) = ctx.snapshot.signals.iter().find(|s| s.dedup_key == key) else {
            let block = titled_block(" Signal ", theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(format!("{key}: no longer reported (resolved)")),
                    Line::styled("Esc goes back", theme.style(Role::Muted)),
                ])
                .wrap(Wrap { trim: false }),
                inner,
            );
            return;
        };
        let block = titled_block(format!(" Signal {} ", signal.kind), theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let label = |name: &str| Span::styled(format!("{name:<11}"), theme.style(Role::Header));
        let mut lines = vec![
            Line::from(vec![
                label("severity"),
                Span::styled(
                    severity_label(signal.severity),
                    theme.style(severity_role(signal.severity)),
                ),
            ]),
            Line::from(vec![label("subject"), Span::raw(signal.subject.describe())]),
            Line::from(vec![label("summary"), Span::raw(signal.summary.clone())]),
            Line::from(vec![
                label("first seen"),
                Span::raw(format!(
                    "{} ago ({})",
                    compact_age(ctx.now, signal.first_seen),
                    signal.first_seen.format("%Y-%m-%d %H:%M:%S UTC")
                )),
            ]),
            Line::from(vec![
                label("action"),
                match &signal.action {
                    Some(a) => Span::styled(a.clone(), theme.style(Role::Accent)),
                    None => Span::styled("no standard action", theme.style(Role::Muted)),
                },
            ]),
            Line::from(vec![
                label("dedup key"),
                Span::raw(signal.dedup_key.clone()),
            ]),
            Line::from(vec![label("group"), Span::raw(group_key(signal))]),
            Line::default(),
            Line::styled("evidence", theme.style(Role::Header)),
        ];
        if signal.evidence.is_empty() {
            lines.push(Line::styled("  none recorded", theme.style(Role::Muted)));
        }
        let room = usize::from(inner.height).saturating_sub(lines.len());
        lines.extend(signal.evidence.iter().take(room).map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("  {k}"), theme.style(Role::Accent)),
                Span::raw(format!(" = {}", evidence_value(v))),
            ])
        }));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    }
}

impl Pane for SignalsPane {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        SignalsPane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        SignalsPane::handle(self, action, ctx)
    }

    fn set_filter(&mut self, filter: &str) {
        SignalsPane::set_filter(self, filter);
    }

    /// `l` and `Y` open the logs and YAML of the selected signal's subject.
    fn intent(&self, action: Action, ctx: &ViewCtx) -> Option<Result<Intent, String>> {
        super::intent::inspect_intent(self.selected_subject(ctx), action)
    }

    fn follow(&self, ctx: &ViewCtx) -> Option<(PaneId, String)> {
        let subject = self.selected_subject(ctx)?;
        // A pod's signal opens the pod in the Pods pane: Enter there shows its detail and
        // events, `l` its logs.
        if subject.gpu.is_none()
            && let Some(pod) = subject
                .object
                .as_deref()
                .and_then(|o| o.strip_prefix("pod/"))
        {
            return Some((PaneId::Pods, pod.to_string()));
        }
        let target = if subject.gpu.is_some() {
            PaneId::Gpus
        } else if subject.endpoint.is_some() {
            PaneId::Endpoints
        } else {
            PaneId::Nodes
        };
        let filter = subject
            .node
            .clone()
            .or(subject.endpoint.clone())
            .unwrap_or_default();
        Some((target, filter))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use crate::model::signal::Severity;
    use crate::tui::pane::testing::{find, lines, render};
    use crate::tui::theme::Theme;
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Snapshot;
    use crate::tui::nodes::fixtures;
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn signal(kind: &str, severity: Severity, node: &str, summary: &str) -> Signal {
        let mut evidence = BTreeMap::new();
        evidence.insert("xid".to_string(), serde_json::json!(79));
        evidence.insert("uuid".to_string(), serde_json::json!("GPU-1234"));
        Signal {
            kind: kind.into(),
            severity,
            subject: Subject {
                cluster: "prod".into(),
                node: Some(node.into()),
                ..Subject::default()
            },
            summary: summary.into(),
            evidence,
            action: Some("drain the node and reset the GPU".into()),
            first_seen: at("2025-04-01T11:55:00Z"),
            dedup_key: format!("{kind}:prod/{node}"),
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            signals: vec![
                signal(
                    "gpu.xid",
                    Severity::Critical,
                    "gpu-node-1",
                    "XID 79 on gpu-node-1 gpu0: fell off the bus",
                ),
                signal(
                    "node.not_ready",
                    Severity::Warning,
                    "cpu-node-7",
                    "cpu-node-7 not ready",
                ),
                signal("gpu.idle", Severity::Info, "gpu-node-2", "2 GPUs idle"),
            ],
            ..Snapshot::default()
        }
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snap, theme, at("2025-04-01T12:00:00Z"))
    }

    #[test]
    fn the_table_lists_signals_most_severe_first_with_coloured_severities() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        let buf = render(&mut pane, &ctx, 120, 30);
        let text = lines(&buf).join("\n");
        for h in HEADERS {
            assert!(text.contains(h), "header {h} missing:\n{text}");
        }
        assert!(text.contains("prod/gpu-node-1"), "{text}");
        let crit = find(&buf, "CRITICAL").unwrap_or_else(|| panic!("{text}"));
        let warn = find(&buf, "WARNING").unwrap_or_else(|| panic!("{text}"));
        assert!(crit.1 < warn.1, "critical is listed first:\n{text}");
        assert_eq!(
            buf[crit].fg,
            theme.style(Role::Critical).fg.unwrap_or_default()
        );
        assert_eq!(
            buf[warn].fg,
            theme.style(Role::Warning).fg.unwrap_or_default()
        );
    }

    #[test]
    fn a_blind_cluster_is_not_a_calm_one() {
        use crate::model::{ClusterSnapshot, ResourceSync, SyncState};
        let now = at("2025-04-01T12:00:00Z");
        let mut cluster: ClusterSnapshot =
            crate::tui::nodes::fixtures::cluster("sim-a", Vec::new());
        cluster.sync = vec![ResourceSync {
            resource: "nodes".into(),
            state: SyncState::Unreachable {
                since: now - chrono::Duration::seconds(130),
                last_error: "connection refused".into(),
            },
            changed_at: now,
        }];
        let snap = Snapshot {
            clusters: vec![std::sync::Arc::new(cluster)],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let text = lines(&render(&mut SignalsPane::default(), &ctx, 120, 30)).join("\n");
        assert!(!text.contains("see nothing wrong"), "{text}");
        assert!(
            text.contains("no signals where the detectors can see; blind: sim-a unreachable 2m"),
            "{text}"
        );
        assert!(text.contains("BLIND: sim-a unreachable 2m"), "{text}");
    }

    #[test]
    fn signals_held_from_before_a_restart_are_unknown_not_calm() {
        let until = at("2025-04-01T12:02:30Z");
        let snap = Snapshot {
            unknown_since_start: vec![
                crate::model::HeldSignal {
                    key: "pod.crash_loop:sim-a/batch/tokenizer-worker".into(),
                    until,
                },
                crate::model::HeldSignal {
                    key: "pod.pending_gpu:sim-b/research/llm-finetune-xl".into(),
                    until: at("2025-04-01T12:06:30Z"),
                },
            ],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let text = lines(&render(&mut SignalsPane::default(), &ctx, 160, 30)).join("\n");
        assert!(!text.contains("see nothing wrong"), "{text}");
        assert!(
            text.contains(
                "no signal seen yet; 2 signals of open incidents unknown since this face \
                 started, until 12:06:30 UTC"
            ),
            "{text}"
        );
    }

    #[test]
    fn open_shows_evidence_action_and_dedup_key_and_back_closes_it() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        assert!(pane.handle(Action::Open, &ctx));
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(text.contains("xid = 79"), "{text}");
        assert!(text.contains("uuid = GPU-1234"), "{text}");
        assert!(text.contains("drain the node and reset the GPU"), "{text}");
        assert!(text.contains("gpu.xid:prod/gpu-node-1"), "{text}");
        assert!(pane.handle(Action::Back, &ctx));
        let text = lines(&render(&mut pane, &ctx, 120, 30)).join("\n");
        assert!(
            text.contains("SUMMARY") && !text.contains("xid = 79"),
            "{text}"
        );
        assert!(!pane.handle(Action::Back, &ctx), "nothing left to close");
    }

    #[test]
    fn the_selected_subject_follows_the_selection_for_jumping() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        assert!(pane.handle(Action::Down, &ctx));
        let subject = pane.selected_subject(&ctx);
        assert_eq!(subject.and_then(|s| s.node), Some("cpu-node-7".to_string()));
        pane.set_filter("idle");
        assert_eq!(
            pane.selected_subject(&ctx).and_then(|s| s.node),
            Some("gpu-node-2".to_string())
        );
        assert!(!pane.handle(Action::Down, &ctx), "one row: nowhere to go");
    }

    /// The fleet fixture with `gpus` XID-79 GPUs on gpu-a-1, evaluated by the detectors.
    fn xid_storm(gpus: u32) -> Arc<Snapshot> {
        let mut snap = fixtures::fleet();
        snap.gpus = Arc::new(
            (0..gpus)
                .map(|i| {
                    let mut g = fixtures::gpu("prod-a", "gpu-a-1", i, Some(50.0));
                    g.xid_last = Some(79);
                    g
                })
                .collect(),
        );
        fixtures::evaluated(snap)
    }

    fn fixture_ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        ViewCtx {
            now: fixtures::now(),
            ..ctx(snap, theme)
        }
    }

    fn member_rows(text: &str) -> usize {
        text.lines()
            .filter(|l| l.contains(" ├─") || l.contains(" └─"))
            .count()
    }

    #[test]
    fn eight_xids_on_one_nodes_gpus_are_one_row_counting_eight() {
        let snap = xid_storm(8);
        assert_eq!(
            snap.signals.iter().filter(|s| s.kind == "gpu.xid").count(),
            8
        );
        let theme = Theme::default_theme();
        let ctx = fixture_ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        let xid_rows: Vec<&str> = text.lines().filter(|l| l.contains("gpu.xid")).collect();
        assert_eq!(xid_rows.len(), 1, "{text}");
        let row = xid_rows[0];
        assert!(
            row.contains("CRITICAL") && row.contains("prod-a/node/gpu-a-1") && row.contains("8 ▸"),
            "{text}"
        );
        assert!(row.contains("8 GPUs on gpu-a-1 · XID 79"), "{text}");
        assert_eq!(member_rows(&text), 0, "collapsed: {text}");
    }

    #[test]
    fn enter_expands_a_group_into_its_members_and_collapses_it_again() {
        let snap = xid_storm(8);
        let theme = Theme::default_theme();
        let ctx = fixture_ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        pane.set_filter("gpu.xid");
        assert!(pane.handle(Action::Open, &ctx));
        assert!(
            pane.open.is_none(),
            "a group of many expands, it does not open"
        );
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert_eq!(member_rows(&text), 8, "{text}");
        assert!(text.contains("8 ▾"), "{text}");
        for gpu in 0..8 {
            assert!(text.contains(&format!("prod-a/gpu-a-1/gpu{gpu}")), "{text}");
        }
        assert!(pane.handle(Action::Open, &ctx));
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert_eq!(member_rows(&text), 0, "collapsed again: {text}");
    }

    #[test]
    fn enter_on_a_member_opens_its_detail_and_back_returns_to_the_expanded_group() {
        let snap = xid_storm(8);
        let theme = Theme::default_theme();
        let ctx = fixture_ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        pane.set_filter("gpu.xid");
        pane.handle(Action::Open, &ctx);
        assert!(pane.handle(Action::Down, &ctx));
        assert!(pane.handle(Action::Down, &ctx));
        let member = pane
            .selected_signal(&ctx)
            .map(|s| s.dedup_key.clone())
            .unwrap_or_else(|| panic!("a member is selected"));
        assert!(pane.handle(Action::Open, &ctx));
        assert_eq!(pane.open.as_deref(), Some(member.as_str()));
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert!(
            text.contains("dedup key") && text.contains(&member),
            "the member's detail: {text}"
        );
        assert!(
            text.contains("gpu.fault:prod-a/node/gpu-a-1"),
            "its group: {text}"
        );
        assert!(pane.handle(Action::Back, &ctx));
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert_eq!(member_rows(&text), 8, "{text}");
    }

    #[test]
    fn a_group_stays_expanded_across_new_snapshots_until_it_stops_firing() {
        let theme = Theme::default_theme();
        let mut pane = SignalsPane::default();
        pane.set_filter("gpu.xid");
        let first = xid_storm(8);
        pane.handle(Action::Open, &fixture_ctx(&first, &theme));
        let grown = xid_storm(6);
        let ctx = fixture_ctx(&grown, &theme);
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert_eq!(member_rows(&text), 6, "still expanded: {text}");
        let healed = fixtures::evaluated(fixtures::fleet());
        render(&mut pane, &fixture_ctx(&healed, &theme), 140, 30);
        assert!(pane.expanded.is_empty(), "a group gone is forgotten");
    }

    #[test]
    fn the_filter_keeps_a_group_for_a_matching_member_and_shows_only_that_member() {
        let snap = xid_storm(8);
        let theme = Theme::default_theme();
        let ctx = fixture_ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        pane.set_filter("gpu-a-1 gpu5");
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert!(text.contains("8 ▸"), "the group is kept: {text}");
        pane.handle(Action::Open, &ctx);
        let text = lines(&render(&mut pane, &ctx, 140, 30)).join("\n");
        assert_eq!(member_rows(&text), 1, "{text}");
        assert!(text.contains("prod-a/gpu-a-1/gpu5"), "{text}");
    }

    #[test]
    fn a_single_member_group_opens_its_detail_and_sorting_keeps_members_under_their_group() {
        let snap = xid_storm(3);
        let theme = Theme::default_theme();
        let ctx = fixture_ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        let rows = pane.rows(&ctx);
        let single = rows
            .iter()
            .position(|r| matches!(r.target, RowTarget::Group { members: 1, .. }))
            .unwrap_or_else(|| panic!("a group of one: {rows:?}"));
        let xid = rows
            .iter()
            .position(|r| matches!(r.target, RowTarget::Group { members: 3, .. }))
            .unwrap_or_else(|| panic!("the xid group: {rows:?}"));
        pane.view.selected = xid;
        pane.handle(Action::Open, &ctx);
        // Sorting by kind, descending: members follow their group wherever it goes.
        pane.view.sort = Some((1, true));
        let rows = pane.rows(&ctx);
        let at = rows
            .iter()
            .position(|r| matches!(r.target, RowTarget::Group { members: 3, .. }))
            .unwrap_or_else(|| panic!("{rows:?}"));
        assert!(
            rows[at + 1..at + 4]
                .iter()
                .all(|r| matches!(r.target, RowTarget::Member(_))),
            "{rows:?}"
        );
        pane.view.sort = None;
        pane.view.selected = single;
        assert!(pane.handle(Action::Open, &ctx));
        assert!(pane.open.is_some(), "a group of one opens its signal");
    }

    #[test]
    fn a_tiny_terminal_renders_without_panicking() {
        let snap = snapshot();
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = SignalsPane::default();
        render(&mut pane, &ctx, 20, 5);
        pane.handle(Action::Open, &ctx);
        render(&mut pane, &ctx, 20, 5);
        render(&mut pane, &ctx, 0, 0);
    }
}
