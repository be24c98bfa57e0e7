//! The signing scheme of Cairn's validators: secp256k1 ECDSA over EIP-712 typed data,
//! so that an EVM contract can check a vote or a proposal with `ecrecover`.
//!
//! Domain: name [`DOMAIN_NAME`], version `1`, the chain id. Types:
//! - [`VOTE_TYPE`]: `kind` 0 is a prevote, 1 a precommit; `value` is the block hash, zero
//!   for nil.
//! - [`PROPOSAL_TYPE`]: `polRound` is −1 when the proposal is not a re-proposal.
//!
//! A signature is 65 bytes: `r`, `s`, and `v` as 27/28.

use std::fmt;

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::{Eip712Domain, SolStruct};
use borsh::io::{Read, Write};
use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types::SigningScheme;

/// EIP-712 domain name of consensus messages.
pub const DOMAIN_NAME: &str = "Cairn Consensus";
/// The EIP-712 type of a vote.
pub const VOTE_TYPE: &str = "Vote(uint8 kind,uint64 height,uint32 round,bytes32 value)";
/// The EIP-712 type of a proposal.
pub const PROPOSAL_TYPE: &str = "Proposal(uint64 height,uint32 round,int64 polRound,bytes32 value)";

mod typed {
    alloy_sol_types::sol! {
        struct Vote {
            uint8 kind;
            uint64 height;
            uint32 round;
            bytes32 value;
        }
        struct Proposal {
            uint64 height;
            uint32 round;
            int64 polRound;
            bytes32 value;
        }
    }
}

/// The EIP-712 domain of a chain's consensus messages.
pub fn domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(DOMAIN_NAME.into()),
        version: Some("1".into()),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: None,
        salt: None,
    }
}

/// The signing hash of a vote (`value` zero for nil).
pub fn vote_hash(chain_id: u64, precommit: bool, height: u64, round: u32, value: B256) -> B256 {
    typed::Vote { kind: u8::from(precommit), height, round, value }.eip712_signing_hash(&domain(chain_id))
}

/// The signing hash of a proposal.
pub fn proposal_hash(chain_id: u64, height: u64, round: u32, pol_round: i64, value: B256) -> B256 {
    typed::Proposal { height, round, polRound: pol_round, value }.eip712_signing_hash(&domain(chain_id))
}

/// The signing hash of anything else (vote extensions, the proof that ties a network
/// key to a validator): keccak256 of a tag and the bytes.
pub fn tagged_hash(tag: &[u8], bytes: &[u8]) -> B256 {
    let mut buf = Vec::with_capacity(tag.len() + bytes.len());
    buf.extend_from_slice(tag);
    buf.extend_from_slice(bytes);
    keccak256(buf)
}

/// The scheme: secp256k1 keys, 65-byte recoverable signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secp256k1;

/// Why a key or signature does not decode, or a signature does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemeError(pub String);

/// A 65-byte signature (`r`, `s`, `v` as 27/28).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EcdsaSignature(pub [u8; 65]);

impl fmt::Debug for EcdsaSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

impl EcdsaSignature {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SchemeError> {
        let array: [u8; 65] =
            bytes.try_into().map_err(|_| SchemeError(format!("a signature is 65 bytes, not {}", bytes.len())))?;
        Ok(Self(array))
    }

    /// Signs `hash` with `key`.
    pub fn sign(key: &alloy_signer_local::PrivateKeySigner, hash: &B256) -> Result<Self, SchemeError> {
        use alloy_signer::SignerSync;
        let sig = key.sign_hash_sync(hash).map_err(|e| SchemeError(e.to_string()))?;
        Ok(Self(sig.as_bytes()))
    }

    /// The address that signed `hash`.
    pub fn recover(&self, hash: &B256) -> Result<Address, SchemeError> {
        let sig = alloy_primitives::Signature::try_from(&self.0[..]).map_err(|e| SchemeError(e.to_string()))?;
        sig.recover_address_from_prehash(hash).map_err(|e| SchemeError(e.to_string()))
    }

    /// Whether `address` signed `hash`.
    pub fn is_by(&self, hash: &B256, address: Address) -> bool {
        self.recover(hash).is_ok_and(|a| a == address)
    }
}

impl BorshSerialize for EcdsaSignature {
    fn serialize<W: Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        writer.write_all(&self.0)
    }
}

impl BorshDeserialize for EcdsaSignature {
    fn deserialize_reader<R: Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let mut out = [0u8; 65];
        reader.read_exact(&mut out)?;
        Ok(Self(out))
    }
}

/// A compressed secp256k1 public key and the address it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    compressed: [u8; 33],
    address: Address,
}

impl PublicKey {
    pub fn from_compressed(bytes: &[u8]) -> Result<Self, String> {
        let key = alloy_signer::k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map_err(|e| format!("not a secp256k1 public key: {e}"))?;
        let compressed: [u8; 33] =
            key.to_encoded_point(true).as_bytes().try_into().map_err(|_| "a compressed key is 33 bytes".to_string())?;
        Ok(Self { compressed, address: Address::from_public_key(&key) })
    }

    pub fn of(key: &alloy_signer_local::PrivateKeySigner) -> Self {
        let point = key.credential().verifying_key().to_encoded_point(true);
        let mut compressed = [0u8; 33];
        compressed.copy_from_slice(point.as_bytes());
        Self { compressed, address: key.address() }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn compressed(&self) -> &[u8; 33] {
        &self.compressed
    }
}

impl SigningScheme for Secp256k1 {
    type DecodingError = SchemeError;
    type Signature = EcdsaSignature;
    type PublicKey = PublicKey;
    type PrivateKey = alloy_signer_local::PrivateKeySigner;

    fn decode_signature(bytes: &[u8]) -> Result<EcdsaSignature, SchemeError> {
        EcdsaSignature::from_slice(bytes)
    }

    fn encode_signature(signature: &EcdsaSignature) -> Vec<u8> {
        signature.0.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, SchemeError> {
        PublicKey::from_compressed(bytes).map_err(SchemeError)
    }

    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.compressed.to_vec()
    }
}
