//! A runbook's metadata, read without running its body: the `const RUNBOOK = #{ … };` map at
//! the top of the file is evaluated alone, as a constant expression, by an engine with no
//! functions at all.

use std::path::Path;
use std::time::Duration;

use rhai::Engine;
use serde::{Deserialize, Serialize};

pub use crate::model::Mode;
use crate::model::signal::{Severity, Signal};

/// Which signals start the runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A signal kind, or a prefix ending in `*` (`gpu.*`).
    pub signal: String,
    /// The least severity that triggers.
    #[serde(default = "default_severity")]
    pub min_severity: Severity,
    /// Evidence values the signal must carry (equality), e.g. `#{ xid: 79 }`.
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// Start only once the signal has fired for this long (`"5m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for: Option<String>,
}

fn default_severity() -> Severity {
    Severity::Warning
}

/// Where the runbook may act. Empty lists: everywhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    pub clusters: Vec<String>,
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    description: String,
    trigger: Trigger,
    #[serde(default)]
    scope: Scope,
    cooldown: String,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookMeta {
    pub name: String,
    pub description: String,
    pub trigger: Trigger,
    pub scope: Scope,
    #[serde(with = "crate::model::duration_serde")]
    pub cooldown: Duration,
    /// At most this much automation, whatever the global mode says.
    pub mode: Option<Mode>,
    /// `trigger.held_for`, read.
    #[serde(skip)]
    pub trigger_held_for: Option<Duration>,
}

impl RunbookMeta {
    /// Does this signal start the runbook?
    pub fn matches(&self, s: &Signal) -> bool {
        let t = &self.trigger;
        let kind_ok = match t.signal.strip_suffix('*') {
            Some(prefix) => s.kind.starts_with(prefix),
            None => s.kind == t.signal,
        };
        let scope_ok = (self.scope.clusters.is_empty()
            || self.scope.clusters.contains(&s.subject.cluster))
            && (self.scope.namespaces.is_empty()
                || s.subject
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| self.scope.namespaces.contains(ns)));
        kind_ok
            && scope_ok
            && s.severity >= t.min_severity
            && t.evidence.iter().all(|(k, v)| s.evidence.get(k) == Some(v))
    }

    /// The mode a run of this runbook gets under the global one.
    pub fn effective_mode(&self, global: Mode) -> Mode {
        self.mode.map_or(global, |m| m.stricter(global))
    }
}

