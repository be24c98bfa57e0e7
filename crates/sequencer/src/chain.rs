use alloy_consensus::Header;
use alloy_primitives::B256;
use cairn_executor::Executor;
use cairn_mempool::{Mempool, PoolConfig};
use cairn_primitives::{ChainConfig, GenesisAlloc, StoredReceipt};
use cairn_storage::{RecordLog, Store, StoreError, StoreReader};
use cairn_trie::StateCommitter;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

use crate::admission::{pool_records, reload_pool, Persister};
pub use crate::error::SequencerError;
use crate::fragments::{now_ms, FragmentLog, FragmentPart, LoggedBlock, Preconf};
use crate::pipeline::{BlockInProgress, ExecutedBlock, PendingView, Pipeline, Tip, MAX_UNSEALED};
use crate::status::{StatusTracker, Tier, TxStatus};
use cairn_consensus::{Finality, Solo};

/// Capacity of the event channel; a subscriber that falls further behind is told it
/// lagged (and is dropped).
pub const EVENT_BUFFER: usize = 16_384;

pub use crate::error::MAX_PRECONF_WAITERS;

/// A block that was just committed, with what subscribers need.
#[derive(Debug, Clone)]
pub struct NewBlock {
    pub header: Header,
    pub hash: B256,
    pub tx_hashes: Vec<B256>,
    pub receipts: Vec<StoredReceipt>,
    /// The block hit its gas limit or transaction cap: more work is waiting.
    pub full: bool,
}

/// A block that was just closed: its transactions and their order are final.
#[derive(Debug, Clone)]
pub struct SequencedBlock {
    pub number: u64,
    pub tx_hashes: Vec<B256>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
pub enum ChainEvent {
    /// A block was sealed (state root computed, committed).
    Block(Arc<NewBlock>),
    /// A transaction was admitted; `ready` when it can execute now (no nonce gap).
    Received { hash: B256, ready: bool, at_ms: u64 },
    /// A preconfirmation fragment was made durable and is published.
    Fragment(Arc<FragmentPart>),
    /// A block was closed.
    Sequenced(Arc<SequencedBlock>),
    /// A transaction that was only received was retracted.
    Dropped { hash: B256, reason: Arc<str>, at_ms: u64 },
    /// Blocks became firm: on the DA layer, read back and checked.
    Firm(Arc<FirmBlocks>),
    /// What this node executed differs from the DA layer from a block on: its
    /// transactions (and every later block's) are retracted.
    Retracted(Arc<Retraction>),
}

/// A difference between the soft chain (executed here) and the DA layer.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retraction {
    /// The first block that differs; nothing from it on becomes firm.
    pub block: u64,
    /// The newest block executed here when the difference was found.
    pub through: u64,
    /// The batch that differs.
    pub da: cairn_da::DaRef,
    pub reason: String,
    /// `(hash, block, position)` of the retracted transactions.
    #[serde(skip)]
    pub txs: Vec<(B256, u64, u64)>,
    pub at_ms: u64,
}

/// Most retractions remembered.
pub const MAX_RETRACTIONS: usize = 64;

/// Blocks `first..=last`, firm in the batch `da`.
#[derive(Debug, Clone)]
pub struct FirmBlocks {
    pub first: u64,
    pub last: u64,
    /// `(hash, block, position)` of their transactions.
    pub txs: Vec<(B256, u64, u64)>,
    pub da: cairn_da::DaRef,
    pub at_ms: u64,
}

/// Most batches remembered for the status of older transactions.
pub const MAX_FIRM_BATCHES: usize = 4_096;

/// A transaction in an executed-but-unsealed block or in the open block.
#[derive(Debug, Clone)]
pub struct UnsealedTx {
    pub number: u64,
    pub position: u64,
    pub timestamp: u64,
    pub base_fee: u64,
    pub sender: alloy_primitives::Address,
    pub raw: alloy_primitives::Bytes,
    pub receipt: StoredReceipt,
    /// The fragment that preconfirmed it (none when fragments are off).
    pub fragment: Option<Arc<FragmentPart>>,
    /// Its block is closed, not only preconfirmed.
    pub sequenced: bool,
}

pub(crate) struct PreconfState {
    pub signer: alloy_signer_local::PrivateKeySigner,
    pub log: Mutex<FragmentLog>,
}

