use alloy_consensus::Header;
use alloy_primitives::{B256, U256};
use alloy_rlp::Encodable;
use cairn_primitives::{ChainConfig, StateDiff, StoredReceipt};
use redb::{ReadableTable, WriteTransaction};
use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{
    decode_u64, encode_changeset, hashed_address, history_key, storage_key, storage_range, AccountRecord, Changeset,
    TxRecord,
};
use crate::{io, Result, StoreError, *};

/// Root of an empty trie.
pub const EMPTY_ROOT: B256 = alloy_consensus::EMPTY_ROOT_HASH;

/// One atomic write: everything a block commits. Dropping it without [`commit`] discards
/// all of it.
///
/// [`commit`]: BlockWriter::commit
pub struct BlockWriter {
    txn: WriteTransaction,
    /// Blocks of state history to keep (0: none).
    history_depth: u64,
    /// Values the keys this block changes held before it, first write wins.
    before: History,
}

/// Pre-block values of the keys a block changes (its reverse diff).
#[derive(Default)]
struct History {
    accounts: BTreeMap<[u8; 32], Option<[u8; AccountRecord::LEN]>>,
    storage: BTreeMap<[u8; 64], [u8; 32]>,
}

impl BlockWriter {
    pub(crate) fn new(txn: WriteTransaction, history_depth: u64) -> Self {
        Self { txn, history_depth, before: History::default() }
    }

    /// Applies a block's state diff to the flat state. Returns the hashed addresses of
    /// surviving accounts whose storage changed; their storage roots must be recomputed.
    pub fn apply_state(&mut self, diff: &StateDiff) -> Result<BTreeSet<[u8; 32]>> {
        let mut storage_changed = BTreeSet::new();
        let mut accounts = self.txn.open_table(ACCOUNTS).map_err(io("open accounts"))?;
        let mut storage = self.txn.open_table(STORAGE).map_err(io("open storage"))?;
        let mut code = self.txn.open_table(CODE).map_err(io("open code"))?;
        for (hash, bytes) in &diff.code {
            code.insert(hash.0, bytes.as_ref()).map_err(io("write code"))?;
        }
        for (address, change) in &diff.accounts {
            let hashed = hashed_address(*address);
            let previous = match accounts.get(hashed).map_err(io("read account"))? {
                Some(v) => Some(AccountRecord::decode(v.value())?),
                None => None,
            };
            let keep = self.history_depth > 0;
            if keep {
                self.before.accounts.entry(hashed).or_insert(previous.map(|p| p.encode()));
            }
            let mut storage_root = previous.map(|p| p.storage_root).unwrap_or(EMPTY_ROOT);
            if change.storage_wiped || change.info.is_none() {
                if keep {
                    for entry in storage.range(storage_range(&hashed)).map_err(io("scan storage"))? {
                        let (k, v) = entry.map_err(io("scan storage"))?;
                        self.before.storage.entry(k.value()).or_insert(v.value());
                    }
                }
                storage.retain_in(storage_range(&hashed), |_, _| false).map_err(io("wipe storage"))?;
                storage_root = EMPTY_ROOT;
            }
            for (slot, value) in &change.storage {
                let key = storage_key(&hashed, *slot);
                let old = if value.is_zero() {
                    storage.remove(key).map_err(io("delete slot"))?
                } else {
                    storage.insert(key, value.to_be_bytes::<32>()).map_err(io("write slot"))?
                };
                if keep {
                    let old = old.map(|v| v.value()).unwrap_or_default();
                    self.before.storage.entry(key).or_insert(old);
                }
            }
            match change.info {
                None => {
                    accounts.remove(hashed).map_err(io("delete account"))?;
                }
                Some(state) => {
                    if !change.storage.is_empty() {
                        storage_changed.insert(hashed);
                    }
                    let record = AccountRecord { state, storage_root };
                    accounts.insert(hashed, record.encode().as_slice()).map_err(io("write account"))?;
                }
            }
        }
        Ok(storage_changed)
    }

    /// The storage of one account in trie order: `(keccak(slot), value)`.
    pub fn hashed_storage(&self, hashed_address: &[u8; 32]) -> Result<Vec<(B256, U256)>> {
        let storage = self.txn.open_table(STORAGE).map_err(io("open storage"))?;
        let mut out = Vec::new();
        for entry in storage.range(storage_range(hashed_address)).map_err(io("scan storage"))? {
            let (k, v) = entry.map_err(io("scan storage"))?;
            out.push((B256::from_slice(&k.value()[32..]), U256::from_be_bytes(v.value())));
        }
        Ok(out)
    }

