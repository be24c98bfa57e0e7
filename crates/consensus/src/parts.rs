//! Streamed proposals: reassembling a proposer's parts, and the checks a proposal must
//! pass before its block is executed. Pure logic, no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};

use alloy_primitives::{keccak256, B256};
use cairn_primitives::fragment::FragmentRecord;
use malachitebft_core_types::Round;

use crate::context::{Block, Height, ProposalPart, ValidatorAddress, Validators};
use crate::scheme::{proposal_hash, EcdsaSignature};

/// Most proposal streams being reassembled at once (older ones are dropped first).
pub const MAX_STREAMS: usize = 64;
/// Most parts of one stream (an `Init`, the fragments, a `Fin`).
pub const MAX_PARTS: usize = 8_192;

/// A complete proposal as its proposer streamed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub height: Height,
    pub round: Round,
    pub pol_round: Round,
    pub proposer: ValidatorAddress,
    pub block: Block,
    pub fragments: Vec<FragmentRecord>,
    pub signature: EcdsaSignature,
}

/// The parts of one stream, by sequence number, until its end is known and none is
/// missing.
#[derive(Debug, Default)]
struct Stream {
    parts: BTreeMap<u64, ProposalPart>,
    /// Sequence number of the stream's end marker.
    end: Option<u64>,
}

/// Streams being reassembled, keyed by (publisher, stream id).
#[derive(Debug)]
pub struct Streams<K> {
    streams: HashMap<K, Stream>,
    order: VecDeque<K>,
}

impl<K> Default for Streams<K> {
    fn default() -> Self {
        Self { streams: HashMap::new(), order: VecDeque::new() }
    }
}

impl<K: Clone + Eq + std::hash::Hash> Streams<K> {
    /// Takes one message of stream `key`: a part (`Some`) or the end marker (`None`) at
    /// `sequence`. Returns the stream's parts, in order, once it is complete.
    pub fn insert(
        &mut self,
        key: K,
        sequence: u64,
        part: Option<ProposalPart>,
    ) -> Result<Option<Vec<ProposalPart>>, String> {
        if sequence >= MAX_PARTS as u64 {
            self.remove(&key);
            return Err(format!("a proposal stream has more than {MAX_PARTS} parts"));
        }
        if !self.streams.contains_key(&key) {
            while self.streams.len() >= MAX_STREAMS {
                let Some(oldest) = self.order.pop_front() else { break };
                self.streams.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        let stream = self.streams.entry(key.clone()).or_default();
        match part {
            Some(part) => {
                stream.parts.insert(sequence, part);
            }
            None => stream.end = Some(sequence),
        }
        let complete = stream.end.is_some_and(|end| {
            stream.parts.len() as u64 == end && stream.parts.keys().next_back() == end.checked_sub(1).as_ref()
        });
        if !complete {
            return Ok(None);
        }
        let stream = self.remove(&key).unwrap_or_default();
        Ok(Some(stream.parts.into_values().collect()))
    }

    fn remove(&mut self, key: &K) -> Option<Stream> {
        self.order.retain(|k| k != key);
        self.streams.remove(key)
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Puts a complete stream's parts together: an `Init`, fragments, a `Fin`, in that
/// order.
pub fn assemble(parts: Vec<ProposalPart>) -> Result<Assembled, String> {
    let mut parts = parts.into_iter();
    let Some(ProposalPart::Init { height, round, pol_round, proposer }) = parts.next() else {
        return Err("a proposal stream must start with its Init part".into());
    };
    let mut fragments = Vec::new();
    for part in parts {
        match part {
            ProposalPart::Fragment(f) => fragments.push(f.0),
            ProposalPart::Fin { block, signature } => {
                return Ok(Assembled { height, round, pol_round, proposer, block, fragments, signature })
            }
            ProposalPart::Init { .. } => return Err("a proposal stream has a second Init part".into()),
        }
    }
    Err("a proposal stream must end with its Fin part".into())
}

/// Everything about a proposal that can be checked without executing it: the proposer
/// is the one of its round, it signed the block and every fragment, and the fragments
/// are exactly the block's, in its context.
pub fn check(chain_id: u64, validators: &Validators, p: &Assembled) -> Result<(), String> {
    let block = p.block.block();
    let round = p.round.as_u32().ok_or("a proposal needs a round")?;
    if block.chain_id != chain_id {
        return Err(format!("the block is for chain {}, not {chain_id}", block.chain_id));
    }
    if block.height != p.height.0 {
        return Err(format!("the block is for height {}, the proposal for {}", block.height, p.height));
    }
    // A block keeps the round it was first proposed in when it is proposed again.
    if block.round > round || (p.pol_round.is_nil() && block.round != round) {
        return Err(format!("the block was made in round {}, the proposal is for round {round}", block.round));
    }
    let expected = validators.proposer(p.height.0, round).address;
    if p.proposer != expected || (block.proposer != p.proposer.0 && p.pol_round.is_nil()) {
        return Err(format!(
            "{} proposed at height {} round {round}, whose proposer is {expected}",
            p.proposer, p.height
        ));
    }
    let hash = proposal_hash(chain_id, p.height.0, round, p.pol_round.as_i64(), p.block.hash());
    if !p.signature.is_by(&hash, p.proposer.0) {
        return Err(format!("the block is not signed by its proposer {}", p.proposer));
    }
    if p.fragments.len() != block.fragments.len() {
        return Err(format!("{} fragments streamed, the block names {}", p.fragments.len(), block.fragments.len()));
    }
    let mut txs = Vec::with_capacity(block.transactions.len());
    for (i, (f, named)) in p.fragments.iter().zip(&block.fragments).enumerate() {
        let signed = f.signed(chain_id);
        if signed.fragment.hash() != *named {
            return Err(format!("fragment {i} is not the one the block names"));
        }
        signed.verify(Some(block.proposer)).map_err(|e| format!("fragment {i}: {e}"))?;
        if f.height != block.height
            || f.timestamp != block.timestamp
            || f.base_fee != block.base_fee
            || f.prevrandao != block.prevrandao
            || f.beneficiary != block.beneficiary
            || f.gas_limit != block.gas_limit
        {
            return Err(format!("fragment {i} has another block context than the block"));
        }
        txs.extend(f.txs.iter().map(keccak256));
    }
    if txs != block.transactions {
        return Err("the fragments' transactions are not the block's".into());
    }
    Ok(())
}

/// The transactions of a synced block match the ones it names.
pub fn check_synced(block: &cairn_primitives::SequencerBlock, txs: &[alloy_primitives::Bytes]) -> Result<(), String> {
    let hashes: Vec<B256> = txs.iter().map(keccak256).collect();
    if hashes != block.transactions {
        return Err(format!("{} transactions sent for a block of {}", hashes.len(), block.transactions.len()));
    }
    Ok(())
}
