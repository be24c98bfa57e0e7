use super::*;
use alloy_primitives::{address, keccak256, Address, Bytes, B256, U256};
use cairn_primitives::{AccountChange, AccountState, StateDiff, StateView, StoredReceipt};
use redb::{ReadableTable, ReadableTableMetadata};

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    (dir, store)
}

fn diff_with(addr: Address, balance: u64, slots: &[(u64, u64)]) -> StateDiff {
    let mut diff = StateDiff::default();
    diff.accounts.insert(
        addr,
        AccountChange {
            info: Some(AccountState { balance: U256::from(balance), ..Default::default() }),
            storage_wiped: false,
            storage: slots.iter().map(|(k, v)| (U256::from(*k), U256::from(*v))).collect(),
            original: Default::default(),
        },
    );
    diff
}

#[test]
fn uncommitted_writer_leaves_nothing_behind() {
    let (_dir, store) = temp_store();
    let addr = address!("1000000000000000000000000000000000000001");
    let mut w = store.writer().expect("writer");
    w.apply_state(&diff_with(addr, 5, &[(1, 2)])).expect("apply");
    w.set_head(7).expect("head");
    drop(w);
    let r = store.reader().expect("reader");
    assert!(matches!(r.head(), Err(StoreError::Empty)));
    assert_eq!(r.account(addr).expect("read"), None);
}

#[test]
fn state_diff_applies_updates_deletes_and_wipes() {
    let (_dir, store) = temp_store();
    let addr = address!("1000000000000000000000000000000000000001");
    let mut w = store.writer().expect("writer");
    let changed = w.apply_state(&diff_with(addr, 5, &[(1, 2), (3, 4)])).expect("apply");
    assert_eq!(changed.len(), 1);
    w.set_head(1).expect("head");
    w.commit().expect("commit");

    let r = store.reader().expect("reader");
    assert_eq!(r.account(addr).expect("read").map(|a| a.balance), Some(U256::from(5)));
    assert_eq!(r.storage(addr, U256::from(3)).expect("slot"), U256::from(4));

    // zero deletes a slot
    let mut w = store.writer().expect("writer");
    w.apply_state(&diff_with(addr, 6, &[(3, 0)])).expect("apply");
    assert_eq!(w.hashed_storage(&codec::hashed_address(addr)).expect("scan").len(), 1);
    w.commit().expect("commit");
    let r = store.reader().expect("reader");
    assert_eq!(r.storage(addr, U256::from(3)).expect("slot"), U256::ZERO);
    assert_eq!(r.storage(addr, U256::from(1)).expect("slot"), U256::from(2));

    // a wipe clears all storage before new slots land
    let mut w = store.writer().expect("writer");
    let mut diff = diff_with(addr, 6, &[(9, 9)]);
    diff.accounts.get_mut(&addr).expect("acc").storage_wiped = true;
    w.apply_state(&diff).expect("apply");
    w.commit().expect("commit");
    let r = store.reader().expect("reader");
    assert_eq!(r.storage(addr, U256::from(1)).expect("slot"), U256::ZERO);
    assert_eq!(r.storage(addr, U256::from(9)).expect("slot"), U256::from(9));

    // deletion removes the account and its storage
    let mut w = store.writer().expect("writer");
    let mut diff = StateDiff::default();
    diff.accounts.insert(addr, AccountChange { info: None, ..Default::default() });
    w.apply_state(&diff).expect("apply");
    w.commit().expect("commit");
    let r = store.reader().expect("reader");
    assert_eq!(r.account(addr).expect("read"), None);
    assert_eq!(r.storage(addr, U256::from(9)).expect("slot"), U256::ZERO);
}

