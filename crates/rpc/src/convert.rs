//! Building RPC response types from stored data.

use alloy_consensus::{Header, Transaction as _};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{self as rpc, BlockTransactions};
use cairn_primitives::{StoredReceipt, TxEnvelope};
use cairn_storage::{StoreReader, TxRecord};

use crate::RpcError;

pub fn rpc_header(header: Header, hash: B256) -> rpc::Header {
    let size = alloy_rlp_len(&header);
    rpc::Header { hash, inner: header, total_difficulty: Some(U256::ZERO), size: Some(U256::from(size)) }
}

fn alloy_rlp_len(header: &Header) -> usize {
    alloy_rlp::Encodable::length(header)
}

pub fn decode_tx(record: &TxRecord) -> Result<TxEnvelope, RpcError> {
    TxEnvelope::decode_2718(&mut record.raw.as_ref())
        .map_err(|e| RpcError::Internal(format!("stored transaction: {e}")))
}

/// A mined transaction with its block position (and the block's timestamp, which the
/// Execution APIs specification requires).
pub fn rpc_tx(record: &TxRecord, header: &Header, block_hash: B256) -> Result<rpc::Transaction, RpcError> {
    let tx = decode_tx(record)?;
    let effective_gas_price = Some(tx.effective_gas_price(header.base_fee_per_gas));
    Ok(rpc::Transaction {
        inner: alloy_consensus::transaction::Recovered::new_unchecked(tx, record.sender),
        block_hash: Some(block_hash),
        block_number: Some(record.block_number),
        transaction_index: Some(record.index),
        effective_gas_price,
        block_timestamp: Some(header.timestamp),
    })
}

/// A transaction not in a sealed block yet (pooled, or preconfirmed): block fields
/// `null`; `gasPrice` is what it would pay at `base_fee` (as geth reports pending
/// transactions, and as the specification requires of every transaction object).
pub fn pending_rpc_tx(tx: alloy_consensus::transaction::Recovered<TxEnvelope>, base_fee: u64) -> rpc::Transaction {
    let effective_gas_price = Some(tx.effective_gas_price(Some(base_fee)));
    rpc::Transaction {
        inner: tx,
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price,
        block_timestamp: None,
    }
}

/// Where a transaction is: its block (whose hash is unknown until it is sealed) and
/// its position there.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub number: u64,
    pub timestamp: u64,
    /// `None` while the block is preconfirmed or sequenced but not sealed.
    pub block_hash: Option<B256>,
    pub index: u64,
}

impl Place {
    pub fn sealed(header: &Header, block_hash: B256, index: u64) -> Self {
        Self { number: header.number, timestamp: header.timestamp, block_hash: Some(block_hash), index }
    }
}

/// A receipt of a sealed, or only preconfirmed, transaction.
pub fn rpc_receipt(
    tx_hash: B256,
    tx: &TxEnvelope,
    sender: alloy_primitives::Address,
    receipt: &StoredReceipt,
    place: Place,
) -> rpc::TransactionReceipt {
    let mut logs = rpc_logs(receipt, tx_hash, place).into_iter();
    let inner = receipt.envelope().map_logs(|_| logs.next().unwrap_or_default());
    rpc::TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(place.index),
        block_hash: place.block_hash,
        block_number: Some(place.number),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: sender,
        to: tx.to(),
        contract_address: receipt.created(),
    }
}

pub fn rpc_logs(receipt: &StoredReceipt, tx_hash: B256, place: Place) -> Vec<rpc::Log> {
    receipt
        .logs
        .iter()
        .enumerate()
        .map(|(i, log)| rpc::Log {
            inner: log.clone(),
            block_hash: place.block_hash,
            block_number: Some(place.number),
            block_timestamp: Some(place.timestamp),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(place.index),
            log_index: Some(receipt.first_log_index + i as u64),
            removed: false,
        })
        .collect()
}

/// A full block, with transaction hashes or bodies.
pub fn rpc_block(reader: &StoreReader, number: u64, full: bool) -> Result<Option<rpc::Block>, RpcError> {
    let Some(header) = reader.header(number)? else { return Ok(None) };
    let hash = header.hash_slow();
    let hashes = reader.block_tx_hashes(number)?;
    let transactions = if full {
        let mut txs = Vec::with_capacity(hashes.len());
        for h in &hashes {
            let record = reader.tx(*h)?.ok_or_else(|| RpcError::Internal(format!("missing transaction {h}")))?;
            txs.push(rpc_tx(&record, &header, hash)?);
        }
        BlockTransactions::Full(txs)
    } else {
        BlockTransactions::Hashes(hashes)
    };
    Ok(Some(rpc::Block {
        header: rpc_header(header, hash),
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    }))
}
