//! Preconfirmation fragments and the rules that hold a sequencer to them.
//!
//! While a block is open the builder emits fragments: a run of consecutive transactions
//! of that block, with the block context they executed in, the gas used up to their
//! end, and commitments to their receipts and to the state diff they produced. Each is
//! signed by the sequencer's key as EIP-712 typed data (domain [`DOMAIN_NAME`],
//! version [`DOMAIN_VERSION`], the chain id; type [`FRAGMENT_TYPE`]), so anyone who knows
//! the sequencer's address can check one with viem's `verifyTypedData` or alloy.
//! Fragments chain: each names the hash of the previous one (across blocks too).
//!
//! Everything here is pure: [`find_equivocation`] decides whether two signed fragments
//! prove that their signer promised two incompatible things; [`check_promise`] decides
//! whether a sealed block broke a fragment's promise.

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, Signature, B256, U256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

use crate::StoredReceipt;

/// EIP-712 domain name of Cairn preconfirmations.
pub const DOMAIN_NAME: &str = "Cairn Preconfirmation";
/// EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";
/// The EIP-712 type a fragment is signed as (its `encodeType`).
pub const FRAGMENT_TYPE: &str = "Fragment(uint64 height,uint32 index,bytes32 parent,uint64 timestamp,uint64 baseFee,uint32 firstTx,bytes32[] transactions,uint64 gasUsed,bytes32 receiptsHash,bytes32 stateDiffHash)";

mod typed {
    alloy_sol_types::sol! {
        struct Fragment {
            uint64 height;
            uint32 index;
            bytes32 parent;
            uint64 timestamp;
            uint64 baseFee;
            uint32 firstTx;
            bytes32[] transactions;
            uint64 gasUsed;
            bytes32 receiptsHash;
            bytes32 stateDiffHash;
        }
    }
}

/// The EIP-712 domain of a chain's preconfirmations (no verifying contract, no salt).
pub fn domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(DOMAIN_NAME.into()),
        version: Some(DOMAIN_VERSION.into()),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: None,
        salt: None,
    }
}

/// What a sequencer promises about a run of transactions of an open block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fragment {
    /// The chain (part of the EIP-712 domain, not of the struct).
    pub chain_id: u64,
    /// The block these transactions will be in.
    pub height: u64,
    /// Position of this fragment in its block, from 0.
    pub index: u32,
    /// Hash of the previous fragment (of this block, or the last one of an earlier
    /// block); zero for the chain's first fragment.
    pub parent: B256,
    /// The block's timestamp and base fee (the same in every fragment of a block).
    pub timestamp: u64,
    pub base_fee: u64,
    /// Block position of the first transaction.
    pub first_tx: u32,
    /// Hashes of the transactions, in block order from `first_tx`.
    pub transactions: Vec<B256>,
    /// The block's cumulative gas used after the last of them.
    pub gas_used: u64,
    /// [`receipts_hash`] of their receipts.
    pub receipts_hash: B256,
    /// [`crate::StateDiff::commitment`] of the state changes they made.
    pub state_diff_hash: B256,
}

impl Fragment {
    /// The EIP-712 signing hash: what is signed, and the fragment's identity (the
    /// `parent` of the next fragment).
    pub fn hash(&self) -> B256 {
        let typed = typed::Fragment {
            height: self.height,
            index: self.index,
            parent: self.parent,
            timestamp: self.timestamp,
            baseFee: self.base_fee,
            firstTx: self.first_tx,
            transactions: self.transactions.clone(),
            gasUsed: self.gas_used,
            receiptsHash: self.receipts_hash,
            stateDiffHash: self.state_diff_hash,
        };
        typed.eip712_signing_hash(&domain(self.chain_id))
    }

    /// Block position just past the last transaction.
    pub fn end_tx(&self) -> u64 {
        u64::from(self.first_tx) + self.transactions.len() as u64
    }

    /// Block position of `tx`, if this fragment holds it.
    pub fn position_of(&self, tx: &B256) -> Option<u64> {
        self.transactions.iter().position(|h| h == tx).map(|i| u64::from(self.first_tx) + i as u64)
    }
}

/// keccak256 over the concatenated keccak256 hashes of the receipts' EIP-2718
/// encodings (status, cumulative gas, bloom, logs), in order.
pub fn receipts_hash(receipts: &[StoredReceipt]) -> B256 {
    let hashes: Vec<B256> = receipts.iter().map(|r| keccak256(r.envelope().encoded_2718())).collect();
    hash_list(&hashes)
}

/// keccak256 of 32-byte hashes laid end to end (also EIP-712's encoding of `bytes32[]`).
pub fn hash_list(hashes: &[B256]) -> B256 {
    let mut buf = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        buf.extend_from_slice(h.as_slice());
    }
    keccak256(buf)
}

