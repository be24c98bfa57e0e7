//! A trie held entirely in memory: the reference implementation of [`TrieSource`] the
//! property tests compare the store-backed committer with, and a small trie for callers
//! that need one (receipts, fixtures).

use alloy_primitives::B256;
use alloy_trie::{HashBuilder, Nibbles};
use std::collections::BTreeMap;

use crate::node::{BranchRecord, ChildRef};
use crate::update::{update_parallel, Change, TrieSource, TrieUpdate};
use crate::TrieError;

/// Leaves and stored branch nodes of one trie, updated incrementally.
#[derive(Debug, Default, Clone)]
pub struct MemoryTrie {
    pub leaves: BTreeMap<B256, Vec<u8>>,
    pub nodes: BTreeMap<Nibbles, BranchRecord>,
    pub root: Option<ChildRef>,
}

impl TrieSource for MemoryTrie {
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError> {
        Ok(self.nodes.get(path).cloned().map(Box::new))
    }

    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError> {
        let (lo, hi) = key_range(prefix);
        out.extend(self.leaves.range(lo..=hi).map(|(k, v)| (*k, v.clone())));
        Ok(())
    }
}

/// A [`MemoryTrie`] (already updated) that also knows the changed keys' old values.
struct KnownOld<'a> {
    trie: &'a MemoryTrie,
    changes: &'a [Change],
    old: Vec<Option<Vec<u8>>>,
}

impl TrieSource for KnownOld<'_> {
    fn branch(&self, path: &Nibbles) -> Result<Option<Box<BranchRecord>>, TrieError> {
        self.trie.branch(path)
    }

    fn leaves(&self, prefix: &Nibbles, out: &mut Vec<(B256, Vec<u8>)>) -> Result<(), TrieError> {
        self.trie.leaves(prefix, out)
    }

    fn old_leaf(&self, key: &B256) -> Option<&[u8]> {
        crate::update::old_leaf_among(self.changes, &self.old, key)
    }
}

impl MemoryTrie {
    /// Applies `changes` (sorted, unique keys) incrementally and returns what changed
    /// (large change sets split over the root's subtrees in parallel, as the committer
    /// does).
    pub fn apply(&mut self, changes: &[Change]) -> Result<TrieUpdate, TrieError> {
        let mut old = Vec::with_capacity(changes.len());
        for (k, v) in changes {
            old.push(match v {
                Some(v) => self.leaves.insert(*k, v.clone()),
                None => self.leaves.remove(k),
            });
        }
        // Like the committer's account trie, the update knows each changed key's old
        // value (so updates in place skip reading their slot back).
        let source = KnownOld { trie: self, changes, old };
        let result = update_parallel(&source, self.root.clone(), changes)?;
        for path in &result.deletes {
            self.nodes.remove(path);
        }
        for (path, record) in &result.puts {
            self.nodes.insert(*path, BranchRecord::decode(record)?);
        }
        self.root = result.root.clone();
        Ok(result)
    }

    pub fn root_hash(&self) -> B256 {
        crate::update::root_hash(self.root.as_ref())
    }

    /// Root recomputed from the leaves alone (alloy-trie's hash builder).
    pub fn full_root(&self) -> B256 {
        let mut hb = HashBuilder::default();
        for (k, v) in &self.leaves {
            hb.add_leaf(Nibbles::unpack_array(&k.0), v);
        }
        hb.root()
    }
}

/// The smallest and largest 32-byte keys starting with `prefix`.
pub fn key_range(prefix: &Nibbles) -> (B256, B256) {
    let mut lo = [0u8; 32];
    let mut hi = [0xffu8; 32];
    for i in 0..prefix.len() {
        let n = prefix.get_unchecked(i);
        let byte = i / 2;
        if i % 2 == 0 {
            lo[byte] = n << 4;
            hi[byte] = (n << 4) | 0x0f;
        } else {
            lo[byte] |= n;
            hi[byte] = (hi[byte] & 0xf0) | n;
        }
    }
    (B256::from(lo), B256::from(hi))
}
