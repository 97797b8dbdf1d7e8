//! Two `fleetdeck headless` replicas in approve mode on one PostgreSQL store and a sim: the
//! incident, its timeline and its pending approval are one memory. The leader is killed with
//! SIGKILL while the approval waits; the new leader lists every entry its predecessor wrote,
//! shows the same pending approval, acts on a grant given after the failover exactly once (the
//! sim counts the PATCH of the node), and the audit chain verifies. A third replica taking over
//! after the runbook ran finds it in cooldown and does not run it again.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::headless::Replica;
use common::postgres::fresh_database;
use common::{Sim, http, wait_until};
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789abcdef";

fn get(replica: &Replica, path: &str) -> Value {
    http()
        .get(format!("{}{path}", replica.url))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn pending(replica: &Replica) -> Vec<Value> {
    get(replica, "/api/v1/runs")["pending_approvals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn incidents(replica: &Replica) -> Vec<Value> {
    get(replica, "/api/v1/incidents")["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn timeline(replica: &Replica, incident: u64) -> Vec<Value> {
    get(replica, &format!("/api/v1/incidents/{incident}"))["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The node PATCHes the sim's API server received (a cordon is one).
fn node_patches(sim: &Sim) -> u64 {
    sim.counters("sim-a")["by_permission"]["patch /nodes"]
        .as_u64()
        .unwrap_or(0)
}

/// `(seq, hash)` of every audit record, as PostgreSQL holds them.
fn chain(url: &str) -> String {
    common::postgres::psql(
        url,
        "SELECT string_agg(seq || ':' || encode(hash, 'hex'), ',' ORDER BY seq) FROM audit_chain",
    )
}

fn start(sim: &Sim, config: &Path, name: &str, url: &str) -> Replica {
    Replica::start_on(
        sim,
        config,
        name,
        TOKEN,
        &["--mode", "approve"],
        Path::new(url),
    )
}

/// A sim of 10 nodes and two approve-mode replicas on the database at `url`, once one leads:
/// the sim, the config's directory, the leader and the follower.
fn two_replicas(url: &str) -> (Sim, tempfile::TempDir, Replica, Replica) {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "10", "--pods-per-node", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[runbooks]\nrevalidate_after = \"500ms\"\n\n[headless]\nlease_namespace = \"default\"\n"
        ),
    )
    .unwrap();
    let a = start(&sim, &config, "replica-a", url);
    let b = start(&sim, &config, "replica-b", url);
    wait_until("exactly one replica leads", Duration::from_secs(30), || {
        a.leads() != b.leads()
    });
    let (leader, follower) = if a.leads() { (a, b) } else { (b, a) };
    (sim, dir, leader, follower)
}

#[test]
#[ignore = "needs postgresql"]
fn a_new_leader_shows_the_same_timeline_and_approval_and_acts_on_a_later_grant_once() {
    let url = fresh_database();
    let (sim, dir, mut leader, follower) = two_replicas(&url);

    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());

    // One incident and one pending approval, listed identically by both replicas.
    wait_until(
        "both replicas list one pending approval",
        Duration::from_secs(60),
        || pending(&leader).len() == 1 && pending(&follower) == pending(&leader),
    );
    let approval = pending(&leader)[0].clone();
    let id = approval["id"].as_u64().expect("approval id");
    let listed = incidents(&leader);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(incidents(&follower), listed);
    let incident = listed[0]["id"].as_u64().expect("incident id");
    let before = timeline(&leader, incident);
    assert!(!before.is_empty());
    assert_eq!(timeline(&follower, incident), before);
    let chain_before = chain(&url);
    assert_eq!(node_patches(&sim), 0, "nothing is done before the approval");

    // kill -9 the leader while the approval waits.
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    wait_until("the follower takes over", Duration::from_secs(30), || {
        follower.leads()
    });
    // Every entry the old leader wrote, as it wrote it (count and hashes).
    let after = timeline(&follower, incident);
    assert!(after.len() >= before.len());
    assert_eq!(after[..before.len()], before[..]);
    assert!(
        chain(&url).starts_with(&chain_before),
        "the chain before the failover is a prefix of the chain after it"
    );
    // The same approval, still pending (the new leader's run takes it over, it asks no other).
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(8) {
        let now = pending(&follower);
        assert_eq!(
            now.iter().map(|p| p["id"].as_u64()).collect::<Vec<_>>(),
            vec![Some(id)],
            "{now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(node_patches(&sim), 0);

    // Approved after the failover: acted on once.
    let r = http()
        .post(format!("{}/api/v1/runs/{id}/approve", follower.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    wait_until(
        "the new leader cordons the node",
        Duration::from_secs(40),
        || node_patches(&sim) >= 1,
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(node_patches(&sim), 1, "the node was patched more than once");
    assert!(pending(&follower).is_empty());
    let entries = timeline(&follower, incident);
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        text.contains(&format!("approval {id} granted by")),
        "{text}"
    );
    assert!(text.contains("taken over by run"), "{text}");

    let verify = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .args(["--store", &url, "audit", "verify"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {} {}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // A replica that takes over after the run finds the runbook cooling down on the node: no
    // new approval, no second cordon.
    let mut new_leader = follower;
    let c = start(&sim, &dir.path().join("fleetdeck.toml"), "replica-c", &url);
    let _ = new_leader.child.kill();
    let _ = new_leader.child.wait();
    wait_until(
        "the third replica takes over",
        Duration::from_secs(30),
        || c.leads(),
    );
    wait_until(
        "the third replica records the cooldown",
        Duration::from_secs(30),
        || {
            serde_json::to_string(&timeline(&c, incident))
                .is_ok_and(|t| t.contains("is cooling down"))
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(pending(&c).is_empty(), "{:?}", pending(&c));
    assert_eq!(
        node_patches(&sim),
        1,
        "the runbook ran again after the failover"
    );
}

fn metric(replica: &Replica, name: &str) -> Option<f64> {
    let text = http()
        .get(format!("{}/metrics", replica.url))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
}

fn signal(replica: &Replica, sig: i32) {
    let pid = i32::try_from(replica.child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The audit records after `seq` that name `run` as theirs.
fn entries_of_run_after(url: &str, run: &str, seq: i64) -> i64 {
    common::postgres::psql(
        url,
        &format!(
            "SELECT count(*) FROM audit_chain WHERE seq > {seq} AND entry::jsonb->'detail'->>'run' = '{run}'"
        ),
    )
    .parse()
    .unwrap()
}

#[test]
#[ignore = "needs postgresql"]
fn a_leader_paused_past_its_lease_writes_nothing_after_the_takeover_and_steps_down() {
    let url = fresh_database();
    let (sim, _dir, paused, other) = two_replicas(&url);
    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    wait_until(
        "the leader's run waits for an approval",
        Duration::from_secs(60),
        || pending(&paused).len() == 1,
    );
    let approval = pending(&paused)[0].clone();
    let (id, run) = (
        approval["id"].as_u64().unwrap(),
        approval["run"].as_str().unwrap().to_string(),
    );

    // Paused past its lease: the other replica takes over and its run takes the approval.
    signal(&paused, libc::SIGSTOP);
    wait_until(
        "the other replica takes over",
        Duration::from_secs(40),
        || other.leads(),
    );
    let incident = incidents(&other)[0]["id"].as_u64().unwrap();
    wait_until(
        "the new leader's run takes the approval over",
        Duration::from_secs(30),
        || {
            serde_json::to_string(&timeline(&other, incident))
                .is_ok_and(|t| t.contains("taken over by run"))
        },
    );
    let takeover: i64 = common::postgres::psql(&url, "SELECT max(seq) FROM audit_chain")
        .parse()
        .unwrap();

    // Resumed: it still believes it leads for a moment; the store refuses what it writes and
    // it steps down.
    signal(&paused, libc::SIGCONT);
    wait_until(
        "the resumed replica steps down",
        Duration::from_secs(20),
        || {
            metric(&paused, "fleetdeck_leader") == Some(0.0)
                && metric(&paused, "fleetdeck_store_fenced_writes_total").unwrap_or(0.0) >= 1.0
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        entries_of_run_after(&url, &run, takeover),
        0,
        "the paused leader's run wrote after the takeover"
    );
    assert!(other.leads());

    // Approved on the replica that stepped down: the verdict reaches the leader through the
    // store, and the node is cordoned once.
    let r = http()
        .post(format!("{}/api/v1/runs/{id}/approve", paused.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    wait_until(
        "the leader cordons the node",
        Duration::from_secs(40),
        || node_patches(&sim) >= 1,
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(node_patches(&sim), 1);
    assert_eq!(entries_of_run_after(&url, &run, takeover), 0);
}

fn post(replica: &Replica, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", replica.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// Behind a Service, the plan and its confirmation may reach different replicas: the plan is
/// held by none of them, the one that takes the confirmation plans the action again and
/// performs it once; a second confirmation, on either replica, is refused.
#[test]
#[ignore = "needs postgresql"]
fn a_manual_action_planned_on_one_replica_is_confirmed_on_the_other_once() {
    let url = fresh_database();
    let (sim, _dir, leader, follower) = two_replicas(&url);
    let node = http()
        .get(format!("{}/api/v1/nodes", sim.kube_url(0)))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let intent =
        serde_json::json!({"cluster": "sim-a", "mutation": {"action": "cordon", "node": node}});
    let (code, plan) = post(&follower, "/api/v1/actions/plan", intent.clone());
    assert_eq!(code, 200, "{plan}");
    let id = plan["plan_id"].as_str().unwrap().to_string();
    let confirm = format!("/api/v1/actions/{id}/confirm");
    let (code, done) = post(&leader, &confirm, intent.clone());
    assert_eq!(code, 200, "{done}");
    assert_eq!(node_patches(&sim), 1);
    for replica in [&leader, &follower] {
        let (code, again) = post(replica, &confirm, intent.clone());
        assert_eq!(code, 409, "a plan is performed once: {again}");
    }
    assert_eq!(node_patches(&sim), 1, "the node was patched more than once");
}
