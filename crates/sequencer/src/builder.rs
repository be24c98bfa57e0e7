use alloy_consensus::{proofs, Header, Transaction as _, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256};
use cairn_executor::{BlockContext, Mode, Skip, TxOutcome};
use cairn_primitives::{ChainConfig, Hardfork, StoredReceipt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chain::{Chain, ChainEvent, NewBlock, SequencerError};
use crate::pipeline::{ExecutedBlock, Tip};

#[derive(Debug, Clone, Copy)]
pub struct BuilderConfig {
    /// A block closes this often (when there is something to include).
    pub block_time: Duration,
    /// Most transactions considered per block.
    pub max_block_txs: usize,
    /// Produce blocks even when the pool is empty.
    pub empty_blocks: bool,
}

impl Default for BuilderConfig {
    fn default() -> Self {
        Self { block_time: Duration::from_millis(200), max_block_txs: 50_000, empty_blocks: false }
    }
}

/// The slot loop and the sealer, each on its own thread: the builder executes a block
/// every `block_time` on top of the newest executed state; the sealer computes state
/// roots and commits blocks behind it, in order.
pub struct Builder {
    stop: Arc<AtomicBool>,
    chain: Arc<Chain>,
    builder: Option<std::thread::JoinHandle<()>>,
    sealer: Option<std::thread::JoinHandle<()>>,
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// EIP-7685 requests hash of a block with no requests (Prague headers carry it).
pub(crate) fn requests_hash(config: &ChainConfig) -> Option<B256> {
    (config.hardfork == Hardfork::Prague).then_some(alloy_eips::eip7685::EMPTY_REQUESTS_HASH)
}

/// `prevrandao` of block `number` following `tip`: a hash chain over the previous
/// value (a single sequencer has no randomness beacon; this is not randomness). It does
/// not depend on the parent's hash, so the next block can execute before that is known.
pub fn next_prevrandao(tip: &Tip, number: u64) -> B256 {
    let mut input = [0u8; 40];
    input[..32].copy_from_slice(tip.mix_hash.as_slice());
    input[32..].copy_from_slice(&number.to_be_bytes());
    keccak256(input)
}

impl Builder {
    pub fn start(chain: Arc<Chain>, config: BuilderConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let building = chain.clone();
        let builder = std::thread::Builder::new()
            .name("cairn-builder".into())
            .spawn(move || {
                let chain = building;
                let mut next = Instant::now() + config.block_time;
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    next += config.block_time;
                    if next < Instant::now() {
                        next = Instant::now() + config.block_time;
                    }
                    match execute_block(&chain, &config) {
                        // A full block leaves work behind: start the next slot at once.
                        Ok(Some(block)) if block.full => next = Instant::now(),
                        Ok(_) => {}
                        Err(e) => tracing::error!("block building failed: {e}"),
                    }
                }
            })
            .ok();
        let sealing = chain.clone();
        let sealer = std::thread::Builder::new()
            .name("cairn-sealer".into())
            .spawn(move || {
                let chain = sealing;
                while chain.next_unsealed(true).is_some() {
                    if let Err(e) = seal_next(&chain) {
                        tracing::error!("sealing failed (will retry): {e}");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })
            .ok();
        Self { stop, chain, builder, sealer }
    }

    /// Stops the slot loop after the block in progress, then seals every executed block
    /// and stops the sealer.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.builder.take() {
            let _ = h.join();
        }
        self.chain.close_pipeline();
        if let Some(h) = self.sealer.take() {
            let _ = h.join();
        }
    }
}

/// Executes one block on top of the newest executed state and queues it for sealing.
/// Returns it, or `None` when there was nothing to include and empty blocks are off.
pub fn execute_block(chain: &Chain, config: &BuilderConfig) -> Result<Option<Arc<ExecutedBlock>>, SequencerError> {
    let view = chain.pending_view();
    let tip = chain.tip();
    debug_assert_eq!(view.number(), tip.number);
    let base_fee = chain.config.next_base_fee(tip.gas_used, tip.gas_limit, tip.base_fee);
    let candidates = chain.pool.lock().best(base_fee, config.max_block_txs);
    if candidates.is_empty() && !config.empty_blocks {
        return Ok(None);
    }
    let txs: Vec<_> = candidates.iter().map(|p| p.tx.clone()).collect();
    let number = tip.number + 1;
    let timestamp = now_secs().max(tip.timestamp);
    let prevrandao = next_prevrandao(&tip, number);
    let ctx = BlockContext::for_chain(&chain.config, number, timestamp, base_fee, prevrandao);
    let started = std::time::Instant::now();
    let output = chain.executor.execute(&view, &ctx, &txs, Mode::Building)?;
    drop(view);
    let executed = started.elapsed();

    let mut included = Vec::with_capacity(txs.len());
    let mut receipts: Vec<StoredReceipt> = Vec::with_capacity(txs.len());
    let mut dropped = Vec::new();
    let mut next_nonce: HashMap<Address, u64> = HashMap::new();
    let mut out_of_gas = false;
    for (tx, outcome) in txs.iter().zip(output.outcomes) {
        match outcome {
            TxOutcome::Included(receipt) => {
                next_nonce.insert(tx.signer(), tx.nonce() + 1);
                included.push(tx);
                receipts.push(receipt);
            }
            TxOutcome::Skipped(Skip::Invalid(reason)) => {
                tracing::debug!(hash = %tx.tx_hash(), %reason, "dropping invalid transaction");
                dropped.push(*tx.tx_hash());
            }
            TxOutcome::Skipped(Skip::Later(_)) => {}
            TxOutcome::Skipped(Skip::BlockFull { .. }) => out_of_gas = true,
        }
    }
    if included.is_empty() && !config.empty_blocks {
        let mut pool = chain.pool.lock();
        for h in &dropped {
            pool.remove(h);
        }
        return Ok(None);
    }

    let envelopes: Vec<_> = included.iter().map(|t| t.inner().clone()).collect();
    let receipt_envelopes: Vec<_> = receipts.iter().map(|r| r.envelope()).collect();
    let mut logs_bloom = Bloom::ZERO;
    for r in &receipt_envelopes {
        logs_bloom.accrue_bloom(r.logs_bloom());
    }
    let header = Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: chain.config.fee_recipient,
        transactions_root: proofs::calculate_transaction_root(&envelopes),
        receipts_root: proofs::calculate_receipt_root(&receipt_envelopes),
        logs_bloom,
        number,
        gas_limit: chain.config.gas_limit,
        gas_used: output.gas_used,
        timestamp,
        mix_hash: prevrandao,
        base_fee_per_gas: Some(base_fee),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: requests_hash(&chain.config),
        ..Default::default()
    };
    let body: Vec<(B256, Address, Bytes)> =
        included.iter().map(|t| (*t.tx_hash(), t.signer(), Bytes::from(t.inner().encoded_2718()))).collect();
    let full = out_of_gas || txs.len() >= config.max_block_txs;
    let block = Arc::new(ExecutedBlock { header, body, receipts, diff: output.diff, full });
    chain.push_executed(block.clone())?;
    {
        let mut pool = chain.pool.lock();
        pool.on_nonces_used(next_nonce);
        for h in &dropped {
            pool.remove(h);
        }
    }
    tracing::debug!(
        number,
        txs = block.body.len(),
        gas = block.header.gas_used,
        execute_ms = executed.as_secs_f64() * 1e3,
        "block executed"
    );
    Ok(Some(block))
}

