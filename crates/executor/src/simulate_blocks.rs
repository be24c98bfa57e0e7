//! `eth_simulateV1`'s execution: a sequence of simulated blocks on top of a state, each
//! with its own context, state edits (the overrides) and calls, run one after another
//! on one accumulating state, nothing committed. With `validation` the calls are
//! checked as transactions are (nonce, funds for gas, base fee); without, as `eth_call`
//! runs them. With `trace_transfers` every ETH transfer also shows as an ERC-20 style
//! `Transfer` log from 0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE (revm-inspectors'
//! transfer inspector).

use alloy_primitives::map::HashMap;
use alloy_primitives::{keccak256, Address, Bytes, Log, U256};
use cairn_primitives::StateView;
use revm::bytecode::Bytecode;
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{Context, TxEnv};
use revm::database::CacheDB;
use revm::database_interface::Database;
use revm::inspector::{InspectEvm, NoOpInspector};
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use revm_inspectors::transfer::TransferInspector;

use crate::db::{DbError, ViewDb};
use crate::simulate::{call_env, CallRequest};
use crate::BlockContext;

/// One change the overrides make to the state before a block's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEdit {
    Balance(Address, U256),
    Nonce(Address, u64),
    Code(Address, Bytes),
    /// Slots set; `replace` clears every other slot of the account first (`state`).
    Storage {
        address: Address,
        slots: Vec<(U256, U256)>,
        replace: bool,
    },
}

/// One simulated block to run.
#[derive(Debug, Clone)]
pub struct SimBlockInput {
    pub ctx: BlockContext,
    pub edits: Vec<StateEdit>,
    pub calls: Vec<CallRequest>,
}

/// What one simulated call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCallOutput {
    pub success: bool,
    pub gas_used: u64,
    /// Return data, or revert data.
    pub output: Bytes,
    pub logs: Vec<Log>,
    /// Why it halted (out of gas, invalid opcode, …); `None` when it returned or reverted.
    pub halt: Option<String>,
    /// The nonce it ran with (filled in when the call gave none).
    pub nonce: u64,
    /// Its gas limit (filled in when the call gave none).
    pub gas_limit: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// A call that cannot run as a transaction: the code is the one `eth_simulateV1`
    /// specifies for it (-38010 … -38026, -32000 otherwise).
    #[error("block {block}, call {call}: {message}")]
    Invalid { block: usize, call: usize, code: i32, message: String },
    #[error("state read failed: {0}")]
    State(String),
}

fn state_err(e: DbError) -> SimError {
    SimError::State(e.to_string())
}

fn apply(db: &mut CacheDB<ViewDb<'_>>, edit: &StateEdit) -> Result<(), SimError> {
    let address = match edit {
        StateEdit::Balance(a, _) | StateEdit::Nonce(a, _) | StateEdit::Code(a, _) => *a,
        StateEdit::Storage { address, .. } => *address,
    };
    let mut info = db.basic(address).map_err(state_err)?.unwrap_or_default();
    match edit {
        StateEdit::Balance(_, b) => info.balance = *b,
        StateEdit::Nonce(_, n) => info.nonce = *n,
        StateEdit::Code(_, code) => {
            info.code_hash = if code.is_empty() { alloy_primitives::KECCAK256_EMPTY } else { keccak256(code) };
            info.code = Some(Bytecode::new_raw(code.clone()));
        }
        StateEdit::Storage { slots, replace, .. } => {
            db.insert_account_info(address, info);
            if *replace {
                let all: HashMap<U256, U256> = slots.iter().copied().collect();
                db.replace_account_storage(address, all.into_iter().collect()).map_err(state_err)?;
            } else {
                for (slot, value) in slots {
                    db.insert_account_storage(address, *slot, *value).map_err(state_err)?;
                }
            }
            return Ok(());
        }
    }
    db.insert_account_info(address, info);
    Ok(())
}

