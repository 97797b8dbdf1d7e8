//! The evaluated picture's wire form, for the daemon's live stream (`GET /api/v1/stream`) and
//! the cockpit attached to it: an [`Evaluated`], the store's incidents and the executor's runs
//! and approvals split into keyed parts (one per node, deployment, GPU, endpoint, signal,
//! incident, run, approval, history series, plus a `meta` part), so that a `delta` carries
//! only the parts that changed. [`Splitter`] is the daemon's side (it remembers the last text
//! of every part and re-serialises only what an `Arc` says may have changed), [`Rebuilder`]
//! the client's (it keeps the typed parts and rebuilds an `Evaluated` from them). A GPU's
//! readings change on every DCGM round, so its part holds only what changes seldom (identity,
//! health counters, holder) and a short index; the readings travel as one `gpus+` part of
//! positional rows, only for the GPUs whose readings moved by what a pane prints (see
//! [`Readings`]), and the client's GPUs print the daemon's figures. Pods and the
//! GPU history are not on the wire (150,000 pods are for a cockpit with a kubeconfig). May
//! import model and runbook.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Evaluated;
use crate::model::cost::{CostReport, CostSourceStatus};
use crate::model::endpoint::EndpointModel;
use crate::model::gpu::{GpuModel, GpuSourceStatus};
use crate::model::incident::Incident;
use crate::model::registry::RegisteredModelView;
use crate::model::signal::{Severity, Signal};
use crate::model::{
    ClusterSnapshot, DeploymentModel, HeldSignal, NodeModel, Sample, Snapshot, StoreDown,
};
use crate::runbook::approvals::PendingApproval;
use crate::runbook::executor::RunRecord;
use crate::runbook::{Mode, RunbookMeta};

/// Who sent the stream: a daemon run. `instance` is new at every start, so a client notices a
/// restarted daemon and reloads its picture rather than merging two runs' sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub instance: String,
    pub version: String,
    pub name: String,
    /// The daemon watches a fleet `fleetdeck sim` serves: every face marks it SIMULATED FLEET.
    #[serde(default)]
    pub simulated: bool,
}

/// One line of the stream (NDJSON). Parts are keyed JSON values; see the module's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello {
        seq: u64,
        daemon: DaemonInfo,
    },
    /// Every part: the client drops what it held and takes these.
    Picture {
        seq: u64,
        parts: BTreeMap<String, Value>,
    },
    /// The parts that changed (`set`) and those that are gone (`del`) since `seq - 1`.
    Delta {
        seq: u64,
        #[serde(default)]
        set: BTreeMap<String, Value>,
        #[serde(default)]
        del: Vec<String>,
    },
    /// Nothing changed; the connection and the daemon are alive.
    Heartbeat {
        seq: u64,
        at: DateTime<Utc>,
    },
}

/// The evaluation's counters and the snapshot's small fields: one part, sent with every
/// evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub seq: u64,
    pub at: Option<DateTime<Utc>>,
    pub recording: bool,
    pub recorded: u64,
    pub store_error: Option<String>,
    #[serde(default)]
    pub started_runs: Vec<String>,
    /// `Evaluated::raised_total` as rows: JSON maps want string keys.
    #[serde(default)]
    pub raised_total: Vec<(String, Severity, u64)>,
    pub incidents_opened_total: u64,
    pub version: u64,
    pub taken_at: Option<DateTime<Utc>>,
    /// The clusters' and signals' order (most severe first), which keyed parts lose.
    #[serde(default)]
    pub cluster_order: Vec<String>,
    #[serde(default)]
    pub signal_order: Vec<String>,
    #[serde(default)]
    pub finding_kinds: Vec<String>,
    #[serde(default)]
    pub unknown_since_start: Vec<HeldSignal>,
    #[serde(default)]
    pub store_down: Option<StoreDown>,
    #[serde(default)]
    pub gpu_sources: Vec<GpuSourceStatus>,
    #[serde(default)]
    pub cost_source: Option<CostSourceStatus>,
}

/// The executor's global state, as the Runbooks pane shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomationShell {
    pub mode: Mode,
    pub read_only: bool,
    pub kill: Option<String>,
}

/// What the executor holds, copied for the stream (the daemon's) or rebuilt from it (the
/// client's).
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationData {
    pub shell: AutomationShell,
    pub runbooks: Vec<RunbookMeta>,
    /// Newest first.
    pub runs: Vec<RunRecord>,
    /// Oldest first.
    pub pending: Vec<PendingApproval>,
}

/// What one stream message is made of on the daemon.
pub struct Frame<'a> {
    pub evaluated: &'a Evaluated,
    /// Replaced (a new `Arc`) only when the store was read again.
    pub incidents: &'a Arc<Vec<Incident>>,
    pub automation: Option<&'a AutomationData>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the stream's part {key} cannot be written: {source}")]
    Write {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the daemon's part {key} does not read as this build expects: {source}; attach with a fleetdeck of the daemon's version"
    )]
    Read {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A cluster name inside a key: `/` separates the key's fields, so it is escaped.
fn esc(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn unesc(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

/// The changes one frame made: parts to set (as JSON text) and parts gone.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Change {
    pub set: Vec<(String, String)>,
    pub del: Vec<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.del.is_empty()
    }
}

/// The parts of one source of change (a cluster, the GPUs, the signals…) and the `Arc` they
/// were made from: an unchanged `Arc` is not serialised again.
#[derive(Default)]
struct Section {
    ptr: usize,
    parts: BTreeMap<String, String>,
}

/// The daemon's side: the last text of every part, by section.
#[derive(Default)]
pub struct Splitter {
    sections: HashMap<String, Section>,
    /// The history last split, to send a series' new samples rather than all of it.
    history_prev: Option<Arc<crate::model::History>>,
    gpus: GpuTable,
}

/// The GPUs' fast readings as last sent, by the short index each GPU was given when it
/// first appeared (its `gpu/` part names it): they travel as `gpus+` rows, not in the part.
#[derive(Default)]
struct GpuTable {
    index: HashMap<String, u32>,
    next: u32,
    readings: BTreeMap<u32, Readings>,
    sampled: BTreeMap<u32, DateTime<Utc>>,
}

fn text<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<String, WireError> {
    serde_json::to_string(value).map_err(|source| WireError::Write {
        key: key.to_string(),
        source,
    })
}

/// A pointer that stands for "this part may have changed" (`0`: always look).
fn ptr_of<T>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as *const () as usize
}