    pub fn set_storage_root(&mut self, hashed_address: &[u8; 32], root: B256) -> Result<()> {
        let mut accounts = self.txn.open_table(ACCOUNTS).map_err(io("open accounts"))?;
        let Some(existing) = accounts.get(*hashed_address).map_err(io("read account"))? else {
            return Err(StoreError::Corrupt { what: "account", reason: "storage root for missing account".into() });
        };
        let mut record = AccountRecord::decode(existing.value())?;
        drop(existing);
        record.storage_root = root;
        accounts.insert(*hashed_address, record.encode().as_slice()).map_err(io("write account"))?;
        Ok(())
    }

    /// Writes (`Some`) or deletes a branch node of `owner`'s trie at nibble path `path`.
    pub fn set_trie_node(&mut self, owner: crate::TrieOwner<'_>, path: &[u8], node: Option<&[u8]>) -> Result<()> {
        let mut table =
            self.txn.open_table(if owner.is_some() { STORAGE_TRIE } else { ACCOUNT_TRIE }).map_err(io("open trie"))?;
        let key = crate::trie_key(owner, path);
        match node {
            Some(bytes) => table.insert(key.as_slice(), bytes).map_err(io("write trie node"))?,
            None => table.remove(key.as_slice()).map_err(io("delete trie node"))?,
        };
        Ok(())
    }

    /// Deletes every node and the root of the storage trie of the account hashed `owner`.
    pub fn wipe_storage_trie(&mut self, owner: &[u8; 32]) -> Result<()> {
        let mut table = self.txn.open_table(STORAGE_TRIE).map_err(io("open trie"))?;
        let mut hi = owner.to_vec();
        hi.push(0x10); // above every nibble
        table.retain_in(owner.as_slice()..hi.as_slice(), |_, _| false).map_err(io("wipe storage trie"))?;
        drop(table);
        self.set_trie_root(Some(owner), None)
    }

    /// Writes (`Some`) or deletes the root reference of `owner`'s trie.
    pub fn set_trie_root(&mut self, owner: crate::TrieOwner<'_>, root: Option<&[u8]>) -> Result<()> {
        let mut table = self.txn.open_table(TRIE_ROOTS).map_err(io("open trie roots"))?;
        let key: &[u8] = owner.map(|o| o.as_slice()).unwrap_or_default();
        match root {
            Some(bytes) => table.insert(key, bytes).map_err(io("write trie root"))?,
            None => table.remove(key).map_err(io("delete trie root"))?,
        };
        Ok(())
    }

    /// Visits every account in trie order (`keccak(address)` ascending).
    pub fn for_each_account(&self, mut f: impl FnMut(B256, AccountRecord)) -> Result<()> {
        let accounts = self.txn.open_table(ACCOUNTS).map_err(io("open accounts"))?;
        for entry in accounts.iter().map_err(io("scan accounts"))? {
            let (k, v) = entry.map_err(io("scan accounts"))?;
            f(B256::from(k.value()), AccountRecord::decode(v.value())?);
        }
        Ok(())
    }

    /// Stores a sealed block: header, body, transactions, receipts and the log index
    /// (each emitting address and each event signature, `topic0`, once per block; other
    /// topic positions are served by the header bloom).
    /// `txs` are `(hash, sender, raw EIP-2718 bytes)` in block order.
    /// Stores an evidence record under `id` (the same id again replaces it).
    pub fn put_evidence(&mut self, id: B256, record: &[u8]) -> Result<()> {
        self.txn
            .open_table(crate::EVIDENCE)
            .map_err(io("open evidence"))?
            .insert(id.0, record)
            .map_err(io("write evidence"))?;
        Ok(())
    }

    /// Stores the decided sequencer block of `block.height` with its certificate.
    pub fn put_sequencer_block(&mut self, block: &cairn_primitives::SequencerBlock, certificate: &[u8]) -> Result<()> {
        let encoded = block.encode();
        let mut value = Vec::with_capacity(4 + encoded.len() + certificate.len());
        value.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        value.extend_from_slice(&encoded);
        value.extend_from_slice(certificate);
        self.txn
            .open_table(crate::SEQUENCER_BLOCKS)
            .map_err(io("open sequencer blocks"))?
            .insert(block.height, value.as_slice())
            .map_err(io("write sequencer block"))?;
        Ok(())
    }

