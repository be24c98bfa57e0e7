//! Byte layouts of stored values. Fixed-width where possible; RLP otherwise.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use cairn_primitives::AccountState;

use crate::StoreError;

/// An account in the flat state together with its storage root (trie data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRecord {
    pub state: AccountState,
    pub storage_root: B256,
}

impl AccountRecord {
    pub const LEN: usize = 8 + 32 + 32 + 32;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.state.nonce.to_be_bytes());
        out[8..40].copy_from_slice(&self.state.balance.to_be_bytes::<32>());
        out[40..72].copy_from_slice(self.state.code_hash.as_slice());
        out[72..].copy_from_slice(self.storage_root.as_slice());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != Self::LEN {
            return Err(StoreError::Corrupt {
                what: "account",
                reason: format!("length {} (expected {})", bytes.len(), Self::LEN),
            });
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[..8]);
        Ok(Self {
            state: AccountState {
                nonce: u64::from_be_bytes(nonce),
                balance: U256::from_be_slice(&bytes[8..40]),
                code_hash: B256::from_slice(&bytes[40..72]),
            },
            storage_root: B256::from_slice(&bytes[72..]),
        })
    }
}

/// Where a transaction sits in the chain, with its raw bytes and sender.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct TxRecord {
    pub block_number: u64,
    pub index: u64,
    pub sender: Address,
    pub raw: Bytes,
}

pub(crate) fn hashed_address(address: Address) -> [u8; 32] {
    keccak256(address).0
}

pub(crate) fn storage_key(hashed_address: &[u8; 32], slot: U256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address);
    key[32..].copy_from_slice(keccak256(slot.to_be_bytes::<32>()).as_slice());
    key
}

pub(crate) fn storage_range(hashed_address: &[u8; 32]) -> std::ops::RangeInclusive<[u8; 64]> {
    let mut lo = [0u8; 64];
    lo[..32].copy_from_slice(hashed_address);
    let mut hi = [0xffu8; 64];
    hi[..32].copy_from_slice(hashed_address);
    lo..=hi
}

pub(crate) fn rlp_decode<T: alloy_rlp::Decodable>(what: &'static str, mut bytes: &[u8]) -> Result<T, StoreError> {
    T::decode(&mut bytes).map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
}

/// A history index key: the state key (`keccak(address)`, or
/// `keccak(address) ++ keccak(slot)`) followed by the last block of a history batch,
/// big-endian, so one key's batches sort by block.
pub(crate) fn history_key<const N: usize>(key: &[u8], batch_end: u64) -> [u8; N] {
    let mut out = [0u8; N];
    out[..N - 8].copy_from_slice(key);
    out[N - 8..].copy_from_slice(&batch_end.to_be_bytes());
    out
}

pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] =
        bytes.try_into().map_err(|_| StoreError::Corrupt { what, reason: format!("{} bytes, not 8", bytes.len()) })?;
    Ok(u64::from_be_bytes(bytes))
}

/// One changeset account entry: hashed address, 1 if the account existed, its record.
const ACCOUNT_ENTRY: usize = 32 + 1 + AccountRecord::LEN;
/// One changeset slot entry: storage key (`keccak(address) ++ keccak(slot)`), value.
const SLOT_ENTRY: usize = 64 + 32;

/// Encodes a block's changeset: the value every key it changed held before it. Layout:
/// `u32` account count, `u32` slot count, then fixed-width account entries and slot
/// entries, each sorted by key (the maps' order), so one key is found by binary search.
pub(crate) fn encode_changeset(
    accounts: &std::collections::BTreeMap<[u8; 32], Option<[u8; AccountRecord::LEN]>>,
    slots: &std::collections::BTreeMap<[u8; 64], [u8; 32]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + accounts.len() * ACCOUNT_ENTRY + slots.len() * SLOT_ENTRY);
    out.extend_from_slice(&(accounts.len() as u32).to_be_bytes());
    out.extend_from_slice(&(slots.len() as u32).to_be_bytes());
    for (key, record) in accounts {
        out.extend_from_slice(key);
        match record {
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&[0u8; 1 + AccountRecord::LEN]),
        }
    }
    for (key, value) in slots {
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out
}

/// A stored changeset, read in place.
pub(crate) struct Changeset<'a> {
    accounts: &'a [u8],
    slots: &'a [u8],
}

