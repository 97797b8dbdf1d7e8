//! The app's input modes and what keys do in them: normal keys to actions, the `/` filter,
//! the `:` palette, a note or a replica count being typed, the y/n of a confirmation, and the
//! mouse. May import the tui groundwork, actions and model.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, MouseEventKind};

use super::{App, Command, PendingAction};
use crate::model::incident::incident_label;
use crate::tui::keymap::{Action, PaneId};

/// What the keyboard is doing: moving around, typing a line, or answering a question.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Mode {
    Normal,
    Filter(String),
    Palette(String),
    /// Typing a note for an incident's timeline.
    Note {
        incident: u64,
        text: String,
    },
    /// Typing the replica count a Deployment is to be scaled to.
    Replicas {
        cluster: String,
        namespace: String,
        name: String,
        /// The count the snapshot shows, for the prompt.
        current: Option<u32>,
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

impl App {
    /// Runs a palette command (without the leading `:`).
    fn command(&mut self, line: &str) -> Option<Command> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        let pane = PaneId::ALL
            .iter()
            .copied()
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
            ("ns" | "namespace", None, _) => {
                self.namespace = None;
                self.say("showing every namespace");
            }
            ("ns" | "namespace", Some(name), _) => {
                self.namespace = Some(name.to_string());
                self.say(format!("showing namespace {name} in the Pods, Workloads and Events panes"));
            }
            ("scenario", Some(name), _) if self.simulated => return Some(Command::Scenario(name.to_string())),
            ("scenario", _, _) if !self.simulated => self.say(":scenario works in demo mode (a simulated fleet)"),
            ("logs", Some(pod), _) => return self.logs_command(pod, words.next()),
            ("logs", None, _) => self.say(":logs NAMESPACE/POD [CONTAINER] (in the :ctx cluster)"),
            ("q" | "quit", _, _) => self.quit = true,
            ("", _, _) => {}
            (other, _, _) => self.say(format!(
                "unknown command :{other}; try :overview :nodes :gpus :endpoints :cost :signals :incidents :runbooks :pods :workloads :events :ctx NAME :ns NAME :logs NS/POD{}",
                if self.simulated { " :scenario NAME" } else { "" }
            )),
        }
        None
    }

    /// `:logs NAMESPACE/POD [CONTAINER]`: the pod's logs in the `:ctx` cluster (or the only one).
    fn logs_command(&mut self, pod: &str, container: Option<&str>) -> Option<Command> {
        let Some((namespace, name)) = pod
            .split_once('/')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            self.say(format!(":logs {pod}: name the pod as NAMESPACE/POD"));
            return None;
        };
        let cluster = match (&self.cluster, self.snapshot.clusters.as_slice()) {
            (Some(c), _) => c.clone(),
            (None, [only]) => only.name.clone(),
            (None, _) => {
                self.say(":logs: several clusters are shown; choose one with :ctx NAME first");
                return None;
            }
        };
        Some(self.open_logs(crate::sources::logs::LogTarget {
            cluster,
            namespace: namespace.to_string(),
            pod: name.to_string(),
            container: container.map(str::to_string),
        }))
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => {
                if let Some(command) = self.inspect_key(&key) {
                    return command;
                }
                self.normal_key(key)
            }
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
            Mode::Replicas {
                cluster,
                namespace,
                name,
                current,
                mut text,
            } => match edit(&mut text, key.code) {
                Edit::Cancel => {
                    self.say(format!(
                        "scale deployment/{namespace}/{name}: cancelled, nothing changed"
                    ));
                    None
                }
                Edit::Submit => self.scale_to(cluster, &namespace, &name, text.trim()),
                Edit::Changed | Edit::Ignored => {
                    self.mode = Mode::Replicas {
                        cluster,
                        namespace,
                        name,
                        current,
                        text,
                    };
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
            Action::Note
            | Action::Acknowledge
            | Action::Resolve
            | Action::Export
            | Action::Approve
            | Action::Deny
            | Action::KillSwitch
            | Action::Logs
            | Action::Yaml => return self.request(action),
            mutation if mutation.is_mutation() => return self.request(action),
            other => {
                self.pane_action(other);
            }
        }
        self.panes
            .take_timeline_request()
            .map(Command::LoadTimeline)
    }

    /// Mouse: the wheel scrolls, a click on a tab opens that pane.
    pub fn handle_mouse(&mut self, kind: MouseEventKind, column: u16, row: u16) {
        match kind {
            // Over a logs or YAML view the wheel scrolls it, not the pane beneath.
            MouseEventKind::ScrollDown if self.inspecting() => self.inspect_scroll(Action::Down),
            MouseEventKind::ScrollUp if self.inspecting() => self.inspect_scroll(Action::Up),
            MouseEventKind::ScrollDown => {
                self.pane_action(Action::Down);
            }
            MouseEventKind::ScrollUp => {
                self.pane_action(Action::Up);
            }
            MouseEventKind::Down(_) if row == 0 => {
                // Tabs start after the title; each is its name plus padding.
                let mut x = 12u16;
                for &p in PaneId::ALL {
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
}
