use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, U256};
use cairn_primitives::{RecoveredTx, StateDiff, StateView, StoredReceipt};
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction, ResultAndState};
use revm::context::{Context, ContextSetters, ContextTr};
use revm::database::CacheDB;
use revm::database_interface::DatabaseCommit;
use revm::handler::Handler;
use revm::state::Account;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

use crate::parallel::handler::DeferredRewardHandler;

use crate::db::ViewDb;
use crate::diff::{AccountUpdate, DiffBuilder};
use crate::evm::{block_env, cfg_env, tx_env};
use crate::{BlockContext, BlockOutput, ExecError, Executor, Mode, Offsets, Skip, TxOutcome};

/// Executes transactions one after another on a single revm instance: the reference
/// every other executor is checked against.
#[derive(Debug, Default, Clone, Copy)]
pub struct SequentialExecutor;

impl Executor for SequentialExecutor {
    fn execute_from(
        &self,
        state: &dyn StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
        at: Offsets,
    ) -> Result<BlockOutput, ExecError> {
        execute_at(state, block, txs, mode, at)
    }
}

/// Runs `txs` one after another, as the part of a block that starts at `at`.
pub(crate) fn execute_at(
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    mode: Mode,
    at: Offsets,
) -> Result<BlockOutput, ExecError> {
    execute_while(state, block, txs, mode, at, None, None).map(|(out, _)| out)
}

/// The sequential executor's database: the state as the transactions so far left it,
/// over the state before the run.
pub(crate) type SeqDb<'a> = CacheDB<ViewDb<'a>>;

/// What the lanes executor's leading thread adds to the sequential loop.
pub(crate) trait Shortcut<'a> {
    /// The result of the transaction at `offset`, computed elsewhere, if it still holds
    /// on `db`, the state the transactions before it left (`None`: execute it here);
    /// with one more account the transaction changed that its state changes lack (the
    /// beneficiary's fee).
    fn offer(&mut self, offset: usize, db: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)>;
    /// The state changes of the transaction at `offset`, about to be committed.
    fn included(&mut self, offset: usize, state: &revm::state::EvmState);
    /// Whether the run stops before the transaction at `offset` (it returns what it did
    /// so far).
    fn stop_before(&mut self, _offset: usize) -> bool {
        false
    }
    /// Whether the run's diff must be able to drop its last transactions
    /// ([`DiffBuilder::rewindable`]).
    fn rewindable_diff(&self) -> bool {
        false
    }
    /// Whether the fee each transaction owes the beneficiary is left unpaid and handed
    /// to [`Shortcut::fee`] instead (so that the run never reads the beneficiary's
    /// balance for it).
    fn defers_fees(&self) -> bool {
        false
    }
    /// The fee the transaction at `offset` owes the beneficiary, when deferred (`None`:
    /// fees are not charged).
    fn fee(&mut self, _offset: usize, _fee: Option<U256>) {}
    /// The run's diff, once its last transaction is in (where the shortcut has threads
    /// to spare for it), given the state the run left and its cumulative gas.
    fn finish(&mut self, diff: DiffBuilder, _db: &mut SeqDb<'a>, _gas_used: u64) -> StateDiff {
        diff.finish()
    }
}

/// What the first transactions of a run showed, at a checkpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// Time they took.
    pub took: std::time::Duration,
    /// Some storage slot was written by every one of them that was included (and at
    /// least two were): they form one dependency chain.
    pub shared_write: bool,
}

/// After the first `n` transactions, asks `go_on` (given what they showed) whether this
/// run goes on with the rest (`false`: it stops there).
pub(crate) type Checkpoint<'a> = (usize, &'a dyn Fn(Probe) -> bool);

