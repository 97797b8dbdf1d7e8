//! GPU data: devices, their metrics and who holds them, the status of each GPU source, and the
//! join of GPUs to cluster nodes and pods. Plain serde data; imports only the model.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ClusterSnapshot;

/// Under this utilisation (%) a GPU held by a pod counts as idle, unless config says otherwise.
pub const DEFAULT_IDLE_UTILISATION_PCT: f64 = 5.0;

/// The pod a GPU is allocated to, as the DCGM exporter's pod-mapping labels name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Why the clocks are held down (NVML's clock event reasons; DCGM's bitmask uses the same bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThrottleReason {
    GpuIdle,
    ApplicationsClocksSetting,
    SwPowerCap,
    HwSlowdown,
    SyncBoost,
    SwThermalSlowdown,
    HwThermalSlowdown,
    HwPowerBrakeSlowdown,
    DisplayClockSetting,
}

impl ThrottleReason {
    /// The bit each reason has in `nvmlClocksEventReasons` / `DCGM_FI_DEV_CLOCK_THROTTLE_REASONS`.
    const BITS: [(u64, ThrottleReason); 9] = [
        (0x1, ThrottleReason::GpuIdle),
        (0x2, ThrottleReason::ApplicationsClocksSetting),
        (0x4, ThrottleReason::SwPowerCap),
        (0x8, ThrottleReason::HwSlowdown),
        (0x10, ThrottleReason::SyncBoost),
        (0x20, ThrottleReason::SwThermalSlowdown),
        (0x40, ThrottleReason::HwThermalSlowdown),
        (0x80, ThrottleReason::HwPowerBrakeSlowdown),
        (0x100, ThrottleReason::DisplayClockSetting),
    ];

    /// Decodes a reasons bitmask; bits no reason is known for are dropped.
    pub fn from_bits(bits: u64) -> Vec<ThrottleReason> {
        Self::BITS
            .iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, r)| *r)
            .collect()
    }

    /// Reasons that mean the GPU is slowed against its will (not idle, not a clock setting).
    pub fn is_slowdown(self) -> bool {
        matches!(
            self,
            ThrottleReason::SwPowerCap
                | ThrottleReason::HwSlowdown
                | ThrottleReason::SwThermalSlowdown
                | ThrottleReason::HwThermalSlowdown
                | ThrottleReason::HwPowerBrakeSlowdown
        )
    }
}

/// A process using a GPU (NVML only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// `None` where the driver does not say (e.g. inside some containers).
    pub used_memory_mib: Option<u64>,
    pub kind: GpuProcessKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuProcessKind {
    Compute,
    Graphics,
}

/// A MIG GPU instance: DCGM reports each as its own series of the parent device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigInstance {
    pub gpu_instance_id: u32,
    /// e.g. `1g.10gb`.
    pub profile: Option<String>,
}

/// One GPU (or MIG instance) as last sampled. Every reading is `None` when the source did not
/// report it, so a missing counter is never mistaken for a zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuModel {
    pub cluster: String,
    /// The node's hostname as the source reports it (DCGM's `Hostname` label); empty if none.
    pub node: String,
    pub index: u32,
    pub uuid: String,
    pub pci_bus_id: Option<String>,
    pub model_name: Option<String>,
    pub driver_version: Option<String>,
    pub mig_instance: Option<MigInstance>,
    pub utilization_pct: Option<f64>,
    pub memory_used_mib: Option<u64>,
    pub memory_free_mib: Option<u64>,
    pub memory_total_mib: Option<u64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    /// The last XID error code; `None` when none was reported (DCGM reports 0 for none).
    pub xid_last: Option<u32>,
    pub ecc_sbe_volatile: Option<u64>,
    pub ecc_dbe_volatile: Option<u64>,
    pub retired_pages_sbe: Option<u64>,
    pub retired_pages_dbe: Option<u64>,
    pub remapped_rows_correctable: Option<u64>,
    pub remapped_rows_uncorrectable: Option<u64>,
    pub remap_pending: Option<bool>,
    pub remap_failure: Option<bool>,
    pub throttle_reasons: Option<Vec<ThrottleReason>>,
    pub processes: Option<Vec<GpuProcess>>,
    /// MIG mode as currently in force (NVML), or `true` when DCGM reports instances.
    pub mig_enabled: Option<bool>,
    pub holder: Option<PodRef>,
    pub sampled_at: DateTime<Utc>,
}

impl GpuModel {
    /// A device with identity only and no readings yet.
    pub fn new(cluster: &str, node: &str, index: u32, uuid: &str, at: DateTime<Utc>) -> Self {
        GpuModel {
            cluster: cluster.to_string(),
            node: node.to_string(),
            index,
            uuid: uuid.to_string(),
            pci_bus_id: None,
            model_name: None,
            driver_version: None,
            mig_instance: None,
            utilization_pct: None,
            memory_used_mib: None,
            memory_free_mib: None,
            memory_total_mib: None,
            temperature_c: None,
            power_w: None,
            power_limit_w: None,
            sm_clock_mhz: None,
            xid_last: None,
            ecc_sbe_volatile: None,
            ecc_dbe_volatile: None,
            retired_pages_sbe: None,
            retired_pages_dbe: None,
            remapped_rows_correctable: None,
            remapped_rows_uncorrectable: None,
            remap_pending: None,
            remap_failure: None,
            throttle_reasons: None,
            processes: None,
            mig_enabled: None,
            holder: None,
            sampled_at: at,
        }
    }

