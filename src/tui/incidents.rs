//! The Incidents pane: the RCA store's incidents, open ones first by severity, each opening
//! onto its milestones, affected objects and timeline. It draws the incident list and the
//! timeline the app last gave it and asks for a timeline through `take_request`; it never
//! reads the store.
//! Imports model, keymap, theme, pane and the Signals pane's small helpers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::format::{compact_age, severity_label};
use super::intent::Intent;
use super::keymap::Action;
use super::pane::{Pane, TableView, ViewCtx, in_scope, sort_rows};
use super::signal_groups::incident_title_now;
use super::theme::Role;
use super::widgets::{
    clamped_page, length_constraints, measured_widths_keeping, middle_ellipsis, severity_role,
    status_role, titled_block,
};
use crate::model::incident::{Entry, EntryKind, Incident};

const HEADERS: [&str; 9] = [
    "ID", "SEVERITY", "STATUS", "KIND", "TITLE", "SUBJECT", "SIGNALS", "OPENED", "DURATION",
];
/// TITLE and SUBJECT, cut in the middle when they must be cut: a title ends with its subject
/// (`gpu.xid on gke-sim-a-h100-pool-0042`), and a subject with its node or pod.
const TITLE_COLUMN: usize = 4;
const SUBJECT_COLUMN: usize = 5;
const TIMELINE_HEADERS: [&str; 5] = ["TIME", "KIND", "ACTOR", "ORIGIN", "SUMMARY"];
/// Width of the detail's labels (`milestones `); times are UTC, as the status line's clock.
const LABEL_WIDTH: usize = 11;

/// The Incidents pane's state between frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentsPane {
    pub view: TableView,
    /// The store's incidents as the app last gave them: open first, then by severity and
    /// recency.
    incidents: Arc<Vec<Incident>>,
    /// Id of the incident whose detail is shown; it survives list reloads.
    pub open: Option<u64>,
    /// The open incident's timeline as last loaded; `None` while it is being read.
    timeline: Option<Vec<Entry>>,
    /// The open incident's entry count when its timeline was last asked for: a reloaded list
    /// with another count means the timeline changed.
    asked_at_entries: Option<u64>,
    /// A timeline the app should load (taken by `take_request`).
    request: Option<u64>,
    /// First timeline row shown; `None` follows the newest entries.
    scroll: Option<usize>,
    /// Rows the table (or the timeline) showed last frame, for page moves and following.
    page: usize,
    timeline_page: usize,
    /// The keys of the detail's actions, as the keymap binds them (`n note · a acknowledge …`).
    keys_hint: String,
}

/// `45s`, `12m30s`, `3h05m`, `2d04h`: how long an incident has lasted.
pub(crate) fn lasted(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The detector kind behind an incident: its group reads `kind:cluster/place`.
pub(crate) fn incident_kind(inc: &Incident) -> &str {
    inc.group.split_once(':').map_or("", |(kind, _)| kind)
}

/// A time as the detail shows it: the clock alone today, with the date before.
fn when(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%m-%d %H:%M").to_string()
    }
}

