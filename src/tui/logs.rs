//! The logs view: a pod container's streamed log over the whole pane, with a container picker,
//! the previous run, follow or pause, timestamps, wrap, search and save. It keeps its own
//! bounded ring and the stream's handle (dropping the view stops the stream); the loop attaches
//! the stream and tells it when lines arrived. May import the tui groundwork and the on-demand
//! readers of `sources::logs`.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::keymap::Action;
use super::theme::{Role, Theme};
use crate::sources::logs::{LogDelta, LogRequest, LogRing, LogStream, LogTarget, StreamState};

/// What a key did to the view, for the app to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewOutcome {
    /// Not a key of the view.
    Ignored,
    /// The view changed; draw it again.
    Changed,
    /// Esc: close the view (its stream stops with it).
    Close,
    /// Read the log again with this request (another container, the previous run).
    Reopen(LogRequest),
    /// Write these lines to this file.
    Save { file: String, text: String },
}

#[derive(Debug)]
pub struct LogsView {
    target: LogTarget,
    previous: bool,
    stream: Option<LogStream>,
    lines: LogRing,
    /// Lines the stream let go before the view took them.
    missed: u64,
    state: StreamState,
    containers: Vec<String>,
    follow: bool,
    timestamps: bool,
    wrap: bool,
    /// The first line shown while paused.
    top: usize,
    /// Lines the body showed last time (a page).
    page: usize,
    search: Option<String>,
    /// A search being typed after `/`.
    typing: Option<String>,
    /// The lines shown before a re-read (`p`, `c`), kept until the new read answers: when the
    /// pod turns out to be gone, they are all that is left of it and come back.
    kept: Option<(LogRing, u64, bool)>,
}

/// `2025-06-01T12:00:00.123456789Z rest` → (`Some(time)`, `rest`); other lines unchanged.
fn split_timestamp(line: &str) -> (Option<&str>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) if ts.len() >= 20 && DateTime::parse_from_rfc3339(ts).is_ok() => {
            (Some(ts), rest)
        }
        _ => (None, line),
    }
}

impl LogsView {
    pub fn new(target: LogTarget, capacity: usize) -> Self {
        Self {
            target,
            previous: false,
            stream: None,
            lines: LogRing::new(capacity),
            missed: 0,
            state: StreamState::Connecting,
            containers: Vec::new(),
            follow: true,
            timestamps: false,
            wrap: false,
            top: 0,
            page: 1,
            search: None,
            typing: None,
            kept: None,
        }
    }

    /// The read the view wants now. Timestamps always come from the server; `t` only shows
    /// or hides them, so toggling never reads the log again.
    pub fn request(&self) -> LogRequest {
        LogRequest {
            target: self.target.clone(),
            previous: self.previous,
            follow: !self.previous,
            timestamps: true,
            tail_lines: i64::try_from(self.lines.capacity()).ok(),
        }
    }

    /// The stream the loop started; one for an older request is dropped (and so stopped).
    pub fn attach(&mut self, stream: LogStream) {
        if stream.request == self.request() {
            self.stream = Some(stream);
        }
    }

    /// The loop could not start the stream.
    pub fn fail(&mut self, why: String) {
        self.stream = None;
        self.state = StreamState::Failed(why);
    }

    /// Takes what the stream read since last time.
    pub fn pull(&mut self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        let delta = stream.take();
        self.ingest(delta)
    }

    fn ingest(&mut self, delta: LogDelta) -> bool {
        let changed = !delta.lines.is_empty()
            || delta.state != self.state
            || delta.containers != self.containers
            || delta.missed > 0;
        if let Some((lines, missed, previous)) = self.kept.take() {
            match &delta.state {
                StreamState::Connecting => self.kept = Some((lines, missed, previous)),
                // The re-read found no pod: show its last lines again, as they were.
                StreamState::Gone(_) if self.lines.is_empty() => {
                    self.lines = lines;
                    self.missed = missed;
                    self.previous = previous;
                    self.stream = None;
                }
                _ => {}
            }
        }
        let before = self.lines.evicted();
        self.missed += delta.missed;
        for l in delta.lines {
            self.lines.push(l);
        }
        // Paused, the same lines stay on screen while older ones are let go.
        let gone = (self.lines.evicted() - before) as usize;
        self.top = self.top.saturating_sub(gone);
        self.state = delta.state;
        self.containers = delta.containers;
        // The stream chose the default container: the view names it from now on.
        if self.target.container.is_none() {
            self.target.container = delta.container;
        }
        changed
    }

