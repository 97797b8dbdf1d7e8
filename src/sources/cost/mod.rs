//! Cost sources: the OpenCost `/allocation` API and FOCUS 1.0–1.2 CSV exports, read into
//! [`CostLine`]s and folded into a [`CostReport`] by `model::cost`. FOCUS files are streamed
//! record by record; a row that cannot be read is reported with `file:line` and counted, never
//! dropped. Imports model.
//!
//! GPU-hours from FOCUS rows (the rule): a row names a GPU when one of ResourceType, SkuId,
//! SkuMeter, SkuPriceDetails, x_UsageType, x_SkuDescription, x_InstanceType, x_SkuMeterName or
//! ChargeDescription (the first that matches, in that order) holds a known GPU instance type
//! (`p5.48xlarge`, `a3-highgpu-8g`, `Standard_NC24ads_A100_v4`, …), a GPU family (`H100`,
//! `A100`, `L4`, …) or the word `GPU`.
//! Its quantity is ConsumedQuantity/ConsumedUnit, else PricingQuantity/PricingUnit, when the
//! unit is time (hours, minutes, seconds, with an optional multiplier such as `100 Hours`).
//! The quantity is GPU-hours when the unit names GPUs (`GPU-Hours`) or the row names a GPU
//! family rather than an instance type (one SKU per GPU, as GCP bills them); for a GPU instance
//! type it is instance-hours times the type's GPU count. Only `Usage` charges (or rows with no
//! ChargeCategory) carry GPU-hours; every row that names a GPU counts its effective cost as GPU
//! cost. A GPU row without a time quantity adds cost but no hours, and is shown apart.

use std::path::PathBuf;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::model::Snapshot;
use crate::model::cost::{
    CostGroupBy, CostReport, CostReportBuilder, CostSourceKind, CostSourceStatus, CostUpdate,
    DEFAULT_IDLE_GPU_THRESHOLD_PCT, DateFormat, GpuUtilisation, NodeCostInfo, ReportSettings,
    ReportWindow,
};

mod focus;
mod opencost;

pub use focus::{
    FocusFile, FocusReader, FocusRecord, REQUIRED_FOCUS_COLUMNS, gpu_instance_type, read_focus,
    read_focus_file, read_focus_with_progress,
};
pub use opencost::{
    AllocationContext, AllocationRequest, AllocationSet, OpenCostClient, allocation_line,
    opencost_aggregate, parse_allocation_response,
};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error(
        "nothing to report on: give FOCUS files (--focus FILE) or an OpenCost URL (--opencost URL)"
    )]
    NoSources,
    #[error("invalid window {value:?}: {reason}")]
    InvalidWindow { value: String, reason: String },
    #[error("cannot open FOCUS file {path}: {source}")]
    FocusOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read the header row: {source}")]
    FocusHeader {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{path}: missing required FOCUS column(s) {columns} (the header has: {found}); \
         is this a FOCUS 1.0–1.2 export?"
    )]
    MissingColumns {
        path: String,
        columns: String,
        found: String,
    },
    #[error("{path}: reading stopped after line {line}: {source}")]
    FocusRead {
        path: String,
        line: u64,
        #[source]
        source: csv::Error,
    },
    #[error("invalid OpenCost URL {url:?}: {reason}")]
    OpenCostUrl { url: String, reason: String },
    #[error("OpenCost at {url}: request failed: {source}")]
    OpenCostRequest {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("OpenCost at {url} answered HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    OpenCostRejected {
        url: String,
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("OpenCost at {url}: the answer is not an allocation response: {reason}")]
    OpenCostBody { url: String, reason: String },
    #[error("the FOCUS reader task failed: {0}")]
    Task(String),
    #[error(
        "{path}:{line}: {column} {value:?} is not an ISO 8601 date-time, and no row of the \
         file has read one: the export writes its dates another way. Name the format with \
         --date-format (or [cost] focus_date_format){hint}; nothing of this file was counted"
    )]
    FocusDateFormat {
        path: String,
        line: u64,
        column: &'static str,
        value: String,
        hint: String,
    },
    #[error("{path}: reading stopped after line {line}: the gzip stream is damaged: {source}")]
    FocusGzip {
        path: String,
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Called while FOCUS files are read (every few thousand rows, and at each file's end): how
/// far into which file, for a progress bar.
#[derive(Clone)]
pub struct FocusProgress(pub Arc<dyn Fn(&FocusPosition) + Send + Sync>);

impl std::fmt::Debug for FocusProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FocusProgress")
    }
}

