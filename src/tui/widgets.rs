//! Drawing helpers every pane and the app's chrome share: titled blocks, the empty-table message
//! and the start of a hand-drawn table (`clamped_page`), detail-view fields and sections, the theme
//! roles of severities and statuses, the kill switch's emphasis, a plan step with its blast radius,
//! the row filter, the table and scrolled-detail widgets of the table panes, and the width helpers
//! that size columns to their content and cut names in the middle (`middle_ellipsis`,
//! `measured_widths`). May import the tui groundwork (theme, pane, keymap, format), runbook and
//! model.

use std::cmp::Ordering;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::format::sorted_header;
use super::pane::{TableView, ViewCtx};
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

/// The start of a table drawn in `inner` (its header on the first line): with no rows, the
/// `empty` message where the rows would be and `None`; else the page height (the rows under
/// the header), with the view's selection kept inside it.
pub fn clamped_page(
    frame: &mut Frame,
    inner: Rect,
    rows: usize,
    view: &mut TableView,
    theme: &Theme,
    empty: impl FnOnce() -> &'static str,
) -> Option<usize> {
    if rows == 0 {
        frame.render_widget(
            Paragraph::new(Span::styled(empty(), theme.style(Role::Muted))),
            inner,
        );
        return None;
    }
    let height = usize::from(inner.height.saturating_sub(1));
    view.clamp(rows, height);
    Some(height)
}

/// The rows of a hand-drawn table that fit its page: `height` of them from the view's offset,
/// each made by `row`, the selected one in the selection style.
pub fn visible_rows<'a, T>(
    rows: &'a [T],
    view: &TableView,
    height: usize,
    theme: &Theme,
    row: impl Fn(&'a T) -> Row<'a>,
) -> Vec<Row<'a>> {
    let selection = theme.style(Role::Selection);
    rows.iter()
        .enumerate()
        .skip(view.offset)
        .take(height)
        .map(|(pos, r)| {
            let row = row(r);
            if pos == view.selected {
                row.style(selection)
            } else {
                row
            }
        })
        .collect()
}

/// A row of text cells, each in its theme role.
pub fn role_row<'a>(cells: &[String], roles: &[Role], theme: &Theme) -> Row<'a> {
    Row::new(
        cells
            .iter()
            .zip(roles)
            .map(|(text, role)| Cell::from(text.clone()).style(theme.style(*role))),
    )
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

/// When a typed table shows its first column, the cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterColumn {
    /// Unless `:ctx` narrows the view to one cluster (CLUSTER of Nodes and GPUs).
    UnlessScoped,
    /// While more than one cluster is in view (CONTEXT of Events and Workloads, as kubectl).
    WhileSeveral,
}

/// How a cell wider than its column is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Cut at its end.
    CutEnd,
    /// A name whose end tells it apart from its neighbours (`gke-sim-b-h100-pool-0042`): cut
    /// where its neighbours are the same as it, not at the end.
    KeepDistinct,
    /// A short, telling column (a status, a reason, a count) that is never cut: the long
    /// columns (names, messages) give way instead.
    Whole,
}

/// A column of a typed table (Nodes, GPUs, Events, Workloads): every column of its table, its
/// header, the most columns its cells may take and how a longer cell is fitted.
pub trait TableColumn: Copy + 'static {
    /// Every column in order, the cluster's first.
    const ALL: &'static [Self];
    /// When the first column shows.
    const CLUSTER_COLUMN: ClusterColumn;

    fn header(self) -> &'static str;
    fn max_width(self) -> usize;
    fn fit(self) -> Fit {
        Fit::CutEnd
    }

    /// The columns shown in `ctx`: all, or all but the cluster's.
    fn shown(ctx: &ViewCtx) -> &'static [Self] {
        let all_clusters = match Self::CLUSTER_COLUMN {
            ClusterColumn::UnlessScoped => ctx.cluster.is_none(),
            ClusterColumn::WhileSeveral => ctx.clusters().count() > 1,
        };
        if all_clusters {
            Self::ALL
        } else {
            Self::ALL.get(1..).unwrap_or_default()
        }
    }
}

