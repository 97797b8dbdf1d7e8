//! The fleet's GPU history, kept once by `state` and read by every consumer: each GPU's recent
//! utilisation and memory readings (the memory forecast fits them, the GPUs detail charts them,
//! whatever the source: DCGM, NVML or Prometheus-fed), and each node pool's heat (mean
//! utilisation and idle-but-allocated share, which the NOC wall draws). Plain data and the
//! arithmetic that keeps it bounded; imports model only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::gpu::GpuModel;
use super::{ClusterSnapshot, History};

/// A GPU under this utilisation while a pod holds it is idle-but-allocated (the wall's heat).
pub const IDLE_PCT: f64 = 5.0;
/// At most this many samples are kept per GPU, whatever the window: a bound on memory for a
/// source that samples far more often than the forecast and the chart need.
pub const SAMPLES_CAP: usize = 2048;
/// How much of each GPU's readings is kept when nothing asks for more: the memory forecast's
/// default window, and the GPUs detail chart's span.
pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// Pools whose heat is kept: a bound however many pools a fleet names.
pub const HEAT_POOLS: usize = 64;
/// The history series of the pools' heat: `gpu_heat/<pool>/util_pct` and
/// `gpu_heat/<pool>/idle_share` (a pool label value cannot hold a `/`).
pub const HEAT_PREFIX: &str = "gpu_heat/";

/// One reading of one GPU. Compact (20 bytes): a 40,000-GPU fleet keeps about sixty of these a
/// GPU, so a missing reading is a NaN rather than an `Option<f64>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuSample {
    pub at: DateTime<Utc>,
    utilization_pct: f32,
    memory_used_mib: f32,
}

impl GpuSample {
    pub fn of(g: &GpuModel) -> Self {
        Self {
            at: g.sampled_at,
            utilization_pct: g.utilization_pct.map_or(f32::NAN, |u| u as f32),
            // MiB fit an f32 exactly up to 16 TiB of GPU memory.
            memory_used_mib: g.memory_used_mib.map_or(f32::NAN, |m| m as f32),
        }
    }

    pub fn utilization_pct(&self) -> Option<f64> {
        (!self.utilization_pct.is_nan()).then_some(f64::from(self.utilization_pct))
    }

    pub fn memory_used_mib(&self) -> Option<f64> {
        (!self.memory_used_mib.is_nan()).then_some(f64::from(self.memory_used_mib))
    }
}

/// Each GPU's readings over the last `window`, by uuid.
#[derive(Debug, Clone)]
pub struct GpuHistory {
    window: chrono::Duration,
    series: FxHashMap<String, VecDeque<GpuSample>>,
}

impl Default for GpuHistory {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl GpuHistory {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            series: FxHashMap::default(),
        }
    }

    /// How far back each GPU's readings go.
    pub fn window(&self) -> std::time::Duration {
        self.window.to_std().unwrap_or_default()
    }

    /// Adds every reading of `gpus` newer than its GPU's last one, dropping what fell out of
    /// the window (or past [`SAMPLES_CAP`]).
    pub fn record(&mut self, gpus: &[GpuModel]) {
        for g in gpus {
            if g.utilization_pct.is_none() && g.memory_used_mib.is_none() {
                continue;
            }
            // Looked up before inserting: an entry per GPU per round would copy every uuid.
            if !self.series.contains_key(&g.uuid) {
                self.series.insert(g.uuid.clone(), VecDeque::new());
            }
            let Some(series) = self.series.get_mut(&g.uuid) else {
                continue;
            };
            if series.back().is_some_and(|s| s.at >= g.sampled_at) {
                continue;
            }
            series.push_back(GpuSample::of(g));
            let horizon = g.sampled_at - self.window;
            while series.len() > SAMPLES_CAP || series.front().is_some_and(|s| s.at < horizon) {
                series.pop_front();
            }
        }
    }

    /// Forgets the GPUs no longer in `live` (the whole fleet's list).
    pub fn retain_live(&mut self, live: &[GpuModel]) {
        // Every GPU with readings has a series, so more series than GPUs means some GPU left
        // (or was replaced): only then is it worth hashing 40,000 uuids.
        if self.series.len() > live.len() {
            let live: FxHashSet<&str> = live.iter().map(|g| g.uuid.as_str()).collect();
            self.series.retain(|uuid, _| live.contains(uuid.as_str()));
        }
    }

    /// One GPU's readings, oldest first.
    pub fn series(&self, uuid: &str) -> Option<&VecDeque<GpuSample>> {
        self.series.get(uuid)
    }

    /// One GPU's (time, memory used MiB) readings, oldest first: what the forecast fits.
    pub fn memory(&self, uuid: &str) -> Vec<(DateTime<Utc>, f64)> {
        self.series(uuid)
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s.at, s.memory_used_mib()?)))
            .collect()
    }

    /// How many GPUs have readings kept.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// The one [`GpuHistory`] of a running fleet, shared by `state` (which writes it when a GPU
