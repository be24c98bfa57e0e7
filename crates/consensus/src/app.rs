//! The Malachite application: Malachite's engine (its consensus, WAL, libp2p network and
//! value sync) decides; a [`Host`] (the node's chain) builds, checks and commits the
//! blocks. Consensus drives the chain: it asks this node for a block when it proposes,
//! hands it every other proposer's parts, and tells it what was decided.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{keccak256, Bytes, B256};
use alloy_signer_local::PrivateKeySigner;
use borsh::{BorshDeserialize, BorshSerialize};
use cairn_primitives::fragment::FragmentRecord;
use cairn_primitives::SequencerBlock;
use malachitebft_app::config::{ConsensusConfig, PubSubProtocol, ValueSyncConfig};
use malachitebft_app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app::types::core::{
    CommitCertificate as MalCommit, ExtendedCommitCertificate, ExtendedCommitSignature, LinearTimeouts, Round, Validity,
};
use malachitebft_app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app::types::sync::RawDecidedValue;
use malachitebft_app::types::{Keypair, LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, NetworkContext, NetworkIdentity, NetworkMsg, RequestContext, Signer,
    SyncContext, WalContext,
};
use malachitebft_engine::util::streaming::StreamContent;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::codec::BftCodec;
use crate::context::{Block, BlockId, CairnContext, FragmentPart, Height, ProposalPart, ValidatorAddress, Validators};
use crate::evidence::{ConsensusEvidence, FragmentWatch};
use crate::parts::{assemble, check, check_next, check_synced, preferred, Assembled, HeldFragment, Streams};
use crate::scheme::{proposal_hash, PublicKey};
use crate::signing::{Checker, Keys};
use crate::validators::ValidatorSet;
use crate::{Certificate, CommitCertificate, ConsensusError};

/// Most decided blocks served in one value-sync answer.
pub const MAX_SYNC_BATCH: usize = 16;
/// Most complete proposals kept for heights this node has not reached yet.
pub const MAX_FUTURE_PROPOSALS: usize = 64;

/// What consensus asks of the node's chain.
pub trait Host: Send + Sync + 'static {
    /// The last decided height and its sequencer block's hash (0 and zero at genesis).
    fn decided_tip(&self) -> (u64, B256);

    /// Builds this validator's block for `height`, proposed in `round`, for at most
    /// `slot`: each signed fragment goes to `publish` as soon as it is made (before a
    /// client waiting on it is answered). A block this node built for `height` before (in
    /// an earlier round, or before a restart) is proposed again, unchanged, its
    /// fragments published again.
    ///
    /// `inherited` is the chain of fragments this node holds for `height` from earlier
    /// rounds' proposers (the preferred one, see [`crate::preferred`]): the block must
    /// extend it, so that the transactions preconfirmed there keep their places.
    fn build(
        &self,
        height: u64,
        round: u32,
        slot: Duration,
        inherited: Vec<FragmentRecord>,
        publish: Box<dyn Fn(FragmentRecord) + Send + Sync>,
    ) -> Result<SequencerBlock, String>;

    /// Executes the next fragment of the block the proposer of (`height`, `round`) is
    /// streaming, as it arrives (its signature and place are checked): this node's
    /// pending state and preconfirmations follow it.
    fn stream_fragment(&self, height: u64, round: u32, record: &FragmentRecord) -> Result<(), String>;

    /// Executes another validator's proposal, fragment by fragment, and checks each
    /// fragment's promises (gas, receipts, state diff) and the block's context. Keeps it
    /// for [`Host::commit`].
    fn check(&self, block: &SequencerBlock, fragments: &[FragmentRecord]) -> Result<(), String>;

    /// Executes a block received by value sync (its transactions match it; its
    /// certificate is checked by consensus) and keeps it for [`Host::commit`].
    fn check_synced(&self, block: &SequencerBlock, txs: &[Bytes]) -> Result<(), String>;

    /// Commits the decided block `hash` (built, checked or synced before) with its
    /// certificate; returns once it is durable.
    fn commit(&self, hash: B256, certificate: Certificate) -> Result<(), String>;

    /// A decided block, its raw transactions and its certificate (value sync).
    fn decided(&self, height: u64) -> Result<Option<(SequencerBlock, Vec<Bytes>, Certificate)>, String>;

    /// This node saw a validator misbehave: two signed fragments that cannot both hold
    /// (seen on the network), or a double vote or double proposal (found by
    /// Malachite). Each is reported once per height.
    fn misbehaviour(&self, evidence: Misbehaviour);
}

