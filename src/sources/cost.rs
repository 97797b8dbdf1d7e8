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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::model::Snapshot;
use crate::model::cost::{
    CostGroupBy, CostLine, CostReport, CostReportBuilder, CostSourceKind, CostSourceStatus,
    CostUpdate, DEFAULT_IDLE_GPU_THRESHOLD_PCT, DateFormat, GpuUtilisation, NodeCostInfo,
    PricingCategory, ReportSettings, ReportWindow, ResourceUsage, SkippedRow, gpu_family,
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

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

// ---------------------------------------------------------------------------------------------
// OpenCost

/// One `/allocation` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub window: String,
    /// Properties, e.g. `["namespace", "label:team"]`.
    pub aggregate: Vec<String>,
    pub accumulate: bool,
    pub step: Option<String>,
    pub include_idle: bool,
}

/// One allocation set: allocation name → allocation JSON.
pub type AllocationSet = BTreeMap<String, Value>;

/// The aggregation the report asks for: every line then carries its cluster, node, namespace
/// and team, so one answer gives every breakdown without counting a cost twice.
pub fn opencost_aggregate(team_label: &str) -> Vec<String> {
    vec![
        "cluster".to_string(),
        "node".to_string(),
        "namespace".to_string(),
        format!("label:{team_label}"),
    ]
}

#[derive(Debug, Clone)]
pub struct OpenCostClient {
    http: reqwest::Client,
    base: url::Url,
}

/// OpenCost computes long windows from Prometheus on request; a minute is not unusual.
const OPENCOST_TIMEOUT: StdDuration = StdDuration::from_secs(120);

impl OpenCostClient {
    pub fn new(base: &str) -> Result<Self, CostError> {
        Self::with_roots(base, &super::http::TlsRoots::default())
    }

    /// As [`OpenCostClient::new`], trusting the private CAs in `roots` too.
    pub fn with_roots(base: &str, roots: &super::http::TlsRoots) -> Result<Self, CostError> {
        let bad = |reason: String| CostError::OpenCostUrl {
            url: base.to_string(),
            reason,
        };
        let mut url = url::Url::parse(base.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("use an http:// or https:// URL".to_string()));
        }
        // A base with a path (`…/proxy/`) keeps it: `allocation` is joined below it.
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let http = roots
            .client_builder()
            .timeout(OPENCOST_TIMEOUT)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(OpenCostClient { http, base: url })
    }

    fn skipped(&self, name: &str, reason: String) -> SkippedRow {
        SkippedRow {
            location: format!("opencost {} allocation {name:?}", self.base),
            reason,
        }
    }

    pub fn allocation_url(&self, req: &AllocationRequest) -> url::Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}allocation", self.base.path()));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("window", &req.window);
            if !req.aggregate.is_empty() {
                q.append_pair("aggregate", &req.aggregate.join(","));
            }
            q.append_pair("accumulate", if req.accumulate { "true" } else { "false" });
            if let Some(step) = &req.step {
                q.append_pair("step", step);
            }
            if req.include_idle {
                q.append_pair("includeIdle", "true");
            }
        }
        url
    }

    /// `GET {base}/allocation?…`: the allocation sets of the answer.
    pub async fn allocation(
        &self,
        req: &AllocationRequest,
    ) -> Result<Vec<AllocationSet>, CostError> {
        let url = self.allocation_url(req);
        let shown = url.to_string();
        let resp =
            self.http
                .get(url)
                .send()
                .await
                .map_err(|source| CostError::OpenCostRequest {
                    url: shown.clone(),
                    source,
                })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| CostError::OpenCostRequest {
                url: shown.clone(),
                source,
            })?;
        parse_allocation_response(&shown, status.as_u16(), &body)
    }

    /// Daily OpenCost spend from the first of `at`'s month to `at`, as lines for the budget.
    async fn daily_month_to_date(
        &self,
        at: DateTime<Utc>,
        ctx: &AllocationContext<'_>,
    ) -> Result<Vec<CostLine>, CostError> {
        let month_start = at
            .date_naive()
            .with_day(1)
            .map(day_start)
            .unwrap_or_else(|| day_start(at.date_naive()));
        if at <= month_start {
            return Ok(Vec::new());
        }
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let sets = self
            .allocation(&AllocationRequest {
                window: format!("{},{}", fmt(month_start), fmt(at)),
                aggregate: vec!["cluster".to_string()],
                accumulate: false,
                step: Some("1d".to_string()),
                include_idle: true,
            })
            .await?;
        let daily_ctx = AllocationContext {
            aggregate: &[],
            ..*ctx
        };
        // An allocation that cannot be read here was already reported by the window query
        // (same data, coarser grouping), so it is left out of the daily series only.
        Ok(sets
            .iter()
            .flat_map(|set| set.iter())
            .filter_map(|(name, v)| allocation_line(name, v, &daily_ctx).ok())
            .collect())
    }
}

#[derive(Deserialize)]
struct Envelope {
    code: Option<i64>,
    message: Option<String>,
    data: Option<Value>,
}

