//! Builds a deterministic (per seed) fleet: nodes with each cloud's real label conventions,
//! GPU capacity, daemon sets, serving deployments with rollout history and budgets, a gang
//! training job, batch jobs, notebooks, and the odd crash loop and unschedulable pod.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::cluster::{ClusterState, template_hash};
use super::resources::Kind;
use super::store::{ClusterStore, timestamp};
use super::view::{CapacityType, EndpointSpec};

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

/// A workload's pod template and how it is owned.
#[derive(Clone)]
struct Workload {
    ns: &'static str,
    name: String,
    team: &'static str,
    image: String,
    gpus: u32,
    cpu_m: u32,
    mem_mi: u32,
    port: u32,
    emptydir: bool,
    extra_labels: Vec<(&'static str, String)>,
}

impl Workload {
    fn new(
        ns: &'static str,
        name: impl Into<String>,
        team: &'static str,
        image: impl Into<String>,
        gpus: u32,
    ) -> Self {
        Self {
            ns,
            name: name.into(),
            team,
            image: image.into(),
            gpus,
            cpu_m: if gpus > 0 { 4000 * gpus.max(1) } else { 500 },
            mem_mi: if gpus > 0 { 32768 * gpus.max(1) } else { 1024 },
            port: 8080,
            emptydir: false,
            extra_labels: Vec::new(),
        }
    }

    fn labels(&self) -> Value {
        let mut l =
            json!({"app": self.name, "app.kubernetes.io/name": self.name, "team": self.team});
        for (k, v) in &self.extra_labels {
            l[*k] = json!(v);
        }
        l
    }

