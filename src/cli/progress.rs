//! Progress on long waits (indicatif), on stderr and only when stderr is a terminal: scripts,
//! CI and `2>file` see nothing, and stdout (the report, the JSON) is never touched.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner with a message, or a hidden bar when stderr is not a terminal.
pub(super) fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over bytes, for reading files.
pub(super) fn bytes() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), target());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {wide_msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(8)
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// `n` with thousands separators, as the messages show counts.
pub(super) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line on how far a fleet is from synced: per cluster, the resources still listing
/// (with the objects listed so far) or failing; then endpoints, GPU and cost sources.
pub(super) fn sync_line(
    snap: &crate::model::Snapshot,
    gpu_sources: usize,
    cost_source: bool,
) -> String {
    use crate::model::SyncState;
    let mut parts = Vec::new();
    for c in &snap.clusters {
        if c.synced() {
            parts.push(format!("{} synced", c.name));
            continue;
        }
        let mut waiting: Vec<String> = Vec::new();
        for s in &c.sync {
            let what = match &s.state {
                SyncState::Listing { objects } => {
                    format!("{} {} listed", s.resource, count(*objects))
                }
                SyncState::Reconnecting { .. } => format!("{} reconnecting", s.resource),
                SyncState::Unreachable { .. } => "API server unreachable, retrying".to_string(),
                other if other.is_settled() => continue,
                _ => format!("{} waiting", s.resource),
            };
            if !waiting.contains(&what) {
                waiting.push(what);
            }
        }
        parts.push(if waiting.is_empty() {
            format!("{} connecting", c.name)
        } else {
            format!("{}: {}", c.name, waiting.join(", "))
        });
    }
    if !snap.endpoints.is_empty() {
        let probed = snap.endpoints.iter().filter(|e| e.probe.is_some()).count();
        parts.push(format!("endpoints {probed}/{}", snap.endpoints.len()));
    }
    if gpu_sources > 0 {
        parts.push(format!(
            "GPU sources {}/{gpu_sources}",
            snap.gpu_sources.len().min(gpu_sources)
        ));
    }
    if cost_source {
        parts.push(format!(
            "cost {}",
            if snap.cost_source.is_some() {
                "read"
            } else {
                "waiting"
            }
        ));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(150_001), "150,001");
    }
}
