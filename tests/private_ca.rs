//! Private CAs: a Prometheus (or DCGM exporter, OpenCost) behind a certificate signed by a CA
//! of the organisation's own is reachable once its `ca_file` names that CA, and not before.
//! The CA and the server certificate are made here with rcgen; the server is tokio-rustls with
//! a fixed Prometheus answer.

use std::sync::Arc;
use std::time::Duration;

use fleetdeck::config::Config;
use fleetdeck::sources::http::TlsRoots;
use fleetdeck::sources::prometheus::PrometheusClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

const ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"Hostname":"gpu-node-1"},"value":[1764000000,"97"]}]}}"#;

struct Pki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fleetdeck test private CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");

    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "prometheus.monitoring.svc");
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// An HTTPS server on 127.0.0.1 answering every request with [`ANSWER`].
async fn https_prometheus(config: rustls::ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the CA aborts the handshake: nothing to serve.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn a_prometheus_behind_a_private_ca_is_reached_with_its_ca_file_and_not_without() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("private-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).expect("write CA");
    let url = https_prometheus(pki.server).await;

    let without = PrometheusClient::new(&url, None, Duration::from_secs(5)).expect("client");
    let err = without
        .query("DCGM_FI_DEV_GPU_UTIL", None)
        .await
        .expect_err("an unknown CA is not trusted");
    let text = format!("{err:?}");
    assert!(
        text.to_lowercase().contains("certificate") || text.contains("UnknownIssuer"),
        "{text}"
    );

    let roots = TlsRoots::load(&[("prometheus.ca_file", ca_file.to_str().expect("utf-8"))])
        .expect("CA file loads");
    let with =
        PrometheusClient::with_roots(&url, None, Duration::from_secs(5), &roots).expect("client");
    let answer = with
        .query("DCGM_FI_DEV_GPU_UTIL", None)
        .await
        .expect("the private CA is trusted");
    assert!(format!("{answer:?}").contains("gpu-node-1"), "{answer:?}");

    // The global [tls] ca_file reaches it too.
    let global = TlsRoots::load(&[("tls.ca_file", ca_file.to_str().expect("utf-8"))])
        .expect("CA file loads");
    let client =
        PrometheusClient::with_roots(&url, None, Duration::from_secs(5), &global).expect("client");
    client
        .query("DCGM_FI_DEV_GPU_UTIL", None)
        .await
        .expect("the global CA is trusted");
}

#[test]
fn a_bad_ca_file_is_a_config_error_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("fleetdeck.toml");

    std::fs::write(
        &config,
        "[prometheus]\nurl = \"https://prom:9090\"\nca_file = \"/nonexistent/ca.pem\"\n",
    )
    .expect("write");
    let err = Config::load(&config)
        .expect_err("missing CA file")
        .to_string();
    assert!(err.contains("prometheus.ca_file"), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    assert!(err.contains(":3"), "the line is named: {err}");

    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    std::fs::write(
        &config,
        format!("[tls]\nca_file = {:?}\n", not_pem.to_str().expect("utf-8")),
    )
    .expect("write");
    let err = Config::load(&config).expect_err("not PEM").to_string();
    assert!(err.contains("tls.ca_file"), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");

    let pki = pki();
    std::fs::write(&not_pem, &pki.ca_pem).expect("write");
    std::fs::write(
        &config,
        format!(
            "[cost]\nopencost_url = \"https://opencost:9003\"\nopencost_ca_file = {:?}\n\n[[gpu.dcgm]]\ncluster = \"prod\"\nurl = \"https://dcgm:9400/metrics\"\nca_file = {:?}\n",
            not_pem.to_str().expect("utf-8"),
            not_pem.to_str().expect("utf-8")
        ),
    )
    .expect("write");
    Config::load(&config).expect("good CA files load");
}
