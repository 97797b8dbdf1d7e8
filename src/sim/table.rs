//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
//! `Accept: application/json;as=Table`, with the columns the real API server prints per kind.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::resources::Kind;

/// Kubernetes' own short duration format (`HumanDuration`): `45s`, `3m20s`, `5h`, `20d`, `2y30d`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn age(v: &Value, ptr: &str, now: DateTime<Utc>) -> String {
    match v
        .pointer(ptr)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: &str) -> Value {
    json!(if x.is_empty() { "<none>" } else { x })
}

/// (name, type, priority) per column; format `name` for the first.
fn columns(kind: Kind) -> Vec<(&'static str, &'static str, u8)> {
    match kind {
        Kind::Pod => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        Kind::Node => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        Kind::Event => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        Kind::Namespace => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::Deployment => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::ReplicaSet => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::StatefulSet => vec![
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        Kind::DaemonSet => vec![
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::Job => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        Kind::PodDisruptionBudget => vec![
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ],
        Kind::Lease => vec![
            ("Name", "string", 0),
            ("Holder", "string", 0),
            ("Age", "string", 0),
        ],
        Kind::InferenceService => vec![
            ("Name", "string", 0),
            ("URL", "string", 0),
            ("Ready", "string", 0),
            ("Prev", "integer", 0),
            ("Latest", "integer", 0),
            ("PrevRolledoutRevision", "string", 0),
            ("LatestReadyRevision", "string", 0),
            ("Age", "date", 0),
        ],
        Kind::PyTorchJob => vec![
            ("Name", "string", 0),
            ("State", "string", 0),
            ("Age", "date", 0),
        ],
        // The CRD's additionalPrinterColumns.
        Kind::SparkApplication => vec![
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Attempts", "string", 0),
            ("Start", "string", 0),
            ("Finish", "string", 0),
            ("Age", "date", 0),
        ],
    }
}

pub fn column_definitions(kind: Kind) -> Value {
    let cols: Vec<Value> = columns(kind)
        .into_iter()
        .enumerate()
        .map(|(i, (name, typ, prio))| {
            json!({
                "name": name, "type": typ,
                "format": if i == 0 && name == "Name" { "name" } else { "" },
                "description": format!("{name} of the object, as kubectl prints it."),
                "priority": prio,
            })
        })
        .collect();
    json!(cols)
}

fn pod_cells(p: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let mut restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut reason = s(p, "/status/phase").to_string();
    if !s(p, "/status/reason").is_empty() {
        reason = s(p, "/status/reason").to_string();
    }
    for c in &statuses {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && let Ok(t) = DateTime::parse_from_rfc3339(t)
        {
            let t = t.with_timezone(&Utc);
            if last_restart.is_none_or(|l| t > l) {
                last_restart = Some(t);
            }
        }
        let waiting = s(c, "/state/waiting/reason");
        let terminated = s(c, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        }
    }
    if p["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration((now - t).num_seconds())
        ),
        _ => restarts.to_string(),
    };
    vec![
        json!(s(p, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(p, "/metadata/creationTimestamp", now)),
        or_none(s(p, "/status/podIP")),
        or_none(s(p, "/spec/nodeName")),
        or_none(s(p, "/status/nominatedNodeName")),
        json!("<none>"),
    ]
}

fn node_cells(v: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let conds = v["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = match conds
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| s(c, "/status"))
    {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if v["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = v["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| {
        v["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .map(|x| s(x, "/address").to_string())
            .unwrap_or_default()
    };
    vec![
        json!(s(v, "/metadata/name")),
        json!(status),
        or_none(&roles.join(",")),
        json!(age(v, "/metadata/creationTimestamp", now)),
        json!(s(v, "/status/nodeInfo/kubeletVersion")),
        or_none(&addr("InternalIP")),
        or_none(&addr("ExternalIP")),
        json!(s(v, "/status/nodeInfo/osImage")),
        json!(s(v, "/status/nodeInfo/kernelVersion")),
        json!(s(v, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn containers_images(v: &Value) -> (String, String) {
    let cs = v
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// A label map (`matchLabels`, `nodeSelector`) as `key=value` pairs, in the map's order.
fn label_pairs(map: Option<&Value>) -> Vec<String> {
    map.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

fn selector_string(v: &Value) -> String {
    let mut parts = label_pairs(v.pointer("/spec/selector/matchLabels"));
    parts.sort();
    parts.join(",")
}

/// A workload's row as kubectl's wide output has it: the name, the kind's own columns, the
/// age, the containers and images, and (but for StatefulSets) the selector.
fn workload_row(
    v: &Value,
    name: Value,
    own: Vec<Value>,
    created: String,
    with_selector: bool,
) -> Vec<Value> {
    let (containers, images) = containers_images(v);
    let mut row = vec![name];
    row.extend(own);
    row.extend([json!(created), json!(containers), json!(images)]);
    if with_selector {
        row.push(json!(selector_string(v)));
    }
    row
}

fn intstr(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

pub fn cells(kind: Kind, v: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(v, "/metadata/name"));
    let created = age(v, "/metadata/creationTimestamp", now);
    match kind {
        Kind::Pod => pod_cells(v, now),
        Kind::Node => node_cells(v, now),
        Kind::Event => {
            let last = if v["lastTimestamp"].is_string() {
                age(v, "/lastTimestamp", now)
            } else {
                age(v, "/eventTime", now)
            };
            let obj = format!(
                "{}/{}",
                s(v, "/involvedObject/kind").to_lowercase(),
                s(v, "/involvedObject/name")
            );
            vec![
                json!(last),
                json!(s(v, "/type")),
                json!(s(v, "/reason")),
                json!(obj),
                json!(s(v, "/involvedObject/fieldPath")),
                json!(s(v, "/source/component")),
                json!(s(v, "/message")),
                json!(age(v, "/firstTimestamp", now)),
                json!(n(v, "/count").to_string()),
                name,
            ]
        }
        Kind::Namespace => vec![
            name,
            json!(match s(v, "/status/phase") {
                "" => "Active",
                p => p,
            }),
            json!(created),
        ],
        Kind::Deployment => {
            let ready = format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                n(v, "/spec/replicas")
            );
            let own = vec![
                json!(ready),
                json!(n(v, "/status/updatedReplicas")),
                json!(n(v, "/status/availableReplicas")),
            ];
            workload_row(v, name, own, created, true)
        }
        Kind::ReplicaSet => {
            let own = vec![
                json!(n(v, "/spec/replicas")),
                json!(n(v, "/status/replicas")),
                json!(n(v, "/status/readyReplicas")),
            ];
            workload_row(v, name, own, created, true)
        }
        Kind::StatefulSet => {
            let ready = format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                n(v, "/spec/replicas")
            );
            workload_row(v, name, vec![json!(ready)], created, false)
        }
        Kind::DaemonSet => {
            let node_selector = label_pairs(v.pointer("/spec/template/spec/nodeSelector"));
            let own = vec![
                json!(n(v, "/status/desiredNumberScheduled")),
                json!(n(v, "/status/currentNumberScheduled")),
                json!(n(v, "/status/numberReady")),
                json!(n(v, "/status/updatedNumberScheduled")),
                json!(n(v, "/status/numberAvailable")),
                or_none(&node_selector.join(",")),
            ];
            workload_row(v, name, own, created, true)
        }
        Kind::Job => {
            let done = n(v, "/status/succeeded");
            let want = v
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let status = if v["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            }) {
                "Complete"
            } else if v["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Failed" && c["status"] == "True")
            }) {
                "Failed"
            } else {
                "Running"
            };
            let own = vec![
                json!(status),
                json!(format!("{done}/{want}")),
                json!(age(v, "/status/startTime", now)),
            ];
            workload_row(v, name, own, created, true)
        }
        Kind::PodDisruptionBudget => vec![
            name,
            json!(intstr(&v["spec"]["minAvailable"])),
            json!(intstr(&v["spec"]["maxUnavailable"])),
            json!(n(v, "/status/disruptionsAllowed")),
            json!(created),
        ],
        Kind::Lease => vec![name, or_none(s(v, "/spec/holderIdentity")), json!(created)],
        Kind::InferenceService => {
            let ready = v["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| s(c, "/status").to_string())
                .unwrap_or_default();
            let traffic = v
                .pointer("/status/components/predictor/traffic")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let latest = s(v, "/status/components/predictor/latestReadyRevision");
            let pct = |latest_rev: bool| {
                traffic
                    .iter()
                    .find(|t| (s(t, "/revisionName") == latest) == latest_rev)
                    .and_then(|t| t["percent"].as_i64())
                    .map(|p| json!(p))
                    .unwrap_or(Value::Null)
            };
            vec![
                name,
                json!(s(v, "/status/url")),
                json!(ready),
                pct(false),
                pct(true),
                json!(s(
                    v,
                    "/status/components/predictor/previousRolledoutRevision"
                )),
                json!(latest),
                json!(s(v, "/metadata/creationTimestamp")),
            ]
        }
        Kind::PyTorchJob => {
            let state = v["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.last())
                .map(|c| s(c, "/type").to_string())
                .unwrap_or_default();
            vec![
                name,
                json!(state),
                json!(s(v, "/metadata/creationTimestamp")),
            ]
        }
        Kind::SparkApplication => {
            let attempts = v
                .pointer("/status/executionAttempts")
                .and_then(Value::as_i64)
                .map_or(String::new(), |a| a.to_string());
            vec![
                name,
                json!(s(v, "/status/applicationState/state")),
                json!(attempts),
                json!(s(v, "/status/lastSubmissionAttemptTime")),
                json!(s(v, "/status/terminationTime")),
                // The API server prints a CRD's `date` column as an age.
                json!(age(v, "/metadata/creationTimestamp", now)),
            ]
        }
    }
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

pub fn row(kind: Kind, v: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let mut r = Map::new();
    r.insert("cells".into(), json!(cells(kind, v, now)));
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => {
            r.insert("object".into(), v.clone());
        }
        IncludeObject::Metadata => {
            let mut meta = v["metadata"].clone();
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            r.insert(
                "object".into(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}),
            );
        }
    }
    Value::Object(r)
}

pub fn table(
    kind: Kind,
    rows: Vec<Value>,
    rv: u64,
    cont: Option<String>,
    with_columns: bool,
) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": if with_columns { column_definitions(kind) } else { json!([]) },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_kubectl() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (20 * 86400, "20d"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn node_status_shows_scheduling_disabled() {
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/gpu": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let c = cells(Kind::Node, &node, Utc::now());
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "gpu");
    }

    #[test]
    fn pod_row_reports_crash_loop_and_restarts() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells(Kind::Pod, &pod, Utc::now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "4");
        assert_eq!(
            column_definitions(Kind::Pod).as_array().unwrap().len(),
            c.len()
        );
    }
}
