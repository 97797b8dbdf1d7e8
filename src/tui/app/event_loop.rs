//! The cockpit's event loop: terminal events on their own thread, evaluations from the
//! pipeline, the store's and the executor's replies applied to the app, ticks, NOC rotation,
//! SIGTERM, `:scenario` injection into the demo's simulated fleet, and the logs and YAML views'
//! reads. It owns `Effects` and the links. May import pipeline, store, runbook and the tui.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};
use tokio::sync::{mpsc, watch};

use super::{App, Command, Reply};
use crate::pipeline::Evaluated;
use crate::tui::attach::{AttachView, RemoteLink};
use crate::tui::automation::AutomationLink;
use crate::tui::inspect::InspectLink;
use crate::tui::rca::RcaLink;

/// Frames are drawn at most this often, and only when something changed.
const FRAME_INTERVAL: Duration = Duration::from_millis(16);

/// What the loop performs `Command`s against: the demo's simulated fleet control address, the
/// RCA store the Incidents pane reads and writes, and the runbook executor.
pub struct Effects {
    pub control: Option<String>,
    pub store: Option<crate::store::Store>,
    /// The runbook executor the pipeline hands evaluations to: approvals, the kill switch and
    /// manual actions go through it. `None`: no automation.
    pub executor: Option<crate::runbook::executor::Executor>,
    /// Clients by kubeconfig context, for the logs and YAML views' reads.
    pub kube: std::collections::HashMap<String, kube::Client>,
    /// `fleetdeck attach`: the daemon's incidents, runs and link, and its API for the panes'
    /// commands (then `store` and `executor` are `None`: the daemon's are used).
    pub attached: Option<crate::tui::attach::Attached>,
}

/// The loop's links: to the local store and executor, or to the daemon the cockpit is
/// attached to.
struct Links {
    rca: RcaLink,
    automation: AutomationLink,
    remote: Option<RemoteLink>,
}

impl Links {
    /// Performs a command of the store's or the executor's.
    fn perform(&mut self, command: Command, snapshot: Arc<crate::model::Snapshot>) -> Vec<Reply> {
        if let Some(remote) = &mut self.remote {
            return remote.perform(command);
        }
        if command.is_automation() {
            self.automation.perform(command, snapshot)
        } else {
            self.rca.perform(command)
        }
    }

    /// A command a reply led to (a timeline to read again).
    fn follow(&mut self, command: Command) -> Vec<Reply> {
        match &mut self.remote {
            Some(remote) => remote.perform(command),
            None => self.rca.perform(command),
        }
    }

