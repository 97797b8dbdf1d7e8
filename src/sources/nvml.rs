//! NVML on the local host, read on a blocking thread; degrades to one status line without a driver.
//! NVML is opened once (`OnceLock`), every failing query degrades to `None`, XID and double-bit
//! ECC events are read from an NVML event set on their own thread, and nothing here runs on the
//! async runtime or the render path. Imports model only.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::error::NvmlError as DriverError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{
    NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_FAILURE, NVML_FI_DEV_REMAPPED_PENDING,
    NVML_FI_DEV_REMAPPED_UNC, NVML_FI_DEV_RETIRED_DBE, NVML_FI_DEV_RETIRED_SBE,
};
use nvml_wrapper::{Device, Nvml};
use tokio::sync::mpsc;

use crate::model::gpu::{
    GpuModel, GpuProcess, GpuProcessKind, GpuSourceKind, GpuSourceStatus, GpuUpdate, ThrottleReason,
};

/// The library NVML is loaded from.
#[cfg(target_os = "windows")]
pub const LIBRARY: &str = "nvml.dll";
#[cfg(not(target_os = "windows"))]
pub const LIBRARY: &str = "libnvidia-ml.so.1";

/// The cluster name local GPUs are reported under.
pub const LOCAL_CLUSTER: &str = "local";

/// After an event wakes the poller, it waits this long before reading, so a storm of events
/// costs one read, not one per event.
const EVENT_SETTLE: Duration = Duration::from_millis(250);

/// Why NVML gives nothing. Clone, because the outcome of opening NVML is kept for the life of
/// the process and handed to every caller; the driver's own error is shared behind an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvmlError {
    #[error("NVML unavailable: {library} not found")]
    LibraryNotFound {
        library: String,
        #[source]
        source: Arc<DriverError>,
    },
    #[error("NVML unavailable: the NVIDIA driver is not loaded")]
    DriverNotLoaded,
    #[error("NVML unavailable: no permission to talk to the NVIDIA driver")]
    NoPermission,
    #[error("NVML unavailable: {0}")]
    Init(#[source] Arc<DriverError>),
    #[error("NVML cannot count the GPUs: {0}")]
    DeviceCount(#[source] Arc<DriverError>),
}

fn classify(library: &str, e: DriverError) -> NvmlError {
    match e {
        DriverError::LibloadingError(_) => NvmlError::LibraryNotFound {
            library: library.to_string(),
            source: Arc::new(e),
        },
        DriverError::DriverNotLoaded => NvmlError::DriverNotLoaded,
        DriverError::NoPermission => NvmlError::NoPermission,
        other => NvmlError::Init(Arc::new(other)),
    }
}

fn open(library: &str) -> Result<Nvml, NvmlError> {
    Nvml::builder()
        .lib_path(OsStr::new(library))
        .init()
        .map_err(|e| classify(library, e))
}

/// NVML, opened on first use. A failure is kept too: a driver that is not there at start is
/// not looked for again (loading it twice is what NVIDIA's docs warn against).
fn nvml() -> Result<&'static Nvml, NvmlError> {
    static NVML: OnceLock<Result<Nvml, NvmlError>> = OnceLock::new();
    NVML.get_or_init(|| open(LIBRARY))
        .as_ref()
        .map_err(Clone::clone)
}

/// The node name: `NODE_NAME` (how a DaemonSet learns it from the downward API), else the
/// kernel's hostname.
fn local_hostname() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// XID codes seen by the event thread, by device UUID: NVML has no query for the last XID.
type XidMemory = Arc<Mutex<HashMap<String, u32>>>;

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

fn field_u64(v: &SampleValue) -> Option<u64> {
    match *v {
        SampleValue::U32(x) => Some(u64::from(x)),
        SampleValue::U64(x) => Some(x),
        SampleValue::I64(x) => u64::try_from(x).ok(),
        SampleValue::F64(x) => (x.is_finite() && x >= 0.0).then(|| x.round() as u64),
    }
}

