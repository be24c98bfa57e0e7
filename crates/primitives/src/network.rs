//! The genesis of a validator set (`cairn testnet init`): the chain, its validators with
//! their voting power, and the prefunded development accounts, in one JSON file every
//! node of the set reads, so that every node starts from the same state.

use alloy_primitives::{Address, Bytes};
use serde::{Deserialize, Serialize};

use crate::genesis::{dev_accounts, GenesisAlloc, GenesisError, DEV_MNEMONIC};

/// Most validators a set may have.
pub const MAX_VALIDATORS: usize = 100;

/// One validator: its consensus key (secp256k1, compressed SEC1, 33 bytes), the
/// Ethereum address of that key (what `ecrecover` gives for its signatures), and its
/// voting power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validator {
    pub address: Address,
    pub public_key: Bytes,
    pub voting_power: u64,
}

/// A validator set's genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkGenesis {
    pub chain_id: u64,
    /// Genesis block timestamp (seconds); fixed, so every node computes the same block.
    pub timestamp: u64,
    /// Ordered by address.
    pub validators: Vec<Validator>,
    /// How many development accounts (`DEV_MNEMONIC`, 10,000 ether each) are prefunded.
    pub dev_accounts: u32,
    /// More genesis accounts (a geth-style `alloc`: balance, nonce, code, storage), for
    /// example a benchmark's funded senders and contracts. The same in every home.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub alloc: std::collections::BTreeMap<Address, alloy_genesis::GenesisAccount>,
}

/// Why a network genesis is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("the validator set is empty")]
    NoValidators,
    #[error("{0} validators, at most {MAX_VALIDATORS}")]
    TooManyValidators(usize),
    #[error("validator {0} appears twice (the set is ordered by address)")]
    Unordered(Address),
    #[error("validator {0} has no voting power")]
    NoPower(Address),
    #[error("the total voting power overflows")]
    PowerOverflow,
    #[error("validator {address}: its public key {reason}")]
    BadKey { address: Address, reason: String },
}

impl NetworkGenesis {
    /// Checks the validator set: not empty, bounded, ordered by address without
    /// duplicates, every power positive and the total within `u64`, every public key a
    /// secp256k1 point whose address is the validator's.
    pub fn validate(&self) -> Result<(), NetworkError> {
        if self.validators.is_empty() {
            return Err(NetworkError::NoValidators);
        }
        if self.validators.len() > MAX_VALIDATORS {
            return Err(NetworkError::TooManyValidators(self.validators.len()));
        }
        let mut total: u64 = 0;
        for (i, v) in self.validators.iter().enumerate() {
            if i > 0 && self.validators[i - 1].address >= v.address {
                return Err(NetworkError::Unordered(v.address));
            }
            if v.voting_power == 0 {
                return Err(NetworkError::NoPower(v.address));
            }
            total = total.checked_add(v.voting_power).ok_or(NetworkError::PowerOverflow)?;
            let bad = |reason: String| NetworkError::BadKey { address: v.address, reason };
            let key = alloy_signer::k256::ecdsa::VerifyingKey::from_sec1_bytes(&v.public_key)
                .map_err(|e| bad(e.to_string()))?;
            if v.public_key.len() != 33 {
                return Err(bad(format!("is {} bytes, not a compressed 33-byte key", v.public_key.len())));
            }
            let derived = Address::from_public_key(&key);
            if derived != v.address {
                return Err(bad(format!("belongs to {derived}")));
            }
        }
        Ok(())
    }

    /// The validator entry of a consensus key.
    pub fn validator_of(key: &alloy_signer_local::PrivateKeySigner, voting_power: u64) -> Validator {
        let public = key.credential().verifying_key().to_encoded_point(true);
        Validator { address: key.address(), public_key: Bytes::copy_from_slice(public.as_bytes()), voting_power }
    }

    /// The genesis state: the development accounts and the predeployed contracts, at
    /// the fixed timestamp.
    pub fn alloc(&self) -> Result<GenesisAlloc, GenesisError> {
        let mut alloc = GenesisAlloc::dev(&dev_accounts(DEV_MNEMONIC, self.dev_accounts)?).with_predeploys();
        alloc.timestamp = self.timestamp;
        for (address, account) in &self.alloc {
            alloc.accounts.insert(*address, crate::genesis::account_from_geth(account.clone()));
        }
        Ok(alloc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer_local::PrivateKeySigner;

    fn genesis(n: usize) -> NetworkGenesis {
        let mut validators: Vec<Validator> =
            (0..n).map(|_| NetworkGenesis::validator_of(&PrivateKeySigner::random(), 1)).collect();
        validators.sort_by_key(|v| v.address);
        NetworkGenesis {
            chain_id: 31337,
            timestamp: 1_700_000_000,
            validators,
            dev_accounts: 3,
            alloc: Default::default(),
        }
    }

    #[test]
    fn a_well_formed_set_passes_and_round_trips() {
        let g = genesis(4);
        g.validate().expect("valid");
        let json = serde_json::to_string(&g).expect("json");
        assert_eq!(serde_json::from_str::<NetworkGenesis>(&json).expect("parse"), g);
        let alloc = g.alloc().expect("alloc");
        assert_eq!(alloc.timestamp, 1_700_000_000);
        assert!(alloc.accounts.contains_key(&crate::predeploys::MULTICALL3));
        assert!(
            serde_json::from_str::<NetworkGenesis>(&json.replace("\"chainId\"", "\"extra\":1,\"chainId\"")).is_err()
        );
    }

    #[test]
    fn bad_sets_are_refused_with_the_reason() {
        assert_eq!(genesis(0).validate(), Err(NetworkError::NoValidators));
        let mut g = genesis(3);
        g.validators.swap(0, 1);
        assert!(matches!(g.validate(), Err(NetworkError::Unordered(_))));
        let mut g = genesis(2);
        g.validators[1].voting_power = 0;
        assert!(matches!(g.validate(), Err(NetworkError::NoPower(_))));
        let mut g = genesis(2);
        g.validators[0].voting_power = u64::MAX;
        assert_eq!(g.validate(), Err(NetworkError::PowerOverflow));
        let mut g = genesis(2);
        g.validators[0].public_key = g.validators[1].public_key.clone();
        assert!(matches!(g.validate(), Err(NetworkError::BadKey { .. })), "a key that is not the validator's");
        let mut g = genesis(1);
        g.validators[0].public_key = Bytes::from_static(&[2; 33]);
        assert!(matches!(g.validate(), Err(NetworkError::BadKey { .. })), "not a curve point");
        assert_eq!(genesis(MAX_VALIDATORS + 1).validate(), Err(NetworkError::TooManyValidators(MAX_VALIDATORS + 1)));
    }
}
