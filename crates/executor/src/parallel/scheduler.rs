//! The Block-STM collaborative scheduler (Gelashvili et al. 2022, section 4): two
//! shared indices hand out execution and validation tasks in transaction order, with
//! per-transaction status and dependency lists so that a transaction that read an
//! aborted write waits for its writer instead of re-running on a guess.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::mv::{Incarnation, TxIdx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    Execute(TxIdx, Incarnation),
    Validate(TxIdx, Incarnation),
}

pub(crate) struct Scheduler {
    len: usize,
    execution_idx: AtomicUsize,
    validation_idx: AtomicUsize,
    /// Bumped whenever an index moves back, so `check_done` can tell a stable snapshot.
    decrease_cnt: AtomicUsize,
    num_active_tasks: AtomicUsize,
    done: AtomicBool,
    status: Vec<Mutex<(Incarnation, Status)>>,
    dependents: Vec<Mutex<Vec<TxIdx>>>,
}

impl Scheduler {
    pub fn new(len: usize) -> Self {
        Self {
            len,
            execution_idx: AtomicUsize::new(0),
            validation_idx: AtomicUsize::new(0),
            decrease_cnt: AtomicUsize::new(0),
            num_active_tasks: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            status: (0..len).map(|_| Mutex::new((0, Status::ReadyToExecute))).collect(),
            dependents: (0..len).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    pub fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Stops every worker (a fatal error elsewhere).
    pub fn halt(&self) {
        self.done.store(true, Ordering::Release);
    }

    fn decrease_execution_idx(&self, target: TxIdx) {
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target: TxIdx) {
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(Ordering::SeqCst);
        if self.execution_idx.load(Ordering::SeqCst).min(self.validation_idx.load(Ordering::SeqCst)) >= self.len
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done.store(true, Ordering::Release);
        }
    }

    /// Claims `tx` for execution if it is ready. Does not touch the active-task count.
    fn try_incarnate(&self, tx: TxIdx) -> Option<(TxIdx, Incarnation)> {
        if tx < self.len {
            let mut status = self.status[tx].lock();
            if status.1 == Status::ReadyToExecute {
                status.1 = Status::Executing;
                return Some((tx, status.0));
            }
        }
        None
    }

    fn next_version_to_execute(&self) -> Option<Task> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.len {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let idx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        match self.try_incarnate(idx) {
            Some((tx, inc)) => Some(Task::Execute(tx, inc)),
            None => {
                self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    fn next_version_to_validate(&self) -> Option<Task> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.len {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let idx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if idx < self.len {
            let status = self.status[idx].lock();
            if status.1 == Status::Executed {
                return Some(Task::Validate(idx, status.0));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// The next task, validation first when it lags behind execution.
    pub fn next_task(&self) -> Option<Task> {
        std::hint::spin_loop();
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate()
        } else {
            self.next_version_to_execute()
        }
    }

    /// `tx` read an estimate written by `blocking`: park `tx` until `blocking` has
    /// executed again. Returns false when `blocking` already finished (re-read now).
    pub fn add_dependency(&self, tx: TxIdx, blocking: TxIdx) -> bool {
        let mut dependents = self.dependents[blocking].lock();
        if self.status[blocking].lock().1 == Status::Executed {
            return false;
        }
        self.status[tx].lock().1 = Status::Aborting;
        dependents.push(tx);
        drop(dependents);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        true
    }

    fn set_ready_status(&self, tx: TxIdx) {
        let mut status = self.status[tx].lock();
        debug_assert_eq!(status.1, Status::Aborting);
        *status = (status.0 + 1, Status::ReadyToExecute);
    }

    pub fn finish_execution(&self, tx: TxIdx, incarnation: Incarnation, wrote_new_location: bool) -> Option<Task> {
        self.status[tx].lock().1 = Status::Executed;
        let dependents = std::mem::take(&mut *self.dependents[tx].lock());
        if let Some(min) = dependents.iter().min().copied() {
            for dependent in dependents {
                self.set_ready_status(dependent);
            }
            self.decrease_execution_idx(min);
        }
        if self.validation_idx.load(Ordering::SeqCst) > tx {
            if !wrote_new_location {
                // Only this transaction needs validating again; keep the task.
                return Some(Task::Validate(tx, incarnation));
            }
            self.decrease_validation_idx(tx);
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Claims the abort of incarnation `incarnation` of `tx`; only one validator wins.
    pub fn try_validation_abort(&self, tx: TxIdx, incarnation: Incarnation) -> bool {
        let mut status = self.status[tx].lock();
        if *status == (incarnation, Status::Executed) {
            status.1 = Status::Aborting;
            true
        } else {
            false
        }
    }

    pub fn finish_validation(&self, tx: TxIdx, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(tx);
            self.decrease_validation_idx(tx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > tx {
                if let Some((tx, inc)) = self.try_incarnate(tx) {
                    return Some(Task::Execute(tx, inc));
                }
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }
}
