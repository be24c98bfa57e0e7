//! Relaying between the nodes of a set, over their JSON-RPC:
//!
//! - Transactions: what a client sends to one validator goes to the others
//!   (`cairn_relayRawTransaction`, which admits it without relaying it again), so that
//!   whichever validator proposes next includes it. Best effort and bounded: batches of
//!   at most [`BATCH`], a 2 s timeout per peer; a peer that is down misses the batch
//!   (each validator still includes what it holds when it proposes).
//! - Evidence: each record a node keeps for the first time goes to every peer
//!   (`cairn_submitEvidence`); a peer that keeps it for the first time sends it on in
//!   turn, so it spreads over the set and stops where it is known. Bounded by
//!   [`EVIDENCE_QUEUE`]; each send is retried for a while (a peer may be restarting).

use alloy_primitives::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Most transactions sent to a peer in one JSON-RPC batch.
pub const BATCH: usize = 256;
/// Most evidence records waiting to be gossiped.
pub const EVIDENCE_QUEUE: usize = 1_024;
/// Attempts to hand one record to one peer (1 s apart).
const EVIDENCE_ATTEMPTS: u32 = 30;

fn client() -> Option<reqwest::Client> {
    match reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!("relay to peers disabled: {e}");
            None
        }
    }
}

pub async fn run(mut queue: mpsc::Receiver<Bytes>, peers: Vec<String>) {
    let Some(client) = client() else { return };
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

/// Gossips each evidence record from `queue` to every peer.
pub async fn evidence(mut queue: mpsc::Receiver<Value>, peers: Vec<String>) {
    let Some(client) = client() else { return };
    while let Some(record) = queue.recv().await {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "cairn_submitEvidence", "params": [record]});
        let sends = peers.iter().map(|url| {
            let (client, body) = (&client, &body);
            async move {
                for attempt in 1..=EVIDENCE_ATTEMPTS {
                    match client.post(url).json(body).send().await {
                        // Kept, known already, or refused: either way the peer has judged it.
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => tracing::debug!(peer = %url, attempt, "gossiping evidence: HTTP {}", r.status()),
                        Err(e) => tracing::debug!(peer = %url, attempt, "gossiping evidence failed: {e}"),
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                tracing::warn!(peer = %url, "evidence not gossiped to this peer");
            }
        });
        futures::future::join_all(sends).await;
    }
}
