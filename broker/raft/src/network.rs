//! openraft's network for one group: a thin adapter over the server's shared
//! [`Transport`], naming the group in every request (the 0.9 counterpart of
//! `openraft-multi`'s `GroupNetworkAdapter`).
//!
//! Errors map to what openraft expects: no route, a closed transport or a refusal by the
//! target's transport become `Unreachable` (openraft backs off before retrying); no reply
//! in time becomes `Timeout`; an `AppendEntries` above the payload limit becomes
//! `PayloadTooLarge` with half the entries as the hint, so openraft resends smaller
//! batches; the target's Raft errors come back as `RemoteError`.

use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};

use crate::transport::{SendError, Transport, TransportConfig};
use crate::wire::RpcKind;

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// The `RaftNetworkFactory` of one group on one server.
pub struct GroupNetwork<C: TransportConfig> {
    transport: Transport<C>,
    group: Arc<str>,
}

impl<C: TransportConfig> GroupNetwork<C> {
    pub fn new(transport: Transport<C>, group: Arc<str>) -> Self {
        Self { transport, group }
    }
}

impl<C: TransportConfig> RaftNetworkFactory<C> for GroupNetwork<C> {
    type Network = GroupConnection<C>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> GroupConnection<C> {
        GroupConnection {
            transport: self.transport.clone(),
            group: self.group.clone(),
            target,
            server: node.addr.clone(),
        }
    }
}

/// The connection from one group member to another: the target's node id and the server
/// it runs on (the `addr` of its `BasicNode`).
pub struct GroupConnection<C: TransportConfig> {
    transport: Transport<C>,
    group: Arc<str>,
    target: u64,
    server: String,
}

impl<C: TransportConfig> GroupConnection<C> {
    async fn call<Req, Resp, E>(
        &self,
        kind: RpcKind,
        rpc: Req,
        option: &RPCOption,
    ) -> Result<Resp, Result<RpcErr<E>, SendError>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: serde::de::DeserializeOwned + std::error::Error,
    {
        let result = self
            .transport
            .request::<Req, Resp, E>(
                &self.server,
                self.target,
                &self.group,
                kind,
                rpc,
                option.hard_ttl(),
            )
            .await;
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(Ok(RPCError::RemoteError(RemoteError::new(self.target, e)))),
            Err(e) => Err(Err(e)),
        }
    }

    /// The openraft error for a transport failure of an RPC of type `action`.
    fn map<E: std::error::Error>(&self, action: RPCTypes, e: SendError) -> RpcErr<E> {
        tracing::trace!(group = %self.group, target = self.target, ?action, "raft rpc failed: {e}");
        match e {
            SendError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.transport.node_id(),
                target: self.target,
                timeout,
            }),
            e => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }
}

impl<C: TransportConfig> RaftNetwork<C> for GroupConnection<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        let entries = rpc.entries.len() as u64;
        let kind = if entries == 0 && !self.transport.options().heartbeat_window.is_zero() {
            RpcKind::Heartbeats
        } else {
            RpcKind::AppendEntries
        };
        match self.call(kind, rpc, &option).await {
            Ok(resp) => Ok(resp),
            Err(Ok(e)) => Err(e),
            Err(Err(e @ SendError::TooLarge { .. })) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(entries / 2).with_source_error(&e),
                ))
            }
            Err(Err(e)) => Err(self.map(RPCTypes::AppendEntries, e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        match self.call(RpcKind::InstallSnapshot, rpc, &option).await {
            Ok(resp) => Ok(resp),
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => Err(self.map(RPCTypes::InstallSnapshot, e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self.call(RpcKind::Vote, rpc, &option).await {
            Ok(resp) => Ok(resp),
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => Err(self.map(RPCTypes::Vote, e)),
        }
    }
}
