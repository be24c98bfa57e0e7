//! `eth_simulateV1`: simulated blocks on top of a block's state, each with block and
//! state overrides and calls, executed by `cairn_executor::simulate_blocks`; answered
//! as the specification describes (each block with its `calls` results).
//!
//! Defaults as geth's: a block's number is its parent's + 1 and its timestamp the
//! parent's + 12; its gas limit and fee recipient are the base block's; its base fee is
//! the next base fee with `validation`, zero without. Numbers and timestamps must
//! increase (-38020 / -38021). A call's sender defaults to the zero address, its nonce
//! to the sender's, its gas to what is left in the block (at most the RPC gas cap).
//! Simulated blocks have no state root (it is reported as zero: computing it would take
//! the trie); their transactions and receipts roots and bloom are computed.

use alloy_consensus::{Header, SignableTransaction, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bloom, Signature, B256, U256};
use alloy_rpc_types_eth::simulate::{SimCallResult, SimulateError, SimulatePayload, SimulatedBlock};
use alloy_rpc_types_eth::{self as rpc, BlockTransactions, TransactionRequest};
use cairn_executor::{BlockContext, SimBlockInput, SimError, StateEdit};
use jsonrpsee::RpcModule;
use serde_json::Value;

use crate::convert::rpc_header;
use crate::eth::EthApi;
use crate::overrides::Overridden;
use crate::params::Args;
use crate::RpcError;

/// Most simulated blocks one call may ask for (geth's bound).
pub const MAX_SIMULATED_BLOCKS: usize = 256;
/// Most calls over all the blocks of one request.
pub const MAX_SIMULATED_CALLS: usize = 1_000;

fn edits(overrides: &alloy_rpc_types_eth::state::StateOverride) -> Result<Vec<StateEdit>, RpcError> {
    let mut out = Vec::new();
    for (address, o) in overrides {
        if o.move_precompile_to.is_some() {
            return Err(RpcError::InvalidParams(format!(
                "account {address}: movePrecompileToAddress is not supported"
            )));
        }
        if let Some(b) = o.balance {
            out.push(StateEdit::Balance(*address, b));
        }
        if let Some(n) = o.nonce {
            out.push(StateEdit::Nonce(*address, n));
        }
        if let Some(code) = &o.code {
            out.push(StateEdit::Code(*address, code.clone()));
        }
        let slots = |m: &alloy_primitives::map::B256HashMap<B256>| -> Vec<(U256, U256)> {
            m.iter().map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0))).collect()
        };
        match (&o.state, &o.state_diff) {
            (Some(_), Some(_)) => {
                return Err(RpcError::InvalidParams(format!("account {address} has both 'state' and 'stateDiff'")))
            }
            (Some(s), None) => out.push(StateEdit::Storage { address: *address, slots: slots(s), replace: true }),
            (None, Some(d)) => out.push(StateEdit::Storage { address: *address, slots: slots(d), replace: false }),
            (None, None) => {}
        }
    }
    Ok(out)
}

fn sim_error(e: SimError) -> RpcError {
    match e {
        SimError::Invalid { code, message, .. } => RpcError::Coded { code, message },
        SimError::State(m) => RpcError::Internal(m),
    }
}

/// The simulated transaction as a block lists it: the call with its filled-in nonce,
/// gas and fees, with an empty signature (it was never signed).
fn sim_tx(mut req: TransactionRequest, chain_id: u64, nonce: u64, gas: u64) -> Option<TxEnvelope> {
    req.nonce = Some(nonce);
    req.gas = Some(gas);
    req.chain_id = Some(chain_id);
    if req.to.is_none() {
        req.to = Some(alloy_primitives::TxKind::Create);
    }
    if req.gas_price.is_none() && req.max_fee_per_gas.is_none() {
        req.max_fee_per_gas = Some(0);
        req.max_priority_fee_per_gas = Some(0);
    }
    let typed = req.build_typed_tx().ok()?;
    let sig = Signature::new(U256::ZERO, U256::ZERO, false);
    Some(match typed {
        alloy_consensus::TypedTransaction::Legacy(t) => TxEnvelope::Legacy(t.into_signed(sig)),
        alloy_consensus::TypedTransaction::Eip2930(t) => TxEnvelope::Eip2930(t.into_signed(sig)),
        alloy_consensus::TypedTransaction::Eip1559(t) => TxEnvelope::Eip1559(t.into_signed(sig)),
        alloy_consensus::TypedTransaction::Eip7702(t) => TxEnvelope::Eip7702(t.into_signed(sig)),
        alloy_consensus::TypedTransaction::Eip4844(_) => return None,
    })
}

