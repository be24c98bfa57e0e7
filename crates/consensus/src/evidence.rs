//! Evidence of misbehaviour that consensus sees, in a form anyone can check again with
//! nothing but the signatures (EIP-712 typed data, secp256k1: an EVM contract can check
//! it with `ecrecover`).
//!
//! - [`ConsensusEvidence`]: two votes of one validator for the same (height, round,
//!   kind) with different values, or two proposals of one proposer for the same
//!   (height, round). Malachite finds them; [`ConsensusEvidence::check`] proves them.
//! - [`FragmentWatch`]: every signed fragment a node sees on the network for the height
//!   it is at, by signer; two of one signer that cannot both hold (same position, a
//!   broken chain, another block context: `find_equivocation`) are reported once.
//!
//! Pure logic, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy_primitives::{keccak256, Address, Bytes, B256};
use cairn_primitives::fragment::{find_equivocation, FragmentRecord};
use malachitebft_core_types::{NilOrVal, SignedMessage, VoteType};
use serde::{Deserialize, Serialize};

use crate::context::{CairnContext, Proposal, Validators, Vote};
use crate::scheme::{proposal_hash, vote_hash, EcdsaSignature};

/// Most fragments [`FragmentWatch`] keeps for one height (further ones are not watched).
pub const MAX_WATCHED: usize = 16_384;

/// A vote as signed: EIP-712 `Vote(uint8 kind,uint64 height,uint32 round,bytes32 value)`
/// (`kind` 0 prevote, 1 precommit; `value` zero for nil).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedVote {
    pub kind: u8,
    pub height: u64,
    pub round: u32,
    pub value: B256,
    pub signature: Bytes,
}

/// A proposal as signed: EIP-712 `Proposal(uint64 height,uint32 round,int64 polRound,bytes32 value)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedProposal {
    pub height: u64,
    pub round: u32,
    pub pol_round: i64,
    pub value: B256,
    pub signature: Bytes,
}

/// Two signed consensus messages of one validator that an honest one never signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "conflict", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ConsensusEvidence {
    /// Two votes of the same kind for one (height, round), for different values.
    DoubleVote { chain_id: u64, votes: [SignedVote; 2] },
    /// Two proposals for one (height, round) with different values.
    DoubleProposal { chain_id: u64, proposals: [SignedProposal; 2] },
}

/// What a piece of [`ConsensusEvidence`] proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusProof {
    /// `doubleVote` or `doubleProposal`.
    pub conflict: &'static str,
    pub signer: Address,
    pub chain_id: u64,
    pub height: u64,
    pub round: u32,
    /// The EIP-712 signing hashes of the two messages, as given.
    pub first: B256,
    pub second: B256,
    pub detail: String,
}

impl ConsensusProof {
    /// The evidence's id: keccak256 of the two signing hashes, lower first.
    pub fn id(&self) -> B256 {
        pair_id(self.first, self.second)
    }
}

/// keccak256 of two hashes, lower first: the id of the evidence they make.
pub fn pair_id(a: B256, b: B256) -> B256 {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    keccak256([a.as_slice(), b.as_slice()].concat())
}

fn signer_of(signature: &Bytes, hash: &B256) -> Result<Address, String> {
    EcdsaSignature::from_slice(signature).and_then(|s| s.recover(hash)).map_err(|e| e.to_string())
}

impl ConsensusEvidence {
    pub fn chain_id(&self) -> u64 {
        match self {
            Self::DoubleVote { chain_id, .. } | Self::DoubleProposal { chain_id, .. } => *chain_id,
        }
    }

