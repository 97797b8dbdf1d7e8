//! Who is calling the daemon's API and what they may do: the bearer token read into a person
//! (`Caller`) and each request's verb (`Verb`) allowed or refused. Three ways, chosen by
//! `[headless] auth`: the old single token (`token`: its holder may do everything, named
//! `token:NAME`), a file of named tokens with a role each (`tokens`), or Kubernetes identities
//! (`kubernetes`: a TokenReview for who, a SubjectAccessReview on group `fleetdeck.io` for
//! each verb, as kube-rbac-proxy does, answers cached briefly). Tokens are never logged, and
//! every `Debug` here redacts them. May import config (and kube, k8s-openapi).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::HeadlessConfig;

/// The API group the daemon's permissions are named in (ClusterRoles in deploy/10-rbac.yaml).
pub const GROUP: &str = "fleetdeck.io";

/// How long a TokenReview's or SubjectAccessReview's answer is reused: the stream and the
/// cockpit's polling must not review every request, and a revoked binding still bites within
/// seconds.
pub const REVIEW_TTL: Duration = Duration::from_secs(10);

/// At most this many answers are kept (per kind); beyond it the expired ones go, then all.
const REVIEWS_KEPT: usize = 4096;

/// What a request asks to do. Each is one permission on group `fleetdeck.io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Every GET: incidents, runs, audit, store stats, the stream, /metrics.
    View,
    /// Acknowledge, resolve and annotate incidents.
    Respond,
    /// Approve or deny a runbook's pending plan.
    Approve,
    /// Plan and perform a manual action; the kill switch.
    Act,
    /// Deliver alerts to the intakes (Alertmanager, Grafana, …): a machine's verb.
    Deliver,
}

impl Verb {
    pub const ALL: [Verb; 5] = [
        Verb::View,
        Verb::Respond,
        Verb::Approve,
        Verb::Act,
        Verb::Deliver,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verb::View => "view",
            Verb::Respond => "respond",
            Verb::Approve => "approve",
            Verb::Act => "act",
            Verb::Deliver => "deliver",
        }
    }

    /// The `fleetdeck.io` resource the SubjectAccessReview names.
    pub fn resource(self) -> &'static str {
        match self {
            Verb::View | Verb::Respond => "incidents",
            Verb::Approve => "approvals",
            Verb::Act => "actions",
            Verb::Deliver => "alerts",
        }
    }

    /// The Kubernetes verb the SubjectAccessReview names.
    pub fn k8s_verb(self) -> &'static str {
        match self {
            Verb::View => "get",
            Verb::Respond => "update",
            Verb::Approve => "approve",
            Verb::Act | Verb::Deliver => "create",
        }
    }

    /// The verb a request to the daemon's API needs: every GET views; what changes an incident
    /// responds; a verdict approves; a manual action or the kill switch acts; an alert
    /// delivery delivers.
    pub fn of_request(method: &axum::http::Method, path: &str) -> Verb {
        if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
            return Verb::View;
        }
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match parts.as_slice() {
            ["api", "v1", "alerts", ..] => Verb::Deliver,
            ["api", "v1", "runs", _, "approve" | "deny"] => Verb::Approve,
            ["api", "v1", "incidents", ..] => Verb::Respond,
            // Anything else that changes something (actions, the kill switch, what comes
            // later) wants the strongest verb.
            _ => Verb::Act,
        }
    }
}

/// A role of the named tokens file, matching the ClusterRoles deploy/ ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Responder,
    Approver,
    Actor,
    AlertSender,
}

impl Role {
    pub fn allows(self, verb: Verb) -> bool {
        match self {
            Role::Viewer => verb == Verb::View,
            Role::Responder => matches!(verb, Verb::View | Verb::Respond),
            Role::Approver => matches!(verb, Verb::View | Verb::Respond | Verb::Approve),
            Role::Actor => verb != Verb::Deliver,
            Role::AlertSender => verb == Verb::Deliver,
        }
    }
}

