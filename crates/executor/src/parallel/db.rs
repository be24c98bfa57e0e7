//! What one transaction of a parallel run sees: revm's `Database` over the multi-version
//! memory and a shared, cached base state, recording every read for validation.

use alloy_primitives::map::{AddressMap, DefaultHashBuilder};
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{StateError, StateView, KECCAK_EMPTY};
use dashmap::DashMap;
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, Database};
use revm::state::AccountInfo;
use std::sync::Arc;

use super::mv::{BalanceRead, Blocked, Loc, Meta, MetaRead, MvMemory, Origin, TxIdx, Value};

/// Shards of the run's shared maps: enough that two threads rarely meet on one, few
/// enough that a small block does not pay for allocating them.
pub(crate) fn shard_amount(txs: usize) -> usize {
    if txs < 1_024 {
        8
    } else {
        64
    }
}

/// The state before the block, read once per location and shared by all workers.
pub(crate) struct Base<'a> {
    view: &'a dyn StateView,
    accounts: DashMap<Address, Option<(Arc<Meta>, U256)>, DefaultHashBuilder>,
    storage: DashMap<(Address, U256), U256, DefaultHashBuilder>,
    code: DashMap<B256, Bytecode, DefaultHashBuilder>,
}

impl<'a> Base<'a> {
    /// A cache sized for a run of `txs` transactions (resizing a shared table while
    /// both threads use it is the expensive part).
    pub fn new(view: &'a dyn StateView, txs: usize) -> Self {
        let hasher = DefaultHashBuilder::default;
        Self {
            view,
            accounts: DashMap::with_capacity_and_hasher_and_shard_amount(txs * 2, hasher(), shard_amount(txs)),
            storage: DashMap::with_capacity_and_hasher_and_shard_amount(txs * 2, hasher(), shard_amount(txs)),
            code: DashMap::with_hasher_and_shard_amount(hasher(), shard_amount(txs)),
        }
    }

    pub fn view(&self) -> &'a dyn StateView {
        self.view
    }

    pub fn account(&self, address: Address) -> Result<Option<(Arc<Meta>, U256)>, StateError> {
        self.with_account(address, Clone::clone)
    }

    /// Runs `f` on the cached account, loading it first if needed (without cloning the
    /// shared `Meta` when `f` does not need it).
    fn with_account<R>(
        &self,
        address: Address,
        f: impl FnOnce(&Option<(Arc<Meta>, U256)>) -> R,
    ) -> Result<R, StateError> {
        if let Some(hit) = self.accounts.get(&address) {
            return Ok(f(&hit));
        }
        let loaded = match self.view.account(address)? {
            None => None,
            Some(acc) => {
                let code = if acc.code_hash == KECCAK_EMPTY { None } else { Some(self.code(acc.code_hash)?) };
                Some((Arc::new(Meta { nonce: acc.nonce, code_hash: acc.code_hash, code }), acc.balance))
            }
        };
        let out = f(&loaded);
        self.accounts.insert(address, loaded);
        Ok(out)
    }

    pub fn balance(&self, address: Address) -> Result<U256, StateError> {
        self.with_account(address, |a| a.as_ref().map(|(_, b)| *b).unwrap_or_default())
    }

    pub fn meta(&self, address: Address) -> Result<Option<Arc<Meta>>, StateError> {
        Ok(self.account(address)?.map(|(m, _)| m))
    }

    pub fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        if let Some(hit) = self.storage.get(&(address, slot)) {
            return Ok(*hit);
        }
        let value = self.view.storage(address, slot)?;
        self.storage.insert((address, slot), value);
        Ok(value)
    }

    pub fn code(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if let Some(hit) = self.code.get(&code_hash) {
            return Ok(hit.clone());
        }
        let code = crate::code::analyzed(code_hash, || self.view.code(code_hash))?;
        self.code.insert(code_hash, code.clone());
        Ok(code)
    }
}

/// Everything the workers of one parallel run share.
pub(crate) struct Shared<'a> {
    pub mv: MvMemory,
    pub base: Base<'a>,
    beneficiary: Address,
    /// Fee each transaction's current incarnation owes the beneficiary (zero when it
    /// paid in place); `None` while unknown (not executed yet, or aborted). Kept out of
    /// the multi-version memory: every transaction pays one, almost none reads the sum.
    fees: Vec<Mutex<Option<U256>>>,
}

