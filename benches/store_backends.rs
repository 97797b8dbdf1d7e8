//! The store on both engines in one run: sled (a directory) and PostgreSQL (a throwaway local
//! server with durable settings: fsync and synchronous commit on). Durable appends per second
//! with one and with 64 writers, the p99 latency of an append under 64 writers, listing open
//! incidents and reading one 10,000-entry incident's timeline in a store of N entries, and
//! `audit verify` over those N entries.
//!
//! `cargo bench --bench store_backends` (env `STORE_BENCH_ENTRIES`, default 100,000, sets N;
//! `FLEETDECK_TEST_POSTGRES_URL` uses a server of your own instead of starting one).

use std::time::{Duration, Instant};

use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::{IncidentFilter, Milestone, PgOptions, Store};

#[path = "../tests/common/postgres.rs"]
mod pg_server;

fn entry(i: u64, incident: Option<u64>) -> NewEntry {
    let mut e = NewEntry::new(
        EntryKind::Action,
        Actor::Runbook("gpu-xid-cordon".into()),
        Origin::Headless,
        format!("evicted pod ml/trainer-{i} from gpu-node-{}", i % 500),
    );
    e.incident = incident;
    e.subject = Some(Subject {
        cluster: "prod-us-east".into(),
        node: Some(format!("gpu-node-{}", i % 500)),
        ..Subject::default()
    });
    e.detail
        .insert("attempt".into(), serde_json::json!(1 + i % 3));
    e
}

fn xid(node: u64) -> Signal {
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        dedup_key: format!("gpu.xid:prod/gpu-node-{node}/GPU-0"),
        subject: Subject {
            cluster: "prod".into(),
            node: Some(format!("gpu-node-{node}")),
            gpu: Some("gpu0".into()),
            ..Subject::default()
        },
        summary: format!("XID 79 on gpu-node-{node} gpu0"),
        evidence: Default::default(),
        action: None,
        first_seen: chrono::Utc::now(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    (median(times), last.expect("one round"))
}

struct Figures {
    single: f64,
    many: f64,
    p99: Duration,
    list_open: Duration,
    open_incidents: usize,
    timeline: Duration,
    timeline_len: usize,
    verify: Duration,
    verified: u64,
}

fn run(store: &Store, n: u64) -> Figures {
    // 1. One writer, one durable append at a time.
    let count = 1_000u64;
    let t = Instant::now();
    for i in 0..count {
        store.append(entry(i, None)).expect("append");
    }
    let single = count as f64 / t.elapsed().as_secs_f64();

    // 2. 64 writers at once; each append's latency kept for the p99.
    let (writers, per) = (64u64, 200u64);
    let t = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let s = store.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per as usize);
                for i in 0..per {
                    let t = Instant::now();
                    s.append(entry(w * per + i, None)).expect("append");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer"))
        .collect();
    let many = (writers * per) as f64 / t.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];

    // 3. A large store: 200 incidents (half resolved), one with 10,000 entries, the rest of the
    //    N entries spread over the others and over no incident, appended in bursts of 1,000.
    let window = Duration::from_secs(3600);
    let fired: Vec<Signal> = (0..200).map(xid).collect();
    store
        .record_signals(&fired, &[], Origin::Headless, window, chrono::Utc::now())
        .expect("incidents");
    for id in (2..=200).step_by(2) {
        store
            .milestone(id, Milestone::Resolved, Actor::System, Origin::Cli)
            .expect("resolve");
    }
    let already = store.len().expect("len");
    let mut i = 0u64;
    let mut big = 0u64;
    while already + i < n {
        let batch: Vec<NewEntry> = (0..1_000)
            .map(|k| {
                let j = i + k;
                // Every tenth entry goes to incident 1 until it holds 10,000.
                let incident = if j.is_multiple_of(10) && big < 10_000 {
                    big += 1;
                    Some(1)
                } else if j.is_multiple_of(3) {
                    // The other 199 incidents: incident 1 holds exactly its 10,000 and its signal.
                    Some(2 + j % 199)
                } else {
                    None
                };
                entry(j, incident)
            })
            .collect();
        i += batch.len() as u64;
        store.append_many(batch).expect("fill");
    }
    if big < 10_000 {
        let rest: Vec<NewEntry> = (big..10_000).map(|j| entry(j, Some(1))).collect();
        store.append_many(rest).expect("fill incident 1");
    }

    let (list_open, open) = timed(5, || {
        store
            .incidents(&IncidentFilter {
                open_only: true,
                ..IncidentFilter::default()
            })
            .expect("list")
    });
    let (timeline, entries) = timed(5, || store.timeline(1).expect("timeline"));
    let (verify, report) = timed(1, || store.verify().expect("verify"));
    assert!(report.passed(), "{report:?}");
    Figures {
        single,
        many,
        p99,
        list_open,
        open_incidents: open.len(),
        timeline,
        timeline_len: entries.len(),
        verify,
        verified: report.records,
    }
}

fn main() {
    let n: u64 = std::env::var("STORE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var("FLEETDECK_TEST_POSTGRES_DURABLE", "1") };
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Store::open(&dir.path().join("sled")).expect("open sled");
    let sled_figures = run(&sled, n);
    drop(sled);
    let pg = Store::open_postgres(&PgOptions {
        url: pg_server::fresh_database(),
        password: None,
        ca_file: None,
    })
    .expect("open postgres");
    let pg_figures = run(&pg, n);
    drop(pg);

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!("store of {n} entries                     sled            PostgreSQL");
    let row = |name: &str, a: String, b: String| println!("{name:<40} {a:<15} {b}");
    let (s, p) = (&sled_figures, &pg_figures);
    row(
        "appends/s, 1 writer",
        format!("{:.0}", s.single),
        format!("{:.0}", p.single),
    );
    row(
        "appends/s, 64 writers",
        format!("{:.0}", s.many),
        format!("{:.0}", p.many),
    );
    row("p99 append latency, 64 writers", ms(s.p99), ms(p.p99));
    row(
        &format!("list open incidents ({})", s.open_incidents),
        ms(s.list_open),
        ms(p.list_open),
    );
    row(
        &format!("timeline of one incident ({} entries)", s.timeline_len),
        ms(s.timeline),
        ms(p.timeline),
    );
    row(
        &format!("audit verify ({} records)", s.verified),
        ms(s.verify),
        ms(p.verify),
    );
    assert_eq!(s.timeline_len, p.timeline_len);
    assert_eq!(s.verified, p.verified);
}
