//! The simulated Kubernetes API server over HTTP: discovery, list (paged, selected, as Table
//! or plain), watch, get, create, update, patch, delete, the eviction and scale subresources,
//! container logs (`pods/{name}/log`, lines from `sim::logs`), with `Status` errors. Requests
//! go straight to the cluster's controllers under its lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::cluster::{ClusterState, EvictionOutcome};
use super::logs;
use super::patch::{self, PatchType};
use super::resources::{self, Kind, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{ApiError, Stored, WatchEvent, selectable_fields};
use super::table::{self, IncludeObject};

/// The largest request body accepted, as the real API server's limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct SimCluster {
    pub name: String,
    pub state: Mutex<ClusterState>,
    pub rng: Mutex<ChaCha8Rng>,
    /// `/version` minor: the machine's kubectl dispatcher picks `kubectl.1.<minor>` from it.
    pub minor: u32,
    /// Who TokenReviews and SubjectAccessReviews know (`--users`).
    pub users: Arc<super::auth::SimUsers>,
}

impl SimCluster {
    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn router(cluster: Arc<SimCluster>) -> Router {
    Router::new().fallback(handle).with_state(cluster)
}

fn json_response(code: u16, body: Vec<u8>, content_type: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn ok(v: &Value) -> Response {
    json_response(
        200,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

fn created(v: &Value) -> Response {
    json_response(
        201,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

fn err(e: ApiError) -> Response {
    json_response(
        e.code,
        serde_json::to_vec(&e.status()).unwrap_or_default(),
        "application/json",
    )
}

enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    Collection(&'static ResourceDef, Option<String>),
    Object(&'static ResourceDef, Option<String>, String),
    Sub(&'static ResourceDef, Option<String>, String, String),
}

fn route(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = ApiError::no_such_resource;
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => return Ok(Route::Health),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g, v] => return Ok(Route::GroupVersion(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let lookup = |plural: &str| resources::lookup(group, version, plural).ok_or_else(not_found);
    let nsd = |d: &'static ResourceDef| -> Result<&'static ResourceDef, ApiError> {
        if d.namespaced {
            Ok(d)
        } else {
            Err(not_found())
        }
    };
    Ok(match rest {
        ["namespaces", ns, plural] if resources::lookup(group, version, plural).is_some() => {
            Route::Collection(nsd(lookup(plural)?)?, Some(ns.to_string()))
        }
        ["namespaces", ns, plural, name] => Route::Object(
            nsd(lookup(plural)?)?,
            Some(ns.to_string()),
            name.to_string(),
        ),
        ["namespaces", ns, plural, name, sub] => Route::Sub(
            nsd(lookup(plural)?)?,
            Some(ns.to_string()),
            name.to_string(),
            sub.to_string(),
        ),
        [plural] => Route::Collection(lookup(plural)?, None),
        [plural, name] => {
            let d = lookup(plural)?;
            if d.namespaced {
                return Err(not_found());
            }
            Route::Object(d, None, name.to_string())
        }
        [plural, name, sub] => {
            let d = lookup(plural)?;
            if d.namespaced {
                return Err(not_found());
            }
            Route::Sub(d, None, name.to_string(), sub.to_string())
        }
        _ => return Err(not_found()),
    })
}

#[derive(Default)]
struct Params {
    watch: bool,
    limit: usize,
    cont: Option<String>,
    rv: Option<String>,
    label: String,
    field: String,
    bookmarks: bool,
    timeout: Option<u64>,
    include: Option<String>,
    dry_run: bool,
    grace: Option<u64>,
}

fn params(uri: &Uri) -> Result<Params, ApiError> {
    let mut p = Params::default();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let bad = |what: &str| ApiError::bad_request(format!("invalid {what} parameter: {v:?}"));
        match k.as_ref() {
            "watch" => p.watch = v == "true" || v == "1",
            "limit" => p.limit = v.parse().map_err(|_| bad("limit"))?,
            "continue" if !v.is_empty() => p.cont = Some(v.into_owned()),
            "resourceVersion" if !v.is_empty() => p.rv = Some(v.into_owned()),
            "labelSelector" => p.label = v.into_owned(),
            "fieldSelector" => p.field = v.into_owned(),
            "allowWatchBookmarks" => p.bookmarks = v == "true",
            "timeoutSeconds" => p.timeout = Some(v.parse().map_err(|_| bad("timeoutSeconds"))?),
            "includeObject" => p.include = Some(v.into_owned()),
            "dryRun" => p.dry_run = !v.is_empty(),
            "gracePeriodSeconds" => {
                p.grace = Some(v.parse().map_err(|_| bad("gracePeriodSeconds"))?)
            }
            _ => {}
        }
    }
    Ok(p)
}

/// `Some(include)` when the client asked for a server-printed Table.
fn wants_table(headers: &HeaderMap, p: &Params) -> Option<IncludeObject> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accept.contains("as=Table") {
        return None;
    }
    Some(match p.include.as_deref() {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    })
}

/// The aggregated discovery version the Accept header asks for first, if any.
fn aggregated_discovery_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for part in accept.split(',') {
        if part.contains("as=APIGroupDiscoveryList") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

/// The RBAC permission a request needs, `verb group/resource[/subresource]`, as the API
/// server's authorizer names it (a GET of a collection is `list`, or `watch` with watch=true).
fn rbac_permission(method: &Method, uri: &Uri) -> Option<String> {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, more @ ..] if !more.is_empty() => more,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub, ..] => (*resource, Some(*name), Some(*sub)),
        [] => return None,
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.contains("watch=true") || q.contains("watch=1"));
    let verb = match (method.as_str(), name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    Some(format!("{verb} {group}/{resource}"))
}

async fn handle(
    State(c): State<Arc<SimCluster>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let (flaky, fail, delay) = {
        let mut st = c.lock();
        let counters = &mut st.store.counters;
        counters.requests += 1;
        if mutating {
            counters.mutating += 1;
        }
        *counters
            .by_verb
            .entry(method.as_str().to_string())
            .or_default() += 1;
        if let Some(p) = rbac_permission(&method, &uri) {
            *counters.by_permission.entry(p).or_default() += 1;
        }
        let flaky = st.faults.flaky;
        let mut rng = c.rng.lock().unwrap_or_else(|e| e.into_inner());
        let fail = flaky && rng.gen_bool(0.15);
        let delay =
            (flaky && rng.gen_bool(0.2)).then(|| Duration::from_millis(rng.gen_range(500..2500)));
        if fail {
            st.store.counters.injected_failures += 1;
        }
        (flaky, fail, delay)
    };
    let is_watch = uri
        .query()
        .is_some_and(|q| q.contains("watch=true") || q.contains("watch=1"));
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if fail && !is_watch {
        return err(ApiError::internal(
            "simulated API server failure (scenario api-flaky)",
        ));
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than the {MAX_BODY} bytes the server accepts"),
            ));
        }
    };
    if method == Method::POST {
        let reviewed = match uri.path() {
            "/apis/authentication.k8s.io/v1/tokenreviews" => Some(c.users.token_review(&body)),
            "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
                Some(c.users.access_review(&body))
            }
            _ => None,
        };
        if let Some(r) = reviewed {
            return match r {
                Ok(v) => created(&v),
                Err(e) => err(e),
            };
        }
    }
    let p = match params(&uri) {
        Ok(p) => p,
        Err(e) => return err(e),
    };
    let r = match route(uri.path()) {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    if let Route::Collection(d, ns) | Route::Object(d, ns, _) | Route::Sub(d, ns, _, _) = &r
        && c.lock().faults.denied.contains(d.plural)
    {
        return err(forbidden(d, &method, ns.as_deref()));
    }
    if let Route::Sub(d, Some(ns), name, sub) = &r
        && d.kind == Kind::Pod
        && sub == "log"
        && c.lock().faults.denied.contains("pods/log")
    {
        return err(log_forbidden(ns, name));
    }
    match (method.clone(), r) {
        (Method::GET, Route::Version) => ok(&json!({
            "major": "1", "minor": c.minor.to_string(),
            "gitVersion": format!("v1.{}.4", c.minor), "gitCommit": "fleetdeck-sim",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64",
        })),
        (Method::GET, Route::Health) => json_response(200, b"ok".to_vec(), "text/plain"),
        (Method::GET, Route::CoreVersions) => match aggregated_discovery_version(&headers) {
            Some(v) => discovery_response(resources::aggregated_discovery(true, v), v),
            None => ok(&resources::api_versions()),
        },
        (Method::GET, Route::Groups) => match aggregated_discovery_version(&headers) {
            Some(v) => discovery_response(resources::aggregated_discovery(false, v), v),
            None => ok(&resources::api_group_list()),
        },
        (Method::GET, Route::Group(g)) => match resources::api_group(&g) {
            Some(v) => ok(&v),
            None => err(ApiError::no_such_resource()),
        },
        (Method::GET, Route::GroupVersion(g, v)) => match resources::api_resource_list(&g, &v) {
            Some(v) => ok(&v),
            None => err(ApiError::no_such_resource()),
        },
        (Method::GET, Route::Collection(d, ns)) if p.watch => {
            let t = wants_table(&headers, &p);
            watch(c, d, ns, p, t, flaky).await
        }
        (Method::GET, Route::Collection(d, ns)) => {
            list(&c, d, ns.as_deref(), &p, wants_table(&headers, &p))
        }
        (Method::GET, Route::Object(d, ns, name)) => {
            get(&c, d, ns.as_deref(), &name, wants_table(&headers, &p))
        }
        (Method::GET, Route::Sub(d, ns, name, sub)) if sub == "status" => {
            get(&c, d, ns.as_deref(), &name, None)
        }
        (Method::GET, Route::Sub(d, ns, name, sub))
            if sub == "scale" && matches!(d.kind, Kind::Deployment | Kind::StatefulSet) =>
        {
            let st = c.lock();
            match st
                .store
                .get_value(d.kind, ns.as_deref().unwrap_or(""), &name)
            {
                Some(v) => ok(&scale_of(&v)),
                None => err(ApiError::not_found(d, &name)),
            }
        }
        (Method::GET, Route::Sub(d, Some(ns), name, sub))
            if d.kind == Kind::Pod && sub == "log" =>
        {
            pod_log(c, ns, name, uri.query().unwrap_or("")).await
        }
        (Method::POST, Route::Collection(d, ns)) => create(&c, d, ns.as_deref(), &body, p.dry_run),
        (Method::POST, Route::Sub(d, Some(ns), name, sub))
            if d.kind == Kind::Pod && sub == "eviction" =>
        {
            evict(&c, &ns, &name, &body, p.dry_run)
        }
        (Method::PUT, Route::Object(d, ns, name)) => {
            update(&c, d, ns.as_deref(), &name, None, &body, false, p.dry_run)
        }
        (Method::PUT, Route::Sub(d, ns, name, sub)) if sub == "status" || sub == "scale" => update(
            &c,
            d,
            ns.as_deref(),
            &name,
            Some(&sub),
            &body,
            false,
            p.dry_run,
        ),
        (Method::PATCH, Route::Object(d, ns, name)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            patch_object(&c, d, ns.as_deref(), &name, None, ct, &body, p.dry_run)
        }
        (Method::PATCH, Route::Sub(d, ns, name, sub)) if sub == "status" || sub == "scale" => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            patch_object(
                &c,
                d,
                ns.as_deref(),
                &name,
                Some(&sub),
                ct,
                &body,
                p.dry_run,
            )
        }
        (Method::DELETE, Route::Object(d, ns, name)) => {
            delete(&c, d, ns.as_deref(), &name, &p, &body)
        }
        (Method::DELETE, Route::Collection(d, ns)) => delete_collection(&c, d, ns.as_deref(), &p),
        (m, _) => err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource: {m} {}",
                uri.path()
            ),
        )),
    }
}

