//! Signing and checking votes, proposals and the network-key proof with a validator's
//! secp256k1 key (the scheme of `scheme`).

use alloy_primitives::B256;
use alloy_signer_local::PrivateKeySigner;
use async_trait::async_trait;
use malachitebft_core_types::{NilOrVal, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};

use crate::context::{CairnContext, Proposal, Vote};
use crate::scheme::{proposal_hash, tagged_hash, vote_hash, EcdsaSignature, PublicKey};

const EXTENSION_TAG: &[u8] = b"cairn-vote-extension";
const PROOF_TAG: &[u8] = b"cairn-validator-proof";

/// The hash a vote is signed as.
pub fn hash_vote(chain_id: u64, vote: &Vote) -> B256 {
    let value = match &vote.value {
        NilOrVal::Nil => B256::ZERO,
        NilOrVal::Val(id) => id.0,
    };
    vote_hash(chain_id, vote.kind == VoteType::Precommit, vote.height.0, vote.round.as_u32().unwrap_or(u32::MAX), value)
}

/// The hash a proposal is signed as.
pub fn hash_proposal(chain_id: u64, proposal: &Proposal) -> B256 {
    proposal_hash(
        chain_id,
        proposal.height.0,
        proposal.round.as_u32().unwrap_or(u32::MAX),
        proposal.pol_round.as_i64(),
        proposal.value.hash(),
    )
}

fn hash_extension(scope: &VoteExtensionScope<CairnContext>) -> B256 {
    let mut bytes = Vec::with_capacity(8 + 8 + 32 + 20);
    bytes.extend_from_slice(&scope.height.0.to_be_bytes());
    bytes.extend_from_slice(&scope.round.as_i64().to_be_bytes());
    bytes.extend_from_slice(scope.value_id.0.as_slice());
    bytes.extend_from_slice(scope.validator_address.0.as_slice());
    tagged_hash(EXTENSION_TAG, &bytes)
}

fn hash_proof(public_key: &[u8], peer_id: &[u8]) -> B256 {
    tagged_hash(PROOF_TAG, &ValidatorProof::<CairnContext>::signing_bytes(public_key, peer_id))
}

fn verdict(ok: bool) -> Result<VerificationResult, Error> {
    Ok(VerificationResult::from_bool(ok))
}

/// Checks signatures (every node, validator or not).
#[derive(Debug, Clone, Copy)]
pub struct Checker {
    pub chain_id: u64,
}

/// A validator's key: signs, and checks like a [`Checker`].
#[derive(Debug, Clone)]
pub struct Keys {
    pub chain_id: u64,
    pub key: PrivateKeySigner,
}

impl Keys {
    fn sign(&self, hash: &B256) -> Result<EcdsaSignature, Error> {
        EcdsaSignature::sign(&self.key, hash).map_err(Error::from_source)
    }

    /// The proposer's signature over a block it proposes for (height, round).
    pub fn sign_proposal_hash(&self, hash: &B256) -> Result<EcdsaSignature, Error> {
        self.sign(hash)
    }
}

#[async_trait]
impl Verifier<CairnContext> for Checker {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        verdict(signature.is_by(&hash_vote(self.chain_id, vote), public_key.address()))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        verdict(signature.is_by(&hash_proposal(self.chain_id, proposal), public_key.address()))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<CairnContext>,
        _extension: &(),
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        verdict(signature.is_by(&hash_extension(scope), public_key.address()))
    }

    async fn verify_validator_proof(&self, proof: &ValidatorProof<CairnContext>) -> Result<VerificationResult, Error> {
        let Ok(key) = PublicKey::from_compressed(&proof.public_key) else { return verdict(false) };
        verdict(proof.signature.is_by(&hash_proof(&proof.public_key, &proof.peer_id), key.address()))
    }
}

#[async_trait]
impl Verifier<CairnContext> for Keys {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Checker { chain_id: self.chain_id }.verify_signed_vote(vote, signature, public_key).await
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Checker { chain_id: self.chain_id }.verify_signed_proposal(proposal, signature, public_key).await
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<CairnContext>,
        extension: &(),
        signature: &EcdsaSignature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Checker { chain_id: self.chain_id }.verify_signed_vote_extension(scope, extension, signature, public_key).await
    }

    async fn verify_validator_proof(&self, proof: &ValidatorProof<CairnContext>) -> Result<VerificationResult, Error> {
        Checker { chain_id: self.chain_id }.verify_validator_proof(proof).await
    }
}

#[async_trait]
impl Signer<CairnContext> for Keys {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<CairnContext, Vote>, Error> {
        let signature = self.sign(&hash_vote(self.chain_id, &vote))?;
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(&self, proposal: Proposal) -> Result<SignedMessage<CairnContext, Proposal>, Error> {
        let signature = self.sign(&hash_proposal(self.chain_id, &proposal))?;
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<CairnContext>,
        extension: (),
    ) -> Result<SignedMessage<CairnContext, ()>, Error> {
        let signature = self.sign(&hash_extension(&scope))?;
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<CairnContext>, Error> {
        let signature = self.sign(&hash_proof(&public_key, &peer_id))?;
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}