/// Reads OpenCost's `{"code":200,"data":[{name: allocation}]}` envelope. A non-2xx status or a
/// `code` other than 200 is an error carrying the body's `message`.
pub fn parse_allocation_response(
    url: &str,
    status: u16,
    body: &[u8],
) -> Result<Vec<AllocationSet>, CostError> {
    let envelope: Result<Envelope, _> = serde_json::from_slice(body);
    let rejected = |code: Option<i64>, message: String| CostError::OpenCostRejected {
        url: url.to_string(),
        status,
        code,
        message,
    };
    let env = match envelope {
        Ok(env) => env,
        Err(e) if (200..300).contains(&status) => {
            return Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("not JSON: {e}"),
            });
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(300).collect();
            return Err(rejected(None, text));
        }
    };
    if !(200..300).contains(&status) || env.code.is_some_and(|c| c != 200) {
        return Err(rejected(
            env.code,
            env.message
                .unwrap_or_else(|| "(no message in the body)".to_string()),
        ));
    }
    let data = match env.data {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(sets)) => sets,
        Some(other) => {
            return Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("`data` is {}, not an array of sets", json_kind(&other)),
            });
        }
    };
    data.into_iter()
        .enumerate()
        .filter(|(_, set)| !set.is_null())
        .map(|(i, set)| match set {
            Value::Object(m) => Ok(m.into_iter().collect()),
            other => Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("set {i} of `data` is {}, not an object", json_kind(&other)),
            }),
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What turning an allocation into a line needs to know.
#[derive(Debug, Clone, Copy)]
pub struct AllocationContext<'a> {
    /// The query's aggregation, to read names when properties are missing.
    pub aggregate: &'a [String],
    pub team_label: &'a str,
    pub nodes: &'a [NodeCostInfo],
    pub currency: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllocationJson {
    #[serde(default)]
    properties: Option<PropertiesJson>,
    #[serde(default)]
    window: Option<WindowJson>,
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    #[serde(default)]
    cpu_core_hours: f64,
    #[serde(default)]
    cpu_cost: f64,
    #[serde(default)]
    gpu_hours: f64,
    #[serde(default)]
    gpu_cost: f64,
    #[serde(default)]
    ram_byte_hours: f64,
    #[serde(default)]
    ram_cost: f64,
    #[serde(default)]
    total_cost: Option<f64>,
}

