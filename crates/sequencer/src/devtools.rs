//! What `cairn dev`'s test-control methods move: the development clock (time offset,
//! next block timestamp; kept in the store so it survives restarts) and requests to
//! close a block now (`evm_mine`). Each is an ordinary, ordered change of the chain:
//! a block closed on request is a block like any other, and a time change only affects
//! blocks opened after it (a block's timestamp is signed into its fragments).

use cairn_storage::DevClock;
use parking_lot::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{Chain, SequencerError};

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
