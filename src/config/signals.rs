//! `[signals]`: the detectors' thresholds, `[signals.for]` and `[signals.clear_after]`, the
//! kinds the detectors raise and which of them are findings. Imports only `model`.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::catalog::{ForKey, SIGNAL_CATALOG, SignalKindSpec, signal_kind};

/// The kinds that are findings unless `[signals] findings` says otherwise (the catalog's
/// `finding_by_default`): an idle GPU, a budget forecast and drift are things to know and act
/// on today, not incidents to page about.
pub fn default_findings() -> Vec<String> {
    SIGNAL_CATALOG
        .iter()
        .filter(|k| k.finding_by_default)
        .map(|k| k.name.to_string())
        .collect()
}

/// Detector thresholds (`[signals]` in fleetdeck.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A node NotReady/Unknown for longer than this is a signal (node.not_ready's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub node_not_ready_after: Duration,
    /// A pod waiting for GPUs longer than this is a signal (pod.pending_gpu's `for`).
    #[serde(with = "crate::model::duration_serde")]
    pub pending_gpu_after: Duration,
    /// How long a spot interruption notice gives before the instance goes (AWS: 2 minutes).
    #[serde(with = "crate::model::duration_serde")]
    pub spot_notice: Duration,
    /// A GPU held by a pod and used under this share is idle.
    pub idle_gpu_pct: f64,
    /// An idle GPU clears only above `idle_gpu_pct` plus this many percentage points.
    pub idle_clear_margin_pct: f64,
    /// A GPU at or above this temperature is running hot.
    pub gpu_hot_c: f64,
    /// A hot GPU clears only below `gpu_hot_c` minus this many degrees.
    pub gpu_hot_clear_margin_c: f64,
    /// The memory forecast looks only at GPUs at least this full (%).
    pub gpu_memory_high_pct: f64,
    /// The memory forecast fits a line over this much history.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_window: Duration,
    /// The fewest samples (spanning at least half the window) the forecast trusts.
    pub gpu_memory_min_samples: u32,
    /// The least R² of the fit for it to count as a trend.
    pub gpu_memory_min_r2: f64,
    /// A GPU whose memory, on its fitted trend, fills within this long: a warning.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_within: Duration,
    /// … within this long: critical.
    #[serde(with = "crate::model::duration_serde")]
    pub gpu_memory_full_critical_within: Duration,
    /// A GPU source with no report for this long is down (`source.down`) even without an error:
    /// its collector stopped.
    #[serde(with = "crate::model::duration_serde")]
    pub source_silent_after: Duration,
    /// How long each kind's condition must hold before it fires (`[signals.for]`).
    #[serde(rename = "for")]
    pub pending_for: PendingFor,
    /// How long a firing kind's clear condition must hold before it stops firing.
    pub clear_after: ClearAfter,
    /// Kinds that are findings: shown where they belong (and runbooks may trigger on them)
    /// but they open no incident. Every other kind opens one.
    pub findings: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            node_not_ready_after: Duration::from_secs(60),
            pending_gpu_after: Duration::from_secs(300),
            spot_notice: Duration::from_secs(120),
            idle_gpu_pct: 5.0,
            idle_clear_margin_pct: 5.0,
            gpu_hot_c: 87.0,
            gpu_hot_clear_margin_c: 5.0,
            gpu_memory_high_pct: 80.0,
            gpu_memory_window: Duration::from_secs(600),
            gpu_memory_min_samples: 10,
            gpu_memory_min_r2: 0.8,
            gpu_memory_full_within: Duration::from_secs(1800),
            gpu_memory_full_critical_within: Duration::from_secs(300),
            source_silent_after: Duration::from_secs(120),
            pending_for: PendingFor::default(),
            clear_after: ClearAfter::default(),
            findings: default_findings(),
        }
    }
}

