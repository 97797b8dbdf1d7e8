//! The wall's fleet map: every node of every cluster as one cell, grouped by cluster and node
//! pool, with a state told by glyph and colour; when the nodes outnumber the cells, one cell
//! holds several nodes and shows the worst. May import model and the tui theme.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet as HashSet;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use crate::model::gpu_history::pool_name;
use crate::model::{NodeModel, NodeReadiness, Snapshot};
use crate::tui::theme::{Role, Theme};

/// A node's state on the map, mildest first: a cell holding several shows the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeState {
    Ready,
    Cordoned,
    Draining,
    SpotNotice,
    NotReady,
    GpuFault,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Ready,
        NodeState::Cordoned,
        NodeState::Draining,
        NodeState::SpotNotice,
        NodeState::NotReady,
        NodeState::GpuFault,
    ];

    /// The glyph tells the state without colour (colour-blind themes, monochrome terminals).
    pub fn glyph(self) -> char {
        match self {
            NodeState::Ready => '●',
            NodeState::Cordoned => '◐',
            NodeState::Draining => '↻',
            NodeState::SpotNotice => '◆',
            NodeState::NotReady => '✖',
            NodeState::GpuFault => '▲',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Cordoned => "cordoned",
            NodeState::Draining => "draining",
            NodeState::SpotNotice => "spot notice",
            NodeState::NotReady => "NotReady",
            NodeState::GpuFault => "GPU fault",
        }
    }

    pub fn role(self) -> Role {
        match self {
            NodeState::Ready => Role::Ok,
            NodeState::Cordoned => Role::Muted,
            NodeState::Draining => Role::Info,
            NodeState::SpotNotice => Role::Warning,
            NodeState::NotReady | NodeState::GpuFault => Role::Critical,
        }
    }
}

/// Taints that announce a node's interruption (the spot notices `signals` reads too; the tui
/// may not import `signals`, and the map must not wait for a detector to see a taint).
const SPOT_NOTICE_TAINTS: [&str; 3] = [
    "aws-node-termination-handler/spot-itn",
    "aws-node-termination-handler/rebalance-recommendation",
    "cloud.google.com/impending-node-termination",
];
/// Taints that mean the node is being emptied: its pods are evicted or it is about to go.
const DRAINING_TAINTS: [&str; 3] = [
    "ToBeDeletedByClusterAutoscaler",
    "karpenter.sh/disrupted",
    "karpenter.sh/disruption",
];

fn node_state(node: &NodeModel, faulty: bool, noticed: bool) -> NodeState {
    let tainted = |keys: &[&str]| node.taints.iter().any(|t| keys.contains(&t.key.as_str()));
    if faulty {
        NodeState::GpuFault
    } else if node.readiness != NodeReadiness::Ready {
        NodeState::NotReady
    } else if noticed || tainted(&SPOT_NOTICE_TAINTS) {
        NodeState::SpotNotice
    } else if tainted(&DRAINING_TAINTS)
        || (node.cordoned && node.taints.iter().any(|t| t.effect == "NoExecute"))
    {
        NodeState::Draining
    } else if node.cordoned {
        NodeState::Cordoned
    } else {
        NodeState::Ready
    }
}

/// The nodes of one cluster's node pool, in the order the cluster lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroup {
    pub cluster: String,
    pub pool: String,
    pub states: Vec<NodeState>,
}

/// Per-snapshot aggregate: the groups and how many nodes are in each state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetCells {
    pub groups: Vec<NodeGroup>,
    pub counts: BTreeMap<NodeState, usize>,
}

