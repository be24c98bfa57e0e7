//! A validator of a shared set: it orders the transactions of many rollups without
//! executing them (lazy mode, `docs/SHARED.md`). It is the [`Host`] of the same Malachite
//! application a single rollup's set runs.
//!
//! - **Admission** checks what needs no state: size, decoding, a chain id that is one of
//!   the set's rollups (its namespace), the signature, the gas limit against the cap and
//!   the intrinsic gas, tip ≤ fee cap, the rollup's fee floor, and the lanes' bounds
//!   (per lane, per sender). The transaction is durable in the admission log before the
//!   hash is returned, and relayed to the other validators.
//! - **Proposing**: every fragment interval the proposer takes the next transactions out
//!   of the lanes (each lane its share of the block, [`cairn_mempool::lanes`]), signs
//!   them as a fragment (EIP-712, as a single rollup's fragments, with no execution
//!   commitments: gas, receipts and state-diff hashes are zero), makes it durable in
//!   the fragment log and sends it to the other validators before anyone is answered.
//!   The block names each transaction's namespace.
//! - **Checking** another proposer's block: every transaction passes admission's
//!   stateless checks, its namespace is the one the block names, and the block's
//!   context fields are the lazy ones.
//! - **Committing**: the decided block, its certificate and its transactions are one
//!   write to the order store; its transactions leave the lanes; followers hear of it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::Transaction as _;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use cairn_consensus::{Certificate, Host, Misbehaviour};
use cairn_mempool::lanes::{BlockUsage, Bundle, LaneConfig, LaneError, LaneTx, Lanes};
use cairn_primitives::fragment::{FragmentRecord, SignedFragment};
use cairn_primitives::network::Rollup;
use cairn_primitives::{SequencerBlock, StoredReceipt, TxEnvelope};
use cairn_storage::order::{DecidedBlock, OrderStore};
use cairn_storage::RecordLog;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::admission::{admission_record, parse_admission_record};
use crate::chain::{Chain, SequencerError};
use crate::fragments::{now_ms, now_secs, FragmentLog};
use crate::ingress::IngressError;
use crate::protect::{
    dropped_record, execute_bundle, parse_dropped_record, parse_protected_record, BundleOutcome, ExecutedPart,
    Protected, Verdict, MAX_OUTCOMES, MAX_PROTECTED,
};

/// Most undecided proposals kept.
pub const MAX_LAZY_CANDIDATES: usize = 32;
/// Events buffered for each subscriber (fragments and decided blocks).
pub const SHARED_EVENT_BUFFER: usize = 4_096;
/// The admission log is compacted to the live pool when it grows past this.
pub const ADMISSION_COMPACT_BYTES: u64 = 64 << 20;
/// How far ahead of this node's clock a proposed block's timestamp may be.
const MAX_DRIFT_SECS: u64 = 5;
/// First byte of a bundle's admission record (and of a relayed bundle): `0xb1 ‖ RLP
/// list of raw transactions`. No transaction starts with it (typed ones start below
/// 0x80, legacy RLP lists at 0xc0 and above).
pub const BUNDLE_RECORD: u8 = 0xb1;

/// A bundle's record: [`BUNDLE_RECORD`] then the RLP list of its raw transactions.
pub fn bundle_record(raws: &[Bytes]) -> Vec<u8> {
    let mut out = vec![BUNDLE_RECORD];
    alloy_rlp::Encodable::encode(&raws.to_vec(), &mut out);
    out
}

fn parse_bundle_record(record: &[u8]) -> Option<Vec<Bytes>> {
    let (&kind, mut rest) = record.split_first()?;
    if kind != BUNDLE_RECORD {
        return None;
    }
    <Vec<Bytes> as alloy_rlp::Decodable>::decode(&mut rest).ok()
}

/// A shared set's settings.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// The set's chain id (the fragments' EIP-712 domain).
    pub chain_id: u64,
    pub rollups: Vec<Rollup>,
    pub lanes: LaneConfig,
    pub max_tx_size: usize,
    pub tx_gas_cap: u64,
    pub fragment_interval: Duration,
}

/// A fragment of the open block, as this node holds it.
#[derive(Debug)]
pub struct LazyFragment {
    pub signed: SignedFragment,
    pub hash: B256,
    pub record: FragmentRecord,
    /// Each transaction's namespace.
    pub namespaces: Vec<u64>,
    pub at_ms: u64,
}

/// What subscribers of a shared node hear.
#[derive(Debug, Clone)]
pub enum SharedEvent {
    /// A fragment of the open block (this node's own or a proposer's it received).
    Fragment(Arc<LazyFragment>),
    /// A decided block.
    Decided(Arc<DecidedBlock>),
    /// A protected bundle's outcome is known ([`Lazy::bundle_outcome`]).
    Bundle(B256),
}

/// A transaction's place as a shared node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LazyStatus {
    /// In this node's lanes.
    Received { namespace: u64, at_ms: u64 },
    /// In a signed fragment of the open block.
    Preconfirmed { height: u64, position: u64, fragment: Arc<SignedFragment> },
    /// In a decided block; `da`: the DA batch holding it, once read back and checked
    /// (firm).
    Decided { height: u64, position: u64, da: Option<cairn_da::DaRef> },
}

struct Candidate {
    block: SequencerBlock,
    txs: Vec<Bytes>,
}

#[derive(Default)]
struct Open {
    height: u64,
    round: u32,
    fragments: Vec<Arc<LazyFragment>>,
}

struct Head {
    height: u64,
    hash: B256,
    timestamp: u64,
}

/// See the module documentation.
pub struct Lazy {
    config: SharedConfig,
    signer: Option<PrivateKeySigner>,
    store: OrderStore,
    lanes: Mutex<Lanes>,
    admission: Mutex<RecordLog>,
    fragment_log: Mutex<FragmentLog>,
    head: Mutex<Head>,
    /// The newest fragment of this chain (the parent of the next one).
    fragment_parent: Mutex<B256>,
    candidates: Mutex<HashMap<B256, Candidate>>,
    /// This node's proposal: `(height, hash)`.
    own: Mutex<Option<(u64, B256)>>,
    /// This node's fragments logged above the decided head before a restart.
    resumed: Mutex<Option<(u64, Vec<FragmentRecord>)>>,
    /// The newest fragment this node signed: `(height, hash)`.
    signed: Mutex<Option<(u64, B256)>>,
    open: Mutex<Open>,
    events: broadcast::Sender<SharedEvent>,
    relay: Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>,
    /// Bundles in this node's undecided proposals, by transaction: returned whole if the
    /// proposal loses.
    own_bundles: Mutex<HashMap<B256, Arc<Bundle>>>,
    /// The DA layer and poster status, for RPC.
    da: Mutex<Option<crate::da::DaHandle>>,
    /// The newest firm height and the newest batches' ranges (at most
    /// [`crate::chain::MAX_FIRM_BATCHES`]).
    firm: Mutex<FirmRanges>,
    /// Checked transactions by hash, oldest first out (at most [`CHECKED_CACHE`]).
    checked: Mutex<(HashMap<B256, Checked>, std::collections::VecDeque<B256>)>,
    /// The rollups this node executes (`--execute`), each fed every decided block.
    executors: parking_lot::RwLock<Arc<HashMap<u64, Arc<Chain>>>>,
    /// Revert-protected bundles waiting for this node's turn (at most [`MAX_PROTECTED`]).
    protected: Mutex<std::collections::VecDeque<Arc<Protected>>>,
    /// Protected bundles in this node's undecided proposals, by transaction.
    protected_taken: Mutex<HashMap<B256, Arc<Protected>>>,
    /// Protected bundles' outcomes, oldest first out (at most [`MAX_OUTCOMES`]).
    outcomes: Mutex<(HashMap<B256, BundleOutcome>, std::collections::VecDeque<B256>)>,
    /// Whose misbehaviour is kept, and who hears of new evidence.
    evidence_gate: Mutex<crate::chain::EvidenceGate>,
}

