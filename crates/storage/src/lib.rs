//! Cairn's embedded, crash-safe store on redb.
//!
//! Every block is committed by one [`BlockWriter`], i.e. one redb write transaction:
//! header, transactions, receipts, the log index, the flat-state diff, trie data and the
//! head move together or not at all. Accepted-but-unincluded transactions are kept in
//! the separate admission log ([`RecordLog`]) so they survive a crash.
//!
//! The flat state is keyed by hashed keys (`keccak(address)`, `keccak(slot)`) so a range
//! scan yields exactly the order the Merkle-Patricia trie needs.

mod codec;
pub mod order;
mod reader;
mod record_log;
mod writer;

pub use codec::{AccountRecord, ByteKey, Fixed, TxRecord};
pub use reader::{StateAt, StoreReader};
pub use record_log::{sync_parent, RecordLog};
pub use writer::{BlockWriter, EMPTY_ROOT};

/// Which trie a node or root belongs to: the account trie, or the storage trie of the
/// account with this hashed address.
pub type TrieOwner<'a> = Option<&'a [u8; 32]>;

pub(crate) fn trie_key(owner: TrieOwner<'_>, path: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + path.len());
    if let Some(owner) = owner {
        key.extend_from_slice(owner);
    }
    key.extend_from_slice(path);
    key
}

use redb::{Database, MultimapTableDefinition, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::sync::Arc;

pub(crate) const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
pub(crate) const HASH_TO_NUMBER: TableDefinition<Fixed<32>, u64> = TableDefinition::new("hash_to_number");
pub(crate) const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
/// Equivocation evidence: id (keccak of the two fragment hashes) → the record's bytes.
pub(crate) const EVIDENCE: TableDefinition<Fixed<32>, &[u8]> = TableDefinition::new("evidence");
/// Most evidence records kept.
pub const MAX_EVIDENCE: u64 = 10_000;
/// Decided sequencer blocks by height: `u32 BE length ‖ RLP block ‖ certificate bytes`.
pub(crate) const SEQUENCER_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("sequencer_blocks");
pub(crate) const TXS: TableDefinition<Fixed<32>, &[u8]> = TableDefinition::new("txs");
/// Receipts by block number (8 bytes, big-endian) and index in the block (4 bytes): a
/// block's receipts are appended in key order, where keying them by transaction hash
/// dirtied a random page per transaction in every block's write.
pub(crate) const RECEIPTS: TableDefinition<Fixed<12>, &[u8]> = TableDefinition::new("receipts");

/// Key of the receipt of the `index`-th transaction of block `number`.
pub(crate) fn receipt_key(number: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&number.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}
pub(crate) const LOG_ADDRESS: MultimapTableDefinition<Fixed<20>, u64> = MultimapTableDefinition::new("log_address");
pub(crate) const LOG_TOPIC0: MultimapTableDefinition<Fixed<32>, u64> = MultimapTableDefinition::new("log_topic0");
pub(crate) const ACCOUNTS: TableDefinition<Fixed<32>, &[u8]> = TableDefinition::new("accounts");
pub(crate) const STORAGE: TableDefinition<Fixed<64>, Fixed<32>> = TableDefinition::new("storage");
pub(crate) const CODE: TableDefinition<Fixed<32>, &[u8]> = TableDefinition::new("code");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Branch nodes of the account trie by nibble path (one byte per nibble).
pub(crate) const ACCOUNT_TRIE: TableDefinition<ByteKey, &[u8]> = TableDefinition::new("account_trie");
/// Branch nodes of the storage tries by `keccak(address) ++ nibble path`.
pub(crate) const STORAGE_TRIE: TableDefinition<ByteKey, &[u8]> = TableDefinition::new("storage_trie");
/// Root references: the account trie's under the empty key, each storage trie's under
/// `keccak(address)`.
pub(crate) const TRIE_ROOTS: TableDefinition<ByteKey, &[u8]> = TableDefinition::new("trie_roots");

/// State history, block-major: per block, the value every key it changed held before it
/// (one sorted, fixed-width record appended per block, see `codec::encode_changeset`).
pub(crate) const CHANGESETS: TableDefinition<u64, &[u8]> = TableDefinition::new("changesets");
/// Which blocks of a history batch changed an account: `keccak(address) ++ batch end` to a
/// bitmap whose bit `i` is block `batch end - HISTORY_BATCH + 1 + i`. Written once per
/// batch, so a key changed in every block costs one index entry per batch instead of one
/// random B-tree insert per block.
pub(crate) const ACCOUNT_HISTORY: TableDefinition<Fixed<40>, u32> = TableDefinition::new("account_history_index");
/// The same per storage key, `keccak(address) ++ keccak(slot) ++ batch end`.
pub(crate) const STORAGE_HISTORY: TableDefinition<Fixed<72>, u32> = TableDefinition::new("storage_history_index");
/// Blocks per history batch (the bitmaps above are 32 bits). The changesets of blocks
/// after the last full batch are not indexed yet; lookups search them directly.
pub const HISTORY_BATCH: u64 = 32;

/// The last block of the history batch holding `block` (batches are `1..=32`, `33..=64`, ...).
pub(crate) fn batch_end(block: u64) -> u64 {
    block.div_ceil(HISTORY_BATCH) * HISTORY_BATCH
}

pub(crate) const META_HEAD: &str = "head";
/// Oldest block whose state can be read: changesets exist for every later block.
pub(crate) const META_HISTORY_FROM: &str = "history_from";
/// Default number of blocks of state history kept behind the head.
pub const DEFAULT_STATE_HISTORY: u64 = 1_024;

/// The least page cache [`default_cache_bytes`] picks: redb's own default, 1 GiB.
pub const MIN_DEFAULT_CACHE_BYTES: usize = 1 << 30;
/// The most page cache [`default_cache_bytes`] picks.
pub const MAX_DEFAULT_CACHE_BYTES: usize = 4 << 30;

/// The store's page cache unless configured: a quarter of the machine's memory, within
/// 1..=4 GiB (1 GiB where the memory size is unknown). It is a ceiling, not a
/// reservation: a small chain never fills it. 4 GiB holds the trie nodes and accounts
/// of a state of a million accounts and ten million slots with room for the pages
/// blocks write (`cairn bench commit --cache-mb` measures the difference).
/// The clock `cairn dev`'s time controls move (`evm_increaseTime`,
/// `evm_setNextBlockTimestamp`): seconds added to the wall clock for new blocks, and a
/// timestamp the next block must have. Kept in the store so that it survives restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevClock {
    pub offset_secs: i64,
    pub next_timestamp: Option<u64>,
}

