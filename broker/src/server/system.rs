//! The system account's services: the `$SYS.REQ.SERVER.*` requests that `nats server`
//! commands (natscli) and operators send to every server at once.
//!
//! An internal client subscribes in the system account like any client, so requests
//! reach it through the ordinary message path; its outbound side is a channel instead of
//! a socket, and this task answers each request into the system account.
//!
//! | subject | answer |
//! | --- | --- |
//! | `$SYS.REQ.SERVER.PING` (and `.STATSZ`) | `{"server":…,"statsz":…}` |
//! | `$SYS.REQ.SERVER.PING.<X>`, `$SYS.REQ.SERVER.<id>.<X>` | `{"server":…,"data":…}` for `VARZ`, `CONNZ`, `SUBSZ`, `ROUTEZ`, `GATEWAYZ`, `LEAFZ`, `ACCOUNTZ`, `JSZ`, `HEALTHZ`; `IDZ` answers the bare identity |
//! | `$SYS.REQ.SERVER.<id>.RELOAD` | reloads the configuration, answers `{"server":…,"data":{}}` or an error |
//! | `$SYS.REQ.ACCOUNT.<acc>.<X>` | `{"server":…,"data":…}` narrowed to one account for `SUBSZ` (with its subscriptions), `CONNZ`, `LEAFZ`, `JSZ`, `INFO` (its `/accountz` detail) and `STATZ` (its `/accstatz` entry) |
//!
//! Every server also publishes its statistics on `$SYS.SERVER.<id>.STATSZ`, 250 ms after
//! start and then at doubling intervals up to every 10 s, while anyone subscribes. Client
//! connect and disconnect events are in [`super::events`].
//!
//! A request body may carry the endpoint's options as JSON (`{"subscriptions":true}`)
//! and filters (`server_name`, `host`, `cluster`, `tags`); a server that does not match
//! the filters stays silent, as nats-server does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::Server;
use super::client::{ClientHandle, Subscription};
use super::internal::Frame;
use super::outbound::Outbound;
use crate::monitor::format::{GoFloat, GoTime};
use crate::monitor::{Monitor, Reply};

/// When the first `$SYS.SERVER.<id>.STATSZ` heartbeat goes after start.
const STATSZ_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
/// The steady heartbeat interval (nats-server's `statsHBInterval`).
const STATSZ_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A reload requested over `$SYS`, answered when it has run.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// The server as `$SYS` messages name it (nats-server's `ServerInfo`).
#[derive(Serialize)]
pub(crate) struct ServerInfo<'a> {
    name: &'a str,
    host: String,
    id: &'a str,
    ver: &'static str,
    feature_flags: std::collections::BTreeMap<String, bool>,
    jetstream: bool,
    flags: u64,
    seq: u64,
    time: GoTime,
}

#[derive(Serialize, Default)]
struct MsgBytes {
    msgs: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Statsz {
    start: GoTime,
    mem: i64,
    cores: usize,
    cpu: GoFloat,
    connections: usize,
    total_connections: u64,
    active_accounts: usize,
    subscriptions: u64,
    sent: MsgBytes,
    sent_to_clients: MsgBytes,
    received: MsgBytes,
    received_from_clients: MsgBytes,
    slow_consumers: u64,
    active_servers: u64,
    gomaxprocs: usize,
}

#[derive(Serialize)]
struct ApiError {
    code: u16,
    description: String,
}

/// This server as the next `$SYS` message names it.
pub(crate) fn server_info(server: &Server) -> ServerInfo<'_> {
    let (opts, _) = server.options();
    ServerInfo {
        name: server.name(),
        host: opts.host.clone(),
        feature_flags: opts.config.feature_flags.iter().cloned().collect(),
        id: server.id(),
        ver: crate::server::NATS_COMPAT_VERSION,
        jetstream: server.jetstream().is_some(),
        flags: 0,
        seq: server.next_sys_seq(),
        time: GoTime::now(),
    }
}

/// The system account's request handler.
struct System {
    server: Arc<Server>,
    monitor: Arc<Monitor>,
    reloads: Option<mpsc::Sender<ReloadRequest>>,
}

