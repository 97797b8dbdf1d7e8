//! Model registry source: for every endpoint that names a registered model (its
//! `[[endpoints]] registry`, or the `fleetdeck.io/registered-model` annotation on its serving
//! object), reads from MLflow's REST API the serving alias's version, the model's versions and
//! the alias moves fleetdeck recorded, every `[mlflow] interval`, and sends one
//! [`RegistryUpdate`] per endpoint. A failed read keeps the last good picture and says why.
//! Imports model and config.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::config::MlflowConfig;
use crate::model::Snapshot;
use crate::model::endpoint::EndpointConfig;
use crate::model::registry::{
    RegisteredModelView, RegistryRef, RegistryRefOrigin, read_model, wire,
};
use crate::model::update::{RegistryUpdate, Update};

/// How many versions a view keeps (newest first).
const VERSIONS_KEPT: usize = 50;

/// The HTTP client every talk with the registry uses: the bundled and native roots, the
/// private CAs of `[tls] ca_file` and `[mlflow] ca_file` (a bad file named by its key), the
/// `[mlflow] timeout`.
pub fn registry_http(cfg: &crate::config::Config) -> Result<reqwest::Client, String> {
    let roots = super::http::TlsRoots::load(&[
        ("tls.ca_file", &cfg.tls.ca_file),
        ("mlflow.ca_file", &cfg.mlflow.ca_file),
    ])
    .map_err(|e| e.to_string())?;
    roots
        .client_builder()
        .timeout(cfg.mlflow.timeout)
        .build()
        .map_err(|e| format!("cannot build the model registry's HTTP client: {e}"))
}

