//! The sim's authentication and authorization APIs: `POST
//! /apis/authentication.k8s.io/v1/tokenreviews` and `POST
//! /apis/authorization.k8s.io/v1/subjectaccessreviews`, answered from a small users file
//! (`fleetdeck sim --users FILE`; `--config-out` writes one with a viewer, a responder and an
//! approver), so that a daemon with `[headless] auth = "kubernetes"` runs its real client code
//! against it. Each user's role stands for a binding to the ClusterRole of that name in
//! deploy/10-rbac.yaml (`fleetdeck-viewer`, …); the rules below are those ClusterRoles'.
//! The kubeconfig's own user (`sim-admin`, token `fleetdeck-sim`) is in `system:masters`.
//! Shares no code with the daemon.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::ApiError;

/// The sim kubeconfig's own user and token.
pub const ADMIN_USER: &str = "sim-admin";
pub const ADMIN_TOKEN: &str = "fleetdeck-sim";
const MASTERS: &str = "system:masters";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path} (--users): {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the users file {path} (--users) is not [[user]] entries (name, token or token_file, role, groups): {message}"
    )]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the users file {path}: {source}; give --config-out a writable directory")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The audience the sim's API server issues tokens for (a real one's default).
const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    role: String,
    /// The audiences the user's token is issued for; empty: any asked.
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    user: Vec<Entry>,
}

/// One person the sim's API server knows.
#[derive(Clone)]
pub struct SimUser {
    pub name: String,
    token: String,
    pub groups: Vec<String>,
    pub role: String,
    /// What the token is issued for; empty: whatever a TokenReview asks.
    pub audiences: Vec<String>,
}

impl std::fmt::Debug for SimUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The users the sim's API servers authenticate.
#[derive(Debug, Clone, Default)]
pub struct SimUsers {
    users: Vec<SimUser>,
}

/// `(resource, verbs)` on group `fleetdeck.io` each role grants: deploy/10-rbac.yaml's
/// ClusterRoles `fleetdeck-<role>`.
fn rules(role: &str) -> &'static [(&'static str, &'static [&'static str])] {
    const VIEW: (&str, &[&str]) = ("incidents", &["get", "list", "watch"]);
    const RESPOND: (&str, &[&str]) = ("incidents", &["update"]);
    const APPROVE: (&str, &[&str]) = ("approvals", &["approve"]);
    const ACT: (&str, &[&str]) = ("actions", &["create"]);
    match role {
        "viewer" => &[VIEW],
        "responder" => &[VIEW, RESPOND],
        "approver" => &[VIEW, RESPOND, APPROVE],
        "actor" => &[VIEW, RESPOND, APPROVE, ACT],
        "alert-sender" => &[("alerts", &["create"])],
        _ => &[],
    }
}

const ROLES: [&str; 5] = ["viewer", "responder", "approver", "actor", "alert-sender"];

