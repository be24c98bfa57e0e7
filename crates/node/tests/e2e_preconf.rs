//! Preconfirmations against the real binary: `cairn_sendRawTransactionPreconfirmed`
//! under 16-way concurrent load, `kill -9` while requests are in flight, restart on the
//! same data directory. Every preconfirmed transaction must end up sealed at exactly its
//! promised height and position, every fragment must be signed by the sequencer's key,
//! and each sealed block must keep the promise of every fragment (`check_promise`).
//!
//! Blocks hold at most 60 transfers (gas limit), so during the load blocks fill, close
//! and seal while later ones are open: the kill lands with an open block (fragments
//! only in the fragment log) and possibly closed-but-unsealed ones.

mod common;

use alloy_primitives::{Address, B256};
use cairn_primitives::fragment::{check_promise, SealedBlock};
use cairn_primitives::SignedFragment;
use common::{rpc as call, Node};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Transaction hash → (promised height, promised position, the signed fragment).
type Promised = HashMap<B256, (u64, u64, Value)>;

fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex quantity").trim_start_matches("0x"), 16).expect("quantity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconfirmations_keep_height_and_position_across_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = ["--block-time", "400", "--gas-limit", "1260000", "--tx-gas-cap", "1000000"];
    let node = Node::start(dir.path(), &limits);
    let url = node.http();
    let client = reqwest::Client::new();
    let info = call(&client, &url, "cairn_sequencer", json!([])).await.expect("cairn_sequencer");
    let sequencer: Address = serde_json::from_value(info["address"].clone()).expect("address");
    let txs: Vec<String> =
        common::dev_transfers(100, Address::repeat_byte(0x77)).into_iter().map(|(_, raw)| raw).collect();
    let txs = Arc::new(txs);
    let promised: Arc<Mutex<Promised>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (txs, promised, next, client, url, enough) =
            (txs.clone(), promised.clone(), next.clone(), client.clone(), url.clone(), enough.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(raw) = txs.get(i) else { break };
                let Some(p) = call(&client, &url, "cairn_sendRawTransactionPreconfirmed", json!([raw])).await else {
                    break; // the node is gone
                };
                let hash: B256 = serde_json::from_value(p["transactionHash"].clone()).expect("hash");
                let entry = (quantity(&p["blockNumber"]), quantity(&p["transactionIndex"]), p["fragment"].clone());
                let mut promised = promised.lock().expect("lock");
                promised.insert(hash, entry);
                if promised.len() == 400 {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    common::kill_9_under_load(node, workers).await;
    let promised = promised.lock().expect("lock").clone();
    assert!(promised.len() >= 400 && promised.len() < txs.len(), "killed mid-stream: {}", promised.len());

    let node = Node::start(dir.path(), &["--block-time", "50"]);
    let url = node.http();
    let mut fragments: HashMap<B256, SignedFragment> = HashMap::new();
    for (hash, (height, position, fragment)) in &promised {
        let signed: SignedFragment = serde_json::from_value(fragment.clone()).expect("signed fragment");
        assert_eq!(signed.signer().expect("valid signature"), sequencer);
        assert_eq!(signed.fragment.position_of(hash), Some(*position));
        assert_eq!(signed.fragment.height, *height);
        fragments.insert(signed.fragment.hash(), signed);
    }
    // Every promised block is sealed (eth_getBlockByNumber waits for a preconfirmed
    // block's seal) and keeps the promise of each of its fragments.
    let heights: std::collections::BTreeSet<u64> = promised.values().map(|p| p.0).collect();
    let mut blocks = HashMap::new();
    for h in heights {
        let mut block = Value::Null;
        for _ in 0..10 {
            block =
                call(&client, &url, "eth_getBlockByNumber", json!([format!("{h:#x}"), false])).await.expect("block");
            if !block.is_null() {
                break;
            }
        }
        assert!(!block.is_null(), "block {h} was promised but is not sealed");
        let sealed = SealedBlock {
            number: quantity(&block["number"]),
            timestamp: quantity(&block["timestamp"]),
            base_fee: quantity(&block["baseFeePerGas"]),
            gas_used: quantity(&block["gasUsed"]),
            transactions: serde_json::from_value(block["transactions"].clone()).expect("hashes"),
            receipts: None,
        };
        blocks.insert(h, sealed);
    }
    for f in fragments.values() {
        let block = &blocks[&f.fragment.height];
        assert_eq!(check_promise(f, block).expect("judged"), None, "block {} broke a promise", block.number);
    }
    for (hash, (height, position, _)) in &promised {
        let r = call(&client, &url, "eth_getTransactionReceipt", json!([hash])).await.expect("receipt");
        assert_eq!((quantity(&r["blockNumber"]), quantity(&r["transactionIndex"])), (*height, *position), "{hash}");
        assert!(!r["blockHash"].is_null(), "sealed");
        let status = call(&client, &url, "cairn_getTransactionStatus", json!([hash])).await.expect("status");
        // Sealed, or firm already (its batch on the DA layer, read back).
        assert!(status["status"] == "sealed" || status["status"] == "firm", "{status}");
    }
    eprintln!(
        "{} preconfirmed before kill -9, {} fragments, {} blocks: all kept",
        promised.len(),
        fragments.len(),
        blocks.len()
    );
}