/// What the API server answers when RBAC refuses a request (scenario `rbac-deny`).
fn forbidden(d: &ResourceDef, method: &Method, ns: Option<&str>) -> ApiError {
    let verb = match *method {
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    };
    let scope = match ns {
        Some(n) => format!("in the namespace \"{n}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{} is forbidden: User \"system:serviceaccount:fleetdeck:fleetdeck\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            d.qualified(),
            d.plural,
            d.group
        ),
    );
    e.details = Some(json!({"group": d.group, "kind": d.plural}));
    e
}

/// RBAC refusing the `pods/log` subresource alone (scenario `rbac-deny --resource pods/log`).
fn log_forbidden(ns: &str, name: &str) -> ApiError {
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "pods \"{name}\" is forbidden: User \"system:serviceaccount:fleetdeck:fleetdeck\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"{ns}\""
        ),
    );
    e.details = Some(json!({"name": name, "kind": "pods"}));
    e
}

fn discovery_response(v: Value, version: &str) -> Response {
    json_response(
        200,
        serde_json::to_vec(&v).unwrap_or_default(),
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
    )
}

fn selectors(d: &ResourceDef, p: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(&p.label).map_err(ApiError::bad_request)?;
    let f = FieldSelector::parse(&p.field, selectable_fields(d.kind))
        .map_err(|e| ApiError::bad_request(format!("{e} (for {})", d.qualified())))?;
    Ok((l, f))
}

