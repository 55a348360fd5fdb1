//! TLS for client connections and inter-server links (rustls, ring provider).
//!
//! The server config is built from the `tls {}` block's files each time options are
//! loaded, so a reload picks up renewed certificates for every new connection while
//! established connections keep the session they negotiated.
//!
//! A connection's TLS session is driven by hand rather than through an async stream
//! wrapper: the read loop feeds ciphertext in and takes plaintext out, and the outbound
//! side seals whole batches just before they are written. That keeps the outbound path
//! identical for TLS and plain connections (inline non-blocking flushes from publishers,
//! the writer task only when the socket is full).

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{Connection, ServerConnection};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::server::outbound::Outbound;

/// Why a TLS configuration could not be built, in words that name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("error parsing X509 certificate/key pair: open {path}: {reason}")]
    File { path: String, reason: String },
    #[error("error parsing X509 certificate/key pair: {0}")]
    Pair(String),
    #[error("failed to parse root ca certificate in {0}")]
    Ca(String),
    #[error("tls configuration: {0}")]
    Config(String),
}

/// What a listener needs to speak TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub verify: bool,
    pub handshake_first: bool,
    /// nats-server's auto mode (`handshake_first: <duration>`): wait this long for the
    /// client's ClientHello; a client that stays silent gets INFO in the clear and
    /// upgrades after it, as with `handshake_first: false`.
    pub handshake_first_fallback: Option<Duration>,
}

impl ServerTls {
    /// Whether a new connection starts with the TLS handshake rather than with INFO in
    /// the clear: always under `handshake_first`, and in auto mode only when the client
    /// sends its first bytes within the fallback delay (it peeks, so the ClientHello stays
    /// in the socket for the handshake).
    pub async fn starts_with_handshake(&self, stream: &TcpStream) -> bool {
        if !self.handshake_first {
            return false;
        }
        let Some(wait) = self.handshake_first_fallback else {
            return true;
        };
        let mut first = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, stream.peek(&mut first)).await,
            Ok(Ok(n)) if n > 0
        )
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
            && self.verify == other.verify
            && self.handshake_first == other.handshake_first
            && self.handshake_first_fallback == other.handshake_first_fallback
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(Path::new(path)).map_err(|e| TlsError::File {
        path: path.to_owned(),
        reason: io_reason(&e),
    })
}