/// Misbehaviour a node saw, with the signed messages that prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Two fragments of one signer, the one seen first first (`find_equivocation`).
    Fragments(Box<[FragmentRecord; 2]>),
    /// A double vote or a double proposal.
    Consensus(ConsensusEvidence),
}

/// Faults a validator can be told to commit, to test how the others react (`cairn node
/// --fault`). Never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// After each block's first fragment, stream a second, different fragment signed
    /// for the same position.
    EquivocateFragments,
}

/// How to run one node of a validator set.
#[derive(Debug, Clone)]
pub struct BftConfig {
    pub chain_id: u64,
    pub validators: ValidatorSet,
    /// The validator key; `None` runs a full node (it follows, never votes).
    pub key: Option<PrivateKeySigner>,
    /// Consensus P2P address to listen on, and the other nodes'.
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    /// Malachite's write-ahead log.
    pub wal: PathBuf,
    /// How long a proposer fills its block.
    pub block_time: Duration,
    pub moniker: String,
    /// A fault this validator commits on purpose (tests only).
    pub fault: Option<Fault>,
}

impl BftConfig {
    /// Round timeouts: a proposer has its slot and a second more to stream its block;
    /// each later round waits longer.
    pub fn timeouts(&self) -> LinearTimeouts {
        let propose = self.block_time + Duration::from_millis(1_000);
        let prevote = Duration::from_millis(500);
        let precommit = Duration::from_millis(500);
        LinearTimeouts {
            propose,
            propose_delta: Duration::from_millis(500),
            prevote,
            prevote_delta: Duration::from_millis(250),
            precommit,
            precommit_delta: Duration::from_millis(250),
            rebroadcast: propose + prevote + precommit,
            max_timeout: Duration::from_secs(10),
        }
    }
}

/// Malachite's node configuration (what `start_engine` reads).
#[derive(Debug, Clone)]
struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl malachitebft_app::config::NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr(addr: SocketAddr) -> Result<malachitebft_app::net::Multiaddr, ConsensusError> {
    let text = match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    };
    text.parse().map_err(|e| ConsensusError::Engine(format!("address {addr}: {e}")))
}

/// The running engine and application.
pub struct Engine {
    actor: malachitebft_engine::node::NodeRef,
    engine: JoinHandle<()>,
    app: JoinHandle<()>,
}

impl Engine {
    /// Stops consensus (the chain keeps what it committed).
    pub async fn stop(self) {
        self.actor.stop(None);
        self.app.abort();
        let _ = self.engine.await;
    }
}

