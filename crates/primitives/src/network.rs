//! The genesis of a validator set (`cairn testnet init`): the chain, its validators with
//! their voting power, and the prefunded development accounts, in one JSON file every
//! node of the set reads, so that every node starts from the same state.

use alloy_primitives::{Address, Bytes};
use serde::{Deserialize, Serialize};

use crate::genesis::{dev_accounts, GenesisAlloc, GenesisError, DEV_MNEMONIC};

/// Most validators a set may have.
pub const MAX_VALIDATORS: usize = 100;
/// Most rollups (namespaces) one shared set orders.
pub const MAX_ROLLUPS: usize = 64;
/// Largest weight of one rollup in the block share.
pub const MAX_WEIGHT: u32 = 1_000;

/// A rollup a shared set orders: its namespace is its chain id. Each block gives it a
/// share of the block's byte and gas budgets in proportion to `weight`
/// (`docs/SHARED.md`), and refuses its transactions whose fee cap is below
/// `min_fee_per_gas` (the sequencing fee floor: the set does not execute, so it cannot
/// charge by gas used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollup {
    pub chain_id: u64,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub min_fee_per_gas: u64,
}

fn one() -> u32 {
    1
}

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
    /// The rollups of a shared set, ordered by chain id. Empty: the set is one rollup's
    /// (its validators execute). Not empty: the set orders these rollups' transactions
    /// without executing them (lazy), and each rollup's follower nodes (`cairn rollup`)
    /// execute its part; every rollup starts from the state `alloc` describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollups: Vec<Rollup>,
    /// A shared set's block budgets, which the rollups' lanes share by weight (raw
    /// transaction bytes; the sum of the transactions' gas limits). `None`: the defaults
    /// (`docs/SHARED.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_gas: Option<u64>,
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
    #[error("{0} rollups, at most {MAX_ROLLUPS}")]
    TooManyRollups(usize),
    #[error("rollup {0} appears twice or out of order (rollups are ordered by chain id)")]
    UnorderedRollup(u64),
    #[error("rollup {chain_id} has weight {weight}; a weight is 1..={MAX_WEIGHT}")]
    BadWeight { chain_id: u64, weight: u32 },
    #[error("rollup {0} has the set's own chain id: a rollup needs a chain id of its own")]
    RollupIsTheSet(u64),
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
        if self.rollups.len() > MAX_ROLLUPS {
            return Err(NetworkError::TooManyRollups(self.rollups.len()));
        }
        for (i, r) in self.rollups.iter().enumerate() {
            if i > 0 && self.rollups[i - 1].chain_id >= r.chain_id {
                return Err(NetworkError::UnorderedRollup(r.chain_id));
            }
            if r.weight == 0 || r.weight > MAX_WEIGHT {
                return Err(NetworkError::BadWeight { chain_id: r.chain_id, weight: r.weight });
            }
            if r.chain_id == self.chain_id {
                return Err(NetworkError::RollupIsTheSet(r.chain_id));
            }
        }
        Ok(())
    }

    /// Whether the set orders several rollups without executing them.
    pub fn is_shared(&self) -> bool {
        !self.rollups.is_empty()
    }

    /// The registered rollup of `chain_id`.
    pub fn rollup(&self, chain_id: u64) -> Option<&Rollup> {
        self.rollups.iter().find(|r| r.chain_id == chain_id)
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
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
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

    #[test]
    fn rollups_are_ordered_weighted_and_distinct_from_the_set() {
        let rollup = |chain_id, weight| Rollup { chain_id, weight, min_fee_per_gas: 0 };
        let mut g = genesis(1);
        assert!(!g.is_shared());
        g.rollups = vec![rollup(31338, 1), rollup(31339, 3)];
        g.validate().expect("valid");
        assert!(g.is_shared());
        assert_eq!(g.rollup(31339).map(|r| r.weight), Some(3));
        let json = serde_json::to_string(&g).expect("json");
        assert_eq!(serde_json::from_str::<NetworkGenesis>(&json).expect("parse"), g);
        let parsed: Rollup = serde_json::from_str(r#"{"chainId":5}"#).expect("defaults");
        assert_eq!(parsed, rollup(5, 1));
        g.rollups.swap(0, 1);
        assert_eq!(g.validate(), Err(NetworkError::UnorderedRollup(31338)));
        g.rollups = vec![rollup(31338, 1), rollup(31338, 1)];
        assert_eq!(g.validate(), Err(NetworkError::UnorderedRollup(31338)));
        g.rollups = vec![rollup(31338, 0)];
        assert!(matches!(g.validate(), Err(NetworkError::BadWeight { .. })));
        g.rollups = vec![rollup(31337, 1)];
        assert_eq!(g.validate(), Err(NetworkError::RollupIsTheSet(31337)));
        g.rollups = (0..=MAX_ROLLUPS as u64).map(|i| rollup(40_000 + i, 1)).collect();
        assert_eq!(g.validate(), Err(NetworkError::TooManyRollups(MAX_ROLLUPS + 1)));
    }
}
