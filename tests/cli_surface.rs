//! The command line as a newcomer meets it: each command's help lists only the flags it uses,
//! a flag given to a command that does not use it is refused by name, shell completion works
//! in a real bash (kubeconfig contexts included), and the manual pages are written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn fleetdeck(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("HOME", home)
        .output()
        .expect("run fleetdeck")
}

/// The long flags a command's `--help` lists.
fn flags_of(args: &[&str]) -> Vec<String> {
    let home = tempfile::tempdir().expect("temp dir");
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let out = fleetdeck(&with_help, home.path());
    assert!(out.status.success(), "{args:?} --help: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-h, ").or(Some(l))?;
            let l = l.strip_prefix("-o, ").unwrap_or(l);
            l.strip_prefix("--")
                .map(|f| f.split([' ', '=']).next().unwrap_or(f).to_string())
        })
        .collect()
}

#[test]
fn each_command_lists_only_the_flags_it_uses() {
    let cockpit_only = ["theme", "noc"];
    for (command, wants, not) in [
        (
            &["headless"][..],
            &[
                "kubeconfig",
                "context",
                "store",
                "mode",
                "runbooks",
                "read-only",
            ][..],
            &cockpit_only[..],
        ),
        (
            &["snapshot"],
            &["kubeconfig", "context"],
            &["theme", "noc", "store", "mode", "runbooks", "read-only"],
        ),
        (
            &["incident", "list"],
            &["store"],
            &["theme", "noc", "kubeconfig", "context", "mode", "read-only"],
        ),
        (
            &["sim"],
            &[],
            &[
                "theme",
                "noc",
                "kubeconfig",
                "context",
                "store",
                "mode",
                "read-only",
            ],
        ),
        (
            &["runbook", "test"],
            &["mode", "runbooks"],
            &["theme", "noc", "kubeconfig", "store", "read-only"],
        ),
        (
            &["demo"],
            &["theme", "noc", "store", "mode", "read-only"],
            &["kubeconfig", "context"],
        ),
        (
            &[],
            &[
                "theme",
                "noc",
                "kubeconfig",
                "context",
                "store",
                "mode",
                "read-only",
            ],
            &[],
        ),
    ] {
        let flags = flags_of(command);
        for w in wants.iter().chain(&["config"]) {
            assert!(
                flags.iter().any(|f| f == w),
                "{command:?} should offer --{w}: {flags:?}"
            );
        }
        for n in not {
            assert!(
                !flags.iter().any(|f| f == n),
                "{command:?} should not offer --{n}: {flags:?}"
            );
        }
    }
}

