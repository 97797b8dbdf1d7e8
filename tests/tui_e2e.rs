//! The real binary's cockpit, driven in tmux as a person would: `fleetdeck demo`, keys sent
//! with send-keys, the screen read with capture-pane.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let session = format!("fleetdeck-e2e-{}-{}", std::process::id(), rand_suffix());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "160",
                "-y",
                "45",
                command,
            ])
            .env("NO_COLOR", "")
            .status()
            .expect("tmux is installed (Debian package tmux)");
        assert!(ok.success(), "tmux new-session failed");
        Tmux { session }
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["send-keys", "-t", &self.session, k])
                .status()
                .expect("send-keys");
            assert!(ok.success());
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    fn text(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "-l", text])
            .status()
            .expect("send-keys");
        assert!(ok.success());
        std::thread::sleep(Duration::from_millis(120));
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `what` (generous timeout; not a timing assertion).
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[test]
fn the_demo_cockpit_navigates_filters_drills_down_switches_context_and_shows_an_injected_fault() {
    let bin = env!("CARGO_BIN_EXE_fleetdeck");
    let home = tempfile::tempdir().expect("temp dir");
    let cmd = format!(
        "env XDG_CONFIG_HOME={} {bin} demo --nodes 12 --pods-per-node 8; echo FLEETDECK-EXITED $?; sleep 30",
        home.path().display()
    );
    let t = Tmux::start(&cmd);
    t.wait_for("SIMULATED FLEET");
    t.wait_for("sim-a");

    // Navigate to the Nodes pane and filter it.
    t.keys(&["2"]);
    let nodes = t.wait_for("Nodes");
    assert!(
        nodes.contains("ip-10-20-0-"),
        "the AWS cluster's nodes are listed:\n{nodes}"
    );
    t.keys(&["/"]);
    t.text("ip-10-20-0-14");
    t.keys(&["Enter"]);
    let filtered = t.wait_for("ip-10-20-0-14");
    assert!(
        !filtered.contains("ip-10-20-0-15"),
        "the filter hides other nodes:\n{filtered}"
    );

    // Open the node, then come back.
    t.keys(&["Enter"]);
    t.wait_for("nvidia.com/gpu");
    t.keys(&["Escape"]);

    // Switch context to the GKE cluster.
    t.keys(&["Escape", ":"]);
    t.text("ctx sim-b");
    t.keys(&["Enter"]);
    t.wait_for("ctx sim-b");
    let gke = t.wait_for("gke-sim-b");
    assert!(!gke.contains("ip-10-20-0-"), "only sim-b is shown:\n{gke}");

    // Inject a fault in the simulated fleet and watch it become a signal.
    t.keys(&[":"]);
    t.text("ctx");
    t.keys(&["Enter", ":"]);
    t.text("scenario xid-storm");
    t.keys(&["Enter"]);
    t.keys(&["6"]);
    t.wait_for("gpu.xid");

    // Quit: the process ends and the shell prints its exit status.
    t.keys(&["q"]);
    let done = t.wait_for("FLEETDECK-EXITED");
    assert!(done.contains("FLEETDECK-EXITED 0"), "{done}");
    assert!(t.alive());
}
