//! DCGM exporter scraping: a strict parser of the Prometheus text exposition format (0.0.4),
//! the conversion of dcgm-exporter's families into [`GpuModel`]s, and a polling task per
//! endpoint that sends [`GpuUpdate`]s. Imports model only.
//!
//! Hand-written rather than `prometheus-parse`: that crate runs a regex per line, reads label
//! values with `[^}]+` (a `}` inside a value breaks it) and silently skips lines it cannot match;
//! a scrape of 40,000 GPUs is ~900,000 lines, and a bad line must be reported, not dropped.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::model::gpu::{
    GpuModel, GpuSourceKind, GpuSourceStatus, GpuUpdate, MigInstance, PodRef, ThrottleReason,
};

// ---- the text exposition format ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One meaningful line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    Help { name: &'a str, text: Cow<'a, str> },
    Type { name: &'a str, kind: MetricKind },
    Sample(Sample<'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
}

/// The labels of a sample: the validated text between the braces, read on demand so that a
/// sample costs no allocation unless a value holds an escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    raw: &'a str,
}

impl<'a> Labels<'a> {
    /// The text between the braces, exactly as it was on the line.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            raw: self.raw.as_bytes(),
            text: self.raw,
            pos: 0,
        }
    }

    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Iterates over already validated label text, so it never fails.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    raw: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.raw;
        let mut i = skip_blanks(b, self.pos);
        if i >= b.len() {
            return None;
        }
        let name_start = i;
        while i < b.len() && is_label_char(b[i]) {
            i += 1;
        }
        let name = self.text.get(name_start..i)?;
        i = skip_blanks(b, i) + 1; // '='
        i = skip_blanks(b, i) + 1; // opening quote
        let value_start = i;
        let mut escaped = false;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' {
                escaped = true;
                i += 1;
            }
            i += 1;
        }
        let raw_value = self.text.get(value_start..i.min(b.len()))?;
        i = skip_blanks(b, i + 1);
        if i < b.len() && b[i] == b',' {
            i += 1;
        }
        self.pos = i;
        let value = if escaped {
            Cow::Owned(unescape(raw_value))
        } else {
            Cow::Borrowed(raw_value)
        };
        Some((name, value))
    }
}

/// Undoes `\\`, `\"` and `\n` (the only escapes a validated value holds).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("`# {0}` needs a metric name")]
    MissingName(&'static str),
    #[error("`{0}` is not a metric name (names match [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    BadMetricName(String),
    #[error("unknown metric type `{0}`: use counter, gauge, histogram, summary or untyped")]
    UnknownType(String),
    #[error("`# TYPE {0}` needs a type: counter, gauge, histogram, summary or untyped")]
    MissingType(String),
    #[error("`# TYPE {0}` has text after the type")]
    TextAfterType(String),
    #[error("second TYPE line for `{0}`")]
    DuplicateType(String),
    #[error("second HELP line for `{0}`")]
    DuplicateHelp(String),
    #[error("the TYPE line for `{0}` comes after its samples")]
    TypeAfterSamples(String),
    #[error("`\\{0}` is not an escape in a HELP text (use \\\\ or \\n)")]
    BadHelpEscape(char),
    #[error("a label name was expected (names match [a-zA-Z_][a-zA-Z0-9_]*)")]
    ExpectedLabelName,
    #[error("`=` was expected after label `{0}`")]
    ExpectedEquals(String),
    #[error("the value of label `{0}` must start with `\"`")]
    ExpectedQuote(String),
    #[error("the value of label `{0}` has no closing `\"`")]
    UnterminatedLabelValue(String),
    #[error("label `{label}`: `\\{escape}` is not an escape (use \\\\, \\\" or \\n)")]
    BadEscape { label: String, escape: char },
    #[error("`,` or `}}` was expected after label `{0}`")]
    ExpectedCommaOrBrace(String),
    #[error("the label set has no closing `}}`")]
    UnclosedLabels,
    #[error("label `{0}` appears twice")]
    DuplicateLabel(String),
    #[error("the sample has no value")]
    MissingValue,
    #[error("`{0}` is not a sample value (a float, NaN, +Inf or -Inf)")]
    BadValue(String),
    #[error("`{0}` is not a timestamp (integer milliseconds)")]
    BadTimestamp(String),
    #[error("unexpected `{0}` after the timestamp")]
    TrailingText(String),
    #[error("`{metric}` has neither a `gpu` nor a `UUID` label, so it names no GPU")]
    NoGpuIdentity { metric: String },
    #[error("label `{label}` is `{value}`, not a whole number")]
    BadNumberLabel { label: &'static str, value: String },
}

/// A line that cannot be read, and why. Line and column count from 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {problem}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub problem: Problem,
}

/// Reads an exposition line by line, strictly: the first line that breaks the format ends the
/// iteration with an error naming it. Comments and empty lines yield nothing.
#[derive(Debug)]
pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    failed: bool,
    typed: HashSet<&'a str>,
    helped: HashSet<&'a str>,
    /// Sample names seen; updated only when the name changes, as families come grouped.
    sampled: HashSet<&'a str>,
    blocks: BlockMemo<'a>,
}

/// The label blocks of the previous and the current sample name, in order. Exporters repeat
/// the same label sets family after family, so the n-th block of a family is most often the
/// n-th of the one before: if the line holds exactly that validated text followed by `}`,
/// validating it again would take the same steps to the same end, and is skipped.
#[derive(Debug, Default)]
struct BlockMemo<'a> {
    name: &'a str,
    previous: Vec<&'a str>,
    current: Vec<&'a str>,
}

