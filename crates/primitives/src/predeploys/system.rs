//! The block-start system calls of EIP-4788 and EIP-2935, as state writes.
//!
//! At the start of every block, before its first transaction, the system address calls
//! the beacon-roots contract (EIP-4788, Cancun) with the parent beacon block root and
//! the history contract (EIP-2935, Prague) with the parent block's hash. Each call
//! writes fixed storage slots and nothing else (no nonce, no balance, no gas charged),
//! so Cairn applies the writes directly, for each contract that has code in the
//! parent's state (a call to an address without code does nothing, as the EIPs say):
//!
//! | contract | slot | value |
//! |---|---|---|
//! | beacon roots | `timestamp % 8191` | the block's timestamp |
//! | beacon roots | `timestamp % 8191 + 8191` | the parent beacon block root (zero: a rollup has no beacon chain; the header says so) |
//! | history | `(number − 1) % 8191` | the parent block's hash |
//!
//! The parent's hash is known only once the parent is sealed, and Cairn executes a
//! block before its parent's state root is computed. So these writes are not part of a
//! block's executed diff: whoever reads state *during* the block asks
//! [`system_slot`] for a slot of these contracts (the history slot waits for the
//! parent's hash only when it is actually read, as `BLOCKHASH` does), and the sealer
//! adds [`system_diff`] under the block's diff when it commits the block.

use alloy_primitives::{address, Address, B256, U256};

use crate::{AccountChange, AccountState, StateDiff, StateError, StateView};

/// EIP-4788's beacon-roots contract.
pub const BEACON_ROOTS: Address = address!("0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02");
/// EIP-2935's history contract.
pub const HISTORY_STORAGE: Address = address!("0x0000F90827F1C53a10cb7A02335B175320002935");
/// The caller of system calls.
pub const SYSTEM_ADDRESS: Address = address!("0xfffffffffffffffffffffffffffffffffffffffe");
/// Length of both contracts' ring buffers.
pub const RING: u64 = 8191;

/// Which block-start system calls a block makes: those whose contract has code in the
/// parent's state (and whose fork is active: both are, under Cancun-with-4788 and
/// Prague rules; only beacon roots before Prague).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemCalls {
    pub beacon_roots: bool,
    pub history: bool,
}

impl SystemCalls {
    /// The calls of a block executing on `parent_state` under `prague` (or Cancun) rules.
    pub fn on(parent_state: &dyn StateView, prague: bool) -> Result<Self, StateError> {
        let has_code = |a: Address| -> Result<bool, StateError> {
            Ok(parent_state.account(a)?.is_some_and(|acc| acc.code_hash != crate::KECCAK_EMPTY))
        };
        Ok(Self { beacon_roots: has_code(BEACON_ROOTS)?, history: prague && has_code(HISTORY_STORAGE)? })
    }

    pub fn any(&self) -> bool {
        self.beacon_roots || self.history
    }
}

/// One block's system calls: which, and the block they open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockSystem {
    pub calls: SystemCalls,
    pub number: u64,
    pub timestamp: u64,
}

/// The parent beacon block root every Cairn block records (there is no beacon chain).
pub const PARENT_BEACON_ROOT: B256 = B256::ZERO;

impl BlockSystem {
    /// Whether the block's system calls write `slot` of `address`.
    pub fn writes(&self, address: Address, slot: U256) -> bool {
        self.write_of(address, slot).is_some()
    }

    fn write_of(&self, address: Address, slot: U256) -> Option<Written> {
        if address == BEACON_ROOTS && self.calls.beacon_roots {
            let index = U256::from(self.timestamp % RING);
            if slot == index {
                return Some(Written::Timestamp);
            }
            if slot == index + U256::from(RING) {
                return Some(Written::BeaconRoot);
            }
        }
        if address == HISTORY_STORAGE
            && self.calls.history
            && self.number > 0
            && slot == U256::from((self.number - 1) % RING)
        {
            return Some(Written::ParentHash);
        }
        None
    }

    /// The value the block's system calls give `slot` of `address`, if they write it;
    /// `parent_hash` is asked for only when the history slot is the one read.
    pub fn slot<E>(
        &self,
        address: Address,
        slot: U256,
        parent_hash: impl FnOnce(u64) -> Result<B256, E>,
    ) -> Result<Option<U256>, E> {
        Ok(match self.write_of(address, slot) {
            None => None,
            Some(Written::Timestamp) => Some(U256::from(self.timestamp)),
            Some(Written::BeaconRoot) => Some(U256::from_be_bytes(PARENT_BEACON_ROOT.0)),
            Some(Written::ParentHash) => Some(U256::from_be_bytes(parent_hash(self.number - 1)?.0)),
        })
    }

