//! `tls { verify_and_map: true }`: the client certificate picks the user, compared with
//! the reference nats-server scenario by scenario (email, DNS and URI SANs, the subject
//! DN in order and reordered, Go's regrouped subject string, unmapped certificates,
//! permissions, accounts, `/connz?auth=1`), plus `no_auth_user` in its combinations
//! and its start-up errors.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NATRIX, Proc, TestPki, http_get, reference_binary, start};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Client certificates: name, openssl subject, subjectAltName.
const CERTS: &[(&str, &str, &str)] = &[
    (
        "email",
        "/CN=someone",
        "email:alice@example.com,DNS:not-a-user.example.com",
    ),
    (
        "dns",
        "/CN=someone-else",
        "DNS:unknown.example.com,DNS:dns.example.com",
    ),
    ("uri", "/CN=workload", "URI:spiffe://example.org/svc"),
    (
        "dn",
        "/C=US/ST=CA/L=Los Angeles/O=Synadia/OU=NATS.io/CN=example.com",
        "",
    ),
    ("reordered", "/C=US/O=Reordered/CN=reorder", ""),
    ("multi_ou", "/OU=a/O=Org/OU=b/CN=multi", ""),
    ("multi_rdn", "/O=Org/CN=mv+OU=unit", ""),
    (
        "email_attr",
        "/O=Synadia/CN=mail/emailAddress=m@example.com",
        "",
    ),
    ("dc", "/DC=org/DC=example/CN=dc", ""),
    ("account", "/CN=acct", "DNS:acct.example.com"),
    ("nobody", "/O=Nowhere/CN=nobody", "DNS:nobody.example.com"),
];

struct Pki {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let pki = TestPki::new(&path);
    pki.server_cert("server");
    for (name, subj, san) in CERTS {
        pki.client_cert(name, subj, san);
    }
    Pki {
        _dir: dir,
        dir: path,
    }
}

fn tls_block(p: &Pki) -> String {
    format!(
        "tls {{\n  cert_file: \"{d}/server.pem\"\n  key_file: \"{d}/server-key.pem\"\n  ca_file: \"{d}/ca.pem\"\n  verify_and_map: true\n  timeout: 2\n}}\n",
        d = p.dir.display()
    )
}

/// Users named by every form nats-server maps, each allowed to publish only below its own
/// prefix (so a publish tells which user the certificate selected).
fn mapping_conf(p: &Pki) -> String {
    format!(
        r#"{tls}
authorization {{
  users = [
    {{ user: "alice@example.com", permissions: {{ publish: "email.>" }} }}
    {{ user: "dns.example.com", permissions: {{ publish: "dns.>" }} }}
    {{ user: "spiffe://example.org/svc", permissions: {{ publish: "uri.>" }} }}
    {{ user: "CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US", permissions: {{ publish: "dn.>" }} }}
    {{ user: "C=US, O=Reordered, CN=reorder", permissions: {{ publish: "reorder.>" }} }}
    {{ user: "CN=multi,OU=a+OU=b,O=Org", permissions: {{ publish: "multi.>" }} }}
    {{ user: "OU=unit+CN=mv,O=Org", permissions: {{ publish: "mv.>" }} }}
    {{ user: "CN=mail,O=Synadia", permissions: {{ publish: "mail.>" }} }}
    {{ user: "CN=dc,DC=org,DC=example", permissions: {{ publish: "dc.>" }} }}
  ]
}}
accounts {{
  ACC {{ users = [ {{ user: "acct.example.com" }} ] }}
}}
"#,
        tls = tls_block(p)
    )
}

