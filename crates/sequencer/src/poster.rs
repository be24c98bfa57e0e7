//! The DA poster: decided, sealed blocks go to the data-availability layer in batches
//! (`cairn_da::Batch`), off the ordering path, on a thread of their own.
//!
//! - A batch holds up to [`PosterConfig::max_blocks`] consecutive blocks and stays under
//!   [`PosterConfig::max_bytes`] of raw transactions; it is posted when it is full or
//!   when [`PosterConfig::interval`] has passed with blocks waiting.
//! - A failed post is retried with back-off (1 s, doubling, at most 30 s); nothing is
//!   skipped meanwhile, and what waits is bounded by the store itself (blocks are read
//!   from it, not queued).
//! - After a restart the poster reads the newest batch back and goes on with the block
//!   after its last one: no gap, no duplicate (a batch is posted whole or not at all).
//! - Each posted batch is read back from the layer and checked against the store (the
//!   same blocks and certificates, its commitments right): its blocks become `firm`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Bytes;
use cairn_da::{Batch, BatchBlock, DaBackend, DaRef};
use cairn_primitives::TxEnvelope;
use parking_lot::Mutex;

use crate::chain::Chain;
use crate::da::{DaHandle, DaStatus};
use crate::error::SequencerError;

/// Where the poster takes decided blocks from and reports what became firm: a rollup's
/// chain (its sealed blocks) or a shared set's order store (its decided blocks).
pub trait PostSource: Send + Sync + 'static {
    /// The newest block ready to post.
    fn ready_through(&self) -> u64;
    /// Waits at most `timeout` for block `height` to be ready; whether it is.
    fn wait_ready(&self, height: u64, timeout: Duration) -> bool;
    /// Block `height` as a batch carries it, with its transactions' byte size.
    fn batch_block(&self, height: u64) -> Result<Option<(BatchBlock, usize)>, SequencerError>;
    /// The stored decided block `height` and its certificate's bytes.
    fn stored(&self, height: u64) -> Result<Option<(cairn_primitives::SequencerBlock, Vec<u8>)>, SequencerError>;
    /// Blocks `first..=last` are on the layer, read back and checked.
    fn firm(&self, first: u64, last: u64, da: DaRef) -> Result<(), SequencerError>;
    /// The layer and the poster's status, for RPC.
    fn set_da(&self, handle: DaHandle);
}

impl PostSource for Chain {
    fn ready_through(&self) -> u64 {
        self.latest().0.number
    }

    fn wait_ready(&self, height: u64, timeout: Duration) -> bool {
        self.wait_sealed_for(height, timeout)
    }

    fn batch_block(&self, height: u64) -> Result<Option<(BatchBlock, usize)>, SequencerError> {
        batch_block(self, height)
    }

    fn stored(&self, height: u64) -> Result<Option<(cairn_primitives::SequencerBlock, Vec<u8>)>, SequencerError> {
        Ok(self.snapshot().sequencer_block(height)?)
    }

    fn firm(&self, first: u64, last: u64, da: DaRef) -> Result<(), SequencerError> {
        self.mark_firm(first, last, da)
    }

    fn set_da(&self, handle: DaHandle) {
        Chain::set_da(self, Some(handle));
    }
}

/// How batches are cut.
#[derive(Debug, Clone)]
pub struct PosterConfig {
    pub max_blocks: usize,
    /// Raw transaction bytes per batch, at most (a block larger than this alone is
    /// posted alone).
    pub max_bytes: usize,
    pub interval: Duration,
}

impl Default for PosterConfig {
    fn default() -> Self {
        Self { max_blocks: 64, max_bytes: 4 * 1024 * 1024, interval: Duration::from_secs(1) }
    }
}

/// The running poster; stops (after the post in progress) when dropped or stopped.
pub struct DaPoster {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    status: Arc<Mutex<DaStatus>>,
}

/// The block after the last one the layer holds.
fn resume_from(backend: &dyn DaBackend) -> Result<u64, SequencerError> {
    let da = |e: cairn_da::DaError| SequencerError::Invalid(format!("DA: {e}"));
    let Some(latest) = backend.latest().map_err(da)? else { return Ok(1) };
    let bytes = backend
        .fetch(latest.height)
        .map_err(da)?
        .ok_or_else(|| SequencerError::Invalid(format!("DA: batch {} is missing", latest.height)))?;
    let (header, _) = Batch::read_header(&bytes).map_err(da)?;
    Ok(header.last_height + 1)
}

/// Reads batch `r` back from the layer and checks it against this node's store (every
/// block and certificate the same, every namespace commitment right): its blocks are
/// then firm. Returns their range.
fn read_back(source: &dyn PostSource, backend: &dyn DaBackend, r: &DaRef) -> Result<(u64, u64), SequencerError> {
    let da = |e: cairn_da::DaError| SequencerError::Invalid(format!("DA: {e}"));
    let bytes = backend
        .fetch(r.height)
        .map_err(da)?
        .ok_or_else(|| SequencerError::Invalid(format!("DA: batch {} is not on the layer", r.height)))?;
    if alloy_primitives::keccak256(&bytes) != r.commitment {
        return Err(SequencerError::Invalid(format!("DA: batch {} is not the one posted", r.height)));
    }
    let (header, batch) = Batch::decode(&bytes).map_err(da)?;
    for b in &batch.blocks {
        let block = b.block().map_err(da)?;
        let stored = source.stored(block.height)?;
        if stored.as_ref().is_none_or(|(s, c)| *s != block || c.as_slice() != b.certificate.as_ref()) {
            return Err(SequencerError::Invalid(format!(
                "DA: batch {} holds a block {} that is not this node's",
                r.height, block.height
            )));
        }
    }
    Ok((header.first_height, header.last_height))
}

