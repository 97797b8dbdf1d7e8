//! DCGM exporter metrics for every GPU of a simulated cluster, in dcgm-exporter's text format,
//! family names, help texts and label order. Imports only `sim::view`.
//!
//! Readings are pure functions of (GPU UUID, time, who holds the GPU, faults): no state, so any
//! number of scrapes agree with each other and with a given seed's fleet.
//!
//! Choices a reader of the output should know:
//! - A GPU held by a running pod is busy, unless the pod is labelled
//!   `fleetdeck.dev/sim-idle=true` or is (unless labelled `…=false`) one of a deterministic ~10 % of GPU pods (by hash of
//!   namespace/name): those hold their GPUs with model weights loaded and 0 % utilisation, so an
//!   idle-GPU detector has something to find. A training gang's ranks
//!   (`training.kubeflow.org/job-name`) never idle by hash: they step in lockstep.
//! - `training-stall` stops every rank of a gang (0 %, memory held at its step's peak);
//!   `training-straggler` heats one node's GPUs (91-93 °C: a thermal slowdown, as a straggler's
//!   cause often is), so the gang's rank there runs at [`STRAGGLER_PACE`] of its pace; a rank
//!   moved off the node keeps pace again.
//! - GPUs of a NotReady node are still listed (dcgm-exporter is a DaemonSet pod that often outlives
//!   the kubelet's heartbeat, and an XID storm is when you most want to see them), with their pod
//!   labels, but the work on them has stalled: 0 % utilisation, idle clocks and power, memory still
//!   held.
//! - Framebuffer use follows what holds the GPU (see `MemoryShape`): serving engines reserve
//!   ~90 % at start and stay flat, a training gang saw-tooths between a floor and a ceiling in
//!   lockstep, a notebook holds a flat amount, a free GPU holds nothing. Nothing trends unless
//!   the `gpu-memory-leak` scenario makes one pod's GPU grow.
//! - `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` integrates a smooth reference power curve since the
//!   node was created rather than the instantaneous power, because no allocation history is kept;
//!   this keeps the counter monotone when pods come and go.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::view::{ClusterView, FaultState, NodeView, PodView};

/// The driver the fixture capture ran; any recent one would do.
const DRIVER_VERSION: &str = "580.105.08";

/// Pod label that marks a pod as holding its GPUs without using them.
pub const SIM_IDLE_LABEL: &str = "fleetdeck.dev/sim-idle";

/// One in this many GPU pods idles even without the label.
const IDLE_ONE_IN: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    SmClock,
    MemClock,
    MemoryTemp,
    GpuTemp,
    PowerUsage,
    TotalEnergy,
    PcieReplay,
    GpuUtil,
    MemCopyUtil,
    EncUtil,
    DecUtil,
    XidErrors,
    FbFree,
    FbUsed,
    FbReserved,
    EccSbeVolTotal,
    EccDbeVolTotal,
    UncorrectableRemappedRows,
    CorrectableRemappedRows,
    RowRemapFailure,
    GrEngineActive,
    PipeTensorActive,
    DramActive,
}

/// Output order: the fixture's order, with XID and ECC where the default counters list them.
const FAMILIES: [Family; 23] = [
    Family::SmClock,
    Family::MemClock,
    Family::MemoryTemp,
    Family::GpuTemp,
    Family::PowerUsage,
    Family::TotalEnergy,
    Family::PcieReplay,
    Family::GpuUtil,
    Family::MemCopyUtil,
    Family::EncUtil,
    Family::DecUtil,
    Family::XidErrors,
    Family::FbFree,
    Family::FbUsed,
    Family::FbReserved,
    Family::EccSbeVolTotal,
    Family::EccDbeVolTotal,
    Family::UncorrectableRemappedRows,
    Family::CorrectableRemappedRows,
    Family::RowRemapFailure,
    Family::GrEngineActive,
    Family::PipeTensorActive,
    Family::DramActive,
];

impl Family {
    /// (name, type, help) exactly as dcgm-exporter's default-counters.csv has them.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::SmClock => (
                "DCGM_FI_DEV_SM_CLOCK",
                "gauge",
                "SM clock frequency (in MHz).",
            ),
            Family::MemClock => (
                "DCGM_FI_DEV_MEM_CLOCK",
                "gauge",
                "Memory clock frequency (in MHz).",
            ),
            Family::MemoryTemp => (
                "DCGM_FI_DEV_MEMORY_TEMP",
                "gauge",
                "Memory temperature (in C).",
            ),
            Family::GpuTemp => ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
            Family::PowerUsage => ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
            Family::TotalEnergy => (
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "counter",
                "Total energy consumption since boot (in mJ).",
            ),
            Family::PcieReplay => (
                "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
                "counter",
                "Total number of PCIe retries.",
            ),
            Family::GpuUtil => ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
            Family::MemCopyUtil => (
                "DCGM_FI_DEV_MEM_COPY_UTIL",
                "gauge",
                "Memory utilization (in %).",
            ),
            Family::EncUtil => (
                "DCGM_FI_DEV_ENC_UTIL",
                "gauge",
                "Encoder utilization (in %).",
            ),
            Family::DecUtil => (
                "DCGM_FI_DEV_DEC_UTIL",
                "gauge",
                "Decoder utilization (in %).",
            ),
            Family::XidErrors => (
                "DCGM_FI_DEV_XID_ERRORS",
                "gauge",
                "Value of the last XID error encountered.",
            ),
            Family::FbFree => (
                "DCGM_FI_DEV_FB_FREE",
                "gauge",
                "Framebuffer memory free (in MiB).",
            ),
            Family::FbUsed => (
                "DCGM_FI_DEV_FB_USED",
                "gauge",
                "Framebuffer memory used (in MiB).",
            ),
            Family::FbReserved => (
                "DCGM_FI_DEV_FB_RESERVED",
                "gauge",
                "Framebuffer memory reserved (in MiB).",
            ),
            Family::EccSbeVolTotal => (
                "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                "counter",
                "Total number of single-bit volatile ECC errors.",
            ),
            Family::EccDbeVolTotal => (
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                "counter",
                "Total number of double-bit volatile ECC errors.",
            ),
            Family::UncorrectableRemappedRows => (
                "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
                "counter",
                "Number of remapped rows for uncorrectable errors",
            ),
            Family::CorrectableRemappedRows => (
                "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
                "counter",
                "Number of remapped rows for correctable errors",
            ),
            Family::RowRemapFailure => (
                "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                "gauge",
                "Whether remapping of rows has failed",
            ),
            Family::GrEngineActive => (
                "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "gauge",
                "Ratio of time the graphics engine is active.",
            ),
            Family::PipeTensorActive => (
                "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                "gauge",
                "Ratio of cycles the tensor (HMMA) pipe is active.",
            ),
            Family::DramActive => (
                "DCGM_FI_PROF_DRAM_ACTIVE",
                "gauge",
                "Ratio of cycles the device memory interface is active sending or receiving data.",
            ),
        }
    }

    /// dcgm-exporter prints power and profiling ratios with six decimals, the rest as integers.
    fn decimals(self) -> bool {
        matches!(
            self,
            Family::PowerUsage
                | Family::GrEngineActive
                | Family::PipeTensorActive
                | Family::DramActive
        )
    }
}

