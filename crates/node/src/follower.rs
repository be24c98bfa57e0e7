//! The follower's side of `cairn rollup`: reading the set's decided blocks, checking
//! them, executing them, and forwarding clients' transactions to the set (see
//! `crate::rollup`).

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{keccak256, Bytes, B256};
use cairn_consensus::{Certificate, ValidatorSet};
use cairn_primitives::SequencerBlock;
use cairn_sequencer::{Chain, Forward};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use serde_json::{json, Value};

/// Transactions waiting to be forwarded to the set.
pub const FORWARD_QUEUE: usize = 1_024;
/// Decided blocks checked and waiting to be executed.
const APPLY_QUEUE: usize = 256;
/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the follower needs to follow and check the set.
#[derive(Clone)]
pub struct Follow {
    pub urls: Vec<String>,
    pub namespace: u64,
    pub set_chain_id: u64,
    pub validators: Arc<ValidatorSet>,
    /// Read the set's blocks from its DA layer only, not from its decided stream.
    pub from_da: bool,
}

pub fn http_url(url: &str) -> String {
    url.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1)
}

fn ws_url(url: &str) -> String {
    url.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1)
}

/// A decided block, checked, with the rollup's transactions.
struct Checked {
    height: u64,
    timestamp: u64,
    txs: Vec<Bytes>,
}

/// Checks one `cairn_decided` message for height `expected`: the certificate is a
/// commit of the set for exactly this block, and the transactions are the block's of
/// the namespace, in order.
fn check(f: &Follow, expected: u64, msg: &Value) -> Result<Checked, String> {
    let block: SequencerBlock =
        serde_json::from_value(msg["block"].clone()).map_err(|e| format!("undecodable block: {e}"))?;
    let cert_bytes: Bytes =
        serde_json::from_value(msg["certificate"].clone()).map_err(|e| format!("undecodable certificate: {e}"))?;
    let txs: Vec<Bytes> =
        serde_json::from_value(msg["transactions"].clone()).map_err(|e| format!("undecodable transactions: {e}"))?;
    check_block(f, expected, block, &cert_bytes, txs)
}

/// Checks decided block `block` for height `expected`: the certificate is a commit of
/// the set for exactly this block, and `txs` are the block's transactions of the
/// namespace, in order.
fn check_block(
    f: &Follow,
    expected: u64,
    block: SequencerBlock,
    cert_bytes: &[u8],
    txs: Vec<Bytes>,
) -> Result<Checked, String> {
    if block.height != expected {
        return Err(format!("block {} where {expected} was next", block.height));
    }
    if block.chain_id != f.set_chain_id {
        return Err(format!("block of chain {}, the set is {}", block.chain_id, f.set_chain_id));
    }
    let hash = block.hash();
    match Certificate::decode(cert_bytes).map_err(|e| e.to_string())? {
        Certificate::Commit(c) => {
            if c.height != block.height || B256::from(c.block) != hash {
                return Err(format!(
                    "the certificate is for block {} at {}, not this one",
                    B256::from(c.block),
                    c.height
                ));
            }
            c.verify(f.set_chain_id, &f.validators).map_err(|e| e.to_string())?;
        }
        Certificate::Solo { .. } => return Err("a shared set's block needs a commit certificate".into()),
    }
    let namespaces = block.namespaces.as_ref().ok_or("the block names no namespaces")?;
    if namespaces.len() != block.transactions.len() {
        return Err("the block names a namespace for some of its transactions only".into());
    }
    let ours: Vec<B256> =
        block.transactions.iter().zip(namespaces).filter(|(_, ns)| **ns == f.namespace).map(|(h, _)| *h).collect();
    let got: Vec<B256> = txs.iter().map(keccak256).collect();
    if ours != got {
        return Err(format!("{} transactions sent for the {} the block holds of this rollup", got.len(), ours.len()));
    }
    Ok(Checked { height: block.height, timestamp: block.timestamp, txs })
}

/// A DA batch read from the set's nodes: where it is, its bytes decoded and checked (the
/// payload hash and every namespace commitment), and its blocks checked as decided
/// blocks of the set with this rollup's transactions.
struct DaBatch {
    reference: cairn_da::DaRef,
    first: u64,
    last: u64,
    blocks: Vec<Checked>,
}