/// Starts the system services: subscribes in the system account and answers requests
/// until the server shuts down. `reloads` carries `$SYS` reload requests to the task that
/// owns the configuration.
pub fn start(server: &Arc<Server>, reloads: Option<mpsc::Sender<ReloadRequest>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (opts, _) = server.options();
    let outbound = Arc::new(Outbound::internal(tx, opts.max_pending));
    let handle = Arc::new(ClientHandle::new(server.next_internal_cid(), outbound));
    // Requests that crossed a service import say who asked in a header.
    handle.headers.store(true, Ordering::Relaxed);
    let id = server.id().to_owned();
    for (i, subject) in [
        "$SYS.REQ.SERVER.PING".to_owned(),
        "$SYS.REQ.SERVER.PING.*".to_owned(),
        format!("$SYS.REQ.SERVER.{id}.*"),
        "$SYS.REQ.ACCOUNT.*.*".to_owned(),
        "$SYS.REQ.USER.*.INFO".to_owned(),
        "$SYS.DEBUG.SUBSCRIBERS".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let sub = Arc::new(Subscription::internal(
            subject,
            &(i + 1).to_string(),
            handle.clone(),
        ));
        if server.sys_account.sublist.insert(sub).is_err() {
            tracing::error!("system service subscription {subject} refused");
        }
    }
    // Operator mode with a resolver that takes pushes: claim updates, lookups, lists
    // and deletes, as nats-server's `DirAccResolver` answers them.
    if server.trust().is_some_and(|t| t.resolver.accepts_pushes()) {
        for (i, subject) in [
            "$SYS.REQ.CLAIMS.UPDATE",
            "$SYS.REQ.ACCOUNT.*.CLAIMS.*",
            "$SYS.ACCOUNT.*.CLAIMS.UPDATE",
            "$SYS.REQ.CLAIMS.LIST",
            "$SYS.REQ.CLAIMS.DELETE",
        ]
        .iter()
        .enumerate()
        {
            let sub = Arc::new(Subscription::internal(
                subject,
                &(100 + i).to_string(),
                handle.clone(),
            ));
            if server.sys_account.sublist.insert(sub.clone()).is_err() {
                tracing::error!("claims subscription {subject} refused");
                continue;
            }
            server.local_interest(server.sys_account.name(), &sub.subject, None, true);
        }
    }
    let system = System {
        monitor: Monitor::new(server.clone()),
        server: server.clone(),
        reloads,
    };
    tokio::spawn(system.run(rx));
}

