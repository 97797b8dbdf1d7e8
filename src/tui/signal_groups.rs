//! Signals gathered into their incident groups (`store::incident_group`: the GPUs of one node,
//! the pods of one owner), so that the Signals pane and the NOC banner show one row per problem
//! as the store opens one incident per problem, and an incident's title with its live figures.
//! Pure functions of the signals they are given; may import model and store.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::model::Snapshot;
use crate::model::incident::Incident;
use crate::model::signal::{Severity, Signal};
use crate::store::{incident_group, pod_owner};

/// An incident's title as of now. The title is its first signal's summary, so a countdown in
/// it ("(119s left)") is frozen at the moment the incident opened: take the live signal's
/// figure when one still has the same summary otherwise, and drop the countdown when none does.
pub fn live_title(title: &str, live: &[&str]) -> String {
    let Some(frozen) = countdown(title) else {
        return title.to_string();
    };
    let base = title.replacen(frozen, "", 1);
    live.iter()
        .find(|l| countdown(l).is_some_and(|c| l.replacen(c, "", 1) == base))
        .map_or(base, |l| (*l).to_string())
}

/// [`live_title`] of `incident` with the live signals of its group in `snapshot`.
pub fn incident_title_now(incident: &Incident, snapshot: &Snapshot) -> String {
    if countdown(&incident.title).is_none() {
        return incident.title.clone();
    }
    let live: Vec<&str> = snapshot
        .incident_signals()
        .filter(|s| incident_group(s) == incident.group)
        .map(|s| s.summary.as_str())
        .collect();
    live_title(&incident.title, &live)
}

/// The ` (Ns left)` in a summary, if any.
fn countdown(summary: &str) -> Option<&str> {
    let start = summary.rfind(" (")?;
    let tail = &summary[start..];
    let digits = tail.strip_prefix(" (")?.strip_suffix("s left)")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(tail)
}

/// One incident group of the signals shown: what the store opens one incident for.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalGroup<'a> {
    /// `kind:cluster/place`, as `store::incident_group` makes it.
    pub key: String,
    /// Indexes into the signals the groups were made from, with the signal, in their order.
    pub members: Vec<(usize, &'a Signal)>,
}

/// Groups `signals` (indexed as in the snapshot) by incident group. Groups come in the order of
/// their first member; members keep the order they came in.
pub fn group_signals<'a>(
    signals: impl IntoIterator<Item = (usize, &'a Signal)>,
) -> Vec<SignalGroup<'a>> {
    let mut groups: Vec<SignalGroup<'a>> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (index, signal) in signals {
        let key = incident_group(signal);
        match position.get(&key) {
            Some(&at) => {
                if let Some(group) = groups.get_mut(at) {
                    group.members.push((index, signal));
                }
            }
            None => {
                position.insert(key.clone(), groups.len());
                groups.push(SignalGroup {
                    key,
                    members: vec![(index, signal)],
                });
            }
        }
    }
    groups
}

/// The incident group `signal` belongs to: `kind:cluster/place`.
pub fn group_key(signal: &Signal) -> String {
    incident_group(signal)
}

/// The keys of every group `signals` fall in.
pub fn group_keys(signals: &[Signal]) -> BTreeSet<String> {
    signals.iter().map(incident_group).collect()
}

/// Groups worst first (stable: groups of one severity keep their order), as a wall screen
/// lists them.
pub fn worst_first(groups: &mut [SignalGroup]) {
    groups.sort_by_key(|g| std::cmp::Reverse(g.severity()));
}

impl<'a> SignalGroup<'a> {
    /// The member that speaks for the group: the first of the most severe.
    pub fn worst(&self) -> Option<(usize, &'a Signal)> {
        let severity = self.severity()?;
        self.members
            .iter()
            .find(|(_, s)| s.severity == severity)
            .copied()
    }

    /// The most severe member's severity (`None` only for an empty group).
    pub fn severity(&self) -> Option<Severity> {
        self.members.iter().map(|(_, s)| s.severity).max()
    }

    /// When the group's oldest member started firing: how long the problem has lasted.
    pub fn oldest(&self) -> Option<DateTime<Utc>> {
        self.members.iter().map(|(_, s)| s.first_seen).min()
    }

    /// The members' kind when they share one; else the group's family (`gpu.fault` for a
    /// node's XID and ECC signals, `serving` for an endpoint with its Deployment's pods).
    pub fn kind(&self) -> &str {
        let mut kinds = self.members.iter().map(|(_, s)| s.kind.as_str());
        match kinds.next() {
            Some(first) if kinds.all(|k| k == first) => first,
            _ => self.key.split_once(':').map_or("", |(kind, _)| kind),
        }
    }

    /// `cluster/node/gpu-node-3`: the group key without its kind (fleet-wide groups have no
    /// cluster, so no leading `/`).
    pub fn place(&self) -> &str {
        self.key
            .split_once(':')
            .map_or(self.key.as_str(), |(_, place)| place)
            .trim_start_matches('/')
    }

    /// The place's own name (`gpu-node-3`, `tokenizer-worker`): what a wall screen has room
    /// for.
    pub fn name(&self) -> &str {
        let place = self.place();
        place.rsplit('/').next().unwrap_or(place)
    }

    /// The subject a row shows: the single member's own, else the group's place.
    pub fn subject(&self) -> String {
        match self.members.as_slice() {
            [(_, only)] => only.subject.describe(),
            _ => self.place().to_string(),
        }
    }

