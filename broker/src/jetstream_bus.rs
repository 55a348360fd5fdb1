//! Wires JetStream (crate `natrix-jetstream`) to the server core: its [`Bus`] is the
//! core's internal clients, and the core reads it back through `JetStreamMonitor`.
//! This file is the only place that sees both sides.

use std::sync::Arc;

use natrix_broker::server::Server;
use natrix_broker::server::internal::{InternalClient, InternalError};
use natrix_jetstream::bus::{Bus, BusError, Conn, Handler, Msg};

/// The core's internal clients as JetStream's bus.
pub struct CoreBus(pub Arc<Server>);

struct CoreConn(Arc<InternalClient>);

fn bus_error(e: InternalError) -> BusError {
    match e {
        InternalError::NoAccount(a) => BusError::NoAccount(a),
        InternalError::InvalidSubject(s) => BusError::InvalidSubject(s),
    }
}

impl Bus for CoreBus {
    fn connect(&self, account: &str, mut handler: Handler) -> Result<Arc<dyn Conn>, BusError> {
        let client = InternalClient::connect(&self.0, account, move |m| {
            handler(Msg {
                subject: String::from_utf8_lossy(&m.subject).into_owned(),
                sid: m.sid,
                reply: m.reply.map(|r| String::from_utf8_lossy(&r).into_owned()),
                headers: m.headers,
                payload: m.payload,
            });
        })
        .map_err(bus_error)?;
        Ok(Arc::new(CoreConn(client)))
    }

    fn accounts(&self) -> Vec<String> {
        self.0.account_names()
    }

    fn reply_cluster(&self, reply: &str) -> Option<String> {
        self.0.gateways()?.reply_cluster(reply.as_bytes())
    }
}

impl Conn for CoreConn {
    fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<u64, BusError> {
        self.0.subscribe(subject, queue).map_err(bus_error)
    }

    fn unsubscribe(&self, sid: u64) {
        self.0.unsubscribe(sid);
    }

    fn publish(&self, subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) {
        self.0.publish(subject, reply, headers, payload);
    }

    fn deliver(
        &self,
        to: &str,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) {
        self.0.deliver(to, subject, reply, headers, payload);
    }

    fn has_interest(&self, subject: &str) -> bool {
        self.0.has_interest(subject)
    }

    fn has_literal_interest(&self, subject: &str) -> bool {
        self.0.has_literal_interest(subject)
    }
}

/// JetStream as monitoring reads it. Monitoring answers synchronously and JetStream's
/// details come from its stream tasks, so the answer is awaited in place (the server
/// runs a multi-threaded runtime; monitoring requests are rare).
pub struct Monitor(pub natrix_jetstream::JetStream);

fn wait<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

impl natrix_broker::monitor::jsz::JetStreamMonitor for Monitor {
    fn jsz(&self, o: &natrix_broker::monitor::jsz::JszOptions) -> serde_json::Value {
        let q = natrix_jetstream::JszQuery {
            account: o.account.clone(),
            accounts: o.accounts,
            streams: o.streams,
            consumers: o.consumers,
            config: o.config,
            offset: o.offset,
            limit: o.limit,
        };
        wait(self.0.jsz(&q))
    }

    fn varz(&self) -> serde_json::Value {
        self.0.varz()
    }

    fn health(&self, o: &natrix_broker::monitor::jsz::HealthOptions) -> Result<(), String> {
        wait(self.0.health(
            o.account.as_deref(),
            o.stream.as_deref(),
            o.consumer.as_deref(),
            !o.js_enabled_only && !o.js_server_only,
        ))
    }

    fn account_enabled(&self, account: &str) -> bool {
        self.0.account_enabled(account)
    }

    fn domain(&self) -> Option<String> {
        self.0.domain()
    }

    fn api_level(&self) -> u64 {
        natrix_jetstream::API_LEVEL
    }

    fn raftz(&self) -> serde_json::Value {
        wait(self.0.raftz())
    }
}