/// The newest firm height, and `(first, last, batch)` of the newest batches.
type FirmRanges = (u64, std::collections::VecDeque<(u64, u64, cairn_da::DaRef)>);

/// Transactions whose checks are remembered (by the keccak256 of their bytes), so that
/// a transaction seen at admission is not recovered again when its fragment, its block
/// and its decision come.
pub const CHECKED_CACHE: usize = 262_144;

/// A transaction that passed the stateless checks.
#[derive(Clone, Copy)]
struct Checked {
    hash: B256,
    namespace: u64,
    sender: Address,
    nonce: u64,
    gas_limit: u64,
    max_fee: u128,
}

impl Lazy {
    /// Opens (or creates) a shared node's data in `dir`: the order store, the admission
    /// log (its transactions not yet decided go back into the lanes) and the fragment
    /// log (this node's fragments of an undecided block are proposed again).
    pub fn open(dir: &Path, config: SharedConfig, signer: Option<PrivateKeySigner>) -> Result<Self, SequencerError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SequencerError::Invalid(format!("creating {}: {e}", dir.display())))?;
        let store = OrderStore::open(&dir.join("order.redb"))?;
        let height = store.head()?;
        let head = match store.get(height)? {
            Some(d) => Head { height, hash: d.block.hash(), timestamp: d.block.timestamp },
            None => Head { height: 0, hash: B256::ZERO, timestamp: 0 },
        };
        let (fragment_log, parent, logged) = FragmentLog::open(&dir.join("fragments"), height, config.chain_id)?;
        let resumed = logged.into_iter().find(|b| b.height == height + 1).map(|b| (b.height, b.fragments));
        let (admission, records) = RecordLog::open(&dir.join("admission.wal"))?;
        let namespaces: Vec<(u64, u32)> = config.rollups.iter().map(|r| (r.chain_id, r.weight)).collect();
        let lazy = Self {
            lanes: Mutex::new(Lanes::new(config.lanes, &namespaces)),
            config,
            signer,
            store,
            admission: Mutex::new(admission),
            fragment_log: Mutex::new(fragment_log),
            head: Mutex::new(head),
            fragment_parent: Mutex::new(parent),
            candidates: Mutex::new(HashMap::new()),
            own: Mutex::new(None),
            resumed: Mutex::new(resumed),
            signed: Mutex::new(None),
            open: Mutex::new(Open::default()),
            events: broadcast::channel(SHARED_EVENT_BUFFER).0,
            relay: Mutex::new(None),
            own_bundles: Mutex::new(HashMap::new()),
            da: Mutex::new(None),
            firm: Mutex::new((0, Default::default())),
            checked: Mutex::new((HashMap::new(), std::collections::VecDeque::new())),
            executors: parking_lot::RwLock::new(Arc::default()),
            protected: Mutex::new(Default::default()),
            protected_taken: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(Default::default()),
            evidence_gate: Mutex::new(Default::default()),
        };
        let in_resumed: std::collections::HashSet<B256> = lazy
            .resumed
            .lock()
            .iter()
            .flat_map(|(_, fs)| fs.iter().flat_map(|f| f.txs.iter().map(keccak256)))
            .collect();
        let mut reloaded = 0usize;
        let dropped: std::collections::HashSet<B256> = records.iter().filter_map(|r| parse_dropped_record(r)).collect();
        let now = now_ms();
        for record in &records {
            if parse_dropped_record(record).is_some() {
                continue;
            }
            if let Some((deadline_ms, hash, raws)) = parse_protected_record(record) {
                let live = deadline_ms > now && !dropped.contains(&hash);
                if live && lazy.requeue_protected(hash, &raws, deadline_ms, &in_resumed)? {
                    reloaded += raws.len();
                }
                continue;
            }
            if let Some(raws) = parse_bundle_record(record) {
                if lazy.readmit_bundle(&raws, &in_resumed).unwrap_or(false) {
                    reloaded += raws.len();
                }
                continue;
            }
            let (at, raw) = parse_admission_record(record);
            let hash = keccak256(raw);
            if in_resumed.contains(&hash) || lazy.store.locate(&hash)?.is_some() {
                continue;
            }
            if let Ok(c) = lazy.check_tx(raw) {
                if lazy.lanes.lock().insert(lane_tx(&c, raw, at.unwrap_or(0))).is_ok() {
                    reloaded += 1;
                }
            }
        }
        if reloaded > 0 {
            tracing::info!(reloaded, "transactions reloaded from the admission log");
        }
        Ok(lazy)
    }

    pub fn config(&self) -> &SharedConfig {
        &self.config
    }

    pub fn store(&self) -> &OrderStore {
        &self.store
    }

    /// This validator's address (`None`: a full node of the set).
    pub fn address(&self) -> Option<Address> {
        self.signer.as_ref().map(|s| s.address())
    }

    /// Transactions clients submit here are also handed to `relay` (bounded; a full
    /// channel drops the relay, never the transaction).
    pub fn set_relay(&self, relay: tokio::sync::mpsc::Sender<Bytes>) {
        *self.relay.lock() = Some(relay);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SharedEvent> {
        self.events.subscribe()
    }

    /// The newest decided height.
    pub fn decided_height(&self) -> u64 {
        self.head.lock().height
    }

    /// Transactions in the lanes, per namespace.
    pub fn pool_counts(&self) -> Vec<(u64, usize)> {
        let lanes = self.lanes.lock();
        self.config.rollups.iter().map(|r| (r.chain_id, lanes.lane_len(r.chain_id))).collect()
    }

    /// The stateless checks (see the module documentation).
    /// [`Self::check_raw`], remembered: the signature of a transaction is recovered once.
    fn check_tx(&self, raw: &[u8]) -> Result<Checked, IngressError> {
        let hash = keccak256(raw);
        if let Some(c) = self.checked.lock().0.get(&hash) {
            return Ok(*c);
        }
        let c = self.check_raw(raw)?;
        let mut cache = self.checked.lock();
        if cache.0.insert(hash, c).is_none() {
            cache.1.push_back(hash);
            if cache.1.len() > CHECKED_CACHE {
                if let Some(old) = cache.1.pop_front() {
                    cache.0.remove(&old);
                }
            }
        }
        Ok(c)
    }

    fn check_raw(&self, raw: &[u8]) -> Result<Checked, IngressError> {
        if raw.len() > self.config.max_tx_size {
            return Err(IngressError::Oversized { size: raw.len(), limit: self.config.max_tx_size });
        }
        let tx = TxEnvelope::decode_2718_exact(raw).map_err(|e| IngressError::Decode(e.to_string()))?;
        if tx.is_eip4844() {
            return Err(IngressError::BlobTx);
        }
        let namespace = tx.chain_id().ok_or(IngressError::Unprotected)?;
        let Some(rollup) = self.config.rollups.iter().find(|r| r.chain_id == namespace) else {
            return Err(IngressError::Lane(LaneError::UnknownNamespace(namespace)));
        };
        if tx.gas_limit() > self.config.tx_gas_cap {
            return Err(IngressError::GasLimitTooHigh { cap: self.config.tx_gas_cap, gas: tx.gas_limit() });
        }
        let sender = tx.recover_signer().map_err(|e| IngressError::InvalidSignature(e.to_string()))?;
        let needed =
            cairn_executor::intrinsic_gas(&tx, sender, cairn_executor::spec_of(cairn_primitives::Hardfork::Prague));
        if tx.gas_limit() < needed {
            return Err(IngressError::IntrinsicGas { gas: tx.gas_limit(), needed });
        }
        let cap = tx.max_fee_per_gas();
        let tip = tx.max_priority_fee_per_gas().unwrap_or(cap);
        if tip > cap {
            return Err(IngressError::TipAboveFeeCap { address: sender, tip, cap });
        }
        if cap < u128::from(rollup.min_fee_per_gas) {
            return Err(IngressError::Underpriced { needed: u128::from(rollup.min_fee_per_gas), permitted: cap });
        }
        Ok(Checked {
            hash: *tx.tx_hash(),
            namespace,
            sender,
            nonce: tx.nonce(),
            gas_limit: tx.gas_limit(),
            max_fee: cap,
        })
    }

    /// Checks and admits a raw transaction a client sent (`relay`: hand it to the other
    /// validators) or another validator relayed. Durable in the admission log when it
    /// returns `Ok`. Blocking (it syncs the log): call it off the async runtime.
    pub fn submit(&self, raw: &[u8], relay: bool) -> Result<B256, IngressError> {
        let checked = self.check_tx(raw)?;
        if self.store.locate(&checked.hash).map_err(|e| IngressError::Durability(e.to_string()))?.is_some()
            || self.in_open(&checked.hash)
        {
            return Err(IngressError::Pool(cairn_mempool::PoolError::AlreadyKnown));
        }
        let at_ms = now_ms();
        let hash = checked.hash;
        self.lanes.lock().insert(lane_tx(&checked, raw, at_ms))?;
        if relay {
            if let Some(r) = self.relay.lock().as_ref() {
                let _ = r.try_send(Bytes::copy_from_slice(raw));
            }
        }
        let record = admission_record(at_ms, raw);
        if let Err(e) = self.admission.lock().append([record.as_slice()]) {
            self.lanes.lock().remove(&hash);
            return Err(IngressError::Durability(e.to_string()));
        }
        Ok(hash)
    }

    /// Checks and queues a bundle: transactions of one or more rollups, included all in
    /// one block, one after another within each rollup, or none (each transaction as
    /// [`Self::submit`] checks it). Durable when it returns `Ok` (the bundle's hash).
    /// Blocking.
    pub fn submit_bundle(&self, raws: &[Bytes], relay: bool) -> Result<B256, IngressError> {
        let mut txs = Vec::with_capacity(raws.len());
        let at_ms = now_ms();
        for raw in raws {
            let c = self.check_tx(raw)?;
            if self.store.locate(&c.hash).map_err(|e| IngressError::Durability(e.to_string()))?.is_some()
                || self.in_open(&c.hash)
            {
                return Err(IngressError::Pool(cairn_mempool::PoolError::AlreadyKnown));
            }
            txs.push(lane_tx(&c, raw, at_ms));
        }
        let bundle = Bundle::new(txs);
        let hash = bundle.hash;
        self.lanes.lock().insert_bundle(bundle)?;
        let record = bundle_record(raws);
        if relay {
            if let Some(r) = self.relay.lock().as_ref() {
                let _ = r.try_send(Bytes::from(record.clone()));
            }
        }
        if let Err(e) = self.admission.lock().append([record.as_slice()]) {
            if let Some(first) = raws.first() {
                self.lanes.lock().drop_bundle_of(&keccak256(first));
            }
            return Err(IngressError::Durability(e.to_string()));
        }
        Ok(hash)
    }

    /// A relayed item: a raw transaction, or a bundle record ([`BUNDLE_RECORD`]).
    pub fn submit_relayed(&self, bytes: &[u8]) -> Result<B256, IngressError> {
        match parse_bundle_record(bytes) {
            Some(raws) => self.submit_bundle(&raws, false),
            None => self.submit(bytes, false),
        }
    }

    /// Whether this node executes every rollup of `raws` (a bundle it then protects:
    /// [`Self::submit_protected`]).
    pub fn executes_all(&self, raws: &[Bytes]) -> bool {
        let executors = self.executors.read().clone();
        !executors.is_empty()
            && !raws.is_empty()
            && raws.iter().all(|raw| self.check_tx(raw).is_ok_and(|c| executors.contains_key(&c.namespace)))
    }

    /// Checks and queues a revert-protected bundle (see [`crate::protect`]): kept on this
    /// node, not relayed, executed when this node proposes, included only if every part
    /// succeeds, dropped at `deadline_ms` if not included by then. Its outcome comes as
    /// [`SharedEvent::Bundle`]. Durable when it returns `Ok` (the bundle's hash).
    /// Blocking.
    pub fn submit_protected(&self, raws: &[Bytes], deadline_ms: u64) -> Result<B256, IngressError> {
        use cairn_mempool::lanes::{BundleError, MAX_BUNDLE_TXS};
        if raws.is_empty() || raws.len() > MAX_BUNDLE_TXS {
            return Err(BundleError::Size(raws.len()).into());
        }
        let mut txs = Vec::with_capacity(raws.len());
        let mut usage = BlockUsage::default();
        let mut seen = std::collections::HashSet::new();
        for raw in raws {
            let c = self.check_tx(raw)?;
            let known = self.store.locate(&c.hash).map_err(|e| IngressError::Durability(e.to_string()))?.is_some()
                || self.in_open(&c.hash)
                || self.protected_taken.lock().contains_key(&c.hash)
                || {
                    let lanes = self.lanes.lock();
                    lanes.contains(&c.hash) || lanes.in_bundle(&c.hash)
                };
            if known || !seen.insert(c.hash) {
                return Err(BundleError::TxKnown(c.hash).into());
            }
            usage.add(&lane_tx(&c, raw, 0));
            txs.push((raw.clone(), c.namespace));
        }
        let limits = self.config.lanes;
        if usage.bytes > limits.block_bytes || usage.gas > limits.block_gas || usage.txs > limits.max_block_txs {
            return Err(BundleError::TooBig { bytes: usage.bytes, gas: usage.gas }.into());
        }
        let bundle = Arc::new(Protected::new(txs, deadline_ms));
        {
            let mut queue = self.protected.lock();
            if queue.iter().any(|p| p.hash == bundle.hash) {
                return Err(BundleError::AlreadyKnown.into());
            }
            if queue.iter().any(|p| p.tx_hashes().any(|h| seen.contains(&h))) {
                return Err(BundleError::TxKnown(bundle.tx_hashes().next().unwrap_or_default()).into());
            }
            if queue.len() >= MAX_PROTECTED {
                return Err(BundleError::Full.into());
            }
            if let Err(e) = self.admission.lock().append([bundle.record().as_slice()]) {
                return Err(IngressError::Durability(e.to_string()));
            }
            queue.push_back(bundle.clone());
        }
        self.outcomes.lock().0.remove(&bundle.hash);
        Ok(bundle.hash)
    }

    /// A protected bundle's outcome, once known (the newest [`MAX_OUTCOMES`]).
    pub fn bundle_outcome(&self, hash: &B256) -> Option<BundleOutcome> {
        self.outcomes.lock().0.get(hash).cloned()
    }

    fn set_outcome(&self, hash: B256, outcome: BundleOutcome) {
        {
            let mut o = self.outcomes.lock();
            if o.0.insert(hash, outcome).is_none() {
                o.1.push_back(hash);
                if o.1.len() > MAX_OUTCOMES {
                    if let Some(old) = o.1.pop_front() {
                        o.0.remove(&old);
                    }
                }
            }
        }
        let _ = self.events.send(SharedEvent::Bundle(hash));
    }

    /// Drops a protected bundle for good: its outcome, and a record so that a restart
    /// does not queue it again.
    fn drop_protected(&self, bundle: &Protected, reason: String) {
        tracing::info!(bundle = %bundle.hash, "protected bundle dropped: {reason}");
        if let Err(e) = self.admission.lock().append([dropped_record(&bundle.hash).as_slice()]) {
            tracing::warn!("recording a dropped bundle: {e}");
        }
        self.set_outcome(bundle.hash, BundleOutcome::Dropped(reason));
    }

    /// A protected bundle of the admission log (or of a lost proposal), queued again
    /// unless a transaction of it is decided or in `skip`.
    fn requeue_protected(
        &self,
        hash: B256,
        raws: &[Bytes],
        deadline_ms: u64,
        skip: &std::collections::HashSet<B256>,
    ) -> Result<bool, SequencerError> {
        let mut txs = Vec::with_capacity(raws.len());
        for raw in raws {
            let h = keccak256(raw);
            if skip.contains(&h) || self.store.locate(&h)?.is_some() {
                return Ok(false);
            }
            let Ok(c) = self.check_tx(raw) else { return Ok(false) };
            txs.push((raw.clone(), c.namespace));
        }
        let mut bundle = Protected::new(txs, deadline_ms);
        bundle.hash = hash;
        let mut queue = self.protected.lock();
        if queue.len() >= MAX_PROTECTED || queue.iter().any(|p| p.hash == hash) {
            return Ok(false);
        }
        queue.push_front(Arc::new(bundle));
        Ok(true)
    }

    /// The rollups this node executes, each with its chain (opened by the caller): every
    /// decided block this node holds and the chain does not is executed first, then
    /// each new one as it is decided.
    pub fn set_executors(&self, chains: Vec<(u64, Arc<Chain>)>) -> Result<(), SequencerError> {
        for (ns, _) in &chains {
            if !self.config.rollups.iter().any(|r| r.chain_id == *ns) {
                return Err(SequencerError::Invalid(format!("rollup {ns} is not one of this set's rollups")));
            }
        }
        *self.executors.write() = Arc::new(chains.into_iter().collect());
        self.execute_through(self.decided_height());
        Ok(())
    }

    /// The rollups this node executes.
    pub fn executed(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.executors.read().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Executes every decided block through `height` on each executed rollup's chain. A
    /// rollup whose execution fails is no longer executed (logged).
    fn execute_through(&self, height: u64) {
        let executors = self.executors.read().clone();
        for (ns, chain) in executors.iter() {
            let mut next = chain.tip().number + 1;
            while next <= height {
                let result = self.store.get(next).map_err(SequencerError::from).and_then(|d| {
                    let Some(d) = d else { return Ok(false) };
                    let txs: Vec<Bytes> = d
                        .txs
                        .iter()
                        .zip(d.block.namespaces.iter().flatten())
                        .filter(|(_, n)| **n == *ns)
                        .map(|(raw, _)| raw.clone())
                        .collect();
                    crate::follow::apply_decided(chain, next, d.block.timestamp, &txs).map(|_| true)
                });
                match result {
                    Ok(true) => next += 1,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!(
                            rollup = ns,
                            height = next,
                            "executing a decided block failed: {e}; this node stops executing the rollup"
                        );
                        let mut map = (**self.executors.read()).clone();
                        map.remove(ns);
                        *self.executors.write() = Arc::new(map);
                        break;
                    }
                }
            }
        }
    }

    /// The next protected bundle that executes in block `height` after `block` (its
    /// transactions so far with their namespaces), with its parts' receipts; bundles
    /// past their deadline or failing are dropped on the way. `None` when none is ready
    /// or fits in `usage` now.
    fn next_protected(
        &self,
        height: u64,
        timestamp: u64,
        block: &[(Bytes, u64)],
        usage: &BlockUsage,
    ) -> Option<(Arc<Protected>, Vec<StoredReceipt>)> {
        let executors = self.executors.read().clone();
        let limits = self.config.lanes;
        loop {
            let bundle = self.protected.lock().front().cloned()?;
            let take = |p: &Arc<Protected>| self.protected.lock().retain(|q| q.hash != p.hash);
            if bundle.deadline_ms <= now_ms() {
                take(&bundle);
                self.drop_protected(&bundle, "not included before its deadline".into());
                continue;
            }
            let mut needs = BlockUsage::default();
            for raw in &bundle.raws {
                if let Ok(c) = self.check_tx(raw) {
                    needs.add(&lane_tx(&c, raw, 0));
                }
            }
            if usage.bytes + needs.bytes > limits.block_bytes
                || usage.gas.saturating_add(needs.gas) > limits.block_gas
                || usage.txs + needs.txs > limits.max_block_txs
            {
                return None;
            }
            match execute_bundle(&executors, height, timestamp, block, &bundle) {
                Ok(receipts) => {
                    take(&bundle);
                    return Some((bundle, receipts));
                }
                Err(Verdict::NotReady(why)) => {
                    tracing::debug!(bundle = %bundle.hash, "protected bundle not executed now: {why}");
                    return None;
                }
                Err(Verdict::Refused(why)) => {
                    take(&bundle);
                    self.drop_protected(&bundle, why);
                }
            }
        }
    }

    /// Drops the protected bundles past their deadline.
    fn expire_protected(&self) {
        let now = now_ms();
        let expired: Vec<Arc<Protected>> = {
            let mut queue = self.protected.lock();
            let gone: Vec<Arc<Protected>> = queue.iter().filter(|p| p.deadline_ms <= now).cloned().collect();
            queue.retain(|p| p.deadline_ms > now);
            gone
        };
        for p in expired {
            self.drop_protected(&p, "not included before its deadline".into());
        }
    }

    /// A bundle of the admission log, queued again unless a transaction of it is
    /// decided or in the block being resumed.
    fn readmit_bundle(&self, raws: &[Bytes], skip: &std::collections::HashSet<B256>) -> Result<bool, SequencerError> {
        let mut txs = Vec::with_capacity(raws.len());
        for raw in raws {
            let hash = keccak256(raw);
            if skip.contains(&hash) || self.store.locate(&hash)?.is_some() {
                return Ok(false);
            }
            let Ok(c) = self.check_tx(raw) else { return Ok(false) };
            txs.push(lane_tx(&c, raw, 0));
        }
        Ok(self.lanes.lock().insert_bundle(Bundle::new(txs)).is_ok())
    }

    fn in_open(&self, hash: &B256) -> bool {
        self.open.lock().fragments.iter().any(|f| f.signed.fragment.transactions.contains(hash))
    }

    /// Where transaction `hash` is, as this node knows it.
    pub fn status(&self, hash: &B256) -> Result<Option<LazyStatus>, SequencerError> {
        if let Some((height, position)) = self.store.locate(hash)? {
            let da = {
                let firm = self.firm.lock();
                firm.1.iter().find(|(a, b, _)| (*a..=*b).contains(&height)).map(|(_, _, r)| r.clone())
            };
            return Ok(Some(LazyStatus::Decided { height, position: u64::from(position), da }));
        }
        {
            let open = self.open.lock();
            for f in &open.fragments {
                if let Some(position) = f.signed.fragment.position_of(hash) {
                    return Ok(Some(LazyStatus::Preconfirmed {
                        height: open.height,
                        position,
                        fragment: Arc::new(f.signed.clone()),
                    }));
                }
            }
        }
        Ok(self.lanes.lock().get(hash).map(|t| LazyStatus::Received { namespace: t.namespace, at_ms: t.received_ms }))
    }

    /// A decided block.
    pub fn decided_block(&self, height: u64) -> Result<Option<DecidedBlock>, SequencerError> {
        Ok(self.store.get(height)?)
    }

    /// Each transaction's namespace, checked statelessly.
    fn namespaces_of(&self, txs: &[Bytes]) -> Result<Vec<u64>, String> {
        txs.iter()
            .enumerate()
            .map(|(i, raw)| self.check_tx(raw).map(|c| c.namespace).map_err(|e| format!("transaction {i}: {e}")))
            .collect()
    }

    fn lazy_record(&self, height: u64, timestamp: u64, index: u32, first_tx: u32, txs: Vec<Bytes>) -> FragmentRecord {
        FragmentRecord {
            height,
            index,
            parent: *self.fragment_parent.lock(),
            timestamp,
            base_fee: 0,
            first_tx,
            gas_used: 0,
            receipts_hash: B256::ZERO,
            state_diff_hash: B256::ZERO,
            signature: Bytes::new(),
            prevrandao: B256::ZERO,
            beneficiary: Address::ZERO,
            gas_limit: 0,
            txs,
        }
    }

    /// Takes `record` into the open block of (`height`, `round`) and tells subscribers.
    fn publish_open(&self, height: u64, round: u32, record: &FragmentRecord, namespaces: Vec<u64>) {
        let signed = record.signed(self.config.chain_id);
        let hash = signed.fragment.hash();
        let fragment = Arc::new(LazyFragment { signed, hash, record: record.clone(), namespaces, at_ms: now_ms() });
        {
            let mut open = self.open.lock();
            if open.height != height || open.round != round || record.index == 0 {
                *open = Open { height, round, fragments: Vec::new() };
            }
            open.fragments.push(fragment.clone());
        }
        *self.fragment_parent.lock() = hash;
        let _ = self.events.send(SharedEvent::Fragment(fragment));
    }

    fn return_to_lanes(&self, txs: &[Bytes], keep: &std::collections::HashSet<B256>) {
        // A protected bundle of a lost proposal goes back to its queue (executed again
        // when this node next proposes), never to the lanes.
        let mut rest = Vec::with_capacity(txs.len());
        for raw in txs {
            let hash = keccak256(raw);
            let bundle = self.protected_taken.lock().remove(&hash);
            let Some(bundle) = bundle else {
                rest.push(raw.clone());
                continue;
            };
            {
                let mut taken = self.protected_taken.lock();
                for h in bundle.tx_hashes() {
                    taken.remove(&h);
                }
            }
            if bundle.tx_hashes().all(|h| !keep.contains(&h)) {
                let _ = self.requeue_protected(bundle.hash, &bundle.raws, bundle.deadline_ms, keep);
            }
        }
        let txs = rest.as_slice();
        // Lock order: lanes, then bundles (as everywhere).
        let mut lanes = self.lanes.lock();
        let mut own = self.own_bundles.lock();
        for raw in txs {
            let hash = keccak256(raw);
            if let Some(bundle) = own.remove(&hash) {
                // A bundle goes back whole, unless a part of it was decided.
                for t in &bundle.txs {
                    own.remove(&t.hash);
                }
                if bundle.txs.iter().all(|t| !keep.contains(&t.hash)) {
                    let txs = bundle.txs.iter().map(|t| (**t).clone()).collect();
                    let _ = lanes.insert_bundle(Bundle::new(txs));
                }
                continue;
            }
            if keep.contains(&hash) {
                continue;
            }
            if let Ok(c) = self.check_tx(raw) {
                let _ = lanes.insert(lane_tx(&c, raw, now_ms()));
            }
        }
    }

    fn keep(&self, block: SequencerBlock, txs: Vec<Bytes>) -> B256 {
        let hash = block.hash();
        let mut c = self.candidates.lock();
        if c.len() >= MAX_LAZY_CANDIDATES {
            let own = self.own.lock().map(|(_, h)| h);
            if let Some(victim) = c
                .iter()
                .filter(|(h, _)| Some(**h) != own)
                .min_by_key(|(_, p)| (p.block.height, p.block.round))
                .map(|(h, _)| *h)
            {
                c.remove(&victim);
            }
        }
        c.insert(hash, Candidate { block, txs });
        hash
    }

    fn build_block(
        &self,
        height: u64,
        round: u32,
        slot: Duration,
        inherited: &[FragmentRecord],
        publish: Box<dyn Fn(FragmentRecord) + Send + Sync>,
    ) -> Result<SequencerBlock, String> {
        let signer = self.signer.as_ref().ok_or("a full node does not propose")?;
        let (tip, tip_hash, tip_ts) = {
            let h = self.head.lock();
            (h.height, h.hash, h.timestamp)
        };
        if tip + 1 != height {
            return Err(format!("asked to build block {height} on block {tip}"));
        }
        let chain_id = self.config.chain_id;
        let hash_of = |r: &FragmentRecord| r.signed(chain_id).fragment.hash();
        let extends = |records: &[FragmentRecord]| {
            inherited.len() <= records.len() && inherited.iter().zip(records).all(|(a, b)| hash_of(a) == hash_of(b))
        };
        // This node's block of an earlier round, proposed again if it extends what it
        // must.
        let own = self.own.lock().filter(|(h, _)| *h == height);
        if let Some((_, hash)) = own {
            let kept = self.candidates.lock().get(&hash).map(|c| (c.block.clone(), c.txs.clone()));
            if let Some((block, txs)) = kept {
                let records = self.records_of(&block, &txs);
                if extends(&records) {
                    for r in records {
                        publish(r);
                    }
                    tracing::info!(height, round, block = %hash, "proposing this node's block again");
                    return Ok(block);
                }
                *self.own.lock() = None;
                self.candidates.lock().remove(&hash);
                self.return_to_lanes(&txs, &std::collections::HashSet::new());
            }
        }
        let mut records: Vec<FragmentRecord> = Vec::new();
        let resumed = self.resumed.lock().take().filter(|(h, _)| *h == height).map(|(_, r)| r);
        if let Some(r) = resumed.as_ref().filter(|r| !r.is_empty()) {
            *self.signed.lock() = Some((height, hash_of(&r[r.len() - 1])));
        }
        let signed_here = self.signed.lock().filter(|(h, _)| *h == height).map(|(_, last)| last);
        match resumed {
            Some(r) if extends(&r) => records = r,
            _ => {
                for r in inherited {
                    self.fragment_log.lock().append(r).map_err(|e| e.to_string())?;
                    records.push(r.clone());
                }
            }
        }
        let timestamp = records.first().map_or_else(|| now_secs().max(tip_ts), |r| r.timestamp);
        let mut usage = BlockUsage::default();
        let mut namespaces: Vec<u64> = Vec::new();
        for r in &records {
            let ns = self.namespaces_of(&r.txs)?;
            for raw in &r.txs {
                let c = self.check_tx(raw).map_err(|e| e.to_string())?;
                {
                    // In the block already: neither in a lane nor in a waiting bundle.
                    let mut lanes = self.lanes.lock();
                    lanes.remove(&c.hash);
                    lanes.drop_bundle_of(&c.hash);
                }
                usage.add(&lane_tx(&c, raw, 0));
            }
            self.publish_open(height, round, r, ns.clone());
            namespaces.extend(ns);
            publish(r.clone());
        }
        let may_sign = signed_here.is_none_or(|last| records.iter().any(|r| hash_of(r) == last));
        if !may_sign {
            tracing::warn!(
                height,
                round,
                "the chain to extend leaves out a fragment this node signed: no new fragments"
            );
        }
        let started = Instant::now();
        let end = started + slot;
        let interval = self.config.fragment_interval;
        while may_sign && Instant::now() < end {
            let borrow = started.elapsed() >= slot / 2;
            // Revert-protected bundles first, each a fragment of its own.
            while !self.protected.lock().is_empty() {
                let so_far: Vec<(Bytes, u64)> =
                    records.iter().flat_map(|r| r.txs.iter().cloned()).zip(namespaces.iter().copied()).collect();
                let Some((bundle, receipts)) = self.next_protected(height, timestamp, &so_far, &usage) else { break };
                let first_tx = so_far.len() as u64;
                let hash_receipts = cairn_primitives::fragment::receipts_hash(&receipts);
                let signed = self.sign_fragment(
                    signer,
                    (height, round, timestamp),
                    &mut records,
                    &mut namespaces,
                    (bundle.raws.clone(), bundle.namespaces.clone()),
                    hash_receipts,
                    &publish,
                )?;
                let Some(fragment) = signed else {
                    self.protected.lock().push_front(bundle);
                    break;
                };
                for raw in &bundle.raws {
                    if let Ok(c) = self.check_tx(raw) {
                        usage.add(&lane_tx(&c, raw, 0));
                    }
                }
                {
                    let mut taken = self.protected_taken.lock();
                    for h in bundle.tx_hashes() {
                        taken.insert(h, bundle.clone());
                    }
                }
                let parts = bundle
                    .raws
                    .iter()
                    .zip(&bundle.namespaces)
                    .zip(receipts)
                    .enumerate()
                    .map(|(i, ((raw, ns), receipt))| ExecutedPart {
                        hash: keccak256(raw),
                        namespace: *ns,
                        position: first_tx + i as u64,
                        receipt,
                    })
                    .collect();
                tracing::info!(height, bundle = %bundle.hash, "protected bundle executed and preconfirmed");
                self.set_outcome(bundle.hash, BundleOutcome::Executed { height, fragment, parts });
            }
            let taken: Vec<Arc<LaneTx>> = {
                let mut lanes = self.lanes.lock();
                let bundles = lanes.take_bundles(&mut usage);
                let mut own = self.own_bundles.lock();
                let mut taken: Vec<Arc<LaneTx>> = Vec::new();
                for b in bundles {
                    for t in &b.txs {
                        own.insert(t.hash, b.clone());
                    }
                    taken.extend(b.txs.iter().cloned());
                }
                taken.extend(lanes.take(&mut usage, borrow));
                taken
            };
            if !taken.is_empty() {
                let txs = taken.iter().map(|t| t.raw.clone()).collect();
                let ns = taken.iter().map(|t| t.namespace).collect();
                let signed = self.sign_fragment(
                    signer,
                    (height, round, timestamp),
                    &mut records,
                    &mut namespaces,
                    (txs, ns),
                    B256::ZERO,
                    &publish,
                )?;
                if signed.is_none() {
                    // Not durable: not promised. Back to the lanes; the block goes on.
                    let txs: Vec<Bytes> = taken.iter().map(|t| t.raw.clone()).collect();
                    self.return_to_lanes(&txs, &std::collections::HashSet::new());
                }
            }
            std::thread::sleep(interval.min(end.saturating_duration_since(Instant::now())));
        }
        let txs: Vec<Bytes> = records.iter().flat_map(|r| r.txs.iter().cloned()).collect();
        let block = SequencerBlock {
            chain_id,
            height,
            round,
            parent: tip_hash,
            proposer: signer.address(),
            timestamp,
            base_fee: 0,
            gas_limit: 0,
            prevrandao: B256::ZERO,
            beneficiary: Address::ZERO,
            transactions: txs.iter().map(keccak256).collect(),
            fragments: records.iter().map(hash_of).collect(),
            executed: None,
            namespaces: Some(namespaces),
        };
        if !records.is_empty() {
            self.fragment_log.lock().close(height).map_err(|e| e.to_string())?;
        }
        let hash = self.keep(block.clone(), txs);
        *self.own.lock() = Some((height, hash));
        Ok(block)
    }

    /// Signs `txs` (with their namespaces) as the next fragment of the open block
    /// (`height`, `round`, `timestamp`) after `records`, `receipts` its receipts
    /// commitment (zero: none), logs it, hands it to `publish` and to subscribers, and
    /// appends it to `records` and `namespaces`. `None` when the fragment log could not
    /// make it durable (nothing is promised then).
    #[allow(clippy::too_many_arguments)]
    fn sign_fragment(
        &self,
        signer: &PrivateKeySigner,
        (height, round, timestamp): (u64, u32, u64),
        records: &mut Vec<FragmentRecord>,
        namespaces: &mut Vec<u64>,
        (txs, ns): (Vec<Bytes>, Vec<u64>),
        receipts: B256,
        publish: &(dyn Fn(FragmentRecord) + Send + Sync),
    ) -> Result<Option<Arc<SignedFragment>>, String> {
        let first_tx = records.iter().map(|r| r.txs.len()).sum::<usize>() as u32;
        let mut record = self.lazy_record(height, timestamp, records.len() as u32, first_tx, txs);
        record.receipts_hash = receipts;
        let hash = record.signed(self.config.chain_id).fragment.hash();
        let signature = signer.sign_hash_sync(&hash).map_err(|e| e.to_string())?;
        record.signature = Bytes::from(signature.as_bytes().to_vec());
        if let Err(e) = self.fragment_log.lock().append(&record) {
            tracing::error!(height, "fragment log write failed: {e}");
            return Ok(None);
        }
        *self.signed.lock() = Some((height, hash));
        publish(record.clone());
        self.publish_open(height, round, &record, ns.clone());
        namespaces.extend(ns);
        let signed = Arc::new(record.signed(self.config.chain_id));
        records.push(record);
        Ok(Some(signed))
    }

    /// The fragment records of a kept block (its fragments as this node holds them).
    fn records_of(&self, block: &SequencerBlock, _txs: &[Bytes]) -> Vec<FragmentRecord> {
        let open = self.open.lock();
        if open.height != block.height {
            return Vec::new();
        }
        let hashes: Vec<B256> = open.fragments.iter().map(|f| f.hash).collect();
        if hashes != block.fragments {
            return Vec::new();
        }
        open.fragments.iter().map(|f| f.record.clone()).collect()
    }

    /// The context fields of a lazy block, checked against the decided head.
    fn check_block(&self, block: &SequencerBlock, txs: &[Bytes]) -> Result<(), String> {
        let (tip, tip_hash, tip_ts) = {
            let h = self.head.lock();
            (h.height, h.hash, h.timestamp)
        };
        if block.chain_id != self.config.chain_id {
            return Err(format!("block for chain {}, this set is {}", block.chain_id, self.config.chain_id));
        }
        if block.height != tip + 1 || block.parent != tip_hash {
            return Err(format!("block {} does not extend the last decided block {tip}", block.height));
        }
        if block.timestamp < tip_ts || block.timestamp > now_secs() + MAX_DRIFT_SECS {
            return Err(format!("timestamp {} outside [{tip_ts}, now + {MAX_DRIFT_SECS} s]", block.timestamp));
        }
        if block.base_fee != 0
            || block.gas_limit != 0
            || block.prevrandao != B256::ZERO
            || block.beneficiary != Address::ZERO
            || block.executed.is_some()
        {
            return Err("a shared set's block carries no execution context".into());
        }
        let hashes: Vec<B256> = txs.iter().map(keccak256).collect();
        if hashes != block.transactions {
            return Err("the transactions are not the block's".into());
        }
        let namespaces = self.namespaces_of(txs)?;
        if block.namespaces.as_ref() != Some(&namespaces) {
            return Err("the block names other namespaces than its transactions have".into());
        }
        let mut seen = std::collections::HashSet::with_capacity(hashes.len());
        if let Some(dup) = hashes.iter().find(|h| !seen.insert(**h)) {
            return Err(format!("transaction {dup} appears twice"));
        }
        for h in &hashes {
            if self.store.locate(h).map_err(|e| e.to_string())?.is_some() {
                return Err(format!("transaction {h} was decided before"));
            }
        }
        Ok(())
    }

    fn commit_block(&self, hash: B256, certificate: Certificate) -> Result<(), SequencerError> {
        let Some(candidate) = self.candidates.lock().remove(&hash) else {
            return Err(SequencerError::Consensus(format!("decided block {hash} was not checked here")));
        };
        let block = candidate.block;
        let height = block.height;
        self.store.put(&block, &certificate.encode(), &candidate.txs)?;
        {
            let mut head = self.head.lock();
            *head = Head { height, hash, timestamp: block.timestamp };
        }
        let own = {
            let mut own = self.own.lock();
            match own.take() {
                Some((h, o)) if h == height && o != hash => self.candidates.lock().remove(&o),
                Some(other) if other.0 > height => {
                    *own = Some(other);
                    None
                }
                _ => None,
            }
        };
        let decided: std::collections::HashSet<B256> = block.transactions.iter().copied().collect();
        {
            let mut lanes = self.lanes.lock();
            let mut own = self.own_bundles.lock();
            for (raw, ns) in candidate.txs.iter().zip(block.namespaces.iter().flatten()) {
                let hash = keccak256(raw);
                lanes.remove(&hash);
                lanes.drop_bundle_of(&hash);
                own.remove(&hash);
                self.protected_taken.lock().remove(&hash);
                if let Ok(c) = self.check_tx(raw) {
                    lanes.on_included(*ns, c.sender, c.nonce);
                }
            }
        }
        if let Some(own) = own {
            self.return_to_lanes(&own.txs, &decided);
        }
        if let Some(last) = block.fragments.last() {
            *self.fragment_parent.lock() = *last;
        }
        self.candidates.lock().retain(|_, c| c.block.height > height);
        {
            let mut open = self.open.lock();
            if open.height <= height {
                *open = Open::default();
            }
        }
        if let Err(e) = self.fragment_log.lock().prune_below(height) {
            tracing::warn!("pruning the fragment log: {e}");
        }
        self.compact_admission();
        let _ = self.events.send(SharedEvent::Decided(Arc::new(DecidedBlock {
            block,
            certificate: certificate.encode().into(),
            txs: candidate.txs,
        })));
        self.execute_through(height);
        self.expire_protected();
        Ok(())
    }

    /// Rewrites the admission log to the transactions still in the lanes, once it is big.
    fn compact_admission(&self) {
        let mut log = self.admission.lock();
        if log.len_bytes() < ADMISSION_COMPACT_BYTES {
            return;
        }
        let mut records: Vec<Vec<u8>> =
            self.lanes.lock().all().map(|t| admission_record(t.received_ms, &t.raw)).collect();
        records.extend(self.protected.lock().iter().map(|p| p.record()));
        if let Err(e) = log.rewrite(records.iter().map(|r| r.as_slice())) {
            tracing::error!("compacting the admission log: {e}");
        }
    }
}

