//! What the kube source reads from the API server: a list page and a watch event of every
//! projected kind, deserialized into the projections and turned into records.
#![no_main]

use fleetdeck::sources::kube::{
    DaemonSetObject, DeploymentObject, EventObject, InferenceServiceObject, Interner, JobObject,
    NodeObject, PdbObject, PodObject, Projection, StatefulSetObject,
};
use kube::api::WatchEvent;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The shape of a list response, as the source reads it (its own type is private).
#[derive(Deserialize)]
#[serde(bound = "T: serde::de::DeserializeOwned")]
struct List<T> {
    #[serde(default)]
    items: Vec<T>,
}

fn project<P: Projection>(body: &[u8], interner: &mut Interner) {
    if let Ok(p) = serde_json::from_slice::<P>(body) {
        let _ = p.resource_version();
        let _ = p.ns_name();
        let _ = p.into_record(interner);
    }
    if let Ok(list) = serde_json::from_slice::<List<P>>(body) {
        for p in list.items {
            let _ = p.into_record(interner);
        }
    }
    match serde_json::from_slice::<WatchEvent<P>>(body) {
        Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
            let _ = p.into_record(interner);
        }
        Ok(WatchEvent::Deleted(p)) => {
            let _ = p.ns_name();
        }
        _ => {}
    }
}

fuzz_target!(|body: &[u8]| {
    let mut interner = Interner::default();
    project::<NodeObject>(body, &mut interner);
    project::<PodObject>(body, &mut interner);
    project::<DeploymentObject>(body, &mut interner);
    project::<PdbObject>(body, &mut interner);
    project::<EventObject>(body, &mut interner);
    project::<InferenceServiceObject>(body, &mut interner);
    project::<StatefulSetObject>(body, &mut interner);
    project::<DaemonSetObject>(body, &mut interner);
    project::<JobObject>(body, &mut interner);
});
