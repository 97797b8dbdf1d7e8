//! The daemon against hostile input, as the real `fleetdeck headless` binary on a sim: an alert
//! whose labels carry quotes, newlines and terminal escapes leaves /metrics parseable (by a
//! line checker here, and by Debian's `promtool` when it is installed) and reaches no terminal
//! raw through the CLI's tables and exports; hundreds of connections that send one byte and
//! stall do not keep /healthz from answering once they time out; HTTPS with a certificate from
//! a CA made in the test, plain HTTP refused on that port, and a rotated certificate served
//! without a restart.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Sim, http, wait_until};
use fleetdeck::model::incident::Origin;
use fleetdeck::model::signal::{Severity, Signal, Subject};
use fleetdeck::store::Store;

const TOKEN: &str = "hardening-test-token-0123456789";

/// An alert name that closes the label, adds a sample and opens a comment (issue 15's), then
/// recolours, retitles and rewinds the terminal. A second alert's name holds a bare quote and
/// a backslash that escapes nothing.
const HOSTILE_NAME: &str = "Evil\"} 1\ninjected 7\n#\\\u{1b}[31m\r\u{1b}]0;pwned\u{7}";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `fleetdeck headless` on a sim, killed when dropped.
struct Headless {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Headless {
    /// Starts it with `[headless]` lines added to the config, the extra `flags` after
    /// `headless`, and the shell's `ulimit -n` set to `max_files` when given.
    fn start(sim: &Sim, headless_toml: &str, flags: &[&str], max_files: Option<u32>) -> Headless {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("fleetdeck.toml");
        std::fs::write(
            &config,
            format!(
                "[gpu]\nnvml = false\n\n[headless]\nlease_namespace = \"default\"\nevents = false\n{headless_toml}\n"
            ),
        )
        .unwrap();
        let mut command = match max_files {
            // The limit applies to the daemon only: the test's own sockets are not counted.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$@\""))
                    .arg("sh")
                    .arg(env!("CARGO_BIN_EXE_fleetdeck"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_fleetdeck")),
        };
        command
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&sim.kubeconfig)
            .arg("--store")
            .arg(dir.path().join("store"))
            .args(["headless", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(flags)
            .env("FLEETDECK_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start fleetdeck headless");
        // Drain its JSON log so it never blocks on a full pipe.
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        Headless {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then wait: the store is free for the CLI afterwards.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn small_sim() -> Sim {
    Sim::start(&["--clusters", "1", "--nodes", "3", "--pods-per-node", "2"])
}

fn hostile_webhook() -> String {
    serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"evil\"}",
        "status": "firing",
        "receiver": "fleetdeck",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": HOSTILE_NAME,
                "severity": "critical",
                "node": "node\u{1b}[2J-0",
            },
            "annotations": { "summary": "disk \u{1b}[5mfull\r\nforged line" },
            "startsAt": Utc::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "0123456789abcdef",
        }, {
            "status": "firing",
            "labels": { "alertname": "Quote\"Inside\\Back", "severity": "warning" },
            "startsAt": Utc::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "fedcba9876543210",
        }],
    })
    .to_string()
}

/// /metrics of a daemon that received the hostile alert, once the alert is on it.
fn metrics_with_a_hostile_alert() -> String {
    let sim = small_sim();
    let daemon = Headless::start(&sim, "", &[], None);
    let url = daemon.url();
    wait_until("the daemon is ready", Duration::from_secs(60), || {
        http()
            .get(format!("{url}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    let posted = http()
        .post(format!("{url}/api/v1/alerts"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(hostile_webhook())
        .send()
        .expect("post the alert");
    assert!(posted.status().is_success(), "{:?}", posted.text());
    let mut metrics = String::new();
    wait_until(
        "the alert's kind on /metrics",
        Duration::from_secs(30),
        || {
            metrics = http()
                .get(format!("{url}/metrics"))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default();
            metrics.contains("kind=\"alert.evil") && metrics.contains("kind=\"alert.quote")
        },
    );
    metrics
}

/// One line of the Prometheus text format (and OpenMetrics): a comment, or
/// `name{label="value",...} number [timestamp]` with only `\\`, `\"` and `\n` escaped in
/// values, and no raw control character anywhere.
fn well_formed(line: &str) -> Result<(), String> {
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        // Legal in a label value, but it would drive the terminal of whoever reads the scrape.
        return Err(format!("a raw control character {c:?}"));
    }
    if line.starts_with('#') {
        return Ok(());
    }
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut chars = line.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if is_name_start(c) => {}
        _ => return Err("no metric name".into()),
    }
    while chars.peek().is_some_and(|&(_, c)| is_name(c)) {
        chars.next();
    }
    if chars.peek().is_some_and(|&(_, c)| c == '{') {
        chars.next();
        loop {
            if chars.peek().is_some_and(|&(_, c)| c == '}') {
                chars.next();
                break;
            }
            match chars.next() {
                Some((_, c)) if is_name_start(c) && c != ':' => {}
                _ => return Err("a bad label name".into()),
            }
            while chars.peek().is_some_and(|&(_, c)| is_name(c) && c != ':') {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err("a label without =\"".into());
            }
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => return Err("an unterminated label value".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\' | '"' | 'n') => {}
                        other => return Err(format!("a bad escape \\{other:?}")),
                    },
                    Some('\n') => return Err("a raw newline in a label value".into()),
                    Some(_) => {}
                }
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => {}
                Some('}') => break,
                other => return Err(format!("{other:?} after a label value")),
            }
        }
    }
    let rest = match chars.next() {
        Some((i, ' ')) => &line[i + 1..],
        _ => return Err("no space before the value".into()),
    };
    let mut fields = rest.split(' ');
    let value = fields.next().unwrap_or("");
    let number = value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value);
    if !number {
        return Err(format!("{value:?} is not a number"));
    }
    match (fields.next(), fields.next()) {
        (None, _) => Ok(()),
        (Some(t), None) if t.parse::<f64>().is_ok() => Ok(()),
        _ => Err("more than a value and a timestamp".into()),
    }
}

#[test]
fn a_line_checker_refuses_what_an_injection_makes() {
    assert!(well_formed("fleetdeck_leader 1").is_ok());
    assert!(well_formed(r#"fleetdeck_signals{kind="a\"b\nc\\",severity="x"} 2"#).is_ok());
    assert!(well_formed("fleetdeck_signals{kind=\"alert.evil\"} 1").is_ok());
    assert!(
        well_formed("injected 7").is_ok(),
        "a line of its own is well-formed…"
    );
    assert!(well_formed("fleetdeck_signals{kind=\"evil\"} 1\"} 1").is_err());
    assert!(well_formed("fleetdeck_signals{kind=\"evil\\x\"} 1").is_err());
    assert!(well_formed("#\u{1b}[31m").is_err());
}

#[test]
fn hostile_alert_labels_leave_every_metrics_line_well_formed() {
    let metrics = metrics_with_a_hostile_alert();
    for (n, line) in metrics.lines().enumerate() {
        if let Err(why) = well_formed(line) {
            panic!("line {} of /metrics: {why}: {line:?}\n{metrics}", n + 1);
        }
    }
    // …but the injection's sample is not one of them.
    assert!(
        !metrics.lines().any(|l| l.starts_with("injected")),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[test]
#[ignore = "needs prometheus (Debian package prometheus, for promtool)"]
fn promtool_parses_metrics_with_hostile_alert_labels() {
    let metrics = metrics_with_a_hostile_alert();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 3 is lint advice only (OpenMetrics puts a counter's HELP on its name without
    // `_total`); 1 is a parse error.
    assert!(
        matches!(out.status.code(), Some(0 | 3)) && !said.contains("error"),
        "promtool: {said}\n{metrics}"
    );
}

/// What a terminal would obey: C0 controls but the line feed, DEL and C1 controls.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect()
}

fn fleetdeck_cli(store: &Path, args: &[&str]) -> String {
    let home = store.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .output()
        .expect("run fleetdeck");
    assert!(
        out.status.success(),
        "fleetdeck {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn cli_tables_and_exports_show_control_characters_as_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Store::open(&path).unwrap();
        let signal = Signal {
            kind: format!("alert.{}", HOSTILE_NAME.to_ascii_lowercase()),
            severity: Severity::Critical,
            subject: Subject {
                cluster: "prod".into(),
                node: Some("node\u{1b}[2J-0".into()),
                ..Subject::default()
            },
            summary: "disk \u{1b}[5mfull\r\nforged line \u{9b}31m \u{202e}gnp.exe".into(),
            evidence: Default::default(),
            action: None,
            first_seen: Utc::now(),
            dedup_key: "alert:0123456789abcdef".into(),
        };
        store
            .record_signals(
                &[signal],
                &[],
                Origin::Headless,
                Duration::from_secs(3600),
                Utc::now(),
            )
            .unwrap();
    }
    for args in [
        &["incident", "list"][..],
        &["incident", "show", "1"],
        &["incident", "export", "1", "--format", "md"],
        &["audit", "verify"],
    ] {
        let out = fleetdeck_cli(&path, args);
        assert!(
            raw_controls(&out).is_empty(),
            "fleetdeck {args:?} printed raw {:?}:\n{out}",
            raw_controls(&out)
        );
        assert!(!out.contains('\u{202e}'), "{args:?}: {out}");
        assert!(
            !out.lines().any(|l| l.starts_with("forged line")),
            "fleetdeck {args:?} let a label start a line of its own:\n{out}"
        );
    }
    let shown = fleetdeck_cli(&path, &["incident", "show", "1"]);
    assert!(shown.contains("\\x1b[5mfull\\r\\nforged line"), "{shown}");
    let listed = fleetdeck_cli(&path, &["incident", "list"]);
    assert_eq!(listed.lines().count(), 2, "a header and one row:\n{listed}");
}

/// Opens `n` connections that each send one byte of a request and then nothing.
fn stalled_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            // A daemon out of descriptors stops accepting: a full backlog must not hang the test.
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            let _ = s.write_all(b"G");
            Some(s)
        })
        .collect()
}

#[test]
fn healthz_answers_again_once_stalled_connections_time_out() {
    let sim = small_sim();
    // 160 descriptors: before the cap, 400 stalled clients left none to accept a probe with.
    let daemon = Headless::start(
        &sim,
        "header_read_timeout = \"2s\"\nmax_connections = 64\n",
        &[],
        Some(160),
    );
    let url = daemon.url();
    wait_until("the daemon answers", Duration::from_secs(60), || {
        http()
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    let stalled = stalled_connections(daemon.port, 400);
    assert!(stalled.len() >= 200, "only {} connected", stalled.len());
    let probe = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_until(
        "/healthz answers while the stalled clients are still connected",
        Duration::from_secs(15),
        || {
            probe
                .get(format!("{url}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
    );
    // The stalled ones were closed by the daemon: reading gives EOF (or a reset), not a wait.
    let mut closed = 0;
    for mut s in stalled.into_iter().take(50) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 512];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(_) => closed += 1,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, 50, "stalled connections still open");
    let metrics = http()
        .get(format!("{url}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("fleetdeck_http_connections_refused_total ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

/// A CA made in the test and leaf certificates for 127.0.0.1 it signs.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fleetdeck test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A leaf for 127.0.0.1 and localhost, as (certificate PEM, key PEM, certificate DER).
    fn leaf(&self, name: &str) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Writes a file the way the kubelet updates a Secret volume: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The DER of the certificate a fresh HTTPS connection to /healthz is served, with the status.
fn https_healthz(ca_pem: &str, url: &str) -> Result<(u16, Vec<u8>), String> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("{url}/healthz"))
        .send()
        .map_err(|e| format!("{e:?}"))?;
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    Ok((response.status().as_u16(), der))
}

#[test]
fn https_with_a_rotated_certificate_and_no_plain_http() {
    let ca = TestCa::new();
    let ca_pem = ca.cert.pem();
    let tls = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (tls.path().join("tls.crt"), tls.path().join("tls.key"));
    let (first_pem, first_key, first_der) = ca.leaf("fleetdeck first");
    replace(&cert_path, &first_pem);
    replace(&key_path, &first_key);

    let sim = small_sim();
    let daemon = Headless::start(
        &sim,
        "",
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        None,
    );
    let https = format!("https://127.0.0.1:{}", daemon.port);
    let mut served = Err("not asked yet".to_string());
    wait_until("/healthz over HTTPS", Duration::from_secs(60), || {
        served = https_healthz(&ca_pem, &https);
        served.is_ok()
    });
    assert_eq!(served, Ok((200, first_der.clone())));

    // Plain HTTP on the same port reaches no route: it is told to use HTTPS.
    let plain = http()
        .get(format!("{}/healthz", daemon.url()))
        .send()
        .expect("an answer in plain HTTP");
    assert_eq!(plain.status().as_u16(), 400);
    let body = plain.text().unwrap_or_default();
    assert!(body.contains("HTTPS only"), "{body}");

    // cert-manager renews: new key, new certificate, same paths.
    let (second_pem, second_key, second_der) = ca.leaf("fleetdeck second");
    assert_ne!(first_der, second_der);
    replace(&key_path, &second_key);
    replace(&cert_path, &second_pem);
    wait_until(
        "the renewed certificate is served",
        Duration::from_secs(20),
        || https_healthz(&ca_pem, &https).is_ok_and(|(code, der)| code == 200 && der == second_der),
    );

    // A broken rotation leaves the good certificate in service.
    replace(&cert_path, "not a certificate");
    std::thread::sleep(fleetdeck::headless::tls::RELOAD_CHECK_EVERY * 2);
    assert_eq!(https_healthz(&ca_pem, &https), Ok((200, second_der)));
    daemon.stop();
}
