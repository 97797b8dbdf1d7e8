//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several `fleetdeck
//! headless` replicas exactly one acts. Imports the kube client and k8s-openapi only.
//!
//! The algorithm is client-go's (`tools/leaderelection/leaderelection.go`, with the record kept
//! in a Lease as `tools/leaderelection/resourcelock/leaselock.go` keeps it), with the same
//! defaults (lease 15 s, renew deadline 10 s, retry 2 s):
//!
//! - A candidate never trusts the timestamps in the Lease (they come from another machine's
//!   clock). It notes the *local* time at which it last saw the record change, and considers
//!   the holder gone once `leaseDurationSeconds` passed since then without a change.
//! - Taking over is an update carrying the resourceVersion it read, so of two candidates racing
//!   for an expired Lease one gets 409 Conflict and stays a follower.
//! - The leader renews every retry period. If no renew succeeded within the renew deadline
//!   (measured from when the last successful renew was *sent*), it stops leading at once, even
//!   while a request still hangs. Since the renew deadline is shorter than the lease, it has
//!   stopped before any follower may consider the Lease expired: that is the fencing.
//! - On a graceful shutdown, [`LeaderHandle::release`] writes an empty holder (client-go's
//!   `ReleaseOnCancel`), so a follower takes over at its next retry instead of waiting for the
//!   lease to run out.
//!
//! Two deliberate differences: followers retry after the retry period plus up to 20% (client-go
//! waits up to 2.2 periods), so a released Lease is taken within 1.2 retry periods; and the
//! lease must be a whole number of seconds longer than the renew deadline, because the Lease
//! stores whole seconds and followers go by what it stores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// client-go's `NewLeaderElector` refuses a renew deadline not above this many retry periods.
const JITTER_FACTOR: f64 = 1.2;
/// Followers wait the retry period plus up to this share of it between tries.
const FOLLOWER_JITTER: f64 = 0.2;

/// Which Lease to contend for, as whom, and how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique among the candidates: the pod's name in a cluster.
    pub identity: String,
    /// How long followers wait, after they last saw the Lease change, before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renew.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers try to acquire.
    pub retry_period: Duration,
    /// Where this replica's API answers (`http://10.0.3.7:8080`), written on the Lease while
    /// it leads so that followers can forward what only the leader acts on.
    pub advertise_url: Option<String>,
}

/// The Lease annotation that names the leader's API address.
pub const LEADER_URL_ANNOTATION: &str = "fleetdeck.dev/leader-url";

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            namespace: "fleetdeck".into(),
            name: "fleetdeck-headless".into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            advertise_url: None,
        }
    }
}

/// `$POD_NAME` (the Deployment sets it from the downward API), else `$HOSTNAME` (a pod's
/// hostname is its name), else `fleetdeck-<pid>`.
pub fn default_identity() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| format!("fleetdeck-{}", std::process::id()))
}

