//! What `cairn dev`'s test-control methods move: the development clock (time offset,
//! next block timestamp; kept in the store so it survives restarts), requests to close
//! a block now (`evm_mine`), state edits (`anvil_setBalance`, `setNonce`, `setCode`,
//! `setStorageAt`) and impersonated senders. Each is an ordinary, ordered change of the
//! chain: a block closed on request is a block like any other, a time change only
//! affects blocks opened after it (a block's timestamp is signed into its fragments),
//! and state edits are a block of their own.
//!
//! **Edit blocks.** The builder closes the block it is filling, then makes a block
//! that holds no transaction and whose state diff is the requested edits (applied in
//! order), and waits until it is sealed before it opens the next block: so the edit is
//! in the store (durable) before the request is answered, every later block executes on
//! top of it, and no sealed block is ever rewritten. A replay of any block from its
//! parent's state (traces) sees the edits, because they are the parent's state. Edits
//! are refused on a chain that is not a development chain.

use alloy_primitives::{keccak256, Address, Bytes, U256};
use cairn_primitives::{AccountChange, StateDiff, StateView, KECCAK_EMPTY};
use cairn_storage::DevClock;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashSet, VecDeque};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Chain, SequencerError};

/// One state edit of a development chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevEdit {
    Balance(Address, U256),
    /// Never lowers the nonce (hardhat's rule: pooled and preconfirmed transactions
    /// were admitted against the nonce the account had).
    Nonce(Address, u64),
    /// Empty code removes the account's code.
    Code(Address, Bytes),
    Storage {
        address: Address,
        slot: U256,
        value: U256,
    },
}

impl DevEdit {
    pub fn address(&self) -> Address {
        match self {
            Self::Balance(a, _) | Self::Nonce(a, _) | Self::Code(a, _) => *a,
            Self::Storage { address, .. } => *address,
        }
    }
}

/// Most edit requests waiting for the builder.
pub const MAX_PENDING_EDITS: usize = 1_024;
/// Most accounts impersonated at once.
pub const MAX_IMPERSONATED: usize = 10_000;

type EditReply = mpsc::SyncSender<Result<u64, String>>;

/// Who may send without a key: the listed accounts, or anyone (`auto`).
#[derive(Debug, Default)]
pub(crate) struct Impersonation {
    accounts: HashSet<Address>,
    auto: bool,
}

/// Block requests: how many were asked for, how many the builder closed, and the
/// number of the last block it closed for one.
#[derive(Debug, Default)]
pub(crate) struct BlockRequests {
    asked: u64,
    served: u64,
    last: u64,
}

#[derive(Debug, Default)]
pub(crate) struct DevControls {
    pub(crate) clock: Mutex<DevClock>,
    requests: Mutex<BlockRequests>,
    served: Condvar,
    edits: Mutex<VecDeque<(DevEdit, EditReply)>>,
    impersonation: Mutex<Impersonation>,
}

impl DevControls {
    pub(crate) fn new(clock: DevClock) -> Self {
        Self { clock: Mutex::new(clock), ..Default::default() }
    }
}

impl Chain {
    fn store_clock(&self, clock: &DevClock) -> Result<(), SequencerError> {
        let mut w = self.store.writer()?;
        w.set_clock(clock)?;
        w.commit()?;
        Ok(())
    }

    /// The timestamp of a block opened now after a parent with `parent_ts`: the
    /// requested next timestamp (until a block closes with it), else the wall clock
    /// moved by the development offset; never before the parent's.
    pub(crate) fn next_block_timestamp(&self, parent_ts: u64) -> u64 {
        let clock = self.dev.clock.lock();
        if let Some(ts) = clock.next_timestamp {
            return ts.max(parent_ts);
        }
        let now = crate::builder::now_secs();
        let moved = (now as i64).saturating_add(clock.offset_secs).max(0) as u64;
        moved.max(parent_ts)
    }

    /// A block with `timestamp` was closed: a requested next timestamp it carries is
    /// used up, and later blocks go on from there (as in hardhat and anvil).
    pub(crate) fn block_closed_at(&self, timestamp: u64) {
        let mut clock = self.dev.clock.lock();
        let Some(ts) = clock.next_timestamp else { return };
        if timestamp < ts {
            return;
        }
        let now = crate::builder::now_secs();
        let next = DevClock { offset_secs: ts as i64 - now as i64, next_timestamp: None };
        match self.store_clock(&next) {
            Ok(()) => *clock = next,
            Err(e) => tracing::error!("recording the development clock failed: {e}"),
        }
    }