impl<'a> BlockMemo<'a> {
    /// Answers whether `name` starts a new run of samples, and the block expected next.
    fn next_for(&mut self, name: &'a str) -> (bool, Option<&'a str>) {
        let new_name = name != self.name;
        if new_name {
            self.name = name;
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
        }
        (new_name, self.previous.get(self.current.len()).copied())
    }
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            text,
            pos: 0,
            line: 0,
            failed: false,
            typed: HashSet::new(),
            helped: HashSet::new(),
            sampled: HashSet::new(),
            blocks: BlockMemo::default(),
        }
    }

    /// The number of the line last read (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    fn fail(&mut self, line_text: &str, offset: usize, problem: Problem) -> ParseError {
        self.failed = true;
        let column = line_text
            .get(..offset.min(line_text.len()))
            .map_or(offset, |s| s.chars().count())
            + 1;
        ParseError {
            line: self.line,
            column,
            problem,
        }
    }

    fn parse_line(&mut self, line: &'a str) -> Result<Option<Record<'a>>, (usize, Problem)> {
        let b = line.as_bytes();
        let i = skip_blanks(b, 0);
        if i == b.len() {
            return Ok(None);
        }
        if b[i] == b'#' {
            return self.parse_comment(line, i + 1);
        }
        let sample = parse_sample(line, i, &mut self.blocks, &mut self.sampled)?;
        Ok(Some(Record::Sample(sample)))
    }

    fn parse_comment(
        &mut self,
        line: &'a str,
        start: usize,
    ) -> Result<Option<Record<'a>>, (usize, Problem)> {
        let b = line.as_bytes();
        let i = skip_blanks(b, start);
        let word_end = token_end(b, i);
        let word = &line[i..word_end];
        let is_help = word == "HELP";
        if !is_help && word != "TYPE" {
            return Ok(None);
        }
        let what = if is_help { "HELP" } else { "TYPE" };
        let name_start = skip_blanks(b, word_end);
        let name_end = token_end(b, name_start);
        if name_start == name_end {
            return Err((name_start, Problem::MissingName(what)));
        }
        let name = &line[name_start..name_end];
        if metric_name_end(b, name_start) != name_end {
            return Err((name_start, Problem::BadMetricName(name.to_string())));
        }
        let rest = skip_blanks(b, name_end);
        if is_help {
            if !self.helped.insert(name) {
                return Err((name_start, Problem::DuplicateHelp(name.to_string())));
            }
            let text = help_text(line, rest)?;
            return Ok(Some(Record::Help { name, text }));
        }
        let kind_end = token_end(b, rest);
        let kind = match &line[rest..kind_end] {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            "untyped" => MetricKind::Untyped,
            "" => return Err((rest, Problem::MissingType(name.to_string()))),
            other => return Err((rest, Problem::UnknownType(other.to_string()))),
        };
        let after = skip_blanks(b, kind_end);
        if after != b.len() {
            return Err((after, Problem::TextAfterType(name.to_string())));
        }
        if !self.typed.insert(name) {
            return Err((name_start, Problem::DuplicateType(name.to_string())));
        }
        if self.sampled.contains(name) {
            return Err((name_start, Problem::TypeAfterSamples(name.to_string())));
        }
        Ok(Some(Record::Type { name, kind }))
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Record<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.pos < self.text.len() {
            let rest = &self.text[self.pos..];
            let (line, advance) = match rest.find('\n') {
                Some(n) => (&rest[..n], n + 1),
                None => (rest, rest.len()),
            };
            self.pos += advance;
            self.line += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            match self.parse_line(line) {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => {}
                Err((offset, problem)) => return Some(Err(self.fail(line, offset, problem))),
            }
        }
        None
    }
}

/// Parses a body as bytes, reporting invalid UTF-8 with the line it is on.
pub fn parse_utf8(body: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(body).map_err(|e| {
        let good = &body[..e.valid_up_to()];
        let line_start = good.iter().rposition(|c| *c == b'\n').map_or(0, |p| p + 1);
        ParseError {
            line: good.iter().filter(|c| **c == b'\n').count() + 1,
            column: String::from_utf8_lossy(&good[line_start..]).chars().count() + 1,
            problem: Problem::NotUtf8,
        }
    })
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !is_blank(b[i]) {
        i += 1;
    }
    i
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Where the metric name that starts at `i` ends (`i` itself when none starts there).
fn metric_name_end(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {}
        _ => return i,
    }
    let mut j = i + 1;
    while j < b.len() && (is_label_char(b[j]) || b[j] == b':') {
        j += 1;
    }
    j
}

fn help_text(line: &str, start: usize) -> Result<Cow<'_, str>, (usize, Problem)> {
    let text = &line[start..];
    let Some(first) = text.find('\\') else {
        return Ok(Cow::Borrowed(text));
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut chars = text[first..].char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, 'n')) => out.push('\n'),
            Some((_, '\\')) => out.push('\\'),
            Some((at, other)) => {
                return Err((start + first + at - 1, Problem::BadHelpEscape(other)));
            }
            None => return Err((line.len(), Problem::BadHelpEscape(' '))),
        }
    }
    Ok(Cow::Owned(out))
}

