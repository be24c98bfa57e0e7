//! `EthApi` against a real chain (store, pool, builder driven directly): query bounds,
//! log filters through the index and the header bloom, fee history, state at retained and pruned blocks.

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
use cairn_trie::IncrementalCommitter;
use cairn_workload::{Artifacts, TxFactory};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    chain: Arc<Chain>,
    api: EthApi,
    ingress: Ingress,
    signer: alloy_signer_local::PrivateKeySigner,
    token: Address,
    recipient: Address,
}

/// Genesis, then a Token deployment, a mint and three transfers, each in its own block.
async fn fixture(limits: RpcLimits) -> Fixture {
    fixture_with_history(limits, cairn_storage::DEFAULT_STATE_HISTORY).await
}

async fn fixture_with_history(limits: RpcLimits, state_history: u64) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dev_accounts(DEV_MNEMONIC, 2).expect("derive");
    let store = Store::open(&dir.path().join("db")).expect("store").with_state_history(state_history);
    let chain = Chain::open(
        store,
        &dir.path().join("pool.wal"),
        ChainConfig::default(),
        &GenesisAlloc::dev(&accounts),
        PoolConfig::default(),
        Arc::new(SequentialExecutor),
        Arc::new(IncrementalCommitter::new(2).expect("trie threads")),
        None,
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
    let api = EthApi::new(chain.clone(), ingress.clone(), limits);
    Fixture { _dir: dir, chain, api, ingress, signer: signer.clone(), token, recipient }
}