pub fn default_cache_bytes() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    });
    total.map_or(MIN_DEFAULT_CACHE_BYTES, |bytes| (bytes / 4).clamp(MIN_DEFAULT_CACHE_BYTES, MAX_DEFAULT_CACHE_BYTES))
}
pub(crate) const META_CHAIN: &str = "chain";
/// The development clock (`cairn dev` time controls): offset and next timestamp.
pub(crate) const META_CLOCK: &str = "clock";
pub(crate) const META_FORMAT: &str = "format";
/// Layout version of the store; a data directory of another version is refused.
/// 2: trie branch nodes and root references are stored (incremental committer).
/// 3: keys and fixed-width values use the store's own [`Fixed`] and [`ByteKey`] types
///    (byte order, compared eight bytes at a time) instead of redb's `[u8; N]`/`&[u8]`.
/// 4: receipts are keyed by block number and index instead of transaction hash.
/// 5: state history is one changeset with values per block plus a per-key index written
///    once per batch of blocks, instead of one entry per key and block.
pub const STORE_FORMAT: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path} cannot be opened: {reason}")]
    Open { path: String, reason: String },
    #[error("store I/O failed during {op}: {reason}")]
    Io { op: &'static str, reason: String },
    #[error("corrupt {what} in store: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("store holds no chain yet (genesis not written)")]
    Empty,
    #[error("historical state unavailable: block {block} is pruned (state is kept from block {oldest} to the head)")]
    Pruned { block: u64, oldest: u64 },
    #[error("historical state of block {block} needs {needed} changed keys replayed (at most {limit}); ask a more recent block")]
    TooFarBack { block: u64, needed: usize, limit: usize },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io<E: std::fmt::Display>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Io { op, reason: e.to_string() }
}

/// Refuses a store that holds a chain written with another layout version (`Err`: the
/// reason). A store without a chain yet (new, or genesis never written) is accepted.
fn check_format(db: &Database) -> std::result::Result<(), String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if meta.get(META_CHAIN).map_err(|e| e.to_string())?.is_none() {
        return Ok(());
    }
    let format = meta
        .get(META_FORMAT)
        .map_err(|e| e.to_string())?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_be_bytes)
        .unwrap_or(1);
    if format != STORE_FORMAT {
        return Err(incompatible(&format!("store format {format}, this build uses {STORE_FORMAT}")));
    }
    Ok(())
}

/// The one refusal message for a data directory of another layout.
fn incompatible(detail: &str) -> String {
    format!("written by an incompatible Cairn ({detail}); start with a fresh --datadir")
}

/// A handle on the store; cheap to clone, shared by the builder, RPC and ingress.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    history_depth: u64,
}

