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

    /// keccak256 of the diff's canonical encoding: the commitment a preconfirmation
    /// fragment signs. Per account in address order: address (20 bytes), a flag byte
    /// (bit 0: deleted, bit 1: storage wiped), nonce (8, big-endian), balance (32),
    /// code hash (32), slot count (4, big-endian), then each changed slot in key order
    /// as key (32) and value (32); then every new code hash in order. A deleted account
    /// encodes zero nonce and balance and the empty-code hash.
    pub fn commitment(&self) -> B256 {
        let mut buf = Vec::with_capacity(self.accounts.len() * 97 + self.code.len() * 32);
        for (addr, change) in &self.accounts {
            let info = change.info.unwrap_or_default();
            buf.extend_from_slice(addr.as_slice());
            buf.push(u8::from(change.info.is_none()) | (u8::from(change.storage_wiped) << 1));
            buf.extend_from_slice(&info.nonce.to_be_bytes());
            buf.extend_from_slice(&info.balance.to_be_bytes::<32>());
            buf.extend_from_slice(info.code_hash.as_slice());
            buf.extend_from_slice(&(change.storage.len() as u32).to_be_bytes());
            for (slot, value) in &change.storage {
                buf.extend_from_slice(&slot.to_be_bytes::<32>());
                buf.extend_from_slice(&value.to_be_bytes::<32>());
            }
        }
        for hash in self.code.keys() {
            buf.extend_from_slice(hash.as_slice());
        }
        alloy_primitives::keccak256(buf)
    }
}
