//! What every pane is: the `Pane` trait the app dispatches through, what a pane is given to
//! draw (`ViewCtx`, `AutomationView`), and the state a table pane keeps between frames. May
//! import the keymap, theme, runbook and model.
//! Panes render the snapshot they are given: no I/O, no awaits, no locks held while drawing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;

use super::intent::Intent;
use super::keymap::{Action, PaneId};
use super::noise::NoiseRate;
use super::theme::Theme;
use crate::model::Snapshot;
use crate::model::cost::CostReport;
use crate::model::incident::{Entry, Incident};
use crate::runbook::approvals::PendingApproval;
use crate::runbook::executor::RunRecord;
use crate::runbook::{Mode, RunbookMeta};

/// A pane of the cockpit: it draws the snapshot it is given and keeps only its own view state
/// (selection, scroll, filter, an open detail). The app holds one of each and reaches the
/// shown one through this trait.
pub trait Pane {
    /// Draws the pane into `area`; remembers what it needs for the next key (a page's height).
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx);

    /// Applies a key's action; says whether the pane used it (so the screen needs drawing).
    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool;

    /// The `/` filter; panes without one ignore it.
    fn set_filter(&mut self, _filter: &str) {}

    /// What the person wants from `action` on this pane's selection, for the app's router to
    /// perform: a `Mutation` to plan, a view to open, an approval to decide… `Some(Err(why))`
    /// when the pane has the action but nothing it applies to; `None` when the pane has no
    /// such action (the router then says which pane has).
    fn intent(&self, _action: Action, _ctx: &ViewCtx) -> Option<Result<Intent, String>> {
        None
    }

    /// Where Enter leads when the pane itself had nothing to open: a pane and the filter to
    /// set there (a signal's subject).
    fn follow(&self, _ctx: &ViewCtx) -> Option<(PaneId, String)> {
        None
    }

    /// A new incident list read from the store.
    fn set_incidents(&mut self, _incidents: Arc<Vec<Incident>>, _ctx: &ViewCtx) {}

    /// The executor's runbooks, runs and approvals as the loop last read them.
    fn set_automation(&mut self, _automation: Option<Arc<AutomationView>>) {}

    /// The pipeline's noise over the last hour, as the app last sampled it.
    fn set_noise(&mut self, _noise: Option<NoiseRate>) {}

    /// The cockpit shows the picture of the daemon named so (`fleetdeck attach`): what the
    /// daemon does not stream (pods) the pane says is absent, and why.
    fn set_attached(&mut self, _daemon: Option<&str>) {}

    /// The uuid of the GPU whose detail view is open, in `snapshot`: an attached cockpit asks
    /// its daemon for that GPU's readings (the daemon streams no GPU history).
    fn open_gpu_uuid(&self, _snapshot: &crate::model::Snapshot) -> Option<String> {
        None
    }

    /// One GPU's utilisation readings as the daemon keeps them, over its `window_s`.
    fn set_gpu_history(
        &mut self,
        _uuid: &str,
        _window_s: u64,
        _samples: Vec<crate::model::Sample>,
    ) {
    }

    /// An incident's timeline, the store's answer to the pane's `take_timeline_request`.
    fn set_timeline(&mut self, _incident: u64, _entries: Vec<Entry>) {}

    /// The incident whose timeline the pane wants read (once; `None` when it wants none).
    fn take_timeline_request(&mut self) -> Option<u64> {
        None
    }
}

/// Everything a pane may read while drawing.
pub struct ViewCtx<'a> {
    pub snapshot: &'a Snapshot,
    pub theme: &'a Theme,
    pub now: DateTime<Utc>,
    /// `:ctx NAME` narrows every pane to one cluster; `None` shows all.
    pub cluster: Option<&'a str>,
    /// `:ns NAME` narrows the namespaced panes (pods, workloads, events); `None` shows all.
    pub namespace: Option<&'a str>,
    /// The latest cost report, when a cost source is configured.
    pub cost: Option<&'a CostReport>,
}