impl Thresholds {
    /// These thresholds with every `[signals.for]` and `[signals.clear_after]` at zero: a signal
    /// fires while its condition holds and not a moment longer. For one-shot evaluations, which
    /// have no history to hold a condition over, and for tests about a condition rather than its
    /// timing. `node_not_ready_after` and `pending_gpu_after` stay: their detectors measure them
    /// from the API's own timestamps, which a one-shot sees too.
    pub fn without_patience(&self) -> Self {
        Self {
            pending_for: PendingFor::zero(),
            clear_after: ClearAfter::zero(),
            ..self.clone()
        }
    }

    /// Every `for` and `clear_after` (the node and pending-pod thresholds included) times
    /// `factor`: rehearsals run time faster.
    pub fn scale_patience(&mut self, factor: f64) {
        self.node_not_ready_after = self.node_not_ready_after.mul_f64(factor);
        self.pending_gpu_after = self.pending_gpu_after.mul_f64(factor);
        for d in self
            .pending_for
            .durations_mut()
            .chain(self.clear_after.durations_mut())
        {
            *d = d.mul_f64(factor);
        }
    }

    /// How long a signal resumed from the store stays *unknown* when a process starts: its
    /// kind's `for`, plus the history its detector needs before it can see the condition at all
    /// (the memory forecast trusts no fit over less than half its window). Until then its
    /// absence says nothing, so it neither clears nor mitigates an incident.
    pub fn resume_hold(&self, kind: &str) -> Duration {
        let own = match kind {
            "gpu.memory_exhaustion_forecast" => self.gpu_memory_window / 2,
            _ => Duration::ZERO,
        };
        self.for_kind(kind) + own
    }

    /// The `for` of a signal kind: its `[signals.for]` entry, or the `[signals]` key its
    /// detector measures from the API's timestamps. Zero for a kind outside the catalog (an
    /// intake's `alert.*`: the outside system already waited out its own `for`).
    pub fn for_kind(&self, kind: &str) -> Duration {
        let Some(spec) = signal_kind(kind) else {
            return Duration::ZERO;
        };
        match spec.for_key {
            ForKey::Table => self.pending_for.get(spec),
            ForKey::NodeNotReadyAfter => self.node_not_ready_after,
            ForKey::PendingGpuAfter => self.pending_gpu_after,
        }
    }

    /// The `clear_after` of a signal kind; zero for a kind outside the catalog (an intake's
    /// `alert.*` clears when the outside system resolves it).
    pub fn clear_after_kind(&self, kind: &str) -> Duration {
        signal_kind(kind).map_or(Duration::ZERO, |spec| self.clear_after.get(spec))
    }

    /// The first `[signals.for]` or `[signals.clear_after]` key that names no kind the table
    /// takes: (table, key, what is wrong). `Config::parse` locates it in the file.
    pub fn unknown_kind_key(&self) -> Option<(&'static str, String, String)> {
        self.pending_for
            .unknown_key()
            .or_else(|| self.clear_after.unknown_key())
    }
}

/// Which of the two per-kind tables a [`KindDurations`] is: the kinds it takes and their defaults.
pub trait KindTable {
    /// The table's dotted name, as errors name it.
    const TABLE: &'static str;
    fn takes(spec: &SignalKindSpec) -> bool;
    fn default_of(spec: &SignalKindSpec) -> Duration;
}

/// `[signals.for]`: how long each kind's condition must hold before it fires. node.not_ready
/// and pod.pending_gpu have theirs in `[signals]` (`node_not_ready_after`, `pending_gpu_after`).
#[derive(Debug, Clone, PartialEq)]
pub struct ForTable;

impl KindTable for ForTable {
    const TABLE: &'static str = "signals.for";
    fn takes(spec: &SignalKindSpec) -> bool {
        spec.for_key == ForKey::Table
    }
    fn default_of(spec: &SignalKindSpec) -> Duration {
        spec.default_for
    }
}

/// `[signals.clear_after]`: how long a firing kind's clear condition must hold before it stops.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearAfterTable;

impl KindTable for ClearAfterTable {
    const TABLE: &'static str = "signals.clear_after";
    fn takes(_: &SignalKindSpec) -> bool {
        true
    }
    fn default_of(spec: &SignalKindSpec) -> Duration {
        spec.default_clear_after
    }
}

