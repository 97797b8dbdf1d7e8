//! The one-shot commands' HTTP client for a running daemon (`--attach URL` or `[attach] url`):
//! `incident`, `audit`, `store stats` and `runbook approve|deny` read and write the daemon's
//! store through its API. The credential is `--token-file`, `[attach] token_file`,
//! `$FLEETDECK_TOKEN`, or else the kubeconfig's current context: then a kube `Client` whose
//! cluster URL is the daemon's carries that context's auth (a token, a token file, an exec
//! plugin or an auth provider), so kube-rs adds and refreshes it as kubectl would.

use std::path::PathBuf;

use anyhow::{Context, bail};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;

use super::render::safe::visible;
use super::{AttachFlags, Cli};
use crate::config::Config;

/// How long one request may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

enum Transport {
    Bearer {
        client: reqwest::Client,
        token: String,
    },
    Kube(kube::Client),
}

/// A daemon the command works on.
pub(super) struct Remote {
    base: String,
    transport: Transport,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Remote")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A daemon's refusal: its status and message.
#[derive(Debug, thiserror::Error)]
#[error("{url} answered {status}: {message}")]
pub(super) struct Refused {
    pub url: String,
    pub status: StatusCode,
    pub message: String,
}

fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        bail!(
            "the token file {} is empty; write the bearer token into it",
            path.display()
        );
    }
    Ok(token)
}

impl Remote {
    /// The daemon `flags` (or `[attach]`) name, with its credential; `None` when neither names
    /// one (the command works on the local store).
    pub(super) fn from_flags(
        cli: &Cli,
        cfg: &Config,
        flags: &AttachFlags,
    ) -> anyhow::Result<Option<Remote>> {
        let flag = flags.attach.clone().filter(|u| !u.trim().is_empty());
        if flag.is_some() && cli.store.is_some() {
            bail!(
                "--attach and --store name two stores: give --attach URL for the daemon's, or --store PATH for a local one"
            );
        }
        // An explicit --store means the local store, whatever [attach] url says.
        let configured =
            Some(cfg.attach.url.clone()).filter(|u| !u.trim().is_empty() && cli.store.is_none());
        let Some(url) = flag.or(configured) else {
            return Ok(None);
        };
        let base = url.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).with_context(|| {
            format!("--attach {base:?} is not a URL; give the daemon's, e.g. https://fleetdeck.example:9180")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--attach {base:?} is not an http(s) URL");
        }
        let rt = super::runtime()?;
        let token_file = flags.token_file.clone().or_else(|| {
            Some(PathBuf::from(cfg.attach.token_file.trim())).filter(|p| !p.as_os_str().is_empty())
        });
        let token = match token_file {
            Some(p) => Some(read_token(&p)?),
            None => std::env::var("FLEETDECK_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        let transport = match token {
            Some(token) => Transport::Bearer {
                client: crate::sources::http::TlsRoots::load(&[(
                    "tls.ca_file",
                    cfg.tls.ca_file.as_str(),
                )])
                .map(|r| r.client_builder())
                .unwrap_or_else(|_| reqwest::Client::builder())
                .timeout(TIMEOUT)
                .build()
                .context("cannot build the HTTP client")?,
                token,
            },
            None => Transport::Kube(rt.block_on(kube_client(cli, cfg, &base))?),
        };
        Ok(Some(Remote {
            base,
            transport,
            rt,
        }))
    }

    /// The base URL, for messages and as the "store" a report names.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let url = self.url(path);
        match &self.transport {
            Transport::Bearer { client, token } => {
                let mut req = client.request(method, &url).bearer_auth(token);
                if let Some(b) = body {
                    req = req.json(b);
                }
                let r = req
                    .send()
                    .await
                    .with_context(|| format!("cannot reach the daemon at {url}"))?;
                let status = r.status();
                Ok((status, r.text().await.unwrap_or_default()))
            }
            Transport::Kube(client) => {
                let bytes = match body {
                    Some(b) => serde_json::to_vec(b)?,
                    None => Vec::new(),
                };
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(kube::client::Body::from(bytes))
                    .context("cannot build the request")?;
                let r = tokio::time::timeout(TIMEOUT, client.send(req))
                    .await
                    .with_context(|| {
                        format!(
                            "the daemon at {url} did not answer within {}s",
                            TIMEOUT.as_secs()
                        )
                    })?
                    .with_context(|| format!("cannot reach the daemon at {url}"))?;
                let status = r.status();
                let text = r
                    .into_body()
                    .collect_bytes()
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Ok((status, text))
            }
        }
    }