#[test]
fn a_flag_the_command_does_not_use_is_refused_by_name() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = fleetdeck(&["--theme", "dark", "headless"], home.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--theme is not an option of `fleetdeck headless`"),
        "{err}"
    );
    let out = fleetdeck(&["headless", "--noc"], home.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_cockpit_flag_before_the_command_counts_when_the_command_takes_it() {
    let home = tempfile::tempdir().expect("temp dir");
    let store = home.path().join("store");
    let s = store.to_str().expect("utf-8");
    for args in [
        &["--store", s, "incident", "list"][..],
        &["incident", "--store", s, "list"],
        &["incident", "list", "--store", s],
    ] {
        let out = fleetdeck(args, home.path());
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert!(store.exists(), "the store named by --store was opened");
    assert!(
        !home.path().join("fleetdeck").join("store").exists(),
        "and not the default one"
    );
}

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: east
  cluster: {server: \"https://127.0.0.1:1\"}
contexts:
- name: prod-east
  context: {cluster: east, user: u}
- name: staging
  context: {cluster: east, user: u}
users:
- name: u
  user: {token: x}
";

/// What bash offers for the last word of `line` (split on spaces), through the registration
/// script `fleetdeck completions bash` prints, in a real bash.
fn bash_completes(home: &Path, words: &[&str]) -> Vec<String> {
    let exe = env!("CARGO_BIN_EXE_fleetdeck");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <('{exe}' completions bash) || exit 9\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_fleetdeck fleetdeck '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("HOME", home)
        .env("KUBECONFIG", home.join("kubeconfig"))
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_flags_and_kubeconfig_contexts() {
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::write(home.path().join("kubeconfig"), KUBECONFIG).expect("write kubeconfig");
    assert_eq!(
        bash_completes(home.path(), &["fleetdeck", "snapshot", "--context", ""]),
        ["prod-east", "staging"]
    );
    assert_eq!(
        bash_completes(home.path(), &["fleetdeck", "--context", "st"]),
        ["staging"]
    );
    assert_eq!(
        bash_completes(home.path(), &["fleetdeck", "head"]),
        ["headless"]
    );
    let flags = bash_completes(home.path(), &["fleetdeck", "headless", "--"]);
    assert!(flags.iter().any(|f| f == "--read-only"), "{flags:?}");
    assert!(!flags.iter().any(|f| f == "--theme"), "{flags:?}");
}

#[test]
fn zsh_and_fish_scripts_call_back_into_the_binary() {
    let home = tempfile::tempdir().expect("temp dir");
    for (shell, marker) in [("zsh", "#compdef fleetdeck"), ("fish", "complete")] {
        let out = fleetdeck(&["completions", shell], home.path());
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("FLEETDECK_COMPLETE"), "{shell}: {script}");
        assert!(
            script.contains(env!("CARGO_BIN_EXE_fleetdeck")),
            "{shell}: {script}"
        );
    }
    let out = fleetdeck(&["completions", "tcsh"], home.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is refused: {out:?}"
    );
}

#[test]
fn man_writes_a_page_per_command() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = fleetdeck(&["man"], home.path());
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH fleetdeck 1"), "{page}");
    let dir = home.path().join("man1");
    let out = fleetdeck(&["man", "--dir", dir.to_str().expect("utf-8")], home.path());
    assert!(out.status.success(), "{out:?}");
    for page in [
        "fleetdeck.1",
        "fleetdeck-headless.1",
        "fleetdeck-incident-list.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).expect(page);
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    let headless = std::fs::read_to_string(dir.join("fleetdeck-headless.1")).expect("page");
    assert!(
        headless.contains("read\\-only") && !headless.contains("theme"),
        "{headless}"
    );
}

#[test]
fn a_long_wait_shows_progress_on_a_terminal_and_nothing_off_one() {
    let home = tempfile::tempdir().expect("temp dir");
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, KUBECONFIG).expect("write kubeconfig");
    let k = kubeconfig.to_str().expect("utf-8");
    // Port 1 refuses: the wait runs its whole 20 s, long enough to look at it.
    let off = fleetdeck(
        &[
            "snapshot",
            "--kubeconfig",
            k,
            "--context",
            "staging",
            "--wait-synced",
            "2s",
        ],
        home.path(),
    );
    assert_eq!(off.status.code(), Some(3), "{off:?}");
    let err = String::from_utf8_lossy(&off.stderr);
    assert!(
        !err.contains("retrying"),
        "no progress off a terminal: {err}"
    );

    let command = format!(
        "HOME={home} XDG_CONFIG_HOME={home} {exe} snapshot --kubeconfig {k} --context staging \
         --wait-synced 20s; sleep 30",
        home = home.path().display(),
        exe = env!("CARGO_BIN_EXE_fleetdeck"),
    );
    let tmux = common::tmux::Tmux::sized(&command, 150, 20);
    let screen = tmux.wait_for("staging: API server unreachable, retrying");
    assert!(
        !screen.contains("CLUSTER"),
        "the report waits for the end: {screen}"
    );
}

/// Runs `args` with stdout a pipe whose reader is already gone, as `fleetdeck man | head` is
/// once `head` has read its lines.
fn into_a_closed_pipe(args: &[&str], home: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("HOME", home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fleetdeck");
    drop(child.stdout.take());
    child.wait_with_output().expect("fleetdeck ends")
}

#[test]
fn a_reader_that_stops_early_is_a_normal_end_of_the_output() {
    let home = tempfile::tempdir().expect("temp dir");
    for args in [&["man"][..], &["completions", "bash"], &["runbook", "list"]] {
        let out = into_a_closed_pipe(args, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn headless_help_shows_its_default_listen_address() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = fleetdeck(&["headless", "--help"], home.path());
    let help = String::from_utf8_lossy(&out.stdout);
    let listen = help
        .lines()
        .skip_while(|l| !l.contains("--listen"))
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(listen.contains("[default: "), "{help}");
}
