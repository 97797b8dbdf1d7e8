//! The cockpit's state and dispatch: the `App` (its panes, the latest snapshot, incidents and
//! automation view, the message line), the `Command`s it asks the loop to perform and the
//! `Reply`s the loop applies to it. Its rooms: `router` (performs the panes' intents, makes the
//! `ViewCtx`), `input` (modes, keys, the `:` palette), `chrome`
//! (tab bar, NOC banner, status line, help and confirm popups) and `event_loop` (the loop, its
//! `Effects`, scenario injection). Panes draw what they are given; the cockpit runs no
//! detector. May import state, pipeline, store, runbook, actions, model, config; never signals.

mod chrome;
mod event_loop;
mod input;
mod router;

use std::sync::Arc;

use chrono::Utc;

pub use chrome::{MIN_HEIGHT, MIN_WIDTH};
pub use event_loop::{Effects, run};
use input::Mode;

use super::keymap::{Action, Keymap, PaneId};
use super::logs::{LogsView, ViewOutcome};
use super::noise::NoiseHistory;
use super::pane::{AutomationView, Pane};
use super::theme::Theme;
use super::yaml::YamlView;
use crate::actions::Mutation;
use crate::model::Snapshot;
use crate::model::incident::{Entry, Incident};
use crate::model::signal::Signal;
use crate::pipeline::Evaluated;
use crate::runbook::executor::PlanStep;
use crate::runbook::guard::ClusterDisruption;
use crate::sources::logs::{DEFAULT_MAX_LINES, LogRequest, LogStream, LogTarget, ObjectRef};

/// The panes NOC mode rotates through unless `[noc] panes` says otherwise.
const NOC_PANES: [PaneId; 7] = [
    PaneId::Overview,
    PaneId::Signals,
    PaneId::Incidents,
    PaneId::Runbooks,
    PaneId::Endpoints,
    PaneId::Gpus,
    PaneId::Nodes,
];

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
    /// An attached cockpit: read one GPU's readings (by uuid) from the daemon, for the GPUs
    /// pane's detail chart.
    LoadGpuHistory(String),
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
    /// Start streaming a pod's log for the logs view; `App::attach_logs` takes the stream.
    OpenLogs(LogRequest),
    /// Read an object for the YAML view; `Reply::Object` brings it.
    FetchObject(ObjectRef),
    /// Write the logs view's lines to `file` in the current directory.
    SaveLogs {
        file: String,
        text: String,
    },
}