impl Lazy {
    /// Checks and keeps evidence of misbehaviour against this set (signed fragments of
    /// the set's chain id, or consensus messages), as a rollup's node does
    /// ([`Chain::record_evidence`]): in the order store, handed to the evidence hook.
    pub fn record_evidence(
        &self,
        evidence: crate::evidence::Evidence,
    ) -> Result<(B256, crate::evidence::Proven, bool), SequencerError> {
        crate::evidence::record_in(&self.store, &self.evidence_gate, self.config.chain_id, evidence)
    }

    /// Every evidence record kept, each checked again as it is read.
    #[allow(clippy::type_complexity)]
    pub fn evidence(
        &self,
    ) -> Result<Vec<(B256, crate::evidence::Proven, crate::evidence::EvidenceRecord)>, SequencerError> {
        crate::evidence::read_all(&self.store)
    }

    /// Keeps evidence only against these keys (the set's validators).
    pub fn set_accountable(&self, keys: Option<std::collections::HashSet<Address>>) {
        self.evidence_gate.lock().accountable = keys;
    }

    /// Sets what receives each new evidence record (in its `cairn_getEvidence` form).
    pub fn set_evidence_hook(&self, hook: Option<crate::chain::EvidenceHook>) {
        self.evidence_gate.lock().hook = hook;
    }