    /// The executor's runbooks, runs and approvals; an attached cockpit's come with the
    /// stream instead.
    fn refresh(&self) -> Vec<Reply> {
        if self.remote.is_some() {
            return Vec::new();
        }
        vec![self.automation.refresh()]
    }
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
    let (rca, mut rca_replies) = RcaLink::new(effects.store.clone());
    let (automation, mut automation_replies) = AutomationLink::new(effects.executor.clone());
    let (inspect, mut inspect_replies, mut log_lines) = InspectLink::new(effects.kube.clone());
    let (remote, mut remote_replies) = match &effects.attached {
        Some(a) => {
            let (link, rx) = RemoteLink::new(a.options.clone());
            (Some(link), Some(rx))
        }
        None => (None, None),
    };
    let mut attach_view = effects.attached.as_ref().map(|a| a.view.clone());
    let mut links = Links {
        rca,
        automation,
        remote,
    };
    links.rca.list();
    let first = evaluations.borrow().clone();
    app.set_evaluated(&first);
    let replies = links.refresh();
    deliver(app, &mut links, replies);
    if let Some(view) = &mut attach_view {
        let v = view.borrow_and_update().clone();
        show_attached(app, &mut links, &v);
    }
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
                    app.set_evaluated(&evaluated);
                    // New incidents or entries: read the list again.
                    if evaluated.recorded != recorded {
                        recorded = evaluated.recorded;
                        links.rca.list();
                    }
                    if evaluated.store_error != store_error {
                        store_error = evaluated.store_error.clone();
                        if let Some(e) = &store_error {
                            app.say(format!("signals not recorded: {e}"));
                        }
                    }
                    if !evaluated.started_runs.is_empty() {
                        let replies = links.refresh();
                        deliver(app, &mut links, replies);
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
                        Some(c) if c.is_inspect() => {
                            let replies = inspect.perform(c, app.log_lines());
                            deliver(app, &mut links, replies);
                        }
                        Some(other) => {
                            let replies = links.perform(other, app.snapshot());
                            deliver(app, &mut links, replies);
                        }
                        None => {}
                    },
                    Event::Mouse(m) => app.handle_mouse(m.kind, m.column, m.row),
                    _ => {}
                }
                // A GPU's detail just opened on an attached cockpit: its readings at once.
                if let Some(c) = app.gpu_history_command() {
                    let replies = links.perform(c, app.snapshot());
                    deliver(app, &mut links, replies);
                }
                dirty = true;
            }
            Some(reply) = rca_replies.recv() => {
                let replies = links.rca.apply(reply);
                deliver(app, &mut links, replies);
                dirty = true;
            }
            Some(reply) = automation_replies.recv() => {
                let replies = links.automation.apply(reply);
                deliver(app, &mut links, replies);
                dirty = true;
            }
            Some(reply) = recv_remote(&mut remote_replies) => {
                deliver(app, &mut links, [reply]);
                dirty = true;
            }
            Some(view) = changed_view(&mut attach_view) => {
                show_attached(app, &mut links, &view);
                dirty = true;
            }
            Some(reply) = inspect_replies.recv() => {
                deliver(app, &mut links, [reply]);
                dirty = true;
            }
            Some(()) = log_lines.recv() => {
                dirty |= app.pull_logs();
            }
            Some(message) = done.recv() => {
                app.say(message);
                dirty = true;
            }
            _ = tick.tick() => {
                if app.noc && last_rotation.elapsed() >= app.noc_period() {
                    app.rotate();
                    last_rotation = Instant::now();
                }
                links.rca.tick();
                let replies = links.refresh();
                deliver(app, &mut links, replies);
                if let Some(c) = app.gpu_history_command() {
                    let replies = links.perform(c, app.snapshot());
                    deliver(app, &mut links, replies);
                }
                // The clock and staleness move even when nothing else does.
                dirty = true;
            }
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Applies the links' replies to the app, in order; a command a reply leads to (a timeline to
/// read again) goes to the store's link (or the daemon's), and its answers are applied in turn.
fn deliver(app: &mut App, links: &mut Links, replies: impl IntoIterator<Item = Reply>) {
    let mut queue: VecDeque<Reply> = replies.into_iter().collect();
    while let Some(reply) = queue.pop_front() {
        if let Some(command) = app.apply(reply) {
            queue.extend(links.follow(command));
        }
    }
}

/// The daemon's incidents, runs and link, as the stream last said.
fn show_attached(app: &mut App, links: &mut Links, view: &AttachView) {
    app.set_link(view.link.clone());
    if let Some(remote) = &mut links.remote {
        remote.set_kill(view.automation.as_ref().is_some_and(|a| a.kill.is_some()));
    }
    let replies = [
        Reply::Incidents((*view.incidents).clone()),
        Reply::Automation(view.automation.clone()),
    ];
    deliver(app, links, replies);
}

async fn recv_remote(rx: &mut Option<mpsc::UnboundedReceiver<Reply>>) -> Option<Reply> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next attached view; never, on a local pipeline (or once the stream's task is gone).
async fn changed_view(
    view: &mut Option<watch::Receiver<Arc<AttachView>>>,
) -> Option<Arc<AttachView>> {
    if let Some(v) = view
        && v.changed().await.is_ok()
    {
        return Some(v.borrow_and_update().clone());
    }
    std::future::pending().await
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