/// Checks an `eth_getProof` answer's account fields and proof against `root` with
/// alloy-trie's independent verifier.
fn verify_account_proof(
    root: B256,
    resp: &alloy_rpc_types_eth::EIP1186AccountProofResponse,
) -> Result<(), alloy_trie::proof::ProofVerificationError> {
    let account = alloy_trie::TrieAccount {
        nonce: resp.nonce,
        balance: resp.balance,
        storage_root: resp.storage_hash,
        code_hash: resp.code_hash,
    };
    alloy_trie::proof::verify_proof(
        root,
        alloy_trie::Nibbles::unpack(alloy_primitives::keccak256(resp.address)),
        Some(alloy_rlp::encode(account)),
        &resp.account_proof,
    )
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

/// Older blocks within the state history answer `eth_call`, balance, nonce, code,
/// storage and `eth_getProof` as of that block (the proof checked against that block's
/// header); beyond the history depth the node says the state is pruned.
#[tokio::test]
async fn state_queries_serve_retained_blocks_and_refuse_pruned_ones() {
    use alloy_trie::{proof::verify_proof, Nibbles};
    let fx = fixture(RpcLimits::default()).await;
    let head = fx.api.block_by_id(BlockId::Number(BlockNumberOrTag::Latest), false).expect("block").expect("head");
    assert_eq!(head.header.number, 5);
    let me = fx.signer.address();
    let at = |n: u64| Some(BlockId::number(n));
    assert!(fx.api.code(fx.token, at(0)).expect("code").is_empty(), "not deployed at genesis");
    assert!(!fx.api.code(fx.token, at(1)).expect("code").is_empty());
    let slot = cairn_workload::token_balance_slot(fx.recipient);
    for (block, held) in [(1u64, 0u64), (2, 0), (3, 2), (4, 5), (5, 9)] {
        let call = alloy_rpc_types_eth::TransactionRequest::default()
            .to(fx.token)
            .input(cairn_workload::balance_of_call(fx.recipient).into());
        let out = fx.api.call(call, at(block), None, None).expect("call");
        assert_eq!(U256::from_be_slice(&out), U256::from(held), "balanceOf at block {block}");
        let stored = fx.api.storage_at(fx.token, slot, at(block)).expect("storage");
        assert_eq!(U256::from_be_bytes(stored.0), U256::from(held), "slot at block {block}");
        assert_eq!(fx.api.transaction_count(me, at(block)).expect("nonce").to::<u64>(), block);
        let resp = fx.api.proof(fx.token, vec![B256::from(slot)], at(block)).expect("proof");
        let root = fx.api.block_by_id(BlockId::number(block), false).expect("b").expect("b").header.state_root;
        verify_account_proof(root, &resp).unwrap_or_else(|e| panic!("account proof at block {block}: {e:?}"));
        let p = &resp.storage_proof[0];
        assert_eq!(p.value, U256::from(held));
        let leaf = (!p.value.is_zero()).then(|| alloy_rlp::encode(p.value));
        verify_proof(resp.storage_hash, Nibbles::unpack(alloy_primitives::keccak256(B256::from(slot))), leaf, &p.proof)
            .unwrap_or_else(|e| panic!("storage proof at block {block}: {e:?}"));
    }
    let err = fx.api.balance(fx.recipient, Some(BlockId::number(99))).expect_err("future");
    assert_eq!(err.to_string(), "header not found");

    let fx = fixture_with_history(RpcLimits::default(), 2).await;
    assert_eq!(fx.api.balance(me, at(3)).map(|_| ()).map_err(|e| e.to_string()), Ok(()));
    let err = fx.api.balance(fx.recipient, at(2)).expect_err("pruned");
    assert_eq!(err.code(), -32000);
    assert_eq!(
        err.to_string(),
        "historical state unavailable: block 2 is pruned (state is kept from block 3 to the head)"
    );
    assert!(fx.api.proof(fx.token, vec![], at(1)).is_err());
    assert!(fx.api.block_by_id(BlockId::number(99), false).expect("lookup").is_none());
}

/// `eth_getProof` answers verify with alloy-trie's independent proof verifier against
/// the sealed block's state root: the token contract's account, present and absent
/// storage slots, and an account that does not exist.
#[tokio::test]
async fn get_proof_verifies_against_the_state_root() {
    use alloy_trie::{proof::verify_proof, Nibbles};
    let fx = fixture(RpcLimits::default()).await;
    let state_root = fx.chain.latest().0.state_root;
    let me = fx.signer.address();
    let keys = vec![
        B256::from(cairn_workload::token_balance_slot(me)),
        B256::from(cairn_workload::token_balance_slot(fx.recipient)),
        B256::repeat_byte(0x42),
    ];
    let resp = fx.api.proof(fx.token, keys.clone(), None).expect("proof");
    verify_account_proof(state_root, &resp).expect("account proof verifies");
    assert_ne!(resp.storage_hash, cairn_storage::EMPTY_ROOT);
    let values: Vec<U256> = resp.storage_proof.iter().map(|p| p.value).collect();
    assert_eq!(values, vec![U256::from(1_000 - 2 - 3 - 4), U256::from(2 + 3 + 4), U256::ZERO]);
    for (key, p) in keys.iter().zip(&resp.storage_proof) {
        let expected = (!p.value.is_zero()).then(|| alloy_rlp::encode(p.value));
        verify_proof(resp.storage_hash, Nibbles::unpack(alloy_primitives::keccak256(key)), expected, &p.proof)
            .unwrap_or_else(|e| panic!("storage proof for {key}: {e:?}"));
    }
    // A tampered value does not verify.
    assert!(verify_proof(
        resp.storage_hash,
        Nibbles::unpack(alloy_primitives::keccak256(keys[0])),
        Some(alloy_rlp::encode(U256::from(1))),
        &resp.storage_proof[0].proof
    )
    .is_err());
    let nobody = fx.api.proof(Address::repeat_byte(0x77), vec![], None).expect("proof");
    assert_eq!(nobody.storage_hash, cairn_storage::EMPTY_ROOT);
    verify_proof(
        state_root,
        Nibbles::unpack(alloy_primitives::keccak256(Address::repeat_byte(0x77))),
        None,
        &nobody.account_proof,
    )
    .expect("exclusion proof verifies");
    let too_many = vec![B256::ZERO; cairn_rpc::MAX_PROOF_KEYS + 1];
    assert!(matches!(fx.api.proof(fx.token, too_many, None), Err(RpcError::InvalidParams(_))));
}

/// A block executed but not sealed is visible through `pending` (state, nonce, the
/// transaction, a receipt without block hash) and not through `latest` until its root
/// is in.
#[tokio::test]
async fn pending_runs_ahead_of_sealed_until_the_root_is_in() {
    let fx = fixture(RpcLimits::default()).await;
    let sealed = fx.chain.latest().0.number;
    let me = fx.signer.address();
    let to = Address::repeat_byte(0x55);
    let tx = TxFactory::new(31337).transfer_eth(&fx.signer, 5, to, U256::from(7)).expect("sign");
    let hash = fx.ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    cairn_sequencer::execute_block(&fx.chain, &BuilderConfig::default()).expect("execute").expect("block");
    let pending = Some(BlockId::Number(BlockNumberOrTag::Pending));
    assert_eq!(fx.api.balance(to, pending).expect("balance"), U256::from(7));
    assert_eq!(fx.api.balance(to, None).expect("balance"), U256::ZERO);
    assert_eq!(fx.api.transaction_count(me, pending).expect("nonce").to::<u64>(), 6);
    assert_eq!(fx.api.transaction_count(me, None).expect("nonce").to::<u64>(), 5);
    assert_eq!(fx.chain.latest().0.number, sealed);
    assert_eq!(fx.chain.tip().number, sealed + 1);
    // The standard method answers sealed receipts only (ethers rejects a null block
    // hash); Cairn's own method hands out the preconfirmed one.
    assert!(fx.api.receipt(hash, Duration::ZERO).expect("receipt").is_none(), "not sealed yet");
    let early = fx.api.preconfirmed_receipt(hash).expect("receipt").expect("a receipt once the block is executed");
    assert_eq!(early.block_hash, None, "no block hash before the block is sealed");
    assert_eq!((early.block_number, early.transaction_index), (Some(sealed + 1), Some(0)));
    let seen = fx.api.transaction_by_hash(hash).expect("tx").expect("known while unsealed");
    assert!(seen.block_number.is_none());
    // A client asking the standard method now waits for the seal, then gets the
    // sealed receipt (the wait ends when the block is sealed, not on a timer).
    let waiting = {
        let chain = fx.chain.clone();
        let ingress = fx.ingress.clone();
        std::thread::spawn(move || {
            let api = EthApi::new(chain, ingress, RpcLimits::default());
            api.receipt(hash, Duration::from_secs(60)).expect("receipt")
        })
    };
    let block = cairn_sequencer::seal_next(&fx.chain).expect("seal").expect("sealed");
    assert_eq!(block.header.number, sealed + 1);
    assert_eq!(fx.chain.latest().1, block.hash);
    assert_eq!(fx.api.balance(to, None).expect("balance"), U256::from(7));
    let waited = waiting.join().expect("waiter").expect("sealed receipt after the wait");
    assert_eq!(waited.block_hash, Some(block.hash));
    let receipt = fx.api.receipt(hash, Duration::ZERO).expect("receipt").expect("sealed receipt");
    assert_eq!(receipt.block_hash, Some(block.hash));
    assert_eq!(fx.api.preconfirmed_receipt(hash).expect("receipt").expect("sealed").block_hash, Some(block.hash));
    assert_eq!(block.header.state_root, cairn_trie::full_state_root(&fx.chain.snapshot()).expect("full root"));
}

/// Back-pressure: with `MAX_UNSEALED` blocks waiting for their roots, the builder waits
/// for the sealer instead of queueing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_waits_when_too_many_blocks_are_unsealed() {
    let fx = fixture(RpcLimits::default()).await;
    let sealed = fx.chain.latest().0.number;
    let f = TxFactory::new(31337);
    let blocks = cairn_sequencer::MAX_UNSEALED as u64 + 1;
    let mut hashes = Vec::new();
    for n in 0..blocks {
        let tx = f.transfer_eth(&fx.signer, 5 + n, Address::repeat_byte(0x66), U256::from(1)).expect("sign");
        hashes.push(fx.ingress.submit(&tx.encoded_2718()).await.expect("accepted"));
    }
    let chain = fx.chain.clone();
    let one_per_block = BuilderConfig { max_block_txs: 1, ..BuilderConfig::default() };
    let builder = std::thread::spawn(move || {
        for _ in 0..blocks {
            cairn_sequencer::execute_block(&chain, &one_per_block).expect("execute").expect("block");
        }
    });
    // The builder fills the pipeline, then blocks on the last block.
    let mut events = fx.chain.subscribe();
    while fx.chain.unsealed_count() < cairn_sequencer::MAX_UNSEALED {
        std::thread::yield_now();
    }
    assert_eq!(fx.chain.tip().number, sealed + cairn_sequencer::MAX_UNSEALED as u64, "no fifth block queued");
    assert!(!builder.is_finished());
    // Sealing one makes room; the builder finishes; seal the rest.
    cairn_sequencer::seal_next(&fx.chain).expect("seal").expect("sealed");
    builder.join().expect("builder");
    while cairn_sequencer::seal_next(&fx.chain).expect("seal").is_some() {}
    assert_eq!(fx.chain.latest().0.number, sealed + blocks);
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }
    assert!(seen.iter().any(|e| matches!(e, cairn_sequencer::ChainEvent::Block(_))));
    assert!(seen.iter().any(|e| matches!(e, cairn_sequencer::ChainEvent::Sequenced(_))));
    for h in hashes {
        assert!(fx.api.receipt(h, Duration::ZERO).expect("receipt").is_some());
    }
}

