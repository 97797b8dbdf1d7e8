//! Identities on the daemon's API, over real HTTP: a `fleetdeck headless` in approve mode on a
//! sim whose API server answers TokenReview and SubjectAccessReview from a users file (the
//! daemon with `[headless] auth = "kubernetes"`), and an in-process daemon with a named tokens
//! file; the one-shot commands with `--attach URL` on both. A viewer's approve is a 403 on the
//! incident's timeline; the approver's is acted on once and recorded as theirs; `incident list
//! --attach -o json` is the daemon's `/api/v1/incidents`; a note names its person.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::headless::Replica;
use common::{Sim, exec_kubeconfig, http, wait_until};
use fleetdeck::config::HeadlessConfig;
use fleetdeck::headless::identity::Identities;
use fleetdeck::headless::server::{ApiState, ServeOptions, router, serve_with};
use fleetdeck::model::incident::Origin;
use fleetdeck::store::Store;
use serde_json::{Value, json};

const SHARED: &str = "shared-token-for-alertmanager-0123";
const VIEWER: &str = "vera-token-0123456789abcdef";
const RESPONDER: &str = "rudi-token-0123456789abcdef";
const APPROVER: &str = "abe-token-0123456789abcdef";
const ACTOR: &str = "olga-token-0123456789abcdef";

/// Runs `fleetdeck ARGS` with a home of its own; answers (exit code, stdout, stderr).
fn fleetdeck(home: &Path, args: &[&str]) -> (i32, String, String) {
    fleetdeck_with(home, None, args)
}

