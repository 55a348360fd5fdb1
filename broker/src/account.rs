//! Accounts: isolated subject namespaces, each with its own sublist and traffic counters.
//! Clients land in the account their user is bound to (`accounts {}` in the config), or
//! in the global account `$G`; `$SYS` exists for the system account.
//!
//! An account also holds its subject mappings (`mappings {}`): what clients and leaf
//! nodes publish in the account is mapped before it is matched, as nats-server's
//! `selectMappedSubject` does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use natrix_transform::Mappings;
use parking_lot::RwLock;

use crate::imports::{Links, Responses};
use crate::server::client::Subscription;
use crate::sublist::Sublist;

/// Per-account traffic, as `/accstatz` reports it.
#[derive(Debug, Default)]
pub struct AccountStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// Client connections bound to the account now.
    pub clients: AtomicU64,
}

pub struct Account {
    name: String,
    pub sublist: Sublist<Subscription>,
    pub stats: AccountStats,
    created: SystemTime,
    /// Whether `mappings` has any: the publish path reads only this flag when there are
    /// none (the common case), so unmapped accounts pay no lock and no allocation.
    has_mappings: AtomicBool,
    mappings: RwLock<Arc<Mappings>>,
    /// Whether `links` has any: as with mappings, accounts without imports pay one load.
    has_links: AtomicBool,
    links: RwLock<Arc<Links>>,
    /// The way back for replies to requests that came in through service imports.
    pub responses: Responses,
    /// Operator mode: the account's JWT and its decoded claims.
    claims: RwLock<Option<(Arc<natrix_jwt::AccountClaims>, String)>>,
    /// Bumped at each claims change, so connected clients re-check themselves.
    claims_gen: AtomicU64,
}

impl Account {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sublist: Sublist::new(),
            stats: AccountStats::default(),
            created: SystemTime::now(),
            has_mappings: AtomicBool::new(false),
            mappings: RwLock::new(Arc::new(Mappings::default())),
            has_links: AtomicBool::new(false),
            links: RwLock::new(Arc::new(Links::default())),
            responses: Responses::new(),
            claims: RwLock::new(None),
            claims_gen: AtomicU64::new(0),
        }
    }

    /// Installs the account's (verified) JWT; connected clients re-check against it.
    pub fn set_claims(&self, claims: natrix_jwt::AccountClaims, jwt: String) {
        *self.claims.write() = Some((Arc::new(claims), jwt));
        self.claims_gen.fetch_add(1, Ordering::Release);
    }

    /// The account's JWT claims, in operator mode.
    pub fn claims(&self) -> Option<Arc<natrix_jwt::AccountClaims>> {
        self.claims.read().as_ref().map(|(c, _)| c.clone())
    }

    /// The account's JWT as the resolver gave it.
    pub fn jwt(&self) -> Option<String> {
        self.claims.read().as_ref().map(|(_, j)| j.clone())
    }

    /// Changes with every new JWT.
    pub fn claims_gen(&self) -> u64 {
        self.claims_gen.load(Ordering::Acquire)
    }

    /// Replaces the imports that start in this account (start-up and reload).
    pub fn set_links(&self, links: Links) {
        let has = !links.is_empty();
        *self.links.write() = Arc::new(links);
        self.has_links.store(has, Ordering::Release);
    }

    /// The streams others import from this account and the services it imports.
    pub fn links(&self) -> Arc<Links> {
        self.links.read().clone()
    }

    /// Whether a publish here may have to cross into another account.
    #[inline]
    pub fn has_links(&self) -> bool {
        self.has_links.load(Ordering::Relaxed)
    }

    /// Replaces the account's subject mappings (start-up and config reload); publishes
    /// after this use the new ones.
    pub fn set_mappings(&self, mappings: Mappings) {
        let has = !mappings.is_empty();
        *self.mappings.write() = Arc::new(mappings);
        self.has_mappings.store(has, Ordering::Release);
    }

    /// The account's subject mappings, for monitoring.
    pub fn mappings(&self) -> Arc<Mappings> {
        self.mappings.read().clone()
    }

    /// The subject a publish to `subject` goes to when a mapping matches it; `None`
    /// leaves the subject as it is. `cluster` is this server's cluster name, for
    /// cluster-scoped destinations. An empty result means the message goes nowhere (a
    /// weighted mapping that drops part of the traffic on purpose).
    #[inline]
    pub fn map_subject(&self, subject: &[u8], cluster: &str) -> Option<Vec<u8>> {
        if !self.has_mappings.load(Ordering::Relaxed) {
            return None;
        }
        self.mappings.read().select(subject, cluster)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the account was set up (`/accountz` `update_time`).
    pub fn created(&self) -> SystemTime {
        self.created
    }

    pub fn num_clients(&self) -> usize {
        usize::try_from(self.stats.clients.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }
}
