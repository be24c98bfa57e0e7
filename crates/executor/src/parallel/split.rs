//! Two halves at once: the calling thread (the *leader*) runs the first part of the
//! block with the sequential executor while a helper thread runs the rest, also with
//! the sequential executor, against the state before the block, recording every
//! account and slot it read from that state (later reads hit its own cache) and leaving
//! the beneficiary's fees unpaid. When the leader is done, the helper stops after the
//! transaction it is running, and the leader checks what the helper read against the
//! state its own part left: the helper's transactions up to the first one that read a
//! value the leader's part changed ran exactly as they would have in order, so their
//! receipts and diff are appended as they are (gas and log positions shifted, the
//! deferred fees paid at once). What is left (the rest of the block from that
//! transaction, or from where the helper stopped) runs the same way again, in rounds,
//! while the helpers' runs hold; the rest of the block then goes to the lanes, which
//! check transaction by transaction.
//!
//! Unlike the lanes, nothing crosses between the threads per transaction: each side
//! works in its own memory, as fast as the sequential executor, and the hand-over is a
//! check of one read per distinct location and one merge of two diffs. On a block
//! whose halves do not touch the same state that is nearly the most two threads can
//! do (`cairn bench exec --ceiling`); on a block of dependent transactions the helper
//! is refuted at once and the block costs its sequential time plus one round.

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountChange, AccountState, RecoveredTx, StateDiff, StateError, StateView, KECCAK_EMPTY};
use parking_lot::Mutex;
use revm::context::result::ResultAndState;
use revm::state::{Account, EvmState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::lanes::{still_holds, Read, Source};
use super::overlay::Overlay;
use crate::diff::DiffBuilder;
use crate::sequential::{execute_at, execute_while, SeqDb, Shortcut};
use crate::{BlockContext, BlockOutput, ExecError, Mode, Offsets, Skip, TxOutcome};

/// Fewest transactions a round splits; fewer run sequentially.
pub(crate) const MIN_TXS: usize = 16;

/// What a split run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SplitStats {
    pub rounds: usize,
    /// Transactions the helpers ran.
    pub speculated: usize,
    /// Of those, the ones whose results were kept.
    pub kept: usize,
}

/// The state before a round as the helper sees it: every account and slot read is
/// recorded with the transaction that read it.
struct Recorded<'a> {
    view: &'a dyn StateView,
    /// The transaction being run (its offset in the helper's part).
    at: AtomicUsize,
    reads: Mutex<Vec<(usize, Read)>>,
}

impl StateView for Recorded<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        let account = self.view.account(address)?;
        let seen = account.map(|a| (a.nonce, a.balance, a.code_hash));
        self.reads.lock().push((self.at.load(Ordering::Relaxed), Read::Account(address, seen, Source::Base)));
        Ok(account)
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        let value = self.view.storage(address, slot)?;
        self.reads.lock().push((self.at.load(Ordering::Relaxed), Read::Slot(address, slot, value, Source::Base)));
        Ok(value)
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        self.view.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.view.block_hash(number)
    }
}

/// What the helper hands the leader when it stops.
struct HelperRun {
    /// One per transaction it ran, from the first of its part.
    outcomes: Vec<TxOutcome>,
    reads: Vec<(usize, Read)>,
    /// The deferred fees, by transaction offset.
    fees: Vec<(usize, U256)>,
}

/// The helper's side of [`execute_while`]: notes which transaction reads, stops when
/// told, defers fees, keeps its diff rewindable for the leader's verdict.
struct Helper<'h> {
    recorded: &'h Recorded<'h>,
    stop: &'h AtomicBool,
    fees: Vec<(usize, U256)>,
    diff: Option<DiffBuilder>,
}

impl<'a> Shortcut<'a> for Helper<'_> {
    fn offer(&mut self, offset: usize, _db: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)> {
        self.recorded.at.store(offset, Ordering::Relaxed);
        None
    }

    fn included(&mut self, _offset: usize, _state: &EvmState) {}

    fn stop_before(&mut self, _offset: usize) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn rewindable_diff(&self) -> bool {
        true
    }

    fn defers_fees(&self) -> bool {
        true
    }

    fn fee(&mut self, offset: usize, fee: Option<U256>) {
        if let Some(fee) = fee {
            self.fees.push((offset, fee));
        }
    }

    fn finish(&mut self, diff: DiffBuilder, _db: &mut SeqDb<'a>, _gas_used: u64) -> StateDiff {
        self.diff = Some(diff);
        StateDiff::default()
    }
}

