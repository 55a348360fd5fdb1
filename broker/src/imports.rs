//! Imports and exports between accounts: the only way a message crosses from one
//! account's subject space into another's.
//!
//! The two kinds work where nats-server makes them work, so that mixed clusters agree on
//! which server delivers what:
//!
//! - **Stream imports** act on the subscriber's server. A client subscription in the
//!   importing account that an import covers gets a *shadow* subscription in the
//!   exporting account, on the subject as the exporter knows it. The shadow is a real
//!   subscription there (its interest reaches routes, gateways and leaf nodes, so the
//!   exporter's messages come to this server from wherever they are published) and
//!   delivers to the client under the import's local subject (`prefix.subject` or `to`).
//! - **Service imports** act on the requester's server, never on a message that arrived
//!   over a route or a gateway (the origin server applied them already). A publish in the
//!   importing account on the import's local
//!   subject is delivered in the exporting account under the exported subject, with its
//!   reply subject replaced by one of the exporter's `_R_.<prefix>.<token>` subjects. The
//!   exporter subscribes (once, internally) to `_R_.<prefix>.>`, so an answer from
//!   anywhere in the cluster comes back to this server, which maps it to the original
//!   reply subject in the importing account: once for a singleton service, until the
//!   response threshold passes for streamed and chunked ones. This is nats-server's
//!   design, and its subject shapes, so mixed clusters route each other's replies.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use natrix_config::options::{Export, ExportKind, Import, ResponseType};
use natrix_transform::SubjectTransform;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::account::Account;
use crate::server::Server;
use crate::server::client::Subscription;
use crate::server::fanout::{self, Inbound};
use crate::server::internal::{InternalClient, InternalMsg};
use crate::server::outbound::Outbound;

/// How many accounts a message may cross in a row (chained imports). Configs with
/// cycles are refused at load; this bounds what a cycle that slipped through could do.
const MAX_HOPS: u8 = 8;

/// How a subject is rewritten on its way into the other account.
#[derive(Debug, Clone)]
pub enum Rewrite {
    /// Unchanged.
    Same,
    /// `prefix.` in front (stream imports with `prefix`).
    Prefix(Bytes),
    /// The first n bytes dropped (the way back of a prefix).
    StripPrefix(usize),
    /// One fixed subject (literal import subjects).
    Literal(Bytes),
    /// Wildcard tokens carried over into a different pattern.
    Transform(SubjectTransform),
}

impl Rewrite {
    /// The rewrite from subjects matching `from` to `to`, as nats-server builds it: the
    /// published subject when the two are the same, `to` when it is literal, else each
    /// wildcard of `from` fills the wildcard in the same place of `to`.
    fn between(from: &str, to: &str) -> Result<Self, String> {
        if from == to {
            return Ok(Self::Same);
        }
        if !to.contains(['*', '>']) {
            return Ok(Self::Literal(Bytes::copy_from_slice(to.as_bytes())));
        }
        let mut n = 0;
        let dest: Vec<String> = to
            .split('.')
            .map(|t| {
                if t == "*" {
                    n += 1;
                    format!("${n}")
                } else {
                    t.to_owned()
                }
            })
            .collect();
        SubjectTransform::new_strict(from, &dest.join("."))
            .map(Self::Transform)
            .map_err(|e| e.to_string())
    }

    pub fn apply(&self, subject: &[u8]) -> Vec<u8> {
        match self {
            Self::Same => subject.to_vec(),
            Self::StripPrefix(n) => subject.get(*n..).unwrap_or_default().to_vec(),
            Self::Prefix(p) => {
                let mut s = Vec::with_capacity(p.len() + subject.len());
                s.extend_from_slice(p);
                s.extend_from_slice(subject);
                s
            }
            Self::Literal(s) => s.to_vec(),
            Self::Transform(t) => t.transform_subject(subject),
        }
    }
}

/// A stream this account imports.
#[derive(Debug)]
pub struct StreamImport {
    exporter: Weak<Account>,
    /// The subject as the exporter knows it.
    from: String,
    /// The subject here.
    to: String,
    /// From the exporter's subjects to ours, for deliveries.
    forward: Arc<Rewrite>,
    /// From ours back to the exporter's, for shadow subscriptions.
    reverse: Rewrite,
}

