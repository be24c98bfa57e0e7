//! Relaying transactions between the validators of a set: what a client sends to one
//! validator goes to the others' JSON-RPC (`cairn_relayRawTransaction`, which admits it
//! without relaying it again), so that whichever validator proposes next includes it.
//! Best effort and bounded: batches of at most [`BATCH`], a 2 s timeout per peer; a peer
//! that is down misses the batch (each validator still includes what it holds when it
//! proposes).

use alloy_primitives::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Most transactions sent to a peer in one JSON-RPC batch.
pub const BATCH: usize = 256;

pub async fn run(mut queue: mpsc::Receiver<Bytes>, peers: Vec<String>) {
    let client = match reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("transaction relay disabled: {e}");
            return;
        }
    };
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(raw) => batch.push(raw),
                Err(_) => break,
            }
        }
        let body: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(i, raw)| json!({"jsonrpc": "2.0", "id": i, "method": "cairn_relayRawTransaction", "params": [raw]}))
            .collect();
        let sends = peers.iter().map(|url| {
            let request = client.post(url).json(&body).send();
            async move {
                if let Err(e) = request.await {
                    tracing::debug!(peer = %url, "relaying transactions failed: {e}");
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}
