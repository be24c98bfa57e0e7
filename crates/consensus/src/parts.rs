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

    /// The streams being received.
    pub fn keys(&self) -> Vec<K> {
        self.order.iter().cloned().collect()
    }

    /// The parts of stream `key` received so far from its start, without a gap.
    pub fn prefix(&self, key: &K) -> Vec<ProposalPart> {
        let Some(stream) = self.streams.get(key) else { return Vec::new() };
        stream
            .parts
            .iter()
            .enumerate()
            .take_while(|(i, (seq, _))| *i as u64 == **seq)
            .map(|(_, (_, p))| p.clone())
            .collect()
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
/// Returns its fragments as checked.
pub fn check(chain_id: u64, validators: &Validators, p: &Assembled) -> Result<Vec<HeldFragment>, String> {
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
    let mut chain: Vec<HeldFragment> = Vec::with_capacity(p.fragments.len());
    for (i, (f, named)) in p.fragments.iter().zip(&block.fragments).enumerate() {
        // A block may extend fragments of an earlier round's proposer of its height
        // (kept when that proposer failed): each is signed by a validator, and they
        // chain.
        let held = check_next(chain_id, validators, chain.last(), f).map_err(|e| format!("fragment {i}: {e}"))?;
        if held.hash != *named {
            return Err(format!("fragment {i} is not the one the block names"));
        }
        chain.push(held);
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
    Ok(chain)
}

/// A fragment that checked: its record, its hash and its signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFragment {
    pub record: FragmentRecord,
    pub hash: B256,
    pub signer: alloy_primitives::Address,
}

/// Checks `record` as the fragment after `prev` in one block's chain: signed by a
/// validator, at the next index and position, naming `prev` as its parent, in the same
/// block context.
pub fn check_next(
    chain_id: u64,
    validators: &Validators,
    prev: Option<&HeldFragment>,
    record: &FragmentRecord,
) -> Result<HeldFragment, String> {
    let signed = record.signed(chain_id);
    let hash = signed.fragment.hash();
    let signer = signed.signer().map_err(|e| e.to_string())?;
    if validators.set().get(&signer).is_none() {
        return Err(format!("fragment {hash} is signed by {signer}, not a validator"));
    }
    match prev {
        None if record.index != 0 || record.first_tx != 0 => {
            return Err(format!("a block's first fragment has index {} at position {}", record.index, record.first_tx))
        }
        Some(p) => {
            let r = &p.record;
            let context = (r.height, r.timestamp, r.base_fee, r.prevrandao, r.beneficiary, r.gas_limit);
            if (
                record.height,
                record.timestamp,
                record.base_fee,
                record.prevrandao,
                record.beneficiary,
                record.gas_limit,
            ) != context
            {
                return Err(format!("fragment {} has another block context than fragment {}", record.index, r.index));
            }
            if record.index != r.index + 1 || record.parent != p.hash {
                return Err(format!("fragment {} does not follow fragment {}", record.index, r.index));
            }
            if u64::from(record.first_tx) != u64::from(r.first_tx) + r.txs.len() as u64 {
                return Err(format!("fragment {} leaves a gap or overlaps fragment {}", record.index, r.index));
            }
        }
        None => {}
    }
    Ok(HeldFragment { record: record.clone(), hash, signer })
}

/// The rank of `signer`'s fragments at `height`: the first round it proposes in. A
/// fragment of an earlier round's proposer was promised first.
pub fn rank(validators: &Validators, height: u64, signer: alloy_primitives::Address) -> u64 {
    let total = validators.set().total_power();
    (0..total.min(u64::from(u32::MAX)))
        .find(|r| validators.proposer(height, *r as u32).address.0 == signer)
        .unwrap_or(u64::MAX)
}

/// Whether chain `a` of one height is preferred to chain `b`: at the first fragment
/// where they differ, `a`'s was signed by the proposer of an earlier round; when one is
/// a prefix of the other, the longer one. This is the order in which validators hold
/// chains of fragments: a proposal must not be less than the chain a validator holds.
pub fn preferred(validators: &Validators, height: u64, a: &[HeldFragment], b: &[HeldFragment]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x.hash != y.hash {
            return rank(validators, height, x.signer) < rank(validators, height, y.signer);
        }
    }
    a.len() > b.len()
}

