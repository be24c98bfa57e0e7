//! The store-backed committers.
//!
//! [`IncrementalCommitter`] reads the previous block's stored branch nodes from a
//! snapshot, updates every touched storage trie in parallel (rayon), then the account
//! trie, and writes the changed nodes in the block's own atomic write.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_trie::nodes::RlpNode;
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use cairn_primitives::StateView as _;
use cairn_primitives::{AccountState, StateDiff};
use cairn_storage::{AccountRecord, BlockWriter, StateAt, StoreReader, EMPTY_ROOT};
use rayon::prelude::*;
use std::collections::HashMap;

use crate::memory::key_range;
use crate::node::{BranchRecord, ChildRef, Kind};
use crate::update::{proof, root_hash, update, update_parallel, Change, TrieSource, TrieUpdate};
use crate::TrieError;

/// Brings trie data up to date for a block and returns its state root.
pub trait StateCommitter: Send + Sync {
    /// Applies `diff` to the flat state in `writer` and updates the trie data there;
    /// returns the new state root. `pre` is a snapshot of the store holding the state
    /// `diff` applies to (the parent block).
    fn commit(&self, pre: &StoreReader, writer: &mut BlockWriter, diff: &StateDiff) -> Result<B256, TrieError>;
}

/// Incremental, parallel Merkle-Patricia committer (the default).
pub struct IncrementalCommitter {
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for IncrementalCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncrementalCommitter").field("threads", &self.pool.current_num_threads()).finish()
    }
}

/// What one block does to the trie data, computed before anything is written.
#[derive(Debug, Default)]
pub struct StateUpdate {
    pub state_root: B256,
    pub account_trie: TrieUpdate,
    /// Per touched storage trie: hashed owner, whether its old nodes go first, update.
    pub storage_tries: Vec<([u8; 32], bool, TrieUpdate)>,
    /// Hashed addresses of deleted accounts (their storage tries go too).
    pub deleted: Vec<[u8; 32]>,
    /// How long each phase of the computation took.
    pub phases: Phases,
}

/// Wall time of each phase of [`IncrementalCommitter::compute`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Phases {
    /// Hashing and sorting the changed keys.
    pub prepare: std::time::Duration,
    /// Updating the touched storage tries.
    pub storage_tries: std::time::Duration,
    /// Reading the touched accounts' stored records and encoding their new leaves.
    pub account_leaves: std::time::Duration,
    /// Updating the account trie.
    pub account_trie: std::time::Duration,
}

impl StateUpdate {
    /// Number of branch nodes written and deleted.
    pub fn node_writes(&self) -> usize {
        let count = |u: &TrieUpdate| u.puts.len() + u.deletes.len();
        count(&self.account_trie) + self.storage_tries.iter().map(|(_, _, u)| count(u)).sum::<usize>()
    }

    /// Writes the trie data (flat state first) into the block's write.
    pub fn write(&self, writer: &mut BlockWriter, diff: &StateDiff) -> Result<(), TrieError> {
        writer.apply_state(diff)?;
        for owner in &self.deleted {
            writer.wipe_storage_trie(owner)?;
        }
        for (owner, wiped, trie) in &self.storage_tries {
            if *wiped {
                writer.wipe_storage_trie(owner)?;
            }
            write_trie(writer, Some(owner), trie)?;
            writer.set_storage_root(owner, trie.root_hash())?;
        }
        write_trie(writer, None, &self.account_trie)?;
        Ok(())
    }
}

fn write_trie(writer: &mut BlockWriter, owner: Option<&[u8; 32]>, trie: &TrieUpdate) -> Result<(), TrieError> {
    for path in &trie.deletes {
        writer.set_trie_node(owner, &path.to_vec(), None)?;
    }
    for (path, record) in &trie.puts {
        writer.set_trie_node(owner, &path.to_vec(), Some(record))?;
    }
    writer.set_trie_root(owner, trie.root.as_ref().map(ChildRef::encode).as_deref())?;
    Ok(())
}

