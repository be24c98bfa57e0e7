//! Finality: who decides that a proposed sequencer block is final.
//!
//! The builder ends each block as a *proposal* (a [`SequencerBlock`] with its signed
//! fragments); a [`Finality`] decides it, and only decided blocks reach the sealer.
//! [`Solo`] is a single sequencer (`cairn dev`): it decides at once every proposal that
//! extends its previous decision. A BFT implementation (Malachite, a validator set)
//! plugs in behind the same trait.
//!
//! Everything here is pure logic; nothing does I/O.

mod app;
mod codec;
mod context;
mod evidence;
mod parts;
mod scheme;
mod signing;
mod validators;

pub use app::{start, BftConfig, Engine, Fault, Host, Misbehaviour, MAX_SYNC_BATCH};
pub use codec::{BftCodec, CodecError};
pub use context::{
    Block, BlockId, CairnContext, FragmentPart, Height, Proposal, ProposalPart, ValidatorAddress, Validators, Vote,
};
pub use evidence::{
    pair_id, ConsensusEvidence, ConsensusProof, FragmentWatch, SignedProposal, SignedVote, MAX_WATCHED,
};
pub use parts::{assemble, check as check_proposal, Assembled, Streams};
pub use scheme::{domain, proposal_hash, vote_hash, EcdsaSignature, PublicKey, Secp256k1, PROPOSAL_TYPE, VOTE_TYPE};
pub use signing::{hash_proposal, hash_vote, Checker, Keys};
pub use validators::ValidatorSet;

use alloy_primitives::{Address, B256};
use cairn_primitives::SequencerBlock;
use parking_lot::Mutex;

/// Why a proposal was not decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    #[error("proposal for height {got} does not follow the last decided height {last}")]
    NotNext { last: u64, got: u64 },
    #[error("proposal for height {height} extends {got}, not the last decided block {expected}")]
    WrongParent { height: u64, expected: B256, got: B256 },
    #[error("proposal for height {height} is for chain {got}, not {expected}")]
    WrongChain { height: u64, expected: u64, got: u64 },
    #[error("undecodable certificate: {0}")]
    Certificate(String),
    #[error("consensus engine: {0}")]
    Engine(String),
}

/// What makes a decision final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    /// Decided by the chain's only sequencer, the block's proposer.
    Solo { sequencer: Address },
    /// Decided by a validator set: the precommits (EIP-712 [`VOTE_TYPE`], kind 1) of
    /// validators holding more than two thirds of the voting power, for `block` at
    /// (`height`, `round`).
    Commit(CommitCertificate),
}

/// Precommits of a validator set for one block.
#[derive(Debug, Clone, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block: [u8; 32],
    /// `(validator address, 65-byte signature)`, in address order.
    pub signatures: Vec<([u8; 20], EcdsaSignature)>,
}

impl CommitCertificate {
    /// Checks it against `validators`: the signatures of distinct validators of the set
    /// over the precommit for (height, round, block) must hold more than two thirds of
    /// the voting power. Returns the power that signed.
    pub fn verify(&self, chain_id: u64, validators: &ValidatorSet) -> Result<u64, ConsensusError> {
        let hash = vote_hash(chain_id, true, self.height, self.round, B256::from(self.block));
        let mut power = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for (address, signature) in &self.signatures {
            let address = Address::from(*address);
            let Some(v) = validators.get(&address) else {
                return Err(ConsensusError::Certificate(format!("{address} is not a validator")));
            };
            if !seen.insert(address) {
                return Err(ConsensusError::Certificate(format!("{address} signed twice")));
            }
            if !signature.is_by(&hash, address) {
                return Err(ConsensusError::Certificate(format!("the signature of {address} does not check")));
            }
            power += v.voting_power;
        }
        if power < validators.quorum() {
            return Err(ConsensusError::Certificate(format!(
                "signed by {power} of {} voting power; a commit needs {}",
                validators.total_power(),
                validators.quorum()
            )));
        }
        Ok(power)
    }
}

impl Certificate {
    const SOLO: u8 = 0;
    const COMMIT: u8 = 1;

    /// A kind byte, then its fields.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Solo { sequencer } => {
                let mut out = vec![Self::SOLO];
                out.extend_from_slice(sequencer.as_slice());
                out
            }
            Self::Commit(c) => {
                let mut out = vec![Self::COMMIT];
                out.extend(borsh::to_vec(c).unwrap_or_default());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ConsensusError> {
        match bytes.split_first() {
            Some((&Self::SOLO, rest)) if rest.len() == 20 => Ok(Self::Solo { sequencer: Address::from_slice(rest) }),
            Some((&Self::COMMIT, rest)) => borsh::from_slice(rest)
                .map(Self::Commit)
                .map_err(|e| ConsensusError::Certificate(format!("commit certificate: {e}"))),
            Some((kind, rest)) => Err(ConsensusError::Certificate(format!("kind {kind} with {} bytes", rest.len()))),
            None => Err(ConsensusError::Certificate("empty".into())),
        }
    }
}

/// A decided sequencer block and why it is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub block: SequencerBlock,
    pub certificate: Certificate,
}

/// Decides proposed sequencer blocks.
pub trait Finality: Send + Sync {
    /// Decides `proposal`, the block this node built for the next height. Returns the
    /// decided block (under BFT it may be another validator's) with its certificate.
    fn decide(&self, proposal: &SequencerBlock) -> Result<Decision, ConsensusError>;

    /// A short name for logs and RPC (`solo`, `bft`).
    fn name(&self) -> &'static str;
}

