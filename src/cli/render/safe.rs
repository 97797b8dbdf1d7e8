//! Text from outside (alert labels, pod names, runbook output, a daemon's answer) made safe to
//! print on a terminal: every control character is shown as a visible escape instead of being
//! obeyed. One helper for every table and export of the CLI; the cockpit strips them itself.
//!
//! An ESC in an alert's label could otherwise recolour, move or clear the on-call's terminal
//! (or set its title, or write to its clipboard through OSC 52), a CR could overwrite the start
//! of a row with made-up text, and a LF could add a row that no incident has. Bidirectional
//! overrides (U+202A–U+202E, U+2066–U+2069) reorder what follows them on screen, so they are
//! shown too. Escapes read like Rust's: `\x1b`, `\r`, `\n`, `\t`, `\u{202e}`.

use std::borrow::Cow;
use std::fmt::Write;

/// One field of a table or a line: every control character escaped, line breaks included.
pub fn visible(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// A whole document whose line breaks (and tabs) are its own, e.g. a Markdown export whose
/// fields already had theirs folded: every other control character escaped.
pub fn visible_lines(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) || keep(c) {
            out.push(c);
            continue;
        }
        // Writing into a String cannot fail.
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_alone_and_borrowed() {
        let s = "gpu.xid on prod/node-7 — 3 GPUs, ünïcode";
        assert!(matches!(visible(s), Cow::Borrowed(_)));
        assert_eq!(visible(s), s);
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            visible("a\x1b[2J\rb\nc\td\x7f\u{9b}e\0"),
            "a\\x1b[2J\\rb\\nc\\td\\x7f\\x9be\\x00"
        );
        assert_eq!(visible("safe\u{202e}txt.exe"), "safe\\u{202e}txt.exe");
    }

    #[test]
    fn a_document_keeps_its_own_line_breaks_only() {
        assert_eq!(
            visible_lines("# INC-1\n\n- \x1b]52;c;aGk=\x07\r\n"),
            "# INC-1\n\n- \\x1b]52;c;aGk=\\x07\\r\n"
        );
    }
}
