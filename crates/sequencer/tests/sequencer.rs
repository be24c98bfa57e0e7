//! Ingress, builder and restart behaviour of the sequencer, driven directly (no timers).

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, U256};
use cairn_executor::SequentialExecutor;
use cairn_mempool::{PoolConfig, PoolError};
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, StateView, DEV_MNEMONIC};
use cairn_sequencer::{build_block, BuilderConfig, Chain, Ingress, IngressError, Step, Tier};
use cairn_storage::Store;
use cairn_trie::IncrementalCommitter;
use cairn_workload::{Artifacts, TxFactory};
use std::sync::Arc;

fn open(dir: &std::path::Path) -> Arc<Chain> {
    open_with(dir, ChainConfig::default())
}

fn open_with(dir: &std::path::Path, config: ChainConfig) -> Arc<Chain> {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let store = Store::open(&dir.join("db")).expect("store");
    Chain::open(
        store,
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

fn signers() -> Vec<alloy_signer_local::PrivateKeySigner> {
    dev_accounts(DEV_MNEMONIC, 3).expect("derive").into_iter().map(|a| a.signer).collect()
}

#[tokio::test]
async fn accepted_transactions_are_built_into_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = open(dir.path());
    let ingress = Ingress::new(chain.clone());
    let s = signers();
    let f = TxFactory::new(31337);
    let to = Address::repeat_byte(0x33);
    for nonce in 0..3 {
        let tx = f.transfer_eth(&s[0], nonce, to, U256::from(7)).expect("sign");
        ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    }
    let block = build_block(&chain, &BuilderConfig::default()).expect("build").expect("a block");
    assert_eq!(block.header.number, 1);
    assert_eq!(block.tx_hashes.len(), 3);
    assert_eq!(block.header.gas_used, 63_000);
    assert!(chain.pool.lock().is_empty());
    let reader = chain.store.reader().expect("reader");
    assert_eq!(reader.account(to).expect("read").map(|a| a.balance), Some(U256::from(21)));
    // nothing pending: no empty block
    assert!(build_block(&chain, &BuilderConfig::default()).expect("build").is_none());
}

#[tokio::test]
async fn bad_transactions_get_geth_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = open(dir.path());
    let ingress = Ingress::new(chain.clone());
    let s = signers();
    let f = TxFactory::new(31337);
    let to = Address::repeat_byte(1);
    let submit = |tx: cairn_primitives::TxEnvelope| {
        let ingress = ingress.clone();
        async move { ingress.submit(&tx.encoded_2718()).await }
    };

    let wrong_chain = TxFactory::new(1).transfer_eth(&s[0], 0, to, U256::from(1)).expect("sign");
    assert!(matches!(submit(wrong_chain).await, Err(IngressError::ChainId { have: 1, want: 31337 })));

    let good = f.transfer_eth(&s[0], 0, to, U256::from(1)).expect("sign");
    submit(good.clone()).await.expect("accepted");
    assert_eq!(submit(good).await, Err(IngressError::Pool(PoolError::AlreadyKnown)));
    let same_nonce = f.transfer_eth(&s[0], 0, to, U256::from(2)).expect("sign");
    assert_eq!(submit(same_nonce).await, Err(IngressError::Pool(PoolError::ReplacementUnderpriced)));
    build_block(&chain, &BuilderConfig::default()).expect("build");
    let stale = f.transfer_eth(&s[0], 0, to, U256::from(3)).expect("sign");
    assert!(matches!(submit(stale).await, Err(IngressError::Pool(PoolError::NonceTooLow { tx: 0, state: 1, .. }))));

    let rich = U256::from(10u64).pow(U256::from(30u64));
    let broke = f.transfer_eth(&s[1], 0, to, rich).expect("sign");
    let msg = submit(broke).await.expect_err("insufficient").to_string();
    assert!(msg.starts_with("insufficient funds for gas * price + value"), "{msg}");

    let low_gas =
        f.sign(&s[1], 0, alloy_primitives::TxKind::Call(to), U256::ZERO, Default::default(), 20_000).expect("sign");
    assert_eq!(submit(low_gas).await, Err(IngressError::IntrinsicGas { gas: 20_000, needed: 21_000 }));

    let huge_gas =
        f.sign(&s[1], 0, alloy_primitives::TxKind::Call(to), U256::ZERO, Default::default(), 40_000_000).expect("sign");
    assert!(matches!(submit(huge_gas).await, Err(IngressError::GasLimitTooHigh { .. })));

    let big = f
        .sign(&s[1], 0, alloy_primitives::TxKind::Call(to), U256::ZERO, vec![1u8; 140_000].into(), 29_000_000)
        .expect("sign");
    assert!(matches!(submit(big).await, Err(IngressError::Oversized { limit: 131_072, .. })));

    let cheap = TxFactory { chain_id: 31337, max_fee_per_gas: 1, max_priority_fee_per_gas: 1 };
    let underpaid = cheap.transfer_eth(&s[1], 0, to, U256::from(1)).expect("sign");
    assert!(matches!(submit(underpaid).await, Err(IngressError::FeeCapTooLow { .. })));

    let mut bad_sig = f.transfer_eth(&s[1], 0, to, U256::from(1)).expect("sign").encoded_2718();
    let n = bad_sig.len();
    bad_sig[n - 40] ^= 0xff; // corrupt r
    let err = ingress.submit(&bad_sig).await.expect_err("bad signature");
    assert!(
        matches!(
            err,
            IngressError::InvalidSignature(_) | IngressError::Decode(_) | IngressError::InsufficientFunds { .. }
        ),
        "{err}"
    );

    assert!(matches!(ingress.submit(&[0x02, 0xc0]).await, Err(IngressError::Decode(_))));
    // the node is still fine
    let next = f.transfer_eth(&s[0], 1, to, U256::from(1)).expect("sign");
    submit(next).await.expect("still accepting");
}