impl EthApi {
    pub fn simulate_v1(&self, payload: SimulatePayload, id: Option<BlockId>) -> Result<Value, RpcError> {
        if payload.block_state_calls.len() > MAX_SIMULATED_BLOCKS {
            return Err(RpcError::Coded {
                code: -38026,
                message: format!("too many blocks: at most {MAX_SIMULATED_BLOCKS}"),
            });
        }
        let calls: usize = payload.block_state_calls.iter().map(|b| b.calls.len()).sum();
        if calls > MAX_SIMULATED_CALLS {
            return Err(RpcError::LimitExceeded(format!("too many calls: at most {MAX_SIMULATED_CALLS}")));
        }
        let id = id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest));
        let (state, base_ctx, _) = self.simulation(Some(id), None)?;
        // The parent of the first simulated block: the state's own block.
        let (parent_number, parent_hash, parent_ts, parent) = {
            let reader = self.chain.store.reader()?;
            let n = match &state {
                crate::eth::State::Sealed(at) => at.block(),
                crate::eth::State::Pending(_) => self.chain.latest().0.number,
            };
            let h = reader.header(n)?.ok_or_else(|| RpcError::Internal(format!("header {n} missing")))?;
            (h.number, h.hash_slow(), h.timestamp, h)
        };
        let mut block_hashes = std::collections::BTreeMap::new();
        let mut inputs = Vec::new();
        let (mut number, mut timestamp) = (parent_number, parent_ts);
        let (mut prev_gas_used, mut prev_gas_limit, mut prev_base) =
            (parent.gas_used, parent.gas_limit, parent.base_fee_per_gas.unwrap_or_default());
        for (i, b) in payload.block_state_calls.iter().enumerate() {
            let o = b.block_overrides.clone().unwrap_or_default();
            let next_number = match o.number {
                Some(n) => n.try_into().map_err(|_| RpcError::InvalidParams("block number too large".into()))?,
                None => number + 1,
            };
            if next_number <= number {
                return Err(RpcError::Coded {
                    code: -38020,
                    message: format!("block numbers must increase: block {i} has {next_number} after {number}"),
                });
            }
            let next_ts = o.time.unwrap_or(timestamp + 12);
            if next_ts <= timestamp {
                return Err(RpcError::Coded {
                    code: -38021,
                    message: format!("block timestamps must increase: block {i} has {next_ts} after {timestamp}"),
                });
            }
            let base_fee = match o.base_fee {
                Some(f) => f.try_into().map_err(|_| RpcError::InvalidParams("base fee too large".into()))?,
                None if payload.validation => self.chain.config.next_base_fee(prev_gas_used, prev_gas_limit, prev_base),
                None => 0,
            };
            // The defaults above, then the overrides as eth_call applies them (the same
            // number, time and base fee where given; fee recipient, randomness, gas
            // limit, difficulty, block hashes; the unsupported ones refused).
            let mut ctx = BlockContext::for_chain(&self.chain.config, next_number, next_ts, base_fee, B256::ZERO);
            ctx.gas_limit = base_ctx.gas_limit;
            block_hashes.extend(crate::overrides::apply_block_overrides(&mut ctx, &o)?);
            let mut calls = Vec::with_capacity(b.calls.len());
            for req in &b.calls {
                let mut req = Self::call_request(req.clone())?;
                if payload.validation && req.gas_price.is_none() && req.max_fee_per_gas.is_none() {
                    req.max_fee_per_gas = Some(u128::from(base_fee));
                    req.max_priority_fee_per_gas = Some(0);
                }
                calls.push(req);
            }
            let edits = match &b.state_overrides {
                Some(s) => edits(s)?,
                None => Vec::new(),
            };
            inputs.push(SimBlockInput { ctx, edits, calls });
            (number, timestamp) = (next_number, next_ts);
            prev_base = base_fee;
            prev_gas_limit = inputs.last().map_or(prev_gas_limit, |i| i.ctx.gas_limit);
            prev_gas_used = 0;
        }
        let view = Overridden::new(&state, None, block_hashes)?;
        let outputs = cairn_executor::simulate_blocks(
            &view,
            &inputs,
            payload.validation,
            payload.trace_transfers,
            self.limits.gas_cap,
        )
        .map_err(sim_error)?;

        // The answer: each block (header, transactions) with its calls' results.
        let mut parent_hash = parent_hash;
        let mut blocks = Vec::with_capacity(outputs.len());
        for ((input, results), sim) in inputs.iter().zip(outputs).zip(&payload.block_state_calls) {
            let mut txs = Vec::with_capacity(results.len());
            let mut receipts = Vec::with_capacity(results.len());
            let mut cumulative = 0u64;
            for (r, req) in results.iter().zip(&sim.calls) {
                cumulative += r.gas_used;
                let tx = sim_tx(req.clone(), self.chain.config.chain_id, r.nonce, r.gas_limit)
                    .ok_or_else(|| RpcError::InvalidParams("blob transactions cannot be simulated".into()))?;
                let receipt = alloy_consensus::Receipt {
                    status: alloy_consensus::Eip658Value::Eip658(r.success),
                    cumulative_gas_used: cumulative,
                    logs: r.logs.clone(),
                };
                receipts.push(alloy_consensus::ReceiptEnvelope::from_typed(tx.tx_type(), receipt.with_bloom()));
                txs.push(tx);
            }
            let mut bloom = Bloom::default();
            for r in &receipts {
                bloom.accrue_bloom(r.logs_bloom());
            }
            let ctx = &input.ctx;
            let header = Header {
                parent_hash,
                ommers_hash: alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH,
                beneficiary: ctx.beneficiary,
                state_root: B256::ZERO,
                transactions_root: alloy_consensus::proofs::calculate_transaction_root(&txs),
                receipts_root: alloy_consensus::proofs::calculate_receipt_root(&receipts),
                logs_bloom: bloom,
                difficulty: ctx.difficulty,
                number: ctx.number,
                gas_limit: ctx.gas_limit,
                gas_used: cumulative,
                timestamp: ctx.timestamp,
                mix_hash: ctx.prevrandao,
                base_fee_per_gas: Some(ctx.base_fee),
                withdrawals_root: Some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
                blob_gas_used: Some(0),
                excess_blob_gas: Some(0),
                parent_beacon_block_root: Some(B256::ZERO),
                requests_hash: cairn_sequencer::requests_hash(&self.chain.config),
                ..Default::default()
            };
            let hash = header.hash_slow();
            let mut log_index = 0u64;
            let calls: Vec<SimCallResult> = results
                .iter()
                .zip(&txs)
                .enumerate()
                .map(|(i, (r, tx))| {
                    let logs = r
                        .logs
                        .iter()
                        .map(|l| {
                            let log = rpc::Log {
                                inner: l.clone(),
                                block_hash: Some(hash),
                                block_number: Some(ctx.number),
                                block_timestamp: Some(ctx.timestamp),
                                transaction_hash: Some(*tx.tx_hash()),
                                transaction_index: Some(i as u64),
                                log_index: Some(log_index),
                                removed: false,
                            };
                            log_index += 1;
                            log
                        })
                        .collect();
                    let error = match (&r.halt, r.success) {
                        (Some(reason), _) => Some(SimulateError {
                            code: -32015,
                            message: format!("execution halted: {reason}"),
                            data: None,
                        }),
                        (None, false) => Some(SimulateError {
                            code: 3,
                            message: RpcError::reverted(r.output.clone()).to_string(),
                            data: Some(r.output.clone()),
                        }),
                        (None, true) => None,
                    };
                    SimCallResult {
                        return_data: r.output.clone(),
                        logs,
                        gas_used: r.gas_used,
                        max_used_gas: None,
                        status: r.success,
                        error,
                    }
                })
                .collect();
            let transactions = if payload.return_full_transactions {
                BlockTransactions::Full(
                    txs.iter()
                        .zip(results.iter())
                        .enumerate()
                        .map(|(i, (tx, _))| {
                            let from = sim.calls[i].from.unwrap_or(Address::ZERO);
                            rpc::Transaction {
                                inner: alloy_consensus::transaction::Recovered::new_unchecked(tx.clone(), from),
                                block_hash: Some(hash),
                                block_number: Some(ctx.number),
                                transaction_index: Some(i as u64),
                                effective_gas_price: Some(alloy_consensus::Transaction::effective_gas_price(
                                    tx,
                                    Some(ctx.base_fee),
                                )),
                                block_timestamp: Some(ctx.timestamp),
                            }
                        })
                        .collect(),
                )
            } else {
                BlockTransactions::Hashes(txs.iter().map(|t| *t.tx_hash()).collect())
            };
            let block = rpc::Block {
                header: rpc_header(header, hash),
                uncles: Vec::new(),
                transactions,
                withdrawals: Some(Default::default()),
            };
            blocks.push(SimulatedBlock { inner: block, calls });
            parent_hash = hash;
        }
        serde_json::to_value(blocks).map_err(|e| RpcError::Internal(e.to_string()))
    }
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_blocking_method("eth_simulateV1", |p, api, _| {
        let mut args = Args::new(&p);
        let payload: SimulatePayload = args.next("simulation payload")?;
        let block: Option<BlockId> = args.opt("block")?;
        api.simulate_v1(payload, block)
    })?;
    Ok(())
}
