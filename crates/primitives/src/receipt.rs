use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxType};
use alloy_primitives::{Address, Log};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// A receipt as stored: the consensus receipt plus what RPC needs and cannot recompute
/// cheaply (gas used by this transaction alone, the created contract, the price paid).
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct StoredReceipt {
    pub tx_type: u8,
    pub success: bool,
    pub cumulative_gas_used: u64,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub from: Address,
    /// `Address::ZERO` when no contract was created.
    pub contract_address: Address,
    /// Block-wide index of this transaction's first log.
    pub first_log_index: u64,
    pub logs: Vec<Log>,
}

impl StoredReceipt {
    pub fn created(&self) -> Option<Address> {
        (self.contract_address != Address::ZERO).then_some(self.contract_address)
    }

    /// The Ethereum consensus receipt (with bloom) of this transaction.
    pub fn envelope(&self) -> ReceiptEnvelope<Log> {
        let receipt = Receipt {
            status: Eip658Value::Eip658(self.success),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs.clone(),
        };
        let with_bloom = ReceiptWithBloom::from(receipt);
        match TxType::try_from(self.tx_type).unwrap_or(TxType::Legacy) {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
        }
    }
}