#[derive(Deserialize, Default)]
struct PropertiesJson {
    cluster: Option<String>,
    node: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct WindowJson {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

const OPENCOST_IDLE: &str = "__idle__";
const OPENCOST_UNALLOCATED: &str = "__unallocated__";
const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One OpenCost allocation as a cost line; the error says why it cannot be one.
pub fn allocation_line(
    name: &str,
    value: &Value,
    ctx: &AllocationContext<'_>,
) -> Result<CostLine, String> {
    let a =
        AllocationJson::deserialize(value).map_err(|e| format!("unreadable allocation: {e}"))?;
    let window = a.window.as_ref();
    let start = a
        .start
        .or_else(|| window.and_then(|w| w.start))
        .ok_or("no start time (neither `start` nor `window.start`)")?;
    let end = a
        .end
        .or_else(|| window.and_then(|w| w.end))
        .ok_or("no end time (neither `end` nor `window.end`)")?;
    let total = a.total_cost.unwrap_or(a.cpu_cost + a.gpu_cost + a.ram_cost);
    for (field, v) in [
        ("totalCost", total),
        ("gpuHours", a.gpu_hours),
        ("gpuCost", a.gpu_cost),
    ] {
        if !v.is_finite() {
            return Err(format!("{field} is not a finite number"));
        }
    }
    let props = a.properties.unwrap_or_default();
    let segments: Vec<&str> = name.split('/').collect();
    let segment = |property: &str| -> Option<String> {
        if segments.len() != ctx.aggregate.len() {
            return None;
        }
        ctx.aggregate
            .iter()
            .position(|p| p == property)
            .and_then(|i| segments.get(i))
            .map(|s| s.to_string())
    };
    let known = |v: Option<String>| v.filter(|s| s != OPENCOST_UNALLOCATED && !s.is_empty());
    let idle = name == OPENCOST_IDLE || name.ends_with("/__idle__");
    let team = props
        .labels
        .as_ref()
        .and_then(|l| label_value(l, ctx.team_label))
        .or_else(|| segment(&format!("label:{}", ctx.team_label)));

    // OpenCost names a cluster's idle capacity `<cluster>/__idle__` when it aggregates by
    // cluster first; attribute it there rather than to no cluster.
    let idle_cluster = || {
        let prefix = name.strip_suffix("/__idle__")?;
        (ctx.aggregate.first().map(String::as_str) == Some("cluster"))
            .then(|| prefix.split('/').next().map(str::to_string))
            .flatten()
    };
    let mut line = CostLine::new(CostSourceKind::OpenCost, start, end, total, ctx.currency);
    line.cluster = known(
        props
            .cluster
            .or_else(|| segment("cluster"))
            .or_else(|| if idle { idle_cluster() } else { None }),
    );
    line.idle = idle;
    if !idle {
        line.node = known(props.node.or_else(|| segment("node")));
        line.namespace = known(props.namespace.or_else(|| segment("namespace")));
        line.team = known(team);
    }
    line.service = Some("Kubernetes (OpenCost)".to_string());
    line.gpu_hours = a.gpu_hours;
    line.gpu_cost = a.gpu_cost;
    line.usage = Some(ResourceUsage {
        cpu_core_hours: a.cpu_core_hours,
        cpu_cost: a.cpu_cost,
        gpu_hours: a.gpu_hours,
        gpu_cost: a.gpu_cost,
        ram_gib_hours: a.ram_byte_hours / BYTES_PER_GIB,
        ram_cost: a.ram_cost,
    });
    if let Some(node) = &line.node {
        let info = ctx
            .nodes
            .iter()
            .find(|n| &n.node == node && (n.cluster.is_none() || n.cluster == line.cluster));
        line.gpu_type = info.and_then(|n| n.gpu_type.clone());
    }
    Ok(line)
}

/// A label by its key, or by the key OpenCost's Prometheus sanitising makes of it
/// (`app.kubernetes.io/team` → `app_kubernetes_io_team`).
fn label_value(labels: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    let sanitized: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    labels
        .get(key)
        .or_else(|| labels.get(&sanitized))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
}

// ---------------------------------------------------------------------------------------------
// FOCUS

/// One record of a FOCUS file: a line, or a row that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum FocusRecord {
    /// `location` is `file:line`.
    Line {
        line: Box<CostLine>,
        location: String,
    },
    Skipped(SkippedRow),
}

/// Column positions in one file's header.
#[derive(Debug, Clone)]
struct FocusColumns {
    count: usize,
    billed: usize,
    effective: usize,
    start: usize,
    end: usize,
    currency: usize,
    list: Option<usize>,
    pricing_category: Option<usize>,
    charge_category: Option<usize>,
    service: Option<usize>,
    resource_id: Option<usize>,
    resource_type: Option<usize>,
    sku: Option<usize>,
    region: Option<usize>,
    tags: Option<usize>,
    consumed_quantity: Option<usize>,
    consumed_unit: Option<usize>,
    pricing_quantity: Option<usize>,
    pricing_unit: Option<usize>,
    gpu_text: Vec<usize>,
}

/// Columns a FOCUS file must have for a report. ListCost, PricingCategory and the rest are
/// read when present.
pub const REQUIRED_FOCUS_COLUMNS: [&str; 5] = [
    "BilledCost",
    "EffectiveCost",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingCurrency",
];

/// Where a row's GPU is looked for (see the module notes).
const GPU_TEXT_COLUMNS: [&str; 9] = [
    "ResourceType",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "x_UsageType",
    "x_SkuDescription",
    "x_InstanceType",
    "x_SkuMeterName",
    "ChargeDescription",
];

impl FocusColumns {
    fn from_header(path: &str, header: &csv::ByteRecord) -> Result<Self, CostError> {
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let s = String::from_utf8_lossy(raw);
                // Exports written for Excel start with a byte-order mark.
                let s = if i == 0 {
                    s.trim_start_matches('\u{feff}').to_string()
                } else {
                    s.to_string()
                };
                s.trim().to_string()
            })
            .collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let missing: Vec<&str> = REQUIRED_FOCUS_COLUMNS
            .iter()
            .copied()
            .filter(|c| find(c).is_none())
            .collect();
        if !missing.is_empty() {
            let mut found = if names.iter().all(String::is_empty) {
                "nothing: the file is empty".to_string()
            } else {
                names.join(", ")
            };
            if found.len() > 400 {
                found = format!("{}…", found.chars().take(400).collect::<String>());
            }
            return Err(CostError::MissingColumns {
                path: path.to_string(),
                columns: missing.join(", "),
                found,
            });
        }
        let required = |name: &str| find(name).unwrap_or_default();
        Ok(FocusColumns {
            count: names.len(),
            billed: required("BilledCost"),
            effective: required("EffectiveCost"),
            start: required("ChargePeriodStart"),
            end: required("ChargePeriodEnd"),
            currency: required("BillingCurrency"),
            list: find("ListCost"),
            pricing_category: find("PricingCategory"),
            charge_category: find("ChargeCategory"),
            service: find("ServiceName"),
            resource_id: find("ResourceId"),
            resource_type: find("ResourceType"),
            sku: find("SkuId"),
            // RegionId since 1.0; `Region` in 1.0-preview.
            region: find("RegionId")
                .or_else(|| find("Region"))
                .or_else(|| find("RegionName")),
            tags: find("Tags"),
            consumed_quantity: find("ConsumedQuantity"),
            consumed_unit: find("ConsumedUnit"),
            pricing_quantity: find("PricingQuantity"),
            pricing_unit: find("PricingUnit"),
            gpu_text: GPU_TEXT_COLUMNS.iter().filter_map(|c| find(c)).collect(),
        })
    }
}

/// Streams a FOCUS CSV file record by record. The csv reader buffers its input itself (a
/// fixed 8 KiB by default), so the file is never held whole; memory is one record at a time.
pub struct FocusReader<R: Read> {
    name: String,
    csv: csv::Reader<R>,
    columns: FocusColumns,
    record: csv::ByteRecord,
    team_label: String,
    date_format: Option<DateFormat>,
    /// Whether a row of this file has read its dates: until one has, a date that does not read
    /// stops the file with one message rather than skipping every row.
    dates_read: bool,
    /// Whether the input is gzip: its read errors are a damaged stream, not a CSV problem.
    gzip: bool,
    /// Bytes of the file read so far and its size, for progress.
    position: Option<(Arc<std::sync::atomic::AtomicU64>, u64)>,
    rows: u64,
    done: bool,
}

/// A FOCUS file as opened: plain, or gzip (`.csv.gz`, told by its magic bytes, not its name).
pub type FocusFile = Box<dyn Read + Send>;