/// As many of `items` as fit in `width` columns, then how many more there are.
fn fit_list<'a>(items: impl IntoIterator<Item = &'a String>, width: usize) -> String {
    let items: Vec<&String> = items.into_iter().collect();
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let more = items.len() - i - 1;
        let sep = if out.is_empty() { "" } else { ", " };
        let tail = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        let fits =
            out.chars().count() + sep.len() + item.chars().count() + tail.chars().count() <= width;
        if !fits && !out.is_empty() {
            out.push_str(&format!(" (+{} more)", items.len() - i));
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
}

impl IncidentsPane {
    /// The pane, its detail reminding of the action keys as `hint` says them.
    pub fn with_keys_hint(hint: String) -> Self {
        Self {
            keys_hint: hint,
            ..Self::default()
        }
    }

    /// Indexes into `incidents` in display order (filtered, then sorted), with the cells of
    /// each row.
    fn rows(&self, ctx: &ViewCtx) -> Vec<(usize, Vec<String>)> {
        let mut rows: Vec<Vec<String>> = self
            .incidents
            .iter()
            .enumerate()
            .filter(|(_, inc)| in_scope(inc, ctx.cluster))
            .filter_map(|(i, inc)| {
                let opened = inc.milestones.detected.or(inc.milestones.started);
                let mut cells = vec![
                    inc.label(),
                    severity_label(inc.severity).to_string(),
                    inc.status.name().to_string(),
                    incident_kind(inc).to_string(),
                    incident_title_now(inc, ctx.snapshot),
                    inc.subject.describe(),
                    inc.signals.to_string(),
                    opened.map_or_else(|| "-".into(), |at| compact_age(ctx.now, at)),
                    lasted(inc.duration(ctx.now)),
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

    /// The incident the detail shows, else the selected row's.
    pub fn selected(&self, ctx: &ViewCtx) -> Option<&Incident> {
        if let Some(id) = self.open {
            return self.incidents.iter().find(|i| i.id == id);
        }
        let rows = self.rows(ctx);
        let (index, _) = rows.get(self.view.selected)?;
        self.incidents.get(*index)
    }

    /// The id actions apply to: the open incident, else the selected row's.
    pub fn target(&self, ctx: &ViewCtx) -> Option<u64> {
        self.open.or_else(|| self.selected(ctx).map(|i| i.id))
    }

    /// The timeline the app should load now, if any (asked once).
    pub fn take_request(&mut self) -> Option<u64> {
        self.request.take()
    }

    fn open_detail(&mut self, inc: &Incident) {
        self.open = Some(inc.id);
        self.timeline = None;
        self.scroll = None;
        self.asked_at_entries = Some(inc.entries);
        self.request = Some(inc.id);
    }

    /// A new incident list: the selection stays on the incident it was on, and the open
    /// timeline is asked for again when its incident's entry count moved.
    pub fn set_incidents(&mut self, incidents: Arc<Vec<Incident>>, ctx: &ViewCtx) {
        let keep = self.target(ctx);
        self.incidents = incidents;
        if let Some(id) = keep
            && let Some(pos) = self
                .rows(ctx)
                .iter()
                .position(|(i, _)| self.incidents.get(*i).is_some_and(|inc| inc.id == id))
        {
            self.view.selected = pos;
        }
        if let Some(id) = self.open
            && let Some(inc) = self.incidents.iter().find(|i| i.id == id)
            && self.asked_at_entries != Some(inc.entries)
        {
            self.asked_at_entries = Some(inc.entries);
            self.request = Some(id);
        }
    }

    /// The store's answer to a timeline request; answers for an incident no longer open are
    /// dropped.
    pub fn set_timeline(&mut self, id: u64, entries: Vec<Entry>) {
        if self.open == Some(id) {
            self.timeline = Some(entries);
        }
    }

    /// Applies an action; returns whether anything changed.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        if self.open.is_some() {
            return self.handle_detail(action);
        }
        let before = self.view.clone();
        let rows = self.rows(ctx).len();
        let page = self.page.max(1) as isize;
        match action {
            a if self.view.navigate(a, rows, page, HEADERS.len()) => {}
            Action::Open => {
                let Some(inc) = self.selected(ctx).cloned() else {
                    return false;
                };
                self.open_detail(&inc);
                return true;
            }
            _ => {}
        }
        self.view != before
    }

    /// The detail: movement scrolls the timeline (the bottom follows new entries), Back
    /// closes it.
    fn handle_detail(&mut self, action: Action) -> bool {
        let entries = self.timeline.as_ref().map_or(0, Vec::len);
        let page = self.timeline_page.max(1);
        let last_top = entries.saturating_sub(page);
        let top = self.scroll.unwrap_or(last_top).min(last_top);
        let next = match action {
            Action::Back => {
                self.open = None;
                self.timeline = None;
                self.asked_at_entries = None;
                self.scroll = None;
                return true;
            }
            Action::Up => top.saturating_sub(1),
            Action::Down => top + 1,
            Action::PageUp => top.saturating_sub(page),
            Action::PageDown => top + page,
            Action::Top => 0,
            Action::Bottom => last_top,
            _ => return false,
        };
        let before = self.scroll;
        self.scroll = (next < last_top).then_some(next);
        self.scroll != before
    }

    /// Shows only incidents with `f` in some cell (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.view.filter = f.to_string();
        self.view.selected = 0;
        self.view.offset = 0;
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        match self.open {
            Some(id) => self.draw_detail(frame, area, ctx, id),
            None => self.draw_table(frame, area, ctx),
        }
    }

    fn draw_table(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let rows = self.rows(ctx);
        let scoped: Vec<&Incident> = self
            .incidents
            .iter()
            .filter(|i| in_scope(i, ctx.cluster))
            .collect();
        let open = scoped.iter().filter(|i| i.status.is_open()).count();
        let mut title = format!(" Incidents ({}/{}) {open} open ", rows.len(), scoped.len());
        if !self.view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let empty = || {
            if scoped.is_empty() {
                "no incidents: a signal that starts firing opens one"
            } else {
                "no incident matches the filter"
            }
        };
        let Some(height) = clamped_page(frame, inner, rows.len(), &mut self.view, theme, empty)
        else {
            return;
        };
        self.page = height;
        // Columns as wide as their content; TITLE and SUBJECT, the longest, give way first,
        // and SUBJECT keeps its end (the node or pod that tells two incidents apart). When the
        // title would be cut, SUBJECT goes instead: a title names its subject, and the detail
        // shows it whole.
        let keep_whole = [0, 1, 2, 6, 7, 8];
        let all: Vec<usize> = (0..HEADERS.len()).collect();
        let fit = |shown: &[usize]| {
            let headers: Vec<&str> = shown.iter().map(|&c| HEADERS[c]).collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|(_, cells)| shown.iter().map(|&c| cells[c].clone()).collect())
                .collect();
            let whole: Vec<usize> = (0..shown.len())
                .filter(|&i| keep_whole.contains(&shown[i]))
                .collect();
            measured_widths_keeping(
                &headers,
                cells.iter().map(Vec::as_slice),
                usize::from(inner.width),
                &whole,
            )
        };
        let widest_title = rows
            .iter()
            .map(|(_, cells)| cells[TITLE_COLUMN].chars().count())
            .max()
            .unwrap_or(0);
        let mut shown = all.clone();
        let mut widths = fit(&shown);
        if widths[TITLE_COLUMN] < widest_title {
            shown.retain(|&c| c != SUBJECT_COLUMN);
            widths = fit(&shown);
        }
        let visible = rows
            .iter()
            .enumerate()
            .skip(self.view.offset)
            .take(height)
            .filter_map(|(pos, (index, cells))| {
                let inc = self.incidents.get(*index)?;
                let closed = !inc.status.is_open();
                let row = Row::new(shown.iter().zip(&widths).map(|(&col, &width)| {
                    let text = &cells[col];
                    let cell = if col == SUBJECT_COLUMN || col == TITLE_COLUMN {
                        Cell::from(middle_ellipsis(text, width))
                    } else {
                        Cell::from(text.clone())
                    };
                    match col {
                        1 if !closed => cell.style(theme.style(severity_role(inc.severity))),
                        2 => cell.style(theme.style(status_role(inc.status))),
                        _ if closed => cell.style(theme.style(Role::Muted)),
                        0 => cell.style(theme.style(Role::Accent)),
                        _ => cell,
                    }
                }));
                Some(if pos == self.view.selected {
                    row.style(theme.style(Role::Selection))
                } else {
                    row
                })
            });
        let headers: Vec<&str> = shown.iter().map(|&c| HEADERS[c]).collect();
        let table = Table::new(visible, length_constraints(&widths))
            .header(Row::new(headers).style(theme.style(Role::Header)))
            .column_spacing(1);
        frame.render_widget(table, inner);
    }

    fn draw_detail(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx, id: u64) {
        let theme = ctx.theme;
        let incidents = self.incidents.clone();
        let Some(inc) = incidents.iter().find(|i| i.id == id) else {
            let block = titled_block(" Incident ", theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(format!(
                        "{}: not in the store's incident list (yet)",
                        crate::model::incident::incident_label(id)
                    )),
                    Line::styled("Esc goes back", theme.style(Role::Muted)),
                ])
                .wrap(Wrap { trim: false }),
                inner,
            );
            return;
        };
        let head = self.summary_lines(inc, ctx, usize::from(area.width.saturating_sub(2)));
        let [head_area, timeline_area] = Layout::vertical([
            Constraint::Length(head.len() as u16 + 2),
            Constraint::Min(0),
        ])
        .areas(area);
        let block = titled_block(
            format!(
                " {} {} {} ",
                inc.label(),
                severity_label(inc.severity),
                inc.status.name()
            ),
            theme,
        );
        let inner = block.inner(head_area);
        frame.render_widget(block, head_area);
        frame.render_widget(Paragraph::new(head), inner);
        self.draw_timeline(frame, timeline_area, ctx);
    }

    /// The detail's head, one line per fact, each fitted to `width` columns.
    fn summary_lines(&self, inc: &Incident, ctx: &ViewCtx, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let label =
            |name: &str| Span::styled(format!("{name:<LABEL_WIDTH$}"), theme.style(Role::Header));
        let m = &inc.milestones;
        // Milestones fill as many lines as the width needs, each `name time` kept whole.
        let mut milestones: Vec<Vec<Span<'static>>> = vec![vec![label("milestones")]];
        let mut used = 0;
        let room = width.saturating_sub(LABEL_WIDTH).max(1);
        for (name, at) in [
            ("started", m.started),
            ("detected", m.detected),
            ("acknowledged", m.acknowledged),
            ("mitigated", m.mitigated),
            ("resolved", m.resolved),
        ] {
            let span = match at {
                Some(at) => Span::raw(format!("{name} {}", when(ctx.now, at))),
                None => Span::styled(format!("{name} -"), theme.style(Role::Muted)),
            };
            let w = span.content.chars().count();
            if used > 0 && used + 3 + w > room {
                milestones.push(vec![label("")]);
                used = 0;
            }
            if let Some(row) = milestones.last_mut() {
                if used > 0 {
                    row.push(Span::raw(" · "));
                    used += 3;
                }
                row.push(span);
                used += w;
            }
        }
        let mut facts = format!(
            "{} · {} signals, {} firing · lasted {}{}",
            incident_kind(inc),
            inc.signals,
            inc.active.len(),
            lasted(inc.duration(ctx.now)),
            if inc.status.is_open() { " so far" } else { "" },
        );
        if let Some(prev) = inc.recurs {
            facts.push_str(&format!(
                " · recurs {}",
                crate::model::incident::incident_label(prev)
            ));
        }
        let affected = if inc.affected.is_empty() {
            Span::styled("none recorded", theme.style(Role::Muted))
        } else {
            Span::raw(fit_list(&inc.affected, width.saturating_sub(LABEL_WIDTH)))
        };
        let mut lines = vec![
            Line::from(vec![label("title"), Span::raw(inc.title.clone())]),
            Line::from(vec![label("subject"), Span::raw(inc.subject.describe())]),
        ];
        lines.extend(milestones.into_iter().map(Line::from));
        lines.extend([
            Line::from(vec![label("signals"), Span::raw(facts)]),
            Line::from(vec![label("affected"), affected]),
            Line::styled(self.keys_hint.clone(), theme.style(Role::Muted)),
        ]);
        lines
    }

    fn draw_timeline(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let Some(entries) = &self.timeline else {
            let block = titled_block(" Timeline ", theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(
                Paragraph::new(Span::styled(
                    "reading the timeline from the store…",
                    theme.style(Role::Muted),
                )),
                inner,
            );
            return;
        };
        let height = usize::from(area.height.saturating_sub(3));
        self.timeline_page = height;
        let last_top = entries.len().saturating_sub(height);
        let top = self.scroll.unwrap_or(last_top).min(last_top);
        let title = if self.scroll.is_some() {
            format!(
                " Timeline ({}) rows {}-{} (G follows the newest) ",
                entries.len(),
                top + 1,
                (top + height).min(entries.len())
            )
        } else {
            format!(" Timeline ({}) ", entries.len())
        };
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if entries.is_empty() {
            frame.render_widget(
                Paragraph::new(Span::styled("no entries yet", theme.style(Role::Muted))),
                inner,
            );
            return;
        }
        let rows = entries.iter().skip(top).take(height).map(|e| {
            let kind_role = match e.entry.kind {
                EntryKind::Signal => Role::Warning,
                EntryKind::Status => Role::Accent,
                EntryKind::Note => Role::Info,
                EntryKind::Action | EntryKind::Decision | EntryKind::Approval => Role::Base,
            };
            Row::new([
                Cell::from(when(ctx.now, e.entry.occurred_at)),
                Cell::from(e.entry.kind.name()).style(theme.style(kind_role)),
                Cell::from(e.entry.actor.to_string()),
                Cell::from(e.entry.origin.name()).style(theme.style(Role::Muted)),
                Cell::from(e.entry.summary.clone()),
            ])
        });
        let table = Table::new(
            rows,
            [
                Constraint::Length(11),
                Constraint::Length(8),
                Constraint::Length(22),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(TIMELINE_HEADERS).style(theme.style(Role::Header)))
        .column_spacing(1);
        frame.render_widget(table, inner);
    }
}

impl Pane for IncidentsPane {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        IncidentsPane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        IncidentsPane::handle(self, action, ctx)
    }

    fn set_filter(&mut self, filter: &str) {
        IncidentsPane::set_filter(self, filter);
    }

    fn set_incidents(&mut self, incidents: Arc<Vec<Incident>>, ctx: &ViewCtx) {
        IncidentsPane::set_incidents(self, incidents, ctx);
    }

    fn set_timeline(&mut self, incident: u64, entries: Vec<Entry>) {
        IncidentsPane::set_timeline(self, incident, entries);
    }

    fn take_timeline_request(&mut self) -> Option<u64> {
        IncidentsPane::take_request(self)
    }

    /// Note, acknowledge, resolve or export the selected incident.
    fn intent(&self, action: Action, ctx: &ViewCtx) -> Option<Result<Intent, String>> {
        let incident = || {
            self.selected(ctx)
                .map(|i| i.id)
                .ok_or_else(|| "no incident selected".to_string())
        };
        Some(match action {
            Action::Note => incident().map(|incident| Intent::Note {
                incident,
                text: String::new(),
            }),
            Action::Acknowledge => incident().map(|incident| Intent::Acknowledge { incident }),
            Action::Resolve => incident().map(|incident| Intent::Resolve { incident }),
            Action::Export => incident().map(|incident| Intent::Export { incident }),
            _ => return None,
        })
    }
}