/// Who a request comes from, as the daemon vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The name every record it makes carries (`Actor::User(name)`).
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
    grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Grants {
    /// The single shared token: every verb, as before identities.
    Everything,
    Role(Role),
    /// Each verb asked of the cluster with a SubjectAccessReview.
    Kubernetes,
}

impl Caller {
    /// A caller with every permission, named `name` (tests, and the shared token).
    pub fn trusted(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            groups: Vec::new(),
            uid: String::new(),
            grants: Grants::Everything,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, or one nobody vouches for.
    Unauthenticated(String),
    /// 403: a known caller without the permission.
    Forbidden {
        caller: String,
        verb: Verb,
        why: String,
    },
    /// 503: the cluster that reviews tokens cannot be asked right now.
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "[headless] auth = {0:?} is not a way to authenticate; use \"token\", \"tokens\" or \"kubernetes\""
    )]
    UnknownMode(String),
    #[error(
        "[headless] auth = \"tokens\" needs users_file: a TOML file of [[user]] entries (name, token or token_file, role)"
    )]
    NoUsersFile,
    #[error(
        "the users file {path} cannot be read: {source}; fix [headless] users_file or its permissions"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the users file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "[headless] auth = \"kubernetes\" needs a cluster to send TokenReviews to: the daemon has no client for {context:?} (set [headless] lease_context or give a kubeconfig)"
    )]
    NoCluster { context: String },
}

/// One entry of the users file. `token` or `token_file` gives its token; `groups` and
/// `audiences` are read (the sim answers TokenReviews from the same file) and otherwise unused
/// here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    role: Role,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

/// A named token as kept in memory: its digest, never the token.
#[derive(Clone)]
struct NamedToken {
    digest: [u8; 32],
    name: String,
    role: Role,
    groups: Vec<String>,
}

impl std::fmt::Debug for NamedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// Compared in constant time, over digests so that a token's length does not show either.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Reads the named tokens file: `[[user]]` entries with `name`, `role` and `token` (or
/// `token_file`, relative to the users file). Two users with one token, or one name twice, are
/// refused: a record must name one person.
fn load_users(path: &Path) -> Result<Vec<NamedToken>, IdentityError> {
    let invalid = |message: String| IdentityError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // toml's error quotes the offending line, which may hold a token: only its place is kept.
    let file: UsersFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].lines().count().max(1);
                format!(" at line {line}")
            })
            .unwrap_or_default();
        invalid(format!(
            "it is not a TOML file of [[user]] entries (name, token or token_file, role viewer|responder|approver|actor|alert-sender){at}: {}",
            e.message()
        ))
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<NamedToken> = Vec::new();
    for (i, u) in file.user.into_iter().enumerate() {
        let name = u.name.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(invalid(format!("user #{} has no usable name", i + 1)));
        }
        let token = match (u.token, u.token_file) {
            (Some(t), None) => t,
            (None, Some(f)) => {
                let p = dir.join(f.trim());
                std::fs::read_to_string(&p)
                    .map_err(|source| IdentityError::Read {
                        path: p.clone(),
                        source,
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            }
            _ => {
                return Err(invalid(format!(
                    "user {name:?} needs exactly one of token and token_file"
                )));
            }
        };
        if token.trim().len() < 16 {
            return Err(invalid(format!(
                "user {name:?}'s token is shorter than 16 characters; use a long random one (openssl rand -hex 32)"
            )));
        }
        let d = digest(&token);
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(format!("user {name:?} is named twice")));
        }
        if out.iter().any(|o| same(&o.digest, &d)) {
            return Err(invalid(format!(
                "user {name:?} has the same token as another user; give each person their own"
            )));
        }
        out.push(NamedToken {
            digest: d,
            name,
            role: u.role,
            groups: u.groups,
        });
    }
    if out.is_empty() {
        return Err(invalid("it names no [[user]]".into()));
    }
    Ok(out)
}

