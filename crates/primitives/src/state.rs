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
    /// The value before the block of those slots in `storage` that held one (nonzero),
    /// as the executor read it; empty when the storage was wiped. A hint, not part of
    /// the block's effects (nor of its [`StateDiff::commitment`]): the state committer
    /// uses it to update a slot's trie leaf without reading the old value back, and
    /// checks it against the stored trie first, so a wrong hint costs a read, never a
    /// wrong root.
    pub original: BTreeMap<U256, U256>,
}

/// All state changes of a block, ordered so that two equal diffs compare and hash equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDiff {
    pub accounts: BTreeMap<Address, AccountChange>,
    /// New contract code by hash.
    pub code: BTreeMap<B256, Bytes>,
}

/// `change` happening after what `entry` holds.
fn layer(entry: &mut AccountChange, change: AccountChange) {
    if change.storage_wiped || change.info.is_none() {
        entry.storage.clear();
        entry.original.clear();
        entry.storage_wiped = true;
    }
    entry.info = change.info;
    if !entry.storage_wiped && !change.original.is_empty() {
        // A slot's value before both parts is what the first part to change it saw.
        let firsts: BTreeMap<U256, U256> = if comparable(change.original.len(), entry.storage.len()) {
            // Both in slot order: one walk instead of a lookup per slot.
            let mut written = entry.storage.keys().peekable();
            change
                .original
                .into_iter()
                .filter(|(slot, _)| {
                    while written.next_if(|w| *w < slot).is_some() {}
                    written.peek() != Some(&slot)
                })
                .collect()
        } else {
            change.original.into_iter().filter(|(slot, _)| !entry.storage.contains_key(slot)).collect()
        };
        merge_into(&mut entry.original, firsts);
    }
    merge_into(&mut entry.storage, change.storage);
}

/// Whether two sorted collections are close enough in size that walking both costs less
/// than looking the smaller one's keys up in the larger.
fn comparable(a: usize, b: usize) -> bool {
    a.min(b) * 8 >= a.max(b)
}

/// `from`'s entries into `into`, `from` winning: a merge of both when comparable in size
/// (`append` walks both), else one insertion per entry.
fn merge_into<K: Ord, V>(into: &mut BTreeMap<K, V>, mut from: BTreeMap<K, V>) {
    if comparable(from.len(), into.len()) {
        into.append(&mut from);
    } else {
        into.extend(from);
    }
}

