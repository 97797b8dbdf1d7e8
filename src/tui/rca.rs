//! The event loop's side of the RCA store: reloads the incident list (when the pipeline
//! recorded something, after a write and every few seconds), reads timelines and performs the
//! Incidents pane's commands. Recording signals is the pipeline's, not the cockpit's. Every
//! store call runs on tokio's blocking pool and answers with an `RcaReply`; the loop never
//! waits for the store, and what the link answers is a `Reply` the loop applies to the app (the
//! link never holds it). May import store, model and the app's `Command`/`Reply` vocabulary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;

use super::app::{Command, Reply};
use crate::model::incident::{Actor, Entry, EntryKind, Incident, NewEntry, Origin, incident_label};
use crate::store::{IncidentFilter, Milestone, MilestoneOutcome, Store};

/// How often the incident list is read again, so that changes made elsewhere (the CLI, a
/// runbook) show.
const RELOAD_EVERY: Duration = Duration::from_secs(3);

/// What a store call answered.
#[derive(Debug)]
pub enum RcaReply {
    /// The incident list.
    Incidents(Result<Vec<Incident>, String>),
    Timeline(u64, Result<Vec<Entry>, String>),
    /// A pane command finished: what to tell the user.
    Done(String),
}

/// The loop's link to the store: at most one list read in flight, the next one coalesced
/// behind it.
pub struct RcaLink {
    store: Option<Store>,
    /// Where `e` writes postmortem drafts.
    export_dir: PathBuf,
    listing: bool,
    list_again: bool,
    last_list: Instant,
    /// Timeline being read, and the one to read after it.
    timeline: Option<u64>,
    timeline_next: Option<u64>,
    /// Pane commands in flight.
    commands: usize,
    replies: mpsc::UnboundedSender<RcaReply>,
}

impl RcaLink {
    /// A link and the receiver the loop reads its replies from.
    pub fn new(store: Option<Store>) -> (Self, mpsc::UnboundedReceiver<RcaReply>) {
        let (replies, rx) = mpsc::unbounded_channel();
        (
            Self {
                store,
                export_dir: PathBuf::from("."),
                listing: false,
                list_again: false,
                last_list: Instant::now(),
                timeline: None,
                timeline_next: None,
                commands: 0,
                replies,
            },
            rx,
        )
    }

    /// Writes postmortem drafts into `dir` instead of the current directory (tests).
    #[cfg(test)]
    pub fn exporting_to(mut self, dir: PathBuf) -> Self {
        self.export_dir = dir;
        self
    }

    /// Whether a store call is still in flight.
    #[cfg(test)]
    pub fn busy(&self) -> bool {
        self.listing || self.timeline.is_some() || self.commands > 0
    }

    /// Runs `work` on the blocking pool and sends its reply.
    fn spawn(&self, work: impl FnOnce() -> RcaReply + Send + 'static) {
        let replies = self.replies.clone();
        tokio::task::spawn_blocking(move || {
            let _ = replies.send(work());
        });
    }

    /// Reads the incident list (again when one read is in flight).
    pub fn list(&mut self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.listing {
            self.list_again = true;
            return;
        }
        self.listing = true;
        self.last_list = Instant::now();
        self.spawn(move || {
            RcaReply::Incidents(
                store
                    .incidents(&IncidentFilter::default())
                    .map_err(|e| e.to_string()),
            )
        });
    }

    /// The clock ticked: read the list again every few seconds.
    pub fn tick(&mut self) {
        if self.last_list.elapsed() >= RELOAD_EVERY {
            self.list();
        }
    }

