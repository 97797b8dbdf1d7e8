//! The one table pane: selection, paging, sort, the `/` filter, a detail view opened on a row
//! and the intents on the selection, for every pane that is a table (Nodes, GPUs, Events,
//! Workloads, Endpoints, Pods). Each of those is a `TableSpec`, a small description of what
//! differs (its rows and columns, how it draws them, its detail, its empty message, what its
//! selection leads to); `TablePane<S>` is the `Pane` the app registers. May import the tui
//! groundwork (pane, keymap, intent, widgets).
//!
//! Why one type and not a helper each pane calls: the key handling is where the panes drifted
//! apart (one clamped after a sort, one did not; one cleared the filter on Esc, one did not), so
//! it lives once here and a pane states only the differences it means to keep.

use std::fmt::Debug;

use ratatui::Frame;
use ratatui::layout::Rect;

use super::intent::Intent;
use super::keymap::{Action, PaneId};
use super::pane::{Pane, TableView, ViewCtx, scroll_detail};

/// What a pane answers for an action on its selection (see `Pane::intent`).
pub type Answer = Option<Result<Intent, String>>;

/// What one table pane shows. The machinery (`TablePane`) keeps the view state and handles
/// the keys; a spec holds only what it needs to draw (a row cache, a threshold).
pub trait TableSpec {
    /// What names a row across snapshots: the open detail view, and what an intent or Enter
    /// on the selection applies to.
    type Key: Clone + PartialEq + Debug;

    /// Whether Enter opens a detail view of the selected row (else Enter is the app's: it
    /// asks `follow`).
    const OPENS_DETAIL: bool = true;
    /// Whether the movement keys scroll the detail view (else they do nothing there).
    const DETAIL_SCROLLS: bool = true;
    /// Whether Esc clears a filter before the app sees it.
    const BACK_CLEARS_FILTER: bool = true;
    /// Whether a new filter closes the open detail view (the Pods pane: `:pods -l …` from
    /// another pane lands on the table).
    const FILTER_CLOSES_DETAIL: bool = false;

    /// How many rows the view's filter keeps (a pane with a cache refreshes it here), and how
    /// many columns the sort cycles through.
    fn counts(&mut self, ctx: &ViewCtx, view: &TableView) -> (usize, usize);

    /// The key of the row at `index` of the filtered, sorted rows.
    fn key_at(&self, ctx: &ViewCtx, view: &TableView, index: usize) -> Option<Self::Key>;

    /// Draws the table; answers the page height (the rows under the header).
    fn draw(&mut self, f: &mut Frame, area: Rect, ctx: &ViewCtx, view: &mut TableView) -> usize;

    /// Draws the detail view of `key`, scrolled by `scroll`; answers the page height.
    fn draw_detail(
        &mut self,
        _frame: &mut Frame,
        _area: Rect,
        _ctx: &ViewCtx,
        _key: &Self::Key,
        _scroll: &mut u16,
    ) -> usize {
        1
    }

    /// The cockpit is attached to the daemon named so (see `Pane::set_attached`).
    fn set_attached(&mut self, _daemon: Option<&str>) {}

    /// See `Pane::open_gpu_uuid`; `detail` is the open detail view's key.
    fn open_gpu_uuid(
        &self,
        _snapshot: &crate::model::Snapshot,
        _detail: Option<&Self::Key>,
    ) -> Option<String> {
        None
    }

    /// See `Pane::set_gpu_history`.
    fn set_gpu_history(
        &mut self,
        _uuid: &str,
        _window_s: u64,
        _samples: Vec<crate::model::Sample>,
    ) {
    }

    /// What `action` asks of the selection (the open detail, else the selected row); see
    /// `Pane::intent`.
    fn intent(&self, _action: Action, _ctx: &ViewCtx, _selected: Option<Self::Key>) -> Answer {
        None
    }

    /// Where Enter on the selected row leads, when the pane opens no detail; see
    /// `Pane::follow`.
    fn follow(&self, _ctx: &ViewCtx, _selected: Option<Self::Key>) -> Option<(PaneId, String)> {
        None
    }
}

/// A table pane: a `TableSpec` and the view state every table keeps between frames.
#[derive(Debug, Clone)]
pub struct TablePane<S: TableSpec> {
    pub view: TableView,
    pub spec: S,
    /// The row whose detail view is open.
    detail: Option<S::Key>,
    detail_scroll: u16,
    /// Rows (or detail lines) the last frame had room for; paging moves by this much.
    page: usize,
}

impl<S: TableSpec + Default> Default for TablePane<S> {
    fn default() -> Self {
        Self::with_spec(S::default())
    }
}