    pub fn put_block(
        &mut self,
        header: &Header,
        txs: &[(B256, alloy_primitives::Address, alloy_primitives::Bytes)],
        receipts: &[StoredReceipt],
    ) -> Result<B256> {
        let number = header.number;
        let hash = header.hash_slow();
        let mut buf = Vec::with_capacity(600);
        header.encode(&mut buf);
        self.txn
            .open_table(HEADERS)
            .map_err(io("open headers"))?
            .insert(number, buf.as_slice())
            .map_err(io("write header"))?;
        self.txn
            .open_table(HASH_TO_NUMBER)
            .map_err(io("open hashes"))?
            .insert(hash.0, number)
            .map_err(io("write hash"))?;
        let body: Vec<u8> = txs.iter().flat_map(|(h, _, _)| h.0).collect();
        self.txn
            .open_table(BODIES)
            .map_err(io("open bodies"))?
            .insert(number, body.as_slice())
            .map_err(io("write body"))?;
        let mut tx_table = self.txn.open_table(TXS).map_err(io("open txs"))?;
        let mut receipt_table = self.txn.open_table(RECEIPTS).map_err(io("open receipts"))?;
        let mut by_address = self.txn.open_multimap_table(LOG_ADDRESS).map_err(io("open log index"))?;
        let mut by_topic = self.txn.open_multimap_table(LOG_TOPIC0).map_err(io("open log index"))?;
        let mut emitters = std::collections::BTreeSet::new();
        let mut events = std::collections::BTreeSet::new();
        for (index, ((tx_hash, sender, raw), receipt)) in txs.iter().zip(receipts).enumerate() {
            let record = TxRecord { block_number: number, index: index as u64, sender: *sender, raw: raw.clone() };
            buf.clear();
            record.encode(&mut buf);
            tx_table.insert(tx_hash.0, buf.as_slice()).map_err(io("write tx"))?;
            buf.clear();
            receipt.encode(&mut buf);
            let index = u32::try_from(index).map_err(|_| StoreError::Corrupt {
                what: "block",
                reason: format!("block {number} holds more than {} transactions", u32::MAX),
            })?;
            receipt_table.insert(crate::receipt_key(number, index), buf.as_slice()).map_err(io("write receipt"))?;
            for log in &receipt.logs {
                emitters.insert(log.address.0 .0);
                if let Some(topic0) = log.topics().first() {
                    events.insert(topic0.0);
                }
            }
        }
        for emitter in emitters {
            by_address.insert(emitter, number).map_err(io("write log index"))?;
        }
        for event in events {
            by_topic.insert(event, number).map_err(io("write log index"))?;
        }
        Ok(hash)
    }

    /// Makes `number` the head. With state history on, the values this block's state
    /// diff overwrote are appended as block `number`'s changeset; at the end of a history
    /// batch, the batch's changesets are indexed by key; and the oldest batch is pruned
    /// once all of it is older than the history depth (one batch per block at most, so a
    /// lowered depth is caught up over the following blocks).
    pub fn set_head(&mut self, number: u64) -> Result<()> {
        let before = std::mem::take(&mut self.before);
        let mut meta = self.txn.open_table(META).map_err(io("open meta"))?;
        meta.insert(META_HEAD, number.to_be_bytes().as_slice()).map_err(io("write head"))?;
        let oldest = match meta.get(META_HISTORY_FROM).map_err(io("read history"))? {
            Some(v) => Some(decode_u64("history start", v.value())?),
            None => None,
        };
        let recorded = self.history_depth > 0 && number > 0 && oldest.is_some();
        if recorded {
            let changeset = encode_changeset(&before.accounts, &before.storage);
            self.txn
                .open_table(CHANGESETS)
                .map_err(io("open changesets"))?
                .insert(number, changeset.as_slice())
                .map_err(io("write changeset"))?;
            if number.is_multiple_of(HISTORY_BATCH) {
                self.index_batch(number)?;
            }
        }
        let cutoff = if recorded { number.saturating_sub(self.history_depth) } else { number };
        self.prune_batch(cutoff)?;
        let oldest = oldest.map_or(cutoff, |o| o.max(cutoff));
        meta.insert(META_HISTORY_FROM, oldest.to_be_bytes().as_slice()).map_err(io("write history"))?;
        Ok(())
    }

