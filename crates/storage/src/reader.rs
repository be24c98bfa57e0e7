use alloy_consensus::Header;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountState, ChainConfig, StateError, StateView, StoredReceipt};
use redb::{ReadOnlyMultimapTable, ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::codec::{
    decode_u64, hashed_address, history_key, rlp_decode, storage_key, AccountRecord, Changeset, TxRecord,
};
use crate::{io, Result, StoreError, *};

/// A consistent read-only snapshot of the store.
pub struct StoreReader {
    headers: ReadOnlyTable<u64, &'static [u8]>,
    hash_to_number: ReadOnlyTable<Fixed<32>, u64>,
    bodies: ReadOnlyTable<u64, &'static [u8]>,
    sequencer_blocks: ReadOnlyTable<u64, &'static [u8]>,
    evidence: ReadOnlyTable<Fixed<32>, &'static [u8]>,
    txs: ReadOnlyTable<Fixed<32>, &'static [u8]>,
    receipts: ReadOnlyTable<Fixed<12>, &'static [u8]>,
    log_address: ReadOnlyMultimapTable<Fixed<20>, u64>,
    log_topic: ReadOnlyMultimapTable<Fixed<32>, u64>,
    accounts: ReadOnlyTable<Fixed<32>, &'static [u8]>,
    storage: ReadOnlyTable<Fixed<64>, Fixed<32>>,
    code: ReadOnlyTable<Fixed<32>, &'static [u8]>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    account_trie: ReadOnlyTable<ByteKey, &'static [u8]>,
    storage_trie: ReadOnlyTable<ByteKey, &'static [u8]>,
    trie_roots: ReadOnlyTable<ByteKey, &'static [u8]>,
    pub(crate) account_history: ReadOnlyTable<Fixed<40>, u32>,
    storage_history: ReadOnlyTable<Fixed<72>, u32>,
    pub(crate) changesets: ReadOnlyTable<u64, &'static [u8]>,
}

impl StoreReader {
    pub(crate) fn new(txn: ReadTransaction) -> Result<Self> {
        let op = "open table";
        Ok(Self {
            headers: txn.open_table(HEADERS).map_err(io(op))?,
            hash_to_number: txn.open_table(HASH_TO_NUMBER).map_err(io(op))?,
            sequencer_blocks: txn.open_table(SEQUENCER_BLOCKS).map_err(io(op))?,
            evidence: txn.open_table(EVIDENCE).map_err(io(op))?,
            bodies: txn.open_table(BODIES).map_err(io(op))?,
            txs: txn.open_table(TXS).map_err(io(op))?,
            receipts: txn.open_table(RECEIPTS).map_err(io(op))?,
            log_address: txn.open_multimap_table(LOG_ADDRESS).map_err(io(op))?,
            log_topic: txn.open_multimap_table(LOG_TOPIC0).map_err(io(op))?,
            accounts: txn.open_table(ACCOUNTS).map_err(io(op))?,
            storage: txn.open_table(STORAGE).map_err(io(op))?,
            code: txn.open_table(CODE).map_err(io(op))?,
            meta: txn.open_table(META).map_err(io(op))?,
            account_trie: txn.open_table(ACCOUNT_TRIE).map_err(io(op))?,
            storage_trie: txn.open_table(STORAGE_TRIE).map_err(io(op))?,
            trie_roots: txn.open_table(TRIE_ROOTS).map_err(io(op))?,
            account_history: txn.open_table(ACCOUNT_HISTORY).map_err(io(op))?,
            storage_history: txn.open_table(STORAGE_HISTORY).map_err(io(op))?,
            changesets: txn.open_table(CHANGESETS).map_err(io(op))?,
        })
    }

    /// Number of the newest committed block; `Err(Empty)` before genesis.
    pub fn head(&self) -> Result<u64> {
        let v = self.meta.get(META_HEAD).map_err(io("read head"))?.ok_or(StoreError::Empty)?;
        let bytes: [u8; 8] =
            v.value().try_into().map_err(|_| StoreError::Corrupt { what: "head", reason: "not 8 bytes".into() })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// The development clock; the default (no offset) when none was ever set.
    pub fn clock(&self) -> Result<crate::DevClock> {
        let Some(v) = self.meta.get(crate::META_CLOCK).map_err(io("read clock"))? else {
            return Ok(crate::DevClock::default());
        };
        let bytes = v.value();
        let corrupt = || StoreError::Corrupt { what: "clock", reason: format!("{} bytes, want 16", bytes.len()) };
        let offset: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
        let next: [u8; 8] = bytes.get(8..16).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
        let next = u64::from_be_bytes(next);
        Ok(crate::DevClock { offset_secs: i64::from_be_bytes(offset), next_timestamp: (next != 0).then_some(next) })
    }

    pub fn chain_config(&self) -> Result<ChainConfig> {
        let v = self.meta.get(META_CHAIN).map_err(io("read chain"))?.ok_or(StoreError::Empty)?;
        serde_json::from_slice(v.value())
            .map_err(|e| StoreError::Corrupt { what: "chain config", reason: e.to_string() })
    }

    pub fn header(&self, number: u64) -> Result<Option<Header>> {
        match self.headers.get(number).map_err(io("read header"))? {
            Some(v) => Ok(Some(rlp_decode("header", v.value())?)),
            None => Ok(None),
        }
    }

    /// The decided sequencer block at `height` and its certificate's bytes (`None` for
    /// genesis and for blocks stored before sequencer blocks were).
    pub fn sequencer_block(&self, height: u64) -> Result<Option<(cairn_primitives::SequencerBlock, Vec<u8>)>> {
        let Some(v) = self.sequencer_blocks.get(height).map_err(io("read sequencer block"))? else { return Ok(None) };
        let bytes = v.value();
        let corrupt = |reason: String| StoreError::Corrupt { what: "sequencer block", reason };
        let len = bytes.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize);
        let len = len.filter(|l| 4 + l <= bytes.len()).ok_or_else(|| corrupt(format!("{} bytes", bytes.len())))?;
        let block = cairn_primitives::SequencerBlock::decode(&bytes[4..4 + len]).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some((block, bytes[4 + len..].to_vec())))
    }

    /// Every stored evidence record: id and bytes (at most [`MAX_EVIDENCE`]).
    pub fn evidence(&self) -> Result<Vec<(B256, Vec<u8>)>> {
        let mut out = Vec::new();
        for entry in self.evidence.iter().map_err(io("read evidence"))? {
            let (k, v) = entry.map_err(io("read evidence"))?;
            out.push((B256::from(k.value()), v.value().to_vec()));
        }
        Ok(out)
    }

    /// How many evidence records are stored.
    pub fn evidence_count(&self) -> Result<u64> {
        self.evidence.len().map_err(io("count evidence"))
    }

    pub fn block_number(&self, hash: B256) -> Result<Option<u64>> {
        Ok(self.hash_to_number.get(hash.0).map_err(io("read block hash"))?.map(|v| v.value()))
    }

    /// Hashes of block `number`'s transactions, in order.
    pub fn block_tx_hashes(&self, number: u64) -> Result<Vec<B256>> {
        let Some(v) = self.bodies.get(number).map_err(io("read body"))? else {
            return Ok(Vec::new());
        };
        Ok(v.value().chunks_exact(32).map(B256::from_slice).collect())
    }

    pub fn tx(&self, hash: B256) -> Result<Option<TxRecord>> {
        match self.txs.get(hash.0).map_err(io("read tx"))? {
            Some(v) => Ok(Some(rlp_decode("transaction", v.value())?)),
            None => Ok(None),
        }
    }

    /// The receipt of the sealed transaction `hash` (found through its record).
    pub fn receipt(&self, hash: B256) -> Result<Option<StoredReceipt>> {
        match self.tx(hash)? {
            Some(record) => self.receipt_at(record.block_number, record.index),
            None => Ok(None),
        }
    }

    /// The receipt of the `index`-th transaction of block `number`.
    pub fn receipt_at(&self, number: u64, index: u64) -> Result<Option<StoredReceipt>> {
        let Ok(index) = u32::try_from(index) else { return Ok(None) };
        match self.receipts.get(crate::receipt_key(number, index)).map_err(io("read receipt"))? {
            Some(v) => Ok(Some(rlp_decode("receipt", v.value())?)),
            None => Ok(None),
        }
    }

    /// The receipts of block `number`, in order (one range read).
    pub fn block_receipts(&self, number: u64) -> Result<Vec<StoredReceipt>> {
        let range = crate::receipt_key(number, 0)..=crate::receipt_key(number, u32::MAX);
        let mut out = Vec::new();
        for entry in self.receipts.range(range).map_err(io("read receipts"))? {
            out.push(rlp_decode("receipt", entry.map_err(io("read receipts"))?.1.value())?);
        }
        Ok(out)
    }

    /// Blocks in `from..=to` that hold a log emitted by `address` (log index).
    pub fn blocks_with_log_address(&self, address: Address, from: u64, to: u64) -> Result<Vec<u64>> {
        let values = self.log_address.get(address.0 .0).map_err(io("read log index"))?;
        collect_in_range(values, from, to)
    }

    /// Blocks in `from..=to` that hold a log whose first topic (event signature) is
    /// `topic` (log index).
    pub fn blocks_with_log_topic0(&self, topic: B256, from: u64, to: u64) -> Result<Vec<u64>> {
        let values = self.log_topic.get(topic.0).map_err(io("read log index"))?;
        collect_in_range(values, from, to)
    }

    pub fn account_record(&self, address: Address) -> Result<Option<AccountRecord>> {
        match self.accounts.get(hashed_address(address)).map_err(io("read account"))? {
            Some(v) => Ok(Some(AccountRecord::decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// The stored branch node of `owner`'s trie at the nibble path `path`.
    pub fn trie_node(&self, owner: crate::TrieOwner<'_>, path: &[u8]) -> Result<Option<Vec<u8>>> {
        self.trie_node_with(owner, path, <[u8]>::to_vec)
    }

    /// Like [`StoreReader::trie_node`], handing the stored bytes to `f` where they lie
    /// instead of copying them out.
    pub fn trie_node_with<T>(
        &self,
        owner: crate::TrieOwner<'_>,
        path: &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>> {
        let table = if owner.is_some() { &self.storage_trie } else { &self.account_trie };
        let mut key = [0u8; 32 + 64];
        let start = owner.map_or(0, |o| {
            key[..32].copy_from_slice(o);
            32
        });
        let end = start + path.len();
        if path.len() > 64 {
            return Err(crate::StoreError::Corrupt { what: "trie path", reason: format!("{} nibbles", path.len()) });
        }
        key[start..end].copy_from_slice(path);
        Ok(table.get(&key[..end]).map_err(io("read trie node"))?.map(|v| f(v.value())))
    }

    /// The stored root reference of `owner`'s trie (`None`: empty trie).
    pub fn trie_root(&self, owner: crate::TrieOwner<'_>) -> Result<Option<Vec<u8>>> {
        let key: &[u8] = owner.map(|o| o.as_slice()).unwrap_or_default();
        Ok(self.trie_roots.get(key).map_err(io("read trie root"))?.map(|v| v.value().to_vec()))
    }

    /// Visits the accounts whose hashed address lies in `lo..=hi`, in order.
    pub fn accounts_in(&self, lo: B256, hi: B256, mut f: impl FnMut(B256, AccountRecord)) -> Result<()> {
        for entry in self.accounts.range(lo.0..=hi.0).map_err(io("scan accounts"))? {
            let (k, v) = entry.map_err(io("scan accounts"))?;
            f(B256::from(k.value()), AccountRecord::decode(v.value())?);
        }
        Ok(())
    }

    /// Visits the slots of the account hashed `owner` whose hashed slot lies in
    /// `lo..=hi`, in order, as `(keccak(slot), value)`.
    pub fn storage_in(&self, owner: &[u8; 32], lo: B256, hi: B256, mut f: impl FnMut(B256, U256)) -> Result<()> {
        let mut from = [0u8; 64];
        from[..32].copy_from_slice(owner);
        from[32..].copy_from_slice(lo.as_slice());
        let mut to = from;
        to[32..].copy_from_slice(hi.as_slice());
        for entry in self.storage.range(from..=to).map_err(io("scan storage"))? {
            let (k, v) = entry.map_err(io("scan storage"))?;
            f(B256::from_slice(&k.value()[32..]), U256::from_be_bytes(v.value()));
        }
        Ok(())
    }

    /// The account whose address hashes to `hashed`.
    pub fn account_record_hashed(&self, hashed: &[u8; 32]) -> Result<Option<AccountRecord>> {
        match self.accounts.get(*hashed).map_err(io("read account"))? {
            Some(v) => Ok(Some(AccountRecord::decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// Visits every storage slot of every account, ordered by hashed address then
    /// hashed slot, as `(keccak(address), keccak(slot), value)`.
    pub fn for_each_slot(&self, f: impl FnMut(&[u8; 32], B256, U256)) -> Result<()> {
        self.for_each_slot_of(&[0; 32], &[0xff; 32], f)
    }

    /// Like [`StoreReader::for_each_slot`], for the accounts whose hashed address lies in
    /// `lo..=hi` only (a full recomputation splits the storage table this way).
    pub fn for_each_slot_of(
        &self,
        lo: &[u8; 32],
        hi: &[u8; 32],
        mut f: impl FnMut(&[u8; 32], B256, U256),
    ) -> Result<()> {
        let mut from = [0u8; 64];
        from[..32].copy_from_slice(lo);
        let mut to = [0xffu8; 64];
        to[..32].copy_from_slice(hi);
        for entry in self.storage.range(from..=to).map_err(io("scan storage"))? {
            let (k, v) = entry.map_err(io("scan storage"))?;
            let key = k.value();
            let owner: [u8; 32] = key[..32].try_into().expect("64-byte key");
            f(&owner, B256::from_slice(&key[32..]), U256::from_be_bytes(v.value()));
        }
        Ok(())
    }

    /// Oldest block whose state can still be read (the head when no history is kept).
    pub fn history_from(&self) -> Result<u64> {
        match self.meta.get(META_HISTORY_FROM).map_err(io("read history start"))? {
            Some(v) => decode_u64("history start", v.value()),
            None => self.head(),
        }
    }

    /// The state as of block `block` (between [`history_from`] and the head).
    ///
    /// [`history_from`]: StoreReader::history_from
    pub fn into_state_at(self, block: u64) -> Result<StateAt> {
        let head = self.head()?;
        let oldest = self.history_from()?;
        if block > head {
            return Err(StoreError::Corrupt {
                what: "block number",
                reason: format!("{block} is above the head {head}"),
            });
        }
        if block < oldest {
            return Err(StoreError::Pruned { block, oldest });
        }
        Ok(StateAt { reader: self, block, head })
    }

    /// The account hashed `hashed` as of block `block` (retained, head `head`).
    fn account_record_at(&self, hashed: &[u8; 32], block: u64, head: u64) -> Result<Option<AccountRecord>> {
        match self.first_change(&self.account_history, hashed, block, head, |c| c.account(hashed))? {
            Some(before) => Ok(before),
            None => self.account_record_hashed(hashed),
        }
    }

    /// The slot at storage key `key` (`keccak(address) ++ keccak(slot)`) as of `block`.
    fn slot_at(&self, key: &[u8; 64], block: u64, head: u64) -> Result<U256> {
        let value = match self.first_change(&self.storage_history, key, block, head, |c| Ok(c.slot(key)))? {
            Some(before) => Some(before),
            None => self.storage.get(*key).map_err(io("read slot"))?.map(|v| v.value()),
        };
        Ok(value.map(U256::from_be_bytes).unwrap_or_default())
    }

    /// What `find` reads from the changeset of the first block after `block` that changed
    /// `key` (its value before that block, i.e. as of `block`), or `None` if no block up
    /// to `head` did. Indexed batches are looked up by key; the changesets after the last
    /// full batch are searched one by one.
    fn first_change<const N: usize, T>(
        &self,
        index: &ReadOnlyTable<Fixed<N>, u32>,
        key: &[u8],
        block: u64,
        head: u64,
        find: impl Fn(&Changeset<'_>) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let indexed_to = head / HISTORY_BATCH * HISTORY_BATCH;
        if block < indexed_to {
            let lo: [u8; N] = history_key(key, block + 1);
            let hi: [u8; N] = history_key(key, indexed_to);
            for entry in index.range(lo..=hi).map_err(io("read history"))? {
                let (k, bits) = entry.map_err(io("read history"))?;
                let end = u64::from_be_bytes(k.value()[N - 8..].try_into().expect("8-byte suffix"));
                let first = end + 1 - HISTORY_BATCH;
                let mut bits = bits.value();
                if block >= first {
                    // Only blocks after `block`; `end > block`, so the shift is below 32.
                    bits &= !0u32 << (block - first + 1);
                }
                if bits != 0 {
                    let changed = first + u64::from(bits.trailing_zeros());
                    let bytes = self.changesets.get(changed).map_err(io("read changeset"))?.ok_or_else(|| {
                        StoreError::Corrupt {
                            what: "history",
                            reason: format!("index names block {changed}, no changeset"),
                        }
                    })?;
                    return match find(&Changeset::parse(bytes.value())?)? {
                        Some(found) => Ok(Some(found)),
                        None => Err(StoreError::Corrupt {
                            what: "history",
                            reason: format!("index names block {changed}, its changeset lacks the key"),
                        }),
                    };
                }
            }
        }
        for entry in self.changesets.range(block.max(indexed_to) + 1..=head).map_err(io("read changesets"))? {
            let (_, bytes) = entry.map_err(io("read changesets"))?;
            if let Some(found) = find(&Changeset::parse(bytes.value())?)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Every account changed by a block after `block`, with its value as of `block`
    /// (`None`: absent), in hashed-address order; at most `limit` of them.
    pub fn accounts_changed_after(&self, block: u64, limit: usize) -> Result<Vec<([u8; 32], Option<AccountRecord>)>> {
        let mut found = std::collections::BTreeMap::new();
        for entry in self.changesets.range(block + 1..).map_err(io("read changesets"))? {
            let (_, bytes) = entry.map_err(io("read changesets"))?;
            for account in Changeset::parse(bytes.value())?.accounts() {
                let (key, before) = account?;
                // Changesets come oldest first: the first one holding a key has its value then.
                found.entry(key).or_insert(before);
            }
            if found.len() > limit {
                return Err(StoreError::TooFarBack { block, needed: found.len(), limit });
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Every slot of the account hashed `owner` changed by a block after `block`, with
    /// its value as of `block`, as `(keccak(slot), value)` in order; at most `limit`.
    pub fn slots_changed_after(&self, owner: &[u8; 32], block: u64, limit: usize) -> Result<Vec<(B256, U256)>> {
        let mut found = std::collections::BTreeMap::new();
        for entry in self.changesets.range(block + 1..).map_err(io("read changesets"))? {
            let (_, bytes) = entry.map_err(io("read changesets"))?;
            for (key, before) in Changeset::parse(bytes.value())?.slots_of(owner) {
                found.entry(B256::from_slice(&key[32..])).or_insert(U256::from_be_bytes(before));
            }
            if found.len() > limit {
                return Err(StoreError::TooFarBack { block, needed: found.len(), limit });
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Reads every trie node and account once, so they sit in the store's page cache as
    /// on a node that has been running a while (benchmarks). Returns the bytes read.
    pub fn warm_trie(&self) -> Result<u64> {
        let mut bytes = 0u64;
        for table in [&self.account_trie, &self.storage_trie] {
            for entry in table.iter().map_err(io("scan trie"))? {
                bytes += entry.map_err(io("scan trie"))?.1.value().len() as u64;
            }
        }
        for entry in self.accounts.iter().map_err(io("scan accounts"))? {
            bytes += entry.map_err(io("scan accounts"))?.1.value().len() as u64;
        }
        Ok(bytes)
    }

    /// Number of accounts in the flat state.
    pub fn account_count(&self) -> Result<u64> {
        self.accounts.len().map_err(io("count accounts"))
    }
}

/// The state as of a retained block: the flat state of the head with the changesets of
/// later blocks undone key by key.
pub struct StateAt {
    reader: StoreReader,
    block: u64,
    head: u64,
}

impl StateAt {
    pub fn block(&self) -> u64 {
        self.block
    }

    /// The snapshot underneath (its flat state and trie are the head's).
    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }

    pub fn is_head(&self) -> bool {
        self.block == self.head
    }

    /// The account with its storage root as of this block.
    pub fn account_record(&self, address: Address) -> Result<Option<AccountRecord>> {
        let hashed = hashed_address(address);
        if self.is_head() {
            return self.reader.account_record_hashed(&hashed);
        }
        self.reader.account_record_at(&hashed, self.block, self.head)
    }
}

impl StateView for StateAt {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        Ok(self.account_record(address).map_err(state_err)?.map(|r| r.state))
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        if self.is_head() {
            return self.reader.storage(address, slot);
        }
        self.reader.slot_at(&storage_key(&hashed_address(address), slot), self.block, self.head).map_err(state_err)
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        self.reader.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        if number > self.block {
            return Ok(B256::ZERO);
        }
        self.reader.block_hash(number)
    }
}

fn collect_in_range(values: redb::MultimapValue<'static, u64>, from: u64, to: u64) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for v in values {
        let n = v.map_err(io("read log index"))?.value();
        if n > to {
            break;
        }
        if n >= from {
            out.push(n);
        }
    }
    Ok(out)
}

fn state_err(e: StoreError) -> StateError {
    StateError(e.to_string())
}

impl StateView for StoreReader {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        Ok(self.account_record(address).map_err(state_err)?.map(|r| r.state))
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        let key = storage_key(&hashed_address(address), slot);
        let v = self.storage.get(key).map_err(|e| StateError(e.to_string()))?;
        Ok(v.map(|v| U256::from_be_bytes(v.value())).unwrap_or_default())
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        let v = self.code.get(code_hash.0).map_err(|e| StateError(e.to_string()))?;
        Ok(v.map(|v| Bytes::copy_from_slice(v.value())).unwrap_or_default())
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        Ok(self.header(number).map_err(state_err)?.map(|h| h.hash_slow()).unwrap_or_default())
    }
}