/// Batch `n` of the set's DA layer as `url` serves it (`None`: not there yet).
async fn fetch_batch(client: &reqwest::Client, f: &Follow, url: &str, n: u64) -> Result<Option<DaBatch>, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "cairn_getDaBatch", "params": [format!("{n:#x}")]});
    let r: Value = client
        .post(http_url(url))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = r.get("error") {
        return Err(format!("cairn_getDaBatch: {e}"));
    }
    if r["result"].is_null() {
        return Ok(None);
    }
    let data: Bytes = serde_json::from_value(r["result"]["data"].clone()).map_err(|e| format!("batch data: {e}"))?;
    let backend = r["result"]["backend"].as_str().unwrap_or("local").to_string();
    let (header, batch) = cairn_da::Batch::decode(&data).map_err(|e| format!("DA batch {n}: {e}"))?;
    let mut blocks = Vec::with_capacity(batch.blocks.len());
    for (i, b) in batch.blocks.iter().enumerate() {
        let block = b.block().map_err(|e| e.to_string())?;
        let txs = b.groups.iter().filter(|g| g.namespace == f.namespace).flat_map(|g| g.txs.clone()).collect();
        let checked = check_block(f, header.first_height + i as u64, block, &b.certificate, txs)
            .map_err(|e| format!("DA batch {n}: {e}"))?;
        blocks.push(checked);
    }
    let reference = cairn_da::DaRef { backend, height: n, commitment: keccak256(&data), size: data.len() as u64 };
    Ok(Some(DaBatch { reference, first: header.first_height, last: header.last_height, blocks }))
}

/// The DA height to read next, kept in the data directory across restarts.
fn progress_file(datadir: &std::path::Path) -> std::path::PathBuf {
    datadir.join("da-progress")
}

/// Reads the set's DA batches in order and marks the rollup's blocks they hold `firm`
/// once this follower executed them and they are the same: each block's transactions
/// executed here must be, in order, among the batch's transactions of the namespace (the
/// rest were rejected). A difference is a retraction ([`Chain::retract`]): the
/// transactions of the block and every later sealed one become `retracted`, status
/// subscribers hear it, `cairn_getRetractions` lists it, and nothing from it on becomes
/// firm.
pub fn start_firm(chain: Arc<Chain>, f: Follow, datadir: std::path::PathBuf) {
    chain.track_firm();
    tokio::spawn(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        let progress = progress_file(&datadir);
        let mut n: u64 = std::fs::read_to_string(&progress).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1);
        let mut turn = 0usize;
        loop {
            let url = f.urls[turn % f.urls.len()].clone();
            let fetch_started = std::time::Instant::now();
            let batch = match fetch_batch(&client, &f, &url, n).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%url, da_height = n, "reading the DA layer: {e}");
                    turn += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Compared once sealed (the snapshot holds the sealed blocks).
            while chain.latest().0.number < batch.last {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let reader = chain.snapshot();
            for b in &batch.blocks {
                let executed = match reader.block_tx_hashes(b.height) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(height = b.height, "reading an executed block: {e}; firm status stops");
                        return;
                    }
                };
                let ordered: Vec<B256> = b.txs.iter().map(keccak256).collect();
                if let Err(reason) = executed_matches(&executed, &ordered) {
                    if let Err(e) = chain.retract(b.height, batch.reference.clone(), reason) {
                        tracing::error!(height = b.height, "recording a retraction: {e}");
                    }
                    return;
                }
            }
            if let Err(e) = chain.mark_firm(batch.first, batch.last, batch.reference.clone()) {
                tracing::error!("marking blocks firm: {e}");
            }
            tracing::debug!(
                da_height = n,
                first = batch.first,
                last = batch.last,
                ms = fetch_started.elapsed().as_millis() as u64,
                "blocks firm"
            );
            n += 1;
            let _ = std::fs::write(&progress, n.to_string());
        }
    });
}

/// Whether the transactions `executed` in a block are, in order, among those the DA
/// layer's batch `ordered` in it (the others were rejected at execution); else what
/// differs.
pub fn executed_matches(executed: &[B256], ordered: &[B256]) -> Result<(), String> {
    let mut it = ordered.iter();
    match executed.iter().find(|h| !it.any(|o| o == *h)) {
        None => Ok(()),
        Some(h) => Err(format!(
            "transaction {h} was executed here but is not, in that order, among the block's {} transactions on the DA layer",
            ordered.len()
        )),
    }
}

/// Follows the set from its DA layer alone (no decided stream): batch after batch, from
/// the one holding the block after this follower's newest.
async fn follow_da(
    f: &Follow,
    url: &str,
    next: &mut u64,
    apply: &tokio::sync::mpsc::Sender<Checked>,
) -> Result<(), String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let mut n = 1u64;
    loop {
        let Some(batch) = fetch_batch(&client, f, url, n).await? else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        n += 1;
        for b in batch.blocks {
            if b.height < *next {
                continue;
            }
            if b.height > *next {
                return Err(format!("the DA layer skips from block {} to {}", *next, b.height));
            }
            if apply.send(b).await.is_err() {
                return Ok(());
            }
            *next += 1;
        }
    }
}

