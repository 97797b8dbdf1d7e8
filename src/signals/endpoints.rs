//! `endpoint.down`, `slo.fast_burn`, `slo.slow_burn` and `endpoint.drift`: a model endpoint's
//! probe failing, its error budget burning (the windows are [`super::slo`]'s) and its outputs
//! drifting (PSI, [`super::drift`]). Imports model and config.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::detector::{Context, Detector, Input, Sightings, met, signal};
use super::patience::Observation;
use crate::model::endpoint::{BurnSeverity, DriftBand, EndpointHealth, EndpointModel, SloKind};
use crate::model::signal::{Severity, Subject};

/// An endpoint's health, SLO burn and drift; each signal names the Deployment serving it.
#[derive(Debug, Default)]
pub struct EndpointDetector {
    sightings: Sightings,
}

impl Detector for EndpointDetector {
    fn kinds(&self) -> &'static [&'static str] {
        &[
            "endpoint.down",
            "slo.fast_burn",
            "slo.slow_burn",
            "endpoint.drift",
        ]
    }

    fn observe(&mut self, input: Input<'_>, cx: &Context<'_>, out: &mut Vec<Observation>) {
        let Input::Fleet(snap) = input else { return };
        for e in &snap.endpoints {
            self.endpoint(e, cx.now, out);
        }
        self.sightings.forget_unseen();
    }
}

impl EndpointDetector {
    fn endpoint(&mut self, e: &EndpointModel, now: DateTime<Utc>, out: &mut Vec<Observation>) {
        let from = out.len();
        self.endpoint_signals(e, now, out);
        // The Deployment serving it: an endpoint's outage and its pods' crash loop after a
        // rollout are one incident (`store::incident_group`).
        if let Some(s) = e
            .serving
            .as_ref()
            .filter(|s| s.kind.eq_ignore_ascii_case("Deployment"))
        {
            let serving = json!(format!("{}/{}", s.namespace, s.name));
            for o in &mut out[from..] {
                o.signal
                    .evidence
                    .insert("serving_deployment".into(), serving.clone());
            }
        }
    }

    fn endpoint_signals(
        &mut self,
        e: &EndpointModel,
        now: DateTime<Utc>,
        out: &mut Vec<Observation>,
    ) {
        let cluster = e
            .serving
            .as_ref()
            .map(|s| s.cluster.clone())
            .unwrap_or_default();
        let base = Subject {
            cluster,
            endpoint: Some(e.name.clone()),
            ..Subject::default()
        };
        if matches!(
            e.health,
            EndpointHealth::Dead | EndpointHealth::Unreachable | EndpointHealth::NotReady
        ) {
            let key = format!("endpoint.down:{}", base.describe());
            let first = self.sightings.seen(&key, now);
            let error = e.probe.as_ref().and_then(|p| p.error.clone());
            out.push(met(signal(
                "endpoint.down",
                Severity::Critical,
                base.clone(),
                format!(
                    "endpoint {} is {:?}{}",
                    e.name,
                    e.health,
                    error
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                json!({"health": e.health, "last_healthy": e.last_healthy, "error": error}),
                first,
                Some("check the serving pods and roll back the last change if it caused this"),
            )));
        }
        for burn in [&e.availability_burn, &e.latency_burn]
            .into_iter()
            .flatten()
        {
            let Some(sev) = burn.severity() else { continue };
            let (kind, severity) = match sev {
                BurnSeverity::Page => ("slo.fast_burn", Severity::Critical),
                BurnSeverity::Ticket => ("slo.slow_burn", Severity::Warning),
            };
            let slo = match burn.kind {
                SloKind::Availability => "availability",
                SloKind::Latency => "latency",
            };
            let subject = Subject {
                object: Some(format!("slo/{slo}")),
                ..base.clone()
            };
            let key = format!("{kind}:{}", subject.describe());
            let first = self.sightings.seen(&key, now);
            let fired = &burn.alerts[0];
            out.push(met(signal(
                kind,
                severity,
                subject,
                format!(
                    "{} {slo} SLO ({}) burns at {:.1}× over {} and {:.1}× over {}",
                    e.name,
                    burn.objective,
                    fired.long.burn_rate.unwrap_or(0.0),
                    humantime::format_duration(Duration::from_secs(fired.long.window_secs as u64)),
                    fired.short.burn_rate.unwrap_or(0.0),
                    humantime::format_duration(Duration::from_secs(fired.short.window_secs as u64)),
                ),
                json!({"slo": slo, "objective": burn.objective, "threshold": fired.threshold,
                    "long_window_secs": fired.long.window_secs, "long_burn": fired.long.burn_rate,
                    "short_window_secs": fired.short.window_secs, "short_burn": fired.short.burn_rate,
                    "error_rate": e.metrics.as_ref().map(|m| m.error_rate), "p99_ms": e.metrics.as_ref().map(|m| m.latency_p99_ms)}),
                first,
                Some("roll the serving deployment back if a rollout started this; otherwise scale out"),
            )));
        }
        if let Some(d) = &e.drift
            && d.band != DriftBand::None
        {
            let severity = if d.band == DriftBand::Significant {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let subject = Subject {
                object: Some(format!("metric/{}", d.metric)),
                ..base.clone()
            };
            let key = format!("endpoint.drift:{}", subject.describe());
            let first = self.sightings.seen(&key, now);
            out.push(met(signal(
                "endpoint.drift",
                severity,
                subject,
                format!("{} drift on {}: PSI {:.3} ({:?})", e.name, d.metric, d.psi, d.band),
                json!({"metric": d.metric, "psi": d.psi, "band": d.band, "baseline_count": d.baseline_count, "current_count": d.current_count}),
                first,
                Some("compare the current inputs with the baseline; retrain or roll back the model"),
            )));
        }
    }
}
