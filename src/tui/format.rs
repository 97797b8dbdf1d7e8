//! Text formatting every pane and the app's chrome share: ages and durations, money and
//! percentages, severity labels, table titles and sorted headers, host names, GPU memory and
//! holders, a vector store's count and growth. Pure functions of their arguments. May import
//! model.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::model::gpu::GpuModel;
use crate::model::signal::Severity;

pub fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "CRITICAL",
        Severity::Warning => "WARNING",
        Severity::Info => "INFO",
    }
}

/// `45s`, `12m`, `3h`, `2d`: ages as a table column shows them.
pub fn compact_age(now: DateTime<Utc>, since: DateTime<Utc>) -> String {
    compact_span((now - since).num_seconds())
}

/// `45s`, `12m`, `3h`, `30d`: a span of time as `compact_age` writes ages.
pub fn compact_span(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `$12,345` for large amounts, `$3.25` for small ones; other currencies by their code.
pub fn money(amount: f64, currency: &str) -> String {
    let sign = if amount < 0.0 { "-" } else { "" };
    let a = amount.abs();
    let body = if a >= 100.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else {
        format!("{a:.2}")
    };
    match currency.trim() {
        "USD" => format!("{sign}${body}"),
        "" => format!("{sign}{body}"),
        c => format!("{sign}{body} {c}"),
    }
}

/// A whole percentage, never `-0`.
pub fn whole(pct: f64) -> String {
    format!("{:.0}", pct + 0.0)
}

/// `1 approval pending`, `3 approvals pending`.
pub fn pending_text(n: usize) -> String {
    format!("{n} approval{} pending", if n == 1 { "" } else { "s" })
}

/// `Nodes (38/40) /h100`, or `Nodes in prod (38/40)` when narrowed to one cluster.
pub fn table_title(
    what: &str,
    cluster: Option<&str>,
    shown: usize,
    total: usize,
    filter: &str,
) -> String {
    let mut title = format!(" {what}");
    if let Some(c) = cluster {
        let _ = write!(title, " in {c}");
    }
    let _ = write!(title, " ({shown}/{total})");
    if !filter.is_empty() {
        let _ = write!(title, " /{filter}");
    }
    title.push(' ');
    title
}

/// A column header with the sort direction marked on the sorted column.
pub fn sorted_header(name: &str, index: usize, sort: Option<(usize, bool)>) -> String {
    match sort {
        Some((i, false)) if i == index => format!("{name}▲"),
        Some((i, true)) if i == index => format!("{name}▼"),
        _ => name.to_string(),
    }
}

pub fn severity_text(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// A host name's first DNS label: GPU sources report `ip-10-0-1-7` for the node
/// `ip-10-0-1-7.ec2.internal`.
pub fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// The same host, by full name or by first DNS label (as the GPU join matches them).
pub fn same_host(a: &str, b: &str) -> bool {
    a == b || short_name(a) == short_name(b)
}

/// Kubernetes' short duration (`HumanDuration`, as kubectl's AGE): `45s`, `3m20s`, `5h`,
/// `20d`, `2y30d`. The sim has its own copy; the tui may not import the sim.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

/// `used/total` memory in GiB, `-` when neither is reported.
pub fn format_memory_gib(g: &GpuModel) -> String {
    let mut text = String::new();
    let _ = write_memory_gib(&mut text, g);
    text
}

pub fn write_memory_gib(out: &mut String, g: &GpuModel) -> std::fmt::Result {
    let gib = |out: &mut String, m: Option<u64>| match m {
        Some(m) => write!(out, "{:.1}", m as f64 / 1024.0),
        None => write!(out, "?"),
    };
    match (g.memory_used_mib, g.memory_total_mib) {
        (None, None) => write!(out, "-"),
        (used, total) => {
            gib(out, used)?;
            out.push('/');
            gib(out, total)
        }
    }
}

/// `namespace/pod` of the pod holding a GPU, `-` when none does.
pub fn format_holder(g: &GpuModel) -> String {
    g.holder
        .as_ref()
        .map_or_else(|| "-".into(), |h| format!("{}/{}", h.namespace, h.pod))
}

pub fn format_optional(text: Option<String>) -> String {
    text.unwrap_or_else(|| "-".into())
}

/// `42s`, `7m`, `3h`: an age short enough for the status line.
pub fn compact_age_secs(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// The signals held open from before this face started that no detector has seen yet
/// (`3 signals of open incidents unknown since this face started, until 12:31:05 UTC`): `None` when there are none. A
/// face that just started cannot call them cleared, nor calm.
pub fn unknown_since_start(snapshot: &crate::model::Snapshot) -> Option<String> {
    let held = &snapshot.unknown_since_start;
    let last = held.iter().map(|h| h.until).max()?;
    Some(format!(
        "{} of open incidents unknown since this face started, until {} (their detectors' `for` of fresh data)",
        if held.len() == 1 {
            "1 signal".to_string()
        } else {
            format!("{} signals", held.len())
        },
        last.format("%H:%M:%S UTC")
    ))
}

/// What `snapshot` cannot see at `now`, one line each (`sim-a unreachable 2m — its signals
/// unknown`): said wherever a pane would otherwise look calm.
pub fn blind_lines(snapshot: &crate::model::Snapshot, now: DateTime<Utc>) -> Vec<String> {
    snapshot
        .blind_spots(now, crate::model::blind::SILENT_AFTER)
        .iter()
        .map(|b| b.describe(now))
        .collect()
}

/// A count as `1.84M`, `312k`, `950`.
pub fn compact_count(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// A vector store's picture on one line: `1.84M vec +2.5k/min · 30% full · green`; `None`
/// before its first reading.
pub fn vector_summary(v: &crate::model::endpoint::VectorModel) -> Option<String> {
    let latest = v.latest.as_ref()?;
    let mut out = format!("{} vec", compact_count(latest.count as f64));
    if let Some(g) = v.growth_per_min {
        let sign = if g >= 0.0 { "+" } else { "-" };
        let _ = write!(out, " {sign}{}/min", compact_count(g.abs()));
    }
    if let Some(f) = latest.fullness {
        let _ = write!(out, " · {}% full", whole(f * 100.0));
    }
    if let Some(s) = latest.status {
        let _ = write!(out, " · {}", s.as_str());
    }
    Some(out)
}
