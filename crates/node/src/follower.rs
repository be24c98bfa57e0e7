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
    if block.height != expected {
        return Err(format!("block {} where {expected} was next", block.height));
    }
    if block.chain_id != f.set_chain_id {
        return Err(format!("block of chain {}, the set is {}", block.chain_id, f.set_chain_id));
    }
    let hash = block.hash();
    let cert_bytes: Bytes =
        serde_json::from_value(msg["certificate"].clone()).map_err(|e| format!("undecodable certificate: {e}"))?;
    match Certificate::decode(&cert_bytes).map_err(|e| e.to_string())? {
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
    let txs: Vec<Bytes> =
        serde_json::from_value(msg["transactions"].clone()).map_err(|e| format!("undecodable transactions: {e}"))?;
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
            match follow_one(&f, &url, &mut next, &tx).await {
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
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    while let Some((raw, answer)) = queue.recv().await {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]});
        let mut result = Err("no sequencer node could be reached".to_string());
        for url in &urls {
            let r = match client.post(http_url(url)).json(&body).send().await {
                Ok(r) => r.json::<Value>().await,
                Err(e) => {
                    tracing::debug!(%url, "forwarding a transaction: {e}");
                    continue;
                }
            };
            match r {
                Ok(v) if v.get("result").is_some() => {
                    result = serde_json::from_value::<B256>(v["result"].clone()).map_err(|e| e.to_string());
                    break;
                }
                Ok(v) => {
                    result = Err(v["error"]["message"].as_str().unwrap_or("refused").to_string());
                    break;
                }
                Err(e) => tracing::debug!(%url, "forwarding a transaction: {e}"),
            }
        }
        let _ = answer.send(result);
    }
}