#[tokio::test]
async fn pending_transactions_and_blocks_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = signers();
    let f = TxFactory::new(31337);
    let art = Artifacts::load_default().expect("artifacts");
    let gap_hash = *f.transfer_eth(&s[1], 2, Address::repeat_byte(5), U256::from(9)).expect("sign").tx_hash();
    let received: [Vec<Step>; 2];
    let (pending_hash, head_hash) = {
        let chain = open(dir.path());
        let ingress = Ingress::new(chain.clone());
        let deploy = f.create(&s[0], 0, art.token_deploy("T", "T"), 2_000_000).expect("sign");
        ingress.submit(&deploy.encoded_2718()).await.expect("accepted");
        build_block(&chain, &BuilderConfig::default()).expect("build").expect("block");
        let later = f.transfer_eth(&s[1], 0, Address::repeat_byte(5), U256::from(9)).expect("sign");
        let gap = f.transfer_eth(&s[1], 2, Address::repeat_byte(5), U256::from(9)).expect("sign");
        let h = ingress.submit(&later.encoded_2718()).await.expect("accepted");
        let g = ingress.submit(&gap.encoded_2718()).await.expect("accepted (future)");
        let history = |hash| chain.status(&hash).expect("status").expect("known").history;
        received = [history(h), history(g)];
        (h, chain.latest().1)
    };
    let chain = open(dir.path());
    // Both pending transactions keep their acceptance time across the restart.
    for (hash, before) in [pending_hash, gap_hash].iter().zip(&received) {
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(before[0].tier, Tier::Received);
        let after = chain.status(hash).expect("status").expect("known");
        assert_eq!((after.tier, &after.history), (Tier::Received, before), "{hash}");
    }
    assert_eq!(chain.latest().1, head_hash);
    assert_eq!(chain.pool.lock().len(), 2);
    assert!(chain.pool.lock().contains(&pending_hash));
    let token = s[0].address().create(0);
    let reader = chain.store.reader().expect("reader");
    assert!(!reader.code(reader.account(token).expect("read").expect("token").code_hash).expect("code").is_empty());
    drop(reader);
    let block = build_block(&chain, &BuilderConfig::default()).expect("build").expect("block");
    assert_eq!(block.tx_hashes, vec![pending_hash]);
    assert_eq!(chain.pool.lock().len(), 1, "the future nonce stays queued");
}

