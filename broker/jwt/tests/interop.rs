//! Interop with the Go tools: JWTs made by `nsc` decode and verify here and re-encode to the
//! very same token (ed25519 is deterministic, so equal claims give equal tokens); JWTs signed
//! here are accepted by `nsc` and by nats-server (a client authenticates with a user JWT and a
//! nonce signature made by this crate).
//!
//! Needs `NSC_BIN` and/or `NATS_SERVER_BIN` (`eval "$(scripts/deps)"`); each test says so and
//! returns when its tool is not configured.

use natrix_jwt::*;
use nkeys::KeyPair;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tool(var: &str, test: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set (eval \"$(scripts/deps)\" provides it)");
            None
        }
    }
}

/// Runs a command with a deadline, output captured through files (no pipe can fill up).
fn run_bounded(cmd: &mut Command, dir: &Path, limit: Duration) -> Output {
    let out_path = dir.join("cmd.stdout");
    let err_path = dir.join("cmd.stderr");
    let out = fs::File::create(&out_path).expect("stdout file");
    let err = fs::File::create(&err_path).expect("stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    }
}

/// An nsc store in a temp dir: keys, data and config all inside it.
struct Nsc {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Nsc {
    fn new(bin: PathBuf) -> Nsc {
        Nsc {
            bin,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn try_run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--config-dir")
            .arg(self.path("config"))
            .arg("--data-dir")
            .arg(self.path("data"))
            .arg("--keystore-dir")
            .arg(self.path("keys"))
            .env("NKEYS_PATH", self.path("keys"))
            .env("NSC_HOME", self.path("home"))
            .env("NSC_NO_GIT_IGNORE", "1");
        run_bounded(&mut cmd, self.dir.path(), Duration::from_secs(60))
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "nsc {args:?} failed: {text}");
        text
    }

    fn jwt(&self, rel: &str) -> String {
        let text = fs::read_to_string(self.path("data").join(rel)).expect(rel);
        parse_decorated_jwt(&text)
    }

    /// The key pair nsc stored for `public_key`.
    fn key(&self, public_key: &str) -> KeyPair {
        let file = self
            .path("keys")
            .join("keys")
            .join(&public_key[..1])
            .join(&public_key[1..3])
            .join(format!("{public_key}.nk"));
        let seed = fs::read_to_string(&file).expect("nk file");
        KeyPair::from_seed(seed.trim()).expect("seed")
    }
}

/// A token re-encoded here from its decoded claims, issued at the same time by the same key.
fn reencode(claims: &Claims, kp: &KeyPair) -> String {
    let iat = claims.data().issued_at;
    match claims {
        Claims::Operator(c) => encode_at(c, kp, iat),
        Claims::Account(c) => encode_at(c, kp, iat),
        Claims::User(c) => encode_at(c, kp, iat),
        Claims::Activation(c) => encode_at(c, kp, iat),
        Claims::AuthorizationRequest(c) => encode_at(c, kp, iat),
        Claims::AuthorizationResponse(c) => encode_at(c, kp, iat),
        Claims::Generic(c) => encode_generic_at(c, kp, iat),
    }
    .expect("re-encode")
}

/// Builds an nsc store exercising most claim features, returning it with the public keys of
/// operator, system account, account A, its plain and scoped signing keys, and account B.
struct Store {
    nsc: Nsc,
    sys: String,
    a: String,
    a_sk: String,
    a_scoped: String,
    b: String,
}

fn nsc_store(bin: PathBuf) -> Store {
    let nsc = Nsc::new(bin);
    nsc.run(&[
        "add",
        "operator",
        "--name",
        "OP",
        "--generate-signing-key",
        "--sys",
    ]);
    nsc.run(&["add", "account", "--name", "A"]);
    nsc.run(&["edit", "account", "--name", "A", "--sk", "generate"]);
    nsc.run(&["edit", "account", "--name", "A", "--sk", "generate"]);
    nsc.run(&[
        "edit", "account", "--name", "A", "--tag", "Prod", "--conns", "100",
    ]);
    // Tiered limits need the global (untiered) ones removed first.
    nsc.run(&["edit", "account", "--name", "A", "--js-disable"]);
    nsc.run(&[
        "edit",
        "account",
        "--name",
        "A",
        "--js-tier",
        "1",
        "--js-mem-storage",
        "1M",
        "--js-disk-storage",
        "1G",
        "--js-streams",
        "10",
    ]);
    nsc.run(&["add", "account", "--name", "B"]);
    let a = decode_account(&nsc.jwt("OP/accounts/A/A.jwt")).expect("A");
    let b = decode_account(&nsc.jwt("OP/accounts/B/B.jwt")).expect("B");
    let mut sks: Vec<String> = a.nats.signing_keys.keys().map(str::to_string).collect();
    sks.sort();
    let (a_sk, a_scoped) = (sks[0].clone(), sks[1].clone());
    nsc.run(&[
        "edit",
        "signing-key",
        "--account",
        "A",
        "--sk",
        &a_scoped,
        "--role",
        "dev",
        "--allow-pub",
        "foo.>",
        "--allow-sub",
        "foo.>,_INBOX.>",
        "--allow-pub-response",
    ]);
    let (a_pub, b_pub) = (a.data.subject.clone(), b.data.subject.clone());
    nsc.run(&[
        "add",
        "export",
        "--account",
        "A",
        "--subject",
        "svc.>",
        "--service",
        "--name",
        "svc",
    ]);
    nsc.run(&[
        "add",
        "export",
        "--account",
        "A",
        "--subject",
        "str.*",
        "--name",
        "str",
        "--private",
    ]);
    nsc.run(&[
        "add",
        "import",
        "--account",
        "B",
        "--src-account",
        &a_pub,
        "--remote-subject",
        "svc.>",
        "--service",
    ]);
    let act_file = nsc.path("activation.jwt");
    nsc.run(&[
        "generate",
        "activation",
        "--account",
        "A",
        "--subject",
        "str.*",
        "--target-account",
        &b_pub,
        "-o",
        act_file.to_str().expect("path"),
    ]);
    nsc.run(&[
        "add",
        "user",
        "--account",
        "A",
        "--name",
        "u1",
        "--allow-pub",
        "foo.>",
        "--deny-sub",
        "bar",
        "--source-network",
        "127.0.0.0/8",
    ]);
    nsc.run(&["add", "user", "--account", "A", "--name", "u2", "-K", &a_sk]);
    nsc.run(&[
        "add",
        "user",
        "--account",
        "A",
        "--name",
        "u3",
        "-K",
        &a_scoped,
    ]);
    nsc.run(&["revocations", "add-user", "--account", "A", "--name", "u1"]);
    let op = decode_operator(&nsc.jwt("OP/OP.jwt")).expect("operator");
    Store {
        sys: op.nats.system_account.clone(),
        nsc,
        a: a_pub,
        a_sk,
        a_scoped,
        b: b_pub,
    }
}

#[test]
fn nsc_jwts_decode_verify_and_reencode_identically() {
    let Some(bin) = tool("NSC_BIN", "nsc_jwts_decode_verify_and_reencode_identically") else {
        return;
    };
    let s = nsc_store(bin);
    let nsc = &s.nsc;

    let op_jwt = nsc.jwt("OP/OP.jwt");
    let op = decode_operator(&op_jwt).expect("operator");
    assert_eq!(op.data.name, "OP");
    assert_eq!(op.nats.signing_keys.len(), 1);
    assert_eq!(key_kind(&op.nats.system_account), Some(KeyKind::Account));

    let a = decode_account(&nsc.jwt("OP/accounts/A/A.jwt")).expect("A");
    assert_eq!(
        a.data.issuer, op.data.subject,
        "nsc signs accounts with the identity key"
    );
    assert_eq!(a.tags(), ["prod"], "Go lower-cases tags");
    assert_eq!(a.nats.limits.account.conn, 100);
    let r1 = a
        .nats
        .limits
        .jetstream_tiered
        .get("R1")
        .copied()
        .unwrap_or_default();
    assert_eq!(
        (r1.memory_storage, r1.disk_storage, r1.streams),
        (1_000_000, 1_000_000_000, 10),
        "nsc units are decimal"
    );
    assert_eq!(a.nats.exports.len(), 2);
    let str_export = a.nats.export("str.*").expect("str export");
    assert!(str_export.token_req && str_export.is_stream());
    let svc = a.nats.export("svc.>").expect("svc export");
    assert!(svc.is_service());
    assert_eq!(svc.response_type, ResponseType::SINGLETON);
    assert!(a.nats.signing_keys.contains(&s.a_sk));
    assert!(a.signing_key_scope(&s.a_sk).is_none());
    let scope = a.signing_key_scope(&s.a_scoped).expect("scoped key");
    assert_eq!(scope.role, "dev");
    assert_eq!(scope.template.permissions.publish.allow, ["foo.>"]);
    assert_eq!(
        scope.template.permissions.subscribe.allow,
        ["_INBOX.>", "foo.>"],
        "nsc sorts"
    );
    assert_eq!(
        scope.template.permissions.resp.as_ref().map(|r| r.max),
        Some(1)
    );

    let b = decode_account(&nsc.jwt("OP/accounts/B/B.jwt")).expect("B");
    assert_eq!(b.nats.imports.len(), 1);
    assert_eq!(b.nats.imports[0].account, s.a);
    assert!(b.nats.imports[0].is_service());

    let act_text = fs::read_to_string(nsc.path("activation.jwt")).expect("activation");
    let act = decode_activation(&parse_decorated_jwt(&act_text)).expect("activation");
    assert_eq!(act.data.subject, s.b);
    assert_eq!(act.nats.import_subject, "str.*");
    assert_eq!(act.nats.import_type, ExportType::Stream);
    assert!(!str_export.is_claim_revoked(&act));

    let u1 = decode_user(&nsc.jwt("OP/accounts/A/users/u1.jwt")).expect("u1");
    let upl = &u1.nats.permission_limits;
    assert_eq!(upl.permissions.publish.allow, ["foo.>"]);
    assert_eq!(upl.permissions.subscribe.deny, ["bar"]);
    assert_eq!(upl.limits.user_limits.src, ["127.0.0.0/8"]);
    assert_eq!(upl.limits.nats_limits, NatsLimits::UNLIMITED);
    assert!(
        a.is_claim_revoked(&u1),
        "u1 was revoked after it was issued"
    );
    let u2 = decode_user(&nsc.jwt("OP/accounts/A/users/u2.jwt")).expect("u2");
    assert_eq!(
        (u2.data.issuer.as_str(), u2.account()),
        (s.a_sk.as_str(), s.a.as_str())
    );
    assert!(a.did_sign(&u2.data.issuer, &u2.nats.issuer_account));
    assert!(!a.is_claim_revoked(&u2));
    let u3 = decode_user(&nsc.jwt("OP/accounts/A/users/u3.jwt")).expect("u3");
    assert!(
        u3.has_empty_permissions(),
        "scoped users carry no permissions"
    );
    assert_eq!(scope.validate_scoped_signer(&u3), Ok(()));

    // The creds file nsc writes parses, and format_creds writes the same text.
    let creds_text = nsc.run(&["generate", "creds", "--account", "A", "--name", "u2"]);
    let creds = parse_creds(&creds_text).expect("creds");
    assert_eq!(creds.jwt, nsc.jwt("OP/accounts/A/users/u2.jwt"));
    assert_eq!(creds.key_pair().expect("kp").public_key(), u2.data.subject);
    let ours = format_creds(&creds.jwt, &creds.seed).expect("format");
    assert!(
        creds_text.contains(&ours),
        "nsc:\n{creds_text}\nours:\n{ours}"
    );

    // Every token re-encodes to exactly nsc's token with the issuer's seed.
    let tokens = [
        op_jwt,
        nsc.jwt("OP/accounts/A/A.jwt"),
        nsc.jwt("OP/accounts/B/B.jwt"),
        nsc.jwt("OP/accounts/SYS/SYS.jwt"),
        parse_decorated_jwt(&act_text),
        nsc.jwt("OP/accounts/A/users/u1.jwt"),
        nsc.jwt("OP/accounts/A/users/u2.jwt"),
        nsc.jwt("OP/accounts/A/users/u3.jwt"),
    ];
    for token in tokens {
        let claims = decode(&token).expect("decode");
        let kp = nsc.key(&claims.data().issuer);
        assert_eq!(reencode(&claims, &kp), token, "{:?}", claims.claim_type());
    }
}

#[test]
fn nsc_accepts_jwts_signed_here() {
    let Some(bin) = tool("NSC_BIN", "nsc_accepts_jwts_signed_here") else {
        return;
    };
    let s = nsc_store(bin);
    let nsc = &s.nsc;
    let op = decode_operator(&nsc.jwt("OP/OP.jwt")).expect("operator");
    let op_sk = nsc.key(&op.nats.signing_keys[0]);

    // An account made and signed here, with the operator's signing key.
    let acc = KeyPair::new_account();
    let mut c = AccountClaims::new(acc.public_key());
    c.data.name = "made-in-rust".into();
    c.nats.exports.push(Export {
        name: "e".into(),
        subject: "e.>".into(),
        export_type: ExportType::Stream,
        ..Export::default()
    });
    let token = encode(&c, &op_sk).expect("encode");
    let file = nsc.path("ours.jwt");
    fs::write(&file, &token).expect("write");
    let text = nsc.run(&["describe", "jwt", "-f", file.to_str().expect("path")]);
    assert!(
        text.contains("made-in-rust") && text.contains(&acc.public_key()),
        "{text}"
    );

    // nsc verifies: the same token with a changed payload is refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let other = encode(
        &AccountClaims::new(KeyPair::new_account().public_key()),
        &op_sk,
    )
    .expect("encode");
    parts[1] = other.split('.').nth(1).unwrap_or_default().to_string();
    fs::write(&file, parts.join(".")).expect("write");
    let out = nsc.try_run(&["describe", "jwt", "-f", file.to_str().expect("path")]);
    assert!(!out.status.success(), "nsc accepted a forged token");

    // A user made here for nsc's account A, signed with A's signing key nsc generated.
    let user = KeyPair::new_user();
    let mut u = UserClaims::new(user.public_key());
    u.data.name = "rust-user".into();
    u.nats.issuer_account = s.a.clone();
    let token = encode(&u, &nsc.key(&s.a_sk)).expect("encode");
    let file = nsc.path("user.jwt");
    fs::write(&file, &token).expect("write");
    let text = nsc.run(&["describe", "jwt", "-f", file.to_str().expect("path")]);
    assert!(text.contains("rust-user"), "{text}");
}

/// A nats-server process, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nats-server in operator mode with a memory resolver preloaded with `accounts`.
fn start_server(bin: &Path, operator: &str, system_account: &str, accounts: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut preload = String::new();
    for jwt in accounts {
        let claims = decode_account(jwt).expect("account");
        preload.push_str(&format!("  {}: \"{}\"\n", claims.data.subject, jwt));
    }
    let conf = format!(
        "host: 127.0.0.1\nport: -1\nports_file_dir: \"{}\"\noperator: \"{operator}\"\n\
         system_account: {system_account}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
        dir.path().display()
    );
    let conf_path = dir.path().join("server.conf");
    fs::write(&conf_path, conf).expect("conf");
    let log = fs::File::create(dir.path().join("server.log")).expect("log");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn nats-server");
    let mut server = Server {
        child,
        port: 0,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.port == 0 {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = fs::read_to_string(server._dir.path().join("server.log")).unwrap_or_default();
            panic!("nats-server exited with {status}: {log}");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server wrote no ports file in 10 s"
        );
        let ports = fs::read_dir(server._dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "ports"));
        if let Some(entry) = ports {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let url = v["nats"][0].as_str().unwrap_or_default().to_string();
            server.port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Connects with creds text and round-trips one message on `subject`.
async fn connect_and_echo(port: u16, creds: &str, subject: &str) -> Result<(), String> {
    use futures::StreamExt as _;
    let opts = async_nats::ConnectOptions::with_credentials(creds)
        .map_err(|e| e.to_string())?
        .connection_timeout(Duration::from_secs(5));
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        opts.connect(format!("nats://127.0.0.1:{port}")),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let mut sub = client
        .subscribe(subject.to_string())
        .await
        .map_err(|e| e.to_string())?;
    client
        .publish(subject.to_string(), "hi".into())
        .await
        .map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .map_err(|_| "no message within 5 s".to_string())?
        .ok_or("subscription closed")?;
    if msg.payload.as_ref() != b"hi" {
        return Err("wrong payload".into());
    }
    Ok(())
}

fn creds_for(user: &KeyPair, claims: &UserClaims, signer: &KeyPair) -> String {
    let jwt = encode(claims, signer).expect("encode user");
    format_creds(&jwt, &user.seed().expect("seed")).expect("creds")
}

#[tokio::test]
async fn nats_server_accepts_a_chain_signed_here() {
    let Some(bin) = tool("NATS_SERVER_BIN", "nats_server_accepts_a_chain_signed_here") else {
        return;
    };
    let op = KeyPair::new_operator();
    let op_sk = KeyPair::new_operator();
    let sys = KeyPair::new_account();
    let acc = KeyPair::new_account();
    let acc_sk = KeyPair::new_account();
    let scoped = KeyPair::new_account();

    let mut o = OperatorClaims::new(op.public_key());
    o.data.name = "OP".into();
    o.nats.signing_keys.push(op_sk.public_key());
    o.nats.system_account = sys.public_key();
    let op_jwt = encode(&o, &op).expect("operator");

    let mut s = AccountClaims::new(sys.public_key());
    s.data.name = "SYS".into();
    let sys_jwt = encode(&s, &op_sk).expect("sys");

    let revoked = KeyPair::new_user();
    let mut a = AccountClaims::new(acc.public_key());
    a.data.name = "A".into();
    a.nats.signing_keys.add(acc_sk.public_key());
    let mut scope = UserScope::new(scoped.public_key());
    scope.role = "dev".into();
    scope.template.permissions.publish.allow = vec!["dev.>".into()];
    scope.template.permissions.subscribe.allow = vec!["dev.>".into()];
    a.nats.signing_keys.add_scoped(scope);
    a.nats
        .revocations
        .revoke(revoked.public_key(), now_unix() + 3600);
    let acc_jwt = encode(&a, &op_sk).expect("account");

    let server = start_server(&bin, &op_jwt, &sys.public_key(), &[&sys_jwt, &acc_jwt]);

    // Issued by the account's own key.
    let user = KeyPair::new_user();
    let u = UserClaims::new(user.public_key());
    connect_and_echo(server.port, &creds_for(&user, &u, &acc), "foo")
        .await
        .expect("user signed by the account");

    // Issued by a signing key, naming the account.
    let user = KeyPair::new_user();
    let mut u = UserClaims::new(user.public_key());
    u.nats.issuer_account = acc.public_key();
    u.nats.permission_limits.permissions.publish.allow = vec!["foo".into()];
    u.nats.permission_limits.permissions.subscribe.allow = vec!["foo".into()];
    connect_and_echo(server.port, &creds_for(&user, &u, &acc_sk), "foo")
        .await
        .expect("user signed by a signing key");

    // Issued by a scoped key: permissions come from the template.
    let user = KeyPair::new_user();
    let mut u = UserClaims::with_subject(user.public_key());
    u.nats.issuer_account = acc.public_key();
    connect_and_echo(server.port, &creds_for(&user, &u, &scoped), "dev.x")
        .await
        .expect("user signed by a scoped key");

    // Refused: revoked, expired, unknown signer, scoped user with own permissions.
    let u = UserClaims::new(revoked.public_key());
    let err = connect_and_echo(server.port, &creds_for(&revoked, &u, &acc), "foo").await;
    assert!(err.is_err(), "revoked user was accepted");

    let user = KeyPair::new_user();
    let mut u = UserClaims::new(user.public_key());
    u.data.expires = now_unix() - 10;
    let err = connect_and_echo(server.port, &creds_for(&user, &u, &acc), "foo").await;
    assert!(err.is_err(), "expired user was accepted");

    let user = KeyPair::new_user();
    let u = UserClaims::new(user.public_key());
    let err = connect_and_echo(
        server.port,
        &creds_for(&user, &u, &KeyPair::new_account()),
        "foo",
    )
    .await;
    assert!(err.is_err(), "user of an unknown account was accepted");

    let user = KeyPair::new_user();
    let mut u = UserClaims::new(user.public_key());
    u.nats.issuer_account = acc.public_key();
    let err = connect_and_echo(server.port, &creds_for(&user, &u, &scoped), "dev.x").await;
    assert!(err.is_err(), "scoped user with its own limits was accepted");
}

#[tokio::test]
async fn nats_server_accepts_a_user_signed_here_for_an_nsc_account() {
    let test = "nats_server_accepts_a_user_signed_here_for_an_nsc_account";
    let (Some(nsc_bin), Some(server_bin)) = (tool("NSC_BIN", test), tool("NATS_SERVER_BIN", test))
    else {
        return;
    };
    let s = nsc_store(nsc_bin);
    let nsc = &s.nsc;
    let accounts = [
        nsc.jwt("OP/accounts/SYS/SYS.jwt"),
        nsc.jwt("OP/accounts/A/A.jwt"),
        nsc.jwt("OP/accounts/B/B.jwt"),
    ];
    let refs: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let server = start_server(&server_bin, &nsc.jwt("OP/OP.jwt"), &s.sys, &refs);

    // nsc's own creds work (sanity), then ours, signed with nsc's signing key seed.
    let creds = nsc.run(&["generate", "creds", "--account", "A", "--name", "u2"]);
    connect_and_echo(server.port, &creds, "foo")
        .await
        .expect("nsc creds");
    let user = KeyPair::new_user();
    let mut u = UserClaims::new(user.public_key());
    u.data.name = "rust-user".into();
    u.nats.issuer_account = s.a.clone();
    connect_and_echo(server.port, &creds_for(&user, &u, &nsc.key(&s.a_sk)), "foo")
        .await
        .expect("user signed here");
    // nsc's revoked u1 is refused.
    let creds = nsc.run(&["generate", "creds", "--account", "A", "--name", "u1"]);
    assert!(
        connect_and_echo(server.port, &creds, "foo.x")
            .await
            .is_err()
    );
}