fn parse_sample<'a>(
    line: &'a str,
    start: usize,
    blocks: &mut BlockMemo<'a>,
    sampled: &mut HashSet<&'a str>,
) -> Result<Sample<'a>, (usize, Problem)> {
    let b = line.as_bytes();
    let name_end = metric_name_end(b, start);
    if name_end == start {
        let end = token_end(b, start);
        return Err((start, Problem::BadMetricName(line[start..end].to_string())));
    }
    let name = &line[start..name_end];
    let (new_name, expected) = blocks.next_for(name);
    if new_name {
        sampled.insert(name);
    }
    let mut i = skip_blanks(b, name_end);
    let mut labels = Labels { raw: "" };
    if b.get(i) == Some(&b'{') {
        let open = i + 1;
        let close = match expected {
            Some(e) if line[open..].starts_with(e) && b.get(open + e.len()) == Some(&b'}') => {
                open + e.len()
            }
            _ => parse_label_block(line, open)?,
        };
        labels = Labels {
            raw: &line[open..close],
        };
        i = skip_blanks(b, close + 1);
    } else if i == name_end && i < b.len() {
        // The name runs straight into something that cannot be part of it.
        let end = token_end(b, start);
        return Err((start, Problem::BadMetricName(line[start..end].to_string())));
    }
    blocks.current.push(labels.raw);
    let value_end = token_end(b, i);
    if value_end == i {
        return Err((i, Problem::MissingValue));
    }
    let value_text = &line[i..value_end];
    let value = parse_value(value_text).ok_or((i, Problem::BadValue(value_text.to_string())))?;
    let mut timestamp_ms = None;
    let ts_start = skip_blanks(b, value_end);
    if ts_start < b.len() {
        let ts_end = token_end(b, ts_start);
        let ts_text = &line[ts_start..ts_end];
        timestamp_ms = Some(
            ts_text
                .parse::<i64>()
                .map_err(|_| (ts_start, Problem::BadTimestamp(ts_text.to_string())))?,
        );
        let after = skip_blanks(b, ts_end);
        if after < b.len() {
            return Err((after, Problem::TrailingText(line[after..].to_string())));
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Go's `strconv.ParseFloat` (what Prometheus uses) and Rust's `f64::from_str` accept the same
/// spellings of numbers, NaN and infinities, except that Go also takes `_` separators after a
/// base prefix and hex floats, which no exporter writes.
fn parse_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// Validates the labels after `{` at `start`; answers the index of the closing `}`.
fn parse_label_block(line: &str, start: usize) -> Result<usize, (usize, Problem)> {
    const INLINE: usize = 24;
    let b = line.as_bytes();
    let mut names: [&str; INLINE] = [""; INLINE];
    let mut count = 0usize;
    let mut i = start;
    loop {
        i = skip_blanks(b, i);
        match b.get(i) {
            None => return Err((i, Problem::UnclosedLabels)),
            Some(b'}') => return Ok(i),
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
            Some(_) => return Err((i, Problem::ExpectedLabelName)),
        }
        let name_start = i;
        while i < b.len() && is_label_char(b[i]) {
            i += 1;
        }
        let name = &line[name_start..i];
        let seen = if count < INLINE {
            names[..count].contains(&name)
        } else {
            Labels {
                raw: &line[start..name_start],
            }
            .iter()
            .any(|(n, _)| n == name)
        };
        if seen {
            return Err((name_start, Problem::DuplicateLabel(name.to_string())));
        }
        if count < INLINE {
            names[count] = name;
        }
        count += 1;
        i = skip_blanks(b, i);
        if b.get(i) != Some(&b'=') {
            return Err((i, Problem::ExpectedEquals(name.to_string())));
        }
        i = skip_blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err((i, Problem::ExpectedQuote(name.to_string())));
        }
        i += 1;
        loop {
            match b.get(i) {
                None => return Err((i, Problem::UnterminatedLabelValue(name.to_string()))),
                Some(b'"') => break,
                Some(b'\\') => match b.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    Some(_) => {
                        let escape = line[i + 1..].chars().next().unwrap_or(' ');
                        return Err((
                            i,
                            Problem::BadEscape {
                                label: name.to_string(),
                                escape,
                            },
                        ));
                    }
                    None => return Err((i, Problem::UnterminatedLabelValue(name.to_string()))),
                },
                Some(_) => i += 1,
            }
        }
        i = skip_blanks(b, i + 1);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i),
            None => return Err((i, Problem::UnclosedLabels)),
            Some(_) => return Err((i, Problem::ExpectedCommaOrBrace(name.to_string()))),
        }
    }
}

// ---- DCGM families → GpuModel --------------------------------------------------------------

/// The dcgm-exporter families the model reads; the rest are skipped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    GpuUtil,
    GrEngineActive,
    FbUsed,
    FbFree,
    FbReserved,
    FbTotal,
    GpuTemp,
    Power,
    PowerLimit,
    SmClock,
    Xid,
    EccSbe,
    EccDbe,
    RetiredSbe,
    RetiredDbe,
    RemappedCorrectable,
    RemappedUncorrectable,
    RemapPending,
    RemapFailure,
    ThrottleReasons,
}

