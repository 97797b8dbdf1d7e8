//! `store export` / `store import`: the whole store as JSON lines, one record a line after a
//! versioned header, to compact a store (export, import into a new directory) or move it.
//!
//! Audit records travel byte for byte (the entry's JSON as a string, with both hashes), so the
//! imported chain is the same chain and verifies; timelines and the head are rebuilt from it.
//! An import is checked whole before anything is written, then written in one batch, and only
//! into a store that holds nothing yet: a bad line costs nothing.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::writer::{Op, OpResult};
use super::{Store, StoreError, audit, keys, writer};
use crate::model::incident::Incident;

/// The header's `format`.
pub const EXPORT_FORMAT: &str = "fleetdeck-store-export";
/// The version this fleetdeck writes and reads.
pub const EXPORT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exported_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Store keys and values, as an import writes them.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// One line after the header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Audit {
        seq: u64,
        prev: String,
        hash: String,
        /// The entry's JSON exactly as hashed.
        body: String,
    },
    Incident {
        incident: Box<Incident>,
    },
    Group {
        group: String,
        incident: u64,
    },
    Cooldown {
        key: String,
        value: serde_json::Value,
    },
    Idempotency {
        key: String,
        value: serde_json::Value,
    },
    Dedup {
        key: String,
        value: serde_json::Value,
    },
    Journal {
        key: String,
        value: serde_json::Value,
    },
    Approval {
        key: String,
        value: serde_json::Value,
    },
    Checkpoint {
        seq: u64,
    },
    NextIncident {
        id: u64,
    },
}

const MEMORY: [u8; 5] = [
    keys::COOLDOWN,
    keys::IDEMPOTENCY,
    keys::DEDUP,
    keys::JOURNAL,
    keys::APPROVAL,
];

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{source_name} line {line}: {reason}; nothing was imported")]
    Line {
        source_name: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{source_name}: the exported audit chain does not verify ({problem}); nothing was imported"
    )]
    Chain {
        source_name: String,
        problem: audit::AuditProblem,
    },
    #[error("{source_name}: {source}")]
    Io {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an export or an import carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    pub lines: u64,
    pub audit_records: u64,
    pub incidents: u64,
}

fn text(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned()
}

impl Store {
    /// Writes every record to `out`: the header line, then one JSON object a line.
    pub fn export(
        &self,
        out: &mut dyn Write,
        source_name: &str,
    ) -> Result<TransferReport, TransferError> {
        let io = |source| TransferError::Io {
            source_name: source_name.to_owned(),
            source,
        };
        let mut report = TransferReport::default();
        let mut put = |line: &dyn erased::Line, report: &mut TransferReport| {
            let json = line.to_json().map_err(|e| io(std::io::Error::other(e)))?;
            out.write_all(json.as_bytes()).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
            report.lines += 1;
            Ok::<(), TransferError>(())
        };
        put(
            &Header {
                format: EXPORT_FORMAT.into(),
                version: EXPORT_VERSION,
                exported_at: Some(chrono::Utc::now()),
            },
            &mut report,
        )?;
        let db = self.backend();
        for kv in db.scan(&[keys::AUDIT], false) {
            let (k, v) = kv?;
            let seq = keys::read_num(&k, 0).unwrap_or(0);
            let record = audit::Record::parse(&v).map_err(|reason| StoreError::Decode {
                path: self.path().to_path_buf(),
                key: format!("audit #{seq}"),
                reason,
            })?;
            let line = Line::Audit {
                seq: record.seq,
                prev: audit::hex(&record.prev),
                hash: audit::hex(&record.hash),
                body: String::from_utf8_lossy(record.body).into_owned(),
            };
            put(&line, &mut report)?;
            report.audit_records += 1;
        }
        for kv in db.scan(&[keys::INCIDENT], false) {
            let (k, v) = kv?;
            let incident: Incident = self.decode(&k, &v)?;
            put(
                &Line::Incident {
                    incident: Box::new(incident),
                },
                &mut report,
            )?;
            report.incidents += 1;
        }
        for kv in db.scan(&[keys::GROUP], false) {
            let (k, v) = kv?;
            if let Ok(id) = <[u8; 8]>::try_from(v.as_ref()) {
                let line = Line::Group {
                    group: text(&k),
                    incident: u64::from_be_bytes(id),
                };
                put(&line, &mut report)?;
            }
        }
        for prefix in MEMORY {
            for kv in db.scan(&[prefix], false) {
                let (k, v) = kv?;
                let value: serde_json::Value = self.decode(&k, &v)?;
                let key = text(&k);
                let line = match prefix {
                    keys::COOLDOWN => Line::Cooldown { key, value },
                    keys::IDEMPOTENCY => Line::Idempotency { key, value },
                    keys::DEDUP => Line::Dedup { key, value },
                    keys::APPROVAL => Line::Approval { key, value },
                    _ => Line::Journal { key, value },
                };
                put(&line, &mut report)?;
            }
        }
        for (name, make) in [
            (
                "checkpoint",
                (|n| Line::Checkpoint { seq: n }) as fn(u64) -> Line,
            ),
            ("next_incident", |n| Line::NextIncident { id: n }),
        ] {
            if let Some(v) = db.get(&keys::meta(name))?
                && let Ok(n) = <[u8; 8]>::try_from(v.as_slice())
            {
                put(&make(u64::from_be_bytes(n)), &mut report)?;
            }
        }
        out.flush().map_err(io)?;
        Ok(report)
    }