/// The leader's side: when its part is done, stops the helper and judges its run.
struct Leader<'l> {
    stop: &'l AtomicBool,
    from_helper: Receiver<HelperRun>,
    /// How many of its recorded transactions the helper keeps in its diff.
    to_helper: Option<SyncSender<usize>>,
    /// The helper's part of the round.
    theirs: &'l [RecoveredTx],
    block: &'l BlockContext,
    mode: Mode,
    /// The helper's run and how many of its transactions hold.
    verdict: Option<(HelperRun, usize)>,
}

impl<'a> Shortcut<'a> for Leader<'_> {
    fn offer(&mut self, _offset: usize, _db: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)> {
        None
    }

    fn included(&mut self, _offset: usize, _state: &EvmState) {}

    fn finish(&mut self, diff: DiffBuilder, db: &mut SeqDb<'a>, gas_used: u64) -> StateDiff {
        self.stop.store(true, Ordering::Relaxed);
        // The helper finishes the transaction it is running (none if it panicked or a
        // state read failed: the channel is closed then).
        if let Ok(run) = self.from_helper.recv() {
            let (valid, records) = judge(&run, db, gas_used, self.theirs, self.block, self.mode);
            if let Some(to_helper) = self.to_helper.take() {
                let _ = to_helper.send(records);
            }
            self.verdict = Some((run, valid));
        }
        // Sorted here while the helper sorts its own.
        diff.finish()
    }
}

/// How many of the helper's transactions ran as they would have after the leader's
/// part (whose state is `db`, its cumulative gas `gas_before`), and how many of those
/// were included (recorded in its diff). A transaction holds when every value it read
/// from the state before the round is still the value there, it never read the
/// beneficiary's account (whose fees it did not see), the block still had room for it,
/// and, replaying, it was valid (an invalid one is left to the leader, which reports
/// it).
fn judge(
    run: &HelperRun,
    db: &mut SeqDb<'_>,
    gas_before: u64,
    theirs: &[RecoveredTx],
    block: &BlockContext,
    mode: Mode,
) -> (usize, usize) {
    let mut valid = run.outcomes.len();
    for (offset, read) in &run.reads {
        if *offset >= valid {
            break;
        }
        let beneficiary = matches!(read, Read::Account(address, _, _) if *address == block.beneficiary);
        if beneficiary || !still_holds(std::slice::from_ref(read), db) {
            valid = *offset;
            break;
        }
    }
    let mut cumulative = 0;
    let mut records = 0;
    for (k, outcome) in run.outcomes[..valid].iter().enumerate() {
        let room = gas_before.saturating_add(cumulative).saturating_add(theirs[k].gas_limit()) <= block.gas_limit;
        let kept = room
            && match outcome {
                TxOutcome::Included(receipt) => {
                    cumulative = receipt.cumulative_gas_used;
                    records += 1;
                    true
                }
                // The helper's block gas is off by the leader's: the leader decides.
                TxOutcome::Skipped(Skip::BlockFull { .. }) => false,
                TxOutcome::Skipped(_) => mode == Mode::Building,
            };
        if !kept {
            return (k, records);
        }
    }
    (valid, records)
}

/// One round's result.
struct Round {
    /// The leader's part.
    first: BlockOutput,
    /// The helper's transactions that hold (positions and gas already after the
    /// leader's), and the fees they deferred (`None`: none was charged).
    second: Option<(BlockOutput, usize, Option<U256>)>,
    /// Transactions the helper ran.
    speculated: usize,
}

