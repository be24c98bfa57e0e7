//! Block-STM (Gelashvili et al., 2022) over revm: transactions execute optimistically
//! on several threads against a multi-version memory, record what they read, are
//! validated in order after the fact and re-executed when a read went stale. The
//! result is the one sequential execution gives, bit for bit.
//!
//! EVM-specific parts:
//! - the beneficiary's fee is applied as a balance *delta* ([`handler`]), and the
//!   recipient of a plain ETH transfer (no code, value > 0) is credited by a delta
//!   without reading its balance, so fee payments and payments to a popular address do
//!   not serialize a block; a transaction that does read such a balance (a `BALANCE`
//!   of `COINBASE`, spending from it) sums the deltas before it and depends on them;
//! - an account's storage wipe (self-destruct, creation over an address) is a location
//!   of its own, so re-creation inside one block reads zeros, not stale slots;
//! - anything the parallel run cannot vouch for (a failed state read, an invalid
//!   transaction in replay mode, a block-gas violation) is redone by the sequential
//!   executor, so errors are the sequential ones too.

mod db;
pub(crate) mod handler;
mod lanes;
mod mv;
pub(crate) mod overlay;
mod scheduler;
mod split;

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, TxKind, U256};
use cairn_primitives::{AccountState, RecoveredTx, StateView, StoredReceipt, KECCAK_EMPTY};
use parking_lot::Mutex;
use revm::context::result::{EVMError, InvalidTransaction};
use revm::context::{Context, ContextSetters, ContextTr};
use revm::handler::Handler;
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{ExecuteEvm, MainBuilder, MainContext};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::diff::{AccountUpdate, DiffBuilder, SortedDiff};
use crate::evm::{block_env, cfg_env, tx_env};
use crate::sequential::{classify, execute_at, execute_while, receipt_of, reject, Probe};
use crate::Offsets;
use crate::{BlockContext, BlockOutput, ExecError, Executor, Mode, Skip, TxOutcome};
use db::{ParDbError, Served, Shared, TxDb};
use handler::{DeferredRewardHandler, ParEvm};
use mv::{Loc, Meta, MvMemory, TxIdx, Value};
use scheduler::{Scheduler, Task};

/// Blocks with fewer transactions than this run sequentially (see docs/BENCHMARKS.md
/// for the measurement behind the default).
pub const DEFAULT_MIN_PARALLEL_TXS: usize = 8;

/// Block-STM executor; identical results to [`crate::SequentialExecutor`].
#[derive(Debug, Clone)]
pub struct ParallelExecutor {
    threads: usize,
    /// The helper threads (`threads - 1`; the calling thread is the other worker).
    /// They live as long as the executor: spawning threads per block cost the spawn
    /// itself and, worse, a fresh allocator heap each time, whose pages the kernel
    /// had to zero again on every block.
    pool: Option<Arc<rayon::ThreadPool>>,
    min_txs: usize,
    /// Use the rules that send blocks Block-STM cannot speed up to the sequential
    /// executor (off only in tests that must exercise the parallel path).
    heuristics: bool,
    /// Blocks projected to run faster than this sequentially are run sequentially.
    sequential_below: std::time::Duration,
    strategy: Strategy,
}

/// How the parallel executor spreads a block over its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Block-STM over all the threads.
    BlockStm,
    /// Two lanes (two threads): the calling thread runs the block in order and takes
    /// the results of transactions a helper ran a few positions ahead of it, where
    /// every value they read still holds (`lanes`). Measured faster than Block-STM on
    /// two threads on every workload of `cairn bench exec` but the hot pool (equal).
    Lanes,
    /// Two parts at once (two threads), then the lanes: the calling thread runs the
    /// first part of the block while a helper runs the rest against the state before
    /// it; the helper's transactions up to the first that read something the first
    /// part changed are kept, and the rest runs the same way again, while the helper's
    /// runs hold (`split`); what is left goes to the lanes. Blocks projected under
    /// 20 ms go to the lanes at once. The default on two threads: on `cairn bench
    /// exec` it matches the lanes on the mainnet blocks and gains 0.15-0.3x on the
    /// gigagas transfer blocks, for 0.1x less on the independent swaps.
    Split,
}

impl ParallelExecutor {
    /// An executor using `threads` threads (the calling one included).
    pub fn new(threads: usize) -> Self {
        Self::with_thread_start(threads, || {})
    }