#[test]
fn blocks_receipts_and_log_index_round_trip() {
    let (_dir, store) = temp_store();
    let tx_hash = B256::repeat_byte(7);

    let emitter = address!("2000000000000000000000000000000000000002");
    let topic = B256::repeat_byte(9);
    let log = alloy_primitives::Log::new_unchecked(emitter, vec![topic], Bytes::from_static(b"x"));
    let receipt = StoredReceipt {
        tx_type: 2,
        success: true,
        cumulative_gas_used: 21_000,
        gas_used: 21_000,
        effective_gas_price: 7,
        from: Address::repeat_byte(1),
        contract_address: Address::ZERO,
        first_log_index: 0,
        logs: vec![log],
    };
    let header = alloy_consensus::Header { number: 3, ..Default::default() };
    let mut w = store.writer().expect("writer");
    let hash = w
        .put_block(
            &header,
            &[(tx_hash, Address::repeat_byte(1), Bytes::from_static(&[1, 2, 3]))],
            std::slice::from_ref(&receipt),
        )
        .expect("put");
    w.set_head(3).expect("head");
    w.commit().expect("commit");

    let r = store.reader().expect("reader");
    assert_eq!(r.head().expect("head"), 3);
    assert_eq!(r.block_number(hash).expect("hash"), Some(3));
    assert_eq!(r.header(3).expect("header").map(|h| h.number), Some(3));
    assert_eq!(r.block_tx_hashes(3).expect("body"), vec![tx_hash]);
    assert_eq!(r.receipt(tx_hash).expect("receipt"), Some(receipt.clone()));
    assert_eq!(r.tx(tx_hash).expect("tx").map(|t| t.index), Some(0));
    assert_eq!(r.blocks_with_log_address(emitter, 0, 10).expect("idx"), vec![3]);
    assert_eq!(r.blocks_with_log_topic0(topic, 4, 10).expect("idx"), Vec::<u64>::new());
    assert_eq!(r.blocks_with_log_topic0(topic, 3, 3).expect("idx"), vec![3]);

    // Receipts are stored per block and index: blocks on either side keep their own.
    let other = |n: u8| StoredReceipt { cumulative_gas_used: u64::from(n), logs: vec![], ..receipt.clone() };
    let mut w = store.writer().expect("writer");
    for number in [2u64, 4] {
        let txs: Vec<_> = (0..3u8)
            .map(|i| {
                (B256::repeat_byte(0x40 + number as u8 * 4 + i), Address::repeat_byte(1), Bytes::from_static(&[1]))
            })
            .collect();
        let receipts: Vec<_> = (0..3u8).map(|i| other(number as u8 * 10 + i)).collect();
        let header = alloy_consensus::Header { number, ..Default::default() };
        w.put_block(&header, &txs, &receipts).expect("put");
    }
    w.commit().expect("commit");
    let r = store.reader().expect("reader");
    assert_eq!(r.block_receipts(3).expect("receipts"), vec![receipt.clone()]);
    let gas = |n: u64| r.block_receipts(n).expect("receipts").iter().map(|x| x.cumulative_gas_used).collect::<Vec<_>>();
    assert_eq!(gas(2), vec![20, 21, 22]);
    assert_eq!(gas(4), vec![40, 41, 42]);
    assert_eq!(r.receipt_at(4, 1).expect("receipt").map(|x| x.cumulative_gas_used), Some(41));
    assert_eq!(r.receipt_at(4, 3).expect("receipt"), None);
    assert_eq!(r.receipt(B256::repeat_byte(0x40 + 8 + 2)).expect("receipt").map(|x| x.cumulative_gas_used), Some(22));
    assert!(r.block_receipts(5).expect("receipts").is_empty());
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        let mut w = store.writer().expect("writer");
        w.set_head(42).expect("head");
        w.commit().expect("commit");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.reader().expect("r").head().expect("head"), 42);
}

/// Blocks 0..=5 of one account: updates, a storage wipe with new slots, deletion and
/// re-creation. Returns `(balance, [slot 1, slot 2, slot 3])` per block (`None`: absent).
fn history_scenario(store: &Store) -> Vec<(Option<u64>, [u64; 3])> {
    let addr = address!("1000000000000000000000000000000000000001");
    let mut blocks = vec![diff_with(addr, 1, &[(1, 10)]), diff_with(addr, 2, &[(1, 11), (2, 20)])];
    let mut wipe = diff_with(addr, 3, &[(3, 30)]);
    wipe.accounts.get_mut(&addr).expect("acc").storage_wiped = true;
    blocks.push(wipe);
    let mut delete = StateDiff::default();
    delete.accounts.insert(addr, AccountChange { info: None, ..Default::default() });
    blocks.push(delete);
    blocks.push(diff_with(addr, 5, &[(1, 50)]));
    blocks.push(diff_with(addr, 6, &[(1, 0), (2, 60)]));
    for (number, diff) in blocks.iter().enumerate() {
        let mut w = store.writer().expect("writer");
        w.apply_state(diff).expect("apply");
        w.set_head(number as u64).expect("head");
        w.commit().expect("commit");
    }
    vec![
        (Some(1), [10, 0, 0]),
        (Some(2), [11, 20, 0]),
        (Some(3), [0, 0, 30]),
        (None, [0, 0, 0]),
        (Some(5), [50, 0, 0]),
        (Some(6), [0, 60, 0]),
    ]
}

fn state_of(store: &Store, block: u64) -> Result<(Option<u64>, [u64; 3])> {
    let addr = address!("1000000000000000000000000000000000000001");
    let at = store.reader()?.into_state_at(block)?;
    let balance = at.account(addr).expect("account").map(|a| a.balance.to::<u64>());
    let slot = |s: u64| at.storage(addr, U256::from(s)).expect("slot").to::<u64>();
    Ok((balance, [slot(1), slot(2), slot(3)]))
}