/// Counts the bytes read from the file underneath (compressed bytes, for gzip).
struct Counted {
    file: File,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl FocusReader<FocusFile> {
    /// Opens a FOCUS export, gzip'd or not.
    pub fn open(path: &Path, team_label: &str) -> Result<Self, CostError> {
        use std::io::{Seek, SeekFrom};
        let open_error = |source| CostError::FocusOpen {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(open_error)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 2];
        let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        file.seek(SeekFrom::Start(0)).map_err(open_error)?;
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            file,
            read: read.clone(),
        };
        let input: FocusFile = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
                counted,
            )))
        } else {
            Box::new(counted)
        };
        let mut reader = FocusReader::new(path.display().to_string(), input, team_label).map_err(
            |e| match e {
                CostError::FocusHeader { path, source } if gzip => CostError::FocusGzip {
                    path,
                    line: 0,
                    source: std::io::Error::other(source.to_string()),
                },
                e => e,
            },
        )?;
        reader.gzip = gzip;
        reader.position = Some((read, size));
        Ok(reader)
    }
}

impl<R: Read> FocusReader<R> {
    /// Reads the header of `input`; `name` is how rows are located in messages (`name:line`).
    pub fn new(name: impl Into<String>, input: R, team_label: &str) -> Result<Self, CostError> {
        let name = name.into();
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            // Rows with the wrong number of fields are reported one by one, not fatal.
            .flexible(true)
            // With the default (CR, LF or CRLF) a CRLF's LF is counted only when the next record
            // starts, so positions of CRLF files would name the line before. A CR left at the end
            // of the last field is trimmed like any other whitespace.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(input);
        let header = csv
            .byte_headers()
            .map_err(|source| CostError::FocusHeader {
                path: name.clone(),
                source,
            })?
            .clone();
        let columns = FocusColumns::from_header(&name, &header)?;
        Ok(FocusReader {
            name,
            csv,
            columns,
            record: csv::ByteRecord::new(),
            team_label: team_label.to_string(),
            date_format: None,
            dates_read: false,
            gzip: false,
            position: None,
            rows: 0,
            done: false,
        })
    }

    /// Reads ChargePeriodStart/End in `format` (exports that do not write ISO 8601).
    pub fn with_date_format(mut self, format: Option<DateFormat>) -> Self {
        self.date_format = format;
        self
    }

    /// How far the read is, when the input is a file.
    pub fn position(&self) -> Option<FocusPosition> {
        let (read, size) = self.position.as_ref()?;
        Some(FocusPosition {
            file: self.name.clone(),
            read: read.load(std::sync::atomic::Ordering::Relaxed),
            size: *size,
            rows: self.rows,
            done: self.done,
        })
    }

    /// Until a row of the file has read its dates, a start date that does not read stops the
    /// file with one message naming the format to give.
    fn check_dates(&mut self, line: u64) -> Result<(), CostError> {
        if self.dates_read || self.record.len() != self.columns.count {
            return Ok(());
        }
        let raw = field(&self.record, Some(self.columns.start)).ok().flatten();
        let Some(value) = raw else { return Ok(()) };
        if focus_time("ChargePeriodStart", Some(value), self.date_format.as_ref()).is_ok() {
            self.dates_read = true;
            return Ok(());
        }
        Err(CostError::FocusDateFormat {
            path: self.name.clone(),
            line,
            column: "ChargePeriodStart",
            value: value.to_string(),
            hint: match &self.date_format {
                Some(f) => format!(" (it does not read with {:?} either)", f.as_str()),
                None => date_format_hint(value),
            },
        })
    }

    fn location(&self, line: u64) -> String {
        format!("{}:{line}", self.name)
    }
}

impl<R: Read> Iterator for FocusReader<R> {
    type Item = Result<FocusRecord, CostError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.csv.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) if is_blank(&self.record) => {}
                Ok(true) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    self.rows += 1;
                    if let Err(e) = self.check_dates(line) {
                        self.done = true;
                        return Some(Err(e));
                    }
                    let location = self.location(line);
                    return Some(Ok(
                        match focus_line(
                            &self.columns,
                            &self.record,
                            &self.team_label,
                            self.date_format.as_ref(),
                        ) {
                            Ok(l) => FocusRecord::Line {
                                line: Box::new(l),
                                location,
                            },
                            Err(reason) => FocusRecord::Skipped(SkippedRow { location, reason }),
                        },
                    ));
                }
                Err(e) => {
                    let line = e
                        .position()
                        .map(|p| p.line())
                        .unwrap_or_else(|| self.csv.position().line());
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        self.done = true;
                        if self.gzip {
                            let source = match e.into_kind() {
                                csv::ErrorKind::Io(io) => io,
                                other => std::io::Error::other(format!("{other:?}")),
                            };
                            return Some(Err(CostError::FocusGzip {
                                path: self.name.clone(),
                                line,
                                source,
                            }));
                        }
                        return Some(Err(CostError::FocusRead {
                            path: self.name.clone(),
                            line,
                            source: e,
                        }));
                    }
                    return Some(Ok(FocusRecord::Skipped(SkippedRow {
                        location: self.location(line),
                        reason: e.to_string(),
                    })));
                }
            }
        }
        None
    }
}

/// A blank line (of a CRLF file, where the CR makes it a one-field record): not a row.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// Reads one FOCUS file into the report.
pub fn read_focus_file(
    path: &Path,
    team_label: &str,
    builder: &mut CostReportBuilder,
) -> Result<(), CostError> {
    let reader = FocusReader::open(path, team_label)?;
    read_focus(reader, builder)
}

