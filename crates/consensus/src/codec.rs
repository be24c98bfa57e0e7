//! The wire and WAL encoding of every consensus message: borsh (Malachite's own
//! encoding of its types, with Cairn's types encoded as fixed-size bytes and RLP).

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_app::consensus::LivenessMsg;
use malachitebft_app::types::streaming::StreamMessage;
use malachitebft_app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app::types::{ProposedValue, SignedConsensusMsg};
use malachitebft_codec::{Codec, HasEncodedLen};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round, SignedExtension, ValidatorProof,
};
use malachitebft_sync::ValueResponse;

use crate::context::{BlockId, CairnContext, Height, ProposalPart, ValidatorAddress};
use crate::scheme::EcdsaSignature;

/// Largest message decoded (the network's own limit is lower).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Borsh, for every message consensus sends, syncs or logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct BftCodec;

/// A message that does not decode (or encode).
#[derive(Debug, thiserror::Error)]
#[error("consensus codec: {0}")]
pub struct CodecError(pub String);

fn decode<T: borsh::BorshDeserialize>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError(format!("{} bytes is over the {MAX_MESSAGE_BYTES}-byte limit", bytes.len())));
    }
    borsh::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

fn encode<T: borsh::BorshSerialize>(msg: &T) -> Result<Bytes, CodecError> {
    borsh::to_vec(msg).map(Bytes::from).map_err(|e| CodecError(e.to_string()))
}

macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for BftCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                decode(&bytes)
            }
            fn encode(&self, msg: &$t) -> Result<Bytes, CodecError> {
                encode(msg)
            }
        }
    )*};
}

borsh_codec!(
    ProposalPart,
    SignedConsensusMsg<CairnContext>,
    LivenessMsg<CairnContext>,
    StreamMessage<ProposalPart>,
    ProposedValue<CairnContext>,
    PolkaCertificate<CairnContext>,
    Status<CairnContext>,
    Request<CairnContext>,
);

/// A value-sync response as sent: Malachite 0.8.2 has no borsh encoding of the
/// certificate it carries, so it is laid out here.
#[derive(BorshSerialize, BorshDeserialize)]
struct WireResponse {
    start_height: Height,
    values: Vec<WireValue>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireValue {
    value_bytes: Vec<u8>,
    height: Height,
    round: Round,
    value_id: BlockId,
    signatures: Vec<(ValidatorAddress, EcdsaSignature, Option<SignedExtension<CairnContext>>)>,
}

impl WireResponse {
    fn of(response: &Response<CairnContext>) -> Self {
        let Response::ValueResponse(r) = response;
        Self {
            start_height: r.start_height,
            values: r
                .values
                .iter()
                .map(|v| WireValue {
                    value_bytes: v.value_bytes.to_vec(),
                    height: v.certificate.height,
                    round: v.certificate.round,
                    value_id: v.certificate.value_id,
                    signatures: v
                        .certificate
                        .commit_signatures
                        .iter()
                        .map(|s| (s.address, s.signature, s.extension.clone()))
                        .collect(),
                })
                .collect(),
        }
    }