    /// Like [`ParallelExecutor::new`], running `start` on each helper thread first (the
    /// node gives them the builder's scheduling priority: the builder waits for them).
    pub fn with_thread_start(threads: usize, start: impl Fn() + Send + Sync + 'static) -> Self {
        let threads = threads.max(1);
        let pool = (threads > 1).then(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads - 1)
                .thread_name(|i| format!("block-stm-{i}"))
                .start_handler(move |_| start())
                .build()
                .expect("spawning the executor's threads");
            Arc::new(pool)
        });
        let strategy = if threads == 2 { Strategy::Split } else { Strategy::BlockStm };
        Self {
            threads,
            pool,
            min_txs: DEFAULT_MIN_PARALLEL_TXS,
            heuristics: true,
            sequential_below: SEQUENTIAL_BELOW,
            strategy,
        }
    }

    /// Overrides the strategy (lanes need exactly two threads; with more, Block-STM
    /// runs).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// One thread per available core.
    pub fn with_available_parallelism() -> Self {
        Self::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    /// Runs smaller blocks (and building rounds) sequentially.
    pub fn min_parallel_txs(mut self, min_txs: usize) -> Self {
        self.min_txs = min_txs.max(2);
        self
    }

    /// Runs every block of at least `min_parallel_txs` through Block-STM, however
    /// dependent its transactions (for tests of the parallel path).
    pub fn always_parallel(mut self) -> Self {
        self.heuristics = false;
        self
    }

    /// Overrides the projected sequential time under which a block runs sequentially
    /// (`Duration::ZERO`: always continue in parallel after the timing probe).
    pub fn sequential_below(mut self, below: std::time::Duration) -> Self {
        self.sequential_below = below;
        self
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The strategy blocks (from Spurious Dragon on) run with: the lanes and the split
    /// need two threads.
    pub fn strategy_used(&self) -> Strategy {
        match (self.strategy, self.threads) {
            (Strategy::Lanes, 2) => Strategy::Lanes,
            (Strategy::Split, 2) => Strategy::Split,
            _ => Strategy::BlockStm,
        }
    }
}

/// What a parallel execution did, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// Transactions executed by Block-STM (the rest ran sequentially).
    pub parallel_txs: usize,
    /// Executions, re-executions included (`executions - parallel_txs` were wasted).
    pub executions: usize,
    /// Parallel runs whose result was discarded and redone sequentially.
    pub fallbacks: usize,
    /// Runs sent to the sequential executor up front: their dependency chains leave
    /// nothing to parallelize.
    pub predicted_sequential: usize,
    /// Transactions the lanes' helper ran ahead.
    pub speculated: usize,
    /// Of those, the ones whose reads no longer held when the leader reached them.
    pub speculations_failed: usize,
}

/// Longest chain of transactions that must run one after another, as far as it can be
/// told before executing: a sender's transactions (nonce order), and value transfers
/// into the same contract (each reads and writes its balance).
fn longest_chain(state: &dyn StateView, txs: &[RecoveredTx]) -> usize {
    let mut by_sender: alloy_primitives::map::AddressMap<usize> = Default::default();
    let mut into_contract: alloy_primitives::map::AddressMap<(bool, usize)> = Default::default();
    let mut longest = 0;
    for tx in txs {
        let n = by_sender.entry(tx.signer()).or_default();
        *n += 1;
        longest = longest.max(*n);
        if let (TxKind::Call(to), false) = (tx.kind(), tx.value().is_zero()) {
            let entry = into_contract.entry(to).or_insert_with(|| {
                let has_code = matches!(state.account(to), Ok(Some(a)) if a.code_hash != KECCAK_EMPTY);
                (has_code, 0)
            });
            if entry.0 {
                entry.1 += 1;
                longest = longest.max(entry.1);
            }
        }
    }
    longest
}

/// Logs of the included transactions among `outcomes`.
fn log_count(outcomes: &[TxOutcome]) -> u64 {
    outcomes
        .iter()
        .map(|o| match o {
            TxOutcome::Included(r) => r.logs.len() as u64,
            TxOutcome::Skipped(_) => 0,
        })
        .sum()
}

/// Appends `part`, the output of the next `count` transactions, to `out`.
fn absorb(out: &mut BlockOutput, at: &mut Offsets, part: BlockOutput, count: usize) {
    at.logs += log_count(&part.outcomes);
    at.gas = part.gas_used;
    at.index += count;
    out.gas_used = part.gas_used;
    if out.outcomes.is_empty() {
        out.outcomes = part.outcomes;
    } else {
        out.outcomes.extend(part.outcomes);
    }
    out.diff.extend(part.diff);
}

/// Transactions run sequentially first to time a block (at most half of it).
const PROBE_TXS: usize = 8;