    /// Checks that the two messages are signed by one key and conflict; returns what
    /// they prove. Nothing else is trusted: the signer is recovered from the signatures.
    pub fn check(&self) -> Result<ConsensusProof, String> {
        match self {
            Self::DoubleVote { chain_id, votes: [a, b] } => {
                if a.kind > 1 || b.kind > 1 {
                    return Err("a vote's kind is 0 (prevote) or 1 (precommit)".into());
                }
                if (a.kind, a.height, a.round) != (b.kind, b.height, b.round) {
                    return Err("the two votes are not of the same kind, height and round".into());
                }
                if a.value == b.value {
                    return Err("the two votes are for the same value".into());
                }
                let hash = |v: &SignedVote| vote_hash(*chain_id, v.kind == 1, v.height, v.round, v.value);
                let (ha, hb) = (hash(a), hash(b));
                let signer = same_signer((&a.signature, &ha), (&b.signature, &hb))?;
                let kind = if a.kind == 1 { "precommits" } else { "prevotes" };
                Ok(ConsensusProof {
                    conflict: "doubleVote",
                    signer,
                    chain_id: *chain_id,
                    height: a.height,
                    round: a.round,
                    first: ha,
                    second: hb,
                    detail: format!(
                        "{signer} {kind} for {} and {} at height {} round {}",
                        a.value, b.value, a.height, a.round
                    ),
                })
            }
            Self::DoubleProposal { chain_id, proposals: [a, b] } => {
                if (a.height, a.round) != (b.height, b.round) {
                    return Err("the two proposals are not for the same height and round".into());
                }
                if (a.value, a.pol_round) == (b.value, b.pol_round) {
                    return Err("the two proposals are the same".into());
                }
                let hash = |p: &SignedProposal| proposal_hash(*chain_id, p.height, p.round, p.pol_round, p.value);
                let (ha, hb) = (hash(a), hash(b));
                let signer = same_signer((&a.signature, &ha), (&b.signature, &hb))?;
                Ok(ConsensusProof {
                    conflict: "doubleProposal",
                    signer,
                    chain_id: *chain_id,
                    height: a.height,
                    round: a.round,
                    first: ha,
                    second: hb,
                    detail: format!(
                        "{signer} proposed {} and {} at height {} round {}",
                        a.value, b.value, a.height, a.round
                    ),
                })
            }
        }
    }

    /// The evidence Malachite found of a double vote.
    pub fn double_vote(
        chain_id: u64,
        (a, b): &(SignedMessage<CairnContext, Vote>, SignedMessage<CairnContext, Vote>),
    ) -> Self {
        let vote = |v: &SignedMessage<CairnContext, Vote>| SignedVote {
            kind: u8::from(v.message.kind == VoteType::Precommit),
            height: v.message.height.0,
            round: v.message.round.as_u32().unwrap_or(u32::MAX),
            value: match &v.message.value {
                NilOrVal::Nil => B256::ZERO,
                NilOrVal::Val(id) => id.0,
            },
            signature: Bytes::copy_from_slice(&v.signature.0),
        };
        Self::DoubleVote { chain_id, votes: [vote(a), vote(b)] }
    }

    /// The evidence Malachite found of a double proposal.
    pub fn double_proposal(
        chain_id: u64,
        (a, b): &(SignedMessage<CairnContext, Proposal>, SignedMessage<CairnContext, Proposal>),
    ) -> Self {
        let proposal = |p: &SignedMessage<CairnContext, Proposal>| SignedProposal {
            height: p.message.height.0,
            round: p.message.round.as_u32().unwrap_or(u32::MAX),
            pol_round: p.message.pol_round.as_i64(),
            value: p.message.value.hash(),
            signature: Bytes::copy_from_slice(&p.signature.0),
        };
        Self::DoubleProposal { chain_id, proposals: [proposal(a), proposal(b)] }
    }
}

fn same_signer(a: (&Bytes, &B256), b: (&Bytes, &B256)) -> Result<Address, String> {
    let (sa, sb) = (signer_of(a.0, a.1)?, signer_of(b.0, b.1)?);
    if sa != sb {
        return Err(format!("the two messages are signed by different keys ({sa}, {sb})"));
    }
    Ok(sa)
}

/// The signed fragments a node has seen for the height it is at, by signer and index,
/// to find two of one validator that cannot both hold (see the module documentation).
#[derive(Debug, Default)]
pub struct FragmentWatch {
    by_signer: HashMap<Address, BTreeMap<u32, (B256, FragmentRecord)>>,
    count: usize,
    reported: HashSet<B256>,
}

impl FragmentWatch {
    /// Forgets everything (a new height).
    pub fn clear(&mut self) {
        self.by_signer.clear();
        self.count = 0;
        self.reported.clear();
    }