impl IncrementalCommitter {
    /// A committer updating storage tries on `threads` threads.
    pub fn new(threads: usize) -> Result<Self, TrieError> {
        Self::with_thread_start(threads, || {})
    }

    /// Like [`IncrementalCommitter::new`], running `start` on each of its threads first
    /// (the node lowers their scheduling priority there, as it does the sealer's).
    pub fn with_thread_start(threads: usize, start: impl Fn() + Send + Sync + 'static) -> Result<Self, TrieError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("cairn-trie-{i}"))
            .start_handler(move |_| start())
            .build()
            .map_err(|e| TrieError::Corrupt(format!("cannot start trie threads: {e}")))?;
        Ok(Self { pool })
    }

    /// Computes the trie changes of `diff` on top of the state in `pre`, writing nothing.
    pub fn compute(&self, pre: &StoreReader, diff: &StateDiff) -> Result<StateUpdate, TrieError> {
        struct Touched {
            hashed: [u8; 32],
            info: Option<AccountState>,
            wiped: bool,
            slots: Vec<Change>,
            /// Each changed slot's leaf before the block, when the diff knows it (same
            /// order as `slots`).
            old_slots: Vec<Option<Vec<u8>>>,
        }
        let started = std::time::Instant::now();
        let mut phases = Phases::default();
        let mut lap = {
            let mut last = started;
            move || {
                let now = std::time::Instant::now();
                let took = now - last;
                last = now;
                took
            }
        };
        let accounts: Vec<_> = diff.accounts.iter().collect();
        let mut touched: Vec<Touched> = self.pool.install(|| {
            accounts
                .par_iter()
                .map(|(address, change)| {
                    let leaf = |value: &U256| (!value.is_zero()).then(|| alloy_rlp::encode_fixed_size(value).to_vec());
                    let mut slots: Vec<(Change, Option<Vec<u8>>)> = change
                        .storage
                        .iter()
                        .map(|(slot, value)| {
                            let old = change.original.get(slot).and_then(leaf);
                            ((keccak256(slot.to_be_bytes::<32>()), leaf(value)), old)
                        })
                        .collect();
                    slots.sort_unstable_by_key(|((k, _), _)| *k);
                    let (slots, old_slots) = slots.into_iter().unzip();
                    Touched {
                        hashed: keccak256(address).0,
                        info: change.info,
                        wiped: change.storage_wiped,
                        slots,
                        old_slots,
                    }
                })
                .collect()
        });
        self.pool.install(|| touched.par_sort_unstable_by_key(|t| t.hashed));
        phases.prepare = lap();

        let storage_tries: Vec<([u8; 32], bool, TrieUpdate)> = self.pool.install(|| {
            touched
                .par_iter()
                .filter(|t| t.info.is_some() && (t.wiped || !t.slots.is_empty()))
                .map(|t| {
                    let source = StorageSource {
                        pre,
                        owner: t.hashed,
                        wiped: t.wiped,
                        overrides: &t.slots,
                        old_leaves: &t.old_slots,
                    };
                    let old = if t.wiped { None } else { read_root(pre, Some(&t.hashed))? };
                    Ok((t.hashed, t.wiped, update(&source, old, &t.slots)?))
                })
                .collect::<Result<_, TrieError>>()
        })?;
        phases.storage_tries = lap();
        let new_roots: HashMap<[u8; 32], B256> =
            storage_tries.iter().map(|(owner, _, trie)| (*owner, trie.root_hash())).collect();

        // New and old leaf values of the touched accounts. Each account's stored record
        // is read once: it has the storage root of accounts whose storage did not change,
        // and as the old leaf it spares the account trie reading the leaf's slot back.
        let (account_changes, old_leaves): (Vec<Change>, Vec<Option<Vec<u8>>>) = self.pool.install(|| {
            touched
                .par_iter()
                .map(|t| {
                    let old = pre.account_record_hashed(&t.hashed)?;
                    let value = t.info.map(|state| {
                        let storage_root =
                            new_roots.get(&t.hashed).copied().or(old.map(|r| r.storage_root)).unwrap_or(EMPTY_ROOT);
                        account_leaf(&AccountRecord { state, storage_root })
                    });
                    Ok(((B256::from(t.hashed), value), old.as_ref().map(account_leaf)))
                })
                .collect::<Result<Vec<_>, TrieError>>()
                .map(|pairs| pairs.into_iter().unzip())
        })?;
        phases.account_leaves = lap();
        let deleted: Vec<[u8; 32]> = touched.iter().filter(|t| t.info.is_none()).map(|t| t.hashed).collect();
        let source = AccountSource { pre, overrides: &account_changes, old_leaves: Some(&old_leaves) };
        let old_root = read_root(pre, None)?;
        let account_trie = self.pool.install(|| update_parallel(&source, old_root, &account_changes))?;
        phases.account_trie = lap();
        Ok(StateUpdate { state_root: account_trie.root_hash(), account_trie, storage_tries, deleted, phases })
    }
}

