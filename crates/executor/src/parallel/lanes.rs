//! Two lanes: the calling thread (the *leader*) runs the block exactly as the sequential
//! executor does, in order, while a helper thread executes transactions a little ahead
//! of it, recording every value it read and where it read it. The helper reads the
//! writes published so far (the helper's own results, published at once, and those of
//! the transactions the leader executed itself), over the state before the run. When
//! the leader reaches a transaction the helper has run, it checks each value the
//! helper read against its own state; if all are unchanged, the transaction would run
//! the same way there, and the leader takes the helper's result (state changes, logs,
//! gas) instead of executing it. Otherwise, or when the helper has not run it, the
//! leader executes it itself.
//!
//! A speculation goes stale only through the writes of the few transactions between
//! the leader's position and the helper's (the window), or through a published result
//! that did not hold; the leader's check catches both, at the cost of one execution.
//! So the published writes need no consistency at all. The leader's overhead per
//! transaction is a claim, that check and the fee payment, far less than Block-STM's
//! multi-version memory, validation and scheduler, which cost more than a second core
//! gives back on two threads (`cairn bench exec`, docs/BENCHMARKS.md).
//!
//! The helper does not pay the block's beneficiary (every transaction would then read
//! its balance); the leader pays the fee in order, as revm would have.

use alloy_consensus::Transaction as _;
use alloy_primitives::map::{AddressMap, DefaultHashBuilder, HashMap};
use alloy_primitives::{Address, B256, U256};
use cairn_primitives::{RecoveredTx, StateDiff, StateView, KECCAK_EMPTY};
use dashmap::DashMap;
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::context::result::ResultAndState;
use revm::context::{Context, ContextSetters, ContextTr};
use revm::database::AccountState;
use revm::database_interface::Database;
use revm::handler::Handler;
use revm::state::{Account, AccountInfo, EvmState, TransactionId};
use revm::{ExecuteEvm, MainBuilder, MainContext};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use super::handler::DeferredRewardHandler;
use crate::db::DbError;
use crate::diff::DiffBuilder;
use crate::evm::{block_env, cfg_env, tx_env};
use crate::sequential::{execute_while, SeqDb, Shortcut};
use crate::{BlockContext, BlockOutput, ExecError, Mode, Offsets};

/// Who runs a transaction: nobody yet, the helper (running, or done), the leader.
const FREE: u8 = 0;
const SPECULATING: u8 = 1;
const READY: u8 = 2;
const LEADER: u8 = 3;

/// How far ahead of the leader the helper starts when it has fallen behind: far enough
/// that its transaction is usually done when the leader gets there, near enough that
/// few of the transactions in between write what it reads.
const AHEAD: usize = 8;

/// Spins (each a `pause`, tens of nanoseconds) the leader waits for a transaction the
/// helper is running before it runs it itself: a few times a heavy transaction.
const MAX_SPINS: u32 = 20_000;

/// Furthest the helper runs ahead of the leader. Its results wait for the leader until
/// then; when the leader stalled (descheduled on this shared machine), a deposit block
/// whose speculations all held once peaked at 2.9 times the sequential run's memory
/// instead of 1.6 (`cairn bench exec`, mainnet block 15274915).
const MAX_LEAD: usize = 128;

/// Most transactions the leader runs ahead of its position while it waits for the
/// helper's.
const OWN_AHEAD: usize = 4;

/// Fewest transactions worth a lanes run: the helper starts [`AHEAD`] transactions in.
pub(crate) const MIN_TXS: usize = 16;

/// The helper does not start a transaction closer to the leader than this.
const MIN_GAP: usize = 2;

/// A value the helper read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// An account's nonce, balance and code hash (`None`: it did not exist).
    Account(Address, Option<(u64, U256, B256)>, Source),
    Slot(Address, U256, U256, Source),
    /// The recipient of a plain transfer, an account without code: no code ran there, so
    /// the transaction saw only its nonce and code hash (`None`: it did not exist), and
    /// credited the balance it had then (the last field). When the result is taken, the
    /// credit goes onto the balance the leader has ([`Leader::take`]): transfers to one
    /// address (deposits to an exchange) do not depend on each other.
    Credited(Address, Option<(u64, B256)>, U256, Source),
}

