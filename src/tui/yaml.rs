//! The YAML view: one object's current state as the API server answered it, scrollable, with
//! `metadata.managedFields` hidden unless `m` shows them. The loop reads the object; the view
//! only formats and draws it. May import the tui groundwork and `sources::logs::ObjectRef`.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use serde_json::Value;

use super::keymap::Action;
use super::logs::ViewOutcome;
use super::theme::{Role, Theme};
use crate::sources::logs::ObjectRef;

#[derive(Debug)]
pub struct YamlView {
    pub object: ObjectRef,
    /// `None` while the read is under way.
    fetched: Option<Result<Value, String>>,
    show_managed: bool,
    text: Vec<String>,
    top: usize,
    page: usize,
}

/// The object as YAML; `managedFields` only when asked for (they are most of a real object and
/// rarely what an on-call engineer is looking for).
pub fn to_yaml(object: &Value, show_managed: bool) -> String {
    let mut v = object.clone();
    if !show_managed && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    serde_yaml::to_string(&v).unwrap_or_else(|e| format!("cannot show it as YAML: {e}"))
}

impl YamlView {
    pub fn new(object: ObjectRef) -> Self {
        Self {
            object,
            fetched: None,
            show_managed: false,
            text: Vec::new(),
            top: 0,
            page: 1,
        }
    }

    /// The loop's answer for this object.
    pub fn set(&mut self, result: Result<Value, String>) {
        self.fetched = Some(result);
        self.render_text();
    }

    fn render_text(&mut self) {
        self.text = match &self.fetched {
            Some(Ok(v)) => to_yaml(v, self.show_managed)
                .lines()
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        self.top = self.top.min(self.last_top());
    }

    fn last_top(&self) -> usize {
        self.text.len().saturating_sub(self.page.max(1))
    }

    pub fn handle_key(&mut self, key: &KeyEvent, action: Option<Action>) -> ViewOutcome {
        let plain = key.modifiers.difference(KeyModifiers::SHIFT).is_empty();
        if plain && key.code == KeyCode::Char('m') {
            self.show_managed = !self.show_managed;
            self.render_text();
            return ViewOutcome::Changed;
        }
        let page = self.page.max(1);
        let last = self.last_top();
        self.top = match action {
            Some(Action::Back) => return ViewOutcome::Close,
            Some(Action::Up) => self.top.saturating_sub(1),
            Some(Action::Down) => (self.top + 1).min(last),
            Some(Action::PageUp) => self.top.saturating_sub(page),
            Some(Action::PageDown) => (self.top + page).min(last),
            Some(Action::Top) => 0,
            Some(Action::Bottom) => last,
            _ => return ViewOutcome::Ignored,
        };
        ViewOutcome::Changed
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let o = &self.object;
        let place = if o.namespace.is_empty() {
            String::new()
        } else {
            format!(" in {}", o.namespace)
        };
        let title = format!(
            " yaml {}/{}{place} @ {} · managedFields {} ",
            o.kind.to_lowercase(),
            o.name,
            o.cluster,
            if self.show_managed { "shown" } else { "hidden" }
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Role::BorderFocused))
            .title(Span::styled(title, theme.style(Role::Title)));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [body, footer] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        self.page = usize::from(body.height).max(1);
        self.top = self.top.min(self.last_top());
        let lines: Vec<Line> = match &self.fetched {
            None => vec![Line::from(Span::styled(
                "reading the object from the API server…",
                theme.style(Role::Muted),
            ))],
            Some(Err(why)) => vec![Line::from(Span::styled(
                why.clone(),
                theme.style(Role::Critical),
            ))],
            Some(Ok(_)) => self
                .text
                .iter()
                .skip(self.top)
                .take(self.page)
                .map(|l| Line::raw(l.as_str()))
                .collect(),
        };
        frame.render_widget(Paragraph::new(lines).style(theme.style(Role::Base)), body);
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                format!(
                    "m managedFields · j/k scroll · g/G top/bottom · esc close   {}/{} lines",
                    (self.top + self.page).min(self.text.len()),
                    self.text.len()
                ),
                theme.style(Role::Muted),
            ))),
            footer,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tui::nodes::fixtures;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "tokenizer-worker-abc", "namespace": "batch",
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {"containers": [{"name": "tokenizer", "image": "ghcr.io/fleet/tokenizer:2.4.0"}]},
        })
    }

    fn view() -> YamlView {
        YamlView::new(ObjectRef {
            cluster: "prod-a".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "batch".into(),
            name: "tokenizer-worker-abc".into(),
        })
    }

    fn screen(v: &mut YamlView) -> String {
        let theme = Theme::default_theme();
        fixtures::render(90, 16, |f| v.draw(f, f.area(), &theme)).join("\n")
    }

    #[test]
    fn managed_fields_stay_hidden_until_m() {
        let mut v = view();
        assert!(screen(&mut v).contains("reading the object"));
        v.set(Ok(pod()));
        let s = screen(&mut v);
        assert!(
            s.contains("yaml pod/tokenizer-worker-abc in batch @ prod-a · managedFields hidden"),
            "{s}"
        );
        assert!(s.contains("image: ghcr.io/fleet/tokenizer:2.4.0"), "{s}");
        assert!(!s.contains("manager: kubelet"), "{s}");
        let m = KeyEvent::new(KeyCode::Char('m'), KeyModifiers::NONE);
        assert_eq!(v.handle_key(&m, None), ViewOutcome::Changed);
        assert!(screen(&mut v).contains("manager: kubelet"));
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(v.handle_key(&esc, Some(Action::Back)), ViewOutcome::Close);
    }

    #[test]
    fn a_refusal_is_shown_as_the_servers_words() {
        let mut v = view();
        v.set(Err(
            "404 NotFound: pods \"tokenizer-worker-abc\" not found".into()
        ));
        assert!(screen(&mut v).contains("404 NotFound: pods \"tokenizer-worker-abc\" not found"));
    }
}
