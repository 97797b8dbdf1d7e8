//! `[headless]`: the daemon's listener, TLS, timeouts, leader election and Events.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadlessConfig {
    pub listen: SocketAddr,
    pub token_file: String,
    pub token_env: String,
    /// How callers are identified: `token` (the single token above), `tokens` (named tokens
    /// in `users_file`) or `kubernetes` (TokenReview + SubjectAccessReview on the daemon's
    /// cluster). The single token, when set, keeps working in every mode.
    pub auth: String,
    /// `auth = "tokens"`: a TOML file of `[[user]]` entries (name, token or token_file, role).
    pub users_file: String,
    /// `auth = "kubernetes"`: the audiences a caller's token must be issued for (sent in the
    /// TokenReview, as kube-rbac-proxy's `--auth-token-audiences`); empty: the API server's
    /// own.
    pub token_audiences: Vec<String>,
    pub metrics_auth: bool,
    pub body_limit: usize,
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_context: String,
    /// Where other replicas reach this one's API (written on the Lease while it leads, so
    /// followers forward alert deliveries to it); empty: `$POD_IP` with the listen port.
    pub advertise_url: String,
    pub events: bool,
    pub node_labels: Vec<String>,
    pub namespace_labels: Vec<String>,
    pub deployment_labels: Vec<String>,
    pub endpoint_labels: Vec<String>,
    pub cluster_labels: Vec<String>,
    #[serde(with = "crate::model::duration_serde")]
    pub alert_dedup_for: std::time::Duration,
    /// PEM certificate chain; with `tls_key` the listener speaks only TLS. Empty: plain HTTP.
    pub tls_cert: String,
    pub tls_key: String,
    #[serde(with = "crate::model::duration_serde")]
    pub header_read_timeout: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub request_timeout: std::time::Duration,
    #[serde(with = "crate::model::duration_serde")]
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    /// On SIGTERM, how long the runs in flight get to reach a safe point before the daemon
    /// records what is left, releases the Lease and exits: keep it below the pod's
    /// `terminationGracePeriodSeconds` (30 s in deploy/), or the kubelet's SIGKILL comes first.
    #[serde(with = "crate::model::duration_serde")]
    pub shutdown_grace: std::time::Duration,
}

impl Default for HeadlessConfig {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            token_file: String::new(),
            token_env: "FLEETDECK_TOKEN".into(),
            auth: "token".into(),
            users_file: String::new(),
            token_audiences: Vec::new(),
            metrics_auth: false,
            body_limit: 1024 * 1024,
            lease_namespace: "fleetdeck".into(),
            lease_name: "fleetdeck-headless".into(),
            lease_context: String::new(),
            advertise_url: String::new(),
            events: true,
            node_labels: v(&[
                "node",
                "kubernetes_node",
                "instance",
                "kube_node",
                "host",
                "host.name",
                "kubernetes.node.name",
            ]),
            namespace_labels: v(&[
                "namespace",
                "exported_namespace",
                "kube_namespace",
                "kubernetes.namespace",
            ]),
            deployment_labels: v(&[
                "deployment",
                "kube_deployment",
                "kubernetes.deployment.name",
            ]),
            endpoint_labels: v(&["endpoint", "service"]),
            cluster_labels: v(&["cluster", "kube_cluster_name", "orchestrator.cluster.name"]),
            alert_dedup_for: std::time::Duration::from_secs(24 * 3600),
            tls_cert: String::new(),
            tls_key: String::new(),
            header_read_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 512,
            shutdown_grace: std::time::Duration::from_secs(20),
        }
    }
}