/// What differs between GPU products for the readings.
#[derive(Debug, Clone)]
struct GpuProfile {
    model_name: String,
    power_limit_w: f64,
    idle_power_w: f64,
    sm_clock_max: f64,
    sm_clock_idle: f64,
    mem_clock_max: f64,
    mem_clock_idle: f64,
    /// HBM parts report a memory temperature and keep their memory clock; GDDR parts (L4, T4,
    /// A10G) report 0 °C memory temperature, as the fixture's L4 does.
    hbm: bool,
}

/// `nvidia.com/gpu.product` (spaces replaced by dashes) → the name and limits NVML reports.
fn profile_for(product: &str) -> GpuProfile {
    let tokens: Vec<String> = product
        .split(['-', ' ', '_'])
        .map(|t| t.to_ascii_uppercase())
        .collect();
    let has = |t: &str| tokens.iter().any(|x| x == t);
    let p = |name: &str, limit, idle, sm_max, mem_max, mem_idle, hbm| GpuProfile {
        model_name: name.to_string(),
        power_limit_w: limit,
        idle_power_w: idle,
        sm_clock_max: sm_max,
        sm_clock_idle: 210.0,
        mem_clock_max: mem_max,
        mem_clock_idle: mem_idle,
        hbm,
    };
    if has("H100") {
        p(
            "NVIDIA H100 80GB HBM3",
            700.0,
            72.0,
            1980.0,
            2619.0,
            2619.0,
            true,
        )
    } else if has("A100") {
        let name = if has("80GB") {
            "NVIDIA A100-SXM4-80GB"
        } else {
            "NVIDIA A100-SXM4-40GB"
        };
        p(name, 400.0, 55.0, 1410.0, 1215.0, 1215.0, true)
    } else if has("A10G") {
        p("NVIDIA A10G", 300.0, 26.0, 1710.0, 6251.0, 405.0, false)
    } else if has("L4") {
        p("NVIDIA L4", 72.0, 16.0, 2040.0, 6251.0, 405.0, false)
    } else if has("T4") {
        p("Tesla T4", 70.0, 10.0, 1590.0, 5001.0, 405.0, false)
    } else {
        p(
            &product.replace('-', " "),
            300.0,
            30.0,
            1700.0,
            5000.0,
            405.0,
            false,
        )
    }
}

/// How a GPU is being used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Free,
    AllocatedIdle,
    Busy,
    /// Held by a pod on a NotReady node, or a rank of a gang whose work stopped
    /// (`training-stall`).
    Stalled,
    /// A straggling rank of a training gang (`training-straggler`): busy at a fraction of the
    /// pace.
    Straggling,
}

/// How fast a straggling rank's GPUs work against a healthy one's.
pub const STRAGGLER_PACE: f64 = 0.2;

/// The label naming the training job a pod is a rank of (Kubeflow's training operator).
const JOB_NAME_LABEL: &str = "training.kubeflow.org/job-name";

/// FNV-1a: stable across runs and platforms, unlike std's randomly keyed hasher.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A number in [0, 1) derived from `h` and a salt, so one hash feeds several independent traits.
fn unit(h: u64, salt: u64) -> f64 {
    let mut x = h ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a GPU pod holds its GPUs without using them: the `fleetdeck.dev/sim-idle` label
/// decides when it is `true` or `false`, a hash of namespace/name otherwise.
pub fn pod_is_idle(pod: &PodView) -> bool {
    match pod.labels.get(SIM_IDLE_LABEL).map(String::as_str) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    // A gang's ranks step in lockstep: one idle by chance would be a straggler the healthy
    // fleet did not mean to have (a stalled or straggling gang is a scenario).
    if pod.labels.contains_key(JOB_NAME_LABEL) {
        return false;
    }
    stable_hash(&format!("{}/{}", pod.namespace, pod.name)).is_multiple_of(IDLE_ONE_IN)
}

struct Reading {
    values: [f64; FAMILIES.len()],
}

impl Reading {
    fn set(&mut self, f: Family, v: f64) {
        if let Some(i) = FAMILIES.iter().position(|x| *x == f) {
            self.values[i] = v;
        }
    }
}

/// What a GPU's framebuffer use looks like over time, by what holds it. DCGM reads memory as
/// the driver sees it, so a caching allocator's reservations count, not the tensors alive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MemoryShape {
    /// No process on the GPU.
    Empty,
    /// A serving engine that reserved its weights and KV cache at start-up (vLLM's
    /// `gpu_memory_utilization` defaults to 0.9; Triton and KServe runtimes behave alike): flat.
    Preallocated,
    /// A process holding a fixed amount it does not grow (a notebook kernel with a model loaded).
    Held,
    /// A training loop: weights, gradients and optimiser state stay resident (the floor);
    /// activations are allocated through each step and freed at its end, up to the ceiling.
    TrainingSteps {
        /// Hash of the job, so every rank of a gang steps in lockstep.
        job: u64,
    },
}