/// A service this account imports.
#[derive(Debug)]
pub struct ServiceLink {
    /// The subject here that requests are published on.
    local: String,
    /// `local` up to its first wildcard token: a subject the import covers starts with
    /// it. Every publish in an importing account is checked against every import (the
    /// default account imports the system's request subjects), so this byte compare
    /// keeps that check off the publish path's profile.
    literal_prefix: Box<[u8]>,
    exporter: Weak<Account>,
    rewrite: Rewrite,
    response_type: ResponseType,
    threshold: Duration,
    /// Whether the exporter sees the requester's details (`share`).
    share: bool,
    /// Whether the exporter is the system account (it always learns which server and
    /// cluster a request came through).
    system: bool,
    /// The export's `latency { sampling, subject }`.
    latency: Option<natrix_config::options::Latency>,
}

/// An account's imports.
#[derive(Debug, Default)]
pub struct Links {
    pub streams: Vec<StreamImport>,
    pub services: Vec<ServiceLink>,
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.services.is_empty()
    }

    /// The subjects requests to imported services are published on here: leaf nodes
    /// bound to the account hear of them as interest, so requesters behind a leaf node
    /// reach the services (nats-server announces them the same way).
    pub fn service_subjects(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|s| s.local.as_str())
    }
}

/// What a `_R_` reply subject of this account maps back to.
struct Route {
    requester: Weak<Account>,
    reply: Bytes,
    response_type: ResponseType,
    expires: Instant,
    /// A sampled request: its latency is reported when the answer comes.
    tracking: Option<Tracking>,
}

/// A request whose service latency is measured (`latency { sampling, subject }`).
#[derive(Clone)]
pub(crate) struct Tracking {
    /// Where the measurement goes, in the exporting account.
    subject: String,
    /// When the request entered the exporting account.
    at: Instant,
    wall: std::time::SystemTime,
    /// The requester's `ClientInfo` (its details only with `share`) and round trip.
    requestor: serde_json::Value,
    requestor_rtt: u64,
}

/// The exporter side of service imports: the way back for replies.
pub struct Responses {
    /// `_R_.<6 chars>.`, random per account and server, as nats-server makes it.
    prefix: String,
    routes: Mutex<ResponseTable>,
    /// The internal subscription on `<prefix>>`, made at the first request.
    client: Mutex<Option<Arc<InternalClient>>>,
}

#[derive(Default)]
struct ResponseTable {
    by_reply: FxHashMap<Bytes, Route>,
    last_sweep: Option<Instant>,
}

impl Default for Responses {
    fn default() -> Self {
        Self::new()
    }
}

impl Responses {
    pub fn new() -> Self {
        Self {
            prefix: format!("_R_.{}.", random_token(6)),
            routes: Mutex::new(ResponseTable::default()),
            client: Mutex::new(None),
        }
    }

    /// Reply mappings waiting for an answer (`/accountz` and tests).
    pub fn pending(&self) -> usize {
        self.routes.lock().by_reply.len()
    }

    /// A fresh reply subject of this account that maps back to `reply` in `requester`.
    fn open(
        &self,
        requester: &Arc<Account>,
        reply: &[u8],
        response_type: ResponseType,
        threshold: Duration,
        tracking: Option<Tracking>,
    ) -> Bytes {
        let mut subject = String::with_capacity(self.prefix.len() + 8);
        subject.push_str(&self.prefix);
        subject.push_str(&random_token(8));
        let subject = Bytes::from(subject);
        let now = Instant::now();
        let mut t = self.routes.lock();
        // Unanswered requests would otherwise pile up: sweep at most once a second.
        if t.last_sweep
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(1))
        {
            t.by_reply.retain(|_, r| r.expires > now);
            t.last_sweep = Some(now);
        }
        t.by_reply.insert(
            subject.clone(),
            Route {
                requester: Arc::downgrade(requester),
                reply: Bytes::copy_from_slice(reply),
                response_type,
                expires: now + threshold,
                tracking,
            },
        );
        subject
    }

    /// Where an answer on `subject` goes: the requesting account and the original reply
    /// subject. A singleton's way back is used once.
    fn take(&self, subject: &[u8]) -> Option<(Arc<Account>, Bytes, Option<Tracking>)> {
        let mut t = self.routes.lock();
        let route = t.by_reply.get_mut(subject)?;
        if route.expires <= Instant::now() {
            t.by_reply.remove(subject);
            return None;
        }
        // Only the first answer of a streamed service is measured.
        let tracking = route.tracking.take();
        let found = (route.requester.upgrade()?, route.reply.clone(), tracking);
        if route.response_type == ResponseType::Singleton {
            t.by_reply.remove(subject);
        }
        Some(found)
    }
}

fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..n)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// Every account's exports and imports: the configured ones, and those nats-server
/// gives every account so that it can ask the system account about itself
/// (`$SYS.REQ.ACCOUNT.PING.CONNZ`, `.STATZ`, `$SYS.REQ.USER.INFO`).
pub struct Declared {
    pub exports: Vec<(String, Vec<Export>)>,
    pub imports: Vec<(String, Vec<Import>)>,
}

impl Declared {
    pub fn exports_of(&self, account: &str) -> impl Iterator<Item = &Export> {
        self.exports
            .iter()
            .filter(move |(n, _)| n == account)
            .flat_map(|(_, l)| l.iter())
    }

    pub fn imports_of(&self, account: &str) -> impl Iterator<Item = &Import> {
        self.imports
            .iter()
            .filter(move |(n, _)| n == account)
            .flat_map(|(_, l)| l.iter())
    }
}

fn service_export(subject: &str, response_type: ResponseType, token_position: u32) -> Export {
    Export {
        kind: ExportKind::Service,
        subject: subject.to_owned(),
        accounts: None,
        response_type,
        response_threshold: None,
        latency: None,
        token_position,
        allow_trace: false,
        pos: None,
    }
}

fn service_import(exporter: &str, subject: String, local: &str, share: bool) -> Import {
    Import {
        kind: ExportKind::Service,
        account: exporter.to_owned(),
        subject,
        to: local.to_owned(),
        prefix: String::new(),
        share,
        allow_trace: false,
        pos: None,
    }
}

/// The configured exports and imports plus the system account's, for `server`'s
/// accounts.
pub fn declared(server: &Server, config: &natrix_config::Options) -> Declared {
    let mut exports = config.account_exports.clone();
    let mut imports = config.account_imports.clone();
    let sys = server.sys_account.name().to_owned();
    exports.push((
        sys.clone(),
        vec![
            service_export("$SYS.REQ.ACCOUNT.*.CONNZ", ResponseType::Stream, 4),
            service_export("$SYS.REQ.ACCOUNT.*.STATZ", ResponseType::Stream, 4),
            service_export("$SYS.DEBUG.SUBSCRIBERS", ResponseType::Singleton, 0),
            service_export("$SYS.REQ.USER.*.INFO", ResponseType::Singleton, 0),
        ],
    ));
    for acc in server.all_accounts() {
        let name = acc.name();
        let own = if name == sys {
            vec![service_import(
                &sys,
                format!("$SYS.REQ.USER.{name}.INFO"),
                "$SYS.REQ.USER.INFO",
                true,
            )]
        } else {
            let connz = format!("$SYS.REQ.ACCOUNT.{name}.CONNZ");
            vec![
                service_import(&sys, connz.clone(), "$SYS.REQ.ACCOUNT.PING.CONNZ", false),
                service_import(&sys, connz, "$SYS.REQ.SERVER.PING.CONNZ", false),
                service_import(
                    &sys,
                    format!("$SYS.REQ.ACCOUNT.{name}.STATZ"),
                    "$SYS.REQ.ACCOUNT.PING.STATZ",
                    false,
                ),
                service_import(
                    &sys,
                    format!("$SYS.REQ.USER.{name}.INFO"),
                    "$SYS.REQ.USER.INFO",
                    true,
                ),
            ]
        };
        match imports.iter_mut().find(|(n, _)| n == name) {
            Some((_, list)) => list.extend(own),
            None => imports.push((name.to_owned(), own)),
        }
    }
    // Operator mode: what the accounts' JWTs declare. An import the exporter does not
    // authorize (no export, or a token-required export without a valid activation) is
    // left out, as nats-server marks it invalid.
    let claimed: Vec<(String, Arc<natrix_jwt::AccountClaims>)> = server
        .all_accounts()
        .iter()
        .filter_map(|a| a.claims().map(|c| (a.name().to_owned(), c)))
        .collect();
    for (name, c) in &claimed {
        exports.push((
            name.clone(),
            c.nats.exports.iter().map(export_of_claim).collect(),
        ));
    }
    for (name, c) in &claimed {
        let list: Vec<Import> = c
            .nats
            .imports
            .iter()
            .filter_map(|i| {
                let exporter = claimed.iter().find(|(n, _)| *n == i.account)?;
                import_of_claim(name, i, &exporter.1)
            })
            .collect();
        match imports.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) => l.extend(list),
            None => imports.push((name.clone(), list)),
        }
    }
    Declared { exports, imports }
}