/// Starts following: a task reads and checks decided blocks, a thread executes them.
pub fn start(chain: Arc<Chain>, f: Follow) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Checked>(APPLY_QUEUE);
    let applier = chain.clone();
    std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || {
            while let Some(c) = rx.blocking_recv() {
                if c.height <= applier.tip().number {
                    continue;
                }
                match cairn_sequencer::apply_decided(&applier, c.height, c.timestamp, &c.txs) {
                    Ok(a) => tracing::debug!(
                        number = a.number,
                        included = a.included,
                        rejected = a.rejected.len(),
                        "rollup block executed"
                    ),
                    Err(e) => {
                        tracing::error!(height = c.height, "executing a decided block failed: {e}; the follower stops");
                        return;
                    }
                }
            }
        })
        .expect("spawn the follower thread");
    tokio::spawn(async move {
        let mut next = chain.tip().number + 1;
        let mut backoff = Duration::from_millis(100);
        let mut turn = 0usize;
        loop {
            let url = ws_url(&f.urls[turn % f.urls.len()]);
            turn += 1;
            let followed = if f.from_da {
                follow_da(&f, &url, &mut next, &tx).await
            } else {
                follow_one(&f, &url, &mut next, &tx).await
            };
            match followed {
                Ok(()) => return,
                Err(e) => tracing::warn!(%url, next, "following the set: {e}; trying again"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
}

/// Reads decided blocks from `url` from `*next` on until the connection ends. `Ok`
/// only when the executor is gone (the node stops).
async fn follow_one(
    f: &Follow,
    url: &str,
    next: &mut u64,
    apply: &tokio::sync::mpsc::Sender<Checked>,
) -> Result<(), String> {
    let client = jsonrpsee::ws_client::WsClientBuilder::default()
        .max_request_size(16 << 20)
        .max_response_size(64 << 20)
        .build(url)
        .await
        .map_err(|e| e.to_string())?;
    let mut sub: Subscription<Value> = client
        .subscribe(
            "cairn_subscribeDecided",
            rpc_params![format!("{:#x}", f.namespace), format!("{:#x}", *next)],
            "cairn_unsubscribeDecided",
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%url, from = *next, "following the set's decided blocks");
    while let Some(msg) = sub.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        let checked = check(f, *next, &msg).map_err(|e| format!("block {} refused: {e}", *next))?;
        if apply.send(checked).await.is_err() {
            return Ok(());
        }
        *next += 1;
    }
    Err("the subscription ended".into())
}

/// Sends each forwarded transaction to the set's nodes in turn until one answers.
pub async fn forward(mut queue: tokio::sync::mpsc::Receiver<Forward>, urls: Vec<String>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap_or_default();
    while let Some(item) = queue.recv().await {
        match item {
            Forward::Tx(raw, answer) => {
                let result = call_set(&client, &urls, "eth_sendRawTransaction", json!([raw])).await;
                let _ = answer.send(result.and_then(|v| serde_json::from_value::<B256>(v).map_err(|e| e.to_string())));
            }
            Forward::Call { method, params, answer } => {
                // A call may wait (a bundle's preconfirmation): answered on its own task.
                let (client, urls) = (client.clone(), urls.clone());
                tokio::spawn(async move {
                    let _ = answer.send(call_set(&client, &urls, method, params).await);
                });
            }
        }
    }
}

/// `method(params)` on the first of the set's `urls` that answers: its result, or its
/// error message.
async fn call_set(client: &reqwest::Client, urls: &[String], method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    for url in urls {
        let r = match client.post(http_url(url)).json(&body).send().await {
            Ok(r) => r.json::<Value>().await,
            Err(e) => {
                tracing::debug!(%url, method, "forwarding: {e}");
                continue;
            }
        };
        match r {
            Ok(v) if v.get("result").is_some() => return Ok(v["result"].clone()),
            Ok(v) => return Err(v["error"]["message"].as_str().unwrap_or("refused").to_string()),
            Err(e) => tracing::debug!(%url, method, "forwarding: {e}"),
        }
    }
    Err("no sequencer node could be reached".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_transactions_must_be_an_ordered_subset_of_the_batch() {
        let h = |b: u8| B256::repeat_byte(b);
        assert!(executed_matches(&[h(1), h(3)], &[h(1), h(2), h(3)]).is_ok(), "the second was rejected");
        assert!(executed_matches(&[], &[h(1)]).is_ok());
        assert!(executed_matches(&[h(3), h(1)], &[h(1), h(2), h(3)]).is_err(), "out of order");
        let e = executed_matches(&[h(1), h(4)], &[h(1), h(2)]).expect_err("not in the batch");
        assert!(e.contains(&h(4).to_string()), "{e}");
    }
}
