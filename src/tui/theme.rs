//! Colour themes: presets shipped in `themes/*.toml` (dark, light, high-contrast,
//! colorblind) and user theme files that overlay one of them. A bad theme file is reported
//! (file, line, key, value) and the default theme is used instead; `NO_COLOR` strips colours
//! and keeps emphasis. Imports only config's error locating helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

/// The shipped presets, by name. `dark` is the default and the base of the others.
pub const PRESETS: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

pub const DEFAULT_THEME: &str = "dark";

/// What a style is for. Panes ask for roles, never for colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Base,
    Title,
    Header,
    Border,
    BorderFocused,
    Selection,
    Muted,
    Accent,
    Ok,
    Info,
    Warning,
    Critical,
    Stale,
    ChartPrimary,
    ChartSecondary,
    SloLine,
    StatusBar,
    Simulated,
}

impl Role {
    pub const ALL: [Role; 18] = [
        Role::Base,
        Role::Title,
        Role::Header,
        Role::Border,
        Role::BorderFocused,
        Role::Selection,
        Role::Muted,
        Role::Accent,
        Role::Ok,
        Role::Info,
        Role::Warning,
        Role::Critical,
        Role::Stale,
        Role::ChartPrimary,
        Role::ChartSecondary,
        Role::SloLine,
        Role::StatusBar,
        Role::Simulated,
    ];

    /// The key of the role in a theme file's `[styles]` table.
    pub fn key(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Title => "title",
            Role::Header => "header",
            Role::Border => "border",
            Role::BorderFocused => "border_focused",
            Role::Selection => "selection",
            Role::Muted => "muted",
            Role::Accent => "accent",
            Role::Ok => "ok",
            Role::Info => "info",
            Role::Warning => "warning",
            Role::Critical => "critical",
            Role::Stale => "stale",
            Role::ChartPrimary => "chart_primary",
            Role::ChartSecondary => "chart_secondary",
            Role::SloLine => "slo_line",
            Role::StatusBar => "status_bar",
            Role::Simulated => "simulated",
        }
    }

    fn from_key(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.key() == key)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<Role, Style>,
}

impl Theme {
    pub fn style(&self, role: Role) -> Style {
        self.styles.get(&role).copied().unwrap_or_default()
    }

    /// The default theme. It cannot fail: the presets are part of the binary and tested.
    pub fn default_theme() -> Theme {
        preset(DEFAULT_THEME).unwrap_or_else(|_| Theme {
            name: DEFAULT_THEME.into(),
            styles: BTreeMap::new(),
        })
    }

