//! The database stopped for 30 s during an incident: the daemon keeps watching, acts on
//! nothing while its record cannot be written (the sim sees no PATCH), says so on /readyz (503
//! naming the store) and /metrics (`fleetdeck_store_up 0`), and once PostgreSQL is back it
//! reconnects, records the outage (`store.down`) and the incident, and acts. A test binary of
//! its own: it stops the one server its tests share.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::headless::Replica;
use common::postgres::{fresh_database, psql};
use common::{Sim, http, wait_until};

const TOKEN: &str = "test-token-0123456789abcdef";

fn node_patches(sim: &Sim) -> u64 {
    sim.counters("sim-a")["by_permission"]["patch /nodes"]
        .as_u64()
        .unwrap_or(0)
}

fn readyz(replica: &Replica) -> (u16, String) {
    http()
        .get(format!("{}/readyz", replica.url))
        .send()
        .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
        .unwrap_or((0, String::new()))
}

fn store_up(replica: &Replica) -> Option<String> {
    let text = http()
        .get(format!("{}/metrics", replica.url))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("fleetdeck_store_up "))
        .map(|l| {
            l.trim_start_matches("fleetdeck_store_up ")
                .trim()
                .to_string()
        })
}

fn recorded(url: &str, pattern: &str) -> i64 {
    psql(
        url,
        &format!("SELECT count(*) FROM audit_chain WHERE entry::text LIKE '%{pattern}%'"),
    )
    .parse()
    .unwrap_or(0)
}

#[test]
#[ignore = "needs postgresql"]
fn with_the_database_stopped_nothing_acts_readyz_says_so_and_everything_is_recorded_after() {
    let outage = Duration::from_secs(
        std::env::var("FLEETDECK_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let url = fresh_database();
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
    let replica = Replica::start_on(
        &sim,
        &config,
        "replica-a",
        TOKEN,
        &["--mode", "auto"],
        Path::new(&url),
    );
    wait_until(
        "the replica leads and is ready",
        Duration::from_secs(40),
        || replica.leads() && readyz(&replica).0 == 200,
    );
    assert_eq!(store_up(&replica).as_deref(), Some("1"));

    common::postgres::stop();
    let stopped = Instant::now();
    wait_until(
        "/readyz answers 503 naming the store",
        Duration::from_secs(20),
        || {
            let (code, body) = readyz(&replica);
            code == 503 && body.contains("store")
        },
    );
    assert_eq!(store_up(&replica).as_deref(), Some("0"));
    // An incident while the database is down: seen, not acted on.
    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    while stopped.elapsed() < outage {
        assert_eq!(
            node_patches(&sim),
            0,
            "a node was patched while its record could not be written"
        );
        assert_eq!(readyz(&replica).0, 503);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(node_patches(&sim), 0);

    common::postgres::start_again();
    wait_until(
        "the replica acts once the database is back",
        Duration::from_secs(60),
        || node_patches(&sim) >= 1,
    );
    wait_until("/readyz is 200 again", Duration::from_secs(20), || {
        readyz(&replica).0 == 200
    });
    assert_eq!(store_up(&replica).as_deref(), Some("1"));
    wait_until(
        "the outage and the incident are recorded",
        Duration::from_secs(30),
        || recorded(&url, "store.down") >= 2 && recorded(&url, "gpu.xid") >= 1,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node_patches(&sim), 1, "the node was patched more than once");

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
}
