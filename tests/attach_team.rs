//! Two people on one daemon: `fleetdeck headless` in approve mode on a simulated fleet whose API
//! server answers TokenReview and SubjectAccessReview from a users file (`[headless] auth =
//! "kubernetes"`), and two `fleetdeck attach` cockpits in tmux, a viewer's (a token file) and an
//! approver's (an exec credential plugin in a kubeconfig).
//! Both show the daemon's incident by its one id; the viewer's approve is refused (on the
//! timeline, by name); the approver's is acted on once and both screens say who granted it;
//! `incident list --attach` prints what the daemon's API lists; the daemon killed, both screens
//! say so within 5 s, and both come back when it restarts.

mod common;

use std::time::{Duration, Instant};

use common::headless::Replica;
use common::tmux::Tmux;
use common::{Sim, exec_kubeconfig, http, wait_until};
use serde_json::Value;

const SHARED: &str = "attach-team-shared-token";
const VIEWER: &str = "vera-viewer-token-0123456789";
const APPROVER: &str = "abe-approver-token-0123456789";

fn get(url: &str, token: &str) -> Value {
    http()
        .get(url)
        .bearer_auth(token)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn attach(url: &str, credential: &str) -> Tmux {
    Tmux::sized(
        &format!("{} {credential}", env!("CARGO_BIN_EXE_fleetdeck")).replace("URL", url),
        180,
        50,
    )
}

/// Waits until every screen shows `what` at once (each screen is read again until it does).
fn both_show(screens: &[&Tmux], what: &str) {
    for s in screens {
        s.wait_for(what);
    }
}

fn timeline_summaries(base: &str, incident: u64) -> Vec<String> {
    get(&format!("{base}/api/v1/incidents/{incident}"), SHARED)["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_viewer_and_an_approver_attached_to_one_daemon_see_one_truth() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"vera\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n\n[[user]]\nname = \"abe\"\ntoken = \"{APPROVER}\"\nrole = \"approver\"\n"
        ),
    )
    .unwrap();
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "8",
        "--pods-per-node",
        "6",
        "--users",
        users.to_str().unwrap(),
    ]);
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\nauth = \"kubernetes\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let mut daemon = Replica::start_on(
        &sim,
        &config,
        "team-a",
        SHARED,
        &["--mode", "approve"],
        &store,
    );
    let base = daemon.url.clone();
    // The viewer with a token file, the approver with an exec plugin's credential.
    let vera = dir.path().join("vera");
    std::fs::write(&vera, VIEWER).unwrap();
    let abe = exec_kubeconfig(dir.path(), APPROVER);
    let viewer = attach(
        &base,
        &format!("attach URL --token-file {}", vera.display()),
    );
    let approver = attach(&base, &format!("--kubeconfig {} attach URL", abe.display()));
    both_show(&[&viewer, &approver], "attached team-a");

    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut pending = Value::Null;
    wait_until("a plan waits for approval", Duration::from_secs(60), || {
        pending = get(&format!("{base}/api/v1/runs"), SHARED)["pending_approvals"][0].clone();
        pending.is_object()
    });
    let approval = pending["id"].as_u64().unwrap();
    let incidents = get(&format!("{base}/api/v1/incidents"), SHARED);
    let ids: Vec<u64> = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 1, "xid-storm is one incident: {incidents:#}");
    let incident = ids[0];

    // Both screens: the same incident, by the daemon's id (the Incidents pane).
    viewer.keys(&["7"]);
    approver.keys(&["7"]);
    both_show(&[&viewer, &approver], &format!("INC-{incident}"));

    // The viewer's approve: refused by the daemon, said on the viewer's screen, on the timeline.
    viewer.keys(&["8"]);
    viewer.wait_for("awaiting approval");
    viewer.keys(&["y"]);
    viewer.wait_for("403");
    wait_until(
        "the refusal is on the incident's timeline",
        Duration::from_secs(10),
        || {
            timeline_summaries(&base, incident)
                .iter()
                .any(|s| s.starts_with("refused approve to vera"))
        },
    );
    assert!(
        get(&format!("{base}/api/v1/runs"), SHARED)["pending_approvals"]
            .as_array()
            .is_some_and(|p| p.iter().any(|a| a["id"].as_u64() == Some(approval))),
        "the viewer's refused approve left the approval pending"
    );

    // The approver's: granted once, in abe's name, and both screens say so.
    approver.keys(&["8"]);
    approver.wait_for("awaiting approval");
    approver.keys(&["y"]);
    approver.wait_for(&format!("approval {approval} granted"));
    wait_until(
        "the grant is on the timeline once",
        Duration::from_secs(20),
        || {
            timeline_summaries(&base, incident)
                .iter()
                .any(|s| s.contains(&format!("approval {approval} granted by abe")))
        },
    );
    let granted = timeline_summaries(&base, incident)
        .iter()
        .filter(|s| s.contains("granted by"))
        .count();
    assert_eq!(granted, 1);
    for screen in [&viewer, &approver] {
        screen.keys(&["7"]);
        screen.keys(&["Enter"]);
    }
    both_show(&[&viewer, &approver], "granted by abe");

    // The one-shot command attached prints what the daemon's API lists (read until two reads
    // agree: the incident's entry count moves while the run writes).
    let mut last = (Value::Null, Value::Null);
    wait_until(
        "incident list --attach -o json equals /api/v1/incidents",
        Duration::from_secs(20),
        || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
                .args(["incident", "list", "-o", "json", "--attach", &base])
                .arg("--token-file")
                .arg(&vera)
                .env("HOME", dir.path())
                .env_remove("KUBECONFIG")
                .output()
                .unwrap();
            let api = get(&format!("{base}/api/v1/incidents"), VIEWER)["incidents"].clone();
            last = (
                serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
                api,
            );
            out.status.success()
                && last.0 == last.1
                && last.0.as_array().is_some_and(|a| !a.is_empty())
        },
    );

    // The daemon killed: both screens say so within 5 s.
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    for screen in [&viewer, &approver] {
        loop {
            if screen.screen().contains("disconnected") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no \"disconnected\" within 5 s of the daemon's death:\n{}",
                screen.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Restarted on the same store and address: both come back to the new daemon run, with
    // the same incident.
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    let _restarted = Replica::start_at(
        &sim,
        &config,
        "team-b",
        SHARED,
        &["--mode", "approve"],
        &store,
        port,
    );
    both_show(&[&viewer, &approver], "attached team-b");
    both_show(&[&viewer, &approver], &format!("INC-{incident}"));
}