/// Runs `txs[..split]` on the calling thread and as much of `txs[split..]` as it can
/// on the pool's thread meanwhile.
fn round(
    pool: &rayon::ThreadPool,
    view: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    split: usize,
    mode: Mode,
    at: Offsets,
) -> Result<Round, ExecError> {
    let (ours, theirs) = txs.split_at(split);
    let stop = AtomicBool::new(false);
    let (to_leader, from_helper) = sync_channel::<HelperRun>(1);
    let (to_helper, from_leader) = sync_channel::<usize>(1);
    let mut helper_diff: Option<StateDiff> = None;
    let mut leader_out = None;
    let mut verdict = None;
    pool.in_place_scope(|scope| {
        let (stop, helper_diff) = (&stop, &mut helper_diff);
        scope.spawn(move |_| {
            let recorded = Recorded { view, at: AtomicUsize::new(0), reads: Mutex::new(Vec::new()) };
            let mut helper = Helper { recorded: &recorded, stop, fees: Vec::new(), diff: None };
            let helper_at = Offsets { index: at.index + split, gas: 0, logs: 0 };
            // Its gas and log positions start at zero: the leader shifts them.
            let Ok((out, _)) =
                execute_while(&recorded, block, theirs, Mode::Building, helper_at, None, Some(&mut helper))
            else {
                // A failed state read: the leader runs these itself, and reports it.
                return;
            };
            let (fees, diff) = (helper.fees, helper.diff);
            let run = HelperRun { outcomes: out.outcomes, reads: recorded.reads.into_inner(), fees };
            if to_leader.send(run).is_err() {
                return;
            }
            if let (Ok(kept), Some(mut diff)) = (from_leader.recv(), diff) {
                diff.rewind(kept);
                *helper_diff = Some(diff.finish());
            }
        });
        // However the leader leaves (an error, a panic), the helper stops and stops
        // waiting for it.
        let _stop = StopOnDrop(stop);
        let mut leader = Leader { stop, from_helper, to_helper: Some(to_helper), theirs, block, mode, verdict: None };
        leader_out = Some(execute_while(view, block, ours, mode, at, None, Some(&mut leader)));
        verdict = leader.verdict.take();
    });
    let (first, _) = leader_out.expect("the leader ran")?;
    let Some((run, valid)) = verdict else { return Ok(Round { first, second: None, speculated: 0 }) };
    let speculated = run.outcomes.len();
    let Some(diff) = helper_diff.filter(|_| valid > 0) else { return Ok(Round { first, second: None, speculated }) };
    let first_log = at.logs + super::log_count(&first.outcomes);
    let gas_before = first.gas_used;
    let mut gas_used = gas_before;
    let outcomes: Vec<TxOutcome> = run
        .outcomes
        .into_iter()
        .take(valid)
        .map(|mut outcome| {
            if let TxOutcome::Included(receipt) = &mut outcome {
                receipt.cumulative_gas_used += gas_before;
                receipt.first_log_index += first_log;
                gas_used = receipt.cumulative_gas_used;
            }
            outcome
        })
        .collect();
    let fees = run.fees.iter().take_while(|(offset, _)| *offset < valid).map(|(_, fee)| *fee);
    let fee = fees.reduce(|a, b| a.saturating_add(b));
    Ok(Round { first, second: Some((BlockOutput { outcomes, gas_used, diff }, valid, fee)), speculated })
}

struct StopOnDrop<'s>(&'s AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Pays the beneficiary `fee` as the sequential executor's transactions would have one
/// by one: the account as `diff` over `state` has it, touched (so an empty one is
/// deleted, EIP-161), its balance increased.
fn pay(diff: &mut StateDiff, state: &dyn StateView, beneficiary: Address, fee: U256) -> Result<(), StateError> {
    let before = match diff.accounts.get(&beneficiary) {
        Some(change) => change.info,
        None => state.account(beneficiary)?,
    };
    let mut after = before.unwrap_or(AccountState { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY });
    after.balance = after.balance.saturating_add(fee);
    let empty = after.nonce == 0 && after.balance.is_zero() && after.code_hash == KECCAK_EMPTY;
    let change = diff.accounts.entry(beneficiary).or_default();
    if empty {
        *change = AccountChange { info: None, storage_wiped: true, ..AccountChange::default() };
    } else {
        change.info = Some(after);
    }
    Ok(())
}

/// The leader's part of `txs`: the first `share` of their gas limits.
fn split_point(txs: &[RecoveredTx], share: f64) -> usize {
    let total: u128 = txs.iter().map(|tx| tx.gas_limit() as u128).sum();
    let target = (total as f64 * share) as u128;
    let mut sum = 0u128;
    let mut split = txs.len() / 2;
    for (i, tx) in txs.iter().enumerate() {
        sum += tx.gas_limit() as u128;
        if sum >= target {
            split = i + 1;
            break;
        }
    }
    split.clamp(1, txs.len() - 1)
}

/// The leader's share of the first round: a small one, a trial. A block whose
/// transactions depend on each other across it (one hot contract, many pools each
/// swapped all through the block) refutes the helper there at little cost and goes to
/// the lanes, which check transaction by transaction.
const TRIAL_SHARE: f64 = 1.0 / 16.0;

/// Share of a round's helper transactions that must hold for the next round to split
/// again (else the lanes take the rest).
const KEEP_GOING: f64 = 0.9;

