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
    open_dev(dir, key, false)
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

fn open_dev(dir: &std::path::Path, key: &alloy_signer_local::PrivateKeySigner, dev: bool) -> Arc<Chain> {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let store = Store::open(&dir.join("db")).expect("store");
    Chain::open(
        store,
        &dir.join("pool.wal"),
        ChainConfig { dev, ..ChainConfig::default() },
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        Some(cairn_sequencer::Preconf { signer: key.clone(), dir: dir.join("fragments") }),
    )
    .expect("chain")
}

/// Waits (event-driven, at most 10 s) until the block holding `hash` is sealed; its
/// number and the hash of the fragment that preconfirmed it.
async fn sealed_with(
    events: &mut tokio::sync::broadcast::Receiver<cairn_sequencer::ChainEvent>,
    hash: alloy_primitives::B256,
) -> (u64, alloy_primitives::B256) {
    use cairn_sequencer::ChainEvent;
    let mut fragment = None;
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match events.recv().await.expect("events") {
                ChainEvent::Fragment(part) if part.find(&hash).is_some() => fragment = Some(part.hash),
                ChainEvent::Block(block) if block.tx_hashes.contains(&hash) => {
                    return (block.header.number, fragment.expect("preconfirmed before sealed"))
                }
                _ => {}
            }
        }
    })
    .await
    .expect("sealed in time")
}

/// `cairn dev`'s state edits: each is a block of its own, sealed (durable) before the
/// request is answered, on top of which later blocks execute; the fragment chain goes
/// on across edit blocks and across a restart after one (the fragment file holding the
/// last parent is kept); a nonce is never lowered; a chain that is not a development
/// chain refuses edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_edits_are_blocks_of_their_own_and_survive_a_restart() {
    use cairn_sequencer::{Builder, DevEdit};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let s = signers();
    let f = TxFactory::new(31337);
    let (who, contract) = (Address::repeat_byte(0x51), Address::repeat_byte(0x52));
    let code = alloy_primitives::Bytes::from_static(&[0x60, 0x2a, 0x5f, 0x52, 0x60, 0x20, 0x5f, 0xf3]);
    let config = BuilderConfig { block_time: std::time::Duration::from_millis(30), ..BuilderConfig::default() };
    let wait = std::time::Duration::from_secs(10);
    let last_parent = {
        let chain = open_dev(dir.path(), &key, true);
        let mut events = chain.subscribe();
        let builder = Builder::start(chain.clone(), config);
        let ingress = Ingress::new(chain.clone());
        let tx = f.transfer_eth(&s[0], 0, who, U256::from(3)).expect("sign");
        ingress.submit(&tx.encoded_2718()).await.expect("accepted");
        let (before, parent) = sealed_with(&mut events, *tx.tx_hash()).await;
        let (c, edited, new_code) = (chain.clone(), s[1].address(), code.clone());
        let edits = tokio::task::spawn_blocking(move || {
            let numbers = [
                c.edit_state(DevEdit::Balance(who, U256::from(5)), wait),
                c.edit_state(DevEdit::Nonce(edited, 7), wait),
                c.edit_state(DevEdit::Code(contract, new_code), wait),
                c.edit_state(DevEdit::Storage { address: contract, slot: U256::from(1), value: U256::from(9) }, wait),
            ];
            let lowered = c.edit_state(DevEdit::Nonce(edited, 2), wait);
            (numbers, lowered)
        })
        .await
        .expect("joined");
        let (numbers, lowered) = edits;
        let numbers: Vec<u64> = numbers.into_iter().map(|n| n.expect("applied")).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]) && numbers[0] > before, "{numbers:?} after {before}");
        let err = lowered.expect_err("a nonce is never lowered").to_string();
        assert!(err.contains("cannot be lowered (it is 7, 2 was asked for)"), "{err}");
        // Sealed before answered: the store holds them.
        let reader = chain.store.reader().expect("reader");
        assert!(reader.head().expect("head") >= numbers[3]);
        assert_eq!(reader.account(who).expect("read").map(|a| a.balance), Some(U256::from(5)));
        assert_eq!(reader.account(s[1].address()).expect("read").map(|a| a.nonce), Some(7));
        let acc = reader.account(contract).expect("read").expect("exists");
        assert_eq!(reader.code(acc.code_hash).expect("code"), code);
        assert_eq!(reader.storage(contract, U256::from(1)).expect("slot"), U256::from(9));
        // An edit block holds no transaction; the block before it is untouched.
        assert!(reader.block_tx_hashes(numbers[0]).expect("hashes").is_empty());
        assert_eq!(reader.header(before).expect("read").expect("header").gas_used, 21_000);
        // Later transactions execute on top: s[1] sends with nonce 7.
        let tx = f.transfer_eth(&s[1], 7, who, U256::from(1)).expect("sign");
        ingress.submit(&tx.encoded_2718()).await.expect("accepted at the edited nonce");
        let (after, next_parent) = sealed_with(&mut events, *tx.tx_hash()).await;
        assert!(after > numbers[3]);
        tokio::task::spawn_blocking(move || builder.stop()).await.expect("stopped");
        assert_ne!(next_parent, parent);
        next_parent
    };
    // A last edit block, then a restart: the next fragment's parent must survive.
    {
        let chain = open_dev(dir.path(), &key, true);
        let builder = Builder::start(chain.clone(), config);
        let c = chain.clone();
        tokio::task::spawn_blocking(move || {
            c.edit_state(DevEdit::Balance(who, U256::from(11)), wait).expect("applied")
        })
        .await
        .expect("joined");
        tokio::task::spawn_blocking(move || builder.stop()).await.expect("stopped");
    }
    let chain = open_dev(dir.path(), &key, true);
    assert_eq!(chain.snapshot().account(who).expect("read").map(|a| a.balance), Some(U256::from(11)));
    let ingress = Ingress::new(chain.clone());
    let tx = f.transfer_eth(&s[2], 0, who, U256::from(1)).expect("sign");
    ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    let mut block = cairn_sequencer::BlockInProgress::open(&chain);
    let next = block.add_fragment(&chain, &BuilderConfig::default()).expect("fragment").expect("new");
    assert_eq!(next.fragment().parent, last_parent, "the fragment chain goes on across edit blocks and a restart");
    drop(block);
    drop(chain);
    // Not a development chain: no edits, no impersonation.
    let other = tempfile::tempdir().expect("tempdir");
    let chain = open_dev(other.path(), &key, false);
    let err = chain.edit_state(DevEdit::Balance(who, U256::from(1)), wait).expect_err("refused").to_string();
    assert!(err.contains("only possible on a development chain"), "{err}");
    assert!(chain.impersonate(who).is_err());
}

