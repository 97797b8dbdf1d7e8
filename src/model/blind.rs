//! What the picture cannot see right now: a cluster whose API server is unreachable or whose
//! watches broke, a GPU source failing or gone silent, a cost source failing or stale. Every face
//! says these where it would otherwise show calm (a blind fleet is not a healthy one), and the
//! `source.down` detector raises them as signals, like Prometheus's `up == 0`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::gpu::GpuSourceKind;
use super::{Snapshot, SyncState};

/// How long a GPU source may go without a report before it counts as blind, where no
/// `[signals] source_silent_after` is at hand (the panes' default).
pub const SILENT_AFTER: Duration = Duration::from_secs(120);

/// Which source is blind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlindSource {
    /// A cluster's API server: every signal of that cluster is unknown.
    Cluster,
    /// A GPU source (DCGM exporter, NVML, Prometheus): GPU signals of its cluster are unknown.
    Gpu(GpuSourceKind),
    /// The cost source: budget and cost signals are unknown.
    Cost,
    /// One resource of a cluster that RBAC forbids watching (403): what it would show (e.g.
    /// StatefulSets' pods' owners) is unknown while the rest of the cluster is seen.
    Resource(String),
}

/// One source that cannot be seen, since when and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BlindSpot {
    pub source: BlindSource,
    /// The cluster it belongs to (empty for the cost source).
    pub cluster: String,
    /// The API server, the URL scraped, `local` for NVML, or the cost source's target.
    pub target: String,
    /// Since when it has not been seen (the last success, or the break).
    pub since: DateTime<Utc>,
    /// `unreachable`, `reconnecting`, `failing`, `silent` or `forbidden`.
    pub state: &'static str,
    pub error: String,
}

impl BlindSpot {
    /// What it is, for a line on a screen: `sim-a`, `dcgm sim-a`, `cost`.
    pub fn name(&self) -> String {
        match &self.source {
            BlindSource::Cluster => self.cluster.clone(),
            BlindSource::Gpu(kind) => format!("{} {}", gpu_kind_name(*kind), self.cluster),
            BlindSource::Cost => "cost".to_string(),
            BlindSource::Resource(r) => format!("{} {r}", self.cluster),
        }
    }

    /// The signals nobody can see while it is blind.
    pub fn unknown(&self) -> &'static str {
        match self.source {
            BlindSource::Cluster => "its signals unknown",
            BlindSource::Gpu(_) => "its GPU signals unknown",
            BlindSource::Cost => "cost signals unknown",
            BlindSource::Resource(_) => "what it shows unknown",
        }
    }

    /// How long it has been blind at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.since).to_std().unwrap_or_default()
    }

    /// `sim-a unreachable 2m — its signals unknown`.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        format!(
            "{} {} {} — {}",
            self.name(),
            self.state,
            compact(self.age(now)),
            self.unknown()
        )
    }
}

fn gpu_kind_name(kind: GpuSourceKind) -> &'static str {
    match kind {
        GpuSourceKind::Dcgm => "dcgm",
        GpuSourceKind::Nvml => "nvml",
        GpuSourceKind::Prometheus => "prometheus",
    }
}