fn processes(device: &Device<'_>) -> Option<Vec<GpuProcess>> {
    let convert = |list: Vec<ProcessInfo>, kind| {
        list.into_iter().map(move |p| GpuProcess {
            pid: p.pid,
            used_memory_mib: match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(mib(b)),
                UsedGpuMemory::Unavailable => None,
            },
            kind,
        })
    };
    let compute = device.running_compute_processes().ok();
    let graphics = device.running_graphics_processes().ok();
    if compute.is_none() && graphics.is_none() {
        return None;
    }
    let mut out: Vec<GpuProcess> = compute
        .map(|l| convert(l, GpuProcessKind::Compute).collect())
        .unwrap_or_default();
    out.extend(
        graphics
            .into_iter()
            .flat_map(|l| convert(l, GpuProcessKind::Graphics)),
    );
    Some(out)
}

/// Everything NVML says about one device; each query that fails leaves its reading `None`.
fn read_device(
    device: &Device<'_>,
    index: u32,
    host: &str,
    driver: Option<&str>,
    xids: &HashMap<String, u32>,
    at: DateTime<Utc>,
) -> GpuModel {
    let uuid = device.uuid().unwrap_or_default();
    let mut g = GpuModel::new(LOCAL_CLUSTER, host, index, &uuid, at);
    g.xid_last = xids.get(&uuid).copied();
    g.model_name = device.name().ok();
    g.pci_bus_id = device.pci_info().ok().map(|p| p.bus_id);
    g.driver_version = driver.map(str::to_string);
    g.utilization_pct = device.utilization_rates().ok().map(|u| f64::from(u.gpu));
    if let Ok(m) = device.memory_info() {
        g.memory_used_mib = Some(mib(m.used));
        g.memory_free_mib = Some(mib(m.free));
        g.memory_total_mib = Some(mib(m.total));
    }
    g.temperature_c = device
        .temperature(TemperatureSensor::Gpu)
        .ok()
        .map(f64::from);
    g.power_w = device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0);
    g.power_limit_w = device
        .enforced_power_limit()
        .ok()
        .map(|mw| f64::from(mw) / 1000.0);
    g.sm_clock_mhz = device.clock_info(Clock::SM).ok();
    g.throttle_reasons = device
        .current_throttle_reasons()
        .ok()
        .map(|r| ThrottleReason::from_bits(r.bits()));
    g.ecc_sbe_volatile = device
        .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
        .ok();
    g.ecc_dbe_volatile = device
        .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
        .ok();
    // One batched call for the page-retirement and row-remapping counters, which nvml-wrapper
    // has no typed query for.
    let ids = [
        NVML_FI_DEV_RETIRED_SBE,
        NVML_FI_DEV_RETIRED_DBE,
        NVML_FI_DEV_REMAPPED_COR,
        NVML_FI_DEV_REMAPPED_UNC,
        NVML_FI_DEV_REMAPPED_PENDING,
        NVML_FI_DEV_REMAPPED_FAILURE,
    ]
    .map(FieldId);
    if let Ok(samples) = device.field_values_for(&ids) {
        for sample in samples.into_iter().flatten() {
            let Some(v) = sample.value.as_ref().ok().and_then(field_u64) else {
                continue;
            };
            match sample.field.0 {
                NVML_FI_DEV_RETIRED_SBE => g.retired_pages_sbe = Some(v),
                NVML_FI_DEV_RETIRED_DBE => g.retired_pages_dbe = Some(v),
                NVML_FI_DEV_REMAPPED_COR => g.remapped_rows_correctable = Some(v),
                NVML_FI_DEV_REMAPPED_UNC => g.remapped_rows_uncorrectable = Some(v),
                NVML_FI_DEV_REMAPPED_PENDING => g.remap_pending = Some(v != 0),
                NVML_FI_DEV_REMAPPED_FAILURE => g.remap_failure = Some(v != 0),
                _ => {}
            }
        }
    }
    g.processes = processes(device);
    // NVML_DEVICE_MIG_ENABLE is 1.
    g.mig_enabled = device.mig_mode().ok().map(|m| m.current == 1);
    g
}

