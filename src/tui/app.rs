//! The cockpit: app state, the event loop (keys and mouse, snapshots, ticks, SIGTERM), the
//! status line, command palette, filter, help and NOC rotation. Panes draw what they are
//! given; detectors run when a snapshot arrives, never while drawing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};
use tokio::sync::{mpsc, watch};

use super::cost::CostPane;
use super::endpoints::EndpointsPane;
use super::gpus::GpusPane;
use super::keymap::{Action, Keymap, PaneId};
use super::nodes::NodesPane;
use super::overview::OverviewPane;
use super::pane::ViewCtx;
use super::signals::SignalsPane;
use super::theme::{Role, Theme};
use crate::model::cost::CostReport;
use crate::model::{Snapshot, SyncState};
use crate::signals::Detectors;

/// The smallest terminal the cockpit draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// Frames are drawn at most this often, and only when something changed.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// How long each pane stays up in NOC mode.
const NOC_ROTATION: Duration = Duration::from_secs(10);
const NOC_PANES: [PaneId; 5] = [
    PaneId::Overview,
    PaneId::Signals,
    PaneId::Endpoints,
    PaneId::Gpus,
    PaneId::Nodes,
];

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    Filter(String),
    Palette(String),
    Help,
}

/// Side effects the loop performs for the app (the app itself does no I/O).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `:scenario NAME` in demo mode: ask the simulated fleet to inject a fault.
    Scenario(String),
}

pub struct App {
    pub pane: PaneId,
    overview: OverviewPane,
    nodes: NodesPane,
    gpus: GpusPane,
    endpoints: EndpointsPane,
    cost_pane: CostPane,
    signals: SignalsPane,
    keymap: Keymap,
    theme: Theme,
    mode: Mode,
    cluster: Option<String>,
    snapshot: Arc<Snapshot>,
    cost: Option<CostReport>,
    detectors: Detectors,
    simulated: bool,
    noc: bool,
    message: Option<String>,
    pub quit: bool,
    /// A fixed clock for tests; the wall clock otherwise.
    fixed_now: Option<chrono::DateTime<Utc>>,
}

impl App {
    pub fn new(
        theme: Theme,
        keymap: Keymap,
        detectors: Detectors,
        simulated: bool,
        noc: bool,
    ) -> Self {
        Self {
            pane: PaneId::Overview,
            overview: OverviewPane::default(),
            nodes: NodesPane::default(),
            gpus: GpusPane::default(),
            endpoints: EndpointsPane::default(),
            cost_pane: CostPane::default(),
            signals: SignalsPane::default(),
            keymap,
            theme,
            mode: Mode::Normal,
            cluster: None,
            snapshot: Arc::new(Snapshot::default()),
            cost: None,
            detectors,
            simulated,
            noc,
            message: None,
            quit: false,
            fixed_now: None,
        }
    }

    /// Draws and evaluates as if it were always `now` (for reproducible screens in tests).
    pub fn with_clock(mut self, now: chrono::DateTime<Utc>) -> Self {
        self.fixed_now = Some(now);
        self
    }

