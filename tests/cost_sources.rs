//! Cost sources: FOCUS files (hand-written for the spec, see fixtures/SOURCES.md), the real
//! OpenCost capture, and the sim's OpenCost over real HTTP.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use fleetdeck::model::CapacityType;
use fleetdeck::model::cost::{
    CostGroupBy, CostReport, CostReportBuilder, NodeCostInfo, ReportSettings, SpendGroup,
};
use fleetdeck::sources::cost::{
    AllocationContext, CostError, CostOptions, FocusReader, FocusRecord, allocation_line,
    build_report, parse_allocation_response, read_focus, read_focus_file,
};
use serde_json::Value;

use common::{Sim, fixture};

fn focus_fixture(name: &str) -> PathBuf {
    fixture(&format!("focus/{name}"))
}

fn report_of(files: &[&str]) -> CostReport {
    let mut b = CostReportBuilder::new(ReportSettings::default());
    for f in files {
        if let Err(e) = read_focus_file(&focus_fixture(f), "team", &mut b) {
            panic!("{f}: {e}");
        }
    }
    b.finish(Utc::now())
}

fn group<'a>(groups: &'a [SpendGroup], key: &str) -> &'a SpendGroup {
    groups
        .iter()
        .find(|g| g.key == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {groups:#?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn focus_1_0_export_gives_spend_by_team_namespace_cluster_and_service() {
    let r = report_of(&["focus-1.0-normal.csv"]);
    assert_eq!((r.rows.read, r.rows.used, r.rows.skipped), (10, 10, 0));
    assert_eq!(r.currency, "USD");
    assert!(close(r.totals.effective_cost, 5776.572), "{:?}", r.totals);
    assert!(close(r.totals.billed_cost, 5776.572));

    assert!(close(
        group(&r.by_team, "research").effective_cost,
        2.0 * 2359.68 + 371.62
    ));
    assert!(close(
        group(&r.by_team, "inference").effective_cost,
        275.27 + 262.16
    ));
    // Tax and credit carry no tags.
    assert!(close(
        group(&r.by_team, "(unattributed)").effective_cost,
        70.0
    ));
    // `namespace` (AWS) and `goog-k8s-namespace` (GKE) tags.
    assert!(close(
        group(&r.by_namespace, "training").effective_cost,
        2.0 * 2359.68 + 371.62
    ));
    assert!(close(
        group(&r.by_cluster, "gke-central").effective_cost,
        371.62
    ));
    assert!(close(
        group(&r.by_cluster, "aks-east").effective_cost,
        36.73
    ));
    assert!(close(
        group(&r.by_service, "Amazon Simple Storage Service").effective_cost,
        23.0
    ));
    let shares: f64 = r.by_team.iter().map(|g| g.share_pct).sum();
    assert!(close(shares, 100.0), "{shares}");
}

#[test]
fn focus_gpu_hours_come_from_instance_types_gpu_skus_and_vm_meters() {
    let r = report_of(&["focus-1.0-normal.csv"]);
    let gpu = |t: &str| {
        r.gpu_by_type
            .iter()
            .find(|g| g.gpu_type == t)
            .unwrap_or_else(|| panic!("no {t} in {:#?}", r.gpu_by_type))
    };
    // Two days of one p5.48xlarge (8 GPUs × 24 h) plus 48 GPU SKU hours on GCP.
    let h100 = gpu("NVIDIA H100");
    assert!(close(h100.gpu_hours, 2.0 * 192.0 + 48.0), "{h100:?}");
    assert!(close(h100.gpu_cost, 2.0 * 2359.68 + 371.62));
    // Two days of a spot p4d.24xlarge plus ten hours of a one-GPU Azure NC24ads A100 v4.
    let a100 = gpu("NVIDIA A100");
    assert!(close(a100.gpu_hours, 2.0 * 192.0 + 10.0), "{a100:?}");
    assert!(close(a100.gpu_cost, 275.27 + 262.16 + 36.73));
    let rate = a100.cost_per_gpu_hour.unwrap_or_default();
    assert!(close(rate, (275.27 + 262.16 + 36.73) / 394.0), "{rate}");
    assert_eq!(r.gpu_by_type.len(), 2, "m6i and S3 rows name no GPU");
}

#[test]
fn focus_spot_savings_are_list_minus_effective_of_dynamic_rows() {
    let r = report_of(&["focus-1.0-normal.csv"]);
    assert_eq!(r.spot.focus_rows, 2);
    assert!(close(
        r.spot.focus_savings,
        (786.48 - 275.27) + (786.48 - 262.16)
    ));
    assert!(close(r.spot.total, r.spot.focus_savings));
    assert_eq!(r.spot.opencost_spot_nodes, 0);
}

#[test]
fn reordered_columns_unknown_columns_and_quoted_newlines_are_read() {
    let path = focus_fixture("focus-1.2-reordered.csv");
    let reader = FocusReader::open(&path, "team").unwrap_or_else(|e| panic!("{e}"));
    let records: Vec<FocusRecord> = reader
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let lines: Vec<(&str, _)> = records
        .iter()
        .map(|r| match r {
            FocusRecord::Line { line, location } => (location.as_str(), line),
            FocusRecord::Skipped(s) => panic!("skipped {s}"),
        })
        .collect();
    assert_eq!(lines.len(), 3);
    // The first record spans lines 2–3 (a quoted line break).
    assert!(
        lines[0].0.ends_with("focus-1.2-reordered.csv:2"),
        "{}",
        lines[0].0
    );
    assert!(lines[1].0.ends_with(":4"), "{}", lines[1].0);
    let p5 = lines[0].1;
    assert_eq!(p5.team.as_deref(), Some("research, applied"));
    assert_eq!(
        p5.tags.get("cost-center").map(String::as_str),
        Some("R&D, ML")
    );
    assert_eq!(p5.effective_cost, 1180.0);
    assert_eq!(p5.list_cost, Some(1179.84));
    assert_eq!(p5.region.as_deref(), Some("us-east-1"));
    // SkuPriceDetails names the p5.48xlarge: 12 instance-hours × 8 GPUs.
    assert_eq!(p5.gpu_type.as_deref(), Some("NVIDIA H100"));
    assert_eq!(p5.gpu_hours, 96.0);
    // A zone-less date-time is UTC; a bare date is its midnight.
    let spot = lines[1].1;
    assert_eq!(spot.period_start.to_rfc3339(), "2025-05-03T00:00:00+00:00");
    assert_eq!(spot.gpu_hours, 48.0, "g6.12xlarge has 4 L4s");
    assert_eq!(
        lines[2].1.period_end.to_rfc3339(),
        "2025-05-04T00:00:00+00:00"
    );

    let r = report_of(&["focus-1.2-reordered.csv"]);
    assert!(close(r.totals.effective_cost, 1180.0 + 20.40 + 4.5));
    assert!(close(r.spot.focus_savings, 55.22 - 20.40));
}

#[test]
fn malformed_rows_are_counted_with_file_and_line_and_the_rest_is_read() {
    let r = report_of(&["focus-malformed.csv"]);
    assert_eq!(r.rows.read, 11);
    assert_eq!(r.rows.used, 3);
    assert_eq!(r.rows.skipped, 8);
    assert!(close(r.totals.effective_cost, 10.0 + 7.0 + 5.0));
    let found: BTreeMap<u64, &str> = r
        .rows
        .skipped_rows
        .iter()
        .map(|s| {
            let (file, line) = s.location.rsplit_once(':').unwrap_or_default();
            assert!(file.ends_with("focus-malformed.csv"), "{s}");
            (line.parse().unwrap_or_default(), s.reason.as_str())
        })
        .collect();
    let expect = [
        (3, "BilledCost \"1,234.50\" is not a number"),
        (4, "ChargePeriodStart \"04/01/2025\" is not a date-time"),
        (5, "4 fields, but the header has 10"),
        (8, "Tags is not valid JSON"),
        (9, "EffectiveCost is empty"),
        (11, "ChargePeriodEnd is before ChargePeriodStart"),
        (12, "currency EUR differs from the report's USD"),
        (13, "11 fields, but the header has 10"),
    ];
    for (line, reason) in expect {
        let got = found
            .get(&line)
            .unwrap_or_else(|| panic!("line {line} not skipped: {found:#?}"));
        assert!(got.contains(reason), "line {line}: {got}");
    }
    assert_eq!(found.len(), expect.len());
    assert_eq!(r.sources.len(), 1);
    assert_eq!(r.sources[0].rows.skipped, 8);
}

#[test]
fn a_missing_required_column_is_an_error_naming_the_file_and_the_columns() {
    let path = focus_fixture("focus-missing-column.csv");
    let err = FocusReader::open(&path, "team")
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("focus-missing-column.csv"), "{err}");
    assert!(err.contains("EffectiveCost, BillingCurrency"), "{err}");
    assert!(err.contains("the header has: ChargePeriodStart"), "{err}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = FocusReader::open(&focus_fixture("no-such.csv"), "team")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("no-such.csv"), "{err}");
}

/// A FOCUS file generated on the fly, row by row, that records how much of it has been read.
struct GeneratedFocus {
    rows: u64,
    next_row: u64,
    pending: Vec<u8>,
    at: usize,
    handed_out: std::rc::Rc<std::cell::Cell<u64>>,
}

impl GeneratedFocus {
    const HEADER: &'static str = "ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,\
                                  ListCost,BillingCurrency,PricingCategory,ServiceName,Tags\n";

    fn row(i: u64) -> String {
        if i % 10_000 == 9_999 {
            return format!(
                "2025-04-01T00:00:00Z,2025-04-01T01:00:00Z,oops,1,1,USD,Standard,S{i},{{}}\n"
            );
        }
        let hour = i % 24;
        let end = if hour == 23 {
            "2025-04-02T00:00:00Z".to_string()
        } else {
            format!("2025-04-01T{:02}:00:00Z", hour + 1)
        };
        format!(
            "2025-04-01T{hour:02}:00:00Z,{end},1.5,1.25,2.0,USD,{},Service {},\"{{\"\"team\"\":\"\"t{}\"\"}}\"\n",
            if i.is_multiple_of(2) {
                "Standard"
            } else {
                "Dynamic"
            },
            i % 7,
            i % 10
        )
    }
}

impl Read for GeneratedFocus {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            if self.next_row > self.rows {
                return Ok(0);
            }
            self.pending = if self.next_row == 0 {
                Self::HEADER.as_bytes().to_vec()
            } else {
                Self::row(self.next_row - 1).into_bytes()
            };
            self.next_row += 1;
            self.at = 0;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        self.handed_out.set(self.handed_out.get() + n as u64);
        Ok(n)
    }
}

