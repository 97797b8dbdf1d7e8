//! Model registry (MLflow): which registered model and serving alias an endpoint serves, and
//! what the registry said about it — the alias's version, the versions, and the alias moves
//! fleetdeck made (kept in the registry itself, so every face reads the same history). Plain
//! serde data; imports nothing of the crate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The annotation on a serving object (Deployment, InferenceService) that names its registered
/// model: `NAME` or `NAME@ALIAS`.
pub const REGISTERED_MODEL_ANNOTATION: &str = "fleetdeck.io/registered-model";

/// The registered-model tag where fleetdeck keeps the moves it made of alias `ALIAS`
/// (`fleetdeck.alias_history.ALIAS`, a JSON array of [`AliasMove`], newest last).
pub const ALIAS_HISTORY_TAG: &str = "fleetdeck.alias_history";

/// The model-version tag fleetdeck sets on a version it rolled an alias back from; a later
/// rollback skips such versions.
pub const ROLLED_BACK_TAG: &str = "fleetdeck.rolled_back";

/// How many alias moves the history tag keeps.
pub const ALIAS_HISTORY_LEN: usize = 20;

/// The serving alias when neither the endpoint nor `[mlflow] alias` names one.
pub const DEFAULT_ALIAS: &str = "champion";

/// An endpoint's registered model as its config names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRef {
    /// The registered model's name in MLflow.
    pub model: String,
    /// The alias the endpoint serves; default `[mlflow] alias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl RegistryRef {
    /// Reads the annotation's `NAME` or `NAME@ALIAS`; `None` for an empty name.
    pub fn from_annotation(value: &str) -> Option<Self> {
        let value = value.trim();
        let (model, alias) = match value.split_once('@') {
            Some((m, a)) => (m.trim(), Some(a.trim()).filter(|a| !a.is_empty())),
            None => (value, None),
        };
        (!model.is_empty()).then(|| RegistryRef {
            model: model.to_string(),
            alias: alias.map(str::to_string),
        })
    }
}

/// Where an endpoint's registered model was named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "object")]
pub enum RegistryRefOrigin {
    /// `[[endpoints]] registry` in fleetdeck.toml.
    Config,
    /// The serving object's annotation (`kind/namespace/name`).
    Annotation(String),
}

/// One move of an alias that fleetdeck made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasMove {
    pub at: DateTime<Utc>,
    pub alias: String,
    /// The version the alias left; `None` when it pointed nowhere.
    #[serde(default)]
    pub from: Option<u64>,
    pub to: u64,
    /// Who moved it (`fleetdeck/headless-0`, `runbook endpoint-slo-rollback`, a user).
    pub by: String,
    #[serde(default)]
    pub why: String,
}

/// One version of a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersionView {
    pub version: u64,
    /// `READY`, `PENDING_REGISTRATION`, `FAILED_REGISTRATION`.
    pub status: String,
    pub created: Option<DateTime<Utc>>,
    /// The artifact location, e.g. `s3://models/llama/3`.
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The aliases that point at it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Why fleetdeck rolled an alias back from it (its `fleetdeck.rolled_back` tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// What the registry said about an endpoint's model at its latest poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModelView {
    /// The endpoint (its `[[endpoints]] name`).
    pub endpoint: String,
    pub model: String,
    pub alias: String,
    pub origin: RegistryRefOrigin,
    /// The version the alias points at; `None` when the alias is not set.
    pub version: Option<u64>,
    /// Newest first; at most the latest 50.
    pub versions: Vec<ModelVersionView>,
    /// fleetdeck's moves of the alias, newest last.
    pub history: Vec<AliasMove>,
    /// When the registry last answered.
    pub fetched_at: Option<DateTime<Utc>>,
    /// Why the latest poll failed; the rest is from the last good one.
    pub error: Option<String>,
}

impl RegisteredModelView {
    /// The version a rollback moves the alias to: the newest READY version below the current
    /// one that fleetdeck has not rolled back from.
    pub fn previous_version(&self) -> Option<u64> {
        let current = self.version?;
        previous_version(current, &self.versions)
    }
}

/// The newest READY version below `current` that no rollback came from.
pub fn previous_version(current: u64, versions: &[ModelVersionView]) -> Option<u64> {
    versions
        .iter()
        .filter(|v| v.version < current && v.status == "READY" && v.rolled_back.is_none())
        .map(|v| v.version)
        .max()
}

