//! Multi-version memory: for every state location, the values written by each
//! transaction of the block (by index), so that transaction `j` reads the latest write
//! of a transaction before it, or the base state when there is none.

use alloy_primitives::map::DefaultHashBuilder;
use alloy_primitives::{Address, B256, U256};
use dashmap::DashMap;
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use std::sync::Arc;

pub(crate) type TxIdx = usize;
pub(crate) type Incarnation = u32;

/// One unit of state a transaction can read or write. An account is split so that
/// a balance can change by deltas (fee payments, plain ETH transfers) without
/// conflicting with reads of its nonce and code, and a storage wipe (self-destruct,
/// re-creation) is a location of its own that every storage read of the account checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    Info(Address),
    Balance(Address),
    Storage(Address, U256),
    Wipe(Address),
}

/// Nonce and code of an existing account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub nonce: u64,
    pub code_hash: B256,
    pub code: Bytecode,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `None`: the account does not exist (never created, or destroyed).
    Info(Option<Arc<Meta>>),
    Balance(U256),
    /// The balance grew by this much; the absolute value is the sum down to the last
    /// absolute write (or the base state).
    Delta(U256),
    Storage(U256),
    Wipe,
}

#[derive(Debug)]
enum Entry {
    Written(Incarnation, Value),
    /// The writer was aborted and is likely to write here again: readers wait for it.
    Estimate,
}

/// Where a read value came from; validation re-reads and compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Base,
    Version(TxIdx, Incarnation),
    /// A balance assembled from deltas: validated by value.
    Sum(U256),
}

/// Reading hit the estimate of an aborted transaction: wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocked(pub TxIdx);

/// A balance read before the base state is consulted.
pub(crate) enum BalanceRead {
    /// Absolute value written by a transaction (plus any deltas above it).
    Written { origin: Origin, value: U256 },
    /// Only deltas (possibly none) above the base state.
    OnBase { deltas: U256, any: bool },
}

/// The versions of one location, sorted by transaction index (most locations have one).
type Versions = smallvec::SmallVec<[(TxIdx, Entry); 1]>;

/// Versions written by transactions before `tx`, latest first.
fn before(versions: &Versions, tx: TxIdx) -> impl Iterator<Item = &(TxIdx, Entry)> {
    versions[..versions.partition_point(|(i, _)| *i < tx)].iter().rev()
}

pub(crate) struct MvMemory {
    data: DashMap<Loc, Versions, DefaultHashBuilder>,
    /// Locations written by the last incarnation of each transaction.
    written: Vec<Mutex<Vec<Loc>>>,
}

impl MvMemory {
    pub fn new(txs: usize) -> Self {
        Self {
            data: DashMap::with_capacity_and_hasher_and_shard_amount(txs * 4, DefaultHashBuilder::default(), 64),
            written: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Latest write to `loc` by a transaction before `tx`; `None` means the base state.
    pub fn read(&self, loc: &Loc, tx: TxIdx) -> Result<Option<(TxIdx, Incarnation, Value)>, Blocked> {
        let Some(versions) = self.data.get(loc) else { return Ok(None) };
        let found = match before(&versions, tx).next() {
            None => Ok(None),
            Some((idx, Entry::Estimate)) => Err(Blocked(*idx)),
            Some((idx, Entry::Written(inc, value))) => Ok(Some((*idx, *inc, value.clone()))),
        };
        found
    }

    /// Origin-only read, for validation of non-balance locations.
    pub fn origin(&self, loc: &Loc, tx: TxIdx) -> Result<Origin, Blocked> {
        let Some(versions) = self.data.get(loc) else { return Ok(Origin::Base) };
        let found = match before(&versions, tx).next() {
            None => Ok(Origin::Base),
            Some((idx, Entry::Estimate)) => Err(Blocked(*idx)),
            Some((idx, Entry::Written(inc, _))) => Ok(Origin::Version(*idx, *inc)),
        };
        found
    }

    /// The balance of `address` as transaction `tx` sees it, down to the base state.
    pub fn read_balance(&self, address: Address, tx: TxIdx) -> Result<BalanceRead, Blocked> {
        let Some(versions) = self.data.get(&Loc::Balance(address)) else {
            return Ok(BalanceRead::OnBase { deltas: U256::ZERO, any: false });
        };
        let mut deltas = U256::ZERO;
        let mut any = false;
        for (idx, entry) in before(&versions, tx) {
            match entry {
                Entry::Estimate => return Err(Blocked(*idx)),
                Entry::Written(_, Value::Delta(d)) => {
                    deltas = deltas.wrapping_add(*d);
                    any = true;
                }
                Entry::Written(inc, Value::Balance(b)) => {
                    let value = b.wrapping_add(deltas);
                    let origin = if any { Origin::Sum(value) } else { Origin::Version(*idx, *inc) };
                    return Ok(BalanceRead::Written { origin, value });
                }
                Entry::Written(_, other) => unreachable!("balance location holds {other:?}"),
            }
        }
        Ok(BalanceRead::OnBase { deltas, any })
    }

    /// Stores the writes of an incarnation, removing what its predecessor wrote and this
    /// one did not. Returns whether it wrote a location the predecessor had not.
    pub fn record(&self, tx: TxIdx, incarnation: Incarnation, writes: Vec<(Loc, Value)>) -> bool {
        let mut previous = self.written[tx].lock();
        let locs: Vec<Loc> = writes.iter().map(|(loc, _)| *loc).collect();
        for stale in previous.iter().filter(|loc| !locs.contains(loc)) {
            if let Some(mut versions) = self.data.get_mut(stale) {
                if let Ok(at) = versions.binary_search_by_key(&tx, |(i, _)| *i) {
                    versions.remove(at);
                }
            }
        }
        let wrote_new = locs.iter().any(|loc| !previous.contains(loc));
        for (loc, value) in writes {
            put(&mut self.data.entry(loc).or_default(), tx, Entry::Written(incarnation, value));
        }
        *previous = locs;
        wrote_new
    }

    /// Marks every write of `tx` as an estimate after its incarnation was aborted.
    pub fn convert_writes_to_estimates(&self, tx: TxIdx) {
        for loc in self.written[tx].lock().iter() {
            if let Some(mut versions) = self.data.get_mut(loc) {
                put(&mut versions, tx, Entry::Estimate);
            }
        }
    }
}

fn put(versions: &mut Versions, tx: TxIdx, entry: Entry) {
    match versions.binary_search_by_key(&tx, |(i, _)| *i) {
        Ok(at) => versions[at].1 = entry,
        Err(at) => versions.insert(at, (tx, entry)),
    }
}
