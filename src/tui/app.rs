//! The cockpit: app state, the event loop (keys and mouse, snapshots, ticks, SIGTERM), the
//! status line, command palette, filter, help and NOC rotation, and the confirmation of a
//! person's actions. Panes draw what they are given; detectors run when a snapshot arrives,
//! never while drawing; the executor is reached only through the loop's `AutomationLink`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};
use tokio::sync::{mpsc, watch};

use super::automation::{AutomationLink, NO_EXECUTOR};
use super::cost::CostPane;
use super::endpoints::EndpointsPane;
use super::gpus::GpusPane;
use super::incidents::IncidentsPane;
use super::keymap::{Action, Keymap, PaneId};
use super::nodes::NodesPane;
use super::overview::OverviewPane;
use super::pane::ViewCtx;
use super::rca::RcaLink;
use super::runbooks::{AutomationView, RunbooksPane, kill_style, pending_text, plan_step_lines};
use super::signals::SignalsPane;
use super::theme::{Role, Theme};
use crate::actions::{DrainRequest, Mutation};
use crate::model::incident::{Entry, Incident, IncidentStatus, incident_label};
use crate::model::signal::Signal;
use crate::model::{Snapshot, SyncState};
use crate::pipeline::Evaluated;
use crate::runbook::executor::PlanStep;
use crate::runbook::guard::ClusterDisruption;

/// The smallest terminal the cockpit draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// Frames are drawn at most this often, and only when something changed.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// How long each pane stays up in NOC mode.
const NOC_ROTATION: Duration = Duration::from_secs(10);
const NOC_PANES: [PaneId; 7] = [
    PaneId::Overview,
    PaneId::Signals,
    PaneId::Incidents,
    PaneId::Runbooks,
    PaneId::Endpoints,
    PaneId::Gpus,
    PaneId::Nodes,
];

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    Filter(String),
    Palette(String),
    /// Typing a note for an incident's timeline.
    Note {
        incident: u64,
        text: String,
    },
    /// A command that closes something, waiting for y (anything else cancels).
    Confirm {
        prompt: String,
        command: Command,
        cancelled: String,
    },
    /// A person's action with the guard's plan on screen, waiting for y (anything else
    /// cancels).
    ConfirmAction(PendingAction),
    Help,
}

/// A person's action between its two phases: the guard's plan is known, the action is not
/// yet performed.
#[derive(Debug, Clone, PartialEq)]
struct PendingAction {
    cluster: String,
    step: PlanStep,
    disruption: Option<ClusterDisruption>,
}

impl PendingAction {
    fn what(&self) -> String {
        format!(
            "{} {} in {}",
            self.step.intent.verb(),
            self.step.intent.target(),
            self.cluster
        )
    }
}

/// Side effects the loop performs for the app (the app itself does no I/O).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `:scenario NAME` in demo mode: ask the simulated fleet to inject a fault.
    Scenario(String),
    /// Read an incident's timeline from the store for the Incidents pane.
    LoadTimeline(u64),
    /// Write a note on an incident's timeline.
    Note {
        incident: u64,
        text: String,
    },
    Acknowledge(u64),
    Resolve(u64),
    /// Write the incident's Markdown postmortem draft to `./INC-<n>-postmortem.md`.
    Export(u64),
    /// A person's action, first phase: ask the executor for the guard's plan and blast radius.
    Preview {
        cluster: String,
        intent: Mutation,
    },
    /// A person's action, confirmed: perform it through the executor, recorded as theirs.
    Perform {
        cluster: String,
        intent: Mutation,
    },
    /// A person's verdict on a runbook's pending plan.
    Decide {
        id: u64,
        approve: bool,
    },
    ToggleKill,
}

impl Command {
    /// Whether the runbook executor performs it (else the store or the simulated fleet).
    pub fn is_automation(&self) -> bool {
        matches!(
            self,
            Command::Preview { .. }
                | Command::Perform { .. }
                | Command::Decide { .. }
                | Command::ToggleKill
        )
    }
}

/// The Incidents detail's reminder of its keys, from the bindings: `n note · a acknowledge …`.
fn incident_keys_hint(keymap: &Keymap) -> String {
    [
        (Action::Note, "note"),
        (Action::Acknowledge, "acknowledge"),
        (Action::Resolve, "resolve"),
        (Action::Export, "export"),
        (Action::Back, "back"),
    ]
    .into_iter()
    .filter_map(|(action, what)| {
        let key = keymap.keys_for(action).into_iter().next()?;
        Some(format!("{key} {what}"))
    })
    .collect::<Vec<_>>()
    .join(" · ")
}

/// The Runbooks pane's reminder of its keys, from the bindings: `y approve · N deny · K …`.
fn runbook_keys_hint(keymap: &Keymap) -> String {
    [
        (Action::Approve, "approve"),
        (Action::Deny, "deny"),
        (Action::KillSwitch, "kill switch"),
    ]
    .into_iter()
    .filter_map(|(action, what)| {
        let key = keymap.keys_for(action).into_iter().next()?;
        Some(format!("{key} {what}"))
    })
    .collect::<Vec<_>>()
    .join(" · ")
}