/// The transactions of a synced block match the ones it names.
pub fn check_synced(block: &cairn_primitives::SequencerBlock, txs: &[alloy_primitives::Bytes]) -> Result<(), String> {
    let hashes: Vec<B256> = txs.iter().map(keccak256).collect();
    if hashes != block.transactions {
        return Err(format!("{} transactions sent for a block of {}", hashes.len(), block.transactions.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::FragmentPart;
    use crate::scheme::EcdsaSignature;
    use crate::validators::ValidatorSet;
    use alloy_primitives::{Address, Bytes};
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use cairn_primitives::network::NetworkGenesis;
    use cairn_primitives::SequencerBlock;

    const CHAIN: u64 = 31337;

    fn keys(n: usize) -> (Vec<PrivateKeySigner>, Validators) {
        let mut keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
        keys.sort_by_key(|k| k.address());
        let validators = keys.iter().map(|k| NetworkGenesis::validator_of(k, 1)).collect();
        let set = ValidatorSet::new(&NetworkGenesis {
            chain_id: CHAIN,
            timestamp: 1,
            validators,
            dev_accounts: 0,
            alloc: Default::default(),
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
        })
        .expect("set");
        (keys, Validators::new(set).expect("keys"))
    }

    fn fragment(key: &PrivateKeySigner, index: u32, parent: B256, txs: &[&[u8]]) -> FragmentRecord {
        let mut r = FragmentRecord {
            height: 5,
            index,
            parent,
            timestamp: 100,
            base_fee: 7,
            first_tx: index * txs.len() as u32,
            gas_used: 21_000,
            receipts_hash: B256::repeat_byte(1),
            state_diff_hash: B256::repeat_byte(2),
            signature: Bytes::new(),
            prevrandao: B256::repeat_byte(3),
            beneficiary: Address::ZERO,
            gas_limit: 30_000_000,
            txs: txs.iter().map(|t| Bytes::copy_from_slice(t)).collect(),
        };
        let hash = r.signed(CHAIN).fragment.hash();
        r.signature = Bytes::copy_from_slice(&key.sign_hash_sync(&hash).expect("sign").as_bytes());
        r
    }

    /// A proposal of height 5, round `round`, by its proposer, with two fragments.
    fn proposal(keys: &[PrivateKeySigner], validators: &Validators, round: u32) -> (Assembled, PrivateKeySigner) {
        let proposer = validators.proposer(5, round).address;
        let key = keys.iter().find(|k| k.address() == proposer.0).expect("key").clone();
        let f0 = fragment(&key, 0, B256::ZERO, &[b"a"]);
        let f1 = fragment(&key, 1, f0.signed(CHAIN).fragment.hash(), &[b"b"]);
        let block = SequencerBlock {
            chain_id: CHAIN,
            height: 5,
            round,
            parent: B256::repeat_byte(9),
            proposer: proposer.0,
            timestamp: 100,
            base_fee: 7,
            gas_limit: 30_000_000,
            prevrandao: B256::repeat_byte(3),
            beneficiary: Address::ZERO,
            transactions: vec![keccak256(b"a"), keccak256(b"b")],
            fragments: vec![f0.signed(CHAIN).fragment.hash(), f1.signed(CHAIN).fragment.hash()],
            executed: None,
            namespaces: None,
        };
        let block = Block::new(block);
        let signature = EcdsaSignature::sign(&key, &proposal_hash(CHAIN, 5, round, -1, block.hash())).expect("sign");
        let p = Assembled {
            height: Height(5),
            round: Round::new(round),
            pol_round: Round::Nil,
            proposer,
            block,
            fragments: vec![f0, f1],
            signature,
        };
        (p, key)
    }

    fn stream_of(p: &Assembled) -> Vec<ProposalPart> {
        let mut parts =
            vec![ProposalPart::Init { height: p.height, round: p.round, pol_round: p.pol_round, proposer: p.proposer }];
        parts.extend(p.fragments.iter().cloned().map(|f| ProposalPart::Fragment(FragmentPart(f))));
        parts.push(ProposalPart::Fin { block: p.block.clone(), signature: p.signature });
        parts
    }

    #[test]
    fn a_stream_completes_in_any_order_and_assembles() {
        let (keys, validators) = keys(4);
        let (p, _) = proposal(&keys, &validators, 0);
        let parts = stream_of(&p);
        let mut streams: Streams<u16> = Streams::default();
        // The end marker first, then the parts backwards: complete only with the last.
        assert_eq!(streams.insert(1, parts.len() as u64, None), Ok(None));
        for (i, part) in parts.iter().enumerate().rev() {
            let got = streams.insert(1, i as u64, Some(part.clone())).expect("within bounds");
            assert_eq!(got.is_some(), i == 0, "complete only once every part is in");
            if let Some(all) = got {
                assert_eq!(assemble(all).expect("assembles"), p);
            }
        }
        assert!(streams.is_empty());
        assert!(streams.insert(2, MAX_PARTS as u64, None).is_err(), "too many parts");
        for k in 0..(MAX_STREAMS as u16 + 10) {
            let _ = streams.insert(100 + k, 0, None);
        }
        assert!(streams.len() <= MAX_STREAMS, "bounded");
        // Out of place parts are refused.
        let mut bad = parts.clone();
        bad.swap(0, 1);
        assert!(assemble(bad).is_err());
        assert!(assemble(parts[..parts.len() - 1].to_vec()).is_err(), "no Fin");
    }

    #[test]
    fn only_the_rounds_proposer_with_its_own_fragments_passes() {
        let (keys, validators) = keys(4);
        let (p, key) = proposal(&keys, &validators, 1);
        assert_eq!(check(CHAIN, &validators, &p).map(|c| c.len()), Ok(2));
        assert!(check(CHAIN + 1, &validators, &p).is_err(), "another chain");

        // Signed by another validator than the round's proposer.
        let other = keys.iter().find(|k| k.address() != key.address()).expect("other");
        let mut q = p.clone();
        q.signature = EcdsaSignature::sign(other, &proposal_hash(CHAIN, 5, 1, -1, p.block.hash())).expect("sign");
        assert!(check(CHAIN, &validators, &q).expect_err("refused").contains("not signed"));
        // Claimed for a round whose proposer is someone else.
        let mut q = p.clone();
        q.round = Round::new(2);
        assert!(check(CHAIN, &validators, &q).is_err());
        // A fragment that is not the block's, or not its proposer's.
        let mut q = p.clone();
        q.fragments[1] = fragment(&key, 1, B256::ZERO, &[b"b"]);
        assert!(check(CHAIN, &validators, &q).expect_err("refused").contains("does not follow"));
        let mut q = p.clone();
        q.fragments[1] = fragment(&key, 1, p.fragments[0].signed(CHAIN).fragment.hash(), &[b"c"]);
        assert!(check(CHAIN, &validators, &q).expect_err("refused").contains("not the one the block names"));
        let outsider = PrivateKeySigner::random();
        let mut q = p.clone();
        q.fragments[0] = fragment(&outsider, 0, B256::ZERO, &[b"a"]);
        assert!(check(CHAIN, &validators, &q).expect_err("refused").contains("not a validator"));
        let mut q = p.clone();
        q.fragments.pop();
        assert!(check(CHAIN, &validators, &q).is_err(), "a fragment missing");
        let mut q = p.clone();
        q.fragments[0].prevrandao = B256::ZERO;
        assert!(check(CHAIN, &validators, &q).is_err(), "the fragment's context differs from the block's");
    }

    #[test]
    fn chains_of_an_earlier_rounds_proposer_are_preferred_and_longer_beats_shorter() {
        let (keys, validators) = keys(4);
        let key_of = |round: u32| {
            let a = validators.proposer(5, round).address.0;
            keys.iter().find(|k| k.address() == a).expect("key").clone()
        };
        let (first, second) = (key_of(0), key_of(1));
        assert_eq!(rank(&validators, 5, first.address()), 0);
        assert_eq!(rank(&validators, 5, second.address()), 1);
        // Round 0's proposer made three fragments and failed.
        let mut a: Vec<HeldFragment> = Vec::new();
        for i in 0..3u32 {
            let parent = a.last().map(|f| f.hash).unwrap_or_default();
            let r = fragment(&first, i, parent, &[format!("a{i}").as_bytes()]);
            a.push(check_next(CHAIN, &validators, a.last(), &r).expect("chains"));
        }
        // Round 1's proposer saw only two of them and went on with its own.
        let mut b = a[..2].to_vec();
        let r = fragment(&second, 2, b[1].hash, &[b"b2"]);
        b.push(check_next(CHAIN, &validators, b.last(), &r).expect("chains"));
        assert!(preferred(&validators, 5, &a, &b), "round 0's third fragment was promised first");
        assert!(!preferred(&validators, 5, &b, &a));
        // A chain that extends the held one is preferred; a prefix of it is not.
        assert!(preferred(&validators, 5, &a, &a[..2]));
        assert!(!preferred(&validators, 5, &a[..2], &a));
        assert!(!preferred(&validators, 5, &a, &a), "not preferred to itself");
        assert!(preferred(&validators, 5, &b, &[]));
        // Chain rules: an index skipped, or a fragment that names another parent.
        let skip = fragment(&first, 4, a[2].hash, &[b"x"]);
        assert!(check_next(CHAIN, &validators, a.last(), &skip).is_err());
        let orphan = fragment(&first, 3, B256::repeat_byte(9), &[b"x"]);
        assert!(check_next(CHAIN, &validators, a.last(), &orphan).is_err());
        let not_first = fragment(&first, 1, B256::ZERO, &[b"x"]);
        assert!(check_next(CHAIN, &validators, None, &not_first).is_err());
    }

    #[test]
    fn synced_transactions_must_be_the_blocks() {
        let (keys, validators) = keys(1);
        let (p, _) = proposal(&keys, &validators, 0);
        let txs = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        assert_eq!(check_synced(p.block.block(), &txs), Ok(()));
        assert!(check_synced(p.block.block(), &txs[..1]).is_err());
    }
}
