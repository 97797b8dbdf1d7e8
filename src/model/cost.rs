//! Cost: spend lines from OpenCost allocations and FOCUS bills, and the report derived from them
//! (spend by cluster / namespace / team / service, GPU-hours and cost per GPU-hour, idle-GPU
//! cost, spot savings, budget burn; the month-end forecast is made from the burn's daily spend
//! by `signals::budget`, a stage every face's cost rounds pass through). Plain data plus the
//! arithmetic that folds lines:
//! [`CostReportBuilder`] folds lines one at a time, so a report never holds the lines it was
//! built from. Imports only the rest of `model`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::CapacityType;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostSourceKind {
    #[serde(rename = "opencost")]
    OpenCost,
    Focus,
}

impl CostSourceKind {
    pub fn name(self) -> &'static str {
        match self {
            CostSourceKind::OpenCost => "opencost",
            CostSourceKind::Focus => "focus",
        }
    }
}

/// Where the cost source stands: its last round's outcome and when it last succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSourceStatus {
    /// The OpenCost base URL, or the FOCUS files' names.
    pub target: String,
    /// `None` when the last round succeeded.
    pub error: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
    /// How often rounds run: a report older than about twice this is stale.
    #[serde(with = "crate::model::duration_serde")]
    pub interval: std::time::Duration,
}

impl CostSourceStatus {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the report in hand is older than two rounds at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let limit = Duration::from_std(self.interval * 2).unwrap_or(Duration::MAX);
        self.last_success.is_none_or(|at| now - at > limit)
    }
}

/// One round of the cost source: the report joined with the fleet, or why there is none
/// (then the last good report stays, marked stale by its status).
#[derive(Debug, Clone)]
pub struct CostUpdate {
    pub status: CostSourceStatus,
    pub report: Option<CostReport>,
}

/// FOCUS `PricingCategory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PricingCategory {
    /// List (on-demand) rates.
    Standard,
    /// Prices that float with supply, such as spot instances.
    Dynamic,
    /// Covered by a commitment (reservation, savings plan, CUD).
    Committed,
    Other(String),
}

impl PricingCategory {
    /// Reads FOCUS 1.0–1.2 values, and the 1.0-preview names `On-Demand` and `Commitment-Based`.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        Some(match v.to_ascii_lowercase().as_str() {
            "standard" | "on-demand" | "ondemand" => PricingCategory::Standard,
            "dynamic" => PricingCategory::Dynamic,
            "committed" | "commitment-based" => PricingCategory::Committed,
            _ => PricingCategory::Other(v.to_string()),
        })
    }
}

/// CPU, GPU and RAM quantities and their costs, as OpenCost splits an allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    pub cpu_core_hours: f64,
    pub cpu_cost: f64,
    pub gpu_hours: f64,
    pub gpu_cost: f64,
    pub ram_gib_hours: f64,
    pub ram_cost: f64,
}

impl ResourceUsage {
    fn add(&mut self, o: &ResourceUsage) {
        self.cpu_core_hours += o.cpu_core_hours;
        self.cpu_cost += o.cpu_cost;
        self.gpu_hours += o.gpu_hours;
        self.gpu_cost += o.gpu_cost;
        self.ram_gib_hours += o.ram_gib_hours;
        self.ram_cost += o.ram_cost;
    }

    fn cost(&self) -> f64 {
        self.cpu_cost + self.gpu_cost + self.ram_cost
    }
}

/// One priced line: an OpenCost allocation or one FOCUS row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub source: CostSourceKind,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub billed_cost: f64,
    pub effective_cost: f64,
    /// On-demand (list) price of the same usage; FOCUS `ListCost`, absent for OpenCost.
    pub list_cost: Option<f64>,
    pub currency: String,
    pub pricing_category: Option<PricingCategory>,
    /// FOCUS `ChargeCategory`: Usage, Purchase, Tax, Credit, Adjustment.
    pub charge_category: Option<String>,
    pub service: Option<String>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub sku: Option<String>,
    pub region: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub team: Option<String>,
    pub node: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_hours: f64,
    /// The part of the cost that pays for GPUs: OpenCost's `gpuCost`; for a FOCUS row that
    /// names a GPU, its whole effective cost (a GPU instance is bought for its GPUs).
    pub gpu_cost: f64,
    /// OpenCost's split, when the line has one.
    pub usage: Option<ResourceUsage>,
    /// Capacity no workload requested (OpenCost `__idle__`).
    pub idle: bool,
    pub tags: BTreeMap<String, String>,
}

impl CostLine {
    /// A line with the mandatory fields and everything else empty.
    pub fn new(
        source: CostSourceKind,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        cost: f64,
        currency: impl Into<String>,
    ) -> Self {
        CostLine {
            source,
            period_start,
            period_end,
            billed_cost: cost,
            effective_cost: cost,
            list_cost: None,
            currency: currency.into(),
            pricing_category: None,
            charge_category: None,
            service: None,
            resource_id: None,
            resource_type: None,
            sku: None,
            region: None,
            cluster: None,
            namespace: None,
            team: None,
            node: None,
            gpu_type: None,
            gpu_hours: 0.0,
            gpu_cost: 0.0,
            usage: None,
            idle: false,
            tags: BTreeMap::new(),
        }
    }
}

