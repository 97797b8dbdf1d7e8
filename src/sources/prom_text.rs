//! The one Prometheus text exposition (0.0.4) parser of the client side, shared by every source
//! that reads `/metrics` (dcgm-exporter, vLLM, Triton, KServe): strict, line by line, with
//! `# HELP`/`# TYPE`, escaped label values, `NaN`/`±Inf` and timestamps. Imports nothing of the
//! crate.
//!
//! Hand-written rather than `prometheus-parse`: that crate runs a regex per line, reads label
//! values with `[^}]+` (a `}` inside a value breaks it) and silently skips lines it cannot match;
//! a scrape of 40,000 GPUs is ~900,000 lines, and a bad line must be reported, not dropped. A
//! sample borrows its name and label text from the body, so reading one allocates nothing unless
//! a value holds an escape.

use std::borrow::Cow;
use std::collections::HashSet;

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
pub fn parse_value(s: &str) -> Option<f64> {
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
}
