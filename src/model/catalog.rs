//! The signal catalog: every kind the detectors raise, declared once — its family and grouping
//! (read by `store`), its default `for` and `clear_after` and whether it is a finding (read by
//! `config`), the sim scenario that exercises it, and the words of the README's detector table.
//! Plain data, so every module may read it; imports nothing of the crate.

use std::time::Duration;

/// How signals of one kind join an incident (Alertmanager's `group_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Pool-wide: the nodes of one node pool are one incident (a zone or a spot pool going).
    NodePool,
    /// A GPU hardware fault is its node's: the node is what gets cordoned and drained.
    Node,
    /// The signal's own target: a pod's owner, a Deployment, an endpoint, a node, a source.
    Target,
}

/// Where a kind's `for` is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForKey {
    /// `[signals.for] <kind with _ for .>`.
    Table,
    /// `[signals] node_not_ready_after`: measured from the node's Ready transition.
    NodeNotReadyAfter,
    /// `[signals] pending_gpu_after`: measured from when the pod began pending.
    PendingGpuAfter,
}

/// What shows a kind firing end to end against `fleetdeck sim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exercise {
    /// A scenario of `fleetdeck sim` (`[sim] scenarios`) raises it.
    Scenario(&'static str),
    /// No scenario injects it; why, and what covers it instead.
    Without(&'static str),
}

/// The part of the fleet a kind's detector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The Kubernetes clusters (nodes, pods, workloads).
    Clusters,
    /// A GPU source (DCGM, NVML, Prometheus).
    GpuSources,
    /// The configured model-serving endpoints.
    Endpoints,
    /// The cost source's report.
    Cost,
    /// The face's own sources' health: every face watches its own.
    OwnSources,
    /// The Airflow webserver (`[airflow]`).
    Airflow,
}

/// One signal kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalKindSpec {
    pub name: &'static str,
    /// What its detector reads: a face that does not watch it cannot raise (or clear) it.
    pub reads: Reads,
    /// Kinds of one family on one target are one incident (XID and ECC are one GPU fault; an
    /// endpoint's signals and its serving Deployment's are one outage).
    pub family: &'static str,
    pub grouping: Grouping,
    /// What its severities mean (the README's second column).
    pub severity: &'static str,
    pub default_for: Duration,
    pub for_key: ForKey,
    /// The README's `for` column.
    pub for_words: &'static str,
    pub default_clear_after: Duration,
    /// The README's last column: the clear rule and its `clear_after`.
    pub clears_when: &'static str,
    /// A finding unless `[signals] findings` says otherwise: shown, never an incident.
    pub finding_by_default: bool,
    pub exercise: Exercise,
    /// One line for `--help` and the README.
    pub description: &'static str,
}

