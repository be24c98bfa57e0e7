//! A validator's chain under consensus: consensus asks it to build a block when this
//! node proposes, to execute and check every other proposer's block, and to commit the
//! decided one. It is the [`cairn_consensus::Host`] of the Malachite application.
//!
//! Nothing reaches the pipeline (and so the sealer) before it is decided: a proposal,
//! own or another validator's, is executed on top of the last decided block and kept
//! aside until consensus decides it or another block of its height.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::Transaction as _;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, B256};
use cairn_consensus::{Certificate, Host, Misbehaviour};
use cairn_executor::BlockContext;
use cairn_primitives::fragment::FragmentRecord;
use cairn_primitives::{Executed, SequencerBlock, TxEnvelope};
use parking_lot::Mutex;

use crate::builder::{next_prevrandao, BuilderConfig};
use crate::chain::{Chain, SequencerError};
use crate::evidence::Evidence;
use crate::fragments::{now_secs, FragmentPart};
use crate::pipeline::{BlockInProgress, Proposal};

/// Most executed, undecided proposals kept (all of the next height).
pub const MAX_CANDIDATES: usize = 32;
/// How far ahead of this node's clock a proposed block's timestamp may be.
pub const MAX_CLOCK_DRIFT_SECS: u64 = 5;
/// Longest wait for the seal of a block whose result the next block carries.
pub const SEAL_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Candidates {
    by_hash: HashMap<B256, Proposal>,
    /// The block this node proposed for a height, proposed again in later rounds.
    own: Option<(u64, B256)>,
}

/// A validator's side of consensus (see the module documentation).
pub struct Replica {
    chain: Arc<Chain>,
    config: BuilderConfig,
    /// The validator key's address (it signs this node's fragments).
    proposer: Address,
    candidates: Mutex<Candidates>,
    /// The block another validator is streaming, executed fragment by fragment.
    inflight: Mutex<Option<Inflight>>,
    /// A proposal refused because its parent's execution result differs from this
    /// node's: `(its hash, the diagnostic)`. If the set decides it, this node diverged.
    refused: Mutex<Option<(B256, String)>>,
    /// This node's execution diverged from the set's: it takes no further part.
    halted: Mutex<Option<String>>,
    /// The newest fragment this node signed, `(height, hash)`. Fragments carry no round:
    /// all that one key signs for a height must form one chain, or they are evidence
    /// against it. So this node signs no further fragment at a height whose chain to
    /// extend leaves this one out.
    signed: Mutex<Option<(u64, B256)>>,
}

struct Inflight {
    height: u64,
    round: u32,
    block: BlockInProgress,
    records: Vec<FragmentRecord>,
}

/// Clears the fragment hook when building ends, however it ends.
struct HookGuard<'a>(&'a Chain);

impl Drop for HookGuard<'_> {
    fn drop(&mut self) {
        self.0.set_fragment_hook(None);
    }
}

/// The record of one of this node's fragments, with its block's `(prevrandao,
/// beneficiary, gas limit)`.
fn record_of(part: &FragmentPart, (prevrandao, beneficiary, gas_limit): (B256, Address, u64)) -> FragmentRecord {
    let f = &part.signed.fragment;
    FragmentRecord {
        height: f.height,
        index: f.index,
        parent: f.parent,
        timestamp: f.timestamp,
        base_fee: f.base_fee,
        first_tx: f.first_tx,
        gas_used: f.gas_used,
        receipts_hash: f.receipts_hash,
        state_diff_hash: f.state_diff_hash,
        signature: part.signed.signature.clone(),
        prevrandao,
        beneficiary,
        gas_limit,
        txs: part.body.iter().map(|(_, _, raw)| raw.clone()).collect(),
    }
}

impl Replica {
    /// `config` sets the fragment interval and the block cap; the slot is consensus's.
    pub fn new(chain: Arc<Chain>, config: BuilderConfig) -> Result<Self, SequencerError> {
        let proposer = chain
            .signer_address()
            .ok_or_else(|| SequencerError::Invalid("a validator needs its key to sign fragments".into()))?;
        Ok(Self {
            chain,
            config: BuilderConfig { empty_blocks: true, ..config },
            proposer,
            candidates: Mutex::default(),
            inflight: Mutex::new(None),
            refused: Mutex::new(None),
            halted: Mutex::new(None),
            signed: Mutex::new(None),
        })
    }

    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    fn keep(&self, proposal: Proposal) -> B256 {
        let hash = proposal.sequencer.hash();
        let mut c = self.candidates.lock();
        if c.by_hash.len() >= MAX_CANDIDATES {
            // Keep this node's own proposal; drop the others of lower rounds first.
            let own = c.own.map(|(_, h)| h);
            if let Some(victim) = c
                .by_hash
                .iter()
                .filter(|(h, _)| Some(**h) != own)
                .min_by_key(|(_, p)| (p.sequencer.height, p.sequencer.round))
                .map(|(h, _)| *h)
            {
                c.by_hash.remove(&victim);
            }
        }
        c.by_hash.insert(hash, proposal);
        hash
    }