#[test]
fn state_history_reads_every_retained_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open").with_state_history(100);
    let expected = history_scenario(&store);
    for (block, want) in expected.iter().enumerate() {
        assert_eq!(&state_of(&store, block as u64).expect("retained"), want, "state at block {block}");
    }
    let r = store.reader().expect("reader");
    assert_eq!(r.history_from().expect("from"), 0);
    // The account's value as of block 2, seen from the head, through the changesets.
    let changed = r.accounts_changed_after(2, 10).expect("changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].1.map(|a| a.state.balance), Some(U256::from(3)));
    assert!(matches!(r.accounts_changed_after(0, 0), Err(StoreError::TooFarBack { .. })));
    let slots = r.slots_changed_after(&changed[0].0, 2, 100).expect("slots");
    let values: Vec<u64> = slots.iter().map(|(_, v)| v.to::<u64>()).collect();
    let mut want: Vec<u64> = vec![0, 0, 30];
    want.sort_unstable();
    let mut got = values.clone();
    got.sort_unstable();
    assert_eq!(got, want, "slots 1, 2, 3 changed after block 2, valued as of block 2");
}

#[test]
fn state_history_is_pruned_to_its_depth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open").with_state_history(2);
    let expected = history_scenario(&store);
    let r = store.reader().expect("reader");
    assert_eq!(r.history_from().expect("from"), 3);
    assert_eq!(r.accounts_changed_after(0, 10).expect("changesets").len(), 1);
    for block in 0..3u64 {
        assert!(
            matches!(state_of(&store, block), Err(StoreError::Pruned { block: b, oldest: 3 }) if b == block),
            "block {block} is pruned"
        );
    }
    for block in 3..6u64 {
        assert_eq!(state_of(&store, block).expect("retained"), expected[block as usize], "state at block {block}");
    }
    // No history at all: only the head is readable, and nothing is kept.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open").with_state_history(0);
    let expected = history_scenario(&store);
    assert_eq!(state_of(&store, 5).expect("head"), expected[5]);
    assert!(matches!(state_of(&store, 4), Err(StoreError::Pruned { .. })));
    let r = store.reader().expect("reader");
    assert!(r.slots_changed_after(&[0; 32], 0, 10).expect("none").is_empty());
}

/// Accounts of the long history test: each holds slots `1..=SLOTS`.
const SLOTS: u64 = 4;
type Model = std::collections::BTreeMap<Address, Option<(u64, [u64; SLOTS as usize])>>;