fn field_of(name: &str) -> Option<Field> {
    Some(match name {
        "DCGM_FI_DEV_GPU_UTIL" => Field::GpuUtil,
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE" => Field::GrEngineActive,
        "DCGM_FI_DEV_FB_USED" => Field::FbUsed,
        "DCGM_FI_DEV_FB_FREE" => Field::FbFree,
        "DCGM_FI_DEV_FB_RESERVED" => Field::FbReserved,
        "DCGM_FI_DEV_FB_TOTAL" => Field::FbTotal,
        "DCGM_FI_DEV_GPU_TEMP" => Field::GpuTemp,
        "DCGM_FI_DEV_POWER_USAGE" => Field::Power,
        "DCGM_FI_DEV_POWER_MGMT_LIMIT" | "DCGM_FI_DEV_ENFORCED_POWER_LIMIT" => Field::PowerLimit,
        "DCGM_FI_DEV_SM_CLOCK" => Field::SmClock,
        "DCGM_FI_DEV_XID_ERRORS" => Field::Xid,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL" => Field::EccSbe,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" => Field::EccDbe,
        "DCGM_FI_DEV_RETIRED_SBE" => Field::RetiredSbe,
        "DCGM_FI_DEV_RETIRED_DBE" => Field::RetiredDbe,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS" => Field::RemappedCorrectable,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS" => Field::RemappedUncorrectable,
        "DCGM_FI_DEV_ROW_REMAP_PENDING" => Field::RemapPending,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE" => Field::RemapFailure,
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS" | "DCGM_FI_DEV_CLOCKS_EVENT_REASONS" => {
            Field::ThrottleReasons
        }
        _ => return None,
    })
}

/// A GPU being assembled from its samples.
struct Building<'a> {
    raw_labels: &'a str,
    gpu: GpuModel,
    fb_reserved: Option<u64>,
    gr_engine_active: Option<f64>,
}

fn gauge(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn count(v: f64) -> Option<u64> {
    // `as` saturates, so a huge counter cannot wrap.
    (v.is_finite() && v >= 0.0).then(|| v.round() as u64)
}

fn apply(b: &mut Building<'_>, field: Field, v: f64) {
    let g = &mut b.gpu;
    match field {
        Field::GpuUtil => g.utilization_pct = gauge(v),
        Field::GrEngineActive => b.gr_engine_active = gauge(v),
        Field::FbUsed => g.memory_used_mib = count(v),
        Field::FbFree => g.memory_free_mib = count(v),
        Field::FbReserved => b.fb_reserved = count(v),
        Field::FbTotal => g.memory_total_mib = count(v),
        Field::GpuTemp => g.temperature_c = gauge(v),
        Field::Power => g.power_w = gauge(v),
        Field::PowerLimit => g.power_limit_w = gauge(v),
        Field::SmClock => g.sm_clock_mhz = count(v).map(|c| c.min(u64::from(u32::MAX)) as u32),
        Field::Xid => {
            g.xid_last = count(v)
                .filter(|c| *c != 0)
                .map(|c| c.min(u64::from(u32::MAX)) as u32)
        }
        Field::EccSbe => g.ecc_sbe_volatile = count(v),
        Field::EccDbe => g.ecc_dbe_volatile = count(v),
        Field::RetiredSbe => g.retired_pages_sbe = count(v),
        Field::RetiredDbe => g.retired_pages_dbe = count(v),
        Field::RemappedCorrectable => g.remapped_rows_correctable = count(v),
        Field::RemappedUncorrectable => g.remapped_rows_uncorrectable = count(v),
        Field::RemapPending => g.remap_pending = gauge(v).map(|x| x != 0.0),
        Field::RemapFailure => g.remap_failure = gauge(v).map(|x| x != 0.0),
        Field::ThrottleReasons => g.throttle_reasons = count(v).map(ThrottleReason::from_bits),
    }
}

fn whole_number(label: &'static str, value: &str) -> Result<u32, Problem> {
    value.parse().map_err(|_| Problem::BadNumberLabel {
        label,
        value: value.to_string(),
    })
}

/// Reads a GPU's identity from its labels. `Err` when the labels name no GPU.
fn identify<'a>(
    metric: &str,
    labels: Labels<'a>,
    cluster: &str,
    at: DateTime<Utc>,
) -> Result<(String, Building<'a>), Problem> {
    let mut gpu = GpuModel::new(cluster, "", 0, "", at);
    let mut index = None;
    let mut uuid = None;
    let (mut pod, mut namespace, mut container) = (None, None, None);
    let (mut gi_id, mut gi_profile) = (None, None);
    for (name, value) in labels.iter() {
        match name {
            "gpu" => index = Some(whole_number("gpu", &value)?),
            "UUID" => uuid = Some(value.into_owned()),
            "pci_bus_id" => gpu.pci_bus_id = Some(value.into_owned()),
            "modelName" => gpu.model_name = Some(value.into_owned()),
            // dcgm-exporter renamed `Hostname` to `hostname`; either may come.
            "Hostname" | "hostname" => gpu.node = value.into_owned(),
            "DCGM_FI_DRIVER_VERSION" => gpu.driver_version = Some(value.into_owned()),
            "GPU_I_ID" => gi_id = Some(whole_number("GPU_I_ID", &value)?),
            "GPU_I_PROFILE" => gi_profile = Some(value.into_owned()),
            "pod" if !value.is_empty() => pod = Some(value.into_owned()),
            "namespace" if !value.is_empty() => namespace = Some(value.into_owned()),
            "container" if !value.is_empty() => container = Some(value.into_owned()),
            _ => {}
        }
    }
    if index.is_none() && uuid.is_none() {
        return Err(Problem::NoGpuIdentity {
            metric: metric.to_string(),
        });
    }
    gpu.index = index.unwrap_or(0);
    gpu.uuid = uuid.unwrap_or_default();
    let device = if gpu.uuid.is_empty() {
        gpu.index.to_string()
    } else {
        gpu.uuid.clone()
    };
    let key = format!("{}\u{0}{device}\u{0}{gi_id:?}", gpu.node);
    if let Some(id) = gi_id {
        gpu.mig_enabled = Some(true);
        gpu.mig_instance = Some(MigInstance {
            gpu_instance_id: id,
            profile: gi_profile,
        });
    }
    gpu.holder = pod.map(|pod| PodRef {
        namespace: namespace.unwrap_or_default(),
        pod,
        container,
    });
    Ok((
        key,
        Building {
            raw_labels: labels.raw(),
            gpu,
            fb_reserved: None,
            gr_engine_active: None,
        },
    ))
}