/// Answers kept for `REVIEW_TTL`, at most `REVIEWS_KEPT`.
struct Recent<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(k)
            .filter(|(at, _)| at.elapsed() < REVIEW_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, k: K, v: V) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= REVIEWS_KEPT {
            m.retain(|_, (at, _)| at.elapsed() < REVIEW_TTL);
            if m.len() >= REVIEWS_KEPT {
                m.clear();
            }
        }
        m.insert(k, (Instant::now(), v));
    }
}

/// How the daemon authenticates.
// One per daemon, never moved after start-up: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Mode {
    Token,
    Tokens(Vec<NamedToken>),
    Kubernetes {
        client: kube::Client,
        /// `[headless] token_audiences`: what a token must be issued for (empty: the API
        /// server's own audiences).
        audiences: Vec<String>,
        /// Token digest → who it is (or why nobody).
        tokens: Recent<[u8; 32], Result<Caller, String>>,
        /// (user, verb) → allowed, or why not.
        access: Recent<(String, Verb), Result<(), String>>,
    },
}

/// The daemon's authenticator. Cheap to share (`Arc`).
pub struct Identities {
    mode: Mode,
    /// The single shared token and its name, when one is configured: it keeps working in
    /// every mode (Alertmanager's credential, existing scripts), with every verb.
    shared: Option<([u8; 32], String)>,
    /// Why the shared token is absent, for the 401 of a daemon with nothing configured.
    token_env: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Token => "token".to_string(),
            Mode::Tokens(u) => format!("tokens ({} users)", u.len()),
            Mode::Kubernetes { .. } => "kubernetes".to_string(),
        };
        f.debug_struct("Identities")
            .field("mode", &mode)
            .field("shared", &self.shared.as_ref().map(|(_, n)| n.as_str()))
            .finish()
    }
}

/// The name the shared token's holder is recorded under: `token:FILE-NAME` or
/// `token:$VARIABLE`, as before named identities.
pub fn shared_token_name(cfg: &HeadlessConfig) -> String {
    let file = cfg.token_file.trim();
    if !file.is_empty() {
        let name = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.to_string());
        return format!("token:{name}");
    }
    format!("token:${}", cfg.token_env.trim())
}

/// The values `[headless] auth` takes.
pub const MODES: [&str; 3] = ["token", "tokens", "kubernetes"];

impl Identities {
    /// The single-token mode: `token`'s holder (when one is configured) may do everything.
    pub fn single(token: Option<String>, cfg: &HeadlessConfig) -> Self {
        Self {
            mode: Mode::Token,
            shared: token.map(|t| (digest(&t), shared_token_name(cfg))),
            token_env: cfg.token_env.clone(),
        }
    }

    /// As `[headless] auth` says; `kube` is the client of the daemon's own cluster (the
    /// Lease's), where TokenReviews and SubjectAccessReviews go.
    pub fn from_config(
        cfg: &HeadlessConfig,
        token: Option<String>,
        kube: Option<kube::Client>,
        cluster: &str,
    ) -> Result<Self, IdentityError> {
        let mut me = Self::single(token, cfg);
        me.mode = match cfg.auth.trim() {
            "" | "token" => Mode::Token,
            "tokens" => {
                let file = cfg.users_file.trim();
                if file.is_empty() {
                    return Err(IdentityError::NoUsersFile);
                }
                Mode::Tokens(load_users(Path::new(file))?)
            }
            "kubernetes" => Mode::Kubernetes {
                client: kube.ok_or_else(|| IdentityError::NoCluster {
                    context: cluster.to_string(),
                })?,
                audiences: cfg
                    .token_audiences
                    .iter()
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect(),
                tokens: Recent::new(),
                access: Recent::new(),
            },
            other => return Err(IdentityError::UnknownMode(other.to_string())),
        };
        Ok(me)
    }