    fn now(&self) -> chrono::DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    /// A new snapshot from `state`: the detectors run here, off the render path.
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        let mut snap = snap;
        let now = self.now();
        let mut signals = self.detectors.evaluate(&snap, now);
        if let Some(report) = &self.cost {
            signals.extend(self.detectors.evaluate_cost(report, now));
            signals.sort_by(|a, b| {
                b.severity
                    .cmp(&a.severity)
                    .then_with(|| a.subject.cmp(&b.subject))
            });
        }
        Arc::make_mut(&mut snap).signals = signals;
        self.snapshot = snap;
    }

    pub fn set_cost(&mut self, report: CostReport) {
        self.cost = Some(report);
        self.set_snapshot(self.snapshot.clone());
    }

    pub fn say(&mut self, message: impl Into<String>) {
        self.message = Some(message.into());
    }

    fn go(&mut self, pane: PaneId) {
        self.pane = pane;
    }

    fn cycle(&mut self, forward: bool) {
        let i = PaneId::ALL
            .iter()
            .position(|p| *p == self.pane)
            .unwrap_or(0);
        let n = PaneId::ALL.len();
        self.pane = PaneId::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }];
    }

    /// NOC mode: the next pane of the rotation.
    pub fn rotate(&mut self) {
        let i = NOC_PANES
            .iter()
            .position(|p| *p == self.pane)
            .map_or(0, |i| (i + 1) % NOC_PANES.len());
        self.pane = NOC_PANES[i];
    }

    fn set_filter(&mut self, f: &str) {
        match self.pane {
            PaneId::Nodes => self.nodes.set_filter(f),
            PaneId::Gpus => self.gpus.set_filter(f),
            PaneId::Endpoints => self.endpoints.set_filter(f),
            PaneId::Signals => self.signals.set_filter(f),
            PaneId::Overview | PaneId::Cost => {}
        }
    }

    fn pane_action(&mut self, action: Action) -> bool {
        let snapshot = self.snapshot.clone();
        let cost = self.cost.clone();
        let ctx = ViewCtx {
            snapshot: &snapshot,
            theme: &self.theme,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            cost: cost.as_ref(),
        };
        match self.pane {
            PaneId::Overview => self.overview.handle(action, &ctx),
            PaneId::Nodes => self.nodes.handle(action, &ctx),
            PaneId::Gpus => self.gpus.handle(action, &ctx),
            PaneId::Endpoints => self.endpoints.handle(action, &ctx),
            PaneId::Cost => self.cost_pane.handle(action, &ctx),
            PaneId::Signals => {
                let changed = self.signals.handle(action, &ctx);
                // Enter on a signal's detail jumps to its subject's pane.
                if action == Action::Open
                    && !changed
                    && let Some(subject) = self.signals.selected_subject(&ctx)
                {
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
                    self.pane = target;
                    self.set_filter(&filter);
                    return true;
                }
                changed
            }
        }
    }

    /// Runs a palette command (without the leading `:`).
    fn command(&mut self, line: &str) -> Option<Command> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        let pane = PaneId::ALL
            .into_iter()
            .find(|p| p.name() == verb || (verb == "gpu" && *p == PaneId::Gpus));
        match (verb, arg, pane) {
            (_, _, Some(p)) => self.go(p),
            ("ctx" | "context", None, _) => {
                self.cluster = None;
                self.say("showing every cluster");
            }
            ("ctx" | "context", Some(name), _) => {
                if self.snapshot.clusters.iter().any(|c| c.name == name) {
                    self.cluster = Some(name.to_string());
                    self.say(format!("showing cluster {name}"));
                } else {
                    let known: Vec<&str> = self.snapshot.clusters.iter().map(|c| c.name.as_str()).collect();
                    self.say(format!("no cluster {name:?}; known: {}", known.join(", ")));
                }
            }
            ("scenario", Some(name), _) if self.simulated => return Some(Command::Scenario(name.to_string())),
            ("scenario", _, _) if !self.simulated => self.say(":scenario works in demo mode (a simulated fleet)"),
            ("q" | "quit", _, _) => self.quit = true,
            ("", _, _) => {}
            (other, _, _) => self.say(format!(
                "unknown command :{other}; try :overview :nodes :gpus :endpoints :cost :signals :ctx NAME{}",
                if self.simulated { " :scenario NAME" } else { "" }
            )),
        }
        None
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        let (palette, mut text) = match &self.mode {
            Mode::Filter(t) => (false, t.clone()),
            Mode::Palette(t) => (true, t.clone()),
            Mode::Help => {
                self.mode = Mode::Normal;
                return None;
            }
            Mode::Normal => (false, String::new()),
        };
        if self.mode != Mode::Normal {
            match key.code {
                KeyCode::Esc => {
                    if !palette {
                        self.set_filter("");
                    }
                    self.mode = Mode::Normal;
                    return None;
                }
                KeyCode::Enter => {
                    self.mode = Mode::Normal;
                    return if palette { self.command(&text) } else { None };
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => return None,
            }
            if !palette {
                self.set_filter(&text);
            }
            self.mode = if palette {
                Mode::Palette(text)
            } else {
                Mode::Filter(text)
            };
            return None;
        }
        let action = self.keymap.action(&key)?;
        self.message = None;
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.mode = Mode::Help,
            Action::Palette => self.mode = Mode::Palette(String::new()),
            Action::Filter => self.mode = Mode::Filter(String::new()),
            Action::GoTo(p) => self.go(p),
            Action::NextPane | Action::PrevPane => {
                // Inside a pane's detail, left/right belong to the pane.
                if !self.pane_action(action) {
                    self.cycle(action == Action::NextPane);
                }
            }
            other => {
                self.pane_action(other);
            }
        }
        None
    }

    /// Mouse: the wheel scrolls, a click on a tab opens that pane.
    pub fn handle_mouse(&mut self, kind: MouseEventKind, column: u16, row: u16) {
        match kind {
            MouseEventKind::ScrollDown => {
                self.pane_action(Action::Down);
            }
            MouseEventKind::ScrollUp => {
                self.pane_action(Action::Up);
            }
            MouseEventKind::Down(_) if row == 0 => {
                // Tabs start after the title; each is its name plus padding.
                let mut x = 12u16;
                for p in PaneId::ALL {
                    let w = p.name().len() as u16 + 3;
                    if column >= x && column < x + w {
                        self.go(p);
                        break;
                    }
                    x += w;
                }
            }
            _ => {}
        }
    }

    fn noc_banner(&self) -> Vec<Line<'static>> {
        use crate::model::signal::Severity;
        let t = &self.theme;
        let count = |s: Severity| {
            self.snapshot
                .signals
                .iter()
                .filter(|x| x.severity == s)
                .count()
        };
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
        let mut lines = vec![Line::from(vec![
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
            if down.is_empty() {
                Span::styled("  all sources ok  ", t.style(Role::Ok))
            } else {
                Span::styled(
                    format!("  degraded: {}  ", down.join(", ")),
                    t.style(Role::Stale),
                )
            },
        ])];
        for s in self.snapshot.signals.iter().take(3) {
            let role = match s.severity {
                Severity::Critical => Role::Critical,
                Severity::Warning => Role::Warning,
                Severity::Info => Role::Info,
            };
            lines.push(Line::from(vec![
                Span::styled(
                    format!(" {:<9}", format!("{:?}", s.severity).to_uppercase()),
                    t.style(role),
                ),
                Span::raw(s.summary.clone()),
            ]));
        }
        lines
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
        let titles: Vec<Line> = PaneId::ALL.iter().map(|p| Line::from(p.name())).collect();
        let selected = PaneId::ALL
            .iter()
            .position(|p| *p == self.pane)
            .unwrap_or(0);
        let [name, tabs, right] = Layout::horizontal([
            Constraint::Length(11),
            Constraint::Min(10),
            Constraint::Length(40),
        ])
        .areas(top);
        frame.render_widget(
            Paragraph::new(" fleetdeck").style(t.style(Role::Title)),
            name,
        );
        frame.render_widget(
            Tabs::new(titles)
                .select(selected)
                .style(t.style(Role::Muted))
                .highlight_style(t.style(Role::Selection)),
            tabs,
        );
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
        frame.render_widget(Paragraph::new(Line::from(marks)).right_aligned(), right);

        // NOC mode: a wall-screen banner above the rotating pane — severities, burning SLOs,
        // source outages, and the worst signals first.
        let main = if self.noc && main.height > 12 {
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
        let cost = self.cost.clone();
        let ctx = ViewCtx {
            snapshot: &snapshot,
            theme: &t,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            cost: cost.as_ref(),
        };
        match self.pane {
            PaneId::Overview => self.overview.draw(frame, main, &ctx),
            PaneId::Nodes => self.nodes.draw(frame, main, &ctx),
            PaneId::Gpus => self.gpus.draw(frame, main, &ctx),
            PaneId::Endpoints => self.endpoints.draw(frame, main, &ctx),
            PaneId::Cost => self.cost_pane.draw(frame, main, &ctx),
            PaneId::Signals => self.signals.draw(frame, main, &ctx),
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
            _ => match &self.message {
                Some(m) => Line::from(Span::styled(m.clone(), t.style(Role::Info))),
                None => self.status_line(),
            },
        };
        frame.render_widget(Paragraph::new(line).style(t.style(Role::StatusBar)), bottom);

        if self.mode == Mode::Help {
            let help = self.keymap.help();
            let h = (help.len() as u16 + 4).min(main.height);
            let w = 70.min(main.width);
            let popup = Rect::new(
                main.x + (main.width - w) / 2,
                main.y + (main.height - h) / 2,
                w,
                h,
            );
            let lines: Vec<Line> = help
                .into_iter()
                .map(|(keys, what)| {
                    Line::from(vec![
                        Span::styled(format!("{keys:>22}  "), t.style(Role::Accent)),
                        Span::raw(what),
                    ])
                })
                .collect();
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(lines).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(" keys (any key closes) ")
                        .border_style(t.style(Role::BorderFocused)),
                ),
                popup,
            );
        }
    }
}