/// Turns a dcgm-exporter body into one [`GpuModel`] per device (per MIG instance where MIG is
/// on), in the order the devices first appear. Families the model does not read are skipped;
/// any line that breaks the format fails the whole body.
pub fn parse_dcgm(
    text: &str,
    cluster: &str,
    at: DateTime<Utc>,
) -> Result<Vec<GpuModel>, ParseError> {
    let mut parser = Parser::new(text);
    let mut building: Vec<Building<'_>> = Vec::new();
    let mut by_raw: HashMap<&str, usize> = HashMap::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    // Families list the GPUs in the same order, so the n-th sample of a family is most often
    // the GPU of the n-th sample of the family before: one comparison instead of a hash.
    let mut previous_order: Vec<usize> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let mut family = "";
    let mut field = None;

    while let Some(record) = parser.next() {
        let Record::Sample(sample) = record? else {
            continue;
        };
        if sample.name != family {
            family = sample.name;
            field = field_of(family);
            if field.is_some() {
                std::mem::swap(&mut previous_order, &mut order);
                order.clear();
            }
        }
        let Some(field) = field else {
            continue;
        };
        let raw = sample.labels.raw();
        let predicted = previous_order
            .get(order.len())
            .copied()
            .filter(|&i| building.get(i).is_some_and(|b| b.raw_labels == raw));
        let index = match predicted.or_else(|| by_raw.get(raw).copied()) {
            Some(i) => i,
            None => {
                let (key, new) =
                    identify(sample.name, sample.labels, cluster, at).map_err(|problem| {
                        ParseError {
                            line: parser.line(),
                            column: 1,
                            problem,
                        }
                    })?;
                let i = *by_identity.entry(key).or_insert_with(|| {
                    building.push(new);
                    building.len() - 1
                });
                by_raw.insert(raw, i);
                i
            }
        };
        order.push(index);
        if let Some(b) = building.get_mut(index) {
            apply(b, field, sample.value);
        }
    }

    Ok(building
        .into_iter()
        .map(|b| {
            let mut g = b.gpu;
            if g.memory_total_mib.is_none()
                && let (Some(used), Some(free)) = (g.memory_used_mib, g.memory_free_mib)
            {
                g.memory_total_mib = Some(
                    used.saturating_add(free)
                        .saturating_add(b.fb_reserved.unwrap_or(0)),
                );
            }
            // MIG instances report no GPU_UTIL; the graphics engine's active ratio stands in.
            if g.utilization_pct.is_none() {
                g.utilization_pct = b.gr_engine_active.map(|r| (r * 100.0).clamp(0.0, 100.0));
            }
            g
        })
        .collect())
}

// ---- scraping ------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum DcgmError {
    #[error("GET {url}: {message}")]
    Http {
        url: String,
        message: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}; is this a dcgm-exporter /metrics address?")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: ParseError,
    },
    #[error("{url}: the parser stopped unexpectedly: {message}")]
    ParserTask { url: String, message: String },
}