/// `text` in at most `width` columns, cut in the middle with `…` when longer: names of one
/// fleet share their start (`gke-sim-b-h100-pool-`) and differ at the end, so an end cut would
/// make every row read the same. The end keeps the extra column of an odd split.
pub fn middle_ellipsis(text: &str, width: usize) -> String {
    let len = text.chars().count();
    if len <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head = (width - 1) / 2;
    let tail = width - 1 - head;
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(len - tail));
    out
}

/// For each of `texts` (a column's visible cells, top to bottom), how many leading and trailing
/// characters it shares with the row above or below it, whichever shares more: what lies between
/// tells the row from both neighbours. A column of one fleet's nodes (`ip-10-20-0-10.ec2.internal`)
/// differs only in the middle; where two clusters meet, the rows share nothing with each other
/// and keep their own cut. A lone row, or rows that all repeat one name, share nothing.
pub fn neighbour_ends(texts: &[String]) -> Vec<(usize, usize)> {
    fn common(a: &str, b: &str) -> (usize, usize) {
        let prefix = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        let suffix = a
            .chars()
            .rev()
            .zip(b.chars().rev())
            .take_while(|(x, y)| x == y)
            .count();
        (prefix, suffix)
    }
    // Rows that repeat a name (a node's eight GPUs) are one run: each is compared with the
    // nearest different name above and below it.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match runs.last_mut() {
            Some((start, end)) if texts[*start] == *text => *end = i + 1,
            _ => runs.push((i, i + 1)),
        }
    }
    let mut ends = vec![(0, 0); texts.len()];
    for (r, &(start, end)) in runs.iter().enumerate() {
        let text = &texts[start];
        let above = r.checked_sub(1).map(|p| common(text, &texts[runs[p].0]));
        let below = runs.get(r + 1).map(|n| common(text, &texts[n.0]));
        let (a, b) = (above.unwrap_or((0, 0)), below.unwrap_or((0, 0)));
        let both = (a.0.max(b.0), a.1.max(b.1));
        // Told from each neighbour by a different character, nothing is distinct from both:
        // the row is cut against the one above it, as the eye reads down.
        let fill = if both.0 + both.1 >= text.chars().count() {
            above.or(below).unwrap_or((0, 0))
        } else {
            both
        };
        ends[start..end].fill(fill);
    }
    ends
}

/// `text` in at most `width` columns, cut where its neighbours in the column are the same as it
/// (`prefix` leading and `suffix` trailing characters, from [`neighbour_ends`]), so the part that
/// tells it apart stays: `ip-10-20-0-10.ec2…` when every node ends in `.ec2.internal`,
/// `…pool-0042` when every node starts with `gke-sim-b-h100-`. Without a distinct part to keep,
/// the middle goes ([`middle_ellipsis`]).
pub fn distinct_ellipsis(text: &str, width: usize, prefix: usize, suffix: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    if len <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    // The distinct part grows to whole words of the name (between `-`, `.`, `_`, `/`), so a
    // cut never leaves `…0-20-0-1…` for `ip-10-20-0-11` next to `ip-10-20-0-21`.
    let is_separator = |c: char| matches!(c, '-' | '.' | '_' | '/' | ':');
    let mut prefix = prefix.min(len);
    while prefix > 0 && !is_separator(chars[prefix - 1]) {
        prefix -= 1;
    }
    let mut distinct_end = len - suffix.min(len - prefix);
    while distinct_end < len && distinct_end > prefix && !is_separator(chars[distinct_end]) {
        distinct_end += 1;
    }
    let suffix = len - distinct_end;
    if prefix >= distinct_end || width < 3 {
        return middle_ellipsis(text, width);
    }
    let mut out = String::with_capacity(width * 4);
    if distinct_end < width {
        // The start and the distinct part fit: the shared tail goes.
        out.extend(&chars[..width - 1]);
        out.push('…');
    } else if len - prefix < width {
        // The distinct part and the end fit: the shared head goes.
        out.push('…');
        out.extend(&chars[len - (width - 1)..]);
    } else {
        // Neither end fits with the distinct part: an ellipsis at both ends. The window ends
        // where the distinct part does and takes as much of what leads to it as fits
        // (`…10-20-0-14…`); a distinct part longer than that keeps its own ends.
        let (head, tail) = (usize::from(prefix > 0), usize::from(suffix > 0));
        let room = width - head - tail;
        if head > 0 {
            out.push('…');
        }
        if distinct_end - prefix <= room {
            out.extend(&chars[distinct_end - room..distinct_end]);
        } else {
            let distinct: String = chars[prefix..distinct_end].iter().collect();
            out.push_str(&middle_ellipsis(&distinct, room));
        }
        if tail > 0 {
            out.push('…');
        }
    }
    out
}

