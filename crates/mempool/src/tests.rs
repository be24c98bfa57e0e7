use super::*;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_primitives::U256;
use cairn_workload::{bench_signer, TxFactory};
use proptest::prelude::*;

fn tx(signer: u64, nonce: u64, tip_gwei: u128) -> RecoveredTx {
    let f = TxFactory {
        chain_id: 1,
        max_fee_per_gas: 100_000_000_000 + tip_gwei,
        max_priority_fee_per_gas: tip_gwei * 1_000_000_000,
    };
    f.transfer_eth(&bench_signer(signer), nonce, Address::ZERO, U256::from(1))
        .expect("sign")
        .try_into_recovered()
        .expect("recover")
}

#[test]
fn future_nonces_wait_for_the_gap_to_fill() {
    let mut pool = Mempool::default();
    let a = tx(1, 2, 1);
    let sender = a.signer();
    assert!(!pool.insert(a, 0).expect("insert").ready);
    assert_eq!(pool.pending_nonce(&sender), Some(0));
    assert!(pool.best(0, 10).is_empty());
    assert!(pool.insert(tx(1, 0, 1), 0).expect("insert").ready);
    assert!(pool.insert(tx(1, 1, 1), 0).expect("insert").ready);
    assert_eq!(pool.pending_nonce(&sender), Some(3));
    let nonces: Vec<u64> = pool.best(0, 10).iter().map(|t| t.nonce).collect();
    assert_eq!(nonces, vec![0, 1, 2]);
}

#[test]
fn best_orders_by_tip_and_keeps_sender_nonce_order() {
    let mut pool = Mempool::default();
    pool.insert(tx(1, 0, 1), 0).expect("insert");
    pool.insert(tx(1, 1, 50), 0).expect("insert");
    pool.insert(tx(2, 0, 5), 0).expect("insert");
    pool.insert(tx(3, 0, 3), 0).expect("insert");
    let order: Vec<(u64, u128)> = pool.best(0, 10).iter().map(|t| (t.nonce, t.max_tip / 1_000_000_000)).collect();
    assert_eq!(order, vec![(0, 5), (0, 3), (0, 1), (1, 50)]);
    // a fee cap below the base fee is not offered
    assert!(pool.best(200_000_000_000, 10).is_empty());
}

#[test]
fn duplicates_low_nonces_and_underpriced_replacements_are_rejected() {
    let mut pool = Mempool::default();
    let first = tx(1, 0, 10);
    pool.insert(first.clone(), 0).expect("insert");
    assert_eq!(pool.insert(first, 0), Err(PoolError::AlreadyKnown));
    assert!(matches!(pool.insert(tx(1, 0, 11), 1), Err(PoolError::NonceTooLow { tx: 0, state: 1, .. })));
    // +5% tip is not enough, +10% on both caps is
    let f = |tip: u128, cap: u128| {
        TxFactory { chain_id: 1, max_fee_per_gas: cap, max_priority_fee_per_gas: tip }
            .transfer_eth(&bench_signer(1), 0, Address::repeat_byte(9), U256::from(1))
            .expect("sign")
            .try_into_recovered()
            .expect("recover")
    };
    let base_cap = 100_000_000_000 + 10;
    assert_eq!(pool.insert(f(10_500_000_000, base_cap * 2), 0), Err(PoolError::ReplacementUnderpriced));
    let ok = pool.insert(f(11_000_000_000, base_cap * 11 / 10 + 1), 0).expect("replace");
    assert!(ok.replaced.is_some());
    assert_eq!(pool.len(), 1);
}

#[test]
fn full_pool_evicts_the_cheapest_tail_or_rejects() {
    let mut pool = Mempool::new(PoolConfig { max_txs: 3, max_per_sender: 2, price_bump_percent: 10 });
    pool.insert(tx(1, 0, 5), 0).expect("insert");
    pool.insert(tx(2, 0, 2), 0).expect("insert");
    pool.insert(tx(3, 1, 9), 0).expect("future");
    let err = pool.insert(tx(1, 5, 1), 0).expect_err("too far ahead");
    assert!(matches!(err, PoolError::SenderFull { pooled: 1, limit: 2, tx: 5, state: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("tx nonce 5 is 2 or more ahead of its state nonce 0 (it has 1 pooled"), "{err}");
    // full: the future tail (sender 3) goes first even though its tip is highest
    let ins = pool.insert(tx(4, 0, 3), 0).expect("evicts");
    assert_eq!(ins.evicted.len(), 1);
    assert_eq!(pool.len(), 3);
    // then the cheapest ready tail (sender 2, tip 2), but not for a cheaper newcomer
    assert_eq!(pool.insert(tx(5, 0, 1), 0), Err(PoolError::PoolFull));
    pool.insert(tx(5, 0, 4), 0).expect("evicts sender 2");
    assert!(pool.best(0, 10).iter().all(|t| t.max_tip != 2_000_000_000));
}

#[test]
fn used_nonces_drop_stale_transactions() {
    let mut pool = Mempool::default();
    for n in 0..4 {
        pool.insert(tx(1, n, 1), 0).expect("insert");
    }
    let sender = bench_signer(1).address();
    assert_eq!(pool.on_nonces_used([(sender, 2)]).len(), 2);
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.best(0, 10).first().map(|t| t.nonce), Some(2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
    #[test]
    fn best_is_always_nonce_contiguous_per_sender(ops in proptest::collection::vec((0u64..4, 0u64..6, 1u128..20), 1..40)) {
        let mut pool = Mempool::new(PoolConfig { max_txs: 12, max_per_sender: 5, price_bump_percent: 10 });
        for (s, n, tip) in ops {
            let _ = pool.insert(tx(s, n, tip), 0);
            prop_assert!(pool.len() <= 12);
        }
        let mut next: HashMap<Address, u64> = HashMap::new();
        for t in pool.best(0, 100) {
            let expected = next.entry(t.sender).or_insert(0);
            prop_assert_eq!(t.nonce, *expected);
            *expected += 1;
        }
    }
}

#[test]
fn ready_and_queued_are_told_apart_per_sender() {
    let mut pool = Mempool::new(PoolConfig::default());
    pool.insert(tx(1, 0, 5), 0).expect("insert");
    pool.insert(tx(1, 1, 5), 0).expect("insert");
    pool.insert(tx(1, 3, 5), 0).expect("gap");
    pool.insert(tx(2, 4, 5), 0).expect("future");
    assert_eq!(pool.counts(), (2, 2));
    let one: Vec<(u64, bool)> = pool.of_sender(&bench_signer(1).address()).iter().map(|(t, r)| (t.nonce, *r)).collect();
    assert_eq!(one, [(0, true), (1, true), (3, false)]);
    assert_eq!(pool.senders().count(), 2);
}