/// A handle that does not keep the store open (background tasks hold this).
#[derive(Clone)]
pub struct WeakStore(std::sync::Weak<Database>, u64);

impl WeakStore {
    pub fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(|db| Store { db, history_depth: self.1 })
    }
}

impl Store {
    pub fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.db), self.history_depth)
    }

    /// Opens (or creates) the store file `path`, creating every table, with a page
    /// cache of [`default_cache_bytes`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_cache(path, default_cache_bytes())
    }

    /// Like [`Store::open`], with a page cache of `cache_bytes` (redb keeps 90% of it
    /// for reads). Blocks read the trie nodes and accounts on their paths: a cache that
    /// holds them spares a copy from the OS page cache per miss.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self> {
        let open_err =
            |e: &dyn std::fmt::Display| StoreError::Open { path: path.display().to_string(), reason: e.to_string() };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_err(&e))?;
        }
        let db = redb::Builder::new().set_cache_size(cache_bytes).create(path).map_err(|e| open_err(&e))?;
        // The layout version is checked before any other table is touched: a store of
        // another format may hold tables of other key types, which redb refuses with a
        // message about types rather than versions.
        check_format(&db).map_err(|reason| StoreError::Open { path: path.display().to_string(), reason })?;
        let txn = db.begin_write().map_err(|e| open_err(&e))?;
        // A table of another key or value type means another layout (a store written
        // before its format was recorded, e.g. by `cairn bench commit`).
        let table_err = |e: redb::TableError| match e {
            redb::TableError::TableTypeMismatch { table, .. } => open_err(&format_args!(
                "table {table} has another layout: {}",
                incompatible(&format!("this build uses store format {STORE_FORMAT}"))
            )),
            other => open_err(&other),
        };
        {
            txn.open_table(HEADERS).map_err(table_err)?;
            txn.open_table(HASH_TO_NUMBER).map_err(table_err)?;
            txn.open_table(BODIES).map_err(table_err)?;
            txn.open_table(SEQUENCER_BLOCKS).map_err(table_err)?;
            txn.open_table(EVIDENCE).map_err(table_err)?;
            txn.open_table(TXS).map_err(table_err)?;
            txn.open_table(RECEIPTS).map_err(table_err)?;
            txn.open_multimap_table(LOG_ADDRESS).map_err(table_err)?;
            txn.open_multimap_table(LOG_TOPIC0).map_err(table_err)?;
            txn.open_table(ACCOUNTS).map_err(table_err)?;
            txn.open_table(STORAGE).map_err(table_err)?;
            txn.open_table(CODE).map_err(table_err)?;
            txn.open_table(META).map_err(table_err)?;
            txn.open_table(ACCOUNT_TRIE).map_err(table_err)?;
            txn.open_table(STORAGE_TRIE).map_err(table_err)?;
            txn.open_table(TRIE_ROOTS).map_err(table_err)?;
            txn.open_table(ACCOUNT_HISTORY).map_err(table_err)?;
            txn.open_table(STORAGE_HISTORY).map_err(table_err)?;
            txn.open_table(CHANGESETS).map_err(table_err)?;
        }
        txn.commit().map_err(|e| open_err(&e))?;
        Ok(Self { db: Arc::new(db), history_depth: DEFAULT_STATE_HISTORY })
    }

    /// Keeps the state of the last `depth` blocks behind the head readable (0: only the
    /// head's). Older history is pruned as new blocks are written.
    pub fn with_state_history(mut self, depth: u64) -> Self {
        self.history_depth = depth;
        self
    }

    pub fn state_history(&self) -> u64 {
        self.history_depth
    }

    /// A consistent snapshot for reads; later commits are not visible through it.
    pub fn reader(&self) -> Result<StoreReader> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        StoreReader::new(txn)
    }

    /// The account at `address` in the latest committed state (one table read; the
    /// admission path uses this instead of a full [`StoreReader`]).
    pub fn account(&self, address: alloy_primitives::Address) -> Result<Option<cairn_primitives::AccountState>> {
        let txn = self.db.begin_read().map_err(io("begin read"))?;
        let table = txn.open_table(ACCOUNTS).map_err(io("open accounts"))?;
        match table.get(codec::hashed_address(address)).map_err(io("read account"))? {
            Some(v) => Ok(Some(AccountRecord::decode(v.value())?.state)),
            None => Ok(None),
        }
    }

    /// Starts the single atomic write that commits one block (or genesis).
    pub fn writer(&self) -> Result<BlockWriter> {
        let txn = self.db.begin_write().map_err(io("begin write"))?;
        Ok(BlockWriter::new(txn, self.history_depth))
    }
}

#[cfg(test)]
mod tests;
