//! The single-node sequencer: ingress (validation, durable admission), the chain handle
//! shared with RPC, and the builder's slot loop.
//!
//! Flow: `Ingress::submit` validates a raw transaction, puts it in the mempool and
//! durably into the store's pool table (group commit, fsync) before it answers. The
//! builder closes a block every `block_time`: it takes the best ready transactions,
//! executes them (building mode), computes the state root through the
//! `StateCommitter`, and commits block, receipts, state diff, pool removals and head in
//! one atomic write. Subscribers hear about it through a bounded broadcast channel.

mod admission;
mod builder;
mod chain;
mod da;
mod devstate;
mod devtools;
mod error;
mod evidence;
mod follow;
mod fragments;
mod genesis;
mod ingress;
mod lazy;
mod pipeline;
mod poster;
mod protect;
mod recovery;
mod replica;
mod sealer;
mod status;

pub use builder::{
    build_block, builder_priority, execute_block, lower_priority, next_prevrandao, Builder, BuilderConfig,
    DEFAULT_FRAGMENT_INTERVAL, SEALER_NICE,
};
pub use chain::{
    Chain, ChainEvent, EvidenceHook, FirmBlocks, FragmentHook, NewBlock, Retraction, SequencedBlock, SequencerError,
    UnsealedTx, EVENT_BUFFER, MAX_FIRM_BATCHES, MAX_PRECONF_WAITERS, MAX_RETRACTIONS,
};
pub use da::{DaHandle, DaStatus};
pub use devstate::{DevEdit, MAX_IMPERSONATED, MAX_PENDING_EDITS};
pub use evidence::{evidence_id, Evidence, EvidenceRecord, Proven};
pub use follow::{apply_decided, simulate_parts, Applied};
pub use fragments::{now_ms, FragmentPart, OpenBlock, Preconf};
pub use genesis::requests_hash;
pub use ingress::{Forward, Ingress, IngressError, RELAY_QUEUE};
pub use lazy::{
    bundle_record, Lazy, LazyFragment, LazyStatus, SharedConfig, SharedEvent, ADMISSION_COMPACT_BYTES, BUNDLE_RECORD,
    MAX_LAZY_CANDIDATES, SHARED_EVENT_BUFFER,
};
pub use pipeline::BlockInProgress;
pub use pipeline::{ExecutedBlock, PendingView, Tip, MAX_UNSEALED};
pub use poster::{DaPoster, PostSource, PosterConfig};
pub use protect::{BundleOutcome, ExecutedPart, Protected, MAX_OUTCOMES, MAX_PROTECTED};
pub use replica::{Replica, MAX_CANDIDATES, MAX_CLOCK_DRIFT_SECS};
pub use sealer::seal_next;
pub use status::{StatusChange, Step, Tier, TxStatus, MAX_TRACKED};