    /// The mode's name, for the start-up log.
    pub fn mode(&self) -> &'static str {
        match self.mode {
            Mode::Token => "token",
            Mode::Tokens(_) => "tokens",
            Mode::Kubernetes { .. } => "kubernetes",
        }
    }

    /// Who holds `bearer` (the Authorization header's token, `None` when absent).
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, Refusal> {
        let Some(token) = bearer.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(Refusal::Unauthenticated(
                "an Authorization: Bearer <token> header is required".into(),
            ));
        };
        let d = digest(token);
        if let Some((want, name)) = &self.shared
            && same(want, &d)
        {
            return Ok(Caller::trusted(name.clone()));
        }
        match &self.mode {
            Mode::Token if self.shared.is_none() => Err(Refusal::Unauthenticated(format!(
                "this daemon has no API token configured: set [headless] token_file or ${}, then restart it",
                self.token_env
            ))),
            Mode::Token => Err(Refusal::Unauthenticated(
                "the bearer token is not this daemon's".into(),
            )),
            Mode::Tokens(users) => {
                // Every entry is compared, so the time taken does not say which one matched.
                let mut found = None;
                for u in users {
                    if same(&u.digest, &d) {
                        found = Some(u);
                    }
                }
                found
                    .map(|u| Caller {
                        name: u.name.clone(),
                        groups: u.groups.clone(),
                        uid: String::new(),
                        grants: Grants::Role(u.role),
                    })
                    .ok_or_else(|| {
                        Refusal::Unauthenticated(
                            "the bearer token is not in this daemon's users file".into(),
                        )
                    })
            }
            Mode::Kubernetes {
                client,
                tokens,
                audiences,
                ..
            } => {
                if let Some(known) = tokens.get(&d) {
                    return known.map_err(Refusal::Unauthenticated);
                }
                let answer = token_review(client, token, audiences).await?;
                tokens.put(d, answer.clone());
                answer.map_err(Refusal::Unauthenticated)
            }
        }
    }

    /// Whether `caller` may `verb`.
    pub async fn authorize(&self, caller: &Caller, verb: Verb) -> Result<(), Refusal> {
        let forbidden = |why: String| Refusal::Forbidden {
            caller: caller.name.clone(),
            verb,
            why,
        };
        match (&caller.grants, &self.mode) {
            (Grants::Everything, _) => Ok(()),
            (Grants::Role(role), _) if role.allows(verb) => Ok(()),
            (Grants::Role(role), _) => Err(forbidden(format!(
                "{} has role {role:?} in the users file, which does not allow {}",
                caller.name,
                verb.name()
            ))),
            (Grants::Kubernetes, Mode::Kubernetes { client, access, .. }) => {
                let key = (caller.name.clone(), verb);
                let answer = match access.get(&key) {
                    Some(a) => a,
                    None => {
                        let a = access_review(client, caller, verb).await?;
                        access.put(key, a.clone());
                        a
                    }
                };
                answer.map_err(forbidden)
            }
            (Grants::Kubernetes, _) => Err(forbidden(
                "a Kubernetes identity on a daemon that does not use Kubernetes auth".into(),
            )),
        }
    }
}

fn unavailable(what: &str, e: kube::Error) -> Refusal {
    tracing::warn!(error = %e, "the {what} could not be made");
    Refusal::Unavailable(format!(
        "the daemon's cluster could not review the credentials ({what}): {e}; grant the daemon create on authentication.k8s.io/tokenreviews and authorization.k8s.io/subjectaccessreviews (deploy/10-rbac.yaml)"
    ))
}

