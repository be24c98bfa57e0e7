//! Two lanes: the calling thread (the *leader*) runs the block exactly as the sequential
//! executor does, from the first transaction on, while a helper thread executes
//! transactions from the last one backwards against the state before the run,
//! recording every value it read. When the leader reaches a transaction the helper
//! has run, it checks those values against its own state; if every one is unchanged,
//! the transaction would run the same way there, and the leader takes the helper's
//! result (state changes, logs, gas) instead of executing it. Otherwise it executes the
//! transaction itself. The two meet in the middle: no transaction is executed twice
//! unless a speculation failed.
//!
//! Nothing is shared but a claim per transaction and a slot for its result, so the
//! per-transaction overhead is a value comparison per read; Block-STM's multi-version
//! memory, read-set validation and scheduler cost more than a second core gives back
//! on two threads (`cairn bench exec`, docs/BENCHMARKS.md). What the helper cannot see
//! (the writes of earlier transactions of the block) only makes speculations fail, so
//! a block of dependent transactions runs at the sequential speed, plus the checks.
//!
//! The helper does not pay the block's beneficiary (every transaction would then read
//! its balance); the leader pays the fee in order, as revm would have.

use alloy_primitives::map::{AddressMap, B256Map, HashMap};
use alloy_primitives::{Address, B256, U256};
use cairn_primitives::{RecoveredTx, StateView, KECCAK_EMPTY};
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::context::result::ResultAndState;
use revm::context::{Context, ContextSetters, ContextTr};
use revm::database::AccountState;
use revm::database_interface::Database;
use revm::handler::Handler;
use revm::state::{Account, AccountInfo, EvmState, TransactionId};
use revm::{ExecuteEvm, MainBuilder, MainContext};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use super::handler::DeferredRewardHandler;
use crate::db::DbError;
use crate::evm::{block_env, cfg_env, tx_env};
use crate::sequential::{execute_while, SeqDb};
use crate::{BlockContext, BlockOutput, ExecError, Mode, Offsets};

/// Who runs a transaction: nobody yet, the helper (running, or done), the leader.
const FREE: u8 = 0;
const SPECULATING: u8 = 1;
const READY: u8 = 2;
const LEADER: u8 = 3;

/// A value the helper read from the state before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// An account's nonce, balance and code hash (`None`: it did not exist).
    Account(Address, Option<(u64, U256, B256)>),
    Slot(Address, U256, U256),
}

/// A transaction the helper ran: its result and what it read.
struct Speculation {
    result: ResultAndState,
    /// The fee owed to the beneficiary, not applied.
    reward: Option<U256>,
    reads: Vec<Read>,
}

/// What a lanes run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LaneStats {
    /// Transactions the helper ran.
    pub speculated: usize,
    /// Speculations the leader could not use (it executed those transactions again).
    pub failed: usize,
}

/// The helper's database: the state before the run (cached: it does not change),
/// every account and slot read recorded for the leader to check.
struct SpecDb<'a> {
    view: &'a dyn StateView,
    accounts: AddressMap<Option<AccountInfo>>,
    slots: HashMap<(Address, U256), U256>,
    code: B256Map<Bytecode>,
    reads: Vec<Read>,
}

impl<'a> SpecDb<'a> {
    fn new(view: &'a dyn StateView) -> Self {
        Self {
            view,
            accounts: AddressMap::default(),
            slots: HashMap::default(),
            code: B256Map::default(),
            reads: Vec::with_capacity(16),
        }
    }

    fn code_of(&mut self, hash: B256) -> Result<Bytecode, DbError> {
        if let Some(code) = self.code.get(&hash) {
            return Ok(code.clone());
        }
        let code = Bytecode::new_raw(self.view.code(hash)?);
        self.code.insert(hash, code.clone());
        Ok(code)
    }
}

impl Database for SpecDb<'_> {
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let info = match self.accounts.get(&address) {
            Some(info) => info.clone(),
            None => {
                let info = match self.view.account(address)? {
                    None => None,
                    Some(acc) => {
                        let code = match acc.code_hash == KECCAK_EMPTY {
                            true => None,
                            false => Some(self.code_of(acc.code_hash)?),
                        };
                        // `code: None` for plain accounts: revm's empty code is one
                        // process-wide value whose reference count both threads would
                        // bounce.
                        let mut info = AccountInfo::default().without_code();
                        info.balance = acc.balance;
                        info.nonce = acc.nonce;
                        info.code_hash = acc.code_hash;
                        info.code = code;
                        Some(info)
                    }
                };
                self.accounts.insert(address, info.clone());
                info
            }
        };
        self.reads.push(Read::Account(address, info.as_ref().map(|i| (i.nonce, i.balance, i.code_hash))));
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.code_of(code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, DbError> {
        let value = match self.slots.get(&(address, index)) {
            Some(value) => *value,
            None => {
                let value = self.view.storage(address, index)?;
                self.slots.insert((address, index), value);
                value
            }
        };
        self.reads.push(Read::Slot(address, index, value));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        Ok(self.view.block_hash(number)?)
    }
}

/// Everything the two lanes share.
struct Lanes<'r> {
    txs: &'r [RecoveredTx],
    claims: Vec<AtomicU8>,
    results: Vec<Mutex<Option<Box<Speculation>>>>,
    /// The leader is done (or gave up): the helper stops.
    stop: AtomicBool,
    /// The helper stopped for good (done or panicked): nothing it claimed will change.
    helper_done: AtomicBool,
    speculated: AtomicUsize,
}

/// Marks the helper done however it leaves.
struct HelperDone<'g>(&'g AtomicBool);

