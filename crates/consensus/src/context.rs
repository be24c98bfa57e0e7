//! Cairn's Malachite context: what a height, a value, a vote and a proposal are.
//!
//! - A height is a sequencer block height; a value is a [`SequencerBlock`], identified
//!   by its hash.
//! - Validators are identified by their Ethereum address; they sign with secp256k1
//!   (see `signing`).
//! - A proposal's parts are an `Init` (height, round, proposer), the proposer's signed
//!   fragments as they are made, and a `Fin` with the sequencer block and the
//!   proposer's signature over it.
//! - The proposer of a round is the weighted round robin of [`crate::ValidatorSet`].

use std::fmt;
use std::sync::Arc;

use alloy_primitives::{Address, B256};
use borsh::io::{Error as IoError, ErrorKind, Read, Write};
use borsh::{BorshDeserialize, BorshSerialize};
use cairn_primitives::fragment::FragmentRecord;
use cairn_primitives::SequencerBlock;
use malachitebft_core_types as mc;
use malachitebft_core_types::{LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType};

use crate::scheme::{EcdsaSignature, PublicKey, Secp256k1};
use crate::validators::ValidatorSet;

/// The context of one chain's validator set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CairnContext {
    pub chain_id: u64,
}

fn read_array<R: Read, const N: usize>(reader: &mut R) -> borsh::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    reader.read_exact(&mut out)?;
    Ok(out)
}

fn invalid(reason: impl fmt::Display) -> IoError {
    IoError::new(ErrorKind::InvalidData, reason.to_string())
}

/// A sequencer block height.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's Ethereum address.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorAddress(pub Address);

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Address for ValidatorAddress {}

impl BorshSerialize for ValidatorAddress {
    fn serialize<W: Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        writer.write_all(self.0.as_slice())
    }
}

impl BorshDeserialize for ValidatorAddress {
    fn deserialize_reader<R: Read>(reader: &mut R) -> borsh::io::Result<Self> {
        Ok(Self(Address::from(read_array::<R, 20>(reader)?)))
    }
}

/// A value's identity: the sequencer block's hash.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub B256);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl BorshSerialize for BlockId {
    fn serialize<W: Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        writer.write_all(self.0.as_slice())
    }
}

impl BorshDeserialize for BlockId {
    fn deserialize_reader<R: Read>(reader: &mut R) -> borsh::io::Result<Self> {
        Ok(Self(B256::from(read_array::<R, 32>(reader)?)))
    }
}

/// The value consensus decides: a sequencer block (its hash computed once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    block: Arc<SequencerBlock>,
    id: B256,
}

impl Block {
    pub fn new(block: SequencerBlock) -> Self {
        let id = block.hash();
        Self { block: Arc::new(block), id }
    }

    pub fn block(&self) -> &SequencerBlock {
        &self.block
    }

    pub fn hash(&self) -> B256 {
        self.id
    }
}

impl PartialOrd for Block {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Block {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.block.height, self.block.round, self.id).cmp(&(other.block.height, other.block.round, other.id))
    }
}

impl mc::Value for Block {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        BlockId(self.id)
    }
}

impl BorshSerialize for Block {
    fn serialize<W: Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        self.block.encode().serialize(writer)
    }
}

impl BorshDeserialize for Block {
    fn deserialize_reader<R: Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let bytes = Vec::<u8>::deserialize_reader(reader)?;
        SequencerBlock::decode(&bytes).map(Block::new).map_err(invalid)
    }
}

/// A proposal: the block proposed for (height, round), and the round it was locked on
/// (`pol_round`) when it is a re-proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: Block,
    pub pol_round: Round,
    pub proposer: ValidatorAddress,
}

impl mc::Proposal<CairnContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Block {
        &self.value
    }
    fn take_value(self) -> Block {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.proposer
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub kind: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockId>,
    pub validator: ValidatorAddress,
    pub extension: Option<SignedExtension<CairnContext>>,
}

impl mc::Vote<CairnContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<CairnContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<CairnContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<CairnContext>) -> Self {
        Self { extension: Some(extension), ..self }
    }
}

/// A signed fragment carried as a proposal part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentPart(pub FragmentRecord);

impl BorshSerialize for FragmentPart {
    fn serialize<W: Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        alloy_rlp::encode(&self.0).serialize(writer)
    }
}

impl BorshDeserialize for FragmentPart {
    fn deserialize_reader<R: Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let bytes = Vec::<u8>::deserialize_reader(reader)?;
        <FragmentRecord as alloy_rlp::Decodable>::decode(&mut bytes.as_slice()).map(Self).map_err(invalid)
    }
}

/// One part of a streamed proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    /// First: who proposes what height and round.
    Init { height: Height, round: Round, pol_round: Round, proposer: ValidatorAddress },
    /// A signed fragment, sent as soon as the proposer made it.
    Fragment(FragmentPart),
    /// Last: the sequencer block, signed by the proposer (the signature of its
    /// [`crate::scheme::proposal_hash`]).
    Fin { block: Block, signature: EcdsaSignature },
}

impl mc::ProposalPart<CairnContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, Self::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, Self::Fin { .. })
    }
}

/// A validator as Malachite sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: ValidatorAddress,
    pub public_key: PublicKey,
    pub voting_power: u64,
}

impl mc::Validator<CairnContext> for Validator {
    fn address(&self) -> &ValidatorAddress {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.voting_power
    }
}

/// The validator set as Malachite sees it (the same order and rotation as
/// [`ValidatorSet`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    set: ValidatorSet,
    list: Vec<Validator>,
}

impl Validators {
    /// Every key of `set` was checked when it was built; one that does not parse here is
    /// refused all the same.
    pub fn new(set: ValidatorSet) -> Result<Self, String> {
        let list = set
            .validators()
            .iter()
            .map(|v| {
                Ok(Validator {
                    address: ValidatorAddress(v.address),
                    public_key: PublicKey::from_compressed(&v.public_key)?,
                    voting_power: v.voting_power,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { set, list })
    }

    pub fn set(&self) -> &ValidatorSet {
        &self.set
    }

    /// The proposer of (height, round).
    pub fn proposer(&self, height: u64, round: u32) -> &Validator {
        let address = self.set.proposer(height, round).address;
        let i = self.list.binary_search_by_key(&ValidatorAddress(address), |v| v.address).unwrap_or(0);
        &self.list[i]
    }
}

impl mc::ValidatorSet<CairnContext> for Validators {
    fn count(&self) -> usize {
        self.list.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.set.total_power()
    }
    fn get_by_address(&self, address: &ValidatorAddress) -> Option<&Validator> {
        self.list.binary_search_by_key(address, |v| v.address).ok().map(|i| &self.list[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.list.get(index)
    }
}

impl mc::Context for CairnContext {
    type Address = ValidatorAddress;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = Validators;
    type Timeouts = LinearTimeouts;
    type Value = Block;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Secp256k1;

    fn select_proposer<'a>(&self, validators: &'a Validators, height: Height, round: Round) -> &'a Validator {
        validators.proposer(height.0, round.as_u32().unwrap_or(0))
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Block,
        pol_round: Round,
        address: ValidatorAddress,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(&self, height: Height, round: Round, value: NilOrVal<BlockId>, address: ValidatorAddress) -> Vote {
        Vote { kind: VoteType::Prevote, height, round, value, validator: address, extension: None }
    }

    fn new_precommit(&self, height: Height, round: Round, value: NilOrVal<BlockId>, address: ValidatorAddress) -> Vote {
        Vote { kind: VoteType::Precommit, height, round, value, validator: address, extension: None }
    }
}