    /// Reads the log again; `was_previous` is which run the lines on screen are from.
    fn restart(&mut self, was_previous: bool) -> ViewOutcome {
        self.stream = None;
        let fresh = LogRing::new(self.lines.capacity());
        let shown = std::mem::replace(&mut self.lines, fresh);
        if !shown.is_empty() {
            self.kept = Some((shown, self.missed, was_previous));
        }
        self.missed = 0;
        self.state = StreamState::Connecting;
        self.top = 0;
        self.follow = true;
        ViewOutcome::Reopen(self.request())
    }

    /// A line as shown: without its timestamp unless `t` asked for them.
    fn shown<'a>(&self, line: &'a str) -> &'a str {
        if self.timestamps {
            line
        } else {
            split_timestamp(line).1
        }
    }

    fn last_top(&self) -> usize {
        self.lines.len().saturating_sub(self.page.max(1))
    }

    fn matches(&self, i: usize, query: &str) -> bool {
        self.lines
            .get(i)
            .is_some_and(|l| self.shown(l).to_lowercase().contains(query))
    }

    /// Moves to the next (or previous) line matching the search, from the current top.
    fn find(&mut self, forward: bool) -> bool {
        let Some(query) = self.search.clone().map(|q| q.to_lowercase()) else {
            return false;
        };
        let n = self.lines.len();
        let from = if self.follow {
            self.last_top()
        } else {
            self.top
        };
        // As less and vim do, the search wraps around the ends.
        let hit = if forward {
            (from + 1..n)
                .chain(0..=from.min(n.saturating_sub(1)))
                .find(|&i| self.matches(i, &query))
        } else {
            (0..from.min(n))
                .rev()
                .chain((from.min(n)..n).rev())
                .find(|&i| self.matches(i, &query))
        };
        match hit {
            Some(i) => {
                self.follow = false;
                self.top = i;
                true
            }
            None => false,
        }
    }

    fn scroll(&mut self, by: isize) {
        let from = if self.follow {
            self.last_top()
        } else {
            self.top
        };
        self.follow = false;
        self.top = from.saturating_add_signed(by).min(self.last_top());
        if self.top == self.last_top() && by > 0 {
            self.follow = true;
        }
    }

    /// A file name for `s`: `ns_pod_container_20250601-120000.log`, in the current directory.
    fn save_name(&self, now: DateTime<Utc>) -> String {
        let safe = |s: &str| s.replace(['/', '\\', ' '], "-");
        format!(
            "{}_{}_{}{}_{}.log",
            safe(&self.target.namespace),
            safe(&self.target.pod),
            safe(self.target.container.as_deref().unwrap_or("default")),
            if self.previous { "_previous" } else { "" },
            now.format("%Y%m%d-%H%M%S")
        )
    }

    /// Applies a key: the view's own letters first, then the keymap's moves and Back.
    pub fn handle_key(
        &mut self,
        key: &KeyEvent,
        action: Option<Action>,
        now: DateTime<Utc>,
    ) -> ViewOutcome {
        if let Some(mut text) = self.typing.take() {
            match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    self.search = (!text.is_empty()).then_some(text);
                    self.find(true);
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.typing = Some(text);
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    self.typing = Some(text);
                }
                _ => self.typing = Some(text),
            }
            return ViewOutcome::Changed;
        }
        let plain = key.modifiers.difference(KeyModifiers::SHIFT).is_empty();
        if plain && let KeyCode::Char(c) = key.code {
            match c {
                'c' => {
                    if self.containers.len() < 2 {
                        return ViewOutcome::Changed;
                    }
                    let i = self
                        .containers
                        .iter()
                        .position(|n| Some(n) == self.target.container.as_ref())
                        .map_or(0, |i| (i + 1) % self.containers.len());
                    self.target.container = Some(self.containers[i].clone());
                    return self.restart(self.previous);
                }
                // A deleted pod has no previous run (the API server answers 404): keep its last
                // lines on screen instead of replacing them with that answer.
                'p' if matches!(self.state, StreamState::Gone(_)) => {
                    return ViewOutcome::Changed;
                }
                'p' => {
                    self.previous = !self.previous;
                    return self.restart(!self.previous);
                }
                'f' | ' ' => {
                    self.follow = !self.follow;
                    if !self.follow {
                        self.top = self.last_top();
                    }
                    return ViewOutcome::Changed;
                }
                't' => {
                    self.timestamps = !self.timestamps;
                    return ViewOutcome::Changed;
                }
                'w' => {
                    self.wrap = !self.wrap;
                    return ViewOutcome::Changed;
                }
                '/' => {
                    self.typing = Some(String::new());
                    return ViewOutcome::Changed;
                }
                'n' => {
                    self.find(true);
                    return ViewOutcome::Changed;
                }
                'N' => {
                    self.find(false);
                    return ViewOutcome::Changed;
                }
                's' => {
                    let mut text: String = self
                        .lines
                        .iter()
                        .map(|l| self.shown(l))
                        .collect::<Vec<_>>()
                        .join("\n");
                    text.push('\n');
                    return ViewOutcome::Save {
                        file: self.save_name(now),
                        text,
                    };
                }
                _ => {}
            }
        }
        let page = self.page.max(1) as isize;
        match action {
            Some(Action::Back) if self.search.is_some() => {
                self.search = None;
                ViewOutcome::Changed
            }
            Some(Action::Back) => ViewOutcome::Close,
            Some(Action::Up) => {
                self.scroll(-1);
                ViewOutcome::Changed
            }
            Some(Action::Down) => {
                self.scroll(1);
                ViewOutcome::Changed
            }
            Some(Action::PageUp) => {
                self.scroll(-page);
                ViewOutcome::Changed
            }
            Some(Action::PageDown) => {
                self.scroll(page);
                ViewOutcome::Changed
            }
            Some(Action::Top) => {
                self.follow = false;
                self.top = 0;
                ViewOutcome::Changed
            }
            Some(Action::Bottom) => {
                self.follow = true;
                ViewOutcome::Changed
            }
            _ => ViewOutcome::Ignored,
        }
    }

    /// How many screen rows a line takes.
    fn rows_of(&self, line: &str, width: usize) -> usize {
        if self.wrap && width > 0 {
            self.shown(line).chars().count().div_ceil(width).max(1)
        } else {
            1
        }
    }

    fn title(&self) -> String {
        let t = &self.target;
        let container = match (&t.container, self.containers.len()) {
            (Some(c), n) if n > 1 => {
                let i = self
                    .containers
                    .iter()
                    .position(|x| x == c)
                    .map_or(0, |i| i + 1);
                format!(" · {c} ({i}/{n}, c next)")
            }
            (Some(c), _) => format!(" · {c}"),
            (None, _) => String::new(),
        };
        // Only a stream that is still delivering is "following"; one that ended or went
        // silent says so, or a dead pod's log would look live.
        let stalled;
        let stream = match &self.state {
            StreamState::Ended | StreamState::Gone(_) => "ended",
            StreamState::Failed(_) => "failed",
            StreamState::Stalled { idle_secs } => {
                stalled = format!("stalled {idle_secs}s");
                stalled.as_str()
            }
            StreamState::Connecting | StreamState::Streaming if self.follow => "following",
            StreamState::Connecting | StreamState::Streaming => "paused",
        };
        let mut flags = vec![stream];
        if self.previous {
            flags.insert(0, "previous run");
        }
        if self.timestamps {
            flags.push("timestamps");
        }
        if self.wrap {
            flags.push("wrap");
        }
        format!(
            " logs {}/{}{container} @ {} · {} ",
            t.namespace,
            t.pod,
            t.cluster,
            flags.join(" · ")
        )
    }

    fn state_line(&self) -> Option<(String, Role)> {
        match &self.state {
            StreamState::Connecting => Some(("connecting…".into(), Role::Muted)),
            StreamState::Streaming if self.lines.is_empty() => {
                Some(("no lines yet".into(), Role::Muted))
            }
            StreamState::Streaming => None,
            StreamState::Ended if self.previous => {
                Some(("end of the previous run's log".into(), Role::Muted))
            }
            StreamState::Ended => Some((
                "the stream ended: the container stopped (p: previous run)".into(),
                Role::Warning,
            )),
            StreamState::Gone(why) => Some((
                format!(
                    "the pod is gone: a deleted pod has no previous run; these are its last lines ({why})"
                ),
                Role::Warning,
            )),
            StreamState::Stalled { idle_secs } => Some((
                format!(
                    "no bytes for {idle_secs}s: the stream may be dead, these lines may not be current (esc and reopen to reconnect)"
                ),
                Role::Warning,
            )),
            StreamState::Failed(why) => Some((why.clone(), Role::Critical)),
        }
    }

    /// The lines above the log: the stream's state and skipped lines, when there is news.
    fn notes(&self) -> Vec<(String, Role)> {
        let mut notes: Vec<(String, Role)> = self.state_line().into_iter().collect();
        if self.missed > 0 {
            notes.push((
                format!(
                    "… {} lines arrived faster than shown and were skipped",
                    self.missed
                ),
                Role::Warning,
            ));
        }
        notes
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Role::BorderFocused))
            .title(Span::styled(self.title(), theme.style(Role::Title)));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [body, footer] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        let notes = self.notes();
        // The notes take the top rows; the lines get the rest.
        let height = usize::from(body.height).saturating_sub(notes.len()).max(1);
        let width = usize::from(body.width);
        self.page = height;
        let n = self.lines.len();
        // Following: as many of the newest lines as fill the body.
        let start = if self.follow {
            let mut rows = 0;
            let mut i = n;
            while i > 0 {
                let r = self.rows_of(self.lines.get(i - 1).unwrap_or(""), width);
                if rows + r > height {
                    break;
                }
                rows += r;
                i -= 1;
            }
            i
        } else {
            self.top.min(n)
        };
        let query = self.search.as_ref().map(|q| q.to_lowercase());
        let mut text: Vec<Line> = notes
            .into_iter()
            .map(|(msg, role)| Line::from(Span::styled(msg, theme.style(role))))
            .collect();
        for line in self.lines.iter().skip(start).take(height) {
            text.push(highlight(
                self.shown(line),
                query.as_deref(),
                theme.style(Role::Selection),
            ));
        }
        let mut p = Paragraph::new(text).style(theme.style(Role::Base));
        if self.wrap {
            p = p.wrap(Wrap { trim: false });
        }
        frame.render_widget(p, body);
        let hint = match &self.typing {
            Some(t) => Line::from(vec![
                Span::styled("search: /", theme.style(Role::Accent)),
                Span::raw(t.clone()),
            ]),
            None => {
                let mut spans = vec![Span::styled(
                    "c container · p previous · f follow · t time · w wrap · / n N search · s save · esc close",
                    theme.style(Role::Muted),
                )];
                if let Some(q) = &self.search {
                    spans.push(Span::styled(format!("  /{q}"), theme.style(Role::Accent)));
                }
                Line::from(spans)
            }
        };
        frame.render_widget(Paragraph::new(hint), footer);
    }
}