/// `Ok(Ok(caller))` when the cluster vouches for `token`; `Ok(Err(why))` when it does not;
/// `Err` when it cannot be asked (not cached: the next request asks again).
async fn token_review(
    client: &kube::Client,
    token: &str,
    audiences: &[String],
) -> Result<Result<Caller, String>, Refusal> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
        },
        ..TokenReview::default()
    };
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("TokenReview", e))?;
    let status = answer.status.unwrap_or_default();
    // The API server answers the audiences the token is valid for among those asked; one
    // that names none of ours was issued for another service.
    if !audiences.is_empty()
        && status.authenticated == Some(true)
        && !status
            .audiences
            .iter()
            .flatten()
            .any(|a| audiences.contains(a))
    {
        return Ok(Err(format!(
            "the bearer token is not issued for this daemon's audiences ({}): request one with that audience (kubectl create token SA --audience {})",
            audiences.join(", "),
            audiences[0]
        )));
    }
    let user = status.user.unwrap_or_default();
    Ok(match (status.authenticated, user.username) {
        (Some(true), Some(name)) if !name.trim().is_empty() => Ok(Caller {
            name,
            groups: user.groups.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            grants: Grants::Kubernetes,
        }),
        _ => Err(format!(
            "the cluster does not accept the bearer token (TokenReview){}",
            status.error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
    })
}

/// `Ok(Ok(()))` when the cluster allows `caller` the verb; `Ok(Err(why))` when not.
async fn access_review(
    client: &kube::Client,
    caller: &Caller,
    verb: Verb,
) -> Result<Result<(), String>, Refusal> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(caller.name.clone()),
            groups: Some(caller.groups.clone()),
            uid: (!caller.uid.is_empty()).then(|| caller.uid.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.into()),
                resource: Some(verb.resource().into()),
                verb: Some(verb.k8s_verb().into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("SubjectAccessReview", e))?;
    let status = answer.status.unwrap_or_default();
    Ok(if status.allowed {
        Ok(())
    } else {
        Err(format!(
            "RBAC does not allow {} to {} {}.{}{}",
            caller.name,
            verb.k8s_verb(),
            verb.resource(),
            GROUP,
            status
                .reason
                .filter(|r| !r.is_empty())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ))
    })
}