/// source reports) and the snapshot's readers. Shared rather than copied per snapshot: a
/// snapshot is published up to 50 times a second and the history of 40,000 GPUs is tens of
/// megabytes. Readings are append-only by time, so a reader that sees one newer than its
/// snapshot reads a consistent past.
#[derive(Clone, Default)]
pub struct SharedGpuHistory(Arc<RwLock<GpuHistory>>);

impl SharedGpuHistory {
    pub fn new(history: GpuHistory) -> Self {
        Self(Arc::new(RwLock::new(history)))
    }

    /// Reads the history; a writer that panicked left it whole (each record is one push), so a
    /// poisoned lock is read anyway.
    pub fn read(&self) -> RwLockReadGuard<'_, GpuHistory> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, GpuHistory> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SharedGpuHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedGpuHistory({} GPUs)", self.read().len())
    }
}

/// Two snapshots share a history when they are of the same fleet: the history is not part of
/// what a snapshot says, only where its readers look.
impl PartialEq for SharedGpuHistory {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// One pool's GPUs at one moment: mean utilisation, idle-but-allocated share, GPUs counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolHeat {
    pub util_pct: f64,
    pub idle_share: f64,
    pub gpus: usize,
}

/// The node pool a node is shown in: its pool label, else its GPU product (nodes without a
/// provisioner's pool label are still told apart by what they carry), else neither.
pub fn pool_name(node: &super::NodeModel) -> &str {
    node.pool
        .as_deref()
        .or(node.gpu_product.as_deref())
        .unwrap_or("(no pool, no GPU)")
}

/// Per pool, the heat of `gpus` (each GPU counted in its node's pool; a GPU whose node the
/// clusters do not list is in "(unmatched)").
pub fn pool_heat(
    clusters: &[Arc<ClusterSnapshot>],
    gpus: &[GpuModel],
) -> BTreeMap<String, PoolHeat> {
    let pool_of: FxHashMap<(&str, &str), &str> = clusters
        .iter()
        .flat_map(|c| {
            c.nodes
                .iter()
                .map(move |n| ((c.name.as_str(), n.name.as_str()), pool_name(n)))
        })
        .collect();
    // Per pool: utilisation sum, GPUs with a reading, idle-but-allocated GPUs. A node's GPUs
    // come one after another: its pool is looked up once a node, not once a GPU.
    let mut pools: BTreeMap<&str, (f64, usize, usize)> = BTreeMap::new();
    let mut run: Option<(&str, &str, &str)> = None;
    for g in gpus {
        let Some(util) = g.utilization_pct else {
            continue;
        };
        let pool = match run {
            Some((c, n, pool)) if c == g.cluster && n == g.node => pool,
            _ => {
                let pool = pool_of
                    .get(&(g.cluster.as_str(), g.node.as_str()))
                    .copied()
                    .unwrap_or("(unmatched)");
                run = Some((&g.cluster, &g.node, pool));
                pool
            }
        };
        let e = pools.entry(pool).or_default();
        e.0 += util;
        e.1 += 1;
        e.2 += usize::from(g.is_idle_allocated(IDLE_PCT));
    }
    pools
        .into_iter()
        .map(|(pool, (sum, n, idle))| {
            (
                pool.to_string(),
                PoolHeat {
                    util_pct: sum / n.max(1) as f64,
                    idle_share: idle as f64 / n.max(1) as f64,
                    gpus: n,
                },
            )
        })
        .collect()
}

/// The history key of one pool's heat metric (`util_pct` or `idle_share`).
pub fn heat_key(pool: &str, metric: &str) -> String {
    format!("{HEAT_PREFIX}{pool}/{metric}")
}

/// Appends one sample of each pool's heat to `history` at `at` (a pool not yet kept only while
/// fewer than [`HEAT_POOLS`] are), then drops heat older than `horizon` and the pools left with
/// none.
pub fn sample_heat(
    history: &mut History,
    at: DateTime<Utc>,
    heat: &BTreeMap<String, PoolHeat>,
    horizon: DateTime<Utc>,
) {
    let mut pools = heat_series(history).count();
    for (pool, h) in heat {
        let util_key = heat_key(pool, "util_pct");
        if !history.contains_key(&util_key) {
            if pools >= HEAT_POOLS {
                continue;
            }
            pools += 1;
        }
        for (key, value) in [
            (util_key, h.util_pct),
            (heat_key(pool, "idle_share"), h.idle_share),
        ] {
            let series = history.entry(key).or_default();
            if series.last().is_none_or(|s| s.at < at) {
                series.push(super::Sample { at, value });
            }
        }
    }
    let keys: Vec<String> = history
        .range::<str, _>((
            std::ops::Bound::Included(HEAT_PREFIX),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(HEAT_PREFIX))
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        if let Some(series) = history.get_mut(&key) {
            series.retain(|s| s.at >= horizon);
            if series.is_empty() {
                history.remove(&key);
            }
        }
    }
}