    /// Colours removed, emphasis kept (`NO_COLOR`); the selection stays visible as reversed.
    pub fn monochrome(&self) -> Theme {
        let styles = self
            .styles
            .iter()
            .map(|(role, s)| {
                let mut plain = Style::default().add_modifier(s.add_modifier);
                if matches!(role, Role::Selection | Role::StatusBar | Role::Simulated) {
                    plain = plain.add_modifier(Modifier::REVERSED);
                }
                (*role, plain)
            })
            .collect();
        Theme {
            name: format!("{} (no colour)", self.name),
            styles,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThemeError {
    #[error("theme {path}: cannot read it ({message}); using the default theme")]
    Read { path: PathBuf, message: String },
    #[error("theme {path}:{line}: key `{key}` = {value}: {message}; using the default theme")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    extends: Option<Spanned<String>>,
    #[serde(default)]
    styles: BTreeMap<Spanned<String>, StyleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    #[serde(default)]
    fg: Option<Spanned<String>>,
    #[serde(default)]
    bg: Option<Spanned<String>>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
    #[serde(default)]
    reversed: bool,
    #[serde(default)]
    dim: bool,
}

fn preset_source(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| *src)
}

fn preset(name: &str) -> Result<Theme, ThemeError> {
    let src = preset_source(name).ok_or_else(|| ThemeError::Read {
        path: PathBuf::from(name),
        message: "no such preset".into(),
    })?;
    parse(src, Path::new(&format!("themes/{name}.toml")), 0, false)
}

fn invalid(
    src: &str,
    path: &Path,
    offset: usize,
    key: String,
    value: String,
    message: String,
) -> ThemeError {
    let (line, _) = crate::config::line_col(src, offset);
    ThemeError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        value,
        message,
    }
}

fn color(src: &str, path: &Path, key: &str, v: &Spanned<String>) -> Result<Color, ThemeError> {
    v.get_ref().parse::<Color>().map_err(|_| {
        invalid(
            src,
            path,
            v.span().start,
            key.to_string(),
            format!("{:?}", v.get_ref()),
            "not a colour: use a name (\"light blue\"), an index 0-255 or \"#rrggbb\"".into(),
        )
    })
}

/// Parses a theme file into a full theme. Without `extends`, a user's file starts from the
/// default theme (`over_default`) and a preset from nothing. `depth` guards `extends` chains.
fn parse(src: &str, path: &Path, depth: usize, over_default: bool) -> Result<Theme, ThemeError> {
    let file: ThemeFile = toml::from_str(src).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let key = crate::config::key_at(src, offset);
        let value = src[offset.min(src.len())..]
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        invalid(
            src,
            path,
            offset,
            key,
            value,
            e.message().trim().to_string(),
        )
    })?;
    let mut theme = match &file.extends {
        Some(base) if depth < 4 => {
            let name = base.get_ref();
            if preset_source(name).is_none() {
                let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    src,
                    path,
                    base.span().start,
                    "extends".into(),
                    format!("{name:?}"),
                    format!("not a preset; use one of {}", known.join(", ")),
                ));
            }
            parse(
                preset_source(name).unwrap_or_default(),
                Path::new(&format!("themes/{name}.toml")),
                depth + 1,
                false,
            )?
        }
        _ if over_default => Theme::default_theme(),
        _ => Theme {
            name: String::new(),
            styles: BTreeMap::new(),
        },
    };
    theme.name = file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    for (key, spec) in &file.styles {
        let Some(role) = Role::from_key(key.get_ref()) else {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.key()).collect();
            return Err(invalid(
                src,
                path,
                key.span().start,
                format!("styles.{}", key.get_ref()),
                format!("{:?}", key.get_ref()),
                format!("not a style; themes style {}", known.join(", ")),
            ));
        };
        let mut style = Style::default();
        if let Some(fg) = &spec.fg {
            style = style.fg(color(src, path, &format!("styles.{}.fg", role.key()), fg)?);
        }
        if let Some(bg) = &spec.bg {
            style = style.bg(color(src, path, &format!("styles.{}.bg", role.key()), bg)?);
        }
        for (on, m) in [
            (spec.bold, Modifier::BOLD),
            (spec.italic, Modifier::ITALIC),
            (spec.underline, Modifier::UNDERLINED),
            (spec.reversed, Modifier::REVERSED),
            (spec.dim, Modifier::DIM),
        ] {
            if on {
                style = style.add_modifier(m);
            }
        }
        theme.styles.insert(role, style);
    }
    Ok(theme)
}

