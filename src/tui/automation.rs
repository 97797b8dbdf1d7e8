//! The event loop's side of the runbook executor: reads its runs and approvals into the app
//! (the pipeline, not the cockpit, hands it each evaluation), and performs the app's automation commands — verdicts,
//! the kill switch, and a person's two-phase actions (the guard's plan first, the action once
//! confirmed). Calls that reach a cluster run on tokio's blocking pool and answer with an
//! `AutomationReply`; the loop never waits for them. What the link answers is a `Reply` the
//! loop applies to the app (the link never holds it). May import runbook, actions, model and
//! the app's `Command`/`Reply` vocabulary.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::app::{Command, Reply};
use super::pane::AutomationView;
use crate::actions::Mutation;
use crate::model::Snapshot;
use crate::model::incident::Actor;
use crate::runbook::executor::{Executor, PlanStep};
use crate::runbook::guard::ClusterDisruption;

/// What a blocking executor call answered.
#[derive(Debug)]
pub enum AutomationReply {
    /// The guard's plan of a person's action, for the confirmation.
    Preview {
        cluster: String,
        step: PlanStep,
        disruption: Option<ClusterDisruption>,
    },
    /// A confirmed action finished: what to tell the user.
    Performed(String),
}

/// The name a person's actions and verdicts are recorded under.
pub fn local_user_name() -> String {
    match Actor::local_user() {
        Actor::User(name) => name,
        other => other.to_string(),
    }
}

/// The executor's runbooks, runs and approvals, copied for the panes (which never hold it).
fn view_of(executor: &Executor) -> AutomationView {
    let guard = executor.guard();
    let mut runs = executor.runs();
    runs.reverse();
    AutomationView {
        mode: executor.mode(),
        read_only: guard.read_only,
        kill: guard.killed(),
        runbooks: executor.runbooks().iter().map(|r| r.meta.clone()).collect(),
        runs,
        pending: executor.pending_approvals(),
    }
}

/// Why the keys that need the executor do nothing without one.
pub const NO_EXECUTOR: &str =
    "no runbook executor in this cockpit: approvals, the kill switch and manual actions are off";

pub struct AutomationLink {
    executor: Option<Executor>,
    /// Blocking calls in flight.
    in_flight: usize,
    replies: mpsc::UnboundedSender<AutomationReply>,
}

impl AutomationLink {
    /// A link and the receiver the loop reads its replies from.
    pub fn new(executor: Option<Executor>) -> (Self, mpsc::UnboundedReceiver<AutomationReply>) {
        let (replies, rx) = mpsc::unbounded_channel();
        (
            Self {
                executor,
                in_flight: 0,
                replies,
            },
            rx,
        )
    }

    /// Whether a blocking call is still in flight.
    #[cfg(test)]
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }

    /// The executor's runbooks, runs and approvals, copied for the app.
    pub fn refresh(&self) -> Reply {
        Reply::Automation(self.executor.as_ref().map(view_of))
    }

    fn spawn(&mut self, work: impl FnOnce() -> AutomationReply + Send + 'static) {
        self.in_flight += 1;
        let replies = self.replies.clone();
        tokio::task::spawn_blocking(move || {
            let _ = replies.send(work());
        });
    }

    /// Performs one of the app's automation commands; `snapshot` is the latest evaluated one
    /// (a plan's cluster disruption is read from it). Answers what to show at once; a blocking
    /// call's answer comes later, through `apply`.
    pub fn perform(&mut self, command: Command, snapshot: Arc<Snapshot>) -> Vec<Reply> {
        let Some(executor) = self.executor.clone() else {
            return vec![Reply::Say(NO_EXECUTOR.into())];
        };
        match command {
            Command::Preview { cluster, intent } => {
                self.spawn(move || {
                    let step = executor.preview(&cluster, &intent);
                    let disruption = executor.guard().disruption(&snapshot, &cluster);
                    AutomationReply::Preview {
                        cluster,
                        step,
                        disruption,
                    }
                });
            }
            Command::Perform { cluster, intent } => {
                self.spawn(move || {
                    AutomationReply::Performed(perform(&executor, &cluster, &intent))
                });
            }
            Command::Decide { id, approve } => {
                let message = match executor.decide(id, approve, &local_user_name()) {
                    Ok(p) if approve => format!(
                        "approval {id} granted: {} goes ahead on {}",
                        p.runbook, p.cluster
                    ),
                    Ok(p) => format!("approval {id} denied: {} stops on {}", p.runbook, p.cluster),
                    Err(e) => e,
                };
                return vec![Reply::Say(message), self.refresh()];
            }
            Command::ToggleKill => {
                let on = executor.guard().toggle_kill();
                let message = if on {
                    "kill switch turned on: runbooks are refused every mutation until K turns it off"
                } else {
                    "kill switch off: runbooks may act again (within the guard)"
                };
                return vec![Reply::Say(message.into()), self.refresh()];
            }
            Command::Scenario(_)
            | Command::LoadTimeline(_)
            | Command::LoadGpuHistory(_)
            | Command::Note { .. }
            | Command::Acknowledge(_)
            | Command::Resolve(_)
            | Command::Export(_)
            | Command::OpenLogs(_)
            | Command::FetchObject(_)
            | Command::SaveLogs { .. } => {}
        }
        Vec::new()
    }

    /// Takes a blocking call's answer: what the loop is to apply to the app.
    pub fn apply(&mut self, reply: AutomationReply) -> Vec<Reply> {
        self.in_flight = self.in_flight.saturating_sub(1);
        match reply {
            AutomationReply::Preview {
                cluster,
                step,
                disruption,
            } => vec![Reply::Preview {
                cluster,
                step,
                disruption,
            }],
            AutomationReply::Performed(message) => vec![Reply::Say(message), self.refresh()],
        }
    }
}

