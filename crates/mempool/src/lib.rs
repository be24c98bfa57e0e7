//! The transaction pool: per-sender nonce queues, fee priority, bounds everywhere.
//!
//! A sender's transactions are *ready* when their nonces run contiguously from the
//! sender's state nonce, and *future* (queued) after a gap. [`Mempool::best`] yields
//! ready transactions by effective tip, highest first, always in nonce order within a
//! sender; ties go to the earlier arrival.
//!
//! Bounds and eviction: at most `max_txs` in all and `max_per_sender` per sender, and a
//! nonce may run at most `max_per_sender` ahead of the state nonce. When the pool is
//! full, a new transaction may push out the *tail* (highest nonce) of another sender,
//! never a transaction in the middle of a queue: first the lowest-tip future tail,
//! else the lowest-tip ready tail. The newcomer wins if it is ready and the victim is
//! not, or if its tip is higher; otherwise it is rejected with "txpool is full".

pub mod lanes;

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256};
use cairn_primitives::RecoveredTx;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub max_txs: usize,
    pub max_per_sender: usize,
    /// A replacement must raise both fee cap and tip by this many percent.
    pub price_bump_percent: u128,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { max_txs: 200_000, max_per_sender: 1_024, price_bump_percent: 10 }
    }
}

/// Rejections, worded as geth words them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("already known")]
    AlreadyKnown,
    #[error("nonce too low: address {address}, tx: {tx} state: {state}")]
    NonceTooLow { address: Address, tx: u64, state: u64 },
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    #[error("txpool is full")]
    PoolFull,
    #[error("account limit exceeded: address {address}, tx nonce {tx} is {limit} or more ahead of its state nonce {state} (it has {pooled} pooled transactions)")]
    SenderFull { address: Address, tx: u64, state: u64, limit: usize, pooled: usize },
}

/// A pooled transaction with the fields ordering needs, computed once.
#[derive(Debug)]
pub struct PoolTx {
    pub tx: RecoveredTx,
    pub hash: B256,
    pub sender: Address,
    pub nonce: u64,
    pub max_fee: u128,
    pub max_tip: u128,
    /// When the node accepted it (ms since the Unix epoch; 0: unknown), kept across
    /// restarts by the admission log.
    pub received_ms: u64,
    arrival: u64,
}

impl PoolTx {
    /// Tip the block producer earns per gas at `base_fee`; `None` if the fee cap is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let base = base_fee as u128;
        (self.max_fee >= base).then(|| self.max_tip.min(self.max_fee - base))
    }
}

#[derive(Debug, Default)]
struct Sender {
    state_nonce: u64,
    txs: BTreeMap<u64, Arc<PoolTx>>,
}

impl Sender {
    /// Number of transactions runnable now (contiguous from the state nonce).
    fn ready_len(&self) -> u64 {
        let mut n = self.state_nonce;
        for nonce in self.txs.keys() {
            if *nonce != n {
                break;
            }
            n += 1;
        }
        n - self.state_nonce
    }
}

/// What an accepted insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub hash: B256,
    /// A transaction with the same sender and nonce that this one replaced.
    pub replaced: Option<B256>,
    /// Transactions pushed out to make room.
    pub evicted: Vec<B256>,
    /// The transaction is runnable now (no nonce gap).
    pub ready: bool,
}

#[derive(Debug, Default)]
pub struct Mempool {
    config: PoolConfig,
    senders: HashMap<Address, Sender>,
    by_hash: HashMap<B256, (Address, u64)>,
    arrivals: u64,
}

impl Mempool {
    pub fn new(config: PoolConfig) -> Self {
        Self { config, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn get(&self, hash: &B256) -> Option<Arc<PoolTx>> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.senders.get(sender)?.txs.get(nonce).cloned()
    }

    /// Next nonce for `sender` counting its ready pooled transactions, if it has any.
    pub fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        let s = self.senders.get(sender)?;
        Some(s.state_nonce + s.ready_len())
    }

    /// Admits `tx` whose sender's current state nonce is `state_nonce`.
    pub fn insert(&mut self, tx: RecoveredTx, state_nonce: u64) -> Result<Inserted, PoolError> {
        self.insert_at(tx, state_nonce, 0)
    }

    /// [`Mempool::insert`] of a transaction accepted at `received_ms`.
    pub fn insert_at(&mut self, tx: RecoveredTx, state_nonce: u64, received_ms: u64) -> Result<Inserted, PoolError> {
        let hash = *tx.tx_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let sender = tx.signer();
        let nonce = tx.nonce();
        if nonce < state_nonce {
            return Err(PoolError::NonceTooLow { address: sender, tx: nonce, state: state_nonce });
        }
        let limit = self.config.max_per_sender;
        if nonce - state_nonce >= limit as u64 {
            let pooled = self.senders.get(&sender).map_or(0, |s| s.txs.len());
            return Err(PoolError::SenderFull { address: sender, tx: nonce, state: state_nonce, limit, pooled });
        }
        let arrival = self.arrivals;
        let entry = Arc::new(PoolTx {
            max_fee: tx.max_fee_per_gas(),
            max_tip: tx.max_priority_fee_per_gas().unwrap_or(tx.max_fee_per_gas()),
            tx,
            hash,
            sender,
            nonce,
            received_ms,
            arrival,
        });
        let replaced = match self.senders.get(&sender).and_then(|s| s.txs.get(&nonce)) {
            Some(old) => {
                let bump = |v: u128| v + v * self.config.price_bump_percent / 100;
                if entry.max_fee < bump(old.max_fee) || entry.max_tip < bump(old.max_tip) {
                    return Err(PoolError::ReplacementUnderpriced);
                }
                Some(old.hash)
            }
            None => None,
        };
        let mut evicted = Vec::new();
        if replaced.is_none() && self.by_hash.len() >= self.config.max_txs {
            let (victim, victim_ready, victim_tip) = self.eviction_victim(sender).ok_or(PoolError::PoolFull)?;
            let newcomer_ready = self.pending_nonce(&sender).unwrap_or(state_nonce).max(state_nonce) >= nonce;
            let outranks = (newcomer_ready && !victim_ready) || entry.max_tip > victim_tip;
            if !outranks {
                return Err(PoolError::PoolFull);
            }
            evicted.push(victim);
            self.remove(&victim);
        }
        self.arrivals += 1;
        let s = self.senders.entry(sender).or_default();
        s.state_nonce = s.state_nonce.max(state_nonce);
        if let Some(old) = replaced {
            self.by_hash.remove(&old);
        }
        s.txs.insert(nonce, entry);
        let ready = nonce < s.state_nonce + s.ready_len();
        self.by_hash.insert(hash, (sender, nonce));
        Ok(Inserted { hash, replaced, evicted, ready })
    }

