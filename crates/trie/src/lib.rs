//! Merkle-Patricia state commitment (Ethereum-compatible, via alloy-trie).
//!
//! [`StateCommitter`] is the seam the builder commits through: given a block writer whose
//! flat state already holds the block's diff, it brings the trie data up to date and
//! returns the state root. [`FullCommitter`] recomputes the storage roots of the
//! accounts whose storage changed and then the whole account trie from the flat state.

use alloy_primitives::{keccak256, B256, U256};
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use cairn_primitives::InMemoryState;
use cairn_storage::{BlockWriter, StoreError};
use std::collections::BTreeSet;

mod memory;
mod node;
mod update;

pub use memory::MemoryTrie;
pub use node::{BranchRecord, ChildRef, Kind};
pub use update::{proof, root_hash, update, Change, TrieSource, TrieUpdate};

#[derive(Debug, thiserror::Error)]
pub enum TrieError {
    #[error("trie commit failed reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("corrupt trie data: {0}")]
    Corrupt(String),
}

/// Brings trie data up to date for a block and returns its state root.
pub trait StateCommitter: Send + Sync {
    /// `storage_changed`: hashed addresses of surviving accounts whose storage changed,
    /// as returned by [`BlockWriter::apply_state`].
    fn commit(&self, writer: &mut BlockWriter, storage_changed: &BTreeSet<[u8; 32]>) -> Result<B256, TrieError>;
}

/// Recomputes changed storage roots and the full account trie from the flat state.
#[derive(Debug, Default, Clone, Copy)]
pub struct FullCommitter;

impl StateCommitter for FullCommitter {
    fn commit(&self, writer: &mut BlockWriter, storage_changed: &BTreeSet<[u8; 32]>) -> Result<B256, TrieError> {
        for hashed in storage_changed {
            let root = storage_root_hashed(writer.hashed_storage(hashed)?);
            writer.set_storage_root(hashed, root)?;
        }
        let mut hb = HashBuilder::default();
        let mut buf = Vec::with_capacity(128);
        writer.for_each_account(|hashed, record| {
            buf.clear();
            let account = TrieAccount {
                nonce: record.state.nonce,
                balance: record.state.balance,
                storage_root: record.storage_root,
                code_hash: record.state.code_hash,
            };
            alloy_rlp::Encodable::encode(&account, &mut buf);
            hb.add_leaf(Nibbles::unpack(hashed), &buf);
        })?;
        Ok(hb.root())
    }
}

/// Storage root from `(keccak(slot), value)` pairs sorted by hashed slot; zeros skipped.
pub fn storage_root_hashed(slots: impl IntoIterator<Item = (B256, U256)>) -> B256 {
    let mut hb = HashBuilder::default();
    for (hashed_slot, value) in slots {
        if !value.is_zero() {
            hb.add_leaf(Nibbles::unpack(hashed_slot), alloy_rlp::encode_fixed_size(&value).as_ref());
        }
    }
    hb.root()
}

/// State root of a whole in-memory state (fixture runners, tests).
pub fn state_root_of(state: &InMemoryState) -> B256 {
    let mut accounts: Vec<(B256, TrieAccount)> = state
        .accounts
        .iter()
        .map(|(addr, acc)| {
            let mut slots: Vec<(B256, U256)> = state
                .storage
                .get(addr)
                .map(|s| s.iter().map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), *v)).collect())
                .unwrap_or_default();
            slots.sort_unstable_by_key(|(k, _)| *k);
            let account = TrieAccount {
                nonce: acc.nonce,
                balance: acc.balance,
                storage_root: storage_root_hashed(slots),
                code_hash: acc.code_hash,
            };
            (keccak256(addr), account)
        })
        .collect();
    accounts.sort_unstable_by_key(|(k, _)| *k);
    alloy_trie::root::state_root(accounts)
}

/// Root of a trie over arbitrary `(key, value)` pairs (keys of equal length), sorted here.
pub fn trie_root(mut items: Vec<(Vec<u8>, Vec<u8>)>) -> B256 {
    items.sort();
    let mut hb = HashBuilder::default();
    for (k, v) in items {
        hb.add_leaf(Nibbles::unpack(&k), &v);
    }
    hb.root()
}