/// Starts Malachite's engine for this node and the application loop that serves it.
pub async fn start(config: BftConfig, host: Arc<dyn Host>) -> Result<Engine, ConsensusError> {
    let ctx = CairnContext { chain_id: config.chain_id };
    let validators = Validators::new(config.validators.clone()).map_err(ConsensusError::Engine)?;
    let mut consensus = ConsensusConfig::default();
    consensus.p2p.listen_addr = multiaddr(config.listen)?;
    consensus.p2p.persistent_peers = config.peers.iter().map(|p| multiaddr(*p)).collect::<Result<_, _>>()?;
    consensus.p2p.discovery.enabled = false;
    consensus.p2p.protocol = PubSubProtocol::Broadcast;
    let value_sync = ValueSyncConfig {
        status_update_interval: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        batch_size: MAX_SYNC_BATCH,
        ..ValueSyncConfig::default()
    };
    let engine_config = EngineConfig { moniker: config.moniker.clone(), consensus, value_sync };

    // The network key is derived from the validator key (a full node makes a new one
    // each start): libp2p peers and consensus validators stay one identity.
    let keypair = match &config.key {
        Some(key) => {
            let mut seed = [0u8; 64];
            seed[..21].copy_from_slice(b"cairn-network-key-v1:");
            seed[32..].copy_from_slice(key.to_bytes().as_slice());
            Keypair::ed25519_from_bytes(keccak256(seed).0).map_err(|e| ConsensusError::Engine(e.to_string()))?
        }
        None => Keypair::generate_ed25519(),
    };
    let keys = config.key.clone().map(|key| Keys { chain_id: config.chain_id, key });
    let (identity, consensus_ctx, address) = match &keys {
        Some(keys) => {
            let address = ValidatorAddress(keys.key.address());
            let public = PublicKey::of(&keys.key).compressed().to_vec();
            let proof = keys
                .sign_validator_proof(public, keypair.public().to_peer_id().to_bytes())
                .await
                .map_err(|e| ConsensusError::Engine(e.to_string()))?;
            let proof = malachitebft_codec::Codec::encode(&BftCodec, &proof)
                .map_err(|e| ConsensusError::Engine(e.to_string()))?;
            let identity = NetworkIdentity::new_validator(config.moniker.clone(), keypair, address.to_string(), proof);
            let cc = ConsensusContext::new_validator(address, Box::new(keys.clone()), Box::new(keys.clone()));
            (identity, cc, Some(address))
        }
        None => {
            let identity = NetworkIdentity::new(config.moniker.clone(), keypair, None);
            let cc = ConsensusContext::new_full_node(
                ValidatorAddress::default(),
                Box::new(Checker { chain_id: ctx.chain_id }),
            );
            (identity, cc, None)
        }
    };
    let (channels, handle) = malachitebft_app_channel::start_engine(
        ctx,
        engine_config,
        WalContext::new(config.wal.clone(), BftCodec),
        NetworkContext::new(identity, BftCodec),
        consensus_ctx,
        SyncContext::new(BftCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| ConsensusError::Engine(e.to_string()))?;
    let params = HeightParams::new(validators.clone(), config.timeouts(), None);
    let app = App {
        host,
        chain_id: config.chain_id,
        validators,
        keys,
        address,
        params,
        network: channels.network.clone(),
        block_time: config.block_time,
        height: 0,
        streams: Streams::default(),
        seen: BTreeMap::new(),
        bodies: HashMap::new(),
        future: BTreeMap::new(),
        held: Vec::new(),
        progress: HashMap::new(),
        watch: FragmentWatch::default(),
        fault: config.fault,
        stream_counter: Arc::new(AtomicU64::new(0)),
    };
    let app = tokio::spawn(app.run(channels));
    Ok(Engine { actor: handle.actor, engine: handle.handle, app })
}

/// A fragment for the same position as `record` with other content, signed by `keys`
/// ([`Fault::EquivocateFragments`]).
fn conflicting(chain_id: u64, keys: &Keys, record: &FragmentRecord) -> Option<FragmentRecord> {
    let mut other = record.clone();
    other.state_diff_hash = keccak256(record.state_diff_hash);
    let hash = other.signed(chain_id).fragment.hash();
    let signature = keys.sign_proposal_hash(&hash).ok()?;
    other.signature = Bytes::copy_from_slice(&signature.0);
    tracing::warn!(height = record.height, index = record.index, "fault: streaming a conflicting fragment");
    Some(other)
}

/// A decided block as value sync sends it.
#[derive(BorshSerialize, BorshDeserialize)]
struct SyncValue {
    block: Block,
    txs: Vec<Vec<u8>>,
}

fn to_certificate(c: &MalCommit<CairnContext>) -> Certificate {
    Certificate::Commit(CommitCertificate {
        height: c.height.0,
        round: c.round.as_u32().unwrap_or(0),
        block: c.value_id.0 .0,
        signatures: c.commit_signatures.iter().map(|s| (s.address.0 .0 .0, s.signature)).collect(),
    })
}

fn to_extended(c: &CommitCertificate) -> ExtendedCommitCertificate<CairnContext> {
    ExtendedCommitCertificate {
        height: Height(c.height),
        round: Round::new(c.round),
        value_id: BlockId(B256::from(c.block)),
        commit_signatures: c
            .signatures
            .iter()
            .map(|(a, s)| ExtendedCommitSignature::new(ValidatorAddress(alloy_primitives::Address::from(*a)), *s, None))
            .collect(),
    }
}

struct App {
    host: Arc<dyn Host>,
    chain_id: u64,
    validators: Validators,
    keys: Option<Keys>,
    address: Option<ValidatorAddress>,
    params: HeightParams<CairnContext>,
    network: mpsc::Sender<NetworkMsg<CairnContext>>,
    block_time: Duration,
    /// The height consensus is at.
    height: u64,
    streams: Streams<(PeerId, StreamId)>,
    /// Values proposed at this height, by round (answers `StartedRound` after a restart).
    seen: BTreeMap<(u64, u32), Vec<ProposedValue<CairnContext>>>,
    /// Blocks of this height with their fragments (to stream them again).
    bodies: HashMap<B256, (Block, Vec<FragmentRecord>)>,
    /// Complete proposals for heights not reached yet, checked when they are.
    future: BTreeMap<u64, Vec<Assembled>>,
    /// The preferred chain of signed fragments of this height that this node holds
    /// (`parts::preferred`): a proposal that is not at least this one gets a nil prevote,
    /// and this node's own proposal extends it.
    held: Vec<HeldFragment>,
    /// Fragments checked and executed so far, per stream being received.
    progress: HashMap<(PeerId, StreamId), Vec<HeldFragment>>,
    /// Every signed fragment seen for this height, to find equivocation.
    watch: FragmentWatch,
    fault: Option<Fault>,
    stream_counter: Arc<AtomicU64>,
}

impl App {
    async fn run(mut self, mut channels: Channels<CairnContext>) {
        while let Some(msg) = channels.consensus.recv().await {
            self.handle(msg).await;
        }
        tracing::info!("consensus stopped");
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<dyn Host>) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || f(host)).await.map_err(|e| format!("host task failed: {e}"))?
    }

    fn enter(&mut self, height: u64) {
        if height != self.height {
            self.height = height;
            self.seen.retain(|(h, _), _| *h >= height);
            self.bodies.retain(|_, (b, _)| b.block().height >= height);
            self.future.retain(|h, _| *h >= height);
            self.held.clear();
            self.progress.clear();
            self.watch.clear();
        }
    }

    /// Hands misbehaviour to the host (which stores it) off the consensus task.
    fn report(&self, evidence: Misbehaviour) {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.misbehaviour(evidence));
    }

    /// Watches the fragments among `parts` (of a stream of this height) for
    /// equivocation.
    fn watch<'a>(&mut self, parts: impl IntoIterator<Item = &'a ProposalPart>) {
        for part in parts {
            let ProposalPart::Fragment(f) = part else { continue };
            if f.0.height != self.height {
                continue;
            }
            if let Some(pair) = self.watch.observe(self.chain_id, &self.validators, &f.0) {
                tracing::warn!(
                    height = self.height,
                    index = pair[1].index,
                    "a validator signed two conflicting fragments"
                );
                self.report(Misbehaviour::Fragments(Box::new(pair)));
            }
        }
    }

    fn new_stream(&self, height: u64, round: u32) -> StreamId {
        let mut id = Vec::with_capacity(20);
        id.extend_from_slice(&height.to_be_bytes());
        id.extend_from_slice(&round.to_be_bytes());
        id.extend_from_slice(&self.stream_counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        StreamId::new(id.into())
    }

    async fn publish(&self, stream: &StreamId, sequence: u64, content: StreamContent<ProposalPart>) {
        let msg = NetworkMsg::PublishProposalPart(StreamMessage::new(stream.clone(), sequence, content));
        if let Err(e) = self.network.send(msg).await {
            tracing::error!("publishing a proposal part failed: {e}");
        }
    }

    async fn handle(&mut self, msg: AppMsg<CairnContext>) {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let (tip, _) = self.host.decided_tip();
                tracing::info!(height = tip + 1, "consensus ready");
                self.enter(tip + 1);
                let _ = reply.send((Height(tip + 1), self.params.clone()));
            }
            AppMsg::StartedRound { height, round, proposer, role, reply_value } => {
                tracing::debug!(%height, %round, %proposer, ?role, "round started");
                self.enter(height.0);
                // Streams of this height that began before this node reached it.
                for key in self.streams.keys() {
                    let prefix = self.streams.prefix(&key);
                    self.watch(&prefix);
                    self.follow(&key, &prefix).await;
                }
                self.check_future(height.0).await;
                let r = round.as_u32().unwrap_or(0);
                let values = self.seen.get(&(height.0, r)).cloned().unwrap_or_default();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue { height, round, timeout, reply } => {
                if let Some(value) = self.propose(height, round, timeout).await {
                    let _ = reply.send(value);
                }
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal { height, round, valid_round, value_id, .. } => {
                self.restream(height, round, valid_round, value_id.0).await;
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart { from, published_by, part, reply } => {
                let value = self.received_part(published_by.unwrap_or(from), part).await;
                let _ = reply.send(value);
            }
            AppMsg::Decided { certificate, reply, .. } => {
                let height = certificate.height.0;
                let hash = certificate.value_id.0;
                let cert = to_certificate(&certificate);
                match self.blocking(move |host| host.commit(hash, cert)).await {
                    Ok(()) => {
                        tracing::info!(height, block = %hash, round = %certificate.round, "decided and committed")
                    }
                    Err(e) => tracing::error!(height, block = %hash, "committing the decided block failed: {e}"),
                }
                let _ = reply.send(());
            }
            AppMsg::Finalized { certificate, evidence, reply, .. } => {
                let height = certificate.height.0;
                for (address, proposals) in &evidence.proposals {
                    tracing::warn!(height, %address, "a validator proposed twice in one round");
                    for pair in proposals {
                        self.report(Misbehaviour::Consensus(ConsensusEvidence::double_proposal(self.chain_id, pair)));
                    }
                }
                for (address, votes) in &evidence.votes {
                    tracing::warn!(height, %address, "a validator voted twice in one round");
                    for pair in votes {
                        self.report(Misbehaviour::Consensus(ConsensusEvidence::double_vote(self.chain_id, pair)));
                    }
                }
                let (tip, _) = self.host.decided_tip();
                let next = if tip >= height {
                    Next::Start(Height(tip + 1), self.params.clone())
                } else {
                    tracing::error!(height, tip, "the decided block is not committed; restarting the height");
                    Next::Restart(Height(tip + 1), self.params.clone())
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let (from, to) = (range.start().0, range.end().0);
                let values = self
                    .blocking(move |host| {
                        let mut out = Vec::new();
                        for h in from..=to.min(from.saturating_add(MAX_SYNC_BATCH as u64 - 1)) {
                            let Some((block, txs, certificate)) = host.decided(h)? else { break };
                            let Certificate::Commit(c) = certificate else { break };
                            let value =
                                SyncValue { block: Block::new(block), txs: txs.iter().map(|t| t.to_vec()).collect() };
                            let bytes = borsh::to_vec(&value).map_err(|e| e.to_string())?;
                            out.push(RawDecidedValue::new(bytes.into(), to_extended(&c)));
                        }
                        Ok(out)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!("reading decided blocks for value sync failed: {e}");
                        Vec::new()
                    });
                let _ = reply.send(values);
            }
            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let outcome = self.synced(height, round, proposer, value_bytes).await;
                let _ = reply.send(outcome);
            }
        }
    }

    /// Builds this node's block and streams it: `Init`, each fragment as it is made,
    /// `Fin`.
    async fn propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
    ) -> Option<LocallyProposedValue<CairnContext>> {
        let (keys, address) = (self.keys.clone()?, self.address?);
        let r = round.as_u32().unwrap_or(0);
        let stream = self.new_stream(height.0, r);
        let init = ProposalPart::Init { height, round, pol_round: Round::Nil, proposer: address };
        self.publish(&stream, 0, StreamContent::Data(init)).await;
        let sequence = Arc::new(AtomicU64::new(1));
        let published = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (network, s, seq, out) = (self.network.clone(), stream.clone(), sequence.clone(), published.clone());
        let (fault, chain_id, signer) = (self.fault, self.chain_id, keys.clone());
        let publish = Box::new(move |record: FragmentRecord| {
            out.lock().push(record.clone());
            let conflicting = match fault {
                Some(Fault::EquivocateFragments) if record.index == 0 => conflicting(chain_id, &signer, &record),
                _ => None,
            };
            for record in std::iter::once(record).chain(conflicting) {
                let part = ProposalPart::Fragment(FragmentPart(record));
                let msg = StreamMessage::new(s.clone(), seq.fetch_add(1, Ordering::Relaxed), StreamContent::Data(part));
                if let Err(e) = network.blocking_send(NetworkMsg::PublishProposalPart(msg)) {
                    tracing::error!("publishing a fragment failed: {e}");
                }
            }
        });
        let slot = self.block_time.min(timeout / 2);
        let inherited: Vec<FragmentRecord> = self.held.iter().map(|f| f.record.clone()).collect();
        let built = self.blocking(move |host| host.build(height.0, r, slot, inherited, publish)).await;
        let block = match built {
            Ok(block) => Block::new(block),
            Err(e) => {
                tracing::error!(%height, %round, "building a proposal failed: {e}");
                return None;
            }
        };
        let hash = proposal_hash(self.chain_id, height.0, r, -1, block.hash());
        let signature = match keys.sign_proposal_hash(&hash) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("signing the proposal failed: {e}");
                return None;
            }
        };
        // The chain this node now holds is the one it proposes.
        let mut own: Vec<HeldFragment> = Vec::new();
        for record in published.lock().iter() {
            match check_next(self.chain_id, &self.validators, own.last(), record) {
                Ok(f) => own.push(f),
                Err(e) => {
                    tracing::error!(%height, "this node's own fragments do not chain: {e}");
                    break;
                }
            }
        }
        if preferred(&self.validators, height.0, &own, &self.held) {
            self.held = own;
        }
        let fin = ProposalPart::Fin { block: block.clone(), signature };
        let next = sequence.load(Ordering::Relaxed);
        self.publish(&stream, next, StreamContent::Data(fin)).await;
        self.publish(&stream, next + 1, StreamContent::Fin).await;
        let value = ProposedValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer: address,
            value: block.clone(),
            validity: Validity::Valid,
        };
        self.seen.entry((height.0, r)).or_default().push(value);
        tracing::debug!(%height, %round, block = %block.hash(), txs = block.block().transactions.len(), "proposed");
        Some(LocallyProposedValue::new(height, round, block))
    }

    /// Streams again a block this node holds, as the proposer of `round` (a value
    /// locked in `valid_round`).
    async fn restream(&mut self, height: Height, round: Round, valid_round: Round, id: B256) {
        let (Some(keys), Some(address)) = (self.keys.clone(), self.address) else { return };
        let Some((block, fragments)) = self.bodies.get(&id).cloned() else {
            tracing::warn!(%height, %round, block = %id, "asked to stream again a block this node does not hold");
            return;
        };
        let r = round.as_u32().unwrap_or(0);
        let hash = proposal_hash(self.chain_id, height.0, r, valid_round.as_i64(), id);
        let Ok(signature) = keys.sign_proposal_hash(&hash) else { return };
        let stream = self.new_stream(height.0, r);
        let mut seq = 0;
        self.publish(
            &stream,
            seq,
            StreamContent::Data(ProposalPart::Init { height, round, pol_round: valid_round, proposer: address }),
        )
        .await;
        for f in fragments {
            seq += 1;
            self.publish(&stream, seq, StreamContent::Data(ProposalPart::Fragment(FragmentPart(f)))).await;
        }
        self.publish(&stream, seq + 1, StreamContent::Data(ProposalPart::Fin { block, signature })).await;
        self.publish(&stream, seq + 2, StreamContent::Fin).await;
    }

    async fn received_part(
        &mut self,
        publisher: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<CairnContext>> {
        let key = (publisher, part.stream_id.clone());
        let content = match part.content {
            StreamContent::Data(p) => Some(p),
            StreamContent::Fin => None,
        };
        if let Some(p) = &content {
            self.watch(std::iter::once(p));
        }
        let complete = match self.streams.insert(key.clone(), part.sequence, content) {
            Ok(complete) => complete,
            Err(e) => {
                tracing::warn!(%publisher, "proposal stream dropped: {e}");
                self.progress.remove(&key);
                return None;
            }
        };
        // Fragments are checked, held and executed as they arrive.
        let prefix = match &complete {
            Some(parts) => parts.clone(),
            None => self.streams.prefix(&key),
        };
        self.follow(&key, &prefix).await;
        let parts = complete?;
        self.progress.remove(&key);
        let assembled = match assemble(parts) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%publisher, "malformed proposal: {e}");
                return None;
            }
        };
        let chain = match check(self.chain_id, &self.validators, &assembled) {
            Ok(chain) => chain,
            Err(e) => {
                tracing::warn!(%publisher, height = %assembled.height, "proposal refused: {e}");
                return None;
            }
        };
        let height = assembled.height.0;
        if height < self.height {
            return None;
        }
        if height > self.height {
            let total: usize = self.future.values().map(Vec::len).sum();
            if total < MAX_FUTURE_PROPOSALS {
                self.future.entry(height).or_default().push(assembled);
            }
            return None;
        }
        Some(self.execute(assembled, chain).await)
    }

    /// Takes the fragments of a stream of this height that arrived since last time:
    /// checked (a validator's signature, the chain), executed, and held if the stream's
    /// chain is now the preferred one.
    async fn follow(&mut self, key: &(PeerId, StreamId), prefix: &[ProposalPart]) {
        let Some(ProposalPart::Init { height, round, proposer, .. }) = prefix.first() else { return };
        let (height, round) = (height.0, round.as_u32().unwrap_or(0));
        if height != self.height || self.validators.proposer(height, round).address != *proposer {
            return;
        }
        if self.progress.len() >= crate::parts::MAX_STREAMS && !self.progress.contains_key(key) {
            self.progress.clear();
        }
        let mut verified = self.progress.remove(key).unwrap_or_default();
        let fresh: Vec<FragmentRecord> = prefix
            .iter()
            .skip(1 + verified.len())
            .map_while(|p| match p {
                ProposalPart::Fragment(f) => Some(f.0.clone()),
                _ => None,
            })
            .collect();
        for record in fresh {
            let held = match check_next(self.chain_id, &self.validators, verified.last(), &record) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(height, round, "streamed fragment refused: {e}");
                    break;
                }
            };
            let r = record.clone();
            if let Err(e) = self.blocking(move |host| host.stream_fragment(height, round, &r)).await {
                tracing::warn!(height, round, index = record.index, "streamed fragment does not execute here: {e}");
                break;
            }
            verified.push(held);
        }
        if preferred(&self.validators, height, &verified, &self.held) {
            self.held = verified.clone();
        }
        self.progress.insert(key.clone(), verified);
    }

    /// Checks proposals kept for `height` now that it is reached.
    async fn check_future(&mut self, height: u64) {
        let Some(waiting) = self.future.remove(&height) else { return };
        for assembled in waiting {
            let round = assembled.round.as_u32().unwrap_or(0);
            let Ok(chain) = check(self.chain_id, &self.validators, &assembled) else { continue };
            let value = self.execute(assembled, chain).await;
            self.seen.entry((height, round)).or_default().push(value);
        }
    }

    /// Executes a proposal of the current height (once per block) and says whether it is
    /// valid.
    async fn execute(&mut self, p: Assembled, chain: Vec<HeldFragment>) -> ProposedValue<CairnContext> {
        let id = p.block.hash();
        let known = self.seen.values().flatten().find(|v| v.value.hash() == id).map(|v| v.validity);
        let validity = match known {
            Some(v) => v,
            // It drops fragments this node holds (preconfirmations it must keep).
            None if preferred(&self.validators, p.height.0, &self.held, &chain) => {
                tracing::warn!(
                    height = %p.height,
                    round = %p.round,
                    proposer = %p.proposer,
                    held = self.held.len(),
                    "proposal refused: it does not extend the chain of fragments this node holds"
                );
                Validity::Invalid
            }
            None => {
                let (block, fragments) = (p.block.block().clone(), p.fragments.clone());
                match self.blocking(move |host| host.check(&block, &fragments)).await {
                    Ok(()) => Validity::Valid,
                    Err(e) => {
                        tracing::warn!(height = %p.height, round = %p.round, proposer = %p.proposer, "invalid proposal: {e}");
                        Validity::Invalid
                    }
                }
            }
        };
        self.bodies.entry(id).or_insert_with(|| (p.block.clone(), p.fragments.clone()));
        let value = ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: p.pol_round,
            proposer: p.proposer,
            value: p.block,
            validity,
        };
        let round = p.round.as_u32().unwrap_or(0);
        self.seen.entry((p.height.0, round)).or_default().push(value.clone());
        value
    }

    async fn synced(
        &mut self,
        height: Height,
        round: Round,
        proposer: ValidatorAddress,
        bytes: bytes::Bytes,
    ) -> SyncedValueOutcome<CairnContext> {
        let Ok(value) = borsh::from_slice::<SyncValue>(&bytes) else { return SyncedValueOutcome::PeerFault };
        let block = value.block;
        let txs: Vec<Bytes> = value.txs.into_iter().map(Bytes::from).collect();
        if block.block().height != height.0 || check_synced(block.block(), &txs).is_err() {
            return SyncedValueOutcome::PeerFault;
        }
        let (tip, _) = self.host.decided_tip();
        if height.0 != tip + 1 {
            return SyncedValueOutcome::LocalTransientError;
        }
        let b = block.block().clone();
        let validity = match self.blocking(move |host| host.check_synced(&b, &txs)).await {
            Ok(()) => Validity::Valid,
            Err(e) => {
                tracing::error!(%height, "a synced block does not execute here: {e}");
                Validity::Invalid
            }
        };
        SyncedValueOutcome::Verdict(ProposedValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer,
            value: block,
            validity,
        })
    }
}
