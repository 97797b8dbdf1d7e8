//! The API's request/response endpoints beyond incidents and approvals: a note on an incident,
//! the audit chain (list, verify), the store's figures, a person's manual action (the guard's
//! plan, then the executor performs it once confirmed) and the kill switch. Each is what the
//! local command or the cockpit's link does, over the daemon's own store, executor and guard,
//! and each record names the authenticated caller. May import store, runbook, actions, model
//! and the other headless modules.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use super::identity::Caller;
use super::server::{ApiState, body_problem, error, not_an_incident, store_problem};
use crate::actions::Mutation;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin, parse_incident_id};
use crate::store::{EntryFilter, EntryKindFilter, StoreError};

/// How long a plan may wait for its confirmation: the cluster it was planned against moves on.
pub const PLAN_TTL: Duration = Duration::from_secs(300);
/// Plans held at once; the oldest goes first beyond it.
const PLANS_KEPT: usize = 256;
/// The most entries one audit page returns.
const AUDIT_LIMIT_MAX: usize = 10_000;

/// A planned action waiting for the person who asked for it to confirm it.
#[derive(Debug, Clone)]
pub struct HeldPlan {
    cluster: String,
    mutation: Mutation,
    by: String,
    at: Instant,
}

/// The plans awaiting their confirmation, by plan id.
#[derive(Debug, Default)]
pub struct Plans {
    held: Mutex<HashMap<String, HeldPlan>>,
}

impl Plans {
    fn hold(&self, plan: HeldPlan) -> String {
        let id: String = {
            let mut rng = rand::thread_rng();
            (0..24)
                .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
                .collect()
        };
        let mut m = self.held.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, p| p.at.elapsed() < PLAN_TTL);
        if m.len() >= PLANS_KEPT
            && let Some(oldest) = m.iter().min_by_key(|(_, p)| p.at).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        m.insert(id.clone(), plan);
        id
    }

    /// The plan `id`, taken (a plan is performed once); why not when it is unknown, expired or
    /// someone else's.
    fn take(&self, id: &str, by: &str) -> Result<HeldPlan, (StatusCode, String)> {
        let mut m = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(id) {
            None => Err((
                StatusCode::NOT_FOUND,
                format!(
                    "there is no plan {id:?}: it was confirmed already, or never made; POST /api/v1/actions/plan makes one"
                ),
            )),
            Some(p) if p.at.elapsed() >= PLAN_TTL => {
                m.remove(id);
                Err((
                    StatusCode::GONE,
                    format!(
                        "plan {id:?} expired ({} after it was made); plan it again, the cluster may have changed",
                        humantime::format_duration(PLAN_TTL)
                    ),
                ))
            }
            Some(p) if p.by != by => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "plan {id:?} is {}'s; only the person who saw the plan confirms it",
                    p.by
                ),
            )),
            Some(_) => m
                .remove(id)
                .ok_or((StatusCode::NOT_FOUND, format!("there is no plan {id:?}"))),
        }
    }
}

/// The routes this module adds, for the guarded section of the router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/incidents/{id}/notes", post(note))
        .route("/api/v1/audit", get(audit_list))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/store/stats", get(store_stats))
        .route("/api/v1/actions/plan", post(plan))
        .route("/api/v1/actions/{plan_id}/confirm", post(confirm))
        .route(
            "/api/v1/kill-switch",
            get(kill_switch_state).post(kill_switch),
        )
}

fn read_json<T: serde::de::DeserializeOwned>(
    state: &ApiState,
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, Box<Response>> {
    let body = body.map_err(|r| Box::new(body_problem(state, &r)))?;
    serde_json::from_slice(&body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the body is not {shape}: {e}"),
        ))
    })
}

/// Runs store (or executor) work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Box<Response>> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(store_problem(e))),
        Err(e) => Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

