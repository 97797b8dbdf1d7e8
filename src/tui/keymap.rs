//! The keymap: one `Action` per thing a key can do, k9s and vim habits by default, user
//! overrides from `[keys]` in fleetdeck.toml (an action's list replaces its defaults), and the
//! help text generated from the bindings. Imports nothing but crossterm's key types (and serde,
//! so a `PaneId` can travel in an intent).

use std::collections::BTreeMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Panes of the cockpit, in tab order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PaneId {
    Overview,
    Nodes,
    Gpus,
    Endpoints,
    Cost,
    Signals,
    Incidents,
    Runbooks,
    Pods,
    Workloads,
    Events,
    Pipelines,
    Spark,
}

impl PaneId {
    /// Every pane in tab order; a new `PaneId` goes here, in `name` and (if it has one) in
    /// the default keys.
    pub const ALL: &[PaneId] = &[
        PaneId::Overview,
        PaneId::Nodes,
        PaneId::Gpus,
        PaneId::Endpoints,
        PaneId::Cost,
        PaneId::Signals,
        PaneId::Incidents,
        PaneId::Runbooks,
        PaneId::Pods,
        PaneId::Workloads,
        PaneId::Events,
        PaneId::Pipelines,
        PaneId::Spark,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PaneId::Overview => "overview",
            PaneId::Nodes => "nodes",
            PaneId::Gpus => "gpus",
            PaneId::Endpoints => "endpoints",
            PaneId::Cost => "cost",
            PaneId::Signals => "signals",
            PaneId::Incidents => "incidents",
            PaneId::Runbooks => "runbooks",
            PaneId::Pods => "pods",
            PaneId::Workloads => "workloads",
            PaneId::Events => "events",
            PaneId::Pipelines => "pipelines",
            PaneId::Spark => "spark",
        }
    }
}

/// Everything a key can ask for. Keys, the command palette and mouse events all become these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Help,
    Palette,
    Filter,
    Back,
    Open,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    SortNext,
    SortReverse,
    /// Incidents pane: write a note on the incident's timeline.
    Note,
    Acknowledge,
    /// Incidents pane: resolve (closes the incident, so it asks first).
    Resolve,
    /// Incidents pane: write the Markdown postmortem draft to the current directory.
    Export,
    /// Runbooks pane: approve the selected pending plan.
    Approve,
    /// Runbooks pane: deny the selected pending plan.
    Deny,
    /// Halt (or resume) every runbook's mutations, from any pane.
    KillSwitch,
    /// Nodes or GPUs pane: cordon the selected node (shows the plan, asks y/n).
    Cordon,
    Uncordon,
    /// Nodes or GPUs pane: drain the selected node (shows the blast radius, asks y/n).
    Drain,
    /// Endpoints pane: roll back the endpoint's serving Deployment; Workloads pane: the
    /// selected Deployment or InferenceService (asks y/n).
    Rollback,
    /// Endpoints pane: move the endpoint's registered model's serving alias back to the
    /// previous version (MLflow), and repin its serving object (plan first, asks y/n).
    RollbackModel,
    /// Workloads pane: restart the selected Deployment's pods, as `kubectl rollout restart`
    /// (plan first, asks y/n).
    RestartRollout,
    /// Workloads pane: scale the selected Deployment (asks the replica count, then y/n).
    Scale,
    /// Pods pane: delete the selected pod, as `kubectl delete pod` (plan first, asks y/n).
    DeletePod,
    /// A pod's logs over the whole pane (Signals pane: the selected signal's pod).
    Logs,
    /// An object's current YAML from the API server (Signals pane: the signal's subject).
    Yaml,
    GoTo(PaneId),
}