    /// The DA layer this node posts to, if any.
    pub fn da(&self) -> Option<crate::da::DaHandle> {
        self.da.lock().clone()
    }

    /// The newest decided height that is firm (on the DA layer, read back, checked).
    pub fn firm_through(&self) -> u64 {
        self.firm.lock().0
    }
}

impl crate::poster::PostSource for Lazy {
    fn ready_through(&self) -> u64 {
        self.decided_height()
    }

    fn wait_ready(&self, height: u64, timeout: Duration) -> bool {
        if self.decided_height() < height {
            std::thread::sleep(timeout.min(Duration::from_millis(50)));
        }
        self.decided_height() >= height
    }

    fn batch_block(&self, height: u64) -> Result<Option<(cairn_da::BatchBlock, usize)>, SequencerError> {
        let Some(d) = self.store.get(height)? else { return Ok(None) };
        let namespaces: HashMap<B256, u64> =
            d.block.transactions.iter().copied().zip(d.block.namespaces.iter().flatten().copied()).collect();
        let size = d.txs.iter().map(|t| t.len()).sum();
        let namespace_of = |raw: &Bytes| namespaces.get(&keccak256(raw)).copied().unwrap_or(self.config.chain_id);
        Ok(Some((cairn_da::BatchBlock::new(&d.block, d.certificate.clone(), &d.txs, namespace_of), size)))
    }

