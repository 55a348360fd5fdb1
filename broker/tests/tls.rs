//! Client TLS: real clients over TLS, plain clients refused, and a certificate renewed
//! on disk (a Secret volume's `..data` swap) taking effect for new connections without a
//! signal and without disturbing the connections already up.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NATRIX, TestPki, http_get, start_custom, start_with_file};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// A Secret-like volume: `server.pem` and `server-key.pem` are links through `..data`.
fn secret_volume(root: &Path, pki: &TestPki, cert: &str, generation: u32) {
    let dir = root.join(format!("..gen{generation}"));
    std::fs::create_dir_all(&dir).expect("gen dir");
    for (from, to) in [
        (format!("{cert}.pem"), "server.pem"),
        (format!("{cert}-key.pem"), "server-key.pem"),
    ] {
        std::fs::copy(pki.dir.join(from), dir.join(to)).expect("copy");
    }
    let tmp = root.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..gen{generation}"), &tmp).expect("tmp link");
    std::fs::rename(&tmp, root.join("..data")).expect("swap");
    for f in ["server.pem", "server-key.pem"] {
        let link = root.join(f);
        if !link.exists() {
            std::os::unix::fs::symlink(format!("..data/{f}"), link).expect("link");
        }
    }
}

fn tls_conf(secret: &Path, ca: &Path) -> String {
    format!(
        "server_name: tls1\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  timeout: 2\n}}\n",
        secret.join("server.pem").display(),
        secret.join("server-key.pem").display(),
        ca.display()
    )
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Connects with rustls, completes CONNECT/PING, and returns the server's certificate.
fn peer_certificate(port: u16, ca: &Path) -> Vec<u8> {
    let config = client_config(ca);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut info = String::new();
    BufReader::new(&mut tcp).read_line(&mut info).expect("INFO");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = tls.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before PONG: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    tls.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("peer certificate")
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .as_ref()
        .to_vec()
}

struct Setup {
    server: common::Proc,
    pki: TestPki,
    secret: PathBuf,
    first: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).expect("pki dir");
    let pki = TestPki::new(&pki_dir);
    let first = pki.server_cert("first");
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).expect("secret dir");
    secret_volume(&secret, &pki, "first", 1);
    let conf = dir.path().join("server.conf");
    std::fs::write(&conf, tls_conf(&secret, &pki_dir.join("ca.pem"))).expect("conf");
    let server = start_with_file(Path::new(NATRIX), dir, &conf, true);
    Setup {
        server,
        pki,
        secret,
        first,
    }
}