/// Column widths for a table of text cells: each column as wide as its widest cell or its
/// header, and when they do not fit `available` cells (spacing of one between columns taken
/// off), the widest columns give way first ([`fit_widths`]), never below their header.
pub fn measured_widths<'a>(
    headers: &[&str],
    rows: impl IntoIterator<Item = &'a [String]>,
    available: usize,
) -> Vec<usize> {
    measured_widths_keeping(headers, rows, available, &[])
}

/// As [`measured_widths`], with the columns whose index is in `whole` never cut (a kind, a
/// status): only the others give way.
pub fn measured_widths_keeping<'a>(
    headers: &[&str],
    rows: impl IntoIterator<Item = &'a [String]>,
    available: usize,
    whole: &[usize],
) -> Vec<usize> {
    let mut floors: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    let mut wanted = floors.clone();
    for row in rows {
        for (w, cell) in wanted.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for &i in whole {
        if let (Some(f), Some(&w)) = (floors.get_mut(i), wanted.get(i)) {
            *f = w;
        }
    }
    let spacing = headers.len().saturating_sub(1);
    fit_widths(&wanted, &floors, available.saturating_sub(spacing))
}

/// The rows `text` takes when word-wrapped (ratatui's `Wrap`) to `width` columns: what an
/// area must be given so that nothing in it is cut. Counts greedily, as the wrapper does.
pub fn wrapped_rows(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let mut rows = 1;
    let mut used = 0;
    for (i, word) in text.split(' ').enumerate() {
        let len = word.chars().count();
        // Leading spaces take room like any other character (the wrap keeps them).
        let need = if i == 0 { len } else { used + 1 + len };
        if need <= width {
            used = need;
        } else if len <= width {
            rows += 1;
            used = len;
        } else {
            // A word longer than the row is broken across rows.
            rows += usize::from(used > 0) + (len - 1) / width;
            used = (len - 1) % width + 1;
        }
    }
    rows
}

/// `Constraint::Length` for each width.
pub fn length_constraints(widths: &[usize]) -> Vec<Constraint> {
    widths
        .iter()
        .map(|&w| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX)))
        .collect()
}

/// A row of a typed table: its cells are written into a reused buffer (at 40,000 rows a String
/// per cell costs more than a frame's budget), measured, styled and compared per column.
pub trait TableRow<C: TableColumn> {
    fn write_cell(&self, column: C, out: &mut String);
    /// The columns the cell needs, without formatting it where the length is known.
    fn content_width(&self, column: C) -> usize;
    fn cell_style(&self, column: C, theme: &Theme) -> Style;
    fn compare(&self, other: &Self, column: C) -> Ordering;
    /// The row's style when it is not selected.
    fn row_style(&self, theme: &Theme) -> Style {
        theme.style(Role::Base)
    }
}

/// The rows the view's filter keeps (a cell contains it, any case), in its sort order.
pub fn filter_and_sort<C: TableColumn, R: TableRow<C>>(
    rows: impl Iterator<Item = R>,
    columns: &[C],
    view: &TableView,
) -> Vec<R> {
    let mut filter = RowFilter::new(&view.filter);
    let mut rows: Vec<R> = rows
        .filter(|row| {
            filter.keeps(|out| {
                for (i, &column) in columns.iter().enumerate() {
                    if i > 0 {
                        out.push(CELL_SEPARATOR);
                    }
                    row.write_cell(column, out);
                }
            })
        })
        .collect();
    if let Some(column) = view.sort.and_then(|(i, _)| columns.get(i).copied()) {
        let descending = view.sort.is_some_and(|(_, d)| d);
        rows.sort_by(|a, b| {
            let order = a.compare(b, column);
            if descending { order.reverse() } else { order }
        });
    }
    rows
}