    /// `evm_increaseTime`: moves the clock of blocks opened from now on by `secs`;
    /// returns the total offset.
    pub fn increase_time(&self, secs: u64) -> Result<i64, SequencerError> {
        let mut clock = self.dev.clock.lock();
        let mut next = *clock;
        next.offset_secs = next.offset_secs.saturating_add(secs.min(i64::MAX as u64) as i64);
        self.store_clock(&next)?;
        *clock = next;
        Ok(next.offset_secs)
    }

    /// `evm_setNextBlockTimestamp`: the next block opened has timestamp `ts`, which must
    /// be after the newest block's.
    pub fn set_next_timestamp(&self, ts: u64) -> Result<(), SequencerError> {
        let parent = self.tip().timestamp;
        if ts <= parent {
            return Err(SequencerError::Invalid(format!(
                "timestamp {ts} is lower than or equal to the previous block's timestamp {parent}"
            )));
        }
        let mut clock = self.dev.clock.lock();
        let mut next = *clock;
        next.next_timestamp = Some(ts);
        self.store_clock(&next)?;
        *clock = next;
        Ok(())
    }

    /// Asks the builder to close a block now (an empty one if nothing is pending), and
    /// waits (at most `timeout`) until it is sealed; returns its number.
    pub fn mine(&self, timeout: Duration) -> Result<u64, SequencerError> {
        let deadline = Instant::now() + timeout;
        let ticket = {
            let mut r = self.dev.requests.lock();
            r.asked += 1;
            r.asked
        };
        let number = {
            let mut r = self.dev.requests.lock();
            while r.served < ticket {
                if self.dev.served.wait_until(&mut r, deadline).timed_out() {
                    return Err(SequencerError::Invalid("no block was mined in time (is the builder running?)".into()));
                }
            }
            r.last
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if !self.wait_sealed_for(number, left) {
            return Err(SequencerError::Invalid(format!("block {number} was not sealed in time")));
        }
        Ok(number)
    }

    /// Block requests waiting for the builder.
    pub(crate) fn block_requested(&self) -> bool {
        let r = self.dev.requests.lock();
        r.asked > r.served
    }

    /// The builder closed block `number` for every request made so far.
    pub(crate) fn block_request_served(&self, number: u64) {
        let mut r = self.dev.requests.lock();
        r.served = r.asked;
        r.last = number;
        self.dev.served.notify_all();
    }
}

impl Chain {
    fn dev_only(&self, what: &str) -> Result<(), SequencerError> {
        match self.config.dev {
            true => Ok(()),
            false => {
                Err(SequencerError::Invalid(format!("{what} is only possible on a development chain (cairn dev)")))
            }
        }
    }

    /// Applies `edit` as a block of its own (see the module documentation) and waits
    /// (at most `timeout`) until that block is sealed; returns its number.
    pub fn edit_state(&self, edit: DevEdit, timeout: Duration) -> Result<u64, SequencerError> {
        self.dev_only("editing state")?;
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let mut edits = self.dev.edits.lock();
            if edits.len() >= MAX_PENDING_EDITS {
                return Err(SequencerError::Invalid(format!(
                    "too many state edits are waiting (limit {MAX_PENDING_EDITS})"
                )));
            }
            edits.push_back((edit, reply));
        }
        match answer.recv_timeout(timeout) {
            Ok(Ok(number)) => Ok(number),
            Ok(Err(reason)) => Err(SequencerError::Invalid(reason)),
            Err(_) => {
                Err(SequencerError::Invalid("the state edit was not applied in time (is the builder running?)".into()))
            }
        }
    }

    /// State edits waiting for the builder.
    pub(crate) fn edits_requested(&self) -> bool {
        !self.dev.edits.lock().is_empty()
    }