/// What an edit key did to an input line.
enum Edit {
    Submit,
    Cancel,
    Changed,
    Ignored,
}

/// Applies a key to an input line (filter, palette, note).
fn edit(text: &mut String, code: KeyCode) -> Edit {
    match code {
        KeyCode::Esc => Edit::Cancel,
        KeyCode::Enter => Edit::Submit,
        KeyCode::Backspace => {
            text.pop();
            Edit::Changed
        }
        KeyCode::Char(c) => {
            text.push(c);
            Edit::Changed
        }
        _ => Edit::Ignored,
    }
}

/// The rows a line takes when wrapped at word boundaries into `width` columns, as the
/// confirmation popup's `Paragraph` wraps it.
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

/// `42s`, `7m`, `3h`: an age short enough for the status line.
fn compact_age_secs(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Cordon => "cordon",
        Action::Uncordon => "uncordon",
        Action::Drain => "drain",
        Action::Rollback => "rollback",
        _ => "act",
    }
}

/// The selected node as the target of a cordon, uncordon or drain (DaemonSet pods stay).
fn node_target(
    selected: Option<(String, String)>,
    action: Action,
) -> Result<(String, Mutation), String> {
    let (cluster, node) = selected.ok_or_else(|| format!("{}: no node selected", verb(action)))?;
    let intent = match action {
        Action::Cordon => Mutation::Cordon { node },
        Action::Uncordon => Mutation::Uncordon { node },
        _ => Mutation::Drain {
            node,
            options: DrainRequest {
                ignore_daemonsets: true,
                ..DrainRequest::default()
            },
        },
    };
    Ok((cluster, intent))
}

pub struct App {
    pub pane: PaneId,
    overview: OverviewPane,
    nodes: NodesPane,
    gpus: GpusPane,
    endpoints: EndpointsPane,
    cost_pane: CostPane,
    signals: SignalsPane,
    incidents_pane: IncidentsPane,
    runbooks_pane: RunbooksPane,
    keymap: Keymap,
    theme: Theme,
    mode: Mode,
    cluster: Option<String>,
    snapshot: Arc<Snapshot>,
    /// The RCA store's incidents as last read by the loop.
    incidents: Arc<Vec<Incident>>,
    /// The executor's runbooks, runs and approvals as last read by the loop; `None` without
    /// an executor.
    automation: Option<Arc<AutomationView>>,
    /// The person's action whose plan the loop is asking for.
    awaiting_plan: Option<(String, Mutation)>,
    simulated: bool,
    noc: bool,
    message: Option<String>,
    pub quit: bool,
    /// A fixed clock for tests; the wall clock otherwise.
    fixed_now: Option<chrono::DateTime<Utc>>,
}

impl App {
    pub fn new(theme: Theme, keymap: Keymap, simulated: bool, noc: bool) -> Self {
        Self {
            pane: PaneId::Overview,
            overview: OverviewPane::default(),
            nodes: NodesPane::default(),
            gpus: GpusPane::default(),
            endpoints: EndpointsPane::default(),
            cost_pane: CostPane::default(),
            signals: SignalsPane::default(),
            incidents_pane: IncidentsPane::with_keys_hint(incident_keys_hint(&keymap)),
            runbooks_pane: RunbooksPane::with_keys_hint(runbook_keys_hint(&keymap)),
            keymap,
            theme,
            mode: Mode::Normal,
            cluster: None,
            snapshot: Arc::new(Snapshot::default()),
            incidents: Arc::new(Vec::new()),
            automation: None,
            awaiting_plan: None,
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

    /// A new evaluated snapshot from the pipeline (its signals filled in; the cockpit runs no
    /// detector).
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        self.snapshot = snap;
    }

    /// The latest snapshot with its signals evaluated: what the executor is given.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// The executor's runbooks, runs and approvals, read by the loop.
    pub fn set_automation(&mut self, view: Option<AutomationView>) {
        let view = view.map(Arc::new);
        self.runbooks_pane.set_automation(view.clone());
        self.overview.set_automation(view.clone());
        self.automation = view;
    }

    /// The guard's plan of the action a key asked for: shown for confirmation, unless the
    /// answer is for an action no longer asked for or the user is typing.
    pub fn set_preview(
        &mut self,
        cluster: String,
        step: PlanStep,
        disruption: Option<ClusterDisruption>,
    ) {
        if self.awaiting_plan.as_ref() != Some(&(cluster.clone(), step.intent.clone())) {
            return;
        }
        self.awaiting_plan = None;
        let pending = PendingAction {
            cluster,
            step,
            disruption,
        };
        if matches!(self.mode, Mode::Normal | Mode::Help) {
            self.message = None;
            self.mode = Mode::ConfirmAction(pending);
        } else {
            self.say(format!(
                "the plan to {} came while you were typing: press the key again",
                pending.what()
            ));
        }
    }

    /// The signals the detectors found in the latest snapshot, most severe first.
    pub fn signals(&self) -> &[Signal] {
        &self.snapshot.signals
    }

    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// A new incident list read from the store. The Incidents pane keeps its selection on the
    /// same incident; the answer asks for the open timeline again when it has new entries.
    pub fn set_incidents(&mut self, list: Vec<Incident>) -> Option<Command> {
        self.incidents = Arc::new(list);
        self.overview.set_incidents(self.incidents.clone());
        let ctx = ViewCtx {
            snapshot: &self.snapshot,
            theme: &self.theme,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            cost: self.snapshot.cost.as_deref(),
        };
        self.incidents_pane
            .set_incidents(self.incidents.clone(), &ctx);
        self.incidents_pane
            .take_request()
            .map(Command::LoadTimeline)
    }

    /// The store's answer to `Command::LoadTimeline`.
    pub fn set_timeline(&mut self, id: u64, entries: Vec<Entry>) {
        self.incidents_pane.set_timeline(id, entries);
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
            PaneId::Incidents => self.incidents_pane.set_filter(f),
            PaneId::Runbooks => self.runbooks_pane.set_filter(f),
            PaneId::Overview | PaneId::Cost => {}
        }
    }