/// Folds every record of a FOCUS reader into the report, one at a time.
pub fn read_focus<R: Read>(
    reader: FocusReader<R>,
    builder: &mut CostReportBuilder,
) -> Result<(), CostError> {
    read_focus_with_progress(reader, builder, None)
}

/// Rows between two progress calls.
const PROGRESS_EVERY: u64 = 4096;

/// As [`read_focus`], telling `progress` how far it is.
pub fn read_focus_with_progress<R: Read>(
    mut reader: FocusReader<R>,
    builder: &mut CostReportBuilder,
    progress: Option<&FocusProgress>,
) -> Result<(), CostError> {
    builder.begin_source(CostSourceKind::Focus, reader.name.clone());
    loop {
        let Some(record) = reader.next() else { break };
        if let Some(p) = progress
            && reader.rows.is_multiple_of(PROGRESS_EVERY)
            && let Some(at) = reader.position()
        {
            (p.0)(&at);
        }
        match record? {
            FocusRecord::Line { line, location } => {
                if let Err(reason) = builder.add_line(&line) {
                    builder.skip(SkippedRow { location, reason });
                }
            }
            FocusRecord::Skipped(row) => builder.skip(row),
        }
    }
    if let Some(p) = progress
        && let Some(at) = reader.position()
    {
        (p.0)(&at);
    }
    Ok(())
}

/// The `--date-format` to suggest for a date written `value`.
fn date_format_hint(value: &str) -> String {
    static SLASHED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})( \d{1,2}:\d{2}(:\d{2})?)?$")
            .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
    });
    let Some(c) = SLASHED.captures(value) else {
        return ", e.g. --date-format '%m/%d/%Y %H:%M'".to_string();
    };
    let sep = &value[c[1].len()..c[1].len() + 1];
    let year = if c[3].len() == 2 { "%y" } else { "%Y" };
    let time = match c.get(4) {
        None => "",
        Some(_) if c.get(5).is_some() => " %H:%M:%S",
        Some(_) => " %H:%M",
    };
    let first: u32 = c[1].parse().unwrap_or(0);
    let second: u32 = c[2].parse().unwrap_or(0);
    let us = format!("%m{sep}%d{sep}{year}{time}");
    let eu = format!("%d{sep}%m{sep}{year}{time}");
    if first > 12 {
        format!(": this one looks like --date-format '{eu}'")
    } else if second > 12 {
        format!(": this one looks like --date-format '{us}'")
    } else {
        format!(
            ": --date-format '{us}' (month first, as the FOCUS samples write) or '{eu}' (day first)"
        )
    }
}

fn field(record: &csv::ByteRecord, index: Option<usize>) -> Result<Option<&str>, String> {
    let Some(i) = index else { return Ok(None) };
    let raw = record.get(i).unwrap_or_default();
    let s = std::str::from_utf8(raw).map_err(|e| format!("column {} is not UTF-8: {e}", i + 1))?;
    let s = s.trim();
    Ok((!s.is_empty()).then_some(s))
}

fn number(name: &str, value: Option<&str>) -> Result<Option<f64>, String> {
    match value {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(format!("{name} {v:?} is not a number")),
        },
    }
}

fn required_number(name: &str, value: Option<&str>) -> Result<f64, String> {
    number(name, value)?.ok_or_else(|| format!("{name} is empty"))
}

/// FOCUS date-times are ISO 8601 in UTC; exports also write them without a zone, with a space,
/// or as a bare date.
fn focus_time(
    name: &str,
    value: Option<&str>,
    format: Option<&DateFormat>,
) -> Result<DateTime<Utc>, String> {
    let v = value.ok_or_else(|| format!("{name} is empty"))?;
    if let Some(t) = format.and_then(|f| f.read(v)) {
        return Ok(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%MZ",
        "%Y-%m-%dT%H:%M:%S%.fZ",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(t) = DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f %z") {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(day_start(d));
    }
    Err(format!(
        "{name} {v:?} is not a date-time (expected ISO 8601, e.g. 2024-05-01T00:00:00Z)"
    ))
}

fn parse_tags(value: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let Some(v) = value else {
        return Ok(BTreeMap::new());
    };
    if v == "null" {
        return Ok(BTreeMap::new());
    }
    match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(m)) => Ok(m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect()),
        Ok(other) => Err(format!("Tags is {}, not a JSON object", json_kind(&other))),
        Err(e) => Err(format!("Tags is not valid JSON: {e}")),
    }
}

