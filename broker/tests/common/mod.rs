//! Helpers shared by the tests that run server binaries: finding the reference
//! nats-server, starting a binary with a config on random ports, raw protocol clients and
//! plain HTTP GETs.

#![allow(dead_code)]

pub mod js_cluster;
pub mod jwt;
pub mod netns;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NATRIX: &str = env!("CARGO_BIN_EXE_natrix-server");

/// The reference nats-server that `scripts/deps` installs, if present. Under CI its
/// absence is a failure, not a skip.
pub fn reference_binary() -> Option<PathBuf> {
    let found = if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        Some(PathBuf::from(p)).filter(|p| p.exists())
    } else {
        let cache = std::env::var("NATRIX_CACHE").map_or_else(
            |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/natrix"),
            PathBuf::from,
        );
        Some(cache.join("bin/nats-server")).filter(|p| p.exists())
    };
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "reference nats-server not installed (run scripts/deps)"
    );
    found
}

/// A server process with its client and monitoring ports; killed on drop.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub http_port: Option<u16>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what its servers said: a flake seen once under load is
        // otherwise gone with its temporary directory.
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- {} (last {} lines) ---\n{}",
                self.log.display(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Proc {
    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `bin` on 127.0.0.1 with random client (and, with `monitor`, monitoring) ports and
/// `conf` as its config file (written into a fresh directory as `server.conf`).
pub fn start(bin: &Path, conf: &str, monitor: bool) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf_path = dir.path().join("server.conf");
    std::fs::write(&conf_path, conf).expect("write config");
    start_with_file(bin, dir, &conf_path, monitor)
}

/// Like [`start`], for a config file the caller prepared inside `dir`.
pub fn start_with_file(bin: &Path, dir: tempfile::TempDir, conf: &Path, monitor: bool) -> Proc {
    let args: &[&str] = if monitor { &["-m", "-1"] } else { &[] };
    start_custom(bin, dir, conf, args, monitor)
}

/// Starts `bin` with `conf` and extra flags; `wait_monitor` waits for a monitoring port
/// in the ports file (from `-m` or from the config's `http`/`https` settings).
pub fn start_custom(
    bin: &Path,
    dir: tempfile::TempDir,
    conf: &Path,
    extra: &[&str],
    wait_monitor: bool,
) -> Proc {
    start_custom_with(bin, dir, conf, extra, wait_monitor, |_| {})
}

/// Like [`start_custom`], with `setup` adjusting the command first (environment variables).
pub fn start_custom_with(
    bin: &Path,
    dir: tempfile::TempDir,
    conf: &Path,
    extra: &[&str],
    wait_monitor: bool,
    setup: impl FnOnce(&mut Command),
) -> Proc {
    let monitor = wait_monitor;
    let log = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(conf)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(log_file)
        .args(extra);
    setup(&mut cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    // Generous: under a full parallel test run on two cores a debug server can take
    // seconds to write its ports file.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (port, http_port) = loop {
        let ports = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let port_of = |v: &serde_json::Value, key: &str| {
            v[key][0]
                .as_str()
                .and_then(|url| url.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
        };
        if let Some(v) = ports
            && let Some(port) = port_of(&v, "nats")
        {
            let http = port_of(&v, "monitoring");
            if !monitor || http.is_some() {
                break (port, http);
            }
        }
        assert!(Instant::now() < deadline, "{} did not start", bin.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    Proc {
        child,
        port,
        http_port,
        dir,
        log,
    }
}

/// An HTTP response: status, content type, body.
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A plain HTTP/1.0 GET against 127.0.0.1.
pub fn http_get(port: u16, path: &str) -> HttpReply {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    http_get_on(s, path).expect("http reply")
}

/// A plain HTTP/1.0 GET on a connected stream; `None` if the exchange fails.
pub fn http_get_on(mut s: TcpStream, path: &str) -> Option<HttpReply> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Some(HttpReply {
        status,
        content_type,
        body: body.to_owned(),
    })
}

/// A raw protocol client: sends lines, reads what arrives within a quiet period.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    /// Connects and consumes the INFO line.
    pub fn connect(port: u16) -> Self {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// Connects without expecting anything first (a TLS-first port says nothing).
    pub fn connect_plain(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        Self { s }
    }

    /// Takes a connected stream and consumes the INFO line.
    pub fn from_stream(s: TcpStream) -> Self {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut r = Self { s };
        let info = r.read_for(Duration::from_millis(500));
        assert!(info.starts_with("INFO "), "expected INFO, got {info:?}");
        r
    }

    pub fn send(&mut self, data: &str) {
        self.s.write_all(data.as_bytes()).expect("send");
    }

    /// Reads whatever arrives until `quiet` passes with nothing new (or the peer closes).
    pub fn read_for(&mut self, quiet: Duration) -> String {
        let _ = self.s.set_read_timeout(Some(quiet));
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
            if Instant::now() > deadline {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends `PING` and reads until the `PONG` (everything before it included).
    pub fn sync(&mut self) -> String {
        self.send("PING\r\n");
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !seen.contains("PONG\r\n") && Instant::now() < deadline {
            seen.push_str(&self.read_for(Duration::from_millis(100)));
        }
        seen
    }

    /// Whether the server has closed this connection (reads EOF within `within`).
    pub fn is_closed(&mut self, within: Duration) -> bool {
        let _ = self.s.set_read_timeout(Some(within));
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }
}

/// A throwaway CA and server certificates made with `openssl`, for TLS tests.
pub struct TestPki {
    pub dir: PathBuf,
}

impl TestPki {
    /// A CA in `dir` (`ca.pem`, `ca-key.pem`).
    pub fn new(dir: &Path) -> Self {
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=natrix test CA",
        ]);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A server certificate for 127.0.0.1 and localhost signed by the CA, written as
    /// `<name>.pem` and `<name>-key.pem`; returns the certificate's PEM.
    pub fn server_cert(&self, name: &str) -> String {
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
        let (key, csr, pem) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ]);
        std::fs::read_to_string(self.dir.join(pem)).expect("read cert")
    }
}

impl TestPki {
    /// A client certificate signed by the CA with subject `subj` (openssl's
    /// `/C=US/O=Org/CN=name` form, `+` joining a multi-valued RDN) and, unless empty,
    /// the subjectAltName `san` (`email:a@b.c,DNS:host,URI:spiffe://x/y`); written as
    /// `<name>.pem` and `<name>-key.pem`.
    pub fn client_cert(&self, name: &str, subj: &str, san: &str) {
        let ext = format!("{name}.ext");
        let mut lines = String::from("extendedKeyUsage=clientAuth\n");
        if !san.is_empty() {
            lines.push_str(&format!("subjectAltName={san}\n"));
        }
        std::fs::write(self.dir.join(&ext), lines).expect("ext");
        let (key, csr, pem) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-multivalue-rdn",
            "-subj",
            subj,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }
}

/// The start-up error of `conf` when `bin` runs it (not just `-t`), without the program
/// name; fails when the server starts.
pub fn startup_error(bin: &Path, conf: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, conf).expect("write");
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} started with {conf}", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("nats-server: ")
                .or_else(|| l.strip_prefix("natrix-server: "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A port nothing listens on right now, for a server's config. Taken below the kernel's
/// ephemeral range (32768 and up), where the many client sockets of parallel tests get
/// their ports: a port picked there can be taken by an outgoing connection before the
/// server binds it.
pub fn free_port() -> u16 {
    let claims = std::env::temp_dir().join("natrix-test-ports");
    let _ = std::fs::create_dir_all(&claims);
    for _ in 0..1000 {
        let port = 20_000 + fastrand::u16(..12_000);
        if claim_port(&claims.join(port.to_string()))
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Claims `port` for this test process: nextest runs tests in parallel processes, and a
/// port one of them picked is free until its server binds it, so a bind check alone lets
/// two tests pick the same port. A file per port, created exclusively and naming the
/// process, is the claim; the claim of a process that has exited is taken over.
fn claim_port(path: &Path) -> bool {
    let me = std::process::id().to_string();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            let _ = f.write_all(me.as_bytes());
            true
        }
        Err(_) => {
            let owner = std::fs::read_to_string(path).unwrap_or_default();
            if owner == me {
                return true;
            }
            let alive = !owner.is_empty() && Path::new("/proc").join(&owner).exists();
            !alive && std::fs::write(path, &me).is_ok()
        }
    }
}

/// A raw client of `p`, connected (headers on) and synced.
pub fn client(p: &Proc) -> Raw {
    let mut c = Raw::connect(p.port);
    c.send("CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
    assert!(c.sync().contains("PONG"));
    c
}

/// Reads until `count` MSG frames on `subject` arrived or 3 s passed; returns how many
/// (including any that arrive shortly after).
pub fn count_msgs(c: &mut Raw, subject: &str, count: usize) -> usize {
    let needle = format!("MSG {subject} ");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = String::new();
    while seen.matches(&needle).count() < count && Instant::now() < deadline {
        seen.push_str(&c.read_for(Duration::from_millis(100)));
    }
    seen.push_str(&c.read_for(Duration::from_millis(200)));
    seen.matches(&needle).count()
}

/// Reads until `needle` shows up or `within` passed; returns what was read.
pub fn read_until(c: &mut Raw, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    while !seen.contains(needle) && Instant::now() < deadline {
        seen.push_str(&c.read_for(Duration::from_millis(100)));
    }
    seen
}

/// Lets interest reach other servers (it travels asynchronously).
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Polls a monitoring endpoint of `p` until `ok` holds, failing after `within`.
pub fn wait_json(
    p: &Proc,
    path: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let v = http_get(p.http_port.expect("monitoring port"), path).json();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never as expected: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Base64url without padding, as JWTs and nkey signatures use.
pub fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A creds file for a new user whose JWT is signed by a new account key; returns the
/// user's public nkey.
pub fn write_creds(path: &Path) -> String {
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let h = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": "LEAFTEST", "iat": 1_700_000_000, "iss": account.public_key(),
        "sub": user.public_key(), "name": "leaf",
        "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                 "type": "user", "version": 2},
    });
    let p = b64(claims.to_string().as_bytes());
    let sig = account.sign(format!("{h}.{p}").as_bytes()).expect("sign");
    let jwt = format!("{h}.{p}.{}", b64(&sig));
    let seed = user.seed().expect("seed");
    std::fs::write(
        path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .expect("write creds");
    user.public_key()
}

/// A config that turns JetStream on with its store in `dir`.
pub fn js_conf(dir: &Path) -> String {
    format!("jetstream {{ store_dir: \"{}\" }}\n", dir.display())
}

/// A client of `p` whose requests (JetStream API calls) time out after 5 s.
pub async fn connect_js(p: &Proc) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(format!("nats://127.0.0.1:{}", p.port))
        .await
        .expect("connect")
}

/// Runs a JetStream `scenario` on natrix and, when installed, on the reference
/// nats-server, each with a fresh store, and compares the transcripts step by step.
/// Returns natrix's (printed too: shown when a test fails).
pub async fn js_differential<F, Fut>(scenario: F) -> Vec<String>
where
    F: Fn(async_nats::Client) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let run = |bin: PathBuf| {
        let scenario = &scenario;
        async move {
            let store = tempfile::tempdir().expect("store dir");
            let p = start(&bin, &js_conf(store.path()), false);
            let nc = connect_js(&p).await;
            tokio::time::timeout(Duration::from_secs(60), scenario(nc))
                .await
                .unwrap_or_else(|_| panic!("{} scenario finished in time", bin.display()))
        }
    };
    let mine = run(PathBuf::from(NATRIX)).await;
    eprintln!("natrix transcript: {mine:#?}");
    if let Some(reference) = reference_binary() {
        let want = run(reference).await;
        for (i, (a, b)) in mine.iter().zip(want.iter()).enumerate() {
            assert_eq!(a, b, "step {i} differs (left natrix, right nats-server)");
        }
        assert_eq!(mine.len(), want.len(), "transcript lengths");
    }
    mine
}

/// The start-up error of `conf` (checked with `-t`), without the program name and the
/// `file:line:col:` positions.
pub fn config_error(bin: &Path, conf: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, conf).expect("write");
    let out = Command::new(bin)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success(), "{} accepted {conf}", bin.display());
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let file = path.display().to_string();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l
                .strip_prefix("nats-server: ")
                .or_else(|| l.strip_prefix("natrix-server: "))
                .unwrap_or(l);
            // `<file>:<line>:<col>: message`
            l.strip_prefix(&file)
                .and_then(|rest| rest.splitn(4, ':').nth(3))
                .map_or(l, str::trim_start)
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether power-cut tests can run here (they mount `natrix-powercut`'s FUSE filesystem);
/// skips (false) with a message where FUSE is unavailable, fails under CI.
pub fn fuse_ready() -> bool {
    match natrix_powercut::unavailable() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "FUSE unavailable under CI: {why}"
            );
            eprintln!("skipping: FUSE unavailable: {why}");
            false
        }
    }
}

/// The environment variable `name` parsed, or `default` when unset or unparsable (the
/// knobs of the long forms of the fault campaigns).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The folder of the npm packages `scripts/deps` installs (mqtt.js, nats.ws), when it
/// and `node` are present. Under CI their absence is a failure, not a skip.
pub fn node_modules() -> Option<PathBuf> {
    let dir = std::env::var("NATRIX_NODE_MODULES").map_or_else(
        |_| {
            let cache = std::env::var("NATRIX_CACHE").map_or_else(
                |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/natrix"),
                PathBuf::from,
            );
            cache.join("node/node_modules")
        },
        PathBuf::from,
    );
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let found = (node && dir.join("mqtt").exists() && dir.join("nats.ws").exists()).then_some(dir);
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "node or the npm packages of the WebSocket tests are missing (run scripts/deps)"
    );
    found
}