    /// The cheapest tail among other senders: future tails first, then ready ones.
    fn eviction_victim(&self, except: Address) -> Option<(B256, bool, u128)> {
        let mut best: Option<(bool, u128, B256)> = None;
        for (addr, s) in &self.senders {
            if *addr == except {
                continue;
            }
            let Some((nonce, tail)) = s.txs.last_key_value() else { continue };
            let is_ready = *nonce < s.state_nonce + s.ready_len();
            let key = (is_ready, tail.max_tip, tail.hash);
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
        }
        best.map(|(ready, tip, hash)| (hash, ready, tip))
    }

    /// Removes one transaction (dropped as invalid, or evicted).
    pub fn remove(&mut self, hash: &B256) -> Option<Arc<PoolTx>> {
        let (sender, nonce) = self.by_hash.remove(hash)?;
        let s = self.senders.get_mut(&sender)?;
        let removed = s.txs.remove(&nonce);
        if s.txs.is_empty() {
            self.senders.remove(&sender);
        }
        removed
    }

    /// A block was committed: `sender` nonces up to (excluding) the given value are used.
    /// Drops every pooled transaction those nonces made stale; returns their hashes.
    pub fn on_nonces_used(&mut self, used: impl IntoIterator<Item = (Address, u64)>) -> Vec<B256> {
        let mut dropped = Vec::new();
        for (sender, next_nonce) in used {
            let Some(s) = self.senders.get_mut(&sender) else { continue };
            s.state_nonce = s.state_nonce.max(next_nonce);
            let keep = s.txs.split_off(&next_nonce);
            for (_, tx) in std::mem::replace(&mut s.txs, keep) {
                self.by_hash.remove(&tx.hash);
                dropped.push(tx.hash);
            }
            if s.txs.is_empty() {
                self.senders.remove(&sender);
            }
        }
        dropped
    }

    /// Up to `max` ready transactions payable at `base_fee`, best tip first, nonce order
    /// within each sender.
    pub fn best(&self, base_fee: u64, max: usize) -> Vec<Arc<PoolTx>> {
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        struct Head {
            tip: u128,
            earlier: std::cmp::Reverse<u64>,
            sender: Address,
            nonce: u64,
        }
        let mut heap = BinaryHeap::new();
        for (addr, s) in &self.senders {
            if let Some(tx) = s.txs.get(&s.state_nonce) {
                if let Some(tip) = tx.effective_tip(base_fee) {
                    heap.push(Head { tip, earlier: std::cmp::Reverse(tx.arrival), sender: *addr, nonce: tx.nonce });
                }
            }
        }
        let mut out = Vec::with_capacity(max.min(self.len()));
        while out.len() < max {
            let Some(head) = heap.pop() else { break };
            let s = &self.senders[&head.sender];
            out.push(Arc::clone(&s.txs[&head.nonce]));
            if let Some(next) = s.txs.get(&(head.nonce + 1)) {
                if let Some(tip) = next.effective_tip(base_fee) {
                    heap.push(Head {
                        tip,
                        earlier: std::cmp::Reverse(next.arrival),
                        sender: head.sender,
                        nonce: next.nonce,
                    });
                }
            }
        }
        out
    }

    /// One sender's pooled transactions in nonce order, each with whether it is ready
    /// (no nonce gap before it: runnable now) or queued.
    pub fn of_sender(&self, sender: &Address) -> Vec<(Arc<PoolTx>, bool)> {
        let Some(s) = self.senders.get(sender) else { return Vec::new() };
        let ready_end = s.state_nonce + s.ready_len();
        s.txs.values().map(|tx| (Arc::clone(tx), tx.nonce < ready_end)).collect()
    }

    /// The senders with pooled transactions.
    pub fn senders(&self) -> impl Iterator<Item = &Address> {
        self.senders.keys()
    }

    /// How many pooled transactions are ready and how many queued behind a nonce gap.
    pub fn counts(&self) -> (usize, usize) {
        let ready: u64 = self.senders.values().map(Sender::ready_len).sum();
        (ready as usize, self.len() - ready as usize)
    }

    /// Every pooled transaction (for persistence checks and RPC), in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<PoolTx>> {
        self.senders.values().flat_map(|s| s.txs.values())
    }
}

#[cfg(test)]
mod tests;
