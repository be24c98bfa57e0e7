//! Incremental Merkle-Patricia update over stored branch nodes.
//!
//! [`update`] descends only into the branch nodes on the paths of the changed keys.
//! Untouched children keep their stored references; a branch whose children changed is
//! re-encoded and re-hashed. Where the shape of the trie changes (a new key splits an
//! extension or lands in an empty slot, a deletion leaves a branch with one child) the
//! affected subtree is rebuilt from its parts: changed leaves, unchanged leaves (read
//! back from the flat state only when their encoding must change) and untouched
//! subtrees (moved by reference). The result is always the canonical trie of the new
//! key set, so the root equals a full recomputation and the stored nodes equal those a
//! from-scratch build would store (both pinned by property tests).

use alloy_primitives::{Bytes, B256};
use alloy_trie::nodes::{ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{Nibbles, EMPTY_ROOT_HASH};

use crate::node::{extension_rlp, leaf_rlp, BranchRecord, ChildRef, Kind};
use crate::TrieError;

/// Where one trie's stored branch nodes and its (already updated) leaves come from.
pub trait TrieSource {
    /// The stored branch node at `path`, as of before the update.
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError>;
    /// Every leaf of the trie *after* the update whose key starts with `prefix`, in key
    /// order, as `(key, leaf value)`. Called only for prefixes that hold few leaves.
    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError>;
    /// The leaf value `key` had *before* the update, when the source knows it without a
    /// store read (`None`: unknown, or the key did not exist). Lets an update of a key
    /// that sits alone in its slot skip reading the slot back: the stored reference is
    /// checked to be that very leaf first.
    fn old_leaf(&self, _key: &B256) -> Option<&[u8]> {
        None
    }
}

/// One changed key: its new leaf value, or `None` when it is deleted.
pub type Change = (B256, Option<Vec<u8>>);

/// The old leaf of `key` among `changes` (sorted), given `old`, their old leaves in the
/// same order: what a source with known old values answers to [`TrieSource::old_leaf`].
pub(crate) fn old_leaf_among<'a>(changes: &[Change], old: &'a [Option<Vec<u8>>], key: &B256) -> Option<&'a [u8]> {
    let at = changes.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
    old.get(at)?.as_deref()
}

/// What an update does to a trie's stored nodes.
#[derive(Debug, Default, Clone)]
pub struct TrieUpdate {
    /// The new root reference (`None`: the trie is empty).
    pub root: Option<ChildRef>,
    /// Branch nodes to write (new or changed), in their stored encoding
    /// ([`BranchRecord::encode`]): a decoded record is 1.4 KB, and a large block's
    /// update holds tens of thousands of them.
    pub puts: Vec<(Nibbles, Vec<u8>)>,
    /// Branch nodes that no longer exist.
    pub deletes: Vec<Nibbles>,
}

impl TrieUpdate {
    pub fn root_hash(&self) -> B256 {
        root_hash(self.root.as_ref())
    }
}

/// Hash of a trie whose root reference is `root`.
pub fn root_hash(root: Option<&ChildRef>) -> B256 {
    root.map(ChildRef::root_hash).unwrap_or(EMPTY_ROOT_HASH)
}

/// Applies `changes` (sorted by key, no duplicates) to the trie whose root reference is
/// `root` and whose stored nodes `source` serves. `source.leaves` must already reflect
/// the changes.
pub fn update(source: &impl TrieSource, root: Option<ChildRef>, changes: &[Change]) -> Result<TrieUpdate, TrieError> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0), "changes must be sorted and unique");
    let changes: Vec<(Nibbles, Option<&[u8]>)> =
        changes.iter().map(|(k, v)| (Nibbles::unpack_array(&k.0), v.as_deref())).collect();
    let mut up = Updater::new(source);
    let top = up.update(Nibbles::new(), root, &changes)?;
    Ok(up.finish(top))
}

/// Fewest changes for which [`update_parallel`] splits the work over the root's children.
pub const PARALLEL_MIN_CHANGES: usize = 512;