impl Splitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every keyed part now, for a picture (which adds the GPUs' `gpus+` readings).
    pub fn parts(&self) -> impl Iterator<Item = (&String, &String)> {
        self.sections.values().flat_map(|s| s.parts.iter())
    }

    /// How many parts the picture has.
    pub fn len(&self) -> usize {
        let plus = usize::from(!self.gpus.readings.is_empty());
        self.sections.values().map(|s| s.parts.len()).sum::<usize>() + plus
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a frame; answers what changed since the last one.
    pub fn update(&mut self, frame: &Frame) -> Result<Change, WireError> {
        let mut change = Change::default();
        let mut seen: Vec<String> = vec!["history".to_string()];
        let e = frame.evaluated;
        let snap = &e.snapshot;
        self.history(snap, &mut change)?;
        // The GPUs come after the parts `apply` pushes, so that `gpus+` follows `meta`.
        let mut gpu_change = Change::default();
        let mut apply = |this: &mut Self,
                         id: String,
                         ptr: usize,
                         make: &mut dyn FnMut() -> Result<BTreeMap<String, String>, WireError>|
         -> Result<(), WireError> {
            seen.push(id.clone());
            let section = this.sections.entry(id).or_default();
            if ptr != 0 && section.ptr == ptr && !section.parts.is_empty() {
                return Ok(());
            }
            let parts = make()?;
            for (k, v) in &parts {
                if section.parts.get(k) != Some(v) {
                    change.set.push((k.clone(), v.clone()));
                }
            }
            for k in section.parts.keys() {
                if !parts.contains_key(k) {
                    change.del.push(k.clone());
                }
            }
            section.ptr = ptr;
            section.parts = parts;
            Ok(())
        };

        let meta = Meta {
            seq: e.seq,
            at: e.at,
            recording: e.recording,
            recorded: e.recorded,
            store_error: e.store_error.clone(),
            started_runs: e.started_runs.clone(),
            raised_total: e
                .raised_total
                .iter()
                .map(|((k, s), n)| (k.clone(), *s, *n))
                .collect(),
            incidents_opened_total: e.incidents_opened_total,
            version: snap.version,
            taken_at: snap.taken_at,
            cluster_order: snap.clusters.iter().map(|c| c.name.clone()).collect(),
            signal_order: snap.signals.iter().map(|s| s.dedup_key.clone()).collect(),
            finding_kinds: snap.finding_kinds.clone(),
            unknown_since_start: snap.unknown_since_start.clone(),
            store_down: snap.store_down.clone(),
            gpu_sources: snap.gpu_sources.clone(),
            cost_source: snap.cost_source.clone(),
        };
        apply(self, "meta".into(), 0, &mut || {
            Ok(BTreeMap::from([("meta".to_string(), text("meta", &meta)?)]))
        })?;
        for cluster in &snap.clusters {
            let name = esc(&cluster.name);
            apply(
                self,
                format!("cluster/{name}"),
                ptr_of(cluster),
                &mut || cluster_parts(cluster, &name),
            )?;
        }
        self.gpus(snap, &mut gpu_change)?;
        apply(self, "endpoints".into(), 0, &mut || {
            let mut out = BTreeMap::new();
            for (i, ep) in snap.endpoints.iter().enumerate() {
                let key = format!("endpoint/{i:04}");
                out.insert(key.clone(), text(&key, ep.as_ref())?);
            }
            for (i, m) in snap.models.iter().enumerate() {
                let key = format!("model/{i:04}");
                out.insert(key.clone(), text(&key, m.as_ref())?);
            }
            Ok(out)
        })?;
        let cost_ptr = snap.cost.as_ref().map(ptr_of).unwrap_or(0);
        apply(self, "cost".into(), cost_ptr, &mut || {
            let mut out = BTreeMap::new();
            if let Some(c) = &snap.cost {
                out.insert("cost".to_string(), text("cost", c.as_ref())?);
            }
            Ok(out)
        })?;
        let airflow_ptr = snap.airflow.as_ref().map(ptr_of).unwrap_or(0);
        apply(self, "airflow".into(), airflow_ptr, &mut || {
            let mut out = BTreeMap::new();
            if let Some(a) = &snap.airflow {
                out.insert("airflow".to_string(), text("airflow", a.as_ref())?);
            }
            Ok(out)
        })?;
        apply(self, "signals".into(), 0, &mut || {
            snap.signals
                .iter()
                .map(|s| {
                    let key = format!("signal/{}", s.dedup_key);
                    let t = text(&key, s)?;
                    Ok((key, t))
                })
                .collect()
        })?;
        apply(
            self,
            "incidents".into(),
            ptr_of(frame.incidents),
            &mut || {
                frame
                    .incidents
                    .iter()
                    .map(|i| {
                        let key = format!("incident/{:010}", i.id);
                        let t = text(&key, i)?;
                        Ok((key, t))
                    })
                    .collect()
            },
        )?;
        apply(self, "automation".into(), 0, &mut || {
            let mut out = BTreeMap::new();
            let Some(a) = frame.automation else {
                return Ok(out);
            };
            out.insert("automation".to_string(), text("automation", &a.shell)?);
            for r in &a.runbooks {
                let key = format!("runbook/{}", r.name);
                out.insert(key.clone(), text(&key, r)?);
            }
            for r in &a.runs {
                let key = format!("run/{}", r.id);
                out.insert(key.clone(), text(&key, r)?);
            }
            for p in &a.pending {
                let key = format!("approval/{:010}", p.id);
                out.insert(key.clone(), text(&key, p)?);
            }
            Ok(out)
        })?;
        seen.push("gpus".to_string());
        change.set.extend(gpu_change.set);
        change.del.extend(gpu_change.del);
        // A cluster that left the picture takes its parts with it.
        let gone: Vec<String> = self
            .sections
            .keys()
            .filter(|id| !seen.contains(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(s) = self.sections.remove(&id) {
                change.del.extend(s.parts.into_keys());
            }
        }
        Ok(change)
    }
}

impl Splitter {
    /// The history series: a series that only gained samples at its end (and lost old ones at
    /// its start) travels as `history+/SERIES` `{drop, add}`, not whole (an hour of samples).
    fn history(&mut self, snap: &Snapshot, change: &mut Change) -> Result<(), WireError> {
        let ptr = ptr_of(&snap.history);
        let prev = self.history_prev.clone();
        let section = self.sections.entry("history".to_string()).or_default();
        if section.ptr == ptr && !section.parts.is_empty() {
            return Ok(());
        }
        let mut parts = BTreeMap::new();
        for (series, samples) in snap.history.iter() {
            let key = format!("history/{series}");
            let t = text(&key, samples)?;
            if section.parts.get(&key) != Some(&t) {
                let appended = prev
                    .as_ref()
                    .and_then(|p| p.get(series))
                    .and_then(|old| appended(old, samples));
                match appended {
                    Some((drop, add)) => {
                        let k = format!("history+/{series}");
                        let v = text(&k, &serde_json::json!({ "drop": drop, "add": add }))?;
                        change.set.push((k, v));
                    }
                    None => change.set.push((key.clone(), t.clone())),
                }
            }
            parts.insert(key, t);
        }
        for k in section.parts.keys() {
            if !parts.contains_key(k) {
                change.del.push(k.clone());
            }
        }
        section.ptr = ptr;
        section.parts = parts;
        self.history_prev = Some(snap.history.clone());
        Ok(())
    }
}

impl Splitter {
    /// The GPUs: each one's `gpu/` part (identity and slow fields, with its short index) when
    /// it changes, and one `gpus+` part holding only the readings that moved by what a pane
    /// shows, and the new sample times as runs of indices (a source's GPUs share one).
    fn gpus(&mut self, snap: &Snapshot, change: &mut Change) -> Result<(), WireError> {
        let ptr = ptr_of(&snap.gpus);
        let section = self.sections.entry("gpus".to_string()).or_default();
        if section.ptr == ptr && (!section.parts.is_empty() || snap.gpus.is_empty()) {
            return Ok(());
        }
        let table = &mut self.gpus;
        let keys: Vec<String> = snap.gpus.iter().map(gpu_key).collect();
        // New GPUs get indices in key order, so that a cluster's GPUs make one run.
        let mut new: Vec<&String> = keys
            .iter()
            .filter(|k| !table.index.contains_key(*k))
            .collect();
        new.sort();
        for k in new {
            table.index.insert(k.clone(), table.next);
            table.next = table.next.wrapping_add(1);
        }
        let mut parts = BTreeMap::new();
        let mut rows = Vec::new();
        let mut stamps = Vec::new();
        for (g, key) in snap.gpus.iter().zip(keys) {
            let Some(&i) = table.index.get(&key) else {
                continue;
            };
            let t = text(&key, &GpuPartRef { i, g: &slow(g) })?;
            if section.parts.get(&key) != Some(&t) {
                change.set.push((key.clone(), t.clone()));
            }
            parts.insert(key, t);
            let r = Readings::of(g);
            if table.readings.get(&i) != Some(&r) {
                rows.push(r.row(i));
                table.readings.insert(i, r);
            }
            if table.sampled.get(&i) != Some(&g.sampled_at) {
                stamps.push((i, g.sampled_at));
                table.sampled.insert(i, g.sampled_at);
            }
        }
        for k in section.parts.keys() {
            if !parts.contains_key(k) {
                change.del.push(k.clone());
                if let Some(i) = table.index.remove(k) {
                    table.readings.remove(&i);
                    table.sampled.remove(&i);
                }
            }
        }
        section.ptr = ptr;
        section.parts = parts;
        if !rows.is_empty() || !stamps.is_empty() {
            rows.sort_by_key(|r| r.0);
            let plus = GpusPlus {
                r: rows,
                at: stamp_runs(stamps),
            };
            change
                .set
                .push((GPUS_PLUS.to_string(), text(GPUS_PLUS, &plus)?));
        }
        Ok(())
    }

    /// Every GPU's readings and sample time, for a picture; `None` when there are no GPUs.
    fn gpus_whole(&self) -> Option<String> {
        let t = &self.gpus;
        if t.readings.is_empty() {
            return None;
        }
        let plus = GpusPlus {
            r: t.readings.iter().map(|(i, r)| r.row(*i)).collect(),
            at: stamp_runs(t.sampled.iter().map(|(i, at)| (*i, *at)).collect()),
        };
        // Serialising plain numbers and times cannot fail; a picture without the readings
        // would still show every GPU, with its readings unknown.
        serde_json::to_string(&plus).ok()
    }
}

/// The key of the compact GPU readings, in a picture and in a delta. It sorts after every
/// `gpu/` key, so a client has taken a new GPU's part before its readings.
const GPUS_PLUS: &str = "gpus+";

fn gpu_key(g: &GpuModel) -> String {
    format!(
        "gpu/{}/{}/{:04}/{}",
        esc(&g.cluster),
        g.node,
        g.index,
        g.uuid
    )
}

/// A GPU without its fast readings (they travel in `gpus+`), so its part changes only when
/// its identity, health counters, holder or status do.
fn slow(g: &GpuModel) -> GpuModel {
    GpuModel {
        utilization_pct: None,
        memory_used_mib: None,
        memory_free_mib: None,
        temperature_c: None,
        power_w: None,
        sm_clock_mhz: None,
        sampled_at: DateTime::<Utc>::UNIX_EPOCH,
        ..g.clone()
    }
}

#[derive(Serialize)]
struct GpuPartRef<'a> {
    i: u32,
    g: &'a GpuModel,
}

#[derive(Deserialize)]
struct GpuPart {
    i: u32,
    g: GpuModel,
}

/// One `gpus+` row: the index and the readings, positionally.
type Row = (
    u32,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

#[derive(Serialize, Deserialize)]
struct GpusPlus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<Row>,
    /// New sample times, each with the runs of indices (`[first, last]`) it is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    at: Vec<Stamp>,
}

/// A sample time and the runs of indices (`[first, last]`) it is for.
type Stamp = (DateTime<Utc>, Vec<(u32, u32)>);

fn stamp_runs(mut stamps: Vec<(u32, DateTime<Utc>)>) -> Vec<Stamp> {
    stamps.sort_by_key(|s| s.0);
    let mut by_time: BTreeMap<DateTime<Utc>, Vec<(u32, u32)>> = BTreeMap::new();
    for (i, at) in stamps {
        let runs = by_time.entry(at).or_default();
        match runs.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(i) => last.1 = i,
            _ => runs.push((i, i)),
        }
    }
    by_time.into_iter().collect()
}

