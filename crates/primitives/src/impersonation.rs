//! Impersonated senders of `cairn dev` (`anvil_impersonateAccount`): a transaction sent
//! "from" an account whose key nobody holds. It is an ordinary typed transaction whose
//! signature is a marker no secp256k1 signature can equal: `s = 0` (never valid, so real
//! signature recovery always refuses it) and `r` = the sender's address as a number.
//! Its hash is the hash of that encoding, as for any transaction.
//!
//! Only a chain whose config says [`crate::ChainConfig::dev`] recovers such a sender;
//! every other node refuses the transaction as an invalid signature.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::TxEnvelope;
use alloy_primitives::{Address, Signature, U256};

/// The marker signature of a transaction impersonating `sender`.
pub fn impersonated_signature(sender: Address) -> Signature {
    Signature::new(U256::from_be_slice(sender.as_slice()), U256::ZERO, false)
}

/// The sender a marker signature names, if `tx` carries one.
pub fn impersonated_sender(tx: &TxEnvelope) -> Option<Address> {
    let sig = tx.signature();
    if !sig.s().is_zero() || sig.r() >= (U256::from(1) << 160) {
        return None;
    }
    Some(Address::from_slice(&sig.r().to_be_bytes::<32>()[12..]))
}

/// The sender of `tx`: recovered from its signature, or, on a development chain
/// (`dev`), the impersonated sender its marker signature names.
pub fn recover_sender(tx: &TxEnvelope, dev: bool) -> Result<Address, String> {
    match tx.recover_signer() {
        Ok(sender) => Ok(sender),
        Err(e) => match impersonated_sender(tx).filter(|_| dev) {
            Some(sender) => Ok(sender),
            None => Err(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxEip1559};
    use alloy_primitives::{address, TxKind};

    fn tx() -> TxEip1559 {
        TxEip1559 {
            chain_id: 31337,
            nonce: 3,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(7)),
            ..Default::default()
        }
    }

    #[test]
    fn the_marker_names_its_sender_on_dev_chains_only() {
        let who = address!("0x00000000219ab540356cBB839Cbe05303d7705Fa");
        let env = TxEnvelope::Eip1559(tx().into_signed(impersonated_signature(who)));
        assert_eq!(impersonated_sender(&env), Some(who));
        assert_eq!(recover_sender(&env, true), Ok(who));
        assert!(recover_sender(&env, false).is_err(), "a marker is never a valid signature");
        // It survives encoding, and its hash is that of its encoding.
        use alloy_eips::eip2718::{Decodable2718, Encodable2718};
        let raw = env.encoded_2718();
        let back = TxEnvelope::decode_2718_exact(&raw).expect("decodes");
        assert_eq!(impersonated_sender(&back), Some(who));
        assert_eq!(*back.tx_hash(), alloy_primitives::keccak256(&raw));
    }

    #[test]
    fn a_real_signature_is_never_taken_for_a_marker() {
        let key = alloy_signer_local::PrivateKeySigner::random();
        let env = crate::sign_eip1559(&key, tx()).expect("sign");
        assert_eq!(impersonated_sender(&env), None);
        assert_eq!(recover_sender(&env, true), Ok(key.address()));
        assert_eq!(recover_sender(&env, false), Ok(key.address()));
    }
}