pub type PendingFor = KindDurations<ForTable>;
pub type ClearAfter = KindDurations<ClearAfterTable>;

/// A duration per signal kind, keyed in TOML by the kind with `_` for `.` (`gpu_xid = "0s"`),
/// over the catalog's defaults. A key that names no kind is kept aside, not dropped, so that
/// `Config::parse` can name its line and the kinds the table knows.
#[derive(Debug, Clone, PartialEq)]
pub struct KindDurations<T> {
    by_kind: BTreeMap<&'static str, Duration>,
    unknown: Vec<String>,
    table: PhantomData<T>,
}

impl<T: KindTable> Default for KindDurations<T> {
    fn default() -> Self {
        Self {
            by_kind: SIGNAL_CATALOG
                .iter()
                .filter(|k| T::takes(k))
                .map(|k| (k.name, T::default_of(k)))
                .collect(),
            unknown: Vec::new(),
            table: PhantomData,
        }
    }
}

impl<T: KindTable> KindDurations<T> {
    /// The duration of `spec`'s kind: as configured, else the catalog's default.
    pub fn get(&self, spec: &SignalKindSpec) -> Duration {
        self.by_kind
            .get(spec.name)
            .copied()
            .unwrap_or_else(|| T::default_of(spec))
    }

    /// Sets `kind`'s duration; false (and nothing set) for a kind this table does not take.
    pub fn set(&mut self, kind: &str, d: Duration) -> bool {
        match signal_kind(kind).filter(|spec| T::takes(spec)) {
            Some(spec) => {
                self.by_kind.insert(spec.name, d);
                true
            }
            None => false,
        }
    }

    fn zero() -> Self {
        let mut z = Self::default();
        z.by_kind.values_mut().for_each(|d| *d = Duration::ZERO);
        z
    }

    fn durations_mut(&mut self) -> impl Iterator<Item = &mut Duration> {
        self.by_kind.values_mut()
    }

    fn unknown_key(&self) -> Option<(&'static str, String, String)> {
        let key = self.unknown.first()?;
        let known: Vec<String> = SIGNAL_CATALOG
            .iter()
            .filter(|k| T::takes(k))
            .map(SignalKindSpec::config_key)
            .collect();
        let elsewhere = SIGNAL_CATALOG
            .iter()
            .find(|k| k.config_key() == *key)
            .map(|k| match k.for_key {
                ForKey::NodeNotReadyAfter => " (its `for` is `[signals] node_not_ready_after`)",
                ForKey::PendingGpuAfter => " (its `for` is `[signals] pending_gpu_after`)",
                ForKey::Table => "",
            })
            .unwrap_or("");
        Some((
            T::TABLE,
            key.clone(),
            format!(
                "{key:?} is not a kind this table takes{elsewhere}; use one of {}",
                known.join(", ")
            ),
        ))
    }
}

impl<T: KindTable> Serialize for KindDurations<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.by_kind.len()))?;
        for spec in SIGNAL_CATALOG.iter().filter(|k| T::takes(k)) {
            let text = humantime::format_duration(self.get(spec)).to_string();
            map.serialize_entry(&spec.config_key(), &text)?;
        }
        map.end()
    }
}