/// The certificate chain and key of a `tls {}` block.
fn cert_pair(
    cfg: &natrix_config::options::TlsConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_pem = read_file(&cfg.cert_file)?;
    let key_pem = read_file(&cfg.key_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pair(format!("{}: {e}", cfg.cert_file)))?;
    if certs.is_empty() {
        return Err(TlsError::Pair(format!(
            "failed to find any PEM data in certificate input {}",
            cfg.cert_file
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Pair(format!("{}: {e}", cfg.key_file)))?;
    Ok((certs, key))
}

/// Builds the server side from a `tls {}` block.
pub fn server_tls(cfg: &natrix_config::options::TlsConfig) -> Result<ServerTls, TlsError> {
    for (set, what) in [
        (!cfg.cipher_suites.is_empty(), "cipher_suites"),
        (!cfg.curve_preferences.is_empty(), "curve_preferences"),
        (!cfg.pinned_certs.is_empty(), "pinned_certs"),
        (cfg.ocsp_peer.is_some(), "ocsp_peer"),
    ] {
        if set {
            tracing::warn!(
                "tls {what} is not applied: natrix uses rustls's safe defaults (docs/compatibility.md)"
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = cert_pair(cfg)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.min_version == "1.3" {
        &[&rustls::version::TLS13]
    } else {
        rustls::ALL_VERSIONS
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if cfg.verify || cfg.map {
        let mut roots = rustls::RootCertStore::empty();
        if cfg.ca_file.is_empty() {
            return Err(TlsError::Config(
                "verify requires a ca_file to check client certificates against".into(),
            ));
        }
        let ca_pem = read_file(&cfg.ca_file)?;
        for c in CertificateDer::pem_slice_iter(&ca_pem) {
            let c = c.map_err(|_| TlsError::Ca(cfg.ca_file.clone()))?;
            roots
                .add(c)
                .map_err(|_| TlsError::Ca(cfg.ca_file.clone()))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    Ok(ServerTls {
        config: Arc::new(config),
        verify: cfg.verify || cfg.map,
        handshake_first: cfg.handshake_first,
        handshake_first_fallback: cfg.handshake_first_fallback,
    })
}

/// TLS for an inter-server link kind (routes or gateways): each server is the TLS server
/// of the connections it accepts and the client of those it dials. As in nats-server,
/// peers always present certificates and are always verified.
#[derive(Debug, Clone)]
pub struct LinkTls {
    pub server: ServerTls,
    pub client: Arc<rustls::ClientConfig>,
    pub timeout: std::time::Duration,
}

impl PartialEq for LinkTls {
    fn eq(&self, other: &Self) -> bool {
        self.server == other.server && Arc::ptr_eq(&self.client, &other.client)
    }
}

/// Both sides of a route or gateway `tls {}` block; `default_timeout` applies without a
/// `timeout` of its own.
pub fn link_tls(
    cfg: &natrix_config::options::TlsConfig,
    default_timeout: std::time::Duration,
) -> Result<LinkTls, TlsError> {
    let mut strict = cfg.clone();
    strict.verify = true;
    Ok(LinkTls {
        server: server_tls(&strict)?,
        client: client_tls(cfg)?,
        timeout: cfg.timeout.unwrap_or(default_timeout),
    })
}

/// The TLS step of a new inter-server connection: the handshake runs before anything
/// else is said (the acceptor sends its INFO inside TLS); `dial_host` is the host the
/// connection was dialled to, `None` for an accepted one.
pub async fn link_handshake(
    tls: &LinkTls,
    stream: &mut TcpStream,
    dial_host: Option<&str>,
) -> Result<Session, String> {
    match dial_host {
        Some(host) => connect(&tls.client, stream, host, tls.timeout).await,
        None => accept(&tls.server, stream, tls.timeout).await,
    }
}

/// One connection's TLS session, shared by its read loop and its outbound side.
pub type Session = Arc<Mutex<Connection>>;

/// Builds the dialling side of a route or gateway `tls {}` block: the peer's certificate
/// is checked against `ca_file` (or not at all with `insecure`), and `cert_file` /
/// `key_file` are presented to peers that verify.
pub fn client_tls(
    cfg: &natrix_config::options::TlsConfig,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.min_version == "1.3" {
        &[&rustls::version::TLS13]
    } else {
        rustls::ALL_VERSIONS
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if cfg.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        if cfg.ca_file.is_empty() {
            return Err(TlsError::Config(
                "a ca_file is needed to verify the certificates of other servers".into(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        let ca_pem = read_file(&cfg.ca_file)?;
        for c in CertificateDer::pem_slice_iter(&ca_pem) {
            let c = c.map_err(|_| TlsError::Ca(cfg.ca_file.clone()))?;
            roots
                .add(c)
                .map_err(|_| TlsError::Ca(cfg.ca_file.clone()))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = if cfg.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let (certs, key) = cert_pair(cfg)?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Pair(e.to_string()))?
    };
    Ok(Arc::new(config))
}

/// `insecure: true`: any server certificate is accepted (signatures are still checked,
/// so the session keys belong to whoever holds the presented key).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs the client handshake with the server at `host` (a DNS name or an IP address,
/// checked against its certificate) on `stream` within `timeout`.
pub async fn connect(
    config: &Arc<rustls::ClientConfig>,
    stream: &mut TcpStream,
    host: &str,
    timeout: std::time::Duration,
) -> Result<Session, String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host}: {e}"))?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    handshake(Connection::Client(conn), stream, timeout).await
}

/// Runs the server handshake on `stream` within `timeout`; returns the session, which
/// may already hold plaintext the client sent right behind its last handshake message.
pub async fn accept(
    tls: &ServerTls,
    stream: &mut TcpStream,
    timeout: std::time::Duration,
) -> Result<Session, String> {
    let conn = ServerConnection::new(tls.config.clone()).map_err(|e| e.to_string())?;
    handshake(Connection::Server(conn), stream, timeout).await
}

/// Drives a handshake on `stream` to completion within `timeout`.
async fn handshake(
    mut conn: Connection,
    stream: &mut TcpStream,
    timeout: std::time::Duration,
) -> Result<Session, String> {
    // Outbound batches are sealed whole; rustls must not cap what it buffers.
    conn.set_buffer_limit(None);
    let handshake = async {
        let mut raw = vec![0u8; 16 * 1024];
        loop {
            while conn.wants_write() {
                let mut out = Vec::new();
                conn.write_tls(&mut out).map_err(|e| e.to_string())?;
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            if !conn.is_handshaking() {
                return Ok::<(), String>(());
            }
            let n = stream.read(&mut raw).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed during handshake".into());
            }
            feed(&mut conn, &raw[..n]).map_err(|e| e.to_string())?;
        }
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(())) => Ok(Arc::new(Mutex::new(conn))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("TLS handshake timeout".into()),
    }
}

/// Hands ciphertext to rustls and processes it.
fn feed(conn: &mut Connection, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        conn.read_tls(&mut data)?;
        conn.process_new_packets()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
    Ok(())
}

/// Encrypts `plain` (possibly empty: records rustls owes anyway) into TLS records.
pub fn seal(session: &Session, plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut conn = session.lock();
    if !plain.is_empty() {
        conn.writer().write_all(plain)?;
    }
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 16 + 64);
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// A connection after its handshake: the decrypting reader and the sealing outbound.
pub fn split(
    stream: TcpStream,
    session: Session,
    max_pending: usize,
) -> (TlsReader, Arc<Outbound>) {
    let (rd, wr) = stream.into_split();
    let outbound = Arc::new(Outbound::with_tls(wr, max_pending, Some(session.clone())));
    (TlsReader::new(rd, session, outbound.clone()), outbound)
}

/// The read side of a TLS connection as a plain `AsyncRead` of decrypted bytes.
pub struct TlsReader {
    sock: OwnedReadHalf,
    session: Session,
    outbound: Arc<Outbound>,
    raw: Box<[u8]>,
    eof: bool,
}

impl TlsReader {
    pub fn new(sock: OwnedReadHalf, session: Session, outbound: Arc<Outbound>) -> Self {
        Self {
            sock,
            session,
            outbound,
            raw: vec![0u8; 16 * 1024].into_boxed_slice(),
            eof: false,
        }
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            {
                let mut conn = this.session.lock();
                match conn.reader().read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        // Zero here is the peer's close_notify: end of stream.
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.raw);
            ready!(Pin::new(&mut this.sock).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.eof = true;
                continue;
            }
            let owes = {
                let mut conn = this.session.lock();
                feed(&mut conn, &this.raw[..n])?;
                conn.wants_write()
            };
            if owes {
                this.outbound.wake_tls();
            }
        }
    }
}

/// The certificate chain a client presented (verified by then), read for
/// `verify_and_map` and `/connz?auth=1`. Empty when there is none, or when the client's
/// own certificate (the first) cannot be read: mapping must never fall back to a CA's.
pub fn peer_certs(session: &Session) -> Vec<crate::x509::PeerCert> {
    peer_certs_of(&session.lock())
}

/// [`peer_certs`] of any connection's state (a `tokio_rustls` stream's too).
pub fn peer_certs_of(conn: &rustls::CommonState) -> Vec<crate::x509::PeerCert> {
    let Some(chain) = conn.peer_certificates() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        match crate::x509::PeerCert::parse(der.as_ref()) {
            Ok(c) => out.push(c),
            Err(e) if i == 0 => {
                tracing::debug!("client certificate not readable: {e}");
                return Vec::new();
            }
            Err(e) => tracing::debug!("certificate {i} of the client's chain not readable: {e}"),
        }
    }
    out
}

/// The negotiated protocol and cipher suite, as nats-server names them on `/connz`.
pub fn describe(session: &Session) -> (String, String) {
    describe_state(&session.lock())
}

/// [`describe`] of any connection's state (a `tokio_rustls` stream's too).
pub fn describe_state(conn: &rustls::CommonState) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "",
    };
    let suite = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or_default();
    (version.to_owned(), suite.to_owned())
}
