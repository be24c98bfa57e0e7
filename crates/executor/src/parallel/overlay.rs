//! The base state with the diff of the earlier rounds of a block being built on top.

use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountState, StateDiff, StateError, StateView};

pub(crate) struct Overlay<'a> {
    base: &'a dyn StateView,
    diff: &'a StateDiff,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateView, diff: &'a StateDiff) -> Self {
        Self { base, diff }
    }
}

impl StateView for Overlay<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        match self.diff.accounts.get(&address) {
            Some(change) => Ok(change.info),
            None => self.base.account(address),
        }
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        match self.diff.accounts.get(&address) {
            Some(change) => match change.storage.get(&slot) {
                Some(value) => Ok(*value),
                None if change.storage_wiped || change.info.is_none() => Ok(U256::ZERO),
                None => self.base.storage(address, slot),
            },
            None => self.base.storage(address, slot),
        }
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        match self.diff.code.get(&code_hash) {
            Some(code) => Ok(code.clone()),
            None => self.base.code(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.base.block_hash(number)
    }
}
