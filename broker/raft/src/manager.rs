//! The group manager: a server's Raft groups on its one [`RaftDb`] and its one
//! [`Transport`].
//!
//! It opens (or creates) a group by name, starts its `Raft` with a [`GroupNetwork`] and
//! routes the group's incoming requests to it; it stops and removes groups; on shutdown it
//! stops them all and closes the transport.
//!
//! Node ids: every member a server runs has the same node id, the server's, stored in its
//! database ([`RaftDb::node_id`]): chosen at random when the database is created, kept
//! for its life, so a server that restarts keeps its id and a server whose database was
//! wiped comes back as a new node (never under an id that promised votes and entries it
//! has lost). A node's `BasicNode::addr` is the server id its requests are sent to
//! (`$NRG.<server id>.…`); [`GroupManager::node`] gives the pair to put in a membership.

use std::collections::HashMap;
use std::sync::Arc;

use openraft::error::Fatal;
use openraft::{BasicNode, Config, Raft};

use crate::bus::RaftBus;
use crate::db::{GroupId, RaftDb};
use crate::error::StoreError;
use crate::log_store::LogStore;
use crate::network::GroupNetwork;
use crate::state_machine::{StateMachine, StateMachineStore, StoreConfig};
use crate::transport::{Transport, TransportConfig, TransportError, TransportOptions};

/// The type configs a manager runs: storable and carried by the transport.
pub trait GroupConfig: StoreConfig + TransportConfig {}
impl<T> GroupConfig for T where T: StoreConfig + TransportConfig {}

/// What a manager fails with.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("raft storage: {0}")]
    Store(#[from] StoreError),
    #[error("raft transport: {0}")]
    Transport(#[from] TransportError),
    #[error("raft: {0}")]
    Raft(#[from] Fatal<u64>),
    #[error("invalid raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("the group manager is shut down")]
    ShutDown,
}

/// How a manager runs.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// This server's id: a subject token, the `addr` of its members' `BasicNode`.
    pub server_id: String,
    /// The Raft config of every group (validated on start).
    pub raft: Config,
    pub transport: TransportOptions,
}

/// One running group on this server.
pub struct RaftGroup<C: GroupConfig, S: StateMachine<C>> {
    pub name: Arc<str>,
    /// The group's id in this server's database (local: other servers number it
    /// differently).
    pub id: GroupId,
    pub raft: Raft<C>,
    pub state: StateMachineStore<C, S>,
}

impl<C: GroupConfig, S: StateMachine<C>> Clone for RaftGroup<C, S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            id: self.id,
            raft: self.raft.clone(),
            state: self.state.clone(),
        }
    }
}

/// A server's Raft groups.
pub struct GroupManager<C: GroupConfig, S: StateMachine<C>> {
    db: RaftDb,
    transport: Transport<C>,
    config: Arc<Config>,
    /// Serialises open/stop/remove, so a group is never started twice; `None` after
    /// shutdown.
    groups: tokio::sync::Mutex<Option<Running<C, S>>>,
}

/// The groups running on a server, by name.
type Running<C, S> = HashMap<Arc<str>, RaftGroup<C, S>>;

impl<C: GroupConfig, S: StateMachine<C>> GroupManager<C, S> {
    /// Starts the manager of the server using `db`: reads (or makes) its node id and
    /// starts its transport on `bus`. No group runs until opened.
    pub async fn start(
        db: RaftDb,
        bus: &dyn RaftBus,
        options: ManagerOptions,
    ) -> Result<Self, ManagerError> {
        let config = Arc::new(options.raft.validate()?);
        let node_id = db.node_id().await?;
        let transport = Transport::start(bus, &options.server_id, node_id, options.transport)?;
        tracing::info!(server = %options.server_id, node = node_id, "raft group manager started");
        Ok(Self {
            db,
            transport,
            config,
            groups: tokio::sync::Mutex::new(Some(HashMap::new())),
        })
    }

    /// This server's node id in every group.
    pub fn node_id(&self) -> u64 {
        self.transport.node_id()
    }

    pub fn server_id(&self) -> &str {
        self.transport.server_id()
    }