    fn template(&self) -> Value {
        let mut resources = json!({
            "requests": {"cpu": cpu_quantity(self.cpu_m), "memory": memory_quantity(self.mem_mi)},
            "limits": {"memory": memory_quantity(self.mem_mi)},
        });
        let mut tolerations = vec![
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            json!({"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}),
        ];
        let mut node_selector = json!({"kubernetes.io/os": "linux"});
        if self.gpus > 0 {
            resources["requests"]["nvidia.com/gpu"] = json!(self.gpus.to_string());
            resources["limits"]["nvidia.com/gpu"] = json!(self.gpus.to_string());
            tolerations.push(
                json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
            );
            node_selector["nvidia.com/gpu.present"] = json!("true");
        }
        let mut volumes = vec![
            json!({"name": "config", "configMap": {"name": format!("{}-config", self.name), "defaultMode": 420}}),
        ];
        let mut mounts = vec![json!({"name": "config", "mountPath": "/etc/app", "readOnly": true})];
        if self.emptydir {
            volumes.push(
                json!({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}),
            );
            mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
        }
        json!({
            "metadata": {"labels": self.labels(), "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": self.port.to_string(),
            }},
            "spec": {
                "containers": [{
                    "name": self.name.split('-').next().unwrap_or("main"),
                    "image": self.image,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": self.port, "protocol": "TCP"}],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "resources": resources,
                    "readinessProbe": {"httpGet": {"path": "/health", "port": self.port, "scheme": "HTTP"},
                        "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                    "volumeMounts": mounts,
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "volumes": volumes,
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "schedulerName": "default-scheduler",
                "securityContext": {},
            },
        })
    }
}

/// Quantities in the canonical form the API server writes back (`4`, not `4000m`), so
/// templates compare equal after a client's round trip.
fn cpu_quantity(millis: u32) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn memory_quantity(mib: u32) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

/// A managedFields entry for an `apps/v1` object.
fn apps_v1(mut entry: Value) -> Value {
    entry["apiVersion"] = json!("apps/v1");
    entry
}

fn managed_fields(
    manager: &str,
    op: &str,
    time: &str,
    subresource: Option<&str>,
    fields: Value,
) -> Value {
    let mut m = json!({"manager": manager, "operation": op, "apiVersion": "v1", "time": time,
        "fieldsType": "FieldsV1", "fieldsV1": null});
    m["fieldsV1"] = fields;
    if let Some(s) = subresource {
        m["subresource"] = json!(s);
    }
    m
}

/// Rough mirror of what `managedFields` holds for a pod's spec: every key path of the template.
fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            out.insert(".".into(), json!({}));
            for (k, x) in m {
                out.insert(format!("f:{k}"), field_set(x));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = serde_json::Map::new();
            for (i, x) in items.iter().enumerate() {
                let key = match x.get("name").and_then(Value::as_str) {
                    Some(n) => format!("k:{{\"name\":\"{n}\"}}"),
                    None => format!("i:{i}"),
                };
                out.insert(key, field_set(x));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

impl Gen<'_> {
    fn ago(&mut self, min_h: i64, max_h: i64) -> DateTime<Utc> {
        self.now - ChronoDuration::seconds(self.rng.gen_range(min_h * 3600..max_h * 3600))
    }

    fn plan_nodes(&mut self, count: u32, gpus_per_node: u32) {
        let p = self.profile;
        let cpu_nodes = (count / 5).max(1).min(count);
        let matching: Vec<&'static GpuType> = p
            .gpu_types
            .iter()
            .filter(|g| g.gpus == gpus_per_node)
            .collect();
        let fallback = p
            .gpu_types
            .iter()
            .min_by_key(|g| g.gpus.abs_diff(gpus_per_node))
            .unwrap_or(&p.gpu_types[0]);
        for i in 0..count {
            let is_gpu = i >= cpu_nodes && gpus_per_node > 0;
            let (gpu_type, instance, cpu, mem) = if is_gpu {
                let g = if matching.is_empty() {
                    fallback
                } else {
                    matching[(i as usize) % matching.len()]
                };
                (Some(g), g.instance, g.cpu, g.memory_gib)
            } else {
                let (t, c, m) = p.cpu_types[(i as usize) % p.cpu_types.len()];
                (None, t, c, m)
            };
            let roll: f64 = self.rng.r#gen();
            let capacity = match (is_gpu, roll) {
                (true, r) if r < 0.25 => CapacityType::Spot,
                (true, r) if r < 0.35 => CapacityType::Reserved,
                (false, r) if r < 0.4 => CapacityType::Spot,
                _ => CapacityType::OnDemand,
            };
            // The first GPU nodes stay on-demand: the budget demo and the gang job live there.
            let capacity = if is_gpu && i < cpu_nodes + 6 {
                CapacityType::OnDemand
            } else {
                capacity
            };
            let zone = p.zones[(i as usize) % p.zones.len()];
            let pool = match (is_gpu, gpu_type.map(|g| g.product)) {
                (false, _) => "system".to_string(),
                (true, Some(prod)) => prod.split('-').nth(1).unwrap_or("gpu").to_lowercase(),
                _ => "gpu".to_string(),
            };
            let name = match p.cloud {
                "aws" => format!(
                    "ip-10-{}-{}-{}.ec2.internal",
                    20 + (i / 60_000) % 200,
                    (i / 240) % 250,
                    10 + i % 240
                ),
                "gcp" => format!(
                    "gke-{}-{pool}-pool-{}-{}",
                    cluster_name(self.cluster_index),
                    hex(&mut self.rng, 8),
                    hex(&mut self.rng, 4)
                ),
                _ => format!(
                    "aks-{}pool-{}-vmss{:06}",
                    pool.replace('-', ""),
                    10_000_000 + self.cluster_index * 1_000 + (i % 7),
                    i
                ),
            };
            let created = self.ago(24, 24 * 90);
            let gpus = if is_gpu { gpus_per_node } else { 0 };
            self.nodes.push(NodePlan {
                name,
                gpu: gpu_type,
                gpus,
                instance,
                cpu,
                memory_gib: mem,
                capacity,
                zone,
                created,
                karpenter: i % 2 == 0,
                free_gpus: gpus,
                free_slots: 0,
            });
        }
    }

    fn node_object(&mut self, n: &NodePlan) -> Value {
        let p = self.profile;
        let created = timestamp(n.created);
        let mut labels = json!({
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/instance-type": n.instance,
            "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": n.name,
            "node.kubernetes.io/instance-type": n.instance,
            "topology.kubernetes.io/region": p.region, "topology.kubernetes.io/zone": n.zone,
            "failure-domain.beta.kubernetes.io/region": p.region, "failure-domain.beta.kubernetes.io/zone": n.zone,
        });
        let mut taints: Vec<Value> = Vec::new();
        match p.cloud {
            "aws" => {
                let (k, e) = match n.capacity {
                    CapacityType::Spot => ("spot", "SPOT"),
                    CapacityType::OnDemand => ("on-demand", "ON_DEMAND"),
                    CapacityType::Reserved => ("reserved", "ON_DEMAND"),
                };
                if n.karpenter || n.capacity == CapacityType::Reserved {
                    labels["karpenter.sh/capacity-type"] = json!(k);
                    labels["karpenter.sh/nodepool"] =
                        json!(if n.gpu.is_some() { "gpu" } else { "default" });
                    labels["karpenter.k8s.aws/instance-family"] =
                        json!(n.instance.split('.').next().unwrap_or(""));
                } else {
                    labels["eks.amazonaws.com/capacityType"] = json!(e);
                    labels["eks.amazonaws.com/nodegroup"] = json!(if n.gpu.is_some() {
                        "gpu-ng"
                    } else {
                        "system-ng"
                    });
                }
            }
            "gcp" => {
                labels["cloud.google.com/gke-nodepool"] = json!(if n.gpu.is_some() {
                    "gpu-pool"
                } else {
                    "default-pool"
                });
                labels["cloud.google.com/machine-family"] =
                    json!(n.instance.split('-').next().unwrap_or(""));
                match n.capacity {
                    CapacityType::Spot => labels["cloud.google.com/gke-spot"] = json!("true"),
                    CapacityType::Reserved => {
                        labels["cloud.google.com/reservation-name"] = json!("gpu-reservation-1")
                    }
                    CapacityType::OnDemand => {}
                }
                if let Some(g) = n.gpu {
                    let acc = match g.product {
                        p if p.contains("H100") => "nvidia-h100-80gb",
                        p if p.contains("A100") => "nvidia-tesla-a100",
                        _ => "nvidia-l4",
                    };
                    labels["cloud.google.com/gke-accelerator"] = json!(acc);
                }
            }
            _ => {
                labels["kubernetes.azure.com/agentpool"] =
                    json!(if n.gpu.is_some() { "gpupool" } else { "system" });
                labels["kubernetes.azure.com/cluster"] = json!(format!(
                    "MC_fleet_{}_{}",
                    cluster_name(self.cluster_index),
                    p.region
                ));
                if n.capacity == CapacityType::Spot {
                    labels["kubernetes.azure.com/scalesetpriority"] = json!("spot");
                    taints.push(json!({"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}));
                }
            }
        }
        let mut capacity = json!({
            "cpu": n.cpu.to_string(), "memory": format!("{}Ki", n.memory_gib as u64 * 1024 * 1024),
            "pods": "110", "ephemeral-storage": "524275692Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        });
        let mut allocatable = json!({
            "cpu": format!("{}m", n.cpu * 1000 - 90 - n.cpu * 10),
            "memory": format!("{}Ki", n.memory_gib as u64 * 1024 * 1024 * 94 / 100),
            "pods": "110", "ephemeral-storage": "482151011838", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        });
        let mut gpu_fields = json!({});
        if let Some(g) = n.gpu {
            labels["nvidia.com/gpu.present"] = json!("true");
            labels["nvidia.com/gpu.product"] = json!(g.product);
            labels["nvidia.com/gpu.count"] = json!(n.gpus.to_string());
            labels["nvidia.com/gpu.memory"] = json!(g.memory_mib.to_string());
            labels["nvidia.com/gpu.family"] = json!(if g.product.contains("H100") {
                "hopper"
            } else if g.product.contains("A100") {
                "ampere"
            } else if g.product.contains("L4") {
                "ada-lovelace"
            } else {
                "turing"
            });
            labels["nvidia.com/cuda.driver.major"] = json!("550");
            labels["nvidia.com/cuda.driver.minor"] = json!("127");
            labels["nvidia.com/cuda.driver.rev"] = json!("08");
            labels["nvidia.com/mig.capable"] = json!(if g.product.contains("H100")
                || g.product.contains("A100")
            {
                "true"
            } else {
                "false"
            });
            labels["nvidia.com/gfd.timestamp"] = json!(n.created.timestamp().to_string());
            labels["node-role.kubernetes.io/gpu"] = json!("");
            capacity["nvidia.com/gpu"] = json!(n.gpus.to_string());
            allocatable["nvidia.com/gpu"] = json!(n.gpus.to_string());
            taints
                .push(json!({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}));
            gpu_fields = json!({"f:labels": {"f:nvidia.com/gpu.count": {}, "f:nvidia.com/gpu.family": {}, "f:nvidia.com/gpu.memory": {}, "f:nvidia.com/gpu.present": {}, "f:nvidia.com/gpu.product": {}, "f:nvidia.com/mig.capable": {}}});
        }
        let ip = format!(
            "10.{}.{}.{}",
            20 + self.rng.gen_range(0..200),
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        );
        let provider = match p.cloud {
            "aws" => format!("aws:///{}/i-0{}", n.zone, hex(&mut self.rng, 16)),
            "gcp" => format!("gce://fleet-prod/{}/{}", n.zone, n.name),
            _ => format!(
                "azure:///subscriptions/{}/resourceGroups/mc_fleet/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpupool/virtualMachines/{}",
                hex(&mut self.rng, 8),
                self.rng.gen_range(0..100)
            ),
        };
        let hb = timestamp(self.now - ChronoDuration::seconds(self.rng.gen_range(1..40)));
        let cond = |t: &str, s: &str, r: &str, m: &str| json!({"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": hb, "lastTransitionTime": created});
        let images: Vec<Value> = [
            ("registry.k8s.io/kube-proxy:v1.31.4", 30_000_000u64),
            ("nvcr.io/nvidia/k8s-device-plugin:v0.17.0", 120_000_000),
            ("nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04", 350_000_000),
            ("quay.io/prometheus/node-exporter:v1.8.2", 12_000_000),
            ("vllm/vllm-openai:v0.6.3", 4_800_000_000),
            ("nvcr.io/nvidia/tritonserver:24.08-py3", 6_900_000_000),
            ("kserve/huggingfaceserver:v0.14.0", 3_100_000_000),
            ("nvcr.io/nvidia/pytorch:24.08-py3", 9_600_000_000),
        ]
        .iter()
        .map(|(n, s)| json!({"names": [format!("{n}"), format!("{}@sha256:{:064x}", n.split(':').next().unwrap_or(n), s)], "sizeBytes": s}))
        .collect();
        json!({
            "metadata": {
                "name": n.name, "labels": labels, "creationTimestamp": created,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"{}\"}}", n.name),
                    "alpha.kubernetes.io/provided-node-ip": ip,
                },
                "managedFields": [
                    managed_fields("kubelet", "Update", &created, None, json!({"f:metadata": {"f:annotations": {".": {}, "f:alpha.kubernetes.io/provided-node-ip": {}, "f:volumes.kubernetes.io/controller-managed-attach-detach": {}}, "f:labels": {".": {}, "f:beta.kubernetes.io/arch": {}, "f:kubernetes.io/hostname": {}, "f:node.kubernetes.io/instance-type": {}, "f:topology.kubernetes.io/zone": {}}}, "f:spec": {"f:providerID": {}}})),
                    managed_fields("gpu-feature-discovery", "Update", &created, None, json!({"f:metadata": gpu_fields})),
                    managed_fields("kube-controller-manager", "Update", &created, None, json!({"f:metadata": {"f:annotations": {"f:node.alpha.kubernetes.io/ttl": {}}}, "f:spec": {"f:podCIDR": {}, "f:podCIDRs": {".": {}, "v:\"10.244.0.0/24\"": {}}}})),
                    managed_fields("kubelet", "Update", &hb, Some("status"), json!({"f:status": {"f:allocatable": {"f:nvidia.com/gpu": {}}, "f:capacity": {"f:nvidia.com/gpu": {}}, "f:conditions": {"k:{\"type\":\"DiskPressure\"}": {"f:lastHeartbeatTime": {}}, "k:{\"type\":\"MemoryPressure\"}": {"f:lastHeartbeatTime": {}}, "k:{\"type\":\"PIDPressure\"}": {"f:lastHeartbeatTime": {}}, "k:{\"type\":\"Ready\"}": {"f:lastHeartbeatTime": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}}}, "f:images": {}, "f:nodeInfo": {"f:bootID": {}}}})),
                ],
            },
            "spec": {"providerID": provider, "podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "taints": taints},
            "status": {
                "capacity": capacity, "allocatable": allocatable,
                "conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": n.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": hex(&mut self.rng, 32), "systemUUID": self.st.store.next_uid(), "bootID": self.st.store.next_uid(),
                    "kernelVersion": p.kernel, "osImage": p.os_image, "containerRuntimeVersion": p.runtime,
                    "kubeletVersion": p.kubelet, "kubeProxyVersion": p.kubelet, "operatingSystem": "linux", "architecture": "amd64",
                },
                "images": images,
            },
        })
    }

    /// Creates `v`; on a refusal (a generator bug) logs it and answers `Null`, which owners
    /// of later objects then lack. Not cloned first: at 150,000 pods the copy was seconds.
    fn create(&mut self, kind: Kind, v: Value) -> Value {
        match self.st.store.create(kind, v, false) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(cluster = self.st.name(), error = %e.message, "generator could not create an object");
                Value::Null
            }
        }
    }

    /// A running (or `phase`) pod of `owner` from `template` on node `node`.
    fn pod(
        &mut self,
        owner: &Value,
        template: &Value,
        node: &str,
        phase: &str,
        started: DateTime<Utc>,
    ) -> Value {
        let base = owner["metadata"]["name"]
            .as_str()
            .unwrap_or("pod")
            .to_string();
        let ns = owner["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = loop {
            let candidate = format!("{base}-{}", pod_suffix(&mut self.rng));
            if self.st.store.get(Kind::Pod, &ns, &candidate).is_none() {
                break candidate;
            }
        };
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(node);
        spec["enableServiceLinks"] = json!(true);
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
        spec["priority"] = json!(0);
        let started_s = timestamp(started);
        let ready_s = timestamp(started + ChronoDuration::seconds(self.rng.gen_range(5..90)));
        let running = phase == "Running";
        let cs: Vec<Value> = spec["containers"].as_array().cloned().unwrap_or_default().iter().map(|c| {
            json!({
                "name": c["name"], "image": c["image"],
                "imageID": format!("{}@sha256:{}", c["image"].as_str().unwrap_or("").split(':').next().unwrap_or(""), hex(&mut self.rng, 64)),
                "containerID": format!("containerd://{}", hex(&mut self.rng, 64)),
                "ready": running, "started": running, "restartCount": 0,
                "state": if running { json!({"running": {"startedAt": ready_s}}) } else if phase == "Succeeded" { json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_s, "finishedAt": ready_s}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) },
                "lastState": {},
            })
        }).collect();
        let ok = if running { "True" } else { "False" };
        let ip = format!(
            "10.{}.{}.{}",
            100 + self.rng.gen_range(0..100),
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        );
        let host_ip = format!(
            "10.{}.{}.{}",
            20 + self.rng.gen_range(0..200),
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        );
        let mut controller_fields = managed_fields(
            "kube-controller-manager",
            "Update",
            &started_s,
            None,
            json!({"f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}}, "f:spec": null}),
        );
        controller_fields["fieldsV1"]["f:spec"] = field_set(&template["spec"]);
        let kubelet_fields = managed_fields(
            "kubelet",
            "Update",
            &ready_s,
            Some("status"),
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Initialized\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"PodReadyToStartContainers\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}}, "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, format!("k:{{\"ip\":\"{ip}\"}}"): {".": {}, "f:ip": {}}}, "f:startTime": {}}}),
        );
        // `json!` copies an interpolated Value through serde; the big parts are moved in after.
        let mut pod = json!({
            "metadata": {
                "name": name, "generateName": format!("{base}-"), "namespace": owner["metadata"]["namespace"],
                "labels": null, "annotations": null,
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": base,
                    "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
                "creationTimestamp": started_s,
                "managedFields": null,
            },
            "spec": null,
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_s},
                    {"type": "Ready", "status": ok, "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "ContainersReady", "status": ok, "lastProbeTime": null, "lastTransitionTime": ready_s},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started_s},
                ],
                "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": started_s, "containerStatuses": null,
                "qosClass": "Burstable",
            },
        });
        pod["metadata"]["labels"] = template["metadata"]["labels"].clone();
        pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
        pod["metadata"]["managedFields"] = Value::Array(vec![controller_fields, kubelet_fields]);
        pod["spec"] = spec;
        pod["status"]["containerStatuses"] = Value::Array(cs);
        pod
    }

