//! `eth_call` and `eth_estimateGas` semantics (geth's): no nonce check, base fee not
//! enforced, a missing gas price means "free", the gas is capped.

use alloy_eips::eip2930::AccessList;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use cairn_primitives::StateView;
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::database::CacheDB;
use revm::{ExecuteEvm, MainBuilder, MainContext};

use crate::db::ViewDb;
use crate::evm::{block_env, cfg_env};
use crate::BlockContext;

/// A call as `eth_call` receives it (all fields optional except the calldata).
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<u64>,
    pub gas_price: Option<u128>,
    pub max_fee_per_gas: Option<u128>,
    pub max_priority_fee_per_gas: Option<u128>,
    pub value: Option<U256>,
    pub input: Bytes,
    pub nonce: Option<u64>,
    pub access_list: Option<AccessList>,
}

/// How a simulated call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Success { gas_used: u64, output: Bytes },
    Revert { gas_used: u64, output: Bytes },
    Halt { gas_used: u64, reason: String },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The call cannot run at all (insufficient funds for value, bad fee fields...).
    #[error("{0}")]
    Invalid(String),
    #[error("state read failed: {0}")]
    State(String),
    /// `eth_estimateGas` found no gas limit under the cap at which the call succeeds.
    #[error("gas required exceeds allowance ({0})")]
    GasExceedsAllowance(u64),
}

/// Runs `req` on top of `state` in `block` without committing anything.
pub fn call(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
) -> Result<CallOutcome, CallError> {
    run(state, block, req, call_gas(req, gas_cap))
}

/// The gas a call runs with: its own, or the cap, and never above the cap.
pub(crate) fn call_gas(req: &CallRequest, gas_cap: u64) -> u64 {
    req.gas.unwrap_or(gas_cap).min(gas_cap)
}

/// The revm environments of `req` as `eth_call` runs it with `gas`: no nonce check,
/// the base fee not enforced, the block gas limit raised to the call's.
pub(crate) fn call_env(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas: u64,
) -> Result<(TxEnv, CfgEnv, BlockEnv), CallError> {
    let from = req.from.unwrap_or_default();
    let nonce = match req.nonce {
        Some(n) => n,
        None => state.account(from).map_err(|e| CallError::State(e.0))?.map(|a| a.nonce).unwrap_or(0),
    };
    let (gas_price, priority) = match (req.gas_price, req.max_fee_per_gas) {
        (Some(p), _) => (p, None),
        (None, Some(max)) => (max, req.max_priority_fee_per_gas.or(Some(0))),
        (None, None) => (0, None),
    };
    let mut tx = TxEnv {
        caller: from,
        gas_limit: gas,
        gas_price,
        gas_priority_fee: priority,
        kind: req.to.map_or(TxKind::Create, TxKind::Call),
        value: req.value.unwrap_or_default(),
        data: req.input.clone(),
        nonce,
        chain_id: Some(block.chain_id),
        access_list: req.access_list.clone().unwrap_or_default(),
        ..Default::default()
    };
    tx.tx_type = if priority.is_some() {
        2
    } else if tx.access_list.0.is_empty() {
        0
    } else {
        1
    };
    let mut cfg = cfg_env(block);
    cfg.disable_nonce_check = true;
    cfg.disable_base_fee = true;
    cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut blk = block_env(block);
    blk.gas_limit = blk.gas_limit.max(gas);
    Ok((tx, cfg, blk))
}

/// geth's wording for a call that cannot run at all.
pub(crate) fn invalid_message<E: std::fmt::Display>(from: Address, e: EVMError<E>) -> String {
    match e {
        EVMError::Transaction(InvalidTransaction::LackOfFundForMaxFee { fee, balance }) => {
            format!("insufficient funds for gas * price + value: address {from} have {balance} want {fee}")
        }
        e => e.to_string(),
    }
}

fn run(state: &dyn StateView, block: &BlockContext, req: &CallRequest, gas: u64) -> Result<CallOutcome, CallError> {
    let (tx, cfg, blk) = call_env(state, block, req, gas)?;
    let from = tx.caller;
    let mut evm = Context::mainnet().with_db(CacheDB::new(ViewDb(state))).with_block(blk).with_cfg(cfg).build_mainnet();
    match evm.transact(tx) {
        Ok(out) => Ok(match out.result {
            ExecutionResult::Success { gas, output, .. } => {
                CallOutcome::Success { gas_used: gas.tx_gas_used(), output: output.into_data() }
            }
            ExecutionResult::Revert { gas, output, .. } => CallOutcome::Revert { gas_used: gas.tx_gas_used(), output },
            ExecutionResult::Halt { reason, gas, .. } => {
                CallOutcome::Halt { gas_used: gas.tx_gas_used(), reason: format!("{reason:?}") }
            }
        }),
        Err(EVMError::Database(e)) => Err(CallError::State(e.to_string())),
        Err(e) => Err(CallError::Invalid(invalid_message(from, e))),
    }
}

/// Smallest gas limit (within 1.5%, as geth) at which `req` succeeds. A call that fails at
/// the cap returns that failure so the caller can report revert data.
pub fn estimate_gas(
    state: &dyn StateView,
    block: &BlockContext,
    req: &CallRequest,
    gas_cap: u64,
) -> Result<Result<u64, CallOutcome>, CallError> {
    let mut hi = req.gas.unwrap_or(gas_cap).min(gas_cap);
    let first = run(state, block, req, hi)?;
    let used = match first {
        CallOutcome::Success { gas_used, .. } => gas_used,
        failed => return Ok(Err(failed)),
    };
    let ok = |gas: u64| -> Result<bool, CallError> {
        Ok(matches!(run(state, block, req, gas)?, CallOutcome::Success { .. }))
    };
    let mut lo = used.saturating_sub(1);
    // Most calls need only their used gas plus the 63/64 reserve: try that first.
    let optimistic = (used + 2300) * 64 / 63;
    if optimistic < hi {
        if ok(optimistic)? {
            hi = optimistic;
        } else {
            lo = optimistic;
        }
    }
    while lo + 1 < hi {
        if (hi - lo) * 1000 / hi < 15 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if ok(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Ok(hi))
}