impl<'a> Changeset<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { what: "changeset", reason: reason.into() };
        let (counts, rest) = bytes.split_first_chunk::<8>().ok_or_else(|| corrupt("shorter than its header"))?;
        let accounts = u32::from_be_bytes(counts[..4].try_into().expect("4 bytes")) as usize * ACCOUNT_ENTRY;
        let slots = u32::from_be_bytes(counts[4..].try_into().expect("4 bytes")) as usize * SLOT_ENTRY;
        if rest.len() != accounts + slots {
            return Err(corrupt("length does not match its entry counts"));
        }
        let (accounts, slots) = rest.split_at(accounts);
        Ok(Self { accounts, slots })
    }

    /// The account's value before the block (`Some(None)`: it did not exist), or `None`
    /// when the block did not change it.
    pub(crate) fn account(&self, hashed: &[u8; 32]) -> Result<Option<Option<AccountRecord>>, StoreError> {
        let at = lower_bound(self.accounts, ACCOUNT_ENTRY, hashed);
        match self.accounts.get(at * ACCOUNT_ENTRY..(at + 1) * ACCOUNT_ENTRY) {
            Some(entry) if entry[..32] == hashed[..] => Ok(Some(decode_account_entry(entry)?)),
            _ => Ok(None),
        }
    }

    /// The slot's value before the block, or `None` when the block did not change it.
    pub(crate) fn slot(&self, key: &[u8; 64]) -> Option<[u8; 32]> {
        let at = lower_bound(self.slots, SLOT_ENTRY, key);
        match self.slots.get(at * SLOT_ENTRY..(at + 1) * SLOT_ENTRY) {
            Some(entry) if entry[..64] == key[..] => Some(entry[64..].try_into().expect("32 bytes")),
            _ => None,
        }
    }

    /// Every account the block changed, with its value before it, in key order.
    pub(crate) fn accounts(
        &self,
    ) -> impl Iterator<Item = Result<([u8; 32], Option<AccountRecord>), StoreError>> + use<'a> {
        self.accounts.chunks_exact(ACCOUNT_ENTRY).map(|entry| {
            let key: [u8; 32] = entry[..32].try_into().expect("32 bytes");
            Ok((key, decode_account_entry(entry)?))
        })
    }

    /// Every slot the block changed, `(storage key, value before)`, in key order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (&'a [u8], [u8; 32])> + use<'a> {
        self.slots.chunks_exact(SLOT_ENTRY).map(|entry| (&entry[..64], entry[64..].try_into().expect("32 bytes")))
    }

    /// The slots of the account hashed `owner` the block changed, in key order.
    pub(crate) fn slots_of(&self, owner: &[u8; 32]) -> impl Iterator<Item = (&'a [u8], [u8; 32])> + use<'a> {
        let from = lower_bound(self.slots, SLOT_ENTRY, owner);
        let owner = *owner;
        self.slots[from * SLOT_ENTRY..]
            .chunks_exact(SLOT_ENTRY)
            .take_while(move |entry| entry[..32] == owner)
            .map(|entry| (&entry[..64], entry[64..].try_into().expect("32 bytes")))
    }
}

fn decode_account_entry(entry: &[u8]) -> Result<Option<AccountRecord>, StoreError> {
    match entry[32] {
        0 => Ok(None),
        _ => Ok(Some(AccountRecord::decode(&entry[33..])?)),
    }
}

/// Index of the first fixed-width entry whose key is not below `key` (entries sorted by
/// key; a key shorter than an entry's compares by its prefix).
fn lower_bound(entries: &[u8], width: usize, key: &[u8]) -> usize {
    let (mut lo, mut hi) = (0, entries.len() / width);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if compare_bytes(&entries[mid * width..mid * width + key.len()], key).is_lt() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Byte-string order (as `memcmp`), comparing eight bytes at a time in registers.
///
/// redb calls its key comparison a few dozen times per lookup (binary search on every
/// B-tree level), so this is inlined into its search loop instead of calling `memcmp`.
#[inline]
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let shared = a.len().min(b.len());
    let (mut x, mut y) = (&a[..shared], &b[..shared]);
    while x.len() >= 8 {
        let (xw, xr) = x.split_at(8);
        let (yw, yr) = y.split_at(8);
        let xw = u64::from_be_bytes(xw.try_into().expect("8 bytes"));
        let yw = u64::from_be_bytes(yw.try_into().expect("8 bytes"));
        if xw != yw {
            return xw.cmp(&yw);
        }
        x = xr;
        y = yr;
    }
    x.cmp(y).then(a.len().cmp(&b.len()))
}

/// A fixed-width byte string as a redb key or value (`SelfType` is `[u8; N]`, so callers
/// pass and get plain arrays), in byte order.
///
/// redb's own `[u8; N]` orders keys element by element, one out-of-line `u8` comparison
/// per byte: a fifth of the state committer's time went to that loop (perf, `cairn bench
/// commit`). The byte layout and the order are the same; only the table's type name
/// differs, which is why the store format moved to 3.
#[derive(Debug)]
pub struct Fixed<const N: usize>;

impl<const N: usize> redb::Value for Fixed<N> {
    type SelfType<'a> = [u8; N];
    type AsBytes<'a> = &'a [u8; N];

    fn fixed_width() -> Option<usize> {
        Some(N)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> [u8; N]
    where
        Self: 'a,
    {
        // redb hands back exactly what `as_bytes` produced: `fixed_width()` bytes.
        let mut out = [0u8; N];
        out.copy_from_slice(data);
        out
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a [u8; N]) -> &'a [u8; N]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> redb::TypeName {
        redb::TypeName::new(&format!("cairn::Fixed<{N}>"))
    }
}

