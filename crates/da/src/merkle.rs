//! A binary Merkle tree over keccak256, for the per-namespace commitments of a batch:
//! a rollup that holds one of its transactions and the proof can check that the
//! transaction is at that place in the batch without the rest of the batch.
//!
//! Leaves are hashed with a `0x00` prefix and inner nodes with `0x01` (so a leaf can
//! never pass for an inner node); a level with an odd count carries its last node up
//! unchanged. The root of no leaves is zero. Pure.

use alloy_primitives::{keccak256, B256};
use serde::{Deserialize, Serialize};

/// A leaf's hash: keccak256(0x00 ‖ data).
pub fn leaf(data: &[u8]) -> B256 {
    let mut buf = Vec::with_capacity(1 + data.len());
    buf.push(0);
    buf.extend_from_slice(data);
    keccak256(buf)
}

fn node(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left.as_slice());
    buf[33..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// The root over `leaves` (already hashed with [`leaf`]).
pub fn root(leaves: &[B256]) -> B256 {
    if leaves.is_empty() {
        return B256::ZERO;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| if pair.len() == 2 { node(&pair[0], &pair[1]) } else { pair[0] }).collect();
    }
    level[0]
}

/// The path from leaf `index` to the root: the sibling at each level where there is
/// one, and whether it sits on the left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    pub index: u64,
    pub leaves: u64,
    pub siblings: Vec<B256>,
}

/// The proof for leaf `index` of `leaves`, if there is such a leaf.
pub fn prove(leaves: &[B256], index: usize) -> Option<Proof> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    let (mut level, mut i) = (leaves.to_vec(), index);
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            siblings.push(level[sibling]);
        }
        level = level.chunks(2).map(|pair| if pair.len() == 2 { node(&pair[0], &pair[1]) } else { pair[0] }).collect();
        i /= 2;
    }
    Some(Proof { index: index as u64, leaves: leaves.len() as u64, siblings })
}

/// Whether `proof` takes `leaf_hash` to `root`.
pub fn verify(root_hash: &B256, leaf_hash: &B256, proof: &Proof) -> bool {
    if proof.index >= proof.leaves {
        return false;
    }
    let (mut hash, mut i, mut width) = (*leaf_hash, proof.index, proof.leaves);
    let mut siblings = proof.siblings.iter();
    while width > 1 {
        let sibling = i ^ 1;
        if sibling < width {
            let Some(s) = siblings.next() else { return false };
            hash = if i % 2 == 0 { node(&hash, s) } else { node(s, &hash) };
        }
        i /= 2;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && hash == *root_hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_tree_of_one_is_its_leaf_and_of_none_is_zero() {
        assert_eq!(root(&[]), B256::ZERO);
        let l = leaf(b"a");
        assert_eq!(root(&[l]), l);
        assert!(verify(&l, &l, &prove(&[l], 0).expect("proof")));
        assert_eq!(prove(&[l], 1), None);
    }

    proptest! {
        /// Every leaf of every tree size proves against the root; a proof does not
        /// carry over to another leaf, index or root.
        #[test]
        fn every_leaf_proves_and_nothing_else_does(n in 1usize..70, pick in 0usize..70) {
            let leaves: Vec<B256> = (0..n).map(|i| leaf(&(i as u64).to_be_bytes())).collect();
            let r = root(&leaves);
            let index = pick % n;
            let proof = prove(&leaves, index).expect("proof");
            prop_assert!(verify(&r, &leaves[index], &proof));
            let other = leaf(b"not in the tree");
            prop_assert!(!verify(&r, &other, &proof));
            prop_assert!(!verify(&B256::repeat_byte(7), &leaves[index], &proof));
            if n > 1 {
                let moved = Proof { index: ((index + 1) % n) as u64, ..proof.clone() };
                prop_assert!(!verify(&r, &leaves[index], &moved));
            }
        }
    }
}