/// JetStream's configuration from the server's options: the `jetstream {}` block,
/// `-js`/`-sd`, and which accounts get JetStream (nats-server's rule: the global
/// account when no accounts are configured, otherwise the accounts whose `jetstream`
/// is set).
pub fn config(o: &natrix_config::Options, server_name: &str) -> natrix_jetstream::Config {
    let js = &o.jetstream;
    let store_dir = if js.store_dir.is_empty() {
        std::env::temp_dir().join("nats")
    } else {
        std::path::PathBuf::from(&js.store_dir)
    };
    let mut accounts = std::collections::BTreeMap::new();
    if o.account_names.is_empty() {
        accounts.insert("$G".to_owned(), natrix_jetstream::AccountLimits::default());
    } else {
        for (name, limits) in &o.account_jetstream {
            if let Some(l) = limits {
                accounts.insert(
                    name.clone(),
                    natrix_jetstream::AccountLimits {
                        max_memory: l.max_memory,
                        max_store: l.max_store,
                        max_streams: l.max_streams,
                        max_consumers: l.max_consumers,
                        max_ack_pending: l.max_ack_pending,
                        memory_max_stream_bytes: l.memory_max_stream_bytes,
                        storage_max_stream_bytes: l.storage_max_stream_bytes,
                        max_bytes_required: l.max_bytes_required,
                    },
                );
            }
        }
    }
    natrix_jetstream::Config {
        store_dir,
        max_memory: js.max_memory,
        max_store: js.max_store,
        domain: Some(js.domain.clone()).filter(|d| !d.is_empty()),
        sync_interval_ns: i64::try_from(js.sync_interval.as_nanos()).unwrap_or(i64::MAX),
        unique_tag: Some(js.unique_tag.clone()).filter(|t| !t.is_empty()),
        strict: js.strict,
        max_pending: usize::try_from(o.max_pending).unwrap_or(64 << 20),
        store_cache_bytes: 4 << 20,
        limits: natrix_jetstream::validate::ServerLimits {
            max_duplicate_window: i64::try_from(js.limits.duplicate_window.as_nanos()).unwrap_or(0),
            max_request_batch: js.limits.max_request_batch,
            max_ack_pending: js.limits.max_ack_pending,
            max_payload: i64::from(o.max_payload),
            clustered: o.cluster.port != 0,
        },
        accounts,
        system_account: if o.system_account.is_empty() {
            "$SYS".to_owned()
        } else {
            o.system_account.clone()
        },
        server_name: server_name.to_owned(),
        version: natrix_broker::server::NATS_COMPAT_VERSION.to_owned(),
        cluster: (o.cluster.port != 0).then(|| natrix_jetstream::cluster::ClusterConfig {
            name: o.cluster.name.clone(),
            routes: o.routes.len(),
            tags: o.server_tags.clone(),
            domain: Some(js.domain.clone()).filter(|d| !d.is_empty()),
            gateways: o
                .gateway
                .gateways
                .iter()
                .map(|g| g.name.clone())
                .filter(|n| *n != o.cluster.name && *n != o.gateway.name)
                .collect(),
        }),
    }
}

/// Operator mode: an account whose JWT grants JetStream (memory or disk storage, untiered
/// or in any tier) gets it, with the JWT's limits (the R1 tier's when tiered), when the
/// JWT is loaded or pushed, as nats-server enables JetStream for such accounts.
pub fn follow_account_claims(
    server: &std::sync::Arc<natrix_broker::server::Server>,
    js: &natrix_jetstream::JetStream,
) {
    let js = js.clone();
    server.on_account_claims(Box::new(move |acc| {
        let Some(claims) = acc.claims() else { return };
        let limits = &claims.nats.limits;
        if !limits.is_jetstream_enabled() {
            return;
        }
        let l = limits
            .jetstream_tiered
            .get("R1")
            .or_else(|| limits.jetstream_tiered.values().next())
            .unwrap_or(&limits.jetstream);
        let limits = natrix_jetstream::AccountLimits {
            max_memory: l.memory_storage,
            max_store: l.disk_storage,
            max_streams: l.streams,
            max_consumers: l.consumer,
            max_ack_pending: l.max_ack_pending,
            memory_max_stream_bytes: l.memory_max_stream_bytes,
            storage_max_stream_bytes: l.disk_max_stream_bytes,
            max_bytes_required: l.max_bytes_required,
        };
        let js = js.clone();
        let name = acc.name().to_owned();
        tokio::spawn(async move {
            if let Err(e) = js.enable_account(&name, limits).await {
                tracing::error!(account = %name, "enabling JetStream: {e}");
            }
        });
    }));
}
