//! The validator set as consensus sees it: voting power, quorums, and who proposes.

use alloy_primitives::Address;
use cairn_primitives::network::{NetworkError, NetworkGenesis, Validator};

/// A checked validator set (ordered by address, powers positive, total within `u64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    /// The set of a network genesis, checked.
    pub fn new(genesis: &NetworkGenesis) -> Result<Self, NetworkError> {
        genesis.validate()?;
        let total = genesis.validators.iter().map(|v| v.voting_power).sum();
        Ok(Self { validators: genesis.validators.clone(), total })
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn total_power(&self) -> u64 {
        self.total
    }

    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.validators.binary_search_by_key(address, |v| v.address).ok().map(|i| &self.validators[i])
    }

    /// The least power that is more than two thirds of the total: what a commit needs.
    pub fn quorum(&self) -> u64 {
        self.total / 3 * 2 + (self.total % 3) * 2 / 3 + 1
    }

    /// The least power that is more than one third: at least one honest validator when
    /// fewer than a third are faulty.
    pub fn one_third_plus(&self) -> u64 {
        self.total / 3 + 1
    }

    /// The proposer of `round` at `height`: weighted round robin. Slot `height + round`
    /// (mod the total power) falls in the validators' consecutive power ranges, in
    /// address order, so over any `total` consecutive slots each validator proposes as
    /// many times as it has power; with equal powers they take turns. A failed round
    /// moves to the next slot, so the next round has another proposer (when there is
    /// more than one validator).
    pub fn proposer(&self, height: u64, round: u32) -> &Validator {
        let slot = height.wrapping_add(u64::from(round)) % self.total;
        let mut end = 0u64;
        for v in &self.validators {
            end += v.voting_power;
            if slot < end {
                return v;
            }
        }
        // Unreachable: the ranges cover 0..total.
        &self.validators[self.validators.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer_local::PrivateKeySigner;

    fn set(powers: &[u64]) -> ValidatorSet {
        let mut validators: Vec<Validator> =
            powers.iter().map(|p| NetworkGenesis::validator_of(&PrivateKeySigner::random(), *p)).collect();
        validators.sort_by_key(|v| v.address);
        ValidatorSet::new(&NetworkGenesis {
            chain_id: 1,
            timestamp: 1,
            validators,
            dev_accounts: 0,
            alloc: Default::default(),
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
        })
        .expect("valid")
    }

    #[test]
    fn equal_powers_take_turns_and_a_failed_round_moves_on() {
        let s = set(&[1, 1, 1, 1]);
        let order: Vec<Address> = (0..8).map(|h| s.proposer(h, 0).address).collect();
        for (i, v) in s.validators().iter().enumerate() {
            assert_eq!(order[i], v.address);
            assert_eq!(order[i + 4], v.address);
        }
        assert_ne!(s.proposer(10, 0).address, s.proposer(10, 1).address, "round 1 has another proposer");
        assert_eq!(s.proposer(10, 4).address, s.proposer(10, 0).address, "four rounds later, the first again");
    }

    #[test]
    fn proposals_follow_voting_power() {
        let s = set(&[1, 2, 5]);
        let mut counts = std::collections::HashMap::new();
        for h in 0..800 {
            *counts.entry(s.proposer(h, 0).address).or_insert(0u64) += 1;
        }
        for v in s.validators() {
            assert_eq!(counts[&v.address], 100 * v.voting_power, "{v:?}");
        }
    }

    #[test]
    fn quorums_are_more_than_two_thirds_and_one_third() {
        for (powers, quorum, third) in
            [(&[1u64, 1, 1, 1][..], 3, 2), (&[1, 1, 1][..], 3, 2), (&[1][..], 1, 1), (&[3, 3, 3, 1][..], 7, 4)]
        {
            let s = set(powers);
            assert_eq!(s.quorum(), quorum, "{powers:?}");
            assert!(s.quorum() * 3 > 2 * s.total_power() && (s.quorum() - 1) * 3 <= 2 * s.total_power());
            assert_eq!(s.one_third_plus(), third, "{powers:?}");
        }
        let s = set(&[2, 2]);
        let first = s.validators()[0].clone();
        assert_eq!(s.get(&first.address), Some(&first));
        assert_eq!(s.get(&Address::ZERO), None);
    }
}