#[tokio::test]
async fn a_full_block_says_so_and_the_rest_waits_for_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    // room for two plain transfers per block
    let chain = open_with(dir.path(), ChainConfig { gas_limit: 50_000, tx_gas_cap: 30_000, ..ChainConfig::default() });
    let ingress = Ingress::new(chain.clone());
    let s = signers();
    let f = TxFactory::new(31337);
    for nonce in 0..5 {
        let tx = f.transfer_eth(&s[0], nonce, Address::repeat_byte(9), U256::from(1)).expect("sign");
        ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    }
    let sizes: Vec<(usize, bool)> = (0..3)
        .map(|_| {
            let b = build_block(&chain, &BuilderConfig::default()).expect("build").expect("block");
            (b.tx_hashes.len(), b.full)
        })
        .collect();
    assert_eq!(sizes, vec![(2, true), (2, true), (1, false)]);
    assert!(chain.pool.lock().is_empty());
}

fn open_preconf(dir: &std::path::Path, key: &alloy_signer_local::PrivateKeySigner) -> Arc<Chain> {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let store = Store::open(&dir.join("db")).expect("store");
    Chain::open(
        store,
        &dir.join("pool.wal"),
        ChainConfig::default(),
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        Some(cairn_sequencer::Preconf { signer: key.clone(), dir: dir.join("fragments") }),
    )
    .expect("chain")
}

/// What the store holds for a sealed block, in the form a promise is checked against.
fn sealed_block(chain: &Chain, number: u64) -> cairn_primitives::fragment::SealedBlock {
    use alloy_eips::eip2718::Encodable2718;
    let reader = chain.store.reader().expect("reader");
    let header = reader.header(number).expect("read").expect("header");
    let transactions = reader.block_tx_hashes(number).expect("hashes");
    let receipts = transactions
        .iter()
        .map(|h| {
            alloy_primitives::keccak256(reader.receipt(*h).expect("read").expect("receipt").envelope().encoded_2718())
        })
        .collect();
    cairn_primitives::fragment::SealedBlock {
        number,
        timestamp: header.timestamp,
        base_fee: header.base_fee_per_gas.unwrap_or_default(),
        gas_used: header.gas_used,
        transactions,
        receipts: Some(receipts),
    }
}

/// Fragments are signed by the sequencer key, chain by parent hash, and are made
/// durable first: after the node is dropped mid-block (a crash: the block was neither
/// closed nor sealed) the reopened node resumes the open block with every preconfirmed
/// transaction at its promised position, and the sealed block is exactly the
/// concatenation of its fragments.
#[tokio::test]
async fn fragments_chain_survive_a_crash_and_concatenate_into_the_sealed_block() {
    use cairn_primitives::fragment::check_promise;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let s = signers();
    let f = TxFactory::new(31337);
    let to = Address::repeat_byte(0x44);
    let config = BuilderConfig::default();
    let mut fragments = Vec::new();
    {
        let chain = open_preconf(dir.path(), &key);
        let ingress = Ingress::new(chain.clone());
        let mut block = cairn_sequencer::BlockInProgress::open(&chain);
        for round in 0..2u64 {
            for signer in &s[..2] {
                let tx = f.transfer_eth(signer, round, to, U256::from(1 + round)).expect("sign");
                ingress.submit(&tx.encoded_2718()).await.expect("accepted");
            }
            let part = block.add_fragment(&chain, &config).expect("fragment").expect("new transactions");
            fragments.push(part.signed.clone());
        }
        assert!(block.add_fragment(&chain, &config).expect("fragment").is_none(), "nothing new: no fragment");
        let (a, b) = (&fragments[0].fragment, &fragments[1].fragment);
        assert_eq!(fragments[0].signer().expect("signed"), key.address());
        assert_eq!((a.height, a.index, a.first_tx, a.transactions.len()), (1, 0, 0, 2));
        assert_eq!((b.height, b.index, b.first_tx, b.parent), (1, 1, 2, a.hash()));
        assert_eq!(b.gas_used, 4 * 21_000);
        // Preconfirmed state is what `pending` reads; nothing is sealed yet.
        let pending = chain.pending_view();
        assert_eq!(pending.account(to).expect("read").map(|a| a.balance), Some(U256::from(6)));
        assert_eq!(chain.latest().0.number, 0);
        let status = chain.status(&b.transactions[1]).expect("status").expect("known");
        assert_eq!(
            (status.tier, status.block, status.position),
            (cairn_sequencer::Tier::Preconfirmed, Some(1), Some(3))
        );
        // the crash: no close, no seal
    }
    let chain = open_preconf(dir.path(), &key);
    assert_eq!(chain.latest().0.number, 0, "the open block was not sealed");
    let resumed = chain.take_resumed().expect("the open block is resumed");
    assert_eq!((resumed.number(), resumed.len()), (1, 4));
    let status = chain.status(&fragments[1].fragment.transactions[1]).expect("status").expect("known");
    assert_eq!((status.tier, status.block, status.position), (cairn_sequencer::Tier::Preconfirmed, Some(1), Some(3)));
    assert!(chain.pool.lock().is_empty(), "preconfirmed transactions are not pending again");
    assert_eq!(chain.pending_view().account(to).expect("read").map(|a| a.balance), Some(U256::from(6)));
    // The block goes on where it stopped.
    let ingress = Ingress::new(chain.clone());
    let late = f.transfer_eth(&s[2], 0, to, U256::from(100)).expect("sign");
    ingress.submit(&late.encoded_2718()).await.expect("accepted");
    let mut block = resumed;
    let third = block.add_fragment(&chain, &config).expect("fragment").expect("new");
    assert_eq!(
        (third.fragment().index, third.fragment().first_tx, third.fragment().parent),
        (2, 4, fragments[1].fragment.hash())
    );
    fragments.push(third.signed.clone());
    block.close(&chain, &config).expect("close").expect("block");
    cairn_sequencer::seal_next(&chain).expect("seal").expect("sealed");
    let sealed = sealed_block(&chain, 1);
    let concatenated: Vec<_> = fragments.iter().flat_map(|f| f.fragment.transactions.clone()).collect();
    assert_eq!(sealed.transactions, concatenated);
    for f in &fragments {
        assert_eq!(
            check_promise(f, &sealed).expect("judged"),
            None,
            "the sealed block keeps fragment {}",
            f.fragment.index
        );
    }
    let mut broken = sealed.clone();
    broken.transactions.swap(0, 1);
    assert!(check_promise(&fragments[0], &broken).expect("judged").is_some());
    let status = chain.status(&concatenated[4]).expect("status").expect("known");
    assert_eq!(status.tier, cairn_sequencer::Tier::Sealed);
    let tiers: Vec<_> = status.history.iter().map(|s| s.tier).collect();
    assert_eq!(
        tiers,
        vec![
            cairn_sequencer::Tier::Received,
            cairn_sequencer::Tier::Preconfirmed,
            cairn_sequencer::Tier::Sequenced,
            cairn_sequencer::Tier::Sealed
        ]
    );
}

