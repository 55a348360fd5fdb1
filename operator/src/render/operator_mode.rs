//! Operator mode in `nats.conf`: what replaces `authorization` and `accounts` when a
//! NatsCluster has Account resources.
//!
//! The server trusts the operator JWT, takes the system account from `system_account`,
//! and learns accounts from a full resolver: account JWTs pushed over
//! `$SYS.REQ.CLAIMS.UPDATE` are stored in its `dir`. The system account and every Account
//! are also in `resolver_preload`, so a restarted pod knows them before anyone pushes,
//! even when the resolver directory is an emptyDir (no JetStream file storage). A changed
//! preload is reloaded in place (natrix-server's reload rules), so Account changes never
//! restart pods; only the switch into or out of operator mode does.

use std::collections::BTreeMap;

use natrix_config::conf::{Map, Value};

use super::RenderError;
use super::config::{DATA_DIR, PID_DIR};
use crate::crd::NatsCluster;

/// Keys of `config.merge` that operator mode owns: setting them as well is refused.
pub const CONFLICTING_MERGE_KEYS: &[&str] = &[
    "authorization",
    "accounts",
    "no_auth_user",
    "operator",
    "operators",
    "trusted",
    "trusted_keys",
    "system_account",
    "resolver_preload",
];

/// What the controller looked up for operator mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorMode {
    /// The operator JWT (self-signed).
    pub operator_jwt: String,
    /// The system account's public key.
    pub system_account: String,
    /// Account public key → account JWT, the system account included.
    pub preload: BTreeMap<String, String>,
}

/// Where the full resolver keeps account JWTs: on the JetStream data volume when there is
/// one (they survive restarts), else in the pod's pid emptyDir (the preload refills it).
pub fn resolver_dir(nc: &NatsCluster) -> String {
    let file_storage = nc
        .spec
        .jetstream
        .as_ref()
        .is_some_and(|j| j.enabled && j.file_storage.is_some());
    if file_storage {
        format!("{DATA_DIR}/jwt")
    } else {
        format!("{PID_DIR}/jwt")
    }
}

/// Refuses a NatsCluster that configures users or accounts itself while Account
/// resources put it in operator mode: the two cannot both hold.
pub fn check_conflict(nc: &NatsCluster) -> Result<(), RenderError> {
    let mut found = Vec::new();
    if let Some(c) = &nc.spec.config {
        if c.authorization.is_some() {
            found.push("config.authorization".to_string());
        }
        if let Some(m) = &c.merge {
            for k in CONFLICTING_MERGE_KEYS {
                if m.contains_key(*k) {
                    found.push(format!("config.merge.{k}"));
                }
            }
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(RenderError::OperatorModeConflict(format!(
            "Account resources name this NatsCluster, so it runs in operator mode (users come from User resources), but the spec also sets {}; remove {} or the Accounts",
            found.join(", "),
            if found.len() == 1 { "it" } else { "them" }
        )))
    }
}

fn put(m: &mut Map, key: &str, v: Value) {
    m.insert(key, super::config::at(), super::config::sp(v));
}

/// Adds the operator-mode keys to the config tree.
pub fn apply(nc: &NatsCluster, root: &mut Map, om: &OperatorMode) {
    put(root, "operator", Value::String(om.operator_jwt.clone()));
    put(
        root,
        "system_account",
        Value::String(om.system_account.clone()),
    );
    let mut resolver = Map::new();
    put(&mut resolver, "type", Value::String("full".into()));
    put(&mut resolver, "dir", Value::String(resolver_dir(nc)));
    put(&mut resolver, "allow_delete", Value::Bool(false));
    root.insert(
        "resolver",
        super::config::at(),
        super::config::sp(Value::Map(resolver)),
    );
    let mut preload = Map::new();
    for (key, jwt) in &om.preload {
        put(&mut preload, key, Value::String(jwt.clone()));
    }
    root.insert(
        "resolver_preload",
        super::config::at(),
        super::config::sp(Value::Map(preload)),
    );
}