/// An impersonated sender's transaction (marker signature) is admitted only while the
/// account is impersonated, only on a development chain; it executes from that account
/// (a contract too: EIP-3607 is off there) and is recovered again after a restart.
#[tokio::test]
async fn impersonated_senders_are_admitted_while_impersonated_and_recovered_after_a_restart() {
    use alloy_consensus::SignableTransaction;
    use cairn_primitives::impersonation::impersonated_signature;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let rich = dev_accounts(DEV_MNEMONIC, 1).expect("derive")[0].address;
    let to = Address::repeat_byte(0x61);
    let marker = |nonce: u64| {
        let tx = alloy_consensus::TxEip1559 {
            chain_id: 31337,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1,
            to: alloy_primitives::TxKind::Call(to),
            value: U256::from(1_000 + nonce),
            ..Default::default()
        };
        cairn_primitives::TxEnvelope::Eip1559(tx.into_signed(impersonated_signature(rich)))
    };
    let first = marker(0);
    {
        let chain = open_dev(dir.path(), &key, true);
        let ingress = Ingress::new(chain.clone());
        let err = ingress.submit(&first.encoded_2718()).await.expect_err("not impersonated yet");
        assert!(matches!(err, IngressError::InvalidSignature(_)), "{err}");
        chain.impersonate(rich).expect("impersonate");
        ingress.submit(&first.encoded_2718()).await.expect("accepted while impersonated");
        let block = build_block(&chain, &BuilderConfig::default()).expect("build").expect("a block");
        assert_eq!(block.receipts[0].from, rich);
        assert_eq!(chain.snapshot().account(to).expect("read").map(|a| a.balance), Some(U256::from(1_000)));
        // Pending at the crash: recovered from the admission log with its sender.
        ingress.submit(&marker(1).encoded_2718()).await.expect("accepted");
        chain.stop_impersonating(rich).expect("stop");
        let err = ingress.submit(&marker(2).encoded_2718()).await.expect_err("no longer impersonated");
        assert!(matches!(err, IngressError::InvalidSignature(_)), "{err}");
    }
    let chain = open_dev(dir.path(), &key, true);
    assert_eq!(chain.pool.lock().len(), 1, "the impersonated transaction is pending again");
    let block = build_block(&chain, &BuilderConfig::default()).expect("build").expect("a block");
    assert_eq!(block.receipts[0].from, rich);
    assert_eq!(chain.snapshot().account(to).expect("read").map(|a| a.balance), Some(U256::from(2_001)));
    drop(chain);
    // The same chain opened as a non-development node refuses the marker.
    let other = tempfile::tempdir().expect("tempdir");
    let chain = open_dev(other.path(), &key, false);
    assert!(chain.impersonate(rich).is_err());
    let err = Ingress::new(chain.clone()).submit(&marker(0).encoded_2718()).await.expect_err("refused");
    assert!(matches!(err, IngressError::InvalidSignature(_)), "{err}");
}

