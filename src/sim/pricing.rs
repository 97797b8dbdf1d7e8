//! Hourly prices of the instance types the simulated fleet runs on, and their split into GPU,
//! CPU-core and GiB-of-RAM rates for cost allocation. Imports only `sim::view`.
//!
//! Figures are public on-demand list prices (Linux, USD per hour, a US region), as the clouds'
//! pricing pages showed them in 2024–2025, rounded. They are approximate on purpose: the sim needs
//! prices of the right order and the right ratios (H100 ≫ A100 ≫ L4; spot < reserved < on-demand),
//! not an invoice.

use super::view::CapacityType;

/// Price of one node for one hour, and the rates it is split into.
///
/// `gpu_hourly * gpus + cpu_core_hourly * cores + ram_gib_hourly * gib == hourly` for the counts the
/// price was asked for (up to floating-point rounding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodePrice {
    pub hourly: f64,
    /// Per GPU-hour.
    pub gpu_hourly: f64,
    /// Per CPU-core-hour.
    pub cpu_core_hourly: f64,
    /// Per GiB-of-RAM-hour.
    pub ram_gib_hourly: f64,
    pub source: PriceSource,
}

/// Where a price came from, so a cost line can say it was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The instance type is in the list below.
    ListPrice,
    /// Unknown instance type: derived from its GPU, core and memory counts.
    Estimated,
}

/// One entry of the list.
#[derive(Debug, Clone, Copy)]
pub struct ListPrice {
    pub cloud: &'static str,
    pub instance_type: &'static str,
    pub on_demand_hourly: f64,
}

/// On-demand list prices, USD/hour.
const LIST_PRICES: &[ListPrice] = &[
    // AWS, us-east-1, EC2 On-Demand pricing page (aws.amazon.com/ec2/pricing/on-demand/).
    // p5.48xlarge: 8×H100 80GB, 192 vCPU, 2 TiB. $98.32 was the list price through 2024; AWS cut
    // P5 on-demand prices by up to 45 % in June 2025, so this is the upper of the two figures.
    lp("aws", "p5.48xlarge", 98.32),
    // p4d.24xlarge: 8×A100 40GB, 96 vCPU, 1152 GiB.
    lp("aws", "p4d.24xlarge", 32.77),
    // g5.12xlarge: 4×A10G 24GB, 48 vCPU, 192 GiB.
    lp("aws", "g5.12xlarge", 5.672),
    // g6.xlarge: 1×L4 24GB, 4 vCPU, 16 GiB.
    lp("aws", "g6.xlarge", 0.8048),
    // m6i.4xlarge / 8xlarge: 16 / 32 vCPU, 64 / 128 GiB.
    lp("aws", "m6i.4xlarge", 0.768),
    lp("aws", "m6i.8xlarge", 1.536),
    // GCP, us-central1, Compute Engine VM pricing page (cloud.google.com/compute/vm-instance-pricing),
    // GPU included for the accelerator-optimized families.
    // a3-highgpu-8g: 8×H100 80GB, 208 vCPU, 1872 GB.
    lp("gcp", "a3-highgpu-8g", 88.25),
    // a2-highgpu-1g: 1×A100 40GB, 12 vCPU, 85 GB.
    lp("gcp", "a2-highgpu-1g", 3.67),
    // g2-standard-24: 2×L4, 24 vCPU, 96 GB.
    lp("gcp", "g2-standard-24", 2.00),
    // n2-standard-16: 16 vCPU, 64 GB.
    lp("gcp", "n2-standard-16", 0.777),
    // Azure, East US, Linux pay-as-you-go (azure.microsoft.com/pricing/details/virtual-machines/linux/).
    // ND96isr H100 v5: 8×H100 80GB, 96 vCPU, 1900 GiB.
    lp("azure", "Standard_ND96isr_H100_v5", 98.32),
    // NC24ads A100 v4: 1×A100 80GB, 24 vCPU, 220 GiB.
    lp("azure", "Standard_NC24ads_A100_v4", 3.673),
    // NC4as T4 v3: 1×T4 16GB, 4 vCPU, 28 GiB.
    lp("azure", "Standard_NC4as_T4_v3", 0.526),
    // D16s v5: 16 vCPU, 64 GiB.
    lp("azure", "Standard_D16s_v5", 0.768),
];

const fn lp(cloud: &'static str, instance_type: &'static str, on_demand_hourly: f64) -> ListPrice {
    ListPrice {
        cloud,
        instance_type,
        on_demand_hourly,
    }
}

