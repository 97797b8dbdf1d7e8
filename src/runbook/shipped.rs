//! The runbooks fleetdeck ships (`runbooks/` in the repository), built into the binary so a
//! fresh install has them; a directory named by `[runbooks] dir` or `--runbooks` replaces them.

use std::path::Path;

use super::engine::Runbook;
use super::meta::RunbookError;

pub const SHIPPED: [(&str, &str); 8] = [
    (
        "gpu-xid-cordon.rhai",
        include_str!("../../runbooks/gpu-xid-cordon.rhai"),
    ),
    (
        "node-notready.rhai",
        include_str!("../../runbooks/node-notready.rhai"),
    ),
    (
        "spot-interruption-rebalance.rhai",
        include_str!("../../runbooks/spot-interruption-rebalance.rhai"),
    ),
    (
        "endpoint-slo-rollback.rhai",
        include_str!("../../runbooks/endpoint-slo-rollback.rhai"),
    ),
    (
        "crashloop-after-rollout.rhai",
        include_str!("../../runbooks/crashloop-after-rollout.rhai"),
    ),
    (
        "idle-gpu-report.rhai",
        include_str!("../../runbooks/idle-gpu-report.rhai"),
    ),
    (
        "training-straggler-restart.rhai",
        include_str!("../../runbooks/training-straggler-restart.rhai"),
    ),
    (
        "airflow-retry.rhai",
        include_str!("../../runbooks/airflow-retry.rhai"),
    ),
];

/// The shipped runbooks, compiled (named `shipped:FILE` in errors).
pub fn load() -> (Vec<Runbook>, Vec<RunbookError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (file, source) in SHIPPED {
        match Runbook::from_source(Path::new(&format!("shipped:{file}")), source) {
            Ok(r) => good.push(r),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

/// Runbooks from the directory a person named, else the shipped ones; returns where they came
/// from. A named directory that is missing or holds no runbook is reported (as a problem, so
/// every face says it): it replaces the built-in runbooks, so nothing would run.
pub fn load_dir_or_shipped(dir: Option<&Path>) -> (Vec<Runbook>, Vec<RunbookError>, String) {
    let Some(dir) = dir else {
        let (good, bad) = load();
        return (good, bad, "the runbooks built into fleetdeck".into());
    };
    let (good, mut bad) = super::engine::load_dir(dir);
    if good.is_empty() && bad.is_empty() {
        bad.push(RunbookError::new(
            dir,
            0,
            0,
            "the runbook directory holds no *.rhai runbook, so no runbook will run; add some, or unset [runbooks] dir (and --runbooks) to use the built-in ones",
        ));
    }
    (good, bad, dir.display().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_runbook_compiles_with_its_metadata() {
        let (good, bad) = super::load();
        assert!(bad.is_empty(), "{bad:?}");
        let names: Vec<_> = good.iter().map(|r| r.meta.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gpu-xid-cordon",
                "node-notready",
                "spot-interruption-rebalance",
                "endpoint-slo-rollback",
                "crashloop-after-rollout",
                "idle-gpu-report",
                "training-straggler-restart",
                "airflow-retry"
            ]
        );
    }
}
