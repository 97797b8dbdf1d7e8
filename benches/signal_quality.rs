//! Signal quality: how loud a healthy fleet is and how each fault is raised, with the default
//! `[signals]` (what `fleetdeck demo` and `headless` use), against real `fleetdeck sim`
//! processes, all at once.
//!
//! - healthy fleets at the default size (2 clusters, 40 nodes), seeds 1–3, watched for
//!   `SQ_MINUTES` (default 10) from their first evaluation;
//! - every scenario with seeds 1–2: the fleet settles for a minute, the scenario is injected,
//!   watched until its expected kinds fired and a minute more, undone (control DELETE, `kubectl
//!   rollout undo`, or by itself), and watched until its incidents are mitigated.
//!
//! Prints a Markdown table: scenario, expected kinds, raised kinds, precision (expected or
//! explained signals raised ÷ all raised), recall (expected kinds raised ÷ expected), incidents
//! per fault, time to first signal (p50 / max over seeds), mitigated on undo.
//!
//! `cargo bench --bench signal_quality` (env `SQ_MINUTES`, `SQ_SEEDS`, `SQ_SCENARIOS` shrink it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::quality::{self, FAULTS, Outcome, Trial};
use fleetdeck::config::Thresholds;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kinds(k: &[&str]) -> String {
    if k.is_empty() {
        "—".into()
    } else {
        k.join(", ")
    }
}

fn p50_max(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.sort();
    format!(
        "{} / {}",
        quality::secs(v[(v.len() - 1) / 2]),
        quality::secs(v[v.len() - 1])
    )
}

fn main() {
    let minutes = env_u64("SQ_MINUTES", 10);
    let seeds = env_u64("SQ_SEEDS", 2).max(1);
    let only: Option<Vec<String>> = std::env::var("SQ_SCENARIOS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let default_size = ["--clusters", "2", "--nodes", "40"].map(String::from).to_vec();
    let mut trials = Vec::new();
    for seed in 1..=seeds + 1 {
        trials.push(Trial {
            fault: None,
            seed,
            sim_args: default_size.clone(),
            thresholds: Thresholds::default(),
            watch: Duration::from_secs(60 * minutes),
            linger: Duration::ZERO,
            clear_within: Duration::ZERO,
            within_scale: 1.0,
        });
    }
    for f in FAULTS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|s| s == f.scenario)) {
            continue;
        }
        for seed in 1..=seeds {
            trials.push(Trial {
                fault: Some(f),
                seed,
                sim_args: default_size.clone(),
                thresholds: Thresholds::default(),
                watch: Duration::from_secs(60),
                linger: Duration::from_secs(60),
                clear_within: Duration::from_secs(420),
                within_scale: 1.0,
            });
        }
    }
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let handles: Vec<_> = trials
            .into_iter()
            .map(|t| tokio::spawn(quality::run(t)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            if let Ok(o) = h.await {
                out.push(o);
            }
        }
        out
    });
    println!(
        "signal quality: {} trials in {:.0} s; healthy watched {minutes} min; scenarios {seeds} seed(s); default [signals]\n",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "| scenario | expected kinds | raised kinds | precision | recall | incidents per fault | time to first signal p50 / max | mitigated on undo |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let names: Vec<&str> = std::iter::once("healthy")
        .chain(FAULTS.iter().map(|f| f.scenario))
        .collect();
    for name in names {
        let runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.name == name).collect();
        if runs.is_empty() {
            continue;
        }
        let fault = FAULTS.iter().find(|f| f.scenario == name);
        let errors: Vec<String> = runs
            .iter()
            .filter_map(|o| o.error.as_ref().map(|e| format!("seed {}: {e}", o.seed)))
            .collect();
        let ok: Vec<&&Outcome> = runs.iter().filter(|o| o.error.is_none()).collect();
        let raised: BTreeSet<String> = ok
            .iter()
            .flat_map(|o| {
                o.raised.iter().map(|(k, r)| {
                    format!("{k} ({} {})", r.members.len(), r.worst.name())
                })
            })
            .collect();
        let precision = ok
            .iter()
            .map(|o| o.precision(fault))
            .fold(f64::INFINITY, f64::min);
        let recall = fault.map_or("—".to_string(), |f| {
            ok.iter()
                .filter_map(|o| o.recall(f))
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))
                .map_or("—".into(), |r| format!("{r:.2}"))
        });
        let incidents = match fault {
            Some(f) if !f.expected.is_empty() => {
                let per: BTreeSet<u64> = ok.iter().map(|o| o.fault_incidents(f)).collect();
                per.iter().map(u64::to_string).collect::<Vec<_>>().join("–")
            }
            Some(_) => "—".into(),
            None => {
                let max = ok.iter().map(|o| o.incidents.len()).max().unwrap_or(0);
                format!("{max} opened (designed faults apart)")
            }
        };
        let first = p50_max(ok.iter().filter_map(|o| o.first_expected).collect());
        let mitigated: BTreeSet<String> = ok
            .iter()
            .map(|o| match o.mitigated {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "—".into(),
            })
            .collect();
        let designed: BTreeSet<&String> = ok.iter().flat_map(|o| o.designed.iter()).collect();
        let findings: BTreeSet<String> = ok
            .iter()
            .flat_map(|o| o.findings.iter().map(|(k, n)| format!("{k} ({n})")))
            .collect();
        println!(
            "| {name} | {} | {}{} | {} | {recall} | {incidents} | {first} | {} |",
            fault.map_or_else(
                || format!("designed: {}", designed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                |f| kinds(f.expected)
            ),
            if raised.is_empty() {
                "none".to_string()
            } else {
                raised.into_iter().collect::<Vec<_>>().join(", ")
            },
            if findings.is_empty() {
                String::new()
            } else {
                format!("; findings: {}", findings.into_iter().collect::<Vec<_>>().join(", "))
            },
            if precision.is_finite() {
                format!("{precision:.2}")
            } else {
                "—".into()
            },
            mitigated.into_iter().collect::<Vec<_>>().join("/"),
        );
        for e in errors {
            println!("|  ↳ error | {e} | | | | | | |");
        }
    }
    let peak = outcomes
        .iter()
        .filter(|o| o.name == "healthy")
        .map(|o| o.peak)
        .max()
        .unwrap_or(0);
    println!("\nhealthy: at most {peak} incident signals at once (designed faults included)");
    rt.shutdown_timeout(Duration::from_secs(2));
}
