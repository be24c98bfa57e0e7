//! The validator side of consensus, driven directly (no network): one node builds a block
//! when consensus asks, another executes and checks it from its fragments, both commit
//! it; the next block carries the execution result of the previous one, and a proposal
//! whose result differs is refused with both results named; a node that sees such a
//! block decided halts.

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, U256};
use cairn_consensus::{Certificate, Host};
use cairn_executor::SequentialExecutor;
use cairn_mempool::PoolConfig;
use cairn_primitives::fragment::FragmentRecord;
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, DEV_MNEMONIC};
use cairn_sequencer::{Builder, BuilderConfig, Chain, Ingress, Preconf, Replica};
use cairn_storage::Store;
use cairn_trie::IncrementalCommitter;
use cairn_workload::TxFactory;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn open(dir: &std::path::Path) -> (Arc<Chain>, Replica, Builder) {
    let accounts = dev_accounts(DEV_MNEMONIC, 3).expect("derive");
    let store = Store::open(&dir.join("db")).expect("store");
    let key = alloy_signer_local::PrivateKeySigner::random();
    let chain = Chain::open_replica(
        store,
        &dir.join("pool.wal"),
        ChainConfig::default(),
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        Some(Preconf { signer: key, dir: dir.join("fragments") }),
    )
    .expect("chain");
    let builder = Builder::sealer_only(chain.clone(), true);
    let replica = Replica::new(chain.clone(), BuilderConfig::default()).expect("replica");
    (chain, replica, builder)
}

/// Builds `height` on `replica` for one short slot; the block and the fragments it
/// published.
fn build(replica: &Replica, height: u64) -> (cairn_primitives::SequencerBlock, Vec<FragmentRecord>) {
    let published = Arc::new(Mutex::new(Vec::new()));
    let out = published.clone();
    let block = replica
        .build(height, 0, Duration::from_millis(30), Vec::new(), Box::new(move |r| out.lock().push(r)))
        .expect("built");
    let records = published.lock().clone();
    (block, records)
}

fn certificate() -> Certificate {
    Certificate::Solo { sequencer: Address::ZERO }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_built_checked_and_committed_and_a_differing_parent_result_is_refused() {
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (chain_a, a, builder_a) = open(dir_a.path());
    let (chain_b, b, builder_b) = open(dir_b.path());
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let tx = TxFactory::new(31337).transfer_eth(&signer, 0, Address::repeat_byte(7), U256::from(5)).expect("sign");
    Ingress::new(chain_a.clone()).submit(&tx.encoded_2718()).await.expect("admitted");

    // Height 1: A proposes (one fragment with the transaction), B executes it from the
    // fragments and finds the same block; both commit it.
    let (one, records) = tokio::task::block_in_place(|| build(&a, 1));
    assert_eq!(one.transactions, vec![*tx.tx_hash()]);
    assert_eq!(records.len(), 1, "the fragment was published");
    assert_eq!(one.executed.map(|e| e.number), Some(0), "it carries the genesis block's result");
    tokio::task::block_in_place(|| {
        b.check(&one, &records).expect("B finds the same block");
        a.commit(one.hash(), certificate()).expect("A commits");
        b.commit(one.hash(), certificate()).expect("B commits");
    });
    assert_eq!(chain_a.latest(), chain_b.latest(), "same rollup block 1 on both");
    assert!(chain_a.pool.lock().is_empty());

    // Height 2 carries block 1's result; one that says another state root is refused,
    // naming both.
    let (two, records) = tokio::task::block_in_place(|| build(&a, 2));
    let (header, hash) = chain_b.latest();
    let executed = two.executed.expect("executed");
    assert_eq!((executed.number, executed.header_hash, executed.state_root), (1, hash, header.state_root));
    let mut lying = two.clone();
    lying.executed = Some(cairn_primitives::Executed { state_root: B256::repeat_byte(9), ..executed });
    let err = tokio::task::block_in_place(|| b.check(&lying, &records)).expect_err("refused");
    assert!(
        err.contains(&format!("{}", B256::repeat_byte(9))) && err.contains(&format!("{}", header.state_root)),
        "{err}"
    );
    tokio::task::block_in_place(|| b.check(&two, &records)).expect("the honest block is accepted");

    // If the set decides the block this node refused, this node diverged: it halts.
    let err = tokio::task::block_in_place(|| b.commit(lying.hash(), certificate())).expect_err("halts");
    assert!(err.contains("the set decided"), "{err}");
    let err = tokio::task::block_in_place(|| b.check(&two, &records)).expect_err("halted");
    assert!(err.starts_with("halted"), "{err}");

    tokio::task::block_in_place(|| {
        builder_a.stop();
        builder_b.stop();
    });
}

/// Fragments carry no round, so everything one key signs for a height must form one
/// chain. A validator whose fragments of round 0 were lost, asked in a later round to
/// extend another proposer's chain that leaves them out, proposes that chain without
/// signing a fragment of its own: nothing it signed at the height conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_round_never_makes_an_honest_proposer_contradict_its_own_fragments() {
    use cairn_primitives::fragment::find_equivocation;
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (chain_a, a, builder_a) = open(dir_a.path());
    let (chain_b, b, builder_b) = open(dir_b.path());
    let accounts = dev_accounts(DEV_MNEMONIC, 2).expect("derive");
    let factory = TxFactory::new(31337);
    let to_a = factory.transfer_eth(&accounts[0].signer, 0, Address::repeat_byte(7), U256::from(5)).expect("sign");
    let to_b = factory.transfer_eth(&accounts[1].signer, 0, Address::repeat_byte(8), U256::from(6)).expect("sign");
    Ingress::new(chain_a.clone()).submit(&to_a.encoded_2718()).await.expect("admitted by A");
    Ingress::new(chain_b.clone()).submit(&to_b.encoded_2718()).await.expect("admitted by B");

    // Round 0: A signs a fragment that reaches nobody. Round 1: B builds its own chain.
    let (_, mine) = tokio::task::block_in_place(|| build(&a, 1));
    assert_eq!(mine.len(), 1);
    let (theirs_block, theirs) = tokio::task::block_in_place(|| build(&b, 1));
    assert_eq!(theirs.len(), 1);

    // A later round of A must extend B's chain, which leaves A's fragment out.
    let published = Arc::new(Mutex::new(Vec::new()));
    let out = published.clone();
    let block = tokio::task::block_in_place(|| {
        a.build(1, 4, Duration::from_millis(30), theirs.clone(), Box::new(move |r| out.lock().push(r)))
    })
    .expect("A proposes");
    assert_eq!(*published.lock(), theirs, "A streams B's fragments and signs none of its own");
    assert_eq!(block.transactions, theirs_block.transactions, "B's transactions keep their places");
    assert_eq!(block.proposer, chain_a.signer_address().expect("key"));
    let a_key = chain_a.signer_address().expect("key");
    let all: Vec<_> = mine.iter().chain(published.lock().iter()).map(|r| r.signed(31337)).collect();
    let by_a: Vec<_> = all.iter().filter(|f| f.signer().expect("signer") == a_key).collect();
    for (i, x) in by_a.iter().enumerate() {
        for y in &by_a[i + 1..] {
            assert_eq!(find_equivocation(x, y).expect("same key"), None, "A contradicted itself");
        }
    }
    // Its own transaction went back to its pool, for a later block.
    assert!(chain_a.pool.lock().contains(to_a.tx_hash()), "A's lost transaction is pending again");

    tokio::task::block_in_place(|| {
        builder_a.stop();
        builder_b.stop();
    });
}