/// Blocks projected (from the probe) to take less than this sequentially run
/// sequentially: on the 2-core reference machine, starting the second worker and
/// assembling its output costs tens of microseconds, and the mainnet blocks whose
/// sequential time was under ~0.45 ms ran at 0.6–0.9× in parallel, those from 0.5 to
/// 0.55 ms at about 1.0× (`cairn bench exec`); the margin covers the probe's
/// extrapolation from its first transactions.
const SEQUENTIAL_BELOW: std::time::Duration = std::time::Duration::from_micros(600);

/// Block-STM on two threads gains nothing when one chain holds more than this share
/// of the transactions (the chain runs at sequential speed plus the overhead of the
/// parallel machinery); measured with `cairn bench exec` on the mainnet payout blocks.
const MAX_CHAIN_SHARE: f64 = 0.6;

impl Executor for ParallelExecutor {
    fn execute_from(
        &self,
        state: &dyn StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
        at: Offsets,
    ) -> Result<BlockOutput, ExecError> {
        self.execute_with_stats(state, block, txs, mode, at).map(|(out, _)| out)
    }
}

impl ParallelExecutor {
    /// [`Executor::execute_from`], also reporting how the work was done.
    pub fn execute_with_stats(
        &self,
        state: &dyn StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
        start: Offsets,
    ) -> Result<(BlockOutput, ParallelStats), ExecError> {
        let mut stats = ParallelStats::default();
        if self.threads < 2 || txs.len() < self.min_txs {
            return Ok((execute_at(state, block, txs, mode, start)?, stats));
        }
        let mut out = BlockOutput { gas_used: start.gas, ..Default::default() };
        let mut at = start;
        // `i`: position in `txs`; `at.index`: position in the block.
        let mut i = 0;
        // The sequential time of the whole block as the probe projects it (unknown
        // without the probe).
        let projected = std::cell::Cell::new(None);
        if self.heuristics {
            // Run the first few transactions sequentially and look at them. A block
            // whose projected sequential time is below what starting the other thread
            // and assembling its output costs, or whose probed transactions all wrote
            // one storage slot (a hot contract: they form one dependency chain, which
            // Block-STM would run at sequential speed plus its overhead), runs
            // sequentially to the end, in the same run.
            let probe = PROBE_TXS.min(txs.len() / 2);
            let whole = txs.len() as f64 / probe as f64;
            // The lanes' helper starts a few transactions ahead of the leader: on a short
            // rest it would run nothing (mainnet block 2462997, 9 heavy transactions,
            // ran at 0.5-0.6x after the probe handed its last 5 to a fresh run).
            let few_left = match self.strategy_used() {
                Strategy::Lanes => txs.len() - probe < lanes::MIN_TXS,
                Strategy::Split => txs.len() - probe < split::MIN_TXS,
                Strategy::BlockStm => false,
            };
            let stay_sequential = |p: Probe| {
                projected.set(Some(p.took.mul_f64(whole)));
                let small = p.took.mul_f64(whole) < self.sequential_below;
                small || few_left || (p.shared_write && probe == PROBE_TXS)
            };
            let (part, done) = execute_while(state, block, txs, mode, at, Some((probe, &stay_sequential)), None)?;
            absorb(&mut out, &mut at, part, done);
            i = done;
            if i == txs.len() {
                stats.predicted_sequential += 1;
                return Ok((out, stats));
            }
            // Looked at only now: on a block the probe already keeps sequential (most
            // small ones) the scan over senders and recipients is pure overhead.
            if longest_chain(state, txs) as f64 > MAX_CHAIN_SHARE * txs.len() as f64 {
                stats.predicted_sequential += 1;
                let view = overlay::Overlay::new(state, &out.diff);
                let part = execute_at(&view, block, &txs[i..], mode, at)?;
                absorb(&mut out, &mut at, part, txs.len() - i);
                return Ok((out, stats));
            }
        }
        let two_apply = block.spec >= SpecId::SPURIOUS_DRAGON;
        if let (true, Strategy::Split, Some(pool)) = (two_apply, self.strategy_used(), self.pool.as_ref()) {
            // As the lanes below (Spurious Dragon on: the deferred fees are paid at once).
            let view = overlay::Overlay::new(state, &out.diff);
            let rest = &txs[i..];
            // Short blocks go to the lanes at once (see `split::SPLIT_ABOVE`).
            let trial = projected.get().is_none_or(|p| p >= split::SPLIT_ABOVE);
            let (part, split, lanes) = split::run(pool, &view, block, rest, mode, at, trial)?;
            absorb(&mut out, &mut at, part, rest.len());
            stats.parallel_txs += rest.len();
            stats.executions += rest.len() + split.speculated - split.kept + lanes.failed;
            stats.speculated += split.speculated + lanes.speculated;
            stats.speculations_failed += split.speculated - split.kept + lanes.failed;
            return Ok((out, stats));
        }
        let lanes_apply = self.strategy_used() == Strategy::Lanes && two_apply;
        if let (true, Some(pool)) = (lanes_apply, self.pool.as_ref()) {
            // Both modes in one pass: the leader decides validity and block gas in
            // order, as the sequential executor does. (Before Spurious Dragon a zero
            // fee materializes an empty beneficiary, which the leader's payment does
            // not reproduce: those blocks take Block-STM below.)
            let view = overlay::Overlay::new(state, &out.diff);
            let rest = &txs[i..];
            let (part, lanes) = lanes::run(pool, &view, block, rest, mode, at)?;
            absorb(&mut out, &mut at, part, rest.len());
            stats.parallel_txs += rest.len();
            stats.executions += rest.len() + lanes.failed;
            stats.speculated += lanes.speculated;
            stats.speculations_failed += lanes.failed;
            return Ok((out, stats));
        }
        if mode == Mode::Replay {
            // A valid block never runs out of block gas; if this one does, the
            // sequential run reports the same error.
            let view = overlay::Overlay::new(state, &out.diff);
            let rest = &txs[i..];
            let part = match self.run(&view, block, rest, mode, at, &mut stats) {
                Some(part) => part,
                None => execute_at(&view, block, rest, mode, at)?,
            };
            absorb(&mut out, &mut at, part, rest.len());
            return Ok((out, stats));
        }
        // Building: run in rounds, each a prefix of the remaining transactions whose gas
        // limits fit in the gas left, so that no transaction inside a round can find the
        // block full; what a round leaves out is decided with the real gas used.
        while i < txs.len() {
            let gas_left = block.gas_limit.saturating_sub(at.gas);
            let first = &txs[i];
            if first.gas_limit() > gas_left {
                let skip = Skip::BlockFull { gas_limit: first.gas_limit(), gas_left };
                out.outcomes.push(reject(mode, at.index, first, skip)?);
                at.index += 1;
                i += 1;
                continue;
            }
            let mut end = i;
            let mut sum = 0u64;
            while end < txs.len() && sum + txs[end].gas_limit() <= gas_left {
                sum += txs[end].gas_limit();
                end += 1;
            }
            let round = &txs[i..end];
            let view = overlay::Overlay::new(state, &out.diff);
            let ran =
                if round.len() >= self.min_txs { self.run(&view, block, round, mode, at, &mut stats) } else { None };
            let part = match ran {
                Some(part) => part,
                None => execute_at(&view, block, round, mode, at)?,
            };
            absorb(&mut out, &mut at, part, end - i);
            i = end;
        }
        Ok((out, stats))
    }
}