impl StateCommitter for IncrementalCommitter {
    fn commit(&self, pre: &StoreReader, writer: &mut BlockWriter, diff: &StateDiff) -> Result<B256, TrieError> {
        let update = self.compute(pre, diff)?;
        update.write(writer, diff)?;
        Ok(update.state_root)
    }
}

/// Applies the flat state only and reports a zero root: for measuring what commitment
/// costs (`cairn bench rpc --committer none`); never for a real chain.
#[derive(Debug, Default, Clone, Copy)]
pub struct DisabledCommitter;

impl StateCommitter for DisabledCommitter {
    fn commit(&self, _pre: &StoreReader, writer: &mut BlockWriter, diff: &StateDiff) -> Result<B256, TrieError> {
        writer.apply_state(diff)?;
        Ok(B256::ZERO)
    }
}

fn read_root(pre: &StoreReader, owner: Option<&[u8; 32]>) -> Result<Option<ChildRef>, TrieError> {
    match pre.trie_root(owner)? {
        Some(bytes) => Ok(Some(ChildRef::decode(&mut bytes.as_slice())?)),
        None => Ok(None),
    }
}

/// The stored branch node at `path` of `owner`'s trie, decoded where the store holds it.
fn read_branch(
    pre: &StoreReader,
    owner: Option<&[u8; 32]>,
    path: &Nibbles,
) -> Result<Option<Box<BranchRecord>>, TrieError> {
    let mut nibbles = [0u8; 64];
    for (i, n) in path.iter().enumerate() {
        nibbles[i] = n;
    }
    pre.trie_node_with(owner, &nibbles[..path.len()], BranchRecord::decode_boxed)?.transpose()
}

/// The account trie's leaf value: `rlp([nonce, balance, storage_root, code_hash])`.
pub fn account_leaf(record: &AccountRecord) -> Vec<u8> {
    let account = TrieAccount {
        nonce: record.state.nonce,
        balance: record.state.balance,
        storage_root: record.storage_root,
        code_hash: record.state.code_hash,
    };
    alloy_rlp::encode(account)
}

/// `base` (sorted) with `overrides` (sorted; `None` deletes) applied, restricted to keys
/// in `lo..=hi`.
fn merge(base: Vec<(B256, Vec<u8>)>, overrides: &[Change], lo: B256, hi: B256, out: &mut Vec<(B256, Vec<u8>)>) {
    let start = overrides.partition_point(|(k, _)| *k < lo);
    let end = overrides.partition_point(|(k, _)| *k <= hi);
    let mut over = overrides[start..end].iter().peekable();
    for (k, v) in base {
        while let Some((ok, ov)) = over.next_if(|(ok, _)| *ok < k) {
            if let Some(ov) = ov {
                out.push((*ok, ov.clone()));
            }
        }
        match over.next_if(|(ok, _)| *ok == k) {
            Some((_, Some(ov))) => out.push((k, ov.clone())),
            Some((_, None)) => {}
            None => out.push((k, v)),
        }
    }
    for (ok, ov) in over {
        if let Some(ov) = ov {
            out.push((*ok, ov.clone()));
        }
    }
}