    fn stored(&self, height: u64) -> Result<Option<(SequencerBlock, Vec<u8>)>, SequencerError> {
        Ok(self.store.get(height)?.map(|d| (d.block, d.certificate.to_vec())))
    }

    fn firm(&self, first: u64, last: u64, da: cairn_da::DaRef) -> Result<(), SequencerError> {
        let mut firm = self.firm.lock();
        firm.0 = firm.0.max(last);
        if firm.1.len() >= crate::chain::MAX_FIRM_BATCHES {
            firm.1.pop_front();
        }
        firm.1.push_back((first, last, da));
        Ok(())
    }

    fn set_da(&self, handle: crate::da::DaHandle) {
        *self.da.lock() = Some(handle);
    }
}

fn lane_tx(c: &Checked, raw: &[u8], at_ms: u64) -> LaneTx {
    LaneTx {
        hash: c.hash,
        namespace: c.namespace,
        sender: c.sender,
        nonce: c.nonce,
        gas_limit: c.gas_limit,
        max_fee: c.max_fee,
        raw: Bytes::copy_from_slice(raw),
        received_ms: at_ms,
    }
}

impl Host for Lazy {
    fn decided_tip(&self) -> (u64, B256) {
        let h = self.head.lock();
        (h.height, h.hash)
    }

