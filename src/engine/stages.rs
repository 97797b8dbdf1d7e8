//! The stages the engine puts between a source and `state` for every face: what needs every
//! poll of a source, not only the latest snapshot (the endpoints' SLO burn windows and drift),
//! and what is worked out from a source's own data before any face shows it (the cost report's
//! month-end forecast).
//! Sources may not import signals, so the two meet here. May import signals, sources and model.

use tokio::sync::mpsc;

use crate::model::cost::CostUpdate;
use crate::signals::slo::EndpointWindows;
use crate::sources::endpoints::EndpointUpdate;

/// Passes the endpoint source's updates through the SLO and drift detectors, which fill each
/// endpoint's burn and drift from the poll's raw measurements before `state` sees it: sources
/// may not import signals, so the two meet here.
pub fn evaluate_endpoints(
    mut rx: mpsc::Receiver<EndpointUpdate>,
    mut windows: EndpointWindows,
) -> mpsc::Receiver<EndpointUpdate> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(mut u) = rx.recv().await {
            windows.apply(u.index, u.observation.as_ref(), &mut u.endpoint);
            if tx.send(u).await.is_err() {
                break;
            }
        }
    });
    out
}

/// Makes a cost round's month-end budget forecast (`signals::budget`) before `state` keeps the
/// report: the cost source reads spend, the forecast is math over it.
pub fn forecast_budget(mut u: CostUpdate) -> CostUpdate {
    if let Some(report) = u.report.as_mut() {
        forecast_budget_of(report);
    }
    u
}

/// The same stage for a report made on its own (`fleetdeck cost`).
pub fn forecast_budget_of(report: &mut crate::model::cost::CostReport) {
    crate::signals::budget::forecast_budget(report);
}
