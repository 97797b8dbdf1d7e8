//! The daemon's main loop: an adapter over the pipeline (the same detectors, recording and
//! runbooks as the cockpit), with Alertmanager's alerts as an intake, runbooks run by the
//! leader only, the evaluation on /metrics, timeline entries mirrored as Kubernetes Events,
//! and a graceful stop on SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::runbook::Mode;
use crate::store::IncidentFilter;

/// How long a follower waits for the leader to take a forwarded alert delivery.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where other replicas reach this one: `[headless] advertise_url`, else `$POD_IP` (the
/// Deployment sets it from the downward API) with the listen port, else the listen address
/// when it names one host; `None` when there is no telling.
fn advertise_url(configured: &str, scheme: &str, local: std::net::SocketAddr) -> Option<String> {
    if !configured.trim().is_empty() {
        return Some(configured.trim().trim_end_matches('/').to_string());
    }
    let port = local.port();
    if let Ok(ip) = std::env::var("POD_IP")
        && let Ok(ip) = ip.trim().parse::<std::net::IpAddr>()
    {
        return Some(format!(
            "{scheme}://{}",
            std::net::SocketAddr::new(ip, port)
        ));
    }
    (!local.ip().is_unspecified()).then(|| format!("{scheme}://{local}"))
}

/// Kubernetes Events sent per look at the outbox (the rest wait for the next second).
const EVENTS_PER_PASS: usize = 200;

/// How often /metrics re-reads the store's size on disk.
const STORE_SIZE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// What the command line gives the daemon, over the config file.
#[derive(Debug, Clone, Default)]
pub struct HeadlessOptions {
    pub listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub mode: Option<Mode>,
    pub read_only: bool,
    /// The fleet is one `fleetdeck sim` serves: attached cockpits mark it SIMULATED FLEET.
    pub simulated: bool,
}

/// The identity actions and the Lease carry: the pod's name in a cluster, else host/pid.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME").map(|h| format!("{h}-{}", std::process::id())))
        .unwrap_or_else(|_| format!("fleetdeck-{}", std::process::id()))
}

/// The fleet the daemon watches, started by the caller through the engine.
pub struct HeadlessFleet {
    /// The first watched context: where the Lease lives unless `[headless] lease_context` says.
    pub first_context: Option<String>,
    pub running: crate::engine::fleet::Running,
}