/// Where the helper read a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The state before the run.
    Base,
    /// A write published in this run (by either thread, perhaps by a speculation that
    /// did not hold).
    Published,
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
    /// Speculations the leader could not use (it executed those transactions itself).
    pub failed: usize,
}

/// The leader's writes so far, for the helper to read: best effort (a missing or
/// outdated entry only makes a speculation fail the leader's check).
struct Published {
    /// With the version of the write ([`version`]); `None`: the account does not exist
    /// (destroyed).
    accounts: DashMap<Address, (usize, Option<AccountInfo>), DefaultHashBuilder>,
    slots: DashMap<(Address, U256), (usize, U256), DefaultHashBuilder>,
    /// One bit per hash bucket of published keys: most reads are of keys nobody wrote,
    /// and skip the maps' locks.
    bits: Box<[AtomicU64]>,
}

impl Published {
    fn new(txs: usize) -> Self {
        let bits = (txs * 16).next_power_of_two().max(1 << 12);
        let shards = super::db::shard_amount(txs);
        Self {
            accounts: DashMap::with_capacity_and_hasher_and_shard_amount(
                txs * 2,
                DefaultHashBuilder::default(),
                shards,
            ),
            slots: DashMap::with_capacity_and_hasher_and_shard_amount(txs * 2, DefaultHashBuilder::default(), shards),
            bits: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bit(&self, address: &Address, slot: Option<&U256>) -> (&AtomicU64, u64) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&address.0[12..20]);
        let extra = slot.map_or(0, |s| s.as_limbs()[0] ^ s.as_limbs()[3] ^ 1);
        let h = (u64::from_le_bytes(word) ^ extra.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (h >> 32) as usize & (self.bits.len() * 64 - 1);
        (&self.bits[index / 64], 1 << (index % 64))
    }

    fn mark(&self, address: &Address, slot: Option<&U256>) {
        let (word, mask) = self.bit(address, slot);
        if word.load(Ordering::Relaxed) & mask == 0 {
            word.fetch_or(mask, Ordering::Release);
        }
    }

    fn account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        let (word, mask) = self.bit(address, None);
        if word.load(Ordering::Acquire) & mask == 0 {
            return None;
        }
        self.accounts.get(address).map(|a| a.1.clone())
    }

    fn slot(&self, address: &Address, slot: &U256) -> Option<U256> {
        let (word, mask) = self.bit(address, Some(slot));
        if word.load(Ordering::Acquire) & mask == 0 {
            return None;
        }
        self.slots.get(&(*address, *slot)).map(|v| v.1)
    }

    /// Publishes what one transaction wrote, as of `version` (a later version of a
    /// key is never replaced by an earlier one); but the beneficiary's balance, which
    /// changes with every transaction and which speculations do not read, and accounts
    /// only touched.
    fn publish(&self, state: &EvmState, beneficiary: &Address, version: usize) {
        fn newer<V>(entry: &mut (usize, V), version: usize, value: V) {
            if version > entry.0 {
                *entry = (version, value);
            }
        }
        for (address, account) in state {
            if !account.is_touched() || address == beneficiary {
                continue;
            }
            for (slot, value) in account.changed_storage_slots() {
                let value = value.present_value();
                self.slots
                    .entry((*address, *slot))
                    .and_modify(|e| newer(e, version, value))
                    .or_insert((version, value));
                self.mark(address, Some(slot));
            }
            if !(account.is_changed() || account.is_selfdestructed() || account.is_created()) {
                continue;
            }
            // Destroyed or not, its earlier slots may linger here: reading one makes a
            // speculation fail the leader's check, nothing worse.
            let info = (!account.is_selfdestructed()).then(|| {
                let mut info = account.info.clone();
                if info.code_hash == KECCAK_EMPTY {
                    info.code = None;
                }
                info
            });
            match self.accounts.entry(*address) {
                dashmap::Entry::Occupied(mut o) => newer(o.get_mut(), version, info),
                dashmap::Entry::Vacant(v) => {
                    v.insert((version, info));
                }
            }
            self.mark(address, None);
        }
    }
}