/// A single sequencer: every proposal that extends the previous decision is decided at
/// once.
#[derive(Debug, Default)]
pub struct Solo {
    /// Height and hash of the last decided block (`None`: the first proposal seen
    /// fixes it).
    last: Mutex<Option<(u64, B256)>>,
}

impl Solo {
    /// Solo finality after the decided block `height` with `hash` (genesis: height 0,
    /// zero hash).
    pub fn after(height: u64, hash: B256) -> Self {
        Self { last: Mutex::new(Some((height, hash))) }
    }
}

impl Finality for Solo {
    fn decide(&self, proposal: &SequencerBlock) -> Result<Decision, ConsensusError> {
        let mut last = self.last.lock();
        if let Some((height, hash)) = *last {
            if proposal.height != height + 1 {
                return Err(ConsensusError::NotNext { last: height, got: proposal.height });
            }
            if proposal.parent != hash {
                return Err(ConsensusError::WrongParent {
                    height: proposal.height,
                    expected: hash,
                    got: proposal.parent,
                });
            }
        }
        *last = Some((proposal.height, proposal.hash()));
        Ok(Decision { block: proposal.clone(), certificate: Certificate::Solo { sequencer: proposal.proposer } })
    }

    fn name(&self) -> &'static str {
        "solo"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(height: u64, parent: B256) -> SequencerBlock {
        SequencerBlock {
            chain_id: 1,
            height,
            round: 0,
            parent,
            proposer: Address::repeat_byte(9),
            timestamp: 1,
            base_fee: 1,
            gas_limit: 1,
            prevrandao: B256::ZERO,
            beneficiary: Address::ZERO,
            transactions: vec![B256::repeat_byte(height as u8)],
            fragments: vec![],
            executed: None,
            namespaces: None,
        }
    }

    #[test]
    fn solo_decides_each_proposal_that_extends_the_last_decision() {
        let solo = Solo::after(0, B256::ZERO);
        let one = proposal(1, B256::ZERO);
        let decided = solo.decide(&one).expect("decided");
        assert_eq!(decided.block, one);
        assert_eq!(decided.certificate, Certificate::Solo { sequencer: Address::repeat_byte(9) });
        // A second proposal for height 1, or one that skips a height, is refused.
        assert_eq!(solo.decide(&proposal(1, B256::ZERO)), Err(ConsensusError::NotNext { last: 1, got: 1 }));
        assert_eq!(solo.decide(&proposal(3, one.hash())), Err(ConsensusError::NotNext { last: 1, got: 3 }));
        // Height 2 must extend height 1's decision.
        let stray = proposal(2, B256::repeat_byte(7));
        assert!(matches!(solo.decide(&stray), Err(ConsensusError::WrongParent { height: 2, .. })));
        let two = proposal(2, one.hash());
        assert_eq!(solo.decide(&two).expect("decided").block, two);
    }

    #[test]
    fn a_fresh_solo_takes_the_first_proposal_as_its_start() {
        let solo = Solo::default();
        assert!(solo.decide(&proposal(41, B256::repeat_byte(1))).is_ok());
        assert!(solo.decide(&proposal(43, B256::ZERO)).is_err());
    }

    #[test]
    fn a_commit_certificate_needs_a_quorum_of_distinct_validators() {
        use alloy_signer_local::PrivateKeySigner;
        use cairn_primitives::network::NetworkGenesis;
        let mut keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
        keys.sort_by_key(|k| k.address());
        let validators = keys.iter().map(|k| NetworkGenesis::validator_of(k, 1)).collect();
        let set = ValidatorSet::new(&NetworkGenesis {
            chain_id: 9,
            timestamp: 1,
            validators,
            dev_accounts: 0,
            alloc: Default::default(),
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
        })
        .expect("set");
        let block = B256::repeat_byte(3);
        let hash = vote_hash(9, true, 12, 2, block);
        let sig = |k: &PrivateKeySigner| EcdsaSignature::sign(k, &hash).expect("sign");
        let cert = |signers: &[&PrivateKeySigner]| CommitCertificate {
            height: 12,
            round: 2,
            block: block.0,
            signatures: signers.iter().map(|k| (k.address().0 .0, sig(k))).collect(),
        };
        let three = cert(&[&keys[0], &keys[1], &keys[2]]);
        assert_eq!(three.verify(9, &set), Ok(3));
        let encoded = Certificate::Commit(three.clone()).encode();
        assert_eq!(Certificate::decode(&encoded), Ok(Certificate::Commit(three.clone())));
        assert!(cert(&[&keys[0], &keys[1]]).verify(9, &set).is_err(), "two of four is not a quorum");
        assert!(cert(&[&keys[0], &keys[1], &keys[1]]).verify(9, &set).is_err(), "one validator counted twice");
        assert!(three.verify(10, &set).is_err(), "signatures for another chain");
        let mut wrong = three.clone();
        wrong.round = 3;
        assert!(wrong.verify(9, &set).is_err(), "signatures for another round");
        let outsider = PrivateKeySigner::random();
        assert!(cert(&[&keys[0], &keys[1], &outsider]).verify(9, &set).is_err());
    }

    #[test]
    fn certificates_round_trip_and_bad_ones_are_refused() {
        let c = Certificate::Solo { sequencer: Address::repeat_byte(4) };
        assert_eq!(Certificate::decode(&c.encode()), Ok(c));
        assert!(Certificate::decode(&[]).is_err());
        assert!(Certificate::decode(&[0, 1, 2]).is_err());
        assert!(Certificate::decode(&[7; 21]).is_err());
    }
}
