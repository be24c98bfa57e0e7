//! Byte layouts of stored values. Fixed-width where possible; RLP otherwise.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use cairn_primitives::AccountState;

use crate::StoreError;

/// An account in the flat state together with its storage root (trie data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRecord {
    pub state: AccountState,
    pub storage_root: B256,
}

impl AccountRecord {
    pub const LEN: usize = 8 + 32 + 32 + 32;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.state.nonce.to_be_bytes());
        out[8..40].copy_from_slice(&self.state.balance.to_be_bytes::<32>());
        out[40..72].copy_from_slice(self.state.code_hash.as_slice());
        out[72..].copy_from_slice(self.storage_root.as_slice());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != Self::LEN {
            return Err(StoreError::Corrupt {
                what: "account",
                reason: format!("length {} (expected {})", bytes.len(), Self::LEN),
            });
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[..8]);
        Ok(Self {
            state: AccountState {
                nonce: u64::from_be_bytes(nonce),
                balance: U256::from_be_slice(&bytes[8..40]),
                code_hash: B256::from_slice(&bytes[40..72]),
            },
            storage_root: B256::from_slice(&bytes[72..]),
        })
    }
}

/// Where a transaction sits in the chain, with its raw bytes and sender.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct TxRecord {
    pub block_number: u64,
    pub index: u64,
    pub sender: Address,
    pub raw: Bytes,
}

pub(crate) fn hashed_address(address: Address) -> [u8; 32] {
    keccak256(address).0
}

pub(crate) fn storage_key(hashed_address: &[u8; 32], slot: U256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address);
    key[32..].copy_from_slice(keccak256(slot.to_be_bytes::<32>()).as_slice());
    key
}

pub(crate) fn storage_range(hashed_address: &[u8; 32]) -> std::ops::RangeInclusive<[u8; 64]> {
    let mut lo = [0u8; 64];
    lo[..32].copy_from_slice(hashed_address);
    let mut hi = [0xffu8; 64];
    hi[..32].copy_from_slice(hashed_address);
    lo..=hi
}

pub(crate) fn rlp_decode<T: alloy_rlp::Decodable>(what: &'static str, mut bytes: &[u8]) -> Result<T, StoreError> {
    T::decode(&mut bytes).map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
}

/// A history key: the state key (`keccak(address)`, or `keccak(address) ++ keccak(slot)`)
/// followed by the block number, big-endian, so one key's changes sort by block.
pub(crate) fn history_key<const N: usize>(key: &[u8], block: u64) -> [u8; N] {
    let mut out = [0u8; N];
    out[..N - 8].copy_from_slice(key);
    out[N - 8..].copy_from_slice(&block.to_be_bytes());
    out
}

pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] =
        bytes.try_into().map_err(|_| StoreError::Corrupt { what, reason: format!("{} bytes, not 8", bytes.len()) })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A block's changeset: `u32` account count, the hashed addresses, then the 64-byte
/// storage keys. Returns the two key lists.
pub(crate) fn split_changeset(bytes: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { what: "changeset", reason: reason.into() };
    let (count, rest) = bytes.split_first_chunk::<4>().ok_or_else(|| corrupt("shorter than its header"))?;
    let accounts = u32::from_be_bytes(*count) as usize * 32;
    if rest.len() < accounts || !(rest.len() - accounts).is_multiple_of(64) {
        return Err(corrupt("length does not match its key counts"));
    }
    Ok(rest.split_at(accounts))
}
