//! The whole simulated fleet: its clusters, the faults scenarios injected beside the
//! Kubernetes API, and the read-only views the DCGM, endpoint and OpenCost servers use,
//! rebuilt incrementally (only objects whose resourceVersion moved are parsed again).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::api::SimCluster;
use super::resources::Kind;
use super::store::{Key, Stored};
use super::view::{
    CapacityType, ClusterView, DeploymentView, FaultState, FleetSource, NodeView, PodView,
};

#[derive(Default)]
struct ViewCache {
    nodes: HashMap<String, (u64, NodeView)>,
    pods: HashMap<Key, (u64, PodView)>,
    deployments: HashMap<Key, (u64, DeploymentView)>,
}

pub struct SimFleet {
    pub clusters: Vec<Arc<SimCluster>>,
    pub faults: Mutex<FaultState>,
    /// What scenarios injected, and when, newest last.
    pub injected: Mutex<Vec<Value>>,
    caches: Vec<Mutex<ViewCache>>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s(v, ptr))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Kubernetes quantity → base units (cores, bytes …) for the suffixes the sim writes.
pub fn quantity(q: &str) -> f64 {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().unwrap_or(0.0);
    n * match suffix {
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => 1.0,
    }
}

fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn capacity_type(labels: &BTreeMap<String, String>) -> CapacityType {
    let get = |k: &str| labels.get(k).map(|v| v.to_ascii_lowercase());
    if get("karpenter.sh/capacity-type").as_deref() == Some("spot")
        || get("eks.amazonaws.com/capacitytype").as_deref() == Some("spot")
        || labels.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("eks.amazonaws.com/capacityType")
                && v.eq_ignore_ascii_case("spot")
        })
        || get("cloud.google.com/gke-spot").as_deref() == Some("true")
        || get("kubernetes.azure.com/scalesetpriority").as_deref() == Some("spot")
    {
        CapacityType::Spot
    } else if get("karpenter.sh/capacity-type").as_deref() == Some("reserved")
        || labels.contains_key("cloud.google.com/reservation-name")
    {
        CapacityType::Reserved
    } else {
        CapacityType::OnDemand
    }
}

