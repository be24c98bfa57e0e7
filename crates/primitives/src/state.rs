use alloy_primitives::{Address, Bytes, B256, U256};
use std::collections::BTreeMap;

use crate::KECCAK_EMPTY;

/// An account as the flat state stores it (the storage root lives with the trie data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
}

impl Default for AccountState {
    fn default() -> Self {
        Self { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY }
    }
}

/// What one block did to one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// New account fields; `None` deletes the account (self-destruct or EIP-161 touch of an
    /// empty account).
    pub info: Option<AccountState>,
    /// The account's storage was cleared before `storage` is applied (self-destruct or
    /// creation at the address).
    pub storage_wiped: bool,
    /// Changed slots; a zero value deletes the slot.
    pub storage: BTreeMap<U256, U256>,
}

/// All state changes of a block, ordered so that two equal diffs compare and hash equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDiff {
    pub accounts: BTreeMap<Address, AccountChange>,
    /// New contract code by hash.
    pub code: BTreeMap<B256, Bytes>,
}

impl StateDiff {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.code.is_empty()
    }

    /// Layers `later` on top of `self`, as if both blocks' changes happened in order.
    pub fn extend(&mut self, later: StateDiff) {
        for (addr, change) in later.accounts {
            let entry = self.accounts.entry(addr).or_default();
            if change.storage_wiped || change.info.is_none() {
                entry.storage.clear();
                entry.storage_wiped = true;
            }
            entry.info = change.info;
            entry.storage.extend(change.storage);
        }
        self.code.extend(later.code);
    }
}