    /// The execution result of block `height − 1` here, once it is sealed (a decision is
    /// acknowledged as soon as its block is in the pipeline; the seal follows off the
    /// ordering path, and is waited for here, at most [`SEAL_WAIT`]).
    fn executed_parent(&self, height: u64) -> Result<Executed, String> {
        let parent = height.saturating_sub(1);
        self.chain.wait_sealed_for(parent, SEAL_WAIT);
        let (header, hash) = self.chain.latest();
        if header.number != parent {
            return Err(format!("block {parent} is not sealed (sealed: {})", header.number));
        }
        Ok(Executed { number: header.number, header_hash: hash, state_root: header.state_root })
    }

    /// The diagnostic when `theirs` (carried by block `hash`) is not this node's result.
    fn compare_executed(&self, height: u64, hash: B256, theirs: Option<Executed>) -> Result<Executed, String> {
        let ours = self.executed_parent(height)?;
        match theirs {
            Some(t) if t == ours => Ok(ours),
            Some(t) => Err(format!(
                "block {height} ({hash}) says block {} has header {} and state root {}; this node computed header {} and state root {}",
                t.number, t.header_hash, t.state_root, ours.header_hash, ours.state_root
            )),
            None => Err(format!("block {height} ({hash}) does not carry the execution result of block {}", ours.number)),
        }
    }

    fn check_running(&self) -> Result<(), String> {
        match self.halted.lock().as_ref() {
            Some(reason) => Err(format!("halted: {reason}")),
            None => Ok(()),
        }
    }

    fn halt(&self, reason: String) -> String {
        tracing::error!("HALTED: this node's execution diverged from the validator set: {reason}");
        *self.halted.lock() = Some(reason.clone());
        reason
    }

    /// The context a block of height `tip + 1` must have; checks the proposed one.
    fn check_context(&self, block: &SequencerBlock) -> Result<BlockContext, String> {
        let tip = self.chain.tip();
        if block.parent != tip.sequencer_hash {
            return Err(format!(
                "block {} extends {}, not the last decided block {}",
                block.height, block.parent, tip.sequencer_hash
            ));
        }
        if block.chain_id != self.chain.config.chain_id {
            return Err(format!("block for chain {}", block.chain_id));
        }
        self.check_fields(
            block.height,
            block.timestamp,
            block.base_fee,
            block.prevrandao,
            block.gas_limit,
            block.beneficiary,
        )
    }

    /// The context of the next height with these fields, if the rules allow them.
    fn check_fields(
        &self,
        height: u64,
        timestamp: u64,
        base_fee: u64,
        prevrandao: B256,
        gas_limit: u64,
        beneficiary: Address,
    ) -> Result<BlockContext, String> {
        let chain = &self.chain;
        let tip = chain.tip();
        if height != tip.number + 1 {
            return Err(format!("block {height} does not follow the last decided block {}", tip.number));
        }
        let expected = chain.config.next_base_fee(tip.gas_used, tip.gas_limit, tip.base_fee);
        if base_fee != expected {
            return Err(format!("base fee {base_fee} where the rules give {expected}"));
        }
        let expected = next_prevrandao(&tip, height);
        if prevrandao != expected {
            return Err(format!("prevrandao {prevrandao} where the rules give {expected}"));
        }
        if gas_limit != chain.config.gas_limit {
            return Err(format!("gas limit {gas_limit} where the chain's is {}", chain.config.gas_limit));
        }
        if timestamp < tip.timestamp {
            return Err(format!("timestamp {timestamp} is before its parent's {}", tip.timestamp));
        }
        if timestamp > now_secs() + MAX_CLOCK_DRIFT_SECS {
            return Err(format!("timestamp {timestamp} is ahead of this node's clock {}", now_secs()));
        }
        let mut ctx = BlockContext::for_chain(&chain.config, height, timestamp, base_fee, prevrandao);
        ctx.beneficiary = beneficiary;
        Ok(ctx)
    }

