//! The app's router: performs what a person asks for. A key on the shown pane becomes an
//! [`Intent`] (the pane's `Pane::intent` says which, from its selection), and `route` turns an
//! intent into what happens: a pane shown, a logs or YAML view opened, the guard's plan asked
//! for (its confirmation then performs the `Mutation`), a verdict, a write on an incident. The
//! loop's links perform the resulting `Command`s against the local executor and store; the
//! router alone knows the person (`sign`). Also the one place a `ViewCtx` is made. May import
//! what the app does.

use super::input::Mode;
use super::{App, Command, Panes};
use crate::actions::Mutation;
use crate::model::incident::{Actor, IncidentStatus};
use crate::model::signal::Subject;
use crate::sources::logs::{LogTarget, ObjectRef};
use crate::tui::automation::NO_EXECUTOR;
use crate::tui::format::pending_text;
use crate::tui::intent::{InspectView, Intent, SignedIntent, unavailable};
use crate::tui::keymap::{Action, PaneId};
use crate::tui::pane::ViewCtx;

/// The API version of a signal subject's `kind/name`, for the YAML view.
fn object_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "pod" => ("v1", "Pod"),
        "node" => ("v1", "Node"),
        "deployment" => ("apps/v1", "Deployment"),
        "replicaset" => ("apps/v1", "ReplicaSet"),
        "statefulset" => ("apps/v1", "StatefulSet"),
        "daemonset" => ("apps/v1", "DaemonSet"),
        "job" => ("batch/v1", "Job"),
        "inferenceservice" => ("serving.kserve.io/v1beta1", "InferenceService"),
        _ => return None,
    })
}

impl App {
    /// Calls `f` with the panes, the shown one's id and what panes are given to read: the one
    /// place a `ViewCtx` is made.
    pub(super) fn with_panes<R>(&mut self, f: impl FnOnce(&mut Panes, PaneId, &ViewCtx) -> R) -> R {
        let snapshot = self.snapshot.clone();
        let ctx = ViewCtx {
            snapshot: &snapshot,
            theme: &self.theme,
            now: self.now(),
            cluster: self.cluster.as_deref(),
            namespace: self.namespace.as_deref(),
            cost: snapshot.cost.as_deref(),
        };
        f(&mut self.panes, self.pane, &ctx)
    }

    /// `intent` with the person at this terminal, named as the timeline names them (`$USER`):
    /// the form an intent takes to another process.
    pub fn sign(&self, intent: Intent) -> SignedIntent {
        SignedIntent {
            actor: Actor::local_user(),
            intent,
        }
    }

    /// A key the shown pane handles itself (movement, sort, its detail); Enter on a row with
    /// nothing to open follows it to its subject's pane. Says whether the screen changed.
    pub(super) fn pane_action(&mut self, action: Action) -> bool {
        let (changed, follow) = self.with_panes(|panes, id, ctx| {
            let changed = panes.get_mut(id).handle(action, ctx);
            let follow = (action == Action::Open && !changed)
                .then(|| panes.get(id).follow(ctx))
                .flatten();
            (changed, follow)
        });
        match follow {
            Some((pane, filter)) => {
                self.route(Intent::Navigate { pane, filter });
                true
            }
            None => changed,
        }
    }

    /// A key that asks something of the shown pane's selection (an action on the cluster, a
    /// view, a verdict, a write on an incident): the pane answers the intent, the router
    /// performs it, or says why there is none.
    pub(super) fn request(&mut self, action: Action) -> Option<Command> {
        match action {
            Action::Approve | Action::Deny | Action::KillSwitch if self.automation.is_none() => {
                self.say(NO_EXECUTOR);
                return None;
            }
            Action::KillSwitch => return self.route(Intent::ToggleKill),
            mutation if mutation.is_mutation() && !self.may_act() => return None,
            _ => {}
        }
        let answer = self.with_panes(|panes, id, ctx| panes.get(id).intent(action, ctx));
        match answer {
            Some(Ok(intent)) => self.route(intent),
            Some(Err(why)) => {
                self.say(why);
                None
            }
            None => {
                let why = match action {
                    Action::Approve | Action::Deny => {
                        let pending = self.automation.as_ref().map_or(0, |a| a.pending.len());
                        format!(
                            "{}: only in the Runbooks pane (:runbooks), where the plan shows · {}",
                            action.describe(),
                            pending_text(pending)
                        )
                    }
                    other => unavailable(other),
                };
                self.say(why);
                None
            }
        }
    }

