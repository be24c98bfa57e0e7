//! The store-backed incremental committer agrees, block after block, with a full
//! recomputation from the flat state and with an in-memory reference state: inserts,
//! updates, slot deletions, storage wipes (self-destruct / re-creation), deleted
//! accounts and accounts emptied of storage. Proofs at the head and at every older
//! block (rebuilt from the state history) verify against that block's root.

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::{proof::verify_proof, Nibbles};
use cairn_primitives::{AccountChange, AccountState, InMemoryState, StateDiff};
use cairn_storage::Store;
use cairn_trie::{account_leaf, full_state_root, state_root_of, IncrementalCommitter, StateCommitter};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn change(balance: u64, slots: &[(u64, u64)], wiped: bool) -> AccountChange {
    AccountChange {
        info: Some(AccountState { nonce: 1, balance: U256::from(balance), ..Default::default() }),
        storage_wiped: wiped,
        storage: slots.iter().map(|(k, v)| (U256::from(*k), U256::from(*v))).collect(),
        original: Default::default(),
    }
}

/// What the diffs say about their slots' values before the block.
#[derive(Debug, Clone, Copy)]
enum Hints {
    /// Nothing (the committer reads old leaves back where it needs them).
    None,
    /// The true values, as the executor supplies them.
    True,
    /// Wrong values for some slots (a wrong hint must cost a read, never the root).
    Wrong,
}

/// `diff` with its slots' original values filled in from `before`, the state it
/// applies to, as `hints` says.
fn with_hints(mut diff: StateDiff, before: &InMemoryState, hints: Hints) -> StateDiff {
    for (address, change) in diff.accounts.iter_mut() {
        if change.storage_wiped || change.info.is_none() {
            continue;
        }
        for (n, slot) in change.storage.keys().enumerate() {
            let was = before.storage.get(address).and_then(|s| s.get(slot)).copied().unwrap_or_default();
            let hinted = match hints {
                Hints::None => continue,
                Hints::True => was,
                Hints::Wrong if n % 2 == 0 => was + U256::from(1),
                Hints::Wrong => was,
            };
            if !hinted.is_zero() {
                change.original.insert(*slot, hinted);
            }
        }
    }
    diff
}

/// Commits `blocks` one by one and checks every root three ways; then proves every
/// account and slot ever touched at every block, from the head's trie and the state
/// history, against that block's root and reference state.
fn run(blocks: Vec<StateDiff>, threads: usize, hints: Hints) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let committer = IncrementalCommitter::new(threads).expect("committer");
    let mut mem = InMemoryState::default();
    let mut history = Vec::new();
    for (number, diff) in blocks.iter().enumerate() {
        let diff = &with_hints(diff.clone(), &mem, hints);
        let pre = store.reader().expect("reader");
        let mut w = store.writer().expect("writer");
        let root = committer.commit(&pre, &mut w, diff).expect("commit");
        let header = alloy_consensus::Header { number: number as u64, state_root: root, ..Default::default() };
        w.put_block(&header, &[], &[]).expect("header");
        w.set_head(number as u64).expect("head");
        w.commit().expect("db commit");
        mem.apply(diff);
        assert_eq!(root, state_root_of(&mem), "incremental root differs from the reference state");
        let reader = store.reader().expect("reader");
        assert_eq!(root, full_state_root(&reader).expect("full root"), "differs from full recomputation");
        assert_eq!(root, committer.full_root(&reader).expect("parallel full root"), "differs from parallel full");
        history.push((root, mem.clone()));
    }
    let touched: BTreeSet<Address> = blocks.iter().flat_map(|d| d.accounts.keys().copied()).collect();
    let slots: BTreeSet<U256> =
        blocks.iter().flat_map(|d| d.accounts.values().flat_map(|c| c.storage.keys().copied())).collect();
    let slots: Vec<U256> = slots.into_iter().chain([U256::from(1_000_000)]).collect();
    for (block, (root, mem)) in history.iter().enumerate() {
        for address in &touched {
            let state = store.reader().expect("reader").into_state_at(block as u64).expect("retained");
            let got = cairn_trie::proofs(&state, *address, &slots).expect("proofs");
            let want = mem.accounts.get(address).copied();
            assert_eq!(got.record.map(|r| r.state), want, "account {address} at block {block}");
            let leaf = got.record.as_ref().map(account_leaf);
            verify_proof(*root, Nibbles::unpack(keccak256(address)), leaf, &got.account_proof)
                .unwrap_or_else(|e| panic!("account proof of {address} at block {block}: {e:?}"));
            let storage_root = got.record.map(|r| r.storage_root).unwrap_or(alloy_trie::EMPTY_ROOT_HASH);
            for (slot, (value, proof)) in slots.iter().zip(&got.storage) {
                let expected = mem.storage.get(address).and_then(|s| s.get(slot)).copied().unwrap_or_default();
                assert_eq!(*value, expected, "slot {slot} of {address} at block {block}");
                let leaf = (!value.is_zero()).then(|| alloy_rlp::encode(value));
                verify_proof(storage_root, Nibbles::unpack(keccak256(B256::from(*slot))), leaf, proof)
                    .unwrap_or_else(|e| panic!("slot {slot} of {address} at block {block}: {e:?}"));
            }
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
        .collect::<Vec<_>>();
    for hints in [Hints::None, Hints::True, Hints::Wrong] {
        run(diffs.clone(), 2, hints);
    }
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
        hints in 0u8..3,
    ) {
        let hints = [Hints::None, Hints::True, Hints::Wrong][usize::from(hints)];
        run(blocks.into_iter().map(diff_of).collect(), threads, hints);
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
    w.set_head(0).expect("head");
    w.commit().expect("db commit");
    let reader = store.reader().expect("reader");
    let storage_root = reader.account_record(a).expect("read").expect("exists").storage_root;
    for slot in [0u64, 17, 199, 200, 5000] {
        let key = U256::from(slot);
        let state = store.reader().expect("reader").into_state_at(0).expect("head");
        let proof = cairn_trie::proofs(&state, a, &[key]).expect("proof").storage.remove(0).1;
        let value = slots.iter().find(|(k, _)| *k == slot).map(|(_, v)| alloy_rlp::encode(U256::from(*v)));
        verify_proof(storage_root, Nibbles::unpack(keccak256(B256::from(key))), value, &proof)
            .unwrap_or_else(|e| panic!("slot {slot}: {e:?}"));
    }
}