/// `45s`, `2m`, `3h`: an age that fits a tile's title.
fn compact(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

impl Snapshot {
    /// Every source this picture cannot see at `now`, oldest blindness first. A GPU source that
    /// has not reported for `silent_after` is blind even without an error (its task hung).
    pub fn blind_spots(&self, now: DateTime<Utc>, silent_after: Duration) -> Vec<BlindSpot> {
        let mut out = Vec::new();
        for c in &self.clusters {
            let broken = c.sync.iter().filter_map(|r| match &r.state {
                SyncState::Unreachable { since, last_error } => {
                    Some(("unreachable", *since, last_error))
                }
                SyncState::Reconnecting { since, last_error } => {
                    Some(("reconnecting", *since, last_error))
                }
                _ => None,
            });
            // Unreachable outranks a broken watch; the earliest break dates it.
            let worst = broken.min_by_key(|(state, since, _)| (*state != "unreachable", *since));
            if let Some((state, since, error)) = worst {
                out.push(BlindSpot {
                    source: BlindSource::Cluster,
                    cluster: c.name.clone(),
                    target: c.server.clone(),
                    since,
                    state,
                    error: error.clone(),
                });
            }
            // A resource RBAC forbids: the cluster is seen, that resource never is.
            for r in &c.sync {
                if let SyncState::Forbidden { message } = &r.state {
                    out.push(BlindSpot {
                        source: BlindSource::Resource(r.resource.clone()),
                        cluster: c.name.clone(),
                        target: c.server.clone(),
                        since: r.changed_at,
                        state: "forbidden",
                        error: message.clone(),
                    });
                }
            }
        }
        let silent = chrono::Duration::from_std(silent_after).unwrap_or(chrono::Duration::MAX);
        for g in &self.gpu_sources {
            // NVML is on by default: a host that never had a driver has no GPUs to be blind to.
            if g.kind == GpuSourceKind::Nvml && g.last_success.is_none() {
                continue;
            }
            let since = g.last_success.unwrap_or(g.checked_at);
            let (state, error) = match &g.error {
                Some(e) => ("failing", e.clone()),
                None if now - g.checked_at > silent => (
                    "silent",
                    format!("no report since {}", g.checked_at.format("%H:%M:%S")),
                ),
                None => continue,
            };
            out.push(BlindSpot {
                source: BlindSource::Gpu(g.kind),
                cluster: g.cluster.clone(),
                target: g.target.clone(),
                since,
                state,
                error,
            });
        }
        if let Some(c) = &self.cost_source {
            let since = c.last_success.unwrap_or(c.checked_at);
            let blind = match &c.error {
                Some(e) => Some(("failing", e.clone())),
                None if c.is_stale(now) => Some((
                    "stale",
                    format!("no report since {}", since.format("%H:%M:%S")),
                )),
                None => None,
            };
            if let Some((state, error)) = blind {
                out.push(BlindSpot {
                    source: BlindSource::Cost,
                    cluster: String::new(),
                    target: c.target.clone(),
                    since,
                    state,
                    error,
                });
            }
        }
        out.sort_by_key(|b| b.since);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::model::gpu::GpuSourceStatus;
    use crate::model::{ClusterSnapshot, ResourceSync};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn cluster(name: &str, states: Vec<SyncState>) -> Arc<ClusterSnapshot> {
        Arc::new(ClusterSnapshot {
            name: name.into(),
            server: format!("http://127.0.0.1:1/{name}"),
            sync: states
                .into_iter()
                .enumerate()
                .map(|(i, state)| ResourceSync {
                    resource: format!("r{i}"),
                    state,
                    changed_at: t(0),
                })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn an_unreachable_cluster_and_a_failing_gpu_source_are_blind_spots_with_their_age() {
        let snap = Snapshot {
            clusters: vec![
                cluster(
                    "sim-a",
                    vec![
                        SyncState::Synced,
                        SyncState::Reconnecting {
                            since: t(30),
                            last_error: "eof".into(),
                        },
                        SyncState::Unreachable {
                            since: t(10),
                            last_error: "connection refused".into(),
                        },
                    ],
                ),
                cluster("sim-b", vec![SyncState::Synced]),
            ],
            gpu_sources: vec![
                GpuSourceStatus {
                    kind: GpuSourceKind::Dcgm,
                    cluster: "sim-b".into(),
                    target: "http://dcgm".into(),
                    error: None,
                    last_success: Some(t(120)),
                    checked_at: t(120),
                },
                GpuSourceStatus {
                    kind: GpuSourceKind::Dcgm,
                    cluster: "sim-a".into(),
                    target: "http://dcgm-a".into(),
                    error: Some("connection refused".into()),
                    last_success: Some(t(5)),
                    checked_at: t(100),
                },
            ],
            ..Snapshot::default()
        };
        let at = t(130);
        let spots = snap.blind_spots(at, Duration::from_secs(120));
        let lines: Vec<String> = spots.iter().map(|b| b.describe(at)).collect();
        assert_eq!(
            lines,
            [
                "dcgm sim-a failing 2m — its GPU signals unknown",
                "sim-a unreachable 2m — its signals unknown",
            ]
        );
        // NVML on a host without a driver (it never worked) is no blind spot.
        let mut no_driver = snap.clone();
        no_driver.gpu_sources.push(GpuSourceStatus {
            kind: GpuSourceKind::Nvml,
            cluster: "local".into(),
            target: "local".into(),
            error: Some("NVML unavailable: libnvidia-ml.so.1 not found".into()),
            last_success: None,
            checked_at: t(0),
        });
        assert_eq!(no_driver.blind_spots(at, Duration::from_secs(120)).len(), 2);
        // A source that stopped reporting altogether is blind too.
        let later = t(300);
        let spots = snap.blind_spots(later, Duration::from_secs(120));
        assert!(
            spots
                .iter()
                .any(|b| b.name() == "dcgm sim-b" && b.state == "silent"),
            "{spots:?}"
        );
    }
}
