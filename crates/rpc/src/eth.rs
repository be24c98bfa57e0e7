use alloy_eips::eip2718::Decodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{self as rpc, BlockOverrides, FeeHistory, Filter, FilterBlockOption, TransactionRequest};
use cairn_executor::{BlockContext, CallError, CallOutcome, CallRequest};
use cairn_primitives::StateView;
use cairn_sequencer::{Chain, Ingress};
use cairn_storage::{StateAt, StoreReader};
use jsonrpsee::RpcModule;
use std::sync::Arc;

use crate::convert::{decode_tx, rpc_block, rpc_logs, rpc_receipt, rpc_tx, Place};
use crate::overrides::{parse_block_overrides, Overridden};
use crate::params::Args;
use crate::RpcError;

/// Per-request bounds.
#[derive(Debug, Clone, Copy)]
pub struct RpcLimits {
    /// Gas given to `eth_call` / `eth_estimateGas` at most.
    pub gas_cap: u64,
    /// Widest block range of one `eth_getLogs`.
    pub max_log_range: u64,
    /// Most logs one `eth_getLogs` returns.
    pub max_logs: usize,
    /// Most blocks one `eth_feeHistory` covers.
    pub max_fee_history: u64,
    /// Suggested priority fee (wei) when the chain's minimum tip is lower.
    pub default_tip: u128,
}

impl Default for RpcLimits {
    fn default() -> Self {
        Self {
            gas_cap: 50_000_000,
            max_log_range: 10_000,
            max_logs: 10_000,
            max_fee_history: 1_024,
            default_tip: 1_000_000,
        }
    }
}

/// The state behind every method.
pub struct EthApi {
    pub(crate) chain: Arc<Chain>,
    ingress: Ingress,
    pub(crate) limits: RpcLimits,
    pub(crate) filters: crate::filter_store::Filters,
    /// `cairn dev`: the unlocked development accounts and the test controls.
    pub(crate) dev: Option<crate::dev_accounts::DevMode>,
}

type RpcResult<T> = Result<T, RpcError>;

/// Longest wait of `eth_getBlockByNumber` for a preconfirmed block to be sealed.
pub const SEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The blob base fee of every block: Cairn chains keep the excess blob gas at zero, so
/// it is EIP-4844's minimum (`eth_blobBaseFee` and `eth_feeHistory` agree on it).
pub const BLOB_BASE_FEE: u128 = 1;

/// Most storage keys one `eth_getProof` may ask for.
pub const MAX_PROOF_KEYS: usize = 1_024;

/// A state to read: a sealed block's (the head's or a retained older one's), or the
/// newest executed one (`pending`).
pub(crate) enum State {
    Sealed(Box<StateAt>),
    Pending(cairn_sequencer::PendingView),
}

impl StateView for State {
    fn account(
        &self,
        address: Address,
    ) -> Result<Option<cairn_primitives::AccountState>, cairn_primitives::StateError> {
        match self {
            Self::Sealed(s) => s.account(address),
            Self::Pending(s) => s.account(address),
        }
    }

    fn storage(&self, address: Address, slot: U256) -> Result<U256, cairn_primitives::StateError> {
        match self {
            Self::Sealed(s) => s.storage(address, slot),
            Self::Pending(s) => s.storage(address, slot),
        }
    }

