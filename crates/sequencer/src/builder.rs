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

/// The slot loop: closes a block every `block_time` on its own thread.
pub struct Builder {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// EIP-7685 requests hash of a block with no requests (Prague headers carry it).
pub(crate) fn requests_hash(config: &ChainConfig) -> Option<B256> {
    (config.hardfork == Hardfork::Prague).then_some(alloy_eips::eip7685::EMPTY_REQUESTS_HASH)
}

impl Builder {
    pub fn start(chain: Arc<Chain>, config: BuilderConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("cairn-builder".into())
            .spawn(move || {
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
                    match build_block(&chain, &config) {
                        // A full block leaves work behind: start the next slot at once.
                        Ok(Some(block)) if block.full => next = Instant::now(),
                        Ok(_) => {}
                        Err(e) => tracing::error!("block building failed: {e}"),
                    }
                }
            })
            .ok();
        Self { stop, handle }
    }

    /// Stops the loop after the block in progress (if any) is committed.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Builds, executes, seals and commits one block. Returns it, or `None` when there was
/// nothing to include and empty blocks are off.
pub fn build_block(chain: &Chain, config: &BuilderConfig) -> Result<Option<Arc<NewBlock>>, SequencerError> {
    let (parent, parent_hash) = chain.latest();
    let base_fee = chain.next_base_fee();
    let candidates = chain.pool.lock().best(base_fee, config.max_block_txs);
    if candidates.is_empty() && !config.empty_blocks {
        return Ok(None);
    }
    let txs: Vec<_> = candidates.iter().map(|p| p.tx.clone()).collect();
    let number = parent.number + 1;
    let timestamp = now_secs().max(parent.timestamp);
    let prevrandao = keccak256(parent_hash);
    let ctx = BlockContext::for_chain(&chain.config, number, timestamp, base_fee, prevrandao);
    let started = std::time::Instant::now();
    let reader = chain.store.reader()?;
    let output = chain.executor.execute(&reader, &ctx, &txs, Mode::Building)?;
    drop(reader);
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
    let mut header = Header {
        parent_hash,
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

    let sealing = std::time::Instant::now();
    let mut writer = chain.store.writer()?;
    let changed = writer.apply_state(&output.diff)?;
    header.state_root = chain.committer.commit(&mut writer, &changed)?;
    let rooted = sealing.elapsed();
    let hash = writer.put_block(&header, &body, &receipts)?;
    writer.set_head(number)?;
    writer.commit()?;
    tracing::debug!(
        number,
        txs = body.len(),
        gas = header.gas_used,
        execute_ms = executed.as_secs_f64() * 1e3,
        root_ms = rooted.as_secs_f64() * 1e3,
        commit_ms = sealing.elapsed().as_secs_f64() * 1e3,
        "block committed"
    );

    chain.set_latest(header.clone(), hash)?;
    {
        let mut pool = chain.pool.lock();
        pool.on_nonces_used(next_nonce);
        for h in &dropped {
            pool.remove(h);
        }
    }
    let full = out_of_gas || txs.len() >= config.max_block_txs;
    let block = Arc::new(NewBlock { header, hash, tx_hashes: body.iter().map(|b| b.0).collect(), receipts, full });
    chain.publish(ChainEvent::Block(block.clone()));
    Ok(Some(block))
}
