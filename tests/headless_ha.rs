//! Two `fleetdeck headless` replicas against one sim: exactly one leads (a
//! coordination.k8s.io Lease with client-go's timings), the leader is killed with SIGKILL in the
//! middle of an incident, the other takes over within the lease duration, and no action runs
//! twice (the sim counts mutating requests).

mod common;

use std::time::{Duration, Instant};

use common::headless::Replica;
use common::{Kubectl, Sim, http, wait_until};

const TOKEN: &str = "test-token-0123456789abcdef";

fn mutating(sim: &Sim) -> u64 {
    sim.counters("sim-a")["mutating"].as_u64().unwrap_or(0)
}

#[test]
fn one_replica_leads_and_the_other_takes_over_after_kill_9_without_repeating_an_action() {
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
    let a = Replica::start(&sim, &config, "replica-a", TOKEN, &["--mode", "auto"]);
    let b = Replica::start(&sim, &config, "replica-b", TOKEN, &["--mode", "auto"]);
    wait_until("exactly one replica leads", Duration::from_secs(30), || {
        a.leads() != b.leads()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        a.leads() != b.leads(),
        "both or neither lead after settling"
    );
    let (mut leader, follower) = if a.leads() { (a, b) } else { (b, a) };

    // An incident: the leader's gpu-xid-cordon cordons the node.
    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let node = r.json::<serde_json::Value>().unwrap()["applied"]["node"]
        .as_str()
        .or(None)
        .map(str::to_string);
    let kubectl = Kubectl::new("1.33", &sim);
    let cordoned = || -> Vec<String> {
        kubectl
            .ok(&["get", "nodes", "--no-headers"])
            .lines()
            .filter(|l| l.contains("SchedulingDisabled"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    wait_until(
        "the leader cordons the XID node",
        Duration::from_secs(40),
        || !cordoned().is_empty(),
    );
    if let Some(n) = &node {
        assert!(cordoned().contains(n), "{n} not among {:?}", cordoned());
    }
    // Let the run finish its (refused: emptyDir) drain, then count.
    std::thread::sleep(Duration::from_secs(3));
    let before = mutating(&sim);

    // kill -9 the leader mid-incident.
    let killed = Instant::now();
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    wait_until(
        "the follower takes over within the lease duration",
        Duration::from_secs(30),
        || follower.leads(),
    );
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(15 + 2 + 3),
        "takeover took {took:?}"
    );
    // The new leader sees the same firing signals; it must not cordon the node again.
    std::thread::sleep(Duration::from_secs(6));
    let after = mutating(&sim);
    let repeated = after - before;
    // Only its own Lease renewals mutate (one PUT each 2 s at most, plus the takeover).
    let lease_writes = took.as_secs() / 2 + 6;
    assert!(
        repeated <= lease_writes,
        "{repeated} mutating requests after the takeover (lease writes allowed: {lease_writes})"
    );
    let cordon_patches = sim.counters("sim-a")["by_verb"]["PATCH"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(cordon_patches, 1, "the node was patched more than once");
}
