//! Tracing methods, on the inspectors reth uses (`revm-inspectors`, through
//! `cairn_executor::trace`): geth's `debug_traceTransaction`, `debug_traceBlockByNumber`,
//! `debug_traceBlockByHash`, `debug_traceCall`; Parity's `trace_transaction`,
//! `trace_block`, `trace_replayTransaction`, `trace_call`, `trace_filter`; and
//! `eth_createAccessList`.
//!
//! A sealed block's transactions are re-executed from the state before the block, so
//! the block must be within the state history (`--state-history`). Each re-executed
//! transaction's gas is checked against its receipt (a divergence is an error, never a
//! wrong trace).

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::map::HashSet;
use alloy_primitives::{B256, U64};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{BlockOverrides, TransactionRequest};
use alloy_rpc_types_trace::filter::TraceFilter;
use alloy_rpc_types_trace::geth::{GethDebugTracingCallOptions, GethDebugTracingOptions};
use alloy_rpc_types_trace::parity::{LocalizedTransactionTrace, TraceResultsWithTransactionHash, TraceType};
use cairn_executor::trace::{self as tracing, TraceError};
use cairn_executor::BlockContext;
use cairn_primitives::RecoveredTx;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

use crate::convert::decode_tx;
use crate::eth::EthApi;
use crate::overrides::{parse_block_overrides, Overridden};
use crate::params::Args;
use crate::RpcError;
use cairn_primitives::predeploys::system::{BlockSystem, SystemCalls, WithSystemWrites};

type RpcResult<T> = Result<T, RpcError>;

/// Widest block range of one `trace_filter`.
pub const MAX_TRACE_FILTER_BLOCKS: u64 = 1_000;
/// Most traces one `trace_filter` returns (its `count` may ask for fewer).
pub const MAX_TRACE_FILTER_RESULTS: usize = 10_000;

/// A sealed block ready to re-execute.
struct Replayable {
    state: cairn_storage::StateAt,
    /// The block's system writes, on top of `state` for its transactions.
    system: BlockSystem,
    ctx: BlockContext,
    number: u64,
    hash: B256,
    txs: Vec<RecoveredTx>,
    gas: Vec<u64>,
}

fn trace_error(e: TraceError) -> RpcError {
    match e {
        TraceError::Options(m) => RpcError::InvalidParams(m),
        TraceError::State(m) => RpcError::Internal(m),
        other => RpcError::Server(other.to_string()),
    }
}

impl Replayable {
    /// What the block's transactions read: the parent's state and the block's system
    /// writes.
    fn view(&self) -> WithSystemWrites<'_> {
        WithSystemWrites { state: &self.state, block: self.system }
    }
}

impl EthApi {
    fn replayable(&self, number: u64) -> RpcResult<Replayable> {
        let reader = self.chain.store.reader()?;
        let header = reader.header(number)?.ok_or_else(|| RpcError::Server("block not found".into()))?;
        let hash = header.hash_slow();
        let mut txs = Vec::new();
        for h in reader.block_tx_hashes(number)? {
            let record = reader.tx(h)?.ok_or_else(|| RpcError::Internal(format!("missing transaction {h}")))?;
            txs.push(RecoveredTx::new_unchecked(decode_tx(&record)?, record.sender));
        }
        let gas = reader.block_receipts(number)?.iter().map(|r| r.gas_used).collect();
        let mut ctx = BlockContext::for_chain(
            &self.chain.config,
            header.number,
            header.timestamp,
            header.base_fee_per_gas.unwrap_or_default(),
            header.mix_hash,
        );
        ctx.beneficiary = header.beneficiary;
        ctx.gas_limit = header.gas_limit;
        // The state the block started from (genesis has no transactions to replay).
        let state = reader.into_state_at(number.saturating_sub(1))?;
        let prague = self.chain.config.hardfork == cairn_primitives::Hardfork::Prague;
        let calls = SystemCalls::on(&state, prague).map_err(|e| RpcError::Internal(e.to_string()))?;
        let system = BlockSystem { calls, number, timestamp: header.timestamp };
        Ok(Replayable { state, system, ctx, number, hash, txs, gas })
    }

