//! The requests actions send, built with kube's request builders and sent raw, so that every
//! answer keeps its exact status code and its `Status` body (reason, message, causes).

use chrono::Utc;
use kube::core::params::{DeleteParams, GetParams, ListParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ActionContext, ActionError, ActionOutcome, ActionReport};
use crate::model::incident::{ApiOutcome, FieldChange};

/// Where an object lives: its collection's path and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectPath {
    /// `/api/v1/namespaces/ml/pods`, `/api/v1/nodes`, `/apis/apps/v1/namespaces/ml/deployments`
    pub collection: String,
    pub name: String,
}

impl ObjectPath {
    /// `prefix` is `/api/v1` or `/apis/GROUP/VERSION`.
    pub fn new(prefix: &str, namespace: Option<&str>, plural: &str, name: &str) -> Self {
        Self {
            collection: collection_path(prefix, namespace, plural),
            name: name.to_string(),
        }
    }

    pub fn node(name: &str) -> Self {
        Self::new("/api/v1", None, "nodes", name)
    }

    pub fn pod(namespace: &str, name: &str) -> Self {
        Self::new("/api/v1", Some(namespace), "pods", name)
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.collection, self.name)
    }
}

pub(crate) fn collection_path(prefix: &str, namespace: Option<&str>, plural: &str) -> String {
    match namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
        None => format!("{prefix}/{plural}"),
    }
}

/// The patch types the API server takes, as kubectl chooses them per command.
pub(crate) enum PatchBody {
    Strategic(Value),
    Merge(Value),
    /// RFC 6902. kube's `Patch::Json` needs its `jsonpatch` feature, which this crate does not
    /// enable, so the body goes as a merge patch whose content type is then corrected.
    Json(Value),
}

pub(crate) enum Call {
    Get,
    GetSub(&'static str),
    Patch(PatchBody),
    PatchSub(&'static str, PatchBody),
    PostSub(&'static str, Value),
    Delete(DeleteParams),
}

impl Call {
    fn method(&self) -> &'static str {
        match self {
            Self::Get | Self::GetSub(_) => "GET",
            Self::Patch(_) | Self::PatchSub(..) => "PATCH",
            Self::PostSub(..) => "POST",
            Self::Delete(_) => "DELETE",
        }
    }

    fn subresource(&self) -> Option<&'static str> {
        match self {
            Self::GetSub(s) | Self::PatchSub(s, _) | Self::PostSub(s, _) => Some(s),
            _ => None,
        }
    }
}

/// `PATCH /api/v1/nodes/n1`, as the timeline shows a request.
pub(crate) fn describe(path: &ObjectPath, call: &Call) -> String {
    match call.subresource() {
        Some(sub) => format!("{} {}/{sub}", call.method(), path.path()),
        None => format!("{} {}", call.method(), path.path()),
    }
}

/// The API server's answer.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The parts of a `metav1.Status` actions read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusBody {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusDetails {
    #[serde(default)]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusCause {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Status` the server sent, if the body is one.
    pub fn status_body(&self) -> Option<StatusBody> {
        serde_json::from_slice::<StatusBody>(&self.body)
            .ok()
            .filter(|s| s.kind == "Status")
    }

    /// The message to show for a refusal: the Status message and its causes.
    pub fn explain(&self) -> (String, String) {
        match self.status_body() {
            Some(s) => {
                let mut message = s.message;
                for c in s.details.iter().flat_map(|d| &d.causes) {
                    if !c.message.is_empty() && !message.contains(&c.message) {
                        message = format!("{message} ({})", c.message);
                    }
                }
                (s.reason, message)
            }
            None => (
                String::new(),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect(),
            ),
        }
    }

    /// `the API answered 422 Invalid: …`, for a failed mutation's reason.
    pub fn refusal(&self) -> String {
        let (reason, message) = self.explain();
        format!("the API answered {} {reason}: {message}", self.status)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The name of the PodDisruptionBudget a 429 from the eviction subresource names: the API
/// server (pkg/registry/core/pod/storage/eviction.go, `checkAndDecrement`) puts a cause of
/// reason `DisruptionBudget` with "The disruption budget NAME needs …" or "… does not allow …".
pub(crate) fn pdb_in_refusal(answer: &Answer) -> Option<String> {
    let status = answer.status_body()?;
    let mut texts: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.reason == "DisruptionBudget" || c.reason.is_empty())
        .map(|c| c.message.clone())
        .collect();
    texts.push(status.message);
    texts.iter().find_map(|t| {
        let rest = t.split("The disruption budget ").nth(1)?;
        let name = rest.split_whitespace().next()?;
        (!name.is_empty()).then(|| name.to_string())
    })
}

#[derive(Deserialize)]
struct ListPage<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Default, Deserialize)]
struct ListMeta {
    #[serde(default, rename = "continue")]
    cont: Option<String>,
}