impl Action {
    /// Whether the action asks the cluster to change: a `Mutation`, planned first and cleared
    /// by the guard, refused under `--read-only`.
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            Action::Cordon
                | Action::Uncordon
                | Action::Drain
                | Action::Rollback
                | Action::RollbackModel
                | Action::RestartRollout
                | Action::DeletePod
                | Action::Scale
        )
    }

    /// Every action, in the order help lists them.
    pub fn all() -> Vec<Action> {
        let mut v = vec![
            Action::Quit,
            Action::Help,
            Action::Palette,
            Action::Filter,
            Action::Back,
            Action::Open,
            Action::Up,
            Action::Down,
            Action::PageUp,
            Action::PageDown,
            Action::Top,
            Action::Bottom,
            Action::NextPane,
            Action::PrevPane,
            Action::SortNext,
            Action::SortReverse,
            Action::Note,
            Action::Acknowledge,
            Action::Resolve,
            Action::Export,
            Action::Approve,
            Action::Deny,
            Action::KillSwitch,
            Action::Cordon,
            Action::Uncordon,
            Action::Drain,
            Action::Rollback,
            Action::RollbackModel,
            Action::RestartRollout,
            Action::Scale,
            Action::DeletePod,
            Action::Logs,
            Action::Yaml,
        ];
        v.extend(PaneId::ALL.iter().copied().map(Action::GoTo));
        v
    }

    /// The action's key in `[keys]`.
    pub fn config_key(self) -> String {
        match self {
            Action::Quit => "quit".into(),
            Action::Help => "help".into(),
            Action::Palette => "palette".into(),
            Action::Filter => "filter".into(),
            Action::Back => "back".into(),
            Action::Open => "open".into(),
            Action::Up => "up".into(),
            Action::Down => "down".into(),
            Action::PageUp => "page_up".into(),
            Action::PageDown => "page_down".into(),
            Action::Top => "top".into(),
            Action::Bottom => "bottom".into(),
            Action::NextPane => "next_pane".into(),
            Action::PrevPane => "prev_pane".into(),
            Action::SortNext => "sort_next".into(),
            Action::SortReverse => "sort_reverse".into(),
            Action::Note => "note".into(),
            Action::Acknowledge => "acknowledge".into(),
            Action::Resolve => "resolve".into(),
            Action::Export => "export".into(),
            Action::Approve => "approve".into(),
            Action::Deny => "deny".into(),
            Action::KillSwitch => "kill_switch".into(),
            Action::Cordon => "cordon".into(),
            Action::Uncordon => "uncordon".into(),
            Action::Drain => "drain".into(),
            Action::Rollback => "rollback".into(),
            Action::RollbackModel => "rollback_model".into(),
            Action::RestartRollout => "restart".into(),
            Action::Scale => "scale".into(),
            Action::DeletePod => "delete_pod".into(),
            Action::Logs => "logs".into(),
            Action::Yaml => "yaml".into(),
            Action::GoTo(p) => format!("goto_{}", p.name()),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Action::Quit => "quit".into(),
            Action::Help => "show this help".into(),
            Action::Palette => "command palette (:nodes, :ctx NAME…)".into(),
            Action::Filter => "filter the current table".into(),
            Action::Back => "back / close / clear the filter".into(),
            Action::Open => "open or expand the selected row".into(),
            Action::Up => "move up".into(),
            Action::Down => "move down".into(),
            Action::PageUp => "page up".into(),
            Action::PageDown => "page down".into(),
            Action::Top => "first row".into(),
            Action::Bottom => "last row".into(),
            Action::NextPane => "next pane".into(),
            Action::PrevPane => "previous pane".into(),
            Action::SortNext => "sort by the next column".into(),
            Action::SortReverse => "reverse the sort".into(),
            Action::Note => "incident: add a note to its timeline".into(),
            Action::Acknowledge => "incident: acknowledge it".into(),
            Action::Resolve => "incident: resolve it (asks y/n)".into(),
            Action::Export => "incident: write ./INC-n-postmortem.md".into(),
            Action::Approve => "runbooks: approve the selected plan".into(),
            Action::Deny => "runbooks: deny the selected plan".into(),
            Action::KillSwitch => "kill switch: halt or resume runbooks".into(),
            Action::Cordon => "node: cordon (plan first, asks y/n)".into(),
            Action::Uncordon => "node: uncordon (plan first, asks y/n)".into(),
            Action::Drain => "node: drain (blast radius, asks y/n)".into(),
            Action::Rollback => "endpoint or workload: roll back its Deployment".into(),
            Action::RollbackModel => {
                "endpoint: its registered model's alias back a version (MLflow; asks y/n)".into()
            }
            Action::RestartRollout => "deployment: rollout restart (asks y/n)".into(),
            Action::Scale => "deployment: scale (asks the replicas, then y/n)".into(),
            Action::DeletePod => "pod: delete it (plan first, asks y/n)".into(),
            Action::Logs => {
                "pod: its logs (c container · p previous · f follow · / search · s save)".into()
            }
            Action::Yaml => "object: its YAML from the API server (m managedFields)".into(),
            Action::GoTo(p) => format!("go to {}", p.name()),
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Action::Quit => &["q", "ctrl-c"],
            Action::Help => &["?"],
            Action::Palette => &[":"],
            Action::Filter => &["/"],
            Action::Back => &["esc"],
            Action::Open => &["enter"],
            Action::Up => &["k", "up"],
            Action::Down => &["j", "down"],
            Action::PageUp => &["ctrl-u", "pageup"],
            Action::PageDown => &["ctrl-d", "pagedown"],
            Action::Top => &["g", "home"],
            Action::Bottom => &["G", "end"],
            // `l` is the logs, as in k9s.
            Action::NextPane => &["tab", "right"],
            Action::PrevPane => &["backtab", "h", "left"],
            Action::SortNext => &["s"],
            Action::SortReverse => &["S"],
            Action::Note => &["n"],
            Action::Acknowledge => &["a"],
            Action::Resolve => &["R"],
            Action::Export => &["e"],
            Action::Approve => &["y"],
            Action::Deny => &["N"],
            Action::KillSwitch => &["K"],
            Action::Cordon => &["c"],
            Action::Uncordon => &["u"],
            Action::Drain => &["D"],
            Action::Rollback => &["B"],
            Action::RollbackModel => &["M"],
            Action::RestartRollout => &["r"],
            // `s` sorts; `#` asks for a number.
            Action::Scale => &["#"],
            // k9s's kill; `D` drains a node and ctrl-d pages down.
            Action::DeletePod => &["ctrl-k"],
            Action::Logs => &["l"],
            // `y` approves a runbook's plan; YAML is the shifted key.
            Action::Yaml => &["Y"],
            Action::GoTo(PaneId::Overview) => &["1"],
            Action::GoTo(PaneId::Nodes) => &["2"],
            Action::GoTo(PaneId::Gpus) => &["3"],
            Action::GoTo(PaneId::Endpoints) => &["4"],
            Action::GoTo(PaneId::Cost) => &["5"],
            Action::GoTo(PaneId::Signals) => &["6"],
            Action::GoTo(PaneId::Incidents) => &["7"],
            Action::GoTo(PaneId::Runbooks) => &["8"],
            Action::GoTo(PaneId::Pods) => &["9"],
            Action::GoTo(PaneId::Workloads) => &["0"],
            Action::GoTo(PaneId::Events) => &["E"],
            Action::GoTo(PaneId::Pipelines) => &["P"],
            // Spark jobs as a table (`j` moves down); the pipelines pane has them as a section too.
            Action::GoTo(PaneId::Spark) => &["J"],
        }
    }
}

