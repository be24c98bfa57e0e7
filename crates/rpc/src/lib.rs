//! JSON-RPC over HTTP and WebSocket on one port (jsonrpsee): the `eth_*`, `net_*` and
//! `web3_*` methods wallets and tools use, with geth's semantics and error codes.
//! See `docs/RPC.md` for the method list, the bounds and the error table.

mod blocks;
mod budget;
mod cairn;
mod config;
mod convert;
mod dev;
mod dev_accounts;
mod error;
mod eth;
mod filter_store;
mod filters;
mod ids;
mod module;
mod overrides;
mod params;
mod pubsub;
mod shared;
mod simulate;
mod trace;
mod txpool;

pub use cairn::{DEFAULT_PRECONF_WAIT, MAX_PRECONF_WAIT};
pub use dev::{MAX_MINE_BLOCKS, MINE_WAIT};
pub use dev_accounts::DevMode;
pub use error::RpcError;
pub use eth::{EthApi, RpcLimits, MAX_PROOF_KEYS};
pub use filter_store::{Filters, FILTER_TIMEOUT, MAX_FILTERS};
pub use pubsub::MAX_STATUS_HASHES;
pub use shared::{decided_json, SharedApi};
pub use simulate::{MAX_SIMULATED_BLOCKS, MAX_SIMULATED_CALLS};
pub use trace::{MAX_TRACE_FILTER_BLOCKS, MAX_TRACE_FILTER_RESULTS};
pub use txpool::MAX_TXPOOL_CONTENT;

use cairn_sequencer::{Chain, Ingress};
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, stop_channel, BatchRequestConfig, PingConfig, Server, ServerConfig, ServerHandle,
};
use std::net::SocketAddr;
use std::sync::Arc;

/// Server-level bounds.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_request_bytes: u32,
    pub max_response_bytes: u32,
    pub max_connections: u32,
    pub max_batch: u32,
    pub max_subscriptions_per_connection: u32,
    /// Bytes of answers a connection may hold unread before it is disconnected (one
    /// answer with nothing else unread is always delivered; see `budget`).
    pub unsent_bytes_per_connection: usize,
    /// Calls one connection runs at once (more wait their turn).
    pub calls_per_connection: usize,
    /// Messages a WebSocket connection's outgoing buffer holds.
    pub message_buffer: u32,
    /// WebSocket ping interval; a client silent for twice as long is disconnected.
    pub ws_ping: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 10 * 1024 * 1024,
            max_response_bytes: 50 * 1024 * 1024,
            max_connections: 1_000,
            max_batch: 1_000,
            max_subscriptions_per_connection: 64,
            unsent_bytes_per_connection: 32 * 1024 * 1024,
            calls_per_connection: budget::DEFAULT_CALLS_PER_CONNECTION,
            message_buffer: 256,
            ws_ping: std::time::Duration::from_secs(30),
        }
    }
}

/// Starts the HTTP + WebSocket server on `addr`; returns its bound address and handle.
pub async fn start(
    addr: SocketAddr,
    chain: Arc<Chain>,
    ingress: Ingress,
    limits: RpcLimits,
    server_limits: ServerLimits,
    dev: Option<DevMode>,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let mut api = EthApi::new(chain, ingress, limits);
    if let Some(dev) = dev {
        api = api.with_dev(dev);
    }
    let methods: jsonrpsee::Methods = api.into_module().map_err(|e| std::io::Error::other(e.to_string()))?.into();
    serve(addr, methods, server_limits).await
}

/// Starts the JSON-RPC server of a shared set's node (`SharedApi`) on `addr`.
pub async fn start_shared(
    addr: SocketAddr,
    lazy: Arc<cairn_sequencer::Lazy>,
    genesis: serde_json::Value,
    server_limits: ServerLimits,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let methods: jsonrpsee::Methods =
        SharedApi { lazy, genesis }.into_module().map_err(|e| std::io::Error::other(e.to_string()))?.into();
    serve(addr, methods, server_limits).await
}

async fn serve(
    addr: SocketAddr,
    methods: jsonrpsee::Methods,
    server_limits: ServerLimits,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let config = ServerConfig::builder()
        .max_request_body_size(server_limits.max_request_bytes)
        .max_response_body_size(server_limits.max_response_bytes)
        .max_connections(server_limits.max_connections)
        .max_subscriptions_per_connection(server_limits.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(server_limits.max_batch))
        .set_id_provider(ids::HexIdProvider::new())
        .set_message_buffer_capacity(server_limits.message_buffer)
        .enable_ws_ping(
            PingConfig::new()
                .ping_interval(server_limits.ws_ping)
                .inactive_limit(server_limits.ws_ping * 2)
                .max_failures(1),
        )
        .build();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let services = Server::builder().set_config(config).to_service_builder();
    let budget = server_limits.unsent_bytes_per_connection;
    let calls = server_limits.calls_per_connection;
    let (stop, handle) = stop_channel();
    // Connections are accepted here rather than by jsonrpsee, so that each one's stream
    // counts what its socket takes against the connection's answer budget (`budget`).
    tokio::spawn(async move {
        loop {
            let (socket, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: the listener stays.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::task::yield_now().await;
                        continue;
                    }
                },
                _ = stop.clone().shutdown() => break,
            };
            let _ = socket.set_nodelay(true);
            let backlog = std::sync::Arc::new(budget::Backlog::new(calls));
            let counted = backlog.clone();
            let middleware =
                RpcServiceBuilder::new().layer_fn(move |service| budget::Budget::new(service, counted.clone(), budget));
            let service = services.clone().set_rpc_middleware(middleware).build(methods.clone(), stop.clone());
            let stopped = stop.clone().shutdown();
            tokio::spawn(async move {
                let io = budget::Counted::new(socket, backlog);
                if let Err(e) = serve_with_graceful_shutdown(io, service, stopped).await {
                    tracing::debug!("connection closed: {e}");
                }
            });
        }
    });
    Ok((local, handle))
}
