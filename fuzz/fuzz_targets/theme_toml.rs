//! A theme file given as `--theme PATH`: read from a file, as a user's theme is, because the
//! theme's parser is reached only through `theme::load`.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fleetdeck::tui::theme;
use libfuzzer_sys::fuzz_target;

fn theme_path() -> &'static PathBuf {
    static PATH: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = PATH.get_or_init(|| {
        // tmpfs where there is one: the file is rewritten on every run.
        let dir = tempfile::Builder::new()
            .prefix("fleetdeck-fuzz-theme")
            .tempdir_in(if Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("a temporary directory for the theme file");
        let path = dir.path().join("fuzz.toml");
        (dir, path)
    });
    path
}

fuzz_target!(|src: &[u8]| {
    let path = theme_path();
    if std::fs::write(path, src).is_err() {
        return;
    }
    let (theme, error) = theme::load(path.to_str(), false);
    if let Some(e) = error {
        let _ = e.to_string();
    }
    let _ = theme.monochrome();
});