    fn build(
        &self,
        height: u64,
        round: u32,
        slot: Duration,
        inherited: Vec<FragmentRecord>,
        publish: Box<dyn Fn(FragmentRecord) + Send + Sync>,
    ) -> Result<SequencerBlock, String> {
        self.build_block(height, round, slot, &inherited, publish)
    }

    fn stream_fragment(&self, height: u64, round: u32, record: &FragmentRecord) -> Result<(), String> {
        let namespaces = self.namespaces_of(&record.txs)?;
        self.publish_open(height, round, record, namespaces);
        Ok(())
    }

    fn check(&self, block: &SequencerBlock, fragments: &[FragmentRecord]) -> Result<(), String> {
        let txs: Vec<Bytes> = fragments.iter().flat_map(|f| f.txs.iter().cloned()).collect();
        self.check_block(block, &txs)?;
        self.keep(block.clone(), txs);
        Ok(())
    }

    fn check_synced(&self, block: &SequencerBlock, txs: &[Bytes]) -> Result<(), String> {
        self.check_block(block, txs)?;
        self.keep(block.clone(), txs.to_vec());
        Ok(())
    }

    fn commit(&self, hash: B256, certificate: Certificate) -> Result<(), String> {
        self.commit_block(hash, certificate).map_err(|e| e.to_string())
    }

    fn decided(&self, height: u64) -> Result<Option<(SequencerBlock, Vec<Bytes>, Certificate)>, String> {
        let Some(d) = self.store.get(height).map_err(|e| e.to_string())? else { return Ok(None) };
        let certificate = Certificate::decode(&d.certificate).map_err(|e| e.to_string())?;
        Ok(Some((d.block, d.txs, certificate)))
    }

    fn misbehaviour(&self, evidence: Misbehaviour) {
        let chain_id = self.config.chain_id;
        let evidence = match evidence {
            Misbehaviour::Fragments(pair) => {
                let [a, b] = *pair;
                crate::evidence::Evidence::Fragments(Box::new([a.signed(chain_id), b.signed(chain_id)]))
            }
            Misbehaviour::Consensus(c) => crate::evidence::Evidence::Consensus(c),
        };
        match self.record_evidence(evidence) {
            Ok((id, proof, _)) => tracing::warn!(%id, signer = %proof.signer(), "evidence of misbehaviour kept"),
            Err(e) => tracing::error!("evidence of misbehaviour not kept: {e}"),
        }
    }
}