struct StorageSource<'a> {
    pre: &'a StoreReader,
    owner: [u8; 32],
    wiped: bool,
    overrides: &'a [Change],
    /// The pre-block leaf of each key of `overrides` (same order), when the diff knew
    /// the slot's original value.
    old_leaves: &'a [Option<Vec<u8>>],
}

impl TrieSource for StorageSource<'_> {
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError> {
        if self.wiped {
            return Ok(None);
        }
        read_branch(self.pre, Some(&self.owner), path)
    }

    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError> {
        let (lo, hi) = key_range(prefix);
        let mut base = Vec::new();
        if !self.wiped {
            self.pre
                .storage_in(&self.owner, lo, hi, |k, v| base.push((k, alloy_rlp::encode_fixed_size(&v).to_vec())))?;
        }
        merge(base, self.overrides, lo, hi, out);
        Ok(())
    }

    fn old_leaf(&self, key: &B256) -> Option<&[u8]> {
        match self.wiped {
            true => None,
            false => crate::update::old_leaf_among(self.overrides, self.old_leaves, key),
        }
    }
}

struct AccountSource<'a> {
    pre: &'a StoreReader,
    overrides: &'a [Change],
    /// The pre-update leaf of each key of `overrides` (same order), when known.
    old_leaves: Option<&'a [Option<Vec<u8>>]>,
}

impl TrieSource for AccountSource<'_> {
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError> {
        read_branch(self.pre, None, path)
    }

    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError> {
        let (lo, hi) = key_range(prefix);
        let mut base = Vec::new();
        self.pre.accounts_in(lo, hi, |k, record| base.push((k, account_leaf(&record))))?;
        merge(base, self.overrides, lo, hi, out);
        Ok(())
    }

    fn old_leaf(&self, key: &B256) -> Option<&[u8]> {
        crate::update::old_leaf_among(self.overrides, self.old_leaves?, key)
    }
}

/// The state root recomputed from the flat state alone, every storage root included
/// (what the incremental committer must always agree with), on the calling thread.
pub fn full_state_root(reader: &StoreReader) -> Result<B256, TrieError> {
    let storage_roots: HashMap<[u8; 32], B256> = storage_roots_of(reader, &[0; 32], &[0xff; 32])?.into_iter().collect();
    let mut hb = HashBuilder::default();
    reader.accounts_in(B256::ZERO, B256::repeat_byte(0xff), |hashed, record| {
        hb.add_leaf(Nibbles::unpack_array(&hashed.0), &full_leaf(&storage_roots, &hashed, record));
    })?;
    Ok(hb.root())
}

/// The storage roots of the accounts whose hashed address lies in `lo..=hi`, streamed
/// from the flat storage table through alloy-trie's hash builder.
fn storage_roots_of(reader: &StoreReader, lo: &[u8; 32], hi: &[u8; 32]) -> Result<Vec<([u8; 32], B256)>, TrieError> {
    let mut roots = Vec::new();
    let mut current: Option<([u8; 32], HashBuilder)> = None;
    reader.for_each_slot_of(lo, hi, |owner, slot, value: U256| {
        if current.as_ref().is_none_or(|(o, _)| o != owner) {
            if let Some((o, mut hb)) = current.take() {
                roots.push((o, hb.root()));
            }
            current = Some((*owner, HashBuilder::default()));
        }
        let (_, hb) = current.as_mut().expect("set above");
        hb.add_leaf(Nibbles::unpack_array(&slot.0), alloy_rlp::encode_fixed_size(&value).as_ref());
    })?;
    if let Some((o, mut hb)) = current.take() {
        roots.push((o, hb.root()));
    }
    Ok(roots)
}

/// An account's leaf value with its storage root taken from `storage_roots`.
fn full_leaf(storage_roots: &HashMap<[u8; 32], B256>, hashed: &B256, mut record: AccountRecord) -> Vec<u8> {
    record.storage_root = storage_roots.get(&hashed.0).copied().unwrap_or(EMPTY_ROOT);
    account_leaf(&record)
}