    /// The block's system writes as a state diff on top of `parent_state` (where the
    /// contracts' account fields are read), given the parent's hash. Layer the block's
    /// own diff over it: the calls come before the first transaction.
    pub fn diff(&self, parent_state: &dyn StateView, parent_hash: B256) -> Result<StateDiff, StateError> {
        let mut diff = StateDiff::default();
        let mut write = |address: Address, slots: Vec<(U256, U256)>| -> Result<(), StateError> {
            let info: AccountState = parent_state.account(address)?.unwrap_or_default();
            let change = AccountChange { info: Some(info), storage: slots.into_iter().collect(), ..Default::default() };
            diff.accounts.insert(address, change);
            Ok(())
        };
        if self.calls.beacon_roots {
            let index = self.timestamp % RING;
            write(
                BEACON_ROOTS,
                vec![
                    (U256::from(index), U256::from(self.timestamp)),
                    (U256::from(index + RING), U256::from_be_bytes(PARENT_BEACON_ROOT.0)),
                ],
            )?;
        }
        if self.calls.history && self.number > 0 {
            write(HISTORY_STORAGE, vec![(U256::from((self.number - 1) % RING), U256::from_be_bytes(parent_hash.0))])?;
        }
        Ok(diff)
    }
}

enum Written {
    Timestamp,
    BeaconRoot,
    ParentHash,
}

/// A state with one block's system writes on top: what that block's transactions read
/// (a replay of a sealed block from its parent's state, for traces).
pub struct WithSystemWrites<'a> {
    pub state: &'a dyn StateView,
    pub block: BlockSystem,
}

impl StateView for WithSystemWrites<'_> {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        self.state.account(address)
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        match self.block.slot(address, slot, |n| self.state.block_hash(n))? {
            Some(value) => Ok(value),
            None => self.state.storage(address, slot),
        }
    }

    fn code(&self, code_hash: B256) -> Result<alloy_primitives::Bytes, StateError> {
        self.state.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.state.block_hash(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryState;

    #[test]
    fn the_writes_are_the_slots_the_contracts_set() {
        let block = BlockSystem {
            calls: SystemCalls { beacon_roots: true, history: true },
            number: 8192 + 5,
            timestamp: 1_700_000_000,
        };
        let ts_index = U256::from(1_700_000_000u64 % RING);
        let parent = B256::repeat_byte(0xab);
        let ask = |n: u64| -> Result<B256, ()> {
            assert_eq!(n, 8196, "the parent's hash is asked for");
            Ok(parent)
        };
        assert_eq!(block.slot(BEACON_ROOTS, ts_index, ask), Ok(Some(U256::from(1_700_000_000u64))));
        assert_eq!(block.slot(BEACON_ROOTS, ts_index + U256::from(RING), ask), Ok(Some(U256::ZERO)));
        // (8197 - 1) % 8191 = 5
        assert_eq!(block.slot(HISTORY_STORAGE, U256::from(5), ask), Ok(Some(U256::from_be_bytes(parent.0))));
        assert_eq!(block.slot(HISTORY_STORAGE, U256::from(6), ask), Ok(None));
        assert_eq!(block.slot(Address::ZERO, U256::from(5), ask), Ok(None));
        let none = BlockSystem { calls: SystemCalls::default(), ..block };
        assert_eq!(none.slot(HISTORY_STORAGE, U256::from(5), ask), Ok(None));
    }

    #[test]
    fn calls_are_made_only_to_contracts_with_code() {
        let mut state = InMemoryState::default();
        assert_eq!(SystemCalls::on(&state, true).expect("read"), SystemCalls::default());
        state.insert(HISTORY_STORAGE, 1, U256::ZERO, super::super::block_hash_history_code());
        let calls = SystemCalls::on(&state, true).expect("read");
        assert_eq!(calls, SystemCalls { beacon_roots: false, history: true });
        assert!(!SystemCalls::on(&state, false).expect("read").history, "no history before Prague");
        let block = BlockSystem { calls, number: 3, timestamp: 10 };
        let diff = block.diff(&state, B256::repeat_byte(1)).expect("diff");
        let change = &diff.accounts[&HISTORY_STORAGE];
        assert_eq!(change.storage.get(&U256::from(2)), Some(&U256::from_be_bytes([1; 32])));
        assert_eq!(
            change.info.expect("kept").code_hash,
            alloy_primitives::keccak256(super::super::block_hash_history_code())
        );
        assert!(!diff.accounts.contains_key(&BEACON_ROOTS));
    }
}
