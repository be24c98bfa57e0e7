use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// The EVM rules a Cairn chain executes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hardfork {
    Cancun,
    /// Default: EIP-7702 set-code transactions, BLS precompiles, calldata floor cost.
    #[default]
    Prague,
}

/// Chain-wide parameters, fixed at genesis and stored with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfig {
    pub chain_id: u64,
    pub hardfork: Hardfork,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Largest gas limit a single transaction may ask for.
    pub tx_gas_cap: u64,
    /// Largest encoded transaction accepted, in bytes.
    pub max_tx_bytes: usize,
    /// Base fee of the first block after genesis, in wei.
    pub initial_base_fee: u64,
    /// The EIP-1559 base fee never falls below this, in wei.
    pub min_base_fee: u64,
    /// Smallest priority fee accepted into the pool, in wei.
    pub min_tip: u128,
    pub fee_recipient: Address,
    /// A development chain (`cairn dev`): impersonated senders
    /// ([`crate::impersonation`]) are valid on it, and the test controls may edit its
    /// state. Set from the node's mode at every start, never taken from the store.
    #[serde(default)]
    pub dev: bool,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            hardfork: Hardfork::Prague,
            gas_limit: 1_000_000_000,
            tx_gas_cap: 30_000_000,
            max_tx_bytes: 128 * 1024,
            initial_base_fee: 1_000_000_000,
            min_base_fee: 10_000_000,
            min_tip: 0,
            fee_recipient: Address::ZERO,
            dev: false,
        }
    }
}

impl ChainConfig {
    /// The base fee of the block after one with `gas_used` out of `gas_limit` at `base_fee`.
    pub fn next_base_fee(&self, gas_used: u64, gas_limit: u64, base_fee: u64) -> u64 {
        let next = alloy_eips::eip1559::calc_next_block_base_fee(
            gas_used,
            gas_limit,
            base_fee,
            alloy_eips::eip1559::BaseFeeParams::ethereum(),
        );
        next.max(self.min_base_fee)
    }
}
