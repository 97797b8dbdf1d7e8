//! The simulated fleet's nodes: each cloud's node plan (GPU types, spot share, zones, pools) and
//! the Node objects with that cloud's labels, and the free GPUs and pod slots pods are placed on.

use chrono::Duration as ChronoDuration;
use rand::Rng;
use serde_json::{Value, json};

use crate::sim::store::timestamp;
use crate::sim::view::CapacityType;

use super::workloads::managed_fields;
use super::{Gen, GpuType, NodePlan, cluster_name, hex};

impl Gen<'_> {
    pub(super) fn plan_nodes(&mut self, count: u32, gpus_per_node: u32) {
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

    pub(super) fn node_object(&mut self, n: &NodePlan) -> Value {
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

    /// A node with at least `gpus` free GPUs and `slots` free pod slots, skipping `skip`.
    pub(super) fn find_gpu_node(&self, gpus: u32, slots: u32, skip: &[usize]) -> Option<usize> {
        (0..self.nodes.len()).find(|i| {
            let n = &self.nodes[*i];
            n.gpu.is_some() && n.free_gpus >= gpus && n.free_slots >= slots && !skip.contains(i)
        })
    }

    /// Reserves one GPU and one slot on each of `count` different GPU nodes.
    pub(super) fn place_single_gpu_pods(&mut self, count: usize) -> Vec<usize> {
        let mut placed = Vec::new();
        for _ in 0..count {
            if let Some(n) = self.find_gpu_node(1, 1, &placed) {
                self.take(n, 1);
                placed.push(n);
            }
        }
        placed
    }

    pub(super) fn take(&mut self, i: usize, gpus: u32) {
        self.nodes[i].free_gpus -= gpus;
        self.nodes[i].free_slots -= 1;
    }
}