/// A GPU's fast readings at the precision the panes and wall tiles print them: utilisation
/// in whole percent with the side it was rounded from (quarters: `4 × shown ± 1`, so that
/// "idle under N %" reads the same as on the daemon), memory in tenths of GiB, °C and W whole,
/// the SM clock in MHz. A reading that moved less than that is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Readings([Option<i64>; 6]);

/// Rounds as `format!("{x:.0}")` does (ties to even), so the shown figure is the sent one.
fn shown(x: f64) -> Option<i64> {
    x.is_finite().then(|| x.round_ties_even() as i64)
}

fn tenth_gib(mib: u64) -> i64 {
    (mib as f64 * 10.0 / 1024.0).round_ties_even() as i64
}

impl Readings {
    fn of(g: &GpuModel) -> Self {
        let util = g.utilization_pct.and_then(|u| {
            let q = shown(u)?;
            let side = match u.partial_cmp(&(q as f64)) {
                Some(std::cmp::Ordering::Less) => -1,
                Some(std::cmp::Ordering::Greater) => 1,
                _ => 0,
            };
            Some(4 * q + side)
        });
        Readings([
            util,
            g.memory_used_mib.map(tenth_gib),
            g.memory_free_mib.map(tenth_gib),
            g.temperature_c.and_then(shown),
            g.power_w.and_then(shown),
            g.sm_clock_mhz.map(i64::from),
        ])
    }

