//! Building revm environments from Cairn's types.

use alloy_evm::FromRecoveredTx;
use alloy_primitives::U256;
use cairn_primitives::{RecoveredTx, TxEnvelope};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::primitives::hardfork::SpecId;

use crate::BlockContext;

pub(crate) fn block_env(block: &BlockContext) -> BlockEnv {
    BlockEnv {
        number: U256::from(block.number),
        beneficiary: block.beneficiary,
        timestamp: U256::from(block.timestamp),
        gas_limit: block.gas_limit,
        basefee: block.base_fee,
        difficulty: block.difficulty,
        prevrandao: Some(block.prevrandao),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(block.excess_blob_gas, block.spec)),
        ..Default::default()
    }
}

pub(crate) fn cfg_env(block: &BlockContext) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(block.spec);
    cfg.chain_id = block.chain_id;
    cfg.tx_gas_limit_cap = block.tx_gas_cap;
    cfg.disable_eip3607 = block.contract_senders;
    // EIP-4844 / EIP-7691 per-block blob maximum, which also bounds one transaction.
    cfg.max_blobs_per_tx = Some(if block.spec >= SpecId::PRAGUE { 9 } else { 6 });
    cfg
}

/// The revm transaction environment of a recovered transaction.
pub fn tx_env(tx: &RecoveredTx) -> TxEnv {
    TxEnv::from_recovered_tx(tx.inner(), tx.signer())
}

/// Intrinsic gas a transaction must provide under `spec`: the larger of the EIP-2028
/// initial cost and the EIP-7623 calldata floor.
pub fn intrinsic_gas(tx: &TxEnvelope, sender: alloy_primitives::Address, spec: SpecId) -> u64 {
    let env = TxEnv::from_recovered_tx(tx, sender);
    let gas = revm::context_interface::cfg::gas::calculate_initial_tx_gas_for_tx(&env, spec, None);
    (gas.initial_regular_gas + gas.initial_state_gas).max(gas.floor_gas)
}