    /// Reads an export and, when every line is good and its chain verifies, writes it into
    /// this store, which must hold nothing yet. `source_name` names the input in errors.
    pub fn import(
        &self,
        input: impl BufRead,
        source_name: &str,
    ) -> Result<TransferReport, TransferError> {
        let held = self
            .stats()?
            .trees
            .iter()
            .filter(|(name, _)| name != "meta")
            .map(|(_, n)| n)
            .sum::<u64>();
        if held > 0 {
            return Err(StoreError::NotEmpty {
                path: self.path().to_path_buf(),
                records: held,
            }
            .into());
        }
        let (records, report) = read_export(input, source_name)?;
        match self.submit_one(Op::Import { records })? {
            OpResult::Done => Ok(report),
            other => Err(writer::unexpected(other).into()),
        }
    }
}

fn unhex(s: &str) -> Option<[u8; audit::HASH_LEN]> {
    if s.len() != audit::HASH_LEN * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; audit::HASH_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Parses and checks a whole export; returns the store's keys and values.
fn read_export(
    input: impl BufRead,
    source_name: &str,
) -> Result<(Records, TransferReport), TransferError> {
    let bad = |line: usize, reason: String| TransferError::Line {
        source_name: source_name.to_owned(),
        line,
        reason,
    };
    let mut report = TransferReport::default();
    let mut audit_records: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    let mut other: Records = Vec::new();
    let mut last: Option<(u64, [u8; audit::HASH_LEN])> = None;
    let mut checkpoint = None;
    let mut header_seen = false;
    for (index, line) in input.lines().enumerate() {
        let n = index + 1;
        let line = line.map_err(|e| bad(n, format!("cannot be read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        if !header_seen {
            let header: Header = serde_json::from_str(&line).map_err(|e| {
                bad(
                    n,
                    format!("not a fleetdeck store export header ({e}); expected {{\"format\":\"{EXPORT_FORMAT}\",\"version\":{EXPORT_VERSION}}}"),
                )
            })?;
            if header.format != EXPORT_FORMAT {
                return Err(bad(
                    n,
                    format!("format {:?} is not {EXPORT_FORMAT:?}", header.format),
                ));
            }
            if header.version != EXPORT_VERSION {
                return Err(bad(
                    n,
                    format!(
                        "export version {} is not {EXPORT_VERSION}, the version this fleetdeck reads",
                        header.version
                    ),
                ));
            }
            header_seen = true;
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| bad(n, e.to_string()))?;
        match parsed {
            Line::Audit {
                seq,
                prev,
                hash,
                body,
            } => {
                let prev = unhex(&prev).ok_or_else(|| {
                    bad(n, format!("audit record #{seq}: prev is not a hex SHA-256"))
                })?;
                let hash = unhex(&hash).ok_or_else(|| {
                    bad(n, format!("audit record #{seq}: hash is not a hex SHA-256"))
                })?;
                if let Some((before, _)) = last
                    && seq <= before
                {
                    return Err(bad(
                        n,
                        format!("audit record #{seq} comes after #{before}: records must ascend"),
                    ));
                }
                let (bytes, computed) = audit::encode(seq, &prev, body.as_bytes());
                if computed != hash {
                    return Err(bad(
                        n,
                        format!(
                            "audit record #{seq} was altered: its body does not match its hash"
                        ),
                    ));
                }
                let entry: crate::model::incident::Entry =
                    serde_json::from_str(&body).map_err(|e| {
                        bad(
                            n,
                            format!("audit record #{seq}: its entry cannot be read: {e}"),
                        )
                    })?;
                if let Some(id) = entry.entry.incident {
                    other.push((keys::pair(keys::TIMELINE, id, seq), Vec::new()));
                }
                audit_records.insert(keys::num(keys::AUDIT, seq), bytes);
                last = Some((seq, hash));
                report.audit_records += 1;
            }
            Line::Incident { incident } => {
                let value = serde_json::to_vec(&incident).map_err(|e| bad(n, e.to_string()))?;
                other.push((keys::num(keys::INCIDENT, incident.id), value));
                report.incidents += 1;
            }
            Line::Group { group, incident } => {
                other.push((
                    keys::text(keys::GROUP, &group),
                    incident.to_be_bytes().to_vec(),
                ));
            }
            Line::Cooldown { key, value } => other.push(memory(keys::COOLDOWN, &key, &value)),
            Line::Idempotency { key, value } => other.push(memory(keys::IDEMPOTENCY, &key, &value)),
            Line::Dedup { key, value } => other.push(memory(keys::DEDUP, &key, &value)),
            Line::Journal { key, value } => other.push(memory(keys::JOURNAL, &key, &value)),
            Line::Approval { key, value } => other.push(memory(keys::APPROVAL, &key, &value)),
            Line::Checkpoint { seq } => {
                checkpoint = Some(seq);
                other.push((keys::meta("checkpoint"), seq.to_be_bytes().to_vec()));
            }
            Line::NextIncident { id } => {
                other.push((keys::meta("next_incident"), id.to_be_bytes().to_vec()));
            }
        }
    }
    if !header_seen {
        return Err(bad(1, "the file is empty: no export header".into()));
    }
    let head = last;
    let verdict = audit::verify_records(
        audit_records
            .iter()
            .map(|(k, v)| Ok::<_, std::convert::Infallible>((k, v))),
        head,
        checkpoint,
        |seq| Ok(audit_records.get(&keys::num(keys::AUDIT, seq)).cloned()),
    );
    let verdict = match verdict {
        Ok(v) => v,
        Err(never) => match never {},
    };
    if let Some(problem) = verdict.problem {
        return Err(TransferError::Chain {
            source_name: source_name.to_owned(),
            problem,
        });
    }
    if let Some((seq, hash)) = head {
        other.push((keys::meta("head"), audit::head_value(seq, &hash)));
    }
    other.extend(audit_records);
    Ok((other, report))
}

fn memory(prefix: u8, key: &str, value: &serde_json::Value) -> (Vec<u8>, Vec<u8>) {
    (keys::text(prefix, key), value.to_string().into_bytes())
}

/// Lets the header and the record lines share one writer closure.
mod erased {
    pub trait Line {
        fn to_json(&self) -> serde_json::Result<String>;
    }

    impl<T: serde::Serialize> Line for T {
        fn to_json(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
    }
}
