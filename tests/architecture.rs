//! The module map in docs/architecture.md is a rule: every `crate::<module>` a module's code
//! names (outside comments) must be in that module's "may use" row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// module → the modules it may use (`None`: all).
fn allowed() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md"))
        .unwrap_or_else(|e| panic!("docs/architecture.md: {e}"));
    let mut rows = BTreeMap::new();
    let mut in_map = false;
    for line in doc.lines() {
        if line.starts_with("## Module map") {
            in_map = true;
            continue;
        }
        if in_map && line.starts_with("## ") {
            break;
        }
        if !in_map || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(module), Some(uses)) = (cells.first(), cells.last()) else {
            continue;
        };
        let module = module.trim_matches('`').to_string();
        let uses = match *uses {
            "all" => None,
            "—" => Some(BTreeSet::new()),
            list => Some(list.split(',').map(|m| m.trim().to_string()).collect()),
        };
        rows.insert(module, uses);
    }
    rows
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            rust_files(&p, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Every `crate::<name>` in `src` outside `//` comments.
fn crate_paths(src: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in src.lines() {
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `$crate::` and `fleetdeck::`-qualified paths are not this crate's module edges.
            let qualified = rest[..i].ends_with('$') || rest[..i].ends_with("::");
            if !name.is_empty() && !qualified {
                found.insert(name);
            }
            rest = tail;
        }
    }
    found
}

