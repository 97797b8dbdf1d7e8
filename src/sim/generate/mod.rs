//! Builds a deterministic (per seed) fleet: nodes with each cloud's real label conventions,
//! GPU capacity, daemon sets, serving deployments with rollout history and budgets, a gang
//! training job, batch jobs, notebooks, and the odd crash loop and unschedulable pod.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::cluster::ClusterState;
use super::resources::Kind;
use super::store::{ClusterStore, timestamp};
use super::view::{CapacityType, EndpointSpec};

mod nodes;
mod spark;
mod workloads;

use workloads::{
    Workload, api_gateway_budget, crash_loop, gang_job, inference_service, ingestion_job,
};

/// The size and shape of the fleet to simulate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub clusters: u32,
    /// Nodes across all clusters.
    pub nodes: u32,
    pub pods_per_node: u32,
    pub gpus_per_node: u32,
    pub seed: u64,
}

pub struct GpuType {
    pub instance: &'static str,
    pub gpus: u32,
    pub product: &'static str,
    pub memory_mib: u64,
    pub cpu: u32,
    pub memory_gib: u32,
}

pub struct CloudProfile {
    pub cloud: &'static str,
    pub region: &'static str,
    pub zones: &'static [&'static str],
    pub gpu_types: &'static [GpuType],
    pub cpu_types: &'static [(&'static str, u32, u32)],
    pub kubelet: &'static str,
    pub os_image: &'static str,
    pub kernel: &'static str,
    pub runtime: &'static str,
}

const fn gpu(
    instance: &'static str,
    gpus: u32,
    product: &'static str,
    memory_mib: u64,
    cpu: u32,
    memory_gib: u32,
) -> GpuType {
    GpuType {
        instance,
        gpus,
        product,
        memory_mib,
        cpu,
        memory_gib,
    }
}

pub static CLOUDS: [CloudProfile; 3] = [
    CloudProfile {
        cloud: "aws",
        region: "us-east-1",
        zones: &["us-east-1a", "us-east-1b", "us-east-1c"],
        gpu_types: &[
            gpu("p5.48xlarge", 8, "NVIDIA-H100-80GB-HBM3", 81559, 192, 2048),
            gpu("p4d.24xlarge", 8, "NVIDIA-A100-SXM4-40GB", 40960, 96, 1152),
            gpu("g5.12xlarge", 4, "NVIDIA-A10G", 23028, 48, 192),
            gpu("g6.xlarge", 1, "NVIDIA-L4", 23034, 4, 16),
        ],
        cpu_types: &[("m6i.4xlarge", 16, 64), ("m6i.8xlarge", 32, 128)],
        kubelet: "v1.31.4-eks-aeac579",
        os_image: "Amazon Linux 2023.6.20241212",
        kernel: "6.1.119-129.201.amzn2023.x86_64",
        runtime: "containerd://1.7.23",
    },
    CloudProfile {
        cloud: "gcp",
        region: "us-central1",
        zones: &["us-central1-a", "us-central1-b", "us-central1-c"],
        gpu_types: &[
            gpu(
                "a3-highgpu-8g",
                8,
                "NVIDIA-H100-80GB-HBM3",
                81559,
                208,
                1872,
            ),
            gpu("g2-standard-24", 2, "NVIDIA-L4", 23034, 24, 96),
            gpu("a2-highgpu-1g", 1, "NVIDIA-A100-SXM4-40GB", 40960, 12, 85),
        ],
        cpu_types: &[("n2-standard-16", 16, 64)],
        kubelet: "v1.31.5-gke.1023000",
        os_image: "Container-Optimized OS from Google",
        kernel: "6.1.112+",
        runtime: "containerd://1.7.24",
    },
    CloudProfile {
        cloud: "azure",
        region: "eastus",
        zones: &["eastus-1", "eastus-2", "eastus-3"],
        gpu_types: &[
            gpu(
                "Standard_ND96isr_H100_v5",
                8,
                "NVIDIA-H100-80GB-HBM3",
                81559,
                96,
                1900,
            ),
            gpu(
                "Standard_NC24ads_A100_v4",
                1,
                "NVIDIA-A100-80GB-PCIe",
                81920,
                24,
                220,
            ),
            gpu("Standard_NC4as_T4_v3", 1, "Tesla-T4", 15360, 4, 28),
        ],
        cpu_types: &[("Standard_D16s_v5", 16, 64)],
        kubelet: "v1.31.3",
        os_image: "Ubuntu 22.04.5 LTS",
        kernel: "5.15.0-1079-azure",
        runtime: "containerd://1.7.25-1",
    },
];

