//! The HTTP/1.1 upgrade that opens a WebSocket connection (RFC 6455 §4.2), checked as
//! nats-server checks it, with its reasons in the log and its HTTP statuses on the wire.

use base64::Engine as _;

/// The GUID every accept key is derived with (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A request head larger than this is refused (nats-server reads it with Go's
/// `http.Server`, whose header limit is far above what a browser sends).
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header holds `token` (case-insensitive).
    fn header_has(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// What the upgrade opens. nats-server tells leaf nodes (`/leafnode`) and MQTT
    /// (`/mqtt`) by the end of the path; an MQTT client also names the `mqtt`
    /// subprotocol (MQTT 5.0 §6), which natrix takes as the same request on any path.
    pub fn kind(&self) -> Kind {
        let path = self.path.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with("/leafnode") {
            Kind::Leaf
        } else if path.ends_with("/mqtt") || self.header_has("Sec-WebSocket-Protocol", "mqtt") {
            Kind::Mqtt
        } else {
            Kind::Client
        }
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// What a WebSocket connection carries once upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The NATS client protocol.
    Client,
    /// MQTT packets in binary frames.
    Mqtt,
    /// A leaf node connection (the other server dialled a `ws://` remote).
    Leaf,
}

/// Why an upgrade is refused: the HTTP status and nats-server's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("websocket handshake error: {reason}")]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
}

fn reject(status: u16, reason: impl Into<String>) -> Rejection {
    Rejection {
        status,
        reason: reason.into(),
    }
}

/// Parses the head at the start of `buf`: `Ok(None)` until `\r\n\r\n` is there, else the
/// request and the head's length.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, Rejection> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(reject(431, "request header too large"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| reject(400, "malformed request"))?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(reject(400, "malformed request line"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| reject(400, "malformed header line"))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(Some((
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
        },
        end + 4,
    )))
}

/// What the server checks origins against (`same_origin`, `allowed_origins`).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    pub same_origin: bool,
    /// `(scheme, host, port)` of each allowed origin.
    pub allowed: Vec<(String, String, u16)>,
}

impl OriginPolicy {
    /// Parses `allowed_origins` (absolute http or https URLs).
    pub fn new(same_origin: bool, allowed: &[String]) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|o| {
                parse_origin(o).ok_or_else(|| {
                    format!(
                        "unable to parse allowed origin {o:?}: allowed origins must be absolute URLs with http or https scheme"
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            same_origin,
            allowed,
        })
    }

    fn check(&self, req: &Request, tls: bool) -> Result<(), String> {
        if !self.same_origin && self.allowed.is_empty() {
            return Ok(());
        }
        // Non-browser clients send no Origin: nothing to check.
        let Some(origin) = req.header("Origin") else {
            return Ok(());
        };
        let o = parse_origin(origin).ok_or_else(|| format!("invalid origin {origin:?}"))?;
        if self.same_origin {
            let host = req.header("Host").unwrap_or_default();
            let default_port = if tls { 443 } else { 80 };
            let (h, p) = split_host_port(host, default_port);
            if o.1 != h || o.2 != p {
                return Err("not same origin".into());
            }
        }
        if !self.allowed.is_empty() && !self.allowed.contains(&o) {
            return Err("not in the allowed list".into());
        }
        Ok(())
    }
}

fn parse_origin(s: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport.is_empty() {
        return None;
    }
    let (h, p) = split_host_port(hostport, default_port);
    Some((scheme, h, p))
}

fn split_host_port(s: &str, default_port: u16) -> (String, u16) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => match p.parse() {
            Ok(port) => (h.to_ascii_lowercase(), port),
            Err(_) => (s.to_ascii_lowercase(), default_port),
        },
        _ => (s.to_ascii_lowercase(), default_port),
    }
}

/// What an accepted upgrade asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept`.
    pub accept: String,
    /// The client offers `permessage-deflate` (RFC 7692).
    pub deflate_offered: bool,
    /// `Nats-No-Masking: true`: a non-browser client that will not mask its frames.
    pub no_masking: bool,
    /// The client listed the `mqtt` subprotocol: the answer names it. It is not named
    /// otherwise, since a browser fails an answer naming a subprotocol it did not ask for.
    pub mqtt_protocol: bool,
}