/// Polling filters (geth semantics): a log filter and a block filter report what was
/// sealed since the last poll, once; `eth_getFilterLogs` runs the filter's whole
/// query; a pending filter sees admitted hashes; uninstalled filters are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_report_each_change_once() {
    let fx = fixture(RpcLimits::default()).await;
    let logs = fx.api.new_filter(Filter::new().from_block(0).address(fx.token)).expect("log filter");
    let blocks = fx.api.new_block_filter().expect("block filter");
    let pending = fx.api.new_pending_filter().expect("pending filter");
    assert!(logs.starts_with("0x") && logs.len() <= 34 && !logs.starts_with("0x0"), "a quantity: {logs}");
    for id in [&logs, &blocks, &pending] {
        assert_eq!(fx.api.filter_changes(id).expect("changes"), serde_json::json!([]), "nothing new yet");
    }
    let f = TxFactory::new(31337);
    let tx = f.call(&fx.signer, 5, fx.token, cairn_workload::transfer_call(fx.recipient, U256::from(1)), 100_000);
    let hash = fx.ingress.submit(&tx.expect("sign").encoded_2718()).await.expect("accepted");
    // The pending filter is fed by a task from the chain's events: poll until it has it.
    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let changes = fx.api.filter_changes(&pending).expect("changes");
            if changes.as_array().is_some_and(|a| !a.is_empty()) {
                return changes;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the admitted hash reaches the pending filter");
    assert_eq!(seen, serde_json::json!([hash]));
    let block = build_block(&fx.chain, &BuilderConfig::default()).expect("build").expect("block");
    let changes = fx.api.filter_changes(&logs).expect("changes");
    let new_logs = changes.as_array().expect("array");
    assert_eq!(new_logs.len(), 1, "only the new transfer, not the history: {changes}");
    assert_eq!(new_logs[0]["transactionHash"], serde_json::json!(hash));
    assert_eq!(new_logs[0]["blockHash"], serde_json::json!(block.hash));
    assert_eq!(fx.api.filter_changes(&logs).expect("changes"), serde_json::json!([]), "reported once");
    assert_eq!(fx.api.filter_changes(&blocks).expect("changes"), serde_json::json!([block.hash]));
    assert_eq!(fx.api.filter_logs(&logs).expect("logs").len(), 5, "the whole query: mint + four transfers");
    assert!(fx.api.filter_logs(&blocks).is_err(), "not a log filter");
    assert!(fx.api.uninstall_filter(&logs));
    assert!(!fx.api.uninstall_filter(&logs), "already gone");
    assert!(fx.api.filter_changes(&logs).is_err());
    let err = fx.api.filter_changes("0x1234").expect_err("unknown");
    assert_eq!((err.code(), err.to_string()), (-32000, "filter not found".to_string()));
}