/// What the report knows about a node: from the Kubernetes source (see
/// [`NodeCostInfo::from_node`]) or given by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCostInfo {
    pub cluster: Option<String>,
    pub node: String,
    pub capacity_type: CapacityType,
    pub instance_type: Option<String>,
    pub gpu_type: Option<String>,
}

impl NodeCostInfo {
    pub fn from_node(cluster: &str, node: &super::NodeModel) -> Self {
        NodeCostInfo {
            cluster: Some(cluster.to_string()),
            node: node.name.clone(),
            capacity_type: node.capacity_type,
            instance_type: node.instance_type.clone(),
            gpu_type: node.gpu_product.clone(),
        }
    }

    /// Every node of every cluster in a snapshot.
    pub fn from_snapshot(s: &super::Snapshot) -> Vec<Self> {
        s.clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(|n| NodeCostInfo::from_node(&c.name, n)))
            .collect()
    }
}

/// Utilisation of one GPU over the report's window, e.g. the mean of `DCGM_FI_DEV_GPU_UTIL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUtilisation {
    pub cluster: Option<String>,
    pub node: String,
    /// Index or UUID.
    pub gpu: String,
    pub utilisation_pct: f64,
}

/// The dimension the table leads with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CostGroupBy {
    #[default]
    Namespace,
    Team,
    Service,
}

impl std::str::FromStr for CostGroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "namespace" => Ok(CostGroupBy::Namespace),
            "team" => Ok(CostGroupBy::Team),
            "service" => Ok(CostGroupBy::Service),
            _ => Err(format!(
                "unknown grouping {s:?}: use namespace, team or service"
            )),
        }
    }
}