    fn replicaset_for(
        &mut self,
        dep: &Value,
        template: &Value,
        revision: u64,
        replicas: u32,
        created: DateTime<Utc>,
        cause: &str,
    ) -> Value {
        let hash = template_hash(template);
        let name = dep["metadata"]["name"].as_str().unwrap_or("").to_string();
        let mut t = template.clone();
        t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut sel = dep["spec"]["selector"].clone();
        sel["matchLabels"]["pod-template-hash"] = json!(hash);
        let created_s = timestamp(created);
        let rs = json!({
            "metadata": {
                "name": format!("{name}-{hash}"), "namespace": dep["metadata"]["namespace"],
                "labels": t["metadata"]["labels"], "creationTimestamp": created_s, "generation": 1 + revision,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": dep["spec"]["replicas"].as_u64().unwrap_or(1).to_string(),
                    "deployment.kubernetes.io/max-replicas": (dep["spec"]["replicas"].as_u64().unwrap_or(1) + 1).to_string(),
                    "deployment.kubernetes.io/revision": revision.to_string(),
                    "kubernetes.io/change-cause": cause,
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": dep["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [apps_v1(managed_fields("kube-controller-manager", "Update", &created_s, None, json!({"f:spec": field_set(&t)})))],
            },
            "spec": {"replicas": replicas, "selector": sel, "template": t},
            "status": if replicas > 0 {
                json!({"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1 + revision})
            } else {
                json!({"replicas": 0, "observedGeneration": 1 + revision})
            },
        });
        self.create(Kind::ReplicaSet, rs)
    }

    /// A Deployment with `history` older revisions (scaled to zero) and pods on `nodes`.
    fn deployment(
        &mut self,
        w: &Workload,
        nodes: &[usize],
        history: &[(&str, &str)],
        cause: &str,
    ) -> Value {
        let replicas = nodes.len() as u32;
        let created = self.ago(24 * 10, 24 * 60);
        let template = w.template();
        let revision = history.len() as u64 + 1;
        let dep = json!({
            "metadata": {
                "name": w.name, "namespace": w.ns, "labels": w.labels(), "creationTimestamp": timestamp(created),
                "generation": revision,
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string(), "kubernetes.io/change-cause": cause},
                "managedFields": [apps_v1(managed_fields("kubectl-client-side-apply", "Update", &timestamp(created), None, json!({"f:spec": field_set(&template)})))],
            },
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": {"app": w.name}}, "template": template,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": revision, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": timestamp(created), "lastTransitionTime": timestamp(created)},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet has successfully progressed."), "lastUpdateTime": timestamp(created), "lastTransitionTime": timestamp(created)},
                ],
            },
        });
        let dep = self.create(Kind::Deployment, dep);
        for (i, (image, old_cause)) in history.iter().enumerate() {
            let mut t = template.clone();
            t["spec"]["containers"][0]["image"] = json!(image);
            let when = created + ChronoDuration::hours(i as i64 * 24);
            self.replicaset_for(&dep, &t, i as u64 + 1, 0, when, old_cause);
        }
        let rs_created = created + ChronoDuration::hours(history.len() as i64 * 24);
        let rs = self.replicaset_for(&dep, &template, revision, replicas, rs_created, cause);
        let pod_template = rs["spec"]["template"].clone();
        for &ni in nodes {
            let started = self.ago(1, 24 * 9).max(self.nodes[ni].created);
            let node = self.nodes[ni].name.clone();
            let pod = self.pod(&rs, &pod_template, &node, "Running", started);
            self.create(Kind::Pod, pod);
        }
        dep
    }

    fn daemonset(
        &mut self,
        ns: &'static str,
        name: &str,
        image: &str,
        gpu_only: bool,
        slots: usize,
    ) {
        let nodes: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !gpu_only || self.nodes[i].gpu.is_some())
            .filter(|&i| self.nodes[i].free_slots as usize > 0 && slots > 0)
            .collect();
        let mut w = Workload::new(ns, name, "platform", image, 0);
        w.cpu_m = 100;
        w.mem_mi = 128;
        let mut template = w.template();
        template["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        if gpu_only {
            template["spec"]["nodeSelector"] = json!({"nvidia.com/gpu.present": "true"});
        } else if let Some(m) = template["spec"].as_object_mut() {
            m.remove("nodeSelector");
        }
        let n = nodes.len();
        let ds = json!({
            "metadata": {"name": name, "namespace": ns, "labels": w.labels(), "generation": 1,
                "creationTimestamp": timestamp(self.ago(24 * 90, 24 * 91)),
                "annotations": {"deprecated.daemonset.template.generation": "1"}},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": template,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "revisionHistoryLimit": 10},
            "status": {"currentNumberScheduled": n, "numberMisscheduled": 0, "desiredNumberScheduled": n,
                "numberReady": n, "observedGeneration": 1, "updatedNumberScheduled": n, "numberAvailable": n},
        });
        let ds = self.create(Kind::DaemonSet, ds);
        let template = ds["spec"]["template"].clone();
        for i in nodes {
            self.nodes[i].free_slots -= 1;
            let started = self.nodes[i].created + ChronoDuration::seconds(30);
            let node = self.nodes[i].name.clone();
            let pod = self.pod(&ds, &template, &node, "Running", started);
            self.create(Kind::Pod, pod);
        }
    }

    /// A StatefulSet with its pods `name-0` … spread over nodes with a free slot.
    fn statefulset(&mut self, w: &Workload, replicas: usize) {
        let created = self.ago(24 * 30, 24 * 60);
        let sts = json!({
            "metadata": {"name": w.name, "namespace": w.ns, "labels": w.labels(), "generation": 1,
                "creationTimestamp": timestamp(created)},
            "spec": {"replicas": replicas, "serviceName": w.name, "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": {"app": w.name}}, "template": w.template(),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10},
            "status": {},
        });
        let sts = self.create(Kind::StatefulSet, sts);
        let template = sts["spec"]["template"].clone();
        let revision = format!("{}-1", w.name);
        // One per node, on the last nodes (the first ones are where scenarios and tests look).
        let nodes = self.nodes.len();
        for ordinal in 0..replicas.min(nodes) {
            let i = nodes - 1 - ordinal;
            let node = self.nodes[i].name.clone();
            let started = created + ChronoDuration::seconds(60 * ordinal as i64 + 30);
            let mut pod = self.pod(&sts, &template, &node, "Running", started);
            let name = format!("{}-{ordinal}", w.name);
            pod["metadata"]["name"] = json!(name);
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("generateName");
            }
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(name);
            pod["metadata"]["labels"]["controller-revision-hash"] = json!(revision);
            pod["spec"]["hostname"] = json!(name);
            pod["spec"]["subdomain"] = json!(w.name);
            self.create(Kind::Pod, pod);
        }
    }

    /// A node with at least `gpus` free GPUs and `slots` free pod slots, skipping `skip`.
    fn find_gpu_node(&self, gpus: u32, slots: u32, skip: &[usize]) -> Option<usize> {
        (0..self.nodes.len()).find(|i| {
            let n = &self.nodes[*i];
            n.gpu.is_some() && n.free_gpus >= gpus && n.free_slots >= slots && !skip.contains(i)
        })
    }

    /// Reserves one GPU and one slot on each of `count` different GPU nodes.
    fn place_single_gpu_pods(&mut self, count: usize) -> Vec<usize> {
        let mut placed = Vec::new();
        for _ in 0..count {
            if let Some(n) = self.find_gpu_node(1, 1, &placed) {
                self.take(n, 1);
                placed.push(n);
            }
        }
        placed
    }

    /// A PodDisruptionBudget over the pods labelled `app=<app>`; `rule` is the spec's
    /// minAvailable or maxUnavailable.
    fn budget(&mut self, ns: &str, app: &str, rule: (&str, Value)) {
        let created = self.ago(24 * 10, 24 * 40);
        let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
        spec[rule.0] = rule.1;
        self.create(Kind::PodDisruptionBudget, json!({
            "metadata": {"name": app, "namespace": ns, "generation": 1, "creationTimestamp": timestamp(created)},
            "spec": spec,
            "status": {},
        }));
    }

    fn take(&mut self, i: usize, gpus: u32) {
        self.nodes[i].free_gpus -= gpus;
        self.nodes[i].free_slots -= 1;
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
    g.st.store.window_start = g.st.store.rv;
}