/// A problem in a runbook file, with where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RunbookError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl RunbookError {
    pub fn new(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

const MARKER: &str = "const RUNBOOK";

/// Finds the `#{ … }` after `const RUNBOOK =`: its byte range and 1-based line/column.
fn locate(source: &str) -> Option<(usize, usize)> {
    let start = source.match_indices(MARKER).map(|(i, _)| i).find(|i| {
        source[..*i]
            .rsplit('\n')
            .next()
            .is_none_or(|l| l.trim().is_empty())
    })?;
    let rest = &source[start + MARKER.len()..];
    let eq = rest.find('=')?;
    let open = start + MARKER.len() + eq + 1 + rest[eq + 1..].find("#{")?;
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut i = open + 1;
    let mut in_str: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match in_str {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    in_str = None;
                }
            }
            None => match b {
                b'"' | b'`' => in_str = Some(b),
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((open, i + 1));
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// Reads the metadata of a runbook's source.
pub fn parse(file: &Path, source: &str) -> Result<RunbookMeta, RunbookError> {
    let Some((from, to)) = locate(source) else {
        return Err(RunbookError::new(
            file,
            1,
            1,
            "no metadata: a runbook starts with `const RUNBOOK = #{ name: …, description: …, trigger: #{ signal: … }, cooldown: \"30m\" };`",
        ));
    };
    let (line0, col0) = line_col(source, from);
    let at = |pos: rhai::Position| {
        let line = pos.line().unwrap_or(1);
        let col = pos.position().unwrap_or(1);
        (
            line0 + line - 1,
            if line == 1 { col0 + col - 1 } else { col },
        )
    };
    // No functions, no variables: only literals evaluate.
    let mut engine = Engine::new_raw();
    engine.set_max_operations(10_000);
    engine.set_max_expr_depths(32, 8);
    engine.set_max_string_size(16 * 1024);
    let map: rhai::Map = engine.eval_expression(&source[from..to]).map_err(|e| {
        let (line, column) = at(e.position());
        RunbookError::new(file, line, column, format!("in the RUNBOOK metadata: {e}"))
    })?;
    let (line, column) = (line0, col0);
    let raw: RawMeta = rhai::serde::from_dynamic(&map.into()).map_err(|e| {
        RunbookError::new(file, line, column, format!("in the RUNBOOK metadata: {e}"))
    })?;
    let cooldown = humantime::parse_duration(&raw.cooldown).map_err(|e| {
        RunbookError::new(
            file,
            line,
            column,
            format!(
                "cooldown {:?} is not a duration like 30m: {e}",
                raw.cooldown
            ),
        )
    })?;
    let mode = match raw.mode.as_deref() {
        None => None,
        Some(m) => Some(Mode::parse(m).ok_or_else(|| {
            RunbookError::new(
                file,
                line,
                column,
                format!("mode {m:?} is not one of dry-run, approve, auto"),
            )
        })?),
    };
    let trigger_held_for = match raw.trigger.held_for.as_deref() {
        None => None,
        Some(h) => Some(humantime::parse_duration(h).map_err(|e| {
            RunbookError::new(
                file,
                line,
                column,
                format!("trigger.held_for {h:?} is not a duration like 5m: {e}"),
            )
        })?),
    };
    if raw.name.trim().is_empty() {
        return Err(RunbookError::new(file, line, column, "name is empty"));
    }
    Ok(RunbookMeta {
        name: raw.name,
        description: raw.description,
        trigger: raw.trigger,
        scope: raw.scope,
        cooldown,
        mode,
        trigger_held_for,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"// Cordon GPUs that fell off the bus.
const RUNBOOK = #{
    name: "gpu-xid-cordon",
    description: "XIDs that mean a bad GPU: cordon, drain gently, note",
    trigger: #{ signal: "gpu.xid", min_severity: "critical", evidence: #{ xid: 79 } },
    scope: #{ clusters: ["prod"] },
    cooldown: "30m",   // one run per node per half hour
    mode: "approve",
};

fn run(signal) {
    cordon(signal.subject.node);
}
"#;

    #[test]
    fn metadata_is_read_without_running_the_body() {
        let m = parse(Path::new("r.rhai"), GOOD).unwrap();
        assert_eq!(m.name, "gpu-xid-cordon");
        assert_eq!(m.trigger.min_severity, Severity::Critical);
        assert_eq!(m.trigger.evidence["xid"], serde_json::json!(79));
        assert_eq!(m.cooldown, Duration::from_secs(1800));
        assert_eq!(m.mode, Some(Mode::Approve));
        assert_eq!(m.effective_mode(Mode::Auto), Mode::Approve);
        assert_eq!(m.effective_mode(Mode::DryRun), Mode::DryRun);
    }

    #[test]
    fn a_syntax_error_in_the_metadata_names_the_file_line_and_column() {
        let bad = GOOD.replace("cooldown: \"30m\",", "cooldown: \"30m\" oops,");
        let e = parse(Path::new("runbooks/r.rhai"), &bad).unwrap_err();
        assert_eq!(e.file, "runbooks/r.rhai");
        assert_eq!(e.line, 7, "{e}");
        assert!(e.column > 1, "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse(Path::new("r.rhai"), &GOOD.replace("cooldown:", "cooldwn:")).unwrap_err();
        assert!(e.message.contains("cooldwn"), "{e}");
        let e = parse(Path::new("r.rhai"), &GOOD.replace("\"30m\"", "\"soon\"")).unwrap_err();
        assert!(e.message.contains("\"soon\""), "{e}");
        let e = parse(
            Path::new("r.rhai"),
            &GOOD.replace("\"approve\"", "\"yolo\""),
        )
        .unwrap_err();
        assert!(e.message.contains("yolo"), "{e}");
        let e = parse(Path::new("r.rhai"), "fn run() {}").unwrap_err();
        assert!(e.message.contains("no metadata"), "{e}");
    }

    #[test]
    fn metadata_cannot_call_anything() {
        let sneaky = GOOD.replace("\"30m\"", "timestamp()");
        assert!(parse(Path::new("r.rhai"), &sneaky).is_err());
    }

    #[test]
    fn triggers_match_kind_severity_scope_and_evidence() {
        let m = parse(Path::new("r.rhai"), GOOD).unwrap();
        let mut s = Signal {
            kind: "gpu.xid".into(),
            severity: Severity::Critical,
            subject: crate::model::signal::Subject {
                cluster: "prod".into(),
                ..Default::default()
            },
            summary: String::new(),
            evidence: [("xid".to_string(), serde_json::json!(79))].into(),
            action: None,
            first_seen: chrono::Utc::now(),
            dedup_key: "k".into(),
        };
        assert!(m.matches(&s));
        s.evidence.insert("xid".into(), serde_json::json!(13));
        assert!(!m.matches(&s));
        s.evidence.insert("xid".into(), serde_json::json!(79));
        s.subject.cluster = "staging".into();
        assert!(!m.matches(&s));
    }
}