fn matches(ns_name: (&str, &str), s: &Stored, l: &LabelSelector, f: &FieldSelector) -> bool {
    (l.is_empty() || l.matches(&s.labels))
        && (f.is_empty()
            || f.matches(|field| match field {
                "metadata.name" => Some(ns_name.1),
                "metadata.namespace" => Some(ns_name.0),
                other => s.field(other),
            }))
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"rv": rv, "ns": ns, "name": name})).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid continue token {token:?}: it was not issued by this server"
        ))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    match (v["ns"].as_str(), v["name"].as_str()) {
        (Some(ns), Some(name)) => Ok((ns.to_string(), name.to_string())),
        _ => Err(bad()),
    }
}

fn list(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    p: &Params,
    table: Option<IncludeObject>,
) -> Response {
    let (l, f) = match selectors(d, p) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let after = match p.cont.as_deref().map(decode_continue) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => return err(e),
        None => None,
    };
    let (items, rv, cont) = {
        let st = c.lock();
        let rv = st.store.rv;
        let mut items: Vec<Stored> = Vec::new();
        let mut last_key = None;
        let mut more = false;
        let iter = st.store.iter_ns(d.kind, ns);
        for ((kns, kname), s) in iter {
            if let Some((ans, aname)) = &after
                && (kns.as_str(), kname.as_str()) <= (ans.as_str(), aname.as_str())
            {
                continue;
            }
            if !matches((kns, kname), s, &l, &f) {
                continue;
            }
            if p.limit > 0 && items.len() == p.limit {
                more = true;
                break;
            }
            items.push(s.clone());
            last_key = Some((kns.clone(), kname.clone()));
        }
        let cont = if more {
            last_key.map(|(n, m)| encode_continue(rv, &n, &m))
        } else {
            None
        };
        (items, rv, cont)
    };
    if let Some(include) = table {
        let now = Utc::now();
        let rows: Vec<Value> = items
            .iter()
            .map(|s| table::row(d.kind, &s.value(), include, now))
            .collect();
        return ok(&table::table(d.kind, rows, rv, cont, true));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": d.list_kind(), "apiVersion": d.api_version(), "metadata": meta});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace: items follow
    let size: usize = items.iter().map(|s| s.raw.len() + 1).sum();
    out.reserve(size + 16);
    out.extend_from_slice(b",\"items\":[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&s.raw);
    }
    out.extend_from_slice(b"]}");
    json_response(200, out, "application/json")
}