#[test]
fn every_module_imports_only_what_its_row_of_the_architecture_allows() {
    let rows = allowed();
    assert!(rows.len() >= 14, "the module map was not read: {rows:?}");
    let src = Path::new(ROOT).join("src");
    let mut broken = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("src: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" || stem == "main" {
            continue;
        }
        let module = stem.to_string();
        seen_modules.insert(module.clone());
        let Some(allowed) = rows.get(&module) else {
            broken.push(format!(
                "src/{module}: not in docs/architecture.md's module map; add its row"
            ));
            continue;
        };
        let Some(allowed) = allowed else { continue };
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for used in crate_paths(&text) {
                if used != module && !allowed.contains(&used) {
                    broken.push(format!(
                        "{}: uses crate::{used}, beyond {module}'s row ({})",
                        file.strip_prefix(ROOT).unwrap_or(&file).display(),
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    for module in rows.keys() {
        assert!(
            seen_modules.contains(module),
            "docs/architecture.md lists {module}, which src/ does not have"
        );
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_path_reader_skips_comments_and_other_crates() {
    let found = crate_paths(
        "use crate::model::Snapshot; // crate::tui is only named here\n\
         let x = $crate::y; let z = fleetdeck::crate::w; crate::store::open();\n",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec!["model".to_string(), "store".to_string()]
    );
}

/// The code of a file above its `#[cfg(test)]` module (tests may build their own parts).
fn above_tests(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod ") {
        Some(i) => &src[..i],
        None => src,
    }
}

#[test]
fn only_the_engine_sets_up_the_executor_guard_and_notifier() {
    // Each face once wrote this set-up itself, with its own error policy; now every face asks
    // `engine::Engine::build` with a `FacePolicy`. Their own modules define them.
    let constructors = ["Executor::new(", "Guard::new(", "Notifier::start("];
    let owners = ["src/engine/", "src/runbook/", "src/notify/"];
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut broken = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(ROOT)
            .unwrap_or(&file)
            .display()
            .to_string();
        if owners.iter().any(|o| rel.starts_with(o)) || rel.ends_with("tests.rs") {
            continue;
        }
        let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for c in constructors {
            let code = above_tests(&src);
            // `BusyGuard::new(` and `TokioExecutor::new(` are other types.
            let called = code.match_indices(c).any(|(i, _)| {
                !code[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|b| b.is_alphanumeric() || b == '_')
            });
            if called {
                broken.push(format!(
                    "{rel}: calls {c}…) — build it with engine::Engine::build"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// What only the router's links may name: the executor that performs `Mutation`s and the guard
/// that clears them. A pane answers an intent; it never acts.
const ACTING: [&str; 5] = [
    "Executor",
    "runbook::guard",
    ".guard()",
    "Clearance",
    "runbook::executor::Executor",
];

/// The pane files: every file that implements `Pane` or a table pane's `TableSpec`, the
/// traits' own and the intents'.
fn pane_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src/tui"), &mut files);
    files
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.contains("impl Pane for")
                || text.contains("impl TableSpec for")
                || f.ends_with("src/tui/table_pane.rs")
                || f.ends_with("src/tui/pane.rs")
                || f.ends_with("src/tui/intent.rs")
        })
        .collect()
}

#[test]
fn panes_never_touch_the_executor_or_the_guard() {
    let files = pane_files();
    assert!(
        files.len() >= 11,
        "the pane files were not found: {files:?}"
    );
    let mut broken = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (n, line) in text.lines().enumerate() {
            let code = match line.find("//") {
                Some(i) if !line[..i].contains('"') => &line[..i],
                _ => line,
            };
            for name in ACTING {
                if code.contains(name) {
                    broken.push(format!(
                        "{}:{}: a pane names {name}; return an Intent and let tui::app::router perform it",
                        file.strip_prefix(ROOT).unwrap_or(&file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The most lines a source file may hold above its tests: past it a file owns more than one
/// thing, and is split by what its pieces own (issue 25).
const MAX_LINES_ABOVE_TESTS: usize = 1_500;

#[test]
fn no_source_file_has_more_than_1500_lines_above_its_tests() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    assert!(
        files.len() > 100,
        "the source files were not found: {files:?}"
    );
    let mut offenders = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let lines = above_tests(&text).lines().count();
        if lines > MAX_LINES_ABOVE_TESTS {
            offenders.push(format!(
                "{}: {lines} lines above its tests (at most {MAX_LINES_ABOVE_TESTS}); split it by what its pieces own",
                file.strip_prefix(ROOT).unwrap_or(&file).display()
            ));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

#[test]
fn the_line_count_stops_at_the_test_module() {
    let src = "//! a\nfn f() {}\n\n#[cfg(test)]\nmod tests {\n    fn g() {}\n}\n";
    assert_eq!(above_tests(src).lines().count(), 3);
    assert_eq!(above_tests("fn f() {}\n").lines().count(), 1);
}

/// The lines of `file` that name one of `names` in code (not in `//` comments), as
/// `path:line: name`.
fn naming(file: &Path, names: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let rel = file
        .strip_prefix(ROOT)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        for name in names.iter().filter(|name| code.contains(**name)) {
            found.push(format!("{rel}:{}: {name}", n + 1));
        }
    }
    found
}

#[test]
fn detectors_never_touch_the_store() {
    // A detector is a function of what it is shown and its own memory: what happened before a
    // restart is the pipeline's to read from the store, not a detector's.
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src/signals"), &mut files);
    assert!(
        files.len() >= 8,
        "the detector files were not found: {files:?}"
    );
    let broken: Vec<String> = files
        .iter()
        .flat_map(|f| naming(f, &["crate::store", "sled::", "Store"]))
        .collect();
    assert!(
        broken.is_empty(),
        "a detector names the store:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_detector_type_is_registered() {
    // Adding a detector is its file, its catalog entry and one line in `signals::registered`;
    // a type implementing `Detector` that is not registered never runs.
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src/signals"), &mut files);
    let registry = std::fs::read_to_string(Path::new(ROOT).join("src/signals/mod.rs"))
        .unwrap_or_else(|e| panic!("src/signals/mod.rs: {e}"));
    let mut types = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for rest in text.split("impl Detector for ").skip(1) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            types.push(name);
        }
    }
    assert!(
        types.len() >= 6,
        "the detector types were not found: {types:?}"
    );
    let unregistered: Vec<&String> = types
        .iter()
        .filter(|t| !registry.contains(&format!("{t}::default()")))
        .collect();
    assert!(
        unregistered.is_empty(),
        "detectors not in signals::registered: {unregistered:?}"
    );
}
