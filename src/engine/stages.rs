//! The stages the engine puts between a source and `state` for every face: what needs every
//! poll of a source, not only the latest snapshot (the endpoints' SLO burn windows and drift).
//! Sources may not import signals, so the two meet here. May import signals, sources and model.

use tokio::sync::mpsc;

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
