//! Revert-protected bundles: what a validator of a shared set started with `--execute
//! X,Y` does with a bundle wholly within the rollups it executes (`docs/SHARED.md`).
//!
//! The validator keeps such a bundle to itself (it is not relayed: a validator that does
//! not execute could not keep the promise) and, when it proposes, executes the bundle's
//! parts of each rollup after that rollup's transactions already in the block, exactly
//! as every follower will execute the decided block ([`crate::follow::simulate_parts`]).
//! If every part is included and succeeds, the bundle becomes one signed fragment of its
//! own whose `receiptsHash` commits to the parts' receipts (an *execution*
//! preconfirmation); otherwise it is dropped with the reason and never included.

use std::collections::HashMap;
use std::sync::Arc;

use alloy_primitives::{keccak256, Bytes, B256};
use cairn_primitives::{SignedFragment, StoredReceipt};

use crate::chain::{Chain, SequencerError};
use crate::follow::simulate_parts;

/// First byte of a protected bundle's admission record: `0xb2 ‖ deadline (ms since the
/// epoch, 8 bytes big-endian) ‖ RLP list of raw transactions`.
pub const PROTECTED_RECORD: u8 = 0xb2;
/// First byte of the record that ends a protected bundle that was dropped: `0xb3 ‖
/// bundle hash`.
pub const DROPPED_RECORD: u8 = 0xb3;
/// Most protected bundles waiting on one validator.
pub const MAX_PROTECTED: usize = 256;
/// Most bundle outcomes remembered (oldest forgotten first).
pub const MAX_OUTCOMES: usize = 4_096;

/// A bundle waiting for this validator's turn to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// keccak256 of the transaction hashes in the order the client gave them (as an
    /// unprotected bundle's hash).
    pub hash: B256,
    /// The raw transactions, grouped by namespace (ascending), each namespace's in the
    /// client's order: the order they take in the block.
    pub raws: Vec<Bytes>,
    /// Each transaction's namespace, as `raws`.
    pub namespaces: Vec<u64>,
    /// Dropped if not included by then (ms since the epoch).
    pub deadline_ms: u64,
}

impl Protected {
    /// A bundle of `(raw, namespace)` in the client's order.
    pub fn new(txs: Vec<(Bytes, u64)>, deadline_ms: u64) -> Self {
        let hash = keccak256(txs.iter().flat_map(|(raw, _)| keccak256(raw).0).collect::<Vec<u8>>());
        let mut txs = txs;
        txs.sort_by_key(|(_, ns)| *ns);
        let (raws, namespaces) = txs.into_iter().unzip();
        Self { hash, raws, namespaces, deadline_ms }
    }

    pub fn tx_hashes(&self) -> impl Iterator<Item = B256> + '_ {
        self.raws.iter().map(keccak256)
    }

    /// Its admission record ([`PROTECTED_RECORD`]): deadline, hash, and the raw
    /// transactions in block order.
    pub fn record(&self) -> Vec<u8> {
        let mut out = vec![PROTECTED_RECORD];
        out.extend_from_slice(&self.deadline_ms.to_be_bytes());
        out.extend_from_slice(self.hash.as_slice());
        alloy_rlp::Encodable::encode(&self.raws, &mut out);
        out
    }
}

/// `(deadline, hash, raws)` of a [`PROTECTED_RECORD`].
pub fn parse_protected_record(record: &[u8]) -> Option<(u64, B256, Vec<Bytes>)> {
    let (&kind, rest) = record.split_first()?;
    if kind != PROTECTED_RECORD || rest.len() < 40 {
        return None;
    }
    let deadline = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let hash = B256::from_slice(&rest[8..40]);
    let mut body = &rest[40..];
    let raws = <Vec<Bytes> as alloy_rlp::Decodable>::decode(&mut body).ok()?;
    Some((deadline, hash, raws))
}

/// The record of a dropped protected bundle.
pub fn dropped_record(hash: &B256) -> Vec<u8> {
    let mut out = vec![DROPPED_RECORD];
    out.extend_from_slice(hash.as_slice());
    out
}