impl Command {
    /// Whether the logs or YAML view asks for it (the loop's `InspectLink` performs it).
    pub fn is_inspect(&self) -> bool {
        matches!(
            self,
            Command::OpenLogs(_) | Command::FetchObject(_) | Command::SaveLogs { .. }
        )
    }

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

/// What the loop's links to the store and the executor answer: the loop applies it to the app
/// (`App::apply`); the links never hold the app.
#[derive(Debug)]
pub enum Reply {
    /// What to tell the user.
    Say(String),
    /// The store's incident list.
    Incidents(Vec<Incident>),
    /// An incident's timeline, the store's answer to `Command::LoadTimeline`.
    Timeline(u64, Vec<Entry>),
    /// One GPU's utilisation readings, the daemon's answer to `Command::LoadGpuHistory`.
    GpuHistory {
        uuid: String,
        window_s: u64,
        samples: Vec<crate::model::Sample>,
    },
    /// The executor's runbooks, runs and approvals; `None` without an executor.
    Automation(Option<AutomationView>),
    /// The guard's plan of a person's action, for its confirmation.
    Preview {
        cluster: String,
        step: PlanStep,
        disruption: Option<ClusterDisruption>,
    },
    /// An object read for the YAML view, or what the API server said instead.
    Object(ObjectRef, Result<serde_json::Value, String>),
    /// The stream started for the logs view (`Command::OpenLogs`).
    Logs(LogStream),
    /// Why the logs or YAML view's read could not start.
    InspectFailed(String),
}

/// A view over the whole pane, opened on one object from any pane.
#[derive(Debug)]
enum Inspect {
    Logs(Box<LogsView>),
    Yaml(Box<YamlView>),
}

/// The Incidents detail's reminder of its keys, from the bindings: `n note · a acknowledge …`.
pub(super) fn incident_keys_hint(keymap: &Keymap) -> String {
    keys_hint(
        keymap,
        &[
            (Action::Note, "note"),
            (Action::Acknowledge, "acknowledge"),
            (Action::Resolve, "resolve"),
            (Action::Export, "export"),
            (Action::Back, "back"),
        ],
    )
}

/// The Runbooks pane's reminder of its keys, from the bindings: `y approve · N deny · K …`.
pub(super) fn runbook_keys_hint(keymap: &Keymap) -> String {
    keys_hint(
        keymap,
        &[
            (Action::Approve, "approve"),
            (Action::Deny, "deny"),
            (Action::KillSwitch, "kill switch"),
        ],
    )
}

/// `KEY what` for each action's first binding, joined by ` · `; an unbound action is left out.
fn keys_hint(keymap: &Keymap, actions: &[(Action, &str)]) -> String {
    actions
        .iter()
        .filter_map(|&(action, what)| {
            let key = keymap.keys_for(action).into_iter().next()?;
            Some(format!("{key} {what}"))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The pane registry: every pane, once, in tab order, with the `PaneId` keys and the palette
/// name it, as `tui::registered_panes` lists them.
pub(super) struct Panes {
    registered: Vec<(PaneId, Box<dyn Pane>)>,
}

impl Panes {
    fn new(keymap: &Keymap) -> Self {
        let registered = super::registered_panes(keymap);
        Self { registered }
    }

    /// The index of `id`'s pane; an unregistered id (a test guards against one) shows the first.
    fn index(&self, id: PaneId) -> usize {
        self.registered
            .iter()
            .position(|(p, _)| *p == id)
            .unwrap_or(0)
    }

    pub(super) fn get(&self, id: PaneId) -> &dyn Pane {
        self.registered[self.index(id)].1.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: PaneId) -> &mut dyn Pane {
        let i = self.index(id);
        self.registered[i].1.as_mut()
    }

    /// Every pane, in tab order.
    pub(super) fn all_mut(&mut self) -> impl Iterator<Item = &mut (dyn Pane + 'static)> {
        self.registered.iter_mut().map(|(_, pane)| pane.as_mut())
    }

    /// The incident timeline a pane asks the store for (the Incidents pane's open one).
    pub(super) fn take_timeline_request(&mut self) -> Option<u64> {
        self.all_mut().find_map(|pane| pane.take_timeline_request())
    }
}

/// How often an attached cockpit reads the open GPU's readings from its daemon again.
const GPU_HISTORY_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

pub struct App {
    pub pane: PaneId,
    panes: Panes,
    keymap: Keymap,
    theme: Theme,
    mode: Mode,
    cluster: Option<String>,
    /// `:ns NAME`: the namespace the namespaced panes show; `None` shows all.
    namespace: Option<String>,
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
    /// The pipeline's raised and opened counters over the last hour, for the Overview.
    noise: NoiseHistory,
    /// The logs or YAML view, over the current pane while open.
    inspect: Option<Inspect>,
    /// The newest lines the logs view keeps (`[pod_logs] max_lines`).
    log_lines: usize,
    /// The NOC wall's cache, heat history and flash.
    wall: super::wall::WallView,
    /// `[noc]`: the panes NOC mode rotates through and how long each stays up.
    noc_panes: Vec<PaneId>,
    noc_period: std::time::Duration,
    /// An attached cockpit's link to its daemon (`fleetdeck attach`); `None` on a local
    /// pipeline.
    link: Option<super::attach::LinkState>,
    /// An attached cockpit that lists the clusters' pods itself (it has a kubeconfig): its
    /// Pods pane is a local cockpit's.
    lists_cluster_pods: bool,
    /// The GPU whose readings were last asked of the daemon, and when.
    gpu_history_asked: Option<(String, std::time::Instant)>,
}

impl App {
    pub fn new(theme: Theme, keymap: Keymap, simulated: bool, noc: bool) -> Self {
        Self {
            pane: PaneId::Overview,
            panes: Panes::new(&keymap),
            keymap,
            theme,
            mode: Mode::Normal,
            cluster: None,
            namespace: None,
            snapshot: Arc::new(Snapshot::default()),
            incidents: Arc::new(Vec::new()),
            automation: None,
            awaiting_plan: None,
            simulated,
            noc,
            message: None,
            quit: false,
            fixed_now: None,
            // The pipeline is started with the cockpit: its counters were zero about now.
            noise: NoiseHistory::starting(Utc::now()),
            inspect: None,
            log_lines: DEFAULT_MAX_LINES,
            wall: super::wall::WallView::default(),
            noc_panes: NOC_PANES.to_vec(),
            noc_period: std::time::Duration::from_secs(10),
            link: None,
            lists_cluster_pods: false,
            gpu_history_asked: None,
        }
    }

    /// Where an attached cockpit's link to its daemon stands; a daemon that says its fleet is
    /// simulated marks the screen SIMULATED FLEET.
    pub fn set_link(&mut self, link: super::attach::LinkState) {
        if let super::attach::LinkState::Live {
            simulated, daemon, ..
        } = &link
        {
            self.simulated = *simulated;
            // What the daemon does not stream and this process does not read itself: with a
            // kubeconfig the pods are listed here, so nothing is absent.
            let absent_from = (!self.lists_cluster_pods).then_some(daemon.as_str());
            for pane in self.panes.all_mut() {
                pane.set_attached(absent_from);
            }
        }
        self.link = Some(link);
    }

    /// `[noc]`: rotates through `panes` (by name), each up for `period`; an unknown name is
    /// an error that lists the panes there are.
    pub fn with_noc_rotation(
        mut self,
        panes: &[String],
        period: std::time::Duration,
    ) -> Result<Self, String> {
        let mut rotation = Vec::new();
        for name in panes {
            let Some(pane) = PaneId::ALL.iter().find(|p| p.name() == name.as_str()) else {
                let known: Vec<&str> = PaneId::ALL.iter().map(|p| p.name()).collect();
                return Err(format!(
                    "[noc] panes: no pane \"{name}\"; the panes are {}",
                    known.join(", ")
                ));
            };
            rotation.push(*pane);
        }
        if let Some(first) = rotation.first() {
            self.pane = *first;
            self.noc_panes = rotation;
        }
        self.noc_period = period;
        Ok(self)
    }

    /// How long each pane stays up in NOC mode.
    pub fn noc_period(&self) -> std::time::Duration {
        self.noc_period
    }

    /// Keeps `lines` of a container's log in the logs view (`[pod_logs] max_lines`).
    /// An attached cockpit with a GPU's detail view open asks its daemon for that GPU's
    /// readings (at once when the GPU changes, then every `GPU_HISTORY_EVERY`); a local
    /// cockpit has them in its snapshot.
    pub fn gpu_history_command(&mut self) -> Option<Command> {
        if self.link.is_none() || self.pane != PaneId::Gpus {
            return None;
        }
        let uuid = self
            .panes
            .get_mut(PaneId::Gpus)
            .open_gpu_uuid(&self.snapshot)?;
        if let Some((asked, at)) = &self.gpu_history_asked
            && *asked == uuid
            && at.elapsed() < GPU_HISTORY_EVERY
        {
            return None;
        }
        self.gpu_history_asked = Some((uuid.clone(), std::time::Instant::now()));
        Some(Command::LoadGpuHistory(uuid))
    }

    /// An attached cockpit that lists the clusters' pods with the person's kubeconfig.
    pub fn listing_cluster_pods(mut self, on: bool) -> Self {
        self.lists_cluster_pods = on;
        self
    }

    pub fn with_log_lines(mut self, lines: usize) -> Self {
        self.log_lines = lines;
        self
    }

    /// Opens the logs view on `target` over the current pane; the loop performs the answer
    /// (it starts the stream and hands it to `attach_logs`).
    pub fn open_logs(&mut self, target: LogTarget) -> Command {
        let view = LogsView::new(target, self.log_lines);
        let request = view.request();
        self.inspect = Some(Inspect::Logs(Box::new(view)));
        Command::OpenLogs(request)
    }

    /// Opens the YAML view on `object`; the loop reads it and answers `Reply::Object`.
    pub fn open_yaml(&mut self, object: ObjectRef) -> Command {
        self.inspect = Some(Inspect::Yaml(Box::new(YamlView::new(object.clone()))));
        Command::FetchObject(object)
    }

    /// The stream the loop started for the logs view (dropped, and so stopped, if the view
    /// was closed or asks for another read by now).
    pub fn attach_logs(&mut self, stream: LogStream) {
        if let Some(Inspect::Logs(v)) = &mut self.inspect {
            v.attach(stream);
        }
    }

    /// The loop could not start what the open view asked for.
    pub fn inspect_failed(&mut self, why: String) {
        match &mut self.inspect {
            Some(Inspect::Logs(v)) => v.fail(why),
            Some(Inspect::Yaml(v)) => v.set(Err(why)),
            None => {}
        }
    }

    /// Takes the lines the logs view's stream read; says whether the screen changed.
    pub fn pull_logs(&mut self) -> bool {
        match &mut self.inspect {
            Some(Inspect::Logs(v)) => v.pull(),
            _ => false,
        }
    }

    /// The newest lines the logs view keeps.
    pub fn log_lines(&self) -> usize {
        self.log_lines
    }

    /// Whether a logs or YAML view is open.
    pub fn inspecting(&self) -> bool {
        self.inspect.is_some()
    }

    /// Draws and evaluates as if it were always `now` (for reproducible screens in tests).
    pub fn with_clock(mut self, now: chrono::DateTime<Utc>) -> Self {
        self.fixed_now = Some(now);
        self.noise = NoiseHistory::starting(now);
        self
    }

    fn now(&self) -> chrono::DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    /// A new evaluated snapshot from the pipeline (its signals filled in; the cockpit runs no
    /// detector).
    pub fn set_snapshot(&mut self, snap: Arc<Snapshot>) {
        // The last reference to a fleet's picture is freed off the UI thread (a GPU round
        // replaces tens of thousands of records).
        super::reclaim::later(std::mem::replace(&mut self.snapshot, snap));
    }

    /// A new evaluation from the pipeline: its snapshot, and its counters of signals raised and
    /// incidents opened, sampled for the Overview's noise rate.
    pub fn set_evaluated(&mut self, evaluated: &Evaluated) {
        self.set_snapshot(evaluated.snapshot.clone());
        let at = evaluated.at.unwrap_or_else(|| self.now());
        self.noise.record(
            at,
            &evaluated.raised_total,
            evaluated.incidents_opened_total,
        );
        let rate = self.noise.rate();
        for pane in self.panes.all_mut() {
            pane.set_noise(rate);
        }
    }

    /// The latest snapshot with its signals evaluated: what the executor is given.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.clone()
    }

    /// The executor's runbooks, runs and approvals, read by the loop.
    pub fn set_automation(&mut self, view: Option<AutomationView>) {
        let view = view.map(Arc::new);
        for pane in self.panes.all_mut() {
            pane.set_automation(view.clone());
        }
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
        let incidents = self.incidents.clone();
        self.with_panes(|panes, _, ctx| {
            for pane in panes.all_mut() {
                pane.set_incidents(incidents.clone(), ctx);
            }
        });
        self.panes
            .take_timeline_request()
            .map(Command::LoadTimeline)
    }

    /// The store's answer to `Command::LoadTimeline`.
    pub fn set_timeline(&mut self, id: u64, entries: Vec<Entry>) {
        self.panes
            .get_mut(PaneId::Incidents)
            .set_timeline(id, entries);
    }

    /// Applies a link's reply. Answers the command it leads to: a new incident list asks for
    /// the open timeline again when that incident has new entries.
    pub fn apply(&mut self, reply: Reply) -> Option<Command> {
        match reply {
            Reply::Say(message) => self.say(message),
            Reply::Incidents(list) => return self.set_incidents(list),
            Reply::Timeline(id, entries) => self.set_timeline(id, entries),
            Reply::GpuHistory {
                uuid,
                window_s,
                samples,
            } => self
                .panes
                .get_mut(PaneId::Gpus)
                .set_gpu_history(&uuid, window_s, samples),
            Reply::Automation(view) => self.set_automation(view),
            Reply::Preview {
                cluster,
                step,
                disruption,
            } => self.set_preview(cluster, step, disruption),
            Reply::Logs(stream) => self.attach_logs(stream),
            Reply::InspectFailed(why) => self.inspect_failed(why),
            Reply::Object(object, result) => {
                if let Some(Inspect::Yaml(v)) = &mut self.inspect
                    && v.object == object
                {
                    v.set(result);
                }
            }
        }
        None
    }

    /// A key while a logs or YAML view is open: `None` when the view did not use it.
    fn inspect_key(
        &mut self,
        key: &ratatui::crossterm::event::KeyEvent,
    ) -> Option<Option<Command>> {
        let action = self.keymap.action(key);
        let now = self.now();
        let outcome = match self.inspect.as_mut()? {
            Inspect::Logs(v) => v.handle_key(key, action, now),
            Inspect::Yaml(v) => v.handle_key(key, action),
        };
        match outcome {
            // Quitting, help, the palette and the kill switch work over the view; going to a
            // pane closes it; the panes' own keys would act on a selection out of sight.
            ViewOutcome::Ignored => match action {
                Some(Action::Quit | Action::Help | Action::Palette | Action::KillSwitch) => None,
                Some(Action::GoTo(_) | Action::NextPane | Action::PrevPane) => {
                    self.inspect = None;
                    None
                }
                _ => Some(None),
            },
            ViewOutcome::Changed => Some(None),
            ViewOutcome::Close => {
                self.inspect = None;
                Some(None)
            }
            ViewOutcome::Reopen(request) => Some(Some(Command::OpenLogs(request))),
            ViewOutcome::Save { file, text } => Some(Some(Command::SaveLogs { file, text })),
        }
    }

    /// The mouse wheel over a logs or YAML view.
    fn inspect_scroll(&mut self, action: Action) {
        let key = ratatui::crossterm::event::KeyEvent::new(
            ratatui::crossterm::event::KeyCode::Null,
            ratatui::crossterm::event::KeyModifiers::NONE,
        );
        let now = self.now();
        match &mut self.inspect {
            Some(Inspect::Logs(v)) => {
                v.handle_key(&key, Some(action), now);
            }
            Some(Inspect::Yaml(v)) => {
                v.handle_key(&key, Some(action));
            }
            None => {}
        }
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
        let n = self.noc_panes.len().max(1);
        let i = self
            .noc_panes
            .iter()
            .position(|p| *p == self.pane)
            .map_or(0, |i| (i + 1) % n);
        if let Some(pane) = self.noc_panes.get(i) {
            self.pane = *pane;
        }
    }

    fn set_filter(&mut self, f: &str) {
        self.panes.get_mut(self.pane).set_filter(f);
    }
}

/// The cockpit as the tests of the app and its links drive it.
#[cfg(test)]
pub(crate) mod testing {
    use super::super::nodes::fixtures;
    use super::*;

    /// Default theme and keys, the clock at `fixtures::now()`, showing the evaluated fleet.
    pub fn app() -> App {
        let mut app = App::new(Theme::default_theme(), Keymap::default(), true, false)
            .with_clock(fixtures::now());
        app.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        app
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::incidents::fixtures::{incidents, timeline};
    use super::super::nodes::fixtures;
    use super::super::runbooks::fixtures::{automation, drain_blast};
    use super::*;
    use crate::actions::DrainRequest;

    /// [`testing::app`] with the incident fixtures open.
    fn app() -> App {
        let mut app = testing::app();
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
    fn every_pane_id_is_registered_once_in_tab_order() {
        let panes = Panes::new(&Keymap::default());
        let ids: Vec<PaneId> = panes.registered.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, PaneId::ALL.to_vec());
    }

    #[test]
    fn every_pane_renders_at_120_by_30() {
        let mut app = app();
        for (c, pane) in "1234567890E".chars().zip(PaneId::ALL.iter().copied()) {
            key(&mut app, KeyCode::Char(c));
            assert_eq!(app.pane, pane);
            assert_screen!(format!("pane_{}", pane.name()), screen(&mut app, 120, 30));
        }
    }

    /// The fixture fleet with the names a real fleet has: GKE node names that differ only at
    /// their end, pods named from their ReplicaSets, repeated events, a cost report and runs.
    fn real_names_app() -> App {
        let rename = |name: &str| -> String {
            match name {
                "gpu-a-1" => "gke-sim-a-h100-pool-0041".into(),
                "gpu-a-2" => "gke-sim-a-h100-pool-0042".into(),
                "spot-a-3" => "gke-sim-a-a10g-spot-pool-0003".into(),
                "gpu-b-1" => "gke-sim-b-h100-pool-0042".into(),
                other => other.into(),
            }
        };
        let rename_all = |text: &str| -> String {
            ["gpu-a-1", "gpu-a-2", "spot-a-3", "gpu-b-1"]
                .iter()
                .fold(text.to_string(), |t, n| t.replace(n, &rename(n)))
        };
        let mut snap = fixtures::fleet();
        for c in &mut snap.clusters {
            let c = Arc::make_mut(c);
            for n in &mut c.nodes {
                n.name = rename(&n.name);
            }
        }
        for g in Arc::make_mut(&mut snap.gpus) {
            g.node = rename(&g.node);
            g.uuid = rename_all(&g.uuid);
        }
        snap.history = Arc::new(
            snap.history
                .iter()
                .map(|(k, v)| (rename_all(k), v.clone()))
                .collect(),
        );
        let node = "gke-sim-b-h100-pool-0042";
        let mut crash =
            super::super::pods::fixtures::pod("batch", "tokenizer-worker-7f9c5d8b4-x2kqp", node);
        crash.waiting = Some("CrashLoopBackOff".into());
        crash.restarts = 12;
        crash.ready = false;
        crash.owner = Some(Arc::from("Deployment/tokenizer-worker"));
        let pods = vec![
            super::super::pods::fixtures::pod(
                "serving",
                "llama-3-70b-instruct-vllm-5d8f9c7b6-q7x2m",
                node,
            ),
            super::super::pods::fixtures::pod(
                "serving",
                "llama-3-70b-instruct-vllm-5d8f9c7b6-zk4pn",
                node,
            ),
            crash,
        ];
        let b = Arc::make_mut(&mut snap.clusters[1]);
        b.pods = Arc::new(pods.into_iter().map(Arc::new).collect());
        b.deployments = vec![crate::model::DeploymentModel {
            namespace: "batch".into(),
            name: "tokenizer-worker".into(),
            revision: Some(3),
            replicas: 1,
            ready: 0,
            updated: 1,
            available: 0,
            rollout: crate::model::RolloutState::Progressing,
            images: vec!["registry.example.com/batch/tokenizer:2.4.0".into()],
            registered_model: None,
        }];
        b.crash_looping = vec![crate::model::CrashLoopingPod {
            namespace: "batch".into(),
            name: "tokenizer-worker-7f9c5d8b4-x2kqp".into(),
            node: Some(node.into()),
            restarts: 12,
            reason: "CrashLoopBackOff".into(),
            last_termination: Some("Error".into()),
        }];
        let backoff = |mins: i64| {
            crate::model::ClusterEvent {
            warning: true,
            namespace: "batch".into(),
            object: "pod/tokenizer-worker-7f9c5d8b4-x2kqp".into(),
            reason: "BackOff".into(),
            message: "Back-off restarting failed container tokenizer in pod tokenizer-worker-7f9c5d8b4-x2kqp_batch".into(),
            count: 1,
            last_seen: Some(fixtures::now() - chrono::Duration::minutes(mins)),
        }
        };
        b.warnings = vec![backoff(1), backoff(3), backoff(6)];
        snap.cost = Some(Arc::new(crate::tui::wall::tests::report()));
        snap.cost_source = Some(crate::model::cost::CostSourceStatus {
            target: "http://opencost.opencost.svc.cluster.local:9003".into(),
            error: None,
            last_success: Some(fixtures::now() - chrono::Duration::seconds(40)),
            checked_at: fixtures::now(),
            interval: std::time::Duration::from_secs(300),
        });
        let mut app = App::new(Theme::default_theme(), Keymap::default(), true, false)
            .with_clock(fixtures::now());
        app.set_snapshot(fixtures::evaluated(snap));
        let incidents = incidents(fixtures::now())
            .into_iter()
            .map(|mut i| {
                i.title = rename_all(&i.title);
                i.group = rename_all(&i.group);
                i.subject.node = i.subject.node.as_deref().map(rename);
                i.affected = i.affected.iter().map(|a| rename_all(a)).collect();
                i.active = i.active.iter().map(|a| rename_all(a)).collect();
                i
            })
            .collect();
        assert_eq!(app.set_incidents(incidents), None);
        let mut automation = automation(fixtures::now());
        for run in &mut automation.runs {
            run.target = rename_all(&run.target);
        }
        automation.pending.clear();
        app.set_automation(Some(automation));
        app
    }

    #[test]
    fn every_pane_renders_real_length_names_at_100_by_30_and_200_by_50() {
        let mut app = real_names_app();
        for (c, pane) in "1234567890E".chars().zip(PaneId::ALL.iter().copied()) {
            key(&mut app, KeyCode::Char(c));
            assert_eq!(app.pane, pane);
            for (w, h) in [(100, 30), (200, 50)] {
                let s = screen(&mut app, w, h);
                assert!(
                    !s.contains("gke-sim-b-h100-poo "),
                    "{} at {w}×{h} cuts a node name to its shared start:\n{s}",
                    pane.name()
                );
                assert_screen!(format!("real_names_{}_{w}x{h}", pane.name()), s);
            }
        }
        // The help's descriptions are whole at both sizes.
        key(&mut app, KeyCode::Char('?'));
        for (w, h) in [(100, 30), (200, 50)] {
            assert_screen!(format!("help_{w}x{h}"), screen(&mut app, w, h));
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

    fn noc_wall_app() -> App {
        let mut app = App::new(Theme::default_theme(), Keymap::default(), true, true)
            .with_clock(fixtures::now());
        let mut snap = fixtures::fleet();
        snap.cost = Some(Arc::new(crate::tui::wall::tests::report()));
        snap.cost_source = Some(crate::model::cost::CostSourceStatus {
            target: "http://opencost:9003".into(),
            error: None,
            last_success: Some(fixtures::now() - chrono::Duration::seconds(40)),
            checked_at: fixtures::now(),
            interval: std::time::Duration::from_secs(300),
        });
        app.set_snapshot(fixtures::evaluated(snap));
        assert_eq!(app.set_incidents(incidents(fixtures::now())), None);
        app
    }

    #[test]
    fn the_noc_wall_renders_at_200_by_50_and_120_by_30() {
        let mut app = noc_wall_app();
        assert_eq!(app.pane, PaneId::Overview);
        assert_screen!("noc_wall_200x50", screen(&mut app, 200, 50));
        assert_screen!("noc_wall_120x30", screen(&mut app, 120, 30));
    }

    #[test]
    fn the_overview_is_the_wall_on_a_large_terminal_only() {
        let mut app = app();
        assert!(screen(&mut app, 200, 50).contains("Fleet map"));
        assert!(!screen(&mut app, 120, 30).contains("Fleet map"));
    }

    #[test]
    fn noc_rotation_follows_the_configured_panes_and_refuses_an_unknown_one() {
        let app = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_noc_rotation(
                &["signals".to_string(), "cost".to_string()],
                std::time::Duration::from_secs(30),
            );
        let Ok(mut app) = app else {
            panic!("known panes are accepted")
        };
        assert_eq!(app.pane, PaneId::Signals);
        app.rotate();
        assert_eq!(app.pane, PaneId::Cost);
        app.rotate();
        assert_eq!(app.pane, PaneId::Signals);
        assert_eq!(app.noc_period(), std::time::Duration::from_secs(30));
        let err = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_noc_rotation(&["wall".to_string()], std::time::Duration::from_secs(5))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("no pane \"wall\"") && err.contains("overview"),
            "{err}"
        );
    }

    #[test]
    fn noc_mode_puts_the_worst_first_on_a_banner() {
        let mut app = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_clock(fixtures::now());
        // The banner is above every pane but the Overview's, which is the wall.
        app.pane = PaneId::Signals;
        app.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        let s = screen(&mut app, 120, 30);
        // gpu-a-2's XID and ECC signals are one GPU fault: two critical groups.
        assert!(s.contains("2 CRITICAL") && s.contains("SLO BURNING"), "{s}");
        assert!(
            s.contains("NotReady"),
            "the worst signal is on the banner: {s}"
        );
    }

    /// The fleet fixture with `gpus` XID-79 GPUs on gpu-a-1, evaluated by the detectors.
    fn xid_storm(gpus: u32) -> Arc<Snapshot> {
        let mut snap = fixtures::fleet();
        let mut all: Vec<_> = (0..gpus)
            .map(|i| {
                let mut g = fixtures::gpu("prod-a", "gpu-a-1", i, Some(50.0));
                g.xid_last = Some(79);
                g
            })
            .collect();
        all.extend(snap.gpus.iter().filter(|g| g.node != "gpu-a-1").cloned());
        snap.gpus = Arc::new(all);
        fixtures::evaluated(snap)
    }

    #[test]
    fn the_noc_banner_lists_and_counts_incident_groups_not_their_members() {
        let mut noc = App::new(Theme::default_theme(), Keymap::default(), false, true)
            .with_clock(fixtures::now());
        // The banner is above every pane but the Overview's, which is the wall.
        noc.pane = PaneId::Signals;
        let snap = xid_storm(8);
        assert_eq!(
            snap.incident_signals()
                .filter(|s| s.severity == crate::model::signal::Severity::Critical)
                .count(),
            11,
            "8 XIDs on gpu-a-1; XID, ECC (one GPU fault) and NotReady on gpu-a-2"
        );
        noc.set_snapshot(snap);
        let s = screen(&mut noc, 120, 30);
        let banner: Vec<&str> = s.lines().take(7).collect();
        assert!(
            banner.iter().any(|l| l.contains("3 CRITICAL")),
            "one count per group: {s}"
        );
        assert!(
            banner
                .iter()
                .any(|l| l.contains("CRITICAL") && l.contains("gpu.xid gpu-a-1 ×8 · XID 79")),
            "{s}"
        );
        assert_eq!(
            banner
                .iter()
                .filter(|l| l.contains("XID 79 on gpu-a-1"))
                .count(),
            1,
            "the group is one line: {s}"
        );
    }

    #[test]
    fn an_expanded_signal_group_renders_at_120_by_30() {
        let mut app = app();
        app.set_snapshot(xid_storm(8));
        key(&mut app, KeyCode::Char('6'));
        assert_eq!(app.pane, PaneId::Signals);
        key(&mut app, KeyCode::Enter);
        assert_screen!("signals_group_expanded", screen(&mut app, 120, 30));
    }

    #[test]
    fn the_overview_shows_the_noise_of_the_evaluations_since_the_cockpit_started() {
        use crate::model::signal::Severity;
        let mut app = app();
        let evaluated = |minutes: i64, critical: u64, warning: u64, opened: u64| Evaluated {
            snapshot: fixtures::evaluated(fixtures::fleet()),
            at: Some(fixtures::now() + chrono::Duration::minutes(minutes)),
            raised_total: [
                (("gpu.xid".to_string(), Severity::Critical), critical),
                (("node.not_ready".to_string(), Severity::Warning), warning),
            ]
            .into_iter()
            .collect(),
            incidents_opened_total: opened,
            ..Evaluated::default()
        };
        app.set_evaluated(&evaluated(12, 3, 0, 1));
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains(
                "in the last 12m: 3 raised (3 critical · 0 warning · 0 info) · 1 incident opened"
            ),
            "{s}"
        );
        app.set_evaluated(&evaluated(70, 10, 6, 4));
        app.set_evaluated(&evaluated(130, 12, 9, 5));
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains(
                "5 signals raised/h (2 critical · 3 warning · 0 info) · 1 incident opened/h"
            ),
            "the last hour only: {s}"
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
        // The banner is above every pane but the Overview's, which is the wall.
        noc.pane = PaneId::Signals;
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
            "pod: delete it (plan first, asks y/n)",
            "deployment: rollout restart (asks y/n)",
            "deployment: scale (asks the replicas, then y/n)",
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

    /// The fleet with one crash-looping pod as the only signal.
    fn crash_looping_app() -> App {
        let mut app = app();
        let mut snap = fixtures::fleet();
        snap.signals = vec![Signal {
            kind: "pod.crash_loop".into(),
            severity: crate::model::signal::Severity::Warning,
            subject: crate::model::signal::Subject {
                cluster: "prod-a".into(),
                namespace: Some("batch".into()),
                object: Some("pod/tokenizer-worker-7d9f-x2x".into()),
                ..Default::default()
            },
            summary: "pod batch/tokenizer-worker-7d9f-x2x restarted 7 times".into(),
            evidence: Default::default(),
            action: None,
            first_seen: fixtures::now(),
            dedup_key: "pod.crash_loop/prod-a/batch/tokenizer-worker".into(),
        }];
        app.set_snapshot(Arc::new(snap));
        app
    }

    #[test]
    fn enter_on_a_pod_signals_detail_opens_the_pod_in_the_pods_pane() {
        let mut app = crash_looping_app();
        key(&mut app, KeyCode::Char('6'));
        assert_eq!(app.pane, PaneId::Signals);
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.pane, PaneId::Pods);
        let s = screen(&mut app, 120, 30);
        assert!(s.contains("tokenizer-worker-7d9f-x2x"), "{s}");
    }

    #[test]
    fn l_and_shift_y_on_a_pod_signal_open_its_logs_and_yaml_and_esc_closes_them() {
        let mut app = crash_looping_app();
        assert_eq!(key(&mut app, KeyCode::Char('l')), None);
        assert!(screen(&mut app, 120, 30).contains("logs: select a pod in the Pods pane"));
        key(&mut app, KeyCode::Char('6'));
        let target = LogTarget {
            cluster: "prod-a".into(),
            namespace: "batch".into(),
            pod: "tokenizer-worker-7d9f-x2x".into(),
            container: None,
        };
        let Some(Command::OpenLogs(request)) = key(&mut app, KeyCode::Char('l')) else {
            panic!("l asks the loop to stream the pod's log");
        };
        assert_eq!(request.target, target);
        assert!(request.follow && !request.previous);
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("logs batch/tokenizer-worker-7d9f-x2x @ prod-a"),
            "{s}"
        );
        assert!(s.contains("connecting…"), "{s}");
        // The view's own keys come first: p asks for the previous run.
        let Some(Command::OpenLogs(previous)) = key(&mut app, KeyCode::Char('p')) else {
            panic!("p reads the previous run");
        };
        assert!(previous.previous);
        app.inspect_failed("404 NotFound: pods \"tokenizer-worker-7d9f-x2x\" not found".into());
        assert!(screen(&mut app, 120, 30).contains("404 NotFound"));
        // A pane's own key does nothing to a selection out of sight.
        assert_eq!(shift(&mut app, 'D'), None);
        assert!(app.inspecting());
        assert_eq!(key(&mut app, KeyCode::Esc), None);
        assert!(!app.inspecting());
        assert!(screen(&mut app, 120, 30).contains("Signals"));

        let Some(Command::FetchObject(object)) = shift(&mut app, 'Y') else {
            panic!("Y asks the loop to read the pod");
        };
        assert_eq!(
            (
                object.api_version.as_str(),
                object.kind.as_str(),
                object.name.as_str()
            ),
            ("v1", "Pod", "tokenizer-worker-7d9f-x2x")
        );
        app.apply(Reply::Object(
            object,
            Ok(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tokenizer-worker-7d9f-x2x", "managedFields": [{"manager": "kubelet"}]}})),
        ));
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("kind: Pod") && !s.contains("manager: kubelet"),
            "{s}"
        );
        key(&mut app, KeyCode::Char('m'));
        assert!(screen(&mut app, 120, 30).contains("manager: kubelet"));
        // Going to another pane closes the view.
        key(&mut app, KeyCode::Char('2'));
        assert!(!app.inspecting());
        assert_eq!(app.pane, PaneId::Nodes);
    }

    #[test]
    fn the_palette_opens_a_pods_logs_in_the_ctx_cluster() {
        let mut app = app();
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "logs batch/tokenizer-worker-7d9f-x2x");
        assert_eq!(key(&mut app, KeyCode::Enter), None);
        assert!(screen(&mut app, 120, 30).contains("choose one with :ctx NAME first"));
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "ctx prod-a");
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Char(':'));
        typed(&mut app, "logs batch/tokenizer-worker-7d9f-x2x tokenizer");
        let Some(Command::OpenLogs(request)) = key(&mut app, KeyCode::Enter) else {
            panic!(":logs asks the loop to stream the pod's log");
        };
        assert_eq!(
            request.target,
            LogTarget {
                cluster: "prod-a".into(),
                namespace: "batch".into(),
                pod: "tokenizer-worker-7d9f-x2x".into(),
                container: Some("tokenizer".into()),
            }
        );
        assert!(app.inspecting());
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

    /// Shows the plan `summary` of `intent` on `cluster`, then checks the popup asks to confirm
    /// it and that `y` performs exactly that intent.
    fn confirm_performs(app: &mut App, cluster: &str, intent: Mutation, summary: &str) {
        app.set_preview(
            cluster.to_string(),
            PlanStep {
                intent: intent.clone(),
                summary: summary.into(),
                blast: serde_json::Value::Null,
            },
            None,
        );
        let s = screen(app, 120, 30);
        assert!(
            s.contains(&format!("confirm: {summary} in {cluster}")),
            "{s}"
        );
        assert_eq!(
            key(app, KeyCode::Char('y')),
            Some(Command::Perform {
                cluster: cluster.to_string(),
                intent,
            })
        );
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
                .contains("rollback: select an endpoint (:endpoints) or a Deployment")
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
        // M: the registered model instead, once it is known; before, it says how to name one.
        assert_eq!(shift(&mut app, 'M'), None);
        assert!(
            screen(&mut app, 120, 30).contains("names no registered model"),
            "{}",
            screen(&mut app, 120, 30)
        );
        let mut snap = (*app.snapshot()).clone();
        snap.models = vec![Arc::new(crate::model::registry::RegisteredModelView {
            endpoint: "llama-chat".into(),
            model: "llama-chat".into(),
            alias: "champion".into(),
            origin: crate::model::registry::RegistryRefOrigin::Config,
            version: Some(3),
            versions: Vec::new(),
            history: Vec::new(),
            fetched_at: Some(fixtures::now()),
            error: None,
        })];
        app.set_snapshot(Arc::new(snap));
        let Some(Command::Preview { cluster, intent }) = shift(&mut app, 'M') else {
            panic!("M previews a model rollback");
        };
        assert_eq!(cluster, "prod-b", "the serving object's cluster");
        assert_eq!(intent.target(), "registeredmodel/llama-chat@champion");
        assert!(
            matches!(intent, Mutation::RollbackModel(r) if r.serving.is_some() && r.to_version.is_none())
        );
    }

    #[test]
    fn the_workloads_pane_rolls_back_and_restarts_the_selected_deployment_and_read_only_refuses() {
        let mut app = automated_app();
        let snap = fixtures::fleet_with_web(2);
        let cluster = snap.clusters[0].name.clone();
        app.set_snapshot(fixtures::evaluated(snap));
        key(&mut app, KeyCode::Char('0'));
        assert_eq!(app.pane, PaneId::Workloads);
        assert_eq!(
            shift(&mut app, 'B'),
            Some(Command::Preview {
                cluster: cluster.clone(),
                intent: Mutation::Rollback {
                    namespace: "serving".into(),
                    name: "web".into(),
                    revision: None
                },
            })
        );
        assert_eq!(
            key(&mut app, KeyCode::Char('r')),
            Some(Command::Preview {
                cluster: cluster.clone(),
                intent: Mutation::RestartRollout {
                    namespace: "serving".into(),
                    name: "web".into(),
                },
            })
        );
        confirm_performs(
            &mut app,
            &cluster,
            Mutation::RestartRollout {
                namespace: "serving".into(),
                name: "web".into(),
            },
            "restart deployment/serving/web",
        );
        let mut view = automation(fixtures::now());
        view.read_only = true;
        app.set_automation(Some(view));
        assert_eq!(shift(&mut app, 'B'), None);
        assert_eq!(key(&mut app, KeyCode::Char('r')), None);
        assert!(screen(&mut app, 120, 30).contains("read-only: actions are disabled"));
    }

    #[test]
    fn ctrl_k_deletes_the_selected_pod_after_its_plan_and_read_only_refuses() {
        let mut app = automated_app();
        let mut snap = fixtures::fleet();
        let mut c = (*snap.clusters[0]).clone();
        c.pods = Arc::new(vec![Arc::new(super::super::pods::fixtures::pod(
            "serving", "web-1", "gpu-a-1",
        ))]);
        let cluster = c.name.clone();
        snap.clusters[0] = Arc::new(c);
        app.set_snapshot(fixtures::evaluated(snap));
        let ctrl_k = |app: &mut App| {
            app.handle_key(KeyEvent::new(KeyCode::Char('k'), KeyModifiers::CONTROL))
        };
        assert_eq!(ctrl_k(&mut app), None);
        assert!(
            screen(&mut app, 120, 30).contains("delete: select a pod in the Pods pane (:pods)")
        );
        key(&mut app, KeyCode::Char('9'));
        assert_eq!(app.pane, PaneId::Pods);
        let delete = Mutation::DeletePod {
            namespace: "serving".into(),
            name: "web-1".into(),
        };
        assert_eq!(
            ctrl_k(&mut app),
            Some(Command::Preview {
                cluster: cluster.clone(),
                intent: delete.clone(),
            })
        );
        confirm_performs(&mut app, &cluster, delete, "delete pod/serving/web-1");
        let mut view = automation(fixtures::now());
        view.read_only = true;
        app.set_automation(Some(view));
        assert_eq!(ctrl_k(&mut app), None);
        assert!(screen(&mut app, 120, 30).contains("read-only: actions are disabled"));
    }

    #[test]
    fn hash_asks_the_replicas_refuses_a_negative_count_and_scales_after_the_plan() {
        let mut app = automated_app();
        let snap = fixtures::fleet_with_web(2);
        let cluster = snap.clusters[0].name.clone();
        app.set_snapshot(fixtures::evaluated(snap));
        assert_eq!(shift(&mut app, '#'), None);
        assert!(
            screen(&mut app, 120, 30)
                .contains("scale: select a Deployment in the Workloads pane (:workloads)")
        );
        key(&mut app, KeyCode::Char('0'));
        assert_eq!(shift(&mut app, '#'), None);
        typed(&mut app, "-2");
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("scale deployment/serving/web to how many replicas, now 2")
                && s.contains("-2"),
            "{s}"
        );
        assert_eq!(key(&mut app, KeyCode::Enter), None);
        let s = screen(&mut app, 120, 30);
        assert!(
            s.contains("scale refused: invalid scale replicas: -2 is not a count of replicas"),
            "{s}"
        );
        shift(&mut app, '#');
        typed(&mut app, "lots");
        assert_eq!(key(&mut app, KeyCode::Enter), None);
        assert!(screen(&mut app, 120, 30).contains("\"lots\" is not a number of replicas"));
        shift(&mut app, '#');
        typed(&mut app, "5");
        assert_eq!(key(&mut app, KeyCode::Esc), None);
        assert!(screen(&mut app, 120, 30).contains("cancelled, nothing changed"));

        let scale = Mutation::Scale {
            namespace: "serving".into(),
            name: "web".into(),
            replicas: 5,
        };
        shift(&mut app, '#');
        typed(&mut app, "5");
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Command::Preview {
                cluster: cluster.clone(),
                intent: scale.clone(),
            })
        );
        confirm_performs(&mut app, &cluster, scale, "scale deployment/serving/web");
        let mut view = automation(fixtures::now());
        view.read_only = true;
        app.set_automation(Some(view));
        assert_eq!(shift(&mut app, '#'), None);
        assert!(screen(&mut app, 120, 30).contains("read-only: actions are disabled"));
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