impl SignalKindSpec {
    /// The key of this kind in `[signals.for]` and `[signals.clear_after]`: `gpu.xid` → `gpu_xid`.
    pub fn config_key(&self) -> String {
        self.name.replace('.', "_")
    }
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

const ZERO: Duration = Duration::ZERO;

/// Every kind the detectors raise, in the README's order. Alerts from an intake are
/// `alert.<name>` and are not in the catalog.
pub const SIGNAL_CATALOG: &[SignalKindSpec] = &[
    SignalKindSpec {
        name: "gpu.xid",
        reads: Reads::GpuSources,
        family: "gpu.fault",
        grouping: Grouping::Node,
        severity: "from NVIDIA's XID table: critical for 48, 62, 64, 74, 79, 95, 119, 120 (the GPU or its data is lost until a drain and reset), warning for application-level codes, info for 45",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0 (a hardware event is a fact)",
        default_clear_after: ZERO,
        clears_when: "no XID reported, 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("xid-storm"),
        description: "a GPU reported an XID error",
    },
    SignalKindSpec {
        name: "gpu.ecc",
        reads: Reads::GpuSources,
        family: "gpu.fault",
        grouping: Grouping::Node,
        severity: "critical: double-bit errors or failed row remapping corrupt data now",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0",
        default_clear_after: ZERO,
        clears_when: "no DBE, no uncorrectable rows, no remap failure; 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("xid-storm"),
        description: "a GPU has uncorrectable memory errors or failed row remapping",
    },
    SignalKindSpec {
        name: "gpu.throttling",
        reads: Reads::GpuSources,
        family: "gpu.throttling",
        grouping: Grouping::Node,
        severity: "warning: slower jobs, no loss yet",
        default_for: minutes(2),
        for_key: ForKey::Table,
        for_words: "2m",
        default_clear_after: minutes(2),
        clears_when: "no slowdown reason and below `gpu_hot_c` − `gpu_hot_clear_margin_c` (87 − 5 °C); 2m",
        finding_by_default: false,
        exercise: Exercise::Without(
            "only `training-straggler` heats GPUs (its slow rank's, as that rank's cause: it is explained there); the signals unit tests drive its thresholds and hysteresis",
        ),
        description: "a GPU is hot or slowed down by its clocks' throttle reasons",
    },
    SignalKindSpec {
        name: "gpu.memory_exhaustion_forecast",
        reads: Reads::GpuSources,
        family: "gpu.memory_exhaustion_forecast",
        grouping: Grouping::Target,
        severity: "warning if full within `gpu_memory_full_within` (30m), critical within `gpu_memory_full_critical_within` (5m): an OOM kills the job",
        default_for: minutes(5),
        for_key: ForKey::Table,
        for_words: "5m",
        default_clear_after: minutes(5),
        clears_when: "the rule below no longer holds; 5m",
        finding_by_default: false,
        exercise: Exercise::Scenario("gpu-memory-leak"),
        description: "a GPU's memory use, fitted over a window, reaches full soon",
    },
    SignalKindSpec {
        name: "gpu.idle",
        reads: Reads::GpuSources,
        family: "gpu.idle",
        grouping: Grouping::Target,
        severity: "info: money, not an outage",
        default_for: minutes(10),
        for_key: ForKey::Table,
        for_words: "10m",
        default_clear_after: minutes(1),
        clears_when: "utilisation above `idle_gpu_pct` + `idle_clear_margin_pct` (5 + 5 %) or no holder; 1m",
        finding_by_default: true,
        exercise: Exercise::Without(
            "the healthy sim fleet's designed idlers (about 10 % of GPU pods, `fleetdeck.dev/sim-idle`)",
        ),
        description: "a GPU held by a pod does no work",
    },
    SignalKindSpec {
        name: "training.stalled",
        reads: Reads::GpuSources,
        family: "training",
        grouping: Grouping::Target,
        severity: "critical: the gang holds all its GPUs and makes no progress",
        default_for: minutes(10),
        for_key: ForKey::Table,
        for_words: "10m",
        default_clear_after: minutes(1),
        clears_when: "a GPU of the gang above 5 %, a rank not Running/Ready (restarting, finished) or the job checkpointing; 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("training-stall"),
        description: "every GPU of a running training gang (Kubeflow `training.kubeflow.org/job-name`) is under 5 % utilisation; not while a rank starts, the job is checkpointing (`fleetdeck.dev/checkpointing`) or finished",
    },
    SignalKindSpec {
        name: "training.straggler",
        reads: Reads::GpuSources,
        family: "training",
        grouping: Grouping::Target,
        severity: "warning: the whole gang runs at the slowest rank's pace",
        default_for: minutes(10),
        for_key: ForKey::Table,
        for_words: "10m",
        default_clear_after: minutes(1),
        clears_when: "every rank at or above half the gang's median utilisation (or the gang not running); 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("training-straggler"),
        description: "one rank's GPUs of a running training gang average under half the gang's median utilisation (each GPU the mean of its last 4 readings within 2 minutes; the median at least 20 %), naming the rank, its node and any XID/ECC/thermal fault there",
    },
    SignalKindSpec {
        name: "node.not_ready",
        reads: Reads::Clusters,
        family: "node.not_ready",
        grouping: Grouping::NodePool,
        severity: "critical: the node's pods and GPUs are lost",
        default_for: minutes(1),
        for_key: ForKey::NodeNotReadyAfter,
        for_words: "`node_not_ready_after` (1m, from the node's transition)",
        default_clear_after: minutes(1),
        clears_when: "Ready; 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("node-notready"),
        description: "a node stopped being Ready",
    },
    SignalKindSpec {
        name: "node.interruption_notice",
        reads: Reads::Clusters,
        family: "node.interruption_notice",
        grouping: Grouping::NodePool,
        severity: "critical: the instance goes at the deadline",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0",
        default_clear_after: ZERO,
        clears_when: "taint gone; 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("spot-interruption"),
        description: "a spot node got its interruption notice",
    },
    SignalKindSpec {
        name: "node.gpu_unallocatable",
        reads: Reads::Clusters,
        family: "gpu.fault",
        grouping: Grouping::Node,
        severity: "warning: the node is Ready but offers fewer GPUs than it has (the device plugin withdrew unhealthy ones); its XID or ECC signal, one incident with it, says why",
        default_for: minutes(5),
        for_key: ForKey::Table,
        for_words: "5m (a restarting device plugin withdraws its GPUs for a moment)",
        default_clear_after: minutes(1),
        clears_when: "allocatable back to capacity, or the node not Ready (`node.not_ready` then); 1m",
        finding_by_default: false,
        exercise: Exercise::Without(
            "no sim scenario withdraws a GPU from a node's allocatable; its unit tests in src/signals/gpu_capacity.rs drive it",
        ),
        description: "a Ready node offers fewer GPUs than its capacity",
    },
    SignalKindSpec {
        name: "pod.pending_gpu",
        reads: Reads::Clusters,
        family: "pod.pending_gpu",
        grouping: Grouping::Target,
        severity: "warning: work waits, nothing is lost",
        default_for: minutes(5),
        for_key: ForKey::PendingGpuAfter,
        for_words: "`pending_gpu_after` (5m, from when it began pending)",
        default_clear_after: ZERO,
        clears_when: "scheduled; 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("node-notready"),
        description: "a pod asking for GPUs waits to be scheduled",
    },
    SignalKindSpec {
        name: "pod.crash_loop",
        reads: Reads::Clusters,
        family: "pod.crash_loop",
        grouping: Grouping::Target,
        severity: "warning: one workload is down",
        default_for: minutes(2),
        for_key: ForKey::Table,
        for_words: "2m",
        default_clear_after: minutes(5),
        clears_when: "not crash-looping; 5m (a crash loop runs between back-offs)",
        finding_by_default: false,
        exercise: Exercise::Without(
            "the healthy sim fleet's designed fault: the `tokenizer-worker-*` pods crash-loop",
        ),
        description: "a pod's container is in CrashLoopBackOff",
    },
    SignalKindSpec {
        name: "pod.crash_loop_after_rollout",
        reads: Reads::Clusters,
        family: "serving",
        grouping: Grouping::Target,
        severity: "critical: a rollout is taking the service down; roll back",
        default_for: minutes(1),
        for_key: ForKey::Table,
        for_words: "1m",
        default_clear_after: minutes(5),
        clears_when: "not crash-looping; 5m",
        finding_by_default: false,
        exercise: Exercise::Scenario("crashloop-rollout"),
        description: "a Deployment's pods crash-loop since its latest rollout",
    },
    SignalKindSpec {
        name: "endpoint.down",
        reads: Reads::Endpoints,
        family: "serving",
        grouping: Grouping::Target,
        severity: "critical: requests fail",
        default_for: minutes(1),
        for_key: ForKey::Table,
        for_words: "1m",
        default_clear_after: minutes(1),
        clears_when: "healthy; 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("endpoint-outage"),
        description: "a model endpoint's probe fails",
    },
    SignalKindSpec {
        name: "slo.fast_burn",
        reads: Reads::Endpoints,
        family: "serving",
        grouping: Grouping::Target,
        severity: "critical: the error budget goes within days (14.4×/6× over 1h+5m / 6h+30m)",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0 (the windows are the patience; a rule waits until the endpoint's history covers its short window: 5m, 30m)",
        default_clear_after: ZERO,
        clears_when: "the burn rule no longer fires; 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("bad-rollout"),
        description: "an endpoint burns its error budget fast (a page)",
    },
    SignalKindSpec {
        name: "slo.slow_burn",
        reads: Reads::Endpoints,
        family: "serving",
        grouping: Grouping::Target,
        severity: "warning: a ticket (3×/1× over 1d+2h / 3d+6h)",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0 (as above: 2h, 6h of history first, so a few unlucky errors in a young history are not a ticket)",
        default_clear_after: ZERO,
        clears_when: "as above; 0",
        finding_by_default: false,
        exercise: Exercise::Scenario("endpoint-outage"),
        description: "an endpoint burns its error budget slowly (a ticket)",
    },
    SignalKindSpec {
        name: "source.down",
        reads: Reads::OwnSources,
        family: "source.down",
        grouping: Grouping::Target,
        severity: "critical for a cluster whose API server is unreachable or whose watches broke (every signal of it is unknown), warning for a GPU source (DCGM, NVML, Prometheus) failing or silent for `source_silent_after` (2m) and for a failing or stale cost source: blind is not calm, like Prometheus's `up == 0`",
        default_for: minutes(1),
        for_key: ForKey::Table,
        for_words: "1m (from the break)",
        default_clear_after: ZERO,
        clears_when: "seen again; 0",
        finding_by_default: false,
        exercise: Exercise::Without(
            "a source taken away (tests/one_picture.rs and tests/kube_source.rs stop the sim's API or exporter); no `[sim] scenarios` entry stops a whole source",
        ),
        description: "a source (a cluster's API, DCGM, NVML, Prometheus, cost) is unreachable or silent",
    },
    SignalKindSpec {
        name: "store.down",
        reads: Reads::OwnSources,
        family: "store.down",
        grouping: Grouping::Target,
        severity: "critical: the RCA store (PostgreSQL) cannot be read or written, so nothing is acted on (no mutation without its record) until it is back; recorded once it is",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0 (from the first failed read)",
        default_clear_after: ZERO,
        clears_when: "the store answers again and the outage is recorded; 0",
        finding_by_default: false,
        exercise: Exercise::Without(
            "the store taken away (tests/store_outage.rs stops PostgreSQL for 30 s); no `[sim] scenarios` entry stops the store",
        ),
        description: "the store (the incidents, the audit chain, the runs' memory) cannot be reached or written",
    },
    SignalKindSpec {
        name: "endpoint.drift",
        reads: Reads::Endpoints,
        family: "endpoint.drift",
        grouping: Grouping::Target,
        severity: "critical for significant PSI (> 0.25), warning for moderate",
        default_for: minutes(5),
        for_key: ForKey::Table,
        for_words: "5m",
        default_clear_after: minutes(5),
        clears_when: "PSI band none; 5m",
        finding_by_default: true,
        exercise: Exercise::Scenario("bad-rollout"),
        description: "an endpoint's output distribution drifted from its reference (PSI)",
    },
    SignalKindSpec {
        name: "budget.overrun_forecast",
        reads: Reads::Cost,
        family: "budget.overrun_forecast",
        grouping: Grouping::Target,
        severity: "critical when the month's spend already passed the budget, else warning",
        default_for: ZERO,
        for_key: ForKey::Table,
        for_words: "0 (before 12 hours of the month the forecast is the month-to-date: `insufficient data`)",
        default_clear_after: ZERO,
        clears_when: "forecast within the budget; 0",
        finding_by_default: true,
        exercise: Exercise::Without(
            "a budget below the sim fleet's spend in `[cost] monthly_budget`; the signals unit tests drive the forecast",
        ),
        description: "the month's spend is forecast to pass `[cost] monthly_budget`",
    },
    SignalKindSpec {
        name: "vector.index_stale",
        reads: Reads::Endpoints,
        family: "vector",
        grouping: Grouping::Target,
        severity: "warning: retrieval answers from documents that stopped arriving; nothing fails",
        default_for: minutes(30),
        for_key: ForKey::Table,
        for_words: "30m (from the count's last growth, or the ingestion's start if later)",
        default_clear_after: minutes(2),
        clears_when: "the vector count grows again, or the ingestion no longer reports fine; 2m",
        finding_by_default: false,
        exercise: Exercise::Scenario("vector-index-stale"),
        description: "a vector store's (`pinecone`, `qdrant` endpoint) vector count has not grown while its configured ingestion (`ingestion.job`: a Job Running or Complete) reports fine",
    },
    SignalKindSpec {
        name: "pipeline.dag_failing",
        reads: Reads::Airflow,
        family: "pipeline.dag_failing",
        grouping: Grouping::Target,
        severity: "warning: the data a model trains or serves on goes stale",
        default_for: minutes(1),
        for_key: ForKey::Table,
        for_words: "1m (on top of the failed runs themselves)",
        default_clear_after: minutes(1),
        clears_when: "the DAG's newest finished run succeeded (e.g. cleared with `airflow_clear`), no run past its SLA, or the DAG paused; 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("airflow-failures"),
        description: "an Airflow DAG that is not paused: its newest `[airflow] failed_runs` (2) finished runs all failed, or its running run is past its `[airflow] sla`; one incident per DAG, naming the failed run and task",
    },
    SignalKindSpec {
        name: "pipeline.spark_failed",
        reads: Reads::Clusters,
        family: "pipeline.spark_failed",
        grouping: Grouping::Target,
        severity: "warning: a Spark pipeline's run failed; what it writes is stale until it runs again",
        default_for: minutes(1),
        for_key: ForKey::Table,
        for_words: "1m",
        default_clear_after: minutes(1),
        clears_when: "a newer run of the application RUNNING or COMPLETED (the operator's retry, a resubmission, the next scheduled run), or the application deleted; 1m",
        finding_by_default: false,
        exercise: Exercise::Scenario("spark-failed"),
        description: "a Spark operator `SparkApplication` (`sparkoperator.k8s.io/v1beta2`) is FAILED or SUBMISSION_FAILED and no newer run of it (the runs of one `ScheduledSparkApplication` are one application) is RUNNING or COMPLETED; one incident per application, naming its errorMessage and driver pod",
    },
];

/// The catalog entry of `kind`; `None` for a kind no detector raises (an intake's `alert.*`).
pub fn signal_kind(kind: &str) -> Option<&'static SignalKindSpec> {
    SIGNAL_CATALOG.iter().find(|k| k.name == kind)
}

/// The README's detector table, rendered from the catalog.
pub fn detector_table() -> String {
    let mut out = String::from(
        "| kind | severity, and why | `for` | clears when … for `clear_after` |\n|---|---|---|---|\n",
    );
    for k in SIGNAL_CATALOG {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name, k.severity, k.for_words, k.clears_when
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_declared_once() {
        let mut names: Vec<_> = SIGNAL_CATALOG.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a kind is declared twice");
    }

    /// README.md's detector table is rendered from the catalog. When it differs, the test
    /// prints the table to paste; `FLEETDECK_UPDATE_README=1` writes it into README.md instead.
    #[test]
    fn the_readme_detector_table_is_the_catalogs() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md is readable");
        let expected = detector_table();
        if readme.contains(&expected) {
            return;
        }
        let header = expected.lines().next().unwrap_or_default();
        if std::env::var_os("FLEETDECK_UPDATE_README").is_some()
            && let Some(start) = readme.find(header)
        {
            // The table runs from its header to the first blank line after it.
            let end = readme[start..]
                .find("\n\n")
                .map_or(readme.len(), |n| start + n + 1);
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).expect("README.md is writable");
            return;
        }
        panic!(
            "README.md's table under \"### The detectors\" differs from the catalog \
             (src/model/catalog.rs); replace it with the table below, or run the test with \
             FLEETDECK_UPDATE_README=1:\n\n{expected}"
        );
    }

    #[test]
    fn a_config_key_is_the_kind_with_underscores() {
        assert_eq!(
            signal_kind("gpu.memory_exhaustion_forecast").map(SignalKindSpec::config_key),
            Some("gpu_memory_exhaustion_forecast".to_string())
        );
        assert_eq!(signal_kind("alert.HighLatency"), None);
    }
}
