//! `EthApi` against a real chain (store, pool, builder driven directly): query bounds,
//! log filters through the index and the header bloom, fee history, state-at-block rules.

use alloy_eips::eip2718::Encodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_eth::Filter;
use cairn_executor::SequentialExecutor;
use cairn_mempool::PoolConfig;
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, DEV_MNEMONIC};
use cairn_rpc::{EthApi, RpcError, RpcLimits};
use cairn_sequencer::{build_block, BuilderConfig, Chain, Ingress};
use cairn_storage::Store;
use cairn_trie::FullCommitter;
use cairn_workload::{Artifacts, TxFactory};
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    api: EthApi,
    token: Address,
    recipient: Address,
}

/// Genesis, then a Token deployment, a mint and three transfers, each in its own block.
async fn fixture(limits: RpcLimits) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dev_accounts(DEV_MNEMONIC, 2).expect("derive");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let chain = Chain::open(
        store,
        &dir.path().join("pool.wal"),
        ChainConfig::default(),
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(FullCommitter),
    )
    .expect("chain");
    let ingress = Ingress::new(chain.clone());
    let signer = &accounts[0].signer;
    let me = signer.address();
    let token = me.create(0);
    let recipient = accounts[1].address;
    let f = TxFactory::new(31337);
    let art = Artifacts::load_default().expect("artifacts");
    let mut txs = vec![
        f.create(signer, 0, art.token_deploy("T", "T"), 2_000_000).expect("sign"),
        f.call(signer, 1, token, cairn_workload::mint_call(me, U256::from(1_000)), 100_000).expect("sign"),
    ];
    for n in 2..5 {
        txs.push(
            f.call(signer, n, token, cairn_workload::transfer_call(recipient, U256::from(n)), 100_000).expect("sign"),
        );
    }
    for tx in txs {
        ingress.submit(&tx.encoded_2718()).await.expect("accepted");
        build_block(&chain, &BuilderConfig::default()).expect("build").expect("block");
    }
    let api = EthApi::new(chain, ingress, limits);
    Fixture { _dir: dir, api, token, recipient }
}

fn transfer_topic() -> B256 {
    alloy_primitives::keccak256("Transfer(address,address,uint256)")
}

#[tokio::test]
async fn get_logs_filters_by_address_event_and_other_topics() {
    let fx = fixture(RpcLimits::default()).await;
    let all = fx.api.logs(&Filter::new().from_block(0).address(fx.token)).expect("logs");
    assert_eq!(all.len(), 4, "mint + three transfers");
    let by_event = fx.api.logs(&Filter::new().from_block(0).event_signature(transfer_topic())).expect("logs");
    assert_eq!(by_event.len(), 4);
    // topic 2 (the recipient) is not indexed: served through the header bloom
    let to_recipient = fx
        .api
        .logs(&Filter::new().from_block(0).topic2(B256::left_padding_from(fx.recipient.as_slice())))
        .expect("logs");
    assert_eq!(to_recipient.len(), 3);
    assert!(to_recipient.iter().all(|l| l.block_number.is_some() && l.log_index == Some(0)));
    let nobody = fx.api.logs(&Filter::new().from_block(0).address(Address::repeat_byte(0xee))).expect("logs");
    assert!(nobody.is_empty());
}

#[tokio::test]
async fn get_logs_and_fee_history_are_bounded() {
    let limits = RpcLimits { max_log_range: 3, max_logs: 2, max_fee_history: 2, ..RpcLimits::default() };
    let fx = fixture(limits).await;
    let err = fx.api.logs(&Filter::new().from_block(0).to_block(5)).expect_err("range");
    assert_eq!(err.code(), -32005);
    assert_eq!(err.to_string(), "query exceeds max block range 3");
    let err = fx.api.logs(&Filter::new().from_block(3).to_block(5).address(fx.token)).expect_err("too many");
    assert_eq!(err.to_string(), "query returned more than 2 results");
    let err = fx.api.logs(&Filter::new().from_block(4).to_block(3)).expect_err("inverted");
    assert!(matches!(err, RpcError::InvalidParams(_)));

    let history = fx.api.fee_history(10, BlockNumberOrTag::Latest, Some(vec![10.0, 90.0])).expect("history");
    assert_eq!(history.gas_used_ratio.len(), 2, "capped at max_fee_history");
    assert_eq!(history.base_fee_per_gas.len(), 3, "one more than blocks: the next base fee");
    assert_eq!(history.oldest_block, 4);
    let rewards = history.reward.expect("rewards");
    assert_eq!(rewards[1], vec![1_000_000_000, 1_000_000_000], "every tx tipped 1 gwei");
    assert!(fx.api.fee_history(1, BlockNumberOrTag::Latest, Some(vec![90.0, 10.0])).is_err(), "descending");
}

#[tokio::test]
async fn state_queries_serve_the_head_and_refuse_old_blocks() {
    let fx = fixture(RpcLimits::default()).await;
    let head = fx.api.block_by_id(BlockId::Number(BlockNumberOrTag::Latest), false).expect("block").expect("head");
    assert_eq!(head.header.number, 5);
    assert!(!fx.api.code(fx.token, Some(BlockId::number(5))).expect("code").is_empty());
    let err = fx.api.balance(fx.recipient, Some(BlockId::number(2))).expect_err("history");
    assert!(err.to_string().starts_with("historical state unavailable: block 2"), "{err}");
    let err = fx.api.balance(fx.recipient, Some(BlockId::number(99))).expect_err("future");
    assert_eq!(err.to_string(), "header not found");
    assert!(fx.api.block_by_id(BlockId::number(99), false).expect("lookup").is_none());
}
