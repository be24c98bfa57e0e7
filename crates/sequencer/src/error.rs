//! The sequencer's error type.

use alloy_primitives::B256;
use cairn_storage::StoreError;
use cairn_trie::TrieError;

/// Most clients waiting for a preconfirmation at once.
pub const MAX_PRECONF_WAITERS: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trie(#[from] TrieError),
    #[error("block execution failed: {0}")]
    Exec(#[from] cairn_executor::ExecError),
    #[error("the data directory holds chain id {stored}, but chain id {requested} was asked for")]
    ChainMismatch { stored: u64, requested: u64 },
    #[error("the sealer stopped before block {0} was sealed")]
    Stopped(u64),
    #[error("signing a fragment failed: {0}")]
    Sign(String),
    #[error("fragment replay diverged at block {height} fragment {index}: {reason}")]
    Diverged { height: u64, index: u32, reason: String },
    #[error("preconfirmations are off on this node")]
    PreconfOff,
    #[error("too many clients are waiting for preconfirmations (limit {MAX_PRECONF_WAITERS})")]
    TooManyWaiters,
    #[error("transaction {hash} was not preconfirmed within {ms} ms (it stays in the pool)")]
    PreconfTimeout { hash: B256, ms: u128 },
    #[error(
        "transaction {hash} was decided in block {block} before this node held a fragment with it: its receipt is final (eth_getTransactionReceipt)"
    )]
    DecidedWithoutFragment { hash: B256, block: u64 },
    #[error("transaction {hash} was dropped: {reason}")]
    Dropped { hash: B256, reason: String },
    #[error(transparent)]
    State(#[from] cairn_primitives::StateError),
    #[error("consensus: {0}")]
    Consensus(String),
    /// A development control that cannot be carried out (bad argument, timeout).
    #[error("{0}")]
    Invalid(String),
}

impl From<cairn_consensus::ConsensusError> for SequencerError {
    fn from(e: cairn_consensus::ConsensusError) -> Self {
        Self::Consensus(e.to_string())
    }
}