/// The result of one transaction's last incarnation, in the compact form the block
/// output needs.
enum TxResult {
    Executed {
        /// Cumulative gas and first log index are filled in when the block is assembled
        /// (`None` once moved into the output).
        receipt: Option<StoredReceipt>,
        effects: Effects,
    },
    Invalid(InvalidTransaction),
}

/// What an executed transaction did to the state, applied to the block diff in order.
struct Effects {
    updates: Vec<(Address, AccountUpdate)>,
    /// The recipient credited by a delta (its balance in `updates` is the delta).
    lazy_to: Option<Address>,
    /// Fee owed to the beneficiary, which `updates` does not contain.
    reward: Option<U256>,
}

#[derive(Default)]
struct Slot {
    reads: Vec<(Loc, mv::Origin)>,
    result: Option<TxResult>,
}

struct Run<'r, 'a> {
    shared: &'r Shared<'a>,
    scheduler: &'r Scheduler,
    slots: &'r [Mutex<Slot>],
    txs: &'r [RecoveredTx],
    block: &'r BlockContext,
    fatal: &'r AtomicBool,
    executions: &'r AtomicUsize,
    /// Executions of first incarnations (the rest were wasted work).
    first_runs: &'r AtomicUsize,
    /// Validations that aborted an incarnation.
    aborts: &'r AtomicUsize,
    /// Give up (and let the sequential executor run) when early waste is high.
    bail_early: bool,
    /// For each transaction, the previous transaction of the same sender, if any.
    previous_by_sender: &'r [Option<TxIdx>],
}

