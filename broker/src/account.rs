//! Accounts: isolated subject namespaces, each with its own sublist and traffic counters.
//! Clients land in the account their user is bound to (`accounts {}` in the config), or
//! in the global account `$G`; `$SYS` exists for the system account.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

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
}

impl Account {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sublist: Sublist::new(),
            stats: AccountStats::default(),
            created: SystemTime::now(),
        }
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
