//! The group router: group name → the local `Raft` handle, one per server.
//!
//! One subscription per server receives the Raft requests of every group; the router is
//! how the transport finds the member a request is for. A group is in the router exactly
//! while its `Raft` runs here: a request for any other group is refused, and the sender
//! sees the member as unreachable.

use std::collections::HashMap;
use std::sync::Arc;

use openraft::{Raft, RaftTypeConfig};
use parking_lot::RwLock;

/// The running groups of one server, by name.
pub struct GroupRouter<C: RaftTypeConfig> {
    groups: RwLock<HashMap<Arc<str>, Raft<C>>>,
}

impl<C: RaftTypeConfig> Default for GroupRouter<C> {
    fn default() -> Self {
        Self {
            groups: RwLock::new(HashMap::new()),
        }
    }
}

impl<C: RaftTypeConfig> GroupRouter<C> {
    /// Routes requests for `group` to `raft` (replacing a previous handle).
    pub fn insert(&self, group: Arc<str>, raft: Raft<C>) {
        self.groups.write().insert(group, raft);
    }

    /// Stops routing to `group`; returns its handle.
    pub fn remove(&self, group: &str) -> Option<Raft<C>> {
        self.groups.write().remove(group)
    }

    /// The handle requests for `group` go to.
    pub fn get(&self, group: &str) -> Option<Raft<C>> {
        self.groups.read().get(group).cloned()
    }

    /// How many groups are routed.
    pub fn len(&self) -> usize {
        self.groups.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.read().is_empty()
    }

    /// Removes every group (the transport is closing) and returns their handles.
    pub fn drain(&self) -> Vec<(Arc<str>, Raft<C>)> {
        self.groups.write().drain().collect()
    }
}