/// Block receipts, transactions by position (with the block timestamp) and the raw
/// encodings, checked against the block's own header: the raw header hashes to the
/// block hash, the raw receipts rebuild its receipts root, the raw block decodes to it.
#[tokio::test]
async fn block_receipts_positions_and_raw_encodings_match_the_header() {
    use alloy_eips::eip2718::Decodable2718;
    let fx = fixture(RpcLimits::default()).await;
    let id = BlockId::number(3);
    let block = fx.api.block_by_id(id, false).expect("block").expect("block 3");
    let receipts = fx.api.block_receipts(id).expect("receipts").expect("known block");
    assert_eq!(receipts.len(), 1);
    let hash = receipts[0].transaction_hash;
    assert_eq!(Some(&receipts[0]), fx.api.receipt(hash, Duration::ZERO).expect("receipt").as_ref());
    let tx = fx.api.transaction_by_block_and_index(id, 0).expect("tx").expect("present");
    assert_eq!(*tx.inner.tx_hash(), hash);
    assert_eq!(tx.block_timestamp, Some(block.header.timestamp), "blockTimestamp is required by the spec");
    assert_eq!(fx.api.transaction_by_hash(hash).expect("tx").expect("tx").block_timestamp, tx.block_timestamp);
    assert!(fx.api.transaction_by_block_and_index(id, 1).expect("tx").is_none());
    assert!(fx.api.block_receipts(BlockId::number(99)).expect("receipts").is_none());

    let header = fx.api.raw_header(id).expect("raw header");
    assert_eq!(alloy_primitives::keccak256(&header), block.header.hash);
    let raw = fx.api.raw_receipts(id).expect("raw receipts");
    let decoded: Vec<alloy_consensus::ReceiptEnvelope> =
        raw.iter().map(|r| alloy_consensus::ReceiptEnvelope::decode_2718(&mut r.as_ref()).expect("receipt")).collect();
    assert_eq!(alloy_consensus::proofs::calculate_receipt_root(&decoded), block.header.receipts_root);
    let raw_block = fx.api.raw_block(id).expect("raw block");
    let decoded: alloy_consensus::Block<cairn_primitives::TxEnvelope> =
        alloy_rlp::Decodable::decode(&mut raw_block.as_ref()).expect("block rlp");
    assert_eq!(decoded.header.hash_slow(), block.header.hash);
    assert_eq!(decoded.body.transactions.len(), 1);
    let raw_tx = fx.api.raw_transaction(hash).expect("raw tx");
    assert_eq!(alloy_primitives::keccak256(&raw_tx), hash);
    assert!(fx.api.raw_transaction(B256::repeat_byte(9)).expect("raw").is_empty());
    assert_eq!(fx.api.uncle_count(id).expect("uncles"), Some(alloy_primitives::U64::ZERO));
}