/// [`execute_at`] that may stop at a checkpoint, and may take results from a shortcut;
/// returns the output and how many of `txs` it covers.
pub(crate) fn execute_while<'a>(
    state: &'a dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    mode: Mode,
    at: Offsets,
    checkpoint: Option<Checkpoint<'_>>,
    mut shortcut: Option<&mut dyn Shortcut<'a>>,
) -> Result<(BlockOutput, usize), ExecError> {
    let started = std::time::Instant::now();
    let mut db = CacheDB::new(ViewDb(state));
    // Two or three accounts a transaction: growing the map as they come rehashed it
    // over and over.
    db.cache.accounts.reserve(2 * txs.len());
    let mut evm = Context::mainnet().with_db(db).with_block(block_env(block)).with_cfg(cfg_env(block)).build_mainnet();
    let mut diff = DiffBuilder::with_capacity(txs.len() + 16);
    if shortcut.as_ref().is_some_and(|s| s.rewindable_diff()) {
        diff = diff.rewindable();
    }
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut gas_used = at.gas;
    let mut log_count = at.logs;
    // Slots written by every included transaction before the checkpoint (`None`: none
    // included yet), and how many were included.
    let mut common: Option<Vec<(Address, U256)>> = None;
    let mut included = 0usize;
    let defers_fees = shortcut.as_ref().is_some_and(|s| s.defers_fees());
    let mut handler = DeferredRewardHandler::<SeqDb<'a>>::default();
    let mut done = txs.len();

    for (offset, tx) in txs.iter().enumerate() {
        if shortcut.as_mut().is_some_and(|s| s.stop_before(offset)) {
            done = offset;
            break;
        }
        if let Some((n, go_on)) = checkpoint {
            if offset == n {
                let shared_write = included >= 2 && common.as_ref().is_some_and(|c| !c.is_empty());
                if !go_on(Probe { took: started.elapsed(), shared_write }) {
                    return Ok((BlockOutput { outcomes, gas_used, diff: diff.finish() }, offset));
                }
            }
        }
        let index = at.index + offset;
        let reject = |skip: Skip| reject(mode, index, tx, skip);
        let limit = tx.gas_limit();
        if gas_used.saturating_add(limit) > block.gas_limit {
            let gas_left = block.gas_limit.saturating_sub(gas_used);
            outcomes.push(reject(Skip::BlockFull { gas_limit: limit, gas_left })?);
            continue;
        }
        let offered = shortcut.as_mut().and_then(|s| s.offer(offset, evm.ctx.db_mut()));
        let (executed, extra) = match offered {
            Some((done, extra)) => (Ok(done), extra),
            None if defers_fees => {
                // `transact` with the fee left unpaid.
                evm.ctx.set_tx(tx_env(tx));
                handler.reward.set(None);
                let outcome = handler.run(&mut evm);
                let state = evm.finalize();
                if outcome.is_ok() {
                    if let Some(s) = shortcut.as_mut() {
                        s.fee(offset, handler.reward.get());
                    }
                }
                (outcome.map(|result| ResultAndState::new(result, state)), None)
            }
            None => (evm.transact(tx_env(tx)), None),
        };
        match executed {
            Ok(out) => {
                if checkpoint.is_some_and(|(n, _)| offset < n) {
                    let written = out.state.iter().flat_map(|(address, account)| {
                        account.changed_storage_slots().map(move |(slot, _)| (*address, *slot))
                    });
                    match &mut common {
                        None => common = Some(written.collect()),
                        Some(common) => {
                            let written: Vec<(Address, U256)> = written.collect();
                            common.retain(|w| written.contains(w));
                        }
                    }
                    included += 1;
                }
                diff.record(&out.state);
                if let Some(s) = shortcut.as_mut() {
                    s.included(offset, &out.state);
                }
                evm.commit(out.state);
                if let Some((address, account)) = extra {
                    if let Some(update) = AccountUpdate::of(&account) {
                        diff.apply(address, &update);
                    }
                    evm.ctx.db_mut().commit_iter(&mut std::iter::once((address, account)));
                }
                let receipt = receipt_of(tx, out.result, gas_used, log_count, block.base_fee);
                gas_used = receipt.cumulative_gas_used;
                log_count += receipt.logs.len() as u64;
                outcomes.push(TxOutcome::Included(receipt));
            }
            Err(EVMError::Transaction(err)) => outcomes.push(reject(classify(&err))?),
            Err(EVMError::Database(err)) => return Err(ExecError::State { index, reason: err.to_string() }),
            Err(other) => return Err(ExecError::Evm { index, reason: other.to_string() }),
        }
    }
    let diff = match shortcut {
        Some(s) => s.finish(diff, evm.ctx.db_mut(), gas_used),
        None => diff.finish(),
    };
    Ok((BlockOutput { outcomes, gas_used, diff }, done))
}

/// A transaction that cannot be included: skipped when building, fatal when replaying.
pub(crate) fn reject(mode: Mode, index: usize, tx: &RecoveredTx, skip: Skip) -> Result<TxOutcome, ExecError> {
    match (mode, skip) {
        (Mode::Building, skip) => Ok(TxOutcome::Skipped(skip)),
        (Mode::Replay, Skip::Invalid(reason) | Skip::Later(reason)) => {
            Err(ExecError::InvalidTx { index, hash: *tx.tx_hash(), reason })
        }
        (Mode::Replay, Skip::BlockFull { gas_limit, gas_left }) => Err(ExecError::InvalidTx {
            index,
            hash: *tx.tx_hash(),
            reason: format!("gas limit reached: tx gas {gas_limit}, block gas left {gas_left}"),
        }),
    }
}

/// Nonce gaps may close later, and a fee cap below this block's base fee may be enough
/// when the base fee falls again (geth keeps such transactions pending too); everything
/// else about an invalid transaction is final.
pub(crate) fn classify(err: &InvalidTransaction) -> Skip {
    match err {
        InvalidTransaction::NonceTooHigh { .. } | InvalidTransaction::GasPriceLessThanBasefee => {
            Skip::Later(err.to_string())
        }
        _ => Skip::Invalid(err.to_string()),
    }
}

pub(crate) fn receipt_of(
    tx: &RecoveredTx,
    result: ExecutionResult,
    cumulative_before: u64,
    first_log_index: u64,
    base_fee: u64,
) -> StoredReceipt {
    let gas_used = result.tx_gas_used();
    let success = result.is_success();
    let contract_address = result.created_address().unwrap_or(Address::ZERO);
    StoredReceipt {
        tx_type: tx.tx_type() as u8,
        success,
        cumulative_gas_used: cumulative_before + gas_used,
        gas_used,
        effective_gas_price: tx.effective_gas_price(Some(base_fee)),
        from: tx.signer(),
        contract_address,
        first_log_index,
        logs: result.into_logs(),
    }
}
