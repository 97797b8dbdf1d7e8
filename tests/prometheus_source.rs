//! The Prometheus client against a real Prometheus (Debian's `prometheus` package, run by each
//! test on a free port) that scrapes a `fleetdeck sim`'s DCGM exporter every second.
//! Ignored by plain `cargo test`; `.ci/run` installs the package and runs them.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::Sim;
use fleetdeck::sources::prometheus::{
    Aggregation, PromError, PrometheusClient, QueryResult, RangeSeries,
};
use serde_json::Value;
use tokio::time::Instant;

/// An upper bound on waiting for Prometheus; typically it is ready and has scraped in ~2 s.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A Prometheus process, killed when dropped.
struct PrometheusProcess {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl PrometheusProcess {
    /// Starts Prometheus scraping `dcgm_url` twice: as job `dcgm` exactly as exported
    /// (`Hostname`), and as job `dcgm-lowercase` with `Hostname` renamed to `hostname`, the
    /// spelling of older dcgm-exporter releases.
    fn start(dcgm_url: &str) -> PrometheusProcess {
        let target = url::Url::parse(dcgm_url).expect("DCGM URL");
        let host_port = format!(
            "{}:{}",
            target.host_str().expect("DCGM host"),
            target.port().expect("DCGM port")
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dcgm
    metrics_path: {path}
    static_configs:
      - targets: ["{host_port}"]
  - job_name: dcgm-lowercase
    metrics_path: {path}
    static_configs:
      - targets: ["{host_port}"]
    metric_relabel_configs:
      - source_labels: [Hostname]
        target_label: hostname
      - regex: Hostname
        action: labeldrop
"#,
                path = target.path()
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        PrometheusProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits for `/-/ready`, then for both jobs' first scrape (`up == 1`).
    async fn wait_until_scraped(&mut self, client: &PrometheusClient) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        let http = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            let ready = http
                .get(format!("{}/-/ready", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready at {}:\n{}",
                self.base,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            if let Ok(r) = client.query("up", None).await
                && let QueryResult::Vector(up) = r.result
                && up.len() == 2
                && up.iter().all(|s| s.sample.value == 1.0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape the sim's DCGM exporter:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> PathBuf {
    let p = PathBuf::from("/usr/bin/prometheus");
    assert!(
        p.exists(),
        "{} is missing: install Debian's prometheus package (apt-get install -y prometheus)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A sim, a Prometheus that has scraped it, a client of that Prometheus, and the GPUs of each
/// node as the sim's Kubernetes API reports them (`nvidia.com/gpu` capacity).
struct Setup {
    _sim: Sim,
    _prometheus: PrometheusProcess,
    client: PrometheusClient,
    gpus_by_node: BTreeMap<String, u64>,
}

async fn setup() -> Setup {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "4", "--seed", "7"]);
    let dcgm = sim.desc["dcgm"][0].as_str().expect("dcgm url").to_string();
    let nodes: Value = reqwest::get(format!("{}/api/v1/nodes", sim.kube_url(0)))
        .await
        .expect("list nodes")
        .json()
        .await
        .expect("nodes JSON");
    let gpus_by_node: BTreeMap<String, u64> = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| {
            let gpus: u64 = n["status"]["capacity"]["nvidia.com/gpu"]
                .as_str()?
                .parse()
                .ok()?;
            let name = n["metadata"]["name"].as_str()?.to_string();
            (gpus > 0).then_some((name, gpus))
        })
        .collect();
    assert!(!gpus_by_node.is_empty(), "the sim has GPU nodes: {nodes}");
    let mut prometheus = PrometheusProcess::start(&dcgm);
    let client =
        PrometheusClient::new(&prometheus.base, None, Duration::from_secs(10)).expect("client");
    prometheus.wait_until_scraped(&client).await;
    Setup {
        _sim: sim,
        _prometheus: prometheus,
        client,
        gpus_by_node,
    }
}

#[tokio::test]
#[ignore = "needs prometheus (Debian package prometheus)"]
async fn an_instant_query_returns_one_series_per_gpu_labelled_with_the_sims_nodes() {
    let s = setup().await;
    let r = s
        .client
        .query("DCGM_FI_DEV_GPU_UTIL{job=\"dcgm\"}", Some(Utc::now()))
        .await
        .expect("instant query");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let QueryResult::Vector(series) = r.result else {
        panic!("expected a vector, got {:?}", r.result)
    };
    let mut per_node: BTreeMap<String, u64> = BTreeMap::new();
    for s in &series {
        let host = s
            .metric
            .get("Hostname")
            .unwrap_or_else(|| panic!("Hostname on {:?}", s.metric));
        *per_node.entry(host.clone()).or_default() += 1;
        assert_eq!(s.metric["__name__"], "DCGM_FI_DEV_GPU_UTIL");
        assert!(s.metric.contains_key("UUID") && s.metric.contains_key("gpu"));
        assert!(
            (0.0..=100.0).contains(&s.sample.value),
            "utilisation {} on {:?}",
            s.sample.value,
            s.metric
        );
    }
    assert_eq!(per_node, s.gpus_by_node, "one series per GPU of each node");
}

#[tokio::test]
#[ignore = "needs prometheus (Debian package prometheus)"]
async fn a_range_query_returns_samples_in_time_order_for_every_gpu() {
    let s = setup().await;
    let end = Utc::now();
    let start = end - chrono::Duration::seconds(30);
    let r = s
        .client
        .query_range(
            "DCGM_FI_DEV_GPU_UTIL{job=\"dcgm\"}",
            start,
            end,
            Duration::from_secs(1),
        )
        .await
        .expect("range query");
    let QueryResult::Matrix(series) = r.result else {
        panic!("expected a matrix, got {:?}", r.result)
    };
    let gpus: u64 = s.gpus_by_node.values().sum();
    assert_eq!(series.len() as u64, gpus, "one series per GPU");
    for RangeSeries { metric, samples } in &series {
        assert!(!samples.is_empty(), "samples for {metric:?}");
        assert!(
            samples.windows(2).all(|w| w[0].time < w[1].time),
            "time order for {metric:?}"
        );
        assert!(
            samples.iter().all(|p| p.time >= start && p.time <= end),
            "samples within [{start}, {end}] for {metric:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs prometheus (Debian package prometheus)"]
async fn bad_promql_is_refused_as_bad_data_naming_the_query() {
    let s = setup().await;
    let err = s
        .client
        .query("sum(DCGM_FI_DEV_GPU_UTIL", None)
        .await
        .expect_err("a parse error");
    match &err {
        PromError::Api {
            error_type, status, ..
        } => {
            assert_eq!(error_type, "bad_data");
            assert_eq!(*status, 400);
        }
        other => panic!("expected the API's bad_data, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("bad_data") && text.contains("sum(DCGM_FI_DEV_GPU_UTIL"),
        "{text}"
    );

    let now = Utc::now();
    let err = s
        .client
        .query_range(
            "up",
            now,
            now - chrono::Duration::seconds(60),
            Duration::from_secs(1),
        )
        .await
        .expect_err("end before start");
    assert!(
        matches!(&err, PromError::Api { error_type, .. } if error_type == "bad_data"),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs prometheus (Debian package prometheus)"]
async fn gpu_helpers_merge_hostname_and_lowercase_hostname_series_per_node() {
    let s = setup().await;
    let at = Utc::now();

    // Job `dcgm` labels Hostname, job `dcgm-lowercase` hostname: both count, under one node.
    let counts = s.client.gpu_count_by_node(Some(at)).await.expect("counts");
    let doubled: BTreeMap<String, f64> = s
        .gpus_by_node
        .iter()
        .map(|(n, g)| (n.clone(), 2.0 * *g as f64))
        .collect();
    assert_eq!(counts, doubled);

    let lowercase_only = s
        .client
        .dcgm_by_node(
            "DCGM_FI_DEV_GPU_UTIL{job=\"dcgm-lowercase\"}",
            Aggregation::Count,
            Some(at),
        )
        .await
        .expect("lowercase counts");
    let expected: BTreeMap<String, f64> = s
        .gpus_by_node
        .iter()
        .map(|(n, g)| (n.clone(), *g as f64))
        .collect();
    assert_eq!(lowercase_only, expected);

    // The per-node mean is the mean of that node's per-GPU series at the same instant.
    let selector = "DCGM_FI_DEV_GPU_UTIL{job=\"dcgm\"}";
    let means = s
        .client
        .dcgm_by_node(selector, Aggregation::Avg, Some(at))
        .await
        .expect("means");
    let QueryResult::Vector(per_gpu) = s
        .client
        .query(selector, Some(at))
        .await
        .expect("per GPU")
        .result
    else {
        panic!("expected a vector")
    };
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for g in &per_gpu {
        let e = sums.entry(g.metric["Hostname"].clone()).or_default();
        e.0 += g.sample.value;
        e.1 += 1.0;
    }
    assert_eq!(
        means.keys().collect::<Vec<_>>(),
        s.gpus_by_node.keys().collect::<Vec<_>>()
    );
    for (node, (sum, n)) in &sums {
        assert!(
            (means[node] - sum / n).abs() < 1e-9,
            "{node}: {} vs {}",
            means[node],
            sum / n
        );
    }

    let utilisation = s
        .client
        .gpu_utilisation_by_node(Some(at))
        .await
        .expect("utilisation");
    assert_eq!(
        utilisation.keys().collect::<Vec<_>>(),
        s.gpus_by_node.keys().collect::<Vec<_>>()
    );
    let history = s
        .client
        .gpu_utilisation_history_by_node(
            at - chrono::Duration::seconds(30),
            at,
            Duration::from_secs(1),
        )
        .await
        .expect("history");
    assert_eq!(
        history.keys().collect::<Vec<_>>(),
        s.gpus_by_node.keys().collect::<Vec<_>>()
    );
    assert!(history.values().all(|samples| !samples.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus (Debian package prometheus)"]
async fn the_collector_puts_per_node_gpu_history_into_the_snapshot() {
    use fleetdeck::sources::Update;
    use fleetdeck::sources::prometheus::spawn_prometheus;
    use fleetdeck::state::{ClusterInfo, spawn};

    let setup = setup().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut snaps = spawn(Vec::<ClusterInfo>::new(), rx);
    let (ptx, mut prx) = tokio::sync::mpsc::channel(4);
    spawn_prometheus(
        setup.client.clone(),
        Duration::from_secs(1),
        Duration::from_secs(300),
        ptx,
    );
    tokio::spawn(async move {
        while let Some(u) = prx.recv().await {
            if tx.send(Update::Prometheus(Box::new(u))).await.is_err() {
                break;
            }
        }
    });
    let want: Vec<String> = setup
        .gpus_by_node
        .keys()
        .map(|n| format!("prometheus/{n}/gpu_util_pct"))
        .collect();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            {
                let s = snaps.borrow();
                if want
                    .iter()
                    .all(|k| s.history.get(k).is_some_and(|v| !v.is_empty()))
                {
                    return s.clone();
                }
            }
            if snaps.changed().await.is_err() {
                panic!("state ended");
            }
        }
    })
    .await
    .expect("per-node GPU history from Prometheus");
    let source = found
        .gpu_sources
        .iter()
        .find(|s| s.kind == fleetdeck::model::gpu::GpuSourceKind::Prometheus)
        .expect("the Prometheus source reports its status");
    assert!(source.error.is_none(), "{source:?}");
    for node in setup.gpus_by_node.keys() {
        let mem = &found.history[&format!("prometheus/{node}/gpu_memory_used_mib")];
        assert!(mem.iter().all(|s| s.value >= 0.0), "{node}: {mem:?}");
    }
}