/// The account a transaction sends value to in a plain transfer that can only credit
/// it: a call with value, not to its sender or the beneficiary (whose balances the
/// transaction reads anyway), without EIP-7702 authorizations (which may give the
/// recipient code). Whether the recipient has code is seen when it is read.
fn credit_target(tx: &RecoveredTx, block: &BlockContext) -> Option<Address> {
    let to = tx.to()?;
    let plain = !tx.value().is_zero() && tx.authorization_list().is_none();
    (plain && to != tx.signer() && to != block.beneficiary).then_some(to)
}

/// How a transaction whose plain-transfer recipient is `credit` read `address`.
fn account_read(address: Address, info: Option<&AccountInfo>, credit: Option<Address>, source: Source) -> Read {
    match info {
        Some(i) if credit == Some(address) && i.code_hash == KECCAK_EMPTY => {
            Read::Credited(address, Some((i.nonce, i.code_hash)), i.balance, source)
        }
        None if credit == Some(address) => Read::Credited(address, None, U256::ZERO, source),
        _ => Read::Account(address, info.map(|i| (i.nonce, i.balance, i.code_hash)), source),
    }
}

/// The helper's database: the leader's published writes over the state before the
/// run (which does not change, so it is cached), every account and slot read recorded
/// for the leader to check.
struct SpecDb<'a, 'p> {
    view: &'a dyn StateView,
    published: &'p Published,
    accounts: AddressMap<Option<AccountInfo>>,
    slots: HashMap<(Address, U256), U256>,
    reads: Vec<Read>,
    /// The recipient of the transaction being run, if it is a plain transfer's
    /// ([`credit_target`]).
    credit: Option<Address>,
}

impl<'a, 'p> SpecDb<'a, 'p> {
    fn new(view: &'a dyn StateView, published: &'p Published) -> Self {
        Self {
            view,
            published,
            accounts: AddressMap::default(),
            slots: HashMap::default(),
            reads: Vec::with_capacity(16),
            credit: None,
        }
    }

    fn code_of(&mut self, hash: B256) -> Result<Bytecode, DbError> {
        Ok(crate::code::analyzed(hash, || self.view.code(hash))?)
    }

    /// The account before the run (cached).
    fn base_account(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        if let Some(info) = self.accounts.get(&address) {
            return Ok(info.clone());
        }
        let info = match self.view.account(address)? {
            None => None,
            Some(acc) => {
                let code = match acc.code_hash == KECCAK_EMPTY {
                    true => None,
                    false => Some(self.code_of(acc.code_hash)?),
                };
                // `code: None` for plain accounts: revm's empty code is one process-wide
                // value whose reference count both threads would bounce.
                let mut info = AccountInfo::default().without_code();
                info.balance = acc.balance;
                info.nonce = acc.nonce;
                info.code_hash = acc.code_hash;
                info.code = code;
                Some(info)
            }
        };
        self.accounts.insert(address, info.clone());
        Ok(info)
    }
}