/// Parts the full recomputation splits the storage table into (by the first byte of
/// the hashed address, so they are about equal); more parts than threads keep both
/// threads busy to the end.
const FULL_STORAGE_PARTS: usize = 64;

impl IncrementalCommitter {
    /// [`full_state_root`] on the committer's threads: the storage tables of disjoint
    /// ranges of accounts in parallel, then the account trie's 16 subtrees under the root
    /// in parallel (each built by its own hash builder over the keys' remaining nibbles)
    /// and the root over their hashes. The fair baseline for the incremental committer,
    /// which uses the same threads.
    pub fn full_root(&self, reader: &StoreReader) -> Result<B256, TrieError> {
        self.pool.install(|| {
            let step = 256 / FULL_STORAGE_PARTS;
            let parts: Vec<Vec<([u8; 32], B256)>> = (0..FULL_STORAGE_PARTS)
                .into_par_iter()
                .map(|i| {
                    let (mut lo, mut hi) = ([0u8; 32], [0xffu8; 32]);
                    lo[0] = (i * step) as u8;
                    hi[0] = (i * step + step - 1) as u8;
                    storage_roots_of(reader, &lo, &hi)
                })
                .collect::<Result<_, TrieError>>()?;
            let storage_roots: HashMap<[u8; 32], B256> = parts.into_iter().flatten().collect();
            let subtrees: Vec<Option<B256>> = (0u8..16)
                .into_par_iter()
                .map(|n| {
                    let mut hb = HashBuilder::default();
                    let mut any = false;
                    let (mut lo, mut hi) = (B256::ZERO, B256::repeat_byte(0xff));
                    lo[0] = n << 4;
                    hi[0] = (n << 4) | 0x0f;
                    reader.accounts_in(lo, hi, |hashed, record| {
                        any = true;
                        let key = Nibbles::unpack_array(&hashed.0);
                        hb.add_leaf(key.slice(1..), &full_leaf(&storage_roots, &hashed, record));
                    })?;
                    Ok(any.then(|| hb.root()))
                })
                .collect::<Result<_, TrieError>>()?;
            if subtrees.iter().flatten().count() < 2 {
                // The root is not a branch over the first nibble: build it in one piece.
                return full_state_root(reader);
            }
            // Every subtree's root node is at least as long as an account leaf, so the
            // root branch references each by its hash.
            let mut root = BranchRecord::default();
            for (slot, hash) in root.children.iter_mut().zip(&subtrees) {
                *slot = hash.map(|h| ChildRef { kind: Kind::Branch, rlp: RlpNode::word_rlp(&h) });
            }
            let mut buf = Vec::with_capacity(600);
            Ok(ChildRef { kind: Kind::Branch, rlp: root.rlp(&mut buf) }.root_hash())
        })
    }
}

/// Most keys replayed to prove against an old block: accounts changed since it, or
/// history entries of the proven account's storage. Older requests get a clear error.
pub const MAX_HISTORY_REPLAY: usize = 200_000;

/// An account, its EIP-1186 proof and proofs of some of its slots, at one block.
#[derive(Debug, Clone)]
pub struct AccountProofs {
    /// The account as of the block (`None`: it did not exist; the proof shows absence).
    pub record: Option<AccountRecord>,
    pub account_proof: Vec<Bytes>,
    /// Per requested slot: its value and proof.
    pub storage: Vec<(U256, Vec<Bytes>)>,
}

