//! The Runbooks pane: pending approvals first (each plan step with its blast radius), then the
//! runs of this process newest first, then the loaded runbooks with trigger, cooldown and
//! effective mode; the global mode, read-only and the kill switch in its header. Draws the
//! `AutomationView` the loop last read from the executor; imports runbook, model, keymap,
//! theme and pane.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::format::{compact_age, pending_text};
use super::intent::Intent;
use super::keymap::Action;
use super::pane::{AutomationView, Pane, TableView, ViewCtx};
use super::theme::{Role, Theme};
use super::widgets::{
    clamped_page, draw_scrolled, field, kill_style, length_constraints, measured_widths_keeping,
    middle_ellipsis, plan_step_lines, section, titled_block,
};
use crate::model::incident::incident_label;
use crate::runbook::approvals::PendingApproval;
use crate::runbook::executor::{RunRecord, RunState};
use crate::runbook::{Mode, RunbookMeta};

const RUN_HEADERS: [&str; 6] = [
    "AGE",
    "RUNBOOK",
    "TARGET",
    "MODE",
    "INCIDENT",
    "STATE · ACTIONS PERFORMED",
];
const RUNBOOK_HEADERS: [&str; 5] = ["NAME", "TRIGGER", "COOLDOWN", "MODE", "DESCRIPTION"];

/// The Runbooks pane's state between frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunbooksPane {
    automation: Option<Arc<AutomationView>>,
    /// The pending approval `y` and `N` decide, by id: a refresh that removes another one
    /// never moves the verdict onto a different plan.
    selected: Option<u64>,
    runs_view: TableView,
    runs_page: usize,
    /// `y approve · N deny`, from the bindings.
    keys_hint: String,
    /// The run whose detail Enter opened, by id (the list is rebuilt on every refresh).
    open_run: Option<String>,
    run_scroll: u16,
    run_page: usize,
}

/// A run's state as the table shows it, with its role.
pub fn run_state_text(state: &RunState) -> (String, Role) {
    match state {
        RunState::Running => ("running".into(), Role::Accent),
        RunState::AwaitingApproval(id) => (format!("awaiting approval {id}"), Role::Warning),
        RunState::Remediated | RunState::Reported | RunState::Planned => {
            (state.to_string(), Role::Ok)
        }
        RunState::Partial(_) => (state.to_string(), Role::Warning),
        RunState::Stopped(why) => (format!("stopped: {why}"), Role::Warning),
        RunState::Failed(why) => (format!("failed: {why}"), Role::Critical),
    }
}

/// `gpu.xid ≥ critical`, with the evidence it needs and how long it must hold.
fn trigger_text(meta: &RunbookMeta) -> String {
    let t = &meta.trigger;
    let mut s = format!(
        "{} ≥ {}",
        t.signal,
        format!("{:?}", t.min_severity).to_lowercase()
    );
    for (k, v) in &t.evidence {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        s.push_str(&format!(" {k}={v}"));
    }
    if let Some(held) = &t.held_for {
        s.push_str(&format!(" for {held}"));
    }
    s
}

/// The mode a run of this runbook gets, saying so when the runbook is stricter than the fleet.
fn mode_text(meta: &RunbookMeta, global: Mode) -> String {
    let effective = meta.effective_mode(global);
    if effective == global {
        effective.name().to_string()
    } else {
        format!("{} (runbook)", effective.name())
    }
}

impl RunbooksPane {
    pub fn with_keys_hint(keys_hint: String) -> Self {
        Self {
            keys_hint,
            ..Self::default()
        }
    }

    /// What the executor holds now. The selected approval stays selected while it is pending;
    /// when it goes, the one in its place (or the last) is selected.
    pub fn set_automation(&mut self, automation: Option<Arc<AutomationView>>) {
        let old_position = match (&self.automation, self.selected) {
            (Some(a), Some(id)) => a.pending.iter().position(|p| p.id == id),
            _ => None,
        };
        self.automation = automation;
        let pending = self.pending();
        if pending.iter().any(|p| Some(p.id) == self.selected) {
            return;
        }
        self.selected = match old_position {
            Some(i) if !pending.is_empty() => pending.get(i.min(pending.len() - 1)).map(|p| p.id),
            _ => pending.first().map(|p| p.id),
        };
    }