fn node_view(cluster: &str, cloud: &str, s_: &Stored) -> NodeView {
    let v = s_.value();
    let l = &s_.labels;
    let name = s(&v, "/metadata/name").to_string();
    let gpu_count = quantity(s(&v, "/status/capacity/nvidia.com~1gpu")) as u32;
    const BUS: [u8; 8] = [0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB];
    let uuids = (0..gpu_count)
        .map(|i| {
            let a = stable_hash(&format!("{cluster}/{name}/{i}"));
            let b = stable_hash(&format!("{name}/{i}/{cluster}"));
            format!(
                "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        })
        .collect();
    let buses = (0..gpu_count)
        .map(|i| {
            format!(
                "00000000:{:02X}:00.0",
                BUS[(i as usize) % BUS.len()].wrapping_add((i / 8) as u8)
            )
        })
        .collect();
    NodeView {
        cluster: cluster.to_string(),
        name,
        cloud: cloud.to_string(),
        instance_type: l
            .get("node.kubernetes.io/instance-type")
            .cloned()
            .unwrap_or_default(),
        capacity_type: capacity_type(l),
        zone: l
            .get("topology.kubernetes.io/zone")
            .cloned()
            .unwrap_or_default(),
        region: l
            .get("topology.kubernetes.io/region")
            .cloned()
            .unwrap_or_default(),
        ready: s_.node.as_ref().is_some_and(|n| n.ready),
        unschedulable: s_.node.as_ref().is_some_and(|n| n.unschedulable),
        gpu_product: l.get("nvidia.com/gpu.product").cloned(),
        gpu_count,
        gpu_memory_mib: l
            .get("nvidia.com/gpu.memory")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0),
        cpu_cores: quantity(s(&v, "/status/capacity/cpu")) as u32,
        memory_gib: (quantity(s(&v, "/status/capacity/memory")) / 1024f64.powi(3)).round() as u32,
        created: time(&v, "/metadata/creationTimestamp").unwrap_or_else(Utc::now),
        gpu_uuids: uuids,
        gpu_pci_bus_ids: buses,
    }
}

fn pod_view(cluster: &str, s_: &Stored) -> PodView {
    let v = s_.value();
    let owner = v["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|r| r.iter().find(|o| o["controller"] == true))
        .cloned()
        .unwrap_or(Value::Null);
    let (kind, name) = match (s(&owner, "/kind"), s(&owner, "/name")) {
        ("", _) => (None, None),
        ("ReplicaSet", n) => match s_.labels.get("pod-template-hash") {
            Some(h) => (
                Some("deployment".to_string()),
                Some(n.trim_end_matches(&format!("-{h}")).to_string()),
            ),
            None => (Some("replicaset".to_string()), Some(n.to_string())),
        },
        (k, n) => (Some(k.to_lowercase()), Some(n.to_string())),
    };
    let mut cpu = 0.0;
    let mut mem = 0.0;
    if let Some(cs) = v["spec"]["containers"].as_array() {
        for c in cs {
            cpu += quantity(s(c, "/resources/requests/cpu"));
            mem += quantity(s(c, "/resources/requests/memory"));
        }
    }
    PodView {
        cluster: cluster.to_string(),
        namespace: s(&v, "/metadata/namespace").to_string(),
        name: s(&v, "/metadata/name").to_string(),
        node: Some(s(&v, "/spec/nodeName").to_string()).filter(|n| !n.is_empty()),
        phase: s(&v, "/status/phase").to_string(),
        ready: s_.ready,
        terminating: s_.terminating,
        controller_kind: kind,
        controller_name: name,
        container: s(&v, "/spec/containers/0/name").to_string(),
        labels: (*s_.labels).clone(),
        cpu_millis: (cpu * 1000.0).round() as u64,
        memory_mib: (mem / (1024.0 * 1024.0)).round() as u64,
        gpus: s_.gpus,
        gpu_indices: Vec::new(),
        started: time(&v, "/status/startTime"),
    }
}

fn deployment_view(cluster: &str, s_: &Stored) -> DeploymentView {
    let v = s_.value();
    DeploymentView {
        cluster: cluster.to_string(),
        namespace: s(&v, "/metadata/namespace").to_string(),
        name: s(&v, "/metadata/name").to_string(),
        revision: s(
            &v,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .parse()
        .unwrap_or(0),
        replicas: v["spec"]["replicas"].as_u64().unwrap_or(1) as u32,
        ready_replicas: v["status"]["readyReplicas"].as_u64().unwrap_or(0) as u32,
        image: s(&v, "/spec/template/spec/containers/0/image").to_string(),
        template_fault: Some(
            s(
                &v,
                "/spec/template/metadata/annotations/sim.fleetdeck.dev~1fault",
            )
            .to_string(),
        )
        .filter(|f| !f.is_empty()),
    }
}

/// Refreshes `cache` from `map`: parses entries whose rv changed, drops the ones gone.
fn refresh<K: Clone + Eq + std::hash::Hash, V: Clone>(
    cache: &mut HashMap<K, (u64, V)>,
    items: impl Iterator<Item = (K, Stored)>,
    build: impl Fn(&Stored) -> V,
) -> Vec<V> {
    let mut out = Vec::new();
    let mut seen: HashMap<K, ()> = HashMap::new();
    for (k, st) in items {
        let fresh = match cache.get(&k) {
            Some((rv, v)) if *rv == st.rv => v.clone(),
            _ => {
                let v = build(&st);
                cache.insert(k.clone(), (st.rv, v.clone()));
                v
            }
        };
        seen.insert(k, ());
        out.push(fresh);
    }
    cache.retain(|k, _| seen.contains_key(k));
    out
}

/// Which parts of a cluster a view needs.
#[derive(Clone, Copy, PartialEq)]
pub enum ViewScope {
    Everything,
    /// Nodes, and only pods that hold GPUs (for DCGM).
    GpuPods,
    /// Only Deployments (for the endpoints).
    Deployments,
}

impl SimFleet {
    pub fn new(clusters: Vec<Arc<SimCluster>>) -> Self {
        let caches = clusters
            .iter()
            .map(|_| Mutex::new(ViewCache::default()))
            .collect();
        Self {
            clusters,
            faults: Mutex::new(FaultState::default()),
            injected: Mutex::new(Vec::new()),
            caches,
        }
    }

    pub fn faults_mut(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<SimCluster>> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn view(&self, index: usize, scope: ViewScope) -> Option<ClusterView> {
        let c = self.clusters.get(index)?;
        let mut cache = self
            .caches
            .get(index)?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Copy what is needed out of the lock (cheap: bytes are shared), parse outside it.
        let (cloud, nodes, pods, deps) = {
            let st = c.lock();
            let nodes: Vec<(String, Stored)> = if scope == ViewScope::Deployments {
                Vec::new()
            } else {
                st.store
                    .iter_ns(Kind::Node, None)
                    .map(|((_, n), s)| (n.clone(), s.clone()))
                    .collect()
            };
            let pods: Vec<(Key, Stored)> = match scope {
                ViewScope::Deployments => Vec::new(),
                ViewScope::GpuPods => st
                    .store
                    .iter_ns(Kind::Pod, None)
                    .filter(|(_, s)| s.gpus > 0)
                    .map(|(k, s)| (k.clone(), s.clone()))
                    .collect(),
                ViewScope::Everything => st
                    .store
                    .iter_ns(Kind::Pod, None)
                    .map(|(k, s)| (k.clone(), s.clone()))
                    .collect(),
            };
            let deps: Vec<(Key, Stored)> = st
                .store
                .iter_ns(Kind::Deployment, None)
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            (st.cloud, nodes, pods, deps)
        };
        let name = c.name.clone();
        let cache = &mut *cache;
        let nodes = if scope == ViewScope::Deployments {
            Vec::new()
        } else {
            refresh(&mut cache.nodes, nodes.into_iter(), |s| {
                node_view(&name, cloud, s)
            })
        };
        let mut pods = match scope {
            ViewScope::Deployments => Vec::new(),
            ViewScope::GpuPods => {
                // Keep the non-GPU pods cached for an Everything view: filter on output only.
                pods.into_iter()
                    .map(|(k, s)| match cache.pods.get(&k) {
                        Some((rv, v)) if *rv == s.rv => v.clone(),
                        _ => {
                            let v = pod_view(&name, &s);
                            cache.pods.insert(k, (s.rv, v.clone()));
                            v
                        }
                    })
                    .collect()
            }
            ViewScope::Everything => {
                refresh(&mut cache.pods, pods.into_iter(), |s| pod_view(&name, s))
            }
        };
        assign_gpu_indices(&mut pods);
        let deployments = refresh(&mut cache.deployments, deps.into_iter(), |s| {
            deployment_view(&name, s)
        });
        Some(ClusterView {
            name,
            nodes,
            pods,
            deployments,
        })
    }

    pub fn views(&self, scope: ViewScope) -> Vec<ClusterView> {
        (0..self.clusters.len())
            .filter_map(|i| self.view(i, scope))
            .collect()
    }
}

/// The device plugin hands out devices in order; the sim gives each node's running GPU pods
/// consecutive indices by pod name, so DCGM and the pods agree.
fn assign_gpu_indices(pods: &mut [PodView]) {
    let mut order: Vec<usize> = (0..pods.len())
        .filter(|&i| pods[i].gpus > 0 && pods[i].node.is_some() && pods[i].phase == "Running")
        .collect();
    order.sort_by(|&a, &b| (&pods[a].node, &pods[a].name).cmp(&(&pods[b].node, &pods[b].name)));
    let mut next: HashMap<String, u32> = HashMap::new();
    for i in order {
        let node = pods[i].node.clone().unwrap_or_default();
        let start = next.entry(node).or_insert(0);
        pods[i].gpu_indices = (*start..*start + pods[i].gpus).collect();
        *start += pods[i].gpus;
    }
}

impl FleetSource for SimFleet {
    fn clusters(&self) -> Vec<ClusterView> {
        self.views(ViewScope::Everything)
    }
    fn faults(&self) -> FaultState {
        self.faults_mut().clone()
    }
}

/// The fleet as the endpoint servers see it: Deployments only, cheap to refresh every second.
pub struct DeploymentsOnly(pub Arc<SimFleet>);

impl FleetSource for DeploymentsOnly {
    fn clusters(&self) -> Vec<ClusterView> {
        self.0.views(ViewScope::Deployments)
    }
    fn faults(&self) -> FaultState {
        self.0.faults_mut().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(quantity("500m"), 0.5);
        assert_eq!(quantity("4"), 4.0);
        assert_eq!(quantity("2Gi"), 2.0 * 1024.0 * 1024.0 * 1024.0);
        assert_eq!(quantity("1024Mi"), 1024.0 * 1024.0 * 1024.0);
    }

    #[test]
    fn capacity_type_reads_every_cloud_convention() {
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            capacity_type(&l("karpenter.sh/capacity-type", "spot")),
            CapacityType::Spot
        );
        assert_eq!(
            capacity_type(&l("eks.amazonaws.com/capacityType", "SPOT")),
            CapacityType::Spot
        );
        assert_eq!(
            capacity_type(&l("cloud.google.com/gke-spot", "true")),
            CapacityType::Spot
        );
        assert_eq!(
            capacity_type(&l("kubernetes.azure.com/scalesetpriority", "spot")),
            CapacityType::Spot
        );
        assert_eq!(
            capacity_type(&l("karpenter.sh/capacity-type", "reserved")),
            CapacityType::Reserved
        );
        assert_eq!(
            capacity_type(&l("eks.amazonaws.com/capacityType", "ON_DEMAND")),
            CapacityType::OnDemand
        );
    }
}