    /// The sealed block a transaction is in, and its position.
    fn locate(&self, hash: B256) -> RpcResult<(u64, usize)> {
        self.chain.wait_sealed_for(self.chain.find_unsealed(&hash).map_or(0, |u| u.number), crate::eth::SEAL_WAIT);
        let reader = self.chain.store.reader()?;
        let record = reader.tx(hash)?.ok_or_else(|| RpcError::Server(format!("transaction {hash} not found")))?;
        Ok((record.block_number, record.index as usize))
    }

    fn block_number_of(&self, id: BlockId) -> RpcResult<u64> {
        let (_, n) = self.sealed_block(id)?.ok_or_else(|| RpcError::Server("block not found".into()))?;
        Ok(n)
    }

    pub fn debug_trace_transaction(&self, hash: B256, opts: GethDebugTracingOptions) -> RpcResult<Value> {
        let (number, index) = self.locate(hash)?;
        let b = self.replayable(number)?;
        let mut traces = tracing::geth_block_traces(&b.view(), &b.ctx, b.hash, &b.txs, &b.gas, |i| i == index, &opts)
            .map_err(trace_error)?;
        let (_, trace) = traces.pop().ok_or_else(|| RpcError::Internal("no trace".into()))?;
        Ok(json!(trace))
    }

    pub fn debug_trace_block(&self, id: BlockId, opts: GethDebugTracingOptions) -> RpcResult<Value> {
        let b = self.replayable(self.block_number_of(id)?)?;
        let traces = tracing::geth_block_traces(&b.view(), &b.ctx, b.hash, &b.txs, &b.gas, |_| true, &opts)
            .map_err(trace_error)?;
        Ok(Value::Array(traces.into_iter().map(|(i, t)| json!({"txHash": b.txs[i].tx_hash(), "result": t})).collect()))
    }

    /// A call's simulation inputs: the state at `id` with overrides, its block context.
    fn call_inputs(
        &self,
        req: TransactionRequest,
        id: Option<BlockId>,
        state_overrides: Option<&StateOverride>,
        block_overrides: Option<&BlockOverrides>,
        run: impl FnOnce(&dyn cairn_primitives::StateView, &BlockContext, &cairn_executor::CallRequest) -> RpcResult<Value>,
    ) -> RpcResult<Value> {
        let (state, ctx, hashes) = self.simulation(id, block_overrides)?;
        let view = Overridden::new(&state, state_overrides, hashes)?;
        let req = Self::call_request(req)?;
        run(&view, &ctx, &req)
    }

    pub fn debug_trace_call(
        &self,
        req: TransactionRequest,
        id: Option<BlockId>,
        opts: GethDebugTracingCallOptions,
    ) -> RpcResult<Value> {
        if opts.tx_index.is_some() {
            return Err(RpcError::InvalidParams("txIndex is not supported".into()));
        }
        let cap = self.limits.gas_cap;
        let tracing_options = opts.tracing_options;
        self.call_inputs(req, id, opts.state_overrides.as_ref(), opts.block_overrides.as_ref(), |state, ctx, req| {
            Ok(json!(tracing::geth_call_trace(state, ctx, req, cap, &tracing_options).map_err(trace_error)?))
        })
    }

    /// Parity traces of the picked transactions of block `number`, localized.
    fn parity_localized(
        &self,
        number: u64,
        wanted: impl Fn(usize) -> bool,
    ) -> RpcResult<Vec<LocalizedTransactionTrace>> {
        let b = self.replayable(number)?;
        let traces = tracing::parity_block_traces(&b.view(), &b.ctx, &b.txs, &b.gas, wanted, &HashSet::default())
            .map_err(trace_error)?;
        let mut out = Vec::new();
        for (index, flat, _) in traces {
            out.extend(flat.into_iter().map(|trace| LocalizedTransactionTrace {
                trace,
                block_hash: Some(b.hash),
                block_number: Some(b.number),
                transaction_hash: Some(*b.txs[index].tx_hash()),
                transaction_position: Some(index as u64),
            }));
        }
        Ok(out)
    }