/// A key with its modifiers, as a binding is written: `q`, `G`, `ctrl-c`, `shift-tab`, `f1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    code: KeyCodeOrd,
    ctrl: bool,
    alt: bool,
}

/// `KeyCode` subset that bindings use, orderable for maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyCodeOrd {
    Char(char),
    F(u8),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Delete,
}

impl Key {
    /// Parses a binding; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut shift = false;
        let mut rest = text.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-").filter(|r| !r.is_empty()) {
                shift = true;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let named = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => Some(KeyCodeOrd::Enter),
            "esc" | "escape" => Some(KeyCodeOrd::Esc),
            "tab" if shift => Some(KeyCodeOrd::BackTab),
            "tab" => Some(KeyCodeOrd::Tab),
            "backtab" => Some(KeyCodeOrd::BackTab),
            "backspace" => Some(KeyCodeOrd::Backspace),
            "up" => Some(KeyCodeOrd::Up),
            "down" => Some(KeyCodeOrd::Down),
            "left" => Some(KeyCodeOrd::Left),
            "right" => Some(KeyCodeOrd::Right),
            "home" => Some(KeyCodeOrd::Home),
            "end" => Some(KeyCodeOrd::End),
            "pageup" | "pgup" => Some(KeyCodeOrd::PageUp),
            "pagedown" | "pgdn" => Some(KeyCodeOrd::PageDown),
            "delete" | "del" => Some(KeyCodeOrd::Delete),
            "space" => Some(KeyCodeOrd::Char(' ')),
            f if f.len() >= 2
                && f.starts_with('f')
                && f[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                let n: u8 = f[1..]
                    .parse()
                    .map_err(|_| format!("{text:?}: no such function key"))?;
                if !(1..=12).contains(&n) {
                    return Err(format!("{text:?}: function keys are f1 to f12"));
                }
                Some(KeyCodeOrd::F(n))
            }
            _ => None,
        };
        let code = match named {
            Some(c) => c,
            None => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_control() => KeyCodeOrd::Char(if shift {
                        c.to_ascii_uppercase()
                    } else if ctrl {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    }),
                    _ => {
                        return Err(format!(
                            "{text:?} is not a key: use one character (q, G, ?), a name (enter, esc, tab, up, pageup, f1 …), optionally after ctrl-, alt- or shift-"
                        ));
                    }
                }
            }
        };
        Ok(Key { code, ctrl, alt })
    }

    /// The key a terminal event names, if bindings can use it.
    pub fn from_event(e: &KeyEvent) -> Option<Key> {
        let ctrl = e.modifiers.contains(KeyModifiers::CONTROL);
        let alt = e.modifiers.contains(KeyModifiers::ALT);
        let code = match e.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::F(n) => KeyCodeOrd::F(n),
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Backspace => KeyCodeOrd::Backspace,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            KeyCode::Delete => KeyCodeOrd::Delete,
            _ => return None,
        };
        Some(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCodeOrd::Char(' ') => f.write_str("space"),
            KeyCodeOrd::Char(c) => write!(f, "{c}"),
            KeyCodeOrd::F(n) => write!(f, "f{n}"),
            other => f.write_str(&format!("{other:?}").to_ascii_lowercase()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeymapError {
    #[error("[keys] {key}: unknown action; actions are {known}")]
    UnknownAction { key: String, known: String },
    #[error("[keys] {action} = {value:?}: {message}")]
    BadKey {
        action: String,
        value: String,
        message: String,
    },
    #[error("[keys] {key} is bound to both {first} and {second}; give each key one action")]
    Conflict {
        key: String,
        first: String,
        second: String,
    },
}

/// The keymap `[keys]` asks for; a bad binding is an error that names the config's file,
/// line and key (the config itself does not know the cockpit's actions).
pub fn from_config(cfg: &crate::config::Config) -> Result<Keymap, crate::config::ConfigError> {
    Keymap::with_overrides(&cfg.keys).map_err(|e| {
        let key = match &e {
            KeymapError::UnknownAction { key, .. } => key.clone(),
            KeymapError::BadKey { action, .. } => action.clone(),
            KeymapError::Conflict { second, .. } => second.clone(),
        };
        cfg.error_at("keys", &key, e.to_string())
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    bindings: BTreeMap<Key, Action>,
    /// Each action's keys in the order they were given, for help.
    by_action: Vec<(Action, Vec<Key>)>,
}

impl Default for Keymap {
    fn default() -> Self {
        Self::with_overrides(&BTreeMap::new()).unwrap_or(Keymap {
            bindings: BTreeMap::new(),
            by_action: Vec::new(),
        })
    }
}

impl Keymap {
    /// The default bindings with `overrides` (action key → keys) replacing an action's defaults.
    pub fn with_overrides(
        overrides: &BTreeMap<String, Vec<String>>,
    ) -> Result<Keymap, KeymapError> {
        let actions = Action::all();
        for key in overrides.keys() {
            if !actions.iter().any(|a| a.config_key() == *key) {
                let known: Vec<String> = actions.iter().map(|a| a.config_key()).collect();
                return Err(KeymapError::UnknownAction {
                    key: key.clone(),
                    known: known.join(", "),
                });
            }
        }
        let mut bindings: BTreeMap<Key, Action> = BTreeMap::new();
        let mut by_action = Vec::new();
        for action in actions {
            let mut these = Vec::new();
            let keys: Vec<String> = match overrides.get(&action.config_key()) {
                Some(list) => list.clone(),
                None => action.defaults().iter().map(|s| s.to_string()).collect(),
            };
            for text in keys {
                let key = Key::parse(&text).map_err(|message| KeymapError::BadKey {
                    action: action.config_key(),
                    value: text.clone(),
                    message,
                })?;
                if let Some(previous) = bindings.insert(key, action)
                    && previous != action
                {
                    return Err(KeymapError::Conflict {
                        key: key.to_string(),
                        first: previous.config_key(),
                        second: action.config_key(),
                    });
                }
                these.push(key);
            }
            by_action.push((action, these));
        }
        Ok(Keymap {
            bindings,
            by_action,
        })
    }

    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        Key::from_event(event).and_then(|k| self.bindings.get(&k).copied())
    }

    pub fn keys_for(&self, action: Action) -> Vec<Key> {
        self.by_action
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, k)| k.clone())
            .unwrap_or_default()
    }

    /// Help lines generated from the bindings: `keys  description`, in action order.
    pub fn help(&self) -> Vec<(String, String)> {
        Action::all()
            .into_iter()
            .map(|a| {
                let keys: Vec<String> = self.keys_for(a).iter().map(Key::to_string).collect();
                (keys.join(" / "), a.describe())
            })
            .filter(|(keys, _)| !keys.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_follow_k9s_and_vim_habits() {
        let k = Keymap::default();
        assert_eq!(
            k.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Down, KeyModifiers::NONE)),
            Some(Action::Down)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char(':'), KeyModifiers::NONE)),
            Some(Action::Palette)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('/'), KeyModifiers::NONE)),
            Some(Action::Filter)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            k.action(&ev(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevPane)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('3'), KeyModifiers::NONE)),
            Some(Action::GoTo(PaneId::Gpus))
        );
        assert_eq!(k.action(&ev(KeyCode::Char('x'), KeyModifiers::NONE)), None);
    }

    #[test]
    fn an_override_replaces_only_that_actions_keys() {
        let o = BTreeMap::from([("quit".to_string(), vec!["ctrl-q".to_string()])]);
        let k = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            k.action(&ev(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(k.action(&ev(KeyCode::Char('q'), KeyModifiers::NONE)), None);
        assert_eq!(
            k.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Action::Down)
        );
    }

    #[test]
    fn bad_bindings_are_errors_that_name_the_action_and_value() {
        let bad = |action: &str, key: &str| {
            Keymap::with_overrides(&BTreeMap::from([(
                action.to_string(),
                vec![key.to_string()],
            )]))
            .unwrap_err()
        };
        assert!(matches!(bad("quit", "ctrl-"), KeymapError::BadKey { .. }));
        let e = bad("quit", "hyper-q").to_string();
        assert!(e.contains("[keys] quit = \"hyper-q\""), "{e}");
        assert!(matches!(
            bad("teleport", "t"),
            KeymapError::UnknownAction { .. }
        ));
        assert_eq!(
            bad("help", "f13").to_string(),
            "[keys] help = \"f13\": \"f13\": function keys are f1 to f12"
        );
        let e = bad("help", "j").to_string();
        assert!(
            e.contains("bound to both") && e.contains("help") && e.contains("down"),
            "{e}"
        );
    }

    #[test]
    fn help_lists_every_action_with_its_keys() {
        let help = Keymap::default().help();
        assert_eq!(help.len(), Action::all().len());
        assert!(
            help.iter()
                .any(|(keys, what)| keys == "q / ctrl-c" && what == "quit"),
            "{help:?}"
        );
        assert!(help.iter().any(|(keys, _)| keys.contains("enter")));
    }

    #[test]
    fn incident_actions_have_default_keys_that_keys_can_rebind() {
        let k = Keymap::default();
        let none = KeyModifiers::NONE;
        assert_eq!(k.action(&ev(KeyCode::Char('n'), none)), Some(Action::Note));
        assert_eq!(
            k.action(&ev(KeyCode::Char('a'), none)),
            Some(Action::Acknowledge)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Action::Resolve)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('e'), none)),
            Some(Action::Export)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('7'), none)),
            Some(Action::GoTo(PaneId::Incidents))
        );
        let o = BTreeMap::from([
            ("resolve".to_string(), vec!["ctrl-r".to_string()]),
            ("goto_incidents".to_string(), vec!["i".to_string()]),
        ]);
        let k = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            k.action(&ev(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Action::Resolve)
        );
        assert_eq!(k.action(&ev(KeyCode::Char('R'), KeyModifiers::SHIFT)), None);
        assert_eq!(
            k.action(&ev(KeyCode::Char('i'), none)),
            Some(Action::GoTo(PaneId::Incidents))
        );
        assert!(
            k.help()
                .iter()
                .any(|(keys, what)| keys == "ctrl-r" && what.contains("resolve"))
        );
    }

    #[test]
    fn automation_and_manual_action_keys_have_defaults_that_keys_can_rebind() {
        let k = Keymap::default();
        let none = KeyModifiers::NONE;
        let shift = KeyModifiers::SHIFT;
        for (code, modifiers, action) in [
            (KeyCode::Char('y'), none, Action::Approve),
            (KeyCode::Char('N'), shift, Action::Deny),
            (KeyCode::Char('K'), shift, Action::KillSwitch),
            (KeyCode::Char('c'), none, Action::Cordon),
            (KeyCode::Char('u'), none, Action::Uncordon),
            (KeyCode::Char('D'), shift, Action::Drain),
            (KeyCode::Char('B'), shift, Action::Rollback),
            (KeyCode::Char('M'), shift, Action::RollbackModel),
            (KeyCode::Char('k'), KeyModifiers::CONTROL, Action::DeletePod),
            (KeyCode::Char('8'), none, Action::GoTo(PaneId::Runbooks)),
        ] {
            assert_eq!(k.action(&ev(code, modifiers)), Some(action), "{code:?}");
        }
        let o = BTreeMap::from([
            ("kill_switch".to_string(), vec!["ctrl-x".to_string()]),
            ("goto_runbooks".to_string(), vec!["f8".to_string()]),
        ]);
        let k = Keymap::with_overrides(&o).unwrap();
        assert_eq!(
            k.action(&ev(KeyCode::Char('x'), KeyModifiers::CONTROL)),
            Some(Action::KillSwitch)
        );
        assert_eq!(k.action(&ev(KeyCode::Char('K'), shift)), None);
        assert_eq!(
            k.action(&ev(KeyCode::F(8), none)),
            Some(Action::GoTo(PaneId::Runbooks))
        );
        assert!(
            k.help()
                .iter()
                .any(|(keys, what)| keys == "f8" && what == "go to runbooks")
        );
    }

    #[test]
    fn key_overrides_are_checked_and_located_in_the_config_file() {
        let parse = |src: &str| {
            crate::config::Config::parse(src, std::path::Path::new("fleetdeck.toml"))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let cfg = parse("[keys]\nquit = [\"ctrl-q\"]\n");
        assert!(from_config(&cfg).is_ok());
        let err = from_config(&parse(
            "[log]\nlevel = \"info\"\n[keys]\nteleport = [\"t\"]\n",
        ))
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:4:") && err.contains("keys.teleport"),
            "{err}"
        );
        let err = from_config(&parse("[keys]\nhelp = [\"j\"]\n"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bound to both"), "{err}");
    }
}
