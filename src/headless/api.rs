//! The API's request/response endpoints beyond incidents and approvals: a note on an incident,
//! the audit chain (list, verify), the store's figures, a person's manual action (the guard's
//! plan, then the executor performs it once confirmed) and the kill switch. Each is what the
//! local command or the cockpit's link does, over the daemon's own store, executor and guard,
//! and each record names the authenticated caller. May import store, runbook, actions, model
//! and the other headless modules.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::identity::Caller;
use super::server::{ApiState, body_problem, error, not_an_incident, store_problem};
use crate::actions::Mutation;
use crate::model::incident::{Actor, EntryKind, NewEntry, Origin, parse_incident_id};
use crate::runbook::executor::{Executor, PlanStep};
use crate::store::{EntryFilter, EntryKindFilter, StoreError};

/// How long a plan may wait for its confirmation: the cluster it was planned against moves on.
pub const PLAN_TTL: Duration = Duration::from_secs(300);
/// The most entries one audit page returns.
const AUDIT_LIMIT_MAX: usize = 10_000;

/// What a plan's id says: when it was made, whose it is, and a digest of what the guard
/// planned. A plan is held nowhere: the replica that takes the confirmation (whichever one a
/// Service sends it to) plans the action again and performs it only when the new plan is the
/// one the person saw.
#[derive(Debug, Clone, PartialEq)]
struct PlanId {
    issued_ms: i64,
    by: String,
    digest: String,
}

impl PlanId {
    fn new(issued_ms: i64, by: &str, cluster: &str, step: &PlanStep) -> Self {
        Self {
            issued_ms,
            by: person_tag(by),
            digest: plan_digest(issued_ms, by, cluster, step),
        }
    }

    fn parse(id: &str) -> Option<Self> {
        let mut parts = id.trim().split('-');
        let issued_ms = i64::from_str_radix(parts.next()?, 16).ok()?;
        let by = parts.next()?.to_string();
        let digest = parts.next()?.to_string();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (parts.next().is_none() && hex(&by, 8) && hex(&digest, 32)).then_some(Self {
            issued_ms,
            by,
            digest,
        })
    }

    fn text(&self) -> String {
        format!("{:x}-{}-{}", self.issued_ms, self.by, self.digest)
    }
}

fn sha256_hex(parts: &[&[u8]], chars: usize) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        // Each part's length first, so that no two different lists hash alike.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(chars)
        .collect()
}

/// Who a plan is for, as a short tag (the id is shown and sent; the name need not be).
fn person_tag(by: &str) -> String {
    sha256_hex(&[b"person", by.as_bytes()], 8)
}

/// What the person was shown: the action, its cluster, the guard's summary and blast radius
/// (the pods a drain evicts, the PDBs that block it, the gang jobs hit).
fn plan_digest(issued_ms: i64, by: &str, cluster: &str, step: &PlanStep) -> String {
    let mutation = serde_json::to_string(&step.intent).unwrap_or_default();
    let blast = serde_json::to_string(&step.blast).unwrap_or_default();
    sha256_hex(
        &[
            b"plan",
            &issued_ms.to_be_bytes(),
            by.as_bytes(),
            cluster.as_bytes(),
            mutation.as_bytes(),
            step.summary.as_bytes(),
            blast.as_bytes(),
        ],
        32,
    )
}

/// Why the plan `id` may not be confirmed by `by` at `now_ms` before it is planned again: it is
/// not a plan id, it is someone else's, or it expired.
fn check_plan_id(id: &str, by: &str, now_ms: i64) -> Result<PlanId, (StatusCode, String)> {
    let Some(plan) = PlanId::parse(id) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!(
                "{id:?} is not a plan id of this daemon's; POST /api/v1/actions/plan makes one"
            ),
        ));
    };
    if plan.by != person_tag(by) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "plan {id:?} was made for another person; only the person who saw the plan confirms it"
            ),
        ));
    }
    let age_ms = now_ms - plan.issued_ms;
    let ttl_ms = i64::try_from(PLAN_TTL.as_millis()).unwrap_or(i64::MAX);
    if age_ms >= ttl_ms {
        return Err((
            StatusCode::GONE,
            format!(
                "plan {id:?} expired ({} after it was made); plan it again, the cluster may have changed",
                humantime::format_duration(PLAN_TTL)
            ),
        ));
    }
    if age_ms < -PLAN_CLOCK_SKEW_MS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "plan {id:?} is dated in the future: replicas' clocks disagree, or the id was altered; plan it again"
            ),
        ));
    }
    Ok(plan)
}

/// How far replicas' clocks may disagree when one confirms another's plan.
const PLAN_CLOCK_SKEW_MS: i64 = 60_000;

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
    let (step, disruption) = match preview(&executor, &cluster, &mutation).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    Json(plan_answer(&caller.name, &cluster, &step, &disruption)).into_response()
}

