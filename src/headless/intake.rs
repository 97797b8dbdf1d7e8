//! Alerts from other monitoring systems than Alertmanager: Grafana Alerting's webhook contact
//! point, Datadog's webhook integration, Azure Monitor's common alert schema and Kibana's
//! webhook connector. Each vendor's payload is read into Alertmanager's form (`alerts::Alert`:
//! status, labels, annotations, start, identity), so that one path — the token, the body limit,
//! the dedup through the store, resolution, the signals and the audit — serves them all. This
//! module only reads and maps; a payload it cannot read is refused with the field that is wrong
//! and what was expected. May import what `alerts` may.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::alerts::{Alert, AlertStatus, WebhookPayload};

/// The senders `POST /api/v1/alerts[/VENDOR]` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Alertmanager,
    Grafana,
    Datadog,
    AzureMonitor,
    Elastic,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [
        Vendor::Alertmanager,
        Vendor::Grafana,
        Vendor::Datadog,
        Vendor::AzureMonitor,
        Vendor::Elastic,
    ];

    /// The name in signals' evidence, the path and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Datadog => "datadog",
            Self::AzureMonitor => "azure-monitor",
            Self::Elastic => "elastic",
        }
    }

    /// Where the vendor delivers.
    pub fn path(self) -> &'static str {
        match self {
            Self::Alertmanager => "/api/v1/alerts",
            Self::Grafana => "/api/v1/alerts/grafana",
            Self::Datadog => "/api/v1/alerts/datadog",
            Self::AzureMonitor => "/api/v1/alerts/azure-monitor",
            Self::Elastic => "/api/v1/alerts/elastic",
        }
    }

    /// What the body should be, for a 400.
    pub fn expects(self) -> &'static str {
        match self {
            Self::Alertmanager => "an Alertmanager webhook payload (version 4)",
            Self::Grafana => "a Grafana Alerting webhook payload",
            Self::Datadog => {
                "a Datadog webhook payload in fleetdeck's template (deploy/integrations/datadog-webhook-payload.json)"
            }
            Self::AzureMonitor => "an Azure Monitor alert in the common alert schema",
            Self::Elastic => {
                "a Kibana webhook connector body in fleetdeck's template (deploy/integrations/kibana-webhook-body.json)"
            }
        }
    }

    /// Reads one delivery into Alertmanager's form; `Err` says what is wrong, for a 400.
    pub fn read(self, body: &[u8]) -> Result<WebhookPayload, String> {
        if self == Self::Alertmanager {
            return serde_json::from_slice(body).map_err(|e| e.to_string());
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if !v.is_object() {
            return Err(format!("the body is a JSON {}, not an object", kind_of(&v)));
        }
        let alerts = match self {
            Self::Alertmanager => unreachable!("read above"),
            Self::Grafana => grafana(&v)?,
            Self::Datadog => vec![datadog(&v)?],
            Self::AzureMonitor => vec![azure(&v)?],
            Self::Elastic => vec![elastic(&v)?],
        };
        Ok(WebhookPayload {
            version: String::new(),
            group_key: str_at(&v, "groupKey").unwrap_or_default().to_string(),
            truncated_alerts: v["truncatedAlerts"].as_u64().unwrap_or(0),
            status: None,
            receiver: str_at(&v, "receiver").unwrap_or_default().to_string(),
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: String::new(),
            alerts: alerts
                .into_iter()
                .map(|mut a| {
                    a.source = self.name();
                    a
                })
                .collect(),
        })
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The value at a dotted path (`data.essentials.alertRule`).
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// A non-empty string at `path`.
fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path)
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A string field the payload must carry; a template variable the vendor left unexpanded
/// (`$ALERT_ID`, `{{rule.id}}`) counts as missing.
fn required<'a>(v: &'a Value, path: &str, what: &str) -> Result<&'a str, String> {
    match at(v, path) {
        Value::String(s) if !s.trim().is_empty() => {
            let s = s.trim();
            if s.starts_with('$') || s.starts_with("{{") {
                Err(format!(
                    "{path} is {s:?}: the template variable was not filled in; {what}"
                ))
            } else {
                Ok(s)
            }
        }
        Value::Null => Err(format!("{path} is missing; {what}")),
        Value::String(_) => Err(format!("{path} is empty; {what}")),
        Value::Number(n) => Err(format!("{path} is the number {n}; {what} (as a string)")),
        other => Err(format!("{path} is a {}; {what}", kind_of(other))),
    }
}