fn inference_service(g: &mut Gen, name: &str, format: &str, storage: &str) {
    let created = g.ago(24 * 5, 24 * 30);
    let predictor = json!({"model": {"modelFormat": {"name": format}, "storageUri": storage,
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4", "memory": "32Gi"}}},
        "minReplicas": 2});
    let mut spec_sans_canary = predictor.clone();
    if let Some(m) = spec_sans_canary.as_object_mut() {
        m.remove("canaryTrafficPercent");
    }
    let url = format!("http://{name}.serving.example.com");
    let t = timestamp(created);
    g.create(Kind::InferenceService, json!({
        "metadata": {"name": name, "namespace": "serving", "generation": 2, "creationTimestamp": t,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment", "sim.fleetdeck.dev/rolled-spec": spec_sans_canary.to_string()},
            "finalizers": ["inferenceservice.finalizers"]},
        "spec": {"predictor": predictor},
        "status": {
            "address": {"url": format!("http://{name}.serving.svc.cluster.local")},
            "url": url,
            "components": {"predictor": {
                "latestCreatedRevision": format!("{name}-predictor-00002"),
                "latestReadyRevision": format!("{name}-predictor-00002"),
                "latestRolledoutRevision": format!("{name}-predictor-00002"),
                "previousRolledoutRevision": format!("{name}-predictor-00001"),
                "traffic": [{"revisionName": format!("{name}-predictor-00002"), "percent": 100, "latestRevision": true}],
                "url": format!("http://{name}-predictor.serving.example.com"),
            }},
            "conditions": [
                {"type": "IngressReady", "status": "True", "lastTransitionTime": t},
                {"type": "PredictorReady", "status": "True", "lastTransitionTime": t},
                {"type": "Ready", "status": "True", "lastTransitionTime": t},
            ],
            "modelStatus": {"states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}, "transitionStatus": "UpToDate"},
            "observedGeneration": 2,
        },
    }));
}

fn gang_job(g: &mut Gen, nodes: &[usize], gpus: u32) {
    let mut w = Workload::new(
        "training",
        "llm-pretrain",
        "research",
        "nvcr.io/nvidia/pytorch:24.08-py3",
        gpus,
    );
    w.emptydir = true;
    w.port = 23456;
    w.extra_labels
        .push(("training.kubeflow.org/job-name", "llm-pretrain".into()));
    w.extra_labels.push((
        "training.kubeflow.org/operator-name",
        "pytorchjob-controller".into(),
    ));
    let created = g.ago(30, 60);
    let mut template = w.template();
    template["spec"]["restartPolicy"] = json!("OnFailure");
    let workers = nodes.len() as u32 - 1;
    let job = g.create(Kind::PyTorchJob, json!({
        "metadata": {"name": "llm-pretrain", "namespace": "training", "labels": {"team": "research"}, "generation": 1, "creationTimestamp": timestamp(created)},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None", "schedulingPolicy": {"minAvailable": nodes.len()}},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template},
                "Worker": {"replicas": workers, "restartPolicy": "OnFailure", "template": template},
            },
        },
        "status": {"conditions": [
            {"type": "Created", "status": "True", "reason": "PyTorchJobCreated", "lastTransitionTime": timestamp(created)},
            {"type": "Running", "status": "True", "reason": "PyTorchJobRunning", "lastTransitionTime": timestamp(created + ChronoDuration::minutes(4))},
        ], "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": workers}}, "startTime": timestamp(created)},
    }));
    for (rank, &ni) in nodes.iter().enumerate() {
        let (rtype, idx) = if rank == 0 {
            ("master", 0)
        } else {
            ("worker", rank - 1)
        };
        let mut t = template.clone();
        t["metadata"]["labels"]["training.kubeflow.org/replica-type"] = json!(rtype);
        t["metadata"]["labels"]["training.kubeflow.org/replica-index"] = json!(idx.to_string());
        t["metadata"]["labels"]["training.kubeflow.org/job-role"] =
            json!(if rank == 0 { "master" } else { "" });
        g.take(ni, gpus);
        let node = g.nodes[ni].name.clone();
        let mut pod = g.pod(
            &job,
            &t,
            &node,
            "Running",
            created + ChronoDuration::minutes(3),
        );
        pod["metadata"]["name"] = json!(format!("llm-pretrain-{rtype}-{idx}"));
        pod["metadata"]["labels"]["training.kubeflow.org/replica-index"] = json!(idx.to_string());
        g.create(Kind::Pod, pod);
    }
}

