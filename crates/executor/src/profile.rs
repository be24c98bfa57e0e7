//! How parallel a block is at most: each transaction's time and the locations it read
//! and wrote, measured in a sequential run, and the schedule an executor with perfect
//! knowledge of those would get on `k` threads (`cairn bench exec --dependencies`).
//!
//! A transaction depends on the last earlier one that wrote a location it read (an
//! account's nonce, balance and code together, or one storage slot; the beneficiary's
//! account is left out, its fees being paid as deltas). In the schedule a free thread
//! takes the first transaction in block order whose dependencies are done: no
//! re-execution, no validation, no merge, every transaction as fast as in the
//! sequential run. What it gives is a bound set by the block's own dependencies.

use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, B256, U256};
use cairn_primitives::{RecoveredTx, StateDiff, StateView};
use revm::context::result::ResultAndState;
use revm::state::{Account, EvmState};
use std::time::{Duration, Instant};

use crate::diff::DiffBuilder;
use crate::sequential::{execute_while, SeqDb, Shortcut};
use crate::{BlockContext, ExecError, Mode, Offsets};

/// A block's measured dependencies and ideal schedules.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyProfile {
    /// Transactions included.
    pub included: usize,
    /// Their execution times, summed (each the fastest of the runs).
    pub busy: Duration,
    /// The longest chain of dependent transactions, in time.
    pub critical_path: Duration,
    /// The ideal schedule's length on each of the thread counts asked for.
    pub makespans: Vec<(usize, Duration)>,
    /// The same with balance credits as deltas: an account a transaction only credited
    /// (its balance grew, nothing else changed, it did not send the transaction) is
    /// neither read nor waited for by that transaction, only by later full reads.
    pub makespans_with_deltas: Vec<(usize, Duration)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Location {
    Account(Address),
    Slot(Address, U256),
}

/// One included transaction's time and locations.
#[derive(Default)]
struct Measured {
    took: Duration,
    reads: Vec<Location>,
    writes: Vec<Location>,
    /// Accounts only credited (in `reads` and `writes` too).
    credited: Vec<Location>,
}

impl Measured {
    /// The transaction as an executor with balance deltas sees it.
    fn with_deltas(&self) -> Measured {
        let reads = self.reads.iter().filter(|l| !self.credited.contains(l)).copied().collect();
        Measured { took: self.took, reads, writes: self.writes.clone(), credited: Vec::new() }
    }
}

/// The sequential loop's hooks, timing each transaction and collecting its locations.
struct Profiler<'p> {
    base: &'p dyn StateView,
    txs: &'p [RecoveredTx],
    beneficiary: Address,
    started: Option<Instant>,
    /// Every account's nonce, balance and code hash after the transactions so far
    /// (where they loaded it).
    known: HashMap<Address, Option<(u64, U256, B256)>>,
    measured: Vec<(usize, Measured)>,
}

impl Profiler<'_> {
    fn before(&mut self, address: Address) -> Option<(u64, U256, B256)> {
        match self.known.get(&address) {
            Some(known) => *known,
            // A failed read counts as a change: the profile only errs towards conflict.
            None => self.base.account(address).ok().flatten().map(|a| (a.nonce, a.balance, a.code_hash)),
        }
    }
}

fn fields(account: &Account) -> Option<(u64, U256, B256)> {
    (!account.is_selfdestructed() && !account.is_loaded_as_not_existing_not_touched()).then_some((
        account.info.nonce,
        account.info.balance,
        account.info.code_hash,
    ))
}

impl<'a> Shortcut<'a> for Profiler<'_> {
    fn offer(&mut self, _offset: usize, _db: &mut SeqDb<'a>) -> Option<(ResultAndState, Option<(Address, Account)>)> {
        self.started = Some(Instant::now());
        None
    }

    fn included(&mut self, offset: usize, state: &EvmState) {
        let took = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
        let mut m = Measured { took, ..Measured::default() };
        for (address, account) in state {
            if *address == self.beneficiary {
                continue;
            }
            m.reads.push(Location::Account(*address));
            let after = fields(account);
            let before = self.before(*address);
            if account.is_touched() && (after != before || account.is_created()) {
                m.writes.push(Location::Account(*address));
                let credited = match (before, after) {
                    (Some((n0, b0, c0)), Some((n1, b1, c1))) => n0 == n1 && c0 == c1 && b1 > b0,
                    _ => false,
                };
                if credited && !account.is_created() && self.txs.get(offset).is_some_and(|t| t.signer() != *address) {
                    m.credited.push(Location::Account(*address));
                }
            }
            self.known.insert(*address, after);
            for (slot, value) in &account.storage {
                m.reads.push(Location::Slot(*address, *slot));
                if value.is_changed() {
                    m.writes.push(Location::Slot(*address, *slot));
                }
            }
        }
        self.measured.push((offset, m));
    }

    fn finish(&mut self, _diff: DiffBuilder, _db: &mut SeqDb<'a>, _gas_used: u64) -> StateDiff {
        StateDiff::default()
    }
}