/// A string-valued map (labels, annotations); other values are written as JSON.
fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Null => return None,
                other => other.to_string(),
            };
            (!s.is_empty()).then(|| (k.clone(), s))
        })
        .collect()
}

/// `key:value` tags (Datadog's `$TAGS`, Kibana's `{{rule.tags}}`), comma-separated; a tag
/// without a value is kept under `tag.<name>`. The first value of a key wins.
fn tag_labels(tags: &str, labels: &mut BTreeMap<String, String>) {
    for tag in tags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match tag.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                labels
                    .entry(k.trim().to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
            _ => {
                labels.entry(format!("tag.{tag}")).or_default();
            }
        }
    }
}

/// RFC 3339, or epoch milliseconds/seconds (Datadog's `$DATE`, `$LAST_UPDATED`).
fn time(v: &Value) -> Option<DateTime<Utc>> {
    let epoch = |n: i64| {
        if n > 100_000_000_000 {
            Utc.timestamp_millis_opt(n).single()
        } else {
            Utc.timestamp_opt(n, 0).single()
        }
    };
    match v {
        Value::String(s) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| s.parse::<i64>().ok().and_then(epoch))
        }
        Value::Number(n) => n.as_i64().and_then(epoch),
        _ => None,
    }
}

fn firing_alert(
    status: AlertStatus,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<DateTime<Utc>>,
    identity: String,
    link: String,
) -> Alert {
    Alert {
        status,
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: link,
        fingerprint: identity,
        source: "",
    }
}