    fn code(&self, code_hash: B256) -> Result<Bytes, cairn_primitives::StateError> {
        match self {
            Self::Sealed(s) => s.code(code_hash),
            Self::Pending(s) => s.code(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<B256, cairn_primitives::StateError> {
        match self {
            Self::Sealed(s) => s.block_hash(number),
            Self::Pending(s) => s.block_hash(number),
        }
    }
}

pub(crate) fn invalid(e: impl std::fmt::Display) -> RpcError {
    RpcError::InvalidParams(e.to_string())
}

impl EthApi {
    /// Where this node's transactions go.
    pub(crate) fn ingress(&self) -> &Ingress {
        &self.ingress
    }

    pub fn new(chain: Arc<Chain>, ingress: Ingress, limits: RpcLimits) -> Self {
        Self { chain, ingress, limits, filters: Default::default(), dev: None }
    }

    /// Unlocks `dev`'s accounts and registers the test controls (`cairn dev` only).
    pub fn with_dev(mut self, dev: crate::dev_accounts::DevMode) -> Self {
        self.dev = Some(dev);
        self
    }

    fn reader(&self) -> RpcResult<StoreReader> {
        Ok(self.chain.store.reader()?)
    }

    /// Block number a tag/number/hash names, `None` if there is no such block.
    fn resolve(&self, reader: &StoreReader, id: BlockId) -> RpcResult<Option<u64>> {
        let head = reader.head()?;
        Ok(match id {
            BlockId::Hash(h) => reader.block_number(h.block_hash)?,
            BlockId::Number(BlockNumberOrTag::Earliest) => Some(0),
            // `finalized`: on the DA layer, read back and checked (where blocks become
            // firm); `safe`, `latest`: the newest sealed block, decided by the chain's
            // finality (docs/SHARED.md).
            BlockId::Number(BlockNumberOrTag::Finalized) => Some(self.chain.finalized_through(head)),
            BlockId::Number(BlockNumberOrTag::Number(n)) => (n <= head).then_some(n),
            BlockId::Number(_) => Some(head),
        })
    }

    /// The state at `id`: `pending` is the newest executed state (blocks whose state
    /// roots are still being computed included); `latest` and numbers name sealed blocks.
    fn state_at(&self, id: Option<BlockId>) -> RpcResult<State> {
        if matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending))) {
            return Ok(State::Pending(self.chain.pending_view()));
        }
        self.sealed_state_at(id).map(|r| State::Sealed(Box::new(r)))
    }

