use alloy_consensus::{Header, Transaction as _, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_signer::SignerSync;
use cairn_executor::{BlockContext, Mode, Offsets, Skip, TxOutcome};
use cairn_primitives::fragment::receipts_hash;
use cairn_primitives::{
    Fragment, Hardfork, RecoveredTx, SequencerBlock, SignedFragment, StateDiff, StoredReceipt, TxEnvelope,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chain::{Chain, NewBlock, SequencerError};
use crate::devstate::{edit_diff, DevEdit};
use crate::fragments::{now_ms, FragmentPart, LoggedFragment, OpenBlock};
use crate::genesis::requests_hash;
use crate::pipeline::{BlockInProgress, ExecutedBlock, Proposal, Tip};
use crate::sealer::seal_next;
use cairn_primitives::predeploys::system::{BlockSystem, SystemCalls};

#[derive(Debug, Clone, Copy)]
pub struct BuilderConfig {
    /// A block closes this often (when there is something to include).
    pub block_time: Duration,
    /// Most transactions considered per block.
    pub max_block_txs: usize,
    /// Produce blocks even when the pool is empty.
    pub empty_blocks: bool,
    /// While a block is open, a preconfirmation fragment is emitted this often (when
    /// there are new transactions), if the chain has a sequencer key. `None`: each block
    /// is executed in one piece at the end of its slot, without fragments.
    pub fragment_interval: Option<Duration>,
}

/// Default interval between fragments.
pub const DEFAULT_FRAGMENT_INTERVAL: Duration = Duration::from_millis(10);

impl Default for BuilderConfig {
    fn default() -> Self {
        Self {
            block_time: Duration::from_millis(200),
            max_block_txs: 50_000,
            empty_blocks: false,
            fragment_interval: Some(DEFAULT_FRAGMENT_INTERVAL),
        }
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

/// `prevrandao` of block `number` following `tip`: a hash chain over the previous
/// value (a single sequencer has no randomness beacon; this is not randomness). It does
/// not depend on the parent's hash, so the next block can execute before that is known.
pub fn next_prevrandao(tip: &Tip, number: u64) -> B256 {
    let mut input = [0u8; 40];
    input[..32].copy_from_slice(tip.mix_hash.as_slice());
    input[32..].copy_from_slice(&number.to_be_bytes());
    keccak256(input)
}

/// The builder thread: a block per `block_time` slot, filled by a fragment every
/// `fragment_interval` (or executed in one piece at the slot's end without fragments).
fn slot_loop(chain: &Chain, config: &BuilderConfig, stop: &AtomicBool) {
    let fragments = config.fragment_interval.filter(|_| chain.preconf.is_some());
    let mut open: Option<BlockInProgress> = chain.take_resumed();
    let mut slot_end = Instant::now() + config.block_time;
    let mut next_fragment = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if chain.edits_requested() {
            // A state edit is a block of its own: the block being filled closes first.
            if let Some(block) = open.take() {
                if let Err(e) = block.close(chain, config) {
                    tracing::error!("closing the open block failed: {e}");
                }
            }
            make_edit_block(chain);
            slot_end = Instant::now() + config.block_time;
            continue;
        }
        if chain.block_requested() {
            // `evm_mine`: close a block now. An open block that holds nothing yet is
            // opened again, so that it takes the clock as it is now.
            let block = open.take().filter(|b| !b.is_empty() || !b.fragments.is_empty());
            let forced = BuilderConfig { empty_blocks: true, ..*config };
            let closed = match (fragments, block) {
                (Some(_), Some(block)) => block.close(chain, &forced),
                (Some(_), None) => BlockInProgress::open(chain).close(chain, &forced),
                (None, _) => execute_block(chain, &forced),
            };
            match closed {
                Ok(Some(block)) => chain.block_request_served(block.header.number),
                Ok(None) => {}
                Err(e) => tracing::error!("closing a requested block failed: {e}"),
            }
            slot_end = Instant::now() + config.block_time;
            continue;
        }
        let due = match fragments {
            Some(_) => next_fragment.min(slot_end),
            None => slot_end,
        };
        if now < due {
            std::thread::sleep((due - now).min(Duration::from_millis(10)));
            continue;
        }
        if let (Some(interval), true) = (fragments, now >= next_fragment) {
            next_fragment += interval;
            if next_fragment < now {
                next_fragment = now + interval;
            }
            let block = open.get_or_insert_with(|| BlockInProgress::open(chain));
            if let Err(e) = block.add_fragment(chain, config) {
                tracing::error!("fragment failed: {e}");
            }
        }
        let full = open.as_ref().is_some_and(BlockInProgress::is_full);
        if now < slot_end && !full {
            continue;
        }
        let closed = match (fragments, open.take()) {
            (None, _) => execute_block(chain, config),
            (Some(_), Some(block)) => block.close(chain, config),
            (Some(_), None) if config.empty_blocks => BlockInProgress::open(chain).close(chain, config),
            (Some(_), None) => Ok(None),
        };
        slot_end += config.block_time;
        if slot_end < now {
            slot_end = now + config.block_time;
        }
        match closed {
            // A full block leaves work behind: start the next slot at once.
            Ok(Some(block)) if block.full => slot_end = Instant::now(),
            Ok(_) => {}
            Err(e) => tracing::error!("block building failed: {e}"),
        }
    }
    chain.fragments_on.store(false, Ordering::Relaxed);
    // Stopping: the open block is closed so its fragments are sealed.
    if let Some(block) = open.take() {
        if let Err(e) = block.close(chain, config) {
            tracing::error!("closing the open block failed: {e}");
        }
    }
}

/// Nice value of the sealer thread. Sealing (state root, store commit) is off the
/// ordering path; the builder and the RPC threads answer preconfirmations, so under
/// load they go first. The sealer still gets every idle cycle, and back-pressure
/// (`MAX_UNSEALED`) stops the builder if it ever falls behind.
/// The state committer's threads run at the same nice value (they work for the sealer).
pub const SEALER_NICE: i32 = 10;

/// Nice value the builder thread (and the executor threads it waits for) asks for: a
/// fragment is due every few milliseconds, and a builder preempted by RPC threads or
/// other processes delays every transaction of the fragment. Raising a priority needs
/// `CAP_SYS_NICE` (or root, or `RLIMIT_NICE`); without it the builder stays at the
/// default (0), still above the sealer.
pub const BUILDER_NICE: i32 = -10;

/// Sets the calling thread's nice value (Linux: nice values are per thread). Lowering
/// always works; raising may be refused for want of privilege, which is returned.
#[allow(unsafe_code)]
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Lowers the calling thread's scheduling priority to `nice` (sealer, committer).
pub fn lower_priority(nice: i32) {
    if let Err(e) = set_thread_nice(nice) {
        tracing::debug!("could not lower a thread's priority: {e}");
    }
}

/// Gives the calling thread the builder's priority ([`BUILDER_NICE`]) when the process
/// may; otherwise it keeps the default, said once in the log.
pub fn builder_priority() {
    static TOLD: std::sync::Once = std::sync::Once::new();
    if let Err(e) = set_thread_nice(BUILDER_NICE) {
        TOLD.call_once(|| {
            tracing::info!("the builder runs at the default priority (nice {BUILDER_NICE} refused: {e})")
        });
    }
}

impl Builder {
    pub fn start(chain: Arc<Chain>, config: BuilderConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Set before the thread runs: once `start` returns, clients may already ask for
        // preconfirmations.
        chain.fragments_on.store(config.fragment_interval.is_some() && chain.preconf.is_some(), Ordering::Relaxed);
        let building = chain.clone();
        let builder = std::thread::Builder::new()
            .name("cairn-builder".into())
            .spawn(move || {
                builder_priority();
                slot_loop(&building, &config, &flag)
            })
            .ok();
        let sealer = spawn_sealer(chain.clone());
        Self { stop, chain, builder, sealer }
    }

    /// Only the sealer: blocks are built and decided elsewhere (consensus drives the
    /// chain through `Replica`). `fragments`: this node signs fragments when it builds.
    pub fn sealer_only(chain: Arc<Chain>, fragments: bool) -> Self {
        chain.fragments_on.store(fragments && chain.preconf.is_some(), Ordering::Relaxed);
        let sealer = spawn_sealer(chain.clone());
        Self { stop: Arc::new(AtomicBool::new(true)), chain, builder: None, sealer }
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

fn spawn_sealer(chain: Arc<Chain>) -> Option<std::thread::JoinHandle<()>> {
    let sealing = chain;
    std::thread::Builder::new()
        .name("cairn-sealer".into())
        .spawn(move || {
            let chain = sealing;
            lower_priority(SEALER_NICE);
            while chain.next_unsealed(true).is_some() {
                if let Err(e) = seal_next(&chain) {
                    tracing::error!("sealing failed (will retry): {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        })
        .ok()
}

/// Makes the edit block for every waiting edit (the builder calls this between
/// blocks) and answers their requests. An edit that cannot be applied (a nonce
/// lowered) is answered with the reason and left out; the others still apply.
pub(crate) fn make_edit_block(chain: &Chain) {
    let waiting = chain.take_edits();
    if waiting.is_empty() {
        return;
    }
    let mut block = BlockInProgress::open(chain);
    let view = chain.pending_view();
    let mut diff = StateDiff::default();
    let mut applied = Vec::with_capacity(waiting.len());
    for (edit, reply) in waiting {
        match edit_diff(&view, &diff, &edit) {
            Ok(one) => {
                diff.extend(one);
                applied.push((edit, reply));
            }
            Err(reason) => {
                let _ = reply.send(Err(reason));
            }
        }
    }
    drop(view);
    if applied.is_empty() {
        return;
    }
    let number = block.number();
    let nonces: std::collections::HashMap<Address, u64> = applied
        .iter()
        .filter_map(|(e, _)| match e {
            DevEdit::Nonce(a, n) => Some((*a, *n)),
            _ => None,
        })
        .collect();
    block.absorb_edits(diff);
    let config = BuilderConfig { empty_blocks: true, ..Default::default() };
    let result = block
        .close(chain, &config)
        .and_then(|_| match chain.wait_sealed(number) {
            Ok(_) => Ok(number),
            Err(e) => Err(e),
        })
        .map_err(|e| format!("the edit block {number} failed: {e}"));
    if result.is_ok() && !nonces.is_empty() {
        chain.pool.lock().on_nonces_used(nonces);
    }
    match &result {
        Ok(_) => tracing::info!(number, edits = applied.len(), "state edit block sealed"),
        Err(e) => tracing::error!("{e}"),
    }
    for (_, reply) in applied {
        let _ = reply.send(result.clone());
    }
}

/// Executes one block on top of the newest executed state, in one piece and without
/// fragments, and queues it for sealing. Returns it, or `None` when there was nothing
/// to include and empty blocks are off.
pub fn execute_block(chain: &Chain, config: &BuilderConfig) -> Result<Option<Arc<ExecutedBlock>>, SequencerError> {
    let mut block = BlockInProgress::open(chain);
    if let Some(part) = block.execute_next(chain, config)? {
        block.commit_part(chain, part, false)?;
    }
    block.close(chain, config)
}

/// Transactions of the pool executed after what a block holds.
struct Part {
    included: Vec<RecoveredTx>,
    receipts: Vec<StoredReceipt>,
    diff: StateDiff,
    /// The block's cumulative gas after them.
    gas_used: u64,
    next_nonce: HashMap<Address, u64>,
    dropped: Vec<(B256, String)>,
    /// A transaction did not fit the gas left, or the transaction cap is reached.
    full: bool,
}

fn body_of(txs: &[RecoveredTx]) -> Vec<(B256, Address, Bytes)> {
    txs.iter().map(|t| (*t.tx_hash(), t.signer(), Bytes::from(t.inner().encoded_2718()))).collect()
}

impl BlockInProgress {
    /// Opens the block after the newest executed one.
    pub fn open(chain: &Chain) -> Self {
        let tip = chain.tip();
        let base_fee = chain.config.next_base_fee(tip.gas_used, tip.gas_limit, tip.base_fee);
        let number = tip.number + 1;
        let timestamp = chain.next_block_timestamp(tip.timestamp);
        let prevrandao = next_prevrandao(&tip, number);
        Self::with_context(chain, BlockContext::for_chain(&chain.config, number, timestamp, base_fee, prevrandao))
    }

    /// A block with `ctx` on top of the newest executed state; its system calls are
    /// those whose contract has code in that state.
    pub(crate) fn with_context(chain: &Chain, ctx: BlockContext) -> Self {
        let prague = chain.config.hardfork == Hardfork::Prague;
        let calls = SystemCalls::on(&chain.pending_view(), prague).unwrap_or_else(|e| {
            tracing::error!(number = ctx.number, "reading the system contracts failed, no system calls: {e}");
            SystemCalls::default()
        });
        Self {
            system: BlockSystem { calls, number: ctx.number, timestamp: ctx.timestamp },
            ctx,
            body: Vec::new(),
            receipts: Vec::new(),
            diff: Arc::default(),
            fragments: Vec::new(),
            gas_used: 0,
            logs: 0,
            full: false,
            close_logged: false,
        }
    }

    pub fn number(&self) -> u64 {
        self.ctx.number
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// No more transactions fit (gas limit or transaction cap).
    pub fn is_full(&self) -> bool {
        self.full
    }

    fn offsets(&self) -> Offsets {
        Offsets { index: self.body.len(), gas: self.gas_used, logs: self.logs }
    }

    /// Executes the best ready pool transactions after what the block holds, on the
    /// newest preconfirmed state. `None` when the pool has nothing to offer.
    fn execute_next(&self, chain: &Chain, config: &BuilderConfig) -> Result<Option<Part>, SequencerError> {
        let room = config.max_block_txs.saturating_sub(self.body.len());
        if room == 0 || self.full {
            return Ok(None);
        }
        let candidates = chain.pool.lock().best(self.ctx.base_fee, room);
        if candidates.is_empty() {
            return Ok(None);
        }
        let txs: Vec<RecoveredTx> = candidates.iter().map(|p| p.tx.clone()).collect();
        let view = chain.pending_view().building(self.system);
        let output = chain.executor.execute_from(&view, &self.ctx, &txs, Mode::Building, self.offsets())?;
        drop(view);
        let mut part = Part {
            included: Vec::with_capacity(txs.len()),
            receipts: Vec::with_capacity(txs.len()),
            diff: output.diff,
            gas_used: output.gas_used,
            next_nonce: HashMap::new(),
            dropped: Vec::new(),
            full: txs.len() >= room,
        };
        for (tx, outcome) in txs.into_iter().zip(output.outcomes) {
            match outcome {
                TxOutcome::Included(receipt) => {
                    part.next_nonce.insert(tx.signer(), tx.nonce() + 1);
                    part.included.push(tx);
                    part.receipts.push(receipt);
                }
                TxOutcome::Skipped(Skip::Invalid(reason)) => {
                    tracing::debug!(hash = %tx.tx_hash(), %reason, "dropping invalid transaction");
                    part.dropped.push((*tx.tx_hash(), reason));
                }
                TxOutcome::Skipped(Skip::Later(_)) => {}
                TxOutcome::Skipped(Skip::BlockFull { .. }) => part.full = true,
            }
        }
        Ok(Some(part))
    }

    /// Adds `part` to the block. With `sign` (and preconfirmations on) it becomes a
    /// fragment: signed, durable in the fragment log, then published.
    fn commit_part(
        &mut self,
        chain: &Chain,
        part: Part,
        sign: bool,
    ) -> Result<Option<Arc<FragmentPart>>, SequencerError> {
        let body = body_of(&part.included);
        let fragment = match (&chain.preconf, sign && !body.is_empty()) {
            (Some(preconf), true) => {
                let fragment = Fragment {
                    chain_id: chain.config.chain_id,
                    height: self.ctx.number,
                    index: self.fragments.len() as u32,
                    parent: *chain.fragment_parent.lock(),
                    timestamp: self.ctx.timestamp,
                    base_fee: self.ctx.base_fee,
                    first_tx: self.body.len() as u32,
                    transactions: body.iter().map(|(h, _, _)| *h).collect(),
                    gas_used: part.gas_used,
                    receipts_hash: receipts_hash(&part.receipts),
                    state_diff_hash: part.diff.commitment(),
                };
                let hash = fragment.hash();
                let signature =
                    preconf.signer.sign_hash_sync(&hash).map_err(|e| SequencerError::Sign(e.to_string()))?;
                let signed = SignedFragment::new(fragment, &signature);
                let logging = Instant::now();
                let record = self.logged(&signed, &body);
                preconf.log.lock().append(&record)?;
                tracing::trace!(sync_us = logging.elapsed().as_micros() as u64, "fragment durable");
                // Sent to the other validators before any client is answered.
                if let Some(hook) = chain.fragment_hook.lock().as_ref() {
                    hook(record);
                }
                Some(Arc::new(FragmentPart {
                    signer: preconf.signer.address(),
                    signed,
                    hash,
                    body: body.clone(),
                    receipts: part.receipts.clone(),
                    at_ms: now_ms(),
                    rpc_json: Default::default(),
                }))
            }
            _ => None,
        };
        self.absorb(chain, body, part.receipts, part.diff, part.gas_used, part.full, fragment.clone());
        {
            let mut pool = chain.pool.lock();
            pool.on_nonces_used(part.next_nonce);
            for (h, _) in &part.dropped {
                pool.remove(h);
            }
        }
        for (h, reason) in &part.dropped {
            chain.dropped(std::slice::from_ref(h), &format!("invalid at execution: {reason}"));
        }
        Ok(fragment)
    }

    fn logged(&self, signed: &SignedFragment, body: &[(B256, Address, Bytes)]) -> LoggedFragment {
        let f = &signed.fragment;
        LoggedFragment {
            height: f.height,
            index: f.index,
            parent: f.parent,
            timestamp: f.timestamp,
            base_fee: f.base_fee,
            first_tx: f.first_tx,
            gas_used: f.gas_used,
            receipts_hash: f.receipts_hash,
            state_diff_hash: f.state_diff_hash,
            signature: signed.signature.clone(),
            prevrandao: self.ctx.prevrandao,
            beneficiary: self.ctx.beneficiary,
            gas_limit: self.ctx.gas_limit,
            txs: body.iter().map(|(_, _, raw)| raw.clone()).collect(),
        }
    }

    /// Takes executed transactions into the block; a fragment is published.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &mut self,
        chain: &Chain,
        body: Vec<(B256, Address, Bytes)>,
        receipts: Vec<StoredReceipt>,
        diff: StateDiff,
        gas_used: u64,
        full: bool,
        fragment: Option<Arc<FragmentPart>>,
    ) {
        self.logs += receipts.iter().map(|r| r.logs.len() as u64).sum::<u64>();
        self.body.extend(body);
        self.receipts.extend(receipts);
        Arc::make_mut(&mut self.diff).extend(diff);
        self.gas_used = gas_used;
        self.full |= full;
        if let Some(part) = fragment {
            self.fragments.push(part.clone());
            *chain.fragment_parent.lock() = part.hash;
            let open = OpenBlock {
                number: self.ctx.number,
                timestamp: self.ctx.timestamp,
                base_fee: self.ctx.base_fee,
                fragments: self.fragments.clone(),
                diff: self.diff.clone(),
                system: self.system,
            };
            chain.publish_fragment(Arc::new(open), &part);
        }
    }

    /// Executes the best ready pool transactions and, if any is included, emits them as
    /// a signed, durable, published fragment (unsigned and unpublished when
    /// preconfirmations are off).
    pub fn add_fragment(
        &mut self,
        chain: &Chain,
        config: &BuilderConfig,
    ) -> Result<Option<Arc<FragmentPart>>, SequencerError> {
        let started = Instant::now();
        let Some(part) = self.execute_next(chain, config)? else { return Ok(None) };
        let executed = started.elapsed();
        let fragment = self.commit_part(chain, part, true)?;
        if let Some(f) = &fragment {
            tracing::debug!(
                height = f.fragment().height,
                index = f.fragment().index,
                txs = f.body.len(),
                execute_us = executed.as_micros() as u64,
                total_us = started.elapsed().as_micros() as u64,
                "fragment published"
            );
        }
        Ok(fragment)
    }

    /// A rollup follower's block: executes `txs`, ordered by the set, after what the
    /// block holds (building mode) and takes in those that execute; the others are
    /// skipped, every follower alike, and returned with the reason.
    pub(crate) fn include_ordered(
        &mut self,
        chain: &Chain,
        txs: Vec<RecoveredTx>,
    ) -> Result<Vec<(B256, String)>, SequencerError> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let view = chain.pending_view().building(self.system);
        let output = chain.executor.execute_from(&view, &self.ctx, &txs, Mode::Building, self.offsets())?;
        drop(view);
        let mut included = Vec::with_capacity(txs.len());
        let mut receipts = Vec::with_capacity(txs.len());
        let mut rejected = Vec::new();
        for (tx, outcome) in txs.into_iter().zip(output.outcomes) {
            match outcome {
                TxOutcome::Included(receipt) => {
                    included.push(tx);
                    receipts.push(receipt);
                }
                TxOutcome::Skipped(Skip::Invalid(reason)) | TxOutcome::Skipped(Skip::Later(reason)) => {
                    rejected.push((*tx.tx_hash(), reason))
                }
                TxOutcome::Skipped(Skip::BlockFull { .. }) => {
                    rejected.push((*tx.tx_hash(), "the block's gas limit is reached".to_string()))
                }
            }
        }
        let body = body_of(&included);
        self.absorb(chain, body, receipts, output.diff, output.gas_used, false, None);
        Ok(rejected)
    }

    /// Executes `txs` after what the block holds, in building mode, without taking them
    /// in: each one's outcome.
    pub(crate) fn outcomes(&self, chain: &Chain, txs: &[RecoveredTx]) -> Result<Vec<TxOutcome>, SequencerError> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let view = chain.pending_view().building(self.system);
        Ok(chain.executor.execute_from(&view, &self.ctx, txs, Mode::Building, self.offsets())?.outcomes)
    }

    /// Takes a development state edit into the (otherwise empty) block: no fragment, no
    /// transaction, only state changes.
    pub(crate) fn absorb_edits(&mut self, diff: StateDiff) {
        Arc::make_mut(&mut self.diff).extend(diff);
    }

    /// Decodes `raw` transactions (senders recovered), executes them after what the block
    /// holds (replay mode), and requires every one to be included; `diverged` words the
    /// failure.
    fn execute_all(
        &self,
        chain: &Chain,
        raw: &[Bytes],
        diverged: impl Fn(String) -> SequencerError,
    ) -> Result<(Vec<RecoveredTx>, Vec<StoredReceipt>, cairn_executor::BlockOutput), SequencerError> {
        let mut txs = Vec::with_capacity(raw.len());
        for bytes in raw {
            let tx =
                TxEnvelope::decode_2718_exact(bytes).map_err(|e| diverged(format!("undecodable transaction: {e}")))?;
            let sender = cairn_primitives::impersonation::recover_sender(&tx, chain.config.dev)
                .map_err(|e| diverged(format!("bad signature: {e}")))?;
            txs.push(alloy_consensus::transaction::Recovered::new_unchecked(tx, sender));
        }
        let view = chain.pending_view().building(self.system);
        let mut out = chain
            .executor
            .execute_from(&view, &self.ctx, &txs, Mode::Replay, self.offsets())
            .map_err(|e| diverged(e.to_string()))?;
        drop(view);
        let receipts: Vec<StoredReceipt> = std::mem::take(&mut out.outcomes)
            .into_iter()
            .map(|o| match o {
                TxOutcome::Included(r) => Ok(r),
                TxOutcome::Skipped(s) => Err(diverged(format!("a transaction was skipped: {s:?}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok((txs, receipts, out))
    }

    /// Executes a logged fragment again (replay mode) and takes it in; its gas, receipts
    /// and state diff must be the ones it promised.
    /// With `update_pool`, the pool learns the nonces it used (a block of this node's own;
    /// another proposer's block only does once it is decided).
    pub(crate) fn replay(
        &mut self,
        chain: &Chain,
        logged: &LoggedFragment,
        update_pool: bool,
    ) -> Result<(), SequencerError> {
        let diverged = |reason: String| SequencerError::Diverged { height: logged.height, index: logged.index, reason };
        if logged.index as usize != self.fragments.len() || logged.first_tx as usize != self.body.len() {
            return Err(diverged(format!(
                "expected fragment {} at position {}, the log has fragment {} at {}",
                self.fragments.len(),
                self.body.len(),
                logged.index,
                logged.first_tx
            )));
        }
        let (txs, receipts, out) = self.execute_all(chain, &logged.txs, diverged)?;
        let signed = logged.signed(chain.config.chain_id);
        let f = &signed.fragment;
        if out.gas_used != f.gas_used
            || receipts_hash(&receipts) != f.receipts_hash
            || out.diff.commitment() != f.state_diff_hash
        {
            return Err(diverged("gas, receipts or state diff differ from the signed fragment".into()));
        }
        let next_nonce: HashMap<Address, u64> = txs.iter().map(|t| (t.signer(), t.nonce() + 1)).collect();
        let body = body_of(&txs);
        let signer = signed.signer().map_err(|e| diverged(e.to_string()))?;
        let part = Arc::new(FragmentPart {
            signer,
            hash: f.hash(),
            signed: signed.clone(),
            body: body.clone(),
            receipts: receipts.clone(),
            at_ms: now_ms(),
            rpc_json: Default::default(),
        });
        self.absorb(chain, body, receipts, out.diff, out.gas_used, false, Some(part));
        if update_pool {
            chain.pool.lock().on_nonces_used(next_nonce);
        }
        Ok(())
    }

    /// Takes in a fragment another validator signed for this height (one that failed to
    /// finish its block): executed again and checked (replay mode), then written to this
    /// node's fragment log, so that this node's block extends it also after a restart.
    pub(crate) fn adopt(&mut self, chain: &Chain, record: &LoggedFragment) -> Result<(), SequencerError> {
        self.replay(chain, record, true)?;
        if let Some(preconf) = &chain.preconf {
            preconf.log.lock().append(record)?;
        }
        Ok(())
    }

    /// Executes the transactions of a decided block received by value sync (replay
    /// mode) and takes them in, without fragments: every one must be included.
    pub(crate) fn replay_txs(&mut self, chain: &Chain, raw: &[Bytes]) -> Result<(), SequencerError> {
        let height = self.ctx.number;
        let diverged = |reason: String| SequencerError::Diverged { height, index: 0, reason };
        let (txs, receipts, out) = self.execute_all(chain, raw, diverged)?;
        let body = body_of(&txs);
        self.absorb(chain, body, receipts, out.diff, out.gas_used, false, None);
        Ok(())
    }

    /// Ends the block as a proposal: its transaction list is final (the close record is
    /// durable first when it has fragments) and it becomes the sequencer block this node
    /// proposes for its height. `None` when it is empty and empty blocks are off.
    pub fn propose(self, chain: &Chain, config: &BuilderConfig) -> Result<Option<Proposal>, SequencerError> {
        let proposer = chain.signer_address().unwrap_or_default();
        self.propose_as(chain, config, 0, proposer)
    }

    /// [`Self::propose`] as `proposer` in consensus round `round`.
    pub(crate) fn propose_as(
        self,
        chain: &Chain,
        config: &BuilderConfig,
        round: u32,
        proposer: Address,
    ) -> Result<Option<Proposal>, SequencerError> {
        if self.body.is_empty() && !config.empty_blocks {
            return Ok(None);
        }
        if let (Some(preconf), false, false) = (&chain.preconf, self.fragments.is_empty(), self.close_logged) {
            preconf.log.lock().close(self.ctx.number)?;
        }
        let ctx = &self.ctx;
        let header = Header {
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: ctx.beneficiary,
            // Transactions and receipts root and logs bloom are computed by the sealer
            // (`body_roots`), next to the state root: off the builder thread, where they
            // held up the next block's first fragment.
            number: ctx.number,
            gas_limit: ctx.gas_limit,
            gas_used: self.gas_used,
            timestamp: ctx.timestamp,
            mix_hash: ctx.prevrandao,
            base_fee_per_gas: Some(ctx.base_fee),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: requests_hash(&chain.config),
            ..Default::default()
        };
        let sequencer = SequencerBlock {
            chain_id: chain.config.chain_id,
            height: ctx.number,
            round,
            parent: chain.tip().sequencer_hash,
            proposer,
            timestamp: ctx.timestamp,
            base_fee: ctx.base_fee,
            gas_limit: ctx.gas_limit,
            prevrandao: ctx.prevrandao,
            beneficiary: ctx.beneficiary,
            transactions: self.body.iter().map(|(h, _, _)| *h).collect(),
            fragments: self.fragments.iter().map(|f| f.hash).collect(),
            executed: None,
            namespaces: None,
        };
        let full = self.full || self.body.len() >= config.max_block_txs;
        Ok(Some(Proposal {
            sequencer,
            header,
            body: self.body,
            receipts: self.receipts,
            diff: self.diff,
            full,
            fragments: self.fragments,
            system: self.system,
        }))
    }

    /// Closes the block: proposes it, has the chain's finality decide it, and queues the
    /// decided block for sealing (waiting while [`crate::MAX_UNSEALED`] blocks wait); it
    /// is announced as sequenced. `None` when it is empty and empty blocks are off.
    pub fn close(self, chain: &Chain, config: &BuilderConfig) -> Result<Option<Arc<ExecutedBlock>>, SequencerError> {
        let Some(proposal) = self.propose(chain, config)? else { return Ok(None) };
        let waited = Instant::now();
        let block = chain.decide(proposal)?;
        let waited = waited.elapsed();
        chain.block_closed_at(block.header.timestamp);
        chain.sequenced(&block);
        tracing::debug!(
            number = block.header.number,
            txs = block.body.len(),
            fragments = block.fragments.len(),
            gas = block.header.gas_used,
            decide_and_pipeline_wait_us = waited.as_micros() as u64,
            "block closed"
        );
        Ok(Some(block))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
    fn thread_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
        after_comm.split_whitespace().nth(16).expect("nice").parse().expect("number")
    }

    #[test]
    fn a_nice_value_applies_to_the_calling_thread_only() {
        let before = thread_nice();
        let lowered = std::thread::spawn(move || {
            set_thread_nice(before + 3).expect("lowering is always allowed");
            thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, before + 3);
        assert_eq!(thread_nice(), before, "other threads keep theirs");
        // Whether raising is allowed depends on privilege; either way the thread keeps a
        // priority at least as high as the one it had.
        let raised = std::thread::spawn(move || {
            builder_priority();
            thread_nice()
        })
        .join()
        .expect("thread");
        assert!(raised == BUILDER_NICE || raised == before, "nice {raised}");
    }
}
