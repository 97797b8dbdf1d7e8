//! KServe's InferenceService controller, for what the cockpit reads: predictor revisions and
//! the canary traffic split. Imports only the sim's own modules; nothing from the client side.

use serde_json::json;

use super::{ClusterState, obj_str};
use crate::sim::resources::Kind;

impl ClusterState {
    /// KServe's controller, for what the cockpit reads: a spec change other than the canary
    /// percentage rolls out a new predictor revision; `canaryTrafficPercent` splits traffic
    /// between the latest ready and the previously rolled-out revision.
    pub fn reconcile_inference_service(&mut self, ns: &str, name: &str) {
        let Some(mut isvc) = self.store.get_value(Kind::InferenceService, ns, name) else {
            return;
        };
        let pred = isvc["status"]["components"]["predictor"].clone();
        let latest = obj_str(&pred, "/latestReadyRevision").to_string();
        let mut spec_sans_canary = isvc["spec"]["predictor"].clone();
        if let Some(m) = spec_sans_canary.as_object_mut() {
            m.remove("canaryTrafficPercent");
        }
        let rolled_spec = isvc["metadata"]["annotations"]["sim.fleetdeck.dev/rolled-spec"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let spec_text = spec_sans_canary.to_string();
        let mut previous = obj_str(&pred, "/previousRolledoutRevision").to_string();
        let mut latest_rev = latest.clone();
        if !rolled_spec.is_empty() && rolled_spec != spec_text {
            let n = latest
                .rsplit('-')
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(1)
                + 1;
            previous = latest.clone();
            latest_rev = format!("{name}-predictor-{n:05}");
        }
        isvc["metadata"]["annotations"]["sim.fleetdeck.dev/rolled-spec"] = json!(spec_text);
        let canary = isvc["spec"]["predictor"]["canaryTrafficPercent"].as_u64();
        let traffic = match canary {
            Some(p) if p < 100 && !previous.is_empty() => json!([
                {"revisionName": latest_rev, "percent": p, "latestRevision": true, "tag": "latest"},
                {"revisionName": previous, "percent": 100 - p, "latestRevision": false, "tag": "prev"},
            ]),
            _ => json!([{"revisionName": latest_rev, "percent": 100, "latestRevision": true}]),
        };
        let p = &mut isvc["status"]["components"]["predictor"];
        p["latestReadyRevision"] = json!(latest_rev);
        p["latestCreatedRevision"] = json!(latest_rev);
        if !previous.is_empty() {
            p["previousRolledoutRevision"] = json!(previous);
        }
        if canary.is_none_or(|c| c >= 100) {
            p["latestRolledoutRevision"] = json!(latest_rev);
        }
        p["traffic"] = traffic;
        isvc["status"]["observedGeneration"] = isvc["metadata"]["generation"].clone();
        self.store.replace(Kind::InferenceService, isvc);
    }
}