    /// The sealed state at `id` (`pending` means `latest` here): the head's, or an
    /// older block's within the state history.
    fn sealed_state_at(&self, id: Option<BlockId>) -> RpcResult<StateAt> {
        if matches!(id, None | Some(BlockId::Number(BlockNumberOrTag::Latest))) {
            self.settle_latest();
        }
        let reader = self.reader()?;
        let id = id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest));
        match self.resolve(&reader, id)? {
            Some(n) => Ok(reader.into_state_at(n)?),
            None => Err(RpcError::Server("header not found".into())),
        }
    }

    /// Context of a simulated call on `state`: at a sealed block (`latest` included),
    /// that block's own header, as geth and anvil do (`block.number` in a call at
    /// `latest` is the latest block's number); at `pending`, the next block the builder
    /// would produce.
    fn block_context(&self, state: &State) -> RpcResult<BlockContext> {
        if let State::Sealed(at) = state {
            let header = at
                .reader()
                .header(at.block())?
                .ok_or_else(|| RpcError::Internal(format!("header {} missing", at.block())))?;
            return Ok(BlockContext::for_chain(
                &self.chain.config,
                header.number,
                header.timestamp,
                header.base_fee_per_gas.unwrap_or_default(),
                header.mix_hash,
            ));
        }
        let tip = self.chain.tip();
        Ok(BlockContext::for_chain(
            &self.chain.config,
            tip.number + 1,
            tip.timestamp.max(now_secs()),
            self.chain.next_base_fee(),
            cairn_sequencer::next_prevrandao(&tip, tip.number + 1),
        ))
    }

    /// `eth_getProof` (EIP-1186): account and storage proofs against the state root of
    /// a sealed block (the head or one within the state history).
    pub fn proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        id: Option<BlockId>,
    ) -> RpcResult<rpc::EIP1186AccountProofResponse> {
        if keys.len() > MAX_PROOF_KEYS {
            return Err(invalid(format!("too many storage keys: {} (at most {MAX_PROOF_KEYS})", keys.len())));
        }
        let state = self.sealed_state_at(id)?;
        let slots: Vec<U256> = keys.iter().map(|k| U256::from_be_bytes(k.0)).collect();
        let proofs = cairn_trie::proofs(&state, address, &slots)?;
        let storage_proof = keys
            .into_iter()
            .zip(proofs.storage)
            .map(|(key, (value, proof))| rpc::EIP1186StorageProof { key: key.into(), value, proof })
            .collect();
        let account_proof = proofs.account_proof;
        let record = proofs.record.unwrap_or(cairn_storage::AccountRecord {
            state: Default::default(),
            storage_root: cairn_storage::EMPTY_ROOT,
        });
        Ok(rpc::EIP1186AccountProofResponse {
            address,
            balance: record.state.balance,
            code_hash: record.state.code_hash,
            nonce: record.state.nonce,
            storage_hash: record.storage_root,
            account_proof,
            storage_proof,
        })
    }

    pub async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        self.ingress.submit(&raw).await.map_err(|e| RpcError::Server(e.to_string()))
    }

    /// A transaction another validator of the set relayed (admitted, not relayed again).
    pub async fn relayed_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        self.ingress.submit_relayed(&raw).await.map_err(|e| RpcError::Server(e.to_string()))
    }

    pub fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<rpc::Transaction>> {
        // Looked up in the order a transaction moves (pool, then executed-but-unsealed,
        // then sealed; it is in both places during each move), so none is missed.
        let pending = self.chain.pool.lock().get(&hash).map(|p| p.tx.clone()).or_else(|| {
            // Executed but not sealed yet: reported like a pending transaction (the block
            // hash is not known until the state root is).
            self.chain.find_unsealed(&hash).and_then(|u| {
                let tx = cairn_primitives::TxEnvelope::decode_2718(&mut u.raw.as_ref()).ok()?;
                Some(alloy_consensus::transaction::Recovered::new_unchecked(tx, u.sender))
            })
        });
        if let Some(tx) = pending {
            return Ok(Some(crate::convert::pending_rpc_tx(tx, self.chain.next_base_fee())));
        }
        let reader = self.reader()?;
        let Some(record) = reader.tx(hash)? else { return Ok(None) };
        let header = reader.header(record.block_number)?.ok_or_else(|| RpcError::Internal("block missing".into()))?;
        Ok(Some(rpc_tx(&record, &header, header.hash_slow())?))
    }

    /// Read-your-writes for `latest`: once this node has handed out a preconfirmed
    /// receipt for block `h`, reads of the latest state wait (at most [`SEAL_WAIT`])
    /// until `h` is sealed, so a client that saw a receipt reads its effects. `latest`
    /// stays the sealed head; `pending` serves preconfirmed state at once.
    fn settle_latest(&self) {
        let promised = self.chain.receipt_watermark();
        if promised > self.chain.latest().0.number {
            self.chain.wait_sealed_for(promised, SEAL_WAIT);
        }
    }

    /// `eth_getTransactionReceipt`: the receipt of a sealed transaction, with its block
    /// hash, as every standard client expects. A transaction that is preconfirmed or
    /// sequenced but not sealed yet is waited for (at most `wait`: its block is sealed
    /// within a slot and a root) and then answered sealed; `null` if the wait runs out
    /// or the transaction is only pooled. Preconfirmed receipts (block hash `null`) are
    /// served by [`EthApi::preconfirmed_receipt`] (`cairn_getTransactionReceipt`).
    pub fn receipt(&self, hash: B256, wait: std::time::Duration) -> RpcResult<Option<rpc::TransactionReceipt>> {
        if let Some(r) = self.sealed_receipt(hash)? {
            return Ok(Some(r));
        }
        if wait.is_zero() {
            return Ok(None);
        }
        // Not unsealed either: pooled, unknown, or sealed just now (it moves from the
        // unsealed blocks to the store), which one more read tells.
        let Some(unsealed) = self.chain.find_unsealed(&hash) else { return self.sealed_receipt(hash) };
        if !self.chain.wait_sealed_for(unsealed.number, wait) {
            return Ok(None);
        }
        self.sealed_receipt(hash)
    }

    /// The receipt of a sealed transaction.
    pub fn sealed_receipt(&self, hash: B256) -> RpcResult<Option<rpc::TransactionReceipt>> {
        let reader = self.reader()?;
        let Some(record) = reader.tx(hash)? else { return Ok(None) };
        let Some(receipt) = reader.receipt_at(record.block_number, record.index)? else { return Ok(None) };
        let header = reader.header(record.block_number)?.ok_or_else(|| RpcError::Internal("block missing".into()))?;
        let place = Place::sealed(&header, header.hash_slow(), record.index);
        Ok(Some(rpc_receipt(hash, &decode_tx(&record)?, record.sender, &receipt, place)))
    }

    /// The receipt of a sealed transaction, or of a preconfirmed (or sequenced) one
    /// whose block is not sealed yet: then `blockHash` is null while `blockNumber` and
    /// `transactionIndex` are the promised ones (`cairn_getTransactionReceipt`).
    pub fn preconfirmed_receipt(&self, hash: B256) -> RpcResult<Option<rpc::TransactionReceipt>> {
        if let Some(r) = self.sealed_receipt(hash)? {
            return Ok(Some(r));
        }
        let Some(unsealed) = self.chain.find_unsealed(&hash) else { return Ok(None) };
        self.chain.note_receipt_height(unsealed.number);
        Ok(Some(unsealed_receipt(&hash, &unsealed)?))
    }

    pub fn block_by_id(&self, id: BlockId, full: bool) -> RpcResult<Option<rpc::Block>> {
        let reader = self.reader()?;
        match self.resolve(&reader, id)? {
            Some(n) => rpc_block(&reader, n, full),
            None => Ok(None),
        }
    }

    pub fn block_tx_count(&self, id: BlockId) -> RpcResult<Option<U64>> {
        let reader = self.reader()?;
        match self.resolve(&reader, id)? {
            Some(n) if reader.header(n)?.is_some() => Ok(Some(U64::from(reader.block_tx_hashes(n)?.len()))),
            _ => Ok(None),
        }
    }

    pub fn balance(&self, address: Address, id: Option<BlockId>) -> RpcResult<U256> {
        let state = self.state_at(id)?;
        Ok(state.account(address).map_err(|e| RpcError::Internal(e.0))?.map(|a| a.balance).unwrap_or_default())
    }

    pub fn transaction_count(&self, address: Address, id: Option<BlockId>) -> RpcResult<U64> {
        let pending = matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        let state = self.state_at(id)?;
        let nonce = state.account(address).map_err(|e| RpcError::Internal(e.0))?.map(|a| a.nonce).unwrap_or_default();
        if pending {
            if let Some(n) = self.chain.pool.lock().pending_nonce(&address) {
                return Ok(U64::from(n.max(nonce)));
            }
        }
        Ok(U64::from(nonce))
    }

    pub fn code(&self, address: Address, id: Option<BlockId>) -> RpcResult<Bytes> {
        let state = self.state_at(id)?;
        let Some(acc) = state.account(address).map_err(|e| RpcError::Internal(e.0))? else { return Ok(Bytes::new()) };
        state.code(acc.code_hash).map_err(|e| RpcError::Internal(e.0))
    }

    /// `eth_getStorageValues`: many slots of many accounts at one block (at most
    /// [`MAX_PROOF_KEYS`] slots in all), each value as 32 bytes.
    pub fn storage_values(
        &self,
        requests: std::collections::BTreeMap<Address, Vec<U256>>,
        id: Option<BlockId>,
    ) -> RpcResult<std::collections::BTreeMap<Address, Vec<B256>>> {
        let total: usize = requests.values().map(Vec::len).sum();
        if total > MAX_PROOF_KEYS {
            return Err(invalid(format!("too many storage keys: {total} (at most {MAX_PROOF_KEYS})")));
        }
        let state = self.state_at(id)?;
        let mut out = std::collections::BTreeMap::new();
        for (address, slots) in requests {
            let mut values = Vec::with_capacity(slots.len());
            for slot in slots {
                let v = state.storage(address, slot).map_err(|e| RpcError::Internal(e.0))?;
                values.push(B256::from(v.to_be_bytes::<32>()));
            }
            out.insert(address, values);
        }
        Ok(out)
    }

    pub fn storage_at(&self, address: Address, slot: U256, id: Option<BlockId>) -> RpcResult<B256> {
        let state = self.state_at(id)?;
        let v = state.storage(address, slot).map_err(|e| RpcError::Internal(e.0))?;
        Ok(B256::from(v.to_be_bytes::<32>()))
    }

    pub(crate) fn call_request(req: TransactionRequest) -> RpcResult<CallRequest> {
        let input = req.input.try_into_unique_input().map_err(invalid)?.unwrap_or_default();
        Ok(CallRequest {
            from: req.from,
            to: match req.to {
                Some(TxKind::Call(a)) => Some(a),
                _ => None,
            },
            gas: req.gas,
            gas_price: req.gas_price,
            max_fee_per_gas: req.max_fee_per_gas,
            max_priority_fee_per_gas: req.max_priority_fee_per_gas,
            value: req.value,
            input,
            nonce: req.nonce,
            access_list: req.access_list,
        })
    }

    /// The state and block context a simulated call at `id` runs in, overrides applied.
    pub(crate) fn simulation(
        &self,
        id: Option<BlockId>,
        block: Option<&BlockOverrides>,
    ) -> RpcResult<(State, BlockContext, std::collections::BTreeMap<u64, B256>)> {
        let state = self.state_at(id)?;
        let mut ctx = self.block_context(&state)?;
        let hashes = match block {
            Some(o) => crate::overrides::apply_block_overrides(&mut ctx, o)?,
            None => Default::default(),
        };
        Ok((state, ctx, hashes))
    }

    pub fn call(
        &self,
        req: TransactionRequest,
        id: Option<BlockId>,
        overrides: Option<&StateOverride>,
        block: Option<&BlockOverrides>,
    ) -> RpcResult<Bytes> {
        let (state, ctx, hashes) = self.simulation(id, block)?;
        let view = Overridden::new(&state, overrides, hashes)?;
        let req = Self::call_request(req)?;
        match cairn_executor::call(&view, &ctx, &req, self.limits.gas_cap).map_err(call_error)? {
            CallOutcome::Success { output, .. } => Ok(output),
            CallOutcome::Revert { output, .. } => Err(RpcError::reverted(output)),
            CallOutcome::Halt { reason, .. } => Err(RpcError::Server(halt_message(&reason))),
        }
    }

    pub fn estimate_gas(
        &self,
        req: TransactionRequest,
        id: Option<BlockId>,
        overrides: Option<&StateOverride>,
        block: Option<&BlockOverrides>,
    ) -> RpcResult<U64> {
        let (state, ctx, hashes) = self.simulation(id, block)?;
        let view = Overridden::new(&state, overrides, hashes)?;
        let req = Self::call_request(req)?;
        match cairn_executor::estimate_gas(&view, &ctx, &req, self.limits.gas_cap).map_err(call_error)? {
            Ok(gas) => Ok(U64::from(gas)),
            Err(CallOutcome::Revert { output, .. }) => Err(RpcError::reverted(output)),
            Err(CallOutcome::Halt { reason, .. }) => Err(RpcError::Server(halt_message(&reason))),
            Err(CallOutcome::Success { .. }) => Err(RpcError::Internal("estimate failed".into())),
        }
    }

    pub fn suggested_tip(&self) -> u128 {
        self.chain.config.min_tip.max(self.limits.default_tip)
    }

    pub fn gas_price(&self) -> U256 {
        U256::from(self.chain.next_base_fee() as u128 + self.suggested_tip())
    }

    pub fn fee_history(
        &self,
        count: u64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let reader = self.reader()?;
        let newest = self
            .resolve(&reader, BlockId::Number(newest))?
            .ok_or_else(|| RpcError::Server("header not found".into()))?;
        let count = count.clamp(1, self.limits.max_fee_history).min(newest + 1);
        if let Some(p) = &percentiles {
            if p.len() > 100 || p.windows(2).any(|w| w[0] > w[1]) || p.iter().any(|v| !(0.0..=100.0).contains(v)) {
                return Err(invalid("invalid reward percentiles: at most 100, ascending, within [0, 100]"));
            }
        }
        let oldest = newest + 1 - count;
        let mut base_fees = Vec::with_capacity(count as usize + 1);
        let mut ratios = Vec::with_capacity(count as usize);
        let mut rewards = Vec::new();
        let mut last = None;
        for n in oldest..=newest {
            let header = reader.header(n)?.ok_or_else(|| RpcError::Internal(format!("header {n} missing")))?;
            let base = header.base_fee_per_gas.unwrap_or_default();
            base_fees.push(base as u128);
            ratios.push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
            if let Some(p) = &percentiles {
                rewards.push(block_rewards(&reader, n, base, header.gas_used, p)?);
            }
            last = Some(header);
        }
        if let Some(h) = last {
            let next = self.chain.config.next_base_fee(h.gas_used, h.gas_limit, h.base_fee_per_gas.unwrap_or_default());
            base_fees.push(next as u128);
        }
        Ok(FeeHistory {
            base_fee_per_gas: base_fees,
            gas_used_ratio: ratios,
            base_fee_per_blob_gas: vec![BLOB_BASE_FEE; count as usize + 1],
            blob_gas_used_ratio: vec![0.0; count as usize],
            oldest_block: oldest,
            reward: percentiles.map(|_| rewards),
        })
    }

    /// `eth_getLogs`: uses the log index to find candidate blocks, bounded in range and size.
    pub fn logs(&self, filter: &Filter) -> RpcResult<Vec<rpc::Log>> {
        self.settle_latest();
        let reader = self.reader()?;
        let head = reader.head()?;
        let (from, to) = match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let n = reader.block_number(hash)?.ok_or_else(|| RpcError::Server("unknown block".into()))?;
                (n, n)
            }
            FilterBlockOption::Range { from_block, to_block } => {
                let resolve = |b: Option<BlockNumberOrTag>, default: u64| -> RpcResult<u64> {
                    Ok(match b {
                        None => default,
                        Some(BlockNumberOrTag::Number(n)) => n.min(head),
                        Some(BlockNumberOrTag::Earliest) => 0,
                        Some(_) => head,
                    })
                };
                (resolve(from_block, head)?, resolve(to_block, head)?)
            }
        };
        if from > to {
            return Err(RpcError::InvalidParams("invalid block range params".into()));
        }
        if to - from >= self.limits.max_log_range {
            return Err(RpcError::LimitExceeded(format!(
                "query exceeds max block range {}",
                self.limits.max_log_range
            )));
        }
        self.logs_in(&reader, filter, from, to)
    }

    /// The logs matching `filter` (addresses and topics) in sealed blocks `from..=to`.
    pub(crate) fn logs_in(
        &self,
        reader: &StoreReader,
        filter: &Filter,
        from: u64,
        to: u64,
    ) -> RpcResult<Vec<rpc::Log>> {
        let blocks = self.candidate_blocks(reader, filter, from, to)?;
        let mut out = Vec::new();
        for n in blocks {
            let Some(header) = reader.header(n)? else { continue };
            if !filter.matches_bloom(header.logs_bloom) {
                continue;
            }
            let hash = header.hash_slow();
            let receipts = reader.block_receipts(n)?;
            for (index, (tx_hash, receipt)) in reader.block_tx_hashes(n)?.into_iter().zip(receipts).enumerate() {
                for log in rpc_logs(&receipt, tx_hash, Place::sealed(&header, hash, index as u64)) {
                    if filter.matches(&log.inner) {
                        if out.len() >= self.limits.max_logs {
                            return Err(RpcError::LimitExceeded(format!(
                                "query returned more than {} results",
                                self.limits.max_logs
                            )));
                        }
                        out.push(log);
                    }
                }
            }
        }
        Ok(out)
    }

    fn candidate_blocks(&self, reader: &StoreReader, filter: &Filter, from: u64, to: u64) -> RpcResult<Vec<u64>> {
        if !filter.address.is_empty() {
            let mut blocks = Vec::new();
            for a in filter.address.iter() {
                blocks.extend(reader.blocks_with_log_address(*a, from, to)?);
            }
            blocks.sort_unstable();
            blocks.dedup();
            return Ok(blocks);
        }
        if !filter.topics[0].is_empty() {
            let mut blocks = Vec::new();
            for t in filter.topics[0].iter() {
                blocks.extend(reader.blocks_with_log_topic0(*t, from, to)?);
            }
            blocks.sort_unstable();
            blocks.dedup();
            return Ok(blocks);
        }
        // Other topic positions only: every block in range, screened by its header bloom.
        Ok((from..=to).collect())
    }

    /// Registers the `web3_*`, `net_*` and core `eth_*` methods (`module` registers the
    /// rest).
    pub(crate) fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
        let version = format!("cairn/v{}", env!("CARGO_PKG_VERSION"));
        m.register_method("web3_clientVersion", move |_, _, _| Ok::<_, RpcError>(version.clone()))?;
        m.register_method("web3_sha3", |p, _, _| {
            let data: Bytes = Args::new(&p).next("data")?;
            Ok::<_, RpcError>(alloy_primitives::keccak256(&data))
        })?;
        m.register_method("net_version", |_, api, _| Ok::<_, RpcError>(api.chain.config.chain_id.to_string()))?;
        m.register_method("net_listening", |_, _, _| Ok::<_, RpcError>(true))?;
        m.register_method("net_peerCount", |_, _, _| Ok::<_, RpcError>(U64::ZERO))?;
        m.register_method("eth_chainId", |_, api, _| Ok::<_, RpcError>(U64::from(api.chain.config.chain_id)))?;
        m.register_method("eth_syncing", |_, _, _| Ok::<_, RpcError>(false))?;
        m.register_method("eth_mining", |_, _, _| Ok::<_, RpcError>(false))?;
        m.register_blocking_method("eth_config", |_, api, _| api.config())?;
        m.register_method("eth_coinbase", |_, api, _| Ok::<_, RpcError>(api.chain.config.fee_recipient))?;
        m.register_method("eth_accounts", |_, api, _| {
            Ok::<_, RpcError>(api.dev.as_ref().map(|d| d.addresses()).unwrap_or_default())
        })?;
        m.register_blocking_method("eth_blockNumber", |_, api, _| {
            // Read-your-writes: a client holding a preconfirmed receipt sees its block.
            api.settle_latest();
            Ok::<_, RpcError>(U64::from(api.chain.latest().0.number))
        })?;
        m.register_method("eth_gasPrice", |_, api, _| Ok::<_, RpcError>(api.gas_price()))?;
        m.register_method("eth_maxPriorityFeePerGas", |_, api, _| Ok::<_, RpcError>(U256::from(api.suggested_tip())))?;
        m.register_method("eth_baseFee", |_, api, _| Ok::<_, RpcError>(U256::from(api.chain.next_base_fee())))?;
        m.register_blocking_method("eth_getStorageValues", |p, api, _| {
            let mut args = Args::new(&p);
            let requests: std::collections::BTreeMap<Address, Vec<U256>> = args.next("storage requests")?;
            api.storage_values(requests, args.opt("block")?)
        })?;
        m.register_method("eth_blobBaseFee", |_, _, _| Ok::<_, RpcError>(U256::from(BLOB_BASE_FEE)))?;
        m.register_async_method("eth_sendRawTransaction", |p, api, _| async move {
            let raw: Bytes = Args::new(&p).next("raw transaction")?;
            api.send_raw_transaction(raw).await
        })?;
        m.register_method("eth_getTransactionByHash", |p, api, _| {
            api.transaction_by_hash(Args::new(&p).next("transaction hash")?)
        })?;
        m.register_blocking_method("eth_getTransactionReceipt", |p, api, _| {
            api.receipt(Args::new(&p).next("transaction hash")?, SEAL_WAIT)
        })?;
        m.register_blocking_method("eth_getBlockByNumber", |p, api, _| {
            let mut args = Args::new(&p);
            let n: BlockNumberOrTag = args.next("block number or tag")?;
            let full: Option<bool> = args.opt("full transactions flag")?;
            // A block that is preconfirmed but not sealed yet (a client holding a
            // preconfirmed receipt asks for it) is waited for, briefly.
            if let BlockNumberOrTag::Number(n) = n {
                api.chain.wait_sealed_for(n, SEAL_WAIT);
            }
            api.block_by_id(BlockId::Number(n), full.unwrap_or(false))
        })?;
        m.register_method("eth_getBlockByHash", |p, api, _| {
            let mut args = Args::new(&p);
            let h: B256 = args.next("block hash")?;
            let full: Option<bool> = args.opt("full transactions flag")?;
            api.block_by_id(BlockId::from(h), full.unwrap_or(false))
        })?;
        m.register_method("eth_getBlockTransactionCountByNumber", |p, api, _| {
            api.block_tx_count(BlockId::Number(Args::new(&p).next("block number or tag")?))
        })?;
        m.register_method("eth_getBlockTransactionCountByHash", |p, api, _| {
            api.block_tx_count(BlockId::from(Args::new(&p).next::<B256>("block hash")?))
        })?;
        m.register_blocking_method("eth_getBalance", |p, api, _| {
            let mut args = Args::new(&p);
            let a = args.next("address")?;
            api.balance(a, args.opt("block")?)
        })?;
        m.register_blocking_method("eth_getTransactionCount", |p, api, _| {
            let mut args = Args::new(&p);
            let a = args.next("address")?;
            api.transaction_count(a, args.opt("block")?)
        })?;
        m.register_blocking_method("eth_getCode", |p, api, _| {
            let mut args = Args::new(&p);
            let a = args.next("address")?;
            api.code(a, args.opt("block")?)
        })?;
        m.register_blocking_method("eth_getStorageAt", |p, api, _| {
            let mut args = Args::new(&p);
            let a: Address = args.next("address")?;
            let slot: U256 = args.next("storage slot")?;
            api.storage_at(a, slot, args.opt("block")?)
        })?;
        m.register_blocking_method("eth_getProof", |p, api, _| {
            let mut args = Args::new(&p);
            let a: Address = args.next("address")?;
            // Keys as quantities or data of any length up to 32 bytes ("0x0" included).
            let keys: Vec<U256> = args.next("storage keys")?;
            api.proof(a, keys.into_iter().map(B256::from).collect(), args.opt("block")?)
        })?;
        m.register_blocking_method("eth_call", |p, api, _| {
            let mut args = Args::new(&p);
            let req: TransactionRequest = args.next("transaction call object")?;
            let block = args.opt("block")?;
            let state: Option<StateOverride> = args.opt("state overrides")?;
            let blk = args.opt::<serde_json::Value>("block overrides")?.map(parse_block_overrides).transpose()?;
            api.call(req, block, state.as_ref(), blk.as_ref())
        })?;
        m.register_blocking_method("eth_estimateGas", |p, api, _| {
            let mut args = Args::new(&p);
            let req: TransactionRequest = args.next("transaction call object")?;
            let block = args.opt("block")?;
            let state: Option<StateOverride> = args.opt("state overrides")?;
            let blk = args.opt::<serde_json::Value>("block overrides")?.map(parse_block_overrides).transpose()?;
            api.estimate_gas(req, block, state.as_ref(), blk.as_ref())
        })?;
        m.register_method("eth_feeHistory", |p, api, _| {
            let mut args = Args::new(&p);
            let count: U64 = args.next("block count")?;
            let newest: BlockNumberOrTag = args.next("newest block")?;
            let pct: Option<Vec<f64>> = args.opt("reward percentiles")?;
            api.fee_history(count.to(), newest, pct)
        })?;
        m.register_blocking_method("eth_getLogs", |p, api, _| {
            let filter: Filter = Args::new(&p).next("filter object")?;
            api.logs(&filter)
        })?;
        Ok(())
    }
}