/// A shareable authenticator.
pub type SharedIdentities = Arc<Identities>;

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Result<Vec<NamedToken>, IdentityError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::write(dir.path().join("ana.token"), "ana-token-0123456789abcdef\n").unwrap();
        load_users(&p)
    }

    #[test]
    fn reviews_are_kept_briefly_and_boundedly() {
        let r: Recent<u32, bool> = Recent::new();
        for i in 0..(REVIEWS_KEPT as u32 + 10) {
            r.put(i, true);
        }
        let kept = r.map.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(kept <= REVIEWS_KEPT, "{kept}");
        assert_eq!(r.get(&(REVIEWS_KEPT as u32 + 9)), Some(true));
        if let Ok(mut m) = r.map.lock()
            && let Some(e) = m.get_mut(&(REVIEWS_KEPT as u32 + 9))
        {
            e.0 = Instant::now() - REVIEW_TTL;
        }
        assert_eq!(r.get(&(REVIEWS_KEPT as u32 + 9)), None, "expired");
    }

    #[test]
    fn verbs_follow_method_and_path() {
        use axum::http::Method;
        assert_eq!(
            Verb::of_request(&Method::GET, "/api/v1/incidents"),
            Verb::View
        );
        assert_eq!(
            Verb::of_request(&Method::POST, "/api/v1/incidents/3/notes"),
            Verb::Respond
        );
        assert_eq!(
            Verb::of_request(&Method::POST, "/api/v1/runs/3/deny"),
            Verb::Approve
        );
        assert_eq!(
            Verb::of_request(&Method::POST, "/api/v1/kill-switch"),
            Verb::Act
        );
        assert_eq!(
            Verb::of_request(&Method::POST, "/api/v1/alerts/grafana"),
            Verb::Deliver
        );
    }

    #[test]
    fn roles_grow_from_viewer_to_actor() {
        assert!(Role::Viewer.allows(Verb::View) && !Role::Viewer.allows(Verb::Respond));
        assert!(Role::Responder.allows(Verb::Respond) && !Role::Responder.allows(Verb::Approve));
        assert!(Role::Approver.allows(Verb::Approve) && !Role::Approver.allows(Verb::Act));
        assert!(Role::Actor.allows(Verb::Act) && !Role::Actor.allows(Verb::Deliver));
        assert!(Role::AlertSender.allows(Verb::Deliver) && !Role::AlertSender.allows(Verb::View));
    }

    #[test]
    fn a_users_file_reads_tokens_inline_and_from_files_and_debug_hides_them() {
        let u = users(
            "[[user]]\nname = \"ana\"\ntoken_file = \"ana.token\"\nrole = \"approver\"\n\n[[user]]\nname = \"bo\"\ntoken = \"bo-token-0123456789abcdef\"\nrole = \"viewer\"\ngroups = [\"oncall\"]\n",
        )
        .unwrap();
        assert_eq!(u.len(), 2);
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("bo-token") && !shown.contains("ana-token"),
            "{shown}"
        );
    }

    #[test]
    fn a_users_file_with_a_shared_or_short_token_or_a_bad_line_is_refused_without_echoing_it() {
        let twice = users(
            "[[user]]\nname = \"a\"\ntoken = \"same-token-0123456789\"\nrole = \"viewer\"\n[[user]]\nname = \"b\"\ntoken = \"same-token-0123456789\"\nrole = \"viewer\"\n",
        );
        assert!(matches!(twice, Err(IdentityError::Invalid { .. })));
        let short = users("[[user]]\nname = \"a\"\ntoken = \"short\"\nrole = \"viewer\"\n");
        assert!(short.is_err());
        let bad =
            users("[[user]]\nname = \"a\"\ntoken = \"secret-token-0123456789\"\nrole = \"king\"\n")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(bad.contains("line"), "{bad}");
        assert!(!bad.contains("secret-token"), "{bad}");
    }

    #[tokio::test]
    async fn named_tokens_name_the_person_and_refuse_what_their_role_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users.toml");
        std::fs::write(
            &p,
            "[[user]]\nname = \"vic\"\ntoken = \"vic-token-0123456789abcdef\"\nrole = \"viewer\"\n",
        )
        .unwrap();
        let cfg = HeadlessConfig {
            auth: "tokens".into(),
            users_file: p.display().to_string(),
            ..HeadlessConfig::default()
        };
        let ids = Identities::from_config(&cfg, Some("shared-0123456789abcdef".into()), None, "")
            .unwrap();
        let vic = ids
            .authenticate(Some("vic-token-0123456789abcdef"))
            .await
            .unwrap();
        assert_eq!(vic.name, "vic");
        assert!(ids.authorize(&vic, Verb::View).await.is_ok());
        assert!(matches!(
            ids.authorize(&vic, Verb::Approve).await,
            Err(Refusal::Forbidden {
                verb: Verb::Approve,
                ..
            })
        ));
        let shared = ids
            .authenticate(Some("shared-0123456789abcdef"))
            .await
            .unwrap();
        assert_eq!(shared.name, "token:$FLEETDECK_TOKEN");
        assert!(ids.authorize(&shared, Verb::Act).await.is_ok());
        assert!(matches!(
            ids.authenticate(Some("nobody-0123456789abcdef")).await,
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            ids.authenticate(None).await,
            Err(Refusal::Unauthenticated(_))
        ));
    }

    #[test]
    fn an_unknown_mode_or_tokens_without_a_file_is_a_config_error() {
        let cfg = HeadlessConfig {
            auth: "ldap".into(),
            ..HeadlessConfig::default()
        };
        assert!(matches!(
            Identities::from_config(&cfg, None, None, ""),
            Err(IdentityError::UnknownMode(_))
        ));
        let cfg = HeadlessConfig {
            auth: "tokens".into(),
            ..HeadlessConfig::default()
        };
        assert!(matches!(
            Identities::from_config(&cfg, None, None, ""),
            Err(IdentityError::NoUsersFile)
        ));
        let cfg = HeadlessConfig {
            auth: "kubernetes".into(),
            ..HeadlessConfig::default()
        };
        assert!(matches!(
            Identities::from_config(&cfg, None, None, "prod"),
            Err(IdentityError::NoCluster { .. })
        ));
    }
}