impl<'de, T: KindTable> Deserialize<'de> for KindDurations<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Written(#[serde(with = "crate::model::duration_serde")] Duration);
        let written = BTreeMap::<String, Written>::deserialize(d)?;
        let mut durations = Self::default();
        for (key, Written(duration)) in written {
            let spec = SIGNAL_CATALOG
                .iter()
                .find(|k| T::takes(k) && k.config_key() == key);
            match spec {
                Some(spec) => {
                    durations.by_kind.insert(spec.name, duration);
                }
                None => durations.unknown.push(key),
            }
        }
        Ok(durations)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, SIM_SCENARIOS};
    use crate::model::catalog::Exercise;

    #[test]
    fn every_catalog_kind_names_the_sim_scenario_that_raises_it_or_why_none_does() {
        for spec in SIGNAL_CATALOG {
            match spec.exercise {
                Exercise::Scenario(name) => assert!(
                    SIM_SCENARIOS.contains(&name),
                    "{}: {name:?} is not a `fleetdeck sim` scenario ({})",
                    spec.name,
                    SIM_SCENARIOS.join(", ")
                ),
                Exercise::Without(why) => {
                    assert!(
                        !why.trim().is_empty(),
                        "{}: no scenario and no reason",
                        spec.name
                    )
                }
            }
        }
    }

    #[test]
    fn every_catalog_kind_has_a_for_and_a_clear_after_from_the_catalog() {
        let t = Thresholds::default();
        for spec in SIGNAL_CATALOG {
            assert_eq!(
                t.clear_after_kind(spec.name),
                spec.default_clear_after,
                "{}",
                spec.name
            );
            if spec.for_key == ForKey::Table {
                assert_eq!(t.for_kind(spec.name), spec.default_for, "{}", spec.name);
            }
        }
        assert_eq!(t.for_kind("node.not_ready"), t.node_not_ready_after);
        assert_eq!(t.for_kind("pod.pending_gpu"), t.pending_gpu_after);
    }

    #[test]
    fn an_unknown_kind_in_signals_for_names_its_line_and_the_known_kinds() {
        let src = "[signals.for]\ngpu_xid = \"0s\"\ngpu_melted = \"1m\"\n";
        let err = Config::parse(src, Path::new("fleetdeck.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(err.contains("signals.for.gpu_melted"), "{err}");
        assert!(err.contains("gpu_throttling"), "{err}");
    }

    #[test]
    fn a_kind_whose_for_lives_in_signals_is_refused_in_signals_for_with_where_it_lives() {
        let src = "[signals.for]\nnode_not_ready = \"1m\"\n";
        let err = Config::parse(src, Path::new("fleetdeck.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:2:"), "{err}");
        assert!(err.contains("node_not_ready_after"), "{err}");
    }

    #[test]
    fn fleetdeck_init_writes_every_kind_of_both_tables() {
        // The catalog's default applies to a kind the file leaves out, but `init`'s file is
        // where a person reads and tunes them: every kind is written there.
        let config = crate::config::default_config();
        let table = |name: &str| {
            let start = config
                .find(&format!("[{name}]\n"))
                .unwrap_or_else(|| panic!("init writes no [{name}]"));
            // From the header's newline, so the first key is "\n<key> = " too.
            let body = &config[start + name.len() + 2..];
            body[..body.find("\n[").unwrap_or(body.len())].to_string()
        };
        let (for_table, clear_table) = (table("signals.for"), table("signals.clear_after"));
        for spec in SIGNAL_CATALOG {
            let key = format!("\n{} = ", spec.config_key());
            if ForTable::takes(spec) {
                assert!(
                    for_table.contains(&key),
                    "[signals.for] lacks {}",
                    spec.name
                );
            }
            assert!(
                clear_table.contains(&key),
                "[signals.clear_after] lacks {}",
                spec.name
            );
        }
    }

    #[test]
    fn the_printed_settings_read_back_as_they_were() {
        // `fleetdeck config` prints the effective settings; the per-kind maps print every kind
        // their table takes, and the text parses back to the same thresholds.
        let mut t = Thresholds::default();
        assert!(t.pending_for.set("gpu.idle", Duration::from_secs(1800)));
        assert!(!t.pending_for.set("node.not_ready", Duration::from_secs(1)));
        let text = toml::to_string(&t).expect("thresholds print");
        assert!(text.contains("gpu_idle = \"30m\""), "{text}");
        let back: Thresholds = toml::from_str(&text).expect("printed thresholds parse");
        assert_eq!(back, t);
        assert_eq!(back.unknown_kind_key(), None);
    }

    #[test]
    fn an_unknown_kind_in_signals_clear_after_is_refused() {
        let src = "[signals.clear_after]\nnode_not_ready = \"2m\"\nbogus = \"1m\"\n";
        let err = Config::parse(src, Path::new("fleetdeck.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(err.contains("signals.clear_after.bogus"), "{err}");
    }
}