impl System {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
        let mut buf = BytesMut::new();
        let mut shutdown = std::pin::pin!(self.server.wait_shutdown());
        // As nats-server: the first heartbeat soon after start, then twice as long each
        // time up to the steady interval.
        let mut every = STATSZ_FIRST;
        let mut heartbeat = tokio::time::Instant::now() + every;
        loop {
            let chunk = tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => c,
                    None => return,
                },
                () = tokio::time::sleep_until(heartbeat) => {
                    self.heartbeat();
                    every = (every * 2).min(STATSZ_EVERY);
                    heartbeat = tokio::time::Instant::now() + every;
                    continue;
                }
                () = &mut shutdown => return,
            };
            buf.extend_from_slice(&chunk);
            loop {
                match super::internal::decode(&buf) {
                    Frame::Msg(m, used) => {
                        buf.advance(used);
                        if let Some(reply) = &m.reply {
                            let subject = String::from_utf8_lossy(&m.subject);
                            let reply = String::from_utf8_lossy(reply);
                            self.handle(&subject, &reply, &m.headers, &m.payload).await;
                        }
                    }
                    Frame::Skip(used) => buf.advance(used),
                    Frame::Incomplete => break,
                }
            }
        }
    }

    async fn handle(&self, subject: &str, reply: &str, headers: &[u8], body: &[u8]) {
        let tokens: Vec<&str> = subject.split('.').collect();
        let (target, endpoint) = match tokens.as_slice() {
            ["$SYS", "REQ", "USER", _, "INFO"] => {
                self.user_info(reply, headers);
                return;
            }
            ["$SYS", "DEBUG", "SUBSCRIBERS"] => {
                self.debug_subscribers(reply, headers, body);
                return;
            }
            ["$SYS", "REQ", "CLAIMS", "UPDATE"] => {
                self.claims_update(None, reply, body);
                return;
            }
            ["$SYS", "REQ", "ACCOUNT", pk, "CLAIMS", "UPDATE"]
            | ["$SYS", "ACCOUNT", pk, "CLAIMS", "UPDATE"] => {
                self.claims_update(Some(pk), reply, body);
                return;
            }
            ["$SYS", "REQ", "ACCOUNT", pk, "CLAIMS", "LOOKUP"] => {
                self.claims_lookup(pk, reply);
                return;
            }
            ["$SYS", "REQ", "CLAIMS", "LIST"] => {
                self.claims_list(reply);
                return;
            }
            ["$SYS", "REQ", "CLAIMS", "DELETE"] => {
                self.claims_delete(reply, body);
                return;
            }
            ["$SYS", "REQ", "SERVER", "PING"] => ("PING", "STATSZ"),
            ["$SYS", "REQ", "SERVER", target, endpoint] => (*target, *endpoint),
            ["$SYS", "REQ", "ACCOUNT", account, endpoint] if *account != "PING" => {
                self.account_request(account, endpoint, reply, body);
                return;
            }
            _ => return,
        };
        if target != "PING" && target != self.server.id() {
            return;
        }
        let Some(opts) = self.options(reply, body) else {
            return;
        };
        if !self.matches_filters(&opts) {
            return;
        }
        let server = &self.server;
        let data = match endpoint {
            "STATSZ" => {
                let payload = serde_json::json!({
                    "server": self.info(),
                    "statsz": self.statsz(),
                });
                self.publish(reply, &payload);
                return;
            }
            "IDZ" => {
                let (opts, _) = server.options();
                let idz = serde_json::json!({
                    "name": server.name(),
                    "host": opts.host,
                    "id": server.id(),
                });
                self.publish(reply, &idz);
                return;
            }
            "RELOAD" if target != "PING" => {
                let outcome = self.reload().await;
                match outcome {
                    Ok(()) => serde_json::json!({}),
                    Err(e) => {
                        self.respond_error(reply, 500, &e);
                        return;
                    }
                }
            }
            "VARZ" | "CONNZ" | "SUBSZ" | "ROUTEZ" | "GATEWAYZ" | "LEAFZ" | "ACCOUNTZ" | "JSZ"
            | "HEALTHZ" => {
                let path = format!("/{}", endpoint.to_ascii_lowercase());
                let query = to_query(endpoint, &opts);
                let health = endpoint == "HEALTHZ";
                let Some((status, mut data)) = self.answer(reply, &path, &query, health) else {
                    return;
                };
                // Over `$SYS`, nats-server's health answer carries its status code.
                if health && let Some(map) = data.as_object_mut() {
                    map.insert("status_code".into(), status.into());
                }
                data
            }
            _ => return,
        };
        let payload = serde_json::json!({ "server": self.info(), "data": data });
        self.publish(reply, &payload);
    }

    /// `$SYS.SERVER.<id>.STATSZ`: this server's statistics, for whoever subscribes (other
    /// servers' monitoring, `nats server report`, dashboards).
    fn heartbeat(&self) {
        let subject = format!("$SYS.SERVER.{}.STATSZ", self.server.id());
        if self
            .server
            .sys_account
            .sublist
            .match_subject(subject.as_bytes())
            .is_empty()
        {
            return;
        }
        let payload = serde_json::json!({
            "server": self.info(),
            "statsz": self.statsz(),
        });
        self.publish(&subject, &payload);
    }

    /// `$SYS.REQ.ACCOUNT.<account>.<endpoint>`: a monitoring endpoint narrowed to one
    /// account (nats-server's `accDirectReqSubj`), answered as `{"server":…,"data":…}`.
    /// `INFO` is the account's `/accountz` detail and `STATZ` its `/accstatz` entry.
    fn account_request(&self, account: &str, endpoint: &str, reply: &str, body: &[u8]) {
        let Some(opts) = self.options(reply, body) else {
            return;
        };
        let acc = encode_component(account);
        let (path, scope) = match endpoint {
            // nats-server lists the account's subscriptions here.
            "SUBSZ" => ("/subsz", format!("acc={acc}&subs=true")),
            "CONNZ" => ("/connz", format!("acc={acc}")),
            "LEAFZ" => ("/leafz", format!("acc={acc}")),
            "JSZ" => ("/jsz", format!("acc={acc}")),
            "INFO" => ("/accountz", format!("acc={acc}")),
            "STATZ" => ("/accstatz", format!("accounts={acc}&unused=true")),
            _ => return,
        };
        if self.server.account(account).is_none() {
            return;
        }
        let mut query = to_query(endpoint, &opts);
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&scope);
        let Some((_, data)) = self.answer(reply, path, &query, false) else {
            return;
        };
        let data = match endpoint {
            "INFO" => data.get("account_detail").cloned().unwrap_or(Value::Null),
            _ => data,
        };
        let payload = serde_json::json!({ "server": self.info(), "data": data });
        self.publish(reply, &payload);
    }

    /// `$SYS.REQ.USER.<acc>.INFO` (reached through every account's `$SYS.REQ.USER.INFO`
    /// import): who the requester is and what it may do, from the `Nats-Request-Info`
    /// header the import added.
    fn user_info(&self, reply: &str, headers: &[u8]) {
        let info = header_value(headers, "Nats-Request-Info")
            .and_then(|v| serde_json::from_slice::<Value>(v).ok());
        let Some(info) = info else {
            self.respond_error(reply, 400, "Bad Request");
            return;
        };
        let account = info["acc"].as_str().unwrap_or_default();
        let view = info["id"]
            .as_u64()
            .and_then(|id| self.server.client_view(id));
        let mut data = serde_json::json!({
            "user": info["user"].as_str().unwrap_or_default(),
            "account": account,
        });
        if self.server.account(account).is_some() {
            data["account_name"] = account.into();
        }
        if let Some(p) = view.and_then(|v| v.meta.permissions) {
            data["permissions"] = public_permissions(&p);
        }
        let payload = serde_json::json!({ "server": self.info(), "data": data });
        self.publish(reply, &payload);
    }

    /// `$SYS.DEBUG.SUBSCRIBERS` (nats-server's debugging export): how many client
    /// subscriptions on this server match `<subject> [queue]` in the requester's account
    /// (the system account when asked directly).
    fn debug_subscribers(&self, reply: &str, headers: &[u8], body: &[u8]) {
        let info = header_value(headers, "Nats-Request-Info")
            .and_then(|v| serde_json::from_slice::<Value>(v).ok());
        let account = info
            .as_ref()
            .and_then(|i| i["svc"].as_str().or_else(|| i["acc"].as_str()))
            .and_then(|name| self.server.account(name))
            .unwrap_or_else(|| self.server.sys_account.clone());
        let text = String::from_utf8_lossy(body);
        let mut args = text.split_whitespace();
        let subject = args.next().unwrap_or_default();
        let queue = args.next();
        let counted = |sub: &Subscription| {
            sub.client.kind == super::client::ConnKind::Client
                && !sub.is_closed()
                && queue.is_none_or(|q| sub.queue.as_deref() == Some(q.as_bytes()))
        };
        let n = if subject.is_empty() {
            0
        } else if subject.contains(['*', '>']) {
            account
                .sublist
                .all()
                .iter()
                .filter(|sub| {
                    let own = String::from_utf8_lossy(&sub.subject);
                    let sub_tokens: Vec<&[u8]> = own.as_bytes().split(|&b| b == b'.').collect();
                    natrix_transform::subset_match(&sub_tokens, subject) && counted(sub)
                })
                .count()
        } else {
            let r = account.sublist.match_subject(subject.as_bytes());
            r.psubs.iter().filter(|s| counted(s)).count()
                + r.qsubs.iter().flatten().filter(|s| counted(s)).count()
        };
        self.server
            .publish_internal(&account, reply.as_bytes(), n.to_string().as_bytes());
    }

    /// `$SYS.REQ.CLAIMS.UPDATE` (and the per-account forms): an account JWT pushed by
    /// `nsc push` or another tool. A valid one signed by a trusted operator is stored and
    /// applied to the account at once (its clients are re-checked: a revoked user is
    /// disconnected).
    fn claims_update(&self, pubkey: Option<&str>, reply: &str, body: &[u8]) {
        let Some(trust) = self.server.trust().cloned() else {
            return;
        };
        let jwt = String::from_utf8_lossy(body).trim().to_owned();
        let claims = match natrix_jwt::decode_account(&jwt) {
            Ok(c) => c,
            Err(e) => {
                return self.claims_answer(
                    reply,
                    "n/a",
                    "jwt update resulted in error",
                    Some(&e.to_string()),
                );
            }
        };
        let subject = claims.data.subject.clone();
        if let Some(pk) = pubkey
            && pk != subject
        {
            return self.claims_answer(
                reply,
                pk,
                "jwt update resulted in error",
                Some("subject does not match jwt content"),
            );
        }
        let claims = match trust.verify_account(&jwt) {
            Ok(c) => c,
            Err(e) => {
                return self.claims_answer(reply, &subject, "jwt validation failed", Some(&e));
            }
        };
        match trust.resolver.store(&subject, &jwt, claims.data.issued_at) {
            Ok(stored) => {
                if stored == crate::resolver::Stored::Updated
                    && let Some(acc) = self.server.account(&subject)
                {
                    self.server.install_claims(&acc, claims, jwt);
                }
                self.claims_answer(reply, &subject, "jwt updated", None);
            }
            Err(e) => {
                self.claims_answer(
                    reply,
                    &subject,
                    "jwt update resulted in error",
                    Some(&e.to_string()),
                );
            }
        }
    }

    /// `$SYS.REQ.ACCOUNT.<pk>.CLAIMS.LOOKUP`: the held JWT, or an empty message when
    /// there is none.
    fn claims_lookup(&self, pubkey: &str, reply: &str) {
        let Some(trust) = self.server.trust() else {
            return;
        };
        let jwt = trust.resolver.fetch(pubkey).unwrap_or_default();
        self.server
            .publish_internal(&self.server.sys_account, reply.as_bytes(), jwt.as_bytes());
    }

    /// `$SYS.REQ.CLAIMS.LIST`: the public keys of every account held.
    fn claims_list(&self, reply: &str) {
        let Some(trust) = self.server.trust() else {
            return;
        };
        let payload = serde_json::json!({ "server": self.info(), "data": trust.resolver.list() });
        self.publish(reply, &payload);
    }

    /// `$SYS.REQ.CLAIMS.DELETE`: a generic JWT self-signed by a trusted operator key,
    /// listing accounts to forget (where the resolver allows deletes). Clients of a
    /// deleted account are disconnected (`Account Authentication Expired`).
    fn claims_delete(&self, reply: &str, body: &[u8]) {
        let Some(trust) = self.server.trust().cloned() else {
            return;
        };
        let token = String::from_utf8_lossy(body).trim().to_owned();
        let checked = (|| {
            let natrix_jwt::Claims::Generic(g) =
                natrix_jwt::decode(&token).map_err(|e| ("".to_owned(), e.to_string()))?
            else {
                return Err((String::new(), "malformed request".to_owned()));
            };
            let subject = g.data.subject.clone();
            let fail = |m: &str| Err((subject.clone(), m.to_owned()));
            if g.data.subject != g.data.issuer {
                return fail("not self signed");
            }
            if !trust.is_trusted(&g.data.issuer) {
                return fail("not trusted");
            }
            let Some(list) = g.nats.get("accounts").and_then(Value::as_array) else {
                return fail("malformed request");
            };
            let mut keys = Vec::new();
            for entry in list {
                let Some(k) = entry
                    .as_str()
                    .filter(|k| k.starts_with('A') && k.len() == 56)
                else {
                    return fail("malformed request");
                };
                if k == self.server.sys_account.name() {
                    return fail("not allowed to delete system account");
                }
                keys.push(k.to_owned());
            }
            Ok((subject, keys))
        })();
        let (_, keys) = match checked {
            Ok(v) => v,
            Err((by, e)) => {
                let message = format!("delete accounts request by {by} failed");
                return self.claims_answer(reply, "", &message, Some(&e));
            }
        };
        let mut errors = Vec::new();
        for k in &keys {
            match trust.resolver.delete(k) {
                Ok(()) => self.server.close_account_clients(
                    k,
                    "Account Authentication Expired",
                    super::outbound::CloseReason::AuthenticationExpired,
                ),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let done = keys.len() - errors.len();
        if errors.is_empty() {
            self.claims_answer(reply, "", &format!("deleted {done} accounts"), None);
        } else {
            let message = format!("deleted {done} accounts, failed for {}", errors.len());
            self.claims_answer(reply, "", &message, Some(&errors.join("\n")));
        }
    }

    /// nats-server's `respondToUpdate`: `data` with code 200, or `error` with code 500
    /// and `<message> - <error>`.
    fn claims_answer(&self, reply: &str, account: &str, message: &str, error: Option<&str>) {
        match error {
            None => tracing::debug!("{message} - {account}"),
            Some(e) => tracing::error!("{message} - {account} - {e}"),
        }
        if reply.is_empty() {
            return;
        }
        let mut payload = serde_json::json!({ "server": self.info() });
        let mut body = serde_json::Map::new();
        if !account.is_empty() {
            body.insert("account".into(), account.into());
        }
        match error {
            None => {
                body.insert("code".into(), 200.into());
                body.insert("message".into(), message.into());
                payload["data"] = Value::Object(body);
            }
            Some(e) => {
                body.insert("code".into(), 500.into());
                body.insert("description".into(), format!("{message} - {e}").into());
                payload["error"] = Value::Object(body);
            }
        }
        self.publish(reply, &payload);
    }

    /// A request body's endpoint options and filters (`null` for an empty body), or
    /// `None` once a malformed body was answered with an error.
    fn options(&self, reply: &str, body: &[u8]) -> Option<Value> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Some(Value::Null);
        }
        match serde_json::from_slice(body) {
            Ok(v) => Some(v),
            Err(e) => {
                self.respond_error(reply, 400, &format!("invalid request: {e}"));
                None
            }
        }
    }

    /// A monitoring endpoint's JSON answer with its status, or `None` once a failure
    /// (any status but success, unless `any_status`) was answered as an error.
    fn answer(
        &self,
        reply: &str,
        path: &str,
        query: &str,
        any_status: bool,
    ) -> Option<(u16, Value)> {
        match self.monitor.answer(path, Some(query)) {
            Reply::Json(status, body) if status.is_success() || any_status => Some((
                status.as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )),
            Reply::Json(status, body) => {
                let text = String::from_utf8_lossy(&body);
                self.respond_error(reply, status.as_u16(), text.trim());
                None
            }
            Reply::Text(status, _, text) => {
                self.respond_error(reply, status.as_u16(), text.trim());
                None
            }
        }
    }

    async fn reload(&self) -> Result<(), String> {
        let Some(tx) = &self.reloads else {
            return Err(
                "can only reload config when a file is provided using -c or --config".into(),
            );
        };
        let (done_tx, done_rx) = oneshot::channel();
        tx.send(done_tx)
            .await
            .map_err(|_| "reload is not available".to_owned())?;
        done_rx
            .await
            .map_err(|_| "reload did not complete".to_owned())?
    }

    fn matches_filters(&self, opts: &Value) -> bool {
        let (ropts, _) = self.server.options();
        let str_filter = |key: &str, actual: &str| {
            opts.get(key)
                .and_then(Value::as_str)
                .is_none_or(|want| want.is_empty() || want == actual)
        };
        str_filter("server_name", self.server.name())
            && str_filter("host", &ropts.host)
            && str_filter("cluster", &ropts.config.cluster.name)
            && opts
                .get("tags")
                .and_then(Value::as_array)
                .is_none_or(|tags| {
                    tags.iter().filter_map(Value::as_str).all(|t| {
                        ropts
                            .config
                            .server_tags
                            .iter()
                            .any(|have| have.eq_ignore_ascii_case(t))
                    })
                })
    }

    fn info(&self) -> ServerInfo<'_> {
        server_info(&self.server)
    }

    fn statsz(&self) -> Statsz {
        let s = &self.server;
        let st = &s.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let accounts = s.all_accounts();
        let cores = crate::monitor::process::cores();
        Statsz {
            start: GoTime::of(s.started()),
            mem: crate::monitor::process::rss_bytes(),
            cores,
            cpu: GoFloat(0.0),
            connections: s.num_clients(),
            total_connections: load(&st.total_connections),
            active_accounts: accounts.iter().filter(|a| a.num_clients() > 0).count(),
            subscriptions: accounts.iter().map(|a| a.sublist.count()).sum(),
            sent: MsgBytes {
                msgs: load(&st.out_msgs),
                bytes: load(&st.out_bytes),
            },
            sent_to_clients: MsgBytes {
                msgs: load(&st.out_msgs),
                bytes: load(&st.out_bytes),
            },
            received: MsgBytes {
                msgs: load(&st.in_msgs),
                bytes: load(&st.in_bytes),
            },
            received_from_clients: MsgBytes {
                msgs: load(&st.in_msgs),
                bytes: load(&st.in_bytes),
            },
            slow_consumers: load(&st.slow_consumers),
            active_servers: 1,
            gomaxprocs: cores,
        }
    }

    fn respond_error(&self, reply: &str, code: u16, description: &str) {
        let payload = serde_json::json!({
            "server": self.info(),
            "error": ApiError { code, description: description.to_owned() },
        });
        self.publish(reply, &payload);
    }

    fn publish(&self, reply: &str, payload: &impl Serialize) {
        match serde_json::to_vec(payload) {
            Ok(bytes) => {
                self.server
                    .publish_internal(&self.server.sys_account, reply.as_bytes(), &bytes);
            }
            Err(e) => tracing::error!("system response: {e}"),
        }
    }
}