    /// Takes a fragment seen on the network. Returns two fragments of its signer (the
    /// one seen earlier first) that prove it equivocated, once per pair. Fragments not
    /// signed by a validator are ignored.
    pub fn observe(
        &mut self,
        chain_id: u64,
        validators: &Validators,
        record: &FragmentRecord,
    ) -> Option<[FragmentRecord; 2]> {
        let signed = record.signed(chain_id);
        let hash = signed.fragment.hash();
        let signer = signed.signer().ok()?;
        validators.set().get(&signer)?;
        let seen = self.by_signer.entry(signer).or_default();
        if seen.get(&record.index).is_some_and(|(h, _)| *h == hash) {
            return None;
        }
        // The fragment at the same index, the neighbours it must chain with, and the
        // first one (the block context).
        let mut candidates: Vec<&(B256, FragmentRecord)> = Vec::with_capacity(4);
        candidates.extend(seen.get(&record.index));
        candidates.extend(record.index.checked_sub(1).and_then(|i| seen.get(&i)));
        candidates.extend(record.index.checked_add(1).and_then(|i| seen.get(&i)));
        candidates.extend(seen.values().next());
        let mut found = None;
        for (other_hash, other) in candidates {
            if let Ok(Some(_)) = find_equivocation(&other.signed(chain_id), &signed) {
                if self.reported.insert(pair_id(*other_hash, hash)) {
                    found = Some([other.clone(), record.clone()]);
                    break;
                }
            }
        }
        if self.count < MAX_WATCHED && !seen.contains_key(&record.index) {
            seen.insert(record.index, (hash, record.clone()));
            self.count += 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::ValidatorSet;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use cairn_primitives::network::NetworkGenesis;

    const CHAIN: u64 = 31337;

    fn set(keys: &[&PrivateKeySigner]) -> Validators {
        let validators = keys.iter().map(|k| NetworkGenesis::validator_of(k, 1)).collect();
        let genesis = NetworkGenesis {
            chain_id: CHAIN,
            timestamp: 1,
            validators,
            dev_accounts: 0,
            alloc: Default::default(),
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
        };
        Validators::new(ValidatorSet::new(&genesis).expect("set")).expect("validators")
    }

    fn fragment(key: &PrivateKeySigner, index: u32, parent: B256, tx: u8) -> FragmentRecord {
        let mut r = FragmentRecord {
            height: 5,
            index,
            parent,
            timestamp: 100,
            base_fee: 7,
            first_tx: index,
            gas_used: 21_000 * (u64::from(index) + 1),
            receipts_hash: B256::repeat_byte(1),
            state_diff_hash: B256::repeat_byte(2),
            signature: Bytes::new(),
            prevrandao: B256::repeat_byte(3),
            beneficiary: Address::ZERO,
            gas_limit: 30_000_000,
            txs: vec![Bytes::from(vec![tx; 8])],
        };
        let hash = r.signed(CHAIN).fragment.hash();
        r.signature = Bytes::copy_from_slice(&key.sign_hash_sync(&hash).expect("sign").as_bytes());
        r
    }

    fn hash(r: &FragmentRecord) -> B256 {
        r.signed(CHAIN).fragment.hash()
    }

    #[test]
    fn a_watch_reports_two_fragments_at_one_position_once_and_ignores_a_consistent_chain() {
        let (key, outsider) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let validators = set(&[&key]);
        let mut watch = FragmentWatch::default();
        let f0 = fragment(&key, 0, B256::ZERO, 1);
        let f1 = fragment(&key, 1, hash(&f0), 2);
        assert_eq!(watch.observe(CHAIN, &validators, &f0), None);
        assert_eq!(watch.observe(CHAIN, &validators, &f1), None, "a chain is consistent");
        assert_eq!(watch.observe(CHAIN, &validators, &f1), None, "seen again");
        let other = fragment(&key, 1, hash(&f0), 9);
        assert_eq!(watch.observe(CHAIN, &validators, &other), Some([f1.clone(), other.clone()]));
        assert_eq!(watch.observe(CHAIN, &validators, &other), None, "reported once");
        // A fragment at index 2 that does not extend the fragment at 1 seen first.
        let broken = fragment(&key, 2, B256::repeat_byte(9), 3);
        let [a, b] = watch.observe(CHAIN, &validators, &broken).expect("broken chain");
        assert_eq!((a.index, b.index), (1, 2));
        // Not a validator: ignored, whatever it signs.
        let x = fragment(&outsider, 0, B256::ZERO, 1);
        let y = fragment(&outsider, 0, B256::ZERO, 2);
        assert_eq!(watch.observe(CHAIN, &validators, &x), None);
        assert_eq!(watch.observe(CHAIN, &validators, &y), None);
        watch.clear();
        assert_eq!(watch.observe(CHAIN, &validators, &other), None, "a new height starts empty");
    }

    fn vote(key: &PrivateKeySigner, kind: u8, round: u32, value: B256) -> SignedVote {
        let hash = vote_hash(CHAIN, kind == 1, 7, round, value);
        let signature = Bytes::copy_from_slice(&key.sign_hash_sync(&hash).expect("sign").as_bytes());
        SignedVote { kind, height: 7, round, value, signature }
    }

    #[test]
    fn consensus_evidence_is_proven_only_by_two_conflicting_messages_of_one_key() {
        let (key, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let (x, y) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let double = |a, b| ConsensusEvidence::DoubleVote { chain_id: CHAIN, votes: [a, b] };
        let proof = double(vote(&key, 1, 0, x), vote(&key, 1, 0, y)).check().expect("double precommit");
        assert_eq!((proof.signer, proof.conflict, proof.height, proof.round), (key.address(), "doubleVote", 7, 0));
        assert_eq!(proof.id(), double(vote(&key, 1, 0, y), vote(&key, 1, 0, x)).check().expect("swapped").id());
        // Nil and a value conflict too.
        assert!(double(vote(&key, 0, 2, B256::ZERO), vote(&key, 0, 2, y)).check().is_ok());
        for (e, why) in [
            (double(vote(&key, 1, 0, x), vote(&key, 1, 0, x)), "same value"),
            (double(vote(&key, 0, 0, x), vote(&key, 1, 0, y)), "same kind"),
            (double(vote(&key, 1, 0, x), vote(&key, 1, 1, y)), "same kind, height and round"),
            (double(vote(&key, 1, 0, x), vote(&other, 1, 0, y)), "different keys"),
        ] {
            let err = e.check().expect_err(why);
            assert!(err.contains(why), "{err} / {why}");
        }
        // Altered after signing: the recovered signer changes, so the pair proves nothing.
        let mut forged = vote(&key, 1, 0, y);
        forged.round = 0;
        forged.value = B256::repeat_byte(3);
        assert!(double(vote(&key, 1, 0, x), forged).check().is_err());
        // The JSON form round-trips and names its conflict.
        let e = double(vote(&key, 1, 0, x), vote(&key, 1, 0, y));
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["conflict"], "doubleVote");
        assert_eq!(json["chainId"], CHAIN);
        assert_eq!(serde_json::from_value::<ConsensusEvidence>(json).expect("parse"), e);
    }

    /// What Malachite hands over (its signed votes) becomes evidence that checks.
    #[test]
    fn malachite_double_votes_convert_to_evidence_that_checks() {
        use crate::context::{BlockId, Height, ValidatorAddress};
        use malachitebft_core_types::Round;
        let key = PrivateKeySigner::random();
        let signed = |value: B256| {
            let vote = Vote {
                kind: VoteType::Prevote,
                height: Height(7),
                round: Round::new(2),
                value: NilOrVal::Val(BlockId(value)),
                validator: ValidatorAddress(key.address()),
                extension: None,
            };
            let hash = vote_hash(CHAIN, false, 7, 2, value);
            SignedMessage::new(vote, EcdsaSignature::sign(&key, &hash).expect("sign"))
        };
        let pair = (signed(B256::repeat_byte(1)), signed(B256::repeat_byte(2)));
        let proof = ConsensusEvidence::double_vote(CHAIN, &pair).check().expect("proof");
        assert_eq!((proof.signer, proof.height, proof.round, proof.conflict), (key.address(), 7, 2, "doubleVote"));
    }

    #[test]
    fn a_double_proposal_is_two_signed_proposals_of_one_round() {
        let key = PrivateKeySigner::random();
        let proposal = |value: B256, pol_round: i64| {
            let hash = proposal_hash(CHAIN, 4, 1, pol_round, value);
            let signature = Bytes::copy_from_slice(&key.sign_hash_sync(&hash).expect("sign").as_bytes());
            SignedProposal { height: 4, round: 1, pol_round, value, signature }
        };
        let e = |a, b| ConsensusEvidence::DoubleProposal { chain_id: CHAIN, proposals: [a, b] };
        let proof = e(proposal(B256::repeat_byte(1), -1), proposal(B256::repeat_byte(2), -1)).check().expect("proof");
        assert_eq!((proof.conflict, proof.signer), ("doubleProposal", key.address()));
        assert!(e(proposal(B256::repeat_byte(1), -1), proposal(B256::repeat_byte(1), -1)).check().is_err());
    }
}