impl<const N: usize> redb::Key for Fixed<N> {
    #[inline]
    fn compare(data1: &[u8], data2: &[u8]) -> std::cmp::Ordering {
        compare_bytes(data1, data2)
    }
}

/// A variable-length byte string as a redb key (`SelfType` is `&[u8]`), in byte order,
/// with the comparison of [`compare_bytes`] (trie node paths behind a 32-byte owner
/// share long prefixes, which a byte-wise `memcmp` call walks on every probe).
#[derive(Debug)]
pub struct ByteKey;

impl redb::Value for ByteKey {
    type SelfType<'a> = &'a [u8];
    type AsBytes<'a> = &'a [u8];

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> redb::TypeName {
        redb::TypeName::new("cairn::ByteKey")
    }
}

impl redb::Key for ByteKey {
    #[inline]
    fn compare(data1: &[u8], data2: &[u8]) -> std::cmp::Ordering {
        compare_bytes(data1, data2)
    }

    /// The shortest prefix of `right` that still sorts after `left` (keeps the B-tree's
    /// branch pages dense), or `left` when no prefix is shorter.
    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let common = left.iter().zip(right).take_while(|(l, r)| l == r).count();
        let cut = common + 1;
        if cut < left.len() && cut < right.len() {
            std::borrow::Cow::Borrowed(&right[..cut])
        } else {
            std::borrow::Cow::Borrowed(left)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redb::{Key, ReadableDatabase, ReadableTable, TableDefinition};

    fn shared_prefix_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(0u8..4, 0..12),
            proptest::collection::vec(0u8..4, 0..12),
        )
            .prop_map(|(prefix, x, y)| ([prefix.as_slice(), &x].concat(), [prefix.as_slice(), &y].concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        #[test]
        fn compare_bytes_is_byte_order((a, b) in shared_prefix_pair()) {
            prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
            prop_assert_eq!(compare_bytes(&b, &a), b.cmp(&a));
            prop_assert_eq!(compare_bytes(&a, &a), std::cmp::Ordering::Equal);
        }

        #[test]
        fn separator_lies_between_and_is_no_longer_than_left((a, b) in shared_prefix_pair()) {
            prop_assume!(a != b);
            let (left, right) = if a < b { (a, b) } else { (b, a) };
            let sep = ByteKey::separator(&left, &right);
            prop_assert!(left.as_slice() <= &sep[..]);
            prop_assert!(&sep[..] < right.as_slice());
            prop_assert!(sep.len() <= left.len());
        }
    }

    /// Enough keys for multi-level B-trees (so separators are used), with the long shared
    /// prefixes of storage-trie keys: iteration is byte order and every key reads back.
    #[test]
    fn tables_keyed_by_fixed_and_byte_key_keep_byte_order() {
        const BYTES: TableDefinition<ByteKey, u32> = TableDefinition::new("bytes");
        const FIXED: TableDefinition<Fixed<32>, Fixed<8>> = TableDefinition::new("fixed");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("t.redb")).expect("create");
        let mut byte_keys: Vec<Vec<u8>> = Vec::new();
        let mut fixed_keys: Vec<[u8; 32]> = Vec::new();
        for i in 0u32..20_000 {
            let h = alloy_primitives::keccak256(i.to_be_bytes()).0;
            let owner = [h[0] & 0x03; 32];
            let depth = 1 + usize::from(h[1] % 6);
            byte_keys.push([&owner[..], &h[2..2 + depth]].concat());
            fixed_keys.push(h);
        }
        let txn = db.begin_write().expect("write");
        {
            let mut bytes = txn.open_table(BYTES).expect("open");
            let mut fixed = txn.open_table(FIXED).expect("open");
            for (i, (b, f)) in byte_keys.iter().zip(&fixed_keys).enumerate() {
                bytes.insert(b.as_slice(), i as u32).expect("insert");
                fixed.insert(f, (i as u64).to_be_bytes()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let txn = db.begin_read().expect("read");
        let bytes = txn.open_table(BYTES).expect("open");
        let fixed = txn.open_table(FIXED).expect("open");
        let stored: Vec<Vec<u8>> = bytes.iter().expect("iter").map(|e| e.expect("entry").0.value().to_vec()).collect();
        let mut expected = byte_keys.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(stored, expected);
        let stored: Vec<[u8; 32]> = fixed.iter().expect("iter").map(|e| e.expect("entry").0.value()).collect();
        let mut expected = fixed_keys.clone();
        expected.sort();
        assert_eq!(stored, expected);
        for (i, f) in fixed_keys.iter().enumerate() {
            assert_eq!(fixed.get(f).expect("get").expect("present").value(), (i as u64).to_be_bytes());
        }
        for b in &byte_keys {
            assert!(bytes.get(b.as_slice()).expect("get").is_some());
        }
        let (lo, hi) = (&expected[5_000], &expected[5_100]);
        let range: Vec<[u8; 32]> = fixed.range(*lo..*hi).expect("range").map(|e| e.expect("entry").0.value()).collect();
        assert_eq!(range, expected[5_000..5_100]);
    }
}
