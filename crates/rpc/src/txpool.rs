//! geth's `txpool_*` namespace: `txpool_status`, `txpool_content`,
//! `txpool_contentFrom`, `txpool_inspect`. `pending` are the transactions runnable now
//! (no nonce gap before them), `queued` those behind a gap; nonces are decimal keys
//! under checksummed sender addresses, as geth writes them.

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, U64};
use cairn_mempool::PoolTx;
use jsonrpsee::RpcModule;
use serde_json::{json, Map, Value};
use std::sync::Arc;

use crate::eth::EthApi;
use crate::params::Args;
use crate::RpcError;

/// Most transactions `txpool_content` and `txpool_inspect` list; a larger pool gets an
/// error that points to `txpool_contentFrom` and `txpool_status`.
pub const MAX_TXPOOL_CONTENT: usize = 10_000;

/// geth's one-line summary: `to: value wei + gas gas × price wei`.
fn summary(tx: &PoolTx) -> String {
    let to = match tx.tx.to() {
        Some(a) => a.to_checksum(None),
        None => "contract creation".into(),
    };
    format!("{to}: {} wei + {} gas × {} wei", tx.tx.value(), tx.tx.gas_limit(), tx.max_fee)
}

impl EthApi {
    /// `{pending, queued}` of one sender (`Some`: by nonce) or of all (by sender, then
    /// nonce), each transaction made by `f`.
    fn txpool_map(&self, sender: Option<Address>, f: impl Fn(&PoolTx) -> Value) -> Result<Value, RpcError> {
        let pool = self.chain.pool.lock();
        if sender.is_none() && pool.len() > MAX_TXPOOL_CONTENT {
            return Err(RpcError::LimitExceeded(format!(
                "the pool holds {} transactions, more than one answer lists ({MAX_TXPOOL_CONTENT}): use txpool_contentFrom or txpool_status",
                pool.len()
            )));
        }
        let by_nonce = |a: &Address| {
            let (mut ready, mut gapped) = (Map::new(), Map::new());
            for (tx, is_ready) in pool.of_sender(a) {
                let entry: &Arc<PoolTx> = &tx;
                let side = if is_ready { &mut ready } else { &mut gapped };
                side.insert(entry.nonce.to_string(), f(entry));
            }
            (ready, gapped)
        };
        if let Some(a) = sender {
            // geth's txpool_contentFrom: nonces directly under pending / queued.
            let (ready, gapped) = by_nonce(&a);
            return Ok(json!({ "pending": ready, "queued": gapped }));
        }
        let (mut pending, mut queued) = (Map::new(), Map::new());
        for a in pool.senders() {
            let (ready, gapped) = by_nonce(a);
            if !ready.is_empty() {
                pending.insert(a.to_checksum(None), Value::Object(ready));
            }
            if !gapped.is_empty() {
                queued.insert(a.to_checksum(None), Value::Object(gapped));
            }
        }
        Ok(json!({ "pending": pending, "queued": queued }))
    }

    pub fn txpool_status(&self) -> Value {
        let (ready, queued) = self.chain.pool.lock().counts();
        json!({ "pending": U64::from(ready), "queued": U64::from(queued) })
    }

    pub fn txpool_content(&self, sender: Option<Address>) -> Result<Value, RpcError> {
        let base_fee = self.chain.next_base_fee();
        self.txpool_map(sender, |tx| json!(crate::convert::pending_rpc_tx(tx.tx.clone(), base_fee)))
    }

    pub fn txpool_inspect(&self) -> Result<Value, RpcError> {
        self.txpool_map(None, |tx| json!(summary(tx)))
    }
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("txpool_status", |_, api, _| Ok::<_, RpcError>(api.txpool_status()))?;
    m.register_method("txpool_content", |_, api, _| api.txpool_content(None))?;
    m.register_method("txpool_contentFrom", |p, api, _| {
        let a: Address = Args::new(&p).next("address")?;
        api.txpool_content(Some(a))
    })?;
    m.register_method("txpool_inspect", |_, api, _| api.txpool_inspect())?;
    Ok(())
}
