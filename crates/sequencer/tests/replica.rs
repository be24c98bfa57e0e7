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