/// [`update`] with the 16 subtrees under a branch root updated in parallel (on the
/// current rayon pool), then the root re-encoded. Same result as [`update`].
pub fn update_parallel(
    source: &(impl TrieSource + Sync),
    root: Option<ChildRef>,
    changes: &[Change],
) -> Result<TrieUpdate, TrieError> {
    use rayon::prelude::*;
    if changes.len() < PARALLEL_MIN_CHANGES || !matches!(root.as_ref().map(|r| r.kind), Some(Kind::Branch)) {
        return update(source, root, changes);
    }
    let changes: Vec<(Nibbles, Option<&[u8]>)> =
        changes.iter().map(|(k, v)| (Nibbles::unpack_array(&k.0), v.as_deref())).collect();
    let at = Nibbles::new();
    let mut record = source.branch(&at)?.ok_or_else(|| TrieError::Corrupt("missing branch node at the root".into()))?;
    let mut parts: Vec<(usize, Option<ChildRef>, &Changes<'_>)> = Vec::with_capacity(16);
    let mut rest = changes.as_slice();
    for n in 0..16 {
        let split = rest.partition_point(|(k, _)| usize::from(k.get_unchecked(0)) <= n);
        let (mine, later) = rest.split_at(split);
        rest = later;
        parts.push((n, record.children[n].take(), mine));
    }
    // Each part also works out its own deletions: paths under different root slots
    // never meet, so the sets stay small and are built in parallel.
    let done: Vec<(usize, Option<Sub>, Puts, Vec<Nibbles>)> = parts
        .into_par_iter()
        .map(|(n, old, mine)| {
            let mut up = Updater::new(source);
            let mut slot = at;
            slot.push_unchecked(n as u8);
            let sub = up.update(slot, old, mine)?;
            let deletes = deletions(up.visited, &up.puts);
            Ok((n, sub, up.puts, deletes))
        })
        .collect::<Result<_, TrieError>>()?;
    let mut up = Updater::new(source);
    up.visited.push(at);
    let mut kids = Vec::with_capacity(16);
    let mut below = Vec::with_capacity(done.len());
    for (n, sub, puts, deletes) in done {
        kids.extend(sub.map(|sub| (n, sub)));
        below.push((puts, deletes));
    }
    let top = up.finish_branch(at, record, kids)?;
    let mut result = up.finish(top);
    result.puts.reserve(below.iter().map(|(p, _)| p.len()).sum());
    for (puts, deletes) in below {
        result.puts.extend(puts);
        result.deletes.extend(deletes);
    }
    Ok(result)
}

/// Branch nodes to write: path and stored encoding.
type Puts = Vec<(Nibbles, Vec<u8>)>;

/// The `visited` paths that are not among the paths written by `puts`.
fn deletions(mut visited: Vec<Nibbles>, puts: &[(Nibbles, Vec<u8>)]) -> Vec<Nibbles> {
    if visited.is_empty() {
        return visited;
    }
    let mut written: Vec<Nibbles> = puts.iter().map(|(p, _)| *p).collect();
    written.sort_unstable();
    visited.retain(|p| written.binary_search(p).is_err());
    visited
}

/// A subtree as it will hang below some slot.
enum Sub {
    /// Unchanged and still in its original slot.
    Same(ChildRef),
    /// A leaf with its full key.
    Leaf { key: Nibbles, value: Vec<u8> },
    /// `ext` nibbles (relative to the slot; may be empty) then a branch node whose
    /// reference is `rlp` (its record is already among the writes, or unchanged).
    Branch { ext: Nibbles, rlp: RlpNode },
}

struct Updater<'a, S> {
    source: &'a S,
    puts: Vec<(Nibbles, Vec<u8>)>,
    visited: Vec<Nibbles>,
    buf: Vec<u8>,
}

type Changes<'c> = [(Nibbles, Option<&'c [u8]>)];

impl<'a, S: TrieSource> Updater<'a, S> {
    fn new(source: &'a S) -> Self {
        Self { source, puts: Vec::new(), visited: Vec::new(), buf: Vec::with_capacity(600) }
    }