/// A JWT export as the config's: token-required exports admit activations only.
fn export_of_claim(e: &natrix_jwt::Export) -> Export {
    let kind = if e.is_service() {
        ExportKind::Service
    } else {
        ExportKind::Stream
    };
    let response_type = match e.response_type.as_str() {
        natrix_jwt::ResponseType::STREAM => ResponseType::Stream,
        natrix_jwt::ResponseType::CHUNKED => ResponseType::Chunked,
        _ => ResponseType::Singleton,
    };
    Export {
        kind,
        subject: e.subject.clone(),
        accounts: e.token_req.then(Vec::new),
        response_type,
        response_threshold: u64::try_from(e.response_threshold)
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_nanos),
        latency: e.latency.as_ref().map(|l| natrix_config::options::Latency {
            sampling: u8::try_from(l.sampling.0).unwrap_or(100),
            subject: l.results.clone(),
        }),
        token_position: u32::try_from(e.account_token_position).unwrap_or(0),
        allow_trace: e.allow_trace,
        pos: None,
    }
}

/// A JWT import as the config's, when the exporter's claims authorize it: a public
/// export, the importer's key at the token position, or a valid activation token
/// (signed by the exporter or one of its signing keys, for this importer, covering the
/// subject, not expired, not revoked).
fn import_of_claim(
    importer: &str,
    i: &natrix_jwt::Import,
    exporter: &natrix_jwt::AccountClaims,
) -> Option<Import> {
    let kind = if i.is_service() {
        ExportKind::Service
    } else {
        ExportKind::Stream
    };
    let exports: Vec<Export> = exporter.nats.exports.iter().map(export_of_claim).collect();
    let activation = !i.token.is_empty() && activation_valid(importer, i, exporter);
    if !natrix_config::options::authorized(&exports, kind, importer, &i.subject, activation) {
        tracing::debug!(
            "import of {:?} from {} by {importer} not authorized",
            i.subject,
            i.account
        );
        return None;
    }
    let local = if !i.local_subject.is_empty() {
        i.local_subject.clone()
    } else {
        i.to.clone()
    };
    // JWT stream imports with `to` (deprecated) meant a prefix; `local_subject` is the
    // subject itself.
    let (to, prefix) = match kind {
        ExportKind::Stream if i.local_subject.is_empty() && !i.to.is_empty() => {
            (String::new(), i.to.clone())
        }
        _ => (local, String::new()),
    };
    Some(Import {
        kind,
        account: i.account.clone(),
        subject: i.subject.clone(),
        to,
        prefix,
        share: i.share,
        allow_trace: i.allow_trace,
        pos: None,
    })
}

fn activation_valid(
    importer: &str,
    i: &natrix_jwt::Import,
    exporter: &natrix_jwt::AccountClaims,
) -> bool {
    let Ok(act) = natrix_jwt::decode_activation(&i.token) else {
        return false;
    };
    let now = natrix_jwt::now_unix();
    let issuer_ok = act.data.issuer == exporter.data.subject
        || exporter.nats.signing_keys.contains(&act.data.issuer);
    let subject = act.nats.import_subject.as_str();
    let tokens: Vec<&[u8]> = i.subject.as_bytes().split(|&b| b == b'.').collect();
    issuer_ok
        && act.data.subject == importer
        && natrix_jwt::validate(&act, now).is_ok()
        && natrix_transform::subset_match(&tokens, subject)
        && !exporter.nats.exports.iter().any(|e| {
            e.is_revoked(importer, act.data.issued_at) && subject_within(&i.subject, &e.subject)
        })
}