impl Database for SpecDb<'_, '_> {
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let (info, source) = match self.published.account(&address) {
            Some(mut published) => {
                // Code of contracts created in this block comes with the account.
                if let Some(info) = published.as_mut().filter(|i| i.code.is_none() && i.code_hash != KECCAK_EMPTY) {
                    info.code = Some(self.code_of(info.code_hash)?);
                }
                (published, Source::Published)
            }
            None => (self.base_account(address)?, Source::Base),
        };
        self.reads.push(account_read(address, info.as_ref(), self.credit, source));
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        self.code_of(code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, DbError> {
        let (value, source) = match self.published.slot(&address, &index) {
            Some(value) => (value, Source::Published),
            None => match self.slots.get(&(address, index)) {
                Some(value) => (*value, Source::Base),
                None => {
                    let value = self.view.storage(address, index)?;
                    self.slots.insert((address, index), value);
                    (value, Source::Base)
                }
            },
        };
        self.reads.push(Read::Slot(address, index, value, source));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        Ok(self.view.block_hash(number)?)
    }
}

/// A transaction's claim and the helper's result.
#[repr(align(64))]
struct TxSlot {
    claim: AtomicU8,
    result: Mutex<Option<Box<Speculation>>>,
}

/// The leader's position, alone on its cache line (written by the leader at every
/// transaction, read by the helper).
#[repr(align(64))]
struct Position(AtomicUsize);

/// Everything the two lanes share.
struct Lanes<'r> {
    txs: &'r [RecoveredTx],
    /// One per transaction, each on its own cache line: the two threads work on nearby
    /// transactions at once.
    slots: Vec<TxSlot>,
    published: Published,
    /// The transaction the leader is at.
    leader_at: Position,
    /// The leader is done (or gave up): the helper stops.
    stop: AtomicBool,
    /// The helper stopped for good (done, or panicked): what it claimed stays claimed.
    helper_gone: AtomicBool,
    speculated: AtomicUsize,
}

/// Marks the helper gone however it leaves.
struct Gone<'g>(&'g AtomicBool);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Lanes<'_> {
    /// The helper: free transactions ahead of the leader, in order, until the end.
    fn speculate(&self, state: &dyn StateView, block: &BlockContext) {
        let mut evm = Context::mainnet()
            .with_db(SpecDb::new(state, &self.published))
            .with_block(block_env(block))
            .with_cfg(cfg_env(block))
            .build_mainnet();
        let mut handler = DeferredRewardHandler::<SpecDb<'_, '_>>::default();
        let mut i = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            // Caught up (the leader would reach this one before it is done): jump ahead,
            // leaving the leader the transactions in between.
            let leader = self.leader_at.0.load(Ordering::Relaxed);
            if i < leader + MIN_GAP {
                i = leader + AHEAD;
            }
            // Far enough ahead: the results waiting for the leader are bounded.
            if i >= leader + MAX_LEAD {
                std::hint::spin_loop();
                continue;
            }
            if i >= self.txs.len() {
                break;
            }
            if self.slots[i].claim.compare_exchange(FREE, SPECULATING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                i += 1;
                continue;
            }
            evm.ctx.db_mut().reads.clear();
            evm.ctx.db_mut().credit = credit_target(&self.txs[i], block);
            evm.ctx.set_tx(tx_env(&self.txs[i]));
            handler.reward.set(None);
            let outcome = handler.run(&mut evm);
            let state = evm.finalize();
            // An invalid transaction (or a failed read) is left to the leader.
            if let Ok(result) = outcome {
                // Published at once, so the helper's next transactions see it: if the
                // leader cannot use it, its own writes replace these.
                self.published.publish(&state, &block.beneficiary, helper_version(i));
                let reads = std::mem::replace(&mut evm.ctx.db_mut().reads, Vec::with_capacity(16));
                let speculation =
                    Speculation { result: ResultAndState::new(result, state), reward: handler.reward.get(), reads };
                *self.slots[i].result.lock() = Some(Box::new(speculation));
            }
            self.speculated.fetch_add(1, Ordering::Relaxed);
            self.slots[i].claim.store(READY, Ordering::Release);
            i += 1;
        }
    }
}

/// The leader's side: takes the helper's results where they hold, publishes the writes
/// of the transactions it executes itself.
struct Leader<'l, 'r> {
    lanes: &'l Lanes<'r>,
    /// The helper's pool: free again once the helper has run out of transactions, it
    /// converts half of the block's diff.
    pool: &'l rayon::ThreadPool,
    block: &'l BlockContext,
    beneficiary: Address,
    failed: usize,
    /// The transaction being included is the helper's (which published its writes).
    taken: bool,
    /// The leader's own runs of the transactions after the one it waited for (see
    /// [`Leader::offer`]), in order: offset and result (`None`: it could not run there).
    own: std::collections::VecDeque<(usize, Option<Speculation>)>,
    /// How many of those it ran, and how many did not hold.
    own_runs: usize,
    own_failed: usize,
}

