//! The table forms of `fleetdeck store stats|prune` and `fleetdeck audit list`.

use std::fmt::Write;

use crate::model::incident::Entry;
use crate::store::{PruneReport, StoreStats};

/// One line an entry: when, kind (and verdict), actor, origin, incident, summary, then the
/// detail that says why (a refusal's reason, request and peer).
pub fn entries(entries: &[Entry]) -> String {
    let mut o = String::new();
    if entries.is_empty() {
        o.push_str("no audit entries match\n");
        return o;
    }
    let _ = writeln!(
        o,
        "{:>6} {:<20} {:<17} {:<24} {:<9} {:<8} SUMMARY",
        "#", "TIME", "KIND", "ACTOR", "SOURCE", "INCIDENT"
    );
    for e in entries {
        let n = &e.entry;
        let kind = match n.verdict {
            Some(v) => format!(
                "{} ({})",
                n.kind.name(),
                serde_json::to_value(v)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            None => n.kind.name().to_owned(),
        };
        let _ = writeln!(
            o,
            "{:>6} {:<20} {:<17} {:<24} {:<9} {:<8} {}",
            e.seq,
            e.recorded_at.format("%Y-%m-%d %H:%M:%SZ"),
            kind,
            n.actor.to_string(),
            n.origin.name(),
            n.incident
                .map_or_else(|| "—".to_owned(), crate::model::incident::incident_label),
            n.summary.replace('\n', " ")
        );
        for key in ["reason", "request", "peer", "refusals_not_recorded"] {
            if let Some(v) = n.detail.get(key) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                let _ = writeln!(o, "{:>6} {key}: {text}", "");
            }
        }
    }
    o
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn stats(s: &StoreStats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "store {}", s.path);
    let _ = writeln!(
        o,
        "size on disk  {} ({} bytes)",
        bytes(s.size_on_disk),
        s.size_on_disk
    );
    let _ = writeln!(o, "\nRECORDS");
    for (name, n) in &s.trees {
        let _ = writeln!(o, "  {name:<12} {n:>10}");
    }
    let _ = writeln!(o, "\nINCIDENTS");
    for (label, mark) in [
        ("oldest", &s.oldest_incident),
        ("newest", &s.newest_incident),
    ] {
        match mark {
            Some(m) => {
                let _ = writeln!(
                    o,
                    "  {label}  {} detected {}",
                    crate::model::incident::incident_label(m.id),
                    m.detected.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
            None => {
                let _ = writeln!(o, "  {label}  —");
            }
        }
    }
    let _ = writeln!(o, "\nCHECKPOINT");
    match &s.checkpoint {
        Some(c) => {
            let _ = writeln!(
                o,
                "  record #{} at {}: {} records of {} incidents pruned, in {} ranges",
                c.seq,
                c.recorded_at.format("%Y-%m-%d %H:%M:%SZ"),
                c.pruned,
                c.incidents,
                c.ranges
            );
            if let Some(h) = &c.last_pruned_hash {
                let _ = writeln!(o, "  last pruned record sha256 {h}");
            }
        }
        None => {
            let _ = writeln!(o, "  none: nothing has been pruned");
        }
    }
    o
}

pub fn pruned(r: &PruneReport, retention: std::time::Duration, path: &std::path::Path) -> String {
    let keep = humantime::format_duration(retention);
    match r.checkpoint {
        None => format!(
            "nothing in {} is older than {keep}: nothing pruned\n",
            path.display()
        ),
        Some(seq) => format!(
            "pruned {} resolved incidents and {} audit records older than {keep} from {}; checkpoint #{seq} ({} records pruned in all)\n",
            r.incidents,
            r.entries,
            path.display(),
            r.pruned_in_all
        ),
    }
}