/// Where a FOCUS read is: bytes of the file on disk (compressed, for a .gz) read of its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusPosition {
    pub file: String,
    pub read: u64,
    pub size: u64,
    pub rows: u64,
    pub done: bool,
}

/// What `fleetdeck cost` asks for.
#[derive(Debug, Clone)]
pub struct CostOptions {
    pub focus_files: Vec<PathBuf>,
    /// Base URL of the OpenCost API, e.g. `http://localhost:9003`.
    pub opencost_url: Option<String>,
    /// OpenCost's window syntax (`7d`, `today`, `month`, `start,end`). Absent: OpenCost is asked
    /// for [`DEFAULT_OPENCOST_WINDOW`] and FOCUS rows are not cut.
    pub window: Option<String>,
    pub group_by: CostGroupBy,
    pub monthly_budget: Option<f64>,
    /// Node capacity types, instance and GPU types, for spot savings and GPU types (see
    /// [`NodeCostInfo::from_snapshot`]).
    pub nodes: Vec<NodeCostInfo>,
    /// Per-GPU utilisation over the window, for the idle-GPU cost of allocated GPUs.
    pub gpu_utilisation: Option<Vec<GpuUtilisation>>,
    pub idle_gpu_threshold_pct: f64,
    /// The pod label (OpenCost) and tag (FOCUS) that names a team.
    pub team_label: String,
    /// OpenCost prices carry no currency; this is its configured one.
    pub opencost_currency: String,
    /// The instant windows and the budget month are taken at; absent: now (and, for FOCUS
    /// files alone, the budget month is the one of the latest charge).
    pub as_of: Option<DateTime<Utc>>,
    /// Private CAs OpenCost's https:// certificate may be signed by.
    pub tls: super::http::TlsRoots,
    /// How FOCUS dates are written when not in ISO 8601.
    pub focus_date_format: Option<DateFormat>,
    pub focus_progress: Option<FocusProgress>,
}

pub const DEFAULT_OPENCOST_WINDOW: &str = "7d";

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            focus_files: Vec::new(),
            opencost_url: None,
            window: None,
            group_by: CostGroupBy::default(),
            monthly_budget: None,
            nodes: Vec::new(),
            gpu_utilisation: None,
            idle_gpu_threshold_pct: DEFAULT_IDLE_GPU_THRESHOLD_PCT,
            team_label: "team".to_string(),
            opencost_currency: "USD".to_string(),
            as_of: None,
            tls: super::http::TlsRoots::default(),
            focus_date_format: None,
            focus_progress: None,
        }
    }
}