/// A read-only client of one MLflow tracking server's model registry.
#[derive(Clone)]
pub struct RegistryReader {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl RegistryReader {
    /// `http` is the sources' client (with the configured CA roots); the token is read now.
    pub fn new(cfg: &MlflowConfig, http: reqwest::Client) -> Result<Self, String> {
        Ok(Self {
            http,
            base: cfg.tracking_uri.trim().trim_end_matches('/').to_string(),
            token: cfg.read_token()?,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &(impl serde::Serialize + ?Sized),
    ) -> Result<T, String> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let mut req = self.http.get(&url).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: reading the answer: {e}"))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<wire::Error>(&body)
                .map(|e| format!("{}: {}", e.error_code, e.message))
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(format!(
                "GET {url} answered HTTP {}: {why}",
                status.as_u16()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not MLflow's answer: {e}"))
    }

    /// The registered model and its newest versions.
    pub async fn model(
        &self,
        name: &str,
    ) -> Result<(wire::RegisteredModel, Vec<wire::ModelVersion>), String> {
        let model: wire::GetRegisteredModel =
            self.get("registered-models/get", &[("name", name)]).await?;
        let versions: wire::SearchModelVersions = self
            .get(
                "model-versions/search",
                &wire::versions_query(name, VERSIONS_KEPT),
            )
            .await?;
        Ok((model.registered_model, versions.model_versions))
    }
}

/// The registered model endpoint `e` serves: its config's, else its serving object's
/// annotation in `snap`.
pub fn registry_ref(
    e: &EndpointConfig,
    snap: &Snapshot,
    default_alias: &str,
) -> Option<(String, String, RegistryRefOrigin)> {
    let with_alias = |r: &RegistryRef| {
        (
            r.model.clone(),
            r.alias.clone().unwrap_or_else(|| default_alias.to_string()),
        )
    };
    if let Some(r) = &e.registry {
        let (m, a) = with_alias(r);
        return Some((m, a, RegistryRefOrigin::Config));
    }
    let s = e.serving.as_ref()?;
    let cluster = snap.cluster(&s.cluster)?;
    let annotation = if s.kind.eq_ignore_ascii_case("Deployment") {
        cluster
            .deployments
            .iter()
            .find(|d| d.namespace == s.namespace && d.name == s.name)?
            .registered_model
            .clone()
    } else if s.kind.eq_ignore_ascii_case("InferenceService") {
        cluster
            .inference_services
            .iter()
            .find(|d| d.namespace == s.namespace && d.name == s.name)?
            .registered_model
            .clone()
    } else {
        None
    }?;
    let r = RegistryRef::from_annotation(&annotation)?;
    let (m, a) = with_alias(&r);
    Some((
        m,
        a,
        RegistryRefOrigin::Annotation(format!(
            "{}/{}/{}",
            s.kind.to_ascii_lowercase(),
            s.namespace,
            s.name
        )),
    ))
}

/// Reads each endpoint's registered model every `cfg.interval`, and at once when a new
/// snapshot names one an endpoint had not (its serving object's annotation appeared or
/// changed), and sends what it found.
pub fn spawn_registry(
    reader: RegistryReader,
    cfg: &MlflowConfig,
    endpoints: Vec<EndpointConfig>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    tx: mpsc::Sender<Update>,
) -> tokio::task::JoinHandle<()> {
    let interval = cfg.interval;
    let alias = cfg.alias.clone();
    tokio::spawn(async move {
        let mut last: BTreeMap<String, RegisteredModelView> = BTreeMap::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snapshots_open = true;
        loop {
            // Every endpoint on a tick; on a new snapshot only those whose model changed.
            let all = tokio::select! {
                _ = tick.tick() => true,
                changed = snapshots.changed(), if snapshots_open => {
                    snapshots_open = changed.is_ok();
                    // At most one look per second however often the fleet publishes.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    false
                }
            };
            let snap = snapshots.borrow_and_update().clone();
            for e in &endpoints {
                let wanted = registry_ref(e, &snap, &alias);
                let known = last.get(&e.name).map(|v| (&v.model, &v.alias));
                if !all && wanted.as_ref().map(|(m, a, _)| (m, a)) == known {
                    continue;
                }
                let update = match wanted {
                    None => {
                        if last.remove(&e.name).is_none() {
                            continue;
                        }
                        RegistryUpdate {
                            endpoint: e.name.clone(),
                            view: None,
                        }
                    }
                    Some((model, alias, origin)) => {
                        let view = poll_one(&reader, &e.name, model, alias, origin, &last).await;
                        last.insert(e.name.clone(), view.clone());
                        RegistryUpdate {
                            endpoint: e.name.clone(),
                            view: Some(view),
                        }
                    }
                };
                if tx.send(Update::Registry(Box::new(update))).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// One read of one endpoint's model; on failure, the last good view with the error.
async fn poll_one(
    reader: &RegistryReader,
    endpoint: &str,
    model: String,
    alias: String,
    origin: RegistryRefOrigin,
    last: &BTreeMap<String, RegisteredModelView>,
) -> RegisteredModelView {
    match reader.model(&model).await {
        Ok((m, versions)) => {
            let (version, versions, history) = read_model(&m, &versions, &alias);
            RegisteredModelView {
                endpoint: endpoint.to_string(),
                model,
                alias,
                origin,
                version,
                versions,
                history,
                fetched_at: Some(Utc::now()),
                error: None,
            }
        }
        Err(error) => {
            tracing::warn!(endpoint, model = %model, %error, "model registry read failed");
            let kept = last
                .get(endpoint)
                .filter(|v| v.model == model && v.alias == alias);
            RegisteredModelView {
                endpoint: endpoint.to_string(),
                model,
                alias,
                origin,
                version: kept.and_then(|v| v.version),
                versions: kept.map(|v| v.versions.clone()).unwrap_or_default(),
                history: kept.map(|v| v.history.clone()).unwrap_or_default(),
                fetched_at: kept.and_then(|v| v.fetched_at),
                error: Some(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_ca_file_that_cannot_be_read_is_named_by_its_key() {
        let mut cfg = crate::config::Config::default();
        cfg.mlflow.tracking_uri = "https://mlflow.ml.svc:5000".into();
        cfg.mlflow.ca_file = "/nonexistent/mlflow-ca.pem".into();
        let err = registry_http(&cfg).expect_err("a CA file that is not there");
        assert!(
            err.contains("mlflow.ca_file") && err.contains("/nonexistent/mlflow-ca.pem"),
            "{err}"
        );
        cfg.mlflow.ca_file.clear();
        assert!(registry_http(&cfg).is_ok());
    }

    #[test]
    fn a_model_named_in_the_config_wins_over_the_serving_objects_annotation() {
        let e: EndpointConfig = serde_json::from_value(serde_json::json!({
            "name": "llama", "url": "http://a", "protocol": "vllm",
            "registry": {"model": "llama-chat"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let (model, alias, origin) =
            registry_ref(&e, &Snapshot::default(), "champion").expect("named in the config");
        assert_eq!(
            (model.as_str(), alias.as_str(), origin),
            ("llama-chat", "champion", RegistryRefOrigin::Config)
        );
    }
}