fn client_config(p: &Pki, cert: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(p.dir.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(p.dir.join(format!("{cert}.pem")))
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("certs");
    let key = PrivateKeyDer::from_pem_file(p.dir.join(format!("{cert}-key.pem"))).expect("key");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client cert"),
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client presenting `cert`: reads INFO, shakes hands, nothing sent yet.
fn dial(port: u16, p: &Pki, cert: &str) -> Tls {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut info = String::new();
    BufReader::new(&mut tcp).read_line(&mut info).expect("INFO");
    assert!(info.starts_with("INFO "), "{info}");
    let conn = rustls::ClientConnection::new(
        client_config(p, cert),
        ServerName::try_from("127.0.0.1").expect("name"),
    )
    .expect("client");
    rustls::StreamOwned::new(conn, tcp)
}

/// Sends `data` then reads until `PONG` shows up, the server closes, or 3 s pass; the
/// transcript ends with `<closed>` when the server closed the connection.
fn exchange(s: &mut Tls, data: &str) -> String {
    if s.write_all(data.as_bytes())
        .and_then(|()| s.flush())
        .is_err()
    {
        return "<closed>".into();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                got.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                got.extend_from_slice(b"<closed>");
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        if text.ends_with("PONG\r\n") || Instant::now() > deadline {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n";

/// Connects with `cert` and publishes to `<prefix>.x` and to `forbidden`: the result says
/// whether the certificate was accepted and which user's permissions apply.
fn probe(port: u16, p: &Pki, cert: &str, prefix: &str) -> String {
    let mut c = dial(port, p, cert);
    let connect = exchange(&mut c, CONNECT);
    if !connect.contains("PONG") {
        return format!("{cert}: {connect}");
    }
    let publish = exchange(
        &mut c,
        &format!("PUB {prefix}.x 2\r\nhi\r\nPUB forbidden 2\r\nhi\r\nPING\r\n"),
    );
    format!("{cert}: {connect}{publish}")
}

/// The mapping scenarios on one binary; returns the transcript.
fn mapping_scenarios(bin: &Path, p: &Pki) -> Vec<String> {
    let server = start(bin, &mapping_conf(p), true);
    let mut out = Vec::new();
    for (cert, prefix) in [
        ("email", "email"),
        ("dns", "dns"),
        ("uri", "uri"),
        ("dn", "dn"),
        ("reordered", "reorder"),
        ("multi_ou", "multi"),
        ("multi_rdn", "mv"),
        ("email_attr", "mail"),
        ("dc", "dc"),
        ("nobody", "nobody"),
    ] {
        out.push(probe(server.port, p, cert, prefix));
    }
    // A mapped user has no password: a CONNECT that brings one is refused.
    let mut c = dial(server.port, p, "dn");
    out.push(format!(
        "dn with user/pass: {}",
        exchange(
            &mut c,
            "CONNECT {\"verbose\":false,\"user\":\"alice@example.com\",\"pass\":\"x\"}\r\nPING\r\n"
        )
    ));
    // A CONNECT user without a password is ignored in favour of the certificate.
    let mut c = dial(server.port, p, "dns");
    exchange(
        &mut c,
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"alice@example.com\"}\r\nPING\r\n",
    );
    out.push(format!(
        "dns naming alice: {}",
        exchange(&mut c, "PUB email.x 1\r\na\r\nPING\r\n")
    ));
    out.extend(account_scenario(&server, p));
    out.push(connz_users(&server, p));
    out
}

/// The user mapped into account ACC shares nothing with `$G`.
fn account_scenario(server: &Proc, p: &Pki) -> Vec<String> {
    let mut sub = dial(server.port, p, "account");
    let mut out = vec![format!(
        "acct sub: {}",
        exchange(&mut sub, &format!("{CONNECT}SUB email.x 1\r\nPING\r\n"))
    )];
    let mut global = dial(server.port, p, "email");
    exchange(&mut global, CONNECT);
    out.push(format!(
        "$G publish: {}",
        exchange(&mut global, "PUB email.x 1\r\ng\r\nPING\r\n")
    ));
    out.push(format!(
        "acct sees from $G: {}",
        exchange(&mut sub, "PING\r\n")
    ));
    let mut peer = dial(server.port, p, "account");
    exchange(&mut peer, CONNECT);
    exchange(&mut peer, "PUB email.x 1\r\na\r\nPING\r\n");
    out.push(format!(
        "acct sees from ACC: {}",
        exchange(&mut sub, "PING\r\n")
    ));
    out
}

/// `/connz?auth=1` while a few mapped clients are connected: each one's authorized user,
/// account and certificate subject, sorted (connection ids differ between servers).
fn connz_users(server: &Proc, p: &Pki) -> String {
    let mut keep = Vec::new();
    for cert in ["dn", "uri", "account", "email_attr", "dc"] {
        let mut c = dial(server.port, p, cert);
        exchange(&mut c, CONNECT);
        keep.push(c);
    }
    let v = http_get(
        server.http_port.expect("monitor"),
        "/connz?auth=1&limit=1000",
    )
    .json();
    let mut rows: Vec<String> = v["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            format!(
                "{} | {} | {}",
                c["authorized_user"].as_str().unwrap_or("-"),
                c["account"].as_str().unwrap_or("-"),
                c["tls_peer_certs"][0]["subject"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    rows.sort();
    rows.dedup();
    format!("connz: {rows:#?}")
}

/// Runs `scenarios` on natrix and, when installed, on nats-server; asserts the same.
fn differential(scenarios: impl Fn(&Path) -> Vec<String>) -> Vec<String> {
    let mine = scenarios(Path::new(NATRIX));
    eprintln!("natrix: {mine:#?}");
    if let Some(reference) = reference_binary() {
        let want = scenarios(&reference);
        for (i, (a, b)) in mine.iter().zip(&want).enumerate() {
            assert_eq!(a, b, "step {i} differs (left natrix, right nats-server)");
        }
        assert_eq!(mine.len(), want.len());
    }
    mine
}

#[test]
fn certificates_map_to_users_as_in_nats_server() {
    let p = pki();
    let t = differential(|bin| mapping_scenarios(bin, &p));
    let line = |prefix: &str| {
        t.iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"))
            .clone()
    };
    for cert in [
        "email:",
        "dns:",
        "uri:",
        "dn:",
        "reordered:",
        "multi_ou:",
        "multi_rdn:",
        "email_attr:",
        "dc:",
    ] {
        let l = line(cert);
        assert!(
            l.contains("PONG") && l.contains("Permissions Violation for Publish to \"forbidden\""),
            "{l}"
        );
        // Its own prefix was allowed: exactly one violation.
        assert_eq!(l.matches("-ERR").count(), 1, "{l}");
    }
    assert!(line("nobody:").contains("-ERR 'Authorization Violation'"));
    assert!(line("dn with user/pass:").contains("-ERR 'Authorization Violation'"));
    assert!(line("dns naming alice:").contains("Permissions Violation for Publish to \"email.x\""));
    assert!(!line("acct sees from $G:").contains("MSG"));
    assert!(line("acct sees from ACC:").contains("MSG email.x 1 1"));
    let connz = line("connz:");
    assert!(
        connz.contains("CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US | - |"),
        "{connz}"
    );
    assert!(connz.contains("acct.example.com | ACC |"), "{connz}");
}

/// With verify_and_map the no_auth_user is not a fallback for unmapped certificates;
/// an nkey no_auth_user, checked before users, still stands in for a client that
/// presents nothing.
#[test]
fn no_auth_user_and_verify_and_map() {
    let p = pki();
    let nkey = nkeys::KeyPair::new_user().public_key();
    differential(|bin| {
        let conf = format!(
            "{tls}authorization {{ users = [ {{ user: \"CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US\" }}, {{ user: guest }} ] }}\nno_auth_user: guest\n",
            tls = tls_block(&p)
        );
        let server = start(bin, &conf, false);
        let mut out = Vec::new();
        for cert in ["dn", "nobody"] {
            let mut c = dial(server.port, &p, cert);
            out.push(format!(
                "user no_auth_user, {cert}: {}",
                exchange(&mut c, CONNECT)
            ));
        }
        drop(server);
        let conf = format!(
            "{tls}accounts {{ A {{ users = [ {{ nkey: {nkey} }}, {{ user: \"CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US\" }} ] }} }}\nno_auth_user: {nkey}\n",
            tls = tls_block(&p)
        );
        let server = start(bin, &conf, false);
        for cert in ["dn", "nobody"] {
            let mut c = dial(server.port, &p, cert);
            out.push(format!(
                "nkey no_auth_user, {cert}: {}",
                exchange(&mut c, CONNECT)
            ));
        }
        out
    });
}

/// A plain client of `port` sends `connect` and PING; the transcript up to PONG or close.
fn plain(port: u16, connect: &str) -> String {
    let mut c = common::Raw::connect(port);
    c.send(connect);
    c.send("PING\r\n");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = String::new();
    while !got.contains("PONG") && !got.contains("-ERR") && Instant::now() < deadline {
        got.push_str(&c.read_for(Duration::from_millis(100)));
    }
    if got.contains("-ERR") && c.is_closed(Duration::from_millis(500)) {
        format!("{got}<closed>")
    } else {
        got
    }
}

/// `/connz?auth=1`'s (authorized_user, account) of the one connection of `server`.
fn who(server: &Proc, connect: &str) -> String {
    let mut c = common::Raw::connect(server.port);
    c.send(connect);
    let got = c.sync();
    if !got.contains("PONG") {
        return got;
    }
    let v = http_get(server.http_port.expect("monitor"), "/connz?auth=1").json();
    let c0 = &v["connections"][0];
    format!(
        "{} in {}",
        c0["authorized_user"].as_str().unwrap_or("-"),
        c0["account"].as_str().unwrap_or("$G")
    )
}

/// The no_auth_user as a user of the users list, of an account, as an nkey (no signature
/// needed), next to a token, with a bcrypt password, and what explicit credentials do.
#[test]
fn no_auth_user_combinations() {
    let nkey = nkeys::KeyPair::new_user().public_key();
    // bcrypt of "pwd" (cost 4).
    let hash = bcrypt::hash("pwd", 4).expect("bcrypt");
    differential(|bin| {
        let mut out = Vec::new();
        let conf = "accounts {\n FOO { users [{user: foo, password: pwd1}] }\n BAR { users [{user: bar, password: pwd2}] }\n}\nno_auth_user: foo\n";
        let s = start(bin, conf, true);
        for connect in [
            "CONNECT {\"verbose\":false}\r\n",
            "CONNECT {\"verbose\":false,\"user\":\"bar\",\"pass\":\"pwd2\"}\r\n",
            "CONNECT {\"verbose\":false,\"user\":\"\",\"pass\":\"\"}\r\n",
        ] {
            out.push(format!("accounts {connect:?}: {}", who(&s, connect)));
        }
        for connect in [
            "CONNECT {\"verbose\":false,\"user\":\"bar\",\"pass\":\"wrong\"}\r\n",
            "CONNECT {\"verbose\":false,\"auth_token\":\"sometoken\"}\r\n",
            "CONNECT {\"verbose\":false,\"user\":\"bar\"}\r\n",
        ] {
            out.push(format!("accounts {connect:?}: {}", plain(s.port, connect)));
        }
        drop(s);
        let conf = format!(
            "authorization {{ users [ {{user: a, password: b}} ] }}\naccounts {{ BAR {{ users [{{nkey: {nkey}}}] }} }}\nno_auth_user: {nkey}\n"
        );
        let s = start(bin, &conf, true);
        out.push(format!(
            "nkey: {}",
            who(&s, "CONNECT {\"verbose\":false}\r\n")
        ));
        out.push(format!(
            "nkey named, unsigned: {}",
            who(
                &s,
                &format!("CONNECT {{\"verbose\":false,\"nkey\":\"{nkey}\"}}\r\n")
            )
        ));
        out.push(format!(
            "user a: {}",
            who(
                &s,
                "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"b\"}\r\n"
            )
        ));
        drop(s);
        let conf = format!(
            "authorization {{ users [ {{user: hashed, password: \"{hash}\"}} ] }}\nno_auth_user: hashed\n"
        );
        let s = start(bin, &conf, true);
        out.push(format!(
            "bcrypt no_auth_user: {}",
            plain(s.port, "CONNECT {\"verbose\":false}\r\n")
        ));
        out.push(format!(
            "bcrypt explicit: {}",
            who(
                &s,
                "CONNECT {\"verbose\":false,\"user\":\"hashed\",\"pass\":\"pwd\"}\r\n"
            )
        ));
        out
    });
}

/// A token (or a single user) in `authorization` excludes account users at parse time,
/// so a no_auth_user can never sit next to a token. nats-server walks the top-level keys
/// of a config in Go map order (random), so it reports the clash from whichever block it
/// reads second; natrix reads in file order. Either text is nats-server's.
#[test]
fn token_or_single_user_and_account_users_are_refused() {
    let reference = reference_binary();
    for (conf, either) in [
        (
            "authorization { token: s3cr3t }\naccounts { A { users [{user: u, password: p}] } }\nno_auth_user: u\n",
            [
                "Can not have a token and accounts",
                "Can not have a token and a users array",
            ],
        ),
        (
            "authorization { user: x, password: y }\naccounts { A { users [{user: u, password: p}] } }\n",
            [
                "Can not have a single user/pass and accounts",
                "Can not have a single user/pass and a users array",
            ],
        ),
    ] {
        assert_eq!(common::config_error(Path::new(NATRIX), conf), either[0]);
        if let Some(bin) = &reference {
            let got = common::config_error(bin, conf);
            assert!(either.contains(&got.as_str()), "nats-server: {got}");
        }
    }
}

/// nats-server checks the no_auth_user when it creates the server: `-t` passes, start-up
/// fails with the same words.
#[test]
fn no_auth_user_startup_errors() {
    let cases = [
        (
            "no_auth_user: x\n",
            r#"no_auth_user: "x" present, but users/nkeys are not defined"#,
        ),
        (
            "authorization { token: abc }\nno_auth_user: x\n",
            r#"no_auth_user: "x" present, but users/nkeys are not defined"#,
        ),
        (
            "authorization { user: x, password: y }\nno_auth_user: x\n",
            r#"no_auth_user: "x" present, but users/nkeys are not defined"#,
        ),
        (
            "authorization { users [ {user: a, password: b} ] }\nno_auth_user: x\n",
            r#"no_auth_user: "x" not present as user or nkey in authorization block or account configuration"#,
        ),
        (
            "accounts { A { users [ {nkey: UBAAQWTW6CG2G6ANGNKB5U2B7HRWHSGMZEZX3AQSAJOQDAUGJD46LD2E} ] } }\nno_auth_user: UBAAQWTW6CG2G6ANGNKB5U2B7HRWHSGMZEZX3AQSAJOQDAUGJD46LD2F\n",
            r#"no_auth_user: "UBAAQWTW6CG2G6ANGNKB5U2B7HRWHSGMZEZX3AQSAJOQDAUGJD46LD2F" not present as user or nkey in authorization block or account configuration"#,
        ),
    ];
    let reference = reference_binary();
    for (conf, want) in cases {
        let mut bins = vec![PathBuf::from(NATRIX)];
        bins.extend(reference.clone());
        for bin in bins {
            assert_eq!(
                common::startup_error(&bin, conf),
                want,
                "{}: {conf}",
                bin.display()
            );
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("ok.conf");
            std::fs::write(&path, conf).expect("write");
            let check = std::process::Command::new(&bin)
                .arg("-t")
                .arg("-c")
                .arg(&path)
                .output()
                .expect("run -t");
            assert!(
                check.status.success(),
                "{} -t refused {conf}",
                bin.display()
            );
        }
    }
}