/// Grafana Alerting's webhook contact point: Alertmanager's shape (`alerts[]` with status,
/// labels, annotations, startsAt, fingerprint) plus Grafana's links and values.
fn grafana(v: &Value) -> Result<Vec<Alert>, String> {
    let alerts = match &v["alerts"] {
        Value::Array(a) => a,
        Value::Null => return Err("alerts is missing; expected the alerts of the group".into()),
        other => return Err(format!("alerts is a {}, not an array", kind_of(other))),
    };
    alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = |f: &str| format!("alerts[{i}].{f}");
            let status = match str_at(a, "status") {
                Some("firing") => AlertStatus::Firing,
                Some("resolved") => AlertStatus::Resolved,
                Some(other) => {
                    return Err(format!(
                        "{} is {other:?}; expected firing or resolved",
                        field("status")
                    ));
                }
                None => {
                    return Err(format!(
                        "{} is missing; expected firing or resolved",
                        field("status")
                    ));
                }
            };
            let labels = string_map(&a["labels"]);
            if !labels.contains_key("alertname") {
                return Err(format!(
                    "{} has no alertname; Grafana names the rule there",
                    field("labels")
                ));
            }
            let mut annotations = string_map(&a["annotations"]);
            for (key, name) in [
                ("dashboardURL", "dashboard_url"),
                ("panelURL", "panel_url"),
                ("silenceURL", "silence_url"),
                ("valueString", "value_string"),
            ] {
                if let Some(s) = str_at(a, key) {
                    annotations.insert(name.into(), s.to_string());
                }
            }
            // Grafana's fingerprint is of the labels; without one, Alertmanager's label hash.
            let identity = str_at(a, "fingerprint")
                .map(|f| format!("grafana-{f}"))
                .unwrap_or_default();
            Ok(firing_alert(
                status,
                labels,
                annotations,
                time(&a["startsAt"]),
                identity,
                str_at(a, "generatorURL").unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Datadog's webhook integration, in the payload template fleetdeck ships.
fn datadog(v: &Value) -> Result<Alert, String> {
    const TEMPLATE: &str =
        "paste deploy/integrations/datadog-webhook-payload.json as the webhook's payload";
    let monitor = required(v, "alert_id", TEMPLATE)?;
    let transition = required(v, "transition", TEMPLATE)?;
    let status = match transition.to_ascii_lowercase().as_str() {
        t if t.contains("recovered") => AlertStatus::Resolved,
        "triggered" | "re-triggered" | "warn" | "re-warn" | "no data" | "re-no data"
        | "renotify" => AlertStatus::Firing,
        _ => {
            return Err(format!(
                "transition is {transition:?}; expected Datadog's $ALERT_TRANSITION: Triggered, \
                 Re-Triggered, Warn, No Data or Recovered"
            ));
        }
    };
    let title = str_at(v, "alert_title")
        .or_else(|| str_at(v, "title"))
        .ok_or_else(|| format!("alert_title is missing; {TEMPLATE}"))?;
    // "[Triggered on {host:gpu-7}] GPU XID errors" → "GPU XID errors".
    let name = match title.strip_prefix('[').and_then(|t| t.split_once("] ")) {
        Some((_, rest)) if !rest.trim().is_empty() => rest.trim(),
        _ => title,
    };
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), name.to_string());
    if let Some(t) = str_at(v, "tags") {
        tag_labels(t, &mut labels);
    }
    let scope = str_at(v, "scope").filter(|s| !s.starts_with('$'));
    if let Some(s) = scope {
        // A multi-alert's group, e.g. "host:gpu-7,kube_namespace:ml".
        tag_labels(s, &mut labels);
    }
    if let Some(h) = str_at(v, "hostname").filter(|s| !s.starts_with('$')) {
        labels.entry("host".into()).or_insert_with(|| h.to_string());
    }
    let severity = match (
        str_at(v, "alert_type")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        str_at(v, "priority")
            .map(str::to_ascii_uppercase)
            .as_deref(),
        transition.to_ascii_lowercase().as_str(),
    ) {
        (_, _, "warn" | "re-warn") => "warning",
        (_, Some("P1" | "P2"), _) | (Some("error"), _, _) => "critical",
        (Some("info" | "success"), _, _) | (_, Some("P5"), _) => "info",
        _ => "warning",
    };
    labels
        .entry("severity".into())
        .or_insert_with(|| severity.to_string());
    let mut annotations = BTreeMap::new();
    for (key, name) in [
        ("message", "description"),
        ("title", "event_title"),
        ("metric", "metric"),
        ("priority", "priority"),
        ("alert_status", "status"),
        ("org_id", "org_id"),
    ] {
        if let Some(s) = str_at(v, key).filter(|s| !s.starts_with('$')) {
            annotations.insert(name.to_string(), s.to_string());
        }
    }
    annotations.insert("summary".into(), title.to_string());
    Ok(firing_alert(
        status,
        labels,
        annotations,
        time(&v["date"]).or_else(|| time(&v["last_updated"])),
        format!("datadog-{monitor}-{}", scope.unwrap_or("*")),
        str_at(v, "link").unwrap_or_default().to_string(),
    ))
}

/// Azure Monitor's common alert schema (`schemaId: azureMonitorCommonAlertSchema`).
fn azure(v: &Value) -> Result<Alert, String> {
    const WHAT: &str = "turn on the common alert schema in the action group's webhook";
    match str_at(v, "schemaId") {
        Some("azureMonitorCommonAlertSchema") => {}
        Some(other) => {
            return Err(format!(
                "schemaId is {other:?}; expected azureMonitorCommonAlertSchema ({WHAT})"
            ));
        }
        None => return Err(format!("schemaId is missing; {WHAT}")),
    }
    let e = &v["data"]["essentials"];
    if !e.is_object() {
        return Err(format!("data.essentials is missing; {WHAT}"));
    }
    let rule = required(v, "data.essentials.alertRule", WHAT)?;
    let id = required(v, "data.essentials.alertId", WHAT)?;
    let status = match required(v, "data.essentials.monitorCondition", WHAT)? {
        "Fired" => AlertStatus::Firing,
        "Resolved" => AlertStatus::Resolved,
        other => {
            return Err(format!(
                "data.essentials.monitorCondition is {other:?}; expected Fired or Resolved"
            ));
        }
    };
    let severity = match str_at(e, "severity") {
        Some("Sev0" | "Sev1") => "critical",
        Some("Sev2") | None => "warning",
        Some("Sev3" | "Sev4") => "info",
        Some(other) => {
            return Err(format!(
                "data.essentials.severity is {other:?}; expected Sev0 to Sev4"
            ));
        }
    };
    let mut labels = BTreeMap::new();
    // What the alert rule itself labelled (Azure Monitor managed Prometheus rules carry labels
    // and annotations in the alert context) and what the action group adds.
    labels.extend(string_map(&v["data"]["alertContext"]["labels"]));
    // A log search rule's custom properties (Log Alerts V2 puts them in the alert context).
    labels.extend(string_map(&v["data"]["alertContext"]["properties"]));
    labels.extend(string_map(&v["data"]["customProperties"]));
    // What the alert fired for: a log search or metric rule split by dimensions fires once per
    // value (a `Computer`, a `_ResourceId`), and that value is the subject; without it a
    // per-node alert would become a cluster-wide incident. The rule's own labels still win.
    azure_dimension_labels(&v["data"]["alertContext"], &mut labels);
    labels.insert("alertname".into(), rule.to_string());
    labels.entry("severity".into()).or_insert(severity.into());
    for (key, name) in [
        ("signalType", "signal_type"),
        ("monitoringService", "monitoring_service"),
        ("severity", "azure_severity"),
    ] {
        if let Some(s) = str_at(e, key) {
            labels.insert(name.to_string(), s.to_string());
        }
    }
    // The target: /subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME. A VM is a node;
    // an AKS cluster is a cluster (unless the rule's labels already name them).
    if let Some(target) = e["alertTargetIDs"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    {
        let parts: Vec<&str> = target.split('/').collect();
        let after = |name: &str| {
            parts
                .iter()
                .position(|p| p.eq_ignore_ascii_case(name))
                .and_then(|i| parts.get(i + 1))
                .copied()
        };
        if let Some(g) = after("resourceGroups") {
            labels.insert("resource_group".into(), g.to_string());
        }
        if let Some(sub) = after("subscriptions") {
            labels.insert("subscription".into(), sub.to_string());
        }
        labels.insert("azure_resource_id".into(), target.to_string());
        if let Some(name) = parts.last().filter(|n| !n.is_empty()) {
            labels.insert("azure_resource".into(), name.to_string());
        }
        resource_subject(target, &mut labels);
    }
    let mut annotations = string_map(&v["data"]["alertContext"]["annotations"]);
    if let Some(d) = str_at(e, "description") {
        annotations
            .entry("description".into())
            .or_insert(d.to_string());
    }
    if let Some(items) = e["configurationItems"].as_array() {
        let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        if !items.is_empty() {
            annotations.insert("configuration_items".into(), items.join(", "));
        }
    }
    Ok(firing_alert(
        status,
        labels,
        annotations,
        time(&e["firedDateTime"]),
        format!("azure-{id}"),
        String::new(),
    ))
}

/// A VM is a node and an AKS cluster is a cluster, by their Azure resource id
/// (`/subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME`); labels already set win.
fn resource_subject(id: &str, labels: &mut BTreeMap<String, String>) {
    let lower = id.to_ascii_lowercase();
    let Some(name) = id.rsplit('/').next().filter(|n| !n.is_empty()) else {
        return;
    };
    if lower.contains("/providers/microsoft.compute/virtualmachines/") {
        labels.entry("node".into()).or_insert(name.to_string());
    } else if lower.contains("/providers/microsoft.containerservice/managedclusters/") {
        labels.entry("cluster".into()).or_insert(name.to_string());
    }
}

/// The dimensions an Azure alert fired for: `condition.allOf[].dimensions` (log search alerts
/// of Log Alerts V2 and metric alerts) and the older log alerts' `Dimensions`, each
/// `{ name, value }`. Each is kept as a label under its own name; those that name a subject
/// also fill the subject's label: `Computer` (Log Analytics' host column, a node's name),
/// `_ResourceId` (a VM or an AKS cluster), and Container insights' `ClusterName` and
/// `Namespace`.
fn azure_dimension_labels(context: &Value, labels: &mut BTreeMap<String, String>) {
    let from_conditions = context["condition"]["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["dimensions"].as_array().into_iter().flatten());
    let legacy = context["Dimensions"].as_array().into_iter().flatten();
    for d in from_conditions.chain(legacy) {
        let (Some(name), Some(value)) = (str_at(d, "name"), str_at(d, "value")) else {
            continue;
        };
        labels
            .entry(name.to_string())
            .or_insert_with(|| value.to_string());
        let subject = match name.to_ascii_lowercase().as_str() {
            "computer" => "node",
            "clustername" => "cluster",
            "namespace" => "namespace",
            "_resourceid" => {
                resource_subject(value, labels);
                continue;
            }
            _ => continue,
        };
        labels
            .entry(subject.to_string())
            .or_insert_with(|| value.to_string());
    }
}

/// Kibana's webhook connector, in the body template fleetdeck ships.
fn elastic(v: &Value) -> Result<Alert, String> {
    const TEMPLATE: &str =
        "paste deploy/integrations/kibana-webhook-body.json as the connector's body";
    let rule_id = required(v, "rule.id", TEMPLATE)?;
    let rule = required(v, "rule.name", TEMPLATE)?;
    let group = required(v, "alert.action_group", TEMPLATE)?;
    let status = if group.eq_ignore_ascii_case("recovered") {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    // The alert id is the group a rule alerts per (a host, `*` for the whole rule).
    let instance = str_at(v, "alert.id").filter(|s| !s.starts_with("{{"));
    let mut labels = string_map(&v["labels"]);
    labels.insert("alertname".into(), rule.to_string());
    if let Some(t) = str_at(v, "rule.tags") {
        tag_labels(t, &mut labels);
    }
    if let Some(i) = instance {
        labels.insert("alert_id".into(), i.to_string());
    }
    let severity = match group.to_ascii_lowercase().as_str() {
        "warning" => "warning",
        g if g.contains("critical") || g.contains("fired") || g == "threshold met" => "critical",
        _ => "warning",
    };
    labels.entry("severity".into()).or_insert(severity.into());
    labels.insert("action_group".into(), group.to_string());
    let mut annotations = BTreeMap::new();
    for (key, name) in [
        ("context.reason", "summary"),
        ("context.message", "description"),
        ("context.value", "value"),
        ("alert.action_group_name", "action_group_name"),
        ("alert.flapping", "flapping"),
        ("alert.uuid", "alert_uuid"),
    ] {
        if let Some(s) = str_at(v, key).filter(|s| !s.starts_with("{{")) {
            annotations.insert(name.to_string(), s.to_string());
        }
    }
    let link = str_at(v, "rule.url")
        .or_else(|| str_at(v, "kibana_url"))
        .filter(|s| !s.starts_with("{{"))
        .unwrap_or_default()
        .to_string();
    Ok(firing_alert(
        status,
        labels,
        annotations,
        time(&v["date"]),
        format!("elastic-{rule_id}-{}", instance.unwrap_or("*")),
        link,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(vendor: Vendor, v: Value) -> Result<WebhookPayload, String> {
        vendor.read(v.to_string().as_bytes())
    }

    #[test]
    fn a_template_variable_left_unexpanded_is_named() {
        let e = read(
            Vendor::Datadog,
            json!({"alert_id": "$ALERT_ID", "transition": "Triggered", "alert_title": "x"}),
        )
        .expect_err("unexpanded");
        assert!(e.contains("alert_id is \"$ALERT_ID\""), "{e}");
        let e = read(Vendor::Elastic, json!({"rule": {"id": "{{rule.id}}"}})).expect_err("x");
        assert!(e.contains("rule.id"), "{e}");
    }

    #[test]
    fn datadog_titles_lose_their_transition_and_tags_become_labels() {
        let p = read(
            Vendor::Datadog,
            json!({
                "alert_id": "1234", "transition": "Triggered", "alert_type": "error",
                "alert_title": "[Triggered on {host:gpu-7}] GPU XID errors",
                "scope": "host:gpu-7", "tags": "kube_cluster_name:prod,kube_namespace:ml,team",
                "date": "1733130000000"
            }),
        )
        .expect("reads");
        let a = &p.alerts[0];
        assert_eq!(a.labels["alertname"], "GPU XID errors");
        assert_eq!(a.labels["host"], "gpu-7");
        assert_eq!(a.labels["kube_cluster_name"], "prod");
        assert_eq!(a.labels["severity"], "critical");
        assert!(a.labels.contains_key("tag.team"));
        assert_eq!(a.fingerprint, "datadog-1234-host:gpu-7");
        assert_eq!(a.source, "datadog");
        assert_eq!(
            a.starts_at,
            Utc.timestamp_millis_opt(1_733_130_000_000).single()
        );
    }

    #[test]
    fn azure_severity_and_condition_are_checked() {
        let base = |sev: &str, cond: &str| {
            json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
                "alertId": "/x/alerts/1", "alertRule": "High GPU temp", "severity": sev,
                "monitorCondition": cond,
                "alertTargetIDs": ["/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gpu-vm-3"]
            }}})
        };
        let p = read(Vendor::AzureMonitor, base("Sev1", "Fired")).expect("reads");
        let a = &p.alerts[0];
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["node"], "gpu-vm-3");
        assert_eq!(a.labels["resource_group"], "rg");
        assert_eq!(a.status, AlertStatus::Firing);
        let e = read(Vendor::AzureMonitor, base("Sev9", "Fired")).expect_err("bad sev");
        assert!(e.contains("data.essentials.severity is \"Sev9\""), "{e}");
        let e = read(Vendor::AzureMonitor, base("Sev1", "Active")).expect_err("bad cond");
        assert!(e.contains("expected Fired or Resolved"), "{e}");
        let e = read(
            Vendor::AzureMonitor,
            json!({"schemaId": "Microsoft.Insights/activityLogs"}),
        )
        .expect_err("not common");
        assert!(e.contains("common alert schema"), "{e}");
    }

    #[test]
    fn an_azure_log_search_alert_names_the_node_of_its_dimensions() {
        let body = include_str!("../../tests/fixtures/alerts/azure-monitor-log-search-fired.json");
        let p = Vendor::AzureMonitor.read(body.as_bytes()).expect("reads");
        let a = &p.alerts[0];
        // The target is the Log Analytics workspace; the dimension names the node.
        assert_eq!(a.labels["node"], "ip-10-20-0-11.ec2.internal");
        assert_eq!(a.labels["Computer"], "ip-10-20-0-11.ec2.internal");
        assert_eq!(a.labels["cluster"], "sim-a");
        let cfg = crate::config::HeadlessConfig::default();
        let signal =
            super::super::alerts::alert_signal(a, &cfg, "default-cluster", chrono::Utc::now());
        assert_eq!(
            signal.subject.node.as_deref(),
            Some("ip-10-20-0-11.ec2.internal")
        );
        assert_eq!(signal.subject.cluster, "sim-a");
    }

    #[test]
    fn azure_dimensions_fill_the_subject_but_the_rules_labels_win() {
        let p = read(
            Vendor::AzureMonitor,
            json!({"schemaId": "azureMonitorCommonAlertSchema", "data": {
                "essentials": {"alertId": "/x/alerts/2", "alertRule": "Pods pending",
                    "severity": "Sev2", "monitorCondition": "Fired"},
                "alertContext": {
                    "labels": {"namespace": "from-the-rule"},
                    "Dimensions": [
                        {"name": "ClusterName", "value": "aks-gpu"},
                        {"name": "Namespace", "value": "ml"},
                        {"name": "_ResourceId", "value": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gpu-vm-9"}
                    ]
                }
            }}),
        )
        .expect("reads");
        let a = &p.alerts[0];
        assert_eq!(a.labels["cluster"], "aks-gpu");
        assert_eq!(a.labels["namespace"], "from-the-rule");
        assert_eq!(a.labels["node"], "gpu-vm-9");
    }

    #[test]
    fn grafana_needs_a_status_and_a_rule_name() {
        let e = read(
            Vendor::Grafana,
            json!({"alerts": [{"status": "pending", "labels": {"alertname": "x"}}]}),
        )
        .expect_err("bad status");
        assert!(e.contains("alerts[0].status is \"pending\""), "{e}");
        let e = read(Vendor::Grafana, json!({"alerts": [{"status": "firing"}]})).expect_err("x");
        assert!(e.contains("alerts[0].labels has no alertname"), "{e}");
        let e = read(Vendor::Grafana, json!({"alerts": {}})).expect_err("x");
        assert!(e.contains("not an array"), "{e}");
    }

    #[test]
    fn elastic_recovered_resolves_and_tags_name_subjects() {
        let p = read(
            Vendor::Elastic,
            json!({"rule": {"id": "r1", "name": "GPU node down", "tags": "cluster:prod,node:gpu-2"},
                   "alert": {"id": "gpu-2", "action_group": "recovered"}, "date": "2026-12-01T10:00:00.000Z"}),
        )
        .expect("reads");
        let a = &p.alerts[0];
        assert_eq!(a.status, AlertStatus::Resolved);
        assert_eq!(a.labels["cluster"], "prod");
        assert_eq!(a.labels["node"], "gpu-2");
        assert_eq!(a.fingerprint, "elastic-r1-gpu-2");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for vendor in Vendor::ALL {
            assert!(vendor.read(b"[]").is_err(), "{vendor:?}");
            assert!(vendor.read(b"not json").is_err(), "{vendor:?}");
        }
    }
}