    fn into_response(self) -> Response<CairnContext> {
        let values = self
            .values
            .into_iter()
            .map(|v| {
                RawDecidedValue::new(
                    Bytes::from(v.value_bytes),
                    ExtendedCommitCertificate {
                        height: v.height,
                        round: v.round,
                        value_id: v.value_id,
                        commit_signatures: v
                            .signatures
                            .into_iter()
                            .map(|(address, signature, extension)| {
                                ExtendedCommitSignature::new(address, signature, extension)
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        Response::ValueResponse(ValueResponse::new(self.start_height, values))
    }
}

impl Codec<Response<CairnContext>> for BftCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<Response<CairnContext>, CodecError> {
        decode::<WireResponse>(&bytes).map(WireResponse::into_response)
    }

    fn encode(&self, msg: &Response<CairnContext>) -> Result<Bytes, CodecError> {
        encode(&WireResponse::of(msg))
    }
}

impl HasEncodedLen<Response<CairnContext>> for BftCodec {
    fn encoded_len(&self, msg: &Response<CairnContext>) -> Result<usize, CodecError> {
        borsh::object_length(&WireResponse::of(msg)).map_err(|e| CodecError(e.to_string()))
    }
}

impl Codec<ValidatorProof<CairnContext>> for BftCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<CairnContext>, CodecError> {
        let (public_key, peer_id, signature): (Vec<u8>, Vec<u8>, EcdsaSignature) = decode(&bytes)?;
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }

    fn encode(&self, proof: &ValidatorProof<CairnContext>) -> Result<Bytes, CodecError> {
        encode(&(&proof.public_key, &proof.peer_id, &proof.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Block, Proposal, Vote};
    use crate::signing::Keys;
    use alloy_primitives::B256;
    use malachitebft_core_types::{NilOrVal, SignedMessage, VoteType};
    use malachitebft_signing::{Signer, Verifier};

    fn block() -> Block {
        Block::new(cairn_primitives::SequencerBlock {
            chain_id: 1,
            height: 3,
            round: 0,
            parent: B256::repeat_byte(1),
            proposer: alloy_primitives::Address::repeat_byte(2),
            timestamp: 4,
            base_fee: 5,
            gas_limit: 6,
            prevrandao: B256::repeat_byte(7),
            beneficiary: alloy_primitives::Address::ZERO,
            transactions: vec![B256::repeat_byte(8)],
            fragments: vec![],
            executed: None,
            namespaces: None,
        })
    }

    #[tokio::test]
    async fn signed_messages_round_trip_and_check() {
        let keys = Keys { chain_id: 1, key: alloy_signer_local::PrivateKeySigner::random() };
        let me = ValidatorAddress(keys.key.address());
        let public = crate::scheme::PublicKey::of(&keys.key);
        let vote = Vote {
            kind: VoteType::Precommit,
            height: Height(3),
            round: Round::new(1),
            value: NilOrVal::Val(BlockId(block().hash())),
            validator: me,
            extension: None,
        };
        let signed = keys.sign_vote(vote.clone()).await.expect("sign");
        let msg = SignedConsensusMsg::<CairnContext>::Vote(signed.clone());
        let bytes = BftCodec.encode(&msg).expect("encode");
        let back: SignedConsensusMsg<CairnContext> = BftCodec.decode(bytes).expect("decode");
        assert_eq!(back, msg);
        assert!(keys.verify_signed_vote(&vote, &signed.signature, &public).await.expect("verify").is_valid());
        let mut other = vote.clone();
        other.round = Round::new(2);
        assert!(keys.verify_signed_vote(&other, &signed.signature, &public).await.expect("verify").is_invalid());
        // A precommit's signature is the one a commit certificate carries: checkable with
        // the EIP-712 vote hash alone.
        let hash = crate::scheme::vote_hash(1, true, 3, 1, block().hash());
        assert!(signed.signature.is_by(&hash, me.0));

        let proposal =
            Proposal { height: Height(3), round: Round::new(1), value: block(), pol_round: Round::Nil, proposer: me };
        let signed: SignedMessage<CairnContext, Proposal> = keys.sign_proposal(proposal.clone()).await.expect("sign");
        let msg = SignedConsensusMsg::<CairnContext>::Proposal(signed);
        assert_eq!(BftCodec.decode(BftCodec.encode(&msg).expect("encode")).ok(), Some(msg));

        let proof = keys.sign_validator_proof(public.compressed().to_vec(), vec![1, 2, 3]).await.expect("proof");
        let back: ValidatorProof<CairnContext> =
            BftCodec.decode(BftCodec.encode(&proof).expect("encode")).expect("decode");
        assert_eq!(back, proof);
        assert!(keys.verify_validator_proof(&proof).await.expect("verify").is_valid());
    }

    #[test]
    fn sync_answers_round_trip_and_garbage_is_refused() {
        let raw = RawDecidedValue::new(
            Bytes::from_static(b"value"),
            ExtendedCommitCertificate {
                height: Height(3),
                round: Round::new(0),
                value_id: BlockId(B256::repeat_byte(4)),
                commit_signatures: vec![ExtendedCommitSignature::new(
                    ValidatorAddress(alloy_primitives::Address::repeat_byte(5)),
                    EcdsaSignature([6; 65]),
                    None,
                )],
            },
        );
        let response = Response::ValueResponse(ValueResponse::new(Height(3), vec![raw]));
        let bytes = BftCodec.encode(&response).expect("encode");
        assert_eq!(BftCodec.encoded_len(&response).expect("len"), bytes.len());
        let back: Response<CairnContext> = BftCodec.decode(bytes).expect("decode");
        assert_eq!(back, response);
        let garbage: Result<ProposalPart, _> = BftCodec.decode(Bytes::from_static(&[9, 9, 9]));
        assert!(garbage.is_err());
        let part = ProposalPart::Fin { block: block(), signature: EcdsaSignature([1; 65]) };
        assert_eq!(BftCodec.decode(BftCodec.encode(&part).expect("encode")).ok(), Some(part));
    }
}
