//! `fleetdeck.toml`: the schema, its defaults, validation with errors that name the file,
//! line and key, and `init` which writes the commented default. Imports only model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod airflow;
mod attach;
mod cockpit;
mod cost;
mod defaults;
mod gpu;
mod headless;
mod kubernetes;
mod load;
mod mlflow;
mod notify;
mod runbooks;
mod signals;
mod sim;
mod store;
mod tls;
mod validate;

use load::offset_of;

pub use airflow::{AirflowApiVersion, AirflowAuth, AirflowConfig};
pub use attach::AttachConfig;
pub use cockpit::{NOC_ROTATION_SECS, NocConfig, POD_LOGS_MAX_LINES, PodLogsConfig};
pub use cost::CostConfig;
pub use defaults::default_config;
pub use gpu::{DcgmTarget, GpuConfig, PrometheusConfig};
pub use headless::HeadlessConfig;
pub use kubernetes::{DEFAULT_WATCH_IDLE_TIMEOUT, KubernetesConfig, MIN_WATCH_IDLE_TIMEOUT};
pub(crate) use load::{key_at, line_col};
pub use mlflow::MlflowConfig;
pub use notify::{
    IncidentEvent, InlineSecret, NotifyConfig, NotifyPolicy, SecretError, SinkConfig, SinkKind,
    read_secret,
};
pub use runbooks::{DEFAULT_MAX_ENTRIES_PER_RUN, RunbooksConfig};
pub use signals::{
    ClearAfter, ClearAfterTable, ForTable, KindDurations, KindTable, PendingFor, Thresholds,
    default_findings,
};
pub use sim::{
    LogConfig, SIM_MAX_CLUSTERS, SIM_MAX_GPUS_PER_NODE, SIM_MAX_NODES_PER_CLUSTER,
    SIM_MAX_PODS_PER_NODE, SIM_SCENARIOS, SimConfig,
};
pub use store::{InlinePassword, StoreConfig, StoreTarget};
pub use tls::TlsConfig;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub log: LogConfig,
    pub kubernetes: KubernetesConfig,
    pub signals: Thresholds,
    pub cost: CostConfig,
    pub gpu: GpuConfig,
    pub prometheus: PrometheusConfig,
    /// Key bindings: action → keys, replacing that action's defaults (`[keys]`).
    pub keys: std::collections::BTreeMap<String, Vec<String>>,
    /// Model endpoints to probe (`[[endpoints]]`).
    pub endpoints: Vec<crate::model::endpoint::EndpointConfig>,
    pub pod_logs: PodLogsConfig,
    pub noc: NocConfig,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub runbooks: RunbooksConfig,
    pub headless: HeadlessConfig,
    pub attach: AttachConfig,
    pub sim: SimConfig,
    pub notify: NotifyConfig,
    pub mlflow: MlflowConfig,
    /// `[airflow]`: the Airflow webserver whose DAGs the pipelines pane and
    /// `pipeline.dag_failing` read.
    pub airflow: AirflowConfig,
    /// The file this config was read from, so that checks made elsewhere (the cockpit's key
    /// bindings) can name the line of a bad key. Not part of the schema.
    #[serde(skip)]
    pub origin: ConfigOrigin,
}

/// The file a config was read from and its text (empty for the built-in defaults).
#[derive(Debug, Clone, Default)]
pub struct ConfigOrigin {
    pub path: PathBuf,
    pub text: String,
}

/// Where a config came from does not make two configs different.
impl PartialEq for ConfigOrigin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Config {
    /// An error about `table.key`, located at its line when the config came from a file.
    pub fn error_at(&self, table: &str, key: &str, message: impl Into<String>) -> ConfigError {
        let o = &self.origin;
        let (path, line, column) = if o.path.as_os_str().is_empty() {
            (PathBuf::from("(built-in defaults)"), 0, 0)
        } else {
            let (line, column) = line_col(&o.text, offset_of(&o.text, table, key).unwrap_or(0));
            (o.path.clone(), line, column)
        };
        ConfigError::Invalid {
            path,
            line,
            column,
            key: format!("{table}.{key}"),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: cannot write the config")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no config directory: set XDG_CONFIG_HOME or HOME, or pass --config PATH")]
    NoConfigDir,
}

