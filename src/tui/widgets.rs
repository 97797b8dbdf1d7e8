//! Drawing helpers every pane and the app's chrome share: titled blocks, the empty-table
//! message, detail-view fields and sections, the theme roles of severities and statuses, the
//! kill switch's emphasis, a plan step with its blast radius, the row filter, and the table
//! and scrolled-detail widgets of the table panes. May import the tui groundwork (theme, pane,
//! keymap, format), runbook and model.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::theme::{Role, Theme};
use crate::model::incident::IncidentStatus;
use crate::model::signal::Severity;
use crate::runbook::executor::PlanStep;

/// A bordered block titled in the theme's title style.
pub fn titled_block<'a>(title: impl Into<String>, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_style(theme.style(Role::Border))
        .title(Span::styled(title.into(), theme.style(Role::Title)))
}

/// The theme role a severity is drawn in.
pub fn severity_role(severity: Severity) -> Role {
    match severity {
        Severity::Critical => Role::Critical,
        Severity::Warning => Role::Warning,
        Severity::Info => Role::Info,
    }
}

/// The theme role an incident's status is drawn in.
pub fn status_role(status: IncidentStatus) -> Role {
    match status {
        IncidentStatus::Open => Role::Critical,
        IncidentStatus::Acknowledged => Role::Warning,
        IncidentStatus::Mitigated => Role::Info,
        IncidentStatus::Resolved => Role::Ok,
    }
}

fn names(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A list of at most three names, then how many more.
fn few(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(&format!(", +{}", names.len() - 3));
    }
    s
}

/// The blast radius of a plan step (a drain's pods, PDBs, GPUs and gang jobs), as spans;
/// `None` when the step has none (a cordon moves nothing). A refusal `said` already names is
/// not repeated.
pub fn blast_spans(
    blast: &serde_json::Value,
    said: &str,
    theme: &Theme,
) -> Option<Vec<Span<'static>>> {
    let map = blast.as_object()?;
    let mut spans = vec![Span::styled("blast radius: ", theme.style(Role::Header))];
    if let Some(why) = map.get("refused").and_then(|r| r.as_str()) {
        let text = if said.contains(why) {
            "REFUSED (see above) · ".to_string()
        } else {
            format!("REFUSED: {why} · ")
        };
        spans.push(Span::styled(text, theme.style(Role::Critical)));
    }
    let pods = names(map.get("pods_evicted").unwrap_or(&serde_json::Value::Null));
    spans.push(Span::raw(if pods.is_empty() {
        "evicts no pod".to_string()
    } else {
        format!(
            "evicts {} pod{} ({})",
            pods.len(),
            if pods.len() == 1 { "" } else { "s" },
            few(&pods)
        )
    }));
    spans.push(Span::raw(" · "));
    let pdbs = names(map.get("pdbs_blocking").unwrap_or(&serde_json::Value::Null));
    if pdbs.is_empty() {
        spans.push(Span::styled("no PDB blocks", theme.style(Role::Ok)));
    } else {
        spans.push(Span::styled(
            format!("PDB blocking: {}", few(&pdbs)),
            theme.style(Role::Warning),
        ));
    }
    let gpus = map
        .get("gpus")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    spans.push(Span::raw(format!(
        " · {gpus} GPU{}",
        if gpus == 1 { "" } else { "s" }
    )));
    let gangs = names(map.get("gang_jobs").unwrap_or(&serde_json::Value::Null));
    spans.push(Span::raw(" · "));
    if gangs.is_empty() {
        spans.push(Span::raw("no gang job"));
    } else {
        spans.push(Span::styled(
            format!("gang jobs: {}", few(&gangs)),
            theme.style(Role::Warning),
        ));
    }
    Some(spans)
}

/// A plan step's lines: its summary, then its blast radius under it.
pub fn plan_step_lines(
    number: Option<usize>,
    step: &PlanStep,
    indent: &str,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let head = match number {
        Some(n) => format!("{indent}{n}. "),
        None => indent.to_string(),
    };
    let pad = " ".repeat(head.chars().count());
    let mut lines = vec![Line::from(vec![
        Span::styled(head, theme.style(Role::Muted)),
        Span::raw(step.summary.clone()),
    ])];
    if let Some(mut spans) = blast_spans(&step.blast, &step.summary, theme) {
        spans.insert(0, Span::raw(pad));
        lines.push(Line::from(spans));
    }
    lines
}

/// The emphasis the kill switch gets wherever it shows.
pub fn kill_style(theme: &Theme) -> Style {
    theme
        .style(Role::Critical)
        .add_modifier(Modifier::BOLD | Modifier::REVERSED)
}

/// Separates a row's cells in the text the filter reads; no one types it into a filter.
pub const CELL_SEPARATOR: char = '\u{1f}';

/// The table filter of [`TableView::keeps`] (a case-insensitive substring of some cell), read
/// from one reused buffer: allocating a String per cell would cost more than a frame's budget
/// at 40,000 rows. Callers write the cells separated by [`CELL_SEPARATOR`].
pub struct RowFilter {
    needle: String,
    text: String,
}

impl RowFilter {
    pub fn new(filter: &str) -> Self {
        RowFilter {
            needle: filter.to_lowercase(),
            text: String::new(),
        }
    }

    pub fn keeps(&mut self, write_cells: impl FnOnce(&mut String)) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        self.text.clear();
        write_cells(&mut self.text);
        if self.text.is_ascii() {
            self.text.make_ascii_lowercase();
            self.text.contains(&self.needle)
        } else {
            self.text.to_lowercase().contains(&self.needle)
        }
    }
}

/// Says why a table is empty, on its first row.
pub fn draw_empty_message(frame: &mut Frame, inner: Rect, message: &str, theme: &Theme) {
    if inner.height < 2 {
        return;
    }
    let line = Rect {
        y: inner.y + 1,
        height: 1,
        ..inner
    };
    frame.render_widget(
        Paragraph::new(Line::styled(message.to_string(), theme.style(Role::Muted))),
        line,
    );
}

/// A `Key  value` line of a detail view.
pub fn field<'a>(theme: &Theme, key: &'a str, mut value: Vec<Span<'a>>) -> Line<'a> {
    let mut spans = vec![Span::styled(
        format!("{key:<14}"),
        theme.style(Role::Header),
    )];
    spans.append(&mut value);
    Line::from(spans)
}

/// A heading inside a detail view.
pub fn section<'a>(theme: &Theme, title: &'a str) -> Line<'a> {
    Line::styled(title, theme.style(Role::Accent))
}