impl ParallelExecutor {
    /// One parallel run over `txs`; `None` when the result must come from the
    /// sequential executor instead.
    fn run(
        &self,
        state: &dyn StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
        at: Offsets,
        stats: &mut ParallelStats,
    ) -> Option<BlockOutput> {
        let shared =
            Shared::new(MvMemory::new(txs.len()), db::Base::new(state, txs.len()), block.beneficiary, txs.len());
        let scheduler = Scheduler::new(txs.len());
        let mut slots: Vec<Mutex<Slot>> = (0..txs.len()).map(|_| Mutex::new(Slot::default())).collect();
        let fatal = AtomicBool::new(false);
        let executions = AtomicUsize::new(0);
        let first_runs = AtomicUsize::new(0);
        let aborts = AtomicUsize::new(0);
        let mut last_of_sender = alloy_primitives::map::AddressMap::default();
        let previous_by_sender: Vec<Option<TxIdx>> =
            txs.iter().enumerate().map(|(i, tx)| last_of_sender.insert(tx.signer(), i)).collect();
        let run = Run {
            previous_by_sender: &previous_by_sender,
            shared: &shared,
            scheduler: &scheduler,
            slots: &slots,
            txs,
            block,
            fatal: &fatal,
            executions: &executions,
            first_runs: &first_runs,
            aborts: &aborts,
            bail_early: self.heuristics,
        };
        let t0 = std::time::Instant::now();
        let pool = self.pool.as_ref()?;
        pool.in_place_scope(|scope| {
            for _ in 1..self.threads.min(txs.len()) {
                scope.spawn(|_| run.work());
            }
            run.work();
        });
        stats.executions += executions.load(Ordering::Relaxed);
        let t1 = std::time::Instant::now();
        let (mv, base) = shared.into_parts();
        let assembled = if fatal.load(Ordering::Acquire) {
            None
        } else {
            // Below a few hundred transactions, handing work to the other thread costs
            // more than the work itself.
            let shards = if txs.len() < SMALL_RUN { 1 } else { self.threads };
            finalize(pool, shards, &base, &mut slots, txs, block, mode, at)
        };
        // The run's memory is freed before returning, so that the next block reuses it
        // (a detached free left the next run to fault in fresh pages); on the other
        // thread while this one joins the diff's shards, which it does alone.
        let mut out = None;
        if txs.len() < SMALL_RUN {
            drop((mv, slots));
            out = assembled.map(Assembled::join);
        } else {
            pool.in_place_scope(|scope| {
                scope.spawn(move |_| drop((mv, slots)));
                out = assembled.map(Assembled::join);
            });
        }
        tracing::debug!(txs = txs.len(), execute = ?(t1 - t0), assemble = ?t1.elapsed(), "parallel run");
        match out {
            Some(_) => stats.parallel_txs += txs.len(),
            None => stats.fallbacks += 1,
        }
        out
    }
}

impl<'r, 'a> Run<'r, 'a> {
    fn work(&self) {
        // A panicking worker must not leave the others waiting for its tasks forever.
        let _halt_on_panic = HaltOnPanic(self);
        let mut evm: ParEvm<'r, 'a> = Context::mainnet()
            .with_db(TxDb::new(self.shared))
            .with_block(block_env(self.block))
            .with_cfg(cfg_env(self.block))
            .build_mainnet();
        let mut handler = DeferredRewardHandler::default();
        let mut task = None;
        loop {
            task = match task {
                Some(Task::Execute(tx, inc)) => self.execute(&mut evm, &mut handler, tx, inc),
                Some(Task::Validate(tx, inc)) => self.validate(tx, inc),
                None if self.scheduler.done() => break,
                None => self.scheduler.next_task(),
            };
        }
    }

    fn fail(&self) -> Option<Task> {
        self.fatal.store(true, Ordering::Release);
        self.scheduler.halt();
        None
    }