    fn pane_action(&mut self, action: Action) -> bool {
        let snapshot = self.snapshot.clone();
        let ctx = ViewCtx {
            snapshot: &snapshot,
            theme: &self.theme,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            cost: snapshot.cost.as_deref(),
        };
        match self.pane {
            PaneId::Incidents => self.incidents_pane.handle(action, &ctx),
            PaneId::Overview => self.overview.handle(action, &ctx),
            PaneId::Nodes => self.nodes.handle(action, &ctx),
            PaneId::Gpus => self.gpus.handle(action, &ctx),
            PaneId::Endpoints => self.endpoints.handle(action, &ctx),
            PaneId::Cost => self.cost_pane.handle(action, &ctx),
            PaneId::Runbooks => self.runbooks_pane.handle(action, &ctx),
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
                "unknown command :{other}; try :overview :nodes :gpus :endpoints :cost :signals :incidents :runbooks :ctx NAME{}",
                if self.simulated { " :scenario NAME" } else { "" }
            )),
        }
        None
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key),
            Mode::Help => None,
            Mode::Confirm {
                command, cancelled, ..
            } => {
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    Some(command)
                } else {
                    self.say(cancelled);
                    None
                }
            }
            Mode::ConfirmAction(pending) => {
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    self.say(format!("{}…", pending.what()));
                    Some(Command::Perform {
                        cluster: pending.cluster,
                        intent: pending.step.intent,
                    })
                } else {
                    self.say(format!("{}: cancelled, nothing changed", pending.what()));
                    None
                }
            }
            Mode::Filter(mut text) => {
                match edit(&mut text, key.code) {
                    Edit::Cancel => self.set_filter(""),
                    Edit::Submit => {}
                    Edit::Changed => {
                        self.set_filter(&text);
                        self.mode = Mode::Filter(text);
                    }
                    Edit::Ignored => self.mode = Mode::Filter(text),
                }
                None
            }
            Mode::Palette(mut text) => match edit(&mut text, key.code) {
                Edit::Cancel => None,
                Edit::Submit => self.command(&text),
                Edit::Changed | Edit::Ignored => {
                    self.mode = Mode::Palette(text);
                    None
                }
            },
            Mode::Note { incident, mut text } => match edit(&mut text, key.code) {
                Edit::Cancel => {
                    self.say(format!("note for {} discarded", incident_label(incident)));
                    None
                }
                Edit::Submit if text.trim().is_empty() => {
                    self.say("an empty note: nothing added");
                    None
                }
                Edit::Submit => Some(Command::Note {
                    incident,
                    text: text.trim().to_string(),
                }),
                Edit::Changed | Edit::Ignored => {
                    self.mode = Mode::Note { incident, text };
                    None
                }
            },
        }
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Command> {
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
            Action::Note | Action::Acknowledge | Action::Resolve | Action::Export => {
                return self.incident_action(action);
            }
            Action::Approve | Action::Deny | Action::KillSwitch => {
                return self.automation_action(action);
            }
            Action::Cordon | Action::Uncordon | Action::Drain | Action::Rollback => {
                return self.manual_action(action);
            }
            other => {
                self.pane_action(other);
            }
        }
        self.incidents_pane
            .take_request()
            .map(Command::LoadTimeline)
    }

    /// Note, acknowledge, resolve (after a y/n) or export the Incidents pane's incident.
    fn incident_action(&mut self, action: Action) -> Option<Command> {
        if self.pane != PaneId::Incidents {
            self.say(format!(
                "{}: only in the Incidents pane (:incidents)",
                action.describe()
            ));
            return None;
        }
        let incident = {
            let ctx = ViewCtx {
                snapshot: &self.snapshot,
                theme: &self.theme,
                now: self.now(),
                cluster: self.cluster.as_deref(),
                cost: self.snapshot.cost.as_deref(),
            };
            self.incidents_pane.selected(&ctx).cloned()
        };
        let Some(incident) = incident else {
            self.say("no incident selected");
            return None;
        };
        let (id, label) = (incident.id, incident.label());
        match action {
            Action::Note => {
                self.mode = Mode::Note {
                    incident: id,
                    text: String::new(),
                };
                None
            }
            Action::Acknowledge => Some(Command::Acknowledge(id)),
            // Resolving a resolved incident only gets "already resolved": no need to ask.
            Action::Resolve if incident.status == IncidentStatus::Resolved => {
                Some(Command::Resolve(id))
            }
            Action::Resolve => {
                self.mode = Mode::Confirm {
                    prompt: format!(
                        "resolve {label}? it closes the incident: y resolves, any other key keeps it open · {}",
                        incident.title
                    ),
                    command: Command::Resolve(id),
                    cancelled: format!("{label} left {}", incident.status.name()),
                };
                None
            }
            Action::Export => Some(Command::Export(id)),
            _ => None,
        }
    }

    /// Approve or deny the Runbooks pane's selected plan; the kill switch from any pane.
    fn automation_action(&mut self, action: Action) -> Option<Command> {
        if self.automation.is_none() {
            self.say(NO_EXECUTOR);
            return None;
        }
        if action == Action::KillSwitch {
            return Some(Command::ToggleKill);
        }
        if self.pane != PaneId::Runbooks {
            let pending = self.automation.as_ref().map_or(0, |a| a.pending.len());
            self.say(format!(
                "{}: only in the Runbooks pane (:runbooks), where the plan shows · {}",
                action.describe(),
                pending_text(pending)
            ));
            return None;
        }
        let Some(p) = self.runbooks_pane.selected_approval() else {
            self.say("no approval is pending");
            return None;
        };
        Some(Command::Decide {
            id: p.id,
            approve: action == Action::Approve,
        })
    }

    /// A person's action on the selected node or endpoint, first phase: ask for the guard's
    /// plan; the popup that shows it asks for y.
    fn manual_action(&mut self, action: Action) -> Option<Command> {
        let Some(automation) = &self.automation else {
            self.say(NO_EXECUTOR);
            return None;
        };
        if automation.read_only {
            self.say("read-only: actions are disabled (fleetdeck was started with --read-only or [runbooks] read_only)");
            return None;
        }
        let target = {
            let ctx = ViewCtx {
                snapshot: &self.snapshot,
                theme: &self.theme,
                now: self.now(),
                cluster: self.cluster.as_deref(),
                cost: self.snapshot.cost.as_deref(),
            };
            match (action, self.pane) {
                (Action::Rollback, PaneId::Endpoints) => self.rollback_target(&ctx),
                (Action::Rollback, _) => Err(
                    "rollback: select an endpoint in the Endpoints pane (:endpoints)".to_string(),
                ),
                (_, PaneId::Nodes) => node_target(self.nodes.selected_node(&ctx), action),
                (_, PaneId::Gpus) => node_target(self.gpus.selected_node(&ctx), action),
                _ => Err(format!(
                    "{}: select a node in the Nodes (:nodes) or GPUs (:gpus) pane",
                    verb(action)
                )),
            }
        };
        match target {
            Ok((cluster, intent)) => {
                self.say(format!(
                    "asking the guard for the plan to {} {} in {cluster}…",
                    intent.verb(),
                    intent.target()
                ));
                self.awaiting_plan = Some((cluster.clone(), intent.clone()));
                Some(Command::Preview { cluster, intent })
            }
            Err(why) => {
                self.say(why);
                None
            }
        }
    }

    /// The selected endpoint's serving object, as a rollback.
    fn rollback_target(&self, ctx: &ViewCtx) -> Result<(String, Mutation), String> {
        let name = self
            .endpoints
            .selected_endpoint(ctx)
            .ok_or("rollback: no endpoint selected")?;
        let serving = self
            .snapshot
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.serving.clone())
            .ok_or_else(|| {
                format!("rollback: endpoint {name} names no serving object ([[endpoints]] serving in fleetdeck.toml)")
            })?;
        let intent = match serving.kind.as_str() {
            "Deployment" => Mutation::Rollback {
                namespace: serving.namespace,
                name: serving.name,
                revision: None,
            },
            "InferenceService" => Mutation::RollbackInferenceService {
                namespace: serving.namespace,
                name: serving.name,
            },
            other => {
                return Err(format!(
                    "rollback: endpoint {name} is served by a {other}; fleetdeck rolls back a Deployment or an InferenceService"
                ));
            }
        };
        Ok((serving.cluster, intent))
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
                    Some(s) => super::signals::severity_role(s),
                }),
            ),
            Span::raw("  "),
        ];
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
        // worst signals.
        if let Some(inc) = open.first() {
            let role = super::signals::severity_role(inc.severity);
            lines.push(Line::from(vec![
                Span::styled(format!(" {:<9}", inc.label()), t.style(role)),
                Span::styled(
                    format!("{} ", super::signals::severity_label(inc.severity)),
                    t.style(role),
                ),
                Span::styled(
                    format!("{} ", inc.status.name()),
                    t.style(super::incidents::status_role(inc.status)),
                ),
                Span::raw(format!(
                    "{} ago · {} ({})",
                    super::signals::compact_age(
                        self.now(),
                        inc.milestones.detected.unwrap_or(inc.last_signal_at)
                    ),
                    inc.title,
                    inc.subject.describe()
                )),
            ]));
        }
        let room = 4 - lines.len();
        for s in self.snapshot.signals.iter().take(room) {
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
        let ctx = ViewCtx {
            snapshot: &snapshot,
            theme: &t,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            cost: snapshot.cost.as_deref(),
        };
        match self.pane {
            PaneId::Overview => self.overview.draw(frame, main, &ctx),
            PaneId::Nodes => self.nodes.draw(frame, main, &ctx),
            PaneId::Gpus => self.gpus.draw(frame, main, &ctx),
            PaneId::Endpoints => self.endpoints.draw(frame, main, &ctx),
            PaneId::Cost => self.cost_pane.draw(frame, main, &ctx),
            PaneId::Signals => self.signals.draw(frame, main, &ctx),
            PaneId::Incidents => self.incidents_pane.draw(frame, main, &ctx),
            PaneId::Runbooks => self.runbooks_pane.draw(frame, main, &ctx),
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
                let mut spans = self.automation_alerts();
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
                super::automation::local_user_name()
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
        let h = (per_column as u16 + if two { 2 } else { 4 }).min(main.height);
        let w = (if two { 116 } else { 70 }).min(main.width);
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
        let widest = |rows: &[(String, String)]| {
            rows.iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0)
        };
        if two {
            let (first, second) = help.split_at(per_column.min(help.len()));
            let left_width = widest(first)
                + 2
                + first
                    .iter()
                    .map(|(_, what)| what.chars().count())
                    .max()
                    .unwrap_or(0)
                + 2;
            let [left, right] = Layout::horizontal([
                Constraint::Length(u16::try_from(left_width).unwrap_or(u16::MAX)),
                Constraint::Min(0),
            ])
            .areas(inner);
            frame.render_widget(Paragraph::new(column(first, widest(first))), left);
            frame.render_widget(Paragraph::new(column(second, widest(second))), right);
        } else {
            frame.render_widget(Paragraph::new(column(&help, 22)), inner);
        }
    }
}

