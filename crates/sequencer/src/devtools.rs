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

use alloy_primitives::Address;
use cairn_storage::DevClock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::chain::{Chain, SequencerError};
use crate::devstate::{DevEdit, EditReply, MAX_IMPERSONATED, MAX_PENDING_EDITS};

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
        let now = crate::fragments::now_secs();
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
        let now = crate::fragments::now_secs();
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

    /// Takes every waiting edit request (the builder makes them a block).
    pub(crate) fn take_edits(&self) -> Vec<(DevEdit, EditReply)> {
        self.dev.edits.lock().drain(..).collect()
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
