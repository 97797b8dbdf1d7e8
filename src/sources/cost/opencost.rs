//! The OpenCost `/allocation` API: its URL, its envelope and errors (status, code and message),
//! and each allocation read into a [`CostLine`]. Imports model.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{CostError, day_start};
use crate::model::cost::{CostLine, CostSourceKind, NodeCostInfo, ResourceUsage, SkippedRow};

/// One `/allocation` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub window: String,
    /// Properties, e.g. `["namespace", "label:team"]`.
    pub aggregate: Vec<String>,
    pub accumulate: bool,
    pub step: Option<String>,
    pub include_idle: bool,
}

/// One allocation set: allocation name → allocation JSON.
pub type AllocationSet = BTreeMap<String, Value>;

/// The aggregation the report asks for: every line then carries its cluster, node, namespace
/// and team, so one answer gives every breakdown without counting a cost twice.
pub fn opencost_aggregate(team_label: &str) -> Vec<String> {
    vec![
        "cluster".to_string(),
        "node".to_string(),
        "namespace".to_string(),
        format!("label:{team_label}"),
    ]
}

#[derive(Debug, Clone)]
pub struct OpenCostClient {
    http: reqwest::Client,
    pub(super) base: url::Url,
}

/// OpenCost computes long windows from Prometheus on request; a minute is not unusual.
const OPENCOST_TIMEOUT: StdDuration = StdDuration::from_secs(120);

impl OpenCostClient {
    pub fn new(base: &str) -> Result<Self, CostError> {
        Self::with_roots(base, &crate::sources::http::TlsRoots::default())
    }

    /// As [`OpenCostClient::new`], trusting the private CAs in `roots` too.
    pub fn with_roots(
        base: &str,
        roots: &crate::sources::http::TlsRoots,
    ) -> Result<Self, CostError> {
        let bad = |reason: String| CostError::OpenCostUrl {
            url: base.to_string(),
            reason,
        };
        let mut url = url::Url::parse(base.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("use an http:// or https:// URL".to_string()));
        }
        // A base with a path (`…/proxy/`) keeps it: `allocation` is joined below it.
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let http = roots
            .client_builder()
            .timeout(OPENCOST_TIMEOUT)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(OpenCostClient { http, base: url })
    }

    pub(super) fn skipped(&self, name: &str, reason: String) -> SkippedRow {
        SkippedRow {
            location: format!("opencost {} allocation {name:?}", self.base),
            reason,
        }
    }

    pub fn allocation_url(&self, req: &AllocationRequest) -> url::Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}allocation", self.base.path()));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("window", &req.window);
            if !req.aggregate.is_empty() {
                q.append_pair("aggregate", &req.aggregate.join(","));
            }
            q.append_pair("accumulate", if req.accumulate { "true" } else { "false" });
            if let Some(step) = &req.step {
                q.append_pair("step", step);
            }
            if req.include_idle {
                q.append_pair("includeIdle", "true");
            }
        }
        url
    }

    /// `GET {base}/allocation?…`: the allocation sets of the answer.
    pub async fn allocation(
        &self,
        req: &AllocationRequest,
    ) -> Result<Vec<AllocationSet>, CostError> {
        let url = self.allocation_url(req);
        let shown = url.to_string();
        let resp =
            self.http
                .get(url)
                .send()
                .await
                .map_err(|source| CostError::OpenCostRequest {
                    url: shown.clone(),
                    source,
                })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| CostError::OpenCostRequest {
                url: shown.clone(),
                source,
            })?;
        parse_allocation_response(&shown, status.as_u16(), &body)
    }

    /// Daily OpenCost spend from the first of `at`'s month to `at`, as lines for the budget.
    pub(super) async fn daily_month_to_date(
        &self,
        at: DateTime<Utc>,
        ctx: &AllocationContext<'_>,
    ) -> Result<Vec<CostLine>, CostError> {
        let month_start = at
            .date_naive()
            .with_day(1)
            .map(day_start)
            .unwrap_or_else(|| day_start(at.date_naive()));
        if at <= month_start {
            return Ok(Vec::new());
        }
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let sets = self
            .allocation(&AllocationRequest {
                window: format!("{},{}", fmt(month_start), fmt(at)),
                aggregate: vec!["cluster".to_string()],
                accumulate: false,
                step: Some("1d".to_string()),
                include_idle: true,
            })
            .await?;
        let daily_ctx = AllocationContext {
            aggregate: &[],
            ..*ctx
        };
        // An allocation that cannot be read here was already reported by the window query
        // (same data, coarser grouping), so it is left out of the daily series only.
        Ok(sets
            .iter()
            .flat_map(|set| set.iter())
            .filter_map(|(name, v)| allocation_line(name, v, &daily_ctx).ok())
            .collect())
    }
}

#[derive(Deserialize)]
struct Envelope {
    code: Option<i64>,
    message: Option<String>,
    data: Option<Value>,
}

