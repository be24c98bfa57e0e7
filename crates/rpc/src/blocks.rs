//! Block-level reads beyond the basics: every receipt of a block
//! (`eth_getBlockReceipts`), a transaction by its block and position, uncles (a rollup
//! has none), and geth's raw encodings (`debug_getRawTransaction`,
//! `debug_getRawReceipts`, `debug_getRawBlock`, `debug_getRawHeader`).

use alloy_eips::eip2718::Encodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Bytes, B256, U64};
use alloy_rpc_types_eth as rpc;
use cairn_storage::StoreReader;
use jsonrpsee::RpcModule;

use crate::convert::{decode_tx, rpc_receipt, rpc_tx, Place};
use crate::eth::{EthApi, SEAL_WAIT};
use crate::params::Args;
use crate::RpcError;

type RpcResult<T> = Result<T, RpcError>;

impl EthApi {
    /// The sealed block `id` names (waiting briefly for a preconfirmed block number, as
    /// `eth_getBlockByNumber` does), `None` if there is none.
    pub(crate) fn sealed_block(&self, id: BlockId) -> RpcResult<Option<(StoreReader, u64)>> {
        if let BlockId::Number(BlockNumberOrTag::Number(n)) = id {
            self.chain.wait_sealed_for(n, SEAL_WAIT);
        }
        let reader = self.chain.store.reader()?;
        let head = reader.head()?;
        let number = match id {
            BlockId::Hash(h) => reader.block_number(h.block_hash)?,
            BlockId::Number(BlockNumberOrTag::Earliest) => Some(0),
            BlockId::Number(BlockNumberOrTag::Number(n)) => (n <= head).then_some(n),
            BlockId::Number(_) => Some(head),
        };
        Ok(number.map(|n| (reader, n)))
    }

    fn header_of(reader: &StoreReader, number: u64) -> RpcResult<alloy_consensus::Header> {
        reader.header(number)?.ok_or_else(|| RpcError::Internal(format!("header {number} missing")))
    }

    /// `eth_getBlockReceipts`: every receipt of a sealed block, in order.
    pub fn block_receipts(&self, id: BlockId) -> RpcResult<Option<Vec<rpc::TransactionReceipt>>> {
        let Some((reader, n)) = self.sealed_block(id)? else { return Ok(None) };
        let header = Self::header_of(&reader, n)?;
        let hash = header.hash_slow();
        let hashes = reader.block_tx_hashes(n)?;
        let receipts = reader.block_receipts(n)?;
        let mut out = Vec::with_capacity(hashes.len());
        for (index, (tx_hash, receipt)) in hashes.into_iter().zip(receipts).enumerate() {
            let record = reader.tx(tx_hash)?.ok_or_else(|| RpcError::Internal(format!("missing tx {tx_hash}")))?;
            let place = Place::sealed(&header, hash, index as u64);
            out.push(rpc_receipt(tx_hash, &decode_tx(&record)?, record.sender, &receipt, place));
        }
        Ok(Some(out))
    }

    /// The transaction at `index` of a sealed block.
    pub fn transaction_by_block_and_index(&self, id: BlockId, index: u64) -> RpcResult<Option<rpc::Transaction>> {
        let Some((reader, n)) = self.sealed_block(id)? else { return Ok(None) };
        let Some(tx_hash) = reader.block_tx_hashes(n)?.get(index as usize).copied() else { return Ok(None) };
        let header = Self::header_of(&reader, n)?;
        let record = reader.tx(tx_hash)?.ok_or_else(|| RpcError::Internal(format!("missing tx {tx_hash}")))?;
        Ok(Some(rpc_tx(&record, &header, header.hash_slow())?))
    }

    /// `eth_getUncleCountBy*`: zero for a known block (a rollup has no uncles).
    pub fn uncle_count(&self, id: BlockId) -> RpcResult<Option<U64>> {
        Ok(self.sealed_block(id)?.map(|_| U64::ZERO))
    }

    /// `debug_getRawTransaction`: the EIP-2718 encoding of a sealed, executed or pooled
    /// transaction; `0x` when unknown (as geth answers).
    pub fn raw_transaction(&self, hash: B256) -> RpcResult<Bytes> {
        if let Some(tx) = self.chain.pool.lock().get(&hash) {
            return Ok(tx.tx.inner().encoded_2718().into());
        }
        if let Some(u) = self.chain.find_unsealed(&hash) {
            return Ok(u.raw.clone());
        }
        let reader = self.chain.store.reader()?;
        Ok(reader.tx(hash)?.map(|r| r.raw).unwrap_or_default())
    }