pub fn cluster_name(i: u32) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    format!("sim-{}", letters[(i as usize) % 26] as char)
}

/// The endpoints the sim serves, each backed by a Deployment it generates.
pub fn endpoint_specs(clusters: u32) -> Vec<EndpointSpec> {
    let a = cluster_name(0);
    let b = if clusters > 1 {
        cluster_name(1)
    } else {
        a.clone()
    };
    vec![
        EndpointSpec {
            name: "llama-chat".into(),
            protocol: "vllm".into(),
            model: "meta-llama/Llama-3.1-8B-Instruct".into(),
            cluster: a.clone(),
            namespace: "serving".into(),
            deployment: "llama-chat".into(),
        },
        EndpointSpec {
            name: "ranker".into(),
            protocol: "kserve-v2".into(),
            model: "ranker".into(),
            cluster: a,
            namespace: "serving".into(),
            deployment: "ranker-predictor".into(),
        },
        EndpointSpec {
            name: "embedder".into(),
            protocol: "kserve-v2".into(),
            model: "bge-large-en".into(),
            cluster: b,
            namespace: "serving".into(),
            deployment: "embedder-predictor".into(),
        },
    ]
}

/// One planned node, before it becomes an object.
pub struct NodePlan {
    pub name: String,
    pub gpu: Option<&'static GpuType>,
    pub gpus: u32,
    pub instance: &'static str,
    pub cpu: u32,
    pub memory_gib: u32,
    pub capacity: CapacityType,
    pub zone: &'static str,
    pub created: DateTime<Utc>,
    pub karpenter: bool,
    free_gpus: u32,
    free_slots: u32,
}

struct Gen<'a> {
    st: &'a mut ClusterState,
    rng: ChaCha8Rng,
    profile: &'static CloudProfile,
    now: DateTime<Utc>,
    nodes: Vec<NodePlan>,
    cluster_index: u32,
}

fn hex(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

fn pod_suffix(rng: &mut ChaCha8Rng) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())] as char)
        .collect()
}

impl Gen<'_> {
    fn ago(&mut self, min_h: i64, max_h: i64) -> DateTime<Utc> {
        self.now - ChronoDuration::seconds(self.rng.gen_range(min_h * 3600..max_h * 3600))
    }
}