/// Profiles `txs` (`runs` sequential runs, each transaction's fastest time kept) and
/// schedules them ideally on each of `threads`.
pub fn dependency_profile(
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    runs: usize,
    threads: &[usize],
) -> Result<DependencyProfile, ExecError> {
    let mut best: Vec<(usize, Measured)> = Vec::new();
    for run in 0..runs.max(1) {
        let mut profiler = Profiler {
            base: state,
            txs,
            beneficiary: block.beneficiary,
            started: None,
            known: HashMap::default(),
            measured: Vec::with_capacity(txs.len()),
        };
        execute_while(state, block, txs, Mode::Building, Offsets::default(), None, Some(&mut profiler))?;
        if run == 0 {
            best = profiler.measured;
        } else {
            for ((_, kept), (_, new)) in best.iter_mut().zip(&profiler.measured) {
                kept.took = kept.took.min(new.took);
            }
        }
    }
    let measured: Vec<Measured> = best.into_iter().map(|(_, m)| m).collect();
    let deltas: Vec<Measured> = measured.iter().map(Measured::with_deltas).collect();
    Ok(DependencyProfile {
        included: measured.len(),
        busy: measured.iter().map(|m| m.took).sum(),
        critical_path: schedule(&measured, None),
        makespans: threads.iter().map(|&k| (k, schedule(&measured, Some(k)))).collect(),
        makespans_with_deltas: threads.iter().map(|&k| (k, schedule(&deltas, Some(k)))).collect(),
    })
}

/// The transactions each one waits for: for every location it reads, the last earlier
/// one that wrote it, and the ones that credited it since (credits commute).
fn dependencies(measured: &[Measured]) -> Vec<Vec<usize>> {
    let mut last: HashMap<Location, (Option<usize>, Vec<usize>)> = HashMap::default();
    let mut deps = Vec::with_capacity(measured.len());
    for (j, m) in measured.iter().enumerate() {
        let mut mine: Vec<usize> = Vec::new();
        for l in &m.reads {
            if let Some((writer, credits)) = last.get(l) {
                mine.extend(writer.iter().chain(credits));
            }
        }
        mine.sort_unstable();
        mine.dedup();
        deps.push(mine);
        for l in &m.writes {
            let entry = last.entry(*l).or_default();
            match m.credited.contains(l) {
                true => entry.1.push(j),
                false => *entry = (Some(j), Vec::new()),
            }
        }
    }
    deps
}

/// The length of the schedule on `threads` (`None`: as many as it takes) in which a
/// free thread always takes the first transaction in block order whose dependencies are
/// done.
fn schedule(measured: &[Measured], threads: Option<usize>) -> Duration {
    let deps = dependencies(measured);
    let n = measured.len();
    let mut finish: Vec<Option<Duration>> = vec![None; n];
    let Some(threads) = threads else {
        for j in 0..n {
            let ready = deps[j].iter().filter_map(|&d| finish[d]).max().unwrap_or_default();
            finish[j] = Some(ready + measured[j].took);
        }
        return finish.iter().flatten().max().copied().unwrap_or_default();
    };
    // Each thread's end of its current transaction.
    let mut busy: Vec<Duration> = vec![Duration::ZERO; threads.max(1)];
    let mut now = Duration::ZERO;
    let mut first_open = 0;
    let mut left = n;
    while left > 0 {
        let mut took_one = false;
        for end in busy.iter_mut().filter(|end| **end <= now) {
            while first_open < n && finish[first_open].is_some() {
                first_open += 1;
            }
            let done = |d: &usize| finish[*d].is_some_and(|f| f <= now);
            let Some(j) = (first_open..n).find(|&j| finish[j].is_none() && deps[j].iter().all(done)) else { break };
            finish[j] = Some(now + measured[j].took);
            *end = now + measured[j].took;
            left -= 1;
            took_one = true;
        }
        if !took_one {
            // Nothing ready: wait for the next thread to finish.
            now = busy.iter().filter(|end| **end > now).min().copied().unwrap_or(now);
        }
    }
    busy.into_iter().max().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(ms: u64, reads: &[Location], writes: &[Location]) -> Measured {
        Measured {
            took: Duration::from_millis(ms),
            reads: reads.to_vec(),
            writes: writes.to_vec(),
            credited: Vec::new(),
        }
    }

    #[test]
    fn the_schedule_follows_dependencies_and_threads() {
        let (a, b) =
            (Location::Account(Address::repeat_byte(1)), Location::Slot(Address::repeat_byte(2), U256::from(1)));
        // Independent: two threads halve four equal transactions.
        let independent: Vec<Measured> = (0..4).map(|_| tx(10, &[], &[])).collect();
        assert_eq!(schedule(&independent, Some(2)), Duration::from_millis(20));
        assert_eq!(schedule(&independent, Some(1)), Duration::from_millis(40));
        assert_eq!(schedule(&independent, None), Duration::from_millis(10));
        // A chain through `a`, and one transaction beside it.
        let chain = vec![tx(10, &[a], &[a]), tx(10, &[a], &[a]), tx(5, &[b], &[]), tx(10, &[a], &[])];
        assert_eq!(schedule(&chain, None), Duration::from_millis(30));
        assert_eq!(schedule(&chain, Some(2)), Duration::from_millis(30));
        // Reading what nobody wrote before is no dependency; writing after is none.
        let later = vec![tx(10, &[b], &[]), tx(10, &[], &[b])];
        assert_eq!(schedule(&later, Some(2)), Duration::from_millis(10));
    }
}