    /// Makes the edit block for every waiting edit (the builder calls this between
    /// blocks) and answers their requests. An edit that cannot be applied (a nonce
    /// lowered) is answered with the reason and left out; the others still apply.
    pub(crate) fn make_edit_block(&self) {
        let waiting: Vec<(DevEdit, EditReply)> = self.dev.edits.lock().drain(..).collect();
        if waiting.is_empty() {
            return;
        }
        let mut block = crate::BlockInProgress::open(self);
        let view = self.pending_view();
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
        let config = crate::BuilderConfig { empty_blocks: true, ..Default::default() };
        let result = block
            .close(self, &config)
            .and_then(|_| match self.wait_sealed(number) {
                Ok(_) => Ok(number),
                Err(e) => Err(e),
            })
            .map_err(|e| format!("the edit block {number} failed: {e}"));
        if result.is_ok() && !nonces.is_empty() {
            self.pool.lock().on_nonces_used(nonces);
        }
        match &result {
            Ok(_) => tracing::info!(number, edits = applied.len(), "state edit block sealed"),
            Err(e) => tracing::error!("{e}"),
        }
        for (_, reply) in applied {
            let _ = reply.send(result.clone());
        }
    }

    /// `anvil_impersonateAccount`: transactions from `address` are accepted without a
    /// key ([`cairn_primitives::impersonation`]).
    pub fn impersonate(&self, address: Address) -> Result<(), SequencerError> {
        self.dev_only("impersonating an account")?;
        let mut who = self.dev.impersonation.lock();
        if who.accounts.len() >= MAX_IMPERSONATED && !who.accounts.contains(&address) {
            return Err(SequencerError::Invalid(format!(
                "at most {MAX_IMPERSONATED} accounts are impersonated at once"
            )));
        }
        who.accounts.insert(address);
        Ok(())
    }

    /// `anvil_stopImpersonatingAccount`.
    pub fn stop_impersonating(&self, address: Address) -> Result<(), SequencerError> {
        self.dev_only("impersonating an account")?;
        self.dev.impersonation.lock().accounts.remove(&address);
        Ok(())
    }

    /// `anvil_autoImpersonateAccount`: every account may be sent from without a key.
    pub fn auto_impersonate(&self, on: bool) -> Result<(), SequencerError> {
        self.dev_only("impersonating accounts")?;
        self.dev.impersonation.lock().auto = on;
        Ok(())
    }

    /// Whether transactions from `address` are accepted without a key now.
    pub fn is_impersonated(&self, address: Address) -> bool {
        if !self.config.dev {
            return false;
        }
        let who = self.dev.impersonation.lock();
        who.auto || who.accounts.contains(&address)
    }
}

/// The change `edit` makes on top of `view` as already changed by `before`.
fn edit_diff(view: &dyn StateView, before: &StateDiff, edit: &DevEdit) -> Result<StateDiff, String> {
    let address = edit.address();
    let read = |e: cairn_primitives::StateError| e.to_string();
    let earlier = before.accounts.get(&address);
    let mut info = match earlier {
        Some(change) => change.info.unwrap_or_default(),
        None => view.account(address).map_err(read)?.unwrap_or_default(),
    };
    let mut diff = StateDiff::default();
    let mut change = AccountChange::default();
    match edit {
        DevEdit::Balance(_, balance) => info.balance = *balance,
        DevEdit::Nonce(_, nonce) => {
            if *nonce < info.nonce {
                return Err(format!(
                    "the nonce of {address} cannot be lowered (it is {}, {nonce} was asked for)",
                    info.nonce
                ));
            }
            info.nonce = *nonce;
        }
        DevEdit::Code(_, code) => {
            info.code_hash = match code.is_empty() {
                true => KECCAK_EMPTY,
                false => {
                    let hash = keccak256(code);
                    diff.code.insert(hash, code.clone());
                    hash
                }
            };
        }
        DevEdit::Storage { slot, value, .. } => {
            change.storage.insert(*slot, *value);
            let earlier_value = earlier.and_then(|c| c.storage.get(slot).copied());
            let wiped = earlier.is_some_and(|c| c.storage_wiped);
            if earlier_value.is_none() && !wiped {
                let old = view.storage(address, *slot).map_err(read)?;
                if !old.is_zero() {
                    change.original.insert(*slot, old);
                }
            }
        }
    }
    change.info = Some(info);
    diff.accounts.insert(address, change);
    Ok(diff)
}
