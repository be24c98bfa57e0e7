//! The admission log: every accepted transaction is appended (group commit, one
//! `fdatasync` per batch) before ingress answers, and the pool is reloaded from it at
//! start. Records carry the acceptance time; the log is compacted to the live pool.

use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::B256;
use cairn_mempool::Mempool;
use cairn_primitives::TxEnvelope;
use cairn_storage::{RecordLog, Store};
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::error::SequencerError;
use crate::pipeline::Pipeline;

/// First byte of an admission record that carries its acceptance time; no EIP-2718
/// transaction starts with it (types are 0x01.., legacy RLP lists 0xc0..).
const TIMED_RECORD: u8 = 0x00;

/// The admission-log record of a transaction accepted at `received_ms`:
/// `0x00 ‖ received_ms (u64 BE) ‖ raw EIP-2718 bytes`.
pub(crate) fn admission_record(received_ms: u64, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + raw.len());
    out.push(TIMED_RECORD);
    out.extend_from_slice(&received_ms.to_be_bytes());
    out.extend_from_slice(raw);
    out
}

/// An admission record's acceptance time (if it has one) and raw transaction. Records
/// of bare raw bytes (an older log, or transactions of unsealed blocks) have no time.
pub(crate) fn parse_admission_record(record: &[u8]) -> (Option<u64>, &[u8]) {
    match record.split_first() {
        Some((&TIMED_RECORD, rest)) if rest.len() > 8 => {
            let (ms, raw) = rest.split_at(8);
            (Some(u64::from_be_bytes(ms.try_into().expect("8 bytes"))), raw)
        }
        _ => (None, record),
    }
}

/// Admission records of every pooled transaction (with its acceptance time) and of every
/// transaction in an executed but unsealed block (what a compacted admission log must
/// hold: none of them is in the store yet).
pub(crate) fn pool_records(pool: &Mutex<Mempool>, pipeline: &Mutex<Pipeline>) -> Vec<Vec<u8>> {
    use alloy_eips::eip2718::Encodable2718;
    let mut out: Vec<Vec<u8>> = pool
        .lock()
        .all()
        .map(|p| {
            let raw = p.tx.inner().encoded_2718();
            if p.received_ms == 0 {
                raw
            } else {
                admission_record(p.received_ms, &raw)
            }
        })
        .collect();
    let p = pipeline.lock();
    for block in &p.unsealed {
        out.extend(block.body.iter().map(|(_, _, raw)| raw.to_vec()));
    }
    for part in p.open.iter().flat_map(|o| &o.fragments) {
        out.extend(part.body.iter().map(|(_, _, raw)| raw.to_vec()));
    }
    out
}

/// Re-admits the transactions of the admission log after a restart. Those already in a
/// block, replaced or otherwise stale fail the pool's checks and are dropped. Returns
/// the re-admitted transactions whose acceptance time the log kept.
pub(crate) fn reload_pool(
    store: &Store,
    pool: &Mutex<Mempool>,
    records: Vec<Vec<u8>>,
    dev: bool,
) -> Result<Vec<(B256, u64)>, SequencerError> {
    use alloy_consensus::Transaction as _;
    let mut entries = Vec::with_capacity(records.len());
    for record in records {
        let (received_ms, mut raw) = parse_admission_record(&record);
        let Ok(tx) = TxEnvelope::decode_2718(&mut raw) else { continue };
        let Ok(sender) = cairn_primitives::impersonation::recover_sender(&tx, dev) else { continue };
        entries.push((sender, tx.nonce(), tx, received_ms.unwrap_or(0)));
    }
    entries.sort_by_key(|(sender, nonce, _, _)| (*sender, *nonce));
    let mut pool = pool.lock();
    let mut timed = Vec::new();
    let mut kept = 0usize;
    for (sender, _, tx, received_ms) in entries {
        let state_nonce = store.account(sender)?.map(|a| a.nonce).unwrap_or(0);
        let hash = *tx.tx_hash();
        let recovered = alloy_consensus::transaction::Recovered::new_unchecked(tx, sender);
        if pool.insert_at(recovered, state_nonce, received_ms).is_ok() {
            kept += 1;
            if received_ms != 0 {
                timed.push((hash, received_ms));
            }
        }
    }
    tracing::info!(pending = kept, "reloaded the transaction pool from the admission log");
    Ok(timed)
}

struct PersistRequest {
    raw: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Group commit for accepted transactions: requests queue (bounded) and are appended to
/// the admission log in batches, one `fdatasync` per batch. When the log has grown past
/// [`COMPACT_AT`] and four times the live pool, it is rewritten to just the pool.
pub(crate) struct Persister {
    tx: mpsc::Sender<PersistRequest>,
}

/// Most pending persistence requests; senders wait (back-pressure) beyond it.
const PERSIST_QUEUE: usize = 16_384;
/// Most requests folded into one fsync.
const PERSIST_BATCH: usize = 4_096;
/// Log size (bytes) from which compaction is considered.
const COMPACT_AT: u64 = 64 * 1024 * 1024;

impl Persister {
    pub(crate) fn start(log: RecordLog, pool: Arc<Mutex<Mempool>>, pipeline: Arc<Mutex<Pipeline>>) -> Self {
        let (tx, mut rx) = mpsc::channel::<PersistRequest>(PERSIST_QUEUE);
        let log = Arc::new(std::sync::Mutex::new(log));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(PERSIST_BATCH);
            while rx.recv_many(&mut batch, PERSIST_BATCH).await > 0 {
                let requests = std::mem::take(&mut batch);
                let (log, pool, pipeline) = (log.clone(), pool.clone(), pipeline.clone());
                let joined = tokio::task::spawn_blocking(move || {
                    let Ok(mut log) = log.lock() else { return };
                    let result = log.append(requests.iter().map(|r| r.raw.as_slice())).map_err(|e| e.to_string());
                    for r in requests {
                        let _ = r.done.send(result.clone());
                    }
                    if log.len_bytes() > COMPACT_AT {
                        let live = pool_records(&pool, &pipeline);
                        let live_bytes: u64 = live.iter().map(|r| r.len() as u64 + 8).sum();
                        if log.len_bytes() > 4 * live_bytes {
                            if let Err(e) = log.rewrite(live.iter().map(Vec::as_slice)) {
                                tracing::error!("admission log compaction failed: {e}");
                            }
                        }
                    }
                })
                .await;
                if let Err(e) = joined {
                    tracing::error!("admission log task failed: {e}");
                }
            }
        });
        Self { tx }
    }

    pub(crate) async fn persist(&self, raw: Vec<u8>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx.send(PersistRequest { raw, done }).await.map_err(|_| "admission log stopped".to_string())?;
        wait.await.map_err(|_| "admission log stopped".to_string())?
    }
}