    /// This server as a membership entry: (node id, node whose `addr` is the server id).
    pub fn node(&self) -> (u64, BasicNode) {
        (self.node_id(), BasicNode::new(self.server_id()))
    }

    pub fn db(&self) -> &RaftDb {
        &self.db
    }

    pub fn transport(&self) -> &Transport<C> {
        &self.transport
    }

    /// Opens the group called `name` (creating its records if new) and starts its member
    /// here; returns the running group if it already is.
    pub async fn open_group(&self, name: &str) -> Result<RaftGroup<C, S>, ManagerError> {
        let mut guard = self.groups.lock().await;
        let groups = guard.as_mut().ok_or(ManagerError::ShutDown)?;
        if let Some(g) = groups.get(name) {
            return Ok(g.clone());
        }
        let name: Arc<str> = Arc::from(name);
        let id = self.db.group(&name).await?;
        let log: LogStore<C> = self.db.log_store(id);
        let state: StateMachineStore<C, S> = self.db.state_machine(id)?;
        let network = GroupNetwork::new(self.transport.clone(), name.clone());
        let raft = Raft::new(
            self.node_id(),
            self.config.clone(),
            network,
            log,
            state.clone(),
        )
        .await?;
        self.transport.router().insert(name.clone(), raft.clone());
        let group = RaftGroup {
            name: name.clone(),
            id,
            raft,
            state,
        };
        groups.insert(name, group.clone());
        tracing::debug!(group = %group.name, id = %id, "raft group started");
        Ok(group)
    }

    /// Starts every group stored in the database (after a restart).
    pub async fn open_stored_groups(&self) -> Result<Vec<RaftGroup<C, S>>, ManagerError> {
        let mut out = Vec::new();
        for (name, _) in self.db.groups()? {
            out.push(self.open_group(&name).await?);
        }
        Ok(out)
    }

    /// The running group called `name`.
    pub async fn group(&self, name: &str) -> Option<RaftGroup<C, S>> {
        self.groups.lock().await.as_ref()?.get(name).cloned()
    }

    /// Every running group.
    pub async fn groups(&self) -> Vec<RaftGroup<C, S>> {
        self.groups
            .lock()
            .await
            .as_ref()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops the member of `name` here, keeping its records; false if it was not running.
    pub async fn stop_group(&self, name: &str) -> Result<bool, ManagerError> {
        let mut guard = self.groups.lock().await;
        let groups = guard.as_mut().ok_or(ManagerError::ShutDown)?;
        let Some(group) = groups.remove(name) else {
            return Ok(false);
        };
        self.stop(group).await;
        Ok(true)
    }

    /// Stops the member of `name` here and deletes its records; its local group id is
    /// never given out again. False if no such group is stored.
    pub async fn remove_group(&self, name: &str) -> Result<bool, ManagerError> {
        let mut guard = self.groups.lock().await;
        let groups = guard.as_mut().ok_or(ManagerError::ShutDown)?;
        if let Some(group) = groups.remove(name) {
            self.stop(group).await;
        }
        let Some(id) = self.db.lookup_group(name)? else {
            return Ok(false);
        };
        self.db.remove_group(id).await?;
        tracing::info!(group = name, id = %id, "raft group removed");
        Ok(true)
    }

    /// Stops every group and closes the transport. The database stays open until the
    /// last handle to it is dropped.
    pub async fn shutdown(&self) {
        let Some(groups) = self.groups.lock().await.take() else {
            return;
        };
        // Stop routing first, so no request reaches a member being shut down.
        for name in groups.keys() {
            self.transport.router().remove(name);
        }
        for group in groups.into_values() {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(group = %group.name, "raft shutdown: {e}");
            }
        }
        self.transport.close();
        tracing::info!(server = %self.server_id(), "raft group manager shut down");
    }

    async fn stop(&self, group: RaftGroup<C, S>) {
        self.transport.router().remove(&group.name);
        if let Err(e) = group.raft.shutdown().await {
            tracing::warn!(group = %group.name, "raft shutdown: {e}");
        }
        tracing::debug!(group = %group.name, "raft group stopped");
    }
}