    /// `debug_getRawReceipts`: each receipt of a sealed block, EIP-2718 encoded.
    pub fn raw_receipts(&self, id: BlockId) -> RpcResult<Vec<Bytes>> {
        let (reader, n) = self.sealed_block(id)?.ok_or_else(|| RpcError::Server("block not found".into()))?;
        Ok(reader.block_receipts(n)?.iter().map(|r| Bytes::from(r.envelope().encoded_2718())).collect())
    }

    /// `debug_getRawHeader`: the RLP encoding of a sealed block's header.
    pub fn raw_header(&self, id: BlockId) -> RpcResult<Bytes> {
        let (reader, n) = self.sealed_block(id)?.ok_or_else(|| RpcError::Server("block not found".into()))?;
        Ok(alloy_rlp::encode(Self::header_of(&reader, n)?).into())
    }

    /// `debug_getRawBlock`: the RLP encoding of a sealed block (header, transactions,
    /// no ommers, no withdrawals).
    pub fn raw_block(&self, id: BlockId) -> RpcResult<Bytes> {
        let (reader, n) = self.sealed_block(id)?.ok_or_else(|| RpcError::Server("block not found".into()))?;
        let header = Self::header_of(&reader, n)?;
        let mut transactions = Vec::new();
        for h in reader.block_tx_hashes(n)? {
            let record = reader.tx(h)?.ok_or_else(|| RpcError::Internal(format!("missing tx {h}")))?;
            transactions.push(decode_tx(&record)?);
        }
        let body = alloy_consensus::BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: header.withdrawals_root.map(|_| Default::default()),
        };
        let block = alloy_consensus::Block::new(header, body);
        Ok(alloy_rlp::encode(&block).into())
    }
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_blocking_method("eth_getBlockReceipts", |p, api, _| {
        api.block_receipts(Args::new(&p).next("block number, tag or hash")?)
    })?;
    m.register_blocking_method("eth_getTransactionByBlockNumberAndIndex", |p, api, _| {
        let mut args = Args::new(&p);
        let n: BlockNumberOrTag = args.next("block number or tag")?;
        let i: U64 = args.next("transaction index")?;
        api.transaction_by_block_and_index(BlockId::Number(n), i.to())
    })?;
    m.register_blocking_method("eth_getTransactionByBlockHashAndIndex", |p, api, _| {
        let mut args = Args::new(&p);
        let h: B256 = args.next("block hash")?;
        let i: U64 = args.next("transaction index")?;
        api.transaction_by_block_and_index(BlockId::from(h), i.to())
    })?;
    m.register_blocking_method("eth_getUncleCountByBlockNumber", |p, api, _| {
        api.uncle_count(BlockId::Number(Args::new(&p).next("block number or tag")?))
    })?;
    m.register_blocking_method("eth_getUncleCountByBlockHash", |p, api, _| {
        api.uncle_count(BlockId::from(Args::new(&p).next::<B256>("block hash")?))
    })?;
    m.register_method("eth_getUncleByBlockNumberAndIndex", |p, _, _| {
        let mut args = Args::new(&p);
        let _: BlockNumberOrTag = args.next("block number or tag")?;
        let _: U64 = args.next("uncle index")?;
        Ok::<_, RpcError>(None::<rpc::Block>)
    })?;
    m.register_method("eth_getUncleByBlockHashAndIndex", |p, _, _| {
        let mut args = Args::new(&p);
        let _: B256 = args.next("block hash")?;
        let _: U64 = args.next("uncle index")?;
        Ok::<_, RpcError>(None::<rpc::Block>)
    })?;
    m.register_blocking_method("debug_getRawTransaction", |p, api, _| {
        api.raw_transaction(Args::new(&p).next("transaction hash")?)
    })?;
    m.register_blocking_method("debug_getRawReceipts", |p, api, _| {
        api.raw_receipts(Args::new(&p).next("block number, tag or hash")?)
    })?;
    m.register_blocking_method("debug_getRawHeader", |p, api, _| {
        api.raw_header(Args::new(&p).next("block number, tag or hash")?)
    })?;
    m.register_blocking_method("debug_getRawBlock", |p, api, _| {
        api.raw_block(Args::new(&p).next("block number, tag or hash")?)
    })?;
    Ok(())
}