/// A typed table in a focused block: the header row with the sort marked, columns as wide as
/// their widest visible-or-not cell (up to each column's maximum), only the visible rows
/// formatted, the selection one style across its row, and `empty(filter)` on the first row
/// when no row shows. Keeps the selection visible and answers the page height (rows under the header).
pub struct DataTable<'a, C, R> {
    pub title: Line<'a>,
    pub columns: &'a [C],
    pub rows: &'a [R],
}

/// The widest cell of each column over `rows` (content only, before the header and the
/// column's maximum): what a pane caches while its rows do not change.
pub fn content_widths<C: TableColumn, R: TableRow<C>>(columns: &[C], rows: &[R]) -> Vec<usize> {
    columns
        .iter()
        .map(|&column| {
            rows.iter()
                .map(|r| r.content_width(column))
                .max()
                .unwrap_or(0)
        })
        .collect()
}

impl<C: TableColumn, R: TableRow<C>> DataTable<'_, C, R> {
    pub fn draw(
        self,
        frame: &mut Frame,
        area: Rect,
        theme: &Theme,
        view: &mut TableView,
        empty: impl FnOnce(&str) -> String,
    ) -> usize {
        self.draw_with_widths(frame, area, theme, view, None, empty)
    }

    /// As [`DataTable::draw`], with the columns' content widths given (from
    /// [`content_widths`], cached) instead of measured over every row.
    pub fn draw_with_widths(
        self,
        frame: &mut Frame,
        area: Rect,
        theme: &Theme,
        view: &mut TableView,
        content: Option<&[usize]>,
        empty: impl FnOnce(&str) -> String,
    ) -> usize {
        let DataTable {
            title,
            columns,
            rows,
        } = self;
        let block = Block::bordered()
            .title(title)
            .border_style(theme.style(Role::BorderFocused));
        let inner = block.inner(area);
        // One line of the inner area is the header.
        let page = usize::from(inner.height.saturating_sub(1)).max(1);
        view.clamp(rows.len(), page);

        let headers: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| sorted_header(c.header(), i, view.sort))
            .collect();
        let measured;
        let content = match content {
            Some(c) if c.len() == columns.len() => c,
            _ => {
                measured = content_widths(columns, rows);
                &measured
            }
        };
        let wanted: Vec<usize> = columns
            .iter()
            .zip(&headers)
            .zip(content)
            .map(|((&column, header), &content)| {
                content.min(column.max_width()).max(header.chars().count())
            })
            .collect();
        let floors: Vec<usize> = columns
            .iter()
            .zip(&headers)
            .zip(&wanted)
            .map(|((c, h), &w)| {
                if c.fit() == Fit::Whole {
                    w
                } else {
                    h.chars().count()
                }
            })
            .collect();
        let spacing = columns.len().saturating_sub(1);
        let fitted = fit_widths(
            &wanted,
            &floors,
            usize::from(inner.width).saturating_sub(spacing),
        );
        let widths: Vec<Constraint> = fitted
            .iter()
            .map(|&w| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX)))
            .collect();

        let end = (view.offset + page).min(rows.len());
        let visible = rows.get(view.offset..end).unwrap_or_default();
        // What the visible names of each cut column share, so a cut keeps what differs.
        let shared: Vec<Vec<(usize, usize)>> = columns
            .iter()
            .map(|&column| {
                if column.fit() != Fit::KeepDistinct {
                    return Vec::new();
                }
                let texts: Vec<String> = visible
                    .iter()
                    .map(|row| {
                        let mut text = String::new();
                        row.write_cell(column, &mut text);
                        text
                    })
                    .collect();
                neighbour_ends(&texts)
            })
            .collect();
        let table_rows = visible.iter().enumerate().map(|(i, row)| {
            let selected = view.offset + i == view.selected;
            let cells =
                columns
                    .iter()
                    .zip(&fitted)
                    .zip(&shared)
                    .map(|((&column, &width), ends)| {
                        let mut text = String::new();
                        row.write_cell(column, &mut text);
                        if let Some(&(prefix, suffix)) = ends.get(i) {
                            text = distinct_ellipsis(&text, width, prefix, suffix);
                        }
                        // The selection is one style across the row, so it reads on any theme.
                        let style = if selected {
                            Style::default()
                        } else {
                            row.cell_style(column, theme)
                        };
                        Cell::from(text).style(style)
                    });
            let row_style = if selected {
                theme.style(Role::Selection)
            } else {
                row.row_style(theme)
            };
            Row::new(cells).style(row_style)
        });
        let header = Row::new(headers).style(theme.style(Role::Header));
        let table = Table::new(table_rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block);
        frame.render_widget(table, area);

        if rows.is_empty() {
            draw_empty_message(frame, inner, &empty(&view.filter), theme);
        }
        page
    }
}