type Waiter = oneshot::Sender<Result<(Arc<FragmentPart>, usize), WaitEnd>>;

/// How a wait for a preconfirmation ends without one.
#[derive(Debug, Clone)]
enum WaitEnd {
    /// The transaction left the pool: the reason.
    Dropped(Arc<str>),
    /// The transaction was decided in this block, and this node holds no fragment of
    /// it (the block came by value sync).
    Decided(u64),
}

/// Everything the node's parts share: store, pool, chain config, latest header, events.
pub struct Chain {
    pub store: Store,
    pub config: ChainConfig,
    pub pool: Arc<Mutex<Mempool>>,
    pub executor: Arc<dyn Executor>,
    pub committer: Arc<dyn StateCommitter>,
    /// Sealed head, its snapshot, and the executed-but-unsealed blocks above it.
    pipeline: Arc<Mutex<Pipeline>>,
    /// Signalled whenever the pipeline changes (block executed, sealed, closed).
    changed: Condvar,
    me: Weak<Chain>,
    events: broadcast::Sender<ChainEvent>,
    pub(crate) persister: Persister,
    pub(crate) preconf: Option<PreconfState>,
    pub(crate) status: Mutex<StatusTracker>,
    waiters: Mutex<HashMap<B256, Vec<Waiter>>>,
    /// The open block found in the fragment log at start, for the builder to go on with.
    pub(crate) resumed: Mutex<Option<BlockInProgress>>,
    /// Hash of the newest fragment (the parent of the next one).
    pub(crate) fragment_parent: Mutex<B256>,
    /// A builder that emits fragments is running.
    pub(crate) fragments_on: std::sync::atomic::AtomicBool,
    /// Highest block a preconfirmed receipt was handed out for.
    receipt_watermark: std::sync::atomic::AtomicU64,
    /// `cairn dev`'s clock and block requests.
    pub(crate) dev: crate::devstate::DevControls,
    /// What decides the blocks the builder proposes.
    finality: Mutex<Arc<dyn Finality>>,
    /// Called with each fragment this node signs, once it is durable and before any
    /// client is answered (consensus sends it to the other validators).
    pub(crate) fragment_hook: Mutex<Option<FragmentHook>>,
    /// Whose misbehaviour this node keeps evidence of, and who hears of new evidence.
    pub(crate) evidence_gate: Mutex<EvidenceGate>,
    /// The data-availability layer, once a poster runs.
    da: Mutex<Option<crate::da::DaHandle>>,
    /// Blocks become firm here (a DA poster runs, or a follower reads the set's DA
    /// layer back): the `finalized` tag names the newest firm block.
    tracks_firm: std::sync::atomic::AtomicBool,
    /// The last firm block, and the batches of the newest firm blocks (bounded by
    /// [`MAX_FIRM_BATCHES`]): `(first, last, batch)`.
    firm: Mutex<FirmIndex>,
    /// Differences found between what was executed here and the DA layer (the newest
    /// [`MAX_RETRACTIONS`]).
    retractions: Mutex<std::collections::VecDeque<Arc<Retraction>>>,
}

/// The last firm block, and `(first, last, batch)` of the newest firm batches.
type FirmIndex = (u64, std::collections::VecDeque<(u64, u64, cairn_da::DaRef)>);

/// Receives each fragment this node signs (see [`Chain::set_fragment_hook`]).
pub type FragmentHook = Box<dyn Fn(crate::fragments::LoggedFragment) + Send + Sync>;

/// Receives each new evidence record, in its `cairn_getEvidence` JSON form.
pub type EvidenceHook = Box<dyn Fn(serde_json::Value) + Send + Sync>;

/// See `Chain::set_accountable` and `Chain::set_evidence_hook`.
#[derive(Default)]
pub(crate) struct EvidenceGate {
    pub accountable: Option<std::collections::HashSet<alloy_primitives::Address>>,
    pub hook: Option<EvidenceHook>,
}

