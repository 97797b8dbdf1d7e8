//! DCGM exporter scraping: the conversion of dcgm-exporter's families, read with the shared
//! [`prom_text`](super::prom_text) parser, into [`GpuModel`]s, and a polling task per endpoint
//! that sends [`GpuUpdate`]s. Imports model only (and the sources' parser).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::prom_text::{Labels, Parser, Problem, Record, parse_utf8};
use crate::model::gpu::{
    GpuModel, GpuSourceKind, GpuSourceStatus, GpuUpdate, MigInstance, PodRef, ThrottleReason,
};

/// What is wrong with a dcgm-exporter body: its format, or a sample that names no GPU.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DcgmProblem {
    #[error(transparent)]
    Format(#[from] Problem),
    #[error("`{metric}` has neither a `gpu` nor a `UUID` label, so it names no GPU")]
    NoGpuIdentity { metric: String },
    #[error("label `{label}` is `{value}`, not a whole number")]
    BadNumberLabel { label: &'static str, value: String },
}

/// A line of a dcgm-exporter body that cannot be read, and why. Line and column count from 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {problem}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub problem: DcgmProblem,
}

impl From<super::prom_text::ParseError> for ParseError {
    fn from(e: super::prom_text::ParseError) -> Self {
        ParseError {
            line: e.line,
            column: e.column,
            problem: DcgmProblem::Format(e.problem),
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

fn whole_number(label: &'static str, value: &str) -> Result<u32, DcgmProblem> {
    value.parse().map_err(|_| DcgmProblem::BadNumberLabel {
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
) -> Result<(String, Building<'a>), DcgmProblem> {
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
        return Err(DcgmProblem::NoGpuIdentity {
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
        parse_utf8(&body)
            .map_err(ParseError::from)
            .and_then(|text| parse_dcgm(text, &cluster, at))
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
    let targets = urls
        .into_iter()
        .map(|(cluster, url)| (cluster, url, super::http::TlsRoots::default()))
        .collect();
    spawn_dcgm_with_roots(targets, interval, tx);
}

/// As [`spawn_dcgm`], each exporter `(cluster, url, roots)` trusting its own private CAs too.
pub fn spawn_dcgm_with_roots(
    targets: Vec<(String, String, super::http::TlsRoots)>,
    interval: Duration,
    tx: mpsc::Sender<GpuUpdate>,
) {
    for (cluster, url, roots) in targets {
        let client = match roots
            .client_builder()
            .timeout(interval.max(Duration::from_secs(10)))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, %url, "cannot build the DCGM HTTP client; this exporter is off");
                continue;
            }
        };
        tokio::spawn(poll_endpoint(client, cluster, url, interval, tx.clone()));
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
