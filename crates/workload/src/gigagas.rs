//! Executor benchmark workloads: blocks of about a gigagas of one kind of transaction,
//! over a state held in memory, with senders already recovered (no signatures are
//! checked, so none are made: the transactions carry a fixed placeholder signature).

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, Signature, TxKind, B256, U160, U256};
use cairn_executor::{BlockContext, Executor, Mode, SequentialExecutor, TxOutcome};
use cairn_primitives::{ChainConfig, InMemoryState, RecoveredTx, TxEnvelope};

use crate::{swap_call, token_allowance_slot, token_balance_slot, transfer_call, Artifacts, WorkloadError};

/// One block to execute: the state before it, its context and its transactions.
pub struct ExecWorkload {
    pub name: String,
    pub state: InMemoryState,
    pub block: BlockContext,
    pub txs: Vec<RecoveredTx>,
}

const GWEI: u128 = 1_000_000_000;

/// A recovered EIP-1559 transaction from `from` (1 gwei tip over a 1 gwei base fee).
pub fn recovered(from: Address, nonce: u64, to: TxKind, value: U256, input: Vec<u8>, gas_limit: u64) -> RecoveredTx {
    let tx = TxEip1559 {
        chain_id: ChainConfig::default().chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: 3 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value,
        access_list: Default::default(),
        input: input.into(),
    };
    let signed = tx.into_signed(Signature::test_signature());
    RecoveredTx::new_unchecked(TxEnvelope::Eip1559(signed), from)
}

/// Distinct deterministic addresses, one family per `tag`.
pub fn address(tag: u8, index: u64) -> Address {
    let mut a = Address::from(U160::from(index));
    a.0[0] = tag;
    a
}

fn context(gas_limit: u64) -> BlockContext {
    let chain = ChainConfig::default();
    let mut ctx = BlockContext::for_chain(&chain, 1, 1_700_000_000, GWEI as u64, B256::repeat_byte(7));
    ctx.gas_limit = gas_limit;
    ctx
}

fn funded(state: &mut InMemoryState, who: Address) {
    state.insert(who, 0, U256::from(10u128.pow(21)), Default::default());
}

/// Grows a block of `make(i)` transactions until it uses about `target_gas`, sizing it
/// from the measured gas of a first sample.
fn sized(
    name: &str,
    state: InMemoryState,
    target_gas: u64,
    make: impl Fn(u64) -> RecoveredTx,
) -> Result<ExecWorkload, WorkloadError> {
    let sample: Vec<RecoveredTx> = (0..64).map(&make).collect();
    let probe = context(u64::MAX / 2);
    let out = SequentialExecutor
        .execute(&state, &probe, &sample, Mode::Replay)
        .map_err(|e| WorkloadError::Data(format!("{name}: sample block failed: {e}")))?;
    if let Some(TxOutcome::Included(r)) =
        out.outcomes.iter().find(|o| matches!(o, TxOutcome::Included(r) if !r.success))
    {
        return Err(WorkloadError::Data(format!("{name}: a sample transaction reverted ({r:?})")));
    }
    let per_tx = (out.gas_used / sample.len() as u64).max(1);
    let count = (target_gas / per_tx).max(1);
    let txs: Vec<RecoveredTx> = (0..count).map(make).collect();
    let limits = txs.iter().map(|t| alloy_consensus::Transaction::gas_limit(t.inner())).sum();
    Ok(ExecWorkload { name: name.to_string(), state, block: context(limits), txs })
}

/// Plain ETH transfers, each from its own sender to its own fresh recipient.
pub fn raw_transfers(target_gas: u64) -> Result<ExecWorkload, WorkloadError> {
    let count = target_gas / 21_000 + 64;
    let mut state = InMemoryState::default();
    for i in 0..count {
        funded(&mut state, address(0x10, i));
    }
    sized("raw-transfers", state, target_gas, |i| {
        recovered(address(0x10, i), 0, TxKind::Call(address(0x20, i)), U256::from(1_000 + i), Vec::new(), 21_000)
    })
}

/// `Token.transfer` calls, each from its own holder to its own fresh recipient.
pub fn erc20_transfers(target_gas: u64) -> Result<ExecWorkload, WorkloadError> {
    let artifacts = Artifacts::load_default()?;
    let token = address(0x30, 1);
    let count = target_gas / 21_000;
    let mut state = InMemoryState::default();
    state.insert(token, 1, U256::ZERO, artifacts.token_runtime.clone());
    let slots = state.storage.entry(token).or_default();
    for i in 0..count {
        slots.insert(token_balance_slot(address(0x10, i)), U256::from(10u128.pow(24)));
    }
    for i in 0..count {
        funded(&mut state, address(0x10, i));
    }
    sized("erc20-transfers", state, target_gas, |i| {
        let input = transfer_call(address(0x20, i), U256::from(1_000 + i));
        recovered(address(0x10, i), 0, TxKind::Call(token), U256::ZERO, input, 100_000)
    })
}

/// `Pair.swap` calls from distinct traders over `pools` pools (trader `i` on pool
/// `i % pools`): with many pools the swaps are independent, with one they all touch
/// the same reserves.
pub fn swaps(target_gas: u64, pools: u64) -> Result<ExecWorkload, WorkloadError> {
    let artifacts = Artifacts::load_default()?;
    let (token0, token1) = (address(0x30, 1), address(0x30, 2));
    let deployer = address(0x40, 0);
    let mut state = InMemoryState::default();
    funded(&mut state, deployer);
    // Deploy one pair to learn its runtime code (its immutables are the two tokens).
    let create =
        recovered(deployer, 0, TxKind::Create, U256::ZERO, artifacts.pair_deploy(token0, token1).to_vec(), 3_000_000);
    let out = SequentialExecutor
        .execute(&state, &context(30_000_000), &[create], Mode::Replay)
        .map_err(|e| WorkloadError::Data(format!("pair deployment failed: {e}")))?;
    let pair_code = out.diff.code.values().next().cloned().ok_or_else(|| WorkloadError::Data("no pair code".into()))?;

    let traders = target_gas / 30_000;
    let reserve = U256::from(10u128.pow(30));
    state.insert(token0, 1, U256::ZERO, artifacts.token_runtime.clone());
    state.insert(token1, 1, U256::ZERO, artifacts.token_runtime.clone());
    let pool = |p: u64| address(0x50, p);
    for p in 0..pools {
        state.insert(pool(p), 1, U256::ZERO, pair_code.clone());
        // reserve0 and reserve1 share slot 0 (two uint112).
        state.storage.entry(pool(p)).or_default().insert(U256::ZERO, reserve | (reserve << 112));
        for token in [token0, token1] {
            state.storage.entry(token).or_default().insert(token_balance_slot(pool(p)), reserve);
        }
    }
    for i in 0..traders {
        let trader = address(0x10, i);
        funded(&mut state, trader);
        let slots = state.storage.entry(token0).or_default();
        slots.insert(token_balance_slot(trader), U256::from(10u128.pow(24)));
        slots.insert(token_allowance_slot(trader, pool(i % pools)), U256::MAX);
    }
    let name = if pools == 1 { "hot-pool-swaps".to_string() } else { format!("independent-swaps-{pools}-pools") };
    sized(&name, state, target_gas, |i| {
        let trader = address(0x10, i);
        let input = swap_call(true, U256::from(1_000_000 + i), U256::ZERO, trader);
        recovered(trader, 0, TxKind::Call(pool(i % pools)), U256::ZERO, input, 200_000)
    })
}
