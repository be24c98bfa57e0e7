//! The store-backed incremental committer agrees, block after block, with a full
//! recomputation from the flat state and with an in-memory reference state: inserts,
//! updates, slot deletions, storage wipes (self-destruct / re-creation), deleted
//! accounts and accounts emptied of storage. Stored proofs verify against the root.

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::{proof::verify_proof, Nibbles};
use cairn_primitives::{AccountChange, AccountState, InMemoryState, StateDiff};
use cairn_storage::Store;
use cairn_trie::{account_leaf, full_state_root, state_root_of, IncrementalCommitter, StateCommitter};
use proptest::prelude::*;

fn change(balance: u64, slots: &[(u64, u64)], wiped: bool) -> AccountChange {
    AccountChange {
        info: Some(AccountState { nonce: 1, balance: U256::from(balance), ..Default::default() }),
        storage_wiped: wiped,
        storage: slots.iter().map(|(k, v)| (U256::from(*k), U256::from(*v))).collect(),
    }
}

/// Commits `blocks` one by one and checks every root three ways.
fn run(blocks: Vec<StateDiff>, threads: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let committer = IncrementalCommitter::new(threads).expect("committer");
    let mut mem = InMemoryState::default();
    for diff in blocks {
        let pre = store.reader().expect("reader");
        let mut w = store.writer().expect("writer");
        let root = committer.commit(&pre, &mut w, &diff).expect("commit");
        w.commit().expect("db commit");
        mem.apply(&diff);
        assert_eq!(root, state_root_of(&mem), "incremental root differs from the reference state");
        let reader = store.reader().expect("reader");
        assert_eq!(root, full_state_root(&reader).expect("full root"), "differs from full recomputation");
        for address in mem.accounts.keys().take(3) {
            let record = reader.account_record(*address).expect("read").expect("exists");
            let proof = cairn_trie::account_proof(&reader, *address).expect("proof");
            verify_proof(root, Nibbles::unpack(keccak256(address)), Some(account_leaf(&record)), &proof)
                .expect("account proof verifies");
        }
    }
}

#[test]
fn committer_root_equals_full_recomputation() {
    let a = Address::repeat_byte(1);
    let b = Address::repeat_byte(2);
    let c = Address::repeat_byte(3);
    let blocks = vec![
        vec![(a, Some(change(10, &[(1, 1), (2, 2)], false))), (b, Some(change(20, &[], false)))],
        vec![(a, Some(change(11, &[(1, 0), (3, 3)], false))), (c, Some(change(5, &[(9, 9)], false)))],
        vec![(c, Some(change(6, &[(7, 7)], true))), (b, None)],
        vec![(a, Some(change(12, &[(2, 0), (3, 0)], false)))],
        vec![(a, None)],
    ];
    let diffs = blocks
        .into_iter()
        .map(|block| {
            let mut diff = StateDiff::default();
            for (addr, ch) in block {
                diff.accounts.insert(addr, ch.unwrap_or_default());
            }
            diff
        })
        .collect();
    run(diffs, 2);
}

/// `(account index, kind, slots)`; kind 0..6 update, 6 wipe-and-recreate, 7 delete.
type AccountOp = (u8, u8, Vec<(u8, u8)>);

fn diff_of(ops: Vec<AccountOp>) -> StateDiff {
    let mut diff = StateDiff::default();
    for (i, kind, slots) in ops {
        let address = Address::with_last_byte(i);
        let slots: Vec<(u64, u64)> = slots.into_iter().map(|(k, v)| (u64::from(k), u64::from(v % 3))).collect();
        let ch = match kind {
            7 => AccountChange::default(),
            6 => change(u64::from(i), &slots, true),
            k => change(u64::from(k) * 1000 + u64::from(i), &slots, false),
        };
        diff.accounts.insert(address, ch);
    }
    diff
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_blocks_match_full_recomputation(
        blocks in proptest::collection::vec(
            proptest::collection::vec((0u8..24, 0u8..8, proptest::collection::vec((0u8..40, any::<u8>()), 0..12)), 0..12),
            1..7,
        ),
        threads in 1usize..4,
    ) {
        run(blocks.into_iter().map(diff_of).collect(), threads);
    }
}

#[test]
fn storage_proofs_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let committer = IncrementalCommitter::new(1).expect("committer");
    let a = Address::repeat_byte(9);
    let slots: Vec<(u64, u64)> = (0..200).map(|i| (i, i * 7 + 1)).collect();
    let mut diff = StateDiff::default();
    diff.accounts.insert(a, change(1, &slots, false));
    let pre = store.reader().expect("reader");
    let mut w = store.writer().expect("writer");
    committer.commit(&pre, &mut w, &diff).expect("commit");
    w.commit().expect("db commit");
    let reader = store.reader().expect("reader");
    let storage_root = reader.account_record(a).expect("read").expect("exists").storage_root;
    for slot in [0u64, 17, 199, 200, 5000] {
        let key = U256::from(slot);
        let proof = cairn_trie::storage_proof(&reader, a, key).expect("proof");
        let value = slots.iter().find(|(k, _)| *k == slot).map(|(_, v)| alloy_rlp::encode(U256::from(*v)));
        verify_proof(storage_root, Nibbles::unpack(keccak256(B256::from(key))), value, &proof)
            .unwrap_or_else(|e| panic!("slot {slot}: {e:?}"));
    }
}