    /// Held by a pod while its utilisation is known and under `threshold_pct`.
    pub fn is_idle_allocated(&self, threshold_pct: f64) -> bool {
        self.holder.is_some() && self.utilization_pct.is_some_and(|u| u < threshold_pct)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuSourceKind {
    Dcgm,
    Nvml,
    /// Fleet-wide history read from Prometheus (or Thanos/Mimir).
    Prometheus,
}

/// Where one GPU source (one DCGM endpoint, or the local NVML) stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSourceStatus {
    pub kind: GpuSourceKind,
    pub cluster: String,
    /// The URL scraped, or `local` for NVML.
    pub target: String,
    /// `None` when the last round succeeded.
    pub error: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
}

impl GpuSourceStatus {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// One line for a status bar: `dcgm sim-a: ok` or the error and when it last worked.
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            GpuSourceKind::Dcgm => "dcgm",
            GpuSourceKind::Nvml => "nvml",
            GpuSourceKind::Prometheus => "prometheus",
        };
        match (&self.error, self.last_success) {
            (None, _) => format!("{kind} {}: ok", self.cluster),
            (Some(e), Some(at)) => format!(
                "{kind} {}: {e} (last success {})",
                self.cluster,
                at.format("%H:%M:%S")
            ),
            (Some(e), None) => format!("{kind} {}: {e}", self.cluster),
        }
    }
}

/// What a GPU source tells `state` after each round. `gpus` is every device the source saw this
/// round (it replaces what that source reported before); `None` when the round failed, so the
/// last picture is kept and shown stale since `status.last_success`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUpdate {
    pub status: GpuSourceStatus,
    pub gpus: Option<Vec<GpuModel>>,
}

/// The GPUs of one node, by index into the slice given to [`join_gpus_to_nodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeGpus {
    pub cluster: String,
    pub node: String,
    pub gpus: Vec<usize>,
    /// Devices held by a pod.
    pub held: u32,
    /// Devices held by a pod and idle.
    pub idle_held: u32,
    /// GPUs the node's pods request, per Kubernetes.
    pub requested: u32,
}

/// The GPUs one pod holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodGpus {
    pub cluster: String,
    pub pod: PodRef,
    pub node: String,
    pub gpus: Vec<usize>,
    /// Every one of its GPUs is idle.
    pub all_idle: bool,
}

/// GPUs joined to nodes (by hostname) and pods (by the exporter's pod labels).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuJoin {
    /// Nodes that have GPUs reported, in cluster/node order.
    pub nodes: Vec<NodeGpus>,
    /// Pods holding GPUs, in cluster/namespace/pod order.
    pub pods: Vec<PodGpus>,
    /// GPUs held by a pod and idle: the allocated-but-idle list.
    pub idle_allocated: Vec<usize>,
    /// GPUs whose hostname names no node of their cluster (or whose cluster is unknown).
    pub unmatched: Vec<usize>,
}

/// Joins `gpus` to the nodes of `clusters`. A hostname matches a node by exact name, else by
/// the first DNS label of either (`ip-10-0-1-7` ↔ `ip-10-0-1-7.ec2.internal`). A GPU counts as
/// idle when a pod holds it and its utilisation is under `idle_below_pct`.
pub fn join_gpus_to_nodes<'a>(
    gpus: &[GpuModel],
    clusters: impl IntoIterator<Item = &'a ClusterSnapshot>,
    idle_below_pct: f64,
) -> GpuJoin {
    // cluster → (node name or its short name → node name, GPUs requested)
    let mut known: HashMap<&str, HashMap<&str, (&str, u32)>> = HashMap::new();
    for c in clusters {
        let names = known.entry(c.name.as_str()).or_default();
        for n in &c.nodes {
            names.insert(n.name.as_str(), (n.name.as_str(), n.gpu_requested));
        }
        for n in &c.nodes {
            names
                .entry(short_name(&n.name))
                .or_insert((n.name.as_str(), n.gpu_requested));
        }
    }

    let mut out = GpuJoin::default();
    let mut nodes: BTreeMap<(&str, &str), NodeGpus> = BTreeMap::new();
    let mut pods: BTreeMap<(&str, &PodRef), PodGpus> = BTreeMap::new();
    for (i, gpu) in gpus.iter().enumerate() {
        let idle = gpu.is_idle_allocated(idle_below_pct);
        if idle {
            out.idle_allocated.push(i);
        }
        let matched = known.get(gpu.cluster.as_str()).and_then(|names| {
            names
                .get(gpu.node.as_str())
                .or_else(|| names.get(short_name(&gpu.node)))
        });
        let Some(&(node, requested)) = matched else {
            out.unmatched.push(i);
            continue;
        };
        let entry = nodes
            .entry((gpu.cluster.as_str(), node))
            .or_insert_with(|| NodeGpus {
                cluster: gpu.cluster.clone(),
                node: node.to_string(),
                gpus: Vec::new(),
                held: 0,
                idle_held: 0,
                requested,
            });
        entry.gpus.push(i);
        if let Some(holder) = &gpu.holder {
            entry.held += 1;
            entry.idle_held += u32::from(idle);
            let pod = pods
                .entry((gpu.cluster.as_str(), holder))
                .or_insert_with(|| PodGpus {
                    cluster: gpu.cluster.clone(),
                    pod: holder.clone(),
                    node: node.to_string(),
                    gpus: Vec::new(),
                    all_idle: true,
                });
            pod.gpus.push(i);
            pod.all_idle &= idle;
        }
    }
    out.nodes = nodes.into_values().collect();
    out.pods = pods.into_values().collect();
    out
}

fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeModel, NodeReadiness};

    fn node(name: &str, requested: u32) -> NodeModel {
        NodeModel {
            name: name.into(),
            readiness: NodeReadiness::Ready,
            gpu_capacity: 8,
            gpu_allocatable: 8,
            gpu_requested: requested,
            ..Default::default()
        }
    }

    fn cluster(name: &str, nodes: Vec<NodeModel>) -> ClusterSnapshot {
        ClusterSnapshot {
            name: name.into(),
            nodes,
            ..Default::default()
        }
    }

    fn gpu(node: &str, index: u32, util: Option<f64>, pod: Option<&str>) -> GpuModel {
        let mut g = GpuModel::new("a", node, index, &format!("GPU-{node}-{index}"), Utc::now());
        g.utilization_pct = util;
        g.holder = pod.map(|p| PodRef {
            namespace: "ml".into(),
            pod: p.into(),
            container: None,
        });
        g
    }

    #[test]
    fn join_says_which_pod_holds_which_gpu_and_which_held_gpus_idle() {
        let c = cluster(
            "a",
            vec![node("gpu-1", 2), node("ip-10-0-0-7.ec2.internal", 1)],
        );
        let gpus = vec![
            gpu("gpu-1", 0, Some(80.0), Some("train-0")),
            gpu("gpu-1", 1, Some(0.0), Some("serve-0")),
            gpu("ip-10-0-0-7", 0, Some(1.0), Some("serve-0")),
            gpu("gpu-1", 2, Some(0.0), None),
            gpu("elsewhere", 0, Some(50.0), None),
        ];
        let j = join_gpus_to_nodes(&gpus, [&c], DEFAULT_IDLE_UTILISATION_PCT);

        assert_eq!(
            j.idle_allocated,
            vec![1, 2],
            "free GPUs are not idle-allocated"
        );
        assert_eq!(j.unmatched, vec![4]);
        assert_eq!(j.nodes.len(), 2);
        let n1 = &j.nodes[0];
        assert_eq!((n1.node.as_str(), n1.held, n1.idle_held), ("gpu-1", 2, 1));
        assert_eq!(n1.gpus, vec![0, 1, 3]);
        assert_eq!(n1.requested, 2);
        assert_eq!(
            j.nodes[1].node, "ip-10-0-0-7.ec2.internal",
            "short hostnames match full node names"
        );

        let serve = j
            .pods
            .iter()
            .find(|p| p.pod.pod == "serve-0")
            .expect("serve-0");
        assert_eq!(serve.gpus, vec![1, 2]);
        assert!(serve.all_idle);
        let train = j
            .pods
            .iter()
            .find(|p| p.pod.pod == "train-0")
            .expect("train-0");
        assert!(!train.all_idle);
    }

    #[test]
    fn unknown_utilisation_is_never_called_idle() {
        assert!(!gpu("n", 0, None, Some("p")).is_idle_allocated(5.0));
    }

    #[test]
    fn gpus_of_an_unknown_cluster_are_unmatched() {
        let gpus = vec![gpu("gpu-1", 0, Some(0.0), Some("p"))];
        let j = join_gpus_to_nodes(&gpus, [&cluster("b", vec![node("gpu-1", 1)])], 5.0);
        assert_eq!(j.unmatched, vec![0]);
        assert!(j.nodes.is_empty());
    }

    #[test]
    fn throttle_bits_decode_to_named_reasons() {
        assert_eq!(
            ThrottleReason::from_bits(0x1 | 0x40 | 0x8000),
            vec![ThrottleReason::GpuIdle, ThrottleReason::HwThermalSlowdown]
        );
        assert!(ThrottleReason::HwThermalSlowdown.is_slowdown());
        assert!(!ThrottleReason::GpuIdle.is_slowdown());
    }
}