/// As [`fleetdeck`], with `$KUBECONFIG` set to `kubeconfig` when given.
fn fleetdeck_with(home: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetdeck"));
    c.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("FLEETDECK_TOKEN")
        .env_remove("KUBECONFIG");
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    let out = c.output().expect("run fleetdeck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes each token into DIR/NAME and answers the path.
fn token_file(dir: &Path, name: &str, token: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p.display().to_string()
}

fn get(url: &str, token: &str) -> (u16, Value) {
    let r = http().get(url).bearer_auth(token).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn post(url: &str, token: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn summaries(timeline: &Value) -> Vec<String> {
    timeline
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["summary"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn kubernetes_identities_a_viewer_is_refused_and_the_approver_approves_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"vera\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\ngroups = [\"noc\"]\n\n[[user]]\nname = \"abe\"\ntoken = \"{APPROVER}\"\nrole = \"approver\"\ngroups = [\"sre-leads\"]\n\n[[user]]\nname = \"olga\"\ntoken = \"{ACTOR}\"\nrole = \"actor\"\n"
        ),
    )
    .unwrap();
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "4",
        "--users",
        users.to_str().unwrap(),
    ]);
    let config = dir.path().join("fleetdeck.toml");
    let dcgm = sim.desc["dcgm"][0].as_str().unwrap().to_string();
    std::fs::write(
        &config,
        format!(
            "[gpu]\nnvml = false\ninterval = \"1s\"\n[[gpu.dcgm]]\ncluster = \"sim-a\"\nurl = \"{dcgm}\"\n\n[headless]\nlease_namespace = \"default\"\nauth = \"kubernetes\"\n"
        ),
    )
    .unwrap();
    let daemon = Replica::start(&sim, &config, "replica-a", SHARED, &["--mode", "approve"]);
    wait_until("the daemon leads", Duration::from_secs(30), || {
        daemon.leads()
    });
    let base = daemon.url.clone();
    let (viewer, approver) = (
        token_file(dir.path(), "vera", VIEWER),
        token_file(dir.path(), "abe", APPROVER),
    );

    // Who is who: an unknown token is a 401; the viewer views.
    assert_eq!(
        get(
            &format!("{base}/api/v1/incidents"),
            "nobody-0123456789abcdef"
        )
        .0,
        401
    );
    assert_eq!(get(&format!("{base}/api/v1/incidents"), VIEWER).0, 200);

    let r = http()
        .post(format!("{}/scenarios/xid-storm", sim.control()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let mut pending = Value::Null;
    wait_until("a plan waits for approval", Duration::from_secs(60), || {
        pending = get(&format!("{base}/api/v1/runs"), VIEWER).1["pending_approvals"][0].clone();
        pending.is_object()
    });
    let id = pending["id"].as_u64().unwrap().to_string();

    // The viewer's approve: 403 naming the missing permission, through the CLI and raw.
    let (code, _, err) = fleetdeck(
        dir.path(),
        &[
            "runbook",
            "approve",
            &id,
            "--attach",
            &base,
            "--token-file",
            &viewer,
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("approve approvals.fleetdeck.io"), "{err}");
    let (code, body) = post(
        &format!("{base}/api/v1/runs/{id}/approve"),
        VIEWER,
        json!({}),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["missing"],
        json!({"verb": "approve", "group": "fleetdeck.io", "resource": "approvals"})
    );

    // The approver's: acted on once, with the --server spelling of the flag.
    let (code, out, err) = fleetdeck(
        dir.path(),
        &[
            "runbook",
            "approve",
            &id,
            "--server",
            &base,
            "--token-file",
            &approver,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = fleetdeck(
        dir.path(),
        &[
            "runbook",
            "approve",
            &id,
            "--attach",
            &base,
            "--token-file",
            &approver,
        ],
    );
    assert_eq!(code, 1, "a second verdict: {err}");

    // The incident's timeline names both people.
    let mut incident = String::new();
    wait_until(
        "the approval's incident says granted by abe",
        Duration::from_secs(30),
        || {
            let list = get(&format!("{base}/api/v1/incidents"), VIEWER).1;
            for inc in list["incidents"].as_array().into_iter().flatten() {
                let n = inc["id"].as_u64().unwrap_or(0);
                let t = get(&format!("{base}/api/v1/incidents/{n}"), VIEWER).1;
                if summaries(&t["timeline"])
                    .iter()
                    .any(|s| s == &format!("approval {id} granted by abe"))
                {
                    incident = n.to_string();
                    return true;
                }
            }
            false
        },
    );
    let (code, shown, err) = fleetdeck(
        dir.path(),
        &[
            "incident",
            "show",
            &incident,
            "--attach",
            &base,
            "--token-file",
            &viewer,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        shown.contains(&format!("approval {id} granted by abe")),
        "{shown}"
    );
    assert!(shown.contains("refused approve to vera"), "{shown}");
    let timeline =
        get(&format!("{base}/api/v1/incidents/{incident}"), VIEWER).1["timeline"].clone();
    let granted = summaries(&timeline)
        .iter()
        .filter(|s| s.contains("granted by"))
        .count();
    assert_eq!(granted, 1, "{timeline:#}");

    // A note through the API names the person; the viewer's is refused on the timeline.
    // abe's note goes with the token his kubeconfig's exec plugin yields.
    let kubeconfig = exec_kubeconfig(dir.path(), APPROVER);
    let (code, out, err) = fleetdeck_with(
        dir.path(),
        Some(&kubeconfig),
        &[
            "incident", "note", &incident, "drained", "by", "hand", "--attach", &base,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("note #"), "{out}");
    let (code, _, err) = fleetdeck(
        dir.path(),
        &[
            "incident",
            "note",
            &incident,
            "me",
            "too",
            "--attach",
            &base,
            "--token-file",
            &viewer,
        ],
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("403"), "{err}");
    let timeline =
        get(&format!("{base}/api/v1/incidents/{incident}"), VIEWER).1["timeline"].clone();
    let note = timeline
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "note" && e["summary"] == "drained by hand")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        note["actor"],
        json!({"type": "user", "name": "abe"}),
        "{timeline:#}"
    );
    assert!(
        summaries(&timeline)
            .iter()
            .any(|s| s.starts_with("refused respond to vera")),
        "{timeline:#}"
    );

    // The command's list is the daemon's list.
    let mut last = (Value::Null, Value::Null);
    wait_until(
        "incident list --attach -o json equals /api/v1/incidents",
        Duration::from_secs(20),
        || {
            let (code, out, _) = fleetdeck(
                dir.path(),
                &[
                    "incident",
                    "list",
                    "--attach",
                    &base,
                    "--token-file",
                    &viewer,
                    "-o",
                    "json",
                ],
            );
            let api = get(&format!("{base}/api/v1/incidents"), VIEWER).1["incidents"].clone();
            last = (serde_json::from_str(&out).unwrap_or(Value::Null), api);
            code == 0 && last.0 == last.1 && last.0.as_array().is_some_and(|a| !a.is_empty())
        },
    );

    // A manual action: olga (an actor) plans an uncordon, sees the guard's plan, confirms it;
    // the approver may not plan one.
    let node = http()
        .get(format!("{}/api/v1/nodes", sim.kube_url(0)))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let intent = json!({"cluster": "sim-a", "mutation": {"action": "uncordon", "node": node}});
    let (code, body) = post(
        &format!("{base}/api/v1/actions/plan"),
        APPROVER,
        intent.clone(),
    );
    assert_eq!(code, 403, "{body}");
    let (code, plan) = post(
        &format!("{base}/api/v1/actions/plan"),
        ACTOR,
        intent.clone(),
    );
    assert_eq!(code, 200, "{plan}");
    assert!(plan["step"].is_object(), "{plan}");
    assert_eq!(
        plan["disruption"]["nodes"], 4,
        "the sim's cluster as the guard counts it: {plan}"
    );
    let plan_id = plan["plan_id"].as_str().unwrap().to_string();
    let (code, body) = post(
        &format!("{base}/api/v1/actions/{plan_id}/confirm"),
        APPROVER,
        intent.clone(),
    );
    assert_eq!(code, 403, "an approver confirms no action: {body}");
    // A confirmation names the action it confirms: one for another action is the other
    // action's new plan, not this one performed.
    let other = json!({"cluster": "sim-a", "mutation": {"action": "cordon", "node": node}});
    let (code, replanned) = post(
        &format!("{base}/api/v1/actions/{plan_id}/confirm"),
        ACTOR,
        other,
    );
    assert_eq!(code, 409, "{replanned}");
    assert!(replanned["plan"]["plan_id"].is_string(), "{replanned}");
    let (code, done) = post(
        &format!("{base}/api/v1/actions/{plan_id}/confirm"),
        ACTOR,
        intent.clone(),
    );
    assert_eq!(code, 200, "{done}");
    let (code, again) = post(
        &format!("{base}/api/v1/actions/{plan_id}/confirm"),
        ACTOR,
        intent,
    );
    assert_eq!(code, 409, "a plan is performed once: {again}");
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("confirmed already")),
        "{again}"
    );
    let actions = get(
        &format!("{base}/api/v1/audit?kind=action&limit=200"),
        VIEWER,
    )
    .1;
    assert!(
        actions["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["actor"] == json!({"type": "user", "name": "olga"})),
        "{actions:#}"
    );

    // The sim counted the reviews: the permissions deploy/10-rbac.yaml grants the daemon.
    let used = sim.counters("sim-a")["by_permission"].clone();
    assert!(
        used.get("create authentication.k8s.io/tokenreviews")
            .is_some(),
        "{used}"
    );
    assert!(
        used.get("create authorization.k8s.io/subjectaccessreviews")
            .is_some(),
        "{used}"
    );
    let rbac =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/10-rbac.yaml"))
            .unwrap();
    assert!(
        rbac.contains("resources: [tokenreviews]"),
        "deploy/10-rbac.yaml"
    );
    assert!(
        rbac.contains("resources: [subjectaccessreviews]"),
        "deploy/10-rbac.yaml"
    );
}

/// An in-process daemon on a fresh store with `[headless] auth = "tokens"`; answers its URL.
struct TokensDaemon {
    base: String,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl TokensDaemon {
    fn start(dir: tempfile::TempDir, users: &Path) -> TokensDaemon {
        Self::start_with(dir, users, None)
    }

    /// As [`start`](Self::start), speaking only TLS with `tls` when given.
    fn start_with(
        dir: tempfile::TempDir,
        users: &Path,
        tls: Option<tokio_rustls::rustls::ServerConfig>,
    ) -> TokensDaemon {
        let store = Store::open(&dir.path().join("store")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cfg = HeadlessConfig {
            auth: "tokens".into(),
            users_file: users.display().to_string(),
            ..HeadlessConfig::default()
        };
        let mut state = ApiState::new(store.clone(), cfg.clone(), None, "prod");
        state.identities = Arc::new(Identities::from_config(&cfg, None, None, "").unwrap());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let opts = ServeOptions {
            tls: tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c))),
            ..ServeOptions::default()
        };
        rt.spawn(serve_with(listener, router(state), opts, async move {
            let _ = stopped.await;
        }));
        TokensDaemon {
            base,
            store,
            stop: Some(stop),
            rt: Some(rt),
            _dir: dir,
        }
    }
}

impl Drop for TokensDaemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn open_incident(store: &Store) -> u64 {
    let signal: fleetdeck::model::signal::Signal = serde_json::from_value(json!({
        "kind": "gpu.xid", "severity": "critical",
        "subject": {"cluster": "prod", "node": "gpu-7", "gpu": "0"},
        "summary": "XID 79 on gpu-7", "evidence": {},
        "first_seen": chrono::Utc::now(), "dedup_key": "gpu.xid:prod/gpu-7/0"
    }))
    .unwrap();
    store
        .record_signals(
            &[signal],
            &[],
            Origin::Headless,
            Duration::from_secs(600),
            chrono::Utc::now(),
        )
        .unwrap()[0]
        .incident
}

#[test]
fn named_tokens_identify_people_and_the_commands_attach_with_the_local_output() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(dir.path().join("rudi.token"), format!("{RESPONDER}\n")).unwrap();
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"vera\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n\n[[user]]\nname = \"rudi\"\ntoken_file = \"rudi.token\"\nrole = \"responder\"\n"
        ),
    )
    .unwrap();
    let d = TokensDaemon::start(dir, &users);
    let n = open_incident(&d.store);
    let id = n.to_string();
    let h = home.path();
    let (viewer, responder) = (
        token_file(h, "vera", VIEWER),
        token_file(h, "rudi", RESPONDER),
    );
    let base = d.base.as_str();

    // The responder acknowledges and notes; the records name rudi.
    let (code, out, err) = fleetdeck(
        h,
        &[
            "incident",
            "ack",
            &id,
            "--attach",
            base,
            "--token-file",
            &responder,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acknowledged (#"), "{out}");
    let (code, out, err) = fleetdeck(
        h,
        &[
            "incident",
            "note",
            &id,
            "looking",
            "--attach",
            base,
            "--token-file",
            &responder,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("note #"), "{out}");
    let timeline = d.store.timeline(n).unwrap();
    assert!(
        timeline.iter().any(|e| e.entry.summary == "looking"
            && e.entry.actor == fleetdeck::model::incident::Actor::User("rudi".into())),
        "{timeline:#?}"
    );

    // The viewer's resolve: 403, recorded on the incident under vera's name.
    let (code, _, err) = fleetdeck(
        h,
        &[
            "incident",
            "resolve",
            &id,
            "--attach",
            base,
            "--token-file",
            &viewer,
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("403") && err.contains("update incidents.fleetdeck.io"),
        "{err}"
    );
    assert!(
        d.store
            .timeline(n)
            .unwrap()
            .iter()
            .any(|e| e.entry.summary.starts_with("refused respond to vera")),
        "the refusal is on the timeline"
    );

    // The same refusal again within seconds is answered, not recorded again.
    let (code, body) = post(
        &format!("{base}/api/v1/incidents/{id}/resolve"),
        VIEWER,
        json!({}),
    );
    assert_eq!(code, 403, "{body}");

    // The list, the audit list and the store's figures are the daemon's.
    let (code, out, err) = fleetdeck(
        h,
        &[
            "incident",
            "list",
            "--attach",
            base,
            "--token-file",
            &viewer,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let api = get(&format!("{base}/api/v1/incidents"), VIEWER).1;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        api["incidents"]
    );
    let (code, out, err) = fleetdeck(
        h,
        &[
            "audit",
            "list",
            "--kind",
            "refusal",
            "--attach",
            base,
            "--token-file",
            &viewer,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let refusals: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(refusals.as_array().map(Vec::len), Some(1), "{refusals:#}");
    let (code, out, err) = fleetdeck(
        h,
        &["audit", "verify", "--attach", base, "--token-file", &viewer],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = fleetdeck(
        h,
        &[
            "store",
            "stats",
            "--attach",
            base,
            "--token-file",
            &viewer,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats, get(&format!("{base}/api/v1/store/stats"), VIEWER).1);

    // --attach and --store together name two stores.
    let (code, _, err) = fleetdeck(
        h,
        &[
            "incident",
            "list",
            "--attach",
            base,
            "--store",
            h.join("s").to_str().unwrap(),
            "--token-file",
            &viewer,
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("two stores"), "{err}");

    // A kubeconfig that authenticates with a client certificate cannot be reviewed.
    let cert_kubeconfig = h.join("cert-kubeconfig");
    std::fs::write(
        &cert_kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://cluster.invalid\nusers:\n- name: u\n  user:\n    client-certificate-data: AAAA\n    client-key-data: AAAA\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
    )
    .unwrap();
    let (code, _, err) = fleetdeck_with(
        h,
        Some(&cert_kubeconfig),
        &["incident", "list", "--attach", base],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("client certificate") && err.contains("--token-file"),
        "{err}"
    );

    // An unknown token is a 401; the kill switch wants `act`, which neither has.
    let (code, _, err) = fleetdeck(
        h,
        &[
            "incident",
            "list",
            "--attach",
            base,
            "--token-file",
            &token_file(h, "x", "unknown-0123456789abcdef"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
    let (code, body) = post(
        &format!("{base}/api/v1/kill-switch"),
        RESPONDER,
        json!({"on": true}),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["missing"]["resource"], "actions");
}

#[test]
fn sim_config_out_writes_a_team_and_the_daemon_config_uses_kubernetes_auth() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetdeck.toml");
    let sim = Sim::start(&[
        "--clusters",
        "1",
        "--nodes",
        "2",
        "--config-out",
        config.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("auth = \"kubernetes\""), "{text}");
    let (code, out, err) = fleetdeck(
        dir.path(),
        &["--config", config.to_str().unwrap(), "config"],
    );
    assert_eq!(code, 0, "the written config is valid: {out}{err}");
    // Each of the three is known to the sim's API server, with its role's permissions.
    // Each of the three is known to the sim's API server, and its SubjectAccessReviews answer
    // what deploy/10-rbac.yaml's ClusterRole fleetdeck-<role> grants, verb by verb.
    let rbac =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/10-rbac.yaml"))
            .unwrap();
    let grants = |role: &str, resource: &str, verb: &str| -> bool {
        serde_yaml::Deserializer::from_str(&rbac).any(|doc| {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            v["kind"] == "ClusterRole"
                && v["metadata"]["name"] == format!("fleetdeck-{role}").as_str()
                && v["rules"].as_array().into_iter().flatten().any(|r| {
                    let has =
                        |k: &str, x: &str| r[k].as_array().into_iter().flatten().any(|s| s == x);
                    has("apiGroups", "fleetdeck.io")
                        && has("resources", resource)
                        && has("verbs", verb)
                })
        })
    };
    let asks = [
        ("incidents", "get"),
        ("incidents", "update"),
        ("approvals", "approve"),
        ("actions", "create"),
        ("alerts", "create"),
    ];
    for name in ["viewer", "responder", "approver"] {
        let token = std::fs::read_to_string(dir.path().join("tokens").join(name)).unwrap();
        let review: Value = http()
            .post(format!(
                "{}/apis/authentication.k8s.io/v1/tokenreviews",
                sim.kube_url(0)
            ))
            .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token.trim()}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(review["status"]["user"]["username"], name, "{review}");
        for (resource, verb) in asks {
            let sar: Value = http()
                .post(format!(
                    "{}/apis/authorization.k8s.io/v1/subjectaccessreviews",
                    sim.kube_url(0)
                ))
                .json(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": name, "resourceAttributes": {"group": "fleetdeck.io", "resource": resource, "verb": verb}}}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(
                sar["status"]["allowed"],
                grants(name, resource, verb),
                "{name} {verb} {resource}: {sar}"
            );
        }
    }
    assert!(grants("approver", "approvals", "approve") && !grants("viewer", "incidents", "update"));
}

/// A CA of the organisation's own (its PEM) and a server certificate for 127.0.0.1 it signed.
fn private_pki() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fleetdeck test private CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), server)
}

#[test]
fn attaching_over_https_trusts_the_private_ca_of_tls_ca_file_with_a_token_file_or_a_kubeconfig() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!("[[user]]\nname = \"vera\"\ntoken = \"{VIEWER}\"\nrole = \"viewer\"\n"),
    )
    .unwrap();
    let (ca_pem, server) = private_pki();
    let d = TokensDaemon::start_with(dir, &users, Some(server));
    open_incident(&d.store);
    let h = home.path();
    std::fs::write(h.join("ca.pem"), &ca_pem).unwrap();
    let config = h.join("fleetdeck.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca_file = {:?}\n\n[attach]\nurl = {:?}\n",
            h.join("ca.pem").display().to_string(),
            d.base
        ),
    )
    .unwrap();
    let viewer = token_file(h, "vera", VIEWER);
    let c = config.to_str().unwrap();
    // [attach] url names the daemon; [tls] ca_file its CA.
    let (code, out, err) = fleetdeck(
        h,
        &[
            "--config",
            c,
            "incident",
            "list",
            "--token-file",
            &viewer,
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let kubeconfig = exec_kubeconfig(h, VIEWER);
    let (code, out, err) = fleetdeck_with(
        h,
        Some(&kubeconfig),
        &["--config", c, "incident", "list", "-o", "json"],
    );
    assert_eq!(code, 0, "through the kubeconfig's credential: {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), listed);
    // Without the CA the daemon's certificate is not trusted.
    let bare = h.join("bare.toml");
    std::fs::write(&bare, format!("[attach]\nurl = {:?}\n", d.base)).unwrap();
    let (code, _, err) = fleetdeck(
        h,
        &[
            "--config",
            bare.to_str().unwrap(),
            "incident",
            "list",
            "--token-file",
            &viewer,
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach"), "{err}");
}