/// Block `height` as a batch carries it, with the byte size of its transactions.
fn batch_block(chain: &Chain, height: u64) -> Result<Option<(BatchBlock, usize)>, SequencerError> {
    let reader = chain.snapshot();
    let Some((block, certificate)) = reader.sequencer_block(height)? else { return Ok(None) };
    let mut txs = Vec::with_capacity(block.transactions.len());
    for hash in reader.block_tx_hashes(height)? {
        let tx = reader.tx(hash)?.ok_or_else(|| SequencerError::Invalid(format!("transaction {hash} missing")))?;
        txs.push(tx.raw);
    }
    let size = txs.iter().map(|t: &Bytes| t.len()).sum();
    let own = chain.config.chain_id;
    let namespace_of = |raw: &Bytes| {
        TxEnvelope::decode_2718_exact(raw)
            .ok()
            .and_then(|tx| alloy_consensus::Transaction::chain_id(&tx))
            .unwrap_or(own)
    };
    Ok(Some((BatchBlock::new(&block, certificate.into(), &txs, namespace_of), size)))
}

impl DaPoster {
    /// Starts posting the chain's sealed blocks to `backend`, from the block after the
    /// newest batch's last one.
    pub fn start<S: PostSource>(
        chain: Arc<S>,
        backend: Arc<dyn DaBackend>,
        config: PosterConfig,
    ) -> Result<Self, SequencerError> {
        let mut next = resume_from(backend.as_ref())?;
        // What the layer holds from before is firm again once read back.
        if let Some(latest) = backend.latest().map_err(|e| SequencerError::Invalid(format!("DA: {e}")))? {
            let (first, last) = read_back(chain.as_ref(), backend.as_ref(), &latest)?;
            chain.firm(first, last, latest)?;
        }
        let status = Arc::new(Mutex::new(DaStatus {
            backend: backend.name().to_string(),
            latest: backend.latest().map_err(|e| SequencerError::Invalid(format!("DA: {e}")))?,
            posted_through: next - 1,
            error: None,
        }));
        tracing::info!(backend = backend.name(), next, "DA poster started");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, shared) = (stop.clone(), status.clone());
        let (backend_for_rpc, chain_for_rpc) = (backend.clone(), chain.clone());
        let thread = std::thread::Builder::new()
            .name("cairn-da-poster".into())
            // Blob encoding and KZG commitments (the `ethereum` backend) need more than
            // the default 2 MiB of stack.
            .stack_size(32 << 20)
            .spawn(move || {
                crate::builder::lower_priority(crate::builder::SEALER_NICE);
                let mut waiting_since: Option<Instant> = None;
                let mut backoff = Duration::from_secs(1);
                while !flag.load(Ordering::Relaxed) {
                    let sealed = chain.ready_through();
                    if next > sealed {
                        waiting_since = None;
                        // Returns at once while the block is not even decided: no spin.
                        if !chain.wait_ready(next, Duration::from_millis(200)) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        continue;
                    }
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    let ready = (sealed - next + 1) as usize >= config.max_blocks || since.elapsed() >= config.interval;
                    if !ready {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    match post_one(chain.as_ref(), backend.as_ref(), next, sealed, &config) {
                        Ok((r, last)) => {
                            tracing::debug!(height = r.height, first = next, last, bytes = r.size, "batch posted");
                            let firm = read_back(chain.as_ref(), backend.as_ref(), &r)
                                .and_then(|(first, last)| chain.firm(first, last, r.clone()));
                            if let Err(e) = firm {
                                tracing::error!(height = r.height, "a posted batch does not read back: {e}");
                            }
                            next = last + 1;
                            *shared.lock() = DaStatus {
                                backend: backend.name().into(),
                                latest: Some(r),
                                posted_through: last,
                                error: None,
                            };
                            waiting_since = None;
                            backoff = Duration::from_secs(1);
                        }
                        Err(e) => {
                            tracing::warn!(first = next, retry_in = ?backoff, "posting a batch failed: {e}");
                            shared.lock().error = Some(e.to_string());
                            let until = Instant::now() + backoff;
                            while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            })
            .map_err(|e| SequencerError::Invalid(format!("starting the DA poster: {e}")))?;
        chain_for_rpc.set_da(DaHandle { backend: backend_for_rpc, status: status.clone() });
        Ok(Self { stop, thread: Some(thread), status })
    }

    pub fn status(&self) -> DaStatus {
        self.status.lock().clone()
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DaPoster {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Posts blocks `first..` (up to `sealed`, within the batch bounds) as one batch.
fn post_one(
    chain: &dyn PostSource,
    backend: &dyn DaBackend,
    first: u64,
    sealed: u64,
    config: &PosterConfig,
) -> Result<(DaRef, u64), SequencerError> {
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for height in first..=sealed {
        let Some((block, size)) = chain.batch_block(height)? else {
            return Err(SequencerError::Invalid(format!("sealed block {height} has no sequencer block")));
        };
        if !blocks.is_empty() && (blocks.len() >= config.max_blocks || bytes + size > config.max_bytes) {
            break;
        }
        bytes += size;
        blocks.push(block);
    }
    let last = first + blocks.len() as u64 - 1;
    let encoded = Batch { blocks }.encode().map_err(|e| SequencerError::Invalid(format!("DA: {e}")))?;
    let r = backend.post(&encoded).map_err(|e| SequencerError::Invalid(format!("DA: {e}")))?;
    Ok((r, last))
}