    fn context_of(&self, r: &FragmentRecord) -> Result<BlockContext, String> {
        self.check_fields(r.height, r.timestamp, r.base_fee, r.prevrandao, r.gas_limit, r.beneficiary)
    }

    /// Puts the transactions of a block this node will not propose (it lost to another
    /// chain of fragments) back in the pool, except those in `keep`.
    fn return_to_pool(&self, body: &[(B256, Address, Bytes)], keep: &std::collections::HashSet<B256>) {
        let chain = &self.chain;
        let view = chain.pending_view();
        let mut returning = Vec::new();
        for (_, sender, raw) in body.iter().filter(|(h, _, _)| !keep.contains(h)) {
            let Ok(tx) = TxEnvelope::decode_2718_exact(raw) else { continue };
            let nonce =
                cairn_primitives::StateView::account(&view, *sender).ok().flatten().map(|a| a.nonce).unwrap_or(0);
            returning.push((alloy_consensus::transaction::Recovered::new_unchecked(tx, *sender), nonce));
        }
        drop(view);
        if returning.is_empty() {
            return;
        }
        let offered = returning.len();
        let mut pool = chain.pool.lock();
        let returned = returning.into_iter().filter(|(tx, nonce)| pool.insert(tx.clone(), *nonce).is_ok()).count();
        tracing::info!(offered, returned, "transactions of a block this node did not get decided are back in the pool");
    }

