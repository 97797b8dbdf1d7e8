//! Signal quality, shortened: the benchmark (`cargo bench --bench signal_quality`) watches
//! healthy fleets for ten minutes and every scenario with several seeds; this test watches one
//! healthy fleet for two minutes with the default `[signals]` (the first two minutes of
//! `fleetdeck demo`) and the faster scenarios with their patience scaled to a tenth, all at once.
//! Real `fleetdeck sim` processes over HTTP, the cockpit's sources and the one pipeline with a
//! store.

mod common;

use std::time::Duration;

use common::quality::{self, Outcome, Trial, Undo, fault};
use fleetdeck::config::Thresholds;
use fleetdeck::model::signal::Severity;

fn scaled() -> Thresholds {
    let mut t = Thresholds::default();
    t.scale_patience(0.1);
    t
}

fn sim_args() -> Vec<String> {
    ["--clusters", "2", "--nodes", "24", "--pods-per-node", "10"]
        .map(String::from)
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_fleet_is_quiet_and_each_fault_is_loud_once() {
    let mut trials = vec![Trial {
        fault: None,
        seed: 7,
        sim_args: sim_args(),
        thresholds: Thresholds::default(),
        watch: Duration::from_secs(120),
        linger: Duration::ZERO,
        clear_within: Duration::ZERO,
        within_scale: 1.0,
    }];
    for scenario in [
        "xid-storm",
        "node-notready",
        "spot-interruption",
        "crashloop-rollout",
        "endpoint-outage",
        "api-flaky",
        "training-stall",
        "training-straggler",
        "vector-index-stale",
        "airflow-failures",
        "spark-failed",
    ] {
        trials.push(Trial {
            fault: Some(fault(scenario)),
            seed: 11,
            sim_args: sim_args(),
            thresholds: scaled(),
            watch: Duration::from_secs(15),
            linger: Duration::from_secs(15),
            // A reclaimed spot node goes at its 2-minute deadline.
            clear_within: Duration::from_secs(150),
            // Sources poll at production intervals; only the patience is scaled.
            within_scale: 1.0,
        });
    }
    let handles: Vec<_> = trials
        .into_iter()
        .map(|t| tokio::spawn(quality::run(t)))
        .collect();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for h in handles {
        outcomes.push(h.await.expect("trial task"));
    }
    let mut failures = Vec::new();
    for o in &outcomes {
        if let Some(e) = &o.error {
            failures.push(format!("{}: the trial failed: {e}", o.name));
            continue;
        }
        let f = (o.name != "healthy").then(|| fault(&o.name));
        let critical = o.critical();
        let unexplained = o.unexplained(f);
        if f.is_none() {
            // Healthy: nothing but the designed faults opens an incident.
            if !critical.is_empty() || !unexplained.is_empty() || !o.incidents.is_empty() {
                failures.push(format!(
                    "healthy fleet raised {:?} (critical {critical:?}) and opened {:?}",
                    o.raised.keys().collect::<Vec<_>>(),
                    o.incidents
                ));
            }
            continue;
        }
        let Some(f) = f else { continue };
        let precision = o.precision(Some(f));
        if precision < 0.95 {
            failures.push(format!(
                "{}: precision {precision:.2}: raised {:?}, unexplained {unexplained:?}",
                o.name,
                o.raised
                    .iter()
                    .map(|(k, r)| (k, r.members.len(), r.worst))
                    .collect::<Vec<_>>()
            ));
        }
        if let Some(recall) = o.recall(f)
            && recall < 1.0
        {
            failures.push(format!(
                "{}: recall {recall:.2}: expected {:?}, raised {:?}",
                o.name,
                f.expected,
                o.raised.keys().collect::<Vec<_>>()
            ));
        }
        if f.scenario == "api-flaky" && o.raised.values().any(|r| r.worst == Severity::Critical) {
            failures.push(format!("api-flaky looks like an outage: {critical:?}"));
        }
        if !f.expected.is_empty() && o.fault_incidents(f) != 1 {
            failures.push(format!(
                "{}: {} incidents for one fault: {:?}",
                o.name,
                o.fault_incidents(f),
                o.incidents
            ));
        }
        if matches!(f.undo, Undo::Control | Undo::Rollback | Undo::Itself)
            && !f.expected.is_empty()
            && o.mitigated != Some(true)
        {
            failures.push(format!(
                "{}: undoing the fault did not mitigate its incident ({:?})",
                o.name, o.incidents
            ));
        }
    }
    for o in &outcomes {
        eprintln!(
            "{:<18} raised {:?} designed {:?} findings {:?} incidents {} first {:?} mitigated {:?} peak {}",
            o.name,
            o.raised
                .iter()
                .map(|(k, r)| format!("{k}×{}", r.members.len()))
                .collect::<Vec<_>>(),
            o.designed,
            o.findings,
            o.incidents.len(),
            o.first_expected,
            o.mitigated,
            o.peak
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