/// Seals the oldest executed block: computes its state root, completes its header and
/// commits block, state and trie data in one atomic write. `None` if nothing waits.
pub fn seal_next(chain: &Chain) -> Result<Option<Arc<NewBlock>>, SequencerError> {
    let Some(block) = chain.next_unsealed(false) else { return Ok(None) };
    let (_, parent_hash) = chain.latest();
    let pre = chain.snapshot();
    let started = Instant::now();
    let mut header = block.header.clone();
    header.parent_hash = parent_hash;
    let mut writer = chain.store.writer()?;
    header.state_root = chain.committer.commit(&pre, &mut writer, &block.diff)?;
    let rooted = started.elapsed();
    let hash = writer.put_block(&header, &block.body, &block.receipts)?;
    writer.set_head(header.number)?;
    writer.commit()?;
    drop(pre);
    chain.finish_seal(header.clone(), hash, Arc::new(chain.store.reader()?));
    tracing::debug!(
        number = header.number,
        root_ms = rooted.as_secs_f64() * 1e3,
        seal_ms = started.elapsed().as_secs_f64() * 1e3,
        "block sealed"
    );
    let new = Arc::new(NewBlock {
        header,
        hash,
        tx_hashes: block.body.iter().map(|b| b.0).collect(),
        receipts: block.receipts.clone(),
        full: block.full,
    });
    chain.publish(ChainEvent::Block(new.clone()));
    Ok(Some(new))
}

/// Executes one block and seals everything executed (blocks until sealed): for tests
/// and tools that drive the chain by hand. Returns the block built, if any.
pub fn build_block(chain: &Chain, config: &BuilderConfig) -> Result<Option<Arc<NewBlock>>, SequencerError> {
    let built = execute_block(chain, config)?;
    let mut last = None;
    while let Some(sealed) = seal_next(chain)? {
        last = Some(sealed);
    }
    Ok(built.and(last))
}
