//! Merkle-Patricia state commitment (Ethereum-compatible, via alloy-trie).
//!
//! [`StateCommitter`] is the seam the sequencer commits through. [`IncrementalCommitter`]
//! keeps every trie's branch nodes in the store, keyed by nibble path, and per block
//! re-hashes only the paths of the keys the block changed ([`update`]): storage tries in
//! parallel, then the account trie. [`full_state_root`] recomputes the root from the
//! flat state alone, for checks and benchmarks. [`proof`] serves EIP-1186 proofs from
//! the same nodes.

use alloy_primitives::{keccak256, B256, U256};
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use cairn_primitives::InMemoryState;
use cairn_storage::StoreError;

mod committer;
mod memory;
mod node;
mod update;

pub use committer::{
    account_leaf, full_state_root, proofs, AccountProofs, DisabledCommitter, IncrementalCommitter, Phases,
    StateCommitter, StateUpdate, MAX_HISTORY_REPLAY,
};
pub use memory::{key_range, MemoryTrie};
pub use node::{BranchRecord, ChildRef, Kind};
pub use update::{proof, root_hash, update, update_parallel, Change, TrieSource, TrieUpdate, PARALLEL_MIN_CHANGES};

#[derive(Debug, thiserror::Error)]
pub enum TrieError {
    #[error("trie commit failed reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("corrupt trie data: {0}")]
    Corrupt(String),
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