/// `POST /api/v1/incidents/ID/notes` `{"text": "…"}` → 201 `{"entry": …}`: as `fleetdeck
/// incident note` writes it, by the caller.
async fn note(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let NoteBody { text } = match read_json(&state, body, r#"{"text": "..."}"#) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the note's text is empty");
    }
    let Some(number) = parse_incident_id(&id) else {
        return not_an_incident(&id);
    };
    let store = state.store.clone();
    match blocking(move || {
        store.require_incident(number)?;
        store.append(
            NewEntry::new(
                EntryKind::Note,
                Actor::User(caller.name),
                Origin::Headless,
                text,
            )
            .on_incident(number),
        )
    })
    .await
    {
        Ok(entry) => (StatusCode::CREATED, Json(json!({ "entry": entry }))).into_response(),
        Err(r) => *r,
    }
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `audit list --kind`'s names.
fn kind_filter(name: &str) -> Option<EntryKindFilter> {
    Some(match name {
        "refusal" => EntryKindFilter::Refusal,
        "checkpoint" => EntryKindFilter::Checkpoint,
        "signal" => EntryKindFilter::Kind(EntryKind::Signal),
        "decision" => EntryKindFilter::Kind(EntryKind::Decision),
        "action" => EntryKindFilter::Kind(EntryKind::Action),
        "approval" => EntryKindFilter::Kind(EntryKind::Approval),
        "note" => EntryKindFilter::Kind(EntryKind::Note),
        "status" => EntryKindFilter::Kind(EntryKind::Status),
        _ => return None,
    })
}

/// `GET /api/v1/audit?kind=&since=RFC3339&limit=` → `{"entries": […]}`, oldest first: what
/// `fleetdeck audit list` prints.
async fn audit_list(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(r) => return error(StatusCode::BAD_REQUEST, r.body_text()),
    };
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) => match kind_filter(k) {
            Some(f) => Some(f),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "kind={k:?} is not refusal, checkpoint, signal, decision, action, approval, note or status"
                    ),
                );
            }
        },
    };
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("since={s:?} is not an RFC 3339 time (2026-11-28T09:00:00Z): {e}"),
                );
            }
        },
    };
    let filter = EntryFilter {
        kind,
        since,
        limit: Some(q.limit.unwrap_or(50).min(AUDIT_LIMIT_MAX)),
    };
    let store = state.store.clone();
    match blocking(move || store.entries(&filter)).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(r) => *r,
    }
}

/// `GET /api/v1/audit/verify` → the chain's report (`passed` says whether it holds), as
/// `fleetdeck audit verify -o json` prints it.
async fn audit_verify(State(state): State<ApiState>) -> Response {
    let store = state.store.clone();
    match blocking(move || store.verify()).await {
        Ok(report) => {
            let passed = report.passed();
            let mut v = json!(report);
            v["passed"] = json!(passed);
            Json(v).into_response()
        }
        Err(r) => *r,
    }
}

/// `GET /api/v1/store/stats`: `fleetdeck store stats -o json` of the daemon's store.
async fn store_stats(State(state): State<ApiState>) -> Response {
    let store = state.store.clone();
    match blocking(move || store.stats()).await {
        Ok(stats) => Json(json!(stats)).into_response(),
        Err(r) => *r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    cluster: String,
    mutation: Mutation,
}

fn no_executor() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this daemon runs no runbook executor: manual actions and the kill switch are off",
    )
}