/// Reads every source and builds the report. Any source that fails fails the report: a
/// one-shot report with a silently missing source would understate spend.
pub async fn build_report(opts: &CostOptions) -> Result<CostReport, CostError> {
    if opts.focus_files.is_empty() && opts.opencost_url.is_none() {
        return Err(CostError::NoSources);
    }
    let now = Utc::now();
    let at = opts.as_of.unwrap_or(now);
    // FOCUS rows are cut client-side; OpenCost judges its own window (its errors name it).
    let window = match &opts.window {
        Some(spec) if !opts.focus_files.is_empty() => Some(resolve_window(spec, at)?),
        _ => None,
    };
    let mut builder = CostReportBuilder::new(ReportSettings {
        group_by: opts.group_by,
        window: window.clone(),
        monthly_budget: opts.monthly_budget,
        as_of: opts
            .as_of
            .or_else(|| opts.opencost_url.as_ref().map(|_| now)),
        nodes: opts.nodes.clone(),
        gpu_utilisation: opts.gpu_utilisation.clone(),
        idle_gpu_threshold_pct: opts.idle_gpu_threshold_pct,
    });

    if let Some(url) = &opts.opencost_url {
        let client = OpenCostClient::with_roots(url, &opts.tls)?;
        let spec = opts
            .window
            .clone()
            .unwrap_or_else(|| DEFAULT_OPENCOST_WINDOW.to_string());
        builder.set_currency(&opts.opencost_currency);
        builder.begin_source(CostSourceKind::OpenCost, client.base.to_string());
        let aggregate = opencost_aggregate(&opts.team_label);
        let sets = client
            .allocation(&AllocationRequest {
                window: spec.clone(),
                aggregate: aggregate.clone(),
                accumulate: true,
                step: None,
                include_idle: true,
            })
            .await?;
        let ctx = AllocationContext {
            aggregate: &aggregate,
            team_label: &opts.team_label,
            nodes: &opts.nodes,
            currency: &opts.opencost_currency,
        };
        for set in &sets {
            for (name, value) in set {
                match allocation_line(name, value, &ctx) {
                    Ok(line) => {
                        if let Err(reason) = builder.add_line(&line) {
                            builder.skip(client.skipped(name, reason));
                        }
                    }
                    Err(reason) => builder.skip(client.skipped(name, reason)),
                }
            }
        }
        if opts.monthly_budget.is_some() && opts.focus_files.is_empty() {
            for line in client.daily_month_to_date(at, &ctx).await? {
                builder.add_daily(&line);
            }
        }
        builder.note(format!(
            "OpenCost window {spec:?}, aggregated by {}; costs are OpenCost's estimates in {}",
            aggregate.join(","),
            opts.opencost_currency
        ));
        if opts.nodes.is_empty() {
            builder.note(
                "no node information was given: OpenCost spot savings and GPU types are unknown",
            );
        }
    }

    if !opts.focus_files.is_empty() {
        let files = opts.focus_files.clone();
        let team_label = opts.team_label.clone();
        let date_format = opts.focus_date_format.clone();
        let progress = opts.focus_progress.clone();
        builder = tokio::task::spawn_blocking(move || {
            let mut b = builder;
            for f in &files {
                let reader =
                    FocusReader::open(f, &team_label)?.with_date_format(date_format.clone());
                read_focus_with_progress(reader, &mut b, progress.as_ref())?;
            }
            Ok::<_, CostError>(b)
        })
        .await
        .map_err(|e| CostError::Task(e.to_string()))??;
        if opts.opencost_url.is_some() {
            builder.note(
                "OpenCost allocations and FOCUS bills may cover the same machines: compare the \
                 per-source totals rather than adding them",
            );
        }
    }
    if let Some(w) = &window {
        builder.note(format!(
            "FOCUS rows cut to {} – {} (rows across an edge are prorated by time)",
            w.start.format("%Y-%m-%d %H:%M"),
            w.end.format("%Y-%m-%d %H:%M")
        ));
    }
    Ok(builder.finish(now))
}

/// OpenCost's window syntax, resolved at `now` in UTC: `30m`, `24h`, `7d`, `2w`; `today`,
/// `yesterday`, `week`, `lastweek`, `month`, `lastmonth`; `start,end` in RFC 3339 or unix
/// seconds.
pub fn resolve_window(spec: &str, now: DateTime<Utc>) -> Result<ReportWindow, CostError> {
    let invalid = |reason: &str| CostError::InvalidWindow {
        value: spec.to_string(),
        reason: reason.to_string(),
    };
    let v = spec.trim();
    let midnight = day_start(now.date_naive());
    let week_start = midnight - Duration::days(i64::from(now.weekday().num_days_from_monday()));
    let month_start = midnight - Duration::days(i64::from(now.day0()));
    let (start, end) = match v.to_ascii_lowercase().as_str() {
        "today" => (midnight, now),
        "yesterday" => (midnight - Duration::days(1), midnight),
        "week" => (week_start, now),
        "lastweek" => (week_start - Duration::days(7), week_start),
        "month" => (month_start, now),
        "lastmonth" => {
            let prev = (month_start - Duration::days(1)).date_naive();
            let start = prev.with_day(1).map(day_start).unwrap_or(month_start);
            (start, month_start)
        }
        _ if v.contains(',') => {
            let (a, b) = v.split_once(',').unwrap_or((v, ""));
            let start = parse_instant(a.trim()).ok_or_else(|| {
                invalid(&format!("bad start {a:?}: use RFC 3339 or unix seconds"))
            })?;
            let end = parse_instant(b.trim())
                .ok_or_else(|| invalid(&format!("bad end {b:?}: use RFC 3339 or unix seconds")))?;
            if end <= start {
                return Err(invalid("the end is not after the start"));
            }
            (start, end)
        }
        _ => {
            let d = parse_span(v).ok_or_else(|| {
                invalid(
                    "expected a duration (30m, 24h, 7d, 2w), today, yesterday, week, lastweek, \
                     month, lastmonth, or start,end",
                )
            })?;
            (now - d, now)
        }
    };
    Ok(ReportWindow {
        spec: spec.to_string(),
        start,
        end,
    })
}

fn parse_span(s: &str) -> Option<Duration> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(unit_at);
    let n: i64 = num.parse().ok().filter(|n| *n > 0 && *n <= 100_000)?;
    match unit {
        "m" => Some(Duration::minutes(n)),
        "h" => Some(Duration::hours(n)),
        "d" => Some(Duration::days(n)),
        "w" => Some(Duration::weeks(n)),
        _ => None,
    }
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>()
        .ok()
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
}