fn get(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    table: Option<IncludeObject>,
) -> Response {
    let (s, rv) = {
        let st = c.lock();
        (
            st.store.get(d.kind, ns.unwrap_or(""), name).cloned(),
            st.store.rv,
        )
    };
    let Some(s) = s else {
        return err(ApiError::not_found(d, name));
    };
    match table {
        Some(include) => ok(&table::table(
            d.kind,
            vec![table::row(d.kind, &s.value(), include, Utc::now())],
            rv,
            None,
            true,
        )),
        None => json_response(200, s.raw.to_vec(), "application/json"),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn check_kind(d: &ResourceDef, v: &Value) -> Result<(), ApiError> {
    if let Some(k) = v.get("kind").and_then(Value::as_str)
        && k != d.kind_name
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {k}, but {} takes {}",
            d.qualified(),
            d.kind_name
        )));
    }
    Ok(())
}

fn create(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    body: &Bytes,
    dry_run: bool,
) -> Response {
    let mut v = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    if let Err(e) = check_kind(d, &v) {
        return err(e);
    }
    if let Some(ns) = ns {
        match v.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(bns) if !bns.is_empty() && bns != ns => {
                return err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({bns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            _ => {
                if v.get("metadata").is_some_and(Value::is_object) {
                    v["metadata"]["namespace"] = json!(ns);
                }
            }
        }
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("uid");
    }
    let mut st = c.lock();
    if dry_run {
        return created(&v);
    }
    if d.kind == Kind::Pod && v.pointer("/status/phase").is_none() {
        v["status"] = json!({"phase": "Pending"});
    }
    match st.store.create(d.kind, v, true) {
        Ok(v) => {
            let (ns, name) = (obj(&v, "/metadata/namespace"), obj(&v, "/metadata/name"));
            react(&mut st, d.kind, &ns, &name, None);
            let v = st.store.get_value(d.kind, &ns, &name).unwrap_or(v);
            created(&v)
        }
        Err(e) => err(e),
    }
}

fn obj(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// What the control plane does after an object changed (`old` is its previous state).
fn react(st: &mut ClusterState, kind: Kind, ns: &str, name: &str, old: Option<&Value>) {
    let Some(new) = st.store.get_value(kind, ns, name) else {
        return;
    };
    let spec_changed = old.is_none_or(|o| o["spec"] != new["spec"]);
    match kind {
        Kind::Deployment if spec_changed => st.reconcile_deployment(ns, name),
        Kind::ReplicaSet if spec_changed => st.reconcile_replicaset(ns, name),
        Kind::StatefulSet if spec_changed => st.reconcile_statefulset(ns, name),
        Kind::Pod if old.is_none() && obj(&new, "/spec/nodeName").is_empty() => {
            st.schedule_new_pod(ns, name);
        }
        Kind::Pod if old.is_none() => st.start_pod_later(ns, name),
        Kind::Node => {
            let was = old.is_some_and(|o| o["spec"]["unschedulable"] == true);
            let is = new["spec"]["unschedulable"] == true;
            if was != is {
                let (reason, msg) = if is {
                    (
                        "NodeNotSchedulable",
                        format!("Node {name} status is now: NodeNotSchedulable"),
                    )
                } else {
                    (
                        "NodeSchedulable",
                        format!("Node {name} status is now: NodeSchedulable"),
                    )
                };
                st.record_event(&new, "Normal", reason, &msg, "kubelet");
            }
        }
        Kind::PodDisruptionBudget => st.refresh_pdb(ns, name),
        Kind::InferenceService if spec_changed => st.reconcile_inference_service(ns, name),
        _ => {}
    }
}

const WITH_GENERATION: &[Kind] = &[
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::Job,
    Kind::PyTorchJob,
    Kind::SparkApplication,
    Kind::InferenceService,
    Kind::PodDisruptionBudget,
];

fn has_status_subresource(d: &ResourceDef) -> bool {
    d.subresources.iter().any(|s| s.name == "status")
}

/// Validates and stores `new` as the next state of `current`, keeping what a client may not
/// change (identity, and `status` unless writing the status subresource).
#[allow(clippy::too_many_arguments)]
fn commit(
    st: &mut ClusterState,
    d: &'static ResourceDef,
    ns: &str,
    name: &str,
    current: Value,
    mut new: Value,
    sub: Option<&str>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if !new.is_object() || !new.get("metadata").is_some_and(Value::is_object) {
        return Err(ApiError::invalid(d, name, "metadata", "Required value"));
    }
    if let Some(rv) = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && rv != obj(&current, "/metadata/resourceVersion")
    {
        return Err(ApiError::conflict(
            d,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let new_name = obj(&new, "/metadata/name");
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "deletionTimestamp",
        "generation",
    ] {
        match current["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    new["kind"] = current["kind"].clone();
    new["apiVersion"] = current["apiVersion"].clone();
    if has_status_subresource(d) {
        if sub == Some("status") {
            let status = new["status"].clone();
            new = current.clone();
            new["status"] = status;
        } else {
            new["status"] = current["status"].clone();
            if new["status"].is_null()
                && let Some(m) = new.as_object_mut()
            {
                m.remove("status");
            }
        }
    }
    if d.kind == Kind::Node && new["spec"]["unschedulable"] == false {
        // The API server drops false booleans with omitempty.
        if let Some(m) = new["spec"].as_object_mut() {
            m.remove("unschedulable");
        }
    }
    if WITH_GENERATION.contains(&d.kind) && new["spec"] != current["spec"] {
        let g = current["metadata"]["generation"].as_u64().unwrap_or(1);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if new == current || dry_run {
        return Ok(new);
    }
    let saved = st.store.replace(d.kind, new);
    react(st, d.kind, ns, name, Some(&current));
    Ok(st.store.get_value(d.kind, ns, name).unwrap_or(saved))
}

fn scale_of(dep: &Value) -> Value {
    let sel = dep["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": dep["metadata"]["name"], "namespace": dep["metadata"]["namespace"],
            "uid": dep["metadata"]["uid"], "resourceVersion": dep["metadata"]["resourceVersion"],
            "creationTimestamp": dep["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": dep["spec"]["replicas"]},
        "status": {"replicas": dep["status"]["replicas"].as_u64().unwrap_or(0), "selector": sel},
    })
}

fn apply_scale(d: &'static ResourceDef, current: &Value, scale: &Value) -> Result<Value, ApiError> {
    let name = obj(current, "/metadata/name");
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            ApiError::invalid(
                d,
                &name,
                "spec.replicas",
                "Required value: a whole number of replicas",
            )
        })?;
    if replicas < 0 {
        return Err(ApiError::invalid(
            d,
            &name,
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = scale.pointer("/metadata/resourceVersion") {
        new["metadata"]["resourceVersion"] = rv.clone();
    }
    Ok(new)
}

#[allow(clippy::too_many_arguments)]
fn update(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    body: &Bytes,
    _strict: bool,
    dry_run: bool,
) -> Response {
    let v = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    let ns = ns.unwrap_or("");
    let mut st = c.lock();
    let Some(current) = st.store.get_value(d.kind, ns, name) else {
        return err(ApiError::not_found(d, name));
    };
    let result = if sub == Some("scale") {
        if !matches!(d.kind, Kind::Deployment | Kind::StatefulSet) {
            return err(ApiError::no_such_resource());
        }
        apply_scale(d, &current, &v)
            .and_then(|new| commit(&mut st, d, ns, name, current, new, None, dry_run))
            .map(|v| scale_of(&v))
    } else {
        if let Err(e) = check_kind(d, &v) {
            return err(e);
        }
        commit(&mut st, d, ns, name, current, v, sub, dry_run)
    };
    match result {
        Ok(v) => ok(&v),
        Err(e) => err(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: &Bytes,
    dry_run: bool,
) -> Response {
    let Some(pt) = PatchType::from_content_type(content_type) else {
        return err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        ));
    };
    if body.is_empty() {
        return err(ApiError::bad_request("the patch body is empty"));
    }
    let ns = ns.unwrap_or("");
    let mut st = c.lock();
    let Some(current) = st.store.get_value(d.kind, ns, name) else {
        return err(ApiError::not_found(d, name));
    };
    let result = if sub == Some("scale") {
        if !matches!(d.kind, Kind::Deployment | Kind::StatefulSet) {
            return err(ApiError::no_such_resource());
        }
        let mut scale = scale_of(&current);
        if let Err(e) = patch::apply(&mut scale, pt, body) {
            return err(patch_error(d, name, e));
        }
        apply_scale(d, &current, &scale)
            .and_then(|new| commit(&mut st, d, ns, name, current, new, None, dry_run))
            .map(|v| scale_of(&v))
    } else {
        let mut new = current.clone();
        if let Err(e) = patch::apply(&mut new, pt, body) {
            return err(patch_error(d, name, e));
        }
        // A merge patch that names a resourceVersion is a precondition; otherwise it applies
        // to whatever is current.
        if !patched_rv(pt, body) {
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        }
        commit(&mut st, d, ns, name, current, new, sub, dry_run)
    };
    match result {
        Ok(v) => ok(&v),
        Err(e) => err(e),
    }
}

fn patch_error(d: &ResourceDef, name: &str, e: patch::PatchError) -> ApiError {
    match e {
        patch::PatchError::Malformed(m) => ApiError::bad_request(m),
        patch::PatchError::NotApplicable(m) => ApiError::invalid(d, name, "patch", &m),
    }
}

fn patched_rv(pt: PatchType, body: &Bytes) -> bool {
    match pt {
        PatchType::Json => false,
        _ => serde_json::from_slice::<Value>(body).ok().is_some_and(|v| {
            v.pointer("/metadata/resourceVersion")
                .is_some_and(Value::is_string)
        }),
    }
}

fn delete(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    p: &Params,
    body: &Bytes,
) -> Response {
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return err(ApiError::bad_request(format!(
                    "the DeleteOptions body is not valid JSON: {e}"
                )));
            }
        }
    };
    let grace = opts["gracePeriodSeconds"].as_u64().or(p.grace);
    let ns = ns.unwrap_or("");
    let mut st = c.lock();
    let Some(current) = st.store.get(d.kind, ns, name).cloned() else {
        return err(ApiError::not_found(d, name));
    };
    if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str)
        && uid != &*current.uid
    {
        return err(ApiError::conflict(
            d,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current.uid
            ),
        ));
    }
    if let Some(rv) = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        && rv != current.rv.to_string()
    {
        return err(ApiError::conflict(
            d,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                current.rv
            ),
        ));
    }
    if p.dry_run {
        return ok(&current.value());
    }
    match st.delete_object(d.kind, ns, name, grace) {
        Some(v) => ok(&v),
        None => err(ApiError::not_found(d, name)),
    }
}

fn delete_collection(
    c: &SimCluster,
    d: &'static ResourceDef,
    ns: Option<&str>,
    p: &Params,
) -> Response {
    let (l, f) = match selectors(d, p) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let mut st = c.lock();
    let keys: Vec<(String, String)> = st
        .store
        .iter_ns(d.kind, ns)
        .filter(|((a, b), s)| matches((a, b), s, &l, &f))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    if !p.dry_run {
        for (kns, kname) in keys {
            if let Some(v) = st.delete_object(d.kind, &kns, &kname, p.grace) {
                items.push(v);
            }
        }
    }
    let rv = st.store.rv;
    ok(
        &json!({"kind": d.list_kind(), "apiVersion": d.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    )
}

fn evict(c: &SimCluster, ns: &str, name: &str, body: &Bytes, dry_run: bool) -> Response {
    let v = match parse_body(body) {
        Ok(v) => v,
        Err(e) => return err(e),
    };
    if let Some(k) = v.get("kind").and_then(Value::as_str)
        && k != "Eviction"
    {
        return err(ApiError::bad_request(format!(
            "the body is a {k}, but pods/eviction takes Eviction"
        )));
    }
    if let Some(n) = v.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object ({n} vs {name})"
        )));
    }
    let mut st = c.lock();
    if dry_run {
        return match st.store.get(Kind::Pod, ns, name) {
            Some(_) => created(&success_status()),
            None => err(ApiError::not_found(resources::def(Kind::Pod), name)),
        };
    }
    match st.evict(ns, name, &v) {
        Ok(EvictionOutcome::Evicted) => created(&success_status()),
        Ok(EvictionOutcome::Refused(e)) => err(e),
        Err(e) => err(e),
    }
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

// ---- logs ---------------------------------------------------------------------------------

fn text_response(body: Vec<u8>) -> Response {
    json_response(200, body, "text/plain")
}

/// Appends rendered lines to `out` until `budget` (limitBytes) runs out; false once it has.
fn push_lines(
    out: &mut Vec<u8>,
    lines: &[logs::LogLine],
    timestamps: bool,
    budget: &mut Option<usize>,
) -> bool {
    for l in lines {
        let s = logs::render(l, timestamps);
        match budget {
            Some(left) if s.len() >= *left => {
                out.extend_from_slice(&s.as_bytes()[..*left]);
                *left = 0;
                return false;
            }
            Some(left) => *left -= s.len(),
            None => {}
        }
        out.extend_from_slice(s.as_bytes());
    }
    true
}

/// A container's log: the kept history at once, then (with `follow`) new lines about every
/// second while the container runs, until the pod is deleted or the client goes away.
async fn pod_log(c: Arc<SimCluster>, ns: String, name: String, query: &str) -> Response {
    let q = match logs::LogQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return err(e),
    };
    let pods = resources::def(Kind::Pod);
    let (uid, source) = {
        let st = c.lock();
        let Some(stored) = st.store.get(Kind::Pod, &ns, &name) else {
            return err(ApiError::not_found(pods, &name));
        };
        match logs::resolve(&stored.value(), &q) {
            Ok(s) => (stored.uid.clone(), s),
            Err(e) => return err(e),
        }
    };
    let (lines, mut next) = source.history(&q, Utc::now());
    let mut budget = q.limit_bytes;
    let mut first = Vec::new();
    let open = push_lines(&mut first, &lines, q.timestamps, &mut budget);
    drop(lines);
    if !q.follow || !open || source.finished.is_some() {
        return text_response(first);
    }
    let (tx, out_rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            let alive = c
                .lock()
                .store
                .get(Kind::Pod, &ns, &name)
                .is_some_and(|s| s.uid == uid);
            if !alive {
                return;
            }
            let end = source.written(Utc::now());
            // A client that fell far behind gets the newest lines, as after a log rotation.
            let from = next.max(end.saturating_sub(logs::MAX_HISTORY_LINES));
            let fresh: Vec<logs::LogLine> = (from..end).map(|i| source.line(i)).collect();
            next = end;
            if fresh.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            let open = push_lines(&mut out, &fresh, q.timestamps, &mut budget);
            if tx.send(Ok(Bytes::from(out))).await.is_err() || !open {
                return;
            }
        }
    });
    let mut r = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(out_rx),
    ));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