    fn load_timeline(&mut self, id: u64) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.timeline.is_some() {
            self.timeline_next = Some(id);
            return;
        }
        self.timeline = Some(id);
        self.spawn(move || RcaReply::Timeline(id, store.timeline(id).map_err(|e| e.to_string())));
    }

    /// Performs a command of the Incidents pane against the store; answers what to show at
    /// once (the store's own answer comes later, through `apply`).
    pub fn perform(&mut self, command: Command) -> Vec<Reply> {
        if let Command::LoadTimeline(id) = command {
            self.load_timeline(id);
            return Vec::new();
        }
        if command.is_automation()
            || command.is_inspect()
            || matches!(command, Command::Scenario(_) | Command::LoadGpuHistory(_))
        {
            return Vec::new();
        }
        let Some(store) = self.store.clone() else {
            return vec![Reply::Say(
                "no RCA store is open, so incidents cannot be changed".into(),
            )];
        };
        let dir = self.export_dir.clone();
        self.commands += 1;
        self.spawn(move || {
            RcaReply::Done(match command {
                Command::Note { incident, text } => {
                    let entry =
                        NewEntry::new(EntryKind::Note, Actor::local_user(), Origin::Tui, text)
                            .on_incident(incident);
                    match store.append(entry) {
                        Ok(_) => format!("note added to {}", incident_label(incident)),
                        Err(e) => e.to_string(),
                    }
                }
                Command::Acknowledge(id) => milestone(&store, id, Milestone::Acknowledged),
                Command::Resolve(id) => milestone(&store, id, Milestone::Resolved),
                Command::Export(id) => export(&store, id, &dir),
                Command::Scenario(_)
                | Command::LoadTimeline(_)
                | Command::LoadGpuHistory(_)
                | Command::Preview { .. }
                | Command::Perform { .. }
                | Command::Decide { .. }
                | Command::ToggleKill
                | Command::OpenLogs(_)
                | Command::FetchObject(_)
                | Command::SaveLogs { .. } => String::new(),
            })
        });
        Vec::new()
    }

    /// Takes a store call's answer: what the loop is to apply to the app.
    pub fn apply(&mut self, reply: RcaReply) -> Vec<Reply> {
        let mut out = Vec::new();
        match reply {
            RcaReply::Incidents(list) => {
                self.listing = false;
                match list {
                    Ok(list) => out.push(Reply::Incidents(list)),
                    // The list on screen stays as it was; a later read may succeed.
                    Err(e) => out.push(Reply::Say(e)),
                }
                if std::mem::take(&mut self.list_again) {
                    self.list();
                }
            }
            RcaReply::Timeline(id, result) => {
                self.timeline = None;
                out.push(match result {
                    Ok(entries) => Reply::Timeline(id, entries),
                    Err(e) => Reply::Say(e),
                });
                if let Some(next) = self.timeline_next.take() {
                    self.load_timeline(next);
                }
            }
            RcaReply::Done(message) => {
                self.commands = self.commands.saturating_sub(1);
                out.push(Reply::Say(message));
                self.list();
            }
        }
        out
    }
}

fn milestone(store: &Store, id: u64, milestone: Milestone) -> String {
    let label = incident_label(id);
    match store.milestone(id, milestone, Actor::local_user(), Origin::Tui) {
        Ok(MilestoneOutcome::Reached(_)) => match milestone {
            Milestone::Acknowledged => format!("{label} acknowledged"),
            Milestone::Mitigated => format!("{label} mitigated"),
            Milestone::Resolved => format!("{label} resolved"),
        },
        Ok(MilestoneOutcome::Already(status)) => format!("{label} already {}", status.name()),
        Err(e) => e.to_string(),
    }
}

