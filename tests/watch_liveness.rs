//! A connection that dies without closing: a TCP proxy in front of the sim's API server stops
//! forwarding bytes while keeping every socket open (a black hole, as a dead NAT entry or a
//! wedged load balancer makes). The Kubernetes source must leave "synced" within its idle
//! limit — in the cockpit's picture and in headless's /readyz and /metrics — and come back
//! when the proxy heals.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Sim, http, wait_until};
use fleetdeck::model::{Snapshot, SyncState};
use fleetdeck::sources::kube::{Liveness, spawn_cluster, targets};
use fleetdeck::state::{ClusterInfo, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The idle limit under test: above the sim's 10 s bookmark period.
const IDLE: Duration = Duration::from_secs(15);

/// A TCP proxy that can black-hole: while `holed`, nothing is forwarded on any connection,
/// and a connection that lived through a black hole never forwards again (its peer's state
/// is gone), but no socket is closed.
#[derive(Clone)]
struct Proxy {
    holed: Arc<AtomicBool>,
    /// Bumped at each black hole; a connection from an older generation is dead.
    generation: Arc<AtomicU64>,
    addr: std::net::SocketAddr,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            holed: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
            addr: listener.local_addr().unwrap(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let born = p.generation.load(Ordering::SeqCst);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(p.clone().pipe(cr, sw, born));
                    p.pipe(sr, cw, born).await;
                });
            }
        });
        proxy
    }

    async fn pipe(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        born: u64,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let dead =
                self.holed.load(Ordering::SeqCst) || self.generation.load(Ordering::SeqCst) != born;
            if dead {
                // Swallowed: the socket stays open, the bytes go nowhere.
                continue;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn black_hole(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.holed.store(true, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.holed.store(false, Ordering::SeqCst);
    }
}

/// The sim's kubeconfig with its server replaced by the proxy's address.
fn proxied_kubeconfig(sim: &Sim, proxy: &Proxy, dir: &Path) -> std::path::PathBuf {
    let kc = std::fs::read_to_string(&sim.kubeconfig).unwrap();
    let upstream = sim.kube_url(0);
    assert!(kc.contains(&upstream), "the kubeconfig names {upstream}");
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        kc.replace(&upstream, &format!("http://{}", proxy.addr)),
    )
    .unwrap();
    path
}

fn upstream_addr(sim: &Sim) -> String {
    sim.kube_url(0).trim_start_matches("http://").to_string()
}

fn states(snap: &Snapshot) -> Vec<(String, SyncState)> {
    snap.clusters
        .iter()
        .flat_map(|c| c.sync.iter().map(|s| (s.resource.clone(), s.state.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_api_connection_leaves_synced_within_the_idle_limit_and_recovers() {
    let sim = tokio::task::block_in_place(|| Sim::start(&["--clusters", "1", "--nodes", "6"]));
    let proxy = Proxy::start(upstream_addr(&sim)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxied_kubeconfig(&sim, &proxy, dir.path());

    let targets = targets(Some(&kubeconfig), &[]).unwrap();
    let infos = targets
        .iter()
        .map(|t| ClusterInfo {
            name: t.context.clone(),
            server: t.server.clone(),
        })
        .collect();
    let (tx, rx) = mpsc::channel(4096);
    let mut snapshots = spawn(infos, rx);
    let liveness = Liveness {
        idle_timeout: IDLE,
        ..Liveness::default()
    };
    for (i, t) in targets.into_iter().enumerate() {
        spawn_cluster(i, t, liveness, tx.clone());
    }
    let until = async |snapshots: &mut tokio::sync::watch::Receiver<Arc<Snapshot>>,
                       what: &str,
                       limit: Duration,
                       ok: &dyn Fn(&Snapshot) -> bool| {
        let wait = async {
            loop {
                let snap = snapshots.borrow_and_update().clone();
                if ok(&snap) {
                    return;
                }
                snapshots.changed().await.unwrap();
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            panic!("{what} within {limit:?}: {:?}", states(&snapshots.borrow()));
        }
    };
    let all_synced = |s: &Snapshot| !s.clusters.is_empty() && s.clusters.iter().all(|c| c.synced());
    until(
        &mut snapshots,
        "every resource syncs",
        Duration::from_secs(60),
        &all_synced,
    )
    .await;

    // A quiet but healthy watch is not a dead one: the sim's bookmarks keep every resource
    // synced through more than the idle limit.
    tokio::time::sleep(IDLE + Duration::from_secs(5)).await;
    let quiet = states(&snapshots.borrow());
    assert!(
        quiet.iter().all(|(_, s)| *s == SyncState::Synced),
        "a healthy quiet watch left synced: {quiet:?}"
    );

    proxy.black_hole();
    // Every watch is quiet now; each notices within the idle limit (plus a scheduling margin).
    until(
        &mut snapshots,
        "every resource leaves synced",
        IDLE + Duration::from_secs(20),
        &|s| {
            s.clusters.iter().all(|c| {
                c.sync
                    .iter()
                    .all(|r| matches!(r.state, SyncState::Reconnecting { .. }))
            })
        },
    )
    .await;
    let snap = snapshots.borrow().clone();
    let cluster = &snap.clusters[0];
    assert!(
        cluster.nodes.len() == 6,
        "the last picture stays while reconnecting"
    );
    if let SyncState::Reconnecting { last_error, .. } = &cluster.sync[0].state {
        assert!(last_error.contains("received nothing"), "{last_error}");
    }

    proxy.heal();
    until(
        &mut snapshots,
        "every resource syncs again after the proxy heals",
        Duration::from_secs(90),
        &all_synced,
    )
    .await;
    drop(tx);
}

struct Headless(Child);

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn headless_readyz_and_metrics_say_a_black_holed_cluster_is_not_synced() {
    let sim = Sim::start(&["--clusters", "1", "--nodes", "6"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(Proxy::start(upstream_addr(&sim)));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxied_kubeconfig(&sim, &proxy, dir.path());
    let config = dir.path().join("fleetdeck.toml");
    std::fs::write(
        &config,
        "[kubernetes]\nwatch_idle_timeout = \"15s\"\n[gpu]\nnvml = false\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--store")
        .arg(dir.path().join("store"))
        .args(["headless", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("FLEETDECK_TOKEN", "liveness-test-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fleetdeck headless");
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    let _daemon = Headless(child);
    let url = format!("http://127.0.0.1:{port}");
    let ready = || {
        http()
            .get(format!("{url}/readyz"))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let synced_pods = || {
        http()
            .get(format!("{url}/metrics"))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .and_then(|m| {
                m.lines()
                    .find(|l| {
                        l.starts_with("fleetdeck_source_synced") && l.contains("resource=\"pods\"")
                    })
                    .map(|l| l.trim_end().ends_with(" 1"))
            })
    };
    wait_until("headless is ready", Duration::from_secs(60), || {
        ready() == 200
    });
    assert_eq!(synced_pods(), Some(true));

    proxy.black_hole();
    // Each watch notices on its own clock: all of them within the idle limit and a margin.
    wait_until(
        "/readyz says not ready and fleetdeck_source_synced{resource=\"pods\"} drops to 0 \
         once the watches have been quiet for the idle limit",
        IDLE + Duration::from_secs(25),
        || ready() == 503 && synced_pods() == Some(false),
    );

    proxy.heal();
    wait_until(
        "headless is ready again after the proxy heals",
        Duration::from_secs(90),
        || ready() == 200,
    );
    assert_eq!(synced_pods(), Some(true));
    drop(rt);
}