    fn execute(
        &self,
        evm: &mut ParEvm<'r, 'a>,
        handler: &mut DeferredRewardHandler<TxDb<'r, 'a>>,
        tx: TxIdx,
        incarnation: mv::Incarnation,
    ) -> Option<Task> {
        let recovered = &self.txs[tx];
        // A sender's transactions can only run in nonce order: wait for the previous
        // one instead of executing on a nonce that is sure to be stale.
        if let Some(previous) = self.previous_by_sender[tx] {
            if self.scheduler.add_dependency(tx, previous) {
                return None;
            }
        }
        let lazy_to = lazy_recipient(recovered, self.block);
        let mut runs = 0;
        loop {
            runs += 1;
            evm.ctx.db_mut().reset(tx, lazy_to);
            evm.ctx.set_tx(tx_env(recovered));
            handler.reward.set(None);
            let outcome = handler.run(evm);
            let mut state = evm.finalize();
            let (result, writes, fee) = match outcome {
                Err(EVMError::Database(ParDbError::Blocked(blocking))) => {
                    if self.scheduler.add_dependency(tx, blocking) {
                        self.executions.fetch_add(runs, Ordering::Relaxed);
                        return None;
                    }
                    continue;
                }
                Err(EVMError::Transaction(err)) => (TxResult::Invalid(err), Vec::new(), U256::ZERO),
                Err(_) => return self.fail(),
                Ok(result) => {
                    let db = evm.ctx.db_mut();
                    let mut reward = handler.reward.get();
                    if let (Some(fee), Some(beneficiary)) = (reward, state.get_mut(&self.block.beneficiary)) {
                        // The beneficiary was loaded (its balance read): pay it in place.
                        beneficiary.info.balance = beneficiary.info.balance.saturating_add(fee);
                        beneficiary.mark_touch();
                        reward = None;
                    }
                    let lazy_to = lazy_to.filter(|to| db.served.get(to).is_some_and(|s| s.lazy));
                    let writes = writes_of(&state, &db.served);
                    let mut updates = Vec::with_capacity(state.len());
                    updates.extend(state.iter().filter_map(|(a, acc)| Some((*a, AccountUpdate::of(acc)?))));
                    let receipt = Some(receipt_of(recovered, result, 0, 0, self.block.base_fee));
                    let effects = Effects { updates, lazy_to, reward };
                    (TxResult::Executed { receipt, effects }, writes, reward.unwrap_or_default())
                }
            };
            let first_completion = {
                let mut slot = self.slots[tx].lock();
                // Copied at its exact size (kept until the block is done); the worker's
                // buffer is reused for its next transaction.
                slot.reads.clear();
                slot.reads.extend_from_slice(&evm.ctx.db_mut().reads);
                slot.result.replace(result).is_none()
            };
            let executions = self.executions.fetch_add(runs, Ordering::Relaxed) + runs;
            if first_completion {
                let first = self.first_runs.fetch_add(1, Ordering::Relaxed) + 1;
                // A look every sixty-fourth of the block through its first half: if the
                // runs so far that were wasted (re-executions, runs stopped by an
                // estimate) and the aborts waiting to be re-run exceed half the useful
                // ones, the block is a chain of conflicts (one hot contract): hand it
                // to the sequential executor while little work is lost.
                let step = BAIL_CHECK.max(self.txs.len() / 64);
                let looking = first.is_multiple_of(step) && first <= self.txs.len() / 2;
                let wasted = executions.saturating_sub(first) + self.aborts.load(Ordering::Relaxed);
                if self.bail_early && looking && wasted * 2 > first {
                    return self.fail();
                }
            }
            let wrote_new = self.shared.mv.record(tx, incarnation, writes);
            self.shared.set_fee(tx, Some(fee));
            return self.scheduler.finish_execution(tx, incarnation, wrote_new);
        }
    }

    fn validate(&self, tx: TxIdx, incarnation: mv::Incarnation) -> Option<Task> {
        let valid = self.shared.validate(tx, &self.slots[tx].lock().reads);
        let aborted = !valid && self.scheduler.try_validation_abort(tx, incarnation);
        if aborted {
            self.aborts.fetch_add(1, Ordering::Relaxed);
            self.shared.mv.convert_writes_to_estimates(tx);
            self.shared.set_fee(tx, None);
        }
        self.scheduler.finish_validation(tx, aborted)
    }
}

struct HaltOnPanic<'g, 'r, 'a>(&'g Run<'r, 'a>);

impl Drop for HaltOnPanic<'_, '_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fatal.store(true, Ordering::Release);
            self.0.scheduler.halt();
        }
    }
}

/// Runs with fewer transactions assemble their output and free their memory on the
/// calling thread alone.
const SMALL_RUN: usize = 256;

/// Transactions executed before the early-waste check may run.
const BAIL_CHECK: usize = 32;