/// Training steps as the sim draws them: (floor, ceiling) as fractions of the usable
/// framebuffer, the period in seconds and the phase in periods. Shared by the ranks of a job.
fn training_steps(job: u64, gpu: u64) -> (f64, f64, f64, f64) {
    let floor = 0.55 + unit(job, 10) * 0.10 + unit(gpu, 4) * 0.01;
    let ceiling = floor + 0.15 + unit(job, 11) * 0.05;
    let period = 30.0 + unit(job, 12) * 30.0;
    (floor, ceiling, period, unit(job, 13))
}

/// How long a leaking GPU takes to fill from its normal level: the detectors' default
/// 30-minute horizon sees it from the first samples, and an operator has minutes to act.
pub const LEAK_FILL_SECONDS: f64 = 720.0;

fn memory_shape(holder: Option<&PodView>) -> MemoryShape {
    let Some(pod) = holder else {
        return MemoryShape::Empty;
    };
    if matches!(pod.controller_kind.as_deref(), Some("pytorchjob" | "job")) {
        let job = pod.controller_name.as_deref().unwrap_or(&pod.name);
        return MemoryShape::TrainingSteps {
            job: stable_hash(&format!("{}/{job}", pod.namespace)),
        };
    }
    if pod.labels.get(SIM_IDLE_LABEL).map(String::as_str) == Some("true") {
        return MemoryShape::Held;
    }
    MemoryShape::Preallocated
}

/// The fraction of the usable framebuffer in use at `t` (seconds since the epoch).
fn memory_fraction(shape: MemoryShape, activity: Activity, h: u64, t: f64) -> f64 {
    match shape {
        MemoryShape::Empty => 0.0,
        MemoryShape::Preallocated => 0.88 + unit(h, 4) * 0.04,
        MemoryShape::Held => 0.30 + unit(h, 4) * 0.40,
        MemoryShape::TrainingSteps { job } => {
            let (floor, ceiling, period, phase) = training_steps(job, h);
            // A stalled job (its node NotReady) stopped mid-step; the allocator keeps its peak.
            if activity == Activity::Stalled {
                return ceiling;
            }
            floor + (ceiling - floor) * (t / period + phase).rem_euclid(1.0)
        }
    }
}

/// The fraction in use on a leaking GPU, `elapsed` seconds into the leak: a straight line from
/// the normal level to full, then pinned there. A leaking engine that meets CUDA OOM fails the
/// requests that needed memory but keeps what it holds until it is restarted; the sim restarts
/// nothing on its own, so deleting the pod (its replacement starts clean) or clearing the
/// scenario is what ends it.
fn leaking_fraction(normal: f64, elapsed: f64) -> f64 {
    (normal + (1.0 - normal) * elapsed.max(0.0) / LEAK_FILL_SECONDS).min(1.0)
}

/// What is happening on one GPU besides time: who uses it, how much memory, which faults.
struct GpuState {
    activity: Activity,
    memory_fraction: f64,
    xid: u32,
    ecc_fault: bool,
}

fn read_gpu(
    node: &NodeView,
    profile: &GpuProfile,
    uuid: &str,
    state: &GpuState,
    now: DateTime<Utc>,
) -> Reading {
    let GpuState {
        activity,
        memory_fraction,
        xid,
        ecc_fault,
    } = *state;
    let h = stable_hash(uuid);
    let t = now.timestamp_millis() as f64 / 1000.0;
    let period = 240.0 + unit(h, 2) * 600.0;
    let phase = unit(h, 1) * TAU;

    let busy = || {
        let base = 62.0 + unit(h, 3) * 25.0;
        (base
            + 12.0 * (TAU * t / period + phase).sin()
            + 4.0 * (TAU * t / 37.0 + 3.0 * phase).sin())
        .clamp(1.0, 100.0)
    };
    let util = match activity {
        Activity::Busy => busy().round(),
        Activity::Straggling => (busy() * STRAGGLER_PACE).round().max(1.0),
        Activity::Free | Activity::AllocatedIdle | Activity::Stalled => 0.0,
    };
    let total = node.gpu_memory_mib as f64;
    // About 2 % of the framebuffer is reserved by the driver (470 of 23034 MiB on the fixture's L4).
    let reserved = (total / 49.0).round();
    let usable = (total - reserved).max(0.0);
    let used = (usable * memory_fraction.clamp(0.0, 1.0)).round();
    let load = util / 100.0;
    let power = profile.idle_power_w * (0.95 + 0.1 * unit(h, 6))
        + (profile.power_limit_w * 0.88 - profile.idle_power_w) * load;
    // A straggler's GPUs are slow because they are hot (a failing fan, a blocked airflow): at
    // 91-93 °C, past the detectors' 87 °C, the clocks hold back.
    let gpu_temp = if activity == Activity::Straggling {
        (91.0 + unit(h, 5) * 2.0).round()
    } else {
        (29.0 + unit(h, 5) * 5.0 + 45.0 * load).round()
    };
    let mem_temp = if profile.hbm { gpu_temp + 4.0 } else { 0.0 };
    let (sm_clock, mem_clock) = if util > 0.0 {
        (
            (profile.sm_clock_max * (0.93 + 0.07 * unit(h, 7))).round(),
            profile.mem_clock_max,
        )
    } else {
        (profile.sm_clock_idle, profile.mem_clock_idle)
    };
    let mem_copy = (util * (0.35 + 0.2 * unit(h, 8))).round();

    let mut r = Reading {
        values: [0.0; FAMILIES.len()],
    };
    r.set(Family::SmClock, sm_clock);
    r.set(Family::MemClock, mem_clock);
    r.set(Family::MemoryTemp, mem_temp);
    r.set(Family::GpuTemp, gpu_temp);
    r.set(Family::PowerUsage, power);
    r.set(Family::TotalEnergy, energy_mj(node, profile, h, now));
    r.set(Family::GpuUtil, util);
    r.set(Family::MemCopyUtil, mem_copy);
    r.set(Family::XidErrors, f64::from(xid));
    r.set(Family::FbFree, (usable - used).max(0.0));
    r.set(Family::FbUsed, used);
    r.set(Family::FbReserved, reserved);
    if ecc_fault {
        r.set(Family::EccSbeVolTotal, 3.0 + (h % 5) as f64);
        r.set(Family::EccDbeVolTotal, 1.0 + (h % 2) as f64);
        r.set(Family::UncorrectableRemappedRows, 1.0 + (h % 3) as f64);
        r.set(Family::RowRemapFailure, 1.0);
    }
    r.set(Family::GrEngineActive, load);
    r.set(Family::PipeTensorActive, load * 0.45);
    r.set(Family::DramActive, mem_copy / 100.0);
    r
}

