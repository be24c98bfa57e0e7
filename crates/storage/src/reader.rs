use alloy_consensus::Header;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_primitives::{AccountState, ChainConfig, StateError, StateView, StoredReceipt};
use redb::{ReadOnlyMultimapTable, ReadOnlyTable, ReadTransaction, ReadableTableMetadata};

use crate::codec::{hashed_address, rlp_decode, storage_key, AccountRecord, TxRecord};
use crate::{io, Result, StoreError, *};

/// A consistent read-only snapshot of the store.
pub struct StoreReader {
    headers: ReadOnlyTable<u64, &'static [u8]>,
    hash_to_number: ReadOnlyTable<[u8; 32], u64>,
    bodies: ReadOnlyTable<u64, &'static [u8]>,
    txs: ReadOnlyTable<[u8; 32], &'static [u8]>,
    receipts: ReadOnlyTable<[u8; 32], &'static [u8]>,
    log_address: ReadOnlyMultimapTable<[u8; 20], u64>,
    log_topic: ReadOnlyMultimapTable<[u8; 32], u64>,
    accounts: ReadOnlyTable<[u8; 32], &'static [u8]>,
    storage: ReadOnlyTable<[u8; 64], [u8; 32]>,
    code: ReadOnlyTable<[u8; 32], &'static [u8]>,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
}

impl StoreReader {
    pub(crate) fn new(txn: ReadTransaction) -> Result<Self> {
        let op = "open table";
        Ok(Self {
            headers: txn.open_table(HEADERS).map_err(io(op))?,
            hash_to_number: txn.open_table(HASH_TO_NUMBER).map_err(io(op))?,
            bodies: txn.open_table(BODIES).map_err(io(op))?,
            txs: txn.open_table(TXS).map_err(io(op))?,
            receipts: txn.open_table(RECEIPTS).map_err(io(op))?,
            log_address: txn.open_multimap_table(LOG_ADDRESS).map_err(io(op))?,
            log_topic: txn.open_multimap_table(LOG_TOPIC0).map_err(io(op))?,
            accounts: txn.open_table(ACCOUNTS).map_err(io(op))?,
            storage: txn.open_table(STORAGE).map_err(io(op))?,
            code: txn.open_table(CODE).map_err(io(op))?,
            meta: txn.open_table(META).map_err(io(op))?,
        })
    }

    /// Number of the newest committed block; `Err(Empty)` before genesis.
    pub fn head(&self) -> Result<u64> {
        let v = self.meta.get(META_HEAD).map_err(io("read head"))?.ok_or(StoreError::Empty)?;
        let bytes: [u8; 8] =
            v.value().try_into().map_err(|_| StoreError::Corrupt { what: "head", reason: "not 8 bytes".into() })?;
        Ok(u64::from_be_bytes(bytes))
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

    pub fn receipt(&self, hash: B256) -> Result<Option<StoredReceipt>> {
        match self.receipts.get(hash.0).map_err(io("read receipt"))? {
            Some(v) => Ok(Some(rlp_decode("receipt", v.value())?)),
            None => Ok(None),
        }
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

    /// Number of accounts in the flat state.
    pub fn account_count(&self) -> Result<u64> {
        self.accounts.len().map_err(io("count accounts"))
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
