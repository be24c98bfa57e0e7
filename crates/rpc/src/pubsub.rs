//! `eth_subscribe` over WebSocket: `newHeads`, `logs` (with a filter),
//! `newPendingTransactions`, and Cairn's `cairn_fragments` (preconfirmation fragments)
//! and `cairn_transactionStatus` (tier changes). A subscriber that cannot keep up — its
//! connection's bounded message buffer full, or lagging behind the chain's bounded
//! event channel — is dropped at once; the builder never waits for anyone.

use alloy_primitives::B256;
use alloy_rpc_types_eth::Filter;
use cairn_sequencer::ChainEvent;
use jsonrpsee::core::RegisterMethodError;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{RpcModule, SubscriptionMessage, SubscriptionSink};
use serde::Serialize;
use std::collections::HashSet;
use tokio::sync::broadcast::error::RecvError;

use crate::convert::{rpc_header, rpc_logs, Place};
use crate::eth::EthApi;

/// What a subscription streams.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    NewHeads,
    Logs(Box<Filter>),
    NewPendingTransactions,
    /// Every preconfirmation fragment, with its receipts.
    Fragments,
    /// Tier changes of the listed transactions (all when `None`).
    Status(Option<HashSet<B256>>),
}

/// Most transaction hashes one status subscription may name.
pub const MAX_STATUS_HASHES: usize = 1_024;

fn parse_kind<'a>(params: &'a jsonrpsee::types::Params<'a>) -> Result<Kind, crate::RpcError> {
    let mut args = crate::params::Args::new(params);
    let name: String = args.next("subscription name")?;
    let invalid = |m: String| crate::RpcError::InvalidParams(m);
    Ok(match name.as_str() {
        "newHeads" => Kind::NewHeads,
        "logs" => Kind::Logs(Box::new(args.opt::<Filter>("filter object")?.unwrap_or_default())),
        "newPendingTransactions" => Kind::NewPendingTransactions,
        "cairn_fragments" => Kind::Fragments,
        "cairn_transactionStatus" => {
            let hashes: Option<Vec<B256>> = args.opt("transaction hashes")?;
            if hashes.as_ref().is_some_and(|h| h.len() > MAX_STATUS_HASHES) {
                return Err(invalid(format!("at most {MAX_STATUS_HASHES} transaction hashes per status subscription")));
            }
            Kind::Status(hashes.map(|h| h.into_iter().collect()))
        }
        other => return Err(invalid(format!("unsupported subscription: {other}"))),
    })
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), RegisterMethodError> {
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, api, _| async move {
            let kind = match parse_kind(&params) {
                Ok(k) => k,
                Err(e) => {
                    pending.reject(ErrorObjectOwned::from(e)).await;
                    return Ok(());
                }
            };
            let mut events = api.chain.subscribe();
            let mut sink = pending.accept().await?;
            // Transactions named by a status subscription: their status now, so that a
            // tier reached before the subscription is not missed.
            if let Kind::Status(Some(hashes)) = &kind {
                for h in hashes {
                    let now = api.chain.status(h).ok().flatten();
                    let msg = now.map(|s| crate::cairn::status_json(h, &s));
                    if let Some(msg) = msg {
                        if !try_send(&mut sink, &msg) {
                            return Ok(());
                        }
                    }
                }
            }
            loop {
                let event = tokio::select! {
                    _ = sink.closed() => break,
                    ev = events.recv() => ev,
                };
                let event = match event {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!("dropping a subscriber that lagged {n} events behind");
                        break;
                    }
                    Err(RecvError::Closed) => break,
                };
                if !forward(&mut sink, &kind, &event) {
                    break;
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Sends what `event` means to a subscriber of `kind`; `false` drops the subscriber
/// (its buffer is full or it is gone).
fn forward(sink: &mut SubscriptionSink, kind: &Kind, event: &ChainEvent) -> bool {
    use crate::cairn::{fragment_json, status_change_json};
    use cairn_sequencer::Tier;
    let wants = |h: &B256| match kind {
        Kind::Status(Some(set)) => set.contains(h),
        _ => true,
    };
    match (kind, event) {
        (Kind::NewHeads, ChainEvent::Block(block)) => try_send(sink, &rpc_header(block.header.clone(), block.hash)),
        (Kind::Logs(filter), ChainEvent::Block(block)) => {
            for (i, (hash, receipt)) in block.tx_hashes.iter().zip(&block.receipts).enumerate() {
                for log in rpc_logs(receipt, *hash, Place::sealed(&block.header, block.hash, i as u64)) {
                    if filter.matches(&log.inner) && !try_send(sink, &log) {
                        return false;
                    }
                }
            }
            true
        }
        (Kind::NewPendingTransactions, ChainEvent::Received { hash, ready: true, .. }) => try_send(sink, hash),
        (Kind::Fragments, ChainEvent::Fragment(part)) => try_send(sink, &fragment_json(part, true)),
        (Kind::Status(_), ChainEvent::Received { hash, at_ms, .. }) if wants(hash) => {
            try_send(sink, &status_change_json(hash, Tier::Received, *at_ms, None, None))
        }
        (Kind::Status(_), ChainEvent::Fragment(part)) => {
            let f = part.fragment();
            part.body.iter().enumerate().filter(|(_, (h, _, _))| wants(h)).all(|(i, (h, _, _))| {
                let position = u64::from(f.first_tx) + i as u64;
                try_send(sink, &status_change_json(h, Tier::Preconfirmed, part.at_ms, Some((f.height, position)), None))
            })
        }
        (Kind::Status(_), ChainEvent::Sequenced(block)) => {
            block.tx_hashes.iter().enumerate().filter(|(_, h)| wants(h)).all(|(i, h)| {
                let place = Some((block.number, i as u64));
                try_send(sink, &status_change_json(h, Tier::Sequenced, block.at_ms, place, None))
            })
        }
        (Kind::Status(_), ChainEvent::Block(block)) => {
            let at = cairn_sequencer::now_ms();
            block.tx_hashes.iter().enumerate().filter(|(_, h)| wants(h)).all(|(i, h)| {
                let place = Some((block.header.number, i as u64));
                try_send(sink, &status_change_json(h, Tier::Sealed, at, place, None))
            })
        }
        (Kind::Status(_), ChainEvent::Firm(firm)) => {
            firm.txs.iter().filter(|(h, _, _)| wants(h)).all(|(h, block, position)| {
                try_send(sink, &status_change_json(h, Tier::Firm, firm.at_ms, Some((*block, *position)), None))
            })
        }
        (Kind::Status(_), ChainEvent::Retracted(r)) => {
            r.txs.iter().filter(|(h, _, _)| wants(h)).all(|(h, block, position)| {
                let place = Some((*block, *position));
                try_send(sink, &status_change_json(h, Tier::Retracted, r.at_ms, place, Some(&r.reason)))
            })
        }
        (Kind::Status(_), ChainEvent::Dropped { hash, reason, at_ms }) if wants(hash) => {
            try_send(sink, &status_change_json(hash, Tier::Dropped, *at_ms, None, Some(reason)))
        }
        _ => true,
    }
}

/// Queues a notification without waiting: a subscriber whose buffer is full is dropped
/// (the builder and the other subscribers never wait for it).
fn try_send<T: Serialize>(sink: &mut SubscriptionSink, value: &T) -> bool {
    let Ok(raw) = serde_json::value::to_raw_value(value) else { return false };
    match sink.try_send(SubscriptionMessage::from(raw)) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("dropping a subscriber: {e}");
            false
        }
    }
}