impl<'a> Shared<'a> {
    pub fn new(mv: MvMemory, base: Base<'a>, beneficiary: Address, txs: usize) -> Self {
        Self { mv, base, beneficiary, fees: (0..txs).map(|_| Mutex::new(None)).collect() }
    }

    pub fn into_parts(self) -> (MvMemory, Base<'a>) {
        (self.mv, self.base)
    }

    pub fn set_fee(&self, tx: TxIdx, fee: Option<U256>) {
        *self.fees[tx].lock() = fee;
    }

    /// The balance transaction `tx` sees, with the origin to validate it by.
    pub fn balance_at(&self, address: Address, tx: TxIdx) -> Result<Result<(Origin, U256), Blocked>, StateError> {
        if address == self.beneficiary {
            return self.beneficiary_balance_at(tx);
        }
        Ok(match self.mv.read_balance(address, tx) {
            Err(blocked) => Err(blocked),
            Ok(BalanceRead::Written { origin, value }) => Ok((origin, value)),
            Ok(BalanceRead::OnBase { deltas, any }) => {
                let value = self.base.balance(address)?.wrapping_add(deltas);
                Ok((if any { Origin::Sum(value) } else { Origin::Base }, value))
            }
        })
    }

    /// The beneficiary's balance before `tx`: its last absolute value (written by a
    /// transaction that read it, or the base state) plus the fees of the transactions
    /// in between, each of which must have executed.
    fn beneficiary_balance_at(&self, tx: TxIdx) -> Result<Result<(Origin, U256), Blocked>, StateError> {
        let (from, origin, mut value) = match self.mv.read(&Loc::Balance(self.beneficiary), tx) {
            Err(blocked) => return Ok(Err(blocked)),
            Ok(Some((idx, inc, Value::Balance(b)))) => (idx + 1, Origin::Version(idx, inc), b),
            Ok(Some((_, _, other))) => unreachable!("beneficiary balance holds {other:?}"),
            Ok(None) => (0, Origin::Base, self.base.balance(self.beneficiary)?),
        };
        let mut summed = false;
        for i in from..tx {
            match *self.fees[i].lock() {
                None => return Ok(Err(Blocked(i))),
                Some(fee) => {
                    value = value.wrapping_add(fee);
                    summed = true;
                }
            }
        }
        Ok(Ok((if summed { Origin::Sum(value) } else { origin }, value)))
    }

    /// Whether every read of `tx` would still return what it returned.
    pub fn validate(&self, tx: TxIdx, reads: &[(Loc, Origin)]) -> bool {
        reads.iter().all(|(loc, origin)| match loc {
            Loc::Balance(address) => {
                matches!(self.balance_at(*address, tx), Ok(Ok((now, _))) if now == *origin)
            }
            _ => self.mv.origin(loc, tx) == Ok(*origin),
        })
    }
}

/// A read failed: the base state is unreadable, or the value is an aborted estimate.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ParDbError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("read an estimate of transaction {0}")]
    Blocked(TxIdx),
}

impl DBErrorMarker for ParDbError {}

impl From<Blocked> for ParDbError {
    fn from(b: Blocked) -> Self {
        ParDbError::Blocked(b.0)
    }
}

/// What `basic` returned for an account, to tell real writes from no-ops afterwards.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub meta: Option<Arc<Meta>>,
    pub balance: U256,
    /// The balance was not read: the transaction only adds to it (plain ETH transfer).
    pub lazy: bool,
}

/// revm's database for one incarnation of one transaction.
pub(crate) struct TxDb<'s, 'a> {
    shared: &'s Shared<'a>,
    pub tx: TxIdx,
    /// Recipient whose balance this transaction may credit without reading it.
    pub lazy_to: Option<Address>,
    pub reads: Vec<(Loc, Origin)>,
    pub served: AddressMap<Served>,
    /// Latest storage wipe of an account before this transaction, once read.
    wipes: AddressMap<Option<TxIdx>>,
    /// This worker's own copies of the contracts it read from the base state, kept for
    /// the whole run: a popular contract's shared `Arc`s would otherwise have their
    /// reference counts bounce between cores on every transaction.
    contracts: AddressMap<Arc<Meta>>,
    /// An account without code (`code: None`, so no shared empty `Bytecode` is cloned).
    no_code: AccountInfo,
}