/// The receipt of a transaction that is preconfirmed or sequenced but not sealed.
pub(crate) fn unsealed_receipt(hash: &B256, u: &cairn_sequencer::UnsealedTx) -> RpcResult<rpc::TransactionReceipt> {
    let tx = cairn_primitives::TxEnvelope::decode_2718(&mut u.raw.as_ref())
        .map_err(|e| RpcError::Internal(format!("unsealed transaction: {e}")))?;
    let place = Place { number: u.number, timestamp: u.timestamp, block_hash: None, index: u.position };
    Ok(rpc_receipt(*hash, &tx, u.sender, &u.receipt, place))
}

fn call_error(e: CallError) -> RpcError {
    match e {
        CallError::State(s) => RpcError::Internal(s),
        other => RpcError::Server(other.to_string()),
    }
}

fn halt_message(reason: &str) -> String {
    if reason.contains("OutOfGas") {
        "out of gas".into()
    } else {
        format!("execution halted: {reason}")
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Effective tips at the requested gas-weighted percentiles of one block.
fn block_rewards(
    reader: &StoreReader,
    number: u64,
    base_fee: u64,
    gas_used: u64,
    percentiles: &[f64],
) -> RpcResult<Vec<u128>> {
    let mut tips = Vec::new();
    for r in reader.block_receipts(number)? {
        tips.push((r.effective_gas_price.saturating_sub(base_fee as u128), r.gas_used));
    }
    if tips.is_empty() {
        return Ok(vec![0; percentiles.len()]);
    }
    tips.sort_unstable();
    let mut out = Vec::with_capacity(percentiles.len());
    let (mut i, mut cumulative) = (0usize, tips[0].1);
    for p in percentiles {
        let threshold = (gas_used as f64 * p / 100.0) as u64;
        while cumulative < threshold && i + 1 < tips.len() {
            i += 1;
            cumulative += tips[i].1;
        }
        out.push(tips[i].0);
    }
    Ok(out)
}