/// A signed fragment as it is kept and sent: its signed fields, the block context that
/// is not among them, and the raw transactions (the fragment log's record, and a
/// consensus proposal part).
#[derive(Debug, Clone, PartialEq, Eq, alloy_rlp::RlpEncodable, alloy_rlp::RlpDecodable)]
pub struct FragmentRecord {
    pub height: u64,
    pub index: u32,
    pub parent: B256,
    pub timestamp: u64,
    pub base_fee: u64,
    pub first_tx: u32,
    pub gas_used: u64,
    pub receipts_hash: B256,
    pub state_diff_hash: B256,
    pub signature: Bytes,
    /// Block context not in the signed fields.
    pub prevrandao: B256,
    pub beneficiary: Address,
    pub gas_limit: u64,
    /// Raw EIP-2718 transactions, in order.
    pub txs: Vec<Bytes>,
}

impl FragmentRecord {
    pub fn signed(&self, chain_id: u64) -> SignedFragment {
        SignedFragment {
            fragment: Fragment {
                chain_id,
                height: self.height,
                index: self.index,
                parent: self.parent,
                timestamp: self.timestamp,
                base_fee: self.base_fee,
                first_tx: self.first_tx,
                transactions: self.txs.iter().map(keccak256).collect(),
                gas_used: self.gas_used,
                receipts_hash: self.receipts_hash,
                state_diff_hash: self.state_diff_hash,
            },
            signature: self.signature.clone(),
        }
    }
}

/// A fragment with its signature (65 bytes: r, s, v as 27/28), as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedFragment {
    #[serde(flatten)]
    pub fragment: Fragment,
    pub signature: Bytes,
}

/// Why fragments could not be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("fragment {hash} has an invalid signature: {reason}")]
    BadSignature { hash: B256, reason: String },
    #[error("the fragments are signed by different keys ({first} and {second}): not evidence against either")]
    DifferentSigners { first: Address, second: Address },
    #[error("fragment {hash} is signed by {signer}, not by the expected sequencer {expected}")]
    UnexpectedSigner { hash: B256, signer: Address, expected: Address },
    #[error("the fragments are for different chains ({first} and {second})")]
    DifferentChains { first: u64, second: u64 },
    #[error("the fragment is for block {fragment}, the block given is {block}")]
    DifferentHeight { fragment: u64, block: u64 },
}

impl SignedFragment {
    /// Pairs a fragment with the signature of its [`Fragment::hash`].
    pub fn new(fragment: Fragment, signature: &Signature) -> Self {
        Self { fragment, signature: Bytes::copy_from_slice(&signature.as_bytes()) }
    }

    /// The address that signed this fragment.
    pub fn signer(&self) -> Result<Address, FragmentError> {
        let hash = self.fragment.hash();
        let bad = |reason: String| FragmentError::BadSignature { hash, reason };
        let sig = Signature::try_from(self.signature.as_ref()).map_err(|e| bad(e.to_string()))?;
        sig.recover_address_from_prehash(&hash).map_err(|e| bad(e.to_string()))
    }

    /// The signer, checked against `expected` when given.
    pub fn verify(&self, expected: Option<Address>) -> Result<Address, FragmentError> {
        let signer = self.signer()?;
        match expected {
            Some(expected) if expected != signer => {
                Err(FragmentError::UnexpectedSigner { hash: self.fragment.hash(), signer, expected })
            }
            _ => Ok(signer),
        }
    }
}

/// How two fragments contradict each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Conflict {
    /// Two different fragments at the same height and index.
    SamePosition,
    /// Two different fragments that extend the same parent.
    SameParent,
    /// The second is the next fragment of the first's block by index but does not
    /// extend it.
    BrokenChain,
    /// Fragments of one block that promise overlapping transaction positions, a gap
    /// between consecutive fragments, or a different block context (timestamp or base
    /// fee).
    Inconsistent,
}

/// Proof that one key signed two incompatible fragments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Equivocation {
    pub conflict: Conflict,
    pub signer: Address,
    pub chain_id: u64,
    /// Hashes of the two fragments, the earlier position first.
    pub first: B256,
    pub second: B256,
    pub detail: String,
}