/// Writes `INC-<n>-postmortem.md` into `dir`; says where, or what went wrong.
fn export(store: &Store, id: u64, dir: &std::path::Path) -> String {
    let incident = match store.require_incident(id) {
        Ok(i) => i,
        Err(e) => return e.to_string(),
    };
    let timeline = match store.timeline(id) {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    let text = crate::store::export::markdown(&incident, &timeline, Utc::now());
    let path = dir.join(format!("{}-postmortem.md", incident.label()));
    match std::fs::write(&path, text) {
        Ok(()) => format!(
            "{} postmortem draft written to {}",
            incident.label(),
            path.display()
        ),
        Err(e) => format!("cannot write {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::model::incident::IncidentStatus;
    use crate::tui::app::App;
    use crate::tui::app::testing::app;
    use crate::tui::nodes::fixtures;

    /// Applies what the link answered to the app, as the loop does.
    fn deliver(link: &mut RcaLink, app: &mut App, replies: Vec<Reply>) {
        for reply in replies {
            if let Some(command) = app.apply(reply) {
                let more = link.perform(command);
                deliver(link, app, more);
            }
        }
    }

    /// Applies replies until nothing is in flight.
    async fn settle(
        link: &mut RcaLink,
        replies: &mut mpsc::UnboundedReceiver<RcaReply>,
        app: &mut App,
    ) {
        while link.busy() {
            let reply = tokio::time::timeout(Duration::from_secs(20), replies.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("the store never answered"));
            let replies_now = link.apply(reply);
            deliver(link, app, replies_now);
        }
    }

    fn pipeline(store: &Store) -> crate::pipeline::Pipeline {
        // The fixture's clusters never finish syncing: record at once.
        crate::pipeline::Pipeline::new(crate::pipeline::PipelineConfig {
            warm_up_patience: Duration::ZERO,
            ..crate::pipeline::PipelineConfig::new(
                crate::config::Thresholds::default(),
                Origin::Tui,
            )
        })
        .with_store(store.clone())
    }

    fn key(app: &mut App, code: KeyCode) -> Option<Command> {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn screen(app: &mut App) -> String {
        fixtures::render(120, 30, |f| app.draw(f)).join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn firing_signals_open_incidents_that_notes_milestones_and_export_reach() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let (link, mut replies) = RcaLink::new(Some(store.clone()));
        let mut link = link.exporting_to(dir.path().to_path_buf());
        let mut app = app();
        // The pipeline records what the cockpit shows; the link reads the incidents back.
        let mut first = pipeline(&store);
        let evaluated = first
            .evaluate(Arc::new(fixtures::fleet()), fixtures::now())
            .await;
        app.set_snapshot(evaluated.snapshot.clone());
        link.list();
        settle(&mut link, &mut replies, &mut app).await;

        // The fleet's signals opened incidents, and the app was given the list.
        assert!(!app.signals().is_empty());
        let xid = app
            .incidents()
            .iter()
            .find(|i| i.group.starts_with("gpu.fault:"))
            .cloned()
            .unwrap_or_else(|| panic!("no gpu.fault incident in {:?}", app.incidents()));
        assert_eq!(xid.status, IncidentStatus::Open);

        // The same signals again record nothing new.
        let entries_before = store.timeline(xid.id).map(|t| t.len()).unwrap_or_default();
        first
            .evaluate(Arc::new(fixtures::fleet()), fixtures::now())
            .await;
        assert_eq!(
            store.timeline(xid.id).map(|t| t.len()).unwrap_or_default(),
            entries_before
        );

        // Open it, add a note, acknowledge, resolve, export: all through the keys.
        key(&mut app, KeyCode::Char('7'));
        key(&mut app, KeyCode::Char('/'));
        for c in "gpu.fault".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        key(&mut app, KeyCode::Enter);
        let Some(load) = key(&mut app, KeyCode::Enter) else {
            panic!("opening asks for the timeline")
        };
        let replies_now = link.perform(load);
        deliver(&mut link, &mut app, replies_now);
        settle(&mut link, &mut replies, &mut app).await;
        assert!(
            screen(&mut app).contains("Timeline ("),
            "{}",
            screen(&mut app)
        );

        key(&mut app, KeyCode::Char('n'));
        for c in "replacing the GPU".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        let note = key(&mut app, KeyCode::Enter).unwrap_or_else(|| panic!("a note command"));
        let replies_now = link.perform(note);
        deliver(&mut link, &mut app, replies_now);
        settle(&mut link, &mut replies, &mut app).await;
        let label = xid.label();
        let s = screen(&mut app);
        assert!(s.contains(&format!("note added to {label}")), "{s}");
        assert!(
            s.contains("replacing the GPU"),
            "the open timeline follows: {s}"
        );

        for (code, said) in [
            (KeyCode::Char('a'), format!("{label} acknowledged")),
            (KeyCode::Char('a'), format!("{label} already acknowledged")),
        ] {
            let cmd = key(&mut app, code).unwrap_or_else(|| panic!("a command"));
            let replies_now = link.perform(cmd);
            deliver(&mut link, &mut app, replies_now);
            settle(&mut link, &mut replies, &mut app).await;
            assert!(screen(&mut app).contains(&said), "{}", screen(&mut app));
        }
        app.handle_key(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT));
        let resolve = key(&mut app, KeyCode::Char('y')).unwrap_or_else(|| panic!("resolve"));
        let replies_now = link.perform(resolve);
        deliver(&mut link, &mut app, replies_now);
        settle(&mut link, &mut replies, &mut app).await;
        assert!(screen(&mut app).contains(&format!("{label} resolved")));
        assert_eq!(
            store.require_incident(xid.id).map(|i| i.status).ok(),
            Some(IncidentStatus::Resolved)
        );

        let export = key(&mut app, KeyCode::Char('e')).unwrap_or_else(|| panic!("export"));
        let replies_now = link.perform(export);
        deliver(&mut link, &mut app, replies_now);
        settle(&mut link, &mut replies, &mut app).await;
        let path = dir.path().join(format!("{label}-postmortem.md"));
        assert!(
            screen(&mut app).contains("postmortem draft written to"),
            "{}",
            screen(&mut app)
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(text.contains("replacing the GPU"), "{text}");
        assert!(text.contains("resolved"), "{text}");

        // A second cockpit on the same store picks up where this one left off: the signals
        // still firing on open incidents are not recorded again.
        let entries = store.timeline(xid.id).map(|t| t.len()).unwrap_or_default();
        pipeline(&store)
            .evaluate(Arc::new(fixtures::fleet()), fixtures::now())
            .await;
        assert_eq!(
            store.timeline(xid.id).map(|t| t.len()).unwrap_or_default(),
            entries,
            "a resolved incident takes no more entries"
        );
    }

    #[tokio::test]
    async fn without_a_store_commands_say_so_and_nothing_is_recorded() {
        let (mut link, _replies) = RcaLink::new(None);
        let mut app = app();
        link.list();
        assert!(!link.busy());
        let replies_now = link.perform(Command::Acknowledge(1));
        deliver(&mut link, &mut app, replies_now);
        assert!(
            screen(&mut app).contains("no RCA store"),
            "{}",
            screen(&mut app)
        );
    }
}