    pub fn trace_transaction(&self, hash: B256) -> RpcResult<Vec<LocalizedTransactionTrace>> {
        let (number, index) = self.locate(hash)?;
        self.parity_localized(number, |i| i == index)
    }

    pub fn trace_block(&self, id: BlockId) -> RpcResult<Vec<LocalizedTransactionTrace>> {
        self.parity_localized(self.block_number_of(id)?, |_| true)
    }

    pub fn trace_replay_transaction(
        &self,
        hash: B256,
        types: HashSet<TraceType>,
    ) -> RpcResult<TraceResultsWithTransactionHash> {
        let (number, index) = self.locate(hash)?;
        let b = self.replayable(number)?;
        let mut traces = tracing::parity_block_traces(&b.view(), &b.ctx, &b.txs, &b.gas, |i| i == index, &types)
            .map_err(trace_error)?;
        let (_, _, full_trace) = traces.pop().ok_or_else(|| RpcError::Internal("no trace".into()))?;
        Ok(TraceResultsWithTransactionHash { full_trace, transaction_hash: hash })
    }

    pub fn trace_call(
        &self,
        req: TransactionRequest,
        types: HashSet<TraceType>,
        id: Option<BlockId>,
        state_overrides: Option<&StateOverride>,
        block_overrides: Option<&BlockOverrides>,
    ) -> RpcResult<Value> {
        let cap = self.limits.gas_cap;
        self.call_inputs(req, id, state_overrides, block_overrides, |state, ctx, req| {
            Ok(json!(tracing::parity_call_trace(state, ctx, req, cap, &types).map_err(trace_error)?))
        })
    }