/// EIP-1186 proofs of `address` and its `slots` at the block `state` names.
///
/// At the head the stored trie is walked directly. At an older retained block, the
/// changes of every later block are undone on the stored trie in memory (the same
/// incremental update the committer runs, with the history's values), the recomputed
/// roots are checked against that block's header and account, and the proofs are
/// taken from the resulting trie. Cost grows with the number of keys changed since.
pub fn proofs(state: &StateAt, address: Address, slots: &[U256]) -> Result<AccountProofs, TrieError> {
    let reader = state.reader();
    let block = state.block();
    let record = state.account_record(address)?;

    let accounts: Vec<Change> = if state.is_head() {
        Vec::new()
    } else {
        reader
            .accounts_changed_after(block, MAX_HISTORY_REPLAY)?
            .into_iter()
            .map(|(hashed, record)| (B256::from(hashed), record.as_ref().map(account_leaf)))
            .collect()
    };
    let source = AccountSource { pre: reader, overrides: &accounts, old_leaves: None };
    let (root, undone) = undo(&source, read_root(reader, None)?, &accounts)?;
    if !state.is_head() {
        let header =
            reader.header(block)?.ok_or_else(|| TrieError::Corrupt(format!("no header for retained block {block}")))?;
        if root_hash(root.as_ref()) != header.state_root {
            return Err(TrieError::Corrupt(format!(
                "state root of block {block} rebuilt from history is {}, header says {}",
                root_hash(root.as_ref()),
                header.state_root
            )));
        }
    }
    let account_proof = proof(&Undone { inner: &source, undone: &undone }, root.as_ref(), keccak256(address))?;

    let owner = keccak256(address).0;
    let slot_changes: Vec<Change> = if state.is_head() || record.is_none() {
        Vec::new()
    } else {
        reader
            .slots_changed_after(&owner, block, MAX_HISTORY_REPLAY)?
            .into_iter()
            .map(|(slot, value)| (slot, (!value.is_zero()).then(|| alloy_rlp::encode_fixed_size(&value).to_vec())))
            .collect()
    };
    // An absent account has an empty storage trie: every slot proof is empty.
    let wiped = record.is_none();
    let source = StorageSource { pre: reader, owner, wiped, overrides: &slot_changes, old_leaves: &[] };
    let head_root = if wiped { None } else { read_root(reader, Some(&owner))? };
    let (root, undone) = undo(&source, head_root, &slot_changes)?;
    let expected = record.map(|r| r.storage_root).unwrap_or(EMPTY_ROOT);
    if root_hash(root.as_ref()) != expected {
        return Err(TrieError::Corrupt(format!(
            "storage root of {address} at block {block} rebuilt as {}, account says {expected}",
            root_hash(root.as_ref())
        )));
    }
    let view = Undone { inner: &source, undone: &undone };
    let mut storage = Vec::with_capacity(slots.len());
    for slot in slots {
        let value =
            if wiped { U256::ZERO } else { state.storage(address, *slot).map_err(|e| TrieError::Corrupt(e.0))? };
        storage.push((value, proof(&view, root.as_ref(), keccak256(slot.to_be_bytes::<32>()))?));
    }
    Ok(AccountProofs { record, account_proof, storage })
}

/// Applies `changes` to the stored trie in memory: the new root and the changed nodes.
fn undo(
    source: &impl TrieSource,
    root: Option<ChildRef>,
    changes: &[Change],
) -> Result<(Option<ChildRef>, NodeOverlay), TrieError> {
    if changes.is_empty() {
        return Ok((root, HashMap::new()));
    }
    let update = update(source, root, changes)?;
    let mut nodes: NodeOverlay = update.deletes.into_iter().map(|p| (p, None)).collect();
    for (path, record) in update.puts {
        nodes.insert(path, Some(BranchRecord::decode(&record)?));
    }
    Ok((update.root, nodes))
}

/// Branch nodes an in-memory update changed (`None`: deleted).
type NodeOverlay = HashMap<Nibbles, Option<BranchRecord>>;

/// A stored trie with an in-memory update laid over it.
struct Undone<'a, S> {
    inner: &'a S,
    undone: &'a NodeOverlay,
}

impl<S: TrieSource> TrieSource for Undone<'_, S> {
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError> {
        match self.undone.get(path) {
            Some(node) => Ok(node.clone().map(Box::new)),
            None => self.inner.branch(path),
        }
    }

    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError> {
        self.inner.leaves(prefix, out)
    }
}
