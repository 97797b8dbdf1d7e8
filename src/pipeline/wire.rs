//! The evaluated picture's wire form, for the daemon's live stream (`GET /api/v1/stream`) and
//! the cockpit attached to it: an [`Evaluated`], the store's incidents and the executor's runs
//! and approvals split into keyed parts (one per node, deployment, GPU, endpoint, signal,
//! incident, run, approval, history series, plus a `meta` part), so that a `delta` carries
//! only the parts that changed. [`Splitter`] is the daemon's side (it remembers the last text
//! of every part and re-serialises only what an `Arc` says may have changed), [`Rebuilder`]
//! the client's (it keeps the typed parts and rebuilds an `Evaluated` from them). Pods and the
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

    /// Every part now, for a picture.
    pub fn parts(&self) -> impl Iterator<Item = (&String, &String)> {
        self.sections.values().flat_map(|s| s.parts.iter())
    }

    /// How many parts the picture has.
    pub fn len(&self) -> usize {
        self.sections.values().map(|s| s.parts.len()).sum()
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
        apply(self, "gpus".into(), ptr_of(&snap.gpus), &mut || {
            snap.gpus
                .iter()
                .map(|g| {
                    let key = format!(
                        "gpu/{}/{}/{:04}/{}",
                        esc(&g.cluster),
                        g.node,
                        g.index,
                        g.uuid
                    );
                    let t = text(&key, g)?;
                    Ok((key, t))
                })
                .collect()
        })?;
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
    let mut parts: Vec<(&String, &String)> = splitter.parts().collect();
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
    gpus_built: Option<Arc<Vec<GpuModel>>>,
    endpoints: BTreeMap<String, Arc<EndpointModel>>,
    models: BTreeMap<String, Arc<RegisteredModelView>>,
    cost: Option<Arc<CostReport>>,
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
            let g = read(&key, value)?;
            self.gpus.insert(key, g);
            self.gpus_built = None;
        } else if key.starts_with("endpoint/") {
            let e = read(&key, value)?;
            self.endpoints.insert(key, Arc::new(e));
        } else if key.starts_with("model/") {
            let m = read(&key, value)?;
            self.models.insert(key, Arc::new(m));
        } else if key == "cost" {
            self.cost = Some(Arc::new(read(&key, value)?));
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
            self.gpus_built = None;
        } else if key.starts_with("endpoint/") {
            self.endpoints.remove(key);
        } else if key.starts_with("model/") {
            self.models.remove(key);
        } else if key == "cost" {
            self.cost = None;
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
        assert_eq!(keys, ["meta", "gpu/a%2Fb/n1/0001/GPU-1"]);
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
}