    fn pending(&self) -> &[PendingApproval] {
        self.automation
            .as_ref()
            .map_or(&[], |a| a.pending.as_slice())
    }

    /// The approval `y` and `N` decide.
    pub fn selected_approval(&self) -> Option<&PendingApproval> {
        let id = self.selected?;
        self.pending().iter().find(|p| p.id == id)
    }

    /// Runs the filter keeps, newest first, with their cells.
    fn run_rows<'a>(
        automation: Option<&'a AutomationView>,
        view: &TableView,
        now: DateTime<Utc>,
    ) -> Vec<(&'a RunRecord, Vec<String>)> {
        let Some(a) = automation else {
            return Vec::new();
        };
        a.runs
            .iter()
            .map(|r| {
                let mut outcome = run_state_text(&r.state).0;
                if !r.actions.is_empty() {
                    outcome.push_str(" · ");
                    outcome.push_str(&r.actions.join("; "));
                }
                let cells = vec![
                    compact_age(now, r.started_at),
                    r.runbook.clone(),
                    r.target.clone(),
                    r.mode.name().to_string(),
                    r.incident.map_or_else(|| "-".to_string(), incident_label),
                    outcome,
                ];
                (r, cells)
            })
            .filter(|(_, cells)| view.keeps(cells))
            .collect()
    }

    /// Applies an action; returns whether anything changed. The movement keys move through
    /// the pending approvals while there are any, else through the runs.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        if self.open_run.is_some() {
            let page = u16::try_from(self.run_page.max(1)).unwrap_or(u16::MAX);
            let before = self.run_scroll;
            match action {
                Action::Back => {
                    self.open_run = None;
                    return true;
                }
                Action::Up => self.run_scroll = self.run_scroll.saturating_sub(1),
                Action::Down => self.run_scroll = self.run_scroll.saturating_add(1),
                Action::PageUp => self.run_scroll = self.run_scroll.saturating_sub(page),
                Action::PageDown => self.run_scroll = self.run_scroll.saturating_add(page),
                Action::Top => self.run_scroll = 0,
                Action::Bottom => self.run_scroll = u16::MAX,
                _ => return false,
            }
            return self.run_scroll != before;
        }
        let pending: Vec<u64> = self.pending().iter().map(|p| p.id).collect();
        if !pending.is_empty() {
            let at = pending
                .iter()
                .position(|id| Some(*id) == self.selected)
                .unwrap_or(0);
            let last = pending.len() - 1;
            let next = match action {
                Action::Up => at.saturating_sub(1),
                Action::Down => (at + 1).min(last),
                Action::Top => 0,
                Action::Bottom => last,
                _ => return false,
            };
            let before = self.selected;
            self.selected = pending.get(next).copied();
            return self.selected != before;
        }
        if action == Action::Open {
            let id = Self::run_rows(self.automation.as_deref(), &self.runs_view, ctx.now)
                .get(self.runs_view.selected)
                .map(|(run, _)| run.id.clone());
            self.run_scroll = 0;
            self.open_run = id;
            return self.open_run.is_some();
        }
        let before = self.runs_view.clone();
        let rows = Self::run_rows(self.automation.as_deref(), &self.runs_view, ctx.now).len();
        let page = self.runs_page.max(1) as isize;
        match action {
            Action::Up => self.runs_view.step(-1, rows),
            Action::Down => self.runs_view.step(1, rows),
            Action::PageUp => self.runs_view.step(-page, rows),
            Action::PageDown => self.runs_view.step(page, rows),
            Action::Top => self.runs_view.step(-(rows as isize), rows),
            Action::Bottom => self.runs_view.step(rows as isize, rows),
            Action::Back if !self.runs_view.filter.is_empty() => self.set_filter(""),
            _ => {}
        }
        self.runs_view != before
    }

    /// Shows only runs with `f` in some cell (case-insensitive).
    pub fn set_filter(&mut self, f: &str) {
        self.runs_view.filter = f.to_string();
        self.runs_view.selected = 0;
        self.runs_view.offset = 0;
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let Some(a) = self.automation.clone() else {
            let block = titled_block(" Runbooks ", theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(
                Paragraph::new(Span::styled(
                    "no runbook executor: automation, approvals and manual actions are off in this cockpit",
                    theme.style(Role::Muted),
                )),
                inner,
            );
            return;
        };
        if let Some(id) = self.open_run.clone() {
            self.draw_run(frame, area, ctx, &a, &id);
            return;
        }
        let approval_lines = self.approval_lines(&a, ctx);
        let approvals_height = if approval_lines.is_empty() {
            0
        } else {
            (approval_lines.len() as u16 + 2).min((area.height / 2).max(5))
        };
        let runbooks_height = (a.runbooks.len() as u16 + 3).min((area.height / 3).max(4));
        let header_lines = self.header(&a, theme);
        let [header, approvals, runs, runbooks] = Layout::vertical([
            Constraint::Length(header_lines.len() as u16),
            Constraint::Length(approvals_height),
            Constraint::Min(3),
            Constraint::Length(runbooks_height),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(header_lines), header);
        if approvals_height > 0 {
            self.draw_approvals(frame, approvals, &a, approval_lines, theme);
        }
        self.draw_runs(frame, runs, ctx);
        draw_runbooks(frame, runbooks, &a, theme);
    }

    /// One run over the whole pane: what started it, its plan step by step, what it did, what
    /// was refused, and how it ended.
    fn draw_run(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        ctx: &ViewCtx,
        a: &AutomationView,
        id: &str,
    ) {
        let theme = ctx.theme;
        let block = titled_block(format!(" Run {id} · esc back "), theme);
        let Some(run) = a.runs.iter().find(|r| r.id == id) else {
            let lines = vec![Line::styled(
                format!("run {id} is no longer kept by the executor (it keeps the newest runs)"),
                theme.style(Role::Muted),
            )];
            self.run_page =
                draw_scrolled(frame, area, lines, Some(block), &mut self.run_scroll, theme);
            return;
        };
        let text = |s: String| vec![Span::raw(s)];
        let (outcome, role) = run_state_text(&run.state);
        let mut lines = vec![
            field(theme, "runbook", text(run.runbook.clone())),
            field(
                theme,
                "target",
                text(format!("{} on {}", run.target, run.cluster)),
            ),
            field(theme, "signal", text(run.signal.clone())),
            field(theme, "mode", text(run.mode.name().to_string())),
            field(
                theme,
                "incident",
                text(run.incident.map_or_else(|| "-".to_string(), incident_label)),
            ),
            field(
                theme,
                "started",
                text(format!(
                    "{} ({} ago)",
                    run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    compact_age(ctx.now, run.started_at)
                )),
            ),
            field(
                theme,
                "finished",
                text(run.finished_at.map_or_else(
                    || "not yet".to_string(),
                    |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                )),
            ),
            field(
                theme,
                "outcome",
                vec![Span::styled(outcome, theme.style(role))],
            ),
            Line::raw(""),
            section(theme, "plan"),
        ];
        if run.plan.is_empty() {
            lines.push(Line::styled(
                "  no plan recorded: the run stopped before planning, or had nothing to do",
                theme.style(Role::Muted),
            ));
        }
        for (i, step) in run.plan.iter().enumerate() {
            lines.extend(plan_step_lines(Some(i + 1), step, "  ", theme));
        }
        lines.push(Line::raw(""));
        lines.push(section(theme, "steps performed"));
        let refused = |a: &str| a.contains("refused") || a.contains("cannot");
        if run.actions.is_empty() {
            lines.push(Line::styled("  none", theme.style(Role::Muted)));
        }
        for action in &run.actions {
            let role = if refused(action) {
                Role::Warning
            } else {
                Role::Base
            };
            lines.push(Line::styled(format!("  {action}"), theme.style(role)));
        }
        lines.push(Line::raw(""));
        lines.push(section(theme, "refusals"));
        let mut refusals: Vec<String> =
            run.actions.iter().filter(|a| refused(a)).cloned().collect();
        if let RunState::Stopped(why) | RunState::Failed(why) = &run.state {
            refusals.push(why.clone());
        }
        if refusals.is_empty() {
            lines.push(Line::styled("  none", theme.style(Role::Muted)));
        }
        for why in refusals {
            lines.push(Line::styled(format!("  {why}"), theme.style(Role::Warning)));
        }
        self.run_page = draw_scrolled(frame, area, lines, Some(block), &mut self.run_scroll, theme);
    }

    /// The global mode, read-only and what waits; the kill switch on a line of its own.
    fn header(&self, a: &AutomationView, theme: &Theme) -> Vec<Line<'static>> {
        let mut spans = vec![
            Span::styled(" mode ", theme.style(Role::Header)),
            Span::styled(a.mode.name().to_string(), theme.style(Role::Accent)),
            Span::raw(" · "),
        ];
        spans.push(if a.read_only {
            Span::styled(
                "READ-ONLY: every mutation is forbidden",
                theme.style(Role::Critical),
            )
        } else {
            Span::styled("mutations allowed", theme.style(Role::Ok))
        });
        spans.push(Span::raw(" · "));
        let n = a.pending.len();
        spans.push(Span::styled(
            pending_text(n),
            theme.style(if n > 0 { Role::Warning } else { Role::Muted }),
        ));
        spans.push(Span::raw(" · "));
        let mut lines = Vec::new();
        match &a.kill {
            Some(why) => {
                spans.push(Span::styled("KILL SWITCH ON", kill_style(theme)));
                lines.push(Line::from(spans));
                lines.push(Line::from(Span::styled(
                    format!(" KILL SWITCH ON: {why}; runbooks are refused every mutation "),
                    kill_style(theme),
                )));
            }
            None => {
                spans.push(Span::styled("kill switch off", theme.style(Role::Muted)));
                lines.push(Line::from(spans));
            }
        }
        lines
    }

    /// Each pending approval: its head line, its reason, then its plan steps. The lines of
    /// each approval are grouped so the selected one can be kept in view.
    fn approval_lines(&self, a: &AutomationView, ctx: &ViewCtx) -> Vec<(u64, Line<'static>)> {
        let theme = ctx.theme;
        let mut lines = Vec::new();
        for p in &a.pending {
            let selected = Some(p.id) == self.selected;
            let head_style = if selected {
                theme.style(Role::Selection)
            } else {
                theme.style(Role::Warning)
            };
            lines.push((
                p.id,
                Line::from(vec![
                    Span::styled(
                        format!(
                            "{} approval {} · {} on {} · asked {} ago ",
                            if selected { "▶" } else { " " },
                            p.id,
                            p.runbook,
                            p.cluster,
                            compact_age(ctx.now, p.requested_at)
                        ),
                        head_style,
                    ),
                    Span::styled(format!(" {}", p.run), theme.style(Role::Muted)),
                ]),
            ));
            lines.push((
                p.id,
                Line::from(vec![
                    Span::styled("  why  ", theme.style(Role::Header)),
                    Span::raw(p.reason.clone()),
                ]),
            ));
            for (i, step) in p.plan.iter().enumerate() {
                lines.extend(
                    plan_step_lines(Some(i + 1), step, "  ", theme)
                        .into_iter()
                        .map(|l| (p.id, l)),
                );
            }
        }
        lines
    }

    fn draw_approvals(
        &self,
        frame: &mut Frame,
        area: Rect,
        a: &AutomationView,
        lines: Vec<(u64, Line<'static>)>,
        theme: &Theme,
    ) {
        let mut title = format!(" Pending approvals ({}) ", a.pending.len());
        if !self.keys_hint.is_empty() {
            title.push_str(&format!("· {} ", self.keys_hint));
        }
        let block = Block::bordered()
            .border_style(theme.style(Role::Warning))
            .title(Span::styled(title, theme.style(Role::Warning)));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let height = usize::from(inner.height);
        // Each approval's lines, in order; the view starts at the earliest approval that still
        // lets the selected one show whole.
        let mut groups: Vec<(u64, usize)> = Vec::new();
        for (id, _) in &lines {
            match groups.last_mut() {
                Some((last, n)) if last == id => *n += 1,
                _ => groups.push((*id, 1)),
            }
        }
        let selected = groups
            .iter()
            .position(|(id, _)| Some(*id) == self.selected)
            .unwrap_or(0);
        let mut first = selected;
        let mut used = groups.get(selected).map_or(0, |(_, n)| *n);
        while first > 0 && used + groups[first - 1].1 <= height {
            first -= 1;
            used += groups[first].1;
        }
        let skip: usize = groups[..first].iter().map(|(_, n)| n).sum();
        let shown: Vec<Line> = lines
            .into_iter()
            .skip(skip)
            .take(height)
            .map(|(_, l)| l)
            .collect();
        frame.render_widget(Paragraph::new(shown), inner);
    }

    fn draw_runs(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        let theme = ctx.theme;
        let automation = self.automation.clone();
        let rows = Self::run_rows(automation.as_deref(), &self.runs_view, ctx.now);
        let total = self.automation.as_ref().map_or(0, |a| a.runs.len());
        let mut title = format!(" Runs ({}/{total}) newest first ", rows.len());
        if !self.runs_view.filter.is_empty() {
            title.push_str(&format!("/{} ", self.runs_view.filter));
        }
        let block = titled_block(title, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let empty = || {
            if total == 0 {
                "no runs yet: a runbook starts when its trigger fires"
            } else {
                "no run matches the filter"
            }
        };
        let Some(height) =
            clamped_page(frame, inner, rows.len(), &mut self.runs_view, theme, empty)
        else {
            return;
        };
        self.runs_page = height;
        let focused = self.pending().is_empty();
        // AGE, RUNBOOK, MODE and INCIDENT whole; TARGET (cut in the middle, its node or
        // pod is at the end) and the outcome share the rest.
        let widths = measured_widths_keeping(
            &RUN_HEADERS,
            rows.iter().map(|(_, cells)| cells.as_slice()),
            usize::from(inner.width),
            &[0, 1, 3, 4],
        );
        let visible = rows
            .iter()
            .enumerate()
            .skip(self.runs_view.offset)
            .take(height)
            .map(|(pos, (run, cells))| {
                let state_role = run_state_text(&run.state).1;
                let row = Row::new(cells.iter().enumerate().map(|(col, text)| {
                    let cell = if col == 2 {
                        Cell::from(middle_ellipsis(text, widths[col]))
                    } else {
                        Cell::from(text.clone())
                    };
                    match col {
                        5 => cell.style(theme.style(state_role)),
                        0 | 4 => cell.style(theme.style(Role::Muted)),
                        _ => cell,
                    }
                }));
                if focused && pos == self.runs_view.selected {
                    row.style(theme.style(Role::Selection))
                } else {
                    row
                }
            });
        let table = Table::new(visible, length_constraints(&widths))
            .header(Row::new(RUN_HEADERS).style(theme.style(Role::Header)))
            .column_spacing(1);
        frame.render_widget(table, inner);
    }
}

fn draw_runbooks(frame: &mut Frame, area: Rect, a: &AutomationView, theme: &Theme) {
    let block = titled_block(format!(" Runbooks ({}) ", a.runbooks.len()), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if a.runbooks.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no runbook loaded: see [runbooks] dir and --runbooks",
                theme.style(Role::Muted),
            )),
            inner,
        );
        return;
    }
    let rows = a.runbooks.iter().map(|m| {
        let effective = m.effective_mode(a.mode);
        Row::new(vec![
            Cell::from(m.name.clone()).style(theme.style(Role::Accent)),
            Cell::from(trigger_text(m)),
            Cell::from(humantime::format_duration(m.cooldown).to_string()),
            Cell::from(mode_text(m, a.mode)).style(theme.style(match effective {
                Mode::Auto => Role::Warning,
                Mode::Approve => Role::Info,
                Mode::DryRun => Role::Muted,
            })),
            Cell::from(m.description.clone()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(28),
            Constraint::Length(36),
            Constraint::Length(8),
            Constraint::Length(17),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(RUNBOOK_HEADERS).style(theme.style(Role::Header)))
    .column_spacing(1);
    frame.render_widget(table, inner);
}

impl Pane for RunbooksPane {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        RunbooksPane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        RunbooksPane::handle(self, action, ctx)
    }

    fn set_filter(&mut self, filter: &str) {
        RunbooksPane::set_filter(self, filter);
    }

    fn set_automation(&mut self, automation: Option<Arc<AutomationView>>) {
        RunbooksPane::set_automation(self, automation);
    }

    /// `y` and `N` decide the selected pending approval.
    fn intent(&self, action: Action, _ctx: &ViewCtx) -> Option<Result<Intent, String>> {
        if !matches!(action, Action::Approve | Action::Deny) {
            return None;
        }
        Some(
            self.selected_approval()
                .map(|p| Intent::Decide {
                    approval: p.id,
                    approve: action == Action::Approve,
                })
                .ok_or_else(|| "no approval is pending".to_string()),
        )
    }
}

/// An executor's state built by hand, for the pane's and the app's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::AutomationView;
    use crate::actions::{DrainRequest, Mutation};
    use crate::model::signal::Severity;
    use crate::runbook::approvals::PendingApproval;
    use crate::runbook::executor::{PlanStep, RunRecord, RunState};
    use crate::runbook::meta::{Scope, Trigger};
    use crate::runbook::{Mode, RunbookMeta};

    fn meta(name: &str, signal: &str, held: Option<&str>, mode: Option<Mode>) -> RunbookMeta {
        RunbookMeta {
            name: name.into(),
            description: format!("{name}: what it does, in one line"),
            trigger: Trigger {
                signal: signal.into(),
                min_severity: Severity::Critical,
                evidence: serde_json::Map::new(),
                held_for: held.map(str::to_string),
            },
            scope: Scope::default(),
            cooldown: Duration::from_secs(30 * 60),
            mode,
            trigger_held_for: held.and_then(|h| humantime::parse_duration(h).ok()),
        }
    }

    /// gpu-a-2's cordon, then its drain: 3 pods evicted, a PDB blocking, 8 GPUs, a gang job.
    pub fn plan() -> Vec<PlanStep> {
        vec![
            PlanStep {
                intent: Mutation::Cordon {
                    node: "gpu-a-2".into(),
                },
                summary: "cordon node/gpu-a-2".into(),
                blast: serde_json::Value::Null,
            },
            PlanStep {
                intent: Mutation::Drain {
                    node: "gpu-a-2".into(),
                    options: DrainRequest::default(),
                },
                summary: "drain of node gpu-a-2 would evict 3 pod(s) freeing 8 GPU(s), skip 2"
                    .into(),
                blast: drain_blast(),
            },
        ]
    }

    pub fn drain_blast() -> serde_json::Value {
        serde_json::json!({
            "pods_evicted": ["ml/train-0", "ml/train-1", "serving/llama-7f9"],
            "pdbs_blocking": ["serving/llama-pdb"],
            "gpus": 8,
            "gang_jobs": ["ml/pretrain-70b"],
            "refused": null,
        })
    }

    fn run(
        n: u32,
        runbook: &str,
        target: &str,
        started: DateTime<Utc>,
        state: RunState,
        actions: &[&str],
    ) -> RunRecord {
        RunRecord {
            id: format!("run-20250601T1150-{n}"),
            runbook: runbook.into(),
            cluster: "prod-a".into(),
            target: target.into(),
            signal: format!("{runbook}:{target}"),
            mode: Mode::Approve,
            started_at: started,
            finished_at: (!matches!(state, RunState::Running | RunState::AwaitingApproval(_)))
                .then_some(started + chrono::Duration::seconds(20)),
            state,
            plan: Vec::new(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            incident: Some(3),
        }
    }

    /// Approve mode; gpu-xid-cordon's plan for gpu-a-2 waits for approval 1; three runs before.
    pub fn automation(now: DateTime<Utc>) -> AutomationView {
        let minutes = chrono::Duration::minutes;
        AutomationView {
            mode: Mode::Approve,
            read_only: false,
            kill: None,
            runbooks: vec![
                meta("gpu-xid-cordon", "gpu.xid", None, None),
                meta("node-notready", "node.not_ready", Some("5m"), None),
                meta("endpoint-slo-rollback", "endpoint.slo_burn", None, Some(Mode::DryRun)),
            ],
            runs: vec![
                run(
                    4,
                    "gpu-xid-cordon",
                    "prod-a/gpu-a-2/gpu0",
                    now - minutes(1),
                    RunState::AwaitingApproval(1),
                    &[],
                ),
                run(
                    3,
                    "gpu-xid-cordon",
                    "prod-a/gpu-a-1/gpu3",
                    now - minutes(40),
                    RunState::Remediated,
                    &["node gpu-a-1 cordoned", "drained node gpu-a-1: 2 pods evicted"],
                ),
                run(
                    2,
                    "node-notready",
                    "prod-a/spot-a-3",
                    now - minutes(50),
                    RunState::Stopped("the plan was not approved (alice)".into()),
                    &[],
                ),
                run(
                    1,
                    "node-notready",
                    "prod-b/gpu-b-1",
                    now - minutes(55),
                    RunState::Failed("no client for cluster prod-b".into()),
                    &[],
                ),
            ],
            pending: vec![PendingApproval {
                id: 1,
                run: "run-20250601T1150-4".into(),
                runbook: "gpu-xid-cordon".into(),
                cluster: "prod-a".into(),
                reason: "gpu-xid-cordon asks to cordon node/gpu-a-2; then drain of node gpu-a-2 would evict 3 pod(s) freeing 8 GPU(s), skip 2".into(),
                plan: plan(),
                requested_at: now - minutes(1),
            }],
        }
    }

    /// A second approval, after the first.
    pub fn second_approval(now: DateTime<Utc>) -> PendingApproval {
        PendingApproval {
            id: 2,
            run: "run-20250601T1150-5".into(),
            runbook: "node-notready".into(),
            cluster: "prod-b".into(),
            reason: "node-notready asks to cordon node/gpu-b-1".into(),
            plan: vec![PlanStep {
                intent: Mutation::Cordon {
                    node: "gpu-b-1".into(),
                },
                summary: "cordon node/gpu-b-1".into(),
                blast: serde_json::Value::Null,
            }],
            requested_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixtures::{automation, second_approval};
    use super::*;
    use crate::model::Snapshot;
    use crate::tui::nodes::fixtures::{now, render};
    use crate::tui::pane::testing::view_ctx;
    use crate::tui::widgets::blast_spans;

    fn draw(pane: &mut RunbooksPane, width: u16, height: u16) -> String {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        render(width, height, |f| pane.draw(f, f.area(), &ctx)).join("\n")
    }

    fn handle(pane: &mut RunbooksPane, action: Action) -> bool {
        let snap = Snapshot::default();
        let theme = Theme::default_theme();
        let ctx = view_ctx(&snap, &theme, now());
        pane.handle(action, &ctx)
    }

    #[test]
    fn enter_on_a_run_shows_its_plan_steps_refusals_and_outcome() {
        let mut a = automation(now());
        a.pending.clear();
        let run = &mut a.runs[1];
        run.plan = super::fixtures::plan();
        run.actions = vec![
            "node gpu-a-1 cordoned".into(),
            "drain of node gpu-a-1 refused: cannot delete Pods with local storage (ml/train-0)"
                .into(),
        ];
        run.state = RunState::Stopped("the drain was refused".into());
        let mut pane = RunbooksPane::default();
        pane.set_automation(Some(Arc::new(a)));
        assert!(
            handle(&mut pane, Action::Down),
            "the second run is selected"
        );
        assert!(handle(&mut pane, Action::Open), "Enter opens the run");
        let s = draw(&mut pane, 120, 40);
        for expected in [
            "Run run-20250601T1150-3",
            "gpu-xid-cordon",
            "1. cordon node/gpu-a-2",
            "2. drain of node gpu-a-2 would evict 3 pod(s)",
            "node gpu-a-1 cordoned",
            "refused: cannot delete Pods with local storage",
            "stopped: the drain was refused",
        ] {
            assert!(s.contains(expected), "{expected:?} missing:\n{s}");
        }
        assert!(handle(&mut pane, Action::Back));
        assert!(draw(&mut pane, 120, 40).contains("Runs (4/4)"));
    }

    #[test]
    fn the_blast_radius_names_pods_pdbs_gpus_and_gang_jobs() {
        let theme = Theme::default_theme();
        let text = |v: &serde_json::Value| {
            blast_spans(v, "drain of node n would evict", &theme)
                .map(|s| s.iter().map(|s| s.content.to_string()).collect::<String>())
        };
        assert_eq!(
            text(&fixtures::drain_blast()).as_deref(),
            Some(
                "blast radius: evicts 3 pods (ml/train-0, ml/train-1, serving/llama-7f9) · PDB blocking: serving/llama-pdb · 8 GPUs · gang jobs: ml/pretrain-70b"
            )
        );
        let refused = serde_json::json!({
            "pods_evicted": ["a/1", "a/2", "a/3", "a/4", "a/5"], "pdbs_blocking": [], "gpus": 1,
            "gang_jobs": [], "refused": "pods with local storage: a/9",
        });
        assert_eq!(
            text(&refused).as_deref(),
            Some(
                "blast radius: REFUSED: pods with local storage: a/9 · evicts 5 pods (a/1, a/2, a/3, +2) · no PDB blocks · 1 GPU · no gang job"
            )
        );
        let theme = Theme::default_theme();
        let said = "drain of node n would be refused: pods with local storage: a/9";
        let repeated = blast_spans(&refused, said, &theme)
            .map(|s| s.iter().map(|s| s.content.to_string()).collect::<String>())
            .unwrap_or_default();
        assert!(
            repeated.starts_with("blast radius: REFUSED (see above) · evicts 5 pods"),
            "{repeated}"
        );
        assert_eq!(
            text(&serde_json::Value::Null),
            None,
            "a cordon moves nothing"
        );
    }

    #[test]
    fn runs_are_listed_newest_first_with_their_state_and_actions() {
        let mut pane = RunbooksPane::with_keys_hint("y approve · N deny".into());
        pane.set_automation(Some(Arc::new(automation(now()))));
        let s = draw(&mut pane, 120, 40);
        let at = |what: &str| {
            s.find(what)
                .unwrap_or_else(|| panic!("{what} missing:\n{s}"))
        };
        assert!(at("awaiting approval 1") < at("remediated"), "{s}");
        assert!(
            at("remediated") < at("stopped: the plan was not approved"),
            "{s}"
        );
        assert!(
            at("stopped: the plan") < at("failed: no client for cluster prod-b"),
            "{s}"
        );
        assert!(s.contains("remediated · node gpu-a-1 cordoned"), "{s}");
        assert!(s.contains("node.not_ready ≥ critical for 5m"), "{s}");
        assert!(
            s.contains("dry-run (runbook)"),
            "a runbook stricter than the fleet says so:\n{s}"
        );
    }

    #[test]
    fn the_selected_approval_stays_on_its_plan_while_others_come_and_go() {
        let mut pane = RunbooksPane::default();
        let mut view = automation(now());
        pane.set_automation(Some(Arc::new(view.clone())));
        assert_eq!(pane.selected_approval().map(|p| p.id), Some(1));
        view.pending.push(second_approval(now()));
        pane.set_automation(Some(Arc::new(view.clone())));
        assert_eq!(pane.selected_approval().map(|p| p.id), Some(1));
        assert!(handle(&mut pane, Action::Down));
        assert_eq!(pane.selected_approval().map(|p| p.id), Some(2));
        assert!(
            !handle(&mut pane, Action::Down),
            "the last one stays selected"
        );
        // The first one expires: the selection does not move onto another plan.
        view.pending.remove(0);
        pane.set_automation(Some(Arc::new(view.clone())));
        assert_eq!(pane.selected_approval().map(|p| p.id), Some(2));
        // The selected one is decided: the one in its place is selected.
        view.pending.clear();
        pane.set_automation(Some(Arc::new(view)));
        assert_eq!(pane.selected_approval().map(|p| p.id), None);
    }

    #[test]
    fn the_header_shows_the_mode_read_only_and_the_kill_switch() {
        let mut pane = RunbooksPane::default();
        let mut view = automation(now());
        view.read_only = true;
        view.kill = Some("the kill switch is on (toggled in the cockpit)".into());
        pane.set_automation(Some(Arc::new(view)));
        let s = draw(&mut pane, 120, 30);
        let header = s.lines().take(2).collect::<Vec<_>>().join("\n");
        for want in [
            "mode approve",
            "READ-ONLY: every mutation is forbidden",
            "KILL SWITCH ON: the kill switch is on",
            "1 approval pending",
        ] {
            assert!(header.contains(want), "{want} missing:\n{s}");
        }
    }

    #[test]
    fn without_an_executor_the_pane_says_automation_is_off_and_tiny_areas_do_not_panic() {
        let mut pane = RunbooksPane::default();
        assert!(draw(&mut pane, 120, 30).contains("no runbook executor"));
        pane.set_automation(Some(Arc::new(automation(now()))));
        draw(&mut pane, 20, 5);
        draw(&mut pane, 0, 0);
        let mut many = automation(now());
        for id in 2..9 {
            let mut p = second_approval(now());
            p.id = id;
            many.pending.push(p);
        }
        pane.set_automation(Some(Arc::new(many)));
        for _ in 0..7 {
            handle(&mut pane, Action::Down);
        }
        let s = draw(&mut pane, 120, 30);
        assert!(
            s.contains("▶ approval 8"),
            "the selected approval is kept in view:\n{s}"
        );
    }
}