/// Checks an upgrade request as nats-server does.
pub fn check(req: &Request, origins: &OriginPolicy, tls: bool) -> Result<Accepted, Rejection> {
    if req.method != "GET" {
        return Err(reject(405, "request method must be GET"));
    }
    if req.header("Host").is_none_or(str::is_empty) {
        return Err(reject(400, "'Host' missing in request"));
    }
    if !req.header_has("Upgrade", "websocket") {
        return Err(reject(400, "invalid value for header 'Upgrade'"));
    }
    if !req.header_has("Connection", "Upgrade") {
        return Err(reject(400, "invalid value for header 'Connection'"));
    }
    let key = req
        .header("Sec-WebSocket-Key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| reject(400, "key missing"))?;
    let valid_key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|k| k.len() == 16);
    if !valid_key {
        return Err(reject(400, "invalid websocket key"));
    }
    if req.header("Sec-WebSocket-Version") != Some("13") {
        return Err(reject(400, "invalid version"));
    }
    origins
        .check(req, tls)
        .map_err(|e| reject(403, format!("origin not allowed: {e}")))?;
    let deflate_offered = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .flat_map(|(_, v)| v.split(','))
        .any(|ext| {
            ext.split(';')
                .next()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case("permessage-deflate"))
        });
    Ok(Accepted {
        accept: accept_key(key),
        deflate_offered,
        no_masking: req.header("Nats-No-Masking") == Some("true"),
        mqtt_protocol: req.header_has("Sec-WebSocket-Protocol", "mqtt"),
    })
}

