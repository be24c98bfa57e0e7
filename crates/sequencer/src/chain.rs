use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, B256};
use cairn_executor::Executor;
use cairn_mempool::{Mempool, PoolConfig};
use cairn_primitives::{
    AccountChange, AccountState, ChainConfig, GenesisAlloc, StateDiff, StoredReceipt, TxEnvelope, U256,
};
use cairn_storage::{Store, StoreError, StoreReader, TxLog};
use cairn_trie::{StateCommitter, TrieError};
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};
use tokio::sync::broadcast;

use crate::ingress::Persister;
use crate::pipeline::{ExecutedBlock, PendingView, Pipeline, Tip, MAX_UNSEALED};

/// Capacity of the event channel; a subscriber that falls further behind is told it lagged.
pub const EVENT_BUFFER: usize = 1_024;

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

#[derive(Debug, Clone)]
pub enum ChainEvent {
    Block(Arc<NewBlock>),
    /// A transaction became ready in the pool.
    PendingTx(B256),
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
}

impl Chain {
    /// Opens the chain in `store`, writing genesis from `alloc` on first start, and
    /// reloads the pool from the admission log at `log_path`. Must be called inside a
    /// tokio runtime.
    pub fn open(
        store: Store,
        log_path: &std::path::Path,
        config: ChainConfig,
        alloc: &GenesisAlloc,
        pool: PoolConfig,
        executor: Arc<dyn Executor>,
        committer: Arc<dyn StateCommitter>,
    ) -> Result<Arc<Self>, SequencerError> {
        let reader = store.reader()?;
        let config = match reader.chain_config() {
            Ok(stored) => {
                if stored.chain_id != config.chain_id {
                    return Err(SequencerError::ChainMismatch { stored: stored.chain_id, requested: config.chain_id });
                }
                stored
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
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (mut log, records) = TxLog::open(log_path)?;
        let pool = Arc::new(Mutex::new(Mempool::new(pool)));
        reload_pool(&store, &pool, records)?;
        let pipeline = Arc::new(Mutex::new(Pipeline {
            snapshot: Arc::new(store.reader()?),
            tip: Tip::of(&header),
            latest: (header, hash),
            unsealed: Default::default(),
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
        });
        Ok(chain)
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

    /// An executed-but-unsealed transaction: its block and position.
    pub fn find_unsealed(&self, hash: &B256) -> Option<(Arc<ExecutedBlock>, usize)> {
        let p = self.pipeline.lock();
        p.unsealed.iter().find_map(|b| b.body.iter().position(|(h, _, _)| h == hash).map(|i| (b.clone(), i)))
    }

    /// Number of executed blocks waiting for their state root.
    pub fn unsealed_count(&self) -> usize {
        self.pipeline.lock().unsealed.len()
    }

    /// The state after the newest executed block (what `pending` means over RPC and
    /// what the builder executes on).
    pub fn pending_view(&self) -> PendingView {
        let p = self.pipeline.lock();
        PendingView { base: p.snapshot.clone(), blocks: p.unsealed.iter().cloned().collect(), chain: self.me.clone() }
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

/// Raw bytes of every pooled transaction and of every transaction in an executed but
/// unsealed block (what a compacted admission log must hold: none of them is in the
/// store yet).
pub(crate) fn pool_records(pool: &Mutex<Mempool>, pipeline: &Mutex<Pipeline>) -> Vec<Vec<u8>> {
    use alloy_eips::eip2718::Encodable2718;
    let mut out: Vec<Vec<u8>> = pool.lock().all().map(|p| p.tx.inner().encoded_2718()).collect();
    for block in &pipeline.lock().unsealed {
        out.extend(block.body.iter().map(|(_, _, raw)| raw.to_vec()));
    }
    out
}

/// Re-admits the transactions of the admission log after a restart. Those already in a
/// block, replaced or otherwise stale fail the pool's checks and are dropped.
fn reload_pool(store: &Store, pool: &Mutex<Mempool>, records: Vec<Vec<u8>>) -> Result<(), SequencerError> {
    use alloy_consensus::Transaction as _;
    let mut entries = Vec::with_capacity(records.len());
    for raw in records {
        let Ok(tx) = TxEnvelope::decode_2718(&mut raw.as_slice()) else { continue };
        let Ok(sender) = tx.recover_signer() else { continue };
        entries.push((sender, tx.nonce(), tx));
    }
    entries.sort_by_key(|(sender, nonce, _)| (*sender, *nonce));
    let mut pool = pool.lock();
    let mut kept = 0usize;
    for (sender, _, tx) in entries {
        let state_nonce = store.account(sender)?.map(|a| a.nonce).unwrap_or(0);
        let recovered = alloy_consensus::transaction::Recovered::new_unchecked(tx, sender);
        kept += usize::from(pool.insert(recovered, state_nonce).is_ok());
    }
    tracing::info!(pending = kept, "reloaded the transaction pool from the admission log");
    Ok(())
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
