//! The incremental update equals a from-scratch build: same root as alloy-trie's hash
//! builder over the leaves, and the same stored nodes as a trie built in one go from the
//! final key set. Keys are drawn around a few bases so that they share long prefixes
//! (deep branches, extensions, nodes short enough to be inlined).

use alloy_primitives::B256;
use alloy_trie::{proof::verify_proof, Nibbles};
use cairn_trie::{proof, MemoryTrie};
use proptest::prelude::*;
use std::collections::BTreeMap;

const BASES: [[u8; 32]; 3] = [[0x11; 32], [0xa7; 32], [0x00; 32]];

/// A key near one of the bases: up to two nibbles replaced.
fn key((base, p1, n1, p2, n2): (usize, usize, u8, usize, u8)) -> B256 {
    let mut nibbles = Nibbles::unpack(BASES[base]).to_vec();
    nibbles[p1] = n1;
    nibbles[p2] = n2;
    let mut out = [0u8; 32];
    for (i, pair) in nibbles.chunks(2).enumerate() {
        out[i] = (pair[0] << 4) | pair[1];
    }
    B256::from(out)
}

fn key_strategy() -> impl Strategy<Value = B256> {
    prop_oneof![
        3 => (0usize..3, 0usize..64, 0u8..16, 0usize..64, 0u8..16).prop_map(key),
        1 => any::<[u8; 32]>().prop_map(B256::from),
    ]
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 1..4),
        1 => proptest::collection::vec(any::<u8>(), 30..80),
    ]
}

/// One change: insert or update `key`, or (value `None`) delete an existing key picked
/// by the index (or `key` itself, absent or not, when the trie is empty).
type Op = (prop::sample::Index, B256, Option<Vec<u8>>);

fn rounds() -> impl Strategy<Value = Vec<Vec<Op>>> {
    let op = (any::<prop::sample::Index>(), key_strategy(), proptest::option::weighted(0.6, value_strategy()));
    proptest::collection::vec(proptest::collection::vec(op, 0..40), 1..10)
}

fn check(trie: &MemoryTrie) {
    assert_eq!(trie.root_hash(), trie.full_root(), "root differs from a full recomputation");
    let mut fresh = MemoryTrie::default();
    let all: Vec<_> = trie.leaves.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
    fresh.apply(&all).expect("fresh build");
    assert_eq!(trie.nodes, fresh.nodes, "stored nodes differ from a from-scratch build");
    assert_eq!(trie.root, fresh.root);
}

fn check_proofs(trie: &MemoryTrie, probes: &[B256]) {
    let root = trie.root_hash();
    for k in trie.leaves.keys().take(5).chain(probes) {
        let nodes = proof(trie, trie.root.as_ref(), *k).expect("proof");
        let expected = trie.leaves.get(k).cloned();
        verify_proof(root, Nibbles::unpack(k), expected, &nodes)
            .unwrap_or_else(|e| panic!("proof for {k} does not verify: {e:?}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_full(rounds in rounds(), probes in proptest::collection::vec(key_strategy(), 3)) {
        let mut trie = MemoryTrie::default();
        for round in rounds {
            let existing: Vec<B256> = trie.leaves.keys().copied().collect();
            let mut changes = BTreeMap::new();
            for (index, key, value) in round {
                let key = match (&value, existing.is_empty()) {
                    (None, false) if index.index(4) != 0 => *index.get(&existing),
                    _ => key,
                };
                changes.insert(key, value);
            }
            let changes: Vec<_> = changes.into_iter().collect();
            trie.apply(&changes).expect("apply");
            check(&trie);
            check_proofs(&trie, &probes);
        }
        // Delete everything: back to the empty root with no nodes.
        let all: Vec<_> = trie.leaves.keys().map(|k| (*k, None)).collect();
        trie.apply(&all).expect("delete all");
        prop_assert_eq!(trie.root_hash(), alloy_trie::EMPTY_ROOT_HASH);
        prop_assert!(trie.nodes.is_empty());
    }
}

#[test]
fn large_random_trie_stays_canonical_under_churn() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut trie = MemoryTrie::default();
    let initial: BTreeMap<B256, Option<Vec<u8>>> =
        (0..5_000).map(|_| (B256::from(rng.gen::<[u8; 32]>()), Some(vec![1u8; 40]))).collect();
    trie.apply(&initial.into_iter().collect::<Vec<_>>()).expect("initial");
    check(&trie);
    for round in 0..20u8 {
        let keys: Vec<B256> = trie.leaves.keys().copied().collect();
        let mut changes = BTreeMap::new();
        // Over `PARALLEL_MIN_CHANGES`: the root's subtrees are updated in parallel.
        for _ in 0..300 {
            let k = keys[rng.gen_range(0..keys.len())];
            changes.insert(k, if rng.gen_bool(0.5) { None } else { Some(vec![round; 33]) });
            changes.insert(B256::from(rng.gen::<[u8; 32]>()), Some(vec![round; 2]));
        }
        trie.apply(&changes.into_iter().collect::<Vec<_>>()).expect("apply");
        check(&trie);
    }
    // Large deletions through the parallel path: whole root subtrees vanish, then the
    // root collapses into its last subtree, then into a single leaf.
    let keep_nibble = |k: &B256| k.0[0] >> 4 == 0x7;
    for survivors in [keep_nibble as fn(&B256) -> bool, |k: &B256| k.0[0] == 0x7a, |_: &B256| false] {
        let mut doomed: Vec<(B256, Option<Vec<u8>>)> =
            trie.leaves.keys().filter(|k| !survivors(k)).map(|k| (*k, None)).collect();
        if trie.leaves.len() == doomed.len() {
            doomed.pop(); // keep one leaf
        }
        assert!(doomed.len() >= cairn_trie::PARALLEL_MIN_CHANGES || trie.leaves.len() < 600, "big enough");
        trie.apply(&doomed).expect("delete");
        check(&trie);
    }
    assert_eq!(trie.leaves.len(), 1);
}
