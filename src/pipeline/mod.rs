//! detect → record → act: the one place where the fleet is evaluated for every face. For each
//! new `Arc<Snapshot>` from `state`, plus the signals of outside intakes (Alertmanager today),
//! it runs every detector (GPU, node, pod, endpoint, SLO, drift, cost and budget), records the
//! signal changes in the store, hands the evaluated snapshot to the runbook executor, and
//! publishes an [`Evaluated`]. The cockpit, headless and rehearsals are adapters over it, so they
//! see the same signals, incidents and runs for the same fleet. Imports signals, store, runbook,
//! model and config.
//!
//! A face records only what it can observe: it resumes (and may later clear) only the firing
//! signals of the store's open incidents that its own sources and intakes could raise, so a
//! cockpit opened on a store headless wrote never clears the daemon's alerts. Nothing is
//! recorded until the fleet picture is first complete (every cluster synced, every configured
//! source heard from) or a patience runs out: a half-synced fleet would "clear" every signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use crate::config::Thresholds;
use crate::model::catalog::{Reads, signal_kind};
use crate::model::incident::Origin;
use crate::model::signal::Signal;
use crate::model::{HeldSignal, Snapshot};
use crate::runbook::executor::Executor;
use crate::signals::Detectors;
use crate::store::{IncidentFilter, SignalRecorder, Store};

/// How often the fleet is evaluated again when nothing new arrives: detectors measure time
/// (a node NotReady for longer than a minute), so a quiet fleet still changes.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(2);
/// The least time between two evaluations: a face sees a change within this.
pub const MIN_EVALUATE_INTERVAL: Duration = Duration::from_millis(250);
/// An evaluation that took `t` is followed by at least `t × EVALUATION_SHARE` before the next
/// (2 % of a core at most: 16 ms over 40,000 GPUs → one evaluation every 800 ms).
const EVALUATION_SHARE: u32 = 50;
/// How long recording waits for a complete fleet picture before it starts anyway.
pub const WARM_UP_PATIENCE: Duration = Duration::from_secs(60);
/// Beyond its kind's `for`, how long a resumed signal waits to be seen again before its absence
/// counts: a few evaluations and a source's poll, so a fault that still fires is confirmed, not
/// cleared and re-opened.
pub const RESUME_MARGIN: Duration = Duration::from_secs(30);

/// One evaluation of the fleet, as every face shows it.
#[derive(Debug, Clone, Default)]
pub struct Evaluated {
    /// The snapshot with `signals` filled (detectors' and intakes'), most severe first.
    pub snapshot: Arc<Snapshot>,
    pub at: Option<DateTime<Utc>>,
    /// Bumped on every evaluation.
    pub seq: u64,
    /// Whether signal changes are being recorded (a store is open and the fleet picture was
    /// complete once).
    pub recording: bool,
    /// How many recordings reached the store so far: a face re-reads incidents when it moves.
    pub recorded: u64,
    /// The last recording's error, if it failed.
    pub store_error: Option<String>,
    /// Runs this evaluation started.
    pub started_runs: Vec<String>,
    /// Signals that started firing (or got more severe) and were recorded, by (kind,
    /// severity), since the pipeline started: the noise a face can count. Cumulative, so a
    /// face that skips an evaluation (latest wins) loses nothing.
    pub raised_total: std::collections::BTreeMap<(String, crate::model::signal::Severity), u64>,
    /// Incidents the recordings opened since the pipeline started.
    pub incidents_opened_total: u64,
}

impl Evaluated {
    pub fn signals(&self) -> &[Signal] {
        &self.snapshot.signals
    }
}

/// Signals from outside the fleet model: a webhook's alerts, firing until they resolve.
pub trait Intake: Send + Sync {
    /// The signals firing now.
    fn signals(&self) -> Vec<Signal>;
    /// The dedup-key prefix of every signal this intake raises (`alert:`).
    fn key_prefix(&self) -> &'static str;
}

/// The dedup-key prefixes of outside intakes: a face without that intake cannot observe them.
const INTAKE_PREFIXES: &[&str] = &["alert:"];

/// What the pipeline needs to know of the faces' configuration.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub thresholds: Thresholds,
    /// Signals of one group within this long of each other join one incident.
    pub incident_window: Duration,
    /// Which face records (tui, headless, cli).
    pub origin: Origin,
    /// GPU sources that will report (DCGM exporters, NVML, Prometheus): the picture is not
    /// complete until each has.
    pub gpu_sources: usize,
    /// Whether a cost source will report.
    pub cost_source: bool,
    /// How long recording waits for a complete picture before it starts anyway.
    pub warm_up_patience: Duration,
}