impl StateDiff {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.code.is_empty()
    }

    /// Layers `later` on top of `self`, as if both blocks' changes happened in order.
    /// Costs in proportion to the smaller of the two, or to both when they are of
    /// comparable size (one merge of the two sorted maps).
    pub fn extend(&mut self, mut later: StateDiff) {
        if comparable(self.accounts.len(), later.accounts.len()) && !later.accounts.is_empty() {
            let mut earlier = std::mem::take(&mut self.accounts).into_iter().peekable();
            let mut later_accounts = later.accounts.into_iter().peekable();
            // Sorted in, so `collect` builds the tree in one pass.
            self.accounts = std::iter::from_fn(|| {
                let before = match (earlier.peek(), later_accounts.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => return earlier.next(),
                    (Some((a, _)), Some((b, _))) if a < b => return earlier.next(),
                    (Some((a, _)), Some((b, _))) if a == b => earlier.next().map(|(_, change)| change),
                    _ => None,
                };
                let (address, change) = later_accounts.next()?;
                let mut entry = before.unwrap_or_default();
                layer(&mut entry, change);
                Some((address, entry))
            })
            .collect();
            merge_into(&mut self.code, later.code);
            return;
        }
        if self.accounts.len() >= later.accounts.len() {
            for (addr, change) in later.accounts {
                let entry = self.accounts.entry(addr).or_default();
                layer(entry, change);
            }
            self.code.extend(later.code);
            return;
        }
        // `later` is the larger: keep its maps and slide `self` under them.
        for change in later.accounts.values_mut() {
            change.storage_wiped |= change.info.is_none();
            if change.storage_wiped {
                change.original.clear();
            }
        }
        let earlier = std::mem::replace(self, later);
        for (addr, change) in earlier.accounts {
            match self.accounts.entry(addr) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(change);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let later = std::mem::replace(o.get_mut(), change);
                    layer(o.get_mut(), later);
                }
            }
        }
        for (hash, code) in earlier.code {
            self.code.entry(hash).or_insert(code);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition of [`layer`], one slot at a time.
    fn plain_layer(entry: &mut AccountChange, change: AccountChange) {
        if change.storage_wiped || change.info.is_none() {
            entry.storage.clear();
            entry.original.clear();
            entry.storage_wiped = true;
        }
        entry.info = change.info;
        if !entry.storage_wiped {
            for (slot, was) in change.original {
                if !entry.storage.contains_key(&slot) {
                    entry.original.insert(slot, was);
                }
            }
        }
        entry.storage.extend(change.storage);
    }

    /// The plain definition of [`StateDiff::extend`], to check the fast paths against.
    fn layered(mut earlier: StateDiff, later: StateDiff) -> StateDiff {
        for (addr, change) in later.accounts {
            plain_layer(earlier.accounts.entry(addr).or_default(), change);
        }
        earlier.code.extend(later.code);
        earlier
    }

    fn diff(seed: u64, accounts: u64) -> StateDiff {
        let mut d = StateDiff::default();
        for i in 0..accounts {
            let k = seed.wrapping_mul(31).wrapping_add(i * 7) % 11;
            let info = (!k.is_multiple_of(4)).then_some(AccountState {
                nonce: seed + i,
                balance: U256::from(k),
                code_hash: B256::ZERO,
            });
            let storage: BTreeMap<U256, U256> =
                (0..k % 3).map(|j| (U256::from(j + k), U256::from(seed * 100 + i))).collect();
            let wiped = k.is_multiple_of(5);
            let original = match wiped {
                true => BTreeMap::new(),
                false => storage
                    .keys()
                    .filter(|s| (s.to::<u64>() + seed) % 2 == 1)
                    .map(|s| (*s, *s + U256::from(seed)))
                    .collect(),
            };
            let change = AccountChange { info, storage_wiped: wiped, storage, original };
            d.accounts.insert(Address::with_last_byte(k as u8), change);
        }
        d.code.insert(B256::with_last_byte(seed as u8), Bytes::from(vec![seed as u8]));
        d
    }

    #[test]
    fn layering_keeps_the_first_original_and_drops_originals_on_a_wipe() {
        let slot = U256::from(7);
        let part = |value: u64, was: Option<u64>, wiped: bool| AccountChange {
            info: Some(AccountState::default()),
            storage_wiped: wiped,
            storage: [(slot, U256::from(value))].into(),
            original: was.map(|w| (slot, U256::from(w))).into_iter().collect(),
        };
        let mut entry = part(2, Some(1), false);
        layer(&mut entry, part(3, Some(2), false));
        assert_eq!(entry.original.get(&slot), Some(&U256::from(1)), "the value before the block");
        assert_eq!(entry.storage.get(&slot), Some(&U256::from(3)));
        layer(&mut entry, part(4, None, true));
        assert!(entry.original.is_empty() && entry.storage_wiped);
        layer(&mut entry, part(5, Some(4), false));
        assert!(entry.original.is_empty(), "no originals for a wiped account's slots");
    }

    /// A diff of `accounts` accounts out of 400 with up to `slots` slots each.
    fn big_diff(seed: u64, accounts: u64, slots: u64) -> StateDiff {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut d = StateDiff::default();
        for _ in 0..accounts {
            let address = Address::with_last_byte(0).create(rng.gen_range(0..400u64));
            let kind = rng.gen_range(0..10u8);
            let storage: BTreeMap<U256, U256> = (0..rng.gen_range(0..=slots))
                .map(|_| (U256::from(rng.gen_range(0..3 * slots + 1)), U256::from(rng.gen::<u8>())))
                .collect();
            let wiped = kind == 0;
            let original = match wiped {
                true => BTreeMap::new(),
                false => storage
                    .keys()
                    .filter_map(|s| rng.gen_bool(0.5).then_some(*s))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|s| (s, U256::from(rng.gen_range(1..9u64))))
                    .collect(),
            };
            let info = (kind != 1).then(|| AccountState {
                nonce: rng.gen(),
                balance: U256::from(kind),
                code_hash: B256::ZERO,
            });
            d.accounts.insert(address, AccountChange { info, storage_wiped: wiped, storage, original });
        }
        d.code.insert(B256::with_last_byte(seed as u8), Bytes::from(vec![seed as u8]));
        d
    }

    #[test]
    fn extend_of_large_diffs_equals_layering_whatever_their_sizes() {
        for seed in 0..30u64 {
            // Comparable sizes (merged), very different ones (one side looked up), and
            // accounts with few and with many slots on either side.
            for (a, b, slots) in
                [(300, 250, 40), (40, 300, 3), (300, 20, 60), (200, 200, 1), (1, 300, 200), (250, 1, 200)]
            {
                let (earlier, later) = (big_diff(seed, a, slots), big_diff(seed + 1000, b, slots / 4 + 1));
                let mut fast = earlier.clone();
                fast.extend(later.clone());
                assert_eq!(fast, layered(earlier.clone(), later.clone()), "seed {seed}, sizes {a}/{b}");
                let (earlier, later) = (big_diff(seed, a, slots / 4 + 1), big_diff(seed + 1000, b, slots));
                let mut fast = earlier.clone();
                fast.extend(later.clone());
                assert_eq!(fast, layered(earlier, later), "seed {seed}, sizes {a}/{b}, later's slots");
            }
        }
    }

    #[test]
    fn extend_equals_layering_whichever_side_is_larger() {
        for seed in 0..40u64 {
            for (a, b) in [(2, 9), (9, 2), (5, 5), (0, 6), (6, 0)] {
                let (earlier, later) = (diff(seed, a), diff(seed + 1, b));
                let mut fast = earlier.clone();
                fast.extend(later.clone());
                assert_eq!(fast, layered(earlier, later), "seed {seed}, sizes {a}/{b}");
            }
        }
    }
}
