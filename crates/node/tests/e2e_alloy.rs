//! End to end: the real `cairn` binary driven by alloy's provider (HTTP and WebSocket).
//! Deploys Token twice and Pair, mints, approves, adds liquidity, swaps, moves ETH;
//! checks receipts, logs, balances, reserves; sends every kind of bad transaction;
//! subscribes to `newHeads` and `logs`; kills and restarts the node.

mod common;

use alloy_consensus::{SignableTransaction, TxEip4844, TxEip4844Variant, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TransactionBuilder;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_provider::{Provider, ProviderBuilder, WsConnect};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::{self as w, Artifacts, TxFactory};
use common::Node;
use futures::StreamExt;

const ETHER: u128 = 1_000_000_000_000_000_000;

fn signers() -> Vec<PrivateKeySigner> {
    dev_accounts(DEV_MNEMONIC, 3).expect("derive").into_iter().map(|a| a.signer).collect()
}

async fn send(
    provider: &impl Provider,
    to: Option<Address>,
    input: Vec<u8>,
    value: U256,
) -> alloy_rpc_types_eth::TransactionReceipt {
    let mut req = TransactionRequest::default().with_input(input).with_value(value);
    req = match to {
        Some(to) => req.with_to(to),
        None => req.into_create(),
    };
    provider.send_transaction(req).await.expect("send").get_receipt().await.expect("receipt")
}

async fn call_u256(provider: &impl Provider, to: Address, input: Vec<u8>) -> U256 {
    let out = provider.call(TransactionRequest::default().with_to(to).with_input(input)).await.expect("call");
    U256::from_be_slice(&out)
}

/// Sends raw bytes and returns the JSON-RPC error message (panics if accepted).
async fn rejected(provider: &impl Provider, raw: Vec<u8>) -> String {
    let err = provider.send_raw_transaction(&raw).await.expect_err("must be rejected");
    let resp = err.as_error_resp().expect("a JSON-RPC error").clone();
    assert_eq!(resp.code, -32000, "{resp:?}");
    resp.message.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dex_flow_errors_subscriptions_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let s = signers();
    let me = s[0].address();
    let provider = ProviderBuilder::new().wallet(s[0].clone()).connect_http(node.http().parse().expect("url"));
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(node.ws())).await.expect("ws");
    assert_eq!(provider.get_chain_id().await.expect("chain id"), 31337);

    let art = Artifacts::load_default().expect("artifacts");
    let a = send(&provider, None, art.token_deploy("Alpha", "A").to_vec(), U256::ZERO).await;
    let b = send(&provider, None, art.token_deploy("Beta", "B").to_vec(), U256::ZERO).await;
    let (ta, tb) = (a.contract_address.expect("token A"), b.contract_address.expect("token B"));
    assert!(a.status() && b.status());
    assert!(!provider.get_code_at(ta).await.expect("code").is_empty());
    let pair =
        send(&provider, None, art.pair_deploy(ta, tb).to_vec(), U256::ZERO).await.contract_address.expect("pair");

    let mut heads = ws.subscribe_blocks().await.expect("newHeads").into_stream();
    let mut swaps = ws
        .subscribe_logs(&Filter::new().address(pair).event_signature(w::Swap::SIGNATURE_HASH))
        .await
        .expect("logs")
        .into_stream();

    let supply = U256::from(1_000_000u64) * U256::from(ETHER);
    for t in [ta, tb] {
        let r = send(&provider, Some(t), w::mint_call(me, supply), U256::ZERO).await;
        assert_eq!(r.inner.logs().len(), 1);
        assert_eq!(r.inner.logs()[0].topics()[0], w::Transfer::SIGNATURE_HASH);
        send(&provider, Some(t), w::approve_call(pair, U256::MAX), U256::ZERO).await;
    }
    let liquidity = U256::from(1_000u64) * U256::from(ETHER);
    let r = send(&provider, Some(pair), w::add_liquidity_call(liquidity, liquidity), U256::ZERO).await;
    assert!(r.status());
    let sync = r.inner.logs().iter().find(|l| l.topics()[0] == w::Sync::SIGNATURE_HASH).expect("Sync log");
    let decoded = w::Sync::decode_log_data(&sync.inner.data).expect("decode Sync");
    assert_eq!(U256::from(decoded.reserve0), liquidity);
    assert_eq!(call_u256(&provider, pair, w::reserve0_call()).await, liquidity);

    let amount_in = U256::from(10u64) * U256::from(ETHER);
    let before_b = call_u256(&provider, tb, w::balance_of_call(me)).await;
    let r = send(&provider, Some(pair), w::swap_call(true, amount_in, U256::from(1), me), U256::ZERO).await;
    assert!(r.status());
    let swap_log = r.inner.logs().iter().find(|l| l.topics()[0] == w::Swap::SIGNATURE_HASH).expect("Swap log");
    let swap = w::Swap::decode_log_data(&swap_log.inner.data).expect("decode Swap");
    // x*y=k with the 0.3% fee
    let expected_out =
        amount_in * U256::from(997) * liquidity / (liquidity * U256::from(1000) + amount_in * U256::from(997));
    assert_eq!(swap.amountOut, expected_out);
    assert_eq!(call_u256(&provider, tb, w::balance_of_call(me)).await, before_b + expected_out);
    assert_eq!(call_u256(&provider, pair, w::reserve0_call()).await, liquidity + amount_in);

    // the WebSocket streams saw the swap and new heads
    let log = swaps.next().await.expect("swap log over ws");
    assert_eq!(log.transaction_hash, Some(r.transaction_hash));
    let head = heads.next().await.expect("a head over ws");
    assert!(head.number >= 1);

    // eth_getLogs through the log index
    let logs = provider.get_logs(&Filter::new().address(pair).from_block(0)).await.expect("getLogs");
    assert_eq!(logs.iter().filter(|l| l.topics()[0] == w::Swap::SIGNATURE_HASH).count(), 1);
    assert_eq!(logs.iter().filter(|l| l.topics()[0] == w::Sync::SIGNATURE_HASH).count(), 2);

    // ETH transfer
    let friend = Address::repeat_byte(0x77);
    send(&provider, Some(friend), Vec::new(), U256::from(ETHER)).await;
    assert_eq!(provider.get_balance(friend).await.expect("balance"), U256::from(ETHER));

    // eth_call revert: code 3 with the revert data
    let err = provider
        .call(TransactionRequest::default().from(friend).with_to(ta).with_input(w::transfer_call(me, U256::from(1))))
        .await
        .expect_err("revert");
    let resp = err.as_error_resp().expect("error response");
    assert_eq!(resp.code, 3);
    assert_eq!(resp.message, "execution reverted: balance");
    assert!(resp.data.is_some());

    // every kind of bad transaction, with geth's wording
    let f = TxFactory::new(31337);
    let nonce = provider.get_transaction_count(me).await.expect("nonce");
    let to = Address::repeat_byte(1);
    let one = U256::from(1);
    let raw = |tx: TxEnvelope| tx.encoded_2718();
    let msg = rejected(&provider, raw(TxFactory::new(1).transfer_eth(&s[0], nonce, to, one).expect("sign"))).await;
    assert!(msg.starts_with("invalid chain id for signer"), "{msg}");
    let msg = rejected(&provider, raw(f.transfer_eth(&s[0], 0, to, one).expect("sign"))).await;
    assert!(msg.starts_with("nonce too low"), "{msg}");
    let msg = rejected(
        &provider,
        raw(f.transfer_eth(&s[2], 0, to, U256::from(20_000u64) * U256::from(ETHER)).expect("sign")),
    )
    .await;
    assert!(msg.starts_with("insufficient funds for gas * price + value"), "{msg}");
    let msg =
        rejected(&provider, raw(f.sign(&s[0], nonce, TxKind::Call(to), one, Bytes::new(), 20_000).expect("sign")))
            .await;
    assert!(msg.starts_with("intrinsic gas too low"), "{msg}");
    let msg =
        rejected(&provider, raw(f.sign(&s[0], nonce, TxKind::Call(to), one, Bytes::new(), 31_000_000).expect("sign")))
            .await;
    assert!(msg.starts_with("transaction gas limit too high"), "{msg}");
    let msg = rejected(
        &provider,
        raw(f.sign(&s[0], nonce, TxKind::Call(to), one, vec![1u8; 132_000].into(), 29_000_000).expect("sign")),
    )
    .await;
    assert!(msg.starts_with("oversized data"), "{msg}");
    let cheap = TxFactory { chain_id: 31337, max_fee_per_gas: 1, max_priority_fee_per_gas: 1 };
    let msg = rejected(&provider, raw(cheap.transfer_eth(&s[0], nonce, to, one).expect("sign"))).await;
    assert!(msg.starts_with("max fee per gas less than block base fee"), "{msg}");
    // a future nonce waits in the pool; re-sending it is "already known"; a same-fee
    // replacement is underpriced
    let future = f.transfer_eth(&s[0], nonce + 1, to, one).expect("sign");
    let future_hash = provider.send_raw_transaction(&raw(future.clone())).await.expect("queued").tx_hash().to_owned();
    assert_eq!(rejected(&provider, raw(future)).await, "already known");
    let msg = rejected(&provider, raw(f.transfer_eth(&s[0], nonce + 1, to, U256::from(2)).expect("sign"))).await;
    assert_eq!(msg, "replacement transaction underpriced");
    let mut bad_sig = raw(f.transfer_eth(&s[1], 0, to, one).expect("sign"));
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 0x01; // corrupt s
    let msg = rejected(&provider, bad_sig).await;
    assert!(msg.starts_with("invalid sender") || msg.starts_with("insufficient funds"), "{msg}");
    let blob = TxEip4844 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1,
        to,
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        max_fee_per_blob_gas: 1,
        ..Default::default()
    };
    let sig = s[0].sign_hash_sync(&blob.signature_hash()).expect("sign");
    let blob = TxEnvelope::Eip4844(TxEip4844Variant::TxEip4844(blob).into_signed(sig));
    assert!(rejected(&provider, raw(blob)).await.starts_with("transaction type not supported"));
    let legacy = TxLegacy {
        chain_id: None,
        nonce,
        gas_price: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: one,
        input: Bytes::new(),
    };
    let sig = s[0].sign_hash_sync(&legacy.signature_hash()).expect("sign");
    let msg = rejected(&provider, raw(TxEnvelope::Legacy(legacy.into_signed(sig)))).await;
    assert!(msg.contains("EIP-155"), "{msg}");
    let err = provider.send_raw_transaction(&[0x02, 0x01]).await.expect_err("garbage");
    assert_eq!(err.as_error_resp().expect("error").code, -32000);
    // the node is still healthy and the future tx is pending
    assert_eq!(provider.get_transaction_count(me).pending().await.expect("pending"), nonce);
    let pending_tx = provider.get_transaction_by_hash(future_hash).await.expect("by hash").expect("pending tx");
    assert_eq!(pending_tx.block_number, None);

    // SIGKILL: blocks, state and the pending transaction survive
    let head_before = provider.get_block_number().await.expect("head");
    let status = node.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let node = Node::start(dir.path(), &[]);
    let provider = ProviderBuilder::new().wallet(s[0].clone()).connect_http(node.http().parse().expect("url"));
    assert!(provider.get_block_number().await.expect("head") >= head_before);
    assert_eq!(provider.get_balance(friend).await.expect("balance"), U256::from(ETHER));
    assert_eq!(call_u256(&provider, pair, w::reserve0_call()).await, liquidity + amount_in);
    let still = provider.get_transaction_by_hash(future_hash).await.expect("by hash").expect("still pending");
    assert_eq!(still.block_number, None);
    // filling the gap includes both; wait on new heads, not on a timer
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(node.ws())).await.expect("ws");
    let mut heads = ws.subscribe_blocks().await.expect("heads").into_stream();
    let gap = f.transfer_eth(&s[0], nonce, to, one).expect("sign");
    provider.send_raw_transaction(&raw(gap)).await.expect("gap").get_receipt().await.expect("receipt");
    let mut included = None;
    for _ in 0..100 {
        included = provider.get_transaction_receipt(future_hash).await.expect("receipt");
        if included.is_some() {
            break;
        }
        heads.next().await.expect("next head");
    }
    assert!(included.expect("queued tx included after the gap filled").status());

    // SIGTERM: a clean shutdown, and everything is there again
    let head_before = provider.get_block_number().await.expect("head");
    let status = node.stop_with(libc::SIGTERM);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let node = Node::start(dir.path(), &[]);
    let provider = ProviderBuilder::new().connect_http(node.http().parse().expect("url"));
    assert_eq!(provider.get_block_number().await.expect("head"), head_before);
    assert_eq!(provider.get_transaction_count(me).await.expect("nonce"), nonce + 2);
}
