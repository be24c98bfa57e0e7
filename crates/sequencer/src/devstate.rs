//! What `cairn dev`'s test controls keep (`devtools` has the methods that use it):
//! the development clock, block requests, waiting state edits, impersonated senders;
//! and the state change one edit makes (pure).

use alloy_primitives::{keccak256, Address, Bytes, U256};
use cairn_primitives::{AccountChange, StateDiff, StateView, KECCAK_EMPTY};
use cairn_storage::DevClock;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashSet, VecDeque};
use std::sync::mpsc;

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

pub(crate) type EditReply = mpsc::SyncSender<Result<u64, String>>;

/// Who may send without a key: the listed accounts, or anyone (`auto`).
#[derive(Debug, Default)]
pub(crate) struct Impersonation {
    pub(crate) accounts: HashSet<Address>,
    pub(crate) auto: bool,
}

/// Block requests: how many were asked for, how many the builder closed, and the
/// number of the last block it closed for one.
#[derive(Debug, Default)]
pub(crate) struct BlockRequests {
    pub(crate) asked: u64,
    pub(crate) served: u64,
    pub(crate) last: u64,
}

#[derive(Debug, Default)]
pub(crate) struct DevControls {
    pub(crate) clock: Mutex<DevClock>,
    pub(crate) requests: Mutex<BlockRequests>,
    pub(crate) served: Condvar,
    pub(crate) edits: Mutex<VecDeque<(DevEdit, EditReply)>>,
    pub(crate) impersonation: Mutex<Impersonation>,
}

impl DevControls {
    pub(crate) fn new(clock: DevClock) -> Self {
        Self { clock: Mutex::new(clock), ..Default::default() }
    }
}

/// The change `edit` makes on top of `view` as already changed by `before`.
pub(crate) fn edit_diff(view: &dyn StateView, before: &StateDiff, edit: &DevEdit) -> Result<StateDiff, String> {
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
