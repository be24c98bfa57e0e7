use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use std::collections::HashMap;

use crate::{AccountState, GenesisAlloc, StateDiff, StateError, StateView, KECCAK_EMPTY};

/// A whole state in memory: for tests, benchmarks and fixture runners.
#[derive(Debug, Clone, Default)]
pub struct InMemoryState {
    pub accounts: HashMap<Address, AccountState>,
    pub storage: HashMap<Address, HashMap<U256, U256>>,
    pub code: HashMap<B256, Bytes>,
    pub block_hashes: HashMap<u64, B256>,
}

impl InMemoryState {
    pub fn from_alloc(alloc: &GenesisAlloc) -> Self {
        let mut state = Self::default();
        for (addr, acc) in &alloc.accounts {
            state.insert(*addr, acc.nonce, acc.balance, acc.code.clone());
            let slots = state.storage.entry(*addr).or_default();
            for (k, v) in &acc.storage {
                let value = U256::from_be_bytes(v.0);
                if !value.is_zero() {
                    slots.insert(U256::from_be_bytes(k.0), value);
                }
            }
        }
        state
    }

    pub fn insert(&mut self, address: Address, nonce: u64, balance: U256, code: Bytes) {
        let code_hash = if code.is_empty() { KECCAK_EMPTY } else { keccak256(&code) };
        if !code.is_empty() {
            self.code.insert(code_hash, code);
        }
        self.accounts.insert(address, AccountState { nonce, balance, code_hash });
    }

    /// Applies a block's diff, as the store would.
    pub fn apply(&mut self, diff: &StateDiff) {
        for (hash, code) in &diff.code {
            self.code.insert(*hash, code.clone());
        }
        for (addr, change) in &diff.accounts {
            if change.storage_wiped || change.info.is_none() {
                self.storage.remove(addr);
            }
            match change.info {
                None => {
                    self.accounts.remove(addr);
                }
                Some(info) => {
                    self.accounts.insert(*addr, info);
                    let slots = self.storage.entry(*addr).or_default();
                    for (k, v) in &change.storage {
                        if v.is_zero() {
                            slots.remove(k);
                        } else {
                            slots.insert(*k, *v);
                        }
                    }
                }
            }
        }
    }
}

impl StateView for InMemoryState {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        Ok(self.accounts.get(&address).copied())
    }
    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        Ok(self.storage.get(&address).and_then(|s| s.get(&slot)).copied().unwrap_or_default())
    }
    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        Ok(self.code.get(&code_hash).cloned().unwrap_or_default())
    }
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}