pub(super) fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

// ---------------------------------------------------------------------------------------------
// The cost source: rounds joined with the fleet

/// Node capacity and GPU types (for spot savings and GPU-hour prices) and per-GPU utilisation
/// (for the idle cost of allocated GPUs) from a snapshot: the join every face makes, so
/// `fleetdeck cost --kubeconfig`, the Cost pane and headless show the same numbers.
pub fn fleet_join(snap: &Snapshot) -> (Vec<NodeCostInfo>, Option<Vec<GpuUtilisation>>) {
    let utilisation: Vec<GpuUtilisation> = snap
        .gpus
        .iter()
        .filter_map(|g| {
            Some(GpuUtilisation {
                cluster: Some(g.cluster.clone()),
                node: g.node.clone(),
                gpu: g.uuid.clone(),
                utilisation_pct: g.utilization_pct?,
            })
        })
        .collect();
    (
        NodeCostInfo::from_snapshot(snap),
        (!utilisation.is_empty()).then_some(utilisation),
    )
}

/// How long the first round waits for the clusters to sync, so that it can be joined.
const FIRST_ROUND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// After a failed round the next one comes sooner than the interval.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the cost source: a report every `interval` from `opts` (OpenCost and/or FOCUS files),
/// joined with the latest fleet picture, sent to `state` as a [`CostUpdate`]. A failed round
/// sends its error (the last good report stays, its age on the status line). A round made
/// before the clusters knew their nodes is made again as soon as they do.
pub fn spawn_cost(
    opts: CostOptions,
    interval: std::time::Duration,
    mut fleet: watch::Receiver<Arc<Snapshot>>,
    tx: mpsc::Sender<CostUpdate>,
) {
    let target = match &opts.opencost_url {
        Some(u) => u.clone(),
        None => opts
            .focus_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    tokio::spawn(async move {
        let synced = |s: &Snapshot| !s.clusters.is_empty() && s.clusters.iter().all(|c| c.synced());
        let deadline = tokio::time::Instant::now() + FIRST_ROUND_PATIENCE;
        while !synced(&fleet.borrow()) {
            tokio::select! {
                changed = fleet.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut last_success = None;
        loop {
            let snap = fleet.borrow_and_update().clone();
            let (nodes, gpu_utilisation) = fleet_join(&snap);
            let joined = !nodes.is_empty();
            let round = CostOptions {
                nodes,
                gpu_utilisation,
                ..opts.clone()
            };
            let result = build_report(&round).await;
            let now = Utc::now();
            let ok = result.is_ok();
            if ok {
                last_success = Some(now);
            }
            let update = CostUpdate {
                status: CostSourceStatus {
                    target: target.clone(),
                    error: result.as_ref().err().map(|e| e.to_string()),
                    last_success,
                    checked_at: now,
                    interval,
                },
                report: result.ok(),
            };
            if tx.send(update).await.is_err() {
                return;
            }
            let wait = if ok {
                interval
            } else {
                interval.min(RETRY_AFTER)
            };
            let next = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => break,
                    changed = fleet.changed(), if !joined => {
                        if changed.is_err() { return; }
                        if !NodeCostInfo::from_snapshot(&fleet.borrow()).is_empty() { break; }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    // Named `t` where a test reads as a timeline of instants.
    use crate::model::utc as t;

    #[test]
    fn windows_resolve_like_opencost() {
        let now = t("2025-04-16T12:00:00Z");
        let w = |s: &str| resolve_window(s, now).map(|w| (w.start, w.end));
        assert_eq!(w("7d").ok(), Some((t("2025-04-09T12:00:00Z"), now)));
        assert_eq!(w("today").ok(), Some((t("2025-04-16T00:00:00Z"), now)));
        assert_eq!(w("month").ok(), Some((t("2025-04-01T00:00:00Z"), now)));
        assert_eq!(
            w("lastmonth").ok(),
            Some((t("2025-03-01T00:00:00Z"), t("2025-04-01T00:00:00Z")))
        );
        assert_eq!(
            w("week").ok(),
            Some((t("2025-04-14T00:00:00Z"), now)),
            "ISO weeks start on Monday"
        );
        assert_eq!(
            w("2025-01-01T00:00:00Z,2025-01-02T00:00:00Z").ok(),
            Some((t("2025-01-01T00:00:00Z"), t("2025-01-02T00:00:00Z")))
        );
        let err = resolve_window("7 days", now).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("\"7 days\"")));
    }
}
