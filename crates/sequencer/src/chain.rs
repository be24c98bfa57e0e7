use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, B256};
use cairn_executor::Executor;
use cairn_mempool::{Mempool, PoolConfig};
use cairn_primitives::{
    AccountChange, AccountState, ChainConfig, GenesisAlloc, StateDiff, StoredReceipt, TxEnvelope, U256,
};
use cairn_storage::{RecordLog, Store, StoreError, StoreReader};
use cairn_trie::{StateCommitter, TrieError};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

use crate::builder::BlockInProgress;
use crate::fragments::{now_ms, FragmentLog, FragmentPart, Preconf};
use crate::ingress::Persister;
use crate::pipeline::{ExecutedBlock, PendingView, Pipeline, Tip, MAX_UNSEALED};
use crate::status::{StatusTracker, Tier, TxStatus};

/// Capacity of the event channel; a subscriber that falls further behind is told it
/// lagged (and is dropped).
pub const EVENT_BUFFER: usize = 16_384;

/// Most clients waiting for a preconfirmation at once.
pub const MAX_PRECONF_WAITERS: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trie(#[from] TrieError),
    #[error("block execution failed: {0}")]
    Exec(#[from] cairn_executor::ExecError),
    #[error("the data directory holds chain id {stored}, but chain id {requested} was asked for")]
    ChainMismatch { stored: u64, requested: u64 },
    #[error("the sealer stopped before block {0} was sealed")]
    Stopped(u64),
    #[error("signing a fragment failed: {0}")]
    Sign(String),
    #[error("fragment replay diverged at block {height} fragment {index}: {reason}")]
    Diverged { height: u64, index: u32, reason: String },
    #[error("preconfirmations are off on this node")]
    PreconfOff,
    #[error("too many clients are waiting for preconfirmations (limit {MAX_PRECONF_WAITERS})")]
    TooManyWaiters,
    #[error("transaction {hash} was not preconfirmed within {ms} ms (it stays in the pool)")]
    PreconfTimeout { hash: B256, ms: u128 },
    #[error("transaction {hash} was dropped: {reason}")]
    Dropped { hash: B256, reason: String },
    #[error(transparent)]
    State(#[from] cairn_primitives::StateError),
    /// A development control that cannot be carried out (bad argument, timeout).
    #[error("{0}")]
    Invalid(String),
}

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
}

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

type Waiter = oneshot::Sender<Result<(Arc<FragmentPart>, usize), Arc<str>>>;

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
    pub(crate) dev: crate::devtools::DevControls,
}

impl Chain {
    /// Opens the chain in `store`, writing genesis from `alloc` on first start, reloads
    /// the pool from the admission log at `log_path` and, with `preconf`, replays the
    /// fragment log: blocks that were closed are executed again and sealed, the open
    /// one is handed to the builder, so every preconfirmed transaction keeps its height
    /// and position. Must be called inside a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        store: Store,
        log_path: &std::path::Path,
        config: ChainConfig,
        alloc: &GenesisAlloc,
        pool: PoolConfig,
        executor: Arc<dyn Executor>,
        committer: Arc<dyn StateCommitter>,
        preconf: Option<Preconf>,
    ) -> Result<Arc<Self>, SequencerError> {
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
                write_genesis(&store, &config, alloc, committer.as_ref())?;
                config
            }
            Err(e) => return Err(e.into()),
        };
        let reader = store.reader()?;
        let head = reader.head()?;
        let header =
            reader.header(head)?.ok_or(StoreError::Corrupt { what: "head", reason: format!("no header {head}") })?;
        let hash = header.hash_slow();
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
            tip: Tip::of(&header),
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
            dev: crate::devtools::DevControls::new(clock),
        });
        // Re-admitted transactions keep the time they were first accepted.
        {
            let mut status = chain.status.lock();
            for (hash, at_ms) in reloaded {
                status.advance(hash, Tier::Received, at_ms);
            }
        }
        crate::builder::recover(&chain, logged)?;
        Ok(chain)
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
        };
        if let Some(u) = self.find_unsealed(hash) {
            let tier = if u.sequenced { Tier::Sequenced } else { Tier::Preconfirmed };
            return Ok(Some(bare(tier, Some(u.number), Some(u.position), u.fragment)));
        }
        if self.pool.lock().contains(hash) {
            return Ok(Some(bare(Tier::Received, None, None, None)));
        }
        Ok(self.snapshot().tx(*hash)?.map(|r| bare(Tier::Sealed, Some(r.block_number), Some(r.index), None)))
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
            Some(TxStatus { tier: Tier::Dropped, reason, .. }) => Some(Err(reason.unwrap_or_default().into())),
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
            Some(Err(reason)) => Err(SequencerError::Dropped { hash, reason: reason.to_string() }),
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
        {
            let mut status = self.status.lock();
            for (i, h) in tx_hashes.iter().enumerate() {
                let s = status.advance(*h, Tier::Sequenced, at_ms);
                s.block = Some(block.header.number);
                s.position = Some(i as u64);
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
                    let _ = w.send(Err(reason.clone()));
                }
            }
        }
        for h in hashes {
            self.publish(ChainEvent::Dropped { hash: *h, reason: reason.clone(), at_ms });
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
            chain: self.me.clone(),
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
        p.tip = Tip::of(&block.header);
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
fn parse_admission_record(record: &[u8]) -> (Option<u64>, &[u8]) {
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
fn reload_pool(
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

fn write_genesis(
    store: &Store,
    config: &ChainConfig,
    alloc: &GenesisAlloc,
    committer: &dyn StateCommitter,
) -> Result<(), SequencerError> {
    let mut diff = StateDiff::default();
    for (addr, acc) in &alloc.accounts {
        let code_hash = if acc.code.is_empty() { cairn_primitives::KECCAK_EMPTY } else { keccak256(&acc.code) };
        if !acc.code.is_empty() {
            diff.code.insert(code_hash, acc.code.clone());
        }
        let storage = acc.storage.iter().map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0))).collect();
        diff.accounts.insert(
            *addr,
            AccountChange {
                info: Some(AccountState { nonce: acc.nonce, balance: acc.balance, code_hash }),
                storage_wiped: true,
                storage,
                original: Default::default(),
            },
        );
    }
    let timestamp = if alloc.timestamp == 0 { crate::builder::now_secs() } else { alloc.timestamp };
    let pre = store.reader()?;
    let mut writer = store.writer()?;
    let state_root = committer.commit(&pre, &mut writer, &diff)?;
    let header = Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        gas_limit: config.gas_limit,
        timestamp,
        extra_data: alloc.extra_data.clone(),
        base_fee_per_gas: Some(config.initial_base_fee),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: crate::builder::requests_hash(config),
        ..Default::default()
    };
    writer.put_block(&header, &[], &[])?;
    writer.set_chain_config(config)?;
    writer.set_head(0)?;
    writer.commit()?;
    Ok(())
}
