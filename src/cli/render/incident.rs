//! The human-readable forms of incidents for `fleetdeck incident list|show` and of the audit
//! check for `fleetdeck audit verify`. Every text from the store goes through `safe::visible`:
//! titles, subjects and summaries carry alert labels, which anyone who can post an alert sets.

use std::fmt::Write;

use super::safe::visible;

use chrono::{DateTime, Utc};

use crate::model::incident::{Entry, Incident};
use crate::store::AuditReport;

/// `1h 12m`, `3m 5s`, `42s`.
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h >= 24 {
        format!("{}d {}h", h / 24, h % 24)
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// At most `n` characters of `s`, made visible first (so that an escape is never cut in half).
fn cut(s: &str, n: usize) -> String {
    let s = visible(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub fn list(incidents: &[Incident], now: DateTime<Utc>) -> String {
    let mut o = String::new();
    if incidents.is_empty() {
        o.push_str("no incidents\n");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<8} {:<9} {:<13} {:>7} {:>9} {:<40} {:<40}",
        "ID", "SEVERITY", "STATUS", "SIGNALS", "DURATION", "SUBJECT", "TITLE"
    );
    for i in incidents {
        let _ = writeln!(
            o,
            "{:<8} {:<9} {:<13} {:>7} {:>9} {:<40} {}",
            i.label(),
            format!("{:?}", i.severity).to_lowercase(),
            i.status.name(),
            i.signals,
            human_duration(i.duration(now)),
            cut(&i.subject.describe(), 40),
            cut(&i.title, 80)
        );
    }
    o
}

pub fn show(i: &Incident, timeline: &[Entry], now: DateTime<Utc>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: {}", i.label(), visible(&i.title));
    let _ = writeln!(
        o,
        "severity {}  status {}  subject {}  duration {}",
        format!("{:?}", i.severity).to_lowercase(),
        i.status.name(),
        visible(&i.subject.describe()),
        human_duration(i.duration(now))
    );
    if let Some(r) = i.recurs {
        let _ = writeln!(o, "recurs INC-{r}");
    }
    let m = &i.milestones;
    let _ = writeln!(o, "\nMILESTONE     TIME");
    for (name, t) in [
        ("started", m.started),
        ("detected", m.detected),
        ("acknowledged", m.acknowledged),
        ("mitigated", m.mitigated),
        ("resolved", m.resolved),
    ] {
        let _ = writeln!(o, "{name:<13} {}", time(t));
    }
    if !i.affected.is_empty() {
        let _ = writeln!(o, "\nAFFECTED");
        for a in &i.affected {
            let _ = writeln!(o, "  {}", visible(a));
        }
    }
    if !i.active.is_empty() {
        let _ = writeln!(o, "\nSTILL FIRING");
        for a in &i.active {
            let _ = writeln!(o, "  {}", visible(a));
        }
    }
    let _ = writeln!(
        o,
        "\n{:>6} {:<20} {:<9} {:<24} {:<9} SUMMARY",
        "#", "TIME", "KIND", "ACTOR", "SOURCE"
    );
    for e in timeline {
        let n = &e.entry;
        let _ = writeln!(
            o,
            "{:>6} {:<20} {:<9} {:<24} {:<9} {}",
            e.seq,
            n.occurred_at.format("%Y-%m-%d %H:%M:%SZ"),
            n.kind.name(),
            cut(&n.actor.to_string(), 24),
            n.origin.name(),
            visible(&n.summary)
        );
    }
    o
}

pub fn audit(report: &AuditReport, path: &std::path::Path) -> String {
    let mut o = String::new();
    match &report.problem {
        None => {
            let _ = writeln!(
                o,
                "audit chain OK: {} records in {}",
                report.records,
                visible(&path.display().to_string())
            );
        }
        Some(p) => {
            let _ = writeln!(
                o,
                "audit chain FAILED in {}: {}",
                visible(&path.display().to_string()),
                visible(&p.to_string())
            );
            let _ = writeln!(o, "{} records before it verified", report.records);
        }
    }
    if let Some(h) = &report.head {
        let _ = writeln!(o, "head sha256 {}", visible(h));
    }
    if let Some(c) = report.checkpoint {
        let _ = writeln!(
            o,
            "{} records pruned by retention, accounted for by the checkpoint in record #{c}",
            report.pruned
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(chrono::Duration::seconds(42)), "42s");
        assert_eq!(human_duration(chrono::Duration::seconds(185)), "3m 5s");
        assert_eq!(human_duration(chrono::Duration::seconds(4320)), "1h 12m");
        assert_eq!(human_duration(chrono::Duration::hours(50)), "2d 2h");
    }
}
