//! `cairn dev` only: the development accounts are unlocked, as in anvil and hardhat, and
//! the test-control methods test suites call are there. Never registered on a node that
//! is not `cairn dev` (the module is absent, so the methods answer "method not found").
//!
//! - `eth_accounts` lists the development accounts; `eth_sendTransaction` and
//!   `eth_signTransaction` fill what a request leaves out (chain id, `pending` nonce,
//!   fees from the next base fee, gas by estimate) and sign with the sender's key;
//!   `eth_sign`, `personal_sign` (EIP-191) and `eth_signTypedData_v4` (EIP-712) sign for
//!   them. Other senders get `unknown account`.
//! - `evm_mine`, `anvil_mine`, `hardhat_mine`: close a block now (an empty one if
//!   nothing is pending) and answer once it is sealed.
//! - `evm_increaseTime`, `evm_setNextBlockTimestamp` (and their `anvil_` names): move
//!   the clock of blocks opened from then on; kept across restarts.
//! - `anvil_setBalance`, `anvil_setNonce`, `anvil_setCode`, `anvil_setStorageAt` (and
//!   their `hardhat_` names): each edit is a block of its own, sealed before the answer
//!   (`cairn_sequencer::DevEdit`); a nonce is never lowered.
//! - `anvil_impersonateAccount`, `anvil_stopImpersonatingAccount`,
//!   `anvil_autoImpersonateAccount` (and the `hardhat_` names of the first two):
//!   `eth_sendTransaction` from an impersonated account sends a transaction with a
//!   marker signature (`cairn_primitives::impersonation`); such a transaction sent raw
//!   is accepted too while its sender is impersonated. Impersonation is a setting of
//!   the running node (a restart ends it); the transactions sent are durable.
//! - `evm_snapshot`, `evm_revert`: refused, because reverting would rewrite sealed
//!   blocks that were already announced and preconfirmed.

use alloy_eips::eip2718::Encodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_network::{EthereumWallet, NetworkTransactionBuilder};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use cairn_sequencer::DevEdit;
use jsonrpsee::RpcModule;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crate::dev_accounts::DevMode;
use crate::eth::EthApi;
use crate::params::Args;
use crate::RpcError;

/// Longest wait of a mine request for its block to be sealed.
pub const MINE_WAIT: Duration = Duration::from_secs(10);
/// Largest code `anvil_setCode` installs (EIP-170's limit does not apply to it, as in
/// anvil; this bounds the request).
pub const MAX_DEV_CODE: usize = 1024 * 1024;
/// Most blocks one `anvil_mine` / `hardhat_mine` call closes.
pub const MAX_MINE_BLOCKS: u64 = 1_000;

fn dev_error(e: cairn_sequencer::SequencerError) -> RpcError {
    RpcError::Server(e.to_string())
}

impl EthApi {
    fn dev(&self) -> Result<&DevMode, RpcError> {
        self.dev.as_ref().ok_or_else(|| RpcError::Server("development accounts are only unlocked in cairn dev".into()))
    }