/// The recipient a transaction may credit without reading its balance: a call with
/// value to someone else than the sender and the beneficiary, outside the precompile
/// range, by a transaction type without authorizations. Whether it has code is only
/// known at read time (`TxDb::basic` checks it).
fn lazy_recipient(tx: &RecoveredTx, block: &BlockContext) -> Option<Address> {
    let TxKind::Call(to) = tx.kind() else { return None };
    let plain_type = matches!(tx.inner(), cairn_primitives::TxEnvelope::Legacy(_))
        || matches!(tx.inner(), cairn_primitives::TxEnvelope::Eip2930(_))
        || matches!(tx.inner(), cairn_primitives::TxEnvelope::Eip1559(_));
    let precompile_range = to.0[..18].iter().all(|b| *b == 0);
    (plain_type && !tx.value().is_zero() && to != tx.signer() && to != block.beneficiary && !precompile_range)
        .then_some(to)
}

/// The locations a finished transaction changed, compared with what it read.
fn writes_of(state: &EvmState, served: &alloy_primitives::map::AddressMap<Served>) -> Vec<(Loc, Value)> {
    let mut writes = Vec::with_capacity(2 * state.len() + 4);
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        let address = *address;
        let served = served.get(&address);
        if served.is_some_and(|s| s.lazy) {
            writes.push((Loc::Balance(address), Value::Delta(account.info.balance)));
            continue;
        }
        let (read_meta, read_balance) = match served {
            Some(s) => (s.meta.as_ref().map(|m| (m.nonce, m.code_hash)), Some(s.balance)),
            None => (None, None),
        };
        if account.is_selfdestructed() {
            if served.is_none_or(|s| s.meta.is_some()) {
                writes.push((Loc::Info(address), Value::Info(None)));
            }
            if read_balance != Some(U256::ZERO) {
                writes.push((Loc::Balance(address), Value::Balance(U256::ZERO)));
            }
            writes.push((Loc::Wipe(address), Value::Wipe));
            continue;
        }
        if account.is_created() {
            writes.push((Loc::Wipe(address), Value::Wipe));
        }
        if read_meta != Some((account.info.nonce, account.info.code_hash)) || served.is_none() {
            let meta = Meta {
                nonce: account.info.nonce,
                code_hash: account.info.code_hash,
                code: account.info.code.clone().filter(|_| account.info.code_hash != KECCAK_EMPTY),
            };
            writes.push((Loc::Info(address), Value::Info(Some(std::sync::Arc::new(meta)))));
        }
        if read_balance != Some(account.info.balance) {
            writes.push((Loc::Balance(address), Value::Balance(account.info.balance)));
        }
        for (slot, value) in &account.storage {
            if value.is_changed() {
                writes.push((Loc::Storage(address, *slot), Value::Storage(value.present_value())));
            }
        }
    }
    writes
}

/// Which of `count` diff shards owns `address` (the account's info is applied by that
/// shard alone; its storage slots are shared out by slot).
fn shard_of(address: &Address, count: usize) -> usize {
    (address.0[0] ^ address.0[19]) as usize % count
}

/// The block output with its state diff still in shards.
struct Assembled {
    outcomes: Vec<TxOutcome>,
    gas_used: u64,
    parts: Vec<SortedDiff>,
}

impl Assembled {
    fn join(self) -> BlockOutput {
        BlockOutput { outcomes: self.outcomes, gas_used: self.gas_used, diff: SortedDiff::merge(self.parts) }
    }
}

/// Turns the validated results into the block output: receipts in order on this
/// thread while `shards` threads build the state diff, each for its own accounts
/// (absolute balances for delta-credited accounts, the beneficiary's fee).
#[allow(clippy::too_many_arguments)]
fn finalize(
    pool: &rayon::ThreadPool,
    shards: usize,
    base: &db::Base<'_>,
    slots: &mut [Mutex<Slot>],
    txs: &[RecoveredTx],
    block: &BlockContext,
    mode: Mode,
    at: Offsets,
) -> Option<Assembled> {
    let mut heads = Vec::with_capacity(txs.len());
    let mut effects = Vec::with_capacity(txs.len());
    for slot in slots.iter_mut() {
        match slot.get_mut().result.as_mut()? {
            TxResult::Invalid(err) => {
                heads.push(Err(&*err));
                effects.push(None);
            }
            TxResult::Executed { receipt, effects: e } => {
                heads.push(Ok(receipt));
                effects.push(Some(&*e));
            }
        }
    }
    let shards = shards.max(1);
    let mut parts: Vec<Option<SortedDiff>> = (0..shards).map(|_| None).collect();
    let mut receipts = None;
    if shards == 1 {
        parts[0] = diff_shard(base, &effects, block, 0, 1);
        let (outcomes, gas_used) = assemble_receipts(heads, txs, block, mode, at)?;
        let parts = parts.into_iter().collect::<Option<Vec<_>>>()?;
        return Some(Assembled { outcomes, gas_used, parts });
    }
    pool.in_place_scope(|scope| {
        let (first, rest) = parts.split_first_mut().expect("at least one shard");
        for (i, part) in rest.iter_mut().enumerate() {
            let effects = &effects;
            scope.spawn(move |_| *part = diff_shard(base, effects, block, i + 1, shards));
        }
        *first = diff_shard(base, &effects, block, 0, shards);
        receipts = assemble_receipts(heads, txs, block, mode, at);
    });
    let (outcomes, gas_used) = receipts?;
    let parts = parts.into_iter().collect::<Option<Vec<_>>>()?;
    Some(Assembled { outcomes, gas_used, parts })
}