    /// The update, given the root's new subtree: visited branches not rewritten are
    /// deletions.
    fn finish(mut self, top: Option<Sub>) -> TrieUpdate {
        let root = top.map(|sub| self.encode(&Nibbles::new(), sub));
        let deletes = deletions(self.visited, &self.puts);
        TrieUpdate { root, puts: self.puts, deletes }
    }

    /// New subtree for the slot at `slot` that held `old`; every key in `changes` starts
    /// with `slot`.
    fn update(
        &mut self,
        slot: Nibbles,
        old: Option<ChildRef>,
        changes: &Changes<'_>,
    ) -> Result<Option<Sub>, TrieError> {
        if changes.is_empty() {
            return Ok(old.map(Sub::Same));
        }
        match old.as_ref().map(|c| c.kind) {
            None => {
                // Only inserts can land in an empty slot.
                let items = changes
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| (*k, Sub::Leaf { key: *k, value: v.to_vec() })))
                    .collect();
                self.build(slot, items)
            }
            Some(Kind::Leaf) => {
                if let [(key, value)] = changes {
                    if let Some(sub) = self.replace_known_leaf(&slot, old.as_ref(), key, *value) {
                        return Ok(sub);
                    }
                }
                // The old leaf (if it survives) and the inserts: read them back.
                let items = self.leaf_items(&slot)?;
                self.build(slot, items)
            }
            Some(Kind::Branch) => self.update_branch(slot, changes),
            Some(Kind::Extension(ext)) => {
                let at = slot.join(&ext);
                let start = changes.partition_point(|(k, _)| k.slice(..at.len()) < at);
                let end = start + changes[start..].partition_point(|(k, _)| k.starts_with(&at));
                let inside = &changes[start..end];
                let below = if inside.is_empty() {
                    Some(Sub::Branch { ext: Nibbles::new(), rlp: self.branch_rlp(&at)? })
                } else {
                    self.update_branch(at, inside)?
                };
                let mut items: Vec<(Nibbles, Sub)> = changes[..start]
                    .iter()
                    .chain(&changes[end..])
                    .filter_map(|(k, v)| v.map(|v| (*k, Sub::Leaf { key: *k, value: v.to_vec() })))
                    .collect();
                if items.is_empty() {
                    return match below {
                        Some(sub) => self.relocate(at, sub, &slot).map(Some),
                        None => Ok(None),
                    };
                }
                if let Some(sub) = below {
                    let pos = items.partition_point(|(k, _)| *k < at);
                    items.insert(pos, (at, sub));
                }
                self.build(slot, items)
            }
        }
    }

    /// When the leaf stored in the slot at `slot` (referenced by `old`) is `key` itself
    /// with its known old value, the slot's new content without any store read: the
    /// changed leaf, or nothing when it is deleted. `None`: not provably that leaf.
    fn replace_known_leaf(
        &mut self,
        slot: &Nibbles,
        old: Option<&ChildRef>,
        key: &Nibbles,
        value: Option<&[u8]>,
    ) -> Option<Option<Sub>> {
        let old = old?;
        let mut packed = [0u8; 32];
        key.pack_to(&mut packed);
        let old_value = self.source.old_leaf(&B256::from(packed))?;
        // Same suffix and same value give the same reference: the slot holds this leaf.
        if leaf_rlp(&key.slice(slot.len()..), old_value, &mut self.buf) != old.rlp {
            return None;
        }
        Some(value.map(|v| Sub::Leaf { key: *key, value: v.to_vec() }))
    }

    /// New subtree (relative to `at`) for the stored branch at `at`, all of whose keys
    /// in `changes` start with `at`.
    fn update_branch(&mut self, at: Nibbles, changes: &Changes<'_>) -> Result<Option<Sub>, TrieError> {
        let mut record = self
            .source
            .branch(&at)?
            .ok_or_else(|| TrieError::Corrupt(format!("missing branch node at path {at:?}")))?;
        self.visited.push(at);
        let depth = at.len();
        let mut kids = Vec::with_capacity(16);
        let mut rest = changes;
        for n in 0..16 {
            let split = rest.partition_point(|(k, _)| usize::from(k.get_unchecked(depth)) <= n);
            let (mine, later) = rest.split_at(split);
            rest = later;
            let mut slot = at;
            slot.push_unchecked(n as u8);
            if let Some(kid) = self.update(slot, record.children[n].take(), mine)? {
                kids.push((n, kid));
            }
        }
        self.finish_branch(at, record, kids)
    }

    /// The branch at `at` (its old `record`) with its children's new subtrees `kids`
    /// (by slot, ascending; slots without one are empty): gone, collapsed into its only
    /// child, or re-encoded.
    fn finish_branch(
        &mut self,
        at: Nibbles,
        mut record: Box<BranchRecord>,
        mut kids: Vec<(usize, Sub)>,
    ) -> Result<Option<Sub>, TrieError> {
        match kids.len() {
            0 => Ok(None),
            1 => {
                let (n, sub) = kids.pop().expect("one child");
                let mut slot = at;
                slot.push_unchecked(n as u8);
                self.relocate(slot, sub, &at).map(Some)
            }
            _ => {
                for (n, sub) in kids {
                    let mut slot = at;
                    slot.push_unchecked(n as u8);
                    record.children[n] = Some(self.encode(&slot, sub));
                }
                Ok(Some(self.emit(at, &record)))
            }
        }
    }

    /// Canonical subtree (relative to `slot`) over `items`, sorted by position, none a
    /// prefix of another, all below `slot`.
    fn build(&mut self, slot: Nibbles, mut items: Vec<(Nibbles, Sub)>) -> Result<Option<Sub>, TrieError> {
        match items.len() {
            0 => Ok(None),
            1 => {
                let (pos, sub) = items.pop().expect("one item");
                self.relocate(pos, sub, &slot).map(Some)
            }
            _ => {
                let first = items[0].0;
                let prefix_len = first.common_prefix_length(&items[items.len() - 1].0);
                let at = first.slice(..prefix_len);
                let mut record = Box::<BranchRecord>::default();
                let mut iter = items.into_iter().peekable();
                while let Some((pos, sub)) = iter.next() {
                    let n = pos.get_unchecked(prefix_len);
                    let mut group = vec![(pos, sub)];
                    while iter.peek().is_some_and(|(p, _)| p.get_unchecked(prefix_len) == n) {
                        group.push(iter.next().expect("peeked"));
                    }
                    let mut child_slot = at;
                    child_slot.push_unchecked(n);
                    if let Some(sub) = self.build(child_slot, group)? {
                        record.children[usize::from(n)] = Some(self.encode(&child_slot, sub));
                    }
                }
                let Sub::Branch { rlp, .. } = self.emit(at, &record) else { unreachable!("emit returns a branch") };
                Ok(Some(Sub::Branch { ext: at.slice(slot.len()..), rlp }))
            }
        }
    }

    /// Records a branch to write and returns it as a subtree at its own path.
    fn emit(&mut self, at: Nibbles, record: &BranchRecord) -> Sub {
        self.buf.clear();
        let rlp = record.rlp(&mut self.buf);
        self.puts.push((at, record.encode()));
        Sub::Branch { ext: Nibbles::new(), rlp }
    }

    /// `sub`, which hangs at `pos`, re-expressed for the slot `slot` above it.
    fn relocate(&mut self, pos: Nibbles, sub: Sub, slot: &Nibbles) -> Result<Sub, TrieError> {
        if pos == *slot {
            return Ok(sub);
        }
        let gap = pos.slice(slot.len()..);
        Ok(match sub {
            Sub::Leaf { key, value } => Sub::Leaf { key, value },
            Sub::Branch { ext, rlp } => Sub::Branch { ext: gap.join(&ext), rlp },
            Sub::Same(child) => match child.kind {
                Kind::Leaf => {
                    let mut items = self.leaf_items(&pos)?;
                    if items.len() != 1 {
                        return Err(TrieError::Corrupt(format!(
                            "leaf slot {pos:?} holds {} leaves in the flat state",
                            items.len()
                        )));
                    }
                    items.pop().expect("one leaf").1
                }
                Kind::Branch => Sub::Branch { ext: gap, rlp: child.rlp },
                Kind::Extension(ext) => {
                    let rlp = self.branch_rlp(&pos.join(&ext))?;
                    Sub::Branch { ext: gap.join(&ext), rlp }
                }
            },
        })
    }

    /// The reference a parent at `slot` holds for `sub`.
    fn encode(&mut self, slot: &Nibbles, sub: Sub) -> ChildRef {
        match sub {
            Sub::Same(child) => child,
            Sub::Leaf { key, value } => {
                ChildRef { kind: Kind::Leaf, rlp: leaf_rlp(&key.slice(slot.len()..), &value, &mut self.buf) }
            }
            Sub::Branch { ext, rlp } if ext.is_empty() => ChildRef { kind: Kind::Branch, rlp },
            Sub::Branch { ext, rlp } => {
                let rlp = extension_rlp(&ext, &rlp, &mut self.buf);
                ChildRef { kind: Kind::Extension(ext), rlp }
            }
        }
    }

    fn branch_rlp(&mut self, at: &Nibbles) -> Result<RlpNode, TrieError> {
        let record =
            self.source.branch(at)?.ok_or_else(|| TrieError::Corrupt(format!("missing branch node at path {at:?}")))?;
        self.buf.clear();
        Ok(record.rlp(&mut self.buf))
    }

    fn leaf_items(&self, prefix: &Nibbles) -> Result<Vec<(Nibbles, Sub)>, TrieError> {
        let mut leaves = Vec::new();
        self.source.leaves(prefix, &mut leaves)?;
        Ok(leaves
            .into_iter()
            .map(|(k, value)| {
                let key = Nibbles::unpack_array(&k.0);
                (key, Sub::Leaf { key, value })
            })
            .collect())
    }
}