/// A line with every case-insensitive match of `query` in `style`.
fn highlight<'a>(line: &'a str, query: Option<&str>, style: Style) -> Line<'a> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Line::raw(line);
    };
    let lower = line.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII: highlight only when it did not.
    if lower.len() != line.len() {
        return Line::raw(line);
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(q) {
        let start = at + i;
        if start > at {
            spans.push(Span::raw(&line[at..start]));
        }
        spans.push(Span::styled(&line[start..start + q.len()], style));
        at = start + q.len();
    }
    if at < line.len() {
        spans.push(Span::raw(&line[at..]));
    }
    Line::from(spans)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tui::nodes::fixtures;

    fn target() -> LogTarget {
        LogTarget {
            cluster: "prod-a".into(),
            namespace: "batch".into(),
            pod: "tokenizer-worker-abc".into(),
            container: None,
        }
    }

    fn delta(lines: &[&str], state: StreamState, containers: &[&str]) -> LogDelta {
        LogDelta {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            missed: 0,
            state,
            containers: containers.iter().map(|s| s.to_string()).collect(),
            container: containers.first().map(|s| s.to_string()),
        }
    }

    fn key(view: &mut LogsView, c: char) -> ViewOutcome {
        view.handle_key(
            &KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
            None,
            fixtures::now(),
        )
    }

    fn act(view: &mut LogsView, a: Action, code: KeyCode) -> ViewOutcome {
        view.handle_key(
            &KeyEvent::new(code, KeyModifiers::NONE),
            Some(a),
            fixtures::now(),
        )
    }

    fn screen(view: &mut LogsView) -> String {
        let theme = Theme::default_theme();
        fixtures::render(100, 12, |f| view.draw(f, f.area(), &theme)).join("\n")
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("2025-06-01T12:00:{:02}.000000000Z line {i}", i % 60))
            .collect()
    }

    #[test]
    fn follows_the_newest_lines_and_hides_timestamps_until_t() {
        let mut v = LogsView::new(target(), 100);
        let l = lines(30);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        v.ingest(delta(&refs, StreamState::Streaming, &["tokenizer"]));
        let s = screen(&mut v);
        assert!(s.contains("line 29") && !s.contains("line 5\n"), "{s}");
        assert!(!s.contains("2025-06-01T12:00"), "{s}");
        assert!(
            s.contains("logs batch/tokenizer-worker-abc · tokenizer @ prod-a · following"),
            "{s}"
        );
        key(&mut v, 't');
        assert!(screen(&mut v).contains("2025-06-01T12:00:29.000000000Z line 29"));
    }

    #[test]
    fn pause_keeps_the_lines_in_place_as_new_ones_arrive() {
        let mut v = LogsView::new(target(), 100);
        let l = lines(30);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        v.ingest(delta(&refs, StreamState::Streaming, &["tokenizer"]));
        screen(&mut v);
        key(&mut v, ' ');
        let paused = screen(&mut v);
        assert!(paused.contains("paused"), "{paused}");
        v.ingest(delta(
            &["2025-06-01T12:01:00.0Z new line"],
            StreamState::Streaming,
            &["tokenizer"],
        ));
        let after = screen(&mut v);
        assert!(!after.contains("new line"), "{after}");
        act(&mut v, Action::Bottom, KeyCode::Char('G'));
        assert!(screen(&mut v).contains("new line"));
    }

    #[test]
    fn previous_and_container_keys_ask_for_a_new_read() {
        let mut v = LogsView::new(target(), 100);
        v.ingest(delta(&["x"], StreamState::Streaming, &["app", "sidecar"]));
        assert_eq!(v.target.container.as_deref(), Some("app"));
        let ViewOutcome::Reopen(r) = key(&mut v, 'c') else {
            panic!("c reads another container");
        };
        assert_eq!(r.target.container.as_deref(), Some("sidecar"));
        assert!(!r.previous && r.follow && r.timestamps);
        assert!(screen(&mut v).contains("sidecar (2/2, c next)"));
        let ViewOutcome::Reopen(r) = key(&mut v, 'p') else {
            panic!("p reads the previous run");
        };
        assert!(r.previous && !r.follow);
        assert!(screen(&mut v).contains("previous run"));
    }

    #[test]
    fn search_jumps_between_matches_and_highlights_them() {
        let mut v = LogsView::new(target(), 100);
        let mut l = lines(40);
        l[3] = "Traceback (most recent call last):".into();
        l[20] = "MemoryError: traceback follows".into();
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        v.ingest(delta(&refs, StreamState::Ended, &["tokenizer"]));
        screen(&mut v);
        key(&mut v, '/');
        for c in "traceback".chars() {
            key(&mut v, c);
        }
        assert!(screen(&mut v).contains("search: /traceback"));
        act(&mut v, Action::Open, KeyCode::Enter);
        assert_eq!(
            (v.follow, v.top),
            (false, 3),
            "the first match from the top"
        );
        key(&mut v, 'n');
        assert_eq!(v.top, 20);
        key(&mut v, 'N');
        assert_eq!(v.top, 3);
        let buffer =
            fixtures::render_buffer(100, 12, |f| v.draw(f, f.area(), &Theme::default_theme()));
        let selection = Theme::default_theme().style(Role::Selection);
        assert_eq!(
            fixtures::style_of(&buffer, "Traceback").and_then(|s| s.bg),
            selection.bg
        );
        assert_ne!(
            fixtures::style_of(&buffer, "(most recent").and_then(|s| s.bg),
            selection.bg,
            "only the match is highlighted"
        );
        assert_eq!(
            act(&mut v, Action::Back, KeyCode::Esc),
            ViewOutcome::Changed
        );
        assert_eq!(act(&mut v, Action::Back, KeyCode::Esc), ViewOutcome::Close);
    }

    #[test]
    fn save_names_the_file_after_the_pod_and_writes_what_is_shown() {
        let mut v = LogsView::new(target(), 100);
        v.ingest(delta(
            &["2025-06-01T12:00:00.5Z one", "two"],
            StreamState::Streaming,
            &["tokenizer"],
        ));
        assert_eq!(
            key(&mut v, 's'),
            ViewOutcome::Save {
                file: "batch_tokenizer-worker-abc_tokenizer_20250601-120000.log".into(),
                text: "one\ntwo\n".into(),
            }
        );
    }

    #[test]
    fn an_error_is_one_clear_line() {
        let mut v = LogsView::new(target(), 100);
        v.ingest(delta(
            &[],
            StreamState::Failed("403 Forbidden: pods \"x\" is forbidden".into()),
            &[],
        ));
        assert!(screen(&mut v).contains("403 Forbidden: pods \"x\" is forbidden"));
    }

    #[test]
    fn the_previous_run_of_a_crash_loop_renders_at_100_by_12() {
        let mut v = LogsView::new(target(), 100);
        v.ingest(delta(&["x"], StreamState::Streaming, &["tokenizer"]));
        key(&mut v, 'p');
        v.ingest(delta(
            &[
                "2025-06-01T11:54:00.000000000Z 2025-06-01 11:54:00,000 INFO tokenizer: starting worker version 2.4.0 (pid 1)",
                "2025-06-01T11:54:59.990000000Z Traceback (most recent call last):",
                "2025-06-01T11:54:59.991000000Z   File \"/app/worker.py\", line 212, in <module>",
                "2025-06-01T11:54:59.992000000Z     main()",
                "2025-06-01T11:54:59.999000000Z MemoryError: Unable to allocate 3.12 GiB for an array with shape (8192, 102400) and data type int32",
            ],
            StreamState::Ended,
            &["tokenizer"],
        ));
        insta::assert_snapshot!("logs_previous_run", screen(&mut v));
    }

    #[test]
    fn a_deleted_pod_keeps_its_last_lines_says_ended_and_has_no_previous_run() {
        let mut v = LogsView::new(target(), 100);
        let l = lines(5);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        v.ingest(delta(&refs, StreamState::Streaming, &["tokenizer"]));
        v.ingest(delta(
            &[],
            StreamState::Gone("404 NotFound: pods \"tokenizer-worker-abc\" not found".into()),
            &["tokenizer"],
        ));
        let s = screen(&mut v);
        assert!(
            s.contains("@ prod-a · ended") && !s.contains("following"),
            "{s}"
        );
        assert!(s.contains("line 4") && s.contains("no previous run"), "{s}");
        assert_eq!(key(&mut v, 'p'), ViewOutcome::Changed, "nothing to re-read");
        let s = screen(&mut v);
        assert!(s.contains("line 4") && !s.contains("previous run ·"), "{s}");
    }

    #[test]
    fn a_re_read_that_finds_the_pod_gone_brings_its_last_lines_back() {
        let mut v = LogsView::new(target(), 100);
        let l = lines(5);
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        v.ingest(delta(&refs, StreamState::Ended, &["tokenizer"]));
        assert!(matches!(key(&mut v, 'p'), ViewOutcome::Reopen(_)));
        v.ingest(delta(&[], StreamState::Connecting, &[]));
        v.ingest(delta(
            &[],
            StreamState::Gone("404 NotFound: pods \"tokenizer-worker-abc\" not found".into()),
            &[],
        ));
        let s = screen(&mut v);
        assert!(s.contains("line 0") && s.contains("line 4"), "{s}");
        assert!(
            !s.contains("previous run ·") && s.contains("no previous run"),
            "{s}"
        );
    }

    #[test]
    fn a_silent_follow_is_marked_stalled_not_following() {
        let mut v = LogsView::new(target(), 100);
        v.ingest(delta(&["x"], StreamState::Streaming, &["tokenizer"]));
        v.ingest(delta(
            &[],
            StreamState::Stalled { idle_secs: 60 },
            &["tokenizer"],
        ));
        let s = screen(&mut v);
        assert!(s.contains("stalled 60s") && !s.contains("following"), "{s}");
        assert!(s.contains("no bytes for 60s"), "{s}");
    }

    #[test]
    fn wrap_shows_a_long_line_on_several_rows() {
        let mut v = LogsView::new(target(), 100);
        let long = format!("start {} end", "x".repeat(150));
        v.ingest(delta(&[&long], StreamState::Streaming, &["tokenizer"]));
        assert!(!screen(&mut v).contains("end"));
        key(&mut v, 'w');
        assert!(screen(&mut v).contains("end"));
    }
}