/// Incidents and timelines for the pane and app tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeSet;

    use chrono::{DateTime, Duration, Utc};

    use crate::model::incident::{
        Actor, Entry, EntryKind, Incident, IncidentStatus, Milestones, NewEntry, Origin,
    };
    use crate::model::signal::{Severity, Subject};

    pub fn incident(
        id: u64,
        severity: Severity,
        status: IncidentStatus,
        kind: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> Incident {
        let started = now - Duration::minutes(20 + id as i64);
        let resolved = (status == IncidentStatus::Resolved).then(|| now - Duration::minutes(2));
        Incident {
            id,
            title: format!("{kind} on {node}"),
            severity,
            status,
            group: format!("{kind}:prod-a/node/{node}"),
            subject: Subject {
                cluster: "prod-a".into(),
                node: Some(node.into()),
                ..Subject::default()
            },
            milestones: Milestones {
                started: Some(started),
                detected: Some(started + Duration::seconds(4)),
                acknowledged: (status != IncidentStatus::Open)
                    .then(|| started + Duration::minutes(3)),
                mitigated: resolved,
                resolved,
                refired: None,
            },
            affected: BTreeSet::from([format!("prod-a/{node}")]),
            active: if status.is_open() {
                BTreeSet::from([format!("{kind}/prod-a/{node}")])
            } else {
                BTreeSet::new()
            },
            signals: 2,
            entries: 3,
            last_signal_at: started,
            recurs: None,
        }
    }

    /// INC-3 critical open XID on gpu-a-2, INC-2 warning acknowledged, INC-1 resolved.
    pub fn incidents(now: DateTime<Utc>) -> Vec<Incident> {
        vec![
            incident(
                3,
                Severity::Critical,
                IncidentStatus::Open,
                "gpu.xid",
                "gpu-a-2",
                now,
            ),
            incident(
                2,
                Severity::Warning,
                IncidentStatus::Acknowledged,
                "node.not_ready",
                "spot-a-3",
                now,
            ),
            incident(
                1,
                Severity::Critical,
                IncidentStatus::Resolved,
                "gpu.ecc",
                "gpu-a-1",
                now,
            ),
        ]
    }

    /// `n` entries on incident `id`, a minute apart, ending a minute before `now`.
    pub fn timeline(id: u64, n: usize, now: DateTime<Utc>) -> Vec<Entry> {
        (0..n)
            .map(|i| {
                let at = now - Duration::minutes((n - i) as i64);
                let (kind, actor, summary) = match i {
                    0 => (
                        EntryKind::Signal,
                        Actor::System,
                        "gpu.xid: XID 79 on gpu-a-2 gpu0: fell off the bus".to_string(),
                    ),
                    1 => (
                        EntryKind::Status,
                        Actor::User("ana".into()),
                        "acknowledged by user:ana".to_string(),
                    ),
                    i => (
                        EntryKind::Note,
                        Actor::User("ana".into()),
                        format!("note {i}"),
                    ),
                };
                Entry {
                    seq: i as u64 + 1,
                    recorded_at: at,
                    entry: NewEntry::new(kind, actor, Origin::Tui, summary)
                        .on_incident(id)
                        .at(at),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::incident::IncidentStatus;
    use chrono::TimeZone;

    use super::*;
    use crate::model::Snapshot;
    use crate::model::signal::Severity;
    use crate::tui::pane::testing::{find, lines, render};
    use crate::tui::theme::Theme;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn ctx<'a>(snap: &'a Snapshot, theme: &'a Theme) -> ViewCtx<'a> {
        crate::tui::pane::testing::view_ctx(snap, theme, now())
    }

    /// The pane given `incidents`.
    fn pane(incidents: Vec<Incident>, ctx: &ViewCtx) -> IncidentsPane {
        let mut pane = IncidentsPane::with_keys_hint("n note · esc back".into());
        pane.set_incidents(Arc::new(incidents), ctx);
        pane
    }

    fn text(pane: &mut IncidentsPane, ctx: &ViewCtx, w: u16, h: u16) -> String {
        lines(&render(pane, ctx, w, h)).join("\n")
    }

    #[test]
    fn a_titles_countdown_is_the_live_signals_not_the_one_frozen_at_opening() {
        use crate::model::signal::{Signal, Subject};
        let live = Signal {
            kind: "node.interruption_notice".into(),
            severity: Severity::Critical,
            subject: Subject {
                cluster: "prod-a".into(),
                node: Some("spot-a-3".into()),
                ..Subject::default()
            },
            summary: "spot notice on spot-a-3: goes at 12:01:44 (104s left)".into(),
            evidence: Default::default(),
            action: None,
            first_seen: now(),
            dedup_key: "node.interruption_notice/prod-a/spot-a-3".into(),
        };
        let mut inc = super::fixtures::incident(
            7,
            Severity::Critical,
            IncidentStatus::Open,
            "node.interruption_notice",
            "spot-a-3",
            now(),
        );
        inc.group = crate::tui::signal_groups::group_key(&live);
        inc.title = "spot notice on spot-a-3: goes at 12:01:44 (119s left)".into();
        let snap = Snapshot {
            signals: vec![live],
            ..Snapshot::default()
        };
        let theme = Theme::default_theme();
        let ctx = ctx(&snap, &theme);
        let mut pane = pane(vec![inc], &ctx);
        let s = text(&mut pane, &ctx, 200, 10);
        assert!(s.contains("(104s left)") && !s.contains("119s"), "{s}");
    }

    #[test]
    fn the_list_shows_open_incidents_first_with_status_kind_and_age() {
        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = pane(fixtures::incidents(now()), &ctx);
        let buf = render(&mut pane, &ctx, 120, 30);
        let text = lines(&buf).join("\n");
        for h in HEADERS {
            assert!(text.contains(h), "header {h} missing:\n{text}");
        }
        assert!(text.contains("Incidents (3/3) 2 open"), "{text}");
        let row = |label: &str| find(&buf, label).unwrap_or_else(|| panic!("{label}:\n{text}"));
        assert!(row("INC-3").1 < row("INC-2").1 && row("INC-2").1 < row("INC-1").1);
        let inc3 = &lines(&buf)[usize::from(row("INC-3").1)];
        for want in [
            "CRITICAL",
            "open",
            "gpu.xid",
            "prod-a/gpu-a-2",
            "22m",
            "23m00s",
        ] {
            assert!(inc3.contains(want), "{want} missing in {inc3}");
        }
        let status = find(&buf, "acknowledged").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            buf[status].fg,
            theme.style(Role::Warning).fg.unwrap_or_default()
        );
    }

    #[test]
    fn the_filter_narrows_and_the_selection_follows_its_incident_across_reloads() {
        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut incidents = fixtures::incidents(now());
        let mut pane = pane(incidents.clone(), &ctx);
        pane.set_filter("not_ready");
        assert_eq!(pane.target(&ctx), Some(2));
        pane.set_filter("");
        assert!(pane.handle(Action::Down, &ctx));
        assert_eq!(pane.target(&ctx), Some(2));
        // A new incident arrives at the top: the selection stays on INC-2.
        incidents.insert(
            0,
            fixtures::incident(
                4,
                Severity::Critical,
                IncidentStatus::Open,
                "gpu.ecc",
                "gpu-a-1",
                now(),
            ),
        );
        pane.set_incidents(Arc::new(incidents), &ctx);
        assert_eq!(pane.target(&ctx), Some(2));
        assert_eq!(pane.take_request(), None, "no detail open: nothing to load");
    }

    #[test]
    fn open_asks_for_the_timeline_and_shows_milestones_affected_and_entries() {
        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut pane = pane(fixtures::incidents(now()), &ctx);
        assert!(pane.handle(Action::Open, &ctx));
        assert_eq!(pane.take_request(), Some(3));
        assert_eq!(pane.take_request(), None, "asked once");
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(shown.contains("INC-3 CRITICAL open"), "{shown}");
        assert!(shown.contains("reading the timeline"), "{shown}");
        assert!(
            shown.contains("started 11:37:00 · detected 11:37:04"),
            "{shown}"
        );
        assert!(shown.contains("acknowledged -"), "{shown}");
        assert!(shown.contains("prod-a/gpu-a-2"), "{shown}");
        assert!(shown.contains("n note · esc back"), "{shown}");
        pane.set_timeline(9, fixtures::timeline(9, 3, now()));
        assert!(
            text(&mut pane, &ctx, 120, 30).contains("reading the timeline"),
            "another incident's timeline is dropped"
        );
        pane.set_timeline(3, fixtures::timeline(3, 3, now()));
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(shown.contains("Timeline (3)"), "{shown}");
        assert!(shown.contains("TIME"), "{shown}");
        assert!(shown.contains("fell off the bus"), "{shown}");
        assert!(
            shown.contains("user:ana") && shown.contains("note 2"),
            "{shown}"
        );
        assert!(pane.handle(Action::Back, &ctx));
        assert!(text(&mut pane, &ctx, 120, 30).contains("Incidents (3/3)"));
    }

    #[test]
    fn the_timeline_follows_new_entries_until_scrolled_up() {
        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut incidents = fixtures::incidents(now());
        let mut pane = pane(incidents.clone(), &ctx);
        pane.handle(Action::Open, &ctx);
        pane.take_request();
        pane.set_timeline(3, fixtures::timeline(3, 40, now()));
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(
            shown.contains("note 39") && !shown.contains("note 5 "),
            "newest at the bottom: {shown}"
        );
        // The list reload shows more entries on INC-3: the timeline is asked for again.
        pane.set_incidents(Arc::new(incidents.clone()), &ctx);
        assert_eq!(pane.take_request(), None, "same entries: nothing to read");
        incidents[0].entries = 41;
        pane.set_incidents(Arc::new(incidents), &ctx);
        assert_eq!(pane.take_request(), Some(3));
        pane.set_timeline(3, fixtures::timeline(3, 41, now()));
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(shown.contains("note 40"), "following the newest: {shown}");
        // Scrolled up, the view stays put when more arrive.
        assert!(pane.handle(Action::Top, &ctx));
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(
            shown.contains("fell off the bus") && !shown.contains("note 40"),
            "{shown}"
        );
        assert!(shown.contains("G follows the newest"), "{shown}");
        pane.set_timeline(3, fixtures::timeline(3, 42, now()));
        assert!(text(&mut pane, &ctx, 120, 30).contains("fell off the bus"));
        assert!(pane.handle(Action::Bottom, &ctx));
        assert!(text(&mut pane, &ctx, 120, 30).contains("note 41"));
        assert!(!pane.handle(Action::Down, &ctx), "already at the bottom");
    }

    #[test]
    fn affected_objects_fit_one_line_and_milestones_wrap_whole_at_80_columns() {
        let items: Vec<String> = ["prod-a/n1/gpu0", "prod-a/n1/gpu1", "prod-a/n1/gpu2"]
            .map(String::from)
            .into();
        assert_eq!(
            fit_list(&items, 100),
            "prod-a/n1/gpu0, prod-a/n1/gpu1, prod-a/n1/gpu2"
        );
        assert_eq!(
            fit_list(&items, 45),
            "prod-a/n1/gpu0, prod-a/n1/gpu1 (+1 more)"
        );
        assert_eq!(fit_list(&items, 20), "prod-a/n1/gpu0 (+2 more)");

        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let mut incidents = fixtures::incidents(now());
        incidents[0].affected = (0..8).map(|i| format!("prod-a/gpu-a-2/gpu{i}")).collect();
        let mut pane = pane(incidents, &ctx);
        pane.handle(Action::Open, &ctx);
        let screen = lines(&render(&mut pane, &ctx, 80, 24));
        let shown = screen.join("\n");
        assert!(shown.contains("(+6 more)"), "{shown}");
        assert!(
            shown.contains("resolved -"),
            "every milestone shows: {shown}"
        );
        assert!(shown.contains("n note"), "{shown}");
        assert!(
            screen
                .iter()
                .all(|l| !l.contains("acknow") || l.contains("acknowledged -")),
            "a milestone is never cut: {shown}"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let d = chrono::Duration::seconds;
        assert_eq!(lasted(d(42)), "42s");
        assert_eq!(lasted(d(750)), "12m30s");
        assert_eq!(lasted(d(3 * 3600 + 300)), "3h05m");
        assert_eq!(lasted(d(2 * 86_400 + 4 * 3600)), "2d04h");
        assert_eq!(lasted(d(-5)), "0s");
    }

    #[test]
    fn an_empty_store_says_how_incidents_appear_and_tiny_terminals_do_not_panic() {
        let (snap, theme) = (Snapshot::default(), Theme::default_theme());
        let ctx = ctx(&snap, &theme);
        let shown = text(&mut IncidentsPane::default(), &ctx, 120, 30);
        assert!(shown.contains("no incidents"), "{shown}");
        let mut pane = pane(fixtures::incidents(now()), &ctx);
        render(&mut pane, &ctx, 20, 5);
        pane.handle(Action::Open, &ctx);
        pane.set_timeline(3, fixtures::timeline(3, 5, now()));
        render(&mut pane, &ctx, 20, 5);
        render(&mut pane, &ctx, 0, 0);
        // The open incident vanished from the list: the detail says so.
        pane.set_incidents(Arc::new(Vec::new()), &ctx);
        let shown = text(&mut pane, &ctx, 120, 30);
        assert!(shown.contains("INC-3: not in the store"), "{shown}");
    }
}