/// Where the RCA store lives when neither `--store` nor `[store] path` says.
pub fn default_store_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("fleetdeck")
        .join("store")
}

/// The demo's own store, beside the default one: a simulated fleet's incidents never mix with
/// real ones.
pub fn default_demo_store_path() -> PathBuf {
    default_store_path().with_file_name("demo-store")
}

/// Where the config lives when `--config` is not given: `$XDG_CONFIG_HOME/fleetdeck/fleetdeck.toml`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    dirs::config_dir()
        .map(|d| d.join("fleetdeck").join("fleetdeck.toml"))
        .ok_or(ConfigError::NoConfigDir)
}

/// Writes the commented default config to `path`; refuses to overwrite unless `force`.
pub fn init(path: &Path, force: bool) -> Result<(), ConfigError> {
    if path.exists() && !force {
        return Err(ConfigError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, default_config()).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("fleetdeck.toml"))
    }

    #[test]
    fn the_default_file_parses_to_the_defaults() {
        assert_eq!(parse(&default_config()).unwrap(), Config::default());
    }

    #[test]
    fn identities_and_attach_are_checked_with_their_lines() {
        let err = parse("[headless]\nauth = \"ldap\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:2:"), "{err}");
        assert!(err.contains("\"kubernetes\""), "{err}");
        let err = parse("[headless]\nauth = \"tokens\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("users_file"), "{err}");
        let err = parse("[attach]\nurl = \"fleetdeck:9180\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("attach.url"), "{err}");
        let cfg = parse(
            "[headless]\nauth = \"kubernetes\"\n[attach]\nurl = \"https://fd.example:9180\"\n",
        )
        .unwrap();
        assert_eq!(cfg.headless.auth, "kubernetes");
        assert_eq!(cfg.attach.url, "https://fd.example:9180");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[sim]\nclusters = 2\nnodez = 4\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(err.contains("sim.nodez"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_store_password_written_in_the_config_is_refused_with_its_line() {
        let err =
            parse("[store]\nurl = \"postgres://fd@db:5432/fleetdeck\"\npassword = \"hunter2\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(err.contains("password_file"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse("[store]\nurl = \"postgres://fd:hunter2@db:5432/fleetdeck\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:2:"), "{err}");
        assert!(
            err.contains("store.url") && err.contains("password_env"),
            "{err}"
        );
    }

    #[test]
    fn a_store_url_reads_its_password_from_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let cfg = parse(&format!(
            "[store]\nurl = \"postgres://fd@db:5432/fleetdeck?sslmode=verify-full\"\npassword_file = {:?}\n",
            secret.display().to_string()
        ))
        .unwrap();
        match cfg.store.target(None).unwrap() {
            StoreTarget::Postgres { url, password, .. } => {
                assert_eq!(url, "postgres://fd@db:5432/fleetdeck?sslmode=verify-full");
                assert_eq!(password.as_deref(), Some("s3cret"));
            }
            other => panic!("{other:?}"),
        }
        // A directory flag still means sled, whatever the config says.
        assert_eq!(
            cfg.store.target(Some(Path::new("/tmp/s"))).unwrap(),
            StoreTarget::Dir("/tmp/s".into())
        );
        let missing = StoreConfig {
            url: "postgres://fd@db/fleetdeck".into(),
            password_file: "/nonexistent/pw".into(),
            ..StoreConfig::default()
        };
        let err = missing.target(None).unwrap_err();
        assert!(err.contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse("[log]\nlevel = \"info\"\n[sim]\nnodes = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(err.contains("sim.nodes"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let src = "[kubernetes]\nkubeconfig = \"kc\"\n\n[store]\npath = \"state/store\"\n\n\
                   [runbooks]\ndir = \"books\"\n\n[cost]\nfocus = [\"/abs/focus.csv\", \"focus/b.csv\"]\n\n\
                   [notify.sinks.team]\nkind = \"slack\"\nurl_file = \"secrets/slack\"\n";
        let cfg = Config::parse(src, Path::new("/etc/fleetdeck/fd.toml")).expect("parses");
        assert_eq!(cfg.kubernetes.kubeconfig, "/etc/fleetdeck/kc");
        assert_eq!(cfg.store.path, "/etc/fleetdeck/state/store");
        assert_eq!(cfg.runbooks.dir, "/etc/fleetdeck/books");
        assert_eq!(
            cfg.cost.focus,
            ["/abs/focus.csv", "/etc/fleetdeck/focus/b.csv"]
        );
        assert_eq!(
            cfg.notify.sinks["team"].url_file,
            "/etc/fleetdeck/secrets/slack"
        );
        // Unset paths stay unset; the runbook directory's default is the built-in runbooks.
        let bare = Config::parse("", Path::new("/etc/fleetdeck/fd.toml")).expect("parses");
        assert_eq!(bare.prometheus.ca_file, "");
        assert_eq!(bare.runbooks.dir, "");
    }

    #[test]
    fn a_number_for_a_duration_suggests_the_quoted_form_with_a_unit() {
        for (src, want) in [
            ("[gpu]\ninterval = 10\n", "\"10s\""),
            ("[runbooks]\nrun_timeout = 60\n", "\"60s\""),
        ] {
            let err = parse(src).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(":2:"), "{src}: {err}");
        }
    }

    #[test]
    fn bad_value_is_located_after_parsing() {
        let err = parse("[sim]\n\npods_per_node = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `sim.pods_per_node`"),
            "{err}"
        );
        let err = parse("[sim]\nscenarios = [\"meteor\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("meteor") && err.contains("xid-storm"), "{err}");
        let err = parse("[pod_logs]\nmax_lines = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:2:1: key `pod_logs.max_lines`")
                && err.contains("5 lines"),
            "{err}"
        );
        let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
        assert!(
            err.contains("log.level") && err.contains("\"loud\""),
            "{err}"
        );
    }

    #[test]
    fn signal_thresholds_out_of_range_name_file_line_and_key() {
        let err = parse("[signals]\nidle_gpu_pct = 5.0\ngpu_hot_c = -3.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `signals.gpu_hot_c`"),
            "{err}"
        );
        assert!(err.contains("-3"), "quotes the value: {err}");
        let err = parse("[signals]\n\ngpu_memory_high_pct = 120.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:3:1: key `signals.gpu_memory_high_pct`")
                && err.contains("0 to 100"),
            "{err}"
        );
        let err = parse("[signals]\ngpu_memory_window = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("fleetdeck.toml:2:1: key `signals.gpu_memory_window`"),
            "{err}"
        );
    }

    /// `parse(src)`'s error, checked to name `fleetdeck.toml:LINE:` and `KEY`.
    fn refused_at(src: &str, line: usize, key: &str) -> String {
        let err = parse(src).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("fleetdeck.toml:{line}:"))
                && err.contains(&format!(": key `{key}`: ")),
            "{src:?}: {err}"
        );
        err
    }

    #[test]
    fn a_percentage_over_100_is_refused_naming_file_line_key_and_range() {
        let err = refused_at(
            "[runbooks]
mode = \"auto\"
max_disrupted_pct = 500.0
",
            3,
            "runbooks.max_disrupted_pct",
        );
        assert!(err.contains("500") && err.contains("0 to 100"), "{err}");
        refused_at(
            "[runbooks]
halt_unready_pct = -1.0
",
            2,
            "runbooks.halt_unready_pct",
        );
        refused_at(
            "[runbooks]
halt_unready_pct = nan
",
            2,
            "runbooks.halt_unready_pct",
        );
        assert!(
            parse(
                "[runbooks]
max_disrupted_pct = 100.0
halt_unready_pct = 0.0
"
            )
            .is_ok()
        );
    }

    #[test]
    fn notify_give_up_after_is_checked_and_mitigate_is_a_milestone_policies_may_name() {
        let err = refused_at(
            "[notify]
give_up_after = \"30d\"
",
            2,
            "notify.give_up_after",
        );
        assert!(err.contains("1s to 7d"), "{err}");
        refused_at(
            "[notify]
retry_base = \"1m\"
give_up_after = \"30s\"
",
            3,
            "notify.give_up_after",
        );
        let cfg = parse(
            "[notify]
give_up_after = \"2h\"
[notify.sinks.chat]
kind = \"slack\"
url_env = \"SLACK_URL\"
[[notify.policy]]
sink = \"chat\"
on = [\"open\", \"mitigate\", \"resolve\"]
",
        )
        .unwrap();
        assert_eq!(cfg.notify.give_up_after, Duration::from_secs(7200));
        assert_eq!(
            cfg.notify.policy[0].on,
            [
                IncidentEvent::Open,
                IncidentEvent::Mitigate,
                IncidentEvent::Resolve
            ]
        );
        // The default is hours, not the seconds a few doubling retries add up to.
        assert_eq!(
            NotifyConfig::default().give_up_after,
            Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn a_zero_polling_interval_is_refused_naming_file_line_key_and_range() {
        let err = refused_at(
            "[gpu]
nvml = false
interval = \"0s\"
",
            3,
            "gpu.interval",
        );
        assert!(
            err.contains("0s is out of range") && err.contains("use 1s to 1h"),
            "{err}"
        );
        refused_at(
            "[prometheus]
interval = \"0s\"
",
            2,
            "prometheus.interval",
        );
        refused_at(
            "[prometheus]
interval = \"1m\"
window = \"30s\"
",
            3,
            "prometheus.window",
        );
        refused_at(
            "[cost]
interval = \"1s\"
",
            2,
            "cost.interval",
        );
        refused_at(
            "[store]
incident_window = \"0s\"
",
            2,
            "store.incident_window",
        );
        refused_at(
            "[runbooks]
run_timeout = \"0s\"
",
            2,
            "runbooks.run_timeout",
        );
        refused_at(
            "[runbooks]
approval_timeout = \"0s\"
",
            2,
            "runbooks.approval_timeout",
        );
        refused_at(
            "[runbooks]
scale_budget_window = \"0s\"
",
            2,
            "runbooks.scale_budget_window",
        );
        refused_at(
            "[headless]
alert_dedup_for = \"0s\"
",
            2,
            "headless.alert_dedup_for",
        );
        assert!(
            parse(
                "[gpu]
interval = \"1s\"
"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_negative_or_out_of_range_count_is_refused_naming_file_line_and_key() {
        let err = refused_at(
            "[runbooks]
halt_unready_count = -1
",
            2,
            "runbooks.halt_unready_count",
        );
        assert!(err.contains("-1"), "{err}");
        refused_at(
            "[runbooks]
max_replicas_removed_per_run = -5
",
            2,
            "runbooks.max_replicas_removed_per_run",
        );
        let err = refused_at(
            "[runbooks]
max_concurrent_runs = 0
",
            2,
            "runbooks.max_concurrent_runs",
        );
        assert!(err.contains("use 1 to 256"), "{err}");
        refused_at(
            "[runbooks]
max_queued_runs = 1000000
",
            2,
            "runbooks.max_queued_runs",
        );
        refused_at(
            "[runbooks]
max_replicas_removed_per_run = 50
max_replicas_removed_per_window = 20
",
            2,
            "runbooks.max_replicas_removed_per_run",
        );
        refused_at(
            "[headless]
body_limit = 0
",
            2,
            "headless.body_limit",
        );
        let err = refused_at(
            "[[endpoints]]
name = \"llama\"
url = \"http://a\"
protocol = \"vllm\"
[endpoints.slo]
availability = 1.5
",
            6,
            "endpoints.slo.availability",
        );
        assert!(
            err.contains("endpoint llama") && err.contains("1.5"),
            "{err}"
        );
    }

    #[test]
    fn a_negative_for_duration_names_its_sub_table_key() {
        let err = parse("[signals]\ngpu_hot_c = 90.0\n[signals.for]\ngpu_idle = \"-5m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(err.contains("signals.for.gpu_idle"), "{err}");
        assert!(err.contains("-5m"), "{err}");
    }

    #[test]
    fn for_and_clear_after_take_per_kind_overrides_over_the_defaults() {
        let cfg = parse(
            "[signals.for]\ngpu_idle = \"30m\"\n[signals.clear_after]\ngpu_throttling = \"0s\"\n",
        )
        .unwrap();
        let t = &cfg.signals;
        assert_eq!(t.for_kind("gpu.idle"), Duration::from_secs(1800));
        assert_eq!(t.for_kind("gpu.throttling"), Duration::from_secs(120));
        assert_eq!(t.for_kind("node.not_ready"), t.node_not_ready_after);
        assert_eq!(t.clear_after_kind("gpu.throttling"), Duration::ZERO);
        assert_eq!(t.clear_after_kind("gpu.idle"), Duration::from_secs(60));
        let none = t.without_patience();
        assert_eq!(none.for_kind("gpu.idle"), Duration::ZERO);
        assert_eq!(none.clear_after_kind("pod.crash_loop"), Duration::ZERO);
    }

    #[test]
    fn a_vector_store_needs_its_collection_a_readable_key_file_and_an_ingestion_to_judge() {
        let ok = parse(
            "[[endpoints]]\nname = \"kb\"\nurl = \"http://q:6333\"\nprotocol = \"qdrant\"\n[endpoints.vector]\nindex = \"kb\"\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err =
            parse("[[endpoints]]\nname = \"kb\"\nurl = \"http://q:6333\"\nprotocol = \"qdrant\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("endpoints.vector.index") && err.contains("collection"),
            "{err}"
        );
        let err = refused_at(
            "[[endpoints]]
name = \"docs\"
url = \"https://docs-x.svc.pinecone.io\"
protocol = \"pinecone\"
[endpoints.vector]
api_key_file = \"/nonexistent/pinecone-key\"
",
            6,
            "endpoints.vector.api_key_file",
        );
        assert!(err.contains("/nonexistent/pinecone-key"), "{err}");
        let err = parse(
            "[[endpoints]]\nname = \"docs\"\nurl = \"https://d\"\nprotocol = \"pinecone\"\ningestion = { job = \"ingest\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("endpoints.ingestion") && err.contains("namespace"),
            "{err}"
        );
        let err = parse(
            "[[endpoints]]\nname = \"chat\"\nurl = \"http://c\"\nprotocol = \"vllm\"\ningestion = { dag = \"d\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("vector stores"), "{err}");
    }

    #[test]
    fn errors_inside_array_tables_name_the_array() {
        let err = parse("[[endpoints]]\nname = \"x\"\nurl = \"http://a\"\nprotocol = \"grpc\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("fleetdeck.toml:4:"), "{err}");
        assert!(
            err.contains("endpoints.protocol") && err.contains("grpc"),
            "{err}"
        );
    }

    #[test]
    fn mlflow_refuses_an_inline_token_a_bad_url_and_a_registry_without_a_server() {
        let err =
            parse("[mlflow]\ntracking_uri = \"http://mlflow:5000\"\ntoken = \"dapi-s3cr3t\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("fleetdeck.toml:3:"), "{err}");
        assert!(
            err.contains("token_file") && err.contains("token_env"),
            "{err}"
        );
        assert!(
            !err.contains("dapi-s3cr3t"),
            "the secret is not repeated: {err}"
        );

        let err = parse("[mlflow]\ntracking_uri = \"mlflow:5000\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mlflow.tracking_uri") && err.contains("http(s) URL"),
            "{err}"
        );

        let endpoint = "[[endpoints]]\nname = \"llama\"\nurl = \"http://a\"\nprotocol = \"vllm\"\nregistry = { model = \"llama-chat\" }\n";
        let err = parse(endpoint).unwrap_err().to_string();
        assert!(
            err.contains("endpoints.registry") && err.contains("[mlflow] tracking_uri"),
            "{err}"
        );
        let ok = parse(&format!(
            "[mlflow]\ntracking_uri = \"http://mlflow:5000\"\n{endpoint}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.mlflow.alias, "champion");
        let mut with_token = ok.mlflow.clone();
        with_token.token_file = "/nonexistent/mlflow-token".into();
        let err = with_token
            .read_token()
            .expect_err("a token file that is not there");
        assert!(
            err.contains("[mlflow] token") && err.contains("/nonexistent/mlflow-token"),
            "{err}"
        );
        assert_eq!(ok.mlflow.read_token(), Ok(None));
        assert_eq!(
            ok.endpoints[0].registry.as_ref().map(|r| r.model.as_str()),
            Some("llama-chat")
        );
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("fleetdeck.toml");
        init(&path, false).unwrap();
        std::fs::write(&path, "# mine\n").unwrap();
        assert!(matches!(
            init(&path, false),
            Err(ConfigError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
        init(&path, true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), default_config());
    }
}
