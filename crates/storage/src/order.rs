//! The store of a shared (lazy) set's validator: decided sequencer blocks with their
//! certificates and raw transactions, and where each transaction was decided. No
//! state: a lazy validator orders, it does not execute.
//!
//! One redb database (`order.redb`). Each decided block is one write transaction (block,
//! transactions index, head), so a crash leaves the previous head or the new one.

use alloy_primitives::{Bytes, B256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use cairn_primitives::SequencerBlock;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::sync::Arc;

use crate::codec::Fixed;
use crate::{io, Result, StoreError};

/// Decided blocks by height: RLP `[block, certificate, [raw tx, …]]`.
const DECIDED: TableDefinition<u64, &[u8]> = TableDefinition::new("decided");
/// Transaction hash → `height ‖ position` (8 + 4 bytes, big-endian).
const TX_INDEX: TableDefinition<Fixed<32>, Fixed<12>> = TableDefinition::new("tx_index");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const HEAD: &str = "head";

#[derive(RlpEncodable, RlpDecodable)]
struct Record {
    block: Bytes,
    certificate: Bytes,
    txs: Vec<Bytes>,
}

/// A decided block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedBlock {
    pub block: SequencerBlock,
    pub certificate: Bytes,
    /// Raw transactions, in block order.
    pub txs: Vec<Bytes>,
}

/// See the module documentation.
#[derive(Clone)]
pub struct OrderStore {
    db: Arc<Database>,
}

fn place(height: u64, position: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&position.to_be_bytes());
    k
}