impl Chain {
    /// Opens the chain's state in `store` (writing genesis from `alloc` on first start),
    /// reloads the pool from the admission log at `log_path` and opens the fragment log;
    /// returns the logged blocks above the store's head, for recovery
    /// (`Chain::open`, in `recovery`, does both). Must be called inside a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_state(
        store: Store,
        log_path: &std::path::Path,
        config: ChainConfig,
        alloc: &GenesisAlloc,
        pool: PoolConfig,
        executor: Arc<dyn Executor>,
        committer: Arc<dyn StateCommitter>,
        preconf: Option<Preconf>,
    ) -> Result<(Arc<Self>, Vec<LoggedBlock>), SequencerError> {
        let reader = store.reader()?;
        let config = match reader.chain_config() {
            Ok(stored) => {
                if stored.chain_id != config.chain_id {
                    return Err(SequencerError::ChainMismatch { stored: stored.chain_id, requested: config.chain_id });
                }
                // Whether the chain is a development chain follows the node's mode.
                ChainConfig { dev: config.dev, ..stored }
            }
            Err(StoreError::Empty) => {
                crate::genesis::write_genesis(&store, &config, alloc, committer.as_ref())?;
                config
            }
            Err(e) => return Err(e.into()),
        };
        let reader = store.reader()?;
        let head = reader.head()?;
        let header =
            reader.header(head)?.ok_or(StoreError::Corrupt { what: "head", reason: format!("no header {head}") })?;
        let hash = header.hash_slow();
        let sequencer_hash = reader.sequencer_block(head)?.map(|(b, _)| b.hash()).unwrap_or_default();
        let clock = reader.clock()?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (mut log, records) = RecordLog::open(log_path)?;
        let pool = Arc::new(Mutex::new(Mempool::new(pool)));
        let reloaded = reload_pool(&store, &pool, records, config.dev)?;
        let (fragment_log, parent, logged) = match &preconf {
            Some(p) => {
                let (log, parent, logged) = FragmentLog::open(&p.dir, head, config.chain_id)?;
                (Some(log), parent, logged)
            }
            None => (None, B256::ZERO, Vec::new()),
        };
        let pipeline = Arc::new(Mutex::new(Pipeline {
            snapshot: Arc::new(store.reader()?),
            tip: Tip::of(&header, sequencer_hash),
            latest: (header, hash),
            unsealed: Default::default(),
            open: None,
            closed: false,
        }));
        log.rewrite(pool_records(&pool, &pipeline).iter().map(Vec::as_slice))?;
        let persister = Persister::start(log, pool.clone(), pipeline.clone());
        let chain = Arc::new_cyclic(|me| Self {
            store,
            config,
            pool,
            executor,
            committer,
            pipeline,
            changed: Condvar::new(),
            me: me.clone(),
            events,
            persister,
            preconf: preconf.zip(fragment_log).map(|(p, log)| PreconfState { signer: p.signer, log: Mutex::new(log) }),
            status: Mutex::new(StatusTracker::default()),
            waiters: Mutex::new(HashMap::new()),
            resumed: Mutex::new(None),
            fragment_parent: Mutex::new(parent),
            fragments_on: std::sync::atomic::AtomicBool::new(false),
            receipt_watermark: std::sync::atomic::AtomicU64::new(0),
            dev: crate::devstate::DevControls::new(clock),
            finality: Mutex::new(Arc::new(Solo::after(head, sequencer_hash))),
            fragment_hook: Mutex::new(None),
            evidence_gate: Mutex::new(EvidenceGate::default()),
            da: Mutex::new(None),
            tracks_firm: std::sync::atomic::AtomicBool::new(false),
            firm: Mutex::new((0, std::collections::VecDeque::new())),
            retractions: Mutex::new(std::collections::VecDeque::new()),
        });
        // Re-admitted transactions keep the time they were first accepted.
        {
            let mut status = chain.status.lock();
            for (hash, at_ms) in reloaded {
                status.advance(hash, Tier::Received, at_ms);
            }
        }
        Ok((chain, logged))
    }

    /// The address that signs this node's fragments, when a builder emits them.
    pub fn sequencer_address(&self) -> Option<alloy_primitives::Address> {
        let on = self.fragments_on.load(std::sync::atomic::Ordering::Relaxed);
        self.preconf.as_ref().filter(|_| on).map(|p| p.signer.address())
    }

    /// Records that a preconfirmed receipt for block `height` was handed out.
    pub fn note_receipt_height(&self, height: u64) {
        self.receipt_watermark.fetch_max(height, std::sync::atomic::Ordering::Relaxed);
    }

    /// Highest block a preconfirmed receipt was handed out for.
    pub fn receipt_watermark(&self) -> u64 {
        self.receipt_watermark.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The open block recovered from the fragment log, if any (the builder takes it at
    /// start; tools that drive blocks by hand take it here).
    pub fn take_resumed(&self) -> Option<BlockInProgress> {
        self.resumed.lock().take()
    }

    /// Replaces what decides this node's proposals (a single sequencer, [`Solo`], until
    /// then). Set before the builder starts.
    pub fn set_finality(&self, finality: Arc<dyn Finality>) {
        *self.finality.lock() = finality;
    }

    /// Has `proposal` decided and hands the decided block to the pipeline (the sealer
    /// commits it); it is announced as sequenced. A decision for another block than the
    /// one proposed is refused: a node that adopts other proposers' blocks replays them
    /// first (BFT).
    pub(crate) fn decide(&self, proposal: crate::pipeline::Proposal) -> Result<Arc<ExecutedBlock>, SequencerError> {
        let finality = self.finality.lock().clone();
        let decided = finality.decide(&proposal.sequencer);
        if !matches!(&decided, Ok(d) if d.block == proposal.sequencer) {
            // Not decided: its state leaves the pending view. (Its transactions going
            // back to the pool, and retracting its preconfirmations, come with BFT.)
            let mut p = self.pipeline.lock();
            if p.open.as_ref().is_some_and(|o| o.number == proposal.sequencer.height) {
                p.open = None;
            }
        }
        let decision = decided?;
        if decision.block != proposal.sequencer {
            return Err(SequencerError::Consensus(format!(
                "{} decided block {} for height {}, not this node's proposal {}",
                finality.name(),
                decision.block.hash(),
                decision.block.height,
                proposal.sequencer.hash()
            )));
        }
        let block = Arc::new(proposal.decided(decision.certificate));
        self.push_executed(block.clone())?;
        Ok(block)
    }

    /// Sets (or clears) the data-availability layer RPC reads from.
    pub fn set_da(&self, da: Option<crate::da::DaHandle>) {
        if da.is_some() {
            self.track_firm();
        }
        *self.da.lock() = da;
    }

    /// Blocks of this chain become firm (see [`Self::finalized_through`]).
    pub fn track_firm(&self) {
        self.tracks_firm.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The block the `finalized` tag names when the sealed head is `head`: the newest
    /// firm block where blocks become firm (on the DA layer, read back and checked), else
    /// the head (a decided block is final under its finality).
    pub fn finalized_through(&self, head: u64) -> u64 {
        if self.tracks_firm.load(std::sync::atomic::Ordering::Relaxed) {
            self.firm_through().min(head)
        } else {
            head
        }
    }

    /// The data-availability layer, if a poster runs.
    pub fn da(&self) -> Option<crate::da::DaHandle> {
        self.da.lock().clone()
    }

    /// Sets (or clears) what receives each fragment this node signs.
    pub fn set_fragment_hook(&self, hook: Option<FragmentHook>) {
        *self.fragment_hook.lock() = hook;
    }

    /// Drops the open block of `height` from the pending view (a proposal that was not
    /// decided, or one about to be replaced).
    pub(crate) fn clear_open(&self, height: u64) {
        let mut p = self.pipeline.lock();
        if p.open.as_ref().is_some_and(|o| o.number == height) {
            p.open = None;
        }
    }

    /// The sequencer key's address, whether or not fragments are being emitted.
    pub fn signer_address(&self) -> Option<alloy_primitives::Address> {
        self.preconf.as_ref().map(|p| p.signer.address())
    }

    /// The newest sealed header and its hash (what `latest` means over RPC).
    pub fn latest(&self) -> (Header, B256) {
        self.pipeline.lock().latest.clone()
    }

    /// The read snapshot of the newest sealed block.
    pub fn snapshot(&self) -> Arc<StoreReader> {
        self.pipeline.lock().snapshot.clone()
    }

    /// The newest executed block (sealed or not): what the next block builds on.
    pub fn tip(&self) -> Tip {
        self.pipeline.lock().tip
    }

    /// A transaction that is preconfirmed or sequenced but not sealed yet.
    pub fn find_unsealed(&self, hash: &B256) -> Option<UnsealedTx> {
        let (open, unsealed) = {
            let p = self.pipeline.lock();
            (p.open.clone(), p.unsealed.iter().cloned().collect::<Vec<_>>())
        };
        if let Some(open) = open {
            if let Some((part, i)) = open.find(hash) {
                let (_, sender, raw) = part.body[i].clone();
                return Some(UnsealedTx {
                    number: open.number,
                    position: u64::from(part.fragment().first_tx) + i as u64,
                    timestamp: open.timestamp,
                    base_fee: open.base_fee,
                    sender,
                    raw,
                    receipt: part.receipts[i].clone(),
                    fragment: Some(part),
                    sequenced: false,
                });
            }
        }
        unsealed.iter().find_map(|b| {
            let i = b.body.iter().position(|(h, _, _)| h == hash)?;
            let (_, sender, raw) = b.body[i].clone();
            Some(UnsealedTx {
                number: b.header.number,
                position: i as u64,
                timestamp: b.header.timestamp,
                base_fee: b.header.base_fee_per_gas.unwrap_or_default(),
                sender,
                raw,
                receipt: b.receipts[i].clone(),
                fragment: b.fragments.iter().find(|f| f.find(hash).is_some()).cloned(),
                sequenced: true,
            })
        })
    }

    /// The open block as far as it is preconfirmed.
    pub fn open_block(&self) -> Option<Arc<crate::fragments::OpenBlock>> {
        self.pipeline.lock().open.clone()
    }

    /// Status of a transaction: its tier history when it is among the recently tracked
    /// ones, otherwise its tier from where it is (no timestamps); `None` if unknown.
    pub fn status(&self, hash: &B256) -> Result<Option<TxStatus>, SequencerError> {
        if let Some(s) = self.status.lock().get(hash) {
            return Ok(Some(s));
        }
        let bare = |tier, block, position, fragment| TxStatus {
            tier,
            history: Vec::new(),
            block,
            position,
            fragment,
            reason: None,
            da: None,
        };
        if let Some(u) = self.find_unsealed(hash) {
            let tier = if u.sequenced { Tier::Sequenced } else { Tier::Preconfirmed };
            return Ok(Some(bare(tier, Some(u.number), Some(u.position), u.fragment)));
        }
        if self.pool.lock().contains(hash) {
            return Ok(Some(bare(Tier::Received, None, None, None)));
        }
        Ok(self.snapshot().tx(*hash)?.map(|r| {
            let mut s = bare(Tier::Sealed, Some(r.block_number), Some(r.index), None);
            let firm = self.firm.lock();
            if r.block_number <= firm.0 {
                s.tier = Tier::Firm;
                s.da = firm.1.iter().find(|(a, b, _)| (*a..=*b).contains(&r.block_number)).map(|(_, _, d)| d.clone());
            }
            s
        }))
    }

    /// The last block that is firm (0: none).
    pub fn firm_through(&self) -> u64 {
        self.firm.lock().0
    }

    /// Records that blocks `first..=last` are firm in batch `da` (read back from the DA
    /// layer and checked against the store): their transactions' status, subscribers.
    pub fn mark_firm(&self, first: u64, last: u64, da: cairn_da::DaRef) -> Result<(), SequencerError> {
        let reader = self.snapshot();
        let mut txs = Vec::new();
        for number in first..=last {
            for (i, h) in reader.block_tx_hashes(number)?.into_iter().enumerate() {
                txs.push((h, number, i as u64));
            }
        }
        {
            let mut firm = self.firm.lock();
            firm.0 = firm.0.max(last);
            if firm.1.len() >= MAX_FIRM_BATCHES {
                firm.1.pop_front();
            }
            firm.1.push_back((first, last, da.clone()));
        }
        let at_ms = now_ms();
        {
            let mut status = self.status.lock();
            for (h, _, _) in &txs {
                // Only the transactions still tracked; older ones are answered from the
                // store and the firm watermark.
                if status.get(h).is_some() {
                    status.advance(*h, Tier::Firm, at_ms).da = Some(da.clone());
                }
            }
        }
        self.publish(ChainEvent::Firm(Arc::new(FirmBlocks { first, last, txs, da, at_ms })));
        Ok(())
    }

    /// Records that blocks `block..=` executed here differ from the DA layer's batch
    /// `da`: every transaction of those blocks is `retracted` with `reason`, subscribers
    /// hear of it ([`ChainEvent::Retracted`]), and [`Self::retractions`] lists it. Blocks
    /// already firm are not touched (they matched their batch).
    pub fn retract(&self, block: u64, da: cairn_da::DaRef, reason: String) -> Result<Arc<Retraction>, SequencerError> {
        let reader = self.snapshot();
        // The sealed blocks: a caller compares sealed blocks with the DA layer.
        let through = reader.head()?;
        let from = block.max(self.firm_through() + 1);
        let mut txs = Vec::new();
        for number in from..=through {
            for (i, h) in reader.block_tx_hashes(number)?.into_iter().enumerate() {
                txs.push((h, number, i as u64));
            }
        }
        let at_ms = now_ms();
        {
            let mut status = self.status.lock();
            for (h, _, _) in &txs {
                status.retracted(*h, &reason, at_ms);
            }
        }
        let retraction = Arc::new(Retraction { block, through, da, reason, txs, at_ms });
        {
            let mut r = self.retractions.lock();
            if r.len() >= MAX_RETRACTIONS {
                r.pop_front();
            }
            r.push_back(retraction.clone());
        }
        tracing::error!(
            block,
            through,
            reason = %retraction.reason,
            "RETRACTION: the blocks executed here differ from the DA layer; nothing from this block on becomes firm"
        );
        self.publish(ChainEvent::Retracted(retraction.clone()));
        Ok(retraction)
    }

    /// The retractions this node found, oldest first.
    pub fn retractions(&self) -> Vec<Arc<Retraction>> {
        self.retractions.lock().iter().cloned().collect()
    }

    /// Waits until `hash` is in a published fragment; returns the fragment and the
    /// transaction's index in it. Errors when preconfirmations are off, the
    /// transaction is dropped, or `timeout` passes.
    pub async fn wait_preconfirmed(
        &self,
        hash: B256,
        timeout: Duration,
    ) -> Result<(Arc<FragmentPart>, usize), SequencerError> {
        if self.sequencer_address().is_none() {
            return Err(SequencerError::PreconfOff);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.waiters.lock();
            if waiters.len() >= MAX_PRECONF_WAITERS {
                return Err(SequencerError::TooManyWaiters);
            }
            waiters.entry(hash).or_default().push(tx);
        }
        // Registered first, then looked up: a fragment published in between is seen
        // by one or the other.
        let known = self.status.lock().get(&hash);
        let result = match known {
            Some(TxStatus { fragment: Some(part), .. }) => part.find(&hash).map(|i| Ok((part.clone(), i))),
            Some(TxStatus { tier: Tier::Dropped, reason, .. }) => {
                Some(Err(WaitEnd::Dropped(reason.unwrap_or_default().into())))
            }
            Some(TxStatus { tier: Tier::Sequenced | Tier::Sealed, block: Some(block), .. }) => {
                Some(Err(WaitEnd::Decided(block)))
            }
            _ => None,
        };
        let result = match result {
            Some(r) => {
                drop(rx);
                Some(r)
            }
            None => tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok),
        };
        {
            let mut waiters = self.waiters.lock();
            if let Some(list) = waiters.get_mut(&hash) {
                list.retain(|w| !w.is_closed());
                if list.is_empty() {
                    waiters.remove(&hash);
                }
            }
        }
        match result {
            Some(Ok(found)) => Ok(found),
            Some(Err(WaitEnd::Dropped(reason))) => Err(SequencerError::Dropped { hash, reason: reason.to_string() }),
            Some(Err(WaitEnd::Decided(block))) => Err(SequencerError::DecidedWithoutFragment { hash, block }),
            None => Err(SequencerError::PreconfTimeout { hash, ms: timeout.as_millis() }),
        }
    }

    /// Publishes a durable fragment: the open block readers see, the status of its
    /// transactions, their waiters, subscribers.
    pub(crate) fn publish_fragment(&self, open: Arc<crate::fragments::OpenBlock>, part: &Arc<FragmentPart>) {
        self.pipeline.lock().open = Some(open);
        self.status.lock().preconfirmed(part);
        {
            let mut waiters = self.waiters.lock();
            if !waiters.is_empty() {
                for (i, (hash, _, _)) in part.body.iter().enumerate() {
                    for w in waiters.remove(hash).into_iter().flatten() {
                        let _ = w.send(Ok((part.clone(), i)));
                    }
                }
            }
        }
        self.publish(ChainEvent::Fragment(part.clone()));
    }

    /// Announces a closed block (status of its transactions, subscribers).
    pub(crate) fn sequenced(&self, block: &ExecutedBlock) {
        let at_ms = now_ms();
        let tx_hashes: Vec<B256> = block.body.iter().map(|(h, _, _)| *h).collect();
        // The fragment each transaction is in, when this node holds the block's fragments
        // (it built or replayed them; a block that came by value sync has none).
        let in_fragment = |position: usize| {
            let part = block.fragments.iter().rev().find(|f| f.fragment().first_tx as usize <= position)?;
            let i = position - part.fragment().first_tx as usize;
            (i < part.body.len()).then(|| (part.clone(), i))
        };
        {
            let mut status = self.status.lock();
            for (i, h) in tx_hashes.iter().enumerate() {
                let s = status.advance(*h, Tier::Sequenced, at_ms);
                s.block = Some(block.header.number);
                s.position = Some(i as u64);
                if s.fragment.is_none() {
                    s.fragment = in_fragment(i).map(|(part, _)| part);
                }
            }
        }
        // Clients still waiting for a preconfirmation (this node did not execute the
        // fragment as it streamed) get it now, or learn that the block is decided.
        {
            let mut waiters = self.waiters.lock();
            if !waiters.is_empty() {
                for (i, h) in tx_hashes.iter().enumerate() {
                    for w in waiters.remove(h).into_iter().flatten() {
                        let _ = w.send(in_fragment(i).ok_or(WaitEnd::Decided(block.header.number)));
                    }
                }
            }
        }
        self.publish(ChainEvent::Sequenced(Arc::new(SequencedBlock { number: block.header.number, tx_hashes, at_ms })));
    }

    /// Marks a sealed block's transactions sealed.
    pub(crate) fn sealed(&self, block: &NewBlock) {
        let at_ms = now_ms();
        let mut status = self.status.lock();
        for h in &block.tx_hashes {
            status.advance(*h, Tier::Sealed, at_ms);
        }
    }

    /// Records a transaction received at `at_ms` (status, subscribers).
    pub(crate) fn received(&self, hash: B256, ready: bool, at_ms: u64) {
        self.status.lock().advance(hash, Tier::Received, at_ms);
        self.publish(ChainEvent::Received { hash, ready, at_ms });
    }

    /// Retracts received transactions (status, waiters, subscribers).
    pub(crate) fn dropped(&self, hashes: &[B256], reason: &str) {
        if hashes.is_empty() {
            return;
        }
        let at_ms = now_ms();
        let reason: Arc<str> = reason.into();
        {
            let mut status = self.status.lock();
            for h in hashes {
                status.dropped(*h, &reason, at_ms);
            }
        }
        {
            let mut waiters = self.waiters.lock();
            for h in hashes {
                for w in waiters.remove(h).into_iter().flatten() {
                    let _ = w.send(Err(WaitEnd::Dropped(reason.clone())));
                }
            }
        }
        for h in hashes {
            self.publish(ChainEvent::Dropped { hash: *h, reason: reason.clone(), at_ms });
        }
    }

    /// A follower skipped these transactions of sequencer block `height` as invalid at
    /// execution (`(hash, reason)`).
    pub(crate) fn rejected(&self, rejected: &[(B256, String)], height: u64) {
        let at_ms = now_ms();
        {
            let mut status = self.status.lock();
            for (h, reason) in rejected {
                status.rejected(*h, reason, height, at_ms);
            }
        }
        for (h, reason) in rejected {
            self.publish(ChainEvent::Dropped { hash: *h, reason: format!("rejected: {reason}").into(), at_ms });
        }
    }

    /// Number of executed blocks waiting for their state root.
    pub fn unsealed_count(&self) -> usize {
        self.pipeline.lock().unsealed.len()
    }

    /// The state after the newest executed block (what `pending` means over RPC and
    /// what the builder executes on).
    pub fn pending_view(&self) -> PendingView {
        let p = self.pipeline.lock();
        PendingView {
            base: p.snapshot.clone(),
            blocks: p.unsealed.iter().cloned().collect(),
            open: p.open.clone(),
            chain: self.me.clone() as std::sync::Weak<dyn crate::pipeline::SealWait>,
            building: None,
        }
    }

    /// Base fee the next block will charge.
    pub fn next_base_fee(&self) -> u64 {
        let tip = self.tip();
        self.config.next_base_fee(tip.gas_used, tip.gas_limit, tip.base_fee)
    }

    /// Queues an executed block for sealing; waits while [`MAX_UNSEALED`] blocks already
    /// wait (the builder slows down instead of growing memory).
    pub(crate) fn push_executed(&self, block: Arc<ExecutedBlock>) -> Result<(), SequencerError> {
        let mut p = self.pipeline.lock();
        while p.unsealed.len() >= MAX_UNSEALED && !p.closed {
            self.changed.wait(&mut p);
        }
        if p.closed {
            return Err(SequencerError::Stopped(block.header.number));
        }
        p.tip = Tip::of(&block.header, block.sequencer.hash());
        // The open block becomes this executed block in one step.
        if p.open.as_ref().is_some_and(|o| o.number == block.header.number) {
            p.open = None;
        }
        p.unsealed.push_back(block);
        self.changed.notify_all();
        Ok(())
    }

    /// The oldest unsealed block; with `wait`, blocks until there is one or the pipeline
    /// is closed and drained.
    pub(crate) fn next_unsealed(&self, wait: bool) -> Option<Arc<ExecutedBlock>> {
        let mut p = self.pipeline.lock();
        while wait && p.unsealed.is_empty() && !p.closed {
            self.changed.wait(&mut p);
        }
        p.unsealed.front().cloned()
    }

    /// Publishes a sealed block: new head, new snapshot, one fewer unsealed block.
    pub(crate) fn finish_seal(&self, header: Header, hash: B256, snapshot: Arc<StoreReader>) {
        let mut p = self.pipeline.lock();
        debug_assert_eq!(p.unsealed.front().map(|b| b.header.number), Some(header.number));
        p.unsealed.pop_front();
        p.snapshot = snapshot;
        p.latest = (header, hash);
        self.changed.notify_all();
    }

    /// Waits until block `number` is sealed; returns a snapshot that holds it.
    pub fn wait_sealed(&self, number: u64) -> Result<Arc<StoreReader>, SequencerError> {
        let mut p = self.pipeline.lock();
        loop {
            if p.latest.0.number >= number {
                return Ok(p.snapshot.clone());
            }
            if p.unsealed.back().is_none_or(|b| b.header.number < number) || (p.closed && p.unsealed.is_empty()) {
                return Err(SequencerError::Stopped(number));
            }
            self.changed.wait(&mut p);
        }
    }

    /// Waits at most `timeout` for block `number` to be sealed, if it is preconfirmed,
    /// sequenced or sealed already (a client that holds a preconfirmed receipt may ask
    /// for its block at once). `false` when it is not sealed in time or not that far.
    pub fn wait_sealed_for(&self, number: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut p = self.pipeline.lock();
        loop {
            if p.latest.0.number >= number {
                return true;
            }
            let known = p.tip.number.max(p.open.as_ref().map(|o| o.number).unwrap_or(0));
            if number > known || p.closed {
                return false;
            }
            if self.changed.wait_until(&mut p, deadline).timed_out() {
                return p.latest.0.number >= number;
            }
        }
    }

    /// Stops accepting executed blocks; the sealer drains what is queued, then stops.
    pub(crate) fn close_pipeline(&self) {
        self.pipeline.lock().closed = true;
        self.changed.notify_all();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    pub(crate) fn publish(&self, event: ChainEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

impl crate::pipeline::SealWait for Chain {
    fn wait_sealed(&self, number: u64) -> Result<Arc<StoreReader>, SequencerError> {
        Chain::wait_sealed(self, number)
    }
}
