//! A rollup follower's chain (`cairn rollup`): the blocks of one rollup of a shared set,
//! made by executing its transactions of each decided sequencer block, in the order the
//! set decided them.
//!
//! Sequencer block `h` makes rollup block `h` (an empty one when the set decided none of
//! the rollup's transactions), with the sequencer block's timestamp; base fee and
//! prevrandao follow the rollup's own rules from its parent, so every follower of the
//! rollup computes the same blocks and roots. A transaction that cannot execute (nonce,
//! funds, gas) is skipped and gets the status `rejected` with its reason. Certificates
//! are checked by the caller before a block comes here.

use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Bytes, B256};
use cairn_executor::{BlockContext, Skip, TxOutcome};
use cairn_primitives::{RecoveredTx, StoredReceipt, TxEnvelope};

use crate::builder::{next_prevrandao, BuilderConfig};
use crate::chain::{Chain, SequencerError};
use crate::pipeline::BlockInProgress;

/// What applying one decided block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub number: u64,
    pub included: usize,
    /// `(hash, reason)` of the transactions skipped as invalid.
    pub rejected: Vec<(B256, String)>,
    /// Gas the block used.
    pub gas_used: u64,
    /// Time spent decoding the transactions and recovering their senders.
    pub recover: std::time::Duration,
    /// Time spent executing them (the executor, and taking its output in).
    pub execute: std::time::Duration,
}

/// Executes the rollup's transactions `txs` of decided sequencer block `height` (made at
/// `timestamp`) as the rollup's block `height`, and hands it to the sealer. Blocks come
/// in order: `height` is the one after the newest executed block.
pub fn apply_decided(chain: &Chain, height: u64, timestamp: u64, txs: &[Bytes]) -> Result<Applied, SequencerError> {
    let tip = chain.tip();
    if height != tip.number + 1 {
        return Err(SequencerError::Invalid(format!(
            "decided block {height} does not follow the rollup's block {}",
            tip.number
        )));
    }
    let mut block = BlockInProgress::with_context(chain, decided_context(chain, height, timestamp));
    let started = std::time::Instant::now();
    let (decoded, mut rejected) = decode(txs);
    let recover = started.elapsed();
    let total = decoded.len();
    let started = std::time::Instant::now();
    let skipped = block.include_ordered(chain, decoded)?;
    let execute = started.elapsed();
    let gas_used = block.gas_used;
    let included = total - skipped.len();
    rejected.extend(skipped);
    let config = BuilderConfig { empty_blocks: true, ..BuilderConfig::default() };
    let closed = block.close(chain, &config)?;
    let number = closed.map_or(height, |b| b.header.number);
    if !rejected.is_empty() {
        chain.rejected(&rejected, height);
    }
    Ok(Applied { number, included, rejected, gas_used, recover, execute })
}

/// The context of the rollup's block `height` made from a sequencer block of
/// `timestamp`, on top of the newest executed block.
fn decided_context(chain: &Chain, height: u64, timestamp: u64) -> BlockContext {
    let tip = chain.tip();
    let base_fee = chain.config.next_base_fee(tip.gas_used, tip.gas_limit, tip.base_fee);
    BlockContext::for_chain(
        &chain.config,
        height,
        timestamp.max(tip.timestamp),
        base_fee,
        next_prevrandao(&tip, height),
    )
}

/// Decodes raw transactions and recovers their senders (on every core for a large
/// block: recovery costs more than executing a simple transfer); `(hash, reason)` of
/// those that cannot be. Order is kept.
fn decode(txs: &[Bytes]) -> (Vec<RecoveredTx>, Vec<(B256, String)>) {
    use rayon::prelude::*;
    let one = |raw: &Bytes| -> Result<RecoveredTx, (B256, String)> {
        let tx = TxEnvelope::decode_2718_exact(raw).map_err(|e| (keccak256(raw), format!("undecodable: {e}")))?;
        match cairn_primitives::impersonation::recover_sender(&tx, false) {
            Ok(sender) => Ok(alloy_consensus::transaction::Recovered::new_unchecked(tx, sender)),
            Err(e) => Err((*tx.tx_hash(), format!("invalid sender: {e}"))),
        }
    };
    let results: Vec<Result<RecoveredTx, (B256, String)>> = if txs.len() >= PARALLEL_RECOVERY_FROM {
        txs.par_iter().with_min_len(32).map(one).collect()
    } else {
        txs.iter().map(one).collect()
    };
    let mut rejected = Vec::new();
    let mut decoded = Vec::with_capacity(txs.len());
    for r in results {
        match r {
            Ok(tx) => decoded.push(tx),
            Err(bad) => rejected.push(bad),
        }
    }
    (decoded, rejected)
}

/// Blocks with at least this many transactions have their senders recovered in
/// parallel.
const PARALLEL_RECOVERY_FROM: usize = 64;

/// What executing `parts` after `prior` in the rollup's block `height` (made from a
/// sequencer block of `timestamp`) gives, exactly as [`apply_decided`] will execute them
/// if the decided block holds `prior` then `parts` in this rollup: each part's receipt,
/// or why it cannot be included. Nothing is kept. The rollup's newest executed block
/// must be `height - 1`.
pub fn simulate_parts(
    chain: &Chain,
    height: u64,
    timestamp: u64,
    prior: &[Bytes],
    parts: &[Bytes],
) -> Result<Vec<Result<StoredReceipt, String>>, SequencerError> {
    let tip = chain.tip().number;
    if height != tip + 1 {
        return Err(SequencerError::Invalid(format!(
            "the rollup's newest executed block is {tip}, not {}",
            height.saturating_sub(1)
        )));
    }
    let block = BlockInProgress::with_context(chain, decided_context(chain, height, timestamp));
    let (mut txs, _) = decode(prior);
    let first = txs.len();
    let (decoded, bad) = decode(parts);
    if let Some((hash, reason)) = bad.first() {
        return Err(SequencerError::Invalid(format!("bundle transaction {hash}: {reason}")));
    }
    txs.extend(decoded);
    let outcomes = block.outcomes(chain, &txs)?;
    Ok(outcomes
        .into_iter()
        .skip(first)
        .map(|o| match o {
            TxOutcome::Included(receipt) => Ok(receipt),
            TxOutcome::Skipped(Skip::Invalid(reason) | Skip::Later(reason)) => Err(reason),
            TxOutcome::Skipped(Skip::BlockFull { .. }) => Err("the block's gas limit is reached".to_string()),
        })
        .collect())
}
