//! `conn-rate`: how fast a NATS server accepts new client connections, for `bench/run`.
//!
//! Each connection is a full client start: TCP connect, read the server's INFO (and its
//! nonce), for `tls` a TLS handshake with no session resumption, then
//! `CONNECT {...}` with the mode's credentials and `PING`, wait for `PONG`, close. The
//! connection's latency is from the TCP connect to the `PONG`.
//!
//! Modes: `plain` (no credentials, or `--user`/`--password`), `nkey` (the nonce signed with
//! the user's nkey), `jwt` (a user JWT and the nonce signed with its seed, operator mode),
//! `tls` (as `plain`, over TLS verified against `--ca`).
//!
//! `conn-rate gen DIR` writes what the `nkey` and `jwt` modes need, so that the caller needs
//! no crypto: `nkey.seed` and `nkey.conf` (an `authorization` block with that user's public
//! key), `user.creds` and `jwt.conf` (operator, system account, `resolver: MEMORY` and
//! `resolver_preload` with the system account and the user's account).
//!
//! Every loop is bounded: at most `--count` connections, nothing started after
//! `--time-limit`, and each connection given up after `--conn-timeout`. Sockets close with
//! `SO_LINGER` 0 (a reset, no `TIME_WAIT`), so tens of thousands of connections a run do not
//! exhaust the loopback's ephemeral ports. The result is one JSON line on stdout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{AccountClaims, OperatorClaims, UserClaims, encode, format_creds, parse_creds};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest server reply read while waiting for INFO or PONG.
const MAX_REPLY: usize = 64 << 10;

#[derive(Parser)]
#[command(
    name = "conn-rate",
    about = "NATS connection rate with nkey, JWT and TLS handshakes"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write keys, creds and config fragments for the nkey and jwt modes into DIR.
    Gen { dir: PathBuf },
    /// Open connections one after another on each of `--concurrency` tasks; print the rate.
    Run(RunArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Plain,
    Nkey,
    Jwt,
    Tls,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Server address, host:port.
    #[arg(long)]
    addr: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Most connections to open.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds after which no new connection starts.
    #[arg(long, default_value_t = 10.0)]
    time_limit: f64,
    /// Seconds one connection may take before it counts as an error.
    #[arg(long, default_value_t = 5.0)]
    conn_timeout: f64,
    /// Tokio worker threads; 1 runs the client on one thread (the default: the server
    /// keeps the other core of a 2-core machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The directory `gen` wrote (nkey and jwt modes).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// CA certificate (PEM) that signed the server's certificate (tls mode).
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    password: Option<String>,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Gen { dir } => generate(&dir),
        Cmd::Run(args) => {
            let rt = if args.threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(args.threads)
                    .enable_all()
                    .build()?
            };
            rt.block_on(run(args))
        }
    }
}

// ------------------------------------------------------------------------------- gen

fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).with_context(|| format!("write {name}"))
    };

    let nkey_user = KeyPair::new_user();
    write("nkey.seed", &format!("{}\n", nkey_user.seed()?))?;
    write(
        "nkey.conf",
        &format!(
            "authorization {{\n  users: [\n    {{nkey: {}}}\n  ]\n}}\n",
            nkey_user.public_key()
        ),
    )?;

    let op = KeyPair::new_operator();
    let sys = KeyPair::new_account();
    let acc = KeyPair::new_account();
    let user = KeyPair::new_user();
    let mut o = OperatorClaims::new(op.public_key());
    o.data.name = "BENCH".into();
    o.nats.system_account = sys.public_key();
    let operator_jwt = encode(&o, &op)?;
    let mut s = AccountClaims::new(sys.public_key());
    s.data.name = "SYS".into();
    let sys_jwt = encode(&s, &op)?;
    let mut a = AccountClaims::new(acc.public_key());
    a.data.name = "BENCH".into();
    let acc_jwt = encode(&a, &op)?;
    let mut u = UserClaims::new(user.public_key());
    u.data.name = "bench".into();
    let user_jwt = encode(&u, &acc)?;
    write("user.creds", &format_creds(&user_jwt, &user.seed()?)?)?;
    write(
        "jwt.conf",
        &format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {sys_pub}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {sys_pub}: \"{sys_jwt}\"\n  {acc_pub}: \"{acc_jwt}\"\n}}\n",
            sys_pub = sys.public_key(),
            acc_pub = acc.public_key(),
        ),
    )?;
    Ok(())
}

// ------------------------------------------------------------------------------- run

enum Credentials {
    None,
    Password(String, String),
    Nkey(KeyPair),
    Jwt(String, KeyPair),
}

struct Setup {
    addr: String,
    creds: Credentials,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Protocol version, cipher suite and key exchange of the first TLS session.
    negotiated: OnceLock<String>,
}