/// Builds every account's links from the declared imports (start-up and reload).
/// Imports naming an account that does not exist are skipped (the config checks refused
/// them already).
pub(crate) fn apply(server: &Server, config: &natrix_config::Options) {
    let declared = declared(server, config);
    let accounts = server.all_accounts();
    let find = |name: &str| accounts.iter().find(|a| a.name() == name).cloned();
    let mut links: Vec<(Arc<Account>, Links)> = accounts
        .iter()
        .map(|a| (a.clone(), Links::default()))
        .collect();
    let mut add = |owner: &Arc<Account>, f: &mut dyn FnMut(&mut Links)| {
        if let Some((_, l)) = links.iter_mut().find(|(a, _)| Arc::ptr_eq(a, owner)) {
            f(l);
        }
    };
    let sys = server.sys_account.clone();
    for (importer_name, imports) in &declared.imports {
        let Some(importer) = find(importer_name) else {
            continue;
        };
        for im in imports {
            let Some(exporter) = find(&im.account) else {
                continue;
            };
            let exports = declared.exports_of(&im.account);
            match im.kind {
                ExportKind::Stream => {
                    let to = im.local_subject();
                    let rewrites = if im.prefix.is_empty() {
                        Rewrite::between(&im.subject, &to)
                            .and_then(|f| Ok((f, Rewrite::between(&to, &im.subject)?)))
                    } else {
                        let mut p = im.prefix.clone();
                        if !p.ends_with('.') {
                            p.push('.');
                        }
                        let n = p.len();
                        Ok((Rewrite::Prefix(Bytes::from(p)), Rewrite::StripPrefix(n)))
                    };
                    match rewrites {
                        Ok((forward, reverse)) => add(&importer, &mut |l| {
                            l.streams.push(StreamImport {
                                exporter: Arc::downgrade(&exporter),
                                from: im.subject.clone(),
                                to: to.clone(),
                                forward: Arc::new(forward.clone()),
                                reverse: reverse.clone(),
                            });
                        }),
                        Err(e) => tracing::error!(
                            "stream import {:?} of account {importer_name:?} not applied: {e}",
                            im.subject
                        ),
                    }
                }
                ExportKind::Service => {
                    let export = exports
                        .filter(|e| e.kind == ExportKind::Service)
                        .find(|e| subject_within(&im.subject, &e.subject));
                    let local = im.local_subject();
                    match Rewrite::between(&local, &im.subject) {
                        Ok(rewrite) => add(&importer, &mut |l| {
                            l.services.push(ServiceLink {
                                literal_prefix: literal_prefix(&local),
                                local: local.clone(),
                                exporter: Arc::downgrade(&exporter),
                                rewrite: rewrite.clone(),
                                response_type: export
                                    .map_or(ResponseType::Singleton, |e| e.response_type),
                                threshold: export
                                    .and_then(|e| e.response_threshold)
                                    .unwrap_or(natrix_config::options::DEFAULT_RESPONSE_THRESHOLD),
                                share: im.share,
                                system: Arc::ptr_eq(&exporter, &sys),
                                latency: export.and_then(|e| e.latency.clone()),
                            });
                        }),
                        Err(e) => tracing::error!(
                            "service import {:?} of account {importer_name:?} not applied: {e}",
                            im.subject
                        ),
                    }
                }
            }
        }
    }
    for (account, l) in links {
        account.set_links(l);
    }
}

/// The literal start of an import subject: everything before its first wildcard
/// token (all of it when it has none).
fn literal_prefix(subject: &str) -> Box<[u8]> {
    let mut end = 0;
    for token in subject.split('.') {
        if token.starts_with('*') || token == ">" {
            break;
        }
        end += token.len() + 1;
    }
    subject.as_bytes()[..end.min(subject.len())].into()
}

/// Whether every subject `a` matches is matched by `b`.
fn subject_within(a: &str, b: &str) -> bool {
    let tokens: Vec<&[u8]> = a.as_bytes().split(|&c| c == b'.').collect();
    natrix_transform::subset_match(&tokens, b)
}

/// A message entering `account` from one of its own publishers.
pub(crate) struct Published<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub hdr: usize,
    pub msg: &'a [u8],
    /// The connection that published it, for the `Nats-Request-Info` header.
    pub requester: Option<u64>,
}

/// Applies `account`'s service imports to a message published in it: a request on an
/// imported service goes on to the exporter. Returns the deliveries made (so a request
/// that only a service import answered is not one without responders).
pub(crate) fn forward(
    server: &Server,
    account: &Account,
    m: &Published<'_>,
    to_flush: &mut Vec<Arc<Outbound>>,
) -> u64 {
    forward_hop(server, account, m, to_flush, 0)
}

