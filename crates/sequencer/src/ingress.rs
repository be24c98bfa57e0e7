use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::Transaction as _;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_executor::{intrinsic_gas, spec_of};
use cairn_mempool::PoolError;
use cairn_primitives::{StateView, TxEnvelope};
use std::sync::Arc;

use crate::chain::Chain;

/// Why a transaction was refused at the door; messages follow geth's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized { size: usize, limit: usize },
    #[error("rlp: {0}")]
    Decode(String),
    #[error("transaction type not supported: blob transactions (EIP-4844) are not accepted by this rollup sequencer")]
    BlobTx,
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    Unprotected,
    #[error("invalid chain id for signer: have {have} want {want}")]
    ChainId { have: u64, want: u64 },
    #[error("invalid sender: {0}")]
    InvalidSignature(String),
    #[error("transaction gas limit too high (cap: {cap}, tx: {gas})")]
    GasLimitTooHigh { cap: u64, gas: u64 },
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGas { gas: u64, needed: u64 },
    #[error("max priority fee per gas higher than max fee per gas: address {address}, maxPriorityFeePerGas: {tip}, maxFeePerGas: {cap}")]
    TipAboveFeeCap { address: Address, tip: u128, cap: u128 },
    #[error("max fee per gas less than block base fee: address {address}, maxFeePerGas: {cap}, baseFee: {base_fee}")]
    FeeCapTooLow { address: Address, cap: u128, base_fee: u64 },
    #[error("transaction underpriced: tip needed {needed}, tip permitted {permitted}")]
    Underpriced { needed: u128, permitted: u128 },
    #[error("insufficient funds for gas * price + value: address {address} have {have} want {want}")]
    InsufficientFunds { address: Address, have: U256, want: U256 },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Lane(#[from] cairn_mempool::lanes::LaneError),
    #[error(transparent)]
    Bundle(#[from] cairn_mempool::lanes::BundleError),
    #[error("transaction could not be made durable: {0}")]
    Durability(String),
    /// A rollup follower's sequencer set refused it (its message) or could not be reached.
    #[error("{0}")]
    Upstream(String),
}

/// What a follower hands to the sequencer set, and where the answer goes.
#[derive(Debug)]
pub enum Forward {
    /// A transaction checked here: `eth_sendRawTransaction` on the set.
    Tx(Bytes, tokio::sync::oneshot::Sender<Result<B256, String>>),
    /// A call passed through as it is (`cairn_sendBundle`): its result, or the set's
    /// error message.
    Call {
        method: &'static str,
        params: serde_json::Value,
        answer: tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>,
    },
}

/// Most admitted transactions waiting to be relayed to the other validators (more are
/// not relayed; each validator still includes its own when it proposes).
pub const RELAY_QUEUE: usize = 16_384;

/// Validates and admits raw transactions.
#[derive(Clone)]
pub struct Ingress {
    chain: Arc<Chain>,
    /// Under a validator set: where admitted transactions go to be relayed to the others.
    relay: Option<tokio::sync::mpsc::Sender<Bytes>>,
    /// A rollup follower: admitted transactions go to the sequencer set instead of the
    /// pool (the set orders them; this node executes what it decides).
    forward: Option<tokio::sync::mpsc::Sender<Forward>>,
}

impl Ingress {
    pub fn new(chain: Arc<Chain>) -> Self {
        Self { chain, relay: None, forward: None }
    }

    /// A follower's ingress: transactions that pass every check here (state included) are
    /// sent to the sequencer set through `forward`, and its answer is the client's.
    pub fn with_forward(mut self, forward: tokio::sync::mpsc::Sender<Forward>) -> Self {
        self.forward = Some(forward);
        self
    }

    /// Whether this is a follower's ingress (transactions go to the sequencer set).
    pub fn forwards(&self) -> bool {
        self.forward.is_some()
    }

    /// Passes `method(params)` through to the sequencer set (a follower's
    /// `cairn_sendBundle`); its result, or its error as [`IngressError::Upstream`].
    pub async fn forward_call(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, IngressError> {
        let Some(forward) = &self.forward else {
            return Err(IngressError::Upstream("this node does not forward to a sequencer set".into()));
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        forward
            .try_send(Forward::Call { method, params, answer })
            .map_err(|_| IngressError::Upstream("the queue to the sequencer set is full".into()))?;
        match answered.await {
            Ok(r) => r.map_err(IngressError::Upstream),
            Err(_) => Err(IngressError::Upstream("the sequencer set did not answer".into())),
        }
    }

    /// Every transaction a client submits is also handed to `relay` (bounded by the
    /// channel; a full channel drops the relay, never the transaction).
    pub fn with_relay(mut self, relay: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Decodes, checks and admits a raw EIP-2718 transaction. When this returns `Ok`, the
    /// transaction is in the pool and durably on disk. It is relayed to the other
    /// validators of a set.
    pub async fn submit(&self, raw: &[u8]) -> Result<B256, IngressError> {
        self.admit(raw, true).await
    }

    /// [`Self::submit`] for a transaction another validator relayed: not relayed again.
    pub async fn submit_relayed(&self, raw: &[u8]) -> Result<B256, IngressError> {
        self.admit(raw, false).await
    }

    async fn admit(&self, raw: &[u8], relay: bool) -> Result<B256, IngressError> {
        let chain = &self.chain;
        let cfg = &chain.config;
        if raw.len() > cfg.max_tx_bytes {
            return Err(IngressError::Oversized { size: raw.len(), limit: cfg.max_tx_bytes });
        }
        let tx = TxEnvelope::decode_2718_exact(raw).map_err(|e| IngressError::Decode(e.to_string()))?;
        if tx.is_eip4844() {
            return Err(IngressError::BlobTx);
        }
        match tx.chain_id() {
            None => return Err(IngressError::Unprotected),
            Some(id) if id != cfg.chain_id => return Err(IngressError::ChainId { have: id, want: cfg.chain_id }),
            Some(_) => {}
        }
        if tx.gas_limit() > cfg.tx_gas_cap {
            return Err(IngressError::GasLimitTooHigh { cap: cfg.tx_gas_cap, gas: tx.gas_limit() });
        }
        let sender = match tx.recover_signer() {
            Ok(sender) => sender,
            // `cairn dev`: a marker signature of an account being impersonated.
            Err(e) => cairn_primitives::impersonation::impersonated_sender(&tx)
                .filter(|who| chain.is_impersonated(*who))
                .ok_or_else(|| IngressError::InvalidSignature(e.to_string()))?,
        };
        let needed = intrinsic_gas(&tx, sender, spec_of(cfg.hardfork));
        if tx.gas_limit() < needed {
            return Err(IngressError::IntrinsicGas { gas: tx.gas_limit(), needed });
        }
        let cap = tx.max_fee_per_gas();
        let tip = tx.max_priority_fee_per_gas().unwrap_or(cap);
        if tip > cap {
            return Err(IngressError::TipAboveFeeCap { address: sender, tip, cap });
        }
        let base_fee = chain.next_base_fee();
        if cap < base_fee as u128 {
            return Err(IngressError::FeeCapTooLow { address: sender, cap, base_fee });
        }
        if tip < cfg.min_tip {
            return Err(IngressError::Underpriced { needed: cfg.min_tip, permitted: tip });
        }
        // Checked against the newest executed state (sealed or not).
        let account = chain
            .pending_view()
            .account(sender)
            .map_err(|e| IngressError::Durability(format!("reading account {sender}: {}", e.0)))?
            .unwrap_or_default();
        let want = U256::from(tx.gas_limit()) * U256::from(cap) + tx.value();
        if account.balance < want {
            return Err(IngressError::InsufficientFunds { address: sender, have: account.balance, want });
        }
        let hash = *tx.tx_hash();
        if let Some(forward) = &self.forward {
            if tx.nonce() < account.nonce {
                return Err(IngressError::Pool(PoolError::NonceTooLow {
                    address: sender,
                    tx: tx.nonce(),
                    state: account.nonce,
                }));
            }
            let (answer, answered) = tokio::sync::oneshot::channel();
            forward
                .try_send(Forward::Tx(Bytes::copy_from_slice(raw), answer))
                .map_err(|_| IngressError::Upstream("the queue to the sequencer set is full".into()))?;
            return match answered.await {
                Ok(Ok(_)) => Ok(hash),
                Ok(Err(e)) => Err(IngressError::Upstream(e)),
                Err(_) => Err(IngressError::Upstream("the sequencer set did not answer".into())),
            };
        }
        let recovered = alloy_consensus::transaction::Recovered::new_unchecked(tx, sender);
        let at_ms = crate::fragments::now_ms();
        let inserted = {
            let mut pool = chain.pool.lock();
            let inserted = pool.insert_at(recovered, account.nonce, at_ms)?;
            // Recorded before the pool lock is released: once it is, the builder may
            // preconfirm the transaction even before its admission write returns, and a
            // tier is never skipped.
            chain.received(hash, inserted.ready, at_ms);
            inserted
        };
        // Relayed at once, so that whichever validator proposes next has it.
        if let (true, Some(r)) = (relay, &self.relay) {
            let _ = r.try_send(Bytes::copy_from_slice(raw));
        }
        if let Err(e) = chain.persister.persist(crate::admission::admission_record(at_ms, raw)).await {
            // Retracted only if still merely received (not already taken into a fragment).
            if chain.pool.lock().remove(&hash).is_some() {
                chain.dropped(&[hash], &format!("admission log write failed: {e}"));
            }
            return Err(IngressError::Durability(e));
        }
        if let Some(old) = inserted.replaced {
            chain.dropped(&[old], &format!("replaced by {hash}"));
        }
        chain.dropped(&inserted.evicted, "evicted from the full pool");
        Ok(hash)
    }
}