impl ViewCtx<'_> {
    /// The clusters the panes show.
    pub fn clusters(&self) -> impl Iterator<Item = &crate::model::ClusterSnapshot> {
        self.snapshot
            .clusters
            .iter()
            .map(|c| c.as_ref())
            .filter(move |c| self.cluster.is_none_or(|name| c.name == name))
    }
}

impl ViewCtx<'_> {
    /// Whether an object in `namespace` is in the `:ns` scope.
    pub fn in_namespace(&self, namespace: &str) -> bool {
        self.namespace.is_none_or(|ns| ns == namespace)
    }
}

/// Does the incident belong to the `:ctx` cluster (fleet-wide ones always do)?
pub fn in_scope(inc: &Incident, cluster: Option<&str>) -> bool {
    inc.subject.cluster.is_empty() || cluster.is_none_or(|c| inc.subject.cluster == c)
}

/// What the executor holds, copied for drawing (by `automation::view_of`): read by the loop
/// every second and after each decision, never while drawing. Panes see the executor only so.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationView {
    /// The global mode (`--mode`, else `[runbooks] mode`).
    pub mode: Mode,
    pub read_only: bool,
    /// Why automation is halted, while the kill switch is on.
    pub kill: Option<String>,
    pub runbooks: Vec<RunbookMeta>,
    /// Newest first.
    pub runs: Vec<RunRecord>,
    /// Oldest first, as they were requested.
    pub pending: Vec<PendingApproval>,
}

/// Selection, scroll, filter and sort of a table pane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableView {
    /// Index into the filtered, sorted rows.
    pub selected: usize,
    /// First visible row.
    pub offset: usize,
    /// Case-insensitive substring every shown row contains in some cell.
    pub filter: String,
    /// Column index and descending.
    pub sort: Option<(usize, bool)>,
}

impl TableView {
    /// Keeps the selection inside `rows` and visible in a window of `height` rows.
    pub fn clamp(&mut self, rows: usize, height: usize) {
        if rows == 0 {
            self.selected = 0;
            self.offset = 0;
            return;
        }
        self.selected = self.selected.min(rows - 1);
        let height = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(rows.saturating_sub(height));
    }

    /// Moves the selection by `delta` rows (negative is up).
    /// The keys every table shares: moving the selection by one, a page or to either end, and
    /// sorting. Returns false for any other action (the pane's own).
    pub fn navigate(&mut self, action: Action, rows: usize, page: isize, columns: usize) -> bool {
        match action {
            Action::Up => self.step(-1, rows),
            Action::Down => self.step(1, rows),
            Action::PageUp => self.step(-page, rows),
            Action::PageDown => self.step(page, rows),
            Action::Top => self.step(-(rows as isize), rows),
            Action::Bottom => self.step(rows as isize, rows),
            Action::SortNext => self.sort_next(columns),
            Action::SortReverse => self.sort_reverse(),
            _ => return false,
        }
        true
    }

    pub fn step(&mut self, delta: isize, rows: usize) {
        if rows == 0 {
            return;
        }
        let next = (self.selected as isize + delta).clamp(0, rows as isize - 1);
        self.selected = next as usize;
    }

    /// Cycles the sort through the columns, then off.
    pub fn sort_next(&mut self, columns: usize) {
        self.sort = match self.sort {
            None if columns > 0 => Some((0, false)),
            Some((c, d)) if c + 1 < columns => Some((c + 1, d)),
            _ => None,
        };
    }

    pub fn sort_reverse(&mut self) {
        if let Some((c, d)) = self.sort {
            self.sort = Some((c, !d));
        }
    }

    /// Does a row (its cells as text) pass the filter?
    pub fn keeps(&self, cells: &[String]) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let needle = self.filter.to_lowercase();
        cells.iter().any(|c| c.to_lowercase().contains(&needle))
    }
}

