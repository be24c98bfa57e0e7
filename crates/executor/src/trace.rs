//! Tracing with the inspectors reth uses (`revm-inspectors`): geth's tracers (struct
//! logger, `callTracer`, `prestateTracer`, `4byteTracer`, `noopTracer`, …) and Parity's
//! `trace_*` traces, for transactions of a block (re-executed in order, one after
//! another, from the state before the block) and for calls; and the access list a call
//! touches (`eth_createAccessList`).
//!
//! A block is re-executed by the sequential loop whatever executor built it, and every
//! re-executed transaction's gas is checked against the block's receipt: a replay that
//! diverges is an error ([`TraceError::Diverged`]), never a wrong trace. So the traces
//! of a block the parallel executor built are those of a sequential execution.

use alloy_eips::eip2930::AccessList;
use alloy_primitives::map::HashSet;
use alloy_primitives::B256;
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use alloy_rpc_types_trace::parity::{TraceResults, TraceType, TransactionTrace};
use cairn_primitives::{RecoveredTx, StateView};
use revm::context::result::{EVMError, ExecutionResult, ResultAndState};
use revm::context::{BlockEnv, Context, TxEnv};
use revm::database::CacheDB;
use revm::handler::MainnetContext;
use revm::inspector::{InspectEvm, Inspector};
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use revm_inspectors::access_list::AccessListInspector;
use revm_inspectors::tracing::{DebugInspector, TracingInspector, TracingInspectorConfig, TransactionContext};

use crate::db::{DbError, ViewDb};
use crate::evm::{block_env, cfg_env, tx_env};
use crate::simulate::{call_env, call_gas, CallRequest};
use crate::BlockContext;

/// The database a replay runs on: the state the transactions so far left, over the
/// state before the block.
pub type TraceDb<'a> = CacheDB<ViewDb<'a>>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TraceError {
    /// The tracer options are not ones this node runs.
    #[error("{0}")]
    Options(String),
    /// A transaction of the block re-executed to another gas figure than its receipt's.
    #[error("replay of transaction {index} diverged from the block: gas {got}, receipt {expected}")]
    Diverged { index: usize, expected: u64, got: u64 },
    #[error("transaction {index} cannot be replayed: {reason}")]
    Invalid { index: usize, reason: String },
    /// The call cannot run at all (funds for its value, bad fee fields, …).
    #[error("{0}")]
    Call(String),
    #[error("state read failed: {0}")]
    State(String),
}

fn evm_error(index: usize, e: EVMError<DbError>) -> TraceError {
    match e {
        EVMError::Database(e) => TraceError::State(e.to_string()),
        e => TraceError::Invalid { index, reason: e.to_string() },
    }
}

/// Replays `txs` in order on `state` in `block`, running the inspector on those
/// `wanted` picks; `each` sees each picked transaction's result with the state before
/// it. Stops after the last picked transaction. `gas` holds the receipts' gas figures.
fn replay<'a, I, T>(
    state: &'a dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    gas: &[u64],
    wanted: impl Fn(usize) -> bool,
    inspector: I,
    mut each: impl FnMut(usize, &mut I, &ResultAndState, &TxEnv, &BlockEnv, &mut TraceDb<'a>) -> Result<T, TraceError>,
) -> Result<Vec<T>, TraceError>
where
    I: Inspector<MainnetContext<TraceDb<'a>>>,
{
    let Some(last) = (0..txs.len()).rev().find(|i| wanted(*i)) else { return Ok(Vec::new()) };
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(ViewDb(state)))
        .with_block(block_env(block))
        .with_cfg(cfg_env(block))
        .build_mainnet_with_inspector(inspector);
    let mut out = Vec::new();
    for (index, tx) in txs.iter().enumerate().take(last + 1) {
        let env = tx_env(tx);
        let traced = wanted(index);
        let result = if traced { evm.inspect_tx(env.clone()) } else { evm.transact(env.clone()) }
            .map_err(|e| evm_error(index, e))?;
        let got = result.result.tx_gas_used();
        if let Some(&expected) = gas.get(index) {
            if got != expected {
                return Err(TraceError::Diverged { index, expected, got });
            }
        }
        if traced {
            let block_env = evm.ctx.block.clone();
            out.push(each(
                index,
                &mut evm.inspector,
                &result,
                &env,
                &block_env,
                &mut evm.ctx.journaled_state.database,
            )?);
        }
        evm.commit(result.state);
    }
    Ok(out)
}