    fn build_block(
        &self,
        height: u64,
        round: u32,
        slot: Duration,
        inherited: &[FragmentRecord],
        publish: Box<dyn Fn(FragmentRecord) + Send + Sync>,
    ) -> Result<SequencerBlock, SequencerError> {
        let chain = &self.chain;
        let tip = chain.tip();
        if tip.number + 1 != height {
            return Err(SequencerError::Consensus(format!("asked to build block {height} on block {}", tip.number)));
        }
        let inherited_hashes: Vec<B256> =
            inherited.iter().map(|r| r.signed(chain.config.chain_id).fragment.hash()).collect();
        let note_signed = |fragments: &[Arc<FragmentPart>]| {
            if let Some(last) = fragments.iter().rev().find(|f| f.signer == self.proposer) {
                *self.signed.lock() = Some((height, last.hash));
            }
        };
        let extends = |fragments: &[Arc<FragmentPart>]| {
            inherited_hashes.len() <= fragments.len()
                && inherited_hashes.iter().zip(fragments).all(|(h, f)| *h == f.hash)
        };
        // This node's block of an earlier round: proposed again, unchanged, if it holds
        // the chain of fragments this node must extend.
        let own = {
            let mut c = self.candidates.lock();
            match c.own.filter(|(h, _)| *h == height) {
                Some((_, hash)) => {
                    if let Some(p) = c.by_hash.get(&hash) {
                        note_signed(&p.fragments);
                    }
                    let keep = c.by_hash.get(&hash).is_some_and(|p| extends(&p.fragments));
                    if keep {
                        c.by_hash.get(&hash).cloned()
                    } else {
                        c.own = None;
                        if let Some(lost) = c.by_hash.remove(&hash) {
                            drop(c);
                            // Its state leaves the pending view first: the pool takes
                            // back transactions by the nonces that view gives.
                            chain.clear_open(height);
                            self.return_to_pool(&lost.body, &std::collections::HashSet::new());
                        }
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(p) = own {
            let ctx = (p.sequencer.prevrandao, p.sequencer.beneficiary, p.sequencer.gas_limit);
            for f in &p.fragments {
                publish(record_of(f, ctx));
            }
            tracing::info!(height, round, block = %p.sequencer.hash(), "proposing this node's block again");
            return Ok(p.sequencer.clone());
        }
        chain.clear_open(height);
        self.inflight.lock().take();
        let resumed = chain.take_resumed().filter(|b| b.number() == height);
        if let Some(r) = &resumed {
            note_signed(&r.fragments);
        }
        let signed_here = self.signed.lock().filter(|(h, _)| *h == height).map(|(_, last)| last);
        let mut block = match resumed {
            Some(resumed) if extends(&resumed.fragments) => {
                let ctx = (resumed.ctx.prevrandao, resumed.ctx.beneficiary, resumed.ctx.gas_limit);
                for f in &resumed.fragments {
                    publish(record_of(f, ctx));
                }
                resumed
            }
            other => {
                if let Some(lost) = other {
                    self.return_to_pool(&lost.body, &std::collections::HashSet::new());
                }
                match inherited.first() {
                    // Another proposer of this height signed fragments and did not finish
                    // its block: this block extends them (their transactions keep their
                    // places), then goes on with its own.
                    Some(first) => {
                        let ctx = self.context_of(first).map_err(SequencerError::Consensus)?;
                        let mut block = BlockInProgress::with_context(chain, ctx);
                        for r in inherited {
                            block.adopt(chain, r)?;
                            publish(r.clone());
                        }
                        tracing::info!(
                            height,
                            round,
                            fragments = inherited.len(),
                            txs = block.len(),
                            "extending the fragments of an earlier round"
                        );
                        block
                    }
                    None if signed_here.is_none() => BlockInProgress::open(chain),
                    None => {
                        return Err(SequencerError::Consensus(format!(
                            "this node signed fragments at height {height} that it no longer holds: it proposes nothing"
                        )))
                    }
                }
            }
        };
        // A fragment this node signed at this height that the chain it extends leaves
        // out: signing more would contradict it, so this block adds no fragment of its own.
        let may_sign = signed_here.is_none_or(|last| block.fragments.iter().any(|f| f.hash == last));
        if !may_sign {
            tracing::warn!(
                height,
                round,
                fragments = inherited.len(),
                "the chain to extend leaves out a fragment this node signed: proposing it without new fragments"
            );
        }
        if !block.close_logged && may_sign {
            chain.set_fragment_hook(Some(publish));
            let _guard = HookGuard(chain);
            let end = Instant::now() + slot;
            let interval = self.config.fragment_interval.unwrap_or(crate::builder::DEFAULT_FRAGMENT_INTERVAL);
            loop {
                if let Err(e) = block.add_fragment(chain, &self.config) {
                    tracing::error!(height, "fragment failed: {e}");
                }
                let now = Instant::now();
                if now >= end || block.is_full() {
                    break;
                }
                std::thread::sleep(interval.min(end - now));
            }
        }
        let mut proposal = block
            .propose_as(chain, &self.config, round, self.proposer)?
            .ok_or_else(|| SequencerError::Consensus("an empty block was not proposed".into()))?;
        proposal.sequencer.executed = Some(self.executed_parent(height).map_err(SequencerError::Consensus)?);
        note_signed(&proposal.fragments);
        let sequencer = proposal.sequencer.clone();
        let hash = self.keep(proposal);
        self.candidates.lock().own = Some((height, hash));
        Ok(sequencer)
    }

    /// Executes one fragment of the block another validator is streaming, as it
    /// arrives: it becomes this node's preconfirmed state too.
    fn stream_one(&self, height: u64, round: u32, record: &FragmentRecord) -> Result<(), String> {
        let chain = &self.chain;
        let mut inflight = self.inflight.lock();
        let same = inflight.as_ref().is_some_and(|f| f.height == height && f.round == round);
        if !same {
            if record.index != 0 {
                return Err(format!("fragment {} of a stream this node did not see start", record.index));
            }
            let ctx = self.context_of(record)?;
            chain.clear_open(height);
            *inflight =
                Some(Inflight { height, round, block: BlockInProgress::with_context(chain, ctx), records: Vec::new() });
        }
        let Some(f) = inflight.as_mut() else { return Ok(()) };
        if record.index as usize != f.records.len() {
            return Err(format!("fragment {} where fragment {} was next", record.index, f.records.len()));
        }
        if let Err(e) = f.block.replay(chain, record, false) {
            *inflight = None;
            chain.clear_open(height);
            return Err(e.to_string());
        }
        f.records.push(record.clone());
        Ok(())
    }

    fn replay_proposal(&self, block: &SequencerBlock, fragments: &[FragmentRecord]) -> Result<(), String> {
        let hash = block.hash();
        if self.candidates.lock().by_hash.contains_key(&hash) {
            return Ok(());
        }
        let chain = &self.chain;
        let ctx = self.check_context(block)?;
        let ours = match self.compare_executed(block.height, hash, block.executed) {
            Ok(ours) => ours,
            Err(e) => {
                tracing::error!("proposal refused: {e}");
                *self.refused.lock() = Some((hash, e.clone()));
                return Err(e);
            }
        };
        // Go on from the fragments executed as they streamed in, when they are this
        // block's first ones.
        let streamed = self.inflight.lock().take().filter(|f| {
            f.height == block.height
                && f.records.len() <= fragments.len()
                && f.records[..] == fragments[..f.records.len()]
        });
        let (mut open, done) = match streamed {
            Some(f) => {
                let done = f.records.len();
                (f.block, done)
            }
            None => {
                chain.clear_open(block.height);
                (BlockInProgress::with_context(chain, ctx), 0)
            }
        };
        let replayed = (|| {
            for f in &fragments[done..] {
                open.replay(chain, f, false)?;
            }
            // Another validator's block: its close is not this node's to log.
            open.close_logged = true;
            open.propose_as(chain, &self.config, block.round, block.proposer)
        })();
        let replayed = replayed.map(|p| {
            p.map(|mut p| {
                p.sequencer.executed = Some(ours);
                p
            })
        });
        let proposal = match replayed {
            Ok(Some(p)) if p.sequencer == *block => p,
            Ok(Some(p)) => {
                chain.clear_open(block.height);
                return Err(format!(
                    "block {} executes here as {} (transactions or fragments differ)",
                    hash,
                    p.sequencer.hash()
                ));
            }
            Ok(None) => return Err("nothing to propose".into()),
            Err(e) => {
                chain.clear_open(block.height);
                return Err(e.to_string());
            }
        };
        self.keep(proposal);
        Ok(())
    }

    fn replay_synced(&self, block: &SequencerBlock, txs: &[Bytes]) -> Result<(), String> {
        let hash = block.hash();
        if self.candidates.lock().by_hash.contains_key(&hash) {
            return Ok(());
        }
        let chain = &self.chain;
        let ctx = self.check_context(block).or_else(|e| {
            // A synced block is decided already: only its place in the chain matters
            // (its timestamp may be behind this node's clock by any amount).
            let tip = chain.tip();
            if block.height == tip.number + 1 && block.parent == tip.sequencer_hash {
                let mut ctx = BlockContext::for_chain(
                    &chain.config,
                    block.height,
                    block.timestamp,
                    block.base_fee,
                    block.prevrandao,
                );
                ctx.beneficiary = block.beneficiary;
                ctx.gas_limit = block.gas_limit;
                Ok(ctx)
            } else {
                Err(e)
            }
        })?;
        // A decided block whose parent result differs from this node's: this node
        // diverged.
        if block.executed.is_some() {
            if let Err(e) = self.compare_executed(block.height, hash, block.executed) {
                return Err(self.halt(e));
            }
        }
        // Nothing of this height may be under it (this node's own block, or one streamed).
        chain.clear_open(block.height);
        self.inflight.lock().take();
        let mut open = BlockInProgress::with_context(chain, ctx);
        open.replay_txs(chain, txs).map_err(|e| e.to_string())?;
        open.close_logged = true;
        let mut proposal = open
            .propose_as(chain, &self.config, block.round, block.proposer)
            .map_err(|e| e.to_string())?
            .ok_or("nothing to propose")?;
        if proposal.sequencer.transactions != block.transactions {
            return Err("the synced transactions are not the block's".into());
        }
        proposal.sequencer = block.clone();
        self.keep(proposal);
        Ok(())
    }

    fn commit_block(&self, hash: B256, certificate: Certificate) -> Result<(), SequencerError> {
        let chain = &self.chain;
        let Some(proposal) = self.candidates.lock().by_hash.remove(&hash) else {
            if let Some((refused, why)) = self.refused.lock().clone() {
                if refused == hash {
                    return Err(SequencerError::Consensus(self.halt(format!("the set decided {why}"))));
                }
            }
            return Err(SequencerError::Consensus(format!("decided block {hash} was not executed here")));
        };
        let tip = chain.tip();
        let number = proposal.sequencer.height;
        if number != tip.number + 1 || proposal.sequencer.parent != tip.sequencer_hash {
            return Err(SequencerError::Consensus(format!(
                "decided block {hash} (height {number}) does not extend the last decided block {}",
                tip.number
            )));
        }
        let own = {
            let mut c = self.candidates.lock();
            match c.own {
                Some((h, own)) if h == number && own != hash => c.by_hash.remove(&own),
                _ => None,
            }
        };
        let block = Arc::new(proposal.decided(certificate));
        chain.push_executed(block.clone())?;
        chain.sequenced(&block);
        {
            // Its transactions leave this node's pool, whoever proposed them.
            let mut next: HashMap<Address, u64> = HashMap::new();
            for (_, sender, raw) in &block.body {
                if let Ok(tx) = TxEnvelope::decode_2718_exact(raw) {
                    let n = next.entry(*sender).or_default();
                    *n = (*n).max(tx.nonce() + 1);
                }
            }
            let mut pool = chain.pool.lock();
            for (h, _, _) in &block.body {
                pool.remove(h);
            }
            pool.on_nonces_used(next);
        }
        // This node's own proposal for the height lost: its transactions that the
        // decided block does not hold go back to the pool.
        if let Some(own) = own {
            let included: std::collections::HashSet<B256> = block.body.iter().map(|(h, _, _)| *h).collect();
            self.return_to_pool(&own.body, &included);
        }
        if self.inflight.lock().as_ref().is_some_and(|f| f.height <= number) {
            *self.inflight.lock() = None;
        }
        if let Some(last) = block.fragments.last() {
            *chain.fragment_parent.lock() = last.hash;
        }
        {
            let mut c = self.candidates.lock();
            c.by_hash.retain(|_, p| p.sequencer.height > number);
            if c.own.is_some_and(|(h, _)| h <= number) {
                c.own = None;
            }
        }
        {
            let mut resumed = chain.resumed.lock();
            if resumed.as_ref().is_some_and(|b| b.number() <= number) {
                *resumed = None;
            }
        }
        // Acknowledged once it is in the pipeline (durable in the set: a node that
        // crashes before sealing it gets it back by value sync, its proposer's from its
        // fragment log); the sealer commits it off the ordering path, and the next block,
        // which carries its result, waits for that seal only when it closes.
        Ok(())
    }
}

impl Host for Replica {
    fn decided_tip(&self) -> (u64, B256) {
        let tip = self.chain.tip();
        (tip.number, tip.sequencer_hash)
    }

    fn build(
        &self,
        height: u64,
        round: u32,
        slot: Duration,
        inherited: Vec<FragmentRecord>,
        publish: Box<dyn Fn(FragmentRecord) + Send + Sync>,
    ) -> Result<SequencerBlock, String> {
        self.check_running()?;
        self.build_block(height, round, slot, &inherited, publish).map_err(|e| e.to_string())
    }

    fn stream_fragment(&self, height: u64, round: u32, record: &FragmentRecord) -> Result<(), String> {
        self.check_running()?;
        self.stream_one(height, round, record)
    }

    fn check(&self, block: &SequencerBlock, fragments: &[FragmentRecord]) -> Result<(), String> {
        self.check_running()?;
        self.replay_proposal(block, fragments)
    }

    fn check_synced(&self, block: &SequencerBlock, txs: &[Bytes]) -> Result<(), String> {
        self.check_running()?;
        self.replay_synced(block, txs)
    }

    fn commit(&self, hash: B256, certificate: Certificate) -> Result<(), String> {
        self.check_running()?;
        self.commit_block(hash, certificate).map_err(|e| e.to_string())
    }

    fn decided(&self, height: u64) -> Result<Option<(SequencerBlock, Vec<Bytes>, Certificate)>, String> {
        let reader = self.chain.snapshot();
        let Some((block, certificate)) = reader.sequencer_block(height).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let certificate = Certificate::decode(&certificate).map_err(|e| e.to_string())?;
        let mut txs = Vec::with_capacity(block.transactions.len());
        for hash in reader.block_tx_hashes(height).map_err(|e| e.to_string())? {
            let tx = reader.tx(hash).map_err(|e| e.to_string())?.ok_or(format!("transaction {hash} missing"))?;
            txs.push(tx.raw);
        }
        Ok(Some((block, txs, certificate)))
    }

    fn misbehaviour(&self, evidence: Misbehaviour) {
        let chain_id = self.chain.config.chain_id;
        let evidence = match evidence {
            Misbehaviour::Fragments(pair) => {
                let [a, b] = *pair;
                Evidence::Fragments(Box::new([a.signed(chain_id), b.signed(chain_id)]))
            }
            Misbehaviour::Consensus(c) => Evidence::Consensus(c),
        };
        match self.chain.record_evidence(evidence) {
            Ok((id, proof, _)) => tracing::warn!(%id, signer = %proof.signer(), "evidence of misbehaviour kept"),
            Err(e) => tracing::error!("evidence of misbehaviour not kept: {e}"),
        }
    }
}