/// The leader's state seen by a run of its own ahead of its position: every account and
/// slot read recorded, for [`still_holds`] once the transactions before it are in.
struct Ahead<'d, 'a> {
    db: &'d mut SeqDb<'a>,
    reads: Vec<Read>,
    credit: Option<Address>,
}

impl Database for Ahead<'_, '_> {
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let info = Database::basic(self.db, address)?;
        self.reads.push(account_read(address, info.as_ref(), self.credit, Source::Base));
        Ok(info)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        Database::code_by_hash(self.db, code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, DbError> {
        let value = Database::storage(self.db, address, index)?;
        self.reads.push(Read::Slot(address, index, value, Source::Base));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        Database::block_hash(self.db, number)
    }
}

impl Leader<'_, '_> {
    /// Runs transaction `j` on the leader's state as it is (without the transactions
    /// before `j` it has not included yet), fee deferred, reads recorded; `None` when it
    /// is invalid there or a read failed (the leader then runs it in its turn).
    fn run_ahead(&self, j: usize, db: &mut SeqDb<'_>) -> Option<Speculation> {
        let mut evm = Context::mainnet()
            .with_db(Ahead { db, reads: Vec::with_capacity(16), credit: credit_target(&self.lanes.txs[j], self.block) })
            .with_block(block_env(self.block))
            .with_cfg(cfg_env(self.block))
            .build_mainnet();
        evm.ctx.set_tx(tx_env(&self.lanes.txs[j]));
        let mut handler = DeferredRewardHandler::<Ahead<'_, '_>>::default();
        let result = handler.run(&mut evm).ok()?;
        let state = evm.finalize();
        let reads = std::mem::take(&mut evm.ctx.db_mut().reads);
        Some(Speculation { result: ResultAndState::new(result, state), reward: handler.reward.get(), reads })
    }