/// `NO_COLOR` set to anything non-empty (no-color.org).
pub fn no_color_from_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The theme for `--theme NAME|PATH` (a preset name, else a file). On any problem the
/// default theme is used and the error is returned beside it, for the caller to show.
pub fn load(spec: Option<&str>, no_color: bool) -> (Theme, Option<ThemeError>) {
    let loaded = match spec {
        None => Ok(Theme::default_theme()),
        Some(name) if preset_source(name).is_some() => preset(name),
        Some(path) => {
            let path = PathBuf::from(path);
            match std::fs::read_to_string(&path) {
                Ok(src) => parse(&src, &path, 0, true),
                Err(e) => Err(ThemeError::Read {
                    path,
                    message: e.to_string(),
                }),
            }
        }
    };
    let (theme, error) = match loaded {
        Ok(t) => (t, None),
        Err(e) => (Theme::default_theme(), Some(e)),
    };
    (if no_color { theme.monochrome() } else { theme }, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_styles_every_role() {
        for (name, _) in PRESETS {
            let t = preset(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name, *name);
            for role in Role::ALL {
                assert!(t.styles.contains_key(&role), "{name} lacks {}", role.key());
            }
        }
        let dark = preset("dark").unwrap();
        for other in ["light", "high-contrast", "colorblind"] {
            assert_ne!(
                preset(other).unwrap().styles,
                dark.styles,
                "{other} differs from dark"
            );
        }
    }

    #[test]
    fn the_colorblind_preset_does_not_tell_severity_by_red_and_green() {
        let t = preset("colorblind").unwrap();
        let fg = |r: Role| t.style(r).fg;
        assert_eq!(fg(Role::Ok), Some(Color::Rgb(0x00, 0x72, 0xb2)));
        assert_eq!(fg(Role::Warning), Some(Color::Rgb(0xe6, 0x9f, 0x00)));
        assert_eq!(fg(Role::Critical), Some(Color::Rgb(0xd5, 0x5e, 0x00)));
    }

    fn user_theme(text: &str) -> (Theme, Option<ThemeError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, text).unwrap();
        let (t, e) = load(Some(path.to_str().unwrap()), false);
        (t, e, dir)
    }

    #[test]
    fn a_user_theme_overlays_only_the_styles_it_sets() {
        let (t, e, _dir) = user_theme(
            "extends = \"light\"\n[styles]\ncritical = { fg = \"#ff0000\", bold = true }\n",
        );
        assert_eq!(e, None);
        assert_eq!(t.name, "mine");
        assert_eq!(
            t.style(Role::Critical),
            Style::default()
                .fg(Color::Rgb(255, 0, 0))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(
            t.style(Role::Header),
            preset("light").unwrap().style(Role::Header)
        );
        let (t, _, _dir) = user_theme("[styles]\nok = { fg = \"blue\" }\n");
        assert_eq!(
            t.style(Role::Warning),
            Theme::default_theme().style(Role::Warning),
            "no extends: over the default"
        );
    }

    #[test]
    fn a_bad_colour_names_file_line_key_and_value_and_falls_back() {
        let (t, e, dir) =
            user_theme("[styles]\nok = { fg = \"green\" }\nwarning = { fg = \"purpleish\" }\n");
        let msg = e.expect("an error").to_string();
        let path = dir.path().join("mine.toml");
        assert!(
            msg.starts_with(&format!("theme {}:3:", path.display())),
            "{msg}"
        );
        assert!(
            msg.contains("styles.warning.fg") && msg.contains("\"purpleish\""),
            "{msg}"
        );
        assert!(msg.contains("using the default theme"), "{msg}");
        assert_eq!(t, Theme::default_theme());
    }

    #[test]
    fn unknown_styles_fields_and_presets_are_errors() {
        let (_, e, _d) = user_theme("[styles]\nshiny = { fg = \"red\" }\n");
        let msg = e.unwrap().to_string();
        assert!(
            msg.contains(":2:") && msg.contains("styles.shiny") && msg.contains("critical"),
            "{msg}"
        );
        let (_, e, _d) = user_theme("[styles]\nok = { fg = \"red\", blink = true }\n");
        let msg = e.unwrap().to_string();
        assert!(msg.contains(":2:") && msg.contains("blink"), "{msg}");
        let (_, e, _d) = user_theme("extends = \"neon\"\n");
        let msg = e.unwrap().to_string();
        assert!(
            msg.contains("extends") && msg.contains("\"neon\"") && msg.contains("high-contrast"),
            "{msg}"
        );
        let (t, e) = load(Some("/nonexistent/theme.toml"), false);
        assert!(matches!(e, Some(ThemeError::Read { .. })));
        assert_eq!(t, Theme::default_theme());
    }

    #[test]
    fn no_color_strips_colours_and_keeps_emphasis() {
        let (t, e) = load(Some("high-contrast"), true);
        assert_eq!(e, None);
        for role in Role::ALL {
            let s = t.style(role);
            assert_eq!((s.fg, s.bg), (None, None), "{}", role.key());
        }
        assert!(
            t.style(Role::Critical)
                .add_modifier
                .contains(Modifier::BOLD)
        );
        assert!(
            t.style(Role::Selection)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
    }

    #[test]
    fn styles_reach_the_rendered_cells() {
        use ratatui::buffer::Buffer;
        use ratatui::layout::Rect;
        use ratatui::text::Span;
        use ratatui::widgets::{Paragraph, Widget};
        let t = preset("high-contrast").unwrap();
        let mut buf = Buffer::empty(Rect::new(0, 0, 8, 1));
        Paragraph::new(Span::styled("XID 79", t.style(Role::Critical))).render(buf.area, &mut buf);
        let cell = &buf[(0, 0)];
        assert_eq!((cell.fg, cell.bg), (Color::White, Color::Red));
        assert!(cell.modifier.contains(Modifier::BOLD));
    }
}
