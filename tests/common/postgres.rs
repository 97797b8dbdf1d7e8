//! A throwaway PostgreSQL for the tests marked `#[ignore = "needs postgresql"]`: one server per
//! test binary, started on first use in a temp dir on a free loopback port (as `nobody` when
//! the tests run as root, since PostgreSQL refuses root), stopped when the binary exits; or the
//! server `FLEETDECK_TEST_POSTGRES_URL` names. Each test gets a database of its own.
//!
//! The library's store tests include this file too (`#[path]`), so there is one helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Server {
    /// `postgres://USER@HOST:PORT` (no database).
    base: String,
    bin: PathBuf,
    /// The CA of the server's certificate (for 127.0.0.1 and localhost), when this process
    /// started the server.
    ca: Option<PathBuf>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// The data directory of the server this process started, for the stop at exit.
static STARTED: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);
/// The server's start options and log, to start it again after [`stop`].
static RESTART: OnceLock<(String, PathBuf)> = OnceLock::new();

/// The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FLEETDECK_TEST_POSTGRES_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, b)| b).expect(
        "PostgreSQL is not installed (Debian: apt-get install postgresql); .ci/run installs it",
    )
}

fn as_server_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

extern "C" fn stop_server() {
    if let Some((pg_ctl, data, root)) = STARTED.get() {
        let mut c = if *root {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(pg_ctl);
            c
        } else {
            Command::new(pg_ctl)
        };
        let _ = c
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(data)
            .output();
        if let Some(dir) = data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start() -> Server {
    let bin = bin_dir();
    if let Ok(url) = std::env::var("FLEETDECK_TEST_POSTGRES_URL") {
        return Server {
            base: url.trim_end_matches('/').to_string(),
            bin,
            ca: None,
        };
    }
    let dir = tempfile::Builder::new()
        .prefix("fleetdeck-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; nobody/nogroup are 65534 on Debian.
        let rc = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
        assert_eq!(rc, 0, "chown {} to nobody", dir.display());
    }
    let data = dir.join("data");
    let out = as_server_user(&bin.join("initdb"))
        .args([
            "-U",
            "fleetdeck",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // TLS as managed PostgreSQL speaks it: a private CA and a server certificate from it.
    let tls = write_tls(&dir, root);
    let port = free_port();
    // Tests need no durability; a benchmark (FLEETDECK_TEST_POSTGRES_DURABLE) measures with it.
    let speed = if std::env::var_os("FLEETDECK_TEST_POSTGRES_DURABLE").is_some() {
        ""
    } else {
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    };
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}{speed}",
        dir.display(),
        tls.1.display(),
        tls.2.display()
    );
    let pg_ctl = bin.join("pg_ctl");
    let _ = STARTED.set((pg_ctl.clone(), data.clone(), root));
    let _ = RESTART.set((options.clone(), dir.join("log")));
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(stop_server) };
    let out = as_server_user(&pg_ctl)
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .arg("-o")
        .arg(&options)
        .output()
        .expect("run pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl start: {} {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
    Server {
        base: format!("postgres://fleetdeck@127.0.0.1:{port}"),
        bin,
        ca: Some(tls.0),
    }
}

/// Writes a CA, and a server certificate and key it signed, into `dir`; returns their paths.
fn write_tls(dir: &Path, root: bool) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fleetdeck test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .expect("server params");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write CA");
    std::fs::write(&paths.1, cert.pem()).expect("write certificate");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.2, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    if root {
        for p in [&paths.1, &paths.2] {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: a valid NUL-terminated path.
            let rc = unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
            assert_eq!(rc, 0, "chown {} to nobody", p.display());
        }
    }
    paths
}

/// Stops the server this process started (a fast shutdown: every connection is closed), for a
/// test of the database going away; [`start_again`] brings it back on the same port.
pub fn stop() {
    let _ = server();
    let (pg_ctl, data, _) = STARTED
        .get()
        .expect("stop() needs a server this process started");
    let out = as_server_user(pg_ctl)
        .args(["stop", "-m", "fast", "-w", "-t", "60", "-D"])
        .arg(data)
        .output()
        .expect("run pg_ctl stop");
    assert!(
        out.status.success(),
        "pg_ctl stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the server [`stop`] stopped, with the options it first had.
pub fn start_again() {
    let (pg_ctl, data, _) = STARTED.get().expect("a server this process started");
    let (options, log) = RESTART.get().expect("a server this process started");
    let out = as_server_user(pg_ctl)
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(data)
        .arg("-l")
        .arg(log)
        .arg("-o")
        .arg(options)
        .output()
        .expect("run pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CA file the test server's certificate chains to; `None` for a server of your own.
pub fn ca_file() -> Option<PathBuf> {
    server().ca.clone()
}

fn server() -> &'static Server {
    SERVER.get_or_init(start)
}

/// Runs `sql` with psql on the database `url` names; returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(server().bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new, empty database on the test server; returns its URL (`sslmode=disable`).
pub fn fresh_database() -> String {
    let s = server();
    let name = format!(
        "fd_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    psql(
        &format!("{}/postgres", s.base),
        &format!("CREATE DATABASE {name}"),
    );
    format!("{}/{name}?sslmode=disable", s.base)
}