    /// A result run elsewhere (by the helper, or by the leader ahead of its position),
    /// if it holds on `db`, with the fee paid as revm's handler pays it.
    fn take(
        &mut self,
        speculation: Speculation,
        db: &mut SeqDb<'_>,
    ) -> Option<(ResultAndState, Option<(Address, Account)>)> {
        if !still_holds(&speculation.reads, db) {
            return None;
        }
        let mut done = speculation.result;
        for read in &speculation.reads {
            if let Read::Credited(address, _, seen, _) = *read {
                // What the transaction added, onto the balance the leader has.
                let now = Database::basic(db, address).ok()?.map_or(U256::ZERO, |i| i.balance);
                let account = done.state.get_mut(&address)?;
                let credit = account.info.balance.checked_sub(seen)?;
                account.info.balance = now.checked_add(credit)?;
            }
        }
        let mut extra = None;
        if let Some(fee) = speculation.reward {
            // As revm's handler pays it: the account as it stands (in the transaction's
            // changes if it loaded it), touched, its balance increased.
            let account = match done.state.get_mut(&self.beneficiary) {
                Some(account) => account,
                None => {
                    // A failed read is left to the leader's own execution, which
                    // reports it.
                    let loaded = match Database::basic(db, self.beneficiary).ok()? {
                        Some(info) => Account::default().with_info(info),
                        None => Account::new_not_existing(TransactionId::ZERO),
                    };
                    &mut extra.insert((self.beneficiary, loaded)).1
                }
            };
            account.mark_touch();
            if let Some(balance) = account.info.balance.checked_add(fee) {
                account.info.balance = balance;
            }
        }
        Some((done, extra))
    }
}

/// Versions of published writes: block order, and at one transaction the leader's
/// (which holds) over the helper's (which may not).
fn helper_version(tx: usize) -> usize {
    2 * tx
}

fn leader_version(tx: usize) -> usize {
    2 * tx + 1
}

impl<'a> Shortcut<'a> for Leader<'_, '_> {
    /// While the helper finishes the transaction the leader is at, the leader runs the
    /// next one itself on its state as it stands (instead of spinning), and takes that
    /// result in its turn if what it read still holds.
    fn offer(&mut self, i: usize, db: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)> {
        let lanes = self.lanes;
        lanes.leader_at.0.store(i, Ordering::Relaxed);
        self.taken = false;
        // Runs ahead of transactions it did not get to (skipped: block full) are stale.
        while self.own.front().is_some_and(|(j, _)| *j < i) {
            self.own.pop_front();
        }
        if self.own.front().is_some_and(|(j, _)| *j == i) {
            let ahead = self.own.pop_front().and_then(|(_, ahead)| ahead);
            // Claimed by the leader: its writes are published when included.
            let taken = ahead.and_then(|ahead| self.take(ahead, db));
            self.own_failed += usize::from(taken.is_none());
            return taken;
        }
        let mut spins = 0u32;
        loop {
            match lanes.slots[i].claim.compare_exchange(FREE, LEADER, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return None,
                Err(READY) => break,
                // Claimed while the leader ran ahead, which it then could not.
                Err(LEADER) => return None,
                // The helper is finishing it (it starts none right ahead of the
                // leader): waiting costs less than running it again. Unless the helper
                // is gone, or was descheduled in the middle.
                Err(_) if lanes.helper_gone.load(Ordering::Acquire) || spins > MAX_SPINS => return None,
                Err(_) => {
                    let j = self.own.back().map_or(i + 1, |(j, _)| j + 1);
                    let free =
                        || lanes.slots[j].claim.compare_exchange(FREE, LEADER, Ordering::AcqRel, Ordering::Acquire);
                    if self.own.len() < OWN_AHEAD && j < lanes.txs.len() && free().is_ok() {
                        self.own_runs += 1;
                        let ahead = self.run_ahead(j, db);
                        self.own.push_back((j, ahead));
                        continue;
                    }
                    spins += 1;
                    std::hint::spin_loop();
                }
            }
        }
        let Some(speculation) = lanes.slots[i].result.lock().take() else {
            // The helper found it invalid: the leader decides.
            self.failed += 1;
            return None;
        };
        let taken = self.take(*speculation, db);
        self.failed += usize::from(taken.is_none());
        self.taken = taken.is_some();
        taken
    }

    fn included(&mut self, offset: usize, state: &EvmState) {
        if !self.taken {
            self.lanes.published.publish(state, &self.beneficiary, leader_version(offset));
        }
    }