/// Each pool's heat series from `history`: (pool, utilisation samples, idle-share samples),
/// pools in name order.
pub fn heat_series(
    history: &History,
) -> impl Iterator<Item = (&str, &[super::Sample], &[super::Sample])> {
    history
        .range::<str, _>((
            std::ops::Bound::Included(HEAT_PREFIX),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(HEAT_PREFIX))
        .filter_map(|(k, util)| {
            let pool = k.strip_prefix(HEAT_PREFIX)?.strip_suffix("/util_pct")?;
            let idle = history
                .get(&heat_key(pool, "idle_share"))
                .map_or(&[][..], Vec::as_slice);
            Some((pool, util.as_slice(), idle))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(uuid: &str, at: DateTime<Utc>, util: f64, mem: u64) -> GpuModel {
        let mut g = GpuModel::new("c", "n", 0, uuid, at);
        g.utilization_pct = Some(util);
        g.memory_used_mib = Some(mem);
        g
    }

    #[test]
    fn readings_are_kept_once_per_sample_for_the_window_and_gone_gpus_forgotten() {
        let t0 = Utc::now();
        let mut h = GpuHistory::new(std::time::Duration::from_secs(60));
        for i in 0..10 {
            let at = t0 + chrono::Duration::seconds(i * 10);
            let round = [gpu("A", at, 50.0, 1000 + i as u64), gpu("B", at, 10.0, 5)];
            h.record(&round);
            // The same round seen again adds nothing.
            h.record(&round);
        }
        let a = h.series("A").map(|s| s.len());
        assert_eq!(a, Some(7), "60 s of 10 s samples, both ends included");
        let mem = h.memory("A");
        assert_eq!(mem.last().map(|(_, m)| *m), Some(1009.0));
        assert_eq!(
            h.series("A")
                .and_then(|s| s.back())
                .and_then(|s| s.utilization_pct()),
            Some(50.0)
        );
        h.retain_live(&[gpu("A", t0, 1.0, 1)]);
        assert!(h.series("B").is_none() && h.series("A").is_some());
    }

    #[test]
    fn heat_keeps_one_sample_per_time_an_hour_of_them_and_at_most_its_pools() {
        let t0 = Utc::now();
        let mut history = History::new();
        let heat = |pools: usize| -> BTreeMap<String, PoolHeat> {
            (0..pools)
                .map(|i| {
                    let h = PoolHeat {
                        util_pct: 50.0,
                        idle_share: 0.25,
                        gpus: 8,
                    };
                    (format!("pool-{i:03}"), h)
                })
                .collect()
        };
        for i in 0..400 {
            let at = t0 + chrono::Duration::seconds(i * 10);
            sample_heat(&mut history, at, &heat(2), at - chrono::Duration::hours(1));
            // The same moment again adds nothing.
            sample_heat(&mut history, at, &heat(2), at - chrono::Duration::hours(1));
        }
        let series: Vec<(&str, usize, usize)> = heat_series(&history)
            .map(|(p, u, i)| (p, u.len(), i.len()))
            .collect();
        assert_eq!(series, [("pool-000", 361, 361), ("pool-001", 361, 361)]);
        let at = t0 + chrono::Duration::seconds(4000);
        sample_heat(
            &mut history,
            at,
            &heat(100),
            at - chrono::Duration::hours(1),
        );
        assert_eq!(heat_series(&history).count(), HEAT_POOLS);
        // Pools no longer reported age out.
        let later = at + chrono::Duration::hours(2);
        sample_heat(
            &mut history,
            later,
            &heat(1),
            later - chrono::Duration::hours(1),
        );
        assert_eq!(heat_series(&history).count(), 1);
        assert!(history.keys().all(|k| !k.contains("pool-050")));
    }

    #[test]
    fn a_gpu_with_no_readings_keeps_no_series() {
        let mut h = GpuHistory::default();
        h.record(&[GpuModel::new("c", "n", 0, "A", Utc::now())]);
        assert!(h.is_empty());
    }
}