/// Spot price as a fraction of on-demand. Spot prices float; these are typical long-run averages
/// for GPU and general-purpose types: AWS Spot "up to 90 % off", usually 60–70 % for GPU types
/// (Spot Instance Advisor); GCP Spot VMs list a 60–91 % discount, ~70 % for A2/A3/G2; Azure Spot
/// up to 90 %, commonly 60–70 % for NC/ND series.
fn spot_factor(cloud: &str) -> f64 {
    match cloud {
        "aws" => 0.35,
        "gcp" => 0.30,
        "azure" => 0.35,
        _ => 0.35,
    }
}

/// Reserved / committed-use price as a fraction of on-demand: 1-year, no upfront. AWS Savings
/// Plans / RIs ~38 % off; GCP 1-year resource CUDs 37 % off; Azure 1-year reservations ~40 % off.
fn reserved_factor(cloud: &str) -> f64 {
    match cloud {
        "aws" => 0.62,
        "gcp" => 0.63,
        "azure" => 0.60,
        _ => 0.62,
    }
}

/// Reference on-demand CPU-core and GiB rates, the ratio OpenCost's default (custom) pricing uses
/// (0.031611 $/vCPU-hour, 0.004237 $/GiB-hour). 16 cores + 64 GiB at these rates is $0.777/h,
/// which is what m6i.4xlarge / n2-standard-16 / D16s_v5 cost, so the ratio fits all three clouds.
const CPU_CORE_HOURLY: f64 = 0.031611;
const RAM_GIB_HOURLY: f64 = 0.004237;

/// Fallback on-demand price of one GPU-hour for unknown types: between an L4 (~$0.7) and an
/// H100 (~$12) as the lists above price them per GPU; a mid-range data-centre GPU.
const FALLBACK_GPU_HOURLY: f64 = 2.50;

/// On a GPU node CPU and RAM take at most this share of the price: GPU nodes are bought for their
/// GPUs, and idle-GPU cost is what the cockpit must show.
const MAX_NON_GPU_SHARE: f64 = 0.25;

/// The list entry for an instance type; cloud and type match case-insensitively because Azure
/// names appear both as `Standard_D16s_v5` and lower-cased in some node labels.
pub fn list_price(cloud: &str, instance_type: &str) -> Option<&'static ListPrice> {
    LIST_PRICES.iter().find(|p| {
        p.cloud.eq_ignore_ascii_case(cloud) && p.instance_type.eq_ignore_ascii_case(instance_type)
    })
}

/// Every listed instance type.
pub fn list_prices() -> &'static [ListPrice] {
    LIST_PRICES
}

