//! Transaction execution on revm.
//!
//! One block-level interface, [`Executor`]: an ordered list of recovered transactions,
//! a state view and a block context in; per-transaction outcomes, gas and the state diff
//! out. [`SequentialExecutor`] is the reference implementation; a parallel one plugs in
//! behind the same trait and must return identical values.

mod code;
mod db;
mod diff;
mod evm;
mod parallel;
mod profile;
mod sequential;
mod simulate;
mod simulate_blocks;
pub mod trace;

pub use db::ViewDb;
pub use diff::{AccountUpdate, DiffBuilder, SlotWrite};
pub use evm::{intrinsic_gas, tx_env};
pub use parallel::{ParallelExecutor, ParallelStats, Strategy, DEFAULT_MIN_PARALLEL_TXS};
pub use profile::{dependency_profile, DependencyProfile};
pub use sequential::SequentialExecutor;
pub use simulate::{call, estimate_gas, CallError, CallOutcome, CallRequest};
pub use simulate_blocks::{simulate_blocks, SimBlockInput, SimCallOutput, SimError, StateEdit};

use alloy_primitives::{Address, B256};
use cairn_primitives::{ChainConfig, Hardfork, RecoveredTx, StateDiff, StoredReceipt};
pub use revm::primitives::hardfork::SpecId;

/// The block a list of transactions executes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockContext {
    pub number: u64,
    pub timestamp: u64,
    pub beneficiary: Address,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub prevrandao: B256,
    /// Proof-of-work difficulty (the `DIFFICULTY` opcode before the merge; zero after).
    pub difficulty: alloy_primitives::U256,
    pub chain_id: u64,
    pub spec: SpecId,
    /// Largest gas limit a single transaction may ask for (EIP-7825 style cap).
    pub tx_gas_cap: Option<u64>,
    /// EIP-4844 excess blob gas (sets the blob base fee); Cairn chains keep it at zero.
    pub excess_blob_gas: u64,
    /// Accounts with code may send transactions (EIP-3607 off): `cairn dev`, where an
    /// impersonated sender may be a contract.
    pub contract_senders: bool,
}

impl BlockContext {
    /// The context of block `number` of a Cairn chain.
    pub fn for_chain(chain: &ChainConfig, number: u64, timestamp: u64, base_fee: u64, prevrandao: B256) -> Self {
        Self {
            number,
            timestamp,
            beneficiary: chain.fee_recipient,
            gas_limit: chain.gas_limit,
            base_fee,
            prevrandao,
            difficulty: alloy_primitives::U256::ZERO,
            chain_id: chain.chain_id,
            spec: spec_of(chain.hardfork),
            tx_gas_cap: Some(chain.tx_gas_cap),
            excess_blob_gas: 0,
            contract_senders: chain.dev,
        }
    }
}

pub fn spec_of(fork: Hardfork) -> SpecId {
    match fork {
        Hardfork::Cancun => SpecId::CANCUN,
        Hardfork::Prague => SpecId::PRAGUE,
    }
}

/// How invalid transactions are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every transaction must be valid; an invalid one fails the whole block.
    Replay,
    /// Invalid transactions are skipped deterministically and reported.
    Building,
}

/// Why a transaction was left out of a block being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Can never be included as it is (nonce too low, bad fee, ...): drop it.
    Invalid(String),
    /// May fit a later block (a nonce gap): keep it pending.
    Later(String),
    /// The block has too little gas left for this transaction's gas limit.
    BlockFull { gas_limit: u64, gas_left: u64 },
}

/// What happened to one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Included(StoredReceipt),
    Skipped(Skip),
}

/// Result of executing a block's transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockOutput {
    /// One outcome per input transaction, in input order.
    pub outcomes: Vec<TxOutcome>,
    pub gas_used: u64,
    pub diff: StateDiff,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("transaction {index} ({hash}) is invalid: {reason}")]
    InvalidTx { index: usize, hash: B256, reason: String },
    #[error("state read failed while executing transaction {index}: {reason}")]
    State { index: usize, reason: String },
    #[error("EVM failure at transaction {index}: {reason}")]
    Evm { index: usize, reason: String },
}

/// Where a run of transactions starts inside its block: the block position of its first
/// transaction, and the gas and the number of logs of the transactions before it. A
/// block built in pieces (preconfirmation fragments) executes each piece from the
/// offsets the previous ones left, on the state they left; the result is the one a
/// single run over the whole block would give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    pub index: usize,
    pub gas: u64,
    pub logs: u64,
}

/// Executes an ordered list of transactions. Implementations must be deterministic and
/// return identical values for identical inputs.
pub trait Executor: Send + Sync {
    /// Executes a whole block's transactions.
    fn execute(
        &self,
        state: &dyn cairn_primitives::StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
    ) -> Result<BlockOutput, ExecError> {
        self.execute_from(state, block, txs, mode, Offsets::default())
    }

    /// Executes the part of a block that starts at `at`, on the state the transactions
    /// before it left. `BlockOutput::gas_used` is the block's cumulative gas after it;
    /// the diff holds only this part's changes.
    fn execute_from(
        &self,
        state: &dyn cairn_primitives::StateView,
        block: &BlockContext,
        txs: &[RecoveredTx],
        mode: Mode,
        at: Offsets,
    ) -> Result<BlockOutput, ExecError>;
}

#[cfg(test)]
mod tests;
