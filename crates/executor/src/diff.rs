use alloy_primitives::Address;
use cairn_primitives::{AccountChange, AccountState, StateDiff};
use revm::state::{Account, EvmState};

/// Accumulates revm's per-transaction state changes into one block [`StateDiff`].
#[derive(Debug, Default)]
pub struct DiffBuilder {
    diff: StateDiff,
}

impl DiffBuilder {
    /// Records the changes of one transaction; call in transaction order.
    pub fn record(&mut self, state: &EvmState) {
        for (address, account) in state {
            self.record_account(*address, account);
        }
    }

    pub fn record_account(&mut self, address: Address, account: &Account) {
        if !account.is_touched() {
            return;
        }
        let change = self.diff.accounts.entry(address).or_default();
        // Self-destructed, or touched while empty (EIP-161): the account is deleted.
        if account.is_selfdestructed() || account.is_empty() {
            *change = AccountChange { info: None, storage_wiped: true, storage: Default::default() };
            return;
        }
        if account.is_created() {
            change.storage_wiped = true;
            change.storage.clear();
            if let Some(code) = &account.info.code {
                if !code.is_empty() {
                    self.diff.code.insert(account.info.code_hash, code.original_bytes());
                }
            }
        }
        change.info = Some(AccountState {
            nonce: account.info.nonce,
            balance: account.info.balance,
            code_hash: account.info.code_hash,
        });
        for (slot, value) in account.changed_storage_slots() {
            change.storage.insert(*slot, value.present_value());
        }
    }

    pub fn finish(self) -> StateDiff {
        self.diff
    }
}