/// `txpool_*`: ready transactions are `pending`, those behind a nonce gap `queued`.
#[tokio::test]
async fn txpool_tells_pending_from_queued() {
    let fx = fixture(RpcLimits::default()).await;
    let f = TxFactory::new(31337);
    let to = Address::repeat_byte(0x44);
    for nonce in [5u64, 7] {
        let tx = f.transfer_eth(&fx.signer, nonce, to, U256::from(1)).expect("sign");
        fx.ingress.submit(&tx.encoded_2718()).await.expect("accepted");
    }
    assert_eq!(fx.api.txpool_status(), serde_json::json!({"pending": "0x1", "queued": "0x1"}));
    let me = fx.signer.address().to_checksum(None);
    let content = fx.api.txpool_content(None).expect("content");
    assert_eq!(content["pending"][&me]["5"]["nonce"], "0x5");
    assert_eq!(content["queued"][&me]["7"]["nonce"], "0x7");
    assert!(content["pending"][&me]["5"]["blockHash"].is_null());
    let from = fx.api.txpool_content(Some(fx.signer.address())).expect("from");
    assert_eq!(from["pending"]["5"], content["pending"][&me]["5"], "geth's shape: nonces under pending");
    assert_eq!(from["queued"]["7"], content["queued"][&me]["7"]);
    assert!(content["pending"][&me]["5"]["gasPrice"].is_string(), "pending transactions carry gasPrice");
    let inspect = fx.api.txpool_inspect().expect("inspect");
    assert_eq!(inspect["pending"][&me]["5"], format!("{}: 1 wei + 21000 gas × 10000000000 wei", to.to_checksum(None)));
}

