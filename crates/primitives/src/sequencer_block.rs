//! The sequencer block: the unit of ordering and of consensus.
//!
//! A proposer ends each block it builds as a sequencer block: which height and round,
//! the sequencer block it extends, the block context its transactions executed in, who
//! proposed it, its transactions in order and the signed fragments that preconfirmed
//! them. Its own execution result is not in it (the rollup block, with its state root, is
//! made from it by the sealer once it is decided); under a validator set it carries the
//! result of the block before it (`executed`: execution enters consensus one block
//! late). Its identity is the keccak256 of its RLP encoding.

use alloy_primitives::{keccak256, Address, B256};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// The execution result of a block, as the next sequencer block carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, RlpEncodable, RlpDecodable, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Executed {
    /// The rollup block's number and header hash (which commits to everything below).
    pub number: u64,
    pub header_hash: B256,
    pub state_root: B256,
}

/// One sequencer block.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[rlp(trailing)]
pub struct SequencerBlock {
    pub chain_id: u64,
    pub height: u64,
    /// The consensus round it was proposed in (always 0 for a single sequencer).
    pub round: u32,
    /// Hash of the sequencer block at `height − 1` (zero above genesis).
    pub parent: B256,
    pub proposer: Address,
    /// The block context every transaction of the block executed in.
    pub timestamp: u64,
    pub base_fee: u64,
    pub gas_limit: u64,
    pub prevrandao: B256,
    pub beneficiary: Address,
    /// Hashes of its transactions, in block order.
    pub transactions: Vec<B256>,
    /// Hashes of the signed fragments that preconfirmed them, in order (empty when the
    /// block was built without fragments).
    pub fragments: Vec<B256>,
    /// Under a validator set: the rollup block `height − 1` as the proposer executed and
    /// sealed it. A validator whose own differs prevotes nil; one that sees such a block
    /// decided halts (it diverged). `None` for a single sequencer (its sealer runs behind
    /// its builder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed: Option<Executed>,
    /// In a shared set: the namespace (rollup chain id) of each transaction, in block
    /// order, so that a rollup's node can tell which of the block's transactions are its
    /// own from the block alone. `None` for a single rollup's chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<u64>>,
}

impl SequencerBlock {
    /// Its identity: keccak256 of its RLP encoding.
    pub fn hash(&self) -> B256 {
        keccak256(alloy_rlp::encode(self))
    }

    pub fn encode(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        <Self as alloy_rlp::Decodable>::decode(&mut bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> SequencerBlock {
        SequencerBlock {
            chain_id: 31337,
            height: 7,
            round: 0,
            parent: B256::repeat_byte(1),
            proposer: Address::repeat_byte(2),
            timestamp: 1_700_000_000,
            base_fee: 1_000_000_000,
            gas_limit: 30_000_000,
            prevrandao: B256::repeat_byte(3),
            beneficiary: Address::ZERO,
            transactions: vec![B256::repeat_byte(4), B256::repeat_byte(5)],
            fragments: vec![B256::repeat_byte(6)],
            executed: None,
            namespaces: None,
        }
    }

    #[test]
    fn the_execution_result_of_the_block_before_is_optional_and_in_the_hash() {
        let without = block();
        let mut with = block();
        with.executed =
            Some(Executed { number: 6, header_hash: B256::repeat_byte(8), state_root: B256::repeat_byte(9) });
        assert_eq!(SequencerBlock::decode(&with.encode()).expect("decodes"), with);
        assert_eq!(SequencerBlock::decode(&without.encode()).expect("decodes"), without);
        assert_ne!(with.hash(), without.hash());
        let mut other = with.clone();
        other.executed = Some(Executed { state_root: B256::repeat_byte(1), ..other.executed.expect("some") });
        assert_ne!(other.hash(), with.hash());
        let json = serde_json::to_value(&without).expect("json");
        assert!(json.get("executed").is_none(), "absent for a single sequencer: {json}");
        let mut shared = block();
        shared.namespaces = Some(vec![31338, 31339]);
        assert_eq!(SequencerBlock::decode(&shared.encode()).expect("decodes"), shared);
        assert_ne!(shared.hash(), without.hash());
        assert_eq!(without.encode(), {
            // The field is absent from a single rollup's blocks: their hashes are unchanged.
            let mut b = block();
            b.namespaces = None;
            b.encode()
        });
    }

    #[test]
    fn it_round_trips_and_every_field_is_in_its_hash() {
        let b = block();
        assert_eq!(SequencerBlock::decode(&b.encode()).expect("decodes"), b);
        let mut other = b.clone();
        other.round = 1;
        assert_ne!(other.hash(), b.hash());
        let mut other = b.clone();
        other.transactions.swap(0, 1);
        assert_ne!(other.hash(), b.hash(), "order is part of the block");
        let mut other = b.clone();
        other.fragments.clear();
        assert_ne!(other.hash(), b.hash());
        assert!(SequencerBlock::decode(&b.encode()[..10]).is_err());
    }
}