    /// `8 GPUs on gpu-node-3`, `5 pods of tokenizer-worker`, `3 signals`: what the members
    /// are, in words, for a group of more than one.
    pub fn members_text(&self) -> String {
        let n = self.members.len();
        let signals = || self.members.iter().map(|(_, s)| s);
        let nodes: BTreeSet<&str> = signals()
            .filter_map(|s| s.subject.node.as_deref())
            .collect();
        let all_gpus = signals().all(|s| s.subject.gpu.is_some());
        let pods: Vec<&str> = signals()
            .filter_map(|s| s.subject.object.as_deref()?.strip_prefix("pod/"))
            .collect();
        let gpus: BTreeSet<&str> = signals().filter_map(|s| s.subject.gpu.as_deref()).collect();
        if all_gpus && nodes.len() == 1 {
            let node = nodes.iter().next().copied().unwrap_or_default();
            // XID and ECC of one GPU are two signals of one GPU.
            return match gpus.len() {
                g if g == n => format!("{n} GPUs on {node}"),
                1 => format!("{n} signals on {node} {}", gpu_index(gpus.iter().next())),
                g => format!("{n} signals on {g} GPUs of {node}"),
            };
        }
        if pods.len() == n
            && let Some(first) = pods.first()
        {
            return format!("{n} pods of {}", pod_owner(first));
        }
        if nodes.len() == n {
            return format!("{n} nodes");
        }
        format!("{n} signals")
    }

    /// The row's summary: the worst member's, after what the members are when there are many.
    pub fn summary(&self) -> String {
        let worst = self
            .worst()
            .map(|(_, s)| s.summary.as_str())
            .unwrap_or_default();
        if self.members.len() > 1 {
            format!("{} · {worst}", self.members_text())
        } else {
            worst.to_string()
        }
    }
}

/// `gpu0` from a subject's `gpu0 (GPU-…)`.
fn gpu_index(gpu: Option<&&str>) -> String {
    gpu.and_then(|g| g.split_whitespace().next())
        .unwrap_or("its GPU")
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::model::signal::Subject;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, minute, 0)
            .single()
            .unwrap_or_default()
    }

    fn xid(node: &str, gpu: u32, severity: Severity, minute: u32) -> Signal {
        Signal {
            kind: "gpu.xid".into(),
            severity,
            subject: Subject {
                cluster: "prod".into(),
                node: Some(node.into()),
                gpu: Some(format!("gpu{gpu}")),
                ..Subject::default()
            },
            summary: format!("XID 79 on {node} gpu{gpu}"),
            evidence: BTreeMap::new(),
            action: None,
            first_seen: at(minute),
            dedup_key: format!("gpu.xid:prod/{node}/gpu{gpu}"),
        }
    }

    fn crash(pod: &str) -> Signal {
        Signal {
            kind: "pod.crash_loop".into(),
            severity: Severity::Warning,
            subject: Subject {
                cluster: "prod".into(),
                namespace: Some("ml".into()),
                object: Some(format!("pod/{pod}")),
                ..Subject::default()
            },
            summary: format!("{pod} crash-looping"),
            evidence: BTreeMap::new(),
            action: None,
            first_seen: at(0),
            dedup_key: format!("pod.crash_loop:prod/ml/{pod}"),
        }
    }

    #[test]
    fn the_gpus_of_one_node_are_one_group_spoken_for_by_the_worst_and_aged_by_the_oldest() {
        let signals = [
            xid("gpu-node-3", 0, Severity::Warning, 30),
            xid("gpu-node-3", 1, Severity::Critical, 20),
            xid("gpu-node-4", 0, Severity::Warning, 10),
            xid("gpu-node-3", 2, Severity::Critical, 5),
        ];
        let groups = group_signals(signals.iter().enumerate());
        assert_eq!(groups.len(), 2);
        let node3 = &groups[0];
        assert_eq!(node3.key, "gpu.fault:prod/node/gpu-node-3");
        assert_eq!(node3.members.len(), 3);
        assert_eq!((node3.kind(), node3.name()), ("gpu.xid", "gpu-node-3"));
        assert_eq!(node3.subject(), "prod/node/gpu-node-3");
        assert_eq!(node3.severity(), Some(Severity::Critical));
        assert_eq!(node3.worst().map(|(i, _)| i), Some(1));
        assert_eq!(node3.oldest(), Some(at(5)));
        assert_eq!(
            node3.summary(),
            "3 GPUs on gpu-node-3 · XID 79 on gpu-node-3 gpu1"
        );
        let node4 = &groups[1];
        assert_eq!(node4.subject(), "prod/gpu-node-4/gpu0");
        assert_eq!(node4.summary(), "XID 79 on gpu-node-4 gpu0");

        let mut sorted = groups.clone();
        sorted.reverse();
        worst_first(&mut sorted);
        assert_eq!(sorted[0].key, node3.key);
    }

    #[test]
    fn the_pods_of_one_owner_are_named_by_their_owner() {
        let signals = [
            crash("tokenizer-worker-5d4f8b7c9-abcde"),
            crash("tokenizer-worker-5d4f8b7c9-fghij"),
        ];
        let groups = group_signals(signals.iter().enumerate());
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members_text(), "2 pods of tokenizer-worker");
        assert_eq!(groups[0].name(), "tokenizer-worker");
    }
}