/// Outside `cairn dev` the development accounts are locked and the test controls are
/// absent: `eth_accounts` is empty and the methods are not found.
#[tokio::test]
async fn test_controls_exist_only_in_dev_mode() {
    let fx = fixture(RpcLimits::default()).await;
    let module = EthApi::new(fx.chain.clone(), fx.ingress.clone(), RpcLimits::default()).into_module().expect("module");
    let call = |method: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let (resp, _) = module.raw_json_request(&call("eth_accounts"), 1).await.expect("request");
    assert!(resp.get().contains(r#""result":[]"#), "{}", resp.get());
    for method in [
        "eth_sendTransaction",
        "evm_mine",
        "evm_increaseTime",
        "personal_sign",
        "anvil_mine",
        "anvil_setBalance",
        "hardhat_setStorageAt",
        "anvil_impersonateAccount",
        "anvil_autoImpersonateAccount",
    ] {
        let (resp, _) = module.raw_json_request(&call(method), 1).await.expect("request");
        assert!(resp.get().contains("-32601"), "{method}: {}", resp.get());
    }
    let dev = cairn_rpc::DevMode { accounts: vec![fx.signer.clone()] };
    let module = EthApi::new(fx.chain.clone(), fx.ingress.clone(), RpcLimits::default())
        .with_dev(dev)
        .into_module()
        .expect("module");
    let (resp, _) = module.raw_json_request(&call("eth_accounts"), 1).await.expect("request");
    assert!(resp.get().to_lowercase().contains(&format!("{:?}", fx.signer.address()).to_lowercase()), "{}", resp.get());
}

/// `cairn_getSequencerBlock`: the decided sequencer block of a height, with its hash and
/// certificate; each extends the previous one and lists the rollup block's transactions.
#[tokio::test]
async fn sequencer_blocks_are_served_with_their_certificate() {
    let fx = fixture(RpcLimits::default()).await;
    let module = EthApi::new(fx.chain.clone(), fx.ingress.clone(), RpcLimits::default()).into_module().expect("module");
    let get = |param: String| {
        let module = module.clone();
        async move {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"cairn_getSequencerBlock","params":[{param}]}}"#);
            let (resp, _) = module.raw_json_request(&body, 1).await.expect("request");
            serde_json::from_str::<serde_json::Value>(resp.get()).expect("json")
        }
    };
    let mut parent = serde_json::json!(B256::ZERO);
    for n in 1..=5u64 {
        let r = get(format!(r#""{n:#x}""#)).await;
        let seq = &r["result"];
        assert_eq!(seq["height"], n, "{r}");
        assert_eq!(seq["parent"], parent, "block {n} extends the previous one");
        let block = fx.api.block_by_id(BlockId::number(n), false).expect("block").expect("sealed");
        let hashes: Vec<B256> = block.transactions.hashes().collect();
        assert_eq!(seq["transactions"], serde_json::json!(hashes));
        assert_eq!(seq["certificate"]["kind"], "solo");
        parent = seq["hash"].clone();
    }
    assert_eq!(get(r#""latest""#.into()).await["result"]["height"], 5);
    assert!(get(r#""0x63""#.into()).await["result"].is_null(), "no block 99");
    assert!(get(r#""0x0""#.into()).await["result"].is_null(), "genesis has none");
    assert_eq!(get(r#""zz""#.into()).await["error"]["code"], -32602);
}

/// `cairn_submitEvidence` keeps two fragments only when they prove their signer
/// equivocated on this chain; `cairn_getEvidence` lists what is kept (in the store),
/// checked again as it is read; the same evidence twice is one record.
#[tokio::test]
async fn equivocation_evidence_is_checked_kept_and_served() {
    use alloy_signer::SignerSync;
    use cairn_primitives::{Fragment, SignedFragment};
    let fx = fixture(RpcLimits::default()).await;
    let module = EthApi::new(fx.chain.clone(), fx.ingress.clone(), RpcLimits::default()).into_module().expect("module");
    let call = |method: &'static str, params: serde_json::Value| {
        let module = module.clone();
        async move {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
            let (resp, _) = module.raw_json_request(&body, 1).await.expect("request");
            serde_json::from_str::<serde_json::Value>(resp.get()).expect("json")
        }
    };
    let key = alloy_signer_local::PrivateKeySigner::random();
    let sign = |key: &alloy_signer_local::PrivateKeySigner, chain_id: u64, tx: u8| {
        let fragment = Fragment {
            chain_id,
            height: 9,
            index: 0,
            parent: B256::ZERO,
            timestamp: 1,
            base_fee: 1,
            first_tx: 0,
            transactions: vec![B256::repeat_byte(tx)],
            gas_used: 21_000,
            receipts_hash: B256::ZERO,
            state_diff_hash: B256::ZERO,
        };
        let signature = key.sign_hash_sync(&fragment.hash()).expect("sign");
        serde_json::to_value(SignedFragment::new(fragment, &signature)).expect("json")
    };
    let (a, b) = (sign(&key, 31337, 1), sign(&key, 31337, 2));
    let r = call("cairn_submitEvidence", serde_json::json!([a, b])).await;
    let proof = &r["result"];
    assert_eq!(proof["conflict"], "samePosition", "{r}");
    assert_eq!(proof["signer"].as_str().map(str::to_lowercase), Some(format!("{:?}", key.address()).to_lowercase()));
    let id = proof["id"].clone();
    let again = call("cairn_submitEvidence", serde_json::json!([b, a])).await;
    assert_eq!(again["result"]["id"], id, "the same evidence in either order");
    // Not evidence: consistent, another signer's, another chain's.
    for (x, y, why) in [
        (a.clone(), a.clone(), "consistent"),
        (a.clone(), sign(&alloy_signer_local::PrivateKeySigner::random(), 31337, 2), "different keys"),
        (sign(&key, 5, 1), sign(&key, 5, 2), "chain 5"),
    ] {
        let r = call("cairn_submitEvidence", serde_json::json!([x, y])).await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert!(r["error"]["message"].as_str().expect("message").contains(why), "{r}");
    }
    let listed = call("cairn_getEvidence", serde_json::json!([])).await;
    let list = listed["result"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{listed}");
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["fragments"].as_array().map(Vec::len), Some(2));
    // Kept in the store: a new reader of the same store sees it.
    assert_eq!(fx.chain.store.reader().expect("reader").evidence_count().expect("count"), 1);
}