    fn row(&self, i: u32) -> Row {
        let [a, b, c, d, e, f] = self.0;
        (i, a, b, c, d, e, f)
    }

    /// Sets the readings of `g` to values that print as the daemon's do.
    fn apply(row: &Row, g: &mut GpuModel) {
        let mib = |t: i64| (t as f64 * 102.4).round().max(0.0) as u64;
        g.utilization_pct = row.1.map(|u| u as f64 / 4.0);
        g.memory_used_mib = row.2.map(mib);
        g.memory_free_mib = row.3.map(mib);
        g.temperature_c = row.4.map(|t| t as f64);
        g.power_w = row.5.map(|p| p as f64);
        g.sm_clock_mhz = row.6.and_then(|c| u32::try_from(c).ok());
    }
}

/// How `new` follows from `old` by dropping samples at the start and adding at the end:
/// `(dropped, added)`; `None` when it does not.
fn appended<'a>(old: &[Sample], new: &'a [Sample]) -> Option<(usize, &'a [Sample])> {
    let first = new.first()?;
    let drop = old.iter().take_while(|s| s.at < first.at).count();
    let kept = &old[drop..];
    if new.len() < kept.len() || new[..kept.len()] != *kept {
        return None;
    }
    Some((drop, &new[kept.len()..]))
}

/// A cluster's parts: the cluster without its nodes and deployments, then each of those.
fn cluster_parts(
    cluster: &ClusterSnapshot,
    name: &str,
) -> Result<BTreeMap<String, String>, WireError> {
    let mut out = BTreeMap::new();
    let mut shell = cluster.clone();
    shell.nodes = Vec::new();
    shell.deployments = Vec::new();
    let key = format!("cluster/{name}");
    out.insert(key.clone(), text(&key, &shell)?);
    for n in &cluster.nodes {
        let key = format!("node/{name}/{}", n.name);
        out.insert(key.clone(), text(&key, n)?);
    }
    for d in &cluster.deployments {
        let key = format!("deploy/{name}/{}/{}", d.namespace, d.name);
        out.insert(key.clone(), text(&key, d)?);
    }
    Ok(out)
}

/// A `picture` line: every part the splitter holds, at `seq`.
pub fn picture_line(splitter: &Splitter, seq: u64) -> String {
    let whole = splitter.gpus_whole().map(|t| (GPUS_PLUS.to_string(), t));
    let mut parts: Vec<(&String, &String)> = splitter.parts().collect();
    parts.extend(whole.as_ref().map(|(k, v)| (k, v)));
    parts.sort_by(|a, b| a.0.cmp(b.0));
    let mut line = format!("{{\"type\":\"picture\",\"seq\":{seq},\"parts\":{{");
    push_parts(&mut line, parts.into_iter());
    line.push_str("}}\n");
    line
}

/// A `delta` line for `change` at `seq`.
pub fn delta_line(change: &Change, seq: u64) -> String {
    let mut line = format!("{{\"type\":\"delta\",\"seq\":{seq},\"set\":{{");
    push_parts(&mut line, change.set.iter().map(|(k, v)| (k, v)));
    line.push_str("},\"del\":");
    line.push_str(&serde_json::to_string(&change.del).unwrap_or_else(|_| "[]".into()));
    line.push_str("}\n");
    line
}

fn push_parts<'a>(line: &mut String, parts: impl Iterator<Item = (&'a String, &'a String)>) {
    for (i, (k, v)) in parts.enumerate() {
        if i > 0 {
            line.push(',');
        }
        // A key is a string; its JSON form cannot fail.
        let _ = write!(
            line,
            "{}:{v}",
            serde_json::to_string(k).unwrap_or_else(|_| "\"\"".into())
        );
    }
}

/// One cluster as the client keeps it: the shell and its nodes and deployments by key.
#[derive(Default)]
struct ClusterParts {
    shell: Option<ClusterSnapshot>,
    nodes: BTreeMap<String, NodeModel>,
    deployments: BTreeMap<String, DeploymentModel>,
    built: Option<Arc<ClusterSnapshot>>,
}

/// The client's side: the typed parts of the last picture and the deltas since, rebuilt into
/// an `Evaluated` (only the sections a message touched are rebuilt).
#[derive(Default)]
pub struct Rebuilder {
    meta: Meta,
    history: BTreeMap<String, Vec<Sample>>,
    history_built: Option<Arc<crate::model::History>>,
    clusters: BTreeMap<String, ClusterParts>,
    gpus: BTreeMap<String, GpuModel>,
    /// Each GPU's key by the index its part gave it, and back: `gpus+` rows name indices.
    gpu_keys: BTreeMap<u32, String>,
    gpu_index: HashMap<String, u32>,
    gpus_built: Option<Arc<Vec<GpuModel>>>,
    endpoints: BTreeMap<String, Arc<EndpointModel>>,
    models: BTreeMap<String, Arc<RegisteredModelView>>,
    cost: Option<Arc<CostReport>>,
    airflow: Option<Arc<crate::model::airflow::AirflowPicture>>,
    signals: BTreeMap<String, Signal>,
    incidents: BTreeMap<String, Incident>,
    automation: Option<AutomationShell>,
    runbooks: BTreeMap<String, RunbookMeta>,
    runs: BTreeMap<String, RunRecord>,
    pending: BTreeMap<String, PendingApproval>,
    /// Whether a picture arrived since the last `clear`.
    pictured: bool,
}