/// MLflow's REST answers (`/api/2.0/mlflow/...`), as much of them as fleetdeck reads.
pub mod wire {
    use serde::Deserialize;

    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Tag {
        pub key: String,
        #[serde(default)]
        pub value: String,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Alias {
        pub alias: String,
        pub version: String,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct RegisteredModel {
        pub name: String,
        #[serde(default)]
        pub aliases: Vec<Alias>,
        #[serde(default)]
        pub tags: Vec<Tag>,
    }

    /// `registered-models/get`.
    #[derive(Debug, Clone, Deserialize)]
    pub struct GetRegisteredModel {
        pub registered_model: RegisteredModel,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct ModelVersion {
        pub version: String,
        #[serde(default)]
        pub creation_timestamp: Option<i64>,
        #[serde(default)]
        pub source: String,
        #[serde(default)]
        pub run_id: String,
        #[serde(default)]
        pub status: String,
        #[serde(default)]
        pub tags: Vec<Tag>,
        #[serde(default)]
        pub aliases: Vec<String>,
    }

    /// `model-versions/search`.
    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct SearchModelVersions {
        #[serde(default)]
        pub model_versions: Vec<ModelVersion>,
        #[serde(default)]
        pub next_page_token: Option<String>,
    }

    /// The query of `model-versions/search` for `model`'s newest `max` versions.
    pub fn versions_query(model: &str, max: usize) -> [(&'static str, String); 3] {
        [
            ("filter", format!("name='{}'", model.replace('\'', "\\'"))),
            ("max_results", max.to_string()),
            ("order_by", "version_number DESC".to_string()),
        ]
    }

    /// An error body: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`.
    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Error {
        #[serde(default)]
        pub error_code: String,
        #[serde(default)]
        pub message: String,
    }
}

/// The alias's version, the versions (newest first) and fleetdeck's moves of the alias, from
/// a registered model and its versions as MLflow gave them.
pub fn read_model(
    model: &wire::RegisteredModel,
    versions: &[wire::ModelVersion],
    alias: &str,
) -> (Option<u64>, Vec<ModelVersionView>, Vec<AliasMove>) {
    let current = model
        .aliases
        .iter()
        .find(|a| a.alias == alias)
        .and_then(|a| a.version.parse().ok());
    let mut out: Vec<ModelVersionView> = versions
        .iter()
        .filter_map(|v| {
            let version: u64 = v.version.parse().ok()?;
            let mut aliases: Vec<String> = model
                .aliases
                .iter()
                .filter(|a| a.version == v.version)
                .map(|a| a.alias.clone())
                .collect();
            for a in &v.aliases {
                if !aliases.contains(a) {
                    aliases.push(a.clone());
                }
            }
            aliases.sort();
            Some(ModelVersionView {
                version,
                status: v.status.clone(),
                created: v
                    .creation_timestamp
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
                source: v.source.clone(),
                run_id: v.run_id.clone(),
                aliases,
                rolled_back: v
                    .tags
                    .iter()
                    .find(|t| t.key == ROLLED_BACK_TAG)
                    .map(|t| t.value.clone()),
            })
        })
        .collect();
    out.sort_by_key(|v| std::cmp::Reverse(v.version));
    let history = model
        .tags
        .iter()
        .find(|t| t.key == history_tag(alias))
        .and_then(|t| serde_json::from_str::<Vec<AliasMove>>(&t.value).ok())
        .unwrap_or_default();
    (current, out, history)
}

/// The registered-model tag holding fleetdeck's moves of `alias`.
pub fn history_tag(alias: &str) -> String {
    format!("{ALIAS_HISTORY_TAG}.{alias}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64, status: &str, rolled_back: bool) -> ModelVersionView {
        ModelVersionView {
            version: n,
            status: status.into(),
            created: None,
            source: format!("s3://m/{n}"),
            run_id: String::new(),
            aliases: Vec::new(),
            rolled_back: rolled_back.then(|| "bad".to_string()),
        }
    }

    #[test]
    fn annotation_reads_name_and_alias() {
        assert_eq!(
            RegistryRef::from_annotation("llama-chat@champion"),
            Some(RegistryRef {
                model: "llama-chat".into(),
                alias: Some("champion".into())
            })
        );
        assert_eq!(
            RegistryRef::from_annotation(" llama-chat "),
            Some(RegistryRef {
                model: "llama-chat".into(),
                alias: None
            })
        );
        assert_eq!(RegistryRef::from_annotation("@x"), None);
        assert_eq!(
            RegistryRef::from_annotation("m@").map(|r| r.alias),
            Some(None)
        );
    }

    #[test]
    fn a_real_mlflow_answer_reads_into_alias_versions_and_history() {
        let model: wire::GetRegisteredModel = serde_json::from_str(include_str!(
            "../../tests/fixtures/mlflow/registered-models-get.json"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let versions: wire::SearchModelVersions = serde_json::from_str(include_str!(
            "../../tests/fixtures/mlflow/model-versions-search.json"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let (current, views, history) = read_model(
            &model.registered_model,
            &versions.model_versions,
            "champion",
        );
        assert_eq!(current, Some(2));
        assert_eq!(
            views.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        // Aliases come from the registered model: the search answer has none.
        assert_eq!(views[0].aliases, vec!["challenger".to_string()]);
        assert_eq!(views[1].aliases, vec!["champion".to_string()]);
        assert!(views[0].rolled_back.is_some() && views[1].rolled_back.is_none());
        assert_eq!(views[2].source, "s3://models/llama-chat/1");
        assert!(views[2].created.is_some());
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].from, history[0].to), (Some(3), 2));
        // From 2, version 1 is the one to go back to; 3 is newer and was rolled back from.
        assert_eq!(previous_version(2, &views), Some(1));
        let err: wire::Error = serde_json::from_str(include_str!(
            "../../tests/fixtures/mlflow/error-not-found.json"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(err.error_code, "RESOURCE_DOES_NOT_EXIST");
    }

    #[test]
    fn previous_version_skips_failed_and_rolled_back_versions() {
        let versions = vec![
            version(5, "READY", false),
            version(4, "READY", true),
            version(3, "FAILED_REGISTRATION", false),
            version(2, "READY", false),
            version(1, "READY", false),
        ];
        assert_eq!(previous_version(5, &versions), Some(2));
        assert_eq!(previous_version(2, &versions), Some(1));
        assert_eq!(previous_version(1, &versions), None);
    }
}