impl FleetCells {
    pub fn of(snapshot: &Snapshot) -> Self {
        // A GPU with an XID, a double-bit ECC error or a failed row remap faults its node, as
        // does a GPU signal on it; a spot notice may come as a signal before a taint is seen.
        let mut faulty: HashSet<(&str, &str)> = snapshot
            .gpus
            .iter()
            .filter(|g| {
                g.xid_last.is_some_and(|x| x != 0)
                    || g.ecc_dbe_volatile.unwrap_or(0) > 0
                    || g.remap_failure == Some(true)
            })
            .map(|g| (g.cluster.as_str(), g.node.as_str()))
            .collect();
        let mut noticed: HashSet<(&str, &str)> = HashSet::default();
        for s in snapshot.incident_signals() {
            let Some(node) = s.subject.node.as_deref() else {
                continue;
            };
            let at = (s.subject.cluster.as_str(), node);
            if s.kind.starts_with("gpu.") && s.severity == crate::model::signal::Severity::Critical
            {
                faulty.insert(at);
            } else if s.kind == "node.interruption_notice" {
                noticed.insert(at);
            }
        }
        let mut cells = FleetCells::default();
        for c in &snapshot.clusters {
            let mut pools: BTreeMap<&str, Vec<NodeState>> = BTreeMap::new();
            for n in &c.nodes {
                let at = (c.name.as_str(), n.name.as_str());
                let state = node_state(n, faulty.contains(&at), noticed.contains(&at));
                *cells.counts.entry(state).or_default() += 1;
                pools.entry(pool_name(n)).or_default().push(state);
            }
            cells
                .groups
                .extend(pools.into_iter().map(|(pool, states)| NodeGroup {
                    cluster: c.name.clone(),
                    pool: pool.to_string(),
                    states,
                }));
        }
        cells
    }

    pub fn nodes(&self) -> usize {
        self.groups.iter().map(|g| g.states.len()).sum()
    }

    /// The fewest nodes per cell that fit every group (a header row each, then rows of
    /// `width` cells) into `height` rows; `None` when not even the headers fit.
    pub fn nodes_per_cell(&self, width: u16, height: u16) -> Option<usize> {
        let (width, height) = (usize::from(width.max(1)), usize::from(height));
        let rows_at = |per: usize| -> usize {
            self.groups
                .iter()
                .map(|g| 1 + g.states.len().div_ceil(per).div_ceil(width))
                .sum()
        };
        if rows_at(usize::MAX) > height {
            return None;
        }
        // Rows only shrink as cells hold more: the smallest that fits, by bisection.
        let (mut lo, mut hi) = (1, self.nodes().max(1));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if rows_at(mid) <= height {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(lo)
    }

    /// Draws the groups into `area`; returns the nodes per cell it drew with.
    pub fn draw(&self, buf: &mut Buffer, area: Rect, theme: &Theme) -> Option<usize> {
        let per = self.nodes_per_cell(area.width, area.height)?;
        let width = usize::from(area.width.max(1));
        let mut y = area.y;
        for g in &self.groups {
            let label = format!("{}/{} · {}", g.cluster, g.pool, g.states.len());
            buf.set_stringn(
                area.x,
                y,
                &label,
                usize::from(area.width),
                theme.style(Role::Header),
            );
            y += 1;
            for (i, chunk) in g.states.chunks(per).enumerate() {
                let worst = chunk.iter().copied().max().unwrap_or(NodeState::Ready);
                let x = area.x + (i % width) as u16;
                let row = y + (i / width) as u16;
                buf.set_string(x, row, worst.glyph().to_string(), theme.style(worst.role()));
            }
            y += g.states.len().div_ceil(per).div_ceil(width) as u16;
        }
        Some(per)
    }
}

/// The legend: every state's glyph, name and count, in the state's colour.
pub fn legend_spans(cells: &FleetCells, theme: &Theme) -> Vec<ratatui::text::Span<'static>> {
    NodeState::ALL
        .iter()
        .map(|s| {
            let n = cells.counts.get(s).copied().unwrap_or(0);
            ratatui::text::Span::styled(
                format!("{} {} {n}  ", s.glyph(), s.name()),
                if n > 0 {
                    theme.style(s.role())
                } else {
                    theme.style(Role::Muted)
                },
            )
        })
        .collect()
}

/// The style a cell is drawn in; exposed for tests that read colours back.
pub fn state_style(state: NodeState, theme: &Theme) -> Style {
    theme.style(state.role())
}