/// Runs one call (`eth_call` semantics) with `inspector`; `each` sees the result with
/// the state before it.
fn inspect_call<'a, I, T>(
    state: &'a dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
    inspector: I,
    each: impl FnOnce(&mut I, &ResultAndState, &TxEnv, &BlockEnv, &mut TraceDb<'a>) -> Result<T, TraceError>,
) -> Result<T, TraceError>
where
    I: Inspector<MainnetContext<TraceDb<'a>>>,
{
    let gas = call_gas(req, gas_cap);
    let (tx, cfg, blk) = call_env(state, block, req, gas).map_err(|e| TraceError::Call(e.to_string()))?;
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(ViewDb(state)))
        .with_block(blk)
        .with_cfg(cfg)
        .build_mainnet_with_inspector(inspector);
    let result = evm.inspect_tx(tx.clone()).map_err(|e| match e {
        EVMError::Database(e) => TraceError::State(e.to_string()),
        e => TraceError::Call(crate::simulate::invalid_message(tx.caller, e)),
    })?;
    let block_env = evm.ctx.block.clone();
    each(&mut evm.inspector, &result, &tx, &block_env, &mut evm.ctx.journaled_state.database)
}

fn debug_inspector(opts: &GethDebugTracingOptions) -> Result<DebugInspector, TraceError> {
    DebugInspector::new(opts.clone()).map_err(|e| TraceError::Options(e.to_string()))
}

/// geth traces (`debug_traceTransaction`, `debug_traceBlockBy*`) of the transactions
/// of a block that `wanted` picks, in order.
pub fn geth_block_traces(
    state: &dyn StateView,
    block: &BlockContext,
    block_hash: B256,
    txs: &[RecoveredTx],
    gas: &[u64],
    wanted: impl Fn(usize) -> bool,
    opts: &GethDebugTracingOptions,
) -> Result<Vec<(usize, GethTrace)>, TraceError> {
    let inspector = debug_inspector(opts)?;
    replay(state, block, txs, gas, wanted, inspector, |index, insp, result, tx, blk, db| {
        let context = TransactionContext {
            block_hash: Some(block_hash),
            tx_index: Some(index),
            tx_hash: Some(*txs[index].tx_hash()),
        };
        let trace =
            insp.get_result(Some(context), tx, blk, result, db).map_err(|e| TraceError::State(e.to_string()))?;
        let trace = with_created_accounts(trace, opts, result);
        insp.fuse().map_err(|e| TraceError::Options(e.to_string()))?;
        Ok((index, trace))
    })
}

/// The geth trace of a call (`debug_traceCall`).
pub fn geth_call_trace(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
    opts: &GethDebugTracingOptions,
) -> Result<GethTrace, TraceError> {
    let inspector = debug_inspector(opts)?;
    inspect_call(state, block, req, gas_cap, inspector, |insp, result, tx, blk, db| {
        let trace = insp.get_result(None, tx, blk, result, db).map_err(|e| TraceError::State(e.to_string()))?;
        Ok(with_created_accounts(trace, opts, result))
    })
}