/// Runs until SIGTERM or SIGINT, over `engine` (built with [`FacePolicy::headless`]: its
/// store, guard, executor and clients).
///
/// [`FacePolicy::headless`]: crate::engine::FacePolicy::headless
pub async fn run(
    cfg: Config,
    opts: HeadlessOptions,
    fleet: HeadlessFleet,
    engine: crate::engine::Engine,
) -> anyhow::Result<()> {
    let HeadlessFleet {
        first_context,
        running,
    } = fleet;
    let (store, guard, executor, clients) = (
        engine.store.clone(),
        engine.guard.clone(),
        engine.executor.clone(),
        engine.clients.clone(),
    );
    let mut hcfg = cfg.headless.clone();
    if let Some(f) = &opts.token_file {
        hcfg.token_file = f.display().to_string();
    }
    let token = super::server::load_token(&hcfg)?;
    if token.is_none() {
        tracing::warn!(
            "no API token configured ([headless] token_file, --token-file or ${}): every API call but /healthz is refused",
            cfg.headless.token_env
        );
    }
    let me = engine.policy().identity.clone().unwrap_or_else(identity);
    let mode = engine.policy().mode;

    // Before binding: a certificate that does not load stops the start, with its file named.
    let serve_opts = super::server::ServeOptions::from_config(&cfg.headless)?;
    let scheme = if serve_opts.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listen = opts.listen.unwrap_or(cfg.headless.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().unwrap_or(listen);
    let advertise = advertise_url(&cfg.headless.advertise_url, scheme, local);

    // Leader election on the first cluster (or [headless] lease_context).
    let lease_cluster = if cfg.headless.lease_context.is_empty() {
        first_context.unwrap_or_default()
    } else {
        cfg.headless.lease_context.clone()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lease_client = clients.get(&lease_cluster).cloned();
    let elector = lease_client.clone().map(|client| {
        super::lease::spawn(
            client,
            super::lease::LeaseConfig {
                namespace: cfg.headless.lease_namespace.clone(),
                name: cfg.headless.lease_name.clone(),
                identity: me.clone(),
                advertise_url: advertise.clone(),
                ..super::lease::LeaseConfig::default()
            },
            stop_rx.clone(),
        )
    });
    // The guard reads the elector's own flag: a leader that cannot renew is fenced the moment
    // the elector gives up, not at the next tick of this loop.
    let leader = match &elector {
        Some(e) => e.leading_flag(),
        None => {
            tracing::warn!(cluster = %lease_cluster, "no cluster to hold the leader Lease in: this replica acts alone");
            Arc::new(AtomicBool::new(true))
        }
    };
    guard.fence_on(leader.clone());
    // Only the leader pages: replicas never send a policy's notification twice.
    let _paging = engine.start_paging(&cfg, Some(leader.clone()))?;

    let mut state =
        super::server::ApiState::new(store.clone(), hcfg.clone(), token.clone(), &lease_cluster);
    // Who calls: TokenReviews and SubjectAccessReviews go to the Lease's cluster.
    let identities = super::identity::Identities::from_config(
        &hcfg,
        token,
        clients.get(&lease_cluster).cloned(),
        &lease_cluster,
    )?;
    tracing::info!(auth = identities.mode(), cluster = %lease_cluster, "API callers are identified");
    state.identities = Arc::new(identities);
    let ready = Arc::new(AtomicBool::new(false));
    state.executor = Some(executor.clone());
    state.ready = ready.clone();
    state.leader = leader.clone();
    // A follower hands alert deliveries to the leader, found on the Lease.
    if let Some(e) = &elector {
        let e = e.clone();
        state.forward = Some(super::server::Forwarder {
            identity: me.clone(),
            leader: Arc::new(move || e.leader_address()),
            client: crate::sources::http::TlsRoots::load(&[(
                "tls.ca_file",
                cfg.tls.ca_file.as_str(),
            )])
            .map(|r| r.client_builder())
            .unwrap_or_else(|_| reqwest::Client::builder())
            .timeout(FORWARD_TIMEOUT)
            .build()
            .unwrap_or_default(),
        });
    }
    let hub = super::stream::Hub::new(&me, opts.simulated);
    state.stream = Some(hub.clone());
    let alerts = state.alerts.clone();
    let metrics = state.metrics.clone();
    // On a shared store every acting write carries this replica's Lease term; one refused
    // because a newer leader wrote makes this replica step down at once (a leader paused past
    // its lease and resumed), before its elector notices; the Lease is the newer leader's.
    if let Some(e) = &elector
        && store.is_shared()
    {
        let (handle, metrics) = (e.clone(), metrics.clone());
        store.fence_with(crate::store::Fence {
            token: e.fencing_token(),
            on_refused: Arc::new(move |err| {
                metrics.store_fenced();
                if handle.is_leader() {
                    tracing::error!(error = %err, "a newer leader wrote to the store: stepping down");
                }
                handle.step_down("the store refused a write: a newer leader's term exists");
            }),
        });
    }
    let wake = state.on_alerts.clone();
    let serve_opts = serve_opts.with_metrics(metrics.clone());
    tracing::info!(%local, %scheme, identity = %me, mode = mode.name(), "fleetdeck headless listening");
    let mut stop_http = stop_rx.clone();
    let server = tokio::spawn(super::server::serve_with(
        listener,
        super::server::router(state),
        serve_opts,
        async move {
            let _ = stop_http.wait_for(|s| *s).await;
        },
    ));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut evaluations = engine
        .pipeline(&cfg, &running, Some(leader.clone()))
        .with_intake(alerts.clone())
        .spawn(running.snapshots, Some(wake));
    // Attached cockpits see this evaluation, the store's incidents and the executor's runs.
    let _stream = hub.spawn(
        evaluations.clone(),
        store.clone(),
        Some(executor.clone()),
        stop_rx.clone(),
    );
    // The leader sends the Events the outbox owes: its own, and what an earlier process or
    // leader left owed.
    let events_wake = Arc::new(tokio::sync::Notify::new());
    let events_task = cfg.headless.events.then(|| {
        let (store, clients, me, leader, wake) = (
            store.clone(),
            clients.clone(),
            me.clone(),
            leader.clone(),
            events_wake.clone(),
        );
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                if leader.load(Ordering::SeqCst) {
                    super::events::deliver_owed(&store, &clients, &me, EVENTS_PER_PASS).await;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        })
    });
    let mut counted_runs = std::collections::HashSet::new();
    let mut events_from = store.len().unwrap_or(0) + 1;
    let mut was_leader = false;
    let mut store_sized: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            changed = evaluations.changed() => {
                if changed.is_err() { break; }
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT: stopping");
                break;
            }
        }
        let is_leader = leader.load(Ordering::SeqCst);
        if is_leader != was_leader {
            tracing::info!(leader = is_leader, identity = %me, "leadership changed");
            was_leader = is_leader;
        }
        metrics.set_leader(is_leader);
        let evaluated = evaluations.borrow_and_update().clone();
        let snap = &evaluated.snapshot;
        // Ready means every watched resource is synced: a resource RBAC forbids is a blind
        // spot (its signals never come), not a settled source, so it keeps the replica unready
        // and /readyz names it. Only a resource the cluster does not serve (no KServe CRD) is
        // not waited for.
        let forbidden: Vec<String> = snap
            .clusters
            .iter()
            .flat_map(|c| {
                c.sync
                    .iter()
                    .filter(|r| matches!(r.state, crate::model::SyncState::Forbidden { .. }))
                    .map(move |r| format!("{}/{}", c.name, r.resource))
            })
            .collect();
        let all_synced = snap.clusters.iter().all(|c| {
            !c.sync.is_empty()
                && c.sync.iter().all(|r| {
                    matches!(
                        r.state,
                        crate::model::SyncState::Synced | crate::model::SyncState::NotServed
                    )
                })
        });
        metrics.set_forbidden_sources(forbidden);
        // A store that cannot be written: serving what it has, acting on nothing, and out of
        // the Service's endpoints until it is back (/readyz names it).
        metrics.set_store_down(snap.store_down.as_ref().map(|d| {
            format!(
                "the store at {} cannot be reached since {}: {}",
                d.place,
                d.since.format("%H:%M:%SZ"),
                d.error
            )
        }));
        ready.store(
            !snap.clusters.is_empty()
                && all_synced
                && !executor.stopping()
                && snap.store_down.is_none(),
            Ordering::SeqCst,
        );
        metrics.set_signals(snap);
        metrics.recorded(&evaluated.raised_total, evaluated.incidents_opened_total);
        for c in &snap.clusters {
            for r in &c.sync {
                metrics.set_source_synced(
                    &c.name,
                    &r.resource,
                    r.state == crate::model::SyncState::Synced,
                );
            }
        }
        metrics.set_cost(
            snap.cost.as_deref(),
            snap.cost_source.as_ref(),
            chrono::Utc::now(),
        );
        for r in executor.runs() {
            if r.finished_at.is_some() && counted_runs.insert(r.id.clone()) {
                metrics.runbook_run(&r.runbook, r.state.outcome());
            }
        }
        metrics.set_pending_approvals(executor.pending_approvals().len());
        if let Ok(open) = store.incidents(&IncidentFilter {
            open_only: true,
            since: None,
        }) {
            metrics.set_open_incidents(&open);
        }
        // The store's size walks its files: once a minute is enough.
        if store_sized.is_none_or(|at: std::time::Instant| at.elapsed() >= STORE_SIZE_EVERY) {
            store_sized = Some(std::time::Instant::now());
            if let Ok(bytes) = store.size_on_disk() {
                metrics.set_store_size(bytes);
            }
        }
        // New timeline entries: refusals and action times into the metrics, and the leader
        // mirrors them as Kubernetes Events.
        // Unreadable (the store down): the entries are read once it is back, none twice.
        let head = store.len().unwrap_or(events_from.saturating_sub(1));
        if head >= events_from {
            let entries: Vec<_> = (events_from..=head)
                .filter_map(|seq| store.entry(seq).ok().flatten())
                .collect();
            for e in &entries {
                let n = &e.entry;
                // The guard's refusals (a refused login is counted with the HTTP requests).
                if n.verdict == Some(crate::model::incident::Verdict::Refused)
                    && matches!(n.actor, crate::model::incident::Actor::Runbook(_))
                {
                    metrics.guard_refusal(&n.summary);
                }
                // Approvals decided (a person's verdict, or the timeout's).
                if n.kind == crate::model::incident::EntryKind::Approval {
                    match n.verdict {
                        Some(crate::model::incident::Verdict::Approved) => {
                            metrics.approval_decided("approved");
                        }
                        Some(crate::model::incident::Verdict::Denied)
                            if n.actor == crate::model::incident::Actor::System =>
                        {
                            metrics.approval_decided("expired");
                        }
                        Some(crate::model::incident::Verdict::Denied) => {
                            metrics.approval_decided("denied");
                        }
                        _ => {}
                    }
                }
                if n.detail.get(crate::notify::GAVE_UP) == Some(&serde_json::Value::Bool(true)) {
                    metrics.notification_given_up(
                        n.detail
                            .get("sink")
                            .and_then(|s| s.as_str())
                            .unwrap_or("unknown"),
                    );
                }
                if n.kind == crate::model::incident::EntryKind::Action
                    && let (Some(first), Some(last)) = (n.outcomes.first(), n.outcomes.last())
                {
                    metrics.observe_action((last.at - first.at).to_std().unwrap_or_default());
                }
            }
            if is_leader && cfg.headless.events {
                // Each entry's Event is owed (in the outbox) before it is sent, to the cluster
                // its subject is in.
                let owed = super::events::owed(
                    &entries,
                    &me,
                    |c| clients.contains_key(c),
                    chrono::Utc::now(),
                );
                if let Err(err) = store.outbox_put_all(&owed) {
                    tracing::warn!(error = %err, events = owed.len(), "the Events owed could not be written to the outbox; they are not sent");
                } else if !owed.is_empty() {
                    events_wake.notify_one();
                }
            }
        }
        events_from = head + 1;
    }
    // Graceful stop: out of the Service's endpoints, no new runs; a run in flight stops its
    // actions at the next safe point (a drain between evictions) and gets `shutdown_grace` to
    // finish; what each finished and left goes on its incident's timeline while this replica
    // still holds the Lease; then the Lease is released for a follower and the HTTP server
    // stops. Nothing may still be inside the runtime when `main` shuts it down: a run blocked
    // on it then panicked ("being shutdown") and wrote nothing.
    ready.store(false, Ordering::SeqCst);
    executor.stop_runs();
    let grace = cfg.headless.shutdown_grace;
    let in_flight: Vec<_> = executor
        .runs()
        .into_iter()
        .filter(|r| r.finished_at.is_none())
        .collect();
    let deadline = tokio::time::Instant::now() + grace;
    // A run waiting for a person's approval has done nothing yet and has no safe point to
    // reach: it is left waiting (and said so), not waited for.
    let acting_now = |r: &crate::runbook::executor::RunRecord| {
        r.finished_at.is_none()
            && !matches!(
                r.state,
                crate::runbook::executor::RunState::AwaitingApproval(_)
            )
    };
    while executor.runs().iter().any(acting_now) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    record_stop(&engine, &executor.runs(), &in_flight, grace, &me);
    let _ = stop_tx.send(true);
    if let Some(task) = events_task {
        // A pass in progress finishes its request; what is still owed stays in the outbox
        // for the next leader.
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(e) = elector {
        e.release().await;
    }
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

/// One entry per run that was in flight at SIGTERM, on its incident: reached a safe point
/// (its outcome; its actions' entries above say what they did and left), or still in flight
/// when the grace ran out (its journal stays, and the next start closes it as not resumed).
fn record_stop(
    engine: &crate::engine::Engine,
    now: &[crate::runbook::executor::RunRecord],
    in_flight: &[crate::runbook::executor::RunRecord],
    grace: Duration,
    me: &str,
) {
    use crate::model::incident::{Actor, EntryKind, NewEntry, Verdict};
    for was in in_flight {
        let run = now.iter().rev().find(|r| r.id == was.id).unwrap_or(was);
        let (summary, verdict) = match (run.finished_at, &run.state) {
            (None, crate::runbook::executor::RunState::AwaitingApproval(approval)) => (
                format!(
                    "fleetdeck {me} stopping (SIGTERM): run {} of runbook {} on {} left waiting for approval {approval} at shutdown; nothing of its plan was done, and this process no longer takes the approval: check {} and approve a new plan if it is still needed",
                    run.id, run.runbook, run.target, run.target
                ),
                Verdict::Pending,
            ),
            (Some(_), _) => (
                format!(
                    "fleetdeck {me} stopping (SIGTERM): run {} of runbook {} on {} stopped at a safe point, {}; the runbooks still due are the next leader's, and the Lease is released",
                    run.id, run.runbook, run.target, run.state
                ),
                Verdict::Refused,
            ),
            (None, _) => (
                format!(
                    "fleetdeck {me} stopping (SIGTERM): run {} of runbook {} on {} did not reach a safe point within [headless] shutdown_grace ({}); it is left in flight and not resumed: check {} before acting again",
                    run.id,
                    run.runbook,
                    run.target,
                    humantime::format_duration(grace),
                    run.target
                ),
                Verdict::Refused,
            ),
        };
        let mut e = NewEntry::new(
            EntryKind::Decision,
            Actor::System,
            engine.policy().origin,
            summary,
        );
        e.incident = run.incident;
        e.verdict = Some(verdict);
        e.detail.insert("run".into(), run.id.clone().into());
        e.detail
            .insert("outcome".into(), run.state.outcome().into());
        if let Err(err) = engine.store.append(e) {
            tracing::error!(error = %err, run = %run.id, "cannot write the shutdown entry");
        }
    }
}
