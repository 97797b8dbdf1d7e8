//! A `fleetdeck headless` replica as a child process against a sim, for the HA tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Sim, http, wait_until};

pub struct Replica {
    pub child: Child,
    pub url: String,
    pub name: String,
    _store: Option<tempfile::TempDir>,
}

impl Replica {
    /// Starts one replica named `name` (its Lease identity) on a free loopback port, with
    /// `args` before `headless` (e.g. `--mode auto`), and waits until it answers /healthz.
    pub fn start(sim: &Sim, config: &Path, name: &str, token: &str, args: &[&str]) -> Replica {
        let store = tempfile::tempdir().unwrap();
        let mut replica =
            Self::start_on(sim, config, name, token, args, &store.path().join("store"));
        replica._store = Some(store);
        replica
    }

    /// As [`start`](Self::start), on the store at `store` (which outlives the replica: a
    /// restart on the same store).
    pub fn start_on(
        sim: &Sim,
        config: &Path,
        name: &str,
        token: &str,
        args: &[&str],
        store: &Path,
    ) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_at(sim, config, name, token, args, store, port)
    }

    /// As [`start_on`](Self::start_on), listening on `port` (a daemon restarted where its
    /// clients were attached).
    pub fn start_at(
        sim: &Sim,
        config: &Path,
        name: &str,
        token: &str,
        args: &[&str],
        store: &Path,
        port: u16,
    ) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("--config")
            .arg(config)
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .arg("--store")
            .arg(store)
            .args(args)
            .args(["headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("FLEETDECK_TOKEN", token)
            .env("POD_NAME", name)
            .env_remove("POD_IP")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fleetdeck headless");
        // Drain its JSON log so it never blocks on a full pipe.
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        let url = format!("http://127.0.0.1:{port}");
        wait_until(
            "the replica answers /healthz",
            Duration::from_secs(20),
            || {
                http()
                    .get(format!("{url}/healthz"))
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        );
        Replica {
            child,
            url,
            name: name.to_string(),
            _store: None,
        }
    }

    /// Whether its /metrics says it holds the Lease.
    pub fn leads(&self) -> bool {
        http()
            .get(format!("{}/metrics", self.url))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|m| {
                m.lines()
                    .any(|l| l.starts_with("fleetdeck_leader") && l.trim_end().ends_with(" 1"))
            })
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