/// The endpoint options of a `$SYS` request as the HTTP query the endpoint reads.
fn to_query(endpoint: &str, opts: &Value) -> String {
    let Some(map) = opts.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let key = match (endpoint, k.as_str()) {
            ("CONNZ", "subscriptions") => "subs",
            ("CONNZ", "subscriptions_detail") => {
                if v.as_bool() == Some(true) {
                    parts.push("subs=detail".to_owned());
                }
                continue;
            }
            ("CONNZ", "state") => {
                let state = match v.as_i64() {
                    Some(1) => "closed",
                    Some(2) => "all",
                    _ => "open",
                };
                parts.push(format!("state={state}"));
                continue;
            }
            ("CONNZ", "username") => "auth",
            ("SUBSZ", "subscriptions") => "subs",
            ("ACCOUNTZ", "account") => "acc",
            ("CONNZ" | "SUBSZ", "account") => "acc",
            (_, "server_name" | "host" | "cluster" | "tags" | "domain") => continue,
            (_, other) => other,
        };
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        parts.push(format!("{key}={}", encode_component(&value)));
    }
    parts.join("&")
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~*>".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of header `name` in a header block (`NATS/1.0\r\nName: value\r\n…`).
fn header_value<'a>(headers: &'a [u8], name: &str) -> Option<&'a [u8]> {
    headers.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let (k, v) = line.split_at(colon);
        k.trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| v[1..].trim_ascii())
    })
}

/// Permissions as nats-server's `publicPermissions` shows them: both directions always
/// present (`null` when unrestricted), `responses` only when set.
fn public_permissions(p: &crate::auth::Permissions) -> Value {
    let side = |s: &Option<crate::auth::SubjectPermission>| match s {
        None => Value::Null,
        Some(s) => {
            let mut m = serde_json::Map::new();
            if let Some(allow) = &s.allow
                && !allow.is_empty()
            {
                m.insert("allow".into(), allow.clone().into());
            }
            if !s.deny.is_empty() {
                m.insert("deny".into(), s.deny.clone().into());
            }
            Value::Object(m)
        }
    };
    let mut out = serde_json::json!({
        "publish": side(&p.publish),
        "subscribe": side(&p.subscribe),
    });
    if let Some(r) = p.response {
        let ttl = r
            .expires
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        out["responses"] = serde_json::json!({
            "max": r.max_msgs.map_or(-1, i64::from),
            "ttl": ttl,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_queries() {
        let q = to_query(
            "CONNZ",
            &serde_json::json!({"subscriptions": true, "state": 1, "sort": "cid", "server_name": "x"}),
        );
        assert_eq!(q, "sort=cid&state=closed&subs=true");
    }
}