/// The EIP-4788 / EIP-2935 block-start writes: a transaction in block `h + 1` executed
/// while block `h` is still unsealed reads `h`'s hash from the history contract (the
/// read waits for `h`'s seal) and its own timestamp from the beacon-roots contract; the
/// sealed state holds the same slots, and the history contract answers `h`'s hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_writes_are_read_during_the_block_and_sealed_with_it() {
    use cairn_primitives::predeploys::system::RING;
    use cairn_primitives::predeploys::{BEACON_ROOTS, HISTORY_STORAGE};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let probe = Address::repeat_byte(0x9b);
    let mut alloc = GenesisAlloc::dev(&accounts).with_predeploys();
    alloc.accounts.insert(
        probe,
        cairn_primitives::GenesisAccount { code: cairn_workload::system_probe_code(), nonce: 1, ..Default::default() },
    );
    let chain = Chain::open(
        Store::open(&dir.path().join("db")).expect("store"),
        &dir.path().join("pool.wal"),
        ChainConfig::default(),
        &alloc,
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        Some(cairn_sequencer::Preconf { signer: key, dir: dir.path().join("fragments") }),
    )
    .expect("chain");
    let s = signers();
    let f = TxFactory::new(31337);
    let ingress = Ingress::new(chain.clone());
    let config = BuilderConfig::default();
    // Block 1, closed but not sealed.
    let tx = f.transfer_eth(&s[0], 0, Address::repeat_byte(1), U256::from(1)).expect("sign");
    ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    let mut block = cairn_sequencer::BlockInProgress::open(&chain);
    block.add_fragment(&chain, &config).expect("fragment").expect("new");
    block.close(&chain, &config).expect("close").expect("block");
    assert_eq!(chain.latest().0.number, 0, "block 1 is not sealed");
    // Block 2 probes while block 1 is unsealed; the sealer seals block 1 meanwhile.
    let tx = f.call(&s[1], 0, probe, Vec::new(), 200_000).expect("sign");
    ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    let sealer = {
        let chain = chain.clone();
        std::thread::spawn(move || cairn_sequencer::seal_next(&chain).expect("seal").expect("block 1"))
    };
    let mut block = cairn_sequencer::BlockInProgress::open(&chain);
    let part = block.add_fragment(&chain, &config).expect("fragment").expect("new");
    let sealed_1 = sealer.join().expect("sealer");
    let log = &part.receipts[0].logs[0].data.data;
    assert!(part.receipts[0].success);
    let word = |i: usize| alloy_primitives::B256::from_slice(&log[32 * i..32 * i + 32]);
    assert_eq!(U256::from_be_bytes(word(0).0), U256::from(1), "n - 1");
    assert_eq!(word(1), sealed_1.hash, "the history contract answers block 1's hash");
    assert_eq!(word(2), sealed_1.hash, "as BLOCKHASH does");
    let timestamp = U256::from_be_bytes(word(3).0);
    assert_eq!(U256::from_be_bytes(word(4).0), U256::from(1), "the beacon-roots contract knows this block's timestamp");
    block.close(&chain, &config).expect("close").expect("block");
    let sealed_2 = cairn_sequencer::seal_next(&chain).expect("seal").expect("block 2");
    assert_eq!(U256::from(sealed_2.header.timestamp), timestamp);
    // The sealed state has the writes of blocks 1 and 2.
    let reader = chain.store.reader().expect("reader");
    let slot = |a, s: u64| reader.storage(a, U256::from(s)).expect("slot");
    assert_eq!(slot(HISTORY_STORAGE, 1), U256::from_be_bytes(sealed_1.hash.0));
    assert_eq!(
        slot(HISTORY_STORAGE, 0),
        U256::from_be_bytes(chain.store.reader().expect("r").header(0).expect("h").expect("genesis").hash_slow().0)
    );
    let ts = sealed_2.header.timestamp;
    assert_eq!(slot(BEACON_ROOTS, ts % RING), U256::from(ts));
    // A replay of the sealed block 2 from block 1's state gives the same probe result
    // only with the system writes on top (what traces use).
    let parent = chain.store.reader().expect("reader").into_state_at(1).expect("history");
    assert_eq!(parent.storage(HISTORY_STORAGE, U256::from(1)).expect("slot"), U256::ZERO, "written by block 2");
}