impl PipelineConfig {
    pub fn new(thresholds: Thresholds, origin: Origin) -> Self {
        Self {
            thresholds,
            incident_window: Duration::from_secs(3600),
            origin,
            gpu_sources: 0,
            cost_source: false,
            warm_up_patience: WARM_UP_PATIENCE,
        }
    }
}

/// The evaluation loop's state: detectors with their memory, the recorder, the executor.
pub struct Pipeline {
    cfg: PipelineConfig,
    detectors: Detectors,
    store: Option<Store>,
    executor: Option<Executor>,
    /// Runs start only while this is set (headless: the Lease's leader); `None`: always.
    acting: Option<Arc<AtomicBool>>,
    intakes: Vec<Arc<dyn Intake>>,
    /// `None` until the fleet picture is complete and the store's open incidents were read.
    recorder: Option<SignalRecorder>,
    started: std::time::Instant,
    seq: u64,
    recorded: u64,
    store_error: Option<String>,
    raised_total: std::collections::BTreeMap<(String, crate::model::signal::Severity), u64>,
    incidents_opened_total: u64,
    /// The store's outage as last probed, and whether it is back (the outage then lasts until
    /// its `store.down` is recorded).
    outage: Option<(crate::model::StoreDown, bool)>,
}

/// The dedup key `store.down` fires under (see `signals::sources`).
const STORE_DOWN_KEY: &str = "store.down:fleetdeck/store";

impl Pipeline {
    pub fn new(cfg: PipelineConfig) -> Self {
        Self {
            detectors: Detectors::new(cfg.thresholds.clone()),
            cfg,
            store: None,
            executor: None,
            acting: None,
            intakes: Vec::new(),
            recorder: None,
            started: std::time::Instant::now(),
            seq: 0,
            recorded: 0,
            store_error: None,
            raised_total: Default::default(),
            incidents_opened_total: 0,
            outage: None,
        }
    }

    /// Reads the store once: an outage starts at the first failure and ends once the store
    /// answers and the outage is recorded (see `evaluate`).
    async fn probe_store(&mut self, now: DateTime<Utc>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let place = store.path().display().to_string();
        let probe = tokio::task::spawn_blocking(move || store.len().map_err(|e| e.to_string()))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match (probe, &mut self.outage) {
            (Ok(_), Some((_, back))) => *back = true,
            (Ok(_), None) => {}
            (Err(error), Some((down, back))) => {
                *back = false;
                down.error = error;
            }
            (Err(error), None) => {
                tracing::error!(%error, store = %place, "the store cannot be reached: nothing acts until it is back");
                self.outage = Some((
                    crate::model::StoreDown {
                        since: now,
                        place,
                        error,
                    },
                    false,
                ));
            }
        }
    }