/// Decides whether `a` and `b` prove equivocation: both validly signed by the same key
/// for the same chain, and incompatible. `Ok(None)`: they are consistent (or the same
/// fragment). An error says why they cannot be evidence at all.
pub fn find_equivocation(a: &SignedFragment, b: &SignedFragment) -> Result<Option<Equivocation>, FragmentError> {
    let (sa, sb) = (a.signer()?, b.signer()?);
    if sa != sb {
        return Err(FragmentError::DifferentSigners { first: sa, second: sb });
    }
    let (a, b) = (&a.fragment, &b.fragment);
    if a.chain_id != b.chain_id {
        return Err(FragmentError::DifferentChains { first: a.chain_id, second: b.chain_id });
    }
    let (a, b) = if (a.height, a.index) <= (b.height, b.index) { (a, b) } else { (b, a) };
    let (ha, hb) = (a.hash(), b.hash());
    if ha == hb {
        return Ok(None);
    }
    let found = |conflict, detail: String| {
        Ok(Some(Equivocation { conflict, signer: sa, chain_id: a.chain_id, first: ha, second: hb, detail }))
    };
    let at = |f: &Fragment| format!("height {} index {}", f.height, f.index);
    if (a.height, a.index) == (b.height, b.index) {
        return found(Conflict::SamePosition, format!("two different fragments at {}", at(a)));
    }
    if a.parent == b.parent {
        return found(Conflict::SameParent, format!("fragments at {} and {} both extend {}", at(a), at(b), a.parent));
    }
    if a.height != b.height {
        return Ok(None);
    }
    if b.index == a.index + 1 && b.parent != ha {
        return found(
            Conflict::BrokenChain,
            format!("the fragment at {} extends {}, not the fragment at {} ({ha})", at(b), b.parent, at(a)),
        );
    }
    if (a.timestamp, a.base_fee) != (b.timestamp, b.base_fee) {
        return found(
            Conflict::Inconsistent,
            format!(
                "block {} is promised with timestamp {} and base fee {} at index {}, timestamp {} and base fee {} at index {}",
                a.height, a.timestamp, a.base_fee, a.index, b.timestamp, b.base_fee, b.index
            ),
        );
    }
    let gap = b.index == a.index + 1 && u64::from(b.first_tx) != a.end_tx();
    if u64::from(b.first_tx) < a.end_tx() || gap {
        return found(
            Conflict::Inconsistent,
            format!(
                "in block {}, index {} promises positions {}..{} and index {} starts at position {}",
                a.height,
                a.index,
                a.first_tx,
                a.end_tx(),
                b.index,
                b.first_tx
            ),
        );
    }
    Ok(None)
}

/// The parts of a sealed block a promise is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SealedBlock {
    pub number: u64,
    pub timestamp: u64,
    pub base_fee: u64,
    pub gas_used: u64,
    /// Transaction hashes in block order.
    pub transactions: Vec<B256>,
    /// keccak256 of each receipt's EIP-2718 encoding, in block order, when known.
    pub receipts: Option<Vec<B256>>,
}

/// A sealed block that does not keep a fragment's promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenPromise {
    pub signer: Address,
    pub fragment: B256,
    pub block: u64,
    pub detail: String,
}

/// Decides whether `block` (the sealed block at the fragment's height) kept the promise
/// of `fragment`: same timestamp and base fee, the fragment's transactions at exactly
/// the promised positions, at least the promised gas, and (when the block's receipts
/// are given) the same receipts.
pub fn check_promise(fragment: &SignedFragment, block: &SealedBlock) -> Result<Option<BrokenPromise>, FragmentError> {
    let signer = fragment.signer()?;
    let f = &fragment.fragment;
    if f.height != block.number {
        return Err(FragmentError::DifferentHeight { fragment: f.height, block: block.number });
    }
    let broken = |detail: String| Ok(Some(BrokenPromise { signer, fragment: f.hash(), block: block.number, detail }));
    if f.timestamp != block.timestamp {
        return broken(format!("promised timestamp {}, sealed with {}", f.timestamp, block.timestamp));
    }
    if f.base_fee != block.base_fee {
        return broken(format!("promised base fee {}, sealed with {}", f.base_fee, block.base_fee));
    }
    let start = f.first_tx as usize;
    for (i, promised) in f.transactions.iter().enumerate() {
        match block.transactions.get(start + i) {
            Some(sealed) if sealed == promised => {}
            Some(sealed) => {
                return broken(format!("position {} was promised to {promised}, sealed with {sealed}", start + i))
            }
            None => {
                return broken(format!(
                    "position {} was promised to {promised}, the block has {} transactions",
                    start + i,
                    block.transactions.len()
                ))
            }
        }
    }
    if block.gas_used < f.gas_used {
        return broken(format!(
            "{} gas used was promised by position {}, the block used {}",
            f.gas_used,
            f.end_tx(),
            block.gas_used
        ));
    }
    if let Some(receipts) = &block.receipts {
        let end = (f.end_tx() as usize).min(receipts.len());
        let got = hash_list(&receipts[start.min(end)..end]);
        if got != f.receipts_hash {
            return broken(format!(
                "the receipts of positions {}..{} hash to {got}, {} was promised",
                start,
                f.end_tx(),
                f.receipts_hash
            ));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rust_type_string_is_the_signed_one() {
        use alloy_sol_types::SolStruct;
        assert_eq!(typed::Fragment::eip712_encode_type(), FRAGMENT_TYPE);
    }
}
