use alloy_primitives::map::AddressMap;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountChange, AccountState, StateDiff};
use revm::state::{Account, EvmState};
use std::collections::BTreeMap;

/// What one transaction did to one account it touched, in the few fields a block diff
/// needs (revm's `Account` carries much more).
#[derive(Debug, Clone)]
pub struct AccountUpdate {
    /// Self-destructed, or touched while empty (EIP-161): the account is deleted.
    pub deleted: bool,
    /// Created by this transaction: its storage starts empty.
    pub created: bool,
    pub info: AccountState,
    /// New code: a created account's, or an EIP-7702 delegation designator.
    pub code: Option<(B256, Bytes)>,
    /// Slots whose value this transaction changed.
    pub storage: Vec<SlotWrite>,
}

/// One slot a transaction changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotWrite {
    pub slot: U256,
    pub value: U256,
    /// The slot's value when the transaction began (for the block's first writer of
    /// the slot, its value before the block: [`cairn_primitives::AccountChange::original`]).
    pub original: U256,
}

impl AccountUpdate {
    /// The update of a touched account; `None` when revm only loaded it.
    pub fn of(account: &Account) -> Option<Self> {
        if !account.is_touched() {
            return None;
        }
        let deleted = account.is_selfdestructed() || account.is_empty();
        let created = account.is_created();
        // New code comes from a creation, or from an EIP-7702 authorization, which sets
        // (or replaces) an existing account's code to its delegation designator
        // (`0xef0100 ‖ address`). The designator is carried whenever the account is
        // touched: it is 23 bytes, and an account touched in this transaction may have
        // been delegated by it. Clearing a delegation leaves the empty code (no entry).
        let code = match &account.info.code {
            Some(code) if !deleted && !code.is_empty() && (created || code.is_eip7702()) => {
                Some((account.info.code_hash, code.original_bytes()))
            }
            _ => None,
        };
        let storage = if deleted {
            Vec::new()
        } else {
            account
                .changed_storage_slots()
                .map(|(slot, value)| SlotWrite {
                    slot: *slot,
                    value: value.present_value(),
                    original: value.original_value,
                })
                .collect()
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
///
/// Several builders can share one block's work: each owns a set of accounts (whose
/// info it tracks) and a set of storage slots (which it collects for every account);
/// [`SortedDiff::merge`] joins them. A single builder owns everything.
#[derive(Debug, Default)]
pub struct DiffBuilder {
    accounts: AddressMap<Building>,
    code: Vec<(B256, Bytes)>,
    /// What each change replaced, for a builder that can be rewound
    /// ([`DiffBuilder::rewindable`]).
    undo: Option<Undo>,
}

/// A rewindable builder's history: what every account change replaced, and where each
/// recorded transaction began.
#[derive(Debug, Default)]
struct Undo {
    /// Per account change in order: the account and its entry before (`None`: it had
    /// none).
    log: Vec<(Address, Option<Saved>)>,
    /// Per recorded transaction: the log's and the code list's length before it.
    marks: Vec<(usize, usize)>,
}

/// An account's entry before a change: the fields the change may set, and its slot
/// writes (their count when the change only appended, the list itself when it
/// dropped them).
#[derive(Debug)]
struct Saved {
    info: Option<AccountState>,
    storage_wiped: bool,
    storage_only: bool,
    storage: Result<usize, Vec<SlotWrite>>,
}

/// An account's changes while a builder collects them.
#[derive(Debug, Default)]
struct Building {
    /// `None`: deleted (meaningless when `storage_only`).
    info: Option<AccountState>,
    storage_wiped: bool,
    /// Slot writes in order, later ones winning (the first one's original value is the
    /// slot's value before the block): sorted once at the end, which is much cheaper
    /// than inserting each into a tree as it comes.
    storage: Vec<SlotWrite>,
    /// This builder collects only some of the account's slots; another owns the account.
    storage_only: bool,
}

impl DiffBuilder {
    /// A builder with room for `accounts` accounts before it must grow.
    pub fn with_capacity(accounts: usize) -> Self {
        Self {
            accounts: AddressMap::with_capacity_and_hasher(accounts, Default::default()),
            code: Vec::new(),
            undo: None,
        }
    }

    /// Makes the builder keep what each change replaced, so that it can drop the
    /// transactions recorded after some point ([`DiffBuilder::rewind`]).
    pub fn rewindable(mut self) -> Self {
        self.undo = Some(Undo::default());
        self
    }

    /// Keeps only the first `kept` transactions recorded ([`DiffBuilder::record`]); the
    /// builder must be [`DiffBuilder::rewindable`].
    pub fn rewind(&mut self, kept: usize) {
        let undo = self.undo.as_mut().expect("rewind needs a rewindable builder");
        let Some(&(log_len, code_len)) = undo.marks.get(kept) else { return };
        while undo.log.len() > log_len {
            let (address, saved) = undo.log.pop().expect("longer than log_len");
            match saved {
                None => {
                    self.accounts.remove(&address);
                }
                Some(saved) => {
                    let entry = self.accounts.get_mut(&address).expect("an entry the log saw");
                    entry.info = saved.info;
                    entry.storage_wiped = saved.storage_wiped;
                    entry.storage_only = saved.storage_only;
                    match saved.storage {
                        Ok(len) => entry.storage.truncate(len),
                        Err(writes) => entry.storage = writes,
                    }
                }
            }
        }
        self.code.truncate(code_len);
        undo.marks.truncate(kept);
    }

    /// Marks where the next transaction's changes begin (for [`DiffBuilder::rewind`]).
    fn begin_transaction(&mut self) {
        if let Some(undo) = self.undo.as_mut() {
            undo.marks.push((undo.log.len(), self.code.len()));
        }
    }

    /// Records the changes of one transaction; call in transaction order.
    pub fn record(&mut self, state: &EvmState) {
        self.begin_transaction();
        for (address, account) in state {
            if let Some(update) = AccountUpdate::of(account) {
                self.apply(*address, &update);
            }
        }
    }

    /// Records one account's update; call in transaction order.
    pub fn apply(&mut self, address: Address, update: &AccountUpdate) {
        self.apply_part(address, update, true, |_| true);
    }

    /// Records the part of an update this builder collects: everything about the account
    /// when it is the `owner`, else only the storage slots `mine` accepts (and the wipes
    /// that clear them). Call in transaction order.
    pub fn apply_part(&mut self, address: Address, update: &AccountUpdate, owner: bool, mine: impl Fn(&U256) -> bool) {
        let wipes = update.deleted || update.created;
        if !owner {
            debug_assert!(self.undo.is_none(), "a rewindable builder owns every account");
            let any_mine = update.storage.iter().any(|w| mine(&w.slot));
            if !(any_mine || wipes && self.accounts.contains_key(&address)) {
                return;
            }
            let part =
                self.accounts.entry(address).or_insert_with(|| Building { storage_only: true, ..Default::default() });
            if wipes {
                part.storage.clear();
            }
            part.storage.extend(update.storage.iter().filter(|w| mine(&w.slot)).copied());
            return;
        }
        if let Some(undo) = self.undo.as_mut() {
            // A wipe drops the slot writes so far: the log keeps them.
            let saved = self.accounts.get_mut(&address).map(|b| Saved {
                info: b.info,
                storage_wiped: b.storage_wiped,
                storage_only: b.storage_only,
                storage: if wipes { Err(std::mem::take(&mut b.storage)) } else { Ok(b.storage.len()) },
            });
            undo.log.push((address, saved));
        }
        let change = self.accounts.entry(address).or_default();
        change.storage_only = false;
        if update.deleted {
            *change = Building { info: None, storage_wiped: true, storage: Vec::new(), storage_only: false };
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
        change.storage.extend(update.storage.iter().filter(|w| mine(&w.slot)).copied());
    }

    /// The account as the recorded transactions left it: `Some(None)` if deleted,
    /// `None` if no recorded transaction touched it (only for accounts this builder
    /// owns).
    pub fn current(&self, address: &Address) -> Option<Option<AccountState>> {
        self.accounts.get(address).filter(|c| !c.storage_only).map(|c| c.info)
    }

    pub fn finish(self) -> StateDiff {
        SortedDiff::merge(vec![self.into_sorted()])
    }

    /// [`DiffBuilder::finish`] with the accounts split in two halves, one sorted and
    /// converted on the calling thread and the other on `pool` (whose threads must not
    /// be waiting for the caller). Same result.
    pub fn finish_on(self, pool: &rayon::ThreadPool) -> StateDiff {
        if self.accounts.len() < PARALLEL_FINISH_MIN {
            return self.finish();
        }
        // Split on the address's last bit: leading bytes may all be equal (addresses
        // handed out in sequence), the last ones vary. The halves interleave in address
        // order; the merge joins them.
        let (even, odd): (Vec<_>, Vec<_>) = self.accounts.into_iter().partition(|(address, _)| address[19] & 1 == 0);
        let mut other = None;
        let mine = pool.in_place_scope(|scope| {
            scope.spawn(|_| other = Some(sorted(odd, Vec::new())));
            sorted(even, self.code)
        });
        SortedDiff::merge(vec![mine, other.expect("the scope ran its task")])
    }

    /// The changes in address order, ready to be merged with the other builders of the
    /// block ([`SortedDiff::merge`]).
    pub fn into_sorted(self) -> SortedDiff {
        sorted(self.accounts.into_iter().collect(), self.code)
    }
}

/// Fewest accounts for which [`DiffBuilder::finish_on`] splits the work.
const PARALLEL_FINISH_MIN: usize = 4_096;

/// `accounts` in address order, each converted to its final change.
fn sorted(accounts: Vec<(Address, Building)>, code: Vec<(B256, Bytes)>) -> SortedDiff {
    // Sorting the (large) entries themselves moved each one many times: sort the
    // keys with their positions, then move every entry once.
    let mut entries: Vec<Option<(Address, Building)>> = accounts.into_iter().map(Some).collect();
    let mut order: Vec<(Address, u32)> =
        entries.iter().enumerate().map(|(i, e)| (e.as_ref().map(|(a, _)| *a).unwrap_or_default(), i as u32)).collect();
    order.sort_unstable();
    let accounts = order
        .into_iter()
        .filter_map(|(_, i)| entries[i as usize].take())
        .map(|(address, b)| {
            // A wiped account's trie starts empty: its slots' earlier values mean nothing.
            let (storage, original) = last_writes(b.storage, !b.storage_wiped);
            let change = AccountChange { info: b.info, storage_wiped: b.storage_wiped, storage, original };
            (address, change, b.storage_only)
        })
        .collect();
    SortedDiff { accounts, code }
}

/// The final value of each slot written, from writes in order; with `originals`, also
/// the nonzero values the slots had before the first of them.
fn last_writes(mut writes: Vec<SlotWrite>, originals: bool) -> (BTreeMap<U256, U256>, BTreeMap<U256, U256>) {
    // Stable: equal slots keep their order, so the first of each run is the first write
    // and the last is the last.
    writes.sort_by_key(|w| w.slot);
    let mut last: Vec<SlotWrite> = Vec::with_capacity(writes.len());
    for w in writes {
        match last.last_mut() {
            Some(prev) if prev.slot == w.slot => prev.value = w.value,
            _ => last.push(w),
        }
    }
    let original = match originals {
        true => last.iter().filter(|w| !w.original.is_zero()).map(|w| (w.slot, w.original)).collect(),
        false => BTreeMap::new(),
    };
    (last.into_iter().map(|w| (w.slot, w.value)).collect(), original)
}

/// One builder's changes in address order; the flag marks a storage-only part.
#[derive(Debug, Default)]
pub struct SortedDiff {
    accounts: Vec<(Address, AccountChange, bool)>,
    code: Vec<(B256, Bytes)>,
}

impl SortedDiff {
    /// Joins the parts of one block's diff: each account's info from the builder that
    /// owns it, its slots from every builder that collected some.
    pub fn merge(parts: Vec<SortedDiff>) -> StateDiff {
        let mut code = BTreeMap::new();
        let mut heads: Vec<_> = parts
            .into_iter()
            .map(|part| {
                code.extend(part.code);
                part.accounts.into_iter().peekable()
            })
            .collect();
        // The input of `BTreeMap::from_iter` arrives sorted, so its own sort is one pass.
        let merged = std::iter::from_fn(|| {
            let address = heads.iter_mut().filter_map(|h| h.peek().map(|(a, _, _)| *a)).min()?;
            let mut owned: Option<AccountChange> = None;
            let mut slots: Vec<AccountChange> = Vec::new();
            for head in heads.iter_mut() {
                if let Some((_, change, storage_only)) = head.next_if(|(a, _, _)| *a == address) {
                    if storage_only {
                        slots.push(change);
                    } else {
                        owned = Some(change);
                    }
                }
            }
            let mut change = owned.expect("every account has an owning builder");
            for mut part in slots {
                change.storage.append(&mut part.storage);
                if !change.storage_wiped {
                    change.original.append(&mut part.original);
                }
            }
            Some((address, change))
        });
        StateDiff { accounts: merged.collect(), code }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same updates, in the same order, into a fresh builder.
    fn builder(seed: u64) -> DiffBuilder {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut diff = DiffBuilder::default();
        for round in 0..3u64 {
            for i in 0..3_000u64 {
                // Addresses spread over the whole range, many touched in several rounds.
                let address = Address::from_word(alloy_primitives::keccak256(rng.gen_range(0..6_000u64).to_be_bytes()));
                let storage = (0..rng.gen_range(0..4))
                    .map(|_| SlotWrite {
                        slot: U256::from(rng.gen_range(0..8u64)),
                        value: U256::from(round * 10 + i % 7),
                        original: U256::from(rng.gen_range(0..3u64)),
                    })
                    .collect();
                let kind = rng.gen_range(0..20);
                let update = AccountUpdate {
                    deleted: kind == 0,
                    created: kind == 1,
                    info: AccountState { nonce: round, balance: U256::from(i), ..Default::default() },
                    code: (kind == 1).then(|| (B256::with_last_byte(i as u8), Bytes::from(vec![i as u8]))),
                    storage,
                };
                diff.apply(address, &update);
            }
        }
        diff
    }

    /// Transactions of a few account updates each, wipes and deletions included.
    fn transactions(seed: u64, count: usize) -> Vec<Vec<(Address, AccountUpdate)>> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..count)
            .map(|t| {
                (0..rng.gen_range(1..4))
                    .map(|_| {
                        let address = Address::with_last_byte(rng.gen_range(0..12u8));
                        let kind = rng.gen_range(0..10);
                        let storage = (0..rng.gen_range(0..3))
                            .map(|_| SlotWrite {
                                slot: U256::from(rng.gen_range(0..5u64)),
                                value: U256::from(t),
                                original: U256::from(rng.gen_range(0..2u64)),
                            })
                            .collect();
                        let update = AccountUpdate {
                            deleted: kind == 0,
                            created: kind == 1,
                            info: AccountState { nonce: t as u64, balance: U256::from(kind), ..Default::default() },
                            code: (kind == 1).then(|| (B256::with_last_byte(t as u8), Bytes::from(vec![t as u8]))),
                            storage,
                        };
                        (address, update)
                    })
                    .collect()
            })
            .collect()
    }

    fn recorded(txs: &[Vec<(Address, AccountUpdate)>], rewindable: bool) -> DiffBuilder {
        let mut diff = DiffBuilder::default();
        if rewindable {
            diff = diff.rewindable();
        }
        for tx in txs {
            diff.begin_transaction();
            for (address, update) in tx {
                diff.apply(*address, update);
            }
        }
        diff
    }

    #[test]
    fn a_rewound_builder_equals_one_that_recorded_only_the_kept_transactions() {
        for seed in 0..20 {
            let txs = transactions(seed, 40);
            for kept in [0, 1, 7, 20, 39, 40] {
                let mut rewound = recorded(&txs, true);
                rewound.rewind(kept);
                let expected = recorded(&txs[..kept], false).finish();
                assert_eq!(rewound.finish(), expected, "seed {seed}, kept {kept}");
            }
            // Rewinding twice, and recording again after a rewind.
            let mut again = recorded(&txs, true);
            again.rewind(30);
            again.rewind(10);
            for tx in &txs[10..25] {
                again.begin_transaction();
                for (address, update) in tx {
                    again.apply(*address, update);
                }
            }
            again.rewind(18);
            assert_eq!(again.finish(), recorded(&txs[..18], false).finish(), "seed {seed}");
        }
    }

    #[test]
    fn finishing_in_two_halves_gives_the_same_diff() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        for seed in 0..3 {
            let whole = builder(seed).finish();
            let halves = builder(seed).finish_on(&pool);
            assert!(whole.accounts.len() > PARALLEL_FINISH_MIN, "large enough to split");
            assert!(whole.accounts.keys().any(|a| a[19] & 1 == 0) && whole.accounts.keys().any(|a| a[19] & 1 == 1));
            assert_eq!(whole, halves, "seed {seed}");
        }
    }
}