// ---- watch --------------------------------------------------------------------------------

/// How one watch encodes what it sends.
struct WatchEncoder {
    kind: Kind,
    table: Option<IncludeObject>,
    sent_columns: bool,
}

impl WatchEncoder {
    fn event(&mut self, typ: &str, s: &Stored) -> Bytes {
        let mut out = Vec::with_capacity(s.raw.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(typ.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.table {
            None => out.extend_from_slice(&s.raw),
            Some(include) => {
                let row = table::row(self.kind, &s.value(), include, Utc::now());
                let t = table::table(self.kind, vec![row], s.rv, None, !self.sent_columns);
                self.sent_columns = true;
                out.extend_from_slice(&serde_json::to_vec(&t).unwrap_or_default());
            }
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn error(e: &ApiError) -> Bytes {
        let mut out =
            serde_json::to_vec(&json!({"type": "ERROR", "object": e.status()})).unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    }

    fn bookmark(&self, rv: u64) -> Bytes {
        let d = resources::def(self.kind);
        let mut out = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": {
            "kind": d.kind_name, "apiVersion": d.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
        }}))
        .unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    }
}

fn too_old(rv: u64, oldest: u64) -> ApiError {
    ApiError::gone(format!("too old resource version: {rv} ({oldest})"))
}

async fn watch(
    c: Arc<SimCluster>,
    d: &'static ResourceDef,
    ns: Option<String>,
    p: Params,
    table: Option<IncludeObject>,
    flaky: bool,
) -> Response {
    let (l, f) = match selectors(d, &p) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let start_rv = match p.rv.as_deref() {
        None | Some("0") => None,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return err(ApiError::bad_request(format!(
                    "invalid resourceVersion {s:?}: a watch takes the resourceVersion of a list or object"
                )));
            }
        },
    };
    let mut enc = WatchEncoder {
        kind: d.kind,
        table,
        sent_columns: false,
    };
    // Collected under the lock (cheap: shared bytes), encoded in the stream task, so a big
    // initial listing neither holds the lock nor sits in memory twice.
    let mut initial: Vec<(&'static str, Stored)> = Vec::new();
    let mut expired: Option<ApiError> = None;
    let (mut rx, mut last_rv) = {
        let mut st = c.lock();
        st.store.counters.watches_started += 1;
        st.store.counters.watches_open += 1;
        let rx = st.store.tx.subscribe();
        let rv = st.store.rv;
        match start_rv {
            None => {
                for ((kns, kname), s) in st.store.iter_ns(d.kind, ns.as_deref()) {
                    if matches((kns, kname), s, &l, &f) {
                        initial.push(("ADDED", s.clone()));
                    }
                }
            }
            Some(from) => match st.store.events_since(from) {
                None => expired = Some(too_old(from, st.store.window_start)),
                Some(evs) => {
                    for e in evs {
                        if let Some(sent) = event_matches(&e, d.kind, ns.as_deref(), &l, &f) {
                            initial.push(sent);
                        }
                    }
                }
            },
        }
        (rx, rv)
    };
    let (tx, out_rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(256);
    let timeout = p.timeout.map(Duration::from_secs);
    let flaky_end = if flaky {
        let mut rng = c.rng.lock().unwrap_or_else(|e| e.into_inner());
        Some(Duration::from_secs(rng.gen_range(5..15)))
    } else {
        None
    };
    let bookmarks = p.bookmarks;
    let c2 = c.clone();
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let deadline = timeout.map(|t| started + t);
        // A fixed point in time: events and bookmarks must not push it back.
        let flaky_deadline = started + flaky_end.unwrap_or(Duration::from_secs(86_400 * 365));
        let mut bookmark_tick = tokio::time::interval(Duration::from_secs(10));
        bookmark_tick.tick().await;
        let mut alive = true;
        for (typ, obj) in &initial {
            if tx.send(Ok(enc.event(typ, obj))).await.is_err() {
                alive = false;
                break;
            }
        }
        drop(initial);
        if let Some(e) = &expired {
            let _ = tx.send(Ok(WatchEncoder::error(e))).await;
        }
        while alive && expired.is_none() {
            let sleep_until = deadline.unwrap_or(started + Duration::from_secs(86_400 * 365));
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        last_rv = e.obj.rv;
                        if let Some((typ, obj)) = event_matches(&e, enc.kind, ns.as_deref(), &l, &f) {
                            let b = enc.event(typ, &obj);
                            alive = tx.send(Ok(b)).await.is_ok();
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(WatchEncoder::error(&too_old(last_rv, last_rv + 1)))).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = bookmark_tick.tick(), if bookmarks => {
                    let b = enc.bookmark(last_rv);
                    alive = tx.send(Ok(b)).await.is_ok();
                }
                _ = tokio::time::sleep_until(sleep_until) => break,
                _ = tokio::time::sleep_until(flaky_deadline), if flaky_end.is_some() => {
                    let _ = tx.send(Ok(WatchEncoder::error(&ApiError::gone("too old resource version (simulated by scenario api-flaky)")))).await;
                    break;
                }
                _ = tx.closed() => break,
            }
        }
        let mut st = c2.lock();
        st.store.counters.watches_open = st.store.counters.watches_open.saturating_sub(1);
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out_rx);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r.into_response()
}