impl OrderStore {
    pub fn open(path: &Path) -> Result<Self> {
        let open = |e: String| StoreError::Open { path: path.display().to_string(), reason: e };
        let db = Database::create(path).map_err(|e| open(e.to_string()))?;
        let txn = db.begin_write().map_err(|e| open(e.to_string()))?;
        txn.open_table(DECIDED).map_err(|e| open(e.to_string()))?;
        txn.open_table(TX_INDEX).map_err(|e| open(e.to_string()))?;
        txn.open_table(META).map_err(|e| open(e.to_string()))?;
        txn.open_table(crate::EVIDENCE).map_err(|e| open(e.to_string()))?;
        txn.commit().map_err(|e| open(e.to_string()))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The newest decided height (0: none yet).
    pub fn head(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let meta = txn.open_table(META).map_err(io("open meta"))?;
        Ok(meta.get(HEAD).map_err(io("read head"))?.map_or(0, |v| v.value()))
    }

    /// Stores the decided block of the next height with its certificate and
    /// transactions, atomically.
    pub fn put(&self, block: &SequencerBlock, certificate: &[u8], txs: &[Bytes]) -> Result<()> {
        let head = self.head()?;
        if block.height != head + 1 {
            return Err(StoreError::Corrupt {
                what: "decided block",
                reason: format!("block {} stored after head {head}", block.height),
            });
        }
        let record = Record {
            block: block.encode().into(),
            certificate: Bytes::copy_from_slice(certificate),
            txs: txs.to_vec(),
        };
        let value = alloy_rlp::encode(&record);
        let txn = self.db.begin_write().map_err(io("begin write"))?;
        {
            let mut decided = txn.open_table(DECIDED).map_err(io("open decided"))?;
            decided.insert(block.height, value.as_slice()).map_err(io("write decided"))?;
            let mut index = txn.open_table(TX_INDEX).map_err(io("open tx index"))?;
            for (i, hash) in block.transactions.iter().enumerate() {
                index.insert(&hash.0, &place(block.height, i as u32)).map_err(io("write tx index"))?;
            }
            let mut meta = txn.open_table(META).map_err(io("open meta"))?;
            meta.insert(HEAD, block.height).map_err(io("write head"))?;
        }
        txn.commit().map_err(io("commit decided block"))
    }

    pub fn get(&self, height: u64) -> Result<Option<DecidedBlock>> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let decided = txn.open_table(DECIDED).map_err(io("open decided"))?;
        let Some(v) = decided.get(height).map_err(io("read decided"))? else { return Ok(None) };
        let corrupt = |reason: String| StoreError::Corrupt { what: "decided block", reason };
        let record = <Record as alloy_rlp::Decodable>::decode(&mut v.value()).map_err(|e| corrupt(e.to_string()))?;
        let block = SequencerBlock::decode(&record.block).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(DecidedBlock { block, certificate: record.certificate, txs: record.txs }))
    }

    /// Every stored evidence record: id and bytes (at most [`crate::MAX_EVIDENCE`], which
    /// the caller enforces with [`Self::evidence_count`]).
    pub fn evidence(&self) -> Result<Vec<(B256, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let table = txn.open_table(crate::EVIDENCE).map_err(io("open evidence"))?;
        let mut out = Vec::new();
        for entry in redb::ReadableTable::iter(&table).map_err(io("read evidence"))? {
            let (k, v) = entry.map_err(io("read evidence"))?;
            out.push((B256::from(k.value()), v.value().to_vec()));
        }
        Ok(out)
    }

    pub fn evidence_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let table = txn.open_table(crate::EVIDENCE).map_err(io("open evidence"))?;
        redb::ReadableTableMetadata::len(&table).map_err(io("count evidence"))
    }

    /// Stores one evidence record (durable when it returns).
    pub fn put_evidence(&self, id: B256, record: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(io("begin write"))?;
        txn.open_table(crate::EVIDENCE)
            .map_err(io("open evidence"))?
            .insert(id.0, record)
            .map_err(io("write evidence"))?;
        txn.commit().map_err(io("commit evidence"))
    }

    /// Where transaction `hash` was decided: `(height, position)`.
    pub fn locate(&self, hash: &B256) -> Result<Option<(u64, u32)>> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let index = txn.open_table(TX_INDEX).map_err(io("open tx index"))?;
        Ok(index.get(&hash.0).map_err(io("read tx index"))?.map(|v| {
            let k = v.value();
            (
                u64::from_be_bytes(k[..8].try_into().unwrap_or_default()),
                u32::from_be_bytes(k[8..].try_into().unwrap_or_default()),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{keccak256, Address};

    fn block(height: u64, parent: B256, txs: &[Bytes]) -> SequencerBlock {
        SequencerBlock {
            chain_id: 1,
            height,
            round: 0,
            parent,
            proposer: Address::repeat_byte(1),
            timestamp: 10 + height,
            base_fee: 0,
            gas_limit: 0,
            prevrandao: B256::ZERO,
            beneficiary: Address::ZERO,
            transactions: txs.iter().map(keccak256).collect(),
            fragments: Vec::new(),
            executed: None,
            namespaces: Some(vec![5; txs.len()]),
        }
    }

    #[test]
    fn decided_blocks_survive_a_reopen_in_order_and_index_their_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("order.redb");
        let txs = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let b1 = block(1, B256::ZERO, &txs);
        {
            let store = OrderStore::open(&path).expect("open");
            assert_eq!(store.head().expect("head"), 0);
            store.put(&b1, b"cert", &txs).expect("put");
            assert!(store.put(&block(3, b1.hash(), &[]), b"", &[]).is_err(), "no gap");
        }
        let store = OrderStore::open(&path).expect("reopen");
        assert_eq!(store.head().expect("head"), 1);
        let got = store.get(1).expect("get").expect("there");
        assert_eq!(got.block, b1);
        assert_eq!(got.certificate.as_ref(), b"cert");
        assert_eq!(got.txs, txs);
        assert_eq!(store.locate(&keccak256(b"b")).expect("locate"), Some((1, 1)));
        assert_eq!(store.locate(&keccak256(b"c")).expect("locate"), None);
        assert!(store.get(2).expect("get").is_none());
    }
}
