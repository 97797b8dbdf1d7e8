//! Starts the real `fleetdeck sim` binary and talks to it as a user's tools would.
#![allow(dead_code)]

pub mod headless;
pub mod postgres;
pub mod quality;
pub mod tmux;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Sim {
    child: Child,
    pub desc: Value,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `fleetdeck sim` with `args` (plus a kubeconfig in a temp dir) and waits for its
    /// JSON line.
    pub fn start(args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
            .arg("sim")
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fleetdeck sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sim's JSON line");
        let desc: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("sim printed {line:?}: {e}"));
        Sim {
            child,
            desc,
            kubeconfig,
            dir,
        }
    }

    pub fn kube_url(&self, cluster: usize) -> String {
        self.desc["clusters"][cluster]["kube"]
            .as_str()
            .expect("kube url")
            .to_string()
    }

    pub fn control(&self) -> String {
        self.desc["control"]
            .as_str()
            .expect("control url")
            .to_string()
    }

    pub fn endpoint(&self, name: &str) -> String {
        self.desc["endpoints"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .and_then(|e| e["url"].as_str())
            .unwrap_or_else(|| panic!("no endpoint {name}"))
            .to_string()
    }

    pub fn counters(&self, cluster: &str) -> Value {
        let v: Value = reqwest::blocking::get(format!("{}/counters", self.control()))
            .and_then(|r| r.json())
            .expect("counters");
        v["clusters"][cluster].clone()
    }

    /// Sends SIGTERM and returns the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The versioned kubectl binary from the machine's kubectl package.
pub fn kubectl_path(version: &str) -> PathBuf {
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"));
    assert!(
        p.exists(),
        "kubectl {version} is missing at {}: install Debian's kubectl package (google-cloud-cli's kubectl, which ships kubectl.1.27 … kubectl.1.33)",
        p.display()
    );
    p
}

pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(version: &str, sim: &Sim) -> Self {
        Kubectl {
            bin: kubectl_path(version),
            kubeconfig: sim.kubeconfig.clone(),
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// Runs kubectl and insists it succeeds; answers its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl printed JSON")
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A kubeconfig whose only user gets `token` from an exec credential plugin, as EKS's, GKE's
/// and AKS's do.
pub fn exec_kubeconfig(dir: &Path, token: &str) -> PathBuf {
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": token},
    });
    let script = dir.join("credential-plugin.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s' '{credential}'\n")).unwrap();
    let path = dir.join("exec-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://cluster.invalid\nusers:\n- name: abe\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"{}\"]\n      interactiveMode: Never\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: abe\ncurrent-context: c\n",
            script.display()
        ),
    )
    .unwrap();
    path
}