/// Receipts with their cumulative gas and log positions, in order; `None` when the
/// block is invalid in a way the sequential run must report.
fn assemble_receipts(
    heads: Vec<Result<&mut Option<StoredReceipt>, &InvalidTransaction>>,
    txs: &[RecoveredTx],
    block: &BlockContext,
    mode: Mode,
    at: Offsets,
) -> Option<(Vec<TxOutcome>, u64)> {
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut gas_used = at.gas;
    let mut log_count = at.logs;
    for (head, recovered) in heads.into_iter().zip(txs) {
        match head {
            Err(err) => match mode {
                Mode::Replay => return None,
                Mode::Building => outcomes.push(TxOutcome::Skipped(classify(err))),
            },
            Ok(receipt) => {
                if gas_used.saturating_add(recovered.gas_limit()) > block.gas_limit {
                    return None;
                }
                let mut receipt = receipt.take()?;
                receipt.cumulative_gas_used = gas_used + receipt.gas_used;
                receipt.first_log_index = log_count;
                gas_used = receipt.cumulative_gas_used;
                log_count += receipt.logs.len() as u64;
                outcomes.push(TxOutcome::Included(receipt));
            }
        }
    }
    Some((outcomes, gas_used))
}

/// The state diff of the accounts shard `shard` of `count` owns, applying every
/// transaction's effects in order.
fn diff_shard(
    base: &db::Base<'_>,
    effects: &[Option<&Effects>],
    block: &BlockContext,
    shard: usize,
    count: usize,
) -> Option<SortedDiff> {
    let mine = |address: &Address| shard_of(address, count) == shard;
    // Slots are shared out separately, so one contract's many slots (a token's
    // balances) do not all land on the shard that owns the contract.
    let my_slot = |slot: &U256| (slot.as_limbs()[0] ^ slot.as_limbs()[3]) as usize % count == shard;
    let mut diff = DiffBuilder::with_capacity(2 * effects.len() / count + 16);
    // The account as the transactions so far left it; every balance write comes from a
    // transaction that recorded the account, so one the diff lacks has its base value.
    let current = |diff: &DiffBuilder, address: Address| -> Option<Option<AccountState>> {
        if let Some(info) = diff.current(&address) {
            return Some(info);
        }
        Some(base.account(address).ok()?.map(|(meta, balance)| AccountState {
            nonce: meta.nonce,
            balance,
            code_hash: meta.code_hash,
        }))
    };
    let beneficiary_here = mine(&block.beneficiary);
    for effects in effects.iter().flatten() {
        let lazy = match effects.lazy_to.filter(mine) {
            Some(to) => Some((to, current(&diff, to)?.map(|i| i.balance).unwrap_or_default())),
            None => None,
        };
        for (address, update) in &effects.updates {
            let owner = mine(address);
            match lazy {
                Some((to, before)) if owner && to == *address => {
                    let mut update = update.clone();
                    update.info.balance = before.saturating_add(update.info.balance);
                    diff.apply_part(*address, &update, true, my_slot);
                }
                _ => diff.apply_part(*address, update, owner, my_slot),
            }
        }
        if let (Some(fee), true) = (effects.reward, beneficiary_here) {
            let info = current(&diff, block.beneficiary)?;
            if info.is_none() && fee.is_zero() && block.spec < SpecId::SPURIOUS_DRAGON {
                // Before EIP-161 a zero fee creates an empty beneficiary account,
                // which deltas cannot express: let the sequential run do it.
                return None;
            }
            let mut info = info.unwrap_or_default();
            info.balance = info.balance.saturating_add(fee);
            let deleted = info.balance.is_zero() && info.nonce == 0 && info.code_hash == KECCAK_EMPTY;
            let update = AccountUpdate { deleted, created: false, info, code: None, storage: Vec::new() };
            diff.apply(block.beneficiary, &update);
        }
    }
    Some(diff.into_sorted())
}
