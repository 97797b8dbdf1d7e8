//! The Signals pane: what the detectors see now, most severe first, each opening onto its
//! evidence, action and dedup key, and naming its subject so the app can jump to it. Draws the
//! snapshot it is given; imports model, keymap, theme and pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::format::{compact_age, severity_label};
use super::keymap::{Action, PaneId};
use super::pane::{Pane, TableView, ViewCtx, sort_rows};
use super::theme::Role;
use super::widgets::{severity_role, titled_block};
use crate::model::signal::{Signal, Subject};

const HEADERS: [&str; 5] = ["SEVERITY", "KIND", "SUBJECT", "SUMMARY", "AGE"];

/// The Signals pane's state between frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalsPane {
    pub view: TableView,
    /// Dedup key of the signal whose detail is shown; it survives new snapshots.
    pub open: Option<String>,
    /// Rows the table showed last frame, for page moves.
    page: usize,
}

/// The signals the pane shows: those of the `:ctx` cluster, plus fleet-wide ones.
fn shown<'a>(ctx: &'a ViewCtx<'a>) -> impl Iterator<Item = &'a Signal> {
    ctx.snapshot.signals.iter().filter(move |s| {
        s.subject.cluster.is_empty() || ctx.cluster.is_none_or(|c| s.subject.cluster == c)
    })
}

fn evidence_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SignalsPane {
    /// Indexes into `snapshot.signals` in display order (filtered, then sorted), with the cells
    /// of each row.
    fn rows(&self, ctx: &ViewCtx) -> Vec<(usize, Vec<String>)> {
        let mut rows: Vec<Vec<String>> = ctx
            .snapshot
            .signals
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.subject.cluster.is_empty() || ctx.cluster.is_none_or(|c| s.subject.cluster == c)
            })
            .filter_map(|(i, s)| {
                // A finding opens no incident: say so where its severity would be.
                let severity = if ctx.snapshot.is_finding(s) {
                    "FINDING"
                } else {
                    severity_label(s.severity)
                };
                let mut cells = vec![
                    severity.to_string(),
                    s.kind.clone(),
                    s.subject.describe(),
                    s.summary.clone(),
                    compact_age(ctx.now, s.first_seen),
                ];
                if !self.view.keeps(&cells) {
                    return None;
                }
                // The index rides along past the visible columns so sorting keeps it.
                cells.push(i.to_string());
                Some(cells)
            })
            .collect();
        sort_rows(&mut rows, self.view.sort);
        rows.into_iter()
            .filter_map(|mut cells| {
                let index = cells.pop()?.parse().ok()?;
                Some((index, cells))
            })
            .collect()
    }

    fn selected_signal<'a>(&self, ctx: &'a ViewCtx) -> Option<&'a Signal> {
        if let Some(key) = &self.open {
            return ctx.snapshot.signals.iter().find(|s| &s.dedup_key == key);
        }
        let rows = self.rows(ctx);
        let (index, _) = rows.get(self.view.selected)?;
        ctx.snapshot.signals.get(*index)
    }

    /// The subject of the open or selected signal, so the app can jump to its pane.
    pub fn selected_subject(&self, ctx: &ViewCtx) -> Option<Subject> {
        self.selected_signal(ctx).map(|s| s.subject.clone())
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
        let rows = self.rows(ctx).len();
        let page = self.page.max(1) as isize;
        match action {
            a if self.view.navigate(a, rows, page, HEADERS.len()) => {}
            Action::Open => {
                self.open = self.selected_signal(ctx).map(|s| s.dedup_key.clone());
                return self.open.is_some();
            }
            _ => {}
        }
        self.view != before
    }

    /// Shows only signals with `f` in some cell (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.view.filter = f.to_string();
        self.view.selected = 0;
        self.view.offset = 0;
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
        let rows = self.rows(ctx);
        let total = shown(ctx).count();
        let mut title = format!(" Signals ({}/{total}) ", rows.len());
        if !self.view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if rows.is_empty() {
            let text = if total == 0 {
                "no signals: the detectors see nothing wrong"
            } else {
                "no signal matches the filter"
            };
            frame.render_widget(
                Paragraph::new(Span::styled(text, theme.style(Role::Muted))),
                inner,
            );
            return;
        }
        let height = usize::from(inner.height.saturating_sub(1));
        self.page = height;
        self.view.clamp(rows.len(), height);
        let visible = rows
            .iter()
            .enumerate()
            .skip(self.view.offset)
            .take(height)
            .filter_map(|(pos, (index, cells))| {
                let signal = ctx.snapshot.signals.get(*index)?;
                let row = Row::new(cells.iter().enumerate().map(|(col, text)| {
                    let cell = Cell::from(text.clone());
                    if col == 0 {
                        cell.style(theme.style(severity_role(signal.severity)))
                    } else {
                        cell
                    }
                }));
                Some(if pos == self.view.selected {
                    row.style(theme.style(Role::Selection))
                } else {
                    row
                })
            });
        let header = Row::new(HEADERS).style(theme.style(Role::Header));
        let table = Table::new(
            visible,
            [
                Constraint::Length(8),
                Constraint::Length(20),
                Constraint::Length(30),
                Constraint::Min(10),
                Constraint::Length(4),
            ],
        )
        .header(header)
        .column_spacing(1);
        frame.render_widget(table, inner);
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

    fn follow(&self, ctx: &ViewCtx) -> Option<(PaneId, String)> {
        let subject = self.selected_subject(ctx)?;
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
    use crate::tui::pane::testing::{find, lines};
    use crate::tui::theme::Theme;
    use std::collections::BTreeMap;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    use super::*;
    use crate::model::Snapshot;

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

    fn render(pane: &mut SignalsPane, ctx: &ViewCtx, w: u16, h: u16) -> Buffer {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
        term.draw(|f| pane.draw(f, f.area(), ctx))
            .unwrap_or_else(|e| panic!("{e}"));
        term.backend().buffer().clone()
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        ViewCtx {
            snapshot: snap,
            theme,
            now: at("2025-04-01T12:00:00Z"),
            cluster: None,
            cost: None,
        }
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