    /// The JSON of a 2xx answer; a refusal is a [`Refused`] error with the daemon's message
    /// (and, for a 403, the missing permission).
    pub(super) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, text) = self.rt.block_on(self.send(method, path, body))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return parsed.with_context(|| {
                format!(
                    "{} answered {status} with a body that is not JSON: {}",
                    self.url(path),
                    visible(text.trim())
                )
            });
        }
        let mut message = parsed
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().to_string());
        if let Some(m) = parsed
            .as_ref()
            .map(|v| &v["missing"])
            .filter(|m| m.is_object())
        {
            message.push_str(&format!(
                " (missing: {} {}.{}; see deploy/10-rbac.yaml's ClusterRoles)",
                m["verb"].as_str().unwrap_or(""),
                m["resource"].as_str().unwrap_or(""),
                m["group"].as_str().unwrap_or("")
            ));
        }
        Err(Refused {
            url: self.url(path),
            status,
            message: visible(&message).into_owned(),
        }
        .into())
    }

    pub(super) fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None)
    }

    pub(super) fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body))
    }

    /// `v[key]` read into `T`, naming the daemon when it does not fit.
    pub(super) fn field<T: serde::de::DeserializeOwned>(
        &self,
        v: &Value,
        key: &str,
    ) -> anyhow::Result<T> {
        serde_json::from_value(v[key].clone()).with_context(|| {
            format!(
                "the daemon at {} answered without a readable {key:?}: is it a fleetdeck of another version?",
                self.base
            )
        })
    }
}

/// A kube client for the daemon's URL with the current kubeconfig context's credentials.
pub(super) async fn kube_client(
    cli: &Cli,
    cfg: &Config,
    base: &str,
) -> anyhow::Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let no_credentials = "no credentials for the daemon: pass --token-file PATH, set [attach] token_file or $FLEETDECK_TOKEN, or use a kubeconfig whose context has a token or an exec plugin";
    let kubeconfig = match &cli.cluster.kubeconfig {
        Some(p) => Kubeconfig::read_from(p)
            .with_context(|| format!("cannot read the kubeconfig {}", p.display()))?,
        None => Kubeconfig::read().context(no_credentials)?,
    };
    let context = kubeconfig
        .current_context
        .clone()
        .with_context(|| format!("{no_credentials} (the kubeconfig has no current context)"))?;
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.user.clone())
        .unwrap_or_default();
    let auth = kubeconfig
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == user.as_ref())
        .and_then(|a| a.auth_info.clone())
        .unwrap_or_default();
    let bearer = auth.token.is_some()
        || auth.token_file.is_some()
        || auth.exec.is_some()
        || auth.auth_provider.is_some();
    if !bearer {
        if auth.client_certificate.is_some() || auth.client_certificate_data.is_some() {
            bail!(
                "the kubeconfig context {context:?} authenticates with a client certificate, which the daemon cannot check (it reviews bearer tokens); pass --token-file PATH"
            );
        }
        bail!("{no_credentials} (context {context:?} has none)");
    }
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .with_context(|| format!("cannot use the kubeconfig context {context:?}"))?;
    config.cluster_url = base
        .parse()
        .with_context(|| format!("{base:?} is not a URL"))?;
    // The daemon is not the cluster: its certificate is not the cluster CA's (a private CA is
    // [tls] ca_file's, as for the token-file client), and only the bearer credential is sent
    // (no client certificate, no proxy set for the cluster).
    config.root_cert = private_ca(cfg.tls.ca_file.trim())?;
    config.root_cert_file = None;
    config.tls_server_name = None;
    config.accept_invalid_certs = false;
    config.proxy_url = None;
    config.auth_info.client_certificate = None;
    config.auth_info.client_certificate_data = None;
    config.auth_info.client_key = None;
    config.auth_info.client_key_data = None;
    config.auth_info.impersonate = None;
    config.auth_info.impersonate_uid = None;
    config.auth_info.impersonate_groups = None;
    config.read_timeout = Some(TIMEOUT);
    kube::Client::try_from(config).context("cannot build a client for the daemon")
}

/// The DER certificates of `[tls] ca_file`, when one is set.
fn private_ca(file: &str) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
    use rustls::pki_types::pem::PemObject;
    if file.is_empty() {
        return Ok(None);
    }
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
        .with_context(|| format!("[tls] ca_file {file} cannot be read"))?
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("[tls] ca_file {file} is not PEM certificates"))?;
    if certs.is_empty() {
        bail!("[tls] ca_file {file} holds no PEM certificate");
    }
    Ok(Some(certs))
}