/// A block that was closed (sequenced) but not sealed before the crash is executed
/// again from the fragment log and sealed at start, with the same transactions.
#[tokio::test]
async fn a_closed_but_unsealed_block_is_sealed_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let s = signers();
    let f = TxFactory::new(31337);
    let art = Artifacts::load_default().expect("artifacts");
    let config = BuilderConfig::default();
    let (promised, parent) = {
        let chain = open_preconf(dir.path(), &key);
        let ingress = Ingress::new(chain.clone());
        let deploy = f.create(&s[0], 0, art.token_deploy("T", "T"), 2_000_000).expect("sign");
        ingress.submit(&deploy.encoded_2718()).await.expect("accepted");
        let mut block = cairn_sequencer::BlockInProgress::open(&chain);
        let part = block.add_fragment(&chain, &config).expect("fragment").expect("new");
        block.close(&chain, &config).expect("close").expect("block");
        assert_eq!(chain.unsealed_count(), 1);
        (part.signed.fragment.transactions.clone(), part.hash)
    };
    let chain = open_preconf(dir.path(), &key);
    assert_eq!(chain.latest().0.number, 1, "sealed during recovery");
    assert!(chain.take_resumed().is_none());
    assert_eq!(chain.store.reader().expect("reader").block_tx_hashes(1).expect("hashes"), promised);
    let token = s[0].address().create(0);
    assert!(chain.snapshot().account(token).expect("read").is_some());
    // The next fragment continues the chain of fragments.
    let ingress = Ingress::new(chain.clone());
    let tx = f.transfer_eth(&s[1], 0, Address::repeat_byte(1), U256::from(1)).expect("sign");
    ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    let mut block = cairn_sequencer::BlockInProgress::open(&chain);
    let next = block.add_fragment(&chain, &config).expect("fragment").expect("new");
    assert_eq!((next.fragment().height, next.fragment().index, next.fragment().parent), (2, 0, parent));
}