fn namespace(name: &str, created: DateTime<Utc>) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}, "creationTimestamp": timestamp(created)},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// Generates one cluster of the fleet into `st`.
pub fn generate_cluster(st: &mut ClusterState, spec: &FleetSpec, index: u32, node_count: u32) {
    let profile = &CLOUDS[(index as usize) % CLOUDS.len()];
    let mut g = Gen {
        st,
        rng: ChaCha8Rng::seed_from_u64(
            spec.seed
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(index as u64),
        ),
        profile,
        now: Utc::now(),
        nodes: Vec::new(),
        cluster_index: index,
    };
    let epoch = g.now - ChronoDuration::days(120);
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gpu-operator",
        "monitoring",
        "serving",
        "training",
        "batch",
        "research",
        "platform",
    ] {
        g.create(Kind::Namespace, namespace(ns, epoch));
    }
    g.plan_nodes(node_count, spec.gpus_per_node);
    for i in 0..g.nodes.len() {
        g.nodes[i].free_slots = spec.pods_per_node;
    }
    for i in 0..g.nodes.len() {
        let plan = std::mem::replace(
            &mut g.nodes[i],
            NodePlan {
                name: String::new(),
                gpu: None,
                gpus: 0,
                instance: "",
                cpu: 0,
                memory_gib: 0,
                capacity: CapacityType::OnDemand,
                zone: "",
                created: epoch,
                karpenter: false,
                free_gpus: 0,
                free_slots: 0,
            },
        );
        let v = g.node_object(&plan);
        g.nodes[i] = plan;
        g.create(Kind::Node, v);
    }
    // Per-node agents first, as on a real node.
    let p = spec.pods_per_node as usize;
    g.daemonset(
        "kube-system",
        "kube-proxy",
        "registry.k8s.io/kube-proxy:v1.31.4",
        false,
        p,
    );
    g.daemonset(
        "monitoring",
        "node-exporter",
        "quay.io/prometheus/node-exporter:v1.8.2",
        false,
        p.saturating_sub(1),
    );
    g.daemonset(
        "gpu-operator",
        "nvidia-device-plugin-daemonset",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
        true,
        p.saturating_sub(2),
    );
    g.daemonset(
        "gpu-operator",
        "nvidia-dcgm-exporter",
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
        true,
        p.saturating_sub(3),
    );

    let gpus = spec.gpus_per_node.max(1);
    // Serving: the endpoints' deployments. Both llama-chat replicas share one node, so a drain
    // of that node meets its budget: the first eviction passes, the second waits for the
    // replacement to become Ready.
    if index == 0 {
        if let Some(n) = g.find_gpu_node(2, 2, &[]) {
            g.take(n, 1);
            g.take(n, 1);
            let mut w = Workload::new(
                "serving",
                "llama-chat",
                "inference",
                "vllm/vllm-openai:v0.6.3",
                1,
            );
            w.port = 8000;
            w.emptydir = true;
            w.extra_labels
                .push(("app.kubernetes.io/component", "vllm".into()));
            g.deployment(
                &w,
                &[n, n],
                &[
                    (
                        "vllm/vllm-openai:v0.5.4",
                        "helm upgrade llama-chat --set image.tag=v0.5.4",
                    ),
                    (
                        "vllm/vllm-openai:v0.6.1",
                        "helm upgrade llama-chat --set image.tag=v0.6.1",
                    ),
                ],
                "helm upgrade llama-chat --set image.tag=v0.6.3",
            );
            g.budget("serving", "llama-chat", ("minAvailable", json!(1)));
        }
        let placed = g.place_single_gpu_pods(2);
        if !placed.is_empty() {
            let mut w = Workload::new(
                "serving",
                "ranker-predictor",
                "search",
                "kserve/huggingfaceserver:v0.14.0",
                1,
            );
            w.extra_labels
                .push(("serving.kserve.io/inferenceservice", "ranker".into()));
            w.extra_labels.push(("component", "predictor".into()));
            g.deployment(
                &w,
                &placed,
                &[(
                    "kserve/huggingfaceserver:v0.13.1",
                    "kubectl apply -f ranker.yaml",
                )],
                "kubectl apply -f ranker.yaml",
            );
            g.budget("serving", "ranker-predictor", ("maxUnavailable", json!(1)));
            inference_service(&mut g, "ranker", "huggingface", "gs://models/ranker/v2");
        }
    }
    if index == 1 || (index == 0 && spec.clusters == 1) {
        let placed = g.place_single_gpu_pods(2);
        if !placed.is_empty() {
            let mut w = Workload::new(
                "serving",
                "embedder-predictor",
                "search",
                "nvcr.io/nvidia/tritonserver:24.08-py3",
                1,
            );
            w.extra_labels
                .push(("serving.kserve.io/inferenceservice", "embedder".into()));
            g.deployment(&w, &placed, &[], "kubectl apply -f embedder.yaml");
            inference_service(&mut g, "embedder", "triton", "gs://models/bge-large-en/v1");
        }
    }
    // Training: a PyTorchJob gang holding whole GPU nodes.
    let gang_nodes: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            if let Some(n) = g.find_gpu_node(gpus, 1, &v) {
                v.push(n);
            }
        }
        if v.len() >= 2 { v } else { Vec::new() }
    };
    if !gang_nodes.is_empty() && spec.gpus_per_node > 0 {
        gang_job(&mut g, &gang_nodes, gpus);
    }
    // A notebook holding a GPU it does not use (the idle-GPU detector's quarry).
    if spec.gpus_per_node > 0
        && let Some(n) = g.find_gpu_node(1, 1, &[])
    {
        g.take(n, 1);
        let mut w = Workload::new(
            "research",
            "jupyter-akim",
            "research",
            "quay.io/jupyter/pytorch-notebook:cuda12-2024-10-14",
            1,
        );
        w.extra_labels
            .push(("fleetdeck.dev/sim-idle", "true".into()));
        g.deployment(&w, &[n], &[], "kubectl apply -f notebook.yaml");
    }
    // A crash-looping worker and a job that cannot be scheduled, for the cockpit to notice.
    if let Some(n) = (0..g.nodes.len()).find(|&i| g.nodes[i].free_slots > 0) {
        g.take(n, 0);
        let mut w = Workload::new(
            "batch",
            "tokenizer-worker",
            "data",
            "ghcr.io/fleet/tokenizer:2.4.0",
            0,
        );
        w.extra_labels
            .push(("sim.fleetdeck.dev/crashloop", "true".into()));
        let dep = g.deployment(&w, &[n], &[], "kubectl apply -f tokenizer.yaml");
        crash_loop(&mut g, &dep);
    }
    // Filler: CPU services everywhere, GPU inference shards on GPU nodes, until each node has
    // its pods; a few GPUs stay free for rescheduling.
    let cpu_apps: [(&'static str, &'static str, &'static str, &'static str); 6] = [
        (
            "platform",
            "api-gateway",
            "platform",
            "envoyproxy/envoy:v1.31.2",
        ),
        (
            "platform",
            "feature-store",
            "data",
            "feast/feature-server:0.40.1",
        ),
        ("batch", "etl-runner", "data", "apache/spark:3.5.3"),
        (
            "monitoring",
            "log-shipper",
            "platform",
            "fluent/fluent-bit:3.1.9",
        ),
        (
            "research",
            "experiment-tracker",
            "research",
            "ghcr.io/mlflow/mlflow:v2.17.0",
        ),
        (
            "platform",
            "model-gateway",
            "inference",
            "ghcr.io/fleet/model-gateway:1.12.0",
        ),
    ];
    let gpu_apps: [(&'static str, &'static str); 3] = [
        ("mistral-7b-server", "vllm/vllm-openai:v0.6.3"),
        ("whisper-large", "nvcr.io/nvidia/tritonserver:24.08-py3"),
        ("sdxl-turbo", "ghcr.io/fleet/diffusion-server:0.9.2"),
    ];
    const SHARD: usize = 50;
    let mut cpu_groups: Vec<Vec<usize>> = vec![Vec::new(); cpu_apps.len()];
    let mut gpu_groups: Vec<Vec<usize>> = vec![Vec::new(); gpu_apps.len()];
    let mut cursor = 0usize;
    for i in 0..g.nodes.len() {
        // Keep one or two GPUs free on most GPU nodes.
        let reserve = if g.nodes[i].gpus > 2 {
            1 + (i as u32 % 2)
        } else {
            0
        };
        while g.nodes[i].free_slots > 0 {
            let gpu_slot =
                g.nodes[i].gpu.is_some() && g.nodes[i].free_gpus > reserve && g.rng.gen_bool(0.5);
            if gpu_slot {
                let a = cursor % gpu_apps.len();
                g.take(i, 1);
                gpu_groups[a].push(i);
            } else {
                let a = cursor % cpu_apps.len();
                g.take(i, 0);
                cpu_groups[a].push(i);
            }
            cursor += 1;
        }
    }
    for (a, nodes) in cpu_groups.iter().enumerate() {
        let (ns, app, team, image) = cpu_apps[a];
        for (s, chunk) in nodes.chunks(SHARD).enumerate() {
            let name = if s == 0 {
                app.to_string()
            } else {
                format!("{app}-{s}")
            };
            let w = Workload::new(ns, name, team, image, 0);
            g.deployment(&w, chunk, &[], "kubectl apply -f platform/");
        }
    }
    for (a, nodes) in gpu_groups.iter().enumerate() {
        let (app, image) = gpu_apps[a];
        for (s, chunk) in nodes.chunks(SHARD).enumerate() {
            let name = if s == 0 {
                app.to_string()
            } else {
                format!("{app}-{s}")
            };
            let mut w = Workload::new("serving", name, "inference", image, 1);
            w.emptydir = app.contains("server");
            g.deployment(
                &w,
                chunk,
                &[],
                "helm upgrade --install inference charts/inference",
            );
        }
    }
    if index == 0 {
        api_gateway_budget(&mut g);
    }
    // A fine-tuning job asking for a whole GPU node that no node has free: it stays Pending.
    if spec.gpus_per_node > 0 {
        let mut w = Workload::new(
            "research",
            "llm-finetune-xl",
            "research",
            "nvcr.io/nvidia/pytorch:24.08-py3",
            gpus,
        );
        w.extra_labels.push(("job-name", "llm-finetune-xl".into()));
        let mut template = w.template();
        template["spec"]["restartPolicy"] = json!("Never");
        let created = g.ago(1, 3);
        let job = g.create(Kind::Job, json!({
            "metadata": {"name": "llm-finetune-xl", "namespace": "research", "labels": w.labels(),
                "creationTimestamp": timestamp(created), "generation": 1},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "template": template},
            "status": {"active": 1, "startTime": timestamp(created)},
        }));
        let template = job["spec"]["template"].clone();
        g.st.create_pod_from(&job, &template, None);
    }
    for (name, holder) in [
        ("kube-controller-manager", "ip-10-0-0-10_7d3c"),
        ("kube-scheduler", "ip-10-0-0-10_91ab"),
    ] {
        g.create(Kind::Lease, json!({
            "metadata": {"name": name, "namespace": "kube-system", "creationTimestamp": timestamp(epoch)},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": timestamp(g.now - ChronoDuration::days(3)),
                "renewTime": timestamp(g.now), "leaseTransitions": 2},
        }));
    }
    // A stateful cache in front of the feature store: three ordinal pods. Last, and beside the
    // per-node pod budget, so that the fleet's layout is what it was before it came.
    let mut cache = Workload::new("platform", "feature-cache", "data", "redis:7.4.1", 0);
    cache.port = 6379;
    g.statefulset(&cache, 3);
    // The vector index's ingestion Job, after the cache for the same reason.
    if index == 0 {
        ingestion_job(&mut g);
    }
    if index == 0 {
        g.spark_applications();
    }
    g.st.store.window_start = g.st.store.rv;
}

/// Nodes per cluster for a total of `nodes` over `clusters`.
pub fn split_nodes(nodes: u32, clusters: u32) -> Vec<u32> {
    (0..clusters)
        .map(|i| nodes / clusters + u32::from(i < nodes % clusters))
        .collect()
}

pub fn new_cluster(spec: &FleetSpec, index: u32, node_count: u32) -> ClusterState {
    let profile = &CLOUDS[(index as usize) % CLOUDS.len()];
    let store = ClusterStore::new(
        &cluster_name(index),
        spec.seed.wrapping_add(index as u64 * 7919),
    );
    let mut st = ClusterState::new(store, profile.cloud);
    generate_cluster(&mut st, spec, index, node_count);
    // Status fields the generator left empty (PDBs) are filled by one controller pass.
    st.tick(std::time::Instant::now());
    st
}