/// Spend of one group (a cluster, namespace, team or service).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendGroup {
    pub key: String,
    pub effective_cost: f64,
    pub billed_cost: f64,
    pub gpu_hours: f64,
    /// Share of the total effective cost.
    pub share_pct: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTotals {
    pub billed_cost: f64,
    pub effective_cost: f64,
    /// Sum of `ListCost` where the line has one.
    pub list_cost: f64,
    pub lines: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuTypeCost {
    pub gpu_type: String,
    pub gpu_hours: f64,
    pub gpu_cost: f64,
    /// Cost of the lines with GPU-hours over those hours; absent when no line had hours.
    pub cost_per_gpu_hour: Option<f64>,
    /// GPU cost of lines whose GPU-hours could not be read (left out of the rate).
    pub cost_without_gpu_hours: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleGpuCost {
    pub utilisation_threshold_pct: f64,
    /// Allocated GPUs under the threshold; absent when no utilisation was given.
    pub underutilised_cost: Option<f64>,
    /// GPU capacity no workload requested (OpenCost `__idle__`).
    pub unallocated_cost: f64,
    pub unallocated_gpu_hours: f64,
    pub method: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpotSavings {
    pub total: f64,
    /// FOCUS rows with `PricingCategory = Dynamic` and a `ListCost`.
    pub focus_rows: u64,
    pub focus_savings: f64,
    /// Dynamic rows without a `ListCost`: their savings are unknown.
    pub focus_rows_without_list_cost: u64,
    pub opencost_spot_nodes: u64,
    pub opencost_savings: f64,
    /// Spot nodes with no on-demand node of the same instance or GPU type to price against.
    pub opencost_unpriced_nodes: Vec<String>,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailySpend {
    pub date: NaiveDate,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetBurn {
    /// `YYYY-MM`.
    pub month: String,
    pub basis: CostSourceKind,
    pub monthly_budget: f64,
    pub month_to_date: f64,
    pub burn_pct: f64,
    pub month_elapsed_pct: f64,
    /// The instant the month's spend is read up to: the forecast extends from here.
    pub as_of: DateTime<Utc>,
    /// The month-end forecast, made by the budget stage (`signals::budget::forecast_budget`);
    /// `None` in a report that has not passed through it, which every face shows as such.
    #[serde(flatten, default)]
    pub forecast: Option<BudgetForecast>,
    pub daily: Vec<DailySpend>,
}

/// The month-end forecast of a budget and the words that say how it was made (its JSON field
/// names are the report's own: `forecast_month_end`, `forecast_pct`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetForecast {
    #[serde(rename = "forecast_month_end")]
    pub month_end: f64,
    #[serde(rename = "forecast_pct")]
    pub pct: f64,
    #[serde(rename = "forecast_over_budget")]
    pub over_budget: bool,
    pub method: String,
}

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRow {
    /// `file:line`, or `opencost <url> allocation <name>`.
    pub location: String,
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// Rows read from every source. `read == used + outside_window + skipped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowAccounting {
    pub read: u64,
    pub used: u64,
    pub outside_window: u64,
    pub skipped: u64,
    /// The first [`MAX_LISTED_SKIPS`] skipped rows; the rest are counted only.
    pub skipped_rows: Vec<SkippedRow>,
    pub skipped_not_listed: u64,
}

/// Skipped rows listed one by one in a report; a badly broken file must not make the report
/// as large as the file.
pub const MAX_LISTED_SKIPS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub kind: CostSourceKind,
    /// A file path or URL.
    pub location: String,
    pub rows: RowAccounting,
    pub effective_cost: f64,
}

/// The report `fleetdeck cost` prints and the Cost pane shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub generated_at: DateTime<Utc>,
    /// The window FOCUS rows were cut to and OpenCost was asked for; absent: all rows.
    pub window: Option<ReportWindow>,
    pub currency: String,
    pub group_by: CostGroupBy,
    pub totals: CostTotals,
    pub by_cluster: Vec<SpendGroup>,
    pub by_namespace: Vec<SpendGroup>,
    pub by_team: Vec<SpendGroup>,
    pub by_service: Vec<SpendGroup>,
    pub gpu_by_type: Vec<GpuTypeCost>,
    pub idle_gpu: IdleGpuCost,
    pub spot: SpotSavings,
    pub budget: Option<BudgetBurn>,
    pub rows: RowAccounting,
    pub sources: Vec<SourceSummary>,
    pub notes: Vec<String>,
}

impl CostReport {
    /// The groups the table leads with.
    pub fn primary_groups(&self) -> &[SpendGroup] {
        match self.group_by {
            CostGroupBy::Namespace => &self.by_namespace,
            CostGroupBy::Team => &self.by_team,
            CostGroupBy::Service => &self.by_service,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportWindow {
    /// As given, e.g. `7d`.
    pub spec: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the builder needs to know before the first line.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub group_by: CostGroupBy,
    /// FOCUS lines are cut to this window (prorated by time); OpenCost lines were asked for it.
    pub window: Option<ReportWindow>,
    pub monthly_budget: Option<f64>,
    /// The month the budget is for is the one holding this instant; absent: the month of the
    /// latest charge period seen.
    pub as_of: Option<DateTime<Utc>>,
    pub nodes: Vec<NodeCostInfo>,
    pub gpu_utilisation: Option<Vec<GpuUtilisation>>,
    pub idle_gpu_threshold_pct: f64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            group_by: CostGroupBy::default(),
            window: None,
            monthly_budget: None,
            as_of: None,
            nodes: Vec::new(),
            gpu_utilisation: None,
            idle_gpu_threshold_pct: DEFAULT_IDLE_GPU_THRESHOLD_PCT,
        }
    }
}

/// A GPU busy less than this share of the time is idle for cost purposes.
pub const DEFAULT_IDLE_GPU_THRESHOLD_PCT: f64 = 10.0;

/// A strftime format for FOCUS exports whose dates are not ISO 8601 (the specification's own
/// sample files write `4/1/25`): `%m/%d/%y`, `%d.%m.%Y %H:%M`, … A format with a time reads
/// date-times (in UTC unless it has `%z`); one without reads days, from their midnight UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat(String);

impl DateFormat {
    /// Checks the format: it must name a day, a month and a year, and chrono must know every
    /// specifier in it.
    pub fn parse(format: &str) -> Result<Self, String> {
        use chrono::format::{Item, StrftimeItems};
        if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
            return Err(format!(
                "{format:?} is not a strftime format (e.g. %m/%d/%y, %d.%m.%Y %H:%M)"
            ));
        }
        let has = |specs: &[&str]| specs.iter().any(|s| format.contains(s));
        let whole_date = has(&["%F", "%D", "%x", "%c", "%s"]);
        let parts =
            has(&["%d", "%e", "%j"]) && has(&["%m", "%b", "%B", "%j"]) && has(&["%y", "%Y"]);
        if !(whole_date || parts) {
            return Err(format!(
                "{format:?} does not name a day, a month and a year (e.g. %m/%d/%y)"
            ));
        }
        Ok(Self(format.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant `value` names in this format.
    pub fn read(&self, value: &str) -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_str(value, &self.0) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, &self.0) {
            return Some(Utc.from_utc_datetime(&t));
        }
        NaiveDate::parse_from_str(value, &self.0)
            .ok()
            .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
    }
}

/// Where a line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Counted,
    OutsideWindow,
}

#[derive(Debug, Default)]
struct GroupAcc {
    effective: f64,
    billed: f64,
    gpu_hours: f64,
}

#[derive(Debug, Default)]
struct GpuAcc {
    hours: f64,
    cost_with_hours: f64,
    cost_without_hours: f64,
}

type NodeKey = (Option<String>, String);

/// Folds cost lines into a [`CostReport`]; memory grows with the number of distinct groups,
/// nodes and days, never with the number of lines.
#[derive(Debug)]
pub struct CostReportBuilder {
    settings: ReportSettings,
    currency: Option<String>,
    totals: CostTotals,
    by_cluster: HashMap<String, GroupAcc>,
    by_namespace: HashMap<String, GroupAcc>,
    by_team: HashMap<String, GroupAcc>,
    by_service: HashMap<String, GroupAcc>,
    gpu: HashMap<String, GpuAcc>,
    unallocated_gpu_cost: f64,
    unallocated_gpu_hours: f64,
    /// OpenCost usage per node, for spot savings and idle GPUs.
    node_usage: HashMap<NodeKey, ResourceUsage>,
    spot: SpotSavings,
    daily: BTreeMap<(CostSourceKind, NaiveDate), f64>,
    latest_end: BTreeMap<CostSourceKind, DateTime<Utc>>,
    rows: RowAccounting,
    sources: Vec<SourceSummary>,
    notes: Vec<String>,
}

const UNATTRIBUTED: &str = "(unattributed)";
/// Where OpenCost's `__idle__` (capacity no pod requested) is shown when it names no
/// cluster: it is spend, but of no cluster, namespace or team.
const IDLE_GROUP: &str = "unallocated";

impl CostReportBuilder {
    pub fn new(settings: ReportSettings) -> Self {
        CostReportBuilder {
            settings,
            currency: None,
            totals: CostTotals::default(),
            by_cluster: HashMap::new(),
            by_namespace: HashMap::new(),
            by_team: HashMap::new(),
            by_service: HashMap::new(),
            gpu: HashMap::new(),
            unallocated_gpu_cost: 0.0,
            unallocated_gpu_hours: 0.0,
            node_usage: HashMap::new(),
            spot: SpotSavings::default(),
            daily: BTreeMap::new(),
            latest_end: BTreeMap::new(),
            rows: RowAccounting::default(),
            sources: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Fixes the report's currency before any line arrives (OpenCost prices carry none).
    pub fn set_currency(&mut self, currency: &str) {
        if self.currency.is_none() {
            self.currency = Some(currency.to_string());
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Starts counting rows for a new source; lines and skips until the next call belong to it.
    pub fn begin_source(&mut self, kind: CostSourceKind, location: impl Into<String>) {
        self.sources.push(SourceSummary {
            kind,
            location: location.into(),
            rows: RowAccounting::default(),
            effective_cost: 0.0,
        });
    }

    fn source_rows(&mut self) -> Option<&mut SourceSummary> {
        self.sources.last_mut()
    }

    /// Records a row that could not be read.
    pub fn skip(&mut self, row: SkippedRow) {
        for rows in [
            Some(&mut self.rows),
            self.sources.last_mut().map(|s| &mut s.rows),
        ]
        .into_iter()
        .flatten()
        {
            rows.read += 1;
            rows.skipped += 1;
            if rows.skipped_rows.len() < MAX_LISTED_SKIPS {
                rows.skipped_rows.push(row.clone());
            } else {
                rows.skipped_not_listed += 1;
            }
        }
    }

    /// Adds one line. FOCUS lines are cut to the window (prorated by the share of their charge
    /// period inside it) and feed the daily series for the budget; OpenCost lines are taken as
    /// the window's. A line in another currency than the report's is refused with the reason.
    pub fn add_line(&mut self, line: &CostLine) -> Result<LineOutcome, String> {
        let currency = self
            .currency
            .get_or_insert_with(|| line.currency.clone())
            .clone();
        if !line.currency.eq_ignore_ascii_case(&currency) {
            return Err(format!(
                "currency {} differs from the report's {currency}; one report sums one currency",
                line.currency
            ));
        }
        if line.source == CostSourceKind::Focus {
            self.add_daily(line);
        }
        let factor = match (&self.settings.window, line.source) {
            (Some(w), CostSourceKind::Focus) => overlap_fraction(line, w.start, w.end),
            _ => 1.0,
        };
        for rows in [
            Some(&mut self.rows),
            self.sources.last_mut().map(|s| &mut s.rows),
        ]
        .into_iter()
        .flatten()
        {
            rows.read += 1;
            if factor > 0.0 {
                rows.used += 1;
            } else {
                rows.outside_window += 1;
            }
        }
        if factor <= 0.0 {
            return Ok(LineOutcome::OutsideWindow);
        }
        let effective = line.effective_cost * factor;
        let billed = line.billed_cost * factor;
        let gpu_hours = line.gpu_hours * factor;
        let gpu_cost = line.gpu_cost * factor;

        self.totals.lines += 1;
        self.totals.effective_cost += effective;
        self.totals.billed_cost += billed;
        if let Some(l) = line.list_cost {
            self.totals.list_cost += l * factor;
        }
        if let Some(s) = self.source_rows() {
            s.effective_cost += effective;
        }

        let idle_key = line.idle.then(|| IDLE_GROUP.to_string());
        let groups = [
            (
                &mut self.by_cluster,
                line.cluster.clone().or_else(|| idle_key.clone()),
            ),
            (
                &mut self.by_namespace,
                idle_key.clone().or_else(|| line.namespace.clone()),
            ),
            (&mut self.by_team, idle_key.or_else(|| line.team.clone())),
            (&mut self.by_service, line.service.clone()),
        ];
        for (map, key) in groups {
            let g = map
                .entry(key.unwrap_or_else(|| UNATTRIBUTED.to_string()))
                .or_default();
            g.effective += effective;
            g.billed += billed;
            g.gpu_hours += gpu_hours;
        }

        if line.idle {
            self.unallocated_gpu_cost += gpu_cost;
            self.unallocated_gpu_hours += gpu_hours;
        } else if gpu_cost != 0.0 || gpu_hours > 0.0 {
            let gpu_type = line
                .gpu_type
                .clone()
                .or_else(|| self.node_info(line).and_then(|n| n.gpu_type.clone()))
                .map(|t| canonical_gpu_type(&t))
                .unwrap_or_else(|| "unknown".to_string());
            let g = self.gpu.entry(gpu_type).or_default();
            if gpu_hours > 0.0 {
                g.hours += gpu_hours;
                g.cost_with_hours += gpu_cost;
            } else {
                g.cost_without_hours += gpu_cost;
            }
        }

        if let (CostSourceKind::OpenCost, false, Some(node), Some(usage)) =
            (line.source, line.idle, &line.node, &line.usage)
        {
            self.node_usage
                .entry((line.cluster.clone(), node.clone()))
                .or_default()
                .add(usage);
        }

        if line.pricing_category == Some(PricingCategory::Dynamic)
            && line.source == CostSourceKind::Focus
        {
            match line.list_cost {
                Some(list) => {
                    self.spot.focus_rows += 1;
                    self.spot.focus_savings += (list - line.effective_cost) * factor;
                }
                None => self.spot.focus_rows_without_list_cost += 1,
            }
        }
        Ok(LineOutcome::Counted)
    }

    /// Adds a line to the daily series only (OpenCost's month-to-date query).
    pub fn add_daily(&mut self, line: &CostLine) {
        let latest = self
            .latest_end
            .entry(line.source)
            .or_insert(line.period_end);
        *latest = (*latest).max(line.period_end);
        for (day, share) in split_by_day(line.period_start, line.period_end) {
            *self.daily.entry((line.source, day)).or_insert(0.0) += line.effective_cost * share;
        }
    }

    fn node_info(&self, line: &CostLine) -> Option<&NodeCostInfo> {
        let node = line.node.as_deref()?;
        find_node(&self.settings.nodes, line.cluster.as_deref(), node)
    }

    pub fn finish(mut self, generated_at: DateTime<Utc>) -> CostReport {
        let total = self.totals.effective_cost;
        let groups = |m: HashMap<String, GroupAcc>| -> Vec<SpendGroup> {
            let mut v: Vec<SpendGroup> = m
                .into_iter()
                .map(|(key, g)| SpendGroup {
                    key,
                    effective_cost: g.effective,
                    billed_cost: g.billed,
                    gpu_hours: g.gpu_hours,
                    share_pct: if total != 0.0 {
                        g.effective / total * 100.0
                    } else {
                        0.0
                    },
                })
                .collect();
            v.sort_by(|a, b| {
                b.effective_cost
                    .total_cmp(&a.effective_cost)
                    .then_with(|| a.key.cmp(&b.key))
            });
            v
        };
        let by_cluster = groups(std::mem::take(&mut self.by_cluster));
        let by_namespace = groups(std::mem::take(&mut self.by_namespace));
        let by_team = groups(std::mem::take(&mut self.by_team));
        let by_service = groups(std::mem::take(&mut self.by_service));

        let mut gpu_by_type: Vec<GpuTypeCost> = self
            .gpu
            .drain()
            .map(|(gpu_type, g)| GpuTypeCost {
                gpu_type,
                gpu_hours: g.hours,
                gpu_cost: g.cost_with_hours + g.cost_without_hours,
                cost_per_gpu_hour: (g.hours > 0.0).then(|| g.cost_with_hours / g.hours),
                cost_without_gpu_hours: g.cost_without_hours,
            })
            .collect();
        gpu_by_type.sort_by(|a, b| {
            b.gpu_cost
                .total_cmp(&a.gpu_cost)
                .then_with(|| a.gpu_type.cmp(&b.gpu_type))
        });

        let idle_gpu = self.idle_gpu();
        self.opencost_spot_savings();
        self.spot.total = self.spot.focus_savings + self.spot.opencost_savings;
        self.spot.method = "FOCUS: ListCost − EffectiveCost of rows with PricingCategory = \
                            Dynamic. OpenCost: each spot node's CPU-, GPU- and RAM-hours priced \
                            at the on-demand nodes' rates of the same instance type (else the \
                            same GPU type), minus what the spot node cost."
            .to_string();
        let budget = self.budget();
        CostReport {
            generated_at,
            window: self.settings.window.clone(),
            currency: self.currency.unwrap_or_else(|| "USD".to_string()),
            group_by: self.settings.group_by,
            totals: self.totals,
            by_cluster,
            by_namespace,
            by_team,
            by_service,
            gpu_by_type,
            idle_gpu,
            spot: self.spot,
            budget,
            rows: self.rows,
            sources: self.sources,
            notes: self.notes,
        }
    }

    fn idle_gpu(&self) -> IdleGpuCost {
        let threshold = self.settings.idle_gpu_threshold_pct;
        let underutilised_cost = self.settings.gpu_utilisation.as_ref().map(|utils| {
            // Per node: the share of its measured GPUs under the threshold, applied to the GPU
            // cost OpenCost allocated on it. Allocation is per pod, not per GPU, so a node's
            // GPUs are taken as equally priced.
            let mut per_node: HashMap<NodeKey, (u32, u32)> = HashMap::new();
            for u in utils {
                let e = per_node
                    .entry((u.cluster.clone(), u.node.clone()))
                    .or_default();
                e.0 += 1;
                if u.utilisation_pct < threshold {
                    e.1 += 1;
                }
            }
            self.node_usage
                .iter()
                .filter_map(|((cluster, node), usage)| {
                    let (measured, idle) = per_node
                        .get(&(cluster.clone(), node.clone()))
                        .or_else(|| per_node.get(&(None, node.clone())))?;
                    (*measured > 0)
                        .then(|| usage.gpu_cost * f64::from(*idle) / f64::from(*measured))
                })
                .sum::<f64>()
        });
        IdleGpuCost {
            utilisation_threshold_pct: threshold,
            underutilised_cost,
            unallocated_cost: self.unallocated_gpu_cost,
            unallocated_gpu_hours: self.unallocated_gpu_hours,
            method: format!(
                "unallocated: the GPU cost of OpenCost's __idle__ allocation (capacity no pod \
                 requested). Underutilised: per node, the share of its GPUs whose utilisation was \
                 under {threshold}% times the GPU cost allocated on that node{}.",
                if self.settings.gpu_utilisation.is_none() {
                    " (not computed: no GPU utilisation was given)"
                } else {
                    ""
                }
            ),
        }
    }

    fn opencost_spot_savings(&mut self) {
        let nodes = &self.settings.nodes;
        // On-demand reference rates per instance type and per GPU type.
        let mut by_instance: HashMap<String, ResourceUsage> = HashMap::new();
        let mut by_gpu: HashMap<String, ResourceUsage> = HashMap::new();
        let mut spot_nodes: Vec<(String, &NodeCostInfo, ResourceUsage)> = Vec::new();
        for ((cluster, node), usage) in &self.node_usage {
            let Some(info) = find_node(nodes, cluster.as_deref(), node) else {
                continue;
            };
            match info.capacity_type {
                CapacityType::OnDemand => {
                    if let Some(t) = &info.instance_type {
                        by_instance.entry(t.clone()).or_default().add(usage);
                    }
                    if let Some(g) = &info.gpu_type {
                        by_gpu.entry(canonical_gpu_type(g)).or_default().add(usage);
                    }
                }
                CapacityType::Spot => {
                    let name = match cluster {
                        Some(c) => format!("{c}/{node}"),
                        None => node.clone(),
                    };
                    spot_nodes.push((name, info, *usage));
                }
                CapacityType::Reserved => {}
            }
        }
        spot_nodes.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, info, usage) in spot_nodes {
            let reference = info
                .instance_type
                .as_ref()
                .and_then(|t| by_instance.get(t))
                .or_else(|| {
                    info.gpu_type
                        .as_ref()
                        .and_then(|g| by_gpu.get(&canonical_gpu_type(g)))
                        .filter(|_| usage.gpu_hours > 0.0)
                });
            let rate = |cost: f64, hours: f64| (hours > 0.0).then(|| cost / hours);
            let priced = reference.and_then(|r| {
                let gpu = if usage.gpu_hours > 0.0 {
                    rate(r.gpu_cost, r.gpu_hours)? * usage.gpu_hours
                } else {
                    0.0
                };
                let cpu = rate(r.cpu_cost, r.cpu_core_hours).unwrap_or(0.0) * usage.cpu_core_hours;
                let ram = rate(r.ram_cost, r.ram_gib_hours).unwrap_or(0.0) * usage.ram_gib_hours;
                Some(gpu + cpu + ram)
            });
            self.spot.opencost_spot_nodes += 1;
            match priced {
                Some(on_demand) => self.spot.opencost_savings += on_demand - usage.cost(),
                None => self.spot.opencost_unpriced_nodes.push(name),
            }
        }
    }

    fn budget(&self) -> Option<BudgetBurn> {
        let budget = self.settings.monthly_budget?;
        let basis = if self.daily.keys().any(|(k, _)| *k == CostSourceKind::Focus) {
            CostSourceKind::Focus
        } else {
            CostSourceKind::OpenCost
        };
        let as_of = self
            .settings
            .as_of
            .or_else(|| self.latest_end.get(&basis).copied())
            .unwrap_or_else(Utc::now);
        let month_start = first_of_month(as_of.date_naive());
        let next_month = first_of_next_month(month_start);
        let days_in_month = (next_month - month_start).num_days();
        let daily: Vec<DailySpend> = self
            .daily
            .range((basis, month_start)..(basis, next_month))
            .filter(|((_, d), _)| *d <= as_of.date_naive())
            .map(|((_, date), cost)| DailySpend {
                date: *date,
                cost: *cost,
            })
            .collect();
        let month_to_date: f64 = daily.iter().map(|d| d.cost).sum();
        let month_start_t = midnight(month_start);
        let elapsed_days = (as_of - month_start_t).num_seconds() as f64 / 86_400.0;
        Some(BudgetBurn {
            month: format!("{:04}-{:02}", month_start.year(), month_start.month()),
            basis,
            monthly_budget: budget,
            month_to_date,
            burn_pct: budget_pct(month_to_date, budget),
            month_elapsed_pct: elapsed_days / days_in_month as f64 * 100.0,
            as_of,
            forecast: None,
            daily,
        })
    }
}

/// `x` as a percentage of `budget` (0 for a zero budget).
pub fn budget_pct(x: f64, budget: f64) -> f64 {
    if budget > 0.0 {
        x / budget * 100.0
    } else {
        0.0
    }
}

fn find_node<'a>(
    nodes: &'a [NodeCostInfo],
    cluster: Option<&str>,
    node: &str,
) -> Option<&'a NodeCostInfo> {
    nodes
        .iter()
        .find(|n| n.node == node && n.cluster.as_deref() == cluster)
        .or_else(|| {
            nodes
                .iter()
                .find(|n| n.node == node && (n.cluster.is_none() || cluster.is_none()))
        })
}

/// Share of a line's charge period inside [start, end): 1 inside, 0 outside, the time share
/// across an edge. A zero-length period counts wholly where it starts.
fn overlap_fraction(line: &CostLine, start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let (s, e) = (line.period_start, line.period_end);
    if e <= s {
        return if s >= start && s < end { 1.0 } else { 0.0 };
    }
    let overlap = (e.min(end) - s.max(start)).num_milliseconds();
    if overlap <= 0 {
        0.0
    } else {
        overlap as f64 / (e - s).num_milliseconds() as f64
    }
}

/// The UTC days a period touches, with the share of the period in each. Periods longer than a
/// year are not split (they land on their first day).
fn split_by_day(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(NaiveDate, f64)> {
    let total = (end - start).num_milliseconds();
    if total <= 0 || total > 366 * 86_400_000 {
        return vec![(start.date_naive(), 1.0)];
    }
    let mut out = Vec::new();
    let mut day = start.date_naive();
    loop {
        let day_start = midnight(day).max(start);
        let day_end = midnight(day + Duration::days(1)).min(end);
        if day_start >= end {
            break;
        }
        let ms = (day_end - day_start).num_milliseconds();
        if ms > 0 {
            out.push((day, ms as f64 / total as f64));
        }
        day += Duration::days(1);
    }
    out
}

/// The start of `d`, UTC.
pub fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))
}

pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

pub fn first_of_next_month(month_start: NaiveDate) -> NaiveDate {
    let (y, m) = if month_start.month() == 12 {
        (month_start.year() + 1, 1)
    } else {
        (month_start.year(), month_start.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(month_start + Duration::days(31))
}

/// GPU families, longest first so that `L40S` wins over `L40` and `L4`.
const GPU_MODELS: &[(&str, &str)] = &[
    ("GB200", "NVIDIA GB200"),
    ("B200", "NVIDIA B200"),
    ("H200", "NVIDIA H200"),
    ("H100", "NVIDIA H100"),
    ("GH200", "NVIDIA GH200"),
    ("A100", "NVIDIA A100"),
    ("A10G", "NVIDIA A10G"),
    ("A10", "NVIDIA A10"),
    ("L40S", "NVIDIA L40S"),
    ("L40", "NVIDIA L40"),
    ("L4", "NVIDIA L4"),
    ("T4", "NVIDIA T4"),
    ("V100", "NVIDIA V100"),
    ("P100", "NVIDIA P100"),
    ("K80", "NVIDIA K80"),
    ("MI300X", "AMD MI300X"),
    ("MI250X", "AMD MI250X"),
    ("MI250", "AMD MI250"),
];

/// The GPU family a name mentions (`NVIDIA-H100-80GB-HBM3`, `Nvidia Tesla A100 GPU`,
/// `Standard_NC24ads_A100_v4` → `NVIDIA H100`, `NVIDIA A100`, `NVIDIA A100`), if any.
pub fn gpu_family(text: &str) -> Option<&'static str> {
    let upper = text.to_ascii_uppercase();
    let tokens: BTreeSet<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    GPU_MODELS
        .iter()
        .find(|(token, _)| tokens.contains(token))
        .map(|(_, family)| *family)
}

/// Groups GPU types by family so that the node label `NVIDIA-H100-80GB-HBM3` and the bill's
/// `H100` land together; names with no known family are kept as they are.
pub fn canonical_gpu_type(name: &str) -> String {
    gpu_family(name)
        .map(str::to_string)
        .unwrap_or_else(|| name.trim().to_string())
}

/// A FOCUS line of `cost` USD charged from `start` to `end` (RFC 3339), for tests.
#[cfg(test)]
pub(crate) fn focus_line(start: &str, end: &str, cost: f64) -> CostLine {
    use crate::model::utc as t;
    CostLine::new(CostSourceKind::Focus, t(start), t(end), cost, "USD")
}

/// Ten complete days of 100 USD a day (1–10 April 2025) against a budget of 2,000, as of the
/// 11th, for tests.
#[cfg(test)]
pub(crate) fn ten_days_at_100() -> CostReportBuilder {
    let mut b = CostReportBuilder::new(ReportSettings {
        monthly_budget: Some(2000.0),
        as_of: Some(crate::model::utc("2025-04-11T00:00:00Z")),
        ..ReportSettings::default()
    });
    for day in 1..=10 {
        let s = format!("2025-04-{day:02}T00:00:00Z");
        let e = format!("2025-04-{:02}T00:00:00Z", day + 1);
        if let Err(e) = b.add_line(&focus_line(&s, &e, 100.0)) {
            panic!("{e}");
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    // Named `t` where a test reads as a timeline of instants.
    use crate::model::utc as t;
    use focus_line as focus;

    #[test]
    fn gpu_families_are_found_in_labels_skus_and_instance_names() {
        assert_eq!(gpu_family("NVIDIA-H100-80GB-HBM3"), Some("NVIDIA H100"));
        assert_eq!(
            gpu_family("Nvidia Tesla A100 GPU running in Americas"),
            Some("NVIDIA A100")
        );
        assert_eq!(gpu_family("Standard_NC24ads_A100_v4"), Some("NVIDIA A100"));
        assert_eq!(gpu_family("Nvidia L4 GPU"), Some("NVIDIA L4"));
        assert_eq!(gpu_family("nvidia-l40s"), Some("NVIDIA L40S"));
        assert_eq!(gpu_family("m6i.4xlarge"), None);
        assert_eq!(canonical_gpu_type("Tesla T4"), "NVIDIA T4");
        assert_eq!(canonical_gpu_type(" Gaudi2 "), "Gaudi2");
    }

    #[test]
    fn focus_lines_across_the_window_edge_are_prorated() {
        let mut b = CostReportBuilder::new(ReportSettings {
            window: Some(ReportWindow {
                spec: "range".into(),
                start: t("2025-03-02T00:00:00Z"),
                end: t("2025-03-03T00:00:00Z"),
            }),
            ..ReportSettings::default()
        });
        let inside = b.add_line(&focus("2025-03-02T05:00:00Z", "2025-03-02T06:00:00Z", 10.0));
        let across = b.add_line(&focus("2025-03-01T12:00:00Z", "2025-03-02T12:00:00Z", 24.0));
        let outside = b.add_line(&focus("2025-03-05T00:00:00Z", "2025-03-05T01:00:00Z", 99.0));
        assert_eq!(inside, Ok(LineOutcome::Counted));
        assert_eq!(across, Ok(LineOutcome::Counted));
        assert_eq!(outside, Ok(LineOutcome::OutsideWindow));
        let r = b.finish(t("2025-03-05T00:00:00Z"));
        assert!(
            (r.totals.effective_cost - 22.0).abs() < 1e-9,
            "{}",
            r.totals.effective_cost
        );
        assert_eq!((r.rows.read, r.rows.used, r.rows.outside_window), (3, 2, 1));
    }

    #[test]
    fn a_line_in_another_currency_is_refused_with_the_reason() {
        let mut b = CostReportBuilder::new(ReportSettings::default());
        b.set_currency("USD");
        let mut eur = focus("2025-03-02T05:00:00Z", "2025-03-02T06:00:00Z", 1.0);
        eur.currency = "EUR".into();
        let err = b.add_line(&eur).err().unwrap_or_default();
        assert!(err.contains("EUR") && err.contains("USD"), "{err}");
    }

    #[test]
    fn the_budget_burn_reads_the_month_to_date_and_leaves_the_forecast_to_its_stage() {
        let budget = ten_days_at_100().finish(t("2025-04-11T00:00:00Z")).budget;
        let Some(budget) = budget else {
            panic!("no budget section")
        };
        assert_eq!(budget.month, "2025-04");
        assert!((budget.month_to_date - 1000.0).abs() < 1e-6);
        assert!((budget.burn_pct - 50.0).abs() < 1e-6);
        assert!((budget.month_elapsed_pct - 100.0 / 3.0).abs() < 1e-6);
        assert_eq!(budget.as_of, t("2025-04-11T00:00:00Z"));
        assert_eq!(budget.daily.len(), 10);
        assert_eq!(budget.forecast, None);
    }

    #[test]
    fn spot_savings_price_spot_nodes_at_on_demand_peers_rates() {
        let node = |name: &str, cap| NodeCostInfo {
            cluster: Some("c".into()),
            node: name.into(),
            capacity_type: cap,
            instance_type: Some("p5.48xlarge".into()),
            gpu_type: Some("NVIDIA-H100-80GB-HBM3".into()),
        };
        let mut b = CostReportBuilder::new(ReportSettings {
            nodes: vec![
                node("od", CapacityType::OnDemand),
                node("spot", CapacityType::Spot),
            ],
            gpu_utilisation: Some(vec![
                GpuUtilisation {
                    cluster: Some("c".into()),
                    node: "od".into(),
                    gpu: "0".into(),
                    utilisation_pct: 3.0,
                },
                GpuUtilisation {
                    cluster: Some("c".into()),
                    node: "od".into(),
                    gpu: "1".into(),
                    utilisation_pct: 80.0,
                },
            ]),
            ..ReportSettings::default()
        });
        let line = |n: &str, gpu_rate: f64| {
            let usage = ResourceUsage {
                gpu_hours: 10.0,
                gpu_cost: 10.0 * gpu_rate,
                ..ResourceUsage::default()
            };
            let mut l = CostLine::new(
                CostSourceKind::OpenCost,
                t("2025-04-01T00:00:00Z"),
                t("2025-04-02T00:00:00Z"),
                usage.cost(),
                "USD",
            );
            l.cluster = Some("c".into());
            l.node = Some(n.into());
            l.gpu_hours = usage.gpu_hours;
            l.gpu_cost = usage.gpu_cost;
            l.usage = Some(usage);
            l
        };
        b.add_line(&line("od", 10.0)).ok();
        b.add_line(&line("spot", 3.0)).ok();
        let r = b.finish(t("2025-04-02T00:00:00Z"));
        assert_eq!(r.spot.opencost_spot_nodes, 1);
        assert!(
            (r.spot.opencost_savings - 70.0).abs() < 1e-9,
            "{:?}",
            r.spot
        );
        assert_eq!(r.gpu_by_type.len(), 1);
        assert_eq!(r.gpu_by_type[0].gpu_type, "NVIDIA H100");
        assert_eq!(r.gpu_by_type[0].cost_per_gpu_hour, Some(6.5));
        // Half of the on-demand node's measured GPUs are under 10 %.
        assert_eq!(r.idle_gpu.underutilised_cost, Some(50.0));
    }

    #[test]
    fn skipped_rows_beyond_the_listing_cap_are_still_counted() {
        let mut b = CostReportBuilder::new(ReportSettings::default());
        b.begin_source(CostSourceKind::Focus, "f.csv");
        for i in 0..(MAX_LISTED_SKIPS + 5) {
            b.skip(SkippedRow {
                location: format!("f.csv:{}", i + 2),
                reason: "bad".into(),
            });
        }
        let r = b.finish(t("2025-04-02T00:00:00Z"));
        assert_eq!(r.rows.skipped, MAX_LISTED_SKIPS as u64 + 5);
        assert_eq!(r.rows.skipped_rows.len(), MAX_LISTED_SKIPS);
        assert_eq!(r.rows.skipped_not_listed, 5);
        assert_eq!(r.sources[0].rows.skipped, MAX_LISTED_SKIPS as u64 + 5);
    }
}