fn http_error(url: &str, source: reqwest::Error) -> DcgmError {
    // The message names the URL once, up front.
    let source = source.without_url();
    let mut message = source.to_string();
    let mut cause = std::error::Error::source(&source);
    while let Some(c) = cause {
        let m = c.to_string();
        if !message.contains(&m) {
            message.push_str(": ");
            message.push_str(&m);
        }
        cause = c.source();
    }
    DcgmError::Http {
        url: url.to_string(),
        message,
        source,
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<bytes::Bytes, DcgmError> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| http_error(url, e))?;
    if !resp.status().is_success() {
        return Err(DcgmError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    resp.bytes().await.map_err(|e| http_error(url, e))
}

/// Fetches and parses one endpoint for `cluster`. Parsing runs on a blocking thread: a large
/// fleet's body takes long enough to stall other tasks on the runtime.
async fn scrape_cluster(
    client: &reqwest::Client,
    cluster: &str,
    url: &str,
) -> Result<Vec<GpuModel>, DcgmError> {
    let body = fetch(client, url).await?;
    let at = Utc::now();
    let cluster = cluster.to_string();
    let parsed = tokio::task::spawn_blocking(move || {
        parse_utf8(&body).and_then(|text| parse_dcgm(text, &cluster, at))
    })
    .await
    .map_err(|e| DcgmError::ParserTask {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    parsed.map_err(|source| DcgmError::Parse {
        url: url.to_string(),
        source,
    })
}

/// Scrapes one dcgm-exporter `/metrics` address. The GPUs' `cluster` is left empty: the caller
/// knows which cluster the address belongs to.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Result<Vec<GpuModel>, DcgmError> {
    scrape_cluster(client, "", url).await
}

/// Failures wait longer, up to this many intervals, so a dead endpoint is not hammered.
const MAX_BACKOFF_INTERVALS: u32 = 8;

/// Polls each `(cluster, url)` every `interval`, one task per address so a slow one delays no
/// other, and sends a [`GpuUpdate`] after every round. A failed round sends the error with the
/// time of the last success and no GPUs. Tasks end when the receiver is dropped.
pub fn spawn_dcgm(urls: Vec<(String, String)>, interval: Duration, tx: mpsc::Sender<GpuUpdate>) {
    let client = match reqwest::Client::builder()
        .timeout(interval.max(Duration::from_secs(10)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the DCGM HTTP client; DCGM is off");
            return;
        }
    };
    for (cluster, url) in urls {
        tokio::spawn(poll_endpoint(
            client.clone(),
            cluster,
            url,
            interval,
            tx.clone(),
        ));
    }
}

async fn poll_endpoint(
    client: reqwest::Client,
    cluster: String,
    url: String,
    interval: Duration,
    tx: mpsc::Sender<GpuUpdate>,
) {
    let mut last_success = None;
    let mut failures = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        let result = scrape_cluster(&client, &cluster, &url).await;
        let checked_at = Utc::now();
        let (error, gpus) = match result {
            Ok(gpus) => {
                if failures > 0 {
                    tracing::info!(%cluster, %url, "DCGM endpoint answers again");
                }
                failures = 0;
                last_success = Some(checked_at);
                (None, Some(gpus))
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(%cluster, error = %e, "DCGM scrape failed");
                }
                failures = failures.saturating_add(1);
                (Some(e.to_string()), None)
            }
        };
        let update = GpuUpdate {
            status: GpuSourceStatus {
                kind: GpuSourceKind::Dcgm,
                cluster: cluster.clone(),
                target: url.clone(),
                error,
                last_success,
                checked_at,
            },
            gpus,
        };
        if tx.send(update).await.is_err() {
            return;
        }
        let wait = interval * failures.clamp(1, MAX_BACKOFF_INTERVALS);
        tokio::time::sleep_until(started + wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Vec<Record<'_>>, ParseError> {
        Parser::new(text).collect()
    }

    fn error_of(text: &str) -> ParseError {
        match records(text) {
            Ok(r) => panic!("{text:?} parsed: {r:?}"),
            Err(e) => e,
        }
    }

    fn only_sample(text: &str) -> Sample<'_> {
        match records(text).expect("parses").as_slice() {
            [Record::Sample(s)] => s.clone(),
            other => panic!("one sample expected: {other:?}"),
        }
    }

    #[test]
    fn help_type_and_samples_are_read_with_labels_and_timestamps() {
        let text = "# HELP up Whether the target is up.\n# TYPE up gauge\n\
                    up{job=\"a\",instance=\"h:1\"} 1 1712345678000\nup 0\n";
        let r = records(text).expect("parses");
        assert_eq!(
            r[0],
            Record::Help {
                name: "up",
                text: "Whether the target is up.".into()
            }
        );
        assert_eq!(
            r[1],
            Record::Type {
                name: "up",
                kind: MetricKind::Gauge
            }
        );
        let Record::Sample(s) = &r[2] else {
            panic!("sample expected: {:?}", r[2]);
        };
        assert_eq!(s.name, "up");
        assert_eq!(s.value, 1.0);
        assert_eq!(s.timestamp_ms, Some(1_712_345_678_000));
        let labels: Vec<_> = s.labels.iter().collect();
        assert_eq!(
            labels,
            vec![
                ("job", Cow::Borrowed("a")),
                ("instance", Cow::Borrowed("h:1"))
            ]
        );
        let Record::Sample(bare) = &r[3] else {
            panic!("sample expected");
        };
        assert_eq!(bare.labels.iter().count(), 0);
        assert_eq!(bare.timestamp_ms, None);
    }

    #[test]
    fn escaped_label_values_are_unescaped_and_may_hold_braces_and_commas() {
        let s = only_sample(r#"m{path="C:\\dir\\f",msg="say \"hi\"\nbye",odd="}{,="} 2"#);
        assert_eq!(s.labels.get("path").as_deref(), Some(r"C:\dir\f"));
        assert_eq!(s.labels.get("msg").as_deref(), Some("say \"hi\"\nbye"));
        assert_eq!(s.labels.get("odd").as_deref(), Some("}{,="));
        assert_eq!(s.value, 2.0);
    }

    #[test]
    fn special_values_nan_and_infinities_are_read() {
        assert!(only_sample("m NaN").value.is_nan());
        assert_eq!(only_sample("m +Inf").value, f64::INFINITY);
        assert_eq!(only_sample("m -Inf").value, f64::NEG_INFINITY);
        assert_eq!(only_sample("m 1.5e3").value, 1500.0);
        assert_eq!(only_sample("m -0.25").value, -0.25);
    }

    #[test]
    fn blanks_trailing_commas_crlf_and_comments_are_accepted() {
        let text = "# a plain comment\r\n\r\n  m { a = \"1\" , b=\"2\", }\t3  \r\n#\n";
        let s = only_sample(text);
        assert_eq!(s.labels.get("b").as_deref(), Some("2"));
        assert_eq!(s.value, 3.0);
        assert_eq!(only_sample("m{} 4").labels.iter().count(), 0);
    }

    #[test]
    fn help_text_escapes_are_undone() {
        let r = records("# HELP m a \\\\ b\\nc\n").expect("parses");
        assert_eq!(
            r[0],
            Record::Help {
                name: "m",
                text: "a \\ b\nc".into()
            }
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_line_column_and_cause() {
        let cases: &[(&str, usize, usize, &str)] = &[
            (
                "ok 1\nm{a=\"1\" 2\n",
                2,
                9,
                "`,` or `}` was expected after label `a`",
            ),
            ("m{a=\"1\"", 1, 8, "no closing `}`"),
            ("m{a=\"1} 2", 1, 10, "label `a` has no closing `\"`"),
            ("m{a=1} 2", 1, 5, "must start with `\"`"),
            ("m{a} 2", 1, 4, "`=` was expected after label `a`"),
            ("m{9a=\"1\"} 2", 1, 3, "label name was expected"),
            ("m{a=\"1\",a=\"2\"} 2", 1, 9, "label `a` appears twice"),
            ("m{a=\"\\t\"} 2", 1, 6, "`\\t` is not an escape"),
            ("m", 1, 2, "no value"),
            ("m{a=\"1\"}", 1, 9, "no value"),
            ("m one", 1, 3, "`one` is not a sample value"),
            ("m 1 12.5", 1, 5, "`12.5` is not a timestamp"),
            ("m 1 2 3", 1, 7, "unexpected `3`"),
            ("9m 1", 1, 1, "`9m` is not a metric name"),
            ("m-x 1", 1, 1, "`m-x` is not a metric name"),
            ("# TYPE m gauges", 1, 10, "unknown metric type `gauges`"),
            ("# TYPE m gauge extra", 1, 16, "has text after the type"),
            ("# TYPE", 1, 7, "`# TYPE` needs a metric name"),
            ("# TYPE m ", 1, 10, "`# TYPE m` needs a type"),
            ("# HELP 1x y", 1, 8, "`1x` is not a metric name"),
            ("# TYPE m gauge\n# TYPE m counter", 2, 8, "second TYPE line"),
            ("# HELP m a\n# HELP m b", 2, 8, "second HELP line"),
            ("m 1\n# TYPE m gauge", 2, 8, "comes after its samples"),
            ("# HELP m bad \\x", 1, 14, "`\\x` is not an escape"),
        ];
        for (text, line, column, says) in cases {
            let e = error_of(text);
            assert_eq!((e.line, e.column), (*line, *column), "{text:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(says), "{text:?}: {msg:?} should say {says:?}");
            assert!(
                msg.starts_with(&format!("line {line}, column {column}: ")),
                "{msg}"
            );
        }
    }

    #[test]
    fn parsing_stops_at_the_first_bad_line() {
        let mut p = Parser::new("a 1\nb x\nc 3\n");
        assert!(matches!(p.next(), Some(Ok(Record::Sample(_)))));
        assert!(matches!(p.next(), Some(Err(_))));
        assert!(p.next().is_none());
    }

    #[test]
    fn invalid_utf8_is_reported_on_its_line() {
        let e = parse_utf8(b"a 1\nb{x=\"\xff\"} 2\n").expect_err("not UTF-8");
        assert_eq!((e.line, e.column, e.problem), (2, 6, Problem::NotUtf8));
    }

    #[test]
    fn no_input_makes_the_parser_panic() {
        // Every prefix and every single-byte corruption of a realistic body: errors are
        // fine, panics are not.
        let body = "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n\
                    # TYPE DCGM_FI_DEV_GPU_UTIL gauge\n\
                    DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-1\",Hostname=\"n\\\"1\",pod=\"p\"} 7 17\n";
        let bytes = body.as_bytes();
        let replacements = [
            b'"', b'\\', b'{', b'}', b',', b'=', b' ', b'\n', b'#', b'x', 0xff,
        ];
        for end in 0..=bytes.len() {
            if let Ok(text) = std::str::from_utf8(&bytes[..end]) {
                let _ = parse_dcgm(text, "c", Utc::now());
            }
        }
        for at in 0..bytes.len() {
            for r in replacements {
                let mut corrupt = bytes.to_vec();
                corrupt[at] = r;
                if let Ok(text) = parse_utf8(&corrupt) {
                    let _ = parse_dcgm(text, "c", Utc::now());
                }
            }
        }
    }

    #[test]
    fn a_label_set_repeated_from_the_family_before_is_checked_to_its_end() {
        // The second family's lines start with the first family's validated label text; each
        // must still be read exactly as if it stood alone.
        let first = "a{gpu=\"0\",UUID=\"GPU-1\",Hostname=\"n\\\"1\"} 1\n";
        let second = "b{gpu=\"0\",UUID=\"GPU-1\",Hostname=\"n\\\"1\"} 2";
        let replacements = [b'"', b'\\', b'}', b',', b'=', b' ', b'x', b'n'];
        let outcome = |r: Result<Vec<Record<'_>>, ParseError>| match r {
            Ok(mut v) => Ok(v.pop().map(|rec| format!("{rec:?}"))),
            Err(e) => Err((e.column, e.problem)),
        };
        let mut variants = vec![second.to_string(), format!("{second}x")];
        for at in 2..second.len() {
            for r in replacements {
                let mut corrupt = second.as_bytes().to_vec();
                corrupt[at] = r;
                variants.extend(String::from_utf8(corrupt).ok());
            }
            let mut longer = second.to_string();
            longer.insert(at, ',');
            variants.push(longer);
        }
        for line in &variants {
            let alone = outcome(records(line));
            let after_first = outcome(records(&format!("{first}{line}")));
            assert_eq!(after_first, alone, "{line:?}");
        }
    }

    const TWO_GPUS: &str = "\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-a\",modelName=\"NVIDIA H100 80GB HBM3\",hostname=\"node-1\",container=\"main\",namespace=\"ml\",pod=\"train-0\"} 93
DCGM_FI_DEV_GPU_UTIL{gpu=\"1\",UUID=\"GPU-b\",modelName=\"NVIDIA H100 80GB HBM3\",hostname=\"node-1\",container=\"\",namespace=\"\",pod=\"\"} 0
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu=\"1\",UUID=\"GPU-b\",modelName=\"NVIDIA H100 80GB HBM3\",hostname=\"node-1\",container=\"\",namespace=\"\",pod=\"\"} 79
DCGM_FI_DEV_XID_ERRORS{gpu=\"0\",UUID=\"GPU-a\",modelName=\"NVIDIA H100 80GB HBM3\",hostname=\"node-1\",container=\"main\",namespace=\"ml\",pod=\"train-0\"} 0
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-a\",modelName=\"NVIDIA H100 80GB HBM3\",hostname=\"node-1\",container=\"main\",namespace=\"ml\",pod=\"train-0\"} NaN
# TYPE DCGM_FI_DEV_CLOCK_THROTTLE_REASONS gauge
DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{gpu=\"0\",UUID=\"GPU-a\",hostname=\"node-1\"} 68
# TYPE DCGM_FI_DEV_UNKNOWN_THING gauge
DCGM_FI_DEV_UNKNOWN_THING{cpu=\"3\"} 1
";

    #[test]
    fn lowercase_hostname_pod_labels_and_reordered_families_build_each_gpu_once() {
        let gpus = parse_dcgm(TWO_GPUS, "c1", Utc::now()).expect("parses");
        assert_eq!(gpus.len(), 2, "{gpus:#?}");
        let (a, b) = (&gpus[0], &gpus[1]);
        assert_eq!(
            (a.uuid.as_str(), a.index, a.node.as_str()),
            ("GPU-a", 0, "node-1")
        );
        assert_eq!(a.cluster, "c1");
        assert_eq!(
            a.holder,
            Some(PodRef {
                namespace: "ml".into(),
                pod: "train-0".into(),
                container: Some("main".into())
            })
        );
        assert_eq!(a.utilization_pct, Some(93.0));
        assert_eq!(a.xid_last, None, "XID 0 means none");
        assert_eq!(a.memory_used_mib, None, "NaN is no reading");
        assert_eq!(
            a.throttle_reasons,
            Some(vec![
                ThrottleReason::SwPowerCap,
                ThrottleReason::HwThermalSlowdown
            ]),
            "a series with fewer labels still finds its GPU"
        );
        assert_eq!(b.holder, None, "empty pod labels hold nothing");
        assert_eq!(b.xid_last, Some(79));
    }

    #[test]
    fn mig_instances_are_separate_devices_with_engine_activity_as_utilisation() {
        let text = "\
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu=\"0\",UUID=\"GPU-m\",Hostname=\"n\",GPU_I_PROFILE=\"1g.10gb\",GPU_I_ID=\"7\"} 0.25
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu=\"0\",UUID=\"GPU-m\",Hostname=\"n\",GPU_I_PROFILE=\"3g.40gb\",GPU_I_ID=\"1\"} 0.5
";
        let gpus = parse_dcgm(text, "c", Utc::now()).expect("parses");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].mig_enabled, Some(true));
        assert_eq!(
            gpus[0].mig_instance,
            Some(MigInstance {
                gpu_instance_id: 7,
                profile: Some("1g.10gb".into())
            })
        );
        assert_eq!(gpus[0].utilization_pct, Some(25.0));
        assert_eq!(gpus[1].utilization_pct, Some(50.0));
    }

    #[test]
    fn huge_and_negative_counters_neither_wrap_nor_panic() {
        let text = "\
DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-h\"} 1e300
DCGM_FI_DEV_FB_FREE{gpu=\"0\",UUID=\"GPU-h\"} 1e300
DCGM_FI_DEV_FB_RESERVED{gpu=\"0\",UUID=\"GPU-h\"} +Inf
DCGM_FI_DEV_XID_ERRORS{gpu=\"0\",UUID=\"GPU-h\"} 1e20
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu=\"0\",UUID=\"GPU-h\"} -3
";
        let gpus = parse_dcgm(text, "c", Utc::now()).expect("parses");
        let g = &gpus[0];
        assert_eq!(g.memory_used_mib, Some(u64::MAX));
        assert_eq!(g.memory_total_mib, Some(u64::MAX));
        assert_eq!(g.xid_last, Some(u32::MAX));
        assert_eq!(g.ecc_dbe_volatile, None);
    }

    #[test]
    fn a_gpu_family_sample_without_gpu_labels_is_an_error_naming_its_line() {
        let e = parse_dcgm(
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{Hostname=\"n\"} 1\n",
            "c",
            Utc::now(),
        )
        .expect_err("no identity");
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().contains("neither a `gpu` nor a `UUID`"),
            "{e}"
        );
        let e = parse_dcgm("DCGM_FI_DEV_GPU_UTIL{gpu=\"zero\"} 1\n", "c", Utc::now())
            .expect_err("bad index");
        assert!(e.to_string().contains("label `gpu` is `zero`"), "{e}");
    }
}
