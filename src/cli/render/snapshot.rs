//! The human-readable form of a snapshot, for `fleetdeck snapshot --output table`: each
//! cluster's totals and sync state, then what needs attention.

use std::fmt::Write;

use crate::model::{NodeReadiness, RolloutState, Snapshot};

/// Names and messages come from the clusters and sources: shown through
/// `safe::visible_lines`, so that none can drive the terminal.
pub fn render(s: &Snapshot) -> String {
    super::safe::visible_lines(&render_unescaped(s)).into_owned()
}

fn render_unescaped(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<16} {:<8} {:>13} {:>9} {:>6} {:>15} {:>22} {:>13}",
        "CLUSTER",
        "SYNC",
        "NODES READY",
        "CORDONED",
        "SPOT",
        "GPUS REQ/ALLOC",
        "PODS RUN/PEND/FAIL",
        "CRASHLOOPING"
    );
    for c in &s.clusters {
        let t = &c.totals;
        let _ = writeln!(
            o,
            "{:<16} {:<8} {:>13} {:>9} {:>6} {:>15} {:>22} {:>13}",
            c.name,
            if c.synced() { "synced" } else { "partial" },
            format!("{}/{}", t.nodes_ready, t.nodes),
            t.nodes_cordoned,
            t.nodes_spot,
            format!("{}/{}", t.gpus_requested, t.gpus_allocatable),
            format!("{}/{}/{}", t.pods.running, t.pods.pending, t.pods.failed),
            c.crash_looping.len()
        );
    }
    if !s.endpoints.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<20} {:<10} {:>10} {:>10} {:>8} {:>9} {:<18}",
            "ENDPOINT", "HEALTH", "P50 MS", "P99 MS", "ERROR %", "REQ/S", "SLO BURN"
        );
        for e in &s.endpoints {
            let m = e.metrics.as_ref();
            let num = |v: Option<f64>, digits: usize| {
                v.map_or("-".to_string(), |x| format!("{x:.digits$}"))
            };
            let burn: Vec<String> = [&e.availability_burn, &e.latency_burn]
                .into_iter()
                .flatten()
                .filter_map(|b| {
                    b.severity()
                        .map(|sev| format!("{:?} {:?}", b.kind, sev).to_lowercase())
                })
                .collect();
            let _ = writeln!(
                o,
                "{:<20} {:<10} {:>10} {:>10} {:>8} {:>9} {:<18}",
                e.name,
                format!("{:?}", e.health).to_lowercase(),
                num(m.and_then(|m| m.latency_p50_ms), 0),
                num(m.and_then(|m| m.latency_p99_ms), 0),
                num(m.and_then(|m| m.error_rate).map(|r| r * 100.0), 1),
                num(m.and_then(|m| m.throughput_rps), 1),
                if burn.is_empty() {
                    "-".to_string()
                } else {
                    burn.join(", ")
                }
            );
        }
    }
    if !s.gpu_sources.is_empty() {
        let held = s.gpus.iter().filter(|g| g.holder.is_some()).count();
        let _ = writeln!(o, "\nGPUS: {} reported, {held} held by pods", s.gpus.len());
        for src in &s.gpu_sources {
            let _ = writeln!(o, "  {}", src.describe());
        }
    }
    if !s.signals.is_empty() {
        let _ = writeln!(o, "\nSIGNALS:");
        for sig in &s.signals {
            let _ = writeln!(
                o,
                "  {:<8} {:<30} {}",
                format!("{:?}", sig.severity).to_uppercase(),
                sig.kind,
                sig.summary
            );
        }
    }
    for c in &s.clusters {
        let mut lines: Vec<String> = Vec::new();
        for r in c
            .sync
            .iter()
            .filter(|r| r.state != crate::model::SyncState::Synced)
        {
            lines.push(format!("  {:<22} {}", r.resource, r.state.describe()));
        }
        for n in c
            .nodes
            .iter()
            .filter(|n| n.readiness != NodeReadiness::Ready || n.cordoned)
        {
            let state = match (n.readiness, n.cordoned) {
                (NodeReadiness::Ready, true) => "Ready,SchedulingDisabled".to_string(),
                (r, true) => format!("{r:?},SchedulingDisabled"),
                (r, false) => format!("{r:?}"),
            };
            lines.push(format!("  node {:<40} {}", n.name, state));
        }
        for p in &c.crash_looping {
            let last = p
                .last_termination
                .as_deref()
                .map(|l| format!(", last {l}"))
                .unwrap_or_default();
            lines.push(format!(
                "  pod {}/{} {} ({} restarts{last})",
                p.namespace, p.name, p.reason, p.restarts
            ));
        }
        for p in &c.pending {
            lines.push(format!(
                "  pod {}/{} Pending: {} {}",
                p.namespace, p.name, p.reason, p.message
            ));
        }
        for d in c
            .deployments
            .iter()
            .filter(|d| d.rollout != RolloutState::Complete)
        {
            lines.push(format!(
                "  deployment {}/{} rollout {:?} ({}/{} ready, revision {})",
                d.namespace,
                d.name,
                d.rollout,
                d.ready,
                d.replicas,
                d.revision.map_or("?".into(), |r| r.to_string())
            ));
        }
        for p in c.pdbs.iter().filter(|p| p.disruptions_allowed == 0) {
            lines.push(format!(
                "  pdb {}/{} allows no disruption ({}/{} healthy)",
                p.namespace, p.name, p.current_healthy, p.desired_healthy
            ));
        }
        if !lines.is_empty() {
            let _ = writeln!(o, "\n{}:", c.name);
            for l in lines {
                let _ = writeln!(o, "{l}");
            }
        }
    }
    o
}
