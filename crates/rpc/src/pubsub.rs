//! `eth_subscribe` over WebSocket: `newHeads`, `logs` (with a filter) and
//! `newPendingTransactions`. A subscriber that cannot keep up — its buffer full for
//! longer than [`SEND_TIMEOUT`], or lagging behind the chain's bounded event channel —
//! is dropped; the builder never waits for anyone.

use alloy_rpc_types_eth::pubsub::SubscriptionKind;
use alloy_rpc_types_eth::Filter;
use cairn_sequencer::ChainEvent;
use jsonrpsee::core::RegisterMethodError;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{RpcModule, SubscriptionMessage, SubscriptionSink};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use crate::convert::{rpc_header, rpc_logs};
use crate::eth::EthApi;

/// How long a send may wait on a full subscriber buffer before the subscriber is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Subscription ids as geth makes them: `0x` and 32 hex digits (clients such as viem
/// expect a string), unpredictable across restarts.
#[derive(Debug)]
pub struct HexIdProvider {
    seed: [u8; 32],
    counter: std::sync::atomic::AtomicU64,
}

impl HexIdProvider {
    pub fn new() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = alloy_primitives::keccak256(
            [now.as_nanos().to_be_bytes(), u128::from(std::process::id()).to_be_bytes()].concat(),
        );
        Self { seed: seed.0, counter: std::sync::atomic::AtomicU64::new(0) }
    }
}

impl Default for HexIdProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = alloy_primitives::keccak256([self.seed.as_slice(), &n.to_be_bytes()].concat());
        jsonrpsee::types::SubscriptionId::Str(format!("0x{}", alloy_primitives::hex::encode(&id[..16])).into())
    }
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), RegisterMethodError> {
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, api, _| async move {
            let mut seq = params.sequence();
            let kind: SubscriptionKind = match seq.next() {
                Ok(k) => k,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let filter: Filter = match seq.optional_next::<Filter>() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            if !matches!(
                kind,
                SubscriptionKind::NewHeads | SubscriptionKind::Logs | SubscriptionKind::NewPendingTransactions
            ) {
                pending
                    .reject(ErrorObjectOwned::owned(-32602, format!("unsupported subscription: {kind:?}"), None::<()>))
                    .await;
                return Ok(());
            }
            let mut events = api.chain.subscribe();
            let sink = pending.accept().await?;
            loop {
                let event = tokio::select! {
                    _ = sink.closed() => break,
                    ev = events.recv() => ev,
                };
                let ok = match event {
                    Ok(ChainEvent::Block(block)) => match kind {
                        SubscriptionKind::NewHeads => send(&sink, &rpc_header(block.header.clone(), block.hash)).await,
                        SubscriptionKind::Logs => {
                            let mut ok = true;
                            for (i, (hash, receipt)) in block.tx_hashes.iter().zip(&block.receipts).enumerate() {
                                for log in rpc_logs(receipt, *hash, i as u64, &block.header, block.hash) {
                                    if ok && filter.matches(&log.inner) {
                                        ok = send(&sink, &log).await;
                                    }
                                }
                            }
                            ok
                        }
                        _ => true,
                    },
                    Ok(ChainEvent::PendingTx(hash)) if kind == SubscriptionKind::NewPendingTransactions => {
                        send(&sink, &hash).await
                    }
                    Ok(_) => true,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!("dropping a subscriber that lagged {n} events behind");
                        false
                    }
                    Err(RecvError::Closed) => false,
                };
                if !ok {
                    break;
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

async fn send<T: Serialize>(sink: &SubscriptionSink, value: &T) -> bool {
    let Ok(raw) = serde_json::value::to_raw_value(value) else { return false };
    sink.send_timeout(SubscriptionMessage::from(raw), SEND_TIMEOUT).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::core::traits::IdProvider;

    #[test]
    fn subscription_ids_look_like_geths() {
        let ids = HexIdProvider::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        let jsonrpsee::types::SubscriptionId::Str(s) = &a else { panic!("not a string id") };
        assert_eq!(s.len(), 34);
        assert!(s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