/// The code `eth_simulateV1` gives a transaction-validity failure.
fn invalid_code(e: &InvalidTransaction) -> i32 {
    match e {
        InvalidTransaction::NonceTooLow { .. } => -38010,
        InvalidTransaction::NonceTooHigh { .. } => -38011,
        InvalidTransaction::GasPriceLessThanBasefee => -38012,
        InvalidTransaction::CallGasCostMoreThanGasLimit { .. }
        | InvalidTransaction::GasFloorMoreThanGasLimit { .. } => -38013,
        InvalidTransaction::LackOfFundForMaxFee { .. } => -38014,
        InvalidTransaction::CallerGasLimitMoreThanBlock => -38015,
        _ => -32000,
    }
}

/// Runs `blocks` in order on `state`.
pub fn simulate_blocks(
    state: &dyn StateView,
    blocks: &[SimBlockInput],
    validation: bool,
    trace_transfers: bool,
    gas_cap: u64,
) -> Result<Vec<Vec<SimCallOutput>>, SimError> {
    let mut db = CacheDB::new(ViewDb(state));
    let mut out = Vec::with_capacity(blocks.len());
    for (b, block) in blocks.iter().enumerate() {
        for edit in &block.edits {
            apply(&mut db, edit)?;
        }
        let mut used = 0u64;
        let mut results = Vec::with_capacity(block.calls.len());
        for (c, req) in block.calls.iter().enumerate() {
            let from = req.from.unwrap_or_default();
            let nonce = match req.nonce {
                Some(n) => n,
                None => db.basic(from).map_err(state_err)?.map_or(0, |a| a.nonce),
            };
            let left = block.ctx.gas_limit.saturating_sub(used);
            let gas = req.gas.unwrap_or(left.min(gas_cap));
            if gas > left {
                return Err(SimError::Invalid {
                    block: b,
                    call: c,
                    code: -38015,
                    message: format!("block gas limit reached: call gas {gas}, block gas left {left}"),
                });
            }
            let mut req = req.clone();
            req.nonce = Some(nonce);
            let (tx, mut cfg, blk) = call_env(state, &block.ctx, &req, gas).map_err(|e| SimError::Invalid {
                block: b,
                call: c,
                code: -32000,
                message: e.to_string(),
            })?;
            if validation {
                cfg.disable_nonce_check = false;
                cfg.disable_base_fee = false;
            }
            let result = run(&mut db, tx, cfg, blk, trace_transfers).map_err(|e| match e {
                EVMError::Transaction(t) => {
                    SimError::Invalid { block: b, call: c, code: invalid_code(&t), message: t.to_string() }
                }
                EVMError::Database(e) => state_err(e),
                other => SimError::Invalid { block: b, call: c, code: -32000, message: other.to_string() },
            })?;
            let gas_used = result.tx_gas_used();
            used += gas_used;
            results.push(match result {
                ExecutionResult::Success { output, logs, .. } => SimCallOutput {
                    success: true,
                    gas_used,
                    output: output.into_data(),
                    logs,
                    halt: None,
                    nonce,
                    gas_limit: gas,
                },
                ExecutionResult::Revert { output, logs, .. } => {
                    SimCallOutput { success: false, gas_used, output, logs, halt: None, nonce, gas_limit: gas }
                }
                ExecutionResult::Halt { reason, logs, .. } => SimCallOutput {
                    success: false,
                    gas_used,
                    output: Bytes::new(),
                    logs,
                    halt: Some(format!("{reason:?}")),
                    nonce,
                    gas_limit: gas,
                },
            });
        }
        out.push(results);
    }
    Ok(out)
}

/// One call on `db`, its changes committed there.
fn run(
    db: &mut CacheDB<ViewDb<'_>>,
    tx: TxEnv,
    cfg: revm::context::CfgEnv,
    blk: revm::context::BlockEnv,
    trace_transfers: bool,
) -> Result<ExecutionResult, EVMError<DbError>> {
    let ctx = Context::mainnet().with_db(db).with_block(blk).with_cfg(cfg);
    if trace_transfers {
        let mut evm = ctx.build_mainnet_with_inspector(TransferInspector::new(false).with_logs(true));
        let out = evm.inspect_tx(tx)?;
        evm.commit(out.state);
        Ok(out.result)
    } else {
        let mut evm = ctx.build_mainnet_with_inspector(NoOpInspector);
        let out = evm.transact(tx)?;
        evm.commit(out.state);
        Ok(out.result)
    }
}