/// What the loop performs `Command`s against: the demo's simulated fleet control address, the
/// RCA store the Incidents pane reads and writes, and the runbook executor.
pub struct Effects {
    pub control: Option<String>,
    pub store: Option<crate::store::Store>,
    /// The runbook executor the pipeline hands evaluations to: approvals, the kill switch and
    /// manual actions go through it. `None`: no automation.
    pub executor: Option<crate::runbook::executor::Executor>,
}

/// Runs the cockpit until the user quits or SIGTERM/SIGINT arrives; the terminal is restored
/// on every way out (ratatui's panic hook covers panics).
pub async fn run(
    mut app: App,
    mut evaluations: watch::Receiver<Arc<Evaluated>>,
    effects: Effects,
) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let _ = ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::event::EnableMouseCapture
    );
    let result = event_loop(&mut app, &mut terminal, &mut evaluations, &effects).await;
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
    evaluations: &mut watch::Receiver<Arc<Evaluated>>,
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
    let (mut rca, mut rca_replies) = RcaLink::new(effects.store.clone());
    let (mut automation, mut automation_replies) = AutomationLink::new(effects.executor.clone());
    rca.list();
    app.set_snapshot(evaluations.borrow().snapshot.clone());
    automation.refresh(app);
    let mut recorded = 0;
    let mut store_error: Option<String> = None;
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
            changed = evaluations.changed() => {
                if changed.is_ok() {
                    let evaluated = evaluations.borrow_and_update().clone();
                    app.set_snapshot(evaluated.snapshot.clone());
                    // New incidents or entries: read the list again.
                    if evaluated.recorded != recorded {
                        recorded = evaluated.recorded;
                        rca.list();
                    }
                    if evaluated.store_error != store_error {
                        store_error = evaluated.store_error.clone();
                        if let Some(e) = &store_error {
                            app.say(format!("signals not recorded: {e}"));
                        }
                    }
                    if !evaluated.started_runs.is_empty() {
                        automation.refresh(app);
                    }
                    dirty = true;
                }
            }
            Some(ev) = events.recv() => {
                match ev {
                    Event::Key(k) => match app.handle_key(k) {
                        Some(Command::Scenario(name)) => {
                            scenario(effects, name, done_tx.clone(), app);
                        }
                        Some(c) if c.is_automation() => automation.perform(c, app),
                        Some(other) => rca.perform(other, app),
                        None => {}
                    },
                    Event::Mouse(m) => app.handle_mouse(m.kind, m.column, m.row),
                    _ => {}
                }
                dirty = true;
            }
            Some(reply) = rca_replies.recv() => {
                rca.apply(reply, app);
                dirty = true;
            }
            Some(reply) = automation_replies.recv() => {
                automation.apply(reply, app);
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
                rca.tick();
                automation.refresh(app);
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

    use super::super::incidents::fixtures::{incidents, timeline};
    use super::super::nodes::fixtures;
    use super::super::runbooks::fixtures::{automation, drain_blast};
    use super::*;

    fn app() -> App {
        let mut app = App::new(Theme::default_theme(), Keymap::default(), true, false)
            .with_clock(fixtures::now());
        app.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        assert_eq!(app.set_incidents(incidents(fixtures::now())), None);
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
                // The popup names $USER; the padding after it moves with its length.
                (r"performed as \S+, recorded on the timeline +", "performed as [user], recorded on the timeline "),
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
        let mut app = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_clock(fixtures::now());
        app.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        let s = screen(&mut app, 120, 30);
        assert!(s.contains("3 CRITICAL") && s.contains("SLO BURNING"), "{s}");
        assert!(
            s.contains("NotReady"),
            "the worst signal is on the banner: {s}"
        );
    }

    #[test]
    fn noc_rotation_visits_the_wall_screen_panes() {
        let mut app = App::new(Theme::default_theme(), Keymap::default(), false, true);
        let mut seen = Vec::new();
        for _ in 0..NOC_PANES.len() {
            app.rotate();
            seen.push(app.pane);
        }
        assert_eq!(seen.len(), NOC_PANES.len());
        assert!(NOC_PANES.iter().all(|p| seen.contains(p)));
    }

    #[test]
    fn the_incident_detail_renders_at_120_by_30() {
        let mut app = app();
        key(&mut app, KeyCode::Char('7'));
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Command::LoadTimeline(3))
        );
        app.set_timeline(3, timeline(3, 6, fixtures::now()));
        assert_screen!("incident_detail", screen(&mut app, 120, 30));
    }

    #[test]
    fn an_open_timeline_is_read_again_when_its_incident_gets_new_entries() {
        let mut app = app();
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "incidents");
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.pane, PaneId::Incidents);
        key(&mut app, KeyCode::Char('/'));
        typed(&mut app, "not_ready");
        key(&mut app, KeyCode::Enter);
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Command::LoadTimeline(2))
        );
        let mut list = incidents(fixtures::now());
        assert_eq!(app.set_incidents(list.clone()), None, "nothing new");
        list[1].entries += 1;
        assert_eq!(
            app.set_incidents(list.clone()),
            Some(Command::LoadTimeline(2))
        );
        assert_eq!(app.set_incidents(list), None, "asked once per change");
    }

    #[test]
    fn incident_keys_become_commands_and_resolve_asks_first() {
        let mut app = app();
        assert_eq!(key(&mut app, KeyCode::Char('a')), None);
        assert!(
            screen(&mut app, 120, 30).contains("only in the Incidents pane"),
            "outside the pane the key says where it works"
        );
        key(&mut app, KeyCode::Char('7'));
        assert_eq!(
            key(&mut app, KeyCode::Char('a')),
            Some(Command::Acknowledge(3))
        );
        assert_eq!(key(&mut app, KeyCode::Char('e')), Some(Command::Export(3)));

        assert_eq!(key(&mut app, KeyCode::Char('n')), None);
        typed(&mut app, "swapping gpu0 ");
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("note for INC-3") && s.contains("swapping gpu0"),
            "{s}"
        );
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Command::Note {
                incident: 3,
                text: "swapping gpu0".into()
            })
        );
        key(&mut app, KeyCode::Char('n'));
        typed(&mut app, "never mind");
        assert_eq!(key(&mut app, KeyCode::Esc), None);
        assert!(screen(&mut app, 120, 30).contains("note for INC-3 discarded"));

        assert_eq!(
            app.handle_key(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            None
        );
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("resolve INC-3") && s.contains("closes the incident"),
            "{s}"
        );
        assert_eq!(key(&mut app, KeyCode::Char('x')), None);
        assert!(screen(&mut app, 120, 30).contains("INC-3 left open"));
        app.handle_key(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT));
        assert_eq!(key(&mut app, KeyCode::Char('y')), Some(Command::Resolve(3)));
        // A resolved incident needs no confirmation: the store says it already is.
        key(&mut app, KeyCode::Char('G'));
        assert_eq!(
            app.handle_key(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Command::Resolve(1))
        );
    }

    #[test]
    fn the_overview_and_the_noc_banner_show_open_incidents_worst_first() {
        let mut app = app();
        let s = screen(&mut app, 120, 30);
        assert!(s.contains("1 critical · 1 warning · 0 info open"), "{s}");
        assert!(s.contains("Open incidents (2)"), "{s}");
        let inc3 = s.find("INC-3").unwrap_or_else(|| panic!("{s}"));
        let inc2 = s.find("INC-2").unwrap_or_else(|| panic!("{s}"));
        assert!(inc3 < inc2 && !s.contains("INC-1"), "{s}");

        let mut noc = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_clock(fixtures::now());
        noc.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        noc.set_incidents(incidents(fixtures::now()));
        let s = screen(&mut noc, 120, 30);
        assert!(s.contains("2 OPEN INCIDENTS"), "{s}");
        let banner: Vec<&str> = s.lines().take(7).collect();
        assert!(
            banner
                .iter()
                .any(|l| l.contains("INC-3") && l.contains("gpu.xid on gpu-a-2")),
            "the worst open incident is on the banner: {s}"
        );
    }

    #[test]
    fn help_fits_the_new_actions_in_two_columns() {
        let mut app = app();
        key(&mut app, KeyCode::Char('?'));
        let s = screen(&mut app, 120, 30);
        for want in [
            "q / ctrl-c",
            "incident: resolve it (asks y/n)",
            "incident: add a note",
            "go to incidents",
        ] {
            assert!(s.contains(want), "{want} missing:\n{s}");
        }
    }

    fn automated_app() -> App {
        let mut app = app();
        app.set_automation(Some(automation(fixtures::now())));
        app
    }

    fn shift(app: &mut App, c: char) -> Option<Command> {
        app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::SHIFT))
    }

    #[test]
    fn the_runbooks_pane_renders_a_pending_approval_at_120_by_30() {
        let mut app = automated_app();
        key(&mut app, KeyCode::Char('8'));
        assert_eq!(app.pane, PaneId::Runbooks);
        assert_screen!("runbooks_pending_approval", screen(&mut app, 120, 30));
    }

    #[test]
    fn y_and_shift_n_decide_the_selected_approval_in_the_runbooks_pane() {
        let mut app = automated_app();
        assert_eq!(key(&mut app, KeyCode::Char('y')), None);
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("only in the Runbooks pane (:runbooks)"),
            "outside the pane the key says where it works: {s}"
        );
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "runbooks");
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.pane, PaneId::Runbooks);
        assert_eq!(
            key(&mut app, KeyCode::Char('y')),
            Some(Command::Decide {
                id: 1,
                approve: true
            })
        );
        assert_eq!(
            shift(&mut app, 'N'),
            Some(Command::Decide {
                id: 1,
                approve: false
            })
        );
        // The kill switch answers from any pane.
        key(&mut app, KeyCode::Char('1'));
        assert_eq!(shift(&mut app, 'K'), Some(Command::ToggleKill));

        let mut none = automation(fixtures::now());
        none.pending.clear();
        app.set_automation(Some(none));
        key(&mut app, KeyCode::Char('8'));
        assert_eq!(key(&mut app, KeyCode::Char('y')), None);
        assert!(screen(&mut app, 120, 30).contains("no approval is pending"));
    }

    #[test]
    fn pending_approvals_and_the_kill_switch_show_from_every_pane() {
        let mut view = automation(fixtures::now());
        view.kill = Some("the kill switch is on (toggled in the cockpit)".into());
        let mut app = app();
        app.set_automation(Some(view.clone()));
        for pane in ['1', '2', '7'] {
            key(&mut app, KeyCode::Char(pane));
            let s = screen(&mut app, 120, 30);
            let status = s.lines().last().unwrap_or_default();
            assert!(
                status.contains("KILL SWITCH ON") && status.contains("1 approval pending"),
                "{s}"
            );
        }
        // A message does not hide them.
        app.say("scenario xid-storm injected; watch the signals");
        let s = screen(&mut app, 120, 30);
        let status = s.lines().last().unwrap_or_default();
        assert!(
            status.contains("1 approval pending") && status.contains("xid-storm injected"),
            "{s}"
        );
        key(&mut app, KeyCode::Char('1'));
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("automation  approve mode · 1 approval pending · 1 running"),
            "{s}"
        );

        let mut noc = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_clock(fixtures::now());
        noc.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        noc.set_automation(Some(view));
        let s = screen(&mut noc, 120, 30);
        let banner: Vec<&str> = s.lines().take(7).collect();
        assert!(
            banner
                .iter()
                .any(|l| l.contains("KILL SWITCH ON") && l.contains("1 APPROVAL PENDING")),
            "{s}"
        );
    }

    fn drain_of(node: &str) -> Mutation {
        Mutation::Drain {
            node: node.into(),
            options: DrainRequest {
                ignore_daemonsets: true,
                ..DrainRequest::default()
            },
        }
    }

    #[test]
    fn a_drain_shows_the_guards_plan_and_blast_radius_and_y_performs_it() {
        let mut app = automated_app();
        key(&mut app, KeyCode::Char('2'));
        let asked = shift(&mut app, 'D');
        assert_eq!(
            asked,
            Some(Command::Preview {
                cluster: "prod-a".into(),
                intent: drain_of("gpu-a-1"),
            })
        );
        assert!(
            screen(&mut app, 120, 30)
                .contains("asking the guard for the plan to drain node/gpu-a-1")
        );
        app.set_preview(
            "prod-a".into(),
            PlanStep {
                intent: drain_of("gpu-a-1"),
                summary: "drain of node gpu-a-1 would evict 3 pod(s) freeing 8 GPU(s), skip 2; blocked now by PDB serving/llama-pdb".into(),
                blast: drain_blast(),
            },
            Some(ClusterDisruption {
                nodes: 3,
                unready: 1,
                disrupted: 2,
                budget: 1,
            }),
        );
        assert_screen!("confirm_drain", screen(&mut app, 120, 30));
        assert_eq!(
            key(&mut app, KeyCode::Char('y')),
            Some(Command::Perform {
                cluster: "prod-a".into(),
                intent: drain_of("gpu-a-1"),
            })
        );
        let s = screen(&mut app, 120, 30);
        assert!(!s.contains("confirm:"), "the popup closes: {s}");
        assert!(s.contains("drain node/gpu-a-1 in prod-a…"), "{s}");
    }

    #[test]
    fn any_other_key_cancels_a_manual_action_and_a_plan_nobody_waits_for_is_dropped() {
        let mut app = automated_app();
        key(&mut app, KeyCode::Char('2'));
        let cordon = Mutation::Cordon {
            node: "gpu-a-1".into(),
        };
        assert_eq!(
            key(&mut app, KeyCode::Char('c')),
            Some(Command::Preview {
                cluster: "prod-a".into(),
                intent: cordon.clone(),
            })
        );
        let step = |intent: Mutation| PlanStep {
            summary: format!("{} {}", intent.verb(), intent.target()),
            intent,
            blast: serde_json::Value::Null,
        };
        app.set_preview("prod-a".into(), step(drain_of("gpu-a-1")), None);
        assert!(
            !screen(&mut app, 120, 30).contains("confirm:"),
            "not what was asked"
        );
        app.set_preview("prod-a".into(), step(cordon.clone()), None);
        let s = screen(&mut app, 120, 30);
        assert!(s.contains("confirm: cordon node/gpu-a-1 in prod-a"), "{s}");
        assert!(s.contains("cordon node/gpu-a-1"), "{s}");
        assert_eq!(key(&mut app, KeyCode::Char('x')), None);
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("cordon node/gpu-a-1 in prod-a: cancelled, nothing changed")
                && !s.contains("confirm:"),
            "{s}"
        );
        app.set_preview("prod-a".into(), step(cordon), None);
        assert!(
            !screen(&mut app, 120, 30).contains("confirm:"),
            "asked once, confirmed once"
        );
    }

    #[test]
    fn manual_actions_say_why_they_do_nothing() {
        let mut bare = app();
        key(&mut bare, KeyCode::Char('2'));
        assert_eq!(key(&mut bare, KeyCode::Char('c')), None);
        assert!(screen(&mut bare, 120, 30).contains("no runbook executor"));

        let mut view = automation(fixtures::now());
        view.read_only = true;
        let mut app = app();
        app.set_automation(Some(view));
        key(&mut app, KeyCode::Char('2'));
        assert_eq!(shift(&mut app, 'D'), None);
        assert!(screen(&mut app, 120, 30).contains("read-only: actions are disabled"));

        let mut app = automated_app();
        assert_eq!(key(&mut app, KeyCode::Char('c')), None);
        assert!(
            screen(&mut app, 120, 30)
                .contains("cordon: select a node in the Nodes (:nodes) or GPUs (:gpus) pane")
        );
        key(&mut app, KeyCode::Char('2'));
        assert_eq!(shift(&mut app, 'B'), None);
        assert!(
            screen(&mut app, 120, 30)
                .contains("rollback: select an endpoint in the Endpoints pane")
        );
    }

    #[test]
    fn the_gpus_pane_acts_on_the_gpus_node_and_the_endpoints_pane_rolls_back_its_deployment() {
        let mut app = automated_app();
        key(&mut app, KeyCode::Char('3'));
        key(&mut app, KeyCode::Char('/'));
        typed(&mut app, "gpu-b-1");
        key(&mut app, KeyCode::Enter);
        assert_eq!(
            key(&mut app, KeyCode::Char('u')),
            Some(Command::Preview {
                cluster: "prod-b".into(),
                intent: Mutation::Uncordon {
                    node: "gpu-b-1".into()
                },
            })
        );

        let config: crate::model::endpoint::EndpointConfig = serde_json::from_value(serde_json::json!({
            "name": "llama-chat", "url": "http://llama-chat.serving:8000", "protocol": "vllm",
            "serving": {"cluster": "prod-b", "namespace": "serving", "kind": "Deployment", "name": "llama-chat"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut snap = fixtures::fleet();
        snap.endpoints = vec![Arc::new(crate::model::endpoint::EndpointModel::new(
            &config,
            fixtures::now(),
        ))];
        app.set_snapshot(fixtures::evaluated(snap));
        key(&mut app, KeyCode::Char('4'));
        assert_eq!(
            shift(&mut app, 'B'),
            Some(Command::Preview {
                cluster: "prod-b".into(),
                intent: Mutation::Rollback {
                    namespace: "serving".into(),
                    name: "llama-chat".into(),
                    revision: None
                },
            })
        );
    }

    #[test]
    fn a_long_refused_plan_wraps_and_the_popup_still_shows_its_keys() {
        for width in [80u16, 120, 160] {
            let mut app = automated_app();
            key(&mut app, KeyCode::Char('2'));
            shift(&mut app, 'D');
            let why = "cannot delete Pods with local storage (use delete_emptydir_data to override): serving/llama-chat-2jxm48-pd546, serving/llama-chat-2jxm48-sr4w5";
            let mut blast = drain_blast();
            blast["refused"] = why.into();
            app.set_preview(
                "prod-a".into(),
                PlanStep {
                    intent: drain_of("gpu-a-1"),
                    summary: format!("drain of node gpu-a-1 would be refused: {why}"),
                    blast,
                },
                None,
            );
            let s = screen(&mut app, width, 30);
            assert!(s.contains("REFUSED (see above)"), "{s}");
            assert!(s.contains("any other key"), "at {width} columns:\n{s}");
        }
    }
}