/// Blocks projected to run shorter than this sequentially go to the lanes without a
/// trial: on the 62 mainnet blocks (0.1 to 17 ms), whose popular contracts (WETH, the
/// large tokens and pools) are everywhere, trials were refuted or cut short on most
/// and cost 8% of the lanes' total speedup (1.04x against 1.12x, `cairn bench exec`,
/// docs/BENCHMARKS.md); the gigagas blocks (100 ms and more) gain from them.
pub(crate) const SPLIT_ABOVE: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs `txs` in rounds of two parts on the calling thread and one thread of `pool`
/// while the helper's runs hold (a trial round, then halves of what is left; none
/// unless `trial`), then the rest with the lanes; the output is the sequential
/// executor's. (Rounds growing from the trial by doubling, so that a refutation wastes
/// less, measured slower on the gigagas blocks: 1.30-1.36x against 1.41-1.56x on raw
/// transfers; each round costs two diff conversions and a merge.)
pub(crate) fn run(
    pool: &rayon::ThreadPool,
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    mode: Mode,
    start: Offsets,
    trial: bool,
) -> Result<(BlockOutput, SplitStats, super::lanes::LaneStats), ExecError> {
    let mut out = BlockOutput { gas_used: start.gas, ..Default::default() };
    let mut at = start;
    let mut stats = SplitStats::default();
    let mut i = 0;
    let mut share = TRIAL_SHARE;
    while trial && txs.len() - i >= MIN_TXS {
        let part = &txs[i..];
        let split = split_point(part, share);
        share = 0.5;
        let view = Overlay::new(state, &out.diff);
        let round = round(pool, &view, block, part, split, mode, at)?;
        stats.rounds += 1;
        stats.speculated += round.speculated;
        super::absorb(&mut out, &mut at, round.first, split);
        i += split;
        // Refuted at its first transaction, or it ran none while the leader ran its
        // part (a short block whose helper had not started: mainnet block 15274915
        // went on to split its halves, and the leader ran one half alone).
        let Some((second, valid, fee)) = round.second else { break };
        stats.kept += valid;
        super::absorb(&mut out, &mut at, second, valid);
        i += valid;
        if let Some(fee) = fee {
            pay(&mut out.diff, state, block.beneficiary, fee)
                .map_err(|e| ExecError::State { index: at.index, reason: e.to_string() })?;
        }
        // Too few held, or too few ran to tell (mainnet block 11743952: five heavy
        // transactions held in the trial, then the helper's half was refuted at once).
        if (valid as f64) < KEEP_GOING * round.speculated as f64 || round.speculated < MIN_TXS {
            break;
        }
    }
    let mut lanes = super::lanes::LaneStats::default();
    if i < txs.len() {
        let view = Overlay::new(state, &out.diff);
        let part = match txs.len() - i >= super::lanes::MIN_TXS {
            true => {
                let (part, stats) = super::lanes::run(pool, &view, block, &txs[i..], mode, at)?;
                lanes = stats;
                part
            }
            false => execute_at(&view, block, &txs[i..], mode, at)?,
        };
        super::absorb(&mut out, &mut at, part, txs.len() - i);
    }
    tracing::debug!(
        txs = txs.len(),
        rounds = stats.rounds,
        speculated = stats.speculated,
        kept = stats.kept,
        lanes = lanes.speculated,
        "split run"
    );
    Ok((out, stats, lanes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::TxKind;
    use cairn_primitives::{ChainConfig, InMemoryState};
    use cairn_workload::gigagas::{address, recovered};

    /// How many of `txs[split..]` the leader keeps after running `txs[..split]`: both
    /// parts run here, one after the other, as a round runs them at once.
    fn verdict(state: &InMemoryState, block: &BlockContext, txs: &[RecoveredTx], split: usize, mode: Mode) -> usize {
        let (ours, theirs) = txs.split_at(split);
        let recorded = Recorded { view: state, at: AtomicUsize::new(0), reads: Mutex::new(Vec::new()) };
        let stop = AtomicBool::new(false);
        let mut helper = Helper { recorded: &recorded, stop: &stop, fees: Vec::new(), diff: None };
        let at = Offsets { index: split, gas: 0, logs: 0 };
        let (out, done) =
            execute_while(&recorded, block, theirs, Mode::Building, at, None, Some(&mut helper)).expect("helper");
        assert_eq!(done, theirs.len());
        let fees = std::mem::take(&mut helper.fees);
        drop(helper);
        let run = HelperRun { outcomes: out.outcomes, reads: recorded.reads.into_inner(), fees };

        struct Judge<'j> {
            run: &'j HelperRun,
            theirs: &'j [RecoveredTx],
            block: &'j BlockContext,
            mode: Mode,
            valid: Option<usize>,
        }
        impl<'a> Shortcut<'a> for Judge<'_> {
            fn offer(&mut self, _: usize, _: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)> {
                None
            }
            fn included(&mut self, _: usize, _: &EvmState) {}
            fn finish(&mut self, diff: DiffBuilder, db: &mut SeqDb<'a>, gas_used: u64) -> StateDiff {
                self.valid = Some(judge(self.run, db, gas_used, self.theirs, self.block, self.mode).0);
                diff.finish()
            }
        }
        let mut judge = Judge { run: &run, theirs, block, mode, valid: None };
        execute_while(state, block, ours, mode, Offsets::default(), None, Some(&mut judge)).expect("leader");
        judge.valid.expect("judged")
    }

    fn world(senders: u64) -> (InMemoryState, BlockContext) {
        let mut state = InMemoryState::default();
        for i in 0..senders {
            state.insert(address(0x10, i), 0, U256::from(10u128.pow(18)), Bytes::new());
        }
        let chain = ChainConfig { fee_recipient: address(0xbe, 0), ..Default::default() };
        let block = BlockContext::for_chain(&chain, 1, 1_700_000_000, 30_000_000, B256::ZERO);
        state.insert(block.beneficiary, 0, U256::from(10u128.pow(18)), Bytes::new());
        (state, block)
    }

    fn payment(from: u64, nonce: u64, to: Address) -> RecoveredTx {
        recovered(address(0x10, from), nonce, TxKind::Call(to), U256::from(1_000), Vec::new(), 21_000)
    }

    #[test]
    fn the_helper_run_holds_up_to_its_first_read_of_what_the_leaders_part_changed() {
        let (state, block) = world(16);
        let independent: Vec<RecoveredTx> = (0..16).map(|i| payment(i, 0, address(0x70, i))).collect();
        assert_eq!(verdict(&state, &block, &independent, 8, Mode::Replay), 8, "nothing shared");
        // The helper's fourth transaction pays the account the leader's first paid.
        let mut later = independent.clone();
        later[11] = payment(11, 0, address(0x70, 0));
        assert_eq!(verdict(&state, &block, &later, 8, Mode::Replay), 3);
        // Its second spends from a sender of the leader's part (nonce 1 after it).
        let mut chain = independent.clone();
        chain[9] = payment(2, 1, address(0x70, 9));
        assert_eq!(verdict(&state, &block, &chain, 8, Mode::Replay), 1);
        // Its third pays the beneficiary, whose fees it never saw.
        let mut fee = independent.clone();
        fee[10] = payment(10, 0, block.beneficiary);
        assert_eq!(verdict(&state, &block, &fee, 8, Mode::Replay), 2);
    }

    #[test]
    fn invalid_transactions_hold_when_building_and_are_left_to_the_leader_when_replaying() {
        let (state, block) = world(16);
        let mut txs: Vec<RecoveredTx> = (0..16).map(|i| payment(i, 0, address(0x70, i))).collect();
        // A nonce gap in the helper's part: skipped when building, an error replaying.
        txs[12] = payment(12, 5, address(0x70, 12));
        assert_eq!(verdict(&state, &block, &txs, 8, Mode::Building), 8);
        assert_eq!(verdict(&state, &block, &txs, 8, Mode::Replay), 4);
    }

    #[test]
    fn the_block_gas_left_after_the_leaders_part_bounds_the_helpers() {
        let (state, mut block) = world(16);
        let txs: Vec<RecoveredTx> = (0..16).map(|i| payment(i, 0, address(0x70, i))).collect();
        // Room for 13 transfers: the leader's 8, then 5 of the helper's.
        block.gas_limit = 13 * 21_000;
        assert_eq!(verdict(&state, &block, &txs, 8, Mode::Building), 5);
    }

    #[test]
    fn a_deferred_fee_paid_at_once_equals_the_fees_paid_one_by_one() {
        let (state, block) = world(2);
        let empty = address(0x71, 0);
        let mut diff = StateDiff::default();
        pay(&mut diff, &state, block.beneficiary, U256::from(5)).expect("pay");
        assert_eq!(diff.accounts[&block.beneficiary].info.map(|i| i.balance), Some(U256::from(10u128.pow(18) + 5)));
        // A fee to an account that does not exist creates it; a zero one leaves it
        // deleted, as touching an empty account does (EIP-161).
        pay(&mut diff, &state, empty, U256::ZERO).expect("pay");
        assert_eq!(diff.accounts[&empty].info, None);
        pay(&mut diff, &state, empty, U256::from(3)).expect("pay");
        assert_eq!(diff.accounts[&empty].info.map(|i| (i.nonce, i.balance)), Some((0, U256::from(3))));
    }
}
