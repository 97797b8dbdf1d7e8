//! The daemon's own metrics, for Prometheus to scrape at `/metrics` (OpenMetrics text): what
//! fires, what the runbooks did and why the guard refused, whether the sources are synced and
//! who leads. May import model and runbook.
//!
//! Label values can come from outside (an alert's name becomes a signal kind, a cluster is
//! named in the config): they are `LabelText`, escaped as the text formats require, because
//! prometheus-client 0.23 writes label values verbatim and one `"` or newline in an alert name
//! would leave the whole page unparseable until the alert resolved.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::signal::Severity;

/// The Content-Type of `encode`'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value, written with the escapes of the Prometheus text format and OpenMetrics:
/// `\\` for a backslash, `\"` for a double quote, `\n` for a line feed. Any other control
/// character (ESC, CR, …) is valid there but would drive the terminal of whoever reads a scrape
/// with curl: it reads as the text `\x1b`, as the CLI shows it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelText(String);

impl From<&str> for LabelText {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for LabelText {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        let s = self.0.as_str();
        if !s.chars().any(|c| c == '\\' || c == '"' || c.is_control()) {
            return encoder.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c if c.is_control() => write!(encoder, "\\\\x{:02x}", u32::from(c))?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: LabelText,
    severity: LabelText,
    /// `incident` (opens one) or `finding` (shown, opens none).
    class: LabelText,
}

/// An unresolved incident's severity and milestone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IncidentLabels {
    severity: LabelText,
    /// `open`, `acknowledged` or `mitigated`.
    status: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RaisedLabels {
    kind: LabelText,
    severity: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    runbook: LabelText,
    outcome: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    cluster: LabelText,
    resource: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabels {
    currency: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdleLabels {
    currency: LabelText,
    /// `allocated` (held by pods, used under the threshold) or `unallocated` (no pod asked).
    kind: LabelText,
}

type MoneyGauge = Family<CurrencyLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    status: LabelText,
    outcome: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    path: LabelText,
    code: LabelText,
}

/// Every metric of the daemon, registered once. Share it behind an `Arc`; updates take `&self`.
pub struct Metrics {
    registry: Registry,
    signals: Family<KindLabels, Gauge>,
    signals_raised: Family<RaisedLabels, Counter>,
    incidents_opened: Counter,
    open_incidents: Gauge,
    incidents: Family<IncidentLabels, Gauge>,
    store_size: Gauge,
    /// 1 while the store answers reads and writes, 0 while it does not (/readyz says why).
    store_up: Gauge,
    /// Why the store is down, for /readyz; `None` while it is up.
    store_down: Mutex<Option<String>>,
    /// Acting writes the shared store refused because a newer leader's term exists.
    store_fenced: Counter,
    runbook_runs: Family<RunLabels, Counter>,
    guard_refusals: Family<ReasonLabels, Counter>,
    /// Plans waiting for a person now.
    pending_approvals: Gauge,
    /// Approvals decided: approved, denied (by a person) or expired.
    approval_decisions: Family<VerdictLabels, Counter>,
    /// Notifications given up (past `[notify] give_up_after` or `attempts`), by sink.
    notifications_given_up: Family<SinkLabels, Counter>,
    action_duration: Histogram,
    source_synced: Family<SourceLabels, Gauge>,
    leader: Gauge,
    alerts: Family<AlertLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_connections: Gauge,
    http_connections_refused: Counter,
    cost_month_to_date: MoneyGauge,
    cost_forecast: MoneyGauge,
    cost_budget: MoneyGauge,
    cost_idle_gpu: Family<IdleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    cost_source_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    cost_source_ok: Gauge,
    /// The same as `source_synced`, readable: `/readyz` names what has not synced.
    sources: Mutex<BTreeMap<(String, String), bool>>,
    /// `cluster/resource` of every source RBAC refuses (a 403), for /readyz.
    forbidden: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fleetdeck");
        let signals = Family::<KindLabels, Gauge>::default();
        registry.register(
            "signals",
            "Signals firing at the latest evaluation, by kind",
            signals.clone(),
        );
        let signals_raised = Family::<RaisedLabels, Counter>::default();
        registry.register(
            "signals_raised",
            "Signals that started firing (or got more severe) and opened or joined an incident",
            signals_raised.clone(),
        );
        let incidents_opened = Counter::default();
        registry.register(
            "incidents_opened",
            "Incidents opened by signals",
            incidents_opened.clone(),
        );
        let open_incidents = Gauge::default();
        registry.register(
            "open_incidents",
            "Incidents not yet resolved",
            open_incidents.clone(),
        );
        let incidents = Family::<IncidentLabels, Gauge>::default();
        registry.register(
            "incidents",
            "Incidents not yet resolved, by severity and milestone (what the NOC wall's counters count)",
            incidents.clone(),
        );
        let store_size = Gauge::default();
        registry.register_with_unit(
            "store_size",
            "Bytes the RCA store takes on disk",
            Unit::Bytes,
            store_size.clone(),
        );
        let store_up = Gauge::default();
        store_up.set(1);
        registry.register(
            "store_up",
            "1 while the store answers reads and writes, 0 while it cannot be reached or written",
            store_up.clone(),
        );
        let store_fenced = Counter::default();
        registry.register(
            "store_fenced_writes",
            "Writes the shared store refused because a newer leader's Lease term had written (this replica stepped down)",
            store_fenced.clone(),
        );
        let runbook_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runbook_runs",
            "Runbook runs finished, by runbook and outcome",
            runbook_runs.clone(),
        );
        let guard_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "guard_refusals",
            "Mutations the guard refused, by reason",
            guard_refusals.clone(),
        );
        let pending_approvals = Gauge::default();
        registry.register(
            "pending_approvals",
            "Runbook plans waiting for a person's approval",
            pending_approvals.clone(),
        );
        let approval_decisions = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "approval_decisions",
            "Approvals decided, by verdict (approved, denied, expired)",
            approval_decisions.clone(),
        );
        let notifications_given_up = Family::<SinkLabels, Counter>::default();
        registry.register(
            "notifications_given_up",
            "Notifications given up, by sink: never delivered within [notify] give_up_after",
            notifications_given_up.clone(),
        );
        // 50 ms .. ~7 min: a cordon takes a request, a drain waits on evictions and PDBs.
        let action_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register_with_unit(
            "action_duration",
            "How long actions on a cluster took",
            Unit::Seconds,
            action_duration.clone(),
        );
        let source_synced = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "source_synced",
            "1 when a source's watch of a cluster resource has synced, else 0",
            source_synced.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the lease and may act",
            leader.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts received from Alertmanager, by status and outcome",
            alerts.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status code",
            http_requests.clone(),
        );
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "HTTP connections open now",
            http_connections.clone(),
        );
        let http_connections_refused = Counter::default();
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once because [headless] max_connections were open",
            http_connections_refused.clone(),
        );
        let cost_month_to_date = MoneyGauge::default();
        registry.register(
            "cost_month_to_date",
            "Spend so far this month (the cost source's report)",
            cost_month_to_date.clone(),
        );
        let cost_forecast = MoneyGauge::default();
        registry.register(
            "cost_month_end_forecast",
            "Spend forecast for the month's end",
            cost_forecast.clone(),
        );
        let cost_budget = MoneyGauge::default();
        registry.register(
            "cost_monthly_budget",
            "The monthly budget the forecast is judged against",
            cost_budget.clone(),
        );
        let cost_idle_gpu =
            Family::<IdleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "cost_idle_gpu",
            "Cost of idle GPUs over the report's window: allocated but under the utilisation threshold, or unallocated",
            cost_idle_gpu.clone(),
        );
        let cost_source_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "cost_report_age",
            "Age of the last good cost report",
            Unit::Seconds,
            cost_source_age.clone(),
        );
        let cost_source_ok = Gauge::default();
        registry.register(
            "cost_source_ok",
            "1 when the cost source's last round succeeded and its report is fresh, else 0",
            cost_source_ok.clone(),
        );
        Self {
            registry,
            cost_month_to_date,
            cost_forecast,
            cost_budget,
            cost_idle_gpu,
            cost_source_age,
            cost_source_ok,
            signals,
            signals_raised,
            incidents_opened,
            open_incidents,
            incidents,
            store_size,
            store_up,
            store_down: Mutex::new(None),
            store_fenced,
            runbook_runs,
            guard_refusals,
            pending_approvals,
            approval_decisions,
            notifications_given_up,
            action_duration,
            source_synced,
            leader,
            alerts,
            http_requests,
            http_connections,
            http_connections_refused,
            sources: Mutex::new(BTreeMap::new()),
            forbidden: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the signal counts with those of the latest evaluation (by kind, severity and
    /// whether the kind is a finding): a kind that stopped firing drops out of the family.
    pub fn set_signals(&self, snapshot: &crate::model::Snapshot) {
        let mut counts: HashMap<(&str, Severity, bool), i64> = HashMap::new();
        for s in &snapshot.signals {
            *counts
                .entry((s.kind.as_str(), s.severity, snapshot.is_finding(s)))
                .or_default() += 1;
        }
        self.signals.clear();
        for ((kind, severity, finding), n) in counts {
            self.signals
                .get_or_create(&KindLabels {
                    kind: kind.into(),
                    severity: severity.name().into(),
                    class: if finding { "finding" } else { "incident" }.into(),
                })
                .set(n);
        }
    }

    /// The pipeline's running totals of signals raised and incidents opened (the noise
    /// rate); the counters move by what was added since the last call.
    pub fn recorded(
        &self,
        raised_total: &std::collections::BTreeMap<(String, Severity), u64>,
        incidents_opened_total: u64,
    ) {
        for ((kind, severity), total) in raised_total {
            let counter = self.signals_raised.get_or_create(&RaisedLabels {
                kind: kind.as_str().into(),
                severity: severity.name().into(),
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.incidents_opened
            .inc_by(incidents_opened_total.saturating_sub(self.incidents_opened.get()));
    }

    /// The unresolved incidents: their count, and how many of each severity stand at each
    /// milestone.
    pub fn set_open_incidents(&self, open: &[crate::model::incident::Incident]) {
        self.open_incidents
            .set(i64::try_from(open.len()).unwrap_or(i64::MAX));
        let mut counts: HashMap<(Severity, &str), i64> = HashMap::new();
        for i in open {
            *counts.entry((i.severity, i.status.name())).or_default() += 1;
        }
        self.incidents.clear();
        for ((severity, status), n) in counts {
            self.incidents
                .get_or_create(&IncidentLabels {
                    severity: severity.name().into(),
                    status: status.into(),
                })
                .set(n);
        }
    }

    pub fn set_store_size(&self, bytes: u64) {
        self.store_size
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Whether the store can be read and written now; `why` names what failed while it cannot.
    pub fn set_store_down(&self, why: Option<String>) {
        self.store_up.set(i64::from(why.is_none()));
        if let Ok(mut d) = self.store_down.lock() {
            *d = why;
        }
    }

    /// Why the store is down, while it is.
    pub fn store_down(&self) -> Option<String> {
        self.store_down.lock().ok().and_then(|d| d.clone())
    }

    /// One acting write refused by the shared store's fence.
    pub fn store_fenced(&self) {
        self.store_fenced.inc();
    }

    /// One finished run; `outcome` is its `RunState::outcome` (`remediated`, `partial`, …).
    pub fn runbook_run(&self, runbook: &str, outcome: &str) {
        self.runbook_runs
            .get_or_create(&RunLabels {
                runbook: runbook.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// One refusal by the guard (or the executor), counted under `refusal_reason(why)`.
    pub fn guard_refusal(&self, why: &str) {
        self.guard_refusals
            .get_or_create(&ReasonLabels {
                reason: refusal_reason(why).into(),
            })
            .inc();
    }

    pub fn set_pending_approvals(&self, n: usize) {
        self.pending_approvals
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One approval decided: `approved`, `denied` or `expired` (a denial is not a run's
    /// "stopped" outcome alone any more).
    pub fn approval_decided(&self, verdict: &str) {
        self.approval_decisions
            .get_or_create(&VerdictLabels {
                verdict: verdict.into(),
            })
            .inc();
    }

    /// A notification to `sink` given up.
    pub fn notification_given_up(&self, sink: &str) {
        self.notifications_given_up
            .get_or_create(&SinkLabels { sink: sink.into() })
            .inc();
    }

    pub fn observe_action(&self, took: Duration) {
        self.action_duration.observe(took.as_secs_f64());
    }

    pub fn set_source_synced(&self, cluster: &str, resource: &str, synced: bool) {
        self.source_synced
            .get_or_create(&SourceLabels {
                cluster: cluster.into(),
                resource: resource.into(),
            })
            .set(i64::from(synced));
        if let Ok(mut m) = self.sources.lock() {
            m.insert((cluster.into(), resource.into()), synced);
        }
    }

    /// The sources RBAC refuses now (`cluster/resource`), named by /readyz.
    pub fn set_forbidden_sources(&self, forbidden: Vec<String>) {
        if let Ok(mut f) = self.forbidden.lock() {
            *f = forbidden;
        }
    }

    pub fn forbidden_sources(&self) -> Vec<String> {
        self.forbidden.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// `cluster/resource` of every source reported and not synced, sorted.
    pub fn unsynced_sources(&self) -> Vec<String> {
        self.sources
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, synced)| !**synced)
                    .map(|((c, r), _)| format!("{c}/{r}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cost source's latest report and state (nothing without a cost source).
    pub fn set_cost(
        &self,
        report: Option<&crate::model::cost::CostReport>,
        status: Option<&crate::model::cost::CostSourceStatus>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(status) = status else { return };
        self.cost_source_ok
            .set(i64::from(status.is_ok() && !status.is_stale(now)));
        if let Some(at) = status.last_success {
            self.cost_source_age
                .set((now - at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        let Some(r) = report else { return };
        let currency = CurrencyLabels {
            currency: r.currency.as_str().into(),
        };
        if let Some(b) = &r.budget {
            self.cost_month_to_date
                .get_or_create(&currency)
                .set(b.month_to_date);
            if let Some(f) = &b.forecast {
                self.cost_forecast.get_or_create(&currency).set(f.month_end);
            }
            self.cost_budget
                .get_or_create(&currency)
                .set(b.monthly_budget);
        }
        for (kind, value) in [
            ("allocated", r.idle_gpu.underutilised_cost),
            ("unallocated", Some(r.idle_gpu.unallocated_cost)),
        ] {
            if let Some(v) = value {
                self.cost_idle_gpu
                    .get_or_create(&IdleLabels {
                        currency: r.currency.as_str().into(),
                        kind: kind.into(),
                    })
                    .set(v);
            }
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// One alert of a webhook delivery: `status` firing/resolved, `outcome` accepted,
    /// duplicate or stale.
    pub fn alert(&self, status: &str, outcome: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                status: status.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// One answered request; `path` is a route template (a bounded set), never a raw path.
    pub fn http_request(&self, path: &str, code: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                path: path.into(),
                code: code.to_string().into(),
            })
            .inc();
    }

    pub fn connection_opened(&self) {
        self.http_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.http_connections.dec();
    }

    /// A connection closed at once because every slot was taken.
    pub fn connection_refused(&self) {
        self.http_connections_refused.inc();
    }

    /// Every metric in the OpenMetrics text format, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A short, bounded label for a refusal's text: budget, kill_switch, read_only, cooldown,
/// halted, not_firing, unauthenticated (the API's audited refusals) or other.
pub fn refusal_reason(why: &str) -> &'static str {
    let w = why.to_ascii_lowercase();
    if w.starts_with("refused unauthenticated") {
        "unauthenticated"
    } else if w.contains("kill switch") {
        "kill_switch"
    } else if w.contains("read-only") || w.contains("read only") {
        "read_only"
    } else if w.contains("disruption budget") || w.contains("budget") {
        "budget"
    } else if w.contains("cooling down") || w.contains("cooldown") {
        "cooldown"
    } else if w.contains("halted") {
        "halted"
    } else if w.contains("fleetdeck is stopping") {
        "stopping"
    } else if w.contains("stopped firing")
        || w.contains("not firing")
        || w.contains("no longer fir")
        || w.contains("resolved")
    {
        "not_firing"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::signal::Signal;

    #[test]
    fn refusals_are_classified_from_the_guards_own_words() {
        for (why, want) in [
            (
                "the kill switch is on ([runbooks] kill_switch, or K in the cockpit)",
                "kill_switch",
            ),
            (
                "fleetdeck runs read-only: every mutation is forbidden",
                "read_only",
            ),
            (
                "disruption budget of cluster prod reached: 2 of 10 nodes are cordoned",
                "budget",
            ),
            (
                "runbook gpu-xid-cordon is cooling down on prod/n1 until 10:00:00Z (set by x)",
                "cooldown",
            ),
            (
                "automation is halted in cluster prod: 5 of 8 nodes are unready (limit 3)",
                "halted",
            ),
            (
                "gpu.xid stopped firing before fleetdeck acted (re-checked after 2s)",
                "not_firing",
            ),
            (
                "refused unauthenticated POST /api/v1/alerts from 10.0.0.9:5123",
                "unauthenticated",
            ),
            (
                "drain node/n1 not started: fleetdeck is stopping (SIGTERM)",
                "stopping",
            ),
            ("the plan changes nothing", "other"),
        ] {
            assert_eq!(refusal_reason(why), want, "{why}");
        }
    }

    #[test]
    fn a_run_with_a_refused_step_is_counted_partial_not_done() {
        use crate::runbook::executor::RunState;
        let m = Metrics::new();
        let partial = RunState::Partial(vec![
            "drain node/gpu-7 refused: cannot delete Pods with local storage".into(),
        ]);
        m.runbook_run("gpu-xid-cordon", partial.outcome());
        m.runbook_run("gpu-xid-cordon", RunState::Failed("x".into()).outcome());
        let text = m.encode();
        assert!(
            text.contains(
                "fleetdeck_runbook_runs_total{runbook=\"gpu-xid-cordon\",outcome=\"partial\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("outcome=\"failed\"} 1"), "{text}");
        assert!(!text.contains("outcome=\"done\""), "{text}");
    }

    #[test]
    fn encoding_is_openmetrics_with_every_family() {
        let m = Metrics::new();
        m.runbook_run("gpu-xid-cordon", "remediated");
        m.guard_refusal("the kill switch is on");
        m.observe_action(Duration::from_millis(300));
        m.set_source_synced("prod", "nodes", false);
        m.alert("firing", "accepted");
        m.http_request("/healthz", 200);
        m.set_leader(true);
        m.set_pending_approvals(2);
        m.approval_decided("denied");
        m.notification_given_up("oncall");
        let text = m.encode();
        for needle in [
            "fleetdeck_pending_approvals 2",
            "fleetdeck_approval_decisions_total{verdict=\"denied\"} 1",
            "fleetdeck_notifications_given_up_total{sink=\"oncall\"} 1",
            "# TYPE fleetdeck_signals gauge",
            "fleetdeck_open_incidents 0",
            "fleetdeck_runbook_runs_total{runbook=\"gpu-xid-cordon\",outcome=\"remediated\"} 1",
            "fleetdeck_guard_refusals_total{reason=\"kill_switch\"} 1",
            "# TYPE fleetdeck_action_duration_seconds histogram",
            "# UNIT fleetdeck_action_duration_seconds seconds",
            "fleetdeck_source_synced{cluster=\"prod\",resource=\"nodes\"} 0",
            "fleetdeck_leader 1",
            "fleetdeck_alerts_total{status=\"firing\",outcome=\"accepted\"} 1",
            "fleetdeck_http_requests_total{path=\"/healthz\",code=\"200\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(m.unsynced_sources(), vec!["prod/nodes".to_string()]);
    }

    #[test]
    fn hostile_label_values_are_escaped_and_cannot_add_samples() {
        let m = Metrics::new();
        let totals = [(
            (
                "alert.x\"} 1\ninjected 7\n#\\\u{1b}[31m\r".to_string(),
                Severity::Critical,
            ),
            1,
        )]
        .into_iter()
        .collect();
        m.recorded(&totals, 1);
        let text = m.encode();
        assert!(
            text.contains(
                r#"fleetdeck_signals_raised_total{kind="alert.x\"} 1\ninjected 7\n#\\\\x1b[31m\\x0d",severity="critical"} 1"#
            ),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("injected")), "{text}");
    }

    #[test]
    fn a_kind_that_stopped_firing_leaves_the_signals_gauge() {
        let m = Metrics::new();
        let signal = |kind: &str| Signal {
            kind: kind.into(),
            severity: crate::model::signal::Severity::Warning,
            subject: Default::default(),
            summary: String::new(),
            evidence: Default::default(),
            action: None,
            first_seen: chrono::Utc::now(),
            dedup_key: kind.into(),
        };
        let snap = |signals: Vec<Signal>| crate::model::Snapshot {
            signals,
            finding_kinds: vec!["gpu.idle".into()],
            ..Default::default()
        };
        m.set_signals(&snap(vec![
            signal("gpu.xid"),
            signal("gpu.xid"),
            signal("node.not_ready"),
            signal("gpu.idle"),
        ]));
        let text = m.encode();
        assert!(
            text.contains(
                "fleetdeck_signals{kind=\"gpu.xid\",severity=\"warning\",class=\"incident\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fleetdeck_signals{kind=\"gpu.idle\",severity=\"warning\",class=\"finding\"} 1"
            ),
            "{text}"
        );
        m.set_signals(&snap(vec![signal("node.not_ready")]));
        let text = m.encode();
        assert!(!text.contains("gpu.xid"), "{text}");
        assert!(text.contains(
            "fleetdeck_signals{kind=\"node.not_ready\",severity=\"warning\",class=\"incident\"} 1"
        ));
        let totals = [(("gpu.xid".to_string(), Severity::Critical), 1)]
            .into_iter()
            .collect();
        m.recorded(&totals, 1);
        m.recorded(&totals, 1);
        let text = m.encode();
        assert!(
            text.contains(
                "fleetdeck_signals_raised_total{kind=\"gpu.xid\",severity=\"critical\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("fleetdeck_incidents_opened_total 1"),
            "{text}"
        );
    }
}