impl SimUsers {
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let invalid = |message: String| UsersError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut users = Vec::new();
        for e in file.user {
            if !ROLES.contains(&e.role.as_str()) {
                return Err(invalid(format!(
                    "user {:?}: role {:?} is not one of {}",
                    e.name,
                    e.role,
                    ROLES.join(", ")
                )));
            }
            let token = match (e.token, e.token_file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(dir.join(&f))
                    .map_err(|source| UsersError::Read {
                        path: dir.join(&f),
                        source,
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                (None, None) => {
                    return Err(invalid(format!("user {:?} has no token", e.name)));
                }
            };
            users.push(SimUser {
                name: e.name,
                token,
                groups: e.groups,
                role: e.role,
                audiences: e.audiences,
            });
        }
        Ok(Self { users })
    }

    /// Writes a users file with a viewer, a responder and an approver (random tokens, each
    /// also in `tokens/<name>` beside it, for `--token-file`) at `path`.
    pub fn write_team(path: &Path) -> Result<(), UsersError> {
        let write_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| UsersError::Write { path: p, source }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(write_err(&tokens))?;
        let mut text = String::from(
            "# fleetdeck sim's users: who the sim's API servers authenticate (TokenReview) and\n# what their role's ClusterRole (deploy/10-rbac.yaml, fleetdeck-<role>) allows\n# (SubjectAccessReview). A daemon with [headless] auth = \"tokens\" reads the same file.\n",
        );
        let mut rng = rand::thread_rng();
        for role in ["viewer", "responder", "approver"] {
            let token: String = (0..32)
                .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
                .collect();
            let file = tokens.join(role);
            std::fs::write(&file, format!("{token}\n")).map_err(write_err(&file))?;
            text.push_str(&format!(
                "\n[[user]]\nname = \"{role}\"\ntoken_file = \"tokens/{role}\"\nrole = \"{role}\"\ngroups = [\"fleetdeck-{role}s\"]\n"
            ));
        }
        std::fs::write(path, text).map_err(write_err(path))
    }

    fn by_token(&self, token: &str) -> Option<SimUser> {
        if token == ADMIN_TOKEN {
            return Some(SimUser {
                name: ADMIN_USER.into(),
                token: String::new(),
                groups: vec![MASTERS.into(), "system:authenticated".into()],
                role: String::new(),
                audiences: Vec::new(),
            });
        }
        self.users
            .iter()
            .find(|u| !token.is_empty() && u.token == token)
            .cloned()
    }

    /// `POST …/tokenreviews`: the review with its status filled in.
    pub fn token_review(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut review = review_object(body, "TokenReview", "authentication.k8s.io/v1")?;
        let token = review["spec"]["token"].as_str().unwrap_or("").to_string();
        let asked: Vec<String> = review["spec"]["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        // As the API server: the audiences asked that the token is issued for (its own when
        // none is asked); none in common is not authenticated.
        let valid: Vec<String> = match self.by_token(&token) {
            Some(u) if asked.is_empty() => {
                if u.audiences.is_empty() {
                    vec![API_AUDIENCE.to_string()]
                } else {
                    u.audiences.clone()
                }
            }
            Some(u) if u.audiences.is_empty() => asked.clone(),
            Some(u) => asked
                .iter()
                .filter(|a| u.audiences.contains(a))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        review["status"] = match self.by_token(&token) {
            Some(u) if valid.is_empty() => json!({
                "authenticated": false,
                "user": {},
                "error": format!("token audiences {:?} is invalid for the target audiences {asked:?}", u.audiences),
            }),
            Some(u) => {
                let mut groups = u.groups.clone();
                if !groups.iter().any(|g| g == "system:authenticated") {
                    groups.push("system:authenticated".into());
                }
                json!({
                    "authenticated": true,
                    "user": {"username": u.name, "uid": format!("sim-{}", u.name), "groups": groups},
                    "audiences": valid,
                })
            }
            None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
        };
        Ok(review)
    }

    /// `POST …/subjectaccessreviews`: allowed when the user (or a group) is in
    /// `system:masters`, or the user's role grants the verb on the resource.
    pub fn access_review(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut review = review_object(body, "SubjectAccessReview", "authorization.k8s.io/v1")?;
        let spec = &review["spec"];
        let user = spec["user"].as_str().unwrap_or("");
        let groups: Vec<&str> = spec["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let attrs = &spec["resourceAttributes"];
        let (group, resource, verb) = (
            attrs["group"].as_str().unwrap_or(""),
            attrs["resource"].as_str().unwrap_or(""),
            attrs["verb"].as_str().unwrap_or(""),
        );
        let role = self
            .users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.role.as_str());
        let masters = groups.contains(&MASTERS) || user == ADMIN_USER;
        let granted = group == "fleetdeck.io"
            && role.is_some_and(|r| {
                rules(r)
                    .iter()
                    .any(|(res, verbs)| *res == resource && verbs.contains(&verb))
            });
        review["status"] = if masters {
            json!({"allowed": true, "reason": "system:masters"})
        } else if granted {
            json!({"allowed": true, "reason": format!("RBAC: allowed by ClusterRoleBinding \"fleetdeck-{}\" of ClusterRole \"fleetdeck-{}\" to User \"{user}\"", role.unwrap_or(""), role.unwrap_or(""))})
        } else {
            json!({"allowed": false, "reason": format!("no RBAC policy matched: {user:?} may not {verb} {resource}.{group}")})
        };
        Ok(review)
    }
}

/// The posted review, checked for its kind, with the server's metadata.
fn review_object(body: &[u8], kind: &str, api_version: &str) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "BadRequest", format!("the body is not a {kind}: {e}")))?;
    if v["kind"].as_str().is_some_and(|k| k != kind) {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!("the body's kind is {}, not {kind}", v["kind"]),
        ));
    }
    v["kind"] = json!(kind);
    v["apiVersion"] = json!(api_version);
    v["metadata"] = json!({"creationTimestamp": null});
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> SimUsers {
        SimUsers {
            users: vec![
                SimUser {
                    name: "vic".into(),
                    token: "vic-token".into(),
                    groups: vec!["oncall".into()],
                    role: "viewer".into(),
                    audiences: Vec::new(),
                },
                SimUser {
                    name: "sam".into(),
                    token: "sam-token".into(),
                    groups: Vec::new(),
                    role: "viewer".into(),
                    audiences: vec!["vault".into()],
                },
            ],
        }
    }

    #[test]
    fn a_token_review_answers_the_audiences_the_token_is_issued_for() {
        let review = |token: &str, audiences: &str| {
            users()
                .token_review(
                    format!(r#"{{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{{"token":"{token}","audiences":{audiences}}}}}"#)
                        .as_bytes(),
                )
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let any = review("vic-token", r#"["fleetdeck"]"#);
        assert_eq!(any["status"]["authenticated"], true);
        assert_eq!(any["status"]["audiences"], json!(["fleetdeck"]));
        let other = review("sam-token", r#"["fleetdeck"]"#);
        assert_eq!(other["status"]["authenticated"], false, "{other}");
        assert!(
            other["status"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("vault")),
            "{other}"
        );
        let own = review("sam-token", r#"["vault", "fleetdeck"]"#);
        assert_eq!(own["status"]["audiences"], json!(["vault"]));
    }

    #[test]
    fn a_token_review_names_the_user_or_says_it_is_not_authenticated() {
        let ok = users()
            .token_review(br#"{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":"vic-token"}}"#)
            .unwrap();
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(ok["status"]["user"]["username"], "vic");
        let bad = users()
            .token_review(br#"{"spec":{"token":"nope"}}"#)
            .unwrap();
        assert_eq!(bad["status"]["authenticated"], false);
    }

    #[test]
    fn an_access_review_follows_the_role() {
        let ask = |verb: &str, resource: &str| {
            users()
                .access_review(
                    format!(r#"{{"spec":{{"user":"vic","groups":["oncall"],"resourceAttributes":{{"group":"fleetdeck.io","resource":"{resource}","verb":"{verb}"}}}}}}"#)
                        .as_bytes(),
                )
                .unwrap()["status"]["allowed"]
                .clone()
        };
        assert_eq!(ask("get", "incidents"), true);
        assert_eq!(ask("approve", "approvals"), false);
    }
}
