//! The app's chrome around the pane: the tab bar and its marks, the NOC banner, the status
//! line (sources, staleness, clock, automation alerts), the help popup and the confirmation of
//! a person's action. May import the tui groundwork and model.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};

use super::input::Mode;
use super::{App, PendingAction};
use crate::model::SyncState;
use crate::model::incident::{Incident, incident_label};
use crate::tui::attach::LinkState;
use crate::tui::format::{compact_age, compact_age_secs, pending_text, severity_label};
use crate::tui::keymap::PaneId;
use crate::tui::signal_groups::{SignalGroup, group_signals, worst_first};
use crate::tui::theme::{Role, Theme};
use crate::tui::widgets::{kill_style, plan_step_lines, severity_role, status_role};

/// The smallest terminal the cockpit draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// The Overview becomes the wall from this size up (a 200×50 wall screen less its bars).
const WALL_WIDTH: u16 = 200;
const WALL_HEIGHT: u16 = 48;

/// The rows a line takes when wrapped at word boundaries into `width` columns, as the
/// confirmation popup's `Paragraph` wraps it.
/// The tab titles in `width` columns: every name whole when they fit; else the selected one
/// whole and the others cut to as many letters as leave room for all (at least one), so that
/// every pane keeps a tab however many there are.
fn tab_titles(names: &[&str], selected: usize, width: usize) -> Vec<String> {
    // Each title has a space either side, and a divider between two.
    let chrome = names.len() * 3;
    let full: usize = names.iter().map(|n| n.chars().count()).sum();
    if full + chrome <= width || names.len() < 2 {
        return names.iter().map(|n| n.to_string()).collect();
    }
    let own = names.get(selected).map_or(0, |n| n.chars().count());
    let each = width.saturating_sub(chrome + own) / (names.len() - 1);
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i == selected {
                n.to_string()
            } else {
                n.chars().take(each.max(1)).collect()
            }
        })
        .collect()
}

fn wrapped_rows(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let (mut rows, mut column) = (1, 0);
    for word in text.split(' ') {
        let w = word.chars().count();
        let need = if column == 0 { w } else { w + 1 };
        if column + need <= width {
            column += need;
        } else {
            rows += 1 + (w.saturating_sub(1)) / width;
            column = w % width;
        }
    }
    rows
}

/// A group on the NOC banner: its worst severity, then `gpu.xid gpu-node-3 ×8 · ` and the
/// worst member's summary (a group of one is just its summary, as a signal reads).
fn banner_group_line(group: &SignalGroup, t: &Theme) -> Option<Line<'static>> {
    let severity = group.severity()?;
    let (_, worst) = group.worst()?;
    let text = match group.members.len() {
        1 => worst.summary.clone(),
        n => format!("{} {} ×{n} · {}", group.kind(), group.name(), worst.summary),
    };
    Some(Line::from(vec![
        Span::styled(
            format!(" {:<9}", severity_label(severity)),
            t.style(severity_role(severity)),
        ),
        Span::raw(text),
    ]))
}