/// `Sec-WebSocket-Accept` for `key`.
pub fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(ACCEPT_GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The `101 Switching Protocols` answer: compression as negotiated (without context
/// takeover either way, as nats-server offers it), no masking when asked, then the
/// configured extra headers.
pub fn accepted(a: &Accepted, deflate: bool, extra: &[(String, String)]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        a.accept
    );
    if deflate {
        v.push_str("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n");
    }
    if a.no_masking {
        v.push_str("Nats-No-Masking: true\r\n");
    }
    if a.mqtt_protocol {
        v.push_str("Sec-WebSocket-Protocol: mqtt\r\n");
    }
    for (k, val) in extra {
        v.push_str(&format!("{k}: {val}\r\n"));
    }
    v.push_str("\r\n");
    v.into_bytes()
}

/// The error answer Go's `http.Error` writes: the status text as a plain-text body.
pub fn refused(status: u16) -> Vec<u8> {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> Request {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        parse(head.as_bytes()).expect("parses").expect("whole").0
    }

    #[test]
    fn rfc_6455_sample_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let req = request("");
        let a = check(&req, &OriginPolicy::default(), false).expect("accepted");
        assert_eq!(a.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(!a.deflate_offered && !a.no_masking);
        let req = request(
            "Sec-WebSocket-Extensions: x-foo, permessage-deflate; client_max_window_bits\r\nNats-No-Masking: true\r\n",
        );
        let a = check(&req, &OriginPolicy::default(), false).expect("accepted");
        assert!(a.deflate_offered && a.no_masking);
        let answer = String::from_utf8(accepted(&a, true, &[])).expect("text");
        assert!(answer.contains(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ));
        assert!(answer.contains("Nats-No-Masking: true\r\n"));
    }

    #[test]
    fn partial_heads_wait_and_huge_ones_are_refused() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        let huge = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(parse(&huge).err().map(|r| r.status), Some(431));
        assert_eq!(parse(b"GARBAGE\r\n\r\n").err().map(|r| r.status), Some(400));
    }

    #[test]
    fn refusals_carry_nats_server_reasons() {
        let cases = [
            ("POST", "", 405, "request method must be GET"),
            ("GET", "Upgrade", 400, "invalid value for header 'Upgrade'"),
            (
                "GET",
                "Connection",
                400,
                "invalid value for header 'Connection'",
            ),
            ("GET", "Sec-WebSocket-Key", 400, "key missing"),
            ("GET", "Sec-WebSocket-Version", 400, "invalid version"),
        ];
        for (method, drop, status, reason) in cases {
            let mut req = request("");
            req.method = method.to_owned();
            req.headers.retain(|(k, _)| k != drop);
            let r = check(&req, &OriginPolicy::default(), false).expect_err(reason);
            assert_eq!((r.status, r.reason.as_str()), (status, reason));
        }
        let mut req = request("");
        req.headers.retain(|(k, _)| k != "Sec-WebSocket-Key");
        req.headers
            .push(("Sec-WebSocket-Key".into(), "c2hvcnQ=".into()));
        assert_eq!(
            check(&req, &OriginPolicy::default(), false)
                .err()
                .map(|r| r.reason),
            Some("invalid websocket key".into())
        );
    }

    #[test]
    fn origins_same_and_allowed() {
        let same = OriginPolicy::new(true, &[]).expect("policy");
        assert!(
            check(
                &request("Origin: http://example.com:8080\r\n"),
                &same,
                false
            )
            .is_ok()
        );
        let r = check(&request("Origin: http://evil.com:8080\r\n"), &same, false)
            .expect_err("other host");
        assert_eq!(
            (r.status, r.reason.as_str()),
            (403, "origin not allowed: not same origin")
        );
        // No Origin header: not a browser, nothing to check.
        assert!(check(&request(""), &same, false).is_ok());
        let listed =
            OriginPolicy::new(false, &["https://app.example.com".to_owned()]).expect("policy");
        assert!(
            check(
                &request("Origin: https://app.example.com\r\n"),
                &listed,
                false
            )
            .is_ok()
        );
        let r = check(
            &request("Origin: http://app.example.com\r\n"),
            &listed,
            false,
        )
        .expect_err("scheme differs");
        assert_eq!(r.reason, "origin not allowed: not in the allowed list");
        assert!(OriginPolicy::new(false, &["ftp://x".to_owned()]).is_err());
    }

    #[test]
    fn cookies_by_name() {
        let req = request("Cookie: a=1; jwt=eyJ; b=2\r\n");
        assert_eq!(req.cookie("jwt"), Some("eyJ"));
        assert_eq!(req.cookie("c"), None);
    }

    #[test]
    fn the_path_or_the_subprotocol_tells_what_the_upgrade_opens() {
        let with = |path: &str, extra: &str| {
            let head = format!(
                "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
            );
            parse(head.as_bytes()).expect("valid").expect("whole").0
        };
        assert_eq!(with("/", "").kind(), Kind::Client);
        assert_eq!(with("/leafnode", "").kind(), Kind::Leaf);
        assert_eq!(with("/hub/leafnode?x=1", "").kind(), Kind::Leaf);
        assert_eq!(with("/mqtt", "").kind(), Kind::Mqtt);
        let asked = with("/", "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n");
        assert_eq!(asked.kind(), Kind::Mqtt);
        // The answer names the subprotocol only when it was asked for.
        let policy = OriginPolicy::default();
        let named = accepted(&check(&asked, &policy, false).expect("ok"), false, &[]);
        assert!(String::from_utf8_lossy(&named).contains("Sec-WebSocket-Protocol: mqtt\r\n"));
        let plain = accepted(
            &check(&with("/mqtt", ""), &policy, false).expect("ok"),
            false,
            &[],
        );
        assert!(!String::from_utf8_lossy(&plain).contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn configured_headers_follow_the_agreed_ones() {
        let a = Accepted {
            accept: accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            deflate_offered: true,
            no_masking: false,
            mqtt_protocol: false,
        };
        let extra = [("X-Frame-Options".to_owned(), "DENY".to_owned())];
        let answer = String::from_utf8(accepted(&a, true, &extra)).expect("ascii");
        assert!(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        let deflate = answer.find("permessage-deflate").expect("deflate agreed");
        let header = answer
            .find("X-Frame-Options: DENY\r\n")
            .expect("configured header");
        assert!(deflate < header);
        assert!(answer.ends_with("\r\n\r\n"));
    }
}