fn tag<'t>(tags: &'t BTreeMap<String, String>, keys: &[&str]) -> Option<&'t str> {
    keys.iter().find_map(|k| {
        tags.iter()
            .find(|(tk, v)| tk.eq_ignore_ascii_case(k) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

const CLUSTER_TAGS: [&str; 5] = [
    "cluster",
    "kubernetes-cluster",
    "eks:cluster-name",
    "aws:eks:cluster-name",
    "goog-k8s-cluster-name",
];
const NAMESPACE_TAGS: [&str; 4] = [
    "namespace",
    "k8s-namespace",
    "kubernetes-namespace",
    "goog-k8s-namespace",
];

fn focus_line(
    cols: &FocusColumns,
    record: &csv::ByteRecord,
    team_label: &str,
    date_format: Option<&DateFormat>,
) -> Result<CostLine, String> {
    if record.len() != cols.count {
        return Err(format!(
            "{} fields, but the header has {}",
            record.len(),
            cols.count
        ));
    }
    let f = |i: Option<usize>| field(record, i);
    let billed = required_number("BilledCost", f(Some(cols.billed))?)?;
    let effective = required_number("EffectiveCost", f(Some(cols.effective))?)?;
    let list = number("ListCost", f(cols.list)?)?;
    let start = focus_time("ChargePeriodStart", f(Some(cols.start))?, date_format)?;
    let end = focus_time("ChargePeriodEnd", f(Some(cols.end))?, date_format)?;
    if end < start {
        return Err("ChargePeriodEnd is before ChargePeriodStart".to_string());
    }
    let currency = f(Some(cols.currency))?.ok_or("BillingCurrency is empty")?;
    let tags = parse_tags(f(cols.tags)?)?;
    let consumed = number("ConsumedQuantity", f(cols.consumed_quantity)?)?;
    let pricing_qty = number("PricingQuantity", f(cols.pricing_quantity)?)?;
    let charge_category = f(cols.charge_category)?.map(str::to_string);

    let mut line = CostLine::new(CostSourceKind::Focus, start, end, effective, currency);
    line.billed_cost = billed;
    line.list_cost = list;
    line.pricing_category = f(cols.pricing_category)?.and_then(PricingCategory::parse);
    line.service = f(cols.service)?.map(str::to_string);
    line.resource_id = f(cols.resource_id)?.map(str::to_string);
    line.resource_type = f(cols.resource_type)?.map(str::to_string);
    line.sku = f(cols.sku)?.map(str::to_string);
    line.region = f(cols.region)?.map(str::to_string);
    line.cluster = tag(&tags, &CLUSTER_TAGS).map(str::to_string);
    line.namespace = tag(&tags, &NAMESPACE_TAGS).map(str::to_string);
    line.team = tag(&tags, &[team_label]).map(str::to_string);

    let mut gpu: Option<GpuMatch> = None;
    for i in &cols.gpu_text {
        if let Some(text) = f(Some(*i))? {
            gpu = gpu.or_else(|| gpu_in(text));
        }
    }
    if let Some(g) = gpu {
        line.gpu_type = Some(g.gpu_type.to_string());
        line.gpu_cost = effective;
        let usage = charge_category
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case("usage"));
        let quantity = match (consumed, f(cols.consumed_unit)?) {
            (Some(q), Some(u)) => Some((q, u)),
            _ => match (pricing_qty, f(cols.pricing_unit)?) {
                (Some(q), Some(u)) => Some((q, u)),
                _ => None,
            },
        };
        if let (true, Some((q, u))) = (usage, quantity.and_then(|(q, u)| Some((q, time_unit(u)?))))
        {
            let gpus = match g.gpus_per_unit {
                Some(n) if !u.per_gpu => f64::from(n),
                _ => 1.0,
            };
            line.gpu_hours = q * u.hours * gpus;
        }
    }
    line.charge_category = charge_category;
    line.tags = tags;
    Ok(line)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct GpuMatch {
    gpu_type: &'static str,
    /// GPUs per unit of usage for an instance type; `None` when the row is priced per GPU.
    gpus_per_unit: Option<u32>,
}

fn gpu_in(text: &str) -> Option<GpuMatch> {
    let instance = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'))
        .find_map(gpu_instance_type);
    if let Some((gpu_type, n)) = instance {
        return Some(GpuMatch {
            gpu_type,
            gpus_per_unit: Some(n),
        });
    }
    if let Some(family) = gpu_family(text) {
        return Some(GpuMatch {
            gpu_type: family,
            gpus_per_unit: None,
        });
    }
    let names_gpu = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|t| t.eq_ignore_ascii_case("gpu") || t.eq_ignore_ascii_case("gpus"));
    names_gpu.then_some(GpuMatch {
        gpu_type: "unknown GPU",
        gpus_per_unit: None,
    })
}

/// GPU instance types of the three large clouds and their GPUs.
const GPU_INSTANCE_TYPES: &[(&str, &str, u32)] = &[
    // AWS
    ("p5.48xlarge", "NVIDIA H100", 8),
    ("p5e.48xlarge", "NVIDIA H200", 8),
    ("p5en.48xlarge", "NVIDIA H200", 8),
    ("p4d.24xlarge", "NVIDIA A100", 8),
    ("p4de.24xlarge", "NVIDIA A100", 8),
    ("p3.2xlarge", "NVIDIA V100", 1),
    ("p3.8xlarge", "NVIDIA V100", 4),
    ("p3.16xlarge", "NVIDIA V100", 8),
    ("p3dn.24xlarge", "NVIDIA V100", 8),
    ("g5.xlarge", "NVIDIA A10G", 1),
    ("g5.2xlarge", "NVIDIA A10G", 1),
    ("g5.4xlarge", "NVIDIA A10G", 1),
    ("g5.8xlarge", "NVIDIA A10G", 1),
    ("g5.16xlarge", "NVIDIA A10G", 1),
    ("g5.12xlarge", "NVIDIA A10G", 4),
    ("g5.24xlarge", "NVIDIA A10G", 4),
    ("g5.48xlarge", "NVIDIA A10G", 8),
    ("g6.xlarge", "NVIDIA L4", 1),
    ("g6.2xlarge", "NVIDIA L4", 1),
    ("g6.4xlarge", "NVIDIA L4", 1),
    ("g6.8xlarge", "NVIDIA L4", 1),
    ("g6.16xlarge", "NVIDIA L4", 1),
    ("g6.12xlarge", "NVIDIA L4", 4),
    ("g6.24xlarge", "NVIDIA L4", 4),
    ("g6.48xlarge", "NVIDIA L4", 8),
    ("g6e.xlarge", "NVIDIA L40S", 1),
    ("g6e.2xlarge", "NVIDIA L40S", 1),
    ("g6e.4xlarge", "NVIDIA L40S", 1),
    ("g6e.8xlarge", "NVIDIA L40S", 1),
    ("g6e.16xlarge", "NVIDIA L40S", 1),
    ("g6e.12xlarge", "NVIDIA L40S", 4),
    ("g6e.24xlarge", "NVIDIA L40S", 4),
    ("g6e.48xlarge", "NVIDIA L40S", 8),
    ("g4dn.xlarge", "NVIDIA T4", 1),
    ("g4dn.2xlarge", "NVIDIA T4", 1),
    ("g4dn.4xlarge", "NVIDIA T4", 1),
    ("g4dn.8xlarge", "NVIDIA T4", 1),
    ("g4dn.16xlarge", "NVIDIA T4", 1),
    ("g4dn.12xlarge", "NVIDIA T4", 4),
    ("g4dn.metal", "NVIDIA T4", 8),
    // GCP
    ("a3-highgpu-8g", "NVIDIA H100", 8),
    ("a3-megagpu-8g", "NVIDIA H100", 8),
    ("a3-ultragpu-8g", "NVIDIA H200", 8),
    ("a2-highgpu-1g", "NVIDIA A100", 1),
    ("a2-highgpu-2g", "NVIDIA A100", 2),
    ("a2-highgpu-4g", "NVIDIA A100", 4),
    ("a2-highgpu-8g", "NVIDIA A100", 8),
    ("a2-megagpu-16g", "NVIDIA A100", 16),
    ("a2-ultragpu-1g", "NVIDIA A100", 1),
    ("a2-ultragpu-2g", "NVIDIA A100", 2),
    ("a2-ultragpu-4g", "NVIDIA A100", 4),
    ("a2-ultragpu-8g", "NVIDIA A100", 8),
    ("g2-standard-4", "NVIDIA L4", 1),
    ("g2-standard-8", "NVIDIA L4", 1),
    ("g2-standard-12", "NVIDIA L4", 1),
    ("g2-standard-16", "NVIDIA L4", 1),
    ("g2-standard-32", "NVIDIA L4", 1),
    ("g2-standard-24", "NVIDIA L4", 2),
    ("g2-standard-48", "NVIDIA L4", 4),
    ("g2-standard-96", "NVIDIA L4", 8),
    // Azure
    ("Standard_ND96isr_H100_v5", "NVIDIA H100", 8),
    ("Standard_ND96isr_H200_v5", "NVIDIA H200", 8),
    ("Standard_NC40ads_H100_v5", "NVIDIA H100", 1),
    ("Standard_NC80adis_H100_v5", "NVIDIA H100", 2),
    ("Standard_ND96asr_v4", "NVIDIA A100", 8),
    ("Standard_ND96amsr_A100_v4", "NVIDIA A100", 8),
    ("Standard_NC24ads_A100_v4", "NVIDIA A100", 1),
    ("Standard_NC48ads_A100_v4", "NVIDIA A100", 2),
    ("Standard_NC96ads_A100_v4", "NVIDIA A100", 4),
    ("Standard_NC4as_T4_v3", "NVIDIA T4", 1),
    ("Standard_NC8as_T4_v3", "NVIDIA T4", 1),
    ("Standard_NC16as_T4_v3", "NVIDIA T4", 1),
    ("Standard_NC64as_T4_v3", "NVIDIA T4", 4),
];

/// The GPU family and count of a GPU instance type, matched case-insensitively.
pub fn gpu_instance_type(name: &str) -> Option<(&'static str, u32)> {
    GPU_INSTANCE_TYPES
        .iter()
        .find(|(t, _, _)| t.eq_ignore_ascii_case(name))
        .map(|(_, g, n)| (*g, *n))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeUnit {
    /// Hours per unit of quantity.
    hours: f64,
    /// The unit counts GPUs (`GPU-Hours`).
    per_gpu: bool,
}

/// `Hrs`, `hour`, `1 Hour`, `100 Hours`, `GPU-Hours`, `Seconds`, `minutes` → hours per unit.
fn time_unit(unit: &str) -> Option<TimeUnit> {
    let u = unit.trim().to_ascii_lowercase();
    let digits_end = u
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(u.len());
    let multiplier = if digits_end > 0 {
        u[..digits_end].parse::<f64>().ok()?
    } else {
        1.0
    };
    let words: Vec<&str> = u[digits_end..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let per_gpu = words.iter().any(|w| w.starts_with("gpu"));
    let hours = words.iter().find_map(|w| match *w {
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(1.0),
        "min" | "mins" | "minute" | "minutes" => Some(1.0 / 60.0),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0 / 3600.0),
        w if w.ends_with("hours") || w.ends_with("hour") || w.ends_with("hrs") => Some(1.0),
        _ => None,
    })?;
    Some(TimeUnit {
        hours: hours * multiplier,
        per_gpu,
    })
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

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn crlf_files_with_a_quoted_last_field_and_blank_lines_read_cleanly() {
        let csv = "ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency,Tags\r\n\
                   2025-04-01,2025-04-02,1,1,USD,\"{\"\"team\"\":\"\"a\"\"}\"\r\n\
                   \r\n\
                   2025-04-01,2025-04-02,x,1,USD,{}\r\n\
                   \r\n";
        let reader = FocusReader::new("crlf.csv", csv.as_bytes(), "team");
        let Ok(reader) = reader else {
            panic!("header refused")
        };
        let records: Vec<_> = reader.filter_map(Result::ok).collect();
        assert_eq!(records.len(), 2, "{records:?}");
        match &records[0] {
            FocusRecord::Line { line, location } => {
                assert_eq!(location, "crlf.csv:2");
                assert_eq!(line.team.as_deref(), Some("a"));
            }
            other => panic!("{other:?}"),
        }
        match &records[1] {
            FocusRecord::Skipped(s) => assert_eq!(s.location, "crlf.csv:4"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn time_units_of_the_clouds_read_as_hours() {
        let h = |u: &str| time_unit(u).map(|t| (t.hours, t.per_gpu));
        assert_eq!(h("Hrs"), Some((1.0, false)));
        assert_eq!(h("hour"), Some((1.0, false)));
        assert_eq!(h("1 Hour"), Some((1.0, false)));
        assert_eq!(h("100 Hours"), Some((100.0, false)));
        assert_eq!(h("GPU-Hours"), Some((1.0, true)));
        assert_eq!(h("Seconds"), Some((1.0 / 3600.0, false)));
        assert_eq!(h("GB-Mo"), None);
        assert_eq!(h("Requests"), None);
    }

    #[test]
    fn gpu_rows_are_recognised_by_instance_type_family_or_the_word_gpu() {
        assert_eq!(
            gpu_in("USE1-BoxUsage:p5.48xlarge"),
            Some(GpuMatch {
                gpu_type: "NVIDIA H100",
                gpus_per_unit: Some(8)
            })
        );
        assert_eq!(
            gpu_in("{\"InstanceType\":\"a2-highgpu-4g\"}").map(|g| g.gpus_per_unit),
            Some(Some(4))
        );
        assert_eq!(
            gpu_in("Nvidia Tesla A100 GPU running in Americas"),
            Some(GpuMatch {
                gpu_type: "NVIDIA A100",
                gpus_per_unit: None
            })
        );
        assert_eq!(
            gpu_in("GPU Instance").map(|g| g.gpu_type),
            Some("unknown GPU")
        );
        assert_eq!(gpu_in("m6i.4xlarge"), None);
        assert_eq!(gpu_in("Virtual Machine"), None);
    }

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

    #[test]
    fn opencost_urls_keep_a_path_prefix() {
        let c = OpenCostClient::new(
            "http://localhost:8001/api/v1/namespaces/opencost/services/opencost:9003/proxy",
        );
        let url = c.map(|c| {
            c.allocation_url(&AllocationRequest {
                window: "7d".into(),
                aggregate: vec!["namespace".into(), "label:team".into()],
                accumulate: true,
                step: None,
                include_idle: false,
            })
            .to_string()
        });
        assert_eq!(
            url.ok().as_deref(),
            Some(
                "http://localhost:8001/api/v1/namespaces/opencost/services/opencost:9003/proxy/allocation?window=7d&aggregate=namespace%2Clabel%3Ateam&accumulate=true"
            )
        );
        assert!(OpenCostClient::new("localhost:9003").is_err());
    }

    #[test]
    fn opencost_errors_carry_status_code_and_message() {
        let body = br#"{"code":400,"message":"invalid `window` value \"x\": expected a duration"}"#;
        let err = parse_allocation_response("http://oc/allocation", 400, body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("HTTP 400 (code 400)"), "{err}");
        assert!(err.contains("`window`"), "{err}");
        let err = parse_allocation_response("u", 502, b"<html>Bad Gateway</html>")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("HTTP 502") && err.contains("Bad Gateway"),
            "{err}"
        );
        let err = parse_allocation_response("u", 200, br#"{"code":500,"message":"boom"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("code 500") && err.contains("boom"), "{err}");
        let err = parse_allocation_response("u", 200, br#"{"code":200,"data":{"a":1}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not an array"), "{err}");
    }

    #[test]
    fn allocation_names_give_the_properties_when_properties_are_missing() {
        let agg = opencost_aggregate("team");
        let ctx = AllocationContext {
            aggregate: &agg,
            team_label: "team",
            nodes: &[],
            currency: "USD",
        };
        let v = serde_json::json!({
            "start": "2025-04-01T00:00:00Z", "end": "2025-04-02T00:00:00Z",
            "totalCost": 12.5, "gpuHours": 2.0, "gpuCost": 10.0
        });
        let l = allocation_line("c1/node-a/ml/__unallocated__", &v, &ctx);
        let Ok(l) = l else { panic!("{l:?}") };
        assert_eq!(l.cluster.as_deref(), Some("c1"));
        assert_eq!(l.node.as_deref(), Some("node-a"));
        assert_eq!(l.namespace.as_deref(), Some("ml"));
        assert_eq!(l.team, None);
        assert_eq!(l.effective_cost, 12.5);
        let idle = allocation_line("c1/__idle__", &v, &ctx);
        assert!(
            idle.is_ok_and(|l| l.idle
                && l.namespace.is_none()
                && l.cluster.as_deref() == Some("c1")),
            "a cluster's idle capacity is that cluster's"
        );
        let no_time = allocation_line("x", &serde_json::json!({"totalCost": 1.0}), &ctx);
        assert!(no_time.is_err_and(|e| e.contains("start")));
    }
}
