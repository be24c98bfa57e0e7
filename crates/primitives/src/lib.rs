//! Cairn's shared vocabulary: transactions, blocks, receipts, state diffs, chain
//! configuration and genesis. Everything here is plain data; no I/O.

mod chain;
pub mod fragment;
mod genesis;
pub mod impersonation;
mod receipt;
mod sequencer_block;
mod state;

pub use chain::{ChainConfig, Hardfork};
pub use fragment::{Fragment, SignedFragment};
pub use genesis::{
    dev_accounts, load_genesis_file, DevAccount, GenesisAccount, GenesisAlloc, GenesisError, DEV_MNEMONIC,
};
pub use receipt::StoredReceipt;
pub use sequencer_block::{Executed, SequencerBlock};
pub use state::{AccountChange, AccountState, StateDiff};

pub use alloy_consensus::{Header, TxEnvelope};
pub use alloy_primitives::{Address, Bytes, Log, B256, U256};

/// A transaction whose sender has been recovered once, at ingress.
pub type RecoveredTx = alloy_consensus::transaction::Recovered<TxEnvelope>;

/// `keccak256` of empty code.
pub const KECCAK_EMPTY: B256 =
    alloy_primitives::b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");

/// Read access to the state a block executes on. Implemented by the store (a snapshot)
/// and by in-memory states in tests and benchmarks.
pub trait StateView: Send + Sync {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError>;
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError>;
    fn code(&self, code_hash: B256) -> Result<Bytes, StateError>;
    /// Hash of block `number`, or zero if unknown.
    fn block_hash(&self, number: u64) -> Result<B256, StateError>;
}

/// A state read failed (I/O, corruption); the message says what and where.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub String);

/// Signs an EIP-1559 transaction (used by tests, benchmarks and tools).
pub fn sign_eip1559(
    signer: &alloy_signer_local::PrivateKeySigner,
    tx: alloy_consensus::TxEip1559,
) -> Result<TxEnvelope, alloy_signer::Error> {
    use alloy_consensus::SignableTransaction;
    use alloy_signer::SignerSync;
    let sig = signer.sign_hash_sync(&tx.signature_hash())?;
    Ok(TxEnvelope::Eip1559(tx.into_signed(sig)))
}

mod memory;
pub mod network;
pub mod predeploys;
pub use memory::InMemoryState;