impl<'s, 'a> TxDb<'s, 'a> {
    pub fn new(shared: &'s Shared<'a>) -> Self {
        Self {
            shared,
            tx: 0,
            lazy_to: None,
            reads: Vec::with_capacity(16),
            served: AddressMap::default(),
            wipes: AddressMap::default(),
            contracts: AddressMap::default(),
            no_code: AccountInfo::default().without_code(),
        }
    }

    /// The account's nonce and code as transaction `tx` sees it, base-state contracts
    /// from this worker's private copies.
    fn meta(&mut self, address: Address) -> Result<(Origin, MetaRead), ParDbError> {
        if let Some(found) = self.shared.mv.read_meta(address, self.tx)? {
            return Ok(found);
        }
        if let Some(meta) = self.contracts.get(&address) {
            return Ok((Origin::Base, Some(meta.clone())));
        }
        let meta = self.shared.base.meta(address)?;
        let meta = match meta {
            Some(m) if m.code.is_some() => {
                // This thread's own analysis (see `crate::code`), not the shared one.
                let code = match &m.code {
                    Some(c) => Some(crate::code::analyzed(m.code_hash, || {
                        Ok::<_, ParDbError>(Bytes::copy_from_slice(c.original_byte_slice()))
                    })?),
                    None => None,
                };
                let private = Arc::new(Meta { nonce: m.nonce, code_hash: m.code_hash, code });
                self.contracts.insert(address, private.clone());
                Some(private)
            }
            other => other,
        };
        Ok((Origin::Base, meta))
    }

    pub fn reset(&mut self, tx: TxIdx, lazy_to: Option<Address>) {
        self.tx = tx;
        self.lazy_to = lazy_to;
        self.reads.clear();
        self.served.clear();
        self.wipes.clear();
    }

    fn wipe(&mut self, address: Address) -> Result<Option<TxIdx>, ParDbError> {
        if let Some(w) = self.wipes.get(&address) {
            return Ok(*w);
        }
        let loc = Loc::Wipe(address);
        let found = self.shared.mv.read(&loc, self.tx)?;
        let (origin, at) = match found {
            Some((idx, inc, _)) => (Origin::Version(idx, inc), Some(idx)),
            None => (Origin::Base, None),
        };
        self.reads.push((loc, origin));
        self.wipes.insert(address, at);
        Ok(at)
    }
}

impl Database for TxDb<'_, '_> {
    type Error = ParDbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let (origin, meta) = self.meta(address)?;
        self.reads.push((Loc::Info(address), origin));
        let lazy = self.lazy_to == Some(address) && meta.as_ref().is_none_or(|m| m.code_hash == KECCAK_EMPTY);
        let balance = if lazy {
            U256::ZERO
        } else {
            let (origin, balance) = self.shared.balance_at(address, self.tx)??;
            self.reads.push((Loc::Balance(address), origin));
            balance
        };
        self.served.insert(address, Served { meta: meta.clone(), balance, lazy });
        let info = |nonce, code_hash, code: &Option<Bytecode>| {
            let mut info = self.no_code.clone();
            info.balance = balance;
            info.nonce = nonce;
            info.code_hash = code_hash;
            info.code = code.clone();
            info
        };
        Ok(match meta {
            Some(m) => Some(info(m.nonce, m.code_hash, &m.code)),
            None if !balance.is_zero() => Some(info(0, KECCAK_EMPTY, &None)),
            None => None,
        })
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        Ok(self.shared.base.code(code_hash)?)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        let loc = Loc::Storage(address, index);
        let found = self.shared.mv.read(&loc, self.tx)?;
        let wipe = self.wipe(address)?;
        let (origin, value) = match found {
            Some((idx, inc, Value::Storage(v))) => {
                let live = wipe.is_none_or(|w| idx >= w);
                (Origin::Version(idx, inc), if live { v } else { U256::ZERO })
            }
            Some((_, _, other)) => unreachable!("storage location holds {other:?}"),
            None if wipe.is_some() => (Origin::Base, U256::ZERO),
            None => (Origin::Base, self.shared.base.storage(address, index)?),
        };
        self.reads.push((loc, origin));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.shared.base.view().block_hash(number)?)
    }
}