/// Energy since the node booted, in mJ: the integral of `a + b·sin(ωt + φ)` with a > b > 0, so it
/// only grows and needs no remembered state.
fn energy_mj(node: &NodeView, profile: &GpuProfile, h: u64, now: DateTime<Utc>) -> f64 {
    let t0 = node.created.timestamp_millis() as f64 / 1000.0;
    let t1 = (now.timestamp_millis() as f64 / 1000.0).max(t0);
    let a = profile.idle_power_w + 0.4 * (profile.power_limit_w - profile.idle_power_w);
    let b = 0.2 * (profile.power_limit_w - profile.idle_power_w);
    // A period that no whole number of hours or days divides, so readings taken on the hour differ.
    let omega = TAU / 4111.0;
    let phi = unit(h, 9) * TAU;
    let joules = a * (t1 - t0) + b * ((omega * t0 + phi).cos() - (omega * t1 + phi).cos()) / omega;
    (joules * 1000.0).round()
}

/// Escapes a label value as the exposition format requires.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A UUID or bus id for a device the view has no identity for (lists shorter than gpu_count):
/// derived from the node so it is still stable.
fn fallback_uuid(node: &NodeView, index: u32) -> String {
    let h = stable_hash(&format!("{}/{}/{}", node.cluster, node.name, index));
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        (h >> 48) & 0xffff,
        h & 0xffff_ffff_ffff
    )
}

