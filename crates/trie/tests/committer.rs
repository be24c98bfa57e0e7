//! The store-backed committer agrees with a from-scratch root over the same state, block
//! after block, including deletions and storage wipes.

use alloy_primitives::{Address, U256};
use cairn_primitives::{AccountChange, AccountState, InMemoryState, StateDiff};
use cairn_storage::Store;
use cairn_trie::{state_root_of, FullCommitter, StateCommitter};

fn change(balance: u64, slots: &[(u64, u64)], wiped: bool) -> AccountChange {
    AccountChange {
        info: Some(AccountState { nonce: 1, balance: U256::from(balance), ..Default::default() }),
        storage_wiped: wiped,
        storage: slots.iter().map(|(k, v)| (U256::from(*k), U256::from(*v))).collect(),
    }
}

#[test]
fn committer_root_equals_full_recomputation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let mut mem = InMemoryState::default();
    let a = Address::repeat_byte(1);
    let b = Address::repeat_byte(2);
    let c = Address::repeat_byte(3);
    let blocks = vec![
        vec![(a, Some(change(10, &[(1, 1), (2, 2)], false))), (b, Some(change(20, &[], false)))],
        vec![(a, Some(change(11, &[(1, 0), (3, 3)], false))), (c, Some(change(5, &[(9, 9)], false)))],
        vec![(c, Some(change(6, &[(7, 7)], true))), (b, None)],
        vec![(a, None)],
    ];
    for block in blocks {
        let mut diff = StateDiff::default();
        for (addr, ch) in block {
            diff.accounts.insert(addr, ch.unwrap_or_default());
        }
        let mut w = store.writer().expect("writer");
        let changed = w.apply_state(&diff).expect("apply");
        let root = FullCommitter.commit(&mut w, &changed).expect("commit");
        w.commit().expect("db commit");
        mem.apply(&diff);
        assert_eq!(root, state_root_of(&mem));
    }
}
