//! Polling filters with geth's semantics: `eth_newFilter`, `eth_newBlockFilter`,
//! `eth_newPendingTransactionFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`,
//! `eth_uninstallFilter`.
//!
//! A log or block filter keeps only a cursor, the next sealed block it has not
//! reported: its changes are read from the store (the log index) when polled, so an
//! idle filter costs a few bytes however busy the chain is. Sealed blocks are final, so
//! a log is never reported `removed`. Pending-transaction filters share one bounded
//! ring of the newest admitted hashes, fed by one task from the chain's events; a
//! filter polled too rarely to keep up loses the oldest (documented in `docs/RPC.md`).
//! Every filter expires after [`FILTER_TIMEOUT`] without a poll (geth's five minutes),
//! and at most [`MAX_FILTERS`] exist at once.

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption};
use cairn_primitives::StateView;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

use crate::eth::EthApi;
use crate::filter_store::*;
use crate::params::Args;
use crate::RpcError;

impl EthApi {
    /// Starts (once) the task that records admitted transactions for pending filters.
    fn feed_pending(&self) {
        if self.filters.feeding.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.filters.feeding.store(false, std::sync::atomic::Ordering::Release);
            return;
        };
        let mut events = self.chain.subscribe();
        let ring = self.filters.pending.clone();
        handle.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(cairn_sequencer::ChainEvent::Received { hash, ready: true, .. }) => ring.lock().push(hash),
                    Ok(_) => {}
                    // Missed hashes are lost to the filters, as when the ring overflows.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    pub fn new_filter(&self, filter: Filter) -> Result<String, RpcError> {
        let head = self.chain.latest().0.number;
        let next = match filter.block_option {
            FilterBlockOption::Range { from_block: Some(BlockNumberOrTag::Number(n)), .. } => n.max(head + 1),
            _ => head + 1,
        };
        self.filters.install(Kind::Logs { filter: Box::new(filter), next })
    }

    pub fn new_block_filter(&self) -> Result<String, RpcError> {
        let next = self.chain.latest().0.number + 1;
        self.filters.install(Kind::Blocks { next })
    }

    pub fn new_pending_filter(&self) -> Result<String, RpcError> {
        self.feed_pending();
        let next = self.filters.pending.lock().end();
        self.filters.install(Kind::Pending { next })
    }

    /// What happened since the last poll of filter `id`.
    pub fn filter_changes(&self, id: &str) -> Result<Value, RpcError> {
        let head = self.chain.latest().0.number;
        self.filters.with(id, |kind| match kind {
            Kind::Logs { filter, next } => {
                let to = match filter.block_option {
                    FilterBlockOption::Range { to_block: Some(BlockNumberOrTag::Number(n)), .. } => n.min(head),
                    FilterBlockOption::AtBlockHash(_) => return Ok(json!([])),
                    _ => head,
                };
                if *next > to {
                    return Ok(json!([]));
                }
                // A filter polled rarely on a busy chain is read in bounded steps.
                let to = to.min(*next + self.limits.max_log_range - 1);
                let reader = self.chain.store.reader()?;
                let logs = self.logs_in(&reader, filter, *next, to)?;
                *next = to + 1;
                Ok(json!(logs))
            }
            Kind::Blocks { next } => {
                if *next > head {
                    return Ok(json!([]));
                }
                let from = (*next).max((head + 1).saturating_sub(MAX_BLOCK_CHANGES));
                let reader = self.chain.store.reader()?;
                let mut hashes = Vec::with_capacity((head + 1 - from) as usize);
                for n in from..=head {
                    hashes.push(reader.block_hash(n).map_err(|e| RpcError::Internal(e.to_string()))?);
                }
                *next = head + 1;
                Ok(json!(hashes))
            }
            Kind::Pending { next } => {
                let ring = self.filters.pending.lock();
                let hashes = ring.since(*next);
                *next = ring.end();
                Ok(json!(hashes))
            }
        })
    }

    /// `eth_uninstallFilter`: whether there was such a filter.
    pub fn uninstall_filter(&self, id: &str) -> bool {
        self.filters.uninstall(id)
    }

    /// Every log the log filter `id` matches (as `eth_getLogs` with its criteria).
    pub fn filter_logs(&self, id: &str) -> Result<Vec<alloy_rpc_types_eth::Log>, RpcError> {
        let filter = self.filters.with(id, |kind| match kind {
            Kind::Logs { filter, .. } => Ok(filter.clone()),
            _ => Err(RpcError::Server("filter not found".into())),
        })?;
        self.logs(&filter)
    }
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("eth_newFilter", |p, api, _| {
        let filter: Filter = Args::new(&p).next("filter object")?;
        api.new_filter(filter)
    })?;
    m.register_method("eth_newBlockFilter", |_, api, _| api.new_block_filter())?;
    m.register_method("eth_newPendingTransactionFilter", |_, api, _| api.new_pending_filter())?;
    m.register_blocking_method("eth_getFilterChanges", |p, api, _| {
        let id: String = Args::new(&p).next("filter id")?;
        api.filter_changes(&id)
    })?;
    m.register_blocking_method("eth_getFilterLogs", |p, api, _| {
        let id: String = Args::new(&p).next("filter id")?;
        api.filter_logs(&id)
    })?;
    m.register_method("eth_uninstallFilter", |p, api, _| {
        let id: String = Args::new(&p).next("filter id")?;
        Ok::<_, RpcError>(api.uninstall_filter(&id))
    })?;
    Ok(())
}