/// A client waiting on this node for a preconfirmation whose fragment this node never
/// executed as it streamed: when the block is decided, it gets the fragment if this node
/// replayed it, or learns the block is decided (a block that came by value sync holds
/// no fragments), instead of waiting for its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preconfirmation_waiter_ends_when_the_block_is_decided() {
    use cairn_sequencer::SequencerError;
    let (dir_a, dir_b, dir_c) =
        (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("t"));
    let (chain_a, a, builder_a) = open(dir_a.path());
    let (chain_b, b, builder_b) = open(dir_b.path());
    let (chain_c, c, builder_c) = open(dir_c.path());
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let tx = TxFactory::new(31337).transfer_eth(&signer, 0, Address::repeat_byte(7), U256::from(5)).expect("sign");
    let raw = tx.encoded_2718();
    for chain in [&chain_a, &chain_b, &chain_c] {
        Ingress::new(chain.clone()).submit(&raw).await.expect("admitted");
    }
    let hash = *tx.tx_hash();
    let (wait_b, wait_c) = (chain_b.clone(), chain_c.clone());
    let on_b = tokio::spawn(async move { wait_b.wait_preconfirmed(hash, Duration::from_secs(60)).await });
    let on_c = tokio::spawn(async move { wait_c.wait_preconfirmed(hash, Duration::from_secs(60)).await });

    let (one, records) = tokio::task::block_in_place(|| build(&a, 1));
    let txs = vec![alloy_primitives::Bytes::from(raw.clone())];
    tokio::task::block_in_place(|| {
        b.check(&one, &records).expect("B replays the fragments");
        c.check_synced(&one, &txs).expect("C executes the synced block");
        for node in [&a, &b, &c] {
            node.commit(one.hash(), certificate()).expect("commit");
        }
    });
    let (part, i) = on_b.await.expect("task").expect("B answers with the fragment");
    assert_eq!((part.fragment().height, part.body[i].0), (1, hash));
    match on_c.await.expect("task") {
        Err(SequencerError::DecidedWithoutFragment { hash: h, block: 1 }) => assert_eq!(h, hash),
        other => panic!("C: {other:?}"),
    }
    tokio::task::block_in_place(|| {
        for builder in [builder_a, builder_b, builder_c] {
            builder.stop();
        }
    });
}
