//! Executed-but-unsealed blocks between the builder and the sealer.
//!
//! The builder executes block `h + 1` on top of the state of block `h` as soon as `h`
//! is executed; it does not wait for `h`'s state root. Each executed block waits here
//! (at most [`MAX_UNSEALED`] of them; beyond that the builder waits: back-pressure)
//! until the sealer has computed its root and committed it. Above them, the block the
//! builder is filling publishes its preconfirmation fragments as they are made
//! ([`OpenBlock`]). [`PendingView`] is the newest preconfirmed state: the sealed
//! snapshot with the unsealed diffs and the open block's diff on top.

use alloy_consensus::Header;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_consensus::Certificate;
use cairn_primitives::predeploys::system::{BlockSystem, BEACON_ROOTS, HISTORY_STORAGE};
use cairn_primitives::{AccountState, SequencerBlock, StateDiff, StateError, StateView, StoredReceipt};
use cairn_storage::StoreReader;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::fragments::{FragmentPart, OpenBlock};
use cairn_executor::BlockContext;

/// Most blocks that may be executed but not yet sealed.
pub const MAX_UNSEALED: usize = 4;

/// A block the builder executed whose state root is still being computed.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// Every header field except `parent_hash`, `state_root`, `transactions_root`,
    /// `receipts_root` and `logs_bloom`, set when sealed.
    pub header: Header,
    /// `(hash, sender, raw EIP-2718 bytes)` in block order.
    pub body: Vec<(B256, Address, Bytes)>,
    pub receipts: Vec<StoredReceipt>,
    pub diff: Arc<StateDiff>,
    /// The block hit its gas limit or transaction cap: more work is waiting.
    pub full: bool,
    /// Its preconfirmation fragments (none when fragments are off).
    pub fragments: Vec<Arc<FragmentPart>>,
    /// Its block-start system writes: not in `diff` (the parent's hash is not known when
    /// it executes); the sealer adds them under it.
    pub system: BlockSystem,
    /// The sequencer block it was decided as, and why that is final.
    pub sequencer: SequencerBlock,
    pub certificate: Certificate,
}

/// A block the builder closed, not yet decided: the sequencer block it proposes and
/// what executing it gave.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub sequencer: SequencerBlock,
    pub header: Header,
    pub body: Vec<(B256, Address, Bytes)>,
    pub receipts: Vec<StoredReceipt>,
    pub diff: Arc<StateDiff>,
    pub full: bool,
    pub fragments: Vec<Arc<FragmentPart>>,
    pub system: BlockSystem,
}

impl Proposal {
    /// The executed block, once decided with `certificate`.
    pub fn decided(self, certificate: Certificate) -> ExecutedBlock {
        ExecutedBlock {
            header: self.header,
            body: self.body,
            receipts: self.receipts,
            diff: self.diff,
            full: self.full,
            fragments: self.fragments,
            system: self.system,
            sequencer: self.sequencer,
            certificate,
        }
    }
}

/// The block the builder is filling: executed in pieces (one per fragment), closed at
/// the end of its slot or when full.
pub struct BlockInProgress {
    pub(crate) ctx: BlockContext,
    /// Its block-start system writes.
    pub(crate) system: BlockSystem,
    pub(crate) body: Vec<(B256, Address, Bytes)>,
    pub(crate) receipts: Vec<StoredReceipt>,
    pub(crate) diff: Arc<StateDiff>,
    pub(crate) fragments: Vec<Arc<FragmentPart>>,
    pub(crate) gas_used: u64,
    pub(crate) logs: u64,
    pub(crate) full: bool,
    /// Its close record is in the fragment log already (a block recovered as closed).
    pub(crate) close_logged: bool,
}

/// What the next block builds on: the newest executed (or sealed) block.
#[derive(Debug, Clone, Copy)]
pub struct Tip {
    pub number: u64,
    pub timestamp: u64,
    pub gas_used: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub mix_hash: B256,
    /// Hash of its sequencer block (zero for genesis and blocks stored without one).
    pub sequencer_hash: B256,
}

impl Tip {
    pub(crate) fn of(header: &Header, sequencer_hash: B256) -> Self {
        Self {
            sequencer_hash,
            number: header.number,
            timestamp: header.timestamp,
            gas_used: header.gas_used,
            gas_limit: header.gas_limit,
            base_fee: header.base_fee_per_gas.unwrap_or_default(),
            mix_hash: header.mix_hash,
        }
    }
}