impl Setup {
    fn new(args: &RunArgs) -> Result<Self> {
        let keys = || {
            args.keys
                .as_deref()
                .ok_or_else(|| anyhow!("--keys DIR is needed"))
        };
        let creds = match args.mode {
            Mode::Nkey => {
                let seed = std::fs::read_to_string(keys()?.join("nkey.seed"))?;
                Credentials::Nkey(KeyPair::from_seed(seed.trim())?)
            }
            Mode::Jwt => {
                let c = parse_creds(&std::fs::read_to_string(keys()?.join("user.creds"))?)?;
                Credentials::Jwt(c.jwt.clone(), c.key_pair()?)
            }
            Mode::Plain | Mode::Tls => match (&args.user, &args.password) {
                (Some(u), Some(p)) => Credentials::Password(u.clone(), p.clone()),
                (None, None) => Credentials::None,
                _ => bail!("--user and --password go together"),
            },
        };
        let tls = if args.mode == Mode::Tls {
            let ca = args
                .ca
                .as_deref()
                .ok_or_else(|| anyhow!("--ca FILE is needed"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).context("read --ca")? {
                roots.add(cert?)?;
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            // A full handshake every time: no tickets, no session IDs.
            config.resumption = rustls::client::Resumption::disabled();
            let host = args.addr.rsplit_once(':').map_or(&*args.addr, |(h, _)| h);
            let name = ServerName::try_from(host.to_string())?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            addr: args.addr.clone(),
            creds,
            tls,
            negotiated: OnceLock::new(),
        })
    }

    /// `CONNECT {...}\r\nPING\r\n` for a connection whose INFO carried `nonce`.
    fn connect_line(&self, nonce: Option<&str>) -> Result<Vec<u8>> {
        let mut c = serde_json::json!({
            "verbose": false, "pedantic": false, "tls_required": self.tls.is_some(),
            "name": "conn-rate", "lang": "rust", "version": "0.1.0", "protocol": 1,
            "echo": true, "headers": true, "no_responders": true,
        });
        let sign = |key: &KeyPair| -> Result<String> {
            let nonce = nonce.ok_or_else(|| anyhow!("INFO has no nonce"))?;
            let sig = key.sign(nonce.as_bytes())?;
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig))
        };
        match &self.creds {
            Credentials::None => {}
            Credentials::Password(u, p) => {
                c["user"] = u.as_str().into();
                c["pass"] = p.as_str().into();
            }
            Credentials::Nkey(key) => {
                c["nkey"] = key.public_key().into();
                c["sig"] = sign(key)?.into();
            }
            Credentials::Jwt(jwt, key) => {
                c["jwt"] = jwt.as_str().into();
                c["sig"] = sign(key)?.into();
            }
        }
        Ok(format!("CONNECT {c}\r\nPING\r\n").into_bytes())
    }

    /// One connection from TCP connect to PONG; returns its latency.
    async fn connect_once(&self) -> Result<Duration> {
        let start = Instant::now();
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        tcp.set_zero_linger()?;
        let mut tcp = tcp;
        let mut buf = Vec::with_capacity(1024);
        read_until(&mut tcp, &mut buf, b"\r\n").await?;
        let line = std::str::from_utf8(&buf)?;
        let json = line
            .strip_prefix("INFO ")
            .ok_or_else(|| anyhow!("expected INFO, got {line:?}"))?;
        let info: serde_json::Value = serde_json::from_str(json.trim_end())?;
        let connect = self.connect_line(info.get("nonce").and_then(|n| n.as_str()))?;
        buf.clear();
        match &self.tls {
            None => converse(&mut tcp, &mut buf, &connect).await?,
            Some((connector, name)) => {
                let mut tls = connector.connect(name.clone(), tcp).await?;
                if self.negotiated.get().is_none() {
                    let c = tls.get_ref().1;
                    let opt = |d: Option<String>| d.unwrap_or_else(|| "?".into());
                    let _ = self.negotiated.set(format!(
                        "{} {} {}",
                        opt(c.protocol_version().map(|v| format!("{v:?}"))),
                        opt(c
                            .negotiated_cipher_suite()
                            .map(|s| format!("{:?}", s.suite()))),
                        opt(c
                            .negotiated_key_exchange_group()
                            .map(|g| format!("{:?}", g.name()))),
                    ));
                }
                converse(&mut tls, &mut buf, &connect).await?;
            }
        }
        Ok(start.elapsed())
    }
}

/// Reads into `buf` until it contains `needle`.
async fn read_until<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    needle: &[u8],
) -> Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.windows(needle.len()).any(|w| w == needle) {
            return Ok(());
        }
        if let Some(at) = find(buf, b"-ERR") {
            let end = find(&buf[at..], b"\r\n").map_or(buf.len(), |e| at + e);
            bail!("{}", String::from_utf8_lossy(&buf[at..end]));
        }
        if buf.len() > MAX_REPLY {
            bail!(
                "no {:?} in {} bytes",
                String::from_utf8_lossy(needle),
                buf.len()
            );
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!(
                "closed by the server: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            );
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends CONNECT and PING, waits for PONG.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    connect: &[u8],
) -> Result<()> {
    s.write_all(connect).await?;
    s.flush().await?;
    read_until(s, buf, b"PONG\r\n").await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: usize,
    first_error: Option<String>,
}

async fn run(args: RunArgs) -> Result<()> {
    let setup = Arc::new(Setup::new(&args)?);
    let next = Arc::new(AtomicUsize::new(0));
    let conn_timeout = Duration::from_secs_f64(args.conn_timeout);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.time_limit);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (setup, next, count) = (setup.clone(), next.clone(), args.count);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            while Instant::now() < deadline && next.fetch_add(1, Ordering::Relaxed) < count {
                let err = match tokio::time::timeout(conn_timeout, setup.connect_once()).await {
                    Ok(Ok(d)) => {
                        t.latencies_us
                            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                        continue;
                    }
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(_) => "timed out".to_string(),
                };
                t.errors += 1;
                t.first_error.get_or_insert(err);
            }
            t
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await?;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |q: f64| -> u64 {
        let l = &all.latencies_us;
        if l.is_empty() {
            return 0;
        }
        // Nearest rank.
        let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
        l[rank - 1]
    };
    let ok = all.latencies_us.len();
    let rate = ok as f64 / secs;
    let out = serde_json::json!({
        "mode": match args.mode { Mode::Plain => "plain", Mode::Nkey => "nkey",
                                  Mode::Jwt => "jwt", Mode::Tls => "tls" },
        "conns": ok,
        "errors": all.errors,
        "secs": secs,
        "conns_per_sec": rate,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "first_error": all.first_error,
        "tls": setup.negotiated.get(),
    });
    println!("{out}");
    Ok(())
}