/// A confirmed person's action, recorded on the timeline as theirs; says how it went.
fn perform(executor: &Executor, cluster: &str, intent: &Mutation) -> String {
    match executor.manual(cluster, intent, &local_user_name(), None) {
        Ok(report) if report.outcome.is_success() => {
            format!("{} ({})", report.summary, report.outcome.name())
        }
        Ok(report) => format!("{}: {}", report.outcome.name(), report.summary),
        Err(e) => format!(
            "{} {} in {cluster} failed: {e}",
            intent.verb(),
            intent.target()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::time::Duration;

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::config::RunbooksConfig;
    use crate::model::incident::{EntryKind, Origin};
    use crate::runbook::executor::{ExecutorConfig, RunState};
    use crate::runbook::guard::Guard;
    use crate::runbook::{Mode, Runbook};
    use crate::store::Store;
    use crate::tui::app::App;
    use crate::tui::app::testing::app;
    use crate::tui::nodes::fixtures;

    /// Cordons the node of a critical XID, then notes how it went.
    const CORDON_ON_XID: &str = r#"
const RUNBOOK = #{
    name: "cordon-on-xid",
    description: "cordon the node of a critical XID",
    trigger: #{ signal: "gpu.xid", min_severity: "critical" },
    cooldown: "30m",
};

fn run(signal) {
    let r = cordon(signal.subject.node);
    note(`cordon of ${signal.subject.node}: ${r.outcome}`);
}
"#;

    /// An executor with no cluster clients: plans work (a cordon's plan needs no API), actions
    /// fail with "no client", which is enough to follow the loop's side of every phase.
    fn executor(store: &Store, read_only: bool) -> Executor {
        let runbook = Runbook::from_source(Path::new("cordon-on-xid.rhai"), CORDON_ON_XID)
            .unwrap_or_else(|e| panic!("{e}"));
        let config = RunbooksConfig::default();
        let guard = Guard::new(&config, Mode::Approve, read_only).shared();
        let mut settings = ExecutorConfig::from_config(&config, Mode::Approve, Origin::Tui);
        settings.revalidate_after = Duration::ZERO;
        settings.identity = "test/1".into();
        Executor::new(
            vec![runbook],
            guard,
            store.clone(),
            HashMap::new(),
            settings,
        )
    }

    fn key(app: &mut App, code: KeyCode) -> Option<Command> {
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn screen(app: &mut App) -> String {
        fixtures::render(120, 30, |f| app.draw(f)).join("\n")
    }

    /// Applies what the link answered to the app, as the loop does.
    fn deliver(app: &mut App, replies: Vec<Reply>) {
        for reply in replies {
            app.apply(reply);
        }
    }

    /// Applies replies until nothing is in flight.
    async fn settle(
        link: &mut AutomationLink,
        replies: &mut mpsc::UnboundedReceiver<AutomationReply>,
        app: &mut App,
    ) {
        while link.busy() {
            let reply = tokio::time::timeout(Duration::from_secs(20), replies.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("the executor never answered"));
            let replies_now = link.apply(reply);
            deliver(app, replies_now);
        }
    }

    /// Sends `command` to the executor, applies its replies until none is in flight and
    /// returns the screen.
    async fn perform_and_settle(
        link: &mut AutomationLink,
        replies: &mut mpsc::UnboundedReceiver<AutomationReply>,
        app: &mut App,
        command: Command,
    ) -> String {
        let replies_now = link.perform(command, app.snapshot());
        deliver(app, replies_now);
        settle(link, replies, app).await;
        screen(app)
    }

    /// Refreshes the app from the executor until the screen shows `what`.
    async fn until_screen_shows(link: &AutomationLink, app: &mut App, what: &str) -> String {
        for _ in 0..200 {
            app.apply(link.refresh());
            let s = screen(app);
            if s.contains(what) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the screen never showed {what:?}:\n{}", screen(app));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_firing_signal_waits_for_approval_and_the_approved_plan_runs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let (mut link, _replies) = AutomationLink::new(Some(executor(&store, false)));
        let mut app = app();
        // The pipeline hands the executor each evaluation; here the test does.
        let hand = |link: &AutomationLink, app: &App| {
            if let Some(e) = &link.executor {
                e.observe(app.snapshot());
            }
        };
        hand(&link, &app);
        key(&mut app, KeyCode::Char('8'));
        let s = until_screen_shows(&link, &mut app, "▶ approval 1 · cordon-on-xid on prod-a").await;
        assert!(s.contains("1. cordon node/gpu-a-2"), "{s}");
        assert!(s.contains("awaiting approval 1"), "{s}");

        // The same signals again start nothing new.
        hand(&link, &app);
        app.set_snapshot(fixtures::evaluated(fixtures::fleet()));
        hand(&link, &app);
        app.apply(link.refresh());
        let s = screen(&mut app);
        let rows = |also: &str| {
            s.lines()
                .filter(|l| l.contains("cordon-on-xid") && l.contains(also))
                .count()
        };
        assert_eq!(
            (rows("awaiting approval"), rows("≥")),
            (1, 1),
            "one run, one runbook row: {s}"
        );

        let Some(decide) = key(&mut app, KeyCode::Char('y')) else {
            panic!("y decides the selected approval")
        };
        let replies_now = link.perform(decide, app.snapshot());
        deliver(&mut app, replies_now);
        assert!(
            screen(&mut app).contains("approval 1 granted: cordon-on-xid goes ahead on prod-a")
        );
        // The cordon reaches for a cluster this executor has no client for: the run still ends,
        // and it ends failed, naming the step, not done.
        let s = until_screen_shows(&link, &mut app, "0 approvals pending").await;
        assert!(!s.contains("▶ approval 1"), "{s}");
        for _ in 0..200 {
            app.apply(link.refresh());
            if link
                .executor
                .as_ref()
                .is_some_and(|e| e.runs().iter().all(|r| r.finished_at.is_some()))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let runs = link
            .executor
            .as_ref()
            .map(Executor::runs)
            .unwrap_or_default();
        assert!(
            runs.len() == 1
                && runs.iter().all(|r| matches!(
                    &r.state,
                    RunState::Failed(why) if why.contains("cordon node/gpu-a-2 failed")
                )),
            "{runs:#?}"
        );
        let s = until_screen_shows(&link, &mut app, "failed: cordon node/gpu-a-2").await;
        assert!(!s.contains("awaiting approval"), "{s}");
        let user = local_user_name();
        let entries: Vec<_> = (0..=store.len().unwrap_or(0))
            .filter_map(|seq| store.entry(seq).ok().flatten())
            .collect();
        assert!(
            entries.iter().any(|e| e.entry.kind == EntryKind::Approval
                && e.entry.summary == format!("approval 1 granted by {user}")),
            "{entries:#?}"
        );
        assert!(
            entries
                .iter()
                .any(|e| e.entry.summary.starts_with("cordon of gpu-a-2: failed")),
            "the runbook's note: {entries:#?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_persons_cordon_is_planned_then_confirmed_then_performed_and_the_kill_switch_toggles()
    {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let (mut link, mut replies) = AutomationLink::new(Some(executor(&store, false)));
        let mut app = app();
        app.apply(link.refresh());
        key(&mut app, KeyCode::Char('2'));
        let Some(preview) = key(&mut app, KeyCode::Char('c')) else {
            panic!("c asks for the plan")
        };
        let s = perform_and_settle(&mut link, &mut replies, &mut app, preview).await;
        assert!(s.contains("confirm: cordon node/gpu-a-1 in prod-a"), "{s}");
        assert!(
            s.contains("cluster prod-a: 2 of 3 nodes cordoned or NotReady (1 unready)"),
            "{s}"
        );
        let Some(perform) = key(&mut app, KeyCode::Char('y')) else {
            panic!("y performs it")
        };
        let s = perform_and_settle(&mut link, &mut replies, &mut app, perform).await;
        assert!(
            s.contains("cordon node/gpu-a-1 in prod-a failed: no client for cluster prod-a"),
            "{s}"
        );

        let Some(toggle) = app.handle_key(KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT))
        else {
            panic!("K toggles the kill switch")
        };
        let replies_now = link.perform(toggle.clone(), app.snapshot());
        deliver(&mut app, replies_now);
        let s = screen(&mut app);
        assert!(
            s.lines()
                .last()
                .unwrap_or_default()
                .contains("KILL SWITCH ON"),
            "{s}"
        );
        let replies_now = link.perform(toggle, app.snapshot());
        deliver(&mut app, replies_now);
        let replies_now = link.perform(
            Command::Decide {
                id: 99,
                approve: true,
            },
            app.snapshot(),
        );
        deliver(&mut app, replies_now);
        let s = screen(&mut app);
        assert!(!s.contains("KILL SWITCH ON"), "{s}");
        assert!(s.contains("there is no pending approval 99"), "{s}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_persons_scale_down_shows_the_pods_it_removes_and_its_failure_reaches_the_timeline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let (mut link, mut replies) = AutomationLink::new(Some(executor(&store, false)));
        let mut app = app();
        let snap = fixtures::fleet_with_web(3);
        app.set_snapshot(fixtures::evaluated(snap));
        // The pipeline hands the executor each evaluation; here the test does.
        if let Some(e) = &link.executor {
            e.observe_snapshot_only(app.snapshot());
        }
        app.apply(link.refresh());
        key(&mut app, KeyCode::Char('0'));
        app.handle_key(KeyEvent::new(KeyCode::Char('#'), KeyModifiers::SHIFT));
        key(&mut app, KeyCode::Char('1'));
        let Some(preview) = key(&mut app, KeyCode::Enter) else {
            panic!("enter asks for the plan")
        };
        let s = perform_and_settle(&mut link, &mut replies, &mut app, preview).await;
        assert!(
            s.contains("confirm: scale deployment/serving/web in prod-a")
                && s.contains("down from 3 to 1 replicas: 2 pod(s) will be removed"),
            "{s}"
        );
        assert!(!s.contains("blast radius"), "a scale is not a drain: {s}");
        let Some(perform) = key(&mut app, KeyCode::Char('y')) else {
            panic!("y performs it")
        };
        let s = perform_and_settle(&mut link, &mut replies, &mut app, perform).await;
        assert!(
            s.contains("scale deployment/serving/web in prod-a failed: no client"),
            "{s}"
        );
        let entries: Vec<_> = (0..=store.len().unwrap_or(0))
            .filter_map(|seq| store.entry(seq).ok().flatten())
            .collect();
        assert!(
            entries.iter().any(|e| e.entry.kind == EntryKind::Action
                && e.entry
                    .summary
                    .starts_with("scale deployment/serving/web failed")),
            "{entries:#?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_executor_turns_the_action_keys_off_and_no_executor_says_so() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let (link, _replies) = AutomationLink::new(Some(executor(&store, true)));
        let mut app = app();
        app.apply(link.refresh());
        key(&mut app, KeyCode::Char('2'));
        assert_eq!(key(&mut app, KeyCode::Char('c')), None);
        assert!(screen(&mut app).contains("read-only: actions are disabled"));
        key(&mut app, KeyCode::Char('8'));
        assert!(screen(&mut app).contains("READ-ONLY: every mutation is forbidden"));

        let (mut none, _replies) = AutomationLink::new(None);
        app.apply(none.refresh());
        let replies_now = none.perform(Command::ToggleKill, app.snapshot());
        deliver(&mut app, replies_now);
        assert!(screen(&mut app).contains("no runbook executor"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signal_waiting_out_its_clear_after_starts_no_run() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}"));
        let ex = executor(&store, false);
        let mut clearing = (*fixtures::evaluated(fixtures::fleet())).clone();
        for s in &mut clearing.signals {
            s.evidence.insert(
                crate::model::signal::CLEARING_SINCE.into(),
                serde_json::json!("2026-01-01T00:00:00Z"),
            );
        }
        assert!(ex.observe(Arc::new(clearing)).is_empty());
        assert_eq!(ex.observe(fixtures::evaluated(fixtures::fleet())).len(), 1);
        // The run waits for an approval: deny it, so that the run ends with the test.
        for _ in 0..200 {
            let pending = ex.pending_approvals();
            if !pending.is_empty() {
                for p in pending {
                    let _ = ex.decide(p.id, false, "test");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