pub(crate) struct Pipeline {
    /// Snapshot of the newest sealed block, and that block.
    pub snapshot: Arc<StoreReader>,
    pub latest: (Header, B256),
    /// Executed blocks `latest + 1 ..= tip`, oldest first.
    pub unsealed: VecDeque<Arc<ExecutedBlock>>,
    /// The block being filled above `tip`, as far as it is preconfirmed.
    pub open: Option<Arc<OpenBlock>>,
    pub tip: Tip,
    /// Set when the sealer stops; waiters give up instead of hanging.
    pub closed: bool,
}

/// Waits for a block's seal (the chain, seen from the pending state).
pub(crate) trait SealWait: Send + Sync {
    fn wait_sealed(&self, number: u64) -> Result<Arc<StoreReader>, crate::error::SequencerError>;
}

/// The newest preconfirmed state: sealed snapshot, unsealed blocks, open block, each
/// block's diff over its block-start system writes
/// ([`cairn_primitives::predeploys::system`]).
pub struct PendingView {
    pub(crate) base: Arc<StoreReader>,
    pub(crate) blocks: Vec<Arc<ExecutedBlock>>,
    pub(crate) open: Option<Arc<OpenBlock>>,
    pub(crate) chain: std::sync::Weak<dyn SealWait>,
    /// The block being executed on this view, when its system writes are not under the
    /// open block already (its first fragment).
    pub(crate) building: Option<BlockSystem>,
}

impl PendingView {
    /// Number of the newest executed (closed) block under this state.
    pub fn number(&self) -> u64 {
        self.blocks.last().map(|b| b.header.number).unwrap_or_else(|| self.base.head().unwrap_or_default())
    }

    /// This view as the state block `system.number` executes on: its block-start
    /// system writes on top.
    pub fn building(mut self, system: BlockSystem) -> Self {
        self.building = Some(system).filter(|s| self.open.as_ref().is_none_or(|o| o.number != s.number));
        self
    }

    /// The diffs above the sealed snapshot, newest first.
    fn layers(&self) -> impl Iterator<Item = &StateDiff> {
        self.open.iter().map(|o| o.diff.as_ref()).chain(self.blocks.iter().rev().map(|b| b.diff.as_ref()))
    }

    /// The block-start system writes of each layer, in the order of [`Self::layers`].
    fn systems(&self) -> impl Iterator<Item = &BlockSystem> {
        self.open.iter().map(|o| &o.system).chain(self.blocks.iter().rev().map(|b| &b.system))
    }

    /// A slot of a system contract: each block's diff over its system writes.
    fn system_storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        if let Some(v) = self.building.map(|b| b.slot(address, slot, |n| self.block_hash(n))).transpose()?.flatten() {
            return Ok(v);
        }
        for (diff, system) in self.layers().zip(self.systems()) {
            if let Some(change) = diff.accounts.get(&address) {
                if let Some(value) = change.storage.get(&slot) {
                    return Ok(*value);
                }
                if change.storage_wiped || change.info.is_none() {
                    return Ok(U256::ZERO);
                }
            }
            if let Some(v) = system.slot(address, slot, |n| self.block_hash(n))? {
                return Ok(v);
            }
        }
        self.base.storage(address, slot)
    }
}

impl StateView for PendingView {
    fn account(&self, address: Address) -> Result<Option<AccountState>, StateError> {
        for diff in self.layers() {
            if let Some(change) = diff.accounts.get(&address) {
                return Ok(change.info);
            }
        }
        self.base.account(address)
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        if address == BEACON_ROOTS || address == HISTORY_STORAGE {
            return self.system_storage(address, slot);
        }
        for diff in self.layers() {
            if let Some(change) = diff.accounts.get(&address) {
                if let Some(value) = change.storage.get(&slot) {
                    return Ok(*value);
                }
                if change.storage_wiped || change.info.is_none() {
                    return Ok(U256::ZERO);
                }
            }
        }
        self.base.storage(address, slot)
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, StateError> {
        for diff in self.layers() {
            if let Some(code) = diff.code.get(&code_hash) {
                return Ok(code.clone());
            }
        }
        self.base.code(code_hash)
    }

    /// Hashes of unsealed blocks are not known until their roots are: a `BLOCKHASH` of
    /// one waits for the sealer (the only place execution waits for commitment).
    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        if self.blocks.first().is_none_or(|b| number < b.header.number) {
            return self.base.block_hash(number);
        }
        let chain = self.chain.upgrade().ok_or_else(|| StateError("node is shutting down".into()))?;
        let reader = chain.wait_sealed(number).map_err(|e| StateError(e.to_string()))?;
        reader.block_hash(number)
    }
}
