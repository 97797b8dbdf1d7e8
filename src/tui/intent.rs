//! What a person wants, as plain data: a pane's key handling answers an `Intent` (go to a
//! pane, open a view on a subject, ask for a `Mutation`, decide an approval, write on an
//! incident…) and the app's router performs it. Intents are serde values with no handles in
//! them, so that a terminal attached to a daemon can send them there; `SignedIntent` is one
//! with the person who asked, which the router attaches. May import actions (the `Mutation`
//! vocabulary), model and the keymap.

use serde::{Deserialize, Serialize};

use super::keymap::{Action, PaneId};
use crate::actions::{DrainRequest, Mutation};
use crate::model::incident::Actor;
use crate::model::signal::Subject;

/// Which view over the whole pane an `Intent::Inspect` opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InspectView {
    Logs,
    Yaml,
}

/// One thing a person asked for, made from a key on a pane's selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// Show `pane` with its filter set (Enter on a signal: its subject's pane).
    Navigate {
        pane: PaneId,
        filter: String,
    },
    /// The logs or YAML view on a subject (a pod's logs; any Kubernetes object's YAML).
    Inspect {
        view: InspectView,
        subject: Subject,
    },
    /// A change to a cluster, first phase: the guard's plan, then a confirmation performs it.
    Mutate {
        cluster: String,
        mutation: Mutation,
    },
    /// Scale's first step: the replica count of this Deployment, typed on the input line.
    AskReplicas {
        cluster: String,
        namespace: String,
        name: String,
    },
    /// A verdict on a runbook's pending plan.
    Decide {
        approval: u64,
        approve: bool,
    },
    /// The kill switch, on or off.
    ToggleKill,
    /// A note on an incident's timeline; an empty `text` asks the person for it.
    Note {
        incident: u64,
        text: String,
    },
    Acknowledge {
        incident: u64,
    },
    /// Resolving closes the incident: the router asks first unless it is resolved already.
    Resolve {
        incident: u64,
    },
    /// The incident's Markdown postmortem draft.
    Export {
        incident: u64,
    },
    /// Demo mode: a fault injected into the simulated fleet.
    Scenario {
        name: String,
    },
}

/// An intent with the person who asked for it: what crosses a process boundary (a terminal
/// attached to a daemon sends these; the daemon records `actor` as the one who acted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIntent {
    pub actor: Actor,
    pub intent: Intent,
}

/// What a pane answers for a key it has no intent for: the person is told how to get one.
pub fn unavailable(action: Action) -> String {
    match action {
        Action::Rollback => {
            "rollback: select an endpoint (:endpoints) or a Deployment or InferenceService (:workloads)".into()
        }
        Action::RollbackModel => {
            "rollback model: select an endpoint (:endpoints) whose registered model is known".into()
        }
        Action::RestartRollout => {
            "restart: select a Deployment in the Workloads pane (:workloads)".into()
        }
        Action::DeletePod => "delete: select a pod in the Pods pane (:pods)".into(),
        Action::Scale => "scale: select a Deployment in the Workloads pane (:workloads)".into(),
        Action::Logs | Action::Yaml => format!(
            "{}: select a pod in the Pods pane (:pods) or a signal whose subject is a pod (:signals)",
            if action == Action::Logs { "logs" } else { "yaml" }
        ),
        Action::Note | Action::Acknowledge | Action::Resolve | Action::Export => {
            format!("{}: only in the Incidents pane (:incidents)", action.describe())
        }
        _ => format!(
            "{}: select a node in the Nodes (:nodes) or GPUs (:gpus) pane",
            verb(action)
        ),
    }
}

/// The verb of a person's action, for messages.
pub fn verb(action: Action) -> &'static str {
    match action {
        Action::Cordon => "cordon",
        Action::Uncordon => "uncordon",
        Action::Drain => "drain",
        Action::Rollback | Action::RollbackModel => "rollback",
        Action::DeletePod => "delete",
        Action::RestartRollout => "restart",
        Action::Scale => "scale",
        _ => "act",
    }
}

/// A cordon, uncordon or drain of the selected node, as (cluster, node); `None` for any
/// other action. A drain leaves DaemonSet pods, as `kubectl drain --ignore-daemonsets`.
pub fn node_intent(
    selected: Option<(String, String)>,
    action: Action,
) -> Option<Result<Intent, String>> {
    if !matches!(action, Action::Cordon | Action::Uncordon | Action::Drain) {
        return None;
    }
    let Some((cluster, node)) = selected else {
        return Some(Err(format!("{}: no node selected", verb(action))));
    };
    let mutation = match action {
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
    Some(Ok(Intent::Mutate { cluster, mutation }))
}

/// The logs or YAML view on `subject`, for the `l` and `Y` keys; `None` for any other action.
pub fn inspect_intent(subject: Option<Subject>, action: Action) -> Option<Result<Intent, String>> {
    let view = match action {
        Action::Logs => InspectView::Logs,
        Action::Yaml => InspectView::Yaml,
        _ => return None,
    };
    subject.map(|subject| Ok(Intent::Inspect { view, subject }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_intent_crosses_a_process_boundary_as_json_and_comes_back_equal() {
        let intents = [
            Intent::Mutate {
                cluster: "prod".into(),
                mutation: Mutation::Taint {
                    node: "gpu-1".into(),
                    key: "fleetdeck.io/quarantine".into(),
                    value: None,
                    effect: crate::actions::TaintEffect::NoSchedule,
                },
            },
            Intent::Mutate {
                cluster: "prod".into(),
                mutation: Mutation::Drain {
                    node: "gpu-1".into(),
                    options: DrainRequest::default(),
                },
            },
            Intent::Navigate {
                pane: PaneId::Pods,
                filter: "trainer".into(),
            },
            Intent::Decide {
                approval: 7,
                approve: true,
            },
            Intent::ToggleKill,
        ];
        for intent in intents {
            let signed = SignedIntent {
                actor: Actor::User("alice".into()),
                intent,
            };
            let json = serde_json::to_string(&signed).expect("an intent serializes");
            let back: SignedIntent = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, signed, "{json}");
        }
    }

    #[test]
    fn a_node_action_without_a_selected_node_says_so_and_other_actions_are_not_node_intents() {
        assert_eq!(
            node_intent(None, Action::Drain),
            Some(Err("drain: no node selected".to_string()))
        );
        assert_eq!(
            node_intent(Some(("c".into(), "n".into())), Action::Rollback),
            None
        );
    }
}