/// `POST /api/v1/actions/plan` `{"cluster", "mutation"}` → `{"plan_id", "cluster", "step",
/// "disruption"}`:
/// the guard's plan of the action (what the cockpit's confirmation shows), held for the caller
/// to confirm within `PLAN_TTL`.
async fn plan(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let PlanBody { cluster, mutation } = match read_json(
        &state,
        body,
        r#"{"cluster": "...", "mutation": {"action": "cordon", ...}}"#,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(executor) = state.executor.clone() else {
        return no_executor();
    };
    let planned = {
        let (cluster, mutation) = (cluster.clone(), mutation.clone());
        tokio::task::spawn_blocking(move || {
            let step = executor.preview(&cluster, &mutation);
            let disruption = executor.guard().disruption(&executor.latest(), &cluster);
            (step, disruption)
        })
        .await
    };
    let (step, disruption) = match planned {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let plan_id = state.plans.hold(HeldPlan {
        cluster: cluster.clone(),
        mutation,
        by: caller.name,
        at: Instant::now(),
    });
    Json(json!({
        "plan_id": plan_id,
        "cluster": cluster,
        "step": step,
        // How many of the cluster's nodes are cordoned or unready, against the guard's budget:
        // what the cockpit's confirmation shows beside the plan.
        "disruption": disruption,
        "expires_in_s": PLAN_TTL.as_secs(),
    }))
    .into_response()
}

/// `POST /api/v1/actions/PLAN_ID/confirm` → `{"outcome", "summary"}`: the executor performs the
/// planned action through its guard, recorded as the caller's.
async fn confirm(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(plan_id): Path<String>,
) -> Response {
    let Some(executor) = state.executor.clone() else {
        return no_executor();
    };
    let held = match state.plans.take(plan_id.trim(), &caller.name) {
        Ok(p) => p,
        Err((code, why)) => return error(code, why),
    };
    let done = tokio::task::spawn_blocking(move || {
        executor.manual(&held.cluster, &held.mutation, &caller.name, None)
    })
    .await;
    match done {
        Ok(Ok(report)) => Json(json!({
            "outcome": report.outcome.name(),
            "summary": report.summary,
        }))
        .into_response(),
        // The guard's refusal (or no client for the cluster): recorded by the executor.
        Ok(Err(why)) => (
            StatusCode::CONFLICT,
            Json(json!({ "outcome": "refused", "error": why })),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    on: bool,
}

/// `GET /api/v1/kill-switch` → `{"on", "reason"}`.
async fn kill_switch_state(State(state): State<ApiState>) -> Response {
    let Some(executor) = state.executor.clone() else {
        return no_executor();
    };
    let reason = executor.guard().killed();
    Json(json!({ "on": reason.is_some(), "reason": reason })).into_response()
}

/// `POST /api/v1/kill-switch` `{"on": bool}`: the guard's switch (the cockpit's K), recorded
/// in the audit chain with the caller's name.
async fn kill_switch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let KillBody { on } = match read_json(&state, body, r#"{"on": true|false}"#) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(executor) = state.executor.clone() else {
        return no_executor();
    };
    executor.guard().set_kill(on);
    let reason = executor.guard().killed();
    let entry = NewEntry::new(
        EntryKind::Decision,
        Actor::User(caller.name.clone()),
        Origin::Headless,
        format!(
            "kill switch turned {} by {}",
            if on { "on" } else { "off" },
            caller.name
        ),
    );
    let store = state.store.clone();
    if let Err(r) = blocking(move || store.append(entry)).await {
        return *r;
    }
    Json(json!({ "on": reason.is_some(), "reason": reason })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cordon() -> Mutation {
        serde_json::from_value(json!({"action": "cordon", "node": "gpu-a-1"}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_plan_is_confirmed_once_by_its_own_person() {
        let plans = Plans::default();
        let id = plans.hold(HeldPlan {
            cluster: "prod".into(),
            mutation: cordon(),
            by: "ana".into(),
            at: Instant::now(),
        });
        assert_eq!(
            plans.take(&id, "bo").err().map(|e| e.0),
            Some(StatusCode::FORBIDDEN)
        );
        assert!(plans.take(&id, "ana").is_ok());
        assert_eq!(
            plans.take(&id, "ana").err().map(|e| e.0),
            Some(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn audit_kinds_are_the_commands_names() {
        for k in [
            "refusal",
            "checkpoint",
            "signal",
            "decision",
            "action",
            "approval",
            "note",
            "status",
        ] {
            assert!(kind_filter(k).is_some(), "{k}");
        }
        assert!(kind_filter("everything").is_none());
    }
}