/// The DCGM exporter text for every GPU of every GPU node in `cluster`.
pub fn render_metrics(cluster: &ClusterView, faults: &FaultState, now: DateTime<Utc>) -> String {
    // (node name, device index) → pod holding it. Only running pods hold devices.
    let mut holders: HashMap<(&str, u32), &PodView> = HashMap::new();
    for pod in &cluster.pods {
        let Some(node) = pod.node.as_deref() else {
            continue;
        };
        if pod.phase != "Running" {
            continue;
        }
        for &idx in &pod.gpu_indices {
            holders.entry((node, idx)).or_insert(pod);
        }
    }

    struct Series {
        labels: String,
        reading: Reading,
    }
    let mut series = Vec::new();
    for node in &cluster.nodes {
        let Some(product) = node.gpu_product.as_deref() else {
            continue;
        };
        if node.gpu_count == 0 {
            continue;
        }
        let profile = profile_for(product);
        let key = (cluster.name.clone(), node.name.clone());
        let xids = faults.xid.get(&key);
        let ecc = faults.ecc.get(&key);
        for idx in 0..node.gpu_count {
            let i = idx as usize;
            let uuid = node
                .gpu_uuids
                .get(i)
                .cloned()
                .unwrap_or_else(|| fallback_uuid(node, idx));
            let bus_id = node
                .gpu_pci_bus_ids
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("00000000:{:02X}:00.0", 0x10 + idx));
            let holder = holders.get(&(node.name.as_str(), idx)).copied();
            let training = holder.and_then(|p| {
                faults.training.as_ref().filter(|f| {
                    f.cluster == cluster.name
                        && f.namespace == p.namespace
                        && p.labels.get(JOB_NAME_LABEL) == Some(&f.job)
                })
            });
            let activity = match (holder, training) {
                (None, _) => Activity::Free,
                (Some(_), _) if !node.ready => Activity::Stalled,
                (Some(_), Some(f)) if f.straggler_node.is_none() => Activity::Stalled,
                (Some(_), Some(f)) if f.straggler_node.as_deref() == Some(node.name.as_str()) => {
                    Activity::Straggling
                }
                (Some(p), _) if pod_is_idle(p) => Activity::AllocatedIdle,
                (Some(_), _) => Activity::Busy,
            };
            // The list is in report order, so the last entry for a device is its latest XID.
            let xid = xids
                .and_then(|v| v.iter().rev().find(|(g, _)| *g == idx))
                .map_or(0, |(_, code)| *code);
            let ecc_fault = ecc.is_some_and(|v| v.contains(&idx));
            let h = stable_hash(&uuid);
            let t = now.timestamp_millis() as f64 / 1000.0;
            let mut memory = memory_fraction(memory_shape(holder), activity, h, t);
            if let (Some(leak), Some(pod)) = (&faults.memory_leak, holder)
                && leak.cluster == cluster.name
                && leak.namespace == pod.namespace
                && leak.pod == pod.name
                && pod.gpu_indices.iter().min() == Some(&idx)
            {
                let elapsed = (now - leak.since).num_milliseconds() as f64 / 1000.0;
                memory = leaking_fraction(memory, elapsed);
            }
            let state = GpuState {
                activity,
                memory_fraction: memory,
                xid,
                ecc_fault,
            };

            let mut labels = format!(
                "gpu=\"{idx}\",UUID=\"{}\",pci_bus_id=\"{}\",device=\"nvidia{idx}\",modelName=\"{}\",Hostname=\"{}\",DCGM_FI_DRIVER_VERSION=\"{DRIVER_VERSION}\"",
                escape_label(&uuid),
                escape_label(&bus_id),
                escape_label(&profile.model_name),
                escape_label(&node.name),
            );
            if let Some(pod) = holder {
                let _ = write!(
                    labels,
                    ",container=\"{}\",namespace=\"{}\",pod=\"{}\"",
                    escape_label(&pod.container),
                    escape_label(&pod.namespace),
                    escape_label(&pod.name)
                );
            }
            let reading = read_gpu(node, &profile, &uuid, &state, now);
            series.push(Series { labels, reading });
        }
    }

    let mut out = String::with_capacity(series.len() * FAMILIES.len() * 260 + 4096);
    for (fi, family) in FAMILIES.iter().enumerate() {
        let (name, kind, help) = family.describe();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in &series {
            let v = s.reading.values[fi];
            if family.decimals() {
                let _ = writeln!(out, "{name}{{{}}} {v:.6}", s.labels);
            } else {
                let _ = writeln!(out, "{name}{{{}}} {v:.0}", s.labels);
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashSet};

    use chrono::TimeZone;

    use super::*;
    use crate::sim::view::{CapacityType, MemoryLeak};

    /// One sample line of the text exposition format.
    #[derive(Debug, Clone)]
    pub(crate) struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    /// A parsed exposition: samples, and HELP/TYPE per family in the order they appeared.
    #[derive(Debug, Default)]
    pub(crate) struct Exposition {
        pub samples: Vec<Sample>,
        pub help: Vec<(String, String)>,
        pub types: Vec<(String, String)>,
    }

    impl Exposition {
        pub fn label<'a>(s: &'a Sample, key: &str) -> Option<&'a str> {
            s.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A strict line parser for the Prometheus text format; fails on anything it cannot read.
    pub(crate) fn parse_exposition(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or(format!("line {n}: {line}"))?;
                out.help.push((name.to_string(), help.to_string()));
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("line {n}: {line}"))?;
                if !["gauge", "counter", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("line {n}: bad type {kind}"));
                }
                out.types.push((name.to_string(), kind.to_string()));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').ok_or(format!("line {n}: {line}"))?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| format!("line {n}: value {v}"))?,
            };
            let (name, labels) = match head.split_once('{') {
                None => (head.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .ok_or(format!("line {n}: unclosed labels"))?;
                    (
                        name.to_string(),
                        parse_labels(body).map_err(|e| format!("line {n}: {e}"))?,
                    )
                }
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(format!("line {n}: bad name {name:?}"));
            }
            out.samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Ok(out)
    }

    fn parse_labels(body: &str) -> Result<Vec<(String, String)>, String> {
        let mut labels = Vec::new();
        let mut chars = body.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if chars.next() != Some('"') {
                return Err(format!("label {key}: missing quote"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => return Err("dangling escape".into()),
                    },
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("label {key}: unterminated")),
                }
            }
            labels.push((key, value));
            match chars.next() {
                None | Some(',') => {}
                Some(c) => return Err(format!("unexpected {c:?} after label")),
            }
        }
        Ok(labels)
    }

    fn node(name: &str, product: &str, gpus: u32, mem_mib: u64, ready: bool) -> NodeView {
        NodeView {
            cluster: "c1".into(),
            name: name.into(),
            cloud: "aws".into(),
            instance_type: "p5.48xlarge".into(),
            capacity_type: CapacityType::OnDemand,
            zone: "us-east-1a".into(),
            region: "us-east-1".into(),
            ready,
            unschedulable: false,
            gpu_product: Some(product.into()),
            gpu_count: gpus,
            gpu_memory_mib: mem_mib,
            cpu_cores: 192,
            memory_gib: 2048,
            created: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            gpu_uuids: (0..gpus)
                .map(|i| format!("GPU-{name}-{i:04}-aaaa-bbbb-cccccccccccc"))
                .collect(),
            gpu_pci_bus_ids: (0..gpus)
                .map(|i| format!("00000000:{:02X}:00.0", 0x18 + i))
                .collect(),
        }
    }

    fn pod(name: &str, node: &str, indices: &[u32], labels: &[(&str, &str)]) -> PodView {
        PodView {
            cluster: "c1".into(),
            namespace: "ml".into(),
            name: name.into(),
            node: Some(node.into()),
            phase: "Running".into(),
            ready: true,
            terminating: false,
            controller_kind: Some("deployment".into()),
            controller_name: Some("llm".into()),
            container: "server".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            cpu_millis: 8000,
            memory_mib: 65536,
            gpus: indices.len() as u32,
            gpu_indices: indices.to_vec(),
            started: None,
        }
    }

    fn cluster() -> ClusterView {
        ClusterView {
            name: "c1".into(),
            nodes: vec![
                node("gpu-a", "NVIDIA-H100-80GB-HBM3", 8, 81559, true),
                node("gpu-b", "NVIDIA-L4", 1, 23034, true),
                node("gpu-down", "NVIDIA-A100-SXM4-40GB", 2, 40960, false),
                NodeView {
                    gpu_product: None,
                    gpu_count: 0,
                    ..node("cpu-1", "", 0, 0, true)
                },
            ],
            pods: vec![
                pod("busy", "gpu-a", &[0, 1], &[(SIM_IDLE_LABEL, "false")]),
                pod("idler", "gpu-a", &[2], &[(SIM_IDLE_LABEL, "true")]),
                pod("stuck", "gpu-down", &[1], &[(SIM_IDLE_LABEL, "false")]),
            ],
            deployments: vec![],
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::seconds(secs)
    }

    fn find<'a>(e: &'a Exposition, family: &str, host: &str, gpu: &str) -> &'a Sample {
        e.samples
            .iter()
            .find(|s| {
                s.name == family
                    && Exposition::label(s, "Hostname") == Some(host)
                    && Exposition::label(s, "gpu") == Some(gpu)
            })
            .unwrap_or_else(|| panic!("no {family} for {host}/{gpu}"))
    }

    #[test]
    fn output_parses_with_one_help_and_type_per_family() {
        let text = render_metrics(&cluster(), &FaultState::default(), at(0));
        let e = parse_exposition(&text).expect("parses");
        let names: Vec<&str> = e.types.iter().map(|(n, _)| n.as_str()).collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "a family repeated");
        assert_eq!(e.help.len(), e.types.len());
        assert_eq!(names.len(), FAMILIES.len());
        // 8 + 1 + 2 GPUs, CPU node absent.
        for name in &names {
            assert_eq!(
                e.samples.iter().filter(|s| s.name == *name).count(),
                11,
                "{name}"
            );
        }
        for required in [
            "DCGM_FI_DEV_XID_ERRORS",
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
            "DCGM_FI_DEV_ROW_REMAP_FAILURE",
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        ] {
            assert!(unique.contains(required), "{required}");
        }
    }

    #[test]
    fn labels_follow_the_exporter_order_and_name_the_pod_holding_the_gpu() {
        let c = cluster();
        let e =
            parse_exposition(&render_metrics(&c, &FaultState::default(), at(0))).expect("parses");
        let base = [
            "gpu",
            "UUID",
            "pci_bus_id",
            "device",
            "modelName",
            "Hostname",
            "DCGM_FI_DRIVER_VERSION",
        ];
        for s in &e.samples {
            let keys: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(&keys[..7], &base, "{s:?}");
            assert!(
                keys.len() == 7 || keys[7..] == ["container", "namespace", "pod"],
                "{s:?}"
            );
        }
        for p in &c.pods {
            let host = p.node.as_deref().unwrap_or_default();
            let held: HashSet<String> = e
                .samples
                .iter()
                .filter(|s| {
                    s.name == "DCGM_FI_DEV_GPU_UTIL" && Exposition::label(s, "pod") == Some(&p.name)
                })
                .map(|s| {
                    assert_eq!(Exposition::label(s, "Hostname"), Some(host));
                    Exposition::label(s, "gpu").unwrap_or_default().to_string()
                })
                .collect();
            let expected: HashSet<String> = p.gpu_indices.iter().map(u32::to_string).collect();
            assert_eq!(held, expected, "{}", p.name);
        }
        let h100 = find(&e, "DCGM_FI_DEV_GPU_UTIL", "gpu-a", "0");
        assert_eq!(
            Exposition::label(h100, "modelName"),
            Some("NVIDIA H100 80GB HBM3")
        );
        assert_eq!(Exposition::label(h100, "device"), Some("nvidia0"));
    }

    #[test]
    fn busy_idle_and_free_gpus_read_differently() {
        let e = parse_exposition(&render_metrics(&cluster(), &FaultState::default(), at(0)))
            .expect("parses");
        let util = |h, g| find(&e, "DCGM_FI_DEV_GPU_UTIL", h, g).value;
        let fb = |h, g| find(&e, "DCGM_FI_DEV_FB_USED", h, g).value;
        assert!(util("gpu-a", "0") >= 40.0 && util("gpu-a", "1") >= 40.0);
        assert_eq!(util("gpu-a", "2"), 0.0, "labelled idle pod");
        assert!(fb("gpu-a", "2") > 10_000.0, "idle pod still holds memory");
        assert_eq!(util("gpu-a", "5"), 0.0);
        assert_eq!(fb("gpu-a", "5"), 0.0);
        assert_eq!(util("gpu-down", "1"), 0.0, "stalled on a NotReady node");
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == "DCGM_FI_DEV_POWER_USAGE")
        {
            let limit = match Exposition::label(s, "modelName") {
                Some("NVIDIA H100 80GB HBM3") => 700.0,
                Some("NVIDIA L4") => 72.0,
                _ => 400.0,
            };
            assert!(s.value > 0.0 && s.value < limit, "{s:?}");
        }
        for host_gpu in [("gpu-a", "0"), ("gpu-b", "0"), ("gpu-down", "0")] {
            let total = fb(host_gpu.0, host_gpu.1)
                + find(&e, "DCGM_FI_DEV_FB_FREE", host_gpu.0, host_gpu.1).value
                + find(&e, "DCGM_FI_DEV_FB_RESERVED", host_gpu.0, host_gpu.1).value;
            let expected = cluster()
                .nodes
                .iter()
                .find(|n| n.name == host_gpu.0)
                .map_or(0, |n| n.gpu_memory_mib) as f64;
            assert!(
                (total - expected).abs() <= 1.0,
                "{host_gpu:?}: {total} vs {expected}"
            );
        }
    }

    #[test]
    fn about_a_tenth_of_unlabelled_gpu_pods_idle_by_hash() {
        let idle = (0..1000)
            .filter(|i| pod_is_idle(&pod(&format!("worker-{i}"), "n", &[0], &[])))
            .count();
        assert!((60..=140).contains(&idle), "{idle}");
    }

    #[test]
    fn busy_readings_move_smoothly_and_energy_only_grows() {
        let c = cluster();
        let mut last_energy = 0.0;
        let mut last_util: Option<f64> = None;
        for step in 0..60 {
            let e = parse_exposition(&render_metrics(&c, &FaultState::default(), at(step * 10)))
                .expect("parses");
            let energy = find(&e, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "gpu-a", "0").value;
            assert!(energy > last_energy);
            last_energy = energy;
            let util = find(&e, "DCGM_FI_DEV_GPU_UTIL", "gpu-a", "0").value;
            if let Some(prev) = last_util {
                assert!((util - prev).abs() <= 15.0, "jump {prev} → {util}");
            }
            last_util = Some(util);
        }
        let a = render_metrics(&c, &FaultState::default(), at(5));
        assert_eq!(
            a,
            render_metrics(&c, &FaultState::default(), at(5)),
            "deterministic"
        );
    }

    /// Least-squares slope, in MiB per second, of `(seconds, MiB)` samples.
    fn slope(samples: &[(f64, f64)]) -> f64 {
        let n = samples.len() as f64;
        let mt = samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mv = samples.iter().map(|s| s.1).sum::<f64>() / n;
        let cov: f64 = samples.iter().map(|(t, v)| (t - mt) * (v - mv)).sum();
        let var: f64 = samples.iter().map(|(t, _)| (t - mt).powi(2)).sum();
        cov / var
    }

    /// FB_USED of `host`/`gpu` every `step` seconds, `n` times, from `at(0)`.
    fn fb_series(
        c: &ClusterView,
        faults: &FaultState,
        host: &str,
        gpu: &str,
        n: i64,
        step: i64,
    ) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let e = parse_exposition(&render_metrics(c, faults, at(i * step))).expect("parses");
                (
                    (i * step) as f64,
                    find(&e, "DCGM_FI_DEV_FB_USED", host, gpu).value,
                )
            })
            .collect()
    }

    fn usable(c: &ClusterView, host: &str) -> f64 {
        let total = c
            .nodes
            .iter()
            .find(|n| n.name == host)
            .map_or(0, |n| n.gpu_memory_mib) as f64;
        total - (total / 49.0).round()
    }

    /// The test cluster plus a two-rank PyTorchJob gang on gpu-a's devices 6 and 7.
    fn cluster_with_training() -> ClusterView {
        let mut c = cluster();
        for (rank, idx) in [(0, 6), (1, 7)] {
            c.pods.push(PodView {
                namespace: "training".into(),
                controller_kind: Some("pytorchjob".into()),
                controller_name: Some("llm-pretrain".into()),
                ..pod(&format!("llm-pretrain-worker-{rank}"), "gpu-a", &[idx], &[])
            });
        }
        c
    }

    #[test]
    fn a_stalled_gang_idles_every_rank_and_a_hot_node_makes_its_rank_straggle() {
        let mut c = cluster_with_training();
        for p in c.pods.iter_mut().filter(|p| p.namespace == "training") {
            p.labels
                .insert(JOB_NAME_LABEL.into(), "llm-pretrain".into());
            if p.name.ends_with("-1") {
                p.node = Some("gpu-b".into());
                p.gpu_indices = vec![0];
            }
        }
        let read = |faults: &FaultState, family: &str, host: &str, gpu: &str| {
            let e = parse_exposition(&render_metrics(&c, faults, at(0))).expect("parses");
            find(&e, family, host, gpu).value
        };
        let util =
            |f: &FaultState, host: &str, gpu: &str| read(f, "DCGM_FI_DEV_GPU_UTIL", host, gpu);
        let healthy = FaultState::default();
        assert!(util(&healthy, "gpu-a", "6") >= 40.0 && util(&healthy, "gpu-b", "0") >= 40.0);
        let fault = |straggler: Option<&str>| FaultState {
            training: Some(crate::sim::view::TrainingFault {
                cluster: "c1".into(),
                namespace: "training".into(),
                job: "llm-pretrain".into(),
                straggler_node: straggler.map(str::to_string),
            }),
            ..FaultState::default()
        };
        let stall = fault(None);
        assert_eq!(
            (util(&stall, "gpu-a", "6"), util(&stall, "gpu-b", "0")),
            (0.0, 0.0)
        );
        assert!(
            util(&stall, "gpu-a", "0") >= 40.0,
            "other pods keep working"
        );
        let straggle = fault(Some("gpu-b"));
        assert!(util(&straggle, "gpu-a", "6") >= 40.0);
        let slow = util(&straggle, "gpu-b", "0");
        assert!((1.0..=20.0).contains(&slow), "{slow}");
        assert!(read(&straggle, "DCGM_FI_DEV_GPU_TEMP", "gpu-b", "0") >= 91.0);
        assert!(read(&straggle, "DCGM_FI_DEV_GPU_TEMP", "gpu-a", "6") < 87.0);
    }

    #[test]
    fn serving_and_notebook_memory_is_flat_over_thirty_samples() {
        let c = cluster();
        let faults = FaultState::default();
        let cap = usable(&c, "gpu-a");
        let serving = fb_series(&c, &faults, "gpu-a", "0", 30, 10);
        assert_eq!(slope(&serving), 0.0, "{serving:?}");
        assert!(serving.iter().all(|s| s.1 == serving[0].1), "{serving:?}");
        let level = serving[0].1 / cap;
        assert!(
            (0.87..=0.93).contains(&level),
            "pre-allocated ~90 %: {level}"
        );
        let notebook = fb_series(&c, &faults, "gpu-a", "2", 30, 10);
        assert_eq!(slope(&notebook), 0.0, "{notebook:?}");
        let free = fb_series(&c, &faults, "gpu-a", "5", 30, 10);
        assert!(free.iter().all(|s| s.1 == 0.0), "{free:?}");
    }

    #[test]
    fn training_memory_saw_tooths_in_lockstep_between_a_floor_and_a_ceiling_below_capacity() {
        let c = cluster_with_training();
        let faults = FaultState::default();
        let cap = usable(&c, "gpu-a");
        let rank0 = fb_series(&c, &faults, "gpu-a", "6", 120, 2);
        let rank1 = fb_series(&c, &faults, "gpu-a", "7", 120, 2);
        for series in [&rank0, &rank1] {
            let lo = series.iter().map(|s| s.1).fold(f64::MAX, f64::min);
            let hi = series.iter().map(|s| s.1).fold(0.0, f64::max);
            assert!(lo >= 0.54 * cap, "floor {lo} of {cap}");
            assert!(hi <= 0.87 * cap, "ceiling {hi} of {cap}");
            assert!(hi - lo >= 0.12 * cap, "activations come and go: {lo}..{hi}");
            let drops = series
                .windows(2)
                .filter(|w| w[0].1 - w[1].1 > 0.10 * cap)
                .count();
            // 240 s of 30–60 s steps: every step ends with its activations freed.
            assert!((3..=9).contains(&drops), "{drops} step ends: {series:?}");
        }
        let drop_at = |s: &[(f64, f64)]| -> Vec<usize> {
            s.windows(2)
                .enumerate()
                .filter(|(_, w)| w[1].1 < w[0].1)
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(drop_at(&rank0), drop_at(&rank1), "the gang steps together");
    }

    #[test]
    fn a_leak_grows_one_gpu_steadily_until_full_and_clearing_restores_its_flat_level() {
        let c = cluster();
        let cap = usable(&c, "gpu-a");
        let healthy = fb_series(&c, &FaultState::default(), "gpu-a", "0", 1, 10)[0].1;
        let faults = FaultState {
            memory_leak: Some(MemoryLeak {
                cluster: "c1".into(),
                namespace: "ml".into(),
                pod: "busy".into(),
                since: at(0),
            }),
            ..FaultState::default()
        };
        let leaking = fb_series(&c, &faults, "gpu-a", "0", 30, 10);
        assert!(
            leaking.windows(2).all(|w| w[1].1 > w[0].1),
            "grows at every sample: {leaking:?}"
        );
        let expected = (cap - healthy) / LEAK_FILL_SECONDS;
        let rate = slope(&leaking);
        assert!(
            (rate - expected).abs() < 0.01 * expected,
            "{rate} vs {expected}"
        );
        let neighbour = fb_series(&c, &faults, "gpu-a", "1", 30, 10);
        assert_eq!(slope(&neighbour), 0.0, "the pod's other GPU stays flat");
        let others = parse_exposition(&render_metrics(&c, &faults, at(290))).expect("parses");
        let calm =
            parse_exposition(&render_metrics(&c, &FaultState::default(), at(290))).expect("parses");
        let changed: Vec<String> = others
            .samples
            .iter()
            .filter(|s| s.name == "DCGM_FI_DEV_FB_USED")
            .filter(|s| {
                let host = Exposition::label(s, "Hostname").unwrap_or_default();
                let gpu = Exposition::label(s, "gpu").unwrap_or_default();
                find(&calm, "DCGM_FI_DEV_FB_USED", host, gpu).value != s.value
            })
            .map(|s| format!("{s:?}"))
            .collect();
        assert_eq!(changed.len(), 1, "exactly one GPU leaks: {changed:?}");

        let full = parse_exposition(&render_metrics(&c, &faults, at(800))).expect("parses");
        assert_eq!(find(&full, "DCGM_FI_DEV_FB_USED", "gpu-a", "0").value, cap);
        assert_eq!(find(&full, "DCGM_FI_DEV_FB_FREE", "gpu-a", "0").value, 0.0);
        let later = parse_exposition(&render_metrics(&c, &faults, at(3600))).expect("parses");
        assert_eq!(
            find(&later, "DCGM_FI_DEV_FB_USED", "gpu-a", "0").value,
            cap,
            "pinned at full"
        );

        let cleared = fb_series(&c, &FaultState::default(), "gpu-a", "0", 5, 10);
        assert!(cleared.iter().all(|s| s.1 == healthy), "{cleared:?}");
    }

    #[test]
    fn xid_and_ecc_faults_appear_on_the_faulted_gpus_only() {
        let mut faults = FaultState::default();
        faults.xid.insert(
            ("c1".into(), "gpu-a".into()),
            vec![(3, 13), (3, 79), (4, 48)],
        );
        faults.ecc.insert(("c1".into(), "gpu-a".into()), vec![4]);
        let e = parse_exposition(&render_metrics(&cluster(), &faults, at(0))).expect("parses");
        assert_eq!(
            find(&e, "DCGM_FI_DEV_XID_ERRORS", "gpu-a", "3").value,
            79.0,
            "latest wins"
        );
        assert_eq!(find(&e, "DCGM_FI_DEV_XID_ERRORS", "gpu-a", "4").value, 48.0);
        assert_eq!(find(&e, "DCGM_FI_DEV_XID_ERRORS", "gpu-a", "0").value, 0.0);
        assert_eq!(find(&e, "DCGM_FI_DEV_XID_ERRORS", "gpu-b", "0").value, 0.0);
        assert!(find(&e, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "gpu-a", "4").value >= 1.0);
        assert!(find(&e, "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "gpu-a", "4").value >= 1.0);
        assert_eq!(
            find(&e, "DCGM_FI_DEV_ROW_REMAP_FAILURE", "gpu-a", "4").value,
            1.0
        );
        assert_eq!(
            find(&e, "DCGM_FI_DEV_ROW_REMAP_FAILURE", "gpu-a", "3").value,
            0.0
        );
        assert_eq!(
            find(&e, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "gpu-a", "3").value,
            0.0
        );
    }

    #[test]
    fn shape_matches_the_real_exporter_capture() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dcgm-exporter-metrics.txt"
        ));
        let real = parse_exposition(fixture).expect("fixture parses");
        let ours = parse_exposition(&render_metrics(&cluster(), &FaultState::default(), at(0)))
            .expect("parses");
        let real_types: BTreeMap<_, _> = real.types.iter().cloned().collect();
        let real_help: BTreeMap<_, _> = real.help.iter().cloned().collect();
        let mut shared = 0;
        for (name, kind) in &ours.types {
            if let Some(real_kind) = real_types.get(name) {
                shared += 1;
                assert_eq!(kind, real_kind, "{name}");
                assert_eq!(
                    ours.help.iter().find(|(n, _)| n == name).map(|(_, h)| h),
                    real_help.get(name),
                    "{name}"
                );
            }
        }
        assert!(shared >= 18, "{shared}");
        let real_keys: Vec<&str> = real.samples[0]
            .labels
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let our_gpu_b = find(&ours, "DCGM_FI_DEV_SM_CLOCK", "gpu-b", "0");
        let our_keys: Vec<&str> = our_gpu_b.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            our_keys, real_keys,
            "an unallocated GPU has exactly the capture's labels"
        );
        // Both print power with six decimals and integers elsewhere.
        assert!(fixture.contains("DCGM_FI_DRIVER_VERSION=\"580.105.08\"} 16.365000"));
        let ours_text = render_metrics(&cluster(), &FaultState::default(), at(0));
        let power_line = ours_text
            .lines()
            .find(|l| l.starts_with("DCGM_FI_DEV_POWER_USAGE{"))
            .unwrap_or_default();
        let decimals = power_line.rsplit_once('.').map_or(0, |(_, d)| d.len());
        assert_eq!(decimals, 6, "{power_line}");
    }
}