impl ActionContext {
    fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.dry_run,
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(self.field_manager.clone()),
        }
    }

    fn transport(&self, request: String, source: kube::Error) -> ActionError {
        ActionError::Transport {
            cluster: self.cluster.clone(),
            request,
            source,
        }
    }

    /// Sends one request and reads the whole answer, whatever its status.
    pub(crate) async fn send(&self, path: &ObjectPath, call: Call) -> Result<Answer, ActionError> {
        let described = describe(path, &call);
        let builder = kube::core::Request::new(path.collection.clone());
        let name = path.name.as_str();
        let pp = self.patch_params();
        // A closure, so the request type (the `http` crate's, which kube does not re-export)
        // is inferred rather than named.
        let patch = |sub: Option<&str>, body: PatchBody| {
            let (patch, json_patch) = match body {
                PatchBody::Strategic(v) => (Patch::Strategic(v), false),
                PatchBody::Merge(v) => (Patch::Merge(v), false),
                PatchBody::Json(v) => (Patch::Merge(v), true),
            };
            let mut req = match sub {
                Some(s) => builder.patch_subresource(s, name, &pp, &patch)?,
                None => builder.patch(name, &pp, &patch)?,
            };
            if json_patch && let Ok(v) = "application/json-patch+json".parse() {
                req.headers_mut().insert("content-type", v);
            }
            Ok(req)
        };
        let built = match call {
            Call::Get => builder.get(name, &GetParams::default()),
            Call::GetSub(sub) => builder.get_subresource(sub, name),
            Call::Patch(body) => patch(None, body),
            Call::PatchSub(sub, body) => patch(Some(sub), body),
            Call::PostSub(sub, body) => serde_json::to_vec(&body)
                .map_err(kube::core::request::Error::SerializeBody)
                .and_then(|data| builder.create_subresource(sub, name, &self.post_params(), data)),
            Call::Delete(mut dp) => {
                dp.dry_run = self.dry_run;
                builder.delete(name, &dp).map(|mut req| {
                    // DeleteOptions travel in the body; the query form is also accepted, and
                    // servers that read only one of the two still see the dry run.
                    if self.dry_run
                        && let Ok(u) = format!("{}?dryRun=All", path.path()).parse()
                    {
                        *req.uri_mut() = u;
                    }
                    req
                })
            }
        };
        let req = built.map_err(|e| ActionError::InvalidInput {
            what: format!("request {described}"),
            why: e.to_string(),
        })?;
        self.exchange(&described, req).await
    }

    /// Sends a built request and reads the whole answer, whatever its status; `described`
    /// names the request in a transport error.
    async fn exchange(
        &self,
        described: &str,
        req: hyper::Request<Vec<u8>>,
    ) -> Result<Answer, ActionError> {
        let res = self
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| self.transport(described.to_string(), e))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| self.transport(described.to_string(), e))?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    /// GETs an object as JSON; `None` when it does not exist.
    pub(crate) async fn read(&self, path: &ObjectPath) -> Result<Option<Value>, ActionError> {
        self.read_as(path, Call::Get).await
    }

    pub(crate) async fn read_as<T: DeserializeOwned>(
        &self,
        path: &ObjectPath,
        call: Call,
    ) -> Result<Option<T>, ActionError> {
        let described = describe(path, &call);
        let answer = self.send(path, call).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        let answer = self.expect_success(described.clone(), answer)?;
        serde_json::from_slice(&answer.body)
            .map(Some)
            .map_err(|source| ActionError::Decode {
                cluster: self.cluster.clone(),
                request: described,
                source,
            })
    }

    /// GETs an object that must exist; `what` names it in the error (`node n1`).
    pub(crate) async fn read_existing<T: DeserializeOwned>(
        &self,
        path: &ObjectPath,
        what: &str,
    ) -> Result<T, ActionError> {
        self.read_as(path, Call::Get)
            .await?
            .ok_or_else(|| ActionError::NotFound {
                cluster: self.cluster.clone(),
                object: what.to_string(),
            })
    }

    fn expect_success(&self, request: String, answer: Answer) -> Result<Answer, ActionError> {
        if answer.is_success() {
            return Ok(answer);
        }
        let (reason, message) = answer.explain();
        Err(ActionError::Api {
            cluster: self.cluster.clone(),
            request,
            status: answer.status,
            reason,
            message,
        })
    }

    /// Lists a collection page by page (500 at a time, as kubectl), following `continue`.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Vec<T>, ActionError> {
        let mut out = Vec::new();
        let mut cont: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(l) = label_selector {
                lp = lp.labels(l);
            }
            if let Some(f) = field_selector {
                lp = lp.fields(f);
            }
            if let Some(c) = &cont {
                lp = lp.continue_token(c);
            }
            let described = format!("GET {collection}");
            let req = kube::core::Request::new(collection)
                .list(&lp)
                .map_err(|e| ActionError::InvalidInput {
                    what: format!("request {described}"),
                    why: e.to_string(),
                })?;
            let answer = self.exchange(&described, req).await?;
            let answer = self.expect_success(described.clone(), answer)?;
            let page: ListPage<T> =
                serde_json::from_slice(&answer.body).map_err(|source| ActionError::Decode {
                    cluster: self.cluster.clone(),
                    request: described,
                    source,
                })?;
            out.extend(page.items);
            match page.metadata.cont.filter(|c| !c.is_empty()) {
                Some(c) => cont = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Sends a mutating request and records the answer, whatever it is, in `outcomes`;
    /// `pdb` names the budget behind a 429 when the caller knows it.
    pub(crate) async fn mutate(
        &self,
        path: &ObjectPath,
        call: Call,
        outcomes: &mut Vec<ApiOutcome>,
    ) -> Result<Answer, ActionError> {
        let request = describe(path, &call);
        let answer = self.send(path, call).await?;
        let (reason, message) = if answer.is_success() {
            (String::new(), String::new())
        } else {
            answer.explain()
        };
        outcomes.push(ApiOutcome {
            at: Utc::now(),
            request,
            status: answer.status,
            reason,
            message,
            pdb: None,
        });
        Ok(answer)
    }
}