/// How a filtered watch sees an event: its type and the object to send, or `None` when the
/// event does not concern the watch. An object that stopped matching the selectors is DELETED
/// for the watch, sent as it last matched at the event's resourceVersion (as the API server's
/// watch cache does); one that started matching is ADDED.
fn event_matches(
    e: &WatchEvent,
    kind: Kind,
    ns: Option<&str>,
    l: &LabelSelector,
    f: &FieldSelector,
) -> Option<(&'static str, Stored)> {
    if e.kind != kind || ns.is_some_and(|n| n != e.namespace) {
        return None;
    }
    let now = matches((&e.namespace, &e.name), &e.obj, l, f);
    let prev = e
        .prev
        .as_ref()
        .filter(|p| matches((&e.namespace, &e.name), p, l, f));
    match (e.typ, e.prev.is_some(), prev, now) {
        ("MODIFIED", true, None, true) => Some(("ADDED", e.obj.clone())),
        ("MODIFIED", _, Some(p), false) => Some(("DELETED", p.at_rv(e.obj.rv))),
        (_, _, _, true) => Some((e.typ, e.obj.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::store::ClusterStore;

    #[test]
    fn filtered_watch_sees_objects_leave_and_enter_its_selector() {
        let mut s = ClusterStore::new("t", 1);
        s.create(Kind::Namespace, json!({"metadata": {"name": "a"}}), true)
            .unwrap();
        let mut rx = s.tx.subscribe();
        let pod = s
            .create(
                Kind::Pod,
                json!({"metadata": {"name": "p", "namespace": "a", "labels": {"tier": "web"}}}),
                true,
            )
            .unwrap();
        let mut moved = pod.clone();
        moved["metadata"]["labels"]["tier"] = json!("db");
        s.replace(Kind::Pod, moved.clone());
        moved["metadata"]["labels"]["tier"] = json!("web");
        s.replace(Kind::Pod, moved);
        let sel = LabelSelector::parse("tier=web").unwrap();
        let none = FieldSelector::default();
        let seen: Vec<(&str, String)> = (0..3)
            .map(|_| {
                let e = rx.try_recv().unwrap();
                let (typ, obj) = event_matches(&e, Kind::Pod, Some("a"), &sel, &none).unwrap();
                assert_eq!(obj.rv, e.obj.rv, "sent at the event's resourceVersion");
                (typ, obj.labels["tier"].clone())
            })
            .collect();
        let want = [("ADDED", "web"), ("DELETED", "web"), ("ADDED", "web")];
        assert_eq!(seen, want.map(|(t, l)| (t, l.to_string())));
    }

    #[test]
    fn routes_tell_collections_objects_and_subresources_apart() {
        assert!(
            matches!(route("/api/v1/namespaces/x/pods"), Ok(Route::Collection(d, Some(_))) if d.kind == Kind::Pod)
        );
        assert!(
            matches!(route("/api/v1/namespaces/x"), Ok(Route::Object(d, None, _)) if d.kind == Kind::Namespace)
        );
        assert!(
            matches!(route("/api/v1/namespaces/x/pods/p/eviction"), Ok(Route::Sub(_, _, _, s)) if s == "eviction")
        );
        assert!(
            matches!(route("/apis/apps/v1/deployments"), Ok(Route::Collection(d, None)) if d.kind == Kind::Deployment)
        );
        assert_eq!(
            route("/api/v1/nodes/n/x/y").err().map(|e| e.code),
            Some(404)
        );
        assert_eq!(
            route("/apis/nope.io/v1/things").err().map(|e| e.code),
            Some(404)
        );
    }
}