pub fn parse_dropped_record(record: &[u8]) -> Option<B256> {
    match record.split_first() {
        Some((&DROPPED_RECORD, rest)) if rest.len() == 32 => Some(B256::from_slice(rest)),
        _ => None,
    }
}

/// A part of an executed bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedPart {
    pub hash: B256,
    pub namespace: u64,
    /// Its position in the sequencer block.
    pub position: u64,
    pub receipt: StoredReceipt,
}

/// What became of a protected bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleOutcome {
    /// In the signed fragment `fragment` of block `height`, every part succeeding.
    Executed { height: u64, fragment: Arc<SignedFragment>, parts: Vec<ExecutedPart> },
    /// Never included, and why.
    Dropped(String),
}

/// Why a bundle was not executed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not now (a rollup's execution lags): try again later.
    NotReady(String),
    /// Never: drop it.
    Refused(String),
}

/// Executes `bundle` in block `height` (of `timestamp`) after the block's transactions
/// so far, `block` (`(raw, namespace)`, in block order), on each of its rollups' chain
/// in `executors`: every part's receipt, in the bundle's order, if every part is
/// included and succeeds.
pub fn execute_bundle(
    executors: &HashMap<u64, Arc<Chain>>,
    height: u64,
    timestamp: u64,
    block: &[(Bytes, u64)],
    bundle: &Protected,
) -> Result<Vec<StoredReceipt>, Verdict> {
    let mut receipts = Vec::with_capacity(bundle.raws.len());
    let mut at = 0;
    while at < bundle.raws.len() {
        let ns = bundle.namespaces[at];
        let end = at + bundle.namespaces[at..].iter().take_while(|n| **n == ns).count();
        let Some(chain) = executors.get(&ns) else {
            return Err(Verdict::Refused(format!("this node does not execute rollup {ns}")));
        };
        let prior: Vec<Bytes> = block.iter().filter(|(_, n)| *n == ns).map(|(raw, _)| raw.clone()).collect();
        let outcomes = match simulate_parts(chain, height, timestamp, &prior, &bundle.raws[at..end]) {
            Ok(o) => o,
            Err(e @ SequencerError::Invalid(_)) if chain.tip().number + 1 != height => {
                return Err(Verdict::NotReady(format!("rollup {ns}: {e}")))
            }
            Err(e) => return Err(Verdict::Refused(format!("rollup {ns}: {e}"))),
        };
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let hash = keccak256(&bundle.raws[at + i]);
            match outcome {
                Ok(r) if r.success => receipts.push(r),
                Ok(_) => return Err(Verdict::Refused(format!("bundle transaction {hash} reverted"))),
                Err(reason) => {
                    return Err(Verdict::Refused(format!("bundle transaction {hash} cannot be included: {reason}")))
                }
            }
        }
        at = end;
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_grouping_keeps_each_namespace_order() {
        let txs = vec![
            (Bytes::from_static(b"\x02b1"), 7u64),
            (Bytes::from_static(b"\x02a1"), 3),
            (Bytes::from_static(b"\x02b2"), 7),
            (Bytes::from_static(b"\x02a2"), 3),
        ];
        let p = Protected::new(txs.clone(), 42);
        assert_eq!(p.namespaces, vec![3, 3, 7, 7]);
        assert_eq!(p.raws[0], txs[1].0);
        assert_eq!(p.raws[1], txs[3].0);
        assert_eq!(p.raws[2], txs[0].0);
        let expected = keccak256(txs.iter().flat_map(|(r, _)| keccak256(r).0).collect::<Vec<u8>>());
        assert_eq!(p.hash, expected);
        let (deadline, hash, raws) = parse_protected_record(&p.record()).expect("parses");
        assert_eq!((deadline, hash, raws), (42, p.hash, p.raws.clone()));
        assert_eq!(parse_dropped_record(&dropped_record(&p.hash)), Some(p.hash));
        assert!(parse_protected_record(&dropped_record(&p.hash)).is_none());
        assert!(parse_dropped_record(&p.record()).is_none());
    }
}