/// The change of one field, as one request: what to send and how the report names it.
pub(crate) struct FieldEdit<'a> {
    pub path: &'a ObjectPath,
    pub call: Call,
    /// The field the report names (`spec.replicas`).
    pub field: String,
    /// Where the answer holds the field's new value (`/spec/replicas`).
    pub pointer: String,
    pub before: Option<Value>,
    /// The step a refusal names (`scale deployment/ml/x`).
    pub step: String,
    /// The report's summary when the server refuses, and when the change is made.
    pub refused: String,
    pub done: String,
}

/// `key` as one token of a JSON pointer (RFC 6901): an annotation key's `/` is `~1`.
pub(crate) fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl ActionContext {
    /// Sends a one-field change and finishes `report` with it: failed with the server's
    /// refusal, or done with the field's value before and after (as the answer has it).
    pub(crate) async fn edit_field(
        &self,
        mut report: ActionReport,
        edit: FieldEdit<'_>,
    ) -> Result<ActionReport, ActionError> {
        let answer = self
            .mutate(edit.path, edit.call, &mut report.outcomes)
            .await?;
        if !answer.is_success() {
            return Ok(report.finish(
                ActionOutcome::Failed(format!("{}: {}", edit.step, answer.refusal())),
                edit.refused,
            ));
        }
        report.changes.push(FieldChange {
            object: report.target.clone(),
            field: edit.field,
            before: edit.before,
            after: answer
                .json()
                .and_then(|v| v.pointer(&edit.pointer).cloned()),
        });
        Ok(report.finish(ActionOutcome::Done, edit.done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    #[test]
    fn a_429_names_its_budget_from_the_status_cause() {
        let refused = answer(
            429,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                "reason": "TooManyRequests",
                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                "details": {"causes": [{"reason": "DisruptionBudget",
                    "message": "The disruption budget llama-chat needs 2 healthy pods and has 1 currently"}]}}),
        );
        assert_eq!(pdb_in_refusal(&refused).as_deref(), Some("llama-chat"));
        let (reason, message) = refused.explain();
        assert_eq!(reason, "TooManyRequests");
        assert!(message.contains("needs 2 healthy pods"), "{message}");
        let bare = answer(
            429,
            serde_json::json!({"kind": "Status", "code": 429, "message": "slow down"}),
        );
        assert_eq!(pdb_in_refusal(&bare), None);
    }
}