    /// The helper leaves once no transaction is left ahead of the leader (it never
    /// waits for the leader), so its thread is free to convert half of the diff.
    fn finish(&mut self, diff: DiffBuilder, _db: &mut SeqDb<'a>, _gas_used: u64) -> StateDiff {
        diff.finish_on(self.pool)
    }
}

/// Whether every value in `reads` is what `db` holds now. A value read from the state
/// before the run, of an account the leader's cache does not hold, still holds: the
/// leader has neither written nor read it in this run, and the check costs no read of
/// the state. A value read from the published writes is compared with the leader's,
/// loaded if needed (a published write may come from a speculation that did not hold).
pub(super) fn still_holds(reads: &[Read], db: &mut SeqDb<'_>) -> bool {
    let current = |db: &mut SeqDb<'_>, read: &Read| -> Result<bool, DbError> {
        Ok(match *read {
            Read::Account(address, seen, _) => {
                Database::basic(db, address)?.map(|i| (i.nonce, i.balance, i.code_hash)) == seen
            }
            Read::Slot(address, slot, seen, _) => Database::storage(db, address, slot)? == seen,
            Read::Credited(address, seen, _, _) => {
                Database::basic(db, address)?.map(|i| (i.nonce, i.code_hash)) == seen
            }
        })
    };
    reads.iter().all(|read| match *read {
        Read::Account(address, seen, Source::Base) => match db.cache.accounts.get(&address) {
            None => true,
            Some(acc) => {
                let now = match acc.account_state {
                    AccountState::NotExisting => None,
                    _ => Some((acc.info.nonce, acc.info.balance, acc.info.code_hash)),
                };
                now == seen
            }
        },
        Read::Credited(address, seen, _, Source::Base) => match db.cache.accounts.get(&address) {
            None => true,
            Some(acc) => {
                let now = match acc.account_state {
                    AccountState::NotExisting => None,
                    _ => Some((acc.info.nonce, acc.info.code_hash)),
                };
                now == seen
            }
        },
        Read::Slot(address, slot, seen, Source::Base) => match db.cache.accounts.get(&address) {
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
        // A failed read is left to the leader's own execution, which reports it.
        _ => current(db, read).unwrap_or(false),
    })
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
        slots: (0..txs.len()).map(|_| TxSlot { claim: AtomicU8::new(FREE), result: Mutex::new(None) }).collect(),
        published: Published::new(txs.len()),
        leader_at: Position(AtomicUsize::new(0)),
        stop: AtomicBool::new(false),
        helper_gone: AtomicBool::new(false),
        speculated: AtomicUsize::new(0),
    };
    let mut leader = Leader {
        lanes: &lanes,
        pool,
        block,
        beneficiary: block.beneficiary,
        failed: 0,
        taken: false,
        own: std::collections::VecDeque::with_capacity(OWN_AHEAD),
        own_runs: 0,
        own_failed: 0,
    };
    let mut out = None;
    pool.in_place_scope(|scope| {
        let helper = &lanes;
        scope.spawn(move |_| {
            let _gone = Gone(&helper.helper_gone);
            // A panic in the helper only costs its speculations: the leader stops
            // waiting for it and runs the rest itself.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| helper.speculate(state, block)));
        });
        out = Some(execute_while(state, block, txs, mode, at, None, Some(&mut leader)));
        lanes.stop.store(true, Ordering::Relaxed);
    });
    let (own, own_failed) = (leader.own_runs, leader.own_failed);
    let failed = leader.failed + own_failed;
    let (output, _) = out.expect("the leader ran")?;
    let speculated = lanes.speculated.load(Ordering::Relaxed) + own;
    tracing::debug!(txs = txs.len(), speculated, failed, own, own_failed, "lanes run");
    Ok((output, LaneStats { speculated, failed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ViewDb;
    use cairn_primitives::InMemoryState;
    use revm::database::CacheDB;
    use revm::database_interface::DatabaseCommit;

    fn setup() -> (InMemoryState, Address, U256) {
        let mut state = InMemoryState::default();
        let a = Address::repeat_byte(0xaa);
        state.insert(a, 1, U256::from(100), Default::default());
        let slot = U256::from(7);
        state.storage.entry(a).or_default().insert(slot, U256::from(5));
        (state, a, slot)
    }

    fn written(db: &mut SeqDb<'_>, address: Address, balance: u64, slot: Option<(U256, U256)>) {
        let mut account = Account::default().with_info(Database::basic(db, address).expect("read").unwrap_or_default());
        account.info.balance = U256::from(balance);
        if let Some((slot, value)) = slot {
            let original = Database::storage(db, address, slot).expect("read");
            account
                .storage
                .insert(slot, revm::state::EvmStorageSlot::new_changed(original, value, TransactionId::ZERO));
        }
        account.mark_touch();
        db.commit_iter(&mut std::iter::once((address, account)));
    }

    #[test]
    fn values_read_before_the_run_hold_until_the_leader_writes_them() {
        let (state, a, slot) = setup();
        let mut db: SeqDb<'_> = CacheDB::new(ViewDb(&state));
        let account = Read::Account(a, Some((1, U256::from(100), KECCAK_EMPTY)), Source::Base);
        let storage = Read::Slot(a, slot, U256::from(5), Source::Base);
        // Not loaded by the leader: unchanged, and checked without reading the state.
        assert!(still_holds(&[account, storage], &mut db));
        assert!(db.cache.accounts.is_empty(), "the check loaded nothing");
        written(&mut db, a, 90, None);
        assert!(!still_holds(&[account], &mut db), "the balance changed");
        assert!(still_holds(&[storage], &mut db), "the slot did not");
        written(&mut db, a, 90, Some((slot, U256::from(6))));
        assert!(!still_holds(&[storage], &mut db), "now it did");
    }

    #[test]
    fn published_values_are_compared_with_the_leaders_state_even_when_it_never_loaded_them() {
        let (state, a, slot) = setup();
        let mut db: SeqDb<'_> = CacheDB::new(ViewDb(&state));
        // A speculation that did not hold published 6 for the slot and 90 for the
        // balance; the leader never loaded the account: the "not loaded, so unchanged"
        // shortcut must not apply (mainnet block 15538827 caught that once).
        let stale_slot = Read::Slot(a, slot, U256::from(6), Source::Published);
        let stale_account = Read::Account(a, Some((1, U256::from(90), KECCAK_EMPTY)), Source::Published);
        assert!(!still_holds(&[stale_slot], &mut db));
        assert!(!still_holds(&[stale_account], &mut db));
        // A published value that is the leader's own is fine.
        let right_slot = Read::Slot(a, slot, U256::from(5), Source::Published);
        assert!(still_holds(&[right_slot], &mut db));
    }

    #[test]
    fn a_credited_recipient_holds_while_only_its_balance_changes() {
        let (state, a, _) = setup();
        let mut db: SeqDb<'_> = CacheDB::new(ViewDb(&state));
        let credited = Read::Credited(a, Some((1, KECCAK_EMPTY)), U256::from(100), Source::Base);
        let absent = Read::Credited(a, None, U256::ZERO, Source::Base);
        assert!(still_holds(&[credited], &mut db));
        written(&mut db, a, 70, None);
        assert!(still_holds(&[credited], &mut db), "a balance change is rebased, not a conflict");
        assert!(!still_holds(&[absent], &mut db), "the account exists now");
        let mut sent = Account::default().with_info(Database::basic(&mut db, a).expect("read").unwrap_or_default());
        sent.info.nonce = 2;
        sent.mark_touch();
        db.commit_iter(&mut std::iter::once((a, sent)));
        assert!(!still_holds(&[credited], &mut db), "the nonce changed");
        // Only the plain transfer's recipient, and only without code, is read as a credit.
        let info = AccountInfo { balance: U256::from(9), nonce: 1, ..AccountInfo::default() };
        let other = Address::repeat_byte(0xbb);
        assert!(matches!(account_read(a, Some(&info), Some(a), Source::Base), Read::Credited(..)));
        assert!(matches!(account_read(a, Some(&info), Some(other), Source::Base), Read::Account(..)));
        let contract = AccountInfo { code_hash: B256::repeat_byte(1), ..info.clone() };
        assert!(matches!(account_read(a, Some(&contract), Some(a), Source::Base), Read::Account(..)));
        assert!(matches!(account_read(a, None, Some(a), Source::Base), Read::Credited(_, None, _, _)));
    }

    #[test]
    fn a_cleared_storage_reads_zero() {
        let (state, a, slot) = setup();
        let mut db: SeqDb<'_> = CacheDB::new(ViewDb(&state));
        let mut destroyed =
            Account::default().with_info(Database::basic(&mut db, a).expect("read").unwrap_or_default());
        destroyed.mark_touch();
        destroyed.mark_selfdestruct();
        db.commit_iter(&mut std::iter::once((a, destroyed)));
        assert!(!still_holds(&[Read::Slot(a, slot, U256::from(5), Source::Base)], &mut db));
        assert!(still_holds(&[Read::Slot(a, slot, U256::ZERO, Source::Base)], &mut db));
        assert!(still_holds(&[Read::Account(a, None, Source::Base)], &mut db), "destroyed: does not exist");
    }
}