fn forward_hop(
    server: &Server,
    account: &Account,
    m: &Published<'_>,
    to_flush: &mut Vec<Arc<Outbound>>,
    hops: u8,
) -> u64 {
    if hops >= MAX_HOPS {
        return 0;
    }
    let links = account.links();
    if links.services.is_empty() {
        return 0;
    }
    let mut tokens: Option<Vec<&[u8]>> = None;
    let mut sent = 0;
    // One service answers a request: the first import that covers the subject.
    if let Some(si) = links.services.iter().find(|si| {
        m.subject.starts_with(&si.literal_prefix)
            && natrix_transform::subset_match(
                tokens.get_or_insert_with(|| m.subject.split(|&c| c == b'.').collect()),
                &si.local,
            )
    }) && let Some(exporter) = si.exporter.upgrade()
        && let Some(requester) = server.account_arc(account)
    {
        let subject = si.rewrite.apply(m.subject);
        let tracking = si
            .latency
            .as_ref()
            .filter(|l| sampled(l.sampling, m))
            .map(|l| Tracking {
                subject: l.subject.clone(),
                at: Instant::now(),
                wall: std::time::SystemTime::now(),
                requestor: serde_json::from_slice(&crate::server::events::request_info(
                    server,
                    m.requester,
                    account.name(),
                    si.share,
                    false,
                ))
                .unwrap_or_default(),
                requestor_rtt: m
                    .requester
                    .and_then(|cid| server.client_view(cid))
                    .map_or(0, |v| v.rtt),
            });
        let reply = m.reply.map(|r| {
            let subject = exporter.responses.open(
                &requester,
                r,
                si.response_type,
                si.threshold,
                tracking.clone(),
            );
            listen_for_responses(server, &exporter);
            subject
        });
        let info = crate::server::events::request_info(
            server,
            m.requester,
            account.name(),
            si.share,
            si.system,
        );
        let (hdr, msg) = with_request_info(m.hdr, m.msg, &info);
        let next = Published {
            subject: &subject,
            reply: reply.as_deref(),
            hdr,
            msg: &msg,
            requester: None,
        };
        sent += deliver(server, &exporter, &next, to_flush, hops + 1);
    }
    sent
}

/// Delivers a request in the exporting `account` as if published there: local
/// subscribers, routes, leaf nodes and other clusters, then that account's own service
/// imports (a service may be imported in turn).
fn deliver(
    server: &Server,
    account: &Account,
    m: &Published<'_>,
    to_flush: &mut Vec<Arc<Outbound>>,
    hops: u8,
) -> u64 {
    let inbound = Inbound {
        subject: m.subject,
        deliver_to: None,
        reply: m.reply,
        route_reply: None,
        hdr: m.hdr,
        msg: m.msg,
        queues: None,
        to_routes: true,
    };
    let len = m.msg.len() as u64;
    account
        .stats
        .in_msgs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    account
        .stats
        .in_bytes
        .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
    let mut sent = fanout::deliver(server, account, &inbound, to_flush);
    if let Some(gws) = server.gateways() {
        let local = account.sublist.match_subject(m.subject);
        sent += u64::from(gws.send(
            account, m.subject, m.reply, m.hdr, m.msg, &local, None, to_flush,
        ));
    }
    account
        .stats
        .out_msgs
        .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    account
        .stats
        .out_bytes
        .fetch_add(sent * len, std::sync::atomic::Ordering::Relaxed);
    sent + forward_hop(server, account, m, to_flush, hops)
}

/// Whether a request is measured: `sampling` percent of them, or with sampling 0
/// ("headers") those carrying a tracing header.
fn sampled(sampling: u8, m: &Published<'_>) -> bool {
    if sampling == 0 {
        let head = &m.msg[..m.hdr.min(m.msg.len())];
        let text = String::from_utf8_lossy(head).to_ascii_lowercase();
        return ["traceparent:", "uber-trace-id:", "x-b3-sampled:", "b3:"]
            .iter()
            .any(|h| text.contains(h));
    }
    sampling >= 100 || fastrand::u8(0..100) < sampling
}