/// Price of one node-hour and its split.
///
/// Unknown instance types are priced as `gpu_count × $2.50 + cores × $0.031611 + GiB × $0.004237`
/// on demand (then the capacity factor), and marked [`PriceSource::Estimated`]. A node with no
/// GPUs, cores or memory to split over gets rates of zero; its `hourly` still holds.
pub fn node_price(
    cloud: &str,
    instance_type: &str,
    capacity: CapacityType,
    gpu_count: u32,
    cpu_cores: u32,
    memory_gib: u32,
) -> NodePrice {
    let cloud_key = cloud.to_ascii_lowercase();
    let factor = match capacity {
        CapacityType::OnDemand => 1.0,
        CapacityType::Spot => spot_factor(&cloud_key),
        CapacityType::Reserved => reserved_factor(&cloud_key),
    };
    let gpus = f64::from(gpu_count);
    let cores = f64::from(cpu_cores);
    let gib = f64::from(memory_gib);
    let (on_demand, source) = match list_price(&cloud_key, instance_type) {
        Some(p) => (p.on_demand_hourly, PriceSource::ListPrice),
        None => (
            gpus * FALLBACK_GPU_HOURLY + cores * CPU_CORE_HOURLY + gib * RAM_GIB_HOURLY,
            PriceSource::Estimated,
        ),
    };
    let hourly = on_demand * factor;
    let reference = cores * CPU_CORE_HOURLY + gib * RAM_GIB_HOURLY;

    let (gpu_hourly, scale) = if gpu_count > 0 {
        let non_gpu = reference.min(hourly * MAX_NON_GPU_SHARE);
        let scale = if reference > 0.0 {
            non_gpu / reference
        } else {
            0.0
        };
        ((hourly - non_gpu) / gpus, scale)
    } else if reference > 0.0 {
        (0.0, hourly / reference)
    } else {
        (0.0, 0.0)
    };
    NodePrice {
        hourly,
        gpu_hourly,
        cpu_core_hourly: CPU_CORE_HOURLY * scale,
        ram_gib_hourly: RAM_GIB_HOURLY * scale,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_sum(p: &NodePrice, gpus: u32, cores: u32, gib: u32) -> f64 {
        p.gpu_hourly * f64::from(gpus)
            + p.cpu_core_hourly * f64::from(cores)
            + p.ram_gib_hourly * f64::from(gib)
    }

    #[test]
    fn every_listed_type_is_priced_from_the_list() {
        for entry in list_prices() {
            let p = node_price(
                entry.cloud,
                entry.instance_type,
                CapacityType::OnDemand,
                0,
                16,
                64,
            );
            assert_eq!(p.source, PriceSource::ListPrice, "{}", entry.instance_type);
            assert!((p.hourly - entry.on_demand_hourly).abs() < 1e-9);
        }
    }

    #[test]
    fn splits_add_up_to_the_hourly_price() {
        let cases = [
            ("aws", "p5.48xlarge", 8, 192, 2048),
            ("aws", "g6.xlarge", 1, 4, 16),
            ("aws", "m6i.8xlarge", 0, 32, 128),
            ("gcp", "g2-standard-24", 2, 24, 96),
            ("azure", "Standard_NC4as_T4_v3", 1, 4, 28),
            ("aws", "x99.unknown", 4, 64, 512),
            ("aws", "x99.unknown", 0, 8, 32),
        ];
        for (cloud, it, g, c, m) in cases {
            for cap in [
                CapacityType::OnDemand,
                CapacityType::Spot,
                CapacityType::Reserved,
            ] {
                let p = node_price(cloud, it, cap, g, c, m);
                assert!(
                    (split_sum(&p, g, c, m) - p.hourly).abs() < 1e-9,
                    "{it} {cap:?}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn gpu_share_dominates_a_gpu_node_price() {
        for (cloud, it, g, c, m) in [
            ("aws", "p5.48xlarge", 8, 192, 2048),
            ("aws", "g6.xlarge", 1, 4, 16),
            ("gcp", "a2-highgpu-1g", 1, 12, 85),
            ("azure", "Standard_NC4as_T4_v3", 1, 4, 28),
        ] {
            let p = node_price(cloud, it, CapacityType::OnDemand, g, c, m);
            assert!(
                p.gpu_hourly * f64::from(g) >= 0.75 * p.hourly - 1e-9,
                "{it}: {p:?}"
            );
        }
    }

    #[test]
    fn spot_is_cheaper_than_reserved_which_is_cheaper_than_on_demand() {
        for entry in list_prices() {
            let price = |cap| node_price(entry.cloud, entry.instance_type, cap, 1, 8, 32).hourly;
            let (od, rs, sp) = (
                price(CapacityType::OnDemand),
                price(CapacityType::Reserved),
                price(CapacityType::Spot),
            );
            assert!(
                sp < rs && rs < od,
                "{}: {sp} {rs} {od}",
                entry.instance_type
            );
        }
    }

    #[test]
    fn unknown_types_are_estimated_from_their_resources() {
        let small = node_price("aws", "zz.nothing", CapacityType::OnDemand, 0, 4, 16);
        let big = node_price("aws", "zz.nothing", CapacityType::OnDemand, 0, 64, 256);
        let gpu = node_price("aws", "zz.nothing", CapacityType::OnDemand, 8, 64, 256);
        assert_eq!(small.source, PriceSource::Estimated);
        assert!(small.hourly > 0.0 && small.hourly < big.hourly && big.hourly < gpu.hourly);
        assert!((gpu.hourly - big.hourly - 8.0 * FALLBACK_GPU_HOURLY).abs() < 1e-9);
    }

    #[test]
    fn degenerate_nodes_get_zero_rates_without_panicking() {
        let p = node_price("", "", CapacityType::Spot, 0, 0, 0);
        assert_eq!(p.hourly, 0.0);
        assert_eq!(
            (p.gpu_hourly, p.cpu_core_hourly, p.ram_gib_hourly),
            (0.0, 0.0, 0.0)
        );
        let gpu_only = node_price("gcp", "a2-highgpu-1g", CapacityType::OnDemand, 1, 0, 0);
        assert!((gpu_only.gpu_hourly - gpu_only.hourly).abs() < 1e-9);
    }

    #[test]
    fn cloud_and_type_match_regardless_of_case() {
        let p = node_price(
            "Azure",
            "standard_d16s_v5",
            CapacityType::OnDemand,
            0,
            16,
            64,
        );
        assert_eq!(p.source, PriceSource::ListPrice);
    }
}
