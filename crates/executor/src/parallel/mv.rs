//! Multi-version memory: for every state location, the values written by each
//! transaction of the block (by index), so that transaction `j` reads the latest write
//! of a transaction before it, or the base state when there is none.

use alloy_primitives::map::DefaultHashBuilder;
use alloy_primitives::{Address, B256, U256};
use dashmap::DashMap;
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// `None` for the empty code. (revm's empty `Bytecode` is one process-wide `Arc`:
    /// cloning it for every account had all threads bouncing its reference count.)
    pub code: Option<Bytecode>,
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

/// An account's nonce and code as read (`None`: the account does not exist).
pub(crate) type MetaRead = Option<Arc<Meta>>;

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
    /// One bit per hash bucket of locations, set before a location is first written:
    /// a read of a location whose bit is clear (a contract's code, its storage wipe,
    /// anything no transaction of the block writes) returns the base state without
    /// taking the shared map's lock, which both threads would otherwise bounce.
    written_bits: Box<[AtomicU64]>,
    /// Locations written by the last incarnation of each transaction.
    written: Vec<Mutex<Vec<Loc>>>,
}

impl MvMemory {
    pub fn new(txs: usize) -> Self {
        let bits = (txs * 16).next_power_of_two().max(1 << 12);
        Self {
            written_bits: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            data: DashMap::with_capacity_and_hasher_and_shard_amount(
                txs * 4,
                DefaultHashBuilder::default(),
                super::db::shard_amount(txs),
            ),
            written: (0..txs).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// The word and mask of `loc`'s bit in `written_bits`.
    fn bit(&self, loc: &Loc) -> (&AtomicU64, u64) {
        let (address, extra, kind) = match loc {
            Loc::Info(a) => (a, 0, 1),
            Loc::Balance(a) => (a, 0, 2),
            Loc::Storage(a, slot) => (a, slot.as_limbs()[0] ^ slot.as_limbs()[3], 3),
            Loc::Wipe(a) => (a, 0, 4),
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(&address.0[12..20]);
        let h = (u64::from_le_bytes(word) ^ extra.rotate_left(17) ^ kind).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (h >> 32) as usize & (self.written_bits.len() * 64 - 1);
        (&self.written_bits[index / 64], 1 << (index % 64))
    }

    /// False when no transaction has written `loc` so far in this run.
    fn maybe_written(&self, loc: &Loc) -> bool {
        let (word, mask) = self.bit(loc);
        word.load(Ordering::Acquire) & mask != 0
    }

    /// Latest write to `loc` by a transaction before `tx`; `None` means the base state.
    pub fn read(&self, loc: &Loc, tx: TxIdx) -> Result<Option<(TxIdx, Incarnation, Value)>, Blocked> {
        if !self.maybe_written(loc) {
            return Ok(None);
        }
        let Some(versions) = self.data.get(loc) else { return Ok(None) };
        let found = match before(&versions, tx).next() {
            None => Ok(None),
            Some((idx, Entry::Estimate)) => Err(Blocked(*idx)),
            Some((idx, Entry::Written(inc, value))) => Ok(Some((*idx, *inc, value.clone()))),
        };
        found
    }

    /// The nonce and code written by the latest transaction before `tx`, if any.
    pub fn read_meta(&self, address: Address, tx: TxIdx) -> Result<Option<(Origin, MetaRead)>, Blocked> {
        let loc = Loc::Info(address);
        if !self.maybe_written(&loc) {
            return Ok(None);
        }
        let Some(versions) = self.data.get(&loc) else { return Ok(None) };
        let found = match before(&versions, tx).next() {
            None => Ok(None),
            Some((idx, Entry::Estimate)) => Err(Blocked(*idx)),
            Some((idx, Entry::Written(inc, Value::Info(meta)))) => {
                Ok(Some((Origin::Version(*idx, *inc), meta.clone())))
            }
            Some((_, Entry::Written(_, other))) => unreachable!("info location holds {other:?}"),
        };
        found
    }

    /// Origin-only read, for validation of non-balance locations.
    pub fn origin(&self, loc: &Loc, tx: TxIdx) -> Result<Origin, Blocked> {
        if !self.maybe_written(loc) {
            return Ok(Origin::Base);
        }
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
        let loc = Loc::Balance(address);
        if !self.maybe_written(&loc) {
            return Ok(BalanceRead::OnBase { deltas: U256::ZERO, any: false });
        }
        let Some(versions) = self.data.get(&loc) else {
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
        for stale in previous.iter().filter(|loc| !writes.iter().any(|(l, _)| l == *loc)) {
            if let Some(mut versions) = self.data.get_mut(stale) {
                if let Ok(at) = versions.binary_search_by_key(&tx, |(i, _)| *i) {
                    versions.remove(at);
                }
            }
        }
        let wrote_new = writes.iter().any(|(loc, _)| !previous.contains(loc));
        previous.clear();
        for (loc, value) in writes {
            // The bit is set before the write is visible, so a reader that finds it
            // clear cannot miss a write that was recorded before the read began.
            let (word, mask) = self.bit(&loc);
            if word.load(Ordering::Relaxed) & mask == 0 {
                word.fetch_or(mask, Ordering::AcqRel);
            }
            previous.push(loc);
            put(&mut self.data.entry(loc).or_default(), tx, Entry::Written(incarnation, value));
        }
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
