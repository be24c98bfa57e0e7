//! `cairn dev` posts its decided blocks to the local DA store in batches (the default
//! `--da local`): every block from 1 on is in exactly one batch, in order, with its
//! transactions, whose namespace commitment proves each of them; each batch is read back
//! and its transactions become `firm`; after a `kill -9` and a restart the poster goes on
//! with no gap and no duplicate, and what was firm stays firm.

mod common;

use common::{rpc, rpc_raw, Node};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn hex_u64(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("u64"),
        _ => u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).expect("hex"),
    }
}

/// Sends `txs` and returns the highest block they are in.
async fn send_all(client: &reqwest::Client, url: &str, txs: &[(alloy_primitives::B256, String)]) -> u64 {
    for (hash, raw) in txs {
        let r = rpc_raw(client, url, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(r["result"], json!(hash), "{r}");
    }
    let mut top = 0;
    for (hash, _) in txs {
        let receipt = common::wait_receipt(client, url, &json!(hash), Duration::from_secs(30)).await;
        top = top.max(hex_u64(&receipt["blockNumber"]));
    }
    top
}

/// Polls `cairn_daStatus` until the DA layer holds block `height`.
async fn wait_posted(client: &reqwest::Client, url: &str, height: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = rpc(client, url, "cairn_daStatus", json!([])).await.expect("status");
        if status["postedThrough"].as_u64().unwrap_or(0) >= height {
            return status;
        }
        assert!(Instant::now() < deadline, "block {height} not posted within 30 s: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `cairn_getTransactionStatus` until `hash` is firm.
async fn wait_firm(client: &reqwest::Client, url: &str, hash: &alloy_primitives::B256) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = rpc(client, url, "cairn_getTransactionStatus", json!([hash])).await.expect("status");
        if s["status"] == "firm" {
            return s;
        }
        assert!(Instant::now() < deadline, "{hash} not firm within 30 s: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every batch on the layer, decoded and checked: the blocks they hold, in order, with
/// each transaction's hash.
async fn all_batches(client: &reqwest::Client, url: &str, at_least: u64) -> Vec<(u64, Vec<alloy_primitives::B256>)> {
    let mut blocks = Vec::new();
    for n in 1..10_000u64 {
        let Some(b) = rpc(client, url, "cairn_getDaBatch", json!([n])).await.filter(|b| !b.is_null()) else {
            assert!(n > at_least, "batch {n} is missing");
            break;
        };
        let bytes: alloy_primitives::Bytes = serde_json::from_value(b["data"].clone()).expect("data");
        assert_eq!(b["commitment"], json!(alloy_primitives::keccak256(&bytes)));
        let (header, batch) = cairn_da::Batch::decode(&bytes).expect("a valid batch");
        assert_eq!(b["header"]["firstHeight"], header.first_height);
        for block in &batch.blocks {
            let sequencer = block.block().expect("sequencer block");
            // Each transaction proves its place against the namespace's root alone.
            for group in &block.groups {
                for (pos, raw) in group.txs.iter().enumerate() {
                    let (got, proof) =
                        batch.prove(group.namespace, sequencer.height, pos as u64).expect("prove").expect("present");
                    assert_eq!(&got, raw);
                    assert!(cairn_da::verify_inclusion(
                        &header,
                        group.namespace,
                        sequencer.height,
                        pos as u64,
                        raw,
                        &proof
                    ));
                }
            }
            blocks.push((sequencer.height, sequencer.transactions.clone()));
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_blocks_reach_the_local_da_store_with_no_gap_and_no_duplicate_across_a_kill() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let to = alloy_primitives::Address::repeat_byte(0x51);
    let txs = common::dev_transfers(4, to);

    let node = Node::start(dir.path(), &[]);
    let top = send_all(&client, &node.http(), &txs[..20]).await;
    let status = wait_posted(&client, &node.http(), top).await;
    assert_eq!(status["backend"], "local");
    let first = all_batches(&client, &node.http(), status["latest"]["height"].as_u64().expect("height")).await;
    assert_eq!(first.iter().map(|(h, _)| *h).collect::<Vec<_>>(), (1..=first.len() as u64).collect::<Vec<_>>());
    let carried: std::collections::HashSet<_> = first.iter().flat_map(|(_, t)| t.clone()).collect();
    for (hash, _) in &txs[..20] {
        assert!(carried.contains(hash), "{hash} is in a batch");
    }
    // Read back and checked: firm, with the batch named, the step in its history.
    let firm = wait_firm(&client, &node.http(), &txs[0].0).await;
    assert!(firm["da"]["height"].as_u64().expect("DA height") >= 1, "{firm}");
    assert_eq!(firm["da"]["backend"], "local");
    let tiers: Vec<&str> =
        firm["history"].as_array().expect("history").iter().filter_map(|s| s["tier"].as_str()).collect();
    assert_eq!(tiers.last(), Some(&"firm"), "{firm}");

    // kill -9, restart on the same data: posting goes on after the last batch.
    common::kill_9_under_load(node, Vec::new()).await;
    let node = Node::start(dir.path(), &[]);
    let top = send_all(&client, &node.http(), &txs[20..]).await;
    let status = wait_posted(&client, &node.http(), top).await;
    let all = all_batches(&client, &node.http(), status["latest"]["height"].as_u64().expect("height")).await;
    let heights: Vec<u64> = all.iter().map(|(h, _)| *h).collect();
    assert_eq!(heights, (1..=heights.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    assert!(*heights.last().expect("blocks") >= status["postedThrough"].as_u64().expect("through"));
    // After the restart, a transaction of the first run is firm (from the store and the
    // batches read back), and so is one of the second.
    assert_eq!(wait_firm(&client, &node.http(), &txs[0].0).await["status"], "firm");
    assert_eq!(wait_firm(&client, &node.http(), &txs[txs.len() - 1].0).await["status"], "firm");
    let carried: Vec<_> = all.iter().flat_map(|(_, t)| t.clone()).collect();
    for (hash, _) in &txs {
        assert_eq!(carried.iter().filter(|h| *h == hash).count(), 1, "{hash} is in exactly one batch");
    }
}

/// Anvil's development account 9, which pays for the batch transactions.
const L1_KEY: &str = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6";
/// Account 8, for the calldata run.
const L1_KEY_2: &str = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97";

/// The L1 transaction of DA batch `n` as the node's index records it.
fn l1_tx(datadir: &std::path::Path, n: usize) -> Value {
    let text = std::fs::read_to_string(datadir.join("da-ethereum/index.jsonl")).expect("index");
    serde_json::from_str(text.lines().nth(n - 1).expect("line")).expect("entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_round_trip_through_anvil_blobs_and_calldata_across_a_kill() {
    let client = reqwest::Client::new();
    let anvil = common::Anvil::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let to = alloy_primitives::Address::repeat_byte(0x52);
    let txs = common::dev_transfers(3, to);
    let flags = ["--da", "ethereum", "--da.l1-rpc", &anvil.url, "--da.l1-key", L1_KEY];

    let node = Node::start(dir.path(), &flags);
    let top = send_all(&client, &node.http(), &txs[..15]).await;
    let status = wait_posted(&client, &node.http(), top).await;
    assert_eq!(status["backend"], "ethereum", "{status}");
    let firm = wait_firm(&client, &node.http(), &txs[0].0).await;
    assert_eq!(firm["da"]["backend"], "ethereum", "{firm}");
    // On the L1: a blob transaction (type 3) to the inbox, from the poster's account.
    let entry = l1_tx(dir.path(), 1);
    assert_eq!(entry["kind"], "blob");
    let l1 = rpc(&client, &anvil.url, "eth_getTransactionByHash", json!([entry["tx"]])).await.expect("L1 tx");
    assert_eq!(l1["type"], "0x3", "{l1}");
    assert_eq!(l1["to"].as_str().map(str::to_lowercase).as_deref(), Some("0x00000000000000000000000000000000ca1d0da0"));
    assert!(!l1["blobVersionedHashes"].as_array().expect("hashes").is_empty());

    // kill -9, restart: posting goes on after the last batch on the L1.
    common::kill_9_under_load(node, Vec::new()).await;
    let node = Node::start(dir.path(), &flags);
    let top = send_all(&client, &node.http(), &txs[15..]).await;
    let status = wait_posted(&client, &node.http(), top).await;
    let all = all_batches(&client, &node.http(), status["latest"]["height"].as_u64().expect("height")).await;
    let heights: Vec<u64> = all.iter().map(|(h, _)| *h).collect();
    assert_eq!(heights, (1..=heights.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    let carried: Vec<_> = all.iter().flat_map(|(_, t)| t.clone()).collect();
    for (hash, _) in &txs {
        assert_eq!(carried.iter().filter(|h| *h == hash).count(), 1, "{hash} is in exactly one batch");
    }
    assert_eq!(wait_firm(&client, &node.http(), &txs[txs.len() - 1].0).await["da"]["backend"], "ethereum");
    drop(node);

    // Calldata: the same batches as an ordinary transaction's input.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let flags = ["--da", "ethereum", "--da.l1-rpc", &anvil.url, "--da.l1-key", L1_KEY_2, "--da.mode", "calldata"];
    let node = Node::start(dir2.path(), &flags);
    let top = send_all(&client, &node.http(), &txs[..5]).await;
    wait_posted(&client, &node.http(), top).await;
    wait_firm(&client, &node.http(), &txs[0].0).await;
    let entry = l1_tx(dir2.path(), 1);
    assert_eq!(entry["kind"], "calldata");
    let l1 = rpc(&client, &anvil.url, "eth_getTransactionByHash", json!([entry["tx"]])).await.expect("L1 tx");
    assert_eq!(l1["type"], "0x2", "{l1}");
    let input: alloy_primitives::Bytes = serde_json::from_value(l1["input"].clone()).expect("input");
    assert_eq!(json!(alloy_primitives::keccak256(&input)), entry["commitment"]);
    all_batches(&client, &node.http(), 1).await;
}
