//! The RCA store's targets: durable appends per second, exporting a 10,000-entry incident, and
//! opening a store that holds 1,000,000 entries. Every append counted here returned only after
//! its group was flushed, the durability the crash test (`tests/store_crash.rs`) checks.
//!
//! `cargo bench --bench store` (env `STORE_BENCH_ENTRIES` shrinks the 1,000,000).

use std::sync::Arc;
use std::time::Instant;

use fleetdeck::model::incident::{Actor, EntryKind, NewEntry, Origin};
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::{IncidentFilter, Store};

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

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let big: u64 = std::env::var("STORE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().expect("temp dir");

    // 1. One writer, one durable append at a time: bounded by the disk's flush latency.
    let store = Store::open(&root.path().join("append")).expect("open");
    let n = 2_000u64;
    let t = Instant::now();
    for i in 0..n {
        store.append(entry(i, None)).expect("append");
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    println!("durable appends, 1 writer:              {single:>10.0} entries/s");

    // 2. Many writers (runbooks, the webhook, the cockpit at once): group commit shares flushes.
    for writers in [8u64, 64] {
        let per = 2_000u64;
        let t = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let s = store.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        s.append(entry(w * per + i, None)).expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("writer");
        }
        let rate = (writers * per) as f64 / t.elapsed().as_secs_f64();
        println!("durable appends, {writers:>2} writers:             {rate:>10.0} entries/s");
    }

    // 3. A burst handed over at once (one snapshot's signals): one commit.
    let t = Instant::now();
    let burst = 20_000u64;
    for chunk in 0..(burst / 1000) {
        store
            .append_many((0..1000).map(|i| entry(chunk * 1000 + i, None)).collect())
            .expect("append_many");
    }
    let batched = burst as f64 / t.elapsed().as_secs_f64();
    println!("durable appends, bursts of 1,000:       {batched:>10.0} entries/s");
    let report = store.verify().expect("verify");
    assert!(report.passed(), "{report:?}");
    drop(store);

    // 4. Export of a 10,000-entry incident: read the timeline, render the Markdown draft.
    let store = Store::open(&root.path().join("export")).expect("open");
    let signal = Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod-us-east".into(),
            node: Some("gpu-node-7".into()),
            gpu: Some("gpu3".into()),
            ..Subject::default()
        },
        summary: "XID 79 on gpu-node-7 gpu3: GPU has fallen off the bus".into(),
        evidence: Default::default(),
        action: None,
        first_seen: chrono::Utc::now(),
        dedup_key: "gpu.xid:prod-us-east/gpu-node-7/GPU-3".into(),
    };
    let rec = store
        .record_signals(
            &[signal],
            &[],
            Origin::Headless,
            std::time::Duration::from_secs(3600),
            chrono::Utc::now(),
        )
        .expect("signal");
    let id = rec[0].incident;
    for chunk in 0..10u64 {
        store
            .append_many(
                (0..1000)
                    .map(|i| entry(chunk * 1000 + i, Some(id)))
                    .collect(),
            )
            .expect("fill");
    }
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let inc = store.require_incident(id).expect("incident");
        let timeline = store.timeline(id).expect("timeline");
        let md = fleetdeck::store::export::markdown(&inc, &timeline, chrono::Utc::now());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = md.len();
        assert!(timeline.len() > 10_000);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "export of a 10,001-entry incident (md):  {:>10.1} ms median ({} KiB)",
        times[times.len() / 2],
        size / 1024
    );
    drop(store);

    // 5. Opening a store that holds `big` entries.
    let path = root.path().join("big");
    {
        let store = Store::open(&path).expect("open");
        let t = Instant::now();
        let mut written = 0u64;
        while written < big {
            let k = (big - written).min(5000);
            store
                .append_many((0..k).map(|i| entry(written + i, None)).collect())
                .expect("fill");
            written += k;
        }
        println!(
            "filling {big} entries (bursts of 5,000): {:>8.1} s, {:.0} entries/s",
            t.elapsed().as_secs_f64(),
            big as f64 / t.elapsed().as_secs_f64()
        );
    }
    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let store = Arc::new(Store::open(&path).expect("reopen"));
        let len = store.len().expect("len");
        let open = store
            .incidents(&IncidentFilter::default())
            .expect("incidents");
        opens.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(len, big);
        assert!(open.is_empty());
        drop(store);
    }
    opens.sort_by(|a, b| a.total_cmp(b));
    println!(
        "open a store of {big} entries:        {:>10.0} ms median (first {:.0} ms)",
        opens[1], opens[0]
    );
    let t = Instant::now();
    let store = Store::open(&path).expect("reopen");
    let report = store.verify().expect("verify");
    println!(
        "verify the audit chain of {big} entries: {:>8.2} s ({})",
        t.elapsed().as_secs_f64(),
        if report.passed() { "passed" } else { "FAILED" }
    );
    println!("peak-ish RSS now: {:.0} MiB", rss_mib());
}
