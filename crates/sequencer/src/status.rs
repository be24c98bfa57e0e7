//! Transaction status tiers: `received → preconfirmed → sequenced → sealed → firm`
//! (its block is on the data-availability layer, read back and checked), with the time
//! each was reached.
//! `dropped` is the explicit retraction of a transaction that was only received
//! (replaced, evicted or found invalid); a preconfirmed transaction is never dropped.
//!
//! The tracker remembers the newest [`MAX_TRACKED`] transactions; older ones are
//! answered from where the transaction is (pool, open block, pipeline, store) without
//! timestamps.

use alloy_primitives::B256;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::fragments::FragmentPart;

/// Most transactions whose status history is kept.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// Accepted into the pool and durable.
    Received,
    /// In a signed, durable fragment: its block and position are promised.
    Preconfirmed,
    /// Its block is closed: the block's transaction list is final.
    Sequenced,
    /// Its block has a state root and is committed.
    Sealed,
    /// Its block is on the data-availability layer, read back and checked.
    Firm,
    /// Retracted before it was preconfirmed (replaced, evicted, invalid).
    Dropped,
    /// A rollup follower (shared set): ordered by the set in a decided block, then found
    /// invalid when executed (nonce, funds, gas) and skipped, on every follower alike.
    Rejected,
    /// Its block, as executed here (soft), differs from the data-availability layer
    /// (firm): what was answered for it may not hold.
    Retracted,
}

/// One step of a transaction's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub tier: Tier,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// What is known about one transaction.
#[derive(Debug, Clone)]
pub struct TxStatus {
    pub tier: Tier,
    pub history: Vec<Step>,
    /// Promised (or final) block and position, once preconfirmed.
    pub block: Option<u64>,
    pub position: Option<u64>,
    pub fragment: Option<Arc<FragmentPart>>,
    /// Why it was dropped.
    pub reason: Option<String>,
    /// The batch its block is in, once firm.
    pub da: Option<cairn_da::DaRef>,
}

impl TxStatus {
    fn new() -> Self {
        Self {
            tier: Tier::Received,
            history: Vec::new(),
            block: None,
            position: None,
            fragment: None,
            reason: None,
            da: None,
        }
    }
}

/// A change of one transaction's tier, as streamed to subscribers.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub hash: B256,
    pub tier: Tier,
    pub at: u64,
    pub block: Option<u64>,
    pub position: Option<u64>,
    pub reason: Option<Arc<str>>,
}

#[derive(Default)]
pub(crate) struct StatusTracker {
    map: HashMap<B256, TxStatus>,
    order: VecDeque<B256>,
}

impl StatusTracker {
    pub(crate) fn get(&self, hash: &B256) -> Option<TxStatus> {
        self.map.get(hash).cloned()
    }

    fn entry(&mut self, hash: B256) -> &mut TxStatus {
        if !self.map.contains_key(&hash) {
            while self.order.len() >= MAX_TRACKED {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(hash);
        }
        self.map.entry(hash).or_insert_with(TxStatus::new)
    }

    /// Moves `hash` to `tier` at `at` (a tier below the current one is ignored, so a
    /// late event never moves a transaction backwards).
    pub(crate) fn advance(&mut self, hash: B256, tier: Tier, at: u64) -> &mut TxStatus {
        let status = self.entry(hash);
        if status.history.last().is_none_or(|s| s.tier < tier) {
            status.tier = tier;
            status.history.push(Step { tier, at });
        }
        status
    }

    pub(crate) fn preconfirmed(&mut self, part: &Arc<FragmentPart>) {
        let f = part.fragment();
        for (i, (hash, _, _)) in part.body.iter().enumerate() {
            let s = self.advance(*hash, Tier::Preconfirmed, part.at_ms);
            s.block = Some(f.height);
            s.position = Some(u64::from(f.first_tx) + i as u64);
            s.fragment = Some(part.clone());
        }
    }

    pub(crate) fn dropped(&mut self, hash: B256, reason: &str, at: u64) {
        // Only a transaction that is merely received can be retracted.
        if self.map.get(&hash).is_some_and(|s| s.tier != Tier::Received) {
            return;
        }
        let s = self.advance(hash, Tier::Dropped, at);
        s.reason = Some(reason.to_string());
    }

    /// `hash`'s block differs from the DA layer.
    pub(crate) fn retracted(&mut self, hash: B256, reason: &str, at: u64) {
        let s = self.advance(hash, Tier::Retracted, at);
        s.reason = Some(reason.to_string());
    }

    /// A follower skipped `hash`, ordered in sequencer block `height`, as invalid.
    pub(crate) fn rejected(&mut self, hash: B256, reason: &str, height: u64, at: u64) {
        let s = self.advance(hash, Tier::Rejected, at);
        s.reason = Some(reason.to_string());
        s.block = Some(height);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_only_move_forward_and_the_tracker_is_bounded() {
        let mut t = StatusTracker::default();
        let h = B256::repeat_byte(1);
        t.advance(h, Tier::Received, 1);
        t.advance(h, Tier::Sequenced, 3);
        t.advance(h, Tier::Preconfirmed, 2);
        let s = t.get(&h).expect("tracked");
        assert_eq!(s.tier, Tier::Sequenced);
        assert_eq!(s.history.iter().map(|s| s.tier).collect::<Vec<_>>(), vec![Tier::Received, Tier::Sequenced]);
        t.dropped(h, "late", 4);
        assert_eq!(t.get(&h).map(|s| s.tier), Some(Tier::Sequenced), "a sequenced tx is never dropped");
        let g = B256::repeat_byte(2);
        t.advance(g, Tier::Received, 1);
        t.dropped(g, "replaced", 5);
        assert_eq!(t.get(&g).and_then(|s| s.reason), Some("replaced".into()));
        for i in 0..MAX_TRACKED as u64 {
            t.advance(B256::left_padding_from(&i.to_be_bytes()), Tier::Received, i);
        }
        assert!(t.map.len() <= MAX_TRACKED && t.order.len() == t.map.len());
        assert!(t.get(&h).is_none(), "the oldest entries are forgotten first");
    }
}