/// Reads OpenCost's `{"code":200,"data":[{name: allocation}]}` envelope. A non-2xx status or a
/// `code` other than 200 is an error carrying the body's `message`.
pub fn parse_allocation_response(
    url: &str,
    status: u16,
    body: &[u8],
) -> Result<Vec<AllocationSet>, CostError> {
    let envelope: Result<Envelope, _> = serde_json::from_slice(body);
    let rejected = |code: Option<i64>, message: String| CostError::OpenCostRejected {
        url: url.to_string(),
        status,
        code,
        message,
    };
    let env = match envelope {
        Ok(env) => env,
        Err(e) if (200..300).contains(&status) => {
            return Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("not JSON: {e}"),
            });
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(300).collect();
            return Err(rejected(None, text));
        }
    };
    if !(200..300).contains(&status) || env.code.is_some_and(|c| c != 200) {
        return Err(rejected(
            env.code,
            env.message
                .unwrap_or_else(|| "(no message in the body)".to_string()),
        ));
    }
    let data = match env.data {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(sets)) => sets,
        Some(other) => {
            return Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("`data` is {}, not an array of sets", json_kind(&other)),
            });
        }
    };
    data.into_iter()
        .enumerate()
        .filter(|(_, set)| !set.is_null())
        .map(|(i, set)| match set {
            Value::Object(m) => Ok(m.into_iter().collect()),
            other => Err(CostError::OpenCostBody {
                url: url.to_string(),
                reason: format!("set {i} of `data` is {}, not an object", json_kind(&other)),
            }),
        })
        .collect()
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What turning an allocation into a line needs to know.
#[derive(Debug, Clone, Copy)]
pub struct AllocationContext<'a> {
    /// The query's aggregation, to read names when properties are missing.
    pub aggregate: &'a [String],
    pub team_label: &'a str,
    pub nodes: &'a [NodeCostInfo],
    pub currency: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllocationJson {
    #[serde(default)]
    properties: Option<PropertiesJson>,
    #[serde(default)]
    window: Option<WindowJson>,
    #[serde(default)]
    start: Option<DateTime<Utc>>,
    #[serde(default)]
    end: Option<DateTime<Utc>>,
    #[serde(default)]
    cpu_core_hours: f64,
    #[serde(default)]
    cpu_cost: f64,
    #[serde(default)]
    gpu_hours: f64,
    #[serde(default)]
    gpu_cost: f64,
    #[serde(default)]
    ram_byte_hours: f64,
    #[serde(default)]
    ram_cost: f64,
    #[serde(default)]
    total_cost: Option<f64>,
}