fn generated(rows: u64) -> (GeneratedFocus, std::rc::Rc<std::cell::Cell<u64>>) {
    let handed_out = std::rc::Rc::new(std::cell::Cell::new(0));
    (
        GeneratedFocus {
            rows,
            next_row: 0,
            pending: Vec::new(),
            at: 0,
            handed_out: handed_out.clone(),
        },
        handed_out,
    )
}

#[test]
fn a_large_file_is_streamed_record_by_record_and_the_report_stays_small() {
    const ROWS: u64 = 100_000;
    let (input, handed_out) = generated(ROWS);
    let mut reader =
        FocusReader::new("generated.csv", input, "team").unwrap_or_else(|e| panic!("{e}"));
    let first = reader.next();
    assert!(
        matches!(first, Some(Ok(FocusRecord::Line { .. }))),
        "{first:?}"
    );
    // Only the reader's fixed buffer has been pulled from a ~9 MB input.
    let after_first = handed_out.get();
    assert!(
        after_first <= 64 * 1024,
        "read {after_first} bytes for one record"
    );

    let mut b = CostReportBuilder::new(ReportSettings::default());
    read_focus(reader, &mut b).unwrap_or_else(|e| panic!("{e}"));
    let big = b.finish(Utc::now());
    let bad = ROWS / 10_000;
    assert_eq!(big.rows.read, ROWS - 1, "the first record was taken above");
    assert_eq!(big.rows.skipped, bad);
    assert!(
        big.rows.skipped_rows[0]
            .location
            .starts_with("generated.csv:")
    );
    assert!(close(
        big.totals.effective_cost,
        1.25 * (ROWS - 1 - bad) as f64
    ));
    assert_eq!(big.by_team.len(), 10);

    // The report of 100,000 rows is no bigger than that of 1,000: it holds groups, not rows.
    let (small_input, _) = generated(1_000);
    let mut b = CostReportBuilder::new(ReportSettings::default());
    let small_reader =
        FocusReader::new("generated.csv", small_input, "team").unwrap_or_else(|e| panic!("{e}"));
    read_focus(small_reader, &mut b).unwrap_or_else(|e| panic!("{e}"));
    let small = b.finish(Utc::now());
    let size = |r: &CostReport| serde_json::to_string(r).map_or(0, |s| s.len());
    assert!(
        size(&big) < size(&small) + 4096,
        "{} vs {}",
        size(&big),
        size(&small)
    );
}