#[tokio::test]
async fn tls_clients_work_and_plain_clients_are_refused() {
    let s = setup();
    let url = format!("nats://127.0.0.1:{}", s.server.port);
    let nc = async_nats::ConnectOptions::new()
        .add_root_certificates(s.pki.dir.join("ca.pem"))
        .require_tls(true)
        .connect(&url)
        .await
        .expect("TLS connect");
    let mut sub = nc.subscribe("secure.>").await.expect("sub");
    nc.publish("secure.hello", "over tls".into())
        .await
        .expect("pub");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(msg.payload.as_ref(), b"over tls");
    let connz = http_get(s.server.http_port.expect("http"), "/connz").json();
    let conn = &connz["connections"][0];
    assert!(
        conn["tls_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{conn}"
    );
    assert!(
        conn["tls_cipher_suite"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLS")),
        "{conn}"
    );

    // A client that ignores tls_required and speaks plain text is cut off.
    let mut plain = TcpStream::connect(("127.0.0.1", s.server.port)).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    plain.write_all(b"CONNECT {}\r\nPING\r\n").expect("write");
    let mut all = Vec::new();
    let _ = plain.read_to_end(&mut all);
    assert!(!String::from_utf8_lossy(&all).contains("PONG"));
    assert!(s.server.log_text().contains("TLS handshake error"));
}

#[tokio::test]
async fn renewed_certificate_applies_to_new_connections_only() {
    let s = setup();
    let ca = s.pki.dir.join("ca.pem");
    assert_eq!(peer_certificate(s.server.port, &ca), der(&s.first));
    let url = format!("nats://127.0.0.1:{}", s.server.port);
    let nc = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.clone())
        .require_tls(true)
        .connect(&url)
        .await
        .expect("TLS connect");
    let mut sub = nc.subscribe("still.>").await.expect("sub");
    nc.flush().await.expect("flush");

    // cert-manager renews: the Secret volume swaps to a new certificate.
    let second = s.pki.server_cert("second");
    secret_volume(&s.secret, &s.pki, "second", 2);
    let started = Instant::now();
    loop {
        if peer_certificate(s.server.port, &ca) == der(&second) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "new certificate not served within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("certificate renewal took effect in {:?}", started.elapsed());
    // The connection made before the renewal is still up and working.
    nc.publish("still.here", "yes".into()).await.expect("pub");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(msg.payload.as_ref(), b"yes");
    assert_eq!(
        nc.statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the client never reconnected"
    );
    assert!(
        s.server
            .log_text()
            .contains("Reloaded server configuration")
    );
}

/// `https_port` serves the monitoring endpoints over TLS with the client certificate,
/// under `http_base_path`, and the ports file names the https URL.
#[test]
fn https_monitoring_under_a_base_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    pki.server_cert("server");
    let conf = dir.path().join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{ cert_file: \"{0}/server.pem\", key_file: \"{0}/server-key.pem\" }}\nhttps_port: -1\nhttp_base_path: /nats/\n",
            dir.path().display()
        ),
    )
    .expect("conf");
    let ca = dir.path().join("ca.pem");
    let server = start_custom(Path::new(NATRIX), dir, &conf, &[], true);
    let port = server.http_port.expect("https port");
    let get = |path: &str| {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(client_config(&ca), name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        write!(tls, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let varz = get("/nats/varz");
    let status = |r: &str| r.split_whitespace().nth(1).unwrap_or_default().to_owned();
    assert_eq!(status(&varz), "200", "{varz}");
    let body = varz
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(v["https_port"], port);
    assert_eq!(v["http_base_path"], "/nats/");
    assert_eq!(status(&get("/varz")), "404", "outside the base path");
    let ports = std::fs::read_dir(server.dir.path())
        .expect("dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_default();
    assert!(
        ports.contains(&format!("https://127.0.0.1:{port}")),
        "{ports}"
    );
}

/// What one client saw of a `handshake_first: 300ms` listener.
#[derive(Debug, PartialEq)]
struct AutoModeOutcome {
    /// A TLS-first client (sends its ClientHello at once) connects and round-trips.
    tls_first_works: bool,
    /// A client that waits for INFO gets it in the clear once the delay has passed...
    info_in_clear: bool,
    info_requires_tls: bool,
    /// ...not before the delay.
    info_waited: bool,
    /// ...and then upgrades as usual and round-trips.
    upgrade_works: bool,
}

async fn round_trip(nc: &async_nats::Client, subject: &str) -> bool {
    let Ok(mut sub) = nc.subscribe(subject.to_string()).await else {
        return false;
    };
    if nc.publish(subject.to_string(), "x".into()).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub)).await,
        Ok(Some(_))
    )
}

async fn auto_mode_outcome(bin: &Path) -> AutoModeOutcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).expect("pki dir");
    let pki = TestPki::new(&pki_dir);
    pki.server_cert("srv");
    let conf = dir.path().join("server.conf");
    let p = |f: &str| pki_dir.join(f).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  handshake_first: 300ms\n  timeout: 2\n}}\n",
            p("srv.pem"),
            p("srv-key.pem")
        ),
    )
    .expect("conf");
    let server = start_with_file(bin, dir, &conf, false);
    let url = format!("nats://127.0.0.1:{}", server.port);

    let first = async_nats::ConnectOptions::new()
        .add_root_certificates(pki_dir.join("ca.pem"))
        .tls_first()
        .connect(&url)
        .await;
    let tls_first_works = match &first {
        Ok(nc) => round_trip(nc, "auto.first").await,
        Err(_) => false,
    };

    let t0 = Instant::now();
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut line = String::new();
    let _ = BufReader::new(&mut raw).read_line(&mut line);
    let waited = t0.elapsed();
    let info_in_clear = line.starts_with("INFO {");
    let info_requires_tls = line.contains("\"tls_required\":true");

    let upgraded = async_nats::ConnectOptions::new()
        .add_root_certificates(pki_dir.join("ca.pem"))
        .require_tls(true)
        .connect(&url)
        .await;
    let upgrade_works = match &upgraded {
        Ok(nc) => round_trip(nc, "auto.upgrade").await,
        Err(_) => false,
    };
    AutoModeOutcome {
        tls_first_works,
        info_in_clear,
        info_requires_tls,
        info_waited: waited >= Duration::from_millis(250),
        upgrade_works,
    }
}

/// `handshake_first: <duration>` (nats-server's auto mode): a TLS-first client and a
/// client that upgrades after INFO both connect to one listener; the second gets INFO in
/// the clear only after the delay. Same outcome on nats-server.
#[tokio::test]
async fn tls_first_auto_mode_serves_both_kinds_of_client() {
    let ours = auto_mode_outcome(Path::new(NATRIX)).await;
    assert_eq!(
        ours,
        AutoModeOutcome {
            tls_first_works: true,
            info_in_clear: true,
            info_requires_tls: true,
            info_waited: true,
            upgrade_works: true,
        }
    );
    if let Some(reference) = common::reference_binary() {
        assert_eq!(auto_mode_outcome(&reference).await, ours, "as nats-server");
    }
}
