//! Crash safety of the RCA store: a child process appends as fast as it can from four threads
//! and prints each entry's sequence number once `append` has returned; it is killed with
//! SIGKILL at random moments. After every kill the store must open, hold every acknowledged
//! entry with its content, and its audit chain must verify.
//!
//! The child is this test binary itself, re-run with `FLEETDECK_CRASH_CHILD` set.
//! `FLEETDECK_CRASH_ROUNDS` raises the number of kills (default 50) for a longer run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin};
use fleetdeck::store::Store;
use rand::Rng;

const CHILD_ENV: &str = "FLEETDECK_CRASH_CHILD";

/// The child's body; a no-op in an ordinary test run.
#[test]
fn crash_child_appends_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let round: u32 = std::env::var("FLEETDECK_CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let store = Store::open(&PathBuf::from(path)).expect("the store opens in the child");
    println!("READY");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let marker = format!("round {round} thread {t} entry {i}");
                    let e = store
                        .append(NewEntry::new(
                            EntryKind::Note,
                            Actor::System,
                            Origin::Cli,
                            marker.clone(),
                        ))
                        .expect("append");
                    println!("ACK {} {marker}", e.seq);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_entries_survive_kill_9_and_the_chain_verifies() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds: u32 = std::env::var("FLEETDECK_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    let mut kills_while_writing = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_appends_until_killed",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env("FLEETDECK_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let reader = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.ends_with("READY") {
                        let _ = ready_tx.send(());
                    } else if let Some(rest) = line.strip_prefix("ACK ")
                        && let Some((seq, marker)) = rest.split_once(' ')
                        && let Ok(seq) = seq.parse::<u64>()
                    {
                        acks.lock().unwrap().push((seq, marker.to_string()));
                    }
                }
            })
        };
        // Some kills land while the store opens, most while it writes.
        if rng.gen_bool(0.85) {
            ready
                .recv_timeout(Duration::from_secs(30))
                .expect("the child opened the store");
            kills_while_writing += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(acks.lock().unwrap().drain(..));

        let store = Store::open(&path).unwrap_or_else(|e| {
            panic!("round {round}: the store does not open after kill -9: {e}")
        });
        for (seq, marker) in &acknowledged {
            let entry = store
                .entry(*seq)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged entry #{seq} is lost"));
            assert_eq!(&entry.entry.summary, marker, "round {round}: entry #{seq}");
        }
        let report = store.verify().unwrap();
        assert!(report.passed(), "round {round}: {report:?}");
        drop(store);
    }
    assert!(kills_while_writing > rounds / 2);
    assert!(
        acknowledged.len() > rounds as usize,
        "the child wrote too little to prove anything: {}",
        acknowledged.len()
    );
    eprintln!(
        "{rounds} kills, {} acknowledged entries all present",
        acknowledged.len()
    );
}