/// geth's `prestateTracer` (not in diff mode) lists the accounts a transaction creates
/// too, as they were before it (balance zero, the slots it touched at zero);
/// revm-inspectors leaves them out. Added here so that the trace is geth's.
fn with_created_accounts(trace: GethTrace, opts: &GethDebugTracingOptions, result: &ResultAndState) -> GethTrace {
    use alloy_rpc_types_trace::geth::{AccountState, GethDebugBuiltInTracerType, GethDebugTracerType, PreStateFrame};
    let prestate =
        matches!(opts.tracer, Some(GethDebugTracerType::BuiltInTracer(GethDebugBuiltInTracerType::PreStateTracer)));
    let GethTrace::PreStateTracer(PreStateFrame::Default(mut mode)) = trace else { return trace };
    let Ok(config) = opts.tracer_config.clone().into_pre_state_config() else {
        return GethTrace::PreStateTracer(PreStateFrame::Default(mode));
    };
    if prestate {
        for (address, account) in result.state.iter().filter(|(_, a)| a.is_created()) {
            mode.0.entry(*address).or_insert_with(|| {
                let storage = if config.storage_enabled() {
                    account.storage.iter().map(|(slot, v)| (B256::from(*slot), B256::from(v.original_value))).collect()
                } else {
                    Default::default()
                };
                AccountState { balance: Some(alloy_primitives::U256::ZERO), code: None, nonce: None, storage }
            });
        }
    }
    GethTrace::PreStateTracer(PreStateFrame::Default(mode))
}

fn parity_inspector(types: &HashSet<TraceType>) -> TracingInspector {
    TracingInspector::new(TracingInspectorConfig::from_parity_config(types))
}

/// Parity traces of the picked transactions of a block: the flat call traces
/// (`trace_transaction`, `trace_block`, `trace_filter`) and, for `types`, the
/// `trace_replayTransaction` results (trace, vmTrace, stateDiff).
pub fn parity_block_traces(
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    gas: &[u64],
    wanted: impl Fn(usize) -> bool,
    types: &HashSet<TraceType>,
) -> Result<Vec<(usize, Vec<TransactionTrace>, TraceResults)>, TraceError> {
    let mut all = types.clone();
    all.insert(TraceType::Trace);
    let inspector = parity_inspector(&all);
    replay(state, block, txs, gas, wanted, inspector, |index, insp, result, _tx, _blk, db| {
        let fresh = parity_inspector(&all);
        let used = std::mem::replace(insp, fresh);
        let builder = used.into_parity_builder();
        let flat = builder.clone().into_transaction_traces();
        let results =
            builder.into_trace_results_with_state(result, types, &*db).map_err(|e| TraceError::State(e.to_string()))?;
        Ok((index, flat, results))
    })
}

/// `trace_call`: the Parity results of a call for `types`.
pub fn parity_call_trace(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
    types: &HashSet<TraceType>,
) -> Result<TraceResults, TraceError> {
    inspect_call(state, block, req, gas_cap, parity_inspector(types), |insp, result, _tx, _blk, db| {
        let used = std::mem::replace(insp, parity_inspector(types));
        used.into_parity_builder()
            .into_trace_results_with_state(result, types, &*db)
            .map_err(|e| TraceError::State(e.to_string()))
    })
}

/// What `eth_createAccessList` answers: the access list of the call (sender,
/// recipient, precompiles and 7702 authorities left out) and the gas the call uses
/// with it; `error` when the call reverts or halts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListResult {
    pub access_list: AccessList,
    pub gas_used: u64,
    pub error: Option<String>,
}

/// Runs the call with the access list it has, collects what it touches, and repeats
/// with that list until it no longer changes (as geth does; at most 8 rounds).
pub fn create_access_list(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
) -> Result<AccessListResult, TraceError> {
    let mut list = req.access_list.clone().unwrap_or_default();
    let mut outcome = None;
    for _ in 0..8 {
        let mut with_list = req.clone();
        with_list.access_list = Some(list.clone());
        let inspector = AccessListInspector::new(list.clone());
        let (found, gas_used, error) =
            inspect_call(state, block, &with_list, gas_cap, inspector, |insp, result, _tx, _blk, _db| {
                let error = match &result.result {
                    ExecutionResult::Success { .. } => None,
                    ExecutionResult::Revert { output, .. } => Some(format!("execution reverted: {output}")),
                    ExecutionResult::Halt { reason, .. } => Some(format!("execution halted: {reason:?}")),
                };
                Ok((insp.access_list(), result.result.tx_gas_used(), error))
            })?;
        let settled = found == list;
        list = found;
        outcome = Some(AccessListResult { access_list: list.clone(), gas_used, error });
        if settled {
            break;
        }
    }
    outcome.ok_or_else(|| TraceError::Call("no access list round ran".into()))
}
