//! The polling filters' state (`filters` has the methods): installed filters with their
//! cursors and expiry, and the shared ring of the newest pending hashes. Bounded:
//! [`MAX_FILTERS`] filters, [`PENDING_RING`] hashes.

use alloy_primitives::B256;
use alloy_rpc_types_eth::Filter;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::RpcError;

/// Most filters installed at once (all clients together).
pub const MAX_FILTERS: usize = 10_000;
/// A filter not polled for this long is removed (geth: 5 minutes).
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Newest admitted transaction hashes kept for pending-transaction filters.
pub const PENDING_RING: usize = 65_536;
/// Most block hashes one poll of a block filter returns (the newest are kept).
pub const MAX_BLOCK_CHANGES: u64 = 10_000;

#[derive(Debug)]
pub(crate) enum Kind {
    /// Logs matching the filter in sealed blocks from `next` on.
    Logs { filter: Box<Filter>, next: u64 },
    /// Hashes of sealed blocks from `next` on.
    Blocks { next: u64 },
    /// Hashes admitted after sequence number `next` of the pending ring.
    Pending { next: u64 },
}

#[derive(Debug)]
pub(crate) struct Installed {
    pub(crate) kind: Kind,
    pub(crate) polled: Instant,
}

/// Admitted transaction hashes, numbered in admission order.
#[derive(Debug, Default)]
pub(crate) struct PendingRing {
    pub(crate) hashes: VecDeque<B256>,
    /// Sequence number of `hashes[0]`.
    pub(crate) first: u64,
}

impl PendingRing {
    pub(crate) fn end(&self) -> u64 {
        self.first + self.hashes.len() as u64
    }

    pub(crate) fn push(&mut self, hash: B256) {
        if self.hashes.len() == PENDING_RING {
            self.hashes.pop_front();
            self.first += 1;
        }
        self.hashes.push_back(hash);
    }

    /// The hashes from sequence number `from` on (those still kept).
    pub(crate) fn since(&self, from: u64) -> Vec<B256> {
        let skip = from.saturating_sub(self.first) as usize;
        self.hashes.iter().skip(skip).copied().collect()
    }
}

/// The installed filters of one node.
#[derive(Debug, Default)]
pub struct Filters {
    pub(crate) installed: Mutex<HashMap<String, Installed>>,
    pub(crate) pending: Arc<Mutex<PendingRing>>,
    /// The task that feeds `pending` from the chain's events has been started.
    pub(crate) feeding: std::sync::atomic::AtomicBool,
    pub(crate) ids: crate::ids::HexIdProvider,
}

impl Filters {
    pub(crate) fn install(&self, kind: Kind) -> Result<String, RpcError> {
        use jsonrpsee::core::traits::IdProvider;
        let mut installed = self.installed.lock();
        let now = Instant::now();
        installed.retain(|_, f| now.duration_since(f.polled) < FILTER_TIMEOUT);
        if installed.len() >= MAX_FILTERS {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed ({MAX_FILTERS}); uninstall unused ones or let them expire"
            )));
        }
        // A quantity, as the specification requires of filter ids (no leading zeros).
        let id = match self.ids.next_id() {
            jsonrpsee::types::SubscriptionId::Str(s) => {
                let digits = s.trim_start_matches("0x").trim_start_matches('0');
                format!("0x{}", if digits.is_empty() { "0" } else { digits })
            }
            jsonrpsee::types::SubscriptionId::Num(n) => format!("0x{n:x}"),
        };
        installed.insert(id.clone(), Installed { kind, polled: now });
        Ok(id)
    }

    /// Runs `f` on the filter `id` (expired ones are gone), marking it polled.
    pub(crate) fn with<T>(&self, id: &str, f: impl FnOnce(&mut Kind) -> Result<T, RpcError>) -> Result<T, RpcError> {
        let mut installed = self.installed.lock();
        let now = Instant::now();
        let entry = installed
            .get_mut(id)
            .filter(|e| now.duration_since(e.polled) < FILTER_TIMEOUT)
            .ok_or_else(|| RpcError::Server("filter not found".into()))?;
        entry.polled = now;
        f(&mut entry.kind)
    }

    pub(crate) fn uninstall(&self, id: &str) -> bool {
        self.installed.lock().remove(id).is_some()
    }

    /// Number of installed filters (expired ones included until the next install).
    pub fn len(&self) -> usize {
        self.installed.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_ring_keeps_the_newest_and_numbers_them() {
        let mut ring = PendingRing::default();
        for i in 0..(PENDING_RING as u64 + 10) {
            ring.push(B256::from(alloy_primitives::U256::from(i)));
        }
        assert_eq!(ring.hashes.len(), PENDING_RING);
        assert_eq!(ring.first, 10);
        assert_eq!(ring.end(), PENDING_RING as u64 + 10);
        // A reader at 0 lost the ten oldest; one at the end sees nothing.
        let seen = ring.since(0);
        assert_eq!(seen.len(), PENDING_RING);
        assert_eq!(seen[0], B256::from(alloy_primitives::U256::from(10)));
        assert!(ring.since(ring.end()).is_empty());
        assert_eq!(ring.since(ring.end() - 2).len(), 2);
    }
}