    /// Indexes the changesets of the batch ending at block `end`: one bitmap per key.
    fn index_batch(&self, end: u64) -> Result<()> {
        let first = end + 1 - HISTORY_BATCH;
        let mut accounts: BTreeMap<[u8; 32], u32> = BTreeMap::new();
        let mut slots: BTreeMap<[u8; 64], u32> = BTreeMap::new();
        let changesets = self.txn.open_table(CHANGESETS).map_err(io("open changesets"))?;
        for entry in changesets.range(first..=end).map_err(io("read changesets"))? {
            let (block, bytes) = entry.map_err(io("read changesets"))?;
            let bit = 1u32 << (block.value() - first);
            let changeset = Changeset::parse(bytes.value())?;
            for account in changeset.accounts() {
                *accounts.entry(account?.0).or_default() |= bit;
            }
            for (key, _) in changeset.slots() {
                *slots.entry(key.try_into().expect("64-byte key")).or_default() |= bit;
            }
        }
        let mut table = self.txn.open_table(ACCOUNT_HISTORY).map_err(io("open history"))?;
        for (key, bits) in accounts {
            table.insert(history_key(&key, end), bits).map_err(io("write history"))?;
        }
        let mut table = self.txn.open_table(STORAGE_HISTORY).map_err(io("open history"))?;
        for (key, bits) in slots {
            table.insert(history_key(&key, end), bits).map_err(io("write history"))?;
        }
        Ok(())
    }

    /// Deletes the oldest batch of changesets and its index entries if the whole batch is
    /// at or below `cutoff` (no retained block's state needs it). A batch is deleted half
    /// a batch after it expires, so this work does not fall on the block that indexes a
    /// batch when the depth is a multiple of [`HISTORY_BATCH`].
    fn prune_batch(&self, cutoff: u64) -> Result<()> {
        let mut changesets = self.txn.open_table(CHANGESETS).map_err(io("open changesets"))?;
        let Some(oldest) = changesets.first().map_err(io("read changeset"))?.map(|(k, _)| k.value()) else {
            return Ok(());
        };
        let end = batch_end(oldest);
        if end + HISTORY_BATCH / 2 > cutoff {
            return Ok(());
        }
        let mut accounts = BTreeSet::new();
        let mut slots = BTreeSet::new();
        for entry in changesets.range(..=end).map_err(io("read changesets"))? {
            let (_, bytes) = entry.map_err(io("read changesets"))?;
            let changeset = Changeset::parse(bytes.value())?;
            for account in changeset.accounts() {
                accounts.insert(account?.0);
            }
            slots.extend(changeset.slots().map(|(key, _)| <[u8; 64]>::try_from(key).expect("64-byte key")));
        }
        let mut table = self.txn.open_table(ACCOUNT_HISTORY).map_err(io("open history"))?;
        for key in accounts {
            table.remove(history_key::<40>(&key, end)).map_err(io("prune history"))?;
        }
        let mut table = self.txn.open_table(STORAGE_HISTORY).map_err(io("open history"))?;
        for key in slots {
            table.remove(history_key::<72>(&key, end)).map_err(io("prune history"))?;
        }
        changesets.retain_in(..=end, |_, _| false).map_err(io("prune changesets"))?;
        Ok(())
    }

    pub fn set_chain_config(&mut self, config: &ChainConfig) -> Result<()> {
        let json = serde_json::to_vec(config)
            .map_err(|e| StoreError::Corrupt { what: "chain config", reason: e.to_string() })?;
        let mut meta = self.txn.open_table(META).map_err(io("open meta"))?;
        meta.insert(META_CHAIN, json.as_slice()).map_err(io("write chain config"))?;
        meta.insert(META_FORMAT, STORE_FORMAT.to_be_bytes().as_slice()).map_err(io("write store format"))?;
        Ok(())
    }

    /// Records the development clock (see [`crate::DevClock`]).
    pub fn set_clock(&mut self, clock: &crate::DevClock) -> Result<()> {
        let mut meta = self.txn.open_table(META).map_err(io("open meta"))?;
        let mut bytes = clock.offset_secs.to_be_bytes().to_vec();
        bytes.extend_from_slice(&clock.next_timestamp.unwrap_or(0).to_be_bytes());
        meta.insert(META_CLOCK, bytes.as_slice()).map_err(io("write clock"))?;
        Ok(())
    }

    /// Makes everything written durable (fsync) and visible, atomically.
    pub fn commit(self) -> Result<()> {
        self.txn.commit().map_err(io("commit block"))
    }
}