#[derive(Deserialize, Default)]
struct PropertiesJson {
    cluster: Option<String>,
    node: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct WindowJson {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

const OPENCOST_IDLE: &str = "__idle__";
const OPENCOST_UNALLOCATED: &str = "__unallocated__";
const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One OpenCost allocation as a cost line; the error says why it cannot be one.
pub fn allocation_line(
    name: &str,
    value: &Value,
    ctx: &AllocationContext<'_>,
) -> Result<CostLine, String> {
    let a =
        AllocationJson::deserialize(value).map_err(|e| format!("unreadable allocation: {e}"))?;
    let window = a.window.as_ref();
    let start = a
        .start
        .or_else(|| window.and_then(|w| w.start))
        .ok_or("no start time (neither `start` nor `window.start`)")?;
    let end = a
        .end
        .or_else(|| window.and_then(|w| w.end))
        .ok_or("no end time (neither `end` nor `window.end`)")?;
    let total = a.total_cost.unwrap_or(a.cpu_cost + a.gpu_cost + a.ram_cost);
    for (field, v) in [
        ("totalCost", total),
        ("gpuHours", a.gpu_hours),
        ("gpuCost", a.gpu_cost),
    ] {
        if !v.is_finite() {
            return Err(format!("{field} is not a finite number"));
        }
    }
    let props = a.properties.unwrap_or_default();
    let segments: Vec<&str> = name.split('/').collect();
    let segment = |property: &str| -> Option<String> {
        if segments.len() != ctx.aggregate.len() {
            return None;
        }
        ctx.aggregate
            .iter()
            .position(|p| p == property)
            .and_then(|i| segments.get(i))
            .map(|s| s.to_string())
    };
    let known = |v: Option<String>| v.filter(|s| s != OPENCOST_UNALLOCATED && !s.is_empty());
    let idle = name == OPENCOST_IDLE || name.ends_with("/__idle__");
    let team = props
        .labels
        .as_ref()
        .and_then(|l| label_value(l, ctx.team_label))
        .or_else(|| segment(&format!("label:{}", ctx.team_label)));

    // OpenCost names a cluster's idle capacity `<cluster>/__idle__` when it aggregates by
    // cluster first; attribute it there rather than to no cluster.
    let idle_cluster = || {
        let prefix = name.strip_suffix("/__idle__")?;
        (ctx.aggregate.first().map(String::as_str) == Some("cluster"))
            .then(|| prefix.split('/').next().map(str::to_string))
            .flatten()
    };
    let mut line = CostLine::new(CostSourceKind::OpenCost, start, end, total, ctx.currency);
    line.cluster = known(
        props
            .cluster
            .or_else(|| segment("cluster"))
            .or_else(|| if idle { idle_cluster() } else { None }),
    );
    line.idle = idle;
    if !idle {
        line.node = known(props.node.or_else(|| segment("node")));
        line.namespace = known(props.namespace.or_else(|| segment("namespace")));
        line.team = known(team);
    }
    line.service = Some("Kubernetes (OpenCost)".to_string());
    line.gpu_hours = a.gpu_hours;
    line.gpu_cost = a.gpu_cost;
    line.usage = Some(ResourceUsage {
        cpu_core_hours: a.cpu_core_hours,
        cpu_cost: a.cpu_cost,
        gpu_hours: a.gpu_hours,
        gpu_cost: a.gpu_cost,
        ram_gib_hours: a.ram_byte_hours / BYTES_PER_GIB,
        ram_cost: a.ram_cost,
    });
    if let Some(node) = &line.node {
        let info = ctx
            .nodes
            .iter()
            .find(|n| &n.node == node && (n.cluster.is_none() || n.cluster == line.cluster));
        line.gpu_type = info.and_then(|n| n.gpu_type.clone());
    }
    Ok(line)
}

/// A label by its key, or by the key OpenCost's Prometheus sanitising makes of it
/// (`app.kubernetes.io/team` → `app_kubernetes_io_team`).
fn label_value(labels: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    let sanitized: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    labels
        .get(key)
        .or_else(|| labels.get(&sanitized))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencost_urls_keep_a_path_prefix() {
        let c = OpenCostClient::new(
            "http://localhost:8001/api/v1/namespaces/opencost/services/opencost:9003/proxy",
        );
        let url = c.map(|c| {
            c.allocation_url(&AllocationRequest {
                window: "7d".into(),
                aggregate: vec!["namespace".into(), "label:team".into()],
                accumulate: true,
                step: None,
                include_idle: false,
            })
            .to_string()
        });
        assert_eq!(
            url.ok().as_deref(),
            Some(
                "http://localhost:8001/api/v1/namespaces/opencost/services/opencost:9003/proxy/allocation?window=7d&aggregate=namespace%2Clabel%3Ateam&accumulate=true"
            )
        );
        assert!(OpenCostClient::new("localhost:9003").is_err());
    }

    #[test]
    fn opencost_errors_carry_status_code_and_message() {
        let body = br#"{"code":400,"message":"invalid `window` value \"x\": expected a duration"}"#;
        let err = parse_allocation_response("http://oc/allocation", 400, body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("HTTP 400 (code 400)"), "{err}");
        assert!(err.contains("`window`"), "{err}");
        let err = parse_allocation_response("u", 502, b"<html>Bad Gateway</html>")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("HTTP 502") && err.contains("Bad Gateway"),
            "{err}"
        );
        let err = parse_allocation_response("u", 200, br#"{"code":500,"message":"boom"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("code 500") && err.contains("boom"), "{err}");
        let err = parse_allocation_response("u", 200, br#"{"code":200,"data":{"a":1}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not an array"), "{err}");
    }

    #[test]
    fn allocation_names_give_the_properties_when_properties_are_missing() {
        let agg = opencost_aggregate("team");
        let ctx = AllocationContext {
            aggregate: &agg,
            team_label: "team",
            nodes: &[],
            currency: "USD",
        };
        let v = serde_json::json!({
            "start": "2025-04-01T00:00:00Z", "end": "2025-04-02T00:00:00Z",
            "totalCost": 12.5, "gpuHours": 2.0, "gpuCost": 10.0
        });
        let l = allocation_line("c1/node-a/ml/__unallocated__", &v, &ctx);
        let Ok(l) = l else { panic!("{l:?}") };
        assert_eq!(l.cluster.as_deref(), Some("c1"));
        assert_eq!(l.node.as_deref(), Some("node-a"));
        assert_eq!(l.namespace.as_deref(), Some("ml"));
        assert_eq!(l.team, None);
        assert_eq!(l.effective_cost, 12.5);
        let idle = allocation_line("c1/__idle__", &v, &ctx);
        assert!(
            idle.is_ok_and(|l| l.idle
                && l.namespace.is_none()
                && l.cluster.as_deref() == Some("c1")),
            "a cluster's idle capacity is that cluster's"
        );
        let no_time = allocation_line("x", &serde_json::json!({"totalCost": 1.0}), &ctx);
        assert!(no_time.is_err_and(|e| e.contains("start")));
    }
}