    /// Performs an intent: what is the app's own (a pane, a view, a prompt) happens here; what
    /// reaches the executor or the store becomes the `Command` the loop's links perform.
    pub fn route(&mut self, intent: Intent) -> Option<Command> {
        match intent {
            Intent::Navigate { pane, filter } => {
                self.pane = pane;
                self.set_filter(&filter);
                None
            }
            Intent::Inspect { view, subject } => self.inspect_subject(view, subject),
            Intent::Mutate { cluster, mutation } => self.ask_plan(cluster, mutation),
            Intent::AskReplicas {
                cluster,
                namespace,
                name,
            } => {
                let current = self
                    .snapshot
                    .clusters
                    .iter()
                    .find(|c| c.name == cluster)
                    .and_then(|c| {
                        c.deployments
                            .iter()
                            .find(|d| d.namespace == namespace && d.name == name)
                    })
                    .map(|d| d.replicas);
                self.mode = Mode::Replicas {
                    cluster,
                    namespace,
                    name,
                    current,
                    text: String::new(),
                };
                None
            }
            Intent::Decide { approval, approve } => Some(Command::Decide {
                id: approval,
                approve,
            }),
            Intent::ToggleKill => Some(Command::ToggleKill),
            Intent::Note { incident, text } if text.is_empty() => {
                self.mode = Mode::Note {
                    incident,
                    text: String::new(),
                };
                None
            }
            Intent::Note { incident, text } => Some(Command::Note { incident, text }),
            Intent::Acknowledge { incident } => Some(Command::Acknowledge(incident)),
            Intent::Resolve { incident } => self.confirm_resolve(incident),
            Intent::Export { incident } => Some(Command::Export(incident)),
            Intent::Scenario { name } => Some(Command::Scenario(name)),
        }
    }

    /// Resolving closes the incident, so y/n first; a resolved one only gets "already
    /// resolved" from the store, with no need to ask.
    fn confirm_resolve(&mut self, id: u64) -> Option<Command> {
        let Some(incident) = self.incidents.iter().find(|i| i.id == id).cloned() else {
            return Some(Command::Resolve(id));
        };
        if incident.status == IncidentStatus::Resolved {
            return Some(Command::Resolve(id));
        }
        let label = incident.label();
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

    /// The logs (a pod only) or YAML (any Kubernetes object) of a subject.
    fn inspect_subject(&mut self, view: InspectView, subject: Subject) -> Option<Command> {
        let object = subject
            .object
            .as_deref()
            .and_then(|o| o.split_once('/'))
            .map(|(k, n)| (k.to_string(), n.to_string()));
        let namespace = subject.namespace.clone().unwrap_or_default();
        if view == InspectView::Logs {
            return match object {
                Some((kind, pod)) if kind == "pod" && !namespace.is_empty() => {
                    Some(self.open_logs(LogTarget {
                        cluster: subject.cluster,
                        namespace,
                        pod,
                        container: None,
                    }))
                }
                _ => {
                    self.say(format!(
                        "logs: this signal's subject is {}, not a pod",
                        subject.object.as_deref().unwrap_or("no object")
                    ));
                    None
                }
            };
        }
        let target = match (object, &subject.node) {
            (Some((kind, name)), _) => object_kind(&kind).map(|(v, k)| (v, k, name)),
            (None, Some(node)) => Some(("v1", "Node", node.clone())),
            (None, None) => None,
        };
        match target {
            Some((api_version, kind, name)) => Some(self.open_yaml(ObjectRef {
                cluster: subject.cluster,
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: if kind == "Node" {
                    String::new()
                } else {
                    namespace
                },
                name,
            })),
            None => {
                self.say(format!(
                    "yaml: this signal's subject ({}) is not a Kubernetes object",
                    subject.object.as_deref().unwrap_or("none")
                ));
                None
            }
        }
    }

    /// Asks the executor for the guard's plan of `intent`; its answer opens the confirmation.
    pub(super) fn ask_plan(&mut self, cluster: String, intent: Mutation) -> Option<Command> {
        self.say(format!(
            "asking the guard for the plan to {} {} in {cluster}…",
            intent.verb(),
            intent.target()
        ));
        self.awaiting_plan = Some((cluster.clone(), intent.clone()));
        Some(Command::Preview { cluster, intent })
    }

    /// Whether a person's action may be asked for at all; says why not.
    fn may_act(&mut self) -> bool {
        match &self.automation {
            None => {
                self.say(NO_EXECUTOR);
                false
            }
            Some(a) if a.read_only => {
                self.say("read-only: actions are disabled (fleetdeck was started with --read-only or [runbooks] read_only)");
                false
            }
            Some(_) => true,
        }
    }

    /// Scale, second step: the typed count becomes a `Mutation::Scale` (a negative or
    /// non-numeric one is refused here, naming it) and the guard's plan is asked for.
    pub(super) fn scale_to(
        &mut self,
        cluster: String,
        namespace: &str,
        name: &str,
        text: &str,
    ) -> Option<Command> {
        let Ok(replicas) = text.parse::<i64>() else {
            self.say(format!(
                "scale deployment/{namespace}/{name} refused: {text:?} is not a number of replicas"
            ));
            return None;
        };
        match Mutation::scale(namespace, name, replicas) {
            Ok(intent) => self.ask_plan(cluster, intent),
            Err(e) => {
                self.say(format!("scale refused: {e}"));
                None
            }
        }
    }
}
