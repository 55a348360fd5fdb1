//! Bad input in operator mode, over the raw protocol, against natrix-server and the
//! reference nats-server: malformed, truncated, expired, not-yet-valid, wrongly signed,
//! oversize and wrong-type user JWTs, bad or missing nonce signatures. Each gets the same
//! error from both servers and is closed; a client connected all along sees nothing and
//! keeps working. Also: a full resolver directory holding garbage files does not stop
//! natrix-server from starting or from serving the valid accounts next to them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::jwt::{Chain, chain, config};
use common::{NATRIX, reference_binary, start, start_with_file};
use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{UserClaims, encode, now_unix};

fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

/// A raw connection: the nonce from INFO, then whatever CONNECT gets back.
struct Conn {
    s: TcpStream,
    nonce: String,
}

impl Conn {
    fn open(port: u16) -> Self {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut info = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(3);
        while !info.ends_with(b"\r\n") && Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => info.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&info);
        let json = text.trim().strip_prefix("INFO ").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        Self {
            s,
            nonce: v["nonce"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Sends CONNECT (and PING) and returns what comes back until the server closes or
    /// goes quiet, with whether it closed.
    fn connect(&mut self, jwt: &str, sig: &str) -> (String, bool) {
        let connect = serde_json::json!({
            "verbose": false, "pedantic": false, "jwt": jwt, "sig": sig,
            "protocol": 1, "headers": true
        });
        let _ = self
            .s
            .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
        read_some(self)
    }
}

fn sign(key: &KeyPair, nonce: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(key.sign(nonce.as_bytes()).expect("sign"))
}

/// The cases: name, user JWT, and which key signs the nonce (None: a fixed garbage sig).
fn cases(c: &Chain) -> Vec<(&'static str, String, Option<KeyPair>)> {
    let mut out = Vec::new();
    let user = KeyPair::new_user();
    let good = encode(&UserClaims::new(user.public_key()), &c.a).expect("user");
    out.push(("well-formed", good.clone(), Some(user)));
    out.push(("not a JWT", "abc".into(), Some(KeyPair::new_user())));
    let two: Vec<&str> = good.split('.').take(2).collect();
    out.push(("two parts", two.join("."), Some(KeyPair::new_user())));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{not json");
    out.push((
        "bad claims JSON",
        parts.join("."),
        Some(KeyPair::new_user()),
    ));

    let user = KeyPair::new_user();
    let mut claims = UserClaims::new(user.public_key());
    claims.data.expires = now_unix() - 60;
    out.push(("expired", encode(&claims, &c.a).expect("user"), Some(user)));

    let user = KeyPair::new_user();
    let mut claims = UserClaims::new(user.public_key());
    claims.data.not_before = now_unix() + 3600;
    out.push((
        "not yet valid",
        encode(&claims, &c.a).expect("user"),
        Some(user),
    ));

    // Claims changed after signing: the signature no longer verifies.
    let user = KeyPair::new_user();
    let token = encode(&UserClaims::new(user.public_key()), &c.a).expect("user");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&parts[1])
        .expect("b64");
    let mut v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["name"] = "forged".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    out.push(("tampered claims", parts.join("."), Some(user)));

    // An account JWT presented as a user JWT.
    out.push((
        "account JWT as user",
        c.a_jwt.clone(),
        Some(KeyPair::new_user()),
    ));

    let user = KeyPair::new_user();
    let mut claims = UserClaims::new(user.public_key());
    claims.data.name = "x".repeat(3000);
    out.push(("oversize", encode(&claims, &c.a).expect("user"), Some(user)));

    let user = KeyPair::new_user();
    let token = encode(&UserClaims::new(user.public_key()), &c.a).expect("user");
    out.push((
        "nonce signed by another key",
        token.clone(),
        Some(KeyPair::new_user()),
    ));
    out.push(("garbage signature", token, None));
    out
}

fn run(bin: &std::path::Path, c: &Chain) -> Vec<String> {
    let p = start(bin, &config(c), false);
    // A bystander in account A, connected throughout.
    let bystander_key = KeyPair::new_user();
    let bystander_jwt = encode(&UserClaims::new(bystander_key.public_key()), &c.a).expect("user");
    let mut bystander = Conn::open(p.port);
    let sig = sign(&bystander_key, &bystander.nonce);
    let (hello, _) = bystander.connect(&bystander_jwt, &sig);
    assert!(
        hello.contains("PONG"),
        "{}: bystander {hello:?}",
        bin.display()
    );
    let _ = bystander.s.write_all(b"SUB > 1\r\nPING\r\n");
    let mut log = Vec::new();
    for (name, jwt, signer) in cases(c) {
        let mut conn = Conn::open(p.port);
        let sig = match &signer {
            Some(k) => sign(k, &conn.nonce),
            None => "not-base64!!".into(),
        };
        let (reply, closed) = conn.connect(&jwt, &sig);
        let first = reply.lines().next().unwrap_or_default().to_owned();
        log.push(format!("{name}: {first} (closed: {closed})"));
    }
    // The bystander saw nothing of it and still works.
    let _ = bystander.s.write_all(b"PING\r\n");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match bystander.s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let seen = String::from_utf8_lossy(&seen);
    log.push(format!(
        "bystander: messages {}, pongs {}",
        seen.matches("MSG ").count(),
        seen.matches("PONG").count()
    ));
    log
}

#[test]
fn bad_user_jwts_get_nats_server_errors_and_nothing_leaks() {
    let c = chain(false);
    let runs: Vec<Vec<String>> = binaries().iter().map(|b| run(b, &c)).collect();
    let natrix = &runs[0];
    assert_eq!(
        natrix[0], "well-formed: PONG (closed: false)",
        "{natrix:#?}"
    );
    for line in &natrix[1..natrix.len() - 1] {
        // A JWT too long for a control line is refused before it is read.
        let want = if line.starts_with("oversize") {
            "-ERR 'maximum control line exceeded' (closed: true)"
        } else {
            "-ERR 'Authorization Violation' (closed: true)"
        };
        assert!(line.ends_with(want), "{line}: {natrix:#?}");
    }
    assert_eq!(
        natrix.last().map(String::as_str),
        Some("bystander: messages 0, pongs 2")
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(natrix, reference, "natrix and nats-server differ");
    }
}

/// Garbage in the full resolver's directory (stray files, a truncated token, a token
/// under the wrong name) is skipped: the server starts and serves the valid account.
#[test]
fn garbage_in_the_resolver_directory_does_not_stop_the_server() {
    let c = chain(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let jwt_dir = dir.path().join("jwt");
    std::fs::create_dir_all(&jwt_dir).expect("mkdir");
    std::fs::write(jwt_dir.join("README.txt"), "not a token").expect("write");
    std::fs::write(
        jwt_dir.join(format!("{}.jwt", KeyPair::new_account().public_key())),
        &c.a_jwt[..c.a_jwt.len() / 2],
    )
    .expect("write");
    std::fs::write(jwt_dir.join(format!("{}.jwt", c.b.public_key())), &c.a_jwt).expect("write");
    std::fs::write(jwt_dir.join(format!("{}.jwt", c.a.public_key())), &c.a_jwt).expect("write");
    std::fs::write(jwt_dir.join("garbage.jwt"), [0xff, 0x00, 0x13]).expect("write");
    let conf = format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver {{ type: full, dir: '{}' }}\nresolver_preload: {{ {}: \"{}\" }}\n",
        c.operator_jwt,
        c.sys.public_key(),
        jwt_dir.display(),
        c.sys.public_key(),
        c.sys_jwt
    );
    let path = dir.path().join("server.conf");
    std::fs::write(&path, conf).expect("write");
    let p = start_with_file(std::path::Path::new(NATRIX), dir, &path, false);
    let user = KeyPair::new_user();
    let jwt = encode(&UserClaims::new(user.public_key()), &c.a).expect("user");
    let mut conn = Conn::open(p.port);
    let sig = sign(&user, &conn.nonce);
    let (reply, closed) = conn.connect(&jwt, &sig);
    assert!(reply.contains("PONG") && !closed, "{reply:?}");
    // B's file holds A's token: B is not served.
    let user = KeyPair::new_user();
    let jwt = encode(&UserClaims::new(user.public_key()), &c.b).expect("user");
    let mut conn = Conn::open(p.port);
    let sig = sign(&user, &conn.nonce);
    let (reply, _) = conn.connect(&jwt, &sig);
    assert!(reply.contains("Authorization Violation"), "{reply:?}");
    let log = p.log_text();
    assert!(
        log.contains("README.txt") || log.contains("garbage.jwt"),
        "{log}"
    );
}

/// A user JWT's `subs` and `payload` limits: the second subscription is refused with
/// `maximum subscriptions exceeded`, a publish over the payload limit closes the
/// connection with `Maximum Payload Violation`, as nats-server does.
#[test]
fn user_jwt_limits_on_subscriptions_and_payload() {
    let c = chain(false);
    let mut runs = Vec::new();
    for bin in binaries() {
        let p = start(&bin, &config(&c), false);
        let user = KeyPair::new_user();
        let mut claims = UserClaims::new(user.public_key());
        claims.nats.permission_limits.limits.nats_limits.subs = 1;
        claims.nats.permission_limits.limits.nats_limits.payload = 16;
        let jwt = encode(&claims, &c.a).expect("user");
        let mut conn = Conn::open(p.port);
        let sig = sign(&user, &conn.nonce);
        let (hello, _) = conn.connect(&jwt, &sig);
        let mut log = vec![hello.lines().next().unwrap_or_default().to_owned()];
        let _ = conn.s.write_all(b"SUB a 1\r\nSUB b 2\r\nPING\r\n");
        let (reply, _) = read_some(&mut conn);
        log.push(reply.replace("\r\n", " | "));
        let _ = conn.s.write_all(b"PUB a 20\r\n01234567890123456789\r\n");
        let (reply, closed) = read_some(&mut conn);
        log.push(format!(
            "{} (closed: {closed})",
            reply.replace("\r\n", " | ")
        ));
        runs.push(log);
    }
    assert_eq!(
        runs[0],
        vec![
            "PONG".to_owned(),
            "-ERR 'maximum subscriptions exceeded' | PONG | ".to_owned(),
            "-ERR 'Maximum Payload Violation' |  (closed: true)".to_owned()
        ]
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(&runs[0], reference);
    }
}

/// What arrives until the server goes quiet or closes, and whether it closed.
fn read_some(conn: &mut Conn) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    let closed = loop {
        match conn.s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}