/// EIP-1186 proof for `key`: the encodings of the nodes on its path, from the root, that
/// are referenced by hash (shorter nodes are inlined in their parent's encoding).
pub fn proof(source: &impl TrieSource, root: Option<&ChildRef>, key: B256) -> Result<Vec<Bytes>, TrieError> {
    let target = Nibbles::unpack_array(&key.0);
    let mut out = Vec::new();
    let Some(root) = root else { return Ok(out) };
    let mut buf = Vec::with_capacity(600);
    let push = |out: &mut Vec<Bytes>, encoded: &[u8]| {
        if out.is_empty() || encoded.len() >= 32 {
            out.push(Bytes::copy_from_slice(encoded));
        }
    };
    let mut at = Nibbles::new();
    let mut current = root.kind;
    loop {
        match current {
            Kind::Leaf => {
                let mut leaves = Vec::new();
                source.leaves(&at, &mut leaves)?;
                let [(leaf_key, value)] = leaves.as_slice() else {
                    return Err(TrieError::Corrupt(format!("leaf slot {at:?} holds {} leaves", leaves.len())));
                };
                buf.clear();
                let suffix = Nibbles::unpack_array(&leaf_key.0).slice(at.len()..);
                alloy_rlp::Encodable::encode(&LeafNodeRef::new(&suffix, value), &mut buf);
                push(&mut out, &buf);
                return Ok(out);
            }
            Kind::Extension(ext) => {
                let below = at.join(&ext);
                let record = source
                    .branch(&below)?
                    .ok_or_else(|| TrieError::Corrupt(format!("missing branch node at path {below:?}")))?;
                buf.clear();
                let child = record.rlp(&mut buf);
                buf.clear();
                alloy_rlp::Encodable::encode(&ExtensionNodeRef::new(&ext, child.as_slice()), &mut buf);
                push(&mut out, &buf);
                if !target.starts_with(&below) {
                    return Ok(out);
                }
                at = below;
                current = Kind::Branch;
            }
            Kind::Branch => {
                let record = source
                    .branch(&at)?
                    .ok_or_else(|| TrieError::Corrupt(format!("missing branch node at path {at:?}")))?;
                buf.clear();
                record.rlp(&mut buf);
                push(&mut out, &buf);
                let n = target.get_unchecked(at.len());
                let Some(child) = &record.children[usize::from(n)] else { return Ok(out) };
                at.push_unchecked(n);
                current = child.kind;
            }
        }
    }
}
