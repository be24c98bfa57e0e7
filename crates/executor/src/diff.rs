use alloy_primitives::map::AddressMap;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountChange, AccountState, StateDiff};
use revm::state::{Account, EvmState};

/// What one transaction did to one account it touched, in the few fields a block diff
/// needs (revm's `Account` carries much more).
#[derive(Debug, Clone)]
pub struct AccountUpdate {
    /// Self-destructed, or touched while empty (EIP-161): the account is deleted.
    pub deleted: bool,
    /// Created by this transaction: its storage starts empty.
    pub created: bool,
    pub info: AccountState,
    /// New code, for a created account with code.
    pub code: Option<(B256, Bytes)>,
    /// Slots whose value this transaction changed.
    pub storage: Vec<(U256, U256)>,
}

impl AccountUpdate {
    /// The update of a touched account; `None` when revm only loaded it.
    pub fn of(account: &Account) -> Option<Self> {
        if !account.is_touched() {
            return None;
        }
        let deleted = account.is_selfdestructed() || account.is_empty();
        let created = account.is_created();
        let code = match &account.info.code {
            Some(code) if created && !deleted && !code.is_empty() => {
                Some((account.info.code_hash, code.original_bytes()))
            }
            _ => None,
        };
        let storage = if deleted {
            Vec::new()
        } else {
            account.changed_storage_slots().map(|(slot, value)| (*slot, value.present_value())).collect()
        };
        Some(Self {
            deleted,
            created,
            info: AccountState {
                nonce: account.info.nonce,
                balance: account.info.balance,
                code_hash: account.info.code_hash,
            },
            code,
            storage,
        })
    }
}

/// Accumulates per-transaction state changes into one block [`StateDiff`].
#[derive(Debug, Default)]
pub struct DiffBuilder {
    accounts: AddressMap<AccountChange>,
    code: Vec<(B256, Bytes)>,
}

impl DiffBuilder {
    /// A builder with room for `accounts` accounts before it must grow.
    pub fn with_capacity(accounts: usize) -> Self {
        Self { accounts: AddressMap::with_capacity_and_hasher(accounts, Default::default()), code: Vec::new() }
    }

    /// Records the changes of one transaction; call in transaction order.
    pub fn record(&mut self, state: &EvmState) {
        for (address, account) in state {
            if let Some(update) = AccountUpdate::of(account) {
                self.apply(*address, &update);
            }
        }
    }

    /// Records one account's update; call in transaction order.
    pub fn apply(&mut self, address: Address, update: &AccountUpdate) {
        let change = self.accounts.entry(address).or_default();
        if update.deleted {
            *change = AccountChange { info: None, storage_wiped: true, storage: Default::default() };
            return;
        }
        if update.created {
            change.storage_wiped = true;
            change.storage.clear();
        }
        if let Some(code) = &update.code {
            self.code.push(code.clone());
        }
        change.info = Some(update.info);
        change.storage.extend(update.storage.iter().copied());
    }

    /// The account as the recorded transactions left it: `Some(None)` if deleted,
    /// `None` if no recorded transaction touched it.
    pub fn current(&self, address: &Address) -> Option<Option<AccountState>> {
        self.accounts.get(address).map(|c| c.info)
    }

    pub fn finish(self) -> StateDiff {
        SortedDiff::merge(vec![self.into_sorted()])
    }

    /// The changes in address order, ready to be merged with builders that hold other
    /// accounts ([`SortedDiff::merge`]).
    pub fn into_sorted(self) -> SortedDiff {
        // Sorting the (large) entries themselves moved each one many times: sort the
        // keys with their positions, then move every entry once.
        let mut entries: Vec<Option<(Address, AccountChange)>> = self.accounts.into_iter().map(Some).collect();
        let mut order: Vec<(Address, u32)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.as_ref().map(|(a, _)| *a).unwrap_or_default(), i as u32))
            .collect();
        order.sort_unstable();
        let accounts = order.into_iter().filter_map(|(_, i)| entries[i as usize].take()).collect();
        SortedDiff { accounts, code: self.code }
    }
}

/// One builder's changes in address order.
#[derive(Debug, Default)]
pub struct SortedDiff {
    accounts: Vec<(Address, AccountChange)>,
    code: Vec<(B256, Bytes)>,
}

impl SortedDiff {
    /// Joins parts that hold disjoint sets of accounts into one block diff.
    pub fn merge(parts: Vec<SortedDiff>) -> StateDiff {
        let mut code = std::collections::BTreeMap::new();
        let mut heads: Vec<_> = parts
            .into_iter()
            .map(|part| {
                code.extend(part.code);
                part.accounts.into_iter().peekable()
            })
            .collect();
        // The input of `BTreeMap::from_iter` arrives sorted, so its own sort is one pass.
        let merged = std::iter::from_fn(|| {
            let next = heads
                .iter_mut()
                .enumerate()
                .filter_map(|(i, h)| h.peek().map(|(a, _)| (*a, i)))
                .min()
                .map(|(_, i)| i)?;
            heads[next].next()
        });
        StateDiff { accounts: merged.collect(), code }
    }
}