/// Scrolls a detail view: the movement keys move `scroll` (a page is `page` lines). Answers
/// `None` for keys that are not movement, else whether the scroll moved.
pub fn scroll_detail(scroll: &mut u16, action: super::keymap::Action, page: usize) -> Option<bool> {
    use super::keymap::Action;
    let page = u16::try_from(page.max(1)).unwrap_or(u16::MAX);
    let before = *scroll;
    *scroll = match action {
        Action::Up => scroll.saturating_sub(1),
        Action::Down => scroll.saturating_add(1),
        Action::PageUp => scroll.saturating_sub(page),
        Action::PageDown => scroll.saturating_add(page),
        Action::Top => 0,
        _ => return None,
    };
    Some(*scroll != before)
}

/// Orders rows by the sort column: numbers as numbers when both cells parse, else text.
pub fn sort_rows(rows: &mut [Vec<String>], sort: Option<(usize, bool)>) {
    let Some((col, desc)) = sort else { return };
    rows.sort_by(|a, b| {
        let (x, y) = (
            a.get(col).map_or("", String::as_str),
            b.get(col).map_or("", String::as_str),
        );
        let num = |s: &str| {
            s.trim_end_matches('%')
                .split('/')
                .next()
                .and_then(|n| n.trim().parse::<f64>().ok())
        };
        let ord = match (num(x), num(y)) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => x.cmp(y),
        };
        if desc { ord.reverse() } else { ord }
    });
}

/// Reading rendered buffers in pane tests.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Utc};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    use super::super::theme::Theme;
    use super::{Pane, ViewCtx};
    use crate::model::Snapshot;

    /// What a pane test draws with: every cluster and namespace in view at `now`, no cost.
    pub fn view_ctx<'a>(
        snapshot: &'a Snapshot,
        theme: &'a Theme,
        now: DateTime<Utc>,
    ) -> ViewCtx<'a> {
        ViewCtx {
            snapshot,
            theme,
            now,
            cluster: None,
            namespace: None,
            cost: None,
        }
    }

    /// Draws `pane` on a `width`×`height` test terminal and returns what it drew.
    pub fn render(pane: &mut dyn Pane, ctx: &ViewCtx, width: u16, height: u16) -> Buffer {
        let mut term =
            Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
        term.draw(|f| pane.draw(f, f.area(), ctx))
            .unwrap_or_else(|e| panic!("{e}"));
        term.backend().buffer().clone()
    }

    /// The buffer's text, one string per row.
    pub fn lines(buf: &Buffer) -> Vec<String> {
        (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect())
            .collect()
    }

    /// The (column, row) where `text` first appears.
    pub fn find(buf: &Buffer, text: &str) -> Option<(u16, u16)> {
        lines(buf).iter().enumerate().find_map(|(y, l)| {
            l.find(text)
                .map(|byte| (l[..byte].chars().count() as u16, y as u16))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_stays_visible_and_inside_the_rows() {
        let mut v = TableView::default();
        v.step(30, 100);
        v.clamp(100, 10);
        assert_eq!((v.selected, v.offset), (30, 21));
        v.step(-100, 100);
        v.clamp(100, 10);
        assert_eq!((v.selected, v.offset), (0, 0));
        v.selected = 50;
        v.clamp(5, 10);
        assert_eq!((v.selected, v.offset), (4, 0));
    }

    #[test]
    fn sorting_compares_numbers_as_numbers() {
        let mut rows = vec![
            vec!["b".into(), "10".into()],
            vec!["a".into(), "9".into()],
            vec!["c".into(), "100".into()],
        ];
        sort_rows(&mut rows, Some((1, false)));
        assert_eq!(
            rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        sort_rows(&mut rows, Some((0, true)));
        assert_eq!(
            rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        let mut v = TableView::default();
        v.sort_next(2);
        v.sort_next(2);
        v.sort_reverse();
        assert_eq!(v.sort, Some((1, true)));
        v.sort_next(2);
        assert_eq!(v.sort, None);
    }

    #[test]
    fn the_filter_matches_any_cell_ignoring_case() {
        let v = TableView {
            filter: "H100".into(),
            ..TableView::default()
        };
        assert!(v.keeps(&["n1".into(), "NVIDIA-h100-80GB".into()]));
        assert!(!v.keeps(&["n2".into(), "A100".into()]));
    }
}