/// The guard's plan of `mutation` and the cluster's disruption, off the async threads.
async fn preview(
    executor: &Executor,
    cluster: &str,
    mutation: &Mutation,
) -> Result<(PlanStep, serde_json::Value), Box<Response>> {
    let (executor, cluster, mutation) = (executor.clone(), cluster.to_string(), mutation.clone());
    tokio::task::spawn_blocking(move || {
        let step = executor.preview(&cluster, &mutation);
        let disruption = executor.guard().disruption(&executor.latest(), &cluster);
        (step, serde_json::to_value(disruption).unwrap_or_default())
    })
    .await
    .map_err(|e| Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())))
}

/// A plan as the API answers it, with an id that any replica can check.
fn plan_answer(
    by: &str,
    cluster: &str,
    step: &PlanStep,
    disruption: &serde_json::Value,
) -> serde_json::Value {
    let id = PlanId::new(Utc::now().timestamp_millis(), by, cluster, step);
    json!({
        "plan_id": id.text(),
        "cluster": cluster,
        "step": step,
        // How many of the cluster's nodes are cordoned or unready, against the guard's budget:
        // what the cockpit's confirmation shows beside the plan.
        "disruption": disruption,
        "expires_in_s": PLAN_TTL.as_secs(),
    })
}

/// `POST /api/v1/actions/PLAN_ID/confirm` `{"cluster", "mutation"}` → `{"outcome",
/// "summary"}`: the replica plans the action again, and when the plan is the one the caller
/// saw (same action, summary and blast radius, made for them within `PLAN_TTL`) and was not
/// confirmed before (a sighting in the shared store), the executor performs it through its
/// guard, recorded as the caller's. A plan that changed meanwhile is a 409 carrying the new
/// plan to confirm instead.
async fn confirm(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(plan_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let PlanBody { cluster, mutation } = match read_json(
        &state,
        body,
        r#"{"cluster": "...", "mutation": {...}} as the plan was asked for"#,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(executor) = state.executor.clone() else {
        return no_executor();
    };
    let now = Utc::now();
    let seen = match check_plan_id(&plan_id, &caller.name, now.timestamp_millis()) {
        Ok(p) => p,
        Err((code, why)) => return error(code, why),
    };
    let (step, disruption) = match preview(&executor, &cluster, &mutation).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if PlanId::new(seen.issued_ms, &caller.name, &cluster, &step) != seen {
        return (
            StatusCode::CONFLICT,
            Json(json!({
                "outcome": "replanned",
                "error": format!(
                    "the plan changed since it was shown (or it was for another action): now {}; look at the new plan and confirm it",
                    step.summary
                ),
                "plan": plan_answer(&caller.name, &cluster, &step, &disruption),
            })),
        )
            .into_response();
    }
    let key = format!("plan {}", seen.text());
    let expires = now + chrono::Duration::from_std(PLAN_TTL).unwrap_or_default();
    let store = state.store.clone();
    match blocking(move || store.first_sighting(&key, now, expires)).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "plan {plan_id:?} was confirmed already (a plan is performed once); plan it again to repeat it"
                ),
            );
        }
        Err(r) => return *r,
    }
    let done = tokio::task::spawn_blocking(move || {
        executor.manual(&cluster, &mutation, &caller.name, None)
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

    fn step(summary: &str) -> PlanStep {
        PlanStep {
            intent: cordon(),
            summary: summary.into(),
            blast: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_plan_id_is_checked_for_its_person_age_and_content() {
        let now = 1_800_000_000_000;
        let id = PlanId::new(now, "ana", "prod", &step("cordon node gpu-a-1")).text();
        assert_eq!(PlanId::parse(&id).map(|p| p.text()), Some(id.clone()));
        assert_eq!(
            check_plan_id(&id, "bo", now).err().map(|e| e.0),
            Some(StatusCode::FORBIDDEN)
        );
        let seen = check_plan_id(&id, "ana", now + 1_000).unwrap_or_else(|e| panic!("{e:?}"));
        // The same plan made again is the one seen; a changed summary, cluster or action is not.
        assert_eq!(
            PlanId::new(seen.issued_ms, "ana", "prod", &step("cordon node gpu-a-1")),
            seen
        );
        assert_ne!(
            PlanId::new(seen.issued_ms, "ana", "prod", &step("cordon node gpu-a-2")),
            seen
        );
        assert_ne!(
            PlanId::new(
                seen.issued_ms,
                "ana",
                "staging",
                &step("cordon node gpu-a-1")
            ),
            seen
        );
        let ttl = i64::try_from(PLAN_TTL.as_millis()).unwrap_or(i64::MAX);
        assert_eq!(
            check_plan_id(&id, "ana", now + ttl).err().map(|e| e.0),
            Some(StatusCode::GONE)
        );
        assert_eq!(
            check_plan_id(&id, "ana", now - 2 * PLAN_CLOCK_SKEW_MS)
                .err()
                .map(|e| e.0),
            Some(StatusCode::BAD_REQUEST)
        );
        for bad in ["", "abc", "zz-00000000-0", &format!("{id}-x")] {
            assert_eq!(
                check_plan_id(bad, "ana", now).err().map(|e| e.0),
                Some(StatusCode::NOT_FOUND),
                "{bad}"
            );
        }
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