    /// Records signal changes in `store` (incidents, timeline, audit chain).
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Hands every evaluation to `executor`; runs start only while `acting` is set (or always
    /// when it is `None`).
    pub fn with_executor(mut self, executor: Executor, acting: Option<Arc<AtomicBool>>) -> Self {
        self.executor = Some(executor);
        self.with_acting(acting)
    }

    /// Whether this replica leads (`None`: it always does): on a shared store only the leader
    /// records, and only it starts runs.
    pub fn with_acting(mut self, acting: Option<Arc<AtomicBool>>) -> Self {
        self.acting = acting;
        self
    }

    pub fn with_intake(mut self, intake: Arc<dyn Intake>) -> Self {
        self.intakes.push(intake);
        self
    }

    /// The detectors' and intakes' signals for `snap` at `now`, most severe first; records
    /// nothing and starts nothing (one-shot commands use this).
    pub fn detect(&mut self, snap: &Snapshot, now: DateTime<Utc>) -> Vec<Signal> {
        let mut signals = self.detectors.evaluate(snap, now);
        if let Some(report) = &snap.cost {
            signals.extend(self.detectors.evaluate_cost(report, now));
        }
        for intake in &self.intakes {
            signals.extend(intake.signals());
        }
        signals.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.subject.cmp(&b.subject))
                // The detectors' own order is not stable (they keep state in maps): the kind
                // settles ties so that every face lists the same signals in the same order.
                .then_with(|| a.kind.cmp(&b.kind))
        });
        signals
    }

    /// The signals of `snap` at `now` with fresh detectors: for one-shot commands (`snapshot`,
    /// `cost`), which have no memory of earlier snapshots. With no history to hold a condition
    /// over, they report every condition that holds now: each kind's `for` is zero here.
    pub fn detect_once(
        thresholds: &Thresholds,
        snap: &Snapshot,
        now: DateTime<Utc>,
    ) -> Vec<Signal> {
        Self::new(PipelineConfig::new(
            thresholds.without_patience(),
            Origin::Cli,
        ))
        .detect(snap, now)
    }

    /// Whether this face could raise the signal with `key`, given what it watches: only those
    /// are resumed from the store, so only those can be cleared by it.
    fn observes(&self, key: &str, snap: &Snapshot) -> bool {
        if let Some(prefix) = INTAKE_PREFIXES.iter().find(|p| key.starts_with(**p)) {
            return self.intakes.iter().any(|i| i.key_prefix() == *prefix);
        }
        let kind = key.split(':').next().unwrap_or_default();
        // A kind no longer in the catalog (a store written by an older binary) was a cluster's.
        match signal_kind(kind).map_or(Reads::Clusters, |k| k.reads) {
            Reads::GpuSources => !snap.gpu_sources.is_empty(),
            Reads::Cost => snap.cost_source.is_some(),
            Reads::Endpoints => !snap.endpoints.is_empty(),
            Reads::OwnSources => true,
            Reads::Airflow => snap.airflow.is_some(),
            Reads::Clusters => !snap.clusters.is_empty(),
        }
    }

    /// Whether every configured source has been heard from at least once.
    fn complete(&self, snap: &Snapshot) -> bool {
        snap.clusters.iter().all(|c| c.synced())
            && snap.gpu_sources.len() >= self.cfg.gpu_sources
            && snap.endpoints.iter().all(|e| e.probe.is_some())
            && (!self.cfg.cost_source || snap.cost_source.is_some())
    }

    /// Whether this replica writes what it sees to the store. A store shared by replicas
    /// (PostgreSQL) has one writer, the Lease's leader: a follower's fired and cleared entries
    /// would repeat the leader's on the one timeline. A follower still detects and shows, and
    /// reads the leader's incidents from the store.
    fn records_here(&self) -> bool {
        let shared = self.store.as_ref().is_some_and(|s| s.is_shared());
        !shared
            || self
                .acting
                .as_ref()
                .is_none_or(|a| a.load(Ordering::SeqCst))
    }

    /// Starts recording once the picture is complete (or the patience ran out): reads the
    /// store's open incidents and resumes the signals this face observes. A resumed detector
    /// signal is unknown until its kind's [`resume_hold`](Thresholds::resume_hold) and
    /// [`RESUME_MARGIN`] have passed without it: only then does its absence clear it.
    async fn warm_up(&mut self, snap: &Snapshot, now: DateTime<Utc>) {
        if self.recorder.is_some()
            || !(self.complete(snap) || self.started.elapsed() >= self.cfg.warm_up_patience)
        {
            return;
        }
        let Some(store) = self.store.clone() else {
            self.recorder = Some(SignalRecorder::default());
            return;
        };
        let open = tokio::task::spawn_blocking(move || {
            store.incidents(&IncidentFilter {
                open_only: true,
                since: None,
            })
        })
        .await;
        match open {
            Ok(Ok(open)) => {
                let thresholds = &self.cfg.thresholds;
                let recorder = SignalRecorder::resume_holding(&open, |key| {
                    if !self.observes(key, snap) {
                        return None;
                    }
                    // An intake's alerts are as known as its book (a webhook resends them).
                    if INTAKE_PREFIXES.iter().any(|p| key.starts_with(p)) {
                        return Some(None);
                    }
                    let kind = key.split(':').next().unwrap_or_default();
                    let hold = thresholds.resume_hold(kind) + RESUME_MARGIN;
                    Some(Some(
                        now + chrono::Duration::from_std(hold).unwrap_or_default(),
                    ))
                });
                self.recorder = Some(recorder);
            }
            Ok(Err(e)) => self.store_error = Some(e.to_string()),
            Err(e) => self.store_error = Some(e.to_string()),
        }
    }

    /// Evaluates `snap` at `now`: detects, records the changes, hands the result to the
    /// executor (runs start after their signal is on the store, so what they do lands on the
    /// incident it opened).
    pub async fn evaluate(&mut self, snap: Arc<Snapshot>, now: DateTime<Utc>) -> Evaluated {
        self.seq += 1;
        self.probe_store(now).await;
        let mut snap = snap;
        if let Some((down, _)) = &self.outage {
            Arc::make_mut(&mut snap).store_down = Some(down.clone());
        }
        let signals = self.detect(&snap, now);
        {
            let s = Arc::make_mut(&mut snap);
            s.signals = signals;
            s.finding_kinds = self.cfg.thresholds.findings.clone();
        }
        if self.records_here() {
            self.warm_up(&snap, now).await;
        } else if self.recorder.take().is_some() {
            // Leadership lost: the next leader records from here; this replica resumes from
            // the store, as a restart does, if it leads again.
            tracing::info!("not the leader of a shared store: recording stops");
        }
        if let (Some(recorder), Some(store)) = (self.recorder.as_mut(), self.store.clone()) {
            // Findings are shown, not recorded: only the kinds that open incidents reach the
            // store (and so only they can be cleared there).
            let incident_signals: Vec<Signal> = snap.incident_signals().cloned().collect();
            let before = recorder.clone();
            let changes = recorder.observe(&incident_signals, now);
            let raised: Vec<_> = changes
                .fired
                .iter()
                .map(|s| (s.kind.clone(), s.severity))
                .collect();
            if !changes.is_empty() {
                let (origin, window) = (self.cfg.origin, self.cfg.incident_window);
                let written = tokio::task::spawn_blocking(move || {
                    store.record_signals(&changes.fired, &changes.cleared, origin, window, now)
                })
                .await;
                self.store_error = match written {
                    Ok(Ok(records)) => {
                        self.recorded += 1;
                        for key in raised {
                            *self.raised_total.entry(key).or_default() += 1;
                        }
                        self.incidents_opened_total +=
                            records.iter().filter(|r| r.opened).count() as u64;
                        None
                    }
                    Ok(Err(e)) => {
                        // Not recorded: the same changes are derived again next time, so an
                        // outage loses nothing that fired or cleared during it.
                        *recorder = before;
                        tracing::error!(error = %e, "cannot record signals");
                        Some(e.to_string())
                    }
                    Err(e) => {
                        *recorder = before;
                        Some(e.to_string())
                    }
                };
            }
        }
        // Back, and its outage on the timeline (or this face records nothing): over.
        if self.outage.as_ref().is_some_and(|(_, back)| *back)
            && self
                .recorder
                .as_ref()
                .is_none_or(|r| r.is_active(STORE_DOWN_KEY))
        {
            tracing::info!("the store is back: acting resumes");
            self.outage = None;
        }
        // What the store says is firing and no detector has seen since this face started is
        // unknown, and every face says so instead of looking calm.
        let mut unknown: Vec<HeldSignal> = self.recorder.as_ref().map_or_else(Vec::new, |r| {
            r.unconfirmed()
                .map(|(key, until)| HeldSignal {
                    key: key.to_string(),
                    until,
                })
                .collect()
        });
        unknown.sort_by(|a, b| a.key.cmp(&b.key));
        if unknown != snap.unknown_since_start {
            Arc::make_mut(&mut snap).unknown_since_start = unknown;
        }
        let mut started_runs = Vec::new();
        if let Some(executor) = &self.executor {
            let acting = self
                .acting
                .as_ref()
                .is_none_or(|a| a.load(Ordering::SeqCst));
            if acting && self.recorder.is_some() && self.outage.is_none() {
                started_runs = executor.observe(snap.clone());
            } else if !acting {
                executor.follow(snap.clone());
            } else {
                // Warming up, or the store is down: a run would act without its record.
                // Followers (and a face still warming up) keep the executor's picture fresh
                // for re-validation and previews, but start nothing.
                executor.observe_snapshot_only(snap.clone());
            }
        }
        Evaluated {
            snapshot: snap,
            at: Some(now),
            seq: self.seq,
            recording: self.store.is_some() && self.recorder.is_some(),
            recorded: self.recorded,
            store_error: self.store_error.clone(),
            started_runs,
            raised_total: self.raised_total.clone(),
            incidents_opened_total: self.incidents_opened_total,
        }
    }

    /// Runs the pipeline as a task: evaluates every new snapshot, every `wake` (an intake got
    /// something) and every [`EVALUATE_EVERY`], and publishes each evaluation (latest wins).
    /// Ends when `state` is gone.
    pub fn spawn(
        mut self,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        wake: Option<Arc<Notify>>,
    ) -> watch::Receiver<Arc<Evaluated>> {
        let (tx, rx) = watch::channel(Arc::new(Evaluated::default()));
        tokio::spawn(async move {
            let wake = wake.unwrap_or_default();
            let mut tick = tokio::time::interval(EVALUATE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let started = tokio::time::Instant::now();
                let snap = snapshots.borrow_and_update().clone();
                let evaluated = self.evaluate(snap, Utc::now()).await;
                if tx.send(Arc::new(evaluated)).is_err() {
                    break;
                }
                // Snapshots stream in while a big fleet churns (every 20 ms at most): changes
                // arriving meanwhile coalesce (the channel keeps the latest), so evaluating
                // costs at most 1/EVALUATION_SHARE of a core however busy the fleet is.
                let spent = started.elapsed();
                tokio::time::sleep_until(
                    started + (spent * EVALUATION_SHARE).max(MIN_EVALUATE_INTERVAL),
                )
                .await;
                tokio::select! {
                    changed = snapshots.changed() => if changed.is_err() { break },
                    _ = wake.notified() => {}
                    _ = tick.tick() => {}
                }
            }
        });
        rx
    }
}

pub mod wire;

#[cfg(test)]
mod tests;