fn crash_loop(g: &mut Gen, dep: &Value) {
    let ns = dep["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let uid = dep["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let rs_uid =
        g.st.store
            .iter_ns(Kind::ReplicaSet, Some(&ns))
            .find(|(_, s)| s.owner.as_deref() == Some(uid.as_str()))
            .map(|(_, s)| s.uid.clone());
    let Some(rs_uid) = rs_uid else { return };
    let pods: Vec<(String, String)> =
        g.st.store
            .iter_ns(Kind::Pod, Some(&ns))
            .filter(|(_, s)| s.owner.as_deref() == Some(&*rs_uid))
            .map(|(k, _)| k.clone())
            .collect();
    let now = g.now;
    for (pns, pname) in pods {
        let Some(mut pod) = g.st.store.get_value(Kind::Pod, &pns, &pname) else {
            continue;
        };
        let cs = &mut pod["status"]["containerStatuses"][0];
        cs["ready"] = json!(false);
        cs["started"] = json!(false);
        cs["restartCount"] = json!(7);
        cs["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=tokenizer pod=tokenizer-worker"}});
        cs["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": timestamp(now - ChronoDuration::minutes(6)), "finishedAt": timestamp(now - ChronoDuration::minutes(5))}});
        if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
            for c in conds
                .iter_mut()
                .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
            {
                c["status"] = json!("False");
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!("containers with unready status: [tokenizer]");
            }
        }
        let pod = g.st.store.replace(Kind::Pod, pod);
        g.st.record_event(
            &pod,
            "Warning",
            "BackOff",
            "Back-off restarting failed container tokenizer in pod tokenizer-worker",
            "kubelet",
        );
    }
}

fn api_gateway_budget(g: &mut Gen) {
    if g.st
        .store
        .get(Kind::Deployment, "platform", "api-gateway")
        .is_some()
    {
        g.budget("platform", "api-gateway", ("minAvailable", json!("50%")));
    }
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
