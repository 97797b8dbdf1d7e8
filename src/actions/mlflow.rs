//! Rolling a model back in an MLflow model registry: the serving alias (`champion`) moves back
//! to the previous version through MLflow's REST API (`registered-models/alias`), the version
//! it left is tagged `fleetdeck.rolled_back` (a later rollback skips it), the move is kept in
//! the registered model's `fleetdeck.alias_history.ALIAS` tag, and a serving object that pins
//! the model's URI (`models:/NAME/VERSION` in a container's env or args, or an
//! InferenceService's `storageUri`) is patched to the new version; one that resolves the alias
//! (`models:/NAME@ALIAS`) in a Deployment gets a rollout restart so its pods load it.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::api::{Call, PatchBody};
use super::{ActionContext, ActionError, ActionOutcome, ActionReport, ObjectKind};
use crate::model::endpoint::ServingObject;
use crate::model::incident::{ApiOutcome, FieldChange};
use crate::model::registry::{
    ALIAS_HISTORY_LEN, AliasMove, ROLLED_BACK_TAG, history_tag, previous_version, read_model, wire,
};

/// The query of a POST: none, its body says it all.
const NO_QUERY: [(&str, &str); 0] = [];

/// A client of one MLflow tracking server's model registry, for the changes fleetdeck makes
/// there.
#[derive(Clone)]
pub struct ModelRegistry {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What a rollback of a registered model asks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelRollback {
    /// The endpoint it serves, for messages.
    pub endpoint: String,
    pub model: String,
    pub alias: String,
    /// The version to move the alias to; `None`: the newest READY one below the current that
    /// no rollback came from.
    pub to_version: Option<u64>,
    /// The serving object, patched too where it pins the model's URI.
    pub serving: Option<ServingObject>,
    /// Who asks (`runbook NAME`, `user NAME`), for the alias's history.
    pub by: String,
}

impl ModelRegistry {
    /// `base` is the tracking server's URL; `token` is sent as a bearer token; `http` is the
    /// caller's client (its CA roots and timeout).
    pub fn with_client(base: &str, token: Option<String>, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.trim().trim_end_matches('/').to_string(),
            token,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &(impl serde::Serialize + ?Sized),
        body: Option<Value>,
        outcomes: &mut Vec<ApiOutcome>,
    ) -> Result<Value, ActionError> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let request = format!("{method} {url}");
        let mut req = self.http.request(method.clone(), &url).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ActionError::Registry {
            request: request.clone(),
            message: format!("{e} (is the MLflow server up, and is [mlflow] tracking_uri right?)"),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ActionError::Registry {
            request: request.clone(),
            message: format!("reading the answer: {e}"),
        })?;
        let err = serde_json::from_slice::<wire::Error>(&bytes).ok();
        if method != reqwest::Method::GET {
            outcomes.push(ApiOutcome {
                at: Utc::now(),
                request: request.clone(),
                status: status.as_u16(),
                reason: err
                    .as_ref()
                    .map(|e| e.error_code.clone())
                    .unwrap_or_default(),
                message: err.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
                pdb: None,
            });
        }
        if !status.is_success() {
            let message = match err {
                Some(e) if !e.error_code.is_empty() => format!("{}: {}", e.error_code, e.message),
                _ => String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            };
            return Err(ActionError::Registry {
                request,
                message: format!("HTTP {}: {message}", status.as_u16()),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ActionError::Registry {
            request,
            message: format!("not MLflow's answer: {e}"),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &(impl serde::Serialize + ?Sized),
    ) -> Result<T, ActionError> {
        let value = self
            .call(reqwest::Method::GET, path, query, None, &mut Vec::new())
            .await?;
        serde_json::from_value(value).map_err(|e| ActionError::Registry {
            request: format!("GET {path}"),
            message: format!("not MLflow's answer: {e}"),
        })
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        outcomes: &mut Vec<ApiOutcome>,
    ) -> Result<(), ActionError> {
        self.call(reqwest::Method::POST, path, &NO_QUERY, Some(body), outcomes)
            .await
            .map(|_| ())
    }

    async fn read(
        &self,
        model: &str,
    ) -> Result<(wire::RegisteredModel, Vec<wire::ModelVersion>), ActionError> {
        let m: wire::GetRegisteredModel = self
            .get("registered-models/get", &[("name", model)])
            .await?;
        let versions: wire::SearchModelVersions = self
            .get("model-versions/search", &wire::versions_query(model, 200))
            .await?;
        Ok((m.registered_model, versions.model_versions))
    }
}

/// Moves `req.alias` of `req.model` back (to `req.to_version`, or the previous good version)
/// and rolls the serving object where it pins the model. In a dry run the registry is only read and the serving object's patch is sent with
/// `dryRun=All`.
pub async fn rollback_model(
    ctx: &ActionContext,
    req: &ModelRollback,
) -> Result<ActionReport, ActionError> {
    let by = req.by.as_str();
    let target = format!("registeredmodel/{}@{}", req.model, req.alias);
    let mut report = ActionReport::new(ctx, "rollback", target.clone());
    let Some(registry) = ctx.registry.as_ref() else {
        return Err(ActionError::InvalidInput {
            what: "model registry".into(),
            why: format!(
                "endpoint {} names registered model {} but no model registry is configured: set [mlflow] tracking_uri",
                req.endpoint, req.model
            ),
        });
    };
    let (model, versions) = registry.read(&req.model).await?;
    let (current, views, history) = read_model(&model, &versions, &req.alias);
    let Some(current) = current else {
        return Ok(report.finish(
            ActionOutcome::Refused(format!(
                "alias {} of registered model {} is not set: there is no serving version to roll back from",
                req.alias, req.model
            )),
            format!("{target}: alias not set; nothing rolled back"),
        ));
    };
    let to = match req.to_version {
        Some(v) => match views.iter().find(|x| x.version == v) {
            Some(x) if x.status == "READY" => v,
            Some(x) => {
                return Ok(report.finish(
                    ActionOutcome::Refused(format!(
                        "version {v} of {} is {}, not READY",
                        req.model, x.status
                    )),
                    format!("{target}: version {v} is not READY; nothing rolled back"),
                ));
            }
            None => {
                let known: Vec<String> = views.iter().map(|x| x.version.to_string()).collect();
                return Ok(report.finish(
                    ActionOutcome::Refused(format!(
                        "registered model {} has no version {v} (versions: {})",
                        req.model,
                        known.join(", ")
                    )),
                    format!("{target}: no version {v}; nothing rolled back"),
                ));
            }
        },
        None => match previous_version(current, &views) {
            Some(v) => v,
            None => {
                return Ok(report.finish(
                    ActionOutcome::Refused(format!(
                        "registered model {} has no READY version before {current} that fleetdeck has not rolled back from",
                        req.model
                    )),
                    format!("{target}: no earlier version than {current}; nothing rolled back"),
                ));
            }
        },
    };
    if to == current {
        return Ok(report.finish(
            ActionOutcome::NoOp(format!(
                "alias {} already points at version {to}",
                req.alias
            )),
            format!("{target} already serves version {to}"),
        ));
    }
    report.changes.push(FieldChange {
        object: format!("registeredmodel/{}", req.model),
        field: format!("aliases.{}", req.alias),
        before: Some(json!(current.to_string())),
        after: Some(json!(to.to_string())),
    });
    let now = Utc::now();
    // Why a tag that explains the move could not be written (the move itself stands).
    let mut untagged: Vec<String> = Vec::new();
    if !ctx.dry_run {
        let moved = registry
            .post(
                "registered-models/alias",
                json!({"name": req.model, "alias": req.alias, "version": to.to_string()}),
                &mut report.outcomes,
            )
            .await;
        if let Err(e) = moved {
            return Ok(report.finish(
                ActionOutcome::Failed(e.to_string()),
                format!("could not move {target} from version {current} to {to}"),
            ));
        }
        let why = format!(
            "{} moved to version {to} by {by} at {}",
            req.alias,
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        // The move is made; the tags only explain it: a failure is said, not undone.
        if let Err(e) = registry
            .post(
                "model-versions/set-tag",
                json!({"name": req.model, "version": current.to_string(), "key": ROLLED_BACK_TAG, "value": why}),
                &mut report.outcomes,
            )
            .await
        {
            untagged.push(e.to_string());
        }
        let mut moves = history;
        moves.push(AliasMove {
            at: now,
            alias: req.alias.clone(),
            from: Some(current),
            to,
            by: by.to_string(),
            why: format!("rollback of endpoint {}", req.endpoint),
        });
        let skip = moves.len().saturating_sub(ALIAS_HISTORY_LEN);
        let moves: Vec<&AliasMove> = moves.iter().skip(skip).collect();
        if let Err(e) = registry
            .post(
                "registered-models/set-tag",
                json!({"name": req.model, "key": history_tag(&req.alias), "value": serde_json::to_string(&moves).unwrap_or_default()}),
                &mut report.outcomes,
            )
            .await
        {
            untagged.push(e.to_string());
        }
    }
    let serving = match &req.serving {
        Some(s) if s.cluster == ctx.cluster => {
            roll_serving(ctx, s, req, current, to, &mut report).await?
        }
        Some(s) => format!(
            "; serving object {}/{}/{} is in cluster {}, not {}: not rolled",
            s.kind.to_ascii_lowercase(),
            s.namespace,
            s.name,
            s.cluster,
            ctx.cluster
        ),
        None => String::new(),
    };
    let failed = report
        .outcomes
        .iter()
        .find(|o| !(200..300).contains(&o.status))
        .map(|o| format!("{} answered {} {}", o.request, o.status, o.message))
        .or_else(|| {
            (!untagged.is_empty()).then(|| format!("the alias moved, but {}", untagged.join("; ")))
        });
    let summary = format!(
        "{} of {} moved from version {current} to {to} (endpoint {}){serving}",
        req.alias, req.model, req.endpoint
    );
    Ok(match failed {
        Some(why) => report.finish(ActionOutcome::Failed(why), summary),
        None => report.finish(ActionOutcome::Done, summary),
    })
}

/// The JSON pointers of the strings in `object` that may hold a model URI: a Deployment's
/// containers' env values and args, an InferenceService's predictor `storageUri`s.
fn uri_fields(kind: ObjectKind, object: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |pointer: String, v: &Value| {
        if let Some(s) = v.as_str() {
            out.push((pointer, s.to_string()));
        }
    };
    match kind {
        ObjectKind::Deployment => {
            let containers = object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array);
            for (i, c) in containers.into_iter().flatten().enumerate() {
                let base = format!("/spec/template/spec/containers/{i}");
                for (j, e) in c
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if let Some(v) = e.get("value") {
                        push(format!("{base}/env/{j}/value"), v);
                    }
                }
                for (j, a) in c
                    .get("args")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    push(format!("{base}/args/{j}"), a);
                }
            }
        }
        ObjectKind::InferenceService => {
            if let Some(p) = object.pointer("/spec/predictor").and_then(Value::as_object) {
                for (k, v) in p {
                    if let Some(uri) = v.get("storageUri") {
                        push(format!("/spec/predictor/{k}/storageUri"), uri);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// `text` with `models:/MODEL/FROM` (a whole path segment) made `models:/MODEL/TO`; `None`
/// when it holds no such reference.
fn repin(text: &str, model: &str, from: u64, to: u64) -> Option<String> {
    let pinned = format!("models:/{model}/{from}");
    let mut out = String::new();
    let mut rest = text;
    let mut found = false;
    while let Some(at) = rest.find(&pinned) {
        let after = &rest[at + pinned.len()..];
        let whole = after.chars().next().is_none_or(|c| !c.is_ascii_digit());
        out.push_str(&rest[..at]);
        if whole {
            out.push_str(&format!("models:/{model}/{to}"));
            found = true;
        } else {
            out.push_str(&pinned);
        }
        rest = after;
    }
    out.push_str(rest);
    found.then_some(out)
}

/// Patches the serving object's pinned URIs from `from` to `to`; restarts a Deployment that
/// resolves the alias. Returns what it did, as a clause of the summary.
async fn roll_serving(
    ctx: &ActionContext,
    s: &ServingObject,
    req: &ModelRollback,
    from: u64,
    to: u64,
    report: &mut ActionReport,
) -> Result<String, ActionError> {
    let kind = if s.kind.eq_ignore_ascii_case("Deployment") {
        ObjectKind::Deployment
    } else if s.kind.eq_ignore_ascii_case("InferenceService") {
        ObjectKind::InferenceService
    } else {
        return Ok(format!(
            "; serving object is a {}: fleetdeck repins a Deployment or an InferenceService",
            s.kind
        ));
    };
    let path = kind.path(Some(&s.namespace), &s.name)?;
    let object_name = kind.object(Some(&s.namespace), &s.name);
    let object: Value = ctx.read_existing(&path, &object_name).await?;
    let fields = uri_fields(kind, &object);
    let mut ops = Vec::new();
    for (pointer, value) in &fields {
        if let Some(new) = repin(value, &req.model, from, to) {
            ops.push(json!({"op": "test", "path": pointer, "value": value}));
            ops.push(json!({"op": "replace", "path": pointer, "value": new}));
            report.changes.push(FieldChange {
                object: object_name.clone(),
                field: pointer.trim_start_matches('/').replace('/', "."),
                before: Some(json!(value)),
                after: Some(json!(new)),
            });
        }
    }
    if !ops.is_empty() {
        let answer = ctx
            .mutate(
                &path,
                Call::Patch(PatchBody::Json(Value::Array(ops))),
                &mut report.outcomes,
            )
            .await?;
        if !answer.is_success() {
            return Ok(format!(
                "; {object_name} could not be repinned: {}",
                answer.refusal()
            ));
        }
        return Ok(format!(
            "; {object_name} repinned to models:/{}/{to}",
            req.model
        ));
    }
    let by_alias = format!("models:/{}@{}", req.model, req.alias);
    if fields.iter().any(|(_, v)| v.contains(&by_alias)) {
        if kind == ObjectKind::Deployment {
            let restarted = super::restart_rollout(ctx, &s.namespace, &s.name, Utc::now()).await?;
            report.changes.extend(restarted.changes);
            report.outcomes.extend(restarted.outcomes);
            return Ok(match restarted.outcome {
                ActionOutcome::Done => {
                    format!("; {object_name} restarted so its pods load {by_alias} again")
                }
                other => format!("; {object_name} not restarted: {}", other.name()),
            });
        }
        return Ok(format!(
            "; {object_name} resolves {by_alias} when its predictor starts: it loads version {to} on its next rollout"
        ));
    }
    Ok(format!(
        "; {object_name} does not name models:/{}: the alias is what it serves",
        req.model
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repin_changes_only_whole_version_segments_of_the_model() {
        assert_eq!(
            repin("models:/llama/3", "llama", 3, 2).as_deref(),
            Some("models:/llama/2")
        );
        assert_eq!(
            repin("--model=models:/llama/3/weights", "llama", 3, 2).as_deref(),
            Some("--model=models:/llama/2/weights")
        );
        assert_eq!(repin("models:/llama/31", "llama", 3, 2), None);
        assert_eq!(repin("models:/llama-xl/3", "llama", 3, 2), None);
        assert_eq!(repin("models:/llama@champion", "llama", 3, 2), None);
    }

    #[test]
    fn uri_fields_reads_env_args_and_storage_uris() {
        let dep = json!({"spec": {"template": {"spec": {"containers": [
            {"env": [{"name": "A", "valueFrom": {}}, {"name": "MODEL_URI", "value": "models:/m/3"}],
             "args": ["--port", "8000"]}
        ]}}}});
        let f = uri_fields(ObjectKind::Deployment, &dep);
        assert!(f.contains(&(
            "/spec/template/spec/containers/0/env/1/value".into(),
            "models:/m/3".into()
        )));
        assert!(f.contains(&(
            "/spec/template/spec/containers/0/args/1".into(),
            "8000".into()
        )));
        let isvc = json!({"spec": {"predictor": {"model": {"storageUri": "models:/m/3"}, "minReplicas": 2}}});
        assert_eq!(
            uri_fields(ObjectKind::InferenceService, &isvc),
            vec![(
                "/spec/predictor/model/storageUri".to_string(),
                "models:/m/3".to_string()
            )]
        );
    }
}
