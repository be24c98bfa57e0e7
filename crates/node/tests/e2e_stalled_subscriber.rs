//! A WebSocket subscriber that stops reading must cost the node nothing: once its
//! connection's bounded message buffer is full its subscriptions are dropped, while the
//! builder keeps preconfirming and sealing and every other client keeps being answered.
//!
//! The stalled client opens 16 subscriptions to every transaction's status and 16 to
//! the fragments over a socket with a 4 KiB receive buffer, then never reads. A
//! thousand transfers then produce some 70,000 notifications (tens of MiB) for it — far
//! more than the kernel's socket buffers and the 1,024 messages its connection may
//! queue.

mod common;

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{hex, Address, U256};
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::TxFactory;
use common::{rpc as call, Node};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Most time any one request may take while the subscriber is stalled (generous: the
/// machine is shared; a blocked builder would stall every request indefinitely).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Subscriptions the stalled client opens (half status, half fragments).
const SUBSCRIPTIONS: u64 = 32;

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex quantity").trim_start_matches("0x"), 16).expect("quantity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_and_the_node_keeps_going() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let url = node.http();
    let client = reqwest::Client::new();

    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(([127, 0, 0, 1], node.port).into()).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(node.ws(), stream).await.expect("websocket handshake");
    let subscribe = |id: u64, kind: &str| {
        Message::text(json!({"jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": [kind]}).to_string())
    };
    for id in 0..SUBSCRIPTIONS {
        let kind = if id % 2 == 0 { "cairn_transactionStatus" } else { "cairn_fragments" };
        ws.send(subscribe(id, kind)).await.expect("send");
    }
    let mut ids: HashMap<u64, String> = HashMap::new();
    while ids.len() < SUBSCRIPTIONS as usize {
        let msg = ws.next().await.expect("open").expect("frame");
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).expect("json");
        if let (Some(id), Some(sub)) = (v["id"].as_u64(), v["result"].as_str()) {
            ids.insert(id, sub.to_string());
        }
    }
    // From here on the subscriber reads nothing until the load is over.

    let start = quantity(&call(&client, &url, "eth_blockNumber", json!([])).await.expect("blockNumber"));
    let txs: Vec<String> =
        common::dev_transfers(100, Address::repeat_byte(0x55)).into_iter().map(|(_, raw)| raw).collect();
    let txs = Arc::new(txs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (txs, next, client, url) = (txs.clone(), next.clone(), client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut preconfirmed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(raw) = txs.get(i) else { break preconfirmed };
                let answer = tokio::time::timeout(
                    ANSWER_WITHIN,
                    call(&client, &url, "cairn_sendRawTransactionPreconfirmed", json!([raw])),
                )
                .await
                .expect("a preconfirmation was held up by the stalled subscriber");
                let p = answer.expect("preconfirmation");
                assert!(p["fragment"].is_object(), "signed fragment: {p}");
                preconfirmed += 1;
            }
        }));
    }
    let mut preconfirmed = 0;
    for w in workers {
        preconfirmed += w.await.expect("worker");
    }
    assert_eq!(preconfirmed, txs.len());

    // Every transfer gets sealed: the builder and the sealer never waited.
    let signers: Vec<_> = dev_accounts(DEV_MNEMONIC, 10).expect("derive").into_iter().map(|a| a.signer).collect();
    let f = TxFactory::new(31337);
    let last_hash = {
        let tx = f.transfer_eth(&signers[0], 100, Address::repeat_byte(0x55), U256::from(1)).expect("sign");
        hex::encode_prefixed(tx.encoded_2718())
    };
    let receipt = tokio::time::timeout(
        ANSWER_WITHIN,
        call(&client, &url, "eth_sendRawTransactionSync", json!([last_hash, 10_000])),
    )
    .await
    .expect("eth_sendRawTransactionSync held up")
    .expect("receipt");
    assert_eq!(receipt["status"], "0x1");
    let head = quantity(&call(&client, &url, "eth_blockNumber", json!([])).await.expect("blockNumber"));
    assert!(head > start, "blocks were sealed during the load: {start} → {head}");
    let nonce = call(&client, &url, "eth_getTransactionCount", json!([format!("{}", signers[9].address()), "latest"]))
        .await
        .expect("nonce");
    assert_eq!(quantity(&nonce), 100, "all of the last signer's transfers sealed");

    // The stalled subscriptions were dropped: unsubscribing finds none of them. (The
    // connection itself stays usable; the notifications queued before the drop arrive
    // first.)
    for (id, sub) in &ids {
        let call = json!({"jsonrpc": "2.0", "id": 1_000 + id, "method": "eth_unsubscribe", "params": [sub]});
        ws.send(Message::text(call.to_string())).await.expect("send");
    }
    let mut notifications = 0usize;
    let mut answers: HashMap<u64, Value> = HashMap::new();
    while answers.len() < ids.len() {
        let msg = tokio::time::timeout(ANSWER_WITHIN, ws.next())
            .await
            .expect("the node answers the unsubscribe calls")
            .expect("connection open")
            .expect("frame");
        // Pings (the server's liveness check) and other control frames are not answers.
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).expect("json");
        match v["id"].as_u64() {
            Some(id) => {
                answers.insert(id - 1_000, v["result"].clone());
            }
            None => notifications += 1,
        }
    }
    for (id, answer) in &answers {
        assert_eq!(answer, &json!(false), "subscription {id} was still live after {notifications} notifications");
    }
    // 1,001 transactions made at least 4,004 status changes per status subscription;
    // the stalled subscriber got only what was queued before it was dropped.
    assert!(
        notifications < 4 * txs.len() * SUBSCRIPTIONS as usize / 2,
        "{notifications} notifications reached the stalled subscriber"
    );
}
