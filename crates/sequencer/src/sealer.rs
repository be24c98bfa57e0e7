//! The sealer: commits executed blocks in order, each with its state root.
//!
//! It takes the oldest executed block from the pipeline, computes its state root (the
//! incremental committer) and its body roots beside it, completes its header and writes
//! block, state and trie data in one atomic store write; then it announces the sealed
//! block and prunes the fragment log below it.

use alloy_consensus::proofs;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bloom, Bytes, B256};
use cairn_primitives::{StoredReceipt, TxEnvelope};
use std::sync::Arc;
use std::time::Instant;

use crate::chain::{Chain, ChainEvent, NewBlock, SequencerError};

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
    // The block-start system writes come under the block's own changes.
    let with_system = match block.system.calls.any() {
        true => {
            let mut diff = block.system.diff(pre.as_ref(), parent_hash)?;
            diff.extend(block.diff.as_ref().clone());
            Some(diff)
        }
        false => None,
    };
    let diff = with_system.as_ref().unwrap_or(block.diff.as_ref());
    let (body_roots, state_root) = std::thread::scope(|s| {
        let body = std::thread::Builder::new()
            .name("cairn-body-root".into())
            .spawn_scoped(s, || body_roots(&block.body, &block.receipts));
        let state_root = chain.committer.commit(&pre, &mut writer, diff);
        let body = match body {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: compute them here instead.
            Err(_) => body_roots(&block.body, &block.receipts),
        };
        (body, state_root)
    });
    (header.transactions_root, header.receipts_root, header.logs_bloom) = body_roots?;
    header.state_root = state_root?;
    let rooted = started.elapsed();
    let hash = writer.put_block(&header, &block.body, &block.receipts)?;
    writer.put_sequencer_block(&block.sequencer, &block.certificate.encode())?;
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
    chain.sealed(&new);
    if let Some(preconf) = &chain.preconf {
        // Fragment files of blocks below this one are no longer needed for recovery.
        if let Err(e) = preconf.log.lock().prune_below(new.header.number) {
            tracing::warn!("pruning the fragment log failed: {e}");
        }
    }
    chain.publish(ChainEvent::Block(new.clone()));
    Ok(Some(new))
}

/// A block's transactions root, receipts root and logs bloom.
fn body_roots(
    body: &[(B256, Address, Bytes)],
    receipts: &[StoredReceipt],
) -> Result<(B256, B256, Bloom), SequencerError> {
    let envelopes: Vec<TxEnvelope> =
        body.iter().map(|(_, _, raw)| TxEnvelope::decode_2718_exact(raw)).collect::<Result<_, _>>().map_err(|e| {
            SequencerError::Store(cairn_storage::StoreError::Corrupt { what: "block body", reason: e.to_string() })
        })?;
    let receipts: Vec<_> = receipts.iter().map(|r| r.envelope()).collect();
    let mut bloom = Bloom::ZERO;
    for r in &receipts {
        bloom.accrue_bloom(r.logs_bloom());
    }
    Ok((proofs::calculate_transaction_root(&envelopes), proofs::calculate_receipt_root(&receipts), bloom))
}
