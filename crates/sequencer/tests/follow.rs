//! A rollup follower's chain driven directly: what `simulate_parts` promises is what
//! `apply_decided` then gives, and a retraction marks and streams what it retracts.

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use cairn_executor::SequentialExecutor;
use cairn_mempool::PoolConfig;
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, DEV_MNEMONIC};
use cairn_sequencer::{apply_decided, seal_next, simulate_parts, Chain, ChainEvent, Tier};
use cairn_storage::Store;
use cairn_trie::IncrementalCommitter;
use cairn_workload::TxFactory;
use std::sync::Arc;

fn open(dir: &std::path::Path) -> Arc<Chain> {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let config = ChainConfig { dev: false, ..ChainConfig::default() };
    Chain::open(
        Store::open(&dir.join("db")).expect("store"),
        &dir.join("pool.wal"),
        config,
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        None,
    )
    .expect("chain")
}

fn raw(tx: &cairn_primitives::TxEnvelope) -> Bytes {
    tx.encoded_2718().into()
}

#[tokio::test]
async fn simulated_parts_are_what_the_decided_block_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = open(dir.path());
    let s: Vec<_> = dev_accounts(DEV_MNEMONIC, 3).expect("derive").into_iter().map(|a| a.signer).collect();
    let f = TxFactory::new(ChainConfig::default().chain_id);
    let to = Address::repeat_byte(0x44);
    let block1 = vec![raw(&f.transfer_eth(&s[0], 0, to, U256::from(1)).expect("sign"))];
    apply_decided(&chain, 1, 1_000, &block1).expect("block 1");
    // Block 2: two transactions already in it (one with a nonce gap, rejected), then
    // the parts: a transfer that depends on the first, a creation that reverts, and
    // one with a nonce gap.
    let prior = vec![
        raw(&f.transfer_eth(&s[0], 1, to, U256::from(2)).expect("sign")),
        raw(&f.transfer_eth(&s[1], 5, to, U256::from(2)).expect("sign")),
    ];
    let reverting_code = Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xfd]);
    let parts = vec![
        raw(&f.transfer_eth(&s[0], 2, to, U256::from(3)).expect("sign")),
        raw(&f.create(&s[2], 0, reverting_code, 100_000).expect("sign")),
        raw(&f.transfer_eth(&s[1], 7, to, U256::from(3)).expect("sign")),
    ];
    let tip = chain.tip().number;
    let simulated = simulate_parts(&chain, 2, 1_001, &prior, &parts).expect("simulate");
    assert_eq!(chain.tip().number, tip, "a simulation keeps nothing");
    assert!(simulate_parts(&chain, 3, 1_001, &prior, &parts).is_err(), "only on top of the newest block");
    assert_eq!(simulated.len(), 3);
    assert!(simulated[0].as_ref().is_ok_and(|r| r.success));
    assert!(simulated[1].as_ref().is_ok_and(|r| !r.success), "the creation reverts");
    assert!(simulated[2].as_ref().is_err_and(|e| e.contains("nonce")), "{:?}", simulated[2]);

    let all: Vec<Bytes> = prior.iter().chain(&parts).cloned().collect();
    let applied = apply_decided(&chain, 2, 1_001, &all).expect("block 2");
    assert_eq!(applied.included, 3);
    let rejected: Vec<B256> = applied.rejected.iter().map(|(h, _)| *h).collect();
    assert_eq!(rejected, vec![keccak256(&prior[1]), keccak256(&parts[2])]);
    while seal_next(&chain).expect("seal").is_some() {}
    let reader = chain.store.reader().expect("reader");
    for (part, sim) in parts.iter().zip(&simulated).take(2) {
        let stored = reader.receipt(keccak256(part)).expect("read").expect("included");
        assert_eq!(&stored, sim.as_ref().expect("receipt"), "the receipt promised is the one executed");
    }
}

#[tokio::test]
async fn a_retraction_marks_every_later_transaction_and_is_streamed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = open(dir.path());
    chain.track_firm();
    let s: Vec<_> = dev_accounts(DEV_MNEMONIC, 3).expect("derive").into_iter().map(|a| a.signer).collect();
    let f = TxFactory::new(ChainConfig::default().chain_id);
    let to = Address::repeat_byte(0x45);
    let mut hashes = Vec::new();
    for n in 1..=3u64 {
        let tx = raw(&f.transfer_eth(&s[0], n - 1, to, U256::from(n)).expect("sign"));
        hashes.push(keccak256(&tx));
        apply_decided(&chain, n, 1_000 + n, &[tx]).expect("block");
    }
    while seal_next(&chain).expect("seal").is_some() {}
    let da = |height| cairn_da::DaRef { backend: "local".into(), height, commitment: B256::ZERO, size: 1 };
    chain.mark_firm(1, 1, da(1)).expect("firm");
    let mut events = chain.subscribe();
    let r = chain.retract(1, da(2), "block 2 differs".into()).expect("retract");
    assert_eq!((r.block, r.through), (1, 3));
    let retracted: Vec<B256> = r.txs.iter().map(|(h, _, _)| *h).collect();
    assert_eq!(retracted, hashes[1..].to_vec(), "blocks 2 and 3; block 1 is firm already");
    assert_eq!(chain.status(&hashes[0]).expect("status").map(|s| s.tier), Some(Tier::Firm));
    for h in &hashes[1..] {
        let st = chain.status(h).expect("status").expect("tracked");
        assert_eq!(st.tier, Tier::Retracted);
        assert_eq!(st.reason.as_deref(), Some("block 2 differs"));
    }
    let event = loop {
        match events.try_recv().expect("an event") {
            ChainEvent::Retracted(r) => break r,
            _ => continue,
        }
    };
    assert_eq!(event.txs.len(), 2);
    assert_eq!(chain.retractions().len(), 1);
    assert_eq!(chain.finalized_through(3), 1, "nothing after the retraction is finalized");
}