impl LeaseConfig {
    /// The Lease's `leaseDurationSeconds` (whole seconds, rounded down).
    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// client-go's checks (`NewLeaderElector`), plus whole seconds for the lease.
    pub fn validate(&self) -> Result<(), LeaseError> {
        let bad = |why: String| Err(LeaseError::Config(why));
        if self.identity.trim().is_empty() {
            return bad("the identity is empty: set POD_NAME or pass one".into());
        }
        if self.namespace.is_empty() || self.name.is_empty() {
            return bad("the lease needs a namespace and a name".into());
        }
        if self.retry_period.is_zero() {
            return bad("the retry period must be greater than zero".into());
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return bad(format!(
                "the renew deadline ({:?}) must be greater than {JITTER_FACTOR} × the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        let stored = Duration::from_secs(self.lease_duration.as_secs());
        if stored <= self.renew_deadline {
            return bad(format!(
                "the lease duration ({:?}, stored as {}s) must be greater than the renew deadline ({:?})",
                self.lease_duration,
                stored.as_secs(),
                self.renew_deadline
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("leader election: {0}")]
    Config(String),
    #[error(
        "{verb} lease {lease}: {source} (does the namespace exist, and may the service account {verb} leases there? see deploy/10-rbac.yaml)"
    )]
    Api {
        verb: &'static str,
        lease: String,
        #[source]
        source: kube::Error,
    },
    #[error("{verb} lease {lease}: no answer within {after:?}")]
    Timeout {
        verb: &'static str,
        lease: String,
        after: Duration,
    },
}

/// The record as this candidate last saw it, and when (local clock) it last changed.
#[derive(Default)]
struct Observed {
    /// The Lease as last read or written: its resourceVersion is the next update's
    /// precondition.
    lease: Option<Lease>,
    spec: Option<LeaseSpec>,
    changed_at: Option<Instant>,
}

impl Observed {
    fn holder(&self) -> Option<&str> {
        self.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .filter(|h| !h.is_empty())
    }
}

/// What the elector and its handles share.
struct Shared {
    cfg: LeaseConfig,
    leading: Arc<AtomicBool>,
    leading_tx: watch::Sender<bool>,
    observed: Mutex<Observed>,
    /// The fencing token: the term this replica holds or last held (the Lease's
    /// `leaseTransitions` when it was acquired, plus one), 0 before it ever led.
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Shared {
    fn observed(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_leading(&self, leading: bool, why: &str) {
        let was = self.leading.swap(leading, Ordering::SeqCst);
        self.leading_tx.send_replace(leading);
        let (lease, identity) = (self.cfg.describe(), &self.cfg.identity);
        match (was, leading) {
            (false, true) => tracing::info!(%lease, %identity, "became leader"),
            (true, false) => {
                tracing::warn!(%lease, %identity, reason = why, "stopped leading")
            }
            _ => {}
        }
    }

    /// Notes a Lease read from or written to the API; the clock restarts only when the record
    /// changed (client-go compares the raw record).
    fn observe(&self, lease: Lease) {
        let mut o = self.observed();
        let before = o.holder().map(str::to_string);
        if o.spec != lease.spec {
            o.spec.clone_from(&lease.spec);
            o.changed_at = Some(Instant::now());
        }
        o.lease = Some(lease);
        let after = o.holder().map(str::to_string);
        drop(o);
        if before != after {
            tracing::info!(
                lease = %self.cfg.describe(),
                holder = after.as_deref().unwrap_or(""),
                "new lease holder observed"
            );
        }
    }

    /// The observed holder's term has not run out (by the local clock).
    fn observed_valid(&self, now: Instant) -> bool {
        let o = self.observed();
        let secs = o
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(0);
        let secs = u64::try_from(secs).unwrap_or(0);
        o.changed_at
            .is_some_and(|at| at + Duration::from_secs(secs) > now)
    }

    fn observed_holder_is_me(&self) -> bool {
        self.observed().holder() == Some(self.cfg.identity.as_str())
    }
}

/// One try's result.
enum Attempt {
    /// The Lease is ours now (acquired or renewed).
    Leading,
    /// Someone else holds it and their term has not run out.
    HeldBy(String),
    /// Another candidate wrote it between our read and our write (409).
    Lost,
}

fn now_micro() -> MicroTime {
    let micros = chrono::Utc::now().timestamp_micros();
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn record(
    holder: &str,
    seconds: i32,
    acquire: MicroTime,
    renew: MicroTime,
    transitions: i32,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(acquire),
        renew_time: Some(renew),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// A candidate for one Lease; [`Self::spawn`] starts contending.
pub struct LeaderElector {
    api: Api<Lease>,
    shared: Arc<Shared>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Result<Self, LeaseError> {
        cfg.validate()?;
        let (leading_tx, _) = watch::channel(false);
        Ok(Self {
            api: Api::namespaced(client, &cfg.namespace),
            shared: Arc::new(Shared {
                cfg,
                leading: Arc::new(AtomicBool::new(false)),
                leading_tx,
                observed: Mutex::new(Observed::default()),
                epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            }),
        })
    }

    /// Starts the election on the current tokio runtime. It runs until `shutdown` turns true
    /// (or its sender is dropped), [`LeaderHandle::release`] is called, or every handle is
    /// dropped; none of these release the Lease but `release`.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> LeaderHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let api = self.api.clone();
        let task = tokio::spawn(self.run(shutdown, stop_rx));
        LeaderHandle {
            inner: Arc::new(HandleInner {
                shared,
                api: Some(api),
                stop_tx,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    async fn run(self, mut shutdown: watch::Receiver<bool>, mut stop: watch::Receiver<bool>) {
        let cfg = &self.shared.cfg;
        tracing::info!(lease = %cfg.describe(), identity = %cfg.identity, "contending for the lease");
        // While leading: when the last successful renew was sent.
        let mut renewed_at: Option<Instant> = None;
        let mut wait = Duration::ZERO;
        let mut last_error = String::new();
        loop {
            let mut wake = Instant::now() + wait;
            if let Some(at) = renewed_at {
                wake = wake.min(at + cfg.renew_deadline);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = ended(&mut shutdown) => break,
                _ = ended(&mut stop) => break,
            }
            let started = Instant::now();
            let budget = match renewed_at {
                Some(at) if started >= at + cfg.renew_deadline => {
                    self.shared
                        .set_leading(false, "no successful renew within the renew deadline");
                    renewed_at = None;
                    wait = self.follower_wait();
                    continue;
                }
                Some(at) => at + cfg.renew_deadline - started,
                None => cfg.renew_deadline,
            };
            let result = tokio::select! {
                r = tokio::time::timeout(budget, self.try_acquire_or_renew()) => r,
                _ = ended(&mut shutdown) => break,
                _ = ended(&mut stop) => break,
            };
            match result {
                Ok(Ok(Attempt::Leading)) => {
                    if renewed_at.is_none() {
                        // The token first, so that the first acting write carries this term.
                        let transitions = self
                            .shared
                            .observed()
                            .spec
                            .as_ref()
                            .and_then(|s| s.lease_transitions)
                            .unwrap_or(0);
                        self.shared.epoch.store(
                            u64::try_from(transitions).unwrap_or(0) + 1,
                            Ordering::SeqCst,
                        );
                        self.shared.set_leading(true, "acquired");
                    }
                    renewed_at = Some(started);
                    last_error.clear();
                }
                Ok(Ok(Attempt::HeldBy(holder))) => {
                    if renewed_at.take().is_some() {
                        self.shared
                            .set_leading(false, &format!("the lease is held by {holder}"));
                    }
                }
                Ok(Ok(Attempt::Lost)) => {
                    tracing::debug!(lease = %cfg.describe(), "another candidate wrote the lease first");
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    if msg != last_error {
                        tracing::warn!(error = %msg, "leader election");
                        last_error = msg;
                    }
                }
                Err(_) => {
                    let msg = format!("lease {}: no answer within {budget:?}", cfg.describe());
                    if msg != last_error {
                        tracing::warn!(error = %msg, "leader election");
                        last_error = msg;
                    }
                }
            }
            if let Some(at) = renewed_at
                && Instant::now() >= at + cfg.renew_deadline
            {
                self.shared
                    .set_leading(false, "no successful renew within the renew deadline");
                renewed_at = None;
            }
            wait = if renewed_at.is_some() {
                cfg.retry_period
            } else {
                self.follower_wait()
            };
        }
        self.shared.set_leading(false, "the elector stopped");
    }

    fn follower_wait(&self) -> Duration {
        let jitter = rand::thread_rng().gen_range(0.0..=FOLLOWER_JITTER);
        self.shared.cfg.retry_period.mul_f64(1.0 + jitter)
    }

    fn api_error(&self, verb: &'static str) -> impl FnOnce(kube::Error) -> LeaseError + '_ {
        move |source| LeaseError::Api {
            verb,
            lease: self.shared.cfg.describe(),
            source,
        }
    }

    /// client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaseError> {
        let cfg = &self.shared.cfg;
        let me = cfg.identity.as_str();
        let now = now_micro();
        let pp = PostParams::default();

        // 1. The leader updates the Lease it last wrote, assuming nobody touched it since.
        let cached = self
            .shared
            .observed_holder_is_me()
            .then(|| self.shared.observed().lease.clone())
            .flatten();
        if let Some(mut lease) = cached {
            let old = lease.spec.take().unwrap_or_default();
            lease.spec = Some(record(
                me,
                cfg.lease_seconds(),
                old.acquire_time.unwrap_or_else(|| now.clone()),
                now.clone(),
                old.lease_transitions.unwrap_or(0),
            ));
            match self.api.replace(&cfg.name, &pp, &lease).await {
                Ok(written) => {
                    self.shared.observe(written);
                    return Ok(Attempt::Leading);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "optimistic renew failed; reading the lease")
                }
            }
        }

        // 2. Read the Lease, or create it.
        let Some(current) = self
            .api
            .get_opt(&cfg.name)
            .await
            .map_err(self.api_error("get"))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    annotations: cfg.advertise_url.as_ref().map(|u| {
                        std::collections::BTreeMap::from([(
                            LEADER_URL_ANNOTATION.to_string(),
                            u.clone(),
                        )])
                    }),
                    ..ObjectMeta::default()
                },
                spec: Some(record(me, cfg.lease_seconds(), now.clone(), now, 0)),
            };
            return match self.api.create(&pp, &lease).await {
                Ok(written) => {
                    self.shared.observe(written);
                    Ok(Attempt::Leading)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Lost),
                Err(e) => Err(self.api_error("create")(e)),
            };
        };

        // 3. Someone else's term that has not run out (by our clock) is left alone.
        let spec = current.spec.clone().unwrap_or_default();
        self.shared.observe(current.clone());
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if !holder.is_empty() && holder != me && self.shared.observed_valid(Instant::now()) {
            return Ok(Attempt::HeldBy(holder));
        }

        // 4. Take it over (or renew it), on the condition that it is still what we read.
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquire, transitions) = if holder == me {
            (
                spec.acquire_time.unwrap_or_else(|| now.clone()),
                transitions,
            )
        } else {
            (now.clone(), transitions.saturating_add(1))
        };
        let mut next = current;
        next.spec = Some(record(me, cfg.lease_seconds(), acquire, now, transitions));
        let annotations = next
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match &cfg.advertise_url {
            Some(u) => {
                annotations.insert(LEADER_URL_ANNOTATION.to_string(), u.clone());
            }
            None => {
                annotations.remove(LEADER_URL_ANNOTATION);
            }
        }
        match self.api.replace(&cfg.name, &pp, &next).await {
            Ok(written) => {
                self.shared.observe(written);
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Lost),
            Err(e) => Err(self.api_error("update")(e)),
        }
    }
}

/// Resolves once the flag turns true or its sender is gone.
async fn ended(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

struct HandleInner {
    shared: Arc<Shared>,
    /// `None` when the configuration was refused and nothing runs.
    api: Option<Api<Lease>>,
    stop_tx: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for HandleInner {
    /// The last handle gone ends the election as a crash would: no release, the Lease runs out.
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.shared.set_leading(false, "the elector was dropped");
    }
}

/// The running election. Clones share it; dropping the last one stops it without releasing.
#[derive(Clone)]
pub struct LeaderHandle {
    inner: Arc<HandleInner>,
}

impl LeaderHandle {
    /// Whether this replica leads now. Act only while this is true, and check it again right
    /// before each mutation.
    pub fn is_leader(&self) -> bool {
        self.inner.shared.leading.load(Ordering::SeqCst)
    }

    /// The flag [`Self::is_leader`] reads, for code that holds no handle.
    pub fn leading_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.inner.shared.leading)
    }

    /// The fencing token acting writes carry: this replica's Lease term (0: it never led).
    pub fn fencing_token(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.inner.shared.epoch)
    }

    /// Stops leading now, because the store refused a write as a newer leader's term exists:
    /// nothing acts from here; the Lease, held by the newer leader, is not touched.
    pub fn step_down(&self, why: &str) {
        self.inner.shared.set_leading(false, why);
    }

    /// Follows [`Self::is_leader`]: changes each time this replica starts or stops leading.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.inner.shared.leading_tx.subscribe()
    }

    /// The holder's identity as last observed (`None`: no holder, or not read yet).
    pub fn holder(&self) -> Option<String> {
        self.inner.shared.observed().holder().map(str::to_string)
    }

    /// Another replica's (identity, API address) while it holds the Lease and advertised an
    /// address on it; `None` when this replica leads, nobody does, or the leader's term ran out.
    pub fn leader_address(&self) -> Option<(String, String)> {
        let shared = &self.inner.shared;
        if !shared.observed_valid(Instant::now()) {
            return None;
        }
        let o = shared.observed();
        let holder = o
            .holder()
            .filter(|h| *h != shared.cfg.identity)?
            .to_string();
        let url = o
            .lease
            .as_ref()?
            .metadata
            .annotations
            .as_ref()?
            .get(LEADER_URL_ANNOTATION)?
            .clone();
        Some((holder, url))
    }

    pub fn identity(&self) -> &str {
        &self.inner.shared.cfg.identity
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.inner.shared.cfg
    }

    /// Stops the election and, if this replica holds the Lease, hands it back (empty holder,
    /// client-go's `ReleaseOnCancel`) so a follower takes over at its next retry. Answers
    /// whether it released one; a failure is logged (the Lease then runs out on its own).
    /// Call it only once this replica has finished acting: it stops leading here, before the
    /// write.
    pub async fn release(&self) -> bool {
        match self.try_release().await {
            Ok(released) => released,
            Err(e) => {
                tracing::warn!(error = %e, "the lease was not released: followers wait for it to run out");
                false
            }
        }
    }

    /// [`Self::release`], answering the error instead of logging it.
    pub async fn try_release(&self) -> Result<bool, LeaseError> {
        self.inner.stop_tx.send_replace(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let shared = &self.inner.shared;
        shared.set_leading(false, "releasing the lease");
        if !shared.observed_holder_is_me() {
            return Ok(false);
        }
        let after = shared.cfg.renew_deadline;
        match tokio::time::timeout(after, self.write_release()).await {
            Ok(r) => r,
            Err(_) => Err(LeaseError::Timeout {
                verb: "release",
                lease: shared.cfg.describe(),
                after,
            }),
        }
    }

    async fn write_release(&self) -> Result<bool, LeaseError> {
        let Some(api) = &self.inner.api else {
            return Ok(false);
        };
        let shared = &self.inner.shared;
        let cfg = &shared.cfg;
        let api_error = |verb: &'static str| {
            move |source| LeaseError::Api {
                verb,
                lease: cfg.describe(),
                source,
            }
        };
        let pp = PostParams::default();
        let mut lease = shared.observed().lease.clone();
        for _ in 0..2 {
            let Some(mut current) = lease.take() else {
                break;
            };
            let spec = current.spec.take().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
                shared.observe(Lease {
                    spec: Some(spec),
                    ..current
                });
                return Ok(false);
            }
            let now = now_micro();
            // An empty holder, and one second for candidates that do not check for it.
            current.spec = Some(record(
                "",
                1,
                now.clone(),
                now,
                spec.lease_transitions.unwrap_or(0),
            ));
            match api.replace(&cfg.name, &pp, &current).await {
                Ok(written) => {
                    shared.observe(written);
                    tracing::info!(lease = %cfg.describe(), identity = %cfg.identity, "released the lease");
                    return Ok(true);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    lease = api.get_opt(&cfg.name).await.map_err(api_error("get"))?;
                }
                Err(e) => return Err(api_error("release")(e)),
            }
        }
        Ok(false)
    }
}

/// Starts contending for the Lease `cfg` names ([`LeaderElector::new`], then
/// [`LeaderElector::spawn`]). A configuration that fails [`LeaseConfig::validate`] is logged
/// and yields a handle that never leads: a replica that cannot elect safely must not act.
pub fn spawn(
    client: kube::Client,
    cfg: LeaseConfig,
    shutdown: watch::Receiver<bool>,
) -> LeaderHandle {
    match LeaderElector::new(client, cfg) {
        Ok(elector) => elector.spawn(shutdown),
        Err(e) => {
            tracing::error!(error = %e, "leader election is off: this replica will not lead");
            let (leading_tx, _) = watch::channel(false);
            let (stop_tx, _) = watch::channel(true);
            LeaderHandle {
                inner: Arc::new(HandleInner {
                    shared: Arc::new(Shared {
                        cfg: LeaseConfig::default(),
                        leading: Arc::new(AtomicBool::new(false)),
                        leading_tx,
                        observed: Mutex::new(Observed::default()),
                        epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
                    }),
                    api: None,
                    stop_tx,
                    task: Mutex::new(None),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lease: u64, deadline_ms: u64, retry_ms: u64) -> LeaseConfig {
        LeaseConfig {
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_millis(deadline_ms),
            retry_period: Duration::from_millis(retry_ms),
            ..LeaseConfig::default()
        }
    }

    #[test]
    fn defaults_are_client_gos() {
        let d = LeaseConfig::default();
        assert_eq!(
            (d.lease_duration, d.renew_deadline, d.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert!(d.validate().is_ok());
        assert_eq!(d.lease_seconds(), 15);
    }

    #[test]
    fn a_renew_deadline_not_above_the_jittered_retry_period_is_refused() {
        let err = cfg(15, 2400, 2000).validate().unwrap_err().to_string();
        assert!(err.contains("1.2 × the retry period"), "{err}");
        assert!(cfg(15, 2500, 2000).validate().is_ok());
    }

    #[test]
    fn a_lease_that_does_not_outlast_the_renew_deadline_in_whole_seconds_is_refused() {
        // 2.9 s is stored as 2 s: followers would take over before the leader stops.
        let mut c = cfg(3, 2000, 500);
        c.lease_duration = Duration::from_millis(2900);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("stored as 2s"), "{err}");
        assert!(cfg(3, 2000, 500).validate().is_ok());
    }

    #[test]
    fn an_empty_identity_is_refused() {
        let mut c = cfg(15, 10_000, 2000);
        c.identity = " ".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn times_are_written_as_micro_time() {
        let spec = record("a", 15, now_micro(), now_micro(), 0);
        let v = serde_json::to_value(&spec).expect("serialises");
        let renew = v["renewTime"].as_str().expect("renewTime");
        // 2026-11-28T12:00:00.000000Z
        assert_eq!(renew.len(), 27, "{renew}");
        assert!(
            renew.ends_with('Z') && renew.as_bytes()[19] == b'.',
            "{renew}"
        );
        assert_eq!(v["holderIdentity"], "a");
        assert_eq!(v["leaseDurationSeconds"], 15);
    }
}