impl<S: TableSpec + Default> TablePane<S> {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: TableSpec> TablePane<S> {
    pub fn with_spec(spec: S) -> Self {
        TablePane {
            view: TableView::default(),
            spec,
            detail: None,
            detail_scroll: 0,
            page: 0,
        }
    }

    /// The row whose detail view is open.
    pub fn detail(&self) -> Option<&S::Key> {
        self.detail.as_ref()
    }

    /// Opens the detail view of `key` (as Enter on its row would).
    pub fn open(&mut self, key: S::Key) {
        self.detail = Some(key);
        self.detail_scroll = 0;
    }

    /// What an action applies to: the open detail, else the selected row.
    pub fn selected(&self, ctx: &ViewCtx) -> Option<S::Key> {
        match &self.detail {
            Some(key) => Some(key.clone()),
            None => self.spec.key_at(ctx, &self.view, self.view.selected),
        }
    }

    /// Narrows the table to the rows the filter keeps; the selection restarts.
    pub fn set_filter(&mut self, filter: &str) {
        if self.view.filter != filter {
            self.view.filter = filter.to_string();
            self.view.selected = 0;
            self.view.offset = 0;
        }
        if S::FILTER_CLOSES_DETAIL {
            self.detail = None;
        }
    }

    /// Applies a key's action; says whether anything changed (so the screen needs drawing).
    /// In the detail view Esc closes it and the movement keys scroll it; in the table they move
    /// the selection, Enter opens the detail and Esc clears the filter.
    pub fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        if self.detail.is_some() {
            if action == Action::Back {
                self.detail = None;
                self.detail_scroll = 0;
                return true;
            }
            if !S::DETAIL_SCROLLS {
                return false;
            }
            return scroll_detail(&mut self.detail_scroll, action, self.page).unwrap_or(false);
        }
        let page = self.page.max(1);
        let before = self.view.clone();
        let (rows, columns) = self.spec.counts(ctx, &self.view);
        match action {
            Action::Open if S::OPENS_DETAIL => {
                let Some(key) = self.spec.key_at(ctx, &self.view, self.view.selected) else {
                    return false;
                };
                self.open(key);
                return true;
            }
            Action::Back if S::BACK_CLEARS_FILTER && !self.view.filter.is_empty() => {
                self.set_filter("");
            }
            _ if self.view.navigate(action, rows, page as isize, columns) => {}
            _ => return false,
        }
        let shown = if self.view.filter == before.filter {
            rows
        } else {
            self.spec.counts(ctx, &self.view).0
        };
        self.view.clamp(shown, page);
        self.view != before
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        self.page = match &self.detail {
            Some(key) => self
                .spec
                .draw_detail(frame, area, ctx, key, &mut self.detail_scroll),
            None => self.spec.draw(frame, area, ctx, &mut self.view),
        };
    }
}

impl<S: TableSpec> Pane for TablePane<S> {
    fn draw(&mut self, frame: &mut Frame, area: Rect, ctx: &ViewCtx) {
        TablePane::draw(self, frame, area, ctx);
    }

    fn handle(&mut self, action: Action, ctx: &ViewCtx) -> bool {
        TablePane::handle(self, action, ctx)
    }

    fn set_filter(&mut self, filter: &str) {
        TablePane::set_filter(self, filter);
    }

    fn intent(&self, action: Action, ctx: &ViewCtx) -> Answer {
        self.spec.intent(action, ctx, self.selected(ctx))
    }

    fn follow(&self, ctx: &ViewCtx) -> Option<(PaneId, String)> {
        self.spec.follow(ctx, self.selected(ctx))
    }

    fn set_attached(&mut self, daemon: Option<&str>) {
        self.spec.set_attached(daemon);
    }

    fn open_gpu_uuid(&self, snapshot: &crate::model::Snapshot) -> Option<String> {
        self.spec.open_gpu_uuid(snapshot, self.detail())
    }

    fn set_gpu_history(&mut self, uuid: &str, window_s: u64, samples: Vec<crate::model::Sample>) {
        self.spec.set_gpu_history(uuid, window_s, samples);
    }
}

/// The message of an empty table: `none_yet` when the snapshot has no row at all, else that no
/// `noun` matches the filter.
pub fn empty_message<'a>(
    total: usize,
    none_yet: &'a str,
    noun: &'a str,
) -> impl FnOnce(&str) -> String + 'a {
    move |filter| {
        if total == 0 {
            none_yet.to_string()
        } else {
            format!("no {noun} matches /{filter}")
        }
    }
}