impl Drop for HelperDone<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Lanes<'_> {
    /// The helper: transactions from the last one backwards, until it meets the leader.
    fn speculate(&self, state: &dyn StateView, block: &BlockContext) {
        let mut evm = Context::mainnet()
            .with_db(SpecDb::new(state))
            .with_block(block_env(block))
            .with_cfg(cfg_env(block))
            .build_mainnet();
        let mut handler = DeferredRewardHandler::<SpecDb<'_>>::default();
        for i in (0..self.txs.len()).rev() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.claims[i].compare_exchange(FREE, SPECULATING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                break;
            }
            evm.ctx.db_mut().reads.clear();
            evm.ctx.set_tx(tx_env(&self.txs[i]));
            handler.reward.set(None);
            let outcome = handler.run(&mut evm);
            let state = evm.finalize();
            // An invalid transaction (or a failed read) is left to the leader.
            if let Ok(result) = outcome {
                let reads = std::mem::replace(&mut evm.ctx.db_mut().reads, Vec::with_capacity(16));
                let speculation = Speculation { result: ResultAndState::new(result, state), reward: handler.reward.get(), reads };
                *self.results[i].lock() = Some(Box::new(speculation));
            }
            self.speculated.fetch_add(1, Ordering::Relaxed);
            self.claims[i].store(READY, Ordering::Release);
        }
    }

    /// The leader's shortcut for the transaction at `i`: the helper's result if it ran
    /// it and it still holds on `db`; `None` when the leader must execute it.
    fn take(&self, i: usize, db: &mut SeqDb<'_>, beneficiary: Address, failed: &mut usize) -> Option<ResultAndState> {
        loop {
            match self.claims[i].compare_exchange(FREE, LEADER, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return None,
                Err(READY) => break,
                // The helper is running it (only where the two meet): wait, unless the
                // helper died on it.
                Err(_) if self.helper_done.load(Ordering::Acquire) => return None,
                Err(_) => std::hint::spin_loop(),
            }
        }
        let Some(speculation) = self.results[i].lock().take() else {
            // The helper found it invalid: the leader decides.
            *failed += 1;
            return None;
        };
        if !still_holds(&speculation.reads, db) {
            *failed += 1;
            return None;
        }
        let mut done = speculation.result;
        if let Some(fee) = speculation.reward {
            // A failed read here is left to the leader's own execution, which reports it.
            pay(db, &mut done.state, beneficiary, fee).ok()?;
        }
        Some(done)
    }
}

/// Whether every value in `reads` is what `db` holds now. An account the leader's
/// cache does not hold was neither written nor read in this run: it still has the value
/// the helper read, and the check costs no read of the state.
fn still_holds(reads: &[Read], db: &SeqDb<'_>) -> bool {
    reads.iter().all(|read| match *read {
        Read::Account(address, seen) => match db.cache.accounts.get(&address) {
            None => true,
            Some(acc) => {
                let now = match acc.account_state {
                    AccountState::NotExisting => None,
                    _ => Some((acc.info.nonce, acc.info.balance, acc.info.code_hash)),
                };
                now == seen
            }
        },
        Read::Slot(address, slot, seen) => match db.cache.accounts.get(&address) {
            None => true,
            Some(acc) => match acc.storage.get(&slot) {
                Some(now) => *now == seen,
                // Never written in this run: the value before it, unless the storage
                // was cleared.
                None => match acc.account_state {
                    AccountState::StorageCleared | AccountState::NotExisting => seen.is_zero(),
                    _ => true,
                },
            },
        },
    })
}

/// Credits `fee` to the beneficiary in a transaction's state changes as revm's own
/// handler does: the account as it stands (loaded now if the transaction did not load
/// it), touched, its balance increased.
fn pay(db: &mut SeqDb<'_>, state: &mut EvmState, beneficiary: Address, fee: U256) -> Result<(), DbError> {
    let account = match state.entry(beneficiary) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let loaded = match Database::basic(db, beneficiary)? {
                Some(info) => Account::from(info),
                None => Account::new_not_existing(TransactionId::ZERO),
            };
            v.insert(loaded)
        }
    };
    account.mark_touch();
    if let Some(balance) = account.info.balance.checked_add(fee) {
        account.info.balance = balance;
    }
    Ok(())
}

/// Runs `txs` in two lanes on the calling thread and one thread of `pool`; the output
/// is the sequential executor's.
pub(crate) fn run(
    pool: &rayon::ThreadPool,
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    mode: Mode,
    at: Offsets,
) -> Result<(BlockOutput, LaneStats), ExecError> {
    let lanes = Lanes {
        txs,
        claims: (0..txs.len()).map(|_| AtomicU8::new(FREE)).collect(),
        results: (0..txs.len()).map(|_| Mutex::new(None)).collect(),
        stop: AtomicBool::new(false),
        helper_done: AtomicBool::new(false),
        speculated: AtomicUsize::new(0),
    };
    let mut failed = 0;
    let mut out = None;
    pool.in_place_scope(|scope| {
        let helper = &lanes;
        scope.spawn(move |_| {
            let _done = HelperDone(&helper.helper_done);
            // A panic in the helper only costs its speculations: the leader runs the
            // rest itself.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| helper.speculate(state, block)));
        });
        let mut take = |i: usize, db: &mut SeqDb<'_>| lanes.take(i, db, block.beneficiary, &mut failed);
        out = Some(execute_while(state, block, txs, mode, at, None, Some(&mut take)));
        lanes.stop.store(true, Ordering::Relaxed);
    });
    let (output, _) = out.expect("the leader ran")?;
    tracing::debug!(txs = txs.len(), speculated = lanes.speculated.load(Ordering::Relaxed), failed, "lanes run");
    Ok((output, LaneStats { speculated: lanes.speculated.load(Ordering::Relaxed), failed }))
}