/// nats-server's `ServiceLatency` metric for an answered request, published in the
/// exporting account on the export's latency subject. The responder's round trip is
/// not known here, so the service time is the whole time the exporter took and the
/// system time is the requester's round trip.
fn report_latency(server: &Server, exporter: &Account, t: &Tracking) {
    let service = u64::try_from(t.at.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let start = t.wall - Duration::from_nanos(t.requestor_rtt);
    let metric = serde_json::json!({
        "type": "io.nats.server.metric.v1.service_latency",
        "id": server.next_event_id(),
        "timestamp": crate::monitor::format::GoTime::now(),
        "status": 200,
        "requestor": t.requestor,
        "start": crate::monitor::format::GoTime::of(start),
        "service": service,
        "system": 0,
        "total": service.saturating_add(t.requestor_rtt),
    });
    match serde_json::to_vec(&metric) {
        Ok(bytes) => server.publish_internal(exporter, t.subject.as_bytes(), &bytes),
        Err(e) => tracing::error!("service latency metric: {e}"),
    }
}

/// The header line nats-server uses to tell a service who asked.
const REQUEST_INFO: &[u8] = b"Nats-Request-Info";

/// `msg` (its first `hdr` bytes the header block) with a `Nats-Request-Info` header set
/// to `info`, replacing one a client may have sent itself: the exporter must be able to
/// trust it. Returns the new header length and message.
fn with_request_info(hdr: usize, msg: &[u8], info: &[u8]) -> (usize, Vec<u8>) {
    let (head, payload) = msg.split_at(hdr.min(msg.len()));
    let mut out = Vec::with_capacity(msg.len() + info.len() + 48);
    if head.is_empty() {
        out.extend_from_slice(b"NATS/1.0\r\n");
    } else {
        // Keep the status line and every other header; the block ends with an empty line.
        let body = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
        let mut lines = body.split(|&b| b == b'\n');
        if let Some(status) = lines.next() {
            out.extend_from_slice(status);
            out.push(b'\n');
        }
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            if name.trim_ascii().eq_ignore_ascii_case(REQUEST_INFO) {
                continue;
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(REQUEST_INFO);
    out.extend_from_slice(b": ");
    out.extend_from_slice(info);
    out.extend_from_slice(b"\r\n\r\n");
    let hdr = out.len();
    out.extend_from_slice(payload);
    (hdr, out)
}

/// A subscription's shadows: where they live and the shadow itself.
pub type Shadows = Vec<(Weak<Account>, Arc<Subscription>)>;

/// The shadow subscriptions that a client subscription `sub` in `account` needs in the
/// accounts it imports streams from (nats-server's `addShadowSubscriptions`): on the
/// import's own subject when the subscription covers the whole import, on the matching
/// part of it when the subscription is narrower. Inserts them, announces their interest,
/// and returns them for removal with the subscription.
pub(crate) fn add_shadows(server: &Server, account: &Account, sub: &Subscription) -> Shadows {
    if !account.has_links() {
        return Vec::new();
    }
    let links = account.links();
    let mut out = Vec::new();
    let subject = String::from_utf8_lossy(&sub.subject);
    let wildcard = subject.contains(['*', '>']);
    for si in &links.streams {
        let shadow = if subject == si.to {
            si.from.clone()
        } else if subject_within(&subject, &si.to) {
            String::from_utf8_lossy(&si.reverse.apply(subject.as_bytes())).into_owned()
        } else if wildcard && subject_within(&si.to, &subject) {
            si.from.clone()
        } else {
            continue;
        };
        let Some(exporter) = si.exporter.upgrade() else {
            continue;
        };
        let mut nsub = Subscription::remote(
            Bytes::from(shadow),
            sub.queue.clone(),
            sub.sid.clone(),
            sub.client.clone(),
        );
        nsub.rewrite = Some(si.forward.clone());
        let nsub = Arc::new(nsub);
        if exporter.sublist.insert(nsub.clone()).is_err() {
            continue;
        }
        server.local_interest(exporter.name(), &nsub.subject, nsub.queue.as_ref(), true);
        out.push((Arc::downgrade(&exporter), nsub));
    }
    out
}

/// Removes a subscription's shadows, with their interest.
pub(crate) fn remove_shadows(server: &Server, shadows: &Shadows) {
    for (exporter, nsub) in shadows {
        nsub.close();
        if let Some(exporter) = exporter.upgrade()
            && exporter.sublist.remove(nsub).is_ok()
        {
            server.local_interest(exporter.name(), &nsub.subject, nsub.queue.as_ref(), false);
        }
    }
}

/// Makes sure `exporter` listens on its `_R_` prefix, so answers come back here.
fn listen_for_responses(server: &Server, exporter: &Arc<Account>) {
    let mut client = exporter.responses.client.lock();
    if client.is_some() {
        return;
    }
    let Some(me) = server.me() else { return };
    let weak_server = Arc::downgrade(&me);
    let weak_exporter = Arc::downgrade(exporter);
    let handler = move |msg: InternalMsg| {
        if let (Some(server), Some(exporter)) = (weak_server.upgrade(), weak_exporter.upgrade()) {
            respond(&server, &exporter, &msg);
        }
    };
    match InternalClient::connect_to(&me, exporter.clone(), handler) {
        Ok(c) => {
            let wildcard = format!("{}>", exporter.responses.prefix);
            if let Err(e) = c.subscribe(&wildcard, None) {
                tracing::error!("service import responses of {:?}: {e}", exporter.name());
                return;
            }
            *client = Some(c);
        }
        Err(e) => tracing::error!("service import responses of {:?}: {e}", exporter.name()),
    }
}

/// An answer on one of `exporter`'s `_R_` subjects: on to the requester's reply subject.
fn respond(server: &Server, exporter: &Account, msg: &InternalMsg) {
    let Some((requester, reply, tracking)) = exporter.responses.take(&msg.subject) else {
        return;
    };
    if let Some(t) = tracking {
        report_latency(server, exporter, &t);
    }
    let mut body = Vec::with_capacity(msg.headers.len() + msg.payload.len());
    body.extend_from_slice(&msg.headers);
    body.extend_from_slice(&msg.payload);
    server.publish_from_server(
        &requester,
        &reply,
        None,
        msg.reply.as_deref(),
        msg.headers.len(),
        &body,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_covers_only_subjects_starting_with_its_literal_prefix() {
        assert_eq!(
            &*literal_prefix("$SYS.REQ.ACCOUNT.*.CONNZ"),
            b"$SYS.REQ.ACCOUNT."
        );
        assert_eq!(&*literal_prefix("svc.>"), b"svc.");
        assert_eq!(&*literal_prefix("svc.x"), b"svc.x");
        assert_eq!(&*literal_prefix("*.x"), b"");
        assert_eq!(
            &*literal_prefix("a.*x.b"),
            b"a.",
            "a token starting with * is one"
        );
        // The prefix is necessary, never sufficient: the full match still decides.
        for (subject, local) in [("svc.x", "svc.x"), ("a.b.CONNZ", "a.*.CONNZ"), ("q.r", ">")] {
            let tokens: Vec<&[u8]> = subject.as_bytes().split(|&c| c == b'.').collect();
            assert!(natrix_transform::subset_match(&tokens, local));
            assert!(subject.as_bytes().starts_with(&literal_prefix(local)));
        }
    }

    #[test]
    fn rewrites_follow_nats_server() {
        assert_eq!(
            Rewrite::between("foo.*", "foo.*").unwrap().apply(b"foo.a"),
            b"foo.a"
        );
        assert_eq!(
            Rewrite::between("svc.x", "local.x")
                .unwrap()
                .apply(b"svc.x"),
            b"local.x"
        );
        assert_eq!(
            Rewrite::between("req.*.>", "svc.*.>")
                .unwrap()
                .apply(b"req.a.b.c"),
            b"svc.a.b.c"
        );
        assert_eq!(
            Rewrite::Prefix(Bytes::from_static(b"p.")).apply(b"x.y"),
            b"p.x.y"
        );
    }

    #[test]
    fn request_info_header_is_added_or_replaced() {
        let (hdr, msg) = with_request_info(0, b"hello", b"{}");
        assert_eq!(&msg[..hdr], b"NATS/1.0\r\nNats-Request-Info: {}\r\n\r\n");
        assert_eq!(&msg[hdr..], b"hello");
        let old = b"NATS/1.0\r\nA: 1\r\nNats-Request-Info: forged\r\n\r\nbody";
        let (hdr, msg) = with_request_info(old.len() - 4, old, b"{\"acc\":\"B\"}");
        assert_eq!(
            &msg[..hdr],
            b"NATS/1.0\r\nA: 1\r\nNats-Request-Info: {\"acc\":\"B\"}\r\n\r\n"
        );
        assert_eq!(&msg[hdr..], b"body");
    }

    #[test]
    fn singleton_routes_are_used_once_and_streams_until_expiry() {
        let requester = Arc::new(Account::new("B"));
        let r = Responses::new();
        let s1 = r.open(
            &requester,
            b"_INBOX.1",
            ResponseType::Singleton,
            Duration::from_secs(5),
            None,
        );
        assert!(s1.starts_with(r.prefix.as_bytes()));
        assert_eq!(
            r.take(&s1).map(|(_, reply, _)| reply),
            Some(Bytes::from("_INBOX.1"))
        );
        assert!(r.take(&s1).is_none());
        let s2 = r.open(
            &requester,
            b"_INBOX.2",
            ResponseType::Stream,
            Duration::from_secs(5),
            None,
        );
        assert!(r.take(&s2).is_some());
        assert!(r.take(&s2).is_some());
        let s3 = r.open(
            &requester,
            b"_INBOX.3",
            ResponseType::Stream,
            Duration::ZERO,
            None,
        );
        assert!(r.take(&s3).is_none());
    }
}
