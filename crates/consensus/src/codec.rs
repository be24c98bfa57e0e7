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