fn read_all(nvml: &Nvml, xids: &XidMemory) -> Result<Vec<GpuModel>, NvmlError> {
    let count = nvml
        .device_count()
        .map_err(|e| NvmlError::DeviceCount(Arc::new(e)))?;
    let host = local_hostname();
    let driver = nvml.sys_driver_version().ok();
    let xids = xids
        .lock()
        .map_or_else(|p| p.into_inner().clone(), |m| m.clone());
    let at = Utc::now();
    Ok((0..count)
        .map(|index| match nvml.device_by_index(index) {
            Ok(d) => read_device(&d, index, &host, driver.as_deref(), &xids, at),
            // A device NVML cannot open (fallen off the bus, say) is still listed, unread.
            Err(e) => {
                tracing::debug!(index, error = %e, "NVML cannot open a GPU");
                GpuModel::new(LOCAL_CLUSTER, &host, index, "", at)
            }
        })
        .collect())
}

/// Reads every local GPU once. Without a driver this is the one-line reason, e.g.
/// "NVML unavailable: libnvidia-ml.so.1 not found".
pub fn probe() -> Result<Vec<GpuModel>, NvmlError> {
    read_all(nvml()?, &XidMemory::default())
}

/// Reads the local GPUs every `interval` (sooner after an XID or double-bit ECC event) on a
/// thread of its own. Without a driver it sends one update whose status says why, and stops.
/// The thread ends when the receiver is dropped.
pub fn spawn_nvml(interval: Duration, tx: mpsc::Sender<GpuUpdate>) {
    let spawned = std::thread::Builder::new()
        .name("nvml-poll".into())
        .spawn(move || poll(interval, tx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the NVML thread; NVML is off");
    }
}

fn status(
    error: Option<String>,
    last_success: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> GpuSourceStatus {
    GpuSourceStatus {
        kind: GpuSourceKind::Nvml,
        cluster: LOCAL_CLUSTER.to_string(),
        target: local_hostname(),
        error,
        last_success,
        checked_at: at,
    }
}

fn poll(interval: Duration, tx: mpsc::Sender<GpuUpdate>) {
    let nvml = match nvml() {
        Ok(n) => n,
        Err(e) => {
            tracing::info!("{e}");
            let _ = tx.blocking_send(GpuUpdate {
                status: status(Some(e.to_string()), None, Utc::now()),
                gpus: None,
            });
            return;
        }
    };
    let xids = XidMemory::default();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    spawn_event_thread(nvml, xids.clone(), wake_tx, stop.clone());

    let mut last_success = None;
    loop {
        let at = Utc::now();
        let update = match read_all(nvml, &xids) {
            Ok(gpus) => {
                last_success = Some(at);
                GpuUpdate {
                    status: status(None, last_success, at),
                    gpus: Some(gpus),
                }
            }
            Err(e) => GpuUpdate {
                status: status(Some(e.to_string()), last_success, at),
                gpus: None,
            },
        };
        if tx.blocking_send(update).is_err() {
            break;
        }
        match wake_rx.recv_timeout(interval) {
            Ok(()) => {
                std::thread::sleep(EVENT_SETTLE);
                while wake_rx.try_recv().is_ok() {}
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // The event thread is gone (no device supports events): plain polling.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(interval),
        }
    }
    stop.store(true, Ordering::Relaxed);
}

#[cfg(target_os = "linux")]
fn spawn_event_thread(
    nvml: &'static Nvml,
    xids: XidMemory,
    wake: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) {
    let spawned = std::thread::Builder::new()
        .name("nvml-events".into())
        .spawn(move || events::watch(nvml, &xids, &wake, &stop));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the NVML event thread; XIDs are not watched");
    }
}

#[cfg(not(target_os = "linux"))]
fn spawn_event_thread(
    _nvml: &'static Nvml,
    _xids: XidMemory,
    _wake: std::sync::mpsc::Sender<()>,
    _stop: Arc<AtomicBool>,
) {
}

#[cfg(target_os = "linux")]
mod events {
    use super::*;
    use nvml_wrapper::EventSet;
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;

    /// How long one wait blocks, so the thread notices `stop` this soon.
    const WAIT_MS: u32 = 1000;

    /// Registers `devices` on a fresh set; on failure answers which device refused (NVML frees
    /// the set when a registration fails, so the caller starts over without it).
    fn register<'n>(
        nvml: &'n Nvml,
        devices: &[(Device<'n>, EventTypes)],
    ) -> Result<EventSet<'n>, Option<usize>> {
        let mut set = nvml.create_event_set().map_err(|_| None)?;
        for (i, (device, wanted)) in devices.iter().enumerate() {
            set = device.register_events(*wanted, set).map_err(|_| Some(i))?;
        }
        Ok(set)
    }

    pub(super) fn watch(
        nvml: &'static Nvml,
        xids: &XidMemory,
        wake: &std::sync::mpsc::Sender<()>,
        stop: &AtomicBool,
    ) {
        let wanted = EventTypes::CRITICAL_XID_ERROR | EventTypes::DOUBLE_BIT_ECC_ERROR;
        let count = nvml.device_count().unwrap_or(0);
        let mut devices: Vec<(Device<'static>, EventTypes)> = (0..count)
            .filter_map(|i| {
                let d = nvml.device_by_index(i).ok()?;
                let types = d.supported_event_types().ok()? & wanted;
                (!types.is_empty()).then_some((d, types))
            })
            .collect();
        let set = loop {
            if devices.is_empty() {
                tracing::info!("no GPU here reports XID or ECC events; they are polled instead");
                return;
            }
            match register(nvml, &devices) {
                Ok(set) => break set,
                Err(Some(i)) => {
                    devices.remove(i);
                }
                Err(None) => {
                    tracing::warn!("NVML cannot create an event set; XIDs are not watched");
                    return;
                }
            }
        };
        let mut failing = false;
        while !stop.load(Ordering::Relaxed) {
            match set.wait(WAIT_MS) {
                Ok(event) => {
                    failing = false;
                    if event.event_type.contains(EventTypes::CRITICAL_XID_ERROR)
                        && let Some(XidError::Value(code)) = event.event_data
                        && let Ok(uuid) = event.device.uuid()
                    {
                        let code = u32::try_from(code).unwrap_or(u32::MAX);
                        tracing::warn!(%uuid, code, "GPU XID error");
                        xids.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(uuid, code);
                    }
                    if wake.send(()).is_err() {
                        return;
                    }
                }
                Err(DriverError::Timeout) => {}
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "waiting for NVML events failed");
                    }
                    failing = true;
                    std::thread::sleep(Duration::from_millis(u64::from(WAIT_MS)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_reported_as_one_clear_line() {
        let e = open("libnvidia-ml-fleetdeck-absent.so.1").expect_err("no such library");
        assert_eq!(
            e.to_string(),
            "NVML unavailable: libnvidia-ml-fleetdeck-absent.so.1 not found"
        );
        assert!(
            std::error::Error::source(&e).is_some(),
            "the loader's own words stay reachable for logs"
        );
    }

    #[test]
    fn without_a_driver_probe_and_the_poller_say_so_once_and_stop() {
        match probe() {
            // A host with a GPU: the poller's first update carries its devices.
            Ok(gpus) => {
                let (tx, mut rx) = mpsc::channel(4);
                spawn_nvml(Duration::from_secs(60), tx);
                let first = rx.blocking_recv().expect("an update");
                assert!(first.status.is_ok(), "{:?}", first.status);
                assert_eq!(first.gpus.map(|g| g.len()), Some(gpus.len()));
            }
            Err(e) => {
                if matches!(e, NvmlError::LibraryNotFound { .. }) {
                    assert_eq!(
                        e.to_string(),
                        "NVML unavailable: libnvidia-ml.so.1 not found"
                    );
                }
                let (tx, mut rx) = mpsc::channel(4);
                spawn_nvml(Duration::from_millis(10), tx);
                let only = rx.blocking_recv().expect("one status update");
                assert_eq!(only.status.error, Some(e.to_string()));
                assert_eq!(only.status.kind, GpuSourceKind::Nvml);
                assert_eq!(only.status.last_success, None);
                assert!(only.gpus.is_none());
                assert!(
                    rx.blocking_recv().is_none(),
                    "the poller stops after saying NVML is unavailable"
                );
            }
        }
    }

    #[test]
    fn field_values_become_counts_only_when_they_are_counts() {
        assert_eq!(field_u64(&SampleValue::U32(3)), Some(3));
        assert_eq!(field_u64(&SampleValue::I64(-1)), None);
        assert_eq!(field_u64(&SampleValue::F64(f64::NAN)), None);
        assert_eq!(field_u64(&SampleValue::F64(2.4)), Some(2));
    }
}