impl App {
    fn noc_banner(&self) -> Vec<Line<'static>> {
        use crate::model::signal::Severity;
        let t = &self.theme;
        // Findings (idle GPUs, budget forecasts, drift) are not what a wall screen pages on;
        // and one problem is one line and one count (eight GPUs of a node are one incident).
        let mut groups = group_signals(self.snapshot.incident_signals().enumerate());
        worst_first(&mut groups);
        let count = |s: Severity| groups.iter().filter(|g| g.severity() == Some(s)).count();
        let (crit, warn) = (count(Severity::Critical), count(Severity::Warning));
        let burning = self
            .snapshot
            .endpoints
            .iter()
            .filter(|e| {
                [&e.availability_burn, &e.latency_burn]
                    .into_iter()
                    .flatten()
                    .any(|b| b.severity().is_some())
            })
            .count();
        let down: Vec<String> = self
            .snapshot
            .clusters
            .iter()
            .filter(|c| {
                c.sync
                    .iter()
                    .any(|s| !matches!(s.state, SyncState::Synced | SyncState::NotServed))
            })
            .map(|c| c.name.clone())
            .chain(
                self.snapshot
                    .gpu_sources
                    .iter()
                    .filter(|g| g.error.is_some())
                    .map(|g| g.describe()),
            )
            .collect();
        let open: Vec<&Incident> = self
            .incidents
            .iter()
            .filter(|i| i.status.is_open())
            .collect();
        let mut first = vec![
            Span::styled(
                format!("  {crit} CRITICAL  "),
                t.style(if crit > 0 { Role::Critical } else { Role::Ok }),
            ),
            Span::raw("  "),
            Span::styled(
                format!("  {warn} WARNING  "),
                t.style(if warn > 0 { Role::Warning } else { Role::Ok }),
            ),
            Span::raw("  "),
            Span::styled(
                format!("  {burning} SLO BURNING  "),
                t.style(if burning > 0 {
                    Role::Critical
                } else {
                    Role::Ok
                }),
            ),
            Span::raw("  "),
            Span::styled(
                format!("  {} OPEN INCIDENTS  ", open.len()),
                t.style(match open.first().map(|i| i.severity) {
                    None => Role::Ok,
                    Some(s) => severity_role(s),
                }),
            ),
            Span::raw("  "),
        ];
        // After a start on a store with open incidents the counters above count only what was
        // seen since: the signals held from the store are unknown, and the wall says so rather
        // than reading calm.
        let unknown = self.snapshot.unknown_since_start.len();
        if unknown > 0 {
            first.push(Span::styled(
                format!("  {unknown} UNKNOWN SINCE START  "),
                t.style(Role::Stale),
            ));
            first.push(Span::raw("  "));
        }
        // Automation that waits for a person, or is halted, is on the wall too.
        if let Some(a) = &self.automation {
            if a.kill.is_some() {
                first.push(Span::styled("  KILL SWITCH ON  ", kill_style(t)));
                first.push(Span::raw("  "));
            }
            if !a.pending.is_empty() {
                first.push(Span::styled(
                    format!("  {}  ", pending_text(a.pending.len()).to_uppercase()),
                    t.style(Role::Warning),
                ));
                first.push(Span::raw("  "));
            }
        }
        first.push(if down.is_empty() {
            Span::styled("  all sources ok  ", t.style(Role::Ok))
        } else {
            Span::styled(
                format!("  degraded: {}  ", down.join(", ")),
                t.style(Role::Stale),
            )
        });
        let mut lines = vec![Line::from(first)];
        // The worst open incident (the store sorts open first, then by severity), then the
        // worst incident groups.
        if let Some(inc) = open.first() {
            let role = severity_role(inc.severity);
            lines.push(Line::from(vec![
                Span::styled(format!(" {:<9}", inc.label()), t.style(role)),
                Span::styled(format!("{} ", severity_label(inc.severity)), t.style(role)),
                Span::styled(
                    format!("{} ", inc.status.name()),
                    t.style(status_role(inc.status)),
                ),
                Span::raw(format!(
                    "{} ago · {} ({})",
                    compact_age(
                        self.now(),
                        inc.milestones.detected.unwrap_or(inc.last_signal_at)
                    ),
                    inc.title,
                    inc.subject.describe()
                )),
            ]));
        }
        let room = 4 - lines.len();
        lines.extend(
            groups
                .iter()
                .take(room)
                .filter_map(|g| banner_group_line(g, t)),
        );
        lines
    }

    /// What an on-call must see from any pane: the kill switch and plans waiting for them.
    fn automation_alerts(&self) -> Vec<Span<'static>> {
        let t = &self.theme;
        let mut spans = Vec::new();
        if let Some(a) = &self.automation {
            if a.kill.is_some() {
                spans.push(Span::styled(" KILL SWITCH ON ", kill_style(t)));
                spans.push(Span::raw(" "));
            }
            if a.read_only {
                spans.push(Span::styled(" read-only ", t.style(Role::Accent)));
            }
            if !a.pending.is_empty() {
                spans.push(Span::styled(
                    format!(" {} (:runbooks) ", pending_text(a.pending.len())),
                    t.style(Role::Warning),
                ));
            }
        }
        spans
    }

    /// `disconnected 12s` while an attached cockpit's daemon cannot be reached.
    fn disconnected_for(&self) -> Option<String> {
        match &self.link {
            Some(LinkState::Lost { since, .. }) => Some(format!(
                "disconnected {}",
                compact_age_secs((self.now() - *since).num_seconds().max(0))
            )),
            _ => None,
        }
    }

    /// An attached cockpit's link: the daemon it shows, or how long it has been lost and why
    /// (never a frozen picture that looks live).
    fn link_spans(&self) -> Vec<Span<'static>> {
        let t = &self.theme;
        match &self.link {
            None => Vec::new(),
            Some(LinkState::Connecting { url }) => vec![Span::styled(
                format!(" connecting to {url}… "),
                t.style(Role::Warning),
            )],
            Some(LinkState::Live { daemon, .. }) => vec![Span::styled(
                format!(" attached {daemon} "),
                t.style(Role::Info),
            )],
            Some(LinkState::Lost { why, .. }) => vec![Span::styled(
                format!(
                    " {} ({why}); reconnecting ",
                    self.disconnected_for().unwrap_or_default()
                ),
                t.style(Role::Critical),
            )],
        }
    }

    fn status_line(&self) -> Line<'static> {
        let t = &self.theme;
        let mut spans: Vec<Span<'static>> = Vec::new();
        for c in &self.snapshot.clusters {
            let worst = c
                .sync
                .iter()
                .find(|s| {
                    matches!(
                        s.state,
                        SyncState::Unreachable { .. } | SyncState::Forbidden { .. }
                    )
                })
                .or_else(|| {
                    c.sync
                        .iter()
                        .find(|s| matches!(s.state, SyncState::Reconnecting { .. }))
                })
                .or_else(|| {
                    c.sync
                        .iter()
                        .find(|s| matches!(s.state, SyncState::Listing { .. }))
                });
            let (text, role) = match worst {
                None => ("ok".to_string(), Role::Ok),
                Some(s) => match &s.state {
                    SyncState::Listing { objects } => {
                        (format!("syncing {} {objects}…", s.resource), Role::Warning)
                    }
                    SyncState::Reconnecting { since, .. } => (
                        format!(
                            "{} stale {}s",
                            s.resource,
                            (self.now() - *since).num_seconds().max(0)
                        ),
                        Role::Stale,
                    ),
                    other => (
                        format!("{}: {}", s.resource, other.describe()),
                        Role::Critical,
                    ),
                },
            };
            spans.push(Span::styled(
                format!(" {} ", c.name),
                t.style(Role::StatusBar),
            ));
            spans.push(Span::styled(format!("{text} "), t.style(role)));
        }
        for g in &self.snapshot.gpu_sources {
            let stale = g
                .last_success
                .is_none_or(|at| (self.now() - at).num_seconds() > 60);
            let role = if g.error.is_some() {
                Role::Critical
            } else if stale {
                Role::Stale
            } else {
                Role::Ok
            };
            spans.push(Span::styled(format!(" {} ", g.describe()), t.style(role)));
        }
        if let Some(c) = &self.snapshot.cost_source {
            let now = self.now();
            let age = c
                .last_success
                .map(|at| compact_age_secs((now - at).num_seconds()));
            let (text, role) = match (&c.error, age) {
                (Some(e), Some(age)) => (format!("cost: {e} (report {age} old)"), Role::Critical),
                (Some(e), None) => (format!("cost: {e}"), Role::Critical),
                (None, Some(age)) if c.is_stale(now) => (format!("cost stale {age}"), Role::Stale),
                (None, Some(age)) => (format!("cost ok {age}"), Role::Ok),
                (None, None) => ("cost: no report yet".to_string(), Role::Warning),
            };
            spans.push(Span::styled(format!(" {text} "), t.style(role)));
        }
        let age = self
            .snapshot
            .taken_at
            .map(|at| (self.now() - at).num_seconds())
            .unwrap_or(0);
        if age > 5 {
            spans.push(Span::styled(
                format!(" snapshot {age}s old "),
                t.style(Role::Stale),
            ));
        }
        spans.push(Span::styled(
            format!(" {} ", self.now().format("%H:%M:%S UTC")),
            t.style(Role::StatusBar),
        ));
        Line::from(spans)
    }

    /// Whether the Overview's place shows the wall in `main`.
    fn wall_shown(&self, main: Rect) -> bool {
        self.pane == PaneId::Overview
            && (self.noc || (main.width >= WALL_WIDTH && main.height >= WALL_HEIGHT))
    }

    pub fn draw(&mut self, frame: &mut Frame) {
        let area = frame.area();
        let t = self.theme.clone();
        frame.render_widget(Block::default().style(t.style(Role::Base)), area);
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = format!(
                "terminal too small: need {MIN_WIDTH}×{MIN_HEIGHT} (have {}×{})",
                area.width, area.height
            );
            frame.render_widget(
                Paragraph::new(msg)
                    .style(t.style(Role::Warning))
                    .wrap(Wrap { trim: true }),
                area,
            );
            return;
        }
        let [top, main, bottom] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(area);
        // Top bar: name, tabs, cluster scope, and the SIMULATED FLEET marker.
        let selected = PaneId::ALL
            .iter()
            .position(|p| *p == self.pane)
            .unwrap_or(0);
        let mut marks = Vec::new();
        if let Some(c) = &self.cluster {
            marks.push(Span::styled(format!(" ctx {c} "), t.style(Role::Accent)));
        }
        if self.noc {
            marks.push(Span::styled(" NOC ", t.style(Role::Accent)));
        }
        if self.simulated {
            marks.push(Span::styled(" SIMULATED FLEET ", t.style(Role::Simulated)));
        }
        let marks = Line::from(marks);
        // The marks take what they need (at most 40 columns); the tabs get the rest.
        let marks_width = u16::try_from(marks.width()).unwrap_or(40).min(40);
        let [name, tabs, right] = Layout::horizontal([
            Constraint::Length(11),
            Constraint::Min(10),
            Constraint::Length(marks_width),
        ])
        .areas(top);
        frame.render_widget(
            Paragraph::new(" fleetdeck").style(t.style(Role::Title)),
            name,
        );
        let names: Vec<&str> = PaneId::ALL.iter().map(|p| p.name()).collect();
        let titles: Vec<Line> = tab_titles(&names, selected, usize::from(tabs.width))
            .into_iter()
            .map(Line::from)
            .collect();
        frame.render_widget(
            Tabs::new(titles)
                .select(selected)
                .style(t.style(Role::Muted))
                .highlight_style(t.style(Role::Selection)),
            tabs,
        );
        frame.render_widget(Paragraph::new(marks).right_aligned(), right);

        // NOC mode: a wall-screen banner above the rotating pane — severities, burning SLOs,
        // source outages, and the worst signals first.
        // The wall: in NOC mode in the Overview's turn of the rotation, and as the Overview on
        // a terminal large enough for it. It carries its own counters instead of the banner.
        let wall = self.inspect.is_none() && self.wall_shown(main);
        let main = if self.noc && !wall && main.height > 12 {
            let [banner, rest] =
                Layout::vertical([Constraint::Length(6), Constraint::Min(1)]).areas(main);
            frame.render_widget(
                Paragraph::new(self.noc_banner()).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .border_style(t.style(Role::BorderFocused)),
                ),
                banner,
            );
            rest
        } else {
            main
        };
        let snapshot = self.snapshot.clone();
        let now = self.now();
        match &mut self.inspect {
            None if wall => {
                let incidents = self.incidents.clone();
                let mut alerts = Vec::new();
                if let Some(a) = &self.automation {
                    if a.kill.is_some() {
                        alerts.push(Span::styled(" KILL SWITCH ON ", kill_style(&t)));
                    }
                    if !a.pending.is_empty() {
                        alerts.push(Span::styled(
                            format!(" {} ", pending_text(a.pending.len()).to_uppercase()),
                            t.style(Role::Warning),
                        ));
                    }
                }
                let ctx = crate::tui::wall::WallCtx {
                    snapshot: &snapshot,
                    incidents: &incidents,
                    theme: &t,
                    now,
                    alerts,
                    disconnected: self.disconnected_for(),
                };
                self.wall.draw(frame, main, &ctx);
            }
            Some(super::Inspect::Logs(v)) => v.draw(frame, main, &t),
            Some(super::Inspect::Yaml(v)) => v.draw(frame, main, &t),
            None => self.with_panes(|panes, id, ctx| panes.get_mut(id).draw(frame, main, ctx)),
        }

        // Bottom: the input line while typing, else a message, else the sources' status.
        let line = match &self.mode {
            Mode::Filter(text) => Line::from(vec![
                Span::styled("/", t.style(Role::Accent)),
                Span::raw(text.clone()),
            ]),
            Mode::Palette(text) => Line::from(vec![
                Span::styled(":", t.style(Role::Accent)),
                Span::raw(text.clone()),
            ]),
            Mode::Note { incident, text } => Line::from(vec![
                Span::styled(
                    format!(
                        "note for {} (enter adds, esc discards): ",
                        incident_label(*incident)
                    ),
                    t.style(Role::Accent),
                ),
                Span::raw(text.clone()),
            ]),
            Mode::Replicas {
                namespace,
                name,
                current,
                text,
                ..
            } => Line::from(vec![
                Span::styled(
                    format!(
                        "scale deployment/{namespace}/{name} to how many replicas{} (enter asks for the plan, esc cancels): ",
                        current.map_or_else(String::new, |c| format!(", now {c}"))
                    ),
                    t.style(Role::Accent),
                ),
                Span::raw(text.clone()),
            ]),
            Mode::Confirm { prompt, .. } => {
                Line::from(Span::styled(prompt.clone(), t.style(Role::Warning)))
            }
            Mode::ConfirmAction(pending) => Line::from(Span::styled(
                format!("{}? y performs it, any other key cancels", pending.what()),
                t.style(Role::Warning),
            )),
            _ => {
                let mut line = match &self.message {
                    Some(m) => Line::from(Span::styled(m.clone(), t.style(Role::Info))),
                    None => self.status_line(),
                };
                let mut spans = self.link_spans();
                spans.append(&mut self.automation_alerts());
                spans.append(&mut line.spans);
                line.spans = spans;
                line
            }
        };
        frame.render_widget(Paragraph::new(line).style(t.style(Role::StatusBar)), bottom);

        match &self.mode {
            Mode::Help => self.draw_help(frame, main),
            Mode::ConfirmAction(pending) => self.draw_confirm_action(frame, main, pending),
            _ => {}
        }
    }

    /// The confirmation of a person's action: the guard's plan, its blast radius and the
    /// cluster's disruption, and who it is recorded as.
    fn draw_confirm_action(&self, frame: &mut Frame, main: Rect, pending: &PendingAction) {
        let t = &self.theme;
        let mut lines = plan_step_lines(None, &pending.step, " ", t);
        if let Some(d) = pending.disruption {
            lines.push(Line::from(vec![
                Span::styled(" cluster ", t.style(Role::Header)),
                Span::raw(format!(
                    "{}: {} of {} nodes cordoned or NotReady ({} unready); automation's budget is {}",
                    pending.cluster, d.disrupted, d.nodes, d.unready, d.budget
                )),
            ]));
        }
        if let Some(a) = &self.automation
            && let Some(why) = &a.kill
        {
            lines.push(Line::from(Span::styled(
                format!(" {why}: it halts runbooks; this is your own action"),
                t.style(Role::Warning),
            )));
        }
        lines.push(Line::from(Span::styled(
            format!(
                " performed as {}, recorded on the timeline",
                crate::tui::automation::local_user_name()
            ),
            t.style(Role::Muted),
        )));
        lines.push(Line::default());
        lines.push(Line::from(vec![
            Span::styled(" y ", t.style(Role::Selection)),
            Span::raw(format!(" {}   ", pending.step.intent.verb())),
            Span::styled(" any other key ", t.style(Role::Selection)),
            Span::raw(" cancels"),
        ]));
        let w = 110.min(main.width);
        let inner_w = usize::from(w.saturating_sub(2)).max(1);
        let rows: usize = lines
            .iter()
            .map(|l| wrapped_rows(&l.to_string(), inner_w))
            .sum();
        let h = (u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2)).min(main.height);
        let popup = Rect::new(
            main.x + (main.width - w) / 2,
            main.y + (main.height - h) / 2,
            w,
            h,
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .title(Span::styled(
                format!(" confirm: {} ", pending.what()),
                t.style(Role::Warning),
            ))
            .border_style(t.style(Role::Warning));
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            popup,
        );
    }

    /// The keymap's help in a popup; in two columns when one does not fit the height.
    fn draw_help(&self, frame: &mut Frame, main: Rect) {
        let t = &self.theme;
        let help = self.keymap.help();
        let two = help.len() as u16 + 4 > main.height;
        let per_column = if two {
            help.len().div_ceil(2)
        } else {
            help.len()
        };
        let widest = |rows: &[(String, String)]| {
            rows.iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0)
        };
        let longest = |rows: &[(String, String)]| {
            rows.iter()
                .map(|(_, what)| what.chars().count())
                .max()
                .unwrap_or(0)
        };
        let (first, second) = if two {
            help.split_at(per_column.min(help.len()))
        } else {
            (&help[..], &help[..0])
        };
        let first_keys = if two { widest(first) } else { 22 };
        let left_width = first_keys + 2 + longest(first) + 2;
        let right_width = if two {
            widest(second) + 2 + longest(second)
        } else {
            0
        };
        // As wide as the descriptions need (so none is cut), within the screen; a screen too
        // narrow for them wraps them instead.
        let needed = u16::try_from(left_width + right_width + 2).unwrap_or(u16::MAX);
        let h = (per_column as u16 + if two { 2 } else { 4 }).min(main.height);
        let w = needed.min(main.width);
        let popup = Rect::new(
            main.x + (main.width - w) / 2,
            main.y + (main.height - h) / 2,
            w,
            h,
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" keys (any key closes) ")
            .border_style(t.style(Role::BorderFocused));
        let inner = block.inner(popup);
        frame.render_widget(Clear, popup);
        frame.render_widget(block, popup);
        // Each column's keys are right-aligned to its own widest.
        let column = |rows: &[(String, String)], width: usize| -> Vec<Line<'static>> {
            rows.iter()
                .map(|(keys, what)| {
                    Line::from(vec![
                        Span::styled(format!("{keys:>width$}  "), t.style(Role::Accent)),
                        Span::raw(what.clone()),
                    ])
                })
                .collect()
        };
        let wrap = Wrap { trim: false };
        if two {
            let [left, right] = Layout::horizontal([
                Constraint::Length(u16::try_from(left_width).unwrap_or(u16::MAX)),
                Constraint::Min(0),
            ])
            .areas(inner);
            frame.render_widget(Paragraph::new(column(first, first_keys)).wrap(wrap), left);
            frame.render_widget(
                Paragraph::new(column(second, widest(second))).wrap(wrap),
                right,
            );
        } else {
            frame.render_widget(Paragraph::new(column(first, first_keys)).wrap(wrap), inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tab_titles;

    #[test]
    fn tabs_that_do_not_fit_are_cut_but_every_pane_keeps_one() {
        let names = ["overview", "nodes", "gpus", "workloads", "events"];
        assert_eq!(tab_titles(&names, 0, 200), names.map(String::from).to_vec());
        let cut = tab_titles(&names, 3, 36);
        assert_eq!(cut[3], "workloads", "the selected tab stays whole");
        assert!(cut.iter().all(|t| !t.is_empty()));
        let width: usize = cut.iter().map(|t| t.chars().count() + 3).sum();
        assert!(width <= 36, "{cut:?}");
        assert_eq!(tab_titles(&names, 0, 5).len(), names.len());
    }
}