    /// Completes `req` (chain id, nonce, fees, gas) for one of the development accounts
    /// (with its key) or for an impersonated account (no key).
    fn complete(
        &self,
        mut req: TransactionRequest,
    ) -> Result<(TransactionRequest, Option<PrivateKeySigner>), RpcError> {
        let from = req.from.ok_or_else(|| RpcError::InvalidParams("the transaction has no 'from'".into()))?;
        let signer = match self.dev()?.signer(from) {
            Ok(signer) => Some(signer.clone()),
            Err(_) if self.chain.is_impersonated(from) => None,
            Err(e) => return Err(e),
        };
        req.chain_id = Some(self.chain.config.chain_id);
        if req.nonce.is_none() {
            req.nonce = Some(self.transaction_count(from, Some(BlockId::Number(BlockNumberOrTag::Pending)))?.to());
        }
        if req.gas_price.is_none() {
            let tip = self.suggested_tip();
            let base = u128::from(self.chain.next_base_fee());
            match (req.max_fee_per_gas, req.max_priority_fee_per_gas) {
                (None, None) => {
                    req.max_priority_fee_per_gas = Some(tip);
                    req.max_fee_per_gas = Some(2 * base + tip);
                }
                (Some(max), None) => req.max_priority_fee_per_gas = Some(tip.min(max)),
                (None, Some(t)) => req.max_fee_per_gas = Some(2 * base + t),
                (Some(_), Some(_)) => {}
            }
        }
        if req.gas.is_none() {
            let pending = Some(BlockId::Number(BlockNumberOrTag::Pending));
            req.gas = Some(self.estimate_gas(req.clone(), pending, None, None)?.to());
        }
        if req.to.is_none() {
            req.to = Some(alloy_primitives::TxKind::Create);
        }
        Ok((req, signer))
    }

    /// Completes and signs `req` (blocking work: estimates, store reads).
    async fn sign_request(self: &Arc<Self>, req: TransactionRequest) -> Result<Bytes, RpcError> {
        let api = self.clone();
        let (req, signer) = tokio::task::spawn_blocking(move || api.complete(req))
            .await
            .map_err(|e| RpcError::Internal(e.to_string()))??;
        let Some(signer) = signer else {
            // Impersonated: the marker signature stands for the sender's.
            let from = req.from.unwrap_or_default();
            let typed = req
                .build_typed_tx()
                .map_err(|_| RpcError::InvalidParams("the transaction request is incomplete or ambiguous".into()))?;
            let envelope = typed.into_envelope(cairn_primitives::impersonation::impersonated_signature(from));
            return Ok(envelope.encoded_2718().into());
        };
        let wallet = EthereumWallet::from(signer);
        let envelope = <TransactionRequest as NetworkTransactionBuilder<alloy_network::Ethereum>>::build(req, &wallet)
            .await
            .map_err(|e| RpcError::InvalidParams(format!("cannot sign: {e}")))?;
        Ok(envelope.encoded_2718().into())
    }

    fn sign_message(&self, address: Address, message: &[u8]) -> Result<Bytes, RpcError> {
        let sig =
            self.dev()?.signer(address)?.sign_message_sync(message).map_err(|e| RpcError::Internal(e.to_string()))?;
        Ok(Bytes::from(sig.as_bytes().to_vec()))
    }

    fn sign_typed_data(&self, address: Address, data: Value) -> Result<Bytes, RpcError> {
        // Wallets send the typed data as an object or as a JSON string of one.
        let data = match data {
            Value::String(s) => serde_json::from_str(&s)
                .map_err(|e| RpcError::InvalidParams(format!("invalid argument 1 (typed data): {e}")))?,
            v => v,
        };
        let typed: alloy_dyn_abi::TypedData = serde_json::from_value(data)
            .map_err(|e| RpcError::InvalidParams(format!("invalid argument 1 (typed data): {e}")))?;
        let hash = typed.eip712_signing_hash().map_err(|e| RpcError::InvalidParams(format!("typed data: {e}")))?;
        let sig = self.dev()?.signer(address)?.sign_hash_sync(&hash).map_err(|e| RpcError::Internal(e.to_string()))?;
        Ok(Bytes::from(sig.as_bytes().to_vec()))
    }

    /// Applies a state edit (a block of its own), answered once it is sealed.
    fn edit(&self, edit: DevEdit) -> Result<u64, RpcError> {
        self.dev()?;
        self.chain.edit_state(edit, MINE_WAIT).map_err(dev_error)
    }

    /// Closes `count` blocks, one after another; the number of the last.
    fn mine_blocks(&self, count: u64) -> Result<u64, RpcError> {
        if count > MAX_MINE_BLOCKS {
            return Err(RpcError::InvalidParams(format!("at most {MAX_MINE_BLOCKS} blocks per call")));
        }
        let mut last = self.chain.latest().0.number;
        for _ in 0..count {
            last = self.chain.mine(MINE_WAIT).map_err(dev_error)?;
        }
        Ok(last)
    }
}

