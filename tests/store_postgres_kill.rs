//! `kill -9` of a process in the middle of a burst of timeline writes to a PostgreSQL store,
//! again and again: every entry whose append returned (acknowledged) is in the store after the
//! kill, as it was acknowledged, and the audit chain verifies. The writer is this test binary
//! run again as a child (`burst_writer_child`), appending from several threads and printing
//! each acknowledged entry; the parent kills it at a random moment.
//!
//! Rounds: `FLEETDECK_TEST_KILL_ROUNDS` (20 by default, about 30 s; the CI runs 100).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::{fresh_database, psql};
use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin};
use fleetdeck::store::{PgOptions, Store};

const CHILD_URL: &str = "FLEETDECK_TEST_BURST_URL";
const CHILD_ROUND: &str = "FLEETDECK_TEST_BURST_ROUND";

fn open(url: &str) -> Store {
    Store::open_postgres(&PgOptions {
        url: url.to_string(),
        password: None,
        ca_file: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The child: appends notes from four threads until it is killed, printing `ack SEQ TEXT` for
/// each append that returned.
#[test]
#[ignore = "needs postgresql"]
fn burst_writer_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    let store = open(&url);
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, out, round) = (store.clone(), out.clone(), round.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let text = format!("burst r{round} t{t} n{i}");
                    let e = NewEntry::new(
                        EntryKind::Note,
                        Actor::User("burst".into()),
                        Origin::Cli,
                        text.clone(),
                    );
                    let entry = store.append(e).expect("append");
                    let mut o = out.lock().expect("stdout");
                    writeln!(o, "ack {} {text}", entry.seq).expect("write");
                    o.flush().expect("flush");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
#[ignore = "needs postgresql"]
fn kill_9_during_a_burst_of_appends_loses_no_acknowledged_entry() {
    let rounds: usize = std::env::var("FLEETDECK_TEST_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let url = fresh_database();
    // Migrated once, so no child dies inside the migration.
    drop(open(&url));
    let started = Instant::now();
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "burst_writer_child",
                "--include-ignored",
                "--nocapture",
            ])
            .env(CHILD_URL, &url)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ")
                    && let Some((seq, text)) = rest.split_once(' ')
                    && let Ok(seq) = seq.parse::<u64>()
                {
                    acks.push((seq, text.to_string()));
                }
            }
            acks
        });
        // Killed once it is writing, at a moment that differs from round to round.
        let wait = Duration::from_millis(300 + (round as u64 * 137) % 500);
        std::thread::sleep(wait);
        child.kill().expect("kill -9");
        let _ = child.wait();
        let acks = reader.join().expect("reader");
        acknowledged.extend(acks);
    }
    assert!(
        !acknowledged.is_empty(),
        "no append was acknowledged in {rounds} rounds"
    );
    let stored: std::collections::HashMap<u64, String> = psql(
        &url,
        "SELECT seq || ' ' || (entry::jsonb->>'summary') FROM audit_chain WHERE entry::text LIKE '%burst r%' ORDER BY seq",
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(seq, text)| (seq.parse().unwrap_or(0), text.to_string()))
    .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(seq, text)| stored.get(seq) != Some(text))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged entries are not in the store as acknowledged: {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
    let report = open(&url).verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    eprintln!(
        "{rounds} kills, {} acknowledged entries, 0 lost, {} stored, in {:?}",
        acknowledged.len(),
        stored.len(),
        started.elapsed()
    );
}