/// Column widths that fit `available` cells: when the wanted widths do not fit, the widest
/// columns give way first (all cut to one level, none below its floor — its header), so a long
/// MESSAGE or DETAIL shrinks before a short REASON or NAME does.
pub fn fit_widths(wanted: &[usize], floors: &[usize], available: usize) -> Vec<usize> {
    let total: usize = wanted.iter().sum();
    if total <= available {
        return wanted.to_vec();
    }
    let at = |level: usize| -> Vec<usize> {
        wanted
            .iter()
            .zip(floors)
            .map(|(&w, &f)| w.min(level.max(f)))
            .collect()
    };
    // The highest level whose cut fits; the sum grows with the level, so bisect.
    let (mut lo, mut hi) = (0, wanted.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if at(mid).iter().sum::<usize>() <= available {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut widths = at(lo);
    // Hand the cells a whole level leaves over to the widest cut columns, left to right.
    let mut spare = available.saturating_sub(widths.iter().sum());
    for (w, &want) in widths.iter_mut().zip(wanted) {
        if spare == 0 {
            break;
        }
        if *w < want {
            let more = (want - *w).min(spare);
            *w += more;
            spare -= more;
        }
    }
    widths
}

/// A detail view's lines, scrolled by `scroll` (clamped so that the last line can reach the
/// bottom and no further), in `block` when given. Answers the page height: the rows the lines
/// get, which the movement keys scroll by a page.
pub fn draw_scrolled(
    frame: &mut Frame,
    area: Rect,
    lines: Vec<Line<'_>>,
    block: Option<Block<'_>>,
    scroll: &mut u16,
    theme: &Theme,
) -> usize {
    let height = block.as_ref().map_or(area, |b| b.inner(area)).height;
    let max_scroll = lines.len().saturating_sub(usize::from(height));
    *scroll = (*scroll).min(u16::try_from(max_scroll).unwrap_or(u16::MAX));
    let mut paragraph = Paragraph::new(lines)
        .style(theme.style(Role::Base))
        .scroll((*scroll, 0));
    if let Some(block) = block {
        paragraph = paragraph.block(block);
    }
    frame.render_widget(paragraph, area);
    usize::from(height).max(1)
}

#[cfg(test)]
mod fit_tests {
    use super::{distinct_ellipsis, fit_widths, measured_widths, middle_ellipsis, neighbour_ends};

    #[test]
    fn wrapped_rows_count_what_a_word_wrap_needs() {
        use super::wrapped_rows;
        assert_eq!(wrapped_rows("", 10), 1);
        assert_eq!(wrapped_rows("one two", 10), 1);
        assert_eq!(wrapped_rows("one two three", 10), 2);
        assert_eq!(wrapped_rows("abcdefghijklmnopqrstuvwxy", 10), 3);
        assert_eq!(
            wrapped_rows("      indented", 10),
            2,
            "leading spaces count"
        );
    }

    #[test]
    fn a_cut_name_keeps_its_distinguishing_end() {
        assert_eq!(
            middle_ellipsis("gke-sim-b-h100-pool-0042", 19),
            "gke-sim-b…pool-0042"
        );
        assert_eq!(middle_ellipsis("short", 19), "short");
        assert_eq!(middle_ellipsis("abcdef", 1), "…");
        assert_eq!(middle_ellipsis("abcdef", 0), "");
        assert_eq!(middle_ellipsis("abcdef", 4), "a…ef");
    }

    fn cut(names: &[&str], width: usize) -> Vec<String> {
        let texts: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        texts
            .iter()
            .zip(neighbour_ends(&texts))
            .map(|(n, (prefix, suffix))| distinct_ellipsis(n, width, prefix, suffix))
            .collect()
    }

    #[test]
    fn a_cut_name_keeps_what_its_neighbours_do_not_share() {
        let nodes = [
            "ip-10-20-0-10.ec2.internal",
            "ip-10-20-0-11.ec2.internal",
            "ip-10-20-1-7.ec2.internal",
        ];
        let texts: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        assert_eq!(neighbour_ends(&texts), [(12, 13), (12, 13), (9, 13)]);
        assert_eq!(
            cut(&nodes, 18),
            [
                "ip-10-20-0-10.ec2…",
                "ip-10-20-0-11.ec2…",
                "ip-10-20-1-7.ec2.…"
            ]
        );
        // Too narrow for the start: the window ends with the distinct part and fills the width
        // with what leads to it (the GPUs pane at 100 columns), never `…4…`.
        assert_eq!(
            cut(
                &["ip-10-20-0-14.ec2.internal", "ip-10-20-0-15.ec2.internal"],
                13
            ),
            ["…-10-20-0-14…", "…-10-20-0-15…"]
        );
        // The distinct part is whole words: `11` next to `21` shares its last digit, not a cut.
        assert_eq!(
            cut(
                &["ip-10-20-0-11.ec2.internal", "ip-10-20-0-21.ec2.internal"],
                10
            ),
            ["…-20-0-11…", "…-20-0-21…"]
        );
        // Names that share their start keep their end.
        assert_eq!(
            cut(
                &["gke-sim-b-h100-pool-0041", "gke-sim-b-h100-pool-0042"],
                12
            ),
            ["…0-pool-0041", "…0-pool-0042"]
        );
        // Where two clusters meet, each row is cut against the neighbour it resembles: the
        // EC2 names still keep their number, the GKE name its pool.
        assert_eq!(
            cut(
                &[
                    "ip-10-20-0-28.ec2.internal",
                    "ip-10-20-0-29.ec2.internal",
                    "gke-sim-b-h100-pool-0a1b2c3d-x1y2",
                    "gke-sim-b-h100-pool-0a1b2c3d-z9w8",
                ],
                18
            ),
            [
                "ip-10-20-0-28.ec2…",
                "ip-10-20-0-29.ec2…",
                "…ool-0a1b2c3d-x1y2",
                "…ool-0a1b2c3d-z9w8",
            ]
        );
        // A node's GPUs repeat its name: they are cut against the next node, not each other.
        assert_eq!(
            cut(
                &[
                    "gke-sim-a-h100-pool-0041",
                    "gke-sim-a-h100-pool-0041",
                    "gke-sim-a-h100-pool-0042",
                ],
                12
            ),
            ["…0-pool-0041", "…0-pool-0041", "…0-pool-0042"]
        );
        // One name alone: nothing shared, the middle goes.
        assert_eq!(neighbour_ends(&["only-one".to_string()]), [(0, 0)]);
        assert_eq!(
            distinct_ellipsis("gke-sim-b-h100-pool-0042", 19, 0, 0),
            "gke-sim-b…pool-0042"
        );
    }

    #[test]
    fn measured_columns_fit_their_content_and_the_longest_gives_way() {
        let rows = [
            vec!["node.interruption_notice".to_string(), "x".repeat(80)],
            vec!["gpu.xid".to_string(), "y".into()],
        ];
        let widths = measured_widths(&["KIND", "SUMMARY"], rows.iter().map(Vec::as_slice), 61);
        assert_eq!(widths, vec![24, 36], "KIND whole, SUMMARY cut");
        let widths = measured_widths(&["KIND", "SUMMARY"], rows.iter().map(Vec::as_slice), 200);
        assert_eq!(widths, vec![24, 80]);
    }

    #[test]
    fn the_widest_columns_give_way_first() {
        // REASON 12, OBJECT 30, MESSAGE 150 in 100 cells: the message is cut, the rest kept.
        assert_eq!(
            fit_widths(&[12, 30, 150], &[6, 6, 7], 100),
            vec![12, 30, 58]
        );
        // Two long ones share the cut; a floor (the header) is never crossed.
        assert_eq!(fit_widths(&[10, 80, 80], &[4, 4, 4], 90), vec![10, 40, 40]);
        assert_eq!(fit_widths(&[10, 80, 80], &[4, 4, 4], 91), vec![10, 41, 40]);
        assert_eq!(fit_widths(&[10, 20], &[8, 8], 10), vec![8, 8]);
        assert_eq!(fit_widths(&[5, 5], &[1, 1], 50), vec![5, 5]);
    }
}