#[test]
fn the_opencost_capture_parses_into_namespaced_lines() {
    let path = fixture("opencost-allocation.json");
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sets = parse_allocation_response("fixture", 200, &body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sets.len(), 1);
    let raw: Value = serde_json::from_slice(&body).unwrap_or_default();
    let aggregate = vec!["namespace".to_string()];
    let ctx = AllocationContext {
        aggregate: &aggregate,
        team_label: "team",
        nodes: &[],
        currency: "USD",
    };
    let mut total = 0.0;
    for (name, v) in &sets[0] {
        let line = allocation_line(name, v, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(line.namespace.as_deref(), Some(name.as_str()));
        assert_eq!(line.cluster.as_deref(), Some("cluster-one"));
        assert_eq!(
            Some(line.effective_cost),
            raw["data"][0][name]["totalCost"].as_f64()
        );
        assert_eq!(line.period_start.to_rfc3339(), "2023-01-18T11:38:45+00:00");
        total += line.effective_cost;
    }
    let names: Vec<&String> = sets[0].keys().collect();
    assert_eq!(names, ["kube-system", "opencost", "prometheus"]);
    assert!(total > 0.0);
}

// --- against the sim's OpenCost ----------------------------------------------------------

fn opencost_url(sim: &Sim) -> String {
    sim.desc["opencost"]
        .as_str()
        .unwrap_or_else(|| panic!("no opencost in {}", sim.desc))
        .to_string()
}

/// Node capacity, instance and GPU types, read from each simulated cluster's API as a user's
/// kube source would.
async fn sim_nodes(sim: &Sim) -> Vec<NodeCostInfo> {
    let mut out = Vec::new();
    let clusters = sim.desc["clusters"].as_array().cloned().unwrap_or_default();
    for c in clusters {
        let (Some(name), Some(url)) = (c["name"].as_str(), c["kube"].as_str()) else {
            panic!("cluster entry {c}")
        };
        let nodes: Value = reqwest::get(format!("{url}/api/v1/nodes"))
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for n in nodes["items"].as_array().cloned().unwrap_or_default() {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(n["metadata"]["labels"].clone()).unwrap_or_default();
            out.push(NodeCostInfo {
                cluster: Some(name.to_string()),
                node: n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                capacity_type: CapacityType::from_labels(
                    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                instance_type: labels.get("node.kubernetes.io/instance-type").cloned(),
                gpu_type: labels.get("nvidia.com/gpu.product").cloned(),
            });
        }
    }
    out
}

#[tokio::test]
async fn opencost_spend_by_namespace_and_team_is_positive_and_adds_up() {
    let sim = Sim::start(&[]);
    let r = build_report(&CostOptions {
        opencost_url: Some(opencost_url(&sim)),
        window: Some("2d".into()),
        group_by: CostGroupBy::Team,
        monthly_budget: Some(1_000_000.0),
        ..CostOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.totals.effective_cost > 0.0);
    assert_eq!(r.rows.skipped, 0, "{:?}", r.rows.skipped_rows);
    for key in ["serving", "training", "research"] {
        assert!(group(&r.by_namespace, key).effective_cost > 0.0, "{key}");
    }
    for key in ["research", "inference", "platform"] {
        assert!(group(&r.by_team, key).effective_cost > 0.0, "{key}");
    }
    assert!(group(&r.by_cluster, "sim-a").effective_cost > 0.0);
    assert!(group(&r.by_cluster, "sim-b").effective_cost > 0.0);
    for groups in [&r.by_namespace, &r.by_team, &r.by_cluster] {
        let sum: f64 = groups.iter().map(|g| g.effective_cost).sum();
        assert!((sum - r.totals.effective_cost).abs() < 1e-6 * sum.max(1.0));
    }
    // GPU capacity no pod requested is OpenCost's __idle__.
    assert!(r.idle_gpu.unallocated_cost > 0.0);
    assert!(r.idle_gpu.unallocated_gpu_hours > 0.0);
    let mut r = r;
    fleetdeck::signals::budget::forecast_budget(&mut r);
    let budget = r.budget.unwrap_or_else(|| panic!("no budget section"));
    let forecast = budget.forecast.as_ref().map_or(0.0, |f| f.month_end);
    assert!(forecast >= budget.month_to_date, "{budget:?}");
    assert_eq!(budget.basis.name(), "opencost");
}

#[tokio::test]
async fn opencost_spot_nodes_save_against_on_demand_peers() {
    let sim = Sim::start(&[]);
    let nodes = sim_nodes(&sim).await;
    assert!(nodes.iter().any(|n| n.capacity_type == CapacityType::Spot));
    let r = build_report(&CostOptions {
        opencost_url: Some(opencost_url(&sim)),
        window: Some("1d".into()),
        nodes,
        ..CostOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.spot.opencost_spot_nodes > 0, "{:?}", r.spot);
    assert!(r.spot.opencost_savings > 0.0, "{:?}", r.spot);
    assert!(r.spot.total > 0.0);
    let h100 = r
        .gpu_by_type
        .iter()
        .find(|g| g.gpu_type == "NVIDIA H100")
        .unwrap_or_else(|| panic!("no H100 in {:#?}", r.gpu_by_type));
    assert!(h100.gpu_hours > 0.0);
    assert!(h100.cost_per_gpu_hour.is_some_and(|c| c > 0.0));
}

#[tokio::test]
async fn a_bad_window_is_refused_by_opencost_with_the_parameter_named() {
    let sim = Sim::start(&[]);
    let err = build_report(&CostOptions {
        opencost_url: Some(opencost_url(&sim)),
        window: Some("fortnight".into()),
        ..CostOptions::default()
    })
    .await
    .err()
    .unwrap_or_else(|| panic!("a bad window was accepted"));
    assert!(
        matches!(err, CostError::OpenCostRejected { status: 400, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`window`") && msg.contains("fortnight"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_unreachable_opencost_is_an_error_naming_the_url() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = build_report(&CostOptions {
        opencost_url: Some(format!("http://127.0.0.1:{port}")),
        ..CostOptions::default()
    })
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn focus_files_are_cut_to_the_window_and_budgeted_by_their_month() {
    let as_of: DateTime<Utc> = "2025-04-03T00:00:00Z".parse().unwrap_or_default();
    let r = build_report(&CostOptions {
        focus_files: vec![focus_fixture("focus-1.0-normal.csv")],
        window: Some("1d".into()),
        monthly_budget: Some(50_000.0),
        as_of: Some(as_of),
        ..CostOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Only 2 April's rows fall in the last day before 3 April.
    assert_eq!((r.rows.used, r.rows.outside_window), (3, 7));
    assert!(close(r.totals.effective_cost, 2359.68 + 262.16 + 36.73));
    let mut r = r;
    fleetdeck::signals::budget::forecast_budget(&mut r);
    let budget = r.budget.unwrap_or_else(|| panic!("no budget"));
    assert_eq!(budget.month, "2025-04");
    // The budget counts the whole month to date, not the window.
    assert!(close(budget.month_to_date, 5776.572), "{budget:?}");
    let forecast = budget.forecast.as_ref().map_or(0.0, |f| f.month_end);
    assert!(forecast > budget.month_to_date, "{budget:?}");

    let none = build_report(&CostOptions::default()).await;
    assert!(matches!(none, Err(CostError::NoSources)));
}

/// `focus-1.0-normal.csv` with every ISO date-time rewritten as `4/1/25` (month/day/2-digit
/// year, midnight), as the FOCUS specification's sample CSVs write them.
fn us_dated_export() -> String {
    let text = std::fs::read_to_string(focus_fixture("focus-1.0-normal.csv")).expect("fixture");
    let iso = regex::Regex::new(r"(\d{4})-(\d{2})-(\d{2})T00:00:00Z").expect("pattern");
    iso.replace_all(&text, |c: &regex::Captures| {
        let month: u32 = c[2].parse().expect("month");
        let day: u32 = c[3].parse().expect("day");
        format!("{month}/{day}/{}", &c[1][2..])
    })
    .into_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("compress")
}

/// With a monthly budget, so that the report depends on the rows' dates (the budget month,
/// the daily spend and the forecast).
fn budgeted() -> ReportSettings {
    ReportSettings {
        monthly_budget: Some(100_000.0),
        ..ReportSettings::default()
    }
}

fn report_of_path(path: &std::path::Path, format: Option<&str>) -> Result<CostReport, CostError> {
    let mut b = CostReportBuilder::new(budgeted());
    let format = format.map(|f| fleetdeck::model::cost::DateFormat::parse(f).expect("format"));
    let reader = FocusReader::open(path, "team")?.with_date_format(format);
    read_focus(reader, &mut b)?;
    Ok(b.finish(Utc::now()))
}

#[test]
fn gzipped_exports_read_as_the_plain_file_whatever_their_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = std::fs::read(focus_fixture("focus-1.0-normal.csv")).expect("fixture");
    let expected = report_of(&["focus-1.0-normal.csv"]);
    for name in ["export.csv.gz", "export-gzip-without-the-suffix.csv"] {
        let path = dir.path().join(name);
        std::fs::write(&path, gzip(&plain)).expect("write");
        let r = report_of_path(&path, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (r.rows.read, r.rows.used, r.rows.skipped),
            (10, 10, 0),
            "{name}"
        );
        assert!(
            close(r.totals.effective_cost, expected.totals.effective_cost),
            "{name}"
        );
        assert_eq!(r.gpu_by_type, expected.gpu_by_type, "{name}");
    }
}

#[test]
fn a_damaged_gzip_export_is_named_and_not_taken_for_a_short_bill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = std::fs::read(focus_fixture("focus-1.0-normal.csv")).expect("fixture");
    let whole = gzip(&plain);
    let path = dir.path().join("cut.csv.gz");
    std::fs::write(&path, &whole[..whole.len() * 2 / 3]).expect("write");
    let err = report_of_path(&path, None).expect_err("a cut stream fails the file");
    let msg = err.to_string();
    assert!(
        matches!(err, CostError::FocusGzip { .. })
            && msg.contains("cut.csv.gz")
            && msg.contains("gzip"),
        "{msg}"
    );
}

#[test]
fn non_iso_dates_are_one_message_per_file_naming_the_format_to_give() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("spec-sample.csv");
    std::fs::write(&path, us_dated_export()).expect("write");
    let err = report_of_path(&path, None).expect_err("undated rows are not a bill");
    let msg = err.to_string();
    assert!(
        matches!(err, CostError::FocusDateFormat { line: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("spec-sample.csv:2"), "{msg}");
    assert!(msg.contains("ChargePeriodStart \"4/1/25\""), "{msg}");
    assert!(msg.contains("--date-format '%m/%d/%y'"), "{msg}");

    let r = report_of_path(&path, Some("%m/%d/%y")).expect("with the format it reads");
    let expected = report_of_path(&focus_fixture("focus-1.0-normal.csv"), None).expect("ISO");
    assert_eq!((r.rows.read, r.rows.used, r.rows.skipped), (10, 10, 0));
    assert!(close(
        r.totals.effective_cost,
        expected.totals.effective_cost
    ));
    assert!(r.budget.is_some());
    assert_eq!(
        r.budget, expected.budget,
        "the same month, days and forecast"
    );
}

#[test]
fn a_date_format_must_be_one() {
    use fleetdeck::model::cost::DateFormat;
    assert!(DateFormat::parse("%m/%d/%y").is_ok());
    assert!(DateFormat::parse("%d.%m.%Y %H:%M").is_ok());
    let e = DateFormat::parse("%H:%M").expect_err("no date in it");
    assert!(e.contains("day, a month and a year"), "{e}");
    let e = DateFormat::parse("%m/%d/%y %Q").expect_err("unknown specifier");
    assert!(e.contains("not a strftime format"), "{e}");
}

#[test]
fn cost_reads_a_gzipped_us_dated_export_given_its_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bill.csv.gz");
    std::fs::write(&path, gzip(us_dated_export().as_bytes())).expect("write");
    let p = path.to_str().expect("utf-8");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .args(["cost", "--focus", p, "-o", "json"])
            .args(extra)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .expect("run fleetdeck cost")
    };
    let out = run(&["--date-format", "%m/%d/%y"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["rows"]["used"], 10, "{report}");
    assert!(
        out.stderr.is_empty(),
        "no progress drawn off a terminal: {out:?}"
    );

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one message for the file: {err}");
    assert!(
        err.contains("bill.csv.gz:2") && err.contains("--date-format"),
        "{err}"
    );

    let out = run(&["--date-format", "%H"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--date-format: \"%H\""),
        "{out:?}"
    );
}
