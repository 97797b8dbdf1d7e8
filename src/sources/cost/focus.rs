//! FOCUS 1.0–1.2 CSV exports, streamed record by record into [`CostLine`]s (the GPU-hour rule
//! is in `sources::cost`'s header); a row that cannot be read names its `file:line`. Imports model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use std::sync::Arc;

use super::opencost::json_kind;
use super::{CostError, FocusPosition, FocusProgress, day_start};
use crate::model::cost::{
    CostLine, CostReportBuilder, CostSourceKind, DateFormat, PricingCategory, SkippedRow,
    gpu_family,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