/// The builder ends each block as a proposal, the chain's finality decides it, and the
/// sealer stores the decided sequencer block with its certificate beside the rollup
/// block: each extends the previous one (also across a restart), lists the block's
/// transactions and the fragments that preconfirmed them.
#[tokio::test]
async fn blocks_are_proposed_decided_and_sealed_with_their_sequencer_block() {
    use cairn_consensus::Certificate;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let s = signers();
    let f = TxFactory::new(31337);
    let config = BuilderConfig::default();
    let mut hashes = vec![alloy_primitives::B256::ZERO];
    for round in 0..2u64 {
        let chain = open_preconf(dir.path(), &key);
        let ingress = Ingress::new(chain.clone());
        for block_in_round in 0..2u64 {
            let nonce = round * 2 + block_in_round;
            let mut fragments = Vec::new();
            let mut block = cairn_sequencer::BlockInProgress::open(&chain);
            for signer in &s[..2] {
                let tx = f.transfer_eth(signer, nonce, Address::repeat_byte(9), U256::from(1)).expect("sign");
                ingress.submit(&tx.encoded_2718()).await.expect("accepted");
                fragments.push(block.add_fragment(&chain, &config).expect("fragment").expect("new").hash);
            }
            block.close(&chain, &config).expect("close").expect("block");
            let sealed = cairn_sequencer::seal_next(&chain).expect("seal").expect("sealed");
            let reader = chain.store.reader().expect("reader");
            let (seq, certificate) = reader.sequencer_block(sealed.header.number).expect("read").expect("stored");
            assert_eq!(seq.height, sealed.header.number);
            assert_eq!(seq.parent, *hashes.last().expect("parent"), "block {} extends the previous one", seq.height);
            assert_eq!(seq.transactions, sealed.tx_hashes);
            assert_eq!(seq.fragments, fragments);
            assert_eq!(seq.proposer, key.address());
            assert_eq!(
                (seq.timestamp, seq.base_fee),
                (sealed.header.timestamp, sealed.header.base_fee_per_gas.expect("fee"))
            );
            assert_eq!(Certificate::decode(&certificate), Ok(Certificate::Solo { sequencer: key.address() }));
            hashes.push(seq.hash());
        }
        // The restart: the next proposal extends the stored sequencer block.
    }
    assert_eq!(hashes.len(), 5);
}

/// The sealer commits only decided blocks: a finality that refuses the proposal, or
/// decides another block, leaves the chain where it was.
#[tokio::test]
async fn only_decided_blocks_reach_the_sealer() {
    use cairn_consensus::{Certificate, ConsensusError, Decision, Finality};
    struct Refuse;
    impl Finality for Refuse {
        fn decide(&self, p: &cairn_primitives::SequencerBlock) -> Result<Decision, ConsensusError> {
            Err(ConsensusError::NotNext { last: p.height, got: p.height })
        }
        fn name(&self) -> &'static str {
            "refuse"
        }
    }
    struct Other;
    impl Finality for Other {
        fn decide(&self, p: &cairn_primitives::SequencerBlock) -> Result<Decision, ConsensusError> {
            let mut block = p.clone();
            block.transactions.clear();
            Ok(Decision { block, certificate: Certificate::Solo { sequencer: Address::ZERO } })
        }
        fn name(&self) -> &'static str {
            "other"
        }
    }
    for (finality, message) in
        [(Arc::new(Refuse) as Arc<dyn Finality>, "does not follow"), (Arc::new(Other), "not this node's proposal")]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = open(dir.path());
        let ingress = Ingress::new(chain.clone());
        let to = Address::repeat_byte(3);
        let tx = TxFactory::new(31337).transfer_eth(&signers()[0], 0, to, U256::from(1)).expect("sign");
        ingress.submit(&tx.encoded_2718()).await.expect("accepted");
        chain.set_finality(finality);
        let err =
            cairn_sequencer::execute_block(&chain, &BuilderConfig::default()).expect_err("not decided").to_string();
        assert!(err.contains(message), "{err}");
        assert_eq!(chain.unsealed_count(), 0, "nothing reached the sealer");
        assert!(cairn_sequencer::seal_next(&chain).expect("seal").is_none());
        assert_eq!(chain.latest().0.number, 0);
        assert_eq!(chain.pending_view().account(to).expect("read"), None, "the undecided block is not pending state");
    }
}