/// What the loop performs `Command`s against: the demo's simulated fleet control address, and
/// the RCA store where signals open incidents and the Incidents pane writes.
pub struct Effects {
    pub control: Option<String>,
    pub store: Option<crate::store::Store>,
    /// Signals of one group within this long of each other join one incident.
    pub incident_window: Duration,
}

/// Runs the cockpit until the user quits or SIGTERM/SIGINT arrives; the terminal is restored
/// on every way out (ratatui's panic hook covers panics).
pub async fn run(
    mut app: App,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut costs: mpsc::Receiver<CostReport>,
    effects: Effects,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let _ = ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::event::EnableMouseCapture
    );
    let result = event_loop(
        &mut app,
        &mut terminal,
        &mut snapshots,
        &mut costs,
        &effects,
    )
    .await;
    let _ = ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::event::DisableMouseCapture
    );
    ratatui::restore();
    result
}

async fn event_loop(
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    snapshots: &mut watch::Receiver<Arc<Snapshot>>,
    costs: &mut mpsc::Receiver<CostReport>,
    effects: &Effects,
) -> anyhow::Result<()> {
    // Terminal events are read on their own thread: the runtime never blocks on the tty.
    let (etx, mut events) = mpsc::channel::<Event>(256);
    std::thread::Builder::new()
        .name("tty-events".into())
        .spawn(move || {
            while let Ok(ev) = event::read() {
                if etx.blocking_send(ev).is_err() {
                    break;
                }
            }
        })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (done_tx, mut done) = mpsc::channel::<String>(8);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_rotation = Instant::now();
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME_INTERVAL;
    app.set_snapshot(snapshots.borrow().clone());
    loop {
        if dirty && last_draw.elapsed() >= FRAME_INTERVAL {
            terminal.draw(|f| app.draw(f))?;
            last_draw = Instant::now();
            dirty = false;
        }
        if app.quit {
            return Ok(());
        }
        let wait = if dirty {
            FRAME_INTERVAL.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_ok() {
                    app.set_snapshot(snapshots.borrow_and_update().clone());
                    dirty = true;
                }
            }
            Some(ev) = events.recv() => {
                match ev {
                    Event::Key(k) => {
                        if let Some(Command::Scenario(name)) = app.handle_key(k) {
                            scenario(effects, name, done_tx.clone(), app);
                        }
                    }
                    Event::Mouse(m) => app.handle_mouse(m.kind, m.column, m.row),
                    _ => {}
                }
                dirty = true;
            }
            Some(report) = costs.recv() => {
                app.set_cost(report);
                dirty = true;
            }
            Some(message) = done.recv() => {
                app.say(message);
                dirty = true;
            }
            _ = tick.tick() => {
                if app.noc && last_rotation.elapsed() >= NOC_ROTATION {
                    app.rotate();
                    last_rotation = Instant::now();
                }
                // The clock and staleness move even when nothing else does.
                dirty = true;
            }
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn scenario(effects: &Effects, name: String, done: mpsc::Sender<String>, app: &mut App) {
    let Some(control) = effects.control.clone() else {
        app.say(":scenario works in demo mode (a simulated fleet)");
        return;
    };
    app.say(format!("injecting {name}…"));
    tokio::spawn(async move {
        let url = format!("{control}/scenarios/{name}");
        let message = match reqwest::Client::new().post(&url).send().await {
            Ok(r) if r.status().is_success() => {
                format!("scenario {name} injected; watch the signals")
            }
            Ok(r) => {
                let body = r.text().await.unwrap_or_default();
                format!("scenario {name} refused: {body}")
            }
            Err(e) => format!("scenario {name}: {e}"),
        };
        let _ = done.send(message).await;
    });
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::nodes::fixtures;
    use super::*;

    fn app() -> App {
        let mut app = App::new(
            Theme::default_theme(),
            Keymap::default(),
            Detectors::default(),
            true,
            false,
        )
        .with_clock(fixtures::now());
        app.set_snapshot(Arc::new(fixtures::fleet()));
        app
    }

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        fixtures::render(width, height, |f| app.draw(f)).join("\n")
    }

    fn key(app: &mut App, code: KeyCode) -> Option<Command> {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            key(app, KeyCode::Char(c));
        }
    }

    /// Snapshots with the clock and relative ages filtered out.
    macro_rules! assert_screen {
        ($name:expr, $text:expr) => {
            insta::with_settings!({filters => vec![
                (r"\d\d:\d\d:\d\d UTC", "[clock]"),
            ]}, {
                insta::assert_snapshot!($name, $text);
            });
        };
    }

    #[test]
    fn every_pane_renders_at_120_by_30() {
        let mut app = app();
        for (i, pane) in PaneId::ALL.into_iter().enumerate() {
            key(&mut app, KeyCode::Char(char::from(b'1' + i as u8)));
            assert_eq!(app.pane, pane);
            assert_screen!(format!("pane_{}", pane.name()), screen(&mut app, 120, 30));
        }
    }

    #[test]
    fn the_simulated_fleet_is_marked_and_a_tiny_terminal_is_told_so() {
        let mut app = app();
        assert!(
            screen(&mut app, 120, 30)
                .lines()
                .next()
                .unwrap_or("")
                .contains("SIMULATED FLEET")
        );
        let tiny = screen(&mut app, 40, 10)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            tiny.contains("terminal too small: need 80×24 (have 40×10)"),
            "{tiny}"
        );
    }

    #[test]
    fn the_palette_switches_pane_and_context_and_asks_for_scenarios() {
        let mut app = app();
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "gpus");
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.pane, PaneId::Gpus);
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "ctx nowhere");
        key(&mut app, KeyCode::Enter);
        assert!(screen(&mut app, 120, 30).contains("no cluster \"nowhere\""));
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "scenario xid-storm");
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Command::Scenario("xid-storm".into()))
        );
    }

    #[test]
    fn help_lists_the_keymap_and_any_key_closes_it() {
        let mut app = app();
        key(&mut app, KeyCode::Char('?'));
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("command palette") && s.contains("q / ctrl-c"),
            "{s}"
        );
        key(&mut app, KeyCode::Char('x'));
        assert!(!screen(&mut app, 120, 30).contains("command palette"));
    }

    #[test]
    fn the_filter_narrows_the_nodes_pane_and_esc_clears_it() {
        let mut app = app();
        key(&mut app, KeyCode::Char('2'));
        let all = screen(&mut app, 120, 30);
        key(&mut app, KeyCode::Char('/'));
        typed(&mut app, "zzz-no-such-node");
        let none = screen(&mut app, 120, 30);
        assert_ne!(all, none);
        assert!(none.contains("/zzz-no-such-node"), "{none}");
        key(&mut app, KeyCode::Esc);
        assert_eq!(screen(&mut app, 120, 30), all);
    }

    #[test]
    fn noc_mode_puts_the_worst_first_on_a_banner() {
        let mut app = App::new(
            Theme::default_theme(),
            Keymap::default(),
            Detectors::default(),
            false,
            true,
        )
        .with_clock(fixtures::now());
        app.set_snapshot(Arc::new(fixtures::fleet()));
        let s = screen(&mut app, 120, 30);
        assert!(s.contains("3 CRITICAL") && s.contains("SLO BURNING"), "{s}");
        assert!(
            s.contains("NotReady"),
            "the worst signal is on the banner: {s}"
        );
    }

    #[test]
    fn noc_rotation_visits_the_wall_screen_panes() {
        let mut app = App::new(
            Theme::default_theme(),
            Keymap::default(),
            Detectors::default(),
            false,
            true,
        );
        let mut seen = Vec::new();
        for _ in 0..NOC_PANES.len() {
            app.rotate();
            seen.push(app.pane);
        }
        assert_eq!(seen.len(), NOC_PANES.len());
        assert!(NOC_PANES.iter().all(|p| seen.contains(p)));
    }
}