fn read<T: serde::de::DeserializeOwned>(key: &str, value: Value) -> Result<T, WireError> {
    serde_json::from_value(value).map_err(|source| WireError::Read {
        key: key.to_string(),
        source,
    })
}

impl Rebuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a picture was taken (deltas before one are meaningless).
    pub fn pictured(&self) -> bool {
        self.pictured
    }

    /// Drops everything: the next picture starts afresh.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Takes a whole picture.
    pub fn picture(&mut self, parts: BTreeMap<String, Value>) -> Result<(), WireError> {
        self.clear();
        for (k, v) in parts {
            self.set(k, v)?;
        }
        self.pictured = true;
        Ok(())
    }

    /// Takes a delta.
    pub fn delta(
        &mut self,
        set: BTreeMap<String, Value>,
        del: Vec<String>,
    ) -> Result<(), WireError> {
        for k in del {
            self.remove(&k);
        }
        for (k, v) in set {
            self.set(k, v)?;
        }
        Ok(())
    }

    fn cluster_of(&mut self, rest: &str) -> Option<(&mut ClusterParts, String)> {
        let (cluster, _) = rest.split_once('/')?;
        let c = self.clusters.entry(unesc(cluster)).or_default();
        c.built = None;
        Some((c, rest.to_string()))
    }

    fn set(&mut self, key: String, value: Value) -> Result<(), WireError> {
        if key == "meta" {
            self.meta = read(&key, value)?;
        } else if let Some(series) = key.strip_prefix("history/") {
            let samples = read(&key, value)?;
            self.history.insert(series.to_string(), samples);
            self.history_built = None;
        } else if let Some(series) = key.strip_prefix("history+/") {
            #[derive(Deserialize)]
            struct Append {
                drop: usize,
                add: Vec<Sample>,
            }
            let a: Append = read(&key, value)?;
            let s = self.history.entry(series.to_string()).or_default();
            s.drain(..a.drop.min(s.len()));
            s.extend(a.add);
            self.history_built = None;
        } else if let Some(name) = key.strip_prefix("cluster/") {
            let shell = read(&key, value)?;
            let c = self.clusters.entry(unesc(name)).or_default();
            c.shell = Some(shell);
            c.built = None;
        } else if let Some(rest) = key.strip_prefix("node/") {
            let node = read(&key, value)?;
            if let Some((c, k)) = self.cluster_of(rest) {
                c.nodes.insert(k, node);
            }
        } else if let Some(rest) = key.strip_prefix("deploy/") {
            let d = read(&key, value)?;
            if let Some((c, k)) = self.cluster_of(rest) {
                c.deployments.insert(k, d);
            }
        } else if key.starts_with("gpu/") {
            let GpuPart { i, mut g } = read(&key, value)?;
            // The part has no readings: a GPU already held keeps those `gpus+` last set.
            if let Some(old) = self.gpus.get(&key) {
                g.utilization_pct = old.utilization_pct;
                g.memory_used_mib = old.memory_used_mib;
                g.memory_free_mib = old.memory_free_mib;
                g.temperature_c = old.temperature_c;
                g.power_w = old.power_w;
                g.sm_clock_mhz = old.sm_clock_mhz;
                g.sampled_at = old.sampled_at;
            }
            if let Some(was) = self.gpu_index.insert(key.clone(), i) {
                self.gpu_keys.remove(&was);
            }
            self.gpu_keys.insert(i, key.clone());
            self.gpus.insert(key, g);
            self.gpus_built = None;
        } else if key == GPUS_PLUS {
            let plus: GpusPlus = read(&key, value)?;
            for row in &plus.r {
                if let Some(g) = self.gpu_keys.get(&row.0).and_then(|k| self.gpus.get_mut(k)) {
                    Readings::apply(row, g);
                }
            }
            for (at, runs) in &plus.at {
                for &(first, last) in runs {
                    // Walk the indices this client holds within the run, never the run's span
                    // itself: a run is the daemon's word, and [0, u32::MAX] must not be a loop.
                    if first > last {
                        continue;
                    }
                    for (_, k) in self.gpu_keys.range(first..=last) {
                        if let Some(g) = self.gpus.get_mut(k) {
                            g.sampled_at = *at;
                        }
                    }
                }
            }
            self.gpus_built = None;
        } else if key.starts_with("endpoint/") {
            let e = read(&key, value)?;
            self.endpoints.insert(key, Arc::new(e));
        } else if key.starts_with("model/") {
            let m = read(&key, value)?;
            self.models.insert(key, Arc::new(m));
        } else if key == "cost" {
            self.cost = Some(Arc::new(read(&key, value)?));
        } else if key == "airflow" {
            self.airflow = Some(Arc::new(read(&key, value)?));
        } else if let Some(k) = key.strip_prefix("signal/") {
            let s = read(&key, value)?;
            self.signals.insert(k.to_string(), s);
        } else if key.starts_with("incident/") {
            let i = read(&key, value)?;
            self.incidents.insert(key, i);
        } else if key == "automation" {
            self.automation = Some(read(&key, value)?);
        } else if key.starts_with("runbook/") {
            let r = read(&key, value)?;
            self.runbooks.insert(key, r);
        } else if key.starts_with("run/") {
            let r = read(&key, value)?;
            self.runs.insert(key, r);
        } else if key.starts_with("approval/") {
            let p = read(&key, value)?;
            self.pending.insert(key, p);
        }
        // A part this build does not know (a newer daemon's) is left out, not an error.
        Ok(())
    }

    fn remove(&mut self, key: &str) {
        if let Some(series) = key.strip_prefix("history/") {
            self.history.remove(series);
            self.history_built = None;
        } else if let Some(name) = key.strip_prefix("cluster/") {
            self.clusters.remove(&unesc(name));
        } else if let Some(rest) = key.strip_prefix("node/") {
            if let Some((c, k)) = self.cluster_of(rest) {
                c.nodes.remove(&k);
            }
        } else if let Some(rest) = key.strip_prefix("deploy/") {
            if let Some((c, k)) = self.cluster_of(rest) {
                c.deployments.remove(&k);
            }
        } else if key.starts_with("gpu/") {
            self.gpus.remove(key);
            if let Some(i) = self.gpu_index.remove(key) {
                self.gpu_keys.remove(&i);
            }
            self.gpus_built = None;
        } else if key.starts_with("endpoint/") {
            self.endpoints.remove(key);
        } else if key.starts_with("model/") {
            self.models.remove(key);
        } else if key == "cost" {
            self.cost = None;
        } else if key == "airflow" {
            self.airflow = None;
        } else if let Some(k) = key.strip_prefix("signal/") {
            self.signals.remove(k);
        } else if key.starts_with("incident/") {
            self.incidents.remove(key);
        } else if key == "automation" {
            self.automation = None;
        } else if key.starts_with("runbook/") {
            self.runbooks.remove(key);
        } else if key.starts_with("run/") {
            self.runs.remove(key);
        } else if key.starts_with("approval/") {
            self.pending.remove(key);
        }
    }

    /// The daemon's evaluation, rebuilt.
    pub fn evaluated(&mut self) -> Evaluated {
        let meta = &self.meta;
        let mut clusters = Vec::new();
        for name in &meta.cluster_order {
            let Some(c) = self.clusters.get_mut(name) else {
                continue;
            };
            let Some(shell) = &c.shell else { continue };
            let built = c.built.get_or_insert_with(|| {
                let mut cluster = shell.clone();
                cluster.nodes = c.nodes.values().cloned().collect();
                cluster.deployments = c.deployments.values().cloned().collect();
                Arc::new(cluster)
            });
            clusters.push(built.clone());
        }
        let history = self
            .history_built
            .get_or_insert_with(|| Arc::new(self.history.clone().into_iter().collect()))
            .clone();
        let gpus = self
            .gpus_built
            .get_or_insert_with(|| Arc::new(self.gpus.values().cloned().collect()))
            .clone();
        let mut signals: Vec<Signal> = meta
            .signal_order
            .iter()
            .filter_map(|k| self.signals.get(k).cloned())
            .collect();
        if signals.len() < self.signals.len() {
            for (k, s) in &self.signals {
                if !meta.signal_order.contains(k) {
                    signals.push(s.clone());
                }
            }
        }
        let snapshot = Snapshot {
            version: meta.version,
            taken_at: meta.taken_at,
            clusters,
            history,
            signals,
            endpoints: self.endpoints.values().cloned().collect(),
            gpus,
            gpu_sources: meta.gpu_sources.clone(),
            cost: self.cost.clone(),
            airflow: self.airflow.clone(),
            cost_source: meta.cost_source.clone(),
            models: self.models.values().cloned().collect(),
            finding_kinds: meta.finding_kinds.clone(),
            unknown_since_start: meta.unknown_since_start.clone(),
            store_down: meta.store_down.clone(),
            gpu_history: Default::default(),
        };
        Evaluated {
            snapshot: Arc::new(snapshot),
            at: meta.at,
            seq: meta.seq,
            recording: meta.recording,
            recorded: meta.recorded,
            store_error: meta.store_error.clone(),
            started_runs: meta.started_runs.clone(),
            raised_total: meta
                .raised_total
                .iter()
                .map(|(k, s, n)| ((k.clone(), *s), *n))
                .collect(),
            incidents_opened_total: meta.incidents_opened_total,
        }
    }

    /// The store's incidents, in the order `store::incidents` lists them.
    pub fn incidents(&self) -> Vec<Incident> {
        let mut out: Vec<Incident> = self.incidents.values().cloned().collect();
        crate::store::sort_for_display(&mut out);
        out
    }

    /// The executor's state; `None` when the daemon runs no executor.
    pub fn automation(&self) -> Option<AutomationData> {
        let shell = self.automation.clone()?;
        let mut runs: Vec<RunRecord> = self.runs.values().cloned().collect();
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Some(AutomationData {
            shell,
            runbooks: self.runbooks.values().cloned().collect(),
            runs,
            pending: self.pending.values().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::Subject;

    fn at() -> DateTime<Utc> {
        crate::model::utc("2026-01-01T00:00:00Z")
    }

    fn signal(key: &str, severity: Severity) -> Signal {
        Signal {
            kind: "gpu.xid".into(),
            severity,
            subject: Subject {
                cluster: "a/b".into(),
                ..Subject::default()
            },
            summary: key.into(),
            evidence: Default::default(),
            action: None,
            first_seen: at(),
            dedup_key: key.into(),
        }
    }

    fn evaluated() -> Evaluated {
        let node = |n: &str| NodeModel {
            name: n.into(),
            gpu_capacity: 8,
            ..NodeModel::default()
        };
        let cluster = ClusterSnapshot {
            // A context name with a slash (EKS ARNs have them) stays one key field.
            name: "a/b".into(),
            nodes: vec![node("n1"), node("n2")],
            ..ClusterSnapshot::default()
        };
        let gpus = (0..3)
            .map(|i| GpuModel::new("a/b", "n1", i, &format!("GPU-{i}"), at()))
            .collect();
        let mut history = crate::model::History::new();
        history.insert(
            "a/b/nodes_ready".into(),
            vec![Sample {
                at: at(),
                value: 2.0,
            }],
        );
        let snapshot = Snapshot {
            version: 7,
            taken_at: Some(at()),
            clusters: vec![Arc::new(cluster)],
            history: Arc::new(history),
            signals: vec![
                signal("gpu.xid:2", Severity::Critical),
                signal("gpu.xid:1", Severity::Warning),
            ],
            gpus: Arc::new(gpus),
            ..Snapshot::default()
        };
        Evaluated {
            snapshot: Arc::new(snapshot),
            at: Some(at()),
            seq: 1,
            raised_total: BTreeMap::from([(("gpu.xid".into(), Severity::Critical), 3)]),
            ..Evaluated::default()
        }
    }

    fn parse(line: &str) -> Message {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn take(r: &mut Rebuilder, line: &str) {
        match parse(line) {
            Message::Picture { parts, .. } => r.picture(parts).unwrap(),
            Message::Delta { set, del, .. } => r.delta(set, del).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_picture_rebuilds_the_evaluation_it_was_split_from() {
        let e = evaluated();
        let incidents = Arc::new(Vec::new());
        let mut s = Splitter::new();
        let change = s
            .update(&Frame {
                evaluated: &e,
                incidents: &incidents,
                automation: None,
            })
            .unwrap();
        assert!(change.del.is_empty());
        assert_eq!(change.set.len(), s.len());
        let mut r = Rebuilder::new();
        take(&mut r, &picture_line(&s, 1));
        let back = r.evaluated();
        assert_eq!(*back.snapshot, *e.snapshot);
        assert_eq!(back.raised_total, e.raised_total);
        assert_eq!(back.seq, 1);
    }

    #[test]
    fn a_delta_carries_only_what_changed_and_what_went() {
        let e = evaluated();
        let incidents = Arc::new(Vec::new());
        let mut s = Splitter::new();
        let frame = |e| Frame {
            evaluated: e,
            incidents: &incidents,
            automation: None,
        };
        s.update(&frame(&e)).unwrap();
        let mut r = Rebuilder::new();
        take(&mut r, &picture_line(&s, 1));

        // One GPU's reading moves, one signal clears, the cluster is the same Arc.
        let mut next = e.clone();
        let mut snap = (*e.snapshot).clone();
        let mut gpus = (*snap.gpus).clone();
        gpus[1].utilization_pct = Some(99.0);
        snap.gpus = Arc::new(gpus);
        snap.signals.truncate(1);
        next.snapshot = Arc::new(snap);
        next.seq = 2;
        let change = s.update(&frame(&next)).unwrap();
        let keys: Vec<&str> = change.set.iter().map(|(k, _)| k.as_str()).collect();
        // (A reading travels in `gpus+`, not in the GPU's part.)
        assert_eq!(keys, ["meta", "gpus+"]);
        assert_eq!(change.del, ["signal/gpu.xid:1"]);
        take(&mut r, &delta_line(&change, 2));
        assert_eq!(*r.evaluated().snapshot, *next.snapshot);

        // Nothing new: no delta at all but the meta (the evaluation's counter moved).
        let mut same = next.clone();
        same.seq = 3;
        let change = s.update(&frame(&same)).unwrap();
        let keys: Vec<&str> = change.set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["meta"]);
        assert!(s.update(&frame(&same)).unwrap().is_empty());

        // A history series that gained a sample sends that sample, not the series.
        let mut grown = same.clone();
        let mut snap = (*same.snapshot).clone();
        let mut history = (*snap.history).clone();
        let later = Sample {
            at: at() + chrono::Duration::seconds(10),
            value: 3.0,
        };
        history
            .entry("a/b/nodes_ready".into())
            .or_default()
            .push(later);
        snap.history = Arc::new(history);
        grown.snapshot = Arc::new(snap);
        let change = s.update(&frame(&grown)).unwrap();
        let keys: Vec<&str> = change.set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["history+/a/b/nodes_ready"]);
        take(&mut r, &delta_line(&change, 4));
        assert_eq!(*r.evaluated().snapshot, *grown.snapshot);
        let same = grown.clone();

        // A cluster that leaves takes its nodes with it.
        let mut gone = same.clone();
        let mut snap = (*same.snapshot).clone();
        snap.clusters.clear();
        gone.snapshot = Arc::new(snap);
        let change = s.update(&frame(&gone)).unwrap();
        assert!(change.del.contains(&"node/a%2Fb/n2".to_string()));
        take(&mut r, &delta_line(&change, 5));
        assert!(r.evaluated().snapshot.clusters.is_empty());
    }

    fn frame_of<'a>(e: &'a Evaluated, incidents: &'a Arc<Vec<Incident>>) -> Frame<'a> {
        Frame {
            evaluated: e,
            incidents,
            automation: None,
        }
    }

    /// A fleet of `n` GPUs, 8 a node, held by pods, with readings that vary by GPU.
    fn fleet(n: u32, round: u32) -> Vec<GpuModel> {
        (0..n)
            .map(|i| {
                let mut g = GpuModel::new(
                    "prod",
                    &format!("gpu-node-{:04}", i / 8),
                    i % 8,
                    &format!("GPU-{i:08x}-4b1c-9d2e-{:012x}", u64::from(i) * 7919),
                    at() + chrono::Duration::seconds(10 * i64::from(round)),
                );
                let wobble = f64::from((i * 37 + round * 53) % 100);
                g.model_name = Some("NVIDIA H100 80GB HBM3".into());
                g.memory_total_mib = Some(81_559);
                g.power_limit_w = Some(700.0);
                g.utilization_pct = Some(wobble + 0.37);
                g.memory_used_mib = Some(20_000 + (wobble as u64) * 500);
                g.memory_free_mib = Some(81_559 - (20_000 + (wobble as u64) * 500));
                g.temperature_c = Some(40.0 + wobble / 3.0);
                g.power_w = Some(150.0 + wobble * 5.0);
                g.sm_clock_mhz = Some(1_980);
                g.holder = Some(crate::model::gpu::PodRef {
                    namespace: "training".into(),
                    pod: format!("llama-70b-worker-{}", i / 8),
                    container: None,
                });
                g
            })
            .collect()
    }

    fn with_gpus(e: &Evaluated, gpus: Vec<GpuModel>, seq: u64) -> Evaluated {
        let mut next = e.clone();
        let mut snap = (*e.snapshot).clone();
        snap.gpus = Arc::new(gpus);
        next.snapshot = Arc::new(snap);
        next.seq = seq;
        next
    }

    /// What the GPU panes and wall tiles print of a GPU's readings (util and idle, GiB used and
    /// free, °C, W, MHz, the sample time) and its slow fields.
    fn shown_figures(g: &GpuModel) -> String {
        let gib = |m: Option<u64>| m.map(|m| format!("{:.1}", m as f64 / 1024.0));
        format!(
            "{:?} idle5={} idle10={} {:?} {:?} {:?} {:?} {:?} {} {:?}",
            g.utilization_pct.map(|u| format!("{u:.0}")),
            g.is_idle_allocated(5.0),
            g.is_idle_allocated(10.0),
            gib(g.memory_used_mib),
            gib(g.memory_free_mib),
            g.temperature_c.map(|t| format!("{t:.0}")),
            g.power_w.map(|p| format!("{p:.0}")),
            g.sm_clock_mhz,
            g.sampled_at,
            slow(g),
        )
    }

    #[test]
    fn a_round_of_new_gpu_readings_costs_under_50_bytes_a_gpu() {
        // The target: ≤ 200 KB/s steady at 40,000 GPUs with DCGM every 10 s is 2 MB a round,
        // 50 bytes a GPU whose readings all moved.
        const GPUS: u32 = 4_000;
        let incidents = Arc::new(Vec::new());
        let frame = |e| Frame {
            evaluated: e,
            incidents: &incidents,
            automation: None,
        };
        let e = with_gpus(&evaluated(), fleet(GPUS, 0), 1);
        let mut s = Splitter::new();
        s.update(&frame(&e)).unwrap();
        let mut r = Rebuilder::new();
        take(&mut r, &picture_line(&s, 1));

        let next = with_gpus(&e, fleet(GPUS, 1), 2);
        let change = s.update(&frame(&next)).unwrap();
        assert!(
            change.set.iter().all(|(k, _)| !k.starts_with("gpu/")),
            "no GPU's slow fields changed, so no GPU part travels"
        );
        let line = delta_line(&change, 2);
        let per_gpu = line.len() as f64 / f64::from(GPUS);
        println!(
            "{} bytes for {GPUS} GPUs: {per_gpu:.1} bytes a GPU a round",
            line.len()
        );
        assert!(per_gpu <= 50.0, "{per_gpu:.1} bytes a GPU");
        take(&mut r, &line);
        let back = r.evaluated();
        for (a, b) in back.snapshot.gpus.iter().zip(next.snapshot.gpus.iter()) {
            assert_eq!(shown_figures(a), shown_figures(b));
        }
    }

    #[test]
    fn a_gpu_whose_readings_moved_less_than_shown_is_not_sent() {
        let incidents = Arc::new(Vec::new());
        let frame = |e| Frame {
            evaluated: e,
            incidents: &incidents,
            automation: None,
        };
        // 40 GiB: a tenth of a GiB either way is ±51 MiB.
        let first = || {
            let mut gpus = fleet(16, 0);
            for g in &mut gpus {
                g.memory_used_mib = Some(40 * 1024);
            }
            gpus
        };
        let e = with_gpus(&evaluated(), first(), 1);
        let mut s = Splitter::new();
        s.update(&frame(&e)).unwrap();

        let mut gpus = first();
        for g in &mut gpus {
            // Each moves, by less than the panes print (0.37 % → 0.47 %, 10 MiB, 0.1 °C, 0.1 W).
            g.utilization_pct = g.utilization_pct.map(|u| u + 0.1);
            g.memory_used_mib = g.memory_used_mib.map(|m| m + 10);
            g.temperature_c = g.temperature_c.map(|t| t + 0.1);
            g.power_w = g.power_w.map(|p| p + 0.1);
        }
        gpus[5].utilization_pct = gpus[5].utilization_pct.map(|u| u + 2.0);
        let change = s.update(&frame(&with_gpus(&e, gpus, 2))).unwrap();
        let plus = change
            .set
            .iter()
            .find(|(k, _)| k == "gpus+")
            .map(|(_, v)| serde_json::from_str::<GpusPlus>(v).unwrap())
            .unwrap();
        let sent: Vec<u32> = plus.r.iter().map(|row| row.0).collect();
        assert_eq!(sent.len(), 1, "only the GPU whose utilisation moved by 2 %");
        assert!(plus.at.is_empty(), "the sample times did not move");
        assert_eq!(change.set.len(), 2, "{change:?}");
    }

    #[test]
    fn a_picture_and_compact_deltas_print_the_daemons_figures() {
        let incidents = Arc::new(Vec::new());
        // Readings on the edges of what is printed: ties, just under an idle threshold, MiB
        // on a tenth of a GiB's tie, unknown readings.
        let utils = [4.5, 4.96, 5.0, 5.04, 9.5, 0.0, 2.5, 99.51, 10.0, 9.99];
        let round = |n: u32| {
            let mut gpus = fleet(40, n);
            for (i, g) in gpus.iter_mut().enumerate() {
                let k = i + n as usize * 3;
                g.utilization_pct = Some(utils[k % utils.len()]);
                g.memory_used_mib = Some(256 + 512 * (k as u64 % 7) + (k as u64 % 3) * 51);
                g.temperature_c = Some(60.5 + (k % 4) as f64 * 0.5);
                g.power_w = Some(300.5 + (k % 5) as f64 * 0.25);
                if k.is_multiple_of(9) {
                    g.temperature_c = None;
                    g.memory_free_mib = None;
                }
                if n == 2 && i == 3 {
                    // A slow field changes: the part travels, the readings stay.
                    g.xid_last = Some(79);
                }
            }
            gpus
        };
        let e = with_gpus(&evaluated(), round(0), 1);
        let mut s = Splitter::new();
        s.update(&frame_of(&e, &incidents)).unwrap();
        let mut r = Rebuilder::new();
        take(&mut r, &picture_line(&s, 1));
        let check = |r: &mut Rebuilder, e: &Evaluated| {
            let back = r.evaluated();
            assert_eq!(back.snapshot.gpus.len(), e.snapshot.gpus.len());
            for (a, b) in back.snapshot.gpus.iter().zip(e.snapshot.gpus.iter()) {
                assert_eq!(shown_figures(a), shown_figures(b));
            }
        };
        check(&mut r, &e);
        let mut last = e;
        for n in 1..6 {
            let mut gpus = round(n);
            if n == 4 {
                // A GPU goes and a new one comes.
                gpus.remove(7);
                gpus.push(GpuModel::new("prod", "new-node", 0, "GPU-new", at()));
            }
            let next = with_gpus(&last, gpus, u64::from(n) + 1);
            let change = s.update(&frame_of(&next, &incidents)).unwrap();
            take(&mut r, &delta_line(&change, u64::from(n) + 1));
            check(&mut r, &next);
            // A client attaching now gets the same from the picture.
            let mut fresh = Rebuilder::new();
            take(&mut fresh, &picture_line(&s, u64::from(n) + 1));
            check(&mut fresh, &next);
            last = next;
        }
    }
}
