//! Accounts: isolated subject namespaces, each with its own sublist. Until multi-account
//! configuration lands every client is in the global account `$G`, as in nats-server
//! without accounts.

use crate::server::client::Subscription;
use crate::sublist::Sublist;

pub struct Account {
    name: String,
    pub sublist: Sublist<Subscription>,
}

impl Account {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sublist: Sublist::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