/// A quantity given as a number or a hex string (clients send both).
fn quantity(v: Option<Value>, what: &str) -> Result<Option<u64>, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().map(Some).ok_or_else(|| RpcError::InvalidParams(format!("{what}: not a u64")))
        }
        Some(Value::String(s)) => {
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.map(Some).map_err(|e| RpcError::InvalidParams(format!("{what}: {e}")))
        }
        Some(other) => Err(RpcError::InvalidParams(format!("{what}: expected a number, got {other}"))),
    }
}

const NO_SNAPSHOTS: &str = "evm_snapshot and evm_revert are not supported: Cairn never rewrites a sealed block \
     (blocks are announced, preconfirmed and final once sealed); start a fresh `cairn dev --datadir` instead";

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("eth_sendTransaction", |p, api, _| async move {
        let req: TransactionRequest = Args::new(&p).next("transaction object")?;
        let raw = api.sign_request(req).await?;
        api.send_raw_transaction(raw).await
    })?;
    m.register_async_method("eth_signTransaction", |p, api, _| async move {
        let req: TransactionRequest = Args::new(&p).next("transaction object")?;
        api.sign_request(req).await
    })?;
    m.register_method("eth_sign", |p, api, _| {
        let mut args = Args::new(&p);
        let address: Address = args.next("address")?;
        let data: Bytes = args.next("message")?;
        api.sign_message(address, &data)
    })?;
    m.register_method("personal_sign", |p, api, _| {
        let mut args = Args::new(&p);
        let data: Bytes = args.next("message")?;
        let address: Address = args.next("address")?;
        api.sign_message(address, &data)
    })?;
    for name in ["eth_signTypedData_v4", "eth_signTypedData"] {
        m.register_method(name, |p, api, _| {
            let mut args = Args::new(&p);
            let address: Address = args.next("address")?;
            let data: Value = args.next("typed data")?;
            api.sign_typed_data(address, data)
        })?;
    }
    m.register_blocking_method("evm_mine", |p, api, _| {
        // hardhat and anvil accept an optional timestamp for the block.
        let ts = quantity(Args::new(&p).opt::<Value>("timestamp")?, "timestamp")?;
        if let Some(ts) = ts {
            api.chain.set_next_timestamp(ts).map_err(dev_error)?;
        }
        api.mine_blocks(1)?;
        Ok::<_, RpcError>("0x0")
    })?;
    for name in ["anvil_mine", "hardhat_mine"] {
        m.register_blocking_method(name, |p, api, _| {
            let mut args = Args::new(&p);
            let count = quantity(args.opt::<Value>("block count")?, "block count")?.unwrap_or(1);
            let interval = quantity(args.opt::<Value>("interval")?, "interval")?;
            for _ in 0..count {
                if let Some(secs) = interval {
                    api.chain.increase_time(secs).map_err(dev_error)?;
                }
                api.mine_blocks(1)?;
            }
            Ok::<_, RpcError>(Value::Null)
        })?;
    }
    for name in ["evm_increaseTime", "anvil_increaseTime"] {
        m.register_method(name, |p, api, _| {
            let secs = quantity(Args::new(&p).opt::<Value>("seconds")?, "seconds")?
                .ok_or_else(|| RpcError::InvalidParams("missing value for required argument 0 (seconds)".into()))?;
            let total = api.chain.increase_time(secs).map_err(dev_error)?;
            Ok::<_, RpcError>(U256::from(total.max(0) as u64))
        })?;
    }
    for name in ["evm_setNextBlockTimestamp", "anvil_setNextBlockTimestamp"] {
        m.register_method(name, |p, api, _| {
            let ts = quantity(Args::new(&p).opt::<Value>("timestamp")?, "timestamp")?
                .ok_or_else(|| RpcError::InvalidParams("missing value for required argument 0 (timestamp)".into()))?;
            api.chain.set_next_timestamp(ts).map_err(dev_error)?;
            Ok::<_, RpcError>(Value::Null)
        })?;
    }
    // anvil answers null to these, hardhat true (setStorageAt: true in both).
    for (name, answer) in [("anvil_setBalance", Value::Null), ("hardhat_setBalance", Value::Bool(true))] {
        m.register_blocking_method(name, move |p, api, _| {
            let mut args = Args::new(&p);
            let address: Address = args.next("address")?;
            let balance: U256 = args.next("balance")?;
            api.edit(DevEdit::Balance(address, balance))?;
            Ok::<_, RpcError>(answer.clone())
        })?;
    }
    for (name, answer) in [("anvil_setNonce", Value::Null), ("hardhat_setNonce", Value::Bool(true))] {
        m.register_blocking_method(name, move |p, api, _| {
            let mut args = Args::new(&p);
            let address: Address = args.next("address")?;
            let nonce = quantity(Some(args.next::<Value>("nonce")?), "nonce")?.unwrap_or_default();
            api.edit(DevEdit::Nonce(address, nonce))?;
            Ok::<_, RpcError>(answer.clone())
        })?;
    }
    for (name, answer) in [("anvil_setCode", Value::Null), ("hardhat_setCode", Value::Bool(true))] {
        m.register_blocking_method(name, move |p, api, _| {
            let mut args = Args::new(&p);
            let address: Address = args.next("address")?;
            let code: Bytes = args.next("code")?;
            if code.len() > MAX_DEV_CODE {
                return Err(RpcError::InvalidParams(format!(
                    "invalid argument 1 (code): {} bytes, at most {MAX_DEV_CODE}",
                    code.len()
                )));
            }
            api.edit(DevEdit::Code(address, code))?;
            Ok::<_, RpcError>(answer.clone())
        })?;
    }
    for name in ["anvil_setStorageAt", "hardhat_setStorageAt"] {
        m.register_blocking_method(name, |p, api, _| {
            let mut args = Args::new(&p);
            let address: Address = args.next("address")?;
            let slot: U256 = args.next("slot")?;
            let value: B256 = args.next("value")?;
            api.edit(DevEdit::Storage { address, slot, value: value.into() })?;
            Ok::<_, RpcError>(true)
        })?;
    }
    for (name, answer) in [("anvil_impersonateAccount", Value::Null), ("hardhat_impersonateAccount", Value::Bool(true))]
    {
        m.register_method(name, move |p, api, _| {
            api.dev()?;
            let address: Address = Args::new(&p).next("address")?;
            api.chain.impersonate(address).map_err(dev_error)?;
            Ok::<_, RpcError>(answer.clone())
        })?;
    }
    for (name, answer) in
        [("anvil_stopImpersonatingAccount", Value::Null), ("hardhat_stopImpersonatingAccount", Value::Bool(true))]
    {
        m.register_method(name, move |p, api, _| {
            api.dev()?;
            let address: Address = Args::new(&p).next("address")?;
            api.chain.stop_impersonating(address).map_err(dev_error)?;
            Ok::<_, RpcError>(answer.clone())
        })?;
    }
    m.register_method("anvil_autoImpersonateAccount", |p, api, _| {
        api.dev()?;
        let on: bool = Args::new(&p).next("enabled")?;
        api.chain.auto_impersonate(on).map_err(dev_error)?;
        Ok::<_, RpcError>(Value::Null)
    })?;
    for name in ["evm_snapshot", "evm_revert", "anvil_snapshot", "anvil_revert"] {
        m.register_method(name, |_, _, _| Err::<Value, _>(RpcError::Server(NO_SNAPSHOTS.into())))?;
    }
    Ok(())
}