/// 130 blocks over six accounts, from a fixed seed: account 0 changes in every block (a
/// hot key, one index entry per batch), the others now and then, with deletions,
/// re-creations, storage wipes and slots cleared. Checks, from the head, the state of
/// every retained block (indexed batches, the unindexed tail, and the block right before
/// a change) and the changed-key replays, then that pruning deleted whole batches.
#[test]
fn long_history_reads_every_retained_block_through_the_batch_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let depth = 70;
    let store = Store::open(&dir.path().join("db")).expect("open").with_state_history(depth);
    let addresses: Vec<Address> = (1..=6u8).map(Address::repeat_byte).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut model: Model = addresses.iter().map(|a| (*a, None)).collect();
    let mut snapshots = Vec::new();
    let mut touched = Vec::new();
    let head = 130u64;
    for number in 0..=head {
        let mut diff = StateDiff::default();
        for (i, address) in addresses.iter().enumerate() {
            if number > 0 && i > 0 && next(5) != 0 {
                continue;
            }
            let entry = model.get_mut(address).expect("modelled");
            let change = if entry.is_some() && next(8) == 0 {
                *entry = None;
                AccountChange { info: None, ..Default::default() }
            } else {
                let wiped = entry.is_some() && next(10) == 0;
                let (balance, slots) = entry.get_or_insert((0, [0; SLOTS as usize]));
                *balance = number * 100 + i as u64;
                if wiped {
                    *slots = [0; SLOTS as usize];
                }
                let mut storage = std::collections::BTreeMap::new();
                for slot in 1..=SLOTS {
                    if next(2) == 0 {
                        let value = if next(4) == 0 { 0 } else { 1 + next(1_000) };
                        slots[slot as usize - 1] = value;
                        storage.insert(U256::from(slot), U256::from(value));
                    }
                }
                AccountChange {
                    info: Some(AccountState { balance: U256::from(*balance), ..Default::default() }),
                    storage_wiped: wiped,
                    storage,
                    original: Default::default(),
                }
            };
            diff.accounts.insert(*address, change);
        }
        touched.push(diff.accounts.keys().copied().collect::<Vec<_>>());
        let mut w = store.writer().expect("writer");
        w.apply_state(&diff).expect("apply");
        w.set_head(number).expect("head");
        w.commit().expect("commit");
        snapshots.push(model.clone());
    }

    let r = store.reader().expect("reader");
    let oldest = r.history_from().expect("from");
    assert_eq!(oldest, head - depth);
    for block in oldest..=head {
        let at = store.reader().expect("reader").into_state_at(block).expect("retained");
        for address in &addresses {
            let want = snapshots[block as usize][address];
            let account = at.account(*address).expect("account");
            assert_eq!(account.map(|a| a.balance.to::<u64>()), want.map(|w| w.0), "{address} at block {block}");
            for slot in 1..=SLOTS {
                let value = at.storage(*address, U256::from(slot)).expect("slot").to::<u64>();
                assert_eq!(value, want.map_or(0, |w| w.1[slot as usize - 1]), "{address} slot {slot} at {block}");
            }
        }
        let changed = r.accounts_changed_after(block, 100).expect("replay");
        let mut want: Vec<[u8; 32]> =
            touched[block as usize + 1..].iter().flatten().map(|a| codec::hashed_address(*a)).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(changed.iter().map(|(k, _)| *k).collect::<Vec<_>>(), want, "accounts changed after {block}");
        for (hashed, record) in changed {
            let address = addresses.iter().find(|a| codec::hashed_address(**a) == hashed).expect("known");
            let want = snapshots[block as usize][address].map(|w| w.0);
            assert_eq!(record.map(|r| r.state.balance.to::<u64>()), want, "replayed {address} at {block}");
            for (slot, value) in r.slots_changed_after(&hashed, block, 100).expect("slots") {
                let index = (1..=SLOTS).find(|s| keccak256(B256::from(U256::from(*s))) == slot).expect("slot");
                let want = snapshots[block as usize][address].map_or(0, |w| w.1[index as usize - 1]);
                assert_eq!(value.to::<u64>(), want, "replayed {address} slot {index} at {block}");
            }
        }
    }
    assert!(matches!(state_of(&store, oldest - 1), Err(StoreError::Pruned { .. })));

    // Whole batches are deleted once half a batch past the window: 1..=32 went at block
    // 118, 33..=64 stays (its end plus half a batch is above the cutoff 60).
    let first = r.changesets.first().expect("read").map(|(k, _)| k.value());
    assert_eq!(first, Some(HISTORY_BATCH + 1), "the oldest batch is pruned, the next is not");
    assert!(r.changesets.len().expect("len") <= depth + HISTORY_BATCH + HISTORY_BATCH / 2);
    let hot: [u8; 40] = codec::history_key(&codec::hashed_address(addresses[0]), HISTORY_BATCH);
    assert!(r.account_history.get(hot).expect("read").is_none(), "index of the pruned batch is gone");
    let hot: [u8; 40] = codec::history_key(&codec::hashed_address(addresses[0]), 2 * HISTORY_BATCH);
    assert_eq!(r.account_history.get(hot).expect("read").map(|v| v.value()), Some(u32::MAX), "changed every block");
}

/// A data directory written with another layout version is refused with a message
/// naming both versions, before redb can object to a table's key type: here the store
/// of format 2 had `[u8; 32]`-keyed tables.
#[test]
fn a_store_of_another_format_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let old: TableDefinition<[u8; 32], u64> = TableDefinition::new("hash_to_number");
            txn.open_table(old).expect("old table").insert([7u8; 32], 1).expect("insert");
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert(META_CHAIN, b"{}".as_slice()).expect("chain");
            meta.insert(META_FORMAT, 2u32.to_be_bytes().as_slice()).expect("format");
        }
        txn.commit().expect("commit");
    }
    let err = Store::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains("store format 2")
            && err.contains(&format!("uses {STORE_FORMAT}"))
            && err.contains("fresh --datadir"),
        "{err}"
    );

    // Without a recorded format (no chain written), the old key type is still named.
    let unrecorded = dir.path().join("unrecorded");
    {
        let db = Database::create(&unrecorded).expect("create");
        let txn = db.begin_write().expect("write");
        let old: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("accounts");
        txn.open_table(old).expect("old table");
        txn.commit().expect("commit");
    }
    let err = Store::open(&unrecorded).err().expect("refused").to_string();
    assert!(err.contains("table accounts has another layout") && err.contains("fresh --datadir"), "{err}");

    // A store without a chain yet, and one of the current format, reopen.
    let current = dir.path().join("current");
    drop(Store::open(&current).expect("new store opens"));
    let store = Store::open(&current).expect("reopens before genesis");
    let mut w = store.writer().expect("writer");
    w.set_chain_config(&cairn_primitives::ChainConfig::default()).expect("chain");
    w.commit().expect("commit");
    drop(store);
    Store::open(&current).expect("the current format reopens");
}
