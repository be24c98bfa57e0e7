//! Preconfirmation fragments on the sequencer side: what the builder keeps for the open
//! block, and the fragment log that makes every fragment durable before it is published.
//!
//! The log is a folder of per-block files (`block-<height>.wal`, checksummed records
//! through [`RecordLog`]): one record per fragment (the signed fields, the signature,
//! the raw transactions and the block context), and a `close` record when the block is
//! sequenced. Each append is `fdatasync`ed before the fragment is published. After the
//! sealer has committed block `h`, the files below `h` are deleted, except the newest
//! file at or below `h`: its last fragment is the parent of the next one.

use alloy_primitives::{Address, Bytes, B256};
pub(crate) use cairn_primitives::fragment::FragmentRecord as LoggedFragment;
use cairn_primitives::{Fragment, SignedFragment, StateDiff, StoredReceipt};
use cairn_storage::{sync_parent, RecordLog, StoreError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where fragments are signed and logged.
pub struct Preconf {
    /// The sequencer's key (fragments are signed with it).
    pub signer: alloy_signer_local::PrivateKeySigner,
    /// Folder of the fragment log.
    pub dir: PathBuf,
}

/// A published fragment with what RPC needs to answer for its transactions.
#[derive(Debug)]
pub struct FragmentPart {
    pub signed: SignedFragment,
    /// Who signed it: this node's key, or (under a validator set) the proposer whose
    /// fragment this node executed.
    pub signer: Address,
    /// [`Fragment::hash`] of `signed`.
    pub hash: B256,
    /// `(hash, sender, raw EIP-2718 bytes)` of its transactions, in order.
    pub body: Vec<(B256, Address, Bytes)>,
    pub receipts: Vec<StoredReceipt>,
    /// Milliseconds since the Unix epoch when it became durable.
    pub at_ms: u64,
    /// The fragment as RPC serializes it, made once for all its transactions' answers.
    pub rpc_json: std::sync::OnceLock<Box<serde_json::value::RawValue>>,
}

impl FragmentPart {
    pub fn fragment(&self) -> &Fragment {
        &self.signed.fragment
    }

    /// Index in this fragment of transaction `hash`.
    pub fn find(&self, hash: &B256) -> Option<usize> {
        self.body.iter().position(|(h, _, _)| h == hash)
    }
}

/// The block the builder is filling, as readers see it: the fragments published so far
/// and the state they left.
#[derive(Debug)]
pub struct OpenBlock {
    pub number: u64,
    pub timestamp: u64,
    pub base_fee: u64,
    pub fragments: Vec<Arc<FragmentPart>>,
    /// The changes of all its fragments so far.
    pub diff: Arc<StateDiff>,
    /// Its block-start system writes (under `diff`).
    pub system: cairn_primitives::predeploys::system::BlockSystem,
}

impl OpenBlock {
    /// A transaction of this block: its fragment and its index there.
    pub fn find(&self, hash: &B256) -> Option<(Arc<FragmentPart>, usize)> {
        self.fragments.iter().find_map(|f| f.find(hash).map(|i| (f.clone(), i)))
    }
}

/// One fragment as logged.
const FRAGMENT: u8 = 0;
const CLOSE: u8 = 1;

/// A block found in the fragment log above the store's head.
#[derive(Debug)]
pub(crate) struct LoggedBlock {
    pub height: u64,
    pub fragments: Vec<LoggedFragment>,
    /// A `close` record follows the fragments: the block was sequenced.
    pub closed: bool,
}

/// The fragment log folder.
pub(crate) struct FragmentLog {
    dir: PathBuf,
    /// The file of the block being written.
    current: Option<(u64, RecordLog)>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Io { op, reason: format!("{}: {e}", path.display()) }
}

impl FragmentLog {
    fn file(&self, height: u64) -> PathBuf {
        self.dir.join(format!("block-{height:020}.wal"))
    }

    fn heights(dir: &Path) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io("list fragment log", dir))? {
            let entry = entry.map_err(io("list fragment log", dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(h) = name.strip_prefix("block-").and_then(|s| s.strip_suffix(".wal")) {
                if let Ok(h) = h.parse() {
                    out.push(h);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Opens the log in `dir`. Returns it, the hash of the newest fragment at or below
    /// `head` (the parent of the next fragment; zero if none), and the logged blocks
    /// above `head` in order.
    pub(crate) fn open(dir: &Path, head: u64, chain_id: u64) -> Result<(Self, B256, Vec<LoggedBlock>), StoreError> {
        std::fs::create_dir_all(dir).map_err(io("create fragment log", dir))?;
        let mut log = Self { dir: dir.to_path_buf(), current: None };
        let mut parent = B256::ZERO;
        let mut blocks: BTreeMap<u64, LoggedBlock> = BTreeMap::new();
        for height in Self::heights(dir)? {
            let path = log.file(height);
            let (_, records) = RecordLog::open(&path)?;
            let mut block = LoggedBlock { height, fragments: Vec::new(), closed: false };
            for record in records {
                let Some((kind, mut payload)) = record.split_first() else { continue };
                match *kind {
                    FRAGMENT => {
                        let f = <LoggedFragment as alloy_rlp::Decodable>::decode(&mut payload).map_err(|e| {
                            StoreError::Corrupt { what: "fragment log", reason: format!("{}: {e}", path.display()) }
                        })?;
                        block.fragments.push(f);
                    }
                    CLOSE => block.closed = true,
                    other => {
                        return Err(StoreError::Corrupt {
                            what: "fragment log",
                            reason: format!("{}: unknown record kind {other}", path.display()),
                        })
                    }
                }
            }
            if height <= head {
                if let Some(last) = block.fragments.last() {
                    parent = last.signed(chain_id).fragment.hash();
                }
            } else if !block.fragments.is_empty() {
                blocks.insert(height, block);
            }
        }
        log.prune_below(head)?;
        Ok((log, parent, blocks.into_values().collect()))
    }

    /// Appends a fragment of block `height` and makes it durable.
    pub(crate) fn append(&mut self, fragment: &LoggedFragment) -> Result<(), StoreError> {
        let mut record = vec![FRAGMENT];
        alloy_rlp::Encodable::encode(fragment, &mut record);
        self.write(fragment.height, &record)
    }

    /// Records that block `height` is closed (sequenced) and makes that durable.
    pub(crate) fn close(&mut self, height: u64) -> Result<(), StoreError> {
        self.write(height, &[CLOSE])
    }

    fn write(&mut self, height: u64, record: &[u8]) -> Result<(), StoreError> {
        if self.current.as_ref().is_none_or(|(h, _)| *h != height) {
            let (log, _) = RecordLog::open(&self.file(height))?;
            self.current = Some((height, log));
        }
        match &mut self.current {
            Some((_, log)) => log.append([record]),
            None => Ok(()),
        }
    }

    /// Deletes the files of blocks below `height` (they are sealed in the store), except
    /// the newest file at or below `height`: its last fragment is the parent of the next
    /// one, also when the blocks after it had no fragments (empty or edit blocks).
    pub(crate) fn prune_below(&mut self, height: u64) -> Result<(), StoreError> {
        let heights = Self::heights(&self.dir)?;
        let keep = heights.iter().copied().filter(|h| *h <= height).max();
        let mut removed = None;
        for h in heights {
            if h >= height || Some(h) == keep {
                break;
            }
            let path = self.file(h);
            std::fs::remove_file(&path).map_err(io("prune fragment log", &path))?;
            removed = Some(path);
        }
        match removed {
            Some(path) => sync_parent(&path),
            None => Ok(()),
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