    pub fn trace_filter(&self, filter: TraceFilter) -> RpcResult<Vec<LocalizedTransactionTrace>> {
        let head = self.chain.latest().0.number;
        let from = filter.from_block.unwrap_or(0);
        let to = filter.to_block.unwrap_or(head).min(head);
        if from > to {
            return Err(RpcError::InvalidParams(format!("invalid block range: from {from} to {to}")));
        }
        if to - from >= MAX_TRACE_FILTER_BLOCKS {
            return Err(RpcError::LimitExceeded(format!("query exceeds max block range {MAX_TRACE_FILTER_BLOCKS}")));
        }
        let matcher = filter.matcher();
        let after = filter.after.unwrap_or(0) as usize;
        let count = filter.count.map_or(MAX_TRACE_FILTER_RESULTS, |c| c as usize);
        let mut out = Vec::new();
        let mut skipped = 0usize;
        for n in from..=to {
            let reader = self.chain.store.reader()?;
            if reader.block_tx_hashes(n)?.is_empty() {
                continue;
            }
            for t in self.parity_localized(n, |_| true)? {
                if !matcher.matches(&t.trace) {
                    continue;
                }
                if skipped < after {
                    skipped += 1;
                    continue;
                }
                if out.len() == count {
                    return Ok(out);
                }
                if out.len() == MAX_TRACE_FILTER_RESULTS {
                    return Err(RpcError::LimitExceeded(format!(
                        "query returned more than {MAX_TRACE_FILTER_RESULTS} results"
                    )));
                }
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn create_access_list(
        &self,
        req: TransactionRequest,
        id: Option<BlockId>,
        state_overrides: Option<&StateOverride>,
    ) -> RpcResult<Value> {
        let cap = self.limits.gas_cap;
        self.call_inputs(req, id, state_overrides, None, |state, ctx, req| {
            let r = tracing::create_access_list(state, ctx, req, cap).map_err(trace_error)?;
            let mut v = json!({"accessList": r.access_list, "gasUsed": U64::from(r.gas_used)});
            if let Some(e) = r.error {
                v["error"] = json!(e);
            }
            Ok(v)
        })
    }
}

fn trace_types(args: &mut Args<'_>) -> RpcResult<HashSet<TraceType>> {
    let types: Vec<TraceType> = args.next("trace types")?;
    Ok(types.into_iter().collect())
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_blocking_method("debug_traceTransaction", |p, api, _| {
        let mut args = Args::new(&p);
        let hash: B256 = args.next("transaction hash")?;
        let opts: Option<GethDebugTracingOptions> = args.opt("tracing options")?;
        api.debug_trace_transaction(hash, opts.unwrap_or_default())
    })?;
    m.register_blocking_method("debug_traceBlockByNumber", |p, api, _| {
        let mut args = Args::new(&p);
        let n: BlockNumberOrTag = args.next("block number or tag")?;
        let opts: Option<GethDebugTracingOptions> = args.opt("tracing options")?;
        api.debug_trace_block(BlockId::Number(n), opts.unwrap_or_default())
    })?;
    m.register_blocking_method("debug_traceBlockByHash", |p, api, _| {
        let mut args = Args::new(&p);
        let h: B256 = args.next("block hash")?;
        let opts: Option<GethDebugTracingOptions> = args.opt("tracing options")?;
        api.debug_trace_block(BlockId::from(h), opts.unwrap_or_default())
    })?;
    m.register_blocking_method("debug_traceCall", |p, api, _| {
        let mut args = Args::new(&p);
        let req: TransactionRequest = args.next("transaction call object")?;
        let block: Option<BlockId> = args.opt("block")?;
        let raw: Option<Value> = args.opt("tracing options")?;
        let mut raw = raw.unwrap_or_else(|| json!({}));
        // Block overrides go through the same check as eth_call's (unknown fields refused).
        let block_overrides = match raw.as_object_mut().and_then(|o| o.remove("blockOverrides")) {
            Some(v) => Some(parse_block_overrides(v)?),
            None => None,
        };
        let mut opts: GethDebugTracingCallOptions = serde_json::from_value(raw)
            .map_err(|e| RpcError::InvalidParams(format!("invalid argument 2 (tracing options): {e}")))?;
        opts.block_overrides = block_overrides;
        api.debug_trace_call(req, block, opts)
    })?;
    m.register_blocking_method("trace_transaction", |p, api, _| {
        api.trace_transaction(Args::new(&p).next("transaction hash")?)
    })?;
    m.register_blocking_method("trace_block", |p, api, _| api.trace_block(Args::new(&p).next("block")?))?;
    m.register_blocking_method("trace_replayTransaction", |p, api, _| {
        let mut args = Args::new(&p);
        let hash: B256 = args.next("transaction hash")?;
        let types = trace_types(&mut args)?;
        api.trace_replay_transaction(hash, types)
    })?;
    m.register_blocking_method("trace_call", |p, api, _| {
        let mut args = Args::new(&p);
        let req: TransactionRequest = args.next("transaction call object")?;
        let types = trace_types(&mut args)?;
        let block: Option<BlockId> = args.opt("block")?;
        let state: Option<StateOverride> = args.opt("state overrides")?;
        let blk = args.opt::<Value>("block overrides")?.map(parse_block_overrides).transpose()?;
        api.trace_call(req, types, block, state.as_ref(), blk.as_ref())
    })?;
    m.register_blocking_method("trace_filter", |p, api, _| api.trace_filter(Args::new(&p).next("trace filter")?))?;
    m.register_blocking_method("eth_createAccessList", |p, api, _| {
        let mut args = Args::new(&p);
        let req: TransactionRequest = args.next("transaction call object")?;
        let block: Option<BlockId> = args.opt("block")?;
        let state: Option<StateOverride> = args.opt("state overrides")?;
        api.create_access_list(req, block, state.as_ref())
    })?;
    Ok(())
}
